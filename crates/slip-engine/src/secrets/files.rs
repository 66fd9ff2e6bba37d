//! File access under the store's root: every file is reached with `*at` calls relative to its directory's
//! descriptor, directories are created 0700 and files 0600 at creation, and writes are atomic renames.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, Mode, OFlags, RenameFlags};
use rustix::io::Errno;
use slip_core::names::AppName;

use super::SecretStore;
use super::names::{Scope, SecretError, SecretKey};

/// The directory, under each app's directory, that holds preview-scope secrets.
const PREVIEW_DIR: &str = ".preview";

/// The per-install HMAC key for fingerprints, in the store's root.
const FINGERPRINT_KEY: &str = ".fingerprint-key";

impl SecretStore {
    /// Writes `content` as `key` in `dir` atomically (temp file 0600, fsync, rename, fsync the directory);
    /// `true` when the key did not exist before.
    pub(super) fn write_at(
        &self,
        dir: &OwnedFd,
        app: &AppName,
        scope: Scope,
        key: &SecretKey,
        content: &str,
    ) -> Result<bool, SecretError> {
        let path = self.path_of(app, scope, Some(key.as_str()));
        let io = |op: &'static str| {
            let path = path.clone();
            move |e: io::Error| SecretError::Io { op, path, source: e }
        };
        let tmp = format!(".tmp-{key}-{:016x}", rand::random::<u64>());
        let fd = rustix::fs::openat(
            dir,
            tmp.as_str(),
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o600),
        )
        .map_err(|e| io("create a temp file for")(e.into()))?;
        let mut file = File::from(fd);
        let written = (|| {
            file.write_all(content.as_bytes())?;
            if let Some((uid, gid)) = self.owner {
                std::os::unix::fs::fchown(&file, Some(uid), Some(gid))?;
            }
            file.sync_all()
        })();
        drop(file);
        if let Err(e) = written {
            let _ = rustix::fs::unlinkat(dir, tmp.as_str(), AtFlags::empty());
            return Err(io("write")(e));
        }
        let created = match rename_replacing(dir, &tmp, key.as_str()) {
            Ok(created) => created,
            Err(e) => {
                let _ = rustix::fs::unlinkat(dir, tmp.as_str(), AtFlags::empty());
                return Err(io("rename a temp file onto")(e));
            }
        };
        rustix::fs::fsync(dir).map_err(|e| io("fsync the directory of")(e.into()))?;
        Ok(created)
    }

    /// The path of an app's scope directory, or of a key in it (for messages).
    pub(super) fn path_of(&self, app: &AppName, scope: Scope, key: Option<&str>) -> PathBuf {
        let mut path = self.root.join(app.as_str());
        if scope == Scope::Preview {
            path.push(PREVIEW_DIR);
        }
        if let Some(key) = key {
            path.push(key);
        }
        path
    }

    /// Opens the store's root directory, creating it (and the storage directory, 0750) when `create`.
    pub(super) fn root_dir(&self, create: bool) -> Result<Option<OwnedFd>, SecretError> {
        let io = |op: &'static str, path: &Path| {
            let path = path.to_path_buf();
            move |e: io::Error| SecretError::Io { op, path, source: e }
        };
        if create {
            if let Some(storage) = self.root.parent()
                && !storage.exists()
            {
                std::fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o750)
                    .create(storage)
                    .map_err(io("create the storage directory", storage))?;
            }
            match std::fs::DirBuilder::new().mode(0o700).create(&self.root) {
                Ok(()) => {
                    if let Some((uid, gid)) = self.owner {
                        std::os::unix::fs::chown(&self.root, Some(uid), Some(gid))
                            .map_err(io("set the owner of", &self.root))?;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(io("create", &self.root)(e)),
            }
        }
        match rustix::fs::open(
            &self.root,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        ) {
            Ok(fd) => Ok(Some(fd)),
            Err(Errno::NOENT) if !create => Ok(None),
            Err(e) => Err(io("open", &self.root)(e.into())),
        }
    }

    /// Opens (and with `create`, makes) the directory of an app's scope.
    pub(super) fn scope_dir(&self, app: &AppName, scope: Scope, create: bool) -> Result<Option<OwnedFd>, SecretError> {
        let Some(root) = self.root_dir(create)? else { return Ok(None) };
        let Some(app_dir) = self.subdir(&root, app.as_str(), create, &self.path_of(app, Scope::App, None))? else {
            return Ok(None);
        };
        match scope {
            Scope::App => Ok(Some(app_dir)),
            Scope::Preview => self.subdir(&app_dir, PREVIEW_DIR, create, &self.path_of(app, Scope::Preview, None)),
        }
    }

    pub(super) fn subdir(
        &self,
        parent: &OwnedFd,
        name: &str,
        create: bool,
        path: &Path,
    ) -> Result<Option<OwnedFd>, SecretError> {
        let io = |op: &'static str| {
            let path = path.to_path_buf();
            move |e: Errno| SecretError::Io { op, path, source: e.into() }
        };
        if create {
            match rustix::fs::mkdirat(parent, name, Mode::from_raw_mode(0o700)) {
                Ok(()) => {
                    if let Some((uid, gid)) = self.owner {
                        let fd = open_dir_at(parent, name).map_err(io("open"))?;
                        std::os::unix::fs::fchown(&fd, Some(uid), Some(gid)).map_err(|e| SecretError::Io {
                            op: "set the owner of",
                            path: path.to_path_buf(),
                            source: e,
                        })?;
                    }
                    rustix::fs::fsync(parent).map_err(io("fsync the parent of"))?;
                }
                Err(Errno::EXIST) => {}
                Err(e) => return Err(io("create")(e)),
            }
        }
        match open_dir_at(parent, name) {
            Ok(fd) => Ok(Some(fd)),
            Err(Errno::NOENT) if !create => Ok(None),
            Err(e) => Err(io("open")(e)),
        }
    }

    /// The valid keys in a scope directory, sorted. Dotfiles (temp files, `.preview`) and anything that is
    /// not a valid key are skipped.
    pub(super) fn keys_in(&self, dir: &OwnedFd, app: &AppName, scope: Scope) -> Result<Vec<SecretKey>, SecretError> {
        let path = self.path_of(app, scope, None);
        let entries = rustix::fs::Dir::read_from(dir).map_err(|e| SecretError::Io {
            op: "list",
            path: path.clone(),
            source: e.into(),
        })?;
        let mut keys = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| SecretError::Io { op: "list", path: path.clone(), source: e.into() })?;
            let Ok(name) = entry.file_name().to_str() else { continue };
            if let Ok(key) = name.parse::<SecretKey>() {
                keys.push(key);
            }
        }
        keys.sort();
        Ok(keys)
    }

    /// Reads one key's file content (without a trailing newline) and mtime.
    pub(super) fn read_raw_at(
        &self,
        dir: &OwnedFd,
        app: &AppName,
        scope: Scope,
        key: &SecretKey,
    ) -> Result<Option<(String, i64)>, SecretError> {
        let path = self.path_of(app, scope, Some(key.as_str()));
        let io = |e: io::Error| SecretError::Io { op: "read", path: path.clone(), source: e };
        let fd = match rustix::fs::openat(
            dir,
            key.as_str(),
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NONBLOCK,
            Mode::empty(),
        ) {
            Ok(fd) => fd,
            Err(Errno::NOENT | Errno::LOOP) => return Ok(None),
            Err(e) => return Err(io(e.into())),
        };
        let mut file = File::from(fd);
        let meta = file.metadata().map_err(io)?;
        if !meta.is_file() {
            return Ok(None);
        }
        let mut text = String::new();
        file.read_to_string(&mut text).map_err(io)?;
        if text.ends_with('\n') {
            text.pop();
        }
        let updated_at = meta.mtime() * 1000 + meta.mtime_nsec() / 1_000_000;
        Ok(Some((text, updated_at)))
    }

    /// The per-install fingerprint key, created (32 random bytes, hex, 0600) the first time it is needed.
    pub(super) fn fingerprint_key(&self) -> Result<Vec<u8>, SecretError> {
        let path = self.root.join(FINGERPRINT_KEY);
        let io = |op: &'static str| {
            let path = path.clone();
            move |e: io::Error| SecretError::Io { op, path, source: e }
        };
        let root = self.root_dir(true)?.expect("created");
        let read = |root: &OwnedFd| -> Result<Option<Vec<u8>>, SecretError> {
            match rustix::fs::openat(
                root,
                FINGERPRINT_KEY,
                OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            ) {
                Ok(fd) => {
                    let mut text = String::new();
                    File::from(fd).read_to_string(&mut text).map_err(io("read"))?;
                    let key = hex::decode(text.trim()).map_err(|e| {
                        io("read")(io::Error::new(io::ErrorKind::InvalidData, format!("not a hex key: {e}")))
                    })?;
                    Ok(Some(key))
                }
                Err(Errno::NOENT) => Ok(None),
                Err(e) => Err(io("open")(e.into())),
            }
        };
        if let Some(key) = read(&root)? {
            return Ok(key);
        }
        let key: [u8; 32] = rand::random();
        let tmp = format!(".tmp-fingerprint-{:016x}", rand::random::<u64>());
        let fd = rustix::fs::openat(
            &root,
            tmp.as_str(),
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o600),
        )
        .map_err(|e| io("create")(e.into()))?;
        let mut file = File::from(fd);
        let written = (|| {
            file.write_all(hex::encode(key).as_bytes())?;
            if let Some((uid, gid)) = self.owner {
                std::os::unix::fs::fchown(&file, Some(uid), Some(gid))?;
            }
            file.sync_all()
        })();
        drop(file);
        let result = written.and_then(|()| rename_if_absent(&root, &tmp, FINGERPRINT_KEY));
        let _ = rustix::fs::unlinkat(&root, tmp.as_str(), AtFlags::empty());
        match result {
            // Another writer won the race: use its key, so every fingerprint agrees.
            Ok(false) => read(&root)?.ok_or_else(|| io("read")(io::ErrorKind::NotFound.into())),
            Ok(true) => {
                rustix::fs::fsync(&root).map_err(|e| io("fsync the directory of")(e.into()))?;
                Ok(key.to_vec())
            }
            Err(e) => Err(io("write")(e)),
        }
    }
}

fn open_dir_at(parent: &OwnedFd, name: &str) -> Result<OwnedFd, Errno> {
    rustix::fs::openat(
        parent,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
}

/// Renames `tmp` onto `name` in `dir` only when `name` does not exist: `Ok(false)` (and `tmp` left in place)
/// when it does. Atomic: `RENAME_NOREPLACE`, or a hard link on filesystems without it.
fn rename_if_absent(dir: &impl AsFd, tmp: &str, name: &str) -> io::Result<bool> {
    match rustix::fs::renameat_with(dir, tmp, dir, name, RenameFlags::NOREPLACE) {
        Ok(()) => Ok(true),
        Err(Errno::EXIST) => Ok(false),
        Err(Errno::INVAL | Errno::NOSYS) => match rustix::fs::linkat(dir, tmp, dir, name, AtFlags::empty()) {
            Ok(()) => {
                rustix::fs::unlinkat(dir, tmp, AtFlags::empty())?;
                Ok(true)
            }
            Err(Errno::EXIST) => Ok(false),
            Err(e) => Err(e.into()),
        },
        Err(e) => Err(e.into()),
    }
}

/// Renames `tmp` onto `name` in `dir`, replacing it; `Ok(true)` when `name` did not exist before.
fn rename_replacing(dir: &impl AsFd, tmp: &str, name: &str) -> io::Result<bool> {
    if rename_if_absent(dir, tmp, name)? {
        return Ok(true);
    }
    rustix::fs::renameat(dir, tmp, dir, name)?;
    Ok(false)
}

/// Tightens `path` to `max` (e.g. 0600) when it is looser, recording a warning; errors on a foreign owner.
pub(super) fn tighten(path: &Path, max: u32, uid: u32, warnings: &mut Vec<String>) -> Result<(), SecretError> {
    use std::os::unix::fs::PermissionsExt;
    let meta =
        std::fs::symlink_metadata(path).map_err(|e| SecretError::Io { op: "inspect", path: path.into(), source: e })?;
    if meta.uid() != uid {
        return Err(SecretError::ForeignOwner { path: path.into(), uid: meta.uid(), expected: uid });
    }
    let mode = meta.permissions().mode() & 0o777;
    if mode & !max != 0 {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode & max)).map_err(|e| SecretError::Io {
            op: "tighten the mode of",
            path: path.into(),
            source: e,
        })?;
        warnings.push(format!("{} had mode {mode:04o}; tightened to {:04o}", path.display(), mode & max));
    }
    Ok(())
}
