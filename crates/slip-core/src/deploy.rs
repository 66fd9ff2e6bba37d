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

use std::fmt;
use std::time::{Duration, Instant};

/// The outcome of one HTTP health probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeResult {
    /// A 2xx or 3xx answer with this status.
    Healthy(u16),
    /// Anything else, with a short reason a person can act on (`HTTP 503`, `connection refused`).
    Unhealthy(String),
}

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
    /// The running instance, if any.
    pub old: Option<OldInstance>,
}

/// Machine-readable failure codes (SPEC §7.2). Only the ones the deploy machine and driver produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    /// The registry has no such image or tag.
    ImageNotFound,
    /// The registry refused the credentials.
    RegistryAuthFailed,
    /// Any other pull failure.
    PullFailed,
    /// Too little free disk for a pull.
    DiskFull,
    /// Building the container from config failed (env file, ports, ...).
    EnvFileMissing,
    /// No host port could be leased or bound.
    PortUnavailable,
    /// The engine refused to create or start the container.
    StartFailed,
    /// The candidate failed its health check.
    Unhealthy,
    /// The candidate exited or restarted during the health check.
    Exited,
    /// Caddy refused or lost a write.
    CaddyFailed,
    /// Caddy did not answer.
    CaddyUnavailable,
    /// The container engine did not answer.
    RuntimeUnavailable,
    /// `deploy.timeout` passed before the switch.
    Timeout,
    /// The deploy was cancelled.
    Cancelled,
    /// slipd stopped or crashed while the deploy ran.
    Interrupted,
    /// The app was deleted while the deploy waited.
    AppDeleted,
    /// A pod deploy on an engine without pods.
    PodsRequirePodman,
    /// No container port is known for a route.
    NoPort,
    /// The deploy waited in the queue longer than `deploy.queue_ttl`.
    Expired,
}

impl ErrorCode {
    /// The code as it appears in the API and history.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::ImageNotFound => "image_not_found",
            ErrorCode::RegistryAuthFailed => "registry_auth_failed",
            ErrorCode::PullFailed => "pull_failed",
            ErrorCode::DiskFull => "disk_full",
            ErrorCode::EnvFileMissing => "env_file_missing",
            ErrorCode::PortUnavailable => "port_unavailable",
            ErrorCode::StartFailed => "start_failed",
            ErrorCode::Unhealthy => "unhealthy",
            ErrorCode::Exited => "exited",
            ErrorCode::CaddyFailed => "caddy_failed",
            ErrorCode::CaddyUnavailable => "caddy_unavailable",
            ErrorCode::RuntimeUnavailable => "runtime_unavailable",
            ErrorCode::Timeout => "timeout",
            ErrorCode::Cancelled => "cancelled",
            ErrorCode::Interrupted => "interrupted",
            ErrorCode::AppDeleted => "app_deleted",
            ErrorCode::PodsRequirePodman => "pods_require_podman",
            ErrorCode::NoPort => "no_port",
            ErrorCode::Expired => "expired",
        }
    }
}

/// A step that could not be done, as data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepFailure {
    /// Machine-readable code.
    pub code: ErrorCode,
    /// A sentence a person can act on.
    pub message: String,
}

impl StepFailure {
    /// A failure with `code` and `message`.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> StepFailure {
        StepFailure { code, message: message.into() }
    }
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

/// One probe round: the container's state and, when the plan has a path, the HTTP result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observation {
    /// Container state.
    pub container: ContainerObservation,
    /// HTTP result (`None` when the plan has no path or the container is not running).
    pub http: Option<ProbeResult>,
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
    /// `drain_old`), then commit current/previous in the store.
    Switch {
        /// Whether the old instance is still serving and must be drained.
        drain_old: bool,
    },
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
    /// Point the routes back at the old instance (recreate restore).
    RouteBack,
    /// The deploy is over.
    Finish(Outcome),
}

/// What the driver observed after an action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The image is local.
    Pulled,
    /// The candidate is configured.
    Configured,
    /// The candidate runs, with this container id.
    Started(String),
    /// A probe round finished.
    Probed(Observation),
    /// The wait is over.
    Waited,
    /// Requests are held for the candidate.
    Held,
    /// The routes point at the candidate and the store says so.
    Switched,
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
    /// The action failed.
    Failed(StepFailure),
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
    /// Retiring the old instance.
    Draining,
    /// Done, release current.
    Completed,
    /// Done, release not current.
    Failed,
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
            Status::Draining => "draining",
            Status::Completed => "completed",
            Status::Failed => "failed",
        }
    }
}

/// Interval between drain polls while requests are in flight (SPEC §9.6).
pub const DRAIN_POLL: Duration = Duration::from_millis(250);

/// Delay of the confirming poll after a first zero count. Two zero readings in a row still guard
/// against a request caught between Caddy's accept and its dial at the moment of the switch; that
/// window is microseconds, so confirming 50 ms later is as safe as 250 ms and takes 200 ms off every
/// deploy (see docs/decisions.md).
pub const DRAIN_CONFIRM: Duration = Duration::from_millis(50);

/// Upper bound on the pause between HTTP probes inside the grace period (`start_period`).
pub const GRACE_POLL: Duration = Duration::from_millis(500);

/// Upper bound on the pause between probe rounds of a running-and-stable check.
const STABLE_POLL: Duration = Duration::from_millis(500);

/// One deploy attempt.
#[derive(Debug)]
pub struct Deploy {
    plan: Plan,
    phase: Phase,
    /// Set once the candidate container exists.
    candidate: Option<String>,
    /// Pulling → switching must end before this.
    deadline: Instant,
    /// Whether the old instance has been stopped (recreate).
    old_stopped: bool,
    /// Whether a restore restarted the old instance (it then needs a health check).
    restarted_old: bool,
    warnings: Vec<String>,
    notes: Vec<String>,
}

#[derive(Debug, Clone)]
enum Phase {
    Pulling,
    Configuring,
    Starting,
    Checking(Check),
    Switching,
    /// Recreate: routes held on the candidate, now draining the old instance.
    Holding,
    Draining(Drain),
    StoppingOld,
    RemovingOld,
    /// Blue-green or recreate failure: removing the candidate before finishing.
    Discarding(StepFailure),
    /// Recreate restore: starting the old container again, routing back and probing it.
    Restoring(Restore),
    Done(Outcome),
}

#[derive(Debug, Clone)]
struct Check {
    container: String,
    /// When probing began (the container had just started).
    since: Instant,
    failures: u32,
    /// First observation of a running container, for the stable check and restart detection.
    first_seen: Option<(Instant, String, i64)>,
    last_reason: Option<String>,
    /// Whether the next event answers a Probe (true) or a WaitUntil (false).
    probing: bool,
}

#[derive(Debug, Clone)]
struct Drain {
    until: Instant,
    zero_streak: u32,
    polling: bool,
    /// Recreate drains before stopping old; blue-green after the switch.
    after_switch: bool,
}

#[derive(Debug, Clone)]
struct Restore {
    failure: StepFailure,
    step: RestoreStep,
}

#[derive(Debug, Clone)]
enum RestoreStep {
    RemovingCandidate,
    Restarting,
    RoutingBack,
    Checking(Check),
}

impl Deploy {
    /// Starts a deploy at `now` and returns the first action.
    pub fn begin(plan: Plan, now: Instant) -> (Deploy, Action) {
        let deadline = now + plan.timeout;
        let deploy = Deploy {
            plan,
            phase: Phase::Pulling,
            candidate: None,
            deadline,
            old_stopped: false,
            restarted_old: false,
            warnings: Vec::new(),
            notes: Vec::new(),
        };
        (deploy, Action::Pull)
    }

    /// The status to show for the current phase.
    pub fn status(&self) -> Status {
        match &self.phase {
            Phase::Pulling => Status::Pulling,
            Phase::Configuring => Status::Configuring,
            Phase::Starting => Status::Starting,
            Phase::Checking(_) | Phase::Restoring(_) => Status::HealthChecking,
            Phase::Switching => Status::Switching,
            // Recreate removes the old (stopped) container after committing; that is not a drain.
            Phase::RemovingOld if self.plan.strategy == Strategy::Recreate => Status::Switching,
            Phase::Holding | Phase::Draining(_) | Phase::StoppingOld | Phase::RemovingOld => Status::Draining,
            Phase::Discarding(_) => Status::Failed,
            Phase::Done(Outcome::Completed { .. }) => Status::Completed,
            Phase::Done(Outcome::Failed { .. }) => Status::Failed,
        }
    }

    /// The instant by which pulling → switching must be done; the driver bounds actions with it
    /// while [`Deploy::before_switch`] is true.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// True while the deploy has not yet committed the switch (cancellable, bounded by `deadline`).
    pub fn before_switch(&self) -> bool {
        match self.plan.strategy {
            Strategy::BlueGreen => matches!(
                self.phase,
                Phase::Pulling | Phase::Configuring | Phase::Starting | Phase::Checking(_) | Phase::Switching
            ),
            Strategy::Recreate => !matches!(self.phase, Phase::RemovingOld | Phase::Done(_)),
        }
    }

    /// True while a failed deploy is undoing what it did (removing the candidate, restoring a recreate's old
    /// release): that must run to its end, past the deploy's deadline and through a shutdown or cancel.
    pub fn unwinding(&self) -> bool {
        matches!(self.phase, Phase::Discarding(_) | Phase::Restoring(_))
    }

    /// The candidate's container id, once started.
    pub fn candidate(&self) -> Option<&str> {
        self.candidate.as_deref()
    }

    /// Progress notes produced since the last call (probe failures, drain counts), for the record.
    pub fn take_notes(&mut self) -> Vec<String> {
        std::mem::take(&mut self.notes)
    }

    /// Feeds the result of the last action at `now` and returns the next action.
    pub fn advance(&mut self, event: Event, now: Instant) -> Action {
        let phase = std::mem::replace(&mut self.phase, Phase::Pulling);
        let (phase, action) = self.step(phase, event, now);
        self.phase = phase;
        action
    }

    fn step(&mut self, phase: Phase, event: Event, now: Instant) -> (Phase, Action) {
        if let Event::Failed(failure) = event {
            return self.on_failure(phase, failure, now);
        }
        if self.before_switch_phase(&phase) && now >= self.deadline {
            let failure = StepFailure::new(
                ErrorCode::Timeout,
                format!("deploy did not reach the switch within {} (deploy.timeout)", human(self.plan.timeout)),
            );
            return self.on_failure(phase, failure, now);
        }
        match (phase, event) {
            (Phase::Pulling, Event::Pulled) => (Phase::Configuring, Action::Configure),
            (Phase::Configuring, Event::Configured) => match (&self.plan.old, self.plan.strategy) {
                (Some(_), Strategy::Recreate) if self.plan.routed => (Phase::Holding, Action::Hold),
                (Some(old), Strategy::Recreate) => {
                    let container = old.container.clone();
                    (Phase::StoppingOld, Action::Stop { container, grace: self.plan.stop_grace })
                }
                _ => (Phase::Starting, Action::Start),
            },
            (Phase::Holding, Event::Held) => self.start_drain(now, false),
            (Phase::Starting, Event::Started(container)) => {
                self.candidate = Some(container.clone());
                let check = Check {
                    container: container.clone(),
                    since: now,
                    failures: 0,
                    first_seen: None,
                    last_reason: None,
                    probing: true,
                };
                (Phase::Checking(check), Action::Probe { container })
            }
            (Phase::Checking(check), event) => match self.check(check, event, now) {
                CheckStep::Continue(check, action) => (Phase::Checking(check), action),
                CheckStep::Healthy => {
                    let drain_old = self.plan.strategy == Strategy::BlueGreen && self.plan.old.is_some();
                    (Phase::Switching, Action::Switch { drain_old })
                }
                CheckStep::Unhealthy(failure) => self.on_failure(Phase::Starting, failure, now),
            },
            (Phase::Switching, Event::Switched) => match (&self.plan.old, self.plan.strategy) {
                (Some(_), Strategy::BlueGreen) if self.plan.routed => self.start_drain(now, true),
                (Some(old), Strategy::BlueGreen) => {
                    let container = old.container.clone();
                    (Phase::StoppingOld, Action::Stop { container, grace: self.plan.stop_grace })
                }
                (Some(old), Strategy::Recreate) => {
                    (Phase::RemovingOld, Action::Remove { container: old.container.clone() })
                }
                (None, _) => self.complete(),
            },
            (Phase::Draining(drain), Event::InFlight(count)) => self.drain_polled(drain, count, now),
            (Phase::Draining(mut drain), Event::Waited) => {
                drain.polling = true;
                (Phase::Draining(drain), Action::PollDrain)
            }
            (Phase::StoppingOld, Event::Stopped) => {
                self.old_stopped = true;
                match self.plan.strategy {
                    Strategy::Recreate => (Phase::Starting, Action::Start),
                    Strategy::BlueGreen => {
                        let container = self.old_container();
                        (Phase::RemovingOld, Action::Remove { container })
                    }
                }
            }
            (Phase::RemovingOld, Event::Removed) => self.complete(),
            (Phase::Discarding(failure), Event::Removed) => self.fail(failure, false),
            (Phase::Restoring(restore), event) => self.restore(restore, event, now),
            (phase, event) => {
                // A driver bug: an event that does not answer the last action. Fail safe: the
                // candidate is discarded and the old instance kept.
                let failure = StepFailure::new(
                    ErrorCode::Interrupted,
                    format!("internal error: unexpected {event:?} while {}", self.status_of(&phase).as_str()),
                );
                self.on_failure(phase, failure, now)
            }
        }
    }

    fn before_switch_phase(&self, phase: &Phase) -> bool {
        match self.plan.strategy {
            Strategy::BlueGreen => {
                matches!(phase, Phase::Pulling | Phase::Configuring | Phase::Starting | Phase::Checking(_))
            }
            Strategy::Recreate => {
                matches!(
                    phase,
                    Phase::Pulling | Phase::Configuring | Phase::Starting | Phase::Checking(_) | Phase::Holding
                ) || matches!(phase, Phase::Draining(d) if !d.after_switch)
            }
        }
    }

    fn status_of(&self, phase: &Phase) -> Status {
        match phase {
            Phase::Pulling => Status::Pulling,
            Phase::Configuring => Status::Configuring,
            Phase::Starting => Status::Starting,
            Phase::Checking(_) | Phase::Restoring(_) => Status::HealthChecking,
            Phase::Switching => Status::Switching,
            _ => Status::Draining,
        }
    }

    fn old_container(&self) -> String {
        self.plan.old.as_ref().map(|o| o.container.clone()).unwrap_or_default()
    }

    fn start_drain(&mut self, now: Instant, after_switch: bool) -> (Phase, Action) {
        let drain = Drain { until: now + self.plan.drain_timeout, zero_streak: 0, polling: true, after_switch };
        (Phase::Draining(drain), Action::PollDrain)
    }

    fn drain_polled(&mut self, mut drain: Drain, count: Option<u64>, now: Instant) -> (Phase, Action) {
        drain.polling = false;
        let drained = match count {
            Some(0) => {
                drain.zero_streak += 1;
                drain.zero_streak >= 2
            }
            Some(n) => {
                drain.zero_streak = 0;
                if now >= drain.until {
                    self.warnings.push(format!(
                        "drain timeout ({}) passed with {n} request(s) still in flight to the old release",
                        human(self.plan.drain_timeout)
                    ));
                    true
                } else {
                    false
                }
            }
            // Caddy does not list the upstream: we cannot see in-flight requests, so wait it out.
            None => now >= drain.until,
        };
        if drained {
            let container = self.old_container();
            return (Phase::StoppingOld, Action::Stop { container, grace: self.plan.stop_grace });
        }
        let pause = if drain.zero_streak > 0 { DRAIN_CONFIRM } else { DRAIN_POLL };
        let next = (now + pause).min(drain.until);
        (Phase::Draining(drain), Action::WaitUntil(next))
    }

    fn check(&mut self, mut check: Check, event: Event, now: Instant) -> CheckStep {
        let observation = match event {
            Event::Waited if !check.probing => {
                check.probing = true;
                let container = check.container.clone();
                return CheckStep::Continue(check, Action::Probe { container });
            }
            Event::Probed(observation) if check.probing => observation,
            other => {
                return CheckStep::Unhealthy(StepFailure::new(
                    ErrorCode::Interrupted,
                    format!("internal error: unexpected {other:?} during the health check"),
                ));
            }
        };
        check.probing = false;
        let health = self.plan.health.clone();

        let (started_at, restart_count) = match observation.container {
            ContainerObservation::Stopped { exit_code, oom_killed } => {
                let how = match (oom_killed, exit_code) {
                    (true, _) => "was killed for using too much memory (OOM)".to_owned(),
                    (false, Some(code)) => format!("exited with code {code}"),
                    (false, None) => "stopped".to_owned(),
                };
                return CheckStep::Unhealthy(StepFailure::new(
                    ErrorCode::Exited,
                    format!("health check: the container {how} {} after it started", human(now - check.since)),
                ));
            }
            ContainerObservation::Running { started_at, restart_count } => (started_at, restart_count),
        };
        match &check.first_seen {
            None => check.first_seen = Some((now, started_at, restart_count)),
            Some((_, s, r)) if *s != started_at || *r != restart_count => {
                return CheckStep::Unhealthy(StepFailure::new(
                    ErrorCode::Exited,
                    "health check: the container restarted during the health check (it crashed and the engine restarted it)",
                ));
            }
            Some(_) => {}
        }

        let Some(path) = &health.path else {
            let first = check.first_seen.as_ref().map(|(t, _, _)| *t).unwrap_or(now);
            if now.duration_since(first) >= health.stable_for {
                return CheckStep::Healthy;
            }
            let next = (now + health.interval.min(STABLE_POLL)).min(first + health.stable_for);
            return CheckStep::Continue(check, Action::WaitUntil(next));
        };

        match observation.http {
            Some(ProbeResult::Healthy(_)) => CheckStep::Healthy,
            result => {
                let reason = match result {
                    Some(ProbeResult::Unhealthy(reason)) => reason,
                    _ => "no HTTP result".to_owned(),
                };
                let in_grace = now.duration_since(check.since) < health.start_period;
                if in_grace {
                    self.note_probe(&check, &reason, None);
                } else {
                    check.failures += 1;
                    self.note_probe(&check, &reason, Some(check.failures));
                    if check.failures >= health.retries {
                        return CheckStep::Unhealthy(StepFailure::new(
                            ErrorCode::Unhealthy,
                            format!(
                                "health check: GET {path} failed {} time{} in a row after the {} grace period (last: {reason})",
                                check.failures,
                                if check.failures == 1 { "" } else { "s" },
                                human(health.start_period)
                            ),
                        ));
                    }
                }
                check.last_reason = Some(reason);
                // Inside the grace period failures do not count, so probing faster costs nothing and
                // lets a release that comes up a moment after it starts be switched at once.
                let pause = if in_grace { health.interval.min(GRACE_POLL) } else { health.interval };
                CheckStep::Continue(check, Action::WaitUntil(now + pause))
            }
        }
    }

    /// Records a probe failure, compressing repeats of the same reason inside the grace period.
    fn note_probe(&mut self, check: &Check, reason: &str, counted: Option<u32>) {
        match counted {
            Some(n) => self.notes.push(format!("probe {n}/{} failed: {reason}", self.plan.health.retries)),
            None if check.last_reason.as_deref() != Some(reason) => {
                self.notes.push(format!("probe failed during the grace period: {reason}"))
            }
            None => {}
        }
    }

    fn on_failure(&mut self, phase: Phase, failure: StepFailure, _now: Instant) -> (Phase, Action) {
        match phase {
            // After the switch nothing can fail the deploy: problems become warnings.
            Phase::Draining(ref d) if d.after_switch => {
                self.warnings.push(format!("draining: {}", failure.message));
                let container = self.old_container();
                (Phase::StoppingOld, Action::Stop { container, grace: self.plan.stop_grace })
            }
            Phase::StoppingOld if self.plan.strategy == Strategy::BlueGreen => {
                self.warnings.push(format!("stopping the old release: {}", failure.message));
                let container = self.old_container();
                (Phase::RemovingOld, Action::Remove { container })
            }
            Phase::RemovingOld => {
                self.warnings.push(format!("removing the old release: {}", failure.message));
                self.complete()
            }
            Phase::Discarding(original) => {
                // The candidate could not be removed; the reconciler collects it. Keep the first reason.
                self.warnings.push(format!("removing the failed candidate: {}", failure.message));
                self.fail(original, false)
            }
            Phase::Restoring(restore) => {
                let message = format!(
                    "{}; restoring the previous release failed too: {}",
                    restore.failure.message, failure.message
                );
                self.fail(StepFailure::new(restore.failure.code, message), true)
            }
            _ if self.plan.strategy == Strategy::Recreate && (self.old_stopped || self.holding(&phase)) => {
                self.begin_restore(failure)
            }
            _ => match self.candidate.clone() {
                Some(container) => (Phase::Discarding(failure), Action::Remove { container }),
                None => self.fail(failure, false),
            },
        }
    }

    /// Recreate before its switch with routes held on the candidate: while holding, draining or stopping the old
    /// release (a failure there must route back, even with no candidate yet).
    fn holding(&self, phase: &Phase) -> bool {
        matches!(phase, Phase::Holding | Phase::StoppingOld) || matches!(phase, Phase::Draining(d) if !d.after_switch)
    }

    fn begin_restore(&mut self, failure: StepFailure) -> (Phase, Action) {
        match self.candidate.clone() {
            Some(container) => (
                Phase::Restoring(Restore { failure, step: RestoreStep::RemovingCandidate }),
                Action::Remove { container },
            ),
            None => self.restore_old(failure),
        }
    }

    fn restore_old(&mut self, failure: StepFailure) -> (Phase, Action) {
        if self.old_stopped {
            let container = self.old_container();
            (Phase::Restoring(Restore { failure, step: RestoreStep::Restarting }), Action::Restart { container })
        } else if self.plan.routed {
            (Phase::Restoring(Restore { failure, step: RestoreStep::RoutingBack }), Action::RouteBack)
        } else {
            self.fail(failure, false)
        }
    }

    fn restore(&mut self, restore: Restore, event: Event, now: Instant) -> (Phase, Action) {
        let Restore { failure, step } = restore;
        match (step, event) {
            (RestoreStep::RemovingCandidate, Event::Removed) => self.restore_old(failure),
            (RestoreStep::Restarting, Event::Restarted) => {
                self.old_stopped = false;
                self.restarted_old = true;
                if self.plan.routed {
                    (Phase::Restoring(Restore { failure, step: RestoreStep::RoutingBack }), Action::RouteBack)
                } else {
                    self.restore_check(failure, now)
                }
            }
            (RestoreStep::RoutingBack, Event::RoutedBack) => {
                if self.restarted_old {
                    self.restore_check(failure, now)
                } else {
                    self.restored(failure)
                }
            }
            (RestoreStep::Checking(check), event) => match self.check(check, event, now) {
                CheckStep::Continue(check, action) => {
                    (Phase::Restoring(Restore { failure, step: RestoreStep::Checking(check) }), action)
                }
                CheckStep::Healthy => self.restored(failure),
                CheckStep::Unhealthy(why) => {
                    let message = format!(
                        "{}; the restored previous release is not healthy either: {}",
                        failure.message, why.message
                    );
                    self.fail(StepFailure::new(failure.code, message), true)
                }
            },
            (step, event) => {
                let message = format!("{}; restore interrupted by unexpected {event:?} at {step:?}", failure.message);
                self.fail(StepFailure::new(failure.code, message), true)
            }
        }
    }

    /// A restarted old container is probed like a candidate before the restore counts as done.
    fn restore_check(&mut self, failure: StepFailure, now: Instant) -> (Phase, Action) {
        let container = self.old_container();
        let check = Check {
            container: container.clone(),
            since: now,
            failures: 0,
            first_seen: None,
            last_reason: None,
            probing: true,
        };
        (Phase::Restoring(Restore { failure, step: RestoreStep::Checking(check) }), Action::Probe { container })
    }

    fn restored(&mut self, failure: StepFailure) -> (Phase, Action) {
        let message = format!("{}; previous release restored", failure.message);
        self.fail(StepFailure::new(failure.code, message), false)
    }

    fn complete(&mut self) -> (Phase, Action) {
        let outcome = Outcome::Completed { warnings: std::mem::take(&mut self.warnings) };
        (Phase::Done(outcome.clone()), Action::Finish(outcome))
    }

    fn fail(&mut self, failure: StepFailure, app_down: bool) -> (Phase, Action) {
        let outcome = Outcome::Failed { failure, app_down };
        (Phase::Done(outcome.clone()), Action::Finish(outcome))
    }
}

enum CheckStep {
    Continue(Check, Action),
    Healthy,
    Unhealthy(StepFailure),
}

/// Short human form of a duration for messages (`10s`, `1m30s`, `250ms`).
fn human(d: Duration) -> String {
    let ms = d.as_millis();
    if ms == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    let (h, rem) = (ms / 3_600_000, ms % 3_600_000);
    let (m, rem) = (rem / 60_000, rem % 60_000);
    let (s, ms) = (rem / 1000, rem % 1000);
    for (n, unit) in [(h, "h"), (m, "m"), (s, "s"), (ms, "ms")] {
        if n > 0 {
            out.push_str(&format!("{n}{unit}"));
        }
    }
    out
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::Pull => write!(f, "pull"),
            Action::Configure => write!(f, "configure"),
            Action::Start => write!(f, "start candidate"),
            Action::Probe { container } => write!(f, "probe {container}"),
            Action::WaitUntil(_) => write!(f, "wait"),
            Action::Hold => write!(f, "hold routes on candidate"),
            Action::Switch { drain_old: true } => write!(f, "switch routes to candidate, drain old"),
            Action::Switch { drain_old: false } => write!(f, "switch routes to candidate"),
            Action::PollDrain => write!(f, "poll drain"),
            Action::Stop { container, grace } => write!(f, "stop {container} grace={}", human(*grace)),
            Action::Remove { container } => write!(f, "remove {container}"),
            Action::Restart { container } => write!(f, "restart {container}"),
            Action::RouteBack => write!(f, "route back to old"),
            Action::Finish(outcome) => write!(f, "finish {outcome}"),
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Completed { warnings } if warnings.is_empty() => write!(f, "completed"),
            Outcome::Completed { warnings } => write!(f, "completed with warnings: {}", warnings.join("; ")),
            Outcome::Failed { failure, app_down } => {
                write!(f, "failed ({}): {}", failure.code.as_str(), failure.message)?;
                if *app_down {
                    write!(f, " [app down]")?;
                }
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use expect_test::{Expect, expect};
    use std::collections::VecDeque;

    /// A scripted outside world: answers each action the way a test describes, and prints every
    /// action with the simulated time it was issued at.
    struct World {
        /// HTTP results handed out in order; the last one repeats.
        http: VecDeque<ProbeResult>,
        /// Container states handed out in order; the last one repeats.
        containers: VecDeque<ContainerObservation>,
        /// In-flight counts handed out in order; the last one repeats.
        in_flight: VecDeque<Option<u64>>,
        /// Fail the n-th action whose display starts with this prefix (1-based).
        fail: Option<(&'static str, usize, ErrorCode)>,
        /// How long each non-wait action takes.
        step: Duration,
    }

    impl Default for World {
        fn default() -> World {
            World {
                http: VecDeque::from([ProbeResult::Healthy(200)]),
                containers: VecDeque::from([running()]),
                in_flight: VecDeque::from([Some(0)]),
                fail: None,
                step: Duration::from_millis(100),
            }
        }
    }

    fn running() -> ContainerObservation {
        ContainerObservation::Running { started_at: "t0".into(), restart_count: 0 }
    }

    fn next<T: Clone>(q: &mut VecDeque<T>) -> T {
        if q.len() > 1 { q.pop_front().unwrap() } else { q.front().cloned().unwrap() }
    }

    fn plan(strategy: Strategy, old: bool) -> Plan {
        Plan {
            strategy,
            routed: true,
            health: HealthPlan {
                path: Some("/health".into()),
                interval: Duration::from_secs(2),
                timeout: Duration::from_secs(5),
                retries: 5,
                start_period: Duration::from_secs(10),
                stable_for: Duration::from_secs(5),
            },
            drain_timeout: Duration::from_secs(30),
            stop_grace: Duration::from_secs(10),
            timeout: Duration::from_secs(600),
            old: old.then(|| OldInstance { container: "web-1".into() }),
        }
    }

    fn simulate(plan: Plan, mut world: World) -> String {
        let t0 = Instant::now();
        let mut now = t0;
        let (mut deploy, mut action) = Deploy::begin(plan, now);
        let mut out = String::new();
        let mut counts: std::collections::HashMap<String, usize> = Default::default();
        for _ in 0..500 {
            let at = now.duration_since(t0);
            for note in deploy.take_notes() {
                out.push_str(&format!("{:<8} {:<16}   note: {note}\n", human(at), ""));
            }
            if !matches!(action, Action::WaitUntil(_)) {
                out.push_str(&format!("{:<8} {:<16} {action}\n", human(at), deploy.status().as_str()));
            }
            let label = action.to_string();
            if let Action::Finish(_) = action {
                return out;
            }
            let failing = world.fail.and_then(|(prefix, n, code)| {
                if label.starts_with(prefix) {
                    let c = counts.entry(prefix.to_owned()).or_default();
                    *c += 1;
                    (*c == n).then(|| StepFailure::new(code, format!("{label} failed")))
                } else {
                    None
                }
            });
            let event = if let Some(f) = failing {
                now += world.step;
                Event::Failed(f)
            } else {
                match &action {
                    Action::WaitUntil(t) => {
                        now = (*t).max(now);
                        Event::Waited
                    }
                    other => {
                        now += world.step;
                        match other {
                            Action::Pull => Event::Pulled,
                            Action::Configure => Event::Configured,
                            Action::Start => Event::Started("web-2".into()),
                            Action::Probe { .. } => {
                                let container = next(&mut world.containers);
                                let http = match (&container, deploy.plan.health.path.is_some()) {
                                    (ContainerObservation::Running { .. }, true) => Some(next(&mut world.http)),
                                    _ => None,
                                };
                                Event::Probed(Observation { container, http })
                            }
                            Action::Hold => Event::Held,
                            Action::Switch { .. } => Event::Switched,
                            Action::PollDrain => Event::InFlight(next(&mut world.in_flight)),
                            Action::Stop { .. } => Event::Stopped,
                            Action::Remove { .. } => Event::Removed,
                            Action::Restart { .. } => Event::Restarted,
                            Action::RouteBack => Event::RoutedBack,
                            Action::WaitUntil(_) | Action::Finish(_) => unreachable!(),
                        }
                    }
                }
            };
            action = deploy.advance(event, now);
        }
        panic!("deploy did not finish:\n{out}");
    }

    #[track_caller]
    fn check(plan: Plan, world: World, expect: Expect) {
        expect.assert_eq(&simulate(plan, world));
    }

    fn unhealthy(reason: &str) -> ProbeResult {
        ProbeResult::Unhealthy(reason.into())
    }

    #[test]
    fn first_deploy_routes_after_one_healthy_probe() {
        check(
            plan(Strategy::BlueGreen, false),
            World::default(),
            expect![[r#"
                0s       pulling          pull
                100ms    configuring      configure
                200ms    starting         start candidate
                300ms    health_checking  probe web-2
                400ms    switching        switch routes to candidate
                500ms    completed        finish completed
            "#]],
        );
    }

    #[test]
    fn blue_green_switches_then_drains_then_stops_old() {
        let world = World { in_flight: VecDeque::from([Some(2), Some(1), Some(0), Some(0)]), ..World::default() };
        check(
            plan(Strategy::BlueGreen, true),
            world,
            expect![[r#"
                0s       pulling          pull
                100ms    configuring      configure
                200ms    starting         start candidate
                300ms    health_checking  probe web-2
                400ms    switching        switch routes to candidate, drain old
                500ms    draining         poll drain
                850ms    draining         poll drain
                1s200ms  draining         poll drain
                1s350ms  draining         poll drain
                1s450ms  draining         stop web-1 grace=10s
                1s550ms  draining         remove web-1
                1s650ms  completed        finish completed
            "#]],
        );
    }

    #[test]
    fn unhealthy_release_never_gets_traffic() {
        let world = World { http: VecDeque::from([unhealthy("HTTP 503")]), ..World::default() };
        let transcript = simulate(plan(Strategy::BlueGreen, true), world);
        assert!(!transcript.contains("switch"), "{transcript}");
        assert!(!transcript.contains("stop web-1"), "{transcript}");
        expect![[r#"
            0s       pulling          pull
            100ms    configuring      configure
            200ms    starting         start candidate
            300ms    health_checking  probe web-2
            400ms                       note: probe failed during the grace period: HTTP 503
            900ms    health_checking  probe web-2
            1s500ms  health_checking  probe web-2
            2s100ms  health_checking  probe web-2
            2s700ms  health_checking  probe web-2
            3s300ms  health_checking  probe web-2
            3s900ms  health_checking  probe web-2
            4s500ms  health_checking  probe web-2
            5s100ms  health_checking  probe web-2
            5s700ms  health_checking  probe web-2
            6s300ms  health_checking  probe web-2
            6s900ms  health_checking  probe web-2
            7s500ms  health_checking  probe web-2
            8s100ms  health_checking  probe web-2
            8s700ms  health_checking  probe web-2
            9s300ms  health_checking  probe web-2
            9s900ms  health_checking  probe web-2
            10s500ms health_checking  probe web-2
            10s600ms                    note: probe 1/5 failed: HTTP 503
            12s600ms health_checking  probe web-2
            12s700ms                    note: probe 2/5 failed: HTTP 503
            14s700ms health_checking  probe web-2
            14s800ms                    note: probe 3/5 failed: HTTP 503
            16s800ms health_checking  probe web-2
            16s900ms                    note: probe 4/5 failed: HTTP 503
            18s900ms health_checking  probe web-2
            19s                         note: probe 5/5 failed: HTTP 503
            19s      failed           remove web-2
            19s100ms failed           finish failed (unhealthy): health check: GET /health failed 5 times in a row after the 10s grace period (last: HTTP 503)
        "#]]
        .assert_eq(&transcript);
    }

    #[test]
    fn success_inside_grace_period_ends_the_check_early() {
        let world = World {
            http: VecDeque::from([
                unhealthy("connection refused"),
                unhealthy("connection refused"),
                ProbeResult::Healthy(200),
            ]),
            ..World::default()
        };
        let t = simulate(plan(Strategy::BlueGreen, false), world);
        assert!(t.contains("1s600ms  switching"), "no blind sleep for start_period, quick probes inside it:\n{t}");
        assert_eq!(t.matches("note:").count(), 1, "repeated reasons are compressed:\n{t}");
    }

    #[test]
    fn crash_during_health_check_fails_at_once_with_exit_code() {
        let world = World {
            containers: VecDeque::from([
                running(),
                ContainerObservation::Stopped { exit_code: Some(3), oom_killed: false },
            ]),
            http: VecDeque::from([unhealthy("connection refused")]),
            ..World::default()
        };
        check(
            plan(Strategy::BlueGreen, true),
            world,
            expect![[r#"
                0s       pulling          pull
                100ms    configuring      configure
                200ms    starting         start candidate
                300ms    health_checking  probe web-2
                400ms                       note: probe failed during the grace period: connection refused
                900ms    health_checking  probe web-2
                1s       failed           remove web-2
                1s100ms  failed           finish failed (exited): health check: the container exited with code 3 700ms after it started
            "#]],
        );
    }

    #[test]
    fn restart_during_health_check_is_detected() {
        let world = World {
            containers: VecDeque::from([
                running(),
                ContainerObservation::Running { started_at: "t1".into(), restart_count: 1 },
            ]),
            http: VecDeque::from([unhealthy("connection refused")]),
            ..World::default()
        };
        let t = simulate(plan(Strategy::BlueGreen, false), world);
        assert!(t.contains("finish failed (exited): health check: the container restarted"), "{t}");
    }

    #[test]
    fn worker_without_path_needs_stable_running() {
        let mut p = plan(Strategy::Recreate, true);
        p.routed = false;
        p.health.path = None;
        check(
            p,
            World::default(),
            expect![[r#"
                0s       pulling          pull
                100ms    configuring      configure
                200ms    draining         stop web-1 grace=10s
                300ms    starting         start candidate
                400ms    health_checking  probe web-2
                1s       health_checking  probe web-2
                1s600ms  health_checking  probe web-2
                2s200ms  health_checking  probe web-2
                2s800ms  health_checking  probe web-2
                3s400ms  health_checking  probe web-2
                4s       health_checking  probe web-2
                4s600ms  health_checking  probe web-2
                5s200ms  health_checking  probe web-2
                5s500ms  health_checking  probe web-2
                5s600ms  switching        switch routes to candidate
                5s700ms  switching        remove web-1
                5s800ms  completed        finish completed
            "#]],
        );
    }

    #[test]
    fn recreate_holds_drains_stops_then_starts() {
        check(
            plan(Strategy::Recreate, true),
            World::default(),
            expect![[r#"
                0s       pulling          pull
                100ms    configuring      configure
                200ms    draining         hold routes on candidate
                300ms    draining         poll drain
                450ms    draining         poll drain
                550ms    draining         stop web-1 grace=10s
                650ms    starting         start candidate
                750ms    health_checking  probe web-2
                850ms    switching        switch routes to candidate
                950ms    switching        remove web-1
                1s50ms   completed        finish completed
            "#]],
        );
    }

    #[test]
    fn recreate_failure_restores_previous_release() {
        let world = World { fail: Some(("start", 1, ErrorCode::StartFailed)), ..World::default() };
        check(
            plan(Strategy::Recreate, true),
            world,
            expect![[r#"
                0s       pulling          pull
                100ms    configuring      configure
                200ms    draining         hold routes on candidate
                300ms    draining         poll drain
                450ms    draining         poll drain
                550ms    draining         stop web-1 grace=10s
                650ms    starting         start candidate
                750ms    health_checking  restart web-1
                850ms    health_checking  route back to old
                950ms    health_checking  probe web-1
                1s50ms   failed           finish failed (start_failed): start candidate failed; previous release restored
            "#]],
        );
    }

    #[test]
    fn recreate_whose_old_release_cannot_be_stopped_routes_back_to_it() {
        let world = World { fail: Some(("stop", 1, ErrorCode::StartFailed)), ..World::default() };
        check(
            plan(Strategy::Recreate, true),
            world,
            expect![[r#"
            0s       pulling          pull
            100ms    configuring      configure
            200ms    draining         hold routes on candidate
            300ms    draining         poll drain
            450ms    draining         poll drain
            550ms    draining         stop web-1 grace=10s
            650ms    health_checking  route back to old
            750ms    failed           finish failed (start_failed): stop web-1 grace=10s failed; previous release restored
        "#]],
        );
    }

    #[test]
    fn recreate_unhealthy_candidate_is_removed_before_restore() {
        let mut p = plan(Strategy::Recreate, true);
        p.health.start_period = Duration::ZERO;
        p.health.retries = 1;
        let world =
            World { http: VecDeque::from([unhealthy("HTTP 500"), ProbeResult::Healthy(200)]), ..World::default() };
        let t = simulate(p, world);
        let order: Vec<&str> = t
            .lines()
            .map(|l| if l.contains("note:") { "note:" } else { l.split_whitespace().nth(2).unwrap() })
            .collect();
        assert_eq!(
            order,
            [
                "pull",
                "configure",
                "hold",
                "poll",
                "poll",
                "stop",
                "start",
                "probe",
                "note:",
                "remove",
                "restart",
                "route",
                "probe",
                "finish"
            ],
            "{t}"
        );
        assert!(t.contains("failed (unhealthy)") && t.ends_with("previous release restored\n"), "{t}");
    }

    #[test]
    fn recreate_failed_restore_reports_app_down() {
        let mut p = plan(Strategy::Recreate, true);
        p.routed = false;
        let world = World { fail: Some(("restart", 1, ErrorCode::RuntimeUnavailable)), ..World::default() };
        let world = World { http: VecDeque::from([unhealthy("x")]), ..world };
        let mut p2 = p.clone();
        p2.health.start_period = Duration::ZERO;
        p2.health.retries = 1;
        let t = simulate(p2, world);
        assert!(t.contains("restoring the previous release failed too") && t.contains("[app down]"), "{t}");
    }

    #[test]
    fn switch_failure_removes_candidate_and_keeps_old() {
        let world = World { fail: Some(("switch", 1, ErrorCode::CaddyFailed)), ..World::default() };
        let t = simulate(plan(Strategy::BlueGreen, true), world);
        assert!(t.contains("remove web-2") && !t.contains("web-1"), "{t}");
        assert!(t.contains("finish failed (caddy_failed)"), "{t}");
    }

    #[test]
    fn pull_failure_touches_nothing() {
        let world = World { fail: Some(("pull", 1, ErrorCode::ImageNotFound)), ..World::default() };
        check(
            plan(Strategy::BlueGreen, true),
            world,
            expect![[r#"
                0s       pulling          pull
                100ms    failed           finish failed (image_not_found): pull failed
            "#]],
        );
    }

    #[test]
    fn drain_problems_are_warnings_after_the_switch() {
        let world = World { fail: Some(("poll", 1, ErrorCode::CaddyUnavailable)), ..World::default() };
        let t = simulate(plan(Strategy::BlueGreen, true), world);
        assert!(t.contains("finish completed with warnings: draining: poll drain failed"), "{t}");
    }

    #[test]
    fn drain_timeout_stops_old_with_requests_in_flight() {
        let mut p = plan(Strategy::BlueGreen, true);
        p.drain_timeout = Duration::from_secs(1);
        let world = World { in_flight: VecDeque::from([Some(3)]), ..World::default() };
        let t = simulate(p, world);
        assert!(t.contains("drain timeout (1s) passed with 3 request(s) still in flight"), "{t}");
        assert!(t.contains("stop web-1"), "{t}");
    }

    #[test]
    fn deploy_timeout_fails_before_switch() {
        let mut p = plan(Strategy::BlueGreen, true);
        p.timeout = Duration::from_secs(5);
        let world = World { http: VecDeque::from([unhealthy("HTTP 503")]), ..World::default() };
        let t = simulate(p, world);
        assert!(t.contains("finish failed (timeout): deploy did not reach the switch within 5s"), "{t}");
        assert!(t.contains("remove web-2") && !t.contains("switch routes"), "{t}");
    }
}
