//! The per-target deploy queue (SPEC §7.1).
//!
//! Queued deploys live in SQLite (the webhook handler commits them before answering 202); this module
//! only decides which one runs. Each target (an app) has at most one runner task; the runner takes
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
use slip_core::names::AppName;
use slip_engine::run::{Engine, run_deploy, unix_ms};
use slip_engine::store::{DeployRow, DeployStatus};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::release::Resolver;

/// Hands waiting deploys to runner tasks.
#[derive(Clone)]
pub struct Scheduler {
    inner: Arc<Inner>,
}

struct Inner {
    engine: Engine,
    resolver: Resolver,
    /// Targets that have a runner task right now.
    active: Mutex<HashSet<String>>,
    /// The cancel token of each target's running deploy.
    running: Mutex<HashMap<String, CancellationToken>>,
    /// Deploys of different targets running at once (`runtime.max_concurrent_deploys`).
    slots: Semaphore,
    tracker: TaskTracker,
    /// Cancelled when shutdown begins: runners start no new deploy (queued ones stay queued).
    closing: CancellationToken,
}

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
                slots: Semaphore::new(max_concurrent.max(1)),
                tracker,
                closing,
            }),
        }
    }

    /// Makes sure `app` has a runner if anything of it is waiting. Call after committing a deploy.
    pub fn kick(&self, app: &str) {
        let mut active = self.inner.active.lock().expect("scheduler lock");
        if active.insert(app.to_owned()) {
            let this = self.clone();
            let app = app.to_owned();
            self.inner.tracker.spawn(async move { this.runner(app).await });
        }
    }

    /// Starts runners for every target with waiting deploys (at boot): queued ones, including those that
    /// reconciliation queued again, and accepted ones that had not started when the last slipd stopped.
    pub fn kick_all(&self) {
        match self.inner.engine.store.unfinished() {
            Ok(deploys) => deploys
                .iter()
                .filter(|d| d.preview_id.is_none())
                .filter(|d| matches!(d.status, DeployStatus::Queued | DeployStatus::Accepted))
                .for_each(|d| self.kick(d.app.as_str())),
            Err(e) => tracing::error!(error = %e, "listing waiting deploys"),
        }
    }

    /// Cancels `app`'s running deploy (before its switch it unwinds and ends `cancelled`; after it, it finishes)
    /// and waits up to `bound` for the app's runner to end. Queued deploys must already be gone, or the runner
    /// takes the next one. Answers whether the runner ended in time.
    pub async fn cancel_and_wait(&self, app: &str, bound: Duration) -> bool {
        if let Some(token) = self.inner.running.lock().expect("scheduler lock").get(app) {
            token.cancel();
        }
        let deadline = tokio::time::Instant::now() + bound;
        loop {
            if !self.inner.active.lock().expect("scheduler lock").contains(app) {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The next deploy of `app`: one already holding the slot (`accepted`), else the queued one, which is
    /// promoted to `accepted` in the same transaction.
    fn next(&self, app: &AppName) -> Result<Option<DeployRow>, slip_engine::store::StoreError> {
        let store = &self.inner.engine.store;
        let accepted = store
            .unfinished()?
            .into_iter()
            .filter(|d| d.app == *app && d.preview_id.is_none() && d.status == DeployStatus::Accepted)
            .min_by(|a, b| a.id.cmp(&b.id));
        match accepted {
            Some(row) => Ok(Some(row)),
            None => store.promote_queued(app, None, unix_ms()),
        }
    }

    async fn runner(self, app: String) {
        let Ok(name) = app.parse::<AppName>() else {
            self.inner.active.lock().expect("scheduler lock").remove(&app);
            return;
        };
        loop {
            if self.inner.closing.is_cancelled() {
                // Checked before `next`, which would promote a queued deploy: queued deploys stay queued and
                // the next slipd runs them.
                self.inner.active.lock().expect("scheduler lock").remove(&app);
                return;
            }
            let next = {
                let mut active = self.inner.active.lock().expect("scheduler lock");
                match self.next(&name) {
                    Ok(Some(row)) => row,
                    Ok(None) => {
                        active.remove(&app);
                        return;
                    }
                    Err(e) => {
                        tracing::error!(app, error = %e, "reading the deploy queue");
                        active.remove(&app);
                        return;
                    }
                }
            };
            if self.inner.closing.is_cancelled() {
                // Queued deploys stay queued; the next slipd runs them.
                self.inner.active.lock().expect("scheduler lock").remove(&app);
                return;
            }
            let permit = tokio::select! {
                permit = self.inner.slots.acquire() => permit.expect("semaphore never closed"),
                _ = self.inner.closing.cancelled() => {
                    self.inner.active.lock().expect("scheduler lock").remove(&app);
                    return;
                }
            };
            self.run_one(next).await;
            drop(permit);
        }
    }

    async fn run_one(&self, row: DeployRow) {
        let store = &self.inner.engine.store;
        if let Some(expired) = self.inner.resolver.expired(&row) {
            let _ = store.finish(&row.id, DeployStatus::Failed, Some(&expired), Some("expired"), unix_ms());
            return;
        }
        match self.inner.resolver.resolve(&row) {
            Ok(release) => {
                let app = row.app.to_string();
                self.inner.running.lock().expect("scheduler lock").insert(app.clone(), release.cancel.clone());
                let outcome = run_deploy(&self.inner.engine, release).await;
                self.inner.running.lock().expect("scheduler lock").remove(&app);
                if let Outcome::Completed { .. } = outcome {
                    tracing::debug!(deploy_id = %row.id, "completed");
                    // SPEC §7.3 `completed`, §12: keep the last releases' images, prune the rest.
                    slip_engine::images::prune_app(&self.inner.engine, &row.app).await;
                }
            }
            Err(failure) => {
                let code = failure.code;
                tracing::warn!(deploy_id = %row.id, error = %failure.message, "deploy could not start");
                let _ = store.finish(
                    &row.id,
                    DeployStatus::Failed,
                    Some(&failure.message),
                    Some(code_str(code)),
                    unix_ms(),
                );
            }
        }
    }
}

fn code_str(code: ErrorCode) -> &'static str {
    code.as_str()
}
