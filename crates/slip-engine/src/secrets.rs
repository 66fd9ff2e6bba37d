//! The per-app secret store (SPEC §11.1): one file per key, `<storage>/secrets/<app>/<KEY>` for the app
//! scope and `<storage>/secrets/<app>/.preview/<KEY>` for the preview scope, the first implementation's
//! layout, so existing stores keep working.
//!
//! Every name is validated before any filesystem call ([`SecretKey`] and `AppName` cannot hold `.` or `/`),
//! and every file is reached with `*at` calls relative to its directory's descriptor, so no key can name a
//! path outside the store. Directories are created 0700 and files 0600 *at creation*: a value is written to a
//! temp file in the same directory (opened `O_CREAT|O_EXCL|O_NOFOLLOW`, mode 0600), fsynced, renamed over the
//! key, and the directory is fsynced. Nothing is ever chmod-ed to a looser mode, not even briefly.
//!
//! Values never leave this module except through [`SecretStore::value`] and [`SecretStore::values`] (for
//! injection, webhook keys and redaction), wrapped in [`SecretValue`] whose `Debug` shows no content. Metadata
//! carries a `fingerprint`: the first 12 hex characters of HMAC-SHA256 under a per-install key
//! (`<storage>/secrets/.fingerprint-key`, 32 random bytes, 0600) of `app|scope|KEY|value`, so a change is
//! visible without the value being guessable from it.
//!
//! Encryption at rest (SPEC §11.2) applies when the store has a [`MasterKey`] (`secrets.key_file`): each file
//! then holds `slipenc:v1:<key id>:<base64(nonce ‖ ciphertext)>`, XChaCha20-Poly1305 with a random 24-byte nonce
//! and the AAD `slip/<app>/<scope>/<KEY>`, so a file copied to another app, scope or key fails authentication.
//! The key id is the first 8 hex characters of SHA-256(key). Fingerprints are computed from the plaintext, so
//! turning encryption on does not change them. Plain files are still read when a key is set (slipd re-encrypts
//! them at start-up, [`SecretStore::encrypt_plain_files`]); an encrypted file read without a key is an error.
//! slipd builds one store at boot with its key ([`SecretStore::with_key`]) and passes it wherever secrets are
//! read or written, so no call site can forget the key; the CLI's local mode does the same.
//!
//! Layout: `names` (keys, scopes, values and [`SecretError`]), `crypto` (the master key, sealing, fingerprints)
//! and `files` (the `*at` file access); this file is the store's API.
//!
//! This module does not log and does not decide who may call it: the daemon's API checks the admin token, the
//! CLI's local mode relies on filesystem permissions.

use std::io;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use rustix::fs::AtFlags;
use rustix::io::Errno;
use slip_core::names::AppName;

// By concern: key names and scopes (with the error type), encryption, and `*at` file access.
mod crypto;
mod files;
mod names;
pub mod rotate;

use crypto::{ENCRYPTED_PREFIX, SealError, fingerprint, open_sealed, seal};
pub use crypto::{KeyFileError, MasterKey};
use files::tighten;
pub use names::{Scope, SecretError, SecretKey, SecretValue, WEBHOOK_KEYS, check_settable};

/// What [`SecretStore::each_file`] calls with each file: its directory, app, scope, key and raw content.
type EachFile<'a> = dyn FnMut(&OwnedFd, &AppName, Scope, &SecretKey, &str) -> Result<(), SecretError> + 'a;

/// Values shorter than this cannot be redacted safely (SPEC §11.4); `slip secrets set` warns about them.
pub const MIN_REDACTABLE_LEN: usize = crate::redact::MIN_REDACTABLE_LEN;

/// What the API may say about a secret: everything except its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretMeta {
    /// The key.
    pub key: SecretKey,
    /// Its scope.
    pub scope: Scope,
    /// Last write, Unix milliseconds (the file's mtime).
    pub updated_at: i64,
    /// First 12 hex characters of HMAC-SHA256(install key, `app|scope|KEY|value`).
    pub fingerprint: String,
}

/// The result of [`SecretStore::set`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Written {
    /// True when the key did not exist before.
    pub created: bool,
    /// The new file's mtime, Unix milliseconds.
    pub updated_at: i64,
}

/// The secret store under one storage directory. Cheap to clone; holds no open descriptors.
#[derive(Debug, Clone)]
pub struct SecretStore {
    root: PathBuf,
    owner: Option<(u32, u32)>,
    key: Option<MasterKey>,
    /// Keys that only decrypt: the other key of an unfinished `slipd --rotate-key` ([`rotate`]).
    also: Vec<MasterKey>,
}

impl SecretStore {
    /// The store of `storage` (`storage.path`): `<storage>/secrets`, without a key ([`SecretStore::with_key`]
    /// adds one).
    pub fn new(storage: &Path) -> SecretStore {
        SecretStore { root: storage.join("secrets"), owner: None, key: None, also: Vec::new() }
    }

    /// Encrypts every value this store writes with `key`, and decrypts with it (SPEC §11.2).
    pub fn with_key(mut self, key: MasterKey) -> SecretStore {
        self.key = Some(key);
        self
    }

    /// Also decrypts files sealed with `key` (never writes with it): the new key of a rotation that has not
    /// finished, so every secret stays readable whichever key sealed it.
    pub fn also_reading(mut self, key: MasterKey) -> SecretStore {
        self.also.push(key);
        self
    }

    /// The key this store writes with, if any.
    pub fn key(&self) -> Option<&MasterKey> {
        self.key.as_ref()
    }

    /// Makes every file and directory this store creates belong to `uid:gid` (set on the open descriptor
    /// before the file is renamed into place). The CLI's local mode uses the storage directory's owner, so a
    /// secret written with `sudo` is readable by slipd's user.
    pub fn owned_by(mut self, uid: u32, gid: u32) -> SecretStore {
        self.owner = Some((uid, gid));
        self
    }

    /// `<storage>/secrets`.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Metadata of an app's secrets in `scope` (both scopes when `None`), sorted by scope then key. An app
    /// without secrets has an empty list.
    pub fn list(&self, app: &AppName, scope: Option<Scope>) -> Result<Vec<SecretMeta>, SecretError> {
        let scopes = match scope {
            Some(s) => vec![s],
            None => vec![Scope::App, Scope::Preview],
        };
        let mut out = Vec::new();
        let mut fingerprint_key = None;
        for scope in scopes {
            let Some(dir) = self.scope_dir(app, scope, false)? else { continue };
            for key in self.keys_in(&dir, app, scope)? {
                let Some((value, updated_at)) = self.read_at(&dir, app, scope, &key)? else { continue };
                let fk = match &fingerprint_key {
                    Some(k) => k,
                    None => fingerprint_key.insert(self.fingerprint_key()?),
                };
                let fingerprint = fingerprint(fk, app, scope, &key, &value);
                out.push(SecretMeta { key, scope, updated_at, fingerprint });
            }
        }
        Ok(out)
    }

    /// Metadata of one secret, or `None` when it does not exist.
    pub fn get(&self, app: &AppName, scope: Scope, key: &SecretKey) -> Result<Option<SecretMeta>, SecretError> {
        let Some(dir) = self.scope_dir(app, scope, false)? else { return Ok(None) };
        let Some((value, updated_at)) = self.read_at(&dir, app, scope, key)? else { return Ok(None) };
        let fingerprint = fingerprint(&self.fingerprint_key()?, app, scope, key, &value);
        Ok(Some(SecretMeta { key: key.clone(), scope, updated_at, fingerprint }))
    }

    /// The value of one secret, or `None` when it does not exist.
    pub fn value(&self, app: &AppName, scope: Scope, key: &SecretKey) -> Result<Option<SecretValue>, SecretError> {
        let Some(dir) = self.scope_dir(app, scope, false)? else { return Ok(None) };
        Ok(self.read_at(&dir, app, scope, key)?.map(|(v, _)| v))
    }

    /// Every secret of an app in `scope`, sorted by key: for container injection and redaction.
    pub fn values(&self, app: &AppName, scope: Scope) -> Result<Vec<(SecretKey, SecretValue)>, SecretError> {
        let Some(dir) = self.scope_dir(app, scope, false)? else { return Ok(Vec::new()) };
        let mut out = Vec::new();
        for key in self.keys_in(&dir, app, scope)? {
            if let Some((value, _)) = self.read_at(&dir, app, scope, &key)? {
                out.push((key, value));
            }
        }
        Ok(out)
    }

    /// Writes `value` as `key` atomically (SPEC §11.1), creating the directories 0700 and the file 0600.
    /// A single trailing newline is not part of a value (files written with `echo` keep working), so it is
    /// dropped here too. Refuses reserved keys ([`check_settable`]) and empty values.
    pub fn set(&self, app: &AppName, scope: Scope, key: &SecretKey, value: &str) -> Result<Written, SecretError> {
        check_settable(key, scope)?;
        let value = value.strip_suffix('\n').unwrap_or(value);
        if value.is_empty() {
            return Err(SecretError::EmptyValue { key: key.clone() });
        }
        let dir = self.scope_dir(app, scope, true)?.expect("created");
        let content = match &self.key {
            Some(master) => seal(master, app, scope, key, value),
            None => value.to_owned(),
        };
        let created = self.write_at(&dir, app, scope, key, &content)?;
        let updated_at = match self.read_at(&dir, app, scope, key)? {
            Some((_, at)) => at,
            None => 0,
        };
        Ok(Written { created, updated_at })
    }

    /// Re-encrypts every plain secret file under the store's key (slipd's start-up migration, SPEC §11.2) and
    /// returns how many there were. Without a key this does nothing. Files that are already encrypted are
    /// left alone, even under another key (reading them reports that).
    pub fn encrypt_plain_files(&self) -> Result<usize, SecretError> {
        let Some(master) = &self.key else { return Ok(0) };
        let mut count = 0;
        self.each_file(&mut |dir, app, scope, key, text| {
            if text.starts_with(ENCRYPTED_PREFIX) || text.is_empty() {
                return Ok(());
            }
            self.write_at(dir, app, scope, key, &seal(master, app, scope, key, text))?;
            count += 1;
            Ok(())
        })?;
        Ok(count)
    }

    /// Re-encrypts under the store's key every file that is not sealed with it yet (plain, or sealed with a key
    /// of [`SecretStore::also_reading`]), one atomic write per file, calling `after_each` after each write with
    /// the count so far. A file no key of the store opens stops it with that file's error, before any later
    /// file is touched. Returns (files rewritten, files in the store).
    pub fn reseal(&self, after_each: &mut dyn FnMut(usize)) -> Result<(usize, usize), SecretError> {
        let Some(master) = &self.key else { return Ok((0, 0)) };
        let (mut rewritten, mut total) = (0, 0);
        self.each_file(&mut |dir, app, scope, key, text| {
            if text.is_empty() {
                return Ok(());
            }
            total += 1;
            if crypto::sealed_with(text) == Some(master.id()) {
                return Ok(());
            }
            let Some((value, _)) = self.read_at(dir, app, scope, key)? else { return Ok(()) };
            self.write_at(dir, app, scope, key, &seal(master, app, scope, key, value.expose()))?;
            rewritten += 1;
            after_each(rewritten);
            Ok(())
        })?;
        Ok((rewritten, total))
    }

    /// Reads (and decrypts) every secret in the store; returns how many there are. The first one that cannot be
    /// read is the error.
    pub fn open_all(&self) -> Result<usize, SecretError> {
        let mut count = 0;
        self.each_file(&mut |dir, app, scope, key, _| {
            if self.read_at(dir, app, scope, key)?.is_some() {
                count += 1;
            }
            Ok(())
        })?;
        Ok(count)
    }

    /// Calls `f` with every secret file's directory, app, scope, key and raw content, apps in name order.
    fn each_file(&self, f: &mut EachFile<'_>) -> Result<(), SecretError> {
        let entries = match std::fs::read_dir(&self.root) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(SecretError::Io { op: "list", path: self.root.clone(), source: e }),
            Ok(entries) => entries,
        };
        let mut apps = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| SecretError::Io { op: "list", path: self.root.clone(), source: e })?;
            if let Some(app) = entry.file_name().to_str().and_then(|n| n.parse::<AppName>().ok()) {
                apps.push(app);
            }
        }
        apps.sort();
        for app in &apps {
            for scope in [Scope::App, Scope::Preview] {
                let Some(dir) = self.scope_dir(app, scope, false)? else { continue };
                for key in self.keys_in(&dir, app, scope)? {
                    let Some((text, _)) = self.read_raw_at(&dir, app, scope, &key)? else { continue };
                    f(&dir, app, scope, &key, &text)?;
                }
            }
        }
        Ok(())
    }

    /// Deletes one secret; `false` when it did not exist.
    pub fn delete(&self, app: &AppName, scope: Scope, key: &SecretKey) -> Result<bool, SecretError> {
        let Some(dir) = self.scope_dir(app, scope, false)? else { return Ok(false) };
        let path = self.path_of(app, scope, Some(key.as_str()));
        match rustix::fs::unlinkat(&dir, key.as_str(), AtFlags::empty()) {
            Ok(()) => {}
            Err(Errno::NOENT) => return Ok(false),
            Err(e) => return Err(SecretError::Io { op: "delete", path, source: e.into() }),
        }
        rustix::fs::fsync(&dir).map_err(|e| SecretError::Io {
            op: "fsync the directory of",
            path,
            source: e.into(),
        })?;
        Ok(true)
    }

    /// Deletes every secret of an app (both scopes) and its directory; `false` when it had none.
    pub fn delete_app(&self, app: &AppName) -> Result<bool, SecretError> {
        let path = self.root.join(app.as_str());
        match std::fs::symlink_metadata(&path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(SecretError::Io { op: "inspect", path, source: e }),
            Ok(m) if !m.is_dir() => return Ok(false),
            Ok(_) => {}
        }
        std::fs::remove_dir_all(&path).map_err(|e| SecretError::Io { op: "delete", path, source: e })?;
        Ok(true)
    }

    /// The start-up check of SPEC §11.1: directories looser than 0700 and files looser than 0600 are tightened
    /// (each one is returned as a warning); anything owned by another uid than this process's is an error.
    /// A store that does not exist yet is fine.
    pub fn check_permissions(&self) -> Result<Vec<String>, SecretError> {
        let uid = rustix::process::geteuid().as_raw();
        let mut warnings = Vec::new();
        match std::fs::symlink_metadata(&self.root) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(warnings),
            Err(e) => return Err(SecretError::Io { op: "inspect", path: self.root.clone(), source: e }),
            Ok(_) => {}
        }
        let mut pending = vec![self.root.clone()];
        while let Some(dir) = pending.pop() {
            tighten(&dir, 0o700, uid, &mut warnings)?;
            let entries =
                std::fs::read_dir(&dir).map_err(|e| SecretError::Io { op: "list", path: dir.clone(), source: e })?;
            for entry in entries {
                let entry = entry.map_err(|e| SecretError::Io { op: "list", path: dir.clone(), source: e })?;
                let path = entry.path();
                let meta = std::fs::symlink_metadata(&path).map_err(|e| SecretError::Io {
                    op: "inspect",
                    path: path.clone(),
                    source: e,
                })?;
                if meta.is_dir() {
                    pending.push(path);
                } else if meta.is_file() {
                    tighten(&path, 0o600, uid, &mut warnings)?;
                }
            }
        }
        Ok(warnings)
    }

    /// Reads one key's value (decrypted) and mtime; `None` when it does not exist or is not a regular file.
    fn read_at(
        &self,
        dir: &OwnedFd,
        app: &AppName,
        scope: Scope,
        key: &SecretKey,
    ) -> Result<Option<(SecretValue, i64)>, SecretError> {
        let Some((text, updated_at)) = self.read_raw_at(dir, app, scope, key)? else { return Ok(None) };
        let value = open_sealed(self.key.as_ref(), &self.also, app, scope, key, text).map_err(|e| SecretError::Io {
            op: if matches!(e, SealError::NoKey { .. }) { "read" } else { "decrypt" },
            path: self.path_of(app, scope, Some(key.as_str())),
            source: io::Error::new(io::ErrorKind::InvalidData, e),
        })?;
        Ok(Some((SecretValue(value), updated_at)))
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD as BASE64;
    use sha2::{Digest, Sha256};

    use super::*;

    fn app() -> AppName {
        "web".parse().unwrap()
    }

    fn key(k: &str) -> SecretKey {
        k.parse().unwrap()
    }

    fn mode(path: &Path) -> u32 {
        std::fs::symlink_metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn set_creates_private_dirs_and_files_and_reports_creation() {
        let dir = tempfile::tempdir().unwrap();
        let store = SecretStore::new(dir.path());
        let first = store.set(&app(), Scope::App, &key("DATABASE_URL"), "postgres://u:p@db/x").unwrap();
        assert!(first.created);
        let second = store.set(&app(), Scope::App, &key("DATABASE_URL"), "postgres://u:q@db/x").unwrap();
        assert!(!second.created);
        store.set(&app(), Scope::Preview, &key("DATABASE_URL"), "postgres://preview/x").unwrap();

        assert_eq!(store.list(&app(), None).unwrap().len(), 2);
        let root = dir.path().join("secrets");
        assert_eq!(mode(&root), 0o700);
        assert_eq!(mode(&root.join("web")), 0o700);
        assert_eq!(mode(&root.join("web/.preview")), 0o700);
        assert_eq!(mode(&root.join("web/DATABASE_URL")), 0o600);
        assert_eq!(mode(&root.join("web/.preview/DATABASE_URL")), 0o600);
        assert_eq!(mode(&root.join(".fingerprint-key")), 0o600, "created by the first listing");
        assert_eq!(std::fs::read_to_string(root.join("web/DATABASE_URL")).unwrap(), "postgres://u:q@db/x");
        let names: Vec<String> = std::fs::read_dir(root.join("web"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert!(names.iter().all(|n| !n.starts_with(".tmp")), "no temp files left: {names:?}");
    }

    #[test]
    fn list_gives_metadata_and_fingerprints_that_change_with_the_value() {
        let dir = tempfile::tempdir().unwrap();
        let store = SecretStore::new(dir.path());
        store.set(&app(), Scope::App, &key("B_KEY"), "value-one\n").unwrap();
        store.set(&app(), Scope::App, &key("A_KEY"), "value-two").unwrap();
        store.set(&app(), Scope::Preview, &key("A_KEY"), "value-two").unwrap();
        let all = store.list(&app(), None).unwrap();
        let shown: Vec<(String, Scope)> = all.iter().map(|m| (m.key.to_string(), m.scope)).collect();
        assert_eq!(
            shown,
            [("A_KEY".into(), Scope::App), ("B_KEY".into(), Scope::App), ("A_KEY".into(), Scope::Preview)]
        );
        assert!(all.iter().all(|m| m.fingerprint.len() == 12 && m.updated_at > 0));
        assert_ne!(all[0].fingerprint, all[2].fingerprint, "the scope is part of the fingerprint");

        let before = store.get(&app(), Scope::App, &key("B_KEY")).unwrap().unwrap().fingerprint;
        store.set(&app(), Scope::App, &key("B_KEY"), "value-three").unwrap();
        let after = store.get(&app(), Scope::App, &key("B_KEY")).unwrap().unwrap().fingerprint;
        assert_ne!(before, after);
        assert_eq!(store.value(&app(), Scope::App, &key("B_KEY")).unwrap().unwrap().expose(), "value-three");
        assert_eq!(
            SecretStore::new(dir.path()).get(&app(), Scope::App, &key("B_KEY")).unwrap().unwrap().fingerprint,
            after,
            "the fingerprint key is per install, not per process"
        );
        assert!(store.get(&app(), Scope::App, &key("MISSING")).unwrap().is_none());
        assert!(store.list(&"other".parse().unwrap(), None).unwrap().is_empty());
    }

    #[test]
    fn delete_removes_only_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let store = SecretStore::new(dir.path());
        store.set(&app(), Scope::App, &key("ONE_KEY"), "value-one").unwrap();
        store.set(&app(), Scope::App, &key("TWO_KEY"), "value-two").unwrap();
        assert!(store.delete(&app(), Scope::App, &key("ONE_KEY")).unwrap());
        assert!(!store.delete(&app(), Scope::App, &key("ONE_KEY")).unwrap());
        assert!(!store.delete(&app(), Scope::Preview, &key("TWO_KEY")).unwrap());
        let left: Vec<String> = store.list(&app(), None).unwrap().into_iter().map(|m| m.key.to_string()).collect();
        assert_eq!(left, ["TWO_KEY"]);
        assert!(store.delete_app(&app()).unwrap());
        assert!(!dir.path().join("secrets/web").exists());
    }

    #[test]
    fn keys_that_could_name_a_path_are_refused_before_any_io() {
        for bad in ["../../x", "..", ".", "a/b", ".preview", "", "1ABC", "KEY=VALUE", "K\0"] {
            assert!(matches!(bad.parse::<SecretKey>(), Err(SecretError::InvalidKey { .. })), "{bad:?}");
        }
        let long = "A".repeat(257);
        assert!(long.parse::<SecretKey>().is_err());
        assert!("A".repeat(256).parse::<SecretKey>().is_ok());
    }

    #[test]
    fn reserved_keys_and_empty_values_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = SecretStore::new(dir.path());
        let err = store.set(&app(), Scope::App, &key("SLIP_TAG"), "anything-long").unwrap_err();
        assert!(matches!(err, SecretError::Reserved { .. }), "{err}");
        assert!(store.set(&app(), Scope::App, &key("SLIP_SECRET"), "webhook-key-1").is_ok());
        assert!(store.set(&app(), Scope::App, &key("SLIP_SECRET_PREVIOUS"), "webhook-key-0").is_ok());
        assert!(matches!(
            store.set(&app(), Scope::Preview, &key("SLIP_SECRET"), "webhook-key-1"),
            Err(SecretError::WebhookKeyScope { .. })
        ));
        assert!(matches!(store.set(&app(), Scope::App, &key("EMPTY"), "\n"), Err(SecretError::EmptyValue { .. })));
        assert!(!dir.path().join("secrets/web/SLIP_TAG").exists());
    }

    #[test]
    fn hand_written_files_are_read_without_their_trailing_newline_and_junk_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let store = SecretStore::new(dir.path());
        store.set(&app(), Scope::App, &key("REAL_KEY"), "value-one").unwrap();
        let app_dir = dir.path().join("secrets/web");
        std::fs::write(app_dir.join("ECHOED"), "from-echo\n").unwrap();
        std::fs::write(app_dir.join("not a key"), "x").unwrap();
        std::fs::write(app_dir.join(".tmp-REAL_KEY-0000"), "half").unwrap();
        std::fs::create_dir(app_dir.join("SUBDIR")).unwrap();
        std::os::unix::fs::symlink("/etc/hostname", app_dir.join("LINKED")).unwrap();
        let values: Vec<(String, String)> = store
            .values(&app(), Scope::App)
            .unwrap()
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.expose().to_owned()))
            .collect();
        assert_eq!(values, [("ECHOED".into(), "from-echo".into()), ("REAL_KEY".into(), "value-one".into())]);
    }

    #[test]
    fn owner_is_applied_to_everything_created() {
        let dir = tempfile::tempdir().unwrap();
        let meta = std::fs::metadata(dir.path()).unwrap();
        let store = SecretStore::new(dir.path()).owned_by(meta.uid(), meta.gid());
        store.set(&app(), Scope::Preview, &key("OWNED_KEY"), "value-one").unwrap();
        for p in ["secrets", "secrets/web", "secrets/web/.preview", "secrets/web/.preview/OWNED_KEY"] {
            assert_eq!(std::fs::metadata(dir.path().join(p)).unwrap().uid(), meta.uid(), "{p}");
        }
    }

    #[test]
    fn start_up_check_tightens_loose_modes() {
        let dir = tempfile::tempdir().unwrap();
        let store = SecretStore::new(dir.path());
        assert!(store.check_permissions().unwrap().is_empty(), "no store yet is fine");
        store.set(&app(), Scope::App, &key("LOOSE_KEY"), "value-one").unwrap();
        let file = dir.path().join("secrets/web/LOOSE_KEY");
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        std::fs::set_permissions(dir.path().join("secrets/web"), std::fs::Permissions::from_mode(0o755)).unwrap();
        let warnings = store.check_permissions().unwrap();
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert_eq!(mode(&file), 0o600);
        assert_eq!(mode(&dir.path().join("secrets/web")), 0o700);
        assert!(store.check_permissions().unwrap().is_empty());
    }

    #[test]
    fn debug_output_never_shows_a_value() {
        let dir = tempfile::tempdir().unwrap();
        let store = SecretStore::new(dir.path());
        store.set(&app(), Scope::App, &key("SHOWN_KEY"), "do-not-print-me").unwrap();
        let value = store.value(&app(), Scope::App, &key("SHOWN_KEY")).unwrap().unwrap();
        let listed = store.list(&app(), None).unwrap();
        let text = format!("{value:?} {listed:?} {:?}", store.values(&app(), Scope::App).unwrap());
        assert!(!text.contains("do-not-print-me"), "{text}");
    }

    fn master() -> MasterKey {
        MasterKey::from_bytes([42; 32])
    }

    fn file(dir: &Path, rel: &str) -> String {
        std::fs::read_to_string(dir.join("secrets").join(rel)).unwrap()
    }

    /// The error's whole chain, as the CLI and the logs show it.
    fn chain(e: &SecretError) -> String {
        slip_core::error_chain::error_chain(e)
    }

    #[test]
    fn with_a_key_values_round_trip_and_files_hold_no_plaintext() {
        let dir = tempfile::tempdir().unwrap();
        let store = SecretStore::new(dir.path()).with_key(master());
        store.set(&app(), Scope::App, &key("DATABASE_URL"), "postgres://u:p@db/x\n").unwrap();
        store.set(&app(), Scope::Preview, &key("DATABASE_URL"), "postgres://preview/x").unwrap();

        let text = file(dir.path(), "web/DATABASE_URL");
        assert!(text.starts_with(&format!("slipenc:v1:{}:", master().id())), "{text}");
        assert!(!text.contains("postgres"), "{text}");
        assert_eq!(mode(&dir.path().join("secrets/web/DATABASE_URL")), 0o600);
        assert_eq!(master().id().len(), 8);
        assert_eq!(master().id(), &hex::encode(Sha256::digest([42; 32]))[..8]);
        let again = SecretStore::new(dir.path()).with_key(master());
        again.set(&app(), Scope::App, &key("OTHER_KEY"), "postgres://u:p@db/x").unwrap();
        assert_ne!(
            file(dir.path(), "web/OTHER_KEY")["slipenc:v1:".len() + 9..],
            text["slipenc:v1:".len() + 9..],
            "a random nonce each time"
        );

        assert_eq!(
            store.value(&app(), Scope::App, &key("DATABASE_URL")).unwrap().unwrap().expose(),
            "postgres://u:p@db/x"
        );
        let values: Vec<(String, String)> = store
            .values(&app(), Scope::Preview)
            .unwrap()
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.expose().to_owned()))
            .collect();
        assert_eq!(values, [("DATABASE_URL".into(), "postgres://preview/x".into())]);
        assert_eq!(store.list(&app(), None).unwrap().len(), 3);
        assert!(!format!("{store:?}").contains(&hex::encode([42u8; 32])), "Debug shows the key id only");
    }

    #[test]
    fn fingerprints_do_not_change_when_encryption_is_turned_on() {
        let dir = tempfile::tempdir().unwrap();
        let plain = SecretStore::new(dir.path());
        plain.set(&app(), Scope::App, &key("API_TOKEN"), "value-one").unwrap();
        let before = plain.get(&app(), Scope::App, &key("API_TOKEN")).unwrap().unwrap().fingerprint;
        let sealed = SecretStore::new(dir.path()).with_key(master());
        sealed.set(&app(), Scope::App, &key("API_TOKEN"), "value-one").unwrap();
        assert!(file(dir.path(), "web/API_TOKEN").starts_with("slipenc:v1:"));
        assert_eq!(sealed.get(&app(), Scope::App, &key("API_TOKEN")).unwrap().unwrap().fingerprint, before);
    }

    #[test]
    fn a_wrong_key_or_no_key_is_an_error_naming_the_secret_but_not_the_value() {
        let dir = tempfile::tempdir().unwrap();
        SecretStore::new(dir.path())
            .with_key(master())
            .set(&app(), Scope::Preview, &key("API_TOKEN"), "value-one")
            .unwrap();

        let other = MasterKey::from_bytes([7; 32]);
        let wrong = SecretStore::new(dir.path()).with_key(other.clone());
        let err = wrong.value(&app(), Scope::Preview, &key("API_TOKEN")).unwrap_err();
        let text = chain(&err);
        assert!(
            text.contains(&format!(
                "the preview-scope secret API_TOKEN of app web was encrypted with key id {}, but secrets.key_file holds key id {}",
                master().id(),
                other.id()
            )),
            "{text}"
        );
        assert!(wrong.list(&app(), None).is_err(), "listing fails too, rather than showing a wrong fingerprint");

        let err = SecretStore::new(dir.path()).values(&app(), Scope::Preview).unwrap_err();
        let text = chain(&err);
        assert!(text.contains("API_TOKEN of app web is encrypted"), "{text}");
        assert!(text.contains("set secrets.key_file"), "{text}");
        assert!(!text.contains("value-one"));
    }

    #[test]
    fn tampered_ciphertext_fails_authentication() {
        let dir = tempfile::tempdir().unwrap();
        let store = SecretStore::new(dir.path()).with_key(master());
        store.set(&app(), Scope::App, &key("API_TOKEN"), "value-one").unwrap();
        let path = dir.path().join("secrets/web/API_TOKEN");
        let text = std::fs::read_to_string(&path).unwrap();
        let (head, body) = text.rsplit_once(':').unwrap();
        let mut blob = BASE64.decode(body).unwrap();
        let last = blob.len() - 1;
        blob[last] ^= 1;
        std::fs::write(&path, format!("{head}:{}", BASE64.encode(blob))).unwrap();
        let text = chain(&store.value(&app(), Scope::App, &key("API_TOKEN")).unwrap_err());
        assert!(text.contains("the app-scope secret API_TOKEN of app web fails authentication"), "{text}");

        std::fs::write(&path, format!("{head}:not base64!")).unwrap();
        let text = chain(&store.value(&app(), Scope::App, &key("API_TOKEN")).unwrap_err());
        assert!(text.contains("not a well-formed slipenc:v1 file"), "{text}");
    }

    #[test]
    fn the_aad_binds_a_file_to_its_app_scope_and_key() {
        let dir = tempfile::tempdir().unwrap();
        let store = SecretStore::new(dir.path()).with_key(master());
        store.set(&app(), Scope::App, &key("API_TOKEN"), "value-one").unwrap();
        store.set(&app(), Scope::Preview, &key("PLACEHOLDER"), "value-two").unwrap();
        store.set(&"api".parse().unwrap(), Scope::App, &key("PLACEHOLDER"), "value-two").unwrap();
        let root = dir.path().join("secrets");
        for copy in ["web/OTHER_KEY", "web/.preview/API_TOKEN", "api/API_TOKEN"] {
            std::fs::copy(root.join("web/API_TOKEN"), root.join(copy)).unwrap();
        }
        for (app, scope, name) in
            [("web", Scope::App, "OTHER_KEY"), ("web", Scope::Preview, "API_TOKEN"), ("api", Scope::App, "API_TOKEN")]
        {
            let err = store.value(&app.parse().unwrap(), scope, &key(name)).unwrap_err();
            assert!(chain(&err).contains("fails authentication"), "{app} {scope} {name}: {}", chain(&err));
        }
        assert_eq!(store.value(&app(), Scope::App, &key("API_TOKEN")).unwrap().unwrap().expose(), "value-one");
    }

    #[test]
    fn plain_files_are_re_encrypted_by_the_migration() {
        let dir = tempfile::tempdir().unwrap();
        let plain = SecretStore::new(dir.path());
        plain.set(&app(), Scope::App, &key("ONE_KEY"), "value-one").unwrap();
        plain.set(&app(), Scope::Preview, &key("TWO_KEY"), "value-two").unwrap();
        let before = plain.list(&app(), None).unwrap();
        assert_eq!(plain.encrypt_plain_files().unwrap(), 0, "nothing to do without a key");

        let sealed = SecretStore::new(dir.path()).with_key(master());
        sealed.set(&app(), Scope::App, &key("THREE_KEY"), "value-three").unwrap();
        assert_eq!(sealed.encrypt_plain_files().unwrap(), 2);
        assert_eq!(sealed.encrypt_plain_files().unwrap(), 0, "once only");
        for rel in ["web/ONE_KEY", "web/.preview/TWO_KEY", "web/THREE_KEY"] {
            let text = file(dir.path(), rel);
            assert!(text.starts_with("slipenc:v1:") && !text.contains("value-"), "{rel}: {text}");
        }
        assert_eq!(sealed.value(&app(), Scope::Preview, &key("TWO_KEY")).unwrap().unwrap().expose(), "value-two");
        let after: Vec<_> =
            sealed.list(&app(), None).unwrap().into_iter().filter(|m| m.key.as_str() != "THREE_KEY").collect();
        let prints = |m: &[SecretMeta]| m.iter().map(|m| m.fingerprint.clone()).collect::<Vec<_>>();
        assert_eq!(prints(&after), prints(&before));
    }

    #[test]
    fn key_files_are_created_0600_never_overwritten_and_read_as_hex_or_raw() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        let key = MasterKey::create_file(&path).unwrap();
        assert_eq!(mode(&path), 0o600);
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.len(), 65, "64 hex characters and a newline");
        assert_eq!(MasterKey::load(&path).unwrap().id(), key.id());
        assert!(matches!(MasterKey::create_file(&path), Err(KeyFileError::Exists { .. })));
        assert_eq!(std::fs::read_to_string(&path).unwrap(), text, "left as it was");

        let raw = dir.path().join("raw.key");
        std::fs::write(&raw, [42u8; 32]).unwrap();
        assert_eq!(MasterKey::load(&raw).unwrap().id(), master().id());
        std::fs::write(&raw, "abcd\n").unwrap();
        let err = MasterKey::load(&raw).unwrap_err().to_string();
        assert!(err.contains("raw.key (secrets.key_file) holds 5 bytes"), "{err}");
        let err = MasterKey::load(&dir.path().join("missing.key")).unwrap_err().to_string();
        assert!(err.contains("missing.key"), "{err}");
    }
}
