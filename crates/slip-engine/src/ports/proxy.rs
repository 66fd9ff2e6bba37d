//! The reverse proxy, in deploy verbs: slip's route block, drain counts.

use std::time::Duration;

use async_trait::async_trait;

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
