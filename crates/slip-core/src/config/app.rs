//! `apps/<name>.toml` (SPEC §4): one app's validated settings and stage two of reading them.
//!
//! Rules that need only this file and `slip.toml` (the file name, volume roots, the overlap rule, pods on
//! Docker) are checked here, at the position of the offending value. Rules that compare apps with each
//! other (hostnames, Caddy ids) are in `rules`. Values the deploy layer merges with the repo config
//! (kind, manifest, route port and container, each `health.*` field, resources) stay `Option`s: `None`
//! means "not in the server file", never "the default".

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use super::reader::{At, Keys, Reader, Tbl};
use super::secret::Secret;
use super::server::{self, Backend, Daemon, check_absolute, hostname, memory};
use super::vocabulary;
use crate::defaults;
use crate::deploy::Strategy;
use crate::names::{AppName, ImageRepo};

// One module per section of the file; each holds its types and the stage-two reader for them.
mod containers;
mod env;
mod health;
mod images;
mod routing;
mod volumes;

pub use containers::ContainerOverride;
pub(crate) use containers::container_name;
use containers::containers;
pub use env::EnvMap;
use env::env_map;
use health::HEALTH;
pub use health::{Health, ResolvedHealth};
pub(crate) use health::{Side, health_table};
pub use images::{ImagePattern, PinnedImage};
use routing::{ROUTING, routing_table};
pub use routing::{Route, route_id};
use volumes::volumes;
pub use volumes::{Owner, Volume, VolumePreview};

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
    /// `[[notifications]]`: this app's deploy notifications (besides the server-wide ones).
    pub notifications: Vec<super::notify::Notification>,
    /// `[github]`: report deploys as GitHub Deployments.
    pub github: Option<super::github::GithubDeployments>,
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
    "notifications",
    "github",
];
const APP: &[&str] = &["name", "image", "kind", "secret", "allowed_images", "manifest", "init", "allow_privileged"];
const DEPLOY: &[&str] =
    &["strategy", "allow_overlap", "drain_timeout", "stop_grace", "timeout", "watch", "keep_images", "queue_ttl"];
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

    let notifications = super::notify::read(r, &root);
    let github = super::github::read(r, &root);
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
        notifications,
        github,
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

fn stem(r: &Reader<'_>) -> String {
    r.path().file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default()
}
