//! Splitting an image reference the way the engine's pull endpoint wants it, and finding the repository digest
//! that belongs to it.
//!
//! Validation of what a user may deploy lives in `slip_core::names`; this module only takes apart references
//! slip already built, and never rejects one (the engine has the last word).

use slip_core::names::ImageRepo;

/// An image reference taken apart: `repository` plus a tag or a digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Reference {
    /// The repository as given, without tag or digest (`127.0.0.1:5000/app`, `nginx`).
    pub(crate) repository: String,
    /// The tag or the `sha256:…` digest; `latest` when the reference named neither, so a pull never asks the
    /// engine for every tag of a repository.
    pub(crate) tag_or_digest: String,
}

impl Reference {
    /// Splits `repo:tag`, `repo@sha256:…` or `repo:tag@sha256:…` (the digest wins) or a bare `repo`.
    pub(crate) fn parse(reference: &str) -> Reference {
        if let Some((repo, digest)) = reference.split_once('@') {
            let (repository, _tag) = split_tag(repo);
            return Reference { repository: repository.to_owned(), tag_or_digest: digest.to_owned() };
        }
        let (repository, tag) = split_tag(reference);
        Reference { repository: repository.to_owned(), tag_or_digest: tag.unwrap_or("latest").to_owned() }
    }

    /// The registry host credentials are matched against (`docker.io` when the reference names none).
    pub(crate) fn host(&self) -> String {
        match self.repository.split_once('/') {
            Some((first, _)) if first.contains('.') || first.contains(':') || first == "localhost" => first.to_owned(),
            _ => "docker.io".to_owned(),
        }
    }

    /// The repository in its normalised long form (`nginx` → `docker.io/library/nginx`).
    pub(crate) fn normalized_repository(&self) -> String {
        normalize(&self.repository)
    }
}

/// Picks, among an image's `RepoDigests`, the one of `repository` and returns it as `host/path@sha256:…`.
pub(crate) fn matching_digest(repository: &str, repo_digests: &[String]) -> Option<String> {
    let wanted = normalize(repository);
    repo_digests.iter().find_map(|entry| {
        let (repo, digest) = entry.split_once('@')?;
        (normalize(repo) == wanted).then(|| format!("{wanted}@{digest}"))
    })
}

/// Splits a trailing `:tag` off, ignoring the `:port` of a registry host.
fn split_tag(reference: &str) -> (&str, Option<&str>) {
    let last_segment_start = reference.rfind('/').map_or(0, |i| i + 1);
    match reference[last_segment_start..].rfind(':') {
        Some(i) => {
            let at = last_segment_start + i;
            (&reference[..at], Some(&reference[at + 1..]))
        }
        None => (reference, None),
    }
}

fn normalize(repository: &str) -> String {
    repository.parse::<ImageRepo>().map_or_else(|_| repository.to_owned(), |repo| repo.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIGEST: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn splits_tags_digests_and_registry_ports() {
        let cases = [
            ("127.0.0.1:5000/app:v1", "127.0.0.1:5000/app", "v1", "127.0.0.1:5000"),
            ("127.0.0.1:5000/app", "127.0.0.1:5000/app", "latest", "127.0.0.1:5000"),
            ("nginx", "nginx", "latest", "docker.io"),
            ("you/app:sha-1", "you/app", "sha-1", "docker.io"),
            ("localhost/app:1", "localhost/app", "1", "localhost"),
            ("ghcr.io/you/app@DIGEST", "ghcr.io/you/app", DIGEST, "ghcr.io"),
            ("ghcr.io/you/app:v1@DIGEST", "ghcr.io/you/app", DIGEST, "ghcr.io"),
        ];
        for (input, repository, tag, host) in cases {
            let parsed = Reference::parse(&input.replace("DIGEST", DIGEST));
            assert_eq!(parsed.repository, repository, "{input}");
            assert_eq!(parsed.tag_or_digest, tag, "{input}");
            assert_eq!(parsed.host(), host, "{input}");
        }
    }

    #[test]
    fn digest_of_the_same_repository_is_chosen_in_long_form() {
        let digests = vec![format!("127.0.0.1:5000/other@{DIGEST}"), format!("nginx@{DIGEST}")];
        assert_eq!(
            matching_digest("docker.io/library/nginx", &digests),
            Some(format!("docker.io/library/nginx@{DIGEST}"))
        );
        assert_eq!(matching_digest("127.0.0.1:5000/app", &digests), None);
        assert_eq!(matching_digest("127.0.0.1:5000/other", &digests), Some(format!("127.0.0.1:5000/other@{DIGEST}")));
    }
}
