//! What the driver observed of a candidate during one probe round.

/// The outcome of one HTTP health probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeResult {
    /// A 2xx or 3xx answer with this status.
    Healthy(u16),
    /// Anything else, with a short reason a person can act on (`HTTP 503`, `connection refused`).
    Unhealthy(String),
}

/// What the engine said about the container during one probe round.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContainerObservation {
    /// Running; `started_at` and `restart_count` detect restarts.
    Running {
        /// The engine's `StartedAt`.
        started_at: String,
        /// The engine's restart count.
        restart_count: i64,
    },
    /// Not running (exited, OOM-killed, or removed).
    Stopped {
        /// Exit code when known.
        exit_code: Option<i64>,
        /// Killed for memory.
        oom_killed: bool,
    },
}

/// One probe round of an instance: one entry per container, in the instance's order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observation {
    /// Every container of the instance (one for a single-container app; each container of a pod).
    pub containers: Vec<ContainerHealth>,
}

/// One container's part of a probe round.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerHealth {
    /// The container's name inside its instance (`app` for a single-container app, the manifest's name in a pod).
    pub name: String,
    /// What the engine says about it.
    pub state: ContainerObservation,
    /// Its HTTP probe's answer, when it is probed over HTTP and running.
    pub http: Option<ProbeResult>,
}

impl Observation {
    /// The round of an instance with one container, called `app`.
    pub fn single(state: ContainerObservation, http: Option<ProbeResult>) -> Observation {
        Observation { containers: vec![ContainerHealth { name: "app".to_owned(), state, http }] }
    }
}
