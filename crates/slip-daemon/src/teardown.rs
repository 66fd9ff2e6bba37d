//! Tearing down a deleted app's containers (the apps API's `DELETE`, after the delete is committed).

use std::time::Duration;

use slip_core::names::AppName;

use crate::state::AppState;

/// Stops and removes every container of `app` that this slipd made, going on past errors. Answers what it could
/// not remove (boot reconciliation removes those later: no live instance row owns them).
pub async fn remove_containers(state: &AppState, app: &AppName, grace: Duration) -> Vec<String> {
    let labels = [("slip.app", app.as_str()), ("slip.instance", state.engine.instance_id.as_str())];
    let containers = match state.engine.runtime.list(&labels).await {
        Ok(containers) => containers,
        Err(e) => {
            tracing::error!(app = %app, error = %e, "listing the app's containers");
            return vec![format!("containers of {app}: {e}")];
        }
    };
    let mut left = Vec::new();
    for c in containers {
        if c.running
            && let Err(e) = state.engine.runtime.stop(&c.id, grace).await
        {
            tracing::warn!(container = c.name, error = %e, "stopping a deleted app's container");
        }
        if let Err(e) = state.engine.runtime.remove(&c.id).await {
            tracing::error!(container = c.name, error = %e, "removing a deleted app's container");
            left.push(format!("container {}: {e}", c.name));
        }
    }
    left
}
