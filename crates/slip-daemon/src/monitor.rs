//! Background loops: health of Caddy and the engine (for status and metrics, so requests never call
//! out), and the periodic reconcile: current instances' host ports re-read from the engine (routes follow a
//! port the engine re-assigned, e.g. after a Docker restart), then slip's routes re-asserted in Caddy when
//! Caddy lost or changed them; and, in [`heal`], current releases found stopped started again and vanished ones
//! re-created.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use slip_engine::ports::Applied;
use slip_engine::run::Engine;
use tokio_util::sync::CancellationToken;

/// Last known health of the outside world.
#[derive(Clone, Default)]
pub struct Health {
    caddy: Arc<AtomicBool>,
    caddy_error: Arc<Mutex<Option<String>>>,
    runtime: Arc<AtomicBool>,
}

/// A copy of [`Health`] at one moment.
#[derive(Debug, Clone)]
pub struct HealthSnapshot {
    /// Caddy's admin API answered the last reconcile.
    pub caddy: bool,
    /// Why the last reconcile failed (unreachable, or a change Caddy refused), while it fails.
    pub caddy_error: Option<String>,
    /// The engine answered the last ping.
    pub runtime: bool,
}

impl Health {
    /// The current values.
    pub fn snapshot(&self) -> HealthSnapshot {
        HealthSnapshot {
            caddy: self.caddy.load(Ordering::Relaxed),
            caddy_error: self.caddy_error.lock().expect("health lock").clone(),
            runtime: self.runtime.load(Ordering::Relaxed),
        }
    }

    /// Records Caddy's health: `Ok` or why it failed.
    pub fn set_caddy(&self, result: Result<(), String>) {
        let ok = result.is_ok();
        *self.caddy_error.lock().expect("health lock") = result.err();
        self.caddy.store(ok, Ordering::Relaxed);
    }

    /// Records the engine's health.
    pub fn set_runtime(&self, ok: bool) {
        self.runtime.store(ok, Ordering::Relaxed);
    }
}

/// Every `interval`: ping the engine, move routes to re-assigned host ports, and make Caddy match the route
/// table (bootstrapping slip's server when Caddy restarted without `--resume`). Ends when `shutdown` is
/// cancelled.
pub async fn run(engine: Engine, health: Health, interval: Duration, shutdown: CancellationToken) {
    loop {
        let runtime_up = engine.instances.ping().await.is_ok();
        health.set_runtime(runtime_up);
        if runtime_up {
            match slip_engine::reconcile::refresh_ports(&engine).await {
                Ok(changes) if !changes.is_empty() => tracing::info!(?changes, "host ports re-read"),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "re-reading host ports"),
            }
        }
        match engine.routes.sync().await {
            Ok(Applied::Written) => {
                health.set_caddy(Ok(()));
                tracing::info!(result = "drift", "caddy reconciled");
            }
            Ok(Applied::Unchanged) => health.set_caddy(Ok(())),
            Err(e) => {
                let reason = e.to_string();
                if health.snapshot().caddy_error.as_ref() != Some(&reason) {
                    tracing::warn!(error = %reason, "caddy unreachable or refused slip's routes");
                }
                health.set_caddy(Err(reason));
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = shutdown.cancelled() => return,
        }
    }
}

/// Every `interval` while the engine answers: current releases of apps with no deploy in flight that were found
/// stopped are started again, and those whose container is gone (or cannot be started) are re-created through a
/// `reconcile` deploy of the same digest ([`slip_engine::reconcile::heal`]). Each instance is restarted at most
/// once and reported at most once per run of slipd, so a container someone keeps stopping, or a re-creation that
/// fails, is not retried in a loop.
/// Ends when `shutdown` is cancelled.
pub async fn heal(state: crate::state::AppState, interval: Duration, shutdown: CancellationToken) {
    let mut memory = slip_engine::reconcile::HealMemory::default();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = shutdown.cancelled() => return,
        }
        if !state.health.snapshot().runtime {
            continue;
        }
        let deleting = |app: &str| state.scheduler.is_deleting(app);
        match slip_engine::reconcile::heal(&state.engine, &mut memory, &deleting).await {
            Ok(healed) => {
                let apps: Vec<String> = healed.missing.iter().map(|(app, _)| app.clone()).collect();
                if !apps.is_empty() {
                    crate::boot::recreate_missing(&state, &apps);
                }
            }
            Err(e) => tracing::warn!(error = %e, "checking current releases"),
        }
    }
}
