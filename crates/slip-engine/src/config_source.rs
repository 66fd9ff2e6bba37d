//! Reads the server config from disk for `slip_core::config::parse` (SPEC §3.1 "Location", §2).
//!
//! `--config PATH` is either a directory (`PATH/slip.toml` and `PATH/apps/*.toml`) or the `slip.toml` file
//! itself (then `apps/` is the directory beside it). A missing `slip.toml` in an existing directory means all
//! defaults, a missing `apps/` means no apps, and non-`.toml` files, dotfiles and directories in `apps/` are
//! ignored. `slip.env` beside `slip.toml` is read when present (a world-readable one is refused), and the
//! process environment is laid over it. Paths in messages are relative to the config directory
//! (`slip.toml`, `apps/myapp.toml`).
//!
//! This module only reads: it does not validate (that is `slip_core::config`) and never prints a value from
//! `slip.env`. [`host_problems`] and [`host_warnings`] add the `--check` problems and warnings that need the
//! filesystem.

use std::collections::BTreeMap;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use slip_core::config::{Config, Problem, SourceFile, Sources};

/// Why the config files could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// `--config` names nothing.
    #[error(
        "config path {} does not exist: pass --config with the directory holding slip.toml (default /etc/slip) or the slip.toml file",
        .path.display()
    )]
    Missing {
        /// The path given.
        path: PathBuf,
    },
    /// A file or directory could not be read.
    #[error("cannot read {}", .path.display())]
    Io {
        /// What was being read.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// A config file is not UTF-8.
    #[error("{} is not UTF-8 text", .path.display())]
    NotUtf8 {
        /// The file.
        path: PathBuf,
    },
    /// `slip.env` is readable by every user.
    #[error("{} is readable by every user and may hold secrets: run chmod 640 (or 600) on it", .path.display())]
    WorldReadableEnv {
        /// The file.
        path: PathBuf,
    },
    /// A line of `slip.env` is not `KEY=VALUE`. The line itself is not shown: it may hold a secret.
    #[error("{}{}: not a KEY=VALUE line (optional `export `, quotes and # comments are allowed)", .path.display(), .line.map(|l| format!(":{l}")).unwrap_or_default())]
    InvalidEnv {
        /// The file.
        path: PathBuf,
        /// 1-based line, when it could be found.
        line: Option<usize>,
    },
}

/// Reads everything `slip_core::config::parse` needs, with the process environment laid over `slip.env`.
/// Environment entries that are not UTF-8 are skipped.
pub fn read(path: &Path) -> Result<Sources, ReadError> {
    let process = std::env::vars_os().filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)));
    read_with_env(path, process)
}

/// [`read`] with an explicit environment instead of the process's (which wins over `slip.env`).
pub fn read_with_env(path: &Path, env: impl IntoIterator<Item = (String, String)>) -> Result<Sources, ReadError> {
    let meta = std::fs::metadata(path).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => ReadError::Missing { path: path.to_path_buf() },
        _ => ReadError::Io { path: path.to_path_buf(), source: e },
    })?;
    let (dir, slip_toml_path, explicit_file) = if meta.is_dir() {
        (path.to_path_buf(), path.join("slip.toml"), false)
    } else {
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        (dir, path.to_path_buf(), true)
    };
    let shown_slip_toml = PathBuf::from(slip_toml_path.file_name().unwrap_or("slip.toml".as_ref()));
    let slip_toml = match read_text(&slip_toml_path) {
        Ok(text) => Some(SourceFile { path: shown_slip_toml, text }),
        Err(ReadError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound && !explicit_file => None,
        Err(e) => return Err(e),
    };
    let apps = read_apps(&dir.join("apps"))?;
    let mut vars = read_env_file(&dir.join("slip.env"))?;
    vars.extend(env);
    Ok(Sources { slip_toml, apps, env: vars })
}

/// `--check` problems that need the filesystem, which stop slipd from starting: a `secrets.key_file` that cannot
/// be read or does not hold a key (SPEC §11.2).
pub fn host_problems(config: &Config) -> Vec<Problem> {
    let Some(key_file) = &config.secrets.key_file else { return Vec::new() };
    match crate::secrets::MasterKey::load(key_file) {
        Ok(_) => Vec::new(),
        Err(e) => {
            let mut message = e.to_string();
            if let Some(source) = std::error::Error::source(&e) {
                message.push_str(&format!(": {source}"));
            }
            vec![Problem {
                file: "slip.toml".into(),
                line: None,
                column: None,
                message,
                hint: Some("create one with slipd --gen-key PATH".to_owned()),
            }]
        }
    }
}

/// `--check` warnings that need the filesystem: an `env_file` that cannot be read (deploys would fail with
/// `env_file_missing`), a volume root slipd cannot write or create (it must be in the unit's
/// `ReadWritePaths`), and a `secrets.key_file` readable by others (one that cannot be read is a
/// [`host_problems`] problem).
pub fn host_warnings(config: &Config) -> Vec<Problem> {
    let warn = |file: String, message: String, hint: Option<&str>| Problem {
        file: file.into(),
        line: None,
        column: None,
        message,
        hint: hint.map(str::to_owned),
    };
    let mut out = Vec::new();
    for (name, app) in &config.apps {
        if let Some(path) = &app.env_file
            && let Err(e) = std::fs::File::open(path)
        {
            out.push(warn(
                format!("apps/{name}.toml"),
                format!(
                    "env_file.path {} cannot be read ({e}); deploys will fail with env_file_missing",
                    path.display()
                ),
                None,
            ));
        }
    }
    for root in &config.storage.volume_roots {
        let existing = root.ancestors().find(|p| p.exists()).unwrap_or(Path::new("/"));
        if rustix::fs::access(existing, rustix::fs::Access::WRITE_OK).is_err() {
            let what = if existing == root.as_path() { "is not writable" } else { "cannot be created" };
            out.push(warn(
                "slip.toml".into(),
                format!("storage.volume_roots entry {} {what} by this user", root.display()),
                Some("create it for the slip user and add it to ReadWritePaths in slipd.service"),
            ));
        }
    }
    if let Some(key_file) = &config.secrets.key_file
        && let Ok(meta) = std::fs::metadata(key_file)
        && meta.permissions().mode() & 0o077 != 0
    {
        out.push(warn(
            "slip.toml".into(),
            format!("secrets.key_file {} is readable by other users", key_file.display()),
            Some("chmod 600 it"),
        ));
    }
    if let Some(key_file) = &config.secrets.key_file
        && let Ok(keys) = crate::secrets::rotate::load_keys(key_file)
        && let Some((_, pending)) = keys.pending
    {
        out.push(warn(
            "slip.toml".into(),
            format!(
                "a rotation of secrets.key_file did not finish ({} holds the new key); slipd reads secrets with both keys meanwhile",
                pending.display()
            ),
            Some("stop slipd, run slipd --rotate-key again, start slipd"),
        ));
    }
    out
}

fn read_text(path: &Path) -> Result<String, ReadError> {
    let bytes = std::fs::read(path).map_err(|source| ReadError::Io { path: path.to_path_buf(), source })?;
    String::from_utf8(bytes).map_err(|_| ReadError::NotUtf8 { path: path.to_path_buf() })
}

fn read_apps(apps_dir: &Path) -> Result<Vec<SourceFile>, ReadError> {
    let entries = match std::fs::read_dir(apps_dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => return Err(ReadError::Io { path: apps_dir.to_path_buf(), source }),
    };
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| ReadError::Io { path: apps_dir.to_path_buf(), source })?;
        let path = entry.path();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') || !name.ends_with(".toml") || !path.is_file() {
            continue;
        }
        files.push(path);
    }
    files.sort();
    files
        .into_iter()
        .map(|path| {
            let text = read_text(&path)?;
            let shown = PathBuf::from("apps").join(path.file_name().expect("read_dir entries have names"));
            Ok(SourceFile { path: shown, text })
        })
        .collect()
}

fn read_env_file(path: &Path) -> Result<BTreeMap<String, String>, ReadError> {
    let meta = match std::fs::metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
        Err(source) => return Err(ReadError::Io { path: path.to_path_buf(), source }),
    };
    if meta.permissions().mode() & 0o004 != 0 {
        return Err(ReadError::WorldReadableEnv { path: path.to_path_buf() });
    }
    let text = read_text(path)?;
    let mut vars = BTreeMap::new();
    for item in dotenvy::from_read_iter(text.as_bytes()) {
        match item {
            Ok((k, v)) => {
                vars.insert(k, v);
            }
            Err(dotenvy::Error::LineParse(line, _)) => {
                // Find the line number without ever echoing the line (it may hold a secret).
                let first = line.lines().next().unwrap_or_default();
                let number = text.lines().position(|l| l.trim_end() == first.trim_end()).map(|i| i + 1);
                return Err(ReadError::InvalidEnv { path: path.to_path_buf(), line: number });
            }
            Err(dotenvy::Error::Io(source)) => return Err(ReadError::Io { path: path.to_path_buf(), source }),
            Err(_) => return Err(ReadError::InvalidEnv { path: path.to_path_buf(), line: None }),
        }
    }
    Ok(vars)
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::os::unix::fs::PermissionsExt;

    use slip_core::config::parse;

    use super::*;

    const README_SLIP_TOML: &str = include_str!("../../slip-core/src/config/testdata/readme/slip.toml");
    const README_MYAPP: &str = include_str!("../../slip-core/src/config/testdata/readme/apps/myapp.toml");
    const README_PIPELINE: &str = include_str!("../../slip-core/src/config/testdata/readme/apps/pipeline.toml");

    /// The README's /etc/slip: slip.toml, apps/myapp.toml, and slip.env holding SLIP_SECRET (mode 0640).
    fn readme_dir() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("slip.toml"), README_SLIP_TOML).unwrap();
        fs::create_dir(dir.path().join("apps")).unwrap();
        fs::write(dir.path().join("apps/myapp.toml"), README_MYAPP).unwrap();
        write_env(dir.path(), "# written by install.sh\nSLIP_SECRET=from-slip-env-0123456789abcdef0123456789\n");
        dir
    }

    fn write_env(dir: &Path, text: &str) {
        let path = dir.join("slip.env");
        fs::write(&path, text).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();
    }

    fn no_env() -> Vec<(String, String)> {
        Vec::new()
    }

    #[test]
    fn directory_and_file_forms_read_the_same_files() {
        let dir = readme_dir();
        for path in [dir.path().to_path_buf(), dir.path().join("slip.toml")] {
            let sources = read_with_env(&path, no_env()).unwrap();
            assert_eq!(sources.slip_toml.as_ref().unwrap().path, Path::new("slip.toml"));
            assert_eq!(
                sources.apps.iter().map(|a| a.path.clone()).collect::<Vec<_>>(),
                [PathBuf::from("apps/myapp.toml")]
            );
            let loaded = parse(&sources).unwrap_or_else(|p| panic!("{p:?}"));
            assert_eq!(loaded.config.summary().to_string(), "1 app, listening on 127.0.0.1:7890");
            assert_eq!(
                loaded.config.auth.secret.as_ref().unwrap().expose(),
                "from-slip-env-0123456789abcdef0123456789",
                "SLIP_SECRET comes from slip.env"
            );
        }
    }

    #[test]
    fn the_process_environment_wins_over_slip_env() {
        let dir = readme_dir();
        let env = [("SLIP_SECRET".to_owned(), "from-process-0123456789abcdef0123456789".to_owned())];
        let sources = read_with_env(dir.path(), env).unwrap();
        assert_eq!(sources.env["SLIP_SECRET"], "from-process-0123456789abcdef0123456789");
        assert!(format!("{sources:?}").contains("SLIP_SECRET") && !format!("{sources:?}").contains("from-process"));
    }

    #[test]
    fn missing_pieces_mean_defaults_and_no_apps() {
        let dir = tempfile::tempdir().unwrap();
        let sources = read_with_env(dir.path(), no_env()).unwrap();
        assert!(sources.slip_toml.is_none() && sources.apps.is_empty() && sources.env.is_empty());
        assert_eq!(parse(&sources).unwrap().config.summary().to_string(), "0 apps, listening on 127.0.0.1:7890");

        let err = read_with_env(&dir.path().join("nope"), no_env()).unwrap_err();
        assert!(matches!(err, ReadError::Missing { .. }), "{err}");
        fs::create_dir(dir.path().join("conf")).unwrap();
        fs::write(dir.path().join("conf/other.txt"), "").unwrap();
        let err = read_with_env(&dir.path().join("conf/slip.toml"), no_env()).unwrap_err();
        assert!(matches!(err, ReadError::Missing { .. }), "an explicit file must exist: {err}");
    }

    #[test]
    fn only_toml_files_in_apps_are_read_in_name_order() {
        let dir = readme_dir();
        let apps = dir.path().join("apps");
        fs::write(apps.join("pipeline.toml"), README_PIPELINE).unwrap();
        fs::write(apps.join(".hidden.toml"), "not toml at all [").unwrap();
        fs::write(apps.join("myapp.toml.bak"), "not toml at all [").unwrap();
        fs::write(apps.join("README"), "notes").unwrap();
        fs::create_dir(apps.join("dir.toml")).unwrap();
        let sources = read_with_env(dir.path(), no_env()).unwrap();
        let names: Vec<_> = sources.apps.iter().map(|a| a.path.display().to_string()).collect();
        assert_eq!(names, ["apps/myapp.toml", "apps/pipeline.toml"]);
        assert_eq!(parse(&sources).unwrap().config.summary().to_string(), "2 apps, listening on 127.0.0.1:7890");
    }

    #[test]
    fn a_world_readable_slip_env_is_refused() {
        let dir = readme_dir();
        fs::set_permissions(dir.path().join("slip.env"), fs::Permissions::from_mode(0o644)).unwrap();
        let err = read_with_env(dir.path(), no_env()).unwrap_err();
        assert!(matches!(err, ReadError::WorldReadableEnv { .. }));
        assert!(
            err.to_string()
                .ends_with("slip.env is readable by every user and may hold secrets: run chmod 640 (or 600) on it")
        );
    }

    #[test]
    fn a_bad_slip_env_line_is_named_without_its_content() {
        let dir = readme_dir();
        write_env(dir.path(), "A=1\n# comment\nthis line has s3cret-value and no equals sign\nB=2\n");
        let err = read_with_env(dir.path(), no_env()).unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, ReadError::InvalidEnv { line: Some(3), .. }), "{text}");
        assert!(!text.contains("s3cret"), "{text}");
    }

    #[test]
    fn host_warnings_name_missing_files() {
        let dir = readme_dir();
        let storage = dir.path().join("state");
        fs::write(
            dir.path().join("slip.toml"),
            format!(
                "[storage]\npath = \"{}\"\n[secrets]\nkey_file = \"{}/master.key\"\n",
                storage.display(),
                storage.display()
            ),
        )
        .unwrap();
        fs::write(
            dir.path().join("apps/myapp.toml"),
            format!("{README_MYAPP}\n[env_file]\npath = \"{}/missing.env\"\n", dir.path().display()),
        )
        .unwrap();
        let config = parse(&read_with_env(dir.path(), no_env()).unwrap()).unwrap().config;
        let shown = |problems: Vec<Problem>| -> Vec<String> {
            problems.iter().map(|w| w.to_string().replace(&*dir.path().to_string_lossy(), "DIR")).collect()
        };
        let text = shown(host_warnings(&config));
        assert_eq!(text.len(), 1, "{text:#?}");
        assert!(text[0].starts_with("apps/myapp.toml: env_file.path DIR/missing.env cannot be read"), "{text:#?}");
        let text = shown(host_problems(&config));
        assert_eq!(text.len(), 1, "{text:#?}");
        assert!(
            text[0].starts_with("slip.toml: cannot read the secrets key file DIR/state/master.key (secrets.key_file)"),
            "{text:#?}"
        );

        fs::create_dir(&storage).unwrap();
        fs::write(storage.join("master.key"), "k").unwrap();
        fs::set_permissions(storage.join("master.key"), fs::Permissions::from_mode(0o644)).unwrap();
        let text: Vec<String> = host_warnings(&config).iter().map(|w| w.message.clone()).collect();
        assert!(text[1].ends_with("master.key is readable by other users"), "{text:#?}");
        let text = shown(host_problems(&config));
        assert!(text[0].contains("master.key (secrets.key_file) holds 1 bytes"), "{text:#?}");

        fs::remove_file(storage.join("master.key")).unwrap();
        crate::secrets::MasterKey::create_file(&storage.join("master.key")).unwrap();
        assert!(host_problems(&config).is_empty());
    }
}
