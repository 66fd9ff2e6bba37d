//! `slip validate [PATH] [--manifest FILE] [--strict]` (SPEC §15): checks a repo's config and pod manifest
//! offline, before they are baked into an image.
//!
//! This module finds and reads the files and prints the report; every rule is slip-core's
//! ([`slip_core::repo_config`], [`slip_core::pod_manifest`]). Unknown keys in the repo config are problems
//! here, although a deploy only warns about them. Rules that need the server's app file
//! (`app.allow_privileged`, `[[volumes]]`) cannot be decided offline and become warnings.

use std::io::Write;
use std::path::{Path, PathBuf};

use slip_core::config::{Kind, Problem, SourceFile, UnknownKeys};
use slip_core::pod_manifest::{self, Policy, Strictness};
use slip_core::repo_config;

use crate::client::{Failure, exit, printed};

/// Where `slip validate` looks when no path is given, in order.
const DEFAULT_PATHS: [&str; 2] = ["slip/slip.toml", "slip.toml"];

/// `slip validate` arguments.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The repo config (default: slip/slip.toml, then ./slip.toml); in a directory, the same two.
    path: Option<PathBuf>,
    /// Check this pod manifest instead of the one app.manifest names.
    #[arg(long, value_name = "FILE")]
    manifest: Option<PathBuf>,
    /// Also warn about sidecar images on :latest or without a tag.
    #[arg(long)]
    strict: bool,
}

/// Runs `slip validate`: 0 when valid (warnings allowed), 2 otherwise.
pub fn run(args: &Args, json: bool, quiet: bool) -> Result<u8, Failure> {
    let path = locate(args.path.as_deref())?;
    let repo = repo_config::read(&source(&path)?, UnknownKeys::Problem);
    let mut problems = repo.problems.clone();
    let mut warnings = repo.warnings.clone();
    let mut checked = None;

    if let Some(manifest_path) = manifest_path(args, &repo, &path, &mut problems, &mut warnings) {
        match std::fs::read_to_string(&manifest_path) {
            Ok(text) => {
                let read = pod_manifest::read(&SourceFile { path: manifest_path.clone(), text }, &Policy::default());
                problems.extend(read.problems);
                warnings.extend(read.warnings);
                if let Some(manifest) = read.manifest {
                    let strictness = if args.strict { Strictness::Strict } else { Strictness::Normal };
                    let found = pod_manifest::check_against(&repo, &manifest, &manifest_path, strictness);
                    problems.extend(found.problems);
                    warnings.extend(found.warnings);
                    checked = Some((manifest_path, manifest.containers.len() + manifest.init_containers.len()));
                }
            }
            Err(e) => problems.push(unreadable_manifest(args, &repo, &manifest_path, &e)),
        }
    }
    sort(&mut problems, &path);
    sort(&mut warnings, &path);

    let mut out = std::io::stdout().lock();
    let written = if json {
        print_json(&mut out, &path, &problems, &warnings)
    } else {
        print_text(&mut out, &path, repo.config.kind, checked.as_ref(), &problems, &warnings, quiet)
    };
    printed(written.and_then(|()| out.flush()))?;
    Ok(if problems.is_empty() { exit::OK } else { exit::USAGE })
}

/// The repo config to check: `path` when it is a file; else [`DEFAULT_PATHS`] in `path` (a project or `slip/`
/// directory) or in the current directory.
fn locate(path: Option<&Path>) -> Result<PathBuf, Failure> {
    let dir = match path {
        Some(p) if p.is_dir() => p,
        Some(p) => return Ok(p.to_path_buf()),
        None => Path::new(""),
    };
    let candidates: Vec<PathBuf> = DEFAULT_PATHS.iter().map(|p| dir.join(p)).collect();
    candidates.iter().find(|p| p.is_file()).cloned().ok_or_else(|| {
        let looked: Vec<String> = candidates.iter().map(|p| p.display().to_string()).collect();
        Failure::new(
            format!("no repo config found: looked for {}", looked.join(" and ")),
            Some("pass its path (slip validate path/to/slip.toml), or write one with `slip init`".into()),
            exit::USAGE,
        )
    })
}

fn source(path: &Path) -> Result<SourceFile, Failure> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(SourceFile { path: path.to_path_buf(), text }),
        Err(e) => Err(Failure::new(format!("cannot read {}: {e}", path.display()), None, exit::USAGE)),
    }
}

/// The manifest to check: `--manifest`, else where `app.manifest` lands in the repo (`/slip/x` is `x` beside
/// the repo config). Reports a manifest that cannot be located, or a pod without one.
fn manifest_path(
    args: &Args,
    repo: &repo_config::Read,
    path: &Path,
    problems: &mut Vec<Problem>,
    warnings: &mut Vec<Problem>,
) -> Option<PathBuf> {
    if let Some(m) = &args.manifest {
        return Some(m.clone());
    }
    let dir = path.parent().unwrap_or(Path::new(""));
    match &repo.config.manifest {
        Some(in_image) => match repo_config::repo_relative(in_image) {
            Some(rel) => Some(dir.join(rel)),
            None => {
                problems.push(repo.problem_at(
                    "app.manifest",
                    format!(
                        "app.manifest: {in_image:?} is outside {}, so it is not in this repo's slip/ directory",
                        repo_config::IMAGE_DIR
                    ),
                    Some("pass the manifest with --manifest FILE".into()),
                ));
                None
            }
        },
        None if repo.config.kind == Some(Kind::Pod) => {
            warnings.push(repo.problem_at(
                "app.kind",
                "app.kind is \"pod\" but app.manifest is not set, so no manifest was checked".into(),
                Some("set manifest = \"/slip/pod.yaml\" in [app] (the server's app.manifest can also name it), or pass --manifest FILE".into()),
            ));
            None
        }
        None => None,
    }
}

fn unreadable_manifest(args: &Args, repo: &repo_config::Read, path: &Path, e: &std::io::Error) -> Problem {
    let shown = path.display();
    match (&args.manifest, &repo.config.manifest) {
        (None, Some(in_image)) => repo.problem_at(
            "app.manifest",
            format!("app.manifest: {in_image:?} is {shown} in this repo, which cannot be read: {e}"),
            None,
        ),
        _ => Problem {
            file: path.to_path_buf(),
            line: None,
            column: None,
            message: format!("cannot read the manifest: {e}"),
            hint: None,
        },
    }
}

/// The repo config's findings first, then the manifest's, each by line and column.
fn sort(problems: &mut [Problem], repo: &Path) {
    problems
        .sort_by(|a, b| (a.file != repo, &a.file, a.line, a.column).cmp(&(b.file != repo, &b.file, b.line, b.column)));
}

fn print_text(
    out: &mut impl Write,
    path: &Path,
    kind: Option<Kind>,
    manifest: Option<&(PathBuf, usize)>,
    problems: &[Problem],
    warnings: &[Problem],
    quiet: bool,
) -> std::io::Result<()> {
    let shown = path.display();
    if problems.is_empty() {
        let kind = kind.map_or_else(|| "kind from the server".to_owned(), |k| format!("kind {k}"));
        let manifest = manifest.map_or_else(String::new, |(m, n)| {
            format!(", manifest {} with {n} container{}", m.display(), if *n == 1 { "" } else { "s" })
        });
        let n = warnings.len();
        let warned = if n == 0 { String::new() } else { format!(", {n} warning{}", if n == 1 { "" } else { "s" }) };
        writeln!(out, "✓ {shown} is valid ({kind}{manifest}{warned})")?;
    } else {
        let n = problems.len();
        writeln!(out, "✗ {shown}: validation failed ({n} problem{})", if n == 1 { "" } else { "s" })?;
        for p in problems {
            writeln!(out, "{p}")?;
        }
    }
    if !quiet {
        for w in warnings {
            writeln!(out, "⚠ {w}")?;
        }
    }
    Ok(())
}

fn print_json(out: &mut impl Write, path: &Path, problems: &[Problem], warnings: &[Problem]) -> std::io::Result<()> {
    let list = |ps: &[Problem]| -> Vec<serde_json::Value> {
        ps.iter()
            .map(|p| {
                serde_json::json!({
                    "file": p.file.display().to_string(),
                    "line": p.line,
                    "column": p.column,
                    "message": p.message,
                    "hint": p.hint,
                })
            })
            .collect()
    };
    let report = serde_json::json!({
        "path": path.display().to_string(),
        "valid": problems.is_empty(),
        "problems": list(problems),
        "warnings": list(warnings),
    });
    writeln!(out, "{report}")
}
