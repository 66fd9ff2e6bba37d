//! Webhook signatures (SPEC §6.2) and admin-token comparison.
//!
//! Pure functions over bytes: building the signed message, computing and verifying HMAC-SHA256,
//! and comparing bearer tokens. Reading headers, looking up keys and the replay cache live in the
//! daemon; this module never sees a request.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

type HmacSha256 = Hmac<Sha256>;

/// What a signature covers.
#[derive(Debug, Clone, Copy)]
pub enum Signed<'a> {
    /// `POST /v1/deploy` without a timestamp: the raw body (the original README's scheme).
    LegacyDeploy {
        /// Raw request body.
        body: &'a [u8],
    },
    /// `POST /v1/deploy` with `X-Slip-Timestamp`: `"<timestamp>.<raw body>"`.
    Deploy {
        /// The header value exactly as sent.
        timestamp: &'a str,
        /// Raw request body.
        body: &'a [u8],
    },
    /// Any other signed request: `"<timestamp>.<METHOD> <request-target>\n<raw body>"`.
    Request {
        /// The header value exactly as sent.
        timestamp: &'a str,
        /// HTTP method, upper case.
        method: &'a str,
        /// Path plus `?query` exactly as sent.
        target: &'a str,
        /// Raw request body.
        body: &'a [u8],
    },
}

impl Signed<'_> {
    /// The exact bytes the MAC is computed over.
    pub fn message(&self) -> Vec<u8> {
        match *self {
            Signed::LegacyDeploy { body } => body.to_vec(),
            Signed::Deploy { timestamp, body } => [timestamp.as_bytes(), b".", body].concat(),
            Signed::Request { timestamp, method, target, body } => {
                [timestamp.as_bytes(), b".", method.as_bytes(), b" ", target.as_bytes(), b"\n", body].concat()
            }
        }
    }
}

/// Why an `X-Slip-Signature` header could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("X-Slip-Signature must be sha256=<64 hex digits>")]
pub struct MalformedSignature;

/// Parses `sha256=<hex>` (prefix and hex digits in either case) into the 32 MAC bytes.
pub fn parse_header(value: &str) -> Result<[u8; 32], MalformedSignature> {
    let value = value.trim();
    let (prefix, hex_part) = value.split_once('=').ok_or(MalformedSignature)?;
    if !prefix.eq_ignore_ascii_case("sha256") || hex_part.len() != 64 {
        return Err(MalformedSignature);
    }
    let mut out = [0u8; 32];
    hex::decode_to_slice(hex_part, &mut out).map_err(|_| MalformedSignature)?;
    Ok(out)
}

/// `X-Slip-Timestamp` is not an integer number of seconds.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("X-Slip-Timestamp must be an integer number of seconds since the Unix epoch")]
pub struct MalformedTimestamp;

/// Parses `X-Slip-Timestamp` (surrounding whitespace allowed): ASCII digits only, no sign, within `i64`. Returns the
/// text as it goes into the MAC (trimmed) and its value.
pub fn parse_timestamp(value: &str) -> Result<(&str, i64), MalformedTimestamp> {
    let text = value.trim();
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(MalformedTimestamp);
    }
    text.parse::<i64>().map(|v| (text, v)).map_err(|_| MalformedTimestamp)
}

/// HMAC-SHA256 of `message` under `key`.
pub fn sign(key: &[u8], message: &[u8]) -> [u8; 32] {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC accepts keys of any length");
    mac.update(message);
    mac.finalize().into_bytes().into()
}

/// The header value a client sends: `sha256=<lowercase hex>`.
pub fn header_value(key: &[u8], signed: &Signed<'_>) -> String {
    format!("sha256={}", hex::encode(sign(key, &signed.message())))
}

/// True when `mac` matches `signed` under any of `keys`. Every key is tried, and each comparison is
/// constant-time, so the timing says nothing about which key (if any) matched.
pub fn verify<K: AsRef<[u8]>>(keys: &[K], signed: &Signed<'_>, mac: &[u8; 32]) -> bool {
    let message = signed.message();
    let mut matched = subtle::Choice::from(0);
    for key in keys {
        matched |= sign(key.as_ref(), &message).ct_eq(mac);
    }
    matched.into()
}

/// Constant-time comparison of a presented bearer token with the configured one. Both are hashed
/// first, so neither the content nor the length of the secret leaks through timing.
pub fn token_matches(configured: &str, presented: &str) -> bool {
    let a = Sha256::digest(configured.as_bytes());
    let b = Sha256::digest(presented.as_bytes());
    a.ct_eq(&b).into()
}

/// SHA-256 of the signature bytes: the delivery's identity in the replay cache.
pub fn delivery_hash(mac: &[u8; 32]) -> [u8; 32] {
    Sha256::digest(mac).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    // Vector computed independently with:
    //   echo -n '{"app":"myapp","tag":"sha-abc123f"}' | openssl dgst -sha256 -hmac "your-hmac-secret"
    const BODY: &[u8] = br#"{"app":"myapp","tag":"sha-abc123f"}"#;
    const KEY: &[u8] = b"your-hmac-secret";
    const OPENSSL_HEX: &str = "8be2e7bf56ee01825c46b7f6e9516f354a63e67c5ecfc580a64a32e6943be72f";

    fn legacy() -> Signed<'static> {
        Signed::LegacyDeploy { body: BODY }
    }

    #[test]
    fn legacy_signature_matches_openssl() {
        let computed = hex::encode(sign(KEY, BODY));
        assert_eq!(computed, OPENSSL_HEX);
        let mac = parse_header(&format!("sha256={computed}")).unwrap();
        assert!(verify(&[KEY], &legacy(), &mac));
    }

    #[test]
    fn header_parsing_accepts_either_case_and_rejects_malformed() {
        let hex_lower = hex::encode(sign(KEY, BODY));
        assert!(parse_header(&format!("SHA256={}", hex_lower.to_uppercase())).is_ok());
        for bad in ["", "sha256=", "sha1=abcd", "sha256=zz", &format!("sha256={}", &hex_lower[..62])] {
            assert_eq!(parse_header(bad), Err(MalformedSignature), "{bad:?}");
        }
    }

    #[test]
    fn wrong_key_wrong_body_and_wrong_length_fail() {
        let mac = sign(KEY, BODY);
        assert!(!verify(&[b"other".as_slice()], &legacy(), &mac));
        assert!(!verify(&[KEY], &Signed::LegacyDeploy { body: b"{}" }, &mac));
        assert!(verify(&[b"other".as_slice(), KEY], &legacy(), &mac), "any key of the set matches");
        let no_keys: [&[u8]; 0] = [];
        assert!(!verify(&no_keys, &legacy(), &mac));
    }

    #[test]
    fn timestamped_messages_cannot_be_confused() {
        let deploy = Signed::Deploy { timestamp: "1700000000", body: BODY }.message();
        assert_eq!(deploy, [b"1700000000.".as_slice(), BODY].concat());
        let req = Signed::Request { timestamp: "1700000000", method: "GET", target: "/v1/deploys/x?y=1", body: b"" };
        assert_eq!(req.message(), b"1700000000.GET /v1/deploys/x?y=1\n".to_vec());
        let mac = sign(KEY, &deploy);
        assert!(!verify(&[KEY], &legacy(), &mac), "a timestamped MAC is not a legacy MAC");
    }

    #[test]
    fn tokens_compare_by_content_only() {
        assert!(token_matches("s3cret-token", "s3cret-token"));
        assert!(!token_matches("s3cret-token", "s3cret-toke"));
        assert!(!token_matches("s3cret-token", ""));
    }
}
