//! Wire types shared by slipd and the slip CLI (SPEC §6).
//!
//! Only these types derive `Serialize`/`Deserialize` for the wire; core and engine types are
//! converted by hand at the edges, so an internal rename can never change the API by accident.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

mod events;
mod logs;
mod secrets;
pub mod time;

pub use events::EventFrame;
pub use logs::LogLine;
pub use secrets::{
    LegacySecretNames, LegacySecretsPut, LegacySecretsSet, SecretInfo, SecretList, SecretMetadata, SecretPut, SecretSet,
};

/// `POST /v1/deploy` request body (SPEC §6.4).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct DeployRequest {
    /// App name.
    pub app: String,
    /// Tag or `sha256:` digest.
    pub tag: String,
    /// Optional repository; must equal the app's `app.image` after normalisation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Pods only: container name → full reference.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub images: Option<BTreeMap<String, String>>,
    /// Preview target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preview: Option<serde_json::Value>,
    /// Free-form metadata stored with the deploy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meta: Option<serde_json::Value>,
}

/// `202` answer to a deploy, rollback or redeploy.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeployAccepted {
    /// `dep_…`.
    pub deploy_id: String,
    /// App name.
    pub app: String,
    /// Requested tag.
    pub tag: String,
    /// `accepted` or `queued`.
    pub status: String,
    /// The queued deploy this one replaced.
    pub supersedes: Option<String>,
    /// Preview URL, for previews.
    pub preview_url: Option<String>,
    /// Where progress streams.
    pub events_url: String,
}

/// One step of a deploy's timeline.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeployStep {
    /// Status entered.
    pub status: String,
    /// RFC 3339 time with milliseconds.
    pub at: String,
    /// Time spent in this status, once it has ended.
    pub duration_ms: Option<i64>,
}

/// A deploy event (log line or warning) in the timeline.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeployEvent {
    /// Sequence number (the SSE id).
    pub seq: i64,
    /// RFC 3339 time.
    pub at: String,
    /// `status`, `log` or `warning`.
    pub kind: String,
    /// Status at that point.
    pub status: Option<String>,
    /// Human text (redacted).
    pub message: Option<String>,
}

/// The deploy object (SPEC §6.5). Unauthenticated callers get the first seven fields only.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Deploy {
    /// `dep_…`.
    pub deploy_id: String,
    /// App name.
    pub app: String,
    /// Requested tag.
    pub tag: String,
    /// Current status.
    pub status: String,
    /// Acceptance time.
    pub started_at: String,
    /// Terminal time.
    pub finished_at: Option<String>,
    /// Human error.
    pub error: Option<String>,
    /// The authenticated view.
    #[serde(flatten, default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<DeployDetail>,
}

/// Fields only authenticated callers see.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeployDetail {
    /// Machine-readable error code.
    pub error_code: Option<String>,
    /// Preview id, for previews.
    pub preview_id: Option<String>,
    /// `webhook`, `cli`, `rollback`, `auto_rollback`, `redeploy` or `reconcile`.
    pub trigger: String,
    /// `blue-green` or `recreate`.
    pub strategy: Option<String>,
    /// `web`, `worker` or `pod`.
    pub kind: Option<String>,
    /// Container → `repo@sha256:…`.
    pub images: BTreeMap<String, String>,
    /// Status timeline.
    pub steps: Vec<DeployStep>,
    /// Log lines and warnings recorded during the deploy.
    pub events: Vec<DeployEvent>,
    /// Release a rollback restores.
    pub rollback_of: Option<String>,
    /// The deploy that superseded this one.
    pub superseded_by: Option<String>,
    /// Attempt number (re-queued after an interruption).
    pub attempt: i64,
    /// Metadata from the webhook.
    pub meta: Option<serde_json::Value>,
}

/// `GET /v1/deploys` answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeployList {
    /// Newest first.
    pub deploys: Vec<Deploy>,
    /// Pass as `before` for the next page; null at the end.
    pub next_before: Option<String>,
}

/// The latest deploy of an app, in status.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LastDeploy {
    /// `dep_…`.
    pub deploy_id: String,
    /// Its status.
    pub status: String,
}

/// One app in `GET /v1/status`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AppStatus {
    /// `running`, `deploying`, `not_deployed`, `failed`, `down` or `detached`.
    pub status: String,
    /// `web`, `worker` or `pod`.
    pub kind: String,
    /// Current release's tag.
    pub tag: Option<String>,
    /// Current release's deploy.
    pub deploy_id: Option<String>,
    /// When the current release went live.
    pub deployed_at: Option<String>,
    /// Current container.
    pub container_id: Option<String>,
    /// Current leased host port.
    pub port: Option<u16>,
    /// The previous release, kept for rollback.
    pub previous: Option<ReleaseRef>,
    /// The latest deploy of any status.
    pub last_deploy: Option<LastDeploy>,
    /// Number of previews.
    pub previews: u32,
    /// Whether config changed since the current release was deployed.
    pub config_drift: bool,
}

/// A release pointer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReleaseRef {
    /// The deploy that made it.
    pub deploy_id: String,
    /// Its tag.
    pub tag: String,
    /// When it went live.
    pub deployed_at: Option<String>,
}

/// `GET /v1/status` answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Status {
    /// Always `slipd`.
    pub daemon: String,
    /// slipd's version (authenticated or public_status only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Seconds since start.
    pub uptime_seconds: u64,
    /// `ok` or `error`.
    pub caddy: String,
    /// Why slipd could not make Caddy serve slip's routes, while `caddy` is `error` (authenticated or
    /// public_status only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caddy_error: Option<String>,
    /// `ok` or `error`.
    pub runtime: String,
    /// `docker` or `podman`.
    pub backend: String,
    /// Per app (authenticated or public_status only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub apps: Option<BTreeMap<String, AppStatus>>,
}

/// Every error answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorBody {
    /// Human message.
    pub error: String,
    /// Machine code.
    pub code: String,
    /// The offending field, for validation errors.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// The original deploy of a replayed delivery.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deploy_id: Option<String>,
    /// Config problems, for `config_invalid`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<ConfigProblem>,
}

/// One config problem in an error answer: where it is and what is wrong.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ConfigProblem {
    /// The file, as slipd names it (`slip.toml`, `apps/web.toml`).
    pub file: String,
    /// 1-based line, when known.
    #[serde(default)]
    pub line: Option<u64>,
    /// 1-based column, when known.
    #[serde(default)]
    pub column: Option<u64>,
    /// What is wrong.
    pub message: String,
    /// What would be valid, when known.
    #[serde(default)]
    pub hint: Option<String>,
}

impl std::fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(column) = self.column {
                write!(f, ":{column}")?;
            }
        }
        write!(f, ": {}", self.message)?;
        if let Some(hint) = &self.hint {
            write!(f, "\n    hint: {hint}")?;
        }
        Ok(())
    }
}

/// A preview environment (SPEC §6.5 preview object).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Preview {
    /// The preview id.
    pub preview_id: String,
    /// The app.
    pub app: String,
    /// `deploying`, `running`, `failed` or `torn_down`.
    pub status: String,
    /// The commit, when CI said.
    pub sha: Option<String>,
    /// The tag deployed (or being deployed first).
    pub tag: Option<String>,
    /// Base domain.
    pub domain: String,
    /// `https://<first preview hostname>`; `None` for a worker.
    pub url: Option<String>,
    /// The deploy serving it (or, for a failed one, the deploy that failed).
    pub deploy_id: Option<String>,
    /// Host port of the current instance's lowest published container port.
    pub port: Option<u16>,
    /// Last completed deploy.
    pub deployed_at: Option<String>,
    /// When the reaper tears it down.
    pub expires_at: Option<String>,
    /// Why its deploy failed.
    pub error: Option<String>,
}

/// `GET /v1/previews`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PreviewList {
    /// Previews, live ones and torn-down ones kept as history.
    pub previews: Vec<Preview>,
}

/// `DELETE /v1/previews/{app}/{id}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PreviewTornDown {
    /// `ok`.
    pub status: String,
    /// Whether a live preview was torn down (false: there was none).
    pub torn_down: bool,
}

/// `DELETE /v1/previews/{app}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PreviewsTornDown {
    /// Ids of the previews torn down.
    pub torn_down: Vec<String>,
}
