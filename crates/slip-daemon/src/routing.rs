//! Route following: when a deployed app's routing changes in the config (the apps API, a reload), its Caddy routes
//! follow at once if the running release exposes every container port they now need.

use std::collections::BTreeMap;

use slip_core::config::Config;
use slip_core::names::{AppName, Target};
use slip_engine::routes::app_routes;

use crate::state::AppState;

/// Re-points a deployed app's routes when its routing changed and every container port it now routes is
/// one the running release already exposes; otherwise the change waits for the next deploy.
pub(crate) async fn follow_routes(state: &AppState, old: &Config, new: &Config, app: &AppName) {
    let before = crate::boot::route_templates(old).remove(app.as_str()).unwrap_or_default();
    let after = crate::boot::route_templates(new).remove(app.as_str()).unwrap_or_default();
    if before == after {
        return;
    }
    let target = Target::production(app.clone());
    let Some(current) = state.engine.routes.get(&target) else { return };
    if !current.drains.is_empty() || current.routes.len() != before.len() {
        tracing::info!(app = %app, "routing changed while a switch is in progress; it applies at the next deploy");
        return;
    }
    let ports: BTreeMap<u16, u16> = before
        .iter()
        .zip(&current.routes)
        .filter_map(|(t, r)| Some((t.container_port, r.upstream.rsplit(':').next()?.parse().ok()?)))
        .collect();
    if after.iter().any(|t| !ports.contains_key(&t.container_port)) {
        tracing::info!(app = %app, "routing now uses a container port the release does not expose; it applies at the next deploy");
        return;
    }
    let upstream = |p| state.engine.instances.upstream(p);
    let entry = app_routes(&target, &after, &ports, &upstream);
    if let Err(e) = state.engine.routes.update(&target, entry).await {
        tracing::warn!(app = %app, error = %e, "writing the app's new routes to Caddy failed; the reconciler retries");
    }
}
