//! Rollback by digest, image retention and the disk preflight, against real Docker, Caddy and a registry
//! (SPEC §7.6, §12).

use std::time::Duration;

use slip_api::Deploy;
use slip_core::signature::{self, Signed};
use slip_testenv::{Image, Registry};

use crate::support::{
    ProcessConfig, SECRET, SlipdProcess, TOKEN, TestDaemon, app_name, containers_of, web_app, web_app_with_image,
};

/// Rolling back with the registry stopped works, because the previous release's image is retained and a
/// pinned digest that is local is not pulled; rolling back again rolls forward.
#[tokio::test(flavor = "multi_thread")]
async fn rollback_restores_the_previous_release_by_digest_with_the_registry_stopped() {
    let app = app_name("rollback");
    let a = app.clone();
    let mut d = TestDaemon::start(|reg| vec![(a.clone(), web_app(&a, reg, ""))], "").await;
    d.push(&Image::V1, &app, "v1");
    d.push(&Image::V2, &app, "v2");
    let host = format!("{app}.test");
    let v1 = d.deploy_and_wait(&app, "v1").await;
    assert_eq!(d.deploy_and_wait(&app, "v2").await.status, "completed");
    d.registry.stop();

    let (status, body) = rollback_signed(&d, &app, "").await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["tag"], "v1");
    let done = d.wait_deploy(body["deploy_id"].as_str().unwrap(), Duration::from_secs(120)).await;
    assert_eq!(done.status, "completed", "{done:?}");
    assert_eq!(d.through_caddy(&host, "/version").await, (200, "v1".to_owned()));
    let detail = done.detail.clone().unwrap();
    assert_eq!(detail.trigger, "rollback");
    assert_eq!(detail.rollback_of.as_deref(), Some(v1.deploy_id.as_str()));
    assert_eq!(detail.images, v1.detail.clone().unwrap().images, "the same digest as the release restored");
    assert!(messages(&done).iter().any(|m| m.ends_with("is retained locally; not pulled")), "{done:?}");
    assert_eq!(d.all_containers(&app).len(), 1);

    // Two rollbacks in a row roll forward, still without a registry.
    let (status, body) = rollback_admin(&d, &app, "").await;
    assert_eq!(status, 202, "{body}");
    let done = d.wait_deploy(body["deploy_id"].as_str().unwrap(), Duration::from_secs(120)).await;
    assert_eq!(done.status, "completed", "{done:?}");
    assert_eq!(d.through_caddy(&host, "/version").await, (200, "v2".to_owned()));
}

/// A tag moved in the registry after the release does not change what a rollback to it runs: the rollback
/// pulls `repo@sha256:…` of the release it restores (the image is no longer local here), while a fresh deploy
/// of the same tag gets the moved image.
#[tokio::test(flavor = "multi_thread")]
async fn a_moved_tag_does_not_change_what_a_rollback_runs() {
    let app = app_name("pinned");
    let a = app.clone();
    let d = TestDaemon::start(|reg| vec![(a.clone(), web_app(&a, reg, ""))], "").await;
    d.push(&Image::V1, &app, "v1");
    d.push(&Image::V2, &app, "v2");
    let host = format!("{app}.test");
    let v1 = d.deploy_and_wait(&app, "v1").await;
    assert_eq!(d.deploy_and_wait(&app, "v2").await.status, "completed");
    let pinned = v1.detail.clone().unwrap().images["app"].clone();
    assert!(pinned.contains("@sha256:"), "{pinned}");

    // Forget v1 locally, and move the registry's v1 tag to another image.
    let repo = format!("{}/{app}", d.registry.host());
    let docker = |args: &[&str]| std::process::Command::new("docker").args(args).output().unwrap().status.success();
    assert!(docker(&["image", "rm", &format!("{repo}:v1")]), "docker image rm {repo}:v1");
    if docker(&["image", "inspect", &pinned]) {
        assert!(docker(&["image", "rm", &pinned]), "docker image rm {pinned}");
    }
    assert!(!docker(&["image", "inspect", &pinned]), "v1 is no longer local");
    d.push(&Image::release("moved"), &app, "v1");

    let (status, body) = rollback_signed(&d, &app, r#"{"to":"v1"}"#).await;
    assert_eq!(status, 202, "{body}");
    let done = d.wait_deploy(body["deploy_id"].as_str().unwrap(), Duration::from_secs(120)).await;
    assert_eq!(done.status, "completed", "{done:?}");
    assert_eq!(d.through_caddy(&host, "/version").await, (200, "v1".to_owned()), "the pinned digest runs");
    assert_eq!(done.detail.clone().unwrap().images["app"], pinned);
    assert!(!messages(&done).iter().any(|m| m.contains("not pulled")), "it was pulled by digest: {done:?}");

    let fresh = d.deploy_and_wait(&app, "v1").await;
    assert_eq!(fresh.status, "completed");
    assert_eq!(d.through_caddy(&host, "/version").await, (200, "moved".to_owned()), "the tag really moved");
}

/// A rollback answers with the release it restores, and one to the release the app already runs is refused
/// (409 `already_current`) without making a deploy.
#[tokio::test(flavor = "multi_thread")]
async fn rollback_names_its_target_and_refuses_the_running_release() {
    let app = app_name("target");
    let a = app.clone();
    let d = TestDaemon::start(|reg| vec![(a.clone(), web_app(&a, reg, ""))], "").await;
    d.push(&Image::V1, &app, "v1");
    d.push(&Image::V2, &app, "v2");
    let v1 = d.deploy_and_wait(&app, "v1").await;
    let v2 = d.deploy_and_wait(&app, "v2").await;
    assert_eq!(v2.status, "completed");

    for to in [r#"{"to":"v2"}"#.to_owned(), format!(r#"{{"to":"{}"}}"#, v2.deploy_id)] {
        let (status, body) = rollback_admin(&d, &app, &to).await;
        assert_eq!((status, body["code"].as_str()), (409, Some("already_current")), "{to}: {body}");
        assert_eq!(
            body["error"],
            format!("app {app} already runs release v2 ({}); there is nothing to roll back to", v2.deploy_id)
        );
    }
    let list: serde_json::Value = d
        .http
        .get(d.url(&format!("/v1/deploys?app={app}")))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["deploys"].as_array().unwrap().len(), 2, "no deploy was made: {list}");

    let (status, body) = rollback_admin(&d, &app, "").await;
    assert_eq!((status, body["tag"].as_str()), (202, Some("v1")), "{body}");
    let done = d.wait_deploy(body["deploy_id"].as_str().unwrap(), Duration::from_secs(120)).await;
    assert_eq!(done.detail.clone().unwrap().rollback_of.as_deref(), Some(v1.deploy_id.as_str()));
    let (status, body) = rollback_admin(&d, &app, r#"{"to":"v1"}"#).await;
    assert_eq!((status, body["code"].as_str()), (409, Some("already_current")), "v1 runs again now: {body}");
}

/// The rollback endpoint's refusals, each with its code (SPEC §6.3).
#[tokio::test(flavor = "multi_thread")]
async fn rollback_refusals_name_what_is_missing() {
    let app = app_name("norollback");
    let a = app.clone();
    let d = TestDaemon::start(|reg| vec![(a.clone(), web_app(&a, reg, ""))], "").await;
    d.push(&Image::V1, &app, "v1");

    let (status, body) = rollback_admin(&d, &app, "").await;
    assert_eq!((status, body["code"].as_str()), (409, Some("no_previous_release")), "{body}");
    assert_eq!(d.deploy_and_wait(&app, "v1").await.status, "completed");
    let (status, body) = rollback_admin(&d, &app, "").await;
    assert_eq!((status, body["code"].as_str()), (409, Some("no_previous_release")), "one release: {body}");
    let (status, body) = rollback_admin(&d, &app, r#"{"to":"v9"}"#).await;
    assert_eq!((status, body["code"].as_str()), (404, Some("release_not_found")), "{body}");
    let (status, body) = rollback_admin(&d, &app, r#"{"to":"dep_01jz0000000000000000000000"}"#).await;
    assert_eq!((status, body["code"].as_str()), (404, Some("release_not_found")), "{body}");
    let (status, body) = rollback_admin(&d, "no-such-app", "").await;
    assert_eq!((status, body["code"].as_str()), (404, Some("app_not_found")), "{body}");
    let (status, body) = rollback_signed(&d, "no-such-app", "").await;
    assert_eq!((status, body["code"].as_str()), (401, Some("invalid_signature")), "signed callers learn nothing");
    let (status, body) = rollback_admin(&d, &app, "{not json").await;
    assert_eq!((status, body["code"].as_str()), (400, Some("invalid_json")), "{body}");

    // A signed rollback without a timestamp is refused; a replayed one too.
    let path = format!("/v1/apps/{app}/rollback");
    let sig = signature::header_value(SECRET.as_bytes(), &Signed::LegacyDeploy { body: b"" });
    let r = d.http.post(d.url(&path)).header("x-slip-signature", sig).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let (ts, sig) = sign(&path, "");
    let send = || d.http.post(d.url(&path)).header("x-slip-signature", &sig).header("x-slip-timestamp", &ts).send();
    let first = send().await.unwrap();
    assert_eq!(first.status(), 409, "no previous release, but the delivery is recorded");
    let again: serde_json::Value = send().await.unwrap().json().await.unwrap();
    assert_eq!(again["code"], "replayed", "{again}");
}

/// After each completed deploy, only the images of the last three releases stay (SPEC §12), and the engine's
/// other images (here the test's own build of every release) are untouched.
#[tokio::test(flavor = "multi_thread")]
async fn only_the_last_three_releases_keep_their_images() {
    let app = app_name("retain");
    let a = app.clone();
    let d = TestDaemon::start(|reg| vec![(a.clone(), web_app(&a, reg, ""))], "").await;
    let versions = ["v1", "v2", "v3", "v4", "v5"];
    for v in versions {
        d.push(&Image::release(v), &app, v);
    }
    for v in versions {
        assert_eq!(d.deploy_and_wait(&app, v).await.status, "completed", "{v}");
    }
    let repo = format!("{}/{app}", d.registry.host());
    let local = docker_images(&repo);
    assert_eq!(local, ["v3", "v4", "v5"], "local images of {repo}");
    for v in versions {
        let built = Image::release(v).build();
        assert!(!docker_images(&built).is_empty(), "the test's own image {built} is not slip's to prune");
    }
    assert_eq!(d.through_caddy(&format!("{app}.test"), "/version").await, (200, "v5".to_owned()));
}

/// An image the host had before slip pulled it (built on the server and pushed from there) is never pruned, even
/// once it is far outside the retained releases; the releases slip pulled itself still are.
#[tokio::test(flavor = "multi_thread")]
async fn an_image_built_on_the_host_is_never_pruned() {
    let app = app_name("built");
    let a = app.clone();
    let d = TestDaemon::start(|reg| vec![(a.clone(), web_app(&a, reg, ""))], "").await;
    let repo = format!("{}/{app}", d.registry.host());
    let built = format!("{repo}:built");
    let docker = |args: &[&str]| {
        let out = std::process::Command::new("docker").args(args).output().unwrap();
        assert!(out.status.success(), "docker {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    docker(&["tag", &Image::UNHEALTHY.build(), &built]);
    let _untag = UntagOnDrop(built.clone());
    docker(&["push", &built]);
    let id = docker(&["image", "inspect", "--format", "{{.Id}}", &built]);

    assert_eq!(d.deploy_and_wait(&app, "built").await.status, "failed", "the built release is unhealthy");
    let versions = ["v1", "v2", "v3", "v4"];
    for v in versions {
        d.push(&Image::release(v), &app, v);
        assert_eq!(d.deploy_and_wait(&app, v).await.status, "completed", "{v}");
    }

    assert_eq!(docker_images(&repo), ["built", "v2", "v3", "v4"], "local images of {repo}");
    assert_eq!(docker(&["image", "inspect", "--format", "{{.Id}}", &built]), id);
}

/// Removes a local tag when the test ends, however it ends.
struct UntagOnDrop(String);

impl Drop for UntagOnDrop {
    fn drop(&mut self) {
        let _ = std::process::Command::new("docker").args(["image", "rm", &self.0]).output();
    }
}

/// Below `runtime.min_free_disk`, a deploy fails with `disk_full` before anything starts, and the running
/// release keeps serving.
#[tokio::test(flavor = "multi_thread")]
async fn a_pull_is_refused_when_disk_is_short_and_the_old_release_keeps_serving() {
    let registry = Registry::start();
    let app = app_name("disk");
    registry.push(&Image::V1, &app, "v1");
    registry.push(&Image::V2, &app, "v2");
    let image = format!("{}/{app}", registry.host());
    let mut slipd =
        SlipdProcess::new(vec![(app.clone(), web_app_with_image(&app, &image, ""))], ProcessConfig::default());
    slipd.start(&[]).await;
    assert_eq!(slipd.api.deploy_and_wait(&app, "v1").await.status, "completed", "{}", slipd.log());
    assert!(slipd.terminate(Duration::from_secs(60)).await.success());

    slipd.config.min_free_disk = Some("1000t".into());
    slipd.write_config();
    slipd.start(&[]).await;
    let failed = slipd.api.deploy_and_wait(&app, "v2").await;
    assert_eq!(failed.status, "failed");
    let detail = failed.detail.clone().unwrap();
    assert_eq!(detail.error_code.as_deref(), Some("disk_full"), "{failed:?}");
    let error = failed.error.clone().unwrap();
    assert!(error.starts_with("only ") && error.contains("1000 TiB required (runtime.min_free_disk)"), "{error}");
    let steps: Vec<&str> = detail.steps.iter().map(|s| s.status.as_str()).collect();
    assert_eq!(steps, ["pulling"], "nothing started");
    assert_eq!(slipd.api.through_caddy(&format!("{app}.test"), "/version").await, (200, "v1".to_owned()));
    assert_eq!(containers_of(&app, true).len(), 1);
}

async fn rollback_admin(d: &TestDaemon, app: &str, body: &str) -> (u16, serde_json::Value) {
    let mut request = d.http.post(d.url(&format!("/v1/apps/{app}/rollback"))).bearer_auth(TOKEN);
    if !body.is_empty() {
        request = request.header("content-type", "application/json").body(body.to_owned());
    }
    let r = request.send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or_default())
}

async fn rollback_signed(d: &TestDaemon, app: &str, body: &str) -> (u16, serde_json::Value) {
    let path = format!("/v1/apps/{app}/rollback");
    let (ts, sig) = sign(&path, body);
    let mut request = d.http.post(d.url(&path)).header("x-slip-signature", sig).header("x-slip-timestamp", ts);
    if !body.is_empty() {
        request = request.header("content-type", "application/json").body(body.to_owned());
    }
    let r = request.send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or_default())
}

/// `(timestamp, X-Slip-Signature)` for a signed POST of `body` to `path` with the global key.
fn sign(path: &str, body: &str) -> (String, String) {
    let ts = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs().to_string();
    let signed = Signed::Request { timestamp: &ts, method: "POST", target: path, body: body.as_bytes() };
    let sig = signature::header_value(SECRET.as_bytes(), &signed);
    (ts, sig)
}

fn messages(deploy: &Deploy) -> Vec<String> {
    deploy.detail.iter().flat_map(|d| d.events.iter().filter_map(|e| e.message.clone())).collect()
}

/// Tags (or `<none>`) of the local images of `repository`, sorted.
fn docker_images(repository: &str) -> Vec<String> {
    let out = std::process::Command::new("docker")
        .args(["image", "ls", "--format", "{{.Tag}}", repository])
        .output()
        .expect("docker image ls");
    let mut tags: Vec<String> = String::from_utf8_lossy(&out.stdout).lines().map(str::to_owned).collect();
    tags.sort();
    tags
}
