//! The instance runtime: creates, starts, inspects, stops, removes and lists the runtime objects of releases.
//!
//! An instance is what one release runs as: one container today, or a pod of containers ([`InstanceSpec::Pod`]).
//! The runtime also says how an instance's published ports are reached ([`InstanceRuntime::upstream`]), so the
//! proxy and the health probe dial what the runtime publishes, whatever the backend. It does not pull images
//! ([`super::ImageStore`]) nor read output ([`super::LogSource`]).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use async_trait::async_trait;

/// An engine container id (full hex id from Docker/Podman).
pub type ContainerId = String;

/// The runtime's id of an instance: a container id, or a pod's id.
pub type InstanceId = String;

/// What to create and start for one release.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InstanceSpec {
    /// One container.
    Container(ContainerSpec),
    /// A pod of containers sharing one network namespace (Podman's kube play).
    Pod(PodSpec),
}

impl InstanceSpec {
    /// The instance's name, e.g. `slip-myapp-1a2b3c4d`.
    pub fn name(&self) -> &str {
        match self {
            InstanceSpec::Container(spec) => &spec.name,
            InstanceSpec::Pod(spec) => &spec.name,
        }
    }

    /// Its labels (identity: see [`crate::labels`]).
    pub fn labels(&self) -> &BTreeMap<String, String> {
        match self {
            InstanceSpec::Container(spec) => &spec.labels,
            InstanceSpec::Pod(spec) => &spec.labels,
        }
    }

    /// The host ports it publishes.
    pub fn ports(&self) -> &[PortMapping] {
        match self {
            InstanceSpec::Container(spec) => &spec.ports,
            InstanceSpec::Pod(spec) => &spec.ports,
        }
    }
}

/// A pod: a rendered Kubernetes `Pod` manifest and what slip publishes of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodSpec {
    /// The pod's name (`metadata.name` of the manifest).
    pub name: String,
    /// Labels on the pod and each of its containers.
    pub labels: BTreeMap<String, String>,
    /// The manifest as rendered for this release (images pinned, host ports slip's). Holds secret values.
    pub manifest: String,
    /// The host ports the manifest publishes, each on 127.0.0.1.
    pub ports: Vec<PortMapping>,
}

/// Everything needed to create and start one container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerSpec {
    /// Container name, e.g. `slip-myapp-1a2b3c4d`.
    pub name: String,
    /// Image reference to run; a digest reference (`repo@sha256:…`) or an image id whenever known.
    pub image: String,
    /// Labels (`slip.app`, `slip.deploy`, `slip.managed`, ...). Identity lives here, not in the name.
    pub labels: BTreeMap<String, String>,
    /// Environment, already merged in precedence order. Holds secret values: never log a spec's env.
    pub env: Vec<(String, String)>,
    /// Published ports, always bound to 127.0.0.1.
    pub ports: Vec<PortMapping>,
    /// Network to join, with an optional alias on it.
    pub network: Option<NetworkAttachment>,
    /// Resource limits.
    pub resources: Resources,
    /// Bind mounts.
    pub mounts: Vec<Mount>,
    /// Run an init process as PID 1.
    pub init: bool,
    /// Log rotation for the engine's json-file/k8s-file driver.
    pub log: LogRotation,
}

/// A host port on 127.0.0.1 published to a container port (TCP).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PortMapping {
    /// Port on 127.0.0.1 of the host.
    pub host: u16,
    /// Port inside the container.
    pub container: u16,
}

/// A network to attach a container to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkAttachment {
    /// Network name; created (bridge, label `slip.managed=true`) when missing.
    pub name: String,
    /// DNS alias on that network (the app name for production instances).
    pub alias: Option<String>,
}

/// Resource limits; `None` means unlimited (only ever because the config set nothing).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Resources {
    /// Memory limit in bytes.
    pub memory_bytes: Option<u64>,
    /// CPU limit in units of 10^-9 CPUs.
    pub nano_cpus: Option<u64>,
    /// Maximum number of processes.
    pub pids: Option<i64>,
}

/// A bind mount of a host directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// Absolute host path (already created by the engine's volume step).
    pub host_path: PathBuf,
    /// Absolute path inside the container.
    pub container_path: String,
    /// Mount read-only.
    pub read_only: bool,
}

/// Container log rotation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogRotation {
    /// Size of one log file before rotation, in bytes.
    pub max_size_bytes: u64,
    /// Number of files kept.
    pub max_files: u32,
}

/// The upstream address of a port published on loopback, as Docker and Podman publish slip's.
pub fn loopback_upstream(published: PortMapping) -> String {
    format!("127.0.0.1:{}", published.host)
}

/// What the engine says about one instance right now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceState {
    /// Runtime id.
    pub id: InstanceId,
    /// Name without the leading `/`.
    pub name: String,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Published ports as currently bound (they can change after an engine restart).
    pub ports: Vec<PortMapping>,
    /// One entry per container, in the instance's order (one for a single-container instance).
    pub containers: Vec<ContainerState>,
}

impl InstanceState {
    /// Whether every container of the instance runs.
    pub fn running(&self) -> bool {
        !self.containers.is_empty() && self.containers.iter().all(|c| c.running)
    }
}

/// What the engine says about one container of an instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerState {
    /// The container's name inside its instance (`app` for a single-container instance).
    pub name: String,
    /// Whether it is running now.
    pub running: bool,
    /// Exit code of the last run, when it has exited.
    pub exit_code: Option<i64>,
    /// Whether the kernel OOM-killed it.
    pub oom_killed: bool,
    /// `StartedAt` as the engine reports it; a change means the container restarted.
    pub started_at: String,
    /// The engine's restart count.
    pub restart_count: i64,
}

/// One line of [`InstanceRuntime::list`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceSummary {
    /// Runtime id.
    pub id: InstanceId,
    /// Name without the leading `/`.
    pub name: String,
    /// Whether it is running now.
    pub running: bool,
    /// Labels.
    pub labels: BTreeMap<String, String>,
}

/// Failures of the container runtime, with the context a person needs.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The engine socket does not answer.
    #[error("cannot reach the container engine at {socket}: {message}")]
    Unreachable { socket: String, message: String },
    /// The registry has no such image or tag.
    #[error("image {image} not found")]
    ImageNotFound { image: String },
    /// The registry refused our credentials (or asked for some).
    #[error("registry {host} refused the pull of {image} (401/403): check [[registry.auth]] for {host}")]
    RegistryAuth { host: String, image: String },
    /// Any other pull failure.
    #[error("pulling {image} failed: {message}")]
    PullFailed { image: String, message: String },
    /// A host port could not be bound.
    #[error("host port {port} is not available: {message}")]
    PortUnavailable { port: u16, message: String },
    /// An init container of a pod exited non-zero, so its main containers never started.
    #[error("an init container of pod {pod} failed: {message}{}", if logs.is_empty() { String::new() } else { format!(" (last lines: {logs})") })]
    InitFailed { pod: String, message: String, logs: String },
    /// The engine refused an operation.
    #[error("container engine rejected {op} for {target}: {message}")]
    Rejected { op: &'static str, target: String, message: String },
}

/// A container of slip's that exited or was killed, as the engine reported it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeEvent {
    /// The container's name.
    pub container: String,
    /// The container's labels, as the engine reports them with the event.
    pub labels: BTreeMap<String, String>,
    /// What happened.
    pub kind: RuntimeEventKind,
}

/// What happened to a container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuntimeEventKind {
    /// Its main process exited (or was killed), with this code when the engine says.
    Died {
        /// The exit code.
        exit_code: Option<i64>,
    },
    /// The kernel killed it for lack of memory.
    OutOfMemory,
}

/// Engine events, as [`InstanceRuntime::events`] yields them.
pub type RuntimeEvents = std::pin::Pin<Box<dyn futures::Stream<Item = Result<RuntimeEvent, RuntimeError>> + Send>>;

/// The runtime of instances, in deploy verbs.
#[async_trait]
pub trait InstanceRuntime: Send + Sync {
    /// Checks that the engine answers.
    async fn ping(&self) -> Result<(), RuntimeError>;
    /// Creates and starts an instance. On failure nothing is left behind.
    async fn start(&self, spec: &InstanceSpec) -> Result<InstanceId, RuntimeError>;
    /// Starts an existing, stopped instance again (recreate's restore path).
    async fn restart(&self, id: &str) -> Result<(), RuntimeError>;
    /// Current state, or `None` when the instance does not exist.
    async fn inspect(&self, id: &str) -> Result<Option<InstanceState>, RuntimeError>;
    /// SIGTERM, then SIGKILL after `grace`. Stopping a stopped or missing instance is `Ok`.
    async fn stop(&self, id: &str, grace: Duration) -> Result<(), RuntimeError>;
    /// Force-removes an instance. Removing a missing instance is `Ok`.
    async fn remove(&self, id: &str) -> Result<(), RuntimeError>;
    /// Every instance (running or not) carrying all of `labels`.
    async fn list(&self, labels: &[(&str, &str)]) -> Result<Vec<InstanceSummary>, RuntimeError>;
    /// From now on, every container carrying all of `labels` that exits or is killed for lack of memory, as the
    /// engine reports it (events since the second of the call are included, so one that happens while the
    /// subscription is being set up is not lost; a duplicate is possible). The stream ends, or yields an `Err`, when
    /// the engine's event stream breaks; subscribe again.
    async fn events(&self, labels: &[(&str, &str)]) -> Result<RuntimeEvents, RuntimeError>;
    /// The address the proxy and the health probe dial to reach `published`: the host port on loopback, where
    /// this runtime publishes.
    fn upstream(&self, published: PortMapping) -> String {
        loopback_upstream(published)
    }
    /// Why this runtime cannot run pod specs, or `None` when it can.
    fn pod_refusal(&self) -> Option<&str> {
        Some("pods need Podman's kube play, which this runtime does not drive")
    }
    /// Whether host `port` can be leased for publishing right now (nothing else holds it on loopback).
    fn port_is_free(&self, port: u16) -> bool {
        std::net::TcpListener::bind(("127.0.0.1", port)).is_ok()
    }
}
