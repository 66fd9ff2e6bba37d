//! The image's own `/slip/slip.toml` (SPEC §5, §7.3), read at `configuring` through an extract container on the
//! engine slipd runs, on Docker and on Podman: it fills what the server file leaves out, its unknown keys are
//! warnings, a config for another app or of another kind fails the deploy with its code and leaves the running
//! release alone, and no extract container outlives the deploy.

use slip_testenv::Image;

use crate::support::{Engine, TestDaemon, app_name};

/// A server file that names the hostname only: the port and the health path come from the image.
fn server_file(name: &str, registry: &str) -> String {
    format!(
        r#"[app]
name = "{name}"
image = "{registry}/{name}"

[routing]
domain = "{name}.test"

[health]
interval = "200ms"
timeout = "2s"
retries = 3
start_period = "5s"

[deploy]
drain_timeout = "5s"
stop_grace = "2s"
"#
    )
}

/// The repo config of `name`: port, health path, and a key from a newer slip.
fn repo_file(name: &str) -> String {
    format!(
        "[app]\nname = \"{name}\"\nfrom_the_future = true\n\n[routing]\nport = 8080\n\n[health]\npath = \"/health\"\n"
    )
}

/// Extract containers slipd made from `image` that still exist, on `engine`.
fn extract_leftovers(engine: Engine, image: &str) -> Vec<String> {
    let out = std::process::Command::new(engine.program())
        .args(["ps", "-aq", "--filter", "label=slip.role=extract", "--filter", &format!("ancestor={image}")])
        .output()
        .expect("engine ps");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).lines().map(str::to_owned).collect()
}

pub async fn the_images_repo_config_settles_the_deploy(engine: Engine) {
    let app = app_name("repo");
    let a = app.clone();
    let d = TestDaemon::start_on(engine, |reg| vec![(a.clone(), server_file(&a, reg))], "").await;
    let v1 = d.push(&Image::V1.with_file("/slip/slip.toml", repo_file(&app)), &app, "v1");
    let other = d.push(&Image::V2.with_file("/slip/slip.toml", repo_file("someone-else")), &app, "other");
    let worker = d.push(&Image::V2.with_file("/slip/slip.toml", "[app]\nkind = \"worker\"\n"), &app, "worker");
    let host = format!("{app}.test");

    let first = d.deploy_and_wait(&app, "v1").await;
    assert_eq!(first.status, "completed", "the port and health path come from the image: {first:?}");
    assert_eq!(d.through_caddy(&host, "/version").await, (200, "v1".to_owned()));
    let detail = first.detail.clone().expect("admin view");
    let warned = detail
        .events
        .iter()
        .filter(|e| e.kind == "warning")
        .filter_map(|e| e.message.as_deref())
        .any(|m| m.contains("/slip/slip.toml:3:1") && m.contains("from_the_future"));
    assert!(warned, "an unknown repo key is a warning naming file and line: {:?}", detail.events);
    let serving = d.running_containers(&app);

    let mismatch = d.deploy_and_wait(&app, "other").await;
    assert_eq!(mismatch.status, "failed");
    let code = mismatch.detail.as_ref().and_then(|d| d.error_code.clone());
    assert_eq!(code.as_deref(), Some("repo_config_name_mismatch"), "{mismatch:?}");
    assert!(mismatch.error.as_deref().unwrap_or_default().contains("\"someone-else\""), "{mismatch:?}");

    let kind = d.deploy_and_wait(&app, "worker").await;
    assert_eq!(kind.status, "failed");
    let code = kind.detail.as_ref().and_then(|d| d.error_code.clone());
    assert_eq!(code.as_deref(), Some("kind_mismatch"), "{kind:?}");

    assert_eq!(d.running_containers(&app), serving, "the failed deploys never touched the running release");
    assert_eq!(d.all_containers(&app), serving, "and left no candidate");
    assert_eq!(d.through_caddy(&host, "/version").await, (200, "v1".to_owned()));
    for image in [&v1, &other, &worker] {
        assert_eq!(extract_leftovers(engine, image), Vec::<String>::new(), "extract containers of {image} removed");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn docker_reads_the_images_repo_config_at_configuring() {
    the_images_repo_config_settles_the_deploy(Engine::Docker).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn podman_reads_the_images_repo_config_at_configuring() {
    the_images_repo_config_settles_the_deploy(Engine::Podman).await;
}
