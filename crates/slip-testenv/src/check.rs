//! Gates for tests that need a real container engine: they pass or panic with the command that fixes things.
//!
//! These never skip a test and never start an engine themselves; starting services is `scripts/setup.sh`'s job.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

/// The Docker engine's API socket that slip and these tests use.
pub const DOCKER_SOCKET: &str = "/var/run/docker.sock";

/// The Podman API socket started by `scripts/setup.sh --dev`.
pub const PODMAN_SOCKET: &str = "/run/podman/podman.sock";

/// How long an engine may take to answer `/_ping` before it counts as unreachable.
const PING_TIMEOUT: Duration = Duration::from_secs(5);

/// Panics unless the Docker engine answers `GET /_ping` on [`DOCKER_SOCKET`].
///
/// Call it first in every test that uses Docker, so an unreachable engine fails the test with a fix, rather than
/// with a confusing error from deep inside the code under test.
#[track_caller]
pub fn require_docker() {
    if let Err(reason) = ping(Path::new(DOCKER_SOCKET)) {
        panic!("Docker engine unreachable at {DOCKER_SOCKET} ({reason}): run `sudo scripts/setup.sh --dev`");
    }
}

/// Panics unless the Podman API service answers `GET /_ping` on [`PODMAN_SOCKET`].
///
/// The service is `podman system service --time=0 unix:///run/podman/podman.sock`, which
/// `scripts/setup.sh --dev` starts.
#[track_caller]
pub fn require_podman() {
    if let Err(reason) = ping(Path::new(PODMAN_SOCKET)) {
        panic!(
            "Podman API unreachable at {PODMAN_SOCKET} ({reason}): run `sudo scripts/setup.sh --dev`, or start it \
             with `podman system service --time=0 unix://{PODMAN_SOCKET} &`"
        );
    }
}

/// Sends `GET /_ping` over the engine's Unix socket and says why the answer is not `200 OK`.
///
/// This is the whole of the engine API the harness speaks directly: one request, HTTP/1.0 so the engine closes
/// the connection and the answer can be read to its end.
fn ping(socket: &Path) -> Result<(), String> {
    let mut stream = UnixStream::connect(socket).map_err(|error| format!("cannot connect: {error}"))?;
    stream.set_read_timeout(Some(PING_TIMEOUT)).map_err(|error| error.to_string())?;
    stream.set_write_timeout(Some(PING_TIMEOUT)).map_err(|error| error.to_string())?;
    stream
        .write_all(b"GET /_ping HTTP/1.0\r\nHost: engine\r\n\r\n")
        .map_err(|error| format!("cannot send a ping: {error}"))?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).map_err(|error| format!("no answer to a ping: {error}"))?;
    let answer = String::from_utf8_lossy(&answer);
    let status_line = answer.lines().next().unwrap_or_default();
    if status_line.split_whitespace().nth(1) == Some("200") {
        Ok(())
    } else {
        Err(format!("ping answered {status_line:?}, expected HTTP 200"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ping_reports_a_missing_socket() {
        let dir = tempfile::tempdir().unwrap();
        let error = ping(&dir.path().join("absent.sock")).unwrap_err();
        assert!(error.starts_with("cannot connect:"), "{error}");
    }
}
