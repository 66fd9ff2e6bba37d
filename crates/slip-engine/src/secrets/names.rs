//! The names of the store: validated secret keys (never `.`, `..` or a path), the two scopes, and the value
//! wrapper whose `Debug` shows no content; and the store's error type, which names keys but never values.

use std::fmt;
use std::io;
use std::path::PathBuf;
use std::str::FromStr;

/// Keys slip reads itself (webhook keys): settable, never injected into containers.
pub const WEBHOOK_KEYS: [&str; 2] = ["SLIP_SECRET", "SLIP_SECRET_PREVIOUS"];

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
pub struct SecretValue(pub(super) String);

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

/// A rejected name as shown in an error: at most 64 characters.
pub(super) fn shorten(s: &str) -> String {
    if s.chars().count() <= 64 { s.to_owned() } else { s.chars().take(63).chain(['…']).collect() }
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
