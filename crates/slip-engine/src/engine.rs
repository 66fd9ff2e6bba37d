//! The adapters and settings every deploy shares.

use std::ops::RangeInclusive;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::ports::{HealthProbe, ImageStore, InstanceRuntime, LogRotation, LogSource};
use crate::routes::RouteTable;
use crate::store::Store;

/// Everything the driver needs, shared by all deploys.
#[derive(Clone)]
pub struct Engine {
    /// Creates, inspects and removes instances.
    pub instances: Arc<dyn InstanceRuntime>,
    /// Pulls and removes images.
    pub image_store: Arc<dyn ImageStore>,
    /// Reads container output.
    pub logs: Arc<dyn LogSource>,
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
    pub images: crate::image_policy::ImagePolicy,
}
