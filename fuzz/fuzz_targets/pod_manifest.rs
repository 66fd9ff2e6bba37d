//! A pod manifest (from an image, so untrusted) from arbitrary text: reading never panics, overflows the stack or
//! expands aliases without bound (the target runs under libFuzzer's memory and time limits).
#![no_main]

use libfuzzer_sys::fuzz_target;
use slip_core::config::SourceFile;
use slip_core::pod_manifest::{self, Policy};

fuzz_target!(|text: &str| {
    let file = SourceFile { path: "slip/pod.yaml".into(), text: text.to_owned() };
    let _ = pod_manifest::read(&file, &Policy::default());
});
