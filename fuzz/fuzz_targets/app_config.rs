//! `apps/<name>.toml` from arbitrary text, beside a fixed second app: parsing never panics, and no problem
//! message holds a resolved secret.
#![no_main]

use libfuzzer_sys::fuzz_target;
use slip_core::config::{SourceFile, Sources, parse};

const SECRET: &str = "fuzz-resolved-secret-value";
const OTHER: &str =
    "[app]\nname = \"other\"\nimage = \"ghcr.io/acme/other\"\n[routing]\ndomain = \"other.example.com\"\nport = 8080\n";

fuzz_target!(|text: &str| {
    // libFuzzer's hook aborts on any panic, even one slip catches: the reader catches toml_edit's panic on some
    // invalid documents (see slip-core's config reader). With the default hook back, a caught panic is only
    // printed, and any other still reaches libfuzzer-sys's handler, which aborts and saves the input.
    static HOOK: std::sync::Once = std::sync::Once::new();
    HOOK.call_once(|| drop(std::panic::take_hook()));
    let sources = Sources {
        slip_toml: None,
        apps: vec![
            SourceFile { path: "apps/myapp.toml".into(), text: text.to_owned() },
            SourceFile { path: "apps/other.toml".into(), text: OTHER.to_owned() },
        ],
        env: [("MYAPP_SECRET".to_owned(), SECRET.to_owned())].into_iter().collect(),
    };
    if let Err(problems) = parse(&sources) {
        for p in problems {
            assert!(!p.to_string().contains(SECRET), "a problem shows a resolved secret: {p}");
        }
    }
});
