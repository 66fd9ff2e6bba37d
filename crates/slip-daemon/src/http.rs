//! slipd's HTTP server: accepts connections and serves the router on them within the bounds of SPEC §6.1.
//!
//! - Headers must arrive within [`Limits::header_timeout`]; the same deadline bounds a keep-alive connection that
//!   waits for its next request, so idle and slowloris connections are closed (hyper's header read timeout, which
//!   starts whenever the connection waits for a request head).
//! - A request body is read whole, up to [`Limits::body_limit`] bytes (413 past it, chunked or not) and within
//!   [`Limits::body_timeout`] (408 after it), before the router sees the request. Every handler therefore gets a
//!   complete body and never waits on a slow client.
//! - At most [`Limits::max_connections`] connections are open. When a new one arrives at the cap, the connection
//!   that has waited longest without a request being handled (idle, still sending headers, or still sending a
//!   body) is closed to make room, so a crowd of slow or idle connections cannot keep a signed webhook out. When
//!   every connection is busy with a request, the new one waits for a slot.
//!
//! This module knows nothing about routes, auth or the JSON error shape beyond the two answers it gives itself.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{HeaderValue, Request, Response, header};
use axum::response::IntoResponse;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use crate::error::ApiError;

/// The bounds the server applies. [`Limits::default`] is SPEC §6.1.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Time to receive a request's headers, counted from when the connection starts waiting for them (so it also
    /// bounds idle keep-alive connections).
    pub header_timeout: Duration,
    /// Time to receive a request's body once its headers are in.
    pub body_timeout: Duration,
    /// Largest request body, in bytes.
    pub body_limit: usize,
    /// Open connections at most.
    pub max_connections: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(10),
            body_limit: crate::BODY_LIMIT,
            max_connections: 256,
        }
    }
}

/// Serves `router` on `listener` within `limits` until `shutdown` resolves; then stops accepting, lets every
/// connection finish its current request (idle ones close at once) and returns when all are closed.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let limits = Arc::new(limits);
    let table = Arc::new(Table::default());
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of descriptors or a connection reset before accept: not fatal; pause so a descriptor
                    // shortage does not spin the loop.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let slot = match slots.clone().try_acquire_owned() {
            Ok(slot) => slot,
            Err(_) => {
                table.evict_longest_waiting();
                tokio::select! {
                    slot = slots.clone().acquire_owned() => slot.expect("the slot semaphore is never closed"),
                    () = &mut shutdown => break,
                }
            }
        };
        let _ = stream.set_nodelay(true);
        let (id, entry) = table.insert();
        let service = {
            let (router, limits, entry) = (router.clone(), limits.clone(), entry.clone());
            hyper::service::service_fn(move |request| {
                handle(request, router.clone(), limits.clone(), entry.clone(), peer)
            })
        };
        let connection = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_timeout)
            .serve_connection(TokioIo::new(stream), service);
        let connection = graceful.watch(connection);
        let table = table.clone();
        tokio::spawn(async move {
            let _slot = slot;
            tokio::select! {
                result = connection => {
                    if let Err(e) = result {
                        tracing::debug!(peer = %peer, error = %e, "connection ended with an error");
                    }
                }
                () = entry.evict.cancelled() => {
                    tracing::debug!(peer = %peer, "connection closed to make room under the connection cap");
                }
            }
            table.remove(id);
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// One request: read the body within the bounds, then hand the complete request to the router.
async fn handle(
    request: Request<Incoming>,
    router: Router,
    limits: Arc<Limits>,
    entry: Arc<Entry>,
    peer: SocketAddr,
) -> Result<Response<Body>, Infallible> {
    entry.set(Phase::ReadingBody);
    let (parts, body) = request.into_parts();
    let declared =
        parts.headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limits.body_limit as u64) {
        entry.set(Phase::Waiting);
        return Ok(closing(ApiError::TooLarge.into_response()));
    }
    let read = tokio::time::timeout(limits.body_timeout, Limited::new(body, limits.body_limit).collect()).await;
    let bytes = match read {
        Ok(Ok(collected)) => collected.to_bytes(),
        Ok(Err(e)) if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() => {
            entry.set(Phase::Waiting);
            return Ok(closing(ApiError::TooLarge.into_response()));
        }
        Ok(Err(_)) => {
            entry.set(Phase::Waiting);
            let answer = ApiError::bad("invalid_request", "the request body could not be read (connection error)");
            return Ok(closing(answer.into_response()));
        }
        Err(_) => {
            entry.set(Phase::Waiting);
            let answer = ApiError::RequestTimeout { seconds: limits.body_timeout.as_secs() };
            return Ok(closing(answer.into_response()));
        }
    };
    entry.set(Phase::Handling);
    let mut request = Request::from_parts(parts, Body::from(bytes));
    request.extensions_mut().insert(ConnectInfo(peer));
    let response = match router.oneshot(request).await {
        Ok(response) => response,
        Err(never) => match never {},
    };
    // The connection counts as busy until the response body has ended (an event stream may last): hyper may keep
    // a finished body until the next request, so its end is taken from the body, not from when it is dropped.
    Ok(response.map(|body| {
        // An empty body may never be polled.
        let done = (!http_body::Body::is_end_stream(&body)).then(|| Done(entry.clone()));
        entry.set(if done.is_some() { Phase::Handling } else { Phase::Waiting });
        Body::new(Tracked { inner: body, done })
    }))
}

/// A response body that marks its connection waiting again once it has ended (or is dropped).
struct Tracked {
    inner: Body,
    done: Option<Done>,
}

impl http_body::Body for Tracked {
    type Data = axum::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        let polled = std::pin::Pin::new(&mut self.inner).poll_frame(cx);
        if matches!(polled, std::task::Poll::Ready(None)) || http_body::Body::is_end_stream(&self.inner) {
            self.done = None;
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        http_body::Body::is_end_stream(&self.inner)
    }

    fn size_hint(&self) -> http_body::SizeHint {
        http_body::Body::size_hint(&self.inner)
    }
}

/// `response` with `Connection: close`: the rest of that request's body is not read.
fn closing(mut response: Response<Body>) -> Response<Body> {
    response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// What a connection is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Idle, or receiving a request's headers.
    Waiting = 0,
    /// Receiving a request's body.
    ReadingBody = 1,
    /// A handler runs, or its response is being sent.
    Handling = 2,
}

/// One open connection, for the cap's choice of which to close.
#[derive(Debug)]
struct Entry {
    phase: AtomicU8,
    /// When the current phase began, in nanoseconds since the table's start (milliseconds made ties of
    /// connections served in one millisecond, which the cap then broke at random).
    since_ns: AtomicU64,
    base: Instant,
    /// Cancelled to close the connection.
    evict: CancellationToken,
}

impl Entry {
    fn set(&self, phase: Phase) {
        self.since_ns.store(nanos_since(self.base), Ordering::Relaxed);
        self.phase.store(phase as u8, Ordering::Relaxed);
    }
}

/// Marks its connection waiting again when the response body it rides on is dropped.
struct Done(Arc<Entry>);

impl Drop for Done {
    fn drop(&mut self) {
        self.0.set(Phase::Waiting);
    }
}

/// The open connections.
#[derive(Debug)]
struct Table {
    base: Instant,
    next: AtomicU64,
    entries: Mutex<HashMap<u64, Arc<Entry>>>,
}

impl Default for Table {
    fn default() -> Table {
        Table { base: Instant::now(), next: AtomicU64::new(0), entries: Mutex::default() }
    }
}

impl Table {
    fn insert(&self) -> (u64, Arc<Entry>) {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let entry = Arc::new(Entry {
            phase: AtomicU8::new(Phase::Waiting as u8),
            since_ns: AtomicU64::new(nanos_since(self.base)),
            base: self.base,
            evict: CancellationToken::new(),
        });
        self.entries.lock().expect("connection table lock").insert(id, entry.clone());
        (id, entry)
    }

    fn remove(&self, id: u64) {
        self.entries.lock().expect("connection table lock").remove(&id);
    }

    /// Closes the connection that has been idle, or sending a request, the longest. Nothing when every connection
    /// has a request being handled.
    fn evict_longest_waiting(&self) {
        let entries = self.entries.lock().expect("connection table lock");
        // Ties (same instant) go to the connection opened first.
        let oldest = entries
            .iter()
            .filter(|(_, e)| !e.evict.is_cancelled() && e.phase.load(Ordering::Relaxed) != Phase::Handling as u8)
            .min_by_key(|(id, e)| (e.since_ns.load(Ordering::Relaxed), **id))
            .map(|(_, e)| e);
        if let Some(entry) = oldest {
            entry.evict.cancel();
        }
    }
}

/// Nanoseconds from `base` to now (saturating; u64 nanoseconds last centuries).
fn nanos_since(base: Instant) -> u64 {
    u64::try_from(base.elapsed().as_nanos()).unwrap_or(u64::MAX)
}
