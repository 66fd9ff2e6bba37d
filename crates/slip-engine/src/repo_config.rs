//! `configuring`'s first half (SPEC §5, §7.3): reads `/slip/slip.toml` out of the pulled image, merges it with
//! the server's app file ([`slip_core::merge`]) and settles the release: its kind, strategy, routes, health and
//! resources.
//!
//! The file is read through [`crate::ports::ImageStore::read_files`] (an extract container that never runs). An
//! image without the file deploys on the server config alone. Unknown keys are warnings; any other problem fails
//! the deploy with `repo_config_invalid`, citing the file and line.

use slip_core::config::{Kind, SourceFile, UnknownKeys};
use slip_core::deploy::{ErrorCode, HealthPlan, Settled, StepFailure};
use slip_core::merge::{self, Merged};
use slip_core::pod_manifest::Manifest;
use slip_core::repo_config::{self, IMAGE_PATH, MAX_SIZE, RepoConfig};

use crate::engine::Engine;
use crate::labels;
use crate::ports::{ImageFile, Resources};
use crate::release::Release;
use crate::routes::RouteTemplate;

/// What reading the image's config found.
#[derive(Debug, Clone, Default)]
pub struct FromImage {
    /// The repo config, when the image has one.
    pub config: Option<RepoConfig>,
    /// Warnings for the deploy's record (unknown keys and the like), each naming the file and line.
    pub warnings: Vec<String>,
}

/// Reads the repo config out of `image` (a digest reference or image id).
pub async fn read(engine: &Engine, image: &str) -> Result<FromImage, StepFailure> {
    let labels = labels::extract(&engine.instance_id);
    let files = engine.image_store.read_files(image, &[IMAGE_PATH], MAX_SIZE, &labels).await?;
    let invalid =
        |why: String| StepFailure::new(ErrorCode::RepoConfigInvalid, format!("{IMAGE_PATH} in the image {why}"));
    let bytes = match files.into_iter().next() {
        None | Some(ImageFile::Missing) => return Ok(FromImage::default()),
        Some(ImageFile::Found(bytes)) => bytes,
        Some(ImageFile::TooLarge(size)) => {
            return Err(invalid(format!("is {size} bytes; slip reads at most {MAX_SIZE} (64 KiB)")));
        }
        Some(ImageFile::NotAFile) => return Err(invalid("is not a regular file".into())),
    };
    let text = String::from_utf8(bytes).map_err(|_| invalid("is not UTF-8 text".into()))?;
    let read = repo_config::read(&SourceFile { path: IMAGE_PATH.into(), text }, UnknownKeys::Warning);
    if !read.is_valid() {
        let problems: Vec<String> = read.problems.iter().map(ToString::to_string).collect();
        return Err(StepFailure::new(
            ErrorCode::RepoConfigInvalid,
            format!("the image's repo config is invalid: {}", problems.join("; ")),
        ));
    }
    Ok(FromImage { warnings: read.warnings.iter().map(ToString::to_string).collect(), config: Some(read.config) })
}

/// The kind `release` deploys as, given the image's `repo` config; a pod is refused with `pod_refusal` while the
/// runtime cannot run pods (`pods_require_podman`).
pub fn kind(release: &Release, repo: Option<&RepoConfig>, pod_refusal: Option<&str>) -> Result<Kind, StepFailure> {
    let kind = merge::kind(&release.config, repo)?;
    match (kind, pod_refusal) {
        (Kind::Pod, Some(why)) => {
            let message = format!("{} is a pod app: {why}", release.app);
            Err(StepFailure::new(ErrorCode::PodsRequirePodman, message))
        }
        (Kind::Pod, None) | (Kind::Web | Kind::Worker, _) => Ok(kind),
    }
}

/// Merges the release's server config with `repo` (and a pod's `manifest`) and writes the outcome into `release`;
/// answers what the deploy machine must now plan with, and the merge itself.
pub fn settle(
    release: &mut Release,
    repo: Option<&RepoConfig>,
    manifest: Option<&Manifest>,
) -> Result<(Settled, Merged), StepFailure> {
    let config = release.config.clone();
    let merged: Merged = merge::merge(&config, repo, manifest)?;
    release.kind = merged.kind.as_str();
    if let Some(slot) = release.env.iter_mut().find(|(k, _)| k == "SLIP_KIND") {
        slot.1 = release.kind.to_owned();
    }
    // A preview's hostnames were placed under its preview domain when it was resolved (SPEC §13.1); the repo config
    // settles ports and paths, never those.
    let placed = release.preview_plan.as_ref().map(|plan| plan.hostnames.clone());
    release.routes = merged
        .routes
        .iter()
        .map(|r| RouteTemplate {
            hostname: r.hostname.clone(),
            path_prefix: (r.path_prefix != "/").then(|| r.path_prefix.clone()),
            strip_prefix: r.strip_prefix,
            container_port: r.port,
            hold_timeout: config.hold_timeout,
        })
        .collect();
    if let Some(placed) = placed {
        for (route, hostname) in release.routes.iter_mut().zip(placed) {
            route.hostname = hostname;
        }
    } else {
        release.health_host = merged.health_host.clone();
    }
    release.health_port = merged.health_port;
    release.resources = Resources {
        memory_bytes: merged.resources.memory,
        nano_cpus: merged.resources.nano_cpus,
        pids: merged.resources.pids,
    };
    let health: HealthPlan = merged.health.clone();
    release.plan.strategy = merged.strategy;
    release.plan.routed = !release.routes.is_empty();
    release.plan.health = health.clone();
    Ok((Settled { strategy: merged.strategy, routed: release.plan.routed, health }, merged))
}
