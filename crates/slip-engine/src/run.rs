//! The deploy driver: steps a [`slip_core::deploy::Deploy`] and turns each of its actions into IO.
//!
//! This is the only place where the deploy machine meets the outside world. Every status change is
//! committed to the store *before* the action it announces is executed, so a crash at any point
//! leaves a record that says what was about to happen. Adapter errors become
//! [`StepFailure`]s (data) before they reach the machine.
//!
//! It does not decide what to deploy (the daemon resolves a [`Release`] from config) nor when (the
//! daemon's per-app queue).

use std::collections::BTreeMap;
use std::time::Duration;

use slip_core::config::Kind;
use slip_core::deploy::{
    Action, ContainerHealth, ContainerObservation, Deploy, ErrorCode, Event, Interrupt, Interruptible, Observation,
    OldInstance, Outcome, ProbeResult, Settled, Status, StepFailure,
};
use slip_core::names::Target;
use tracing::Instrument;

use crate::clock::{now, unix_ms};
pub use crate::engine::Engine;
use crate::plan;
use crate::ports::{DrainRef, InstanceSpec, ProbeTarget, ProxyError, RuntimeError};
pub use crate::release::Release;
use crate::routes::{AppRoutes, app_routes};
use crate::store::{
    AppStatus, DeployStatus, InstanceRole, InstanceRow, NoteKind, Resolution, RuntimeKind, StoreError, Switch, Unswitch,
};

/// Why a cancelled deploy failed when whoever cancelled it gave no reason.
const CANCELLED: &str = "cancelled";

/// Runs one deploy to its end and records every step. Never panics on adapter failures: they end the
/// deploy as `failed` with a reason.
pub async fn run_deploy(engine: &Engine, release: Release) -> Outcome {
    let span = tracing::info_span!("deploy", app = %release.app, deploy_id = %release.deploy_id, tag = %release.tag);
    drive(engine, release).instrument(span).await
}

async fn drive(engine: &Engine, mut release: Release) -> Outcome {
    let target = release.target();
    let old = current_instance(engine, &target).await;
    release.plan.old = old.as_ref().map(|o| OldInstance { container: o.row.runtime_id.clone() });
    let mut run = Run {
        engine,
        target,
        release,
        old,
        candidate: None,
        image_ref: None,
        taken_ports: Vec::new(),
        recorded: None,
        admitted: None,
        recorded_at: std::time::Instant::now(),
        settled: false,
        repo: None,
    };

    let (mut deploy, mut action) = Deploy::begin(run.release.plan.clone(), now());
    let cancel = run.release.cancel.clone();
    let reason = run.release.cancel_reason.clone();
    let cancelled = move || Interrupt::Cancel(reason.get().cloned().unwrap_or_else(|| CANCELLED.to_owned()));
    loop {
        run.record_progress(&mut deploy).await;
        if let Action::Finish(outcome) = action {
            run.finish(&outcome).await;
            return outcome;
        }
        // Which interrupts count, and whether the pending action may be dropped halfway, is the machine's call.
        let interruptible = deploy.interruptible();
        let interrupt = || {
            if engine.shutdown.is_cancelled() {
                Some(Interrupt::Shutdown)
            } else if cancel.is_cancelled() {
                Some(cancelled())
            } else {
                None
            }
        };
        if let (Action::Remove { container }, Some(_)) = (&action, deploy.diagnose()) {
            crate::diagnostics::record_log_tail(engine, &run.release, container).await;
        }
        let event = match (interruptible, interrupt()) {
            (Interruptible::No, _) | (_, None) => {
                let step = async {
                    match deploy.deadline() {
                        Some(deadline) => {
                            let deadline = tokio::time::Instant::from_std(deadline);
                            match tokio::time::timeout_at(deadline, run.execute(&action)).await {
                                Ok(event) => event,
                                Err(_) => Event::Failed(StepFailure::new(
                                    ErrorCode::Timeout,
                                    format!("{action} did not finish before the deploy timeout"),
                                )),
                            }
                        }
                        None => run.execute(&action).await,
                    }
                };
                let droppable = interruptible == Interruptible::Anytime;
                tokio::select! {
                    event = step => event,
                    _ = engine.shutdown.cancelled(), if droppable => Event::Interrupted(Interrupt::Shutdown),
                    _ = cancel.cancelled(), if droppable => Event::Interrupted(cancelled()),
                }
            }
            (_, Some(why)) => Event::Interrupted(why),
        };
        action = deploy.advance(event, now());
    }
}

/// The instance currently serving an app, with its routes as they stand.
#[derive(Debug, Clone)]
struct Current {
    row: InstanceRow,
    routes: Option<AppRoutes>,
}

struct Run<'a> {
    engine: &'a Engine,
    /// Where the release goes.
    target: Target,
    release: Release,
    old: Option<Current>,
    candidate: Option<Candidate>,
    /// What was actually pulled: a digest reference when the engine reported one.
    image_ref: Option<String>,
    /// Host ports the engine reported taken during this deploy; never leased again by it.
    taken_ports: Vec<u16>,
    recorded: Option<Status>,
    /// What a preview deploy settled at `configuring` (its TTL, above all); `None` for production.
    admitted: Option<crate::preview::Admitted>,
    /// When the recorded status began, for the step-duration histogram.
    recorded_at: std::time::Instant,
    /// Whether the image's repo config has been read and merged (once per deploy).
    settled: bool,
    /// The image's repo config, once `settle` has read it (`None` when the image has none).
    repo: Option<slip_core::repo_config::RepoConfig>,
}

#[derive(Debug, Clone)]
struct Candidate {
    instance_id: String,
    name: String,
    container: Option<String>,
    /// Container port → leased host port.
    ports: BTreeMap<u16, u16>,
}

async fn current_instance(engine: &Engine, target: &Target) -> Option<Current> {
    let rows = engine.store.instances(&target.app, target.preview.as_ref()).ok()?;
    let row = rows.into_iter().find(|r| r.role == InstanceRole::Current && !r.runtime_id.is_empty())?;
    Some(Current { row, routes: engine.routes.get(target) })
}

impl Run<'_> {
    fn key(&self) -> &Target {
        &self.target
    }

    /// Commits a status event when the machine's status changed, and any notes, before acting.
    async fn record_progress(&mut self, deploy: &mut Deploy) {
        let status = deploy.status();
        let store = &self.engine.store;
        let id = &self.release.deploy_id;
        if let Some(acted) = self.recorded {
            crate::fault::after_acted(acted.as_str(), self.release.tag.as_str());
        }
        if self.recorded != Some(status) {
            if let Some(previous) = self.recorded {
                crate::telemetry::step_finished(previous.as_str(), self.recorded_at.elapsed());
            }
            self.recorded_at = std::time::Instant::now();
        }
        if self.recorded != Some(status) && !matches!(status, Status::Completed | Status::Failed | Status::RolledBack) {
            tracing::info!(from = self.recorded.map(Status::as_str), to = status.as_str(), "deploy step");
            if let Err(e) = store.record_status(id, status.into(), None, None, unix_ms()) {
                tracing::error!(error = %e, "recording deploy status");
            }
            self.recorded = Some(status);
            crate::fault::after_recorded(status.as_str(), self.release.tag.as_str());
        }
        for note in deploy.take_notes() {
            let note = self.release.redactor.redact(&note);
            if let Err(e) = store.record_event(id, NoteKind::Log, &note, None, unix_ms()) {
                tracing::error!(error = %e, "recording deploy event");
            }
        }
    }

    async fn finish(&mut self, outcome: &Outcome) {
        if matches!(outcome, Outcome::Failed { .. }) {
            self.forget_unstarted_candidate().await;
        }
        let mut waited = false;
        loop {
            match self.record_outcome(outcome, waited) {
                Err(e) if e.is_storage_unavailable() && !self.engine.shutdown.is_cancelled() => {
                    // A full disk: the outcome is kept here and written once there is room again, so the deploy
                    // never stays recorded as running (a shutdown meanwhile leaves it to the next start's
                    // reconciliation). The app's next deploy waits for it.
                    if !waited {
                        tracing::error!(
                            error = %slip_core::error_chain::error_chain(&e),
                            "recording the deploy's outcome: the database cannot take writes; trying again every second until it can"
                        );
                    }
                    waited = true;
                    tokio::select! {
                        () = tokio::time::sleep(OUTCOME_RETRY) => {}
                        () = self.engine.shutdown.cancelled() => {}
                    }
                }
                Err(e) => {
                    tracing::error!(error = %slip_core::error_chain::error_chain(&e), "recording deploy outcome");
                    return;
                }
                Ok(()) => {
                    if waited {
                        tracing::info!("recorded the deploy's outcome now that the database takes writes again");
                    }
                    return;
                }
            }
        }
    }

    /// Writes a deploy's outcome; `again` when an earlier attempt could not be written (its warnings and log line
    /// are not repeated).
    fn record_outcome(&self, outcome: &Outcome, again: bool) -> Result<(), StoreError> {
        let store = &self.engine.store;
        let id = &self.release.deploy_id;
        let result = match outcome {
            Outcome::Completed { warnings } => {
                for w in warnings.iter().filter(|_| !again) {
                    let w = self.release.redactor.redact(w);
                    logged(
                        store.record_event(id, NoteKind::Warning, &w, None, unix_ms()),
                        "recording a deploy warning",
                    );
                }
                if !again {
                    tracing::info!(status = "completed", "deploy finished");
                }
                store.finish(id, DeployStatus::Completed, None, None, unix_ms())
            }
            Outcome::Failed { failure, app_down: false }
                if failure.code == ErrorCode::Interrupted && self.engine.shutdown.is_cancelled() =>
            {
                // Graceful shutdown before the switch: the candidate is gone, so the deploy goes back to the
                // queue for the next slipd (SPEC §18), like a crash would.
                let message = self.release.redactor.redact(&failure.message);
                logged(
                    store.record_event(id, NoteKind::Warning, &message, None, unix_ms()),
                    "recording a deploy warning",
                );
                let requeued = store.requeue_interrupted(id, unix_ms());
                tracing::warn!(?requeued, "deploy interrupted by shutdown");
                requeued.map(|_| 0)
            }
            Outcome::RolledBack { reason, warnings } => {
                for w in warnings {
                    let w = self.release.redactor.redact(w);
                    logged(
                        store.record_event(id, NoteKind::Warning, &w, None, unix_ms()),
                        "recording a deploy warning",
                    );
                }
                let message = self.release.redactor.redact(&reason.message);
                tracing::warn!(status = "rolled_back", error_code = reason.code.as_str(), error = %message, "deploy finished");
                store.finish(id, DeployStatus::RolledBack, Some(&message), Some(reason.code.as_str()), unix_ms())
            }
            Outcome::Failed { failure, app_down } => {
                let message = self.release.redactor.redact(&failure.message);
                if !again {
                    tracing::warn!(status = "failed", error_code = failure.code.as_str(), error = %message, "deploy finished");
                }
                if let Some(preview) = &self.release.preview {
                    logged(
                        store.preview_deploy_failed(&self.release.app, preview, id, &message),
                        "recording a failed preview",
                    );
                }
                if *app_down {
                    logged(store.set_app_status(&self.release.app, AppStatus::Down, unix_ms()), "marking the app down");
                }
                store.finish(id, DeployStatus::Failed, Some(&message), Some(failure.code.as_str()), unix_ms())
            }
        };
        result.map(|_| ())
    }

    /// A failed deploy whose candidate was recorded but never got a container id (its create failed, or was cut
    /// off by the deploy timeout): removes a container the engine may have made under that name anyway, and retires
    /// the row so its host ports are free again.
    async fn forget_unstarted_candidate(&mut self) {
        let Some(candidate) = self.candidate.take_if(|c| c.container.is_none()) else { return };
        if let Err(e) = self.engine.instances.remove(&candidate.name).await {
            tracing::debug!(container = candidate.name, error = %e, "no container of the unstarted candidate to remove");
        }
        if let Err(e) = self.engine.store.set_instance_role(&candidate.instance_id, InstanceRole::Retired, unix_ms()) {
            tracing::warn!(instance = candidate.instance_id, error = %e, "retiring the unstarted candidate");
        }
    }

    async fn execute(&mut self, action: &Action) -> Event {
        match self.try_execute(action).await {
            Ok(event) => event,
            Err(failure) => Event::Failed(failure),
        }
    }

    async fn try_execute(&mut self, action: &Action) -> Result<Event, StepFailure> {
        let engine = self.engine;
        Ok(match action {
            Action::Pull => {
                let obtained = crate::images::obtain(engine, &self.release).await?;
                let pulled = obtained.image;
                self.image_ref = Some(pulled.digest.clone().unwrap_or(pulled.id.clone()));
                if let (true, Some((_, digest))) =
                    (obtained.pulled, pulled.digest.as_deref().and_then(|d| d.split_once('@')))
                {
                    let release = &self.release;
                    let recorded = engine.store.record_image(
                        &release.app,
                        &release.repository,
                        digest,
                        Some(&release.tag),
                        unix_ms(),
                    );
                    // Without the record, retention never prunes this image: a leak of disk, not a failed deploy.
                    logged(recorded, "recording a pulled image");
                }
                Event::Pulled
            }
            Action::Configure => {
                let settled = self.settle().await?;
                self.configure().await?;
                Event::Configured(settled)
            }
            Action::Start => {
                let spec = self.spec().map_err(|e| StepFailure::new(ErrorCode::ManifestInvalid, e))?;
                let id = match engine.instances.start(&spec).await {
                    Ok(id) => id,
                    Err(e) => {
                        if let RuntimeError::PortUnavailable { port, .. } = &e {
                            // The bind test passed at lease time; the engine says otherwise now. Believe it.
                            self.taken_ports.push(*port);
                        }
                        return Err(e.into());
                    }
                };
                let candidate = self.candidate.as_mut().expect("configured before start");
                candidate.container = Some(id.clone());
                engine.store.set_instance_runtime_id(&candidate.instance_id, &id).map_err(store_failure)?;
                Event::Started(id)
            }
            Action::Probe { container } => Event::Probed(self.observe(container).await?),
            Action::WaitUntil(at) => {
                tokio::time::sleep_until(tokio::time::Instant::from_std(*at)).await;
                Event::Waited
            }
            Action::Hold => {
                let entry = self.candidate_routes(true);
                engine.routes.update(self.key(), Some(entry)).await.map_err(proxy_failure)?;
                Event::Held
            }
            Action::Switch { drain_old } => {
                if self.release.plan.routed {
                    let mut entry = self.candidate_routes(*drain_old);
                    if !*drain_old {
                        // Recreate already holds the routes on the candidate: keep the drain reference, so
                        // the block is unchanged and Caddy is not reloaded a second time.
                        entry.drains = engine.routes.get(self.key()).map(|e| e.drains).unwrap_or_default();
                    }
                    engine.routes.update(self.key(), Some(entry)).await.map_err(proxy_failure)?;
                }
                Event::Switched
            }
            Action::Commit => {
                // When this fails after the routes moved, the machine moves them back (RouteBack) so the record
                // stays true.
                let candidate = self.candidate.as_ref().expect("commit after start");
                engine
                    .store
                    .switch(&Switch {
                        app: self.release.app.clone(),
                        preview: self.release.preview.clone(),
                        expires_at: self.admitted.as_ref().map(|a| unix_ms() + a.ttl.as_millis() as i64),
                        deploy_id: self.release.deploy_id.clone(),
                        new_instance: candidate.instance_id.clone(),
                        old_instance: self.old.as_ref().map(|o| o.row.id.clone()),
                        at: unix_ms(),
                    })
                    .map_err(store_failure)?;
                crate::fault::after_committed(self.release.tag.as_str());
                Event::Committed
            }
            Action::PollDrain => {
                let mut total = Some(0u64);
                for upstream in self.old_upstreams() {
                    match engine.routes.proxy().in_flight(&upstream).await.map_err(proxy_failure)? {
                        Some(n) => total = total.map(|t| t + n),
                        None => total = None,
                    }
                }
                Event::InFlight(total)
            }
            Action::Stop { container, grace } => {
                engine.instances.stop(container, *grace).await?;
                self.note_if_killed(container, *grace).await;
                Event::Stopped
            }
            Action::Remove { container } => {
                engine.instances.remove(container).await?;
                self.retire(container);
                Event::Removed
            }
            Action::Restart { container } => {
                engine.instances.restart(container).await?;
                Event::Restarted
            }
            Action::RouteBack => {
                let back = self.old.as_ref().and_then(|o| o.routes.clone());
                engine.routes.update(self.key(), back).await.map_err(proxy_failure)?;
                Event::RoutedBack
            }
            Action::Uncommit => {
                let candidate = self.candidate.as_ref().expect("uncommit after start");
                engine
                    .store
                    .unswitch(&Unswitch {
                        app: self.release.app.clone(),
                        preview: None,
                        new_instance: candidate.instance_id.clone(),
                        old_instance: self.old.as_ref().map(|o| o.row.id.clone()),
                        at: unix_ms(),
                    })
                    .map_err(store_failure)?;
                Event::Uncommitted
            }
            Action::Finish(_) => unreachable!("run_deploy handles Finish"),
        })
    }

    /// Records a warning when `container` did not stop on SIGTERM and the engine killed it after `grace`: that
    /// wait is often most of a deploy, and a PID 1 that ignores signals is a common cause.
    async fn note_if_killed(&self, container: &str, grace: std::time::Duration) {
        let Ok(Some(state)) = self.engine.instances.inspect(container).await else { return };
        if !state.containers.iter().any(|c| c.exit_code == Some(137) && !c.oom_killed) {
            return;
        }
        let old = self.old.as_ref().is_some_and(|o| o.row.runtime_id == container);
        let which = if old { "old release" } else { "new release" };
        let message = format!(
            "{which} ignored SIGTERM; killed after {} (deploy.stop_grace); if its PID 1 does not handle signals, \
             set app.init = true",
            slip_core::duration::format(grace)
        );
        let recorded =
            self.engine.store.record_event(&self.release.deploy_id, NoteKind::Warning, &message, None, unix_ms());
        logged(recorded, "recording a deploy warning");
    }

    /// Reads the image's repo config and merges it into the release, the first time only.
    async fn settle(&mut self) -> Result<Option<Settled>, StepFailure> {
        if self.settled {
            return Ok(None);
        }
        let image = self.image_ref.clone().unwrap_or_else(|| self.release.image.clone());
        let from_image = crate::repo_config::read(self.engine, &image).await?;
        for warning in &from_image.warnings {
            let warning = self.release.redactor.redact(warning);
            let recorded =
                self.engine.store.record_event(&self.release.deploy_id, NoteKind::Warning, &warning, None, unix_ms());
            logged(recorded, "recording a deploy warning");
        }
        self.repo = from_image.config.clone();
        let repo = from_image.config.as_ref();
        let kind = crate::repo_config::kind(&self.release, repo, self.engine.instances.pod_refusal())?;
        let manifest = match kind {
            Kind::Pod => {
                let path = crate::pod::manifest_path(&self.release.config, repo)?;
                Some(crate::pod::read_manifest(self.engine, &self.release.config, &image, &path).await?)
            }
            Kind::Web | Kind::Worker if !self.release.overrides.is_empty() => {
                return Err(StepFailure::new(
                    ErrorCode::ImagesNotSupported,
                    format!(
                        "{} is a {} app; webhook images overrides apply to pods only",
                        self.release.app,
                        kind.as_str()
                    ),
                ));
            }
            Kind::Web | Kind::Worker => None,
        };
        let (settled, merged) = crate::repo_config::settle(&mut self.release, repo, manifest.as_ref().map(|m| &m.1))?;
        if let Some((text, manifest)) = manifest {
            let config = self.release.config.clone();
            // Overrides are checked against the manifest before anything more is pulled (SPEC §14.3).
            let references = crate::pod::references(&config, &manifest, &self.release.tag, &self.release.overrides)?;
            let pinned = crate::pod::pull_all(self.engine, &self.release, &references, &image).await?;
            let (probes, published) = crate::pod::probes(&config, repo, &merged, &manifest);
            self.release.pod = Some(crate::pod::PodRelease {
                text,
                containers: manifest.containers.iter().map(|c| c.name.clone()).collect(),
                init: manifest.init_containers.iter().map(|c| c.name.clone()).collect(),
                pinned,
                probes,
                published,
            });
        }
        self.settled = true;
        Ok(Some(settled))
    }

    /// Leases host ports and records the candidate instance before anything is created.
    async fn configure(&mut self) -> Result<(), StepFailure> {
        let engine = self.engine;
        // Configured again after a start failed on a taken port: that candidate never ran; free its ports first.
        self.forget_unstarted_candidate().await;
        let suffix: String = {
            use rand::Rng;
            let mut rng = rand::rng();
            (0..8).map(|_| char::from_digit(rng.random_range(0..16), 16).expect("hex digit")).collect()
        };
        if let (Some(plan), None) = (&self.release.preview_plan, &self.admitted) {
            // `settle` read the image's repo config (and recorded its warnings); a preview needs one that admits it.
            let image = self.image_ref.clone().unwrap_or_else(|| self.release.image.clone());
            let admitted = crate::preview::admit(&self.release, plan, self.repo.as_ref(), &image)?;
            self.release.resources = admitted.resources;
            self.admitted = Some(admitted);
        }
        let (instance_id, name) = plan::identity(&self.target, &suffix);
        let container_ports = plan::container_ports(&self.release);

        let row = InstanceRow {
            id: instance_id.clone(),
            app: self.release.app.clone(),
            preview_id: self.release.preview.clone(),
            deploy_id: self.release.deploy_id.clone(),
            runtime_kind: if self.release.pod.is_some() { RuntimeKind::Pod } else { RuntimeKind::Container },
            runtime_id: String::new(),
            name: name.clone(),
            role: InstanceRole::Candidate,
            ports: BTreeMap::new(),
            created_at: unix_ms(),
            retired_at: None,
        };
        engine.store.insert_instance(&row).map_err(store_failure)?;
        let leased = engine
            .store
            .lease_ports(&instance_id, container_ports.len(), engine.port_range.clone(), |port| {
                !self.taken_ports.contains(&port) && engine.instances.port_is_free(port)
            })
            .map_err(|e| StepFailure::new(ErrorCode::PortUnavailable, format!("leasing host ports: {e}")))?;
        let ports: BTreeMap<u16, u16> = container_ports.into_iter().zip(leased).collect();
        engine.store.set_instance_ports(&instance_id, &ports).map_err(store_failure)?;
        let resolution = Resolution {
            kind: self.release.kind.to_owned(),
            strategy: self.release.plan.strategy.as_str().to_owned(),
            digests: match &self.release.pod {
                Some(pod) => serde_json::to_string(&pod.pinned).unwrap_or_default(),
                None => serde_json::json!({ "app": self.image_ref.clone().unwrap_or_default() }).to_string(),
            },
            plan: serde_json::json!({
                "image": self.release.image,
                "routes": self.release.routes.iter().map(|r| serde_json::json!({
                    "hostname": r.hostname, "path_prefix": r.path_prefix, "container_port": r.container_port,
                })).collect::<Vec<_>>(),
                "health_path": self.release.plan.health.path,
                "instance": instance_id,
                "name": name,
                "ports": ports.iter().map(|(c, h)| serde_json::json!({"host": h, "container": c})).collect::<Vec<_>>(),
                "preview": self.admitted.as_ref().map(|a| serde_json::json!({
                    "ttl": slip_core::duration::format(a.ttl), "cap": a.cap,
                })),
                "request": self.release.preview_plan.as_ref().map(|p| serde_json::json!({
                    "preview_ttl": p.webhook_ttl.map(slip_core::duration::format),
                })),
            })
            .to_string(),
        };
        engine.store.record_resolution(&self.release.deploy_id, &resolution).map_err(store_failure)?;
        self.candidate = Some(Candidate { instance_id, name, container: None, ports });
        Ok(())
    }

    fn spec(&self) -> Result<InstanceSpec, String> {
        let candidate = self.candidate.as_ref().expect("configured before start");
        let release = &self.release;
        let identity =
            plan::Candidate { instance_id: &candidate.instance_id, name: &candidate.name, ports: &candidate.ports };
        let image = self.image_ref.as_deref().unwrap_or(&release.image);
        plan::instance_spec(release, &identity, &self.engine.instance_id, image, self.engine.log)
    }

    /// One probe round of `instance`: every container's state and, when the plan has a path and the instance
    /// runs, the HTTP probe of its health port as bound now (the leased one for a candidate, or the old instance's).
    async fn observe(&self, instance: &str) -> Result<Observation, StepFailure> {
        let gone = || Observation::single(ContainerObservation::Stopped { exit_code: None, oom_killed: false }, None);
        let Some(state) = self.engine.instances.inspect(instance).await? else { return Ok(gone()) };
        let mut observation = Observation {
            containers: state
                .containers
                .iter()
                .map(|c| ContainerHealth {
                    name: c.name.clone(),
                    state: if c.running {
                        ContainerObservation::Running {
                            started_at: c.started_at.clone(),
                            restart_count: c.restart_count,
                        }
                    } else {
                        ContainerObservation::Stopped { exit_code: c.exit_code, oom_killed: c.oom_killed }
                    },
                    http: None,
                })
                .collect(),
        };
        if observation.containers.is_empty() {
            return Ok(gone());
        }
        if !state.running() {
            return Ok(observation);
        }
        for (n, probed) in observation.containers.iter_mut().enumerate() {
            // A pod probes the containers SPEC §8.3 names; a single container its health path, if any.
            let probe = match &self.release.pod {
                Some(pod) => pod.probes.get(&probed.name).map(|p| (p.path.clone(), Some(p.port), false)),
                None if n == 0 => {
                    self.release.plan.health.path.clone().map(|p| (p, plan::health_container_port(&self.release), true))
                }
                None => None,
            };
            let Some((path, container_port, any_port)) = probe else { continue };
            let published = state
                .ports
                .iter()
                .find(|p| Some(p.container) == container_port)
                .or(state.ports.first().filter(|_| any_port));
            probed.http = Some(match published {
                Some(published) => {
                    let target = ProbeTarget {
                        upstream: self.engine.instances.upstream(*published),
                        path,
                        host: self.release.health_host.clone(),
                        timeout: self.release.plan.health.timeout,
                    };
                    self.engine.probe.check(&target).await
                }
                None => ProbeResult::Unhealthy("no published port to probe".into()),
            });
        }
        Ok(observation)
    }

    /// The app's routes pointed at the candidate, with a drain reference to the old upstream.
    fn candidate_routes(&self, drain_old: bool) -> AppRoutes {
        let candidate = self.candidate.as_ref().expect("candidate configured");
        // Route ids carry the target: `slip-<app>` for production, `slip-<app>-preview-<id>` for a preview.
        let upstream = |p| self.engine.instances.upstream(p);
        let mut entry = app_routes(&self.target, &self.release.routes, &candidate.ports, &upstream).unwrap_or_default();
        if drain_old {
            let id = slip_core::preview::drain_id(&self.target);
            entry.drains =
                self.old_upstreams().into_iter().map(|upstream| DrainRef { id: id.clone(), upstream }).collect();
        }
        entry
    }

    /// The upstreams the old instance serves on.
    fn old_upstreams(&self) -> Vec<String> {
        let Some(old) = &self.old else { return Vec::new() };
        let mut ups: Vec<String> = match &old.routes {
            Some(r) => r.routes.iter().map(|r| r.upstream.clone()).collect(),
            None => Vec::new(),
        };
        ups.sort();
        ups.dedup();
        ups
    }

    /// After a container is removed, its instance row is retired and its ports released.
    fn retire(&self, container: &str) {
        let store = &self.engine.store;
        let instance = match (&self.candidate, &self.old) {
            (Some(c), _) if c.container.as_deref() == Some(container) => Some(c.instance_id.clone()),
            (_, Some(o)) if o.row.runtime_id == container => Some(o.row.id.clone()),
            _ => None,
        };
        if let Some(id) = instance {
            logged(store.set_instance_role(&id, InstanceRole::Retired, unix_ms()), "retiring a removed instance");
        }
    }
}

/// How often a deploy's outcome is written again while the database cannot take writes.
const OUTCOME_RETRY: Duration = Duration::from_secs(1);

/// Logs a failed store write that must not stop the deploy (the step it records has already happened).
fn logged<T, E: std::fmt::Display>(result: Result<T, E>, what: &str) {
    if let Err(e) = result {
        tracing::error!(error = %e, "{what}");
    }
}

impl From<RuntimeError> for StepFailure {
    fn from(e: RuntimeError) -> StepFailure {
        let code = match &e {
            RuntimeError::Unreachable { .. } => ErrorCode::RuntimeUnavailable,
            RuntimeError::ImageNotFound { .. } => ErrorCode::ImageNotFound,
            RuntimeError::RegistryAuth { .. } => ErrorCode::RegistryAuthFailed,
            RuntimeError::PullFailed { .. } => ErrorCode::PullFailed,
            RuntimeError::PortUnavailable { .. } => ErrorCode::PortUnavailable,
            RuntimeError::Rejected { .. } => ErrorCode::StartFailed,
            RuntimeError::InitFailed { .. } => ErrorCode::InitFailed,
        };
        StepFailure::new(code, e.to_string())
    }
}

fn proxy_failure(e: ProxyError) -> StepFailure {
    let code = match &e {
        ProxyError::Unreachable { .. } => ErrorCode::CaddyUnavailable,
        _ => ErrorCode::CaddyFailed,
    };
    StepFailure::new(code, e.to_string())
}

fn store_failure(e: StoreError) -> StepFailure {
    let mut message = format!("recording the deploy failed: {}", slip_core::error_chain::error_chain(&e));
    if e.is_storage_unavailable() {
        message.push_str(" (the database under storage.path cannot take writes: is its file system full?)");
    }
    StepFailure::new(ErrorCode::StorageUnavailable, message)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use expect_test::expect;
    use slip_core::deploy::{HealthPlan, ProbeResult, Strategy};

    use std::sync::Arc;

    use slip_core::deploy::Plan;
    use slip_core::names::{AppName, DeployId, ImageRepo, Tag};
    use tokio_util::sync::CancellationToken;

    use super::*;
    use crate::ports::{LogRotation, Resources};
    use crate::routes::{RouteTable, RouteTemplate};
    use crate::store::{NewDeploy, Store, Trigger};
    use crate::testing::{FakeProxy, FakeRuntime, Journal, ScriptedProbe};

    struct World {
        engine: Engine,
        journal: Journal,
        runtime: Arc<FakeRuntime>,
        proxy: Arc<FakeProxy>,
        probe: Arc<ScriptedProbe>,
    }

    fn world() -> World {
        let journal = Journal::default();
        let runtime = Arc::new(FakeRuntime::new(journal.clone()));
        let proxy = Arc::new(FakeProxy::new(journal.clone()));
        let probe = Arc::new(ScriptedProbe::new(journal.clone()));
        let store = Store::open_in_memory().unwrap();
        let engine = Engine {
            instances: runtime.clone(),
            image_store: runtime.clone(),
            logs: runtime.clone(),
            probe: probe.clone(),
            routes: RouteTable::new(proxy.clone()),
            instance_id: store.instance_id().to_owned(),
            store,
            port_range: 41000..=41999,
            log: LogRotation { max_size_bytes: 10 << 20, max_files: 3 },
            shutdown: CancellationToken::new(),
            images: crate::images::ImagePolicy::without_disk_check(),
        };
        World { engine, journal, runtime, proxy, probe }
    }

    fn release(w: &World, n: u32, tag: &str, strategy: Strategy) -> Release {
        let app: AppName = "web".parse().unwrap();
        let deploy_id: DeployId = format!("dep_01jz00000000000000000000{n:02}").parse().unwrap();
        let tag: Tag = tag.parse().unwrap();
        let repository: ImageRepo = "registry.test/web".parse().unwrap();
        w.engine
            .store
            .enqueue(
                &NewDeploy {
                    id: deploy_id.clone(),
                    app: app.clone(),
                    preview_id: None,
                    trigger: Trigger::Webhook,
                    tag: tag.clone(),
                    images: "{}".into(),
                    kind: Some("web".into()),
                    strategy: Some(strategy.as_str().into()),
                    rollback_of: None,
                    meta: None,
                    actor: None,
                    source_ip: None,
                    created_at: unix_ms(),
                },
                unix_ms(),
            )
            .unwrap();
        let strategy_name = strategy.as_str();
        let sources = slip_core::config::Sources {
            slip_toml: None,
            apps: vec![slip_core::config::SourceFile {
                path: "apps/web.toml".into(),
                text: format!(
                    "[app]\nname = \"web\"\nimage = \"registry.test/web\"\n[routing]\ndomain = \"web.test\"\n\
                     port = 8080\n[health]\npath = \"/up\"\ninterval = \"1s\"\nretries = 3\nstart_period = \"2s\"\n\
                     [deploy]\nstrategy = \"{strategy_name}\"\n"
                ),
            }],
            env: Default::default(),
        };
        let config = slip_core::config::parse(&sources).unwrap().config.apps.into_values().next().unwrap();
        Release {
            deploy_id,
            app,
            config: Arc::new(config),
            overrides: Default::default(),
            secret_keys: Default::default(),
            pod: None,
            preview: None,
            preview_plan: None,
            image: repository.with_tag(&tag),
            repository,
            tag,
            credentials: None,
            kind: "web",
            routes: vec![RouteTemplate {
                hostname: "web.test".into(),
                path_prefix: None,
                strip_prefix: false,
                container_port: 8080,
                hold_timeout: Duration::from_secs(30),
            }],
            health_port: None,
            health_host: Some("web.test".into()),
            env: vec![("SECRET_TOKEN".into(), "hunter2-value".into())],
            resources: Resources::default(),
            mounts: vec![],
            network: None,
            init: false,
            redactor: crate::redact::Redactor::new([("SECRET_TOKEN", "hunter2-value")]),
            cancel: CancellationToken::new(),
            cancel_reason: Default::default(),
            plan: Plan {
                strategy,
                routed: true,
                health: HealthPlan {
                    path: Some("/up".into()),
                    interval: Duration::from_secs(1),
                    timeout: Duration::from_secs(5),
                    retries: 3,
                    start_period: Duration::from_secs(2),
                    stable_for: Duration::from_secs(5),
                },
                drain_timeout: Duration::from_secs(30),
                stop_grace: Duration::from_secs(10),
                timeout: Duration::from_secs(600),
                watch: Duration::ZERO,
                old: None,
            },
        }
    }

    /// Replaces leased port numbers (which depend on what is free on the machine) with names in order of first
    /// appearance: the first port seen is `P0`, the next new one `P1`, and so on.
    fn normalise(text: &str, engine: &Engine) -> String {
        let range = engine.port_range.clone();
        let mut names: Vec<String> = Vec::new();
        let mut out = String::with_capacity(text.len());
        let mut digits = String::new();
        let mut flush = |digits: &mut String, out: &mut String| {
            match digits.parse::<u16>() {
                Ok(port) if digits.len() == 5 && range.contains(&port) => {
                    let at = names.iter().position(|n| n == digits).unwrap_or_else(|| {
                        names.push(digits.clone());
                        names.len() - 1
                    });
                    out.push_str(&format!("P{at}"));
                }
                _ => out.push_str(digits),
            }
            digits.clear();
        };
        for c in text.chars() {
            if c.is_ascii_digit() {
                digits.push(c);
            } else {
                flush(&mut digits, &mut out);
                out.push(c);
            }
        }
        flush(&mut digits, &mut out);
        out
    }

    #[tokio::test(start_paused = true)]
    async fn blue_green_starts_probes_switches_then_retires_the_old_container() {
        let w = world();
        let first = run_deploy(&w.engine, release(&w, 1, "v1", Strategy::BlueGreen)).await;
        assert!(matches!(first, Outcome::Completed { .. }), "{first}");
        let second = run_deploy(&w.engine, release(&w, 2, "v2", Strategy::BlueGreen)).await;
        assert!(matches!(second, Outcome::Completed { .. }), "{second}");
        expect![[r#"
            pull registry.test/web:v1
            start slip-web-XXXXXXXX (c1) ports=P0->8080
            probe :P0/up
            route web.test -> 127.0.0.1:P0
            pull registry.test/web:v2
            start slip-web-XXXXXXXX (c2) ports=P1->8080
            probe :P1/up
            route web.test -> 127.0.0.1:P1 (draining 127.0.0.1:P0)
            stop c1 grace=10s
            remove c1
        "#]]
        .assert_eq(&normalise(&scrub_names(&w.journal.text()), &w.engine));
        assert_eq!(w.runtime.running(), ["c2"]);
        let state = w.engine.store.app_state(&"web".parse().unwrap()).unwrap().unwrap();
        assert_eq!(state.current_deploy_id.unwrap().as_str(), "dep_01jz0000000000000000000002");
        assert_eq!(state.previous_deploy_id.unwrap().as_str(), "dep_01jz0000000000000000000001");
        let spec = w.runtime.spec("c2").unwrap();
        assert_eq!(spec.labels["slip.app"], "web");
        assert!(spec.env.iter().any(|(k, v)| k == "SECRET_TOKEN" && v == "hunter2-value"));
        assert!(spec.image.contains("@sha256:"), "containers run the pulled digest: {}", spec.image);
    }

    #[tokio::test(start_paused = true)]
    async fn a_leased_port_another_process_took_gets_a_new_lease_and_a_second_start() {
        let w = world();
        // The port the lease picks first (the lowest one free on this machine), taken after the bind test passed.
        let first = w
            .engine
            .port_range
            .clone()
            .find(|p| w.engine.instances.port_is_free(*p))
            .expect("a free port in the test range");
        w.runtime.take_host_port(first);
        let outcome = run_deploy(&w.engine, release(&w, 1, "v1", Strategy::BlueGreen)).await;
        assert!(matches!(outcome, Outcome::Completed { .. }), "{outcome}");
        let journal = w.journal.text();
        assert!(journal.contains(&format!("failed: host port {first} taken")), "{journal}");
        let spec = w.runtime.spec("c1").expect("the second start made a container");
        assert!(spec.ports.iter().all(|p| p.host != first), "{:?}", spec.ports);
        let row = w.engine.store.deploy(&"dep_01jz0000000000000000000001".parse().unwrap()).unwrap().unwrap();
        assert_eq!(row.status, DeployStatus::Completed);
        let instances = w.engine.store.instances(&"web".parse().unwrap(), None).unwrap();
        assert_eq!(instances.len(), 1, "the candidate that never started is retired");
        let leased: Vec<u16> = instances.iter().flat_map(|i| w.engine.store.leased_ports(&i.id).unwrap()).collect();
        assert!(!leased.contains(&first), "the taken port is not leased: {leased:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn unhealthy_candidate_is_removed_and_routes_never_move() {
        let w = world();
        run_deploy(&w.engine, release(&w, 1, "v1", Strategy::BlueGreen)).await;
        let routes_before = w.proxy.block();
        w.probe.answer_by_default(ProbeResult::Unhealthy("HTTP 503".into()));
        let outcome = run_deploy(&w.engine, release(&w, 2, "v2", Strategy::BlueGreen)).await;
        let Outcome::Failed { failure, app_down: false } = &outcome else { panic!("{outcome}") };
        assert_eq!(failure.code, ErrorCode::Unhealthy);
        assert_eq!(w.proxy.block(), routes_before);
        assert_eq!(w.runtime.all(), ["c1"], "candidate removed, old untouched");
        let row = w.engine.store.deploy(&"dep_01jz0000000000000000000002".parse().unwrap()).unwrap().unwrap();
        assert_eq!(row.status, DeployStatus::Failed);
        assert_eq!(row.error_code.as_deref(), Some("unhealthy"));
        let events = w.engine.store.events(&row.id, 0).unwrap();
        assert!(events.iter().any(|e| e.message.contains("probe 3/3 failed: HTTP 503")), "{events:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn secret_values_in_notes_and_errors_are_redacted_before_they_are_recorded() {
        let w = world();
        w.probe.answer_by_default(ProbeResult::Unhealthy("HTTP 500: bad password hunter2-value".into()));
        let outcome = run_deploy(&w.engine, release(&w, 1, "v1", Strategy::BlueGreen)).await;
        let Outcome::Failed { failure, .. } = &outcome else { panic!("{outcome}") };
        assert!(failure.message.contains("hunter2-value"), "the outcome itself is not rewritten");
        let row = w.engine.store.deploy(&"dep_01jz0000000000000000000001".parse().unwrap()).unwrap().unwrap();
        let error = row.error.unwrap();
        assert!(error.contains("[redacted:SECRET_TOKEN]") && !error.contains("hunter2-value"), "{error}");
        let events = w.engine.store.events(&row.id, 0).unwrap();
        assert!(events.iter().any(|e| e.message.contains("[redacted:SECRET_TOKEN]")), "{events:?}");
        assert!(events.iter().all(|e| !e.message.contains("hunter2-value")), "{events:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn failed_switch_removes_the_candidate_and_keeps_the_old_route() {
        let w = world();
        run_deploy(&w.engine, release(&w, 1, "v1", Strategy::BlueGreen)).await;
        let routes_before = w.proxy.block();
        w.proxy.fail_next_writes(1);
        let outcome = run_deploy(&w.engine, release(&w, 2, "v2", Strategy::BlueGreen)).await;
        let Outcome::Failed { failure, .. } = &outcome else { panic!("{outcome}") };
        assert_eq!(failure.code, ErrorCode::CaddyFailed);
        assert_eq!(w.proxy.block(), routes_before);
        assert_eq!(w.runtime.running(), ["c1"]);
        let state = w.engine.store.app_state(&"web".parse().unwrap()).unwrap().unwrap();
        assert_eq!(state.current_deploy_id.unwrap().as_str(), "dep_01jz0000000000000000000001");
    }

    #[tokio::test(start_paused = true)]
    async fn recreate_holds_routes_on_the_candidate_before_stopping_the_old() {
        let w = world();
        run_deploy(&w.engine, release(&w, 1, "v1", Strategy::Recreate)).await;
        let outcome = run_deploy(&w.engine, release(&w, 2, "v2", Strategy::Recreate)).await;
        assert!(matches!(outcome, Outcome::Completed { .. }), "{outcome}");
        let journal = normalise(&scrub_names(&w.journal.text()), &w.engine);
        let second: Vec<&str> = journal.lines().skip_while(|l| !l.contains("v2")).collect();
        expect![[r#"
            pull registry.test/web:v2
            route web.test -> 127.0.0.1:P1 (draining 127.0.0.1:P0)
            stop c1 grace=10s
            start slip-web-XXXXXXXX (c2) ports=P1->8080
            probe :P1/up
            remove c1"#]]
        .assert_eq(&second.join("\n"));
    }

    #[tokio::test(start_paused = true)]
    async fn failed_recreate_restarts_the_old_container_and_routes_back() {
        let w = world();
        run_deploy(&w.engine, release(&w, 1, "v1", Strategy::Recreate)).await;
        let routes_before = w.proxy.block();
        w.runtime.fail_start_of(&format!(
            "registry.test/web@sha256:{:064x}",
            "registry.test/web:v2".len() as u64 * 7919 + 1
        ));
        w.probe.answer_by_default(ProbeResult::Healthy(200));
        let outcome = run_deploy(&w.engine, release(&w, 2, "v2", Strategy::Recreate)).await;
        let Outcome::Failed { failure, app_down: false } = &outcome else { panic!("{outcome}") };
        assert!(failure.message.ends_with("previous release restored"), "{}", failure.message);
        assert_eq!(w.proxy.block().map(|b| b.routes), routes_before.map(|b| b.routes));
        assert_eq!(w.runtime.running(), ["c1"]);
        // The candidate that never started holds no row and no port.
        let live: Vec<_> = w.engine.store.instances(&"web".parse().unwrap(), None).unwrap();
        assert_eq!(live.len(), 1, "only the old release's row is live: {live:?}");
        assert_eq!(live[0].role, InstanceRole::Current);
        let candidate = w.engine.store.instance("ins_2").unwrap();
        assert!(candidate.as_ref().is_none_or(|c| c.retired_at.is_some()), "{candidate:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_interrupts_once_lets_recreate_restore_the_old_release_and_requeues() {
        let w = world();
        let (running, id, _) = recreate_v2_health_checking(&w).await;
        w.engine.shutdown.cancel();
        let outcome = running.await.unwrap();
        let Outcome::Failed { failure, app_down: false } = &outcome else { panic!("{outcome}") };
        assert_eq!(failure.code, ErrorCode::Interrupted);
        assert!(failure.message.ends_with("previous release restored"), "{}", failure.message);
        assert_eq!(w.runtime.running(), ["c1"], "the old release runs again, the candidate is gone");
        let row = w.engine.store.deploy(&id).unwrap().unwrap();
        assert_eq!((row.status, row.attempt), (DeployStatus::Queued, 2), "queued again, not failed");
    }

    #[tokio::test]
    async fn a_cancelled_deploy_unwinds_and_ends_failed_cancelled() {
        let w = world();
        let (running, id, cancel) = recreate_v2_health_checking(&w).await;
        cancel.cancel();
        let outcome = running.await.unwrap();
        let Outcome::Failed { failure, app_down: false } = &outcome else { panic!("{outcome}") };
        assert_eq!(failure.code, ErrorCode::Cancelled);
        assert_eq!(w.runtime.running(), ["c1"], "the old release runs again, the candidate is gone");
        let row = w.engine.store.deploy(&id).unwrap().unwrap();
        assert_eq!(
            (row.status, row.error_code.as_deref()),
            (DeployStatus::Failed, Some("cancelled")),
            "not queued again"
        );
    }

    /// Deploys v1 with Recreate, then starts v2 (whose probes never pass, while v1's port stays healthy for the
    /// restore) and returns once v2 is health checking: the running deploy, v2's id and v2's cancel token.
    async fn recreate_v2_health_checking(w: &World) -> (tokio::task::JoinHandle<Outcome>, DeployId, CancellationToken) {
        run_deploy(&w.engine, release(w, 1, "v1", Strategy::Recreate)).await;
        let v2 = release(w, 2, "v2", Strategy::Recreate);
        let cancel = v2.cancel.clone();
        // Whatever port v2 leases (the bind test may skip one that another process holds), it never answers.
        w.probe.script(v1_port(w), &[ProbeResult::Healthy(200)]);
        w.probe.answer_by_default(ProbeResult::Unhealthy("connection refused".into()));
        let engine = w.engine.clone();
        let running = tokio::spawn(async move { run_deploy(&engine, v2).await });
        let id: DeployId = "dep_01jz0000000000000000000002".parse().unwrap();
        while w.engine.store.deploy(&id).unwrap().unwrap().status != DeployStatus::HealthChecking {
            assert!(!running.is_finished(), "the deploy ended before it reached health_checking");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        (running, id, cancel)
    }

    /// The host port of the app's current instance.
    fn v1_port(w: &World) -> u16 {
        let rows = w.engine.store.instances(&"web".parse().unwrap(), None).unwrap();
        let current = rows.iter().find(|r| r.role == InstanceRole::Current).expect("a current instance");
        *current.ports.values().next().expect("a host port")
    }

    /// Container names end in random hex; tests compare everything else.
    fn scrub_names(text: &str) -> String {
        text.lines()
            .map(|l| match l.find("slip-web-") {
                Some(i) => format!("{}slip-web-XXXXXXXX{}", &l[..i], &l[i + 17..]),
                None => l.to_owned(),
            })
            .map(|l| l + "\n")
            .collect()
    }
}
