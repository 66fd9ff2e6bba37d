//! Checks every request passes before routing: the `Host` header of unauthenticated requests (DNS rebinding) and
//! the body's `Content-Type` (SPEC §6.1).
//!
//! A page in a browser on the server can resolve its own name to 127.0.0.1 and then read slipd's public answers
//! as same-origin. Such a request carries the attacker's name in `Host` and no credentials (the page knows no key
//! or token), so a request without `Authorization` and `X-Slip-Signature` is answered only when its `Host` is an
//! IP literal, `localhost`, the listen address or `server.public_domain`. Signed and admin requests are not
//! checked: a browser cannot make them, and CI may reach slipd through a proxy under any name.
//!
//! This module does not authenticate anything; handlers do.

use axum::Json;
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use slip_core::config::Config;

use crate::auth::SIGNATURE_HEADER;
use crate::error::ApiError;
use crate::state::AppState;

/// The middleware: 421 `host_not_allowed` for an unauthenticated request under a foreign name, 415
/// `unsupported_media_type` for a body that is not JSON (or, for a secret PUT, plain text).
pub async fn requests(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let config = state.config();
    if !has_credentials(&request)
        && let Some(host) = request.headers().get(header::HOST)
    {
        let host = host.to_str().unwrap_or_default();
        if !host_allowed(&config, host) {
            return (
                StatusCode::MISDIRECTED_REQUEST,
                Json(json!({
                    "error": format!(
                        "Host {host:?} is not this server's name: use the listen address or server.public_domain"
                    ),
                    "code": "host_not_allowed",
                    "field": "Host",
                })),
            )
                .into_response();
        }
    }
    if let Err(e) = content_type(&request) {
        return e.into_response();
    }
    next.run(request).await
}

/// True when `host` (a `Host` header value) names this server: an IP literal, `localhost`, the host of
/// `server.listen` or `server.public_domain`, with any port.
pub fn host_allowed(config: &Config, host: &str) -> bool {
    let name = strip_port(host.trim()).trim_end_matches('.').to_ascii_lowercase();
    if name.parse::<std::net::IpAddr>().is_ok() || name == "localhost" {
        return true;
    }
    let listen = config.server.listen.to_string();
    if strip_port(&listen).eq_ignore_ascii_case(&name) {
        return true;
    }
    config.server.public_domain.as_deref().is_some_and(|d| d.eq_ignore_ascii_case(&name))
}

/// `host` without its `:port`, and an IPv6 literal without its brackets.
fn strip_port(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) && !name.contains(':') => name,
        _ => host,
    }
}

fn has_credentials(request: &Request) -> bool {
    request.headers().contains_key(header::AUTHORIZATION) || request.headers().contains_key(SIGNATURE_HEADER)
}

/// SPEC §6.1: a body comes as `application/json` or without a content type; a secret PUT may also be
/// `text/plain`, and a PATCH `application/merge-patch+json`.
fn content_type(request: &Request) -> Result<(), ApiError> {
    if !matches!(*request.method(), Method::POST | Method::PUT | Method::PATCH) {
        return Ok(());
    }
    let Some(value) = request.headers().get(header::CONTENT_TYPE) else { return Ok(()) };
    let media = value.to_str().unwrap_or_default().split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    let secret_put = request.method() == Method::PUT && request.uri().path().starts_with("/v1/secrets/");
    match media.as_str() {
        "application/json" => Ok(()),
        // RFC 7386's own media type for a merge patch (what `slip apps edit` sends).
        "application/merge-patch+json" if request.method() == Method::PATCH => Ok(()),
        "text/plain" if secret_put => Ok(()),
        _ => Err(ApiError::UnsupportedMediaType),
    }
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use slip_core::config::{SourceFile, Sources, parse};

    use super::*;
    use crate::tests::{TOKEN, send, state};

    fn config(server: &str) -> Config {
        let sources = Sources {
            slip_toml: Some(SourceFile { path: "slip.toml".into(), text: format!("[server]\n{server}\n") }),
            apps: vec![],
            env: Default::default(),
        };
        parse(&sources).expect("test config").config
    }

    #[test]
    fn only_this_servers_names_are_hosts() {
        let c = config("listen = \"127.0.0.1:7890\"\npublic_domain = \"deploy.example.com\"");
        for ok in ["127.0.0.1:7890", "localhost:7890", "LOCALHOST", "[::1]:7890", "10.1.2.3", "deploy.example.com"] {
            assert!(host_allowed(&c, ok), "{ok} is this server");
        }
        assert!(host_allowed(&c, "Deploy.Example.com:443"), "case and port do not matter");
        for bad in ["attacker.example", "deploy.example.com.attacker.example", "", "example.com"] {
            assert!(!host_allowed(&c, bad), "{bad} is not this server");
        }
        let no_domain = config("listen = \"localhost:7890\"");
        assert!(!host_allowed(&no_domain, "deploy.example.com"));
    }

    #[tokio::test]
    async fn a_rebound_name_reads_nothing_but_credentials_pass() {
        let state = state();
        for path in ["/v1/status", "/healthz", "/v1/deploys/dep_01h0000000000000000000000"] {
            let request = Request::get(path).header("host", "rebind.attacker.example").body(Body::empty()).unwrap();
            let (s, b) = send(&state, request, "127.0.0.1:1").await;
            assert_eq!((s, b["code"].as_str()), (StatusCode::MISDIRECTED_REQUEST, Some("host_not_allowed")), "{path}");
            assert_eq!(b["field"], "Host");
        }
        let local = Request::get("/v1/status").header("host", "127.0.0.1:7890").body(Body::empty()).unwrap();
        assert_eq!(send(&state, local, "127.0.0.1:1").await.0, StatusCode::OK);
        let admin = Request::get("/v1/status")
            .header("host", "ci-proxy.example")
            .header("authorization", format!("Bearer {TOKEN}"))
            .body(Body::empty())
            .unwrap();
        assert_eq!(send(&state, admin, "127.0.0.1:1").await.0, StatusCode::OK, "an admin request has credentials");
    }

    #[tokio::test]
    async fn every_body_endpoint_refuses_a_non_json_content_type() {
        let state = state();
        let cases = [
            ("POST", "/v1/apps"),
            ("PATCH", "/v1/apps/web"),
            ("POST", "/v1/config/reload"),
            ("POST", "/v1/deploy"),
            ("POST", "/v1/apps/web/rollback"),
            ("PUT", "/v1/apps/web/secrets"),
        ];
        for (method, path) in cases {
            let request = Request::builder()
                .method(method)
                .uri(path)
                .header("authorization", format!("Bearer {TOKEN}"))
                .header("content-type", "application/x-www-form-urlencoded")
                .body(Body::from("a=b"))
                .unwrap();
            let (s, b) = send(&state, request, "127.0.0.1:1").await;
            assert_eq!(
                (s, b["code"].as_str()),
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, Some("unsupported_media_type")),
                "{method} {path}: {b}"
            );
        }
        let plain = Request::put("/v1/secrets/web/API_KEY")
            .header("authorization", format!("Bearer {TOKEN}"))
            .header("content-type", "text/plain; charset=utf-8")
            .body(Body::from("a-plain-text-value"))
            .unwrap();
        assert_eq!(send(&state, plain, "127.0.0.1:1").await.0, StatusCode::OK, "a secret PUT may be text/plain");
        let merge = Request::patch("/v1/apps/web")
            .header("authorization", format!("Bearer {TOKEN}"))
            .header("content-type", "application/merge-patch+json")
            .body(Body::from("{}"))
            .unwrap();
        let (s, b) = send(&state, merge, "127.0.0.1:1").await;
        assert_ne!(s, StatusCode::UNSUPPORTED_MEDIA_TYPE, "RFC 7386's media type is a JSON patch: {b}");
    }
}
