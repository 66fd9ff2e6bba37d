//! The text of actions and outcomes: the same words appear in history rows, logs and test snapshots.

use std::fmt;
use std::time::Duration;

use super::{Action, Outcome};

/// Short human form of a duration for messages (`10s`, `1m30s`, `250ms`).
pub(super) fn human(d: Duration) -> String {
    let ms = d.as_millis();
    if ms == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    let (h, rem) = (ms / 3_600_000, ms % 3_600_000);
    let (m, rem) = (rem / 60_000, rem % 60_000);
    let (s, ms) = (rem / 1000, rem % 1000);
    for (n, unit) in [(h, "h"), (m, "m"), (s, "s"), (ms, "ms")] {
        if n > 0 {
            out.push_str(&format!("{n}{unit}"));
        }
    }
    out
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::Pull => write!(f, "pull"),
            Action::Configure => write!(f, "configure"),
            Action::Start => write!(f, "start candidate"),
            Action::Probe { container } => write!(f, "probe {container}"),
            Action::WaitUntil(_) => write!(f, "wait"),
            Action::Hold => write!(f, "hold routes on candidate"),
            Action::Switch { drain_old: true } => write!(f, "switch routes to candidate, drain old"),
            Action::Switch { drain_old: false } => write!(f, "switch routes to candidate"),
            Action::Commit => write!(f, "commit"),
            Action::PollDrain => write!(f, "poll drain"),
            Action::Stop { container, grace } => write!(f, "stop {container} grace={}", human(*grace)),
            Action::Remove { container } => write!(f, "remove {container}"),
            Action::Restart { container } => write!(f, "restart {container}"),
            Action::RouteBack => write!(f, "route back to old"),
            Action::Uncommit => write!(f, "uncommit"),
            Action::Finish(outcome) => write!(f, "finish {outcome}"),
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Completed { warnings } if warnings.is_empty() => write!(f, "completed"),
            Outcome::Completed { warnings } => write!(f, "completed with warnings: {}", warnings.join("; ")),
            Outcome::Failed { failure, app_down } => {
                write!(f, "failed ({}): {}", failure.code.as_str(), failure.message)?;
                if *app_down {
                    write!(f, " [app down]")?;
                }
                Ok(())
            }
            Outcome::RolledBack { reason, warnings } => {
                write!(f, "rolled back ({}): {}", reason.code.as_str(), reason.message)?;
                if !warnings.is_empty() {
                    write!(f, " with warnings: {}", warnings.join("; "))?;
                }
                Ok(())
            }
        }
    }
}
