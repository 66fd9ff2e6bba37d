//! Pods on real Podman through its API socket, with a real Caddy and registry: the original README's pod example
//! (an `api` and a `dagster-webserver` routed by container name, a `worker` container, an init container and a
//! shared host volume), built as images that carry `/slip/slip.toml` and `/slip/pod.yaml`. The server file is the
//! README's, plus test timings: the kind, the manifest and every port come from the image.

use slip_testenv::Image;

use crate::support::{Engine, Load, ProcessConfig, SlipdProcess, TestDaemon, app_name, require_engine};

/// The repo config the images carry.
const REPO: &str = "[app]\nkind = \"pod\"\nmanifest = \"/slip/pod.yaml\"\n";

/// The pod manifest: `${tag}` images of the app's repository and of its worker repository.
fn manifest(registry: &str, app: &str, init_exit: u8) -> String {
    format!(
        r#"apiVersion: v1
kind: Pod
metadata:
  name: {app}
spec:
  initContainers:
  - name: migrate
    image: {registry}/{app}:${{tag}}
    command: ["/bin/busybox", "sh", "-c", "mkdir -p /opt/dagster/dagster_home && echo init >> /opt/dagster/dagster_home/init.log; exit {init_exit}"]
  containers:
  - name: api
    image: {registry}/{app}:${{tag}}
    ports:
    - containerPort: 8080
      hostPort: 8080
  - name: dagster-webserver
    image: {registry}/{app}:${{tag}}
    env:
    - name: PORT
      value: "3000"
    ports:
    - containerPort: 3000
      hostIP: 0.0.0.0
  - name: worker
    image: {registry}/{app}-worker:${{tag}}
    ports:
    - containerPort: 9100
      hostPort: 9100
"#
    )
}

/// The README's server file for the pod app, with `strategy` and short timings.
fn server_file(app: &str, registry: &str, storage: Option<&std::path::Path>, strategy: &str) -> String {
    let overlap = if strategy == "blue-green" { "allow_overlap = true\n" } else { "" };
    format!(
        r#"[app]
name = "{app}"
image = "{registry}/{app}"

[health]
path = "/health"
interval = "200ms"
timeout = "2s"
retries = 3
start_period = "5s"
stable_for = "1s"

[deploy]
strategy = "{strategy}"
{overlap}drain_timeout = "5s"
stop_grace = "2s"

[[routing.routes]]
hostname = "{app}.test"
container = "api"

[[routing.routes]]
hostname = "dagster-{app}.test"
container = "dagster-webserver"

{}"#,
        storage.map_or(String::new(), |s| format!(
            "[[volumes]]\nhost_path = \"{}/volumes/{app}/dagster-home\"\nmount_path = \"/opt/dagster/dagster_home\"\n",
            s.display()
        ))
    )
}

/// Removes the app's pods when dropped (the container guard removes containers only).
struct PodGuard(String);

impl Drop for PodGuard {
    fn drop(&mut self) {
        for id in pods(&self.0, true) {
            let _ = std::process::Command::new("podman").args(["pod", "rm", "-f", &id]).output();
        }
    }
}

/// Ids of the pods labelled with `app`: all of them, or the running ones.
fn pods(app: &str, all: bool) -> Vec<String> {
    let filter = format!("label=slip.app={app}");
    let mut args = vec!["pod", "ps", "-q", "--no-trunc", "--filter", &filter];
    if !all {
        args.extend(["--filter", "status=running"]);
    }
    let out = std::process::Command::new("podman").args(&args).output().expect("podman pod ps");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).lines().map(str::to_owned).collect()
}

/// Every TCP listener on `port`, as `ss -ltn` shows its local address.
fn listeners(port: u16) -> Vec<String> {
    let out = std::process::Command::new("ss").args(["-ltnH"]).output().expect("ss");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().nth(3).map(str::to_owned))
        .filter(|local| local.rsplit_once(':').is_some_and(|(_, p)| p == port.to_string()))
        .collect()
}

/// The host ports the app's running pod publishes.
fn published(app: &str) -> Vec<u16> {
    let ids = pods(app, false);
    assert_eq!(ids.len(), 1, "one running pod: {ids:?}");
    let out = std::process::Command::new("podman")
        .args(["pod", "inspect", &ids[0], "--format", "{{json .InfraConfig.PortBindings}}"])
        .output()
        .expect("podman pod inspect");
    let bindings: serde_json::Value = serde_json::from_slice(&out.stdout).expect("port bindings");
    let mut ports: Vec<u16> = bindings
        .as_object()
        .into_iter()
        .flatten()
        .flat_map(|(_, list)| list.as_array().cloned().unwrap_or_default())
        .filter_map(|b| b["HostPort"].as_str()?.parse().ok())
        .collect();
    ports.sort_unstable();
    ports
}

struct PodApp {
    d: TestDaemon,
    app: String,
    init_log: std::path::PathBuf,
    _pods: PodGuard,
}

async fn pod_app(prefix: &str, strategy: &'static str) -> PodApp {
    let app = app_name(prefix);
    let a = app.clone();
    let d = TestDaemon::start_with_storage_on(
        Engine::Podman,
        |reg, storage| vec![(a.clone(), server_file(&a, reg, Some(storage), strategy))],
        "",
    )
    .await;
    let registry = d.registry.host();
    for (tag, exit) in [("v1", 0), ("v2", 0), ("initfail", 3)] {
        let version = if tag == "initfail" { "v1" } else { tag };
        let image = Image::release(version)
            .with_file("/slip/slip.toml", REPO)
            .with_file("/slip/pod.yaml", manifest(&registry, &app, exit));
        d.push(&image, &app, tag);
        d.push(&Image::WORKER.with_version(version), &format!("{app}-worker"), tag);
    }
    let bad =
        Image::UNHEALTHY.with_file("/slip/slip.toml", REPO).with_file("/slip/pod.yaml", manifest(&registry, &app, 0));
    d.push(&bad, &app, "bad");
    d.push(&Image::WORKER.with_version("bad"), &format!("{app}-worker"), "bad");
    let init_log = d.storage().join("volumes").join(&app).join("dagster-home").join("init.log");
    PodApp { _pods: PodGuard(app.clone()), d, app, init_log }
}

fn init_runs(log: &std::path::Path) -> usize {
    std::fs::read_to_string(log).unwrap_or_default().lines().count()
}

/// First deploy, then a deploy under load through Caddy with every answer a known release's body, then an
/// unhealthy candidate and a failing init container, neither of which touches the serving pod.
async fn readme_pod(strategy: &'static str) {
    let PodApp { d, app, init_log, _pods } = pod_app("pod", strategy).await;
    let api = format!("{app}.test");
    let dagster = format!("dagster-{app}.test");

    let first = d.deploy_and_wait(&app, "v1").await;
    assert_eq!(first.status, "completed", "{first:?}");
    let detail = first.detail.clone().expect("admin view");
    assert_eq!(detail.kind.as_deref(), Some("pod"), "the kind comes from the image");
    assert_eq!(d.through_caddy(&api, "/version").await, (200, "v1".to_owned()));
    assert_eq!(d.through_caddy(&dagster, "/version").await, (200, "v1".to_owned()));
    assert_eq!(init_runs(&init_log), 1, "the init container ran once for the pod's start");
    for port in published(&app) {
        let on = listeners(port);
        assert!(
            !on.is_empty() && on.iter().all(|l| l.starts_with("127.0.0.1:")),
            "port {port} only on 127.0.0.1: {on:?}"
        );
    }
    for manifest_port in [8080, 9100] {
        assert!(
            listeners(manifest_port).iter().all(|l| !l.starts_with("0.0.0.0")),
            "manifest hostPort {manifest_port}"
        );
    }

    let load = Load::start(d.caddy.http_port(), &api, "/version", 4, &["v1", "v2"]);
    let second = d.deploy_and_wait(&app, "v2").await;
    let seen = load.stop().await;
    assert_eq!(second.status, "completed", "{second:?}");
    seen.assert_every_answer_right(20);
    assert!(seen.saw("v2"), "{seen:?}");
    assert_eq!(d.through_caddy(&dagster, "/version").await, (200, "v2".to_owned()));
    assert_eq!(pods(&app, true).len(), 1, "the old pod is removed");
    assert_eq!(init_runs(&init_log), 2, "once per pod start");

    let serving = pods(&app, false);
    let bad = d.deploy_and_wait(&app, "bad").await;
    assert_eq!(bad.status, "failed");
    assert_eq!(bad.detail.as_ref().and_then(|d| d.error_code.as_deref()), Some("unhealthy"), "{bad:?}");
    assert!(bad.error.as_deref().unwrap_or_default().contains("api"), "the failure names the container: {bad:?}");
    assert_eq!(d.through_caddy(&api, "/version").await, (200, "v2".to_owned()));

    let init = d.deploy_and_wait(&app, "initfail").await;
    assert_eq!(init.status, "failed");
    assert_eq!(init.detail.as_ref().and_then(|d| d.error_code.as_deref()), Some("init_failed"), "{init:?}");
    assert_eq!(d.through_caddy(&api, "/version").await, (200, "v2".to_owned()));
    assert_eq!(pods(&app, false), serving, "the serving pod is the one from v2");
    assert_eq!(pods(&app, true).len(), 1, "no failed candidate left behind");
}

#[tokio::test(flavor = "multi_thread")]
async fn podman_readme_pod_recreate_under_load() {
    readme_pod("recreate").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn podman_readme_pod_blue_green_under_load() {
    readme_pod("blue-green").await;
}

/// A webhook `images` override moves one container's tag; a repository the app may not use is refused before
/// anything is pulled.
#[tokio::test(flavor = "multi_thread")]
async fn podman_multi_image_override_and_foreign_repository() {
    let PodApp { d, app, _pods, .. } = pod_app("podimg", "recreate").await;
    let registry = d.registry.host();
    let foreign = d.push(&Image::WORKER.with_version("evil"), &format!("{app}-evil"), "v1");

    let moved = format!("{registry}/{app}-worker:v2");
    let over = d.deploy_body_and_wait(serde_json::json!({"app": app, "tag": "v1", "images": {"worker": moved}})).await;
    assert_eq!(over.status, "completed", "{over:?}");
    let images = over.detail.clone().expect("admin view").images;
    assert!(images["worker"].starts_with(&format!("{registry}/{app}-worker@sha256:")), "{images:?}");
    assert!(images["api"].starts_with(&format!("{registry}/{app}@sha256:")), "{images:?}");
    let worker_v2 = std::process::Command::new("podman")
        .args(["image", "inspect", "--format", "{{.Digest}}", &moved])
        .output()
        .expect("podman image inspect");
    let digest = String::from_utf8_lossy(&worker_v2.stdout).trim().to_owned();
    assert!(images["worker"].ends_with(&digest), "the worker runs v2's digest {digest}: {images:?}");
    // `slip logs --container worker`: that container's output only, by its manifest name.
    let (status, body) = crate::logs::logs(&d, &app, "container=worker&tail=50").await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("v2") && !body.contains("v1"), "the worker's own lines (it runs v2): {body}");
    let (status, body) = crate::logs::logs(&d, &app, "container=nope").await;
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("api") && body.contains("dagster-webserver") && body.contains("worker"), "{body}");

    let refused =
        d.deploy_body_and_wait(serde_json::json!({"app": app, "tag": "v2", "images": {"worker": foreign}})).await;
    assert_eq!(refused.status, "failed");
    assert_eq!(refused.detail.as_ref().and_then(|d| d.error_code.as_deref()), Some("image_not_allowed"), "{refused:?}");
    let pulled = std::process::Command::new("podman").args(["image", "exists", &foreign]).status().expect("podman");
    assert!(!pulled.success(), "the foreign image was never pulled");
}

/// `kill -9` of slipd while a pod deploy is health-checking: after a restart there is one pod, it serves the new
/// release, and the deploy's record is terminal.
#[tokio::test(flavor = "multi_thread")]
async fn podman_kill_9_during_a_pod_deploy_converges_to_one_serving_pod() {
    require_engine(Engine::Podman);
    let registry = slip_testenv::Registry::start();
    let app = app_name("podkill");
    let _pods = PodGuard(app.clone());
    let reg = registry.host();
    let with_files =
        |image: Image| image.with_file("/slip/slip.toml", REPO).with_file("/slip/pod.yaml", manifest(&reg, &app, 0));
    registry.push(&with_files(Image::V1), &app, "v1");
    // v2 sleeps 4 s before it listens, so the deploy is still health-checking when slipd is killed.
    registry.push(&with_files(Image::slow_start(4).with_version("v2")), &app, "v2");
    for tag in ["v1", "v2"] {
        registry.push(&Image::WORKER.with_version(tag), &format!("{app}-worker"), tag);
    }
    let config = server_file(&app, &reg, None, "recreate");
    let mut slipd = SlipdProcess::new(
        vec![(app.clone(), config)],
        ProcessConfig { engine: Engine::Podman, ..ProcessConfig::default() },
    );
    slipd.start(&[]).await;
    let api = slipd.api.clone();
    let host = format!("{app}.test");
    assert_eq!(api.deploy_and_wait(&app, "v1").await.status, "completed", "{}", slipd.log());

    let second = api.deploy(&app, "v2").await;
    api.wait_status(&second.deploy_id, &["health_checking"], std::time::Duration::from_secs(90)).await;
    slipd.signal("KILL");
    let exit = slipd.wait_exit(std::time::Duration::from_secs(30)).await;
    assert_eq!(std::os::unix::process::ExitStatusExt::signal(&exit), Some(9), "slipd was killed: {exit:?}");

    slipd.start(&[]).await;
    let done = api.wait_deploy(&second.deploy_id, std::time::Duration::from_secs(180)).await;
    assert_eq!(done.status, "completed", "after the restart: {done:?}\n{}", slipd.log());
    assert_eq!(api.through_caddy(&host, "/version").await, (200, "v2".to_owned()));
    let all = pods(&app, true);
    assert_eq!(all.len(), 1, "exactly one pod of {app} (no orphan): {all:?}\n{}", slipd.log());
    assert_eq!(pods(&app, false), all, "and it runs");
    assert!(slipd.terminate(std::time::Duration::from_secs(60)).await.success(), "slipd stopped cleanly on SIGTERM");
}
