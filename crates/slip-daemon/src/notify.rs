//! Outbound deploy notifications (`[[notifications]]`, server-wide and per app): deploy started, completed, failed
//! and rolled back, as slip's signed JSON or as a Slack message; and, for apps with `[github]`, the same events as
//! GitHub Deployments ([`crate::github`]).
//!
//! The notifier subscribes to the daemon's event bus ([`crate::events::Bus`]) like any `/v1/events` client, so the
//! deploy driver knows nothing about it and a slow or dead endpoint cannot hold a deploy up: every delivery is its
//! own task, tried up to [`ATTEMPTS`] times with exponential backoff, each attempt bounded by [`ATTEMPT_TIMEOUT`]
//! ([`crate::outbound`]).
//! It subscribes only while some notification is configured (the bus polls the store while anyone listens), and it
//! reads the live config for every event, so a reload takes effect at once.
//!
//! Every outcome is recorded in the audit log (`notification.delivered` / `notification.failed`) with the event,
//! the deploy, the attempts and the endpoint's scheme, host and port: never its path (a Slack webhook's path is its
//! credential) and never a secret. Bodies carry the app, tag, deploy id, status and, for failures, the reason as
//! stored (already redacted), passed through the app's redactor again.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use slip_api::EventFrame;
use slip_core::config::{Notification, NotifyEvent, NotifyFormat};
use slip_core::names::{AppName, DeployId};
use slip_core::signature::{self, Signed};
use slip_engine::clock::unix_ms;
use slip_engine::store::AuditEntry;
use tokio::sync::broadcast::error::RecvError;

use crate::outbound::{ATTEMPT_TIMEOUT, ATTEMPTS, FIRST_BACKOFF, Message};
use crate::state::AppState;

/// How often the notifier looks whether any notification is configured while none is.
const IDLE_CHECK: Duration = Duration::from_secs(1);

/// Runs the notifier until slipd begins to shut down.
pub async fn run(state: AppState) {
    let closing = state.events.closing().clone();
    let http = match reqwest::Client::builder().timeout(ATTEMPT_TIMEOUT).build() {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "building the notification HTTP client; notifications are off");
            return;
        }
    };
    let mut started: HashSet<String> = HashSet::new();
    let github = Arc::new(crate::github::Tracker::default());
    loop {
        if !any_configured(&state) {
            tokio::select! {
                _ = closing.cancelled() => return,
                _ = tokio::time::sleep(IDLE_CHECK) => continue,
            }
        }
        let mut rx = state.events.subscribe();
        loop {
            let frame = tokio::select! {
                _ = closing.cancelled() => return,
                _ = tokio::time::sleep(IDLE_CHECK), if !any_configured(&state) => break,
                frame = rx.recv() => frame,
            };
            match frame {
                Ok(frame) => dispatch(&state, &http, &github, &frame, &mut started),
                Err(RecvError::Lagged(n)) => tracing::warn!(missed = n, "notifier fell behind the event bus"),
                Err(RecvError::Closed) => return,
            }
        }
    }
}

fn any_configured(state: &AppState) -> bool {
    let config = state.config();
    !config.notifications.is_empty() || config.apps.values().any(|a| !a.notifications.is_empty() || a.github.is_some())
}

/// Which notification event a bus frame is, if any. `started` remembers deploys already announced.
fn classify(frame: &EventFrame, started: &mut HashSet<String>) -> Option<NotifyEvent> {
    let id = frame.deploy_id.as_deref()?;
    let event = match frame.kind.as_str() {
        "deploy.status" if !matches!(frame.status.as_deref(), Some("accepted" | "queued")) => {
            return started.insert(id.to_owned()).then_some(NotifyEvent::DeployStarted);
        }
        "deploy.completed" => NotifyEvent::DeployCompleted,
        "deploy.failed" => NotifyEvent::DeployFailed,
        "deploy.rolled_back" => NotifyEvent::DeployRolledBack,
        "deploy.superseded" => {
            started.remove(id);
            return None;
        }
        _ => return None,
    };
    started.remove(id);
    Some(event)
}

fn dispatch(
    state: &AppState,
    http: &reqwest::Client,
    github: &Arc<crate::github::Tracker>,
    frame: &EventFrame,
    started: &mut HashSet<String>,
) {
    let Some(event) = classify(frame, started) else { return };
    let Some(app) = frame.app.as_deref().and_then(|a| a.parse::<AppName>().ok()) else { return };
    let config = state.config();
    let per_app = config.apps.get(&app).map(|a| a.notifications.as_slice()).unwrap_or_default();
    let targets: Vec<Notification> =
        config.notifications.iter().chain(per_app).filter(|n| n.events.contains(&event)).cloned().collect();
    let gh = config.apps.get(&app).and_then(|a| a.github.clone());
    if targets.is_empty() && gh.is_none() {
        return;
    }
    let deploy_id = frame.deploy_id.clone().unwrap_or_default();
    let tag = deploy_id
        .parse::<DeployId>()
        .ok()
        .and_then(|id| state.store.deploy(&id).ok().flatten())
        .map(|d| d.tag.to_string())
        .unwrap_or_default();
    let reason = match event {
        NotifyEvent::DeployFailed | NotifyEvent::DeployRolledBack => frame
            .message
            .as_deref()
            .map(|m| crate::redaction::for_app(&config, &state.secrets, &app).redact(m).into_owned()),
        _ => None,
    };
    let message = Message {
        event,
        app: app.to_string(),
        tag,
        deploy_id,
        preview_id: frame.preview_id.clone(),
        at: frame.at.clone(),
        reason,
    };
    let message = Arc::new(message);
    for target in targets {
        tokio::spawn(deliver(state.clone(), http.clone(), target, message.clone()));
    }
    if let Some(gh) = gh {
        github.spawn(state.clone(), http.clone(), gh, event, message);
    }
}

/// Sends `message` to `target` with retries, then records the outcome.
async fn deliver(state: AppState, http: reqwest::Client, target: Notification, message: Arc<Message>) {
    let body = match target.format {
        NotifyFormat::Json => message.json(),
        NotifyFormat::Slack => message.slack(),
    }
    .to_string();
    let mut backoff = FIRST_BACKOFF;
    let mut last = String::new();
    let mut delivered = false;
    let mut attempts = 0;
    while attempts < ATTEMPTS {
        attempts += 1;
        let mut request = http
            .post(target.url.expose())
            .header("content-type", "application/json")
            .header("user-agent", concat!("slipd/", env!("CARGO_PKG_VERSION")))
            .header("x-slip-event", message.event.as_str());
        if let Some(key) = &target.secret {
            let ts = (unix_ms() / 1000).to_string();
            let sig = signature::header_value(
                key.expose().as_bytes(),
                &Signed::Deploy { timestamp: &ts, body: body.as_bytes() },
            );
            request = request.header("x-slip-signature", sig).header("x-slip-timestamp", ts);
        }
        match request.body(body.clone()).send().await {
            Ok(r) if r.status().is_success() => {
                last = r.status().as_u16().to_string();
                delivered = true;
                break;
            }
            Ok(r) => last = format!("HTTP {}", r.status().as_u16()),
            Err(e) if e.is_timeout() => last = format!("no answer within {ATTEMPT_TIMEOUT:?}"),
            Err(e) if e.is_connect() => last = "connection failed".into(),
            Err(_) => last = "request failed".into(),
        }
        if attempts < ATTEMPTS {
            tokio::select! {
                _ = state.events.closing().cancelled() => break,
                _ = tokio::time::sleep(backoff) => {}
            }
            backoff *= 2;
        }
    }
    let endpoint = endpoint(target.url.expose());
    if delivered {
        tracing::info!(app = %message.app, deploy_id = %message.deploy_id, event = message.event.as_str(), %endpoint, attempts, "notification delivered");
    } else {
        tracing::warn!(app = %message.app, deploy_id = %message.deploy_id, event = message.event.as_str(), %endpoint, attempts, last = %last, "notification not delivered");
    }
    let entry = AuditEntry {
        at: unix_ms(),
        actor: "system".into(),
        source_ip: None,
        request_id: None,
        action: if delivered { "notification.delivered" } else { "notification.failed" }.into(),
        target: Some(message.app.clone()),
        detail: Some(
            json!({
                "event": message.event.as_str(),
                "deploy_id": message.deploy_id,
                "endpoint": endpoint,
                "attempts": attempts,
                "result": last,
            })
            .to_string(),
        ),
    };
    if let Err(e) = state.store.append_audit(entry) {
        tracing::warn!(error = %e, "recording a notification in the audit log");
    }
}

/// `scheme://host[:port]` of a URL: what may be shown of an endpoint.
fn endpoint(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    format!("{scheme}://{host}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_show_no_path_query_or_credentials() {
        assert_eq!(endpoint("https://hooks.slack.com/services/T0/B0/secret"), "https://hooks.slack.com");
        assert_eq!(endpoint("http://user:pw@127.0.0.1:9000/x?token=1"), "http://127.0.0.1:9000");
    }

    fn frame(kind: &str, status: &str) -> EventFrame {
        EventFrame {
            kind: kind.into(),
            at: String::new(),
            app: Some("web".into()),
            deploy_id: Some("dep_1".into()),
            preview_id: None,
            status: Some(status.into()),
            message: None,
            data: None,
        }
    }

    #[test]
    fn a_deploy_starts_once_and_ends_once() {
        let mut started = HashSet::new();
        let events: Vec<Option<NotifyEvent>> = [
            ("deploy.status", "accepted"),
            ("deploy.status", "pulling"),
            ("deploy.log", "pulling"),
            ("deploy.status", "starting"),
            ("deploy.completed", "completed"),
        ]
        .iter()
        .map(|(k, s)| classify(&frame(k, s), &mut started))
        .collect();
        assert_eq!(events, [None, Some(NotifyEvent::DeployStarted), None, None, Some(NotifyEvent::DeployCompleted)]);
        assert!(started.is_empty(), "finished deploys are forgotten");
    }
}
