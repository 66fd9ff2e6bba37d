//! A release resolved for one deploy: what to pull and how to run it.

use std::sync::Arc;
use std::time::Duration;

use slip_core::config::AppConfig;
use slip_core::deploy::Plan;
use slip_core::names::{AppName, DeployId, ImageRepo, PreviewId, Tag, Target};
use tokio_util::sync::CancellationToken;

use crate::ports::{Mount, NetworkAttachment, RegistryCredentials, Resources};
use crate::routes::RouteTemplate;

/// A fully resolved release of an app: what to pull and how to run it.
#[derive(Debug, Clone)]
pub struct Release {
    /// The deploy putting this release in place.
    pub deploy_id: DeployId,
    /// The app.
    pub app: AppName,
    /// The preview the release is for, or `None` for production.
    pub preview: Option<PreviewId>,
    /// What a preview's deploy decides once the image's repo config is read; `None` for production.
    pub preview_plan: Option<PreviewPlan>,
    /// What the webhook asked for.
    pub tag: Tag,
    /// The app's image repository.
    pub repository: ImageRepo,
    /// Reference to pull: `repo:tag` or `repo@sha256:…`.
    pub image: String,
    /// Credentials for the image's registry host only.
    pub credentials: Option<RegistryCredentials>,
    /// The app's server config as this deploy read it. At `configuring` it is merged with the image's repo config
    /// (`crate::repo_config::settle`), which rewrites the kind, routes, health, resources and the plan below.
    pub config: Arc<AppConfig>,
    /// Webhook `images` overrides (container → full reference), checked at `configuring` (SPEC §14.3).
    pub overrides: std::collections::BTreeMap<String, String>,
    /// The keys of `env` that are secrets (SPEC §11.3: pods give them only to the app's own containers).
    pub secret_keys: std::collections::BTreeSet<String>,
    /// For a pod app, what `configuring` decided about its pod; `None` for a container.
    pub pod: Option<PodRelease>,
    /// `web`, `worker` or `pod`.
    pub kind: &'static str,
    /// Routes (empty for workers).
    pub routes: Vec<RouteTemplate>,
    /// Container port probed over HTTP when the plan has a path (defaults to the first route's port).
    pub health_port: Option<u16>,
    /// `Host` header for probes.
    pub health_host: Option<String>,
    /// Container environment in precedence order. Holds secret values.
    pub env: Vec<(String, String)>,
    /// Limits.
    pub resources: Resources,
    /// Bind mounts (host directories already exist).
    pub mounts: Vec<Mount>,
    /// Network to join.
    pub network: Option<NetworkAttachment>,
    /// Run an init process.
    pub init: bool,
    /// The deploy machine's plan; its `old` is filled in by the driver from the store.
    pub plan: Plan,
    /// Replaces this app's secret values in every note and error the driver records (SPEC §11.4).
    pub redactor: crate::redact::Redactor,
    /// Cancelled to abandon this deploy (`POST /v1/deploys/{id}/cancel`, or the app is being deleted): before its
    /// switch it stops at the next step, unwinds like a failure and ends `failed` with code `cancelled`; after its
    /// switch it runs to its end.
    pub cancel: CancellationToken,
    /// Why it was cancelled, set before `cancel` is; the error the deploy ends with.
    pub cancel_reason: std::sync::Arc<std::sync::OnceLock<String>>,
}

impl Release {
    /// Where the release goes: the app's production or one of its previews.
    pub fn target(&self) -> Target {
        Target { app: self.app.clone(), preview: self.preview.clone() }
    }
}

/// The server's side of a preview deploy, which the driver completes at `configuring` with the image's repo config
/// (SPEC §5 merge rules, §13.2): the repo must enable previews, and its TTL, cap and resource requests are bounded
/// by these.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreviewPlan {
    /// The preview's hostname for each of the app's routes, in order (`<id>.<domain>`, then `<id>-<k>.<domain>`):
    /// `configuring` puts them on the routes it settles.
    pub hostnames: Vec<String>,
    /// `https://<first preview hostname>`, injected as `SLIP_PREVIEW_URL`; `None` for a worker.
    pub url: Option<String>,
    /// The TTL the webhook asked for.
    pub webhook_ttl: Option<Duration>,
    /// The app's `preview.default_ttl`.
    pub app_ttl: Option<Duration>,
    /// The server's `preview.default_ttl`.
    pub default_ttl: Duration,
    /// The server's `preview.max_ttl`.
    pub max_ttl: Duration,
    /// The app's `preview.max`, else the server's `max_per_app`.
    pub cap: u32,
    /// The server's `preview.max_memory`, in bytes.
    pub max_memory: Option<u64>,
    /// The server's `preview.max_cpus`, in billionths of a CPU.
    pub max_nano_cpus: Option<u64>,
}

/// An HTTP probe of one pod container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    /// Path to GET.
    pub path: String,
    /// Container port.
    pub port: u16,
}

/// Everything a pod release adds to a container release.
#[derive(Debug, Clone, Default)]
pub struct PodRelease {
    /// The manifest as read from the image.
    pub text: String,
    /// Main containers, in manifest order.
    pub containers: Vec<String>,
    /// Init containers, in manifest order.
    pub init: Vec<String>,
    /// Container name → the reference it runs, pinned to the pulled digest.
    pub pinned: std::collections::BTreeMap<String, String>,
    /// Container name → its HTTP probe; containers without one are checked as running and stable.
    pub probes: std::collections::BTreeMap<String, Probe>,
    /// (container, container port) slip publishes: each route's and each probe's.
    pub published: std::collections::BTreeSet<(String, u16)>,
}
