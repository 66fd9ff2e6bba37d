//! What the deploy driver runs with ([`Engine`]: the adapters and settings every deploy shares) and what it runs
//! ([`Release`]: one app's resolved release). `run`, `images` and `reconcile` all take these.

use std::ops::RangeInclusive;
use std::sync::Arc;

use slip_core::deploy::Plan;
use slip_core::names::{AppName, DeployId, ImageRepo, Tag};
use tokio_util::sync::CancellationToken;

use crate::ports::{
    ContainerRuntime, HealthProbe, LogRotation, Mount, NetworkAttachment, RegistryCredentials, Resources,
};
use crate::routes::{RouteTable, RouteTemplate};
use crate::store::Store;

/// Everything the driver needs, shared by all deploys.
#[derive(Clone)]
pub struct Engine {
    /// The container engine.
    pub runtime: Arc<dyn ContainerRuntime>,
    /// The health probe.
    pub probe: Arc<dyn HealthProbe>,
    /// Slip's desired Caddy routes.
    pub routes: RouteTable,
    /// History and state.
    pub store: Store,
    /// This slipd's identity, put on every container as `slip.instance`.
    pub instance_id: String,
    /// Host ports slip may lease.
    pub port_range: RangeInclusive<u16>,
    /// Container log rotation.
    pub log: LogRotation,
    /// Cancelled at shutdown: a deploy before its switch stops at the next step and is interrupted.
    pub shutdown: CancellationToken,
    /// Disk preflight and image retention settings.
    pub images: crate::images::policy::ImagePolicy,
}

/// A fully resolved release of an app: what to pull and how to run it.
#[derive(Debug, Clone)]
pub struct Release {
    /// The deploy putting this release in place.
    pub deploy_id: DeployId,
    /// The app.
    pub app: AppName,
    /// What the webhook asked for.
    pub tag: Tag,
    /// The app's image repository.
    pub repository: ImageRepo,
    /// Reference to pull: `repo:tag` or `repo@sha256:…`.
    pub image: String,
    /// Credentials for the image's registry host only.
    pub credentials: Option<RegistryCredentials>,
    /// `web` or `worker`.
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
    /// Cancelled to abandon this deploy (the app is being deleted): before its switch it stops at the next step,
    /// unwinds like a failure and ends `failed` with code `cancelled`; after its switch it runs to its end.
    pub cancel: CancellationToken,
}
