//! An env file from arbitrary text: parsing never panics, and a `$NAME` is never expanded from the process
//! environment (slipd's own environment holds keys and tokens): parsing under two different environments gives
//! the same variables.
#![no_main]

use libfuzzer_sys::fuzz_target;

/// Names a fuzzed file is likely to refer to.
const NAMES: &[&str] = &["a", "b", "p", "x", "A", "B", "E", "P", "X", "_", "HOME", "PATH"];

fn environment(prefix: &str) {
    for name in NAMES {
        // SAFETY: libFuzzer runs this target on one thread, so nothing reads the environment meanwhile.
        #[allow(unsafe_code)]
        unsafe {
            std::env::set_var(name, format!("{prefix}-{name}"))
        };
    }
}

fuzz_target!(|text: &str| {
    environment("first-environment");
    let first = slip_core::env_file::parse(text);
    environment("second-environment");
    let second = slip_core::env_file::parse(text);
    assert_eq!(first, second, "a value depends on slipd's environment");
});
