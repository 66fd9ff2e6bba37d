//! Fresh Debian root file systems for installer tests.
//!
//! One `debootstrap --variant=minbase --include=systemd,procps bookworm` root (a minimal server: systemd installed but,
//! in a chroot, not running) is built per machine (under `target/slip-test-roots/`, behind a
//! `flock`, so parallel test processes build it once) and never modified. Each test gets its own [`Root`]: an
//! overlay mount whose lower layer is that base, so every test starts from the same untouched Debian and a test's
//! writes vanish with it. The host's Docker socket can be bound into a root for tests that run slipd inside it.
//! Everything mounted is unmounted on drop, even when the test panicked.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// Where the base root and the per-test overlays live.
fn roots_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"));
    let dir = target.join("slip-test-roots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The Debian mirror apt uses on this machine (debootstrap needs one), else Debian's default.
fn mirror() -> String {
    if let Ok(m) = std::env::var("SLIP_DEBIAN_MIRROR") {
        return m;
    }
    let sources = std::fs::read_to_string("/etc/apt/sources.list.d/debian.sources").unwrap_or_default();
    sources
        .lines()
        .find_map(|l| l.strip_prefix("URIs:").map(|u| u.split_whitespace().next().unwrap_or("").to_owned()))
        .filter(|u| u.ends_with("/debian"))
        .unwrap_or_else(|| "http://deb.debian.org/debian".to_owned())
}

/// The shared, read-only base root, built on first use.
fn base() -> PathBuf {
    let dir = roots_dir();
    let base = dir.join("bookworm-systemd");
    if base.join(".complete").exists() {
        return base;
    }
    let found = Command::new("debootstrap").arg("--version").output();
    assert!(
        found.is_ok_and(|o| o.status.success()),
        "debootstrap is not installed; the installer tests need it (hint: sudo scripts/setup.sh --dev)"
    );
    let script = format!(
        "test -e '{base}/.complete' && exit 0; rm -rf '{base}.tmp' '{base}' && \
         debootstrap --variant=minbase --include=systemd,procps bookworm '{base}.tmp' '{mirror}' >'{base}.log' 2>&1 && \
         touch '{base}.tmp/.complete' && mv '{base}.tmp' '{base}'",
        base = base.display(),
        mirror = mirror(),
    );
    let status =
        Command::new("flock").arg(dir.join("bookworm-systemd.lock")).args(["sh", "-c", &script]).status().unwrap();
    let log = std::fs::read_to_string(dir.join("bookworm-systemd.log")).unwrap_or_default();
    assert!(status.success(), "debootstrap failed; its log:\n{log}");
    base
}

/// One test's Debian root: an overlay over the shared base.
pub struct Root {
    dir: tempfile::TempDir,
    merged: PathBuf,
    mounts: Vec<PathBuf>,
}

impl Root {
    /// A fresh root, as debootstrap left it.
    pub fn fresh() -> Root {
        let base = base();
        let dir = tempfile::tempdir_in(roots_dir()).unwrap();
        let (upper, work, merged) = (dir.path().join("upper"), dir.path().join("work"), dir.path().join("merged"));
        for d in [&upper, &work, &merged] {
            std::fs::create_dir(d).unwrap();
        }
        let options = format!("lowerdir={},upperdir={},workdir={}", base.display(), upper.display(), work.display());
        run_host("mount", &["-t", "overlay", "overlay", "-o", &options, merged.to_str().unwrap()]);
        Root { dir, mounts: vec![merged.clone()], merged }
    }

    /// A path inside the root, as the host sees it.
    pub fn path(&self, inside: &str) -> PathBuf {
        self.merged.join(inside.trim_start_matches('/'))
    }

    /// Makes the host's Docker socket appear at `/run/docker.sock` (`/var/run` is `/run` in Debian).
    pub fn bind_docker_socket(&mut self) {
        let target = self.path("/run/docker.sock");
        std::fs::write(&target, b"").unwrap();
        run_host("mount", &["--bind", slip_testenv::DOCKER_SOCKET, target.to_str().unwrap()]);
        self.mounts.push(target);
    }

    /// Copies a host file into the root at `inside`.
    pub fn copy_in(&self, host: &Path, inside: &str) {
        std::fs::copy(host, self.path(inside)).unwrap_or_else(|e| panic!("copying {} in: {e}", host.display()));
    }

    /// Runs `program args` inside the root as root, with `stdin`; returns its output.
    pub fn run(&self, stdin: Option<&[u8]>, program: &str, args: &[&str]) -> Output {
        use std::io::Write;
        let mut child = self
            .command(program, args)
            .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        if let Some(input) = stdin {
            child.stdin.take().unwrap().write_all(input).unwrap();
        }
        child.wait_with_output().unwrap()
    }

    /// Like [`Root::run`], but panics with its output unless it succeeds; returns stdout and stderr together.
    pub fn ok(&self, stdin: Option<&[u8]>, program: &str, args: &[&str]) -> String {
        let out = self.run(stdin, program, args);
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success(), "{program} {args:?} in the root failed ({}):\n{text}", out.status);
        text
    }

    /// A `chroot` command for `program args` with a clean environment.
    pub fn command(&self, program: &str, args: &[&str]) -> Command {
        let mut command = Command::new("chroot");
        command
            .arg(&self.merged)
            .arg(program)
            .args(args)
            .env_clear()
            .env("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
            .env("HOME", "/root")
            .env("LANG", "C.UTF-8");
        command
    }

    /// uid and gid of `user` inside the root, if it exists.
    pub fn ids(&self, user: &str) -> Option<(u32, u32)> {
        let passwd = std::fs::read_to_string(self.path("/etc/passwd")).unwrap();
        passwd.lines().find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f[0] == user).then(|| (f[2].parse().unwrap(), f[3].parse().unwrap()))
        })
    }

    /// Whether `group` exists inside the root, and its members.
    pub fn group(&self, group: &str) -> Option<(u32, Vec<String>)> {
        let groups = std::fs::read_to_string(self.path("/etc/group")).unwrap();
        groups.lines().find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f[0] == group).then(|| {
                (f[2].parse().unwrap(), f[3].split(',').filter(|m| !m.is_empty()).map(str::to_owned).collect())
            })
        })
    }
}

impl Drop for Root {
    fn drop(&mut self) {
        for mount in self.mounts.iter().rev() {
            let _ = Command::new("umount").arg(mount).status();
        }
        let _ = &self.dir;
    }
}

fn run_host(program: &str, args: &[&str]) {
    let out = Command::new(program).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{program} {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
