//! `slipd --check` and config loading for start-up: read, parse, and render every problem at once.

use std::path::Path;

use slip_core::config::{Config, Problem, parse};
use slip_engine::config_source;

/// Loads and validates the config at `path`, or explains every problem in one error.
pub fn load(path: &Path) -> anyhow::Result<Config> {
    let sources = config_source::read(path)?;
    match parse(&sources) {
        Ok(loaded) => {
            for w in &loaded.warnings {
                tracing::warn!(warning = %w, "config");
            }
            Ok(loaded.config)
        }
        Err(problems) => {
            anyhow::bail!("configuration at {} is invalid:\n{}", path.display(), render(&problems))
        }
    }
}

/// The `--check` report and exit code (0 valid, 1 invalid).
pub fn check(path: &Path) -> (String, i32) {
    let sources = match config_source::read(path) {
        Ok(s) => s,
        Err(e) => return (format!("✗ Configuration validation failed (1 problem)\n{}\n", chain(&e)), 1),
    };
    match parse(&sources) {
        Ok(loaded) => {
            let n = loaded.config.apps.len();
            let mut out = format!(
                "✓ Configuration is valid ({n} app{}, listening on {})\n",
                if n == 1 { "" } else { "s" },
                loaded.config.server.listen
            );
            for w in &loaded.warnings {
                out.push_str(&format!("⚠ {w}\n"));
            }
            (out, 0)
        }
        Err(problems) => {
            let n = problems.len();
            let mut out = format!("✗ Configuration validation failed ({n} problem{})\n", if n == 1 { "" } else { "s" });
            out.push_str(&render(&problems));
            (out, 1)
        }
    }
}

fn render(problems: &[Problem]) -> String {
    problems.iter().map(|p| format!("{p}\n")).collect()
}

fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        out.push_str(&format!(": {c}"));
        cur = c.source();
    }
    out
}
