//! The preview endpoints (SPEC §6.3): list, show and tear down previews. Reads and teardowns of one app's previews
//! take that app's timestamped signature or the admin token; the list of every preview is admin-only. An unknown
//! app is a bad signature for signed callers (401) and 404 only for the admin.

use axum::Json;
use axum::extract::{Path, State};
use axum::response::IntoResponse;
use slip_api::time::rfc3339;
use slip_api::{Preview, PreviewList, PreviewTornDown, PreviewsTornDown};
use slip_core::names::{AppName, PreviewId};
use slip_engine::store::{InstanceRole, PreviewRow};

use crate::api::admin::{AdminOnly, Needs};
use crate::api::caller::{Caller, Credentials};
use crate::error::ApiError;
use crate::state::AppState;

/// The 401 message of `GET /v1/previews`.
pub struct PreviewsApi;

impl Needs for PreviewsApi {
    const MESSAGE: &str = "listing every preview needs the admin token";
}

/// `GET /v1/previews` (admin): every preview, torn-down ones included.
pub async fn list_all(State(state): State<AppState>, _: AdminOnly<PreviewsApi>) -> Result<impl IntoResponse, ApiError> {
    let rows = state.store.previews(None).map_err(ApiError::store)?;
    Ok(Json(PreviewList { previews: rows.iter().map(|r| object(&state, r)).collect() }))
}

/// `GET /v1/previews/{app}` (signed or admin): the app's previews as a bare array (the original API's shape).
pub async fn list_app(
    State(state): State<AppState>,
    credentials: Credentials,
    Path(app): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let app = authorized_app(&state, &credentials, &app).await?;
    let rows = state.store.previews(Some(&app)).map_err(ApiError::store)?;
    Ok(Json(rows.iter().map(|r| object(&state, r)).collect::<Vec<_>>()))
}

/// `GET /v1/previews/{app}/{id}` (signed or admin).
pub async fn show(
    State(state): State<AppState>,
    credentials: Credentials,
    Path((app, id)): Path<(String, String)>,
) -> Result<impl IntoResponse, ApiError> {
    let app = authorized_app(&state, &credentials, &app).await?;
    let id = preview_id(&id)?;
    let row = state.store.preview(&app, &id).map_err(ApiError::store)?.ok_or_else(|| not_found(&app, &id))?;
    Ok(Json(object(&state, &row)))
}

/// `DELETE /v1/previews/{app}/{id}` (signed or admin): tears the preview down; idempotent.
pub async fn delete_one(
    State(state): State<AppState>,
    credentials: Credentials,
    Path((app, id)): Path<(String, String)>,
) -> Result<impl IntoResponse, ApiError> {
    let (app, who) = authorized(&state, &credentials, &app).await?;
    let id = preview_id(&id)?;
    let why = format!("DELETE by {who}");
    let torn_down = crate::previews::teardown(&state, &app, &id, &why).await.map_err(ApiError::Internal)?;
    Ok(Json(PreviewTornDown { status: "ok".into(), torn_down }))
}

/// `DELETE /v1/previews/{app}` (signed or admin): tears down every live preview of the app.
pub async fn delete_all(
    State(state): State<AppState>,
    credentials: Credentials,
    Path(app): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let (app, who) = authorized(&state, &credentials, &app).await?;
    let why = format!("DELETE of every preview by {who}");
    let mut torn_down = Vec::new();
    for row in state.store.live_previews(Some(&app)).map_err(ApiError::store)? {
        if crate::previews::teardown(&state, &app, &row.id, &why).await.map_err(ApiError::Internal)? {
            torn_down.push(row.id.to_string());
        }
    }
    Ok(Json(PreviewsTornDown { torn_down }))
}

/// The app of the path, once the caller is its signer or the admin.
async fn authorized_app(state: &AppState, credentials: &Credentials, app: &str) -> Result<AppName, ApiError> {
    Ok(authorized(state, credentials, app).await?.0)
}

/// The app of the path and who asked (`admin` or `app:<name>`), once the caller is its signer or the admin.
async fn authorized(state: &AppState, credentials: &Credentials, app: &str) -> Result<(AppName, String), ApiError> {
    let caller = credentials.caller(state, Some(app)).await?;
    let name = match caller {
        Caller::Public => Err(ApiError::Unauthorized {
            code: "missing_signature",
            message: "this endpoint needs the app's signature (X-Slip-Signature with X-Slip-Timestamp) or the admin token",
        }),
        // The signature verified against the app's keys, so the app exists.
        Caller::App(_) => app.parse().map_err(|_| crate::auth::invalid_signature()),
        Caller::Admin => {
            let name: AppName = app.parse().map_err(|_| crate::api::admin::app_not_found(app))?;
            let known = state.config().apps.contains_key(&name)
                || !state.store.previews(Some(&name)).unwrap_or_default().is_empty();
            if known { Ok(name) } else { Err(crate::api::admin::app_not_found(app)) }
        }
    }?;
    let who = if caller == Caller::Admin { "admin".to_owned() } else { format!("app:{name}") };
    Ok((name, who))
}

fn preview_id(id: &str) -> Result<PreviewId, ApiError> {
    id.parse().map_err(|e: slip_core::names::NameError| ApiError::field("invalid_preview_id", "id", e.to_string()))
}

fn not_found(app: &AppName, id: &PreviewId) -> ApiError {
    ApiError::not_found("preview_not_found", format!("app {app} has no preview {id}"))
}

/// The preview object of SPEC §6.5.
fn object(state: &AppState, row: &PreviewRow) -> Preview {
    let config = state.config();
    let url = slip_core::preview::place(&config, &row.app, &row.id).ok().and_then(|p| p.url);
    let port = state
        .store
        .instances(&row.app, Some(&row.id))
        .ok()
        .and_then(|rows| rows.into_iter().find(|i| i.role == InstanceRole::Current))
        .and_then(|i| i.ports.values().next().copied());
    Preview {
        preview_id: row.id.to_string(),
        app: row.app.to_string(),
        status: row.status.as_str().to_owned(),
        sha: row.sha.clone(),
        tag: row.tag.as_ref().map(ToString::to_string),
        domain: row.domain.clone(),
        url,
        deploy_id: row.deploy_id.as_ref().map(ToString::to_string),
        port,
        deployed_at: row.deployed_at.map(rfc3339),
        expires_at: row.expires_at.map(rfc3339),
        error: row.error.clone(),
    }
}
