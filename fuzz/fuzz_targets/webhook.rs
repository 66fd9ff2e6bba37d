//! A webhook as slipd reads it: `X-Slip-Signature`, `X-Slip-Timestamp` and the body. Parsing never panics, and a
//! MAC computed over the input always verifies while a changed one never does.
#![no_main]

use libfuzzer_sys::fuzz_target;
use slip_core::signature::{self, Signed};

fuzz_target!(|data: &[u8]| {
    // Three fields separated by the first two newlines: signature header, timestamp header, body.
    let mut parts = data.splitn(3, |b| *b == b'\n');
    let header = String::from_utf8_lossy(parts.next().unwrap_or_default());
    let timestamp = String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
    let body = parts.next().unwrap_or_default();

    let parsed = signature::parse_header(&header);
    let _ = signature::parse_timestamp(&timestamp);
    let _ = serde_json::from_slice::<serde_json::Value>(body).map(|v| {
        let app = v.get("app").and_then(|a| a.as_str()).map(|a| a.parse::<slip_core::names::AppName>());
        let tag = v.get("tag").and_then(|t| t.as_str()).map(|t| t.parse::<slip_core::names::Tag>());
        (app.map(|a| a.is_ok()), tag.map(|t| t.is_ok()))
    });

    let key = b"fuzz-key-0123456789";
    for signed in [
        Signed::LegacyDeploy { body },
        Signed::Deploy { timestamp: &timestamp, body },
        Signed::Request { timestamp: &timestamp, method: "POST", target: "/v1/apps/web/rollback", body },
    ] {
        let value = signature::header_value(key, &signed);
        let mac = signature::parse_header(&value).expect("slip's own header parses");
        assert!(signature::verify(&[key], &signed, &mac));
        let mut wrong = mac;
        wrong[0] ^= 1;
        assert!(!signature::verify(&[key], &signed, &wrong));
        if let Ok(given) = parsed {
            assert_eq!(signature::verify(&[key], &signed, &given), given == mac);
        }
    }
});
