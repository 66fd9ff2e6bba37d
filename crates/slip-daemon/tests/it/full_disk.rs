//! slipd's storage on a small file system that fills up (issue 15): webhooks get 503 `storage_unavailable` (never a
//! 500), the running release keeps serving, the database stays intact, and slipd recovers by itself once space
//! is freed. The file system is a 24 MiB tmpfs this test mounts and unmounts.

use std::path::{Path, PathBuf};

use slip_testenv::Image;

use crate::support::{SECRET, TestDaemon, app_name, web_app};

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
    let list: serde_json::Value = d
        .http
        .get(d.url(&format!("/v1/deploys?app={app}&limit=200")))
        .bearer_auth(crate::support::TOKEN)
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

    let check = std::process::Command::new("sqlite3")
        .arg(d.storage().join("slip.db"))
        .arg("PRAGMA integrity_check;")
        .output()
        .expect("running sqlite3");
    assert_eq!(String::from_utf8_lossy(&check.stdout).trim(), "ok", "the database is intact");
}
