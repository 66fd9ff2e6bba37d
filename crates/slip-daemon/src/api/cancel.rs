//! `POST /v1/deploys/{id}/cancel` (SPEC §7.7): signed for the deploy's app (with a timestamp) or admin. A queued
//! or accepted deploy fails at once with `cancelled`; a running one before `switching` stops at its next step
//! boundary, removes its candidate and fails with `cancelled`; from `switching` on it is refused with 409
//! `not_cancellable` (roll back instead). The deciding is [`crate::queue::Scheduler::cancel`]'s.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde_json::json;
use slip_core::names::DeployId;
use slip_engine::clock::unix_ms;
use slip_engine::store::AuditEntry;

use crate::api::caller::{Caller, Credentials};
use crate::auth::client_ip;
use crate::error::ApiError;
use crate::queue::Cancelled;
use crate::state::AppState;

/// Handles `POST /v1/deploys/{id}/cancel`: 202 `{"deploy_id","status"}`, where `status` is `failed` for a
/// deploy that was waiting and the status it was in for one that is stopping.
pub async fn cancel(
    State(state): State<AppState>,
    credentials: Credentials,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let parsed = id.parse::<DeployId>().ok();
    let row = match &parsed {
        Some(id) => state.store.deploy(id).map_err(ApiError::store)?,
        None => None,
    };
    let app = row.as_ref().map(|r| r.app.to_string());
    let actor = match credentials.caller(&state, app.as_deref()).await? {
        Caller::Admin => "admin".to_owned(),
        Caller::App(app) => format!("app:{app}"),
        Caller::Public => {
            return Err(ApiError::Unauthorized {
                code: "missing_signature",
                message: "cancelling needs the admin token or a timestamped X-Slip-Signature for the deploy's app",
            });
        }
    };
    let (Some(id), Some(row)) = (parsed, row) else {
        return Err(ApiError::not_found("deploy_not_found", format!("no deploy {id}")));
    };
    let reason = format!("cancelled by {actor}");
    let status = match state.scheduler.cancel(&id, &reason).map_err(ApiError::store)? {
        Cancelled::Waiting => "failed".to_owned(),
        Cancelled::Running(status) => status.as_str().to_owned(),
        Cancelled::NotFound => return Err(ApiError::not_found("deploy_not_found", format!("no deploy {id}"))),
        Cancelled::NotCancellable(status) => {
            let message = if status.is_terminal() {
                format!("deploy {id} already ended {status}")
            } else {
                format!("deploy {id} is {status}: past the switch it can no longer be cancelled; roll back instead")
            };
            return Err(ApiError::Conflict {
                code: "not_cancellable",
                message,
                extra: json!({ "deploy_id": id.to_string(), "status": status.as_str() }),
            });
        }
    };
    let config = state.config();
    let entry = AuditEntry {
        at: unix_ms(),
        actor: actor.clone(),
        source_ip: Some(client_ip(credentials.peer, &credentials.headers, &config.server.trusted_proxies).to_string()),
        request_id: credentials.headers.get("x-request-id").and_then(|v| v.to_str().ok()).map(str::to_owned),
        action: "deploy.cancel".into(),
        target: Some(row.app.to_string()),
        detail: Some(json!({ "deploy_id": id.to_string(), "status": status }).to_string()),
    };
    if let Err(e) = state.store.append_audit(entry) {
        tracing::error!(error = %e, "recording a cancel in the audit log");
    }
    tracing::info!(app = %row.app, deploy_id = %id, status, actor, "deploy cancel requested");
    Ok((StatusCode::ACCEPTED, Json(json!({ "deploy_id": id.to_string(), "status": status }))))
}
