//! `slip.toml` (SPEC §3.2): the daemon's validated settings and stage two of reading them.
//!
//! Every section is optional and an empty section is the same as a missing one: each reader fills in the
//! named defaults from [`crate::defaults`] for whatever is absent. Values that are present are checked
//! strictly; a bad value is reported and replaced by its default so that reading can go on and every
//! problem in the file is found in one pass. Rules that involve app files live in `app` and `rules`.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use super::reader::{At, Keys, Reader, Tbl, Val};
use super::secret::Secret;
use super::vocabulary;
use crate::defaults;

// `[caddy]` and `[preview]` have their own modules; `values` holds the value rules other files share.
mod caddy;
mod preview;
mod values;

use caddy::caddy;
pub use caddy::{Caddy, ProviderValue, Tls, TlsMode};
use preview::preview;
pub use preview::{Preview, PreviewTls};
use values::is_registry_host;
pub(crate) use values::{absolute_path, check_absolute, hostname, memory};

vocabulary! {
    /// `server.public_api`: what the `public_domain` route exposes.
    PublicApi {
        /// `POST /v1/deploy`, `/v1/deploys/*`, rollback, previews and `/healthz`.
        Ci = "ci",
        /// Every endpoint.
        All = "all",
    }
}

vocabulary! {
    /// `runtime.backend`.
    Backend {
        /// The first Podman socket that answers, else Docker.
        Auto = "auto",
        /// Docker Engine.
        Docker = "docker",
        /// Podman (needed for pods).
        Podman = "podman",
    }
}

vocabulary! {
    /// `log.format`.
    LogFormat {
        /// JSON lines.
        Json = "json",
        /// Human-readable text.
        Text = "text",
    }
}

/// `server.listen`: an IP address and port, or `localhost:port`. `Display` gives a string that
/// `TcpListener::bind` accepts (`127.0.0.1:7890`, `[::1]:7890`, `localhost:7890`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listen {
    /// A literal address.
    Addr(SocketAddr),
    /// `localhost:<port>`: every loopback address the name resolves to.
    Localhost(u16),
}

impl Listen {
    /// The port.
    pub fn port(&self) -> u16 {
        match self {
            Listen::Addr(a) => a.port(),
            Listen::Localhost(p) => *p,
        }
    }

    /// True when only this host can connect (tokens then never cross the network).
    pub fn is_loopback(&self) -> bool {
        match self {
            Listen::Addr(a) => a.ip().is_loopback(),
            Listen::Localhost(_) => true,
        }
    }

    /// The address Caddy should dial to reach slipd: `0.0.0.0`/`::` become loopback.
    pub fn dial(&self) -> String {
        match self {
            Listen::Addr(a) if a.ip().is_unspecified() => match a.ip() {
                IpAddr::V4(_) => format!("127.0.0.1:{}", a.port()),
                IpAddr::V6(_) => format!("[::1]:{}", a.port()),
            },
            other => other.to_string(),
        }
    }
}

impl fmt::Display for Listen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Listen::Addr(a) => write!(f, "{a}"),
            Listen::Localhost(p) => write!(f, "localhost:{p}"),
        }
    }
}

impl FromStr for Listen {
    type Err = &'static str;
    fn from_str(s: &str) -> Result<Listen, &'static str> {
        const RULE: &str = "is not IP:port or localhost:port, e.g. 127.0.0.1:7890 or [::1]:7890";
        let listen = match s.strip_prefix("localhost:") {
            Some(port) => Listen::Localhost(port.parse().map_err(|_| RULE)?),
            None => Listen::Addr(s.parse().map_err(|_| RULE)?),
        };
        if listen.port() == 0 {
            return Err("has port 0: give the port slipd should listen on, e.g. 127.0.0.1:7890");
        }
        Ok(listen)
    }
}

/// `[server]`.
#[derive(Debug, Clone)]
pub struct Server {
    /// The plain-HTTP API listener.
    pub listen: Listen,
    /// The HTTPS name Caddy routes to slipd itself (lower case), when set.
    pub public_domain: Option<String>,
    /// What the public route exposes.
    pub public_api: PublicApi,
    /// Peers whose `X-Forwarded-For` is believed (bare addresses become /32 or /128).
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// The longest shutdown waits for running deploys.
    pub shutdown_timeout: Duration,
}

/// `[runtime]`.
#[derive(Debug, Clone)]
pub struct Runtime {
    /// Which engine to use.
    pub backend: Backend,
    /// Explicit engine socket, as written (`unix:///path` or an absolute path).
    pub socket: Option<String>,
    /// Host ports slip leases to instances (bound to 127.0.0.1 only).
    pub port_range: RangeInclusive<u16>,
    /// Free bytes needed on the image store before a pull.
    pub min_free_disk: u64,
    /// Deploys of different apps running at once (≥ 1).
    pub max_concurrent_deploys: u32,
    /// Container log file size in bytes before rotation (> 0).
    pub log_max_size: u64,
    /// Container log files kept (≥ 1).
    pub log_max_files: u32,
}

/// `[auth]`. Empty strings count as unset.
#[derive(Debug, Clone)]
pub struct Auth {
    /// Global app key; also the admin token while `admin_token` is unset.
    pub secret: Option<Secret>,
    /// Bearer token for the management API.
    pub admin_token: Option<Secret>,
    /// Extra bearer token accepted on `/metrics` only.
    pub metrics_token: Option<Secret>,
    /// Reject signed requests without `X-Slip-Timestamp`.
    pub require_timestamp: bool,
    /// Accepted clock skew for `X-Slip-Timestamp`.
    pub max_skew: Duration,
    /// Failed authentications per client IP per window before 429 (≥ 1).
    pub max_failures: u32,
    /// The failure window.
    pub failure_window: Duration,
    /// Unauthenticated `GET /v1/status` includes the `apps` map.
    pub public_status: bool,
    /// `/metrics` is served without a token.
    pub public_metrics: bool,
}

impl Auth {
    /// The admin token in force: `admin_token`, else `secret` (SPEC §6.2).
    pub fn effective_admin_token(&self) -> Option<&Secret> {
        self.admin_token.as_ref().or(self.secret.as_ref())
    }
}

/// `[registry]`.
#[derive(Debug, Clone)]
pub struct Registry {
    /// Token sent only to `ghcr.io`.
    pub ghcr_token: Option<Secret>,
    /// Username paired with `ghcr_token`.
    pub ghcr_username: String,
    /// Credentials per exact host; hosts are unique and lower case.
    pub auth: Vec<RegistryAuth>,
}

/// One `[[registry.auth]]`.
#[derive(Debug, Clone)]
pub struct RegistryAuth {
    /// `host[:port]`, lower case.
    pub host: String,
    /// Username.
    pub username: String,
    /// Password or token.
    pub password: Secret,
}

impl Registry {
    /// Credentials for exactly `host` (SPEC §12): a `[[registry.auth]]` entry for that host, else
    /// `ghcr_token` when the host is `ghcr.io`, else none (anonymous pull). An empty host means `docker.io`.
    pub fn credentials_for(&self, host: &str) -> Option<(&str, &Secret)> {
        let host = if host.is_empty() { "docker.io" } else { host };
        if let Some(a) = self.auth.iter().find(|a| a.host.eq_ignore_ascii_case(host)) {
            return Some((&a.username, &a.password));
        }
        match &self.ghcr_token {
            Some(token) if host.eq_ignore_ascii_case("ghcr.io") => Some((&self.ghcr_username, token)),
            _ => None,
        }
    }
}

/// `[storage]`.
#[derive(Debug, Clone)]
pub struct Storage {
    /// The state root (absolute).
    pub path: PathBuf,
    /// Directories every `[[volumes]].host_path` must lie under (absolute, no `..`).
    pub volume_roots: Vec<PathBuf>,
    /// Deploys and events older than this are deleted (except those behind retained releases).
    pub history_retention: Duration,
}

/// `[secrets]`.
#[derive(Debug, Clone, Default)]
pub struct Secrets {
    /// Master key file; when set, secret values are encrypted at rest.
    pub key_file: Option<PathBuf>,
}

/// `[log]`.
#[derive(Debug, Clone)]
pub struct Log {
    /// A level (`info`) or comma-separated `target=level` directives; `RUST_LOG` overrides it.
    pub level: String,
    /// Output format.
    pub format: LogFormat,
}

/// Everything `slip.toml` holds, plus where some values were written (for rules involving app files).
pub(crate) struct Daemon {
    pub(crate) server: Server,
    pub(crate) runtime: Runtime,
    pub(crate) auth: Auth,
    pub(crate) registry: Registry,
    pub(crate) caddy: Caddy,
    pub(crate) storage: Storage,
    pub(crate) secrets: Secrets,
    pub(crate) preview: Preview,
    pub(crate) log: Log,
    pub(crate) notifications: Vec<super::notify::Notification>,
    /// The file as shown in messages.
    pub(crate) file: PathBuf,
    /// Where values were written, by dotted key (`runtime.backend`), for rules that involve app files.
    pub(crate) locs: std::collections::BTreeMap<String, At>,
    /// False when `slip.toml` is not valid TOML: its defaults then stand in, and rules that compare app
    /// files with it are skipped rather than reported against values nobody wrote.
    pub(crate) parsed: bool,
}

impl Daemon {
    /// `file:line` of a key written in `slip.toml`, or just the file when it was not written.
    pub(crate) fn cite(&self, key: &str) -> String {
        match self.locs.get(key) {
            Some((Some(line), _)) => format!("{}:{line}", self.file.display()),
            _ => self.file.display().to_string(),
        }
    }
}

const ROOT: &[&str] =
    &["server", "runtime", "auth", "registry", "caddy", "storage", "secrets", "preview", "log", "notifications"];

/// Reads `slip.toml`. Never fails: problems go to the reader and defaults fill the gaps.
pub(crate) fn read(r: &mut Reader<'_>) -> Daemon {
    let doc = r.parse();
    let apps_hint = |k: &str| {
        (k == "apps" || k == "app").then(|| "each app is its own file: apps/<name>.toml with an [app] table".to_owned())
    };
    let root = doc.as_ref().map(|d| r.root(d, Keys { valid: ROOT, hint: &apps_hint }));
    let sub =
        |r: &mut Reader<'_>, name: &str, keys: &[&str]| root.as_ref().and_then(|t| r.table(t, name, Keys::of(keys)));

    let t = sub(r, "server", &["listen", "public_domain", "public_api", "trusted_proxies", "shutdown_timeout"]);
    let server = server(r, t.as_ref());
    let t = sub(
        r,
        "runtime",
        &[
            "backend",
            "socket",
            "port_range",
            "min_free_disk",
            "max_concurrent_deploys",
            "log_max_size",
            "log_max_files",
        ],
    );
    let runtime = runtime(r, t.as_ref());
    let t = sub(
        r,
        "auth",
        &[
            "secret",
            "admin_token",
            "metrics_token",
            "require_timestamp",
            "max_skew",
            "max_failures",
            "failure_window",
            "public_status",
            "public_metrics",
        ],
    );
    let auth = auth(r, t.as_ref());
    let t = sub(r, "registry", &["ghcr_token", "ghcr_username", "auth"]);
    let registry = registry(r, t.as_ref());
    let t = sub(r, "caddy", &["admin_api", "server", "listen", "tls", "stream_close_delay", "reconcile_interval"]);
    let caddy = caddy(r, t.as_ref());
    let t = sub(r, "storage", &["path", "volume_roots", "history_retention"]);
    let storage = storage(r, t.as_ref());
    let t = sub(r, "secrets", &["key_file"]);
    let secrets = Secrets { key_file: t.as_ref().and_then(|t| absolute_path(r, t, "key_file")).map(|v| v.v) };
    let t = sub(
        r,
        "preview",
        &["domain", "max_per_app", "max_total", "default_ttl", "max_ttl", "max_memory", "max_cpus", "tls"],
    );
    let preview = preview(r, t.as_ref(), &caddy.tls);
    let t = sub(r, "log", &["level", "format"]);
    let log = log(r, t.as_ref());
    let notifications = root.as_ref().map(|t| super::notify::read(r, t)).unwrap_or_default();
    let file = r.path().to_path_buf();
    let locs = r.locations();
    let parsed = doc.is_some();
    Daemon { server, runtime, auth, registry, caddy, storage, secrets, preview, log, notifications, file, locs, parsed }
}

fn server(r: &mut Reader<'_>, t: Option<&Tbl<'_>>) -> Server {
    let listen = t.and_then(|t| r.string(t, "listen")).and_then(|v| match v.v.parse::<Listen>() {
        Ok(l) => Some(l),
        Err(why) => {
            r.invalid(&v, why, None);
            None
        }
    });
    let domain = t.and_then(|t| hostname(r, t, "public_domain", false));
    let trusted = t.and_then(|t| r.strings(t, "trusted_proxies")).map(|list| {
        list.into_iter()
            .filter_map(|v| match parse_net(&v.v) {
                Some(net) => Some(net),
                None => {
                    r.invalid(&v, "is not a CIDR block or an IP address, e.g. 10.0.0.0/8 or 127.0.0.1", None);
                    None
                }
            })
            .collect()
    });
    Server {
        listen: listen.unwrap_or_else(|| defaults::LISTEN.parse().expect("the default listener is valid")),
        public_domain: domain.map(|v| v.v),
        public_api: t.and_then(|t| r.choice(t, "public_api", PublicApi::OPTIONS)).map_or(PublicApi::Ci, |v| v.v),
        trusted_proxies: trusted.unwrap_or_else(|| {
            defaults::TRUSTED_PROXIES.iter().map(|s| s.parse().expect("default proxies are CIDRs")).collect()
        }),
        shutdown_timeout: t.and_then(|t| r.duration(t, "shutdown_timeout")).map_or(defaults::SHUTDOWN_TIMEOUT, |v| v.v),
    }
}

fn runtime(r: &mut Reader<'_>, t: Option<&Tbl<'_>>) -> Runtime {
    let backend = t.and_then(|t| r.choice(t, "backend", Backend::OPTIONS));
    let socket = t.and_then(|t| r.string(t, "socket")).and_then(|v| {
        let path = v.v.strip_prefix("unix://").unwrap_or(&v.v);
        if path.starts_with('/') {
            Some(v.v)
        } else {
            r.invalid(&v, "is not a unix socket: use unix:///path/to/engine.sock or an absolute path", None);
            None
        }
    });
    let port_range = t.and_then(|t| r.string(t, "port_range")).and_then(|v| match parse_port_range(&v.v) {
        Ok(range) => Some(range),
        Err(why) => {
            r.invalid(&v, why, None);
            None
        }
    });
    let (lo, hi) = defaults::PORT_RANGE;
    Runtime {
        backend: backend.map_or(Backend::Auto, |v| v.v),
        socket,
        port_range: port_range.unwrap_or(lo..=hi),
        min_free_disk: t.and_then(|t| r.size(t, "min_free_disk")).map_or(defaults::MIN_FREE_DISK, |v| v.v),
        max_concurrent_deploys: t
            .and_then(|t| r.int_in(t, "max_concurrent_deploys", 1, 1024))
            .map_or(defaults::MAX_CONCURRENT_DEPLOYS, |v| v.v),
        log_max_size: t
            .and_then(|t| r.size(t, "log_max_size"))
            .and_then(|v| nonzero_size(r, v))
            .map_or(defaults::LOG_MAX_SIZE, |v| v.v),
        log_max_files: t.and_then(|t| r.int_in(t, "log_max_files", 1, 1000)).map_or(defaults::LOG_MAX_FILES, |v| v.v),
    }
}

fn auth(r: &mut Reader<'_>, t: Option<&Tbl<'_>>) -> Auth {
    Auth {
        secret: t.and_then(|t| r.secret(t, "secret")),
        admin_token: t.and_then(|t| r.secret(t, "admin_token")),
        metrics_token: t.and_then(|t| r.secret(t, "metrics_token")),
        require_timestamp: t.and_then(|t| r.boolean(t, "require_timestamp")).unwrap_or(false),
        max_skew: t.and_then(|t| r.positive_duration(t, "max_skew")).map_or(defaults::MAX_SKEW, |v| v.v),
        max_failures: t
            .and_then(|t| r.int_in(t, "max_failures", 1, i64::from(u32::MAX)))
            .map_or(defaults::MAX_FAILURES, |v| v.v),
        failure_window: t
            .and_then(|t| r.positive_duration(t, "failure_window"))
            .map_or(defaults::FAILURE_WINDOW, |v| v.v),
        public_status: t.and_then(|t| r.boolean(t, "public_status")).unwrap_or(false),
        public_metrics: t.and_then(|t| r.boolean(t, "public_metrics")).unwrap_or(false),
    }
}

fn registry(r: &mut Reader<'_>, t: Option<&Tbl<'_>>) -> Registry {
    let mut auth: Vec<RegistryAuth> = Vec::new();
    let mut hosts: Vec<String> = Vec::new();
    let entries = t.map(|t| r.tables(t, "auth", Keys::of(&["host", "username", "password"]))).unwrap_or_default();
    for e in &entries {
        let host = r.string(e, "host");
        let username = r.string(e, "username");
        let password = r.string(e, "password");
        for (key, present) in
            [("host", host.is_some()), ("username", username.is_some()), ("password", password.is_some())]
        {
            if !present && !r.has(e, key) {
                r.missing(e, key, Some("[[registry.auth]] needs host, username and password".into()));
            }
        }
        let host = host.and_then(|v| {
            let lower = v.v.to_ascii_lowercase();
            if !is_registry_host(&lower) {
                r.invalid(&v, "is not a registry host: use host or host:port, e.g. ghcr.io or 127.0.0.1:5000", None);
                return None;
            }
            if hosts.contains(&lower) {
                r.invalid(&v, "is listed twice in [[registry.auth]]", Some("keep one entry per host".into()));
                return None;
            }
            hosts.push(lower.clone());
            Some(lower)
        });
        if let (Some(host), Some(username), Some(password)) = (host, username, password) {
            auth.push(RegistryAuth { host, username: username.v, password: Secret::new(password.v) });
        }
    }
    Registry {
        ghcr_token: t.and_then(|t| r.secret(t, "ghcr_token")),
        ghcr_username: t
            .and_then(|t| r.string(t, "ghcr_username"))
            .filter(|v| !v.v.is_empty())
            .map_or_else(|| defaults::GHCR_USERNAME.to_owned(), |v| v.v),
        auth,
    }
}

fn storage(r: &mut Reader<'_>, t: Option<&Tbl<'_>>) -> Storage {
    let path =
        t.and_then(|t| absolute_path(r, t, "path")).map_or_else(|| PathBuf::from(defaults::STORAGE_PATH), |v| v.v);
    let roots = t.and_then(|t| r.strings(t, "volume_roots")).map(|list| {
        list.into_iter()
            .filter_map(|v| match check_absolute(&v.v) {
                Ok(p) => Some(p),
                Err(why) => {
                    r.invalid(&v, why, None);
                    None
                }
            })
            .collect::<Vec<_>>()
    });
    Storage {
        volume_roots: roots.unwrap_or_else(|| vec![path.join(defaults::VOLUMES_DIR)]),
        history_retention: t
            .and_then(|t| r.positive_duration(t, "history_retention"))
            .map_or(defaults::HISTORY_RETENTION, |v| v.v),
        path,
    }
}

fn log(r: &mut Reader<'_>, t: Option<&Tbl<'_>>) -> Log {
    let level = t.and_then(|t| r.string(t, "level")).and_then(|v| {
        if is_log_filter(&v.v) {
            Some(v.v)
        } else {
            let hint = "use trace, debug, info, warn or error, optionally with target=level directives: \
                        \"info,slip_engine=debug\"";
            r.invalid(&v, "is not a log level", Some(hint.into()));
            None
        }
    });
    Log {
        level: level.unwrap_or_else(|| defaults::LOG_LEVEL.to_owned()),
        format: t.and_then(|t| r.choice(t, "format", LogFormat::OPTIONS)).map_or(LogFormat::Json, |v| v.v),
    }
}

fn nonzero_size(r: &mut Reader<'_>, v: Val<u64>) -> Option<Val<u64>> {
    if v.v == 0 {
        r.invalid(&v, "must be greater than 0", None);
        return None;
    }
    Some(v)
}

fn parse_net(s: &str) -> Option<ipnet::IpNet> {
    if let Ok(net) = s.parse::<ipnet::IpNet>() {
        return Some(net.trunc());
    }
    s.parse::<IpAddr>().ok().map(ipnet::IpNet::from)
}

fn parse_port_range(s: &str) -> Result<RangeInclusive<u16>, &'static str> {
    const RULE: &str = "is not a port range: write \"lo-hi\", e.g. \"20000-29999\"";
    let (lo, hi) = s.split_once('-').ok_or(RULE)?;
    let lo: u16 = lo.parse().map_err(|_| RULE)?;
    let hi: u16 = hi.parse().map_err(|_| RULE)?;
    if lo > hi {
        return Err("is empty: the low port must not be above the high one");
    }
    if lo < 1024 {
        return Err("starts below 1024: slipd tests that a port is free by binding it, which needs privileges there");
    }
    Ok(lo..=hi)
}

fn is_log_filter(s: &str) -> bool {
    const LEVELS: [&str; 6] = ["trace", "debug", "info", "warn", "error", "off"];
    let level_ok = |l: &str| LEVELS.contains(&l.to_ascii_lowercase().as_str());
    !s.is_empty()
        && s.split(',').all(|d| match d.split_once('=') {
            Some((target, level)) => {
                !target.is_empty()
                    && target.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b':' | b'-'))
                    && level_ok(level)
            }
            None => level_ok(d),
        })
}
