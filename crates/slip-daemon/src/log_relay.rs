//! Relays container output to an HTTP client (SPEC §6.3, §11.4): the log streams of one or more containers
//! become one body of redacted lines, plain text or NDJSON, one chunk per line.
//!
//! Every line passes through the app's redactor before it is rendered. Plain text is the line alone, prefixed
//! with `<container> | ` when the body mixes several containers; NDJSON is a [`slip_api::LogLine`] per line.
//! Unfollowed streams are relayed one container after the other; followed ones are interleaved as lines
//! arrive, and the body ends when every container has stopped. Either way it ends as soon as slipd begins to
//! shut down (the `closing` token), so an open stream never holds up a graceful shutdown.
//!
//! This module neither chooses containers nor parses the request (`api::logs` does).

use std::sync::Arc;

use axum::body::Bytes;
use futures::stream::{self, BoxStream};
use futures::{Stream, StreamExt};
use slip_engine::ports::{Follow, LogLine, LogStream};
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
        let named: Vec<_> = sources
            .into_iter()
            .map(|source| {
                let name: Arc<str> = source.container.into();
                source.lines.map(move |line| (name.clone(), line)).boxed()
            })
            .collect();
        let merged: BoxStream<'static, _> = match self.follow {
            Follow::No => stream::iter(named).flatten().boxed(),
            Follow::UntilStopped => stream::select_all(named).boxed(),
        };
        let (format, redactor) = (self.format, self.redactor);
        merged
            .map(move |(container, line)| match line {
                Ok(line) => Ok(render(&container, prefixed, &line, format, &redactor)),
                Err(error) => {
                    let error = redactor.redact(&error.to_string()).into_owned();
                    tracing::warn!(container = %container, %error, "a container log stream broke off");
                    Err(std::io::Error::other(format!("the log stream of {container} broke off: {error}")))
                }
            })
            .take_until(self.closing.cancelled_owned())
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
            .map(|t| Ok(LogLine { at: None, stream: OutputStream::Stdout, text: (*t).to_owned() }))
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
        let line = LogLine { at: Some(at), stream: OutputStream::Stderr, text: "x secret-value-1".into() };
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
