//! A container's output through the engine's logs endpoint, as a stream of [`LogLine`]s.
//!
//! The engine is always asked for timestamps: each frame starts with the time the engine received that message
//! (RFC 3339 with nanoseconds), which becomes the line's `at`. The engine's own `since` takes whole seconds, so
//! slip passes the second and drops the earlier lines of it here, which makes `since` exact. Frames of stdout and
//! stderr are split into lines separately, so interleaved partial writes never merge.
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
use crate::ports::{Follow, LogLine, LogRequest, LogStream, OutputStream, RuntimeError};

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
#[derive(Default)]
pub(super) struct LogLines {
    stdout: Partial,
    stderr: Partial,
}

/// The unfinished last line of one output stream.
#[derive(Default)]
struct Partial {
    text: String,
    at: Option<SystemTime>,
}

impl LogLines {
    /// Adds one frame; returns the lines it completed.
    pub(super) fn push(&mut self, frame: &LogOutput) -> Vec<LogLine> {
        let (stream, partial, bytes) = match frame {
            LogOutput::StdErr { message } => (OutputStream::Stderr, &mut self.stderr, message),
            LogOutput::StdOut { message } | LogOutput::Console { message } | LogOutput::StdIn { message } => {
                (OutputStream::Stdout, &mut self.stdout, message)
            }
        };
        let text = String::from_utf8_lossy(bytes);
        let (at, text) = split_timestamp(&text);
        if partial.text.is_empty() {
            partial.at = at;
        }
        partial.text.push_str(text);
        let mut lines = Vec::new();
        while let Some(end) = partial.text.find('\n') {
            let line: String = partial.text.drain(..=end).collect();
            lines.push(LogLine { at: partial.at, stream, text: line.trim_end_matches(['\n', '\r']).to_owned() });
            // Whatever follows in this frame was written at this frame's time.
            partial.at = at;
        }
        lines
    }

    /// The unfinished lines, stdout's first, once the stream has ended.
    pub(super) fn finish(self) -> Vec<LogLine> {
        [(OutputStream::Stdout, self.stdout), (OutputStream::Stderr, self.stderr)]
            .into_iter()
            .filter(|(_, partial)| !partial.text.is_empty())
            .map(|(stream, partial)| LogLine { at: partial.at, stream, text: partial.text })
            .collect()
    }
}

/// The engine's `<RFC 3339 time> ` prefix, parsed, and the rest of the frame. A frame without one is all text.
fn split_timestamp(frame: &str) -> (Option<SystemTime>, &str) {
    match frame.split_once(' ') {
        Some((stamp, rest)) => match OffsetDateTime::parse(stamp, &Rfc3339) {
            Ok(at) => (Some(at.into()), rest),
            Err(_) => (None, frame),
        },
        None => (None, frame),
    }
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

    fn out(s: &str) -> LogOutput {
        LogOutput::StdOut { message: s.as_bytes().to_vec().into() }
    }

    fn err(s: &str) -> LogOutput {
        LogOutput::StdErr { message: s.as_bytes().to_vec().into() }
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
    fn since_goes_to_the_engine_in_whole_seconds() {
        assert_eq!(whole_seconds(UNIX_EPOCH + Duration::from_millis(1_700_000_000_999)), Some(1_700_000_000));
        assert_eq!(whole_seconds(UNIX_EPOCH), None);
        assert_eq!(whole_seconds(UNIX_EPOCH + Duration::from_secs(u64::from(u32::MAX))), Some(i32::MAX));
    }
}
