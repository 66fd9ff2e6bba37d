//! Running the engines' command-line clients and turning failures into readable panics.
//!
//! Only the harness uses this; it does not retry, parse output beyond trimming it, or hide stderr.

use std::ffi::OsStr;
use std::io::Write;
use std::process::{Command, Stdio};

/// Runs `program args…`, optionally feeding `stdin`, and returns its trimmed stdout.
///
/// Panics when the program cannot be started or exits non-zero, quoting its stderr. `shown` is what the panic
/// message calls the command; it lets callers keep secrets passed on stdin out of messages.
#[track_caller]
pub(crate) fn run<I, S>(program: &str, args: I, stdin: Option<&[u8]>, shown: &str) -> String
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    match try_run(program, args, stdin) {
        Ok(stdout) => stdout,
        Err(Failure::NotStarted(error)) => {
            panic!("cannot run `{shown}`: {error} (is {program} installed? run `sudo scripts/setup.sh --dev`)")
        }
        Err(Failure::Exited { status, stderr }) => panic!("`{shown}` failed ({status}): {}", stderr.trim()),
    }
}

/// Why a command did not succeed.
pub(crate) enum Failure {
    /// The program could not be started at all (usually: not installed).
    NotStarted(std::io::Error),
    /// The program ran and exited unsuccessfully.
    Exited { status: std::process::ExitStatus, stderr: String },
}

/// Runs `program args…` and returns its trimmed stdout, or why it failed; never panics.
pub(crate) fn try_run<I, S>(program: &str, args: I, stdin: Option<&[u8]>) -> Result<String, Failure>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut command = Command::new(program);
    command
        .args(args)
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn().map_err(Failure::NotStarted)?;
    if let Some(input) = stdin {
        // Dropping the handle at the end of this block closes the pipe, so the program sees end of input.
        let mut pipe = child.stdin.take().expect("stdin was requested as a pipe");
        pipe.write_all(input).map_err(Failure::NotStarted)?;
    }
    let output = child.wait_with_output().map_err(Failure::NotStarted)?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
    } else {
        Err(Failure::Exited { status: output.status, stderr: String::from_utf8_lossy(&output.stderr).into_owned() })
    }
}
