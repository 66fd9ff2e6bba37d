//! `slip`: the command-line client for slipd (SPEC §15).
//!
//! Every command is a thin HTTP call; signing and output formatting live here, nothing else.
//! Exit codes: 0 success, 1 deploy failed or rolled back, 2 usage or validation error, 3 superseded,
//! 4 authentication error, 5 server unreachable, 6 wait timed out, 7 other API error.

mod client;

use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use slip_api::{Deploy, DeployAccepted, DeployList, DeployRequest, Status};

use crate::client::{Client, Failure};

/// The slip command-line client.
#[derive(Debug, Parser)]
#[command(name = "slip", version, about = "Zero-downtime container deploys from CI, without Kubernetes")]
struct Cli {
    /// slipd's address.
    #[arg(long, global = true, env = "SLIP_SERVER", default_value = "http://127.0.0.1:7890")]
    server: String,
    /// Admin token for the management API.
    #[arg(long, global = true, env = "SLIP_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// App key (HMAC secret) for signed requests.
    #[arg(long, global = true, env = "SLIP_SECRET", hide_env_values = true)]
    secret: Option<String>,
    /// Print the API's JSON.
    #[arg(long, global = true)]
    json: bool,
    /// Per-request timeout.
    #[arg(long, global = true, default_value = "30s", value_parser = parse_duration)]
    timeout: Duration,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Deploy TAG of APP and wait for the outcome.
    Deploy {
        /// App name.
        app: String,
        /// Image tag or sha256: digest.
        tag: String,
        /// Image repository (must equal the app's).
        #[arg(long)]
        image: Option<String>,
        /// Wait for the outcome (the default).
        #[arg(long, overrides_with = "no_wait")]
        wait: bool,
        /// Return as soon as the deploy is accepted.
        #[arg(long)]
        no_wait: bool,
        /// Longest time to wait.
        #[arg(long, default_value = "15m", value_parser = parse_duration)]
        wait_timeout: Duration,
    },
    /// Show slipd's status and its apps.
    Status {
        /// Only this app.
        app: Option<String>,
    },
    /// List deploys, newest first.
    #[command(alias = "deploys")]
    History {
        /// Only this app.
        app: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 20)]
        limit: u32,
        /// Page before this deploy id.
        #[arg(long)]
        before: Option<String>,
    },
    /// Follow a deploy until it ends.
    Watch {
        /// `dep_…`.
        deploy_id: String,
        /// Longest time to wait.
        #[arg(long, default_value = "15m", value_parser = parse_duration)]
        wait_timeout: Duration,
    },
    /// Print a random hex key for use as an app key or token.
    GenSecret {
        /// Number of random bytes.
        #[arg(long, default_value_t = 32)]
        bytes: usize,
    },
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime");
    match runtime.block_on(run(cli)) {
        Ok(code) => ExitCode::from(code),
        Err(failure) => {
            eprintln!("error: {}", failure.message);
            if let Some(hint) = &failure.hint {
                eprintln!("hint: {hint}");
            }
            ExitCode::from(failure.exit_code)
        }
    }
}

async fn run(cli: Cli) -> Result<u8, Failure> {
    let client = Client::new(&cli.server, cli.token.clone(), cli.secret.clone(), cli.timeout)?;
    match cli.command {
        Command::Deploy { app, tag, image, wait: _, no_wait, wait_timeout } => {
            let request = DeployRequest { app: app.clone(), tag: tag.clone(), image, ..DeployRequest::default() };
            let accepted: DeployAccepted = client.deploy(&request).await?;
            if cli.json && no_wait {
                println!("{}", serde_json::to_string_pretty(&accepted).unwrap_or_default());
                return Ok(0);
            }
            eprintln!("deploy {} of {app}@{tag} {}", accepted.deploy_id, accepted.status);
            if no_wait {
                println!("{}", accepted.deploy_id);
                return Ok(0);
            }
            follow(&client, &accepted.deploy_id, Some(&app), wait_timeout, cli.json).await
        }
        Command::Watch { deploy_id, wait_timeout } => follow(&client, &deploy_id, None, wait_timeout, cli.json).await,
        Command::Status { app } => {
            let status: Status = client.get_admin("/v1/status").await?;
            if cli.json {
                println!("{}", serde_json::to_string_pretty(&status).unwrap_or_default());
                return Ok(0);
            }
            println!(
                "slipd {} · up {}s · caddy {} · runtime {} ({})",
                status.version.as_deref().unwrap_or("?"),
                status.uptime_seconds,
                status.caddy,
                status.runtime,
                status.backend
            );
            let apps = status.apps.unwrap_or_default();
            println!("{:<20} {:<7} {:<12} {:<24} {:<24}", "APP", "KIND", "STATUS", "TAG", "DEPLOYED");
            for (name, a) in apps.iter().filter(|(n, _)| app.as_deref().is_none_or(|want| want == n.as_str())) {
                println!(
                    "{:<20} {:<7} {:<12} {:<24} {:<24}",
                    truncate(name, 20),
                    a.kind,
                    a.status,
                    truncate(a.tag.as_deref().unwrap_or("-"), 24),
                    a.deployed_at.as_deref().unwrap_or("-")
                );
            }
            Ok(0)
        }
        Command::History { app, limit, before } => {
            let mut path = format!("/v1/deploys?limit={limit}");
            if let Some(app) = &app {
                path.push_str(&format!("&app={}", client::encode(app)));
            }
            if let Some(before) = &before {
                path.push_str(&format!("&before={}", client::encode(before)));
            }
            let list: DeployList = client.get_admin(&path).await?;
            if cli.json {
                println!("{}", serde_json::to_string_pretty(&list).unwrap_or_default());
                return Ok(0);
            }
            println!(
                "{:<31} {:<16} {:<20} {:<9} {:<12} {:<24} ERROR",
                "ID", "APP", "TAG", "TRIGGER", "STATUS", "STARTED"
            );
            for d in &list.deploys {
                let trigger = d.detail.as_ref().map(|x| x.trigger.as_str()).unwrap_or("-");
                println!(
                    "{:<31} {:<16} {:<20} {:<9} {:<12} {:<24} {}",
                    d.deploy_id,
                    truncate(&d.app, 16),
                    truncate(&d.tag, 20),
                    trigger,
                    d.status,
                    d.started_at,
                    d.error.as_deref().unwrap_or("")
                );
            }
            if let Some(next) = list.next_before {
                println!("(more: --before {next})");
            }
            Ok(0)
        }
        Command::GenSecret { bytes } => {
            let key: Vec<u8> = (0..bytes).map(|_| rand::random::<u8>()).collect();
            println!("{}", hex::encode(key));
            Ok(0)
        }
    }
}

/// Polls a deploy until it ends, printing each new step; returns the exit code for its outcome.
async fn follow(client: &Client, id: &str, app: Option<&str>, limit: Duration, json: bool) -> Result<u8, Failure> {
    let started = Instant::now();
    let mut shown = 0;
    loop {
        let deploy: Deploy = client.get_deploy(id, app).await?;
        if let Some(detail) = &deploy.detail {
            for step in detail.steps.iter().skip(shown) {
                if !json {
                    eprintln!("  {:<16} {}", step.status, step.at);
                }
                shown += 1;
            }
        }
        let code = match deploy.status.as_str() {
            "completed" => Some(0),
            "failed" | "rolled_back" => Some(1),
            "superseded" => Some(3),
            _ => None,
        };
        if let Some(code) = code {
            if json {
                println!("{}", serde_json::to_string_pretty(&deploy).unwrap_or_default());
            } else if code == 0 {
                println!("✓ completed in {:.1}s", started.elapsed().as_secs_f64());
            } else {
                println!("✗ {}: {}", deploy.status, deploy.error.as_deref().unwrap_or("no reason recorded"));
            }
            return Ok(code);
        }
        if started.elapsed() > limit {
            return Err(Failure {
                message: format!("deploy {id} still {} after {}s", deploy.status, limit.as_secs()),
                hint: Some(format!("slip watch {id}")),
                exit_code: 6,
            });
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n { s.to_owned() } else { s.chars().take(n - 1).chain(['…']).collect() }
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    slip_core::duration::parse(s).map_err(|e| e.to_string())
}
