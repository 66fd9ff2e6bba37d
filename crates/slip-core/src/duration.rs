//! The one duration grammar used everywhere (config, API, CLI flags, webhook fields): SPEC §3.1.
//! One or more `<number><unit>` pairs, units `ms s m h d`, integer or decimal numbers, 1 ms resolution.
//! Printing is canonical and lossless: integer units, largest first (`90s` → `1m30s`).

use std::time::Duration;

/// Why a duration was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid duration {input:?}: {reason}")]
pub struct DurationError {
    /// The rejected text.
    pub input: String,
    /// What is wrong and what would be valid.
    pub reason: &'static str,
}

/// Parses `500ms`, `1.5s`, `1m30s`, `7d`.
pub fn parse(s: &str) -> Result<Duration, DurationError> {
    let err = |reason| DurationError { input: s.to_owned(), reason };
    if s.is_empty() {
        return Err(err("empty; use e.g. 30s, 500ms, 1m30s"));
    }
    if s.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return Err(err("add a unit, e.g. 30s"));
    }
    let mut total_ms: f64 = 0.0;
    let mut rest = s;
    while !rest.is_empty() {
        let num_len = rest.bytes().take_while(|b| b.is_ascii_digit() || *b == b'.').count();
        if num_len == 0 {
            return Err(err("expected a number before each unit (ms, s, m, h, d)"));
        }
        let number: f64 = rest[..num_len].parse().map_err(|_| err("malformed number"))?;
        rest = &rest[num_len..];
        let unit_len = rest.bytes().take_while(|b| b.is_ascii_alphabetic()).count();
        let factor = match &rest[..unit_len] {
            "ms" => 1.0,
            "s" => 1_000.0,
            "m" => 60_000.0,
            "h" => 3_600_000.0,
            "d" => 86_400_000.0,
            "" => return Err(err("add a unit, e.g. 30s")),
            _ => return Err(err("units are ms, s, m, h and d")),
        };
        rest = &rest[unit_len..];
        total_ms += number * factor;
    }
    if !total_ms.is_finite() || total_ms > 1e15 {
        return Err(err("too large"));
    }
    let ms = total_ms.round();
    if (total_ms - ms).abs() > 1e-6 {
        return Err(err("the resolution is 1ms"));
    }
    Ok(Duration::from_millis(ms as u64))
}

/// Canonical form: integer units, largest first; zero is `0s`.
pub fn format(d: Duration) -> String {
    let mut ms = d.as_millis();
    if ms == 0 {
        return "0s".to_owned();
    }
    let mut out = String::new();
    for (unit, size) in [("d", 86_400_000u128), ("h", 3_600_000), ("m", 60_000), ("s", 1_000), ("ms", 1)] {
        if ms >= size {
            out.push_str(&format!("{}{unit}", ms / size));
            ms %= size;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_canonically() {
        for (input, ms, canon) in [
            ("500ms", 500, "500ms"),
            ("1.5s", 1500, "1s500ms"),
            ("90s", 90_000, "1m30s"),
            ("1m30s", 90_000, "1m30s"),
            ("36h", 129_600_000, "1d12h"),
            ("7d", 604_800_000, "7d"),
            ("0s", 0, "0s"),
        ] {
            let d = parse(input).unwrap();
            assert_eq!(d.as_millis(), ms, "{input}");
            assert_eq!(format(d), canon, "{input}");
            assert_eq!(parse(&format(d)).unwrap(), d, "round trip {input}");
        }
    }

    #[test]
    fn rejects_bad_input_with_a_reason() {
        assert_eq!(parse("30").unwrap_err().reason, "add a unit, e.g. 30s");
        for bad in ["", "s", "1x", "1 s", "1.2.3s", "0.5ms", "-1s"] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }
}
