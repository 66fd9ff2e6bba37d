//! Last known health of Caddy and the engine, written by the monitor and read by `/healthz`, status and metrics.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

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
