//! Apps endpoints (SPEC §6.3, §6.6), all behind the admin token: `GET /v1/apps`, `POST /v1/apps`,
//! `GET`/`PATCH`/`DELETE /v1/apps/{name}`.
//!
//! Writes edit the file's text with `toml_edit`, so comments, key order and every untouched `${VAR}`
//! placeholder survive. The whole config (every file on disk, with the new text in place of the app's file)
//! is re-validated with `slip_core::config::parse` before anything is written; an invalid result is a 400 with
//! the parser's `problems` and leaves the file and the live config untouched. A valid one is staged in
//! `apps/`, fsynced, renamed into place and the directory fsynced, then the live config is swapped. Routing
//! changes of a deployed app reach Caddy at once; container changes wait for the next deploy.
//!
//! Documents are shown as written: placeholders unresolved and `app.secret`, `github.token` and the notification
//! URLs and secrets as `"***"`.
//!
//! `DELETE` takes the app's slot first: queued deploys fail with `app_deleted`, and with `force=true` a running
//! deploy is cancelled (it unwinds before its switch, or finishes its drain after it) before anything is removed.
//!
//! Not done here: previews (slip has none yet) and the richer `state` object of SPEC §6.6 (only `status` and the
//! current/previous deploy ids are given).

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value as Json_, json};
use slip_core::config::{APP_SECTIONS, Config, SourceFile, Sources, parse};
use slip_core::names::AppName;
use slip_engine::store::DeployStatus;
use toml_edit::{Array, ArrayOfTables, DocumentMut, InlineTable, Item, Table, Value};

use crate::api::admin::{self, Admin, AdminOnly, Needs, existing_app};
use crate::error::ApiError;
use crate::state::AppState;

/// The 401 message of every apps endpoint.
pub struct AppsApi;

impl Needs for AppsApi {
    const MESSAGE: &str = "the apps API needs the admin token: Authorization: Bearer <auth.admin_token>";
}

/// `?force=&keep_secrets=` of `DELETE /v1/apps/{name}`.
#[derive(Debug, Default, serde::Deserialize)]
pub struct DeleteQuery {
    #[serde(default)]
    force: bool,
    #[serde(default)]
    keep_secrets: bool,
}

/// `GET /v1/apps`: `{"apps":[app]}`, sorted by name.
pub async fn list(State(state): State<AppState>, _: AdminOnly<AppsApi>) -> Result<Json<Json_>, ApiError> {
    apps_dir(&state)?; // 503 when slipd has no config path
    let (config, sources) = live(&state)?;
    let mut apps = Vec::new();
    for name in config.apps.keys() {
        let doc = doc_of(&sources, name)?;
        apps.push(document(&state, &config, name, &doc));
    }
    Ok(Json(json!({ "apps": apps })))
}

/// `GET /v1/apps/{name}`.
pub async fn show(
    State(state): State<AppState>,
    Path(name): Path<String>,
    _: AdminOnly<AppsApi>,
) -> Result<Json<Json_>, ApiError> {
    let (config, sources) = live(&state)?;
    let app = existing_app(&config, &name)?;
    let doc = doc_of(&sources, &app)?;
    Ok(Json(document(&state, &config, &app, &doc)))
}

/// `POST /v1/apps`: an app document (or the legacy flat keys); 201 with the app as written.
pub async fn create(
    State(state): State<AppState>,
    AdminOnly(who, _): AdminOnly<AppsApi>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let body = normalise_legacy(json_object(&body)?)?;
    let name = body
        .get("app")
        .and_then(|a| a.get("name"))
        .and_then(Json_::as_str)
        .ok_or_else(|| ApiError::field("invalid_request", "app.name", "the document needs app.name (or name)"))?;
    let app: AppName = name
        .parse()
        .map_err(|e: slip_core::names::NameError| ApiError::field("invalid_request", "app.name", e.to_string()))?;
    let _guard = crate::state::WRITES.lock().await;
    let dir = apps_dir(&state)?;
    if state.config().apps.contains_key(&app) || dir.join(format!("{app}.toml")).exists() {
        return Err(ApiError::Conflict {
            code: "app_exists",
            message: format!("app {app} already exists: edit it with PATCH /v1/apps/{app}"),
            extra: json!({}),
        });
    }
    unchanged_on_disk(&state, &dir, &app)?;
    let mut doc = DocumentMut::new();
    let config = match apply(&state, &dir, &app, &mut doc, &body)? {
        Ok(config) => config,
        Err(response) => return Ok(response),
    };
    audit(&state, &who, &app, "app.create");
    Ok((StatusCode::CREATED, Json(document(&state, &config, &app, &doc))).into_response())
}

/// `PATCH /v1/apps/{name}`: a JSON merge patch (RFC 7386) over the document as written.
#[allow(clippy::too_many_arguments)]
pub async fn patch(
    State(state): State<AppState>,
    Path(name): Path<String>,
    AdminOnly(who, _): AdminOnly<AppsApi>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let patch = json_object(&body)?;
    check_sections(&patch)?;
    let _guard = crate::state::WRITES.lock().await;
    let old = state.config();
    let app = existing_app(&old, &name)?;
    if let Some(new_name) = patch.get("app").and_then(|a| a.get("name"))
        && new_name.as_str() != Some(app.as_str())
    {
        return Err(ApiError::field(
            "immutable_field",
            "app.name",
            "app.name cannot change: create a new app and delete this one",
        ));
    }
    let dir = apps_dir(&state)?;
    unchanged_on_disk(&state, &dir, &app)?;
    let mut doc = read_doc(&state, &app)?;
    let config = match apply(&state, &dir, &app, &mut doc, &patch)? {
        Ok(config) => config,
        Err(response) => return Ok(response),
    };
    crate::routing::follow_routes(&state, &old, &config, &app).await;
    audit(&state, &who, &app, "app.update");
    Ok(Json(document(&state, &config, &app, &doc)).into_response())
}

/// `DELETE /v1/apps/{name}?force=&keep_secrets=`: stops and removes the app's containers, its routes, its
/// secrets (unless `keep_secrets`) and its state row; the file moves to `<storage>/trash/`. History and
/// volumes are kept; the answer lists the volumes.
#[allow(clippy::too_many_arguments)]
pub async fn remove(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Query(q): Query<DeleteQuery>,
    AdminOnly(who, _): AdminOnly<AppsApi>,
) -> Result<Json<Json_>, ApiError> {
    let app = existing_app(&state.config(), &name)?;
    // The teardown runs to its end even if the client goes away: a delete dropped halfway would leave the app
    // half removed.
    tokio::spawn(delete(state, app, q, who))
        .await
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("the delete task failed: {e}")))?
}

/// How much longer than the app's own bounds a delete waits for a cancelled deploy to end.
const CANCEL_SLACK: Duration = Duration::from_secs(30);

/// `DELETE /v1/apps/{name}` (SPEC §6.6): takes the app's slot, commits the delete (file to the trash, the store
/// forgets the app, live config swapped), then removes routes, containers and secrets, going on past errors and
/// reporting what it could not remove.
async fn delete(state: AppState, app: AppName, q: DeleteQuery, who: admin::Admin) -> Result<Json<Json_>, ApiError> {
    // Take the app's slot: nothing more starts for it (a runner checks the mark before it takes a deploy).
    let Some(_deleting) = state.scheduler.begin_delete(app.as_str()) else {
        return Err(ApiError::app_deleting(&app));
    };
    let running = running_deploy(&state, &app)?;
    if let (Some(deploy), false) = (&running, q.force) {
        return Err(ApiError::Conflict {
            code: "deploy_in_progress",
            message: format!("deploy {deploy} of {app} is running: wait for it, or pass force=true"),
            extra: json!({ "deploy_id": deploy.to_string() }),
        });
    }
    // Everything that can still refuse is checked before a running deploy is cancelled for nothing.
    apps_dir(&state)?;
    if validate(&state, &app, None)?.is_err() {
        return Err(config_invalid_without(&app));
    }
    let app_config = existing_config(&state, &app)?;
    let deploy = &app_config.deploy;
    let bound = deploy.timeout.max(deploy.drain_timeout + deploy.stop_grace) + CANCEL_SLACK;
    if !state.scheduler.cancel_and_wait(app.as_str(), bound).await {
        let id = running_deploy(&state, &app)?.map(|d| d.to_string()).unwrap_or_default();
        return Err(ApiError::Conflict {
            code: "deploy_in_progress",
            message: format!("deploy {id} of {app} did not stop within {bound:?}; nothing was deleted, try again"),
            extra: json!({ "deploy_id": id }),
        });
    }

    // Commit: the file goes to the trash, the store forgets the app, the live config loses it.
    let (old, app_config, forgotten) = {
        let _writes = crate::state::WRITES.lock().await;
        let old = state.config();
        let app_config = existing_config(&state, &app)?;
        let (config, sources) = validate(&state, &app, None)?.map_err(|_| config_invalid_without(&app))?;
        let dir = apps_dir(&state)?;
        let trashed = trash(&dir, &old.storage.path, &app)?;
        let forgotten = match state.store.forget_app(&app, slip_engine::clock::unix_ms()) {
            Ok(forgotten) => forgotten,
            Err(e) => {
                if let Err(undo) = std::fs::rename(&trashed, dir.join(format!("{app}.toml"))) {
                    tracing::error!(app = %app, error = %undo, "putting the app file back from the trash");
                }
                return Err(ApiError::Internal(anyhow::Error::new(e).context("forgetting the app in the store")));
            }
        };
        crate::state::swap(&state, config, sources);
        (old, app_config, forgotten)
    };

    let left =
        crate::teardown::remove_app(&state, &app, &old.storage.path, app_config.deploy.stop_grace, q.keep_secrets)
            .await;
    audit(&state, &who, &app, "app.delete");
    let volumes: Vec<String> = app_config.volumes.iter().map(|v| v.host_path.display().to_string()).collect();
    let failed: Vec<String> = forgotten.failed.iter().map(ToString::to_string).collect();
    Ok(Json(json!({ "status": "ok", "volumes_kept": volumes, "failed_deploys": failed, "not_removed": left })))
}

/// 400 `config_invalid`: the other files do not make a valid config without `app`.
fn config_invalid_without(app: &AppName) -> ApiError {
    ApiError::bad(
        "config_invalid",
        format!("the config without {app} is invalid; run slipd --check and fix the other files first"),
    )
}

/// The app's deploy that holds its slot (anything unfinished but `queued`), if any.
fn running_deploy(state: &AppState, app: &AppName) -> Result<Option<slip_core::names::DeployId>, ApiError> {
    let unfinished = state.store.unfinished().map_err(anyhow::Error::from)?;
    Ok(unfinished.into_iter().find(|d| d.app == *app && d.status != DeployStatus::Queued).map(|d| d.id))
}

/// The app's config as it is now (a PATCH may have changed it while the delete waited).
fn existing_config(state: &AppState, app: &AppName) -> Result<slip_core::config::AppConfig, ApiError> {
    let config = state.config();
    config.apps.get(app).cloned().ok_or_else(|| existing_app(&config, app.as_str()).expect_err("the app is gone"))
}

/// Records `action` on `app` in the audit log; a failure is logged, never answered.
fn audit(state: &AppState, who: &Admin, app: &AppName, action: &str) {
    if let Err(e) = who.audit(state, action.into(), app.to_string(), None) {
        tracing::error!(app = %app, action, error = %e, "cannot append to the audit log");
    }
    let (kind, what) = match action {
        "app.create" => ("app.created", "created"),
        "app.update" => ("app.updated", "updated"),
        _ => ("app.deleted", "deleted"),
    };
    state.events.announce(kind, Some(app.as_str()), format!("app {app} {what}"), None);
}

/// `<config dir>/apps`, from the `--config` path slipd was started with.
fn apps_dir(state: &AppState) -> Result<PathBuf, ApiError> {
    let path = state.config_path.get().ok_or_else(|| ApiError::Unavailable {
        code: "config_unavailable",
        message: "this slipd was started without a config path, so it cannot edit app files".into(),
    })?;
    let dir = if path.is_dir() { path.clone() } else { path.parent().map(FsPath::to_path_buf).unwrap_or_default() };
    Ok(dir.join("apps"))
}

/// The app's file as slipd loaded it (or last wrote it).
fn read_doc(state: &AppState, app: &AppName) -> Result<DocumentMut, ApiError> {
    doc_of(&live(state)?.1, app)
}

/// The live config and the texts it was parsed from, as one consistent pair ([`swap`] changes both under the
/// sources lock).
fn live(state: &AppState) -> Result<(Arc<Config>, Sources), ApiError> {
    let sources = state.sources.lock().expect("sources lock");
    let config = state.config();
    Ok((config, sources.clone().ok_or_else(sources_unavailable)?))
}

/// `apps/<app>.toml` among `sources`, parsed for editing.
fn doc_of(sources: &Sources, app: &AppName) -> Result<DocumentMut, ApiError> {
    let shown = PathBuf::from("apps").join(format!("{app}.toml"));
    let text = sources
        .apps
        .iter()
        .find(|f| f.path == shown)
        .map(|f| f.text.as_str())
        .ok_or_else(|| anyhow::anyhow!("apps/{app}.toml is not among the loaded files"))?;
    text.parse::<DocumentMut>()
        .map_err(|e| ApiError::Internal(anyhow::Error::new(e).context(format!("parsing apps/{app}.toml"))))
}

/// Refuses with 409 `file_changed_on_disk` when `apps/<app>.toml` on disk is not the text slipd loaded (a hand
/// edit, or a file created by hand, that slipd has not loaded): writing over it would lose it.
fn unchanged_on_disk(state: &AppState, dir: &FsPath, app: &AppName) -> Result<(), ApiError> {
    let path = dir.join(format!("{app}.toml"));
    let on_disk = match std::fs::read_to_string(&path) {
        Ok(text) => Some(text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(ApiError::Internal(anyhow::Error::new(e).context(format!("reading {}", path.display())))),
    };
    if on_disk == live_text(state, app)? {
        return Ok(());
    }
    Err(ApiError::Conflict {
        code: "file_changed_on_disk",
        message: format!(
            "{} changed on disk since slipd loaded it; load the edit with `slip reload` (or SIGHUP), or undo it, then retry",
            path.display()
        ),
        extra: json!({ "file": path.display().to_string() }),
    })
}

/// The loaded text of `apps/<app>.toml`, if slipd loaded one.
fn live_text(state: &AppState, app: &AppName) -> Result<Option<String>, ApiError> {
    let shown = PathBuf::from("apps").join(format!("{app}.toml"));
    let sources = state.sources.lock().expect("sources lock");
    let sources = sources.as_ref().ok_or_else(sources_unavailable)?;
    Ok(sources.apps.iter().find(|f| f.path == shown).map(|f| f.text.clone()))
}

fn sources_unavailable() -> ApiError {
    ApiError::Unavailable {
        code: "config_unavailable",
        message: "this slipd could not re-read its config files at start, so it cannot edit app files".into(),
    }
}

/// Merges `patch` into `doc` and, when the whole config stays valid with it as `apps/<app>.toml`, writes the
/// file and swaps the live config. `Ok(Err(response))` is the 400 (or 409) answer; nothing was written.
fn apply(
    state: &AppState,
    dir: &FsPath,
    app: &AppName,
    doc: &mut DocumentMut,
    patch: &Map<String, Json_>,
) -> Result<Result<Config, Response>, ApiError> {
    merge_table(doc.as_table_mut(), patch);
    let text = doc.to_string();
    let (config, sources) = match validate(state, app, Some(&text))? {
        Ok(valid) => valid,
        Err(response) => return Ok(Err(response)),
    };
    write_atomically(dir, app, &text)?;
    crate::state::swap(state, config.clone(), sources);
    Ok(Ok(config))
}

/// Every config file on disk with `text` as `apps/<app>.toml` (or without that file when `None`), parsed.
/// `Ok(Err(response))` is the 400 (or 409) answer naming every problem.
fn validate(
    state: &AppState,
    app: &AppName,
    text: Option<&str>,
) -> Result<Result<(Config, Sources), Response>, ApiError> {
    let mut sources = state.sources.lock().expect("sources lock").clone().ok_or_else(sources_unavailable)?;
    let shown = PathBuf::from("apps").join(format!("{app}.toml"));
    sources.apps.retain(|f| f.path != shown);
    if let Some(text) = text {
        sources.apps.push(SourceFile { path: shown, text: text.to_owned() });
    }
    match parse(&sources) {
        Ok(loaded) => Ok(Ok((loaded.config, sources))),
        Err(problems) => {
            let conflict = problems.iter().any(|p| p.message.contains("is already routed by app"));
            let response = if conflict {
                ApiError::Conflict {
                    code: "hostname_conflict",
                    message: "another app already routes this hostname and path prefix".into(),
                    extra: json!({ "problems": super::problems::wire(&problems) }),
                }
                .into_response()
            } else {
                super::problems::config_invalid("the app config", &problems, "")
            };
            Ok(Err(response))
        }
    }
}

/// Stages `text` beside the target, fsyncs it, renames it over `apps/<app>.toml` and fsyncs the directory.
fn write_atomically(dir: &FsPath, app: &AppName, text: &str) -> Result<(), ApiError> {
    let target = dir.join(format!("{app}.toml"));
    let staged = dir.join(format!(".{app}.toml.{}.tmp", ulid::Ulid::new()));
    let write = || -> std::io::Result<()> {
        let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&staged)?;
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
        std::fs::rename(&staged, &target)?;
        std::fs::File::open(dir)?.sync_all()
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&staged);
        // SPEC §6.3: a failed write is a 500; the live config is left unchanged.
        ApiError::Internal(anyhow::Error::new(e).context(format!("writing {}", target.display())))
    })
}

/// Moves `apps/<app>.toml` to `<storage>/trash/<app>.toml.<unix-milliseconds>` and answers where it went.
fn trash(dir: &FsPath, storage: &FsPath, app: &AppName) -> Result<PathBuf, ApiError> {
    let from = dir.join(format!("{app}.toml"));
    let trash = storage.join("trash");
    let ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or(Duration::ZERO).as_millis();
    let to = trash.join(format!("{app}.toml.{ms}"));
    let moved = || -> std::io::Result<()> {
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(&trash)?;
        // An app file may hold `app.secret`: the trash copy is 0600 whatever the file's mode was.
        if std::fs::rename(&from, &to).is_ok() {
            std::fs::set_permissions(&to, std::fs::Permissions::from_mode(0o600))?;
        } else {
            // Another filesystem: copy into a new 0600 file, then remove.
            let mut copy = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&to)?;
            std::io::copy(&mut std::fs::File::open(&from)?, &mut copy)?;
            copy.sync_all()?;
            std::fs::remove_file(&from)?;
        }
        std::fs::File::open(dir)?.sync_all()
    };
    moved().map_err(|e| anyhow::Error::new(e).context(format!("moving {} to {}", from.display(), to.display())))?;
    Ok(to)
}

/// `github.token` and each `notifications[].url` and `.secret` (a Slack URL is its own credential) as `"***"`.
fn mask_credentials(out: &mut Map<String, Json_>) {
    if let Some(Json_::Object(section)) = out.get_mut("github")
        && section.contains_key("token")
    {
        section.insert("token".into(), json!("***"));
    }
    if let Some(Json_::Array(entries)) = out.get_mut("notifications") {
        for entry in entries.iter_mut().filter_map(Json_::as_object_mut) {
            for key in ["url", "secret"] {
                if entry.contains_key(key) {
                    entry.insert(key.into(), json!("***"));
                }
            }
        }
    }
}

/// The response document: the file as written (secret masked), plus `name`, `image`, `domain`, `port`,
/// `kind` and `state`.
fn document(state: &AppState, config: &Config, app: &AppName, doc: &DocumentMut) -> Json_ {
    let mut out = match table_json(doc.as_table()) {
        Json_::Object(map) => map,
        _ => Map::new(),
    };
    if let Some(Json_::Object(section)) = out.get_mut("app")
        && section.contains_key("secret")
    {
        section.insert("secret".into(), json!("***"));
    }
    mask_credentials(&mut out);
    let get = |section: &str, key: &str| out.get(section).and_then(|s| s.get(key)).cloned().unwrap_or(Json_::Null);
    let (name, image, domain, port) =
        (get("app", "name"), get("app", "image"), get("routing", "domain"), get("routing", "port"));
    let kind = config.apps.get(app).map(|a| a.kind().as_str()).unwrap_or("web");
    let app_state = state.store.app_state(app).ok().flatten();
    let state_json = match app_state {
        Some(s) => json!({
            "status": s.status.as_str(),
            "current": s.current_deploy_id.map(|d| json!({ "deploy_id": d.to_string() })),
            "previous": s.previous_deploy_id.map(|d| json!({ "deploy_id": d.to_string() })),
        }),
        None => json!({ "status": "not_deployed", "current": null, "previous": null }),
    };
    out.insert("name".into(), name);
    out.insert("image".into(), image);
    out.insert("domain".into(), domain);
    out.insert("port".into(), port);
    out.insert("kind".into(), json!(kind));
    out.insert("state".into(), state_json);
    Json_::Object(out)
}

fn json_object(body: &[u8]) -> Result<Map<String, Json_>, ApiError> {
    match serde_json::from_slice::<Json_>(body) {
        Ok(Json_::Object(map)) => Ok(map),
        Ok(_) => Err(ApiError::bad("invalid_json", "the body must be a JSON object")),
        Err(e) => Err(ApiError::bad("invalid_json", format!("the body is not JSON: {e}"))),
    }
}

fn check_sections(doc: &Map<String, Json_>) -> Result<(), ApiError> {
    match doc.keys().find(|k| !APP_SECTIONS.contains(&k.as_str())) {
        Some(k) => {
            let shown: String = k.chars().take(64).collect();
            Err(ApiError::bad(
                "invalid_request",
                format!("unknown section {shown:?}: valid sections are {}", APP_SECTIONS.join(", ")),
            ))
        }
        None => Ok(()),
    }
}

/// Moves the legacy flat keys (`name`, `image`, `secret` → `app.*`; `domain`, `port` → `routing.*`; `env`
/// stays) into their sections, then checks that only sections remain.
fn normalise_legacy(mut body: Map<String, Json_>) -> Result<Map<String, Json_>, ApiError> {
    for (key, section) in
        [("name", "app"), ("image", "app"), ("secret", "app"), ("domain", "routing"), ("port", "routing")]
    {
        if let Some(value) = body.remove(key) {
            let entry = body.entry(section).or_insert_with(|| json!({}));
            match entry {
                Json_::Object(map) => {
                    map.entry(key.to_owned()).or_insert(value);
                }
                _ => return Err(ApiError::field("invalid_request", "app", format!("{section} must be an object"))),
            }
        }
    }
    check_sections(&body)?;
    Ok(body)
}

/// RFC 7386 over a TOML table: objects merge, `null` deletes, anything else replaces.
fn merge_table(table: &mut dyn toml_edit::TableLike, patch: &Map<String, Json_>) {
    for (key, value) in patch {
        match value {
            Json_::Null => {
                table.remove(key);
            }
            Json_::Object(inner) => match table.get_mut(key).and_then(Item::as_table_like_mut) {
                Some(existing) => merge_table(existing, inner),
                None => {
                    let mut new = Table::new();
                    merge_table(&mut new, inner);
                    table.insert(key, Item::Table(new));
                }
            },
            other => {
                if let Some(item) = json_item(other) {
                    table.insert(key, item);
                }
            }
        }
    }
}

/// A non-null JSON value as a TOML item: arrays of objects become arrays of tables.
fn json_item(value: &Json_) -> Option<Item> {
    match value {
        Json_::Array(items) if !items.is_empty() && items.iter().all(Json_::is_object) => {
            let mut tables = ArrayOfTables::new();
            for item in items {
                let mut table = Table::new();
                if let Json_::Object(map) = item {
                    merge_table(&mut table, map);
                }
                tables.push(table);
            }
            Some(Item::ArrayOfTables(tables))
        }
        other => json_value(other).map(Item::Value),
    }
}

fn json_value(value: &Json_) -> Option<Value> {
    Some(match value {
        Json_::Null => return None,
        Json_::Bool(b) => Value::from(*b),
        Json_::Number(n) => match n.as_i64() {
            Some(i) => Value::from(i),
            None => Value::from(n.as_f64()?),
        },
        Json_::String(s) => Value::from(s.as_str()),
        Json_::Array(items) => Value::Array(items.iter().filter_map(json_value).collect::<Array>()),
        Json_::Object(map) => {
            let mut table = InlineTable::new();
            for (k, v) in map {
                if let Some(v) = json_value(v) {
                    table.insert(k, v);
                }
            }
            Value::InlineTable(table)
        }
    })
}

fn table_json(table: &dyn toml_edit::TableLike) -> Json_ {
    Json_::Object(table.iter().filter_map(|(k, item)| Some((k.to_owned(), item_json(item)?))).collect())
}

fn item_json(item: &Item) -> Option<Json_> {
    match item {
        Item::None => None,
        Item::Value(v) => Some(value_json(v)),
        Item::Table(t) => Some(table_json(t)),
        Item::ArrayOfTables(tables) => Some(Json_::Array(tables.iter().map(|t| table_json(t)).collect())),
    }
}

fn value_json(value: &Value) -> Json_ {
    match value {
        Value::String(s) => json!(s.value()),
        Value::Integer(i) => json!(i.value()),
        Value::Float(f) => json!(f.value()),
        Value::Boolean(b) => json!(b.value()),
        Value::Datetime(d) => json!(d.value().to_string()),
        Value::Array(a) => Json_::Array(a.iter().map(value_json).collect()),
        Value::InlineTable(t) => table_json(t),
    }
}
