//! `POST /v1/config/reload` (SPEC §15 `slip reload`): the same reload as SIGHUP ([`crate::reload`]), answered.

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::api::admin::{AdminOnly, Needs};
use crate::error::ApiError;
use crate::reload::{ReloadError, log_outcome, reload};
use crate::state::AppState;

/// The 401 message of the reload endpoint.
pub struct ReloadApi;

impl Needs for ReloadApi {
    const MESSAGE: &str = "reloading needs the admin token: Authorization: Bearer <auth.admin_token>";
}

/// 200 `{"status":"ok","added","removed","changed"}`; 400 `config_invalid` with `problems`; 409 `reload_refused`
/// (a change only a restart applies); 503 `config_unavailable`.
pub async fn post(
    State(state): State<AppState>,
    AdminOnly(who, _): AdminOnly<ReloadApi>,
) -> Result<Response, ApiError> {
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
