//! `POST /v1/deploy`: the signed webhook (SPEC §6.2 order of checks, §6.4 body and answer).
//!
//! The signature is verified over the raw bytes before the body is trusted for anything but the app
//! name, and before anything reveals whether that app exists. An accepted deploy is committed to the
//! store before the 202 goes out, so it survives a crash.

use std::net::SocketAddr;
use std::time::Instant;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use serde_json::json;
use slip_api::DeployAccepted;
use slip_core::config::Kind;
use slip_core::names::{AppName, ImageRepo, Tag};
use slip_core::signature::{self, Signed};
use slip_engine::clock::unix_ms;
use slip_engine::store::{NewDeploy, Replayed, Trigger};

use crate::auth::{bearer, check_admin, check_skew, client_ip, invalid_signature, signature_headers};
use crate::error::ApiError;
use crate::state::AppState;

/// Handles `POST /v1/deploy`.
pub async fn deploy(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
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
    check_content_type(&headers)?;

    let result = authorize_and_parse(&state, &config, &headers, &body).await;
    let (request, actor, mac) = match result {
        Ok(ok) => ok,
        Err(e) => {
            if e.code() != "invalid_json"
                && matches!(e, ApiError::Unauthorized { .. })
                && let Some(held_back) = state.limiter.record(ip, now)
            {
                tracing::info!(code = e.code(), client_ip = %ip, held_back, "webhook rejected");
            }
            return Err(e);
        }
    };

    let app: AppName = request.app.parse().map_err(|_| invalid_signature())?;
    let app_config = config.apps.get(&app).ok_or_else(invalid_signature)?;
    let deploy_id: slip_core::names::DeployId = crate::ids::new_deploy_id().parse().expect("generated ids are valid");

    // Replay protection: each timestamped signature is accepted once; a legacy one again only for the current tag.
    // (A legacy one is checked once the body is known to be valid, so a refused body does not use it up.)
    if let Some((mac, true)) = mac {
        accept_once(&state, &config, &mac, &app, &deploy_id)?;
    }

    let tag: Tag = request
        .tag
        .as_deref()
        .ok_or_else(|| ApiError::field("invalid_tag", "tag", "tag is required"))?
        .parse()
        .map_err(|e: slip_core::names::NameError| ApiError::field("invalid_tag", "tag", e.to_string()))?;
    if let Some(image) = &request.image {
        let given: ImageRepo = image
            .parse()
            .map_err(|e: slip_core::names::NameError| ApiError::field("image_mismatch", "image", e.to_string()))?;
        if given != app_config.image {
            return Err(ApiError::field(
                "image_mismatch",
                "image",
                format!("image {given} is not this app's image {}", app_config.image),
            ));
        }
    }
    let overrides = match &request.images {
        None => serde_json::Map::new(),
        Some(_) if matches!(app_config.kind, Some(Kind::Web | Kind::Worker)) => {
            return Err(ApiError::field(
                "images_not_supported",
                "images",
                format!("app {app} is not a pod; images overrides apply to pods only"),
            ));
        }
        Some(serde_json::Value::Object(map)) if map.values().all(serde_json::Value::is_string) => map.clone(),
        Some(_) => {
            return Err(ApiError::field(
                "invalid_request",
                "images",
                "images must be an object of container name → image reference strings",
            ));
        }
    };
    let preview = match &request.preview {
        Some(field) => Some(crate::previews::check(&config, &app, field)?),
        None => None,
    };
    let meta = match &request.meta {
        Some(m) if m.to_string().len() > 4096 => {
            return Err(ApiError::field("invalid_request", "meta", "meta must be at most 4 KiB"));
        }
        Some(m) if !m.is_object() => {
            return Err(ApiError::field("invalid_request", "meta", "meta must be a JSON object"));
        }
        Some(m) => Some(m.to_string()),
        None => None,
    };

    let new = NewDeploy {
        id: deploy_id.clone(),
        app: app.clone(),
        preview_id: preview.as_ref().map(|p| p.id.clone()),
        trigger: if actor == "admin" { Trigger::Cli } else { Trigger::Webhook },
        tag: tag.clone(),
        images: if overrides.is_empty() {
            json!({ "app": app_config.image.with_tag(&tag) }).to_string()
        } else {
            json!({ "app": app_config.image.with_tag(&tag), "overrides": overrides }).to_string()
        },
        kind: Some(app_config.kind().as_str().to_owned()),
        strategy: Some(app_config.strategy().as_str().to_owned()),
        rollback_of: None,
        meta,
        actor: Some(actor.clone()),
        source_ip: Some(ip.to_string()),
        created_at: unix_ms(),
    };
    if let Some((mac, false)) = mac {
        crate::replay::accept_legacy(&state.store, &mac, &app, tag.as_str(), &deploy_id)?;
        tracing::info!(app = %app, "legacy untimestamped signature accepted");
        crate::metrics::legacy_webhook(app.as_str());
    }
    let enqueued = match &preview {
        Some(admission) => crate::previews::enqueue(&state, &config, &new, admission)?.enqueued,
        None => state.scheduler.enqueue(&new).map_err(ApiError::store)?.ok_or_else(|| ApiError::app_deleting(&app))?,
    };
    let preview_id = preview.as_ref().map(|p| p.id.as_str());
    tracing::info!(app = %app, preview = preview_id, deploy_id = %deploy_id, tag = %tag, status = enqueued.status.as_str(), actor, "webhook accepted");

    let answer = DeployAccepted {
        deploy_id: deploy_id.to_string(),
        app: app.to_string(),
        tag: tag.to_string(),
        status: enqueued.status.as_str().to_owned(),
        supersedes: enqueued.supersedes.map(|d| d.to_string()),
        preview_url: preview.and_then(|p| p.placement.url),
        events_url: format!("/v1/deploys/{deploy_id}/events"),
    };
    let result = crate::metrics::WebhookResult(if answer.status == "queued" { "queued" } else { "accepted" });
    let mut response = (StatusCode::ACCEPTED, Json(answer)).into_response();
    response.extensions_mut().insert(result);
    Ok(response)
}

/// The fields of a deploy body slip reads. Unknown fields are ignored (CI tools add their own).
#[derive(Debug, serde::Deserialize)]
struct Body {
    app: String,
    tag: Option<String>,
    image: Option<String>,
    images: Option<serde_json::Value>,
    preview: Option<serde_json::Value>,
    meta: Option<serde_json::Value>,
}

/// Steps 3-7 of SPEC §6.2: admin token or signature, body shape, key set, skew. Returns the body, the
/// actor and (for signed requests) the MAC for the replay cache, with whether it was timestamped.
async fn authorize_and_parse(
    state: &AppState,
    config: &slip_core::config::Config,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(Body, String, Option<([u8; 32], bool)>), ApiError> {
    if let Some(token) = bearer(headers) {
        check_admin(state.admin_token(config).as_deref(), &token)?;
        let request = parse_body(body)?;
        return Ok((request, "admin".into(), None));
    }
    let sig = signature_headers(headers, config.auth.require_timestamp)?;
    let request = parse_body(body)?;

    let signed = match &sig.timestamp {
        Some((text, _)) => Signed::Deploy { timestamp: text, body },
        None => Signed::LegacyDeploy { body },
    };
    if !state.verify_for_app(config, Some(&request.app), &signed, &sig.mac) {
        return Err(invalid_signature());
    }
    if let Some((_, ts)) = sig.timestamp {
        check_skew(ts, unix_ms() / 1000, config.auth.max_skew)?;
    }
    let actor = format!("app:{}", request.app);
    Ok((request, actor, Some((sig.mac, sig.timestamp.is_some()))))
}

/// Records a signed delivery (its MAC) as used, or refuses it with 409 `replayed` naming the deploy it made the
/// first time: each signature is accepted once while its timestamp is within the skew window.
pub(crate) fn accept_once(
    state: &AppState,
    config: &slip_core::config::Config,
    mac: &[u8; 32],
    app: &AppName,
    deploy_id: &slip_core::names::DeployId,
) -> Result<(), ApiError> {
    let hash = signature::delivery_hash(mac);
    let expires = unix_ms() + 2 * config.auth.max_skew.as_millis() as i64;
    let recorded =
        state.store.record_delivery(hash, app, Some(deploy_id), unix_ms(), expires).map_err(ApiError::store)?;
    match recorded {
        Ok(_) => Ok(()),
        Err(Replayed { deploy_id: original }) => Err(ApiError::Conflict {
            code: "replayed",
            message: "this signed request was already delivered".into(),
            extra: json!({"deploy_id": original.map(|d| d.to_string())}),
        }),
    }
}

fn parse_body(body: &[u8]) -> Result<Body, ApiError> {
    serde_json::from_slice::<Body>(body).map_err(|e| {
        ApiError::bad("invalid_json", format!("body must be a JSON object with a string \"app\" and \"tag\": {e}"))
    })
}

/// SPEC §6.1: a body must come as `application/json` or without a content type.
pub fn check_content_type(headers: &HeaderMap) -> Result<(), ApiError> {
    match headers.get(axum::http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()) {
        None => Ok(()),
        Some(ct) if ct.split(';').next().unwrap_or("").trim().eq_ignore_ascii_case("application/json") => Ok(()),
        // curl -d without -H sends this; the original README's examples always set JSON, but a
        // form content type on a JSON body is a common CI mistake worth a clear answer.
        Some(_) => Err(ApiError::UnsupportedMediaType),
    }
}
