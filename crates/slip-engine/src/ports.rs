//! The seams between the deploy driver and the outside world.
//!
//! Each trait speaks in deploy verbs, not in Docker's or Caddy's vocabulary. Real adapters live in
//! [`crate::docker`], [`crate::caddy`] and [`crate::probe`]; fakes in `crate::testing`.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::pin::Pin;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use futures::{Stream, TryStreamExt};

/// An engine container id (full hex id from Docker/Podman).
pub type ContainerId = String;

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

/// Credentials for one registry host. `Debug` never shows the password.
#[derive(Clone, PartialEq, Eq)]
pub struct RegistryCredentials {
    /// Registry user name.
    pub username: String,
    /// Registry password or token.
    pub password: String,
}

impl fmt::Debug for RegistryCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RegistryCredentials").field("username", &self.username).field("password", &"***").finish()
    }
}

/// What a pull produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PulledImage {
    /// The local image id (`sha256:…`).
    pub id: String,
    /// The repository digest reference (`host/path@sha256:…`) when the engine knows it.
    pub digest: Option<String>,
}

/// What the engine says about one container right now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerState {
    /// Engine id.
    pub id: ContainerId,
    /// Name without the leading `/`.
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
    /// Published ports as currently bound (they can change after an engine restart).
    pub ports: Vec<PortMapping>,
    /// Labels.
    pub labels: BTreeMap<String, String>,
}

/// One line of `list`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerSummary {
    /// Engine id.
    pub id: ContainerId,
    /// Name without the leading `/`.
    pub name: String,
    /// Whether it is running now.
    pub running: bool,
    /// Labels.
    pub labels: BTreeMap<String, String>,
}

/// Which part of a container's output [`ContainerRuntime::logs`] reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogRequest {
    /// Only the last this many lines (of those from `since` on); `None` means every line.
    pub tail: Option<usize>,
    /// Only lines written at or after this time (exact to the engine's nanosecond timestamps).
    pub since: Option<SystemTime>,
    /// Whether the stream ends now or stays open for new lines.
    pub follow: Follow,
}

impl LogRequest {
    /// The last `lines` lines, then the end of the stream.
    pub fn tail(lines: usize) -> LogRequest {
        LogRequest { tail: Some(lines), since: None, follow: Follow::No }
    }
}

/// Whether a log stream ends after the lines already written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Follow {
    /// The stream ends after the lines written so far.
    No,
    /// The stream stays open and yields new lines as they are written, until the container stops.
    UntilStopped,
}

/// Which output of the container a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OutputStream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

impl OutputStream {
    /// `stdout` or `stderr`, as the API names them.
    pub fn as_str(self) -> &'static str {
        match self {
            OutputStream::Stdout => "stdout",
            OutputStream::Stderr => "stderr",
        }
    }
}

/// The longest line a runtime hands out, in bytes. Output that goes on longer without a line ending (progress
/// bars drawn with `\r`, binary) is cut into pieces of at most this size (see [`LogLine::cut`]), so no
/// container's output, however long its history, sits in slipd's memory as one string.
pub const MAX_LOG_LINE: usize = 64 * 1024;

/// One line of a container's output, without its line ending. Holds whatever the app printed, secret values
/// included: redact before it leaves slipd.
///
/// A line longer than [`MAX_LOG_LINE`] comes in pieces: every piece but the last is marked as cut, and the next
/// line of the same stream continues it. Whoever redacts must then redact across the cut, since a secret value
/// may straddle it ([`crate::redact::Redactor::split_point`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    /// When the engine received it (its first byte, for a line written in several parts); `None` when the engine
    /// gave no timestamp.
    pub at: Option<SystemTime>,
    /// Where the app wrote it.
    pub stream: OutputStream,
    /// The text (invalid UTF-8 replaced).
    pub text: String,
    /// Whether the next line of the same stream continues this one (a piece of a line longer than
    /// [`MAX_LOG_LINE`]).
    pub cut: bool,
}

/// A container's output, line by line; an `Err` item ends it.
pub type LogStream = Pin<Box<dyn Stream<Item = Result<LogLine, RuntimeError>> + Send>>;

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
    /// The engine refused an operation.
    #[error("container engine rejected {op} for {target}: {message}")]
    Rejected { op: &'static str, target: String, message: String },
}

/// The container engine, in deploy verbs.
#[async_trait]
pub trait ContainerRuntime: Send + Sync {
    /// Checks that the engine answers.
    async fn ping(&self) -> Result<(), RuntimeError>;
    /// Pulls `reference` (`repo:tag` or `repo@sha256:…`), sending `credentials` to that registry only.
    async fn pull(
        &self,
        reference: &str,
        credentials: Option<&RegistryCredentials>,
    ) -> Result<PulledImage, RuntimeError>;
    /// The local image for `reference`, if present, without pulling.
    async fn local_image(&self, reference: &str) -> Result<Option<PulledImage>, RuntimeError>;
    /// Creates and starts a container. On failure nothing is left behind.
    async fn start(&self, spec: &ContainerSpec) -> Result<ContainerId, RuntimeError>;
    /// Starts an existing, stopped container again (recreate's restore path).
    async fn restart(&self, id: &str) -> Result<(), RuntimeError>;
    /// Current state, or `None` when the container does not exist.
    async fn inspect(&self, id: &str) -> Result<Option<ContainerState>, RuntimeError>;
    /// SIGTERM, then SIGKILL after `grace`. Stopping a stopped or missing container is `Ok`.
    async fn stop(&self, id: &str, grace: Duration) -> Result<(), RuntimeError>;
    /// Force-removes a container. Removing a missing container is `Ok`.
    async fn remove(&self, id: &str) -> Result<(), RuntimeError>;
    /// Every container (running or not) carrying all of `labels`.
    async fn list(&self, labels: &[(&str, &str)]) -> Result<Vec<ContainerSummary>, RuntimeError>;
    /// A container's output (stdout and stderr) as `request` selects, line by line, in the order the engine
    /// received it. A container that does not exist (any more) has no lines: the stream is empty.
    fn logs(&self, id: &str, request: &LogRequest) -> LogStream;
    /// The last `lines` lines of a container's output (stdout and stderr), as text, the pieces of a cut line
    /// joined again (for tests and small reads: a joined line is not bounded by [`MAX_LOG_LINE`]).
    async fn logs_tail(&self, id: &str, lines: usize) -> Result<Vec<String>, RuntimeError> {
        let pieces: Vec<LogLine> = self.logs(id, &LogRequest::tail(lines)).try_collect().await?;
        let mut joined: Vec<String> = Vec::new();
        let mut open: [Option<usize>; 2] = [None, None];
        for piece in pieces {
            let slot = usize::from(piece.stream == OutputStream::Stderr);
            match open[slot] {
                Some(at) => joined[at].push_str(&piece.text),
                None => joined.push(piece.text),
            }
            open[slot] = piece.cut.then(|| open[slot].unwrap_or(joined.len() - 1));
        }
        Ok(joined)
    }
    /// Removes an image by reference without force. A missing image is `Ok`; an image in use is an error.
    async fn remove_image(&self, reference: &str) -> Result<(), RuntimeError>;
}

/// One route of the slip block in Caddy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteSpec {
    /// Caddy `@id`: `slip-<app>` for route 0, `slip-<app>-<n>` after.
    pub id: String,
    /// Host matcher (lowercase).
    pub hostname: String,
    /// Path prefix (`None` or `/` matches everything).
    pub path_prefix: Option<String>,
    /// Strip the prefix before proxying.
    pub strip_prefix: bool,
    /// `127.0.0.1:<port>`.
    pub upstream: String,
    /// How long Caddy holds a request while no upstream accepts (`try_duration`).
    pub hold_timeout: Duration,
}

/// A never-matching route that keeps an old upstream's in-flight counter alive while it drains.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DrainRef {
    /// `slipd-drain:<app>`.
    pub id: String,
    /// The draining upstream, `127.0.0.1:<port>`.
    pub upstream: String,
}

/// Everything slip wants in its Caddy server, in any order; the adapter sorts (SPEC §9.4).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RouteBlock {
    /// App routes.
    pub routes: Vec<RouteSpec>,
    /// Drain references.
    pub drains: Vec<DrainRef>,
}

/// Whether `apply` had to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// Caddy already had exactly this block; nothing was written.
    Unchanged,
    /// The block was written and read back.
    Written,
}

/// Failures talking to Caddy.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// The admin API does not answer.
    #[error("cannot reach Caddy's admin API at {url}: {message}")]
    Unreachable { url: String, message: String },
    /// Caddy refused a change.
    #[error("Caddy rejected {op}: {message}")]
    Rejected { op: String, message: String },
    /// A listener is already claimed by another server.
    #[error("{0}")]
    ListenerConflict(String),
    /// Optimistic concurrency kept failing, or read-back differed.
    #[error("Caddy config changed underneath slip during {op}; gave up after retries")]
    Conflict { op: String },
}

/// The reverse proxy, in deploy verbs.
#[async_trait]
pub trait Proxy: Send + Sync {
    /// Makes sure slip's server exists in Caddy (bootstrap, SPEC §9.3). Cheap when it already does.
    async fn ensure_server(&self) -> Result<(), ProxyError>;
    /// Makes slip's route block equal to `block` in one atomic write, then verifies by reading back.
    /// Writes nothing when Caddy already matches. Foreign routes are kept unchanged.
    async fn apply(&self, block: &RouteBlock) -> Result<Applied, ProxyError>;
    /// Requests in flight to `upstream`, or `None` when Caddy does not list it.
    async fn in_flight(&self, upstream: &str) -> Result<Option<u64>, ProxyError>;
}

/// What a single HTTP probe asks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeTarget {
    /// Host port on 127.0.0.1.
    pub port: u16,
    /// Path starting with `/`.
    pub path: String,
    /// `Host` header.
    pub host: Option<String>,
    /// Per-probe timeout.
    pub timeout: Duration,
}

/// Sends one health probe. Never fails: a failure is a `ProbeResult`.
#[async_trait]
pub trait HealthProbe: Send + Sync {
    /// One `GET` of the target; 2xx and 3xx are healthy.
    async fn check(&self, target: &ProbeTarget) -> slip_core::deploy::ProbeResult;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{FakeRuntime, Journal};

    #[tokio::test]
    async fn logs_tail_joins_the_pieces_of_a_cut_line_per_stream() {
        let runtime = FakeRuntime::new(Journal::default());
        let spec = ContainerSpec {
            name: "slip-web-1".into(),
            image: "registry.test/web@sha256:00".into(),
            labels: BTreeMap::new(),
            env: Vec::new(),
            ports: Vec::new(),
            network: None,
            resources: Resources::default(),
            mounts: Vec::new(),
            init: false,
            log: LogRotation { max_size_bytes: 1 << 20, max_files: 1 },
        };
        let id = runtime.start(&spec).await.unwrap();
        let line = |stream, text: &str, cut| LogLine { at: None, stream, text: text.into(), cut };
        runtime.write_log(&id, line(OutputStream::Stdout, "secret-va", true));
        runtime.write_log(&id, line(OutputStream::Stderr, "between", false));
        runtime.write_log(&id, line(OutputStream::Stdout, "lue-1", false));
        runtime.write_log(&id, line(OutputStream::Stdout, "next", false));
        assert_eq!(runtime.logs_tail(&id, 10).await.unwrap(), ["secret-value-1", "between", "next"]);
    }
}
