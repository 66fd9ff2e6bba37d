//! Podman's own REST API (libpod) as a transport: one HTTP/1.1 request per connection over the engine's unix socket,
//! each bounded by a timeout. Only the pod endpoints slip needs; containers go through the Docker-compatible API.
//!
//! Bodies may hold secret values (a rendered manifest carries env): they are sent, never logged, and engine
//! answers are shown only after redaction by the caller.

use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::header;
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::UnixStream;

/// The libpod API version slip speaks (Podman 4.3 serves it).
const VERSION: &str = "v4.0.0";

/// A libpod client for one socket.
#[derive(Debug, Clone)]
pub(crate) struct Libpod {
    socket: String,
    timeout: Duration,
}

/// One answer.
#[derive(Debug)]
pub(crate) struct Reply {
    pub(crate) status: StatusCode,
    pub(crate) body: Value,
    /// The body as text, for error messages (Podman answers errors as `{"cause","message","response"}`).
    pub(crate) text: String,
}

impl Reply {
    /// Podman's error message, or the raw text.
    pub(crate) fn message(&self) -> String {
        self.body.get("message").and_then(Value::as_str).map(str::to_owned).unwrap_or_else(|| self.text.clone())
    }
}

impl Libpod {
    /// A client of the libpod API on `socket`, with `timeout` per request.
    pub(crate) fn new(socket: &str, timeout: Duration) -> Libpod {
        Libpod { socket: socket.to_owned(), timeout }
    }

    /// The socket, for error messages.
    pub(crate) fn socket(&self) -> &str {
        &self.socket
    }

    /// `method /v4.0.0/libpod/<path>` with an optional body; `Err` only when the socket does not answer.
    pub(crate) async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<(&'static str, Vec<u8>)>,
        timeout: Option<Duration>,
    ) -> Result<Reply, String> {
        let uri = format!("/{VERSION}/libpod/{path}");
        let mut request = Request::builder()
            .method(method)
            .uri(&uri)
            .header(header::HOST, "d")
            .header(header::CONNECTION, "close")
            .header(header::ACCEPT, "application/json");
        let payload = match body {
            Some((content_type, bytes)) => {
                request = request.header(header::CONTENT_TYPE, content_type);
                bytes
            }
            None => Vec::new(),
        };
        let request =
            request.body(Full::new(Bytes::from(payload))).map_err(|e| format!("cannot build the request: {e}"))?;
        let exchange = async {
            let stream = UnixStream::connect(&self.socket).await.map_err(|e| e.to_string())?;
            let (mut sender, connection) =
                hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.map_err(|e| e.to_string())?;
            tokio::spawn(async move {
                if let Err(e) = connection.await {
                    tracing::debug!(error = %e, "libpod connection ended");
                }
            });
            let response = sender.send_request(request).await.map_err(|e| e.to_string())?;
            let status = response.status();
            let bytes = response.into_body().collect().await.map_err(|e| e.to_string())?.to_bytes();
            Ok::<_, String>((status, bytes))
        };
        let limit = timeout.unwrap_or(self.timeout);
        let (status, bytes) = match tokio::time::timeout(limit, exchange).await {
            Ok(result) => result?,
            Err(_) => return Err(format!("no answer within {}s", limit.as_secs())),
        };
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Ok(Reply { status, body, text })
    }
}
