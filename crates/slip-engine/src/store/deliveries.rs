//! The webhook replay cache (SPEC §6.2 step 8): one row per timestamped signed request, keyed by the SHA-256 of
//! its signature, kept for `2 × auth.max_skew` and purged by the caller's hourly job.
//!
//! This module does not hash or verify signatures (`slip_core::signature` does) and does not decide expiry times.

use rusqlite::{OptionalExtension, params};
use slip_core::names::{AppName, DeployId};

use super::{Store, StoreError, UnixMillis, parsed_opt};

/// One signed request, as recorded for replay detection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// `sha256(signature)`: the request's identity.
    pub sig_hash: [u8; 32],
    /// The app the request was for.
    pub app: AppName,
    /// The deploy it created, if any; a replay answers 409 naming it.
    pub deploy_id: Option<DeployId>,
    /// When it arrived.
    pub received_at: UnixMillis,
    /// When the row may be purged.
    pub expires_at: UnixMillis,
}

/// What [`Store::record_delivery`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliveryOutcome {
    /// First time this signature was seen; it is now recorded.
    Fresh,
    /// The signature was already recorded: a replay (409 `replayed`).
    Replayed {
        /// The deploy the original request created.
        deploy_id: Option<DeployId>,
    },
}

impl Store {
    /// Inserts the delivery, or reports the earlier one with the same signature hash, in one transaction.
    /// A row that has expired but not yet been purged still counts as a replay.
    pub async fn record_delivery(&self, delivery: Delivery) -> Result<DeliveryOutcome, StoreError> {
        self.write(move |tx| {
            let inserted = tx.execute(
                "INSERT INTO deliveries (sig_hash, app, deploy_id, received_at, expires_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (sig_hash) DO NOTHING",
                params![
                    delivery.sig_hash,
                    delivery.app.as_str(),
                    delivery.deploy_id.as_ref().map(DeployId::as_str),
                    delivery.received_at,
                    delivery.expires_at,
                ],
            )?;
            if inserted == 1 {
                return Ok(DeliveryOutcome::Fresh);
            }
            let deploy_id = tx
                .query_row("SELECT deploy_id FROM deliveries WHERE sig_hash = ?1", [delivery.sig_hash], |r| {
                    parsed_opt(r, "deploy_id")
                })
                .optional()?
                .flatten();
            Ok(DeliveryOutcome::Replayed { deploy_id })
        })
        .await
    }

    /// Deletes deliveries with `expires_at <= now`; returns how many.
    pub async fn purge_deliveries(&self, now: UnixMillis) -> Result<u64, StoreError> {
        self.write(move |tx| Ok(tx.execute("DELETE FROM deliveries WHERE expires_at <= ?1", [now])? as u64)).await
    }
}
