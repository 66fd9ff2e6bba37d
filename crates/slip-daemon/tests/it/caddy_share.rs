//! slipd beside a Caddy that already serves a user's site from a Caddyfile (the most common Caddy setup): with
//! `caddy.server` unset, slip's routes go into the Caddyfile's server, a deploy under load never disturbs the user's
//! site, and after `caddy reload` (which drops every route made through the API) slip's routes come back within
//! `caddy.reconcile_interval`. On Debian's Caddy 2.6.2 and on Caddy 2.11.7.

use std::time::Duration;

use slip_testenv::Image;
use slip_testenv::caddy::{Build, Caddy};
use slip_testenv::wait_until_async;

use crate::support::{Load, TestDaemon, app_name, web_app};

/// The user's plain-HTTP site on the port slip listens on, made Caddy's HTTP port, as port 80 is by default.
const SITE: &str = "http://site.test:{PORT} {\n\trespond \"user site\"\n}";
const OPTIONS: &str = "http_port {PORT}";

#[tokio::test(flavor = "multi_thread")]
async fn a_caddyfile_site_is_shared_undisturbed_by_deploys_and_caddy_reload_on_caddy_2_6() {
    shares_a_caddyfile_site(Build::Debian).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_caddyfile_site_is_shared_undisturbed_by_deploys_and_caddy_reload_on_caddy_2_11() {
    shares_a_caddyfile_site(Build::Current).await;
}

async fn shares_a_caddyfile_site(build: Build) {
    let app = app_name("share");
    let a = app.clone();
    let caddy = Caddy::start_with_caddyfile(build, OPTIONS, SITE);
    let d = TestDaemon::start_beside(caddy, |reg| vec![(a.clone(), web_app(&a, reg, ""))], "").await;
    d.push(&Image::V1, &app, "v1");
    d.push(&Image::V2, &app, "v2");
    let host = format!("{app}.test");
    let port = d.caddy.http_port();
    assert_eq!(d.deploy_and_wait(&app, "v1").await.status, "completed");
    let servers = d.caddy.get_json("/config/apps/http/servers");
    assert_eq!(servers.as_object().unwrap().keys().collect::<Vec<_>>(), ["srv0"], "slip shares srv0: {servers}");

    let site = Load::start(port, "site.test", "/", 2, &["user site"]);
    let load = Load::start(port, &host, "/version", 2, &["v1", "v2"]);
    let deploy = d.deploy_and_wait(&app, "v2").await;
    let (site, load) = (site.stop().await, load.stop().await);

    assert_eq!(deploy.status, "completed", "{deploy:?}");
    site.assert_every_answer_right(20);
    load.assert_every_answer_right(20);
    assert_eq!(d.through_caddy(&host, "/version").await, (200, "v2".to_owned()));

    // The user edits the Caddyfile and reloads: Caddy drops slip's routes, and slipd's reconcile puts them back.
    d.caddy.reload_caddyfile(OPTIONS, SITE);
    assert_eq!(d.through_caddy("site.test", "/").await, (200, "user site".to_owned()));
    wait_until_async(Duration::from_secs(15), "slip's route is back after caddy reload", || async {
        d.through_caddy(&host, "/version").await == (200, "v2".to_owned())
    })
    .await;
    assert_eq!(d.through_caddy("site.test", "/").await, (200, "user site".to_owned()));
    let servers = d.caddy.get_json("/config/apps/http/servers");
    assert_eq!(servers.as_object().unwrap().keys().collect::<Vec<_>>(), ["srv0"]);
}
