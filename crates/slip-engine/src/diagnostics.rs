//! Why a release failed, for the person reading the deploy (SPEC §7.3 `health_checking`): before a candidate
//! that failed its health check or its watch is removed, its last log lines are kept in the deploy's events,
//! redacted. The probe answers that failed it (status and the first bytes of the body) are already there, as the
//! check's notes.

use crate::clock::unix_ms;
use crate::engine::Engine;
use crate::release::Release;
use crate::store::NoteKind;

/// How many of the container's last output lines a failed deploy keeps.
pub const LOG_TAIL: usize = 50;

/// Longest line kept, in bytes; a longer one is cut (a log line can be 64 KiB).
const MAX_LINE: usize = 1024;

/// Reads the last [`LOG_TAIL`] lines of `container` and records them as one `log` event whose message is the
/// lines themselves (after a heading) and whose data is `{"diagnostic":"log_tail","lines":[…]}`. Every line is
/// redacted with the release's redactor before it is cut. A container that printed nothing is recorded as such; a failure to
/// read is logged, never fatal.
pub async fn record_log_tail(engine: &Engine, release: &Release, container: &str) {
    let lines = match engine.logs.logs_tail(container, LOG_TAIL).await {
        Ok(lines) => lines,
        Err(e) => {
            tracing::warn!(container, error = %e, "reading the failed release's output");
            return;
        }
    };
    let lines: Vec<String> = lines.iter().map(|l| cut(&release.redactor.redact(l))).collect();
    let message = if lines.is_empty() {
        "the failed release printed nothing".to_owned()
    } else {
        format!(
            "last {} line{} of the failed release's output:\n{}",
            lines.len(),
            plural(lines.len()),
            lines.join("\n")
        )
    };
    let data = serde_json::json!({ "diagnostic": "log_tail", "lines": lines }).to_string();
    if let Err(e) = engine.store.record_event(&release.deploy_id, NoteKind::Log, &message, Some(&data), unix_ms()) {
        tracing::error!(error = %e, "recording the failed release's output");
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

fn cut(line: &str) -> String {
    if line.len() <= MAX_LINE {
        return line.to_owned();
    }
    let mut end = MAX_LINE;
    while !line.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &line[..end])
}
