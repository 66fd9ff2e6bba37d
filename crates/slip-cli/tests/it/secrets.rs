//! The original README's step 3, verbatim, in local mode and against a running slipd; where secret values may
//! and may not appear; path traversal through keys.

use reqwest::Method;

use crate::support::{
    GLOBAL, Setup, assert_not_logged, files_containing, mode, require_default_address_free, slip, tree,
};

/// The value of step 3 (`SLIP_SECRET=your-hmac-secret`).
const APP_KEY: &str = "your-hmac-secret";

/// `myapp` exactly as in the README's step 2, with an image slipd can fail to pull quickly.
fn myapp(_registry: &str) -> Vec<(String, String)> {
    let body = r#"[app]
name = "myapp"
image = "127.0.0.1:9/you/myapp"

[routing]
domain = "myapp.example.com"
port = 8080

[health]
path = "/health"
interval = "2s"
timeout = "5s"
retries = 5
start_period = "10s"

[deploy]
strategy = "blue-green"
drain_timeout = "30s"

[resources]
memory = "512m"
cpus = "1.0"
"#;
    vec![("myapp".to_owned(), body.to_owned())]
}

/// `sudo slip secrets set myapp SLIP_SECRET=your-hmac-secret --token "$SLIP_SECRET"`, minus the `sudo`.
const STEP_3: [&str; 6] = ["secrets", "set", "myapp", "SLIP_SECRET=your-hmac-secret", "--token", GLOBAL];

#[tokio::test(flavor = "multi_thread")]
async fn readme_step_3_works_in_local_mode_before_slipd_runs() {
    require_default_address_free();
    let setup = Setup::new(myapp, "");
    let config = setup.config_dir();
    let config = config.to_str().unwrap();

    let run = slip(&STEP_3, &[("SLIP_SECRET", GLOBAL), ("SLIP_CONFIG", config)], None).await;
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(run.stderr.contains("(local mode: slipd not running)"), "{}", run.all());
    assert!(run.stdout.contains("myapp/SLIP_SECRET created (app scope)"), "{}", run.all());

    let store = setup.storage().join("secrets");
    assert_eq!(mode(&store), 0o700);
    assert_eq!(mode(&store.join("myapp")), 0o700);
    assert_eq!(mode(&store.join("myapp/SLIP_SECRET")), 0o600);
    assert_eq!(std::fs::read_to_string(store.join("myapp/SLIP_SECRET")).unwrap(), APP_KEY);

    let listed = slip(&["secrets", "list", "myapp", "--json"], &[("SLIP_CONFIG", config)], None).await;
    assert_eq!(listed.code, 0, "{}", listed.all());
    let json: serde_json::Value = serde_json::from_str(&listed.stdout).unwrap();
    assert_eq!(json["secrets"][0]["key"], "SLIP_SECRET");
    assert_eq!(json["secrets"][0]["fingerprint"].as_str().unwrap().len(), 12);
    assert!(!listed.all().contains(APP_KEY));

    let unknown = slip(&["secrets", "set", "nope", "API_KEY=value-123456"], &[("SLIP_CONFIG", config)], None).await;
    assert_eq!(unknown.code, 7, "{}", unknown.all());
    assert!(unknown.stderr.contains("apps/nope.toml does not exist"), "{}", unknown.all());

    // slipd, started afterwards, takes the app's own key and refuses the global one for myapp.
    let slipd = setup.start(&["myapp"]).await;
    let (status, body) = slipd.webhook("myapp", "sha-abc123f", APP_KEY).await;
    assert_eq!(status, 202, "{body}");
    let (status, body) = slipd.webhook("myapp", "sha-abc123f", GLOBAL).await;
    assert_eq!((status, body["code"].as_str()), (401, Some("invalid_signature")), "{body}");
    slipd.stop().await;

    for (path, mode) in setup.files_containing(APP_KEY) {
        assert_eq!(mode & 0o077, 0, "{} holds the value and is readable by others", path.display());
        assert!(path.starts_with(&store), "{} holds the value outside the store", path.display());
    }
    assert_not_logged(APP_KEY);
}

#[tokio::test(flavor = "multi_thread")]
async fn readme_step_3_works_against_a_running_slipd_and_values_never_leave_it() {
    let setup = Setup::new(myapp, "");
    let slipd = setup.start(&["myapp"]).await;
    let server = slipd.base();
    let env = [("SLIP_SECRET", GLOBAL), ("SLIP_SERVER", server.as_str())];

    let (status, _) = slipd.webhook("myapp", "sha-abc123f", GLOBAL).await;
    assert_eq!(status, 202, "before step 3 the global key signs for myapp");

    let run = slip(&STEP_3, &env, None).await;
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(!run.stderr.contains("local mode"), "{}", run.all());
    assert!(run.stdout.contains("myapp/SLIP_SECRET created (app scope)"), "{}", run.all());

    let (status, body) = slipd.webhook("myapp", "sha-abc123f", APP_KEY).await;
    assert_eq!(status, 202, "{body}");
    let (status, body) = slipd.webhook("myapp", "sha-abc123f", GLOBAL).await;
    assert_eq!((status, body["code"].as_str()), (401, Some("invalid_signature")), "{body}");
    let env = [("SLIP_TOKEN", GLOBAL), ("SLIP_SERVER", server.as_str())];

    // Another secret through --stdin; then every read path, which must show metadata only.
    let database_url = "postgres://app:pa55-w0rd-cli-test@db/app";
    let stdin = format!("{database_url}\n");
    let set = slip(&["secrets", "set", "myapp", "--stdin", "DATABASE_URL"], &env, Some(&stdin)).await;
    assert_eq!(set.code, 0, "{}", set.all());
    let short = slip(&["secrets", "set", "myapp", "PIN=1234"], &env, None).await;
    assert_eq!(short.code, 0, "{}", short.all());
    assert!(short.stderr.contains("shorter than 6 bytes"), "{}", short.all());
    let listed = slip(&["secrets", "list", "myapp", "--json"], &env, None).await;
    assert_eq!(listed.code, 0, "{}", listed.all());
    let keys: Vec<String> = serde_json::from_str::<serde_json::Value>(&listed.stdout).unwrap()["secrets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["key"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(keys, ["DATABASE_URL", "PIN", "SLIP_SECRET"]);
    let table = slip(&["secrets", "list", "myapp"], &env, None).await;
    assert!(table.stdout.starts_with("KEY\tSCOPE\tUPDATED\tFINGERPRINT\n"), "{}", table.all());
    let mut bodies = vec![listed.all(), table.all(), set.all(), run.all()];
    for path in
        ["/v1/secrets/myapp", "/v1/secrets/myapp/DATABASE_URL", "/v1/apps/myapp/secrets", "/v1/deploys?app=myapp"]
    {
        let (status, body) = slipd.admin(Method::GET, path, GLOBAL, None).await;
        assert_eq!(status, 200, "{path}: {body}");
        bodies.push(body);
    }
    let (_, stream) = slipd.admin(Method::GET, "/v1/deploys?app=myapp&limit=1", GLOBAL, None).await;
    let id = serde_json::from_str::<serde_json::Value>(&stream).unwrap()["deploys"][0]["deploy_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let watch = slip(&["watch", &id, "--json", "--token", GLOBAL], &[("SLIP_SERVER", server.as_str())], None).await;
    assert_eq!(watch.code, 1, "the deploy fails at its pull: {}", watch.all());
    assert!(
        watch.stdout.lines().all(|l| serde_json::from_str::<serde_json::Value>(l).is_ok()),
        "NDJSON: {}",
        watch.all()
    );
    bodies.push(watch.all());
    for body in &bodies {
        assert!(!body.contains(APP_KEY) && !body.contains(database_url), "a value leaked: {body}");
    }

    // A key that names a path is refused by the API and by the CLI, and nothing outside the store changes.
    let before = tree(setup.dir.path());
    let (status, body) =
        slipd.admin(Method::PUT, "/v1/secrets/myapp/..%2F..%2Fx", GLOBAL, Some(r#"{"value":"escaped-value"}"#)).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("invalid_key"), "{body}");
    let cli = slip(&["secrets", "set", "myapp", "../../x=escaped-value"], &env, None).await;
    assert_eq!(cli.code, 2, "{}", cli.all());
    assert!(cli.stderr.contains("invalid secret key"), "{}", cli.all());
    assert_eq!(tree(setup.dir.path()), before);
    assert!(files_containing(setup.dir.path(), "escaped-value").is_empty());

    let rm = slip(&["secrets", "rm", "myapp", "PIN"], &env, None).await;
    assert_eq!(rm.code, 0, "{}", rm.all());
    let again = slip(&["secrets", "rm", "myapp", "PIN"], &env, None).await;
    assert_eq!(again.code, 7, "{}", again.all());
    assert!(again.stderr.contains("secret_not_found"), "{}", again.all());
    let no_token = slip(&["secrets", "list", "myapp"], &[("SLIP_SERVER", server.as_str())], None).await;
    assert_eq!(no_token.code, 4, "{}", no_token.all());
    slipd.stop().await;

    let store = setup.storage().join("secrets");
    for value in [APP_KEY, database_url] {
        for (path, mode) in setup.files_containing(value) {
            assert_eq!(mode & 0o077, 0, "{} holds a value and is readable by others", path.display());
            assert!(path.starts_with(&store), "{} holds a value outside the store", path.display());
        }
        assert_not_logged(value);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn with_a_key_file_local_mode_and_slipd_write_encrypted_files_and_slipd_migrates_plain_ones() {
    require_default_address_free();
    let keys = tempfile::tempdir().unwrap();
    let key_file = keys.path().join("master.key");
    slip_engine::secrets::MasterKey::create_file(&key_file).unwrap();
    let setup = Setup::new(myapp, &format!("\n[secrets]\nkey_file = \"{}\"\n", key_file.display()));
    let config = setup.config_dir();
    let config = config.to_str().unwrap();

    let run = slip(&STEP_3, &[("SLIP_SECRET", GLOBAL), ("SLIP_CONFIG", config)], None).await;
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(run.stderr.contains("(local mode: slipd not running)"), "{}", run.all());
    let store = setup.storage().join("secrets");
    let written = std::fs::read_to_string(store.join("myapp/SLIP_SECRET")).unwrap();
    assert!(written.starts_with("slipenc:v1:"), "{written}");
    assert!(!written.contains(APP_KEY), "{written}");
    assert_eq!(mode(&store.join("myapp/SLIP_SECRET")), 0o600);
    let listed = slip(&["secrets", "list", "myapp", "--json"], &[("SLIP_CONFIG", config)], None).await;
    assert_eq!(listed.code, 0, "{}", listed.all());

    // A file written by hand before encryption was turned on is re-encrypted when slipd starts.
    let hand_written = "hand-written-value-123";
    std::fs::write(store.join("myapp/HAND_WRITTEN"), format!("{hand_written}\n")).unwrap();
    let slipd = setup.start(&["myapp"]).await;
    let migrated = std::fs::read_to_string(store.join("myapp/HAND_WRITTEN")).unwrap();
    assert!(migrated.starts_with("slipenc:v1:") && !migrated.contains(hand_written), "{migrated}");
    // slipd decrypts the app's webhook key, and its API encrypts what it writes.
    let (status, body) = slipd.webhook("myapp", "sha-abc123f", APP_KEY).await;
    assert_eq!(status, 202, "{body}");
    let (status, body) = slipd
        .admin(Method::PUT, "/v1/secrets/myapp/API_TOKEN", GLOBAL, Some(r#"{"value":"api-token-value-42"}"#))
        .await;
    assert!(status == 200 || status == 201, "{status}: {body}");
    let via_api = std::fs::read_to_string(store.join("myapp/API_TOKEN")).unwrap();
    assert!(via_api.starts_with("slipenc:v1:") && !via_api.contains("api-token-value-42"), "{via_api}");
    slipd.stop().await;

    for value in [APP_KEY, hand_written, "api-token-value-42"] {
        assert!(setup.files_containing(value).is_empty(), "{value} is stored in plain text somewhere");
        assert_not_logged(value);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn local_mode_reads_secrets_sealed_with_either_key_of_an_unfinished_rotation() {
    require_default_address_free();
    let keys = tempfile::tempdir().unwrap();
    let key_file = keys.path().join("master.key");
    let old = slip_engine::secrets::MasterKey::create_file(&key_file).unwrap();
    let setup = Setup::new(myapp, &format!("\n[secrets]\nkey_file = \"{}\"\n", key_file.display()));
    let config = setup.config_dir();
    let config = config.to_str().unwrap();
    for pair in ["ONE_KEY=first-value-123", "TWO_KEY=second-value-456"] {
        let run = slip(&["secrets", "set", "myapp", pair], &[("SLIP_CONFIG", config)], None).await;
        assert_eq!(run.code, 0, "{}", run.all());
    }
    // `slipd --rotate-key` stopped after re-sealing one secret: one file under each key.
    let storage = setup.storage();
    let stopped = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        slip_engine::secrets::rotate::rotate(&storage, &key_file, &mut |stage| {
            assert_ne!(stage, slip_engine::secrets::rotate::Stage::Resealed(1), "stop here");
        })
    }));
    assert!(stopped.is_err());
    let ids: Vec<String> = ["ONE_KEY", "TWO_KEY"]
        .iter()
        .map(|k| std::fs::read_to_string(storage.join("secrets/myapp").join(k)).unwrap()[11..19].to_owned())
        .collect();
    assert_eq!(ids.iter().filter(|id| **id == old.id()).count(), 1, "{ids:?}");

    let listed = slip(&["secrets", "list", "myapp", "--json"], &[("SLIP_CONFIG", config)], None).await;
    assert_eq!(listed.code, 0, "local mode reads both keys: {}", listed.all());
    let json: serde_json::Value = serde_json::from_str(&listed.stdout).unwrap();
    assert_eq!(json["secrets"].as_array().unwrap().len(), 2, "{json}");
}
