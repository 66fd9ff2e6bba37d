//! The image store: pulls images and says which are local; removes those slip brought.

use std::collections::BTreeMap;
use std::fmt;

use async_trait::async_trait;

use super::RuntimeError;

/// Credentials for one registry host. `Debug` never shows the password.
#[derive(Clone, PartialEq, Eq)]
pub struct RegistryCredentials {
    /// Registry user name.
    pub username: String,
    /// Registry password or token.
    pub password: String,
}

impl fmt::Debug for RegistryCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RegistryCredentials").field("username", &self.username).field("password", &"***").finish()
    }
}

/// What a pull produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PulledImage {
    /// The local image id (`sha256:…`).
    pub id: String,
    /// The repository digest reference (`host/path@sha256:…`) when the engine knows it.
    pub digest: Option<String>,
}

/// Images on the engine, in deploy verbs.
#[async_trait]
pub trait ImageStore: Send + Sync {
    /// Pulls `reference` (`repo:tag` or `repo@sha256:…`), sending `credentials` to that registry only.
    async fn pull(
        &self,
        reference: &str,
        credentials: Option<&RegistryCredentials>,
    ) -> Result<PulledImage, RuntimeError>;
    /// The local image for `reference`, if present, without pulling.
    async fn local_image(&self, reference: &str) -> Result<Option<PulledImage>, RuntimeError>;
    /// Removes an image by reference without force. A missing image is `Ok`; an image in use is an error.
    async fn remove_image(&self, reference: &str) -> Result<(), RuntimeError>;
    /// Reads `paths` out of `image` without running it (SPEC §7.3): a container that is created and never started,
    /// labelled `labels`, is downloaded from through the archive API and then force-removed, whatever happened.
    /// Each path answers in order: its bytes, [`ImageFile::Missing`], or [`ImageFile::TooLarge`] past `limit` bytes.
    async fn read_files(
        &self,
        image: &str,
        paths: &[&str],
        limit: usize,
        labels: &BTreeMap<String, String>,
    ) -> Result<Vec<ImageFile>, RuntimeError>;
}

/// One file read out of an image by [`ImageStore::read_files`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageFile {
    /// The file's bytes.
    Found(Vec<u8>),
    /// The image has no such file.
    Missing,
    /// The file is larger than the limit; it was not read.
    TooLarge(u64),
    /// The path names something else than a regular file (a directory, a link).
    NotAFile,
}
