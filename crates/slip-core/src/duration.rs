//! The one duration grammar used everywhere (config, API, CLI flags, webhook fields): SPEC §3.1.
//!
//! Input is one or more `<number><unit>` pairs with no spaces: units `ms`, `s`, `m`, `h`, `d`; numbers are
//! integers or decimals (`500ms`, `1.5s`, `1m30s`, `7d`). Arithmetic is exact (no floating point), the
//! resolution is 1 ms, and a value that is not a whole number of milliseconds is refused rather than rounded.
//! Printing is canonical and lossless: integer units, largest first (`90s` → `1m30s`, zero → `0s`).
//!
//! This module only converts text; deciding which durations are acceptable for a setting (non-zero, at most
//! some bound) is the caller's job.

use std::time::Duration;

/// Why a duration was refused. `Display` names the input; [`DurationError::reason`] leaves it out, for
/// callers that must not echo the value (an interpolated secret, for example).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    /// Nothing to parse.
    #[error("invalid duration {input:?}: {}", self.reason())]
    Empty {
        /// The rejected text.
        input: String,
    },
    /// A number without a unit (`30`).
    #[error("invalid duration {input:?}: {}", self.reason())]
    MissingUnit {
        /// The rejected text.
        input: String,
    },
    /// A unit slip does not know (`30x`, `1S`, `2w`).
    #[error("invalid duration {input:?}: {}", self.reason())]
    UnknownUnit {
        /// The rejected text.
        input: String,
        /// The unit as written.
        unit: String,
    },
    /// Something that is not `<number><unit>` (a sign, a space, `1.s`, `.5s`).
    #[error("invalid duration {input:?}: {}", self.reason())]
    Malformed {
        /// The rejected text.
        input: String,
    },
    /// Finer than 1 ms (`0.5ms`, `1.0001s`).
    #[error("invalid duration {input:?}: {}", self.reason())]
    TooPrecise {
        /// The rejected text.
        input: String,
    },
    /// More milliseconds than fit in 64 bits.
    #[error("invalid duration {input:?}: {}", self.reason())]
    TooLarge {
        /// The rejected text.
        input: String,
    },
}

impl DurationError {
    /// What is wrong and what would be valid, without the input.
    pub fn reason(&self) -> String {
        match self {
            DurationError::Empty { .. } => "empty; write a number and a unit, e.g. 30s, 500ms or 1m30s".into(),
            DurationError::MissingUnit { .. } => "add a unit, e.g. 30s".into(),
            DurationError::UnknownUnit { unit, .. } => {
                format!("unknown unit {unit:?}; units are ms, s, m, h and d (lower case)")
            }
            DurationError::Malformed { .. } => {
                "write <number><unit> pairs with no spaces or signs, e.g. 30s, 1.5s or 1m30s".into()
            }
            DurationError::TooPrecise { .. } => "the resolution is 1ms".into(),
            DurationError::TooLarge { .. } => "too large".into(),
        }
    }

    /// The rejected text.
    pub fn input(&self) -> &str {
        match self {
            DurationError::Empty { input }
            | DurationError::MissingUnit { input }
            | DurationError::UnknownUnit { input, .. }
            | DurationError::Malformed { input }
            | DurationError::TooPrecise { input }
            | DurationError::TooLarge { input } => input,
        }
    }
}

/// Parses `500ms`, `1.5s`, `1m30s`, `7d` into a duration with millisecond resolution.
pub fn parse(s: &str) -> Result<Duration, DurationError> {
    let input = || s.to_owned();
    if s.is_empty() {
        return Err(DurationError::Empty { input: input() });
    }
    let mut total_ms: u64 = 0;
    let mut rest = s;
    while !rest.is_empty() {
        let (int, frac, after) = split_number(rest).ok_or_else(|| DurationError::Malformed { input: input() })?;
        let unit_len = after.bytes().take_while(u8::is_ascii_alphabetic).count();
        let unit = &after[..unit_len];
        let factor: u64 = match unit {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            "" if after.is_empty() => return Err(DurationError::MissingUnit { input: input() }),
            "" => return Err(DurationError::Malformed { input: input() }),
            other => return Err(DurationError::UnknownUnit { input: input(), unit: other.to_owned() }),
        };
        let ms = scaled(int, frac, factor).map_err(|e| match e {
            Scale::Overflow => DurationError::TooLarge { input: input() },
            Scale::Inexact => DurationError::TooPrecise { input: input() },
        })?;
        total_ms = total_ms.checked_add(ms).ok_or_else(|| DurationError::TooLarge { input: input() })?;
        rest = &after[unit_len..];
    }
    Ok(Duration::from_millis(total_ms))
}

/// Canonical form: integer units, largest first; zero is `0s`. Anything below 1 ms is dropped, so
/// `parse(&format(d))` equals `d` for every duration this module parsed.
pub fn format(d: Duration) -> String {
    let mut ms = d.as_millis();
    if ms == 0 {
        return "0s".to_owned();
    }
    let mut out = String::new();
    for (unit, size) in [("d", 86_400_000u128), ("h", 3_600_000), ("m", 60_000), ("s", 1_000), ("ms", 1)] {
        if ms >= size {
            out.push_str(&(ms / size).to_string());
            out.push_str(unit);
            ms %= size;
        }
    }
    out
}

/// Splits a leading `digits[.digits]` off `s`: (integer digits, fraction digits, rest).
/// A number must start with a digit, and a `.` must be followed by at least one digit.
pub(crate) fn split_number(s: &str) -> Option<(&str, &str, &str)> {
    let int_len = s.bytes().take_while(u8::is_ascii_digit).count();
    if int_len == 0 {
        return None;
    }
    let (int, after) = s.split_at(int_len);
    match after.strip_prefix('.') {
        Some(tail) => {
            let frac_len = tail.bytes().take_while(u8::is_ascii_digit).count();
            if frac_len == 0 {
                return None;
            }
            Some((int, &tail[..frac_len], &tail[frac_len..]))
        }
        None => Some((int, "", after)),
    }
}

/// Why `int.frac × factor` could not be computed.
pub(crate) enum Scale {
    /// It does not fit in a u64.
    Overflow,
    /// It is not a whole number.
    Inexact,
}

/// `int.frac × factor` in exact integer arithmetic; `Inexact` when the result is not a whole number.
pub(crate) fn scaled(int: &str, frac: &str, factor: u64) -> Result<u64, Scale> {
    let (whole, remainder, _) = scaled_parts(int, frac, factor)?;
    if remainder != 0 {
        return Err(Scale::Inexact);
    }
    Ok(whole)
}

/// `int.frac × factor` split into its whole part and the remaining fraction `remainder / denominator`, so
/// callers can decide between refusing and rounding. At most 18 significant fraction digits are accepted.
pub(crate) fn scaled_parts(int: &str, frac: &str, factor: u64) -> Result<(u64, u128, u128), Scale> {
    let int: u128 = int.parse().map_err(|_| Scale::Overflow)?;
    let frac = frac.trim_end_matches('0');
    if frac.len() > 18 {
        return Err(Scale::Inexact);
    }
    let denominator = 10u128.pow(frac.len() as u32);
    let numerator: u128 = if frac.is_empty() { 0 } else { frac.parse().map_err(|_| Scale::Overflow)? };
    let whole = int.checked_mul(u128::from(factor)).ok_or(Scale::Overflow)?;
    // numerator < 10^18 and factor < 2^64, so this product fits in a u128.
    let frac_scaled = numerator * u128::from(factor);
    let total = whole.checked_add(frac_scaled / denominator).ok_or(Scale::Overflow)?;
    let total = u64::try_from(total).map_err(|_| Scale::Overflow)?;
    Ok((total, frac_scaled % denominator, denominator))
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
            ("0ms", 0, "0s"),
            ("0.1s", 100, "100ms"),
            ("1.25m", 75_000, "1m15s"),
            ("0.5d", 43_200_000, "12h"),
            ("1d1h1m1s1ms", 90_061_001, "1d1h1m1s1ms"),
            ("30s1m", 90_000, "1m30s"),
            ("1.000s", 1000, "1s"),
            ("180d", 15_552_000_000, "180d"),
        ] {
            let d = parse(input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(d.as_millis(), ms, "{input}");
            assert_eq!(format(d), canon, "{input}");
            assert_eq!(parse(&format(d)).unwrap(), d, "round trip {input}");
        }
    }

    #[test]
    fn format_round_trips_every_shape() {
        for ms in [1u64, 999, 1000, 59_999, 60_000, 3_599_999, 86_399_999, 86_400_001, u64::MAX / 2] {
            let d = Duration::from_millis(ms);
            assert_eq!(parse(&format(d)).unwrap(), d, "{ms}ms");
        }
    }

    #[test]
    fn rejects_bad_input_with_a_reason() {
        let errors: Vec<String> = [
            "",
            "30",
            "1.5",
            "s",
            "1x",
            "1S",
            "2w",
            "1 s",
            " 1s",
            "1s ",
            "1.2.3s",
            ".5s",
            "1.s",
            "0.5ms",
            "1.0001s",
            "-1s",
            "+1s",
            "1m30",
            "99999999999999999999d",
        ]
        .iter()
        .map(|s| parse(s).unwrap_err().to_string())
        .collect();
        expect_test::expect![[r#"
            invalid duration "": empty; write a number and a unit, e.g. 30s, 500ms or 1m30s
            invalid duration "30": add a unit, e.g. 30s
            invalid duration "1.5": add a unit, e.g. 30s
            invalid duration "s": write <number><unit> pairs with no spaces or signs, e.g. 30s, 1.5s or 1m30s
            invalid duration "1x": unknown unit "x"; units are ms, s, m, h and d (lower case)
            invalid duration "1S": unknown unit "S"; units are ms, s, m, h and d (lower case)
            invalid duration "2w": unknown unit "w"; units are ms, s, m, h and d (lower case)
            invalid duration "1 s": write <number><unit> pairs with no spaces or signs, e.g. 30s, 1.5s or 1m30s
            invalid duration " 1s": write <number><unit> pairs with no spaces or signs, e.g. 30s, 1.5s or 1m30s
            invalid duration "1s ": write <number><unit> pairs with no spaces or signs, e.g. 30s, 1.5s or 1m30s
            invalid duration "1.2.3s": write <number><unit> pairs with no spaces or signs, e.g. 30s, 1.5s or 1m30s
            invalid duration ".5s": write <number><unit> pairs with no spaces or signs, e.g. 30s, 1.5s or 1m30s
            invalid duration "1.s": write <number><unit> pairs with no spaces or signs, e.g. 30s, 1.5s or 1m30s
            invalid duration "0.5ms": the resolution is 1ms
            invalid duration "1.0001s": the resolution is 1ms
            invalid duration "-1s": write <number><unit> pairs with no spaces or signs, e.g. 30s, 1.5s or 1m30s
            invalid duration "+1s": write <number><unit> pairs with no spaces or signs, e.g. 30s, 1.5s or 1m30s
            invalid duration "1m30": add a unit, e.g. 30s
            invalid duration "99999999999999999999d": too large
        "#]]
        .assert_eq(&(errors.join("\n") + "\n"));
    }

    #[test]
    fn reason_leaves_the_input_out() {
        let e = parse("hunter2").unwrap_err();
        assert_eq!(e.input(), "hunter2");
        assert!(!e.reason().contains("hunter2"));
    }
}
