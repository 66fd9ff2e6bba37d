//! systemd's notify protocol (SPEC §2 `Type=notify`), checked with a notify socket of the test's own in place of
//! systemd: READY=1 only once the API listener is bound and answering, WATCHDOG=1 at half of `WATCHDOG_USEC` while
//! slipd works, STOPPING=1 on SIGTERM; and no READY=1 at all when the listener cannot be bound.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use slip_testenv::caddy::Caddy;
use tokio::net::UnixDatagram;

/// A slipd process with no apps, its notify socket and its log.
struct Notified {
    dir: tempfile::TempDir,
    socket: UnixDatagram,
    child: Child,
    port: u16,
}

impl Notified {
    fn spawn(caddy: Option<&Caddy>, port: u16, watchdog_usec: Option<u64>) -> Notified {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("config");
        std::fs::create_dir_all(config.join("apps")).unwrap();
        let caddy_table = match caddy {
            Some(c) => format!(
                "admin_api = \"{}\"\nlisten = [\"127.0.0.1:{}\"]\ntls = \"off\"\n",
                c.admin_url(),
                c.http_port()
            ),
            None => "tls = \"off\"\n".to_owned(),
        };
        let slip_toml = format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\n\n[runtime]\nbackend = \"docker\"\n\n[auth]\nsecret = \"{}\"\n\
             admin_token = \"{}\"\n\n[caddy]\n{caddy_table}\n[storage]\npath = \"{}\"\n\n[log]\nformat = \"text\"\n",
            crate::support::SECRET,
            crate::support::TOKEN,
            dir.path().join("state").display(),
        );
        std::fs::write(config.join("slip.toml"), slip_toml).unwrap();
        let socket_path = dir.path().join("notify.sock");
        let socket = UnixDatagram::bind(&socket_path).unwrap();
        let log = std::fs::File::create(dir.path().join("slipd.log")).unwrap();
        // systemd sets WATCHDOG_PID to the service's pid; `exec` from a shell that exports its own pid does the same.
        let mut command = Command::new("sh");
        command
            .args(["-c", "export WATCHDOG_PID=$$; exec \"$0\" --config \"$1\""])
            .arg(env!("CARGO_BIN_EXE_slipd"))
            .arg(&config)
            .env("NOTIFY_SOCKET", &socket_path)
            .env_remove("WATCHDOG_USEC")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        if let Some(usec) = watchdog_usec {
            command.env("WATCHDOG_USEC", usec.to_string());
        }
        let child = command.spawn().expect("spawning slipd");
        Notified { dir, socket, child, port }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("slipd.log")).unwrap_or_default()
    }

    /// The next notification (one datagram, possibly several `KEY=VALUE` lines).
    async fn next(&self, within: Duration) -> String {
        let mut buf = vec![0u8; 4096];
        match tokio::time::timeout(within, self.socket.recv(&mut buf)).await {
            Ok(Ok(n)) => String::from_utf8_lossy(&buf[..n]).into_owned(),
            Ok(Err(e)) => panic!("reading the notify socket: {e}"),
            Err(_) => panic!("no notification within {within:?}; slipd's log:\n{}", self.log()),
        }
    }

    fn terminate(&self) {
        let sent = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().unwrap();
        assert!(sent.success());
    }

    async fn wait_exit(&mut self, within: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "slipd still running after {within:?}; log:\n{}", self.log());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Notified {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn lines(message: &str) -> Vec<&str> {
    message.lines().collect()
}

#[tokio::test]
async fn ready_once_the_listener_serves_then_watchdog_pings_then_stopping() {
    slip_testenv::require_docker();
    let caddy = Caddy::start();
    let port = slip_testenv::free_port();
    let mut slipd = Notified::spawn(Some(&caddy), port, Some(400_000));

    let first = slipd.next(Duration::from_secs(60)).await;
    // The answer is read the moment READY arrives, before anything else: the listener must already be bound.
    let healthz = reqwest::get(format!("http://127.0.0.1:{port}/healthz")).await;
    assert!(lines(&first).contains(&"READY=1"), "the first notification is READY=1, got {first:?}");
    assert!(first.contains(&format!("STATUS=listening on 127.0.0.1:{port}")), "{first:?}");
    let healthz = healthz.unwrap_or_else(|e| panic!("READY=1 came before the listener answered: {e}"));
    assert_eq!(healthz.status(), 200);

    // WATCHDOG_USEC=400ms: a ping about every 200ms while the loops are alive.
    let started = Instant::now();
    for _ in 0..3 {
        let ping = slipd.next(Duration::from_secs(5)).await;
        assert_eq!(lines(&ping), ["WATCHDOG=1"], "only watchdog pings between READY and shutdown");
    }
    assert!(started.elapsed() < Duration::from_secs(5), "three pings took {:?}", started.elapsed());

    slipd.terminate();
    let mut stopping = slipd.next(Duration::from_secs(5)).await;
    while lines(&stopping) == ["WATCHDOG=1"] {
        stopping = slipd.next(Duration::from_secs(5)).await;
    }
    assert!(lines(&stopping).contains(&"STOPPING=1"), "SIGTERM sends STOPPING=1, got {stopping:?}");
    let status = slipd.wait_exit(Duration::from_secs(30)).await;
    assert!(status.success(), "{status}; log:\n{}", slipd.log());
}

#[tokio::test]
async fn no_ready_when_the_listener_cannot_be_bound() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let mut slipd = Notified::spawn(None, port, None);
    let status = slipd.wait_exit(Duration::from_secs(30)).await;
    assert!(!status.success(), "slipd cannot run without its listener");
    assert!(slipd.log().contains(&format!("binding the API listener on 127.0.0.1:{}", slipd.port)), "{}", slipd.log());
    let mut buf = [0u8; 256];
    match slipd.socket.try_recv(&mut buf) {
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
        Ok(n) => panic!("slipd notified systemd without a listener: {:?}", String::from_utf8_lossy(&buf[..n])),
        Err(e) => panic!("reading the notify socket: {e}"),
    }
}
