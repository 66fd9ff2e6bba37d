//! The repo config (`/slip/slip.toml` inside an image, so untrusted) from arbitrary text: reading never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use slip_core::config::{SourceFile, UnknownKeys};
use slip_core::repo_config;

fuzz_target!(|text: &str| {
    // libFuzzer's hook aborts on any panic, even one slip catches: the reader catches toml_edit's panic on some
    // invalid documents (see slip-core's config reader). With the default hook back, a caught panic is only
    // printed, and any other still reaches libfuzzer-sys's handler, which aborts and saves the input.
    static HOOK: std::sync::Once = std::sync::Once::new();
    HOOK.call_once(|| drop(std::panic::take_hook()));
    let file = SourceFile { path: "slip/slip.toml".into(), text: text.to_owned() };
    let _ = repo_config::read(&file, UnknownKeys::Warning);
    let _ = repo_config::read(&file, UnknownKeys::Problem);
});
