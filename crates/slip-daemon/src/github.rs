//! GitHub Deployments for apps with a `[github]` table: a deployment per deploy, then statuses `in_progress` when it
//! starts and `success` or `failure` when it ends, with `environment_url` (the app's first route) and
//! `transient_environment` for previews.
//!
//! Driven by the notifier ([`crate::notify`]) from the event bus, so it never holds a deploy up. Calls for one
//! deploy run in event order (the deployment must exist before its statuses): each report waits for the deploy's
//! previous one. A deploy whose start was missed gets its deployment created when it ends. Every call is retried like a notification and its
//! outcome recorded in the audit log (`github.deployment`), without the token.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;
use slip_core::config::{GithubDeployments, NotifyEvent, TlsMode};
use slip_core::names::DeployId;
use slip_engine::clock::unix_ms;
use slip_engine::store::AuditEntry;

use crate::outbound::{ATTEMPTS, FIRST_BACKOFF, Message};
use crate::state::AppState;

/// GitHub deployment ids by slip deploy id, and the last report task of each unfinished deploy.
#[derive(Default)]
pub struct Tracker {
    ids: Mutex<HashMap<String, Arc<tokio::sync::Mutex<Option<u64>>>>>,
    last: Mutex<HashMap<String, tokio::task::JoinHandle<()>>>,
}

impl Tracker {
    /// Runs [`report`] for `event` after the deploy's previous report has finished, so the calls for one deploy
    /// happen in event order even when two events arrive together.
    pub(crate) fn spawn(
        self: &Arc<Self>,
        state: AppState,
        http: reqwest::Client,
        gh: GithubDeployments,
        event: NotifyEvent,
        message: Arc<Message>,
    ) {
        let mut last = self.last.lock().expect("github tracker lock");
        let previous = last.remove(&message.deploy_id);
        let deploy_id = message.deploy_id.clone();
        let tracker = self.clone();
        let task = tokio::spawn(async move {
            if let Some(previous) = previous {
                let _ = previous.await;
            }
            report(state, http, tracker, gh, event, message).await;
        });
        if event == NotifyEvent::DeployStarted {
            last.insert(deploy_id, task);
        }
    }

    fn slot(&self, deploy_id: &str) -> Arc<tokio::sync::Mutex<Option<u64>>> {
        self.ids.lock().expect("github tracker lock").entry(deploy_id.to_owned()).or_default().clone()
    }

    fn forget(&self, deploy_id: &str) {
        self.ids.lock().expect("github tracker lock").remove(deploy_id);
    }
}

/// Reports `event` of `message` to GitHub for `gh`.
async fn report(
    state: AppState,
    http: reqwest::Client,
    tracker: Arc<Tracker>,
    gh: GithubDeployments,
    event: NotifyEvent,
    message: Arc<Message>,
) {
    let slot = tracker.slot(&message.deploy_id);
    let mut id = slot.lock().await;
    if id.is_none() {
        *id = create(&state, &http, &gh, &message).await;
    }
    let Some(github_id) = *id else {
        tracker.forget(&message.deploy_id);
        return;
    };
    let (status, description) = match event {
        NotifyEvent::DeployStarted => ("in_progress", format!("slip is deploying {}", message.tag)),
        NotifyEvent::DeployCompleted => ("success", format!("{} is live", message.tag)),
        NotifyEvent::DeployFailed | NotifyEvent::DeployRolledBack => {
            ("failure", message.reason.clone().unwrap_or_else(|| "the deploy failed".into()))
        }
    };
    let description: String = description.chars().take(140).collect();
    let mut body = json!({ "state": status, "description": description, "auto_inactive": true });
    if let Some(url) = environment_url(&state, &message) {
        body["environment_url"] = json!(url);
    }
    let url = format!("{}/repos/{}/deployments/{github_id}/statuses", gh.api_url, gh.repository);
    let (ok, attempts, result) = call(&state, &http, &gh, &url, &body).await;
    record(&state, &message, status, Some(github_id), attempts, &result, ok);
    if event != NotifyEvent::DeployStarted {
        drop(id);
        tracker.forget(&message.deploy_id);
    }
}

/// Creates the deployment; its id, or `None` when GitHub refused (recorded).
async fn create(state: &AppState, http: &reqwest::Client, gh: &GithubDeployments, message: &Message) -> Option<u64> {
    let preview = message.preview_id.is_some();
    let environment = match &message.preview_id {
        Some(p) => format!("{}-preview-{p}", gh.environment),
        None => gh.environment.clone(),
    };
    let body = json!({
        "ref": git_ref(state, message),
        "environment": environment,
        "description": format!("slip deploy {} of {}@{}", message.deploy_id, message.app, message.tag),
        "auto_merge": false,
        "required_contexts": [],
        "transient_environment": preview,
        "production_environment": !preview,
        "payload": { "deploy_id": message.deploy_id, "app": message.app, "tag": message.tag },
    });
    let url = format!("{}/repos/{}/deployments", gh.api_url, gh.repository);
    let (ok, attempts, result) = call(state, http, gh, &url, &body).await;
    let id =
        if ok { serde_json::from_str::<serde_json::Value>(&result).ok().and_then(|v| v["id"].as_u64()) } else { None };
    let shown = if ok && id.is_none() { "no deployment id in GitHub's answer".to_owned() } else { short(&result) };
    record(state, message, "created", id, attempts, &shown, id.is_some());
    id
}

/// The ref GitHub records: the webhook's `meta.ref` or `meta.sha` when CI sent one, else the image tag.
fn git_ref(state: &AppState, message: &Message) -> String {
    let meta = message
        .deploy_id
        .parse::<DeployId>()
        .ok()
        .and_then(|id| state.store.deploy(&id).ok().flatten())
        .and_then(|d| d.meta)
        .and_then(|m| serde_json::from_str::<serde_json::Value>(&m).ok());
    meta.as_ref()
        .and_then(|m| m["ref"].as_str().or(m["sha"].as_str()))
        .map(str::to_owned)
        .unwrap_or_else(|| message.tag.clone())
}

/// `https://<first route>` of the app (`http://` when Caddy serves plain HTTP).
fn environment_url(state: &AppState, message: &Message) -> Option<String> {
    let config = state.config();
    let app = config.apps.get(&message.app.parse().ok()?)?;
    let host = app.routes.first()?.hostname.trim_start_matches("*.").to_owned();
    let scheme = if config.caddy.tls.mode == TlsMode::Off { "http" } else { "https" };
    Some(format!("{scheme}://{host}"))
}

/// POSTs `body` to `url` with retries; (succeeded, attempts, answer body or what went wrong).
async fn call(
    state: &AppState,
    http: &reqwest::Client,
    gh: &GithubDeployments,
    url: &str,
    body: &serde_json::Value,
) -> (bool, u32, String) {
    let mut backoff: Duration = FIRST_BACKOFF;
    let mut last = String::new();
    for attempt in 1..=ATTEMPTS {
        let sent = http
            .post(url)
            .bearer_auth(gh.token.expose())
            .header("accept", "application/vnd.github+json")
            .header("x-github-api-version", "2022-11-28")
            .header("user-agent", concat!("slipd/", env!("CARGO_PKG_VERSION")))
            .json(body)
            .send()
            .await;
        match sent {
            Ok(r) if r.status().is_success() => return (true, attempt, r.text().await.unwrap_or_default()),
            // 4xx other than rate limiting will not change on a retry.
            Ok(r) if r.status().is_client_error() && r.status().as_u16() != 429 => {
                return (false, attempt, format!("HTTP {}", r.status().as_u16()));
            }
            Ok(r) => last = format!("HTTP {}", r.status().as_u16()),
            Err(e) if e.is_timeout() => last = "no answer in time".into(),
            Err(_) => last = "connection failed".into(),
        }
        if attempt < ATTEMPTS {
            tokio::select! {
                _ = state.events.closing().cancelled() => break,
                _ = tokio::time::sleep(backoff) => {}
            }
            backoff *= 2;
        }
    }
    (false, ATTEMPTS, last)
}

fn short(s: &str) -> String {
    s.chars().take(200).collect()
}

fn record(state: &AppState, message: &Message, step: &str, id: Option<u64>, attempts: u32, result: &str, ok: bool) {
    if ok {
        tracing::info!(app = %message.app, deploy_id = %message.deploy_id, step, attempts, "github deployment updated");
    } else {
        tracing::warn!(app = %message.app, deploy_id = %message.deploy_id, step, attempts, result, "github deployment not updated");
    }
    let entry = AuditEntry {
        at: unix_ms(),
        actor: "system".into(),
        source_ip: None,
        request_id: None,
        action: "github.deployment".into(),
        target: Some(message.app.clone()),
        detail: Some(
            json!({
                "deploy_id": message.deploy_id,
                "step": step,
                "github_id": id,
                "ok": ok,
                "attempts": attempts,
                "result": if ok { "ok".to_owned() } else { short(result) },
            })
            .to_string(),
        ),
    };
    if let Err(e) = state.store.append_audit(entry) {
        tracing::warn!(error = %e, "recording a GitHub deployment call in the audit log");
    }
}
