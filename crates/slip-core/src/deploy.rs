//! One deploy attempt as a pure state machine.

/// The outcome of one health probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeResult {
    /// A 2xx or 3xx answer with this status.
    Healthy(u16),
    /// Anything else, with a short reason a person can act on (`HTTP 503`, `connection refused`).
    Unhealthy(String),
}
