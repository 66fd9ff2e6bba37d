//! `slipd --rotate-key`: re-encrypts the secret store under a new key (SPEC §11.2), with slipd stopped.
//!
//! The work is [`slip_engine::secrets::rotate`]'s; this takes slipd's single-instance lock (so no running slipd
//! writes a secret with the old key meanwhile), reports the result, and arms the test-only abort: with
//! `SLIP_FAULT_INJECTION=1`, `SLIP_FAULT_ROTATE_ABORT=new_key|resealed:<n>|verified` aborts the process at that
//! point, as a crash would.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use slip_engine::secrets::rotate::{self, Stage};

/// The variable naming where a rotation aborts (with `SLIP_FAULT_INJECTION=1`).
pub const ABORT_VAR: &str = "SLIP_FAULT_ROTATE_ABORT";

/// `slipd --rotate-key`; the process exit code.
pub fn main(config_path: &Path) -> ExitCode {
    match run(config_path) {
        Ok(lines) => {
            println!("{lines}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(config_path: &Path) -> anyhow::Result<String> {
    let (config, _, _) = crate::check::load_with_sources(config_path)?;
    let Some(key_file) = &config.secrets.key_file else {
        anyhow::bail!(
            "secrets.key_file is not set in slip.toml: the secrets are not encrypted, so there is no key to rotate (slipd --gen-key PATH writes one; set [secrets] key_file and restart slipd to turn encryption on)"
        );
    };
    let storage = &config.storage.path;
    // No storage yet means no secrets: the key file alone is rotated.
    let _lock = match storage.is_dir() {
        true => Some(
            crate::boot::single_instance_lock(&storage.join("slipd.lock"))
                .context("slipd --rotate-key runs with slipd stopped (running apps keep serving meanwhile)")?,
        ),
        false => None,
    };
    let abort_at = abort_point()?;
    let rotated = rotate::rotate(storage, key_file, &mut |stage| {
        if abort_at == Some(stage) {
            eprintln!("slipd: FAULT INJECTION: aborting the key rotation at {stage:?}");
            std::process::abort();
        }
    })
    .with_context(|| format!("rotating the secrets key {}", key_file.display()))?;
    let mut out = format!(
        "{} the secrets key: {} of {} secrets re-encrypted, key id {} -> {}; {} holds the new key",
        if rotated.resumed { "finished an interrupted rotation of" } else { "rotated" },
        rotated.resealed,
        rotated.total,
        rotated.old_id,
        rotated.new_id,
        key_file.display()
    );
    out.push_str(
        "\nthe old key is gone from this host: keep a copy of the new one off the host, and the old one as long as backups made before now must be read",
    );
    out.push_str("\nstart slipd again (it loads the key at start-up)");
    Ok(out)
}

/// Where `SLIP_FAULT_ROTATE_ABORT` aborts, when fault injection is on.
fn abort_point() -> anyhow::Result<Option<Stage>> {
    let Ok(point) = std::env::var(ABORT_VAR) else { return Ok(None) };
    if std::env::var(slip_engine::fault::ENABLE_VAR).as_deref() != Ok("1") {
        return Ok(None);
    }
    let stage = match point.as_str() {
        "new_key" => Stage::NewKeyWritten,
        "verified" => Stage::Verified,
        other => match other.strip_prefix("resealed:").and_then(|n| n.parse().ok()) {
            Some(n) => Stage::Resealed(n),
            None => anyhow::bail!("{ABORT_VAR}={other:?}: valid: new_key, resealed:<n>, verified"),
        },
    };
    eprintln!("slipd: FAULT INJECTION ARMED: the key rotation aborts at {stage:?}");
    Ok(Some(stage))
}
