//! `caddy::Client` against a real Caddy (one private `caddy run` per test, from `slip_testenv::caddy`),
//! with real HTTP requests through Caddy to small upstream servers started by each test.
//!
//! Every test runs twice, on Debian's Caddy 2.6.2 and on a current Caddy (2.11.7, which `scripts/setup.sh --dev`
//! installs), and fails (never skips) when either is missing. Where the two differ (`stream_close_delay` exists
//! from 2.7; the ETag comes as a trailer before 2.8 and as a header after), the test says which it expects of
//! which. They use plain-HTTP listeners on loopback (`tls = off`), except the TLS tests, which use Caddy's
//! internal CA with trust installation disabled.

use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde_json::{Value, json};
use slip_engine::caddy::{Client, PreviewWildcard, Settings, TlsMode, render};
use slip_engine::ports::{Applied, DrainRef, Proxy, ProxyError, RouteBlock, RouteSpec};
use slip_engine::testing::proxy_contract::{Routed, drain, proxy_contract, route};
use slip_testenv::caddy::{Build, Caddy, FOREIGN_BODY, FOREIGN_SERVER, FOREIGN_TLS_SUBJECT};
use slip_testenv::{free_port, wait_until_async};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// Runs each named `async fn(Build)` as two tests, `<name>::caddy_2_6` (Debian's Caddy) and `<name>::caddy_2_11`
/// (a current release), since users run either.
macro_rules! on_every_caddy {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn caddy_2_6() {
                super::$name(slip_testenv::caddy::Build::Debian).await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn caddy_2_11() {
                super::$name(slip_testenv::caddy::Build::Current).await
            }
        }
    )*};
}

on_every_caddy!(
    a_caddyfile_site_on_slips_address_is_shared_without_a_setting_and_survives_caddy_reload,
    several_servers_on_slips_address_are_ambiguous_and_named_in_the_refusal,
    plain_http_never_shares_a_server_whose_automatic_https_would_take_over_its_listener,
    the_caddy_adapter_honours_the_proxy_contract,
    bootstrap_on_a_fresh_caddy_creates_slips_server_once,
    own_server_listeners_are_realigned_when_settings_change,
    moving_from_all_interfaces_to_loopback_on_the_same_port_moves_tcp_and_udp_listeners,
    a_move_to_an_address_another_process_holds_names_it_and_keeps_the_old_listener_serving,
    foreign_server_tls_policy_and_globals_stay_byte_for_byte_across_applies,
    shared_foreign_server_keeps_its_routes_listen_and_https_settings,
    listener_taken_by_a_foreign_server_is_reported_with_its_name_when_caddy_server_is_set,
    switching_moves_traffic_between_upstreams,
    applying_the_current_block_writes_nothing,
    a_concurrent_change_fails_if_match_and_the_write_is_retried_keeping_it,
    requests_are_held_until_the_upstream_starts_listening,
    restart_without_resume_is_repaired_by_ensure_server_and_apply,
    in_flight_counts_a_slow_request_on_the_drained_upstream,
    path_prefix_with_strip_reaches_the_upstream_without_the_prefix,
    admin_api_over_a_unix_socket,
    internal_tls_policy_is_inserted_first_follows_hostnames_and_goes_when_unneeded,
    wildcard_previews_share_one_route_and_policy_and_unknown_previews_get_404,
    stream_close_delay_works_from_caddy_2_7_and_is_rejected_with_a_hint_before,
);

/// Longest any single request through Caddy may take in these tests.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

async fn the_caddy_adapter_honours_the_proxy_contract(build: Build) {
    let caddy = Caddy::start_build(build);
    let (a, b) = (Upstream::start("a").await, Upstream::start("b").await);
    let routed = ThroughCaddy { port: caddy.http_port(), upstreams: [("a", a.addr.clone()), ("b", b.addr.clone())] };

    proxy_contract(&client(&caddy, TlsMode::Off), &routed, &a.addr, &b.addr).await;
}

/// Where Caddy sends a hostname's requests: a real request through it, answered by an [`Upstream`] with its name.
struct ThroughCaddy {
    port: u16,
    upstreams: [(&'static str, String); 2],
}

#[async_trait]
impl Routed for ThroughCaddy {
    async fn reaches(&self, host: &str) -> Option<String> {
        let (status, body) = get(self.port, host, "/").await;
        assert_eq!(status, 200, "{host}: {body}");
        // An unrouted host gets Caddy's empty 200.
        let name = body.strip_suffix(" /")?;
        let found = self.upstreams.iter().find(|(known, _)| *known == name);
        Some(found.unwrap_or_else(|| panic!("{host} answered {body:?}")).1.clone())
    }
}

/// A user's plain-HTTP Caddyfile site on the port slip is told to listen on, which the global options make Caddy's
/// HTTP port (as port 80 is by default), so Caddy's automatic HTTPS leaves the server on plain HTTP.
const USER_SITE: &str = "http://site.test:{PORT} {\n\trespond \"user site\"\n}";

/// A Caddyfile's global options for [`USER_SITE`].
const USER_OPTIONS: &str = "http_port {PORT}";

async fn a_caddyfile_site_on_slips_address_is_shared_without_a_setting_and_survives_caddy_reload(build: Build) {
    let caddy = Caddy::start_with_caddyfile(build, USER_OPTIONS, USER_SITE);
    let port = caddy.http_port();
    let user_server = caddy.get_json("/config/apps/http/servers/srv0");
    assert_eq!(user_server["listen"], json!([format!(":{port}")]), "the Caddyfile's server: {user_server}");
    let a = Upstream::start("a").await;
    let client = client(&caddy, TlsMode::Off);
    assert!(client.settings().share_existing, "caddy.server unset is the default");
    let wanted = block(&[route("web", "web.test", &a.addr)], &[]);

    client.ensure_server().await.unwrap();
    assert_eq!(client.apply(&wanted).await.unwrap(), Applied::Written);

    let servers = caddy.get_json("/config/apps/http/servers");
    assert_eq!(servers.as_object().unwrap().keys().collect::<Vec<_>>(), ["srv0"], "no server of slip's own");
    let shared = &servers["srv0"];
    let ids: Vec<&Value> = shared["routes"].as_array().unwrap().iter().map(|route| &route["@id"]).collect();
    assert_eq!(ids, [&json!("slip-web"), &Value::Null], "slip's block first, the user's route after it");
    assert_eq!(shared["routes"][1], user_server["routes"][0], "the user's route is unchanged");
    let without_routes = |server: &Value| {
        let mut server = server.clone();
        server.as_object_mut().unwrap().remove("routes");
        server
    };
    assert_eq!(without_routes(shared), without_routes(&user_server), "nothing else of the user's server changes");
    assert_eq!(get(port, "web.test", "/").await, (200, "a /".to_owned()));
    assert_eq!(get(port, "site.test", "/").await, (200, "user site".to_owned()));

    // `caddy reload` of the Caddyfile replaces the whole config, slip's routes included; the next apply (slipd's
    // reconcile) puts them back, still inside the user's server.
    caddy.reload_caddyfile(USER_OPTIONS, USER_SITE);
    assert_eq!(get(port, "web.test", "/").await, (200, String::new()), "the reload dropped slip's route");
    client.ensure_server().await.unwrap();
    assert_eq!(client.apply(&wanted).await.unwrap(), Applied::Written);
    assert_eq!(get(port, "web.test", "/").await, (200, "a /".to_owned()));
    assert_eq!(get(port, "site.test", "/").await, (200, "user site".to_owned()));
    let servers = caddy.get_json("/config/apps/http/servers");
    assert_eq!(servers.as_object().unwrap().keys().collect::<Vec<_>>(), ["srv0"]);

    // With the site gone from the Caddyfile, slip's routes move to a server of its own on the same address.
    caddy.reload_caddyfile(USER_OPTIONS, "");
    client.ensure_server().await.unwrap();
    assert_eq!(client.apply(&wanted).await.unwrap(), Applied::Written);
    assert_eq!(caddy.get_json("/config/apps/http/servers/slip/@id"), json!(render::SERVER_ID));
    assert_eq!(get(port, "web.test", "/").await, (200, "a /".to_owned()));
}

async fn several_servers_on_slips_address_are_ambiguous_and_named_in_the_refusal(build: Build) {
    let caddy = Caddy::start_build(build);
    let port = free_port();
    for (name, host) in [("one", "127.0.0.1"), ("two", "127.0.0.2")] {
        let server = json!({"listen": [format!("{host}:{port}")], "routes": [], "automatic_https": {"disable": true}});
        let answer = caddy.admin("PUT", &format!("/config/apps/http/servers/{name}"), Some(&server));
        assert_eq!(answer.status, 200, "{answer:?}");
    }
    let settings = Settings { listen: vec![format!(":{port}")], ..settings(&caddy, TlsMode::Off) };

    let error = Client::new(settings).unwrap().ensure_server().await.unwrap_err();

    assert!(matches!(error, ProxyError::ListenerConflict(_)), "{error:?}");
    assert_eq!(
        error.to_string(),
        format!(
            "Caddy servers 'one' and 'two' already listen on caddy.listen (:{port}). Set caddy.server to the one slip \
             should share, or change caddy.listen."
        )
    );
    let names: Vec<String> = caddy.get_json("/config/apps/http/servers").as_object().unwrap().keys().cloned().collect();
    assert_eq!(names, ["one", "two"], "nothing was added to either");
}

async fn plain_http_never_shares_a_server_whose_automatic_https_would_take_over_its_listener(build: Build) {
    // Without `http_port`, the site's port is not Caddy's HTTP port: a hostname slip added would get automatic
    // HTTPS, and Caddy would turn TLS on for the whole listener, breaking the user's plain-HTTP site.
    let caddy = Caddy::start_with_caddyfile(build, "", USER_SITE);
    let port = caddy.http_port();
    let before = caddy.get_raw("/config/apps");

    let error = client(&caddy, TlsMode::Off).ensure_server().await.unwrap_err();

    assert!(matches!(error, ProxyError::ListenerConflict(_)), "{error:?}");
    let message = error.to_string();
    assert!(message.starts_with(&format!("Caddy server 'srv0' already listens on caddy.listen (127.0.0.1:{port})")));
    assert!(message.contains("caddy.tls = \"off\""), "{message}");
    assert_eq!(caddy.get_raw("/config/apps"), before, "nothing was written");
    assert_eq!(get(port, "site.test", "/").await, (200, "user site".to_owned()));
}

async fn bootstrap_on_a_fresh_caddy_creates_slips_server_once(build: Build) {
    let caddy = Caddy::start_build(build);
    assert_eq!(caddy.get_raw("/config/apps").trim(), "null", "a fresh Caddy has no apps");
    let client = client(&caddy, TlsMode::Off);

    client.ensure_server().await.unwrap();

    let settings = client.settings();
    let server = caddy.get_json("/config/apps/http/servers/slip");
    assert_eq!(server, render::server(settings));
    assert_eq!(server["listen"], json!([format!("127.0.0.1:{}", caddy.http_port())]));
    assert_eq!(server["automatic_https"], json!({"disable": true}));
    let writes = caddy.admin_writes().len();
    client.ensure_server().await.unwrap();
    assert_eq!(caddy.admin_writes().len(), writes, "a second bootstrap must not write");
}

async fn own_server_listeners_are_realigned_when_settings_change(build: Build) {
    let caddy = Caddy::start_build(build);
    client(&caddy, TlsMode::Off).ensure_server().await.unwrap();
    let other_port = free_port();
    let mut settings = settings(&caddy, TlsMode::Off);
    settings.listen = vec![format!("127.0.0.1:{other_port}")];

    Client::new(settings).unwrap().ensure_server().await.unwrap();

    let server = caddy.get_json("/config/apps/http/servers/slip");
    assert_eq!(server["listen"], json!([format!("127.0.0.1:{other_port}")]));
    assert_eq!(server["@id"], "slipd-server");
}

async fn moving_from_all_interfaces_to_loopback_on_the_same_port_moves_tcp_and_udp_listeners(build: Build) {
    // The README's move from `:443` to `127.0.0.1:443`, on a free port: Caddy binds the new address before it
    // closes the old one, and its HTTP/3 (UDP) listener on `*:PORT` refuses `127.0.0.1:PORT` beside it.
    // This Caddy's PKI app never installs its root into the machine's trust store.
    let caddy = Caddy::start_with_foreign_site_build(build);
    let a = Upstream::start("a").await;
    let port = free_port();
    let wanted = block(&[route("web", "web.test", &a.addr)], &[]);
    let wide =
        Client::new(Settings { listen: vec![format!(":{port}")], ..settings(&caddy, TlsMode::Internal) }).unwrap();
    wide.ensure_server().await.unwrap();
    wide.apply(&wanted).await.unwrap();
    wait_for_certificate(port, "web.test").await;
    assert_eq!(get_tls(port, "web.test", "/").await.unwrap(), (200, "a /".to_owned()));
    assert_eq!(listeners("tcp", port), ["*"], "TCP before the move");
    assert_eq!(listeners("udp", port), ["*"], "HTTP/3 before the move");

    let narrow = Settings { listen: vec![format!("127.0.0.1:{port}")], ..settings(&caddy, TlsMode::Internal) };
    let narrow = Client::new(narrow).unwrap();
    narrow.ensure_server().await.unwrap();
    narrow.apply(&wanted).await.unwrap();

    assert_eq!(caddy.get_json("/config/apps/http/servers/slip/listen"), json!([format!("127.0.0.1:{port}")]));
    assert_eq!(listeners("tcp", port), ["127.0.0.1"], "TCP after the move");
    assert_eq!(listeners("udp", port), ["127.0.0.1"], "HTTP/3 after the move");
    assert_eq!(get_tls(port, "web.test", "/").await.unwrap(), (200, "a /".to_owned()));
    assert_eq!(get(caddy.foreign_port().unwrap(), "x.test", "/").await, (200, FOREIGN_BODY.to_owned()));
}

async fn a_move_to_an_address_another_process_holds_names_it_and_keeps_the_old_listener_serving(build: Build) {
    // This Caddy's PKI app never installs its root into the machine's trust store.
    let caddy = Caddy::start_with_foreign_site_build(build);
    let a = Upstream::start("a").await;
    let (old_port, new_port) = (free_port(), free_port());
    let wanted = block(&[route("web", "web.test", &a.addr)], &[]);
    let old = Settings { listen: vec![format!("127.0.0.1:{old_port}")], ..settings(&caddy, TlsMode::Internal) };
    let old = Client::new(old).unwrap();
    old.apply(&wanted).await.unwrap();
    wait_for_certificate(old_port, "web.test").await;
    // Another process holds only the UDP side of the new address, as a previous HTTP/3 listener would.
    let squatter = std::net::UdpSocket::bind(("127.0.0.1", new_port)).unwrap();

    let new = Settings { listen: vec![format!("127.0.0.1:{new_port}")], ..settings(&caddy, TlsMode::Internal) };
    let new = Client::new(new).unwrap();
    let error = new.ensure_server().await.unwrap_err();

    assert!(matches!(error, ProxyError::ListenerConflict(_)), "{error:?}");
    assert_eq!(
        error.to_string(),
        format!(
            "Caddy listener 127.0.0.1:{new_port} (UDP, for HTTP/3) is already in use by another process. \
             Stop that process or change caddy.listen."
        )
    );
    assert_eq!(caddy.get_json("/config/apps/http/servers/slip/listen"), json!([format!("127.0.0.1:{old_port}")]));
    assert_eq!(get_tls(old_port, "web.test", "/").await.unwrap(), (200, "a /".to_owned()), "the old listener serves");

    // Every attempt takes slip's server down for a moment, so the next reconcile answers with the refusal and
    // leaves Caddy alone (until caddy::MOVE_RETRY has passed).
    let writes = caddy.admin_writes().len();
    assert_eq!(new.ensure_server().await.unwrap_err().to_string(), error.to_string());
    assert_eq!(caddy.admin_writes().len(), writes, "a refused move is not retried at once");
    drop(squatter);
}

async fn foreign_server_tls_policy_and_globals_stay_byte_for_byte_across_applies(build: Build) {
    let caddy = Caddy::start_with_foreign_site_build(build);
    let foreign_paths = ["/config/apps/http/servers/foreign", "/config/apps/tls", "/config/apps/pki", "/config/admin"];
    let before: Vec<String> = foreign_paths.iter().map(|path| caddy.get_raw(path)).collect();
    let (a, b) = (Upstream::start("a").await, Upstream::start("b").await);
    let client = client(&caddy, TlsMode::Off);

    client.ensure_server().await.unwrap();
    for upstream in [&a, &b, &a] {
        assert_eq!(
            client.apply(&block(&[route("web", "web.test", &upstream.addr)], &[])).await.unwrap(),
            Applied::Written
        );
    }
    client.ensure_server().await.unwrap();

    let after: Vec<String> = foreign_paths.iter().map(|path| caddy.get_raw(path)).collect();
    assert_eq!(after, before);
    let foreign_port = caddy.foreign_port().unwrap();
    assert_eq!(get(foreign_port, "anything.test", "/").await, (200, FOREIGN_BODY.to_owned()));
    assert_eq!(get(caddy.http_port(), "web.test", "/x").await, (200, "a /x".to_owned()));
}

async fn shared_foreign_server_keeps_its_routes_listen_and_https_settings(build: Build) {
    let caddy = Caddy::start_with_foreign_site_build(build);
    let path = format!("/config/apps/http/servers/{FOREIGN_SERVER}");
    let original = caddy.get_json(&path);
    let upstream = Upstream::start("a").await;
    let mut settings = settings(&caddy, TlsMode::Off);
    settings.server = FOREIGN_SERVER.to_owned();
    let client = Client::new(settings).unwrap();

    client.ensure_server().await.unwrap();
    client.apply(&block(&[route("web", "web.test", &upstream.addr)], &[])).await.unwrap();

    let server = caddy.get_json(&path);
    for key in ["listen", "automatic_https"] {
        assert_eq!(server[key], original[key], "{key} of a foreign server must not change");
    }
    let routes = server["routes"].as_array().unwrap();
    assert_eq!(routes.len(), 2);
    assert_eq!(routes[0]["@id"], "slip-web");
    assert_eq!(routes[1], original["routes"][0], "the foreign route follows slip's block unchanged");
    let port = caddy.foreign_port().unwrap();
    assert_eq!(get(port, "web.test", "/").await, (200, "a /".to_owned()));
    assert_eq!(get(port, "other.test", "/").await, (200, FOREIGN_BODY.to_owned()));
}

async fn listener_taken_by_a_foreign_server_is_reported_with_its_name_when_caddy_server_is_set(build: Build) {
    let caddy = Caddy::start_with_foreign_site_build(build);
    let mut settings = settings(&caddy, TlsMode::Off);
    settings.listen = vec![format!("127.0.0.1:{}", caddy.foreign_port().unwrap())];
    // `caddy.server = "slip"` set explicitly: slip does not share the foreign server by itself.
    settings.share_existing = false;

    let error = Client::new(settings).unwrap().ensure_server().await.unwrap_err();

    assert!(matches!(error, ProxyError::ListenerConflict(_)), "{error:?}");
    assert_eq!(
        error.to_string(),
        format!(
            "Caddy listener 127.0.0.1:{} is already claimed by server 'foreign'. Move that site, change caddy.listen, \
             or set caddy.server = \"foreign\" to share it.",
            caddy.foreign_port().unwrap()
        )
    );
}

async fn switching_moves_traffic_between_upstreams(build: Build) {
    let caddy = Caddy::start_build(build);
    let (a, b) = (Upstream::start("a").await, Upstream::start("b").await);
    let client = client(&caddy, TlsMode::Off);
    client.ensure_server().await.unwrap();

    client.apply(&block(&[route("web", "web.test", &a.addr)], &[])).await.unwrap();
    assert_eq!(get(caddy.http_port(), "web.test", "/").await, (200, "a /".to_owned()));
    client.apply(&block(&[route("web", "web.test", &b.addr)], &[drain("web", &a.addr)])).await.unwrap();
    assert_eq!(get(caddy.http_port(), "web.test", "/").await, (200, "b /".to_owned()));

    let (status, _) = get(caddy.http_port(), "unknown.test", "/").await;
    assert_eq!(status, 200, "Caddy answers unmatched hosts with an empty 200");
    let routes = caddy.get_json("/config/apps/http/servers/slip/routes");
    assert_eq!(
        routes.as_array().unwrap().iter().map(|r| r["@id"].clone()).collect::<Vec<_>>(),
        ["slip-web", "slipd-drain:web"]
    );
}

async fn applying_the_current_block_writes_nothing(build: Build) {
    let caddy = Caddy::start_build(build);
    let (a, b) = (Upstream::start("a").await, Upstream::start("b").await);
    let client = client(&caddy, TlsMode::Off);
    let switched = block(&[route("web", "web.test", &b.addr)], &[drain("web", &a.addr)]);
    client.apply(&switched).await.unwrap();
    let writes = caddy.admin_writes().len();
    let routes = caddy.get_raw("/config/apps/http/servers/slip/routes");

    assert_eq!(client.apply(&switched).await.unwrap(), Applied::Unchanged);
    let without_drain = block(&[route("web", "web.test", &b.addr)], &[]);
    assert_eq!(
        client.apply(&without_drain).await.unwrap(),
        Applied::Unchanged,
        "a stale drain alone is no reason to reload"
    );

    assert_eq!(caddy.admin_writes().len(), writes, "no config write may reach Caddy: {:?}", caddy.admin_writes());
    assert_eq!(caddy.get_raw("/config/apps/http/servers/slip/routes"), routes);
    let moved = block(&[route("web", "web.test", &a.addr)], &[]);
    assert_eq!(client.apply(&moved).await.unwrap(), Applied::Written);
    let all_writes = caddy.admin_writes();
    assert_eq!(all_writes.len(), writes + 1, "a real change is exactly one write");
    let last = all_writes.last().unwrap();
    assert_eq!((last.method.as_str(), last.uri.as_str()), ("PATCH", "/config/apps/http/servers/slip/routes"));
    let etag = last.if_match.as_deref().unwrap_or_default();
    assert!(
        etag.starts_with("\"/config/apps/http/servers/slip/routes "),
        "the write is guarded by the routes' ETag: {last:?}"
    );
    let ids: Vec<Value> = caddy
        .get_json("/config/apps/http/servers/slip/routes")
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["@id"].clone())
        .collect();
    assert_eq!(ids, ["slip-web"], "the stale drain goes with the next real write");
}

async fn a_concurrent_change_fails_if_match_and_the_write_is_retried_keeping_it(build: Build) {
    let caddy = Caddy::start_build(build);
    let a = Upstream::start("a").await;
    client(&caddy, TlsMode::Off).ensure_server().await.unwrap();
    let (interposer, injected) = Interposer::start(&caddy).await;
    let mut settings = settings(&caddy, TlsMode::Off);
    settings.admin_api = format!("http://{}", interposer.addr);

    let wanted = block(&[route("web", "web.test", &a.addr)], &[]);
    let rendered = render::routes(&wanted, &settings, None);

    let applied = Client::new(settings).unwrap().apply(&wanted).await;

    assert_eq!(applied.unwrap(), Applied::Written);
    let routes = caddy.get_json("/config/apps/http/servers/slip/routes");
    assert_eq!(routes, json!([rendered[0], injected]), "slip's block first, the concurrent foreign route kept");
    let patches: Vec<_> = caddy.admin_writes().into_iter().filter(|w| w.method == "PATCH").collect();
    assert_eq!(patches.len(), 2, "the first PATCH hit 412, the second went through: {patches:?}");
    assert_ne!(patches[0].if_match, patches[1].if_match, "the retry carries the new ETag");
}

async fn requests_are_held_until_the_upstream_starts_listening(build: Build) {
    let caddy = Caddy::start_build(build);
    let port = free_port();
    let client = client(&caddy, TlsMode::Off);
    let mut spec = route("web", "web.test", &format!("127.0.0.1:{port}"));
    spec.hold_timeout = Duration::from_secs(10);
    client.apply(&block(&[spec], &[])).await.unwrap();

    let started = Instant::now();
    let held = tokio::spawn(get(caddy.http_port(), "web.test", "/held"));
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(!held.is_finished(), "the request must wait while nothing listens");
    let _upstream = Upstream::start_on(port, "late").await;

    assert_eq!(held.await.unwrap(), (200, "late /held".to_owned()));
    assert!(started.elapsed() >= Duration::from_secs(1));
}

async fn restart_without_resume_is_repaired_by_ensure_server_and_apply(build: Build) {
    let mut caddy = Caddy::start_with_foreign_site_build(build);
    let a = Upstream::start("a").await;
    let client = client(&caddy, TlsMode::Off);
    let wanted = block(&[route("web", "web.test", &a.addr)], &[]);
    client.ensure_server().await.unwrap();
    client.apply(&wanted).await.unwrap();

    caddy.restart_empty();
    assert_eq!(caddy.get_raw("/config/apps/http/servers/slip").trim(), "null");
    client.ensure_server().await.unwrap();
    assert_eq!(client.apply(&wanted).await.unwrap(), Applied::Written);
    assert_eq!(get(caddy.http_port(), "web.test", "/").await, (200, "a /".to_owned()));

    caddy.restart_empty();
    assert_eq!(client.apply(&wanted).await.unwrap(), Applied::Written, "apply alone bootstraps a missing server");
    assert_eq!(get(caddy.http_port(), "web.test", "/").await, (200, "a /".to_owned()));
    assert_eq!(get(caddy.foreign_port().unwrap(), "x.test", "/").await, (200, FOREIGN_BODY.to_owned()));
}

async fn in_flight_counts_a_slow_request_on_the_drained_upstream(build: Build) {
    let caddy = Caddy::start_build(build);
    let (a, b) = (Upstream::start("a").await, Upstream::start("b").await);
    let client = client(&caddy, TlsMode::Off);
    client.apply(&block(&[route("web", "web.test", &a.addr)], &[])).await.unwrap();
    let slow = tokio::spawn(get(caddy.http_port(), "web.test", "/slow"));
    wait_until_async(Duration::from_secs(5), "Caddy counts the slow request", || async {
        client.in_flight(&a.addr).await.unwrap() == Some(1)
    })
    .await;

    client.apply(&block(&[route("web", "web.test", &b.addr)], &[drain("web", &a.addr)])).await.unwrap();

    assert_eq!(client.in_flight(&a.addr).await.unwrap(), Some(1), "the count survives the config load");
    assert_eq!(get(caddy.http_port(), "web.test", "/").await, (200, "b /".to_owned()));
    assert_eq!(slow.await.unwrap(), (200, "a /slow".to_owned()), "the in-flight request finishes on the old upstream");
    assert_eq!(client.in_flight(&a.addr).await.unwrap(), Some(0));
    assert_eq!(client.in_flight("127.0.0.1:1").await.unwrap(), None);
}

async fn path_prefix_with_strip_reaches_the_upstream_without_the_prefix(build: Build) {
    let caddy = Caddy::start_build(build);
    let (admin, site) = (Upstream::start("admin").await, Upstream::start("site").await);
    let client = client(&caddy, TlsMode::Off);
    let mut prefixed = route("api", "api.test", &admin.addr);
    prefixed.id = "slip-api-1".to_owned();
    prefixed.path_prefix = Some("/admin".to_owned());
    prefixed.strip_prefix = true;
    // The catch-all route comes first on purpose: the adapter must sort longest prefix first.
    client.apply(&block(&[route("api", "api.test", &site.addr), prefixed], &[])).await.unwrap();

    let port = caddy.http_port();
    assert_eq!(get(port, "api.test", "/admin/users?x=1").await, (200, "admin /users?x=1".to_owned()));
    assert_eq!(get(port, "api.test", "/admin").await, (200, "admin /".to_owned()));
    assert_eq!(get(port, "api.test", "/administrator").await, (200, "site /administrator".to_owned()));
    assert_eq!(get(port, "api.test", "/other").await, (200, "site /other".to_owned()));
}

async fn admin_api_over_a_unix_socket(build: Build) {
    let caddy = Caddy::start_on_unix_socket_build(build);
    assert!(caddy.admin_url().starts_with("unix//"), "{}", caddy.admin_url());
    let a = Upstream::start("a").await;
    let client = client(&caddy, TlsMode::Off);

    client.ensure_server().await.unwrap();
    assert_eq!(client.apply(&block(&[route("web", "web.test", &a.addr)], &[])).await.unwrap(), Applied::Written);

    assert_eq!(get(caddy.http_port(), "web.test", "/").await, (200, "a /".to_owned()));
    assert_eq!(client.in_flight(&a.addr).await.unwrap(), Some(0));
}

async fn internal_tls_policy_is_inserted_first_follows_hostnames_and_goes_when_unneeded(build: Build) {
    // This Caddy's PKI app never installs its root into the machine's trust store.
    let caddy = Caddy::start_with_foreign_site_build(build);
    let foreign_policy = caddy.get_raw("/config/apps/tls/automation/policies/0");
    let tls_before = caddy.get_raw("/config/apps/tls");
    let a = Upstream::start("a").await;
    let client = client(&caddy, TlsMode::Internal);

    client.apply(&block(&[route("web", "web.test", &a.addr)], &[])).await.unwrap();
    let policies = caddy.get_json("/config/apps/tls/automation/policies");
    assert_eq!(policies[0], json!({"@id": "slipd-tls", "subjects": ["web.test"], "issuers": [{"module": "internal"}]}));
    assert_eq!(caddy.get_raw("/config/apps/tls/automation/policies/1"), foreign_policy);
    assert_eq!(client.apply(&block(&[route("web", "web.test", &a.addr)], &[])).await.unwrap(), Applied::Unchanged);

    let renamed = block(&[route("web", "www.test", &a.addr), route("other", FOREIGN_TLS_SUBJECT, &a.addr)], &[]);
    client.apply(&renamed).await.unwrap();
    let policies = caddy.get_json("/config/apps/tls/automation/policies");
    assert_eq!(policies[0]["subjects"], json!(["www.test"]), "a subject a foreign policy names is left to it");
    assert_eq!(policies.as_array().unwrap().len(), 2);

    client.apply(&RouteBlock::default()).await.unwrap();
    assert_eq!(caddy.get_raw("/config/apps/tls"), tls_before, "no slip hostnames, no slipd-tls");

    client.apply(&renamed).await.unwrap();
    assert_eq!(caddy.get_json("/id/slipd-tls")["subjects"], json!(["www.test"]));
    Client::new(settings(&caddy, TlsMode::Off)).unwrap().apply(&renamed).await.unwrap();
    assert_eq!(caddy.get_raw("/config/apps/tls"), tls_before, "tls = off removes slipd-tls");
}

async fn wildcard_previews_share_one_route_and_policy_and_unknown_previews_get_404(build: Build) {
    // This Caddy's PKI app never installs its root into the machine's trust store.
    let caddy = Caddy::start_with_foreign_site_build(build);
    let (web, preview) = (Upstream::start("web").await, Upstream::start("pr-1").await);
    let previews = PreviewWildcard { domains: vec!["preview.test".to_owned()], dns: None };
    let client = client(&caddy, TlsMode::Internal).with_preview_wildcard(previews);
    let mut preview_route = route("web", "pr-1.preview.test", &preview.addr);
    preview_route.id = "slip-web-preview-pr-1".to_owned();

    client.apply(&block(&[route("web", "web.test", &web.addr), preview_route], &[])).await.unwrap();

    let routes = caddy.get_json("/config/apps/http/servers/slip/routes");
    let ids: Vec<Value> = routes.as_array().unwrap().iter().map(|r| r["@id"].clone()).collect();
    assert_eq!(ids, ["slip-web", "slipd-previews:preview.test"]);
    let policies = caddy.get_json("/config/apps/tls/automation/policies");
    let slip_policies: Vec<(Value, Value)> =
        policies.as_array().unwrap()[..2].iter().map(|p| (p["@id"].clone(), p["subjects"].clone())).collect();
    assert_eq!(
        slip_policies,
        [(json!("slipd-tls-preview"), json!(["*.preview.test"])), (json!("slipd-tls"), json!(["web.test"]))]
    );
    let port = caddy.http_port();
    wait_until_async(Duration::from_secs(10), "Caddy serves the wildcard certificate", || async {
        get_tls(port, "pr-1.preview.test", "/").await.is_ok()
    })
    .await;
    assert_eq!(get_tls(port, "pr-1.preview.test", "/x").await.unwrap(), (200, "pr-1 /x".to_owned()));
    assert_eq!(get_tls(port, "pr-9.preview.test", "/").await.unwrap(), (404, "no such preview".to_owned()));
    assert_eq!(get_tls(port, "web.test", "/").await.unwrap(), (200, "web /".to_owned()));
    let certificates = caddy.certificate_names();
    assert!(certificates.contains(&"wildcard_.preview.test".to_owned()), "{certificates:?}");
    assert!(!certificates.iter().any(|name| name.starts_with("pr-")), "no per-preview certificate: {certificates:?}");
}

async fn stream_close_delay_works_from_caddy_2_7_and_is_rejected_with_a_hint_before(build: Build) {
    let caddy = Caddy::start_build(build);
    let mut settings = settings(&caddy, TlsMode::Off);
    settings.stream_close_delay = Some(Duration::from_secs(300));
    let client = Client::new(settings).unwrap();
    let a = Upstream::start("a").await;

    let applied = client.apply(&block(&[route("web", "web.test", &a.addr)], &[])).await;

    if build.has_stream_close_delay() {
        assert_eq!(applied.unwrap(), Applied::Written);
        let routes = caddy.get_json("/config/apps/http/servers/slip/routes");
        let proxy = &routes[0]["handle"][0];
        assert_eq!(proxy["handler"], "reverse_proxy", "{routes}");
        assert_eq!(proxy["stream_close_delay"], "5m", "{routes}");
        assert_eq!(get(caddy.http_port(), "web.test", "/").await, (200, "a /".to_owned()));
        return;
    }
    // Caddy 2.6 does not know the field.
    let error = applied.unwrap_err();
    assert!(matches!(error, ProxyError::Rejected { .. }), "{error:?}");
    let message = error.to_string();
    assert!(message.contains("needs Caddy 2.7 or newer"), "{message}");
    assert!(message.contains(&caddy.admin_url()), "the error names the URL: {message}");
    assert_eq!(caddy.get_raw("/config/apps/http/servers/slip/routes").trim(), "[]", "a rejected load changes nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_caddy_is_reported_with_its_url() {
    let port = free_port();
    let settings = Settings { admin_api: format!("http://127.0.0.1:{port}"), ..Settings::default() };

    let error = Client::new(settings).unwrap().ensure_server().await.unwrap_err();

    assert!(matches!(error, ProxyError::Unreachable { .. }), "{error:?}");
    assert!(
        error.to_string().starts_with(&format!("cannot reach Caddy's admin API at http://127.0.0.1:{port}/config/")),
        "{error}"
    );
}

/// Settings for slip's server on the test Caddy's free plain-HTTP port.
fn settings(caddy: &Caddy, tls: TlsMode) -> Settings {
    Settings {
        admin_api: caddy.admin_url(),
        listen: vec![format!("127.0.0.1:{}", caddy.http_port())],
        tls,
        ..Settings::default()
    }
}

fn client(caddy: &Caddy, tls: TlsMode) -> Client {
    Client::new(settings(caddy, tls)).unwrap()
}

fn block(routes: &[RouteSpec], drains: &[DrainRef]) -> RouteBlock {
    RouteBlock { routes: routes.to_vec(), drains: drains.to_vec() }
}

/// The local addresses (`*`, `127.0.0.1`, ...) of the `proto` (`tcp` or `udp`) sockets listening on `port`, from
/// `ss`, sorted.
fn listeners(proto: &str, port: u16) -> Vec<String> {
    let flag = if proto == "tcp" { "-Hltn" } else { "-Hlun" };
    let output = std::process::Command::new("ss").args([flag, &format!("sport = :{port}")]).output().unwrap();
    assert!(output.status.success(), "ss failed: {}", String::from_utf8_lossy(&output.stderr));
    let mut addresses: Vec<String> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| line.split_whitespace().nth(3))
        .filter_map(|local| local.rsplit_once(':').map(|(host, _)| host.to_owned()))
        .map(|host| if host == "0.0.0.0" || host == "[::]" { "*".to_owned() } else { host })
        .collect();
    addresses.sort();
    addresses.dedup();
    addresses
}

/// `GET http://127.0.0.1:port/path` with `Host: host`; the status and body.
async fn get(port: u16, host: &str, path: &str) -> (u16, String) {
    let response = reqwest::Client::builder()
        .no_proxy()
        .timeout(REQUEST_TIMEOUT)
        .build()
        .unwrap()
        .get(format!("http://127.0.0.1:{port}{path}"))
        .header(reqwest::header::HOST, host)
        .send()
        .await
        .unwrap_or_else(|error| panic!("GET {host}{path} through port {port} failed: {error}"));
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

/// Waits until Caddy's internal CA has issued `host`'s certificate and `port` answers over TLS.
async fn wait_for_certificate(port: u16, host: &str) {
    wait_until_async(Duration::from_secs(10), "Caddy serves the certificate", || async {
        get_tls(port, host, "/").await.is_ok()
    })
    .await;
}

/// `GET https://host:port/path` against Caddy's internal CA (not verified), resolving `host` to loopback.
async fn get_tls(port: u16, host: &str, path: &str) -> Result<(u16, String), reqwest::Error> {
    let response = reqwest::Client::builder()
        .no_proxy()
        .timeout(REQUEST_TIMEOUT)
        .danger_accept_invalid_certs(true)
        .resolve(host, std::net::SocketAddr::from(([127, 0, 0, 1], port)))
        .build()?
        .get(format!("https://{host}:{port}{path}"))
        .send()
        .await?;
    let status = response.status().as_u16();
    Ok((status, response.text().await?))
}

/// A TCP relay in front of Caddy's admin API that, just before forwarding the first `PATCH` of slip's
/// routes, appends a foreign route itself: the `PATCH` then carries a stale ETag, exactly as when
/// someone else changes Caddy between slip's read and its write.
struct Interposer {
    addr: String,
    accept: JoinHandle<()>,
}

impl Interposer {
    /// Starts the relay; also returns the foreign route it will inject.
    async fn start(caddy: &Caddy) -> (Interposer, Value) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let admin = caddy.admin_url().trim_start_matches("http://").to_owned();
        let foreign = json!({"handle": [{"handler": "static_response", "body": "injected"}]});
        let (injection, admin_url, relay) = (foreign.clone(), caddy.admin_url(), addr.clone());
        let accept = tokio::spawn(async move {
            let mut injected = false;
            while let Ok((mut client, _)) = listener.accept().await {
                let mut head = Vec::new();
                let mut buffer = [0u8; 4096];
                while !head.windows(4).any(|window| window == b"\r\n\r\n") {
                    match client.read(&mut buffer).await {
                        Ok(0) | Err(_) => break,
                        Ok(read) => head.extend_from_slice(&buffer[..read]),
                    }
                }
                if !injected && head.starts_with(b"PATCH /config/apps/http/servers/slip/routes ") {
                    injected = true;
                    let answer = reqwest::Client::new()
                        .post(format!("{admin_url}/config/apps/http/servers/slip/routes"))
                        .json(&injection)
                        .send()
                        .await
                        .unwrap();
                    assert!(answer.status().is_success(), "injecting a foreign route failed: {answer:?}");
                }
                // Caddy only accepts its own address as `Host`.
                let head = String::from_utf8_lossy(&head).replace(&relay, &admin);
                let mut upstream = TcpStream::connect(&admin).await.unwrap();
                upstream.write_all(head.as_bytes()).await.unwrap();
                let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
            }
        });
        (Interposer { addr, accept }, foreign)
    }
}

impl Drop for Interposer {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

/// A tiny HTTP/1.1 upstream answering `<name> <path as received>`; `/slow` answers after 2 s.
struct Upstream {
    addr: String,
    accept: JoinHandle<()>,
}

impl Upstream {
    async fn start(name: &'static str) -> Upstream {
        Upstream::serve(TcpListener::bind("127.0.0.1:0").await.unwrap(), name)
    }

    async fn start_on(port: u16, name: &'static str) -> Upstream {
        Upstream::serve(TcpListener::bind(("127.0.0.1", port)).await.unwrap(), name)
    }

    fn serve(listener: TcpListener, name: &'static str) -> Upstream {
        let addr = listener.local_addr().unwrap().to_string();
        let accept = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(answer(stream, name));
            }
        });
        Upstream { addr, accept }
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

/// Answers one request on `stream`, then closes it.
async fn answer(mut stream: TcpStream, name: &str) {
    let mut head = Vec::new();
    let mut buffer = [0u8; 4096];
    while !head.windows(4).any(|window| window == b"\r\n\r\n") {
        match stream.read(&mut buffer).await {
            Ok(0) | Err(_) => return,
            Ok(read) => head.extend_from_slice(&buffer[..read]),
        }
    }
    let head = String::from_utf8_lossy(&head);
    let path = head.split_whitespace().nth(1).unwrap_or("?").to_owned();
    if path.starts_with("/slow") {
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    let body = format!("{name} {path}");
    let response = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(response.as_bytes()).await;
    let _ = stream.shutdown().await;
}
