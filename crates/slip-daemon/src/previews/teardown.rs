//! Tearing a preview down (SPEC §13.6), for every trigger: the DELETE endpoint, the CLI, eviction, the reaper and
//! app deletion. It takes the preview's target lock (the scheduler's teardown mark, which its deploys respect),
//! cancels a deploy of it that is still before its switch, and then removes the route, the instances, the volume
//! directories and the port leases before marking the row `torn_down`. Its first step moves `expires_at` to now,
//! so a teardown cut off by a crash is finished by the reaper at the next start.

use std::collections::BTreeMap;
use std::time::Duration;

use slip_core::names::{AppName, PreviewId, Target};
use slip_engine::clock::unix_ms;
use slip_engine::labels;
use slip_engine::store::{DeployStatus, InstanceRole};

use crate::state::AppState;

/// How long a teardown waits for the preview's running deploy to unwind.
const CANCEL_BOUND: Duration = Duration::from_secs(120);

/// Tears preview `id` of `app` down. Answers whether it was live (false: already torn down or never existed), so
/// the DELETE endpoint is idempotent. `why` goes into the logs and into the failure of any deploy it cancels.
pub async fn teardown(state: &AppState, app: &AppName, id: &PreviewId, why: &str) -> anyhow::Result<bool> {
    let target = Target::preview(app.clone(), id.clone());
    let guard = loop {
        if let Some(guard) = state.scheduler.begin_teardown(&target) {
            break guard;
        }
        // Another teardown of it is under way: wait for it, then see what is left.
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let store = &state.store;
    let live = store.preview(app, id)?.is_some_and(|p| p.status != slip_engine::store::PreviewStatus::TornDown);
    store.expire_preview(app, id, unix_ms())?;
    if !state.scheduler.cancel_target_and_wait(&target, CANCEL_BOUND).await {
        tracing::warn!(target = %target, "the preview's deploy did not unwind in time; tearing down beside it");
    }
    for deploy in store.unfinished()?.into_iter().filter(|d| d.app == *app && d.preview_id.as_ref() == Some(id)) {
        if matches!(deploy.status, DeployStatus::Queued | DeployStatus::Accepted) {
            let message = format!("cancelled: the preview was torn down ({why})");
            store.finish(&deploy.id, DeployStatus::Failed, Some(&message), Some("cancelled"), unix_ms())?;
        }
    }
    remove_resources(state, &target).await;
    let marked = store.mark_preview_torn_down(app, id, unix_ms())?;
    drop(guard);
    if marked || live {
        tracing::info!(app = %app, preview = %id, why, "preview torn down");
        // The reaper tears an expired preview down with `why` = "expired" (SPEC §17.3 `preview.expired`).
        let kind = if why == "expired" { "preview.expired" } else { "preview.torn_down" };
        let data = serde_json::json!({"preview_id": id.as_str(), "why": why});
        state.events.announce(kind, Some(app.as_str()), format!("preview {id} of {app} torn down ({why})"), Some(data));
        let entry = slip_engine::store::AuditEntry {
            at: unix_ms(),
            actor: "system".into(),
            source_ip: None,
            request_id: None,
            action: "preview.torn_down".into(),
            target: Some(target.to_string()),
            detail: Some(why.to_owned()),
        };
        if let Err(e) = store.append_audit(entry) {
            tracing::warn!(error = %e, "recording a preview teardown in the audit log");
        }
    }
    slip_engine::images::prune_app(&state.engine, app).await;
    Ok(marked || live)
}

/// Removes what a preview holds in Caddy, the engine and on disk. Goes on past errors (the reaper retries).
async fn remove_resources(state: &AppState, target: &Target) {
    let engine = &state.engine;
    engine.routes.set_quietly(target, None);
    if let Err(e) = engine.routes.sync().await {
        tracing::warn!(target = %target, error = %e, "removing the preview's routes from Caddy failed; the monitor retries");
    }
    let (app, id) = (&target.app, target.preview.as_ref().expect("a preview target"));
    let grace = state.config().apps.get(app).map_or(Duration::from_secs(10), |a| a.deploy.stop_grace);
    for instance in state.store.instances(app, Some(id)).unwrap_or_default() {
        if !instance.runtime_id.is_empty() {
            if let Err(e) = engine.instances.stop(&instance.runtime_id, grace).await {
                tracing::warn!(container = instance.name, error = %e, "stopping a preview instance");
            }
            if let Err(e) = engine.instances.remove(&instance.runtime_id).await {
                tracing::warn!(container = instance.name, error = %e, "removing a preview instance");
                continue;
            }
        }
        if let Err(e) = state.store.set_instance_role(&instance.id, InstanceRole::Retired, unix_ms()) {
            tracing::warn!(instance = instance.id, error = %e, "retiring a preview instance");
        }
    }
    // Anything of this preview the store did not account for (a crash between create and record).
    match engine.instances.list(&labels::preview_releases_of(app, id, &engine.instance_id)).await {
        Ok(left) => {
            for c in left {
                if let Err(e) = engine.instances.remove(&c.id).await {
                    tracing::warn!(container = c.name, error = %e, "removing a stray preview container");
                }
            }
        }
        Err(e) => tracing::warn!(target = %target, error = %e, "listing the preview's containers"),
    }
    let dir = crate::release::preview_volume_dir(&state.config(), app, id);
    if let Err(e) = std::fs::remove_dir_all(&dir)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(dir = %dir.display(), error = %e, "removing the preview's volume directories");
    }
}

/// After preview `just` of an app became healthy and routed: tears down the oldest previews of the app while more
/// than its cap are live (SPEC §13.2), skipping any mid-deploy. The cap is the one its deploy settled (the repo's
/// `preview.max` included).
pub async fn evict_over_cap(state: &AppState, app: &AppName, just: &PreviewId, deploy: &slip_core::names::DeployId) {
    let cap = match state.store.deploy(deploy) {
        Ok(Some(row)) => row
            .plan
            .as_deref()
            .and_then(|p| serde_json::from_str::<serde_json::Value>(p).ok())
            .and_then(|p| p.pointer("/preview/cap").and_then(serde_json::Value::as_u64)),
        _ => None,
    };
    let Some(cap) = cap else { return };
    let live = match state.store.live_previews(Some(app)) {
        Ok(live) => live,
        Err(e) => {
            tracing::error!(app = %app, error = %e, "listing previews for eviction");
            return;
        }
    };
    let unfinished = state.store.unfinished().unwrap_or_default();
    let by_id: BTreeMap<PreviewId, (Option<i64>, bool)> = live
        .into_iter()
        .map(|p| {
            let target = Target::preview(app.clone(), p.id.clone());
            let busy = state.scheduler.is_busy(&target)
                || unfinished.iter().any(|d| d.app == *app && d.preview_id.as_ref() == Some(&p.id));
            let deployed = if p.status == slip_engine::store::PreviewStatus::Running { p.deployed_at } else { None };
            (p.id, (deployed, busy))
        })
        .collect();
    for id in slip_core::preview::evictions(&by_id, just, cap as u32) {
        let why = format!("evicted: app {app} is over its preview cap of {cap}");
        if let Err(e) = teardown(state, app, &id, &why).await {
            tracing::error!(app = %app, preview = %id, error = %e, "evicting a preview");
        }
    }
}

/// For a deleted app (after its containers are gone): drops its preview routes and removes its preview volume
/// directories. Its preview rows go with the app's rows.
pub async fn remove_app_previews(state: &AppState, app: &AppName) {
    for target in state.engine.routes.targets().into_iter().filter(|t| t.app == *app && t.preview.is_some()) {
        state.engine.routes.set_quietly(&target, None);
    }
    if let Err(e) = state.engine.routes.sync().await {
        tracing::warn!(app = %app, error = %e, "removing the app's preview routes from Caddy failed; the monitor retries");
    }
    let dir = state.config().storage.path.join("preview-volumes").join(app.as_str());
    if let Err(e) = std::fs::remove_dir_all(&dir)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(dir = %dir.display(), error = %e, "removing the app's preview volume directories");
    }
}
