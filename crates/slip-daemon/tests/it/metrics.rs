//! `/metrics` end to end (SPEC §17.2): behind `auth.metrics_token`, parsed by a Prometheus text-format parser, and
//! its counters move with real deploys.

use std::collections::BTreeMap;

use prometheus_parse::{Sample, Scrape, Value};
use slip_testenv::Image;

use crate::support::{TOKEN, TestDaemon, app_name, web_app};

const METRICS_TOKEN: &str = "metrics-scraper-token-0123456789";

async fn scrape(d: &TestDaemon, token: Option<&str>) -> (u16, String) {
    let mut request = d.http.get(d.url("/metrics"));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.expect("/metrics answers");
    (response.status().as_u16(), response.text().await.unwrap())
}

fn parse(text: &str) -> Scrape {
    Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).expect("/metrics is Prometheus text format")
}

/// The value of the sample `name` whose labels include `labels`, or 0 when there is none.
fn value(scrape: &Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    let matching: Vec<&Sample> = scrape
        .samples
        .iter()
        .filter(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .collect();
    matching
        .iter()
        .map(|s| match &s.value {
            Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => *v,
            Value::Histogram(buckets) => buckets.iter().map(|b| b.count).fold(0.0, f64::max),
            Value::Summary(_) => panic!("{name} is not a summary"),
        })
        .sum()
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_need_the_metrics_token_parse_as_prometheus_text_and_move_with_deploys() {
    let app = app_name("metrics");
    let a = app.clone();
    let d = TestDaemon::start(|reg| vec![(a.clone(), web_app(&a, reg, ""))], "").await;
    // The metrics token, set through a reload of slip.toml.
    let slip_toml = d.config_dir().join("slip.toml");
    let text = std::fs::read_to_string(&slip_toml).unwrap();
    std::fs::write(&slip_toml, text.replace("[auth]\n", &format!("[auth]\nmetrics_token = \"{METRICS_TOKEN}\"\n")))
        .unwrap();
    let mut live = d.http.get(d.url("/v1/events")).bearer_auth(TOKEN).send().await.unwrap();
    assert_eq!(live.status(), 200);
    let reloaded = d.http.post(d.url("/v1/config/reload")).bearer_auth(TOKEN).send().await.unwrap();
    assert_eq!(reloaded.status(), 200, "{}", reloaded.text().await.unwrap());
    // The live stream announces the reload (SPEC §17.3 `config.reloaded`).
    let mut seen = String::new();
    let read = tokio::time::timeout(std::time::Duration::from_secs(30), async {
        while !seen.contains("event: config.reloaded") {
            match live.chunk().await.unwrap() {
                Some(chunk) => seen.push_str(&String::from_utf8_lossy(&chunk)),
                None => break,
            }
        }
    })
    .await;
    assert!(read.is_ok() && seen.contains("event: config.reloaded"), "{seen}");
    drop(live);

    assert_eq!(scrape(&d, None).await.0, 401, "no token, no metrics");
    assert_eq!(scrape(&d, Some("not-the-token-at-all-000000")).await.0, 401);
    assert_eq!(scrape(&d, Some(TOKEN)).await.0, 200, "the admin token reads metrics too");
    let (status, text) = scrape(&d, Some(METRICS_TOKEN)).await;
    assert_eq!(status, 200);
    let before = parse(&text);
    let labels = [("app", app.as_str()), ("status", "completed")];
    assert_eq!(value(&before, "slip_deploys_total", &labels), 0.0);

    d.push(&Image::V1, &app, "v1");
    d.push(&Image::V2, &app, "v2");
    d.push(&Image::UNHEALTHY, &app, "bad");
    assert_eq!(d.deploy_and_wait(&app, "v1").await.status, "completed");
    assert_eq!(d.deploy_and_wait(&app, "v2").await.status, "completed");
    assert_eq!(d.deploy_and_wait(&app, "bad").await.status, "failed");

    let after = parse(&scrape(&d, Some(METRICS_TOKEN)).await.1);
    let webhook = [("app", app.as_str()), ("trigger", "webhook"), ("kind", "web"), ("strategy", "blue-green")];
    assert_eq!(value(&after, "slip_deploys_total", &[webhook.as_slice(), &[("status", "completed")]].concat()), 2.0);
    assert_eq!(value(&after, "slip_deploys_total", &[webhook.as_slice(), &[("status", "failed")]].concat()), 1.0);
    assert_eq!(value(&after, "slip_deploy_duration_seconds_count", &labels), 2.0, "{text}");
    assert!(value(&after, "slip_deploy_step_duration_seconds_count", &[("step", "health_checking")]) >= 3.0);
    assert!(value(&after, "slip_webhooks_total", &[("result", "accepted")]) >= 3.0);
    assert!(value(&after, "slip_auth_failures_total", &[("kind", "token")]) >= 1.0, "the refused scrapes count");
    assert_eq!(value(&after, "slip_app_up", &[("app", app.as_str())]), 1.0);
    let v2: BTreeMap<&str, &str> = after
        .samples
        .iter()
        .filter(|s| s.metric == "slip_app_release_info" && s.labels.get("app") == Some(app.as_str()))
        .filter(|s| matches!(s.value, Value::Gauge(v) if v == 1.0))
        .map(|s| ("tag", s.labels.get("tag").unwrap()))
        .collect();
    assert_eq!(v2.get("tag"), Some(&"v2"), "the failed deploy left v2 current");
    assert_eq!(value(&after, "slip_runtime_up", &[]), 1.0);
    assert_eq!(value(&after, "slip_deploys_running", &[]), 0.0);
    assert_eq!(value(&after, "slip_build_info", &[("version", env!("CARGO_PKG_VERSION"))]), 1.0);
    assert!(value(&after, "slip_http_requests_total", &[("route", "/v1/deploy"), ("status", "202")]) >= 3.0);
}
