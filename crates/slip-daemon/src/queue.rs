//! The per-target deploy queue (SPEC §7.1).
//!
//! Queued deploys live in SQLite (the webhook handler commits them before answering 202); this module
//! only decides which one runs. Each target (an app's production, or one of its previews) has at most one runner
//! task; the runner takes
//! the oldest waiting deploy of its target, waits for a global slot, runs it, and repeats until the
//! target has nothing waiting. A newer webhook supersedes the queued one in the store, so the runner
//! never sees it.
//!
//! Runner tasks belong to this process and end with it, so no lock can go stale. It does not resolve
//! what a deploy means (that is [`crate::release`]) nor run it (that is `slip_engine::run`).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use slip_core::deploy::{ErrorCode, Outcome};
use slip_core::names::{AppName, DeployId, Target};
use slip_engine::clock::unix_ms;
use slip_engine::run::{Engine, run_deploy};
use slip_engine::store::{DeployRow, DeployStatus, Enqueued, NewDeploy, PreviewEnqueued, PreviewRequest, StoreError};
use slip_engine::telemetry;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::release::Resolver;

/// A deploy that runs, as the scheduler can cancel it.
struct Running {
    id: DeployId,
    token: CancellationToken,
    reason: Arc<std::sync::OnceLock<String>>,
}

impl Running {
    fn cancel(&self, reason: &str) {
        let _ = self.reason.set(reason.to_owned());
        self.token.cancel();
    }
}

/// What [`Scheduler::cancel`] did (SPEC §7.7).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cancelled {
    /// The deploy was waiting (`queued` or `accepted`) and is now `failed` with `cancelled`.
    Waiting,
    /// The deploy runs, before its switch: it stops at its next step boundary, removes its candidate and fails
    /// with `cancelled`. Its status when asked.
    Running(DeployStatus),
    /// Too late: the deploy switched (use rollback) or is over. Its status.
    NotCancellable(DeployStatus),
    /// No such deploy.
    NotFound,
}

/// Hands waiting deploys to runner tasks.
#[derive(Clone)]
pub struct Scheduler {
    inner: Arc<Inner>,
}

struct Inner {
    engine: Engine,
    resolver: Resolver,
    /// Targets that have a runner task right now.
    active: Mutex<HashSet<Target>>,
    /// Each target's running deploy, with its cancel token. Locked when a deploy starts and when one is cancelled,
    /// so a cancel either finishes a waiting deploy before it runs or cancels it running.
    running: Mutex<HashMap<Target, Running>>,
    /// Apps being deleted: no runner starts for them and their runner takes no further deploy. Locked after
    /// `active` when both are needed.
    deleting: Mutex<HashSet<String>>,
    /// Previews being torn down: like `deleting`, for one target. Locked after `active`, never with `deleting`.
    tearing: Mutex<HashSet<Target>>,
    /// Deploys of different targets running at once (`runtime.max_concurrent_deploys`).
    slots: Semaphore,
    tracker: TaskTracker,
    /// Cancelled when shutdown begins: runners start no new deploy (queued ones stay queued).
    closing: CancellationToken,
    /// Called when a preview deploy completed (the daemon evicts over the cap); set once at boot.
    on_preview_completed: std::sync::OnceLock<PreviewCompleted>,
    /// Wakes the preview reaper early: a preview's `expires_at` changed.
    reaper_wake: tokio::sync::Notify,
}

/// What runs after a preview deploy completed: its target and deploy.
pub type PreviewCompleted = Box<dyn Fn(Target, slip_core::names::DeployId) + Send + Sync>;

impl Scheduler {
    /// A scheduler running at most `max_concurrent` deploys at once, with tasks on `tracker`.
    pub fn new(
        engine: Engine,
        resolver: Resolver,
        max_concurrent: usize,
        tracker: TaskTracker,
        closing: CancellationToken,
    ) -> Scheduler {
        Scheduler {
            inner: Arc::new(Inner {
                engine,
                resolver,
                active: Mutex::default(),
                running: Mutex::default(),
                deleting: Mutex::default(),
                tearing: Mutex::default(),
                slots: Semaphore::new(max_concurrent.max(1)),
                tracker,
                closing,
                on_preview_completed: std::sync::OnceLock::new(),
                reaper_wake: tokio::sync::Notify::new(),
            }),
        }
    }

    /// Makes sure `target` has a runner if anything of it is waiting. Call after committing a deploy.
    pub fn kick(&self, target: &Target) {
        let mut active = self.inner.active.lock().expect("scheduler lock");
        if self.is_deleting(target.app.as_str()) || self.is_tearing(target) {
            return;
        }
        if active.insert(target.clone()) {
            let this = self.clone();
            let target = target.clone();
            self.inner.tracker.spawn(async move { this.runner(target).await });
        }
    }

    /// Starts runners for every target with waiting deploys (at boot): queued ones, including those that
    /// reconciliation queued again, and accepted ones that had not started when the last slipd stopped.
    pub fn kick_all(&self) {
        match self.inner.engine.store.unfinished() {
            Ok(deploys) => deploys
                .iter()
                .filter(|d| matches!(d.status, DeployStatus::Queued | DeployStatus::Accepted))
                .for_each(|d| self.kick(&Target { app: d.app.clone(), preview: d.preview_id.clone() })),
            Err(e) => tracing::error!(error = %e, "listing waiting deploys"),
        }
    }

    /// Sets what runs after each completed preview deploy (once; later calls are ignored).
    pub fn on_preview_completed(&self, f: PreviewCompleted) {
        let _ = self.inner.on_preview_completed.set(f);
    }

    /// What the preview reaper waits on between passes; notified when a preview's expiry may have moved closer.
    pub fn reaper_wake(&self) -> &tokio::sync::Notify {
        &self.inner.reaper_wake
    }

    /// The task tracker runners and background work run on.
    pub fn tracker(&self) -> &TaskTracker {
        &self.inner.tracker
    }

    /// Marks `app` as being deleted until the guard drops: no runner starts for it, its runner takes no further
    /// deploy, and [`Scheduler::is_deleting`] says so to the webhook and rollback handlers.
    /// `None` when another delete of the app is under way.
    pub fn begin_delete(&self, app: &str) -> Option<DeleteGuard> {
        let _active = self.inner.active.lock().expect("scheduler lock");
        let fresh = self.inner.deleting.lock().expect("scheduler lock").insert(app.to_owned());
        fresh.then(|| DeleteGuard { scheduler: self.clone(), app: app.to_owned() })
    }

    /// Commits `new` to the queue and kicks its target, unless the app is being deleted (`Ok(None)`). The check
    /// and the insert happen under the delete mark's lock, so a delete either sees the deploy (and fails it) or the
    /// deploy is refused.
    pub fn enqueue(&self, new: &NewDeploy) -> Result<Option<Enqueued>, StoreError> {
        let enqueued = {
            let deleting = self.inner.deleting.lock().expect("scheduler lock");
            if deleting.contains(new.app.as_str()) {
                return Ok(None);
            }
            self.inner.engine.store.enqueue(new, unix_ms())?
        };
        if let Some(superseded) = &enqueued.supersedes
            && let Ok(Some(row)) = self.inner.engine.store.deploy(superseded)
        {
            let labels = telemetry::DeployLabels {
                app: row.app.as_str(),
                kind: "",
                strategy: "",
                status: "superseded",
                trigger: row.trigger.as_str(),
            };
            telemetry::deploy_finished(labels, None);
        }
        self.kick(&Target { app: new.app.clone(), preview: new.preview_id.clone() });
        Ok(Some(enqueued))
    }

    /// Commits preview deploy `new` with its preview row (one transaction) and kicks its target, unless the app is
    /// being deleted or the preview torn down (`Ok(None)`); checked under the same locks as [`Scheduler::enqueue`].
    pub fn enqueue_preview(
        &self,
        new: &NewDeploy,
        request: &PreviewRequest,
    ) -> Result<Option<PreviewEnqueued>, StoreError> {
        let target = Target { app: new.app.clone(), preview: new.preview_id.clone() };
        let enqueued = {
            let deleting = self.inner.deleting.lock().expect("scheduler lock");
            let tearing = self.inner.tearing.lock().expect("scheduler lock");
            if deleting.contains(new.app.as_str()) || tearing.contains(&target) {
                return Ok(None);
            }
            self.inner.engine.store.enqueue_preview(new, request, unix_ms())?
        };
        self.kick(&target);
        Ok(Some(enqueued))
    }

    /// Marks preview `target` as being torn down until the guard drops: no runner starts for it, its runner takes
    /// no further deploy, and no deploy of it is enqueued. `None` when a teardown of it is already under way.
    pub fn begin_teardown(&self, target: &Target) -> Option<TeardownGuard> {
        let _active = self.inner.active.lock().expect("scheduler lock");
        let fresh = self.inner.tearing.lock().expect("scheduler lock").insert(target.clone());
        fresh.then(|| TeardownGuard { scheduler: self.clone(), target: target.clone() })
    }

    /// Whether `target` is being torn down.
    pub fn is_tearing(&self, target: &Target) -> bool {
        self.inner.tearing.lock().expect("scheduler lock").contains(target)
    }

    /// Cancels `target`'s running deploy and waits up to `bound` for its runner to end (call with the target marked
    /// by [`Scheduler::begin_teardown`]). Answers whether it ended in time.
    pub async fn cancel_target_and_wait(&self, target: &Target, bound: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + bound;
        loop {
            if let Some(token) = self.inner.running.lock().expect("scheduler lock").get(target) {
                token.cancel("cancelled: the preview is being torn down");
            }
            if !self.inner.active.lock().expect("scheduler lock").contains(target) {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Whether a deploy of `target` is running or waiting for a runner here.
    pub fn is_busy(&self, target: &Target) -> bool {
        self.inner.active.lock().expect("scheduler lock").contains(target)
    }

    /// Whether `app` is being deleted.
    pub fn is_deleting(&self, app: &str) -> bool {
        self.inner.deleting.lock().expect("scheduler lock").contains(app)
    }

    /// Cancels the running deploys of every target of `app` (before its switch a deploy unwinds and ends
    /// `cancelled`; after it, it finishes) and waits up to `bound` for the app's runners to end. Call with the app marked by
    /// [`Scheduler::begin_delete`], so the runner takes no other deploy. A deploy that registers its token while
    /// this waits (it was still waiting for a slot, or being resolved) is cancelled too. Answers whether the
    /// runner ended in time.
    pub async fn cancel_and_wait(&self, app: &str, bound: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + bound;
        loop {
            for (target, running) in self.inner.running.lock().expect("scheduler lock").iter() {
                if target.app.as_str() == app {
                    running.cancel("cancelled: the app is being deleted");
                }
            }
            if !self.inner.active.lock().expect("scheduler lock").iter().any(|t| t.app.as_str() == app) {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Cancels deploy `id` with `reason` (SPEC §7.7): a waiting one fails at once; a running one before its switch
    /// is told to stop; one that switched, or ended, is not cancellable.
    pub fn cancel(&self, id: &DeployId, reason: &str) -> Result<Cancelled, StoreError> {
        let store = &self.inner.engine.store;
        let running = self.inner.running.lock().expect("scheduler lock");
        let Some(row) = store.deploy(id)? else { return Ok(Cancelled::NotFound) };
        let past_switch =
            matches!(row.status, DeployStatus::Switching | DeployStatus::Watching | DeployStatus::Draining);
        if row.status.is_terminal() || past_switch {
            return Ok(Cancelled::NotCancellable(row.status));
        }
        if let Some(run) = running.values().find(|r| &r.id == id) {
            run.cancel(reason);
            return Ok(Cancelled::Running(row.status));
        }
        // Not running, so waiting: `queued`, or `accepted` and waiting for a slot (the runner checks again under
        // this lock before it starts it).
        store.finish(id, DeployStatus::Failed, Some(reason), Some("cancelled"), unix_ms())?;
        telemetry::deploy_finished(
            telemetry::DeployLabels {
                app: row.app.as_str(),
                kind: "",
                strategy: "",
                status: "failed",
                trigger: row.trigger.as_str(),
            },
            None,
        );
        Ok(Cancelled::Waiting)
    }

    /// The next deploy of `target`: one already holding the slot (`accepted`), else the queued one, which is
    /// promoted to `accepted` in the same transaction.
    fn next(&self, target: &Target) -> Result<Option<DeployRow>, slip_engine::store::StoreError> {
        let store = &self.inner.engine.store;
        let accepted = store
            .unfinished()?
            .into_iter()
            .filter(|d| d.app == target.app && d.preview_id == target.preview && d.status == DeployStatus::Accepted)
            .min_by(|a, b| a.id.cmp(&b.id));
        match accepted {
            Some(row) => Ok(Some(row)),
            None => store.promote_queued(&target.app, target.preview.as_ref(), unix_ms()),
        }
    }

    async fn runner(self, target: Target) {
        let app = target.app.as_str().to_owned();
        loop {
            if self.inner.closing.is_cancelled() {
                // Checked before `next`, which would promote a queued deploy: queued deploys stay queued and
                // the next slipd runs them.
                self.inner.active.lock().expect("scheduler lock").remove(&target);
                return;
            }
            let next = {
                let mut active = self.inner.active.lock().expect("scheduler lock");
                if self.is_deleting(&app) || self.is_tearing(&target) {
                    // What is still waiting fails with the delete (`Store::forget_app`).
                    active.remove(&target);
                    return;
                }
                match self.next(&target) {
                    Ok(Some(row)) => row,
                    Ok(None) => {
                        active.remove(&target);
                        return;
                    }
                    Err(e) => {
                        tracing::error!(target = %target, error = %e, "reading the deploy queue");
                        active.remove(&target);
                        return;
                    }
                }
            };
            if self.inner.closing.is_cancelled() {
                // Queued deploys stay queued; the next slipd runs them.
                self.inner.active.lock().expect("scheduler lock").remove(&target);
                return;
            }
            let permit = tokio::select! {
                permit = self.inner.slots.acquire() => permit.expect("semaphore never closed"),
                _ = self.inner.closing.cancelled() => {
                    self.inner.active.lock().expect("scheduler lock").remove(&target);
                    return;
                }
            };
            if self.is_deleting(&app) || self.is_tearing(&target) {
                // The app is being deleted (or the preview torn down) while this deploy waited for a slot: leave it to the delete, which
                // fails it with `app_deleted`.
                drop(permit);
                self.inner.active.lock().expect("scheduler lock").remove(&target);
                return;
            }
            self.run_one(next).await;
            drop(permit);
        }
    }

    async fn run_one(&self, row: DeployRow) {
        let store = &self.inner.engine.store;
        let labels = |kind, strategy, status| telemetry::DeployLabels {
            app: row.app.as_str(),
            kind,
            strategy,
            status,
            trigger: row.trigger.as_str(),
        };
        if let Some(expired) = self.inner.resolver.expired(&row) {
            if let Err(e) = store.finish(&row.id, DeployStatus::Failed, Some(&expired), Some("expired"), unix_ms()) {
                tracing::error!(deploy_id = %row.id, error = %e, "recording an expired deploy");
            }
            telemetry::deploy_finished(labels("", "", "failed"), None);
            return;
        }
        match self.inner.resolver.resolve(&row) {
            Ok(release) => {
                let target = release.target();
                {
                    let mut running = self.inner.running.lock().expect("scheduler lock");
                    // A cancel may have ended it while it waited for a slot or was resolved.
                    match store.deploy(&row.id) {
                        Ok(Some(now)) if !now.status.is_terminal() => {}
                        Ok(_) => return,
                        Err(e) => {
                            tracing::error!(deploy_id = %row.id, error = %e, "reading a deploy before it runs");
                            return;
                        }
                    }
                    let entry = Running {
                        id: row.id.clone(),
                        token: release.cancel.clone(),
                        reason: release.cancel_reason.clone(),
                    };
                    running.insert(target.clone(), entry);
                }
                let (kind, strategy) = (release.kind, release.plan.strategy.as_str());
                let started = std::time::Instant::now();
                let outcome = run_deploy(&self.inner.engine, release).await;
                self.inner.running.lock().expect("scheduler lock").remove(&target);
                let status = match &outcome {
                    Outcome::Completed { .. } => Some("completed"),
                    Outcome::RolledBack { .. } => Some("rolled_back"),
                    // Interrupted by shutdown before the switch: queued again, not finished.
                    Outcome::Failed { failure, .. }
                        if failure.code == ErrorCode::Interrupted && self.inner.engine.shutdown.is_cancelled() =>
                    {
                        None
                    }
                    Outcome::Failed { .. } => Some("failed"),
                };
                if let Some(status) = status {
                    telemetry::deploy_finished(labels(kind, strategy, status), Some(started.elapsed()));
                }
                if let Outcome::RolledBack { .. } = outcome {
                    telemetry::rollback(row.app.as_str(), "auto");
                }
                if let Outcome::Completed { .. } = outcome {
                    tracing::debug!(deploy_id = %row.id, "completed");
                    // SPEC §7.3 `completed`, §12: keep the last releases' images, prune the rest.
                    slip_engine::images::prune_app(&self.inner.engine, &row.app).await;
                    if row.preview_id.is_some() {
                        // The switch reset the preview's expiry.
                        self.inner.reaper_wake.notify_one();
                    }
                    if let Some(preview) = &row.preview_id
                        && let Some(completed) = &self.inner.on_preview_completed.get()
                    {
                        completed(Target::preview(row.app.clone(), preview.clone()), row.id.clone());
                    }
                }
            }
            Err(failure) => {
                let code = failure.code;
                tracing::warn!(deploy_id = %row.id, error = %failure.message, "deploy could not start");
                let recorded = store.finish(
                    &row.id,
                    DeployStatus::Failed,
                    Some(&failure.message),
                    Some(code_str(code)),
                    unix_ms(),
                );
                if let Err(e) = recorded {
                    tracing::error!(deploy_id = %row.id, error = %e, "recording a deploy that could not start");
                }
                if let Some(preview) = &row.preview_id {
                    let recorded = store.preview_deploy_failed(&row.app, preview, &row.id, &failure.message);
                    if let Err(e) = recorded {
                        tracing::error!(deploy_id = %row.id, error = %e, "recording a failed preview");
                    }
                }
                telemetry::deploy_finished(labels("", "", "failed"), None);
            }
        }
    }
}

/// Clears an app's "being deleted" mark when dropped (the delete finished or gave up), then gives the app's
/// production target a runner again in case the delete gave up with deploys still waiting.
pub struct DeleteGuard {
    scheduler: Scheduler,
    app: String,
}

impl Drop for DeleteGuard {
    fn drop(&mut self) {
        {
            let _active = self.scheduler.inner.active.lock().expect("scheduler lock");
            self.scheduler.inner.deleting.lock().expect("scheduler lock").remove(&self.app);
        }
        if let Ok(app) = self.app.parse::<AppName>() {
            self.scheduler.kick(&Target::production(app));
        }
    }
}

/// Clears a preview's "being torn down" mark when dropped.
pub struct TeardownGuard {
    scheduler: Scheduler,
    target: Target,
}

impl Drop for TeardownGuard {
    fn drop(&mut self) {
        let _active = self.scheduler.inner.active.lock().expect("scheduler lock");
        self.scheduler.inner.tearing.lock().expect("scheduler lock").remove(&self.target);
    }
}

fn code_str(code: ErrorCode) -> &'static str {
    code.as_str()
}
