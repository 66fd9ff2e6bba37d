//! `docker::Runtime` and `probe::Http` against the real Docker engine and a real loopback registry.
//!
//! Every test labels its containers `slip.test=<unique id>` and holds a `ContainerGuard` that removes them, even
//! when the test panics. The engine's view is checked with the `docker` CLI, an independent client, rather than
//! through the adapter under test. These tests need Docker and docker-registry (`scripts/setup.sh --dev`); they fail,
//! never skip, without them. The same adapter on Podman is checked by `tests/podman.rs`.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, SystemTime};

use futures::{StreamExt, TryStreamExt};
use serde_json::Value;
use slip_core::deploy::ProbeResult;
use slip_engine::docker::{Backend, Runtime};
use slip_engine::ports::{
    ContainerSpec, Follow, HealthProbe, ImageStore, InstanceRuntime, InstanceSpec, LogLine, LogRequest, LogRotation,
    LogSource, LogStream, MAX_LOG_LINE, Mount, NetworkAttachment, OutputStream, PortMapping, ProbeTarget,
    RegistryCredentials, Resources, RuntimeError,
};
use slip_engine::probe::Http;
use slip_testenv::{
    ContainerGuard, DOCKER_SOCKET, Image, Registry, free_port, require_docker, unique_id, wait_until_async,
};

/// How long a container may take to answer its first probe.
const READY: Duration = Duration::from_secs(15);

/// One test's label, guard and runtime.
struct Fixture {
    runtime: Runtime,
    test_id: String,
    _guard: ContainerGuard,
}

impl Fixture {
    async fn new() -> Fixture {
        require_docker();
        let test_id = unique_id();
        let guard = ContainerGuard::new("slip.test", &test_id);
        let runtime = Runtime::connect(Some(DOCKER_SOCKET)).await.expect("connecting to Docker");
        Fixture { runtime, test_id, _guard: guard }
    }

    /// A minimal spec for `image`, labelled for this test, publishing `ports`.
    fn spec(&self, image: &str, ports: &[PortMapping]) -> ContainerSpec {
        ContainerSpec {
            name: format!("slip-test-{}", unique_id()),
            image: image.to_owned(),
            labels: BTreeMap::from([
                ("slip.test".to_owned(), self.test_id.clone()),
                ("slip.managed".to_owned(), "true".to_owned()),
            ]),
            env: vec![("SLIP_TEST_SECRET".to_owned(), "do-not-leak-me".to_owned())],
            ports: ports.to_vec(),
            network: None,
            resources: Resources::default(),
            mounts: Vec::new(),
            init: false,
            log: LogRotation { max_size_bytes: 1 << 20, max_files: 2 },
        }
    }

    fn label(&self) -> [(&str, &str); 1] {
        [("slip.test", self.test_id.as_str())]
    }
}

/// Removes a Docker network when dropped; declare it before the `Fixture` so containers go first.
struct NetworkGuard(String);

impl Drop for NetworkGuard {
    fn drop(&mut self) {
        let _ = Command::new("docker").args(["network", "rm", &self.0]).output();
    }
}

/// `docker inspect` of one object, as JSON.
fn docker_inspect(kind: &str, id: &str) -> Value {
    let output = Command::new("docker").args([kind, "inspect", id]).output().expect("running docker inspect");
    assert!(output.status.success(), "docker {kind} inspect {id}: {}", String::from_utf8_lossy(&output.stderr));
    let mut all: Vec<Value> = serde_json::from_slice(&output.stdout).expect("docker inspect prints JSON");
    all.remove(0)
}

fn web_port(host: u16) -> PortMapping {
    PortMapping { host, container: slip_testenv::image::DEFAULT_PORT }
}

fn probe_target(port: u16, path: &str) -> ProbeTarget {
    ProbeTarget {
        upstream: format!("127.0.0.1:{port}"),
        path: path.to_owned(),
        host: None,
        timeout: Duration::from_secs(2),
    }
}

/// The next line's text, or `None` at the end of the stream; panics when nothing happens within [`READY`].
async fn next(stream: &mut LogStream) -> Option<String> {
    let next = tokio::time::timeout(READY, stream.next()).await.expect("a line or the end within the deadline");
    next.map(|line| line.expect("no error").text)
}

async fn wait_healthy(port: u16, path: &str) {
    wait_until_async(READY, "the container answers its health path", || async {
        matches!(Http::new().check(&probe_target(port, path)).await, ProbeResult::Healthy(_))
    })
    .await;
}

#[tokio::test]
async fn docker_honours_the_runtime_contract() {
    let fx = Fixture::new().await;
    let spec = fx.spec(&Image::V1.build(), &[web_port(free_port())]);
    slip_engine::testing::contract::runtime_contract(&fx.runtime, InstanceSpec::Container(spec), &fx.label()).await;
}

#[tokio::test]
async fn docker_reads_files_out_of_an_image_through_a_never_started_container() {
    let fx = Fixture::new().await;
    let contents = format!("[app]\nname = \"files-{}\"\n", fx.test_id);
    let image = Image::V1.with_file("/slip/slip.toml", contents.clone()).build();
    let mut labels = slip_engine::labels::extract("slipd-test");
    labels.insert("slip.test".into(), fx.test_id.clone());
    slip_engine::testing::contract::image_files_contract(
        &fx.runtime,
        &fx.runtime,
        &image,
        contents.as_bytes(),
        &labels,
        &fx.label(),
    )
    .await;
}

#[tokio::test]
async fn docker_specifics_of_start_inspect_list_stop_restart_remove() {
    let fx = Fixture::new().await;
    let port = free_port();
    let spec = fx.spec(&Image::V1.build(), &[web_port(port)]);

    let id = fx.runtime.start(&InstanceSpec::Container(spec.clone())).await.expect("start");
    let state = fx.runtime.inspect(&id).await.unwrap().expect("a started container exists");
    assert!(state.running(), "{state:?}");
    assert_eq!(state.name, spec.name);
    assert_eq!(state.ports, vec![web_port(port)]);
    assert_eq!(state.containers[0].exit_code, None);
    assert_eq!(state.containers[0].restart_count, 0);
    assert_eq!(state.labels.get("slip.test"), Some(&fx.test_id));
    assert!(!state.containers[0].started_at.is_empty());
    let bound = &docker_inspect("container", &id)["NetworkSettings"]["Ports"]["8080/tcp"];
    assert_eq!(bound.as_array().map(Vec::len), Some(1), "published once, on loopback only: {bound}");
    assert_eq!(bound[0]["HostIp"], "127.0.0.1");
    assert_eq!(bound[0]["HostPort"], port.to_string());

    let listed = fx.runtime.list(&fx.label()).await.unwrap();
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(
        (listed[0].id.as_str(), listed[0].name.as_str(), listed[0].running),
        (id.as_str(), spec.name.as_str(), true)
    );
    assert!(fx.runtime.list(&[("slip.test", "no-such-test")]).await.unwrap().is_empty());

    wait_healthy(port, "/health").await;
    let logs = fx.runtime.logs_tail(&id, 50).await.unwrap();
    assert!(logs.iter().any(|l| l.contains("v1: listening on 8080")), "{logs:?}");
    assert_eq!(fx.runtime.logs_tail(&id, 1).await.unwrap().len(), 1);

    fx.runtime.stop(&id, Duration::from_secs(5)).await.expect("stop");
    fx.runtime.stop(&id, Duration::from_secs(5)).await.expect("stopping a stopped container is ok");
    let stopped = fx.runtime.inspect(&id).await.unwrap().expect("a stopped container still exists");
    assert!(!stopped.running());
    assert_eq!(stopped.containers[0].exit_code, Some(0), "the image exits 0 on SIGTERM: {stopped:?}");
    assert_eq!(stopped.ports, vec![web_port(port)], "a stopped container reports the ports it will bind");
    assert!(!fx.runtime.list(&fx.label()).await.unwrap()[0].running, "list shows stopped containers too");

    fx.runtime.restart(&id).await.expect("restart");
    let restarted = fx.runtime.inspect(&id).await.unwrap().unwrap();
    assert!(restarted.running());
    assert_eq!(restarted.ports, vec![web_port(port)], "restart keeps the leased port");
    assert_ne!(restarted.containers[0].started_at, state.containers[0].started_at);
    wait_healthy(port, "/health").await;
    fx.runtime.restart(&id).await.expect("starting a running container is ok");

    fx.runtime.stop(&id, Duration::from_secs(5)).await.unwrap();
    fx.runtime.remove(&id).await.expect("remove");
    fx.runtime.remove(&id).await.expect("removing a missing container is ok");
    fx.runtime.stop(&id, Duration::from_secs(1)).await.expect("stopping a missing container is ok");
    assert_eq!(fx.runtime.inspect(&id).await.unwrap(), None);
    assert!(fx.runtime.list(&fx.label()).await.unwrap().is_empty());
    assert!(matches!(fx.runtime.restart(&id).await, Err(RuntimeError::Rejected { .. })));
}

#[tokio::test]
async fn remove_takes_a_running_container_down() {
    let fx = Fixture::new().await;
    let id = fx.runtime.start(&InstanceSpec::Container(fx.spec(&Image::WORKER.build(), &[]))).await.unwrap();
    fx.runtime.remove(&id).await.expect("remove is forced");
    assert_eq!(fx.runtime.inspect(&id).await.unwrap(), None);
}

#[tokio::test]
async fn limits_network_mounts_restart_policy_and_log_rotation_reach_the_engine() {
    let network = NetworkGuard(format!("slip-test-{}", unique_id()));
    let fx = Fixture::new().await;
    let dir = tempfile::tempdir().unwrap();
    let mut spec = fx.spec(&Image::V1.build(), &[web_port(free_port())]);
    spec.resources = Resources { memory_bytes: Some(64 << 20), nano_cpus: Some(500_000_000), pids: Some(64) };
    spec.network = Some(NetworkAttachment { name: network.0.clone(), alias: Some("web".to_owned()) });
    spec.mounts = vec![Mount { host_path: dir.path().to_owned(), container_path: "/data".to_owned(), read_only: true }];
    spec.init = true;
    spec.log = LogRotation { max_size_bytes: 10 << 20, max_files: 3 };

    let id = fx.runtime.start(&InstanceSpec::Container(spec.clone())).await.expect("start");
    let inspect = docker_inspect("container", &id);
    let host = &inspect["HostConfig"];
    assert_eq!(host["Memory"], 64 << 20);
    assert_eq!(host["NanoCpus"], 500_000_000);
    assert_eq!(host["PidsLimit"], 64);
    assert_eq!(host["Init"], true);
    assert_eq!(host["RestartPolicy"]["Name"], "unless-stopped");
    assert_eq!(host["LogConfig"]["Type"], "json-file");
    assert_eq!(host["LogConfig"]["Config"]["max-size"], "10485760");
    assert_eq!(host["LogConfig"]["Config"]["max-file"], "3");
    assert_eq!(inspect["Mounts"][0]["Destination"], "/data");
    assert_eq!(inspect["Mounts"][0]["RW"], false);
    let env = inspect["Config"]["Env"].as_array().unwrap();
    assert!(env.iter().any(|e| e == "SLIP_TEST_SECRET=do-not-leak-me"), "{env:?}");
    let aliases = &inspect["NetworkSettings"]["Networks"][&network.0]["Aliases"];
    assert!(aliases.as_array().unwrap().iter().any(|a| a == "web"), "{aliases}");

    let net = docker_inspect("network", &network.0);
    assert_eq!(net["Driver"], "bridge");
    assert_eq!(net["Labels"]["slip.managed"], "true");

    // A second container joins the existing network instead of creating another one.
    let mut second = fx.spec(&Image::WORKER.build(), &[]);
    second.network = Some(NetworkAttachment { name: network.0.clone(), alias: None });
    fx.runtime.start(&InstanceSpec::Container(second.clone())).await.expect("start on the existing network");
    let output = Command::new("docker")
        .args(["network", "ls", "--quiet", "--filter", &format!("name=^{}$", network.0)])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&output.stdout).lines().count(), 1);
}

/// Ids of the networks named exactly `name`.
fn networks_named(name: &str) -> Vec<String> {
    let output = Command::new("docker")
        .args(["network", "ls", "--quiet", "--no-trunc", "--filter", &format!("name=^{name}$")])
        .output()
        .unwrap();
    String::from_utf8_lossy(&output.stdout).lines().map(str::to_owned).collect()
}

#[tokio::test]
async fn a_duplicated_network_name_joins_the_oldest_and_removes_slips_empty_duplicate() {
    // Docker 20.10 accepts two networks of one name, which is what two processes creating a missing network at
    // once leave behind; a create that names the network then fails as ambiguous.
    let network = NetworkGuard(format!("slip-test-{}", unique_id()));
    let fx = Fixture::new().await;
    // The docker CLI asks the engine to refuse duplicates; the API does not by default.
    let docker = bollard::Docker::connect_with_unix(DOCKER_SOCKET, 30, bollard::API_DEFAULT_VERSION)
        .unwrap()
        .negotiate_version()
        .await
        .unwrap();
    let create = async |labels: &[&str]| {
        let request = bollard::models::NetworkCreateRequest {
            name: network.0.clone(),
            driver: Some("bridge".into()),
            labels: Some(
                labels.iter().map(|l| l.split_once('=').unwrap()).map(|(k, v)| (k.into(), v.into())).collect(),
            ),
            ..Default::default()
        };
        docker.create_network(request).await.expect("creating a network").id
    };
    let oldest = create(&["slip.managed=true"]).await;
    let duplicate = create(&["slip.managed=true"]).await;
    assert_eq!(networks_named(&network.0).len(), 2, "the engine should accept the duplicate name");

    let mut spec = fx.spec(&Image::WORKER.build(), &[]);
    spec.network = Some(NetworkAttachment { name: network.0.clone(), alias: Some("worker".to_owned()) });
    let id = fx
        .runtime
        .start(&InstanceSpec::Container(spec.clone()))
        .await
        .expect("start despite the duplicated network name");

    let inspect = docker_inspect("container", &id);
    let joined = &inspect["NetworkSettings"]["Networks"];
    let joined_id = joined.as_object().unwrap().values().next().unwrap()["NetworkID"].as_str().unwrap().to_owned();
    assert_eq!(joined_id, oldest, "joined {joined}, duplicate was {duplicate}");
    assert_eq!(networks_named(&network.0), [oldest], "slip's empty duplicate is removed");
}

#[tokio::test]
async fn a_taken_port_is_port_unavailable_and_leaves_nothing_behind() {
    let fx = Fixture::new().await;
    let port = free_port();
    let image = Image::V1.build();
    let first = fx.runtime.start(&InstanceSpec::Container(fx.spec(&image, &[web_port(port)]))).await.unwrap();

    let second = fx.spec(&image, &[web_port(free_port()), web_port(port)]);
    match fx.runtime.start(&InstanceSpec::Container(second.clone())).await {
        Err(RuntimeError::PortUnavailable { port: reported, message }) => {
            assert_eq!(reported, port, "{message}");
            assert!(!message.contains("do-not-leak-me"));
        }
        other => panic!("expected PortUnavailable, got {other:?}"),
    }
    let listed = fx.runtime.list(&fx.label()).await.unwrap();
    assert_eq!(listed.iter().map(|c| c.id.as_str()).collect::<Vec<_>>(), vec![first.as_str()]);
}

#[tokio::test]
async fn starting_an_image_that_is_not_local_is_image_not_found() {
    let fx = Fixture::new().await;
    let image = format!("127.0.0.1:1/slip-test-{}:v1", unique_id());
    let result = fx.runtime.start(&InstanceSpec::Container(fx.spec(&image, &[]))).await;
    assert!(matches!(&result, Err(RuntimeError::ImageNotFound { image: i }) if *i == image), "{result:?}");
    assert!(fx.runtime.list(&fx.label()).await.unwrap().is_empty());
}

#[tokio::test]
async fn pull_from_the_registry_returns_the_digest_reference() {
    let fx = Fixture::new().await;
    let registry = Registry::start();
    let pushed = registry.push_with_digest(&Image::V1, "app", "v1");
    let expected_digest = format!("{}/app@{}", registry.host(), pushed.digest);

    assert_eq!(fx.runtime.local_image(&pushed.reference).await.unwrap(), None, "the push untagged it locally");
    let pulled = fx.runtime.pull(&pushed.reference, None).await.expect("pull");
    assert!(pulled.id.starts_with("sha256:"), "{pulled:?}");
    assert_eq!(pulled.digest.as_deref(), Some(expected_digest.as_str()));
    assert_eq!(fx.runtime.local_image(&pushed.reference).await.unwrap(), Some(pulled.clone()));

    let by_digest = fx.runtime.pull(&expected_digest, None).await.expect("pull by digest");
    assert_eq!(by_digest, pulled);

    // The image has several references (its build tag among them), so removing it by id needs force: refused.
    assert!(matches!(fx.runtime.remove_image(&pulled.id).await, Err(RuntimeError::Rejected { .. })));
    fx.runtime.remove_image(&pushed.reference).await.expect("untag");
    fx.runtime.remove_image(&pushed.reference).await.expect("removing a missing image is ok");
    assert_eq!(fx.runtime.local_image(&pushed.reference).await.unwrap(), None);
}

#[tokio::test]
async fn pulling_a_missing_tag_or_repository_is_image_not_found() {
    let fx = Fixture::new().await;
    let registry = Registry::start();
    registry.push(&Image::V1, "app", "v1");
    for reference in [format!("{}/app:nope", registry.host()), format!("{}/missing:v1", registry.host())] {
        let result = fx.runtime.pull(&reference, None).await;
        assert!(matches!(&result, Err(RuntimeError::ImageNotFound { image }) if *image == reference), "{result:?}");
    }
    let unreachable = fx.runtime.pull(&format!("127.0.0.1:{}/app:v1", free_port()), None).await;
    assert!(matches!(unreachable, Err(RuntimeError::PullFailed { .. })), "{unreachable:?}");
}

#[tokio::test]
async fn a_private_registry_needs_the_right_credentials() {
    let fx = Fixture::new().await;
    let registry = Registry::start_with_auth("ci", "correct-horse");
    let reference = registry.push(&Image::V1, "private", "v1");
    let wrong = RegistryCredentials { username: "ci".into(), password: "wrong-battery".into() };
    let right = RegistryCredentials { username: "ci".into(), password: "correct-horse".into() };

    for credentials in [None, Some(&wrong)] {
        match fx.runtime.pull(&reference, credentials).await {
            Err(err @ RuntimeError::RegistryAuth { .. }) => {
                let RuntimeError::RegistryAuth { host, image } = &err else { unreachable!() };
                assert_eq!((host.as_str(), image.as_str()), (registry.host().as_str(), reference.as_str()));
                let shown = format!("{err} {err:?}");
                assert!(!shown.contains("wrong-battery") && !shown.contains("correct-horse"), "{shown}");
            }
            other => panic!("expected RegistryAuth with {credentials:?}, got {other:?}"),
        }
    }
    let pulled = fx.runtime.pull(&reference, Some(&right)).await.expect("pull with credentials");
    assert!(pulled.digest.unwrap().starts_with(&format!("{}/private@sha256:", registry.host())));
    fx.runtime.remove_image(&reference).await.unwrap();
}

#[tokio::test]
async fn a_crashing_container_shows_its_exit_code_restarts_and_logs() {
    let fx = Fixture::new().await;
    let id = fx.runtime.start(&InstanceSpec::Container(fx.spec(&Image::CRASHING.build(), &[]))).await.expect("start");

    let seen_exited = Cell::new(false);
    wait_until_async(READY, "the engine restarted the crashing container twice", || async {
        let state = fx.runtime.inspect(&id).await.unwrap().expect("the container exists");
        if !state.running() && state.containers[0].exit_code == Some(1) {
            seen_exited.set(true);
        }
        state.containers[0].restart_count >= 2
    })
    .await;
    assert!(seen_exited.get(), "inspect showed the container as exited with status 1 between restarts");
    let logs = fx.runtime.logs_tail(&id, 10).await.unwrap();
    assert!(logs.iter().any(|l| l == "crashing: crashing on purpose"), "{logs:?}");
}

#[tokio::test]
async fn logs_filter_since_exactly_follow_new_lines_and_end_when_the_container_stops() {
    let fx = Fixture::new().await;
    let port = free_port();
    let id = fx
        .runtime
        .start(&InstanceSpec::Container(fx.spec(&Image::V1.build(), &[web_port(port)])))
        .await
        .expect("start");
    wait_healthy(port, "/health").await;
    let say = |text: &str| {
        let url = format!("http://127.0.0.1:{port}/cgi-bin/say?{text}");
        async move { reqwest::get(url).await.expect("the say page answers").error_for_status().expect("said") }
    };

    say("before-the-cut").await;
    wait_until_async(READY, "the first line is in the log", || async {
        fx.runtime.logs_tail(&id, 10).await.unwrap().iter().any(|l| l == "before-the-cut")
    })
    .await;
    let cut = SystemTime::now();
    say("after-the-cut").await;
    let since = LogRequest { tail: None, since: Some(cut), follow: Follow::No };
    let read = || fx.runtime.logs(&id, &since).try_collect::<Vec<LogLine>>();
    wait_until_async(READY, "the second line is in the log", || async {
        read().await.unwrap().iter().any(|l| l.text == "after-the-cut")
    })
    .await;
    let lines = read().await.unwrap();
    assert_eq!(lines.iter().map(|l| l.text.as_str()).collect::<Vec<_>>(), vec!["after-the-cut"], "{lines:?}");
    assert!(lines[0].at.is_some_and(|at| at >= cut) && lines[0].stream == OutputStream::Stdout, "{lines:?}");

    let mut followed = fx.runtime.logs(&id, &LogRequest { tail: Some(1), since: None, follow: Follow::UntilStopped });
    assert_eq!(next(&mut followed).await.as_deref(), Some("after-the-cut"), "the stream is attached");
    say("written-while-following").await;
    assert_eq!(next(&mut followed).await.as_deref(), Some("written-while-following"));
    fx.runtime.stop(&id, Duration::from_secs(5)).await.expect("stop");
    assert_eq!(next(&mut followed).await.as_deref(), Some("v1: stopping on SIGTERM"));
    assert_eq!(next(&mut followed).await, None, "the stream ends when the container stops");

    fx.runtime.remove(&id).await.expect("remove");
    assert!(fx.runtime.logs_tail(&id, 10).await.unwrap().is_empty(), "a removed container has no lines");
}

#[tokio::test]
async fn long_lines_come_in_pieces_of_the_cap_and_a_letter_across_engine_messages_stays_whole() {
    let fx = Fixture::new().await;
    let runtime = &fx.runtime;
    // Runs `script` in a container whose output goes to the log `driver`, and reads all of it once it has exited.
    let read = |driver: &'static str, script: &str| {
        let run = Command::new("docker")
            .args(["run", "-d", "--label", &format!("slip.test={}", fx.test_id), "--log-driver", driver])
            .args(["--entrypoint", "/bin/sh", &Image::V1.build(), "-c", script])
            .output()
            .expect("running docker run");
        assert!(run.status.success(), "docker run: {}", String::from_utf8_lossy(&run.stderr));
        let id = String::from_utf8(run.stdout).unwrap().trim().to_owned();
        let waited = Command::new("docker").args(["wait", &id]).output().expect("running docker wait");
        assert!(waited.status.success(), "docker wait: {}", String::from_utf8_lossy(&waited.stderr));
        let request = LogRequest { tail: None, since: None, follow: Follow::No };
        async move { runtime.logs(&id, &request).try_collect::<Vec<LogLine>>().await.expect("the logs") }
    };
    // Docker cuts output into 16 KiB messages. After `WIDE=` (5 bytes), 8192 "é"s (2 bytes each) put the first
    // cut inside one.
    let wide = "w=\u{e9}; for i in 1 2 3 4 5 6 7 8 9 10 11 12 13; do w=$w$w; done; echo \"WIDE=$w\"";
    let wide_line = format!("WIDE={}", "\u{e9}".repeat(8192));

    // The `local` driver keeps the bytes of each message, so slipd gets both halves of the letter. (It also drops
    // the line ending of a line it cut into messages, so this container prints nothing after it.)
    let lines = read("local", wide).await;
    assert_eq!(lines.iter().map(|l| l.text.as_str()).collect::<Vec<_>>(), vec![wide_line.as_str()]);

    // Two caps' worth of `x` and then `end`, with no line ending until then, come in pieces of the cap.
    let x = "x=x; for i in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17; do x=$x$x; done; echo \"${x}end\"";
    let lines = read("json-file", &format!("{wide}; {x}; echo after")).await;
    let pieces: Vec<(usize, bool)> = lines[1..4].iter().map(|l| (l.text.len(), l.cut)).collect();
    assert_eq!(pieces, vec![(MAX_LOG_LINE, true), (MAX_LOG_LINE, true), (3, false)]);
    assert!(lines[1..4].iter().all(|l| l.stream == OutputStream::Stdout && l.at.is_some()));
    assert_eq!(lines[1..4].iter().map(|l| l.text.as_str()).collect::<String>(), format!("{}end", "x".repeat(1 << 17)));
    assert_eq!(lines[4].text, "after");
    assert_eq!(lines.len(), 5);

    // FIXME(json-file): Docker's `json-file` driver, which slip configures, stores each message as a JSON string
    // and replaces the bytes of a letter cut between two messages with U+FFFD (one per byte) before slipd can
    // read them. A non-ASCII secret value across such a cut therefore reaches the redactor damaged and is not
    // redacted; see docs/secrets.md.
    let damaged = format!("WIDE={}\u{fffd}\u{fffd}{}", "\u{e9}".repeat(8189), "\u{e9}".repeat(2));
    assert_eq!(lines[0].text, damaged);
}

#[tokio::test]
async fn http_probe_against_real_containers() {
    let fx = Fixture::new().await;
    let (healthy_port, unhealthy_port) = (free_port(), free_port());
    fx.runtime.start(&InstanceSpec::Container(fx.spec(&Image::V1.build(), &[web_port(healthy_port)]))).await.unwrap();
    fx.runtime
        .start(&InstanceSpec::Container(fx.spec(&Image::UNHEALTHY.build(), &[web_port(unhealthy_port)])))
        .await
        .unwrap();
    let probe = Http::new();

    wait_healthy(healthy_port, "/health").await;
    let mut with_host = probe_target(healthy_port, "/up");
    with_host.host = Some("web.example.test".to_owned());
    assert_eq!(probe.check(&with_host).await, ProbeResult::Healthy(200));

    wait_healthy(unhealthy_port, "/version").await;
    let ProbeResult::Unhealthy(reason) = probe.check(&probe_target(unhealthy_port, "/health")).await else {
        panic!("a missing health page is unhealthy")
    };
    assert!(reason.starts_with("HTTP 404: ") && reason.contains("404 Not Found"), "status and body: {reason}");

    let closed = free_port();
    assert_eq!(
        probe.check(&probe_target(closed, "/health")).await,
        ProbeResult::Unhealthy("connection refused".into())
    );
}

#[tokio::test]
async fn detect_and_connect_find_docker_and_its_image_store() {
    require_docker();
    let runtime = Runtime::detect(Backend::Docker, None).await.expect("detect docker");
    assert_eq!(runtime.backend(), Backend::Docker);
    runtime.ping().await.unwrap();
    let root = runtime.engine_root().await.expect("Docker reports DockerRootDir");
    assert!(root.is_dir(), "{}", root.display());

    let explicit = Runtime::detect(Backend::Auto, Some(&format!("unix://{DOCKER_SOCKET}"))).await.unwrap();
    assert_eq!(explicit.backend(), Backend::Docker, "the engine says it is Docker");

    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nothing.sock");
    match Runtime::connect(Some(missing.to_str().unwrap())).await {
        Err(err @ RuntimeError::Unreachable { .. }) => assert!(err.to_string().contains("nothing.sock"), "{err}"),
        other => panic!("expected Unreachable, got {other:?}"),
    }
}
