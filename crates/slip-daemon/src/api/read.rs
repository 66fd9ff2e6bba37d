//! Read endpoints: `GET /v1/status`, `GET /v1/deploys`, `GET /v1/deploys/{id}`, `GET /healthz`.
//!
//! Status never calls out to Caddy or the engine: it reads the store and the background monitor.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde_json::json;
use slip_api::time::rfc3339;
use slip_api::{Deploy, DeployDetail, DeployEvent, DeployList, DeployStep, Status};
use slip_engine::store::{DeployFilter, DeployRow, DeployStatus, EventKind, EventRow};

use crate::api::admin::{AdminOnly, Needs};
use crate::api::caller::{Caller, Credentials};
use crate::error::ApiError;
use crate::state::AppState;

/// `GET /v1/status`.
pub async fn status(State(state): State<AppState>, who: Caller) -> Result<impl IntoResponse, ApiError> {
    let config = state.config();
    let health = state.health.snapshot();
    let full = who == Caller::Admin || config.auth.public_status;
    let apps =
        if full { Some(crate::status::app_statuses(&state).map_err(|e| ApiError::Internal(e.into()))?) } else { None };
    Ok(Json(Status {
        daemon: "slipd".into(),
        version: full.then(|| env!("CARGO_PKG_VERSION").to_owned()),
        uptime_seconds: state.started.elapsed().as_secs(),
        caddy: ok_or_error(health.caddy),
        caddy_error: if full { health.caddy_error } else { None },
        runtime: ok_or_error(health.runtime),
        backend: state.backend.into(),
        apps,
    }))
}

fn ok_or_error(ok: bool) -> String {
    if ok { "ok".into() } else { "error".into() }
}

/// Query of `GET /v1/deploys`.
#[derive(Debug, serde::Deserialize)]
pub struct ListQuery {
    app: Option<String>,
    status: Option<String>,
    limit: Option<u32>,
    before: Option<String>,
    /// Only this preview's deploys.
    preview: Option<String>,
    /// `true`: only production deploys (no preview's).
    production: Option<bool>,
}

/// The 401 message of `GET /v1/deploys`.
pub struct DeploysApi;

impl Needs for DeploysApi {
    const MESSAGE: &str = "this endpoint needs the admin token";
}

/// `GET /v1/deploys` (admin).
pub async fn list(
    State(state): State<AppState>,
    Query(q): Query<ListQuery>,
    _: AdminOnly<DeploysApi>,
) -> Result<impl IntoResponse, ApiError> {
    let limit = q.limit.unwrap_or(20);
    if limit == 0 || limit > 200 {
        return Err(ApiError::field("invalid_request", "limit", "limit must be between 1 and 200"));
    }
    let app = q
        .app
        .map(|a| {
            a.parse().map_err(|e: slip_core::names::NameError| ApiError::field("invalid_request", "app", e.to_string()))
        })
        .transpose()?;
    let status = q
        .status
        .map(|s| s.parse::<DeployStatus>().map_err(|e| ApiError::field("invalid_request", "status", e.to_string())))
        .transpose()?;
    let before = q
        .before
        .map(|b| {
            b.parse()
                .map_err(|e: slip_core::names::NameError| ApiError::field("invalid_request", "before", e.to_string()))
        })
        .transpose()?;
    let preview = q
        .preview
        .map(|p| {
            p.parse()
                .map_err(|e: slip_core::names::NameError| ApiError::field("invalid_request", "preview", e.to_string()))
        })
        .transpose()?;
    let filter = DeployFilter {
        app,
        preview,
        status,
        limit: Some(limit),
        before,
        production_only: q.production.unwrap_or(false),
    };
    let (rows, next_before) = state.store.list_deploys(&filter).map_err(|e| ApiError::Internal(e.into()))?;
    let mut deploys = Vec::with_capacity(rows.len());
    for row in rows {
        deploys.push(deploy_object(&state, row, true)?);
    }
    Ok(Json(DeployList { deploys, next_before: next_before.map(|d| d.to_string()) }))
}

/// `GET /v1/deploys/{id}`: seven fields for the public, everything for the app's key or the admin.
pub async fn one(
    State(state): State<AppState>,
    credentials: Credentials,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let row = match id.parse::<slip_core::names::DeployId>() {
        Ok(parsed) => state.store.deploy(&parsed).map_err(|e| ApiError::Internal(e.into()))?,
        Err(_) => None,
    };
    let app = row.as_ref().map(|r| r.app.to_string());
    let who = credentials.caller(&state, app.as_deref()).await?;
    let Some(row) = row else {
        return Err(ApiError::not_found("deploy_not_found", format!("no deploy {id}")));
    };
    let full = who != Caller::Public;
    Ok(Json(deploy_object(&state, row, full)?))
}

/// Builds the API's deploy object from a row (and its events when `full`).
pub fn deploy_object(state: &AppState, row: DeployRow, full: bool) -> Result<Deploy, ApiError> {
    let detail = if full {
        let events = state.store.events(&row.id, 0).map_err(|e| ApiError::Internal(e.into()))?;
        Some(detail(&row, &events))
    } else {
        None
    };
    Ok(Deploy {
        deploy_id: row.id.to_string(),
        app: row.app.to_string(),
        tag: row.tag.to_string(),
        status: row.status.as_str().to_owned(),
        started_at: rfc3339(row.created_at),
        finished_at: row.finished_at.map(rfc3339),
        error: if full { row.error } else { public_error(&row) },
        detail,
    })
}

/// The `error` an unauthenticated reader sees: which step failed, from slip's own vocabulary, never the recorded
/// text (an engine's or a registry's message may quote configuration, paths or values).
fn public_error(row: &DeployRow) -> Option<String> {
    row.error.as_ref()?;
    let code = row.error_code.as_deref().unwrap_or("failed");
    Some(format!("deploy {} ({code}); the app's key or the admin token shows the details", row.status.as_str()))
}

fn detail(row: &DeployRow, events: &[EventRow]) -> DeployDetail {
    // The timeline starts when the deploy left the queue: `queued`/`accepted` are not steps.
    let status_events: Vec<&EventRow> = events
        .iter()
        .filter(|e| e.kind == EventKind::Status && !matches!(e.status, DeployStatus::Queued | DeployStatus::Accepted))
        .filter(|e| !e.status.is_terminal())
        .collect();
    let steps = status_events
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let end = status_events.get(i + 1).map(|n| n.at).or(row.finished_at);
            DeployStep {
                status: e.status.as_str().to_owned(),
                at: rfc3339(e.at),
                duration_ms: end.map(|end| end - e.at),
            }
        })
        .collect();
    let images = row
        .digests
        .as_deref()
        .and_then(|d| serde_json::from_str::<BTreeMap<String, String>>(d).ok())
        .unwrap_or_default();
    DeployDetail {
        error_code: row.error_code.clone(),
        preview_id: row.preview_id.as_ref().map(|p| p.to_string()),
        trigger: row.trigger.as_str().to_owned(),
        strategy: row.strategy.clone(),
        kind: row.kind.clone(),
        images,
        steps,
        events: events
            .iter()
            .filter(|e| e.kind != EventKind::Status)
            .map(|e| DeployEvent {
                seq: e.seq as i64,
                at: rfc3339(e.at),
                kind: e.kind.as_str().to_owned(),
                status: Some(e.status.as_str().to_owned()),
                message: Some(e.message.clone()),
            })
            .collect(),
        rollback_of: row.rollback_of.as_ref().map(|d| d.to_string()),
        superseded_by: row.superseded_by.as_ref().map(|d| d.to_string()),
        attempt: row.attempt as i64,
        meta: row.meta.as_deref().and_then(|m| serde_json::from_str(m).ok()),
    }
}

/// `GET /healthz`.
pub async fn healthz(State(state): State<AppState>) -> impl IntoResponse {
    let health = state.health.snapshot();
    let db_ok = state.store.ping().is_ok();
    let body = json!({
        "status": if db_ok { "ok" } else { "error" },
        "db": if db_ok { "ok" } else { "error" },
        "runtime": ok_or_error(health.runtime),
        "caddy": ok_or_error(health.caddy),
    });
    let code = if db_ok { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (code, Json(body))
}
