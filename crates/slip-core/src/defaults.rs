//! Named defaults for every server-config key that has one (SPEC §3.2, §4.2), in one place so the config
//! parser, `--check`, the docs and the deploy machine agree.
//!
//! Only constants live here: which default applies when (the Caddy listeners in `off` mode, `volume_roots`
//! below `storage.path`, the preview TLS choice) is decided in [`crate::config`].

use std::time::Duration;

const fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;

/// Where `slipd` and `slip` look for the server config (`--config`, env `SLIP_CONFIG`).
pub const CONFIG_PATH: &str = "/etc/slip";

/// `server.listen`: loopback only, so tokens never cross the network in clear text by default.
pub const LISTEN: &str = "127.0.0.1:7890";
/// `server.public_api`.
pub const PUBLIC_API: &str = "ci";
/// `server.trusted_proxies`.
pub const TRUSTED_PROXIES: [&str; 2] = ["127.0.0.1/32", "::1/128"];
/// `server.shutdown_timeout`.
pub const SHUTDOWN_TIMEOUT: Duration = secs(60);

/// `runtime.backend`.
pub const BACKEND: &str = "auto";
/// `runtime.port_range`: below the kernel's default ephemeral range (32768-60999).
pub const PORT_RANGE: (u16, u16) = (20000, 29999);
/// `runtime.min_free_disk`.
pub const MIN_FREE_DISK: u64 = 2 * GIB;
/// `runtime.max_concurrent_deploys`.
pub const MAX_CONCURRENT_DEPLOYS: u32 = 4;
/// `runtime.log_max_size`.
pub const LOG_MAX_SIZE: u64 = 10 * MIB;
/// `runtime.log_max_files`.
pub const LOG_MAX_FILES: u32 = 3;

/// `auth.max_skew`.
pub const MAX_SKEW: Duration = secs(5 * 60);
/// `auth.max_failures`.
pub const MAX_FAILURES: u32 = 20;
/// `auth.failure_window`.
pub const FAILURE_WINDOW: Duration = secs(10 * 60);
/// Keys and tokens shorter than this get a `--check` warning (`slip gen-secret` makes 64 hex characters).
pub const MIN_KEY_LENGTH: usize = 32;

/// `registry.ghcr_username`.
pub const GHCR_USERNAME: &str = "slip";

/// `caddy.admin_api`.
pub const CADDY_ADMIN_API: &str = "http://localhost:2019";
/// `caddy.server`.
pub const CADDY_SERVER: &str = "slip";
/// `caddy.listen` in `acme` and `internal` modes.
pub const CADDY_LISTEN: [&str; 2] = [":443", ":80"];
/// `caddy.listen` in `off` mode.
pub const CADDY_LISTEN_OFF: [&str; 1] = [":80"];
/// `caddy.tls.propagation_delay`.
pub const PROPAGATION_DELAY: Duration = secs(2 * 60);
/// `caddy.reconcile_interval`.
pub const RECONCILE_INTERVAL: Duration = secs(10);

/// `storage.path`.
pub const STORAGE_PATH: &str = "/var/lib/slip";
/// `storage.volume_roots` is this directory below `storage.path`.
pub const VOLUMES_DIR: &str = "volumes";
/// `storage.history_retention`.
pub const HISTORY_RETENTION: Duration = secs(180 * 86_400);

/// `preview.max_per_app`.
pub const PREVIEW_MAX_PER_APP: u32 = 10;
/// `preview.max_total`.
pub const PREVIEW_MAX_TOTAL: u32 = 30;
/// `preview.default_ttl`.
pub const PREVIEW_DEFAULT_TTL: Duration = secs(7 * 86_400);
/// `preview.max_ttl`.
pub const PREVIEW_MAX_TTL: Duration = secs(30 * 86_400);
/// Repo `preview.hooks.timeout`.
pub const PREVIEW_HOOK_TIMEOUT: Duration = secs(5 * 60);

/// `log.level`.
pub const LOG_LEVEL: &str = "info";
/// `log.format`.
pub const LOG_FORMAT: &str = "json";

/// `routing.hold_timeout`.
pub const HOLD_TIMEOUT: Duration = secs(30);
/// `[[routing.routes]].path_prefix`.
pub const PATH_PREFIX: &str = "/";
/// `routing.container` for pods when neither server nor repo names one.
pub const ROUTE_CONTAINER: &str = "web";

/// `health.interval`.
pub const HEALTH_INTERVAL: Duration = secs(2);
/// `health.timeout`.
pub const HEALTH_TIMEOUT: Duration = secs(5);
/// `health.retries`.
pub const HEALTH_RETRIES: u32 = 5;
/// `health.start_period`.
pub const HEALTH_START_PERIOD: Duration = secs(10);
/// `health.stable_for`.
pub const HEALTH_STABLE_FOR: Duration = secs(5);

/// `deploy.drain_timeout`.
pub const DRAIN_TIMEOUT: Duration = secs(30);
/// `deploy.stop_grace`.
pub const STOP_GRACE: Duration = secs(10);
/// `deploy.timeout`.
pub const DEPLOY_TIMEOUT: Duration = secs(10 * 60);
/// `deploy.watch`: off.
pub const WATCH: Duration = secs(0);
/// `deploy.keep_images`.
pub const KEEP_IMAGES: u32 = 3;
/// `deploy.queue_ttl`.
pub const QUEUE_TTL: Duration = secs(60 * 60);

/// `network.name`.
pub const NETWORK: &str = "slip";
/// The smallest `resources.memory` (and `preview.max_memory`) the engines accept.
pub const MIN_MEMORY: u64 = 6 * MIB;
