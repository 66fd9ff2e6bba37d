//! `POST /v1/apps/{name}/rollback` (SPEC §6.3, §7.6): signed for the app (with a timestamp) or admin; optional
//! body `{"to": "<tag> or dep_…"}`. Answers 202 in the deploy-accepted shape; the rollback then runs through the
//! normal queue like any deploy.
//!
//! Checks follow SPEC §6.2: failure limit, admin token or signature headers (timestamp required), the key set of
//! the app in the path (an unknown app is a plain bad signature for signed callers, 404 `app_not_found` only for
//! the admin), clock skew, replay, then the body. Which release is restored is [`crate::rollback`]'s job.

use std::net::SocketAddr;
use std::time::Instant;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::IntoResponse;
use serde_json::json;
use slip_api::DeployAccepted;
use slip_core::names::{AppName, DeployId};
use slip_core::signature::Signed;
use slip_engine::clock::unix_ms;
use slip_engine::store::AuditEntry;

use crate::api::deploy::check_content_type;
use crate::auth::{bearer, check_admin, check_skew, client_ip, invalid_signature, signature_headers};
use crate::error::ApiError;
use crate::ids::new_deploy_id;
use crate::rollback::{self, RollbackError};
use crate::state::AppState;

/// The optional body.
#[derive(Debug, Default, serde::Deserialize)]
struct Body {
    to: Option<String>,
}

/// Handles `POST /v1/apps/{name}/rollback`.
pub async fn rollback(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let config = state.config();
    let now = Instant::now();
    let ip = client_ip(peer, &headers, &config.server.trusted_proxies);
    let direct_loopback = peer.ip().is_loopback() && ip == peer.ip();
    state.limiter.check(ip, direct_loopback, now)?;
    if state.engine.shutdown.is_cancelled() {
        return Err(ApiError::Unavailable { code: "shutting_down", message: "slipd is shutting down".into() });
    }

    let authorized = authorize(&state, &config, &method, &uri, &headers, &name, &body);
    let actor = match authorized {
        Ok(actor) => actor,
        Err(e) => {
            if matches!(e, ApiError::Unauthorized { .. }) {
                state.limiter.record(ip, now);
            }
            return Err(e);
        }
    };
    let app: AppName = name.parse().map_err(|_| app_not_found(&name))?;
    let Some(app_config) = config.apps.get(&app) else { return Err(app_not_found(&name)) };
    check_content_type(&headers)?;
    let request: Body = if body.iter().all(u8::is_ascii_whitespace) {
        Body::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| {
            ApiError::bad("invalid_json", format!("body must be empty or {{\"to\": \"<tag> or dep_…\"}}: {e}"))
        })?
    };
    let deploy_id: DeployId = new_deploy_id().parse().expect("generated ids are valid");

    // Replay protection: a signed rollback is accepted once (admin requests carry no signature).
    if let Some(mac) = actor.mac {
        crate::api::deploy::accept_once(&state, &config, &mac, &app, &deploy_id)?;
    }

    let target = rollback::target(&state.store, &app, request.to.as_deref()).map_err(|e| match e {
        RollbackError::ReleaseNotFound(message) => ApiError::not_found("release_not_found", message),
        e @ RollbackError::NoPreviousRelease(_) => {
            ApiError::Conflict { code: "no_previous_release", message: e.to_string(), extra: json!({}) }
        }
        e @ RollbackError::AlreadyCurrent { .. } => {
            ApiError::Conflict { code: "already_current", message: e.to_string(), extra: json!({}) }
        }
        RollbackError::Store(e) => ApiError::Internal(e.into()),
    })?;
    let new = rollback::deploy_for(
        &target,
        deploy_id.clone(),
        app_config.strategy().as_str(),
        &actor.name,
        Some(ip.to_string()),
        unix_ms(),
    );
    let enqueued =
        state.scheduler.enqueue(&new).map_err(ApiError::store)?.ok_or_else(|| ApiError::app_deleting(&app))?;
    slip_engine::telemetry::rollback(app.as_str(), "manual");
    let audit = state.store.append_audit(AuditEntry {
        at: unix_ms(),
        actor: actor.name.clone(),
        source_ip: Some(ip.to_string()),
        request_id: headers.get("x-request-id").and_then(|v| v.to_str().ok()).map(str::to_owned),
        action: "app.rollback".into(),
        target: Some(app.to_string()),
        detail: Some(json!({"deploy_id": deploy_id.to_string(), "rollback_of": target.id.to_string()}).to_string()),
    });
    if let Err(e) = audit {
        tracing::error!(error = %e, "recording a rollback in the audit log");
    }
    tracing::info!(
        app = %app,
        deploy_id = %deploy_id,
        rollback_of = %target.id,
        tag = %target.tag,
        status = enqueued.status.as_str(),
        actor = actor.name,
        "rollback accepted"
    );
    let answer = DeployAccepted {
        deploy_id: deploy_id.to_string(),
        app: app.to_string(),
        tag: target.tag.to_string(),
        status: enqueued.status.as_str().to_owned(),
        supersedes: enqueued.supersedes.map(|d| d.to_string()),
        preview_url: None,
        events_url: format!("/v1/deploys/{deploy_id}/events"),
    };
    Ok((StatusCode::ACCEPTED, Json(answer)))
}

/// Who asked, and the MAC of a signed request (for the replay cache).
struct Actor {
    name: String,
    mac: Option<[u8; 32]>,
}

/// Steps 3-7 of SPEC §6.2 for a signed non-deploy request: admin token, or a timestamped signature over
/// `"<ts>.<METHOD> <target>\n<body>"` by one of the app's keys, within the accepted skew.
fn authorize(
    state: &AppState,
    config: &slip_core::config::Config,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    app: &str,
    body: &[u8],
) -> Result<Actor, ApiError> {
    if let Some(token) = bearer(headers) {
        check_admin(state.admin_token(config).as_deref(), &token)?;
        return Ok(Actor { name: "admin".into(), mac: None });
    }
    let sig = signature_headers(headers, true)?;
    let (ts_text, ts) = sig.timestamp.clone().ok_or_else(invalid_signature)?;
    let target = uri.path_and_query().map(|p| p.as_str()).unwrap_or(uri.path());
    let signed = Signed::Request { timestamp: &ts_text, method: method.as_str(), target, body };
    if !state.verify_for_app(config, Some(app), &signed, &sig.mac) {
        return Err(invalid_signature());
    }
    check_skew(ts, unix_ms() / 1000, config.auth.max_skew)?;
    Ok(Actor { name: format!("app:{app}"), mac: Some(sig.mac) })
}

fn app_not_found(name: &str) -> ApiError {
    crate::api::admin::app_not_found(name)
}
