//! `TestDaemon`: boots slipd on a private config, storage dir, Caddy and registry, and cleans up
//! every container it created when dropped (even when the test panicked).

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use slip_api::{Deploy, DeployAccepted};
use slip_core::signature::{self, Signed};
pub use slip_testenv::Engine;
use slip_testenv::caddy::Caddy;
use slip_testenv::{ContainerGuard, Registry, unique_id};
use tokio::sync::oneshot;

/// The global webhook key in every test config.
pub const SECRET: &str = "test-global-secret-0123456789";
/// The admin token in every test config.
pub const TOKEN: &str = "test-admin-token-0123456789";

/// A running slipd with its own Caddy and registry, on one container engine.
pub struct TestDaemon {
    /// The engine slipd runs containers on: Docker (`backend = "docker"`), or Podman (`backend = "auto"`, which picks
    /// Podman on a machine that runs both, as users get it).
    pub engine: Engine,
    pub dir: tempfile::TempDir,
    pub caddy: Caddy,
    pub registry: Registry,
    /// `runtime.port_range`, shared with no other live test daemon (kept across restarts).
    pub ports: slip_testenv::PortRange,
    pub addr: SocketAddr,
    pub http: reqwest::Client,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    guards: Vec<ContainerGuard>,
    extra_slip_toml: String,
    apps: Vec<(String, String)>,
}

/// A unique app name for one test, so parallel tests never share labels or Caddy ids.
pub fn app_name(prefix: &str) -> String {
    format!("{prefix}-{}", &unique_id()[..8]).to_lowercase()
}

impl TestDaemon {
    /// Boots slipd on Docker with the apps `apps(registry_host)` returns (name, TOML body) and extra `slip.toml`
    /// text.
    pub async fn start(apps: impl FnOnce(&str) -> Vec<(String, String)>, extra_slip_toml: &str) -> TestDaemon {
        TestDaemon::start_on(Engine::Docker, apps, extra_slip_toml).await
    }

    /// Like [`TestDaemon::start`], on `engine`.
    pub async fn start_on(
        engine: Engine,
        apps: impl FnOnce(&str) -> Vec<(String, String)>,
        extra_slip_toml: &str,
    ) -> TestDaemon {
        TestDaemon::start_with_storage_on(engine, |registry, _| apps(registry), extra_slip_toml).await
    }

    /// Like [`TestDaemon::start`], but `apps` also gets the storage directory (`storage.path`, not yet created),
    /// for app configs that name paths under it, such as volumes under `<storage>/volumes`.
    pub async fn start_with_storage(
        apps: impl FnOnce(&str, &std::path::Path) -> Vec<(String, String)>,
        extra_slip_toml: &str,
    ) -> TestDaemon {
        TestDaemon::start_with_storage_on(Engine::Docker, apps, extra_slip_toml).await
    }

    /// Like [`TestDaemon::start_with_storage`], on `engine`.
    pub async fn start_with_storage_on(
        engine: Engine,
        apps: impl FnOnce(&str, &std::path::Path) -> Vec<(String, String)>,
        extra_slip_toml: &str,
    ) -> TestDaemon {
        TestDaemon::start_full(engine, Caddy::start(), apps, extra_slip_toml).await
    }

    /// Like [`TestDaemon::start`], with `caddy` (one started from a user's Caddyfile, say) instead of an empty one.
    /// slip's `caddy.listen` is `127.0.0.1:<caddy.http_port()>`.
    pub async fn start_beside(
        caddy: Caddy,
        apps: impl FnOnce(&str) -> Vec<(String, String)>,
        extra_slip_toml: &str,
    ) -> TestDaemon {
        TestDaemon::start_full(Engine::Docker, caddy, |registry, _| apps(registry), extra_slip_toml).await
    }

    async fn start_full(
        engine: Engine,
        caddy: Caddy,
        apps: impl FnOnce(&str, &std::path::Path) -> Vec<(String, String)>,
        extra_slip_toml: &str,
    ) -> TestDaemon {
        require_engine(engine);
        let registry = Registry::start();
        let dir = tempfile::tempdir().expect("tempdir");
        let apps = apps(&registry.host(), &dir.path().join("state"));
        let mut daemon = TestDaemon {
            engine,
            ports: slip_testenv::PortRange::lease(),
            dir,
            caddy,
            registry,
            addr: "127.0.0.1:0".parse().unwrap(),
            http: reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap(),
            shutdown: None,
            task: None,
            guards: apps.iter().map(|(name, _)| ContainerGuard::for_engine(engine, "slip.app", name)).collect(),
            extra_slip_toml: extra_slip_toml.to_owned(),
            apps,
        };
        daemon.write_config();
        daemon.boot().await;
        let backend = daemon.status().await["backend"].clone();
        assert_eq!(backend, engine.program(), "slipd runs its containers on {engine:?}");
        daemon
    }

    /// The config directory.
    pub fn config_dir(&self) -> PathBuf {
        self.dir.path().join("config")
    }

    /// The state directory.
    pub fn storage(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    fn write_config(&self) {
        let config = self.config_dir();
        std::fs::create_dir_all(config.join("apps")).unwrap();
        let slip_toml = format!(
            r#"[server]
listen = "127.0.0.1:7890"
shutdown_timeout = "20s"

[runtime]
backend = "{}"
port_range = "{}"

[auth]
secret = "{SECRET}"
admin_token = "{TOKEN}"

[caddy]
admin_api = "{}"
listen = ["127.0.0.1:{}"]
tls = "off"
reconcile_interval = "1s"

[storage]
path = "{}"

{}
"#,
            backend(self.engine),
            self.ports.config_value(),
            self.caddy.admin_url(),
            self.caddy.http_port(),
            self.storage().display(),
            self.extra_slip_toml
        );
        std::fs::write(config.join("slip.toml"), slip_toml).unwrap();
        for (name, body) in &self.apps {
            std::fs::write(config.join("apps").join(format!("{name}.toml")), body).unwrap();
        }
    }

    async fn boot(&mut self) {
        let config = slip_daemon::check::load(&self.config_dir()).expect("test config is valid");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        self.addr = listener.local_addr().unwrap();
        let (tx, rx) = oneshot::channel::<()>();
        self.shutdown = Some(tx);
        self.task = Some(tokio::spawn(slip_daemon::run_at(self.config_dir(), config, listener, async move {
            let _ = rx.await;
        })));
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(r) = self.http.get(self.url("/healthz")).send().await
                && r.status().is_success()
            {
                return;
            }
            if self.task.as_ref().is_some_and(|t| t.is_finished()) {
                let result = self.task.take().unwrap().await;
                panic!("slipd exited during boot: {result:?}");
            }
            assert!(Instant::now() < deadline, "slipd did not answer /healthz within 30s");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Gracefully stops slipd and waits for it.
    pub async fn stop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            let result = tokio::time::timeout(Duration::from_secs(90), task).await;
            match result {
                Ok(Ok(Ok(()))) => {}
                other => panic!("slipd did not stop cleanly: {other:?}"),
            }
        }
    }

    /// Stops and starts slipd again on the same config and state.
    pub async fn restart(&mut self) {
        self.stop().await;
        self.write_config();
        self.boot().await;
    }

    /// `http://<slipd>/<path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Sends a deploy webhook signed with `key` and a timestamp; returns status and JSON body.
    pub async fn webhook(&self, app: &str, tag: &str, key: &str) -> (u16, serde_json::Value) {
        let body = serde_json::json!({"app": app, "tag": tag}).to_string();
        let ts = unix_seconds().to_string();
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

    /// Sends `body` as a deploy webhook signed with the test key and a timestamp, and waits for a terminal status.
    pub async fn deploy_body_and_wait(&self, body: serde_json::Value) -> Deploy {
        let body = body.to_string();
        let ts = unix_seconds().to_string();
        let sig = signature::header_value(SECRET.as_bytes(), &Signed::Deploy { timestamp: &ts, body: body.as_bytes() });
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
        assert_eq!(response.status().as_u16(), 202);
        let accepted: DeployAccepted = response.json().await.unwrap();
        self.wait_deploy(&accepted.deploy_id, Duration::from_secs(180)).await
    }

    /// Sends a signed deploy and returns the 202 answer.
    pub async fn deploy(&self, app: &str, tag: &str) -> DeployAccepted {
        let (status, body) = self.webhook(app, tag, SECRET).await;
        assert_eq!(status, 202, "webhook answer: {body}");
        serde_json::from_value(body).unwrap()
    }

    /// The app's newest deploy, from `GET /v1/deploys?app=&limit=1`.
    pub async fn newest_deploy(&self, app: &str) -> slip_api::Deploy {
        let url = self.url(&format!("/v1/deploys?app={app}&limit=1"));
        let list: slip_api::DeployList =
            self.http.get(url).bearer_auth(TOKEN).send().await.unwrap().json().await.unwrap();
        list.deploys.into_iter().next().expect("the app has a deploy")
    }

    /// Deploys and waits for a terminal status.
    pub async fn deploy_and_wait(&self, app: &str, tag: &str) -> Deploy {
        let accepted = self.deploy(app, tag).await;
        self.wait_deploy(&accepted.deploy_id, Duration::from_secs(120)).await
    }

    /// Deploys signed with `key` (an app's own key) and waits for a terminal status.
    pub async fn deploy_with_key_and_wait(&self, app: &str, tag: &str, key: &str) -> Deploy {
        let (status, body) = self.webhook(app, tag, key).await;
        assert_eq!(status, 202, "webhook answer: {body}");
        let accepted: DeployAccepted = serde_json::from_value(body).unwrap();
        self.wait_deploy(&accepted.deploy_id, Duration::from_secs(120)).await
    }

    /// Stores an app-scope secret through `PUT /v1/secrets/{app}/{key}` with the admin token.
    pub async fn put_secret(&self, app: &str, key: &str, value: &str) {
        let r = self
            .http
            .put(self.url(&format!("/v1/secrets/{app}/{key}")))
            .bearer_auth(TOKEN)
            .json(&serde_json::json!({ "value": value }))
            .send()
            .await
            .unwrap();
        let status = r.status();
        assert!(status.is_success(), "PUT secret {app}/{key}: {status} {}", r.text().await.unwrap_or_default());
    }

    /// The deploy object (admin view).
    pub async fn get_deploy(&self, id: &str) -> Deploy {
        let r = self.http.get(self.url(&format!("/v1/deploys/{id}"))).bearer_auth(TOKEN).send().await.unwrap();
        assert!(r.status().is_success(), "GET deploy {id}: {}", r.status());
        r.json().await.unwrap()
    }

    /// Polls until the deploy reaches a terminal status.
    pub async fn wait_deploy(&self, id: &str, timeout: Duration) -> Deploy {
        let deadline = Instant::now() + timeout;
        loop {
            let d = self.get_deploy(id).await;
            if matches!(d.status.as_str(), "completed" | "failed" | "superseded" | "rolled_back") {
                return d;
            }
            assert!(Instant::now() < deadline, "deploy {id} still {} after {timeout:?}", d.status);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// `GET /v1/status` with the admin token.
    pub async fn status(&self) -> serde_json::Value {
        self.http.get(self.url("/v1/status")).bearer_auth(TOKEN).send().await.unwrap().json().await.unwrap()
    }

    /// GET `path` through Caddy with `Host: host`; returns status and body (status 0 on a
    /// connection error).
    pub async fn through_caddy(&self, host: &str, path: &str) -> (u16, String) {
        let url = format!("http://127.0.0.1:{}{path}", self.caddy.http_port());
        match fresh_connection().get(url).header("host", host).send().await {
            Ok(r) => {
                let status = r.status().as_u16();
                (status, r.text().await.unwrap_or_default().trim().to_owned())
            }
            Err(e) => (0, e.to_string()),
        }
    }

    /// Pushes `image` as `<registry>/<repo>:<tag>`.
    pub fn push(&self, image: &slip_testenv::Image, repo: &str, tag: &str) -> String {
        self.registry.push(image, repo, tag)
    }

    /// Running containers labelled with `app`, on the daemon's engine.
    pub fn running_containers(&self, app: &str) -> Vec<String> {
        containers_on(self.engine, app, false)
    }

    /// All containers (any state) labelled with `app`, on the daemon's engine.
    pub fn all_containers(&self, app: &str) -> Vec<String> {
        containers_on(self.engine, app, true)
    }
}

impl Drop for TestDaemon {
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

/// A web app config for `name` using image repo `<registry>/<name>`.
pub fn web_app(name: &str, registry: &str, extra: &str) -> String {
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
start_period = "5s"

[deploy]
drain_timeout = "5s"
stop_grace = "2s"
{extra}
"#
    )
}

/// Panics with the fix unless `engine` answers.
pub fn require_engine(engine: Engine) {
    slip_testenv::require_docker(); // test images are built and pushed with Docker on either engine
    if engine == Engine::Podman {
        slip_testenv::require_podman();
    }
}

/// `runtime.backend` for a test daemon on `engine`: Podman is reached the way users get it by default, through
/// `auto`, which prefers a Podman socket that answers (and [`TestDaemon`] checks that it did).
fn backend(engine: Engine) -> &'static str {
    match engine {
        Engine::Docker => "docker",
        Engine::Podman => "auto",
    }
}

fn engine_ps(engine: Engine, args: &[&str]) -> Vec<String> {
    let program = engine.program();
    let out = std::process::Command::new(program).arg("ps").arg("-q").args(args).output().expect("engine ps");
    assert!(out.status.success(), "{program} ps: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).lines().map(str::to_owned).collect()
}

fn unix_seconds() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
}

/// How to configure a [`SlipdProcess`].
#[derive(Debug, Clone)]
pub struct ProcessConfig {
    /// The engine slipd runs containers on (see [`TestDaemon::engine`]).
    pub engine: Engine,
    /// `server.shutdown_timeout`.
    pub shutdown_timeout: &'static str,
    /// `runtime.min_free_disk`, when set.
    pub min_free_disk: Option<String>,
    /// Appended to `slip.toml` (whole tables, such as `[secrets]`).
    pub extra_slip_toml: String,
}

impl Default for ProcessConfig {
    fn default() -> ProcessConfig {
        ProcessConfig {
            engine: Engine::Docker,
            shutdown_timeout: "20s",
            min_free_disk: None,
            extra_slip_toml: String::new(),
        }
    }
}

/// The real `slipd` binary in its own process (for crash and shutdown tests), on a private config, state
/// directory and Caddy, against a registry the test owns. Killed, and its apps' containers removed, on drop.
pub struct SlipdProcess {
    pub dir: tempfile::TempDir,
    /// `runtime.port_range`, shared with no other live test daemon (kept across restarts).
    pub ports: slip_testenv::PortRange,
    pub caddy: Caddy,
    pub api: Api,
    pub config: ProcessConfig,
    apps: Vec<(String, String)>,
    child: Option<std::process::Child>,
    guards: Vec<ContainerGuard>,
    port: u16,
}

impl SlipdProcess {
    /// Writes the config for `apps` (name, TOML body); does not start slipd.
    pub fn new(apps: Vec<(String, String)>, config: ProcessConfig) -> SlipdProcess {
        let engine = config.engine;
        require_engine(engine);
        let caddy = Caddy::start();
        let port = slip_testenv::free_port();
        let api = Api::new(format!("http://127.0.0.1:{port}"), caddy.http_port());
        let process = SlipdProcess {
            dir: tempfile::tempdir().expect("tempdir"),
            ports: slip_testenv::PortRange::lease(),
            caddy,
            api,
            config,
            guards: apps.iter().map(|(name, _)| ContainerGuard::for_engine(engine, "slip.app", name)).collect(),
            apps,
            child: None,
            port,
        };
        process.write_config();
        process
    }

    /// The state directory.
    pub fn storage(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    /// slipd's stderr (every run appends).
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("slipd.log")
    }

    /// The log so far, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Rewrites `slip.toml` and the app files from the current settings.
    pub fn write_config(&self) {
        let config = self.dir.path().join("config");
        std::fs::create_dir_all(config.join("apps")).unwrap();
        let min_free_disk =
            self.config.min_free_disk.as_ref().map(|m| format!("min_free_disk = \"{m}\"\n")).unwrap_or_default();
        let slip_toml = format!(
            r#"[server]
listen = "127.0.0.1:{}"
shutdown_timeout = "{}"

[runtime]
backend = "{}"
port_range = "{}"
{min_free_disk}
[auth]
secret = "{SECRET}"
admin_token = "{TOKEN}"

[caddy]
admin_api = "{}"
listen = ["127.0.0.1:{}"]
tls = "off"
reconcile_interval = "1s"

[storage]
path = "{}"

[log]
format = "text"

{}
"#,
            self.port,
            self.config.shutdown_timeout,
            backend(self.config.engine),
            self.ports.config_value(),
            self.caddy.admin_url(),
            self.caddy.http_port(),
            self.storage().display(),
            self.config.extra_slip_toml,
        );
        std::fs::write(config.join("slip.toml"), slip_toml).unwrap();
        for (name, body) in &self.apps {
            std::fs::write(config.join("apps").join(format!("{name}.toml")), body).unwrap();
        }
    }

    /// Starts slipd with extra environment `env` (fault injection) and waits until `/healthz` answers.
    pub async fn start(&mut self, env: &[(&str, &str)]) {
        assert!(self.child.is_none(), "slipd is already running");
        let log = std::fs::OpenOptions::new().create(true).append(true).open(self.log_path()).unwrap();
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_slipd"));
        command
            .arg("--config")
            .arg(self.dir.path().join("config"))
            .env_remove("SLIP_FAULT_INJECTION")
            .env_remove("SLIP_FAULT_ABORT_AFTER")
            .env_remove("SLIP_FAULT_ABORT_TAG")
            .env("RUST_LOG", "info")
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        for (k, v) in env {
            command.env(k, v);
        }
        self.child = Some(command.spawn().expect("spawning slipd"));
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(r) = self.api.http.get(self.api.url("/healthz")).send().await
                && r.status().is_success()
            {
                let status: serde_json::Value = self
                    .api
                    .http
                    .get(self.api.url("/v1/status"))
                    .bearer_auth(TOKEN)
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                let engine = self.config.engine;
                assert_eq!(status["backend"], engine.program(), "slipd runs its containers on {engine:?}");
                return;
            }
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                self.child = None;
                panic!("slipd exited during boot ({status}); log:\n{}", self.log());
            }
            assert!(Instant::now() < deadline, "slipd did not answer /healthz within 60s; log:\n{}", self.log());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits for slipd to exit by itself (an injected abort) and returns its exit status.
    pub async fn wait_exit(&mut self, timeout: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + timeout;
        let child = self.child.as_mut().expect("slipd is running");
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                self.child = None;
                return status;
            }
            assert!(Instant::now() < deadline, "slipd still running after {timeout:?}; log:\n{}", self.log());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Sends SIGTERM (graceful shutdown) and waits for the exit status.
    pub async fn terminate(&mut self, timeout: Duration) -> std::process::ExitStatus {
        let pid = self.child.as_ref().expect("slipd is running").id().to_string();
        let sent = std::process::Command::new("kill").args(["-TERM", &pid]).status().expect("running kill");
        assert!(sent.success(), "kill -TERM {pid} failed");
        self.wait_exit(timeout).await
    }

    /// Sends `signal` (a `kill` name such as `HUP`) to the running slipd.
    pub fn signal(&self, signal: &str) {
        let pid = self.child.as_ref().expect("slipd is running").id().to_string();
        let sent = std::process::Command::new("kill").args([&format!("-{signal}"), &pid]).status().expect("kill");
        assert!(sent.success(), "kill -{signal} {pid} failed");
    }

    /// Whether the process is running.
    pub fn is_running(&mut self) -> bool {
        self.child.as_mut().is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }
}

impl Drop for SlipdProcess {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        for g in &self.guards {
            let _ = g.remove_all();
        }
    }
}

/// slipd's HTTP API (and the Caddy in front of its apps), for tests that drive a daemon from outside.
#[derive(Clone)]
pub struct Api {
    base: String,
    caddy_port: u16,
    pub http: reqwest::Client,
}

impl Api {
    /// The API at `base` (`http://127.0.0.1:PORT`), with its apps served by Caddy on `caddy_port`.
    pub fn new(base: String, caddy_port: u16) -> Api {
        let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap();
        Api { base, caddy_port, http }
    }

    /// `<base><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Sends a deploy signed with the global key and a timestamp; asserts 202.
    pub async fn deploy(&self, app: &str, tag: &str) -> DeployAccepted {
        let body = serde_json::json!({"app": app, "tag": tag}).to_string();
        let ts = unix_seconds().to_string();
        let sig = signature::header_value(SECRET.as_bytes(), &Signed::Deploy { timestamp: &ts, body: body.as_bytes() });
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
        let body: serde_json::Value = response.json().await.unwrap_or_default();
        assert_eq!(status, 202, "webhook answer: {body}");
        serde_json::from_value(body).unwrap()
    }

    /// Deploys and waits for a terminal status.
    pub async fn deploy_and_wait(&self, app: &str, tag: &str) -> Deploy {
        let accepted = self.deploy(app, tag).await;
        self.wait_deploy(&accepted.deploy_id, Duration::from_secs(120)).await
    }

    /// The deploy object (admin view).
    pub async fn get_deploy(&self, id: &str) -> Deploy {
        let r = self.http.get(self.url(&format!("/v1/deploys/{id}"))).bearer_auth(TOKEN).send().await.unwrap();
        assert!(r.status().is_success(), "GET deploy {id}: {}", r.status());
        r.json().await.unwrap()
    }

    /// Polls until the deploy reaches a terminal status.
    pub async fn wait_deploy(&self, id: &str, timeout: Duration) -> Deploy {
        self.wait_status(id, &["completed", "failed", "superseded", "rolled_back"], timeout).await
    }

    /// Polls until the deploy has one of `statuses`.
    pub async fn wait_status(&self, id: &str, statuses: &[&str], timeout: Duration) -> Deploy {
        let deadline = Instant::now() + timeout;
        loop {
            let d = self.get_deploy(id).await;
            if statuses.contains(&d.status.as_str()) {
                return d;
            }
            assert!(Instant::now() < deadline, "deploy {id} still {} after {timeout:?}, wanted {statuses:?}", d.status);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// GET `path` through Caddy with `Host: host`; status and trimmed body (status 0 on a connection error).
    pub async fn through_caddy(&self, host: &str, path: &str) -> (u16, String) {
        let url = format!("http://127.0.0.1:{}{path}", self.caddy_port);
        match fresh_connection().get(url).header("host", host).send().await {
            Ok(r) => {
                let status = r.status().as_u16();
                (status, r.text().await.unwrap_or_default().trim().to_owned())
            }
            Err(e) => (0, e.to_string()),
        }
    }
}

/// A client that opens a new connection to Caddy for every request. A keep-alive connection opened before a config
/// load can still be served by Caddy's previous config generation (its routes, its upstreams) until Caddy closes
/// it; a check of what Caddy routes *now* must not ride on one. (Clients that keep connections, and the race that
/// comes with it, are the load generator's business: `Load`.)
fn fresh_connection() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(30))
        .build()
        .expect("an HTTP client")
}

/// Ids of Docker containers labelled with `app`: all of them (any state) or the running ones.
pub fn containers_of(app: &str, all: bool) -> Vec<String> {
    containers_on(Engine::Docker, app, all)
}

/// Ids of `engine`'s containers labelled with `app`: all of them (any state) or the running ones.
pub fn containers_on(engine: Engine, app: &str, all: bool) -> Vec<String> {
    let filter = format!("label=slip.app={app}");
    if all { engine_ps(engine, &["-a", "--filter", &filter]) } else { engine_ps(engine, &["--filter", &filter]) }
}

/// A web app config like [`web_app`] whose image repository is `image` (shared between apps).
pub fn web_app_with_image(name: &str, image: &str, extra: &str) -> String {
    format!(
        r#"[app]
name = "{name}"
image = "{image}"

[routing]
domain = "{name}.test"
port = 8080

[health]
path = "/health"
interval = "200ms"
timeout = "2s"
retries = 5
start_period = "10s"

[deploy]
drain_timeout = "2s"
stop_grace = "2s"
{extra}
"#
    )
}

/// Keep-alive clients sending `GET path` through Caddy with one `Host`, until stopped (crates/slip-bench's
/// load generator). Every answer must be a 2xx whose body is one of the given releases' (an empty 200, which is
/// what Caddy answers for a host it has no route for, is a failure). The only request retried is one that met a
/// keep-alive race: a reused connection closed before any byte of the answer (RFC 9112 §9.3.1; Caddy closes idle
/// connections whenever it loads a new config).
pub struct Load {
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<slip_bench::client::ClientResult>,
}

/// What a [`Load`] saw.
#[derive(Debug)]
pub struct LoadReport {
    /// Counts of every kind of answer.
    pub counts: slip_bench::report::Counts,
    /// Failure and race messages with their counts.
    pub messages: std::collections::BTreeMap<String, u64>,
    /// Right answers by body.
    pub bodies: std::collections::BTreeMap<String, u64>,
}

impl Load {
    /// Starts `clients` clients against Caddy's `port` for `path` on `host`; `bodies` are the right answers.
    pub fn start(port: u16, host: &str, path: &str, clients: usize, bodies: &[&str]) -> Load {
        let url = format!("http://127.0.0.1:{port}{path}");
        let target = slip_bench::client::Target::new(&url, host, Duration::from_secs(30), Duration::ZERO, bodies)
            .expect("a valid load target");
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(slip_bench::run(target, clients, stopped, None));
        Load { stop, task }
    }

    /// Stops the clients and reports what they saw.
    pub async fn stop(self) -> LoadReport {
        self.stop.send(true).expect("the load generator is running");
        let result = self.task.await.expect("the load generator finished");
        LoadReport { counts: result.timeline.total(), messages: result.messages, bodies: result.bodies }
    }
}

impl LoadReport {
    /// Panics unless at least `min` requests were sent and every one got a right answer, first time or on the
    /// one retry a keep-alive race allows.
    #[track_caller]
    pub fn assert_every_answer_right(&self, min: u64) {
        assert!(
            self.counts.requests >= min,
            "the load generator sent only {} requests: {self:?}",
            self.counts.requests
        );
        assert_eq!(self.counts.lenient_failures(), 0, "every request got a known release's body: {self:?}");
    }

    /// Whether `body` answered at least once.
    pub fn saw(&self, body: &str) -> bool {
        self.bodies.contains_key(body)
    }
}

/// Every upstream Caddy dials for `host`, from its live config.
pub fn caddy_dials(caddy: &Caddy, host: &str) -> Vec<String> {
    let config = caddy.get_json("/config/apps/http/servers");
    let mut dials = Vec::new();
    for server in config.as_object().into_iter().flat_map(|s| s.values()) {
        for route in server["routes"].as_array().into_iter().flatten() {
            let hosts = route["match"]
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|m| m["host"].as_array().cloned().unwrap_or_default());
            if hosts.into_iter().any(|h| h == host) {
                collect_dials(&route["handle"], &mut dials);
            }
        }
    }
    dials
}

fn collect_dials(value: &serde_json::Value, out: &mut Vec<String>) {
    match value {
        serde_json::Value::Object(map) => {
            if let Some(dial) = map.get("dial").and_then(|d| d.as_str()) {
                out.push(dial.to_owned());
            }
            map.values().for_each(|v| collect_dials(v, out));
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| collect_dials(v, out)),
        _ => {}
    }
}
