//! Value rules shared by `slip.toml`, app files, the repo config and pod manifests: hostnames, memory sizes,
//! absolute paths and registry hosts.

use std::path::{Component, Path, PathBuf};

use crate::config::reader::{Reader, Tbl, Val};
use crate::defaults;
use crate::names::is_hostname;

/// A lower-cased hostname (`allow_wildcard`: a leading `*.` is fine).
pub(crate) fn hostname(r: &mut Reader<'_>, t: &Tbl<'_>, key: &str, allow_wildcard: bool) -> Option<Val<String>> {
    let v = r.string(t, key)?;
    check_hostname(r, v, allow_wildcard)
}

/// Validates and lower-cases a hostname already read.
pub(crate) fn check_hostname(r: &mut Reader<'_>, v: Val<String>, allow_wildcard: bool) -> Option<Val<String>> {
    let lower = v.v.to_ascii_lowercase();
    if is_hostname(&lower, allow_wildcard) {
        return Some(v.map(|_| lower));
    }
    if lower.parse::<std::net::IpAddr>().is_ok()
        || lower.rsplit('.').next().is_some_and(|l| !l.is_empty() && l.bytes().all(|b| b.is_ascii_digit()))
    {
        r.invalid(
            &v,
            "is an IP address, not a hostname: Caddy routes by name; use a DNS name such as app.example.com",
            None,
        );
        return None;
    }
    let rule = if allow_wildcard {
        "is not a hostname: use a DNS name such as app.example.com (a leading *. is allowed), without scheme, port or path"
    } else {
        "is not a hostname: use a DNS name such as app.example.com, without scheme, port or path"
    };
    r.invalid(&v, rule, None);
    None
}

/// A memory size of at least 6 MiB.
pub(crate) fn memory(r: &mut Reader<'_>, t: &Tbl<'_>, key: &str) -> Option<u64> {
    let v = r.size(t, key)?;
    if v.v < defaults::MIN_MEMORY {
        r.invalid(&v, "is below the minimum of 6m that container engines accept", None);
        return None;
    }
    Some(v.v)
}

/// An absolute path without `..` segments.
pub(crate) fn absolute_path(r: &mut Reader<'_>, t: &Tbl<'_>, key: &str) -> Option<Val<PathBuf>> {
    let v = r.string(t, key)?;
    match check_absolute(&v.v) {
        Ok(p) => Some(v.map(|_| p)),
        Err(why) => {
            r.invalid(&v, why, None);
            None
        }
    }
}

/// Accepts an absolute path with no `..` segments, normalising `.` and doubled slashes away.
pub(crate) fn check_absolute(s: &str) -> Result<PathBuf, &'static str> {
    let path = Path::new(s);
    if !path.is_absolute() {
        return Err("is not an absolute path");
    }
    if path.components().any(|c| c == Component::ParentDir) {
        return Err("contains a \"..\" segment; write the path without it");
    }
    Ok(path.components().collect())
}

pub(super) fn is_registry_host(s: &str) -> bool {
    let (host, port) = match s.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => (h, Some(p)),
        _ => (s, None),
    };
    let port_ok = port.is_none_or(|p| p.parse::<u16>().is_ok_and(|n| n > 0));
    let host_ok = is_hostname(host, false)
        || host.parse::<std::net::Ipv4Addr>().is_ok()
        || host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .is_some_and(|h| h.parse::<std::net::Ipv6Addr>().is_ok());
    port_ok && host_ok
}
