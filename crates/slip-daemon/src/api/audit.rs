//! `GET /v1/audit?limit=&before=&verify=` (SPEC §10, §15 `slip audit`): admin only. Entries newest first, paged
//! by audit id; with `verify=true` the answer also carries the verdict of checking the whole hash chain
//! (`{"intact":true,"entries":n}` or `{"intact":false,"broken_at":id}`). Entries never hold secret values.

use axum::Json;
use axum::extract::{Query, State};
use serde::Deserialize;
use serde_json::{Value, json};
use slip_api::time::rfc3339;
use slip_engine::store::AuditVerdict;

use crate::api::admin::{AdminOnly, Needs};
use crate::error::ApiError;
use crate::state::AppState;

/// The 401 message of the audit endpoint.
pub struct AuditApi;

impl Needs for AuditApi {
    const MESSAGE: &str = "the audit log needs the admin token: Authorization: Bearer <auth.admin_token>";
}

/// Query parameters.
#[derive(Debug, Deserialize)]
pub struct AuditQuery {
    limit: Option<u32>,
    before: Option<i64>,
    #[serde(default)]
    verify: bool,
}

/// Handles `GET /v1/audit`: 200 `{"entries":[…],"next_before","verify"?}`.
pub async fn list(
    State(state): State<AppState>,
    Query(q): Query<AuditQuery>,
    AdminOnly(_, _): AdminOnly<AuditApi>,
) -> Result<Json<Value>, ApiError> {
    let page = state.store.audit_page(q.limit, q.before).map_err(ApiError::store)?;
    let entries: Vec<Value> = page
        .entries
        .iter()
        .map(|row| {
            let e = &row.entry;
            json!({
                "id": row.id,
                "at": rfc3339(e.at),
                "actor": e.actor,
                "source_ip": e.source_ip,
                "request_id": e.request_id,
                "action": e.action,
                "target": e.target,
                "detail": e.detail,
                "hash": hex::encode(row.hash),
            })
        })
        .collect();
    let mut answer = json!({ "entries": entries, "next_before": page.next_before });
    if q.verify {
        answer["verify"] = match state.store.verify_audit().map_err(ApiError::store)? {
            AuditVerdict::Intact { entries } => json!({ "intact": true, "entries": entries }),
            AuditVerdict::Broken { id } => json!({ "intact": false, "broken_at": id }),
        };
    }
    Ok(Json(answer))
}
