//! The first steps the admin-only endpoints share: the admin token (or 401 in the endpoint's own words), who
//! asked (for the audit log), and the app the path names (or 404 `app_not_found`).
//!
//! Not here: signed callers (see [`crate::api::read::caller`]), the rollback endpoint's own checks (it also
//! takes signed requests), and what each endpoint logs or announces.

use std::net::SocketAddr;

use axum::http::{HeaderMap, Method, Uri};
use slip_core::config::Config;
use slip_core::names::AppName;
use slip_engine::clock::unix_ms;
use slip_engine::store::{AuditEntry, StoreError};

use crate::api::read::{Caller, caller};
use crate::auth::client_ip;
use crate::error::ApiError;
use crate::state::AppState;

/// Who asked, for the audit log.
pub(crate) struct Admin {
    /// The client's address, seen through the trusted proxies.
    ip: String,
    /// The caller's `X-Request-Id`, when it sent one.
    request_id: Option<String>,
}

impl Admin {
    /// Appends `action` on `target` to the audit log, as the admin; the caller logs a failure in its own words.
    pub(crate) fn audit(
        &self,
        state: &AppState,
        action: String,
        target: String,
        detail: Option<String>,
    ) -> Result<(), StoreError> {
        let entry = AuditEntry {
            at: unix_ms(),
            actor: "admin".into(),
            source_ip: Some(self.ip.clone()),
            request_id: self.request_id.clone(),
            action,
            target: Some(target),
            detail,
        };
        state.store.append_audit(entry).map(drop)
    }
}

/// The admin token, or 401 `invalid_token` with `message` (which says what needs the token). Bad credentials
/// count against the client's failure limit, as for every caller.
pub(crate) async fn require(
    state: &AppState,
    peer: SocketAddr,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    message: &'static str,
) -> Result<Admin, ApiError> {
    match caller(state, peer, method, uri, headers, None).await? {
        Caller::Admin => {
            let config = state.config();
            Ok(Admin {
                ip: client_ip(peer, headers, &config.server.trusted_proxies).to_string(),
                request_id: headers.get("x-request-id").and_then(|v| v.to_str().ok()).map(str::to_owned),
            })
        }
        _ => Err(ApiError::Unauthorized { code: "invalid_token", message }),
    }
}

/// The app `name` names, or 404 `app_not_found` when `config` has no such app.
pub(crate) fn existing_app(config: &Config, name: &str) -> Result<AppName, ApiError> {
    name.parse::<AppName>().ok().filter(|app| config.apps.contains_key(app)).ok_or_else(|| app_not_found(name))
}

/// 404 `app_not_found` for `name`, worded the same by every endpoint.
pub(crate) fn app_not_found(name: &str) -> ApiError {
    let shown: String = name.chars().take(64).collect();
    ApiError::not_found("app_not_found", format!("no app {shown:?} in the server config (apps/{shown}.toml)"))
}
