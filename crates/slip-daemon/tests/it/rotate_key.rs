//! `slipd --rotate-key` (issue 15) on a real slipd, Docker, Caddy and registry: refused while slipd runs; killed
//! half-way (a real abort) it leaves every secret readable, slipd deploys with all of them meanwhile, and running
//! it again finishes the same rotation.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use slip_testenv::{Image, Registry};

use crate::support::{ProcessConfig, SlipdProcess, TOKEN, app_name, containers_of, web_app_with_image};

const SECRETS: [(&str, &str); 3] = [
    ("DATABASE_URL", "postgres://u:rotate-hunter2@db/app"),
    ("API_TOKEN", "tok-rotate-0123456789"),
    ("THIRD_KEY", "third-value-0123456789"),
];

/// `slipd --rotate-key` on `slipd`'s config, with extra environment; (success, stdout, stderr).
fn rotate(slipd: &SlipdProcess, env: &[(&str, &str)]) -> (bool, String, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_slipd"));
    command.arg("--rotate-key").arg("--config").arg(slipd.dir.path().join("config"));
    command.env_remove("SLIP_FAULT_INJECTION").env_remove("SLIP_FAULT_ROTATE_ABORT");
    for (k, v) in env {
        command.env(k, v);
    }
    let out = command.output().expect("running slipd --rotate-key");
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
}

/// The key id each of the app's secret files is sealed with.
fn sealed_ids(storage: &Path, app: &str) -> BTreeMap<String, String> {
    SECRETS
        .iter()
        .map(|(key, _)| {
            let text = std::fs::read_to_string(storage.join("secrets").join(app).join(key)).unwrap();
            let id = text.strip_prefix("slipenc:v1:").and_then(|r| r.split(':').next()).unwrap_or("plain");
            ((*key).to_owned(), id.to_owned())
        })
        .collect()
}

/// The id slipd derives from a key file (first 8 hex of SHA-256 of the key).
fn key_id(path: &Path) -> String {
    slip_engine::secrets::MasterKey::load(path).unwrap().id().to_owned()
}

/// Deploys `tag` and checks the running container got every secret.
async fn deploy_with_every_secret(slipd: &SlipdProcess, app: &str, tag: &str) {
    let done = slipd.api.deploy_and_wait(app, tag).await;
    assert_eq!(done.status, "completed", "{done:?}\n{}", slipd.log());
    let running = containers_of(app, false);
    assert_eq!(running.len(), 1, "{running:?}");
    let out =
        Command::new("docker").args(["inspect", "--format", "{{json .Config.Env}}", &running[0]]).output().unwrap();
    let env: Vec<String> = serde_json::from_slice(&out.stdout).unwrap();
    for (key, value) in SECRETS {
        assert!(env.contains(&format!("{key}={value}")), "{tag}: {key} injected: {env:?}");
    }
    let (status, body) = slipd.api.through_caddy(&format!("{app}.test"), "/version").await;
    assert_eq!((status, body.as_str()), (200, tag));
}

async fn fingerprints(slipd: &SlipdProcess, app: &str) -> serde_json::Value {
    let r = slipd.api.http.get(slipd.api.url(&format!("/v1/secrets/{app}"))).bearer_auth(TOKEN).send().await.unwrap();
    assert!(r.status().is_success());
    let listed: serde_json::Value = r.json().await.unwrap();
    listed["secrets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["key"].as_str().unwrap().to_owned(), s["fingerprint"].clone()))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_interrupted_rotation_leaves_every_secret_readable_and_running_it_again_finishes_it() {
    let app = app_name("rotate");
    let registry = Registry::start();
    registry.push(&Image::V1, &app, "v1");
    registry.push(&Image::V2, &app, "v2");
    registry.push(&Image::release("v3"), &app, "v3");
    let config = web_app_with_image(&app, &format!("{}/{app}", registry.host()), "");
    let mut slipd = SlipdProcess::new(vec![(app.clone(), config)], ProcessConfig::default());
    let key_file = slipd.dir.path().join("secrets.key");
    let made = Command::new(env!("CARGO_BIN_EXE_slipd")).arg("--gen-key").arg(&key_file).output().unwrap();
    assert!(made.status.success());
    slipd.config.extra_slip_toml = format!("[secrets]\nkey_file = \"{}\"\n", key_file.display());
    slipd.write_config();
    slipd.start(&[]).await;
    for (key, value) in SECRETS {
        let r = slipd
            .api
            .http
            .put(slipd.api.url(&format!("/v1/secrets/{app}/{key}")))
            .bearer_auth(TOKEN)
            .json(&serde_json::json!({ "value": value }))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{}", r.status());
    }
    deploy_with_every_secret(&slipd, &app, "v1").await;
    let before = fingerprints(&slipd, &app).await;
    let old_id = key_id(&key_file);

    // While slipd runs it would keep writing with the old key: the rotation refuses, touching nothing.
    let (ok, _, stderr) = rotate(&slipd, &[]);
    assert!(!ok);
    assert!(stderr.contains("slipd --rotate-key runs with slipd stopped") && stderr.contains("slipd.lock"), "{stderr}");
    assert!(!Path::new(&format!("{}.new", key_file.display())).exists(), "nothing was started");
    assert!(slipd.terminate(Duration::from_secs(60)).await.success());

    // A real crash after the first secret was re-sealed.
    let (ok, _, stderr) = rotate(&slipd, &[("SLIP_FAULT_INJECTION", "1"), ("SLIP_FAULT_ROTATE_ABORT", "resealed:1")]);
    assert!(!ok, "{stderr}");
    assert!(stderr.contains("aborting the key rotation at Resealed(1)"), "{stderr}");
    let pending = slipd.dir.path().join("secrets.key.new");
    let new_id = key_id(&pending);
    assert_eq!(key_id(&key_file), old_id, "the key file still holds the old key");
    let mut ids: Vec<String> = sealed_ids(&slipd.storage(), &app).into_values().collect();
    ids.sort();
    let mut expected = vec![old_id.clone(), old_id.clone(), new_id.clone()];
    expected.sort();
    assert_eq!(ids, expected, "one secret under the new key, two under the old one");

    let check = Command::new(env!("CARGO_BIN_EXE_slipd"))
        .arg("--check")
        .arg("--config")
        .arg(slipd.dir.path().join("config"))
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&check.stdout);
    assert!(said.contains("a rotation of secrets.key_file did not finish"), "{said}");

    // slipd in that state reads every secret, with both keys.
    slipd.start(&[]).await;
    assert!(slipd.log().contains("a key rotation did not finish"), "{}", slipd.log());
    deploy_with_every_secret(&slipd, &app, "v2").await;
    assert_eq!(fingerprints(&slipd, &app).await, before);
    assert!(slipd.terminate(Duration::from_secs(60)).await.success());

    let (ok, stdout, stderr) = rotate(&slipd, &[]);
    assert!(ok, "{stdout}{stderr}");
    assert!(stdout.contains("finished an interrupted rotation"), "{stdout}");
    assert!(stdout.contains(&format!("2 of 3 secrets re-encrypted, key id {old_id} -> {new_id}")), "{stdout}");
    let key_hex = std::fs::read_to_string(&key_file).unwrap();
    assert!(!stdout.contains(key_hex.trim()) && !stderr.contains(key_hex.trim()), "the key is never printed");
    assert_eq!(key_id(&key_file), new_id, "the rotation finished with the key it began");
    assert!(!pending.exists());
    assert!(sealed_ids(&slipd.storage(), &app).values().all(|id| *id == new_id));
    let stored = std::fs::read_to_string(slipd.storage().join("secrets").join(&app).join("DATABASE_URL")).unwrap();
    assert!(!stored.contains("hunter2"));

    slipd.start(&[]).await;
    deploy_with_every_secret(&slipd, &app, "v3").await;
    assert_eq!(fingerprints(&slipd, &app).await, before, "values are unchanged by the rotation");
    assert!(!slipd.log().contains("rotate-hunter2"), "no value in slipd's log");
    assert!(slipd.terminate(Duration::from_secs(60)).await.success());
}
