//! Rules across files, and warnings (SPEC §4.1, §15, §16).
//!
//! Errors: two apps claiming the same hostname and path prefix, a route claiming `server.public_domain`,
//! and two apps producing the same Caddy `@id` (app `api-2` against route 2 of app `api`). Each is
//! reported in the later file (by path), at the route, naming the other file and line.
//!
//! Warnings: things that work but deserve attention: the admin-token fallback, a non-loopback listener,
//! short keys, per-host preview certificates. Checks that need the filesystem (a missing `env_file`, a
//! volume root slipd cannot write) are the daemon's, not this pure module's.

use std::collections::BTreeMap;

use super::app::{Draft, route_id};
use super::problem::Problem;
use super::reader::At;
use super::server::{Daemon, PreviewTls, TlsMode};
use crate::defaults;

/// Adds the problems that involve more than one app (or an app and `slip.toml`).
pub(crate) fn across_apps(daemon: &Daemon, drafts: &[Draft], problems: &mut Vec<Problem>) {
    let mut by_file: Vec<&Draft> = drafts.iter().collect();
    by_file.sort_by(|a, b| a.file.cmp(&b.file));

    // Hostname + path prefix, first claimant wins.
    let mut claimed: BTreeMap<(String, String), (&Draft, At)> = BTreeMap::new();
    for d in &by_file {
        for ((route, at), shown) in d.config.routes.iter().zip(&d.route_at).zip(&d.route_shown) {
            if daemon.server.public_domain.as_deref() == Some(route.hostname.as_str()) {
                problems.push(problem(
                    d,
                    *at,
                    format!(
                        "routing: hostname {shown} is server.public_domain ({}), which routes to slipd itself",
                        daemon.cite("server.public_domain")
                    ),
                    Some("give the app another hostname".into()),
                ));
                continue;
            }
            let key = (route.hostname.clone(), route.path_prefix.clone());
            match claimed.get(&key) {
                Some((other, other_at)) => problems.push(problem(
                    d,
                    *at,
                    format!(
                        "routing: hostname {shown} with path prefix {:?} is already routed by app {:?} ({})",
                        route.path_prefix,
                        other.config.name.as_str(),
                        cite(other, *other_at)
                    ),
                    Some("two apps may share a hostname only with different path_prefix values".into()),
                )),
                None => {
                    claimed.insert(key, (d, *at));
                }
            }
        }
    }

    wildcard_overlaps(&by_file, problems);

    // Caddy ids.
    let mut ids: BTreeMap<String, (&Draft, usize, At)> = BTreeMap::new();
    for d in &by_file {
        for (n, at) in d.route_at.iter().enumerate() {
            let id = route_id(&d.config.name, n);
            match ids.get(&id) {
                Some((other, other_n, other_at)) => problems.push(problem(
                    d,
                    *at,
                    format!(
                        "route {n} of app {:?} gets the Caddy id {id:?}, which route {other_n} of app {:?} already has ({})",
                        d.config.name.as_str(),
                        other.config.name.as_str(),
                        cite(other, *other_at)
                    ),
                    Some("rename one of the apps: Caddy ids are slip-<app> and slip-<app>-<n>".into()),
                )),
                None => {
                    ids.insert(id, (d, n, *at));
                }
            }
        }
    }
}

/// Adds the warnings about a config that is otherwise valid.
pub(crate) fn warnings(daemon: &Daemon, drafts: &[Draft], warnings: &mut Vec<Problem>) {
    let at = |key: &str| daemon.locs.get(key).copied().unwrap_or((None, None));
    let mut warn = |key: &str, message: String, hint: Option<String>| {
        let (line, column) = at(key);
        warnings.push(Problem { file: daemon.file.clone(), line, column, message, hint });
    };
    let auth = &daemon.auth;
    if auth.admin_token.is_none() && auth.secret.is_some() {
        warn(
            "auth.secret",
            "auth.admin_token is unset, so auth.secret (the webhook key CI holds) is also the admin token".into(),
            Some("set a separate auth.admin_token, e.g. from `slip gen-secret`".into()),
        );
    }
    if let (Some(a), Some(s)) = (&auth.admin_token, &auth.secret)
        && a == s
    {
        warn(
            "auth.admin_token",
            "auth.admin_token equals auth.secret, so CI's webhook key can manage slipd".into(),
            Some("use a different value for auth.admin_token".into()),
        );
    }
    for (key, value) in [
        ("auth.secret", &auth.secret),
        ("auth.admin_token", &auth.admin_token),
        ("auth.metrics_token", &auth.metrics_token),
    ] {
        if let Some(v) = value
            && v.len() < defaults::MIN_KEY_LENGTH
        {
            warn(key, format!("{key} is shorter than {} characters", defaults::MIN_KEY_LENGTH), Some(gen_hint()));
        }
    }
    if !daemon.server.listen.is_loopback() {
        warn(
            "server.listen",
            "server.listen is not a loopback address: tokens and keys would cross the network in clear text".into(),
            Some("listen on 127.0.0.1 and reach slipd over HTTPS through server.public_domain".into()),
        );
    }
    let any_preview_domain =
        daemon.preview.domain.is_some() || drafts.iter().any(|d| d.config.preview.domain.is_some());
    if any_preview_domain && daemon.preview.tls == PreviewTls::PerHost && daemon.caddy.tls.mode == TlsMode::Acme {
        let key = if daemon.locs.contains_key("preview.tls") { "preview.tls" } else { "preview.domain" };
        warn(
            key,
            "previews get one certificate per hostname; Let's Encrypt allows 50 certificates per registered domain \
             per week"
                .into(),
            Some("set caddy.tls.dns_provider for one wildcard certificate per preview domain".into()),
        );
    }
    for d in drafts {
        if let Some(secret) = &d.config.secret
            && secret.len() < defaults::MIN_KEY_LENGTH
        {
            let (line, column) = d.locs.get("app.secret").copied().unwrap_or((None, None));
            warnings.push(Problem {
                file: d.file.clone(),
                line,
                column,
                message: format!("app.secret is shorter than {} characters", defaults::MIN_KEY_LENGTH),
                hint: Some(gen_hint()),
            });
        }
    }
}

fn gen_hint() -> String {
    "`slip gen-secret` prints a 64-character random key".into()
}

/// A wildcard `*.example.com` of one app and a name one label below it (`myapp.example.com`) of another, with the
/// same path prefix, would both match that name: which one serves would depend on route order. Reported at the
/// route in the later file, like a duplicate.
fn wildcard_overlaps(by_file: &[&Draft], problems: &mut Vec<Problem>) {
    let routes: Vec<(usize, &Draft, &super::app::Route, At, &String)> = by_file
        .iter()
        .enumerate()
        .flat_map(|(n, d)| {
            d.config
                .routes
                .iter()
                .zip(&d.route_at)
                .zip(&d.route_shown)
                .map(move |((r, at), shown)| (n, *d, r, *at, shown))
        })
        .collect();
    for (n, d, route, at, shown) in &routes {
        for (m, other, other_route, other_at, _) in &routes {
            if m >= n || other.config.name == d.config.name || other_route.path_prefix != route.path_prefix {
                continue;
            }
            let (wild, name) = match (route.hostname.strip_prefix("*."), other_route.hostname.strip_prefix("*.")) {
                (Some(domain), None) => (domain, other_route.hostname.as_str()),
                (None, Some(domain)) => (domain, route.hostname.as_str()),
                _ => continue,
            };
            let covered = name.strip_suffix(wild).and_then(|l| l.strip_suffix('.')).is_some_and(|l| !l.contains('.'));
            if covered {
                problems.push(problem(
                    d,
                    *at,
                    format!(
                        "routing: hostname {shown} is already routed by app {:?} ({}): *.{wild} and {name} overlap",
                        other.config.name.as_str(),
                        cite(other, *other_at)
                    ),
                    Some(
                        "a wildcard matches every name one label below it; give one of the apps another hostname"
                            .into(),
                    ),
                ));
            }
        }
    }
}

fn problem(d: &Draft, at: At, message: String, hint: Option<String>) -> Problem {
    Problem { file: d.file.clone(), line: at.0, column: at.1, message, hint }
}

fn cite(d: &Draft, at: At) -> String {
    match at.0 {
        Some(line) => format!("{}:{line}", d.file.display()),
        None => d.file.display().to_string(),
    }
}
