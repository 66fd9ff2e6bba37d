//! Clean-up of a test's containers by label, on drop, so a failing test leaves nothing running.
//!
//! A guard removes what carries its label (`key=value`), whoever created it: the test itself or the code under test.
//! It never touches unlabelled objects or shared ones such as networks.

use crate::cmd;

/// Which engine's command-line client a [`ContainerGuard`] cleans up with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Engine {
    /// `docker`, talking to [`crate::DOCKER_SOCKET`].
    Docker,
    /// `podman`, working on the same storage as the API service behind [`crate::PODMAN_SOCKET`].
    Podman,
}

impl Engine {
    /// The engine's command-line client: `docker` or `podman`.
    pub fn program(self) -> &'static str {
        match self {
            Engine::Docker => "docker",
            Engine::Podman => "podman",
        }
    }
}

/// Force-removes every container (and volume; with Podman also every pod) labelled `key=value` when dropped.
///
/// Create it before starting anything, with a label unique to the test (see [`crate::unique_id`]), and keep it alive
/// to the end of the test: `let _guard = ContainerGuard::new("slip.test", &id);` (not `let _ = …`, which drops it
/// at once).
#[derive(Debug)]
pub struct ContainerGuard {
    engine: Engine,
    label: String,
}

impl ContainerGuard {
    /// A guard for Docker containers and volumes labelled `key=value`.
    pub fn new(key: &str, value: &str) -> ContainerGuard {
        ContainerGuard::for_engine(Engine::Docker, key, value)
    }

    /// A guard for Podman pods, containers and volumes labelled `key=value`.
    pub fn podman(key: &str, value: &str) -> ContainerGuard {
        ContainerGuard::for_engine(Engine::Podman, key, value)
    }

    /// A guard for `engine`'s objects labelled `key=value`.
    pub fn for_engine(engine: Engine, key: &str, value: &str) -> ContainerGuard {
        ContainerGuard { engine, label: format!("{key}={value}") }
    }

    /// The guarded label as `key=value`, ready for `--label` or a `label=` filter.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// Ids of all containers, running or not, that carry the label.
    #[track_caller]
    pub fn container_ids(&self) -> Vec<String> {
        let filter = format!("label={}", self.label);
        let program = self.engine.program();
        let listing =
            cmd::run(program, ["ps", "--all", "--quiet", "--filter", &filter], None, &format!("{program} ps"));
        listing.lines().map(str::to_owned).collect()
    }

    /// Removes everything labelled now; returns what failed, one line per failed command.
    pub fn remove_all(&self) -> Result<(), String> {
        let program = self.engine.program();
        let filter = format!("label={}", self.label);
        let mut steps: Vec<(Vec<&str>, Vec<&str>)> = Vec::new();
        if self.engine == Engine::Podman {
            steps.push((vec!["pod", "ps", "--quiet", "--filter", &filter], vec!["pod", "rm", "--force"]));
        }
        steps.push((vec!["ps", "--all", "--quiet", "--filter", &filter], vec!["rm", "--force", "--volumes"]));
        steps.push((vec!["volume", "ls", "--quiet", "--filter", &filter], vec!["volume", "rm", "--force"]));
        let mut failures = Vec::new();
        for (list, remove) in steps {
            let ids = match cmd::try_run(program, &list, None) {
                Ok(ids) => ids,
                Err(failure) => {
                    failures.push(format!("`{program} {}` failed: {}", list.join(" "), describe(failure)));
                    continue;
                }
            };
            let ids: Vec<&str> = ids.lines().filter(|id| !id.is_empty()).collect();
            if ids.is_empty() {
                continue;
            }
            let args: Vec<&str> = remove.iter().copied().chain(ids.iter().copied()).collect();
            if let Err(failure) = cmd::try_run(program, &args, None) {
                failures.push(format!("`{program} {}` failed: {}", args.join(" "), describe(failure)));
            }
        }
        if failures.is_empty() { Ok(()) } else { Err(failures.join("\n")) }
    }
}

impl Drop for ContainerGuard {
    fn drop(&mut self) {
        // A panic here would abort a test that is already unwinding, so failures are reported, not raised.
        if let Err(failures) = self.remove_all() {
            eprintln!("slip-testenv: cleaning up objects labelled {} failed:\n{failures}", self.label);
        }
    }
}

fn describe(failure: cmd::Failure) -> String {
    match failure {
        cmd::Failure::NotStarted(error) => error.to_string(),
        cmd::Failure::Exited { status, stderr } => format!("{status}: {}", stderr.trim()),
    }
}
