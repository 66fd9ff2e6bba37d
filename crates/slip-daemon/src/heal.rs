//! Healing current releases: a loop that starts stopped ones again and re-creates vanished ones through a
//! `reconcile` deploy of the same digest, also run once at boot for what reconciliation found missing.

use std::sync::Arc;
use std::time::Duration;

use slip_engine::clock::unix_ms;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::ids::new_deploy_id;
use crate::rollback::recreate_current;
use crate::state::AppState;

/// Every `interval` while the engine answers: current releases of apps with no deploy in flight that were found
/// stopped are started again, and those whose container is gone (or cannot be started) are re-created through a
/// `reconcile` deploy of the same digest ([`slip_engine::reconcile::heal`]). Each instance is restarted at most
/// once and reported at most once per run of slipd, so a container someone keeps stopping, or a re-creation that
/// fails, is not retried in a loop.
/// `now` runs a pass at once (an engine event said a current release stopped, [`crate::watch`]).
/// Ends when `shutdown` is cancelled.
pub async fn run(state: AppState, interval: Duration, now: Arc<Notify>, shutdown: CancellationToken) {
    let mut memory = slip_engine::reconcile::HealMemory::default();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            () = now.notified() => {}
            _ = shutdown.cancelled() => return,
        }
        if !state.health.snapshot().runtime {
            continue;
        }
        let deleting = |app: &str| state.scheduler.is_deleting(app);
        match slip_engine::reconcile::heal(&state.engine, &mut memory, &deleting).await {
            Ok(healed) => {
                for instance in &healed.restarted {
                    let app = state.store.instance(instance).ok().flatten().map(|i| i.app.to_string());
                    state.events.announce(
                        "runtime.container_restarted",
                        app.as_deref(),
                        format!("the current release's container was found stopped and was started again ({instance})"),
                        Some(serde_json::json!({ "instance": instance })),
                    );
                }
                let apps: Vec<String> = healed.missing.iter().map(|(app, _)| app.clone()).collect();
                if !apps.is_empty() {
                    recreate_missing(&state, &apps);
                }
            }
            Err(e) => tracing::warn!(error = %e, "checking current releases"),
        }
    }
}

/// Queues a `reconcile` deploy for each app whose current container vanished or cannot be started (SPEC §18 step
/// 4), unless a production deploy of it is already waiting (that one brings a release up anyway, and must not be
/// superseded).
pub(crate) fn recreate_missing(state: &AppState, apps: &[String]) {
    let config = state.config();
    let waiting: Vec<String> = match state.store.unfinished() {
        Ok(rows) => rows.into_iter().filter(|r| r.preview_id.is_none()).map(|r| r.app.to_string()).collect(),
        Err(e) => {
            tracing::error!(error = %e, "listing waiting deploys");
            return;
        }
    };
    for app in apps.iter().filter(|a| !waiting.contains(a)) {
        let Ok(name) = app.parse::<slip_core::names::AppName>() else { continue };
        let Some(app_config) = config.apps.get(&name) else { continue };
        let id = new_deploy_id().parse().expect("generated ids are valid");
        let strategy = app_config.strategy();
        let queued = recreate_current(&state.store, &name, id, strategy.as_str(), unix_ms())
            .and_then(|new| new.map(|new| state.scheduler.enqueue(&new).map(|e| e.map(|_| new.id))).transpose());
        match queued {
            Ok(Some(Some(id))) => tracing::warn!(app, deploy_id = %id, "current container vanished; re-creating it"),
            Ok(Some(None)) => tracing::info!(app, "current container vanished while the app is being deleted"),
            Ok(None) => tracing::error!(app, "current container vanished and no recorded release can replace it"),
            Err(e) => tracing::error!(app, error = %e, "queueing the re-creation of a vanished container"),
        }
    }
}
