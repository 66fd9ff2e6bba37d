//! The manifest against the repo config (SPEC §15 `slip validate`, §5, §8.3).
//!
//! Problems: `routing.container`, `health.container` and each `[health.containers.<name>]` must name a main
//! container of the manifest. Warnings: a route port the manifest cannot supply (the deploy would fail with
//! `no_port` unless the server sets `routing.port`), a `routing.port` the route container does not declare,
//! a manifest for an app whose kind is not `pod`, and, under [`Strictness::Strict`], sidecar images on
//! `:latest` or with no tag. The server's routes may name other containers; this check cannot see them.

use std::path::Path;

use super::{Manifest, Reference};
use crate::config::reader::{At, suggest};
use crate::config::{Kind, Problem};
use crate::defaults;
use crate::repo_config;

/// How hard to look at images.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strictness {
    /// The rules a deploy enforces.
    Normal,
    /// Also warn about sidecar images that are `:latest` or untagged (`slip validate --strict`).
    Strict,
}

/// What [`check_against`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Findings {
    /// Problems: the repo config and the manifest do not fit together.
    pub problems: Vec<Problem>,
    /// Warnings.
    pub warnings: Vec<Problem>,
}

/// Checks `manifest` (read from the file shown as `manifest_file`) against the repo config `repo`.
pub fn check_against(
    repo: &repo_config::Read,
    manifest: &Manifest,
    manifest_file: &Path,
    strictness: Strictness,
) -> Findings {
    let mut found = Findings::default();
    let config = &repo.config;
    let shown = manifest_file.display().to_string();

    if let Some(kind) = config.kind.filter(|k| *k != Kind::Pod) {
        found.warnings.push(repo.problem_at(
            "app.kind",
            format!("app.kind is {:?}, so {shown} is not used: only pods have a manifest", kind.as_str()),
            None,
        ));
    }
    if let Some(name) = &config.container {
        found.problems.extend(unknown_container(repo, manifest, &shown, "routing.container", name));
    }
    if let Some(name) = &config.health.container {
        found.problems.extend(unknown_container(repo, manifest, &shown, "health.container", name));
    }
    for name in config.health_containers.keys() {
        let key = format!("health.containers.{name}");
        found.problems.extend(unknown_container(repo, manifest, &shown, &key, name));
    }

    let target = config.container.as_deref().unwrap_or(defaults::ROUTE_CONTAINER);
    match (manifest.container(target), config.port) {
        (Some(c), Some(port)) if !c.ports.is_empty() && !c.ports.contains(&port) => {
            found.warnings.push(repo.problem_at(
                "routing.port",
                format!(
                    "routing.port: {port} is not a containerPort of container {target:?} in {shown} ({})",
                    list(&c.ports)
                ),
                None,
            ));
        }
        (Some(c), None) if c.ports.len() != 1 => {
            let declares = match c.ports.len() {
                0 => "declares no containerPort".to_owned(),
                n => format!("declares {n} containerPorts ({})", list(&c.ports)),
            };
            found.warnings.push(at(
                manifest_file,
                c.at,
                format!(
                    "container {target:?} is the route target and {declares}, and routing.port is not set: \
                     a routed deploy fails with no_port unless the server sets routing.port"
                ),
                Some("set routing.port in the repo config, or declare exactly one containerPort".into()),
            ));
        }
        (None, Some(_)) if config.container.is_none() && manifest.init_container(target).is_none() => {
            found.warnings.push(repo.problem_at(
                "routing.port",
                format!("{shown} has no container named {target:?}, the default route target"),
                Some("set routing.container to the container that serves HTTP".into()),
            ));
        }
        _ => {}
    }

    if strictness == Strictness::Strict {
        for c in manifest.init_containers.iter().chain(&manifest.containers) {
            let Some(image) = &c.image else { continue };
            let why = if image.is_latest() {
                "uses the mutable :latest tag"
            } else if image.reference == Reference::Untagged && c.name != target {
                "has no tag, so it runs whatever :latest is when the pod starts"
            } else {
                continue;
            };
            found.warnings.push(at(
                manifest_file,
                c.image_at,
                format!("container {:?}: image {:?} {why}", c.name, image.written),
                Some(format!("pin a version or a digest, e.g. {}:<version>", image.repo)),
            ));
        }
    }
    found
}

/// A problem when `name` (written at `key` in the repo config) is not a main container of the manifest.
fn unknown_container(
    repo: &repo_config::Read,
    manifest: &Manifest,
    shown: &str,
    key: &str,
    name: &str,
) -> Option<Problem> {
    if manifest.container(name).is_some() {
        return None;
    }
    if manifest.init_container(name).is_some() {
        return Some(repo.problem_at(
            key,
            format!("{key}: {name:?} is an init container in {shown}: init containers must exit, so they are not routed or probed"),
            None,
        ));
    }
    let names: Vec<&str> = manifest.containers.iter().map(|c| c.name.as_str()).collect();
    let mean = suggest(name, &names).map(|s| format!(" (did you mean {s:?}?)")).unwrap_or_default();
    let hint = (!names.is_empty()).then(|| format!("its containers are {}", names.join(", ")));
    Some(repo.problem_at(key, format!("{key}: {name:?} is not a container in {shown}{mean}"), hint))
}

fn at(file: &Path, at: At, message: String, hint: Option<String>) -> Problem {
    Problem { file: file.to_path_buf(), line: at.0, column: at.1, message, hint }
}

fn list(ports: &[u16]) -> String {
    ports.iter().map(u16::to_string).collect::<Vec<_>>().join(", ")
}
