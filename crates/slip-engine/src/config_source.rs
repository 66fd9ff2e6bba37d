//! Reads the server config from disk for `slip_core::config::parse` (SPEC §3.1 "Location"): a directory
//! (`slip.toml` + `apps/*.toml`) or the `slip.toml` file itself (with `apps/` beside it), plus `slip.env`.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use slip_core::config::{SourceFile, Sources};

/// Why the config files could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// A file or directory could not be read.
    #[error("cannot read {}", .path.display())]
    Io {
        /// What was being read.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// `slip.env` is readable by everyone.
    #[error("{} is readable by every user; it may hold secrets: chmod 640 (or 600) it", .path.display())]
    WorldReadableEnv {
        /// The file.
        path: PathBuf,
    },
    /// `slip.env` is not valid.
    #[error("{} is not a valid KEY=VALUE file: {message}", .path.display())]
    InvalidEnv {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

/// Reads everything the parser needs, with the process environment over `slip.env`.
pub fn read(path: &Path) -> Result<Sources, ReadError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ReadError::Io { path, source }
    };
    let (dir, slip_toml) = if path.is_dir() {
        (path.to_path_buf(), path.join("slip.toml"))
    } else {
        (path.parent().map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from(".")), path.to_path_buf())
    };
    let slip_toml = match std::fs::read_to_string(&slip_toml) {
        Ok(text) => Some(SourceFile { path: PathBuf::from("slip.toml"), text }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && path.is_dir() => None,
        Err(e) => return Err(io(&slip_toml)(e)),
    };
    let mut apps = Vec::new();
    let apps_dir = dir.join("apps");
    match std::fs::read_dir(&apps_dir) {
        Ok(entries) => {
            let mut names: Vec<PathBuf> = entries
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "toml"))
                .filter(|p| !p.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.')))
                .collect();
            names.sort();
            for p in names {
                let text = std::fs::read_to_string(&p).map_err(io(&p))?;
                let shown = PathBuf::from("apps").join(p.file_name().expect("file name"));
                apps.push(SourceFile { path: shown, text });
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io(&apps_dir)(e)),
    }
    let mut env = BTreeMap::new();
    let env_path = dir.join("slip.env");
    if let Ok(meta) = std::fs::metadata(&env_path) {
        if meta.permissions().mode() & 0o004 != 0 {
            return Err(ReadError::WorldReadableEnv { path: env_path });
        }
        let text = std::fs::read_to_string(&env_path).map_err(io(&env_path))?;
        for item in dotenvy::from_read_iter(text.as_bytes()) {
            let (k, v) = item.map_err(|e| ReadError::InvalidEnv { path: env_path.clone(), message: e.to_string() })?;
            env.insert(k, v);
        }
    }
    env.extend(std::env::vars());
    Ok(Sources { slip_toml, apps, env })
}
