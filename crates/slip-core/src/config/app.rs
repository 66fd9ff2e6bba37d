//! `apps/<name>.toml` (SPEC §4): one app's validated settings and stage two of reading them.
//!
//! Rules that need only this file and `slip.toml` (the file name, volume roots, the overlap rule, pods on
//! Docker) are checked here, at the position of the offending value. Rules that compare apps with each
//! other (hostnames, Caddy ids) are in `rules`. Values the deploy layer merges with the repo config
//! (kind, manifest, route port and container, each `health.*` field, resources) stay `Option`s: `None`
//! means "not in the server file", never "the default".

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Deref;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use super::reader::{At, Keys, Reader, Tbl, Val};
use super::secret::Secret;
use super::server::{self, Backend, Daemon, check_absolute, hostname, memory};
use super::vocabulary;
use crate::defaults;
use crate::deploy::Strategy;
use crate::names::{AppName, ImageRepo, Tag, is_dns_label, is_secret_key};

vocabulary! {
    /// What an app is (SPEC §4.1).
    Kind {
        /// Routed HTTP, one container.
        Web = "web",
        /// No routes, one container.
        Worker = "worker",
        /// Several containers run by Podman `kube play`.
        Pod = "pod",
    }
}

vocabulary! {
    /// `[[volumes]].preview`: what previews get of a volume.
    VolumePreview {
        /// An empty private directory per preview.
        Isolated = "isolated",
        /// A read-only mount of the production directory.
        Readonly = "readonly",
        /// Nothing.
        None = "none",
    }
}

const STRATEGIES: &[(&str, Strategy)] = &[("blue-green", Strategy::BlueGreen), ("recreate", Strategy::Recreate)];

/// One app, as its server file says.
#[derive(Debug, Clone)]
pub struct AppConfig {
    /// The name; equals the file stem.
    pub name: AppName,
    /// The app's image repository (normalised, no tag).
    pub image: ImageRepo,
    /// `app.kind` when written; see [`AppConfig::kind`].
    pub kind: Option<Kind>,
    /// Per-app app key.
    pub secret: Option<Secret>,
    /// Extra repositories webhook `images` overrides may use.
    pub allowed_images: Vec<ImagePattern>,
    /// Pod manifest path inside the image, when written.
    pub manifest: Option<String>,
    /// Run an init process as PID 1.
    pub init: bool,
    /// Allow privileged settings in a pod manifest.
    pub allow_privileged: bool,
    /// Routes in order: the `routing.domain` shorthand first (route 0), then `[[routing.routes]]`.
    pub routes: Vec<Route>,
    /// How long Caddy holds a request while no upstream answers.
    pub hold_timeout: Duration,
    /// `[health]` as written.
    pub health: Health,
    /// `[health.containers.<name>]` as written.
    pub health_containers: BTreeMap<String, Health>,
    /// `[deploy]`.
    pub deploy: DeployCfg,
    /// `[env]`.
    pub env: EnvMap,
    /// `env_file.path`.
    pub env_file: Option<PathBuf>,
    /// `[resources]`.
    pub resources: Resources,
    /// `network.name`.
    pub network: String,
    /// `[[volumes]]`.
    pub volumes: Vec<Volume>,
    /// `[containers.<name>]` overrides for pods.
    pub containers: BTreeMap<String, ContainerOverride>,
    /// `[preview]`.
    pub preview: AppPreview,
}

impl AppConfig {
    /// `app.kind` when written, else `web` when a route is configured, else `worker` (SPEC §4.1). The repo
    /// config can still say `pod` at deploy time; that merge is the deploy layer's.
    pub fn kind(&self) -> Kind {
        self.kind.unwrap_or(if self.routes.is_empty() { Kind::Worker } else { Kind::Web })
    }

    /// `deploy.strategy` when written, else `recreate` for workers and apps with a writable volume, else
    /// `blue-green`.
    pub fn strategy(&self) -> Strategy {
        self.deploy.strategy.unwrap_or(if self.kind() == Kind::Worker || self.has_writable_volume() {
            Strategy::Recreate
        } else {
            Strategy::BlueGreen
        })
    }

    /// True when a `[[volumes]]` entry is writable.
    pub fn has_writable_volume(&self) -> bool {
        self.volumes.iter().any(|v| !v.read_only)
    }

    /// The Caddy `@id` of each route, in route order (SPEC §9.4).
    pub fn route_ids(&self) -> Vec<String> {
        (0..self.routes.len()).map(|n| route_id(&self.name, n)).collect()
    }
}

/// The Caddy `@id` of route `n` of `app`: `slip-<app>` for route 0, `slip-<app>-<n>` after.
pub fn route_id(app: &AppName, n: usize) -> String {
    if n == 0 { format!("slip-{app}") } else { format!("slip-{app}-{n}") }
}

/// One route: a hostname (and path prefix) sent to a container port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// Lower-case hostname, possibly `*.`-prefixed.
    pub hostname: String,
    /// Container port when the server file gives one (route, else `routing.port`).
    pub port: Option<u16>,
    /// Pod container when the server file gives one (route, else `routing.container`).
    pub container: Option<String>,
    /// `/` or a prefix such as `/api` (no trailing slash).
    pub path_prefix: String,
    /// Remove the prefix before proxying.
    pub strip_prefix: bool,
}

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

/// `[deploy]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeployCfg {
    /// `deploy.strategy` when written; see [`AppConfig::strategy`].
    pub strategy: Option<Strategy>,
    /// Allow blue-green with writable volumes.
    pub allow_overlap: bool,
    /// Longest wait for the old instance's in-flight requests.
    pub drain_timeout: Duration,
    /// Time between SIGTERM and SIGKILL.
    pub stop_grace: Duration,
    /// Bound on pulling → switching.
    pub timeout: Duration,
    /// Watch window after the switch; zero is off.
    pub watch: Duration,
    /// Releases whose images are kept (≥ 2).
    pub keep_images: u32,
    /// A queued deploy older than this fails with `expired`.
    pub queue_ttl: Duration,
}

/// Container environment (`[env]`, `[containers.<name>].env`). Derefs to the map; `Debug` shows keys only,
/// because values are often interpolated secrets.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct EnvMap(pub BTreeMap<String, String>);

impl Deref for EnvMap {
    type Target = BTreeMap<String, String>;
    fn deref(&self) -> &BTreeMap<String, String> {
        &self.0
    }
}

impl fmt::Debug for EnvMap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.0.keys().map(|k| (k, "…"))).finish()
    }
}

/// `[resources]`: limits when written, else none (the repo may supply them).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Resources {
    /// Memory limit in bytes (≥ 6 MiB).
    pub memory: Option<u64>,
    /// CPU limit in billionths of a CPU (`cpus = "1.5"` → 1 500 000 000).
    pub nano_cpus: Option<u64>,
    /// PID limit (≥ 1).
    pub pids: Option<i64>,
}

/// One `[[volumes]]` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Volume {
    /// Host directory: absolute, no `..`, under a `storage.volume_roots` entry.
    pub host_path: PathBuf,
    /// Mount point in the container: absolute, not `/`.
    pub mount_path: String,
    /// Mounted read-only.
    pub read_only: bool,
    /// Pods: the containers that mount it; `None` means all.
    pub containers: Option<Vec<String>>,
    /// `chown` applied when slip creates the directory.
    pub owner: Option<Owner>,
    /// What previews get.
    pub preview: VolumePreview,
}

/// `uid:gid` for a volume directory slip creates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Owner {
    /// User id.
    pub uid: u32,
    /// Group id.
    pub gid: u32,
}

/// `[containers.<name>]`: per-container overrides in pods (SPEC §14.3).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContainerOverride {
    /// A pinned image (`redis:7.2`) replacing the manifest's.
    pub image: Option<PinnedImage>,
    /// Extra environment for this container.
    pub env: EnvMap,
    /// Secret keys this container receives; `None` means the §11.3 default.
    pub secrets: Option<Vec<String>>,
}

/// An image reference with its tag or digest (`docker.io/library/redis:7.2`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PinnedImage {
    /// The repository, normalised.
    pub repo: ImageRepo,
    /// The tag or digest.
    pub tag: Tag,
}

impl fmt::Display for PinnedImage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.repo.with_tag(&self.tag))
    }
}

impl FromStr for PinnedImage {
    type Err = String;
    fn from_str(s: &str) -> Result<PinnedImage, String> {
        let (repo, tag) = match s.split_once('@') {
            Some((repo, digest)) => (repo, Some(digest)),
            None => match s.rsplit_once(':') {
                Some((repo, tag)) if !tag.contains('/') => (repo, Some(tag)),
                _ => (s, None),
            },
        };
        let repo: ImageRepo = repo.parse().map_err(|e: crate::names::NameError| format!("is invalid: {}", e.rule))?;
        let tag = tag.ok_or("has no tag: pin one, e.g. redis:7.2")?;
        let tag: Tag = tag.parse().map_err(|e: crate::names::NameError| format!("has an invalid tag: {}", e.rule))?;
        Ok(PinnedImage { repo, tag })
    }
}

/// An `app.allowed_images` entry: a repository where `*` matches any run of characters except `/`,
/// normalised like [`ImageRepo`] (`ghcr.io/you/*`, `redis` → `docker.io/library/redis`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImagePattern(String);

impl ImagePattern {
    /// True when `repo` matches.
    pub fn matches(&self, repo: &ImageRepo) -> bool {
        glob(self.0.as_bytes(), repo.to_string().as_bytes())
    }

    /// The normalised pattern.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ImagePattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for ImagePattern {
    type Err = String;
    fn from_str(s: &str) -> Result<ImagePattern, String> {
        // Validate and normalise as a repository with every `*` standing in for a plain segment character.
        const MARK: &str = "x0star0x";
        if s.contains(MARK) {
            return Err("is not a repository pattern".into());
        }
        let repo: ImageRepo = s.replace('*', MARK).parse().map_err(|_| {
            "is not a repository pattern: write a repository without tag or digest, where * matches within one \
             path segment"
                .to_owned()
        })?;
        Ok(ImagePattern(repo.to_string().replace(MARK, "*")))
    }
}

/// `[preview]` in an app file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppPreview {
    /// The server-side gate (the repo must also enable previews).
    pub enabled: bool,
    /// Per-app preview base domain; else the server's `preview.domain`.
    pub domain: Option<String>,
    /// Per-app preview cap; else the server's `max_per_app`.
    pub max: Option<u32>,
    /// Per-app default TTL; else the server's `default_ttl`.
    pub default_ttl: Option<Duration>,
    /// Also inject app-scope secrets into previews.
    pub inherit_secrets: bool,
}

/// One app read from its file, with positions for the rules across apps.
pub(crate) struct Draft {
    pub(crate) config: AppConfig,
    pub(crate) file: PathBuf,
    /// Where each route was written (its hostname).
    pub(crate) route_at: Vec<At>,
    /// Each route's hostname as messages show it: as written, placeholders unresolved.
    pub(crate) route_shown: Vec<String>,
    /// Where values were written, by dotted key.
    pub(crate) locs: BTreeMap<String, At>,
}

/// The top-level sections an app file may carry (SPEC §6.6); the apps API accepts exactly these.
pub const APP_SECTIONS: &[&str] = &[
    "app",
    "routing",
    "health",
    "deploy",
    "env",
    "env_file",
    "resources",
    "network",
    "volumes",
    "containers",
    "preview",
];
const APP: &[&str] = &["name", "image", "kind", "secret", "allowed_images", "manifest", "init", "allow_privileged"];
const ROUTING: &[&str] = &["domain", "port", "container", "hold_timeout", "routes"];
const ROUTE: &[&str] = &["hostname", "port", "container", "path_prefix", "strip_prefix"];
const HEALTH_FIELDS: &[&str] =
    &["path", "port", "host", "interval", "timeout", "retries", "start_period", "stable_for"];
/// The `[health]` fields the repo config may set too: all but `host`, which depends on the server's routes.
pub(crate) const REPO_HEALTH_FIELDS: &[&str] =
    &["path", "port", "interval", "timeout", "retries", "start_period", "stable_for"];
const HEALTH: &[&str] = &[
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
const DEPLOY: &[&str] =
    &["strategy", "allow_overlap", "drain_timeout", "stop_grace", "timeout", "watch", "keep_images", "queue_ttl"];
const VOLUME: &[&str] = &["host_path", "mount_path", "read_only", "containers", "owner", "preview"];
const PREVIEW: &[&str] = &["enabled", "domain", "max", "default_ttl", "inherit_secrets"];

/// Reads one app file. `None` when the app cannot be identified (no valid name or image, or a name that
/// does not match the file); every problem found is in the reader either way.
pub(crate) fn read(r: &mut Reader<'_>, daemon: &Daemon) -> Option<Draft> {
    let doc = r.parse()?;
    let root_hint = |k: &str| match k {
        "name" | "image" | "kind" | "secret" => Some(format!("{k} belongs in the [app] table")),
        "domain" | "port" => Some(format!("{k} belongs in the [routing] table")),
        "apps" => Some("an app file holds one app: a single [app] table".into()),
        _ => None,
    };
    let root = r.root(&doc, Keys { valid: APP_SECTIONS, hint: &root_hint });

    let app_t = r.table(&root, "app", Keys::of(APP));
    if app_t.is_none() && !r.has(&root, "app") {
        let stem = stem(r);
        r.problem(
            None,
            "missing the [app] table".into(),
            Some(format!("start the file with [app], name = \"{stem}\" and image = \"<repository>\"")),
        );
    }
    let head = app_table(r, app_t.as_ref(), daemon);

    let routing = r.table(&root, "routing", Keys::of(ROUTING));
    let (routes, route_at, route_shown, hold_timeout) = routing_table(r, routing.as_ref());
    if head.kind == Some(Kind::Worker) && !routes.is_empty() {
        let kind_at = app_t.as_ref().and_then(|t| r.value_at(t, "kind"));
        r.problem(
            kind_at,
            "app.kind: \"worker\" cannot have routes".into(),
            Some("remove the routes, or set kind = \"web\"".into()),
        );
    }

    let health_t = r.table(&root, "health", Keys::of(HEALTH));
    let (health, health_containers) = health_table(r, health_t.as_ref(), Side::Server);

    let deploy_t = r.table(&root, "deploy", Keys::of(DEPLOY));
    let deploy = deploy_table(r, deploy_t.as_ref());

    let env = env_map(r, &root, "env");
    let env_file =
        r.table(&root, "env_file", Keys::of(&["path"])).and_then(|t| server::absolute_path(r, &t, "path")).map(|v| v.v);

    let resources_t = r.table(&root, "resources", Keys::of(&["memory", "cpus", "pids"]));
    let resources = Resources {
        memory: resources_t.as_ref().and_then(|t| memory(r, t, "memory")),
        nano_cpus: resources_t.as_ref().and_then(|t| r.nanos(t, "cpus")).map(|v| v.v),
        pids: resources_t.as_ref().and_then(|t| r.int_in(t, "pids", 1, i64::MAX)).map(|v| v.v),
    };

    let network_t = r.table(&root, "network", Keys::of(&["name"]));
    let network = network_t.as_ref().and_then(|t| network_name(r, t)).unwrap_or_else(|| defaults::NETWORK.to_owned());

    let volumes = volumes(r, &root, daemon);
    let containers = containers(r, &root);
    let preview_t = r.table(&root, "preview", Keys::of(PREVIEW));
    let preview = app_preview(r, preview_t.as_ref(), daemon);

    // The overlap rule (SPEC §4.1): explicit blue-green with a writable volume needs allow_overlap.
    if deploy.strategy == Some(Strategy::BlueGreen) && volumes.iter().any(|v| !v.read_only) && !deploy.allow_overlap {
        let at = deploy_t.as_ref().and_then(|t| r.value_at(t, "strategy"));
        r.problem(
            at,
            "deploy.strategy: \"blue-green\" with a writable volume runs two releases on the same data at once".into(),
            Some(
                "use strategy = \"recreate\" (the default with writable volumes), mount the volume read_only, \
                 or set deploy.allow_overlap = true if the app copes with two writers"
                    .into(),
            ),
        );
    }
    if !containers.is_empty() && head.kind.is_some_and(|k| k != Kind::Pod) {
        let at = r.value_at(&root, "containers");
        r.warn(at, "[containers] only applies to pods; this app's kind is not pod".into(), None);
    }
    if routes.is_empty()
        && let Some(t) = routing.as_ref()
        && r.has(t, "port")
    {
        let at = r.value_at(t, "port");
        r.warn(
            at,
            "routing.port is set but the app has no routes".into(),
            Some("set routing.domain, or use health.port for a worker's probe port".into()),
        );
    }

    let config = AppConfig {
        name: head.name?,
        image: head.image?,
        kind: head.kind,
        secret: head.secret,
        allowed_images: head.allowed_images,
        manifest: head.manifest,
        init: head.init,
        allow_privileged: head.allow_privileged,
        routes,
        hold_timeout,
        health,
        health_containers,
        deploy,
        env,
        env_file,
        resources,
        network,
        volumes,
        containers,
        preview,
    };
    Some(Draft { config, file: r.path().to_path_buf(), route_at, route_shown, locs: r.locations() })
}

/// What `[app]` says.
struct Head {
    name: Option<AppName>,
    image: Option<ImageRepo>,
    kind: Option<Kind>,
    secret: Option<Secret>,
    allowed_images: Vec<ImagePattern>,
    manifest: Option<String>,
    init: bool,
    allow_privileged: bool,
}

fn app_table(r: &mut Reader<'_>, t: Option<&Tbl<'_>>, daemon: &Daemon) -> Head {
    let stem = stem(r);
    let name = t.and_then(|t| {
        let Some(v) = r.string(t, "name") else {
            if !r.has(t, "name") {
                r.missing(t, "name", Some(format!("name = \"{stem}\" (the file's name without .toml)")));
            }
            return None;
        };
        let name = match v.v.parse::<AppName>() {
            Ok(name) => name,
            Err(e) => {
                r.invalid(&v, format!("is not an app name: {}", e.rule), None);
                return None;
            }
        };
        if name.as_str() != stem {
            let file = r.path().display().to_string();
            let message = format!("app.name {:?} does not match the file name {file}", v.written);
            let hint = format!("rename the file to apps/{name}.toml, or set name = \"{stem}\"");
            r.problem(v.at, message, Some(hint));
            return None;
        }
        Some(name)
    });
    let image = t.and_then(|t| {
        let Some(v) = r.string(t, "image") else {
            if !r.has(t, "image") {
                r.missing(t, "image", Some("image = \"ghcr.io/you/myapp\" (a repository, no tag)".into()));
            }
            return None;
        };
        match v.v.parse::<ImageRepo>() {
            Ok(repo) => Some(repo),
            Err(e) => {
                r.invalid(&v, format!("is not an image repository: {}", e.rule), None);
                None
            }
        }
    });
    let kind = t.and_then(|t| r.choice(t, "kind", Kind::OPTIONS));
    if let Some(k) = &kind
        && k.v == Kind::Pod
        && daemon.runtime.backend == Backend::Docker
    {
        let hint = format!(
            "pods need Podman: set runtime.backend = \"podman\" or \"auto\" ({})",
            daemon.cite("runtime.backend")
        );
        r.invalid(k, "needs the Podman backend, but runtime.backend is \"docker\"", Some(hint));
    }
    let allowed_images = t
        .and_then(|t| r.strings(t, "allowed_images"))
        .unwrap_or_default()
        .into_iter()
        .filter_map(|v| match v.v.parse::<ImagePattern>() {
            Ok(p) => Some(p),
            Err(why) => {
                r.invalid(&v, why, Some("e.g. ghcr.io/you/* or redis".into()));
                None
            }
        })
        .collect();
    let manifest = t.and_then(|t| r.string(t, "manifest")).and_then(|v| match check_absolute(&v.v) {
        Ok(_) => Some(v.v),
        Err(why) => {
            r.invalid(&v, format!("{why} inside the image, e.g. /slip/pod.yaml"), None);
            None
        }
    });
    Head {
        name,
        image,
        kind: kind.map(|v| v.v),
        secret: t.and_then(|t| r.secret(t, "secret")),
        allowed_images,
        manifest,
        init: t.and_then(|t| r.boolean(t, "init")).unwrap_or(false),
        allow_privileged: t.and_then(|t| r.boolean(t, "allow_privileged")).unwrap_or(false),
    }
}

fn routing_table(r: &mut Reader<'_>, t: Option<&Tbl<'_>>) -> (Vec<Route>, Vec<At>, Vec<String>, Duration) {
    let Some(t) = t else { return (Vec::new(), Vec::new(), Vec::new(), defaults::HOLD_TIMEOUT) };
    let port = r.int_in::<u16>(t, "port", 1, 65535).map(|v| v.v);
    let container = container_name(r, t, "container");
    let hold_timeout = r.positive_duration(t, "hold_timeout").map_or(defaults::HOLD_TIMEOUT, |v| v.v);
    let mut routes = Vec::new();
    let mut route_at = Vec::new();
    let mut route_shown = Vec::new();
    if let Some(domain) = hostname(r, t, "domain", true) {
        route_at.push(r.locate(domain.at));
        route_shown.push(shown_host(&domain));
        routes.push(Route {
            hostname: domain.v,
            port,
            container: container.clone(),
            path_prefix: defaults::PATH_PREFIX.to_owned(),
            strip_prefix: false,
        });
    }
    let mut seen: Vec<(String, String, At)> =
        routes.iter().map(|r| (r.hostname.clone(), r.path_prefix.clone(), route_at[0])).collect();
    for e in r.tables(t, "routes", Keys::of(ROUTE)) {
        let host = hostname(r, &e, "hostname", true);
        if host.is_none() && !r.has(&e, "hostname") {
            r.missing(&e, "hostname", None);
        }
        let route_port = r.int_in::<u16>(&e, "port", 1, 65535).map(|v| v.v);
        let route_container = container_name(r, &e, "container");
        let prefix = r.string(&e, "path_prefix").and_then(|v| match check_prefix(&v.v) {
            Ok(()) => Some(v),
            Err(why) => {
                r.invalid(&v, why, None);
                None
            }
        });
        let strip = r.boolean(&e, "strip_prefix").unwrap_or(false);
        let path_prefix = prefix.as_ref().map_or_else(|| defaults::PATH_PREFIX.to_owned(), |v| v.v.clone());
        if strip && path_prefix == "/" {
            let at = r.value_at(&e, "strip_prefix");
            r.problem(
                at,
                format!("{}: strip_prefix needs a path_prefix other than \"/\"", label_of(&e)),
                Some("set path_prefix, e.g. \"/api\", or remove strip_prefix".into()),
            );
        }
        let Some(host) = host else { continue };
        let at = r.locate(host.at);
        if let Some((_, _, first)) = seen.iter().find(|(h, p, _)| *h == host.v && *p == path_prefix) {
            let line = first.0.map(|l| format!(" (line {l})")).unwrap_or_default();
            r.invalid(&host, format!("with path prefix {path_prefix:?} is already a route of this app{line}"), None);
            continue;
        }
        seen.push((host.v.clone(), path_prefix.clone(), at));
        route_at.push(at);
        route_shown.push(shown_host(&host));
        routes.push(Route {
            hostname: host.v,
            port: route_port.or(port),
            container: route_container.or_else(|| container.clone()),
            path_prefix,
            strip_prefix: strip,
        });
    }
    (routes, route_at, route_shown, hold_timeout)
}

/// A hostname for messages: the value when written literally, the text as written when interpolated.
fn shown_host(v: &Val<String>) -> String {
    if v.interpolated { format!("{:?}", v.written) } else { v.v.clone() }
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

fn deploy_table(r: &mut Reader<'_>, t: Option<&Tbl<'_>>) -> DeployCfg {
    DeployCfg {
        strategy: t.and_then(|t| r.choice(t, "strategy", STRATEGIES)).map(|v| v.v),
        allow_overlap: t.and_then(|t| r.boolean(t, "allow_overlap")).unwrap_or(false),
        drain_timeout: t.and_then(|t| r.duration(t, "drain_timeout")).map_or(defaults::DRAIN_TIMEOUT, |v| v.v),
        stop_grace: t.and_then(|t| r.duration(t, "stop_grace")).map_or(defaults::STOP_GRACE, |v| v.v),
        timeout: t.and_then(|t| r.positive_duration(t, "timeout")).map_or(defaults::DEPLOY_TIMEOUT, |v| v.v),
        watch: t.and_then(|t| r.duration(t, "watch")).map_or(defaults::WATCH, |v| v.v),
        keep_images: t.and_then(|t| r.int_in(t, "keep_images", 2, 1000)).map_or(defaults::KEEP_IMAGES, |v| v.v),
        queue_ttl: t.and_then(|t| r.positive_duration(t, "queue_ttl")).map_or(defaults::QUEUE_TTL, |v| v.v),
    }
}

fn env_map(r: &mut Reader<'_>, t: &Tbl<'_>, key: &str) -> EnvMap {
    let mut map = BTreeMap::new();
    for (k, v) in r.string_map(t, key).unwrap_or_default() {
        if k.v.starts_with("SLIP_") {
            r.problem(
                k.at,
                format!("{}: keys starting with SLIP_ are reserved for slip", k.key),
                Some("slip sets SLIP_APP, SLIP_TAG, SLIP_DEPLOY_ID and SLIP_KIND itself; rename the variable".into()),
            );
            continue;
        }
        if k.v.is_empty() || k.v.contains('=') || k.v.chars().any(|c| c.is_control() || c.is_whitespace()) {
            r.problem(k.at, format!("{}: not a valid environment variable name", k.key), None);
            continue;
        }
        if let Err(e) = crate::env_value::check(&v.v) {
            r.problem(v.at, format!("{}: the value {e}", k.key), Some("write the character out, or remove it".into()));
            continue;
        }
        map.insert(k.v, v.v);
    }
    EnvMap(map)
}

fn network_name(r: &mut Reader<'_>, t: &Tbl<'_>) -> Option<String> {
    let v = r.string(t, "name")?;
    if matches!(v.v.as_str(), "host" | "none") || v.v.starts_with("container:") {
        let hint = "use a bridge network such as \"slip\" (the default); slip creates it when missing";
        r.invalid(&v, "is not allowed: slip only attaches apps to their own networks", Some(hint.into()));
        return None;
    }
    let b = v.v.as_bytes();
    let ok = !b.is_empty()
        && b.len() <= 128
        && b[0].is_ascii_alphanumeric()
        && b.iter().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'));
    if !ok {
        r.invalid(
            &v,
            "is not a network name: use letters, digits, '_', '.' and '-', starting with a letter or digit",
            None,
        );
        return None;
    }
    Some(v.v)
}

fn volumes(r: &mut Reader<'_>, root: &Tbl<'_>, daemon: &Daemon) -> Vec<Volume> {
    let mut out: Vec<Volume> = Vec::new();
    for e in r.tables(root, "volumes", Keys::of(VOLUME)) {
        let host_path = r.string(&e, "host_path").and_then(|v| match check_absolute(&v.v) {
            Ok(p) if !daemon.parsed || daemon.storage.volume_roots.iter().any(|root| p.starts_with(root)) => Some(p),
            Ok(_) => {
                // Roots written in slip.toml may be interpolated: cite them rather than print them.
                let hint = if daemon.locs.contains_key("storage.volume_roots") {
                    format!("put it under a storage.volume_roots entry ({})", daemon.cite("storage.volume_roots"))
                } else {
                    let roots: Vec<String> =
                        daemon.storage.volume_roots.iter().map(|p| p.display().to_string()).collect();
                    format!("put it under {} (the default volume root) or set storage.volume_roots", roots.join(" or "))
                };
                r.invalid(&v, "is not under storage.volume_roots", Some(hint));
                None
            }
            Err(why) => {
                r.invalid(&v, why, None);
                None
            }
        });
        if host_path.is_none() && !r.has(&e, "host_path") {
            r.missing(&e, "host_path", None);
        }
        let mount_path = r.string(&e, "mount_path").and_then(|v| match check_absolute(&v.v) {
            Ok(p) if p == std::path::Path::new("/") => {
                r.invalid(&v, "cannot be the container's root directory", None);
                None
            }
            Ok(_) => {
                if out.iter().any(|o| o.mount_path == v.v) {
                    r.invalid(&v, "is mounted twice: each [[volumes]] entry needs its own mount_path", None);
                    return None;
                }
                Some(v.v)
            }
            Err(why) => {
                r.invalid(&v, why, None);
                None
            }
        });
        if mount_path.is_none() && !r.has(&e, "mount_path") {
            r.missing(&e, "mount_path", None);
        }
        let read_only = r.boolean(&e, "read_only").unwrap_or(false);
        let containers = r.strings(&e, "containers").map(|list| {
            list.into_iter()
                .filter_map(|v| {
                    if is_dns_label(&v.v) {
                        Some(v.v)
                    } else {
                        r.invalid(&v, "is not a container name (a DNS label)", None);
                        None
                    }
                })
                .collect()
        });
        let owner = r.string(&e, "owner").and_then(|v| {
            let parsed =
                v.v.split_once(':').and_then(|(u, g)| Some(Owner { uid: u.parse().ok()?, gid: g.parse().ok()? }));
            if parsed.is_none() {
                r.invalid(&v, "is not \"uid:gid\" with numeric ids, e.g. \"1000:1000\"", None);
            }
            parsed
        });
        let preview = r.choice(&e, "preview", VolumePreview::OPTIONS).map_or(VolumePreview::Isolated, |v| v.v);
        if let (Some(host_path), Some(mount_path)) = (host_path, mount_path) {
            out.push(Volume { host_path, mount_path, read_only, containers, owner, preview });
        }
    }
    out
}

fn containers(r: &mut Reader<'_>, root: &Tbl<'_>) -> BTreeMap<String, ContainerOverride> {
    let mut out = BTreeMap::new();
    let Some(t) = r.any_table(root, "containers") else { return out };
    for (name, at, item) in r.entries(&t) {
        if !is_dns_label(&name) {
            r.problem(
                at,
                format!("containers: {name:?} is not a container name"),
                Some("container names are DNS labels: lowercase letters, digits and '-'".into()),
            );
            continue;
        }
        let Some(sub) = r.entry_table(&t, &name, item, Keys::of(&["image", "env", "secrets"])) else { continue };
        let image = r.string(&sub, "image").and_then(|v| match v.v.parse::<PinnedImage>() {
            Ok(image) => Some(image),
            Err(why) => {
                r.invalid(&v, why, None);
                None
            }
        });
        let env = env_map(r, &sub, "env");
        let secrets = r.strings(&sub, "secrets").map(|list| {
            list.into_iter()
                .filter_map(|v| {
                    if is_secret_key(&v.v) {
                        Some(v.v)
                    } else {
                        r.invalid(
                            &v,
                            "is not a secret key: use letters, digits and '_', not starting with a digit",
                            None,
                        );
                        None
                    }
                })
                .collect()
        });
        out.insert(name, ContainerOverride { image, env, secrets });
    }
    out
}

fn app_preview(r: &mut Reader<'_>, t: Option<&Tbl<'_>>, daemon: &Daemon) -> AppPreview {
    let default_ttl = t.and_then(|t| r.positive_duration(t, "default_ttl"));
    if let Some(v) = &default_ttl
        && daemon.parsed
        && v.v > daemon.preview.max_ttl
    {
        let message = if daemon.locs.contains_key("preview.max_ttl") {
            format!("is longer than the server's preview.max_ttl ({})", daemon.cite("preview.max_ttl"))
        } else {
            let max = crate::duration::format(daemon.preview.max_ttl);
            format!("is longer than the server's preview.max_ttl (default {max})")
        };
        r.invalid(v, message, Some("lower it, or raise preview.max_ttl in slip.toml".into()));
    }
    AppPreview {
        enabled: t.and_then(|t| r.boolean(t, "enabled")).unwrap_or(true),
        domain: t.and_then(|t| hostname(r, t, "domain", false)).map(|v| v.v),
        max: t.and_then(|t| r.int_in(t, "max", 1, i64::from(u32::MAX))).map(|v| v.v),
        default_ttl: default_ttl.map(|v| v.v),
        inherit_secrets: t.and_then(|t| r.boolean(t, "inherit_secrets")).unwrap_or(false),
    }
}

/// A container name (a DNS label), as `routing.container` and `health.container` hold.
pub(crate) fn container_name(r: &mut Reader<'_>, t: &Tbl<'_>, key: &str) -> Option<String> {
    let v = r.string(t, key)?;
    if is_dns_label(&v.v) {
        Some(v.v)
    } else {
        r.invalid(&v, "is not a container name: use lowercase letters, digits and '-' (a DNS label)", None);
        None
    }
}

/// A route prefix: `/`, or `/segment[/segment…]` with no trailing slash, wildcards, query or fragment.
fn check_prefix(s: &str) -> Result<(), &'static str> {
    if !s.starts_with('/') {
        return Err("must start with /");
    }
    if s.len() > 1 && s.ends_with('/') {
        return Err("must not end with / (it matches the prefix and everything below it)");
    }
    if s.contains(|c: char| c.is_whitespace() || c.is_control() || matches!(c, '*' | '?' | '#' | '{' | '}' | '%'))
        || s.split('/').any(|seg| seg == "..")
    {
        return Err("may only contain a plain path (no spaces, *, ?, #, braces, % or ..)");
    }
    Ok(())
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

fn stem(r: &Reader<'_>) -> String {
    r.path().file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default()
}

fn label_of(t: &Tbl<'_>) -> String {
    Reader::key_path(t, "").trim_end_matches('.').to_owned()
}

/// `*` matches any run of bytes except `/`.
fn glob(pattern: &[u8], text: &[u8]) -> bool {
    match pattern.split_first() {
        None => text.is_empty(),
        Some((b'*', rest)) => {
            let mut i = 0;
            loop {
                if glob(rest, &text[i..]) {
                    return true;
                }
                if i == text.len() || text[i] == b'/' {
                    return false;
                }
                i += 1;
            }
        }
        Some((c, rest)) => text.split_first().is_some_and(|(t, text_rest)| t == c && glob(rest, text_rest)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_patterns_normalise_and_match_within_segments() {
        let p: ImagePattern = "ghcr.io/you/*".parse().unwrap();
        assert_eq!(p.as_str(), "ghcr.io/you/*");
        assert!(p.matches(&"ghcr.io/you/dagster".parse().unwrap()));
        assert!(!p.matches(&"ghcr.io/you/a/b".parse().unwrap()));
        assert!(!p.matches(&"ghcr.io/other/x".parse().unwrap()));
        let p: ImagePattern = "redis".parse().unwrap();
        assert_eq!(p.as_str(), "docker.io/library/redis");
        assert!(p.matches(&"redis".parse().unwrap()));
        let p: ImagePattern = "you/app-*".parse().unwrap();
        assert!(p.matches(&"docker.io/you/app-web".parse().unwrap()));
        assert!("ghcr.io/you/x:v1".parse::<ImagePattern>().is_err());
    }

    #[test]
    fn pinned_images_need_a_tag() {
        let i: PinnedImage = "redis:7.2".parse().unwrap();
        assert_eq!(i.to_string(), "docker.io/library/redis:7.2");
        let i: PinnedImage = "127.0.0.1:5000/cache:1".parse().unwrap();
        assert_eq!(i.to_string(), "127.0.0.1:5000/cache:1");
        let digest = format!("ghcr.io/x/y@sha256:{}", "a".repeat(64));
        assert_eq!(digest.parse::<PinnedImage>().unwrap().to_string(), digest);
        assert_eq!("redis".parse::<PinnedImage>().unwrap_err(), "has no tag: pin one, e.g. redis:7.2");
        assert!("127.0.0.1:5000/cache".parse::<PinnedImage>().is_err());
    }

    #[test]
    fn prefixes() {
        assert!(check_prefix("/").is_ok());
        assert!(check_prefix("/api/v1").is_ok());
        for bad in ["api", "/api/", "/a b", "/a*", "/../x"] {
            assert!(check_prefix(bad).is_err(), "{bad}");
        }
    }
}
