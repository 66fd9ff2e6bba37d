//! Status assembly for `GET /v1/status`: each app's state, current and previous release, and latest deploy.

use std::collections::BTreeMap;

use slip_api::time::rfc3339;
use slip_api::{AppStatus, LastDeploy, ReleaseRef};
use slip_engine::store::{AppStatus as StoredStatus, DeployFilter, DeployStatus, InstanceRole, StoreError};

use crate::state::AppState;

/// Every configured app's status, from the store alone (no call to Caddy or the engine).
pub fn app_statuses(state: &AppState) -> Result<BTreeMap<String, AppStatus>, StoreError> {
    let config = state.config();
    let store = &state.store;
    let mut out = BTreeMap::new();
    let mut previews: BTreeMap<String, u32> = BTreeMap::new();
    for p in store.live_previews(None)? {
        *previews.entry(p.app.to_string()).or_default() += 1;
    }
    for (app_name, app) in &config.apps {
        let name = app_name.as_str();
        let app_state = store.app_state(app_name)?;
        let (latest, _) = store.list_deploys(&DeployFilter {
            app: Some(app_name.clone()),
            limit: Some(1),
            production_only: true,
            ..DeployFilter::default()
        })?;
        let latest = latest.into_iter().next();
        let current = match app_state.as_ref().and_then(|s| s.current_deploy_id.clone()) {
            Some(id) => store.deploy(&id)?,
            None => None,
        };
        let previous = match app_state.as_ref().and_then(|s| s.previous_deploy_id.clone()) {
            Some(id) => store.deploy(&id)?,
            None => None,
        };
        let instance = store.instances(app_name, None)?.into_iter().find(|i| i.role == InstanceRole::Current);
        // The host port of the lowest published container port.
        let port = instance.as_ref().and_then(|i| i.ports.values().next().copied());
        let deploying = latest.as_ref().is_some_and(|d| !d.status.is_terminal());
        let down = app_state.as_ref().is_some_and(|s| s.status == StoredStatus::Down);
        let status = if deploying {
            "deploying"
        } else if down {
            "down"
        } else if current.is_some() {
            "running"
        } else if latest.as_ref().is_some_and(|d| d.status == DeployStatus::Failed) {
            "failed"
        } else {
            "not_deployed"
        };
        out.insert(
            name.to_owned(),
            AppStatus {
                status: status.into(),
                kind: app.kind().as_str().into(),
                tag: current.as_ref().map(|d| d.tag.to_string()),
                deploy_id: current.as_ref().map(|d| d.id.to_string()),
                deployed_at: current.as_ref().and_then(|d| d.finished_at).map(rfc3339),
                container_id: instance.as_ref().map(|i| i.runtime_id.clone()),
                port,
                previous: previous.as_ref().map(|d| ReleaseRef {
                    deploy_id: d.id.to_string(),
                    tag: d.tag.to_string(),
                    deployed_at: d.finished_at.map(rfc3339),
                }),
                last_deploy: latest
                    .as_ref()
                    .map(|d| LastDeploy { deploy_id: d.id.to_string(), status: d.status.as_str().to_owned() }),
                previews: previews.get(name).copied().unwrap_or(0),
                config_drift: false,
            },
        );
    }
    Ok(out)
}
