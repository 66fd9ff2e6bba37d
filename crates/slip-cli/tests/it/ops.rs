//! `slip cancel`, `slip redeploy`, `slip secrets set --redeploy` and `slip audit --verify` against a real slipd,
//! Docker, Caddy and registry.

use std::time::Duration;

use slip_testenv::Image;

use crate::support::{GLOBAL, Setup, app_name, slip, web_app};

#[tokio::test(flavor = "multi_thread")]
async fn redeploy_applies_new_secrets_cancel_refuses_a_finished_deploy_and_audit_verify_finds_a_tampered_row() {
    let app = app_name("cli-ops");
    let a = app.clone();
    let setup = Setup::new(|reg| vec![(a.clone(), web_app(&a, reg))], "");
    setup.registry.push(&Image::V1, &app, "v1");
    let slipd = setup.start(&[&app]).await;
    let server = slipd.base();
    let admin = [("SLIP_SERVER", server.as_str()), ("SLIP_TOKEN", GLOBAL)];

    let run = slip(&["redeploy", &app], &admin, None).await;
    assert_eq!(run.code, 7, "nothing to redeploy yet: {}", run.all());
    assert!(run.stderr.contains("no current release to redeploy"), "{}", run.all());

    let run = slip(&["deploy", &app, "v1", "--secret", GLOBAL], &[("SLIP_SERVER", server.as_str())], None).await;
    assert_eq!(run.code, 0, "{}", run.all());
    let first = run.stdout.lines().next().unwrap().split(' ').nth(1).unwrap().to_owned();

    let run = slip(&["cancel", &first], &admin, None).await;
    assert_eq!(run.code, 7, "{}", run.all());
    assert!(run.stderr.contains("already ended completed"), "{}", run.all());

    // A new secret value reaches the container through the redeploy, and the redeploy ran the same digest.
    let run = slip(&["secrets", "set", &app, "FEATURE_FLAG=blue-and-green-42", "--redeploy"], &admin, None).await;
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(
        run.stdout.contains(&format!("of {app}@v1 accepted")) && run.stdout.contains("✓ completed in "),
        "{}",
        run.all()
    );
    let env = docker_env(&app);
    assert!(env.iter().any(|e| e == "FEATURE_FLAG=blue-and-green-42"), "{env:?}");
    let run = slip(&["history", &app, "--json"], &admin, None).await;
    let list: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    let deploys = list["deploys"].as_array().unwrap();
    assert_eq!(deploys[0]["trigger"], "redeploy");
    assert_eq!(deploys[0]["images"], deploys[1]["images"], "same digest: {list}");

    let run = slip(&["audit", "--verify"], &admin, None).await;
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(run.stdout.contains("app.redeploy") && run.stdout.contains("✓ audit chain intact"), "{}", run.all());
    let db = rusqlite::Connection::open(setup.storage().join("slip.db")).unwrap();
    db.busy_timeout(Duration::from_secs(5)).unwrap();
    let changed =
        db.execute("UPDATE audit_log SET detail = 'nothing to see' WHERE action = 'app.redeploy'", []).unwrap();
    assert_eq!(changed, 1);
    let run = slip(&["audit", "--verify"], &admin, None).await;
    assert_eq!(run.code, 1, "{}", run.all());
    assert!(run.stdout.contains("✗ audit chain broken at entry"), "{}", run.all());
    slipd.stop().await;
}

/// The environment of the app's running container.
fn docker_env(app: &str) -> Vec<String> {
    let ps = std::process::Command::new("docker")
        .args(["ps", "-q", "--filter", &format!("label=slip.app={app}")])
        .output()
        .unwrap();
    let id = String::from_utf8(ps.stdout).unwrap().trim().to_owned();
    let out = std::process::Command::new("docker")
        .args(["inspect", "--format", "{{range .Config.Env}}{{println .}}{{end}}", &id])
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap().lines().map(str::to_owned).collect()
}
