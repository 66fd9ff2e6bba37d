//! The server's app file and the image's repo config merged for one deploy (SPEC §5, §4.1): what kind the app
//! is, its strategy, each route's container port, every `health.*` field and the resources.
//!
//! The server wins for each key *written* in its file (presence, not comparison with defaults), then the repo
//! config, then the manifest (a route's port), then the built-in defaults. A conflict is a deploy failure with the
//! code SPEC §7.2 gives it. Pure: the caller reads the image's files.

use crate::config::{AppConfig, Health, Kind, Resources, Route};
use crate::deploy::{ErrorCode, HealthPlan, StepFailure, Strategy};
use crate::names::AppName;
use crate::pod_manifest::Manifest;
use crate::repo_config::RepoConfig;

/// The pod container a route goes to when neither file names one (SPEC §4.2 `routing.container`).
pub const DEFAULT_CONTAINER: &str = "web";

/// What one deploy runs, decided from both configs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Merged {
    /// The app's kind.
    pub kind: Kind,
    /// Blue-green or recreate.
    pub strategy: Strategy,
    /// The routes, each with its container port (and, for pods, its container).
    pub routes: Vec<MergedRoute>,
    /// The health rules of the instance (of the `health.container` for pods).
    pub health: HealthPlan,
    /// Container port probed over HTTP when there is a path.
    pub health_port: Option<u16>,
    /// `Host` header sent with probes.
    pub health_host: Option<String>,
    /// Limits.
    pub resources: Resources,
    /// The pod manifest's path inside the image (pods only).
    pub manifest: Option<String>,
}

/// One route with everything known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MergedRoute {
    /// Lower-case hostname.
    pub hostname: String,
    /// `/` or a prefix.
    pub path_prefix: String,
    /// Remove the prefix before proxying.
    pub strip_prefix: bool,
    /// Container port.
    pub port: u16,
    /// The pod container that receives the traffic (pods only).
    pub container: Option<String>,
}

/// The kind of `app` given the image's config: the server's `app.kind`, else the repo's, else inferred from the
/// routes. A written server kind that differs from a written repo kind, or a repo kind the server's routes
/// contradict, is `kind_mismatch`.
pub fn kind(app: &AppConfig, repo: Option<&RepoConfig>) -> Result<Kind, StepFailure> {
    let file = format!("apps/{}.toml", app.name);
    let repo_kind = repo.and_then(|r| r.kind);
    match (app.kind, repo_kind) {
        (Some(server), Some(image)) if server != image => Err(StepFailure::new(
            ErrorCode::KindMismatch,
            format!(
                "{file} says app.kind = {:?} but the image's /slip/slip.toml says {:?}; make them agree or remove \
                 one",
                server.as_str(),
                image.as_str()
            ),
        )),
        (Some(server), _) => Ok(server),
        (None, Some(Kind::Worker)) if !app.routes.is_empty() => Err(StepFailure::new(
            ErrorCode::KindMismatch,
            format!(
                "the image's /slip/slip.toml says app.kind = \"worker\" but {file} routes it ({}); remove the routing \
                 or set app.kind",
                app.routes[0].hostname
            ),
        )),
        (None, Some(Kind::Web)) if app.routes.is_empty() => Err(StepFailure::new(
            ErrorCode::KindMismatch,
            format!("the image's /slip/slip.toml says app.kind = \"web\" but {file} has no route: set routing.domain"),
        )),
        (None, Some(image)) => Ok(image),
        (None, None) => Ok(app.kind()),
    }
}

/// Merges `app` with the image's `repo` config (and, for pods, its `manifest`).
pub fn merge(app: &AppConfig, repo: Option<&RepoConfig>, manifest: Option<&Manifest>) -> Result<Merged, StepFailure> {
    let file = format!("apps/{}.toml", app.name);
    if let Some(name) = repo.and_then(|r| r.name.as_ref())
        && name != &app.name
    {
        return Err(name_mismatch(&app.name, name));
    }
    let kind = kind(app, repo)?;
    let strategy = app.deploy.strategy.unwrap_or(if kind == Kind::Worker || app.has_writable_volume() {
        Strategy::Recreate
    } else {
        Strategy::BlueGreen
    });
    let empty = RepoConfig::default();
    let repo = repo.unwrap_or(&empty);

    let mut routes = Vec::with_capacity(app.routes.len());
    for route in &app.routes {
        routes.push(merge_route(route, repo, manifest, kind, &file)?);
    }

    let health_container = app.health.container.clone().or_else(|| repo.health.container.clone());
    let mut written: Health = app.health.or(&repo.health);
    if kind == Kind::Pod
        && let Some(name) = health_container.as_deref().or(routes.first().and_then(|r| r.container.as_deref()))
    {
        // A `[health.containers.<name>]` table for the health container refines the top-level one.
        let per = app.health_containers.get(name).or_else(|| repo.health_containers.get(name));
        if let Some(per) = per {
            written = per.or(&written);
        }
    }
    let health = written.resolve();
    let health_port = health.port.or_else(|| routes.first().map(|r| r.port));
    if health.path.is_some() && health_port.is_none() {
        return Err(StepFailure::new(
            ErrorCode::NoPort,
            format!("health.path is set but there is no port to probe: set health.port in {file}"),
        ));
    }
    Ok(Merged {
        kind,
        strategy,
        health: HealthPlan {
            path: health.path.clone(),
            interval: health.interval,
            timeout: health.timeout,
            retries: health.retries,
            start_period: health.start_period,
            stable_for: health.stable_for,
        },
        health_port,
        health_host: app.health.host.clone().or_else(|| routes.first().map(|r| r.hostname.clone())),
        routes,
        resources: Resources {
            memory: app.resources.memory.or(repo.resources.memory),
            nano_cpus: app.resources.nano_cpus.or(repo.resources.nano_cpus),
            pids: app.resources.pids,
        },
        manifest: (kind == Kind::Pod).then(|| app.manifest.clone().or_else(|| repo.manifest.clone())).flatten(),
    })
}

fn name_mismatch(app: &AppName, image: &AppName) -> StepFailure {
    StepFailure::new(
        ErrorCode::RepoConfigNameMismatch,
        format!(
            "the image's /slip/slip.toml is for app \"{image}\", not \"{app}\": deploy it as \"{image}\" or fix app.name \
             in the repo's slip/slip.toml"
        ),
    )
}

fn merge_route(
    route: &Route,
    repo: &RepoConfig,
    manifest: Option<&Manifest>,
    kind: Kind,
    file: &str,
) -> Result<MergedRoute, StepFailure> {
    let container = (kind == Kind::Pod).then(|| {
        route.container.clone().or_else(|| repo.container.clone()).unwrap_or_else(|| DEFAULT_CONTAINER.to_owned())
    });
    let from_manifest = || {
        let name = container.as_deref()?;
        let ports = &manifest?.container(name)?.ports;
        match ports.as_slice() {
            [only] => Some(*only),
            _ => None,
        }
    };
    let port = route.port.or(repo.port).or_else(from_manifest).ok_or_else(|| {
        let which = match &container {
            Some(c) => format!(" (container {c} declares no single containerPort in the manifest)"),
            None => String::new(),
        };
        StepFailure::new(
            ErrorCode::NoPort,
            format!(
                "route {} has no port{which}: set routing.port in {file} or in the image's /slip/slip.toml",
                route.hostname
            ),
        )
    })?;
    Ok(MergedRoute {
        hostname: route.hostname.clone(),
        path_prefix: route.path_prefix.clone(),
        strip_prefix: route.strip_prefix,
        port,
        container,
    })
}

#[cfg(test)]
mod tests;
