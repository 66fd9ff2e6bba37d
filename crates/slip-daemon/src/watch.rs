//! Engine events: when the current release of an app (production or a preview) exits or is OOM-killed, the event
//! bus says so at once (`runtime.container_died`, `runtime.container_oom`, SPEC §17.3) and healing runs now rather
//! than at its next tick, so the app is started again, or shown `down`, within seconds. The containers a deploy
//! stops (an old release draining, a failed candidate) are not current and pass silently.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use slip_engine::labels;
use slip_engine::ports::{RuntimeEvent, RuntimeEventKind};
use slip_engine::store::InstanceRole;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::state::AppState;

/// Follows the engine's events for this slipd's containers until `shutdown`; when the stream breaks (the engine
/// restarted, say), subscribes again after `retry`. Wakes `heal` for every current release that stopped.
pub async fn run(state: AppState, heal: Arc<Notify>, retry: Duration, shutdown: CancellationToken) {
    let owner = state.engine.instance_id.clone();
    loop {
        let selected = [(labels::MANAGED, "true"), (labels::OWNER, owner.as_str())];
        match state.engine.instances.events(&selected).await {
            Ok(mut events) => loop {
                tokio::select! {
                    item = events.next() => match item {
                        Some(Ok(event)) => on_event(&state, &heal, &event),
                        Some(Err(e)) => {
                            tracing::debug!(error = %e, "engine event stream broke; subscribing again");
                            break;
                        }
                        None => break,
                    },
                    () = shutdown.cancelled() => return,
                }
            },
            Err(e) => tracing::debug!(error = %e, "subscribing to engine events"),
        }
        tokio::select! {
            () = tokio::time::sleep(retry) => {}
            () = shutdown.cancelled() => return,
        }
    }
}

/// Announces the exit of a current release and wakes healing; ignores every other container.
fn on_event(state: &AppState, heal: &Notify, event: &RuntimeEvent) {
    let Some(app) = event.labels.get(labels::APP).and_then(|app| app.parse().ok()) else { return };
    let preview = event.labels.get(labels::PREVIEW).and_then(|id| id.parse().ok());
    let current = match state.store.instances(&app, preview.as_ref()) {
        Ok(rows) => rows.into_iter().any(|row| row.role == InstanceRole::Current && row.name == event.container),
        Err(e) => {
            tracing::warn!(error = %e, "reading instances for an engine event");
            return;
        }
    };
    if !current {
        return;
    }
    let (kind, what) = match event.kind {
        RuntimeEventKind::Died { exit_code: Some(code) } => {
            ("runtime.container_died", format!("exited with code {code}"))
        }
        RuntimeEventKind::Died { exit_code: None } => ("runtime.container_died", "exited".to_owned()),
        RuntimeEventKind::OutOfMemory => ("runtime.container_oom", "was killed for lack of memory".to_owned()),
    };
    let message = format!("the current release's container {} {what}", event.container);
    tracing::warn!(app = %app, container = %event.container, "{message}");
    let data = serde_json::json!({
        "container": event.container,
        "preview_id": event.labels.get(labels::PREVIEW),
    });
    state.events.announce(kind, Some(app.as_str()), message, Some(data));
    heal.notify_one();
}
