//! Housekeeping timers (SPEC §3.2, §10, §12, issue 14): hourly, the replay cache is purged of expired deliveries,
//! history older than `storage.history_retention` is deleted (the audit log never), and app files deleted more
//! than [`TRASH_RETENTION`] ago are removed from `<storage>/trash`; daily, images slip pulled that nothing retains
//! are pruned. Each run is logged and counted in `slip_housekeeping_removed_total{task}` and
//! `slip_housekeeping_runs_total{task,result}`. The hourly tasks first run at start-up; the image prune first runs a
//! day after it, and only while no deploy is queued or running (a queued deploy names its image by tag, so
//! retention cannot see that it is about to use a pulled image; a prune beside it could remove the image between
//! its pull and its start). A busy hour puts the prune off to the next.

use std::path::Path;
use std::time::{Duration, SystemTime};

use slip_engine::clock::unix_ms;
use tokio_util::sync::CancellationToken;

use crate::state::AppState;

/// Between the hourly tasks.
pub const HOURLY: Duration = Duration::from_secs(3600);
/// Between image prunes.
pub const DAILY: Duration = Duration::from_secs(24 * 3600);
/// How long a deleted app's file stays in `<storage>/trash`.
pub const TRASH_RETENTION: Duration = Duration::from_secs(30 * 24 * 3600);

/// Runs the timers until `shutdown` is cancelled.
pub async fn run(state: AppState, shutdown: CancellationToken) {
    let mut last_prune = tokio::time::Instant::now();
    loop {
        hourly(&state);
        let idle = state.store.running_or_queued_count().is_ok_and(|c| c.running == 0 && c.queued == 0);
        if last_prune.elapsed() >= DAILY && idle {
            let removed = slip_engine::images::prune_all(&state.engine).await;
            done("image_prune", Ok(removed.len() as u64));
            last_prune = tokio::time::Instant::now();
        }
        tokio::select! {
            _ = tokio::time::sleep(HOURLY) => {}
            _ = shutdown.cancelled() => return,
        }
    }
}

/// The hourly tasks, once.
pub fn hourly(state: &AppState) {
    let now = unix_ms();
    done("replay_purge", state.store.purge_deliveries(now).map_err(|e| e.to_string()));
    let config = state.config();
    let cutoff = now.saturating_sub(config.storage.history_retention.as_millis() as i64);
    // Keep at least the releases image retention keeps for any app.
    let keep = config.apps.values().map(|a| a.deploy.keep_images as usize).max().unwrap_or(0).max(3);
    done("history_retention", state.store.prune_history(cutoff, keep).map(|p| p.deploys).map_err(|e| e.to_string()));
    done("trash_purge", purge_trash(&config.storage.path.join("trash"), SystemTime::now()));
}

/// Removes files in `trash` older than [`TRASH_RETENTION`] (by the deletion time in their name,
/// `<app>.toml.<unix-ms>`, else their modification time); answers how many.
pub fn purge_trash(trash: &Path, now: SystemTime) -> Result<u64, String> {
    let entries = match std::fs::read_dir(trash) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(format!("{}: {e}", trash.display())),
    };
    let mut removed = 0;
    for entry in entries.flatten() {
        let path = entry.path();
        let named = path
            .extension()
            .and_then(|e| e.to_str())
            .and_then(|ms| ms.parse::<u64>().ok())
            .map(|ms| SystemTime::UNIX_EPOCH + Duration::from_millis(ms));
        let deleted = named.or_else(|| entry.metadata().and_then(|m| m.modified()).ok());
        let old = deleted.is_some_and(|at| now.duration_since(at).is_ok_and(|age| age >= TRASH_RETENTION));
        if old && entry.file_type().is_ok_and(|t| t.is_file()) {
            match std::fs::remove_file(&path) {
                Ok(()) => removed += 1,
                Err(e) => tracing::warn!(file = %path.display(), error = %e, "removing an old trashed app file"),
            }
        }
    }
    Ok(removed)
}

fn done(task: &'static str, result: Result<u64, String>) {
    match result {
        Ok(removed) => {
            tracing::info!(task, removed, "housekeeping");
            metrics::counter!("slip_housekeeping_runs_total", "task" => task, "result" => "ok").increment(1);
            metrics::counter!("slip_housekeeping_removed_total", "task" => task).increment(removed);
        }
        Err(error) => {
            tracing::warn!(task, error, "housekeeping failed");
            metrics::counter!("slip_housekeeping_runs_total", "task" => task, "result" => "error").increment(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trashed_files_go_after_thirty_days_by_the_time_in_their_name() {
        let dir = tempfile::tempdir().unwrap();
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(40 * 24 * 3600);
        let ms = |days: u64| (days * 24 * 3600 * 1000).to_string();
        std::fs::write(dir.path().join(format!("old.toml.{}", ms(9))), "").unwrap();
        std::fs::write(dir.path().join(format!("recent.toml.{}", ms(11))), "").unwrap();
        assert_eq!(purge_trash(dir.path(), now), Ok(1));
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(left, [std::ffi::OsString::from(format!("recent.toml.{}", ms(11)))]);
        assert_eq!(purge_trash(&dir.path().join("none"), now), Ok(0), "no trash yet is fine");
    }
}
