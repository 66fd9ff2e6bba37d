//! Tearing down a deleted app (the apps API's `DELETE`, after the delete is committed): its secrets, its routes
//! and its containers, going on past errors.

use std::path::Path;
use std::time::Duration;

use slip_core::names::{AppName, Target};
use slip_engine::labels;

use crate::state::AppState;

/// Removes what a deleted app leaves: secrets first (unless `keep_secrets`; a re-created app must never inherit
/// them), then traffic, so nothing is routed to a container that is about to stop, then the containers. Answers
/// what it could not remove.
pub async fn remove_app(
    state: &AppState,
    app: &AppName,
    storage: &Path,
    stop_grace: Duration,
    keep_secrets: bool,
) -> Vec<String> {
    let mut left = Vec::new();
    if !keep_secrets && let Err(e) = state.secrets.delete_app(app) {
        tracing::error!(app = %app, error = %e, "deleting the app's secrets");
        left.push(format!("secrets of {app} in {}: {e}", storage.display()));
    }
    let target = Target::production(app.clone());
    if let Err(e) = state.engine.routes.update(&target, None).await {
        // The table must not keep the app: the monitor then retries the removal, not the routes.
        state.engine.routes.set_quietly(&target, None);
        tracing::warn!(app = %app, error = %e, "removing the app's routes from Caddy failed; the monitor retries");
    }
    left.extend(remove_containers(state, app, stop_grace).await);
    // The containers above include the app's previews'; their routes and volume directories go too.
    crate::previews::remove_app_previews(state, app).await;
    left
}

/// Stops and removes every container of `app` that this slipd made, going on past errors. Answers what it could
/// not remove (boot reconciliation removes those later: no live instance row owns them).
pub async fn remove_containers(state: &AppState, app: &AppName, grace: Duration) -> Vec<String> {
    let labels = [(labels::APP, app.as_str()), (labels::OWNER, state.engine.instance_id.as_str())];
    let containers = match state.engine.instances.list(&labels).await {
        Ok(containers) => containers,
        Err(e) => {
            tracing::error!(app = %app, error = %e, "listing the app's containers");
            return vec![format!("containers of {app}: {e}")];
        }
    };
    let mut left = Vec::new();
    for c in containers {
        if c.running
            && let Err(e) = state.engine.instances.stop(&c.id, grace).await
        {
            tracing::warn!(container = c.name, error = %e, "stopping a deleted app's container");
        }
        if let Err(e) = state.engine.instances.remove(&c.id).await {
            tracing::error!(container = c.name, error = %e, "removing a deleted app's container");
            left.push(format!("container {}: {e}", c.name));
        }
    }
    left
}
