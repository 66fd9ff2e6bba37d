//! Image references an app file names: pinned images for pod containers and `app.allowed_images` patterns.

use std::fmt;
use std::str::FromStr;

use crate::names::{ImageRepo, Tag};

/// An image reference with its tag or digest (`docker.io/library/redis:7.2`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PinnedImage {
    /// The repository, normalised.
    pub repo: ImageRepo,
    /// The tag or digest.
    pub tag: Tag,
}

impl fmt::Display for PinnedImage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.repo.with_tag(&self.tag))
    }
}

impl FromStr for PinnedImage {
    type Err = String;
    fn from_str(s: &str) -> Result<PinnedImage, String> {
        let (repo, tag) = match s.split_once('@') {
            Some((repo, digest)) => (repo, Some(digest)),
            None => match s.rsplit_once(':') {
                Some((repo, tag)) if !tag.contains('/') => (repo, Some(tag)),
                _ => (s, None),
            },
        };
        let repo: ImageRepo = repo.parse().map_err(|e: crate::names::NameError| format!("is invalid: {}", e.rule))?;
        let tag = tag.ok_or("has no tag: pin one, e.g. redis:7.2")?;
        let tag: Tag = tag.parse().map_err(|e: crate::names::NameError| format!("has an invalid tag: {}", e.rule))?;
        Ok(PinnedImage { repo, tag })
    }
}

/// An `app.allowed_images` entry: a repository where `*` matches any run of characters except `/`,
/// normalised like [`ImageRepo`] (`ghcr.io/you/*`, `redis` → `docker.io/library/redis`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImagePattern(String);

impl ImagePattern {
    /// True when `repo` matches.
    pub fn matches(&self, repo: &ImageRepo) -> bool {
        glob(self.0.as_bytes(), repo.to_string().as_bytes())
    }

    /// The normalised pattern.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ImagePattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for ImagePattern {
    type Err = String;
    fn from_str(s: &str) -> Result<ImagePattern, String> {
        // Validate and normalise as a repository with every `*` standing in for a plain segment character.
        const MARK: &str = "x0star0x";
        if s.contains(MARK) {
            return Err("is not a repository pattern".into());
        }
        let repo: ImageRepo = s.replace('*', MARK).parse().map_err(|_| {
            "is not a repository pattern: write a repository without tag or digest, where * matches within one \
             path segment"
                .to_owned()
        })?;
        Ok(ImagePattern(repo.to_string().replace(MARK, "*")))
    }
}

/// `*` matches any run of bytes except `/`.
fn glob(pattern: &[u8], text: &[u8]) -> bool {
    match pattern.split_first() {
        None => text.is_empty(),
        Some((b'*', rest)) => {
            let mut i = 0;
            loop {
                if glob(rest, &text[i..]) {
                    return true;
                }
                if i == text.len() || text[i] == b'/' {
                    return false;
                }
                i += 1;
            }
        }
        Some((c, rest)) => text.split_first().is_some_and(|(t, text_rest)| t == c && glob(rest, text_rest)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_patterns_normalise_and_match_within_segments() {
        let p: ImagePattern = "ghcr.io/you/*".parse().unwrap();
        assert_eq!(p.as_str(), "ghcr.io/you/*");
        assert!(p.matches(&"ghcr.io/you/dagster".parse().unwrap()));
        assert!(!p.matches(&"ghcr.io/you/a/b".parse().unwrap()));
        assert!(!p.matches(&"ghcr.io/other/x".parse().unwrap()));
        let p: ImagePattern = "redis".parse().unwrap();
        assert_eq!(p.as_str(), "docker.io/library/redis");
        assert!(p.matches(&"redis".parse().unwrap()));
        let p: ImagePattern = "you/app-*".parse().unwrap();
        assert!(p.matches(&"docker.io/you/app-web".parse().unwrap()));
        assert!("ghcr.io/you/x:v1".parse::<ImagePattern>().is_err());
    }

    #[test]
    fn pinned_images_need_a_tag() {
        let i: PinnedImage = "redis:7.2".parse().unwrap();
        assert_eq!(i.to_string(), "docker.io/library/redis:7.2");
        let i: PinnedImage = "127.0.0.1:5000/cache:1".parse().unwrap();
        assert_eq!(i.to_string(), "127.0.0.1:5000/cache:1");
        let digest = format!("ghcr.io/x/y@sha256:{}", "a".repeat(64));
        assert_eq!(digest.parse::<PinnedImage>().unwrap().to_string(), digest);
        assert_eq!("redis".parse::<PinnedImage>().unwrap_err(), "has no tag: pin one, e.g. redis:7.2");
        assert!("127.0.0.1:5000/cache".parse::<PinnedImage>().is_err());
    }
}
