//! `slip.toml` (SPEC §3.2): the daemon's validated settings and stage two of reading them.
//!
//! Every section is optional and an empty section is the same as a missing one: each reader fills in the
//! named defaults from [`crate::defaults`] for whatever is absent. Values that are present are checked
//! strictly; a bad value is reported and replaced by its default so that reading can go on and every
//! problem in the file is found in one pass. Rules that involve app files live in `app` and `rules`.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::ops::RangeInclusive;
use std::path::{Component, Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use super::reader::{At, Keys, Reader, Tbl, Val};
use super::secret::Secret;
use super::vocabulary;
use crate::defaults;
use crate::names::is_hostname;

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
    /// `caddy.tls` / `caddy.tls.mode`.
    TlsMode {
        /// Public certificates from an ACME CA.
        Acme = "acme",
        /// Caddy's local CA (development, LAN).
        Internal = "internal",
        /// Plain HTTP.
        Off = "off",
    }
}

vocabulary! {
    /// `preview.tls`: how preview hostnames get certificates (SPEC §13.5).
    PreviewTls {
        /// One DNS-01 wildcard certificate per preview domain.
        Wildcard = "wildcard",
        /// One certificate per preview hostname.
        PerHost = "per_host",
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

/// `[caddy]`.
#[derive(Debug, Clone)]
pub struct Caddy {
    /// Admin API: `http://host:port` or `unix//path/to/admin.sock`.
    pub admin_api: String,
    /// Name of slip's server under `apps.http.servers`.
    pub server: String,
    /// Listener addresses; the default depends on the TLS mode.
    pub listen: Vec<String>,
    /// Certificates.
    pub tls: Tls,
    /// Keeps WebSockets open across Caddy reloads (Caddy ≥ 2.7).
    pub stream_close_delay: Option<Duration>,
    /// How often Caddy's routes are compared with the desired state.
    pub reconcile_interval: Duration,
}

/// `caddy.tls`, written either as a mode string or as a table.
#[derive(Debug, Clone)]
pub struct Tls {
    /// ACME, Caddy's internal CA, or plain HTTP.
    pub mode: TlsMode,
    /// ACME account e-mail.
    pub email: Option<String>,
    /// Use the Let's Encrypt staging directory.
    pub staging: bool,
    /// Caddy DNS module name for DNS-01 (wildcard preview certificates).
    pub dns_provider: Option<String>,
    /// Passed verbatim beside `name` in the DNS provider object; strings are interpolated and secret.
    pub dns_provider_config: std::collections::BTreeMap<String, ProviderValue>,
    /// DNS-01 propagation delay.
    pub propagation_delay: Duration,
}

/// A value of `caddy.tls.dns_provider_config`, kept as data for the Caddy adapter to turn into JSON.
/// Strings are [`Secret`]s because provider settings are usually API tokens.
#[derive(Debug, Clone, PartialEq)]
pub enum ProviderValue {
    /// A string (often a Caddy placeholder such as `{env.CF_API_TOKEN}`).
    String(Secret),
    /// An integer.
    Integer(i64),
    /// A float.
    Float(f64),
    /// A boolean.
    Bool(bool),
    /// An array.
    Array(Vec<ProviderValue>),
    /// A table.
    Table(std::collections::BTreeMap<String, ProviderValue>),
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

/// `[preview]` in `slip.toml`.
#[derive(Debug, Clone)]
pub struct Preview {
    /// Base domain: a preview is served at `<id>.<domain>`.
    pub domain: Option<String>,
    /// Default cap on previews per app.
    pub max_per_app: u32,
    /// Cap on previews across all apps.
    pub max_total: u32,
    /// Lifetime when neither the webhook nor the repo sets one.
    pub default_ttl: Duration,
    /// Upper bound for any preview TTL.
    pub max_ttl: Duration,
    /// Memory ceiling for previews, in bytes.
    pub max_memory: Option<u64>,
    /// CPU ceiling for previews, in billionths of a CPU.
    pub max_nano_cpus: Option<u64>,
    /// How preview hostnames get certificates.
    pub tls: PreviewTls,
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

const ROOT: &[&str] = &["server", "runtime", "auth", "registry", "caddy", "storage", "secrets", "preview", "log"];

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
    let file = r.path().to_path_buf();
    let locs = r.locations();
    let parsed = doc.is_some();
    Daemon { server, runtime, auth, registry, caddy, storage, secrets, preview, log, file, locs, parsed }
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

fn caddy(r: &mut Reader<'_>, t: Option<&Tbl<'_>>) -> Caddy {
    let admin_api = t.and_then(|t| r.string(t, "admin_api")).and_then(|v| {
        if is_admin_api(&v.v) {
            Some(v.v)
        } else {
            r.invalid(&v, "is not an admin address: use http://host:port or unix//path/to/admin.sock", None);
            None
        }
    });
    let server = t.and_then(|t| r.string(t, "server")).and_then(|v| {
        let ok = !v.v.is_empty() && v.v.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
        if ok {
            Some(v.v)
        } else {
            r.invalid(&v, "is not a server name: use letters, digits, '_', '-' and '.'", None);
            None
        }
    });
    let tls = tls(r, t);
    let listen = t.and_then(|t| r.strings(t, "listen")).and_then(|list| {
        if list.is_empty() {
            r.problem(
                t.and_then(|t| r.value_at(t, "listen")),
                "caddy.listen: must list at least one address, e.g. [\":443\", \":80\"]".into(),
                None,
            );
            return None;
        }
        let mut ok = true;
        for v in &list {
            if !is_caddy_listener(&v.v) {
                ok = false;
                r.invalid(
                    &v.clone(),
                    "is not a listener address: use [host]:port, e.g. \":443\" or \"127.0.0.1:8080\"",
                    None,
                );
            }
        }
        ok.then(|| list.into_iter().map(|v| v.v).collect())
    });
    let default_listen: &[&str] =
        if tls.mode == TlsMode::Off { &defaults::CADDY_LISTEN_OFF } else { &defaults::CADDY_LISTEN };
    Caddy {
        admin_api: admin_api.unwrap_or_else(|| defaults::CADDY_ADMIN_API.to_owned()),
        server: server.unwrap_or_else(|| defaults::CADDY_SERVER.to_owned()),
        listen: listen.unwrap_or_else(|| default_listen.iter().map(|s| (*s).to_owned()).collect()),
        tls,
        stream_close_delay: t.and_then(|t| r.duration(t, "stream_close_delay")).map(|v| v.v),
        reconcile_interval: t
            .and_then(|t| r.positive_duration(t, "reconcile_interval"))
            .map_or(defaults::RECONCILE_INTERVAL, |v| v.v),
    }
}

fn tls(r: &mut Reader<'_>, caddy: Option<&Tbl<'_>>) -> Tls {
    let mut tls = Tls {
        mode: TlsMode::Acme,
        email: None,
        staging: false,
        dns_provider: None,
        dns_provider_config: Default::default(),
        propagation_delay: defaults::PROPAGATION_DELAY,
    };
    let Some(caddy) = caddy else { return tls };
    if r.is_string(caddy, "tls") {
        if let Some(mode) = r.choice(caddy, "tls", TlsMode::OPTIONS) {
            tls.mode = mode.v;
        }
        return tls;
    }
    let keys = ["mode", "email", "staging", "dns_provider", "dns_provider_config", "propagation_delay"];
    let Some(t) = r.table(caddy, "tls", Keys::of(&keys)) else { return tls };
    if let Some(mode) = r.choice(&t, "mode", TlsMode::OPTIONS) {
        tls.mode = mode.v;
    }
    tls.email = r.string(&t, "email").and_then(|v| {
        let ok = v.v.split_once('@').is_some_and(|(user, host)| !user.is_empty() && host.contains('.'))
            && !v.v.contains(char::is_whitespace);
        if ok {
            Some(v.v)
        } else {
            r.invalid(&v, "is not an e-mail address", None);
            None
        }
    });
    tls.staging = r.boolean(&t, "staging").unwrap_or(false);
    tls.dns_provider = r.string(&t, "dns_provider").and_then(|v| {
        let ok = !v.v.is_empty() && v.v.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if ok {
            Some(v.v)
        } else {
            r.invalid(&v, "is not a Caddy DNS module name, e.g. \"cloudflare\" or \"route53\"", None);
            None
        }
    });
    if let Some(config) = r.any_table(&t, "dns_provider_config") {
        for (k, at, item) in r.entries(&config) {
            let path = Reader::key_path(&config, &k);
            if k == "name" {
                r.problem(
                    at,
                    format!("{path}: \"name\" is set from caddy.tls.dns_provider"),
                    Some("remove it and set caddy.tls.dns_provider instead".into()),
                );
                continue;
            }
            if let Some(v) = r.opaque(&path, item) {
                tls.dns_provider_config.insert(k, v);
            }
        }
        if tls.dns_provider.is_none() && !tls.dns_provider_config.is_empty() {
            r.problem(config.at, "caddy.tls.dns_provider_config is set but caddy.tls.dns_provider is not".into(), None);
        }
    }
    tls.propagation_delay = r.duration(&t, "propagation_delay").map_or(defaults::PROPAGATION_DELAY, |v| v.v);
    tls
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

fn preview(r: &mut Reader<'_>, t: Option<&Tbl<'_>>, tls: &Tls) -> Preview {
    let default_ttl = t.and_then(|t| r.positive_duration(t, "default_ttl"));
    let max_ttl = t.and_then(|t| r.positive_duration(t, "max_ttl"));
    if let Some(d) = &default_ttl {
        let max = max_ttl.as_ref().map_or(defaults::PREVIEW_MAX_TTL, |v| v.v);
        if d.v > max {
            let which = match &max_ttl {
                Some(m) => m.shown(),
                None => format!("the default {}", crate::duration::format(max)),
            };
            r.invalid(d, format!("is longer than preview.max_ttl ({which})"), None);
        }
    }
    let preview_tls = t.and_then(|t| r.choice(t, "tls", PreviewTls::OPTIONS));
    if let Some(v) = &preview_tls
        && v.v == PreviewTls::Wildcard
        && tls.mode == TlsMode::Acme
        && tls.dns_provider.is_none()
    {
        let hint =
            "set caddy.tls.dns_provider (DNS-01 is the only way to get a wildcard certificate), or use \"per_host\"";
        r.invalid(v, "needs caddy.tls.dns_provider in acme mode", Some(hint.into()));
    }
    Preview {
        domain: t.and_then(|t| hostname(r, t, "domain", false)).map(|v| v.v),
        max_per_app: t
            .and_then(|t| r.int_in(t, "max_per_app", 1, i64::from(u32::MAX)))
            .map_or(defaults::PREVIEW_MAX_PER_APP, |v| v.v),
        max_total: t
            .and_then(|t| r.int_in(t, "max_total", 1, i64::from(u32::MAX)))
            .map_or(defaults::PREVIEW_MAX_TOTAL, |v| v.v),
        default_ttl: default_ttl.map_or(defaults::PREVIEW_DEFAULT_TTL, |v| v.v),
        max_ttl: max_ttl.map_or(defaults::PREVIEW_MAX_TTL, |v| v.v),
        max_memory: t.and_then(|t| memory(r, t, "max_memory")),
        max_nano_cpus: t.and_then(|t| r.nanos(t, "max_cpus")).map(|v| v.v),
        tls: preview_tls
            .map_or(if tls.dns_provider.is_some() { PreviewTls::Wildcard } else { PreviewTls::PerHost }, |v| v.v),
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

/// A lower-cased hostname (`allow_wildcard`: a leading `*.` is fine).
pub(crate) fn hostname(r: &mut Reader<'_>, t: &Tbl<'_>, key: &str, allow_wildcard: bool) -> Option<Val<String>> {
    let v = r.string(t, key)?;
    check_hostname(r, v, allow_wildcard)
}

/// Validates and lower-cases a hostname already read.
pub(crate) fn check_hostname(r: &mut Reader<'_>, v: Val<String>, allow_wildcard: bool) -> Option<Val<String>> {
    let lower = v.v.to_ascii_lowercase();
    if is_hostname(&lower, allow_wildcard) {
        return Some(v.map(|_| lower));
    }
    if lower.parse::<std::net::IpAddr>().is_ok()
        || lower.rsplit('.').next().is_some_and(|l| !l.is_empty() && l.bytes().all(|b| b.is_ascii_digit()))
    {
        r.invalid(
            &v,
            "is an IP address, not a hostname: Caddy routes by name; use a DNS name such as app.example.com",
            None,
        );
        return None;
    }
    let rule = if allow_wildcard {
        "is not a hostname: use a DNS name such as app.example.com (a leading *. is allowed), without scheme, port or path"
    } else {
        "is not a hostname: use a DNS name such as app.example.com, without scheme, port or path"
    };
    r.invalid(&v, rule, None);
    None
}

/// A memory size of at least 6 MiB.
pub(crate) fn memory(r: &mut Reader<'_>, t: &Tbl<'_>, key: &str) -> Option<u64> {
    let v = r.size(t, key)?;
    if v.v < defaults::MIN_MEMORY {
        r.invalid(&v, "is below the minimum of 6m that container engines accept", None);
        return None;
    }
    Some(v.v)
}

/// An absolute path without `..` segments.
pub(crate) fn absolute_path(r: &mut Reader<'_>, t: &Tbl<'_>, key: &str) -> Option<Val<PathBuf>> {
    let v = r.string(t, key)?;
    match check_absolute(&v.v) {
        Ok(p) => Some(v.map(|_| p)),
        Err(why) => {
            r.invalid(&v, why, None);
            None
        }
    }
}

/// Accepts an absolute path with no `..` segments, normalising `.` and doubled slashes away.
pub(crate) fn check_absolute(s: &str) -> Result<PathBuf, &'static str> {
    let path = Path::new(s);
    if !path.is_absolute() {
        return Err("is not an absolute path");
    }
    if path.components().any(|c| c == Component::ParentDir) {
        return Err("contains a \"..\" segment; write the path without it");
    }
    Ok(path.components().collect())
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

fn is_registry_host(s: &str) -> bool {
    let (host, port) = match s.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => (h, Some(p)),
        _ => (s, None),
    };
    let port_ok = port.is_none_or(|p| p.parse::<u16>().is_ok_and(|n| n > 0));
    let host_ok = is_hostname(host, false)
        || host.parse::<std::net::Ipv4Addr>().is_ok()
        || host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .is_some_and(|h| h.parse::<std::net::Ipv6Addr>().is_ok());
    port_ok && host_ok
}

fn is_admin_api(s: &str) -> bool {
    if let Some(path) = s.strip_prefix("unix//") {
        return !path.is_empty() && !path.contains(char::is_whitespace);
    }
    let Some(rest) = s.strip_prefix("http://") else { return false };
    let authority = rest.strip_suffix('/').unwrap_or(rest);
    !authority.is_empty() && !authority.contains('/') && is_registry_host(&authority.to_ascii_lowercase())
}

fn is_caddy_listener(s: &str) -> bool {
    let addr = s.split_once('/').map_or(s, |(network, addr)| if network.starts_with("tcp") { addr } else { "" });
    let Some((host, port)) = addr.rsplit_once(':') else { return false };
    let ports_ok = match port.split_once('-') {
        Some((a, b)) => a.parse::<u16>().is_ok() && b.parse::<u16>().is_ok(),
        None => port.parse::<u16>().is_ok(),
    };
    let host_ok = host.is_empty()
        || is_hostname(&host.to_ascii_lowercase(), false)
        || host.parse::<std::net::Ipv4Addr>().is_ok()
        || host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .is_some_and(|h| h.parse::<std::net::Ipv6Addr>().is_ok());
    ports_ok && host_ok
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
