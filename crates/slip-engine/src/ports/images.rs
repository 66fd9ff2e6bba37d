//! The image store: pulls images and says which are local; removes those slip brought.

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
    /// The bytes of the file at `path` inside the local image `reference`, read without running the image, at
    /// most `max` of them (a larger file is an error); `None` when the image has no such file. Any helper the
    /// engine needs carries `labels`.
    async fn read_file(
        &self,
        reference: &str,
        path: &str,
        labels: &std::collections::BTreeMap<String, String>,
        max: usize,
    ) -> Result<Option<Vec<u8>>, RuntimeError>;
}
