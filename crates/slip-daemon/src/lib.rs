//! slipd: the HTTP API, the per-app deploy queue and the wiring between them.
//!
//! # Layout
//! - [`run`]: boots slipd on a bound listener until a shutdown future resolves.
//! - [`router`]: the axum router, testable with `oneshot` and no socket.
//! - [`guard`]: `Host` and `Content-Type` checks before routing.
//! - [`http`]: the server: header and body deadlines, the connection cap.
//! - [`api`]: request handlers; [`auth`]: signatures and tokens; [`limiter`]: failure limiting; [`error`]: the error shape.
//! - [`events`]: the live event bus behind `/v1/events`; [`redaction`]: what an app's redactor hides.
//! - [`log_relay`]: container output to an HTTP body, redacted, plain or NDJSON, ending at shutdown.
//! - [`queue`]: the per-app deploy queue; [`release`]: turns a queued deploy and the config into a release.
//! - [`replay`]: legacy webhooks seen before are refused unless their tag runs now.
//! - [`rollback`]: which release a rollback restores, pinned by digest.
//! - [`monitor`]: background health and the periodic Caddy reconcile.
//! - [`boot`]: opening the store, connecting adapters, reconciling before the first request.
//! - [`check`]: `slipd --check`; [`cli`]: the `slipd` command line (the binary's whole `main`).
//! - [`notify`]: outbound deploy notifications, fed by the event bus; [`github`]: GitHub Deployments; [`outbound`]:
//!   the message and retry policy both share.
//! - [`systemd`]: `Type=notify` readiness, stopping and watchdog messages.

pub mod api;
pub mod auth;
pub mod boot;
pub mod check;
pub mod cli;
pub mod error;
pub mod events;
pub mod github;
pub mod guard;
pub mod heal;
pub mod health;
pub mod housekeeping;
pub mod http;
pub mod ids;
pub mod limiter;
pub mod log_relay;
pub mod logging;
pub mod metrics;
pub mod monitor;
pub mod notify;
pub mod outbound;
pub mod previews;
pub mod print_config;
pub mod queue;
pub mod redaction;
pub mod release;
pub mod reload;
pub mod replay;
pub mod rollback;
pub mod rotate_key;
pub mod routing;
pub mod state;
pub mod status;
pub mod systemd;
pub mod teardown;
pub mod watch;

#[cfg(test)]
mod tests;

use std::future::Future;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use tokio::net::TcpListener;

use crate::error::ApiError;
use crate::state::AppState;

/// Largest request body accepted on any endpoint (SPEC §6.1).
pub const BODY_LIMIT: usize = 64 * 1024;

/// Time allowed for one handler (SPEC §6.1).
pub const HANDLER_TIMEOUT: Duration = Duration::from_secs(30);

/// The HTTP API.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/v1/deploy", post(api::deploy::deploy))
        .route("/v1/status", get(api::read::status))
        .route("/v1/deploys", get(api::read::list))
        .route("/v1/deploys/{id}", get(api::read::one))
        .route("/v1/deploys/{id}/events", get(api::events::deploy_events))
        .route("/v1/deploys/{id}/cancel", post(api::cancel::cancel))
        .route("/v1/events", get(api::events::all_events))
        .route("/v1/secrets/{app}", get(api::secrets::list))
        .route("/v1/secrets/{app}/{key}", get(api::secrets::get).put(api::secrets::put).delete(api::secrets::delete))
        .route("/v1/apps/{name}/secrets", get(api::secrets::legacy_list).put(api::secrets::legacy_put))
        .route("/v1/apps/{name}/secrets/{key}", delete(api::secrets::legacy_delete))
        .route("/v1/apps/{name}/rollback", post(api::rollback::rollback))
        .route("/v1/apps/{name}/redeploy", post(api::redeploy::redeploy))
        .route("/v1/audit", get(api::audit::list))
        .route("/v1/apps", get(api::apps::list).post(api::apps::create))
        .route("/v1/apps/{name}", get(api::apps::show).patch(api::apps::patch).delete(api::apps::remove))
        .route("/v1/apps/{name}/logs", get(api::logs::logs))
        .route("/v1/previews", get(api::previews::list_all))
        .route("/v1/previews/{app}", get(api::previews::list_app).delete(api::previews::delete_all))
        .route("/v1/previews/{app}/{id}", get(api::previews::show).delete(api::previews::delete_one))
        .route("/v1/config/reload", post(api::reload::post))
        .route("/healthz", get(api::read::healthz))
        .route("/metrics", get(metrics::scrape))
        .fallback(|| async { ApiError::not_found("not_found", "no such endpoint") })
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(middleware::from_fn_with_state(state.clone(), guard::requests))
        .layer(middleware::from_fn(json_errors))
        .layer(middleware::from_fn(reject_large_bodies))
        .layer(middleware::from_fn(request_id))
        .layer(middleware::from_fn(metrics::record_requests))
        .with_state(state)
}

/// Runs slipd with `config` on `listener` until `shutdown` resolves, then shuts down gracefully:
/// new connections are refused, running deploys get `server.shutdown_timeout` to finish, and any still
/// running after that stop at their next safe point.
pub async fn run(
    config: slip_core::config::Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    serve(None, config, listener, shutdown).await
}

/// [`run`] for a config loaded from `config_path` (`--config`): the apps API writes app files there. The files
/// are read again for their texts; [`run_loaded`] takes the texts the config was parsed from.
pub async fn run_at(
    config_path: std::path::PathBuf,
    config: slip_core::config::Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let sources = slip_engine::config_source::read(&config_path).ok();
    serve(Some((config_path, sources)), config, listener, shutdown).await
}

/// [`run_at`] with the file texts `config` was parsed from ([`check::load_with_sources`]), so that a hand edit made
/// while slipd boots is not taken for what it loaded.
pub async fn run_loaded(
    config_path: std::path::PathBuf,
    config: slip_core::config::Config,
    sources: slip_core::config::Sources,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    serve(Some((config_path, Some(sources))), config, listener, shutdown).await
}

async fn serve(
    config_path: Option<(std::path::PathBuf, Option<slip_core::config::Sources>)>,
    config: slip_core::config::Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let shutdown_timeout = config.server.shutdown_timeout;
    // Installed before anything can be counted.
    metrics::handle();
    let booted = boot::boot(config).await?;
    let state = booted.state.clone();
    if let Some((path, sources)) = config_path {
        match sources {
            Some(sources) => *state.sources.lock().expect("sources lock") = Some(sources),
            None => tracing::warn!("the config files' texts are unknown; the apps API stays unavailable"),
        }
        let _ = state.config_path.set(path);
        tokio::spawn(reload::on_sighup(state.clone(), booted.closing.clone()));
    }
    tokio::spawn(notify::run(state.clone()));
    tokio::spawn(housekeeping::run(state.clone(), booted.closing.clone()));
    let listen = listener.local_addr()?;
    tracing::info!(listen = %listen, "slipd ready");
    systemd::ready(listen);
    systemd::spawn_watchdog(
        systemd::Liveness { monitor: booted.monitor.abort_handle(), listen },
        booted.closing.clone(),
    );

    let closing = booted.closing.clone();
    http::serve(listener, router(state.clone()), http::Limits::default(), async move {
        shutdown.await;
        systemd::stopping();
        closing.cancel();
    })
    .await?;

    tracing::info!("shutting down: waiting for running deploys");
    booted.tracker.close();
    if tokio::time::timeout(shutdown_timeout, booted.tracker.wait()).await.is_err() {
        tracing::warn!("deploys still running after server.shutdown_timeout; interrupting them at the next safe point");
        state.engine.shutdown.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(60), booted.tracker.wait()).await;
    }
    state.engine.shutdown.cancel();
    booted.monitor.abort();
    tracing::info!("slipd stopped");
    Ok(())
}

/// Answers 413 from `Content-Length` before reading any of the body.
async fn reject_large_bodies(request: Request, next: Next) -> Response {
    let too_large = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
        .is_some_and(|len| len > BODY_LIMIT);
    if too_large {
        return ApiError::TooLarge.into_response();
    }
    next.run(request).await
}

/// Maps axum's plain-text rejections (bad path, body limit hit while streaming, ...) to the JSON
/// error shape, so every error a client sees is `{"error","code"}`.
async fn json_errors(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json") || v.starts_with("text/event-stream"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let code = match status {
        StatusCode::PAYLOAD_TOO_LARGE => return ApiError::TooLarge.into_response(),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => return ApiError::UnsupportedMediaType.into_response(),
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::METHOD_NOT_ALLOWED => "invalid_request",
        s if s.is_server_error() => "internal",
        _ => "invalid_request",
    };
    let (parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, BODY_LIMIT).await.unwrap_or_default();
    let message = String::from_utf8_lossy(&text).trim().to_owned();
    let message = if message.is_empty() { status.canonical_reason().unwrap_or("error").to_owned() } else { message };
    let mut out =
        Response::from_parts(parts, Body::from(serde_json::json!({"error": message, "code": code}).to_string()));
    out.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    out.headers_mut().remove(header::CONTENT_LENGTH);
    out
}

/// Echoes `X-Request-Id` or generates one, on every response.
async fn request_id(request: Request, next: Next) -> Response {
    let id = request
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic()))
        .map(str::to_owned)
        .unwrap_or_else(|| format!("req_{}", ulid::Ulid::new().to_string().to_lowercase()));
    let mut response = next.run(request).await;
    if let Ok(v) = HeaderValue::from_str(&id) {
        response.headers_mut().insert("x-request-id", v);
    }
    response
}
