//! Daemon-wide image settings: the disk preflight before a pull and how many releases keep their images.

use std::collections::BTreeMap;
use std::path::PathBuf;

use slip_core::names::AppName;

/// `deploy.keep_images` when the config does not say (SPEC §12).
pub const DEFAULT_KEEP_IMAGES: usize = 3;

/// `runtime.min_free_disk` when the config does not say: 2 GiB.
pub const DEFAULT_MIN_FREE_DISK: u64 = 2 << 30;

/// Daemon-wide image settings, part of [`crate::engine::Engine`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImagePolicy {
    /// Where the engine keeps images (Docker's `DockerRootDir`); free space there is checked before a pull.
    /// `None` (the engine did not say) skips the check.
    pub engine_root: Option<PathBuf>,
    /// `runtime.min_free_disk` in bytes.
    pub min_free_disk: u64,
    /// Each app's `deploy.keep_images`; apps missing here (deleted from the config) keep [`DEFAULT_KEEP_IMAGES`].
    pub keep_images: BTreeMap<String, usize>,
}

impl ImagePolicy {
    /// No disk check, default retention: for tests with fakes.
    pub fn without_disk_check() -> ImagePolicy {
        ImagePolicy { engine_root: None, min_free_disk: DEFAULT_MIN_FREE_DISK, keep_images: BTreeMap::new() }
    }

    /// How many releases of `app` keep their images (at least 1).
    pub fn keep_for(&self, app: &AppName) -> usize {
        self.keep_images.get(app.as_str()).copied().unwrap_or(DEFAULT_KEEP_IMAGES).max(1)
    }
}
