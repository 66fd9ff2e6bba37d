//! A pod's manifest (SPEC §14): one Kubernetes `kind: Pod` document that Podman runs with `kube play`.
//!
//! [`read`] parses the YAML from memory with the position of every node and checks the rules of §14.1
//! (one `Pod` document, its size, how deep it nests and its container count) and §14.2 (container names,
//! images and `${tag}`, ports, privileges, volume types and `hostPath`s). [`check_against`] checks the
//! manifest against the repo config: container names against routes and health, the route port, and
//! (strictly) sidecar tags.
//!
//! [`render::render`] renders a checked manifest for one release (renaming the pod, pinning digests, publishing
//! leased ports on loopback, adding env and volumes), from what the deploy decided. Rules that need the server's app file take it
//! through [`Policy`]; without it (`slip validate`) they become warnings that name the server setting.
//!
//! # Layout
//! - `yaml`: loading the YAML (nesting bounded first) and the positioned walk over saphyr's nodes.
//! - `pod`: the Pod document's rules.
//! - `image`: `image:` values and `${tag}`.
//! - `against`: the manifest against the repo config.

use std::path::PathBuf;

use crate::config::reader::At;
use crate::config::{Problem, SourceFile, problem};

mod against;
pub mod image;
mod pod;
pub mod render;
mod yaml;

#[cfg(test)]
mod tests;

pub use against::{Findings, Strictness, check_against};
pub use image::{Image, Reference};

/// The largest manifest slip reads (256 KiB).
pub const MAX_SIZE: usize = 256 * 1024;

/// The deepest nesting of collections slip reads, aliases expanded. A Pod needs about ten levels; the limit
/// exists because the YAML loader recurses once per level, so a deep enough manifest (such as 100,000
/// `- ` in a row) would overflow the stack and abort `slip validate`, or slipd reading an image's manifest.
pub const MAX_DEPTH: usize = 64;

/// The most containers a pod may have, init containers included.
pub const MAX_CONTAINERS: usize = 16;

/// The manifest's content as slip uses it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    /// `spec.containers`, in order.
    pub containers: Vec<Container>,
    /// `spec.initContainers`, in order.
    pub init_containers: Vec<Container>,
    /// `spec.volumes`.
    pub volumes: Vec<Volume>,
}

impl Manifest {
    /// The main container called `name`.
    pub fn container(&self, name: &str) -> Option<&Container> {
        self.containers.iter().find(|c| c.name == name)
    }

    /// The init container called `name`.
    pub fn init_container(&self, name: &str) -> Option<&Container> {
        self.init_containers.iter().find(|c| c.name == name)
    }

    /// Claim names of `persistentVolumeClaim` volumes: each is a writable named volume, so the overlap rule
    /// (SPEC §4.1) applies to the app.
    pub fn claims(&self) -> impl Iterator<Item = &str> {
        self.volumes.iter().filter_map(|v| match &v.source {
            VolumeSource::Claim(claim) => Some(claim.as_str()),
            _ => None,
        })
    }
}

/// One container of the pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Container {
    /// Its name (a DNS label, unique in the pod).
    pub name: String,
    /// Its image; `None` when the one written was invalid (a problem says so).
    pub image: Option<Image>,
    /// Its `containerPort`s, in order.
    pub ports: Vec<u16>,
    /// Where the container's `name` is written.
    pub(crate) at: At,
    /// Where its `image` is written.
    pub(crate) image_at: At,
}

/// One entry of `spec.volumes`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Volume {
    /// Its name, which `volumeMounts` refer to.
    pub name: String,
    /// Where its data comes from.
    pub source: VolumeSource,
}

/// The volume types slip runs (SPEC §14.2 step 4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VolumeSource {
    /// An empty directory that lives as long as the pod.
    EmptyDir,
    /// A host directory; it must equal a server `[[volumes]].host_path`.
    HostPath(PathBuf),
    /// A Podman named volume `slip-<app>-<claim>`, persistent and writable.
    Claim(String),
}

/// What the server's app file allows, for the rules that depend on it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Policy {
    /// `app.allow_privileged`; `None` when the server config is not at hand (`slip validate`), which turns
    /// privileged settings into warnings.
    pub allow_privileged: Option<bool>,
    /// The app's `[[volumes]].host_path`s; `None` when not at hand, which turns `hostPath` volumes into
    /// warnings.
    pub host_paths: Option<Vec<PathBuf>>,
}

/// One manifest read: what it holds (when it could be read at all), its problems and its warnings.
#[derive(Debug, Clone)]
pub struct Read {
    /// The manifest, minus anything invalid; `None` when it is not a readable Pod document.
    pub manifest: Option<Manifest>,
    /// Problems, sorted by line and column; empty when the manifest is valid.
    pub problems: Vec<Problem>,
    /// Warnings, sorted by line and column.
    pub warnings: Vec<Problem>,
}

impl Read {
    /// True when there are no problems.
    pub fn is_valid(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Reads the manifest in `file` under `policy`, collecting every problem.
pub fn read(file: &SourceFile, policy: &Policy) -> Read {
    let mut w = yaml::Walker::new(file.path.clone());
    let manifest = if file.text.len() > MAX_SIZE {
        let message = format!("the manifest is {} bytes; slip reads at most {MAX_SIZE} (256 KiB)", file.text.len());
        w.problem((None, None), message, None);
        None
    } else {
        pod::read(&mut w, &file.text, policy)
    };
    let yaml::Walker { mut problems, mut warnings, .. } = w;
    problem::sort(&mut problems);
    problem::sort(&mut warnings);
    Read { manifest, problems, warnings }
}
