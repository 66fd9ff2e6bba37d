//! What outbound deploy reports share ([`crate::notify`]'s notifications and [`crate::github`]'s deployments): the
//! message describing one deploy event, and the retry policy.

use std::time::Duration;

use serde_json::json;
use slip_core::config::NotifyEvent;

/// Tries per delivery.
pub const ATTEMPTS: u32 = 5;

/// The wait before the second try; it doubles before each later one (1 s, 2 s, 4 s, 8 s).
pub const FIRST_BACKOFF: Duration = Duration::from_secs(1);

/// Time allowed for one attempt, connecting included.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);

/// What one notification says.
#[derive(Debug)]
pub struct Message {
    /// What happened.
    pub event: NotifyEvent,
    /// The app.
    pub app: String,
    /// The deploy's tag.
    pub tag: String,
    /// `dep_…`.
    pub deploy_id: String,
    /// The preview, for preview deploys.
    pub preview_id: Option<String>,
    /// When, RFC 3339.
    pub at: String,
    /// Why a deploy failed or was rolled back (redacted).
    pub reason: Option<String>,
}

impl Message {
    /// slip's JSON body.
    pub fn json(&self) -> serde_json::Value {
        json!({
            "event": self.event.as_str(),
            "app": self.app,
            "tag": self.tag,
            "deploy_id": self.deploy_id,
            "preview_id": self.preview_id,
            "at": self.at,
            "reason": self.reason,
        })
    }

    /// Slack's incoming-webhook body.
    pub fn slack(&self) -> serde_json::Value {
        let what = match self.event {
            NotifyEvent::DeployStarted => "deploying",
            NotifyEvent::DeployCompleted => ":white_check_mark: deployed",
            NotifyEvent::DeployFailed => ":x: deploy failed:",
            NotifyEvent::DeployRolledBack => ":rewind: rolled back:",
        };
        let reason = self.reason.as_deref().map(|r| format!(" {r}")).unwrap_or_default();
        json!({ "text": format!("{what} {}@{} ({}){reason}", self.app, self.tag, self.deploy_id) })
    }
}
