//! Image references (webhook `image`, app config, pod manifests): parsing never panics, and a parsed repository
//! or tag prints as something that parses back to it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use slip_core::names::{ImageRepo, Tag};
use slip_core::pod_manifest::image;

fuzz_target!(|text: &str| {
    if let Ok(repo) = text.parse::<ImageRepo>() {
        let again: ImageRepo = repo.to_string().parse().expect("a printed repository parses");
        assert_eq!(again, repo);
    }
    if let Ok(tag) = text.parse::<Tag>() {
        let again: Tag = tag.to_string().parse().expect("a printed tag parses");
        assert_eq!(again, tag);
    }
    let _ = image::parse(text);
});
