//! The post-switch watch (SPEC §8.4): after the switch the new release is probed by the health check's rules with
//! its grace period already over, until `deploy.watch` has passed. `retries` consecutive failed probes, an exit or
//! a restart end the watch with the reason, and the machine rolls back.
//!
//! Unlike the health check, a healthy probe does not end the watch: it only clears the failure count.

use std::time::Instant;

use super::display::human;
use super::*;

/// The watch of the new release in progress.
#[derive(Debug, Clone)]
pub(super) struct Watch {
    /// The new release's runtime id.
    instance: String,
    /// When the switch committed.
    since: Instant,
    /// When the window ends.
    pub(super) until: Instant,
    /// Consecutive failed HTTP probes.
    failures: u32,
    /// Each container's `StartedAt` and restart count in the first round, to see restarts.
    first: Option<Vec<(String, String, i64)>>,
    /// Whether the next event answers a Probe (true) or a WaitUntil (false).
    probing: bool,
}

/// What a watch round decided.
pub(super) enum WatchStep {
    /// The window is not over: go on with this action.
    Continue(Watch, Action),
    /// The window passed without a reason to roll back.
    Passed,
    /// Roll back, for this reason.
    Failed(StepFailure),
}

impl Watch {
    /// A watch of `instance` from `now` for `window`; its first action is a probe.
    pub(super) fn begin(instance: String, now: Instant, window: std::time::Duration) -> (Watch, Action) {
        let action = Action::Probe { container: instance.clone() };
        (Watch { instance, since: now, until: now + window, failures: 0, first: None, probing: true }, action)
    }

    /// Takes the answer to the watch's last action. Failed probes go to `notes`.
    pub(super) fn step(
        mut self,
        health: &HealthPlan,
        event: Event,
        now: Instant,
        notes: &mut Vec<String>,
    ) -> WatchStep {
        let observation = match event {
            Event::Waited if !self.probing => {
                self.probing = true;
                let container = self.instance.clone();
                return WatchStep::Continue(self, Action::Probe { container });
            }
            Event::Probed(observation) if self.probing => observation,
            // A probe the engine could not answer (it did not respond) is a failed probe, not a reason to give up
            // on the release at once.
            Event::Failed(failure) if self.probing => Observation {
                containers: vec![ContainerHealth {
                    name: "app".into(),
                    state: ContainerObservation::Running { started_at: String::new(), restart_count: -1 },
                    http: Some(ProbeResult::Unhealthy(failure.message)),
                }],
            },
            other => {
                return WatchStep::Failed(StepFailure::new(
                    ErrorCode::Interrupted,
                    format!("internal error: unexpected {other:?} during the post-switch watch"),
                ));
            }
        };
        self.probing = false;
        let after = human(now.saturating_duration_since(self.since));
        let several = observation.containers.len() > 1;
        let subject = |name: &str| if several { format!("container {name}") } else { "the new release".to_owned() };
        let mut seen = Vec::with_capacity(observation.containers.len());
        for c in &observation.containers {
            match &c.state {
                ContainerObservation::Stopped { exit_code, oom_killed } => {
                    let how = match (oom_killed, exit_code) {
                        (true, _) => "was killed for using too much memory (OOM)".to_owned(),
                        (false, Some(code)) => format!("exited with code {code}"),
                        (false, None) => "stopped".to_owned(),
                    };
                    return WatchStep::Failed(StepFailure::new(
                        ErrorCode::Exited,
                        format!("post-switch watch: {} {how} {after} after the switch", subject(&c.name)),
                    ));
                }
                // restart_count -1 marks a round the engine did not answer; it says nothing about restarts.
                ContainerObservation::Running { restart_count: -1, .. } => {}
                ContainerObservation::Running { started_at, restart_count } => {
                    seen.push((c.name.clone(), started_at.clone(), *restart_count))
                }
            }
        }
        match &self.first {
            None if !seen.is_empty() => self.first = Some(seen),
            Some(first) if !seen.is_empty() => {
                if let Some((name, _, _)) = first.iter().find(|f| !seen.contains(f)) {
                    return WatchStep::Failed(StepFailure::new(
                        ErrorCode::Exited,
                        format!(
                            "post-switch watch: {} restarted {after} after the switch (it crashed and the engine \
                             restarted it)",
                            subject(name)
                        ),
                    ));
                }
            }
            _ => {}
        }
        let failing = observation.containers.iter().find_map(|c| match &c.http {
            Some(ProbeResult::Unhealthy(reason)) if several => Some(format!("{}: {reason}", c.name)),
            Some(ProbeResult::Unhealthy(reason)) => Some(reason.clone()),
            _ => None,
        });
        match failing {
            Some(reason) => {
                self.failures += 1;
                notes.push(format!("watch probe {}/{} failed: {reason}", self.failures, health.retries));
                if self.failures >= health.retries {
                    let path = health.path.as_deref().unwrap_or("/");
                    return WatchStep::Failed(StepFailure::new(
                        ErrorCode::Unhealthy,
                        format!(
                            "post-switch watch: GET {path} failed {} time{} in a row {after} after the switch (last: \
                             {reason})",
                            self.failures,
                            if self.failures == 1 { "" } else { "s" },
                        ),
                    ));
                }
            }
            None => self.failures = 0,
        }
        if now >= self.until {
            return WatchStep::Passed;
        }
        let next = (now + health.interval).min(self.until);
        WatchStep::Continue(self, Action::WaitUntil(next))
    }
}
