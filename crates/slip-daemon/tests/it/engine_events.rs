//! Engine events: the current release dying is announced on `/v1/events` at once and healed; the containers a
//! deploy stops on purpose are not announced.

use std::time::Duration;

use slip_testenv::{Image, wait_until_async};

use crate::support::{TOKEN, TestDaemon, app_name, web_app};

#[tokio::test(flavor = "multi_thread")]
async fn a_current_release_that_dies_is_announced_at_once_and_started_again() {
    let app = app_name("died");
    let a = app.clone();
    let d = TestDaemon::start(|reg| vec![(a.clone(), web_app(&a, reg, ""))], "").await;
    d.push(&Image::V1, &app, "v1");
    d.push(&Image::V2, &app, "v2");
    assert_eq!(d.deploy_and_wait(&app, "v1").await.status, "completed");
    let mut live = d.http.get(d.url(&format!("/v1/events?app={app}"))).bearer_auth(TOKEN).send().await.unwrap();
    assert_eq!(live.status(), 200);
    // A deploy stops the old release on purpose: that is no death of the current release.
    assert_eq!(d.deploy_and_wait(&app, "v2").await.status, "completed");
    let running = d.running_containers(&app);
    assert_eq!(running.len(), 1, "{running:?}");
    let name = inspect_name(&running[0]);

    let killed = std::process::Command::new("docker").args(["kill", &running[0]]).output().unwrap();
    assert!(killed.status.success(), "{}", String::from_utf8_lossy(&killed.stderr));

    let mut seen = String::new();
    let read = tokio::time::timeout(Duration::from_secs(30), async {
        while !seen.contains("event: runtime.container_died") {
            match live.chunk().await.unwrap() {
                Some(chunk) => seen.push_str(&String::from_utf8_lossy(&chunk)),
                None => break,
            }
        }
    })
    .await;
    assert!(read.is_ok(), "no runtime.container_died within 30 s: {seen}");
    let event = seen.split("event: runtime.container_died").nth(1).unwrap_or_default();
    let data = event.lines().find(|line| line.starts_with("data:")).unwrap_or_default();
    assert!(data.contains(&format!("\"container\":\"{name}\"")), "the event names the killed container: {data}");
    assert_eq!(seen.matches("event: runtime.container_died").count(), 1, "only the kill was announced: {seen}");
    drop(live);
    // Healing starts the current release again.
    wait_until_async(Duration::from_secs(30), "the killed release serves again", || async {
        d.through_caddy(&format!("{app}.test"), "/version").await == (200, "v2".to_owned())
    })
    .await;
}

fn inspect_name(id: &str) -> String {
    let out = std::process::Command::new("docker").args(["inspect", "--format", "{{.Name}}", id]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().trim_start_matches('/').to_owned()
}
