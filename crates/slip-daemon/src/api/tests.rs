//! Router tests of the secrets endpoints and the event streams through `oneshot`: a real secret store in a
//! temp directory, a real in-memory SQLite, fakes for Docker and Caddy (from `crate::tests`).

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use slip_core::signature::{self, Signed};
use slip_engine::clock::unix_ms;
use slip_engine::store::{DeployStatus, NewDeploy, NoteKind, Trigger};
use tower::ServiceExt;

use crate::state::AppState;
use crate::tests::{SECRET, TOKEN, legacy_deploy, send, state};

const VALUE: &str = "s3cr3t-value-for-router-tests";

fn admin(method: &str, uri: &str, body: Body) -> Request<Body> {
    Request::builder().method(method).uri(uri).header("authorization", format!("Bearer {TOKEN}")).body(body).unwrap()
}

fn json_put(uri: &str, body: serde_json::Value) -> Request<Body> {
    let mut r = admin("PUT", uri, Body::from(body.to_string()));
    r.headers_mut().insert("content-type", "application/json".parse().unwrap());
    r
}

fn storage(state: &AppState) -> std::path::PathBuf {
    state.config().storage.path.clone()
}

/// Every file under `dir` with its mode, sorted.
fn tree(dir: &std::path::Path) -> Vec<(String, u32)> {
    let mut out = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(d) = pending.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            out.push((path.strip_prefix(dir).unwrap().display().to_string(), meta.permissions().mode() & 0o777));
            if meta.is_dir() {
                pending.push(path);
            }
        }
    }
    out.sort();
    out
}

#[tokio::test]
async fn secrets_round_trip_without_ever_returning_the_value() {
    let state = state();
    let (s, b) =
        send(&state, json_put("/v1/secrets/web/DATABASE_URL", serde_json::json!({"value": VALUE})), "127.0.0.1:1")
            .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(
        (b["app"].as_str(), b["key"].as_str(), b["scope"].as_str(), b["created"].as_bool()),
        (Some("web"), Some("DATABASE_URL"), Some("app"), Some(true))
    );
    let mut text = admin("PUT", "/v1/secrets/web/DATABASE_URL?scope=preview", Body::from(VALUE));
    text.headers_mut().insert("content-type", "text/plain; charset=utf-8".parse().unwrap());
    let (s, b) = send(&state, text, "127.0.0.1:1").await;
    assert_eq!((s, b["scope"].as_str(), b["created"].as_bool()), (StatusCode::OK, Some("preview"), Some(true)));
    let (s, b) = send(
        &state,
        json_put("/v1/secrets/web/DATABASE_URL", serde_json::json!({"value": "another-value"})),
        "127.0.0.1:1",
    )
    .await;
    assert_eq!((s, b["created"].as_bool()), (StatusCode::OK, Some(false)));

    let (s, list) = send(&state, admin("GET", "/v1/secrets/web", Body::empty()), "127.0.0.1:1").await;
    assert_eq!(s, StatusCode::OK);
    let rows = list["secrets"].as_array().unwrap();
    assert_eq!(rows.len(), 2, "{list}");
    assert_eq!(rows[0]["fingerprint"].as_str().unwrap().len(), 12);
    let (_, only_preview) =
        send(&state, admin("GET", "/v1/secrets/web?scope=preview", Body::empty()), "127.0.0.1:1").await;
    assert_eq!(only_preview["secrets"].as_array().unwrap().len(), 1);

    let (s, one) =
        send(&state, admin("GET", "/v1/secrets/web/DATABASE_URL?scope=preview", Body::empty()), "127.0.0.1:1").await;
    assert_eq!(s, StatusCode::OK);
    let mut keys: Vec<&str> = one.as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort();
    assert_eq!(keys, ["app", "exists", "fingerprint", "key", "scope", "updated_at"]);
    assert!(!format!("{list}{one}").contains(VALUE));

    let (s, legacy) = send(&state, admin("GET", "/v1/apps/web/secrets", Body::empty()), "127.0.0.1:1").await;
    assert_eq!((s, legacy), (StatusCode::OK, serde_json::json!({"secrets": ["DATABASE_URL"]})));

    let file = storage(&state).join("secrets/web/.preview/DATABASE_URL");
    assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
    assert_eq!(std::fs::read_to_string(&file).unwrap(), VALUE);

    let (s, b) =
        send(&state, admin("DELETE", "/v1/secrets/web/DATABASE_URL?scope=preview", Body::empty()), "127.0.0.1:1").await;
    assert_eq!((s, b), (StatusCode::OK, serde_json::json!({"status": "ok"})));
    let (s, b) =
        send(&state, admin("GET", "/v1/secrets/web/DATABASE_URL?scope=preview", Body::empty()), "127.0.0.1:1").await;
    assert_eq!((s, b["code"].as_str()), (StatusCode::NOT_FOUND, Some("secret_not_found")));
    let (s, b) = send(&state, admin("DELETE", "/v1/apps/web/secrets/DATABASE_URL", Body::empty()), "127.0.0.1:1").await;
    assert_eq!((s, b["status"].as_str()), (StatusCode::OK, Some("ok")));
    assert!(!file.exists() && !storage(&state).join("secrets/web/DATABASE_URL").exists());
}

#[tokio::test]
async fn bad_keys_unknown_apps_and_missing_tokens_are_refused_without_touching_the_disk() {
    let state = state();
    let before = tree(&storage(&state));
    let cases = [
        ("/v1/secrets/web/..%2F..%2Fx", StatusCode::BAD_REQUEST, "invalid_key"),
        ("/v1/secrets/web/.preview", StatusCode::BAD_REQUEST, "invalid_key"),
        ("/v1/secrets/web/SLIP_TAG", StatusCode::BAD_REQUEST, "reserved_key"),
        ("/v1/secrets/nope/API_KEY", StatusCode::NOT_FOUND, "app_not_found"),
        ("/v1/secrets/..%2Fweb/API_KEY", StatusCode::NOT_FOUND, "app_not_found"),
    ];
    for (uri, status, code) in cases {
        let (s, b) = send(&state, json_put(uri, serde_json::json!({"value": VALUE})), "127.0.0.1:1").await;
        assert_eq!((s, b["code"].as_str()), (status, Some(code)), "{uri}: {b}");
        assert!(!b.to_string().contains(VALUE));
    }
    let (s, b) = send(
        &state,
        json_put("/v1/secrets/web/SLIP_SECRET", serde_json::json!({"value": VALUE, "scope": "preview"})),
        "127.0.0.1:1",
    )
    .await;
    assert_eq!((s, b["code"].as_str()), (StatusCode::BAD_REQUEST, Some("reserved_key")));
    let (s, b) =
        send(&state, json_put("/v1/secrets/web/API_KEY", serde_json::json!({"value": 123456789})), "127.0.0.1:1").await;
    assert_eq!((s, b["code"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_json")));
    assert!(!b.to_string().contains("123456789"), "parser messages that quote the value are not passed on: {b}");
    let mut form = admin("PUT", "/v1/secrets/web/API_KEY", Body::from(VALUE));
    form.headers_mut().insert("content-type", "application/x-www-form-urlencoded".parse().unwrap());
    let (s, _) = send(&state, form, "127.0.0.1:1").await;
    assert_eq!(s, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let legacy =
        json_put("/v1/apps/web/secrets", serde_json::json!({"secrets": {"GOOD_KEY": VALUE, "bad/key": VALUE}}));
    let (s, b) = send(&state, legacy, "127.0.0.1:1").await;
    assert_eq!(
        (s, b["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_key")),
        "all keys checked before any write"
    );

    let anonymous = Request::put("/v1/secrets/web/API_KEY").body(Body::from(VALUE)).unwrap();
    let (s, _) = send(&state, anonymous, "127.0.0.1:1").await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let mut wrong = json_put("/v1/secrets/web/API_KEY", serde_json::json!({"value": VALUE}));
    wrong.headers_mut().insert("authorization", "Bearer wrong-token".parse().unwrap());
    let (s, b) = send(&state, wrong, "127.0.0.1:1").await;
    assert_eq!((s, b["code"].as_str()), (StatusCode::UNAUTHORIZED, Some("invalid_token")));
    assert_eq!(tree(&storage(&state)), before, "nothing on disk changed");
}

#[tokio::test]
async fn an_app_key_in_the_store_replaces_the_global_key_for_that_app() {
    let state = state();
    let body = r#"{"app":"web","tag":"v1"}"#;
    let app_key = "per-app-webhook-key-0123";
    let (s, _) = send(&state, legacy_deploy(body, SECRET), "127.0.0.1:1").await;
    assert_eq!(s, StatusCode::ACCEPTED);
    let (s, _) =
        send(&state, json_put("/v1/secrets/web/SLIP_SECRET", serde_json::json!({"value": app_key})), "127.0.0.1:1")
            .await;
    assert_eq!(s, StatusCode::OK);
    let (s, b) = send(&state, legacy_deploy(body, SECRET), "127.0.0.1:1").await;
    assert_eq!((s, b["code"].as_str()), (StatusCode::UNAUTHORIZED, Some("invalid_signature")));
    let (s, _) = send(&state, legacy_deploy(body, app_key), "127.0.0.1:1").await;
    assert_eq!(s, StatusCode::ACCEPTED);
}

/// One parsed SSE frame.
#[derive(Debug)]
struct Frame {
    id: Option<String>,
    event: Option<String>,
    data: serde_json::Value,
}

/// Reads frames from an SSE body until `want` of them arrived or the body ended; heartbeats are skipped.
async fn frames(body: &mut Body, buffer: &mut String, want: usize) -> (Vec<Frame>, bool) {
    let mut out = Vec::new();
    loop {
        while let Some(end) = buffer.find("\n\n") {
            let block: String = buffer.drain(..end + 2).collect();
            let mut frame = Frame { id: None, event: None, data: serde_json::Value::Null };
            for line in block.lines() {
                if let Some(v) = line.strip_prefix("id:") {
                    frame.id = Some(v.trim().to_owned());
                } else if let Some(v) = line.strip_prefix("event:") {
                    frame.event = Some(v.trim().to_owned());
                } else if let Some(v) = line.strip_prefix("data:") {
                    frame.data = serde_json::from_str(v.trim()).unwrap();
                }
            }
            if frame.event.is_some() {
                out.push(frame);
            }
            if out.len() == want {
                return (out, false);
            }
        }
        match tokio::time::timeout(Duration::from_secs(10), body.frame()).await.expect("no SSE frame within 10s") {
            Some(chunk) => {
                if let Ok(data) = chunk.unwrap().into_data() {
                    buffer.push_str(std::str::from_utf8(&data).unwrap());
                }
            }
            None => return (out, true),
        }
    }
}

async fn open(state: &AppState, request: Request<Body>) -> (StatusCode, Body) {
    let mut request = request;
    request.extensions_mut().insert(ConnectInfo("127.0.0.1:1".parse::<std::net::SocketAddr>().unwrap()));
    let response = crate::router(state.clone()).oneshot(request).await.unwrap();
    (response.status(), response.into_body())
}

fn new_deploy(state: &AppState, n: u32) -> slip_core::names::DeployId {
    let id: slip_core::names::DeployId = format!("dep_01jz00000000000000000000{n:02}").parse().unwrap();
    state
        .store
        .enqueue(
            &NewDeploy {
                id: id.clone(),
                app: "web".parse().unwrap(),
                preview_id: None,
                trigger: Trigger::Webhook,
                tag: "v1".parse().unwrap(),
                images: "{}".into(),
                kind: Some("web".into()),
                strategy: Some("blue-green".into()),
                rollback_of: None,
                meta: None,
                actor: None,
                source_ip: None,
                created_at: unix_ms(),
            },
            unix_ms(),
        )
        .unwrap();
    id
}

#[tokio::test]
async fn a_deploy_stream_replays_then_follows_and_closes_after_the_terminal_event() {
    let state = state();
    send(&state, json_put("/v1/secrets/web/DATABASE_URL", serde_json::json!({"value": VALUE})), "127.0.0.1:1").await;
    let id = new_deploy(&state, 1);
    state.store.record_status(&id, DeployStatus::Pulling, None, None, unix_ms()).unwrap();

    let (status, mut body) = open(&state, admin("GET", &format!("/v1/deploys/{id}/events"), Body::empty())).await;
    assert_eq!(status, StatusCode::OK);
    let mut buffer = String::new();
    let (replayed, _) = frames(&mut body, &mut buffer, 2).await;
    let kinds: Vec<&str> = replayed.iter().map(|f| f.event.as_deref().unwrap()).collect();
    assert_eq!(kinds, ["deploy.status", "deploy.status"], "accepted, then pulling");
    assert_eq!(replayed[1].data["status"], "pulling");
    assert_eq!((replayed[0].id.as_deref(), replayed[1].id.as_deref()), (Some("1"), Some("2")));
    assert_eq!(replayed[1].data["app"], "web");
    assert_eq!(replayed[1].data["deploy_id"], id.as_str());

    // A message recorded without redaction (not by the driver) is still redacted on the way out.
    state.store.record_event(&id, NoteKind::Log, &format!("connecting with {VALUE}"), None, unix_ms()).unwrap();
    state
        .store
        .finish(&id, DeployStatus::Failed, Some("container exited with code 1"), Some("exited"), unix_ms())
        .unwrap();
    let (live, ended) = frames(&mut body, &mut buffer, 3).await;
    let kinds: Vec<&str> = live.iter().map(|f| f.event.as_deref().unwrap()).collect();
    assert_eq!(kinds, ["deploy.log", "deploy.failed"]);
    assert!(ended, "the stream closes after the terminal event");
    assert_eq!(live[0].data["message"], "connecting with [redacted:DATABASE_URL]");
    assert_eq!(live[1].data["message"], "container exited with code 1");
    assert_eq!(live[1].data["type"], "deploy.failed");

    let mut resumed = admin("GET", &format!("/v1/deploys/{id}/events"), Body::empty());
    resumed.headers_mut().insert("last-event-id", "2".parse().unwrap());
    let (_, mut body) = open(&state, resumed).await;
    let (rest, ended) = frames(&mut body, &mut String::new(), 10).await;
    assert_eq!(
        (rest.iter().map(|f| f.id.clone().unwrap()).collect::<Vec<_>>(), ended),
        (vec!["3".to_owned(), "4".to_owned()], true)
    );
    let mut past_end = admin("GET", &format!("/v1/deploys/{id}/events"), Body::empty());
    past_end.headers_mut().insert("last-event-id", "4".parse().unwrap());
    let (_, mut body) = open(&state, past_end).await;
    let (none, ended) = frames(&mut body, &mut String::new(), 10).await;
    assert!(none.is_empty() && ended);
}

#[tokio::test]
async fn deploy_streams_need_the_apps_signature_or_the_admin_token() {
    let state = state();
    let id = new_deploy(&state, 2);
    state.store.finish(&id, DeployStatus::Superseded, None, None, unix_ms()).unwrap();
    let path = format!("/v1/deploys/{id}/events");
    let (s, _) = open(&state, Request::get(&path).body(Body::empty()).unwrap()).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);

    let ts = (unix_ms() / 1000).to_string();
    let signed = Signed::Request { timestamp: &ts, method: "GET", target: &path, body: b"" };
    let request = Request::get(&path)
        .header("x-slip-signature", signature::header_value(SECRET.as_bytes(), &signed))
        .header("x-slip-timestamp", &ts)
        .body(Body::empty())
        .unwrap();
    let (s, mut body) = open(&state, request).await;
    assert_eq!(s, StatusCode::OK);
    let (all, ended) = frames(&mut body, &mut String::new(), 10).await;
    assert_eq!(all.last().and_then(|f| f.event.as_deref()), Some("deploy.superseded"));
    assert!(ended);

    let (s, b) =
        send(&state, admin("GET", "/v1/deploys/dep_01jz0000000000000000000099/events", Body::empty()), "127.0.0.1:1")
            .await;
    assert_eq!((s, b["code"].as_str()), (StatusCode::NOT_FOUND, Some("deploy_not_found")));
}

#[tokio::test]
async fn the_live_stream_carries_deploy_events_and_secret_changes_without_values() {
    let state = state();
    let (s, mut body) = open(&state, admin("GET", "/v1/events?app=web", Body::empty())).await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = open(&state, Request::get("/v1/events").body(Body::empty()).unwrap()).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);

    send(&state, json_put("/v1/secrets/web/API_KEY", serde_json::json!({"value": VALUE})), "127.0.0.1:1").await;
    let mut buffer = String::new();
    let (got, _) = frames(&mut body, &mut buffer, 1).await;
    assert_eq!(got[0].event.as_deref(), Some("secret.changed"));
    assert_eq!(got[0].data["data"], serde_json::json!({"key": "API_KEY", "scope": "app", "action": "set"}));
    assert!(!got[0].data.to_string().contains(VALUE));

    // The pump polls every 200 ms; give it a tick to take its baseline before the deploy exists.
    tokio::time::sleep(Duration::from_millis(450)).await;
    let id = new_deploy(&state, 3);
    state.store.record_status(&id, DeployStatus::Pulling, None, None, unix_ms()).unwrap();
    let (got, _) = frames(&mut body, &mut buffer, 2).await;
    let statuses: Vec<&str> = got.iter().map(|f| f.data["status"].as_str().unwrap()).collect();
    assert_eq!(statuses, ["accepted", "pulling"]);
    assert!(got.iter().all(|f| f.data["deploy_id"] == id.as_str()));
}
