//! Deploy notifications against a local recording HTTP server: signed JSON, Slack format, server-wide and per-app
//! entries, retries after a 500, the audit record, and a dead endpoint (it accepts connections and never answers)
//! that never holds a deploy up.

use std::collections::HashMap;
use std::io::Read;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use slip_core::signature::{self, Signed};
use slip_testenv::{Image, wait_until_async};

use crate::support::{TestDaemon, app_name, web_app};

const HOOK_SECRET: &str = "notification-signing-key-0123";

#[derive(Clone, Debug)]
struct Recorded {
    path: String,
    headers: HeaderMap,
    body: String,
}

/// A loopback HTTP server that records every POST; `/flaky` answers 500 to its first request.
#[derive(Clone, Default)]
struct Recorder {
    requests: Arc<Mutex<Vec<Recorded>>>,
    seen: Arc<Mutex<HashMap<String, u32>>>,
}

impl Recorder {
    async fn start() -> (Recorder, u16) {
        let recorder = Recorder::default();
        let app = Router::new().route("/{path}", post(record)).with_state(recorder.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move { axum::serve(listener, app).await });
        (recorder, port)
    }

    fn on(&self, path: &str) -> Vec<Recorded> {
        self.requests.lock().unwrap().iter().filter(|r| r.path == path).cloned().collect()
    }

    fn events(&self, path: &str) -> Vec<String> {
        self.on(path).iter().map(|r| json(&r.body)["event"].as_str().unwrap_or("").to_owned()).collect()
    }
}

async fn record(State(rec): State<Recorder>, Path(path): Path<String>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let body = String::from_utf8_lossy(&body).into_owned();
    rec.requests.lock().unwrap().push(Recorded { path: path.clone(), headers, body });
    let mut seen = rec.seen.lock().unwrap();
    let n = seen.entry(path.clone()).or_insert(0);
    *n += 1;
    if path == "flaky" && *n == 1 { StatusCode::INTERNAL_SERVER_ERROR } else { StatusCode::OK }
}

fn json(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap_or(serde_json::Value::Null)
}

/// A listener that accepts connections and never answers; counts them.
fn dead_endpoint() -> (u16, Arc<Mutex<u32>>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let accepted = Arc::new(Mutex::new(0));
    let count = accepted.clone();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().flatten() {
            *count.lock().unwrap() += 1;
            let mut s = stream;
            let mut buf = [0u8; 1024];
            let _ = s.set_read_timeout(Some(Duration::from_millis(50)));
            let _ = s.read(&mut buf);
            held.push(s);
        }
    });
    (port, accepted)
}

#[tokio::test(flavor = "multi_thread")]
async fn notifications_are_signed_retried_recorded_and_never_wait_for_a_dead_endpoint() {
    let (recorder, port) = Recorder::start().await;
    let (dead, dead_accepted) = dead_endpoint();
    let app = app_name("notify");
    let name = app.clone();
    let per_app =
        format!("\n[[notifications]]\nurl = \"http://127.0.0.1:{port}/flaky\"\nevents = [\"deploy.completed\"]\n");
    let server_wide = format!(
        "[[notifications]]\nurl = \"http://127.0.0.1:{port}/json\"\nsecret = \"{HOOK_SECRET}\"\n\n\
         [[notifications]]\nurl = \"http://127.0.0.1:{port}/slack\"\nformat = \"slack\"\n\
         events = [\"deploy.completed\", \"deploy.failed\"]\n\n\
         [[notifications]]\nurl = \"http://127.0.0.1:{dead}/dead\"\n"
    );
    let daemon = TestDaemon::start(move |reg| vec![(name.clone(), web_app(&name, reg, &per_app))], &server_wide).await;
    daemon.push(&Image::V1, &app, "v1");
    daemon.push(&Image::UNHEALTHY, &app, "broken");

    let ok = daemon.deploy_and_wait(&app, "v1").await;
    assert_eq!(ok.status, "completed", "{ok:?}");
    wait_until_async(Duration::from_secs(20), "started and completed on the JSON endpoint", || {
        let events = recorder.events("json");
        async move { events == ["deploy.started", "deploy.completed"] }
    })
    .await;
    // The dead endpoint got the same events at the same time and still has not answered a single one.
    assert!(*dead_accepted.lock().unwrap() >= 1, "the dead endpoint was tried");

    for r in recorder.on("json") {
        let ts = r.headers["x-slip-timestamp"].to_str().unwrap();
        let expected =
            signature::header_value(HOOK_SECRET.as_bytes(), &Signed::Deploy { timestamp: ts, body: r.body.as_bytes() });
        assert_eq!(r.headers["x-slip-signature"].to_str().unwrap(), expected, "the signature verifies");
        let body = json(&r.body);
        assert_eq!(body["app"], app.as_str());
        assert_eq!(body["tag"], "v1");
        assert_eq!(body["deploy_id"], ok.deploy_id.as_str());
        assert_eq!(r.headers["x-slip-event"].to_str().unwrap(), body["event"].as_str().unwrap());
    }
    wait_until_async(Duration::from_secs(20), "the flaky endpoint's retry", || {
        let n = recorder.on("flaky").len();
        async move { n == 2 }
    })
    .await;
    let flaky = recorder.on("flaky");
    assert_eq!(flaky[0].body, flaky[1].body, "a retry sends the same notification");
    assert!(flaky[0].headers.get("x-slip-signature").is_none(), "no secret, no signature");
    wait_until_async(Duration::from_secs(20), "the Slack message", || {
        let n = recorder.on("slack").len();
        async move { n == 1 }
    })
    .await;
    let slack = json(&recorder.on("slack")[0].body);
    let text = slack["text"].as_str().unwrap();
    assert!(text.contains("deployed") && text.contains(&format!("{app}@v1")), "{text}");

    // A release that never becomes healthy: the failure and its reason.
    let bad = daemon.deploy_and_wait(&app, "broken").await;
    assert_eq!(bad.status, "failed");
    wait_until_async(Duration::from_secs(20), "the failure on the JSON endpoint", || {
        let events = recorder.events("json");
        async move { events.last().map(String::as_str) == Some("deploy.failed") }
    })
    .await;
    let failed = json(&recorder.on("json").last().unwrap().body);
    let reason = failed["reason"].as_str().unwrap_or("");
    assert!(reason.contains("health check"), "the reason is carried: {failed}");
    wait_until_async(Duration::from_secs(20), "the failure on Slack", || {
        let n = recorder.on("slack").len();
        async move { n == 2 }
    })
    .await;
    assert!(json(&recorder.on("slack")[1].body)["text"].as_str().unwrap().contains("deploy failed"));

    for r in recorder.requests.lock().unwrap().iter() {
        assert!(!r.body.contains(HOOK_SECRET), "no secret in a body");
        assert!(!r.body.contains(crate::support::SECRET) && !r.body.contains(crate::support::TOKEN));
    }

    // Every delivery is in the audit log, with the endpoint's host but not its path.
    let store = slip_engine::store::Store::open(&daemon.storage().join("slip.db")).unwrap();
    let audit = store.audit_page(Some(200), None).unwrap().entries;
    let delivered: Vec<String> = audit
        .iter()
        .filter(|a| a.entry.action == "notification.delivered")
        .filter_map(|a| a.entry.detail.clone())
        .collect();
    let flaky_record = delivered
        .iter()
        .find(|d| json(d)["endpoint"] == format!("http://127.0.0.1:{port}") && json(d)["attempts"] == 2)
        .unwrap_or_else(|| panic!("the retried delivery is recorded with 2 attempts: {delivered:?}"));
    assert!(!flaky_record.contains("/flaky"), "{flaky_record}");
    assert!(delivered.len() >= 6, "{delivered:?}");
}

/// A GitHub REST API stand-in: records every call; creating a deployment answers 201 with ids 1, 2, ...
#[derive(Clone, Default)]
struct FakeGithub {
    calls: Arc<Mutex<Vec<(String, HeaderMap, serde_json::Value)>>>,
    next_id: Arc<Mutex<u64>>,
}

async fn github_call(
    State(gh): State<FakeGithub>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, String) {
    let body: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    let path = uri.path().to_owned();
    gh.calls.lock().unwrap().push((path.clone(), headers, body));
    if path.ends_with("/deployments") {
        let mut id = gh.next_id.lock().unwrap();
        *id += 1;
        (StatusCode::CREATED, serde_json::json!({"id": *id}).to_string())
    } else {
        (StatusCode::CREATED, "{}".into())
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn deploys_are_reported_as_github_deployments_with_statuses() {
    let gh = FakeGithub::default();
    let router = Router::new().fallback(post(github_call)).with_state(gh.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, router).await });

    let app = app_name("ghdeploy");
    let name = app.clone();
    let extra = format!(
        "\n[github]\nrepository = \"acme/web\"\ntoken = \"gh-test-token-0123\"\napi_url = \"http://127.0.0.1:{port}/api/v3/\"\n"
    );
    let daemon = TestDaemon::start(move |reg| vec![(name.clone(), web_app(&name, reg, &extra))], "").await;
    daemon.push(&Image::V1, &app, "v1");
    daemon.push(&Image::UNHEALTHY, &app, "broken");

    let ok = daemon.deploy_and_wait(&app, "v1").await;
    assert_eq!(ok.status, "completed");
    let calls = || gh.calls.lock().unwrap().clone();
    wait_until_async(Duration::from_secs(20), "create, in_progress and success", || {
        let n = calls().len();
        async move { n >= 3 }
    })
    .await;
    let first = calls();
    assert_eq!(first[0].0, "/api/v3/repos/acme/web/deployments");
    assert_eq!(first[0].1["authorization"], "Bearer gh-test-token-0123");
    assert_eq!(first[0].1["accept"], "application/vnd.github+json");
    let create = &first[0].2;
    assert_eq!(create["ref"], "v1", "no commit in the webhook: the tag");
    assert_eq!(create["environment"], "production");
    assert_eq!(
        (create["transient_environment"].as_bool(), create["production_environment"].as_bool()),
        (Some(false), Some(true))
    );
    assert_eq!(create["payload"]["deploy_id"], ok.deploy_id.as_str());
    let statuses: Vec<(&str, &serde_json::Value)> = first[1..].iter().map(|(p, _, b)| (p.as_str(), b)).collect();
    assert_eq!(statuses[0].0, "/api/v3/repos/acme/web/deployments/1/statuses");
    assert_eq!(statuses[0].1["state"], "in_progress");
    assert_eq!(statuses[1].1["state"], "success");
    assert_eq!(statuses[1].1["environment_url"], format!("http://{app}.test"));

    let bad = daemon.deploy_and_wait(&app, "broken").await;
    assert_eq!(bad.status, "failed");
    wait_until_async(Duration::from_secs(20), "the failed deploy's deployment and statuses", || {
        let n = calls().len();
        async move { n >= 6 }
    })
    .await;
    let all = calls();
    assert_eq!(all[3].0, "/api/v3/repos/acme/web/deployments", "a deployment per deploy");
    assert_eq!(all[5].0, "/api/v3/repos/acme/web/deployments/2/statuses");
    assert_eq!(all[5].2["state"], "failure");
    assert!(all[5].2["description"].as_str().unwrap().contains("health check"), "{}", all[5].2);
    assert!(all[5].2["description"].as_str().unwrap().chars().count() <= 140);
    for (_, _, body) in &all {
        assert!(!body.to_string().contains("gh-test-token-0123"), "the token only travels in the header");
    }
}
