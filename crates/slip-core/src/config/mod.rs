//! Server configuration (SPEC §3, §4): `slip.toml` and `apps/*.toml` parsed from memory into a validated
//! [`Config`]. Reading files is the caller's job (`slip_engine::config_source`); this module does no IO.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::deploy::Strategy;
use crate::names::{AppName, ImageRepo};
use crate::{duration, size};

/// One config file's text and the path shown in messages.
#[derive(Debug, Clone)]
pub struct SourceFile {
    /// Path as shown in messages (`slip.toml`, `apps/myapp.toml`).
    pub path: PathBuf,
    /// File contents.
    pub text: String,
}

/// Everything the parser reads.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    /// `slip.toml`, when present.
    pub slip_toml: Option<SourceFile>,
    /// `apps/*.toml`.
    pub apps: Vec<SourceFile>,
    /// Variables for `${VAR}`: the process environment over `slip.env`.
    pub env: BTreeMap<String, String>,
}

/// One problem in the config, with where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// File as shown.
    pub file: PathBuf,
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// 1-based column, when known.
    pub column: Option<usize>,
    /// What is wrong and what would be valid.
    pub message: String,
    /// A suggestion.
    pub hint: Option<String>,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(col) = self.column {
                write!(f, ":{col}")?;
            }
        }
        write!(f, ": {}", self.message)?;
        if let Some(hint) = &self.hint {
            write!(f, "\n  hint: {hint}")?;
        }
        Ok(())
    }
}

/// A parsed config and its warnings.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The validated config.
    pub config: Config,
    /// Things that work but deserve attention.
    pub warnings: Vec<Problem>,
}

/// A secret value: never shown by `Debug` or `Display`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value.
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The value, for the one place that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// The daemon's validated config.
#[derive(Debug, Clone)]
pub struct Config {
    /// `[server]`.
    pub server: Server,
    /// `[runtime]`.
    pub runtime: Runtime,
    /// `[auth]`.
    pub auth: Auth,
    /// `[registry]`.
    pub registry: Registry,
    /// `[caddy]`.
    pub caddy: Caddy,
    /// `[storage]`.
    pub storage: Storage,
    /// `[log]`.
    pub log: Log,
    /// Apps by name.
    pub apps: BTreeMap<AppName, AppConfig>,
}

/// `[server]`.
#[derive(Debug, Clone)]
pub struct Server {
    /// API listener.
    pub listen: SocketAddr,
    /// Public HTTPS name for slipd itself.
    pub public_domain: Option<String>,
    /// `ci` or `all`.
    pub public_api: String,
    /// Peers whose X-Forwarded-For is believed.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Longest wait for running deploys at shutdown.
    pub shutdown_timeout: Duration,
}

/// `[runtime]`.
#[derive(Debug, Clone)]
pub struct Runtime {
    /// `auto`, `docker` or `podman`.
    pub backend: String,
    /// Explicit engine socket.
    pub socket: Option<String>,
    /// Host ports slip leases.
    pub port_range: RangeInclusive<u16>,
    /// Free disk needed before a pull, bytes.
    pub min_free_disk: u64,
    /// Deploys of different apps at once.
    pub max_concurrent_deploys: u32,
    /// Container log file size, bytes.
    pub log_max_size: u64,
    /// Container log files kept.
    pub log_max_files: u32,
}

/// `[auth]`.
#[derive(Debug, Clone)]
pub struct Auth {
    /// Global app key.
    pub secret: Option<Secret>,
    /// Admin token.
    pub admin_token: Option<Secret>,
    /// Require X-Slip-Timestamp.
    pub require_timestamp: bool,
    /// Accepted clock skew.
    pub max_skew: Duration,
    /// Failures per window before 429.
    pub max_failures: u32,
    /// The failure window.
    pub failure_window: Duration,
    /// Public status lists apps.
    pub public_status: bool,
}

/// `[registry]`.
#[derive(Debug, Clone, Default)]
pub struct Registry {
    /// Token for ghcr.io only.
    pub ghcr_token: Option<Secret>,
    /// User paired with the ghcr token.
    pub ghcr_username: String,
    /// Credentials per host.
    pub auth: Vec<RegistryAuth>,
}

/// One `[[registry.auth]]`.
#[derive(Debug, Clone)]
pub struct RegistryAuth {
    /// `host[:port]`.
    pub host: String,
    /// User.
    pub username: String,
    /// Password.
    pub password: Secret,
}

impl Registry {
    /// Credentials for exactly `host` (SPEC §12).
    pub fn credentials_for(&self, host: &str) -> Option<(&str, &Secret)> {
        if let Some(a) = self.auth.iter().find(|a| a.host == host) {
            return Some((&a.username, &a.password));
        }
        match (&self.ghcr_token, host) {
            (Some(token), "ghcr.io") => Some((&self.ghcr_username, token)),
            _ => None,
        }
    }
}

/// `[caddy]`.
#[derive(Debug, Clone)]
pub struct Caddy {
    /// Admin API address.
    pub admin_api: String,
    /// Server name.
    pub server: String,
    /// Listeners.
    pub listen: Vec<String>,
    /// TLS settings.
    pub tls: Tls,
    /// WebSocket keep-alive across reloads.
    pub stream_close_delay: Option<Duration>,
    /// Drift check interval.
    pub reconcile_interval: Duration,
}

/// `[caddy.tls]`.
#[derive(Debug, Clone)]
pub struct Tls {
    /// `acme`, `internal` or `off`.
    pub mode: String,
    /// ACME e-mail.
    pub email: Option<String>,
    /// Let's Encrypt staging.
    pub staging: bool,
}

/// `[storage]`.
#[derive(Debug, Clone)]
pub struct Storage {
    /// State root.
    pub path: PathBuf,
    /// Allowed roots for volume host paths.
    pub volume_roots: Vec<PathBuf>,
}

/// `[log]`.
#[derive(Debug, Clone)]
pub struct Log {
    /// Level.
    pub level: String,
    /// `json` or `text`.
    pub format: String,
}

/// App kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Routed HTTP.
    Web,
    /// No routes.
    Worker,
    /// Podman pod.
    Pod,
}

impl Kind {
    /// Name in config and API.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Web => "web",
            Kind::Worker => "worker",
            Kind::Pod => "pod",
        }
    }
}

/// One app.
#[derive(Debug, Clone)]
pub struct AppConfig {
    /// Name.
    pub name: AppName,
    /// Image repository.
    pub image: ImageRepo,
    /// Explicit kind.
    pub kind: Option<Kind>,
    /// Per-app key.
    pub secret: Option<Secret>,
    /// Run an init process.
    pub init: bool,
    /// Routes (the `routing.domain` shorthand first).
    pub routes: Vec<Route>,
    /// Caddy hold time.
    pub hold_timeout: Duration,
    /// Health as written.
    pub health: Health,
    /// `[deploy]`.
    pub deploy: DeployCfg,
    /// `[env]`.
    pub env: BTreeMap<String, String>,
    /// `env_file.path`.
    pub env_file: Option<PathBuf>,
    /// `[resources]`.
    pub resources: Resources,
    /// `network.name`.
    pub network: String,
    /// `[[volumes]]`.
    pub volumes: Vec<Volume>,
}

impl AppConfig {
    /// Explicit kind, else web with routes, else worker.
    pub fn kind(&self) -> Kind {
        self.kind.unwrap_or(if self.routes.is_empty() { Kind::Worker } else { Kind::Web })
    }

    /// Explicit strategy, else recreate for workers and writable volumes, else blue-green.
    pub fn strategy(&self) -> Strategy {
        self.deploy.strategy.unwrap_or(if self.kind() == Kind::Worker || self.volumes.iter().any(|v| !v.read_only) {
            Strategy::Recreate
        } else {
            Strategy::BlueGreen
        })
    }
}

/// One route.
#[derive(Debug, Clone)]
pub struct Route {
    /// Host.
    pub hostname: String,
    /// Container port.
    pub port: Option<u16>,
    /// Pod container.
    pub container: Option<String>,
    /// Path prefix (`/` for all).
    pub path_prefix: String,
    /// Strip the prefix.
    pub strip_prefix: bool,
}

/// `[health]` as written.
#[derive(Debug, Clone, Default)]
pub struct Health {
    /// Path.
    pub path: Option<String>,
    /// Port.
    pub port: Option<u16>,
    /// Host header.
    pub host: Option<String>,
    /// Interval.
    pub interval: Option<Duration>,
    /// Timeout.
    pub timeout: Option<Duration>,
    /// Retries.
    pub retries: Option<u32>,
    /// Grace period.
    pub start_period: Option<Duration>,
    /// Stable time without a path.
    pub stable_for: Option<Duration>,
}

/// Health with defaults applied.
#[derive(Debug, Clone)]
pub struct ResolvedHealth {
    /// Path.
    pub path: Option<String>,
    /// Port.
    pub port: Option<u16>,
    /// Host header.
    pub host: Option<String>,
    /// Interval.
    pub interval: Duration,
    /// Timeout.
    pub timeout: Duration,
    /// Retries.
    pub retries: u32,
    /// Grace period.
    pub start_period: Duration,
    /// Stable time.
    pub stable_for: Duration,
}

impl Health {
    /// Applies built-in defaults field by field.
    pub fn resolve(&self) -> ResolvedHealth {
        ResolvedHealth {
            path: self.path.clone(),
            port: self.port,
            host: self.host.clone(),
            interval: self.interval.unwrap_or(Duration::from_secs(2)),
            timeout: self.timeout.unwrap_or(Duration::from_secs(5)),
            retries: self.retries.unwrap_or(5),
            start_period: self.start_period.unwrap_or(Duration::from_secs(10)),
            stable_for: self.stable_for.unwrap_or(Duration::from_secs(5)),
        }
    }
}

/// `[deploy]`.
#[derive(Debug, Clone)]
pub struct DeployCfg {
    /// Explicit strategy.
    pub strategy: Option<Strategy>,
    /// Drain bound.
    pub drain_timeout: Duration,
    /// SIGTERM → SIGKILL.
    pub stop_grace: Duration,
    /// Pull → switch bound.
    pub timeout: Duration,
    /// Queue bound.
    pub queue_ttl: Duration,
}

/// `[resources]`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Resources {
    /// Bytes.
    pub memory: Option<u64>,
    /// 10^-9 CPUs.
    pub nano_cpus: Option<u64>,
    /// Processes.
    pub pids: Option<i64>,
}

/// One `[[volumes]]`.
#[derive(Debug, Clone)]
pub struct Volume {
    /// Host directory.
    pub host_path: PathBuf,
    /// Mount point.
    pub mount_path: String,
    /// Read-only.
    pub read_only: bool,
}

/// Parses every file and validates the result, collecting every problem.
pub fn parse(sources: &Sources) -> Result<Loaded, Vec<Problem>> {
    let mut problems = Vec::new();
    let raw: RawDaemon = match &sources.slip_toml {
        Some(file) => read_file(file, &sources.env, &mut problems).unwrap_or_default(),
        None => RawDaemon::default(),
    };
    let config_file = sources.slip_toml.as_ref().map(|f| f.path.clone()).unwrap_or_else(|| "slip.toml".into());
    let daemon = daemon(&raw, &config_file, &mut problems);
    let mut apps = BTreeMap::new();
    for file in &sources.apps {
        let Some(raw) = read_file::<RawApp>(file, &sources.env, &mut problems) else { continue };
        if let Some(app) = app(&raw, file, &mut problems) {
            apps.insert(app.name.clone(), app);
        }
    }
    if !problems.is_empty() {
        problems.sort_by(|a, b| (&a.file, a.line).cmp(&(&b.file, b.line)));
        return Err(problems);
    }
    let (server, runtime, auth, registry, caddy, storage, log) = daemon.expect("no problems means a daemon config");
    let mut warnings = Vec::new();
    if auth.admin_token.is_none() && auth.secret.is_some() {
        warnings.push(Problem {
            file: config_file.clone(),
            line: None,
            column: None,
            message: "auth.admin_token is unset, so auth.secret (the webhook key) is also the admin token".into(),
            hint: Some("set a separate auth.admin_token".into()),
        });
    }
    Ok(Loaded { config: Config { server, runtime, auth, registry, caddy, storage, log, apps }, warnings })
}

type DaemonParts = (Server, Runtime, Auth, Registry, Caddy, Storage, Log);

fn read_file<T: for<'de> Deserialize<'de>>(
    file: &SourceFile,
    env: &BTreeMap<String, String>,
    problems: &mut Vec<Problem>,
) -> Option<T> {
    let mut value: toml::Table = match toml::from_str(&file.text) {
        Ok(v) => v,
        Err(e) => {
            problems.push(toml_problem(file, &e));
            return None;
        }
    };
    let before = problems.len();
    for (key, v) in value.iter_mut() {
        interpolate(v, key, file, env, problems);
    }
    if problems.len() > before {
        return None;
    }
    match T::deserialize(toml::Value::Table(value)) {
        Ok(v) => Some(v),
        Err(e) => {
            // Re-parse the original text to find the line of the offending key.
            let located = toml::from_str::<T>(&file.text).err();
            let mut p = toml_problem(file, &e);
            if let Some(l) = located {
                let lp = toml_problem(file, &l);
                p.line = lp.line;
                p.column = lp.column;
            }
            problems.push(p);
            None
        }
    }
}

fn toml_problem(file: &SourceFile, e: &toml::de::Error) -> Problem {
    let (line, column) = match e.span() {
        Some(span) => {
            let before = &file.text[..span.start.min(file.text.len())];
            let line = before.matches('\n').count() + 1;
            let column = before.len() - before.rfind('\n').map(|i| i + 1).unwrap_or(0) + 1;
            (Some(line), Some(column))
        }
        None => (None, None),
    };
    let message = e.message().trim().replace('\n', " ");
    let hint =
        message.contains("apps").then(|| "each app is its own file: apps/<name>.toml with an [app] table".into());
    Problem { file: file.path.clone(), line, column, message, hint }
}

fn interpolate(
    v: &mut toml::Value,
    key: &str,
    file: &SourceFile,
    env: &BTreeMap<String, String>,
    problems: &mut Vec<Problem>,
) {
    match v {
        toml::Value::String(s) => match expand(s, env) {
            Ok(out) => *s = out,
            Err(var) => problems.push(Problem {
                file: file.path.clone(),
                line: find_line(&file.text, &format!("${{{var}")),
                column: None,
                message: format!("{key}: variable {var} is not set"),
                hint: Some(
                    "set it in the environment or in slip.env beside slip.toml, or write ${VAR:-default}".into(),
                ),
            }),
        },
        toml::Value::Array(items) => items.iter_mut().for_each(|i| interpolate(i, key, file, env, problems)),
        toml::Value::Table(t) => {
            for (k, i) in t.iter_mut() {
                interpolate(i, &format!("{key}.{k}"), file, env, problems);
            }
        }
        _ => {}
    }
}

/// Expands `${NAME}`, `${NAME:-default}` and `$${`; returns the unset variable's name on failure.
pub fn expand(s: &str, env: &BTreeMap<String, String>) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i..];
        if let Some(tail) = after.strip_prefix("$${") {
            out.push_str("${");
            rest = tail;
            continue;
        }
        let Some(body_start) = after.strip_prefix("${") else {
            out.push('$');
            rest = &after[1..];
            continue;
        };
        let Some(end) = body_start.find('}') else {
            out.push_str(after);
            rest = "";
            break;
        };
        let body = &body_start[..end];
        let (name, default) = match body.split_once(":-") {
            Some((n, d)) => (n, Some(d)),
            None => (body, None),
        };
        match (env.get(name).filter(|v| !v.is_empty()), default) {
            (Some(v), _) => out.push_str(v),
            (None, Some(d)) => out.push_str(d),
            (None, None) => return Err(name.to_owned()),
        }
        rest = &body_start[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

fn find_line(text: &str, needle: &str) -> Option<usize> {
    text.lines().position(|l| l.contains(needle)).map(|i| i + 1)
}

fn daemon(raw: &RawDaemon, file: &std::path::Path, problems: &mut Vec<Problem>) -> Option<DaemonParts> {
    let mut bad = |key: &str, message: String| {
        problems.push(Problem {
            file: file.to_path_buf(),
            line: find_line_key(raw, key),
            column: None,
            message: format!("{key}: {message}"),
            hint: None,
        })
    };
    let dur = |v: &Option<String>, default: &str, key: &str, bad: &mut dyn FnMut(&str, String)| match duration::parse(
        v.as_deref().unwrap_or(default),
    ) {
        Ok(d) => d,
        Err(e) => {
            bad(key, e.to_string());
            Duration::ZERO
        }
    };
    let s = &raw.server;
    let listen = s.listen.clone().unwrap_or_else(|| "127.0.0.1:7890".into());
    let listen_addr = listen.replace("localhost:", "127.0.0.1:").parse::<SocketAddr>().unwrap_or_else(|_| {
        bad("server.listen", format!("{listen:?} is not IP:port"));
        "127.0.0.1:7890".parse().expect("valid")
    });
    let trusted = s
        .trusted_proxies
        .clone()
        .unwrap_or_else(|| vec!["127.0.0.1/32".into(), "::1/128".into()])
        .iter()
        .filter_map(|c| c.parse().map_err(|_| bad("server.trusted_proxies", format!("{c:?} is not a CIDR"))).ok())
        .collect();
    let server = Server {
        listen: listen_addr,
        public_domain: s.public_domain.clone(),
        public_api: s.public_api.clone().unwrap_or_else(|| "ci".into()),
        trusted_proxies: trusted,
        shutdown_timeout: dur(&s.shutdown_timeout, "60s", "server.shutdown_timeout", &mut bad),
    };
    let r = &raw.runtime;
    let range = r.port_range.clone().unwrap_or_else(|| "20000-29999".into());
    let port_range = range
        .split_once('-')
        .and_then(|(a, b)| Some(a.parse::<u16>().ok()?..=b.parse::<u16>().ok()?))
        .filter(|r| r.start() <= r.end() && *r.start() > 0)
        .unwrap_or_else(|| {
            bad("runtime.port_range", format!("{range:?} is not \"lo-hi\""));
            20000..=29999
        });
    let backend = r.backend.clone().unwrap_or_else(|| "auto".into());
    if !["auto", "docker", "podman"].contains(&backend.as_str()) {
        bad("runtime.backend", format!("{backend:?} is not one of auto, docker, podman"));
    }
    let runtime = Runtime {
        backend,
        socket: r.socket.clone(),
        port_range,
        min_free_disk: size::parse(r.min_free_disk.as_deref().unwrap_or("2g")).unwrap_or_else(|e| {
            bad("runtime.min_free_disk", e.to_string());
            0
        }),
        max_concurrent_deploys: r.max_concurrent_deploys.unwrap_or(4).max(1),
        log_max_size: size::parse(r.log_max_size.as_deref().unwrap_or("10m")).unwrap_or_else(|e| {
            bad("runtime.log_max_size", e.to_string());
            0
        }),
        log_max_files: r.log_max_files.unwrap_or(3),
    };
    let a = &raw.auth;
    let auth = Auth {
        secret: a.secret.clone().filter(|s| !s.is_empty()).map(Secret),
        admin_token: a.admin_token.clone().filter(|s| !s.is_empty()).map(Secret),
        require_timestamp: a.require_timestamp.unwrap_or(false),
        max_skew: dur(&a.max_skew, "5m", "auth.max_skew", &mut bad),
        max_failures: a.max_failures.unwrap_or(20),
        failure_window: dur(&a.failure_window, "10m", "auth.failure_window", &mut bad),
        public_status: a.public_status.unwrap_or(false),
    };
    let g = &raw.registry;
    let registry = Registry {
        ghcr_token: g.ghcr_token.clone().map(Secret),
        ghcr_username: g.ghcr_username.clone().unwrap_or_else(|| "slip".into()),
        auth: g
            .auth
            .iter()
            .map(|x| RegistryAuth {
                host: x.host.clone(),
                username: x.username.clone(),
                password: Secret(x.password.clone()),
            })
            .collect(),
    };
    let c = &raw.caddy;
    let (mode, email, staging) = match &c.tls {
        None => ("acme".to_owned(), None, false),
        Some(RawTls::Mode(m)) => (m.clone(), None, false),
        Some(RawTls::Table(t)) => {
            (t.mode.clone().unwrap_or_else(|| "acme".into()), t.email.clone(), t.staging.unwrap_or(false))
        }
    };
    if !["acme", "internal", "off"].contains(&mode.as_str()) {
        bad("caddy.tls", format!("{mode:?} is not one of acme, internal, off"));
    }
    let default_listen = if mode == "off" { vec![":80".to_owned()] } else { vec![":443".to_owned(), ":80".to_owned()] };
    let caddy = Caddy {
        admin_api: c.admin_api.clone().unwrap_or_else(|| "http://localhost:2019".into()),
        server: c.server.clone().unwrap_or_else(|| "slip".into()),
        listen: c.listen.clone().unwrap_or(default_listen),
        tls: Tls { mode, email, staging },
        stream_close_delay: c
            .stream_close_delay
            .as_ref()
            .map(|v| dur(&Some(v.clone()), "0s", "caddy.stream_close_delay", &mut bad)),
        reconcile_interval: dur(&c.reconcile_interval, "10s", "caddy.reconcile_interval", &mut bad),
    };
    let st = &raw.storage;
    let path = PathBuf::from(st.path.clone().unwrap_or_else(|| "/var/lib/slip".into()));
    let storage = Storage {
        volume_roots: st
            .volume_roots
            .clone()
            .map(|v| v.into_iter().map(PathBuf::from).collect())
            .unwrap_or_else(|| vec![path.join("volumes")]),
        path,
    };
    let log = Log {
        level: raw.log.level.clone().unwrap_or_else(|| "info".into()),
        format: raw.log.format.clone().unwrap_or_else(|| "json".into()),
    };
    Some((server, runtime, auth, registry, caddy, storage, log))
}

fn find_line_key(_raw: &RawDaemon, _key: &str) -> Option<usize> {
    None
}

fn app(raw: &RawApp, file: &SourceFile, problems: &mut Vec<Problem>) -> Option<AppConfig> {
    let before = problems.len();
    let mut bad = |key: &str, message: String| {
        let leaf = key.rsplit('.').next().unwrap_or(key);
        problems.push(Problem {
            file: file.path.clone(),
            line: find_line(&file.text, &format!("{leaf} ")).or_else(|| find_line(&file.text, leaf)),
            column: None,
            message: format!("{key}: {message}"),
            hint: None,
        })
    };
    let dur = |v: &Option<String>, key: &str, bad: &mut dyn FnMut(&str, String)| -> Option<Duration> {
        v.as_ref().and_then(|s| duration::parse(s).map_err(|e| bad(key, e.to_string())).ok())
    };
    let name: Option<AppName> =
        raw.app.name.parse().map_err(|e: crate::names::NameError| bad("app.name", e.to_string())).ok();
    let stem = file.path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    if stem != raw.app.name {
        bad(
            "app.name",
            format!(
                "is {:?} but the file is {}: name the file apps/{}.toml",
                raw.app.name,
                file.path.display(),
                raw.app.name
            ),
        );
    }
    let image: Option<ImageRepo> =
        raw.app.image.parse().map_err(|e: crate::names::NameError| bad("app.image", e.to_string())).ok();
    let kind = match raw.app.kind.as_deref() {
        None => None,
        Some("web") => Some(Kind::Web),
        Some("worker") => Some(Kind::Worker),
        Some("pod") => Some(Kind::Pod),
        Some(other) => {
            bad("app.kind", format!("{other:?} is not one of web, worker, pod"));
            None
        }
    };
    let mut routes = Vec::new();
    if let Some(domain) = &raw.routing.domain {
        routes.push(Route {
            hostname: domain.to_lowercase(),
            port: raw.routing.port,
            container: raw.routing.container.clone(),
            path_prefix: "/".into(),
            strip_prefix: false,
        });
    }
    for r in &raw.routing.routes {
        routes.push(Route {
            hostname: r.hostname.to_lowercase(),
            port: r.port.or(raw.routing.port),
            container: r.container.clone().or(raw.routing.container.clone()),
            path_prefix: r.path_prefix.clone().unwrap_or_else(|| "/".into()),
            strip_prefix: r.strip_prefix.unwrap_or(false),
        });
    }
    for r in &routes {
        if !crate::names::is_hostname(&r.hostname, true) {
            bad("routing.domain", format!("{:?} is not a hostname", r.hostname));
        }
    }
    let h = &raw.health;
    let health = Health {
        path: h.path.clone(),
        port: h.port,
        host: h.host.clone(),
        interval: dur(&h.interval, "health.interval", &mut bad),
        timeout: dur(&h.timeout, "health.timeout", &mut bad),
        retries: h.retries,
        start_period: dur(&h.start_period, "health.start_period", &mut bad),
        stable_for: dur(&h.stable_for, "health.stable_for", &mut bad),
    };
    let d = &raw.deploy;
    let strategy = match d.strategy.as_deref() {
        None => None,
        Some("blue-green") => Some(Strategy::BlueGreen),
        Some("recreate") => Some(Strategy::Recreate),
        Some(other) => {
            bad("deploy.strategy", format!("{other:?} is not one of blue-green, recreate"));
            None
        }
    };
    let deploy = DeployCfg {
        strategy,
        drain_timeout: dur(&d.drain_timeout, "deploy.drain_timeout", &mut bad).unwrap_or(Duration::from_secs(30)),
        stop_grace: dur(&d.stop_grace, "deploy.stop_grace", &mut bad).unwrap_or(Duration::from_secs(10)),
        timeout: dur(&d.timeout, "deploy.timeout", &mut bad).unwrap_or(Duration::from_secs(600)),
        queue_ttl: dur(&d.queue_ttl, "deploy.queue_ttl", &mut bad).unwrap_or(Duration::from_secs(3600)),
    };
    let memory = raw
        .resources
        .memory
        .as_ref()
        .and_then(|m| size::parse(m).map_err(|e| bad("resources.memory", e.to_string())).ok());
    let nano_cpus = raw.resources.cpus.as_ref().and_then(|c| {
        let text = match c {
            toml::Value::String(s) => s.clone(),
            toml::Value::Float(f) => f.to_string(),
            toml::Value::Integer(i) => i.to_string(),
            other => other.to_string(),
        };
        match text.parse::<f64>() {
            Ok(v) if v > 0.0 => Some((v * 1e9).round() as u64),
            _ => {
                bad("resources.cpus", format!("{text:?} is not a number greater than 0, e.g. \"1.0\""));
                None
            }
        }
    });
    let hold_timeout =
        dur(&raw.routing.hold_timeout, "routing.hold_timeout", &mut bad).unwrap_or(Duration::from_secs(30));
    if problems.len() > before {
        return None;
    }
    Some(AppConfig {
        name: name?,
        image: image?,
        kind,
        secret: raw.app.secret.clone().filter(|s| !s.is_empty()).map(Secret),
        init: raw.app.init.unwrap_or(false),
        routes,
        hold_timeout,
        health,
        deploy,
        env: raw.env.clone(),
        env_file: raw.env_file.path.clone().map(PathBuf::from),
        resources: Resources { memory, nano_cpus, pids: raw.resources.pids },
        network: raw.network.name.clone().unwrap_or_else(|| "slip".into()),
        volumes: raw
            .volumes
            .iter()
            .map(|v| Volume {
                host_path: PathBuf::from(&v.host_path),
                mount_path: v.mount_path.clone(),
                read_only: v.read_only.unwrap_or(false),
            })
            .collect(),
    })
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawDaemon {
    server: RawServer,
    runtime: RawRuntime,
    auth: RawAuth,
    registry: RawRegistry,
    caddy: RawCaddy,
    storage: RawStorage,
    log: RawLog,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawServer {
    listen: Option<String>,
    public_domain: Option<String>,
    public_api: Option<String>,
    trusted_proxies: Option<Vec<String>>,
    shutdown_timeout: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawRuntime {
    backend: Option<String>,
    socket: Option<String>,
    port_range: Option<String>,
    min_free_disk: Option<String>,
    max_concurrent_deploys: Option<u32>,
    log_max_size: Option<String>,
    log_max_files: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawAuth {
    secret: Option<String>,
    admin_token: Option<String>,
    metrics_token: Option<String>,
    require_timestamp: Option<bool>,
    max_skew: Option<String>,
    max_failures: Option<u32>,
    failure_window: Option<String>,
    public_status: Option<bool>,
    public_metrics: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawRegistry {
    ghcr_token: Option<String>,
    ghcr_username: Option<String>,
    auth: Vec<RawRegistryAuth>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRegistryAuth {
    host: String,
    username: String,
    password: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawCaddy {
    admin_api: Option<String>,
    server: Option<String>,
    listen: Option<Vec<String>>,
    tls: Option<RawTls>,
    stream_close_delay: Option<String>,
    reconcile_interval: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RawTls {
    Mode(String),
    Table(RawTlsTable),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTlsTable {
    mode: Option<String>,
    email: Option<String>,
    staging: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawStorage {
    path: Option<String>,
    volume_roots: Option<Vec<String>>,
    history_retention: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawLog {
    level: Option<String>,
    format: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawApp {
    app: RawAppTable,
    #[serde(default)]
    routing: RawRouting,
    #[serde(default)]
    health: RawHealth,
    #[serde(default)]
    deploy: RawDeploy,
    #[serde(default)]
    env: BTreeMap<String, String>,
    #[serde(default)]
    env_file: RawEnvFile,
    #[serde(default)]
    resources: RawResources,
    #[serde(default)]
    network: RawNetwork,
    #[serde(default)]
    volumes: Vec<RawVolume>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAppTable {
    name: String,
    image: String,
    kind: Option<String>,
    secret: Option<String>,
    init: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawRouting {
    domain: Option<String>,
    port: Option<u16>,
    container: Option<String>,
    hold_timeout: Option<String>,
    routes: Vec<RawRoute>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRoute {
    hostname: String,
    port: Option<u16>,
    container: Option<String>,
    path_prefix: Option<String>,
    strip_prefix: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawHealth {
    path: Option<String>,
    port: Option<u16>,
    host: Option<String>,
    interval: Option<String>,
    timeout: Option<String>,
    retries: Option<u32>,
    start_period: Option<String>,
    stable_for: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawDeploy {
    strategy: Option<String>,
    drain_timeout: Option<String>,
    stop_grace: Option<String>,
    timeout: Option<String>,
    queue_ttl: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawEnvFile {
    path: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawResources {
    memory: Option<String>,
    cpus: Option<toml::Value>,
    pids: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawNetwork {
    name: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawVolume {
    host_path: String,
    mount_path: String,
    read_only: Option<bool>,
}
