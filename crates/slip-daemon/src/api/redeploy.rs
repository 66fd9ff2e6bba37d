//! `POST /v1/apps/{name}/redeploy` (SPEC §7.6): admin only. Re-runs the app's current release by digest with the
//! current config and secrets (trigger `redeploy`), through the normal queue; 409 `not_deployed` when the app has
//! no current release with a recorded digest. `slip secrets set --redeploy` uses it to apply new secrets.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde_json::json;
use slip_api::DeployAccepted;
use slip_engine::clock::unix_ms;
use slip_engine::store::Trigger;

use crate::api::admin::{AdminOnly, Needs, existing_app};
use crate::error::ApiError;
use crate::ids::new_deploy_id;
use crate::rollback::recreate_current;
use crate::state::AppState;

/// The 401 message of the redeploy endpoint.
pub struct RedeployApi;

impl Needs for RedeployApi {
    const MESSAGE: &str = "redeploying needs the admin token: Authorization: Bearer <auth.admin_token>";
}

/// Handles `POST /v1/apps/{name}/redeploy`: 202 in the deploy-accepted shape.
pub async fn redeploy(
    State(state): State<AppState>,
    Path(name): Path<String>,
    AdminOnly(who, _): AdminOnly<RedeployApi>,
) -> Result<impl IntoResponse, ApiError> {
    if state.engine.shutdown.is_cancelled() {
        return Err(ApiError::Unavailable { code: "shutting_down", message: "slipd is shutting down".into() });
    }
    let config = state.config();
    let app = existing_app(&config, &name)?;
    let strategy = config.apps[&app].strategy();
    let id = new_deploy_id().parse().expect("generated ids are valid");
    let Some(mut new) =
        recreate_current(&state.store, &app, id, strategy.as_str(), unix_ms()).map_err(ApiError::store)?
    else {
        return Err(ApiError::Conflict {
            code: "not_deployed",
            message: format!("{app} has no current release to redeploy: deploy a tag first"),
            extra: serde_json::Value::Null,
        });
    };
    new.trigger = Trigger::Redeploy;
    new.actor = Some("admin".into());
    let enqueued =
        state.scheduler.enqueue(&new).map_err(ApiError::store)?.ok_or_else(|| ApiError::app_deleting(&app))?;
    let detail = json!({ "deploy_id": new.id.to_string(), "tag": new.tag.to_string() }).to_string();
    if let Err(e) = who.audit(&state, "app.redeploy".into(), app.to_string(), Some(detail)) {
        tracing::error!(error = %e, "recording a redeploy in the audit log");
    }
    tracing::info!(app = %app, deploy_id = %new.id, tag = %new.tag, status = enqueued.status.as_str(), "redeploy accepted");
    let answer = DeployAccepted {
        deploy_id: new.id.to_string(),
        app: app.to_string(),
        tag: new.tag.to_string(),
        status: enqueued.status.as_str().to_owned(),
        supersedes: enqueued.supersedes.map(|d| d.to_string()),
        preview_url: None,
        events_url: format!("/v1/deploys/{}/events", new.id),
    };
    Ok((StatusCode::ACCEPTED, Json(answer)))
}
