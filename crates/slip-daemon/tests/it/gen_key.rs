//! The `slipd` binary's own command line: `--gen-key PATH` (SPEC §11.2) writes a new key file, mode 0600, never
//! overwritten; at start-up slipd logs the engine it picked and the warnings `--check` prints.

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

#[test]
fn gen_key_writes_a_private_key_file_and_never_overwrites_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("master.key");
    let out = Command::new(env!("CARGO_BIN_EXE_slipd")).arg("--gen-key").arg(&path).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains(&path.display().to_string()), "{stdout}");
    assert!(stdout.contains(&format!("[secrets]\nkey_file = \"{}\"", path.display())), "{stdout}");
    let meta = std::fs::metadata(&path).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    let key = std::fs::read_to_string(&path).unwrap();
    assert_eq!(key.trim().len(), 64);
    assert!(!stdout.contains(key.trim()), "the key is never printed");
    slip_engine::secrets::MasterKey::load(&path).expect("slipd reads what --gen-key writes");

    let again = Command::new(env!("CARGO_BIN_EXE_slipd")).arg("--gen-key").arg(&path).output().unwrap();
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(!again.status.success());
    assert!(stderr.contains("already exists; slipd --gen-key never overwrites a key"), "{stderr}");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), key, "left as it was");
}

#[tokio::test(flavor = "multi_thread")]
async fn at_start_up_slipd_logs_the_engine_it_picked_and_the_check_warnings() {
    let app = crate::support::app_name("startlog");
    let worker = format!("[app]\nname = \"{app}\"\nimage = \"127.0.0.1:9/{app}\"\nsecret = \"too-short-app-key\"\n");
    let mut slipd = crate::support::SlipdProcess::new(vec![(app.clone(), worker)], Default::default());
    slipd.start(&[]).await;
    let log = slipd.log();
    assert!(log.contains("app.secret is shorter than 32 characters"), "{log}");
    let engine = log.lines().find(|l| l.contains("container engine connected")).unwrap_or_default();
    assert!(engine.contains("backend") && engine.contains("\"docker\""), "{log}");
    assert!(!log.contains("too-short-app-key"), "the warning names the key, never its value: {log}");
    assert!(slipd.terminate(std::time::Duration::from_secs(60)).await.success());
}

#[test]
fn print_config_masks_literal_secrets_and_keeps_placeholders() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("apps")).unwrap();
    let storage = dir.path().join("state");
    std::fs::write(
        dir.path().join("slip.toml"),
        format!(
            "[auth]\nsecret = \"${{SLIP_SECRET}}\"\nadmin_token = \"literal-admin-token-0123456789abcdef\"\n\
             metrics_token = \"literal-metrics-token-0123456789abcd\"\n\n[storage]\npath = \"{}\"\n",
            storage.display()
        ),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("apps/web.toml"),
        "[app]\nname = \"web\"\nimage = \"127.0.0.1:9/web\"\nsecret = \"literal-app-key-0123456789abcdefgh\"\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_slipd"))
        .args(["--print-config", "--config"])
        .arg(dir.path())
        .env("SLIP_SECRET", "resolved-value-never-shown-0123456789")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("# slip.toml\n[auth]\nsecret = \"${SLIP_SECRET}\"\nadmin_token = \"***\"\n"), "{stdout}");
    assert!(stdout.contains("metrics_token = \"***\""), "{stdout}");
    assert!(stdout.contains("# apps/web.toml\n") && stdout.contains("secret = \"***\""), "{stdout}");
    for secret in ["literal-admin", "literal-metrics", "literal-app-key", "resolved-value"] {
        assert!(!stdout.contains(secret), "{secret} shown: {stdout}");
    }
}

#[test]
fn check_online_says_which_of_the_engine_and_caddy_answers() {
    let dir = tempfile::tempdir().unwrap();
    // Nothing listens on port 9 of the loopback: Caddy's admin API is unreachable; the engine is Docker.
    let slip_toml = format!(
        "[runtime]\nbackend = \"docker\"\n[caddy]\nadmin_api = \"http://127.0.0.1:9\"\n[storage]\npath = \"{}\"\n",
        dir.path().join("state").display()
    );
    std::fs::write(dir.path().join("slip.toml"), slip_toml).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_slipd"))
        .args(["--check", "--online", "--config"])
        .arg(dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.starts_with("✓ Configuration is valid (0 apps"), "{stdout}");
    assert!(stdout.contains("✓ container engine answers (docker)\n"), "{stdout}");
    assert!(stdout.contains("✗ Caddy's admin API at http://127.0.0.1:9 (caddy.admin_api): "), "{stdout}");

    let caddy = slip_testenv::caddy::Caddy::start();
    let slip_toml = format!(
        "[runtime]\nbackend = \"docker\"\n[caddy]\nadmin_api = \"{}\"\n[storage]\npath = \"{}\"\n",
        caddy.admin_url(),
        dir.path().join("state").display()
    );
    std::fs::write(dir.path().join("slip.toml"), slip_toml).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_slipd"))
        .args(["--check", "--online", "--config"])
        .arg(dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("✓ Caddy's admin API answers at"), "{stdout}");
}
