//! Server-sent events (SPEC §17.3): the `data:` of every frame of `/v1/deploys/{id}/events` and `/v1/events`.

use serde::{Deserialize, Serialize};

/// One event. The frame's `event:` line repeats `type`; its `id:` line is the deploy's event `seq` on a
/// per-deploy stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventFrame {
    /// `deploy.queued`, `deploy.status`, `deploy.log`, `deploy.warning`, `deploy.completed`, `deploy.failed`,
    /// `deploy.superseded`, `deploy.rolled_back`, `secret.changed`, ...
    #[serde(rename = "type")]
    pub kind: String,
    /// RFC 3339 time with milliseconds.
    pub at: String,
    /// The app, when the event concerns one.
    pub app: Option<String>,
    /// The deploy, for `deploy.*` events.
    pub deploy_id: Option<String>,
    /// The preview, for preview deploys.
    pub preview_id: Option<String>,
    /// The deploy's status after this event.
    pub status: Option<String>,
    /// Human text (redacted).
    pub message: Option<String>,
    /// Structured detail (for `secret.changed`: the key, scope and action; never a value).
    pub data: Option<serde_json::Value>,
}

impl EventFrame {
    /// True for the events that end a deploy's stream.
    pub fn is_terminal(&self) -> bool {
        matches!(self.kind.as_str(), "deploy.completed" | "deploy.failed" | "deploy.superseded" | "deploy.rolled_back")
    }
}
