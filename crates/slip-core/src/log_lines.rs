//! A container's output frames as lines: the decoder behind `slip logs` (SPEC §12), pure so it can be fuzzed.
//!
//! The engine hands out output in frames (Docker cuts a long message into 16 KiB frames, anywhere, and slip asks
//! for timestamps, so each frame starts with `<RFC 3339 time> `). [`LogLines`] splits them into lines per output
//! stream, so interleaved partial writes of stdout and stderr never merge, and decodes whole lines only, so a
//! character split between frames stays whole. A line longer than [`MAX_LOG_LINE`] bytes is handed out in marked
//! pieces ([`LogLine::cut`]) rather than held in memory until it ends.

use std::time::SystemTime;

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Which output of the container a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OutputStream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

impl OutputStream {
    /// `stdout` or `stderr`, as the API names them.
    pub fn as_str(self) -> &'static str {
        match self {
            OutputStream::Stdout => "stdout",
            OutputStream::Stderr => "stderr",
        }
    }
}

/// The longest line a runtime hands out, in bytes. Output that goes on longer without a line ending (progress
/// bars drawn with `\r`, binary) is cut into pieces of at most this size (see [`LogLine::cut`]), so no
/// container's output, however long its history, sits in slipd's memory as one string.
pub const MAX_LOG_LINE: usize = 64 * 1024;

/// One line of a container's output, without its line ending. Holds whatever the app printed, secret values
/// included: redact before it leaves slipd.
///
/// A line longer than [`MAX_LOG_LINE`] comes in pieces: every piece but the last is marked as cut, and the next
/// line of the same stream continues it. Whoever redacts must then redact across the cut, since a secret value
/// may straddle it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    /// When the engine received it (its first byte, for a line written in several parts); `None` when the engine
    /// gave no timestamp.
    pub at: Option<SystemTime>,
    /// Where the app wrote it.
    pub stream: OutputStream,
    /// The text (invalid UTF-8 replaced).
    pub text: String,
    /// Whether the next line of the same stream continues this one (a piece of a line longer than
    /// [`MAX_LOG_LINE`]).
    pub cut: bool,
}

/// Splits frames into lines, per output stream, keeping the time of the frame that began each line.
///
/// Bytes are buffered per stream and decoded only as whole lines (or whole characters, at a cut), so a character
/// that the engine split between two frames survives. No stream ever buffers more than [`MAX_LOG_LINE`] bytes
/// between frames: a longer line is handed out in pieces, each but the last marked [`LogLine::cut`].
#[derive(Debug, Default)]
pub struct LogLines {
    stdout: Partial,
    stderr: Partial,
}

/// The unfinished last line of one output stream.
#[derive(Debug, Default)]
struct Partial {
    /// Undecoded, without a `\n`, at most [`MAX_LOG_LINE`] bytes between frames.
    bytes: Vec<u8>,
    at: Option<SystemTime>,
}

impl LogLines {
    /// Adds one frame of `stream` (with or without the engine's timestamp prefix); returns the lines it completed.
    pub fn push(&mut self, stream: OutputStream, frame: &[u8]) -> Vec<LogLine> {
        let partial = match stream {
            OutputStream::Stdout => &mut self.stdout,
            OutputStream::Stderr => &mut self.stderr,
        };
        let (at, bytes) = split_timestamp(frame);
        if partial.bytes.is_empty() {
            partial.at = at;
        }
        let mut lines = Vec::new();
        for segment in bytes.split_inclusive(|b| *b == b'\n') {
            let (text, ended) = match segment.split_last() {
                Some((b'\n', text)) => (text, true),
                _ => (segment, false),
            };
            partial.bytes.extend_from_slice(text);
            while partial.bytes.len() > MAX_LOG_LINE {
                lines.push(partial.cut(stream));
                // The rest came with this frame: the buffer held at most the cap before it.
                partial.at = at;
            }
            if ended {
                lines.push(partial.line(stream));
                // Whatever follows in this frame was written at this frame's time.
                partial.at = at;
            }
        }
        lines
    }

    /// The bytes held for the unfinished line of `stream` (never more than [`MAX_LOG_LINE`] between frames).
    pub fn buffered(&self, stream: OutputStream) -> usize {
        match stream {
            OutputStream::Stdout => self.stdout.bytes.len(),
            OutputStream::Stderr => self.stderr.bytes.len(),
        }
    }

    /// The unfinished lines, stdout's first, once the stream has ended.
    pub fn finish(self) -> Vec<LogLine> {
        [(OutputStream::Stdout, self.stdout), (OutputStream::Stderr, self.stderr)]
            .into_iter()
            .filter(|(_, partial)| !partial.bytes.is_empty())
            .map(|(stream, partial)| LogLine {
                at: partial.at,
                stream,
                text: String::from_utf8_lossy(&partial.bytes).into_owned(),
                cut: false,
            })
            .collect()
    }
}

impl Partial {
    /// The buffered bytes as a whole line, without the `\r`s before its `\n`; empties the buffer.
    fn line(&mut self, stream: OutputStream) -> LogLine {
        let text = String::from_utf8_lossy(&self.bytes).trim_end_matches('\r').to_owned();
        self.bytes.clear();
        LogLine { at: self.at, stream, text, cut: false }
    }

    /// The first [`MAX_LOG_LINE`] buffered bytes, or fewer so as not to split a character, as a cut line.
    fn cut(&mut self, stream: OutputStream) -> LogLine {
        let end = char_start_at_or_before(&self.bytes, MAX_LOG_LINE);
        let text = String::from_utf8_lossy(&self.bytes[..end]).into_owned();
        self.bytes.drain(..end);
        LogLine { at: self.at, stream, text, cut: true }
    }
}

/// The engine's `<RFC 3339 time> ` prefix, parsed, and the rest of the frame. A frame without one is all text.
pub fn split_timestamp(frame: &[u8]) -> (Option<SystemTime>, &[u8]) {
    let Some(space) = frame.iter().position(|b| *b == b' ') else { return (None, frame) };
    let stamp = std::str::from_utf8(&frame[..space]).ok().and_then(|stamp| OffsetDateTime::parse(stamp, &Rfc3339).ok());
    match stamp {
        Some(at) => (Some(at.into()), &frame[space + 1..]),
        None => (None, frame),
    }
}

/// The last index at or before `at` where a UTF-8 character starts, looking back at most three bytes (the
/// longest tail a character can have); `at` itself when there is none, as in binary output.
fn char_start_at_or_before(bytes: &[u8], at: usize) -> usize {
    let is_start = |i: usize| bytes.get(i).is_none_or(|b| b & 0b1100_0000 != 0b1000_0000);
    (at.saturating_sub(3)..=at).rev().find(|i| is_start(*i)).unwrap_or(at)
}

#[cfg(test)]
mod tests;
