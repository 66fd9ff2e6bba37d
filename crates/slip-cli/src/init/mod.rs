//! `slip init [<name>] [--kind web|worker|pod] [--image REPO] [--domain HOST] [--port N] [--dir DIR]
//! [--force]` (SPEC §15): writes commented starter files for a new app.
//!
//! In DIR (default `.`): `slip/slip.toml` (the repo config), `slip/pod.yaml` for pods, and `<name>.toml`, the
//! server's app file to install as `/etc/slip/apps/<name>.toml`. The text is in [`templates`].
//!
//! Existing files are never overwritten without `--force`, and a symbolic link is never written through:
//! without `--force` it is refused, with it the link itself is replaced and its target left alone. Nothing is
//! written unless every file can be: each is first written in full to a new temporary file beside its
//! target, and only then are all renamed into place. A failure before that removes the temporary files and
//! any directory made for them; only a rename failing midway (say, a target replaced by a directory
//! meanwhile) could leave some files in place.

mod templates;

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use slip_core::config::Kind;
use slip_core::names::{AppName, ImageRepo, is_hostname};

use crate::client::{Failure, exit, printed};
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

    let targets: Vec<Target> = files
        .into_iter()
        .map(|(rel, text)| {
            let path = args.dir.join(rel);
            let found = found(&path);
            Target { path, text, found }
        })
        .collect();
    refuse(&targets, args.force)?;
    write_all(&targets)?;
    if !quiet {
        printed(report(&mut std::io::stdout().lock(), &targets, &starter.name, &args.dir.join(&server_file)))?;
    }
    Ok(exit::OK)
}

/// One starter file: where it goes, its text, and what is there now.
struct Target {
    path: PathBuf,
    text: String,
    found: Found,
}

/// What a target path holds before `slip init` writes it.
enum Found {
    /// Nothing (or nothing that can be looked at: writing it says why).
    Nothing,
    /// A regular file, with its permissions, which the new file keeps.
    File(fs::Permissions),
    /// A symbolic link, dangling or not.
    Link,
    /// A directory or another kind of file, which is never replaced.
    Other,
}

/// Files written in full beside their targets but not yet renamed into place, and the directories made for
/// them. Dropping it removes whatever is still here, so an early return leaves nothing behind.
#[derive(Default)]
struct Staged {
    /// (temporary file, target), in the order of the targets.
    files: Vec<(PathBuf, PathBuf)>,
    /// Directories made, parents first.
    dirs: Vec<PathBuf>,
}

impl Drop for Staged {
    fn drop(&mut self) {
        // Best effort: the error that got us here is the one to report. Directories that received a file
        // are not empty, so `remove_dir` leaves them.
        for (temp, _) in &self.files {
            let _ = fs::remove_file(temp);
        }
        for dir in self.dirs.iter().rev() {
            let _ = fs::remove_dir(dir);
        }
    }
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

/// What is at `path` now, without following a symbolic link.
fn found(path: &Path) -> Found {
    match fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => Found::Link,
        Ok(m) if m.is_file() => Found::File(m.permissions()),
        Ok(_) => Found::Other,
        Err(_) => Found::Nothing,
    }
}

/// Refuses targets that are not files, and (without `--force`) symbolic links and existing files.
fn refuse(targets: &[Target], force: bool) -> Result<(), Failure> {
    let listed = |keep: fn(&Found) -> bool| -> Vec<String> {
        targets.iter().filter(|t| keep(&t.found)).map(|t| shown(&t.path)).collect()
    };
    let others = listed(|f| matches!(f, Found::Other));
    if !others.is_empty() {
        let (list, verb) = agree(&others, "is not a file", "are not files");
        return Err(usage(
            format!("{list} {verb}; not replacing"),
            Some("move it out of the way, or pass --dir to write somewhere else".into()),
        ));
    }
    if force {
        return Ok(());
    }
    let links = listed(|f| matches!(f, Found::Link));
    if !links.is_empty() {
        let (list, verb) = agree(&links, "is a symbolic link", "are symbolic links");
        return Err(usage(
            format!("{list} {verb}; slip init does not write through links"),
            Some("pass --force to replace the link itself (its target is left alone), or --dir".into()),
        ));
    }
    let existing = listed(|f| matches!(f, Found::File(_)));
    if !existing.is_empty() {
        let (list, verb) = agree(&existing, "already exists", "already exist");
        return Err(usage(
            format!("{list} {verb}; not overwriting"),
            Some("pass --force to overwrite, or --dir to write somewhere else".into()),
        ));
    }
    Ok(())
}

/// `paths` joined, with the verb that agrees with how many there are.
fn agree(paths: &[String], one: &'static str, more: &'static str) -> (String, &'static str) {
    match paths {
        [path] => (path.clone(), one),
        paths => (paths.join(", "), more),
    }
}

/// Writes every target or none: each in full to a new file beside it, then all renamed into place. A rename
/// replaces a symbolic link itself, never its target.
fn write_all(targets: &[Target]) -> Result<(), Failure> {
    let mut staged = Staged::default();
    for target in targets {
        let temp = stage(target, &mut staged.dirs)
            .map_err(|e| usage(format!("cannot write {}: {e}", shown(&target.path)), None))?;
        staged.files.push((temp, target.path.clone()));
    }
    // Each file leaves `staged` once in place; if a rename fails, the rest are removed.
    while let Some((temp, path)) = staged.files.first() {
        fs::rename(temp, path).map_err(|e| usage(format!("cannot write {}: {e}", shown(path)), None))?;
        staged.files.remove(0);
    }
    staged.dirs.clear();
    Ok(())
}

/// Writes `target`'s text to a new temporary file in its directory (made if missing, and recorded in
/// `made`), and returns the temporary file's path.
fn stage(target: &Target, made: &mut Vec<PathBuf>) -> std::io::Result<PathBuf> {
    let dir = target.path.parent().unwrap_or(Path::new(""));
    make_dirs(dir, made)?;
    let name = target.path.file_name().unwrap_or_default().to_string_lossy();
    let mut attempt = 0;
    let (temp, mut file) = loop {
        let temp = dir.join(format!(".{name}.{}-{attempt}.slip-init", std::process::id()));
        match fs::OpenOptions::new().write(true).create_new(true).open(&temp) {
            Ok(file) => break (temp, file),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && attempt < 100 => attempt += 1,
            Err(e) => return Err(e),
        }
    };
    // The caller records the file only once this returns, so it is removed here if filling it fails.
    match fill(&mut file, target) {
        Ok(()) => Ok(temp),
        Err(e) => {
            let _ = fs::remove_file(&temp);
            Err(e)
        }
    }
}

/// Writes `target`'s text to `file`, with the permissions of the file it replaces, and syncs it, so the
/// rename puts a complete file in place.
fn fill(file: &mut fs::File, target: &Target) -> std::io::Result<()> {
    file.write_all(target.text.as_bytes())?;
    if let Found::File(permissions) = &target.found {
        file.set_permissions(permissions.clone())?;
    }
    file.sync_all()
}

/// Makes `dir` and any missing parents, recording each one made in `made`, parents first.
fn make_dirs(dir: &Path, made: &mut Vec<PathBuf>) -> std::io::Result<()> {
    let missing: Vec<&Path> =
        dir.ancestors().take_while(|d| !d.as_os_str().is_empty() && fs::symlink_metadata(d).is_err()).collect();
    for d in missing.into_iter().rev() {
        fs::create_dir(d)?;
        made.push(d.to_path_buf());
    }
    Ok(())
}

/// What was written, and what to do next.
fn report(out: &mut impl Write, targets: &[Target], name: &AppName, server_file: &Path) -> std::io::Result<()> {
    for target in targets {
        let verb = match target.found {
            Found::Nothing => "created",
            Found::File(_) => "overwrote",
            Found::Link => "replaced the link",
            Found::Other => unreachable!("refused before writing"),
        };
        writeln!(out, "{verb} {}", shown(&target.path))?;
    }
    writeln!(
        out,
        "next: add `COPY slip/ /slip/` to the Dockerfile, check with `slip validate`, and install {} on the server \
         as /etc/slip/apps/{name}.toml",
        shown(server_file)
    )?;
    out.flush()
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
    fn a_failed_write_leaves_no_file_and_no_new_directory() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("blocker"), "").unwrap();
        let target = |rel: &str| Target { path: dir.path().join(rel), text: "x\n".into(), found: Found::Nothing };
        // The first is staged (and its directories made) before the second fails: `blocker` is not a directory.
        let failure = write_all(&[target("new/slip/slip.toml"), target("blocker/app.toml")]).unwrap_err();
        assert!(failure.message.starts_with("cannot write "), "{}", failure.message);
        let left: Vec<_> = fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(left, ["blocker"]);
    }

    #[test]
    fn directory_names_suggest_app_names() {
        assert_eq!(suggest_name("My_Project").as_deref(), Some("my-project"));
        assert_eq!(suggest_name("__x__").as_deref(), Some("x"));
        assert_eq!(suggest_name("a..b").as_deref(), Some("a-b"));
        assert_eq!(suggest_name("___"), None);
        assert_eq!(suggest_name(&"a".repeat(80)).map(|s| s.len()), Some(63));
    }
}
