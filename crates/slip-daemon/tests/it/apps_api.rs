//! The apps API (SPEC §6.3, §6.6) against a real slipd, Docker, Caddy and registry: apps created, edited and
//! deleted through the API are files on disk that survive a restart; edits keep comments and `${VAR}`
//! placeholders; an invalid edit changes nothing; a delete removes the containers and the Caddy route.
//!
//! The apps created here are not in `TestDaemon`'s own list, so its restart (which rewrites that list's
//! files) never touches them.

use std::time::Duration;

use serde_json::{Value, json};
use slip_testenv::{ContainerGuard, Image};

use crate::support::{TOKEN, TestDaemon, app_name, caddy_dials, web_app};

/// Sends `method path` with the admin token and an optional JSON body; returns status and JSON body.
async fn call(d: &TestDaemon, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
    let mut request = d.http.request(method, d.url(path)).bearer_auth(TOKEN);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// An app document like `support::web_app`, as JSON.
fn web_doc(name: &str, registry: &str) -> Value {
    json!({
        "app": {"name": name, "image": format!("{registry}/{name}")},
        "routing": {"domain": format!("{name}.test"), "port": 8080},
        "health": {"path": "/health", "interval": "200ms", "timeout": "2s", "retries": 3, "start_period": "5s"},
        "deploy": {"drain_timeout": "5s", "stop_grace": "2s"},
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn apps_created_edited_and_deleted_through_the_api_survive_a_restart_and_delete_removes_everything() {
    let mut d = TestDaemon::start(|_| vec![], "").await;
    let app = app_name("api");
    let _guard = ContainerGuard::new("slip.app", &app);
    let host = format!("{app}.test");
    let registry = d.registry.host();

    let (status, body) = call(&d, reqwest::Method::POST, "/v1/apps", Some(web_doc(&app, &registry))).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["name"], app.as_str());
    assert_eq!(body["domain"], host.as_str());
    assert_eq!(body["kind"], "web");
    let (status, body) = call(&d, reqwest::Method::POST, "/v1/apps", Some(web_doc(&app, &registry))).await;
    assert_eq!((status, body["code"].as_str()), (409, Some("app_exists")), "{body}");

    // Another app claiming the same hostname (legacy flat keys) is a conflict, and nothing is written.
    let other = app_name("api-other");
    let flat = json!({"name": other, "image": format!("{registry}/{other}"), "domain": host, "port": 8080});
    let (status, body) = call(&d, reqwest::Method::POST, "/v1/apps", Some(flat)).await;
    assert_eq!((status, body["code"].as_str()), (409, Some("hostname_conflict")), "{body}");
    assert!(body["problems"].as_array().is_some_and(|p| !p.is_empty()), "{body}");
    assert!(!d.config_dir().join("apps").join(format!("{other}.toml")).exists());

    let patch = json!({"deploy": {"drain_timeout": "6s"}, "env": {"GREETING": "hi"}});
    let (status, body) = call(&d, reqwest::Method::PATCH, &format!("/v1/apps/{app}"), Some(patch)).await;
    assert_eq!(status, 200, "{body}");

    d.restart().await;
    let (status, body) = call(&d, reqwest::Method::GET, &format!("/v1/apps/{app}"), None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["deploy"]["drain_timeout"], "6s", "the edit survived the restart: {body}");
    assert_eq!(body["env"]["GREETING"], "hi");
    let (_, list) = call(&d, reqwest::Method::GET, "/v1/apps", None).await;
    let names: Vec<&str> = list["apps"].as_array().unwrap().iter().filter_map(|a| a["name"].as_str()).collect();
    assert_eq!(names, [app.as_str()]);

    d.push(&Image::V1, &app, "v1");
    let deployed = d.deploy_and_wait(&app, "v1").await;
    assert_eq!(deployed.status, "completed", "{deployed:?}");
    assert_eq!(d.through_caddy(&host, "/version").await, (200, "v1".to_owned()));
    assert_eq!(d.running_containers(&app).len(), 1);

    // A routing change of a deployed app reaches Caddy at once, without a deploy.
    let moved = format!("{app}-moved.test");
    let patch = json!({"routing": {"domain": moved}});
    let (status, body) = call(&d, reqwest::Method::PATCH, &format!("/v1/apps/{app}"), Some(patch)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(d.through_caddy(&moved, "/version").await, (200, "v1".to_owned()));
    assert_eq!(caddy_dials(&d.caddy, &host), Vec::<String>::new(), "the old hostname is no longer routed");
    let host = moved;

    let (status, body) = call(&d, reqwest::Method::DELETE, &format!("/v1/apps/{app}"), None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "ok");
    assert!(d.all_containers(&app).is_empty(), "delete removes the app's containers");
    assert_eq!(caddy_dials(&d.caddy, &host), Vec::<String>::new(), "Caddy no longer routes the deleted app");
    assert!(!d.config_dir().join("apps").join(format!("{app}.toml")).exists());
    let trashed: Vec<String> = std::fs::read_dir(d.storage().join("trash"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(trashed.iter().any(|f| f.starts_with(&format!("{app}.toml."))), "{trashed:?}");
    let (status, _) = call(&d, reqwest::Method::GET, &format!("/v1/apps/{app}"), None).await;
    assert_eq!(status, 404);

    d.restart().await;
    let (status, body) = call(&d, reqwest::Method::GET, &format!("/v1/apps/{app}"), None).await;
    assert_eq!((status, body["code"].as_str()), (404, Some("app_not_found")), "the delete survived the restart");
    // Boot re-asserts every route it has (TestDaemon::restart returns once slipd serves); the deleted app's
    // must not be among them.
    assert_eq!(caddy_dials(&d.caddy, &host), Vec::<String>::new(), "the route did not come back after the restart");
    let status = d.status().await;
    assert!(status["apps"].get(app.as_str()).is_none(), "no state of the deleted app came back: {status}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_patch_keeps_comments_and_placeholders_and_an_invalid_patch_changes_nothing() {
    let app = app_name("patch");
    let a = app.clone();
    let text = move |reg: &str| {
        let mut text = web_app(&a, reg, "");
        text.push_str("\n# operators: keep this comment\n[env]\nFROM_ENV = \"${PATH}\" # resolved at load\n");
        vec![(a.clone(), text)]
    };
    let d = TestDaemon::start(text, "").await;
    let file = d.config_dir().join("apps").join(format!("{app}.toml"));
    let path = format!("/v1/apps/{app}");

    let (status, body) = call(&d, reqwest::Method::GET, &path, None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["env"]["FROM_ENV"], "${PATH}", "shown as written");

    let (status, body) = call(&d, reqwest::Method::PATCH, &path, Some(json!({"deploy": {"stop_grace": "3s"}}))).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["env"]["FROM_ENV"], "${PATH}");
    let written = std::fs::read_to_string(&file).unwrap();
    assert!(written.contains("FROM_ENV = \"${PATH}\" # resolved at load"), "{written}");
    assert!(written.contains("# operators: keep this comment"), "{written}");
    assert!(written.contains("stop_grace = \"3s\""), "{written}");
    assert!(written.find("[app]") < written.find("[routing]"), "key order is kept: {written}");

    let before = std::fs::read(&file).unwrap();
    let (status, body) = call(&d, reqwest::Method::PATCH, &path, Some(json!({"health": {"interval": "soon"}}))).await;
    assert_eq!((status, body["code"].as_str()), (400, Some("config_invalid")), "{body}");
    let problems = body["problems"].as_array().expect("problems");
    assert!(problems.iter().any(|p| p["message"].as_str().unwrap_or("").contains("interval")), "{body}");
    assert_eq!(std::fs::read(&file).unwrap(), before, "an invalid patch leaves the file byte-for-byte unchanged");
    let (_, shown) = call(&d, reqwest::Method::GET, &path, None).await;
    assert_eq!(shown["health"]["interval"], "200ms", "and the live document too");

    let (status, body) = call(&d, reqwest::Method::PATCH, &path, Some(json!({"app": {"name": "renamed"}}))).await;
    assert_eq!((status, body["code"].as_str()), (400, Some("immutable_field")), "{body}");
    assert_eq!(std::fs::read(&file).unwrap(), before);

    // `null` deletes a key (RFC 7386).
    let (status, body) = call(&d, reqwest::Method::PATCH, &path, Some(json!({"env": {"FROM_ENV": null}}))).await;
    assert_eq!(status, 200, "{body}");
    assert!(!std::fs::read_to_string(&file).unwrap().contains("FROM_ENV"));

    // A hand edit slipd has not loaded is never overwritten, nor made live by the API.
    let mut edited = std::fs::read_to_string(&file).unwrap();
    edited.push_str("# edited by hand\n");
    std::fs::write(&file, &edited).unwrap();
    let (status, body) = call(&d, reqwest::Method::PATCH, &path, Some(json!({"deploy": {"stop_grace": "4s"}}))).await;
    assert_eq!((status, body["code"].as_str()), (409, Some("file_changed_on_disk")), "{body}");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), edited, "the hand edit is kept");
    let (_, shown) = call(&d, reqwest::Method::GET, &path, None).await;
    assert_eq!(shown["deploy"]["stop_grace"], "3s", "the live document is the loaded one");

    let (status, _) = call(&d, reqwest::Method::GET, "/v1/apps/no-such-app", None).await;
    assert_eq!(status, 404);
    let unauthorized = d.http.get(d.url("/v1/apps")).send().await.unwrap().status().as_u16();
    assert_eq!(unauthorized, 401, "the apps API needs the admin token");
}

#[tokio::test(flavor = "multi_thread")]
async fn logs_show_the_running_release_redacted() {
    let app = app_name("logs");
    let a = app.clone();
    let d = TestDaemon::start(|reg| vec![(a.clone(), web_app(&a, reg, ""))], "").await;
    // The image prints its version on start; make that version an app secret, so redaction must hide it.
    let version = "v1-logged-secret-0123456789";
    d.push(&Image::release(version), &app, "v1");
    d.put_secret(&app, "LOGGED_TOKEN", version).await;
    let deployed = d.deploy_and_wait(&app, "v1").await;
    assert_eq!(deployed.status, "completed", "{deployed:?}");

    let response = d.http.get(d.url(&format!("/v1/apps/{app}/logs?tail=50"))).bearer_auth(TOKEN).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 200);
    assert!(response.headers()["content-type"].to_str().unwrap().starts_with("text/plain"));
    let text = response.text().await.unwrap();
    assert!(text.contains("[redacted:LOGGED_TOKEN]"), "the start line is there, redacted: {text:?}");
    assert!(!text.contains(version), "{text:?}");

    let (status, body) = call(&d, reqwest::Method::GET, &format!("/v1/apps/{app}/logs?preview=pr-1"), None).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (404, Some("preview_not_found")),
        "an unknown preview is named, not ignored"
    );
    let (status, _) = call(&d, reqwest::Method::GET, "/v1/apps/no-such-app/logs", None).await;
    assert_eq!(status, 404);
}

/// Deleting an app that is deploying: refused without `force`; with it, the running deploy unwinds and ends
/// `cancelled`, the queued one fails `app_deleted`, and nothing of the app is left running.
#[tokio::test(flavor = "multi_thread")]
async fn a_forced_delete_cancels_the_running_deploy_and_fails_the_queued_one() {
    let d = TestDaemon::start(|_| vec![], "").await;
    let app = app_name("api-del");
    let _guard = ContainerGuard::new("slip.app", &app);
    let registry = d.registry.host();
    let (status, body) = call(&d, reqwest::Method::POST, "/v1/apps", Some(web_doc(&app, &registry))).await;
    assert_eq!(status, 201, "{body}");
    d.push(&Image::V1, &app, "v1");
    d.push(&Image::UNHEALTHY, &app, "bad");

    // The unhealthy release stays in health_checking for its 5 s grace period; v1 queues behind it.
    let running = d.deploy(&app, "bad").await;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while d.get_deploy(&running.deploy_id).await.status != "health_checking" {
        assert!(std::time::Instant::now() < deadline, "the deploy reached health_checking");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let queued = d.deploy(&app, "v1").await;
    assert_eq!(d.get_deploy(&queued.deploy_id).await.status, "queued");

    let path = format!("/v1/apps/{app}");
    let (status, body) = call(&d, reqwest::Method::DELETE, &path, None).await;
    assert_eq!((status, body["code"].as_str()), (409, Some("deploy_in_progress")), "{body}");
    assert!(d.config_dir().join("apps").join(format!("{app}.toml")).exists(), "a refused delete changes nothing");

    let (status, body) = call(&d, reqwest::Method::DELETE, &format!("{path}?force=true"), None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["failed_deploys"], json!([queued.deploy_id]), "{body}");
    assert_eq!(body["not_removed"], json!([]), "{body}");
    let cancelled = d.get_deploy(&running.deploy_id).await;
    assert_eq!(cancelled.status, "failed", "{cancelled:?}");
    assert_eq!(cancelled.detail.as_ref().and_then(|x| x.error_code.as_deref()), Some("cancelled"), "{cancelled:?}");
    let dropped = d.get_deploy(&queued.deploy_id).await;
    assert_eq!(dropped.status, "failed", "{dropped:?}");
    assert_eq!(dropped.detail.as_ref().and_then(|x| x.error_code.as_deref()), Some("app_deleted"), "{dropped:?}");
    assert!(d.all_containers(&app).is_empty(), "nothing of the app is left: {:?}", d.all_containers(&app));
    let (status, _) = call(&d, reqwest::Method::GET, &path, None).await;
    assert_eq!(status, 404);
}

#[tokio::test(flavor = "multi_thread")]
async fn app_documents_mask_the_github_token_and_notification_urls() {
    let d = TestDaemon::start(|_| vec![], "").await;
    let app = app_name("api-mask");
    let mut doc = web_doc(&app, &d.registry.host());
    doc["github"] = json!({"repository": "acme/web", "token": "gh-literal-token-0123"});
    doc["notifications"] = json!([{"url": "https://hooks.slack.com/services/T/B/literal", "format": "slack"},
                                  {"url": "https://hooks.example.com/x", "secret": "hook-literal-secret"}]);
    let (status, body) = call(&d, reqwest::Method::POST, "/v1/apps", Some(doc)).await;
    assert_eq!(status, 201, "{body}");
    let (status, shown) = call(&d, reqwest::Method::GET, &format!("/v1/apps/{app}"), None).await;
    assert_eq!(status, 200);
    let text = shown.to_string();
    for secret in ["gh-literal-token-0123", "hooks.slack.com/services/T/B/literal", "hook-literal-secret"] {
        assert!(!text.contains(secret), "{secret} shown in {text}");
    }
    assert_eq!(shown["github"]["repository"], "acme/web");
    assert_eq!(shown["github"]["token"], "***");
    assert_eq!(shown["notifications"][0]["format"], "slack");
    assert_eq!(shown["notifications"][1]["secret"], "***");
    let written = std::fs::read_to_string(d.config_dir().join("apps").join(format!("{app}.toml"))).unwrap();
    assert!(written.contains("[github]") && written.contains("[[notifications]]"), "{written}");
    let config = slip_daemon::check::load(&d.config_dir()).expect("the written file is valid");
    let parsed = &config.apps.values().find(|a| a.name.as_str() == app).unwrap();
    assert_eq!(parsed.notifications.len(), 2);
    assert_eq!(parsed.github.as_ref().map(|g| g.token.expose()), Some("gh-literal-token-0123"));
}
