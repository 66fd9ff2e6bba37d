//! Deploys against real Docker, Caddy and a registry.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use slip_testenv::Image;

use crate::support::{TestDaemon, app_name, web_app};

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

    let watching = Arc::new(AtomicBool::new(true));
    let saw_other = Arc::new(AtomicU64::new(0));
    let probe = {
        let (watching, saw_other, host) = (watching.clone(), saw_other.clone(), host.clone());
        let url = format!("http://127.0.0.1:{}/version", d.caddy.http_port());
        tokio::spawn(async move {
            let http = reqwest::Client::new();
            while watching.load(Ordering::Relaxed) {
                let body = match http.get(&url).header("host", &host).send().await {
                    Ok(r) => r.text().await.unwrap_or_default(),
                    Err(e) => e.to_string(),
                };
                if body.trim() != "v1" {
                    saw_other.fetch_add(1, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    let failed = d.deploy_and_wait(&app, "bad").await;
    watching.store(false, Ordering::Relaxed);
    probe.await.unwrap();

    assert_eq!(failed.status, "failed");
    let detail = failed.detail.clone().unwrap();
    assert_eq!(detail.error_code.as_deref(), Some("unhealthy"), "{failed:?}");
    let error = failed.error.unwrap();
    assert!(error.contains("GET /health") && error.contains("HTTP 404"), "{error}");
    assert_eq!(saw_other.load(Ordering::Relaxed), 0, "every request during the failed deploy was served by v1");
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
    let app = app_name("load");
    let a = app.clone();
    let d = TestDaemon::start(|reg| vec![(a.clone(), web_app(&a, reg, ""))], "").await;
    for v in ["v1", "v2", "v3", "v4"] {
        d.push(&Image::release(v), &app, v);
    }
    assert_eq!(d.deploy_and_wait(&app, "v1").await.status, "completed");

    let load = Load::start(d.caddy.http_port(), &format!("{app}.test"), 4);
    for v in ["v2", "v3", "v4"] {
        let deploy = d.deploy_and_wait(&app, v).await;
        assert_eq!(deploy.status, "completed", "{deploy:?}");
    }
    let (ok, failed, versions) = load.stop().await;
    assert!(ok > 100, "the load generator ran ({ok} requests)");
    assert_eq!(failed, Vec::<String>::new(), "no request failed during blue-green deploys");
    assert!(versions.contains("v4"));
    assert_eq!(d.through_caddy(&format!("{app}.test"), "/version").await.1, "v4");
}

/// Recreate: while no release runs, Caddy holds requests instead of failing them.
#[tokio::test(flavor = "multi_thread")]
async fn recreate_holds_requests_while_no_release_runs() {
    let app = app_name("recreate");
    let a = app.clone();
    let d = TestDaemon::start(|reg| vec![(a.clone(), web_app(&a, reg, "strategy = \"recreate\""))], "").await;
    d.push(&Image::V1, &app, "v1");
    d.push(&Image::V2, &app, "v2");
    assert_eq!(d.deploy_and_wait(&app, "v1").await.status, "completed");

    let load = Load::start(d.caddy.http_port(), &format!("{app}.test"), 2);
    let deploy = d.deploy_and_wait(&app, "v2").await;
    let (ok, failed, _) = load.stop().await;
    assert_eq!(deploy.status, "completed", "{deploy:?}");
    let steps: Vec<String> = deploy.detail.unwrap().steps.into_iter().map(|s| s.status).collect();
    assert_eq!(steps, ["pulling", "configuring", "draining", "starting", "health_checking", "switching"]);
    assert!(ok > 10);
    assert_eq!(failed, Vec::<String>::new(), "held requests reached the new release instead of failing");
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

/// What the load generator saw: successes, failures (described), and the versions that answered.
type LoadResult = (u64, Vec<String>, std::collections::BTreeSet<String>);

/// Keep-alive clients hammering one host through Caddy.
struct Load {
    stop: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<LoadResult>>,
}

impl Load {
    fn start(port: u16, host: &str, clients: usize) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let url = format!("http://127.0.0.1:{port}/version");
        let tasks = (0..clients)
            .map(|_| {
                let (stop, url, host) = (stop.clone(), url.clone(), host.to_owned());
                tokio::spawn(async move {
                    // hyper's pool retries a request once when a reused keep-alive connection turns
                    // out closed before the request was written (RFC 9112 §9.3.1).
                    let http = reqwest::Client::builder().pool_max_idle_per_host(1).build().unwrap();
                    let (mut ok, mut failed, mut versions) = (0u64, Vec::new(), std::collections::BTreeSet::new());
                    while !stop.load(Ordering::Relaxed) {
                        match crate::support::get_retrying_once(&http, &url, &host).await {
                            Ok(r) if r.status().is_success() => {
                                ok += 1;
                                versions.insert(r.text().await.unwrap_or_default().trim().to_owned());
                            }
                            Ok(r) => failed.push(format!("HTTP {}", r.status())),
                            Err(e) => failed.push(format!("{e:?}")),
                        }
                    }
                    (ok, failed, versions)
                })
            })
            .collect();
        Load { stop, tasks }
    }

    async fn stop(self) -> LoadResult {
        self.stop.store(true, Ordering::Relaxed);
        let (mut ok, mut failed, mut versions) = (0, Vec::new(), std::collections::BTreeSet::new());
        for t in self.tasks {
            let (o, f, v) = t.await.unwrap();
            ok += o;
            failed.extend(f);
            versions.extend(v);
        }
        (ok, failed, versions)
    }
}
