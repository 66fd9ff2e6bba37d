//! Reloading the config from disk (SIGHUP and `POST /v1/config/reload`, SPEC §15): every file is read and validated
//! first, and the running config stays as it is when anything is invalid or cannot change while slipd runs.
//!
//! What changes live: apps added, apps edited (routing reaches Caddy at once when the running release exposes the
//! ports; container settings apply at the next deploy), apps removed that were never deployed, `[auth]` and
//! `[registry]`. What needs a restart: `[server]`, `[runtime]`, `[caddy]`, `[storage]`, `[secrets]`, `[preview]` and
//! `[log]`; a reload that changes them is refused, naming the sections. A deployed app whose file is gone is
//! refused too: deleting it means stopping its containers, which `slip apps rm` does.

use std::collections::BTreeSet;

use slip_core::config::{Config, Problem, parse};
use slip_engine::config_source;
use tokio_util::sync::CancellationToken;

use crate::state::AppState;

/// What a reload changed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Reloaded {
    /// Apps that are new.
    pub added: Vec<String>,
    /// Apps whose file is gone (never deployed).
    pub removed: Vec<String>,
    /// Apps whose config changed.
    pub changed: Vec<String>,
}

/// Why a reload left the config as it was.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// slipd was started without a config path (an embedding).
    #[error("this slipd was started without a config path, so it cannot reload")]
    NoPath,
    /// The files could not be read.
    #[error("reading the config: {0:#}")]
    Read(anyhow::Error),
    /// The files are invalid.
    #[error("the config is invalid ({} problem(s)); the running config stays", .0.len())]
    Invalid(Vec<Problem>),
    /// The change cannot apply while slipd runs.
    #[error("{0}; the running config stays")]
    NotLive(String),
}

/// Reads, validates and applies the config at slipd's `--config` path.
pub async fn reload(state: &AppState) -> Result<Reloaded, ReloadError> {
    let path = state.config_path.get().ok_or(ReloadError::NoPath)?;
    let _writes = crate::state::WRITES.lock().await;
    let sources = config_source::read(path).map_err(|e| ReloadError::Read(e.into()))?;
    let loaded = parse(&sources).map_err(ReloadError::Invalid)?;
    let old = state.config();
    let new = loaded.config;
    restart_only(&old, &new)?;
    let (before, after): (BTreeSet<_>, BTreeSet<_>) = (old.apps.keys().collect(), new.apps.keys().collect());
    let removed: Vec<_> = before.difference(&after).map(|a| (*a).clone()).collect();
    let unfinished = state.store.unfinished().map_err(|e| ReloadError::Read(e.into()))?;
    for app in &removed {
        let deployed = state
            .store
            .app_state(app)
            .map_err(|e| ReloadError::Read(e.into()))?
            .is_some_and(|s| s.current_deploy_id.is_some());
        if deployed || unfinished.iter().any(|d| d.app == *app) {
            return Err(ReloadError::NotLive(format!(
                "apps/{app}.toml is gone but {app} is deployed (or deploying): remove it with `slip apps rm {app}`, \
                 or put the file back"
            )));
        }
    }
    let changed: Vec<_> = before
        .intersection(&after)
        .filter(|a| format!("{:?}", old.apps[**a]) != format!("{:?}", new.apps[**a]))
        .map(|a| (*a).clone())
        .collect();
    let added = after.difference(&before).map(|a| a.to_string()).collect();
    crate::state::swap(state, new.clone(), sources);
    for app in &changed {
        crate::routing::follow_routes(state, &old, &new, app).await;
    }
    for warning in &loaded.warnings {
        tracing::warn!(warning = %warning, "config");
    }
    let reloaded = Reloaded {
        added,
        removed: removed.iter().map(ToString::to_string).collect(),
        changed: changed.iter().map(ToString::to_string).collect(),
    };
    let data = serde_json::json!({ "added": reloaded.added, "removed": reloaded.removed, "changed": reloaded.changed });
    state.events.announce("config.reloaded", None, "config reloaded".into(), Some(data));
    Ok(reloaded)
}

/// Refuses changes to the sections only a restart applies.
fn restart_only(old: &Config, new: &Config) -> Result<(), ReloadError> {
    let differs = |a: &dyn std::fmt::Debug, b: &dyn std::fmt::Debug| format!("{a:?}") != format!("{b:?}");
    let sections = [
        ("[server]", differs(&old.server, &new.server)),
        ("[runtime]", differs(&old.runtime, &new.runtime)),
        ("[caddy]", differs(&old.caddy, &new.caddy)),
        ("[storage]", differs(&old.storage, &new.storage)),
        ("[secrets]", differs(&old.secrets, &new.secrets)),
        ("[preview]", differs(&old.preview, &new.preview)),
        ("[log]", differs(&old.log, &new.log)),
    ];
    let changed: Vec<&str> = sections.iter().filter(|(_, d)| *d).map(|(s, _)| *s).collect();
    if changed.is_empty() {
        return Ok(());
    }
    Err(ReloadError::NotLive(format!("{} changed, which applies only when slipd restarts", changed.join(", "))))
}

/// Reloads on every SIGHUP until `closing` is cancelled, logging the outcome.
pub async fn on_sighup(state: AppState, closing: CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hangup = match signal(SignalKind::hangup()) {
        Ok(hangup) => hangup,
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for SIGHUP; reload with POST /v1/config/reload");
            return;
        }
    };
    loop {
        tokio::select! {
            _ = hangup.recv() => {}
            _ = closing.cancelled() => return,
        }
        log_outcome(&reload(&state).await);
    }
}

/// Logs what a reload did, or why it did nothing (each problem on its own line).
pub fn log_outcome(outcome: &Result<Reloaded, ReloadError>) {
    match outcome {
        Ok(r) => tracing::info!(added = ?r.added, removed = ?r.removed, changed = ?r.changed, "config reloaded"),
        Err(ReloadError::Invalid(problems)) => {
            for p in problems {
                tracing::error!(problem = %p, "config reload refused");
            }
        }
        Err(e) => tracing::error!(error = %e, "config reload refused"),
    }
}
