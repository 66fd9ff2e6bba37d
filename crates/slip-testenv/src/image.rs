//! Tiny app images for tests, built locally `FROM scratch` with the static busybox from busybox-static.
//!
//! There is no Docker Hub on the test machines, so every image a test deploys is built here in well under a second.
//! Each image holds `/bin/busybox` (plus applet symlinks), a start script `/app/run` and, for web images, a
//! document root `/www`. Builds are keyed by a hash of their whole content, so an image is built at most once per
//! machine and test processes share it.
//!
//! This module builds images; it does not push them ([`crate::Registry::push`] does) or run them.
//!
//! # What the images do
//! | image | behaviour |
//! |---|---|
//! | [`Image::V1`], [`Image::V2`], [`Image::release`] | busybox `httpd` on `$PORT` (default 8080): `/version` and `/` answer the version, `/health` and `/up` answer 200 `ok` |
//! | [`Image::UNHEALTHY`] | the same httpd, but `/health` and `/up` are 404 |
//! | [`Image::slow_start`] | sleeps the given seconds, then serves like `V1` |
//! | [`Image::WORKER`] | never listens; appends `start <unix-ts> <version>` to `/data/log` when `/data` exists, `stop …` on SIGTERM |
//! | [`Image::CRASHING`] | exits 1 at once |
//!
//! Every web image also serves `/cgi-bin/slow?N`, which answers `slow <version> done after Ns` after N seconds
//! (default 1), for drain tests; `/cgi-bin/say?TEXT`, which prints TEXT (the raw query string) as one line on the
//! container's stdout; and `/cgi-bin/env?NAME`, which prints `NAME=<value of $NAME>` there, for log tests. Every image exits promptly on SIGTERM (a plain `httpd` as PID 1 would ignore it
//! and wait for the engine's SIGKILL); in-flight requests die with it, which is what drain tests need to notice.
//! Start and stop lines go to stdout, prefixed with the version, for log tests.

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::fs;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::{Mutex, OnceLock};

use sha2::{Digest, Sha256};

use crate::cmd;

/// Where busybox-static puts its statically linked binary.
pub const BUSYBOX: &str = "/bin/busybox";

/// The port web images listen on unless the container's `PORT` variable says otherwise.
pub const DEFAULT_PORT: u16 = 8080;

/// One test image: a behaviour, the version string it reports, and optional extra files.
///
/// Values are cheap descriptions; nothing is built until [`Image::build`] or [`crate::Registry::push`].
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Image {
    behaviour: Behaviour,
    version: Cow<'static, str>,
    /// Extra files as (absolute path in the image, contents), e.g. `/slip/slip.toml`.
    files: Vec<(String, Vec<u8>)>,
}

impl Image {
    /// A healthy web release that reports version `v1`.
    pub const V1: Image = Image::web("v1", Health::Healthy, 0);
    /// A healthy web release that reports version `v2`.
    pub const V2: Image = Image::web("v2", Health::Healthy, 0);
    /// A web release whose health endpoints (`/health`, `/up`) answer 404; `/version` says `unhealthy`.
    pub const UNHEALTHY: Image = Image::web("unhealthy", Health::Unhealthy, 0);
    /// A background worker that never listens; see the module docs for its `/data/log` lines.
    pub const WORKER: Image =
        Image { behaviour: Behaviour::Worker, version: Cow::Borrowed("worker"), files: Vec::new() };
    /// A release whose process exits with status 1 as soon as it starts.
    pub const CRASHING: Image =
        Image { behaviour: Behaviour::Crashing, version: Cow::Borrowed("crashing"), files: Vec::new() };

    /// A healthy web release reporting `version`; `Image::release("v1")` is [`Image::V1`].
    ///
    /// Panics unless `version` is 1–64 characters of `[A-Za-z0-9._-]`.
    #[track_caller]
    pub fn release(version: &str) -> Image {
        Image::V1.with_version(version)
    }

    /// A healthy web release that sleeps `secs` seconds before it starts listening; reports `slow-start`.
    pub fn slow_start(secs: u32) -> Image {
        Image::web("slow-start", Health::Healthy, secs)
    }

    /// The same behaviour, reporting `version` instead (in `/version`, in stdout lines and in `/data/log`).
    ///
    /// Panics unless `version` is 1–64 characters of `[A-Za-z0-9._-]`.
    #[track_caller]
    pub fn with_version(mut self, version: &str) -> Image {
        let valid = (1..=64).contains(&version.len())
            && version.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
        assert!(valid, "image version {version:?} must be 1-64 characters of [A-Za-z0-9._-]");
        self.version = Cow::Owned(version.to_owned());
        self
    }

    /// Adds a file at the absolute `path` inside the image (mode 0644), e.g. a repo config at `/slip/slip.toml`.
    ///
    /// Panics unless `path` is absolute and free of `.`/`..` components. A later file at the same path wins.
    #[track_caller]
    pub fn with_file(mut self, path: &str, contents: impl Into<Vec<u8>>) -> Image {
        let relative = path.strip_prefix('/').unwrap_or_else(|| panic!("image file path {path:?} must be absolute"));
        let clean = !relative.is_empty() && relative.split('/').all(|part| !matches!(part, "" | "." | ".."));
        assert!(clean, "image file path {path:?} must name a file without empty, `.` or `..` components");
        self.files.retain(|(existing, _)| existing != path);
        self.files.push((path.to_owned(), contents.into()));
        self
    }

    /// The version string this image reports.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// Builds the image (once per content, shared between test processes) and returns its local tag.
    ///
    /// The tag is `slip-testenv/<kind>-<version>:<content hash>`. Panics when busybox-static is missing or
    /// `docker build` fails; call [`crate::require_docker`] first for a clearer message when Docker is down.
    #[track_caller]
    pub fn build(&self) -> String {
        static BUILT: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());

        let entries = self.context();
        let tag = self.tag(&entries);
        // Holding the lock while building keeps two threads from building the same image at once.
        let mut built = BUILT.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if built.contains(&tag) {
            return tag;
        }
        let present = cmd::try_run("docker", ["image", "inspect", "--format", "{{.Id}}", &tag], None).is_ok();
        if !present {
            let dir = tempfile::tempdir().unwrap_or_else(|error| panic!("cannot create a build context: {error}"));
            write_context(dir.path(), &entries);
            let context = dir.path().to_str().expect("temporary paths are UTF-8");
            cmd::run("docker", ["build", "--quiet", "--tag", &tag, context], None, &format!("docker build -t {tag}"));
        }
        built.insert(tag.clone());
        tag
    }

    const fn web(version: &'static str, health: Health, start_delay_secs: u32) -> Image {
        Image {
            behaviour: Behaviour::Web { health, start_delay_secs },
            version: Cow::Borrowed(version),
            files: Vec::new(),
        }
    }

    fn kind(&self) -> &'static str {
        match self.behaviour {
            Behaviour::Web { .. } => "web",
            Behaviour::Worker => "worker",
            Behaviour::Crashing => "crashing",
        }
    }

    fn tag(&self, entries: &[Entry]) -> String {
        let mut hash = Sha256::new();
        for entry in entries {
            match entry {
                Entry::File { path, mode, contents } => {
                    hash.update(format!("file {path} {mode:o} {}\n", contents.len()));
                    hash.update(contents);
                }
                Entry::Symlink { path, target } => hash.update(format!("symlink {path} {target}\n")),
            }
        }
        let digest = hex::encode(hash.finalize());
        format!("slip-testenv/{}-{}:{}", self.kind(), self.version.to_ascii_lowercase(), &digest[..16])
    }

    /// Every file of the build context, Dockerfile included, in a fixed order.
    fn context(&self) -> Vec<Entry> {
        let version = &*self.version;
        let mut entries = vec![
            Entry::file("Dockerfile", 0o644, self.dockerfile()),
            Entry::File { path: "rootfs/bin/busybox".into(), mode: 0o755, contents: busybox().to_vec() },
        ];
        for applet in APPLETS {
            entries.push(Entry::Symlink { path: format!("rootfs/bin/{applet}"), target: "busybox".into() });
        }
        let run = match self.behaviour {
            Behaviour::Web { health, start_delay_secs } => {
                for page in ["version", "index.html"] {
                    entries.push(Entry::file(&format!("rootfs/www/{page}"), 0o644, version.to_owned()));
                }
                if health == Health::Healthy {
                    for page in ["health", "up"] {
                        entries.push(Entry::file(&format!("rootfs/www/{page}"), 0o644, "ok\n".to_owned()));
                    }
                }
                entries.push(Entry::file("rootfs/www/cgi-bin/slow", 0o755, slow_cgi(version)));
                entries.push(Entry::file("rootfs/www/cgi-bin/say", 0o755, SAY_CGI.to_owned()));
                entries.push(Entry::file("rootfs/www/cgi-bin/env", 0o755, ENV_CGI.to_owned()));
                web_script(version, start_delay_secs)
            }
            Behaviour::Worker => worker_script(version),
            Behaviour::Crashing => crashing_script(version),
        };
        entries.push(Entry::file("rootfs/app/run", 0o755, run));
        for (path, contents) in &self.files {
            entries.push(Entry::File { path: format!("rootfs{path}"), mode: 0o644, contents: contents.clone() });
        }
        entries
    }

    fn dockerfile(&self) -> String {
        let expose = match self.behaviour {
            Behaviour::Web { .. } => format!("EXPOSE {DEFAULT_PORT}\n"),
            Behaviour::Worker | Behaviour::Crashing => String::new(),
        };
        format!(
            "FROM scratch\nCOPY rootfs/ /\nENV PATH=/bin\n{expose}LABEL org.slip.testenv.version=\"{}\"\n\
             CMD [\"/bin/sh\", \"/app/run\"]\n",
            self.version
        )
    }
}

/// What the image's process does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Behaviour {
    /// busybox httpd serving `/www`, optionally after a delay.
    Web { health: Health, start_delay_secs: u32 },
    /// A loop that never listens.
    Worker,
    /// Exits 1 immediately.
    Crashing,
}

/// Whether a web image's health endpoints exist.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Health {
    Healthy,
    Unhealthy,
}

/// One file of a build context, relative to the context directory.
enum Entry {
    File { path: String, mode: u32, contents: Vec<u8> },
    Symlink { path: String, target: String },
}

impl Entry {
    fn file(path: &str, mode: u32, contents: String) -> Entry {
        Entry::File { path: path.to_owned(), mode, contents: contents.into_bytes() }
    }
}

/// Applets reachable by name on `PATH=/bin`, for the scripts and for commands tests run in containers.
const APPLETS: [&str; 16] = [
    "sh", "httpd", "sleep", "date", "cat", "echo", "ls", "env", "mkdir", "rm", "touch", "true", "false", "kill", "ps",
    "wget",
];

/// The static busybox binary, read once per process; panics with the fix when it is missing or dynamic.
fn busybox() -> &'static [u8] {
    static BYTES: OnceLock<Vec<u8>> = OnceLock::new();
    BYTES.get_or_init(|| {
        let mut bytes = Vec::new();
        fs::File::open(BUSYBOX)
            .and_then(|mut file| file.read_to_end(&mut bytes))
            .unwrap_or_else(|error| panic!("cannot read {BUSYBOX} ({error}): run `sudo scripts/setup.sh --dev`"));
        assert!(
            is_static_elf(&bytes),
            "{BUSYBOX} is not a statically linked ELF binary, so it cannot run in a FROM scratch image: install \
             busybox-static (`sudo scripts/setup.sh --dev`)"
        );
        bytes
    })
}

/// True for a 64-bit little-endian ELF file without a `PT_INTERP` program header (no dynamic loader needed).
fn is_static_elf(bytes: &[u8]) -> bool {
    const PT_INTERP: u32 = 3;
    let u16_at = |at: usize| bytes.get(at..at + 2).map(|b| u16::from_le_bytes([b[0], b[1]]) as usize);
    let u32_at = |at: usize| bytes.get(at..at + 4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
    let u64_at = |at: usize| bytes.get(at..at + 8).map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")) as usize);
    // e_ident: magic, ELFCLASS64 (2), ELFDATA2LSB (1).
    if bytes.get(..6) != Some(b"\x7fELF\x02\x01") {
        return false;
    }
    let (Some(phoff), Some(phentsize), Some(phnum)) = (u64_at(0x20), u16_at(0x36), u16_at(0x38)) else {
        return false;
    };
    (0..phnum).all(|index| matches!(u32_at(phoff + index * phentsize), Some(kind) if kind != PT_INTERP))
}

fn write_context(dir: &Path, entries: &[Entry]) {
    for entry in entries {
        let (path, result) = match entry {
            Entry::File { path, mode, contents } => {
                let full = dir.join(path);
                let result = fs::create_dir_all(full.parent().expect("context files live in a directory"))
                    .and_then(|()| fs::write(&full, contents))
                    .and_then(|()| fs::set_permissions(&full, fs::Permissions::from_mode(*mode)));
                (path, result)
            }
            Entry::Symlink { path, target } => (path, std::os::unix::fs::symlink(target, dir.join(path))),
        };
        result.unwrap_or_else(|error| panic!("cannot write {path} into the build context: {error}"));
    }
}

/// The start script shared by web images; `exit` in the trap ends PID 1 and with it the container.
fn web_script(version: &str, start_delay_secs: u32) -> String {
    let delay = if start_delay_secs > 0 {
        format!(
            "echo \"$variant: sleeping {start_delay_secs}s before listening\"\nsleep {start_delay_secs} &\nwait $!\n"
        )
    } else {
        String::new()
    };
    format!(
        "#!/bin/sh\n\
         variant='{version}'\n\
         port=\"${{PORT:-{DEFAULT_PORT}}}\"\n\
         trap 'echo \"$variant: stopping on SIGTERM\"; exit 0' TERM INT\n\
         echo \"$variant: starting\"\n\
         {delay}\
         httpd -f -p \"$port\" -h /www &\n\
         echo \"$variant: listening on $port\"\n\
         wait $!\n\
         status=$?\n\
         echo \"$variant: httpd exited with status $status\"\n\
         exit $status\n"
    )
}

fn worker_script(version: &str) -> String {
    format!(
        "#!/bin/sh\n\
         variant='{version}'\n\
         note() {{ if [ -d /data ]; then echo \"$1 $(date +%s) $variant\" >> /data/log; fi; }}\n\
         trap 'note stop; echo \"$variant: stopping on SIGTERM\"; exit 0' TERM INT\n\
         note start\n\
         echo \"$variant: working\"\n\
         while true; do\n\
         \x20 sleep 3600 &\n\
         \x20 wait $!\n\
         done\n"
    )
}

fn crashing_script(version: &str) -> String {
    format!("#!/bin/sh\necho '{version}: crashing on purpose' >&2\nexit 1\n")
}

/// `GET /cgi-bin/slow?N` sleeps N seconds (default 1), then answers; busybox httpd runs it as a CGI script.
fn slow_cgi(version: &str) -> String {
    format!(
        "#!/bin/sh\n\
         secs=\"${{QUERY_STRING:-1}}\"\n\
         case \"$secs\" in ''|*[!0-9]*) secs=1 ;; esac\n\
         sleep \"$secs\"\n\
         printf 'Content-Type: text/plain\\r\\n\\r\\nslow %s done after %ss\\n' '{version}' \"$secs\"\n"
    )
}

/// `GET /cgi-bin/say?TEXT` prints TEXT on the container's stdout, which is PID 1's: a CGI script's own stdout is
/// the HTTP answer.
const SAY_CGI: &str = "#!/bin/sh\n\
                       echo \"$QUERY_STRING\" > /proc/1/fd/1\n\
                       printf 'Content-Type: text/plain\\r\\n\\r\\nsaid\\n'\n";

/// `GET /cgi-bin/env?NAME` prints `NAME=<value>` of the container's environment on its stdout, as an app that
/// logs its configuration would; NAME must be a shell variable name.
const ENV_CGI: &str = "#!/bin/sh\n\
                       case \"$QUERY_STRING\" in ''|[0-9]*|*[!A-Za-z0-9_]*) printf 'Status: 400\\r\\n\\r\\n'; exit 0 ;; esac\n\
                       eval \"value=\\${$QUERY_STRING}\"\n\
                       echo \"$QUERY_STRING=$value\" > /proc/1/fd/1\n\
                       printf 'Content-Type: text/plain\\r\\n\\r\\nprinted\\n'\n";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn busybox_from_busybox_static_is_a_static_elf() {
        assert!(is_static_elf(busybox()));
    }

    #[test]
    fn dynamic_and_foreign_files_are_not_static_elves() {
        assert!(!is_static_elf(b"#!/bin/sh\n"));
        assert!(!is_static_elf(&[]));
        let bash = fs::read("/bin/bash").expect("bash is installed");
        assert!(!is_static_elf(&bash), "bash is dynamically linked");
    }

    #[test]
    fn tags_depend_on_content_and_version() {
        let v1 = Image::V1.tag(&Image::V1.context());
        assert_eq!(v1, Image::V1.tag(&Image::V1.context()), "tags are deterministic");
        assert!(v1.starts_with("slip-testenv/web-v1:"), "{v1}");
        let v2 = Image::V2.tag(&Image::V2.context());
        assert_ne!(v1, v2);
        let with_config = Image::V1.with_file("/slip/slip.toml", "[app]\nname = \"web\"\n");
        assert_ne!(v1, with_config.tag(&with_config.context()));
        let worker = Image::WORKER.with_version("V2");
        assert!(worker.tag(&worker.context()).starts_with("slip-testenv/worker-v2:"));
    }

    #[test]
    fn unhealthy_images_have_no_health_pages() {
        let paths = |image: &Image| -> Vec<String> {
            image
                .context()
                .into_iter()
                .filter_map(|entry| match entry {
                    Entry::File { path, .. } => Some(path),
                    Entry::Symlink { .. } => None,
                })
                .collect()
        };
        assert!(paths(&Image::V1).contains(&"rootfs/www/health".to_owned()));
        assert!(!paths(&Image::UNHEALTHY).contains(&"rootfs/www/health".to_owned()));
        assert!(!paths(&Image::UNHEALTHY).contains(&"rootfs/www/up".to_owned()));
        assert!(paths(&Image::UNHEALTHY).contains(&"rootfs/www/version".to_owned()));
    }

    #[test]
    fn versions_and_paths_are_validated() {
        for bad in ["", "v 1", "v1'; rm -rf /", &"x".repeat(65)] {
            assert!(std::panic::catch_unwind(|| Image::release(bad)).is_err(), "{bad:?} should be refused");
        }
        for bad in ["slip/slip.toml", "/", "/slip/../etc/passwd", "/slip//x"] {
            assert!(std::panic::catch_unwind(|| Image::V1.with_file(bad, "x")).is_err(), "{bad:?} should be refused");
        }
        let image = Image::V1.with_file("/slip/slip.toml", "a").with_file("/slip/slip.toml", "b");
        assert_eq!(image.files, vec![("/slip/slip.toml".to_owned(), b"b".to_vec())]);
    }
}
