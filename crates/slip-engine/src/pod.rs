//! A pod release at `configuring` (SPEC §14): the manifest read out of the image and checked, every container's
//! image decided (webhook `images` overrides checked before anything more is pulled, `[containers.<name>]` pins,
//! `${tag}`), pulled and pinned to its digest, the per-container health probes of SPEC §8.3, the ports to publish,
//! and each container's environment (secrets only where SPEC §11.3 lets them go). [`render`] turns it into the
//! manifest `kube play` runs.

use std::collections::{BTreeMap, BTreeSet};

use slip_core::config::{AppConfig, Health, SourceFile};
use slip_core::deploy::{ErrorCode, StepFailure};
use slip_core::merge::{DEFAULT_CONTAINER, Merged};
use slip_core::names::{ImageRepo, Tag};
use slip_core::pod_manifest::render::{HostVolume, Rendering};
use slip_core::pod_manifest::{self, Manifest, Policy, Reference};
use slip_core::repo_config::RepoConfig;

use crate::clock::unix_ms;
use crate::engine::Engine;
use crate::labels;
use crate::ports::ImageFile;
use crate::release::Release;

pub use crate::release::{PodRelease, Probe};

/// The manifest's path in the image, from the server's `app.manifest` or the repo's.
pub fn manifest_path(app: &AppConfig, repo: Option<&RepoConfig>) -> Result<String, StepFailure> {
    app.manifest.clone().or_else(|| repo.and_then(|r| r.manifest.clone())).ok_or_else(|| {
        StepFailure::new(
            ErrorCode::ManifestInvalid,
            format!(
                "{} is a pod app but names no manifest: set app.manifest in apps/{}.toml or in the image's \
                 /slip/slip.toml",
                app.name, app.name
            ),
        )
    })
}

/// Reads and checks the manifest at `path` in `image`.
pub async fn read_manifest(
    engine: &Engine,
    app: &AppConfig,
    image: &str,
    path: &str,
) -> Result<(String, Manifest), StepFailure> {
    let invalid = |why: String| StepFailure::new(ErrorCode::ManifestInvalid, format!("{path} in the image {why}"));
    let labels = labels::extract(&engine.instance_id);
    let files = engine.image_store.read_files(image, &[path], pod_manifest::MAX_SIZE, &labels).await?;
    let bytes = match files.into_iter().next() {
        Some(ImageFile::Found(bytes)) => bytes,
        None | Some(ImageFile::Missing) => return Err(invalid("does not exist".into())),
        Some(ImageFile::TooLarge(size)) => {
            return Err(invalid(format!("is {size} bytes; slip reads at most {} (256 KiB)", pod_manifest::MAX_SIZE)));
        }
        Some(ImageFile::NotAFile) => return Err(invalid("is not a regular file".into())),
    };
    let text = String::from_utf8(bytes).map_err(|_| invalid("is not UTF-8 text".into()))?;
    let policy = Policy {
        allow_privileged: Some(app.allow_privileged),
        host_paths: Some(app.volumes.iter().map(|v| v.host_path.clone()).collect()),
    };
    let read = pod_manifest::read(&SourceFile { path: path.into(), text: text.clone() }, &policy);
    match (read.is_valid(), read.manifest) {
        (true, Some(manifest)) => Ok((text, manifest)),
        (_, _) => {
            let problems: Vec<String> = read.problems.iter().map(ToString::to_string).collect();
            Err(StepFailure::new(
                ErrorCode::ManifestInvalid,
                format!("the pod manifest is invalid: {}", problems.join("; ")),
            ))
        }
    }
}

/// The reference each container runs before pinning, checking webhook `overrides` first (SPEC §14.3).
pub fn references(
    app: &AppConfig,
    manifest: &Manifest,
    tag: &Tag,
    overrides: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>, StepFailure> {
    let all: Vec<_> = manifest.init_containers.iter().chain(&manifest.containers).collect();
    for (name, reference) in overrides {
        let Some(container) = all.iter().find(|c| &c.name == name) else {
            let names: Vec<&str> = all.iter().map(|c| c.name.as_str()).collect();
            return Err(StepFailure::new(
                ErrorCode::ImageNotAllowed,
                format!("images: the manifest has no container {name:?} (it has {})", names.join(", ")),
            ));
        };
        let image = pod_manifest::image::parse(reference)
            .ok()
            .filter(|i| !matches!(i.reference, Reference::DeployTag | Reference::Untagged))
            .ok_or_else(|| {
                StepFailure::new(
                    ErrorCode::ImageNotAllowed,
                    format!("images.{name}: {reference:?} is not a full reference with a tag or digest"),
                )
            })?;
        let own = container.image.as_ref().map(|i| &i.repo);
        let allowed = image.repo == app.image
            || app.allowed_images.iter().any(|p| p.matches(&image.repo))
            || own == Some(&image.repo);
        if !allowed {
            return Err(StepFailure::new(
                ErrorCode::ImageNotAllowed,
                format!(
                    "images.{name}: repository {} is not {}, not in app.allowed_images and not the manifest's for \
                     {name}; a deploy key may move tags, not bring new images",
                    image.repo, app.image
                ),
            ));
        }
    }
    let mut out = BTreeMap::new();
    for container in all {
        let name = &container.name;
        let reference = if let Some(reference) = overrides.get(name) {
            reference.clone()
        } else if let Some(pin) = app.containers.get(name).and_then(|c| c.image.as_ref()) {
            pin.to_string()
        } else {
            let image = container.image.as_ref().ok_or_else(|| {
                StepFailure::new(ErrorCode::ManifestInvalid, format!("container {name} has no valid image"))
            })?;
            match &image.reference {
                Reference::DeployTag => image.written.replace(pod_manifest::image::PLACEHOLDER, tag.as_str()),
                Reference::Untagged if image.repo == app.image => image.repo.with_tag(tag),
                Reference::Untagged | Reference::Fixed(_) => image.written.clone(),
            }
        };
        out.insert(name.clone(), reference);
    }
    Ok(out)
}

/// Probes and published ports per SPEC §8.3, from the merged config.
pub fn probes(
    app: &AppConfig,
    repo: Option<&RepoConfig>,
    merged: &Merged,
    manifest: &Manifest,
) -> (BTreeMap<String, Probe>, BTreeSet<(String, u16)>) {
    let empty = RepoConfig::default();
    let repo = repo.unwrap_or(&empty);
    let mut published: BTreeSet<(String, u16)> = BTreeSet::new();
    let mut route_port: BTreeMap<&str, u16> = BTreeMap::new();
    for r in &merged.routes {
        let container = r.container.as_deref().unwrap_or(DEFAULT_CONTAINER);
        published.insert((container.to_owned(), r.port));
        route_port.entry(container).or_insert(r.port);
    }
    let health_container = app
        .health
        .container
        .clone()
        .or_else(|| repo.health.container.clone())
        .or_else(|| merged.routes.first().and_then(|r| r.container.clone()));
    let top = app.health.or(&repo.health);
    let mut probes = BTreeMap::new();
    for c in &manifest.containers {
        let name = c.name.as_str();
        let per = app
            .health_containers
            .get(name)
            .map(|h| h.or(repo.health_containers.get(name).unwrap_or(&Health::default())));
        let per = per.or_else(|| repo.health_containers.get(name).cloned());
        let probe = if let Some(per) = per {
            let path = per.path.clone();
            let port = per.port.or(route_port.get(name).copied()).or_else(|| single(&c.ports));
            path.zip(port)
        } else if Some(name) == health_container.as_deref() {
            merged.health.path.clone().zip(merged.health_port.or(route_port.get(name).copied()))
        } else if let Some(port) = route_port.get(name) {
            top.path.clone().map(|p| (p, *port))
        } else {
            None
        };
        if let Some((path, port)) = probe {
            published.insert((name.to_owned(), port));
            probes.insert(name.to_owned(), Probe { path, port });
        }
    }
    (probes, published)
}

fn single(ports: &[u16]) -> Option<u16> {
    match ports {
        [only] => Some(*only),
        _ => None,
    }
}

/// Pulls every container's reference (the app image is pulled already as `app_image` → `app_ref`) and pins it.
pub async fn pull_all(
    engine: &Engine,
    release: &Release,
    references: &BTreeMap<String, String>,
    app_ref: &str,
) -> Result<BTreeMap<String, String>, StepFailure> {
    let mut pinned_by_ref: BTreeMap<String, String> = BTreeMap::new();
    pinned_by_ref.insert(release.image.clone(), app_ref.to_owned());
    let mut out = BTreeMap::new();
    for (name, reference) in references {
        if !pinned_by_ref.contains_key(reference) {
            let repo: Option<ImageRepo> = pod_manifest::image::parse(reference).ok().map(|i| i.repo);
            let credentials = release
                .credentials
                .as_ref()
                .filter(|_| repo.as_ref().is_some_and(|r| r.host() == release.repository.host()));
            let pulled = engine.image_store.pull(reference, credentials).await?;
            let pin = pulled.digest.clone().unwrap_or(pulled.id.clone());
            if let (Some(repo), Some((_, digest))) = (&repo, pulled.digest.as_deref().and_then(|d| d.split_once('@'))) {
                let recorded = engine.store.record_image(&release.app, repo, digest, None, unix_ms());
                if let Err(e) = recorded {
                    tracing::error!(error = %e, "recording a pulled image");
                }
            }
            pinned_by_ref.insert(reference.clone(), pin);
        }
        out.insert(name.clone(), pinned_by_ref[reference].clone());
    }
    Ok(out)
}

/// What the renderer needs for `release`'s pod named `name`, publishing `ports` (container port → host port).
pub fn rendering(
    release: &Release,
    pod: &PodRelease,
    name: &str,
    labels: BTreeMap<String, String>,
    ports: &BTreeMap<u16, u16>,
) -> Rendering {
    let app = &release.config;
    let mut labels = labels;
    labels.insert(crate::podman::CONTAINERS_LABEL.into(), pod.containers.join(","));
    labels.insert(crate::podman::INIT_LABEL.into(), pod.init.join(","));
    let own = |image: &str| {
        pod_manifest::image::parse(image.split('@').next().unwrap_or(image))
            .is_ok_and(|i| i.repo == app.image || app.allowed_images.iter().any(|p| p.matches(&i.repo)))
    };
    let mut env = BTreeMap::new();
    for name in pod.init.iter().chain(&pod.containers) {
        let overrides = app.containers.get(name);
        let allowed_secrets = overrides.and_then(|o| o.secrets.clone()).unwrap_or_default();
        let runs_own = pod.pinned.get(name).is_some_and(|i| own(i));
        let mut vars: Vec<(String, String)> = release
            .env
            .iter()
            .filter(|(k, _)| !release.secret_keys.contains(k) || runs_own || allowed_secrets.contains(k))
            .cloned()
            .collect();
        if let Some(o) = overrides {
            for (k, v) in o.env.iter() {
                match vars.iter_mut().find(|(key, _)| key == k) {
                    Some(slot) => slot.1 = v.clone(),
                    None => vars.push((k.clone(), v.clone())),
                }
            }
        }
        env.insert(name.clone(), vars);
    }
    let by_port: BTreeMap<u16, &str> = pod.published.iter().map(|(c, p)| (*p, c.as_str())).collect();
    Rendering {
        name: name.to_owned(),
        labels,
        images: pod.pinned.clone(),
        ports: ports
            .iter()
            .filter_map(|(container_port, host)| {
                Some(((by_port.get(container_port)?.to_string(), *container_port), *host))
            })
            .collect(),
        env,
        volumes: app
            .volumes
            .iter()
            .map(|v| HostVolume {
                host_path: v.host_path.display().to_string(),
                mount_path: v.mount_path.clone(),
                read_only: v.read_only,
                containers: v.containers.clone().unwrap_or_default(),
            })
            .collect(),
    }
}
