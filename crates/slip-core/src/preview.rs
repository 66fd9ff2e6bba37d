//! Preview environments as pure decisions (SPEC §13): the hostnames and Caddy ids of a preview, its TTL, its
//! cap and its resources, and the collisions that refuse one. No IO and no clock: `now` is a parameter.
//!
//! The daemon asks these at the webhook (hostnames, collisions, the TTL the webhook asked for) and the engine at
//! `configuring`, once the image's repo config is known (the repo's TTL, cap and resource requests).

use std::collections::BTreeMap;
use std::time::Duration;

use crate::config::{Config, Resources};
use crate::names::{AppName, PreviewId, Target};

/// The longest DNS name (SPEC §3.1).
const MAX_HOSTNAME: usize = 253;

/// The Caddy `@id` of route `n` of `target` (SPEC §9.4): `slip-<app>[-<n>]` for production,
/// `slip-<app>-preview-<id>[-<n>]` for a preview.
pub fn route_id(target: &Target, n: usize) -> String {
    let base = match &target.preview {
        None => format!("slip-{}", target.app),
        Some(id) => format!("slip-{}-preview-{id}", target.app),
    };
    if n == 0 { base } else { format!("{base}-{n}") }
}

/// The `@id` of `target`'s drain reference: `slipd-drain:<app>[:<preview id>]` (SPEC §9.4).
pub fn drain_id(target: &Target) -> String {
    format!("slipd-drain:{target}")
}

/// The preview hostname of each of an app's route hostnames, in route order (SPEC §13.1): the first distinct
/// hostname becomes `<id>.<domain>`, the k-th (k ≥ 2) `<id>-<k>.<domain>`. Routes sharing a hostname (different
/// path prefixes) share its preview hostname.
pub fn hostnames(route_hostnames: &[&str], id: &PreviewId, domain: &str) -> Vec<String> {
    let mut distinct: Vec<&str> = Vec::new();
    route_hostnames
        .iter()
        .map(|host| {
            let k = match distinct.iter().position(|d| d == host) {
                Some(at) => at + 1,
                None => {
                    distinct.push(host);
                    distinct.len()
                }
            };
            if k == 1 { format!("{id}.{domain}") } else { format!("{id}-{k}.{domain}") }
        })
        .collect()
}

/// A preview's public URL: `https://<first preview hostname>`, `http://` when TLS is off (SPEC §13.3).
pub fn url(first_hostname: &str, tls_off: bool) -> String {
    format!("{}://{first_hostname}", if tls_off { "http" } else { "https" })
}

/// Why a preview cannot be created, as the webhook answers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// No preview domain for the app (400 `preview_not_configured`), or the app turned previews off.
    NotConfigured(String),
    /// A preview hostname is too long (400 `invalid_preview_id`).
    InvalidId(String),
    /// A preview hostname or Caddy id is an app's (409 `id_collision`).
    Collision(String),
    /// Not available for this kind of app yet (400 `preview_not_configured`).
    Unsupported(String),
}

impl Refusal {
    /// The human sentence.
    pub fn message(&self) -> &str {
        match self {
            Refusal::NotConfigured(m) | Refusal::InvalidId(m) | Refusal::Collision(m) | Refusal::Unsupported(m) => m,
        }
    }
}

/// Where a preview of one app is served: its base domain, one hostname per app route, its URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    /// The base domain (`app.preview.domain`, else the server's).
    pub domain: String,
    /// One preview hostname per app route, in route order.
    pub hostnames: Vec<String>,
    /// `https://<first hostname>` (or `http://` with TLS off); `None` for a worker (no routes).
    pub url: Option<String>,
}

/// Where preview `id` of `app` would be served under `config`, or why it cannot be (SPEC §13.1): the app must
/// allow previews and have a preview domain, the hostnames must be valid DNS names, and neither a hostname nor a
/// Caddy id may be an app's.
pub fn place(config: &Config, app: &AppName, id: &PreviewId) -> Result<Placement, Refusal> {
    let Some(app_config) = config.apps.get(app) else {
        return Err(Refusal::NotConfigured(format!("app {app} does not exist")));
    };
    if app_config.kind().as_str() == "pod" {
        return Err(Refusal::Unsupported(format!(
            "previews of pod apps are not supported by this slipd yet (app {app} is a pod)"
        )));
    }
    if !app_config.preview.enabled {
        return Err(Refusal::NotConfigured(format!(
            "previews are turned off for app {app} (preview.enabled = false in apps/{app}.toml)"
        )));
    }
    let Some(domain) = app_config.preview.domain.clone().or_else(|| config.preview.domain.clone()) else {
        return Err(Refusal::NotConfigured(format!(
            "no preview domain for app {app}: set preview.domain in slip.toml or in apps/{app}.toml"
        )));
    };
    let routes: Vec<&str> = app_config.routes.iter().map(|r| r.hostname.as_str()).collect();
    let hostnames = hostnames(&routes, id, &domain);
    if let Some(long) = hostnames.iter().find(|h| h.len() > MAX_HOSTNAME) {
        return Err(Refusal::InvalidId(format!(
            "preview hostname {long} is longer than {MAX_HOSTNAME} characters; use a shorter preview id"
        )));
    }
    let target = Target::preview(app.clone(), id.clone());
    let ids: Vec<String> = (0..hostnames.len().max(1)).map(|n| route_id(&target, n)).collect();
    if let Some(public) = &config.server.public_domain
        && hostnames.contains(public)
    {
        return Err(Refusal::Collision(format!("preview hostname {public} is slipd's server.public_domain")));
    }
    for (other_name, other) in &config.apps {
        for (n, route) in other.routes.iter().enumerate() {
            if let Some(taken) = hostnames.iter().find(|h| **h == route.hostname || wildcard_covers(&route.hostname, h))
            {
                return Err(Refusal::Collision(format!(
                    "preview hostname {taken} is already served by app {other_name} ({})",
                    route.hostname
                )));
            }
            let theirs = crate::config::route_id(other_name, n);
            if ids.contains(&theirs) {
                return Err(Refusal::Collision(format!(
                    "preview {id} of {app} would get the Caddy id {theirs}, which is app {other_name}'s"
                )));
            }
        }
    }
    let tls_off = config.caddy.tls.mode == crate::config::TlsMode::Off;
    let url = hostnames.first().map(|h| url(h, tls_off));
    Ok(Placement { domain, hostnames, url })
}

/// Whether the app route `pattern` (`*.example.com`) matches `hostname` (one label under it).
fn wildcard_covers(pattern: &str, hostname: &str) -> bool {
    let Some(parent) = pattern.strip_prefix("*.") else { return false };
    hostname.split_once('.').is_some_and(|(_, rest)| rest == parent)
}

/// The lifetime of a preview (SPEC §5 merge rules): the webhook's `ttl`, else the repo's `preview.ttl`, else the
/// app's `preview.default_ttl`, else the server's `default_ttl`; whichever it is, capped by `max_ttl`.
pub fn ttl(
    webhook: Option<Duration>,
    repo: Option<Duration>,
    app: Option<Duration>,
    server_default: Duration,
    max: Duration,
) -> Duration {
    webhook.or(repo).or(app).unwrap_or(server_default).min(max)
}

/// The per-app cap: `min(repo preview.max, app preview.max or server max_per_app)` (SPEC §5).
pub fn cap(repo: Option<u32>, app: Option<u32>, server_max_per_app: u32) -> u32 {
    let server = app.unwrap_or(server_max_per_app);
    repo.map_or(server, |r| r.min(server)).max(1)
}

/// A preview's resources (SPEC §5): the repo's `preview.resources` where set, else what production would get,
/// then capped by the server's `preview.max_memory` and `preview.max_cpus` (a missing limit becomes the cap).
pub fn resources(
    repo: &Resources,
    production: &Resources,
    max_memory: Option<u64>,
    max_cpus: Option<u64>,
) -> Resources {
    let capped = |asked: Option<u64>, ceiling: Option<u64>| match (asked, ceiling) {
        (Some(a), Some(c)) => Some(a.min(c)),
        (None, c) => c,
        (a, None) => a,
    };
    Resources {
        memory: capped(repo.memory.or(production.memory), max_memory),
        nano_cpus: capped(repo.nano_cpus.or(production.nano_cpus), max_cpus),
        pids: production.pids,
    }
}

/// Previews to evict after one of `app`'s previews became healthy and routed (SPEC §13.2): while more than `cap`
/// previews are live, the oldest by `deployed_at`, never `keep` (the one just deployed) and never one mid-deploy.
/// `live` maps each live preview to its `deployed_at` (`None` while its first deploy runs) and whether a deploy of
/// it is in flight.
pub fn evictions(live: &BTreeMap<PreviewId, (Option<i64>, bool)>, keep: &PreviewId, cap: u32) -> Vec<PreviewId> {
    let over = live.len().saturating_sub(cap as usize);
    let mut candidates: Vec<(&i64, &PreviewId)> = live
        .iter()
        .filter(|(id, (_, busy))| *id != keep && !busy)
        .filter_map(|(id, (at, _))| at.as_ref().map(|at| (at, id)))
        .collect();
    candidates.sort();
    candidates.into_iter().take(over).map(|(_, id)| id.clone()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pid(s: &str) -> PreviewId {
        s.parse().unwrap()
    }

    #[test]
    fn hostnames_map_distinct_hosts_to_numbered_labels_and_keep_shared_ones() {
        let got = hostnames(&["a.example.com", "a.example.com", "api.example.com"], &pid("pr-1"), "pv.test");
        assert_eq!(got, ["pr-1.pv.test", "pr-1.pv.test", "pr-1-2.pv.test"]);
    }

    #[test]
    fn route_and_drain_ids_carry_the_preview() {
        let app: AppName = "web".parse().unwrap();
        let prod = Target::production(app.clone());
        let pv = Target::preview(app, pid("pr-1"));
        assert_eq!((route_id(&prod, 0), route_id(&prod, 2)), ("slip-web".into(), "slip-web-2".into()));
        assert_eq!(
            (route_id(&pv, 0), route_id(&pv, 1)),
            ("slip-web-preview-pr-1".into(), "slip-web-preview-pr-1-1".into())
        );
        assert_eq!((drain_id(&prod), drain_id(&pv)), ("slipd-drain:web".into(), "slipd-drain:web:pr-1".into()));
    }

    #[test]
    fn ttl_takes_the_first_given_and_never_exceeds_the_maximum() {
        let h = |n: u64| Duration::from_secs(n * 3600);
        assert_eq!(ttl(Some(h(1)), Some(h(2)), Some(h(3)), h(4), h(100)), h(1));
        assert_eq!(ttl(None, Some(h(2)), Some(h(3)), h(4), h(100)), h(2));
        assert_eq!(ttl(None, None, Some(h(3)), h(4), h(100)), h(3));
        assert_eq!(ttl(None, None, None, h(4), h(100)), h(4));
        assert_eq!(ttl(Some(h(500)), None, None, h(4), h(100)), h(100));
    }

    #[test]
    fn cap_is_the_smaller_of_repo_and_server() {
        assert_eq!(cap(None, None, 10), 10);
        assert_eq!(cap(Some(3), None, 10), 3);
        assert_eq!(cap(Some(30), Some(5), 10), 5);
    }

    #[test]
    fn resources_prefer_the_repo_request_and_are_capped() {
        let repo = Resources { memory: Some(512 << 20), nano_cpus: None, pids: None };
        let prod = Resources { memory: Some(1 << 30), nano_cpus: Some(2_000_000_000), pids: Some(100) };
        let got = resources(&repo, &prod, Some(256 << 20), Some(500_000_000));
        assert_eq!(got, Resources { memory: Some(256 << 20), nano_cpus: Some(500_000_000), pids: Some(100) });
        let uncapped = resources(&Resources::default(), &Resources::default(), Some(128 << 20), None);
        assert_eq!(uncapped.memory, Some(128 << 20), "no request: the ceiling is the limit");
    }

    #[test]
    fn evictions_take_the_oldest_idle_previews_over_the_cap() {
        let live = BTreeMap::from([
            (pid("a"), (Some(10), false)),
            (pid("b"), (Some(5), true)),
            (pid("c"), (Some(20), false)),
            (pid("new"), (Some(30), false)),
            (pid("first"), (None, false)),
        ]);
        assert_eq!(evictions(&live, &pid("new"), 3), [pid("a"), pid("c")], "b is mid-deploy, first never served");
        assert!(evictions(&live, &pid("new"), 5).is_empty());
    }

    #[test]
    fn wildcards_cover_one_label() {
        assert!(wildcard_covers("*.pv.test", "pr-1.pv.test"));
        assert!(!wildcard_covers("*.pv.test", "a.pr-1.pv.test"));
        assert!(!wildcard_covers("pv.test", "pr-1.pv.test"));
    }
}
