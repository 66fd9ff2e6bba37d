//! Preview rows (SPEC §13): one per `(app, preview id)`, kept as history after teardown. The deploy switch
//! updates a preview's `deploy_id` (see `apps`); everything else writes whole rows with [`Store::put_preview`]
//! under the preview's lock. This module does not compute TTLs or domains.

use rusqlite::{Connection, OptionalExtension, Row, params};
use slip_core::names::{AppName, DeployId, PreviewId, Tag};

use super::{PreviewStatus, Store, StoreError, UnixMillis, parsed, parsed_opt};

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

impl Store {
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
