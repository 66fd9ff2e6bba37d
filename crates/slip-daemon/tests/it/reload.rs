//! Reloading the config from disk (`POST /v1/config/reload` and SIGHUP) against a real slipd, Docker and Caddy:
//! hand edits go live all at once or not at all.

use std::time::Duration;

use serde_json::Value;
use slip_testenv::{ContainerGuard, Image};

use crate::support::{ProcessConfig, SlipdProcess, TOKEN, TestDaemon, app_name, caddy_dials, web_app};

async fn reload(d: &TestDaemon) -> (u16, Value) {
    let response = d.http.post(d.url("/v1/config/reload")).bearer_auth(TOKEN).send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reload_applies_valid_hand_edits_and_refuses_the_rest_whole() {
    let app = app_name("reload");
    let a = app.clone();
    let d = TestDaemon::start(|reg| vec![(a.clone(), web_app(&a, reg, ""))], "").await;
    d.push(&Image::V1, &app, "v1");
    assert_eq!(d.deploy_and_wait(&app, "v1").await.status, "completed");
    let apps = d.config_dir().join("apps");
    let file = apps.join(format!("{app}.toml"));
    let original = std::fs::read_to_string(&file).unwrap();

    // A routing edit and a new app go live together; Caddy follows at once.
    let (host, moved) = (format!("{app}.test"), format!("{app}-moved.test"));
    std::fs::write(&file, original.replace(&format!("domain = \"{host}\""), &format!("domain = \"{moved}\""))).unwrap();
    let other = app_name("reload-new");
    let _guard = ContainerGuard::new("slip.app", &other);
    std::fs::write(apps.join(format!("{other}.toml")), web_app(&other, &d.registry.host(), "")).unwrap();
    let (status, body) = reload(&d).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (body["changed"].clone(), body["added"].clone()),
        (serde_json::json!([app]), serde_json::json!([other]))
    );
    assert_eq!(d.through_caddy(&moved, "/version").await, (200, "v1".to_owned()));
    assert_eq!(caddy_dials(&d.caddy, &host), Vec::<String>::new(), "the old hostname is gone");
    let shown = d.http.get(d.url(&format!("/v1/apps/{other}"))).bearer_auth(TOKEN).send().await.unwrap();
    assert_eq!(shown.status().as_u16(), 200);

    // Invalid: every problem named, nothing applied.
    let live = std::fs::read_to_string(&file).unwrap();
    std::fs::write(&file, live.replace("interval = \"200ms\"", "interval = \"soon\"")).unwrap();
    std::fs::write(apps.join(format!("{other}.toml")), "[app]\nname = \"wrong-name\"\n").unwrap();
    let (status, body) = reload(&d).await;
    assert_eq!((status, body["code"].as_str()), (400, Some("config_invalid")), "{body}");
    let files: Vec<&str> = body["problems"].as_array().unwrap().iter().filter_map(|p| p["file"].as_str()).collect();
    assert!(files.iter().any(|f| f.ends_with(&format!("{app}.toml"))), "{body}");
    assert!(files.iter().any(|f| f.ends_with(&format!("{other}.toml"))), "{body}");
    std::fs::write(&file, &live).unwrap();
    std::fs::remove_file(apps.join(format!("{other}.toml"))).unwrap();

    // A deployed app's file removed by hand is refused (deleting stops containers: `slip apps rm`).
    std::fs::rename(&file, apps.join("kept-aside")).unwrap();
    let (status, body) = reload(&d).await;
    assert_eq!((status, body["code"].as_str()), (409, Some("reload_refused")), "{body}");
    assert!(body["error"].as_str().unwrap().contains(&format!("slip apps rm {app}")), "{body}");
    assert_eq!(d.through_caddy(&moved, "/version").await, (200, "v1".to_owned()), "still served");
    std::fs::rename(apps.join("kept-aside"), &file).unwrap();

    // A never-deployed app's file removed by hand just goes.
    let (status, body) = reload(&d).await;
    assert_eq!((status, body["removed"].clone()), (200, serde_json::json!([other])), "{body}");

    // Sections only a restart applies are refused, named.
    let slip_toml = d.config_dir().join("slip.toml");
    let server = std::fs::read_to_string(&slip_toml).unwrap();
    std::fs::write(&slip_toml, server.replace("reconcile_interval = \"1s\"", "reconcile_interval = \"2s\"")).unwrap();
    let (status, body) = reload(&d).await;
    assert_eq!((status, body["code"].as_str()), (409, Some("reload_refused")), "{body}");
    assert!(body["error"].as_str().unwrap().contains("[caddy]"), "{body}");
    std::fs::write(&slip_toml, server).unwrap();
}

/// SIGHUP reloads too (the real binary).
#[tokio::test(flavor = "multi_thread")]
async fn sighup_reloads_the_config() {
    slip_testenv::require_docker();
    let app = app_name("hup");
    let mut slipd =
        SlipdProcess::new(vec![(app.clone(), web_app(&app, "registry.test", ""))], ProcessConfig::default());
    slipd.start(&[]).await;
    let added = app_name("hup-new");
    let apps = slipd.dir.path().join("config").join("apps");
    std::fs::write(apps.join(format!("{added}.toml")), web_app(&added, "registry.test", "")).unwrap();
    let url = slipd.api.url(&format!("/v1/apps/{added}"));
    let http = reqwest::Client::new();
    let status = || async { http.get(&url).bearer_auth(TOKEN).send().await.unwrap().status().as_u16() };
    assert_eq!(status().await, 404, "not loaded before the signal");
    slipd.signal("HUP");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while status().await != 200 {
        assert!(std::time::Instant::now() < deadline, "SIGHUP loaded the new app; log:\n{}", slipd.log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(slipd.log().contains("config reloaded"), "the reload is logged");
    let exit = slipd.terminate(Duration::from_secs(30)).await;
    assert!(exit.success(), "{exit:?}");
}
