//! `slip secrets list|set|rm` (SPEC §15), against slipd's API or, in local mode, directly on the store.
//!
//! Local mode applies when `--server` was not given (neither flag nor `SLIP_SERVER`) and nothing answers on
//! the default loopback address: the CLI reads `storage.path` and `secrets.key_file` from the server config
//! (`--config`, default `/etc/slip`), requires `apps/<app>.toml` to exist, and writes through
//! `slip_engine::secrets` (the same code and rules as slipd, values encrypted when a key file is set, files
//! owned by the storage directory's owner). Filesystem permissions are the
//! authorisation there, so `--token` is ignored. Every key is validated before anything is written, and no
//! value is ever printed.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Read};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use slip_api::{SecretInfo, SecretList, SecretPut, SecretSet};
use slip_core::error_chain::error_chain;
use slip_core::names::AppName;
use slip_engine::secrets::rotate::load_keys;
use slip_engine::secrets::{MIN_REDACTABLE_LEN, Scope, SecretError, SecretKey, SecretStore, check_settable};

use crate::client::{Client, Failure, encode, exit};
use slip_api::time::rfc3339;

use crate::table::Table;

/// Where `secrets` commands act.
pub enum Target {
    /// slipd's API.
    Remote(Client),
    /// The store on this machine (slipd not running).
    Local(Local),
}

/// The local secret store of a server config.
pub struct Local {
    store: SecretStore,
    apps_dir: PathBuf,
}

/// Picks the target: the API, unless `--server` was not given and nothing listens on `default_server`.
pub async fn target(
    client: Client,
    server_given: bool,
    default_server: &str,
    config: &Path,
) -> Result<Target, Failure> {
    if server_given || answers(default_server).await {
        return Ok(Target::Remote(client));
    }
    let local = Local::open(config)?;
    eprintln!("(local mode: slipd not running)");
    Ok(Target::Local(local))
}

/// Whether something accepts TCP connections at the `http://host:port` address within a second.
async fn answers(server: &str) -> bool {
    let authority = server.trim_start_matches("http://").trim_start_matches("https://").trim_end_matches('/');
    let connect = tokio::net::TcpStream::connect(authority);
    matches!(tokio::time::timeout(Duration::from_secs(1), connect).await, Ok(Ok(_)))
}

impl Local {
    /// Reads the server config at `config` (a directory or its `slip.toml`) for `storage.path` and, when set,
    /// loads `secrets.key_file` (a key file that cannot be used is an error: nothing is written in plain text).
    pub fn open(config: &Path) -> Result<Local, Failure> {
        let hint = Some(format!(
            "local mode reads the server config from --config ({}); start slipd, or pass --server to use its API",
            config.display()
        ));
        let sources = slip_engine::config_source::read(config).map_err(|e| {
            Failure::new(
                format!("slipd is not running and the server config cannot be read: {}", error_chain(&e)),
                hint.clone(),
                exit::USAGE,
            )
        })?;
        let loaded = slip_core::config::parse(&sources).map_err(|problems| {
            let list: Vec<String> = problems.iter().map(|p| format!("  {p}")).collect();
            Failure::new(
                format!(
                    "slipd is not running and the server config at {} is invalid:\n{}",
                    config.display(),
                    list.join("\n")
                ),
                hint.clone(),
                exit::USAGE,
            )
        })?;
        let dir = if config.is_dir() {
            config.to_path_buf()
        } else {
            config.parent().map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("."))
        };
        let storage = loaded.config.storage.path.clone();
        let mut store = SecretStore::new(&storage);
        if let Ok(meta) = std::fs::metadata(&storage) {
            store = store.owned_by(meta.uid(), meta.gid());
        }
        if let Some(path) = &loaded.config.secrets.key_file {
            // With the new key of an unfinished `slipd --rotate-key` too, so every secret reads as slipd reads it.
            let keys = load_keys(path).map_err(|e| {
                let hint =
                    "local mode encrypts with slipd's key: run slip as a user that can read it (sudo), or start slipd";
                Failure::new(error_chain(&e), Some(hint.to_owned()), exit::USAGE)
            })?;
            store = store.with_key(keys.current);
            if let Some((pending, _)) = keys.pending {
                store = store.also_reading(pending);
            }
        }
        Ok(Local { store, apps_dir: dir.join("apps") })
    }

    /// The app, if `apps/<app>.toml` exists.
    fn app(&self, name: &str) -> Result<AppName, Failure> {
        let missing = || Failure {
            message: format!(
                "no app {name:?} in the server config ({} does not exist)",
                self.apps_dir.join(format!("{name}.toml")).display()
            ),
            hint: Some("create the app's config file first".into()),
            exit_code: exit::API,
            code: Some("app_not_found".into()),
        };
        let app: AppName = name.parse().map_err(|_| missing())?;
        if !self.apps_dir.join(format!("{app}.toml")).is_file() {
            return Err(missing());
        }
        Ok(app)
    }
}

/// `slip secrets list <app> [--scope]`.
pub async fn list(target: &Target, app: &str, scope: Option<Scope>, json: bool) -> Result<u8, Failure> {
    let list = match target {
        Target::Remote(client) => {
            let mut path = format!("/v1/secrets/{}", encode(app));
            if let Some(scope) = scope {
                path.push_str(&format!("?scope={scope}"));
            }
            client.get_admin::<SecretList>(&path).await?
        }
        Target::Local(local) => {
            let app = local.app(app)?;
            let metas = local.store.list(&app, scope).map_err(store_failure)?;
            SecretList {
                secrets: metas
                    .into_iter()
                    .map(|m| SecretInfo {
                        key: m.key.to_string(),
                        scope: m.scope.as_str().to_owned(),
                        updated_at: rfc3339(m.updated_at),
                        fingerprint: m.fingerprint,
                    })
                    .collect(),
            }
        }
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&list).unwrap_or_default());
        return Ok(exit::OK);
    }
    let mut table = Table::new(&["KEY", "SCOPE", "UPDATED", "FINGERPRINT"]);
    for s in &list.secrets {
        table.row(vec![s.key.clone(), s.scope.clone(), s.updated_at.clone(), s.fingerprint.clone()]);
    }
    table.print();
    Ok(exit::OK)
}

/// `slip secrets set <app> KEY=VALUE… [--scope] [--stdin KEY]`.
pub async fn set(
    target: &Target,
    app: &str,
    pairs: &[String],
    stdin_key: Option<&str>,
    scope: Scope,
    json: bool,
) -> Result<u8, Failure> {
    let mut values: BTreeMap<SecretKey, String> = BTreeMap::new();
    for pair in pairs {
        let Some((key, value)) = pair.split_once('=') else {
            return Err(Failure::new(
                format!("expected KEY=VALUE, got {:?}", pair.chars().take(40).collect::<String>()),
                Some("e.g. slip secrets set myapp DATABASE_URL=postgres://…, or --stdin KEY to read a value".into()),
                exit::USAGE,
            ));
        };
        values.insert(parse_key(key, scope)?, value.to_owned());
    }
    if let Some(key) = stdin_key {
        let key = parse_key(key, scope)?;
        if std::io::stdin().is_terminal() {
            eprintln!("reading the value of {key} from stdin (end with Ctrl-D)");
        }
        let mut value = String::new();
        std::io::stdin()
            .read_to_string(&mut value)
            .map_err(|e| Failure::new(format!("reading the value of {key} from stdin: {e}"), None, exit::USAGE))?;
        let value = value.strip_suffix('\n').map(|v| v.strip_suffix('\r').unwrap_or(v)).unwrap_or(&value).to_owned();
        values.insert(key, value);
    }
    if values.is_empty() {
        return Err(Failure::new("nothing to set", Some("give KEY=VALUE pairs or --stdin KEY".into()), exit::USAGE));
    }
    for (key, value) in &values {
        if value.is_empty() {
            return Err(Failure::new(
                format!("the value of {key} is empty"),
                Some(format!("to remove a secret: slip secrets rm {app} {key}")),
                exit::USAGE,
            ));
        }
    }

    let mut answers = Vec::new();
    for (key, value) in &values {
        let answer = match target {
            Target::Remote(client) => {
                let path = format!("/v1/secrets/{}/{}", encode(app), encode(key.as_str()));
                let body = SecretPut { value: value.clone(), scope: Some(scope.as_str().to_owned()) };
                client.put_admin::<SecretSet, _>(&path, &body).await?
            }
            Target::Local(local) => {
                let name = local.app(app)?;
                let written = local.store.set(&name, scope, key, value).map_err(store_failure)?;
                SecretSet {
                    app: name.to_string(),
                    key: key.to_string(),
                    scope: scope.as_str().to_owned(),
                    created: written.created,
                    updated_at: rfc3339(written.updated_at),
                }
            }
        };
        if key.is_webhook_key() && value.len() < slip_core::defaults::MIN_KEY_LENGTH {
            // The same warning `slipd --check` gives a short auth.secret or app.secret.
            eprintln!(
                "warning: {app}/{key} is shorter than {} characters\nhint: `slip gen-secret` prints a 64-character \
                 random key",
                slip_core::defaults::MIN_KEY_LENGTH
            );
        }
        if value.len() < MIN_REDACTABLE_LEN {
            eprintln!(
                "warning: the value of {key} is shorter than {MIN_REDACTABLE_LEN} bytes: slip cannot redact it from \
                 logs and events"
            );
        }
        if !json {
            let what = if answer.created { "created" } else { "updated" };
            println!("✓ {}/{} {what} ({} scope)", answer.app, answer.key, answer.scope);
        }
        answers.push(answer);
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&answers).unwrap_or_default());
    }
    if values.keys().any(|k| !k.is_webhook_key()) && !json {
        println!("containers get the new values at the next deploy");
    }
    Ok(exit::OK)
}

/// `slip secrets rm <app> KEY… [--scope]`.
pub async fn rm(target: &Target, app: &str, keys: &[String], scope: Scope) -> Result<u8, Failure> {
    let keys = keys.iter().map(|k| k.parse::<SecretKey>().map_err(key_failure)).collect::<Result<Vec<_>, _>>()?;
    for key in &keys {
        match target {
            Target::Remote(client) => {
                let path = format!("/v1/secrets/{}/{}?scope={scope}", encode(app), encode(key.as_str()));
                client.delete_admin::<serde_json::Value>(&path).await?;
            }
            Target::Local(local) => {
                let name = local.app(app)?;
                if !local.store.delete(&name, scope, key).map_err(store_failure)? {
                    return Err(Failure {
                        message: format!("app {name} has no {scope}-scope secret {key}"),
                        hint: Some(format!("slip secrets list {name}")),
                        exit_code: exit::API,
                        code: Some("secret_not_found".into()),
                    });
                }
            }
        }
        println!("✓ {app}/{key} removed ({scope} scope)");
    }
    Ok(exit::OK)
}

fn parse_key(key: &str, scope: Scope) -> Result<SecretKey, Failure> {
    let key = key.parse::<SecretKey>().map_err(key_failure)?;
    check_settable(&key, scope).map_err(key_failure)?;
    Ok(key)
}

fn key_failure(e: SecretError) -> Failure {
    Failure::new(e.to_string(), None, exit::USAGE)
}

/// A store error in local mode: permission problems are exit 4 with a `sudo` hint.
fn store_failure(e: SecretError) -> Failure {
    let denied = matches!(&e, SecretError::Io { source, .. } if source.kind() == std::io::ErrorKind::PermissionDenied);
    match e {
        SecretError::Io { .. } if denied => Failure::new(
            error_chain(&e),
            Some("the secret store belongs to slipd's user: run with sudo".into()),
            exit::AUTH,
        ),
        SecretError::Io { .. } | SecretError::ForeignOwner { .. } => Failure::new(error_chain(&e), None, exit::API),
        other => key_failure(other),
    }
}
