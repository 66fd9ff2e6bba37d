//! Preview environments end to end (SPEC §13) against real Docker, Caddy and a registry: previews on their own
//! hostnames beside an untouched production, blue-green inside a preview, the cap with eviction after the new one
//! serves, the repo config gate, preview-scope secrets, teardown by signed DELETE and expiry by TTL.

use std::time::{Duration, Instant};

use slip_core::signature::{self, Signed};
use slip_testenv::Image;

use crate::support::{Load, SECRET, TOKEN, TestDaemon, app_name, web_app};

/// The repo config that lets an image run as a preview.
pub(crate) const PREVIEWS_ON: &str = "[preview]\nenabled = true\n";

/// A web image reporting `version` that allows previews.
fn preview_image(version: &str) -> Image {
    Image::release(version).with_file("/slip/slip.toml", PREVIEWS_ON)
}

fn now_secs() -> String {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs().to_string()
}

/// Sends a timestamped, signed deploy webhook for a preview; returns the status and the JSON answer.
async fn preview_webhook(d: &TestDaemon, app: &str, tag: &str, preview: serde_json::Value) -> (u16, serde_json::Value) {
    preview_webhook_to(&d.http, &d.url("/v1/deploy"), app, tag, preview).await
}

/// [`preview_webhook`] to the deploy endpoint at `url`.
pub(crate) async fn preview_webhook_to(
    http: &reqwest::Client,
    url: &str,
    app: &str,
    tag: &str,
    preview: serde_json::Value,
) -> (u16, serde_json::Value) {
    let body = serde_json::json!({"app": app, "tag": tag, "preview": preview}).to_string();
    let ts = now_secs();
    let sig = signature::header_value(SECRET.as_bytes(), &Signed::Deploy { timestamp: &ts, body: body.as_bytes() });
    let r = http
        .post(url)
        .header("content-type", "application/json")
        .header("x-slip-signature", sig)
        .header("x-slip-timestamp", ts)
        .body(body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(serde_json::Value::Null))
}

/// Deploys preview `id` of `app` at `tag`, waits for its end and returns the deploy and the 202's `preview_url`.
async fn deploy_preview(d: &TestDaemon, app: &str, tag: &str, id: &str) -> (slip_api::Deploy, Option<String>) {
    let (status, body) = preview_webhook(d, app, tag, serde_json::json!({"id": id, "sha": "abc123f"})).await;
    assert_eq!(status, 202, "{body}");
    let url = body["preview_url"].as_str().map(str::to_owned);
    let deploy = d.wait_deploy(body["deploy_id"].as_str().unwrap(), Duration::from_secs(120)).await;
    (deploy, url)
}

/// A signed request other than a deploy (`DELETE`, `GET`) for `app`'s key.
async fn signed(d: &TestDaemon, method: reqwest::Method, path: &str) -> (u16, serde_json::Value) {
    let ts = now_secs();
    let sig = signature::header_value(
        SECRET.as_bytes(),
        &Signed::Request { timestamp: &ts, method: method.as_str(), target: path, body: b"" },
    );
    let r = d
        .http
        .request(method, d.url(path))
        .header("x-slip-signature", sig)
        .header("x-slip-timestamp", ts)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(serde_json::Value::Null))
}

async fn preview_object(d: &TestDaemon, app: &str, id: &str) -> serde_json::Value {
    let url = d.url(&format!("/v1/previews/{app}/{id}"));
    d.http.get(url).bearer_auth(TOKEN).send().await.unwrap().json().await.unwrap()
}

/// Ids of the containers (any state) of preview `id` of `app`.
pub(crate) fn preview_containers(app: &str, id: &str) -> Vec<String> {
    docker_ps(&["-a", "--filter", &format!("label=slip.app={app}"), "--filter", &format!("label=slip.preview={id}")])
}

fn docker_ps(args: &[&str]) -> Vec<String> {
    let out = std::process::Command::new("docker").arg("ps").args(args).args(["--format", "{{.ID}}"]).output();
    String::from_utf8(out.unwrap().stdout).unwrap().lines().map(str::to_owned).collect()
}

/// The environment of container `name`.
fn container_env(name: &str) -> Vec<String> {
    let out = std::process::Command::new("docker")
        .args(["inspect", "--format", "{{json .Config.Env}}", name])
        .output()
        .unwrap();
    serde_json::from_slice(&out.stdout).unwrap()
}

async fn wait_for(what: &str, timeout: Duration, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !check().await {
        assert!(Instant::now() < deadline, "{what}: not within {timeout:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn app_with_previews(app: &str, registry: &str, preview_section: &str) -> String {
    format!("{}\n[preview]\n{preview_section}\n", web_app(app, registry, ""))
}

#[tokio::test(flavor = "multi_thread")]
async fn previews_serve_their_own_urls_blue_green_while_production_serves_untouched() {
    let app = app_name("pv");
    let a = app.clone();
    let domain = format!("{app}.pv.test");
    let d = TestDaemon::start(
        |reg| vec![(a.clone(), app_with_previews(&a, reg, "max = 2"))],
        &format!("[preview]\ndomain = \"{domain}\"\n"),
    )
    .await;
    d.push(&Image::V1, &app, "v1");
    for v in ["pa", "pa2", "pb"] {
        d.push(&preview_image(v), &app, v);
    }
    d.push(&Image::UNHEALTHY.with_file("/slip/slip.toml", PREVIEWS_ON), &app, "bad");
    d.push(&Image::slow_start(3).with_file("/slip/slip.toml", PREVIEWS_ON), &app, "pc");
    d.put_secret(&app, "PROD_ONLY", "production-secret-value").await;
    let r = d
        .http
        .put(d.url(&format!("/v1/secrets/{app}/PV_ONLY")))
        .bearer_auth(TOKEN)
        .json(&serde_json::json!({"value": "preview-secret-value", "scope": "preview"}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());

    let prod_host = format!("{app}.test");
    assert_eq!(d.deploy_and_wait(&app, "v1").await.status, "completed");
    let production = d.running_containers(&app);
    let load = Load::start(d.caddy.http_port(), &prod_host, "/version", 2, &["v1"]);

    // Two previews, each on its own hostname.
    let (first, url) = deploy_preview(&d, &app, "pa", "pr-1").await;
    assert_eq!(first.status, "completed", "{first:?}");
    assert_eq!(url.as_deref(), Some(format!("http://pr-1.{domain}").as_str()), "tls off: http");
    assert_eq!(d.through_caddy(&format!("pr-1.{domain}"), "/version").await, (200, "pa".into()));
    let (second, _) = deploy_preview(&d, &app, "pb", "pr-2").await;
    assert_eq!(second.status, "completed", "{second:?}");
    assert_eq!(d.through_caddy(&format!("pr-2.{domain}"), "/version").await, (200, "pb".into()));
    assert_eq!(d.through_caddy(&format!("pr-1.{domain}"), "/version").await, (200, "pa".into()));

    // Preview scope only: no production secret, slip's preview variables.
    let pr1 = preview_containers(&app, "pr-1");
    assert_eq!(pr1.len(), 1, "{pr1:?}");
    let env = container_env(&pr1[0]);
    assert!(env.contains(&"PV_ONLY=preview-secret-value".to_owned()), "{env:?}");
    assert!(env.contains(&"SLIP_PREVIEW_ID=pr-1".to_owned()), "{env:?}");
    assert!(env.contains(&format!("SLIP_PREVIEW_URL=http://pr-1.{domain}")), "{env:?}");
    assert!(!env.iter().any(|e| e.starts_with("PROD_ONLY=")), "production secrets stay out: {env:?}");

    // A redeploy keeps the URL and replaces its own instance only; a failed one leaves the preview serving.
    let (redeploy, url) = deploy_preview(&d, &app, "pa2", "pr-1").await;
    assert_eq!(redeploy.status, "completed", "{redeploy:?}");
    assert_eq!(url.as_deref(), Some(format!("http://pr-1.{domain}").as_str()));
    assert_eq!(d.through_caddy(&format!("pr-1.{domain}"), "/version").await, (200, "pa2".into()));
    assert_eq!(preview_containers(&app, "pr-1").len(), 1, "the old preview instance is gone");
    let (failed, _) = deploy_preview(&d, &app, "bad", "pr-2").await;
    assert_eq!(failed.status, "failed", "{failed:?}");
    assert_eq!(d.through_caddy(&format!("pr-2.{domain}"), "/version").await, (200, "pb".into()));
    assert_eq!(preview_object(&d, &app, "pr-2").await["status"], "running");

    // A third preview over the cap of 2: the oldest (pr-2, deployed before pr-1's redeploy) goes only once the new
    // one serves.
    let (status, body) = preview_webhook(&d, &app, "pc", serde_json::json!({"id": "pr-3"})).await;
    assert_eq!(status, 202, "{body}");
    let third = body["deploy_id"].as_str().unwrap().to_owned();
    wait_for("pr-3 health checking", Duration::from_secs(60), async || {
        d.get_deploy(&third).await.status == "health_checking"
    })
    .await;
    assert_eq!(d.through_caddy(&format!("pr-2.{domain}"), "/version").await, (200, "pb".into()), "not evicted yet");
    assert_eq!(d.wait_deploy(&third, Duration::from_secs(120)).await.status, "completed");
    wait_for("pr-2 evicted", Duration::from_secs(30), async || {
        preview_object(&d, &app, "pr-2").await["status"] == "torn_down"
    })
    .await;
    assert!(preview_containers(&app, "pr-2").is_empty());
    assert_eq!(d.through_caddy(&format!("pr-3.{domain}"), "/version").await, (200, "slow-start".into()));
    assert_eq!(d.through_caddy(&format!("pr-1.{domain}"), "/version").await, (200, "pa2".into()));

    // Teardown by a signed DELETE; idempotent.
    let path = format!("/v1/previews/{app}/pr-1");
    assert_eq!(
        signed(&d, reqwest::Method::DELETE, &path).await,
        (200, serde_json::json!({"status": "ok", "torn_down": true}))
    );
    assert!(preview_containers(&app, "pr-1").is_empty());
    assert_ne!(d.through_caddy(&format!("pr-1.{domain}"), "/version").await.1, "pa2", "no route is left");
    assert_eq!(signed(&d, reqwest::Method::DELETE, &path).await.1["torn_down"], false);

    let seen = load.stop().await;
    seen.assert_every_answer_right(20);
    assert_eq!(d.running_containers(&app).iter().filter(|c| production.contains(c)).count(), 1, "production untouched");
    let status = d.status().await;
    assert_eq!(status["apps"][&app]["status"], "running");
    assert_eq!(status["apps"][&app]["tag"], "v1");
    assert_eq!(status["apps"][&app]["previews"], 1, "only pr-3 is live");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_expired_preview_is_reaped_on_time_and_leaves_nothing_behind() {
    let app = app_name("pvttl");
    let a = app.clone();
    let domain = format!("{app}.pv.test");
    let d = TestDaemon::start_with_storage(
        |reg, storage| {
            let volume = storage.join("volumes").join(&a);
            let volumes = format!(
                "\n[[volumes]]\nhost_path = \"{}\"\nmount_path = \"/data\"\nread_only = false\n",
                volume.display()
            );
            vec![(a.clone(), format!("{}{volumes}", app_with_previews(&a, reg, "")))]
        },
        &format!("[preview]\ndomain = \"{domain}\"\n"),
    )
    .await;
    d.push(&preview_image("pt"), &app, "pt");
    let mut live = d.http.get(d.url(&format!("/v1/events?app={app}"))).bearer_auth(TOKEN).send().await.unwrap();
    assert_eq!(live.status(), 200);
    let (status, body) = preview_webhook(&d, &app, "pt", serde_json::json!({"id": "pr-9", "ttl": "4s"})).await;
    assert_eq!(status, 202, "{body}");
    let deploy = d.wait_deploy(body["deploy_id"].as_str().unwrap(), Duration::from_secs(120)).await;
    assert_eq!(deploy.status, "completed", "{deploy:?}");
    let volume_dir = d.storage().join("preview-volumes").join(&app).join("pr-9");
    assert!(volume_dir.join("0").is_dir(), "an isolated, empty volume directory");
    assert_eq!(d.through_caddy(&format!("pr-9.{domain}"), "/version").await, (200, "pt".into()));

    wait_for("pr-9 reaped", Duration::from_secs(30), async || {
        preview_object(&d, &app, "pr-9").await["status"] == "torn_down"
    })
    .await;
    assert!(preview_containers(&app, "pr-9").is_empty());
    assert!(!volume_dir.exists(), "volume directories go with the preview");
    // The live stream said so (SPEC §17.3): created at the webhook, expired when the reaper took it.
    let mut seen = String::new();
    let read = tokio::time::timeout(Duration::from_secs(30), async {
        while !seen.contains("event: preview.expired") {
            match live.chunk().await.unwrap() {
                Some(chunk) => seen.push_str(&String::from_utf8_lossy(&chunk)),
                None => break,
            }
        }
    })
    .await;
    assert!(read.is_ok(), "no preview.expired within 30 s: {seen}");
    let created = seen.find("event: preview.created").expect("preview.created was announced");
    assert!(created < seen.find("event: preview.expired").unwrap(), "{seen}");
    assert!(!seen.contains("event: preview.torn_down"), "an expiry is announced as preview.expired: {seen}");
    drop(live);
    assert_ne!(d.through_caddy(&format!("pr-9.{domain}"), "/version").await.1, "pt");
}

#[tokio::test(flavor = "multi_thread")]
async fn previews_are_refused_without_the_repo_gate_a_domain_or_a_valid_id() {
    let app = app_name("pvgate");
    let other = app_name("pvother");
    let (a, o) = (app.clone(), other.clone());
    let domain = format!("{app}.pv.test");
    let dom = domain.clone();
    let d = TestDaemon::start(
        move |reg| {
            let taken = format!(
                "[app]\nname = \"{o}\"\nimage = \"{reg}/{o}\"\n\n[routing]\ndomain = \"pr-7.{dom}\"\nport = 8080\n"
            );
            vec![(a.clone(), app_with_previews(&a, reg, "")), (o.clone(), taken)]
        },
        &format!("[preview]\ndomain = \"{domain}\"\n"),
    )
    .await;
    d.push(&Image::V1, &app, "plain");
    d.push(&Image::V1.with_file("/slip/slip.toml", "[preview]\nenabled = false\n"), &app, "off");

    let (no_config, _) = deploy_preview(&d, &app, "plain", "pr-1").await;
    assert_eq!(no_config.status, "failed");
    assert_eq!(no_config.detail.unwrap().error_code.as_deref(), Some("preview_requires_repo_config"));
    let (off, _) = deploy_preview(&d, &app, "off", "pr-2").await;
    assert_eq!(off.detail.unwrap().error_code.as_deref(), Some("preview_disabled"));
    assert_eq!(preview_object(&d, &app, "pr-2").await["status"], "failed");
    assert!(preview_containers(&app, "pr-1").is_empty() && preview_containers(&app, "pr-2").is_empty());

    let (status, body) = preview_webhook(&d, &app, "plain", serde_json::json!({"id": "PR_1"})).await;
    assert_eq!((status, body["code"].as_str()), (400, Some("invalid_preview_id")), "{body}");
    let (status, body) = preview_webhook(&d, &app, "plain", serde_json::json!({"id": "pr-7"})).await;
    assert_eq!((status, body["code"].as_str()), (409, Some("id_collision")), "{body}");
    let (status, body) = preview_webhook(&d, &other, "plain", serde_json::json!({"id": "pr-1"})).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (409, Some("id_collision")),
        "pr-1.{domain} is already app {app}'s preview: {body}"
    );
}
