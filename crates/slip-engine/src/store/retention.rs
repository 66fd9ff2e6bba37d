//! History retention (SPEC §3.2 `storage.history_retention`, §10): deploys that ended before a cutoff are deleted
//! with their events, except the ones behind a current, previous or retained release, and any a live record still
//! names (an instance, a preview). Retired instance rows older than the cutoff go first, so they hold nothing. The
//! audit log is never pruned.

use rusqlite::params;

use super::{Store, StoreError, UnixMillis};

/// What [`Store::prune_history`] deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pruned {
    /// Deploy rows.
    pub deploys: u64,
    /// Their events.
    pub events: u64,
    /// Retired instance rows.
    pub instances: u64,
}

impl Store {
    /// Deletes history that ended before `cutoff`, keeping each app's current and previous release, its newest
    /// `keep` completed production deploys (the releases image retention keeps), and every deploy an instance or a
    /// preview row names. One transaction.
    pub fn prune_history(&self, cutoff: UnixMillis, keep: usize) -> Result<Pruned, StoreError> {
        self.write(|tx| {
            let instances = tx.execute(
                "DELETE FROM instances WHERE retired_at IS NOT NULL AND retired_at < ?1 \
                 AND id NOT IN (SELECT instance_id FROM port_leases)",
                [cutoff],
            )? as u64;
            tx.execute("CREATE TEMP TABLE IF NOT EXISTS prune_victims (id TEXT PRIMARY KEY NOT NULL) STRICT", [])?;
            tx.execute("DELETE FROM prune_victims", [])?;
            tx.execute(
                "INSERT INTO prune_victims (id) \
                 SELECT id FROM deploys \
                 WHERE status IN ('completed', 'failed', 'superseded', 'rolled_back') \
                   AND coalesce(finished_at, created_at) < ?1 \
                   AND id NOT IN (SELECT current_deploy_id FROM apps WHERE current_deploy_id IS NOT NULL) \
                   AND id NOT IN (SELECT previous_deploy_id FROM apps WHERE previous_deploy_id IS NOT NULL) \
                   AND id NOT IN (SELECT deploy_id FROM instances) \
                   AND id NOT IN (SELECT deploy_id FROM previews WHERE deploy_id IS NOT NULL) \
                   AND id NOT IN ( \
                     SELECT id FROM ( \
                       SELECT id, row_number() OVER (PARTITION BY app ORDER BY id DESC) AS n FROM deploys \
                       WHERE status = 'completed' AND preview_id IS NULL \
                     ) WHERE n <= ?2)",
                params![cutoff, keep as i64],
            )?;
            let events =
                tx.execute("DELETE FROM deploy_events WHERE deploy_id IN (SELECT id FROM prune_victims)", [])? as u64;
            let deploys = tx.execute("DELETE FROM deploys WHERE id IN (SELECT id FROM prune_victims)", [])? as u64;
            tx.execute("DELETE FROM prune_victims", [])?;
            Ok(Pruned { deploys, events, instances })
        })
    }
}
