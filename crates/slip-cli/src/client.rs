//! The HTTP client: signing, bearer tokens, the event stream, and turning failures into one line plus a hint
//! and an exit code (SPEC §15).
//!
//! Signed requests always carry `X-Slip-Timestamp`. Nothing here prints; callers decide what to show.

use std::pin::Pin;
use std::time::Duration;

use eventsource_stream::Eventsource;
use futures::{Stream, StreamExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use slip_api::{DeployAccepted, ErrorBody};
use slip_core::signature::{self, Signed};

/// Exit codes of SPEC §15.
pub mod exit {
    /// Success.
    pub const OK: u8 = 0;
    /// The deploy failed or was rolled back.
    pub const DEPLOY_FAILED: u8 = 1;
    /// Usage or validation error.
    pub const USAGE: u8 = 2;
    /// The deploy was superseded.
    pub const SUPERSEDED: u8 = 3;
    /// Authentication or permission error.
    pub const AUTH: u8 = 4;
    /// The server could not be reached.
    pub const UNREACHABLE: u8 = 5;
    /// Waiting timed out.
    pub const TIMEOUT: u8 = 6;
    /// Any other API error.
    pub const API: u8 = 7;
}

/// A failed command: what to print and how to exit.
#[derive(Debug)]
pub struct Failure {
    /// The error line.
    pub message: String,
    /// An optional hint line.
    pub hint: Option<String>,
    /// Process exit code.
    pub exit_code: u8,
    /// The API's error code, when the server answered with one.
    pub code: Option<String>,
}

impl Failure {
    /// A failure without an API code.
    pub fn new(message: impl Into<String>, hint: Option<String>, exit_code: u8) -> Failure {
        Failure { message: message.into(), hint, exit_code, code: None }
    }
}

/// The result of writing a command's output to stdout. A closed stdout (`slip validate | head -1`) is not a
/// failure: the reader has what it wanted, and printing must not panic as `println!` does.
pub fn printed(written: std::io::Result<()>) -> Result<(), Failure> {
    match written {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(Failure::new(format!("cannot write to stdout: {e}"), None, exit::USAGE))
        }
        _ => Ok(()),
    }
}

/// One server-sent event as received.
pub type SseEvent = eventsource_stream::Event;

/// An open event stream; an `Err` item means the connection broke.
pub type SseStream = Pin<Box<dyn Stream<Item = Result<SseEvent, String>> + Send>>;

/// An open response body; an `Err` item means the connection broke.
pub type ByteStream = Pin<Box<dyn Stream<Item = Result<Vec<u8>, String>> + Send>>;

/// The least a `DELETE` may take before the CLI stops waiting (a forced app delete waits for a deploy to stop).
pub const DELETE_TIMEOUT: Duration = Duration::from_secs(20 * 60);

/// slipd's API over HTTP.
pub struct Client {
    base: String,
    http: reqwest::Client,
    /// Like `http` without the overall deadline, for bodies that stream for as long as they like.
    streaming: reqwest::Client,
    /// `--timeout`: the bound on one request (on a streamed one, until its head arrives).
    timeout: Duration,
    token: Option<String>,
    secret: Option<String>,
}

impl Client {
    /// A client for `server`.
    pub fn new(
        server: &str,
        token: Option<String>,
        secret: Option<String>,
        timeout: Duration,
    ) -> Result<Client, Failure> {
        if !(server.starts_with("http://") || server.starts_with("https://")) {
            return Err(Failure::new(
                format!("--server {server:?} must start with http:// or https://"),
                Some("e.g. --server http://127.0.0.1:7890".into()),
                exit::USAGE,
            ));
        }
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .user_agent(concat!("slip/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Failure::new(format!("building the HTTP client: {e}"), None, exit::API))?;
        let streaming = reqwest::Client::builder()
            .connect_timeout(timeout)
            .user_agent(concat!("slip/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Failure::new(format!("building the HTTP client: {e}"), None, exit::API))?;
        Ok(Client { base: server.trim_end_matches('/').to_owned(), http, streaming, timeout, token, secret })
    }

    /// `POST /v1/deploy`, signed with the app key and a timestamp (or with the admin token).
    pub async fn deploy<T: Serialize>(&self, body: &T) -> Result<DeployAccepted, Failure> {
        let body = serde_json::to_vec(body).expect("serialisable");
        let mut request = self.http.post(format!("{}/v1/deploy", self.base)).header("content-type", "application/json");
        if let Some(secret) = &self.secret {
            let ts = unix_seconds().to_string();
            let sig = signature::header_value(secret.as_bytes(), &Signed::Deploy { timestamp: &ts, body: &body });
            request = request.header("x-slip-signature", sig).header("x-slip-timestamp", ts);
        } else if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        } else {
            return Err(Failure::new(
                "no credentials: pass --secret (the app key) or --token (the admin token)",
                Some("in CI, set SLIP_SECRET to the app's key".into()),
                exit::AUTH,
            ));
        }
        self.send(request.body(body)).await
    }

    /// A GET signed with the app key when one is given, else with the admin token (deploys, events).
    pub async fn get_signed<T: DeserializeOwned>(&self, target: &str) -> Result<T, Failure> {
        let request = self.signed(self.http.get(format!("{}{target}", self.base)), "GET", target);
        self.send(request).await
    }

    /// A GET with the admin token when one is given (public endpoints answer less without it).
    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, Failure> {
        let mut request = self.http.get(format!("{}{path}", self.base));
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        self.send(request).await
    }

    /// A GET with the admin token.
    pub async fn get_admin<T: DeserializeOwned>(&self, path: &str) -> Result<T, Failure> {
        let request = self.admin(self.http.get(format!("{}{path}", self.base)))?;
        self.send(request).await
    }

    /// A JSON PUT with the admin token.
    pub async fn put_admin<T: DeserializeOwned, B: Serialize>(&self, path: &str, body: &B) -> Result<T, Failure> {
        let body = serde_json::to_vec(body).expect("serialisable");
        let request = self
            .admin(self.http.put(format!("{}{path}", self.base)))?
            .header("content-type", "application/json")
            .body(body);
        self.send(request).await
    }

    /// A GET with the admin token whose answer is a stream of bytes (logs), sent with `Accept: accept`. Only the
    /// wait for the answer's head is bounded by `--timeout`: a followed body may stay open for as long as it likes.
    pub async fn get_admin_stream(&self, path: &str, accept: &str) -> Result<ByteStream, Failure> {
        let request = self.admin(self.streaming.get(format!("{}{path}", self.base)))?.header("accept", accept);
        let response = match tokio::time::timeout(self.timeout, request.send()).await {
            Ok(sent) => sent.map_err(|e| self.unreachable(&e))?,
            Err(_) => {
                return Err(Failure::new(
                    format!("slipd at {} did not answer within {:?}", self.base, self.timeout),
                    Some("raise --timeout, or check the server's load".into()),
                    exit::UNREACHABLE,
                ));
            }
        };
        let status = response.status();
        if status.is_success() {
            let chunks = response.bytes_stream().map(|chunk| chunk.map(|b| b.to_vec()).map_err(|e| root_cause(&e)));
            return Ok(Box::pin(chunks));
        }
        let bytes = response.bytes().await.unwrap_or_default();
        Err(api_failure(status.as_u16(), &bytes, &self.base))
    }

    /// A JSON POST with the admin token.
    pub async fn post_admin<T: DeserializeOwned, B: Serialize>(&self, path: &str, body: &B) -> Result<T, Failure> {
        let body = serde_json::to_vec(body).expect("serialisable");
        let request = self
            .admin(self.http.post(format!("{}{path}", self.base)))?
            .header("content-type", "application/json")
            .body(body);
        self.send(request).await
    }

    /// A JSON merge patch (RFC 7386) with the admin token.
    pub async fn patch_admin<T: DeserializeOwned, B: Serialize>(&self, path: &str, body: &B) -> Result<T, Failure> {
        let body = serde_json::to_vec(body).expect("serialisable");
        let request = self
            .admin(self.http.patch(format!("{}{path}", self.base)))?
            .header("content-type", "application/merge-patch+json")
            .body(body);
        self.send(request).await
    }

    /// A JSON POST signed with the app key and a timestamp when one is given (the body is signed too), else
    /// with the admin token (rollback).
    pub async fn post_signed<T: DeserializeOwned>(&self, target: &str, body: Vec<u8>) -> Result<T, Failure> {
        let mut request = self.http.post(format!("{}{target}", self.base)).header("content-type", "application/json");
        if let Some(secret) = &self.secret {
            let ts = unix_seconds().to_string();
            let signed = Signed::Request { timestamp: &ts, method: "POST", target, body: &body };
            request = request
                .header("x-slip-signature", signature::header_value(secret.as_bytes(), &signed))
                .header("x-slip-timestamp", ts);
        } else {
            request = self.admin(request)?;
        }
        self.send(request.body(body)).await
    }

    /// A DELETE with the admin token.
    ///
    /// The bound is at least [`DELETE_TIMEOUT`]: deleting an app waits for its running deploy to stop, and giving up
    /// early would only hide the outcome (slipd finishes the delete either way).
    pub async fn delete_admin<T: DeserializeOwned>(&self, path: &str) -> Result<T, Failure> {
        let request =
            self.admin(self.http.delete(format!("{}{path}", self.base)))?.timeout(self.timeout.max(DELETE_TIMEOUT));
        self.send(request).await
    }

    /// A DELETE signed with the app key when one is given, else with the admin token (preview teardown).
    pub async fn delete_signed<T: DeserializeOwned>(&self, target: &str) -> Result<T, Failure> {
        if self.secret.is_none() && self.token.is_none() {
            return Err(Failure::new(
                "no credentials: pass --secret (the app key) or --token (the admin token)",
                None,
                exit::AUTH,
            ));
        }
        let request = self
            .signed(self.http.delete(format!("{}{target}", self.base)), "DELETE", target)
            .timeout(self.timeout.max(DELETE_TIMEOUT));
        self.send(request).await
    }

    /// Opens `/v1/deploys/{id}/events` (signed like [`Client::get_signed`]), for at most `limit`. `Ok(None)`
    /// when the server has no events endpoint, so the caller can poll instead.
    pub async fn events(&self, id: &str, limit: Duration) -> Result<Option<SseStream>, Failure> {
        let target = format!("/v1/deploys/{}/events", encode(id));
        let request = self
            .signed(self.http.get(format!("{}{target}", self.base)), "GET", &target)
            .header("accept", "text/event-stream")
            .timeout(limit);
        let response = request.send().await.map_err(|e| self.unreachable(&e))?;
        let status = response.status();
        if status.is_success() {
            let stream = response.bytes_stream().eventsource().map(|item| item.map_err(|e| e.to_string()));
            return Ok(Some(Box::pin(stream)));
        }
        let bytes = response.bytes().await.unwrap_or_default();
        let failure = api_failure(status.as_u16(), &bytes, &self.base);
        // An older slipd has no such route: 404 `not_found` (not `deploy_not_found`) or 405.
        if (status.as_u16() == 404 && failure.code.as_deref() != Some("deploy_not_found")) || status.as_u16() == 405 {
            return Ok(None);
        }
        Err(failure)
    }

    fn signed(&self, mut request: reqwest::RequestBuilder, method: &str, target: &str) -> reqwest::RequestBuilder {
        if let Some(secret) = &self.secret {
            let ts = unix_seconds().to_string();
            let signed = Signed::Request { timestamp: &ts, method, target, body: b"" };
            request = request
                .header("x-slip-signature", signature::header_value(secret.as_bytes(), &signed))
                .header("x-slip-timestamp", ts);
        } else if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        request
    }

    fn admin(&self, request: reqwest::RequestBuilder) -> Result<reqwest::RequestBuilder, Failure> {
        match &self.token {
            Some(token) => Ok(request.bearer_auth(token)),
            None => Err(Failure::new("this command needs the admin token", Some(ADMIN_TOKEN_HINT.into()), exit::AUTH)),
        }
    }

    async fn send<T: DeserializeOwned>(&self, request: reqwest::RequestBuilder) -> Result<T, Failure> {
        let response = request.send().await.map_err(|e| self.unreachable(&e))?;
        let status = response.status();
        let bytes = response
            .bytes()
            .await
            .map_err(|e| Failure::new(format!("reading slipd's answer from {}: {e}", self.base), None, exit::API))?;
        if status.is_success() {
            return serde_json::from_slice(&bytes).map_err(|e| {
                Failure::new(
                    format!("unexpected answer from {}: {e}", self.base),
                    Some("is --server pointing at slipd?".into()),
                    exit::API,
                )
            });
        }
        Err(api_failure(status.as_u16(), &bytes, &self.base))
    }

    fn unreachable(&self, e: &reqwest::Error) -> Failure {
        if e.is_timeout() {
            return Failure::new(
                format!("slipd at {} did not answer in time: {}", self.base, root_cause(e)),
                Some("raise --timeout, or check the server's load".into()),
                exit::UNREACHABLE,
            );
        }
        Failure::new(
            format!("cannot reach slipd at {}: {}", self.base, root_cause(e)),
            Some(format!(
                "is slipd running there? tried {}; set --server or SLIP_SERVER to slipd's address",
                self.base
            )),
            exit::UNREACHABLE,
        )
    }
}

/// Which key a signed endpoint wanted, and where it comes from.
const APP_KEY_HINT: &str = "this endpoint wants the app's key: its own SLIP_SECRET secret once one is set (slip \
     secrets set <app> SLIP_SECRET=…), else the global auth.secret (SLIP_SECRET in /etc/slip/slip.env); pass it as \
     --secret or SLIP_SECRET";

/// Which token an admin endpoint wanted, and where it comes from.
pub const ADMIN_TOKEN_HINT: &str = "this endpoint wants the admin token: auth.admin_token (SLIP_ADMIN_TOKEN in \
     /etc/slip/slip.env, as the README sets it up), or auth.secret while no admin_token is set; pass it as --token \
     or SLIP_TOKEN";

/// The failure for an error answer: message and code from the `{"error","code"}` body, exit code by status.
fn api_failure(status: u16, bytes: &[u8], base: &str) -> Failure {
    let error: Option<ErrorBody> = serde_json::from_slice(bytes).ok();
    let (message, code) = match &error {
        Some(e) => (e.error.clone(), Some(e.code.clone())),
        None => (String::from_utf8_lossy(bytes).trim().chars().take(200).collect(), None),
    };
    let exit_code = match status {
        401 | 403 => exit::AUTH,
        400 | 413 | 415 => exit::USAGE,
        _ => exit::API,
    };
    let hint = match (status, code.as_deref()) {
        (401, Some("invalid_token")) => Some(ADMIN_TOKEN_HINT.to_owned()),
        (401, Some("invalid_signature")) => Some(APP_KEY_HINT.to_owned()),
        (401, _) => Some(format!("signed requests: {APP_KEY_HINT}; admin requests: {ADMIN_TOKEN_HINT}")),
        (429, _) => Some("too many failed authentications from this address; wait and check the credentials".into()),
        (404, Some("app_not_found")) => Some("slip apps list shows the apps slipd has".into()),
        (409, Some("already_current")) => Some("to start the running release again, deploy its tag again".into()),
        (404, Some("not_found")) => Some(format!("is {base} a slipd of this version?")),
        _ => None,
    };
    let mut shown = match &code {
        Some(code) => format!("{message} ({code}, HTTP {status})"),
        None => format!("{message} (HTTP {status})"),
    };
    for problem in error.iter().flat_map(|e| &e.problems) {
        shown.push_str(&format!("\n  {problem}"));
    }
    Failure { message: shown, hint, exit_code, code }
}

/// Percent-encodes a path segment or query value.
pub fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn unix_seconds() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

fn root_cause(e: &dyn std::error::Error) -> String {
    let mut cause = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_answers_map_to_exit_codes_and_hints() {
        let body = br#"{"error":"invalid token","code":"invalid_token"}"#;
        let f = api_failure(401, body, "http://x");
        assert_eq!((f.exit_code, f.code.as_deref()), (exit::AUTH, Some("invalid_token")));
        assert!(f.message.contains("invalid token") && f.hint.is_some());
        assert_eq!(api_failure(400, br#"{"error":"bad key","code":"invalid_key"}"#, "http://x").exit_code, exit::USAGE);
        assert_eq!(api_failure(404, br#"{"error":"no app","code":"app_not_found"}"#, "http://x").exit_code, exit::API);
        assert_eq!(api_failure(502, b"<html>bad gateway</html>", "http://x").exit_code, exit::API);
    }

    #[test]
    fn path_segments_are_percent_encoded() {
        assert_eq!(encode("../../x"), "..%2F..%2Fx");
        assert_eq!(encode("dep_01ab"), "dep_01ab");
    }
}
