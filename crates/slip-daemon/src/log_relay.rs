//! Relays container output to an HTTP client (SPEC §6.3, §11.4): the log streams of one or more containers
//! become one body of redacted lines, plain text or NDJSON, one chunk per line.
//!
//! Every line passes through the app's redactor before it is rendered. Plain text is the line alone, prefixed
//! with `<container> | ` when the body mixes several containers; NDJSON is a [`slip_api::LogLine`] per line.
//! Unfollowed streams are relayed one container after the other; followed ones are interleaved as lines
//! arrive, and the body ends when every container has stopped. Either way it ends as soon as slipd begins to
//! shut down (the `closing` token), so an open stream never holds up a graceful shutdown.
//!
//! A line longer than [`slip_engine::ports::MAX_LOG_LINE`] arrives in pieces and is relayed as several lines,
//! unmarked, cut where no secret value straddles the cut: the end of each piece that might begin a value is
//! held back (per container and output stream) and relayed in front of the next piece, or on its own when the
//! container's stream ends.
//!
//! This module neither chooses containers nor parses the request (`api::logs` does).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::SystemTime;

use axum::body::Bytes;
use futures::stream::{self, BoxStream};
use futures::{Stream, StreamExt};
use slip_engine::ports::{Follow, LogLine, LogStream, OutputStream, RuntimeError};
use slip_engine::redact::Redactor;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio_util::sync::CancellationToken;

/// How lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `text/plain`: the line, after `<container> | ` when there are several containers.
    Text,
    /// `application/x-ndjson`: one `{"at","stream","container","line"}` object per line.
    Ndjson,
}

impl Format {
    /// The `Content-Type` of a body in this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Text => "text/plain; charset=utf-8",
            Format::Ndjson => "application/x-ndjson",
        }
    }
}

/// One container's output, named.
pub struct Source {
    /// The container's name, as shown in prefixes and in NDJSON.
    pub container: String,
    /// Its lines.
    pub lines: LogStream,
}

/// How to relay a set of sources.
pub struct Relay {
    /// Whether the sources are followed (interleaved) or read to their end one after the other.
    pub follow: Follow,
    /// How lines are written.
    pub format: Format,
    /// The app's redactor; every line passes through it.
    pub redactor: Redactor,
    /// Ends the body when slipd begins to shut down.
    pub closing: CancellationToken,
}

impl Relay {
    /// The response body for `sources`. An engine error ends the body with an error, so the client sees a
    /// broken transfer rather than a complete one; it is logged here with the container's name.
    pub fn body(self, sources: Vec<Source>) -> impl Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static {
        let prefixed = sources.len() > 1;
        // Each source ends with a `None`, which releases what is held back of its cut lines.
        let named: Vec<_> = sources
            .into_iter()
            .map(|source| {
                let name: Arc<str> = source.container.into();
                let end = stream::iter([(name.clone(), None)]);
                source.lines.map(move |line| (name.clone(), Some(line))).chain(end).boxed()
            })
            .collect();
        let merged: BoxStream<'static, _> = match self.follow {
            Follow::No => stream::iter(named).flatten().boxed(),
            Follow::UntilStopped => stream::select_all(named).boxed(),
        };
        let mut lines = Lines { format: self.format, prefixed, redactor: self.redactor, held: HashMap::new() };
        merged
            .flat_map(move |(container, item)| stream::iter(lines.relay(&container, item)))
            .take_until(self.closing.cancelled_owned())
    }
}

/// Renders the lines of one body, holding back the end of each cut line until the rest of it arrives.
struct Lines {
    format: Format,
    prefixed: bool,
    redactor: Redactor,
    /// Per container and output stream, the end of a cut line that might begin a secret value.
    held: HashMap<(Arc<str>, OutputStream), Held>,
}

/// The held-back end of a cut line.
struct Held {
    /// The time of the line it belongs to.
    at: Option<SystemTime>,
    text: String,
}

impl Lines {
    /// The chunks for one item of `container`'s stream (`None` at its end).
    fn relay(
        &mut self,
        container: &Arc<str>,
        item: Option<Result<LogLine, RuntimeError>>,
    ) -> Vec<Result<Bytes, std::io::Error>> {
        match item {
            Some(Ok(line)) => self.line(container, line).into_iter().map(Ok).collect(),
            None => self.release(container).into_iter().map(Ok).collect(),
            Some(Err(error)) => {
                let error = self.redactor.redact(&error.to_string()).into_owned();
                tracing::warn!(container = %container, %error, "a container log stream broke off");
                let broken = std::io::Error::other(format!("the log stream of {container} broke off: {error}"));
                self.release(container).into_iter().map(Ok).chain([Err(broken)]).collect()
            }
        }
    }

    /// One line, joined to what is held back of its stream; `None` when all of it is held back.
    fn line(&mut self, container: &Arc<str>, line: LogLine) -> Option<Bytes> {
        let key = (container.clone(), line.stream);
        let held = self.held.remove(&key);
        if held.is_none() && !line.cut {
            return Some(self.render(container, &line));
        }
        let (at, mut text) = match held {
            Some(held) => (held.at, held.text + &line.text),
            None => (line.at, line.text.clone()),
        };
        if line.cut {
            let rest = text.split_off(self.redactor.split_point(&text));
            if !rest.is_empty() {
                self.held.insert(key, Held { at, text: rest });
            }
        }
        (!text.is_empty()).then(|| self.render(container, &LogLine { at, stream: line.stream, text, cut: false }))
    }

    /// What is held back of `container`'s streams, stdout's first, now that its stream has ended.
    fn release(&mut self, container: &Arc<str>) -> Vec<Bytes> {
        [OutputStream::Stdout, OutputStream::Stderr]
            .into_iter()
            .filter_map(|stream| {
                let held = self.held.remove(&(container.clone(), stream))?;
                Some(self.render(container, &LogLine { at: held.at, stream, text: held.text, cut: false }))
            })
            .collect()
    }

    fn render(&self, container: &str, line: &LogLine) -> Bytes {
        render(container, self.prefixed, line, self.format, &self.redactor)
    }
}

/// One line as the client sees it, line ending included.
fn render(container: &str, prefixed: bool, line: &LogLine, format: Format, redactor: &Redactor) -> Bytes {
    let text = redactor.redact(&line.text);
    let mut out = match format {
        Format::Text if prefixed => format!("{container} | {text}"),
        Format::Text => text.into_owned(),
        Format::Ndjson => {
            let wire = slip_api::LogLine {
                at: line.at.and_then(|at| OffsetDateTime::from(at).format(&Rfc3339).ok()),
                stream: line.stream.as_str().to_owned(),
                container: container.to_owned(),
                line: text.into_owned(),
            };
            serde_json::to_string(&wire).unwrap_or_else(|_| "{}".to_owned())
        }
    };
    out.push('\n');
    Bytes::from(out)
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use slip_engine::ports::{OutputStream, RuntimeError};

    use super::*;

    fn lines(texts: &[&str]) -> LogStream {
        let lines: Vec<Result<LogLine, RuntimeError>> = texts
            .iter()
            .map(|t| Ok(LogLine { at: None, stream: OutputStream::Stdout, text: (*t).to_owned(), cut: false }))
            .collect();
        stream::iter(lines).boxed()
    }

    fn relay(follow: Follow, format: Format) -> Relay {
        Relay {
            follow,
            format,
            redactor: Redactor::new([("TOKEN", "secret-value-1")]),
            closing: CancellationToken::new(),
        }
    }

    async fn collect(body: impl Stream<Item = Result<Bytes, std::io::Error>>) -> Vec<String> {
        body.map(|chunk| String::from_utf8(chunk.unwrap().to_vec()).unwrap()).collect().await
    }

    #[tokio::test]
    async fn one_container_is_plain_and_several_are_prefixed_one_after_the_other() {
        let one = vec![Source { container: "web-1".into(), lines: lines(&["a secret-value-1 b", "c"]) }];
        let body = relay(Follow::No, Format::Text).body(one);
        assert_eq!(collect(body).await, vec!["a [redacted:TOKEN] b\n", "c\n"]);

        let two = vec![
            Source { container: "web-1".into(), lines: lines(&["a", "b"]) },
            Source { container: "worker-1".into(), lines: lines(&["c"]) },
        ];
        let body = relay(Follow::No, Format::Text).body(two);
        assert_eq!(collect(body).await, vec!["web-1 | a\n", "web-1 | b\n", "worker-1 | c\n"]);
    }

    #[tokio::test]
    async fn ndjson_carries_time_stream_container_and_the_redacted_line() {
        let at = UNIX_EPOCH + Duration::new(1_700_000_000, 123_456_789);
        let line = LogLine { at: Some(at), stream: OutputStream::Stderr, text: "x secret-value-1".into(), cut: false };
        let source = Source { container: "web-1".into(), lines: stream::iter([Ok(line)]).boxed() };
        let body = collect(relay(Follow::No, Format::Ndjson).body(vec![source])).await;
        let got: serde_json::Value = serde_json::from_str(&body[0]).unwrap();
        assert_eq!(
            got,
            serde_json::json!({"at": "2023-11-14T22:13:20.123456789Z", "stream": "stderr", "container": "web-1",
                               "line": "x [redacted:TOKEN]"})
        );
        assert!(body[0].ends_with('\n'));
    }

    #[tokio::test]
    async fn a_secret_straddling_the_cut_of_a_long_line_is_redacted_and_streams_are_not_joined() {
        let line = |stream, text: &str| Ok(LogLine { at: None, stream, text: text.to_owned(), cut: false });
        let piece = |stream, text: &str| Ok(LogLine { at: None, stream, text: text.to_owned(), cut: true });
        let x = "x".repeat(40);
        let web = vec![
            // A line cut by the engine with the secret across the cut, then its last piece.
            piece(OutputStream::Stdout, &format!("{x}secret-va")),
            line(OutputStream::Stderr, "lue-1 on stderr"),
            line(OutputStream::Stdout, "lue-1 and more"),
            // A cut line whose stream ends before its last piece.
            piece(OutputStream::Stdout, &format!("{x}secret-")),
        ];
        let worker = vec![line(OutputStream::Stdout, "value-1 from another container")];
        let sources = vec![
            Source { container: "web-1".into(), lines: stream::iter(web).boxed() },
            Source { container: "worker-1".into(), lines: stream::iter(worker).boxed() },
        ];
        let body = collect(relay(Follow::No, Format::Text).body(sources)).await;
        // What may begin the secret (its length less one byte) waits for the rest of the line.
        let expected = [
            format!("web-1 | {}\n", "x".repeat(36)),
            "web-1 | lue-1 on stderr\n".to_owned(),
            "web-1 | xxxx[redacted:TOKEN] and more\n".to_owned(),
            format!("web-1 | {}\n", "x".repeat(34)),
            "web-1 | xxxxxxsecret-\n".to_owned(),
            "worker-1 | value-1 from another container\n".to_owned(),
        ];
        assert_eq!(body, expected);

        // Without secrets, nothing is held back.
        let cut = vec![piece(OutputStream::Stdout, &x), line(OutputStream::Stdout, "end")];
        let source = Source { container: "web-1".into(), lines: stream::iter(cut).boxed() };
        let plain = Relay { redactor: Redactor::default(), ..relay(Follow::No, Format::Text) };
        assert_eq!(collect(plain.body(vec![source])).await, vec![format!("{x}\n"), "end\n".to_owned()]);
    }

    #[tokio::test]
    async fn a_followed_body_ends_when_slipd_shuts_down() {
        let relay = relay(Follow::UntilStopped, Format::Text);
        let closing = relay.closing.clone();
        let silent = Source { container: "web-1".into(), lines: lines(&["first"]).chain(stream::pending()).boxed() };
        let mut body = Box::pin(relay.body(vec![silent]));
        assert_eq!(body.next().await.unwrap().unwrap(), "first\n");
        closing.cancel();
        let end = tokio::time::timeout(Duration::from_secs(5), body.next()).await;
        assert!(matches!(end, Ok(None)), "the body ends at shutdown");
    }

    #[tokio::test]
    async fn an_engine_error_breaks_the_body() {
        let failing: Vec<Result<LogLine, RuntimeError>> =
            vec![Err(RuntimeError::Rejected { op: "logs", target: "web-1".into(), message: "boom".into() })];
        let source = Source { container: "web-1".into(), lines: stream::iter(failing).boxed() };
        let mut body = Box::pin(relay(Follow::No, Format::Text).body(vec![source]));
        assert!(body.next().await.unwrap().is_err());
    }
}
