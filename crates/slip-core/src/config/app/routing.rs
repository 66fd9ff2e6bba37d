//! `[routing]`: an app's routes (the `routing.domain` shorthand and `[[routing.routes]]`) and their Caddy ids.

use std::time::Duration;

use super::containers::container_name;
use crate::config::reader::{At, Keys, Reader, Tbl, Val};
use crate::config::server::hostname;
use crate::defaults;
use crate::names::AppName;

pub(super) const ROUTING: &[&str] = &["domain", "port", "container", "hold_timeout", "routes"];
const ROUTE: &[&str] = &["hostname", "port", "container", "path_prefix", "strip_prefix"];

/// The Caddy `@id` of route `n` of `app`: `slip-<app>` for route 0, `slip-<app>-<n>` after.
pub fn route_id(app: &AppName, n: usize) -> String {
    if n == 0 { format!("slip-{app}") } else { format!("slip-{app}-{n}") }
}

/// One route: a hostname (and path prefix) sent to a container port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// Lower-case hostname, possibly `*.`-prefixed.
    pub hostname: String,
    /// Container port when the server file gives one (route, else `routing.port`).
    pub port: Option<u16>,
    /// Pod container when the server file gives one (route, else `routing.container`).
    pub container: Option<String>,
    /// `/` or a prefix such as `/api` (no trailing slash).
    pub path_prefix: String,
    /// Remove the prefix before proxying.
    pub strip_prefix: bool,
}

pub(super) fn routing_table(r: &mut Reader<'_>, t: Option<&Tbl<'_>>) -> (Vec<Route>, Vec<At>, Vec<String>, Duration) {
    let Some(t) = t else { return (Vec::new(), Vec::new(), Vec::new(), defaults::HOLD_TIMEOUT) };
    let port = r.int_in::<u16>(t, "port", 1, 65535).map(|v| v.v);
    let container = container_name(r, t, "container");
    let hold_timeout = r.positive_duration(t, "hold_timeout").map_or(defaults::HOLD_TIMEOUT, |v| v.v);
    let mut routes = Vec::new();
    let mut route_at = Vec::new();
    let mut route_shown = Vec::new();
    if let Some(domain) = hostname(r, t, "domain", true) {
        route_at.push(r.locate(domain.at));
        route_shown.push(shown_host(&domain));
        routes.push(Route {
            hostname: domain.v,
            port,
            container: container.clone(),
            path_prefix: defaults::PATH_PREFIX.to_owned(),
            strip_prefix: false,
        });
    }
    let mut seen: Vec<(String, String, At)> =
        routes.iter().map(|r| (r.hostname.clone(), r.path_prefix.clone(), route_at[0])).collect();
    for e in r.tables(t, "routes", Keys::of(ROUTE)) {
        let host = hostname(r, &e, "hostname", true);
        if host.is_none() && !r.has(&e, "hostname") {
            r.missing(&e, "hostname", None);
        }
        let route_port = r.int_in::<u16>(&e, "port", 1, 65535).map(|v| v.v);
        let route_container = container_name(r, &e, "container");
        let prefix = r.string(&e, "path_prefix").and_then(|v| match check_prefix(&v.v) {
            Ok(()) => Some(v),
            Err(why) => {
                r.invalid(&v, why, None);
                None
            }
        });
        let strip = r.boolean(&e, "strip_prefix").unwrap_or(false);
        let path_prefix = prefix.as_ref().map_or_else(|| defaults::PATH_PREFIX.to_owned(), |v| v.v.clone());
        if strip && path_prefix == "/" {
            let at = r.value_at(&e, "strip_prefix");
            r.problem(
                at,
                format!("{}: strip_prefix needs a path_prefix other than \"/\"", label_of(&e)),
                Some("set path_prefix, e.g. \"/api\", or remove strip_prefix".into()),
            );
        }
        let Some(host) = host else { continue };
        let at = r.locate(host.at);
        if let Some((_, _, first)) = seen.iter().find(|(h, p, _)| *h == host.v && *p == path_prefix) {
            let line = first.0.map(|l| format!(" (line {l})")).unwrap_or_default();
            r.invalid(&host, format!("with path prefix {path_prefix:?} is already a route of this app{line}"), None);
            continue;
        }
        seen.push((host.v.clone(), path_prefix.clone(), at));
        route_at.push(at);
        route_shown.push(shown_host(&host));
        routes.push(Route {
            hostname: host.v,
            port: route_port.or(port),
            container: route_container.or_else(|| container.clone()),
            path_prefix,
            strip_prefix: strip,
        });
    }
    (routes, route_at, route_shown, hold_timeout)
}

/// A hostname for messages: the value when written literally, the text as written when interpolated.
fn shown_host(v: &Val<String>) -> String {
    if v.interpolated { format!("{:?}", v.written) } else { v.v.clone() }
}

/// A route prefix: `/`, or `/segment[/segment…]` with no trailing slash, wildcards, query or fragment.
pub(super) fn check_prefix(s: &str) -> Result<(), &'static str> {
    if !s.starts_with('/') {
        return Err("must start with /");
    }
    if s.len() > 1 && s.ends_with('/') {
        return Err("must not end with / (it matches the prefix and everything below it)");
    }
    if s.contains(|c: char| c.is_whitespace() || c.is_control() || matches!(c, '*' | '?' | '#' | '{' | '}' | '%'))
        || s.split('/').any(|seg| seg == "..")
    {
        return Err("may only contain a plain path (no spaces, *, ?, #, braces, % or ..)");
    }
    Ok(())
}

fn label_of(t: &Tbl<'_>) -> String {
    Reader::key_path(t, "").trim_end_matches('.').to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes() {
        assert!(check_prefix("/").is_ok());
        assert!(check_prefix("/api/v1").is_ok());
        for bad in ["api", "/api/", "/a b", "/a*", "/../x"] {
            assert!(check_prefix(bad).is_err(), "{bad}");
        }
    }
}
