//! Real apps beyond one HTTP container (SPEC §4, §7.5, §8.2), against real Docker, Caddy and a registry:
//! workers that never run twice, volumes whose data survives redeploys, several routes that switch together,
//! and the container's environment and resource limits.
//!
//! The web images here serve CGI scripts through busybox httpd: `/etc/httpd.conf` maps `*.sh` to `/bin/sh`, so
//! a script added with `Image::with_file` (mode 0644, never executable) still runs as `/cgi-bin/<name>.sh`.
//! Rollback to an older release (and its view of a volume) is the rollback suite's, not this module's.

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use slip_testenv::Image;

use crate::support::{Engine, SECRET, TestDaemon, app_name, web_app};

/// Lets busybox httpd run `*.sh` CGI scripts without an executable bit.
const HTTPD_CONF: &str = "*.sh:/bin/sh\n";

/// `GET /cgi-bin/env.sh`: the container's environment as `KEY=VALUE` lines.
const ENV_CGI: &str = "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\n'\nenv\n";

/// A worker app (no routing) whose `/data` is `volume`, healthy once it has run for `stable_for`.
fn worker_app(name: &str, registry: &str, volume: Option<&Path>, stable_for: &str, deploy_extra: &str) -> String {
    let volume = volume
        .map(|path| format!("\n[[volumes]]\nhost_path = \"{}\"\nmount_path = \"/data\"\n", path.display()))
        .unwrap_or_default();
    format!(
        r#"[app]
name = "{name}"
image = "{registry}/{name}"

[health]
stable_for = "{stable_for}"

[deploy]
stop_grace = "5s"
{deploy_extra}
{volume}"#
    )
}

/// Workers are recreated: two redeploys never have two copies running, and the worker's own append-only
/// record on its volume shows strictly sequential runs.
#[tokio::test(flavor = "multi_thread")]
async fn worker_redeploys_never_run_two_copies() {
    worker_redeploys_never_run_two_copies_on(Engine::Docker).await;
}

/// Two worker redeploys on `engine`: never two copies at once, strictly sequential runs in the worker's record.
pub(crate) async fn worker_redeploys_never_run_two_copies_on(engine: Engine) {
    let app = app_name("worker");
    let a = app.clone();
    let d = TestDaemon::start_with_storage_on(
        engine,
        |reg, storage| {
            let volume = storage.join("volumes").join(&a).join("data");
            vec![(a.clone(), worker_app(&a, reg, Some(&volume), "1s", ""))]
        },
        "",
    )
    .await;
    let volume = d.storage().join("volumes").join(&app).join("data");
    for v in ["w1", "w2", "w3"] {
        d.push(&Image::WORKER.with_version(v), &app, v);
    }

    let first = d.deploy_and_wait(&app, "w1").await;
    assert_eq!(first.status, "completed", "{first:?}");
    let detail = first.detail.unwrap();
    assert_eq!((detail.kind.as_deref(), detail.strategy.as_deref()), (Some("worker"), Some("recreate")));
    let mode = std::fs::metadata(&volume).expect("slipd created the volume directory").permissions().mode();
    assert_eq!(mode & 0o777, 0o750, "volume directories are created with mode 0750");

    let sampler = RunningSampler::start(engine, &app);
    for v in ["w2", "w3"] {
        let deploy = d.deploy_and_wait(&app, v).await;
        assert_eq!(deploy.status, "completed", "{deploy:?}");
        let steps: Vec<String> = deploy.detail.unwrap().steps.into_iter().map(|s| s.status).collect();
        assert_eq!(steps, ["pulling", "configuring", "draining", "starting", "health_checking", "switching"]);
    }
    let counts = sampler.stop();
    assert!(counts.len() >= 10, "the sampler ran during both deploys ({} samples)", counts.len());
    assert_eq!(counts.iter().max(), Some(&1), "never two workers at once: {counts:?}");
    assert_eq!(d.running_containers(&app).len(), 1);
    assert_eq!(d.all_containers(&app).len(), 1, "old workers are removed");

    let runs = worker_log(&volume);
    assert_eq!(runs, [("start", "w1"), ("stop", "w1"), ("start", "w2"), ("stop", "w2"), ("start", "w3")].map(owned));

    let caddy_config = d.caddy.admin("GET", "/config/", None).body;
    assert!(!caddy_config.contains(&format!("\"slip-{app}")), "a worker has no route: {caddy_config}");
    let status = d.status().await;
    assert_eq!(status["apps"][&app]["kind"], "worker", "{status}");
    assert_eq!(status["apps"][&app]["tag"], "w3", "{status}");
}

/// `strategy = "blue-green"` is honoured for a worker when asked for: the new copy runs beside the old one
/// until it has been stable, then the old one is stopped.
#[tokio::test(flavor = "multi_thread")]
async fn worker_runs_blue_green_when_asked_explicitly() {
    let app = app_name("worker-bg");
    let a = app.clone();
    let d =
        TestDaemon::start(|reg| vec![(a.clone(), worker_app(&a, reg, None, "2s", "strategy = \"blue-green\""))], "")
            .await;
    d.push(&Image::WORKER.with_version("w1"), &app, "w1");
    d.push(&Image::WORKER.with_version("w2"), &app, "w2");
    assert_eq!(d.deploy_and_wait(&app, "w1").await.status, "completed");

    let sampler = RunningSampler::start(Engine::Docker, &app);
    let deploy = d.deploy_and_wait(&app, "w2").await;
    let counts = sampler.stop();
    assert_eq!(deploy.status, "completed", "{deploy:?}");
    let detail = deploy.detail.unwrap();
    assert_eq!(detail.strategy.as_deref(), Some("blue-green"));
    let steps: Vec<String> = detail.steps.into_iter().map(|s| s.status).collect();
    assert_eq!(steps, ["pulling", "configuring", "starting", "health_checking", "switching", "draining"]);
    assert_eq!(counts.iter().max(), Some(&2), "both workers ran during the 2s stable period: {counts:?}");
    assert_eq!(d.running_containers(&app).len(), 1);
    assert_eq!(d.all_containers(&app).len(), 1);
}

/// A worker that exits during its stable period fails the deploy with `exited`, and the stopped previous
/// worker is started again (its record shows it ran again after the failed attempt).
#[tokio::test(flavor = "multi_thread")]
async fn crashing_worker_fails_and_the_previous_worker_runs_again() {
    let app = app_name("worker-crash");
    let a = app.clone();
    let d = TestDaemon::start_with_storage(
        |reg, storage| {
            let volume = storage.join("volumes").join(&a).join("data");
            vec![(a.clone(), worker_app(&a, reg, Some(&volume), "1s", ""))]
        },
        "",
    )
    .await;
    let volume = d.storage().join("volumes").join(&app).join("data");
    d.push(&Image::WORKER.with_version("w1"), &app, "w1");
    d.push(&Image::CRASHING, &app, "crash");
    assert_eq!(d.deploy_and_wait(&app, "w1").await.status, "completed");
    let before = d.running_containers(&app);

    let failed = d.deploy_and_wait(&app, "crash").await;
    assert_eq!(failed.status, "failed");
    assert_eq!(failed.detail.as_ref().unwrap().error_code.as_deref(), Some("exited"), "{failed:?}");
    assert!(failed.error.as_deref().unwrap_or("").ends_with("previous release restored"), "{failed:?}");
    assert_eq!(d.running_containers(&app), before, "the previous worker's container runs again");
    assert_eq!(d.all_containers(&app).len(), 1, "the crashed candidate is removed");
    assert_eq!(worker_log(&volume), [("start", "w1"), ("stop", "w1"), ("start", "w1")].map(owned));
}

/// A file that release 1 writes into a volume is there for release 2; a read-only volume cannot be written; a
/// directory slipd creates gets mode 0750 and the volume's `owner`.
#[tokio::test(flavor = "multi_thread")]
async fn volume_data_written_by_one_release_is_read_by_the_next() {
    let app = app_name("volume");
    let a = app.clone();
    let d = TestDaemon::start_with_storage(
        |reg, storage| {
            let root = storage.join("volumes").join(&a);
            let volumes = format!(
                "\n[[volumes]]\nhost_path = \"{}\"\nmount_path = \"/www/data\"\nowner = \"4321:4322\"\n\n\
                 [[volumes]]\nhost_path = \"{}\"\nmount_path = \"/www/ro\"\nread_only = true\n",
                root.join("data").display(),
                root.join("seed").display()
            );
            vec![(a.clone(), web_app(&a, reg, &volumes))]
        },
        "",
    )
    .await;
    let root = d.storage().join("volumes").join(&app);
    // The read-only volume holds data the operator put there before the first deploy.
    std::fs::create_dir_all(root.join("seed")).unwrap();
    std::fs::write(root.join("seed").join("seed"), "seeded\n").unwrap();
    let writer = |version: &str| {
        Image::release(version).with_file("/etc/httpd.conf", HTTPD_CONF).with_file(
            "/www/cgi-bin/write.sh",
            format!(
                "#!/bin/sh\necho 'written by {version}' > /www/data/note\n\
                 if (echo x > /www/ro/probe) 2>/dev/null; then ro=writable; else ro=read-only; fi\n\
                 printf 'Content-Type: text/plain\\r\\n\\r\\n%s\\n' \"$ro\"\n"
            ),
        )
    };
    d.push(&writer("v1"), &app, "v1");
    d.push(&Image::V2.with_file("/etc/httpd.conf", HTTPD_CONF), &app, "v2");
    let host = format!("{app}.test");

    let first = d.deploy_and_wait(&app, "v1").await;
    assert_eq!(first.status, "completed", "{first:?}");
    assert_eq!(
        first.detail.unwrap().strategy.as_deref(),
        Some("recreate"),
        "an app with a writable volume is recreated by default"
    );
    let created = std::fs::metadata(root.join("data")).unwrap();
    assert_eq!(created.permissions().mode() & 0o777, 0o750, "created with mode 0750");
    assert_eq!((created.uid(), created.gid()), (4321, 4322), "created with the volume's owner");
    let seed = std::fs::metadata(root.join("seed")).unwrap();
    assert_eq!((seed.uid(), seed.permissions().mode() & 0o777), (0, 0o755), "an existing directory is left alone");
    assert_eq!(d.through_caddy(&host, "/cgi-bin/write.sh").await, (200, "read-only".to_owned()));
    assert_eq!(std::fs::read_to_string(root.join("data").join("note")).unwrap(), "written by v1\n");
    assert!(!root.join("seed").join("probe").exists());

    let second = d.deploy_and_wait(&app, "v2").await;
    assert_eq!(second.status, "completed", "{second:?}");
    assert_eq!(d.through_caddy(&host, "/version").await, (200, "v2".to_owned()));
    assert_eq!(d.through_caddy(&host, "/data/note").await, (200, "written by v1".to_owned()));
    assert_eq!(d.through_caddy(&host, "/ro/seed").await, (200, "seeded".to_owned()));
}

/// Every route of an app (two hostnames, and a path prefix that is stripped) moves to the new release in one
/// Caddy change: a client alternating between the hostnames never sees the old release after it has seen the
/// new one, and no Caddy config ever has the app's routes on different upstreams.
#[tokio::test(flavor = "multi_thread")]
async fn all_routes_of_an_app_switch_together() {
    let app = app_name("routes");
    let a = app.clone();
    let d = TestDaemon::start(
        |reg| {
            let config = format!(
                r#"[app]
name = "{a}"
image = "{reg}/{a}"

[routing]
domain = "{a}.test"
port = 8080

[[routing.routes]]
hostname = "{a}-b.test"

[[routing.routes]]
hostname = "{a}.test"
path_prefix = "/admin"
strip_prefix = true

[health]
path = "/health"
interval = "200ms"
start_period = "2s"

[deploy]
drain_timeout = "5s"
stop_grace = "2s"
"#
            );
            vec![(a.clone(), config)]
        },
        "",
    )
    .await;
    d.push(&Image::V1, &app, "v1");
    d.push(&Image::V2, &app, "v2");
    let (host_a, host_b) = (format!("{app}.test"), format!("{app}-b.test"));

    assert_eq!(d.deploy_and_wait(&app, "v1").await.status, "completed");
    assert_eq!(d.through_caddy(&host_a, "/version").await, (200, "v1".to_owned()));
    assert_eq!(d.through_caddy(&host_b, "/version").await, (200, "v1".to_owned()));
    assert_eq!(d.through_caddy(&host_a, "/admin/version").await, (200, "v1".to_owned()), "prefix stripped");
    assert_eq!(d.through_caddy(&host_b, "/admin/version").await.0, 404, "the prefix route is on host A only");

    let sampler = RouteSampler::start(&d, &app, [host_a.clone(), host_b.clone()]);
    let deploy = d.deploy_and_wait(&app, "v2").await;
    let (seen, snapshots) = sampler.stop().await;
    assert_eq!(deploy.status, "completed", "{deploy:?}");
    // Right after the deploy: every route serves the new release.
    assert_eq!(d.through_caddy(&host_a, "/version").await, (200, "v2".to_owned()));
    assert_eq!(d.through_caddy(&host_b, "/version").await, (200, "v2".to_owned()));
    assert_eq!(d.through_caddy(&host_a, "/admin/version").await, (200, "v2".to_owned()));

    let failures: Vec<&(String, u16, String)> = seen.iter().filter(|(_, status, _)| *status != 200).collect();
    assert!(failures.is_empty(), "every request succeeded during the blue-green switch: {failures:?}");
    let versions: Vec<&str> = seen.iter().map(|(_, _, body)| body.as_str()).collect();
    let first_new = versions.iter().position(|v| *v == "v2").expect("the sampler saw the new release");
    assert!(first_new > 0, "the sampler saw the old release before the switch: {seen:?}");
    assert!(versions[..first_new].iter().all(|v| *v == "v1"), "{seen:?}");
    assert!(
        versions[first_new..].iter().all(|v| *v == "v2"),
        "once one hostname served v2, no hostname served v1 again: {seen:?}"
    );
    for host in [&host_a, &host_b] {
        assert!(seen.iter().any(|(h, _, body)| h == host && body == "v2"), "{host} was sampled on v2: {seen:?}");
    }

    assert!(snapshots.len() >= 5, "Caddy's config was sampled during the deploy ({} snapshots)", snapshots.len());
    for upstreams in &snapshots {
        assert_eq!(upstreams.len(), 3, "the app has three routes in every snapshot: {snapshots:?}");
        let dials: BTreeSet<&String> = upstreams.values().collect();
        assert_eq!(dials.len(), 1, "all of the app's routes dial one upstream in every Caddy config: {snapshots:?}");
    }
    let distinct: BTreeSet<&String> = snapshots.iter().flat_map(|u| u.values()).collect();
    assert_eq!(distinct.len(), 2, "the snapshots span the switch from the old upstream to the new one");
}

/// The container's environment follows SPEC §4.3 (`[env]`, then `env_file`, then secrets, then slip's own
/// variables; webhook keys never injected; `$` in the env file literal), limits reach the engine, and a missing
/// env file fails the next deploy without touching the running release.
#[tokio::test(flavor = "multi_thread")]
async fn environment_precedence_and_resource_limits_reach_the_container() {
    let app = app_name("env");
    let a = app.clone();
    let files = tempfile::tempdir().unwrap();
    let env_file = files.path().join("app.env");
    let path = env_file.clone();
    std::fs::write(
        &env_file,
        "# the app's env file\n\
         IN_FILE=from-file\n\
         IN_SECRET=from-file\n\
         FILE_ONLY=\"from the file\"\n\
         export WITH_DOLLAR=pa$HOME\n\
         SLIP_KIND=from-file\n",
    )
    .unwrap();
    let d = TestDaemon::start(
        move |reg| {
            let extra = format!(
                "\n[env]\nONLY_ENV = \"from-env\"\nIN_FILE = \"from-env\"\nIN_SECRET = \"from-env\"\n\n\
                 [env_file]\npath = \"{}\"\n\n[resources]\nmemory = \"64m\"\ncpus = \"0.5\"\npids = 100\n",
                path.display()
            );
            vec![(a.clone(), web_app(&a, reg, &extra))]
        },
        "",
    )
    .await;
    let image =
        |v: &str| Image::release(v).with_file("/etc/httpd.conf", HTTPD_CONF).with_file("/www/cgi-bin/env.sh", ENV_CGI);
    d.push(&image("v1"), &app, "v1");
    d.push(&image("v2"), &app, "v2");
    let app_key = "app-key-for-env-test-0123456789";
    d.put_secret(&app, "IN_SECRET", "from-the-secret-store").await;
    d.put_secret(&app, "SLIP_SECRET", app_key).await;
    let host = format!("{app}.test");

    let deploy = d.deploy_with_key_and_wait(&app, "v1", app_key).await;
    assert_eq!(deploy.status, "completed", "{deploy:?}");
    let (status, body) = d.through_caddy(&host, "/cgi-bin/env.sh").await;
    assert_eq!(status, 200, "{body}");
    let env: BTreeMap<&str, &str> = body.lines().filter_map(|l| l.split_once('=')).collect();
    let expected = [
        ("ONLY_ENV", "from-env"),
        ("IN_FILE", "from-file"),
        ("FILE_ONLY", "from the file"),
        ("IN_SECRET", "from-the-secret-store"),
        ("WITH_DOLLAR", "pa$HOME"),
        ("SLIP_APP", app.as_str()),
        ("SLIP_TAG", "v1"),
        ("SLIP_DEPLOY_ID", deploy.deploy_id.as_str()),
        ("SLIP_KIND", "web"),
    ];
    for (key, value) in expected {
        assert_eq!(env.get(key).copied(), Some(value), "{key} in the container's environment:\n{body}");
    }
    assert!(!env.contains_key("SLIP_SECRET") && !body.contains(app_key), "the app key is never injected:\n{body}");
    assert!(!body.contains(SECRET), "slipd's own keys never reach the container");

    let container = d.running_containers(&app).pop().expect("the release runs");
    let host_config = &docker_inspect(&container)["HostConfig"];
    assert_eq!(host_config["Memory"], 64 * 1024 * 1024, "resources.memory = \"64m\"");
    assert_eq!(host_config["NanoCpus"], 500_000_000, "resources.cpus = \"0.5\"");
    assert_eq!(host_config["PidsLimit"], 100, "resources.pids = 100");

    std::fs::remove_file(&env_file).unwrap();
    let failed = d.deploy_with_key_and_wait(&app, "v2", app_key).await;
    assert_eq!(failed.status, "failed");
    assert_eq!(failed.detail.as_ref().unwrap().error_code.as_deref(), Some("env_file_missing"), "{failed:?}");
    assert!(failed.error.as_deref().unwrap_or("").contains(&env_file.display().to_string()), "{failed:?}");
    assert_eq!(d.running_containers(&app), [container], "the running release is untouched");
    assert_eq!(d.through_caddy(&host, "/version").await, (200, "v1".to_owned()));
}

/// An unparsable limit is a config error with file and line from `slipd --check`, never "unlimited".
#[test]
fn bad_resource_limits_fail_check_with_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("apps")).unwrap();
    std::fs::write(
        dir.path().join("apps").join("limits.toml"),
        "[app]\nname = \"limits\"\nimage = \"registry.test/limits\"\n\n[resources]\nmemory = \"lots\"\ncpus = \"many\"\n",
    )
    .unwrap();
    let (out, code) = slip_daemon::check::check(dir.path());
    assert_eq!(code, 1, "{out}");
    assert!(out.starts_with('✗'), "{out}");
    for (line, key) in [(6, "memory"), (7, "cpus")] {
        let at = format!("apps/limits.toml:{line}:");
        let problem = out.lines().find(|l| l.starts_with(&at)).unwrap_or_else(|| panic!("no problem at {at}:\n{out}"));
        assert!(problem.contains(key), "the problem at {at} names {key}: {problem}");
    }
}

/// Counts the app's running containers with `docker ps`, back to back, on a thread of its own.
struct RunningSampler {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<Vec<usize>>,
}

impl RunningSampler {
    fn start(engine: Engine, app: &str) -> RunningSampler {
        let stop = Arc::new(AtomicBool::new(false));
        let filter = format!("label=slip.app={app}");
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut counts = Vec::new();
            while !flag.load(Ordering::Relaxed) {
                let out = std::process::Command::new(engine.program())
                    .args(["ps", "--quiet", "--filter", &filter])
                    .output()
                    .expect("engine ps");
                assert!(out.status.success(), "{engine:?} ps failed: {}", String::from_utf8_lossy(&out.stderr));
                counts.push(String::from_utf8_lossy(&out.stdout).lines().count());
            }
            counts
        });
        RunningSampler { stop, thread }
    }

    fn stop(self) -> Vec<usize> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().expect("sampler thread")
    }
}

/// Requests through Caddy, alternating between hostnames one at a time on one keep-alive client, and
/// snapshots of the app's routes in Caddy's config, until stopped.
struct RouteSampler {
    stop: Arc<AtomicBool>,
    requests: tokio::task::JoinHandle<Vec<(String, u16, String)>>,
    config: tokio::task::JoinHandle<Vec<BTreeMap<String, String>>>,
}

impl RouteSampler {
    fn start(d: &TestDaemon, app: &str, hosts: [String; 2]) -> RouteSampler {
        let stop = Arc::new(AtomicBool::new(false));
        let authority = format!("127.0.0.1:{}", d.caddy.http_port());
        let flag = stop.clone();
        let requests = tokio::spawn(async move {
            // One keep-alive connection; only a keep-alive race (RFC 9112 §9.3.1) is retried, once.
            let mut client = slip_bench::client::Client::new(&authority, Duration::from_secs(30));
            let hosts = hosts.map(|h| reqwest::header::HeaderValue::from_str(&h).expect("a valid Host"));
            let mut seen = Vec::new();
            while !flag.load(Ordering::Relaxed) {
                for host in &hosts {
                    let (status, body) = match client.get_retrying_a_race("/version", host).await {
                        slip_bench::client::Outcome::Answered { status, body } => (status, body.trim().to_owned()),
                        failed => (0, format!("{failed:?}")),
                    };
                    seen.push((host.to_str().expect("ASCII").to_owned(), status, body));
                }
            }
            seen
        });
        let routes_url = format!("{}/config/apps/http/servers/slip/routes", d.caddy.admin_url());
        let prefix = format!("slip-{app}");
        let flag = stop.clone();
        let config = tokio::spawn(async move {
            let http = reqwest::Client::new();
            let mut snapshots = Vec::new();
            while !flag.load(Ordering::Relaxed) {
                let routes: serde_json::Value = http.get(&routes_url).send().await.unwrap().json().await.unwrap();
                let mut upstreams = BTreeMap::new();
                for route in routes.as_array().into_iter().flatten() {
                    let Some(id) = route["@id"].as_str().filter(|id| id.starts_with(&prefix)) else { continue };
                    let dial = route["handle"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .find(|h| h["handler"] == "reverse_proxy")
                        .and_then(|h| h["upstreams"][0]["dial"].as_str())
                        .unwrap_or_default();
                    upstreams.insert(id.to_owned(), dial.to_owned());
                }
                snapshots.push(upstreams);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            snapshots
        });
        RouteSampler { stop, requests, config }
    }

    async fn stop(self) -> (Vec<(String, u16, String)>, Vec<BTreeMap<String, String>>) {
        self.stop.store(true, Ordering::Relaxed);
        (self.requests.await.unwrap(), self.config.await.unwrap())
    }
}

/// The worker image's `/data/log` as (`start`|`stop`, version) pairs, oldest first.
fn worker_log(volume: &Path) -> Vec<(String, String)> {
    let log = std::fs::read_to_string(volume.join("log")).expect("the worker wrote /data/log on its volume");
    log.lines()
        .map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            assert_eq!(fields.len(), 3, "log lines are `<start|stop> <unix-ts> <version>`: {line:?}");
            (fields[0].to_owned(), fields[2].to_owned())
        })
        .collect()
}

fn owned((event, version): (&str, &str)) -> (String, String) {
    (event.to_owned(), version.to_owned())
}

fn docker_inspect(container: &str) -> serde_json::Value {
    let out = std::process::Command::new("docker").args(["inspect", container]).output().expect("docker inspect");
    assert!(out.status.success(), "docker inspect {container}: {}", String::from_utf8_lossy(&out.stderr));
    let all: serde_json::Value = serde_json::from_slice(&out.stdout).expect("docker inspect prints JSON");
    all[0].clone()
}

/// The volume rules `docs/apps.md` promises, as `slipd --check` reports them: explicit blue-green with a writable
/// volume needs `deploy.allow_overlap`, and every host path lies under `storage.volume_roots`.
#[test]
fn check_enforces_the_overlap_rule_and_volume_roots() {
    let dir = tempfile::tempdir().unwrap();
    let storage = dir.path().join("state");
    let apps = dir.path().join("apps");
    std::fs::create_dir_all(&apps).unwrap();
    std::fs::write(dir.path().join("slip.toml"), format!("[storage]\npath = \"{}\"\n", storage.display())).unwrap();
    let app = |name: &str, deploy: &str, host_path: &Path| {
        let text = format!(
            "[app]\nname = \"{name}\"\nimage = \"registry.test/{name}\"\n\n[deploy]\n{deploy}\n\n\
             [[volumes]]\nhost_path = \"{}\"\nmount_path = \"/data\"\n",
            host_path.display()
        );
        std::fs::write(apps.join(format!("{name}.toml")), text).unwrap();
    };
    let volumes = storage.join("volumes");
    app("overlap", "strategy = \"blue-green\"", &volumes.join("overlap"));
    app("outside", "", Path::new("/srv/not-a-volume-root/outside"));
    app("opted-in", "strategy = \"blue-green\"\nallow_overlap = true", &volumes.join("opted-in"));

    let (out, code) = slip_daemon::check::check(dir.path());
    assert_eq!(code, 1, "{out}");
    let problem = |file: &str| {
        out.lines().find(|l| l.starts_with(file)).unwrap_or_else(|| panic!("no problem in {file}:\n{out}")).to_owned()
    };
    let overlap = problem("apps/overlap.toml:6:");
    assert!(overlap.contains("deploy.strategy") && overlap.contains("writable volume"), "{overlap}");
    assert!(out.contains("allow_overlap = true"), "the hint names the opt-in: {out}");
    let outside = problem("apps/outside.toml:");
    assert!(outside.contains("host_path") && outside.contains("storage.volume_roots"), "{outside}");
    assert!(!out.contains("apps/opted-in.toml"), "allow_overlap = true opts in: {out}");
}
