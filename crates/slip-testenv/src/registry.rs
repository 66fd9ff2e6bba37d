//! A real image registry (`docker-registry`, distribution 2.8) on a free loopback port, one per test.
//!
//! Docker treats `127.0.0.0/8` registries as insecure by default, so no TLS is involved. Storage, config, the
//! htpasswd file and the Docker client config used to log in all live in one temporary directory that disappears
//! with the [`Registry`]. Podman trusts plain-HTTP registries on 127.0.0.1 through the
//! `/etc/containers/registries.conf.d` entry `scripts/setup.sh --dev` writes; this module does not configure it.

use std::fmt;
use std::fs;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::cmd;
use crate::image::Image;
use crate::wait::free_port;

/// The registry binary installed by the `docker-registry` package.
pub const REGISTRY_BINARY: &str = "docker-registry";

/// How long a starting registry may take to accept connections.
const START_TIMEOUT: Duration = Duration::from_secs(15);

/// How many fresh ports [`Registry::start`] tries when another process takes the one it picked.
const PORT_ATTEMPTS: usize = 5;

/// A running `docker-registry serve` process; dropping it kills the process and deletes its storage.
#[derive(Debug)]
pub struct Registry {
    dir: TempDir,
    port: u16,
    auth: Option<Credentials>,
    /// `None` between [`Registry::stop`] and [`Registry::start_again`].
    process: Option<Child>,
    /// Set once `docker login` has stored the credentials in this registry's own client config.
    logged_in: OnceLock<()>,
}

/// What [`Registry::push_with_digest`] pushed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pushed {
    /// `127.0.0.1:PORT/repo:tag`.
    pub reference: String,
    /// The manifest digest the registry reported, `sha256:<64 hex>`.
    pub digest: String,
}

impl Registry {
    /// Starts a registry without authentication and waits until it accepts connections.
    #[track_caller]
    pub fn start() -> Registry {
        Registry::launch(None)
    }

    /// Starts a registry that requires HTTP basic auth with `user` and `password` (bcrypt htpasswd).
    ///
    /// Pushes log in with a private Docker client config, so the machine's `~/.docker/config.json` is untouched
    /// and pulls by other clients still need the credentials.
    #[track_caller]
    pub fn start_with_auth(user: &str, password: &str) -> Registry {
        assert!(!user.is_empty() && !user.contains(':'), "registry user {user:?} must be non-empty and contain no `:`");
        assert!(!password.is_empty(), "registry password must not be empty");
        Registry::launch(Some(Credentials { user: user.to_owned(), password: password.to_owned() }))
    }

    /// `127.0.0.1:PORT`, the registry part of image references.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `http://127.0.0.1:PORT`, for talking to the registry API directly.
    pub fn url(&self) -> String {
        format!("http://{}", self.host())
    }

    /// The `(user, password)` this registry requires, if it was started with [`Registry::start_with_auth`].
    pub fn credentials(&self) -> Option<(&str, &str)> {
        self.auth.as_ref().map(|auth| (auth.user.as_str(), auth.password.as_str()))
    }

    /// Builds `image` if needed, pushes it as `repo:tag` and returns the reference `127.0.0.1:PORT/repo:tag`.
    ///
    /// The reference's local tag is removed again after the push, so whoever runs it really pulls from this
    /// registry (the image's layers stay cached locally under its build tag).
    #[track_caller]
    pub fn push(&self, image: &Image, repo: &str, tag: &str) -> String {
        self.push_with_digest(image, repo, tag).reference
    }

    /// Like [`Registry::push`], also returning the manifest digest, for tests that pin `repo@sha256:…`.
    #[track_caller]
    pub fn push_with_digest(&self, image: &Image, repo: &str, tag: &str) -> Pushed {
        assert!(self.process.is_some(), "registry {} is stopped: call start_again() before pushing", self.host());
        let local = image.build();
        let reference = format!("{}/{repo}:{tag}", self.host());
        cmd::run("docker", ["tag", &local, &reference], None, &format!("docker tag {local} {reference}"));
        let mut args = Vec::new();
        if self.auth.is_some() {
            self.log_in();
            args.extend(["--config".to_owned(), self.client_config_dir().display().to_string()]);
        }
        args.extend(["push".to_owned(), reference.clone()]);
        let output = cmd::try_run("docker", &args, None);
        // Untag before judging the push, so a failed push leaves no stray local tag behind either.
        cmd::run("docker", ["image", "rm", &reference], None, &format!("docker image rm {reference}"));
        let output = match output {
            Ok(output) => output,
            Err(cmd::Failure::NotStarted(error)) => panic!("cannot run `docker push {reference}`: {error}"),
            Err(cmd::Failure::Exited { status, stderr }) => {
                panic!("`docker push {reference}` failed ({status}): {}", stderr.trim())
            }
        };
        let digest = output
            .lines()
            .filter_map(|line| line.split_once("digest: ").map(|(_, rest)| rest))
            .filter_map(|rest| rest.split_whitespace().next())
            .find(|digest| digest.starts_with("sha256:"))
            .unwrap_or_else(|| panic!("`docker push {reference}` printed no digest:\n{output}"))
            .to_owned();
        Pushed { reference, digest }
    }

    /// Stops the registry process, keeping its storage and port, e.g. to show a deploy works from a retained image.
    pub fn stop(&mut self) {
        if let Some(mut process) = self.process.take() {
            // Killing an already exited child is harmless; the wait reaps it either way.
            let _ = process.kill();
            let _ = process.wait();
        }
    }

    /// Starts the registry again on the same port with the same storage and credentials; a no-op while running.
    #[track_caller]
    pub fn start_again(&mut self) {
        if self.process.is_none() {
            match spawn_and_wait(self.dir.path(), self.port) {
                Ok(process) => self.process = Some(process),
                Err(reason) => panic!("cannot restart the registry on {}: {reason}", self.host()),
            }
        }
    }

    /// Whether the registry process is running (it has not been stopped and has not exited).
    pub fn is_running(&mut self) -> bool {
        self.process.as_mut().is_some_and(|process| matches!(process.try_wait(), Ok(None)))
    }

    #[track_caller]
    fn launch(auth: Option<Credentials>) -> Registry {
        let dir = tempfile::tempdir().unwrap_or_else(|error| panic!("cannot create a registry directory: {error}"));
        if let Some(auth) = &auth {
            let line = cmd::run(
                "htpasswd",
                ["-n", "-i", "-B", &auth.user],
                Some(auth.password.as_bytes()),
                &format!("htpasswd -niB {}", auth.user),
            );
            fs::write(dir.path().join("htpasswd"), format!("{line}\n"))
                .unwrap_or_else(|error| panic!("cannot write the registry's htpasswd file: {error}"));
        }
        let mut failures = Vec::new();
        for _ in 0..PORT_ATTEMPTS {
            let port = free_port();
            write_config(dir.path(), port, auth.is_some());
            match spawn_and_wait(dir.path(), port) {
                Ok(process) => {
                    return Registry { dir, port, auth, process: Some(process), logged_in: OnceLock::new() };
                }
                Err(reason) => failures.push(format!("port {port}: {reason}")),
            }
        }
        panic!("cannot start {REGISTRY_BINARY} after {PORT_ATTEMPTS} attempts:\n{}", failures.join("\n"));
    }

    /// Untags every local image named after this registry (pulled by a test or by the code under test) in Docker
    /// and, when it is installed, in Podman, so local tags of dead registries do not pile up. Best effort: failures
    /// only print a line.
    fn forget_local_copies(&self) {
        self.forget_local_copies_in("docker");
        if cmd::try_run("podman", ["--version"], None).is_ok() {
            self.forget_local_copies_in("podman");
        }
    }

    fn forget_local_copies_in(&self, program: &str) {
        let prefix = format!("{}/", self.host());
        let listing = match cmd::try_run(
            program,
            ["image", "ls", "--digests", "--format", "{{.Repository}} {{.Tag}} {{.Digest}}"],
            None,
        ) {
            Ok(listing) => listing,
            Err(_) => return,
        };
        let references: Vec<String> = listing
            .lines()
            .filter_map(|line| {
                let mut fields = line.split(' ');
                let (repository, tag, digest) = (fields.next()?, fields.next()?, fields.next()?);
                if !repository.starts_with(&prefix) {
                    None
                } else if tag != "<none>" {
                    Some(format!("{repository}:{tag}"))
                } else {
                    (digest != "<none>").then(|| format!("{repository}@{digest}"))
                }
            })
            .collect();
        if references.is_empty() {
            return;
        }
        let args = ["image", "rm", "--force"].into_iter().map(str::to_owned).chain(references);
        if cmd::try_run(program, args, None).is_err() {
            eprintln!("slip-testenv: could not untag {program}'s local images of registry {}", self.host());
        }
    }

    fn client_config_dir(&self) -> PathBuf {
        self.dir.path().join("docker-client")
    }

    #[track_caller]
    fn log_in(&self) {
        let auth = self.auth.as_ref().expect("only registries with auth log in");
        self.logged_in.get_or_init(|| {
            let config = self.client_config_dir();
            fs::create_dir_all(&config).unwrap_or_else(|error| panic!("cannot create {}: {error}", config.display()));
            let host = self.host();
            let config = config.display().to_string();
            let args = ["--config", &config, "login", "--username", &auth.user, "--password-stdin", &host];
            cmd::run("docker", args, Some(auth.password.as_bytes()), &format!("docker login {host}"));
        });
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.stop();
        self.forget_local_copies();
    }
}

/// A registry user and password; `Debug` never shows the password.
struct Credentials {
    user: String,
    password: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials").field("user", &self.user).field("password", &"<redacted>").finish()
    }
}

fn write_config(dir: &Path, port: u16, auth: bool) {
    let storage = dir.join("storage");
    let auth = if auth {
        format!("auth:\n  htpasswd:\n    realm: slip-testenv\n    path: {}\n", dir.join("htpasswd").display())
    } else {
        String::new()
    };
    let config = format!(
        "version: 0.1\n\
         log:\n  level: warn\n  accesslog:\n    disabled: true\n\
         storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n\
         http:\n  addr: 127.0.0.1:{port}\n  secret: slip-testenv-not-a-secret\n\
         {auth}",
        storage.display()
    );
    fs::write(dir.join("config.yml"), config)
        .unwrap_or_else(|error| panic!("cannot write the registry config: {error}"));
}

/// Starts `docker-registry serve` with the config in `dir` and waits until `port` accepts connections.
fn spawn_and_wait(dir: &Path, port: u16) -> Result<Child, String> {
    let log_path = dir.join("registry.log");
    let log = fs::File::create(&log_path).map_err(|error| format!("cannot create {}: {error}", log_path.display()))?;
    let log_err = log.try_clone().map_err(|error| error.to_string())?;
    let mut process = Command::new(REGISTRY_BINARY)
        .arg("serve")
        .arg(dir.join("config.yml"))
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_err)
        .spawn()
        .map_err(|error| format!("cannot run {REGISTRY_BINARY} ({error}): run `sudo scripts/setup.sh --dev`"))?;
    let address = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if let Ok(Some(status)) = process.try_wait() {
            let log = fs::read_to_string(&log_path).unwrap_or_default();
            return Err(format!("{REGISTRY_BINARY} exited ({status}): {}", log.trim()));
        }
        if answers_as_registry(address) {
            return Ok(process);
        }
        if Instant::now() >= deadline {
            let _ = process.kill();
            let _ = process.wait();
            let log = fs::read_to_string(&log_path).unwrap_or_default();
            return Err(format!("not listening on {address} after {START_TIMEOUT:?}: {}", log.trim()));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// True when `GET /v2/` on `address` is answered by a registry (it sends `Docker-Distribution-Api-Version`).
///
/// Checking the header, not just the connection, catches another process holding the port we picked.
fn answers_as_registry(address: SocketAddr) -> bool {
    let timeout = Duration::from_millis(500);
    let Ok(mut stream) = TcpStream::connect_timeout(&address, timeout) else {
        return false;
    };
    let request = format!("GET /v2/ HTTP/1.0\r\nHost: {address}\r\n\r\n");
    let mut answer = Vec::new();
    let exchanged = stream.set_read_timeout(Some(timeout)).is_ok()
        && stream.write_all(request.as_bytes()).is_ok()
        && stream.read_to_end(&mut answer).is_ok();
    exchanged && String::from_utf8_lossy(&answer).to_ascii_lowercase().contains("\r\ndocker-distribution-api-version:")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_hides_the_password() {
        let credentials = Credentials { user: "ci".into(), password: "hunter2".into() };
        let shown = format!("{credentials:?}");
        assert!(shown.contains("ci") && !shown.contains("hunter2"), "{shown}");
    }
}
