//! Caddy's admin API as a transport: one HTTP/1.1 request per connection, over TCP or a unix socket,
//! with a per-request timeout, the ETag read from a header (Caddy ≥ 2.8) or a trailer (2.6–2.7), and
//! Caddy's three spellings of "absent" folded into `None`.
//!
//! It knows nothing about slip's routes or ownership rules. It retries nothing but a read whose connection
//! Caddy closed before answering (its admin listener restarts on config loads, and a connection caught in
//! that moment is reset); a write cut off that way is [`AdminError::Interrupted`], and the client in
//! [`super`] re-reads and decides again, as it does on a `412`.
//!
//! One connection per request, never pooled: Caddy restarts its admin listener on config loads and
//! answers writes with `Connection: close`, so a pooled connection would often be dead on reuse.

use std::path::PathBuf;
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use slip_core::error_chain::error_chain;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpStream, UnixStream};

/// Where the admin API listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Endpoint {
    /// `http://host:port`.
    Tcp { host: String, port: u16 },
    /// `unix//path/to/admin.sock` (Caddy's own spelling of a unix network address).
    Unix { path: PathBuf },
}

/// A parsed admin API address plus the timeout applied to each request.
#[derive(Debug, Clone)]
pub(super) struct Admin {
    endpoint: Endpoint,
    /// The address as configured, used in error messages.
    display: String,
    timeout: Duration,
}

/// A value read from the admin API.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Fetched {
    /// The JSON at the path, or `None` when Caddy says it is absent.
    pub value: Option<Value>,
    /// The ETag naming that path and the hash of its value, when Caddy sent one.
    pub etag: Option<String>,
}

/// What went wrong with one admin request.
#[derive(Debug)]
pub(super) enum AdminError {
    /// No connection, a broken exchange, or no answer within the timeout.
    Unreachable { url: String, message: String },
    /// `If-Match` named a hash that is no longer current (HTTP 412).
    PreconditionFailed,
    /// The connection closed before Caddy answered (its admin listener restarted meanwhile): whether a write
    /// was applied is unknown, so the caller re-reads before writing again.
    Interrupted { url: String, message: String },
    /// Any other non-2xx answer, with Caddy's own error text.
    Status { method: Method, url: String, status: StatusCode, message: String },
}

/// The raw answer to one request.
struct Reply {
    status: StatusCode,
    body: Bytes,
    etag: Option<String>,
}

impl Endpoint {
    /// Parses `http://host:port` or `unix//path`; `None` when it is neither.
    pub(super) fn parse(admin_api: &str) -> Option<Endpoint> {
        if let Some(path) = admin_api.strip_prefix("unix/") {
            return (!path.is_empty()).then(|| Endpoint::Unix { path: PathBuf::from(path) });
        }
        let uri: hyper::Uri = admin_api.parse().ok()?;
        if uri.scheme_str() != Some("http") || !matches!(uri.path(), "" | "/") || uri.query().is_some() {
            return None;
        }
        let authority = uri.authority()?;
        let host = authority.host().trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() {
            return None;
        }
        Some(Endpoint::Tcp { host: host.to_owned(), port: authority.port_u16().unwrap_or(80) })
    }

    /// The `Host` header Caddy's admin endpoint accepts: `host:port` over TCP, and the empty value over
    /// a unix socket (Caddy rejects any other host there with "host not allowed").
    fn host_header(&self) -> String {
        match self {
            Endpoint::Tcp { host, port } if host.contains(':') => format!("[{host}]:{port}"),
            Endpoint::Tcp { host, port } => format!("{host}:{port}"),
            Endpoint::Unix { .. } => String::new(),
        }
    }
}

impl Admin {
    /// An admin API client for a parsed endpoint.
    pub(super) fn new(endpoint: Endpoint, display: &str, timeout: Duration) -> Admin {
        Admin { endpoint, display: display.trim_end_matches('/').to_owned(), timeout }
    }

    /// The full URL of `path`, for error messages.
    pub(super) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.display)
    }

    /// Reads the JSON at `path`. `200 null`, `404` and `400 invalid traversal` all mean absent.
    pub(super) async fn get(&self, path: &str) -> Result<Fetched, AdminError> {
        let mut attempt = 0;
        let reply = loop {
            match self.exchange(Method::GET, path, None, None).await {
                // A read changes nothing: ask again once Caddy's admin listener is back.
                Err(AdminError::Interrupted { .. }) if attempt < READ_RETRIES => {
                    attempt += 1;
                    tokio::time::sleep(READ_RETRY_PAUSE).await;
                }
                result => break result?,
            }
        };
        let absent_traversal =
            reply.status == StatusCode::BAD_REQUEST && caddy_message(&reply.body).contains("invalid traversal");
        if reply.status == StatusCode::NOT_FOUND || absent_traversal {
            return Ok(Fetched { value: None, etag: reply.etag });
        }
        if !reply.status.is_success() {
            return Err(self.status_error(Method::GET, path, &reply));
        }
        let value: Value = serde_json::from_slice(&reply.body).map_err(|error| AdminError::Status {
            method: Method::GET,
            url: self.url(path),
            status: reply.status,
            message: format!("answer is not JSON: {error}"),
        })?;
        Ok(Fetched { value: (!value.is_null()).then_some(value), etag: reply.etag })
    }

    /// Sends a mutation (`PUT`, `PATCH`, `DELETE`) with an optional JSON body and `If-Match`.
    pub(super) async fn write(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        if_match: Option<&str>,
    ) -> Result<(), AdminError> {
        let body = body.map(|value| value.to_string().into_bytes());
        let reply = self.exchange(method.clone(), path, body, if_match).await?;
        match reply.status {
            status if status.is_success() => Ok(()),
            StatusCode::PRECONDITION_FAILED => Err(AdminError::PreconditionFailed),
            _ => Err(self.status_error(method, path, &reply)),
        }
    }

    async fn exchange(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
        if_match: Option<&str>,
    ) -> Result<Reply, AdminError> {
        let unreachable = |message: String| AdminError::Unreachable { url: self.url(path), message };
        let failed = |failure: SendFailure| match failure {
            SendFailure::Unreachable(message) => unreachable(message),
            SendFailure::Interrupted(message) => AdminError::Interrupted { url: self.url(path), message },
        };
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header(header::HOST, self.endpoint.host_header())
            .header(header::CONNECTION, "close")
            .header(header::ACCEPT, "application/json");
        if body.is_some() {
            request = request.header(header::CONTENT_TYPE, "application/json");
        }
        if let Some(etag) = if_match {
            request = request.header(header::IF_MATCH, etag);
        }
        let request = request
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|error| unreachable(format!("cannot build the request: {error}")))?;
        let exchange = async {
            match &self.endpoint {
                Endpoint::Tcp { host, port } => send(TcpStream::connect((host.as_str(), *port)).await, request).await,
                Endpoint::Unix { path } => send(UnixStream::connect(path).await, request).await,
            }
        };
        match tokio::time::timeout(self.timeout, exchange).await {
            Ok(result) => result.map_err(failed),
            Err(_) => Err(unreachable(format!("no answer within {:?}", self.timeout))),
        }
    }

    fn status_error(&self, method: Method, path: &str, reply: &Reply) -> AdminError {
        AdminError::Status { method, url: self.url(path), status: reply.status, message: caddy_message(&reply.body) }
    }
}

/// Reads retried when Caddy closed the connection before answering, and the pause before each.
const READ_RETRIES: u32 = 3;
const READ_RETRY_PAUSE: Duration = Duration::from_millis(100);

/// Why one exchange failed.
enum SendFailure {
    /// No connection, or a broken answer.
    Unreachable(String),
    /// The connection closed (or was reset) after it was made and before any answer arrived.
    Interrupted(String),
}

/// Sends `request` on a fresh connection and collects the whole answer, trailers included.
async fn send<S>(stream: std::io::Result<S>, request: Request<Full<Bytes>>) -> Result<Reply, SendFailure>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let stream = stream.map_err(|error| SendFailure::Unreachable(format!("cannot connect: {error}")))?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|error| SendFailure::Interrupted(error_chain(&error)))?;
    let exchange = async move {
        let response =
            sender.send_request(request).await.map_err(|error| SendFailure::Interrupted(error_chain(&error)))?;
        let (parts, body) = response.into_parts();
        let collected = body.collect().await.map_err(|error| SendFailure::Unreachable(error_chain(&error)))?;
        Ok::<_, SendFailure>((parts, collected))
    };
    // The connection future ends once the answer is read and the request side is dropped.
    let (result, _) = tokio::join!(exchange, connection);
    let (parts, collected) = result?;
    let etag = etag(&parts.headers).or_else(|| collected.trailers().and_then(etag));
    Ok(Reply { status: parts.status, body: collected.to_bytes(), etag })
}

fn etag(headers: &HeaderMap) -> Option<String> {
    headers.get(header::ETAG).and_then(|value: &HeaderValue| value.to_str().ok()).map(str::to_owned)
}

/// Caddy's `{"error": "..."}` text, or the body itself when it is not that shape.
fn caddy_message(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    serde_json::from_str::<Value>(&text)
        .ok()
        .and_then(|value| value.get("error").and_then(Value::as_str).map(str::to_owned))
        .unwrap_or_else(|| text.trim().chars().take(500).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_parse_http_and_unix_forms() {
        let tcp = |host: &str, port| Some(Endpoint::Tcp { host: host.into(), port });
        assert_eq!(Endpoint::parse("http://localhost:2019"), tcp("localhost", 2019));
        assert_eq!(Endpoint::parse("http://127.0.0.1:2019/"), tcp("127.0.0.1", 2019));
        assert_eq!(Endpoint::parse("http://[::1]:2019"), tcp("::1", 2019));
        assert_eq!(
            Endpoint::parse("unix//run/caddy/admin.sock"),
            Some(Endpoint::Unix { path: "/run/caddy/admin.sock".into() })
        );
        for invalid in ["https://localhost:2019", "localhost:2019", "http://localhost:2019/config", "unix/", ""] {
            assert_eq!(Endpoint::parse(invalid), None, "{invalid}");
        }
    }

    #[test]
    fn host_header_is_empty_on_unix_sockets() {
        assert_eq!(Endpoint::Unix { path: "/x".into() }.host_header(), "");
        assert_eq!(Endpoint::Tcp { host: "::1".into(), port: 2019 }.host_header(), "[::1]:2019");
        assert_eq!(Endpoint::Tcp { host: "localhost".into(), port: 2019 }.host_header(), "localhost:2019");
    }

    #[test]
    fn caddy_error_text_is_extracted() {
        assert_eq!(
            caddy_message(br#"{"error":"invalid traversal path at: config/apps"}"#),
            "invalid traversal path at: config/apps"
        );
        assert_eq!(caddy_message(b"plain text\n"), "plain text");
    }

    /// A loopback server that closes its first `drops` connections as soon as the request arrives, without an
    /// answer, then answers every request with `answer`.
    async fn flaky_admin(drops: usize, answer: &'static str) -> (Admin, tokio::task::JoinHandle<()>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = tokio::spawn(async move {
            for n in 0.. {
                let (mut conn, _) = listener.accept().await.unwrap();
                let mut buf = [0u8; 4096];
                let _ = conn.read(&mut buf).await;
                if n >= drops {
                    let _ = conn.write_all(answer.as_bytes()).await;
                }
            }
        });
        let endpoint = Endpoint::Tcp { host: "127.0.0.1".into(), port };
        (Admin::new(endpoint, &format!("http://127.0.0.1:{port}"), Duration::from_secs(5)), server)
    }

    #[tokio::test]
    async fn a_read_cut_off_by_an_admin_listener_restart_is_asked_again() {
        let (admin, server) = flaky_admin(2, "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nnull").await;
        let fetched = admin.get("/config/apps").await.expect("the third read is answered");
        assert_eq!(fetched.value, None);
        server.abort();
    }

    #[tokio::test]
    async fn a_write_cut_off_before_an_answer_is_interrupted_not_unreachable() {
        let (admin, server) = flaky_admin(1, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n").await;
        let body = serde_json::json!([]);
        let first = admin.write(Method::PATCH, "/config/apps/http/servers/slip/routes", Some(&body), None).await;
        assert!(matches!(first, Err(AdminError::Interrupted { .. })), "{first:?}");
        admin.write(Method::PATCH, "/config/apps/http/servers/slip/routes", Some(&body), None).await.expect("answered");
        server.abort();
    }
}
