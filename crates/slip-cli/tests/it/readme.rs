//! README.md's quick start, pasted into one bash shell as a new user would, from a fresh state: every `sh`
//! block between "## Quick start" and "## What a deploy does", in order, with `set -euo pipefail`, so any step
//! that does not work as written (a failing command, an unset variable, a webhook slipd refuses) fails the
//! test and names the step.
//!
//! The walk runs the real `slip` and `slipd` binaries (`slipd` is the `readme-slipd` example, which calls what
//! the real binary's `main` calls) against real Docker, a private Caddy and a local registry. What it adapts,
//! and nothing else, is listed in [`ADAPTATIONS`]: installation lines (the binaries are already built), the
//! systemd block (no systemd here), `sudo` (the test runs as root), paths under `/etc`, `/var` and the ports,
//! the app name (other tests use `myapp`), the image (there is no ghcr.io here) and the backend (Docker, the
//! engine the test cleans up). Every line an adaptation names must still be in the README, so a README change
//! that the walk no longer covers fails here too.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use slip_testenv::caddy::Caddy;
use slip_testenv::{ContainerGuard, Image, Registry, free_port, unique_id};

use crate::support::require_default_address_free;

/// What the walk changes in the README's commands, each as (text in the README, what runs instead).
/// `{…}` placeholders are filled in by [`Walk::adapt`].
const ADAPTATIONS: &[(&str, &str)] = &[
    ("git clone <this repository> slip && cd slip\n", ""),
    ("sudo scripts/setup.sh                 # Docker engine + Caddy (starts them when no init system does)\n", ""),
    ("cargo build --release\n", ""),
    ("sudo cp target/release/slipd target/release/slip /usr/local/bin/\n", ""),
    ("sudo ", ""),
    ("/etc/slip", "{root}/etc/slip"),
    ("/var/lib/slip", "{root}/var/lib/slip"),
    ("/var/log/slipd.log", "{root}/slipd.log"),
    ("127.0.0.1:7890", "127.0.0.1:{api_port}"),
    ("http://localhost:2019", "{caddy_admin}"),
    ("listen = [\"127.0.0.1:80\"]", "listen = [\"127.0.0.1:{caddy_port}\"]"),
    ("http://myapp.localhost/", "http://myapp.localhost:{caddy_port}/"),
    ("ghcr.io/you/myapp", "{registry}/myapp"),
    ("backend = \"auto\"", "backend = \"docker\""),
    ("myapp", "{app}"),
];

/// The line that starts slipd without systemd; the walk waits for slipd to answer after it, as a user pasting
/// the next block would, and from then on points `slip` at slipd's (adapted) address.
const START_LINE: &str = "slipd --config {root}/etc/slip >>{root}/slipd.log 2>&1 &'\n";

#[tokio::test(flavor = "multi_thread")]
async fn readme_quick_start_works_as_written_from_a_fresh_state() {
    slip_testenv::require_docker();
    require_default_address_free();
    let walk = Walk::new();
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md")).unwrap();
    for (from, _) in ADAPTATIONS {
        assert!(readme.contains(from), "README.md no longer has {from:?}: update the walk's adaptations");
    }
    let blocks = quick_start_blocks(&readme);
    assert!(blocks.len() >= 8, "the quick start has its blocks: {blocks:?}");

    let mut script = String::from(
        "set -euo pipefail\ntrap 'echo \"README step failed: $BASH_COMMAND\" >&2' ERR\ncd \"$WALK_ROOT\"\n",
    );
    let mut started = false;
    for (heading, block) in &blocks {
        if block.contains("systemctl") {
            continue;
        }
        script.push_str(&format!("echo '### {heading}' >&2\n"));
        let adapted = walk.adapt(block);
        script.push_str(&adapted);
        if adapted.contains(&walk.fill(START_LINE)) {
            started = true;
            script.push_str(&walk.wait_for_slipd());
        }
    }
    assert!(started, "the quick start starts slipd without systemd: {blocks:?}");
    let run = walk.run(&script);
    walk.stop_slipd();

    assert_eq!(run.code, 0, "the quick start failed as written:\n{}", run.all());
    let api = walk.api_port;
    for expected in [
        format!("✓ Configuration is valid (1 app, listening on 127.0.0.1:{api})"),
        "\"status\":\"accepted\"".to_owned(),
        format!("of {}@sha-abc123f", walk.app),
        "✓ completed in".to_owned(),
        "release    sha-abc123f".to_owned(),
    ] {
        assert!(run.stdout.contains(&expected), "the walk's output lacks {expected:?}:\n{}", run.all());
    }
    assert!(!run.stdout.contains('⚠'), "slipd --check warns about the README's config: {}", run.all());
    assert!(run.stderr.contains("(local mode: slipd not running)"), "step 4 ran before slipd: {}", run.all());
    assert!(!run.stderr.contains("warning:"), "the README's commands draw no warning: {}", run.all());
    let log = std::fs::read_to_string(walk.root.join("slipd.log")).unwrap_or_default();
    assert!(log.contains("container engine connected") && log.contains("\"backend\":\"docker\""), "{log}");
}

/// The quick start's `sh` blocks, each with the heading above it.
fn quick_start_blocks(readme: &str) -> Vec<(String, String)> {
    let start = readme.find("## Quick start").expect("README has a quick start");
    let end = readme[start..].find("## What a deploy does").map_or(readme.len(), |i| start + i);
    let mut blocks = Vec::new();
    let mut heading = String::new();
    let mut lines = readme[start..end].lines();
    while let Some(line) = lines.next() {
        if line.starts_with('#') {
            heading = line.trim_start_matches('#').trim().to_owned();
        } else if line == "```sh" {
            let mut block = String::new();
            for line in lines.by_ref().take_while(|l| *l != "```") {
                block.push_str(line);
                block.push('\n');
            }
            blocks.push((heading.clone(), block));
        }
    }
    blocks
}

/// One walk's private world: a root directory standing in for `/`, a Caddy, a registry with the README's tag,
/// the binaries on `PATH`, and slipd's API port.
struct Walk {
    root: PathBuf,
    _dir: tempfile::TempDir,
    bin: PathBuf,
    app: String,
    api_port: u16,
    caddy: Caddy,
    registry: Registry,
    _guard: ContainerGuard,
}

/// The outcome of the script.
struct Ran {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Ran {
    fn all(&self) -> String {
        format!("exit {}\n--- stdout\n{}--- stderr\n{}", self.code, self.stdout, self.stderr)
    }
}

impl Walk {
    fn new() -> Walk {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        let app = format!("readme-{}", &unique_id()[..8]).to_lowercase();
        let registry = Registry::start();
        registry.push(&Image::V1, &app, "sha-abc123f");
        let bin = root.join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        let slip = PathBuf::from(env!("CARGO_BIN_EXE_slip"));
        let slipd = slip.parent().unwrap().join("examples/readme-slipd");
        assert!(slipd.is_file(), "{} is missing: cargo builds slip-cli's examples with its tests", slipd.display());
        std::os::unix::fs::symlink(&slip, bin.join("slip")).unwrap();
        std::os::unix::fs::symlink(&slipd, bin.join("slipd")).unwrap();
        Walk {
            _guard: ContainerGuard::new("slip.app", &app),
            root,
            _dir: dir,
            bin,
            app,
            api_port: free_port(),
            caddy: Caddy::start(),
            registry,
        }
    }

    /// `text` with the walk's values in place of `{…}`.
    fn fill(&self, text: &str) -> String {
        text.replace("{root}", &self.root.display().to_string())
            .replace("{api_port}", &self.api_port.to_string())
            .replace("{caddy_admin}", &self.caddy.admin_url())
            .replace("{caddy_port}", &self.caddy.http_port().to_string())
            .replace("{registry}", &self.registry.host())
            .replace("{app}", &self.app)
    }

    /// A README block with every adaptation applied, in order.
    fn adapt(&self, block: &str) -> String {
        let mut adapted = block.to_owned();
        for (from, to) in ADAPTATIONS {
            adapted = adapted.replace(from, &self.fill(to));
        }
        adapted
    }

    /// Shell lines that wait (up to 30 s) until slipd answers, then point `slip` at it.
    fn wait_for_slipd(&self) -> String {
        format!(
            "for _ in $(seq 300); do curl -sf http://127.0.0.1:{port}/healthz >/dev/null && break; sleep 0.1; done\n\
             export SLIP_SERVER=http://127.0.0.1:{port}\n",
            port = self.api_port
        )
    }

    /// Runs `script` in bash with a clean environment: `PATH` with the binaries first, `HOME`, and
    /// `SLIP_CONFIG` (slip's default `/etc/slip`, adapted like the README's paths).
    fn run(&self, script: &str) -> Ran {
        let path = format!("{}:{}", self.bin.display(), std::env::var("PATH").unwrap_or_default());
        let output = Command::new("bash")
            .arg("-c")
            .arg(script)
            .env_clear()
            .env("PATH", path)
            .env("HOME", &self.root)
            .env("WALK_ROOT", &self.root)
            .env("SLIP_CONFIG", self.root.join("etc/slip"))
            .stdin(Stdio::null())
            .output()
            .expect("running bash");
        Ran {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// Sends SIGTERM to the slipd this walk started (found by its `--config` argument) and waits for it to exit.
    fn stop_slipd(&self) {
        let config = self.root.join("etc/slip").display().to_string();
        for pid in processes_with_argument(&config) {
            let _ = Command::new("kill").arg("-TERM").arg(pid.to_string()).status();
            let deadline = std::time::Instant::now() + Duration::from_secs(60);
            while Path::new(&format!("/proc/{pid}")).exists() && std::time::Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

impl Drop for Walk {
    fn drop(&mut self) {
        self.stop_slipd();
    }
}

/// Pids of the processes one of whose arguments is exactly `argument`.
fn processes_with_argument(argument: &str) -> Vec<u32> {
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else { continue };
        let is_slipd = cmdline.split(|b| *b == 0).any(|a| a == b"slipd");
        if is_slipd && cmdline.split(|b| *b == 0).any(|a| a == argument.as_bytes()) {
            pids.push(pid);
        }
    }
    pids
}
