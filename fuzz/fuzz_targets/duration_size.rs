//! Durations and sizes: parsing never panics, and whatever parses prints canonically and parses back the same.
#![no_main]

use libfuzzer_sys::fuzz_target;
use slip_core::{duration, size};

fuzz_target!(|text: &str| {
    if let Ok(d) = duration::parse(text) {
        let shown = duration::format(d);
        assert_eq!(duration::parse(&shown).ok(), Some(d), "{text:?} -> {shown:?}");
    }
    if let Ok(n) = size::parse(text) {
        let shown = size::format(n);
        assert_eq!(size::parse(&shown).ok(), Some(n), "{text:?} -> {shown:?}");
    }
});
