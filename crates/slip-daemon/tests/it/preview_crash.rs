//! Crash safety of preview deploys (SPEC §13.6, §18) with the real `slipd` binary: slipd aborts (the test-only
//! `SLIP_FAULT_*` switch, as `kill -9` would) during a preview's first deploy and during a redeploy, at steps before
//! and after the switch. After a restart the preview serves the new release, exactly one container of the preview
//! exists, and production's container is the one it was.

use std::os::unix::process::ExitStatusExt;
use std::time::Duration;

use slip_testenv::{Image, Registry};

use crate::previews::{PREVIEWS_ON, preview_containers, preview_webhook_to};
use crate::support::{ProcessConfig, SlipdProcess, app_name, containers_of, web_app_with_image};

#[tokio::test(flavor = "multi_thread")]
async fn a_crash_mid_preview_deploy_leaves_no_orphan_after_a_restart() {
    slip_testenv::require_docker();
    let registry = Registry::start();
    // (fault point, whether the preview already served before the crashing deploy)
    let cases =
        [("starting:acted", false), ("health_checking", true), ("switching:committed", true), ("draining", true)];
    let mut failures = Vec::new();
    for (fault, redeploy) in cases {
        let outcome = std::panic::AssertUnwindSafe(case(&registry, fault, redeploy));
        if let Err(panic) = futures::FutureExt::catch_unwind(outcome).await {
            let text = panic.downcast_ref::<String>().cloned().unwrap_or_else(|| format!("{panic:?}"));
            failures.push(format!("abort after {fault} (redeploy: {redeploy}): {text}"));
        }
    }
    assert!(failures.is_empty(), "{} case(s) failed:\n\n{}", failures.len(), failures.join("\n\n"));
}

async fn case(registry: &Registry, fault: &str, redeploy: bool) {
    let app = app_name("pvcrash");
    tokio::task::block_in_place(|| {
        registry.push(&Image::V1, &app, "v1");
        registry.push(&Image::release("p1").with_file("/slip/slip.toml", PREVIEWS_ON), &app, "p1");
        registry.push(&Image::release("p2").with_file("/slip/slip.toml", PREVIEWS_ON), &app, "p2");
    });
    let domain = format!("{app}.pv.test");
    let image = format!("{}/{app}", registry.host());
    let config =
        ProcessConfig { extra_slip_toml: format!("[preview]\ndomain = \"{domain}\"\n"), ..ProcessConfig::default() };
    let mut slipd = SlipdProcess::new(vec![(app.clone(), web_app_with_image(&app, &image, ""))], config);
    let armed = [("SLIP_FAULT_INJECTION", "1"), ("SLIP_FAULT_ABORT_AFTER", fault), ("SLIP_FAULT_ABORT_TAG", "p2")];
    slipd.start(&armed).await;
    let api = slipd.api.clone();
    assert_eq!(api.deploy_and_wait(&app, "v1").await.status, "completed", "{}", slipd.log());
    let production: Vec<String> =
        containers_of(&app, true).into_iter().filter(|c| !preview_containers(&app, "pr-1").contains(c)).collect();
    let deploy_url = api.url("/v1/deploy");
    if redeploy {
        let (status, body) =
            preview_webhook_to(&api.http, &deploy_url, &app, "p1", serde_json::json!({"id": "pr-1"})).await;
        assert_eq!(status, 202, "{body}");
        let first = api.wait_deploy(body["deploy_id"].as_str().unwrap(), Duration::from_secs(120)).await;
        assert_eq!(first.status, "completed", "{first:?}\n{}", slipd.log());
    }
    let (status, body) =
        preview_webhook_to(&api.http, &deploy_url, &app, "p2", serde_json::json!({"id": "pr-1"})).await;
    assert_eq!(status, 202, "{body}");
    let crashing = body["deploy_id"].as_str().unwrap().to_owned();
    let exit = slipd.wait_exit(Duration::from_secs(60)).await;
    assert_eq!(exit.signal(), Some(6), "slipd aborted after {fault}: {exit:?}\n{}", slipd.log());

    slipd.start(&[]).await;
    let done = api.wait_deploy(&crashing, Duration::from_secs(120)).await;
    assert_eq!(done.status, "completed", "after the restart: {done:?}\n{}", slipd.log());
    let host = format!("pr-1.{domain}");
    assert_eq!(api.through_caddy(&host, "/version").await, (200, "p2".to_owned()), "{}", slipd.log());
    let previews = preview_containers(&app, "pr-1");
    assert_eq!(previews.len(), 1, "exactly one container of the preview: {previews:?}\n{}", slipd.log());
    let left: Vec<String> = containers_of(&app, true).into_iter().filter(|c| !previews.contains(c)).collect();
    assert_eq!(left, production, "production's container is untouched");
    assert_eq!(api.through_caddy(&format!("{app}.test"), "/version").await, (200, "v1".to_owned()));
    let exit = slipd.terminate(Duration::from_secs(60)).await;
    assert!(exit.success(), "slipd stopped cleanly: {exit:?}");
}
