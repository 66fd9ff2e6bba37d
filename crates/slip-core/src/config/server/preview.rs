//! `[preview]` in `slip.toml`: the server's limits and certificate policy for preview environments.

use std::time::Duration;

use super::caddy::{Tls, TlsMode};
use super::values::{hostname, memory};
use crate::config::reader::{Reader, Tbl};
use crate::config::vocabulary;
use crate::defaults;

vocabulary! {
    /// `preview.tls`: how preview hostnames get certificates (SPEC §13.5).
    PreviewTls {
        /// One DNS-01 wildcard certificate per preview domain.
        Wildcard = "wildcard",
        /// One certificate per preview hostname.
        PerHost = "per_host",
    }
}

/// `[preview]` in `slip.toml`.
#[derive(Debug, Clone)]
pub struct Preview {
    /// Base domain: a preview is served at `<id>.<domain>`.
    pub domain: Option<String>,
    /// Default cap on previews per app.
    pub max_per_app: u32,
    /// Cap on previews across all apps.
    pub max_total: u32,
    /// Lifetime when neither the webhook nor the repo sets one.
    pub default_ttl: Duration,
    /// Upper bound for any preview TTL.
    pub max_ttl: Duration,
    /// Memory ceiling for previews, in bytes.
    pub max_memory: Option<u64>,
    /// CPU ceiling for previews, in billionths of a CPU.
    pub max_nano_cpus: Option<u64>,
    /// How preview hostnames get certificates.
    pub tls: PreviewTls,
}

pub(super) fn preview(r: &mut Reader<'_>, t: Option<&Tbl<'_>>, tls: &Tls) -> Preview {
    let default_ttl = t.and_then(|t| r.positive_duration(t, "default_ttl"));
    let max_ttl = t.and_then(|t| r.positive_duration(t, "max_ttl"));
    if let Some(d) = &default_ttl {
        let max = max_ttl.as_ref().map_or(defaults::PREVIEW_MAX_TTL, |v| v.v);
        if d.v > max {
            let which = match &max_ttl {
                Some(m) => m.shown(),
                None => format!("the default {}", crate::duration::format(max)),
            };
            r.invalid(d, format!("is longer than preview.max_ttl ({which})"), None);
        }
    }
    let preview_tls = t.and_then(|t| r.choice(t, "tls", PreviewTls::OPTIONS));
    if let Some(v) = &preview_tls
        && v.v == PreviewTls::Wildcard
        && tls.mode == TlsMode::Acme
        && tls.dns_provider.is_none()
    {
        let hint =
            "set caddy.tls.dns_provider (DNS-01 is the only way to get a wildcard certificate), or use \"per_host\"";
        r.invalid(v, "needs caddy.tls.dns_provider in acme mode", Some(hint.into()));
    }
    Preview {
        domain: t.and_then(|t| hostname(r, t, "domain", false)).map(|v| v.v),
        max_per_app: t
            .and_then(|t| r.int_in(t, "max_per_app", 1, i64::from(u32::MAX)))
            .map_or(defaults::PREVIEW_MAX_PER_APP, |v| v.v),
        max_total: t
            .and_then(|t| r.int_in(t, "max_total", 1, i64::from(u32::MAX)))
            .map_or(defaults::PREVIEW_MAX_TOTAL, |v| v.v),
        default_ttl: default_ttl.map_or(defaults::PREVIEW_DEFAULT_TTL, |v| v.v),
        max_ttl: max_ttl.map_or(defaults::PREVIEW_MAX_TTL, |v| v.v),
        max_memory: t.and_then(|t| memory(r, t, "max_memory")),
        max_nano_cpus: t.and_then(|t| r.nanos(t, "max_cpus")).map(|v| v.v),
        tls: preview_tls
            .map_or(if tls.dns_provider.is_some() { PreviewTls::Wildcard } else { PreviewTls::PerHost }, |v| v.v),
    }
}
