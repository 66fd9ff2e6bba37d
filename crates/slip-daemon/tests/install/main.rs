//! The installers in a fresh Debian root (debootstrap): `install.sh` fed on stdin as `curl ... | bash` would feed
//! it, and the Debian package through `dpkg -i`. Both must leave SPEC §2's layout (user, group, directories, owners,
//! modes), a unit that `systemd-analyze verify` accepts, keep secrets and config on a second run, uninstall and
//! purge cleanly; and the installed slipd, run as the `slip` user, must deploy an app through real Docker and Caddy.
//!
//! The release artefacts come from `scripts/release.sh --dev-build --out target/dist` (scripts/test.sh runs it first;
//! `SLIP_DIST_DIR` points elsewhere); a missing artefact fails the test with that hint. install.sh itself is always
//! the working tree's.

mod root;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};

use slip_core::signature::{self, Signed};
use slip_testenv::caddy::Caddy;
use slip_testenv::{ContainerGuard, Image, Registry};

use root::Root;

const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The symlink `systemctl enable slipd` makes.
const WANTS: &str = "/etc/systemd/system/multi-user.target.wants/slipd.service";

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

/// A release artefact from `scripts/release.sh`.
fn artefact(name: &str) -> PathBuf {
    let dir = std::env::var_os("SLIP_DIST_DIR").map(PathBuf::from).unwrap_or_else(|| {
        std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| workspace().join("target"))
            .join("dist")
    });
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: build the release first (scripts/release.sh --dev-build --out {}); scripts/test.sh does",
        path.display(),
        dir.display()
    );
    path
}

fn tarball_name() -> String {
    format!("slip-{VERSION}-x86_64-linux.tar.gz")
}

fn install_script() -> Vec<u8> {
    std::fs::read(workspace().join("install.sh")).unwrap()
}

/// Copies the tarball and its checksum into the root's /tmp.
fn stage_tarball(root: &Root) -> String {
    let name = tarball_name();
    root.copy_in(&artefact(&name), &format!("/tmp/{name}"));
    root.copy_in(&artefact(&format!("{name}.sha256")), &format!("/tmp/{name}.sha256"));
    format!("/tmp/{name}")
}

/// `bash -s -- ARGS` with install.sh on stdin, as `curl -sSL .../install.sh | bash -s -- ARGS` runs it.
fn piped_install(root: &Root, args: &[&str]) -> std::process::Output {
    let mut full = vec!["-s", "--"];
    full.extend_from_slice(args);
    root.run(Some(&install_script()), "bash", &full)
}

fn text(out: &std::process::Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// Asserts owner (by name inside the root) and permission bits of a path inside the root.
#[track_caller]
fn assert_owned(root: &Root, inside: &str, user: (u32, u32), mode: u32) {
    let meta = std::fs::metadata(root.path(inside)).unwrap_or_else(|e| panic!("{inside}: {e}"));
    assert_eq!((meta.uid(), meta.gid()), user, "owner of {inside}");
    assert_eq!(meta.permissions().mode() & 0o7777, mode, "mode of {inside}: {:o}", meta.permissions().mode() & 0o7777);
}

/// SPEC §2's layout, for binaries in `bin_dir`.
fn assert_layout(root: &Root, bin_dir: &str) {
    let slip = root.ids("slip").expect("a slip user");
    let (slip_gid, _) = root.group("slip").expect("a slip group");
    assert_eq!(slip.1, slip_gid, "the slip user's primary group is slip");
    assert!(slip.0 < 1000, "slip is a system user (uid {})", slip.0);
    let shell = std::fs::read_to_string(root.path("/etc/passwd")).unwrap();
    assert!(shell.lines().any(|l| l.starts_with("slip:") && l.ends_with(":/usr/sbin/nologin")), "no login shell");
    let root_slip = (0, slip_gid);
    assert_owned(root, &format!("{bin_dir}/slipd"), (0, 0), 0o755);
    assert_owned(root, &format!("{bin_dir}/slip"), (0, 0), 0o755);
    assert_owned(root, "/etc/slip", root_slip, 0o750);
    assert_owned(root, "/etc/slip/slip.toml", root_slip, 0o640);
    assert_owned(root, "/etc/slip/slip.env", root_slip, 0o640);
    assert_owned(root, "/etc/slip/apps", slip, 0o750);
    assert_owned(root, "/var/lib/slip", slip, 0o750);
    for (dir, mode) in [
        ("secrets", 0o700),
        ("volumes", 0o750),
        ("preview-volumes", 0o750),
        ("backups", 0o700),
        ("trash", 0o700),
        ("tmp", 0o700),
    ] {
        assert_owned(root, &format!("/var/lib/slip/{dir}"), slip, mode);
    }
    let (_, docker_members) = root.group("docker").expect("a docker group for the engine socket");
    assert!(docker_members.contains(&"slip".to_owned()), "slip is in the docker group: {docker_members:?}");
}

/// The keys in slip.env.
fn env_file(root: &Root) -> String {
    std::fs::read_to_string(root.path("/etc/slip/slip.env")).unwrap()
}

fn key_from(env: &str, key: &str) -> String {
    env.lines().find_map(|l| l.strip_prefix(&format!("{key}="))).unwrap_or_else(|| panic!("{key} in {env}")).to_owned()
}

/// `systemd-analyze verify` of a unit, run inside the root (its systemd is installed, not running).
fn assert_unit_verifies(root: &Root, unit: &str) {
    let out = root.run(None, "systemd-analyze", &["verify", unit]);
    let text = text(&out);
    assert!(out.status.success() && text.trim().is_empty(), "systemd-analyze verify {unit}: {}\n{text}", out.status);
}

/// slipd from the installed layout, started as the slip user.
struct InstalledSlipd {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl InstalledSlipd {
    fn start(root: &Root, bin: &str, port: u16) -> InstalledSlipd {
        let log = root.path("/tmp/slipd.log");
        let file = std::fs::File::create(&log).unwrap();
        let child = root
            .command("setpriv", &["--reuid=slip", "--regid=slip", "--init-groups", bin, "--config", "/etc/slip"])
            .stdin(std::process::Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .unwrap();
        InstalledSlipd { child, port, log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    async fn wait_healthy(&mut self, http: &reqwest::Client) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(r) = http.get(self.url("/healthz")).send().await
                && r.status().is_success()
            {
                return;
            }
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("the installed slipd exited ({status}); log:\n{}", self.log());
            }
            assert!(Instant::now() < deadline, "slipd did not answer within 60s; log:\n{}", self.log());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn stop(&mut self) {
        let _ = std::process::Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        let _ = self.child.wait();
    }
}

impl Drop for InstalledSlipd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Points the installed config at the test's Caddy and port and adds a web app; keeps the installer's keys.
fn configure_for_test(root: &Root, caddy: &Caddy, registry: &Registry, app: &str, port: u16) {
    let toml = root.path("/etc/slip/slip.toml");
    let installed = std::fs::read_to_string(&toml).unwrap();
    assert!(installed.contains("secret = \"${SLIP_SECRET}\""), "{installed}");
    assert!(installed.contains("admin_token = \"${SLIP_ADMIN_TOKEN}\""), "{installed}");
    let base = 25000 + (std::process::id() % 200) as u16 * 20;
    let config = format!(
        "[server]\nlisten = \"127.0.0.1:{port}\"\n\n[runtime]\nbackend = \"docker\"\nport_range = \"{base}-{}\"\n\n\
         [auth]\nsecret = \"${{SLIP_SECRET}}\"\nadmin_token = \"${{SLIP_ADMIN_TOKEN}}\"\n\n\
         [caddy]\nadmin_api = \"{}\"\nlisten = [\"127.0.0.1:{}\"]\ntls = \"off\"\n\n[storage]\npath = \"/var/lib/slip\"\n",
        base + 19,
        caddy.admin_url(),
        caddy.http_port(),
    );
    std::fs::write(&toml, config).unwrap();
    let app_toml = format!(
        "[app]\nname = \"{app}\"\nimage = \"{}/{app}\"\n\n[routing]\ndomain = \"{app}.test\"\nport = 8080\n\n\
         [health]\npath = \"/health\"\ninterval = \"200ms\"\nstart_period = \"5s\"\n\n[deploy]\ndrain_timeout = \"2s\"\n",
        registry.host()
    );
    let app_path = root.path(&format!("/etc/slip/apps/{app}.toml"));
    std::fs::write(&app_path, app_toml).unwrap();
    let (uid, gid) = root.ids("slip").unwrap();
    std::os::unix::fs::chown(&app_path, Some(uid), Some(gid)).unwrap();
}

/// Deploys `tag` with a signed webhook, waits for the outcome, and returns what Caddy serves for the app.
async fn deploy_through_installed(
    http: &reqwest::Client,
    slipd: &InstalledSlipd,
    caddy: &Caddy,
    app: &str,
    key: &str,
    token: &str,
) -> String {
    let body = serde_json::json!({"app": app, "tag": "v1"}).to_string();
    let ts = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs().to_string();
    let sig = signature::header_value(key.as_bytes(), &Signed::Deploy { timestamp: &ts, body: body.as_bytes() });
    let r = http
        .post(slipd.url("/v1/deploy"))
        .header("content-type", "application/json")
        .header("x-slip-signature", sig)
        .header("x-slip-timestamp", ts)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202, "webhook: {}", r.text().await.unwrap_or_default());
    let accepted: serde_json::Value = r.json().await.unwrap();
    let id = accepted["deploy_id"].as_str().unwrap().to_owned();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let d: serde_json::Value = http
            .get(slipd.url(&format!("/v1/deploys/{id}")))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        match d["status"].as_str().unwrap_or("") {
            "completed" => break,
            "failed" | "rolled_back" | "superseded" => panic!("deploy ended {d}; slipd log:\n{}", slipd.log()),
            _ => {}
        }
        assert!(Instant::now() < deadline, "deploy still {} after 120s", d["status"]);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let r = http
        .get(format!("http://127.0.0.1:{}/version", caddy.http_port()))
        .header("host", format!("{app}.test"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.text().await.unwrap().trim().to_owned()
}

#[tokio::test]
async fn install_sh_piped_to_bash_sets_up_spec_layout_and_the_slip_user_deploys() {
    slip_testenv::require_docker();
    let mut root = Root::fresh();
    root.bind_docker_socket();
    let tarball = stage_tarball(&root);

    let first = piped_install(&root, &["--from", &tarball]);
    let first_text = text(&first);
    assert!(first.status.success(), "install.sh failed:\n{first_text}");
    assert_layout(&root, "/usr/local/bin");
    let env = env_file(&root);
    let secret = key_from(&env, "SLIP_SECRET");
    let token = key_from(&env, "SLIP_ADMIN_TOKEN");
    assert_eq!(secret.len(), 64, "32 random bytes, hex");
    assert!(secret.chars().all(|c| c.is_ascii_hexdigit()) && secret != token);
    assert!(first_text.contains(&format!("SLIP_SECRET={secret}")), "the new secret is printed once:\n{first_text}");
    assert!(!first_text.contains(&token), "the admin token is not printed");
    assert!(first_text.contains("systemd is not running"), "{first_text}");
    assert!(first_text.contains("setpriv --reuid=slip"), "how to start slipd by hand:\n{first_text}");
    assert!(first_text.contains("--resume"), "how to run Caddy:\n{first_text}");
    assert!(first_text.contains("✓ Configuration is valid"), "the fresh config passes --check:\n{first_text}");
    assert!(!first_text.contains('⚠'), "the installed config draws no warning:\n{first_text}");
    assert_unit_verifies(&root, "/etc/systemd/system/slipd.service");
    assert!(root.path(WANTS).is_symlink(), "the unit is enabled (systemctl works without a running systemd)");
    let unit = std::fs::read_to_string(root.path("/etc/systemd/system/slipd.service")).unwrap();
    assert!(unit.contains("Type=notify") && unit.contains("User=slip"), "{unit}");
    assert!(root.path("/usr/share/doc/slip/README.md").exists());

    // slipd from the installed layout, as the slip user, against the host's Docker through the bound socket.
    let caddy = Caddy::start();
    let registry = Registry::start();
    let app = format!("inst-{}", &slip_testenv::unique_id()[..8]).to_lowercase();
    let _guard = ContainerGuard::new("slip.app", &app);
    registry.push(&Image::release("v1"), &app, "v1");
    let port = slip_testenv::free_port();
    configure_for_test(&root, &caddy, &registry, &app, port);
    let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap();
    let mut slipd = InstalledSlipd::start(&root, "/usr/local/bin/slipd", port);
    slipd.wait_healthy(&http).await;
    assert_eq!(deploy_through_installed(&http, &slipd, &caddy, &app, &secret, &token).await, "v1");
    let slip = root.ids("slip").unwrap();
    assert_owned(&root, "/var/lib/slip/slip.db", slip, 0o600);
    assert_owned(&root, "/var/lib/slip/slipd.lock", slip, 0o600);
    slipd.stop();

    // A second run upgrades in place: keys and config stay, nothing is printed about a new secret.
    let config_before = std::fs::read_to_string(root.path("/etc/slip/slip.toml")).unwrap();
    std::fs::write(root.path("/usr/local/bin/slipd"), b"#!/bin/sh\necho stale\n").unwrap();
    let second = piped_install(&root, &["--from", &tarball]);
    let second_text = text(&second);
    assert!(second.status.success(), "second install.sh failed:\n{second_text}");
    assert_eq!(env_file(&root), env, "slip.env kept");
    assert_eq!(std::fs::read_to_string(root.path("/etc/slip/slip.toml")).unwrap(), config_before, "slip.toml kept");
    assert!(!second_text.contains(&secret), "an existing secret is never printed again:\n{second_text}");
    assert!(root.path("/var/lib/slip/slip.db").exists(), "state kept");
    assert_eq!(
        std::fs::read(root.path("/usr/local/bin/slipd")).unwrap(),
        extracted_slipd(&root, &tarball),
        "the binary was replaced by the release's"
    );
    assert_layout(&root, "/usr/local/bin");

    // --public-domain writes server.public_domain into the existing file and changes nothing else.
    let third = piped_install(&root, &["--from", &tarball, "--public-domain", "deploy.example.com"]);
    let third_text = text(&third);
    assert!(third.status.success(), "{third_text}");
    let with_domain = std::fs::read_to_string(root.path("/etc/slip/slip.toml")).unwrap();
    assert_eq!(
        with_domain,
        config_before.replacen("[server]\n", "[server]\npublic_domain = \"deploy.example.com\"\n", 1),
        "one line added under [server]"
    );
    assert!(third_text.contains("✓ Configuration is valid"), "{third_text}");
    let bad = piped_install(&root, &["--from", &tarball, "--public-domain", "not a host"]);
    assert!(!bad.status.success() && text(&bad).contains("is not a hostname"), "{}", text(&bad));

    // Uninstall keeps config and state; purge removes them and the user.
    root.ok(Some(&install_script()), "bash", &["-s", "--", "--uninstall"]);
    for gone in ["/usr/local/bin/slipd", "/usr/local/bin/slip", "/etc/systemd/system/slipd.service", WANTS] {
        assert!(!root.path(gone).exists() && !root.path(gone).is_symlink(), "{gone} removed");
    }
    assert_eq!(env_file(&root), env, "uninstall keeps slip.env");
    assert!(root.path("/var/lib/slip/slip.db").exists() && root.ids("slip").is_some());
    root.ok(Some(&install_script()), "bash", &["-s", "--", "--uninstall", "--purge"]);
    for gone in ["/etc/slip", "/var/lib/slip"] {
        assert!(!root.path(gone).exists(), "{gone} purged");
    }
    assert!(root.ids("slip").is_none() && root.group("slip").is_none(), "user and group purged");
}

/// The slipd inside the release tarball, extracted in the root.
fn extracted_slipd(root: &Root, tarball: &str) -> Vec<u8> {
    root.ok(None, "sh", &["-c", &format!("mkdir -p /tmp/x && tar -xzf {tarball} -C /tmp/x")]);
    std::fs::read(root.path(&format!("/tmp/x/slip-{VERSION}-x86_64-linux/bin/slipd"))).unwrap()
}

#[test]
fn a_checksum_mismatch_installs_nothing() {
    let root = Root::fresh();
    let tarball = stage_tarball(&root);
    let mut bytes = std::fs::read(root.path(&tarball)).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(root.path(&tarball), bytes).unwrap();
    let out = piped_install(&root, &["--from", &tarball]);
    let text = text(&out);
    assert!(!out.status.success());
    assert!(text.contains("checksum mismatch"), "{text}");
    assert!(!root.path("/usr/local/bin/slipd").exists() && root.ids("slip").is_none(), "nothing installed");

    std::fs::remove_file(root.path(&format!("{tarball}.sha256"))).unwrap();
    let out = piped_install(&root, &["--from", &tarball]);
    assert!(!out.status.success());
    assert!(self::text(&out).contains(".sha256"), "{}", self::text(&out));
}

#[test]
fn the_debian_package_sets_up_the_same_layout_and_purges_it() {
    let mut root = Root::fresh();
    root.bind_docker_socket();
    let deb = artefact(&format!("slip_{VERSION}-1_amd64.deb"));
    root.copy_in(&deb, "/tmp/slip.deb");

    let first = root.ok(None, "dpkg", &["-i", "/tmp/slip.deb"]);
    assert_layout(&root, "/usr/bin");
    let env = env_file(&root);
    let secret = key_from(&env, "SLIP_SECRET");
    assert!(first.contains(&format!("SLIP_SECRET={secret}")), "{first}");
    assert!(first.contains("systemd is not running"), "{first}");
    assert_unit_verifies(&root, "/lib/systemd/system/slipd.service");
    assert!(root.path(WANTS).is_symlink(), "the package enables the unit");
    let unit = std::fs::read_to_string(root.path("/lib/systemd/system/slipd.service")).unwrap();
    assert!(unit.contains("ExecStart=/usr/bin/slipd --config /etc/slip"), "{unit}");

    // Reinstalling (an upgrade) keeps the keys.
    let again = root.ok(None, "dpkg", &["-i", "/tmp/slip.deb"]);
    assert_eq!(env_file(&root), env);
    assert!(!again.contains(&secret), "{again}");

    root.ok(None, "dpkg", &["--remove", "slip"]);
    assert!(!root.path("/usr/bin/slipd").exists());
    assert!(!root.path(WANTS).is_symlink(), "remove disables the unit");
    assert_eq!(env_file(&root), env, "remove keeps slip.env");
    root.ok(None, "dpkg", &["--purge", "slip"]);
    assert!(!root.path("/etc/slip").exists() && !root.path("/var/lib/slip").exists());
    assert!(root.ids("slip").is_none(), "purge removes the slip user");
}
