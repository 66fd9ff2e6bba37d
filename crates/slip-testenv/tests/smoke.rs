//! End-to-end checks of the harness against the real Docker engine and a real registry.
//!
//! Each test builds images, pushes them to a private registry, runs them with the `docker` CLI and checks what they
//! serve, proving the images behave as `slip_testenv::image` documents. These tests need Docker (one also Podman) and
//! fail (never skip) without them. They do not involve any slip crate.

use std::process::Command;
use std::time::{Duration, Instant};

use slip_testenv::{
    ContainerGuard, Image, Registry, free_port, require_docker, require_podman, unique_id, wait_until, wait_until_async,
};

/// Generous bound for anything a container has to do; the machines are shared and noisy.
const TIMEOUT: Duration = Duration::from_secs(30);

#[tokio::test]
async fn v1_from_a_registry_serves_version_health_and_a_slow_page() {
    require_docker();
    let id = unique_id();
    let guard = ContainerGuard::new("slip.test", &id);
    let registry = Registry::start();
    let reference = registry.push(&Image::V1, &id, "v1");
    assert_eq!(reference, format!("{}/{id}:v1", registry.host()));

    let port = free_port();
    let container = docker(&["run", "--detach", "--label", guard.label(), "-p", &published(port), &reference]);
    let base = format!("http://127.0.0.1:{port}");
    wait_for_http(&format!("{base}/version")).await;

    assert_eq!(get(&format!("{base}/version")).await, (200, "v1".to_owned()));
    assert_eq!(get(&format!("{base}/")).await, (200, "v1".to_owned()));
    assert_eq!(get(&format!("{base}/health")).await, (200, "ok\n".to_owned()));
    assert_eq!(get(&format!("{base}/up")).await, (200, "ok\n".to_owned()));
    let started = Instant::now();
    assert_eq!(get(&format!("{base}/cgi-bin/slow?1")).await, (200, "slow v1 done after 1s\n".to_owned()));
    assert!(started.elapsed() >= Duration::from_secs(1), "the slow page answered after {:?}", started.elapsed());

    assert_stops_promptly(&container);
    drop(guard);
    assert!(docker(&["ps", "--all", "--quiet", "--filter", &format!("label=slip.test={id}")]).is_empty());
}

#[tokio::test]
async fn web_images_print_lines_and_environment_values_on_demand() {
    require_docker();
    let id = unique_id();
    let guard = ContainerGuard::new("slip.test", &id);
    let port = free_port();
    let env = "LOGGED_VALUE=value-from-the-environment";
    let run = ["run", "--detach", "--label", guard.label(), "-e", env, "-p", &published(port), &Image::V1.build()];
    let container = docker(&run);
    let base = format!("http://127.0.0.1:{port}");
    wait_for_http(&format!("{base}/version")).await;

    assert_eq!(get(&format!("{base}/cgi-bin/say?hello-{id}")).await, (200, "said\n".to_owned()));
    assert_eq!(get(&format!("{base}/cgi-bin/env?LOGGED_VALUE")).await, (200, "printed\n".to_owned()));
    assert_eq!(get(&format!("{base}/cgi-bin/env?1;true")).await.0, 400, "only variable names are printed");
    wait_until(TIMEOUT, "both lines are in the container's log", || {
        let text = docker(&["logs", &container]);
        text.contains(&format!("\nhello-{id}\n")) && text.contains("\nLOGGED_VALUE=value-from-the-environment")
    });
}

#[tokio::test]
async fn unhealthy_release_answers_404_on_health_paths() {
    require_docker();
    let id = unique_id();
    let guard = ContainerGuard::new("slip.test", &id);
    let registry = Registry::start();
    let reference = registry.push(&Image::UNHEALTHY, &id, "broken");
    let port = free_port();
    docker(&["run", "--detach", "--label", guard.label(), "-p", &published(port), &reference]);
    let base = format!("http://127.0.0.1:{port}");
    wait_for_http(&format!("{base}/version")).await;

    assert_eq!(get(&format!("{base}/version")).await, (200, "unhealthy".to_owned()));
    assert_eq!(get(&format!("{base}/health")).await.0, 404);
    assert_eq!(get(&format!("{base}/up")).await.0, 404);
}

#[tokio::test]
async fn slow_start_listens_only_after_its_delay_and_honours_port() {
    require_docker();
    let id = unique_id();
    let guard = ContainerGuard::new("slip.test", &id);
    let image = Image::slow_start(2).with_version("v2");
    let local = image.build();
    let port = free_port();
    let started = Instant::now();
    let publish = format!("127.0.0.1:{port}:9090");
    docker(&["run", "--detach", "--label", guard.label(), "--env", "PORT=9090", "-p", &publish, &local]);
    let url = format!("http://127.0.0.1:{port}/version");
    wait_for_http(&url).await;

    assert!(started.elapsed() >= Duration::from_secs(2), "answered after only {:?}", started.elapsed());
    assert_eq!(get(&url).await, (200, "v2".to_owned()));
}

#[test]
fn worker_logs_start_and_stop_lines_and_exits_on_sigterm() {
    require_docker();
    let id = unique_id();
    let guard = ContainerGuard::new("slip.test", &id);
    let data = tempfile::tempdir().unwrap();
    let log = data.path().join("log");
    let local = Image::WORKER.with_version("w2").build();
    let volume = format!("{}:/data", data.path().display());
    let container = docker(&["run", "--detach", "--label", guard.label(), "--volume", &volume, &local]);

    wait_until(TIMEOUT, "the worker writes its start line", || log.exists());
    assert_stops_promptly(&container);
    let lines: Vec<String> = std::fs::read_to_string(&log).unwrap().lines().map(str::to_owned).collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    for (line, word) in lines.iter().zip(["start", "stop"]) {
        let fields: Vec<&str> = line.split(' ').collect();
        assert_eq!(fields.len(), 3, "{line}");
        assert_eq!(fields[0], word);
        assert!(fields[1].parse::<u64>().is_ok(), "timestamp in {line}");
        assert_eq!(fields[2], "w2");
    }
    let output = docker(&["logs", &container]);
    assert!(output.contains("w2: working"), "{output}");
}

#[test]
fn crashing_release_exits_with_status_1() {
    require_docker();
    let id = unique_id();
    let guard = ContainerGuard::new("slip.test", &id);
    let container = docker(&["run", "--detach", "--label", guard.label(), &Image::CRASHING.build()]);
    wait_until(TIMEOUT, "the crashing container exits", || {
        docker(&["inspect", "--format", "{{.State.Status}}", &container]) == "exited"
    });
    assert_eq!(docker(&["inspect", "--format", "{{.State.ExitCode}}", &container]), "1");
}

#[test]
fn registry_with_auth_refuses_anonymous_pulls() {
    require_docker();
    let registry = Registry::start_with_auth("ci", "s3cret-pass");
    assert_eq!(registry.credentials(), Some(("ci", "s3cret-pass")));
    let pushed = registry.push_with_digest(&Image::V1, "private", "v1");
    assert!(pushed.digest.starts_with("sha256:") && pushed.digest.len() == 71, "{}", pushed.digest);
    assert!(!format!("{registry:?}").contains("s3cret-pass"), "Debug output leaks the password");

    let anonymous = tempfile::tempdir().unwrap();
    let output = Command::new("docker")
        .args(["--config", anonymous.path().to_str().unwrap(), "pull", &pushed.reference])
        .output()
        .unwrap();
    assert!(!output.status.success(), "an anonymous pull of {} succeeded", pushed.reference);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("no basic auth credentials") || stderr.contains("unauthorized"), "{stderr}");
}

#[test]
fn stopped_registry_refuses_pulls_and_comes_back_with_its_images() {
    require_docker();
    let mut registry = Registry::start();
    let reference = registry.push(&Image::V2, "kept", "v2");
    registry.stop();
    assert!(!registry.is_running());
    assert!(try_docker(&["pull", &reference]).is_err(), "pulled {reference} from a stopped registry");

    registry.start_again();
    assert!(registry.is_running());
    docker(&["pull", &reference]);
    docker(&["image", "rm", &reference]);
}

#[test]
fn container_guard_removes_labelled_containers_even_when_the_test_panics() {
    require_docker();
    let id = unique_id();
    let local = Image::WORKER.build();
    let label = format!("slip.test={id}");
    let outcome = std::panic::catch_unwind(|| {
        let guard = ContainerGuard::new("slip.test", &id);
        docker(&["run", "--detach", "--label", guard.label(), &local]);
        docker(&["create", "--label", guard.label(), &local]);
        assert_eq!(guard.container_ids().len(), 2);
        panic!("the test body fails");
    });
    assert!(outcome.is_err());
    assert!(docker(&["ps", "--all", "--quiet", "--filter", &format!("label={label}")]).is_empty());
}

#[tokio::test]
async fn podman_runs_an_image_pulled_from_the_test_registry() {
    require_docker();
    require_podman();
    let id = unique_id();
    let guard = ContainerGuard::podman("slip.test", &id);
    let registry = Registry::start();
    let reference = registry.push(&Image::V2, &id, "v2");
    let port = free_port();
    let run = ["run", "--detach", "--label", guard.label(), "-p", &published(port), &reference];
    let container = podman(&run);
    let base = format!("http://127.0.0.1:{port}");
    wait_for_http(&format!("{base}/version")).await;
    assert_eq!(get(&format!("{base}/version")).await, (200, "v2".to_owned()));
    assert_eq!(guard.container_ids(), vec![container[..12].to_owned()]);

    drop(guard);
    assert!(podman(&["ps", "--all", "--quiet", "--filter", &format!("label=slip.test={id}")]).is_empty());
    podman(&["image", "rm", &reference]);
}

fn published(port: u16) -> String {
    format!("127.0.0.1:{port}:8080")
}

#[track_caller]
fn docker(args: &[&str]) -> String {
    try_docker(args).unwrap_or_else(|error| panic!("docker {} failed: {error}", args.join(" ")))
}

#[track_caller]
fn podman(args: &[&str]) -> String {
    try_engine("podman", args).unwrap_or_else(|error| panic!("podman {} failed: {error}", args.join(" ")))
}

fn try_docker(args: &[&str]) -> Result<String, String> {
    try_engine("docker", args)
}

fn try_engine(program: &str, args: &[&str]) -> Result<String, String> {
    let output = Command::new(program).args(args).output().map_err(|error| error.to_string())?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
    } else {
        Err(String::from_utf8_lossy(&output.stderr).trim().to_owned())
    }
}

/// Checks that `docker stop` (SIGTERM, then SIGKILL after 10 s) finishes well before the SIGKILL would.
#[track_caller]
fn assert_stops_promptly(container: &str) {
    let started = Instant::now();
    docker(&["stop", container]);
    assert!(started.elapsed() < Duration::from_secs(5), "docker stop took {:?}", started.elapsed());
    assert_eq!(docker(&["inspect", "--format", "{{.State.ExitCode}}", container]), "0");
}

async fn wait_for_http(url: &str) {
    let what = format!("{url} answers");
    wait_until_async(TIMEOUT, &what, || async { reqwest::get(url).await.is_ok() }).await;
}

async fn get(url: &str) -> (u16, String) {
    let response = reqwest::get(url).await.unwrap_or_else(|error| panic!("GET {url}: {error}"));
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}
