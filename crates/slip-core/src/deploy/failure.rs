//! Why a deploy step failed, as data: a machine-readable code and a sentence a person can act on.

/// Machine-readable failure codes (SPEC §7.2). Only the ones the deploy machine and driver produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    /// The registry has no such image or tag.
    ImageNotFound,
    /// The registry refused the credentials.
    RegistryAuthFailed,
    /// Any other pull failure.
    PullFailed,
    /// Too little free disk for a pull.
    DiskFull,
    /// Building the container from config failed (env file, ports, ...).
    EnvFileMissing,
    /// No host port could be leased or bound.
    PortUnavailable,
    /// The engine refused to create or start the container.
    StartFailed,
    /// The candidate failed its health check.
    Unhealthy,
    /// The candidate exited or restarted during the health check.
    Exited,
    /// Caddy refused or lost a write.
    CaddyFailed,
    /// Caddy did not answer.
    CaddyUnavailable,
    /// The container engine did not answer.
    RuntimeUnavailable,
    /// `deploy.timeout` passed before the switch.
    Timeout,
    /// The deploy was cancelled.
    Cancelled,
    /// slipd stopped or crashed while the deploy ran.
    Interrupted,
    /// The app was deleted while the deploy waited.
    AppDeleted,
    /// A pod deploy on an engine without pods.
    PodsRequirePodman,
    /// No container port is known for a route.
    NoPort,
    /// The image's `/slip/slip.toml` is unreadable or invalid.
    RepoConfigInvalid,
    /// The image's `/slip/slip.toml` names another app.
    RepoConfigNameMismatch,
    /// The server config and the image disagree on the app's kind.
    KindMismatch,
    /// The pod manifest is missing or invalid.
    ManifestInvalid,
    /// A webhook `images` override names a repository the app may not use.
    ImageNotAllowed,
    /// An init container of a pod exited non-zero.
    InitFailed,
    /// Webhook `images` overrides for an app that is not a pod.
    ImagesNotSupported,
    /// The deploy waited in the queue longer than `deploy.queue_ttl`.
    Expired,
    /// slip's own database could not record a step.
    StorageUnavailable,
    /// The image's repo config does not enable previews.
    PreviewDisabled,
    /// A preview of an image without `/slip/slip.toml`.
    PreviewRequiresRepoConfig,
    /// A preview hook failed (or cannot run).
    HookFailed,
}

impl ErrorCode {
    /// The code as it appears in the API and history.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::ImageNotFound => "image_not_found",
            ErrorCode::RegistryAuthFailed => "registry_auth_failed",
            ErrorCode::PullFailed => "pull_failed",
            ErrorCode::DiskFull => "disk_full",
            ErrorCode::EnvFileMissing => "env_file_missing",
            ErrorCode::PortUnavailable => "port_unavailable",
            ErrorCode::StartFailed => "start_failed",
            ErrorCode::Unhealthy => "unhealthy",
            ErrorCode::Exited => "exited",
            ErrorCode::CaddyFailed => "caddy_failed",
            ErrorCode::CaddyUnavailable => "caddy_unavailable",
            ErrorCode::RuntimeUnavailable => "runtime_unavailable",
            ErrorCode::Timeout => "timeout",
            ErrorCode::Cancelled => "cancelled",
            ErrorCode::Interrupted => "interrupted",
            ErrorCode::AppDeleted => "app_deleted",
            ErrorCode::PodsRequirePodman => "pods_require_podman",
            ErrorCode::NoPort => "no_port",
            ErrorCode::RepoConfigInvalid => "repo_config_invalid",
            ErrorCode::RepoConfigNameMismatch => "repo_config_name_mismatch",
            ErrorCode::KindMismatch => "kind_mismatch",
            ErrorCode::ManifestInvalid => "manifest_invalid",
            ErrorCode::ImageNotAllowed => "image_not_allowed",
            ErrorCode::InitFailed => "init_failed",
            ErrorCode::ImagesNotSupported => "images_not_supported",
            ErrorCode::Expired => "expired",
            ErrorCode::StorageUnavailable => "storage_unavailable",
            ErrorCode::PreviewDisabled => "preview_disabled",
            ErrorCode::PreviewRequiresRepoConfig => "preview_requires_repo_config",
            ErrorCode::HookFailed => "hook_failed",
        }
    }
}

/// A step that could not be done, as data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepFailure {
    /// Machine-readable code.
    pub code: ErrorCode,
    /// A sentence a person can act on.
    pub message: String,
}

impl StepFailure {
    /// A failure with `code` and `message`.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> StepFailure {
        StepFailure { code, message: message.into() }
    }
}
