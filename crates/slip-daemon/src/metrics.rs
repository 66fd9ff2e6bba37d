//! Prometheus metrics (SPEC §17.2): the `metrics` facade with `metrics-exporter-prometheus` as its recorder, and
//! `GET /metrics` behind `auth.metrics_token` (or the admin token, or nothing with `auth.public_metrics = true`).
//!
//! Counters and histograms are recorded where things happen (deploys in the queue and the driver, webhooks and
//! authentication failures from each response, reconciles in the monitor, prunes in the image code). Gauges that
//! describe state (queue depth, app up, release info, Caddy and engine health, free disk) are set from the store
//! and the monitor's last answers when `/metrics` is scraped, so they are never stale and the scrape never calls
//! out. One recorder serves the whole process (the facade has one global recorder).

use std::sync::OnceLock;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use slip_engine::telemetry;

use crate::error::{ApiError, ErrorCode};
use crate::state::AppState;

/// `slip_webhooks_total{result}`.
pub const WEBHOOKS_TOTAL: &str = "slip_webhooks_total";
/// `slip_webhook_legacy_total{app}`.
pub const WEBHOOK_LEGACY_TOTAL: &str = "slip_webhook_legacy_total";
/// `slip_caddy_reconciles_total{result}`.
pub const CADDY_RECONCILES_TOTAL: &str = "slip_caddy_reconciles_total";
/// `slip_auth_failures_total{kind}`.
pub const AUTH_FAILURES_TOTAL: &str = "slip_auth_failures_total";
/// `slip_http_requests_total{route,status}`.
pub const HTTP_REQUESTS_TOTAL: &str = "slip_http_requests_total";
/// `slip_http_request_duration_seconds{route,status}`.
pub const HTTP_REQUEST_DURATION: &str = "slip_http_request_duration_seconds";

/// What a webhook came to, set on its response by the handler (`accepted` or `queued`); errors are classified
/// from their code.
#[derive(Debug, Clone, Copy)]
pub struct WebhookResult(pub &'static str);

/// The process's recorder, installed on first use. When another recorder was installed first (a test harness),
/// the handle renders only what this one saw, which is nothing: slipd itself never installs another.
pub fn handle() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let seconds = |m: &str, buckets: &[f64]| (Matcher::Full(m.to_owned()), buckets.to_vec());
        let mut builder = PrometheusBuilder::new();
        for (matcher, buckets) in [
            seconds(telemetry::DEPLOY_DURATION, &[1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0]),
            seconds(telemetry::STEP_DURATION, &[0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0]),
            seconds(HTTP_REQUEST_DURATION, &[0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 30.0]),
        ] {
            builder = builder.set_buckets_for_metric(matcher, &buckets).expect("bucket lists are not empty");
        }
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        if metrics::set_global_recorder(recorder).is_err() {
            tracing::warn!("another metrics recorder is installed; /metrics shows only slipd's gauges");
        }
        describe();
        handle
    })
}

fn describe() {
    metrics::describe_gauge!("slip_build_info", "slipd's version, as a label; always 1");
    metrics::describe_counter!(WEBHOOKS_TOTAL, "POST /v1/deploy requests by result");
    metrics::describe_counter!(WEBHOOK_LEGACY_TOTAL, "accepted webhooks signed without a timestamp");
    metrics::describe_counter!(telemetry::DEPLOYS_TOTAL, "deploys that reached a terminal status");
    metrics::describe_histogram!(telemetry::DEPLOY_DURATION, "seconds from a deploy's first step to its end");
    metrics::describe_histogram!(telemetry::STEP_DURATION, "seconds a deploy spent in each status");
    metrics::describe_gauge!("slip_deploys_running", "deploys past queued and not finished");
    metrics::describe_gauge!("slip_deploys_queued", "deploys waiting in the queue");
    metrics::describe_gauge!("slip_app_up", "1 when the app's current release is running");
    metrics::describe_gauge!("slip_app_release_info", "the app's current release (1), as labels");
    metrics::describe_counter!(telemetry::ROLLBACKS_TOTAL, "rollbacks, manual or after a failed watch");
    metrics::describe_gauge!("slip_previews", "live previews of the app");
    metrics::describe_gauge!("slip_caddy_up", "1 when Caddy's admin API answered the last reconcile");
    metrics::describe_gauge!("slip_runtime_up", "1 when the container engine answered the last ping");
    metrics::describe_counter!(CADDY_RECONCILES_TOTAL, "periodic route reconciles by result");
    metrics::describe_counter!(AUTH_FAILURES_TOTAL, "refused credentials by kind");
    metrics::describe_gauge!("slip_disk_free_bytes", "free bytes on the engine's image store");
    metrics::describe_counter!(telemetry::IMAGES_PRUNED_TOTAL, "images removed by retention");
    metrics::describe_counter!(HTTP_REQUESTS_TOTAL, "API requests by route and status");
    metrics::describe_histogram!(HTTP_REQUEST_DURATION, "API request handling time by route and status");
}

/// `GET /metrics`: Prometheus text format.
pub async fn scrape(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    authorise(&state, &headers)?;
    set_gauges(&state);
    let body = handle().render();
    let mut response = body.into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"));
    Ok(response)
}

/// `auth.public_metrics = true` serves anyone; otherwise the bearer token must be `auth.metrics_token` or the
/// admin token.
fn authorise(state: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    let config = state.config();
    if config.auth.public_metrics {
        return Ok(());
    }
    let Some(presented) = crate::auth::bearer(headers) else {
        return Err(ApiError::Unauthorized {
            code: "invalid_token",
            message: "/metrics needs Authorization: Bearer <auth.metrics_token> (or set auth.public_metrics = true)",
        });
    };
    if let Some(token) = &config.auth.metrics_token
        && slip_core::signature::token_matches(token.expose(), &presented)
    {
        return Ok(());
    }
    crate::auth::check_admin(state.admin_token(&config).as_deref(), &presented)
}

fn set_gauges(state: &AppState) {
    metrics::gauge!("slip_build_info", "version" => env!("CARGO_PKG_VERSION")).set(1.0);
    let health = state.health.snapshot();
    metrics::gauge!("slip_caddy_up").set(f64::from(u8::from(health.caddy)));
    metrics::gauge!("slip_runtime_up").set(f64::from(u8::from(health.runtime)));
    match state.store.running_or_queued_count() {
        Ok(counts) => {
            metrics::gauge!("slip_deploys_running").set(counts.running as f64);
            metrics::gauge!("slip_deploys_queued").set(counts.queued as f64);
        }
        Err(e) => tracing::warn!(error = %e, "reading queue depth for /metrics"),
    }
    if let Some(root) = &state.engine.images.engine_root
        && let Ok(free) = slip_engine::images::free_bytes(root)
    {
        metrics::gauge!("slip_disk_free_bytes").set(free as f64);
    }
    let apps = match crate::status::app_statuses(state) {
        Ok(apps) => apps,
        Err(e) => {
            tracing::warn!(error = %e, "reading app status for /metrics");
            return;
        }
    };
    for (app, status) in apps {
        let up = status.deploy_id.is_some() && !matches!(status.status.as_str(), "down" | "failed");
        metrics::gauge!("slip_app_up", "app" => app.clone()).set(f64::from(u8::from(up)));
        metrics::gauge!("slip_previews", "app" => app.clone()).set(status.previews as f64);
        release_info(&app, status.tag.as_deref(), status.deploy_id.as_deref());
    }
}

/// Sets `slip_app_release_info` to 1 for the app's current release and to 0 for the one it showed before (the
/// exporter cannot drop a series; `slip_app_release_info == 1` selects the current one).
fn release_info(app: &str, tag: Option<&str>, deploy_id: Option<&str>) {
    static SHOWN: std::sync::Mutex<Vec<(String, String, String)>> = std::sync::Mutex::new(Vec::new());
    let mut shown = SHOWN.lock().expect("release info lock");
    let now = tag.zip(deploy_id).map(|(t, d)| (app.to_owned(), t.to_owned(), d.to_owned()));
    if let Some(at) = shown.iter().position(|(a, _, _)| a == app) {
        let before = shown.remove(at);
        if Some(&before) != now.as_ref() {
            let (a, t, d) = before;
            metrics::gauge!("slip_app_release_info", "app" => a, "tag" => t, "deploy_id" => d).set(0.0);
        }
    }
    if let Some((a, t, d)) = now {
        metrics::gauge!("slip_app_release_info", "app" => a.clone(), "tag" => t.clone(), "deploy_id" => d.clone())
            .set(1.0);
        shown.push((a, t, d));
    }
}

/// Counts every API request by its route template and status, and from the same responses the webhook results
/// and authentication failures.
pub async fn record_requests(request: Request, next: Next) -> Response {
    let route = request.extensions().get::<MatchedPath>().map(|p| p.as_str().to_owned());
    let started = Instant::now();
    let response = next.run(request).await;
    let route = route.unwrap_or_else(|| "unmatched".to_owned());
    let status = response.status();
    let code = response.extensions().get::<ErrorCode>().map(|c| c.0);
    let labels = [("route", route.clone()), ("status", status.as_u16().to_string())];
    metrics::counter!(HTTP_REQUESTS_TOTAL, &labels).increment(1);
    metrics::histogram!(HTTP_REQUEST_DURATION, &labels).record(started.elapsed().as_secs_f64());
    if let Some(kind) = code.and_then(auth_failure_kind) {
        metrics::counter!(AUTH_FAILURES_TOTAL, "kind" => kind).increment(1);
    }
    if route == "/v1/deploy" {
        let result = match (response.extensions().get::<WebhookResult>(), status, code) {
            (Some(result), _, _) => result.0,
            (None, StatusCode::UNAUTHORIZED, _) => "unauthorized",
            (None, StatusCode::TOO_MANY_REQUESTS, _) => "rate_limited",
            (None, _, Some("replayed")) => "replayed",
            _ => "invalid",
        };
        metrics::counter!(WEBHOOKS_TOTAL, "result" => result).increment(1);
    }
    response
}

/// The `kind` label of a refused credential's error code.
fn auth_failure_kind(code: &str) -> Option<&'static str> {
    match code {
        "missing_signature" | "invalid_signature" | "timestamp_required" => Some("signature"),
        "invalid_token" | "admin_disabled" => Some("token"),
        "stale_timestamp" => Some("stale"),
        _ => None,
    }
}

/// Counts one periodic reconcile: `ok` (nothing to change), `drift` (routes re-asserted) or `error`.
pub fn caddy_reconciled(result: &'static str) {
    metrics::counter!(CADDY_RECONCILES_TOTAL, "result" => result).increment(1);
}

/// Counts an accepted legacy (untimestamped) webhook.
pub fn legacy_webhook(app: &str) {
    metrics::counter!(WEBHOOK_LEGACY_TOTAL, "app" => app.to_owned()).increment(1);
}
