//! The original README's step 5 (`slip deploy myapp sha-abc123f --server … --secret "$SLIP_SECRET"`) against
//! a real slipd, Docker, Caddy and registry: live progress, exit codes, and secrets reaching the container
//! but not the output.

use slip_testenv::Image;

use crate::support::{GLOBAL, Setup, app_name, assert_not_logged, slip, web_app};

#[tokio::test(flavor = "multi_thread")]
async fn readme_step_5_deploys_with_live_progress_and_a_failed_release_exits_1_with_its_step_and_reason() {
    let app = app_name("cli-deploy");
    let a = app.clone();
    let setup = Setup::new(|reg| vec![(a.clone(), web_app(&a, reg))], "");
    setup.registry.push(&Image::V1, &app, "sha-abc123f");
    setup.registry.push(&Image::UNHEALTHY, &app, "sha-bad0000");
    let slipd = setup.start(&[&app]).await;
    let server = slipd.base();

    // CI's SLIP_SECRET holds the app's key (step 3), and an app secret reaches the container.
    let app_key = "ci-app-key-for-step-5-0123";
    let database_url = "postgres://app:deploy-step-5-pw@db/app";
    let pair = format!("SLIP_SECRET={app_key}");
    let db = format!("DATABASE_URL={database_url}");
    let admin = [("SLIP_SERVER", server.as_str()), ("SLIP_TOKEN", GLOBAL)];
    let set = slip(&["secrets", "set", &app, &pair, &db], &admin, None).await;
    assert_eq!(set.code, 0, "{}", set.all());

    let step_5 = ["deploy", &app, "sha-abc123f", "--server", &server, "--secret", app_key];
    let run = slip(&step_5, &[("SLIP_SECRET", app_key)], None).await;
    assert_eq!(run.code, 0, "{}", run.all());
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert!(
        lines[0].starts_with("deploy dep_") && lines[0].ends_with(&format!("of {app}@sha-abc123f accepted")),
        "{}",
        run.all()
    );
    let steps: Vec<&str> = lines
        .iter()
        .filter_map(|l| l.trim().split_once("s  "))
        .filter(|(elapsed, _)| elapsed.parse::<f64>().is_ok())
        .map(|(_, step)| step)
        .collect();
    // A first release has no old instance, so nothing drains.
    assert_eq!(steps, ["pulling", "configuring", "starting", "health_checking", "switching"], "{}", run.all());
    let last = lines.last().unwrap();
    assert!(last.starts_with("✓ completed in ") && last.ends_with('s'), "{}", run.all());
    let (status, body) = reqwest::Client::new()
        .get(format!("http://127.0.0.1:{}/version", setup.caddy.http_port()))
        .header("host", format!("{app}.test"))
        .send()
        .await
        .map(|r| (r.status().as_u16(), r))
        .unwrap();
    assert_eq!((status, body.text().await.unwrap().trim().to_owned()), (200, "v1".to_owned()));
    let env = docker_env(&app);
    assert!(env.iter().any(|e| e == &format!("DATABASE_URL={database_url}")), "secret injected: {env:?}");
    assert!(env.iter().all(|e| !e.starts_with("SLIP_SECRET")), "webhook keys are never injected: {env:?}");

    // The global key no longer signs for this app.
    let global = slip(&["deploy", &app, "sha-abc123f", "--server", &server, "--secret", GLOBAL], &[], None).await;
    assert_eq!(global.code, 4, "{}", global.all());

    let bad = slip(&["deploy", &app, "sha-bad0000", "--server", &server, "--secret", app_key], &[], None).await;
    assert_eq!(bad.code, 1, "{}", bad.all());
    assert!(bad.stdout.contains("✗ failed: "), "{}", bad.all());
    assert!(bad.stdout.contains("failed step: health_checking (error code unhealthy)"), "{}", bad.all());
    assert!(bad.stdout.contains("HTTP 404: "), "the reason names the probe's answer: {}", bad.all());
    assert!(bad.stdout.contains("404 Not Found"), "and quotes the first bytes of its body: {}", bad.all());
    assert!(bad.stdout.contains("of the failed release's output:"), "{}", bad.all());
    assert!(bad.stdout.contains("| unhealthy: starting\n"), "the release's own lines are shown: {}", bad.all());

    let status = slip(&["status", &app], &admin, None).await;
    assert_eq!(status.code, 0, "{}", status.all());
    assert!(
        status.stdout.contains("last deploy dep_") && status.stdout.contains(" failed: health check: GET /health"),
        "{}",
        status.all()
    );
    assert!(status.stdout.contains("| unhealthy: listening on 8080\n"), "status shows why: {}", status.all());

    let json =
        slip(&["deploy", &app, "sha-bad0000", "--json", "--server", &server, "--secret", app_key], &[], None).await;
    assert_eq!(json.code, 1, "{}", json.all());
    let frames: Vec<serde_json::Value> = json.stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(frames.last().unwrap()["type"], "deploy.failed", "{}", json.all());

    let history = slip(&["history", &app, "--json"], &admin, None).await;
    assert_eq!(history.code, 0, "{}", history.all());
    let list: serde_json::Value = serde_json::from_str(&history.stdout).unwrap();
    let statuses: Vec<&str> =
        list["deploys"].as_array().unwrap().iter().map(|d| d["status"].as_str().unwrap()).collect();
    assert_eq!(statuses, ["failed", "failed", "completed"]);
    let status = slip(&["status", &app], &admin, None).await;
    assert_eq!(status.code, 0, "{}", status.all());
    assert!(status.stdout.contains("release    sha-abc123f"), "{}", status.all());
    let watch = slip(&["watch", list["deploys"][2]["deploy_id"].as_str().unwrap()], &admin, None).await;
    assert_eq!(watch.code, 0, "{}", watch.all());
    assert!(watch.stdout.contains("✓ completed in"), "{}", watch.all());

    for output in [&run, &bad, &json, &history, &status, &watch, &set] {
        assert!(!output.all().contains(database_url) && !output.all().contains(app_key), "{}", output.all());
    }
    assert_not_logged(database_url);
    assert_not_logged(app_key);
}

#[tokio::test(flavor = "multi_thread")]
async fn unreachable_servers_are_named_with_a_hint() {
    let run =
        slip(&["deploy", "myapp", "sha-abc123f", "--server", "http://127.0.0.1:9", "--secret", "k"], &[], None).await;
    assert_eq!(run.code, 5, "{}", run.all());
    assert!(run.stderr.contains("cannot reach slipd at http://127.0.0.1:9"), "{}", run.all());
    assert!(run.stderr.contains("hint: ") && run.stderr.contains("SLIP_SERVER"), "{}", run.all());
}

/// The environment of the app's running container.
fn docker_env(app: &str) -> Vec<String> {
    let ps = std::process::Command::new("docker")
        .args(["ps", "-q", "--filter", &format!("label=slip.app={app}")])
        .output()
        .unwrap();
    let id = String::from_utf8_lossy(&ps.stdout).lines().next().expect("a running container").to_owned();
    let inspect = std::process::Command::new("docker")
        .args(["inspect", "--format", "{{json .Config.Env}}", &id])
        .output()
        .unwrap();
    serde_json::from_slice(&inspect.stdout).unwrap()
}

/// A slipd from before the events endpoint: `slip deploy` falls back to polling the deploy every 2 s.
#[tokio::test(flavor = "multi_thread")]
async fn without_an_event_stream_deploy_polls_until_the_outcome() {
    use axum::Json;
    use axum::http::StatusCode;
    use axum::routing::{get, post};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};

    let polls = Arc::new(AtomicU32::new(0));
    let counter = polls.clone();
    let old_slipd = axum::Router::new()
        .route(
            "/v1/deploy",
            post(|| async {
                let accepted = serde_json::json!({"deploy_id": "dep_01jz0000000000000000000001", "app": "myapp",
                    "tag": "sha-abc123f", "status": "accepted", "supersedes": null, "preview_url": null,
                    "events_url": "/v1/deploys/dep_01jz0000000000000000000001/events"});
                (StatusCode::ACCEPTED, Json(accepted))
            }),
        )
        .route(
            "/v1/deploys/{id}",
            get(move || {
                let n = counter.fetch_add(1, Ordering::SeqCst);
                async move {
                    let (status, finished, steps) = if n == 0 {
                        ("pulling", serde_json::Value::Null, serde_json::json!([{"status": "pulling", "at": "2025-01-01T00:00:00.100Z", "duration_ms": null}]))
                    } else {
                        ("failed", serde_json::json!("2025-01-01T00:00:03.000Z"), serde_json::json!([
                            {"status": "pulling", "at": "2025-01-01T00:00:00.100Z", "duration_ms": 400},
                            {"status": "health_checking", "at": "2025-01-01T00:00:00.500Z", "duration_ms": 2500}]))
                    };
                    Json(serde_json::json!({"deploy_id": "dep_01jz0000000000000000000001", "app": "myapp",
                        "tag": "sha-abc123f", "status": status, "started_at": "2025-01-01T00:00:00.000Z",
                        "finished_at": finished, "error": if n == 0 { None } else { Some("unhealthy: HTTP 503") },
                        "error_code": if n == 0 { None } else { Some("unhealthy") }, "preview_id": null,
                        "trigger": "webhook", "strategy": "blue-green", "kind": "web", "images": {}, "steps": steps,
                        "events": [], "rollback_of": null, "superseded_by": null, "attempt": 1, "meta": null}))
                }
            }),
        )
        .fallback(|| async { (StatusCode::NOT_FOUND, Json(serde_json::json!({"error": "no such endpoint", "code": "not_found"}))) });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, old_slipd).await });

    let run = slip(&["deploy", "myapp", "sha-abc123f", "--server", &server, "--secret", "k"], &[], None).await;
    assert_eq!(run.code, 1, "{}", run.all());
    assert!(polls.load(Ordering::SeqCst) >= 2, "the deploy was polled");
    assert!(run.stdout.contains("   0.1s  pulling\n   0.5s  health_checking\n"), "{}", run.all());
    assert!(
        run.stdout.contains("✗ failed: unhealthy: HTTP 503\n  failed step: health_checking (error code unhealthy)"),
        "{}",
        run.all()
    );
}
