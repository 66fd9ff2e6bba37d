//! `[health]` and `[health.containers.<name>]`: probe settings as written, and with defaults applied.
//! The repo config (SPEC §5) reads its `[health]` with the same functions.

use std::collections::BTreeMap;
use std::time::Duration;

use super::containers::container_name;
use super::routing::check_prefix;
use crate::config::reader::{Keys, Reader, Tbl};
use crate::config::server::hostname;
use crate::defaults;
use crate::names::is_dns_label;

const HEALTH_FIELDS: &[&str] =
    &["path", "port", "host", "interval", "timeout", "retries", "start_period", "stable_for"];
/// The `[health]` fields the repo config may set too: all but `host`, which depends on the server's routes.
pub(crate) const REPO_HEALTH_FIELDS: &[&str] =
    &["path", "port", "interval", "timeout", "retries", "start_period", "stable_for"];
pub(super) const HEALTH: &[&str] = &[
    "path",
    "port",
    "host",
    "interval",
    "timeout",
    "retries",
    "start_period",
    "stable_for",
    "container",
    "containers",
];

/// `[health]` (or one `[health.containers.<name>]`) exactly as written: `None` means "not in the server
/// file", so the deploy layer can fall back to the repo config and then to the built-in defaults.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Health {
    /// HTTP probe path (starts with `/`).
    pub path: Option<String>,
    /// Container port to probe.
    pub port: Option<u16>,
    /// `Host` header for probes.
    pub host: Option<String>,
    /// Pause after each probe.
    pub interval: Option<Duration>,
    /// Per-probe timeout.
    pub timeout: Option<Duration>,
    /// Consecutive failures after `start_period` that make the candidate unhealthy.
    pub retries: Option<u32>,
    /// Grace period.
    pub start_period: Option<Duration>,
    /// Running time needed when there is no path.
    pub stable_for: Option<Duration>,
    /// The pod container the top-level `[health]` applies to (top level only).
    pub container: Option<String>,
}

/// Health settings with every default applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedHealth {
    /// HTTP probe path; `None` means "running and stable".
    pub path: Option<String>,
    /// Container port to probe.
    pub port: Option<u16>,
    /// `Host` header for probes.
    pub host: Option<String>,
    /// Pause after each probe.
    pub interval: Duration,
    /// Per-probe timeout.
    pub timeout: Duration,
    /// Consecutive failures that make the candidate unhealthy.
    pub retries: u32,
    /// Grace period.
    pub start_period: Duration,
    /// Running time needed when there is no path.
    pub stable_for: Duration,
}

impl Health {
    /// Field by field: this value where set, else `fallback`'s (server over repo, SPEC §5).
    pub fn or(&self, fallback: &Health) -> Health {
        Health {
            path: self.path.clone().or_else(|| fallback.path.clone()),
            port: self.port.or(fallback.port),
            host: self.host.clone().or_else(|| fallback.host.clone()),
            interval: self.interval.or(fallback.interval),
            timeout: self.timeout.or(fallback.timeout),
            retries: self.retries.or(fallback.retries),
            start_period: self.start_period.or(fallback.start_period),
            stable_for: self.stable_for.or(fallback.stable_for),
            container: self.container.clone().or_else(|| fallback.container.clone()),
        }
    }

    /// Applies the built-in defaults to whatever is unset.
    pub fn resolve(&self) -> ResolvedHealth {
        ResolvedHealth {
            path: self.path.clone(),
            port: self.port,
            host: self.host.clone(),
            interval: self.interval.unwrap_or(defaults::HEALTH_INTERVAL),
            timeout: self.timeout.unwrap_or(defaults::HEALTH_TIMEOUT),
            retries: self.retries.unwrap_or(defaults::HEALTH_RETRIES),
            start_period: self.start_period.unwrap_or(defaults::HEALTH_START_PERIOD),
            stable_for: self.stable_for.unwrap_or(defaults::HEALTH_STABLE_FOR),
        }
    }
}

/// Which file a `[health]` table is in: the server's app file, or the repo config (no `host`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    /// `apps/<name>.toml`.
    Server,
    /// `/slip/slip.toml` in the image.
    Repo,
}

/// `[health]` and its `[health.containers.<name>]` tables; the caller has checked the top-level keys.
pub(crate) fn health_table(r: &mut Reader<'_>, t: Option<&Tbl<'_>>, side: Side) -> (Health, BTreeMap<String, Health>) {
    let Some(t) = t else { return (Health::default(), BTreeMap::new()) };
    let fields = match side {
        Side::Server => HEALTH_FIELDS,
        Side::Repo => REPO_HEALTH_FIELDS,
    };
    let mut health = health_fields(r, t, side);
    health.container = container_name(r, t, "container");
    let mut per_container = BTreeMap::new();
    if let Some(containers) = r.any_table(t, "containers") {
        for (name, at, item) in r.entries(&containers) {
            if !is_dns_label(&name) {
                r.problem(
                    at,
                    format!("health.containers: {name:?} is not a container name"),
                    Some("container names are DNS labels: lowercase letters, digits and '-'".into()),
                );
                continue;
            }
            if let Some(sub) = r.entry_table(&containers, &name, item, Keys::of(fields)) {
                per_container.insert(name, health_fields(r, &sub, side));
            }
        }
    }
    (health, per_container)
}

fn health_fields(r: &mut Reader<'_>, t: &Tbl<'_>, side: Side) -> Health {
    Health {
        path: r.string(t, "path").and_then(|v| match check_prefix(&v.v).or_else(|_| check_probe_path(&v.v)) {
            Ok(()) => Some(v.v),
            Err(why) => {
                r.invalid(&v, why, None);
                None
            }
        }),
        port: r.int_in::<u16>(t, "port", 1, 65535).map(|v| v.v),
        host: match side {
            Side::Server => hostname(r, t, "host", false).map(|v| v.v),
            Side::Repo => None,
        },
        interval: r.positive_duration(t, "interval").map(|v| v.v),
        timeout: r.positive_duration(t, "timeout").map(|v| v.v),
        retries: r.int_in(t, "retries", 1, 1000).map(|v| v.v),
        start_period: r.duration(t, "start_period").map(|v| v.v),
        stable_for: r.duration(t, "stable_for").map(|v| v.v),
        container: None,
    }
}

/// A probe path: starts with `/` and may carry a query (`/health?full=1`).
fn check_probe_path(s: &str) -> Result<(), &'static str> {
    if !s.starts_with('/') {
        return Err("must start with /");
    }
    if s.contains(|c: char| c.is_whitespace() || c.is_control() || c == '#') {
        return Err("must be a plain path (no spaces or #)");
    }
    Ok(())
}
