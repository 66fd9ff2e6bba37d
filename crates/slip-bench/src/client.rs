//! The load generator's clients: each one keeps one HTTP/1.1 keep-alive connection and sends `GET`s
//! on it back to back, and classifies every request as a [`Sample`].
//!
//! Connections are driven with hyper's low-level `client::conn::http1`, over a socket that counts the
//! bytes it reads, so a client knows for each failed request whether the connection had carried an
//! earlier request (it was *reused*) and whether any byte of the answer had arrived. A reused
//! connection that fails before any answer byte is a keep-alive race (RFC 9112 §9.3.1): the server
//! closed the idle connection while the request was on its way. Such a request was never processed,
//! so a lenient client retries it once on a new connection; a strict client reports it as failed.
//! One run gives both views: the first attempt is the strict client's, the retry the lenient one's.
//! A connection the client sees closed *before* it sends is replaced silently, as any pool does.
//! After an error a client waits at least 10 ms before its next request.
//!
//! It speaks plain `http://` only (benchmarks target loopback) and does no pipelining.

use std::collections::BTreeMap;
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

/// Where and how to send requests.
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
}

/// A URL or `Host` value the load generator cannot use.
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
}

impl Target {
    /// A target from an `http://` URL (port defaults to 80) and a `Host` header value.
    pub fn new(url: &str, host: &str, timeout: Duration, pause: Duration) -> Result<Target, TargetError> {
        let bad = |reason: &str| TargetError::Url { url: url.to_owned(), reason: reason.to_owned() };
        let uri: hyper::Uri = url.parse().map_err(|e: hyper::http::uri::InvalidUri| bad(&e.to_string()))?;
        if uri.scheme_str() != Some("http") {
            return Err(bad("the scheme must be http"));
        }
        let authority = uri.authority().ok_or_else(|| bad("it has no host"))?;
        let authority = format!("{}:{}", authority.host(), authority.port_u16().unwrap_or(80));
        let path = uri.path_and_query().map(|p| p.as_str().to_owned()).unwrap_or_else(|| "/".to_owned());
        let host = HeaderValue::from_str(host).map_err(|_| TargetError::Host { host: host.to_owned() })?;
        Ok(Target { authority, path, host, timeout, pause })
    }
}

/// What one client saw: its samples by time, and its error messages with their counts.
#[derive(Debug, Default, Clone)]
pub struct ClientResult {
    /// Samples by the time their request was sent.
    pub timeline: Timeline,
    /// Error and race messages (`race: …` for races), with how often each occurred.
    pub messages: BTreeMap<String, u64>,
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
    let mut conn: Option<Conn> = None;
    let mut sent = 0u64;
    while !*stop.borrow() && limit.is_none_or(|l| sent < l) {
        let at = clock();
        let sample = match attempt(&target, &mut conn).await {
            Attempt::Answered(status) if (200..300).contains(&status) => Sample::Success,
            Attempt::Answered(status) => {
                result.note(format!("HTTP {status}"));
                Sample::NonSuccess
            }
            Attempt::Failed { reused: true, answer_bytes: false, error } => {
                result.note(format!("race: {error}"));
                conn = None;
                let recovered =
                    matches!(attempt(&target, &mut conn).await, Attempt::Answered(s) if (200..300).contains(&s));
                Sample::Race { recovered }
            }
            Attempt::Failed { reused, answer_bytes, error } => {
                let on = if reused { "reused connection" } else { "new connection" };
                let bytes = if answer_bytes { ", after part of the answer" } else { "" };
                result.note(format!("{error} ({on}{bytes})"));
                conn = None;
                Sample::Error
            }
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
    /// A complete answer with this status.
    Answered(u16),
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

/// Sends one request on `conn`, opening a connection first when there is none or the open one is
/// known to be closed. On failure the caller drops the connection.
async fn attempt(target: &Target, conn: &mut Option<Conn>) -> Attempt {
    match tokio::time::timeout(target.timeout, attempt_inner(target, conn)).await {
        Ok(attempt) => attempt,
        Err(_) => Attempt::Failed {
            reused: conn.as_ref().is_some_and(|c| c.answered > 0),
            answer_bytes: true,
            error: format!("no complete answer within {:?}", target.timeout),
        },
    }
}

async fn attempt_inner(target: &Target, slot: &mut Option<Conn>) -> Attempt {
    if let Some(open) = slot.as_mut()
        && open.sender.ready().await.is_err()
    {
        *slot = None;
    }
    if slot.is_none() {
        match connect(&target.authority).await {
            Ok(fresh) => *slot = Some(fresh),
            Err(error) => {
                return Attempt::Failed { reused: false, answer_bytes: false, error: format!("connect: {error}") };
            }
        }
    }
    let conn = slot.as_mut().expect("connected above");
    let reused = conn.answered > 0;
    let before = conn.read.load(Ordering::SeqCst);
    let request = Request::get(target.path.as_str())
        .header(HOST, target.host.clone())
        .body(Empty::<Bytes>::new())
        .expect("a GET with a valid path and Host is a valid request");
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
    if let Err(error) = response.into_body().collect().await {
        return failed(conn, format!("reading the body: {}", describe(&error)));
    }
    conn.answered += 1;
    Attempt::Answered(status)
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
    fn targets_need_an_http_url_and_a_valid_host() {
        let t =
            Target::new("http://127.0.0.1:8080/health?x=1", "app.localhost", Duration::ZERO, Duration::ZERO).unwrap();
        assert_eq!((t.authority.as_str(), t.path.as_str()), ("127.0.0.1:8080", "/health?x=1"));
        let t = Target::new("http://localhost", "a", Duration::ZERO, Duration::ZERO).unwrap();
        assert_eq!((t.authority.as_str(), t.path.as_str()), ("localhost:80", "/"));
        let https = Target::new("https://x/", "a", Duration::ZERO, Duration::ZERO).unwrap_err();
        assert!(https.to_string().contains("the scheme must be http"), "{https}");
        assert!(Target::new("/relative", "a", Duration::ZERO, Duration::ZERO).is_err());
        assert!(matches!(
            Target::new("http://x/", "bad\nhost", Duration::ZERO, Duration::ZERO),
            Err(TargetError::Host { .. })
        ));
    }
}
