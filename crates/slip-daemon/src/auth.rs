//! Request authentication (SPEC §6.2): admin bearer tokens, app-key signatures, the client address
//! behind trusted proxies; failure limiting is in `crate::limiter`.
//!
//! The MAC arithmetic lives in `slip_core::signature`; this module reads headers, picks key sets and
//! keeps the failure counters. A bad signature always gets the same fixed answer, whether the app
//! exists or not, and unknown apps are verified against a random per-process key so the timing
//! matches too.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use axum::http::HeaderMap;
use ipnet::IpNet;
use slip_core::signature;

use crate::error::ApiError;
pub use crate::limiter::FailureLimiter;

/// Header carrying `sha256=<hex>`.
pub const SIGNATURE_HEADER: &str = "x-slip-signature";
/// Header carrying the Unix timestamp inside the MAC.
pub const TIMESTAMP_HEADER: &str = "x-slip-timestamp";

/// The fixed answer for every signature mismatch, unknown app included.
pub fn invalid_signature() -> ApiError {
    ApiError::Unauthorized { code: "invalid_signature", message: "invalid signature" }
}

/// What the signature headers of a request say, before verification.
#[derive(Debug, Clone)]
pub struct SignatureHeaders {
    /// The MAC bytes from `X-Slip-Signature`.
    pub mac: [u8; 32],
    /// `X-Slip-Timestamp` as sent (digits only), with its value.
    pub timestamp: Option<(String, i64)>,
}

/// Reads the signature headers in SPEC's order: missing → 401 `missing_signature`, malformed → 401
/// `invalid_signature`, non-integer timestamp → 400 `invalid_timestamp`, none where required → 401
/// `timestamp_required`.
pub fn signature_headers(headers: &HeaderMap, require_timestamp: bool) -> Result<SignatureHeaders, ApiError> {
    let Some(raw) = headers.get(SIGNATURE_HEADER) else {
        return Err(ApiError::Unauthorized {
            code: "missing_signature",
            message: "missing X-Slip-Signature header (sha256=<hex HMAC of the body>)",
        });
    };
    let mac = raw.to_str().ok().and_then(|v| signature::parse_header(v).ok()).ok_or_else(invalid_signature)?;
    let timestamp = match headers.get(TIMESTAMP_HEADER) {
        None => None,
        Some(v) => {
            let (text, value) = signature::parse_timestamp(v.to_str().unwrap_or_default())
                .map_err(|e| ApiError::field("invalid_timestamp", "X-Slip-Timestamp", e.to_string()))?;
            Some((text.to_owned(), value))
        }
    };
    if require_timestamp && timestamp.is_none() {
        return Err(ApiError::Unauthorized {
            code: "timestamp_required",
            message: "this server requires X-Slip-Timestamp on signed requests",
        });
    }
    Ok(SignatureHeaders { mac, timestamp })
}

/// 401 `stale_timestamp` when `timestamp` (Unix seconds) is further than `max_skew` from `now_s`.
pub fn check_skew(timestamp: i64, now_s: i64, max_skew: Duration) -> Result<(), ApiError> {
    if (now_s - timestamp).unsigned_abs() > max_skew.as_secs() {
        return Err(ApiError::Unauthorized {
            code: "stale_timestamp",
            message: "X-Slip-Timestamp is outside the accepted clock skew (auth.max_skew)",
        });
    }
    Ok(())
}

/// The bearer token of a request, if it has an `Authorization: Bearer` header.
pub fn bearer(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(axum::http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim().to_owned())
}

/// Checks a presented admin token against the configured one (`None`: the management API is off).
pub fn check_admin(configured: Option<&str>, presented: &str) -> Result<(), ApiError> {
    match configured {
        None => Err(ApiError::Unauthorized {
            code: "admin_disabled",
            message: "the management API is disabled: set auth.admin_token (or auth.secret)",
        }),
        Some(expected) if signature::token_matches(expected, presented) => Ok(()),
        Some(_) => Err(ApiError::Unauthorized { code: "invalid_token", message: "invalid token" }),
    }
}

/// The client address: the peer, or the right-most `X-Forwarded-For` entry that is not a trusted
/// proxy when the peer itself is trusted.
pub fn client_ip(peer: SocketAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let peer_ip = peer.ip();
    if !trusted.iter().any(|n| n.contains(&peer_ip)) {
        return peer_ip;
    }
    let forwarded = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|s| s.trim().parse::<IpAddr>().ok())
        .collect::<Vec<_>>();
    forwarded.into_iter().rev().find(|ip| !trusted.iter().any(|n| n.contains(ip))).unwrap_or(peer_ip)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn signature_header_checks_follow_spec_order() {
        let sig = format!("sha256={}", "ab".repeat(32));
        assert_eq!(signature_headers(&headers(&[]), false).unwrap_err().code(), "missing_signature");
        assert_eq!(
            signature_headers(&headers(&[(SIGNATURE_HEADER, "sha256=xyz")]), false).unwrap_err().code(),
            "invalid_signature"
        );
        assert_eq!(
            signature_headers(&headers(&[(SIGNATURE_HEADER, &sig), (TIMESTAMP_HEADER, "12.5")]), false)
                .unwrap_err()
                .code(),
            "invalid_timestamp"
        );
        assert_eq!(
            signature_headers(&headers(&[(SIGNATURE_HEADER, &sig)]), true).unwrap_err().code(),
            "timestamp_required"
        );
        let ok =
            signature_headers(&headers(&[(SIGNATURE_HEADER, &sig), (TIMESTAMP_HEADER, "1700000000")]), true).unwrap();
        assert_eq!(ok.timestamp, Some(("1700000000".into(), 1_700_000_000)));
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_peers() {
        let trusted: Vec<IpNet> = vec!["127.0.0.1/32".parse().unwrap()];
        let h = headers(&[("x-forwarded-for", "203.0.113.9, 10.0.0.1")]);
        let loopback: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        let outside: SocketAddr = "198.51.100.7:5000".parse().unwrap();
        assert_eq!(client_ip(loopback, &h, &trusted), "10.0.0.1".parse::<IpAddr>().unwrap());
        assert_eq!(client_ip(outside, &h, &trusted), outside.ip());
    }

    #[test]
    fn admin_token_checks() {
        assert_eq!(check_admin(None, "x").unwrap_err().code(), "admin_disabled");
        assert_eq!(check_admin(Some("tok"), "x").unwrap_err().code(), "invalid_token");
        assert!(check_admin(Some("tok"), "tok").is_ok());
        assert_eq!(bearer(&headers(&[("authorization", "Bearer tok")])), Some("tok".into()));
        assert_eq!(bearer(&headers(&[("authorization", "Basic tok")])), None);
    }
}
