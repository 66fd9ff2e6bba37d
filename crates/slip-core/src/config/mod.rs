//! Server configuration (SPEC §3, §4): `slip.toml` and `apps/*.toml`, parsed from memory into a validated
//! [`Config`].
//!
//! Reading files is the caller's job (`slip_engine::config_source` builds [`Sources`]); this module does no
//! IO and reads no environment of its own: variables for `${VAR}` come in [`Sources::env`].
//!
//! Parsing has two stages. Stage one (`reader`) walks each file's TOML with `toml_edit`, which keeps a
//! position for every key and value: it checks keys against the ones valid at that position, checks TOML
//! types and interpolates strings. Stage two (`server`, `app`, `rules`) turns those values into newtypes,
//! applies the named defaults of [`crate::defaults`] and checks values, cross-field and cross-file rules.
//! Nothing outside this module sees TOML. Every problem in every file is collected and returned at once,
//! sorted by file, line and column.
//!
//! Values read from the environment never appear in a [`Problem`] or in `Debug` output: problems quote the
//! file as written, and secrets are held in [`Secret`]. Presence is kept where the deploy layer merges with
//! the repo config (SPEC §5): those fields are `Option`s holding exactly what the server file says.
//!
//! # Layout
//! - `reader`: stage one, the raw walk.
//! - `server`: `slip.toml` types and their stage two; `[caddy]` and `[preview]` in submodules, and
//!   `server::values` for the value rules app files, the repo config and pod manifests share.
//! - `app`: `apps/<name>.toml` types and their stage two, one submodule per section (`routing`, `health`,
//!   `env`, `volumes`, `containers`, `images`); `app` itself keeps `[app]`, `[deploy]`, `[resources]`,
//!   `[network]` and `[preview]`.
//! - `rules`: rules across apps, and warnings.
//! - `notify`: `[[notifications]]`, in both kinds of file; `github`: an app's `[github]`.
//! - `interpolate`, `problem`, `secret`: `${VAR}`, [`Problem`], [`Secret`].
//!
//! The repo config (SPEC §5) is read by `crate::repo_config` with the same `reader`, verbatim.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use crate::names::AppName;

// `app`, `problem`, `reader` and `server` are also read by `crate::repo_config`, which shares the walk and
// the value rules.
pub(crate) mod app;
pub(crate) mod github;
mod interpolate;
pub(crate) mod notify;
pub(crate) mod problem;
pub(crate) mod reader;
mod rules;
mod secret;
pub(crate) mod server;

#[cfg(test)]
mod tests;

pub use app::{
    APP_SECTIONS, AppConfig, AppPreview, ContainerOverride, DeployCfg, EnvMap, Health, ImagePattern, Kind, Owner,
    PinnedImage, ResolvedHealth, Resources, Route, Volume, VolumePreview, route_id,
};
pub use github::GithubDeployments;
pub use notify::{Notification, NotifyEvent, NotifyFormat};
pub use problem::Problem;
pub use reader::UnknownKeys;
pub use secret::Secret;
pub use server::{
    Auth, Backend, Caddy, Listen, Log, LogFormat, Preview, PreviewTls, ProviderValue, PublicApi, Registry,
    RegistryAuth, Runtime, Secrets, Server, Storage, Tls, TlsMode,
};

/// One config file's text and the path shown in messages.
#[derive(Debug, Clone)]
pub struct SourceFile {
    /// The path as shown in messages: relative to the config directory (`slip.toml`, `apps/myapp.toml`) or
    /// absolute. For app files its stem must be the app's name.
    pub path: PathBuf,
    /// The file's contents.
    pub text: String,
}

/// Everything the parser reads.
#[derive(Clone, Default)]
pub struct Sources {
    /// `slip.toml`; `None` means all defaults.
    pub slip_toml: Option<SourceFile>,
    /// `apps/*.toml`, one per app.
    pub apps: Vec<SourceFile>,
    /// Variables for `${VAR}`: the process environment laid over `slip.env` (the process wins).
    pub env: BTreeMap<String, String>,
}

impl fmt::Debug for Sources {
    /// Variable names only: their values are often secrets.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sources")
            .field("slip_toml", &self.slip_toml.as_ref().map(|s| &s.path))
            .field("apps", &self.apps.iter().map(|s| &s.path).collect::<Vec<_>>())
            .field("env", &self.env.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// A valid config and the warnings about it.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The validated config.
    pub config: Config,
    /// Things that work but deserve attention (`--check` prints them with `⚠`).
    pub warnings: Vec<Problem>,
}

/// The daemon's validated config: `slip.toml` plus every app.
#[derive(Debug, Clone)]
pub struct Config {
    /// `[server]`.
    pub server: Server,
    /// `[runtime]`.
    pub runtime: Runtime,
    /// `[auth]`.
    pub auth: Auth,
    /// `[registry]`.
    pub registry: Registry,
    /// `[caddy]`.
    pub caddy: Caddy,
    /// `[storage]`.
    pub storage: Storage,
    /// `[secrets]`.
    pub secrets: Secrets,
    /// `[preview]`.
    pub preview: Preview,
    /// `[log]`.
    pub log: Log,
    /// `[[notifications]]`: server-wide deploy notifications.
    pub notifications: Vec<Notification>,
    /// Apps by name.
    pub apps: BTreeMap<AppName, AppConfig>,
}

impl Config {
    /// What `--check` reports about a valid config.
    pub fn summary(&self) -> Summary {
        Summary { apps: self.apps.len(), listen: self.server.listen }
    }
}

/// The one-line description of a valid config: `1 app, listening on 127.0.0.1:7890`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    /// Number of apps.
    pub apps: usize,
    /// The API listener.
    pub listen: Listen,
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let plural = if self.apps == 1 { "" } else { "s" };
        write!(f, "{} app{plural}, listening on {}", self.apps, self.listen)
    }
}

/// Parses and validates every file, collecting every problem.
///
/// `Err` holds all problems across all files, sorted by file, line and column; `Ok` holds the config and
/// its warnings (also sorted).
pub fn parse(sources: &Sources) -> Result<Loaded, Vec<Problem>> {
    let mut problems = Vec::new();
    let mut warnings = Vec::new();
    let empty = SourceFile { path: PathBuf::from("slip.toml"), text: String::new() };
    let daemon_file = sources.slip_toml.as_ref().unwrap_or(&empty);
    let mut r = reader::Reader::new(daemon_file, &sources.env);
    let daemon = server::read(&mut r);
    problems.append(&mut r.problems);
    warnings.append(&mut r.warnings);

    let mut drafts = Vec::new();
    for file in &sources.apps {
        let mut r = reader::Reader::new(file, &sources.env);
        let draft = app::read(&mut r, &daemon);
        problems.append(&mut r.problems);
        warnings.append(&mut r.warnings);
        drafts.extend(draft);
    }
    rules::across_apps(&daemon, &drafts, &mut problems);
    rules::warnings(&daemon, &drafts, &mut warnings);

    if !problems.is_empty() {
        problem::sort(&mut problems);
        return Err(problems);
    }
    problem::sort(&mut warnings);
    let apps = drafts.into_iter().map(|d| (d.config.name.clone(), d.config)).collect();
    let server::Daemon {
        server, runtime, auth, registry, caddy, storage, secrets, preview, log, notifications, ..
    } = daemon;
    let config = Config { server, runtime, auth, registry, caddy, storage, secrets, preview, log, notifications, apps };
    Ok(Loaded { config, warnings })
}

/// Declares a closed set of config words as an enum with `as_str`, `Display`, comparison with `&str` and
/// the `OPTIONS` table the reader uses to parse (and suggest) them.
macro_rules! vocabulary {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vmeta])* $variant),+
        }

        impl $name {
            /// Every value with its spelling in config files.
            pub const OPTIONS: &'static [(&'static str, $name)] = &[$(($text, $name::$variant)),+];

            /// The spelling in config files, the API and history.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.as_str() == *other
            }
        }
    };
}
use vocabulary;
