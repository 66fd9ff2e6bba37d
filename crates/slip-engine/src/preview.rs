//! The driver's side of a preview deploy at `configuring` (SPEC §5, §13.2): the image's repo config is read and
//! must enable previews, then the TTL, the per-app cap and the resources are settled from it and the server's
//! bounds. Production deploys do not come here.

use slip_core::deploy::{ErrorCode, StepFailure};
use slip_core::repo_config::{self, RepoConfig};

use crate::ports::Resources;
use crate::release::{PreviewPlan, Release};

/// What a preview deploy settled once its repo config was read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admitted {
    /// How long the preview lives after this deploy completes.
    pub ttl: std::time::Duration,
    /// The app's preview cap, the repo's `preview.max` included.
    pub cap: u32,
    /// The candidate's resources, capped.
    pub resources: Resources,
}

/// Admits the preview given the image's repo config (read once per deploy by the driver, which also records its
/// warnings), or fails the deploy with the code that says why (`preview_requires_repo_config`,
/// `repo_config_name_mismatch`, `preview_disabled`, `hook_failed` for hooks this slipd cannot run yet).
pub fn admit(
    release: &Release,
    plan: &PreviewPlan,
    repo: Option<&RepoConfig>,
    image: &str,
) -> Result<Admitted, StepFailure> {
    let Some(repo) = repo else {
        return Err(StepFailure::new(
            ErrorCode::PreviewRequiresRepoConfig,
            format!(
                "image {image} has no {}: previews need a repo config with [preview] enabled = true",
                repo_config::IMAGE_PATH
            ),
        ));
    };
    decide(release, plan, repo)
}

/// The pure half of [`admit`]: the gate and the merge, given the repo config.
pub fn decide(release: &Release, plan: &PreviewPlan, repo: &RepoConfig) -> Result<Admitted, StepFailure> {
    if let Some(name) = &repo.name
        && *name != release.app
    {
        return Err(StepFailure::new(
            ErrorCode::RepoConfigNameMismatch,
            format!("{} says app.name = \"{name}\", but this is app {}", repo_config::IMAGE_PATH, release.app),
        ));
    }
    if !repo.preview.enabled {
        return Err(StepFailure::new(
            ErrorCode::PreviewDisabled,
            format!(
                "the image's {} does not allow previews: add [preview] enabled = true to it",
                repo_config::IMAGE_PATH
            ),
        ));
    }
    if repo.preview.hooks.migrate.is_some() || repo.preview.hooks.seed.is_some() {
        return Err(StepFailure::new(
            ErrorCode::HookFailed,
            "preview hooks ([preview.hooks] migrate/seed) are not supported by this slipd yet; remove them from the \
             repo config to deploy this preview",
        ));
    }
    let ttl = slip_core::preview::ttl(plan.webhook_ttl, repo.preview.ttl, plan.app_ttl, plan.default_ttl, plan.max_ttl);
    let cap = slip_core::preview::cap(repo.preview.max, Some(plan.cap), plan.cap);
    let production = slip_core::config::Resources {
        memory: release.resources.memory_bytes.or(repo.resources.memory),
        nano_cpus: release.resources.nano_cpus.or(repo.resources.nano_cpus),
        pids: release.resources.pids,
    };
    let merged =
        slip_core::preview::resources(&repo.preview.resources, &production, plan.max_memory, plan.max_nano_cpus);
    let resources = Resources { memory_bytes: merged.memory, nano_cpus: merged.nano_cpus, pids: merged.pids };
    Ok(Admitted { ttl, cap, resources })
}
