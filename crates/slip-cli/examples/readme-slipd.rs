//! `slipd` itself (`slip_daemon::cli::main`, all the real binary's `main` does), built beside the `slip` binary
//! whenever slip-cli's tests are, so the README walk in `tests/it/readme.rs` can run both as a user would.

fn main() -> std::process::ExitCode {
    slip_daemon::cli::main()
}
