//! The post-switch watch end to end (SPEC §8.4): a release that passes its health check and breaks after the
//! switch is rolled back within `deploy.watch`, under load, with every answer a right one.

use std::time::Duration;

use slip_testenv::{Image, wait_until_async};

use crate::support::{Load, TOKEN, TestDaemon, app_name, web_app};

/// The release whose `/version` says `version` among the app's running containers.
fn container_serving(d: &TestDaemon, app: &str, version: &str) -> String {
    d.running_containers(app)
        .into_iter()
        .find(|c| {
            let out = std::process::Command::new("docker").args(["exec", c, "cat", "/www/version"]).output().unwrap();
            String::from_utf8_lossy(&out.stdout).trim() == version
        })
        .unwrap_or_else(|| panic!("no running container of {app} serves {version}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_release_that_breaks_after_the_switch_is_rolled_back_under_load_with_every_answer_right() {
    let app = app_name("watch");
    let a = app.clone();
    let d = TestDaemon::start(|reg| vec![(a.clone(), web_app(&a, reg, "watch = \"2m\""))], "").await;
    d.push(&Image::V1, &app, "v1");
    d.push(&Image::V2, &app, "v2");
    let host = format!("{app}.test");
    assert_eq!(d.deploy_and_wait(&app, "v1").await.status, "completed");

    let load = Load::start(d.caddy.http_port(), &host, "/version", 4, &["v1", "v2"]);
    let deploy = d.deploy(&app, "v2").await;
    wait_until_async(Duration::from_secs(60), "the v2 deploy is watching", || async {
        let status = d.get_deploy(&deploy.deploy_id).await.status;
        assert!(!["completed", "failed", "rolled_back"].contains(&status.as_str()), "v2 ended {status}");
        status == "watching"
    })
    .await;
    wait_until_async(Duration::from_secs(30), "Caddy routes to v2", || async {
        d.through_caddy(&host, "/version").await == (200, "v2".to_owned())
    })
    .await;
    assert_eq!(d.running_containers(&app).len(), 2, "the old release keeps running through the watch");

    // The scenario, not a synchronisation: the release breaks 3 s after the switch.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let v2 = container_serving(&d, &app, "v2");
    let broke = std::process::Command::new("docker").args(["exec", &v2, "rm", "/www/health"]).status().unwrap();
    assert!(broke.success(), "removing v2's health page");

    let done = d.wait_deploy(&deploy.deploy_id, Duration::from_secs(60)).await;
    assert_eq!(done.status, "rolled_back", "{done:?}");
    let error = done.error.clone().unwrap_or_default();
    assert!(error.starts_with("post-switch watch: GET /health failed 3 times in a row"), "{error}");
    assert_eq!(d.through_caddy(&host, "/version").await, (200, "v1".to_owned()), "traffic is back on v1");
    // A little more load on the restored release before the verdict.
    wait_until_async(Duration::from_secs(10), "v1 keeps answering after the rollback", || async {
        d.through_caddy(&host, "/version").await == (200, "v1".to_owned())
    })
    .await;
    let report = load.stop().await;
    report.assert_every_answer_right(50);
    assert!(report.saw("v1") && report.saw("v2"), "the load saw both releases: {report:?}");

    let running = d.running_containers(&app);
    assert_eq!(running.len(), 1, "the broken release was removed: {running:?}");
    let status = d.status().await;
    assert_eq!(status["apps"][&app]["tag"], "v1", "{status}");
    assert_eq!(status["apps"][&app]["status"], "running", "{status}");
    assert_eq!(status["apps"][&app]["last_deploy"]["status"], "rolled_back", "{status}");

    let events = deploy_events(&d, &deploy.deploy_id).await;
    assert!(events.contains("watch probe 1/3 failed"), "{events}");
    assert!(events.contains("rolling back to the previous release"), "{events}");
    assert!(events.contains("event: deploy.rolled_back"), "{events}");
}

/// The whole SSE stream of a finished deploy (it closes after the terminal event).
pub async fn deploy_events(d: &TestDaemon, id: &str) -> String {
    let response = d
        .http
        .get(d.url(&format!("/v1/deploys/{id}/events")))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("the events stream answers");
    assert_eq!(response.status(), 200);
    response.text().await.expect("the stream ends after the terminal event")
}
