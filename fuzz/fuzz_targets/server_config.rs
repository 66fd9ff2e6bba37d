//! `slip.toml` from arbitrary text: parsing never panics, and no problem message holds a resolved secret.
#![no_main]

use libfuzzer_sys::fuzz_target;
use slip_core::config::{SourceFile, Sources, parse};

const SECRET: &str = "fuzz-resolved-secret-value";

fuzz_target!(|text: &str| {
    // libFuzzer's hook aborts on any panic, even one slip catches: the reader catches toml_edit's panic on some
    // invalid documents (see slip-core's config reader). With the default hook back, a caught panic is only
    // printed, and any other still reaches libfuzzer-sys's handler, which aborts and saves the input.
    static HOOK: std::sync::Once = std::sync::Once::new();
    HOOK.call_once(|| drop(std::panic::take_hook()));
    let sources = Sources {
        slip_toml: Some(SourceFile { path: "slip.toml".into(), text: text.to_owned() }),
        apps: vec![],
        env: [("SLIP_SECRET".to_owned(), SECRET.to_owned())].into_iter().collect(),
    };
    if let Err(problems) = parse(&sources) {
        for p in problems {
            assert!(!p.to_string().contains(SECRET), "a problem shows a resolved secret: {p}");
        }
    }
});
