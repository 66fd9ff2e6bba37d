//! A container's output through the engine's logs endpoint, as a stream of [`LogLine`]s.
//!
//! The engine is always asked for timestamps: each frame starts with the time the engine received that message
//! (RFC 3339 with nanoseconds), which becomes the line's `at`. The engine's own `since` takes whole seconds, so
//! slip passes the second and drops the earlier lines of it here, which makes `since` exact. Frames become lines
//! in slip-core's [`LogLines`] (per stream, whole characters, long lines in marked pieces), which is fuzzed.
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

use super::API_TIMEOUT;
use super::errors::Answer;
use slip_core::log_lines::LogLines;

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
                Some(Ok(frame)) => self.pending.extend(push(&mut self.lines, &frame)),
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

/// Adds one engine frame to `lines`: stderr as stderr, everything else (a TTY's console output) as stdout.
fn push(lines: &mut LogLines, frame: &LogOutput) -> Vec<LogLine> {
    match frame {
        LogOutput::StdErr { message } => lines.push(OutputStream::Stderr, message),
        LogOutput::StdOut { message } | LogOutput::Console { message } | LogOutput::StdIn { message } => {
            lines.push(OutputStream::Stdout, message)
        }
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
    use crate::ports::MAX_LOG_LINE;
    use crate::redact::Redactor;

    fn out(s: &str) -> LogOutput {
        out_bytes(s.as_bytes())
    }

    fn out_bytes(bytes: &[u8]) -> LogOutput {
        LogOutput::StdOut { message: bytes.to_vec().into() }
    }

    /// Every line the frames give, the unfinished ones included.
    fn split(frames: impl IntoIterator<Item = LogOutput>) -> Vec<LogLine> {
        let mut lines = LogLines::default();
        let mut all = Vec::new();
        for frame in frames {
            all.extend(push(&mut lines, &frame));
        }
        all.extend(lines.finish());
        all
    }

    #[test]
    fn console_output_is_stdout_and_stderr_stays_apart() {
        let all = split([
            LogOutput::Console { message: b"tty\n".to_vec().into() },
            LogOutput::StdErr { message: b"err\n".to_vec().into() },
        ]);
        let got: Vec<(OutputStream, &str)> = all.iter().map(|l| (l.stream, l.text.as_str())).collect();
        assert_eq!(got, vec![(OutputStream::Stdout, "tty"), (OutputStream::Stderr, "err")]);
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
