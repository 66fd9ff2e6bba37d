//! The commented starter files `slip init` writes: the repo config, a pod manifest for pods, and the
//! server's app file. Pure text from a [`Starter`]; writing them is `init`'s job.
//!
//! Each file is valid as written (the tests load them with slip-core's real parsers), and the commented
//! lines show the keys a new app most often needs next.

use slip_core::config::Kind;
use slip_core::names::AppName;

/// What the starter files describe.
#[derive(Debug, Clone)]
pub struct Starter {
    /// The app's name.
    pub name: AppName,
    /// web, worker or pod.
    pub kind: Kind,
    /// The image repository, without a tag, as the user wrote it.
    pub image: String,
    /// The route's hostname (web and pod).
    pub domain: String,
    /// The container port that serves HTTP (web and pod).
    pub port: u16,
}

/// `slip/slip.toml`, the repo config (SPEC §5).
pub fn repo_config(s: &Starter) -> String {
    let name = &s.name;
    let mut out = format!(
        r#"# slip repo config: what {name} is. slipd reads it from /slip/slip.toml inside the image,
# so the Dockerfile needs:
#
#   COPY slip/ /slip/
#
# Every key is optional, and the server's app file wins for each key it sets.
# Check this file with `slip validate`. Nothing here is interpolated.

[app]
name = "{name}"
kind = "{kind}"
"#,
        kind = s.kind
    );
    match s.kind {
        Kind::Web => out.push_str(&format!(
            r#"
[routing]
# The port the app listens on inside the container.
port = {port}

[health]
# slipd sends GET <path> before it switches traffic; any 2xx or 3xx is healthy.
# Without a path, the check is "running for stable_for without restarting".
path = "/health"
# interval = "2s"
# timeout = "5s"
# retries = 5
# start_period = "10s"
"#,
            port = s.port
        )),
        Kind::Worker => out.push_str(
            r#"
[health]
# A worker has no route: it is healthy once it has run for stable_for without restarting.
# stable_for = "5s"
# A worker with an HTTP endpoint can be probed instead:
# path = "/health"
# port = 9000
"#,
        ),
        Kind::Pod => out.push_str(&format!(
            r#"# The pod's manifest inside the image: slip/pod.yaml in this repo.
manifest = "/slip/pod.yaml"

[routing]
# The container that receives the traffic, and its port.
container = "web"
port = {port}

[health]
# The route target gets this HTTP probe; the other containers are healthy once running and stable.
path = "/health"
# interval = "2s"
# start_period = "10s"

# Probe another container over HTTP:
# [health.containers.worker]
# path = "/health"
# port = 9000
"#,
            port = s.port
        )),
    }
    out.push_str(
        r#"
# Resource requests; the server's [resources] wins.
# [defaults.resources]
# memory = "512m"
# cpus = "1.0"

# Previews (short-lived deploys of a branch) need this and the server's consent.
# [preview]
# enabled = true
# ttl = "3d"
#
# [preview.hooks]
# migrate = "bin/migrate"
"#,
    );
    out
}

/// `slip/pod.yaml`, the pod manifest (SPEC §14), for pods.
pub fn pod_manifest(s: &Starter) -> String {
    format!(
        r#"# Pod manifest for slip, run by Podman kube play. slip renames the pod, pins each image to the
# digest it pulled, publishes only the route and health ports (on 127.0.0.1), and adds the app's
# environment, secrets and volumes. Check it with `slip validate`.
apiVersion: v1
kind: Pod
metadata:
  name: {name}
spec:
  containers:
    - name: web
      # ${{tag}} becomes each deploy's tag.
      image: {image}:${{tag}}
      ports:
        - containerPort: {port}
    # A sidecar: pin its version.
    # - name: cache
    #   image: docker.io/library/redis:7.2
"#,
        name = s.name,
        image = s.image,
        port = s.port
    )
}

/// `<name>.toml`, the server's app file (SPEC §4), for `/etc/slip/apps/`.
pub fn server_app(s: &Starter) -> String {
    let name = &s.name;
    let var = name.as_str().to_ascii_uppercase().replace('-', "_");
    let mut out = format!(
        r#"# slipd app config for {name}: where and how it runs.
# Install it on the server as /etc/slip/apps/{name}.toml, then check everything with
#   sudo slipd --config /etc/slip --check
# Strings may use ${{VAR}} from slipd's environment or /etc/slip/slip.env.

[app]
name = "{name}"
# The image repository, without a tag: each deploy names its tag.
image = "{image}"
# This app's own webhook key (otherwise auth.secret signs for it):
# secret = "${{{var}_SECRET}}"
"#,
        image = s.image
    );
    match s.kind {
        Kind::Web | Kind::Pod => out.push_str(&format!(
            r#"
[routing]
domain = "{domain}"
# The port (and, for pods, the container) come from the repo's slip/slip.toml.

# [deploy]
# strategy = "blue-green"
# drain_timeout = "30s"
"#,
            domain = s.domain
        )),
        Kind::Worker => out.push_str(&format!(
            r#"
# Workers are deployed with the recreate strategy: the old container stops first.
# A writable volume under storage.volume_roots:
# [[volumes]]
# host_path = "/var/lib/slip/volumes/{name}/data"
# mount_path = "/data"
"#
        )),
    }
    out.push_str(
        r#"
# [env]
# LOG_LEVEL = "info"

# [resources]
# memory = "512m"
# cpus = "1.0"
"#,
    );
    out
}

#[cfg(test)]
mod tests {
    use slip_core::config::{self, SourceFile, Sources, UnknownKeys};
    use slip_core::pod_manifest::{self, Policy, Strictness};
    use slip_core::repo_config;

    use super::*;

    fn starter(kind: Kind) -> Starter {
        Starter {
            name: "my-app".parse().unwrap(),
            kind,
            image: "ghcr.io/you/my-app".into(),
            domain: "my-app.example.com".into(),
            port: 8080,
        }
    }

    fn render(problems: &[config::Problem]) -> String {
        problems.iter().map(|p| format!("{p}\n")).collect()
    }

    #[test]
    fn every_starter_loads_without_problems_or_warnings() {
        for kind in [Kind::Web, Kind::Worker, Kind::Pod] {
            let s = starter(kind);
            let sources = Sources {
                slip_toml: None,
                apps: vec![SourceFile { path: "apps/my-app.toml".into(), text: server_app(&s) }],
                env: Default::default(),
            };
            let loaded = config::parse(&sources).unwrap_or_else(|p| panic!("{kind}: {}", render(&p)));
            assert!(loaded.warnings.is_empty(), "{kind}: {}", render(&loaded.warnings));
            let app = &loaded.config.apps[&s.name];
            assert_eq!(app.image.to_string(), "ghcr.io/you/my-app");
            assert_eq!(app.routes.len(), usize::from(kind != Kind::Worker), "{kind}");

            let repo = repo_config::read(
                &SourceFile { path: "slip/slip.toml".into(), text: repo_config(&s) },
                UnknownKeys::Problem,
            );
            assert!(repo.is_valid() && repo.warnings.is_empty(), "{kind}: {}", render(&repo.problems));
            assert_eq!(repo.config.kind, Some(kind));
            assert_eq!(repo.config.name.as_ref(), Some(&s.name));
        }
    }

    #[test]
    fn the_pod_starter_fits_its_repo_config_strictly() {
        let s = starter(Kind::Pod);
        let repo = repo_config::read(
            &SourceFile { path: "slip/slip.toml".into(), text: repo_config(&s) },
            UnknownKeys::Problem,
        );
        let read = pod_manifest::read(
            &SourceFile { path: "slip/pod.yaml".into(), text: pod_manifest(&s) },
            &Policy::default(),
        );
        assert!(read.is_valid() && read.warnings.is_empty(), "{}", render(&read.warnings));
        let manifest = read.manifest.unwrap();
        assert_eq!(manifest.container("web").unwrap().ports, [8080]);
        let found = pod_manifest::check_against(&repo, &manifest, "slip/pod.yaml".as_ref(), Strictness::Strict);
        assert_eq!(found, pod_manifest::Findings::default());
        assert_eq!(repo.config.manifest.as_deref(), Some("/slip/pod.yaml"));
    }
}
