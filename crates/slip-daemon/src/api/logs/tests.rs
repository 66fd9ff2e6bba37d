//! The logs endpoint through `oneshot` with the fake runtime: query parsing, container choice, prefixes, NDJSON,
//! redaction, and followed bodies that end when the container stops or slipd shuts down. Real Docker is covered
//! by `tests/it/logs.rs`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, StatusCode, Uri};
use http_body_util::BodyExt;
use slip_engine::ports::{ContainerSpec, InstanceRuntime, InstanceSpec, LogLine, LogRotation, OutputStream, Resources};
use slip_engine::secrets::Scope;
use slip_engine::testing::FakeRuntime;
use tower::ServiceExt;

use super::*;
use crate::tests::{TOKEN, state_with};

const VALUE: &str = "secret-value-in-a-log-line";

/// Parses a query string as axum does.
fn query(text: &str) -> LogsQuery {
    let uri: Uri = format!("/x?{text}").parse().unwrap();
    Query::<LogsQuery>::try_from_uri(&uri).unwrap().0
}

fn field(error: ApiError) -> Option<&'static str> {
    match error {
        ApiError::BadRequest { field, .. } => field,
        other => panic!("expected a 400, got {other:?}"),
    }
}

#[test]
fn since_is_a_duration_back_from_now_or_an_rfc3339_time() {
    let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let request = log_request(&query("since=10m"), now).unwrap();
    assert_eq!(request.since, Some(now - Duration::from_secs(600)));
    assert_eq!(request.tail, None, "since without tail means every line since then");
    let request = log_request(&query("since=2023-11-14T22:13:20.5Z"), now).unwrap();
    assert_eq!(request.since, Some(now + Duration::from_millis(500)));
    for bad in ["yesterday", "10", "-5m", "2023-11-14"] {
        assert_eq!(field(log_request(&query(&format!("since={bad}")), now).unwrap_err()), Some("since"), "{bad}");
    }
}

#[test]
fn tail_follow_and_unsupported_parameters() {
    let now = SystemTime::now();
    let plain = log_request(&query(""), now).unwrap();
    assert_eq!((plain.tail, plain.since, plain.follow), (Some(DEFAULT_TAIL), None, Follow::No));
    let followed = log_request(&query("follow=true&tail=0"), now).unwrap();
    assert_eq!((followed.tail, followed.follow), (Some(0), Follow::UntilStopped));
    assert_eq!(log_request(&query("follow=false"), now).unwrap().follow, Follow::No);
    assert_eq!(field(log_request(&query("follow=yes"), now).unwrap_err()), Some("follow"));
    assert_eq!(field(log_request(&query("tail=10001"), now).unwrap_err()), Some("tail"));
    assert!(log_request(&query("preview=pr-1"), now).is_ok(), "previews are a selection, not a refusal");
    assert_eq!(field(log_request(&query("instance=ins_1"), now).unwrap_err()), Some("instance"));
}

#[test]
fn ndjson_is_chosen_by_the_accept_header() {
    let headers = |accept: &str| {
        let mut h = HeaderMap::new();
        h.insert(header::ACCEPT, accept.parse().unwrap());
        h
    };
    assert!(accepts_ndjson(&headers("application/x-ndjson")));
    assert!(accepts_ndjson(&headers("text/plain;q=0.5, Application/X-NDJSON; q=1")));
    assert!(!accepts_ndjson(&headers("text/plain")));
    assert!(!accepts_ndjson(&HeaderMap::new()));
}

/// Two running containers of `web` (and a stopped one), with lines, and `VALUE` stored as an app secret.
async fn two_containers() -> (AppState, Arc<FakeRuntime>, [String; 2]) {
    let runtime = Arc::new(FakeRuntime::default());
    let state = state_with(runtime.clone());
    let app = "web".parse().unwrap();
    state.secrets.set(&app, Scope::App, &"API_TOKEN".parse().unwrap(), VALUE).unwrap();
    let ours = state.engine.instance_id.clone();
    let a = runtime.start(&spec("slip-web-a", &ours)).await.unwrap();
    let b = runtime.start(&spec("slip-web-b", &ours)).await.unwrap();
    let stopped = runtime.start(&spec("slip-web-0", &ours)).await.unwrap();
    // Another slipd's container of an app with the same name is not this slipd's to show.
    let foreign = runtime.start(&spec("slip-web-f", "another-slipd")).await.unwrap();
    runtime.write_log(&foreign, line(OutputStream::Stdout, "from another slipd"));
    runtime.stop(&stopped, Duration::ZERO).await.unwrap();
    runtime.write_log(&a, line(OutputStream::Stdout, &format!("a1 token={VALUE}")));
    runtime.write_log(&a, line(OutputStream::Stderr, "a2"));
    runtime.write_log(&b, line(OutputStream::Stdout, "b1"));
    runtime.write_log(&stopped, line(OutputStream::Stdout, "from a stopped container"));
    (state, runtime, [a, b])
}

fn spec(name: &str, instance: &str) -> InstanceSpec {
    InstanceSpec::Container(ContainerSpec {
        name: name.to_owned(),
        image: "registry.test/web@sha256:00".into(),
        labels: BTreeMap::from([
            ("slip.app".to_owned(), "web".to_owned()),
            ("slip.role".to_owned(), "app".to_owned()),
            ("slip.instance".to_owned(), instance.to_owned()),
        ]),
        env: Vec::new(),
        ports: Vec::new(),
        network: None,
        resources: Resources::default(),
        mounts: Vec::new(),
        init: false,
        log: LogRotation { max_size_bytes: 1 << 20, max_files: 1 },
    })
}

fn line(stream: OutputStream, text: &str) -> LogLine {
    LogLine { at: Some(SystemTime::now()), stream, text: text.to_owned(), cut: false }
}

/// Sends `GET uri` with the admin token and `accept`; returns the response.
async fn get(state: &AppState, uri: &str, accept: Option<&str>) -> Response {
    let mut request = Request::get(uri).header("authorization", format!("Bearer {TOKEN}"));
    if let Some(accept) = accept {
        request = request.header("accept", accept);
    }
    let mut request = request.body(Body::empty()).unwrap();
    request.extensions_mut().insert(ConnectInfo::<SocketAddr>("127.0.0.1:1".parse().unwrap()));
    crate::router(state.clone()).oneshot(request).await.unwrap()
}

async fn text(response: Response) -> String {
    String::from_utf8(response.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap()
}

/// The next chunk of a streaming body as text, `None` at its end; panics when nothing comes within 5 s.
async fn next_chunk(body: &mut Body) -> Option<String> {
    let frame = tokio::time::timeout(Duration::from_secs(5), body.frame()).await.expect("a chunk or the end in time");
    frame.map(|f| String::from_utf8(f.unwrap().into_data().unwrap().to_vec()).unwrap())
}

#[tokio::test]
async fn several_containers_are_prefixed_redacted_and_one_can_be_chosen() {
    let (state, _runtime, _) = two_containers().await;
    let response = get(&state, "/v1/apps/web/logs", None).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "text/plain; charset=utf-8");
    assert_eq!(
        text(response).await,
        "slip-web-a | a1 token=[redacted:API_TOKEN]\nslip-web-a | a2\nslip-web-b | b1\n",
        "running containers only, by name, each line redacted"
    );

    let response = get(&state, "/v1/apps/web/logs?container=slip-web-b", None).await;
    assert_eq!(text(response).await, "b1\n", "one container: no prefix");
    let response = get(&state, "/v1/apps/web/logs?container=slip-web-a&tail=1", None).await;
    assert_eq!(text(response).await, "a2\n", "tail counts per container");

    let response = get(&state, "/v1/apps/web/logs?container=slip-web-0", None).await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let body: serde_json::Value = serde_json::from_str(&text(response).await).unwrap();
    assert_eq!(body["code"], "container_not_found");
    assert!(body["error"].as_str().unwrap().contains("slip-web-a, slip-web-b"), "{body}");
}

#[tokio::test]
async fn ndjson_lines_name_their_container_and_stream() {
    let (state, _runtime, _) = two_containers().await;
    let response = get(&state, "/v1/apps/web/logs?container=slip-web-a", Some("application/x-ndjson")).await;
    assert_eq!(response.headers()["content-type"], "application/x-ndjson");
    let lines: Vec<serde_json::Value> =
        text(response).await.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert_eq!(
        (&lines[0]["container"], &lines[0]["stream"], &lines[0]["line"]),
        (&"slip-web-a".into(), &"stdout".into(), &"a1 token=[redacted:API_TOKEN]".into())
    );
    assert_eq!(lines[1]["stream"], "stderr");
    assert!(lines[0]["at"].as_str().is_some_and(|at| OffsetDateTime::parse(at, &Rfc3339).is_ok()), "{lines:?}");
}

#[tokio::test]
async fn a_followed_body_relays_new_lines_and_ends_when_the_container_stops() {
    let (state, runtime, [a, _b]) = two_containers().await;
    let response = get(&state, "/v1/apps/web/logs?container=slip-web-a&follow=true&tail=1", None).await;
    assert_eq!(response.status(), StatusCode::OK);
    let mut body = response.into_body();
    assert_eq!(next_chunk(&mut body).await.as_deref(), Some("a2\n"));
    runtime.write_log(&a, line(OutputStream::Stdout, &format!("later {VALUE}")));
    assert_eq!(next_chunk(&mut body).await.as_deref(), Some("later [redacted:API_TOKEN]\n"));
    runtime.stop(&a, Duration::ZERO).await.unwrap();
    assert_eq!(next_chunk(&mut body).await, None);
}

#[tokio::test]
async fn a_followed_body_ends_when_slipd_shuts_down() {
    let (state, _runtime, _) = two_containers().await;
    let response = get(&state, "/v1/apps/web/logs?follow=true&tail=0", None).await;
    let mut body = response.into_body();
    state.events.closing().cancel();
    assert_eq!(next_chunk(&mut body).await, None);
}

#[tokio::test]
async fn logs_need_the_admin_token_and_a_valid_since() {
    let (state, _runtime, _) = two_containers().await;
    let mut request = Request::get("/v1/apps/web/logs").body(Body::empty()).unwrap();
    request.extensions_mut().insert(ConnectInfo::<SocketAddr>("127.0.0.1:1".parse().unwrap()));
    let response = crate::router(state.clone()).oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);

    let response = get(&state, "/v1/apps/web/logs?since=last-tuesday", None).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body: serde_json::Value = serde_json::from_str(&text(response).await).unwrap();
    assert_eq!((body["code"].as_str(), body["field"].as_str()), (Some("invalid_request"), Some("since")));
    assert!(body["error"].as_str().unwrap().contains("RFC 3339"), "{body}");
    assert_eq!(get(&state, "/v1/apps/nope/logs", None).await.status(), StatusCode::NOT_FOUND);
}
