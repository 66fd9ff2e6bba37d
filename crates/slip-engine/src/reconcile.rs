//! Reconciliation: make the engine and Caddy match the store (SPEC §18), at boot before webhooks are
//! accepted ([`reconcile`]) and periodically while running ([`refresh_ports`]).
//!
//! The store is the source of truth. At boot, in this order:
//! 1. Every deploy that was running when slipd stopped is classified by the store alone: if its switch
//!    committed (the app's current release is this deploy) it is finished forward, otherwise it is rolled
//!    back and re-queued with the same id (`attempt + 1`; superseded when a newer deploy is queued; failed
//!    with `interrupted` the second time).
//! 2. Current instances are made to serve first: a stopped one is started again (recreate interrupted after
//!    the old release was stopped), the route table is rebuilt from the ports the engine reports, and Caddy
//!    is re-asserted. Routes that a crashed switch or hold left on a candidate go back to the current release
//!    here, before the candidate disappears.
//! 3. Deploys finished forward have their old (draining) instance stopped and removed, and are `completed`.
//! 4. Deploys rolled back have their candidate removed, then go back to the queue.
//! 5. Candidates and draining instances that no running deploy owns are removed; containers carrying this
//!    slipd's `slip.instance` label that no live instance row owns are removed; leases of dead instances are
//!    released.
//!
//! It does not run the re-queued deploys (the daemon's queue does, after boot), and it does not re-create a
//! current instance whose container vanished or cannot be started: it reports the app (status `down`), and the
//! daemon queues a `reconcile` deploy of the current release's digest for it.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use crate::clock::unix_ms;
use crate::engine::Engine;
use crate::labels;
use crate::ports::PortMapping;
use crate::routes::{RouteTemplate, app_routes};
use crate::store::{AppStatus, DeployRow, DeployStatus, InstanceRole, InstanceRow, NoteKind, Requeued, StoreError};

/// What reconciliation did, for the log and for tests.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Report {
    /// Deploys finished forward (their switch had committed): now `completed`.
    pub finished: Vec<String>,
    /// Deploys rolled back and queued again with the same id.
    pub requeued: Vec<String>,
    /// Deploys rolled back and superseded by a newer queued deploy.
    pub superseded: Vec<String>,
    /// Deploys rolled back that had already been interrupted before: now `failed` (`interrupted`).
    pub failed: Vec<String>,
    /// Candidate and draining containers removed.
    pub removed: Vec<String>,
    /// Containers removed because no record owned them.
    pub orphans_removed: Vec<String>,
    /// Current instances that were stopped and have been started again.
    pub restarted: Vec<String>,
    /// Apps whose current instance's container is gone, or exists but cannot be started (its leased host port
    /// was taken while it was stopped, say). The daemon re-creates these through a `reconcile` deploy.
    pub missing: Vec<String>,
}

/// A current instance whose published host port changed under it (an engine restart re-assigned it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortChange {
    /// The app.
    pub app: String,
    /// The container port.
    pub container: u16,
    /// The host port recorded (and routed) until now.
    pub from: u16,
    /// The host port the engine reports now.
    pub to: u16,
}

/// Brings the engine, the store and the route table into agreement at boot. `routes` holds each routed target's
/// configured routes, keyed by the target as shown (`app`, `app:preview`); targets missing from it get no routes. `stop_grace` is used for retiring old instances.
pub async fn reconcile(
    engine: &Engine,
    routes: &BTreeMap<String, Vec<RouteTemplate>>,
    stop_grace: Duration,
) -> anyhow::Result<Report> {
    let mut report = Report::default();
    let store = &engine.store;

    // (1) Classify interrupted deploys by what the store committed.
    let mut forward = Vec::new();
    let mut back = Vec::new();
    for deploy in store.unfinished()? {
        if matches!(deploy.status, DeployStatus::Queued | DeployStatus::Accepted) {
            continue;
        }
        let committed = match &deploy.preview_id {
            None => store.app_state(&deploy.app)?.and_then(|s| s.current_deploy_id).as_ref() == Some(&deploy.id),
            Some(preview) => {
                store.preview(&deploy.app, preview)?.and_then(|p| p.deploy_id).as_ref() == Some(&deploy.id)
                    && store
                        .instances(&deploy.app, Some(preview))?
                        .iter()
                        .any(|i| i.deploy_id == deploy.id && i.role == InstanceRole::Current)
            }
        };
        if committed { forward.push(deploy) } else { back.push(deploy) }
    }

    // (2) Serve: every current instance running and routed on the ports the engine bound.
    for current in live(engine, InstanceRole::Current)? {
        serve(engine, &current, routes, &mut report).await?;
    }
    if let Err(e) = engine.routes.sync().await {
        tracing::warn!(error = %e, "caddy not reconciled at boot; retrying in the background");
    }

    // (3) Finish forward: the new release serves; retire the old one.
    for deploy in &forward {
        for old in store
            .instances(&deploy.app, deploy.preview_id.as_ref())?
            .iter()
            .filter(|i| i.role == InstanceRole::Draining)
        {
            retire(engine, old, stop_grace).await;
            report.removed.push(old.name.clone());
        }
        let note = format!(
            "slipd stopped while this deploy was {} after its switch committed; the old release was stopped and \
             removed at the next start",
            deploy.status
        );
        store.record_event(&deploy.id, NoteKind::Warning, &note, None, unix_ms())?;
        store.finish(&deploy.id, DeployStatus::Completed, None, None, unix_ms())?;
        report.finished.push(deploy.id.to_string());
    }

    // (4) Roll back: remove the candidate (the current release already serves again), then queue again.
    for deploy in &back {
        roll_back(engine, deploy, stop_grace, &mut report).await?;
    }

    // (5) Strays, orphans and leases. No deploy runs during boot, so no candidate or draining instance is owned.
    for stray in store.all_live_instances()? {
        if matches!(stray.role, InstanceRole::Candidate | InstanceRole::Draining) {
            retire(engine, &stray, stop_grace).await;
            report.removed.push(stray.name.clone());
        }
    }
    let owned: HashSet<String> = store
        .all_live_instances()?
        .into_iter()
        .filter(|i| matches!(i.role, InstanceRole::Current | InstanceRole::Stopped))
        .map(|i| i.runtime_id)
        .collect();
    let ours = engine.instances.list(&labels::owned_by(&engine.instance_id)).await?;
    for container in ours {
        if !owned.contains(&container.id) {
            engine.instances.remove(&container.id).await?;
            report.orphans_removed.push(container.name);
        }
    }
    store.release_orphan_ports()?;
    Ok(report)
}

/// The periodic half (SPEC §9.8, §18): re-reads each running current instance's published host ports from the
/// engine and, where one changed (a Docker restart can re-assign them), records the new port and moves the
/// routes that still dial the old one. Routes a running deploy has moved elsewhere are left alone. Returns
/// what changed.
pub async fn refresh_ports(engine: &Engine) -> Result<Vec<PortChange>, StoreError> {
    let mut changes = Vec::new();
    for current in live(engine, InstanceRole::Current)? {
        let state = match engine.instances.inspect(&current.runtime_id).await {
            Ok(Some(state)) if state.running() => state,
            // Stopped containers publish no ports, and a missing one has none: nothing to compare.
            Ok(_) => continue,
            Err(e) => {
                tracing::debug!(app = %current.app, error = %e, "cannot inspect the current instance");
                continue;
            }
        };
        let recorded = current.ports.clone();
        let bound: BTreeMap<u16, u16> = state.ports.iter().map(|p| (p.container, p.host)).collect();
        let moved: Vec<PortChange> = recorded
            .iter()
            .filter_map(|(container, from)| {
                let to = *bound.get(container)?;
                (to != *from).then(|| PortChange {
                    app: current.app.to_string(),
                    container: *container,
                    from: *from,
                    to,
                })
            })
            .collect();
        if moved.is_empty() {
            continue;
        }
        engine.store.set_instance_ports(&current.id, &bound)?;
        let rebinds: Vec<(String, String)> = moved
            .iter()
            .map(|c| {
                let at = |host| engine.instances.upstream(PortMapping { host, container: c.container });
                (at(c.from), at(c.to))
            })
            .collect();
        match engine.routes.rebind(&current.target(), &rebinds).await {
            Ok(_) => tracing::info!(app = %current.app, moved = ?rebinds, "routes follow re-assigned host ports"),
            // The table already holds the new upstream; the next sync retries the write.
            Err(e) => tracing::warn!(app = %current.app, error = %e, "routes not yet moved to re-assigned ports"),
        }
        changes.extend(moved);
    }
    Ok(changes)
}

/// What [`heal`] found and did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Healed {
    /// Ids of current instances that were stopped and have been started again.
    pub restarted: Vec<String>,
    /// `(app, instance id)` of current instances whose container is gone or cannot be started; the daemon
    /// re-creates these through a `reconcile` deploy.
    pub missing: Vec<(String, String)>,
}

/// What [`heal`] has acted on so far, so that it acts on each instance once per kind of trouble: a container
/// someone keeps stopping is not restarted again and again, and one whose re-creation failed is not re-created in
/// a loop. Keep one per running slipd.
#[derive(Debug, Default)]
pub struct HealMemory {
    restarted: HashSet<String>,
    reported: HashSet<String>,
}

/// The periodic half of boot's "serve" step (SPEC §18): for each app with no deploy in flight, a current instance
/// found stopped is started again, and one whose container is gone or cannot be started is reported (once each,
/// see [`HealMemory`]).
pub async fn heal(
    engine: &Engine,
    memory: &mut HealMemory,
    skip: &(dyn Fn(&str) -> bool + Sync),
) -> Result<Healed, StoreError> {
    let store = &engine.store;
    let busy = |app: &str| -> Result<bool, StoreError> {
        Ok(skip(app) || store.unfinished()?.iter().any(|d| d.app.as_str() == app))
    };
    // Still this app's live current instance: a deploy or a delete may have changed that since the listing.
    let still_current = |id: &str| -> Result<bool, StoreError> {
        Ok(store.instance(id)?.is_some_and(|row| row.role == InstanceRole::Current && row.retired_at.is_none()))
    };
    // One read of the queue for the first pass; only an app about to be acted on is checked again.
    let deploying: HashSet<String> = store.unfinished()?.into_iter().map(|d| d.app.to_string()).collect();
    let mut healed = Healed::default();
    for current in live(engine, InstanceRole::Current)? {
        let app = current.app.as_str();
        if current.preview_id.is_some() || memory.reported.contains(&current.id) || skip(app) || deploying.contains(app)
        {
            continue;
        }
        let state = match engine.instances.inspect(&current.runtime_id).await {
            Ok(state) => state,
            // The engine is unreachable: nothing can be judged now.
            Err(e) => {
                tracing::debug!(app = %current.app, error = %e, "cannot inspect the current instance");
                continue;
            }
        };
        let shown = store.app_state(&current.app)?.map(|s| s.status);
        let running = state.as_ref().is_some_and(|s| s.running());
        if running && shown != Some(AppStatus::Down) {
            continue;
        }
        // Checked again right before acting: a deploy or delete that started meanwhile owns the app's containers.
        if busy(app)? || !still_current(&current.id)? {
            continue;
        }
        let status = |status: AppStatus| store.update_app_status(&current.app, status, unix_ms());
        if running {
            // Running (again): an app shown `down` because its container was stopped is up.
            status(AppStatus::Running)?;
            continue;
        }
        let restarted = match state {
            // Stopped again after slip started it: someone means it; leave it, and show the app `down`.
            Some(_) if memory.restarted.contains(&current.id) => {
                if shown == Some(AppStatus::Running) {
                    status(AppStatus::Down)?;
                }
                continue;
            }
            Some(_) => match engine.instances.restart(&current.runtime_id).await {
                Ok(()) => true,
                Err(e) => {
                    tracing::error!(app = %current.app, container = current.name, error = %e, "cannot start the stopped current release");
                    false
                }
            },
            None => {
                tracing::error!(app = %current.app, container = current.name, "the current release's container is gone");
                false
            }
        };
        if restarted {
            tracing::warn!(app = %current.app, container = current.name, "the current release was stopped; started it again");
            if shown == Some(AppStatus::Down) {
                status(AppStatus::Running)?;
            }
            memory.restarted.insert(current.id.clone());
            healed.restarted.push(current.id.clone());
        } else {
            status(AppStatus::Down)?;
            memory.reported.insert(current.id.clone());
            healed.missing.push((current.app.to_string(), current.id.clone()));
        }
    }
    Ok(healed)
}

/// Makes one current instance run and puts its routes (on the ports the engine bound) in the table.
async fn serve(
    engine: &Engine,
    current: &InstanceRow,
    routes: &BTreeMap<String, Vec<RouteTemplate>>,
    report: &mut Report,
) -> anyhow::Result<()> {
    let store = &engine.store;
    let Some(mut state) = engine.instances.inspect(&current.runtime_id).await? else {
        tracing::error!(app = %current.app, container = current.name, "current container is missing");
        store.set_app_status(&current.app, AppStatus::Down, unix_ms())?;
        report.missing.push(current.app.to_string());
        return Ok(());
    };
    if !state.running() {
        if let Err(e) = engine.instances.restart(&current.runtime_id).await {
            tracing::error!(app = %current.app, container = current.name, error = %e, "cannot start the current release");
            store.set_app_status(&current.app, AppStatus::Down, unix_ms())?;
            report.missing.push(current.app.to_string());
            return Ok(());
        }
        report.restarted.push(current.name.clone());
        state = engine.instances.inspect(&current.runtime_id).await?.unwrap_or(state);
    }
    if store.app_state(&current.app)?.is_some_and(|s| s.status == AppStatus::Down) {
        store.set_app_status(&current.app, AppStatus::Running, unix_ms())?;
    }
    let mut bound: BTreeMap<u16, u16> = state.ports.iter().map(|p| (p.container, p.host)).collect();
    if bound.is_empty() {
        // A container that has not published its ports yet: route on the recorded ones.
        bound = current.ports.clone();
    } else if bound != current.ports {
        store.set_instance_ports(&current.id, &bound)?;
    }
    let target = current.target();
    let upstream = |p| engine.instances.upstream(p);
    // Keyed by the target as shown: `app` for production, `app:preview` for a preview.
    let templates = routes.get(&target.to_string()).map(Vec::as_slice).unwrap_or(&[]);
    let entry = app_routes(&target, templates, &bound, &upstream);
    engine.routes.set_quietly(&target, entry);
    Ok(())
}

/// Removes an interrupted deploy's candidate and puts the deploy back in the queue.
async fn roll_back(
    engine: &Engine,
    deploy: &DeployRow,
    stop_grace: Duration,
    report: &mut Report,
) -> anyhow::Result<()> {
    let store = &engine.store;
    let instances = store.instances(&deploy.app, deploy.preview_id.as_ref())?;
    if deploy.status == DeployStatus::Watching {
        // Its watch failed and the store already points back at the previous release: the rollback is finished
        // (the new release removed), never queued again, which would deploy the failing release once more.
        for new in instances.iter().filter(|i| i.deploy_id == deploy.id) {
            retire(engine, new, stop_grace).await;
            report.removed.push(new.name.clone());
        }
        let message = "the post-switch watch failed and slipd stopped while rolling back; the previous release was \
                       restored at the next start";
        store.finish(&deploy.id, DeployStatus::RolledBack, Some(message), Some("interrupted"), unix_ms())?;
        report.failed.push(deploy.id.to_string());
        return Ok(());
    }
    for candidate in instances.iter().filter(|i| i.deploy_id == deploy.id && i.role == InstanceRole::Candidate) {
        retire(engine, candidate, stop_grace).await;
        report.removed.push(candidate.name.clone());
    }
    let note = format!(
        "slipd stopped while this deploy was {} (attempt {}); its candidate was removed and the previous release \
         kept",
        deploy.status, deploy.attempt
    );
    store.record_event(&deploy.id, NoteKind::Warning, &note, None, unix_ms())?;
    let id = deploy.id.to_string();
    match store.requeue_interrupted(&deploy.id, unix_ms())? {
        Requeued::Queued { .. } => report.requeued.push(id),
        Requeued::Superseded { .. } => report.superseded.push(id),
        Requeued::Failed => report.failed.push(id),
    }
    Ok(())
}

/// Live instances with `role` that have a container.
fn live(engine: &Engine, role: InstanceRole) -> Result<Vec<InstanceRow>, StoreError> {
    Ok(engine.store.all_live_instances()?.into_iter().filter(|i| i.role == role && !i.runtime_id.is_empty()).collect())
}

/// Stops and removes an instance's container (when it has one) and retires its row.
async fn retire(engine: &Engine, instance: &InstanceRow, grace: Duration) {
    if !instance.runtime_id.is_empty() {
        if let Err(e) = engine.instances.stop(&instance.runtime_id, grace).await {
            tracing::warn!(container = instance.name, error = %e, "stopping a retired instance");
        }
        if let Err(e) = engine.instances.remove(&instance.runtime_id).await {
            tracing::warn!(container = instance.name, error = %e, "removing a retired instance");
            return;
        }
    }
    if let Err(e) = engine.store.set_instance_role(&instance.id, InstanceRole::Retired, unix_ms()) {
        tracing::warn!(instance = instance.id, error = %e, "retiring an instance row");
    }
}

/// Container port → host port, as recorded in the instance row.
#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use slip_core::names::{AppName, DeployId};
    use tokio_util::sync::CancellationToken;

    use super::*;
    use crate::ports::{
        ContainerSpec, InstanceRuntime, InstanceSpec, LogRotation, PortMapping, Resources, loopback_upstream,
    };
    use crate::routes::RouteTable;
    use crate::store::{NewDeploy, RuntimeKind, Store, Switch, Trigger};
    use crate::testing::{FakeProxy, FakeRuntime, Journal, ScriptedProbe};

    fn web() -> slip_core::names::Target {
        slip_core::names::Target::production(app())
    }

    struct World {
        engine: Engine,
        runtime: Arc<FakeRuntime>,
        proxy: Arc<FakeProxy>,
    }

    fn world() -> World {
        let journal = Journal::default();
        let runtime = Arc::new(FakeRuntime::new(journal.clone()));
        let proxy = Arc::new(FakeProxy::new(journal.clone()));
        let store = Store::open_in_memory().unwrap();
        let engine = Engine {
            instances: runtime.clone(),
            image_store: runtime.clone(),
            logs: runtime.clone(),
            probe: Arc::new(ScriptedProbe::new(journal)),
            routes: RouteTable::new(proxy.clone()),
            instance_id: store.instance_id().to_owned(),
            store,
            port_range: 41000..=41999,
            log: LogRotation { max_size_bytes: 1 << 20, max_files: 1 },
            shutdown: CancellationToken::new(),
            images: crate::images::ImagePolicy::without_disk_check(),
        };
        World { engine, runtime, proxy }
    }

    fn templates() -> BTreeMap<String, Vec<RouteTemplate>> {
        let route = RouteTemplate {
            hostname: "web.test".into(),
            path_prefix: None,
            strip_prefix: false,
            container_port: 8080,
            hold_timeout: Duration::from_secs(30),
        };
        BTreeMap::from([("web".to_owned(), vec![route])])
    }

    fn id(n: u32) -> DeployId {
        format!("dep_01jz00000000000000000000{n:02}").parse().unwrap()
    }

    fn app() -> AppName {
        "web".parse().unwrap()
    }

    /// Records deploy `n` through `statuses`, with an instance (and a container on `port`) in `role`.
    async fn deploy(w: &World, n: u32, statuses: &[DeployStatus], role: InstanceRole, port: u16) -> String {
        let store = &w.engine.store;
        let new = NewDeploy {
            id: id(n),
            app: app(),
            preview_id: None,
            trigger: Trigger::Webhook,
            tag: format!("v{n}").parse().unwrap(),
            images: "{}".into(),
            kind: Some("web".into()),
            strategy: Some("blue-green".into()),
            rollback_of: None,
            meta: None,
            actor: None,
            source_ip: None,
            created_at: unix_ms(),
        };
        store.enqueue(&new, unix_ms()).unwrap();
        for s in statuses {
            store.record_status(&id(n), *s, None, None, unix_ms()).unwrap();
        }
        let labels = BTreeMap::from([
            ("slip.app".to_owned(), "web".to_owned()),
            ("slip.managed".to_owned(), "true".to_owned()),
            ("slip.instance".to_owned(), w.engine.instance_id.clone()),
        ]);
        let spec = ContainerSpec {
            name: format!("slip-web-{n}"),
            image: format!("registry.test/web:v{n}"),
            labels,
            env: vec![],
            ports: vec![PortMapping { host: port, container: 8080 }],
            network: None,
            resources: Resources::default(),
            mounts: vec![],
            init: false,
            log: w.engine.log,
        };
        let name = spec.name.clone();
        let container = w.runtime.start(&InstanceSpec::Container(spec)).await.unwrap();
        store
            .insert_instance(&InstanceRow {
                id: format!("ins_{n}"),
                app: app(),
                preview_id: None,
                deploy_id: id(n),
                runtime_kind: RuntimeKind::Container,
                runtime_id: container.clone(),
                name,
                role: InstanceRole::Candidate,
                ports: BTreeMap::from([(8080, port)]),
                created_at: unix_ms(),
                retired_at: None,
            })
            .unwrap();
        if role == InstanceRole::Current {
            let old = store.instances(&app(), None).unwrap().into_iter().find(|i| i.role == InstanceRole::Current);
            store
                .switch(&Switch {
                    app: app(),
                    preview: None,
                    expires_at: None,
                    deploy_id: id(n),
                    new_instance: format!("ins_{n}"),
                    old_instance: old.map(|o| o.id),
                    at: unix_ms(),
                })
                .unwrap();
        }
        container
    }

    const BEFORE_SWITCH: &[DeployStatus] =
        &[DeployStatus::Pulling, DeployStatus::Configuring, DeployStatus::Starting, DeployStatus::HealthChecking];

    fn upstreams(w: &World) -> Vec<String> {
        w.proxy.block().unwrap().routes.iter().map(|r| r.upstream.clone()).collect()
    }

    #[tokio::test]
    async fn an_interrupted_deploy_before_its_switch_loses_its_candidate_and_is_queued_again() {
        let w = world();
        let old = deploy(&w, 1, BEFORE_SWITCH, InstanceRole::Current, 41000).await;
        w.engine.store.finish(&id(1), DeployStatus::Completed, None, None, unix_ms()).unwrap();
        let candidate = deploy(&w, 2, BEFORE_SWITCH, InstanceRole::Candidate, 41001).await;

        let report = reconcile(&w.engine, &templates(), Duration::from_secs(1)).await.unwrap();
        assert_eq!(report.requeued, [id(2).to_string()]);
        assert_eq!(w.runtime.all(), [old], "candidate {candidate} removed");
        assert_eq!(upstreams(&w), ["127.0.0.1:41000"]);
        let row = w.engine.store.deploy(&id(2)).unwrap().unwrap();
        assert_eq!((row.status, row.attempt), (DeployStatus::Queued, 2));
        assert!(w.engine.store.leased_ports("ins_2").unwrap().is_empty());

        // Interrupted again: failed, not retried forever.
        w.engine.store.record_status(&id(2), DeployStatus::Pulling, None, None, unix_ms()).unwrap();
        let report = reconcile(&w.engine, &templates(), Duration::from_secs(1)).await.unwrap();
        assert_eq!(report.failed, [id(2).to_string()]);
        let row = w.engine.store.deploy(&id(2)).unwrap().unwrap();
        assert_eq!((row.status, row.error_code.as_deref()), (DeployStatus::Failed, Some("interrupted")));
    }

    #[tokio::test]
    async fn a_deploy_whose_switch_committed_is_finished_forward() {
        let w = world();
        let old = deploy(&w, 1, BEFORE_SWITCH, InstanceRole::Current, 41000).await;
        w.engine.store.finish(&id(1), DeployStatus::Completed, None, None, unix_ms()).unwrap();
        let mut statuses = BEFORE_SWITCH.to_vec();
        statuses.extend([DeployStatus::Switching, DeployStatus::Draining]);
        let new = deploy(&w, 2, &statuses, InstanceRole::Current, 41001).await;

        let report = reconcile(&w.engine, &templates(), Duration::from_secs(1)).await.unwrap();
        assert_eq!(report.finished, [id(2).to_string()]);
        assert_eq!(w.runtime.all(), [new], "old {old} stopped and removed");
        assert_eq!(upstreams(&w), ["127.0.0.1:41001"]);
        assert_eq!(w.engine.store.deploy(&id(2)).unwrap().unwrap().status, DeployStatus::Completed);
    }

    #[tokio::test]
    async fn a_stopped_current_release_is_started_and_routed_away_from_a_held_candidate() {
        let w = world();
        let old = deploy(&w, 1, BEFORE_SWITCH, InstanceRole::Current, 41000).await;
        w.engine.store.finish(&id(1), DeployStatus::Completed, None, None, unix_ms()).unwrap();
        // Recreate: routes held on the candidate's port, old stopped, candidate starting.
        let candidate =
            deploy(&w, 2, &[DeployStatus::Pulling, DeployStatus::Draining], InstanceRole::Candidate, 41001).await;
        w.runtime.stop(&old, Duration::from_secs(1)).await.unwrap();
        let held = app_routes(&web(), &templates()["web"], &BTreeMap::from([(8080, 41001)]), &loopback_upstream);
        w.engine.routes.update(&web(), held).await.unwrap();

        let report = reconcile(&w.engine, &templates(), Duration::from_secs(1)).await.unwrap();
        assert_eq!(report.restarted, ["slip-web-1"]);
        assert_eq!(report.requeued, [id(2).to_string()]);
        assert_eq!(w.runtime.running(), [old], "candidate {candidate} removed, old running");
        assert_eq!(upstreams(&w), ["127.0.0.1:41000"]);
    }

    #[tokio::test]
    async fn heal_restarts_a_stopped_current_release_and_reports_a_vanished_one_once() {
        let w = world();
        let old = deploy(&w, 1, BEFORE_SWITCH, InstanceRole::Current, 41000).await;
        w.engine.store.finish(&id(1), DeployStatus::Completed, None, None, unix_ms()).unwrap();
        let instance = w.engine.store.instances(&"web".parse().unwrap(), None).unwrap()[0].id.clone();
        let mut memory = HealMemory::default();
        assert_eq!(
            heal(&w.engine, &mut memory, &|_| false).await.unwrap(),
            Healed::default(),
            "a running release is left alone"
        );

        w.runtime.stop(&old, Duration::from_secs(1)).await.unwrap();
        // A deploy in flight owns the app's containers.
        deploy(&w, 2, &[DeployStatus::Pulling], InstanceRole::Candidate, 41001).await;
        assert_eq!(heal(&w.engine, &mut memory, &|_| false).await.unwrap(), Healed::default(), "busy apps are skipped");
        w.engine.store.finish(&id(2), DeployStatus::Failed, Some("x"), Some("x"), unix_ms()).unwrap();

        let healed = heal(&w.engine, &mut memory, &|_| false).await.unwrap();
        assert_eq!(healed.restarted, std::slice::from_ref(&instance));
        assert!(w.runtime.running().contains(&old), "{:?}", w.runtime.running());

        w.runtime.stop(&old, Duration::from_secs(1)).await.unwrap();
        assert_eq!(
            heal(&w.engine, &mut memory, &|_| false).await.unwrap(),
            Healed::default(),
            "restarted once, not fought over"
        );
        let status = |w: &World| w.engine.store.app_state(&"web".parse().unwrap()).unwrap().unwrap().status;
        assert_eq!(status(&w), AppStatus::Down, "a release left stopped shows the app down");
        w.runtime.restart(&old).await.unwrap();
        heal(&w.engine, &mut memory, &|_| false).await.unwrap();
        assert_eq!(status(&w), AppStatus::Running, "and running again once it runs");

        w.runtime.remove(&old).await.unwrap();
        let healed = heal(&w.engine, &mut memory, &|_| false).await.unwrap();
        assert_eq!(healed.missing, [("web".to_owned(), instance)]);
        assert_eq!(w.engine.store.app_state(&"web".parse().unwrap()).unwrap().unwrap().status, AppStatus::Down);
        assert_eq!(heal(&w.engine, &mut memory, &|_| false).await.unwrap(), Healed::default(), "reported once");
    }

    #[tokio::test]
    async fn a_current_release_that_cannot_start_is_reported_for_re_creation() {
        let w = world();
        let old = deploy(&w, 1, BEFORE_SWITCH, InstanceRole::Current, 41000).await;
        w.engine.store.finish(&id(1), DeployStatus::Completed, None, None, unix_ms()).unwrap();
        w.runtime.stop(&old, Duration::from_secs(1)).await.unwrap();
        w.runtime.fail_restart_of(&old);

        let report = reconcile(&w.engine, &templates(), Duration::from_secs(1)).await.unwrap();
        assert_eq!(report.missing, ["web"]);
        assert!(report.restarted.is_empty());
        assert_eq!(w.engine.store.app_state(&"web".parse().unwrap()).unwrap().unwrap().status, AppStatus::Down);
    }

    #[tokio::test]
    async fn containers_no_record_owns_are_removed() {
        let w = world();
        let current = deploy(&w, 1, BEFORE_SWITCH, InstanceRole::Current, 41000).await;
        w.engine.store.finish(&id(1), DeployStatus::Completed, None, None, unix_ms()).unwrap();
        let orphan = deploy(&w, 2, BEFORE_SWITCH, InstanceRole::Candidate, 41001).await;
        w.engine.store.set_instance_role("ins_2", InstanceRole::Retired, unix_ms()).unwrap();
        w.engine.store.finish(&id(2), DeployStatus::Failed, Some("x"), Some("unhealthy"), unix_ms()).unwrap();

        let report = reconcile(&w.engine, &templates(), Duration::from_secs(1)).await.unwrap();
        assert_eq!(report.orphans_removed, ["slip-web-2"]);
        assert_eq!(w.runtime.all(), [current], "{orphan} removed");
    }

    #[tokio::test]
    async fn periodic_refresh_moves_routes_to_reassigned_host_ports_only() {
        let w = world();
        let current = deploy(&w, 1, BEFORE_SWITCH, InstanceRole::Current, 41000).await;
        w.engine.store.finish(&id(1), DeployStatus::Completed, None, None, unix_ms()).unwrap();
        reconcile(&w.engine, &templates(), Duration::from_secs(1)).await.unwrap();
        assert!(refresh_ports(&w.engine).await.unwrap().is_empty(), "nothing moved yet");

        w.runtime.rebind(&current, vec![PortMapping { host: 41500, container: 8080 }]);
        let changes = refresh_ports(&w.engine).await.unwrap();
        assert_eq!(changes, [PortChange { app: "web".into(), container: 8080, from: 41000, to: 41500 }]);
        assert_eq!(upstreams(&w), ["127.0.0.1:41500"]);
        let row = w.engine.store.instance("ins_1").unwrap().unwrap();
        assert_eq!(row.ports, BTreeMap::from([(8080, 41500)]));
        assert!(refresh_ports(&w.engine).await.unwrap().is_empty(), "settled");

        // A deploy that moved the routes elsewhere meanwhile is not undone.
        let elsewhere = app_routes(&web(), &templates()["web"], &BTreeMap::from([(8080, 41777)]), &loopback_upstream);
        w.engine.routes.update(&web(), elsewhere).await.unwrap();
        w.runtime.rebind(&current, vec![PortMapping { host: 41600, container: 8080 }]);
        assert_eq!(refresh_ports(&w.engine).await.unwrap().len(), 1);
        assert_eq!(upstreams(&w), ["127.0.0.1:41777"]);

        // A stopped container publishes nothing: no change is inferred.
        w.runtime.stop(&current, Duration::from_secs(1)).await.unwrap();
        w.runtime.rebind(&current, vec![]);
        assert!(refresh_ports(&w.engine).await.unwrap().is_empty());
    }
}
