//! The deploy machine itself: phases and the transitions between them.

use std::time::{Duration, Instant};

use super::check::{Check, CheckStep};
use super::display::human;
use super::watch::{Watch, WatchStep};
use super::*;

/// Interval between drain polls while requests are in flight (SPEC §9.6).
pub const DRAIN_POLL: Duration = Duration::from_millis(250);

/// Delay of the confirming poll after a first zero count. Two zero readings in a row still guard
/// against a request caught between Caddy's accept and its dial at the moment of the switch; that
/// window is microseconds, so confirming 50 ms later is as safe as 250 ms and takes 200 ms off every
/// deploy (see docs/decisions.md).
pub const DRAIN_CONFIRM: Duration = Duration::from_millis(50);

/// How many times a candidate whose leased host port was taken (by another process between the lease and the
/// start) gets new ports and is started again before the deploy fails with `port_unavailable`.
pub const PORT_RETRIES: u32 = 3;

/// One deploy attempt.
#[derive(Debug)]
pub struct Deploy {
    pub(super) plan: Plan,
    phase: Phase,
    /// Set once the candidate container exists.
    candidate: Option<String>,
    /// Pulling → switching must end before this.
    pub(super) deadline: Instant,
    /// Whether the old instance has been stopped (recreate).
    pub(super) old_stopped: bool,
    /// Whether a restore restarted the old instance (it then needs a health check).
    pub(super) restarted_old: bool,
    pub(super) warnings: Vec<String>,
    pub(super) notes: Vec<String>,
    /// Candidates started again with fresh ports after their leased port was taken.
    port_retries: u32,
    /// Whether an interrupt (shutdown or cancel) was taken; a second one is not.
    interrupted: bool,
    /// Whether the watch failed and the deploy is rolling back (a recreate's [`Restore`] then ends `rolled_back`).
    rolling_back: bool,
    /// The last action handed out, answered again when an interrupt comes that the machine does not take.
    pending: Action,
}

#[derive(Debug, Clone)]
enum Phase {
    Pulling,
    Configuring,
    Starting,
    Checking(Check),
    /// Moving the routes to the candidate.
    Switching,
    /// Committing current/previous in the store after the routes moved.
    Committing,
    /// Blue-green: the commit failed after the routes moved; routing back to the old instance, then discarding.
    RoutingBack(StepFailure),
    /// After the commit: probing the new release for `deploy.watch`, the old one kept (SPEC §8.4).
    Watching(Watch),
    /// The watch failed: moving traffic and the record back to the old release, then removing the new one.
    RollingBack(RollBack),
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
struct Drain {
    until: Instant,
    zero_streak: u32,
    polling: bool,
    /// Recreate drains before stopping old; blue-green after the switch.
    after_switch: bool,
}

/// A blue-green watch rollback: route back, uncommit, remove the new release. A recreate's goes through
/// [`Restore`] after the uncommit, since its old release must be started again.
#[derive(Debug, Clone)]
struct RollBack {
    reason: StepFailure,
    step: RollBackStep,
}

#[derive(Debug, Clone, Copy)]
enum RollBackStep {
    RoutingBack,
    Uncommitting,
    RemovingNew,
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
            port_retries: 0,
            interrupted: false,
            rolling_back: false,
            pending: Action::Pull,
        };
        (deploy, Action::Pull)
    }

    /// The status to show for the current phase.
    pub fn status(&self) -> Status {
        match &self.phase {
            Phase::Pulling => Status::Pulling,
            Phase::Configuring => Status::Configuring,
            Phase::Starting => Status::Starting,
            Phase::Restoring(_) if self.rolling_back => Status::Watching,
            Phase::Checking(_) | Phase::Restoring(_) => Status::HealthChecking,
            Phase::Switching | Phase::Committing => Status::Switching,
            Phase::Watching(_) | Phase::RollingBack(_) => Status::Watching,
            // Recreate removes the old (stopped) container after committing; that is not a drain.
            Phase::RemovingOld if self.plan.strategy == Strategy::Recreate => Status::Switching,
            Phase::Holding | Phase::Draining(_) | Phase::StoppingOld | Phase::RemovingOld => Status::Draining,
            Phase::Discarding(_) | Phase::RoutingBack(_) => Status::Failed,
            Phase::Done(Outcome::Completed { .. }) => Status::Completed,
            Phase::Done(Outcome::Failed { .. }) => Status::Failed,
            Phase::Done(Outcome::RolledBack { .. }) => Status::RolledBack,
        }
    }

    /// The instant by which the pending action must end, while the deploy has not yet switched (`deploy.timeout`);
    /// `None` once it has, and while it unwinds (undoing runs to its end, each action with its own bound).
    pub fn deadline(&self) -> Option<Instant> {
        (self.before_switch() && !self.unwinding()).then_some(self.deadline)
    }

    /// Whether the driver may interrupt the pending action for a shutdown or a cancel, and how. The answer is the
    /// machine's: it knows which actions change nothing (and may be dropped halfway), which must end first, and
    /// when an interrupt comes too late (after the switch, while unwinding, or a second time).
    pub fn interruptible(&self) -> Interruptible {
        if self.interrupted || self.unwinding() || !self.before_switch() {
            return Interruptible::No;
        }
        match self.pending {
            Action::Pull | Action::Probe { .. } | Action::WaitUntil(_) => Interruptible::Anytime,
            _ => Interruptible::BeforeAction,
        }
    }

    /// True while the deploy has not yet committed the switch (cancellable, bounded by `deadline`).
    pub fn before_switch(&self) -> bool {
        match self.plan.strategy {
            Strategy::BlueGreen => matches!(
                self.phase,
                Phase::Pulling
                    | Phase::Configuring
                    | Phase::Starting
                    | Phase::Checking(_)
                    | Phase::Switching
                    | Phase::Committing
                    | Phase::RoutingBack(_)
            ),
            Strategy::Recreate => {
                !self.rolling_back && !matches!(self.phase, Phase::RemovingOld | Phase::Done(_) | Phase::Watching(_))
            }
        }
    }

    /// True while a failed deploy is undoing what it did (removing the candidate, restoring a recreate's old
    /// release): that must run to its end, past the deploy's deadline and through a shutdown or cancel.
    pub fn unwinding(&self) -> bool {
        matches!(self.phase, Phase::Discarding(_) | Phase::Restoring(_) | Phase::RoutingBack(_) | Phase::RollingBack(_))
    }

    /// Why the deploy is being undone, while it removes a candidate that failed its health check or its watch (an
    /// exit, a restart, failed probes): the driver then keeps the candidate's last log lines before it is removed
    /// (SPEC §7.3 `health_checking`). `None` for any other removal, a cancelled or interrupted deploy's included.
    pub fn diagnose(&self) -> Option<&StepFailure> {
        let failure = match &self.phase {
            Phase::Discarding(failure) => failure,
            Phase::Restoring(Restore { failure, step: RestoreStep::RemovingCandidate }) => failure,
            Phase::RollingBack(RollBack { reason, step: RollBackStep::RemovingNew }) => reason,
            _ => return None,
        };
        matches!(failure.code, ErrorCode::Unhealthy | ErrorCode::Exited).then_some(failure)
    }

    /// The candidate's container id, once started.
    pub fn candidate(&self) -> Option<&str> {
        self.candidate.as_deref()
    }

    /// Progress notes produced since the last call (probe failures, drain counts), for the record.
    pub fn take_notes(&mut self) -> Vec<String> {
        std::mem::take(&mut self.notes)
    }

    /// Feeds the result of the last action (or an interrupt in its place) at `now` and returns the next action.
    pub fn advance(&mut self, event: Event, now: Instant) -> Action {
        if let Event::Interrupted(_) = &event
            && self.interruptible() == Interruptible::No
        {
            // Too late to stop: the pending action still has to be done.
            return self.pending.clone();
        }
        let phase = std::mem::replace(&mut self.phase, Phase::Pulling);
        let (phase, action) = self.step(phase, event, now);
        self.phase = phase;
        self.pending = action.clone();
        action
    }

    fn step(&mut self, phase: Phase, event: Event, now: Instant) -> (Phase, Action) {
        let event = match event {
            Event::Interrupted(why) => {
                self.interrupted = true;
                Event::Failed(match why {
                    Interrupt::Shutdown => StepFailure::new(ErrorCode::Interrupted, "slipd is shutting down"),
                    Interrupt::Cancel(reason) => StepFailure::new(ErrorCode::Cancelled, reason),
                })
            }
            event => event,
        };
        match event {
            Event::Failed(failure)
                if matches!(phase, Phase::Starting)
                    && failure.code == ErrorCode::PortUnavailable
                    && self.port_retries < PORT_RETRIES
                    && !self.interrupted =>
            {
                // Another process took a leased port between the lease and the start: lease new ones and start
                // again, rather than fail a deploy for a race on the host.
                self.port_retries += 1;
                self.notes.push(format!("{}; leasing other host ports and starting again", failure.message));
                return (Phase::Configuring, Action::Configure);
            }
            Event::Failed(failure) => return self.on_failure(phase, failure, now),
            _ => {}
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
            (Phase::Configuring, Event::Configured(settled)) => {
                // The first configure settles the plan; a configure again (new ports) keeps it.
                if let Some(settled) = settled.filter(|_| self.port_retries == 0) {
                    self.plan.strategy = settled.strategy;
                    self.plan.routed = settled.routed;
                    self.plan.health = settled.health;
                }
                self.after_configure()
            }
            (Phase::Holding, Event::Held) if self.old_stopped => (Phase::Starting, Action::Start),
            (Phase::Holding, Event::Held) => self.start_drain(now, false),
            (Phase::Starting, Event::Started(container)) => {
                self.candidate = Some(container.clone());
                let (check, action) = Check::begin(container, now);
                (Phase::Checking(check), action)
            }
            (Phase::Checking(check), event) => match check.step(&self.plan.health, event, now, &mut self.notes) {
                CheckStep::Continue(check, action) => (Phase::Checking(check), action),
                CheckStep::Healthy => {
                    let drain_old = self.plan.strategy == Strategy::BlueGreen && self.plan.old.is_some();
                    (Phase::Switching, Action::Switch { drain_old })
                }
                CheckStep::Unhealthy(failure) => self.on_failure(Phase::Starting, failure, now),
            },
            (Phase::Switching, Event::Switched) => (Phase::Committing, Action::Commit),
            (Phase::Committing, Event::Committed) if self.plan.old.is_some() && !self.plan.watch.is_zero() => {
                let instance = self.candidate.clone().unwrap_or_default();
                let (watch, action) = Watch::begin(instance, now, self.plan.watch);
                (Phase::Watching(watch), action)
            }
            (Phase::Committing, Event::Committed) => self.retire_old(now),
            (Phase::Watching(watch), event) => self.watch_step(watch, event, now),
            (Phase::RollingBack(rb), event) => self.roll_back_step(rb, event),
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
            (Phase::RoutingBack(failure), Event::RoutedBack) => self.discard(failure),
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
            Phase::Switching | Phase::Committing => Status::Switching,
            _ => Status::Draining,
        }
    }

    /// After the commit (and a passed watch): drain, stop and remove the old release, or finish a first deploy.
    fn retire_old(&mut self, now: Instant) -> (Phase, Action) {
        match (&self.plan.old, self.plan.strategy) {
            (Some(_), Strategy::BlueGreen) if self.plan.routed => self.start_drain(now, true),
            (Some(old), Strategy::BlueGreen) => {
                let container = old.container.clone();
                (Phase::StoppingOld, Action::Stop { container, grace: self.plan.stop_grace })
            }
            (Some(old), Strategy::Recreate) => {
                (Phase::RemovingOld, Action::Remove { container: old.container.clone() })
            }
            (None, _) => self.complete(),
        }
    }

    fn watch_step(&mut self, watch: Watch, event: Event, now: Instant) -> (Phase, Action) {
        match watch.step(&self.plan.health, event, now, &mut self.notes) {
            WatchStep::Continue(watch, action) => (Phase::Watching(watch), action),
            WatchStep::Passed => self.retire_old(now),
            WatchStep::Failed(reason) => {
                self.rolling_back = true;
                self.notes.push(format!("rolling back to the previous release: {}", reason.message));
                match self.plan.strategy {
                    Strategy::BlueGreen if self.plan.routed => {
                        (Phase::RollingBack(RollBack { reason, step: RollBackStep::RoutingBack }), Action::RouteBack)
                    }
                    // A recreate uncommits first, then restores its stopped old release as a failure before the
                    // switch would; an unrouted blue-green has no routes to move.
                    _ => (Phase::RollingBack(RollBack { reason, step: RollBackStep::Uncommitting }), Action::Uncommit),
                }
            }
        }
    }

    fn roll_back_step(&mut self, rb: RollBack, event: Event) -> (Phase, Action) {
        let RollBack { reason, step } = rb;
        match (step, event) {
            (RollBackStep::RoutingBack, Event::RoutedBack) => {
                (Phase::RollingBack(RollBack { reason, step: RollBackStep::Uncommitting }), Action::Uncommit)
            }
            (RollBackStep::RoutingBack, Event::Failed(why)) => {
                // Traffic cannot go back: the new release stays current and serving, as the store still says; the
                // old one keeps running (reconciliation removes it at the next start).
                let message =
                    format!("{}; rolling back failed: {}; the new release still serves", reason.message, why.message);
                self.fail(StepFailure::new(reason.code, message), false)
            }
            (RollBackStep::Uncommitting, event) => {
                if let Event::Failed(why) = &event {
                    self.warnings.push(format!("recording the rollback: {}", why.message));
                }
                match (self.plan.strategy, self.candidate.clone()) {
                    (Strategy::Recreate, Some(container)) => (
                        Phase::Restoring(Restore { failure: reason, step: RestoreStep::RemovingCandidate }),
                        Action::Remove { container },
                    ),
                    (Strategy::BlueGreen, Some(container)) => (
                        Phase::RollingBack(RollBack { reason, step: RollBackStep::RemovingNew }),
                        Action::Remove { container },
                    ),
                    (_, None) => self.roll_back_done(reason),
                }
            }
            (RollBackStep::RemovingNew, event) => {
                if let Event::Failed(why) = &event {
                    self.warnings.push(format!("removing the rolled-back release: {}", why.message));
                }
                self.roll_back_done(reason)
            }
            (step, event) => {
                self.warnings.push(format!("internal error: unexpected {event:?} while rolling back at {step:?}"));
                self.roll_back_done(reason)
            }
        }
    }

    fn roll_back_done(&mut self, reason: StepFailure) -> (Phase, Action) {
        let outcome = Outcome::RolledBack { reason, warnings: std::mem::take(&mut self.warnings) };
        (Phase::Done(outcome.clone()), Action::Finish(outcome))
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

    fn on_failure(&mut self, phase: Phase, failure: StepFailure, _now: Instant) -> (Phase, Action) {
        match phase {
            // The engine did not answer a watch probe: a failed probe, judged by the watch.
            Phase::Watching(watch) => self.watch_step(watch, Event::Failed(failure), _now),
            Phase::RollingBack(rb) => self.roll_back_step(rb, Event::Failed(failure)),
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
            Phase::RoutingBack(original) => {
                // The routes could not be moved back; the old instance still runs, the candidate is discarded.
                self.warnings.push(format!("routing back to the previous release: {}", failure.message));
                self.discard(original)
            }
            // The routes moved to the candidate but the store could not record it: move them back first, so the
            // record stays true, then discard the candidate.
            Phase::Committing if self.plan.strategy == Strategy::BlueGreen && self.plan.routed => {
                (Phase::RoutingBack(failure), Action::RouteBack)
            }
            Phase::Restoring(restore) => {
                let what = if self.rolling_back { "rolling back" } else { "restoring the previous release" };
                let message = format!("{}; {what} failed too: {}", restore.failure.message, failure.message);
                self.fail(StepFailure::new(restore.failure.code, message), true)
            }
            _ if self.plan.strategy == Strategy::Recreate && (self.old_stopped || self.holding(&phase)) => {
                self.begin_restore(failure)
            }
            _ => self.discard(failure),
        }
    }

    /// Removes the candidate, when there is one, then fails with `failure`.
    fn discard(&mut self, failure: StepFailure) -> (Phase, Action) {
        match self.candidate.clone() {
            Some(container) => (Phase::Discarding(failure), Action::Remove { container }),
            None => self.fail(failure, false),
        }
    }

    /// Recreate before its switch with routes held on the candidate: while holding, draining or stopping the old
    /// release (a failure there must route back, even with no candidate yet).
    fn holding(&self, phase: &Phase) -> bool {
        matches!(phase, Phase::Holding | Phase::StoppingOld) || matches!(phase, Phase::Draining(d) if !d.after_switch)
    }

    /// What follows a configured candidate: hold or stop the old release (recreate), or start.
    fn after_configure(&self) -> (Phase, Action) {
        match (&self.plan.old, self.plan.strategy) {
            // Started again with new ports after the old release stopped: the routes hold on the new ports.
            (Some(_), Strategy::Recreate) if self.old_stopped && self.plan.routed => (Phase::Holding, Action::Hold),
            (Some(_), Strategy::Recreate) if self.old_stopped => (Phase::Starting, Action::Start),
            (Some(_), Strategy::Recreate) if self.plan.routed => (Phase::Holding, Action::Hold),
            (Some(old), Strategy::Recreate) => {
                let container = old.container.clone();
                (Phase::StoppingOld, Action::Stop { container, grace: self.plan.stop_grace })
            }
            _ => (Phase::Starting, Action::Start),
        }
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
            (RestoreStep::Checking(check), event) => match check.step(&self.plan.health, event, now, &mut self.notes) {
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
        let (check, action) = Check::begin(self.old_container(), now);
        (Phase::Restoring(Restore { failure, step: RestoreStep::Checking(check) }), action)
    }

    fn restored(&mut self, failure: StepFailure) -> (Phase, Action) {
        if self.rolling_back {
            return self.roll_back_done(failure);
        }
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
