//! slip's benchmark tools. The `loadgen` binary runs keep-alive clients against a URL through Caddy
//! while a benchmark script deploys, and reports failures two ways: as a strict client sees them and
//! as a client that retries a request once after a keep-alive race (RFC 9112 §9.3.1) sees them, for
//! the whole run and for each segment between the marks the script wrote (one per deploy).
//!
//! This crate measures; it does not deploy, start Caddy or write docs/benchmarks.md (bench/deploy.sh
//! does), and it is never published.

pub mod client;
pub mod report;

use std::sync::Arc;

use serde_json::{Value, json};
use tokio::sync::watch;

use crate::client::{ClientResult, Target, run_client};
use crate::report::Mark;

/// Runs `clients` clients against `target` until `stop` turns true (or each has sent `limit`
/// requests) and merges what they saw.
pub async fn run(target: Target, clients: usize, stop: watch::Receiver<bool>, limit: Option<u64>) -> ClientResult {
    let target = Arc::new(target);
    let tasks: Vec<_> =
        (0..clients).map(|_| tokio::spawn(run_client(target.clone(), stop.clone(), limit, unix_ms))).collect();
    let mut merged = ClientResult::default();
    for task in tasks {
        match task.await {
            Ok(result) => merged.merge(&result),
            // A client task cannot panic short of a bug in this crate; report it instead of hiding it.
            Err(e) => *merged.messages.entry(format!("client task failed: {e}")).or_default() += 1,
        }
    }
    merged
}

/// The JSON report: run facts, totals, one entry per segment between `marks`, and messages.
pub fn report_json(result: &ClientResult, marks: &[Mark], clients: usize, seconds: f64) -> Value {
    let total = result.timeline.total();
    json!({
        "clients": clients,
        "seconds": (seconds * 10.0).round() / 10.0,
        "requests_per_second": if seconds > 0.0 { (total.requests as f64 / seconds).round() } else { 0.0 },
        "total": total.to_json(),
        "segments": result.timeline.segments(marks).iter().map(|s| s.to_json()).collect::<Vec<_>>(),
        "messages": result.messages,
    })
}

/// Wall-clock Unix milliseconds.
pub fn unix_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}
