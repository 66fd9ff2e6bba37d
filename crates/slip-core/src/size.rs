//! Sizes (`512m`, `1g`, `1.5g`, `10MiB`): `<number>[k|m|g|t][b|ib]`, case-insensitive, binary multiples;
//! a bare integer means bytes (SPEC §3.1).
//!
//! Decimals are computed exactly and rounded to the nearest byte (`1.1k` is 1126 bytes). Printing uses the
//! largest unit that divides the value exactly, so `parse(&format(n)) == n` for every `n`. Which sizes are
//! acceptable for a setting (at least `6m` for memory, say) is the caller's job.

use crate::duration::{Scale, scaled_parts, split_number};

/// Why a size was refused. `Display` names the input; [`SizeError::reason`] leaves it out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SizeError {
    /// Not `<number>[k|m|g|t][b|ib]`.
    #[error("invalid size {input:?}: {}", self.reason())]
    Malformed {
        /// The rejected text.
        input: String,
    },
    /// A suffix slip does not know (`12x`, `1e`).
    #[error("invalid size {input:?}: {}", self.reason())]
    UnknownUnit {
        /// The rejected text.
        input: String,
        /// The suffix as written.
        unit: String,
    },
    /// A fraction of a byte without a unit (`1.5`).
    #[error("invalid size {input:?}: {}", self.reason())]
    FractionalBytes {
        /// The rejected text.
        input: String,
    },
    /// More bytes than fit in 64 bits.
    #[error("invalid size {input:?}: {}", self.reason())]
    TooLarge {
        /// The rejected text.
        input: String,
    },
}

impl SizeError {
    /// What is wrong and what would be valid, without the input.
    pub fn reason(&self) -> String {
        match self {
            SizeError::Malformed { .. } => {
                "write a number with an optional k, m, g or t suffix and no spaces, e.g. 512m or 1.5g".into()
            }
            SizeError::UnknownUnit { unit, .. } => {
                format!("unknown unit {unit:?}; use k, m, g or t (optionally followed by b or ib), e.g. 512m")
            }
            SizeError::FractionalBytes { .. } => {
                "a bare number means bytes and must be whole; add a unit, e.g. 1.5g".into()
            }
            SizeError::TooLarge { .. } => "too large".into(),
        }
    }

    /// The rejected text.
    pub fn input(&self) -> &str {
        match self {
            SizeError::Malformed { input }
            | SizeError::UnknownUnit { input, .. }
            | SizeError::FractionalBytes { input }
            | SizeError::TooLarge { input } => input,
        }
    }
}

/// Parses a size into bytes.
pub fn parse(s: &str) -> Result<u64, SizeError> {
    let input = || s.to_owned();
    let (int, frac, suffix) = split_number(s).ok_or_else(|| SizeError::Malformed { input: input() })?;
    let lower = suffix.to_ascii_lowercase();
    let multiple = lower.strip_suffix("ib").or_else(|| lower.strip_suffix('b')).unwrap_or(&lower);
    let factor: u64 = match multiple {
        "" if lower == "ib" => return Err(SizeError::UnknownUnit { input: input(), unit: suffix.to_owned() }),
        "" => 1,
        "k" => 1 << 10,
        "m" => 1 << 20,
        "g" => 1 << 30,
        "t" => 1 << 40,
        _ if suffix.bytes().all(|b| b.is_ascii_alphabetic()) => {
            return Err(SizeError::UnknownUnit { input: input(), unit: suffix.to_owned() });
        }
        _ => return Err(SizeError::Malformed { input: input() }),
    };
    if factor == 1 && !frac.trim_end_matches('0').is_empty() {
        return Err(SizeError::FractionalBytes { input: input() });
    }
    match scaled_parts(int, frac, factor) {
        Ok((whole, remainder, denominator)) => {
            let round_up = remainder * 2 >= denominator && remainder != 0;
            whole.checked_add(u64::from(round_up)).ok_or_else(|| SizeError::TooLarge { input: input() })
        }
        Err(Scale::Overflow) => Err(SizeError::TooLarge { input: input() }),
        Err(Scale::Inexact) => Err(SizeError::Malformed { input: input() }),
    }
}

/// Prints bytes in the largest binary unit that divides them exactly (`512m`, `1g`, `1536k`, `1000`).
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
    fn parses_binary_multiples_case_insensitively() {
        for (input, bytes, canon) in [
            ("512m", 512u64 << 20, "512m"),
            ("1G", 1 << 30, "1g"),
            ("1g", 1 << 30, "1g"),
            ("1.5g", 3 << 29, "1536m"),
            ("10MiB", 10 << 20, "10m"),
            ("10mb", 10 << 20, "10m"),
            ("10MB", 10 << 20, "10m"),
            ("2t", 2 << 40, "2t"),
            ("6m", 6 << 20, "6m"),
            ("4096", 4096, "4k"),
            ("1000", 1000, "1000"),
            ("100b", 100, "100"),
            ("1.1k", 1126, "1126"),
            ("0", 0, "0"),
        ] {
            let n = parse(input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(n, bytes, "{input}");
            assert_eq!(format(n), canon, "{input}");
            assert_eq!(parse(&format(n)).unwrap(), n, "round trip {input}");
        }
    }

    #[test]
    fn rejects_bad_input_with_a_reason() {
        let errors: Vec<String> = ["", "m", "12x", "1.5", "-1m", "1 m", "1ib", "1kk", "1.m", "99999999999t"]
            .iter()
            .map(|s| parse(s).unwrap_err().to_string())
            .collect();
        expect_test::expect![[r#"
            invalid size "": write a number with an optional k, m, g or t suffix and no spaces, e.g. 512m or 1.5g
            invalid size "m": write a number with an optional k, m, g or t suffix and no spaces, e.g. 512m or 1.5g
            invalid size "12x": unknown unit "x"; use k, m, g or t (optionally followed by b or ib), e.g. 512m
            invalid size "1.5": a bare number means bytes and must be whole; add a unit, e.g. 1.5g
            invalid size "-1m": write a number with an optional k, m, g or t suffix and no spaces, e.g. 512m or 1.5g
            invalid size "1 m": write a number with an optional k, m, g or t suffix and no spaces, e.g. 512m or 1.5g
            invalid size "1ib": unknown unit "ib"; use k, m, g or t (optionally followed by b or ib), e.g. 512m
            invalid size "1kk": unknown unit "kk"; use k, m, g or t (optionally followed by b or ib), e.g. 512m
            invalid size "1.m": write a number with an optional k, m, g or t suffix and no spaces, e.g. 512m or 1.5g
            invalid size "99999999999t": too large
        "#]]
        .assert_eq(&(errors.join("\n") + "\n"));
    }
}
