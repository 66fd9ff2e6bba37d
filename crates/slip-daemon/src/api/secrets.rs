//! Secrets endpoints (SPEC §6.3, §11), all behind the admin token: `GET /v1/secrets/{app}?scope=`,
//! `PUT`/`GET`/`DELETE /v1/secrets/{app}/{key}?scope=`, and the legacy aliases `GET`/`PUT
//! /v1/apps/{name}/secrets` and `DELETE /v1/apps/{name}/secrets/{key}`.
//!
//! The app must exist in the live config (404 `app_not_found`), and the key is validated before the store
//! touches the filesystem (400 `invalid_key`, `reserved_key`). Answers carry metadata only: no handler
//! ever puts a value in a response, a log line, an event or an error, and a body that does not parse is
//! answered with a fixed message rather than the parser's (which could quote the value). A change takes
//! effect for webhooks at once (the key set is read per request) and for containers at the next deploy.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, header};
use serde_json::json;
use slip_api::{
    EventFrame, LegacySecretNames, LegacySecretsPut, LegacySecretsSet, SecretInfo, SecretList, SecretMetadata,
    SecretPut, SecretSet,
};
use slip_core::names::AppName;
use slip_engine::clock::unix_ms;
use slip_engine::secrets::{Scope, SecretError, SecretKey, SecretMeta, SecretStore, check_settable};

use crate::api::admin::{Admin, AdminOnly, Needs, existing_app};
use crate::error::ApiError;
use crate::state::AppState;
use slip_api::time::rfc3339;

/// `?scope=` of the secrets endpoints.
#[derive(Debug, Default, serde::Deserialize)]
pub struct ScopeQuery {
    scope: Option<String>,
}

/// The 401 message of every secrets endpoint.
/// The 401 message of every secrets endpoint.
pub struct SecretsApi;

impl Needs for SecretsApi {
    const MESSAGE: &str = "the secrets API needs the admin token: Authorization: Bearer <auth.admin_token>";
}

/// `GET /v1/secrets/{app}`.
pub async fn list(
    State(state): State<AppState>,
    Path(app): Path<String>,
    Query(q): Query<ScopeQuery>,
    _: AdminOnly<SecretsApi>,
) -> Result<Json<SecretList>, ApiError> {
    let app = existing_app(&state.config(), &app)?;
    let scope = q.scope.as_deref().map(parse_scope).transpose()?;
    let secrets = store(&state).list(&app, scope).map_err(secret_error)?;
    Ok(Json(SecretList { secrets: secrets.into_iter().map(info).collect() }))
}

/// `PUT /v1/secrets/{app}/{key}`: `{"value","scope"}` as JSON, or the value itself as `text/plain`.
#[allow(clippy::too_many_arguments)]
pub async fn put(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((app, key)): Path<(String, String)>,
    Query(q): Query<ScopeQuery>,
    AdminOnly(who, _): AdminOnly<SecretsApi>,
    body: Bytes,
) -> Result<Json<SecretSet>, ApiError> {
    let app = existing_app(&state.config(), &app)?;
    let key = parse_key(&key)?;
    let (value, scope) = match media_type(&headers).as_deref() {
        None | Some("application/json") => {
            let put: SecretPut = serde_json::from_slice(&body).map_err(|_| {
                ApiError::bad(
                    "invalid_json",
                    r#"body must be {"value": "<the value>", "scope": "app"|"preview"} (or send the value as text/plain)"#,
                )
            })?;
            (put.value, put.scope.or(q.scope))
        }
        Some("text/plain") => {
            let value = String::from_utf8(body.to_vec())
                .map_err(|_| ApiError::field("invalid_request", "value", "a text/plain value must be UTF-8"))?;
            (value, q.scope)
        }
        Some(_) => return Err(ApiError::UnsupportedMediaType),
    };
    let scope = scope.as_deref().map(parse_scope).transpose()?.unwrap_or(Scope::App);
    check_settable(&key, scope).map_err(secret_error)?;
    check_value(&key, &value)?;
    let written = store(&state).set(&app, scope, &key, &value).map_err(secret_error)?;
    changed(&state, &who, &app, scope, &key, "set");
    warn_if_short_webhook_key(&app, &key, &value);
    Ok(Json(SecretSet {
        app: app.to_string(),
        key: key.to_string(),
        scope: scope.as_str().to_owned(),
        created: written.created,
        updated_at: rfc3339(written.updated_at),
    }))
}

/// `GET /v1/secrets/{app}/{key}`: metadata, never the value.
pub async fn get(
    State(state): State<AppState>,
    Path((app, key)): Path<(String, String)>,
    Query(q): Query<ScopeQuery>,
    _: AdminOnly<SecretsApi>,
) -> Result<Json<SecretMetadata>, ApiError> {
    let app = existing_app(&state.config(), &app)?;
    let key = parse_key(&key)?;
    let scope = q.scope.as_deref().map(parse_scope).transpose()?.unwrap_or(Scope::App);
    let meta =
        store(&state).get(&app, scope, &key).map_err(secret_error)?.ok_or_else(|| not_found(&app, scope, &key))?;
    Ok(Json(SecretMetadata {
        app: app.to_string(),
        key: key.to_string(),
        scope: scope.as_str().to_owned(),
        exists: true,
        updated_at: rfc3339(meta.updated_at),
        fingerprint: meta.fingerprint,
    }))
}

/// `DELETE /v1/secrets/{app}/{key}` (and the legacy `DELETE /v1/apps/{name}/secrets/{key}`, app scope).
pub async fn delete(
    State(state): State<AppState>,
    Path((app, key)): Path<(String, String)>,
    Query(q): Query<ScopeQuery>,
    AdminOnly(who, _): AdminOnly<SecretsApi>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let app = existing_app(&state.config(), &app)?;
    let key = parse_key(&key)?;
    let scope = q.scope.as_deref().map(parse_scope).transpose()?.unwrap_or(Scope::App);
    if !store(&state).delete(&app, scope, &key).map_err(secret_error)? {
        return Err(not_found(&app, scope, &key));
    }
    changed(&state, &who, &app, scope, &key, "deleted");
    Ok(Json(json!({"status": "ok"})))
}

/// Legacy `GET /v1/apps/{name}/secrets`: the app-scope key names.
pub async fn legacy_list(
    State(state): State<AppState>,
    Path(app): Path<String>,
    _: AdminOnly<SecretsApi>,
) -> Result<Json<LegacySecretNames>, ApiError> {
    let app = existing_app(&state.config(), &app)?;
    let secrets = store(&state).list(&app, Some(Scope::App)).map_err(secret_error)?;
    Ok(Json(LegacySecretNames { secrets: secrets.into_iter().map(|m| m.key.to_string()).collect() }))
}

/// Legacy `PUT /v1/apps/{name}/secrets` with `{"secrets":{K:V}}`: every key is validated before any write.
pub async fn legacy_put(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(app): Path<String>,
    AdminOnly(who, _): AdminOnly<SecretsApi>,
    body: Bytes,
) -> Result<Json<LegacySecretsSet>, ApiError> {
    let app = existing_app(&state.config(), &app)?;
    crate::api::deploy::check_content_type(&headers)?;
    let put: LegacySecretsPut = serde_json::from_slice(&body).map_err(|_| {
        ApiError::bad("invalid_json", r#"body must be {"secrets": {"KEY": "value", ...}} with string values"#)
    })?;
    let mut pairs = Vec::with_capacity(put.secrets.len());
    for (key, value) in &put.secrets {
        let key = parse_key(key)?;
        check_settable(&key, Scope::App).map_err(secret_error)?;
        if value.strip_suffix('\n').unwrap_or(value).is_empty() {
            return Err(secret_error(SecretError::EmptyValue { key }));
        }
        check_value(&key, value)?;
        pairs.push((key, value));
    }
    let store = store(&state);
    let mut set = Vec::with_capacity(pairs.len());
    for (key, value) in pairs {
        store.set(&app, Scope::App, &key, value).map_err(secret_error)?;
        changed(&state, &who, &app, Scope::App, &key, "set");
        warn_if_short_webhook_key(&app, &key, value);
        set.push(key.to_string());
    }
    Ok(Json(LegacySecretsSet { set }))
}

/// Logs the warning `slipd --check` gives a short `auth.secret` when a webhook key is set that short.
fn warn_if_short_webhook_key(app: &AppName, key: &SecretKey, value: &str) {
    if key.is_webhook_key() && value.len() < slip_core::defaults::MIN_KEY_LENGTH {
        tracing::warn!(
            app = %app,
            key = %key,
            hint = "`slip gen-secret` prints a 64-character random key",
            "webhook key is shorter than {} characters",
            slip_core::defaults::MIN_KEY_LENGTH
        );
    }
}

/// Legacy `DELETE /v1/apps/{name}/secrets/{key}` (app scope).
pub async fn legacy_delete(
    state: State<AppState>,
    path: Path<(String, String)>,
    admin: AdminOnly<SecretsApi>,
) -> Result<Json<serde_json::Value>, ApiError> {
    delete(state, path, Query(ScopeQuery::default()), admin).await
}

fn store(state: &AppState) -> SecretStore {
    state.secrets.clone()
}

fn parse_key(key: &str) -> Result<SecretKey, ApiError> {
    key.parse::<SecretKey>().map_err(|e| ApiError::field("invalid_key", "key", e.to_string()))
}

/// 400 `invalid_request` (field `value`) for a value with control characters (it could never reach a container intact, and engines
/// echo such values back escaped in their errors). The answer says where, never what.
fn check_value(key: &SecretKey, value: &str) -> Result<(), ApiError> {
    slip_core::env_value::check(value)
        .map_err(|e| ApiError::field("invalid_request", "value", format!("the value of {key} {e}")))
}

fn parse_scope(scope: &str) -> Result<Scope, ApiError> {
    scope.parse::<Scope>().map_err(|e| ApiError::field("invalid_request", "scope", e.to_string()))
}

fn not_found(app: &AppName, scope: Scope, key: &SecretKey) -> ApiError {
    ApiError::not_found("secret_not_found", format!("app {app} has no {scope}-scope secret {key}"))
}

/// Maps store errors onto the API's codes; I/O problems are 500s (logged with their path, never a value).
fn secret_error(e: SecretError) -> ApiError {
    match e {
        SecretError::InvalidKey { .. } => ApiError::field("invalid_key", "key", e.to_string()),
        SecretError::Reserved { .. } | SecretError::WebhookKeyScope { .. } => {
            ApiError::field("reserved_key", "key", e.to_string())
        }
        SecretError::InvalidScope { .. } => ApiError::field("invalid_request", "scope", e.to_string()),
        SecretError::EmptyValue { .. } => ApiError::field("invalid_request", "value", e.to_string()),
        SecretError::Io { .. } | SecretError::ForeignOwner { .. } => ApiError::Internal(e.into()),
    }
}

fn media_type(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
    Some(value.split(';').next().unwrap_or("").trim().to_ascii_lowercase())
}

fn info(meta: SecretMeta) -> SecretInfo {
    SecretInfo {
        key: meta.key.to_string(),
        scope: meta.scope.as_str().to_owned(),
        updated_at: rfc3339(meta.updated_at),
        fingerprint: meta.fingerprint,
    }
}

/// Logs, audits and announces a change: the key and scope only.
fn changed(state: &AppState, who: &Admin, app: &AppName, scope: Scope, key: &SecretKey, action: &str) {
    tracing::info!(app = %app, key = %key, scope = scope.as_str(), action, "secret changed");
    crate::logging::refresh(&state.config(), &state.secrets);
    let audit = who.audit(state, format!("secret.{action}"), format!("{app}/{key}"), Some(format!("scope={scope}")));
    if let Err(e) = audit {
        tracing::error!(error = %e, "recording a secret change in the audit log");
    }
    state.events.publish(EventFrame {
        kind: "secret.changed".into(),
        at: rfc3339(unix_ms()),
        app: Some(app.to_string()),
        deploy_id: None,
        preview_id: None,
        status: None,
        message: Some(format!("{scope}-scope secret {key} {action}")),
        data: Some(json!({"key": key.as_str(), "scope": scope.as_str(), "action": action})),
    });
}
