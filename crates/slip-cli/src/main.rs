//! `slip`: the command-line client for slipd (SPEC §15).
//!
//! Every command is a thin HTTP call except `gen-secret` and the local mode of `secrets` (see
//! [`secrets`]). Signing and output live here; nothing is decided client-side that the server decides.
//! Exit codes: 0 success, 1 deploy failed or rolled back, 2 usage or validation error, 3 superseded,
//! 4 authentication or permission error, 5 server unreachable, 6 wait timed out, 7 other API error.
//!
//! # Layout
//! - [`apps`]: `apps list|show|add|edit|rm` and `rollback`.
//! - [`client`]: HTTP, signing, error answers → [`client::Failure`] with a hint and an exit code.
//! - [`follow`]: waiting for a deploy with live progress (SSE, or polling).
//! - [`init`]: `init`, the starter files (offline).
//! - [`logs`]: `logs`, printing container output as it arrives.
//! - [`ops`]: `cancel`, `redeploy` and `audit`.
//! - [`secrets`]: `secrets list|set|rm`, remote or local.
//! - [`table`]: tables and times.
//! - [`validate`]: `validate`, the offline check of a repo's config and pod manifest.

mod apps;
mod client;
mod follow;
mod init;
mod logs;
mod ops;
mod previews;
mod secrets;
mod table;
mod validate;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::parser::ValueSource;
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use slip_api::time::parse_rfc3339;
use slip_api::{Deploy, DeployAccepted, DeployList, DeployRequest, Status};
use slip_engine::secrets::Scope;

use crate::client::{Client, Failure, encode, exit};
use crate::follow::Output;
use crate::table::{Table, truncate};

/// Where slipd listens unless told otherwise (the quick start's `server.listen`).
const DEFAULT_SERVER: &str = "http://127.0.0.1:7890";

/// The slip command-line client.
#[derive(Debug, Parser)]
#[command(name = "slip", version, about = "Zero-downtime container deploys from CI, without Kubernetes")]
struct Cli {
    /// slipd's address.
    #[arg(long, global = true, env = "SLIP_SERVER", default_value = DEFAULT_SERVER)]
    server: String,
    /// Admin token for the management API.
    #[arg(long, global = true, env = "SLIP_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// App key (HMAC secret) for signed requests.
    #[arg(long, global = true, env = "SLIP_SECRET", hide_env_values = true)]
    secret: Option<String>,
    /// Print the API's JSON (NDJSON for streams).
    #[arg(long, global = true)]
    json: bool,
    /// Print only the outcome.
    #[arg(long, global = true)]
    quiet: bool,
    /// No colour (slip prints none; accepted for scripts that pass it).
    #[arg(long, global = true)]
    no_color: bool,
    /// Per-request timeout.
    #[arg(long, global = true, default_value = "30s", value_parser = parse_duration)]
    timeout: Duration,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Deploy TAG of APP and wait for the outcome, showing each step.
    Deploy {
        /// App name.
        app: String,
        /// Image tag or sha256: digest.
        tag: String,
        /// Image repository (must equal the app's).
        #[arg(long)]
        image: Option<String>,
        /// Pods: a container's image, NAME=REF (repeatable).
        #[arg(long = "images", value_name = "NAME=REF")]
        images: Vec<String>,
        /// Deploy as preview ID.
        #[arg(long)]
        preview: Option<String>,
        /// The preview's commit.
        #[arg(long, requires = "preview")]
        sha: Option<String>,
        /// The preview's time to live, e.g. 3d.
        #[arg(long, requires = "preview")]
        ttl: Option<String>,
        /// Metadata stored with the deploy, K=V (repeatable).
        #[arg(long = "meta", value_name = "K=V")]
        meta: Vec<String>,
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
    /// Show slipd's status and its apps, or one app with its recent deploys.
    Status {
        /// Only this app, in detail.
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
        /// Include preview deploys (production's only without it).
        #[arg(long)]
        previews: bool,
    },
    /// List and tear down preview environments.
    Previews {
        #[command(subcommand)]
        command: previews::PreviewsCommand,
    },
    /// Follow a deploy until it ends.
    Watch {
        /// `dep_…`.
        deploy_id: String,
        /// Longest time to wait.
        #[arg(long, default_value = "15m", value_parser = parse_duration)]
        wait_timeout: Duration,
    },
    /// Cancel a deploy: a waiting one at once, a running one before its switch at its next step.
    Cancel {
        /// `dep_…`.
        deploy_id: String,
    },
    /// Deploy APP's current release again (same digest) with the current config and secrets.
    Redeploy {
        /// App name.
        app: String,
        /// Wait for the outcome (the default).
        #[arg(long, overrides_with = "no_wait")]
        wait: bool,
        /// Return as soon as the redeploy is accepted.
        #[arg(long)]
        no_wait: bool,
        /// Longest time to wait.
        #[arg(long, default_value = "15m", value_parser = parse_duration)]
        wait_timeout: Duration,
    },
    /// Show the audit log, newest first; --verify checks its hash chain (exit 1 when it is broken).
    Audit {
        /// At most this many entries.
        #[arg(long, default_value_t = 20)]
        limit: u32,
        /// Check the whole hash chain.
        #[arg(long)]
        verify: bool,
    },
    /// Manage an app's secrets (values are never shown).
    Secrets {
        /// Server config for local mode (used only when slipd is not running and --server is not given).
        #[arg(long, global = true, env = "SLIP_CONFIG", default_value = "/etc/slip")]
        config: PathBuf,
        #[command(subcommand)]
        command: SecretsCommand,
    },
    /// Manage apps (the server's apps/<name>.toml files).
    Apps {
        #[command(subcommand)]
        command: apps::AppsCommand,
    },
    /// Roll APP back to its previous release (or --to a tag or deploy id) and wait for the outcome.
    Rollback {
        /// App name.
        app: String,
        /// A tag or deploy id (`dep_…`) to restore instead of the previous release.
        #[arg(long)]
        to: Option<String>,
        /// Wait for the outcome (the default).
        #[arg(long, overrides_with = "no_wait")]
        wait: bool,
        /// Return as soon as the rollback is accepted.
        #[arg(long)]
        no_wait: bool,
        /// Longest time to wait.
        #[arg(long, default_value = "15m", value_parser = parse_duration)]
        wait_timeout: Duration,
    },
    /// Print the output of an app's running containers (redacted by slipd), or follow it.
    Logs(logs::LogsArgs),
    /// Check a repo's slip/slip.toml and pod manifest offline.
    Validate(validate::Args),
    /// Write starter files: slip/slip.toml (plus slip/pod.yaml for pods) and the server's <name>.toml.
    Init(init::Args),
    /// Make slipd load its config files again (as SIGHUP does); the running config stays if anything is invalid.
    Reload,
    /// Print this client's version and the server's (the server's needs --token, or says why it is unknown).
    Version,
    /// Print a random hex key for use as an app key or token.
    GenSecret {
        /// Number of random bytes.
        #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u16).range(16..=1024))]
        bytes: u16,
    },
}

#[derive(Debug, Subcommand)]
enum SecretsCommand {
    /// List keys with their scope, last update and fingerprint.
    List {
        /// App name.
        app: String,
        /// Only this scope: app or preview.
        #[arg(long, value_parser = parse_scope)]
        scope: Option<Scope>,
    },
    /// Set KEY=VALUE pairs (validated before anything is written).
    Set {
        /// App name.
        app: String,
        /// KEY=VALUE pairs.
        pairs: Vec<String>,
        /// Read the value of KEY from stdin (keeps it out of shell history).
        #[arg(long, value_name = "KEY")]
        stdin: Option<String>,
        /// app (the default) or preview.
        #[arg(long, default_value = "app", value_parser = parse_scope)]
        scope: Scope,
        /// Then redeploy the app's current release so the new values take effect (needs slipd).
        #[arg(long)]
        redeploy: bool,
    },
    /// Remove keys.
    Rm {
        /// App name.
        app: String,
        /// Keys to remove.
        #[arg(required = true)]
        keys: Vec<String>,
        /// app (the default) or preview.
        #[arg(long, default_value = "app", value_parser = parse_scope)]
        scope: Scope,
    },
}

fn main() -> ExitCode {
    let matches = match Cli::command().try_get_matches() {
        Ok(m) => m,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { exit::USAGE } else { exit::OK });
        }
    };
    let server_given =
        matches!(matches.value_source("server"), Some(ValueSource::CommandLine | ValueSource::EnvVariable));
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(exit::USAGE);
        }
    };
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime");
    match runtime.block_on(run(cli, server_given)) {
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

async fn run(cli: Cli, server_given: bool) -> Result<u8, Failure> {
    // The offline commands need neither a client nor slipd.
    let command = match cli.command {
        Command::Validate(args) => return validate::run(&args, cli.json, cli.quiet),
        Command::Init(args) => return init::run(&args, cli.quiet),
        command => command,
    };
    let client = Client::new(&cli.server, cli.token.clone(), cli.secret.clone(), cli.timeout)?;
    let out = Output { json: cli.json, quiet: cli.quiet };
    match command {
        Command::Deploy { app, tag, image, images, preview, sha, ttl, meta, wait: _, no_wait, wait_timeout } => {
            let request = DeployRequest {
                app: app.clone(),
                tag: tag.clone(),
                image,
                images: (!images.is_empty()).then(|| pairs(&images, "--images")).transpose()?,
                preview: preview.map(|id| serde_json::json!({"id": id, "sha": sha, "ttl": ttl})),
                meta: (!meta.is_empty())
                    .then(|| {
                        pairs::<BTreeMap<_, _>>(&meta, "--meta").map(|m| serde_json::to_value(m).unwrap_or_default())
                    })
                    .transpose()?,
            };
            let accepted: DeployAccepted = client.deploy(&request).await?;
            let mut headline = format!("deploy {} of {app}@{tag} {}", accepted.deploy_id, accepted.status);
            if let Some(url) = &accepted.preview_url {
                headline.push_str(&format!("\npreview: {url}"));
            }
            accepted_then_follow(&client, &accepted, &headline, no_wait, wait_timeout, out).await
        }
        Command::Watch { deploy_id, wait_timeout } => follow::follow(&client, &deploy_id, wait_timeout, out).await,
        Command::Status { app } => status(&client, app.as_deref(), cli.json).await,
        Command::History { app, limit, before, previews } => {
            history(&client, app.as_deref(), limit, before.as_deref(), previews, cli.json).await
        }
        Command::Previews { command } => previews::run(&client, command, cli.json).await,
        Command::Secrets { config, command } => {
            let target = secrets::target(client, server_given, DEFAULT_SERVER, &config).await?;
            match command {
                SecretsCommand::List { app, scope } => secrets::list(&target, &app, scope, cli.json).await,
                SecretsCommand::Set { app, pairs, stdin, scope, redeploy } => {
                    if let (secrets::Target::Local(_), true) = (&target, redeploy) {
                        return Err(Failure::new(
                            "--redeploy needs slipd, which is not running",
                            Some("start slipd, then: slip redeploy <app>".into()),
                            exit::USAGE,
                        ));
                    }
                    let set = secrets::set(&target, &app, &pairs, stdin.as_deref(), scope, cli.json).await?;
                    match &target {
                        secrets::Target::Remote(client) if redeploy && set == exit::OK => {
                            let accepted = ops::redeploy(client, &app).await?;
                            let headline = format!(
                                "redeploy {} of {app}@{} {}",
                                accepted.deploy_id, accepted.tag, accepted.status
                            );
                            accepted_then_follow(client, &accepted, &headline, false, Duration::from_secs(900), out)
                                .await
                        }
                        _ => Ok(set),
                    }
                }
                SecretsCommand::Rm { app, keys, scope } => secrets::rm(&target, &app, &keys, scope).await,
            }
        }
        Command::Apps { command } => apps::run(&client, command, cli.json).await,
        Command::Rollback { app, to, wait: _, no_wait, wait_timeout } => {
            let accepted = apps::rollback(&client, &app, to.as_deref()).await?;
            let headline =
                format!("rollback {} of {app} to release {} {}", accepted.deploy_id, accepted.tag, accepted.status);
            accepted_then_follow(&client, &accepted, &headline, no_wait, wait_timeout, out).await
        }
        Command::Cancel { deploy_id } => ops::cancel(&client, &deploy_id, cli.json).await,
        Command::Redeploy { app, wait: _, no_wait, wait_timeout } => {
            let accepted = ops::redeploy(&client, &app).await?;
            let headline = format!("redeploy {} of {app}@{} {}", accepted.deploy_id, accepted.tag, accepted.status);
            accepted_then_follow(&client, &accepted, &headline, no_wait, wait_timeout, out).await
        }
        Command::Audit { limit, verify } => ops::audit(&client, limit, verify, cli.json).await,
        Command::Logs(args) => logs::run(&client, args, cli.json).await,
        Command::Reload => reload(&client, cli.json).await,
        Command::Version => version(&client, cli.json).await,
        Command::Validate(_) | Command::Init(_) => unreachable!("offline commands return above"),
        Command::GenSecret { bytes } => {
            let key: Vec<u8> = (0..bytes).map(|_| rand::random::<u8>()).collect();
            println!("{}", hex::encode(key));
            Ok(exit::OK)
        }
    }
}

/// `slip version`: the client's version, and the server's from `GET /v1/status` (shown only to an authenticated
/// caller); an unreachable or unauthenticated server is reported in the output, not as a failure.
async fn version(client: &Client, json: bool) -> Result<u8, Failure> {
    let mine = env!("CARGO_PKG_VERSION");
    let server: Result<Status, Failure> = client.get("/v1/status").await;
    let theirs = match &server {
        Ok(status) => status.version.clone().unwrap_or_else(|| "unknown (pass --token to see it)".into()),
        Err(failure) => format!("unknown ({})", failure.message),
    };
    if json {
        let server = server.ok().and_then(|s| s.version);
        println!("{}", serde_json::json!({ "client": mine, "server": server }));
    } else {
        println!("slip {mine}\nslipd {theirs}");
    }
    Ok(exit::OK)
}

/// `slip reload`: `POST /v1/config/reload`, then what changed.
async fn reload(client: &Client, json: bool) -> Result<u8, Failure> {
    let answer: serde_json::Value = client.post_admin("/v1/config/reload", &serde_json::json!({})).await?;
    if json {
        println!("{answer}");
        return Ok(exit::OK);
    }
    let names = |key: &str| -> String {
        let list: Vec<&str> = answer[key].as_array().into_iter().flatten().filter_map(|v| v.as_str()).collect();
        if list.is_empty() { "none".to_owned() } else { list.join(", ") }
    };
    println!("config reloaded: added {}; changed {}; removed {}", names("added"), names("changed"), names("removed"));
    Ok(exit::OK)
}

/// Prints an accepted deploy (or rollback): its JSON, its id alone with `--no-wait`, or `headline`; then,
/// unless `--no-wait`, follows it to its outcome.
async fn accepted_then_follow(
    client: &Client,
    accepted: &DeployAccepted,
    headline: &str,
    no_wait: bool,
    wait_timeout: Duration,
    out: Output,
) -> Result<u8, Failure> {
    if out.json {
        println!("{}", serde_json::to_string(accepted).unwrap_or_default());
    } else if no_wait {
        println!("{}", accepted.deploy_id);
    } else if !out.quiet {
        println!("{headline}");
    }
    if no_wait {
        return Ok(exit::OK);
    }
    follow::follow(client, &accepted.deploy_id, wait_timeout, out).await
}

/// `slip status [<app>]`.
async fn status(client: &Client, app: Option<&str>, json: bool) -> Result<u8, Failure> {
    let status: Status = client.get("/v1/status").await?;
    let apps = status.apps.clone().unwrap_or_default();
    let Some(name) = app else {
        if json {
            println!("{}", serde_json::to_string_pretty(&status).unwrap_or_default());
            return Ok(exit::OK);
        }
        let Some(version) = &status.version else {
            // An unauthenticated answer has no version and no apps: say so instead of an empty table.
            println!(
                "slipd · up {}s · caddy {} · runtime {} ({})",
                status.uptime_seconds, status.caddy, status.runtime, status.backend
            );
            eprintln!("apps are shown to the admin only\nhint: {}", client::ADMIN_TOKEN_HINT);
            return Ok(exit::OK);
        };
        println!(
            "slipd {version} · up {}s · caddy {} · runtime {} ({})",
            status.uptime_seconds, status.caddy, status.runtime, status.backend
        );
        if let Some(reason) = &status.caddy_error {
            println!("caddy: {reason}");
        }
        let mut table = Table::new(&["APP", "KIND", "STATUS", "TAG", "DEPLOYED", "PREVIEWS", "DRIFT"]);
        for (name, a) in &apps {
            table.row(vec![
                truncate(name, 30),
                a.kind.clone(),
                a.status.clone(),
                truncate(a.tag.as_deref().unwrap_or("-"), 30),
                a.deployed_at.clone().unwrap_or_else(|| "-".into()),
                a.previews.to_string(),
                if a.config_drift { "yes".into() } else { "no".into() },
            ]);
        }
        table.print();
        return Ok(exit::OK);
    };
    let Some(a) = apps.get(name) else {
        return Err(Failure {
            message: format!("no app {name:?} in the server config (apps/{name}.toml)"),
            hint: Some("slip status lists the apps".into()),
            exit_code: exit::API,
            code: Some("app_not_found".into()),
        });
    };
    let recent: DeployList = client.get_admin(&format!("/v1/deploys?app={}&limit=5", encode(name))).await?;
    if json {
        println!("{}", serde_json::json!({"app": name, "status": a, "recent_deploys": recent.deploys}));
        return Ok(exit::OK);
    }
    let dash = |v: Option<&str>| v.unwrap_or("-").to_owned();
    println!("app        {name} ({})", a.kind);
    println!("status     {}", a.status);
    println!("release    {} ({})", dash(a.tag.as_deref()), dash(a.deploy_id.as_deref()));
    println!("deployed   {}", dash(a.deployed_at.as_deref()));
    println!(
        "container  {} on port {}",
        dash(a.container_id.as_deref().map(short_id)),
        a.port.map(|p| p.to_string()).unwrap_or("-".into())
    );
    if let Some(p) = &a.previous {
        println!("previous   {} ({})", p.tag, p.deploy_id);
    }
    println!("drift      {}", if a.config_drift { "yes: config changed since this release" } else { "no" });
    println!();
    deploy_table(&recent.deploys).print();
    if let Some(last) = recent.deploys.first().filter(|d| matches!(d.status.as_str(), "failed" | "rolled_back")) {
        let last: Deploy = client.get_admin(&format!("/v1/deploys/{}", encode(&last.deploy_id))).await?;
        println!();
        println!(
            "last deploy {} {}: {}",
            last.deploy_id,
            last.status,
            last.error.as_deref().unwrap_or("no reason recorded")
        );
        for event in last.detail.iter().flat_map(|d| &d.events) {
            let mark = if event.kind == "warning" { "⚠ " } else { "" };
            print!("{}", follow::note_lines(mark, event.message.as_deref().unwrap_or("")));
        }
    }
    Ok(exit::OK)
}

/// A container id as Docker shows it: the first 12 hex digits of a 64-digit id; anything else unchanged.
fn short_id(id: &str) -> &str {
    if id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit()) { &id[..12] } else { id }
}

/// `slip history [<app>]`.
async fn history(
    client: &Client,
    app: Option<&str>,
    limit: u32,
    before: Option<&str>,
    previews: bool,
    json: bool,
) -> Result<u8, Failure> {
    let mut path = format!("/v1/deploys?limit={limit}");
    if !previews {
        path.push_str("&production=true");
    }
    if let Some(app) = app {
        path.push_str(&format!("&app={}", encode(app)));
    }
    if let Some(before) = before {
        path.push_str(&format!("&before={}", encode(before)));
    }
    let list: DeployList = client.get_admin(&path).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&list).unwrap_or_default());
        return Ok(exit::OK);
    }
    deploy_table(&list.deploys).print();
    if let Some(next) = list.next_before {
        eprintln!("(more: --before {next})");
    }
    Ok(exit::OK)
}

fn deploy_table(deploys: &[Deploy]) -> Table {
    let mut table = Table::new(&["ID", "APP", "TAG", "TRIGGER", "STATUS", "STARTED", "DURATION", "ERROR"]);
    for d in deploys {
        let duration = match (parse_rfc3339(&d.started_at), d.finished_at.as_deref().and_then(parse_rfc3339)) {
            (Some(a), Some(b)) => format!("{:.1}s", (b - a).max(0) as f64 / 1000.0),
            _ => "-".into(),
        };
        table.row(vec![
            d.deploy_id.clone(),
            truncate(&d.app, 24),
            truncate(&d.tag, 24),
            d.detail.as_ref().map(|x| x.trigger.clone()).unwrap_or_else(|| "-".into()),
            d.status.clone(),
            d.started_at.clone(),
            duration,
            truncate(d.error.as_deref().unwrap_or(""), 80),
        ]);
    }
    table
}

/// `K=V` arguments, collected as the caller needs (in order, or as a map); a missing `=` or an empty `K` is a
/// usage error naming the flag.
fn pairs<C: FromIterator<(String, String)>>(items: &[String], flag: &str) -> Result<C, Failure> {
    items
        .iter()
        .map(|item| match item.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
            _ => Err(Failure::new(format!("{flag} expects K=V, got {item:?}"), None, exit::USAGE)),
        })
        .collect()
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    slip_core::duration::parse(s).map_err(|e| e.to_string())
}

fn parse_scope(s: &str) -> Result<Scope, String> {
    s.parse::<Scope>().map_err(|e| e.to_string())
}
