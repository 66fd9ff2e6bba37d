//! slip's imperative shell: the only crate that talks to the outside world.
//!
//! # Layout
//! - [`ports`]: the traits the deploy driver needs (`ContainerRuntime`, `Proxy`, `HealthProbe`) and their data.
//! - [`docker`]: `ContainerRuntime` over the Docker-compatible API (Docker or Podman), through bollard.
//! - [`caddy`]: `Proxy` over Caddy's admin API: bootstrap, route rendering, switching, drain counts.
//! - [`probe`]: `HealthProbe` over HTTP to the leased loopback port.
//! - [`store`]: SQLite: deploys, events, instances, port leases, deliveries.
//! - [`config_source`]: reads `slip.toml`, `apps/*.toml` and `slip.env` from disk for `slip_core::config`.
//! - [`secrets`]: the per-app secret store (`<storage>/secrets/<app>/<KEY>`), created 0700/0600, atomic writes.
//! - [`redact`]: value-based redaction of secrets in anything slip records or relays.
//! - [`run`]: `run_deploy`, the driver that turns `slip_core::deploy` actions into IO.
//! - [`reconcile`]: boot-time and periodic repair of interrupted deploys, orphans, stopped instances and routes.
//! - [`images`]: obtaining images (no pull for a retained digest), the disk preflight, retention and pruning.
//! - [`fault`]: test-only fault injection (`SLIP_FAULT_INJECTION`), off unless explicitly armed.
//! - `testing` (feature `testing`): fakes that honour the same contracts as the real adapters.

pub mod caddy;
pub mod clock;
pub mod config_source;
pub mod docker;
pub mod engine;
pub mod fault;
pub mod images;
pub mod ports;
pub mod probe;
pub mod reconcile;
pub mod redact;
pub mod routes;
pub mod run;
pub mod secrets;
pub mod store;

#[cfg(any(test, feature = "testing"))]
pub mod testing;
