//! The seams between the deploy driver and the outside world.
//!
//! Each trait speaks in deploy verbs, not in Docker's or Caddy's vocabulary: the instance runtime
//! ([`InstanceRuntime`]: containers or pods), the image store ([`ImageStore`]), the log source ([`LogSource`]),
//! the reverse proxy ([`Proxy`]) and the health probe ([`HealthProbe`]). Real adapters live in [`crate::docker`],
//! [`crate::caddy`] and [`crate::probe`], chosen by [`crate::runtime::connect`]; fakes in `crate::testing`.

mod images;
mod instance;
mod logs;
mod probe;
mod proxy;

pub use images::{ImageFile, ImageStore, PulledImage, RegistryCredentials};
pub use instance::{
    ContainerId, ContainerSpec, ContainerState, InstanceId, InstanceRuntime, InstanceSpec, InstanceState,
    InstanceSummary, LogRotation, Mount, NetworkAttachment, PodSpec, PortMapping, Resources, RuntimeError,
    RuntimeEvent, RuntimeEventKind, RuntimeEvents, loopback_upstream,
};
pub use logs::{Follow, LogLine, LogRequest, LogSource, LogStream, MAX_LOG_LINE, OutputStream};
pub use probe::{HealthProbe, ProbeTarget};
pub use proxy::{Applied, DrainRef, Proxy, ProxyError, RouteBlock, RouteSpec};
