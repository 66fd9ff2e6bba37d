//! Drain end to end (SPEC's blue-green drain): a slow request in flight on the old release when the route switches
//! finishes whole, and the old release is stopped only after it.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use reqwest::header::HeaderValue;
use slip_bench::client::{Client, Outcome};
use slip_testenv::{Image, wait_until_async};

use crate::support::{TestDaemon, app_name, caddy_dials};

/// How long the slow request takes on the app (busybox httpd's `/cgi-bin/slow?N`).
const SLOW_SECS: u64 = 12;

/// A web app whose drain waits up to 60 s for in-flight requests.
fn drain_app(name: &str, registry: &str) -> String {
    format!(
        r#"[app]
name = "{name}"
image = "{registry}/{name}"

[routing]
domain = "{name}.test"
port = 8080

[health]
path = "/health"
interval = "200ms"
timeout = "2s"
retries = 3
start_period = "20s"

[deploy]
drain_timeout = "60s"
stop_grace = "2s"
"#
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_slow_request_in_flight_at_the_switch_finishes_whole_and_the_old_release_stops_after_it() {
    let app = app_name("drain");
    let a = app.clone();
    let d = TestDaemon::start(|reg| vec![(a.clone(), drain_app(&a, reg))], "").await;
    d.push(&Image::V1, &app, "v1");
    // The candidate sleeps 3 s before it listens, so the deploy sits in health_checking while the slow request starts.
    d.push(&Image::slow_start(3).with_version("v2"), &app, "v2");
    let host = format!("{app}.test");
    assert_eq!(d.deploy_and_wait(&app, "v1").await.status, "completed");
    let old = d.running_containers(&app);
    assert_eq!(old.len(), 1, "{old:?}");
    let old = full_id(&old[0]);
    let old_dial = caddy_dials(&d.caddy, &host);
    assert_eq!(old_dial.len(), 1, "one upstream for v1: {old_dial:?}");
    let old_dial = old_dial[0].clone();

    let deploy = d.deploy(&app, "v2").await;
    wait_until_async(Duration::from_secs(60), "the v2 deploy is health-checking its candidate", || async {
        let status = d.get_deploy(&deploy.deploy_id).await.status;
        assert!(!["completed", "failed"].contains(&status.as_str()), "v2 ended {status} before health_checking");
        status == "health_checking"
    })
    .await;

    // The slow request goes out now, on its own connection, while only v1 is routed.
    let sent_at = SystemTime::now();
    let started = Instant::now();
    let authority = format!("127.0.0.1:{}", d.caddy.http_port());
    let slow_host = HeaderValue::from_str(&host).unwrap();
    let slow = tokio::spawn(async move {
        let mut client = Client::new(&authority, Duration::from_secs(120));
        client.get(&format!("/cgi-bin/slow?{SLOW_SECS}"), &slow_host).await
    });
    wait_until_async(Duration::from_secs(30), "Caddy counts the slow request in flight on v1's upstream", || {
        let caddy = &d.caddy;
        let dial = old_dial.clone();
        async move { tokio::task::block_in_place(|| in_flight(caddy, &dial)) == 1 }
    })
    .await;
    assert!(!slow.is_finished(), "the slow request is still running when it is seen in flight");

    // The switch: v2 answers new requests while the slow one still runs on v1.
    wait_until_async(Duration::from_secs(60), "the route switches to v2", || async {
        d.through_caddy(&host, "/version").await == (200, "v2".to_owned())
    })
    .await;
    assert!(
        !slow.is_finished(),
        "the route switched only after the slow request had finished ({:?} after it was sent): the test proves \
         nothing about drain on a machine this slow",
        started.elapsed()
    );

    let answer = slow.await.unwrap();
    assert_eq!(
        answer,
        Outcome::Answered { status: 200, body: format!("slow v1 done after {SLOW_SECS}s\n") },
        "the request in flight at the switch finished whole, on the old release"
    );
    assert!(started.elapsed() >= Duration::from_secs(SLOW_SECS), "the answer took the app's {SLOW_SECS} s");

    let done = d.wait_deploy(&deploy.deploy_id, Duration::from_secs(120)).await;
    assert_eq!(done.status, "completed", "{done:?}");
    assert!(
        started.elapsed() < Duration::from_secs(SLOW_SECS + 40),
        "drain ended when the slow request did, not at drain_timeout (60 s): {:?}",
        started.elapsed()
    );
    assert_eq!(d.all_containers(&app).len(), 1, "the old release was removed after its drain");

    // The engine's record: the old container got its first stop signal no earlier than the slow answer could have
    // been complete (the app answered SLOW_SECS after the request was sent).
    let stop_signal = first_kill(&old, sent_at);
    let earliest = sent_at + Duration::from_secs(SLOW_SECS);
    assert!(
        stop_signal >= earliest,
        "the old release was signalled {:?} before the slow request could have finished",
        earliest.duration_since(stop_signal).unwrap_or_default()
    );
}

/// The full id of a container.
fn full_id(container: &str) -> String {
    let out = std::process::Command::new("docker")
        .args(["inspect", "--format", "{{.Id}}", container])
        .output()
        .expect("docker inspect");
    assert!(out.status.success(), "docker inspect {container}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Requests Caddy has in flight to `dial`, from its admin API's `GET /reverse_proxy/upstreams`.
fn in_flight(caddy: &slip_testenv::caddy::Caddy, dial: &str) -> u64 {
    let upstreams = caddy.get_json("/reverse_proxy/upstreams");
    upstreams
        .as_array()
        .into_iter()
        .flatten()
        .filter(|u| u["address"] == dial)
        .filter_map(|u| u["num_requests"].as_u64())
        .sum()
}

/// When the engine first sent `container` a signal (`kill` event: `docker stop`'s SIGTERM) since `since`.
fn first_kill(container: &str, since: SystemTime) -> SystemTime {
    let since = since.duration_since(UNIX_EPOCH).unwrap().as_secs().saturating_sub(1).to_string();
    let until = (SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() + 1).to_string();
    let filter = format!("container={container}");
    let out = std::process::Command::new("docker")
        .args(["events", "--since", &since, "--until", &until, "--filter", &filter, "--filter", "event=kill"])
        .args(["--format", "{{.TimeNano}}"])
        .output()
        .expect("docker events");
    assert!(out.status.success(), "docker events: {}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    let nanos: u64 = text
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .min()
        .unwrap_or_else(|| panic!("the engine recorded no kill of the old container {container}: {text:?}"));
    UNIX_EPOCH + Duration::from_nanos(nanos)
}
