//! Which Caddy server holds slip's routes when `caddy.server` is unset (SPEC §9.1, §9.3).
//!
//! Most Caddy installations already serve sites from a Caddyfile, and the Caddyfile's server (`srv0`) already
//! listens on `:443`. Creating a second server on the same address would fail, so slip then puts its route block
//! inside that server, touching nothing else of it. With no such server it creates its own. It refuses, naming what
//! to set, when the choice is not clear or sharing would change how the user's sites are served:
//! - several servers listen on slip's addresses (the user picks one with `caddy.server`);
//! - with `caddy.tls = "off"`, the server would put slip's hostnames under its automatic HTTPS: Caddy would then
//!   turn TLS on for the whole listener, and the user's plain-HTTP sites on it would stop answering. A server that
//!   listens only on Caddy's HTTP port, or has automatic HTTPS disabled, is safe.
//!
//! Pure: the caller reads `apps.http.servers` and acts on the [`Choice`].

use serde_json::Value;

use super::render;

/// Where slip's route block goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Choice {
    /// slip's own server under this name: existing, or to be created.
    Own(String),
    /// A server slip did not create that already listens on slip's addresses.
    Shared(String),
    /// Neither: the sentence that says why and what to set.
    Refused(String),
}

/// Caddy's HTTP port when `apps.http.http_port` is unset.
const DEFAULT_HTTP_PORT: u16 = 80;

/// Picks the server for `own` (slip's server name) listening on `listen`, given Caddy's `apps.http` (`None` when
/// Caddy has no HTTP app). `plain_http` is `caddy.tls = "off"`.
pub fn choose(http: Option<&Value>, own: &str, listen: &[String], plain_http: bool) -> Choice {
    let servers = http.and_then(|http| http.get("servers")).and_then(Value::as_object);
    let Some(servers) = servers else { return Choice::Own(own.to_owned()) };
    if servers.get(own).is_some_and(|server| render::object_id(server) == Some(render::SERVER_ID)) {
        return Choice::Own(own.to_owned());
    }
    let claimants: Vec<(&String, &Value)> = servers
        .iter()
        .filter(|(_, server)| render::object_id(server) != Some(render::SERVER_ID))
        .filter(|(_, server)| addresses(server).any(|address| listen.iter().any(|ours| overlap(address, ours))))
        .collect();
    let listen = listen.join(", ");
    match claimants[..] {
        [] => Choice::Own(own.to_owned()),
        [(name, server)] => {
            let http_port = http
                .and_then(|http| http.get("http_port"))
                .and_then(Value::as_u64)
                .and_then(|port| u16::try_from(port).ok())
                .unwrap_or(DEFAULT_HTTP_PORT);
            if plain_http && encrypts(server, http_port) {
                return Choice::Refused(format!(
                    "Caddy server '{name}' already listens on caddy.listen ({listen}) with automatic HTTPS on: with \
                     caddy.tls = \"off\", sharing it would turn TLS on for its whole listener and stop its plain-HTTP \
                     sites. Use caddy.listen on Caddy's HTTP port, set caddy.tls, or set caddy.server = \"{name}\" to \
                     share it anyway."
                ));
            }
            Choice::Shared(name.clone())
        }
        _ => {
            let names: Vec<String> = claimants.iter().map(|(name, _)| format!("'{name}'")).collect();
            Choice::Refused(format!(
                "Caddy servers {} already listen on caddy.listen ({listen}). Set caddy.server to the one slip should \
                 share, or change caddy.listen.",
                names.join(" and ")
            ))
        }
    }
}

/// A server's listener addresses.
fn addresses(server: &Value) -> impl Iterator<Item = &str> {
    server.get("listen").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str)
}

/// Whether Caddy's automatic HTTPS would put a new hostname of `server` on TLS: it is not disabled, and the server
/// listens on some port other than the HTTP port.
fn encrypts(server: &Value, http_port: u16) -> bool {
    let disabled = server.pointer("/automatic_https/disable").and_then(Value::as_bool) == Some(true);
    let http_only = addresses(server)
        .all(|address| Listener::parse(address).is_some_and(|listener| listener.ports == (http_port, http_port)));
    !disabled && !http_only
}

/// Whether two Caddy listener addresses (`:443`, `127.0.0.1:8080`, `tcp/[::]:443`, `:8000-8010`) can take the
/// same connections: their port ranges meet and their hosts are equal or one of them is every interface.
pub fn overlap(a: &str, b: &str) -> bool {
    match (Listener::parse(a), Listener::parse(b)) {
        (Some(a), Some(b)) => {
            a.ports.0 <= b.ports.1
                && b.ports.0 <= a.ports.1
                && (a.host.is_none() || b.host.is_none() || a.host == b.host)
        }
        _ => false,
    }
}

/// A parsed listener address. Unix sockets and unparsable addresses have none.
#[derive(Debug, PartialEq, Eq)]
struct Listener<'a> {
    /// `None` for every interface.
    host: Option<&'a str>,
    /// First and last port.
    ports: (u16, u16),
}

impl<'a> Listener<'a> {
    fn parse(address: &'a str) -> Option<Listener<'a>> {
        let address = match address.split_once('/') {
            Some((network, rest)) if network.starts_with("tcp") || network.starts_with("udp") => rest,
            Some(_) => return None,
            None => address,
        };
        let (host, ports) = address.rsplit_once(':')?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let host = match host {
            "" | "0.0.0.0" | "::" => None,
            other => Some(other),
        };
        let ports = match ports.split_once('-') {
            Some((first, last)) => (first.parse().ok()?, last.parse().ok()?),
            None => {
                let port = ports.parse().ok()?;
                (port, port)
            }
        };
        Some(Listener { host, ports })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn addresses_overlap_on_a_shared_port_unless_their_hosts_differ() {
        assert!(overlap(":443", ":443"));
        assert!(overlap(":443", "127.0.0.1:443"));
        assert!(overlap("tcp/[::]:443", "127.0.0.1:443"));
        assert!(overlap("127.0.0.1:443", "127.0.0.1:443"));
        assert!(overlap(":8000-8010", "127.0.0.1:8005"));
        assert!(!overlap("127.0.0.1:443", "10.0.0.1:443"));
        assert!(!overlap(":443", ":80"));
        assert!(!overlap(":8000-8010", ":8011"));
        assert!(!overlap("unix//run/caddy.sock", ":443"));
        assert!(!overlap("nonsense", ":443"));
    }

    fn servers(servers: Value) -> Value {
        json!({ "servers": servers })
    }

    #[test]
    fn the_one_foreign_server_on_slips_address_is_shared() {
        let listen = [":443".to_owned()];
        let caddyfile = servers(json!({"srv0": {"listen": [":443"], "routes": []}, "srv1": {"listen": [":8080"]}}));
        assert_eq!(choose(Some(&caddyfile), "slip", &listen, false), Choice::Shared("srv0".to_owned()));
    }

    #[test]
    fn slips_own_server_or_no_claimant_means_slips_own() {
        let listen = [":443".to_owned()];
        assert_eq!(choose(None, "slip", &listen, false), Choice::Own("slip".to_owned()));
        assert_eq!(choose(Some(&json!({})), "slip", &listen, false), Choice::Own("slip".to_owned()));
        let elsewhere = servers(json!({"srv0": {"listen": [":8443"]}}));
        assert_eq!(choose(Some(&elsewhere), "slip", &listen, false), Choice::Own("slip".to_owned()));
        let own =
            servers(json!({"slip": {"@id": "slipd-server", "listen": [":443"]}, "srv0": {"listen": ["10.0.0.1:443"]}}));
        assert_eq!(choose(Some(&own), "slip", &listen, false), Choice::Own("slip".to_owned()));
    }

    #[test]
    fn several_claimants_are_refused_naming_each() {
        let listen = [":443".to_owned()];
        let several = servers(json!({"a": {"listen": ["127.0.0.1:443"]}, "b": {"listen": ["10.0.0.1:443"]}}));
        let Choice::Refused(message) = choose(Some(&several), "slip", &listen, false) else { panic!() };
        assert_eq!(
            message,
            "Caddy servers 'a' and 'b' already listen on caddy.listen (:443). Set caddy.server to the one slip should \
             share, or change caddy.listen."
        );
    }

    #[test]
    fn plain_http_shares_only_servers_that_keep_slips_hostnames_on_plain_http() {
        let listen = ["127.0.0.1:8080".to_owned()];
        let tls_on = servers(json!({"srv0": {"listen": [":8080"], "automatic_https": {"skip": ["site.test"]}}}));
        let Choice::Refused(message) = choose(Some(&tls_on), "slip", &listen, true) else { panic!() };
        assert!(
            message.starts_with("Caddy server 'srv0' already listens on caddy.listen (127.0.0.1:8080)"),
            "{message}"
        );
        assert_eq!(choose(Some(&tls_on), "slip", &listen, false), Choice::Shared("srv0".to_owned()), "TLS modes share");
        let disabled = servers(json!({"srv0": {"listen": [":8080"], "automatic_https": {"disable": true}}}));
        assert_eq!(choose(Some(&disabled), "slip", &listen, true), Choice::Shared("srv0".to_owned()));
        let mut http_port = servers(json!({"srv0": {"listen": [":8080"]}}));
        http_port["http_port"] = json!(8080);
        assert_eq!(choose(Some(&http_port), "slip", &listen, true), Choice::Shared("srv0".to_owned()));
        let port_80 = servers(json!({"srv0": {"listen": [":80"]}}));
        assert_eq!(choose(Some(&port_80), "slip", &[":80".to_owned()], true), Choice::Shared("srv0".to_owned()));
    }
}
