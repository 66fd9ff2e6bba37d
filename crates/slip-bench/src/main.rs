//! `loadgen`: keep-alive HTTP load for slip's deploy benchmark. Runs until `--duration` passes or it
//! gets SIGTERM/SIGINT, then writes a JSON report (stdout or `--out`) and a one-line summary on stderr.
//! It does not start anything it measures.

use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use slip_bench::client::Target;
use slip_bench::report::parse_marks;

/// Keep-alive HTTP load generator that counts keep-alive races apart from failures.
#[derive(Debug, Parser)]
#[command(name = "loadgen")]
struct Args {
    /// URL to GET, http:// only (for example Caddy's listener: http://127.0.0.1:8080/).
    #[arg(long)]
    url: String,
    /// Host header (the app's domain).
    #[arg(long)]
    host: String,
    /// A body a right answer may have (surrounding whitespace ignored), such as a release's version; repeat it
    /// for every release the run may see. A 2xx answer with any other body (an empty 200 from a proxy without a
    /// route, say) counts as a failure.
    #[arg(long = "expect", value_name = "BODY", required = true)]
    expect: Vec<String>,
    /// Concurrent clients, each with one keep-alive connection.
    #[arg(long, default_value_t = 4)]
    clients: usize,
    /// Stop after this many seconds; without it, run until SIGTERM or SIGINT.
    #[arg(long)]
    duration: Option<f64>,
    /// Pause between two requests of one client, in milliseconds.
    #[arg(long, default_value_t = 0)]
    pause_ms: u64,
    /// Bound on one request attempt (connect, send, whole answer), in milliseconds.
    #[arg(long, default_value_t = 10_000)]
    timeout_ms: u64,
    /// File of `<unix ms> <label>` lines, read at the end, that splits the report into segments.
    #[arg(long)]
    marks: Option<PathBuf>,
    /// Write the JSON report here instead of stdout.
    #[arg(long)]
    out: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    anyhow::ensure!(args.clients > 0, "--clients must be at least 1");
    let target = Target::new(
        &args.url,
        &args.host,
        Duration::from_millis(args.timeout_ms),
        Duration::from_millis(args.pause_ms),
        &args.expect,
    )?;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let duration = args.duration.map(Duration::from_secs_f64);
    tokio::spawn(async move {
        stop_signal(duration).await;
        let _ = stop_tx.send(true);
    });
    let started = Instant::now();
    let result = slip_bench::run(target, args.clients, stop_rx, None).await;
    let seconds = started.elapsed().as_secs_f64();
    let marks = match &args.marks {
        Some(path) => {
            let text = std::fs::read_to_string(path).with_context(|| format!("reading marks {}", path.display()))?;
            parse_marks(&text)?
        }
        None => Vec::new(),
    };
    let report = slip_bench::report_json(&result, &marks, args.clients, seconds);
    let total = &report["total"];
    eprintln!(
        "loadgen: {} requests in {seconds:.1}s, {} non-2xx, {} with an unknown body, {} errors, {} races ({} recovered \
         by the retry)",
        total["requests"],
        total["non_2xx"],
        total["wrong_body"],
        total["errors"],
        total["races"],
        total["races_recovered"]
    );
    let text = serde_json::to_string_pretty(&report)?;
    match &args.out {
        Some(path) => std::fs::write(path, text + "\n").with_context(|| format!("writing {}", path.display()))?,
        None => writeln!(std::io::stdout().lock(), "{text}").context("writing the report to stdout")?,
    }
    Ok(())
}

/// Resolves when the duration has passed or on SIGTERM/SIGINT.
async fn stop_signal(duration: Option<Duration>) {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("installing the SIGTERM handler");
    let timer = async {
        match duration {
            Some(d) => tokio::time::sleep(d).await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
        _ = timer => {}
    }
}
