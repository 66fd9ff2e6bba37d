//! A manifest's `image:` value (SPEC §14.2 step 2): a repository with a tag, a digest, the `${tag}`
//! placeholder in the tag, or nothing.
//!
//! `${tag}` is the only placeholder in a manifest (SPEC §3.1), and it may only stand in the tag, where the
//! deploy tag goes. Replacing it, pinning and overriding images are the renderer's work, not this module's.

use std::fmt;

use crate::names::{ImageRepo, NameError, Tag};

/// The deploy tag placeholder.
pub const PLACEHOLDER: &str = "${tag}";

/// A container image as the manifest writes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    /// The repository, normalised (`redis` → `docker.io/library/redis`).
    pub repo: ImageRepo,
    /// What follows the repository.
    pub reference: Reference,
    /// The value as written.
    pub written: String,
}

/// What an image names after its repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reference {
    /// A tag containing `${tag}` (`:${tag}`, `:${tag}-alpine`), replaced by the deploy tag.
    DeployTag,
    /// A fixed tag or digest.
    Fixed(Tag),
    /// No tag: the engine pulls `:latest`, unless the repository is `app.image` (slip then adds the deploy tag).
    Untagged,
}

impl Image {
    /// True for a fixed `:latest` tag.
    pub fn is_latest(&self) -> bool {
        matches!(&self.reference, Reference::Fixed(Tag::Named(t)) if t == "latest")
    }
}

impl fmt::Display for Image {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.written)
    }
}

/// Parses an `image:` value; the error says what is wrong and how to write it.
pub fn parse(s: &str) -> Result<Image, String> {
    let (repo, tag) = match s.split_once('@') {
        Some((repo, digest)) => (repo, Some(digest)),
        None => match s.rsplit_once(':') {
            Some((repo, tag)) if !tag.contains('/') => (repo, Some(tag)),
            _ => (s, None),
        },
    };
    if repo.contains("${") {
        return Err(format!("{PLACEHOLDER} may only stand in the tag, e.g. ghcr.io/you/app:{PLACEHOLDER}"));
    }
    let repo: ImageRepo = repo.parse().map_err(|e: NameError| format!("is not an image reference: {}", e.rule))?;
    let reference = match tag {
        None => Reference::Untagged,
        Some(tag) if tag.contains(PLACEHOLDER) => {
            // Any valid tag in place of the placeholder must give a valid tag.
            let sample = tag.replace(PLACEHOLDER, "0");
            if sample.contains("${") {
                return Err(placeholder_error());
            }
            sample.parse::<Tag>().map_err(|e| format!("has an invalid tag: {}", e.rule))?;
            Reference::DeployTag
        }
        Some(tag) if tag.contains("${") => return Err(placeholder_error()),
        Some(tag) => Reference::Fixed(tag.parse().map_err(|e: NameError| format!("has an invalid tag: {}", e.rule))?),
    };
    Ok(Image { repo, reference, written: s.to_owned() })
}

fn placeholder_error() -> String {
    format!(
        "has a placeholder other than {PLACEHOLDER}: manifests are not interpolated, and {PLACEHOLDER} is the only one"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references() {
        let i = parse("ghcr.io/you/app:${tag}").unwrap();
        assert_eq!(i.reference, Reference::DeployTag);
        assert_eq!(i.repo.to_string(), "ghcr.io/you/app");
        assert_eq!(parse("ghcr.io/you/app:${tag}-alpine").unwrap().reference, Reference::DeployTag);
        assert_eq!(parse("redis").unwrap().reference, Reference::Untagged);
        assert_eq!(parse("redis").unwrap().repo.to_string(), "docker.io/library/redis");
        assert!(parse("redis:latest").unwrap().is_latest());
        assert!(!parse("redis:7.2").unwrap().is_latest());
        assert_eq!(parse("127.0.0.1:5000/cache").unwrap().reference, Reference::Untagged);
        let digest = format!("ghcr.io/x/y@sha256:{}", "a".repeat(64));
        assert!(matches!(parse(&digest).unwrap().reference, Reference::Fixed(Tag::Digest(_))));
    }

    #[test]
    fn bad_references_say_why() {
        assert!(parse("ghcr.io/you/${tag}:v1").unwrap_err().contains("may only stand in the tag"));
        assert!(parse("ghcr.io/you/app:${TAG}").unwrap_err().contains("placeholder other than ${tag}"));
        assert!(parse("ghcr.io/you/app:${tag}${x}").unwrap_err().contains("placeholder other than ${tag}"));
        assert!(parse("Ghcr.io/You/App").unwrap_err().starts_with("is not an image reference"));
        assert!(parse("redis:bad tag").unwrap_err().starts_with("has an invalid tag"));
        assert!(parse("").is_err());
    }
}
