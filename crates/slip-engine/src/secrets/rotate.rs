//! `slipd --rotate-key`: re-encrypts the secret store under a new key with no moment where a secret cannot be
//! read.
//!
//! The new key is written, complete and fsynced, next to the key file as `<key file>.new` before any secret is
//! touched. Each secret is then re-sealed under it with the store's usual atomic write, so every file holds
//! either the old key's sealing or the new one's, and both keys are on disk. Only when every file opens with the
//! new key is `<key file>.new` renamed over the key file: one atomic rename, then the directory is fsynced.
//!
//! An interrupted rotation leaves `<key file>.new` behind. slipd and the CLI then read with both keys
//! ([`load_keys`]), so every secret stays readable, and running `--rotate-key` again finishes the same rotation
//! (it keeps the new key it finds). The caller holds slipd's single-instance lock, so no running slipd writes
//! with the old key behind the rotation's back.

use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use super::{KeyFileError, MasterKey, SecretError, SecretStore};

/// The two files of a rotation: the key file (symlinks resolved, so the rename replaces the real file) and the
/// new key beside it.
#[derive(Debug, Clone)]
pub struct KeyFiles {
    /// The key file `secrets.key_file` names, resolved.
    pub current: PathBuf,
    /// `<current>.new`: the new key while a rotation has not finished.
    pub pending: PathBuf,
}

impl KeyFiles {
    /// The files of `key_file` (which must exist).
    pub fn of(key_file: &Path) -> Result<KeyFiles, KeyFileError> {
        let current = std::fs::canonicalize(key_file)
            .map_err(|source| KeyFileError::Read { path: key_file.to_path_buf(), source })?;
        let mut pending = current.clone().into_os_string();
        pending.push(".new");
        Ok(KeyFiles { current, pending: pending.into() })
    }

    fn temp(&self) -> PathBuf {
        let mut temp = self.pending.clone().into_os_string();
        temp.push(".tmp");
        temp.into()
    }
}

/// The keys slipd reads the store with: the key file's, and the new key of an unfinished rotation when
/// `<key file>.new` exists (that one only decrypts).
#[derive(Debug, Clone)]
pub struct Keys {
    /// The key of `secrets.key_file`: it writes and reads.
    pub current: MasterKey,
    /// The new key of an unfinished rotation, and its file.
    pub pending: Option<(MasterKey, PathBuf)>,
}

impl Keys {
    /// `storage`'s secret store with these keys.
    pub fn store(&self, storage: &Path) -> SecretStore {
        let store = SecretStore::new(storage).with_key(self.current.clone());
        match &self.pending {
            Some((key, _)) => store.also_reading(key.clone()),
            None => store,
        }
    }
}

/// Loads `key_file` and, when a rotation was interrupted, its `.new` key.
pub fn load_keys(key_file: &Path) -> Result<Keys, KeyFileError> {
    let current = MasterKey::load(key_file)?;
    let files = KeyFiles::of(key_file)?;
    let pending = match std::fs::symlink_metadata(&files.pending) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(source) => return Err(KeyFileError::Read { path: files.pending, source }),
        Ok(_) => Some((MasterKey::load(&files.pending)?, files.pending)),
    };
    Ok(Keys { current, pending })
}

/// A point of a rotation, for [`rotate`]'s `at` callback (fault injection and crash tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// The new key is on disk as `<key file>.new` (fsynced); no secret has been re-sealed yet.
    NewKeyWritten,
    /// This many secrets have been re-sealed under the new key so far.
    Resealed(usize),
    /// Every secret opens with the new key; the key file still holds the old one.
    Verified,
    /// The key file holds the new key.
    Swapped,
}

/// What [`rotate`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rotated {
    /// The old key's id.
    pub old_id: String,
    /// The new key's id (now in the key file).
    pub new_id: String,
    /// Whether this finished a rotation that had been interrupted.
    pub resumed: bool,
    /// Secrets re-sealed by this run.
    pub resealed: usize,
    /// Secrets in the store.
    pub total: usize,
}

/// Why a rotation stopped. Whatever the point, every secret is still readable with the old or the new key, and
/// both are on disk.
#[derive(Debug, thiserror::Error)]
pub enum RotateError {
    /// A key file cannot be read or written.
    #[error(transparent)]
    Key(#[from] KeyFileError),
    /// A secret cannot be read or re-written.
    #[error("re-encrypting the secret store (nothing was lost: run slipd --rotate-key again once this is fixed)")]
    Store(#[source] SecretError),
    /// The key file cannot be replaced.
    #[error("replacing {} with the new key {}", .current.display(), .pending.display())]
    Swap {
        /// The key file.
        current: PathBuf,
        /// The new key.
        pending: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
}

/// Rotates the key of `storage`'s secret store: `key_file` ends up holding a new key and every secret is sealed
/// with it. Calls `at` at each [`Stage`]. The caller must hold slipd's single-instance lock.
pub fn rotate(storage: &Path, key_file: &Path, at: &mut dyn FnMut(Stage)) -> Result<Rotated, RotateError> {
    let files = KeyFiles::of(key_file)?;
    let keys = load_keys(key_file)?;
    let old = keys.current;
    let (new, resumed) = match keys.pending {
        Some((key, _)) => (key, true),
        None => (write_pending(&files)?, false),
    };
    at(Stage::NewKeyWritten);

    let mut store = SecretStore::new(storage).with_key(new.clone()).also_reading(old.clone());
    // Run as root, the rewritten files must still belong to slipd's user: the store's owner, as local mode does.
    if let Ok(meta) = std::fs::metadata(storage.join("secrets")) {
        store = store.owned_by(meta.uid(), meta.gid());
    }
    let (resealed, total) = store.reseal(&mut |done| at(Stage::Resealed(done))).map_err(RotateError::Store)?;
    // Every file must open with the new key alone before the old one goes.
    SecretStore::new(storage).with_key(new.clone()).open_all().map_err(RotateError::Store)?;
    at(Stage::Verified);

    let swap = |source| RotateError::Swap { current: files.current.clone(), pending: files.pending.clone(), source };
    std::fs::rename(&files.pending, &files.current).map_err(swap)?;
    fsync_parent(&files.current).map_err(swap)?;
    at(Stage::Swapped);
    Ok(Rotated { old_id: old.id().to_owned(), new_id: new.id().to_owned(), resumed, resealed, total })
}

/// Writes a new key to `<key file>.new`, atomically (a complete temp file renamed into place) and with the key
/// file's owner and mode 0600, and fsyncs the directory, so the key is durable before anything is sealed with it.
fn write_pending(files: &KeyFiles) -> Result<MasterKey, KeyFileError> {
    let temp = files.temp();
    let create = |source| KeyFileError::Create { path: files.pending.clone(), source };
    // A temp file left by a rotation interrupted while writing it: no secret was sealed with it.
    match std::fs::remove_file(&temp) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(create(e)),
        _ => {}
    }
    let owner = std::fs::metadata(&files.current)
        .map_err(|source| KeyFileError::Read { path: files.current.clone(), source })?;
    let key = MasterKey::generate();
    let written = (|| {
        let mut file: File = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&temp)?;
        file.write_all(format!("{}\n", key.hex()).as_bytes())?;
        std::os::unix::fs::fchown(&file, Some(owner.uid()), Some(owner.gid()))?;
        file.sync_all()?;
        std::fs::rename(&temp, &files.pending)?;
        fsync_parent(&files.pending)
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&temp);
        return Err(create(e));
    }
    Ok(key)
}

/// fsyncs the directory holding `path`, so a rename into it is durable.
fn fsync_parent(path: &Path) -> io::Result<()> {
    let parent = path.parent().unwrap_or(Path::new("/"));
    File::open(parent)?.sync_all()
}

#[cfg(test)]
mod tests;
