//! [`InstanceRuntime`], [`ImageStore`] and [`LogSource`] over the Docker-compatible engine API, through bollard: Docker Engine ≥ 20.10 (API 1.41)
//! or Podman ≥ 4.3 on its Docker-compatible socket.
//!
//! [`Runtime::detect`] implements `runtime.backend` (SPEC §3.2): the first Podman socket that answers a ping,
//! else Docker. The API version is negotiated, never pinned. Every request is bounded (60 s, SPEC §7.8) except
//! streams; a pull fails when it makes no progress for 2 minutes.
//!
//! Deliberately not here: choosing names, labels, ports or limits (the deploy driver does), choosing credentials
//! (the caller picks them by registry host), retries, pods (`kube play` is Podman's own API: a pod spec is refused
//! here), and logging. This
//! module never logs a container's environment, registry credentials or engine answers that may echo them; bollard
//! itself does at debug level, which is why the daemon must apply [`LOG_FILTER_DIRECTIVE`].

mod create;
pub(crate) mod errors;
mod events;
mod extract;
mod logs;
mod reference;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;
use bollard::Docker;
use bollard::auth::DockerCredentials;
use bollard::models::{ContainerInspectResponse, ContainerSummaryStateEnum, NetworkCreateRequest, PortMap};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, CreateImageOptionsBuilder, ListContainersOptionsBuilder, ListNetworksOptionsBuilder,
    RemoveContainerOptionsBuilder, RemoveImageOptionsBuilder, StopContainerOptionsBuilder,
};
use futures::StreamExt;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use self::errors::{Answer, PullFailure};
use self::reference::Reference;
use crate::ports::{
    ContainerSpec, ContainerState, ImageFile, ImageStore, InstanceId, InstanceRuntime, InstanceSpec, InstanceState,
    InstanceSummary, LogRequest, LogSource, LogStream, PortMapping, PulledImage, RegistryCredentials, RuntimeError,
    RuntimeEvents,
};

/// Docker's default socket.
pub const DOCKER_SOCKET: &str = "/var/run/docker.sock";

/// Rootful Podman's socket; the rootless one is `$XDG_RUNTIME_DIR/podman/podman.sock`.
pub const PODMAN_SOCKET: &str = "/run/podman/podman.sock";

/// Bound on one engine API request (SPEC §7.8); streams are bounded by progress instead.
pub const API_TIMEOUT: Duration = Duration::from_secs(60);

/// A pull that reports nothing for this long has stalled (SPEC §7.8).
pub const PULL_STALL_TIMEOUT: Duration = Duration::from_secs(120);

/// The log filter directive that keeps bollard quiet whatever `RUST_LOG` asks for; append it to the filter.
///
/// At debug level bollard logs every request body and every decoded answer. Container create bodies and inspect
/// answers carry the container's environment, that is, secret values.
pub const LOG_FILTER_DIRECTIVE: &str = "bollard=warn";

/// How long auto-detection waits for a Podman socket to answer a ping.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// Which engine to use (`runtime.backend`), and which one a [`Runtime`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Backend {
    /// The first Podman socket that answers, else Docker. Only ever an input: a connected runtime knows which.
    Auto,
    /// Docker Engine.
    Docker,
    /// Podman's Docker-compatible API.
    Podman,
}

/// A connection to one container engine.
#[derive(Debug)]
pub struct Runtime {
    docker: Docker,
    /// The socket path, for error messages.
    socket: String,
    backend: Backend,
    /// Serialises "create the network if missing": Docker 20.10 accepts duplicate network names.
    network_lock: tokio::sync::Mutex<()>,
}

impl Runtime {
    /// Connects to the engine at `socket` (`unix:///path` or a path; default [`DOCKER_SOCKET`]), negotiates the
    /// API version and finds out whether it is Docker or Podman.
    pub async fn connect(socket: Option<&str>) -> Result<Runtime, RuntimeError> {
        let path = socket_path(socket.unwrap_or(DOCKER_SOCKET))?;
        let docker = connect_unix(&path, API_TIMEOUT)?;
        let unreachable = |err: bollard::errors::Error| RuntimeError::Unreachable {
            socket: path.clone(),
            message: Answer::of(&err).message().to_owned(),
        };
        let docker = docker.negotiate_version().await.map_err(unreachable)?;
        let version = docker.version().await.map_err(unreachable)?;
        let is_podman =
            version.components.unwrap_or_default().iter().any(|c| c.name.to_ascii_lowercase().contains("podman"));
        let backend = if is_podman { Backend::Podman } else { Backend::Docker };
        Ok(Runtime { docker, socket: path, backend, network_lock: tokio::sync::Mutex::new(()) })
    }

    /// Connects as `runtime.backend` and `runtime.socket` say (SPEC §3.2).
    ///
    /// With a `socket`, that socket is used; an explicit `backend` then overrides what the engine says it is.
    /// Without one, `Podman` and `Auto` try `$XDG_RUNTIME_DIR/podman/podman.sock` then [`PODMAN_SOCKET`], taking
    /// the first that answers a ping; `Auto` falls back to Docker at [`DOCKER_SOCKET`].
    pub async fn detect(backend: Backend, socket: Option<&str>) -> Result<Runtime, RuntimeError> {
        if let Some(socket) = socket {
            let mut runtime = Runtime::connect(Some(socket)).await?;
            if backend != Backend::Auto {
                runtime.backend = backend;
            }
            return Ok(runtime);
        }
        if backend == Backend::Docker {
            return Runtime::connect(None).await;
        }
        let candidates = podman_sockets(std::env::var("XDG_RUNTIME_DIR").ok().as_deref());
        for candidate in &candidates {
            if answers_ping(candidate).await {
                let mut runtime = Runtime::connect(Some(candidate)).await?;
                runtime.backend = Backend::Podman;
                return Ok(runtime);
            }
        }
        let tried = candidates.join(", ");
        if backend == Backend::Podman {
            return Err(RuntimeError::Unreachable {
                socket: tried,
                message: "no podman socket answered a ping; start the podman API service or set runtime.socket".into(),
            });
        }
        Runtime::connect(None).await.map_err(|err| match err {
            RuntimeError::Unreachable { socket, message } => RuntimeError::Unreachable {
                socket,
                message: format!("{message} (no podman socket answered either: tried {tried})"),
            },
            other => other,
        })
    }

    /// Which engine this is: [`Backend::Docker`] or [`Backend::Podman`], never `Auto`.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The engine socket path.
    pub fn socket(&self) -> &str {
        &self.socket
    }

    /// Where the engine keeps images (Docker `DockerRootDir`, Podman's graph root), for the disk preflight.
    /// `None` when the engine does not say.
    pub async fn engine_root(&self) -> Option<PathBuf> {
        let info = self.docker.info().await.ok()?;
        info.docker_root_dir.filter(|dir| !dir.is_empty()).map(PathBuf::from)
    }

    fn error(&self, op: &'static str, target: &str, err: &bollard::errors::Error) -> RuntimeError {
        match Answer::of(err) {
            Answer::Transport(message) => RuntimeError::Unreachable { socket: self.socket.clone(), message },
            Answer::Engine { message, .. } => RuntimeError::Rejected { op, target: target.to_owned(), message },
        }
    }

    /// The local image for `reference`, with its repository digest.
    async fn image(&self, reference: &str) -> Result<Option<PulledImage>, RuntimeError> {
        let inspect = match self.docker.inspect_image(reference).await {
            Ok(inspect) => inspect,
            Err(err) if Answer::of(&err).status() == Some(404) => return Ok(None),
            Err(err) => return Err(self.error("inspect image", reference, &err)),
        };
        let Some(id) = inspect.id else {
            return Err(RuntimeError::Rejected {
                op: "inspect image",
                target: reference.to_owned(),
                message: "the engine returned an image without an id".into(),
            });
        };
        let digest = if reference.starts_with("sha256:") {
            None
        } else {
            reference::matching_digest(
                &Reference::parse(reference).repository,
                &inspect.repo_digests.unwrap_or_default(),
            )
        };
        Ok(Some(PulledImage { id, digest }))
    }

    /// The id of network `name`, created (bridge, labelled `slip.managed=true`) when missing.
    ///
    /// Docker 20.10 accepts duplicate network names, so two processes that both find the network missing (two
    /// slipds on one engine, or slipd and a user's script) can each create one; a name then no longer identifies
    /// a network and every container create naming it fails ("network slip is ambiguous"). So the network is
    /// always chosen by id: the oldest of those with the name, which every creator agrees on, and the empty
    /// duplicates slip made are removed.
    async fn ensure_network(&self, name: &str) -> Result<String, RuntimeError> {
        let _guard = self.network_lock.lock().await;
        if let Some(id) = self.network_id(name).await? {
            return Ok(id);
        }
        let request = NetworkCreateRequest {
            name: name.to_owned(),
            driver: Some("bridge".into()),
            labels: Some(HashMap::from([("slip.managed".to_owned(), "true".to_owned())])),
            ..Default::default()
        };
        match self.docker.create_network(request).await {
            Ok(_) => {}
            // Someone else (another process) created it in between (Podman refuses duplicate names).
            Err(err) if Answer::of(&err).status() == Some(409) => {}
            Err(err) => return Err(self.error("create network", name, &err)),
        }
        self.network_id(name).await?.ok_or_else(|| RuntimeError::Rejected {
            op: "create network",
            target: name.to_owned(),
            message: "the network was created but the engine does not list it".into(),
        })
    }

    /// The oldest network named exactly `name`, removing younger duplicates that slip created (the engine refuses to
    /// remove one that containers still use).
    async fn network_id(&self, name: &str) -> Result<Option<String>, RuntimeError> {
        let filters = HashMap::from([("name", vec![name])]);
        let options = ListNetworksOptionsBuilder::default().filters(&filters).build();
        let listed =
            self.docker.list_networks(Some(options)).await.map_err(|e| self.error("list networks", name, &e))?;
        // The `name` filter matches substrings; only the exact name counts.
        let mut named: Vec<(OffsetDateTime, String, bool)> = listed
            .into_iter()
            .filter(|n| n.name.as_deref() == Some(name))
            .filter_map(|n| {
                let created = n.created.as_deref().and_then(|c| OffsetDateTime::parse(c, &Rfc3339).ok());
                let managed = n.labels.as_ref().and_then(|l| l.get("slip.managed")).is_some_and(|v| v == "true");
                Some((created.unwrap_or(OffsetDateTime::UNIX_EPOCH), n.id?, managed))
            })
            .collect();
        named.sort();
        let mut named = named.into_iter();
        let Some((_, oldest, _)) = named.next() else { return Ok(None) };
        for (_, id, _) in named.filter(|(_, _, removable)| *removable) {
            if let Err(err) = self.docker.remove_network(&id).await {
                tracing::debug!(network = %id, error = %err, "could not remove a duplicate slip network");
            }
        }
        Ok(Some(oldest))
    }

    /// Maps a create or start failure, knowing the spec (its ports, its env values to redact).
    fn start_error(&self, op: &'static str, spec: &ContainerSpec, err: &bollard::errors::Error) -> RuntimeError {
        let answer = Answer::of(err);
        let message = errors::redact(answer.message(), &spec.env);
        match answer {
            Answer::Transport(_) => RuntimeError::Unreachable { socket: self.socket.clone(), message },
            Answer::Engine { .. } if errors::is_port_conflict(&message) => {
                let hosts: Vec<u16> = spec.ports.iter().map(|p| p.host).collect();
                RuntimeError::PortUnavailable { port: errors::conflicting_port(&message, &hosts), message }
            }
            Answer::Engine { status: Some(404), .. }
                if op == "create" && message.to_ascii_lowercase().contains("image") =>
            {
                RuntimeError::ImageNotFound { image: spec.image.clone() }
            }
            Answer::Engine { .. } => RuntimeError::Rejected { op, target: spec.name.clone(), message },
        }
    }
}

#[async_trait]
impl InstanceRuntime for Runtime {
    async fn ping(&self) -> Result<(), RuntimeError> {
        self.docker.ping().await.map(drop).map_err(|err| RuntimeError::Unreachable {
            socket: self.socket.clone(),
            message: Answer::of(&err).message().to_owned(),
        })
    }

    async fn start(&self, spec: &InstanceSpec) -> Result<InstanceId, RuntimeError> {
        let spec = match spec {
            InstanceSpec::Container(spec) => spec,
            InstanceSpec::Pod(pod) => {
                return Err(RuntimeError::Rejected {
                    op: "start",
                    target: pod.name.clone(),
                    message: "this engine runs single containers; pods need Podman's kube play".into(),
                });
            }
        };
        let mut body = create::container_body(spec, self.backend);
        if let Some(network) = &spec.network {
            let id = self.ensure_network(&network.name).await?;
            create::attach_by_id(&mut body, &network.name, &id);
        }
        let options = CreateContainerOptionsBuilder::default().name(&spec.name).build();
        let id = match self.docker.create_container(Some(options), body).await {
            Ok(created) => created.id,
            Err(err) => return Err(self.start_error("create", spec, &err)),
        };
        if let Err(err) = self.docker.start_container(&id, None).await {
            let error = self.start_error("start", spec, &err);
            if let Err(cleanup) = self.remove(&id).await {
                let name = &spec.name;
                let message = "could not remove a container that failed to start";
                tracing::warn!(container = %id, %name, error = %cleanup, "{message}");
            }
            return Err(error);
        }
        Ok(id)
    }

    async fn restart(&self, id: &str) -> Result<(), RuntimeError> {
        match self.docker.start_container(id, None).await {
            Ok(()) => Ok(()),
            Err(err) => {
                let answer = Answer::of(&err);
                if matches!(answer, Answer::Engine { .. }) && errors::is_port_conflict(answer.message()) {
                    let ports = match self.inspect(id).await {
                        Ok(Some(state)) => state.ports.iter().map(|p| p.host).collect(),
                        _ => Vec::new(),
                    };
                    let message = answer.message().to_owned();
                    return Err(RuntimeError::PortUnavailable {
                        port: errors::conflicting_port(&message, &ports),
                        message,
                    });
                }
                Err(self.error("start", id, &err))
            }
        }
    }

    async fn inspect(&self, id: &str) -> Result<Option<InstanceState>, RuntimeError> {
        match self.docker.inspect_container(id, None).await {
            Ok(inspect) => Ok(Some(instance_state(id, inspect))),
            Err(err) if Answer::of(&err).status() == Some(404) => Ok(None),
            Err(err) => Err(self.error("inspect", id, &err)),
        }
    }

    async fn stop(&self, id: &str, grace: Duration) -> Result<(), RuntimeError> {
        let seconds = i32::try_from(grace.as_millis().div_ceil(1000)).unwrap_or(i32::MAX);
        let options = StopContainerOptionsBuilder::default().t(seconds).build();
        // The engine answers only once the container is down: allow the grace period on top of the usual bound.
        let docker = self.docker.clone().with_timeout(API_TIMEOUT + grace);
        match docker.stop_container(id, Some(options)).await {
            Ok(()) => Ok(()),
            Err(err) if matches!(Answer::of(&err).status(), Some(304 | 404)) => Ok(()),
            Err(err) => Err(self.error("stop", id, &err)),
        }
    }

    async fn remove(&self, id: &str) -> Result<(), RuntimeError> {
        let options = RemoveContainerOptionsBuilder::default().force(true).v(true).build();
        match self.docker.remove_container(id, Some(options)).await {
            Ok(()) => Ok(()),
            Err(err) => {
                let answer = Answer::of(&err);
                let in_progress = answer.status() == Some(409) && answer.message().contains("already in progress");
                if answer.status() == Some(404) || in_progress { Ok(()) } else { Err(self.error("remove", id, &err)) }
            }
        }
    }

    fn pod_refusal(&self) -> Option<&str> {
        Some(match self.backend {
            Backend::Podman => "pod deploys on Podman are not supported by this slipd yet",
            _ => "pods need the Podman backend (runtime.backend = \"podman\" or \"auto\" with Podman running)",
        })
    }

    async fn events(&self, labels: &[(&str, &str)]) -> Result<RuntimeEvents, RuntimeError> {
        Ok(self.container_events(labels))
    }

    async fn list(&self, labels: &[(&str, &str)]) -> Result<Vec<InstanceSummary>, RuntimeError> {
        let filters = HashMap::from([("label", labels.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>())]);
        let options = ListContainersOptionsBuilder::default().all(true).filters(&filters).build();
        let target = labels.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",");
        let containers =
            self.docker.list_containers(Some(options)).await.map_err(|err| self.error("list", &target, &err))?;
        Ok(containers
            .into_iter()
            .filter_map(|c| {
                Some(InstanceSummary {
                    id: c.id?,
                    name: c
                        .names
                        .unwrap_or_default()
                        .first()
                        .map(|n| n.trim_start_matches('/').to_owned())
                        .unwrap_or_default(),
                    running: c.state == Some(ContainerSummaryStateEnum::RUNNING),
                    labels: c.labels.unwrap_or_default().into_iter().collect(),
                })
            })
            .collect())
    }
}

#[async_trait]
impl ImageStore for Runtime {
    async fn pull(
        &self,
        reference: &str,
        credentials: Option<&RegistryCredentials>,
    ) -> Result<PulledImage, RuntimeError> {
        let parsed = Reference::parse(reference);
        let host = parsed.host();
        let options =
            CreateImageOptionsBuilder::default().from_image(&parsed.repository).tag(&parsed.tag_or_digest).build();
        let auth = credentials.map(|c| DockerCredentials {
            username: Some(c.username.clone()),
            password: Some(c.password.clone()),
            serveraddress: Some(host.clone()),
            ..Default::default()
        });
        let mut stream = self.docker.create_image(Some(options), None, auth);
        loop {
            match tokio::time::timeout(PULL_STALL_TIMEOUT, stream.next()).await {
                Err(_) => {
                    return Err(RuntimeError::PullFailed {
                        image: reference.to_owned(),
                        message: format!("no progress for {}s; the pull stalled", PULL_STALL_TIMEOUT.as_secs()),
                    });
                }
                Ok(None) => break,
                Ok(Some(Ok(_progress))) => {}
                Ok(Some(Err(err))) => {
                    let answer = Answer::of(&err);
                    let image = reference.to_owned();
                    return Err(match (&answer, errors::pull_failure(answer.status(), answer.message())) {
                        (Answer::Transport(message), _) => {
                            RuntimeError::Unreachable { socket: self.socket.clone(), message: message.clone() }
                        }
                        (_, PullFailure::Auth) => RuntimeError::RegistryAuth { host, image },
                        (_, PullFailure::NotFound) => RuntimeError::ImageNotFound { image },
                        (_, PullFailure::Other) => {
                            RuntimeError::PullFailed { image, message: answer.message().to_owned() }
                        }
                    });
                }
            }
        }
        let pulled = self.image(reference).await?.ok_or_else(|| RuntimeError::PullFailed {
            image: reference.to_owned(),
            message: "the engine reported success but has no such image".into(),
        })?;
        Ok(PulledImage {
            digest: pulled.digest.or_else(|| {
                // Pulled by digest: the reference itself is the digest reference.
                let digest = parsed.tag_or_digest.starts_with("sha256:");
                digest.then(|| format!("{}@{}", parsed.normalized_repository(), parsed.tag_or_digest))
            }),
            id: pulled.id,
        })
    }

    async fn local_image(&self, reference: &str) -> Result<Option<PulledImage>, RuntimeError> {
        self.image(reference).await
    }

    async fn remove_image(&self, reference: &str) -> Result<(), RuntimeError> {
        let options = RemoveImageOptionsBuilder::default().force(false).noprune(false).build();
        match self.docker.remove_image(reference, Some(options), None).await {
            Ok(_) => Ok(()),
            Err(err) if Answer::of(&err).status() == Some(404) => Ok(()),
            Err(err) => Err(self.error("remove image", reference, &err)),
        }
    }

    async fn read_files(
        &self,
        image: &str,
        paths: &[&str],
        limit: usize,
        labels: &BTreeMap<String, String>,
    ) -> Result<Vec<ImageFile>, RuntimeError> {
        self.extract_files(image, paths, limit, labels).await
    }
}

#[async_trait]
impl LogSource for Runtime {
    fn logs(&self, id: &str, request: &LogRequest) -> LogStream {
        logs::stream(&self.docker, &self.socket, id, request)
    }
}

/// Strips `unix://` and refuses other schemes: slip talks to a local engine only.
fn socket_path(socket: &str) -> Result<String, RuntimeError> {
    let path = socket.strip_prefix("unix://").unwrap_or(socket);
    if path.contains("://") || !path.starts_with('/') {
        return Err(RuntimeError::Unreachable {
            socket: socket.to_owned(),
            message: "the engine socket must be unix:///absolute/path or an absolute path".into(),
        });
    }
    Ok(path.to_owned())
}

fn connect_unix(path: &str, timeout: Duration) -> Result<Docker, RuntimeError> {
    if !Path::new(path).exists() {
        return Err(RuntimeError::Unreachable { socket: path.to_owned(), message: "no such socket".into() });
    }
    Docker::connect_with_unix(path, timeout.as_secs(), bollard::API_DEFAULT_VERSION)
        .map_err(|err| RuntimeError::Unreachable { socket: path.to_owned(), message: err.to_string() })
}

/// The Podman sockets auto-detection tries, in order.
fn podman_sockets(xdg_runtime_dir: Option<&str>) -> Vec<String> {
    let mut sockets = Vec::new();
    if let Some(dir) = xdg_runtime_dir.filter(|d| !d.is_empty()) {
        sockets.push(format!("{}/podman/podman.sock", dir.trim_end_matches('/')));
    }
    sockets.push(PODMAN_SOCKET.to_owned());
    sockets
}

async fn answers_ping(path: &str) -> bool {
    let Ok(docker) = connect_unix(path, PROBE_TIMEOUT) else {
        return false;
    };
    matches!(tokio::time::timeout(PROBE_TIMEOUT, docker.ping()).await, Ok(Ok(_)))
}

/// A container's inspect answer as a single-container instance, whose one container is called `app`.
fn instance_state(id: &str, inspect: ContainerInspectResponse) -> InstanceState {
    let state = inspect.state.unwrap_or_default();
    // While the engine waits to restart a crashed container it reports `Restarting` (and, on Docker, `Running`).
    let running = state.running.unwrap_or(false) && !state.restarting.unwrap_or(false);
    let finished = state.finished_at.as_deref().is_some_and(|t| !t.is_empty() && !t.starts_with("0001-01-01"));
    let bound = inspect.network_settings.and_then(|n| n.ports).unwrap_or_default();
    let ports = if running || !bound.is_empty() {
        port_mappings(&bound)
    } else {
        // A stopped container has no bound ports; report the ones it will bind when started again.
        port_mappings(&inspect.host_config.and_then(|h| h.port_bindings).unwrap_or_default())
    };
    InstanceState {
        id: inspect.id.unwrap_or_else(|| id.to_owned()),
        name: inspect.name.unwrap_or_default().trim_start_matches('/').to_owned(),
        labels: inspect.config.and_then(|c| c.labels).unwrap_or_default().into_iter().collect::<BTreeMap<_, _>>(),
        ports,
        containers: vec![ContainerState {
            name: "app".to_owned(),
            running,
            exit_code: (!running && finished).then_some(state.exit_code.unwrap_or(0)),
            oom_killed: state.oom_killed.unwrap_or(false),
            started_at: state.started_at.unwrap_or_default(),
            restart_count: inspect.restart_count.unwrap_or(0),
        }],
    }
}

/// TCP mappings from a port map, sorted and without duplicates.
fn port_mappings(map: &PortMap) -> Vec<PortMapping> {
    let mut out: Vec<PortMapping> = map
        .iter()
        .filter_map(|(key, bindings)| {
            let (port, proto) = key.split_once('/').unwrap_or((key.as_str(), "tcp"));
            if proto != "tcp" {
                return None;
            }
            let container = port.parse::<u16>().ok()?;
            Some(bindings.iter().flatten().filter_map(move |b| {
                let host = b.host_port.as_deref()?.parse::<u16>().ok()?;
                (host != 0).then_some(PortMapping { host, container })
            }))
        })
        .flatten()
        .collect();
    out.sort();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use bollard::models::PortBinding;

    use super::*;

    #[test]
    fn socket_forms() {
        assert_eq!(socket_path("unix:///run/podman/podman.sock").unwrap(), "/run/podman/podman.sock");
        assert_eq!(socket_path("/var/run/docker.sock").unwrap(), "/var/run/docker.sock");
        assert!(socket_path("tcp://127.0.0.1:2375").is_err());
        assert!(socket_path("docker.sock").is_err());
    }

    #[test]
    fn podman_candidates_prefer_the_user_socket() {
        assert_eq!(
            podman_sockets(Some("/run/user/1000/")),
            vec!["/run/user/1000/podman/podman.sock".to_owned(), PODMAN_SOCKET.to_owned()]
        );
        assert_eq!(podman_sockets(Some("")), vec![PODMAN_SOCKET.to_owned()]);
        assert_eq!(podman_sockets(None), vec![PODMAN_SOCKET.to_owned()]);
    }

    #[test]
    fn port_maps_keep_tcp_and_drop_duplicates() {
        let binding = |ip: &str, port: &str| PortBinding { host_ip: Some(ip.into()), host_port: Some(port.into()) };
        let map: PortMap = HashMap::from([
            ("8080/tcp".to_owned(), Some(vec![binding("127.0.0.1", "20001"), binding("127.0.0.1", "20001")])),
            ("53/udp".to_owned(), Some(vec![binding("127.0.0.1", "20053")])),
            ("9090/tcp".to_owned(), None),
        ]);
        assert_eq!(port_mappings(&map), vec![PortMapping { host: 20001, container: 8080 }]);
    }
}
