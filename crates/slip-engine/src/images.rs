//! Images: obtaining a release's image (without pulling when a pinned digest is already local), the disk
//! preflight before a pull, and retention with pruning (SPEC §12, §7.6).
//!
//! Retention keeps, per app, the images of the last `deploy.keep_images` completed releases (current and
//! previous are always among them), plus every image a live instance runs or an unfinished deploy names.
//! Everything else that slip pulled (rows in the store's `images` table) is removed by reference without force:
//! the tag it was pulled as when that tag still names the same image, then `repo@sha256:…`. An engine that
//! refuses (the image is in use) is skipped and the row kept for the next round. Images slip did not pull have
//! no row and are never touched, and neither has an image the host already had under the reference slip
//! pulled (a pull that brings nothing new is not recorded).
//!
//! This module does not decide when to prune (the daemon calls [`prune_app`] after a completed deploy, and the
//! preflight calls [`prune_all`] when disk is short) and does not talk to registries beyond the runtime's pull.

use std::collections::HashSet;
use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use slip_core::deploy::{ErrorCode, StepFailure};
use slip_core::names::AppName;

use crate::clock::unix_ms;
use crate::engine::Engine;
use crate::ports::PulledImage;
use crate::release::Release;
use crate::store::{DeployFilter, DeployRow, DeployStatus, ImageRow, NoteKind, StoreError};

pub use crate::image_policy::{DEFAULT_KEEP_IMAGES, DEFAULT_MIN_FREE_DISK, ImagePolicy};

/// How a release's image was obtained.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Obtained {
    /// The local image.
    pub image: PulledImage,
    /// True when slip brought it onto the host now; false when it was already local (a pinned digest that is
    /// retained, or an image the host had before under the same reference).
    pub pulled: bool,
}

/// What the disk preflight concluded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disk {
    /// At least the required space is free.
    Enough,
    /// Less than required is free.
    Short {
        /// Bytes free for unprivileged use.
        free: u64,
        /// `runtime.min_free_disk`.
        required: u64,
    },
}

/// Compares free space with the requirement (the preflight's decision, separate so it can be tested).
pub fn judge(free: u64, required: u64) -> Disk {
    if free >= required { Disk::Enough } else { Disk::Short { free, required } }
}

/// The `disk_full` error text of SPEC §12, e.g. "only 1.2 GiB free on /var/lib/docker; 2 GiB required
/// (runtime.min_free_disk). Free space or lower deploy.keep_images."
pub fn disk_full_message(free: u64, required: u64, path: &Path) -> String {
    format!(
        "only {} free on {}; {} required (runtime.min_free_disk). Free space or lower deploy.keep_images.",
        human_bytes(free),
        path.display(),
        human_bytes(required)
    )
}

/// Bytes available to unprivileged users on the filesystem holding `path` (`statvfs`: `f_bavail × f_frsize`).
pub fn free_bytes(path: &Path) -> io::Result<u64> {
    let st = rustix::fs::statvfs(path).map_err(io::Error::from)?;
    Ok(st.f_bavail.saturating_mul(st.f_frsize))
}

/// The image of `release`: a digest reference that is already local is used as it is (no registry is
/// contacted, so a rollback works with the registry down); anything else goes through the disk preflight and
/// is pulled.
pub async fn obtain(engine: &Engine, release: &Release) -> Result<Obtained, StepFailure> {
    if is_digest_reference(&release.image)
        && let Ok(Some(local)) = engine.image_store.local_image(&release.image).await
    {
        let note = format!("{} is retained locally; not pulled", release.image);
        if let Err(e) = engine.store.record_event(&release.deploy_id, NoteKind::Log, &note, None, unix_ms()) {
            tracing::error!(error = %e, "recording a deploy event");
        }
        return Ok(Obtained { image: local, pulled: false });
    }
    preflight(engine).await?;
    // An image the host already had under this reference (one built on the server, say) was not brought by
    // slip: it is used, but not recorded as pulled, so retention never removes it. A tag that moved in the
    // registry pulls a different image, which slip did bring.
    let before = engine.image_store.local_image(&release.image).await.ok().flatten();
    let image = engine.image_store.pull(&release.image, release.credentials.as_ref()).await?;
    let pulled = before.is_none_or(|before| before.id != image.id);
    Ok(Obtained { image, pulled })
}

/// The disk preflight of SPEC §12: free space on the engine's image store below `runtime.min_free_disk` →
/// prune every app's unretained images and measure again → still short: `disk_full`.
pub async fn preflight(engine: &Engine) -> Result<(), StepFailure> {
    let policy = &engine.images;
    let Some(root) = &policy.engine_root else { return Ok(()) };
    let Some(free) = measure(root) else { return Ok(()) };
    if judge(free, policy.min_free_disk) == Disk::Enough {
        return Ok(());
    }
    let removed = prune_all(engine).await;
    tracing::warn!(free, required = policy.min_free_disk, pruned = removed.len(), "disk short before a pull");
    let Some(free) = measure(root) else { return Ok(()) };
    match judge(free, policy.min_free_disk) {
        Disk::Enough => Ok(()),
        Disk::Short { free, required } => {
            Err(StepFailure::new(ErrorCode::DiskFull, disk_full_message(free, required, root)))
        }
    }
}

/// Removes `app`'s unretained images (SPEC §12); returns the references removed.
pub async fn prune_app(engine: &Engine, app: &AppName) -> Vec<String> {
    match prune_candidates(engine, Some(app)) {
        Ok(rows) => remove_all(engine, rows).await,
        Err(e) => {
            tracing::warn!(app = %app, error = %e, "image pruning skipped: cannot read the store");
            Vec::new()
        }
    }
}

/// Removes every app's unretained images; returns the references removed.
pub async fn prune_all(engine: &Engine) -> Vec<String> {
    match prune_candidates(engine, None) {
        Ok(rows) => remove_all(engine, rows).await,
        Err(e) => {
            tracing::warn!(error = %e, "image pruning skipped: cannot read the store");
            Vec::new()
        }
    }
}

/// Of `images`, the ones whose digest is not in `retained` (the pure half of pruning).
pub fn unretained<'a>(images: &'a [ImageRow], retained: &HashSet<String>) -> Vec<&'a ImageRow> {
    images.iter().filter(|row| !retained.contains(&row.digest)).collect()
}

/// The `sha256:…` digests named by a deploy's `images` and `digests` JSON objects.
pub fn deploy_digests(row: &DeployRow) -> Vec<String> {
    [Some(row.images.as_str()), row.digests.as_deref()]
        .into_iter()
        .flatten()
        .filter_map(|json| serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(json).ok())
        .flat_map(|map| map.into_iter().filter_map(|(_, v)| v.as_str().and_then(digest_of).map(str::to_owned)))
        .collect()
}

/// The `sha256:…` part of `repo@sha256:…`, or of a bare `sha256:…`.
pub fn digest_of(reference: &str) -> Option<&str> {
    let digest = reference.rsplit_once('@').map(|(_, d)| d).unwrap_or(reference);
    digest.starts_with("sha256:").then_some(digest)
}

fn is_digest_reference(reference: &str) -> bool {
    reference.rsplit_once('@').is_some_and(|(_, d)| d.starts_with("sha256:"))
}

/// Image rows (of `app`, or of every app) that retention no longer keeps. An image is kept when any app
/// retains it (two apps may run the same digest), a live instance runs it or an unfinished deploy names it.
fn prune_candidates(engine: &Engine, app: Option<&AppName>) -> Result<Vec<ImageRow>, StoreError> {
    let store = &engine.store;
    let all = store.all_images()?;
    let mut retained: HashSet<String> = store.unfinished()?.iter().flat_map(deploy_digests).collect();
    for instance in store.all_live_instances()? {
        if let Some(row) = store.deploy(&instance.deploy_id)? {
            retained.extend(deploy_digests(&row));
        }
    }
    let apps: HashSet<AppName> = all.iter().map(|r| r.app.clone()).collect();
    for app in &apps {
        retained.extend(kept_releases(engine, app)?);
    }
    let rows: Vec<ImageRow> = all.into_iter().filter(|r| app.is_none_or(|a| r.app == *a)).collect();
    Ok(unretained(&rows, &retained).into_iter().cloned().collect())
}

/// Digests of `app`'s last `keep_images` completed production releases.
fn kept_releases(engine: &Engine, app: &AppName) -> Result<Vec<String>, StoreError> {
    let keep = engine.images.keep_for(app);
    let mut digests = Vec::new();
    let mut releases = 0;
    let mut before = None;
    loop {
        let filter = DeployFilter {
            app: Some(app.clone()),
            status: Some(DeployStatus::Completed),
            limit: Some(crate::store::MAX_PAGE),
            before: before.clone(),
            ..DeployFilter::default()
        };
        let (rows, next) = engine.store.list_deploys(&filter)?;
        for row in rows.iter().filter(|r| r.preview_id.is_none()) {
            if releases == keep {
                return Ok(digests);
            }
            digests.extend(deploy_digests(row));
            releases += 1;
        }
        match next {
            Some(next) => before = Some(next),
            None => return Ok(digests),
        }
    }
}

async fn remove_all(engine: &Engine, rows: Vec<ImageRow>) -> Vec<String> {
    let mut removed = Vec::new();
    for row in rows {
        let by_digest = format!("{}@{}", row.repository, row.digest);
        match remove_one(engine, &row, &by_digest).await {
            Ok(()) => {
                tracing::info!(app = %row.app, image = by_digest, "image pruned");
                if let Err(e) = engine.store.forget_image(&row.app, &row.repository, &row.digest) {
                    tracing::warn!(app = %row.app, image = by_digest, error = %e, "forgetting a pruned image");
                }
                removed.push(by_digest);
            }
            Err(e) => tracing::info!(app = %row.app, image = by_digest, error = %e, "image kept: the engine refused"),
        }
    }
    crate::telemetry::images_pruned(removed.len());
    removed
}

/// Removes the tag the image was pulled as (when it still names this image), then the digest reference.
async fn remove_one(engine: &Engine, row: &ImageRow, by_digest: &str) -> Result<(), crate::ports::RuntimeError> {
    let runtime = &engine.image_store;
    let Some(image) = runtime.local_image(by_digest).await? else {
        return Ok(());
    };
    if let Some(tag) = &row.tag {
        let by_tag = row.repository.with_tag(tag);
        if by_tag != by_digest
            && let Some(tagged) = runtime.local_image(&by_tag).await?
            && tagged.id == image.id
        {
            runtime.remove_image(&by_tag).await?;
        }
    }
    runtime.remove_image(by_digest).await
}

/// Free space at `root`, or `None` (warned once per process) when it cannot be measured.
fn measure(root: &Path) -> Option<u64> {
    static WARNED: AtomicBool = AtomicBool::new(false);
    match free_bytes(root) {
        Ok(free) => Some(free),
        Err(e) => {
            if !WARNED.swap(true, Ordering::Relaxed) {
                tracing::warn!(path = %root.display(), error = %e, "cannot measure free disk; skipping the preflight");
            }
            None
        }
    }
}

/// `1.2 GiB`, `512 MiB`, `900 B`.
fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 || value.fract() < 0.05 {
        format!("{value:.0} {}", UNITS[unit])
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_preflight_passes_at_the_threshold_and_fails_below_it() {
        assert_eq!(judge(2 << 30, 2 << 30), Disk::Enough);
        assert_eq!(judge(3 << 30, 2 << 30), Disk::Enough);
        assert_eq!(judge((2 << 30) - 1, 2 << 30), Disk::Short { free: (2 << 30) - 1, required: 2 << 30 });
    }

    #[test]
    fn the_disk_full_message_names_the_path_the_amounts_and_the_way_out() {
        let text = disk_full_message(1288490189, 2 << 30, Path::new("/var/lib/docker"));
        assert_eq!(
            text,
            "only 1.2 GiB free on /var/lib/docker; 2 GiB required (runtime.min_free_disk). Free space or lower \
             deploy.keep_images."
        );
    }

    #[test]
    fn free_space_of_a_real_directory_is_measured() {
        let dir = tempfile::tempdir().unwrap();
        assert!(free_bytes(dir.path()).unwrap() > 0);
        assert!(free_bytes(Path::new("/no/such/slip/dir")).is_err());
    }

    #[test]
    fn digests_come_from_images_and_digests_columns() {
        assert_eq!(digest_of("127.0.0.1:5000/web@sha256:ab"), Some("sha256:ab"));
        assert_eq!(digest_of("sha256:cd"), Some("sha256:cd"));
        assert_eq!(digest_of("127.0.0.1:5000/web:v1"), None);
        assert!(is_digest_reference("r/web@sha256:ab") && !is_digest_reference("r/web:v1"));
    }

    #[test]
    fn only_unretained_digests_are_pruned() {
        let row = |digest: &str| ImageRow {
            app: "web".parse().unwrap(),
            repository: "registry.test/web".parse().unwrap(),
            digest: digest.into(),
            tag: None,
            pulled_at: 0,
            last_used_at: 0,
        };
        let images = [row("sha256:1"), row("sha256:2"), row("sha256:3")];
        let retained: HashSet<String> = ["sha256:2".to_owned()].into();
        let pruned: Vec<&str> = unretained(&images, &retained).iter().map(|r| r.digest.as_str()).collect();
        assert_eq!(pruned, ["sha256:1", "sha256:3"]);
    }
}
