//! `slip logs` against a real slipd, Docker, Caddy and registry: a secret the container prints is redacted,
//! `--follow` prints lines as they are written and ends cleanly on Ctrl-C, `--json` prints the API's NDJSON,
//! and a bad `--since` is a usage error naming it.
//!
//! The container prints on demand through its `/cgi-bin/say` and `/cgi-bin/env` pages (see
//! `slip_testenv::image`), reached through Caddy. Every wait polls against a deadline.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use slip_testenv::Image;

use crate::support::{GLOBAL, Setup, app_name, slip, web_app};

/// How long anything here may take on a loaded machine.
const DEADLINE: Duration = Duration::from_secs(30);

/// The secret the app gets, and prints when asked.
const VALUE: &str = "cli-logged-secret-0123456789";

/// Asks the app to print something (`say?TEXT` or `env?NAME`) through Caddy, retrying until it gets through.
async fn ask(setup: &Setup, app: &str, page: &str) {
    let url = format!("http://127.0.0.1:{}/cgi-bin/{page}", setup.caddy.http_port());
    let http = reqwest::Client::new();
    let deadline = Instant::now() + DEADLINE;
    loop {
        match http.get(&url).header("host", format!("{app}.test")).send().await {
            Ok(r) if r.status().is_success() => return,
            other => assert!(Instant::now() < deadline, "GET /cgi-bin/{page} through Caddy: {other:?}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `slip logs --follow` running in the background, its stdout collected line by line.
struct Following {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Following {
    fn start(args: &[&str]) -> Following {
        let mut child = Command::new(env!("CARGO_BIN_EXE_slip"))
            .args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("running slip");
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Following { child, lines, seen: Vec::new() }
    }

    /// Waits until a printed line satisfies `wanted`.
    async fn until(&mut self, what: &str, wanted: impl Fn(&str) -> bool) {
        let deadline = Instant::now() + DEADLINE;
        loop {
            while let Ok(line) = self.lines.try_recv() {
                self.seen.push(line);
            }
            if self.seen.iter().any(|l| wanted(l)) {
                return;
            }
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("slip logs --follow exited ({status}) before printing {what}; printed: {:?}", self.seen);
            }
            assert!(Instant::now() < deadline, "slip logs --follow printed no {what}; printed: {:?}", self.seen);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Sends SIGINT, as Ctrl-C does, and returns the exit code and stderr.
    async fn interrupt(mut self) -> (i32, String) {
        let pid = self.child.id().to_string();
        assert!(Command::new("kill").args(["-INT", &pid]).status().unwrap().success(), "kill -INT {pid}");
        let deadline = Instant::now() + DEADLINE;
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            assert!(Instant::now() < deadline, "slip logs --follow still runs after SIGINT");
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let mut stderr = String::new();
        std::io::Read::read_to_string(&mut self.child.stderr.take().unwrap(), &mut stderr).unwrap();
        (status.code().unwrap_or(-1), stderr)
    }
}

impl Drop for Following {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn logs_redact_follow_until_ctrl_c_print_ndjson_and_refuse_a_bad_since() {
    let app = app_name("cli-logs");
    let a = app.clone();
    let setup = Setup::new(|reg| vec![(a.clone(), web_app(&a, reg))], "");
    setup.registry.push(&Image::V1, &app, "v1");
    let slipd = setup.start(&[&app]).await;
    let server = slipd.base();
    let admin = [("SLIP_SERVER", server.as_str()), ("SLIP_TOKEN", GLOBAL)];
    let pair = format!("API_TOKEN={VALUE}");
    let set = slip(&["secrets", "set", &app, &pair], &admin, None).await;
    assert_eq!(set.code, 0, "{}", set.all());
    let deploy = slip(&["deploy", &app, "v1", "--server", &server, "--secret", GLOBAL], &[], None).await;
    assert_eq!(deploy.code, 0, "{}", deploy.all());

    let redacted = "API_TOKEN=[redacted:API_TOKEN]";
    ask(&setup, &app, "env?API_TOKEN").await;
    let deadline = Instant::now() + DEADLINE;
    let tail = loop {
        let run = slip(&["logs", &app, "--tail", "50"], &admin, None).await;
        assert_eq!(run.code, 0, "{}", run.all());
        if run.stdout.contains(redacted) {
            break run;
        }
        assert!(Instant::now() < deadline, "the printed secret never reached the tail: {}", run.all());
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(!tail.all().contains(VALUE), "{}", tail.all());

    let mut following = Following::start(&["logs", &app, "--follow", "--server", &server, "--token", GLOBAL]);
    following.until("the lines so far", |l| l == redacted).await;
    let marker = format!("followed-{}", &app[app.len() - 8..]);
    ask(&setup, &app, &format!("say?{marker}")).await;
    ask(&setup, &app, "env?API_TOKEN").await;
    following.until("the new line", |l| l == marker).await;
    following.until("the secret printed again, redacted", |l| l == redacted).await;
    assert!(!following.seen.iter().any(|l| l.contains(VALUE)), "{:?}", following.seen);
    let (code, stderr) = following.interrupt().await;
    assert_eq!((code, stderr.as_str()), (0, ""), "Ctrl-C ends slip logs --follow cleanly");

    let json = slip(&["logs", &app, "--json", "--since", "1h"], &admin, None).await;
    assert_eq!(json.code, 0, "{}", json.all());
    let lines: Vec<serde_json::Value> =
        json.stdout.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"))).collect();
    let said = lines.iter().find(|l| l["line"] == marker.as_str()).unwrap_or_else(|| panic!("{}", json.all()));
    assert!(said["container"].as_str().is_some_and(|c| c.starts_with(&format!("slip-{app}-"))), "{said}");
    assert_eq!(said["stream"], "stdout");
    assert!(!json.all().contains(VALUE));

    let bad = slip(&["logs", &app, "--since", "yesterday"], &admin, None).await;
    assert_eq!(bad.code, 2, "{}", bad.all());
    assert!(bad.stderr.contains("since") && bad.stderr.contains("RFC 3339"), "{}", bad.all());
    slipd.stop().await;
}
