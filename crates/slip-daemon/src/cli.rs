//! The `slipd` command line: flags, `--check`, `--gen-key`, `--rotate-key`, and serving until SIGTERM/SIGINT. The binary's
//! `main` only calls [`main`], so an example or a test harness can run exactly what `slipd` runs.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;

/// slip's deploy daemon.
#[derive(Debug, Parser)]
#[command(name = "slipd", version, about = "Zero-downtime container deploys from CI, without Kubernetes")]
struct Args {
    /// Config directory (slip.toml + apps/*.toml) or the slip.toml file itself.
    #[arg(long, env = "SLIP_CONFIG", default_value = "/etc/slip")]
    config: PathBuf,
    /// Validate the configuration, print every problem, and exit (0 valid, 1 invalid).
    #[arg(long)]
    check: bool,
    /// Write a new key for encrypting secrets at rest (`secrets.key_file`) to PATH, created with mode 0600 (never
    /// overwriting), and exit.
    #[arg(long, value_name = "PATH", conflicts_with = "check")]
    gen_key: Option<PathBuf>,
    /// Re-encrypt the secret store under a new key written to `secrets.key_file`, with slipd stopped, and exit.
    /// Interrupted at any point, every secret stays readable; running it again finishes the rotation.
    #[arg(long, conflicts_with_all = ["check", "gen_key"])]
    rotate_key: bool,
}

/// What `slipd` does with its command line; the process exit code.
pub fn main() -> ExitCode {
    let args = Args::parse();
    if let Some(path) = &args.gen_key {
        return gen_key(path);
    }
    if args.rotate_key {
        return crate::rotate_key::main(&args.config);
    }
    if args.check {
        let (output, code) = crate::check::check(&args.config);
        print!("{output}");
        return ExitCode::from(code as u8);
    }
    match serve(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

#[tokio::main]
async fn serve(args: Args) -> anyhow::Result<()> {
    let (config, sources, warnings) = crate::check::load_with_sources(&args.config)?;
    crate::logging::init(&config);
    crate::check::log_warnings(&warnings);
    let listener = tokio::net::TcpListener::bind(config.server.listen.to_string())
        .await
        .with_context(|| format!("binding the API listener on {} (server.listen)", config.server.listen))?;
    crate::run_loaded(args.config, config, sources, listener, shutdown_signal()).await
}

/// `slipd --gen-key PATH`: writes the key, then says what to add to slip.toml.
fn gen_key(path: &std::path::Path) -> ExitCode {
    match slip_engine::secrets::MasterKey::create_file(path) {
        Ok(key) => {
            let path = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
            println!("wrote a new secrets key (id {}) to {} (mode 0600)", key.id(), path.display());
            println!("add to slip.toml, then restart slipd:\n\n[secrets]\nkey_file = {:?}", path.display().to_string());
            println!(
                "\nthe file must be readable by slipd's user; keep a copy off this host: without it the secrets cannot be read"
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {:#}", anyhow::Error::from(e));
            ExitCode::FAILURE
        }
    }
}

/// Resolves on SIGTERM or SIGINT.
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("installing the SIGTERM handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
