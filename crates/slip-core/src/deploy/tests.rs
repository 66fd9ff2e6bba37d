//! Snapshot tests of whole scripted deploys.

use super::display::human;
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
    /// How many such actions in a row fail, from the n-th on.
    fail_times: usize,
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
            fail_times: 1,
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
        watch: Duration::ZERO,
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
                (*c >= n && *c < n + world.fail_times).then(|| StepFailure::new(code, format!("{label} failed")))
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
                        Action::Configure => Event::Configured(None),
                        Action::Start => Event::Started("web-2".into()),
                        Action::Probe { .. } => {
                            let container = next(&mut world.containers);
                            let http = match (&container, deploy.plan.health.path.is_some()) {
                                (ContainerObservation::Running { .. }, true) => Some(next(&mut world.http)),
                                _ => None,
                            };
                            Event::Probed(Observation::single(container, http))
                        }
                        Action::Hold => Event::Held,
                        Action::Switch { .. } => Event::Switched,
                        Action::Commit => Event::Committed,
                        Action::PollDrain => Event::InFlight(next(&mut world.in_flight)),
                        Action::Stop { .. } => Event::Stopped,
                        Action::Remove { .. } => Event::Removed,
                        Action::Restart { .. } => Event::Restarted,
                        Action::RouteBack => Event::RoutedBack,
                        Action::Uncommit => Event::Uncommitted,
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
            500ms    switching        commit
            600ms    completed        finish completed
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
            500ms    switching        commit
            600ms    draining         poll drain
            950ms    draining         poll drain
            1s300ms  draining         poll drain
            1s450ms  draining         poll drain
            1s550ms  draining         stop web-1 grace=10s
            1s650ms  draining         remove web-1
            1s750ms  completed        finish completed
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
            5s700ms  switching        commit
            5s800ms  switching        remove web-1
            5s900ms  completed        finish completed
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
            950ms    switching        commit
            1s50ms   switching        remove web-1
            1s150ms  completed        finish completed
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
    let world = World { http: VecDeque::from([unhealthy("HTTP 500"), ProbeResult::Healthy(200)]), ..World::default() };
    let t = simulate(p, world);
    let order: Vec<&str> =
        t.lines().map(|l| if l.contains("note:") { "note:" } else { l.split_whitespace().nth(2).unwrap() }).collect();
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

#[test]
fn a_failed_commit_after_a_blue_green_switch_routes_back_then_discards_the_candidate() {
    let world = World { fail: Some(("commit", 1, ErrorCode::StorageUnavailable)), ..World::default() };
    check(
        plan(Strategy::BlueGreen, true),
        world,
        expect![[r#"
            0s       pulling          pull
            100ms    configuring      configure
            200ms    starting         start candidate
            300ms    health_checking  probe web-2
            400ms    switching        switch routes to candidate, drain old
            500ms    switching        commit
            600ms    failed           route back to old
            700ms    failed           remove web-2
            800ms    failed           finish failed (storage_unavailable): commit failed
        "#]],
    );
}

#[test]
fn a_failed_commit_after_a_recreate_switch_restores_the_old_release() {
    let world = World { fail: Some(("commit", 1, ErrorCode::StorageUnavailable)), ..World::default() };
    let t = simulate(plan(Strategy::Recreate, true), world);
    assert!(t.contains("remove web-2") && t.contains("restart web-1") && t.contains("route back to old"), "{t}");
    assert!(t.ends_with("commit failed; previous release restored\n"), "{t}");
}

#[test]
fn a_taken_host_port_gets_new_ports_and_starts_again() {
    let world = World { fail: Some(("start", 1, ErrorCode::PortUnavailable)), fail_times: 2, ..World::default() };
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
            750ms                       note: start candidate failed; leasing other host ports and starting again
            750ms    configuring      configure
            850ms    draining         hold routes on candidate
            950ms    starting         start candidate
            1s50ms                      note: start candidate failed; leasing other host ports and starting again
            1s50ms   configuring      configure
            1s150ms  draining         hold routes on candidate
            1s250ms  starting         start candidate
            1s350ms  health_checking  probe web-2
            1s450ms  switching        switch routes to candidate
            1s550ms  switching        commit
            1s650ms  switching        remove web-1
            1s750ms  completed        finish completed
        "#]],
    );
}

#[test]
fn a_host_port_taken_on_every_try_fails_the_deploy_after_the_retries() {
    let world = World { fail: Some(("start", 1, ErrorCode::PortUnavailable)), fail_times: 10, ..World::default() };
    let t = simulate(plan(Strategy::BlueGreen, true), world);
    assert_eq!(t.lines().filter(|l| l.ends_with("start candidate")).count(), 1 + PORT_RETRIES as usize, "{t}");
    assert!(t.ends_with("finish failed (port_unavailable): start candidate failed\n"), "{t}");
}

/// Drives a blue-green deploy with an old release to its health check.
fn to_health_check(now: Instant) -> Deploy {
    let (mut deploy, _) = Deploy::begin(plan(Strategy::BlueGreen, true), now);
    deploy.advance(Event::Pulled, now);
    deploy.advance(Event::Configured(None), now);
    assert_eq!(deploy.advance(Event::Started("web-2".into()), now), Action::Probe { container: "web-2".into() });
    deploy
}

#[test]
fn shutdown_may_drop_a_probe_and_the_candidate_is_removed() {
    let now = Instant::now();
    let mut deploy = to_health_check(now);
    assert_eq!(deploy.interruptible(), Interruptible::Anytime);
    assert_eq!(
        deploy.advance(Event::Interrupted(Interrupt::Shutdown), now),
        Action::Remove { container: "web-2".into() }
    );
    // Unwinding runs to its end: a second interrupt is not taken.
    assert_eq!(deploy.interruptible(), Interruptible::No);
    assert_eq!(
        deploy.advance(Event::Interrupted(Interrupt::Cancel("again".into())), now),
        Action::Remove { container: "web-2".into() }
    );
    let Action::Finish(Outcome::Failed { failure, app_down: false }) = deploy.advance(Event::Removed, now) else {
        panic!("the deploy should fail");
    };
    assert_eq!((failure.code, failure.message.as_str()), (ErrorCode::Interrupted, "slipd is shutting down"));
}

#[test]
fn a_cancel_waits_for_a_step_with_effects_and_is_refused_after_the_switch() {
    let now = Instant::now();
    let mut deploy = to_health_check(now);
    // Healthy: the switch is next, and it must not be dropped halfway.
    let switch = deploy.advance(Event::Probed(Observation::single(running(), Some(ProbeResult::Healthy(200)))), now);
    assert_eq!(switch, Action::Switch { drain_old: true });
    assert_eq!(deploy.interruptible(), Interruptible::BeforeAction);
    assert_eq!(deploy.advance(Event::Switched, now), Action::Commit);
    assert_eq!(deploy.advance(Event::Committed, now), Action::PollDrain);
    assert_eq!(deploy.interruptible(), Interruptible::No);
    let cancel = Event::Interrupted(Interrupt::Cancel("cancelled by admin".into()));
    assert_eq!(deploy.advance(cancel, now), Action::PollDrain, "after the switch the pending action stands");
}

#[test]
fn a_cancel_before_the_switch_fails_the_deploy_with_its_reason() {
    let now = Instant::now();
    let mut deploy = to_health_check(now);
    let cancel = Event::Interrupted(Interrupt::Cancel("cancelled: the app is being deleted".into()));
    assert_eq!(deploy.advance(cancel, now), Action::Remove { container: "web-2".into() });
    let Action::Finish(Outcome::Failed { failure, .. }) = deploy.advance(Event::Removed, now) else {
        panic!("the deploy should fail");
    };
    assert_eq!((failure.code, failure.message.as_str()), (ErrorCode::Cancelled, "cancelled: the app is being deleted"));
}

#[test]
fn every_container_of_an_instance_must_be_healthy_and_a_failure_names_the_container() {
    let now = Instant::now();
    let pod = |worker: ContainerObservation| Observation {
        containers: vec![
            ContainerHealth { name: "api".into(), state: running(), http: Some(ProbeResult::Healthy(200)) },
            ContainerHealth { name: "worker".into(), state: worker, http: None },
        ],
    };
    // The probed container answers at once; the unprobed one must also have run for stable_for (5s).
    let mut healthy = to_health_check(now);
    let waiting = healthy.advance(Event::Probed(pod(running())), now);
    assert!(matches!(waiting, Action::WaitUntil(_)), "{waiting:?}");
    let stable = now + Duration::from_secs(5);
    assert_eq!(healthy.advance(Event::Waited, stable), Action::Probe { container: "web-2".into() });
    assert_eq!(healthy.advance(Event::Probed(pod(running())), stable), Action::Switch { drain_old: true });

    let mut failing = to_health_check(now);
    let later = now + Duration::from_secs(1);
    let stopped = ContainerObservation::Stopped { exit_code: Some(1), oom_killed: false };
    assert_eq!(failing.advance(Event::Probed(pod(stopped)), later), Action::Remove { container: "web-2".into() });
    let Action::Finish(Outcome::Failed { failure, .. }) = failing.advance(Event::Removed, later) else {
        panic!("the deploy should fail");
    };
    assert_eq!(failure.message, "health check: container worker exited with code 1 1s after it started");
}

fn watched(strategy: Strategy, window: u64) -> Plan {
    Plan { watch: Duration::from_secs(window), ..plan(strategy, true) }
}

#[test]
fn a_release_that_stays_healthy_through_the_watch_then_retires_the_old_one() {
    let transcript = simulate(watched(Strategy::BlueGreen, 5), World::default());
    expect![[r#"
        0s       pulling          pull
        100ms    configuring      configure
        200ms    starting         start candidate
        300ms    health_checking  probe web-2
        400ms    switching        switch routes to candidate, drain old
        500ms    switching        commit
        600ms    watching         probe web-2
        2s700ms  watching         probe web-2
        4s800ms  watching         probe web-2
        5s600ms  watching         probe web-2
        5s700ms  draining         poll drain
        5s850ms  draining         poll drain
        5s950ms  draining         stop web-1 grace=10s
        6s50ms   draining         remove web-1
        6s150ms  completed        finish completed
    "#]]
    .assert_eq(&transcript);
}

#[test]
fn failing_probes_after_the_switch_route_back_uncommit_and_remove_the_new_release() {
    // Healthy for the check and the first watch probe, then failing (the release breaks 3 s after the switch).
    let world = World {
        http: VecDeque::from([
            ProbeResult::Healthy(200),
            ProbeResult::Healthy(200),
            ProbeResult::Healthy(200),
            unhealthy("HTTP 500"),
        ]),
        ..World::default()
    };
    let plan = Plan {
        health: HealthPlan { retries: 3, ..plan(Strategy::BlueGreen, true).health },
        ..watched(Strategy::BlueGreen, 60)
    };
    let transcript = simulate(plan, world);
    assert!(!transcript.contains("stop web-1"), "the old release is kept running:\n{transcript}");
    expect![[r#"
        0s       pulling          pull
        100ms    configuring      configure
        200ms    starting         start candidate
        300ms    health_checking  probe web-2
        400ms    switching        switch routes to candidate, drain old
        500ms    switching        commit
        600ms    watching         probe web-2
        2s700ms  watching         probe web-2
        4s800ms  watching         probe web-2
        4s900ms                     note: watch probe 1/3 failed: HTTP 500
        6s900ms  watching         probe web-2
        7s                          note: watch probe 2/3 failed: HTTP 500
        9s       watching         probe web-2
        9s100ms                     note: watch probe 3/3 failed: HTTP 500
        9s100ms                     note: rolling back to the previous release: post-switch watch: GET /health failed 3 times in a row 8s500ms after the switch (last: HTTP 500)
        9s100ms  watching         route back to old
        9s200ms  watching         uncommit
        9s300ms  watching         remove web-2
        9s400ms  rolled_back      finish rolled back (unhealthy): post-switch watch: GET /health failed 3 times in a row 8s500ms after the switch (last: HTTP 500)
    "#]]
    .assert_eq(&transcript);
}

#[test]
fn a_healthy_probe_during_the_watch_clears_the_failure_count() {
    let world = World {
        http: VecDeque::from([
            ProbeResult::Healthy(200),
            unhealthy("HTTP 500"),
            unhealthy("HTTP 500"),
            ProbeResult::Healthy(200),
            unhealthy("HTTP 500"),
            ProbeResult::Healthy(200),
        ]),
        ..World::default()
    };
    let plan = Plan {
        health: HealthPlan { retries: 3, ..plan(Strategy::BlueGreen, true).health },
        ..watched(Strategy::BlueGreen, 12)
    };
    let transcript = simulate(plan, world);
    assert!(transcript.ends_with("finish completed\n"), "{transcript}");
    assert_eq!(transcript.matches("note: watch probe 2/3").count(), 1, "{transcript}");
}

#[test]
fn an_exit_after_the_switch_rolls_back_at_once() {
    let world = World {
        containers: VecDeque::from([
            running(),
            running(),
            ContainerObservation::Stopped { exit_code: Some(137), oom_killed: true },
        ]),
        ..World::default()
    };
    let transcript = simulate(watched(Strategy::BlueGreen, 60), world);
    assert!(
        transcript.ends_with(
            "finish rolled back (exited): post-switch watch: the new release was killed for using too much memory \
             (OOM) 2s200ms after the switch\n"
        ),
        "{transcript}"
    );
}

#[test]
fn a_restart_after_the_switch_rolls_back() {
    let world = World {
        containers: VecDeque::from([
            running(),
            running(),
            ContainerObservation::Running { started_at: "t1".into(), restart_count: 1 },
        ]),
        ..World::default()
    };
    let transcript = simulate(watched(Strategy::BlueGreen, 60), world);
    assert!(transcript.contains("restarted 2s200ms after the switch"), "{transcript}");
    assert!(
        transcript.ends_with("\n") && transcript.contains("rolled_back      finish rolled back (exited)"),
        "{transcript}"
    );
}

#[test]
fn a_recreate_watch_failure_uncommits_then_starts_the_old_release_again() {
    let world = World {
        http: VecDeque::from([ProbeResult::Healthy(200), unhealthy("HTTP 502"), ProbeResult::Healthy(200)]),
        ..World::default()
    };
    let plan = Plan {
        health: HealthPlan { retries: 1, ..plan(Strategy::Recreate, true).health },
        ..watched(Strategy::Recreate, 30)
    };
    let transcript = simulate(plan, world);
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
        950ms    switching        commit
        1s50ms   watching         probe web-2
        1s150ms                     note: watch probe 1/1 failed: HTTP 502
        1s150ms                     note: rolling back to the previous release: post-switch watch: GET /health failed 1 time in a row 100ms after the switch (last: HTTP 502)
        1s150ms  watching         uncommit
        1s250ms  watching         remove web-2
        1s350ms  watching         restart web-1
        1s450ms  watching         route back to old
        1s550ms  watching         probe web-1
        1s650ms  rolled_back      finish rolled back (unhealthy): post-switch watch: GET /health failed 1 time in a row 100ms after the switch (last: HTTP 502)
    "#]]
    .assert_eq(&transcript);
}

#[test]
fn a_first_deploy_does_not_watch_and_nothing_after_the_switch_is_interruptible() {
    let transcript =
        simulate(Plan { watch: Duration::from_secs(30), ..plan(Strategy::BlueGreen, false) }, World::default());
    assert!(!transcript.contains("watching"), "nothing to roll back to:\n{transcript}");
    let now = Instant::now();
    let (mut deploy, _) = Deploy::begin(watched(Strategy::BlueGreen, 30), now);
    for event in [Event::Pulled, Event::Configured(None), Event::Started("web-2".into())] {
        deploy.advance(event, now);
    }
    let healthy = Event::Probed(Observation::single(running(), Some(ProbeResult::Healthy(200))));
    let mut action = deploy.advance(healthy, now);
    assert!(matches!(action, Action::Switch { .. }));
    deploy.advance(Event::Switched, now);
    action = deploy.advance(Event::Committed, now);
    assert_eq!((deploy.status(), &action), (Status::Watching, &Action::Probe { container: "web-2".into() }));
    assert_eq!(deploy.interruptible(), Interruptible::No, "a watch is never cancelled: use rollback");
    let again = deploy.advance(Event::Interrupted(Interrupt::Cancel("stop".into())), now);
    assert_eq!(again, action, "the pending probe is answered again");
}

#[test]
fn what_configuring_settles_replaces_the_plan_once() {
    let now = Instant::now();
    // The server file alone said blue-green; the image says worker, so recreate: the old release is stopped
    // first (no routes to hold).
    let (mut deploy, _) = Deploy::begin(plan(Strategy::BlueGreen, true), now);
    deploy.advance(Event::Pulled, now);
    let mut health = plan(Strategy::BlueGreen, true).health;
    health.path = None;
    let settled = Settled { strategy: Strategy::Recreate, routed: false, health };
    assert_eq!(
        deploy.advance(Event::Configured(Some(settled)), now),
        Action::Stop { container: "web-1".into(), grace: plan(Strategy::BlueGreen, true).stop_grace }
    );
}
