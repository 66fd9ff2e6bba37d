//! The health probe: one HTTP `GET` of an upstream.

use std::time::Duration;

use async_trait::async_trait;

/// What a single HTTP probe asks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeTarget {
    /// The upstream address to dial, `host:port`, as the runtime publishes it ([`super::InstanceRuntime::upstream`]).
    pub upstream: String,
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
