//! `[[volumes]]`: host directories mounted into the app, checked against `storage.volume_roots`.

use std::path::PathBuf;

use crate::config::reader::{Keys, Reader, Tbl};
use crate::config::server::{Daemon, check_absolute};
use crate::config::vocabulary;
use crate::names::is_dns_label;

vocabulary! {
    /// `[[volumes]].preview`: what previews get of a volume.
    VolumePreview {
        /// An empty private directory per preview.
        Isolated = "isolated",
        /// A read-only mount of the production directory.
        Readonly = "readonly",
        /// Nothing.
        None = "none",
    }
}

const VOLUME: &[&str] = &["host_path", "mount_path", "read_only", "containers", "owner", "preview"];

/// One `[[volumes]]` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Volume {
    /// Host directory: absolute, no `..`, under a `storage.volume_roots` entry.
    pub host_path: PathBuf,
    /// Mount point in the container: absolute, not `/`.
    pub mount_path: String,
    /// Mounted read-only.
    pub read_only: bool,
    /// Pods: the containers that mount it; `None` means all.
    pub containers: Option<Vec<String>>,
    /// `chown` applied when slip creates the directory.
    pub owner: Option<Owner>,
    /// What previews get.
    pub preview: VolumePreview,
}

/// `uid:gid` for a volume directory slip creates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Owner {
    /// User id.
    pub uid: u32,
    /// Group id.
    pub gid: u32,
}

pub(super) fn volumes(r: &mut Reader<'_>, root: &Tbl<'_>, daemon: &Daemon) -> Vec<Volume> {
    let mut out: Vec<Volume> = Vec::new();
    for e in r.tables(root, "volumes", Keys::of(VOLUME)) {
        let host_path = r.string(&e, "host_path").and_then(|v| match check_absolute(&v.v) {
            Ok(p) if !daemon.parsed || daemon.storage.volume_roots.iter().any(|root| p.starts_with(root)) => Some(p),
            Ok(_) => {
                // Roots written in slip.toml may be interpolated: cite them rather than print them.
                let hint = if daemon.locs.contains_key("storage.volume_roots") {
                    format!("put it under a storage.volume_roots entry ({})", daemon.cite("storage.volume_roots"))
                } else {
                    let roots: Vec<String> =
                        daemon.storage.volume_roots.iter().map(|p| p.display().to_string()).collect();
                    format!("put it under {} (the default volume root) or set storage.volume_roots", roots.join(" or "))
                };
                r.invalid(&v, "is not under storage.volume_roots", Some(hint));
                None
            }
            Err(why) => {
                r.invalid(&v, why, None);
                None
            }
        });
        if host_path.is_none() && !r.has(&e, "host_path") {
            r.missing(&e, "host_path", None);
        }
        let mount_path = r.string(&e, "mount_path").and_then(|v| match check_absolute(&v.v) {
            Ok(p) if p == std::path::Path::new("/") => {
                r.invalid(&v, "cannot be the container's root directory", None);
                None
            }
            Ok(_) => {
                if out.iter().any(|o| o.mount_path == v.v) {
                    r.invalid(&v, "is mounted twice: each [[volumes]] entry needs its own mount_path", None);
                    return None;
                }
                Some(v.v)
            }
            Err(why) => {
                r.invalid(&v, why, None);
                None
            }
        });
        if mount_path.is_none() && !r.has(&e, "mount_path") {
            r.missing(&e, "mount_path", None);
        }
        let read_only = r.boolean(&e, "read_only").unwrap_or(false);
        let containers = r.strings(&e, "containers").map(|list| {
            list.into_iter()
                .filter_map(|v| {
                    if is_dns_label(&v.v) {
                        Some(v.v)
                    } else {
                        r.invalid(&v, "is not a container name (a DNS label)", None);
                        None
                    }
                })
                .collect()
        });
        let owner = r.string(&e, "owner").and_then(|v| {
            let parsed =
                v.v.split_once(':').and_then(|(u, g)| Some(Owner { uid: u.parse().ok()?, gid: g.parse().ok()? }));
            if parsed.is_none() {
                r.invalid(&v, "is not \"uid:gid\" with numeric ids, e.g. \"1000:1000\"", None);
            }
            parsed
        });
        let preview = r.choice(&e, "preview", VolumePreview::OPTIONS).map_or(VolumePreview::Isolated, |v| v.v);
        if let (Some(host_path), Some(mount_path)) = (host_path, mount_path) {
            out.push(Volume { host_path, mount_path, read_only, containers, owner, preview });
        }
    }
    out
}
