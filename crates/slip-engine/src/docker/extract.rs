//! Reads one file out of an image without running it (SPEC §7.3 `configuring`): a stopped helper container
//! `slip-extract-<16 hex>` (label `slip.role=extract`) whose entrypoint is never run, the file downloaded through
//! the archive API, then the container force-removed. A crash in between leaves a container carrying this slipd's
//! labels, which the next start removes as an orphan.

use std::collections::{BTreeMap, HashMap};
use std::io::Read;

use bollard::models::ContainerCreateBody;
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, DownloadFromContainerOptionsBuilder, RemoveContainerOptionsBuilder,
};
use futures::StreamExt;

use super::Runtime;
use super::errors::Answer;
use crate::ports::RuntimeError;

impl Runtime {
    /// The bytes of `path` in `image` (already local), at most `max` of them; `None` when the image has no such
    /// file. `labels` go on the helper container.
    pub(super) async fn extract_file(
        &self,
        image: &str,
        path: &str,
        labels: &BTreeMap<String, String>,
        max: usize,
    ) -> Result<Option<Vec<u8>>, RuntimeError> {
        let name = format!("slip-extract-{:016x}", rand::random::<u64>());
        let body = ContainerCreateBody {
            image: Some(image.to_owned()),
            // Never run; an entrypoint is needed only because an image may have none.
            entrypoint: Some(vec!["/slip-never-run".to_owned()]),
            cmd: Some(Vec::new()),
            labels: Some(labels.iter().map(|(k, v)| (k.clone(), v.clone())).collect::<HashMap<_, _>>()),
            network_disabled: Some(true),
            ..Default::default()
        };
        let options = CreateContainerOptionsBuilder::default().name(&name).build();
        let created = self.docker.create_container(Some(options), body).await;
        let id = created.map_err(|err| self.error("create", &name, &err))?.id;
        let read = self.download(&id, path, max).await;
        let remove = RemoveContainerOptionsBuilder::default().force(true).build();
        if let Err(err) = self.docker.remove_container(&id, Some(remove)).await {
            tracing::warn!(container = name, error = Answer::of(&err).message(), "removing the extract container");
        }
        read
    }

    async fn download(&self, id: &str, path: &str, max: usize) -> Result<Option<Vec<u8>>, RuntimeError> {
        let options = DownloadFromContainerOptionsBuilder::default().path(path).build();
        let mut stream = self.docker.download_from_container(id, Some(options));
        let mut archive = Vec::new();
        while let Some(chunk) = stream.next().await {
            match chunk {
                Ok(bytes) => {
                    archive.extend_from_slice(&bytes);
                    // The tar wrapping adds headers and padding; a file over `max` is still refused below.
                    if archive.len() > max + 64 * 1024 {
                        return Err(too_large(path, max));
                    }
                }
                Err(err) => {
                    return match Answer::of(&err) {
                        Answer::Engine { status: Some(404), .. } => Ok(None),
                        Answer::Transport(message) => {
                            Err(RuntimeError::Unreachable { socket: self.socket.clone(), message })
                        }
                        Answer::Engine { message, .. } => {
                            Err(RuntimeError::Rejected { op: "read", target: path.to_owned(), message })
                        }
                    };
                }
            }
        }
        first_file(&archive, path, max)
    }
}

/// The first regular file in a tar `archive` (the archive API wraps the one file asked for).
fn first_file(archive: &[u8], path: &str, max: usize) -> Result<Option<Vec<u8>>, RuntimeError> {
    let broken = |e: std::io::Error| RuntimeError::Rejected {
        op: "read",
        target: path.to_owned(),
        message: format!("the engine's archive is unreadable: {e}"),
    };
    let mut tar = tar::Archive::new(archive);
    for entry in tar.entries().map_err(broken)? {
        let entry = entry.map_err(broken)?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        if entry.header().size().map_err(broken)? > max as u64 {
            return Err(too_large(path, max));
        }
        let mut bytes = Vec::new();
        entry.take(max as u64 + 1).read_to_end(&mut bytes).map_err(broken)?;
        return Ok(Some(bytes));
    }
    // A directory (or a link to one) at `path`: no file there.
    Ok(None)
}

fn too_large(path: &str, max: usize) -> RuntimeError {
    RuntimeError::Rejected { op: "read", target: path.to_owned(), message: format!("larger than {max} bytes") }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn archive(name: &str, data: &[u8]) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        builder.append_data(&mut header, name, data).unwrap();
        builder.into_inner().unwrap()
    }

    #[test]
    fn the_one_file_comes_out_and_a_large_one_is_refused() {
        let tar = archive("slip.toml", b"[preview]\nenabled = true\n");
        assert_eq!(first_file(&tar, "/slip/slip.toml", 1024).unwrap().unwrap(), b"[preview]\nenabled = true\n");
        assert!(first_file(&tar, "/slip/slip.toml", 4).is_err());
    }
}
