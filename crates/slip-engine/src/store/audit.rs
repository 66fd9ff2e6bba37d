//! The hash-chained audit log (SPEC §10, §16): `hash = SHA-256(prev_hash ‖ canonical row)`, with 32 zero bytes
//! before the first entry. The canonical row is the compact JSON array
//! `[id, at, actor, source_ip, request_id, action, target, detail]` (nulls as `null`), so the chain can be
//! checked by any tool that can produce that JSON. Appends compute the next link inside the write transaction.
//!
//! Never store secret values here: the caller passes keys and fingerprints, not values.

use rusqlite::{Connection, Row, params};
use serde_json::json;
use sha2::{Digest, Sha256};

use super::deploys::{DEFAULT_PAGE, MAX_PAGE};
use super::{Store, StoreError, UnixMillis};

/// What happened, as the caller records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    /// When.
    pub at: UnixMillis,
    /// `admin`, `app:<name>` or `system`.
    pub actor: String,
    /// The client IP, for API requests.
    pub source_ip: Option<String>,
    /// The request's `X-Request-Id`.
    pub request_id: Option<String>,
    /// What was done, e.g. `app.created`, `secret.set`, `legacy_signature`.
    pub action: String,
    /// What it was done to, e.g. an app name or `app/KEY`.
    pub target: Option<String>,
    /// Free-form detail; never a secret value.
    pub detail: Option<String>,
}

/// An `audit_log` row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRow {
    /// Position in the chain, from 1.
    pub id: i64,
    /// The recorded entry.
    pub entry: AuditEntry,
    /// The previous row's `hash` (zeros for the first row).
    pub prev_hash: [u8; 32],
    /// `SHA-256(prev_hash ‖ canonical row)`.
    pub hash: [u8; 32],
}

/// One page of the audit log, newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditPage {
    /// The entries.
    pub entries: Vec<AuditRow>,
    /// The cursor for the next page (an audit id); `None` at the end.
    pub next_before: Option<i64>,
}

/// The result of checking the chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditVerdict {
    /// Every link matches.
    Intact {
        /// Rows checked.
        entries: u64,
    },
    /// The first row whose link or hash does not match: it, or a row before it, was changed or removed.
    Broken {
        /// That row's id.
        id: i64,
    },
}

impl Store {
    /// Appends an entry, linking it to the previous one, and returns the stored row.
    pub fn append_audit(&self, entry: AuditEntry) -> Result<AuditRow, StoreError> {
        self.write(|tx| {
            let (id, prev_hash): (i64, Option<[u8; 32]>) = tx.query_row(
                "SELECT coalesce(max(id), 0) + 1, (SELECT hash FROM audit_log ORDER BY id DESC LIMIT 1) FROM audit_log",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?;
            let prev_hash = prev_hash.unwrap_or([0; 32]);
            let hash = link(&prev_hash, id, &entry);
            tx.execute(
                "INSERT INTO audit_log (id, at, actor, source_ip, request_id, action, target, detail, prev_hash, hash) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                params![
                    id,
                    entry.at,
                    entry.actor,
                    entry.source_ip,
                    entry.request_id,
                    entry.action,
                    entry.target,
                    entry.detail,
                    prev_hash,
                    hash
                ],
            )?;
            Ok(AuditRow { id, entry, prev_hash, hash })
        })
    }

    /// A page of the audit log, newest first; `limit` as for deploys (default 20, at most 200).
    pub fn audit_page(&self, limit: Option<u32>, before: Option<i64>) -> Result<AuditPage, StoreError> {
        let limit = limit.unwrap_or(DEFAULT_PAGE).clamp(1, MAX_PAGE) as usize;
        self.read(|conn| {
            let mut entries = rows(
                conn,
                "SELECT * FROM audit_log WHERE ?1 IS NULL OR id < ?1 ORDER BY id DESC LIMIT ?2",
                params![before, limit as i64 + 1],
            )?;
            let next_before = if entries.len() > limit {
                entries.truncate(limit);
                entries.last().map(|e| e.id)
            } else {
                None
            };
            Ok(AuditPage { entries, next_before })
        })
    }

    /// Walks the whole chain from the first row and reports the first broken link.
    pub fn verify_audit(&self) -> Result<AuditVerdict, StoreError> {
        self.read(|conn| {
            let mut stmt = conn.prepare("SELECT * FROM audit_log ORDER BY id")?;
            let mut rows = stmt.query([])?;
            let mut expected_prev = [0u8; 32];
            let mut entries = 0u64;
            while let Some(row) = rows.next()? {
                let row = audit_row(row)?;
                if row.prev_hash != expected_prev || row.hash != link(&row.prev_hash, row.id, &row.entry) {
                    return Ok(AuditVerdict::Broken { id: row.id });
                }
                expected_prev = row.hash;
                entries += 1;
            }
            Ok(AuditVerdict::Intact { entries })
        })
    }
}

/// `SHA-256(prev_hash ‖ canonical row)`.
fn link(prev_hash: &[u8; 32], id: i64, e: &AuditEntry) -> [u8; 32] {
    let canonical = json!([id, e.at, e.actor, e.source_ip, e.request_id, e.action, e.target, e.detail]).to_string();
    let mut hasher = Sha256::new();
    hasher.update(prev_hash);
    hasher.update(canonical.as_bytes());
    hasher.finalize().into()
}

fn rows(conn: &Connection, sql: &str, params: impl rusqlite::Params) -> Result<Vec<AuditRow>, StoreError> {
    Ok(conn.prepare(sql)?.query_map(params, audit_row)?.collect::<Result<_, _>>()?)
}

fn audit_row(r: &Row<'_>) -> rusqlite::Result<AuditRow> {
    Ok(AuditRow {
        id: r.get("id")?,
        entry: AuditEntry {
            at: r.get("at")?,
            actor: r.get("actor")?,
            source_ip: r.get("source_ip")?,
            request_id: r.get("request_id")?,
            action: r.get("action")?,
            target: r.get("target")?,
            detail: r.get("detail")?,
        },
        prev_hash: r.get("prev_hash")?,
        hash: r.get("hash")?,
    })
}
