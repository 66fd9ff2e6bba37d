//! The reaper (SPEC §13.6): at start-up and every minute it tears down expired previews and failed ones older than
//! a day, marks as failed a preview whose deploy ended without a word about it, and removes what the store does
//! not account for: preview containers without a live instance row, preview routes without a live preview and
//! preview volume directories without a live preview.

use std::collections::HashSet;
use std::time::Duration;

use slip_core::names::{AppName, PreviewId, Target};
use slip_engine::clock::unix_ms;
use slip_engine::labels;
use slip_engine::store::PreviewStatus;
use tokio_util::sync::CancellationToken;

use super::teardown;
use crate::state::AppState;

/// How often the reaper runs.
pub const REAP_INTERVAL: Duration = Duration::from_secs(60);

/// How long a failed preview is kept for its logs and history before it is torn down.
const FAILED_KEPT: Duration = Duration::from_secs(24 * 3600);

/// What one pass did, for logs and tests.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Reaped {
    /// `app:id` of previews torn down.
    pub torn_down: Vec<String>,
    /// Names of containers removed that no live instance row owned.
    pub orphans: Vec<String>,
}

/// Runs [`reap`] now and then every `interval` until `closing`; a preview due to expire sooner wakes it at its
/// `expires_at`, so expiry is on time rather than up to a minute late.
pub async fn run_reaper(state: AppState, interval: Duration, closing: CancellationToken) {
    loop {
        let reaped = reap(&state).await;
        if reaped != Reaped::default() {
            tracing::info!(torn_down = ?reaped.torn_down, orphans = ?reaped.orphans, "preview reaper");
        }
        let next_expiry = state
            .store
            .live_previews(None)
            .unwrap_or_default()
            .iter()
            .filter_map(|p| p.expires_at)
            .min()
            .map(|at| Duration::from_millis((at - unix_ms()).max(0) as u64 + 50));
        let pause = next_expiry.map_or(interval, |d| d.clamp(Duration::from_secs(1), interval));
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = state.scheduler.reaper_wake().notified() => {}
            _ = closing.cancelled() => return,
        }
    }
}

/// One pass of the reaper.
pub async fn reap(state: &AppState) -> Reaped {
    let mut reaped = Reaped::default();
    let store = &state.store;
    let now = unix_ms();
    settle_silent_failures(state);
    let mut due: Vec<(AppName, PreviewId, &'static str)> = Vec::new();
    match store.previews_expiring(now) {
        Ok(rows) => due.extend(rows.into_iter().map(|p| (p.app, p.id, "expired"))),
        Err(e) => tracing::error!(error = %e, "listing expired previews"),
    }
    match store.previews_failed_before(now - FAILED_KEPT.as_millis() as i64) {
        Ok(rows) => due.extend(rows.into_iter().map(|p| (p.app, p.id, "failed more than 24h ago"))),
        Err(e) => tracing::error!(error = %e, "listing failed previews"),
    }
    let config = state.config();
    if let Ok(rows) = store.live_previews(None) {
        // An app gone from the config keeps no previews.
        due.extend(
            rows.into_iter().filter(|p| !config.apps.contains_key(&p.app)).map(|p| (p.app, p.id, "app removed")),
        );
    }
    let mut seen = HashSet::new();
    for (app, id, why) in due {
        if !seen.insert((app.clone(), id.clone())) {
            continue;
        }
        match teardown(state, &app, &id, why).await {
            Ok(_) => reaped.torn_down.push(format!("{app}:{id}")),
            Err(e) => tracing::error!(app = %app, preview = %id, error = %e, "tearing down a preview"),
        }
    }
    reaped.orphans = orphans(state).await;
    reaped
}

/// A preview still `deploying` whose deploys have all ended (a deploy given up after two interruptions, say) never
/// served: it is `failed`, so the 24 h rule applies to it.
fn settle_silent_failures(state: &AppState) {
    let store = &state.store;
    let (Ok(live), Ok(unfinished)) = (store.live_previews(None), store.unfinished()) else { return };
    for p in live.into_iter().filter(|p| p.status == PreviewStatus::Deploying) {
        let target = Target::preview(p.app.clone(), p.id.clone());
        let waiting = unfinished.iter().any(|d| d.app == p.app && d.preview_id.as_ref() == Some(&p.id));
        if waiting || state.scheduler.is_busy(&target) {
            continue;
        }
        let last = store
            .list_deploys(&slip_engine::store::DeployFilter {
                app: Some(p.app.clone()),
                preview: Some(p.id.clone()),
                limit: Some(1),
                ..Default::default()
            })
            .ok()
            .and_then(|(deploys, _)| deploys.into_iter().next());
        if let Some(last) = last {
            let error = last.error.unwrap_or_else(|| "its deploy ended without serving".into());
            if let Err(e) = store.preview_deploy_failed(&p.app, &p.id, &last.id, &error) {
                tracing::warn!(app = %p.app, preview = %p.id, error = %e, "marking a preview failed");
            }
        }
    }
}

/// Removes preview containers, routes and volume directories the store does not account for.
async fn orphans(state: &AppState) -> Vec<String> {
    let engine = &state.engine;
    let store = &state.store;
    let mut removed = Vec::new();
    let live_previews: HashSet<(String, String)> = match store.live_previews(None) {
        Ok(rows) => rows.into_iter().map(|p| (p.app.to_string(), p.id.to_string())).collect(),
        Err(_) => return removed,
    };
    // Containers: a preview instance whose row is not live (rows are written before containers are created).
    if let (Ok(containers), Ok(rows)) =
        (engine.instances.list(&labels::previews_of(&engine.instance_id)).await, store.all_live_instances())
    {
        let owned: HashSet<String> = rows.iter().map(|r| r.id.clone()).collect();
        for c in containers {
            let Some(identity) = labels::read(&c.labels) else { continue };
            let Some(id) = &identity.preview else { continue };
            let target = Target::preview(identity.app.clone(), id.clone());
            if owned.contains(&identity.instance_id) || state.scheduler.is_busy(&target) {
                continue;
            }
            let _ = engine.instances.stop(&c.id, Duration::from_secs(5)).await;
            match engine.instances.remove(&c.id).await {
                Ok(()) => removed.push(c.name.clone()),
                Err(e) => tracing::warn!(container = c.name, error = %e, "removing an orphan preview container"),
            }
        }
    }
    // Routes: a preview target with no live preview row.
    let stale: Vec<Target> = engine
        .routes
        .targets()
        .into_iter()
        .filter(|t| t.preview.as_ref().is_some_and(|id| !live_previews.contains(&(t.app.to_string(), id.to_string()))))
        .collect();
    if !stale.is_empty() {
        for t in &stale {
            engine.routes.set_quietly(t, None);
        }
        if let Err(e) = engine.routes.sync().await {
            tracing::warn!(error = %e, "removing stale preview routes failed; the monitor retries");
        }
    }
    // Volume directories: `<storage>/preview-volumes/<app>/<id>` with no live preview.
    let root = state.config().storage.path.join("preview-volumes");
    for app_dir in std::fs::read_dir(&root).into_iter().flatten().flatten() {
        let app = app_dir.file_name().to_string_lossy().into_owned();
        for dir in std::fs::read_dir(app_dir.path()).into_iter().flatten().flatten() {
            let id = dir.file_name().to_string_lossy().into_owned();
            if live_previews.contains(&(app.clone(), id.clone())) {
                continue;
            }
            if let Err(e) = std::fs::remove_dir_all(dir.path()) {
                tracing::warn!(dir = %dir.path().display(), error = %e, "removing an orphan preview volume directory");
            }
        }
    }
    removed
}
