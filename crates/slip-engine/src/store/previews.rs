//! Preview rows (SPEC §13): one per `(app, preview id)`, kept as history after teardown. The deploy switch
//! updates a preview's `deploy_id` (see `apps`); everything else writes whole rows with [`Store::put_preview`]
//! under the preview's lock. This module does not compute TTLs or domains.

use rusqlite::{Connection, OptionalExtension, Row, params};
use slip_core::names::{AppName, DeployId, PreviewId, Tag};

use super::deploys::enqueue_in;
use super::{Enqueued, NewDeploy, PreviewStatus, Store, StoreError, UnixMillis, parsed, parsed_opt};

/// A `previews` row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreviewRow {
    /// The app.
    pub app: AppName,
    /// The preview id.
    pub id: PreviewId,
    /// Its state.
    pub status: PreviewStatus,
    /// The deploy whose release serves it.
    pub deploy_id: Option<DeployId>,
    /// `<id>.<domain>` base it is served under.
    pub domain: String,
    /// The commit it was built from, when CI said.
    pub sha: Option<String>,
    /// The tag deployed.
    pub tag: Option<Tag>,
    /// First request.
    pub created_at: UnixMillis,
    /// Last completed deploy.
    pub deployed_at: Option<UnixMillis>,
    /// When the reaper tears it down.
    pub expires_at: Option<UnixMillis>,
    /// When it was torn down.
    pub torn_down_at: Option<UnixMillis>,
    /// Why its deploy failed.
    pub error: Option<String>,
}

/// What a preview webhook records beside its deploy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreviewRequest {
    /// Base domain the preview is served under.
    pub domain: String,
    /// The commit, when CI said.
    pub sha: Option<String>,
    /// `expires_at` for a preview created by this request (now + the TTL known at the webhook), so a preview whose
    /// first deploy never completes is still reaped. An existing preview keeps its own until a deploy completes.
    pub expires_at: UnixMillis,
    /// The deploy's `plan` until it is resolved: what the webhook asked for that the resolver needs later (its TTL).
    pub plan: Option<String>,
}

/// What [`Store::enqueue_preview`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreviewEnqueued {
    /// The queue's answer.
    pub enqueued: Enqueued,
    /// Whether the preview is new (no row, or only a torn-down one).
    pub created: bool,
}

impl Store {
    /// Records a preview deploy in one transaction: the preview row (created as `deploying`, or, when it exists,
    /// given the new `sha`) and the deploy under the queue rules of [`Store::enqueue`]. Durable on return.
    pub fn enqueue_preview(
        &self,
        new: &NewDeploy,
        request: &PreviewRequest,
        now: UnixMillis,
    ) -> Result<PreviewEnqueued, StoreError> {
        let id = new.preview_id.as_ref().expect("a preview deploy names its preview");
        self.write(|tx| {
            let status: Option<PreviewStatus> = tx
                .query_row(
                    "SELECT status FROM previews WHERE app = ?1 AND id = ?2",
                    params![new.app.as_str(), id.as_str()],
                    |r| r.get(0),
                )
                .optional()?;
            let created = matches!(status, None | Some(PreviewStatus::TornDown));
            if created {
                tx.execute(
                    "INSERT OR REPLACE INTO previews (app, id, status, deploy_id, domain, sha, tag, created_at, \
                     deployed_at, expires_at, torn_down_at, error) \
                     VALUES (?1, ?2, 'deploying', NULL, ?3, ?4, ?5, ?6, NULL, ?7, NULL, NULL)",
                    params![
                        new.app.as_str(),
                        id.as_str(),
                        request.domain,
                        request.sha,
                        new.tag.as_str(),
                        now,
                        request.expires_at
                    ],
                )?;
            } else {
                tx.execute(
                    "UPDATE previews SET sha = coalesce(?3, sha), domain = ?4 WHERE app = ?1 AND id = ?2",
                    params![new.app.as_str(), id.as_str(), request.sha, request.domain],
                )?;
            }
            let enqueued = enqueue_in(tx, new, now)?;
            if let Some(plan) = &request.plan {
                tx.execute("UPDATE deploys SET plan = ?2 WHERE id = ?1", params![new.id.as_str(), plan])?;
            }
            Ok(PreviewEnqueued { enqueued, created })
        })
    }

    /// Records that preview deploy `deploy` failed: a preview that never served becomes `failed` with `error` and
    /// `deploy_id` naming the failed deploy (nothing serves, so the reaper dates the failure by that deploy's end);
    /// one that serves stays `running` (a failed redeploy leaves it untouched). A torn-down preview is left alone.
    pub fn preview_deploy_failed(
        &self,
        app: &AppName,
        id: &PreviewId,
        deploy: &DeployId,
        error: &str,
    ) -> Result<(), StoreError> {
        self.write(|tx| {
            tx.execute(
                "UPDATE previews SET status = 'failed', error = ?4, deploy_id = ?3 \
                 WHERE app = ?1 AND id = ?2 AND status IN ('deploying', 'failed')",
                params![app.as_str(), id.as_str(), deploy.as_str(), error],
            )?;
            Ok(())
        })
    }

    /// Brings a preview's `expires_at` forward to `at` (never later), so the reaper finishes a teardown that was
    /// interrupted. The first step of every teardown.
    pub fn expire_preview(&self, app: &AppName, id: &PreviewId, at: UnixMillis) -> Result<(), StoreError> {
        self.write(|tx| {
            tx.execute(
                "UPDATE previews SET expires_at = min(coalesce(expires_at, ?3), ?3) \
                 WHERE app = ?1 AND id = ?2 AND status != 'torn_down'",
                params![app.as_str(), id.as_str(), at],
            )?;
            Ok(())
        })
    }

    /// Marks a preview `torn_down` at `at` (the row stays as history). Returns whether it was live.
    pub fn mark_preview_torn_down(&self, app: &AppName, id: &PreviewId, at: UnixMillis) -> Result<bool, StoreError> {
        self.write(|tx| {
            let changed = tx.execute(
                "UPDATE previews SET status = 'torn_down', torn_down_at = ?3 \
                 WHERE app = ?1 AND id = ?2 AND status != 'torn_down'",
                params![app.as_str(), id.as_str(), at],
            )?;
            Ok(changed > 0)
        })
    }

    /// Live (not torn down) previews of `app`, or of all apps.
    pub fn live_previews(&self, app: Option<&AppName>) -> Result<Vec<PreviewRow>, StoreError> {
        self.read(|conn| {
            rows(
                conn,
                "SELECT * FROM previews WHERE (?1 IS NULL OR app = ?1) AND status != 'torn_down' ORDER BY app, id",
                params![app.map(AppName::as_str)],
            )
        })
    }

    /// Failed previews whose failed deploy finished at or before `before` (or, without one, that were created
    /// then) and that no deploy is retrying now: the reaper's second list.
    pub fn previews_failed_before(&self, before: UnixMillis) -> Result<Vec<PreviewRow>, StoreError> {
        self.read(|conn| {
            rows(
                conn,
                "SELECT p.* FROM previews p LEFT JOIN deploys d ON d.id = p.deploy_id \
                 WHERE p.status = 'failed' AND coalesce(d.finished_at, p.created_at) <= ?1 \
                 AND NOT EXISTS (SELECT 1 FROM deploys q WHERE q.app = p.app AND q.preview_id = p.id \
                                 AND q.finished_at IS NULL) \
                 ORDER BY p.app, p.id",
                params![before],
            )
        })
    }

    /// Inserts or replaces a preview row.
    pub fn put_preview(&self, row: &PreviewRow) -> Result<(), StoreError> {
        self.write(|tx| {
            tx.execute(
                "INSERT OR REPLACE INTO previews (app, id, status, deploy_id, domain, sha, tag, created_at, \
                 deployed_at, expires_at, torn_down_at, error) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
                params![
                    row.app.as_str(),
                    row.id.as_str(),
                    row.status,
                    row.deploy_id.as_ref().map(DeployId::as_str),
                    row.domain,
                    row.sha,
                    row.tag.as_ref().map(Tag::as_str),
                    row.created_at,
                    row.deployed_at,
                    row.expires_at,
                    row.torn_down_at,
                    row.error,
                ],
            )?;
            Ok(())
        })
    }

    /// One preview.
    pub fn preview(&self, app: &AppName, id: &PreviewId) -> Result<Option<PreviewRow>, StoreError> {
        self.read(|conn| {
            Ok(conn
                .query_row(
                    "SELECT * FROM previews WHERE app = ?1 AND id = ?2",
                    params![app.as_str(), id.as_str()],
                    preview_row,
                )
                .optional()?)
        })
    }

    /// The previews of one app, or of all apps, torn down ones included, by app and id.
    pub fn previews(&self, app: Option<&AppName>) -> Result<Vec<PreviewRow>, StoreError> {
        self.read(|conn| {
            rows(
                conn,
                "SELECT * FROM previews WHERE ?1 IS NULL OR app = ?1 ORDER BY app, id",
                params![app.map(AppName::as_str)],
            )
        })
    }

    /// Previews not yet torn down whose `expires_at <= now`, soonest first (uses the `expires_at` index).
    pub fn previews_expiring(&self, now: UnixMillis) -> Result<Vec<PreviewRow>, StoreError> {
        self.read(|conn| {
            rows(
                conn,
                "SELECT * FROM previews WHERE expires_at <= ?1 AND status != 'torn_down' ORDER BY expires_at, app, id",
                params![now],
            )
        })
    }
}

fn rows(conn: &Connection, sql: &str, params: impl rusqlite::Params) -> Result<Vec<PreviewRow>, StoreError> {
    Ok(conn.prepare(sql)?.query_map(params, preview_row)?.collect::<Result<_, _>>()?)
}

fn preview_row(r: &Row<'_>) -> rusqlite::Result<PreviewRow> {
    Ok(PreviewRow {
        app: parsed(r, "app")?,
        id: parsed(r, "id")?,
        status: r.get("status")?,
        deploy_id: parsed_opt(r, "deploy_id")?,
        domain: r.get("domain")?,
        sha: r.get("sha")?,
        tag: parsed_opt(r, "tag")?,
        created_at: r.get("created_at")?,
        deployed_at: r.get("deployed_at")?,
        expires_at: r.get("expires_at")?,
        torn_down_at: r.get("torn_down_at")?,
        error: r.get("error")?,
    })
}
