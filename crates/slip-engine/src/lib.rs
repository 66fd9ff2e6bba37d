//! slip's imperative shell: the only crate that talks to the outside world.
//!
//! # Layout
//! - [`ports`]: the traits the deploy driver needs (`InstanceRuntime`, `ImageStore`, `LogSource`, `Proxy`,
//!   `HealthProbe`) and their data.
//! - [`runtime`]: `runtime::connect`, which picks the runtime adapter and hands it out by seam.
//! - [`labels`]: the labels that carry slip's identity on instances, written and read in one place.
//! - [`docker`]: the instance runtime, image store and log source over the Docker-compatible API (Docker or
//!   Podman), through bollard.
//! - [`caddy`]: `Proxy` over Caddy's admin API: bootstrap, route rendering, switching, drain counts.
//! - [`probe`]: `HealthProbe` over HTTP to the leased loopback port.
//! - [`store`]: SQLite: deploys, events, instances, port leases, deliveries.
//! - [`config_source`]: reads `slip.toml`, `apps/*.toml` and `slip.env` from disk for `slip_core::config`.
//! - [`secrets`]: the per-app secret store (`<storage>/secrets/<app>/<KEY>`), created 0700/0600, atomic writes.
//! - [`redact`]: value-based redaction of secrets in anything slip records or relays.
//! - [`run`]: `run_deploy`, the driver that turns `slip_core::deploy` actions into IO, with the [`engine`] it
//!   runs on and the [`release`] it puts in place; [`plan`] decides each candidate's spec, purely; [`clock`].
//! - [`reconcile`]: boot-time and periodic repair of interrupted deploys, orphans, stopped instances and routes.
//! - [`images`]: obtaining images (no pull for a retained digest), the disk preflight, retention and pruning.
//! - [`fault`]: test-only fault injection (`SLIP_FAULT_INJECTION`), off unless explicitly armed.
//! - `testing` (feature `testing`): fakes that honour the same contracts as the real adapters.

pub mod caddy;
pub mod clock;
pub mod config_source;
pub mod diagnostics;
pub mod docker;
pub mod engine;
pub mod fault;
pub mod image_policy;
pub mod images;
pub mod labels;
pub mod plan;
pub mod pod;
pub mod podman;
pub mod ports;
pub mod preview;
pub mod probe;
pub mod reconcile;
pub mod redact;
pub mod release;
pub mod repo_config;
pub mod routes;
pub mod run;
pub mod runtime;
pub mod secrets;
pub mod store;
pub mod telemetry;

#[cfg(any(test, feature = "testing"))]
pub mod testing;
