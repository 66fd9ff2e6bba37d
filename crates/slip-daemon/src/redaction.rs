//! Gathers what the redactor of an app must hide (SPEC §11.4): every secret of the app in both scopes, the
//! `auth` tokens (secret, admin and metrics), the app's `[app].secret` and the registry passwords.
//!
//! Building a redactor reads the secret store, so callers build one per deploy or per stream, not per line.
//! This module does not redact anything itself (`slip_engine::redact` does) and never logs a value.

use slip_core::config::Config;
use slip_core::names::AppName;
use slip_engine::redact::Redactor;
use slip_engine::secrets::{Scope, SecretStore};

/// The redactor for `app` under `config`. A store that cannot be read is logged (without values) and the
/// config secrets are still covered.
pub fn for_app(config: &Config, store: &SecretStore, app: &AppName) -> Redactor {
    let mut pairs = app_secrets(config, store, app);
    pairs.extend(config_secrets(config));
    Redactor::new(pairs)
}

/// The redactor for slipd's own log lines: every app's secrets and the config's.
pub fn for_server(config: &Config, store: &SecretStore) -> Redactor {
    let mut pairs: Vec<(String, String)> = config.apps.keys().flat_map(|app| app_secrets(config, store, app)).collect();
    pairs.extend(config_secrets(config));
    Redactor::new(pairs)
}

/// The secrets of `app`, both scopes, and its `[app].secret`, labelled by key.
fn app_secrets(config: &Config, store: &SecretStore, app: &AppName) -> Vec<(String, String)> {
    let mut pairs: Vec<(String, String)> = Vec::new();
    for scope in [Scope::App, Scope::Preview] {
        match store.values(app, scope) {
            Ok(values) => pairs.extend(values.into_iter().map(|(k, v)| (k.to_string(), v.expose().to_owned()))),
            Err(e) => {
                tracing::warn!(app = %app, scope = scope.as_str(), error = %e, "cannot read secrets for redaction")
            }
        }
    }
    if let Some(secret) = config.apps.get(app).and_then(|a| a.secret.as_ref()) {
        pairs.push(("app.secret".into(), secret.expose().to_owned()));
    }
    pairs
}

/// The secrets of the server config itself, labelled by key.
fn config_secrets(config: &Config) -> Vec<(String, String)> {
    let mut out = Vec::new();
    if let Some(s) = &config.auth.secret {
        out.push(("auth.secret".to_owned(), s.expose().to_owned()));
    }
    if let Some(s) = &config.auth.admin_token {
        out.push(("auth.admin_token".to_owned(), s.expose().to_owned()));
    }
    if let Some(s) = &config.auth.metrics_token {
        out.push(("auth.metrics_token".to_owned(), s.expose().to_owned()));
    }
    if let Some(s) = &config.registry.ghcr_token {
        out.push(("registry.ghcr_token".to_owned(), s.expose().to_owned()));
    }
    for auth in &config.registry.auth {
        out.push((format!("registry.auth.{}.password", auth.host), auth.password.expose().to_owned()));
    }
    out
}

#[cfg(test)]
mod tests {
    use slip_core::config::{SourceFile, Sources, parse};
    use slip_engine::secrets::SecretKey;

    use super::*;

    #[test]
    fn covers_both_scopes_the_app_key_and_the_config_tokens() {
        let storage = tempfile::tempdir().unwrap();
        let sources = Sources {
            slip_toml: Some(SourceFile {
                path: "slip.toml".into(),
                text: format!(
                    "[auth]\nsecret = \"global-secret-value\"\nadmin_token = \"admin-token-value\"\n[storage]\npath = \"{}\"\n",
                    storage.path().display()
                ),
            }),
            apps: vec![SourceFile {
                path: "apps/web.toml".into(),
                text: "[app]\nname = \"web\"\nimage = \"registry.test/web\"\nsecret = \"app-secret-value\"\n".into(),
            }],
            env: Default::default(),
        };
        let config = parse(&sources).expect("test config").config;
        let app: AppName = "web".parse().unwrap();
        let store = SecretStore::new(storage.path());
        let key: SecretKey = "DATABASE_URL".parse().unwrap();
        store.set(&app, Scope::App, &key, "postgres://app-scope").unwrap();
        store.set(&app, Scope::Preview, &key, "postgres://preview-scope").unwrap();

        let redactor = for_app(&config, &store, &app);
        let text =
            "postgres://app-scope postgres://preview-scope app-secret-value global-secret-value admin-token-value";
        assert_eq!(
            redactor.redact(text),
            "[redacted:DATABASE_URL] [redacted:DATABASE_URL] [redacted:app.secret] [redacted:auth.secret] \
             [redacted:auth.admin_token]"
        );
    }
}
