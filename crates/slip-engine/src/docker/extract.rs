//! Reading files out of an image without running it (SPEC §7.3): a container `slip-extract-<16 hex>` is created
//! with an entrypoint that is never run, each file is downloaded through the archive API (a tar stream), and the
//! container is force-removed whatever happened. Its labels (`slip.role=extract`) let reconciliation remove one a
//! crash left behind.

use std::collections::{BTreeMap, HashMap};
use std::io::Read;

use bollard::models::ContainerCreateBody;
use bollard::query_parameters::{CreateContainerOptionsBuilder, DownloadFromContainerOptionsBuilder};
use futures::StreamExt;

use super::Runtime;
use super::errors::Answer;
use crate::ports::{ImageFile, RuntimeError};

/// The entrypoint of an extract container. It is never started, so this only has to be a valid command line.
const NEVER_RUN: &str = "/slip-extract-is-never-started";

/// Tar framing around one file: its header, padding to 512 bytes and the two end blocks, with room to spare.
const TAR_OVERHEAD: usize = 16 * 512;

impl Runtime {
    /// See [`crate::ports::ImageStore::read_files`].
    pub(super) async fn extract_files(
        &self,
        image: &str,
        paths: &[&str],
        limit: usize,
        labels: &BTreeMap<String, String>,
    ) -> Result<Vec<ImageFile>, RuntimeError> {
        let name = format!("slip-extract-{}", suffix());
        let body = ContainerCreateBody {
            image: Some(image.to_owned()),
            entrypoint: Some(vec![NEVER_RUN.to_owned()]),
            cmd: Some(Vec::new()),
            labels: Some(labels.iter().map(|(k, v)| (k.clone(), v.clone())).collect::<HashMap<_, _>>()),
            network_disabled: Some(true),
            ..Default::default()
        };
        let options = CreateContainerOptionsBuilder::default().name(&name).build();
        let id = match self.docker.create_container(Some(options), body).await {
            Ok(created) => created.id,
            Err(err) => return Err(self.error("create extract container", image, &err)),
        };
        let mut files = Vec::with_capacity(paths.len());
        let mut failure = None;
        for path in paths {
            match self.download(&id, path, limit).await {
                Ok(file) => files.push(file),
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
        }
        if let Err(e) = crate::ports::InstanceRuntime::remove(self, &id).await {
            // Reconciliation removes it at the next start (it carries slip.role=extract).
            tracing::warn!(container = %name, error = %e, "could not remove an extract container");
        }
        match failure {
            Some(e) => Err(e),
            None => Ok(files),
        }
    }

    async fn download(&self, id: &str, path: &str, limit: usize) -> Result<ImageFile, RuntimeError> {
        let options = DownloadFromContainerOptionsBuilder::default().path(path).build();
        let mut stream = self.docker.download_from_container(id, Some(options));
        let mut tar = Vec::new();
        while let Some(chunk) = stream.next().await {
            match chunk {
                Ok(bytes) => {
                    tar.extend_from_slice(&bytes);
                    if tar.len() > limit + TAR_OVERHEAD {
                        // Larger than the limit whatever the framing; the header says by how much.
                        return Ok(match first_entry(&tar) {
                            Some((_, size)) => ImageFile::TooLarge(size),
                            None => ImageFile::TooLarge(tar.len() as u64),
                        });
                    }
                }
                Err(err) if Answer::of(&err).status() == Some(404) => return Ok(ImageFile::Missing),
                Err(err) => return Err(self.error("read a file from the image", path, &err)),
            }
        }
        unpack(&tar, limit).map_err(|message| RuntimeError::Rejected {
            op: "read a file from the image",
            target: path.to_owned(),
            message,
        })
    }
}

/// The one file in `tar`, as the archive API answers for a single path.
fn unpack(tar: &[u8], limit: usize) -> Result<ImageFile, String> {
    let mut archive = tar::Archive::new(tar);
    let mut entries = archive.entries().map_err(|e| format!("unreadable archive: {e}"))?;
    let Some(entry) = entries.next() else { return Ok(ImageFile::Missing) };
    let mut entry = entry.map_err(|e| format!("unreadable archive entry: {e}"))?;
    if !entry.header().entry_type().is_file() {
        return Ok(ImageFile::NotAFile);
    }
    let size = entry.header().size().map_err(|e| format!("unreadable archive header: {e}"))?;
    if size > limit as u64 {
        return Ok(ImageFile::TooLarge(size));
    }
    let mut bytes = Vec::with_capacity(size as usize);
    entry.read_to_end(&mut bytes).map_err(|e| format!("reading the archive: {e}"))?;
    Ok(ImageFile::Found(bytes))
}

/// The first entry's type byte and size from a (possibly truncated) tar stream.
fn first_entry(tar: &[u8]) -> Option<(u8, u64)> {
    let header = tar.get(..512)?;
    let size = std::str::from_utf8(&header[124..136]).ok()?.trim_matches(|c: char| c == '\0' || c == ' ');
    Some((header[156], u64::from_str_radix(size, 8).ok()?))
}

/// 16 random hex digits.
fn suffix() -> String {
    use rand::Rng;
    let mut rng = rand::rng();
    (0..16).map(|_| char::from_digit(rng.random_range(0..16), 16).expect("hex digit")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tar_of(name: &str, data: &[u8], kind: tar::EntryType) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_entry_type(kind);
        header.set_mode(0o644);
        header.set_cksum();
        builder.append_data(&mut header, name, data).unwrap();
        builder.into_inner().unwrap()
    }

    #[test]
    fn a_file_unpacks_and_limits_and_kinds_are_told_apart() {
        let file = tar_of("slip.toml", b"[app]\nname = \"web\"\n", tar::EntryType::Regular);
        assert_eq!(unpack(&file, 1024).unwrap(), ImageFile::Found(b"[app]\nname = \"web\"\n".to_vec()));
        assert_eq!(unpack(&file, 4).unwrap(), ImageFile::TooLarge(19));
        assert_eq!(first_entry(&file).map(|(_, size)| size), Some(19));
        let dir = tar_of("slip.toml", b"", tar::EntryType::Directory);
        assert_eq!(unpack(&dir, 1024).unwrap(), ImageFile::NotAFile);
        assert_eq!(unpack(&[0u8; 1024], 1024).unwrap(), ImageFile::Missing, "an empty archive has no file");
    }
}
