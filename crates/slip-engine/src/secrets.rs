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
//! slipd loads its key once at boot and installs it for its storage directory ([`install_key`]), so every
//! [`SecretStore::new`] of that storage applies it and no call site can forget it; the CLI's local mode uses
//! [`SecretStore::with_key`].
//!
//! This module does not log and does not decide who may call it: the daemon's API checks the admin token, the
//! CLI's local mode relies on filesystem permissions.

use std::fmt;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Mutex;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rustix::fs::{AtFlags, Mode, OFlags, RenameFlags};
use rustix::io::Errno;
use sha2::{Digest, Sha256};
use slip_core::names::AppName;

/// Keys slip reads itself (webhook keys): settable, never injected into containers.
pub const WEBHOOK_KEYS: [&str; 2] = ["SLIP_SECRET", "SLIP_SECRET_PREVIOUS"];

/// Values shorter than this cannot be redacted safely (SPEC §11.4); `slip secrets set` warns about them.
pub const MIN_REDACTABLE_LEN: usize = crate::redact::MIN_REDACTABLE_LEN;

/// The directory, under each app's directory, that holds preview-scope secrets.
const PREVIEW_DIR: &str = ".preview";

/// The per-install HMAC key for fingerprints, in the store's root.
const FINGERPRINT_KEY: &str = ".fingerprint-key";

/// What an encrypted file starts with (SPEC §11.2).
const ENCRYPTED_PREFIX: &str = "slipenc:v1:";

/// XChaCha20-Poly1305's nonce length.
const NONCE_LEN: usize = 24;

/// Keys installed by [`install_key`]: (store root, key).
static INSTALLED_KEYS: Mutex<Vec<(PathBuf, MasterKey)>> = Mutex::new(Vec::new());

/// Makes every [`SecretStore::new`] of `storage` use `key` (or no key), for the rest of the process. slipd calls
/// it once at boot, after loading `secrets.key_file`; `[secrets]` changes need a restart.
pub fn install_key(storage: &Path, key: Option<MasterKey>) {
    let root = storage.join("secrets");
    let mut keys = INSTALLED_KEYS.lock().unwrap_or_else(|e| e.into_inner());
    keys.retain(|(r, _)| *r != root);
    if let Some(key) = key {
        keys.push((root, key));
    }
}

/// The master key of SPEC §11.2: 32 bytes. `Debug` shows its id, never the key.
#[derive(Clone)]
pub struct MasterKey {
    bytes: [u8; 32],
    id: String,
}

impl MasterKey {
    /// The key made of `bytes`.
    pub fn from_bytes(bytes: [u8; 32]) -> MasterKey {
        let mut id = hex::encode(Sha256::digest(bytes));
        id.truncate(8);
        MasterKey { bytes, id }
    }

    /// A new random key.
    pub fn generate() -> MasterKey {
        MasterKey::from_bytes(rand::random())
    }

    /// The first 8 hex characters of SHA-256(key), written into every encrypted file.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Reads a key file: exactly 32 raw bytes, or 64 hex characters (surrounding whitespace ignored), which is
    /// what [`MasterKey::create_file`] writes.
    pub fn load(path: &Path) -> Result<MasterKey, KeyFileError> {
        let data = std::fs::read(path).map_err(|source| KeyFileError::Read { path: path.into(), source })?;
        if let Ok(bytes) = <[u8; 32]>::try_from(data.as_slice()) {
            return Ok(MasterKey::from_bytes(bytes));
        }
        let decoded = std::str::from_utf8(&data).ok().and_then(|t| hex::decode(t.trim()).ok());
        match decoded.as_deref().map(<[u8; 32]>::try_from) {
            Some(Ok(bytes)) => Ok(MasterKey::from_bytes(bytes)),
            _ => Err(KeyFileError::Format { path: path.into(), len: data.len() }),
        }
    }

    /// Writes a new random key to `path` as 64 hex characters and a newline, in a file created with mode 0600.
    /// An existing file is never overwritten: the secrets encrypted with it would be lost.
    pub fn create_file(path: &Path) -> Result<MasterKey, KeyFileError> {
        use std::os::unix::fs::OpenOptionsExt;
        let key = MasterKey::generate();
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(path)
            .map_err(|source| match source.kind() {
                io::ErrorKind::AlreadyExists => KeyFileError::Exists { path: path.into() },
                _ => KeyFileError::Create { path: path.into(), source },
            })?;
        let written = file.write_all(format!("{}\n", hex::encode(key.bytes)).as_bytes()).and_then(|()| file.sync_all());
        if let Err(source) = written {
            drop(file);
            let _ = std::fs::remove_file(path);
            return Err(KeyFileError::Create { path: path.into(), source });
        }
        Ok(key)
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new(&self.bytes.into())
    }
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MasterKey({})", self.id)
    }
}

/// Why a key file cannot be used. The key itself is never part of a message.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    /// The file cannot be read.
    #[error("cannot read the secrets key file {} (secrets.key_file)", .path.display())]
    Read {
        /// The key file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The file holds neither 32 raw bytes nor 64 hex characters.
    #[error(
        "the secrets key file {} (secrets.key_file) holds {len} bytes; a key is 32 raw bytes or 64 hex characters (slipd --gen-key PATH writes one)",
        .path.display()
    )]
    Format {
        /// The key file.
        path: PathBuf,
        /// Its length in bytes.
        len: usize,
    },
    /// `--gen-key` was given a path that exists.
    #[error("{} already exists; slipd --gen-key never overwrites a key (secrets encrypted with it would be lost)", .path.display())]
    Exists {
        /// The path given.
        path: PathBuf,
    },
    /// The new key file cannot be written.
    #[error("cannot create the key file {}", .path.display())]
    Create {
        /// The path given.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
}

/// Why an encrypted file cannot be read; the `source` of a [`SecretError::Io`] (kind `InvalidData`). It names the
/// app, scope and key, never the value.
#[derive(Debug, thiserror::Error)]
enum SealError {
    #[error(
        "the {scope}-scope secret {key} of app {app} is encrypted (slipenc:v1, key id {file_key}) but no key is configured: set secrets.key_file in slip.toml to the key it was written with"
    )]
    NoKey { app: AppName, scope: Scope, key: SecretKey, file_key: String },
    #[error(
        "the {scope}-scope secret {key} of app {app} was encrypted with key id {file_key}, but secrets.key_file holds key id {configured}"
    )]
    WrongKey { app: AppName, scope: Scope, key: SecretKey, file_key: String, configured: String },
    #[error(
        "the {scope}-scope secret {key} of app {app} fails authentication: the file was altered, or copied from another app, scope or key"
    )]
    Forged { app: AppName, scope: Scope, key: SecretKey },
    #[error("the {scope}-scope secret {key} of app {app} is not a well-formed slipenc:v1 file")]
    Malformed { app: AppName, scope: Scope, key: SecretKey },
}

/// The AAD binding a sealed value to its place: `slip/<app>/<scope>/<KEY>`.
fn aad(app: &AppName, scope: Scope, name: &SecretKey) -> String {
    format!("slip/{app}/{scope}/{name}")
}

/// `slipenc:v1:<key id>:<base64(nonce ‖ ciphertext)>`.
fn seal(master: &MasterKey, app: &AppName, scope: Scope, name: &SecretKey, value: &str) -> String {
    let nonce: [u8; NONCE_LEN] = rand::random();
    let aad = aad(app, scope, name);
    let ciphertext = master
        .cipher()
        .encrypt(XNonce::from_slice(&nonce), Payload { msg: value.as_bytes(), aad: aad.as_bytes() })
        .expect("XChaCha20-Poly1305 encryption of an in-memory value cannot fail");
    let mut blob = nonce.to_vec();
    blob.extend_from_slice(&ciphertext);
    format!("{ENCRYPTED_PREFIX}{}:{}", master.id, BASE64.encode(blob))
}

/// The plaintext of a file's content: itself when it is not encrypted.
fn open_sealed(
    master: Option<&MasterKey>,
    app: &AppName,
    scope: Scope,
    name: &SecretKey,
    text: String,
) -> Result<String, SealError> {
    let Some(rest) = text.strip_prefix(ENCRYPTED_PREFIX) else { return Ok(text) };
    let (app, key) = (app.clone(), name.clone());
    let Some((file_key, body)) = rest.split_once(':') else { return Err(SealError::Malformed { app, scope, key }) };
    let Some(master) = master else {
        return Err(SealError::NoKey { app, scope, key, file_key: shorten(file_key) });
    };
    if file_key != master.id {
        return Err(SealError::WrongKey {
            app,
            scope,
            key,
            file_key: shorten(file_key),
            configured: master.id.clone(),
        });
    }
    let blob = match BASE64.decode(body.trim_end()) {
        Ok(blob) if blob.len() > NONCE_LEN => blob,
        _ => return Err(SealError::Malformed { app, scope, key }),
    };
    let (nonce, ciphertext) = blob.split_at(NONCE_LEN);
    let aad = aad(&app, scope, &key);
    let plain = master
        .cipher()
        .decrypt(XNonce::from_slice(nonce), Payload { msg: ciphertext, aad: aad.as_bytes() })
        .map_err(|_| SealError::Forged { app: app.clone(), scope, key: key.clone() })?;
    String::from_utf8(plain).map_err(|_| SealError::Malformed { app, scope, key })
}

/// A validated secret key: `[A-Za-z_][A-Za-z0-9_]{0,255}` (SPEC §3.1), so never `.`, `..` or a path.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SecretKey(String);

impl SecretKey {
    /// The key as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `SLIP_SECRET` or `SLIP_SECRET_PREVIOUS`: read by slipd for webhook auth, never injected.
    pub fn is_webhook_key(&self) -> bool {
        WEBHOOK_KEYS.contains(&self.0.as_str())
    }

    /// Any other `SLIP_*` key: slip sets those variables itself, so the store refuses them.
    pub fn is_reserved(&self) -> bool {
        self.0.starts_with("SLIP_") && !self.is_webhook_key()
    }
}

impl FromStr for SecretKey {
    type Err = SecretError;
    fn from_str(s: &str) -> Result<SecretKey, SecretError> {
        if slip_core::names::is_secret_key(s) {
            Ok(SecretKey(s.to_owned()))
        } else {
            Err(SecretError::InvalidKey { key: shorten(s) })
        }
    }
}

impl fmt::Display for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretKey({})", self.0)
    }
}

/// Which set of an app's secrets: the app's own, or the one previews get (SPEC §11.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scope {
    /// `<storage>/secrets/<app>/<KEY>`.
    App,
    /// `<storage>/secrets/<app>/.preview/<KEY>`.
    Preview,
}

impl Scope {
    /// `app` or `preview`, as on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::App => "app",
            Scope::Preview => "preview",
        }
    }
}

impl FromStr for Scope {
    type Err = SecretError;
    fn from_str(s: &str) -> Result<Scope, SecretError> {
        match s {
            "app" => Ok(Scope::App),
            "preview" => Ok(Scope::Preview),
            other => Err(SecretError::InvalidScope { scope: shorten(other) }),
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A secret's value. `Debug` and `Display` are not implemented to show it; use [`SecretValue::expose`].
#[derive(Clone, PartialEq, Eq)]
pub struct SecretValue(String);

impl SecretValue {
    /// The value itself, for injection, HMAC keys and redaction only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretValue(***)")
    }
}

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

/// Everything that can go wrong in the store. No variant carries a value.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// The key is not a valid secret key.
    #[error("invalid secret key {key:?}: keys match [A-Za-z_][A-Za-z0-9_]{{0,255}} (letters, digits and _, no . or /)")]
    InvalidKey {
        /// The rejected key (shortened to 64 characters).
        key: String,
    },
    /// The key is one slip sets itself.
    #[error(
        "{key} is reserved: slip sets SLIP_* variables itself; the only SLIP_ keys the store takes are SLIP_SECRET \
         and SLIP_SECRET_PREVIOUS"
    )]
    Reserved {
        /// The key.
        key: SecretKey,
    },
    /// A webhook key was given the preview scope.
    #[error("{key} is an app key for webhooks and exists only in the app scope; use scope \"app\"")]
    WebhookKeyScope {
        /// The key.
        key: SecretKey,
    },
    /// The scope is neither `app` nor `preview`.
    #[error("invalid scope {scope:?}: expected \"app\" or \"preview\"")]
    InvalidScope {
        /// The rejected scope.
        scope: String,
    },
    /// An empty value was given.
    #[error("the value of {key} is empty; to remove a secret delete it instead")]
    EmptyValue {
        /// The key.
        key: SecretKey,
    },
    /// A file or directory of the store could not be read or written.
    #[error("cannot {op} {}", .path.display())]
    Io {
        /// What was being done, e.g. "write".
        op: &'static str,
        /// The path involved (for messages only: access goes through directory descriptors).
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// A file of the store belongs to another user (found at start-up).
    #[error(
        "{} is owned by uid {uid}, not by slipd's uid {expected}: chown it (and the rest of the store) to slipd's user",
        .path.display()
    )]
    ForeignOwner {
        /// The file or directory.
        path: PathBuf,
        /// Its owner.
        uid: u32,
        /// slipd's effective uid.
        expected: u32,
    },
}

/// The store's rules for a write (SPEC §6.3, §11.3): reserved `SLIP_*` keys are refused, and the webhook keys
/// exist only in the app scope.
pub fn check_settable(key: &SecretKey, scope: Scope) -> Result<(), SecretError> {
    if key.is_reserved() {
        return Err(SecretError::Reserved { key: key.clone() });
    }
    if key.is_webhook_key() && scope == Scope::Preview {
        return Err(SecretError::WebhookKeyScope { key: key.clone() });
    }
    Ok(())
}

/// The secret store under one storage directory. Cheap to clone; holds no open descriptors.
#[derive(Debug, Clone)]
pub struct SecretStore {
    root: PathBuf,
    owner: Option<(u32, u32)>,
    key: Option<MasterKey>,
}

impl SecretStore {
    /// The store of `storage` (`storage.path`): `<storage>/secrets`, with the key [`install_key`] installed for
    /// `storage`, if any.
    pub fn new(storage: &Path) -> SecretStore {
        let root = storage.join("secrets");
        let keys = INSTALLED_KEYS.lock().unwrap_or_else(|e| e.into_inner());
        let key = keys.iter().find(|(r, _)| *r == root).map(|(_, k)| k.clone());
        SecretStore { root, owner: None, key }
    }

    /// Encrypts every value this store writes with `key`, and decrypts with it (SPEC §11.2).
    pub fn with_key(mut self, key: MasterKey) -> SecretStore {
        self.key = Some(key);
        self
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
        let entries = match std::fs::read_dir(&self.root) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
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
        let mut count = 0;
        for app in &apps {
            for scope in [Scope::App, Scope::Preview] {
                let Some(dir) = self.scope_dir(app, scope, false)? else { continue };
                for key in self.keys_in(&dir, app, scope)? {
                    let Some((text, _)) = self.read_raw_at(&dir, app, scope, &key)? else { continue };
                    if text.starts_with(ENCRYPTED_PREFIX) || text.is_empty() {
                        continue;
                    }
                    self.write_at(&dir, app, scope, &key, &seal(master, app, scope, &key, &text))?;
                    count += 1;
                }
            }
        }
        Ok(count)
    }

    /// Writes `content` as `key` in `dir` atomically (temp file 0600, fsync, rename, fsync the directory);
    /// `true` when the key did not exist before.
    fn write_at(
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

    /// The path of an app's scope directory, or of a key in it (for messages).
    fn path_of(&self, app: &AppName, scope: Scope, key: Option<&str>) -> PathBuf {
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
    fn root_dir(&self, create: bool) -> Result<Option<OwnedFd>, SecretError> {
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
    fn scope_dir(&self, app: &AppName, scope: Scope, create: bool) -> Result<Option<OwnedFd>, SecretError> {
        let Some(root) = self.root_dir(create)? else { return Ok(None) };
        let Some(app_dir) = self.subdir(&root, app.as_str(), create, &self.path_of(app, Scope::App, None))? else {
            return Ok(None);
        };
        match scope {
            Scope::App => Ok(Some(app_dir)),
            Scope::Preview => self.subdir(&app_dir, PREVIEW_DIR, create, &self.path_of(app, Scope::Preview, None)),
        }
    }

    fn subdir(&self, parent: &OwnedFd, name: &str, create: bool, path: &Path) -> Result<Option<OwnedFd>, SecretError> {
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
    fn keys_in(&self, dir: &OwnedFd, app: &AppName, scope: Scope) -> Result<Vec<SecretKey>, SecretError> {
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

    /// Reads one key's value (decrypted) and mtime; `None` when it does not exist or is not a regular file.
    fn read_at(
        &self,
        dir: &OwnedFd,
        app: &AppName,
        scope: Scope,
        key: &SecretKey,
    ) -> Result<Option<(SecretValue, i64)>, SecretError> {
        let Some((text, updated_at)) = self.read_raw_at(dir, app, scope, key)? else { return Ok(None) };
        let value = open_sealed(self.key.as_ref(), app, scope, key, text).map_err(|e| SecretError::Io {
            op: if matches!(e, SealError::NoKey { .. }) { "read" } else { "decrypt" },
            path: self.path_of(app, scope, Some(key.as_str())),
            source: io::Error::new(io::ErrorKind::InvalidData, e),
        })?;
        Ok(Some((SecretValue(value), updated_at)))
    }

    /// Reads one key's file content (without a trailing newline) and mtime.
    fn read_raw_at(
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
    fn fingerprint_key(&self) -> Result<Vec<u8>, SecretError> {
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

/// `first 12 hex of HMAC-SHA256(key, "app|scope|KEY|value")`.
fn fingerprint(key: &[u8], app: &AppName, scope: Scope, name: &SecretKey, value: &SecretValue) -> String {
    let message = format!("{app}|{scope}|{name}|{}", value.expose());
    let mut hex = hex::encode(slip_core::signature::sign(key, message.as_bytes()));
    hex.truncate(12);
    hex
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
fn tighten(path: &Path, max: u32, uid: u32, warnings: &mut Vec<String>) -> Result<(), SecretError> {
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

/// A rejected name as shown in an error: at most 64 characters.
fn shorten(s: &str) -> String {
    if s.chars().count() <= 64 { s.to_owned() } else { s.chars().take(63).chain(['…']).collect() }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

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
    fn installed_keys_apply_to_every_store_of_that_storage() {
        let dir = tempfile::tempdir().unwrap();
        let elsewhere = tempfile::tempdir().unwrap();
        install_key(dir.path(), Some(master()));
        SecretStore::new(dir.path()).set(&app(), Scope::App, &key("API_TOKEN"), "value-one").unwrap();
        SecretStore::new(elsewhere.path()).set(&app(), Scope::App, &key("API_TOKEN"), "value-one").unwrap();
        install_key(dir.path(), None);
        assert!(file(dir.path(), "web/API_TOKEN").starts_with("slipenc:v1:"));
        assert_eq!(file(elsewhere.path(), "web/API_TOKEN"), "value-one");
        assert!(SecretStore::new(dir.path()).value(&app(), Scope::App, &key("API_TOKEN")).is_err());
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
