//! Pure rendering of slip's desired Caddy state into Caddy's JSON, and the ownership rules that split
//! Caddy's route list into slip's part and everybody else's (SPEC §9.1, §9.3, §9.4, §9.6, §9.7).
//!
//! Everything here is a function of its arguments: no IO, no clock, no admin API. The client in
//! [`super`] decides what to write and when; this module only says what the JSON must look like.
//! It does not validate names or hostnames (config loading did that) and does not detect id collisions.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde_json::{Map, Value, json};

use super::{DaemonRoute, DnsChallenge, PreviewWildcard, Settings, TlsMode};
use crate::ports::{DrainRef, RouteBlock, RouteSpec};

/// `@id` of a server slip created itself; any other server is managed only through its route block.
pub const SERVER_ID: &str = "slipd-server";

/// `@id` of slip's TLS automation policy for its exact hostnames.
pub const TLS_POLICY_ID: &str = "slipd-tls";

/// `@id` of slip's TLS automation policy for wildcard preview domains.
pub const PREVIEW_TLS_POLICY_ID: &str = "slipd-tls-preview";

/// Prefix of the `@id` of the route that holds one wildcard preview domain's routes.
pub const PREVIEWS_ID_PREFIX: &str = "slipd-previews:";

/// Prefix of the `@id` of drain references (`slipd-drain:<app>[:<preview id>]`).
pub const DRAIN_ID_PREFIX: &str = "slipd-drain:";

/// Let's Encrypt's staging directory, used when `caddy.tls.staging` is set.
pub const LETS_ENCRYPT_STAGING: &str = "https://acme-staging-v02.api.letsencrypt.org/directory";

/// Largest request body the daemon route lets through to slipd (webhooks are small).
pub const DAEMON_MAX_BODY: u64 = 65536;

/// The server object created on bootstrap (SPEC §9.3).
pub fn server(settings: &Settings) -> Value {
    json!({
        "@id": SERVER_ID,
        "listen": listen(settings),
        "routes": [],
        "automatic_https": automatic_https(&settings.tls, &settings.listen),
    })
}

/// The `listen` list of slip's own server: with TLS, port-80 entries are left to Caddy's automatic
/// HTTP→HTTPS redirect and are not put on the server; without TLS every entry is a plain-HTTP listener.
pub fn listen(settings: &Settings) -> Vec<String> {
    match settings.tls {
        TlsMode::Off => settings.listen.clone(),
        TlsMode::Acme { .. } | TlsMode::Internal => {
            settings.listen.iter().filter(|address| !is_port_80(address)).cloned().collect()
        }
    }
}

/// The `automatic_https` object of slip's own server.
pub fn automatic_https(tls: &TlsMode, listen: &[String]) -> Value {
    match tls {
        TlsMode::Off => json!({"disable": true}),
        TlsMode::Acme { .. } | TlsMode::Internal => {
            json!({"disable_redirects": !listen.iter().any(|address| is_port_80(address))})
        }
    }
}

/// slip's route block in Caddy order: daemon routes; app and preview routes (exact hostnames before
/// wildcards, then by hostname, longest path prefix first); one `slipd-previews:<domain>` route per
/// wildcard preview domain in use, holding that domain's preview routes; then drain references.
pub fn routes(block: &RouteBlock, settings: &Settings, previews: Option<&PreviewWildcard>) -> Vec<Value> {
    let mut rendered = Vec::with_capacity(block.routes.len() + block.drains.len() + 2);
    if let Some(daemon) = &settings.daemon_route {
        rendered.extend(daemon_routes(daemon));
    }
    let mut top_level: Vec<&RouteSpec> = Vec::new();
    let mut by_domain: BTreeMap<&str, Vec<&RouteSpec>> = BTreeMap::new();
    for spec in &block.routes {
        match wildcard_domain(&spec.hostname, previews) {
            Some(domain) => by_domain.entry(domain).or_default().push(spec),
            None => top_level.push(spec),
        }
    }
    rendered.extend(sorted(top_level).into_iter().map(|spec| app_route(spec, settings)));
    for (domain, specs) in by_domain {
        rendered.push(previews_route(domain, sorted(specs), settings));
    }
    let mut drains: Vec<&DrainRef> = block.drains.iter().collect();
    drains.sort_by(|a, b| (&a.id, &a.upstream).cmp(&(&b.id, &b.upstream)));
    rendered.extend(drains.into_iter().map(drain_route));
    rendered
}

/// The TLS policy `id` ([`TLS_POLICY_ID`] or [`PREVIEW_TLS_POLICY_ID`]) slip wants, or `None` when
/// Caddy's defaults apply (SPEC §9.7).
///
/// Subjects are [`policy_subjects`] minus `taken` (subjects a foreign policy already names, which slip
/// reports instead of overriding). A policy without subjects would apply to every hostname, foreign
/// sites included, so none is rendered then.
pub fn tls_policy(
    id: &str,
    block: &RouteBlock,
    settings: &Settings,
    previews: Option<&PreviewWildcard>,
    taken: &BTreeSet<String>,
) -> Option<Value> {
    let issuer = if id == PREVIEW_TLS_POLICY_ID {
        let dns = previews.and_then(|previews| previews.dns.as_ref());
        issuer(&settings.tls, dns)?
    } else {
        match settings.tls {
            TlsMode::Acme { email: None, staging: false } => return None,
            _ => issuer(&settings.tls, None)?,
        }
    };
    let subjects: Vec<String> =
        policy_subjects(id, block, settings, previews).into_iter().filter(|host| !taken.contains(host)).collect();
    if subjects.is_empty() {
        return None;
    }
    Some(json!({"@id": id, "subjects": subjects, "issuers": [issuer]}))
}

/// The subjects policy `id` should cover before foreign policies are taken into account: for
/// [`TLS_POLICY_ID`] every exact hostname slip routes outside wildcard preview domains, for
/// [`PREVIEW_TLS_POLICY_ID`] `*.<domain>` for every wildcard preview domain in use.
pub fn policy_subjects(
    id: &str,
    block: &RouteBlock,
    settings: &Settings,
    previews: Option<&PreviewWildcard>,
) -> BTreeSet<String> {
    let hostnames = block.routes.iter().map(|spec| &spec.hostname);
    if id == PREVIEW_TLS_POLICY_ID {
        return hostnames
            .filter_map(|host| wildcard_domain(host, previews))
            .map(|domain| format!("*.{domain}"))
            .collect();
    }
    let daemon = settings.daemon_route.iter().map(|daemon| &daemon.host);
    hostnames
        .chain(daemon)
        .filter(|host| !is_wildcard(host) && wildcard_domain(host, previews).is_none())
        .cloned()
        .collect()
}

/// Whether an object `@id` belongs to slip: `slipd`, or starting with `slipd-`, `slipd:` or `slip-`.
pub fn is_owned_id(id: &str) -> bool {
    id == "slipd" || id.starts_with("slipd-") || id.starts_with("slipd:") || id.starts_with("slip-")
}

/// The `@id` of a Caddy object, when it has a string one.
pub fn object_id(object: &Value) -> Option<&str> {
    object.get("@id").and_then(Value::as_str)
}

/// Whether a route in Caddy belongs to slip. Routes without an `@id` are always foreign.
pub fn is_owned(route: &Value) -> bool {
    object_id(route).is_some_and(is_owned_id)
}

/// Whether a route in Caddy is a drain reference.
pub fn is_drain(route: &Value) -> bool {
    object_id(route).is_some_and(|id| id.starts_with(DRAIN_ID_PREFIX))
}

/// Whether `current` (the server's whole route list) already carries `desired` (a rendered block).
///
/// It does when the list starts with slip's routes and none follow later, the non-drain routes equal
/// the desired ones in order, and every desired drain reference is present. Drain references that are
/// no longer desired are tolerated: they never match, so removing them alone is not worth a config
/// reload (which would reset proxied WebSockets); the next write that changes something drops them.
pub fn is_current(current: &[Value], desired: &[Value]) -> bool {
    let owned_prefix = current.iter().take_while(|route| is_owned(route)).count();
    if current[owned_prefix..].iter().any(is_owned) {
        return false;
    }
    let ours = &current[..owned_prefix];
    let live = |routes: &[Value]| routes.iter().filter(|route| !is_drain(route)).cloned().collect::<Vec<_>>();
    live(ours) == live(desired) && desired.iter().filter(|route| is_drain(route)).all(|drain| ours.contains(drain))
}

/// The route list to write: the desired slip block followed by every foreign route, unchanged.
pub fn merged(current: &[Value], desired: &[Value]) -> Vec<Value> {
    desired.iter().cloned().chain(current.iter().filter(|route| !is_owned(route)).cloned()).collect()
}

/// A duration in Go's `time.ParseDuration` syntax, which Caddy uses (`30s`, `5m`, `1h30m`, `250ms`).
pub fn go_duration(duration: Duration) -> String {
    if !duration.subsec_nanos().is_multiple_of(1_000_000) {
        return format!("{}ns", duration.as_nanos());
    }
    if duration.subsec_millis() != 0 {
        return format!("{}ms", duration.as_millis());
    }
    let seconds = duration.as_secs();
    if seconds == 0 {
        return "0s".to_owned();
    }
    let (hours, minutes, seconds) = (seconds / 3600, seconds % 3600 / 60, seconds % 60);
    let mut text = String::new();
    if hours > 0 {
        text.push_str(&format!("{hours}h"));
    }
    if minutes > 0 {
        text.push_str(&format!("{minutes}m"));
    }
    if seconds > 0 {
        text.push_str(&format!("{seconds}s"));
    }
    text
}

/// The issuer for `tls`; `dns` adds a DNS-01 challenge (wildcard certificates need one with ACME).
fn issuer(tls: &TlsMode, dns: Option<&DnsChallenge>) -> Option<Value> {
    let (email, staging) = match tls {
        TlsMode::Off => return None,
        TlsMode::Internal => return Some(json!({"module": "internal"})),
        TlsMode::Acme { email, staging } => (email, *staging),
    };
    let mut issuer = Map::new();
    issuer.insert("module".into(), "acme".into());
    if let Some(email) = email {
        issuer.insert("email".into(), email.clone().into());
    }
    if staging {
        issuer.insert("ca".into(), LETS_ENCRYPT_STAGING.into());
    }
    if let Some(dns) = dns {
        let mut provider = dns.config.clone();
        provider.insert("name".into(), dns.provider.clone().into());
        issuer.insert(
            "challenges".into(),
            json!({"dns": {"provider": provider, "propagation_delay": go_duration(dns.propagation_delay)}}),
        );
    }
    Some(Value::Object(issuer))
}

/// The wildcard preview domain `hostname` sits directly under, if any: `pr-1.preview.example.com` is
/// served through `*.preview.example.com` when `preview.example.com` is a wildcard preview domain.
fn wildcard_domain<'a>(hostname: &str, previews: Option<&'a PreviewWildcard>) -> Option<&'a str> {
    let (label, parent) = hostname.split_once('.')?;
    if label.is_empty() || is_wildcard(label) {
        return None;
    }
    previews?.domains.iter().map(String::as_str).find(|domain| *domain == parent)
}

/// `slipd-previews:<domain>`: one top-level route for `*.<domain>`, so Caddy 2.6 manages a single
/// wildcard certificate, with the preview routes in a subroute and a 404 for unknown previews.
fn previews_route(domain: &str, specs: Vec<&RouteSpec>, settings: &Settings) -> Value {
    let mut inner: Vec<Value> = specs.into_iter().map(|spec| app_route(spec, settings)).collect();
    inner.push(json!({"handle": [{"handler": "static_response", "status_code": 404, "body": "no such preview"}]}));
    json!({
        "@id": format!("{PREVIEWS_ID_PREFIX}{domain}"),
        "match": [{"host": [format!("*.{domain}")]}],
        "handle": [{"handler": "subroute", "routes": inner}],
        "terminal": true,
    })
}

fn sorted(mut specs: Vec<&RouteSpec>) -> Vec<&RouteSpec> {
    specs.sort_by(|a, b| route_order(a).cmp(&route_order(b)));
    specs
}

fn route_order(spec: &RouteSpec) -> (bool, &str, Reverse<usize>, &str) {
    let prefix_len = normalized_prefix(spec).map_or(0, str::len);
    (is_wildcard(&spec.hostname), spec.hostname.as_str(), Reverse(prefix_len), spec.id.as_str())
}

fn app_route(spec: &RouteSpec, settings: &Settings) -> Value {
    let mut matcher = Map::new();
    matcher.insert("host".into(), json!([spec.hostname]));
    let prefix = normalized_prefix(spec);
    if let Some(prefix) = prefix {
        matcher.insert("path".into(), json!([prefix, format!("{prefix}/*")]));
    }
    let mut handle = Vec::with_capacity(2);
    if let (Some(prefix), true) = (prefix, spec.strip_prefix) {
        handle.push(json!({"handler": "rewrite", "strip_path_prefix": prefix}));
    }
    let mut proxy = json!({
        "handler": "reverse_proxy",
        "upstreams": [{"dial": spec.upstream}],
        "load_balancing": {
            "try_duration": go_duration(spec.hold_timeout),
            "try_interval": go_duration(settings.hold_try_interval),
        },
    });
    if let Some(delay) = settings.stream_close_delay {
        proxy["stream_close_delay"] = go_duration(delay).into();
    }
    handle.push(proxy);
    json!({"@id": spec.id, "match": [matcher], "handle": handle, "terminal": true})
}

fn drain_route(drain: &DrainRef) -> Value {
    json!({
        "@id": drain.id,
        "match": [{"expression": "false"}],
        "handle": [{"handler": "reverse_proxy", "upstreams": [{"dial": drain.upstream}]}],
    })
}

fn daemon_routes(daemon: &DaemonRoute) -> Vec<Value> {
    let upstream = loopback_dial(&daemon.upstream);
    let handle = json!([
        {"handler": "request_body", "max_size": DAEMON_MAX_BODY},
        {"handler": "reverse_proxy", "upstreams": [{"dial": upstream}]},
    ]);
    if daemon.paths.is_empty() {
        return vec![json!({"@id": "slipd", "match": [{"host": [daemon.host]}], "handle": handle, "terminal": true})];
    }
    vec![
        json!({"@id": "slipd", "match": [{"host": [daemon.host], "path": daemon.paths}], "handle": handle, "terminal": true}),
        json!({
            "@id": "slipd-deny",
            "match": [{"host": [daemon.host]}],
            "handle": [{
                "handler": "static_response",
                "status_code": 404,
                "body": r#"{"error":"not found","code":"not_found"}"#,
            }],
            "terminal": true,
        }),
    ]
}

/// The path prefix without trailing slashes, or `None` when it matches everything.
fn normalized_prefix(spec: &RouteSpec) -> Option<&str> {
    spec.path_prefix.as_deref().map(|prefix| prefix.trim_end_matches('/')).filter(|prefix| !prefix.is_empty())
}

fn is_wildcard(hostname: &str) -> bool {
    hostname.starts_with('*')
}

/// Whether a Caddy listener address (`:80`, `0.0.0.0:80`, `tcp/[::]:80`) is on port 80.
fn is_port_80(address: &str) -> bool {
    let without_network = address.rsplit_once('/').map_or(address, |(_, rest)| rest);
    without_network.rsplit_once(':').is_some_and(|(_, port)| port == "80")
}

/// A dial to the unspecified address cannot be dialled: use loopback instead.
fn loopback_dial(upstream: &str) -> String {
    if let Some(port) = upstream.strip_prefix("0.0.0.0:") {
        format!("127.0.0.1:{port}")
    } else if let Some(port) = upstream.strip_prefix("[::]:") {
        format!("[::1]:{port}")
    } else {
        upstream.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use expect_test::{Expect, expect};

    use super::*;

    fn settings(tls: TlsMode, listen: &[&str]) -> Settings {
        Settings { listen: listen.iter().map(|address| address.to_string()).collect(), tls, ..Settings::default() }
    }

    fn route(id: &str, hostname: &str, prefix: Option<&str>, strip: bool, upstream: &str) -> RouteSpec {
        RouteSpec {
            id: id.to_owned(),
            hostname: hostname.to_owned(),
            path_prefix: prefix.map(str::to_owned),
            strip_prefix: strip,
            upstream: upstream.to_owned(),
            hold_timeout: Duration::from_secs(30),
        }
    }

    fn drain(app: &str, upstream: &str) -> DrainRef {
        DrainRef { id: format!("slipd-drain:{app}"), upstream: upstream.to_owned() }
    }

    #[track_caller]
    fn check_json(value: &impl serde::Serialize, expect: Expect) {
        expect.assert_eq(&serde_json::to_string_pretty(value).unwrap());
    }

    /// One line per route: its id and compact JSON, so ordering is visible at a glance.
    #[track_caller]
    fn check_lines(routes: &[Value], expect: Expect) {
        let lines: Vec<String> = routes.iter().map(|route| route.to_string()).collect();
        expect.assert_eq(&(lines.join("\n") + "\n"));
    }

    #[test]
    fn single_route_matches_the_spec_example() {
        let block = RouteBlock {
            routes: vec![route("slip-myapp", "myapp.example.com", None, false, "127.0.0.1:20014")],
            drains: vec![],
        };
        check_json(
            &routes(&block, &Settings::default(), None),
            expect![[r#"
                [
                  {
                    "@id": "slip-myapp",
                    "handle": [
                      {
                        "handler": "reverse_proxy",
                        "load_balancing": {
                          "try_duration": "30s",
                          "try_interval": "250ms"
                        },
                        "upstreams": [
                          {
                            "dial": "127.0.0.1:20014"
                          }
                        ]
                      }
                    ],
                    "match": [
                      {
                        "host": [
                          "myapp.example.com"
                        ]
                      }
                    ],
                    "terminal": true
                  }
                ]"#]],
        );
    }

    #[test]
    fn prefix_with_strip_adds_path_matcher_and_rewrite_before_proxy() {
        let block = RouteBlock {
            routes: vec![route("slip-api-1", "api.example.com", Some("/admin/"), true, "127.0.0.1:20015")],
            drains: vec![],
        };
        let settings = Settings { stream_close_delay: Some(Duration::from_secs(300)), ..Settings::default() };
        check_json(
            &routes(&block, &settings, None),
            expect![[r#"
                [
                  {
                    "@id": "slip-api-1",
                    "handle": [
                      {
                        "handler": "rewrite",
                        "strip_path_prefix": "/admin"
                      },
                      {
                        "handler": "reverse_proxy",
                        "load_balancing": {
                          "try_duration": "30s",
                          "try_interval": "250ms"
                        },
                        "stream_close_delay": "5m",
                        "upstreams": [
                          {
                            "dial": "127.0.0.1:20015"
                          }
                        ]
                      }
                    ],
                    "match": [
                      {
                        "host": [
                          "api.example.com"
                        ],
                        "path": [
                          "/admin",
                          "/admin/*"
                        ]
                      }
                    ],
                    "terminal": true
                  }
                ]"#]],
        );
    }

    #[test]
    fn prefix_without_strip_keeps_path_and_root_prefix_matches_everything() {
        let block = RouteBlock {
            routes: vec![
                route("slip-a", "a.example.com", Some("/"), true, "127.0.0.1:1"),
                route("slip-b", "b.example.com", Some("/api"), false, "127.0.0.1:2"),
            ],
            drains: vec![],
        };
        check_lines(
            &routes(&block, &Settings::default(), None),
            expect![[r#"
                {"@id":"slip-a","handle":[{"handler":"reverse_proxy","load_balancing":{"try_duration":"30s","try_interval":"250ms"},"upstreams":[{"dial":"127.0.0.1:1"}]}],"match":[{"host":["a.example.com"]}],"terminal":true}
                {"@id":"slip-b","handle":[{"handler":"reverse_proxy","load_balancing":{"try_duration":"30s","try_interval":"250ms"},"upstreams":[{"dial":"127.0.0.1:2"}]}],"match":[{"host":["b.example.com"],"path":["/api","/api/*"]}],"terminal":true}
            "#]],
        );
    }

    #[test]
    fn block_is_ordered_daemon_exact_hosts_longest_prefix_wildcards_then_drains() {
        let block = RouteBlock {
            routes: vec![
                route("slip-wild", "*.example.com", None, false, "127.0.0.1:1"),
                route("slip-api", "api.example.com", None, false, "127.0.0.1:2"),
                route("slip-api-1", "api.example.com", Some("/v1"), false, "127.0.0.1:3"),
                route("slip-api-2", "api.example.com", Some("/v1/admin"), true, "127.0.0.1:4"),
                route("slip-blog", "blog.example.com", None, false, "127.0.0.1:5"),
                route("slip-app-preview-pr-1", "pr-1.preview.example.com", None, false, "127.0.0.1:6"),
            ],
            drains: vec![drain("web", "127.0.0.1:7"), drain("api", "127.0.0.1:8")],
        };
        let settings = Settings {
            daemon_route: Some(DaemonRoute {
                host: "deploy.example.com".into(),
                paths: vec!["/v1/deploy".into(), "/healthz".into()],
                upstream: "0.0.0.0:7890".into(),
            }),
            ..Settings::default()
        };
        let rendered = routes(&block, &settings, None);
        let ids: Vec<&str> = rendered.iter().map(|route| object_id(route).unwrap()).collect();
        expect![[r#"
            [
                "slipd",
                "slipd-deny",
                "slip-api-2",
                "slip-api-1",
                "slip-api",
                "slip-blog",
                "slip-app-preview-pr-1",
                "slip-wild",
                "slipd-drain:api",
                "slipd-drain:web",
            ]
        "#]]
        .assert_debug_eq(&ids);
    }

    #[test]
    fn daemon_routes_dial_loopback_and_deny_unexposed_paths() {
        let settings = Settings {
            daemon_route: Some(DaemonRoute {
                host: "deploy.example.com".into(),
                paths: vec!["/v1/deploy".into(), "/v1/deploys/*".into()],
                upstream: "0.0.0.0:7890".into(),
            }),
            ..Settings::default()
        };
        check_lines(
            &routes(&RouteBlock::default(), &settings, None),
            expect![[r#"
                {"@id":"slipd","handle":[{"handler":"request_body","max_size":65536},{"handler":"reverse_proxy","upstreams":[{"dial":"127.0.0.1:7890"}]}],"match":[{"host":["deploy.example.com"],"path":["/v1/deploy","/v1/deploys/*"]}],"terminal":true}
                {"@id":"slipd-deny","handle":[{"body":"{\"error\":\"not found\",\"code\":\"not_found\"}","handler":"static_response","status_code":404}],"match":[{"host":["deploy.example.com"]}],"terminal":true}
            "#]],
        );
    }

    #[test]
    fn drain_reference_never_matches_and_has_no_host() {
        let block = RouteBlock { routes: vec![], drains: vec![drain("web", "127.0.0.1:20011")] };
        check_lines(
            &routes(&block, &Settings::default(), None),
            expect![[r#"
                {"@id":"slipd-drain:web","handle":[{"handler":"reverse_proxy","upstreams":[{"dial":"127.0.0.1:20011"}]}],"match":[{"expression":"false"}]}
            "#]],
        );
    }

    #[test]
    fn server_object_per_tls_mode() {
        let acme = TlsMode::Acme { email: None, staging: false };
        check_lines(
            &[
                server(&settings(acme.clone(), &[":443", ":80"])),
                server(&settings(acme, &[":443"])),
                server(&settings(TlsMode::Internal, &["127.0.0.1:8443", "tcp/127.0.0.1:80"])),
                server(&settings(TlsMode::Off, &[":80", "127.0.0.1:8080"])),
            ],
            expect![[r#"
                {"@id":"slipd-server","automatic_https":{"disable_redirects":false},"listen":[":443"],"routes":[]}
                {"@id":"slipd-server","automatic_https":{"disable_redirects":true},"listen":[":443"],"routes":[]}
                {"@id":"slipd-server","automatic_https":{"disable_redirects":false},"listen":["127.0.0.1:8443"],"routes":[]}
                {"@id":"slipd-server","automatic_https":{"disable":true},"listen":[":80","127.0.0.1:8080"],"routes":[]}
            "#]],
        );
    }

    #[test]
    fn tls_policy_per_mode_covers_exact_hostnames_only() {
        let block = RouteBlock {
            routes: vec![
                route("slip-b", "b.example.com", None, false, "127.0.0.1:1"),
                route("slip-a", "a.example.com", None, false, "127.0.0.1:2"),
                route("slip-a-1", "a.example.com", Some("/x"), false, "127.0.0.1:3"),
                route("slip-w", "*.example.com", None, false, "127.0.0.1:4"),
            ],
            drains: vec![],
        };
        let none = BTreeSet::new();
        let policy = |tls: TlsMode| {
            tls_policy(TLS_POLICY_ID, &block, &settings(tls, &[":443"]), None, &none).unwrap_or(Value::Null)
        };
        check_lines(
            &[
                policy(TlsMode::Off),
                policy(TlsMode::Acme { email: None, staging: false }),
                policy(TlsMode::Acme { email: Some("ops@example.com".into()), staging: false }),
                policy(TlsMode::Acme { email: Some("ops@example.com".into()), staging: true }),
                policy(TlsMode::Acme { email: None, staging: true }),
                policy(TlsMode::Internal),
            ],
            expect![[r#"
                null
                null
                {"@id":"slipd-tls","issuers":[{"email":"ops@example.com","module":"acme"}],"subjects":["a.example.com","b.example.com"]}
                {"@id":"slipd-tls","issuers":[{"ca":"https://acme-staging-v02.api.letsencrypt.org/directory","email":"ops@example.com","module":"acme"}],"subjects":["a.example.com","b.example.com"]}
                {"@id":"slipd-tls","issuers":[{"ca":"https://acme-staging-v02.api.letsencrypt.org/directory","module":"acme"}],"subjects":["a.example.com","b.example.com"]}
                {"@id":"slipd-tls","issuers":[{"module":"internal"}],"subjects":["a.example.com","b.example.com"]}
            "#]],
        );
    }

    #[test]
    fn tls_policy_leaves_out_subjects_a_foreign_policy_names_and_is_absent_when_none_remain() {
        let block =
            RouteBlock { routes: vec![route("slip-a", "a.example.com", None, false, "127.0.0.1:1")], drains: vec![] };
        let taken: BTreeSet<String> = ["a.example.com".to_owned()].into();
        assert_eq!(tls_policy(TLS_POLICY_ID, &block, &settings(TlsMode::Internal, &[":443"]), None, &taken), None);
        assert_eq!(
            tls_policy(
                TLS_POLICY_ID,
                &RouteBlock::default(),
                &settings(TlsMode::Internal, &[":443"]),
                None,
                &BTreeSet::new()
            ),
            None
        );
    }

    #[test]
    fn ownership_follows_id_prefixes() {
        let owned = ["slipd", "slipd-server", "slipd-drain:web", "slipd:x", "slip-web", "slip-web-2"];
        let foreign = ["slipdx", "slip", "slipper", "srv0", "", "my-slip-web"];
        assert!(owned.iter().all(|id| is_owned_id(id)), "{owned:?}");
        assert!(!foreign.iter().any(|id| is_owned_id(id)), "{foreign:?}");
        assert!(!is_owned(&json!({"handle": []})));
        assert!(!is_owned(&json!({"@id": 7})));
    }

    #[test]
    fn current_block_is_recognised_and_stale_drains_do_not_force_a_write() {
        let a = json!({"@id": "slip-a"});
        let b = json!({"@id": "slip-b"});
        let d = json!({"@id": "slipd-drain:a", "x": 1});
        let foreign = json!({"handle": [{"handler": "static_response"}]});
        let cases: Vec<(Vec<Value>, Vec<Value>, bool)> = vec![
            (vec![a.clone(), foreign.clone()], vec![a.clone()], true),
            (vec![a.clone(), d.clone(), foreign.clone()], vec![a.clone()], true),
            (vec![a.clone(), d.clone()], vec![a.clone(), d.clone()], true),
            (vec![a.clone()], vec![a.clone(), d.clone()], false),
            (vec![b.clone(), a.clone()], vec![a.clone(), b.clone()], false),
            (vec![foreign.clone(), a.clone()], vec![a.clone()], false),
            (vec![a.clone(), foreign.clone(), b.clone()], vec![a.clone(), b.clone()], false),
            (vec![], vec![], true),
        ];
        for (current, desired, expected) in cases {
            assert_eq!(is_current(&current, &desired), expected, "current {current:?} desired {desired:?}");
        }
        assert_eq!(merged(&[foreign.clone(), a, d], std::slice::from_ref(&b)), vec![b, foreign]);
    }

    #[test]
    fn durations_use_go_syntax() {
        let cases = [
            (Duration::from_secs(30), "30s"),
            (Duration::from_secs(300), "5m"),
            (Duration::from_secs(5400), "1h30m"),
            (Duration::from_secs(3601), "1h1s"),
            (Duration::from_millis(250), "250ms"),
            (Duration::from_millis(1500), "1500ms"),
            (Duration::ZERO, "0s"),
            (Duration::from_nanos(1500), "1500ns"),
        ];
        for (duration, text) in cases {
            assert_eq!(go_duration(duration), text, "{duration:?}");
        }
    }

    #[test]
    fn port_80_detection() {
        assert!([":80", "0.0.0.0:80", "[::]:80", "tcp/:80", "tcp4/127.0.0.1:80"].iter().all(|a| is_port_80(a)));
        assert!(![":443", ":8080", "127.0.0.1:180", "unix//run/x.sock"].iter().any(|a| is_port_80(a)));
    }

    fn wildcard(dns: Option<DnsChallenge>) -> PreviewWildcard {
        PreviewWildcard { domains: vec!["preview.example.com".into(), "idle.example.com".into()], dns }
    }

    fn preview_block() -> RouteBlock {
        RouteBlock {
            routes: vec![
                route("slip-web", "web.example.com", None, false, "127.0.0.1:1"),
                route("slip-web-preview-pr-2", "pr-2.preview.example.com", None, false, "127.0.0.1:2"),
                route("slip-web-preview-pr-1-1", "pr-1-2.preview.example.com", None, false, "127.0.0.1:3"),
                route("slip-web-preview-pr-1", "pr-1.preview.example.com", Some("/app"), true, "127.0.0.1:4"),
                route("slip-deep", "a.b.preview.example.com", None, false, "127.0.0.1:5"),
            ],
            drains: vec![drain("web", "127.0.0.1:9")],
        }
    }

    #[test]
    fn wildcard_preview_routes_are_grouped_under_one_route_per_domain_in_use() {
        let settings = settings(TlsMode::Internal, &[":443"]);
        let rendered = routes(&preview_block(), &settings, Some(&wildcard(None)));
        let ids: Vec<&str> = rendered.iter().map(|route| object_id(route).unwrap()).collect();
        assert_eq!(ids, ["slip-deep", "slip-web", "slipd-previews:preview.example.com", "slipd-drain:web"]);
        let inner: Vec<String> =
            rendered[2]["handle"][0]["routes"].as_array().unwrap().iter().map(Value::to_string).collect();
        expect![[r#"
            {"@id":"slip-web-preview-pr-1-1","handle":[{"handler":"reverse_proxy","load_balancing":{"try_duration":"30s","try_interval":"250ms"},"upstreams":[{"dial":"127.0.0.1:3"}]}],"match":[{"host":["pr-1-2.preview.example.com"]}],"terminal":true}
            {"@id":"slip-web-preview-pr-1","handle":[{"handler":"rewrite","strip_path_prefix":"/app"},{"handler":"reverse_proxy","load_balancing":{"try_duration":"30s","try_interval":"250ms"},"upstreams":[{"dial":"127.0.0.1:4"}]}],"match":[{"host":["pr-1.preview.example.com"],"path":["/app","/app/*"]}],"terminal":true}
            {"@id":"slip-web-preview-pr-2","handle":[{"handler":"reverse_proxy","load_balancing":{"try_duration":"30s","try_interval":"250ms"},"upstreams":[{"dial":"127.0.0.1:2"}]}],"match":[{"host":["pr-2.preview.example.com"]}],"terminal":true}
            {"handle":[{"body":"no such preview","handler":"static_response","status_code":404}]}
        "#]]
        .assert_eq(&(inner.join("\n") + "\n"));
        let mut outer = rendered[2].clone();
        outer["handle"][0]["routes"] = json!("…");
        expect![[r#"{"@id":"slipd-previews:preview.example.com","handle":[{"handler":"subroute","routes":"…"}],"match":[{"host":["*.preview.example.com"]}],"terminal":true}"#]]
        .assert_eq(&outer.to_string());
    }

    #[test]
    fn preview_policy_covers_wildcards_and_the_exact_policy_leaves_preview_hosts_out() {
        let dns = DnsChallenge {
            provider: "cloudflare".into(),
            config: [("api_token".to_owned(), json!("{env.CF_API_TOKEN}"))].into_iter().collect(),
            propagation_delay: Duration::from_secs(120),
        };
        let acme = settings(TlsMode::Acme { email: Some("ops@example.com".into()), staging: false }, &[":443"]);
        let internal = settings(TlsMode::Internal, &[":443"]);
        let off = settings(TlsMode::Off, &[":80"]);
        let none = BTreeSet::new();
        let (block, with_dns, without_dns) = (preview_block(), wildcard(Some(dns)), wildcard(None));
        let policy = |id, settings: &Settings, previews: &PreviewWildcard| {
            tls_policy(id, &block, settings, Some(previews), &none).unwrap_or(Value::Null)
        };
        check_lines(
            &[
                policy(PREVIEW_TLS_POLICY_ID, &acme, &with_dns),
                policy(TLS_POLICY_ID, &acme, &with_dns),
                policy(PREVIEW_TLS_POLICY_ID, &internal, &without_dns),
                policy(PREVIEW_TLS_POLICY_ID, &off, &without_dns),
            ],
            expect![[r#"
                {"@id":"slipd-tls-preview","issuers":[{"challenges":{"dns":{"propagation_delay":"2m","provider":{"api_token":"{env.CF_API_TOKEN}","name":"cloudflare"}}},"email":"ops@example.com","module":"acme"}],"subjects":["*.preview.example.com"]}
                {"@id":"slipd-tls","issuers":[{"email":"ops@example.com","module":"acme"}],"subjects":["a.b.preview.example.com","web.example.com"]}
                {"@id":"slipd-tls-preview","issuers":[{"module":"internal"}],"subjects":["*.preview.example.com"]}
                null
            "#]],
        );
    }
}
