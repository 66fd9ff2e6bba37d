//! Instances (the runtime object of a release: one container or one pod) and the host ports leased to them
//! (SPEC §7.3 `configuring` and `starting`, §18 reconcile).
//!
//! Rows are what reconcile and GC compare with the engine. A port lease is a row in `port_leases`, whose primary
//! key makes a port impossible to hand out twice; the caller's bind test catches ports something else holds.
//! Leases are taken at `configuring`, before the instance row exists (it is written at `starting`), so a lease
//! names an instance id that may not have a row yet. This module does not talk to the engine or bind sockets.

use std::collections::HashSet;
use std::ops::RangeInclusive;

use rusqlite::{Connection, OptionalExtension, Row, params};
use slip_core::names::{AppName, DeployId, PreviewId, Target};

use super::{InstanceRole, Store, StoreError, UnixMillis, parsed, parsed_opt};

/// An `instances` row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceRow {
    /// Chosen by the driver before the runtime object exists (it is also in the object's name).
    pub id: String,
    /// The app.
    pub app: AppName,
    /// The preview, or `None` for production.
    pub preview_id: Option<PreviewId>,
    /// The deploy that created it.
    pub deploy_id: DeployId,
    /// `container` or `pod`.
    pub runtime_kind: String,
    /// The engine's id; empty until the object is created.
    pub runtime_id: String,
    /// The engine-side name, e.g. `slip-web-1a2b3c4d`.
    pub name: String,
    /// Its part in the target's release.
    pub role: InstanceRole,
    /// JSON array of published ports, e.g. `[{"host":20001,"container":8080}]`.
    pub ports: String,
    /// When it was recorded.
    pub created_at: UnixMillis,
    /// When it was retired; `None` while live.
    pub retired_at: Option<UnixMillis>,
}

impl InstanceRow {
    /// The target the instance serves.
    pub fn target(&self) -> Target {
        Target { app: self.app.clone(), preview: self.preview_id.clone() }
    }
}

impl Store {
    /// Records an instance (normally as `candidate`, before creating it in the engine).
    pub fn insert_instance(&self, row: &InstanceRow) -> Result<(), StoreError> {
        self.write(|tx| {
            let exists: bool =
                tx.query_row("SELECT EXISTS (SELECT 1 FROM instances WHERE id = ?1)", [&row.id], |r| r.get(0))?;
            if exists {
                return Err(StoreError::InstanceExists { id: row.id.clone() });
            }
            tx.execute(
                "INSERT INTO instances (id, app, preview_id, deploy_id, runtime_kind, runtime_id, name, role, ports, \
                 created_at, retired_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                params![
                    row.id,
                    row.app.as_str(),
                    row.preview_id.as_ref().map(PreviewId::as_str),
                    row.deploy_id.as_str(),
                    row.runtime_kind,
                    row.runtime_id,
                    row.name,
                    row.role,
                    row.ports,
                    row.created_at,
                    row.retired_at,
                ],
            )?;
            Ok(())
        })
    }

    /// Stores the engine id once the container or pod exists.
    pub fn set_instance_runtime_id(&self, id: &str, runtime_id: &str) -> Result<(), StoreError> {
        self.update_instance(id, "UPDATE instances SET runtime_id = ?2 WHERE id = ?1", runtime_id)
    }

    /// Stores an instance's published ports (JSON) once they are leased.
    pub fn set_instance_ports(&self, id: &str, ports: &str) -> Result<(), StoreError> {
        self.update_instance(id, "UPDATE instances SET ports = ?2 WHERE id = ?1", ports)
    }

    /// Changes an instance's role. Retiring sets `retired_at` (kept if already set) and releases its port
    /// leases in the same transaction (SPEC §7.3 `completed`).
    pub fn set_instance_role(&self, id: &str, role: InstanceRole, at: UnixMillis) -> Result<(), StoreError> {
        self.write(|tx| {
            let changed = tx.execute(
                "UPDATE instances SET role = ?2, \
                 retired_at = CASE WHEN ?2 = 'retired' THEN coalesce(retired_at, ?3) ELSE NULL END WHERE id = ?1",
                params![id, role, at],
            )?;
            if changed == 0 {
                return Err(StoreError::InstanceNotFound { id: id.to_owned() });
            }
            if role == InstanceRole::Retired {
                tx.execute("DELETE FROM port_leases WHERE instance_id = ?1", [id])?;
            }
            Ok(())
        })
    }

    /// One instance, retired or not.
    pub fn instance(&self, id: &str) -> Result<Option<InstanceRow>, StoreError> {
        self.read(|conn| Ok(conn.query_row("SELECT * FROM instances WHERE id = ?1", [id], instance_row).optional()?))
    }

    /// The live (non-retired) instances of a target (`preview` `None` is production), oldest first.
    pub fn instances(&self, app: &AppName, preview: Option<&PreviewId>) -> Result<Vec<InstanceRow>, StoreError> {
        self.read(|conn| {
            live(
                conn,
                "SELECT * FROM instances WHERE app = ?1 AND preview_id IS ?2 AND retired_at IS NULL \
                 ORDER BY created_at, id",
                params![app.as_str(), preview.map(PreviewId::as_str)],
            )
        })
    }

    /// Every live instance of every app: what GC and reconcile compare with the engine's labelled objects.
    pub fn all_live_instances(&self) -> Result<Vec<InstanceRow>, StoreError> {
        self.read(|conn| {
            live(conn, "SELECT * FROM instances WHERE retired_at IS NULL ORDER BY app, created_at, id", [])
        })
    }

    /// Leases `count` host ports from `range` for `instance_id`, in one transaction: the lowest ports that no
    /// lease holds and for which `is_free` (the caller's bind test on 127.0.0.1) is true. Fails with
    /// [`StoreError::PortsExhausted`] and leases nothing when there are not enough. `is_free` runs while the
    /// writer is held, so it must be quick and must not call the store.
    pub fn lease_ports(
        &self,
        instance_id: &str,
        count: usize,
        range: RangeInclusive<u16>,
        is_free: impl Fn(u16) -> bool,
    ) -> Result<Vec<u16>, StoreError> {
        self.write(|tx| {
            let (start, end) = (*range.start(), *range.end());
            let leased: HashSet<u16> = tx
                .prepare("SELECT port FROM port_leases WHERE port BETWEEN ?1 AND ?2")?
                .query_map(params![start, end], |r| r.get(0))?
                .collect::<Result<_, _>>()?;
            let ports: Vec<u16> = range.filter(|p| !leased.contains(p) && is_free(*p)).take(count).collect();
            if ports.len() < count {
                return Err(StoreError::PortsExhausted { wanted: count, found: ports.len(), start, end });
            }
            let mut insert = tx.prepare("INSERT INTO port_leases (port, instance_id) VALUES (?1, ?2)")?;
            for port in &ports {
                insert.execute(params![port, instance_id])?;
            }
            Ok(ports)
        })
    }

    /// The ports leased to an instance, ascending.
    pub fn leased_ports(&self, instance_id: &str) -> Result<Vec<u16>, StoreError> {
        self.read(|conn| {
            Ok(conn
                .prepare("SELECT port FROM port_leases WHERE instance_id = ?1 ORDER BY port")?
                .query_map([instance_id], |r| r.get(0))?
                .collect::<Result<_, _>>()?)
        })
    }

    /// Releases every port leased to an instance; returns how many.
    pub fn release_ports(&self, instance_id: &str) -> Result<u64, StoreError> {
        self.write(|tx| Ok(tx.execute("DELETE FROM port_leases WHERE instance_id = ?1", [instance_id])? as u64))
    }

    /// Releases leases whose instance has no live row (a deploy interrupted between `configuring` and
    /// `starting`); returns how many. Only safe while no deploy runs, i.e. during reconcile on boot.
    pub fn release_orphan_ports(&self) -> Result<u64, StoreError> {
        self.write(|tx| {
            Ok(tx.execute(
                "DELETE FROM port_leases WHERE instance_id NOT IN (SELECT id FROM instances WHERE retired_at IS NULL)",
                [],
            )? as u64)
        })
    }

    fn update_instance(&self, id: &str, sql: &str, value: &str) -> Result<(), StoreError> {
        self.write(|tx| match tx.execute(sql, params![id, value])? {
            0 => Err(StoreError::InstanceNotFound { id: id.to_owned() }),
            _ => Ok(()),
        })
    }
}

fn instance_row(r: &Row<'_>) -> rusqlite::Result<InstanceRow> {
    Ok(InstanceRow {
        id: r.get("id")?,
        app: parsed(r, "app")?,
        preview_id: parsed_opt(r, "preview_id")?,
        deploy_id: parsed(r, "deploy_id")?,
        runtime_kind: r.get("runtime_kind")?,
        runtime_id: r.get("runtime_id")?,
        name: r.get("name")?,
        role: r.get("role")?,
        ports: r.get("ports")?,
        created_at: r.get("created_at")?,
        retired_at: r.get("retired_at")?,
    })
}

fn live(conn: &Connection, sql: &str, params: impl rusqlite::Params) -> Result<Vec<InstanceRow>, StoreError> {
    Ok(conn.prepare(sql)?.query_map(params, instance_row)?.collect::<Result<_, _>>()?)
}
