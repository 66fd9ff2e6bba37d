//! The HTTP client: signing, bearer tokens, and turning failures into one line plus a hint.

use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use slip_api::{DeployAccepted, ErrorBody};
use slip_core::signature::{self, Signed};

/// A failed command: what to print and how to exit.
#[derive(Debug)]
pub struct Failure {
    /// The error line.
    pub message: String,
    /// An optional hint line.
    pub hint: Option<String>,
    /// Process exit code.
    pub exit_code: u8,
}

/// slipd's API over HTTP.
pub struct Client {
    base: String,
    http: reqwest::Client,
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
            return Err(Failure {
                message: format!("--server {server:?} must start with http:// or https://"),
                hint: None,
                exit_code: 2,
            });
        }
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .user_agent(concat!("slip/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Failure { message: format!("building the HTTP client: {e}"), hint: None, exit_code: 7 })?;
        Ok(Client { base: server.trim_end_matches('/').to_owned(), http, token, secret })
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
            return Err(Failure {
                message: "no credentials: pass --secret (the app key) or --token (the admin token)".into(),
                hint: Some("set SLIP_SECRET in CI".into()),
                exit_code: 4,
            });
        }
        self.send(request.body(body)).await
    }

    /// `GET /v1/deploys/{id}`, signed for `app` when a secret is known, else with the token.
    pub async fn get_deploy<T: DeserializeOwned>(&self, id: &str, app: Option<&str>) -> Result<T, Failure> {
        let target = format!("/v1/deploys/{}", encode(id));
        let mut request = self.http.get(format!("{}{target}", self.base));
        match (&self.secret, &self.token, app) {
            (Some(secret), _, Some(_)) => {
                let ts = unix_seconds().to_string();
                let signed = Signed::Request { timestamp: &ts, method: "GET", target: &target, body: b"" };
                request = request
                    .header("x-slip-signature", signature::header_value(secret.as_bytes(), &signed))
                    .header("x-slip-timestamp", ts);
            }
            (_, Some(token), _) => request = request.bearer_auth(token),
            _ => {}
        }
        self.send(request).await
    }

    /// A GET with the admin token.
    pub async fn get_admin<T: DeserializeOwned>(&self, path: &str) -> Result<T, Failure> {
        let mut request = self.http.get(format!("{}{path}", self.base));
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        self.send(request).await
    }

    async fn send<T: DeserializeOwned>(&self, request: reqwest::RequestBuilder) -> Result<T, Failure> {
        let response = request.send().await.map_err(|e| Failure {
            message: format!("cannot reach slipd at {}: {}", self.base, root_cause(&e)),
            hint: Some("is slipd running? set --server or SLIP_SERVER to its address".into()),
            exit_code: 5,
        })?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(|e| Failure {
            message: format!("reading slipd's answer: {e}"),
            hint: None,
            exit_code: 7,
        })?;
        if status.is_success() {
            return serde_json::from_slice(&bytes).map_err(|e| Failure {
                message: format!("unexpected answer from {}: {e}", self.base),
                hint: Some("is --server pointing at slipd?".into()),
                exit_code: 7,
            });
        }
        let error: Option<ErrorBody> = serde_json::from_slice(&bytes).ok();
        let (message, code) = match &error {
            Some(e) => (e.error.clone(), e.code.clone()),
            None => (String::from_utf8_lossy(&bytes).trim().to_owned(), String::new()),
        };
        let exit_code = match status.as_u16() {
            401 | 403 => 4,
            400 | 413 | 415 => 2,
            _ => 7,
        };
        let hint = match status.as_u16() {
            401 => Some("check --secret (the app's key) or --token (the admin token)".to_owned()),
            _ => None,
        };
        Err(Failure { message: format!("{message} ({code}, HTTP {})", status.as_u16()), hint, exit_code })
    }
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
