//! Cancel, redeploy and the audit log end to end (SPEC §7.6, §7.7, §10): cancelling a queued deploy, one pulling
//! and one health checking; redeploying the current release by digest; `GET /v1/audit?verify=true` seeing a
//! tampered row.

use std::time::Duration;

use slip_testenv::{Image, wait_until_async};

use crate::support::{TOKEN, TestDaemon, app_name, web_app_with_image};

async fn post(d: &TestDaemon, path: &str) -> (u16, serde_json::Value) {
    let response = d.http.post(d.url(path)).bearer_auth(TOKEN).send().await.unwrap();
    (response.status().as_u16(), response.json().await.unwrap_or_default())
}

async fn get(d: &TestDaemon, path: &str) -> serde_json::Value {
    let response = d.http.get(d.url(path)).bearer_auth(TOKEN).send().await.unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

async fn wait_status(d: &TestDaemon, id: &str, status: &str) {
    wait_until_async(Duration::from_secs(60), "the deploy reaches the status", || async {
        let now = d.get_deploy(id).await.status;
        assert!(!["completed", "failed", "rolled_back"].contains(&now.as_str()) || now == status, "{id} ended {now}");
        now == status
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_queued_and_a_health_checking_deploy_are_cancelled_and_the_old_release_keeps_serving() {
    let app = app_name("cancel");
    let a = app.clone();
    // A start period long enough for the slow release to sit in health_checking.
    let d = TestDaemon::start(
        |reg| {
            let app = web_app_with_image(&a, &format!("{reg}/{a}"), "")
                .replace("start_period = \"10s\"", "start_period = \"2m\"");
            vec![(a.clone(), app)]
        },
        "",
    )
    .await;
    d.push(&Image::V1, &app, "v1");
    d.push(&Image::slow_start(120).with_version("v2"), &app, "v2");
    d.push(&Image::V2, &app, "v3");
    let host = format!("{app}.test");
    let v1 = d.deploy_and_wait(&app, "v1").await;
    assert_eq!(v1.status, "completed");

    let (status, body) = post(&d, &format!("/v1/deploys/{}/cancel", v1.deploy_id)).await;
    assert_eq!((status, body["code"].as_str()), (409, Some("not_cancellable")), "{body}");
    let unsigned = d.http.post(d.url(&format!("/v1/deploys/{}/cancel", v1.deploy_id))).send().await.unwrap();
    assert_eq!(unsigned.status(), 401);

    let slow = d.deploy(&app, "v2").await;
    wait_status(&d, &slow.deploy_id, "health_checking").await;
    let queued = d.deploy(&app, "v3").await;
    assert_eq!(queued.status, "queued");

    let (status, body) = post(&d, &format!("/v1/deploys/{}/cancel", queued.deploy_id)).await;
    assert_eq!((status, body["status"].as_str()), (202, Some("failed")), "{body}");
    let row = d.get_deploy(&queued.deploy_id).await;
    assert_eq!((row.status.as_str(), row.error.as_deref()), ("failed", Some("cancelled by admin")));

    let (status, body) = post(&d, &format!("/v1/deploys/{}/cancel", slow.deploy_id)).await;
    assert_eq!((status, body["status"].as_str()), (202, Some("health_checking")), "{body}");
    let done = d.wait_deploy(&slow.deploy_id, Duration::from_secs(60)).await;
    assert_eq!((done.status.as_str(), done.error.as_deref()), ("failed", Some("cancelled by admin")), "{done:?}");
    assert_eq!(done.detail.unwrap().error_code.as_deref(), Some("cancelled"));
    assert_eq!(d.through_caddy(&host, "/version").await, (200, "v1".to_owned()), "the old release serves");
    assert_eq!(d.all_containers(&app).len(), 1, "the cancelled candidate was removed");

    // The audit log has both cancels; a changed row breaks the chain at that row.
    let audit = get(&d, "/v1/audit?verify=true").await;
    assert_eq!(audit["verify"]["intact"], true, "{audit}");
    let cancels: Vec<&serde_json::Value> =
        audit["entries"].as_array().unwrap().iter().filter(|e| e["action"] == "deploy.cancel").collect();
    assert_eq!(cancels.len(), 2, "{audit}");
    let tampered = cancels[0]["id"].as_i64().unwrap();
    let db = rusqlite::Connection::open(d.storage().join("slip.db")).unwrap();
    db.busy_timeout(Duration::from_secs(5)).unwrap();
    db.execute("UPDATE audit_log SET actor = 'someone-else' WHERE id = ?1", [tampered]).unwrap();
    let audit = get(&d, "/v1/audit?verify=true").await;
    assert_eq!(audit["verify"], serde_json::json!({"intact": false, "broken_at": tampered}), "{audit}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_deploy_stuck_pulling_is_cancelled_and_a_redeploy_runs_the_same_digest() {
    // An image host that accepts connections and never answers: the pull hangs until cancelled.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_host = format!("127.0.0.1:{}", silent.local_addr().unwrap().port());
    let app = app_name("redeploy");
    let stuck = app_name("stuck");
    let (a, s, h) = (app.clone(), stuck.clone(), silent_host.clone());
    let d = TestDaemon::start(
        |reg| {
            vec![
                (a.clone(), web_app_with_image(&a, &format!("{reg}/{a}"), "")),
                (s.clone(), web_app_with_image(&s, &format!("{h}/{s}"), "")),
            ]
        },
        "",
    )
    .await;

    let pulling = d.deploy(&stuck, "v1").await;
    wait_status(&d, &pulling.deploy_id, "pulling").await;
    let (status, body) = post(&d, &format!("/v1/deploys/{}/cancel", pulling.deploy_id)).await;
    assert_eq!((status, body["status"].as_str()), (202, Some("pulling")), "{body}");
    let done = d.wait_deploy(&pulling.deploy_id, Duration::from_secs(30)).await;
    assert_eq!((done.status.as_str(), done.error.as_deref()), ("failed", Some("cancelled by admin")), "{done:?}");
    drop(silent);

    let (status, body) = post(&d, &format!("/v1/apps/{app}/redeploy")).await;
    assert_eq!((status, body["code"].as_str()), (409, Some("not_deployed")), "{body}");
    d.push(&Image::V1, &app, "v1");
    let v1 = d.deploy_and_wait(&app, "v1").await;
    assert_eq!(v1.status, "completed");
    let (status, body) = post(&d, &format!("/v1/apps/{app}/redeploy")).await;
    assert_eq!(status, 202, "{body}");
    let again = d.wait_deploy(body["deploy_id"].as_str().unwrap(), Duration::from_secs(60)).await;
    assert_eq!(again.status, "completed", "{again:?}");
    let (first, second) = (v1.detail.unwrap(), again.detail.unwrap());
    assert_eq!(second.trigger, "redeploy");
    assert!(first.images["app"].contains("@sha256:"), "{:?}", first.images);
    assert_eq!(first.images, second.images, "the redeploy ran the same digest");
    assert_eq!(d.through_caddy(&format!("{app}.test"), "/version").await, (200, "v1".to_owned()));
    assert_eq!(d.running_containers(&app).len(), 1, "the redeploy replaced the release");
}
