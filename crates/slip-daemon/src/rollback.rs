//! Rollback (SPEC §7.6): which completed release a rollback restores, and the deploy that restores it.
//!
//! A rollback is an ordinary deploy (same queue, same strategy, same safe path) whose image is pinned to the
//! **digest** the target release ran, recorded as `images = {"app": "repo@sha256:…"}` with trigger `rollback`
//! and `rollback_of` naming the target. [`pinned_image`] is how the resolver finds the pin again; the engine
//! then uses the image as it is when it is still local (retention keeps it), else pulls `repo@sha256:…`, so a
//! tag moved in the registry cannot change what a rollback runs.
//!
//! The same pinning re-creates a current release whose container vanished ([`recreate_current`], trigger
//! `reconcile`, SPEC §7.6, §18 step 4).
//!
//! This module does not authenticate (that is `api::rollback`) and does not run anything (the queue does).

use serde_json::json;
use slip_core::names::{AppName, DeployId, Tag};
use slip_engine::images::digest_of;
use slip_engine::store::{DeployRow, DeployStatus, NewDeploy, Store, StoreError, Trigger};

/// Why no rollback deploy could be made.
#[derive(Debug, thiserror::Error)]
pub enum RollbackError {
    /// `to` names no completed release of this app (404 `release_not_found`).
    #[error("{0}")]
    ReleaseNotFound(String),
    /// No `to` was given and the app has no previous release (409 `no_previous_release`).
    #[error("app {0} has no previous release to roll back to; name one with {{\"to\": \"<tag> or dep_…\"}}")]
    NoPreviousRelease(AppName),
    /// The release named is the one the app runs (409 `already_current`): restoring it would only redeploy it.
    #[error("app {app} already runs release {tag} ({id}); there is nothing to roll back to")]
    AlreadyCurrent {
        /// The app.
        app: AppName,
        /// The running release's tag.
        tag: Tag,
        /// The deploy that made it current.
        id: DeployId,
    },
    /// The store failed.
    #[error("reading releases")]
    Store(#[from] StoreError),
}

/// The completed release a rollback of `app` restores: the one `to` names (a `dep_…` id or a tag), or the
/// app's previous release. Never the release the app runs now (same deploy, or same tag and digest).
pub fn target(store: &Store, app: &AppName, to: Option<&str>) -> Result<DeployRow, RollbackError> {
    let row = match to {
        None => {
            let previous = store.app_state(app)?.and_then(|s| s.previous_deploy_id);
            let Some(previous) = previous else { return Err(RollbackError::NoPreviousRelease(app.clone())) };
            store.deploy(&previous)?.ok_or_else(|| RollbackError::NoPreviousRelease(app.clone()))?
        }
        Some(to) if to.starts_with("dep_") => {
            let id: DeployId = to.parse().map_err(|_| not_found(app, to))?;
            let row = store.deploy(&id)?.ok_or_else(|| not_found(app, to))?;
            if row.app != *app || row.preview_id.is_some() || row.status != DeployStatus::Completed {
                return Err(not_found(app, to));
            }
            row
        }
        Some(to) => {
            let tag: Tag = to.parse().map_err(|_| not_found(app, to))?;
            store.completed_with_tag(app, &tag)?.ok_or_else(|| not_found(app, to))?
        }
    };
    let current_id = store.app_state(app)?.and_then(|s| s.current_deploy_id);
    if let Some(current) = current_id.map(|id| store.deploy(&id)).transpose()?.flatten()
        && (current.id == row.id || (current.tag == row.tag && pinned_reference(&current) == pinned_reference(&row)))
    {
        return Err(RollbackError::AlreadyCurrent { app: app.clone(), tag: current.tag, id: current.id });
    }
    if pinned_reference(&row).is_none() {
        return Err(RollbackError::ReleaseNotFound(format!(
            "release {} of app {app} has no recorded image digest, so it cannot be restored exactly",
            row.id
        )));
    }
    Ok(row)
}

/// The deploy that restores `target`: trigger `rollback`, `rollback_of` set, image pinned by digest.
pub fn deploy_for(
    target: &DeployRow,
    id: DeployId,
    strategy: &str,
    actor: &str,
    source_ip: Option<String>,
    now: i64,
) -> NewDeploy {
    let pinned = pinned_reference(target).unwrap_or_default();
    NewDeploy {
        id,
        app: target.app.clone(),
        preview_id: None,
        trigger: Trigger::Rollback,
        tag: target.tag.clone(),
        images: json!({ "app": pinned }).to_string(),
        kind: target.kind.clone(),
        strategy: Some(strategy.to_owned()),
        rollback_of: Some(target.id.clone()),
        meta: None,
        actor: Some(actor.to_owned()),
        source_ip,
        created_at: now,
    }
}

/// A `reconcile` deploy that re-creates `app`'s current release from its recorded digest, or `None` when the
/// app has no current release with a digest.
pub fn recreate_current(
    store: &Store,
    app: &AppName,
    id: DeployId,
    strategy: &str,
    now: i64,
) -> Result<Option<NewDeploy>, StoreError> {
    let Some(current) = store.app_state(app)?.and_then(|s| s.current_deploy_id) else { return Ok(None) };
    let Some(row) = store.deploy(&current)? else { return Ok(None) };
    if pinned_reference(&row).is_none() {
        return Ok(None);
    }
    let mut new = deploy_for(&row, id, strategy, "system", None, now);
    new.trigger = Trigger::Reconcile;
    new.rollback_of = None;
    Ok(Some(new))
}

/// For a deploy that restores a recorded release (rollback, redeploy, reconcile), the `repo@sha256:…` it is
/// pinned to; `None` for deploys that resolve their tag.
pub fn pinned_image(row: &DeployRow) -> Option<String> {
    if !matches!(row.trigger, Trigger::Rollback | Trigger::AutoRollback | Trigger::Redeploy | Trigger::Reconcile) {
        return None;
    }
    app_reference(&row.images).filter(|r| r.contains("@sha256:"))
}

/// The digest reference a completed release ran: its recorded `digests`, else a pin in `images`.
fn pinned_reference(row: &DeployRow) -> Option<String> {
    row.digests
        .as_deref()
        .and_then(app_reference)
        .or_else(|| app_reference(&row.images))
        .filter(|r| r.contains('@') && digest_of(r).is_some())
}

fn app_reference(json: &str) -> Option<String> {
    let map: serde_json::Map<String, serde_json::Value> = serde_json::from_str(json).ok()?;
    map.get("app").and_then(|v| v.as_str()).filter(|s| !s.is_empty()).map(str::to_owned)
}

fn not_found(app: &AppName, to: &str) -> RollbackError {
    RollbackError::ReleaseNotFound(format!(
        "app {app} has no completed release {to:?}; name a tag or dep_… id of a completed deploy (slip history {app})"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(trigger: Trigger, images: &str, digests: Option<&str>) -> DeployRow {
        DeployRow {
            id: "dep_01jz0000000000000000000001".parse().unwrap(),
            app: "web".parse().unwrap(),
            preview_id: None,
            trigger,
            tag: "v1".parse().unwrap(),
            images: images.into(),
            digests: digests.map(str::to_owned),
            kind: Some("web".into()),
            strategy: Some("blue-green".into()),
            status: DeployStatus::Completed,
            error: None,
            error_code: None,
            attempt: 1,
            actor: None,
            source_ip: None,
            meta: None,
            plan: None,
            rollback_of: None,
            superseded_by: None,
            created_at: 0,
            started_at: None,
            finished_at: None,
        }
    }

    const DIGEST_REF: &str =
        "127.0.0.1:5000/web@sha256:1111111111111111111111111111111111111111111111111111111111111111";

    #[test]
    fn only_restoring_triggers_are_pinned() {
        let images = json!({ "app": DIGEST_REF }).to_string();
        assert_eq!(pinned_image(&row(Trigger::Rollback, &images, None)).as_deref(), Some(DIGEST_REF));
        assert_eq!(pinned_image(&row(Trigger::Webhook, &images, None)), None);
        let tagged = json!({ "app": "127.0.0.1:5000/web:v1" }).to_string();
        assert_eq!(pinned_image(&row(Trigger::Rollback, &tagged, None)), None);
    }

    #[test]
    fn a_rollback_deploy_restores_the_recorded_digest_not_the_tag() {
        let digests = json!({ "app": DIGEST_REF }).to_string();
        let target = row(Trigger::Webhook, r#"{"app":"127.0.0.1:5000/web:v1"}"#, Some(&digests));
        let new = deploy_for(&target, "dep_01jz0000000000000000000009".parse().unwrap(), "recreate", "admin", None, 5);
        assert_eq!(new.trigger, Trigger::Rollback);
        assert_eq!(new.rollback_of, Some(target.id.clone()));
        assert_eq!(new.tag.as_str(), "v1");
        assert_eq!(new.images, json!({ "app": DIGEST_REF }).to_string());
        assert_eq!(new.strategy.as_deref(), Some("recreate"));
    }
}
