//! Sizes (`512m`, `1g`, `1.5g`): `<number>[k|m|g|t][b|ib]`, case-insensitive, binary multiples;
//! a bare integer means bytes (SPEC §3.1).

/// Why a size was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid size {input:?}: use a number with an optional k, m, g or t suffix, e.g. 512m or 1.5g")]
pub struct SizeError {
    /// The rejected text.
    pub input: String,
}

/// Parses a size into bytes.
pub fn parse(s: &str) -> Result<u64, SizeError> {
    let err = || SizeError { input: s.to_owned() };
    let lower = s.trim().to_ascii_lowercase();
    let num_len = lower.bytes().take_while(|b| b.is_ascii_digit() || *b == b'.').count();
    if num_len == 0 {
        return Err(err());
    }
    let number: f64 = lower[..num_len].parse().map_err(|_| err())?;
    let unit = lower[num_len..].trim_end_matches("ib").trim_end_matches('b');
    let factor: f64 = match unit {
        "" if lower[num_len..].is_empty() || lower[num_len..] == *"b" => 1.0,
        "k" => 1024.0,
        "m" => 1024.0 * 1024.0,
        "g" => 1024.0 * 1024.0 * 1024.0,
        "t" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        _ => return Err(err()),
    };
    if factor == 1.0 && lower[..num_len].contains('.') {
        return Err(err());
    }
    let bytes = number * factor;
    if !bytes.is_finite() || bytes > u64::MAX as f64 {
        return Err(err());
    }
    Ok(bytes.round() as u64)
}

/// Prints bytes in the largest exact binary unit (`512m`, `1g`, `1536k`).
pub fn format(bytes: u64) -> String {
    for (unit, size) in [("t", 1u64 << 40), ("g", 1 << 30), ("m", 1 << 20), ("k", 1 << 10)] {
        if bytes >= size && bytes.is_multiple_of(size) {
            return format!("{}{unit}", bytes / size);
        }
    }
    bytes.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse("512m").unwrap(), 512 << 20);
        assert_eq!(parse("1G").unwrap(), 1 << 30);
        assert_eq!(parse("1.5g").unwrap(), 3 << 29);
        assert_eq!(parse("10MiB").unwrap(), 10 << 20);
        assert_eq!(parse("4096").unwrap(), 4096);
        assert_eq!(format(512 << 20), "512m");
        for bad in ["", "m", "12x", "1.5", "-1m"] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }
}
