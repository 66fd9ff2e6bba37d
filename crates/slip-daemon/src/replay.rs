//! Replay refusal for legacy (untimestamped) webhooks (SPEC §6.2 step 8, issue 15).
//!
//! A legacy signature covers the body alone, so it never expires: a captured delivery for an older tag would roll
//! the app back whenever it is sent again. Every legacy delivery is therefore remembered (its MAC's hash, for good),
//! and one seen before is accepted again only while its tag is the app's current one: sending the README's curl
//! example twice still works, and redeploying what runs changes nothing, but an old tag is refused with 409
//! `replayed`. Timestamped deliveries are handled by `api::deploy::accept_once` and expire with `auth.max_skew`.

use serde_json::json;
use slip_core::names::{AppName, DeployId};
use slip_core::signature;
use slip_engine::clock::unix_ms;
use slip_engine::store::{Replayed, Store};

use crate::error::ApiError;

/// Records the legacy delivery signed by `mac` for `app` and `tag`, or refuses it with 409 `replayed` (naming the
/// deploy it made the first time) when it was seen before and `tag` is not the tag the app runs now.
pub fn accept_legacy(
    store: &Store,
    mac: &[u8; 32],
    app: &AppName,
    tag: &str,
    deploy_id: &DeployId,
) -> Result<(), ApiError> {
    let hash = signature::delivery_hash(mac);
    let recorded = store.record_delivery(hash, app, Some(deploy_id), unix_ms(), i64::MAX).map_err(ApiError::store)?;
    let Err(Replayed { deploy_id: original }) = recorded else { return Ok(()) };
    if current_tag(store, app)?.as_deref() == Some(tag) {
        return Ok(());
    }
    Err(ApiError::Conflict {
        code: "replayed",
        message: "this legacy-signed webhook was already delivered and its tag is not the one running now; \
                  sign with X-Slip-Timestamp, or use slip rollback to go back to an older release"
            .into(),
        extra: json!({"deploy_id": original.map(|d| d.to_string())}),
    })
}

/// The tag of the release `app` runs now, if any.
fn current_tag(store: &Store, app: &AppName) -> Result<Option<String>, ApiError> {
    let Some(current) =
        store.app_state(app).map_err(|e| ApiError::Internal(e.into()))?.and_then(|s| s.current_deploy_id)
    else {
        return Ok(None);
    };
    let row = store.deploy(&current).map_err(|e| ApiError::Internal(e.into()))?;
    Ok(row.map(|r| r.tag.to_string()))
}

#[cfg(test)]
mod tests {
    use axum::http::StatusCode;

    use crate::tests::{SECRET, legacy_deploy, send, state};

    #[tokio::test]
    async fn a_replayed_legacy_webhook_cannot_roll_the_app_back() {
        let state = state();
        let v1 = r#"{"app":"web","tag":"v1"}"#;
        let v2 = r#"{"app":"web","tag":"v2"}"#;
        let (s, first) = send(&state, legacy_deploy(v1, SECRET), "127.0.0.1:1").await;
        assert_eq!(s, StatusCode::ACCEPTED, "{first}");
        let first_id = first["deploy_id"].as_str().unwrap().to_owned();
        let (s, _) = send(&state, legacy_deploy(v2, SECRET), "127.0.0.1:1").await;
        assert_eq!(s, StatusCode::ACCEPTED);

        // Once the fake engine has run both, make v2 the release that runs, whatever order they finished in.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while !state.store.unfinished().unwrap().is_empty() {
            assert!(std::time::Instant::now() < deadline, "the deploys did not finish");
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        let (rows, _) = state.store.list_deploys(&Default::default()).unwrap();
        let v2_row = rows.iter().find(|r| r.tag.as_str() == "v2").unwrap();
        let app: slip_core::names::AppName = "web".parse().unwrap();
        state.store.set_current(&app, "web", &v2_row.id, slip_engine::clock::unix_ms()).unwrap();

        let (s, b) = send(&state, legacy_deploy(v1, SECRET), "127.0.0.1:1").await;
        assert_eq!((s, b["code"].as_str()), (StatusCode::CONFLICT, Some("replayed")), "{b}");
        assert_eq!(b["deploy_id"], first_id.as_str(), "it names the deploy the delivery made the first time");
        let (s, b) = send(&state, legacy_deploy(v2, SECRET), "127.0.0.1:1").await;
        assert_eq!(s, StatusCode::ACCEPTED, "the current tag may be sent again (the README's curl, twice): {b}");
        let (rows, _) = state.store.list_deploys(&Default::default()).unwrap();
        assert_eq!(rows.iter().filter(|r| r.tag.as_str() == "v1").count(), 1, "no second v1 deploy");
    }
}
