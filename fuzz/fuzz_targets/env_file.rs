//! An env file from arbitrary text: parsing never panics, and a `$NAME` is never expanded from the process
//! environment (slipd's own environment holds keys and tokens).
#![no_main]

use libfuzzer_sys::fuzz_target;

const SENTINEL: &str = "sentinel-from-the-daemon-environment";

fuzz_target!(|text: &str| {
    // SAFETY: not needed; set_var is unsafe only because of other threads reading the environment, and libFuzzer
    // runs this target on one thread.
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        for name in ["A", "B", "X", "HOME", "PATH", "a", "_"] {
            #[allow(unsafe_code)]
            unsafe {
                std::env::set_var(name, SENTINEL)
            };
        }
    });
    if let Ok(vars) = slip_core::env_file::parse(text) {
        for (key, value) in vars {
            assert!(!value.contains(SENTINEL) || text.contains(SENTINEL), "{key} took a value from the environment");
        }
    }
});
