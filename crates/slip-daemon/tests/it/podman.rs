//! slip's core deploy paths on real Podman, through its API socket (`/run/podman/podman.sock`, started by
//! `scripts/setup.sh --dev`), with `backend = "auto"` as users get it: it picks Podman on a machine that has it, and
//! every test daemon here checks that it did. Each test runs the Docker test of the same name with
//! [`Engine::Podman`]: blue-green under load with every body checked, recreate, a worker, crash recovery after an
//! abort at a step and after a real `kill -9`.
//!
//! The images are built and pushed with Docker to the test's plain-HTTP registry on 127.0.0.1; Podman pulls them
//! from there because `scripts/setup.sh --dev` lists loopback registries as insecure in
//! `/etc/containers/registries.conf.d`.

use crate::support::Engine;

#[tokio::test(flavor = "multi_thread")]
async fn podman_blue_green_under_continuous_load_fails_no_request() {
    crate::deploy::blue_green_under_continuous_load(Engine::Podman).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn podman_recreate_holds_requests_while_no_release_runs() {
    crate::deploy::recreate_holds_requests(Engine::Podman).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn podman_worker_redeploys_never_run_two_copies() {
    crate::apps::worker_redeploys_never_run_two_copies_on(Engine::Podman).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn podman_blue_green_converges_after_a_crash_before_and_after_the_switch() {
    crate::crash::crash_cases(Engine::Podman, "blue-green", &["health_checking", "switching:committed"]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn podman_kill_9_mid_deploy_converges_after_a_restart() {
    crate::crash::kill_9_mid_deploy_converges(Engine::Podman).await;
}
