//! Crash safety with the real `slipd` binary (SPEC §18): slipd aborts (as `kill -9` would, through the
//! test-only `SLIP_FAULT_*` switch) at every step of a blue-green and a recreate deploy, both right after the
//! step is recorded and right after its first action (and, for the switch, right after its commit), and is started
//! again without the fault. Every case must
//! converge: the new release serves through Caddy, exactly one container of the app exists, and the deploy's
//! record is `completed`, says what happened, and shows whether it was finished forward (attempt 1) or rolled
//! back and run again (attempt 2). Graceful shutdown (SIGTERM) is checked the same way, and so is a current
//! container removed while slipd was down.
//!
//! Cases run concurrently (each has its own slipd, Caddy and image repository; one registry per test), bounded
//! so the machine's two cores keep health checks honest. Each case pushes its own repository because every slipd
//! prunes the images it pulled: two daemons sharing one engine and one repository would prune each other's.

use std::os::unix::process::ExitStatusExt;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use slip_testenv::{Image, Registry};
use tokio::sync::Semaphore;

use crate::support::{ProcessConfig, SlipdProcess, app_name, containers_of, web_app_with_image};

/// Blue-green's recorded steps, in order.
const BLUE_GREEN: [&str; 6] = ["pulling", "configuring", "starting", "health_checking", "switching", "draining"];
/// Recreate's recorded steps, in order.
const RECREATE: [&str; 6] = ["pulling", "configuring", "draining", "starting", "health_checking", "switching"];

/// Cases in flight at once per test.
const CONCURRENCY: usize = 2;

#[tokio::test(flavor = "multi_thread")]
async fn blue_green_converges_after_a_crash_at_every_step() {
    matrix("blue-green", &BLUE_GREEN).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn recreate_converges_after_a_crash_at_every_step() {
    matrix("recreate", &RECREATE).await;
}

/// SIGTERM while a deploy is health-checking: slipd exits 0 within its bound, the candidate is gone, the old
/// release kept serving, and the deploy is queued again (not failed) and completes after the restart. A deploy
/// queued behind it survives the restart too, and supersedes the interrupted one.
#[tokio::test(flavor = "multi_thread")]
async fn graceful_shutdown_requeues_the_running_deploy_and_keeps_the_queue() {
    slip_testenv::require_docker();
    let registry = Registry::start();
    let cases = [("blue-green", false), ("recreate", false), ("blue-green", true)];
    let runs = cases.map(|(strategy, queue_another)| {
        let app = app_name("term");
        registry.push(&Image::V1, &app, "v1");
        registry.push(&Image::slow_start(4).with_version("v2"), &app, "v2");
        registry.push(&Image::release("v3"), &app, "v3");
        let image = format!("{}/{app}", registry.host());
        async move {
            let label = format!("{strategy}, queued behind: {queue_another}");
            let outcome =
                std::panic::AssertUnwindSafe(shutdown_case(&app, strategy, &image, queue_another)).catch_unwind();
            outcome.await.map_err(|panic| format!("{label}: {}", panic_text(panic)))
        }
    });
    let failures: Vec<String> = futures::future::join_all(runs).await.into_iter().filter_map(Result::err).collect();
    assert!(failures.is_empty(), "{} shutdown case(s) failed:\n\n{}", failures.len(), failures.join("\n\n"));
}

async fn matrix(strategy: &'static str, steps: &[&'static str]) {
    slip_testenv::require_docker();
    let registry = Arc::new(Registry::start());
    let limit = Arc::new(Semaphore::new(CONCURRENCY));
    let mut runs = tokio::task::JoinSet::new();
    for step in steps {
        let points: &[&str] = if *step == "switching" { &["", ":acted", ":committed"] } else { &["", ":acted"] };
        for point in points {
            let fault = format!("{step}{point}");
            let (registry, limit) = (registry.clone(), limit.clone());
            runs.spawn(async move {
                let _permit = limit.acquire_owned().await.expect("semaphore open");
                let outcome =
                    std::panic::AssertUnwindSafe(crash_case(&registry, strategy, &fault)).catch_unwind().await;
                outcome.map_err(|panic| format!("abort after {fault}: {}", panic_text(panic)))
            });
        }
    }
    let mut failures = Vec::new();
    let mut passed = 0;
    while let Some(joined) = runs.join_next().await {
        match joined.expect("case task") {
            Ok(()) => passed += 1,
            Err(failure) => failures.push(failure),
        }
    }
    assert!(
        failures.is_empty(),
        "{strategy}: {} of {} crash cases failed:\n\n{}",
        failures.len(),
        failures.len() + passed,
        failures.join("\n\n")
    );
    // Two points per step, and the switch's commit.
    assert_eq!(passed, steps.len() * 2 + 1);
}

/// Whether reconciliation must finish this case forward (the switch had committed when slipd died).
fn committed_before_the_crash(strategy: &str, fault: &str) -> bool {
    match strategy {
        "blue-green" => matches!(fault, "switching:committed" | "draining" | "draining:acted"),
        _ => fault == "switching:committed",
    }
}

async fn crash_case(registry: &Registry, strategy: &str, fault: &str) {
    let app = app_name("crash");
    let host = format!("{app}.test");
    tokio::task::block_in_place(|| {
        registry.push(&Image::V1, &app, "v1");
        registry.push(&Image::V2, &app, "v2");
    });
    let image = format!("{}/{app}", registry.host());
    let config = web_app_with_image(&app, &image, &format!("strategy = \"{strategy}\""));
    let mut slipd = SlipdProcess::new(vec![(app.clone(), config)], ProcessConfig::default());
    let armed = [("SLIP_FAULT_INJECTION", "1"), ("SLIP_FAULT_ABORT_AFTER", fault), ("SLIP_FAULT_ABORT_TAG", "v2")];
    slipd.start(&armed).await;
    let api = slipd.api.clone();

    let first = api.deploy_and_wait(&app, "v1").await;
    assert_eq!(first.status, "completed", "v1 (the fault is armed for v2 only): {first:?}\n{}", slipd.log());
    let second = api.deploy(&app, "v2").await;
    let exit = slipd.wait_exit(Duration::from_secs(60)).await;
    assert_eq!(exit.signal(), Some(6), "slipd aborted (SIGABRT) after {fault}: {exit:?}\n{}", slipd.log());
    assert!(slipd.log().contains("FAULT INJECTION ARMED"), "the armed fault is logged loudly");

    let at_crash = app_containers(&app);
    if strategy == "blue-green" {
        // The data plane does not depend on slipd: while it is dead, one release or the other answers.
        let (code, body) = api.through_caddy(&host, "/version").await;
        assert!(code == 200 && (body == "v1" || body == "v2"), "served while slipd was down: {code} {body}");
    }

    slipd.start(&[]).await;
    // What boot reconciliation did, before the re-queued deploy ran: the release that must survive (the new one
    // when the switch had committed, else the old one) was kept, and started again if the crash left it
    // stopped; every other container of the app was removed.
    let forward = committed_before_the_crash(strategy, fault);
    let report = last_reconcile_report(&slipd.log());
    for (name, deploy, running) in &at_crash {
        let survivor = if forward { *deploy == second.deploy_id } else { *deploy == first.deploy_id };
        let (restarted, removed) = (report_list(&report, "restarted"), report_list(&report, "removed"));
        let orphans = report_list(&report, "orphans_removed");
        if survivor {
            assert_eq!(restarted.contains(name), !running, "{name} (running: {running}) restarted? {report}");
            assert!(!removed.contains(name) && !orphans.contains(name), "{name} kept: {report}");
        } else {
            assert!(removed.contains(name) || orphans.contains(name), "{name} removed at boot: {report}");
        }
    }
    let done = api.wait_deploy(&second.deploy_id, Duration::from_secs(120)).await;
    assert_eq!(done.status, "completed", "after the restart: {done:?}\n{}", slipd.log());
    let detail = done.detail.clone().expect("admin view");
    assert_eq!(detail.attempt, if forward { 1 } else { 2 }, "finished forward: {forward}; {done:?}");
    let said = detail
        .events
        .iter()
        .filter_map(|e| e.message.as_deref())
        .any(|m| m.starts_with("slipd stopped while this deploy was"));
    assert!(said, "the record says slipd stopped mid-deploy: {:?}", detail.events);

    assert_eq!(api.through_caddy(&host, "/version").await, (200, "v2".to_owned()));
    let all = containers_of(&app, true);
    assert_eq!(all.len(), 1, "exactly one container of {app} (no orphan): {all:?}\n{}", slipd.log());
    assert_eq!(containers_of(&app, false), all, "and it runs");
    let first_again = api.get_deploy(&first.deploy_id).await;
    assert_eq!(first_again.status, "completed", "the previous record is intact");
    let exit = slipd.terminate(Duration::from_secs(60)).await;
    assert!(exit.success(), "slipd stopped cleanly on SIGTERM: {exit:?}");
}

async fn shutdown_case(app: &str, strategy: &str, image: &str, queue_another: bool) {
    let app = app.to_owned();
    let host = format!("{app}.test");
    let config = web_app_with_image(&app, image, &format!("strategy = \"{strategy}\""));
    let mut slipd =
        SlipdProcess::new(vec![(app.clone(), config)], ProcessConfig { shutdown_timeout: "1s", min_free_disk: None });
    slipd.start(&[]).await;
    let api = slipd.api.clone();
    assert_eq!(api.deploy_and_wait(&app, "v1").await.status, "completed", "{}", slipd.log());

    // v2 sleeps 4 s before it listens, so it is still health-checking when SIGTERM comes.
    let second = api.deploy(&app, "v2").await;
    api.wait_status(&second.deploy_id, &["health_checking"], Duration::from_secs(60)).await;
    let third = if queue_another {
        let third = api.deploy(&app, "v3").await;
        assert_eq!(third.status, "queued");
        Some(third)
    } else {
        None
    };
    let exit = slipd.terminate(Duration::from_secs(60)).await;
    assert!(exit.success(), "SIGTERM exits 0: {exit:?}\n{}", slipd.log());
    assert_eq!(api.through_caddy(&host, "/version").await, (200, "v1".to_owned()), "old release serves");
    assert_eq!(containers_of(&app, true).len(), 1, "the candidate was removed before exit");

    slipd.start(&[]).await;
    let interrupted = api.wait_deploy(&second.deploy_id, Duration::from_secs(120)).await;
    let detail = interrupted.detail.clone().unwrap();
    match &third {
        None => {
            assert_eq!(interrupted.status, "completed", "{interrupted:?}\n{}", slipd.log());
            assert_eq!(detail.attempt, 2, "queued again, not failed: {interrupted:?}");
            assert_eq!(api.through_caddy(&host, "/version").await, (200, "v2".to_owned()));
        }
        Some(third) => {
            assert_eq!(interrupted.status, "superseded", "{interrupted:?}");
            assert_eq!(detail.superseded_by.as_deref(), Some(third.deploy_id.as_str()));
            let done = api.wait_deploy(&third.deploy_id, Duration::from_secs(120)).await;
            assert_eq!(done.status, "completed", "the queued deploy ran after the restart: {done:?}");
            assert_eq!(api.through_caddy(&host, "/version").await, (200, "v3".to_owned()));
        }
    }
    assert_eq!(containers_of(&app, true).len(), 1);
    assert!(slipd.terminate(Duration::from_secs(60)).await.success());
}

/// `(name, slip.deploy label, running)` of every container of `app`.
fn app_containers(app: &str) -> Vec<(String, String, bool)> {
    let out = std::process::Command::new("docker")
        .args(["ps", "-a", "--filter", &format!("label=slip.app={app}")])
        .args(["--format", "{{.Names}} {{.Label \"slip.deploy\"}} {{.State}}"])
        .output()
        .expect("docker ps");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| {
            let mut parts = line.split_whitespace();
            let (name, deploy, state) = (parts.next()?, parts.next()?, parts.next()?);
            Some((name.to_owned(), deploy.to_owned(), state == "running"))
        })
        .collect()
}

/// The last `reconciled` log line, without terminal colours.
fn last_reconcile_report(log: &str) -> String {
    let line = log.lines().rfind(|l| l.contains("reconciled")).unwrap_or_default();
    let mut plain = String::new();
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            chars.by_ref().find(|c| c.is_ascii_alphabetic());
        } else {
            plain.push(c);
        }
    }
    plain
}

/// The names in `field=[...]` of a reconcile report.
fn report_list(report: &str, field: &str) -> Vec<String> {
    let key = format!(" {field}=[");
    let Some(start) = report.find(&key).map(|i| i + key.len()) else { return Vec::new() };
    let end = report[start..].find(']').map_or(report.len(), |i| start + i);
    report[start..end].split(", ").map(|s| s.trim_matches('"').to_owned()).filter(|s| !s.is_empty()).collect()
}

fn panic_text(panic: Box<dyn std::any::Any + Send>) -> String {
    match panic.downcast::<String>() {
        Ok(s) => *s,
        Err(panic) => panic.downcast::<&str>().map(|s| s.to_string()).unwrap_or_else(|_| "panic".into()),
    }
}

/// A current container removed behind slip's back while slipd was down is re-created at boot by a `reconcile`
/// deploy of the same digest (from the retained image: the registry is down meanwhile).
#[tokio::test(flavor = "multi_thread")]
async fn a_vanished_current_container_is_recreated_at_boot() {
    let app = app_name("vanished");
    let a = app.clone();
    let mut d =
        crate::support::TestDaemon::start(|reg| vec![(a.clone(), crate::support::web_app(&a, reg, ""))], "").await;
    d.push(&Image::V1, &app, "v1");
    let v1 = d.deploy_and_wait(&app, "v1").await;
    assert_eq!(v1.status, "completed");
    d.stop().await;
    let removed = std::process::Command::new("docker")
        .args(["rm", "-f"])
        .args(containers_of(&app, true))
        .output()
        .expect("docker rm");
    assert!(removed.status.success() && containers_of(&app, true).is_empty());
    d.registry.stop();

    d.restart().await;
    let newest = d.newest_deploy(&app).await;
    assert_ne!(newest.deploy_id, v1.deploy_id, "a new deploy was queued at boot");
    let done = d.wait_deploy(&newest.deploy_id, Duration::from_secs(120)).await;
    assert_eq!(done.status, "completed", "{done:?}");
    let detail = done.detail.clone().unwrap();
    assert_eq!(detail.trigger, "reconcile");
    assert_eq!(detail.images, v1.detail.clone().unwrap().images, "the same digest");
    assert_eq!(done.tag, "v1");
    assert_eq!(d.through_caddy(&format!("{app}.test"), "/version").await, (200, "v1".to_owned()));
    assert_eq!(containers_of(&app, true).len(), 1);
}

/// While slipd runs: a current container stopped behind its back is started again, and one removed behind its
/// back is re-created by a `reconcile` deploy of the same digest; Caddy serves the release again either way.
#[tokio::test(flavor = "multi_thread")]
async fn a_stopped_or_vanished_current_container_is_healed_while_slipd_runs() {
    let app = app_name("heal");
    let a = app.clone();
    let d = crate::support::TestDaemon::start(|reg| vec![(a.clone(), crate::support::web_app(&a, reg, ""))], "").await;
    d.push(&Image::V1, &app, "v1");
    let v1 = d.deploy_and_wait(&app, "v1").await;
    assert_eq!(v1.status, "completed");
    let host = format!("{app}.test");
    let serves_v1 = || async { d.through_caddy(&host, "/version").await == (200, "v1".to_owned()) };

    let container = containers_of(&app, true);
    assert_eq!(container.len(), 1);
    let stopped = std::process::Command::new("docker").args(["stop", "-t", "1"]).args(&container).output().unwrap();
    assert!(stopped.status.success(), "docker stop");
    wait_for(Duration::from_secs(20), "the stopped release serves again", serves_v1).await;
    assert_eq!(containers_of(&app, true), container, "the same container was started again");

    let removed = std::process::Command::new("docker").args(["rm", "-f"]).args(&container).output().unwrap();
    assert!(removed.status.success(), "docker rm");
    wait_for(Duration::from_secs(60), "a re-created release serves", serves_v1).await;
    let running = containers_of(&app, false);
    assert_eq!(running.len(), 1, "{running:?}");
    assert_ne!(running, container, "a new container");
    let newest = d.get_deploy(&d.newest_deploy(&app).await.deploy_id).await;
    let detail = newest.detail.clone().unwrap();
    assert_eq!((newest.status.as_str(), detail.trigger.as_str()), ("completed", "reconcile"), "{newest:?}");
    assert_eq!(detail.images, v1.detail.clone().unwrap().images, "the same digest");
}

/// Polls `check` every 200 ms until it holds, failing after `limit`.
async fn wait_for<F, Fut>(limit: Duration, what: &str, check: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = std::time::Instant::now() + limit;
    while !check().await {
        assert!(std::time::Instant::now() < deadline, "{what} within {limit:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
