//! What every request handler shares: the live config, the store, the scheduler and the counters.

use std::sync::{Arc, RwLock};
use std::time::Instant;

use slip_core::config::Config;
use slip_core::names::AppName;
use slip_core::signature::{self, Signed};
use slip_engine::run::Engine;
use slip_engine::secrets::{Scope, SecretKey, SecretStore, WEBHOOK_KEYS};
use slip_engine::store::Store;

use crate::auth::FailureLimiter;
use crate::queue::Scheduler;

/// Shared handler state. Cheap to clone.
#[derive(Clone)]
pub struct AppState(pub Arc<Shared>);

/// The contents of [`AppState`].
pub struct Shared {
    /// The live config; swapped whole on reload, never edited in place.
    pub config: Arc<RwLock<Arc<Config>>>,
    /// History and state.
    pub store: Store,
    /// The deploy driver's dependencies.
    pub engine: Engine,
    /// The secret store of `storage.path`, with the `secrets.key_file` key loaded at boot.
    pub secrets: SecretStore,
    /// Hands deploys to runners.
    pub scheduler: Scheduler,
    /// Failed-authentication counters.
    pub limiter: FailureLimiter,
    /// A random key used to verify requests for unknown apps, so they time like known ones.
    pub decoy_key: [u8; 32],
    /// When slipd started.
    pub started: Instant,
    /// `docker` or `podman`.
    pub backend: &'static str,
    /// Background health of Caddy and the engine.
    pub health: crate::health::Health,
    /// Live events for `/v1/events`; its `closing` token ends every event stream at shutdown.
    pub events: crate::events::Bus,
    /// The `--config` path (directory or `slip.toml`), set by [`crate::run_at`]; the apps API writes
    /// `apps/<name>.toml` beside it and answers 503 when it is unset.
    pub config_path: std::sync::OnceLock<std::path::PathBuf>,
    /// The file texts the live config was parsed from (set with `config_path`). The apps API validates an edit
    /// against these, not against whatever is on disk now, so a hand edit not yet loaded never goes live as a side
    /// effect of another app's change.
    pub sources: std::sync::Mutex<Option<slip_core::config::Sources>>,
}

impl std::ops::Deref for AppState {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

impl Shared {
    /// The current config.
    pub fn config(&self) -> Arc<Config> {
        self.config.read().expect("config lock").clone()
    }

    /// The keys that may sign for `app`, or `None` when the app does not exist (SPEC §6.2): the secret
    /// store's `SLIP_SECRET` and `SLIP_SECRET_PREVIOUS`, plus `[app].secret`; if none exist,
    /// `auth.secret`.
    pub fn app_keys(&self, config: &Config, app: &AppName) -> Option<Vec<String>> {
        let app_config = config.apps.get(app)?;
        let mut keys = Vec::new();
        let store = &self.secrets;
        for key in WEBHOOK_KEYS {
            let key: SecretKey = key.parse().expect("webhook key names are valid keys");
            match store.value(app, Scope::App, &key) {
                // An empty file is no key: an empty HMAC key would be guessable.
                Ok(Some(value)) if !value.expose().is_empty() => keys.push(value.expose().to_owned()),
                Ok(_) => {}
                Err(e) => tracing::error!(app = %app, key = %key, error = %e, "cannot read an app key"),
            }
        }
        if let Some(secret) = &app_config.secret {
            keys.push(secret.expose().to_owned());
        }
        if let (true, Some(secret)) = (keys.is_empty(), &config.auth.secret) {
            keys.push(secret.expose().to_owned());
        }
        Some(keys)
    }

    /// True when `mac` signs `signed` under one of `app`'s keys. An unknown (or unparsable) app, or one
    /// with no key at all, is checked against a random per-process key, so it costs the same time and
    /// always fails: the answer never reveals whether the app exists.
    pub fn verify_for_app(&self, config: &Config, app: Option<&str>, signed: &Signed<'_>, mac: &[u8; 32]) -> bool {
        let keys = app.and_then(|a| a.parse::<AppName>().ok()).and_then(|a| self.app_keys(config, &a));
        match &keys {
            Some(keys) if !keys.is_empty() => signature::verify(keys, signed, mac),
            _ => {
                let _ = signature::verify(&[self.decoy_key], signed, mac);
                false
            }
        }
    }

    /// The admin token: `auth.admin_token`, else `auth.secret`.
    pub fn admin_token(&self, config: &Config) -> Option<String> {
        config.auth.admin_token.as_ref().or(config.auth.secret.as_ref()).map(|s| s.expose().to_owned())
    }
}

/// Serialises config writes: two concurrent edits would otherwise validate against stale text.
pub(crate) static WRITES: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Replaces the live config and the texts it was parsed from together.
pub(crate) fn swap(state: &AppState, config: Config, sources: slip_core::config::Sources) {
    // Both under the sources lock, so the apps API never sees one without the other.
    let mut held = state.sources.lock().expect("sources lock");
    crate::logging::refresh(&config, &state.secrets);
    *state.config.write().expect("config lock") = Arc::new(config);
    *held = Some(sources);
}
