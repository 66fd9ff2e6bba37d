//! The load generator's clients: each one keeps one HTTP/1.1 keep-alive connection and sends `GET`s
//! on it back to back, and classifies every request as a [`Sample`].
//!
//! Connections are driven with hyper's low-level `client::conn::http1`, over a socket that counts the
//! bytes it reads, so a [`Client`] knows for each failed request whether the connection had carried an
//! earlier request (it was *reused*) and whether any byte of the answer had arrived. A reused
//! connection that fails before any answer byte is a keep-alive race (RFC 9112 §9.3.1): the server
//! closed the idle connection while the request was on its way. Such a request was never processed,
//! so a lenient client retries it once on a new connection; a strict client reports it as failed.
//! One run gives both views: the first attempt is the strict client's, the retry the lenient one's.
//! Every other failure (a fresh connection closed, part of an answer, a timeout) is never retried.
//! A connection the client sees closed *before* it sends is replaced silently, as any pool does.
//! After an error a client waits at least 10 ms before its next request.
//!
//! A 2xx answer counts as a success only when its body (without surrounding whitespace) is one of the
//! target's known bodies: a proxy that answers an unrouted host with an empty 200, or a stale or foreign
//! upstream, must not pass for a served request.
//!
//! It speaks plain `http://` only (benchmarks target loopback) and does no pipelining.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use http_body_util::{BodyExt, Empty};
use hyper::Request;
use hyper::body::Bytes;
use hyper::client::conn::http1::{self, SendRequest};
use hyper::header::{HOST, HeaderValue};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::watch;

use crate::report::{Sample, Timeline};

/// At most this many distinct error messages are kept per client (the counts are always exact).
const MAX_DISTINCT_ERRORS: usize = 20;

/// The least a client waits after an error before its next request, so that a target that is down does
/// not turn the clients into a busy loop that takes the CPU from what is being measured.
const ERROR_BACKOFF: Duration = Duration::from_millis(10);

/// Where and how to send requests, and which answers are right.
#[derive(Debug, Clone)]
pub struct Target {
    /// `host:port` to connect to.
    pub authority: String,
    /// Path and query of every request.
    pub path: String,
    /// The `Host` header (the route's hostname in Caddy).
    pub host: HeaderValue,
    /// Bound on one attempt: connect, request and the whole answer.
    pub timeout: Duration,
    /// Pause between two requests of one client (zero: back to back).
    pub pause: Duration,
    /// The bodies a right answer may have (compared without surrounding whitespace), such as every
    /// release's `/version`.
    pub bodies: BTreeSet<String>,
}

/// A URL, `Host` value or body list the load generator cannot use.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    /// Not an absolute `http://host:port/path` URL.
    #[error("{url:?} is not an absolute http:// URL such as http://127.0.0.1:8080/ ({reason})")]
    Url {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Not a valid header value.
    #[error("{host:?} is not a valid Host header value (use a hostname such as app.localhost)")]
    Host {
        /// The value as given.
        host: String,
    },
    /// No known body, so no answer could be judged right.
    #[error("no expected body given: name every body a right answer may have (such as each release's version)")]
    NoBodies,
}

impl Target {
    /// A target from an `http://` URL (port defaults to 80), a `Host` header value and the bodies a
    /// right answer may have (at least one; surrounding whitespace is ignored).
    pub fn new<B: AsRef<str>>(
        url: &str,
        host: &str,
        timeout: Duration,
        pause: Duration,
        bodies: impl IntoIterator<Item = B>,
    ) -> Result<Target, TargetError> {
        let bad = |reason: &str| TargetError::Url { url: url.to_owned(), reason: reason.to_owned() };
        let uri: hyper::Uri = url.parse().map_err(|e: hyper::http::uri::InvalidUri| bad(&e.to_string()))?;
        if uri.scheme_str() != Some("http") {
            return Err(bad("the scheme must be http"));
        }
        let authority = uri.authority().ok_or_else(|| bad("it has no host"))?;
        let authority = format!("{}:{}", authority.host(), authority.port_u16().unwrap_or(80));
        let path = uri.path_and_query().map(|p| p.as_str().to_owned()).unwrap_or_else(|| "/".to_owned());
        let host = HeaderValue::from_str(host).map_err(|_| TargetError::Host { host: host.to_owned() })?;
        let bodies: BTreeSet<String> = bodies.into_iter().map(|b| b.as_ref().trim().to_owned()).collect();
        if bodies.is_empty() {
            return Err(TargetError::NoBodies);
        }
        Ok(Target { authority, path, host, timeout, pause, bodies })
    }

    /// Whether `body` is one of the known bodies.
    pub fn knows(&self, body: &str) -> bool {
        self.bodies.contains(body.trim())
    }
}

/// What one client saw: its samples by time, its error messages with their counts, and how often each
/// known body answered.
#[derive(Debug, Default, Clone)]
pub struct ClientResult {
    /// Samples by the time their request was sent.
    pub timeline: Timeline,
    /// Error and race messages (`race: …` for races), with how often each occurred.
    pub messages: BTreeMap<String, u64>,
    /// Right answers (first attempts and recovered races) by body, without surrounding whitespace.
    pub bodies: BTreeMap<String, u64>,
}

impl ClientResult {
    fn note(&mut self, message: String) {
        let known = self.messages.len() < MAX_DISTINCT_ERRORS || self.messages.contains_key(&message);
        let key = if known { message } else { "(other messages)".to_owned() };
        *self.messages.entry(key).or_default() += 1;
    }

    /// Adds another client's result to this one.
    pub fn merge(&mut self, other: &ClientResult) {
        self.timeline.merge(&other.timeline);
        for (message, n) in &other.messages {
            *self.messages.entry(message.clone()).or_default() += n;
        }
        for (body, n) in &other.bodies {
            *self.bodies.entry(body.clone()).or_default() += n;
        }
    }

    /// Judges an answer against `target`: true for a 2xx with a known body (counted in `bodies`).
    fn judge(&mut self, target: &Target, outcome: &Outcome) -> bool {
        match outcome {
            Outcome::Answered { status, body } if (200..300).contains(status) => {
                if target.knows(body) {
                    *self.bodies.entry(body.trim().to_owned()).or_default() += 1;
                    true
                } else {
                    self.note(format!("HTTP {status} with an unknown body {:?}", shorten(body)));
                    false
                }
            }
            Outcome::Answered { status, .. } => {
                self.note(format!("HTTP {status}"));
                false
            }
            Outcome::Race { error } => {
                self.note(format!("race: {error}"));
                false
            }
            Outcome::Failed { error } => {
                self.note(error.clone());
                false
            }
        }
    }
}

/// Runs one client until `stop` turns true (checked before each request) or it has sent `limit`
/// requests. `clock` gives Unix milliseconds for the timeline.
pub async fn run_client(
    target: Arc<Target>,
    mut stop: watch::Receiver<bool>,
    limit: Option<u64>,
    clock: fn() -> i64,
) -> ClientResult {
    let mut result = ClientResult::default();
    let mut client = Client::new(&target.authority, target.timeout);
    let mut sent = 0u64;
    while !*stop.borrow() && limit.is_none_or(|l| sent < l) {
        let at = clock();
        let outcome = client.get(&target.path, &target.host).await;
        let right = result.judge(&target, &outcome);
        let sample = match outcome {
            _ if right => Sample::Success,
            Outcome::Answered { status, .. } if (200..300).contains(&status) => Sample::WrongBody,
            Outcome::Answered { .. } => Sample::NonSuccess,
            Outcome::Race { .. } => {
                let retry = client.get(&target.path, &target.host).await;
                Sample::Race { recovered: result.judge(&target, &retry) }
            }
            Outcome::Failed { .. } => Sample::Error,
        };
        result.timeline.record(at, sample);
        sent += 1;
        let pause = if sample == Sample::Error { target.pause.max(ERROR_BACKOFF) } else { target.pause };
        if !pause.is_zero() {
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = stop.changed() => {}
            }
        }
    }
    result
}

/// The first 60 characters of `body`, for messages.
fn shorten(body: &str) -> String {
    let mut short: String = body.chars().take(60).collect();
    if short.len() < body.len() {
        short.push('…');
    }
    short
}

/// What became of one `GET`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A complete answer.
    Answered {
        /// Its status.
        status: u16,
        /// Its whole body (lossily decoded as UTF-8).
        body: String,
    },
    /// A keep-alive race: the connection had answered an earlier request and was closed before any
    /// byte of this answer arrived, so the request was never processed (RFC 9112 §9.3.1).
    Race {
        /// What went wrong.
        error: String,
    },
    /// Any other failure: a connect error, a fresh connection closed, part of an answer, a timeout.
    Failed {
        /// What went wrong, and on which kind of connection.
        error: String,
    },
}

/// One HTTP/1.1 keep-alive client: sends `GET`s one at a time on one connection, opening a new one
/// when there is none or the last request failed.
pub struct Client {
    authority: String,
    timeout: Duration,
    conn: Option<Conn>,
}

impl Client {
    /// A client for `authority` (`host:port`); `timeout` bounds each attempt (connect, request, whole
    /// answer). Nothing connects before the first request.
    pub fn new(authority: &str, timeout: Duration) -> Client {
        Client { authority: authority.to_owned(), timeout, conn: None }
    }

    /// Sends `GET path` with `Host: host` once and says what became of it; never retries.
    pub async fn get(&mut self, path: &str, host: &HeaderValue) -> Outcome {
        let attempt =
            match tokio::time::timeout(self.timeout, attempt(&self.authority, &mut self.conn, path, host)).await {
                Ok(attempt) => attempt,
                Err(_) => Attempt::Failed {
                    reused: self.conn.as_ref().is_some_and(|c| c.answered > 0),
                    answer_bytes: true,
                    error: format!("no complete answer within {:?}", self.timeout),
                },
            };
        match attempt {
            Attempt::Answered { status, body } => Outcome::Answered { status, body },
            Attempt::Failed { reused: true, answer_bytes: false, error } => {
                self.conn = None;
                Outcome::Race { error }
            }
            Attempt::Failed { reused, answer_bytes, error } => {
                self.conn = None;
                let on = if reused { "reused connection" } else { "new connection" };
                let bytes = if answer_bytes { ", after part of the answer" } else { "" };
                Outcome::Failed { error: format!("{error} ({on}{bytes})") }
            }
        }
    }

    /// Like [`Client::get`], but a keep-alive race is retried once on a new connection, as RFC 9112
    /// §9.3.1 allows for an idempotent request; the retry's outcome is returned. Nothing else is retried.
    pub async fn get_retrying_a_race(&mut self, path: &str, host: &HeaderValue) -> Outcome {
        match self.get(path, host).await {
            Outcome::Race { .. } => self.get(path, host).await,
            outcome => outcome,
        }
    }
}

/// One keep-alive connection.
struct Conn {
    sender: SendRequest<Empty<Bytes>>,
    /// Bytes read from the socket so far.
    read: Arc<AtomicU64>,
    /// Requests answered on it so far.
    answered: u64,
}

/// The result of one attempt at one request.
#[derive(Debug)]
enum Attempt {
    /// A complete answer.
    Answered { status: u16, body: String },
    /// No complete answer.
    Failed {
        /// The connection had answered an earlier request.
        reused: bool,
        /// Some byte arrived after the request was handed to the connection.
        answer_bytes: bool,
        /// What went wrong.
        error: String,
    },
}

/// Sends one request on `slot`, opening a connection first when there is none or the open one is
/// known to be closed. On failure the caller drops the connection.
async fn attempt(authority: &str, slot: &mut Option<Conn>, path: &str, host: &HeaderValue) -> Attempt {
    if let Some(open) = slot.as_mut()
        && open.sender.ready().await.is_err()
    {
        *slot = None;
    }
    if slot.is_none() {
        match connect(authority).await {
            Ok(fresh) => *slot = Some(fresh),
            Err(error) => {
                return Attempt::Failed { reused: false, answer_bytes: false, error: format!("connect: {error}") };
            }
        }
    }
    let conn = slot.as_mut().expect("connected above");
    let reused = conn.answered > 0;
    let before = conn.read.load(Ordering::SeqCst);
    let request = match Request::get(path).header(HOST, host.clone()).body(Empty::<Bytes>::new()) {
        Ok(request) => request,
        Err(error) => {
            return Attempt::Failed { reused, answer_bytes: false, error: format!("bad request {path:?}: {error}") };
        }
    };
    let failed = |conn: &Conn, error: String| Attempt::Failed {
        reused,
        answer_bytes: conn.read.load(Ordering::SeqCst) > before,
        error,
    };
    let response = match conn.sender.send_request(request).await {
        Ok(response) => response,
        Err(error) => return failed(conn, describe(&error)),
    };
    let status = response.status().as_u16();
    let body = match response.into_body().collect().await {
        Ok(collected) => String::from_utf8_lossy(&collected.to_bytes()).into_owned(),
        Err(error) => return failed(conn, format!("reading the body: {}", describe(&error))),
    };
    conn.answered += 1;
    Attempt::Answered { status, body }
}

/// hyper's error followed by its IO cause, when there is one.
fn describe(error: &hyper::Error) -> String {
    match std::error::Error::source(error) {
        Some(cause) => format!("{error}: {cause}"),
        None => error.to_string(),
    }
}

async fn connect(authority: &str) -> io::Result<Conn> {
    let stream = TcpStream::connect(authority).await?;
    stream.set_nodelay(true)?;
    let read = Arc::new(AtomicU64::new(0));
    let io = TokioIo::new(Counted { inner: stream, read: read.clone() });
    let (sender, connection) = http1::handshake(io).await.map_err(io::Error::other)?;
    tokio::spawn(async move {
        // The error, if any, reaches the request that was in flight; nothing to add here.
        let _ = connection.await;
    });
    Ok(Conn { sender, read, answered: 0 })
}

/// A TCP stream that counts the bytes read from it.
struct Counted {
    inner: TcpStream,
    read: Arc<AtomicU64>,
}

impl AsyncRead for Counted {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = polled {
            this.read.fetch_add((buf.filled().len() - before) as u64, Ordering::SeqCst);
        }
        polled
    }
}

impl AsyncWrite for Counted {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_need_an_http_url_a_valid_host_and_a_known_body() {
        let t = |url: &str, host: &str| Target::new(url, host, Duration::ZERO, Duration::ZERO, ["v1"]);
        let target = t("http://127.0.0.1:8080/health?x=1", "app.localhost").unwrap();
        assert_eq!((target.authority.as_str(), target.path.as_str()), ("127.0.0.1:8080", "/health?x=1"));
        let target = t("http://localhost", "a").unwrap();
        assert_eq!((target.authority.as_str(), target.path.as_str()), ("localhost:80", "/"));
        let https = t("https://x/", "a").unwrap_err();
        assert!(https.to_string().contains("the scheme must be http"), "{https}");
        assert!(t("/relative", "a").is_err());
        assert!(matches!(t("http://x/", "bad\nhost"), Err(TargetError::Host { .. })));
        let none = Target::new("http://x/", "a", Duration::ZERO, Duration::ZERO, Vec::<String>::new());
        assert!(matches!(none, Err(TargetError::NoBodies)));
    }

    #[test]
    fn bodies_are_known_without_surrounding_whitespace_and_empty_is_never_known() {
        let target = Target::new("http://x/", "a", Duration::ZERO, Duration::ZERO, ["v1\n", " v2"]).unwrap();
        assert!(target.knows("v1") && target.knows("v2\n") && target.knows("  v1 "));
        assert!(!target.knows("") && !target.knows("v3") && !target.knows("v1v2"));
        let mut result = ClientResult::default();
        let empty = Outcome::Answered { status: 200, body: String::new() };
        assert!(!result.judge(&target, &empty), "an empty 200 (Caddy's answer for an unrouted host) is wrong");
        assert!(result.judge(&target, &Outcome::Answered { status: 200, body: "v2\n".into() }));
        assert!(!result.judge(&target, &Outcome::Answered { status: 503, body: "v2".into() }));
        assert_eq!(result.bodies, BTreeMap::from([("v2".to_owned(), 1)]));
        let messages: Vec<&str> = result.messages.keys().map(String::as_str).collect();
        assert_eq!(messages, ["HTTP 200 with an unknown body \"\"", "HTTP 503"]);
    }
}
