//! Router tests through `oneshot`: no socket, fakes for Docker and Caddy, a real in-memory SQLite.

use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use slip_core::config::{SourceFile, Sources, parse};
use slip_core::signature::{self, Signed};
use slip_engine::ports::LogRotation;
use slip_engine::routes::RouteTable;
use slip_engine::run::Engine;
use slip_engine::store::Store;
use slip_engine::testing::{FakeProxy, FakeRuntime, Journal, ScriptedProbe};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

use crate::auth::FailureLimiter;
use crate::health::Health;
use crate::queue::Scheduler;
use crate::release::Resolver;
use crate::state::{AppState, Shared};

pub(crate) const SECRET: &str = "global-secret-for-tests";
pub(crate) const TOKEN: &str = "admin-token-for-tests";

pub(crate) fn state() -> AppState {
    state_with(Arc::new(FakeRuntime::new(Journal::default())))
}

/// A state like [`state`] whose engine is `runtime`, for tests that script containers.
pub(crate) fn state_with(runtime: Arc<FakeRuntime>) -> AppState {
    let storage = tempfile::tempdir().expect("tempdir").keep();
    let sources = Sources {
        slip_toml: Some(SourceFile {
            path: "slip.toml".into(),
            text: format!(
                "[auth]\nsecret = \"{SECRET}\"\nadmin_token = \"{TOKEN}\"\n[storage]\npath = \"{}\"\n",
                storage.display()
            ),
        }),
        apps: vec![SourceFile {
            path: "apps/web.toml".into(),
            text:
                "[app]\nname = \"web\"\nimage = \"registry.test/web\"\n[routing]\ndomain = \"web.test\"\nport = 8080\n"
                    .into(),
        }],
        env: Default::default(),
    };
    let config = parse(&sources).expect("test config").config;
    let secrets = slip_engine::secrets::SecretStore::new(&storage);
    let journal = Journal::default();
    let store = Store::open_in_memory().unwrap();
    let engine = Engine {
        instances: runtime.clone(),
        image_store: runtime.clone(),
        logs: runtime,
        probe: Arc::new(ScriptedProbe::new(journal.clone())),
        routes: RouteTable::new(Arc::new(FakeProxy::new(journal))),
        instance_id: store.instance_id().to_owned(),
        store: store.clone(),
        port_range: 42000..=42999,
        log: LogRotation { max_size_bytes: 1 << 20, max_files: 1 },
        shutdown: CancellationToken::new(),
        images: slip_engine::images::ImagePolicy::without_disk_check(),
    };
    let config = Arc::new(RwLock::new(Arc::new(config)));
    let scheduler = Scheduler::new(
        engine.clone(),
        Resolver::new(config.clone(), secrets.clone()),
        2,
        TaskTracker::new(),
        CancellationToken::new(),
    );
    let events = crate::events::Bus::new(store.clone(), CancellationToken::new());
    AppState(Arc::new(Shared {
        config,
        store,
        engine,
        secrets,
        scheduler,
        limiter: FailureLimiter::new(3, Duration::from_secs(60)),
        decoy_key: [7; 32],
        started: Instant::now(),
        backend: "docker",
        health: Health::default(),
        events,
        config_path: Default::default(),
        sources: Default::default(),
    }))
}

pub(crate) async fn send(state: &AppState, mut request: Request<Body>, peer: &str) -> (StatusCode, serde_json::Value) {
    let peer: SocketAddr = peer.parse().unwrap();
    request.extensions_mut().insert(ConnectInfo(peer));
    let response = crate::router(state.clone()).oneshot(request).await.unwrap();
    let status = response.status();
    assert!(response.headers().contains_key("x-request-id"), "every answer carries X-Request-Id");
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null))
}

pub(crate) fn legacy_deploy(body: &str, key: &str) -> Request<Body> {
    let sig = signature::header_value(key.as_bytes(), &Signed::LegacyDeploy { body: body.as_bytes() });
    Request::post("/v1/deploy")
        .header("content-type", "application/json")
        .header("x-slip-signature", sig)
        .body(Body::from(body.to_owned()))
        .unwrap()
}

#[tokio::test]
async fn legacy_signed_webhook_is_accepted_and_recorded() {
    let state = state();
    let (status, body) = send(&state, legacy_deploy(r#"{"app":"web","tag":"v1"}"#, SECRET), "127.0.0.1:1").await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["status"], "accepted");
    let id: slip_core::names::DeployId = body["deploy_id"].as_str().unwrap().parse().unwrap();
    assert!(state.store.deploy(&id).unwrap().is_some(), "committed before the 202");
}

#[tokio::test]
async fn a_webhook_for_an_app_being_deleted_is_refused_and_queues_nothing() {
    let state = state();
    let deleting = state.scheduler.begin_delete("web").expect("the first delete");
    assert!(state.scheduler.begin_delete("web").is_none(), "one delete of an app at a time");
    let (status, body) = send(&state, legacy_deploy(r#"{"app":"web","tag":"v1"}"#, SECRET), "127.0.0.1:1").await;
    assert_eq!((status, body["code"].as_str()), (StatusCode::CONFLICT, Some("app_deleting")), "{body}");
    assert!(state.store.unfinished().unwrap().is_empty(), "nothing was queued");
    drop(deleting);
    let (status, body) = send(&state, legacy_deploy(r#"{"app":"web","tag":"v2"}"#, SECRET), "127.0.0.1:1").await;
    assert_eq!(status, StatusCode::ACCEPTED, "the mark is gone with its guard: {body}");
}

#[tokio::test]
async fn wrong_key_and_unknown_app_look_the_same() {
    let state = state();
    let (s1, b1) = send(&state, legacy_deploy(r#"{"app":"web","tag":"v1"}"#, "nope"), "127.0.0.1:1").await;
    let (s2, b2) = send(&state, legacy_deploy(r#"{"app":"nope","tag":"v1"}"#, SECRET), "127.0.0.1:1").await;
    assert_eq!((s1, s2), (StatusCode::UNAUTHORIZED, StatusCode::UNAUTHORIZED));
    assert_eq!(b1, b2);
}

#[tokio::test]
async fn repeated_failures_from_one_address_get_429() {
    let state = state();
    for _ in 0..3 {
        let (s, _) = send(&state, legacy_deploy(r#"{"app":"web","tag":"v1"}"#, "nope"), "203.0.113.5:1").await;
        assert_eq!(s, StatusCode::UNAUTHORIZED);
    }
    let (s, b) = send(&state, legacy_deploy(r#"{"app":"web","tag":"v1"}"#, SECRET), "203.0.113.5:1").await;
    assert_eq!((s, b["code"].as_str()), (StatusCode::TOO_MANY_REQUESTS, Some("rate_limited")));
}

#[tokio::test]
async fn errors_are_json_with_a_code() {
    let state = state();
    let (s, b) = send(&state, Request::get("/nope").body(Body::empty()).unwrap(), "127.0.0.1:1").await;
    assert_eq!((s, b["code"].as_str()), (StatusCode::NOT_FOUND, Some("not_found")));
    let form = Request::post("/v1/deploy")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Body::from("app=web"))
        .unwrap();
    let (s, b) = send(&state, form, "127.0.0.1:1").await;
    assert_eq!((s, b["code"].as_str()), (StatusCode::UNSUPPORTED_MEDIA_TYPE, Some("unsupported_media_type")));
    let (s, b) = send(&state, legacy_deploy("not json", SECRET), "127.0.0.1:1").await;
    assert_eq!((s, b["code"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_json")));
}

#[tokio::test]
async fn deploy_list_needs_the_admin_token_and_public_reads_are_reduced() {
    let state = state();
    let (_, accepted) = send(&state, legacy_deploy(r#"{"app":"web","tag":"v1"}"#, SECRET), "127.0.0.1:1").await;
    let id = accepted["deploy_id"].as_str().unwrap().to_owned();

    let (s, _) = send(&state, Request::get("/v1/deploys").body(Body::empty()).unwrap(), "127.0.0.1:1").await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let admin = Request::get("/v1/deploys").header("authorization", format!("Bearer {TOKEN}")).body(Body::empty());
    let (s, b) = send(&state, admin.unwrap(), "127.0.0.1:1").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(b["deploys"][0]["deploy_id"], id.as_str());

    let (s, public) =
        send(&state, Request::get(format!("/v1/deploys/{id}")).body(Body::empty()).unwrap(), "127.0.0.1:1").await;
    assert_eq!(s, StatusCode::OK);
    let mut keys: Vec<&str> = public.as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort();
    assert_eq!(keys, ["app", "deploy_id", "error", "finished_at", "started_at", "status", "tag"]);

    let (s, status) = send(&state, Request::get("/v1/status").body(Body::empty()).unwrap(), "127.0.0.1:1").await;
    assert_eq!(s, StatusCode::OK);
    assert!(status.get("apps").is_none() && status.get("version").is_none(), "{status}");
}

#[tokio::test]
async fn a_preview_deploy_is_its_own_target_and_never_runs_on_production() {
    use slip_engine::store::{NewDeploy, Trigger};
    let state = state();
    let app: slip_core::names::AppName = "web".parse().unwrap();
    let preview = NewDeploy {
        id: "dep_01jz0000000000000000000077".parse().unwrap(),
        app: app.clone(),
        preview_id: Some("pr-7".parse().unwrap()),
        trigger: Trigger::Webhook,
        tag: "v1".parse().unwrap(),
        images: "{}".into(),
        kind: Some("web".into()),
        strategy: Some("blue-green".into()),
        rollback_of: None,
        meta: None,
        actor: None,
        source_ip: None,
        created_at: slip_engine::clock::unix_ms(),
    };
    // A preview deploy gets a runner of its own (production's queue does not see it); this config has no preview
    // domain, so the resolver refuses it rather than run it anywhere, least of all on production's routes.
    state.scheduler.enqueue(&preview).unwrap().expect("queued");
    slip_testenv::wait_until_async(std::time::Duration::from_secs(10), "the preview deploy ends", || async {
        state.store.deploy(&preview.id).unwrap().is_some_and(|d| d.status.is_terminal())
    })
    .await;
    let row = state.store.deploy(&preview.id).unwrap().unwrap();
    assert_eq!(row.error_code.as_deref(), Some("preview_disabled"), "{row:?}");
    assert!(row.error.unwrap().contains("no preview domain"));
    assert!(state.store.instances(&app, None).unwrap().is_empty(), "nothing of production was touched");
}
