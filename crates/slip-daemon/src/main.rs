//! `slipd`: everything is in [`slip_daemon::cli`].

fn main() -> std::process::ExitCode {
    slip_daemon::cli::main()
}
