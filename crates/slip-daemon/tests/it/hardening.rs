//! The findings of probing slipd's API on loopback (issue 15), each against a real slipd, Docker, Caddy and
//! registry: control characters in secret values, engine error text in the public deploy view, legacy replays.

use slip_engine::secrets::{Scope, SecretKey, SecretStore};
use slip_testenv::Image;

use crate::support::{TOKEN, TestDaemon, app_name, web_app};

#[tokio::test(flavor = "multi_thread")]
async fn a_secret_with_a_nul_byte_is_refused_naming_the_key_and_not_the_value() {
    let app = app_name("nul");
    let a = app.clone();
    let d = TestDaemon::start(|reg| vec![(a.clone(), web_app(&a, reg, ""))], "").await;
    for (content_type, body) in [
        ("application/json", serde_json::json!({"value": "abc\u{0}defghij"}).to_string()),
        ("text/plain", "abc\u{1b}[2Jdefghij".to_owned()),
    ] {
        let r = d
            .http
            .put(d.url(&format!("/v1/secrets/{app}/NULV")))
            .bearer_auth(TOKEN)
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 400, "{content_type}");
        let answer: serde_json::Value = r.json().await.unwrap();
        assert_eq!((answer["code"].as_str(), answer["field"].as_str()), (Some("invalid_request"), Some("value")));
        let message = answer["error"].as_str().unwrap();
        assert!(message.contains("NULV") && message.contains("control character"), "{message}");
        assert!(!message.contains("defghij"), "the answer never quotes the value: {message}");
    }
    let legacy = d
        .http
        .put(d.url(&format!("/v1/apps/{app}/secrets")))
        .bearer_auth(TOKEN)
        .json(&serde_json::json!({"secrets": {"GOOD": "fine-value", "NULV": "abc\u{0}defghij"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(legacy.status().as_u16(), 400, "the legacy alias checks values too");
    let store = SecretStore::new(&d.storage());
    let good: SecretKey = "GOOD".parse().unwrap();
    assert!(store.get(&app.parse().unwrap(), Scope::App, &good).unwrap().is_none(), "nothing half-applied");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_engine_error_quoting_a_secret_reaches_no_unauthenticated_reader() {
    let app = app_name("leak");
    let a = app.clone();
    let d = TestDaemon::start(|reg| vec![(a.clone(), web_app(&a, reg, ""))], "").await;
    d.push(&Image::V1, &app, "v1");
    // A store written before values were checked (or by hand) may still hold one; the engine refuses it and
    // echoes it back escaped.
    let store = SecretStore::new(&d.storage());
    store.set(&app.parse().unwrap(), Scope::App, &"NULV".parse().unwrap(), "abc\u{0}defghij").unwrap();

    let accepted = d.deploy(&app, "v1").await;
    let admin = d.wait_deploy(&accepted.deploy_id, std::time::Duration::from_secs(120)).await;
    assert_eq!(admin.status, "failed", "{admin:?}");
    let admin_error = admin.error.clone().unwrap_or_default();
    assert!(!admin_error.contains("defghij"), "the admin view is redacted: {admin_error}");
    assert!(admin_error.contains("[redacted:NULV]"), "the engine quoted the value, escaped: {admin_error}");

    let public: serde_json::Value =
        d.http.get(d.url(&format!("/v1/deploys/{}", accepted.deploy_id))).send().await.unwrap().json().await.unwrap();
    let error = public["error"].as_str().expect("a failed deploy has an error");
    assert!(error.starts_with("deploy failed ("), "slip's own words only: {error}");
    assert!(!error.contains("NULV") && !error.contains("defghij") && !error.contains("engine"), "{error}");
}

#[tokio::test(flavor = "multi_thread")]
async fn app_files_and_their_trash_copies_are_0600() {
    use std::os::unix::fs::PermissionsExt;
    let by_hand = app_name("hand");
    let h = by_hand.clone();
    let d = TestDaemon::start(|reg| vec![(h.clone(), web_app(&h, reg, ""))], "").await;
    let apps = d.config_dir().join("apps");
    let mode = |path: &std::path::Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    std::fs::set_permissions(apps.join(format!("{by_hand}.toml")), std::fs::Permissions::from_mode(0o644)).unwrap();

    let api = app_name("api");
    let _guard = slip_testenv::ContainerGuard::new("slip.app", &api);
    let doc = serde_json::json!({
        "app": {"name": api, "image": format!("{}/{api}", d.registry.host()), "secret": "app-key-0123456789abcdef"},
        "routing": {"domain": format!("{api}.test"), "port": 8080},
    });
    let r = d.http.post(d.url("/v1/apps")).bearer_auth(TOKEN).json(&doc).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 201, "{}", r.text().await.unwrap());
    assert_eq!(mode(&apps.join(format!("{api}.toml"))), 0o600, "it holds app.secret in plain text");

    for app in [&api, &by_hand] {
        let r = d.http.delete(d.url(&format!("/v1/apps/{app}"))).bearer_auth(TOKEN).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 200, "{}", r.text().await.unwrap());
    }
    let trash = d.storage().join("trash");
    let copies: Vec<_> = std::fs::read_dir(&trash).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(copies.len(), 2, "{copies:?}");
    for copy in copies {
        assert_eq!(mode(&copy), 0o600, "{} (a hand-written 0644 file too)", copy.display());
    }
    assert_eq!(mode(&trash), 0o700);
}

#[tokio::test(flavor = "multi_thread")]
async fn slipds_own_log_lines_are_redacted_including_secrets_set_after_start() {
    use crate::support::{ProcessConfig, SlipdProcess, web_app_with_image};

    let app = app_name("logredact");
    let registry = slip_testenv::Registry::start();
    let config = web_app_with_image(&app, &format!("{}/{app}", registry.host()), "");
    let mut slipd = SlipdProcess::new(vec![(app.clone(), config)], ProcessConfig::default());
    slipd.start(&[]).await;
    // Set after start: the log redactor is rebuilt when a secret changes. The value is a valid tag, so a webhook
    // can make slipd write it into its own lines (the deploy's span, the pull error), which no deploy redactor sees.
    let value = "tok-logged-0123456789";
    let r = slipd
        .api
        .http
        .put(slipd.api.url(&format!("/v1/secrets/{app}/API_TOKEN")))
        .bearer_auth(TOKEN)
        .json(&serde_json::json!({ "value": value }))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    for tag in [value, TOKEN] {
        let done = slipd.api.deploy_and_wait(&app, tag).await;
        assert_eq!(done.status, "failed", "there is no such image: {done:?}");
    }
    assert!(slipd.terminate(std::time::Duration::from_secs(60)).await.success());
    let log = slipd.log();
    assert!(!log.contains(value) && !log.contains(TOKEN), "{log}");
    assert!(log.contains("[redacted:API_TOKEN]"), "a line held the secret and was redacted: {log}");
    assert!(log.contains("[redacted:auth.admin_token]"), "config tokens too: {log}");
}
