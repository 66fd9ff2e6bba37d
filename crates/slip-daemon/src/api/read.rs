//! Read endpoints: `GET /v1/status`, `GET /v1/deploys`, `GET /v1/deploys/{id}`, `GET /healthz`.
//!
//! Status never calls out to Caddy or the engine: it reads the store and the background monitor.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use axum::Json;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::IntoResponse;
use serde_json::json;
use slip_api::{AppStatus, Deploy, DeployDetail, DeployEvent, DeployList, DeployStep, LastDeploy, ReleaseRef, Status};
use slip_core::signature::Signed;
use slip_engine::clock::unix_ms;
use slip_engine::store::{
    AppStatus as StoredStatus, DeployFilter, DeployRow, DeployStatus, EventKind, EventRow, InstanceRole,
};

use crate::api::admin;
use crate::auth::{bearer, check_admin, check_skew, client_ip, invalid_signature, signature_headers};
use crate::error::ApiError;
use crate::state::AppState;

/// Who is asking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// Nobody in particular.
    Public,
    /// A signed request for this app.
    App(String),
    /// The admin token.
    Admin,
}

/// Works out the caller of a read request: a valid bearer token is admin, a valid timestamped
/// signature is that app, no credentials at all is public. Invalid credentials are an error (and count
/// against the client's failure limit), never silently downgraded to public.
pub async fn caller(
    state: &AppState,
    peer: SocketAddr,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    app_of_request: Option<&str>,
) -> Result<Caller, ApiError> {
    let config = state.config();
    let ip = client_ip(peer, headers, &config.server.trusted_proxies);
    let direct_loopback = peer.ip().is_loopback() && ip == peer.ip();
    let now = std::time::Instant::now();
    state.limiter.check(ip, direct_loopback, now)?;
    let result = (|| {
        if let Some(token) = bearer(headers) {
            check_admin(state.admin_token(&config).as_deref(), &token)?;
            return Ok(Caller::Admin);
        }
        if headers.get(crate::auth::SIGNATURE_HEADER).is_none() {
            return Ok(Caller::Public);
        }
        let sig = signature_headers(headers, true)?;
        let (ts_text, ts) = sig.timestamp.clone().expect("required above");
        let target = uri.path_and_query().map(|p| p.as_str()).unwrap_or(uri.path());
        let signed = Signed::Request { timestamp: &ts_text, method: method.as_str(), target, body: b"" };
        if !state.verify_for_app(&config, app_of_request, &signed, &sig.mac) {
            return Err(invalid_signature());
        }
        check_skew(ts, unix_ms() / 1000, config.auth.max_skew)?;
        Ok(Caller::App(app_of_request.unwrap_or_default().to_owned()))
    })();
    if let Err(ApiError::Unauthorized { .. }) = &result {
        state.limiter.record(ip, now);
    }
    result
}

/// `GET /v1/status`.
pub async fn status(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Result<impl IntoResponse, ApiError> {
    let who = caller(&state, peer, &method, &uri, &headers, None).await?;
    let config = state.config();
    let health = state.health.snapshot();
    let full = who == Caller::Admin || config.auth.public_status;
    let apps = if full { Some(app_statuses(&state)?) } else { None };
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

fn app_statuses(state: &AppState) -> Result<BTreeMap<String, AppStatus>, ApiError> {
    let config = state.config();
    let store = &state.store;
    let mut out = BTreeMap::new();
    for (app_name, app) in &config.apps {
        let name = app_name.as_str();
        let app_state = store.app_state(app_name).map_err(|e| ApiError::Internal(e.into()))?;
        let (latest, _) = store
            .list_deploys(&DeployFilter { app: Some(app_name.clone()), limit: Some(1), ..DeployFilter::default() })
            .map_err(|e| ApiError::Internal(e.into()))?;
        let latest = latest.into_iter().next();
        let current = match app_state.as_ref().and_then(|s| s.current_deploy_id.clone()) {
            Some(id) => store.deploy(&id).map_err(|e| ApiError::Internal(e.into()))?,
            None => None,
        };
        let previous = match app_state.as_ref().and_then(|s| s.previous_deploy_id.clone()) {
            Some(id) => store.deploy(&id).map_err(|e| ApiError::Internal(e.into()))?,
            None => None,
        };
        let instance = store
            .instances(app_name, None)
            .map_err(|e| ApiError::Internal(e.into()))?
            .into_iter()
            .find(|i| i.role == InstanceRole::Current);
        let port = instance.as_ref().and_then(|i| {
            serde_json::from_str::<Vec<serde_json::Value>>(&i.ports)
                .ok()
                .and_then(|ports| ports.first().and_then(|p| p["host"].as_u64()))
                .map(|p| p as u16)
        });
        let deploying = latest.as_ref().is_some_and(|d| !d.status.is_terminal());
        let down = app_state.as_ref().is_some_and(|s| s.status == StoredStatus::Down);
        let status = if deploying {
            "deploying"
        } else if down {
            "down"
        } else if current.is_some() {
            "running"
        } else if latest.as_ref().is_some_and(|d| d.status == DeployStatus::Failed) {
            "failed"
        } else {
            "not_deployed"
        };
        out.insert(
            name.to_owned(),
            AppStatus {
                status: status.into(),
                kind: app.kind().as_str().into(),
                tag: current.as_ref().map(|d| d.tag.to_string()),
                deploy_id: current.as_ref().map(|d| d.id.to_string()),
                deployed_at: current.as_ref().and_then(|d| d.finished_at).map(rfc3339),
                container_id: instance.as_ref().map(|i| i.runtime_id.clone()),
                port,
                previous: previous.as_ref().map(|d| ReleaseRef {
                    deploy_id: d.id.to_string(),
                    tag: d.tag.to_string(),
                    deployed_at: d.finished_at.map(rfc3339),
                }),
                last_deploy: latest
                    .as_ref()
                    .map(|d| LastDeploy { deploy_id: d.id.to_string(), status: d.status.as_str().to_owned() }),
                previews: 0,
                config_drift: false,
            },
        );
    }
    Ok(out)
}

/// Query of `GET /v1/deploys`.
#[derive(Debug, serde::Deserialize)]
pub struct ListQuery {
    app: Option<String>,
    status: Option<String>,
    limit: Option<u32>,
    before: Option<String>,
}

/// `GET /v1/deploys` (admin).
pub async fn list(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    Query(q): Query<ListQuery>,
) -> Result<impl IntoResponse, ApiError> {
    admin::require(&state, peer, &method, &uri, &headers, "this endpoint needs the admin token").await?;
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
    let filter = DeployFilter { app, status, limit: Some(limit), before, ..DeployFilter::default() };
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
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let row = match id.parse::<slip_core::names::DeployId>() {
        Ok(parsed) => state.store.deploy(&parsed).map_err(|e| ApiError::Internal(e.into()))?,
        Err(_) => None,
    };
    let app = row.as_ref().map(|r| r.app.to_string());
    let who = caller(&state, peer, &method, &uri, &headers, app.as_deref()).await?;
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

/// Unix milliseconds → RFC 3339 UTC with milliseconds.
pub fn rfc3339(ms: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let format =
        time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");
    t.format(&format).unwrap_or_default()
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
