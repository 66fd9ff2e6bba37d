//! Deploys against real Docker, Caddy and a registry.

use std::time::Duration;

use slip_testenv::Image;

use crate::support::{Engine, Load, TestDaemon, app_name, web_app};

#[tokio::test(flavor = "multi_thread")]
async fn first_deploy_then_blue_green_switch_serves_the_new_release() {
    let app = app_name("bg");
    let a = app.clone();
    let d = TestDaemon::start(|reg| vec![(a.clone(), web_app(&a, reg, ""))], "").await;
    d.push(&Image::V1, &app, "v1");
    d.push(&Image::V2, &app, "v2");
    let host = format!("{app}.test");

    let first = d.deploy_and_wait(&app, "v1").await;
    assert_eq!(first.status, "completed", "{first:?}");
    assert_eq!(d.through_caddy(&host, "/version").await, (200, "v1".to_owned()));
    let v1_containers = d.running_containers(&app);
    assert_eq!(v1_containers.len(), 1);

    let second = d.deploy_and_wait(&app, "v2").await;
    assert_eq!(second.status, "completed", "{second:?}");
    assert_eq!(d.through_caddy(&host, "/version").await, (200, "v2".to_owned()));
    let running = d.running_containers(&app);
    assert_eq!(running.len(), 1, "the old release is stopped after the drain");
    assert_ne!(running, v1_containers);
    assert_eq!(d.all_containers(&app).len(), 1, "the old container is removed, not just stopped");

    let steps: Vec<String> = second.detail.unwrap().steps.into_iter().map(|s| s.status).collect();
    assert_eq!(steps, ["pulling", "configuring", "starting", "health_checking", "switching", "draining"]);
    let status = d.status().await;
    assert_eq!(status["apps"][&app]["status"], "running");
    assert_eq!(status["apps"][&app]["tag"], "v2");
    assert_eq!(status["apps"][&app]["previous"]["tag"], "v1");
}

#[tokio::test(flavor = "multi_thread")]
async fn unhealthy_release_never_gets_traffic() {
    let app = app_name("unhealthy");
    let a = app.clone();
    let d = TestDaemon::start(|reg| vec![(a.clone(), web_app(&a, reg, ""))], "").await;
    d.push(&Image::V1, &app, "v1");
    d.push(&Image::UNHEALTHY, &app, "bad");
    let host = format!("{app}.test");
    assert_eq!(d.deploy_and_wait(&app, "v1").await.status, "completed");

    let load = Load::start(d.caddy.http_port(), &host, "/version", 2, &["v1"]);
    let failed = d.deploy_and_wait(&app, "bad").await;
    let seen = load.stop().await;

    assert_eq!(failed.status, "failed");
    let detail = failed.detail.clone().unwrap();
    assert_eq!(detail.error_code.as_deref(), Some("unhealthy"), "{failed:?}");
    let error = failed.error.unwrap();
    assert!(error.contains("GET /health") && error.contains("HTTP 404"), "{error}");
    seen.assert_every_answer_right(10); // only v1 is a right answer: the unhealthy release never got a request
    assert_eq!(d.through_caddy(&host, "/version").await, (200, "v1".to_owned()));
    assert_eq!(d.all_containers(&app).len(), 1, "the unhealthy candidate was removed");
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_image_fails_without_touching_the_running_release() {
    let app = app_name("missing");
    let a = app.clone();
    let d = TestDaemon::start(|reg| vec![(a.clone(), web_app(&a, reg, ""))], "").await;
    d.push(&Image::V1, &app, "v1");
    assert_eq!(d.deploy_and_wait(&app, "v1").await.status, "completed");
    let before = d.running_containers(&app);

    let failed = d.deploy_and_wait(&app, "does-not-exist").await;
    assert_eq!(failed.status, "failed");
    assert_eq!(failed.detail.unwrap().error_code.as_deref(), Some("image_not_found"));
    assert!(failed.error.unwrap().contains("does-not-exist"));
    assert_eq!(d.running_containers(&app), before);
    assert_eq!(d.through_caddy(&format!("{app}.test"), "/version").await.1, "v1");
}

/// Continuous keep-alive load through Caddy across several deploys sees no failed request.
#[tokio::test(flavor = "multi_thread")]
async fn blue_green_under_continuous_load_fails_no_request() {
    blue_green_under_continuous_load(Engine::Docker).await;
}

/// Continuous keep-alive load through Caddy across three blue-green deploys on `engine`: every answer is a known
/// release's body, and every release answered in turn.
pub(crate) async fn blue_green_under_continuous_load(engine: Engine) {
    let app = app_name("load");
    let a = app.clone();
    let d = TestDaemon::start_on(engine, |reg| vec![(a.clone(), web_app(&a, reg, ""))], "").await;
    for v in ["v1", "v2", "v3", "v4"] {
        d.push(&Image::release(v), &app, v);
    }
    assert_eq!(d.deploy_and_wait(&app, "v1").await.status, "completed");

    let load = Load::start(d.caddy.http_port(), &format!("{app}.test"), "/version", 4, &["v1", "v2", "v3", "v4"]);
    for v in ["v2", "v3", "v4"] {
        let deploy = d.deploy_and_wait(&app, v).await;
        assert_eq!(deploy.status, "completed", "{deploy:?}");
    }
    let seen = load.stop().await;
    seen.assert_every_answer_right(100);
    assert!(["v1", "v2", "v3", "v4"].iter().all(|v| seen.saw(v)), "every release answered in turn: {seen:?}");
    assert_eq!(d.through_caddy(&format!("{app}.test"), "/version").await.1, "v4");
}

/// Recreate: while no release runs, Caddy holds requests instead of failing them.
#[tokio::test(flavor = "multi_thread")]
async fn recreate_holds_requests_while_no_release_runs() {
    recreate_holds_requests(Engine::Docker).await;
}

/// A recreate deploy on `engine` under load: held requests reach the new release, none fails.
pub(crate) async fn recreate_holds_requests(engine: Engine) {
    let app = app_name("recreate");
    let a = app.clone();
    let d =
        TestDaemon::start_on(engine, |reg| vec![(a.clone(), web_app(&a, reg, "strategy = \"recreate\""))], "").await;
    d.push(&Image::V1, &app, "v1");
    d.push(&Image::V2, &app, "v2");
    assert_eq!(d.deploy_and_wait(&app, "v1").await.status, "completed");

    let load = Load::start(d.caddy.http_port(), &format!("{app}.test"), "/version", 2, &["v1", "v2"]);
    let deploy = d.deploy_and_wait(&app, "v2").await;
    let seen = load.stop().await;
    assert_eq!(deploy.status, "completed", "{deploy:?}");
    let steps: Vec<String> = deploy.detail.unwrap().steps.into_iter().map(|s| s.status).collect();
    assert_eq!(steps, ["pulling", "configuring", "draining", "starting", "health_checking", "switching"]);
    // Held requests reached the new release instead of failing.
    seen.assert_every_answer_right(10);
    assert!(seen.saw("v1") && seen.saw("v2"), "{seen:?}");
    assert_eq!(d.through_caddy(&format!("{app}.test"), "/version").await.1, "v2");
    assert_eq!(d.all_containers(&app).len(), 1);
}

/// A recreate deploy whose new release is unhealthy brings the old one back.
#[tokio::test(flavor = "multi_thread")]
async fn failed_recreate_restores_the_previous_release() {
    let app = app_name("restore");
    let a = app.clone();
    let d = TestDaemon::start(|reg| vec![(a.clone(), web_app(&a, reg, "strategy = \"recreate\""))], "").await;
    d.push(&Image::V1, &app, "v1");
    d.push(&Image::UNHEALTHY, &app, "bad");
    assert_eq!(d.deploy_and_wait(&app, "v1").await.status, "completed");
    let failed = d.deploy_and_wait(&app, "bad").await;
    assert_eq!(failed.status, "failed");
    assert!(failed.error.as_deref().unwrap_or("").ends_with("previous release restored"), "{failed:?}");
    assert_eq!(d.through_caddy(&format!("{app}.test"), "/version").await, (200, "v1".to_owned()));
    assert_eq!(d.all_containers(&app).len(), 1);
}

/// One deploy per app at a time: a second webhook queues, a third supersedes the second.
#[tokio::test(flavor = "multi_thread")]
async fn queued_deploy_is_superseded_by_a_newer_one() {
    let app = app_name("queue");
    let a = app.clone();
    let d = TestDaemon::start(|reg| vec![(a.clone(), web_app(&a, reg, ""))], "").await;
    d.push(&Image::slow_start(2).with_version("slow"), &app, "slow");
    d.push(&Image::V2, &app, "v2");
    d.push(&Image::release("v3"), &app, "v3");

    let first = d.deploy(&app, "slow").await;
    assert_eq!(first.status, "accepted");
    let second = d.deploy(&app, "v2").await;
    assert_eq!(second.status, "queued");
    let third = d.deploy(&app, "v3").await;
    assert_eq!(third.status, "queued");
    assert_eq!(third.supersedes.as_deref(), Some(second.deploy_id.as_str()));

    assert_eq!(d.wait_deploy(&first.deploy_id, Duration::from_secs(60)).await.status, "completed");
    let superseded = d.wait_deploy(&second.deploy_id, Duration::from_secs(5)).await;
    assert_eq!(superseded.status, "superseded");
    assert_eq!(superseded.detail.unwrap().superseded_by.as_deref(), Some(third.deploy_id.as_str()));
    assert_eq!(d.wait_deploy(&third.deploy_id, Duration::from_secs(60)).await.status, "completed");
    assert_eq!(d.through_caddy(&format!("{app}.test"), "/version").await.1, "v3");
}

/// Different apps deploy at the same time.
#[tokio::test(flavor = "multi_thread")]
async fn two_apps_deploy_concurrently() {
    let (one, two) = (app_name("one"), app_name("two"));
    let (a, b) = (one.clone(), two.clone());
    let d =
        TestDaemon::start(|reg| vec![(a.clone(), web_app(&a, reg, "")), (b.clone(), web_app(&b, reg, ""))], "").await;
    d.push(&Image::slow_start(2).with_version("s1"), &one, "s1");
    d.push(&Image::slow_start(2).with_version("s2"), &two, "s2");
    let started = std::time::Instant::now();
    let x = d.deploy(&one, "s1").await;
    let y = d.deploy(&two, "s2").await;
    assert_eq!((x.status.as_str(), y.status.as_str()), ("accepted", "accepted"));
    let dx = d.wait_deploy(&x.deploy_id, Duration::from_secs(60)).await;
    let dy = d.wait_deploy(&y.deploy_id, Duration::from_secs(60)).await;
    assert_eq!((dx.status.as_str(), dy.status.as_str()), ("completed", "completed"));
    // Both were running at once: the second started before the first finished.
    assert!(dy.started_at < dx.finished_at.clone().unwrap(), "{dx:?} {dy:?}");
    assert!(started.elapsed() < Duration::from_secs(60));
    assert_eq!(d.through_caddy(&format!("{one}.test"), "/version").await.1, "s1");
    assert_eq!(d.through_caddy(&format!("{two}.test"), "/version").await.1, "s2");
}

/// Caddy restarted without --resume loses its config; slipd puts its routes back.
#[tokio::test(flavor = "multi_thread")]
async fn routes_come_back_after_caddy_restarts_empty() {
    let app = app_name("caddy");
    let a = app.clone();
    let mut d = TestDaemon::start(|reg| vec![(a.clone(), web_app(&a, reg, ""))], "").await;
    d.push(&Image::V1, &app, "v1");
    assert_eq!(d.deploy_and_wait(&app, "v1").await.status, "completed");
    let host = format!("{app}.test");

    d.caddy.restart_empty();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        if d.through_caddy(&host, "/version").await == (200, "v1".to_owned()) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "routes not back within 10s of the Caddy restart");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The load tests' judgement against the real Caddy: a host Caddy has no route for gets an empty 200, which the
/// load generator counts as a failed request, never as a success; the routed host's right body passes.
#[tokio::test(flavor = "multi_thread")]
async fn the_load_generator_fails_caddys_empty_200_for_an_unrouted_host() {
    let app = app_name("unrouted");
    let a = app.clone();
    let d = TestDaemon::start(|reg| vec![(a.clone(), web_app(&a, reg, ""))], "").await;
    d.push(&Image::V1, &app, "v1");
    assert_eq!(d.deploy_and_wait(&app, "v1").await.status, "completed");
    assert_eq!(
        d.through_caddy("nobody.test", "/version").await,
        (200, String::new()),
        "Caddy's answer without a route"
    );

    let url = format!("http://127.0.0.1:{}/version", d.caddy.http_port());
    let run = |host: &str| {
        let target = slip_bench::client::Target::new(&url, host, Duration::from_secs(30), Duration::ZERO, ["v1"]);
        let (stop, stopped) = tokio::sync::watch::channel(false);
        async move {
            let result = slip_bench::run(target.expect("a valid target"), 1, stopped, Some(20)).await;
            drop(stop);
            result.timeline.total()
        }
    };
    let unrouted = run("nobody.test").await;
    assert_eq!((unrouted.requests, unrouted.ok, unrouted.wrong_body), (20, 0, 20), "{unrouted:?}");
    assert_eq!(unrouted.lenient_failures(), 20);
    let routed = run(&format!("{app}.test")).await;
    assert_eq!((routed.requests, routed.ok, routed.lenient_failures()), (20, 20, 0), "{routed:?}");
}
