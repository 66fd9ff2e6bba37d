//! The Docker engine itself restarts under a running slipd (SPEC §18: "the engine restarts, or the host reboots").
//!
//! Restarting dockerd stops every container on the machine, so this test cannot share the machine with others:
//! it is `#[ignore]`d in the parallel run and `scripts/test.sh` runs it on its own right after the suite
//! (`cargo nextest run -p slip-daemon --test it --run-ignored only`).

use std::time::{Duration, Instant};

use slip_testenv::Image;

use crate::support::{TestDaemon, app_name, caddy_dials, web_app};

/// How long apps may take to serve again once the engine answers (the bound).
const BACK_WITHIN: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread")]
#[ignore = "restarts the Docker engine; scripts/test.sh runs it alone after the parallel suite"]
async fn every_app_serves_again_within_30s_of_a_docker_engine_restart() {
    let (blue, recreate) = (app_name("engine-bg"), app_name("engine-rc"));
    let (b, r) = (blue.clone(), recreate.clone());
    let d = TestDaemon::start(
        |reg| vec![(b.clone(), web_app(&b, reg, "")), (r.clone(), web_app(&r, reg, "strategy = \"recreate\""))],
        "",
    )
    .await;
    for app in [&blue, &recreate] {
        d.push(&Image::V1, app, "v1");
        d.push(&Image::V2, app, "v2");
        assert_eq!(d.deploy_and_wait(app, "v1").await.status, "completed");
        assert_eq!(d.deploy_and_wait(app, "v2").await.status, "completed");
    }

    restart_docker_engine();
    let engine_back = Instant::now();

    for app in [&blue, &recreate] {
        let host = format!("{app}.test");
        loop {
            if d.through_caddy(&host, "/version").await == (200, "v2".to_owned()) {
                break;
            }
            assert!(engine_back.elapsed() < BACK_WITHIN, "{app} not serving v2 within {BACK_WITHIN:?} of the restart");
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        // The route dials the port the engine bound after the restart, and nothing else of the app runs.
        let running = d.running_containers(app);
        assert_eq!(running.len(), 1, "{app}: one container runs: {running:?}");
        let bound = published_host_port(&running[0]);
        let dials = caddy_dials(&d.caddy, &host);
        assert_eq!(dials, [format!("127.0.0.1:{bound}")], "{app}: Caddy dials the bound port");
        assert_eq!(d.all_containers(app).len(), 1, "{app}: no stopped leftovers");
    }
    let status = d.status().await;
    for app in [&blue, &recreate] {
        assert_eq!(status["apps"][app.as_str()]["status"], "running", "{app}: {status}");
    }

    // And slipd still deploys through the restarted engine.
    assert_eq!(d.deploy_and_wait(&blue, "v1").await.status, "completed");
    assert_eq!(d.through_caddy(&format!("{blue}.test"), "/version").await, (200, "v1".to_owned()));
}

/// Restarts dockerd the way it runs here: through systemd when systemd manages it, else by stopping the process
/// and starting it again with the same command line (as `scripts/setup.sh` starts it). Returns once the engine
/// answers again.
fn restart_docker_engine() {
    let systemd = std::path::Path::new("/run/systemd/system").exists()
        && std::process::Command::new("systemctl")
            .args(["is-active", "--quiet", "docker"])
            .status()
            .is_ok_and(|s| s.success());
    if systemd {
        let status = std::process::Command::new("systemctl").args(["restart", "docker"]).status().expect("systemctl");
        assert!(status.success(), "systemctl restart docker: {status}");
    } else {
        let pid = dockerd_pid();
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).expect("dockerd's command line");
        let args: Vec<String> = cmdline
            .split(|b| *b == 0)
            .filter(|a| !a.is_empty())
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        let killed = std::process::Command::new("kill").args(["-TERM", &pid.to_string()]).status().expect("kill");
        assert!(killed.success(), "kill -TERM {pid}");
        let deadline = Instant::now() + Duration::from_secs(90);
        while std::path::Path::new(&format!("/proc/{pid}")).exists() {
            assert!(Instant::now() < deadline, "dockerd {pid} did not exit within 90s of SIGTERM");
            std::thread::sleep(Duration::from_millis(100));
        }
        let log = std::fs::OpenOptions::new().create(true).append(true).open("/var/log/dockerd.log").expect("log");
        // `setsid --fork` detaches dockerd from this test process and returns at once.
        let started = std::process::Command::new("setsid")
            .arg("--fork")
            .args(&args)
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .status()
            .expect("start dockerd again");
        assert!(started.success(), "setsid --fork {args:?}: {started}");
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let info = std::process::Command::new("docker").args(["info", "--format", "{{.ServerVersion}}"]).output();
        if info.is_ok_and(|o| o.status.success()) {
            return;
        }
        assert!(Instant::now() < deadline, "the Docker engine did not answer within 60s of its restart");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn dockerd_pid() -> u32 {
    let out = std::process::Command::new("pgrep").args(["-x", "dockerd"]).output().expect("pgrep");
    let text = String::from_utf8_lossy(&out.stdout);
    let pids: Vec<u32> = text.lines().filter_map(|l| l.trim().parse().ok()).collect();
    assert_eq!(pids.len(), 1, "exactly one dockerd runs: {pids:?}");
    pids[0]
}

/// The host port a container publishes (slip publishes one per route).
fn published_host_port(container: &str) -> u16 {
    let out = std::process::Command::new("docker")
        .args(["inspect", "--format", "{{json .NetworkSettings.Ports}}", container])
        .output()
        .expect("docker inspect");
    let ports: serde_json::Value = serde_json::from_slice(&out.stdout).expect("ports JSON");
    let bindings: Vec<u16> = ports
        .as_object()
        .expect("a port map")
        .values()
        .flat_map(|b| b.as_array().cloned().unwrap_or_default())
        .filter_map(|b| b["HostPort"].as_str()?.parse().ok())
        .collect();
    assert_eq!(bindings.len(), 1, "{container} publishes one port: {ports}");
    bindings[0]
}
