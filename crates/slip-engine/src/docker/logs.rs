//! A container's output through the engine's logs endpoint, as a stream of [`LogLine`]s.
//!
//! The engine is always asked for timestamps: each frame starts with the time the engine received that message
//! (RFC 3339 with nanoseconds), which becomes the line's `at`. The engine's own `since` takes whole seconds, so
//! slip passes the second and drops the earlier lines of it here, which makes `since` exact. Frames of stdout and
//! stderr are split into lines separately, so interleaved partial writes never merge, and decoded as whole lines,
//! so a character split between frames stays whole. A line longer than [`MAX_LOG_LINE`] bytes is handed out in
//! marked pieces ([`LogLine::cut`]) rather than held in memory until it ends.
//!
//! A stream that is not followed must make progress within [`API_TIMEOUT`]; a followed one may stay silent for
//! as long as the app is. Nothing here redacts: lines carry what the app printed.

use std::collections::VecDeque;
use std::time::{SystemTime, UNIX_EPOCH};

use bollard::Docker;
use bollard::container::LogOutput;
use bollard::query_parameters::LogsOptionsBuilder;
use futures::StreamExt;
use futures::stream::BoxStream;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::API_TIMEOUT;
use super::errors::Answer;
use crate::ports::{Follow, LogLine, LogRequest, LogStream, MAX_LOG_LINE, OutputStream, RuntimeError};

/// Opens the logs of container `id` on `docker` (reached at `socket`, for error messages).
pub(super) fn stream(docker: &Docker, socket: &str, id: &str, request: &LogRequest) -> LogStream {
    let mut options = LogsOptionsBuilder::default()
        .stdout(true)
        .stderr(true)
        .timestamps(true)
        .follow(request.follow == Follow::UntilStopped)
        .tail(&request.tail.map_or_else(|| "all".to_owned(), |n| n.to_string()));
    if let Some(seconds) = request.since.and_then(whole_seconds) {
        options = options.since(seconds);
    }
    let reader = Reader {
        frames: docker.logs(id, Some(options.build())).boxed(),
        lines: LogLines::default(),
        pending: VecDeque::new(),
        since: request.since,
        follow: request.follow,
        id: id.to_owned(),
        socket: socket.to_owned(),
        done: false,
    };
    futures::stream::unfold(reader, Reader::next).boxed()
}

/// The state of one log stream.
struct Reader {
    frames: BoxStream<'static, Result<LogOutput, bollard::errors::Error>>,
    lines: LogLines,
    /// Complete lines not yet handed out.
    pending: VecDeque<LogLine>,
    since: Option<SystemTime>,
    follow: Follow,
    id: String,
    socket: String,
    /// The engine's stream has ended; only `pending` is left.
    done: bool,
}

impl Reader {
    async fn next(mut self) -> Option<(Result<LogLine, RuntimeError>, Reader)> {
        loop {
            if let Some(line) = self.pending.pop_front() {
                if self.since.is_some_and(|since| line.at.is_some_and(|at| at < since)) {
                    continue;
                }
                return Some((Ok(line), self));
            }
            if self.done {
                return None;
            }
            let frame = match self.follow {
                Follow::UntilStopped => self.frames.next().await,
                Follow::No => match tokio::time::timeout(API_TIMEOUT, self.frames.next()).await {
                    Ok(frame) => frame,
                    Err(_) => {
                        self.done = true;
                        let message = format!("no answer within {}s", API_TIMEOUT.as_secs());
                        return Some((Err(self.rejected(message)), self));
                    }
                },
            };
            match frame {
                Some(Ok(frame)) => self.pending.extend(self.lines.push(&frame)),
                None => {
                    self.done = true;
                    self.pending.extend(std::mem::take(&mut self.lines).finish());
                }
                // The container is gone (removed by a deploy in the meantime): it has nothing more to say.
                Some(Err(err)) if Answer::of(&err).status() == Some(404) => self.done = true,
                Some(Err(err)) => {
                    self.done = true;
                    let error = match Answer::of(&err) {
                        Answer::Transport(message) => {
                            RuntimeError::Unreachable { socket: self.socket.clone(), message }
                        }
                        Answer::Engine { message, .. } => self.rejected(message),
                    };
                    return Some((Err(error), self));
                }
            }
        }
    }

    fn rejected(&self, message: String) -> RuntimeError {
        RuntimeError::Rejected { op: "logs", target: self.id.clone(), message }
    }
}

/// Splits frames into lines, per output stream, keeping the time of the frame that began each line.
///
/// Bytes are buffered per stream and decoded only as whole lines (or whole characters, at a cut), so a character
/// that the engine split between two frames (it cuts long messages at 16 KiB, anywhere) survives. No stream ever
/// buffers more than [`MAX_LOG_LINE`] bytes between frames: a longer line is handed out in pieces, each but the
/// last marked [`LogLine::cut`].
#[derive(Default)]
pub(super) struct LogLines {
    stdout: Partial,
    stderr: Partial,
}

/// The unfinished last line of one output stream.
#[derive(Default)]
struct Partial {
    /// Undecoded, without a `\n`, at most [`MAX_LOG_LINE`] bytes between frames.
    bytes: Vec<u8>,
    at: Option<SystemTime>,
}

impl LogLines {
    /// Adds one frame; returns the lines it completed.
    pub(super) fn push(&mut self, frame: &LogOutput) -> Vec<LogLine> {
        let (stream, partial, message) = match frame {
            LogOutput::StdErr { message } => (OutputStream::Stderr, &mut self.stderr, message),
            LogOutput::StdOut { message } | LogOutput::Console { message } | LogOutput::StdIn { message } => {
                (OutputStream::Stdout, &mut self.stdout, message)
            }
        };
        let (at, bytes) = split_timestamp(message);
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

    /// The unfinished lines, stdout's first, once the stream has ended.
    pub(super) fn finish(self) -> Vec<LogLine> {
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
fn split_timestamp(frame: &[u8]) -> (Option<SystemTime>, &[u8]) {
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

/// `since` as the engine's whole seconds, rounded down; `None` before 1970 (no bound at all).
fn whole_seconds(since: SystemTime) -> Option<i32> {
    let seconds = since.duration_since(UNIX_EPOCH).ok()?.as_secs();
    (seconds > 0).then(|| i32::try_from(seconds).unwrap_or(i32::MAX))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::redact::Redactor;

    fn out(s: &str) -> LogOutput {
        out_bytes(s.as_bytes())
    }

    fn err(s: &str) -> LogOutput {
        err_bytes(s.as_bytes())
    }

    fn out_bytes(bytes: &[u8]) -> LogOutput {
        LogOutput::StdOut { message: bytes.to_vec().into() }
    }

    fn err_bytes(bytes: &[u8]) -> LogOutput {
        LogOutput::StdErr { message: bytes.to_vec().into() }
    }

    /// Every line the frames give, the unfinished ones included, checking the cap after each frame.
    fn split(frames: impl IntoIterator<Item = LogOutput>) -> Vec<LogLine> {
        let mut lines = LogLines::default();
        let mut all = Vec::new();
        for frame in frames {
            all.extend(lines.push(&frame));
            let buffered = lines.stdout.bytes.len().max(lines.stderr.bytes.len());
            assert!(buffered <= MAX_LOG_LINE, "{buffered} bytes buffered between frames");
        }
        all.extend(lines.finish());
        all
    }

    fn texts(lines: &[LogLine]) -> Vec<(&str, &str)> {
        lines.iter().map(|l| (l.stream.as_str(), l.text.as_str())).collect()
    }

    #[test]
    fn lines_are_split_per_stream() {
        let mut lines = LogLines::default();
        let mut all = Vec::new();
        for frame in [out("hel"), err("oops\n"), out("lo\nwor"), out("ld\r\nlast")] {
            all.extend(lines.push(&frame));
        }
        all.extend(lines.finish());
        assert_eq!(texts(&all), vec![("stderr", "oops"), ("stdout", "hello"), ("stdout", "world"), ("stdout", "last")]);
        assert!(all.iter().all(|l| l.at.is_none()), "frames without a timestamp give lines without one");
    }

    #[test]
    fn a_line_keeps_the_time_of_the_frame_that_began_it() {
        let t = |nanos: u32| UNIX_EPOCH + Duration::new(1_700_000_000, nanos);
        let mut lines = LogLines::default();
        let mut all = Vec::new();
        for frame in [
            out("2023-11-14T22:13:20.000000001Z first\n"),
            out("2023-11-14T22:13:20.000000002Z a long line in "),
            out("2023-11-14T22:13:20.000000003Z two parts\nand more\n"),
            err("2023-11-14T22:13:20.000000004Z 2023-11-14T22:13:20Z is text here\n"),
        ] {
            all.extend(lines.push(&frame));
        }
        let got: Vec<(Option<SystemTime>, &str)> = all.iter().map(|l| (l.at, l.text.as_str())).collect();
        assert_eq!(
            got,
            vec![
                (Some(t(1)), "first"),
                (Some(t(2)), "a long line in two parts"),
                (Some(t(3)), "and more"),
                (Some(t(4)), "2023-11-14T22:13:20Z is text here"),
            ]
        );
    }

    #[test]
    fn a_line_longer_than_the_cap_comes_in_marked_pieces_of_the_cap() {
        // Docker's 16 KiB frames of a progress bar that never ends a line, then its end.
        let bar = "=\r".repeat(8 * 1024);
        let mut frames: Vec<LogOutput> = (0..5).map(|_| out(&bar)).collect();
        frames.push(out("done\n"));
        let all = split(frames);
        let sizes: Vec<(usize, bool)> = all.iter().map(|l| (l.text.len(), l.cut)).collect();
        assert_eq!(sizes, vec![(MAX_LOG_LINE, true), (5 * bar.len() - MAX_LOG_LINE + 4, false)]);
        assert_eq!(all.iter().map(|l| l.text.as_str()).collect::<String>(), format!("{}done", bar.repeat(5)));

        // One frame holding several caps' worth, and a finished line before it that stays whole.
        let all = split([out("short\n"), out(&"x".repeat(3 * MAX_LOG_LINE + 10))]);
        let sizes: Vec<(usize, bool)> = all.iter().map(|l| (l.text.len(), l.cut)).collect();
        assert_eq!(
            sizes,
            vec![(5, false), (MAX_LOG_LINE, true), (MAX_LOG_LINE, true), (MAX_LOG_LINE, true), (10, false)]
        );
    }

    #[test]
    fn a_cut_never_splits_a_character() {
        let before = "a".repeat(MAX_LOG_LINE - 1);
        let all = split([out(&format!("{before}\u{e9}\u{1f600} and more\n"))]);
        assert_eq!(
            (all[0].text.as_str(), all[0].cut),
            (before.as_str(), true),
            "the cut moves back to the character's start"
        );
        assert_eq!(all[1].text, "\u{e9}\u{1f600} and more");
        assert!(all.iter().all(|l| !l.text.contains('\u{fffd}')));
    }

    #[test]
    fn a_character_split_between_frames_stays_whole_and_streams_stay_apart() {
        // "é" is C3 A9 and "😀" is F0 9F 98 80; the engine cuts its frames anywhere, timestamps on each.
        let frames = [
            out_bytes(b"2023-11-14T22:13:20.000000001Z caf\xc3"),
            err_bytes(b"2023-11-14T22:13:20.000000002Z x\xf0\x9f"),
            out_bytes(b"2023-11-14T22:13:20.000000003Z \xa9 ok\n"),
            err_bytes(b"2023-11-14T22:13:20.000000004Z \x98"),
            err_bytes(b"2023-11-14T22:13:20.000000005Z \x80\n"),
        ];
        let all = split(frames);
        assert_eq!(texts(&all), vec![("stdout", "caf\u{e9} ok"), ("stderr", "x\u{1f600}")]);
        let first = UNIX_EPOCH + Duration::new(1_700_000_000, 1);
        assert_eq!(all[0].at, Some(first), "a line keeps the time of its first frame");
        // Bytes that are not UTF-8 at all are still replaced, once the line is complete.
        assert_eq!(split([out_bytes(b"bin \xff\xfe end")])[0].text, "bin \u{fffd}\u{fffd} end");
    }

    #[test]
    fn a_secret_straddling_a_cut_is_redacted_when_the_pieces_are_joined_at_split_points() {
        let secret = "s\u{e9}cret-value-0123";
        let redactor = Redactor::new([("TOKEN", secret)]);
        for offset in 1..secret.len() {
            // The secret begins `offset` bytes before the cap, in a 16 KiB frame of its own.
            let line = format!("{}{secret} tail", "a".repeat(MAX_LOG_LINE - offset));
            let frames = line.as_bytes().chunks(16 * 1024).map(out_bytes).chain([out("\n")]);
            let pieces = split(frames);
            assert!(pieces[0].cut && !pieces[0].text.contains(secret), "offset {offset}: it straddles the cut");
            // As the relay joins them: the end of a cut piece that may begin a value goes in front of the next one.
            let mut relayed = Vec::new();
            let mut held = String::new();
            for piece in &pieces {
                let mut text = std::mem::take(&mut held) + &piece.text;
                if piece.cut {
                    held = text.split_off(redactor.split_point(&text));
                }
                relayed.push(redactor.redact(&text).into_owned());
            }
            assert_eq!(relayed.concat(), format!("{}[redacted:TOKEN] tail", "a".repeat(MAX_LOG_LINE - offset)));
        }
    }

    #[test]
    fn since_goes_to_the_engine_in_whole_seconds() {
        assert_eq!(whole_seconds(UNIX_EPOCH + Duration::from_millis(1_700_000_000_999)), Some(1_700_000_000));
        assert_eq!(whole_seconds(UNIX_EPOCH), None);
        assert_eq!(whole_seconds(UNIX_EPOCH + Duration::from_secs(u64::from(u32::MAX))), Some(i32::MAX));
    }
}
