//! [`HealthProbe`] over HTTP: one `GET http://<upstream><path>` per call (SPEC §8.1).
//!
//! A probe sends `Host` when one is configured and `User-Agent: slip-health/<version>`, follows no redirects,
//! uses no proxy and gives up after the target's timeout. 2xx and 3xx are healthy; anything else becomes a short
//! reason a person can act on (`HTTP 503`, `connection refused`, `timed out after 5s`).
//!
//! Deliberately not here: retries, intervals, `start_period` and the exited/restarted checks. The deploy driver
//! owns the schedule; this module answers one question once.

use std::error::Error as _;
use std::io;
use std::time::Duration;

use async_trait::async_trait;
use reqwest::header::{HOST, HeaderValue, USER_AGENT};
use slip_core::deploy::ProbeResult;

use crate::ports::{HealthProbe, ProbeTarget};

/// The `User-Agent` every probe sends.
pub const USER_AGENT_VALUE: &str = concat!("slip-health/", env!("CARGO_PKG_VERSION"));

/// The HTTP health probe. Cheap to clone; one client (and its connection pool) is shared.
#[derive(Debug, Clone)]
pub struct Http {
    client: reqwest::Client,
}

impl Http {
    /// A probe with no redirects, no proxy and no connection reuse across probes.
    pub fn new() -> Http {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            // A fresh connection per probe: a pooled one could outlive the container behind the port.
            .pool_max_idle_per_host(0)
            .build()
            .expect("a reqwest client without TLS configuration always builds");
        Http { client }
    }
}

impl Default for Http {
    fn default() -> Self {
        Http::new()
    }
}

#[async_trait]
impl HealthProbe for Http {
    async fn check(&self, target: &ProbeTarget) -> ProbeResult {
        let url = format!("http://{}{}", target.upstream, target.path);
        let mut request = self
            .client
            .get(&url)
            .timeout(target.timeout)
            .header(USER_AGENT, HeaderValue::from_static(USER_AGENT_VALUE));
        if let Some(host) = &target.host {
            match HeaderValue::from_str(host) {
                Ok(value) => request = request.header(HOST, value),
                Err(_) => return ProbeResult::Unhealthy(format!("invalid Host header {host:?}")),
            }
        }
        match request.send().await {
            Ok(response) => {
                let status = response.status();
                if status.is_success() || status.is_redirection() {
                    ProbeResult::Healthy(status.as_u16())
                } else {
                    let snippet = body_snippet(response).await;
                    if snippet.is_empty() {
                        ProbeResult::Unhealthy(format!("HTTP {}", status.as_u16()))
                    } else {
                        ProbeResult::Unhealthy(format!("HTTP {}: {snippet}", status.as_u16()))
                    }
                }
            }
            Err(err) => ProbeResult::Unhealthy(failure_reason(&err, target.timeout)),
        }
    }
}

/// Most bytes of an unhealthy answer's body quoted in the reason (SPEC §8.1 probe events, issue 14 diagnostics).
pub const BODY_SNIPPET: usize = 120;

/// The first [`BODY_SNIPPET`] bytes of a body, as one line: runs of whitespace and control characters become one
/// space, and a cut body ends in `…`. Empty when the body is empty or cannot be read.
async fn body_snippet(mut response: reqwest::Response) -> String {
    let mut bytes = Vec::new();
    let mut more = false;
    while let Ok(Some(chunk)) = response.chunk().await {
        bytes.extend_from_slice(&chunk);
        if bytes.len() > BODY_SNIPPET {
            more = true;
            break;
        }
    }
    bytes.truncate(BODY_SNIPPET);
    let text = String::from_utf8_lossy(&bytes);
    let mut out = text
        .split(|c: char| c.is_whitespace() || c.is_control())
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    // A cut inside a UTF-8 sequence shows as U+FFFD; drop it rather than show a broken character.
    if more {
        while out.ends_with('\u{fffd}') {
            out.pop();
        }
        out.push('…');
    }
    out
}

/// A short reason for a request that got no status.
fn failure_reason(err: &reqwest::Error, timeout: Duration) -> String {
    if err.is_timeout() {
        return format!("timed out after {}", human(timeout));
    }
    let mut source = err.source();
    while let Some(cause) = source {
        if let Some(io) = cause.downcast_ref::<io::Error>() {
            match io.kind() {
                io::ErrorKind::ConnectionRefused => return "connection refused".into(),
                io::ErrorKind::ConnectionReset => return "connection reset".into(),
                io::ErrorKind::TimedOut => return format!("timed out after {}", human(timeout)),
                _ => {}
            }
        }
        if let Some(hyper) = cause.downcast_ref::<hyper::Error>() {
            if hyper.is_incomplete_message() || hyper.is_closed() {
                return "connection closed before a response".into();
            }
            if hyper.is_parse() {
                return "not an HTTP response".into();
            }
        }
        source = cause.source();
    }
    let mut message = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        message = format!("{message}: {cause}");
        source = cause.source();
    }
    message
}

/// `5s`, `1500ms`: the probe timeout as a person wrote it.
fn human(d: Duration) -> String {
    if d.subsec_millis() == 0 { format!("{}s", d.as_secs()) } else { format!("{}ms", d.as_millis()) }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::*;

    /// A one-shot HTTP server on 127.0.0.1 that answers `response` and hands back the request it read.
    async fn serve_once(response: &'static str) -> (u16, tokio::task::JoinHandle<String>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let task = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut request = Vec::new();
            let mut buf = [0u8; 1024];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = socket.read(&mut buf).await.unwrap();
                if n == 0 {
                    break;
                }
                request.extend_from_slice(&buf[..n]);
            }
            socket.write_all(response.as_bytes()).await.unwrap();
            socket.shutdown().await.unwrap();
            String::from_utf8(request).unwrap()
        });
        (port, task)
    }

    fn target(port: u16, host: Option<&str>) -> ProbeTarget {
        ProbeTarget {
            upstream: format!("127.0.0.1:{port}"),
            path: "/up".into(),
            host: host.map(str::to_owned),
            timeout: Duration::from_secs(5),
        }
    }

    #[tokio::test]
    async fn sends_host_and_user_agent_and_accepts_2xx() {
        let (port, server) = serve_once("HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n").await;
        let result = Http::new().check(&target(port, Some("web.example.com"))).await;
        assert_eq!(result, ProbeResult::Healthy(204));
        let request = server.await.unwrap().to_ascii_lowercase();
        assert!(request.starts_with("get /up http/1.1\r\n"), "{request}");
        assert!(request.contains("\r\nhost: web.example.com\r\n"), "{request}");
        assert!(
            request.contains(&format!("\r\nuser-agent: {}\r\n", USER_AGENT_VALUE.to_ascii_lowercase())),
            "{request}"
        );
    }

    #[tokio::test]
    async fn redirects_are_healthy_and_not_followed() {
        let (port, server) =
            serve_once("HTTP/1.1 302 Found\r\nLocation: http://127.0.0.1:1/elsewhere\r\nContent-Length: 0\r\n\r\n")
                .await;
        assert_eq!(Http::new().check(&target(port, None)).await, ProbeResult::Healthy(302));
        server.await.unwrap();
    }

    #[tokio::test]
    async fn server_errors_are_unhealthy_with_the_status() {
        let (port, server) = serve_once("HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n").await;
        assert_eq!(Http::new().check(&target(port, None)).await, ProbeResult::Unhealthy("HTTP 503".into()));
        server.await.unwrap();
    }

    #[tokio::test]
    async fn an_unhealthy_answer_quotes_the_first_bytes_of_its_body_on_one_line() {
        let (port, server) = serve_once(
            "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 40\r\n\r\ndatabase\r\n  unreachable:\tretry later\n",
        )
        .await;
        let result = Http::new().check(&target(port, None)).await;
        assert_eq!(result, ProbeResult::Unhealthy("HTTP 500: database unreachable: retry later".into()));
        server.await.unwrap();
        let long =
            Box::leak(format!("HTTP/1.1 503 Busy\r\nConnection: close\r\n\r\n{}", "x".repeat(500)).into_boxed_str());
        let (port, server) = serve_once(long).await;
        let ProbeResult::Unhealthy(reason) = Http::new().check(&target(port, None)).await else { panic!("healthy") };
        assert_eq!(reason, format!("HTTP 503: {}…", "x".repeat(BODY_SNIPPET)));
        server.await.unwrap();
    }

    #[tokio::test]
    async fn a_silent_server_times_out_with_the_configured_timeout() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let mut probe = target(port, None);
        probe.timeout = Duration::from_millis(300);
        let result = Http::new().check(&probe).await;
        assert_eq!(result, ProbeResult::Unhealthy("timed out after 300ms".into()));
        drop(listener);
    }

    #[tokio::test]
    async fn a_connection_closed_without_answer_says_so() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = tokio::spawn(async move {
            let (socket, _) = listener.accept().await.unwrap();
            drop(socket);
        });
        let result = Http::new().check(&target(port, None)).await;
        server.await.unwrap();
        let closed = ["connection closed before a response", "connection reset"];
        assert!(matches!(&result, ProbeResult::Unhealthy(r) if closed.contains(&r.as_str())), "{result:?}");
    }

    #[tokio::test]
    async fn a_closed_port_is_refused() {
        let port = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap().port()
        };
        assert_eq!(Http::new().check(&target(port, None)).await, ProbeResult::Unhealthy("connection refused".into()));
    }

    #[test]
    fn timeouts_read_as_written() {
        assert_eq!(human(Duration::from_secs(5)), "5s");
        assert_eq!(human(Duration::from_millis(1500)), "1500ms");
    }
}
