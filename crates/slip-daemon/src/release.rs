//! Turns a queued deploy row and the live config into a [`Release`] the engine can run.
//!
//! Resolution happens when the deploy *starts*, not when it is queued, so a deploy always runs with
//! the config and secrets of that moment (SPEC §11.3: a secret change takes effect at the next
//! deploy). Reading `env_file` and the secret store (through `slip_engine::secrets`) happens here too; both are
//! small local files.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use slip_core::config::{AppConfig, Config};
use slip_core::deploy::{ErrorCode, HealthPlan, Plan, StepFailure};
use slip_core::error_chain::error_chain;
use slip_core::names::{AppName, DeployId, Tag};
use slip_engine::clock::unix_ms;
use slip_engine::ports::{Mount, NetworkAttachment, RegistryCredentials, Resources};
use slip_engine::run::Release;
use slip_engine::secrets::{Scope, SecretStore};
use slip_engine::store::DeployRow;

mod env_file;
mod preview;

pub use preview::volume_dir as preview_volume_dir;

/// Resolves releases against the live config.
#[derive(Clone)]
pub struct Resolver {
    config: Arc<RwLock<Arc<Config>>>,
    secrets: SecretStore,
}

impl Resolver {
    /// A resolver reading `config` (shared with the API state, swapped on reload) and `secrets`.
    pub fn new(config: Arc<RwLock<Arc<Config>>>, secrets: SecretStore) -> Resolver {
        Resolver { config, secrets }
    }

    fn config(&self) -> Arc<Config> {
        self.config.read().expect("config lock").clone()
    }

    /// `Some(reason)` when the deploy waited in the queue longer than `deploy.queue_ttl`.
    pub fn expired(&self, row: &DeployRow) -> Option<String> {
        let config = self.config();
        let app = config.apps.get(&row.app)?;
        let ttl = app.deploy.queue_ttl;
        let waited = Duration::from_millis((unix_ms() - row.created_at).max(0) as u64);
        (waited > ttl).then(|| {
            format!("waited {}s in the queue, longer than deploy.queue_ttl ({}s)", waited.as_secs(), ttl.as_secs())
        })
    }

    /// The release `row` asks for, under the current config.
    pub fn resolve(&self, row: &DeployRow) -> Result<Release, StepFailure> {
        let config = self.config();
        let app = config.apps.get(&row.app).ok_or_else(|| {
            StepFailure::new(ErrorCode::AppDeleted, format!("app {} no longer exists in the server config", row.app))
        })?;
        if let Some(preview) = &row.preview_id {
            // A preview runs on its own hostnames and ids, never on production's (SPEC §13).
            return preview::resolve(&config, &self.secrets, app, row, preview);
        }
        let mut release = resolve_app(&config, &self.secrets, app, &row.app, row.id.clone(), row.tag.clone())?;
        // Webhook `images` overrides, checked against the manifest at `configuring` (SPEC §14.3).
        release.overrides = serde_json::from_str::<serde_json::Value>(&row.images)
            .ok()
            .and_then(|images| serde_json::from_value(images.get("overrides")?.clone()).ok())
            .unwrap_or_default();
        // Rollbacks run the digest of the release they restore, never what the tag names now (SPEC §7.6).
        if let Some(pinned) = crate::rollback::pinned_image(row) {
            release.image = pinned;
        }
        Ok(release)
    }
}

/// Builds the release of `app` at `tag` (pure apart from reading `env_file` and the secret store).
pub fn resolve_app(
    config: &Config,
    secrets: &SecretStore,
    app: &AppConfig,
    app_name: &AppName,
    deploy_id: DeployId,
    tag: Tag,
) -> Result<Release, StepFailure> {
    // Kind, routes, health and resources are settled at `configuring`, once the image's own /slip/slip.toml has
    // been read (SPEC §5); until then the server file alone says what they are.
    let kind = app.kind();
    let image = app.image.with_tag(&tag);
    let credentials = config.registry.credentials_for(app.image.host()).map(|(username, password)| {
        RegistryCredentials { username: username.to_owned(), password: password.expose().to_owned() }
    });
    let health = app.health.resolve();

    let (env, secret_keys) =
        environment(secrets, app, app_name, deploy_id.as_str(), tag.as_str(), kind.as_str(), None)?;
    let mounts = volumes(app)?;
    let plan = Plan {
        strategy: app.strategy(),
        routed: !app.routes.is_empty(),
        health: HealthPlan {
            path: health.path.clone(),
            interval: health.interval,
            timeout: health.timeout,
            retries: health.retries,
            start_period: health.start_period,
            stable_for: health.stable_for,
        },
        drain_timeout: app.deploy.drain_timeout,
        stop_grace: app.deploy.stop_grace,
        timeout: app.deploy.timeout,
        watch: app.deploy.watch,
        old: None,
    };
    Ok(Release {
        deploy_id,
        app: app_name.clone(),
        preview: None,
        preview_plan: None,
        tag,
        image,
        repository: app.image.clone(),
        credentials,
        config: Arc::new(app.clone()),
        overrides: std::collections::BTreeMap::new(),
        secret_keys,
        pod: None,
        kind: kind.as_str(),
        health_port: health.port,
        health_host: health.host.clone(),
        routes: Vec::new(),
        env,
        resources: Resources {
            memory_bytes: app.resources.memory,
            nano_cpus: app.resources.nano_cpus,
            pids: app.resources.pids,
        },
        mounts,
        network: Some(NetworkAttachment { name: app.network.clone(), alias: Some(app_name.to_string()) }),
        init: app.init,
        plan,
        redactor: crate::redaction::for_app(config, secrets, app_name),
        cancel: tokio_util::sync::CancellationToken::new(),
        cancel_reason: Default::default(),
    })
}

/// What a preview's environment differs by (SPEC §4.3, §11.3).
pub(crate) struct PreviewEnv<'a> {
    /// The preview id (`SLIP_PREVIEW_ID`).
    pub id: &'a str,
    /// Its URL (`SLIP_PREVIEW_URL`), when it has routes.
    pub url: Option<&'a str>,
}

/// A container environment in order, with the keys that are secrets beside it.
type Env = Vec<(String, String)>;

/// Container environment in SPEC §4.3's order: `[env]`, `env_file`, secrets, slip's variables, with the keys that
/// are secrets. Production gets the app-scope secrets; a preview gets its preview-scope secrets, over the app-scope
/// ones only with `preview.inherit_secrets`, plus `SLIP_PREVIEW_ID` and `SLIP_PREVIEW_URL`.
fn environment(
    secrets: &SecretStore,
    app: &AppConfig,
    app_name: &AppName,
    deploy_id: &str,
    tag: &str,
    kind: &str,
    preview: Option<&PreviewEnv<'_>>,
) -> Result<(Env, std::collections::BTreeSet<String>), StepFailure> {
    let mut env: Vec<(String, String)> = app.env.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    let mut secret_keys = std::collections::BTreeSet::new();
    if let Some(path) = &app.env_file {
        let vars = env_file::read(path).map_err(|e| StepFailure::new(ErrorCode::EnvFileMissing, error_chain(&e)))?;
        for (k, v) in vars {
            set(&mut env, k, v);
        }
    }
    let scopes: &[Scope] = match preview {
        None => &[Scope::App],
        Some(_) if app.preview.inherit_secrets => &[Scope::App, Scope::Preview],
        Some(_) => &[Scope::Preview],
    };
    for scope in scopes {
        for (k, v) in read_secrets(secrets, app_name, *scope)? {
            secret_keys.insert(k.clone());
            set(&mut env, k, v);
        }
    }
    for (k, v) in
        [("SLIP_APP", app_name.as_str()), ("SLIP_TAG", tag), ("SLIP_DEPLOY_ID", deploy_id), ("SLIP_KIND", kind)]
    {
        set(&mut env, k.to_owned(), v.to_owned());
    }
    if let Some(preview) = preview {
        set(&mut env, "SLIP_PREVIEW_ID".to_owned(), preview.id.to_owned());
        if let Some(url) = preview.url {
            set(&mut env, "SLIP_PREVIEW_URL".to_owned(), url.to_owned());
        }
    }
    Ok((env, secret_keys))
}

fn set(env: &mut Vec<(String, String)>, key: String, value: String) {
    match env.iter_mut().find(|(k, _)| *k == key) {
        Some(slot) => slot.1 = value,
        None => env.push((key, value)),
    }
}

/// One scope's secrets from the store, except `SLIP_*` keys (the webhook keys are never injected).
fn read_secrets(secrets: &SecretStore, app: &AppName, scope: Scope) -> Result<Vec<(String, String)>, StepFailure> {
    let values = secrets.values(app, scope).map_err(|e| {
        StepFailure::new(ErrorCode::EnvFileMissing, format!("reading the secrets of {app}: {}", error_chain(&e)))
    })?;
    Ok(values
        .into_iter()
        .filter(|(k, _)| !k.as_str().starts_with("SLIP_"))
        .map(|(k, v)| (k.to_string(), v.expose().to_owned()))
        .collect())
}

/// Bind mounts for `[[volumes]]`, creating missing host directories with mode 0750 (whatever the umask) and the
/// volume's `owner`. A directory that already exists is left exactly as it is.
fn volumes(app: &AppConfig) -> Result<Vec<Mount>, StepFailure> {
    let mut mounts = Vec::new();
    for v in &app.volumes {
        ensure_dir(&v.host_path, v.owner)?;
        mounts.push(Mount {
            host_path: v.host_path.clone(),
            container_path: v.mount_path.clone(),
            read_only: v.read_only,
        });
    }
    Ok(mounts)
}

/// Creates `path` (and its parents) when missing, with mode 0750 and `owner`; an existing directory is left as it is.
pub(crate) fn ensure_dir(path: &std::path::Path, owner: Option<slip_core::config::Owner>) -> Result<(), StepFailure> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    if path.exists() {
        return Ok(());
    }
    let failed = |what: &str, e: std::io::Error| {
        StepFailure::new(ErrorCode::StartFailed, format!("{what} volume directory {}: {e}", path.display()))
    };
    std::fs::DirBuilder::new().recursive(true).mode(0o750).create(path).map_err(|e| failed("creating", e))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o750))
        .map_err(|e| failed("setting mode 0750 on", e))?;
    if let Some(owner) = owner {
        std::os::unix::fs::chown(path, Some(owner.uid), Some(owner.gid))
            .map_err(|e| failed(&format!("setting owner {}:{} on", owner.uid, owner.gid), e))?;
    }
    Ok(())
}
