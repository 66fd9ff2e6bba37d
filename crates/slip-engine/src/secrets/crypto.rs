//! Encryption at rest (SPEC §11.2): the master key, `slipenc:v1` sealing and opening, and fingerprints.

use std::fmt;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use sha2::{Digest, Sha256};
use slip_core::names::AppName;

use super::names::{Scope, SecretKey, SecretValue, shorten};

/// What an encrypted file starts with (SPEC §11.2).
pub(super) const ENCRYPTED_PREFIX: &str = "slipenc:v1:";

/// XChaCha20-Poly1305's nonce length.
const NONCE_LEN: usize = 24;

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
        let written = file.write_all(format!("{}\n", key.hex()).as_bytes()).and_then(|()| file.sync_all());
        if let Err(source) = written {
            drop(file);
            let _ = std::fs::remove_file(path);
            return Err(KeyFileError::Create { path: path.into(), source });
        }
        Ok(key)
    }

    /// The key as 64 hex characters, as key files hold it.
    pub(super) fn hex(&self) -> String {
        hex::encode(self.bytes)
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
pub(super) enum SealError {
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
pub(super) fn seal(master: &MasterKey, app: &AppName, scope: Scope, name: &SecretKey, value: &str) -> String {
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

/// The plaintext of a file's content: itself when it is not encrypted. An encrypted file is opened with whichever
/// of `master` and `also` (the key of an unfinished rotation) has the id it names.
pub(super) fn open_sealed(
    master: Option<&MasterKey>,
    also: &[MasterKey],
    app: &AppName,
    scope: Scope,
    name: &SecretKey,
    text: String,
) -> Result<String, SealError> {
    let Some(rest) = text.strip_prefix(ENCRYPTED_PREFIX) else { return Ok(text) };
    let (app, key) = (app.clone(), name.clone());
    let Some((file_key, body)) = rest.split_once(':') else { return Err(SealError::Malformed { app, scope, key }) };
    let Some(configured) = master else {
        return Err(SealError::NoKey { app, scope, key, file_key: shorten(file_key) });
    };
    let Some(master) = std::iter::once(configured).chain(also).find(|k| k.id == file_key) else {
        return Err(SealError::WrongKey {
            app,
            scope,
            key,
            file_key: shorten(file_key),
            configured: configured.id.clone(),
        });
    };
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

/// The id of the key a file's content was sealed with; `None` for a plain file.
pub(super) fn sealed_with(text: &str) -> Option<&str> {
    text.strip_prefix(ENCRYPTED_PREFIX).map(|rest| rest.split_once(':').map_or(rest, |(id, _)| id))
}

/// `first 12 hex of HMAC-SHA256(key, "app|scope|KEY|value")`.
pub(super) fn fingerprint(key: &[u8], app: &AppName, scope: Scope, name: &SecretKey, value: &SecretValue) -> String {
    let message = format!("{app}|{scope}|{name}|{}", value.expose());
    let mut hex = hex::encode(slip_core::signature::sign(key, message.as_bytes()));
    hex.truncate(12);
    hex
}
