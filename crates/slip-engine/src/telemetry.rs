//! The metrics the deploy side records (SPEC §17.2), through the `metrics` facade: whoever installs a recorder
//! (slipd's Prometheus exporter) gets them; without one they cost nothing. Names live here so the daemon's
//! exporter and the tests spell them one way.

use std::time::Duration;

/// `slip_deploys_total{app,kind,strategy,status,trigger}`: deploys that reached a terminal status.
pub const DEPLOYS_TOTAL: &str = "slip_deploys_total";
/// `slip_deploy_duration_seconds{app,status}`: from the first step to the terminal status.
pub const DEPLOY_DURATION: &str = "slip_deploy_duration_seconds";
/// `slip_deploy_step_duration_seconds{step}`: time spent in each status.
pub const STEP_DURATION: &str = "slip_deploy_step_duration_seconds";
/// `slip_rollbacks_total{app,trigger}` with `trigger` `manual` or `auto`.
pub const ROLLBACKS_TOTAL: &str = "slip_rollbacks_total";
/// `slip_images_pruned_total`.
pub const IMAGES_PRUNED_TOTAL: &str = "slip_images_pruned_total";

/// The labels of a finished deploy.
#[derive(Debug, Clone, Copy)]
pub struct DeployLabels<'a> {
    /// The app.
    pub app: &'a str,
    /// `web`, `worker`, `pod`, or empty when the deploy ended before it was resolved.
    pub kind: &'a str,
    /// `blue-green`, `recreate`, or empty.
    pub strategy: &'a str,
    /// The terminal status.
    pub status: &'a str,
    /// What started it.
    pub trigger: &'a str,
}

/// Counts a deploy that ended, and how long it ran when it ran at all.
pub fn deploy_finished(labels: DeployLabels<'_>, ran: Option<Duration>) {
    metrics::counter!(
        DEPLOYS_TOTAL,
        "app" => labels.app.to_owned(),
        "kind" => labels.kind.to_owned(),
        "strategy" => labels.strategy.to_owned(),
        "status" => labels.status.to_owned(),
        "trigger" => labels.trigger.to_owned()
    )
    .increment(1);
    if let Some(ran) = ran {
        metrics::histogram!(DEPLOY_DURATION, "app" => labels.app.to_owned(), "status" => labels.status.to_owned())
            .record(ran.as_secs_f64());
    }
}

/// Records the time a deploy spent in `step`.
pub fn step_finished(step: &str, took: Duration) {
    metrics::histogram!(STEP_DURATION, "step" => step.to_owned()).record(took.as_secs_f64());
}

/// Counts a rollback: `auto` (a failed watch) or `manual` (the rollback endpoint).
pub fn rollback(app: &str, trigger: &'static str) {
    metrics::counter!(ROLLBACKS_TOTAL, "app" => app.to_owned(), "trigger" => trigger).increment(1);
}

/// Counts images removed by retention.
pub fn images_pruned(n: usize) {
    if n > 0 {
        metrics::counter!(IMAGES_PRUNED_TOTAL).increment(n as u64);
    }
}
