//! Test harness for the `slip` binary: a real slipd booted in-process on a private config, storage, Caddy and
//! registry (the minimal parts of slip-daemon's `tests/it/support.rs`), a capture of everything slipd logs in
//! this process, and a way to run `slip` with a clean environment.

#![allow(dead_code)]

use std::io::Write;
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use slip_core::signature::{self, Signed};
use slip_testenv::caddy::Caddy;
use slip_testenv::{ContainerGuard, Registry, unique_id};
use tokio::sync::oneshot;

/// The global `auth.secret` in every test config.
pub const GLOBAL: &str = "global-secret-for-cli-tests-0123";

/// A unique app name for one test.
pub fn app_name(prefix: &str) -> String {
    format!("{prefix}-{}", &unique_id()[..8]).to_lowercase()
}

/// Everything slipd logged in this test process (all levels of slip's own crates), for leak checks.
pub fn captured_logs() -> String {
    String::from_utf8_lossy(&LOGS.get_or_init(Mutex::default).lock().unwrap()).into_owned()
}

/// Fails when `value` appears in slipd's captured log (which must hold slipd's start-up line, so an empty
/// capture cannot pass for a clean one).
pub fn assert_not_logged(value: &str) {
    let logs = captured_logs();
    assert!(logs.contains("slipd ready"), "the log capture is not working: {} bytes captured", logs.len());
    assert!(!logs.contains(value), "slipd logged a secret value");
}

static LOGS: OnceLock<Mutex<Vec<u8>>> = OnceLock::new();

/// Installs the capturing subscriber once per process: JSON lines, like slipd's own output, at trace level for
/// slip's crates and with bollard capped as slipd caps it.
fn capture_logs() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        let filter = tracing_subscriber::EnvFilter::new(format!(
            "info,slip_daemon=trace,slip_engine=trace,{}",
            slip_engine::docker::LOG_FILTER_DIRECTIVE
        ));
        let _ = tracing_subscriber::fmt().with_env_filter(filter).json().with_writer(|| LogWriter).try_init();
    });
}

struct LogWriter;

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        LOGS.get_or_init(Mutex::default).lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A server config in a temp directory: `config/slip.toml` (quick-start shape), `config/slip.env`,
/// `config/apps/*.toml`, and the storage directory `state/` (not created: slipd or `slip` create it).
pub struct Setup {
    pub dir: tempfile::TempDir,
    pub caddy: Caddy,
    pub registry: Registry,
    /// `runtime.port_range`, shared with no other live test daemon.
    pub ports: slip_testenv::PortRange,
}

impl Setup {
    /// A config whose `[auth]` is `secret = "${SLIP_SECRET}"` with `SLIP_SECRET` in `slip.env` (as the installer
    /// writes it), plus `extra_auth` lines, and the apps `apps(registry_host)` returns.
    pub fn new(apps: impl FnOnce(&str) -> Vec<(String, String)>, extra_auth: &str) -> Setup {
        slip_testenv::require_docker();
        capture_logs();
        let registry = Registry::start();
        let caddy = Caddy::start();
        let dir = tempfile::tempdir().expect("tempdir");
        let setup = Setup { dir, caddy, registry, ports: slip_testenv::PortRange::lease() };
        let config = setup.config_dir();
        std::fs::create_dir_all(config.join("apps")).unwrap();
        let slip_toml = format!(
            r#"[server]
listen = "127.0.0.1:7890"
shutdown_timeout = "10s"

[runtime]
backend = "docker"
port_range = "{}"

[auth]
secret = "${{SLIP_SECRET}}"  # global HMAC secret (per-app secrets override it)
{extra_auth}

[registry]
# ghcr_token = "${{GHCR_TOKEN}}"

[caddy]
admin_api = "{}"
listen = ["127.0.0.1:{}"]
tls = "off"
reconcile_interval = "1s"

[storage]
path = "{}"
"#,
            setup.ports.config_value(),
            setup.caddy.admin_url(),
            setup.caddy.http_port(),
            setup.storage().display(),
        );
        std::fs::write(config.join("slip.toml"), slip_toml).unwrap();
        let env = config.join("slip.env");
        std::fs::write(&env, format!("SLIP_SECRET={GLOBAL}\n")).unwrap();
        std::fs::set_permissions(&env, std::fs::Permissions::from_mode(0o640)).unwrap();
        for (name, body) in apps(&setup.registry.host()) {
            std::fs::write(config.join("apps").join(format!("{name}.toml")), body).unwrap();
        }
        setup
    }

    /// `config/`.
    pub fn config_dir(&self) -> PathBuf {
        self.dir.path().join("config")
    }

    /// `state/` (`storage.path`).
    pub fn storage(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    /// Boots slipd on this config.
    pub async fn start(&self, apps: &[&str]) -> Slipd {
        let config = slip_daemon::check::load(&self.config_dir()).expect("test config is valid");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(slip_daemon::run_at(self.config_dir(), config, listener, async move {
            let _ = rx.await;
        }));
        let slipd = Slipd {
            addr,
            http: reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap(),
            shutdown: Some(tx),
            task: Some(task),
            guards: apps.iter().map(|a| ContainerGuard::new("slip.app", a)).collect(),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(r) = slipd.http.get(slipd.url("/healthz")).send().await
                && r.status().is_success()
            {
                return slipd;
            }
            assert!(Instant::now() < deadline, "slipd did not answer /healthz within 30s");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Every file under the temp directory whose contents include `needle`, with its mode.
    pub fn files_containing(&self, needle: &str) -> Vec<(PathBuf, u32)> {
        files_containing(self.dir.path(), needle)
    }
}

/// A running in-process slipd. Dropping it stops slipd and removes the apps' containers.
pub struct Slipd {
    pub addr: SocketAddr,
    pub http: reqwest::Client,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    guards: Vec<ContainerGuard>,
}

impl Slipd {
    /// `http://<slipd>`.
    pub fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `http://<slipd><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Sends `{"app","tag"}` signed with `key` and a timestamp; returns the status and body.
    pub async fn webhook(&self, app: &str, tag: &str, key: &str) -> (u16, serde_json::Value) {
        let body = serde_json::json!({"app": app, "tag": tag}).to_string();
        let ts = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs().to_string();
        let sig = signature::header_value(key.as_bytes(), &Signed::Deploy { timestamp: &ts, body: body.as_bytes() });
        let response = self
            .http
            .post(self.url("/v1/deploy"))
            .header("content-type", "application/json")
            .header("x-slip-signature", sig)
            .header("x-slip-timestamp", ts)
            .body(body)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(serde_json::Value::Null))
    }

    /// A request with the admin token `token`; returns status and body text.
    pub async fn admin(&self, method: reqwest::Method, path: &str, token: &str, body: Option<&str>) -> (u16, String) {
        let mut request = self.http.request(method, self.url(path)).bearer_auth(token);
        if let Some(body) = body {
            request = request.header("content-type", "application/json").body(body.to_owned());
        }
        let response = request.send().await.unwrap();
        (response.status().as_u16(), response.text().await.unwrap())
    }

    /// Stops slipd gracefully.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            let result = tokio::time::timeout(Duration::from_secs(60), task).await;
            assert!(matches!(result, Ok(Ok(Ok(())))), "slipd did not stop cleanly: {result:?}");
        }
    }
}

impl Drop for Slipd {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.abort();
        }
        for g in &self.guards {
            let _ = g.remove_all();
        }
    }
}

/// The result of one `slip` run.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// Both streams, for assertion messages and leak checks.
    pub fn all(&self) -> String {
        format!("exit {}\n--- stdout\n{}--- stderr\n{}", self.code, self.stdout, self.stderr)
    }
}

/// Runs the `slip` binary with `args`, only the `SLIP_*` variables in `env` (none inherited), and `stdin`.
/// Runs on a blocking thread so an in-process slipd keeps serving meanwhile.
pub async fn slip(args: &[&str], env: &[(&str, &str)], stdin: Option<&str>) -> Run {
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    let env: Vec<(String, String)> = env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
    let stdin = stdin.map(str::to_owned);
    tokio::task::spawn_blocking(move || {
        let mut command = Command::new(env!("CARGO_BIN_EXE_slip"));
        command.args(&args).env_clear().env("PATH", std::env::var("PATH").unwrap_or_default());
        for (k, v) in &env {
            command.env(k, v);
        }
        command.stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() });
        command.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = command.spawn().expect("running slip");
        if let Some(input) = stdin {
            child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
        }
        let Output { status, stdout, stderr } = child.wait_with_output().unwrap();
        Run {
            code: status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&stdout).into_owned(),
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
        }
    })
    .await
    .unwrap()
}

/// Fails the test when something answers on slip's default address: local mode needs it silent.
pub fn require_default_address_free() {
    if std::net::TcpStream::connect_timeout(&"127.0.0.1:7890".parse().unwrap(), Duration::from_millis(300)).is_ok() {
        panic!("something listens on 127.0.0.1:7890; the local-mode tests need slip's default address to be free");
    }
}

/// A web app config for `name` with image `<registry>/<name>`.
pub fn web_app(name: &str, registry: &str) -> String {
    format!(
        r#"[app]
name = "{name}"
image = "{registry}/{name}"

[routing]
domain = "{name}.test"
port = 8080

[health]
path = "/health"
interval = "200ms"
timeout = "2s"
retries = 3
start_period = "1s"

[deploy]
strategy = "blue-green"
drain_timeout = "2s"
stop_grace = "2s"
"#
    )
}

/// Every file under `dir` whose contents include `needle`, with its permission bits.
pub fn files_containing(dir: &Path, needle: &str) -> Vec<(PathBuf, u32)> {
    let mut out = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(d) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else { continue };
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(meta) = std::fs::symlink_metadata(&path) else { continue };
            if meta.is_dir() {
                pending.push(path);
            } else if meta.is_file()
                && let Ok(bytes) = std::fs::read(&path)
                && bytes.windows(needle.len()).any(|w| w == needle.as_bytes())
            {
                out.push((path, meta.permissions().mode() & 0o777));
            }
        }
    }
    out.sort();
    out
}

/// Every path under `dir`, sorted (names only).
pub fn tree(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(d) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else { continue };
        for entry in entries.flatten() {
            let path = entry.path();
            out.push(path.strip_prefix(dir).unwrap().display().to_string());
            if path.is_dir() {
                pending.push(path);
            }
        }
    }
    out.sort();
    out
}

/// The permission bits of `path`.
pub fn mode(path: &Path) -> u32 {
    std::fs::symlink_metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).permissions().mode() & 0o777
}
