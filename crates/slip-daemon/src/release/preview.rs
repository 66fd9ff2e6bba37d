//! A preview deploy's release (SPEC §13): production's release of the same tag, moved onto the preview's
//! hostnames and Caddy ids, with the preview's secrets and volumes and the server's preview bounds for the driver.

use std::time::Duration;

use slip_core::config::{AppConfig, Config, VolumePreview};
use slip_core::deploy::{ErrorCode, StepFailure};
use slip_core::names::PreviewId;
use slip_core::preview::{self, Refusal};
use slip_engine::ports::{Mount, NetworkAttachment};
use slip_engine::release::PreviewPlan;
use slip_engine::run::Release;
use slip_engine::secrets::SecretStore;
use slip_engine::store::DeployRow;

use super::{PreviewEnv, ensure_dir, environment, resolve_app};

/// The release of preview deploy `row` of `app`.
pub(super) fn resolve(
    config: &Config,
    secrets: &SecretStore,
    app: &AppConfig,
    row: &DeployRow,
    id: &PreviewId,
) -> Result<Release, StepFailure> {
    let placement = preview::place(config, &row.app, id).map_err(|refusal| {
        let code = match refusal {
            Refusal::NotConfigured(_) | Refusal::Collision(_) | Refusal::InvalidId(_) => ErrorCode::PreviewDisabled,
            Refusal::Unsupported(_) => ErrorCode::PodsRequirePodman,
        };
        StepFailure::new(code, refusal.message().to_owned())
    })?;
    let mut release = resolve_app(config, secrets, app, &row.app, row.id.clone(), row.tag.clone())?;
    // Probes carry the preview's own Host (a configured health.host is production's).
    release.health_host = placement.hostnames.first().cloned();
    let env = PreviewEnv { id: id.as_str(), url: placement.url.as_deref() };
    (release.env, release.secret_keys) =
        environment(secrets, app, &row.app, row.id.as_str(), row.tag.as_str(), release.kind, Some(&env))?;
    release.mounts = mounts(config, app, &row.app, id)?;
    // The app's network, without production's alias: nothing resolves the app's name to a preview.
    release.network = Some(NetworkAttachment { name: app.network.clone(), alias: None });
    release.preview = Some(id.clone());
    release.preview_plan = Some(PreviewPlan {
        hostnames: placement.hostnames.clone(),
        url: placement.url,
        webhook_ttl: requested_ttl(row),
        app_ttl: app.preview.default_ttl,
        default_ttl: config.preview.default_ttl,
        max_ttl: config.preview.max_ttl,
        cap: app.preview.max.unwrap_or(config.preview.max_per_app),
        max_memory: config.preview.max_memory,
        max_nano_cpus: config.preview.max_nano_cpus,
    });
    Ok(release)
}

/// The TTL the webhook asked for, kept in the deploy's `plan` (`request.preview_ttl`) from acceptance on.
fn requested_ttl(row: &DeployRow) -> Option<Duration> {
    let plan: serde_json::Value = serde_json::from_str(row.plan.as_deref()?).ok()?;
    slip_core::duration::parse(plan.pointer("/request/preview_ttl")?.as_str()?).ok()
}

/// The preview's bind mounts (SPEC §4.2 `[[volumes]].preview`): `isolated` volumes get an empty private directory
/// `<storage>/preview-volumes/<app>/<id>/<n>/`, `readonly` ones a read-only mount of production's directory, and
/// `none` nothing. A preview never gets a writable mount of production data.
fn mounts(
    config: &Config,
    app: &AppConfig,
    app_name: &slip_core::names::AppName,
    id: &PreviewId,
) -> Result<Vec<Mount>, StepFailure> {
    let mut mounts = Vec::new();
    for (n, v) in app.volumes.iter().enumerate() {
        match v.preview {
            VolumePreview::None => {}
            VolumePreview::Readonly => {
                ensure_dir(&v.host_path, v.owner)?;
                mounts.push(Mount {
                    host_path: v.host_path.clone(),
                    container_path: v.mount_path.clone(),
                    read_only: true,
                });
            }
            VolumePreview::Isolated => {
                let dir = volume_dir(config, app_name, id).join(n.to_string());
                ensure_dir(&dir, v.owner)?;
                mounts.push(Mount { host_path: dir, container_path: v.mount_path.clone(), read_only: v.read_only });
            }
        }
    }
    Ok(mounts)
}

/// `<storage>/preview-volumes/<app>/<id>`: every isolated volume of one preview, removed at teardown.
pub fn volume_dir(config: &Config, app: &slip_core::names::AppName, id: &PreviewId) -> std::path::PathBuf {
    config.storage.path.join("preview-volumes").join(app.as_str()).join(id.as_str())
}
