//! Last known health of Caddy and the engine, written by the monitor and read by `/healthz`, status and metrics.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Last known health of the outside world.
#[derive(Clone, Default)]
pub struct Health {
    caddy: Arc<AtomicBool>,
    runtime: Arc<AtomicBool>,
}

/// A copy of [`Health`] at one moment.
#[derive(Debug, Clone, Copy)]
pub struct HealthSnapshot {
    /// Caddy's admin API answered the last reconcile.
    pub caddy: bool,
    /// The engine answered the last ping.
    pub runtime: bool,
}

impl Health {
    /// The current values.
    pub fn snapshot(&self) -> HealthSnapshot {
        HealthSnapshot { caddy: self.caddy.load(Ordering::Relaxed), runtime: self.runtime.load(Ordering::Relaxed) }
    }

    /// Records Caddy's health.
    pub fn set_caddy(&self, ok: bool) {
        self.caddy.store(ok, Ordering::Relaxed);
    }

    /// Records the engine's health.
    pub fn set_runtime(&self, ok: bool) {
        self.runtime.store(ok, Ordering::Relaxed);
    }
}
