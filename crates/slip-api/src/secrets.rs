//! Secrets endpoints (SPEC §6.3): metadata only. No type here has a field for a secret's value except the
//! two request bodies, which the daemon never echoes.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// One secret in `GET /v1/secrets/{app}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretInfo {
    /// The key.
    pub key: String,
    /// `app` or `preview`.
    pub scope: String,
    /// RFC 3339 time of the last write.
    pub updated_at: String,
    /// First 12 hex characters of an HMAC of the value: changes when the value does.
    pub fingerprint: String,
}

/// `GET /v1/secrets/{app}` answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SecretList {
    /// Sorted by scope, then key.
    pub secrets: Vec<SecretInfo>,
}

/// `PUT /v1/secrets/{app}/{key}` JSON body. (A `text/plain` body is the value itself, scope from `?scope=`.)
#[derive(Clone, Serialize, Deserialize)]
pub struct SecretPut {
    /// The value.
    pub value: String,
    /// `app` (the default) or `preview`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
}

impl std::fmt::Debug for SecretPut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretPut").field("value", &"***").field("scope", &self.scope).finish()
    }
}

/// `PUT /v1/secrets/{app}/{key}` answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SecretSet {
    /// App name.
    pub app: String,
    /// The key.
    pub key: String,
    /// `app` or `preview`.
    pub scope: String,
    /// True when the key did not exist before.
    pub created: bool,
    /// RFC 3339 time of this write.
    pub updated_at: String,
}

/// `GET /v1/secrets/{app}/{key}` answer. Never the value.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SecretMetadata {
    /// App name.
    pub app: String,
    /// The key.
    pub key: String,
    /// `app` or `preview`.
    pub scope: String,
    /// Always true (a missing key is 404 `secret_not_found`).
    pub exists: bool,
    /// RFC 3339 time of the last write.
    pub updated_at: String,
    /// First 12 hex characters of an HMAC of the value.
    pub fingerprint: String,
}

/// Legacy `GET /v1/apps/{name}/secrets` answer: app-scope key names.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LegacySecretNames {
    /// Sorted key names.
    pub secrets: Vec<String>,
}

/// Legacy `PUT /v1/apps/{name}/secrets` body.
#[derive(Clone, Serialize, Deserialize)]
pub struct LegacySecretsPut {
    /// Key → value, all app scope.
    pub secrets: BTreeMap<String, String>,
}

impl std::fmt::Debug for LegacySecretsPut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LegacySecretsPut").field("keys", &self.secrets.keys().collect::<Vec<_>>()).finish()
    }
}

/// Legacy `PUT /v1/apps/{name}/secrets` answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LegacySecretsSet {
    /// The keys written.
    pub set: Vec<String>,
}
