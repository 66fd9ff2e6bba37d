//! `[caddy]` and `caddy.tls`: where Caddy's admin API is, slip's server in it, listeners and certificates.

use std::time::Duration;

use super::values::is_registry_host;
use crate::config::reader::{Keys, Reader, Tbl};
use crate::config::secret::Secret;
use crate::config::vocabulary;
use crate::defaults;
use crate::names::is_hostname;

vocabulary! {
    /// `caddy.tls` / `caddy.tls.mode`.
    TlsMode {
        /// Public certificates from an ACME CA.
        Acme = "acme",
        /// Caddy's local CA (development, LAN).
        Internal = "internal",
        /// Plain HTTP.
        Off = "off",
    }
}

/// `[caddy]`.
#[derive(Debug, Clone)]
pub struct Caddy {
    /// Admin API: `http://host:port` or `unix//path/to/admin.sock`.
    pub admin_api: String,
    /// Name of slip's server under `apps.http.servers`. Unset, slip uses its own server (`slip`) unless one
    /// server it did not create already listens on `listen` (a Caddyfile's `srv0`), which it then shares.
    pub server: Option<String>,
    /// Listener addresses; the default depends on the TLS mode.
    pub listen: Vec<String>,
    /// Certificates.
    pub tls: Tls,
    /// Keeps WebSockets open across Caddy reloads (Caddy ≥ 2.7).
    pub stream_close_delay: Option<Duration>,
    /// How often Caddy's routes are compared with the desired state.
    pub reconcile_interval: Duration,
}

/// `caddy.tls`, written either as a mode string or as a table.
#[derive(Debug, Clone)]
pub struct Tls {
    /// ACME, Caddy's internal CA, or plain HTTP.
    pub mode: TlsMode,
    /// ACME account e-mail.
    pub email: Option<String>,
    /// Use the Let's Encrypt staging directory.
    pub staging: bool,
    /// Caddy DNS module name for DNS-01 (wildcard preview certificates).
    pub dns_provider: Option<String>,
    /// Passed verbatim beside `name` in the DNS provider object; strings are interpolated and secret.
    pub dns_provider_config: std::collections::BTreeMap<String, ProviderValue>,
    /// DNS-01 propagation delay.
    pub propagation_delay: Duration,
}

/// A value of `caddy.tls.dns_provider_config`, kept as data for the Caddy adapter to turn into JSON.
/// Strings are [`Secret`]s because provider settings are usually API tokens.
#[derive(Debug, Clone, PartialEq)]
pub enum ProviderValue {
    /// A string (often a Caddy placeholder such as `{env.CF_API_TOKEN}`).
    String(Secret),
    /// An integer.
    Integer(i64),
    /// A float.
    Float(f64),
    /// A boolean.
    Bool(bool),
    /// An array.
    Array(Vec<ProviderValue>),
    /// A table.
    Table(std::collections::BTreeMap<String, ProviderValue>),
}

pub(super) fn caddy(r: &mut Reader<'_>, t: Option<&Tbl<'_>>) -> Caddy {
    let admin_api = t.and_then(|t| r.string(t, "admin_api")).and_then(|v| {
        if is_admin_api(&v.v) {
            Some(v.v)
        } else {
            r.invalid(&v, "is not an admin address: use http://host:port or unix//path/to/admin.sock", None);
            None
        }
    });
    let server = t.and_then(|t| r.string(t, "server")).and_then(|v| {
        let ok = !v.v.is_empty() && v.v.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
        if ok {
            Some(v.v)
        } else {
            r.invalid(&v, "is not a server name: use letters, digits, '_', '-' and '.'", None);
            None
        }
    });
    let tls = tls(r, t);
    let listen = t.and_then(|t| r.strings(t, "listen")).and_then(|list| {
        if list.is_empty() {
            r.problem(
                t.and_then(|t| r.value_at(t, "listen")),
                "caddy.listen: must list at least one address, e.g. [\":443\", \":80\"]".into(),
                None,
            );
            return None;
        }
        let mut ok = true;
        for v in &list {
            if !is_caddy_listener(&v.v) {
                ok = false;
                r.invalid(
                    &v.clone(),
                    "is not a listener address: use [host]:port, e.g. \":443\" or \"127.0.0.1:8080\"",
                    None,
                );
            }
        }
        ok.then(|| list.into_iter().map(|v| v.v).collect())
    });
    let default_listen: &[&str] =
        if tls.mode == TlsMode::Off { &defaults::CADDY_LISTEN_OFF } else { &defaults::CADDY_LISTEN };
    Caddy {
        admin_api: admin_api.unwrap_or_else(|| defaults::CADDY_ADMIN_API.to_owned()),
        server,
        listen: listen.unwrap_or_else(|| default_listen.iter().map(|s| (*s).to_owned()).collect()),
        tls,
        stream_close_delay: t.and_then(|t| r.duration(t, "stream_close_delay")).map(|v| v.v),
        reconcile_interval: t
            .and_then(|t| r.positive_duration(t, "reconcile_interval"))
            .map_or(defaults::RECONCILE_INTERVAL, |v| v.v),
    }
}

fn tls(r: &mut Reader<'_>, caddy: Option<&Tbl<'_>>) -> Tls {
    let mut tls = Tls {
        mode: TlsMode::Acme,
        email: None,
        staging: false,
        dns_provider: None,
        dns_provider_config: Default::default(),
        propagation_delay: defaults::PROPAGATION_DELAY,
    };
    let Some(caddy) = caddy else { return tls };
    if r.is_string(caddy, "tls") {
        if let Some(mode) = r.choice(caddy, "tls", TlsMode::OPTIONS) {
            tls.mode = mode.v;
        }
        return tls;
    }
    let keys = ["mode", "email", "staging", "dns_provider", "dns_provider_config", "propagation_delay"];
    let Some(t) = r.table(caddy, "tls", Keys::of(&keys)) else { return tls };
    if let Some(mode) = r.choice(&t, "mode", TlsMode::OPTIONS) {
        tls.mode = mode.v;
    }
    tls.email = r.string(&t, "email").and_then(|v| {
        let ok = v.v.split_once('@').is_some_and(|(user, host)| !user.is_empty() && host.contains('.'))
            && !v.v.contains(char::is_whitespace);
        if ok {
            Some(v.v)
        } else {
            r.invalid(&v, "is not an e-mail address", None);
            None
        }
    });
    tls.staging = r.boolean(&t, "staging").unwrap_or(false);
    tls.dns_provider = r.string(&t, "dns_provider").and_then(|v| {
        let ok = !v.v.is_empty() && v.v.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if ok {
            Some(v.v)
        } else {
            r.invalid(&v, "is not a Caddy DNS module name, e.g. \"cloudflare\" or \"route53\"", None);
            None
        }
    });
    if let Some(config) = r.any_table(&t, "dns_provider_config") {
        for (k, at, item) in r.entries(&config) {
            let path = Reader::key_path(&config, &k);
            if k == "name" {
                r.problem(
                    at,
                    format!("{path}: \"name\" is set from caddy.tls.dns_provider"),
                    Some("remove it and set caddy.tls.dns_provider instead".into()),
                );
                continue;
            }
            if let Some(v) = r.opaque(&path, item) {
                tls.dns_provider_config.insert(k, v);
            }
        }
        if tls.dns_provider.is_none() && !tls.dns_provider_config.is_empty() {
            r.problem(config.at, "caddy.tls.dns_provider_config is set but caddy.tls.dns_provider is not".into(), None);
        }
    }
    tls.propagation_delay = r.duration(&t, "propagation_delay").map_or(defaults::PROPAGATION_DELAY, |v| v.v);
    tls
}

fn is_admin_api(s: &str) -> bool {
    if let Some(path) = s.strip_prefix("unix//") {
        return !path.is_empty() && !path.contains(char::is_whitespace);
    }
    let Some(rest) = s.strip_prefix("http://") else { return false };
    let authority = rest.strip_suffix('/').unwrap_or(rest);
    !authority.is_empty() && !authority.contains('/') && is_registry_host(&authority.to_ascii_lowercase())
}

fn is_caddy_listener(s: &str) -> bool {
    let addr = s.split_once('/').map_or(s, |(network, addr)| if network.starts_with("tcp") { addr } else { "" });
    let Some((host, port)) = addr.rsplit_once(':') else { return false };
    let ports_ok = match port.split_once('-') {
        Some((a, b)) => a.parse::<u16>().is_ok() && b.parse::<u16>().is_ok(),
        None => port.parse::<u16>().is_ok(),
    };
    let host_ok = host.is_empty()
        || is_hostname(&host.to_ascii_lowercase(), false)
        || host.parse::<std::net::Ipv4Addr>().is_ok()
        || host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .is_some_and(|h| h.parse::<std::net::Ipv6Addr>().is_ok());
    ports_ok && host_ok
}
