//! Preview environments in the daemon (SPEC §13): admitting a preview webhook, tearing previews down, evicting over
//! the per-app cap, and the reaper that leaves nothing behind. The pure decisions (hostnames, ids, TTL, cap) are
//! `slip_core::preview`'s; a preview deploy itself is a normal deploy of its target.

mod reaper;
mod teardown;

use std::sync::Mutex;
use std::time::Duration;

use serde_json::json;
use slip_core::config::Config;
use slip_core::names::{AppName, PreviewId};
use slip_core::preview::{self, Placement, Refusal};
use slip_engine::clock::unix_ms;
use slip_engine::store::{NewDeploy, PreviewEnqueued, PreviewRequest};

pub use reaper::{REAP_INTERVAL, reap, run_reaper};
pub use teardown::{evict_over_cap, remove_app_previews, teardown};

use crate::error::ApiError;
use crate::state::AppState;

/// Serialises preview admissions, so the `max_total` count and the per-app cap never race a concurrent creation
/// (SPEC §13.2). Held only around the store's count and insert, never across an await.
static ADMISSION: Mutex<()> = Mutex::new(());

/// The `preview` object of a deploy webhook.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct PreviewField {
    /// The preview id (a DNS label).
    pub id: String,
    /// The commit, for display.
    pub sha: Option<String>,
    /// The lifetime, a duration.
    pub ttl: Option<String>,
}

/// A preview webhook that passed its checks: where it is served and what TTL it asked for.
pub struct Admission {
    /// The preview id.
    pub id: PreviewId,
    /// Its hostnames and URL.
    pub placement: Placement,
    /// The commit.
    pub sha: Option<String>,
    /// The TTL the webhook asked for, capped by `max_ttl`.
    pub ttl: Option<Duration>,
}

/// Checks a webhook's `preview` field against the config (SPEC §6.4, §13.1): a valid id, a preview domain, no
/// collision with an app, a valid TTL.
pub fn check(config: &Config, app: &AppName, field: &serde_json::Value) -> Result<Admission, ApiError> {
    let field: PreviewField = serde_json::from_value(field.clone()).map_err(|e| {
        ApiError::field("invalid_request", "preview", format!("preview must be {{\"id\", \"sha\"?, \"ttl\"?}}: {e}"))
    })?;
    let id: PreviewId = field
        .id
        .parse()
        .map_err(|e: slip_core::names::NameError| ApiError::field("invalid_preview_id", "preview.id", e.to_string()))?;
    if let Some(sha) = &field.sha
        && (sha.len() > 64 || !sha.chars().all(|c| c.is_ascii_alphanumeric()))
    {
        return Err(ApiError::field(
            "invalid_request",
            "preview.sha",
            "preview.sha must be at most 64 letters or digits",
        ));
    }
    let ttl = match &field.ttl {
        None => None,
        Some(text) => {
            let ttl = slip_core::duration::parse(text)
                .map_err(|e| ApiError::field("invalid_request", "preview.ttl", format!("preview.ttl: {e}")))?;
            if ttl.is_zero() {
                return Err(ApiError::field("invalid_request", "preview.ttl", "preview.ttl must be longer than 0s"));
            }
            Some(ttl.min(config.preview.max_ttl))
        }
    };
    let placement = preview::place(config, app, &id).map_err(|refusal| match refusal {
        Refusal::NotConfigured(m) | Refusal::Unsupported(m) => ApiError::field("preview_not_configured", "preview", m),
        Refusal::InvalidId(m) => ApiError::field("invalid_preview_id", "preview.id", m),
        Refusal::Collision(m) => ApiError::Conflict { code: "id_collision", message: m, extra: json!({}) },
    })?;
    Ok(Admission { id, placement, sha: field.sha, ttl })
}

/// A live preview of another app already served on one of `admission`'s hostnames (two apps sharing the server's
/// preview domain, each with a `pr-42`): 409 `id_collision`.
fn check_taken(state: &AppState, config: &Config, app: &AppName, admission: &Admission) -> Result<(), ApiError> {
    for other in state.store.live_previews(None).map_err(ApiError::store)? {
        if other.app == *app {
            continue;
        }
        let Ok(theirs) = preview::place(config, &other.app, &other.id) else { continue };
        if let Some(host) = admission.placement.hostnames.iter().find(|h| theirs.hostnames.contains(h)) {
            return Err(ApiError::Conflict {
                code: "id_collision",
                message: format!("{host} already serves preview {} of app {}", other.id, other.app),
                extra: json!({}),
            });
        }
    }
    Ok(())
}

/// Commits a preview deploy and its preview row, refusing a new preview once `preview.max_total` previews are live
/// (409 `preview_limit_reached`). The per-app cap is not a refusal: the oldest preview is evicted once the new one
/// serves (SPEC §13.2).
pub fn enqueue(
    state: &AppState,
    config: &Config,
    new: &NewDeploy,
    admission: &Admission,
) -> Result<PreviewEnqueued, ApiError> {
    let app_config = config.apps.get(&new.app).expect("the handler found the app");
    let now = unix_ms();
    let ttl = preview::ttl(
        admission.ttl,
        None,
        app_config.preview.default_ttl,
        config.preview.default_ttl,
        config.preview.max_ttl,
    );
    let request = PreviewRequest {
        domain: admission.placement.domain.clone(),
        sha: admission.sha.clone(),
        expires_at: now + ttl.as_millis() as i64,
        plan: Some(json!({"request": {"preview_ttl": admission.ttl.map(slip_core::duration::format)}}).to_string()),
    };
    let _admitting = ADMISSION.lock().expect("preview admission lock");
    check_taken(state, config, &new.app, admission)?;
    let live = state.store.live_previews(None).map_err(ApiError::store)?;
    let exists = live.iter().any(|p| p.app == new.app && p.id == admission.id);
    if !exists && live.len() >= config.preview.max_total as usize {
        return Err(ApiError::Conflict {
            code: "preview_limit_reached",
            message: format!(
                "{} previews are live, the server's preview.max_total; tear one down first (slip previews teardown)",
                live.len()
            ),
            extra: json!({"max_total": config.preview.max_total}),
        });
    }
    let enqueued = state.scheduler.enqueue_preview(new, &request).map_err(ApiError::store)?;
    if enqueued.as_ref().is_some_and(|e| e.created) {
        state.events.announce(
            "preview.created",
            Some(new.app.as_str()),
            format!("preview {} of {} created", admission.id, new.app),
            Some(json!({"preview_id": admission.id.as_str(), "url": admission.placement.url})),
        );
    }
    // A new preview has an expiry the reaper has not seen yet.
    state.scheduler.reaper_wake().notify_one();
    enqueued.ok_or_else(|| ApiError::Conflict {
        code: "preview_tearing_down",
        message: format!("preview {} of {} is being torn down; send the deploy again", admission.id, new.app),
        extra: json!({}),
    })
}
