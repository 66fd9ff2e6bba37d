//! Picks and connects the runtime adapter that `[runtime]` asks for, and hands it out by seam.
//!
//! Boot asks this module for a runtime and gets the three seams of [`crate::ports`] (instances, images, logs);
//! it never names the adapter. Docker and Podman both speak the Docker-compatible API through [`crate::docker`];
//! on Podman, [`crate::podman::PodRuntime`] adds pods through libpod. A Swarm backend would be chosen here too.

use std::path::PathBuf;
use std::sync::Arc;

use crate::docker;
pub use crate::docker::Backend;
use crate::ports::{ImageStore, InstanceRuntime, LogSource, RuntimeError};

/// A connected runtime, by seam.
#[derive(Clone)]
pub struct Runtime {
    /// Creates, inspects and removes instances.
    pub instances: Arc<dyn InstanceRuntime>,
    /// Pulls and removes images.
    pub images: Arc<dyn ImageStore>,
    /// Reads container output.
    pub logs: Arc<dyn LogSource>,
    /// The engine that answered (never `Auto`).
    pub backend: Backend,
    /// Where the engine keeps its data, for the disk preflight; `None` when it does not say.
    pub engine_root: Option<PathBuf>,
}

/// Connects to the engine `backend` names (`auto`: the first Podman socket that answers, else Docker), at
/// `socket` when one is given.
pub async fn connect(backend: Backend, socket: Option<&str>) -> Result<Runtime, RuntimeError> {
    let adapter = docker::Runtime::detect(backend, socket).await?;
    let engine_root = adapter.engine_root().await;
    let backend = adapter.backend();
    let adapter = Arc::new(adapter);
    match backend {
        // Podman runs pods too, through its own API beside the Docker-compatible one.
        Backend::Podman => {
            let pods = Arc::new(crate::podman::PodRuntime::new(adapter));
            Ok(Runtime { instances: pods.clone(), images: pods.clone(), logs: pods, backend, engine_root })
        }
        Backend::Docker | Backend::Auto => {
            Ok(Runtime { instances: adapter.clone(), images: adapter.clone(), logs: adapter, backend, engine_root })
        }
    }
}
