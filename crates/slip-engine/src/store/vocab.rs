//! The closed vocabularies stored in text columns: deploy statuses, triggers, event kinds, instance roles, app and
//! preview statuses. Each has one spelling, shared with the HTTP API (SPEC §6.5, §7.2, §10).
//!
//! These are store types, not wire types: no serde. Values resolved from config (app kind, strategy) stay plain
//! strings here because `slip_core::config` owns their vocabulary.

use std::fmt;
use std::str::FromStr;

use rusqlite::ToSql;
use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSqlOutput, ValueRef};

/// A stored or supplied value that is not one of its vocabulary's spellings.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} {value:?}: expected one of {}", .valid.join(", "))]
pub struct UnknownValue {
    /// The vocabulary, e.g. "deploy status".
    pub what: &'static str,
    /// The rejected text.
    pub value: String,
    /// Every valid spelling.
    pub valid: &'static [&'static str],
}

macro_rules! vocabulary {
    (
        $(#[$meta:meta])*
        pub enum $name:ident ($what:literal) {
            $( $(#[$vmeta:meta])* $variant:ident = $text:literal, )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $( $(#[$vmeta])* $variant, )+
        }

        impl $name {
            /// Every value, in the order the SPEC lists them.
            pub const ALL: &'static [$name] = &[$($name::$variant,)+];

            /// The stored spelling, which is also the API's.
            pub fn as_str(self) -> &'static str {
                match self {
                    $( $name::$variant => $text, )+
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = UnknownValue;
            fn from_str(s: &str) -> Result<Self, UnknownValue> {
                match s {
                    $( $text => Ok($name::$variant), )+
                    _ => Err(UnknownValue { what: $what, value: s.to_owned(), valid: &[$($text,)+] }),
                }
            }
        }

        impl ToSql for $name {
            fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
                Ok(ToSqlOutput::from(self.as_str()))
            }
        }

        impl FromSql for $name {
            fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
                value.as_str()?.parse().map_err(|e| FromSqlError::Other(Box::new(e)))
            }
        }
    };
}

vocabulary! {
    /// Where a deploy is in its lifecycle (SPEC §7.2).
    pub enum DeployStatus ("deploy status") {
        /// Waiting behind the running deploy of its target.
        Queued = "queued",
        /// Holds its target's slot; may still wait for a global slot.
        Accepted = "accepted",
        /// Pulling the app image.
        Pulling = "pulling",
        /// Reading repo config, resolving the plan, leasing ports.
        Configuring = "configuring",
        /// Creating and starting the candidate.
        Starting = "starting",
        /// Probing the candidate.
        HealthChecking = "health_checking",
        /// Moving the routes to the candidate.
        Switching = "switching",
        /// Re-probing after the switch with the old instance kept.
        Watching = "watching",
        /// Retiring the old instance; the target's slot is already released.
        Draining = "draining",
        /// Terminal: the release is current.
        Completed = "completed",
        /// Terminal: the deploy failed (see `error_code`).
        Failed = "failed",
        /// Terminal: replaced in the queue by a newer deploy (see `superseded_by`).
        Superseded = "superseded",
        /// Terminal: switched back after the post-switch watch failed.
        RolledBack = "rolled_back",
    }
}

impl DeployStatus {
    /// The statuses that hold their target's slot: a new deploy for the same target queues behind them.
    /// `draining` does not (SPEC §7.1: the slot is released when the deploy enters `draining`).
    pub const SLOT_HOLDING: &'static [DeployStatus] = &[
        DeployStatus::Accepted,
        DeployStatus::Pulling,
        DeployStatus::Configuring,
        DeployStatus::Starting,
        DeployStatus::HealthChecking,
        DeployStatus::Switching,
        DeployStatus::Watching,
    ];

    /// The final statuses; a deploy in one of them never changes again.
    pub const TERMINAL: &'static [DeployStatus] =
        &[DeployStatus::Completed, DeployStatus::Failed, DeployStatus::Superseded, DeployStatus::RolledBack];

    /// Whether the status is final.
    pub fn is_terminal(self) -> bool {
        Self::TERMINAL.contains(&self)
    }

    /// Whether a deploy in this status holds its target's slot.
    pub fn holds_slot(self) -> bool {
        Self::SLOT_HOLDING.contains(&self)
    }

    /// Every non-terminal status (`queued` through `draining`).
    pub fn unfinished() -> impl Iterator<Item = DeployStatus> {
        Self::ALL.iter().copied().filter(|s| !s.is_terminal())
    }
}

impl From<slip_core::deploy::Status> for DeployStatus {
    fn from(status: slip_core::deploy::Status) -> DeployStatus {
        use slip_core::deploy::Status;
        match status {
            Status::Pulling => DeployStatus::Pulling,
            Status::Configuring => DeployStatus::Configuring,
            Status::Starting => DeployStatus::Starting,
            Status::HealthChecking => DeployStatus::HealthChecking,
            Status::Switching => DeployStatus::Switching,
            Status::Watching => DeployStatus::Watching,
            Status::Draining => DeployStatus::Draining,
            Status::Completed => DeployStatus::Completed,
            Status::Failed => DeployStatus::Failed,
            Status::RolledBack => DeployStatus::RolledBack,
        }
    }
}

vocabulary! {
    /// What started a deploy (SPEC §6.5).
    pub enum Trigger ("deploy trigger") {
        /// A signed `POST /v1/deploy`.
        Webhook = "webhook",
        /// `slip deploy` with the admin token.
        Cli = "cli",
        /// `POST /v1/apps/{name}/rollback`.
        Rollback = "rollback",
        /// A failed post-switch watch.
        AutoRollback = "auto_rollback",
        /// `POST /v1/apps/{name}/redeploy`.
        Redeploy = "redeploy",
        /// The reconciler re-creating a vanished current instance.
        Reconcile = "reconcile",
    }
}

vocabulary! {
    /// The kind of a `deploy_events` row.
    pub enum EventKind ("event kind") {
        /// A status transition; the row's `status` is the new status.
        Status = "status",
        /// Progress or output (pull progress, hook output, container logs).
        Log = "log",
        /// A problem that did not fail the deploy.
        Warning = "warning",
    }
}

vocabulary! {
    /// The kinds of event a caller may append with `record_event`; status rows come only from status changes.
    pub enum NoteKind ("note kind") {
        /// Stored as [`EventKind::Log`].
        Log = "log",
        /// Stored as [`EventKind::Warning`].
        Warning = "warning",
    }
}

impl From<NoteKind> for EventKind {
    fn from(kind: NoteKind) -> EventKind {
        match kind {
            NoteKind::Log => EventKind::Log,
            NoteKind::Warning => EventKind::Warning,
        }
    }
}

vocabulary! {
    /// An instance's part in its target's release (SPEC §1).
    pub enum InstanceRole ("instance role") {
        /// Being started and checked; gets no traffic.
        Candidate = "candidate",
        /// Serving.
        Current = "current",
        /// Being retired: no new traffic, in-flight requests finish.
        Draining = "draining",
        /// Stopped but kept so it can be restored (recreate).
        Stopped = "stopped",
        /// Gone; kept as history. Retired instances are not "live".
        Retired = "retired",
    }
}

vocabulary! {
    /// What kind of runtime object an instance is.
    pub enum RuntimeKind ("runtime kind") {
        /// One container.
        Container = "container",
        /// A pod of containers.
        Pod = "pod",
    }
}

vocabulary! {
    /// An app's state as `/v1/status` reports it (SPEC §6.5).
    pub enum AppStatus ("app status") {
        /// The current release serves.
        Running = "running",
        /// A deploy is in progress.
        Deploying = "deploying",
        /// Nothing was ever deployed.
        NotDeployed = "not_deployed",
        /// Nothing serves and the last deploy failed.
        Failed = "failed",
        /// The current instance is not running.
        Down = "down",
        /// The app's file vanished on reload; it keeps serving.
        Detached = "detached",
    }
}

vocabulary! {
    /// A preview's state (SPEC §6.5).
    pub enum PreviewStatus ("preview status") {
        /// Its first deploy is in progress.
        Deploying = "deploying",
        /// Serving.
        Running = "running",
        /// Its deploy failed and nothing serves.
        Failed = "failed",
        /// Removed; the row is kept as history.
        TornDown = "torn_down",
    }
}

/// A SQL list literal `('a', 'b')` of vocabulary spellings, for `IN` filters the planner can use with an index.
/// Only ever built from the fixed spellings above, never from input.
pub(super) fn sql_list(values: impl IntoIterator<Item = DeployStatus>) -> String {
    let quoted: Vec<String> = values.into_iter().map(|s| format!("'{}'", s.as_str())).collect();
    format!("({})", quoted.join(", "))
}
