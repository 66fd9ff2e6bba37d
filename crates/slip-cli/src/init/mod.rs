//! `slip init [<name>] [--kind web|worker|pod] [--image REPO] [--domain HOST] [--port N] [--dir DIR]
//! [--force]` (SPEC §15): writes commented starter files for a new app.
//!
//! In DIR (default `.`): `slip/slip.toml` (the repo config), `slip/pod.yaml` for pods, and `<name>.toml`, the
//! server's app file to install as `/etc/slip/apps/<name>.toml`. Existing files are never overwritten
//! without `--force`, and nothing is written unless every file can be. The text is in [`templates`].

mod templates;

use std::path::{Path, PathBuf};

use slip_core::config::Kind;
use slip_core::names::{AppName, ImageRepo, is_hostname};

use crate::client::{Failure, exit};
use templates::Starter;

/// The container port starter files use unless `--port` says otherwise.
const DEFAULT_PORT: u16 = 8080;

/// `slip init` arguments.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// App name (default: the name of the project directory, DIR).
    name: Option<String>,
    /// What the app is: web, worker or pod.
    #[arg(long, default_value = "web", value_parser = parse_kind)]
    kind: Kind,
    /// Image repository, without a tag (default: ghcr.io/you/<name>).
    #[arg(long, value_name = "REPO")]
    image: Option<String>,
    /// The route's hostname (default: <name>.example.com); web and pod only.
    #[arg(long, value_name = "HOST")]
    domain: Option<String>,
    /// The container port that serves HTTP (default: 8080); web and pod only.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    port: Option<u16>,
    /// The project directory to write into.
    #[arg(long, value_name = "DIR", default_value = ".")]
    dir: PathBuf,
    /// Overwrite files that already exist.
    #[arg(long)]
    force: bool,
}

/// Runs `slip init`.
pub fn run(args: &Args, quiet: bool) -> Result<u8, Failure> {
    let starter = starter(args)?;
    let mut files = vec![(PathBuf::from("slip/slip.toml"), templates::repo_config(&starter))];
    if starter.kind == Kind::Pod {
        files.push((PathBuf::from("slip/pod.yaml"), templates::pod_manifest(&starter)));
    }
    let server_file = PathBuf::from(format!("{}.toml", starter.name));
    files.push((server_file.clone(), templates::server_app(&starter)));

    let existing: Vec<String> =
        files.iter().map(|(rel, _)| args.dir.join(rel)).filter(|p| p.exists()).map(|p| shown(&p)).collect();
    if !existing.is_empty() && !args.force {
        let (list, verb) = match existing.as_slice() {
            [one] => (one.clone(), "exists"),
            more => (more.join(", "), "exist"),
        };
        return Err(Failure::new(
            format!("{list} already {verb}; not overwriting"),
            Some("pass --force to overwrite, or --dir to write somewhere else".into()),
            exit::USAGE,
        ));
    }
    for (rel, text) in &files {
        let path = args.dir.join(rel);
        write(&path, text)?;
        if !quiet {
            let verb = if existing.contains(&shown(&path)) { "overwrote" } else { "created" };
            println!("{verb} {}", shown(&path));
        }
    }
    if !quiet {
        let name = &starter.name;
        println!(
            "next: add `COPY slip/ /slip/` to the Dockerfile, check with `slip validate`, and install {} on the \
             server as /etc/slip/apps/{name}.toml",
            shown(&args.dir.join(&server_file))
        );
    }
    Ok(exit::OK)
}

/// The validated answers, with defaults filled in.
fn starter(args: &Args) -> Result<Starter, Failure> {
    let name = match &args.name {
        Some(n) => n.parse::<AppName>().map_err(|e| usage(format!("{n:?} is not an app name: {}", e.rule), None))?,
        None => name_from_dir(&args.dir)?,
    };
    let routed = args.kind != Kind::Worker;
    if !routed && args.domain.is_some() {
        return Err(usage("--domain does not apply to workers: they have no routes".into(), None));
    }
    if !routed && args.port.is_some() {
        return Err(usage(
            "--port does not apply to workers: they have no routes".into(),
            Some("set health.port in slip/slip.toml if the worker serves a health endpoint".into()),
        ));
    }
    let image = match &args.image {
        Some(image) => {
            image.parse::<ImageRepo>().map_err(|e| usage(format!("--image {image:?}: {}", e.rule), None))?;
            image.clone()
        }
        None => format!("ghcr.io/you/{name}"),
    };
    let domain = match &args.domain {
        Some(d) if is_hostname(&d.to_ascii_lowercase(), true) => d.to_ascii_lowercase(),
        Some(d) => {
            return Err(usage(
                format!("--domain {d:?} is not a hostname"),
                Some("use a DNS name such as app.example.com, without scheme, port or path".into()),
            ));
        }
        None => format!("{name}.example.com"),
    };
    Ok(Starter { name, kind: args.kind, image, domain, port: args.port.unwrap_or(DEFAULT_PORT) })
}

/// The app name from the project directory's name, with a usable suggestion when it is not one.
fn name_from_dir(dir: &Path) -> Result<AppName, Failure> {
    // The real path when the directory exists (so `.` and `..` name it), else the path as given.
    let absolute = std::fs::canonicalize(dir)
        .or_else(|_| std::path::absolute(dir))
        .map_err(|e| usage(format!("cannot resolve {}: {e}", dir.display()), None))?;
    let base = absolute
        .components()
        .rfind(|c| matches!(c, std::path::Component::Normal(_)))
        .and_then(|c| c.as_os_str().to_str().map(str::to_owned))
        .unwrap_or_default();
    base.parse::<AppName>().map_err(|e| {
        let hint = match suggest_name(&base) {
            Some(s) => format!("pass a name: slip init {s}"),
            None => "pass a name: slip init myapp".into(),
        };
        usage(format!("the directory name {base:?} is not an app name: {}", e.rule), Some(hint))
    })
}

/// `My_Project` → `my-project`: lower case, other characters as '-', trimmed to a DNS label.
fn suggest_name(base: &str) -> Option<String> {
    let mapped: String =
        base.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '-' }).collect();
    let mut squeezed = String::new();
    for c in mapped.chars() {
        if !(c == '-' && squeezed.ends_with('-')) {
            squeezed.push(c);
        }
    }
    let trimmed: String = squeezed.trim_matches('-').chars().take(63).collect();
    let trimmed = trimmed.trim_end_matches('-').to_owned();
    trimmed.parse::<AppName>().ok().map(|n| n.as_str().to_owned())
}

fn write(path: &Path, text: &str) -> Result<(), Failure> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .map_err(|e| Failure::new(format!("cannot create {}: {e}", parent.display()), None, exit::USAGE))?;
    }
    std::fs::write(path, text)
        .map_err(|e| Failure::new(format!("cannot write {}: {e}", shown(path)), None, exit::USAGE))
}

/// A path as messages show it: without a leading `./`.
fn shown(path: &Path) -> String {
    path.strip_prefix(".").unwrap_or(path).display().to_string()
}

fn usage(message: String, hint: Option<String>) -> Failure {
    Failure::new(message, hint, exit::USAGE)
}

fn parse_kind(s: &str) -> Result<Kind, String> {
    Kind::OPTIONS.iter().find(|(name, _)| *name == s).map(|(_, k)| *k).ok_or_else(|| {
        let names: Vec<&str> = Kind::OPTIONS.iter().map(|(n, _)| *n).collect();
        format!("use one of {}", names.join(", "))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directory_names_suggest_app_names() {
        assert_eq!(suggest_name("My_Project").as_deref(), Some("my-project"));
        assert_eq!(suggest_name("__x__").as_deref(), Some("x"));
        assert_eq!(suggest_name("a..b").as_deref(), Some("a-b"));
        assert_eq!(suggest_name("___"), None);
        assert_eq!(suggest_name(&"a".repeat(80)).map(|s| s.len()), Some(63));
    }
}
