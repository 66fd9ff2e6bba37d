//! Following a deploy to its end (`slip deploy` waits, `slip watch`): the `/v1/deploys/{id}/events` stream
//! when the server has it, else polling `/v1/deploys/{id}` every 2 s (also the fallback when a stream breaks
//! or goes silent for longer than three heartbeats).
//!
//! Human output is one line per step with the time since the deploy was accepted, log and warning lines
//! indented under it, then `✓ completed in 7.5s` or `✗ failed: <error>` with the failing step. `--json` prints
//! every event as one JSON line (NDJSON) and, when polling, the final deploy object. The outcome is the exit
//! code: 0 completed, 1 failed or rolled back, 3 superseded, 6 still running when the wait ran out.

use std::time::{Duration, Instant};

use futures::StreamExt;
use slip_api::time::parse_rfc3339;
use slip_api::{Deploy, EventFrame};

use crate::client::{Client, Failure, encode, exit};

/// How often the fallback polls.
const POLL: Duration = Duration::from_secs(2);

/// A stream silent for longer than this (three 15 s heartbeats) is considered lost.
const SILENCE: Duration = Duration::from_secs(45);

/// How to print.
#[derive(Debug, Clone, Copy)]
pub struct Output {
    /// NDJSON instead of lines.
    pub json: bool,
    /// Only the final line.
    pub quiet: bool,
}

/// Follows deploy `id` until it ends or `limit` passes; returns the exit code for its outcome.
pub async fn follow(client: &Client, id: &str, limit: Duration, out: Output) -> Result<u8, Failure> {
    let deadline = Instant::now() + limit;
    let mut printer = Printer::new(out);
    if let Some(mut stream) = client.events(id, limit).await? {
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let next = match tokio::time::timeout(left.min(SILENCE), stream.next()).await {
                Ok(Some(Ok(event))) => event,
                Ok(Some(Err(_))) | Ok(None) => break,
                Err(_) if Instant::now() >= deadline => return Err(timed_out(id, printer.status(), limit)),
                Err(_) => break,
            };
            let Ok(frame) = serde_json::from_str::<EventFrame>(&next.data) else { continue };
            printer.frame(&frame);
            if frame.is_terminal() {
                let deploy: Option<Deploy> = client.get_signed(&deploy_path(id)).await.ok();
                return Ok(printer.finish(&frame.kind, frame.message.as_deref(), deploy.as_ref(), &frame.at));
            }
        }
    }
    poll(client, id, deadline, limit, printer).await
}

async fn poll(
    client: &Client,
    id: &str,
    deadline: Instant,
    limit: Duration,
    mut printer: Printer,
) -> Result<u8, Failure> {
    loop {
        let deploy: Deploy = client.get_signed(&deploy_path(id)).await?;
        printer.deploy(&deploy);
        if is_terminal(&deploy.status) {
            let kind = format!("deploy.{}", deploy.status);
            let at = deploy.finished_at.clone().unwrap_or_default();
            if printer.out.json {
                println!("{}", serde_json::to_string(&deploy).unwrap_or_default());
            }
            return Ok(printer.finish(&kind, deploy.error.as_deref(), Some(&deploy), &at));
        }
        if Instant::now() >= deadline {
            return Err(timed_out(id, Some(deploy.status.clone()), limit));
        }
        tokio::time::sleep(POLL.min(deadline.saturating_duration_since(Instant::now()))).await;
    }
}

fn deploy_path(id: &str) -> String {
    format!("/v1/deploys/{}", encode(id))
}

fn is_terminal(status: &str) -> bool {
    matches!(status, "completed" | "failed" | "superseded" | "rolled_back")
}

fn timed_out(id: &str, status: Option<String>, limit: Duration) -> Failure {
    Failure::new(
        format!(
            "deploy {id} is still {} after {}",
            status.as_deref().unwrap_or("running"),
            slip_core::duration::format(limit)
        ),
        Some(format!("it goes on on the server: slip watch {id}")),
        exit::TIMEOUT,
    )
}

/// Turns events (or polled deploy objects) into output lines.
struct Printer {
    out: Output,
    /// Server time of the first event: elapsed times are relative to it.
    origin: Option<i64>,
    /// The status steps shown so far.
    steps: Vec<String>,
    /// Log and warning events shown so far (polling shows only new ones).
    notes: usize,
}

impl Printer {
    fn new(out: Output) -> Printer {
        Printer { out, origin: None, steps: Vec::new(), notes: 0 }
    }

    fn status(&self) -> Option<String> {
        self.steps.last().cloned()
    }

    fn elapsed(&mut self, at: &str) -> f64 {
        let Some(ms) = parse_rfc3339(at) else { return 0.0 };
        let origin = *self.origin.get_or_insert(ms);
        (ms - origin).max(0) as f64 / 1000.0
    }

    fn frame(&mut self, frame: &EventFrame) {
        let elapsed = self.elapsed(&frame.at);
        if self.out.json {
            println!("{}", serde_json::to_string(frame).unwrap_or_default());
        }
        match frame.kind.as_str() {
            "deploy.status" | "deploy.queued" => {
                let status = frame.status.clone().unwrap_or_default();
                if !matches!(status.as_str(), "accepted" | "queued") {
                    self.step(&status, elapsed);
                } else if status == "queued" && !self.out.json && !self.out.quiet {
                    println!("{:>7}  queued behind the running deploy", "");
                }
            }
            "deploy.log" | "deploy.warning" => {
                self.note(frame.kind == "deploy.warning", frame.message.as_deref().unwrap_or(""));
            }
            _ => {}
        }
    }

    /// Shows the steps and notes of a polled deploy that were not shown yet.
    fn deploy(&mut self, deploy: &Deploy) {
        let Some(detail) = &deploy.detail else { return };
        self.elapsed(&deploy.started_at);
        for step in detail.steps.iter().skip(self.steps.len()) {
            let elapsed = self.elapsed(&step.at);
            self.step(&step.status, elapsed);
        }
        for event in detail.events.iter().skip(self.notes) {
            self.note(event.kind == "warning", event.message.as_deref().unwrap_or(""));
        }
    }

    fn step(&mut self, status: &str, elapsed: f64) {
        self.steps.push(status.to_owned());
        if !self.out.json && !self.out.quiet {
            println!("{elapsed:>6.1}s  {status}");
        }
    }

    fn note(&mut self, warning: bool, message: &str) {
        self.notes += 1;
        if !self.out.json && !self.out.quiet {
            let mark = if warning { "⚠ " } else { "" };
            print!("{}", note_lines(mark, message));
        }
    }

    /// Prints the outcome and returns its exit code.
    fn finish(&mut self, kind: &str, message: Option<&str>, deploy: Option<&Deploy>, at: &str) -> u8 {
        let elapsed = self.elapsed(at);
        let error = deploy.and_then(|d| d.error.clone()).or(message.map(str::to_owned));
        let code = deploy.and_then(|d| d.detail.as_ref()).and_then(|d| d.error_code.clone());
        let (line, exit_code) = match kind {
            "deploy.completed" => (format!("✓ completed in {elapsed:.1}s"), exit::OK),
            "deploy.superseded" => {
                let by = deploy.and_then(|d| d.detail.as_ref()).and_then(|d| d.superseded_by.clone());
                (format!("✗ superseded by {}", by.as_deref().unwrap_or("a newer deploy")), exit::SUPERSEDED)
            }
            "deploy.rolled_back" => {
                (format!("✗ rolled back: {}", error.as_deref().unwrap_or("no reason recorded")), exit::DEPLOY_FAILED)
            }
            _ => (format!("✗ failed: {}", error.as_deref().unwrap_or("no reason recorded")), exit::DEPLOY_FAILED),
        };
        if !self.out.json {
            println!("{line}");
            if exit_code == exit::DEPLOY_FAILED {
                let step = self.steps.last().map(String::as_str).unwrap_or("before the first step");
                match code {
                    Some(code) => println!("  failed step: {step} (error code {code})"),
                    None => println!("  failed step: {step}"),
                }
            }
        }
        exit_code
    }
}

/// A deploy note as printed under its step: indented, and each further line of a multi-line note (a failed
/// release's last output lines) indented one more step, so it reads as the note's body.
pub(crate) fn note_lines(mark: &str, message: &str) -> String {
    let mut lines = message.lines();
    let mut out = format!("{:>7}    {mark}{}\n", "", lines.next().unwrap_or(""));
    for line in lines {
        out.push_str(&format!("{:>7}      | {line}\n", ""));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_multi_line_note_prints_its_lines_under_its_heading() {
        assert_eq!(
            note_lines("", "last 2 lines of the failed release's output:\nstarting\npanic: no DATABASE_URL"),
            "           last 2 lines of the failed release's output:\n             | starting\n             | panic: no \
             DATABASE_URL\n"
        );
        assert_eq!(note_lines("⚠ ", "drain timeout"), "           ⚠ drain timeout\n");
    }

    #[test]
    fn elapsed_times_are_relative_to_the_first_event() {
        let mut p = Printer::new(Output { json: false, quiet: true });
        assert_eq!(p.elapsed("2025-01-01T00:00:00.000Z"), 0.0);
        assert_eq!(p.elapsed("2025-01-01T00:00:07.500Z"), 7.5);
    }

    #[test]
    fn outcomes_map_to_exit_codes() {
        let mut p = Printer::new(Output { json: false, quiet: true });
        assert_eq!(p.finish("deploy.completed", None, None, ""), exit::OK);
        assert_eq!(p.finish("deploy.failed", Some("boom"), None, ""), exit::DEPLOY_FAILED);
        assert_eq!(p.finish("deploy.rolled_back", None, None, ""), exit::DEPLOY_FAILED);
        assert_eq!(p.finish("deploy.superseded", None, None, ""), exit::SUPERSEDED);
    }
}
