//! Deploys, their events, and the per-target queue (SPEC §7.1, §7.2, §17.3, §18).
//!
//! A target is an app's production slot (`preview_id` NULL) or one `(app, preview id)` pair. The queue rules are
//! enforced here in single transactions: a target has at most one queued deploy, a newer request supersedes it,
//! and a running deploy is never superseded. Every status change appends a `deploy_events` row in the same
//! transaction; a terminal status is final and is always the deploy's last event.
//!
//! This module does not run deploys, enforce the order of non-terminal statuses (the core state machine does),
//! or apply the global concurrency limit (the daemon does).

use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension, Row, params, params_from_iter};
use serde_json::json;
use slip_core::names::{AppName, DeployId, PreviewId, Tag};

use super::vocab::sql_list;
use super::{DeployStatus, EventKind, NoteKind, Store, StoreError, Trigger, UnixMillis, parsed, parsed_opt};

/// How many times a deploy may be interrupted (slipd stopped mid-deploy) before it fails with `interrupted`.
pub const MAX_ATTEMPTS: u32 = 2;

/// Page size of [`Store::list_deploys`] when none is given, and the largest one allowed (SPEC §6.1).
pub const DEFAULT_PAGE: u32 = 20;
/// See [`DEFAULT_PAGE`].
pub const MAX_PAGE: u32 = 200;

/// A deploy as the webhook or CLI asked for it, before the store gives it a status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewDeploy {
    /// `dep_<ulid>`; ids sort by creation time.
    pub id: DeployId,
    /// The app.
    pub app: AppName,
    /// The preview this deploy targets; `None` for production.
    pub preview_id: Option<PreviewId>,
    /// What started it.
    pub trigger: Trigger,
    /// The requested tag or digest.
    pub tag: Tag,
    /// JSON object, container name → image reference as requested (for a single-container app, one entry for the
    /// app image; for pods, also the `images` overrides).
    pub images: String,
    /// `web`, `worker` or `pod` when already known; otherwise set at `configuring` by [`Store::record_resolution`].
    pub kind: Option<String>,
    /// `blue-green` or `recreate` when already known; see `kind`.
    pub strategy: Option<String>,
    /// For rollbacks: the deploy whose release this one restores.
    pub rollback_of: Option<DeployId>,
    /// The request's `meta` object as JSON, stored and never interpreted.
    pub meta: Option<String>,
    /// Who asked: `admin`, `app:<name>` or `system`.
    pub actor: Option<String>,
    /// The client IP of the request, when there was one.
    pub source_ip: Option<String>,
    /// When the API accepted the request.
    pub created_at: UnixMillis,
}

/// A `deploys` row, every column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeployRow {
    /// The deploy id.
    pub id: DeployId,
    /// The app.
    pub app: AppName,
    /// The preview; `None` for production.
    pub preview_id: Option<PreviewId>,
    /// What started it.
    pub trigger: Trigger,
    /// The requested tag or digest.
    pub tag: Tag,
    /// JSON object, container name → requested image reference.
    pub images: String,
    /// JSON object, container name → `repo@sha256:…`, once resolved.
    pub digests: Option<String>,
    /// `web`, `worker` or `pod`, once known.
    pub kind: Option<String>,
    /// `blue-green` or `recreate`, once known.
    pub strategy: Option<String>,
    /// Current status.
    pub status: DeployStatus,
    /// Why it failed, as a sentence.
    pub error: Option<String>,
    /// Machine-readable failure code (SPEC §7.2).
    pub error_code: Option<String>,
    /// 1, plus one per interruption.
    pub attempt: u32,
    /// Who asked.
    pub actor: Option<String>,
    /// The client IP.
    pub source_ip: Option<String>,
    /// The request's `meta` object as JSON.
    pub meta: Option<String>,
    /// The resolved plan with its config snapshot, as JSON (no secret values).
    pub plan: Option<String>,
    /// For rollbacks: the deploy restored.
    pub rollback_of: Option<DeployId>,
    /// The queued deploy that replaced this one.
    pub superseded_by: Option<DeployId>,
    /// When it was accepted by the API.
    pub created_at: UnixMillis,
    /// When it first left `queued` (the time it got its target's slot); `None` while queued.
    pub started_at: Option<UnixMillis>,
    /// When it reached a terminal status.
    pub finished_at: Option<UnixMillis>,
}

/// A `deploy_events` row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventRow {
    /// The deploy.
    pub deploy_id: DeployId,
    /// 1, 2, 3, … per deploy; the SSE event id.
    pub seq: u64,
    /// When it was recorded.
    pub at: UnixMillis,
    /// Status change, log or warning.
    pub kind: EventKind,
    /// For a status event the new status; otherwise the status the deploy was in.
    pub status: DeployStatus,
    /// Human text.
    pub message: String,
    /// Structured detail as JSON.
    pub data: Option<String>,
}

/// What [`Store::enqueue`] decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enqueued {
    /// `accepted` (the target was free) or `queued` (it waits behind the target's running deploy).
    pub status: DeployStatus,
    /// The queued deploy this one replaced, now `superseded`.
    pub supersedes: Option<DeployId>,
}

/// What [`Store::requeue_interrupted`] did with a deploy whose slipd stopped mid-way (SPEC §18).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Requeued {
    /// Back in the queue with the same id.
    Queued {
        /// The new attempt number.
        attempt: u32,
    },
    /// A newer deploy was queued for the target, so this one was superseded by it.
    Superseded {
        /// The newer deploy.
        by: DeployId,
    },
    /// Interrupted [`MAX_ATTEMPTS`] times: now `failed` with `error_code` `interrupted`.
    Failed,
}

/// What `configuring` resolved for a deploy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolution {
    /// `web`, `worker` or `pod`.
    pub kind: String,
    /// `blue-green` or `recreate`.
    pub strategy: String,
    /// JSON object, container name → `repo@sha256:…`.
    pub digests: String,
    /// The resolved plan with its config snapshot, as JSON. Must not contain secret values.
    pub plan: String,
}

/// Which deploys [`Store::list_deploys`] returns. `Default` lists everything, newest first, 20 per page.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeployFilter {
    /// Only this app.
    pub app: Option<AppName>,
    /// Only this preview (of any app unless `app` is set).
    pub preview: Option<PreviewId>,
    /// Only this status.
    pub status: Option<DeployStatus>,
    /// Page size: `None` is [`DEFAULT_PAGE`]; values are clamped to `1..=MAX_PAGE`.
    pub limit: Option<u32>,
    /// Only deploys older than this one (the previous page's `next_before`).
    pub before: Option<DeployId>,
    /// Only production deploys (no preview's); ignored when `preview` is set.
    pub production_only: bool,
}

/// Gauges for `/metrics`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueCounts {
    /// Deploys past `queued` and not terminal (including `draining`).
    pub running: u64,
    /// Deploys in `queued`.
    pub queued: u64,
}

impl Store {
    /// Inserts a deploy with an explicit initial status (`queued` or `accepted`) and its first status event,
    /// without applying the queue rules. The API path uses [`Store::enqueue`]; this is for imports and tests.
    pub fn insert_deploy(&self, new: &NewDeploy, status: DeployStatus) -> Result<(), StoreError> {
        if !matches!(status, DeployStatus::Queued | DeployStatus::Accepted) {
            return Err(StoreError::InvalidStatus { op: "insert_deploy", status, expected: "queued or accepted" });
        }
        self.write(|tx| {
            if exists(tx, new.id.as_str())? {
                return Err(StoreError::DeployExists { id: new.id.to_string() });
            }
            insert(tx, new, status, new.created_at)?;
            append_event(tx, new.id.as_str(), EventKind::Status, status, status.as_str(), None, new.created_at)?;
            Ok(())
        })
    }

    /// Records a new deploy and applies the queue rules of SPEC §7.1 in one transaction: if its target has a
    /// deploy holding the slot (`accepted` through `watching`) it becomes `queued`, otherwise `accepted`; any
    /// older queued deploy of the target becomes `superseded` with `superseded_by` set. `now` stamps the events
    /// (and `started_at` when accepted). Durable on return, so the 202 can follow.
    pub fn enqueue(&self, new: &NewDeploy, now: UnixMillis) -> Result<Enqueued, StoreError> {
        self.write(|tx| enqueue_in(tx, new, now))
    }

    /// Records a non-terminal status change: appends a `status` event (message: `message`, or the status name)
    /// and sets `deploys.status` in one committed transaction, and sets `started_at` the first time the deploy
    /// leaves `queued`. Returns the event's `seq`. A terminal status goes through [`Store::finish`]; a finished
    /// deploy is refused with [`StoreError::Finished`].
    pub fn record_status(
        &self,
        id: &DeployId,
        status: DeployStatus,
        message: Option<&str>,
        data: Option<&str>,
        at: UnixMillis,
    ) -> Result<u64, StoreError> {
        if status.is_terminal() {
            return Err(StoreError::InvalidStatus {
                op: "record_status",
                status,
                expected: "a non-terminal status (finish records completed, failed, superseded and rolled_back)",
            });
        }
        let id = id.as_str();
        self.write(|tx| {
            unfinished_status(tx, id)?;
            set_status(tx, id, status, at)?;
            append_event(tx, id, EventKind::Status, status, message.unwrap_or(status.as_str()), data, at)
        })
    }

    /// Appends a `log` or `warning` event to an unfinished deploy and returns its `seq`.
    pub fn record_event(
        &self,
        id: &DeployId,
        kind: NoteKind,
        message: &str,
        data: Option<&str>,
        at: UnixMillis,
    ) -> Result<u64, StoreError> {
        self.write(|tx| {
            let status = unfinished_status(tx, id.as_str())?;
            append_event(tx, id.as_str(), kind.into(), status, message, data, at)
        })
    }

    /// Ends a deploy with a terminal status (`completed`, `failed`, `superseded`, `rolled_back`), its error and
    /// error code, and appends the final status event (message: the error, or the status). Returns its `seq`.
    /// Finishing twice is refused with [`StoreError::Finished`].
    pub fn finish(
        &self,
        id: &DeployId,
        status: DeployStatus,
        error: Option<&str>,
        error_code: Option<&str>,
        at: UnixMillis,
    ) -> Result<u64, StoreError> {
        if !status.is_terminal() {
            return Err(StoreError::InvalidStatus {
                op: "finish",
                status,
                expected: "completed, failed, superseded or rolled_back",
            });
        }
        self.write(|tx| {
            unfinished_status(tx, id.as_str())?;
            finish_in(tx, id.as_str(), status, error, error_code, at)
        })
    }

    /// Stores what `configuring` resolved: kind, strategy, digests and the plan snapshot.
    pub fn record_resolution(&self, id: &DeployId, resolution: &Resolution) -> Result<(), StoreError> {
        self.write(|tx| {
            unfinished_status(tx, id.as_str())?;
            tx.execute(
                "UPDATE deploys SET kind = ?2, strategy = ?3, digests = ?4, plan = ?5 WHERE id = ?1",
                params![id.as_str(), resolution.kind, resolution.strategy, resolution.digests, resolution.plan],
            )?;
            Ok(())
        })
    }

    /// Puts a deploy interrupted before `switching` back in the queue with the same id and `attempt + 1`, in one
    /// transaction (SPEC §18, reconcile step 1). If a newer deploy is queued for the target it is superseded
    /// instead; after [`MAX_ATTEMPTS`] attempts it fails with `interrupted`.
    pub fn requeue_interrupted(&self, id: &DeployId, at: UnixMillis) -> Result<Requeued, StoreError> {
        let id = id.as_str();
        self.write(|tx| {
            let row = get(tx, id)?.ok_or_else(|| StoreError::DeployNotFound { id: id.to_owned() })?;
            if row.status.is_terminal() {
                return Err(StoreError::Finished { id: id.to_owned(), status: row.status });
            }
            let newer: Option<String> = tx
                .query_row(
                    "SELECT id FROM deploys WHERE app = ?1 AND preview_id IS ?2 AND status = 'queued' AND id > ?3 \
                     ORDER BY id DESC LIMIT 1",
                    params![row.app.as_str(), row.preview_id.as_ref().map(PreviewId::as_str), id],
                    |r| r.get(0),
                )
                .optional()?;
            if let Some(newer) = newer {
                supersede(tx, id, &newer, at)?;
                return Ok(Requeued::Superseded { by: newer.parse().map_err(corrupt_id)? });
            }
            if row.attempt >= MAX_ATTEMPTS {
                let error = format!("interrupted {MAX_ATTEMPTS} times by slipd stopping mid-deploy; not retrying");
                finish_in(tx, id, DeployStatus::Failed, Some(&error), Some("interrupted"), at)?;
                return Ok(Requeued::Failed);
            }
            let attempt = row.attempt + 1;
            tx.execute("UPDATE deploys SET status = 'queued', attempt = ?2 WHERE id = ?1", params![id, attempt])?;
            let message = format!("interrupted; queued again (attempt {attempt})");
            append_event(tx, id, EventKind::Status, DeployStatus::Queued, &message, None, at)?;
            Ok(Requeued::Queued { attempt })
        })
    }

    /// If the target's slot is free, moves its oldest queued deploy to `accepted` (with its status event) and
    /// returns it; otherwise `None`. One transaction, so it cannot race [`Store::enqueue`].
    pub fn promote_queued(
        &self,
        app: &AppName,
        preview: Option<&PreviewId>,
        at: UnixMillis,
    ) -> Result<Option<DeployRow>, StoreError> {
        let (app, preview) = (app.as_str(), preview.map(PreviewId::as_str));
        self.write(|tx| {
            if slot_holder(tx, app, preview)?.is_some() {
                return Ok(None);
            }
            let Some(next) = oldest_queued(tx, app, preview)? else {
                return Ok(None);
            };
            let id = next.id.as_str();
            set_status(tx, id, DeployStatus::Accepted, at)?;
            append_event(tx, id, EventKind::Status, DeployStatus::Accepted, "accepted", None, at)?;
            get(tx, id)
        })
    }

    /// One deploy, every column.
    pub fn deploy(&self, id: &DeployId) -> Result<Option<DeployRow>, StoreError> {
        self.read(|conn| get(conn, id.as_str()))
    }

    /// A page of deploys, newest first (ids are ULIDs, so `id DESC` is creation order), and the cursor for the
    /// next page (`None` on the last). Uses the `deploys (app, id DESC)` index when `app` is given.
    pub fn list_deploys(&self, filter: &DeployFilter) -> Result<(Vec<DeployRow>, Option<DeployId>), StoreError> {
        self.read(|conn| {
            let (sql, values, limit) = list_query(filter);
            let mut deploys: Vec<DeployRow> =
                conn.prepare(&sql)?.query_map(params_from_iter(values), deploy_row)?.collect::<Result<_, _>>()?;
            let next_before = if deploys.len() > limit {
                deploys.truncate(limit);
                deploys.last().map(|d| d.id.clone())
            } else {
                None
            };
            Ok((deploys, next_before))
        })
    }

    /// A deploy's events with `seq > after_seq`, in order (`after_seq` 0 gives all). Empty for an unknown deploy.
    pub fn events(&self, id: &DeployId, after_seq: u64) -> Result<Vec<EventRow>, StoreError> {
        self.read(|conn| {
            let rows = conn
                .prepare(
                    "SELECT deploy_id, seq, at, kind, status, message, data FROM deploy_events \
                     WHERE deploy_id = ?1 AND seq > ?2 ORDER BY seq",
                )?
                .query_map(params![id.as_str(), after_seq], |r| {
                    Ok(EventRow {
                        deploy_id: parsed(r, "deploy_id")?,
                        seq: r.get("seq")?,
                        at: r.get("at")?,
                        kind: r.get("kind")?,
                        status: r.get("status")?,
                        message: r.get("message")?,
                        data: r.get("data")?,
                    })
                })?
                .collect::<Result<_, _>>()?;
            Ok(rows)
        })
    }

    /// The oldest queued deploy of a target (`preview` `None` is production), if any.
    pub fn next_queued(&self, app: &AppName, preview: Option<&PreviewId>) -> Result<Option<DeployRow>, StoreError> {
        self.read(|conn| oldest_queued(conn, app.as_str(), preview.map(PreviewId::as_str)))
    }

    /// Every target that has a queued deploy, as `(app, preview)`: what the queue resumes at boot.
    pub fn waiting_targets(&self) -> Result<Vec<(AppName, Option<PreviewId>)>, StoreError> {
        self.read(|conn| {
            Ok(conn
                .prepare(
                    "SELECT DISTINCT app, preview_id FROM deploys WHERE status = 'queued' ORDER BY app, preview_id",
                )?
                .query_map([], |r| Ok((parsed(r, "app")?, parsed_opt(r, "preview_id")?)))?
                .collect::<Result<_, _>>()?)
        })
    }

    /// Every deploy that is not terminal, oldest first: what reconcile looks at on boot.
    pub fn unfinished(&self) -> Result<Vec<DeployRow>, StoreError> {
        self.read(|conn| {
            let sql = format!(
                "SELECT {DEPLOY_COLUMNS} FROM deploys WHERE status IN {} ORDER BY id",
                sql_list(DeployStatus::unfinished())
            );
            Ok(conn.prepare(&sql)?.query_map([], deploy_row)?.collect::<Result<_, _>>()?)
        })
    }

    /// How many deploys are running (past `queued`, not terminal) and queued.
    pub fn running_or_queued_count(&self) -> Result<QueueCounts, StoreError> {
        self.read(|conn| {
            let sql = format!(
                "SELECT status, count(*) FROM deploys WHERE status IN {} GROUP BY status",
                sql_list(DeployStatus::unfinished())
            );
            let mut counts = QueueCounts::default();
            let mut stmt = conn.prepare(&sql)?;
            let mut rows = stmt.query([])?;
            while let Some(row) = rows.next()? {
                let (status, n): (DeployStatus, u64) = (row.get(0)?, row.get(1)?);
                match status {
                    DeployStatus::Queued => counts.queued += n,
                    _ => counts.running += n,
                }
            }
            Ok(counts)
        })
    }

    /// The newest completed production deploy of `app` for this tag: what `rollback --to <tag>` restores.
    pub fn completed_with_tag(&self, app: &AppName, tag: &Tag) -> Result<Option<DeployRow>, StoreError> {
        self.read(|conn| {
            let sql = format!(
                "SELECT {DEPLOY_COLUMNS} FROM deploys WHERE app = ?1 AND preview_id IS NULL AND tag = ?2 \
                 AND status = 'completed' ORDER BY id DESC LIMIT 1"
            );
            Ok(conn.query_row(&sql, params![app.as_str(), tag.as_str()], deploy_row).optional()?)
        })
    }

    /// How many deploys the history holds.
    pub fn history_count(&self) -> Result<u64, StoreError> {
        self.read(|conn| Ok(conn.query_row("SELECT count(*) FROM deploys", [], |r| r.get(0))?))
    }
}

/// Every `deploys` column, in the order [`deploy_row`] reads them by name.
pub(super) const DEPLOY_COLUMNS: &str = "id, app, preview_id, \"trigger\", tag, images, digests, kind, strategy, \
     status, error, error_code, attempt, actor, source_ip, meta, plan, rollback_of, superseded_by, created_at, \
     started_at, finished_at";

pub(super) fn deploy_row(r: &Row<'_>) -> rusqlite::Result<DeployRow> {
    Ok(DeployRow {
        id: parsed(r, "id")?,
        app: parsed(r, "app")?,
        preview_id: parsed_opt(r, "preview_id")?,
        trigger: r.get("trigger")?,
        tag: parsed(r, "tag")?,
        images: r.get("images")?,
        digests: r.get("digests")?,
        kind: r.get("kind")?,
        strategy: r.get("strategy")?,
        status: r.get("status")?,
        error: r.get("error")?,
        error_code: r.get("error_code")?,
        attempt: r.get("attempt")?,
        actor: r.get("actor")?,
        source_ip: r.get("source_ip")?,
        meta: r.get("meta")?,
        plan: r.get("plan")?,
        rollback_of: parsed_opt(r, "rollback_of")?,
        superseded_by: parsed_opt(r, "superseded_by")?,
        created_at: r.get("created_at")?,
        started_at: r.get("started_at")?,
        finished_at: r.get("finished_at")?,
    })
}

/// The SQL, parameters and page size [`Store::list_deploys`] runs; it fetches one extra row to know whether
/// another page exists. Separate so a test can `EXPLAIN QUERY PLAN` exactly this query.
pub(super) fn list_query(filter: &DeployFilter) -> (String, Vec<Value>, usize) {
    let limit = filter.limit.unwrap_or(DEFAULT_PAGE).clamp(1, MAX_PAGE);
    let mut conditions = Vec::new();
    let mut values = Vec::new();
    let mut add = |condition: &str, value: String| {
        values.push(Value::Text(value));
        conditions.push(format!("{condition} ?{}", values.len()));
    };
    if let Some(app) = &filter.app {
        add("app =", app.to_string());
    }
    if let Some(preview) = &filter.preview {
        add("preview_id =", preview.to_string());
    }
    if let Some(status) = filter.status {
        add("status =", status.as_str().to_owned());
    }
    if let Some(before) = &filter.before {
        add("id <", before.to_string());
    }
    if filter.preview.is_none() && filter.production_only {
        conditions.push("preview_id IS NULL".to_owned());
    }
    let mut sql = format!("SELECT {DEPLOY_COLUMNS} FROM deploys");
    if !conditions.is_empty() {
        sql.push_str(" WHERE ");
        sql.push_str(&conditions.join(" AND "));
    }
    values.push(Value::Integer(i64::from(limit) + 1));
    sql.push_str(&format!(" ORDER BY id DESC LIMIT ?{}", values.len()));
    (sql, values, limit as usize)
}

pub(super) fn get(conn: &Connection, id: &str) -> Result<Option<DeployRow>, StoreError> {
    let sql = format!("SELECT {DEPLOY_COLUMNS} FROM deploys WHERE id = ?1");
    Ok(conn.query_row(&sql, [id], deploy_row).optional()?)
}

fn exists(conn: &Connection, id: &str) -> rusqlite::Result<bool> {
    conn.query_row("SELECT EXISTS (SELECT 1 FROM deploys WHERE id = ?1)", [id], |r| r.get(0))
}

/// [`Store::enqueue`] inside a transaction the caller holds.
pub(super) fn enqueue_in(tx: &Connection, new: &NewDeploy, now: UnixMillis) -> Result<Enqueued, StoreError> {
    if exists(tx, new.id.as_str())? {
        return Err(StoreError::DeployExists { id: new.id.to_string() });
    }
    let (app, preview) = (new.app.as_str(), new.preview_id.as_ref().map(PreviewId::as_str));
    let holder = slot_holder(tx, app, preview)?;
    let older_queued: Vec<String> = tx
        .prepare("SELECT id FROM deploys WHERE app = ?1 AND preview_id IS ?2 AND status = 'queued' ORDER BY id")?
        .query_map(params![app, preview], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    let status = if holder.is_some() { DeployStatus::Queued } else { DeployStatus::Accepted };
    insert(tx, new, status, now)?;
    let (message, data) = match &holder {
        Some(running) => (format!("queued behind {running}"), Some(json!({ "behind": running }).to_string())),
        None => ("accepted".to_owned(), None),
    };
    append_event(tx, new.id.as_str(), EventKind::Status, status, &message, data.as_deref(), now)?;
    for old in &older_queued {
        supersede(tx, old, new.id.as_str(), now)?;
    }
    let supersedes = older_queued.last().map(|id| id.parse()).transpose().map_err(corrupt_id)?;
    Ok(Enqueued { status, supersedes })
}

/// The newest deploy holding the target's slot, if any.
fn slot_holder(conn: &Connection, app: &str, preview: Option<&str>) -> rusqlite::Result<Option<String>> {
    let sql = format!(
        "SELECT id FROM deploys WHERE app = ?1 AND preview_id IS ?2 AND status IN {} ORDER BY id DESC LIMIT 1",
        sql_list(DeployStatus::SLOT_HOLDING.iter().copied())
    );
    conn.query_row(&sql, params![app, preview], |r| r.get(0)).optional()
}

fn oldest_queued(conn: &Connection, app: &str, preview: Option<&str>) -> Result<Option<DeployRow>, StoreError> {
    let sql = format!(
        "SELECT {DEPLOY_COLUMNS} FROM deploys WHERE app = ?1 AND preview_id IS ?2 AND status = 'queued' \
         ORDER BY id LIMIT 1"
    );
    Ok(conn.query_row(&sql, params![app, preview], deploy_row).optional()?)
}

fn insert(conn: &Connection, new: &NewDeploy, status: DeployStatus, now: UnixMillis) -> Result<(), StoreError> {
    let started_at = (status != DeployStatus::Queued).then_some(now);
    conn.execute(
        "INSERT INTO deploys (id, app, preview_id, \"trigger\", tag, images, kind, strategy, status, attempt, actor, \
         source_ip, meta, rollback_of, created_at, started_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, 1, ?10, ?11, ?12, ?13, ?14, ?15)",
        params![
            new.id.as_str(),
            new.app.as_str(),
            new.preview_id.as_ref().map(PreviewId::as_str),
            new.trigger,
            new.tag.as_str(),
            new.images,
            new.kind,
            new.strategy,
            status,
            new.actor,
            new.source_ip,
            new.meta,
            new.rollback_of.as_ref().map(DeployId::as_str),
            new.created_at,
            started_at,
        ],
    )?;
    Ok(())
}

/// The deploy's status, or an error if it does not exist or has finished.
fn unfinished_status(conn: &Connection, id: &str) -> Result<DeployStatus, StoreError> {
    let status: Option<DeployStatus> =
        conn.query_row("SELECT status FROM deploys WHERE id = ?1", [id], |r| r.get(0)).optional()?;
    match status {
        None => Err(StoreError::DeployNotFound { id: id.to_owned() }),
        Some(status) if status.is_terminal() => Err(StoreError::Finished { id: id.to_owned(), status }),
        Some(status) => Ok(status),
    }
}

fn set_status(conn: &Connection, id: &str, status: DeployStatus, at: UnixMillis) -> rusqlite::Result<()> {
    conn.execute(
        "UPDATE deploys SET status = ?2, \
         started_at = CASE WHEN ?2 = 'queued' THEN started_at ELSE coalesce(started_at, ?3) END WHERE id = ?1",
        params![id, status, at],
    )?;
    Ok(())
}

pub(super) fn finish_in(
    conn: &Connection,
    id: &str,
    status: DeployStatus,
    error: Option<&str>,
    error_code: Option<&str>,
    at: UnixMillis,
) -> Result<u64, StoreError> {
    conn.execute(
        "UPDATE deploys SET status = ?2, error = ?3, error_code = ?4, finished_at = ?5 WHERE id = ?1",
        params![id, status, error, error_code, at],
    )?;
    let data = error_code.map(|code| json!({ "error_code": code }).to_string());
    append_event(conn, id, EventKind::Status, status, error.unwrap_or(status.as_str()), data.as_deref(), at)
}

/// Ends a queued (or interrupted) deploy as superseded by `by`.
fn supersede(conn: &Connection, id: &str, by: &str, at: UnixMillis) -> Result<(), StoreError> {
    conn.execute(
        "UPDATE deploys SET status = 'superseded', superseded_by = ?2, finished_at = ?3 WHERE id = ?1",
        params![id, by, at],
    )?;
    let data = json!({ "superseded_by": by }).to_string();
    append_event(
        conn,
        id,
        EventKind::Status,
        DeployStatus::Superseded,
        &format!("superseded by {by}"),
        Some(&data),
        at,
    )?;
    Ok(())
}

/// Appends the deploy's next event and returns its `seq`.
pub(super) fn append_event(
    conn: &Connection,
    id: &str,
    kind: EventKind,
    status: DeployStatus,
    message: &str,
    data: Option<&str>,
    at: UnixMillis,
) -> Result<u64, StoreError> {
    let seq: u64 = conn.query_row(
        "INSERT INTO deploy_events (deploy_id, seq, at, kind, status, message, data) \
         VALUES (?1, (SELECT coalesce(max(seq), 0) + 1 FROM deploy_events WHERE deploy_id = ?1), ?2, ?3, ?4, ?5, ?6) \
         RETURNING seq",
        params![id, at, kind, status, message, data],
        |r| r.get(0),
    )?;
    Ok(seq)
}

/// A deploy id read from the database that does not parse.
pub(super) fn corrupt_id(e: slip_core::names::NameError) -> StoreError {
    StoreError::Sqlite(rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e)))
}
