//! slipd's storage on a small file system that fills up (issue 15), between deploys and in the middle of one:
//! webhooks get 503 `storage_unavailable` (never a 500), a deploy that cannot record its switch fails with that
//! reason and leaves the running release serving (every answer checked under load), the database stays intact,
//! and slipd recovers by itself once space is freed. The file system is a 24 MiB tmpfs each test mounts and
//! unmounts.

use std::path::{Path, PathBuf};

use slip_testenv::Image;

use crate::support::{Load, SECRET, TOKEN, TestDaemon, app_name, web_app, web_app_with_image};

/// A tmpfs mounted at a path, unmounted (lazily: slipd's files may still be open) on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(at).unwrap();
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size},mode=0700"), "tmpfs"])
            .arg(at)
            .status()
            .expect("running mount");
        assert!(status.success(), "mount -t tmpfs failed (the test needs root): {status}");
        Tmpfs(at.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Writes `path` until the file system is full; returns the bytes written.
fn fill(path: &Path) -> u64 {
    use std::io::Write;
    let mut file = std::fs::File::create(path).unwrap();
    let chunk = vec![0u8; 64 * 1024];
    let mut written = 0u64;
    loop {
        match file.write(&chunk) {
            Ok(0) => break,
            Ok(n) => written += n as u64,
            Err(e) if e.kind() == std::io::ErrorKind::StorageFull => break,
            Err(e) => panic!("filling {}: {e}", path.display()),
        }
    }
    let _ = file.sync_all();
    written
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_disk_refuses_webhooks_with_503_keeps_serving_and_recovers_when_space_returns() {
    let app = app_name("full");
    let a = app.clone();
    let mut mounted = None;
    let d = TestDaemon::start_with_storage(
        |reg, storage| {
            mounted = Some(Tmpfs::mount(storage, "24m"));
            vec![(a.clone(), web_app(&a, reg, ""))]
        },
        "",
    )
    .await;
    let _mounted = mounted.expect("mounted before boot");
    d.push(&Image::V1, &app, "v1");
    d.push(&Image::V2, &app, "v2");
    let host = format!("{app}.test");
    assert_eq!(d.deploy_and_wait(&app, "v1").await.status, "completed");

    let filler = d.storage().join("filler");
    assert!(fill(&filler) > 0);
    // SQLite may still have room in pages it already owns; each webhook writes more, so one is refused soon.
    let mut refused = None;
    for n in 0..400 {
        let (status, body) = d.webhook(&app, &format!("never-{n}"), SECRET).await;
        match status {
            202 => continue,
            503 => {
                refused = Some(body);
                break;
            }
            other => panic!("webhook {n} on a full disk: {other} {body}"),
        }
    }
    let refused = refused.expect("a webhook was refused once the disk was full");
    assert_eq!(refused["code"], "storage_unavailable", "{refused}");
    assert_eq!(d.through_caddy(&host, "/version").await, (200, "v1".to_owned()), "the running release serves");
    assert_eq!(d.status().await["apps"][&app]["tag"], "v1");

    std::fs::remove_file(&filler).unwrap();
    let done = d.deploy_and_wait(&app, "v2").await;
    assert_eq!(done.status, "completed", "slipd recovered by itself once space was freed: {done:?}");
    assert_eq!(d.through_caddy(&host, "/version").await, (200, "v2".to_owned()));
    // Nothing is left half-done: every deploy accepted around the full disk has ended.
    assert_every_deploy_ended(&d, &app).await;
    assert_intact(&d.storage());
}

/// Every deploy of `app` has ended.
async fn assert_every_deploy_ended(d: &TestDaemon, app: &str) {
    let list: serde_json::Value = d
        .http
        .get(d.url(&format!("/v1/deploys?app={app}&limit=200")))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for deploy in list["deploys"].as_array().unwrap() {
        let status = deploy["status"].as_str().unwrap();
        assert!(matches!(status, "completed" | "failed" | "superseded" | "rolled_back"), "{deploy}");
    }
}

/// `PRAGMA integrity_check` of slipd's database says `ok`.
fn assert_intact(storage: &Path) {
    let check = std::process::Command::new("sqlite3")
        .arg(storage.join("slip.db"))
        .arg("PRAGMA integrity_check;")
        .output()
        .expect("running sqlite3");
    assert_eq!(String::from_utf8_lossy(&check.stdout).trim(), "ok", "the database is intact");
}

/// Sends webhooks for tags that do not exist until one is refused with 503 `storage_unavailable`: SQLite has used
/// up the pages it already owned, so its next write fails too.
async fn until_refused(d: &TestDaemon, app: &str) {
    for n in 0..400 {
        let (status, body) = d.webhook(app, &format!("never-{n}"), SECRET).await;
        match status {
            202 => continue,
            503 => {
                assert_eq!(body["code"], "storage_unavailable", "{body}");
                return;
            }
            other => panic!("webhook {n} on a full disk: {other} {body}"),
        }
    }
    panic!("no webhook was refused on a full disk");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_disk_that_fills_mid_deploy_fails_it_with_the_reason_keeps_serving_and_recovers_when_space_returns() {
    let app = app_name("fullmid");
    let a = app.clone();
    let mut mounted = None;
    let d = TestDaemon::start_with_storage(
        |reg, storage| {
            mounted = Some(Tmpfs::mount(storage, "24m"));
            // A 10 s start period, so v2's slow start is not a failed health check.
            vec![(a.clone(), web_app_with_image(&a, &format!("{reg}/{a}"), ""))]
        },
        "",
    )
    .await;
    let _mounted = mounted.expect("mounted before boot");
    d.push(&Image::V1, &app, "v1");
    // Long enough in health_checking for the test to fill the disk before the switch.
    d.push(&Image::slow_start(8).with_version("v2"), &app, "v2");
    d.push(&Image::release("v3"), &app, "v3");
    let host = format!("{app}.test");
    assert_eq!(d.deploy_and_wait(&app, "v1").await.status, "completed");

    // v2 answers right too, for the moment between the switch and the switch back.
    let load = Load::start(d.caddy.http_port(), &host, "/version", 2, &["v1", "v2"]);
    let accepted = d.deploy(&app, "v2").await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while d.get_deploy(&accepted.deploy_id).await.status != "health_checking" {
        assert!(std::time::Instant::now() < deadline, "the deploy never reached health_checking");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let filler = d.storage().join("filler");
    assert!(fill(&filler) > 0);
    until_refused(&d, &app).await;
    assert_eq!(d.get_deploy(&accepted.deploy_id).await.status, "health_checking", "v2 was still starting");

    // The switch cannot be recorded: the deploy routes back to v1 and removes v2, all while the disk is full.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while d.running_containers(&app).len() != 1 {
        assert!(
            std::time::Instant::now() < deadline,
            "the candidate was never removed: {:?}",
            d.running_containers(&app)
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(d.through_caddy(&host, "/version").await, (200, "v1".to_owned()), "the running release serves");

    std::fs::remove_file(&filler).unwrap();
    let failed = d.wait_deploy(&accepted.deploy_id, std::time::Duration::from_secs(60)).await;
    assert_eq!(failed.status, "failed", "{failed:?}");
    let code = failed.detail.as_ref().and_then(|detail| detail.error_code.clone());
    assert_eq!(code.as_deref(), Some("storage_unavailable"), "{failed:?}");
    let error = failed.error.clone().unwrap_or_default();
    assert!(error.contains("full"), "the reason says the disk is full: {error}");
    assert_eq!(d.through_caddy(&host, "/version").await, (200, "v1".to_owned()));
    let report = load.stop().await;
    report.assert_every_answer_right(50);

    let done = d.deploy_and_wait(&app, "v3").await;
    assert_eq!(done.status, "completed", "slipd recovered by itself once space was freed: {done:?}");
    assert_eq!(d.through_caddy(&host, "/version").await, (200, "v3".to_owned()));
    assert_every_deploy_ended(&d, &app).await;
    assert_intact(&d.storage());
}
