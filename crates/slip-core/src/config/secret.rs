//! [`Secret`]: a string that never shows itself. Used for `auth.secret`, `auth.admin_token`,
//! `auth.metrics_token`, `registry.ghcr_token`, `[[registry.auth]].password`, `app.secret` and the string
//! values of `caddy.tls.dns_provider_config`.
//!
//! It does not zero memory on drop and does not compare in constant time: comparisons that matter for
//! authentication live in [`crate::signature`].

use std::fmt;

/// A secret value: `Debug` and `Display` print `***`. Read it with [`Secret::expose`] only where the value
/// is really needed (signing, registry login, redaction).
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value.
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The value, for the one place that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Length in bytes, for warnings about short keys (the length is not secret enough to hide).
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True for an empty value.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_prints_its_value() {
        let s = Secret::new("hunter2-hunter2");
        assert_eq!(format!("{s:?} {s} {:?}", Some(&s)), "*** *** Some(***)");
        assert_eq!(s.expose(), "hunter2-hunter2");
    }
}
