//! The desired route block: which upstream each app's routes point at, and the drain references
//! that keep old upstreams visible to Caddy's in-flight counters.
//!
//! Every change goes through [`RouteTable::update`], which edits the in-memory table and then writes
//! the *whole* block to the proxy. Writes are serialised by one async lock, so two deploys of
//! different apps can never interleave their writes, and each write carries the latest state of
//! every app. The table itself is a plain `std::sync::Mutex`, never held across an await.
//!
//! It does not decide *when* routes move (that is the deploy machine) nor how they are rendered as
//! Caddy JSON (that is [`crate::caddy`]).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use std::time::Duration;

use slip_core::names::Target;

use crate::ports::{Applied, DrainRef, PortMapping, Proxy, ProxyError, RouteBlock, RouteSpec};

/// One route of a release, before ports are leased.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteTemplate {
    /// Host matcher.
    pub hostname: String,
    /// Path prefix (`/` or `None` = everything).
    pub path_prefix: Option<String>,
    /// Strip the prefix before proxying.
    pub strip_prefix: bool,
    /// Port inside the container.
    pub container_port: u16,
    /// Caddy's hold time while nothing answers.
    pub hold_timeout: Duration,
}

/// One app's entry in the table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AppRoutes {
    /// The app's routes (all pointing at its current or held upstream).
    pub routes: Vec<RouteSpec>,
    /// Drain references (`slipd-drain:<app>`), one per old upstream: an app whose routes use several
    /// container ports drains all of them.
    pub drains: Vec<DrainRef>,
}

/// The desired state of slip's Caddy routes, shared by every deploy and the reconciler.
#[derive(Clone)]
pub struct RouteTable {
    proxy: Arc<dyn Proxy>,
    /// Keyed by target: an app's production or one of its previews.
    apps: Arc<Mutex<BTreeMap<Target, AppRoutes>>>,
    writer: Arc<tokio::sync::Mutex<()>>,
}

impl RouteTable {
    /// An empty table writing through `proxy`.
    pub fn new(proxy: Arc<dyn Proxy>) -> RouteTable {
        RouteTable { proxy, apps: Arc::default(), writer: Arc::default() }
    }

    /// The proxy this table writes to.
    pub fn proxy(&self) -> &Arc<dyn Proxy> {
        &self.proxy
    }

    /// The current entry for `key`.
    pub fn get(&self, key: &Target) -> Option<AppRoutes> {
        self.apps.lock().expect("route table lock").get(key).cloned()
    }

    /// Every target with an entry.
    pub fn targets(&self) -> Vec<Target> {
        self.apps.lock().expect("route table lock").keys().cloned().collect()
    }

    /// Replaces the in-memory entry without writing; used at boot before the first [`RouteTable::sync`].
    pub fn set_quietly(&self, key: &Target, entry: Option<AppRoutes>) {
        let mut apps = self.apps.lock().expect("route table lock");
        match entry {
            Some(e) => apps.insert(key.clone(), e),
            None => apps.remove(key),
        };
    }

    /// Sets `key`'s entry (or removes it with `None`) and writes the whole block. On a failed write the
    /// in-memory entry is put back as it was, so the table never claims what Caddy does not have.
    pub async fn update(&self, key: &Target, entry: Option<AppRoutes>) -> Result<Applied, ProxyError> {
        let _writing = self.writer.lock().await;
        let before = {
            let mut apps = self.apps.lock().expect("route table lock");
            let before = apps.get(key).cloned();
            match entry {
                Some(e) => apps.insert(key.clone(), e),
                None => apps.remove(key),
            };
            before
        };
        let result = self.write_locked().await;
        if result.is_err() {
            let mut apps = self.apps.lock().expect("route table lock");
            match before {
                Some(e) => apps.insert(key.clone(), e),
                None => apps.remove(key),
            };
        }
        result
    }

    /// Points every route of `key` that dials a `from` upstream at its `to` instead (pairs of
    /// `127.0.0.1:<port>`), and writes the whole block when anything changed. Routes dialling anything else
    /// (a deploy moved them meanwhile) are left alone, and the check and the edit happen under the writer lock,
    /// so this never undoes a concurrent switch. Returns whether the entry changed.
    pub async fn rebind(&self, key: &Target, moves: &[(String, String)]) -> Result<bool, ProxyError> {
        let _writing = self.writer.lock().await;
        let changed = {
            let mut apps = self.apps.lock().expect("route table lock");
            let mut changed = false;
            for route in apps.get_mut(key).map(|e| e.routes.iter_mut()).into_iter().flatten() {
                if let Some((_, to)) = moves.iter().find(|(from, _)| *from == route.upstream) {
                    route.upstream = to.clone();
                    changed = true;
                }
            }
            changed
        };
        if changed {
            self.write_locked().await?;
        }
        Ok(changed)
    }

    /// Makes Caddy match the table: bootstraps slip's server if it is missing (Caddy restarted
    /// without `--resume`) and re-applies the block. Writes nothing when Caddy already matches.
    pub async fn sync(&self) -> Result<Applied, ProxyError> {
        let _writing = self.writer.lock().await;
        self.proxy.ensure_server().await?;
        self.write_locked().await
    }

    /// The block as it would be written now.
    pub fn block(&self) -> RouteBlock {
        let apps = self.apps.lock().expect("route table lock");
        let mut block = RouteBlock::default();
        for entry in apps.values() {
            block.routes.extend(entry.routes.iter().cloned());
            block.drains.extend(entry.drains.iter().cloned());
        }
        block
    }

    async fn write_locked(&self) -> Result<Applied, ProxyError> {
        let block = self.block();
        self.proxy.apply(&block).await
    }
}

/// A target's route entry (ids per SPEC §9.4) with each route pointed at the host port bound to its container port, reached at the
/// address `upstream` gives (the runtime's [`crate::ports::InstanceRuntime::upstream`]).
pub fn app_routes(
    target: &Target,
    templates: &[RouteTemplate],
    ports: &BTreeMap<u16, u16>,
    upstream: &dyn Fn(PortMapping) -> String,
) -> Option<AppRoutes> {
    if templates.is_empty() {
        return None;
    }
    let routes = templates
        .iter()
        .enumerate()
        .map(|(n, r)| RouteSpec {
            id: slip_core::preview::route_id(target, n),
            hostname: r.hostname.clone(),
            path_prefix: r.path_prefix.clone(),
            strip_prefix: r.strip_prefix,
            upstream: upstream(PortMapping {
                host: ports.get(&r.container_port).copied().unwrap_or(0),
                container: r.container_port,
            }),
            hold_timeout: r.hold_timeout,
        })
        .collect();
    Some(AppRoutes { routes, drains: Vec::new() })
}
