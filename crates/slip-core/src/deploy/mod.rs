//! One deploy attempt as a pure state machine: events in, next action out.
//!
//! It knows nothing about Docker, Caddy, HTTP, SQLite or the wall clock: the driver in
//! `slip_engine::run` executes each [`Action`], turns the result into an [`Event`] and passes the
//! current time in. The machine decides *what* happens next and *why* a deploy failed; it never
//! decides *how* (which ports, which JSON).
//!
//! The two strategies (SPEC §7.4, §7.5):
//! - **blue-green**: pull, configure, start the candidate beside the old instance, probe it, switch
//!   the routes in one write, drain the old instance, stop and remove it.
//! - **recreate**: pull, configure, hold the routes on the candidate's (not yet listening) ports,
//!   drain and stop the old instance (kept, so it can be restored), start the candidate, probe it,
//!   commit, remove the old instance. A failure after the old instance stopped restores it.
//!
//! Invariant: traffic moves to a candidate only after a successful probe (blue-green) or is held
//! for it (recreate); the old instance is stopped only after the routes have moved away from it.

use std::time::{Duration, Instant};
mod check;
mod display;
mod failure;
mod machine;
mod observe;
mod watch;

#[cfg(test)]
mod tests;

pub use check::GRACE_POLL;
pub use failure::{ErrorCode, StepFailure};
pub use machine::{DRAIN_CONFIRM, DRAIN_POLL, Deploy, PORT_RETRIES};
pub use observe::{ContainerHealth, ContainerObservation, Observation, ProbeResult};

/// Deploy strategy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// Start new beside old, switch, drain old.
    BlueGreen,
    /// Stop old, start new (with requests held by Caddy meanwhile).
    Recreate,
}

impl Strategy {
    /// The name used in config, the API and history.
    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::BlueGreen => "blue-green",
            Strategy::Recreate => "recreate",
        }
    }
}

/// How the candidate is judged healthy (SPEC §8.1, §8.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthPlan {
    /// `Some(path)`: HTTP probes of that path. `None`: running and stable for `stable_for`.
    pub path: Option<String>,
    /// Pause after each probe.
    pub interval: Duration,
    /// Per-probe timeout (used by the driver).
    pub timeout: Duration,
    /// Consecutive failures after `start_period` that make the candidate unhealthy.
    pub retries: u32,
    /// Grace period in which failures do not count; a success ends it early.
    pub start_period: Duration,
    /// Continuous running time needed when there is no path.
    pub stable_for: Duration,
}

/// The old instance a deploy replaces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OldInstance {
    /// Engine container id.
    pub container: String,
}

/// Everything the machine needs to know up front.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Blue-green or recreate.
    pub strategy: Strategy,
    /// Whether the app has routes in Caddy (web) or not (worker).
    pub routed: bool,
    /// Health rules for the candidate.
    pub health: HealthPlan,
    /// Longest wait for the old instance's in-flight requests to reach zero.
    pub drain_timeout: Duration,
    /// Time between SIGTERM and SIGKILL.
    pub stop_grace: Duration,
    /// Bound on pulling → end of switching (`deploy.timeout`).
    pub timeout: Duration,
    /// Post-switch watch window (`deploy.watch`, SPEC §8.4); zero is off. Only a deploy that replaces a release
    /// watches: a first deploy has nothing to roll back to.
    pub watch: Duration,
    /// The running instance, if any.
    pub old: Option<OldInstance>,
}

/// What configuring settled that the plan could not know before the image was read (SPEC §5: the repo config
/// may give the kind, hence the default strategy and whether the app is routed, and any `health.*` field).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settled {
    /// Blue-green or recreate.
    pub strategy: Strategy,
    /// Whether the app has routes.
    pub routed: bool,
    /// Health rules for the candidate.
    pub health: HealthPlan,
}

/// What the driver must do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Disk preflight and pull of the release's image.
    Pull,
    /// Resolve the release: lease ports, build the container spec, record the candidate instance.
    Configure,
    /// Create and start the candidate.
    Start,
    /// Inspect `container` and, if the plan has a path, probe it over HTTP.
    Probe {
        /// Which container.
        container: String,
    },
    /// Sleep until this instant.
    WaitUntil(Instant),
    /// Recreate: point the routes at the candidate's leased ports (Caddy holds requests until it
    /// listens) and keep a drain reference to the old upstream.
    Hold,
    /// Move the routes to the candidate in one write (with a drain reference to the old upstream when
    /// `drain_old`).
    Switch {
        /// Whether the old instance is still serving and must be drained.
        drain_old: bool,
    },
    /// Record in the store that the candidate is current (and the old instance previous).
    Commit,
    /// Ask Caddy how many requests are in flight to the old instance.
    PollDrain,
    /// SIGTERM, then SIGKILL after `grace`.
    Stop {
        /// Which container.
        container: String,
        /// Grace period.
        grace: Duration,
    },
    /// Force-remove a container.
    Remove {
        /// Which container.
        container: String,
    },
    /// Start a stopped container again (recreate restore).
    Restart {
        /// Which container.
        container: String,
    },
    /// Point the routes back at the old instance (recreate restore, watch rollback).
    RouteBack,
    /// Undo the commit in the store: the old release is current again (watch rollback).
    Uncommit,
    /// The deploy is over.
    Finish(Outcome),
}

/// What the driver observed after an action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The image is local.
    Pulled,
    /// The candidate is configured; with what the image's own config settled (`None`: the plan stands).
    Configured(Option<Settled>),
    /// The candidate runs, with this container id.
    Started(String),
    /// A probe round finished.
    Probed(Observation),
    /// The wait is over.
    Waited,
    /// Requests are held for the candidate.
    Held,
    /// The routes point at the candidate.
    Switched,
    /// The store records the candidate as current.
    Committed,
    /// In-flight requests to the old instance (`None`: Caddy does not list it).
    InFlight(Option<u64>),
    /// The container stopped.
    Stopped,
    /// The container is gone.
    Removed,
    /// The old container runs again.
    Restarted,
    /// The routes point at the old instance again.
    RoutedBack,
    /// The store records the old release as current again.
    Uncommitted,
    /// The action failed.
    Failed(StepFailure),
    /// The driver was asked to stop the deploy (in place of the pending action's answer; see
    /// [`Deploy::interruptible`]).
    Interrupted(Interrupt),
}

/// Why a deploy is asked to stop before its end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Interrupt {
    /// slipd is shutting down; the deploy goes back to the queue for the next start.
    Shutdown,
    /// Someone cancelled the deploy; the reason is shown as its error.
    Cancel(String),
}

/// How the pending action may be interrupted ([`Deploy::interruptible`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interruptible {
    /// Not at all: the deploy has switched, is unwinding, or was interrupted already.
    No,
    /// Before it runs: it has effects (creating, routing, stopping), so once begun it ends.
    BeforeAction,
    /// Also while it runs: it changes nothing (a pull, a probe, a wait), so it may be dropped halfway.
    Anytime,
}

/// How a deploy ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The release is current.
    Completed {
        /// Non-fatal problems (drain timeouts, stop failures) for the record.
        warnings: Vec<String>,
    },
    /// The release is not current.
    Failed {
        /// Why.
        failure: StepFailure,
        /// True when nothing of the app is serving afterwards (a recreate whose restore failed).
        app_down: bool,
    },
    /// The release was current, failed its post-switch watch, and the previous release serves again.
    RolledBack {
        /// Why the watch rolled back.
        reason: StepFailure,
        /// Non-fatal problems of the rollback, for the record.
        warnings: Vec<String>,
    },
}

/// The deploy status names of SPEC §7.2 that the machine moves through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Pulling images.
    Pulling,
    /// Resolving config, ports, env.
    Configuring,
    /// Creating and starting the candidate.
    Starting,
    /// Probing the candidate.
    HealthChecking,
    /// Moving routes and committing.
    Switching,
    /// Re-probing the new release after the switch, the old one kept for a rollback.
    Watching,
    /// Retiring the old instance.
    Draining,
    /// Done, release current.
    Completed,
    /// Done, release not current.
    Failed,
    /// Done: the watch failed and the previous release serves again.
    RolledBack,
}

impl Status {
    /// The status string used in the API and history.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pulling => "pulling",
            Status::Configuring => "configuring",
            Status::Starting => "starting",
            Status::HealthChecking => "health_checking",
            Status::Switching => "switching",
            Status::Watching => "watching",
            Status::Draining => "draining",
            Status::Completed => "completed",
            Status::Failed => "failed",
            Status::RolledBack => "rolled_back",
        }
    }
}
