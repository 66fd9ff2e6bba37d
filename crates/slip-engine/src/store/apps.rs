//! App rows: the current and previous release pointers, and the switch transaction that moves them together with
//! the instance roles (SPEC §7.4 step 2, §7.5 step 4, and the watch rollback of §7.4 step 3).
//!
//! Pointers name deploys; a release is what a deploy put in place. This module does not touch Caddy or the
//! engine, and it never deletes history: deleting an app removes only its `apps` row.

use rusqlite::{Connection, OptionalExtension, Row, params};
use slip_core::names::{AppName, DeployId, PreviewId};

use super::{AppStatus, DeployStatus, InstanceRole, Store, StoreError, UnixMillis, parsed, parsed_opt};

/// An `apps` row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppState {
    /// The app.
    pub name: AppName,
    /// `web`, `worker` or `pod`, once a deploy resolved it.
    pub kind: Option<String>,
    /// What `/v1/status` reports.
    pub status: AppStatus,
    /// The deploy whose release serves.
    pub current_deploy_id: Option<DeployId>,
    /// The release before it: the default rollback target.
    pub previous_deploy_id: Option<DeployId>,
    /// Hash of the app's config as last deployed (drives `config_drift`).
    pub config_hash: Option<String>,
    /// Last change of this row.
    pub updated_at: UnixMillis,
}

/// What [`Store::forget_app`] changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Forgotten {
    /// Whether the app had an `apps` row.
    pub existed: bool,
    /// Deploys that were waiting and now ended `failed` with `app_deleted`.
    pub failed: Vec<DeployId>,
    /// Ids of the instance rows retired (their containers are the caller's to remove).
    pub retired: Vec<String>,
}

/// The commit point of a deploy: the candidate becomes current.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Switch {
    /// The app.
    pub app: AppName,
    /// The preview, or `None` for production.
    pub preview: Option<PreviewId>,
    /// A preview's new `expires_at` (now + its TTL): each completed deploy resets it. Ignored for production.
    pub expires_at: Option<UnixMillis>,
    /// The deploy being switched to.
    pub deploy_id: DeployId,
    /// The candidate instance, which becomes `current`.
    pub new_instance: String,
    /// The instance serving until now: `current` becomes `draining`; a `stopped` one (recreate) stays stopped.
    pub old_instance: Option<String>,
    /// When.
    pub at: UnixMillis,
}

/// The undo of a [`Switch`] after the post-switch watch failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unswitch {
    /// The app.
    pub app: AppName,
    /// The preview, or `None` for production.
    pub preview: Option<PreviewId>,
    /// The instance that was switched to; it becomes `draining` (the caller then removes and retires it).
    pub new_instance: String,
    /// The instance to restore as `current`.
    pub old_instance: Option<String>,
    /// When.
    pub at: UnixMillis,
}

impl Store {
    /// An app's row, if it has one (apps get a row at their first switch or status change).
    pub fn app_state(&self, app: &AppName) -> Result<Option<AppState>, StoreError> {
        self.read(|conn| get(conn, app.as_str()))
    }

    /// Every app row, by name.
    pub fn list_app_states(&self) -> Result<Vec<AppState>, StoreError> {
        self.read(|conn| {
            Ok(conn.prepare("SELECT * FROM apps ORDER BY name")?.query_map([], app_row)?.collect::<Result<_, _>>()?)
        })
    }

    /// Makes `deploy_id` the app's current release and the old current its previous one, in one transaction;
    /// status becomes `running`. Setting the same deploy again leaves `previous` alone.
    pub fn set_current(
        &self,
        app: &AppName,
        kind: &str,
        deploy_id: &DeployId,
        at: UnixMillis,
    ) -> Result<(), StoreError> {
        self.write(|tx| set_current_in(tx, app.as_str(), Some(kind), deploy_id.as_str(), at))
    }

    /// Sets an app's status, creating its row if needed.
    pub fn set_app_status(&self, app: &AppName, status: AppStatus, at: UnixMillis) -> Result<(), StoreError> {
        self.write(|tx| {
            tx.execute(
                "INSERT INTO apps (name, status, updated_at) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (name) DO UPDATE SET status = excluded.status, updated_at = excluded.updated_at",
                params![app.as_str(), status, at],
            )?;
            Ok(())
        })
    }

    /// Changes the status of an app that has a row, answering whether it had one; never creates the row (the
    /// periodic healer must not bring back an app a delete just forgot).
    pub fn update_app_status(&self, app: &AppName, status: AppStatus, at: UnixMillis) -> Result<bool, StoreError> {
        self.write(|tx| {
            Ok(tx.execute(
                "UPDATE apps SET status = ?2, updated_at = ?3 WHERE name = ?1",
                params![app.as_str(), status, at],
            )? > 0)
        })
    }

    /// Records the hash of the config the current release runs with (`config_drift` compares against it).
    pub fn set_config_hash(&self, app: &AppName, hash: &str, at: UnixMillis) -> Result<(), StoreError> {
        self.write(|tx| {
            tx.execute(
                "INSERT INTO apps (name, status, config_hash, updated_at) VALUES (?1, 'not_deployed', ?2, ?3) \
                 ON CONFLICT (name) DO UPDATE SET config_hash = excluded.config_hash, updated_at = excluded.updated_at",
                params![app.as_str(), hash, at],
            )?;
            Ok(())
        })
    }

    /// Deletes an app's row so a re-created app inherits nothing. Deploy history, instances and previews are
    /// kept; the caller retires instances first. Returns whether a row existed.
    pub fn delete_app(&self, app: &AppName) -> Result<bool, StoreError> {
        self.write(|tx| Ok(tx.execute("DELETE FROM apps WHERE name = ?1", [app.as_str()])? > 0))
    }

    /// Forgets a deleted app in one transaction (SPEC §6.6): its waiting deploys (`queued` or `accepted`) end
    /// `failed` with code `app_deleted`, every live instance row is retired and its port leases released, its
    /// preview rows and its `apps` row are deleted. Deploy history stays. Removing the containers is the caller's
    /// job (boot reconciliation removes any it leaves, since no live row owns them). The caller makes sure no
    /// deploy of the app is running: a running one is left as it is.
    pub fn forget_app(&self, app: &AppName, at: UnixMillis) -> Result<Forgotten, StoreError> {
        self.write(|tx| {
            let name = app.as_str();
            let waiting: Vec<String> = tx
                .prepare("SELECT id FROM deploys WHERE app = ?1 AND status IN ('queued', 'accepted') ORDER BY id")?
                .query_map([name], |r| r.get(0))?
                .collect::<Result<_, _>>()?;
            let message = format!("{app} was deleted before this deploy ran");
            for id in &waiting {
                super::deploys::finish_in(tx, id, DeployStatus::Failed, Some(&message), Some("app_deleted"), at)?;
            }
            let retired: Vec<String> = tx
                .prepare("SELECT id FROM instances WHERE app = ?1 AND retired_at IS NULL ORDER BY created_at, id")?
                .query_map([name], |r| r.get(0))?
                .collect::<Result<_, _>>()?;
            tx.execute(
                "UPDATE instances SET role = 'retired', retired_at = ?2 WHERE app = ?1 AND retired_at IS NULL",
                params![name, at],
            )?;
            tx.execute(
                "DELETE FROM port_leases WHERE instance_id IN (SELECT id FROM instances WHERE app = ?1)",
                [name],
            )?;
            tx.execute("DELETE FROM previews WHERE app = ?1", [name])?;
            let existed = tx.execute("DELETE FROM apps WHERE name = ?1", [name])? > 0;
            let failed =
                waiting.iter().map(|id| id.parse()).collect::<Result<_, _>>().map_err(super::deploys::corrupt_id)?;
            Ok(Forgotten { existed, failed, retired })
        })
    }

    /// The switch commit, in one transaction: for production `current ← deploy`, `previous ← old current`
    /// (status `running`, kind from the deploy); for a preview, the preview row's `deploy_id`, `deployed_at` and
    /// status `running`. The new instance's role becomes `current`; the old one's `draining` if it was `current`.
    pub fn switch(&self, switch: &Switch) -> Result<(), StoreError> {
        self.write(|tx| {
            live_role(tx, &switch.new_instance)?;
            let old_role = switch.old_instance.as_deref().map(|old| live_role(tx, old)).transpose()?;
            let deploy = switch.deploy_id.as_str();
            match &switch.preview {
                None => {
                    let kind: Option<String> = tx
                        .query_row("SELECT kind FROM deploys WHERE id = ?1", [deploy], |r| r.get(0))
                        .optional()?
                        .ok_or_else(|| StoreError::DeployNotFound { id: deploy.to_owned() })?;
                    set_current_in(tx, switch.app.as_str(), kind.as_deref(), deploy, switch.at)?;
                }
                Some(preview) => {
                    let changed = tx.execute(
                        "UPDATE previews SET deploy_id = ?3, deployed_at = ?4, status = 'running', error = NULL, \
                         expires_at = coalesce(?5, expires_at), tag = (SELECT tag FROM deploys WHERE id = ?3) \
                         WHERE app = ?1 AND id = ?2 AND status != 'torn_down'",
                        params![switch.app.as_str(), preview.as_str(), deploy, switch.at, switch.expires_at],
                    )?;
                    if changed == 0 {
                        return Err(StoreError::PreviewNotFound {
                            app: switch.app.to_string(),
                            preview: preview.to_string(),
                        });
                    }
                }
            }
            set_role(tx, &switch.new_instance, InstanceRole::Current)?;
            if let (Some(old), Some(InstanceRole::Current)) = (&switch.old_instance, old_role) {
                set_role(tx, old, InstanceRole::Draining)?;
            }
            Ok(())
        })
    }

    /// Undoes a [`Switch`] in one transaction. If the target still points at the new instance's deploy, the
    /// pointer goes back: for production `current ← previous` and `previous ←` the newest completed production
    /// deploy older than the restored one (status `running`, or `not_deployed` when nothing is restored); for a
    /// preview, its `deploy_id ←` the old instance's deploy. The new instance becomes `draining` and the old one
    /// `current`. Running it twice changes nothing more.
    pub fn unswitch(&self, unswitch: &Unswitch) -> Result<(), StoreError> {
        self.write(|tx| {
            live_role(tx, &unswitch.new_instance)?;
            if let Some(old) = &unswitch.old_instance {
                live_role(tx, old)?;
            }
            let new_deploy = instance_deploy(tx, &unswitch.new_instance)?;
            let app = unswitch.app.as_str();
            match &unswitch.preview {
                None => {
                    let state = get(tx, app)?;
                    let points_at_new = state.as_ref().and_then(|s| s.current_deploy_id.as_ref()).map(DeployId::as_str)
                        == Some(new_deploy.as_str());
                    if let (true, Some(state)) = (points_at_new, state) {
                        let restored = state.previous_deploy_id.map(|d| d.to_string());
                        let before: Option<String> = match &restored {
                            Some(restored) => tx
                                .query_row(
                                    "SELECT id FROM deploys WHERE app = ?1 AND preview_id IS NULL \
                                     AND status = 'completed' AND id < ?2 ORDER BY id DESC LIMIT 1",
                                    params![app, restored],
                                    |r| r.get(0),
                                )
                                .optional()?,
                            None => None,
                        };
                        let status = if restored.is_some() { AppStatus::Running } else { AppStatus::NotDeployed };
                        tx.execute(
                            "UPDATE apps SET current_deploy_id = ?2, previous_deploy_id = ?3, status = ?4, \
                             updated_at = ?5 WHERE name = ?1",
                            params![app, restored, before, status, unswitch.at],
                        )?;
                    }
                }
                Some(preview) => {
                    let old_deploy =
                        unswitch.old_instance.as_deref().map(|old| instance_deploy(tx, old)).transpose()?;
                    tx.execute(
                        "UPDATE previews SET deploy_id = ?4 WHERE app = ?1 AND id = ?2 AND deploy_id = ?3",
                        params![app, preview.as_str(), new_deploy, old_deploy],
                    )?;
                }
            }
            set_role(tx, &unswitch.new_instance, InstanceRole::Draining)?;
            if let Some(old) = &unswitch.old_instance {
                set_role(tx, old, InstanceRole::Current)?;
            }
            Ok(())
        })
    }
}

fn get(conn: &Connection, app: &str) -> Result<Option<AppState>, StoreError> {
    Ok(conn.query_row("SELECT * FROM apps WHERE name = ?1", [app], app_row).optional()?)
}

fn app_row(r: &Row<'_>) -> rusqlite::Result<AppState> {
    Ok(AppState {
        name: parsed(r, "name")?,
        kind: r.get("kind")?,
        status: r.get("status")?,
        current_deploy_id: parsed_opt(r, "current_deploy_id")?,
        previous_deploy_id: parsed_opt(r, "previous_deploy_id")?,
        config_hash: r.get("config_hash")?,
        updated_at: r.get("updated_at")?,
    })
}

fn set_current_in(
    conn: &Connection,
    app: &str,
    kind: Option<&str>,
    deploy_id: &str,
    at: UnixMillis,
) -> Result<(), StoreError> {
    // In an UPDATE every right-hand column reference reads the row as it was before the update.
    conn.execute(
        "INSERT INTO apps (name, kind, status, current_deploy_id, updated_at) VALUES (?1, ?2, 'running', ?3, ?4) \
         ON CONFLICT (name) DO UPDATE SET \
             kind = coalesce(excluded.kind, kind), \
             status = 'running', \
             previous_deploy_id = CASE WHEN current_deploy_id IS excluded.current_deploy_id \
                 THEN previous_deploy_id ELSE current_deploy_id END, \
             current_deploy_id = excluded.current_deploy_id, \
             updated_at = excluded.updated_at",
        params![app, kind, deploy_id, at],
    )?;
    Ok(())
}

/// The role of a live (non-retired) instance, or [`StoreError::InstanceNotFound`].
fn live_role(conn: &Connection, id: &str) -> Result<InstanceRole, StoreError> {
    conn.query_row("SELECT role FROM instances WHERE id = ?1 AND retired_at IS NULL", [id], |r| r.get(0))
        .optional()?
        .ok_or_else(|| StoreError::InstanceNotFound { id: id.to_owned() })
}

fn instance_deploy(conn: &Connection, id: &str) -> Result<String, StoreError> {
    conn.query_row("SELECT deploy_id FROM instances WHERE id = ?1", [id], |r| r.get(0))
        .optional()?
        .ok_or_else(|| StoreError::InstanceNotFound { id: id.to_owned() })
}

fn set_role(conn: &Connection, id: &str, role: InstanceRole) -> rusqlite::Result<()> {
    conn.execute("UPDATE instances SET role = ?2 WHERE id = ?1", params![id, role])?;
    Ok(())
}
