//! `POST /v1/config/reload` (SPEC §15 `slip reload`): the same reload as SIGHUP ([`crate::reload`]), answered.

use std::net::SocketAddr;

use axum::Json;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, Method, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::api::admin;
use crate::error::ApiError;
use crate::reload::{ReloadError, log_outcome, reload};
use crate::state::AppState;

/// 200 `{"status":"ok","added","removed","changed"}`; 400 `config_invalid` with `problems`; 409 `reload_refused`
/// (a change only a restart applies); 503 `config_unavailable`.
pub async fn post(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    const NEEDS_ADMIN: &str = "reloading needs the admin token: Authorization: Bearer <auth.admin_token>";
    let who = admin::require(&state, peer, &method, &uri, &headers, NEEDS_ADMIN).await?;
    let outcome = reload(&state).await;
    log_outcome(&outcome);
    let detail = match &outcome {
        Ok(r) => format!("added {:?}, removed {:?}, changed {:?}", r.added, r.removed, r.changed),
        Err(e) => e.to_string(),
    };
    if let Err(e) = who.audit(&state, "config.reload".into(), "config".into(), Some(detail)) {
        tracing::error!(error = %e, "cannot append to the audit log");
    }
    match outcome {
        Ok(r) => Ok(Json(json!({ "status": "ok", "added": r.added, "removed": r.removed, "changed": r.changed }))
            .into_response()),
        Err(ReloadError::Invalid(problems)) => {
            Ok(crate::api::problems::config_invalid("the config", &problems, "; the running config stays"))
        }
        Err(e @ ReloadError::NotLive(_)) => {
            Err(ApiError::Conflict { code: "reload_refused", message: e.to_string(), extra: serde_json::Value::Null })
        }
        Err(e @ ReloadError::NoPath) => {
            Err(ApiError::Unavailable { code: "config_unavailable", message: e.to_string() })
        }
        Err(ReloadError::Read(e)) => Err(ApiError::Internal(e.context("reloading the config"))),
    }
}
