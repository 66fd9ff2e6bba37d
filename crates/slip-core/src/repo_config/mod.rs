//! The repo config (SPEC §5): `/slip/slip.toml` inside the image, which says what the app *is*.
//!
//! Parsed from memory like the server config, with the same walk (`config::reader`) and value rules, but
//! verbatim: no `${VAR}` interpolation, because image content must not read host variables. Unknown keys
//! are warnings at deploy time (an image built for a newer slip still deploys) and problems in
//! `slip validate`; the caller picks with [`UnknownKeys`].
//!
//! This module reads one file. It does not find or read the pod manifest (`crate::pod_manifest` checks
//! that), merge with the server config (the deploy layer's job), or compare `app.name` with the app being
//! deployed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::config::app::{Side, container_name, health_table};
use crate::config::problem::{self, Problem};
use crate::config::reader::{At, Keys, Reader, Tbl};
use crate::config::server::{check_absolute, memory};
use crate::config::{Health, Kind, Resources, SourceFile, UnknownKeys};
use crate::defaults;
use crate::names::AppName;

#[cfg(test)]
mod tests;

/// Where slip reads the repo config inside the image.
pub const IMAGE_PATH: &str = "/slip/slip.toml";

/// The directory of [`IMAGE_PATH`]: relative paths in the repo config are relative to it, and it is the
/// repo's `slip/` directory (`COPY slip/ /slip/`).
pub const IMAGE_DIR: &str = "/slip";

/// The largest repo config slip reads (64 KiB).
pub const MAX_SIZE: usize = 64 * 1024;

/// What the repo config says. Everything is optional (lenient presence); `None` means "not in the file",
/// so the deploy layer can fall back field by field (SPEC §5 merge rules).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RepoConfig {
    /// `app.name`: must equal the app being deployed.
    pub name: Option<AppName>,
    /// `app.kind`, with `container` read as `web`.
    pub kind: Option<Kind>,
    /// `app.manifest` as an absolute path inside the image (a relative path is taken under [`IMAGE_DIR`]).
    pub manifest: Option<String>,
    /// `routing.port`: default container port of the route.
    pub port: Option<u16>,
    /// `routing.container`: default pod container of the route.
    pub container: Option<String>,
    /// `[health]` (never `host`, which is server-only).
    pub health: Health,
    /// `[health.containers.<name>]`.
    pub health_containers: BTreeMap<String, Health>,
    /// `[defaults.resources]` (`memory`, `cpus`).
    pub resources: Resources,
    /// `[preview]`.
    pub preview: RepoPreview,
}

/// `[preview]` in the repo config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoPreview {
    /// Must be `true` before a preview of this image may run.
    pub enabled: bool,
    /// Preview lifetime, capped by the server.
    pub ttl: Option<Duration>,
    /// Preview cap, bounded by the server's.
    pub max: Option<u32>,
    /// `[preview.resources]` requests, capped by the server.
    pub resources: Resources,
    /// `[preview.hooks]`.
    pub hooks: Hooks,
}

impl Default for RepoPreview {
    fn default() -> RepoPreview {
        RepoPreview {
            enabled: false,
            ttl: None,
            max: None,
            resources: Resources::default(),
            hooks: Hooks { migrate: None, seed: None, timeout: defaults::PREVIEW_HOOK_TIMEOUT },
        }
    }
}

/// `[preview.hooks]`: shell commands run in the preview's candidate (SPEC §13.4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hooks {
    /// Runs after every preview deploy.
    pub migrate: Option<String>,
    /// Runs when the preview is first created.
    pub seed: Option<String>,
    /// Bound on each hook.
    pub timeout: Duration,
}

/// One repo config file read: the config (invalid values left out), its problems and warnings, and where
/// each key was written so later checks (the manifest's) can point into this file.
#[derive(Debug, Clone)]
pub struct Read {
    /// What the file says, minus anything invalid.
    pub config: RepoConfig,
    /// Problems, sorted by line and column; empty when the file is valid.
    pub problems: Vec<Problem>,
    /// Warnings, sorted by line and column.
    pub warnings: Vec<Problem>,
    file: PathBuf,
    positions: BTreeMap<String, At>,
}

impl Read {
    /// True when there are no problems.
    pub fn is_valid(&self) -> bool {
        self.problems.is_empty()
    }

    /// The file as shown in messages.
    pub fn file(&self) -> &Path {
        &self.file
    }

    /// Where the dotted `key` (`routing.container`, `health.containers.web`) was written; `(None, None)` when
    /// it was not.
    pub fn position(&self, key: &str) -> (Option<usize>, Option<usize>) {
        self.positions.get(key).copied().unwrap_or((None, None))
    }

    /// A problem (or warning) in this file at `key`.
    pub fn problem_at(&self, key: &str, message: String, hint: Option<String>) -> Problem {
        let (line, column) = self.position(key);
        Problem { file: self.file.clone(), line, column, message, hint }
    }
}

/// Reads the repo config in `file`; unknown keys are reported as `unknown` says. Every problem in the file
/// is collected.
pub fn read(file: &SourceFile, unknown: UnknownKeys) -> Read {
    let mut r = Reader::verbatim(file, unknown);
    let config = if file.text.len() > MAX_SIZE {
        r.problem(
            None,
            format!("the repo config is {} bytes; slip reads at most {MAX_SIZE} (64 KiB)", file.text.len()),
            None,
        );
        RepoConfig::default()
    } else {
        read_document(&mut r)
    };
    let positions = r.locations();
    let Reader { mut problems, mut warnings, .. } = r;
    problem::sort(&mut problems);
    problem::sort(&mut warnings);
    Read { config, problems, warnings, file: file.path.clone(), positions }
}

/// The path of an in-image file below [`IMAGE_DIR`], relative to it (`/slip/pod.yaml` → `pod.yaml`), which is
/// where the file is in the repo's `slip/` directory. `None` for a path elsewhere in the image.
pub fn repo_relative(in_image: &str) -> Option<PathBuf> {
    let rel = Path::new(in_image).strip_prefix(IMAGE_DIR).ok()?;
    (!rel.as_os_str().is_empty()).then(|| rel.to_path_buf())
}

const ROOT: &[&str] = &["app", "routing", "health", "defaults", "preview"];
const APP: &[&str] = &["name", "kind", "manifest"];
const ROUTING: &[&str] = &["port", "container"];
const HEALTH: &[&str] =
    &["path", "port", "container", "interval", "timeout", "retries", "start_period", "stable_for", "containers"];
const RESOURCES: &[&str] = &["memory", "cpus"];
const PREVIEW: &[&str] = &["enabled", "ttl", "max", "resources", "hooks", "database"];
const HOOKS: &[&str] = &["migrate", "seed", "timeout"];

/// The legacy spelling of `app.kind = "web"`.
const LEGACY_WEB: &str = "container";

fn read_document(r: &mut Reader<'_>) -> RepoConfig {
    let Some(doc) = r.parse() else { return RepoConfig::default() };
    let root = r.root(&doc, Keys { valid: ROOT, hint: &root_hint });
    let app = r.table(&root, "app", Keys { valid: APP, hint: &|k| server_only("app", k) });
    let name = app.as_ref().and_then(|t| app_name(r, t));
    let kind = app.as_ref().and_then(|t| kind(r, t));
    let manifest = app.as_ref().and_then(|t| manifest(r, t));

    let routing = r.table(&root, "routing", Keys { valid: ROUTING, hint: &|k| server_only("routing", k) });
    let port = routing.as_ref().and_then(|t| r.int_in::<u16>(t, "port", 1, 65535)).map(|v| v.v);
    let container = routing.as_ref().and_then(|t| container_name(r, t, "container"));

    let health_t = r.table(&root, "health", Keys { valid: HEALTH, hint: &|k| server_only("health", k) });
    let (health, health_containers) = health_table(r, health_t.as_ref(), Side::Repo);
    if let Some(h) = &health_t
        && !health_containers.is_empty()
    {
        note_container_names(r, h);
    }

    let defaults_t = r.table(&root, "defaults", Keys::of(&["resources"]));
    let resources = resources(r, defaults_t.as_ref());
    let preview = preview(r, &root);

    let config = RepoConfig { name, kind, manifest, port, container, health, health_containers, resources, preview };
    kind_warnings(r, &config, app.as_ref(), routing.as_ref(), health_t.as_ref());
    config
}

fn root_hint(key: &str) -> Option<String> {
    match key {
        "name" | "kind" | "manifest" => Some(format!("{key} belongs in the [app] table")),
        "port" | "container" => Some(format!("{key} belongs in the [routing] table")),
        "resources" => Some("resource defaults go in [defaults.resources]".into()),
        "image" | "domain" | "env" | "env_file" | "deploy" | "volumes" | "network" | "containers" | "secrets" => {
            Some(format!("{key} is server config: set it in the app's file in /etc/slip/apps/"))
        }
        "apps" => Some("the repo config describes one app: a single [app] table".into()),
        _ => None,
    }
}

/// A hint for keys that exist only in the server's app file.
fn server_only(table: &str, key: &str) -> Option<String> {
    let server = matches!(
        (table, key),
        ("app", "image" | "secret" | "allowed_images" | "init" | "allow_privileged")
            | ("routing", "domain" | "routes" | "hold_timeout")
            | ("health", "host")
    );
    server.then(|| format!("{table}.{key} is server config: set it in the app's file in /etc/slip/apps/"))
}

fn app_name(r: &mut Reader<'_>, t: &Tbl<'_>) -> Option<AppName> {
    let v = r.string(t, "name")?;
    match v.v.parse::<AppName>() {
        Ok(name) => Some(name),
        Err(e) => {
            r.invalid(&v, format!("is not an app name: {}", e.rule), None);
            None
        }
    }
}

fn kind(r: &mut Reader<'_>, t: &Tbl<'_>) -> Option<Kind> {
    let v = r.string(t, "kind")?;
    let lower = v.v.to_ascii_lowercase();
    let canonical = if lower == LEGACY_WEB { Kind::Web.as_str().to_owned() } else { lower };
    r.choose(v.map(|_| canonical), Kind::OPTIONS).map(|v| v.v)
}

fn manifest(r: &mut Reader<'_>, t: &Tbl<'_>) -> Option<String> {
    let v = r.string(t, "manifest")?;
    let in_image = if v.v.starts_with('/') { v.v.clone() } else { format!("{IMAGE_DIR}/{}", v.v) };
    if v.v.trim().is_empty() || v.v.ends_with('/') {
        r.invalid(&v, "is not a file path: use e.g. \"/slip/pod.yaml\" or \"pod.yaml\" (relative to /slip)", None);
        return None;
    }
    match check_absolute(&in_image) {
        Ok(path) => Some(path.display().to_string()),
        Err(why) => {
            r.invalid(&v, why, None);
            None
        }
    }
}

fn resources(r: &mut Reader<'_>, parent: Option<&Tbl<'_>>) -> Resources {
    let t = parent.and_then(|p| r.table(p, "resources", Keys::of(RESOURCES)));
    Resources {
        memory: t.as_ref().and_then(|t| memory(r, t, "memory")),
        nano_cpus: t.as_ref().and_then(|t| r.nanos(t, "cpus")).map(|v| v.v),
        pids: None,
    }
}

fn preview(r: &mut Reader<'_>, root: &Tbl<'_>) -> RepoPreview {
    let Some(t) = r.table(root, "preview", Keys::of(PREVIEW)) else { return RepoPreview::default() };
    let enabled = r.boolean(&t, "enabled").unwrap_or(false);
    let ttl = r.positive_duration(&t, "ttl").map(|v| v.v);
    let max = r.int_in(&t, "max", 1, i64::from(u32::MAX)).map(|v| v.v);
    let resources = resources(r, Some(&t));
    let hooks_t = r.table(&t, "hooks", Keys::of(HOOKS));
    let hooks = Hooks {
        migrate: hooks_t.as_ref().and_then(|h| command(r, h, "migrate")),
        seed: hooks_t.as_ref().and_then(|h| command(r, h, "seed")),
        timeout: hooks_t
            .as_ref()
            .and_then(|h| r.positive_duration(h, "timeout"))
            .map_or(defaults::PREVIEW_HOOK_TIMEOUT, |v| v.v),
    };
    if r.has(&t, "database") && r.any_table(&t, "database").is_some() {
        let at = r.value_at(&t, "database");
        r.warn(at, "[preview.database] is read and ignored: preview databases are not in this version".into(), None);
    }
    if !enabled && (hooks.migrate.is_some() || hooks.seed.is_some()) {
        let at = hooks_t.as_ref().and_then(|h| h.at);
        r.warn(
            at,
            "preview hooks are set but previews are off: they run only in previews".into(),
            Some("set enabled = true in [preview] to allow previews of this image".into()),
        );
    }
    RepoPreview { enabled, ttl, max, resources, hooks }
}

fn command(r: &mut Reader<'_>, t: &Tbl<'_>, key: &str) -> Option<String> {
    let v = r.string(t, key)?;
    if v.v.trim().is_empty() {
        r.invalid(&v, "is empty: give a shell command, or remove the key", None);
        return None;
    }
    Some(v.v)
}

/// Settings that the file's own `app.kind` makes pointless.
fn kind_warnings(
    r: &mut Reader<'_>,
    config: &RepoConfig,
    app: Option<&Tbl<'_>>,
    routing: Option<&Tbl<'_>>,
    health: Option<&Tbl<'_>>,
) {
    let Some(kind) = config.kind else { return };
    if kind == Kind::Pod {
        return;
    }
    let pod_only = |r: &mut Reader<'_>, t: Option<&Tbl<'_>>, key: &str, shown: &str| {
        if let Some(t) = t
            && r.has(t, key)
        {
            let at = r.value_at(t, key).or(t.at);
            r.warn(at, format!("{shown} only applies to pods; app.kind is {:?}", kind.as_str()), None);
        }
    };
    pod_only(r, app, "manifest", "app.manifest");
    pod_only(r, routing, "container", "routing.container");
    pod_only(r, health, "container", "health.container");
    pod_only(r, health, "containers", "[health.containers]");
    if kind == Kind::Worker
        && let Some(t) = routing
        && r.has(t, "port")
    {
        let at = r.value_at(t, "port");
        r.warn(
            at,
            "routing.port is set but workers have no routes".into(),
            Some("use health.port for the port a worker's health probe uses".into()),
        );
    }
}

/// Records where each `[health.containers.<name>]` was written, so problems about a name can point at it.
fn note_container_names(r: &mut Reader<'_>, health: &Tbl<'_>) {
    let Some(containers) = r.any_table(health, "containers") else { return };
    for (name, at, _) in r.entries(&containers) {
        r.note(format!("health.containers.{name}"), at);
    }
}
