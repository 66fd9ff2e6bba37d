//! Judging a candidate's health from probe rounds (SPEC §8.1, §8.2, §8.3).
//!
//! An instance is healthy when every one of its containers runs without restarting and every container probed
//! over HTTP answers 2xx or 3xx; without an HTTP path, when every container has run for `stable_for`. A failure
//! names the container when the instance has more than one.

use std::time::{Duration, Instant};

use super::display::human;
use super::*;

/// Upper bound on the pause between HTTP probes inside the grace period (`start_period`).
pub const GRACE_POLL: Duration = Duration::from_millis(500);

/// Upper bound on the pause between probe rounds of a running-and-stable check.
const STABLE_POLL: Duration = Duration::from_millis(500);

/// The health check of one instance in progress.
#[derive(Debug, Clone)]
pub(super) struct Check {
    /// The instance's runtime id.
    pub(super) instance: String,
    /// When probing began (the instance had just started).
    since: Instant,
    failures: u32,
    /// The first round in which every container ran, with each container's start time and restart count, for the
    /// stable check and restart detection.
    first_seen: Option<(Instant, Vec<Seen>)>,
    last_reason: Option<String>,
    /// Whether the next event answers a Probe (true) or a WaitUntil (false).
    probing: bool,
}

/// A running container as first seen: its name, the engine's `StartedAt` and its restart count.
type Seen = (String, String, i64);

/// What a probe round decided.
pub(super) enum CheckStep {
    /// Not decided yet: the check goes on with this action.
    Continue(Check, Action),
    Healthy,
    Unhealthy(StepFailure),
}

impl Check {
    /// A check of `instance`, which started at `now`; its first action is a probe.
    pub(super) fn begin(instance: String, now: Instant) -> (Check, Action) {
        let action = Action::Probe { container: instance.clone() };
        let check = Check { instance, since: now, failures: 0, first_seen: None, last_reason: None, probing: true };
        (check, action)
    }

    /// Takes the answer to the check's last action. Probe failures worth recording go to `notes`.
    pub(super) fn step(
        mut self,
        health: &HealthPlan,
        event: Event,
        now: Instant,
        notes: &mut Vec<String>,
    ) -> CheckStep {
        let observation = match event {
            Event::Waited if !self.probing => {
                self.probing = true;
                let container = self.instance.clone();
                return CheckStep::Continue(self, Action::Probe { container });
            }
            Event::Probed(observation) if self.probing => observation,
            other => {
                return CheckStep::Unhealthy(StepFailure::new(
                    ErrorCode::Interrupted,
                    format!("internal error: unexpected {other:?} during the health check"),
                ));
            }
        };
        self.probing = false;
        let several = observation.containers.len() > 1;
        let subject = |name: &str| if several { format!("container {name}") } else { "the container".to_owned() };

        let mut running = Vec::with_capacity(observation.containers.len());
        for container in &observation.containers {
            match &container.state {
                ContainerObservation::Stopped { exit_code, oom_killed } => {
                    let how = match (oom_killed, exit_code) {
                        (true, _) => "was killed for using too much memory (OOM)".to_owned(),
                        (false, Some(code)) => format!("exited with code {code}"),
                        (false, None) => "stopped".to_owned(),
                    };
                    let after = human(now - self.since);
                    return CheckStep::Unhealthy(StepFailure::new(
                        ErrorCode::Exited,
                        format!("health check: {} {how} {after} after it started", subject(&container.name)),
                    ));
                }
                ContainerObservation::Running { started_at, restart_count } => {
                    running.push((container.name.clone(), started_at.clone(), *restart_count));
                }
            }
        }
        match &self.first_seen {
            None => self.first_seen = Some((now, running)),
            Some((_, first)) => {
                if let Some((name, _, _)) = first.iter().find(|seen| !running.contains(seen)) {
                    return CheckStep::Unhealthy(StepFailure::new(
                        ErrorCode::Exited,
                        format!(
                            "health check: {} restarted during the health check (it crashed and the engine restarted it)",
                            subject(name)
                        ),
                    ));
                }
            }
        }

        // HTTP probes decide when the plan has a path or the driver probed some container (a pod's per-container
        // health, SPEC §8.3); otherwise every container must run and stay up.
        let any_http = observation.containers.iter().any(|c| c.http.is_some());
        let first = self.first_seen.as_ref().map(|(t, _)| *t).unwrap_or(now);
        let stable = now.duration_since(first) >= health.stable_for;
        let Some(path) = health.path.as_deref().or(any_http.then_some("the health path")) else {
            if stable {
                return CheckStep::Healthy;
            }
            let next = (now + health.interval.min(STABLE_POLL)).min(first + health.stable_for);
            return CheckStep::Continue(self, Action::WaitUntil(next));
        };

        let mut probed = observation.containers.iter().filter(|c| c.http.is_some()).peekable();
        let failing = if probed.peek().is_none() {
            Some("no HTTP result".to_owned())
        } else {
            probed.find_map(|c| match &c.http {
                Some(ProbeResult::Unhealthy(reason)) if several => Some(format!("{}: {reason}", c.name)),
                Some(ProbeResult::Unhealthy(reason)) => Some(reason.clone()),
                _ => None,
            })
        };
        let Some(reason) = failing else {
            // Containers without a probe in a pod that mixes both must also have run for `stable_for`.
            let unprobed = observation.containers.iter().any(|c| c.http.is_none());
            if several && unprobed && !stable {
                let next = (now + health.interval.min(STABLE_POLL)).min(first + health.stable_for);
                return CheckStep::Continue(self, Action::WaitUntil(next));
            }
            return CheckStep::Healthy;
        };
        let in_grace = now.duration_since(self.since) < health.start_period;
        if in_grace {
            self.note(health, &reason, None, notes);
        } else {
            self.failures += 1;
            self.note(health, &reason, Some(self.failures), notes);
            if self.failures >= health.retries {
                return CheckStep::Unhealthy(StepFailure::new(
                    ErrorCode::Unhealthy,
                    format!(
                        "health check: GET {path} failed {} time{} in a row after the {} grace period (last: {reason})",
                        self.failures,
                        if self.failures == 1 { "" } else { "s" },
                        human(health.start_period)
                    ),
                ));
            }
        }
        self.last_reason = Some(reason);
        // Inside the grace period failures do not count, so probing faster costs nothing and lets a release that
        // comes up a moment after it starts be switched at once.
        let pause = if in_grace { health.interval.min(GRACE_POLL) } else { health.interval };
        CheckStep::Continue(self, Action::WaitUntil(now + pause))
    }

    /// Records a probe failure, compressing repeats of the same reason inside the grace period.
    fn note(&self, health: &HealthPlan, reason: &str, counted: Option<u32>, notes: &mut Vec<String>) {
        match counted {
            Some(n) => notes.push(format!("probe {n}/{} failed: {reason}", health.retries)),
            None if self.last_reason.as_deref() != Some(reason) => {
                notes.push(format!("probe failed during the grace period: {reason}"))
            }
            None => {}
        }
    }
}
