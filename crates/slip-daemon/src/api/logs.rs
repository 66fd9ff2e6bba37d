//! `GET /v1/apps/{name}/logs?tail=&since=&follow=&container=` (SPEC §6.3, admin token): the output of the app's
//! running containers, redacted (SPEC §11.4), as `text/plain` or, with `Accept: application/x-ndjson`, NDJSON.
//!
//! - `tail`: lines per container, 0 to 10000. Default 200, or every line when `since` is given.
//! - `since`: a duration back from now (`10m`, `1h30m`) or an RFC 3339 time; exact to the engine's timestamps.
//! - `follow`: `true` keeps the body open and relays new lines as they are written, until the client goes away,
//!   every selected container has stopped, or slipd shuts down.
//! - `container`: only this container (its name, or at least 12 characters of its id); for a pod, the name of one
//!   of its containers in the manifest.
//!
//! - `preview`: the containers of that preview instead of production's (404 `preview_not_found` when it has none).
//!
//! `instance` is not supported yet and is refused with 400 rather than ignored. How lines are rendered and relayed
//! is [`crate::log_relay`]'s job.

use std::time::SystemTime;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use slip_engine::labels;
use slip_engine::ports::{Follow, InstanceSummary, LogRequest};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::api::admin::{AdminOnly, Needs, existing_app};
use crate::error::ApiError;
use crate::log_relay::{Format, Relay, Source};
use crate::state::AppState;

/// Lines per container when neither `tail` nor `since` is given.
pub const DEFAULT_TAIL: usize = 200;

/// The largest `tail`.
pub const MAX_TAIL: usize = 10_000;

/// The 401 message of the logs endpoint.
/// The 401 message of every logs endpoint.
pub struct LogsApi;

impl Needs for LogsApi {
    const MESSAGE: &str = "container logs need the admin token: Authorization: Bearer <auth.admin_token>";
}

/// The query of `GET /v1/apps/{name}/logs`.
#[derive(Debug, Default, serde::Deserialize)]
pub struct LogsQuery {
    tail: Option<usize>,
    since: Option<String>,
    follow: Option<String>,
    container: Option<String>,
    preview: Option<String>,
    instance: Option<String>,
}

/// `GET /v1/apps/{name}/logs`.
pub async fn logs(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
    Query(q): Query<LogsQuery>,
    _: AdminOnly<LogsApi>,
) -> Result<Response, ApiError> {
    let config = state.config();
    let app = existing_app(&config, &name)?;
    let request = log_request(&q, SystemTime::now())?;
    let preview: Option<slip_core::names::PreviewId> = q
        .preview
        .as_deref()
        .map(|p| {
            p.parse().map_err(|e: slip_core::names::NameError| {
                ApiError::field("invalid_preview_id", "preview", e.to_string())
            })
        })
        .transpose()?;
    let owner = state.engine.instance_id.as_str();
    let listed = match &preview {
        None => state.engine.instances.list(&labels::releases_of(&app, owner)).await,
        Some(id) => {
            let known = state.store.preview(&app, id).map_err(ApiError::store)?;
            if known.is_none_or(|p| p.status == slip_engine::store::PreviewStatus::TornDown) {
                return Err(ApiError::not_found("preview_not_found", format!("app {app} has no live preview {id}")));
            }
            state.engine.instances.list(&labels::preview_releases_of(&app, id, owner)).await
        }
    };
    let mut containers = listed.map_err(|e| anyhow::Error::new(e).context("listing the app's containers"))?;
    containers.retain(|c| c.running && c.labels.get(labels::PREVIEW).map(String::as_str) == q.preview.as_deref());
    let mut containers: Vec<InstanceSummary> = containers.into_iter().flat_map(pod_members).collect();
    containers.sort_by(|a, b| a.name.cmp(&b.name));
    if let Some(wanted) = &q.container {
        containers = select(containers, wanted, &app)?;
    }
    let format = if accepts_ndjson(&headers) { Format::Ndjson } else { Format::Text };
    let sources = containers
        .iter()
        .map(|c| Source { container: c.name.clone(), lines: state.engine.logs.logs(&c.id, &request) })
        .collect();
    let relay = Relay {
        follow: request.follow,
        format,
        redactor: crate::redaction::for_app(&config, &state.secrets, &app),
        closing: state.events.closing().clone(),
    };
    let body = Body::from_stream(relay.body(sources));
    Ok((
        [
            (header::CONTENT_TYPE, format.content_type()),
            (header::CACHE_CONTROL, "no-cache"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
        .into_response())
}

/// The engine request for a query, with `since` durations counted back from `now`.
fn log_request(q: &LogsQuery, now: SystemTime) -> Result<LogRequest, ApiError> {
    if q.instance.is_some() {
        return Err(ApiError::field(
            "invalid_request",
            "instance",
            "this slipd does not support instance on logs yet; use container (a name or an id prefix)",
        ));
    }
    let follow = match q.follow.as_deref() {
        None | Some("false" | "0") => Follow::No,
        Some("true" | "1" | "") => Follow::UntilStopped,
        Some(_) => return Err(ApiError::field("invalid_request", "follow", "follow must be true or false")),
    };
    if q.tail.is_some_and(|tail| tail > MAX_TAIL) {
        return Err(ApiError::field("invalid_request", "tail", format!("tail must be between 0 and {MAX_TAIL}")));
    }
    let since = q.since.as_deref().map(|text| since(text, now)).transpose()?;
    let tail = match (q.tail, since) {
        (Some(tail), _) => Some(tail),
        (None, Some(_)) => None,
        (None, None) => Some(DEFAULT_TAIL),
    };
    Ok(LogRequest { tail, since, follow })
}

/// `since` as a time: a duration back from `now`, or an RFC 3339 time.
fn since(text: &str, now: SystemTime) -> Result<SystemTime, ApiError> {
    if let Ok(back) = slip_core::duration::parse(text) {
        return Ok(now.checked_sub(back).unwrap_or(SystemTime::UNIX_EPOCH));
    }
    if let Ok(at) = OffsetDateTime::parse(text, &Rfc3339) {
        return Ok(at.into());
    }
    let shown: String = text.chars().take(64).collect();
    Err(ApiError::field(
        "invalid_request",
        "since",
        format!(
            "since must be a duration back from now, such as 10m or 1h30m (units ms, s, m, h, d), or an RFC 3339 \
             time, such as 2025-01-31T12:00:00Z; got {shown:?}"
        ),
    ))
}

/// A pod's main containers, each under its manifest name (the engine knows it as `<pod>-<name>`); a container as
/// it is.
fn pod_members(instance: InstanceSummary) -> Vec<InstanceSummary> {
    let Some(members) = instance.labels.get(slip_engine::podman::CONTAINERS_LABEL).cloned() else {
        return vec![instance];
    };
    members
        .split(',')
        .filter(|m| !m.is_empty())
        .map(|m| InstanceSummary {
            id: format!("{}-{m}", instance.name),
            name: m.to_owned(),
            running: instance.running,
            labels: instance.labels.clone(),
        })
        .collect()
}

/// The one container `wanted` names (its name, or a prefix of its id of at least 12 characters).
fn select(
    containers: Vec<InstanceSummary>,
    wanted: &str,
    app: &slip_core::names::AppName,
) -> Result<Vec<InstanceSummary>, ApiError> {
    let names: Vec<String> = containers.iter().map(|c| c.name.clone()).collect();
    let chosen: Vec<InstanceSummary> = containers
        .into_iter()
        .filter(|c| c.name == wanted || (wanted.len() >= 12 && c.id.starts_with(wanted)))
        .take(1)
        .collect();
    if chosen.is_empty() {
        let shown: String = wanted.chars().take(64).collect();
        let running = if names.is_empty() { "none".to_owned() } else { names.join(", ") };
        return Err(ApiError::not_found(
            "container_not_found",
            format!("{app} has no running container {shown:?}; running: {running}"),
        ));
    }
    Ok(chosen)
}

/// Whether the client asked for NDJSON.
fn accepts_ndjson(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|v| v.split(';').next().is_some_and(|media| media.trim().eq_ignore_ascii_case("application/x-ndjson")))
}

#[cfg(test)]
mod tests;
