//! Reconciliation: make the engine and Caddy match the store (SPEC §18), at boot before webhooks are
//! accepted.
//!
//! The store is the source of truth. A deploy that was interrupted before its switch committed is
//! rolled back (its candidate removed, the current instance running and routed); one whose switch
//! committed is finished forward (the old instance retired). Containers carrying this slipd's
//! `slip.instance` label that no live instance row owns are removed. Then the route table is rebuilt
//! from the current instances' ports as the engine reports them, and written to Caddy.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use crate::routes::{RouteTemplate, app_routes};
use crate::run::{Engine, unix_ms};
use crate::store::{DeployStatus, InstanceRole, InstanceRow, NoteKind};

/// What reconciliation did, for the log and for tests.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Report {
    /// Deploys finished forward (switch had committed).
    pub finished: Vec<String>,
    /// Deploys rolled back (candidate removed, previous release kept).
    pub rolled_back: Vec<String>,
    /// Containers removed because no record owned them.
    pub orphans_removed: Vec<String>,
    /// Current instances that were stopped and have been started again.
    pub restarted: Vec<String>,
}

/// Brings the engine, the store and the route table into agreement. `routes` holds each web app's
/// configured routes; apps missing from it get no routes. `stop_grace` is used for retiring old
/// instances.
pub async fn reconcile(
    engine: &Engine,
    routes: &BTreeMap<String, Vec<RouteTemplate>>,
    stop_grace: Duration,
) -> anyhow::Result<Report> {
    let mut report = Report::default();
    let store = &engine.store;

    // (1) Interrupted deploys.
    for deploy in store.unfinished()? {
        if matches!(deploy.status, DeployStatus::Queued | DeployStatus::Accepted) {
            continue;
        }
        let committed = store.app_state(&deploy.app)?.and_then(|s| s.current_deploy_id) == Some(deploy.id.clone());
        let instances = store.instances(&deploy.app, None)?;
        if committed {
            for old in instances.iter().filter(|i| i.role == InstanceRole::Draining) {
                retire(engine, old, stop_grace).await;
            }
            store.record_event(
                &deploy.id,
                NoteKind::Warning,
                "slipd restarted while the old release drained; it was stopped",
                None,
                unix_ms(),
            )?;
            store.finish(&deploy.id, DeployStatus::Completed, None, None, unix_ms())?;
            report.finished.push(deploy.id.to_string());
        } else {
            for candidate in instances.iter().filter(|i| i.deploy_id == deploy.id && i.role == InstanceRole::Candidate)
            {
                if !candidate.runtime_id.is_empty() {
                    engine.runtime.remove(&candidate.runtime_id).await?;
                }
                store.set_instance_role(&candidate.id, InstanceRole::Retired, unix_ms())?;
            }
            store.finish(
                &deploy.id,
                DeployStatus::Failed,
                Some("slipd stopped during this deploy; its candidate was removed and the previous release kept"),
                Some("interrupted"),
                unix_ms(),
            )?;
            report.rolled_back.push(deploy.id.to_string());
        }
    }

    // (2) Candidates left without a running deploy (crash between recording and starting).
    let live = store.all_live_instances()?;
    for stray in live.iter().filter(|i| matches!(i.role, InstanceRole::Candidate | InstanceRole::Draining)) {
        if !stray.runtime_id.is_empty() {
            engine.runtime.remove(&stray.runtime_id).await?;
        }
        store.set_instance_role(&stray.id, InstanceRole::Retired, unix_ms())?;
    }

    // (3) Orphans: our containers that no live instance owns.
    let owned: HashSet<String> = store
        .all_live_instances()?
        .into_iter()
        .filter(|i| matches!(i.role, InstanceRole::Current | InstanceRole::Stopped))
        .map(|i| i.runtime_id)
        .collect();
    let ours = engine.runtime.list(&[("slip.managed", "true"), ("slip.instance", engine.instance_id.as_str())]).await?;
    for container in ours {
        if !owned.contains(&container.id) {
            engine.runtime.remove(&container.id).await?;
            report.orphans_removed.push(container.name);
        }
    }

    // (4) Current instances: running, and routed on the ports the engine bound.
    for current in store.all_live_instances()?.into_iter().filter(|i| i.role == InstanceRole::Current) {
        let state = engine.runtime.inspect(&current.runtime_id).await?;
        let Some(state) = state else {
            tracing::warn!(app = %current.app, container = current.name, "current container is missing");
            continue;
        };
        if !state.running {
            engine.runtime.restart(&current.runtime_id).await?;
            report.restarted.push(current.name.clone());
        }
        let state = engine.runtime.inspect(&current.runtime_id).await?.unwrap_or(state);
        let ports: BTreeMap<u16, u16> = state.ports.iter().map(|p| (p.container, p.host)).collect();
        let app = current.app.as_str();
        let entry = app_routes(app, routes.get(app).map(Vec::as_slice).unwrap_or(&[]), &ports);
        engine.routes.set_quietly(app, entry);
    }

    // (5) Caddy.
    if let Err(e) = engine.routes.sync().await {
        tracing::warn!(error = %e, "caddy not reconciled at boot; retrying in the background");
    }
    Ok(report)
}

async fn retire(engine: &Engine, instance: &InstanceRow, grace: Duration) {
    if !instance.runtime_id.is_empty() {
        let _ = engine.runtime.stop(&instance.runtime_id, grace).await;
        let _ = engine.runtime.remove(&instance.runtime_id).await;
    }
    let _ = engine.store.set_instance_role(&instance.id, InstanceRole::Retired, unix_ms());
}
