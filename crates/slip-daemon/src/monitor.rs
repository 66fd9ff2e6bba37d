//! The background monitor: health of Caddy and the engine (for status and metrics, so requests never call
//! out), and the periodic reconcile: current instances' host ports re-read from the engine (routes follow a
//! port the engine re-assigned, e.g. after a Docker restart), then slip's routes re-asserted in Caddy when
//! Caddy lost or changed them. Healing stopped and vanished current releases is `crate::heal`.

use std::time::Duration;

use slip_engine::ports::Applied;
use slip_engine::run::Engine;
use tokio_util::sync::CancellationToken;

use crate::events::Bus;
use crate::health::Health;

/// Every `interval`: ping the engine, move routes to re-assigned host ports, and make Caddy match the route
/// table (bootstrapping slip's server when Caddy restarted without `--resume`). Ends when `shutdown` is
/// cancelled.
pub async fn run(engine: Engine, health: Health, events: Bus, interval: Duration, shutdown: CancellationToken) {
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
                crate::metrics::caddy_reconciled("drift");
                events.announce(
                    "caddy.reconciled",
                    None,
                    "Caddy's routes differed from slip's and were re-asserted".into(),
                    None,
                );
                health.set_caddy(Ok(()));
                tracing::info!(result = "drift", "caddy reconciled");
            }
            Ok(Applied::Unchanged) => {
                crate::metrics::caddy_reconciled("ok");
                health.set_caddy(Ok(()))
            }
            Err(e) => {
                crate::metrics::caddy_reconciled("error");
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
