//! The webhook replay cache (SPEC §6.2 step 8): one row per timestamped signed request, keyed by the SHA-256 of
//! its signature, kept for `2 × auth.max_skew` and purged by the caller's hourly job.
//!
//! This module does not hash or verify signatures (`slip_core::signature` does) and does not decide expiry times.

use rusqlite::{OptionalExtension, params};
use slip_core::names::{AppName, DeployId};

use super::{Store, StoreError, UnixMillis, parsed_opt};

/// A signed request that was already delivered: answer 409 `replayed`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replayed {
    /// The deploy the original request created, if it created one.
    pub deploy_id: Option<DeployId>,
}

impl Store {
    /// Records a delivery by `sha256(signature)`, or reports the earlier one with the same hash, in one
    /// transaction: `Ok(Ok(()))` the first time, `Ok(Err(Replayed))` after. A row that has expired but not yet
    /// been purged still counts as a replay. `deploy_id` is the deploy this request will create, if any.
    pub fn record_delivery(
        &self,
        sig_hash: [u8; 32],
        app: &AppName,
        deploy_id: Option<&DeployId>,
        received_at: UnixMillis,
        expires_at: UnixMillis,
    ) -> Result<Result<(), Replayed>, StoreError> {
        self.write(|tx| {
            let inserted = tx.execute(
                "INSERT INTO deliveries (sig_hash, app, deploy_id, received_at, expires_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (sig_hash) DO NOTHING",
                params![sig_hash, app.as_str(), deploy_id.map(DeployId::as_str), received_at, expires_at],
            )?;
            if inserted == 1 {
                return Ok(Ok(()));
            }
            let original = tx
                .query_row("SELECT deploy_id FROM deliveries WHERE sig_hash = ?1", [sig_hash], |r| {
                    parsed_opt(r, "deploy_id")
                })
                .optional()?
                .flatten();
            Ok(Err(Replayed { deploy_id: original }))
        })
    }

    /// Deletes deliveries with `expires_at <= now`; returns how many.
    pub fn purge_deliveries(&self, now: UnixMillis) -> Result<u64, StoreError> {
        self.write(|tx| Ok(tx.execute("DELETE FROM deliveries WHERE expires_at <= ?1", [now])? as u64))
    }
}
