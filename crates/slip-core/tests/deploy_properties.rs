//! Properties of the deploy state machine (`slip_core::deploy`) over random runs (issue 15): a scripted driver
//! answers every action with an event chosen by proptest (success, failure, healthy or unhealthy probes, a
//! container that stops or restarts, in-flight counts, time passing), and each run is checked for:
//!
//! - it always ends, with `Finish`, within a bounded number of steps;
//! - traffic never moves (`Switch`) to a candidate whose latest probe round failed;
//! - blue-green never stops or removes the old release before the switch has happened;
//! - `Completed` only follows a switch, and a failure before the switch leaves the old release untouched.

use std::time::{Duration, Instant};

use proptest::prelude::*;
use slip_core::deploy::{
    Action, ContainerObservation, Deploy, ErrorCode, Event, HealthPlan, Observation, OldInstance, Outcome, Plan,
    ProbeResult, StepFailure, Strategy as DeployStrategy,
};

/// A run longer than this did not end.
const MAX_STEPS: usize = 20_000;

const OLD: &str = "old-1";

fn plan(strategy: DeployStrategy, with_path: bool, old: bool, retries: u32) -> Plan {
    Plan {
        strategy,
        routed: true,
        health: HealthPlan {
            path: with_path.then(|| "/health".to_owned()),
            interval: Duration::from_secs(1),
            timeout: Duration::from_secs(2),
            retries,
            start_period: Duration::from_secs(3),
            stable_for: Duration::from_secs(2),
        },
        drain_timeout: Duration::from_secs(5),
        stop_grace: Duration::from_secs(2),
        timeout: Duration::from_secs(60),
        watch: Duration::ZERO,
        old: old.then(|| OldInstance { container: OLD.to_owned() }),
    }
}

/// The random answers a run draws from, one byte per decision; when they run out, every step succeeds.
struct Script {
    bytes: Vec<u8>,
    at: usize,
}

impl Script {
    fn next(&mut self) -> u8 {
        let b = self.bytes.get(self.at).copied().unwrap_or(0);
        self.at += 1;
        b
    }

    /// A failure with probability `1 in n` (n > 0).
    fn fails(&mut self, n: u8) -> bool {
        self.next() % n == n - 1
    }
}

fn failure() -> Event {
    Event::Failed(StepFailure::new(ErrorCode::StartFailed, "scripted failure"))
}

/// What one run did, for the properties.
#[derive(Debug, Default)]
struct Trace {
    steps: usize,
    switched: bool,
    old_stopped_before_switch: bool,
    switched_to_unhealthy: bool,
    outcome: Option<Outcome>,
    log: Vec<String>,
}

fn run(plan: Plan, bytes: Vec<u8>) -> Trace {
    let with_path = plan.health.path.is_some();
    let mut script = Script { bytes, at: 0 };
    let mut now = Instant::now();
    let (mut deploy, mut action) = Deploy::begin(plan, now);
    let mut trace = Trace::default();
    let mut candidate: Option<String> = None;
    // Whether the latest probe round of the current candidate was healthy.
    let mut last_probe_healthy = false;
    let mut started_at = 0u32;
    let mut restarts = 0i64;
    let mut first_seen: Option<i64> = None;
    while trace.steps < MAX_STEPS {
        trace.steps += 1;
        trace.log.push(action.to_string());
        let event = match &action {
            Action::Finish(outcome) => {
                trace.outcome = Some(outcome.clone());
                return trace;
            }
            Action::Pull => {
                if script.fails(8) {
                    failure()
                } else {
                    Event::Pulled
                }
            }
            Action::Configure => {
                if script.fails(8) {
                    failure()
                } else {
                    Event::Configured(None)
                }
            }
            Action::Start => {
                if script.fails(8) {
                    failure()
                } else {
                    started_at += 1;
                    let id = format!("new-{started_at}");
                    candidate = Some(id.clone());
                    last_probe_healthy = false;
                    first_seen = None;
                    Event::Started(id)
                }
            }
            Action::Probe { container } => {
                let b = script.next();
                let running = b % 7 != 6;
                // Now and then the engine restarts the container.
                restarts += i64::from(b % 11 == 10);
                let state = if running {
                    ContainerObservation::Running { started_at: "2026-01-01T00:00:00Z".into(), restart_count: restarts }
                } else {
                    ContainerObservation::Stopped { exit_code: Some(1), oom_killed: b.is_multiple_of(2) }
                };
                let http = (with_path && running).then(|| {
                    if script.next().is_multiple_of(3) {
                        ProbeResult::Unhealthy("HTTP 503".into())
                    } else {
                        ProbeResult::Healthy(200)
                    }
                });
                let observation = Observation::single(state, http.clone());
                if Some(container) == candidate.as_ref() {
                    let http_ok = http.as_ref().is_none_or(|h| matches!(h, ProbeResult::Healthy(_)));
                    // A restart since the candidate was first seen running is a failed round too.
                    let first = *first_seen.get_or_insert(restarts);
                    last_probe_healthy = running && http_ok && restarts == first;
                }
                Event::Probed(observation)
            }
            Action::WaitUntil(until) => {
                now = now.max(*until);
                Event::Waited
            }
            Action::Hold => {
                if script.fails(8) {
                    failure()
                } else {
                    Event::Held
                }
            }
            Action::Switch { .. } => {
                if !last_probe_healthy {
                    trace.switched_to_unhealthy = true;
                }
                if script.fails(8) {
                    failure()
                } else {
                    trace.switched = true;
                    Event::Switched
                }
            }
            Action::Commit => {
                if script.fails(10) {
                    failure()
                } else {
                    Event::Committed
                }
            }
            Action::PollDrain => {
                let b = script.next();
                if b % 9 == 8 { failure() } else { Event::InFlight((!b.is_multiple_of(4)).then_some(u64::from(b % 3))) }
            }
            Action::Stop { container, .. } | Action::Remove { container } => {
                if container == OLD && !trace.switched {
                    trace.old_stopped_before_switch = true;
                }
                let stopped = matches!(action, Action::Stop { .. });
                match (script.fails(10), stopped) {
                    (true, _) => failure(),
                    (false, true) => Event::Stopped,
                    (false, false) => Event::Removed,
                }
            }
            Action::Restart { .. } => {
                if script.fails(8) {
                    failure()
                } else {
                    Event::Restarted
                }
            }
            Action::RouteBack => {
                if script.fails(8) {
                    failure()
                } else {
                    Event::RoutedBack
                }
            }
            Action::Uncommit => {
                if script.fails(10) {
                    failure()
                } else {
                    Event::Uncommitted
                }
            }
        };
        // Each step takes a little time, up to a second.
        now += Duration::from_millis(u64::from(script.next()) * 4);
        action = deploy.advance(event, now);
    }
    trace
}

fn any_plan() -> impl proptest::strategy::Strategy<Value = Plan> {
    (any::<bool>(), any::<bool>(), any::<bool>(), 1u32..5, any::<bool>()).prop_map(
        |(blue_green, with_path, old, retries, watch)| {
            let strategy = if blue_green { DeployStrategy::BlueGreen } else { DeployStrategy::Recreate };
            // A watch of 3 s sees several probe rounds at the script's step times.
            Plan { watch: Duration::from_secs(if watch { 3 } else { 0 }), ..plan(strategy, with_path, old, retries) }
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2_000, ..ProptestConfig::default() })]

    #[test]
    fn every_run_ends_and_keeps_the_routing_invariants(plan in any_plan(), bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        let blue_green = plan.strategy == DeployStrategy::BlueGreen;
        let trace = run(plan, bytes);
        prop_assert!(trace.outcome.is_some(), "no Finish after {} steps: {:?}", trace.steps, &trace.log[trace.log.len().saturating_sub(20)..]);
        prop_assert!(!trace.switched_to_unhealthy, "switched to a candidate whose last probe failed: {:?}", trace.log);
        if blue_green {
            prop_assert!(!trace.old_stopped_before_switch, "blue-green stopped the old release before the switch: {:?}", trace.log);
        }
        if let Some(Outcome::Completed { .. } | Outcome::RolledBack { .. }) = trace.outcome {
            prop_assert!(trace.switched, "completed without a switch: {:?}", trace.log);
        }
    }
}
