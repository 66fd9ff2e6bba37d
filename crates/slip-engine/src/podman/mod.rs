//! The instance runtime on Podman: single containers through the Docker-compatible API ([`crate::docker`]), and
//! pods through Podman's own API (libpod): `POST /libpod/kube/play` of the rendered manifest (sent over the socket,
//! never written to disk), and pod inspect, stop, start, list and `DELETE /libpod/pods/<name>?force=true`.
//!
//! A runtime id names either a pod or a container; every verb asks for a pod first. A pod's state lists its main
//! containers in manifest order (the pod's `slip.containers` label), without the infra container and the init
//! containers (`slip.init`), each under its name in the manifest.

mod libpod;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use hyper::{Method, StatusCode};
use serde_json::Value;

use self::libpod::{Libpod, Reply};
use crate::docker::{self, API_TIMEOUT};
use crate::ports::{
    ContainerState, ImageFile, ImageStore, InstanceId, InstanceRuntime, InstanceSpec, InstanceState, InstanceSummary,
    LogRequest, LogSource, LogStream, PodSpec, PortMapping, PulledImage, RegistryCredentials, RuntimeError,
};

/// The pod label listing its main containers, in manifest order, comma-separated.
pub const CONTAINERS_LABEL: &str = "slip.containers";
/// The pod label listing its init containers, comma-separated.
pub const INIT_LABEL: &str = "slip.init";

/// How many log lines of a failed init container a failure shows.
const INIT_LOG_TAIL: usize = 20;

/// Bound on `kube play`: it returns once init containers have run (or failed, after Podman's retries).
const PLAY_TIMEOUT: Duration = Duration::from_secs(180);

/// Containers and pods on one Podman engine.
#[derive(Debug, Clone)]
pub struct PodRuntime {
    containers: Arc<docker::Runtime>,
    libpod: Libpod,
}

impl PodRuntime {
    /// Pods on the engine `containers` talks to (which must be Podman).
    pub fn new(containers: Arc<docker::Runtime>) -> PodRuntime {
        let libpod = Libpod::new(containers.socket(), API_TIMEOUT);
        PodRuntime { containers, libpod }
    }

    fn unreachable(&self, message: String) -> RuntimeError {
        RuntimeError::Unreachable { socket: self.libpod.socket().to_owned(), message }
    }

    async fn call(&self, method: Method, path: &str, body: Option<Vec<u8>>) -> Result<Reply, RuntimeError> {
        let body = body.map(|b| ("application/yaml", b));
        self.libpod.call(method, path, body, None).await.map_err(|e| self.unreachable(e))
    }

    /// The pod `id` (an id or a name) as libpod inspects it; `None` when no such pod exists.
    async fn pod(&self, id: &str) -> Result<Option<Value>, RuntimeError> {
        let reply = self.call(Method::GET, &format!("pods/{}/json", encode(id)), None).await?;
        match reply.status {
            StatusCode::OK => Ok(Some(reply.body)),
            StatusCode::NOT_FOUND => Ok(None),
            _ => Err(rejected("inspect pod", id, &reply)),
        }
    }

    async fn play(&self, pod: &PodSpec) -> Result<InstanceId, RuntimeError> {
        let body = Some(("application/yaml", pod.manifest.clone().into_bytes()));
        let reply = self
            .libpod
            .call(Method::POST, "kube/play?start=true", body, Some(PLAY_TIMEOUT))
            .await
            .map_err(|e| self.unreachable(e));
        let failure = match reply {
            Ok(reply) if reply.status.is_success() => {
                let id = reply.body["Pods"][0]["ID"].as_str().map(str::to_owned);
                match id {
                    Some(id) => return Ok(id),
                    None => RuntimeError::Rejected {
                        op: "kube play",
                        target: pod.name.clone(),
                        message: format!("Podman answered without a pod id: {}", reply.text),
                    },
                }
            }
            Ok(reply) => self.play_error(pod, &reply).await,
            Err(e) => e,
        };
        // Nothing is left behind: kube play may have made the pod before it failed.
        if let Err(e) = self.remove_pod(&pod.name).await {
            tracing::warn!(pod = %pod.name, error = %e, "could not remove a pod that failed to start");
        }
        Err(failure)
    }

    /// What a failed `kube play` means, with the log tail of a failed init container.
    async fn play_error(&self, pod: &PodSpec, reply: &Reply) -> RuntimeError {
        let message = reply.message();
        if docker::errors::is_port_conflict(&message) {
            let hosts: Vec<u16> = pod.ports.iter().map(|p| p.host).collect();
            return RuntimeError::PortUnavailable { port: docker::errors::conflicting_port(&message, &hosts), message };
        }
        let init = pod.labels.get(INIT_LABEL).map(|l| split(l)).unwrap_or_default();
        if message.contains("init container") {
            let mut tails = Vec::new();
            for name in &init {
                let lines = self.tail(&format!("{}-{name}", pod.name), INIT_LOG_TAIL).await;
                if !lines.is_empty() {
                    tails.push(format!("{name}: {}", lines.join(" | ")));
                }
            }
            return RuntimeError::InitFailed { pod: pod.name.clone(), message, logs: tails.join("; ") };
        }
        RuntimeError::Rejected { op: "kube play", target: pod.name.clone(), message }
    }

    /// The last `lines` lines of container `name`.
    async fn tail(&self, name: &str, lines: usize) -> Vec<String> {
        let mut stream = self.containers.logs(name, &LogRequest::tail(lines));
        let mut out = Vec::new();
        while let Some(Ok(line)) = stream.next().await {
            out.push(line.text);
        }
        out
    }

    async fn remove_pod(&self, id: &str) -> Result<(), RuntimeError> {
        let reply = self.call(Method::DELETE, &format!("pods/{}?force=true", encode(id)), None).await?;
        match reply.status {
            s if s.is_success() || s == StatusCode::NOT_FOUND => Ok(()),
            _ => Err(rejected("remove pod", id, &reply)),
        }
    }

    async fn pod_state(&self, pod: Value) -> Result<InstanceState, RuntimeError> {
        let name = pod["Name"].as_str().unwrap_or_default().to_owned();
        let labels: BTreeMap<String, String> = pod["Labels"]
            .as_object()
            .map(|m| m.iter().filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned()))).collect())
            .unwrap_or_default();
        let mains = labels.get(CONTAINERS_LABEL).map(|l| split(l)).unwrap_or_default();
        let mut containers = Vec::with_capacity(mains.len());
        for short in &mains {
            let full = format!("{name}-{short}");
            let reply = self.call(Method::GET, &format!("containers/{}/json", encode(&full)), None).await?;
            containers.push(match reply.status {
                StatusCode::OK => container_state(short, &reply.body),
                StatusCode::NOT_FOUND => ContainerState {
                    name: short.clone(),
                    running: false,
                    exit_code: None,
                    oom_killed: false,
                    started_at: String::new(),
                    restart_count: 0,
                },
                _ => return Err(rejected("inspect container", &full, &reply)),
            });
        }
        Ok(InstanceState {
            id: pod["Id"].as_str().unwrap_or_default().to_owned(),
            name,
            labels,
            ports: port_bindings(&pod["InfraConfig"]["PortBindings"]),
            containers,
        })
    }
}

#[async_trait]
impl InstanceRuntime for PodRuntime {
    async fn ping(&self) -> Result<(), RuntimeError> {
        self.containers.ping().await
    }

    async fn start(&self, spec: &InstanceSpec) -> Result<InstanceId, RuntimeError> {
        match spec {
            InstanceSpec::Container(_) => self.containers.start(spec).await,
            InstanceSpec::Pod(pod) => self.play(pod).await,
        }
    }

    async fn restart(&self, id: &str) -> Result<(), RuntimeError> {
        if self.pod(id).await?.is_none() {
            return self.containers.restart(id).await;
        }
        let reply = self.call(Method::POST, &format!("pods/{}/start", encode(id)), None).await?;
        match reply.status {
            s if s.is_success() || s == StatusCode::NOT_MODIFIED => Ok(()),
            _ if docker::errors::is_port_conflict(&reply.message()) => {
                let ports = match self.inspect(id).await {
                    Ok(Some(state)) => state.ports.iter().map(|p| p.host).collect(),
                    _ => Vec::new(),
                };
                let message = reply.message();
                Err(RuntimeError::PortUnavailable { port: docker::errors::conflicting_port(&message, &ports), message })
            }
            _ => Err(rejected("start pod", id, &reply)),
        }
    }

    async fn inspect(&self, id: &str) -> Result<Option<InstanceState>, RuntimeError> {
        match self.pod(id).await? {
            Some(pod) => Ok(Some(self.pod_state(pod).await?)),
            None => self.containers.inspect(id).await,
        }
    }

    async fn stop(&self, id: &str, grace: Duration) -> Result<(), RuntimeError> {
        if self.pod(id).await?.is_none() {
            return self.containers.stop(id, grace).await;
        }
        let seconds = grace.as_millis().div_ceil(1000);
        let path = format!("pods/{}/stop?t={seconds}", encode(id));
        let reply = self
            .libpod
            .call(Method::POST, &path, None, Some(API_TIMEOUT + grace))
            .await
            .map_err(|e| self.unreachable(e))?;
        match reply.status {
            s if s.is_success() || s == StatusCode::NOT_MODIFIED || s == StatusCode::NOT_FOUND => Ok(()),
            _ => Err(rejected("stop pod", id, &reply)),
        }
    }

    async fn remove(&self, id: &str) -> Result<(), RuntimeError> {
        if self.pod(id).await?.is_some() {
            return self.remove_pod(id).await;
        }
        self.containers.remove(id).await
    }

    /// Pod containers carry slip's labels too, so the compatible API's container events cover pods as well.
    async fn events(&self, labels: &[(&str, &str)]) -> Result<crate::ports::RuntimeEvents, RuntimeError> {
        self.containers.events(labels).await
    }

    async fn list(&self, labels: &[(&str, &str)]) -> Result<Vec<InstanceSummary>, RuntimeError> {
        let filter: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let filters = serde_json::json!({ "label": filter }).to_string();
        let reply = self.call(Method::GET, &format!("pods/json?filters={}", encode(&filters)), None).await?;
        if !reply.status.is_success() {
            return Err(rejected("list pods", &filter.join(","), &reply));
        }
        let mut members = std::collections::HashSet::new();
        let mut out = Vec::new();
        for pod in reply.body.as_array().into_iter().flatten() {
            for c in pod["Containers"].as_array().into_iter().flatten() {
                if let Some(id) = c["Id"].as_str() {
                    members.insert(id.to_owned());
                }
            }
            out.push(InstanceSummary {
                id: pod["Id"].as_str().unwrap_or_default().to_owned(),
                name: pod["Name"].as_str().unwrap_or_default().to_owned(),
                running: pod["Status"].as_str() == Some("Running"),
                labels: pod["Labels"]
                    .as_object()
                    .map(|m| m.iter().filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned()))).collect())
                    .unwrap_or_default(),
            });
        }
        // A pod's containers carry its labels too; they are listed as the pod, not on their own.
        let containers = self.containers.list(labels).await?;
        out.extend(containers.into_iter().filter(|c| !members.contains(&c.id)));
        Ok(out)
    }

    fn pod_refusal(&self) -> Option<&str> {
        None
    }
}

#[async_trait]
impl ImageStore for PodRuntime {
    async fn pull(
        &self,
        reference: &str,
        credentials: Option<&RegistryCredentials>,
    ) -> Result<PulledImage, RuntimeError> {
        self.containers.pull(reference, credentials).await
    }

    async fn local_image(&self, reference: &str) -> Result<Option<PulledImage>, RuntimeError> {
        self.containers.local_image(reference).await
    }

    async fn remove_image(&self, reference: &str) -> Result<(), RuntimeError> {
        self.containers.remove_image(reference).await
    }

    async fn read_files(
        &self,
        image: &str,
        paths: &[&str],
        limit: usize,
        labels: &BTreeMap<String, String>,
    ) -> Result<Vec<ImageFile>, RuntimeError> {
        self.containers.read_files(image, paths, limit, labels).await
    }
}

impl LogSource for PodRuntime {
    fn logs(&self, id: &str, request: &LogRequest) -> LogStream {
        self.containers.logs(id, request)
    }
}

fn rejected(op: &'static str, target: &str, reply: &Reply) -> RuntimeError {
    RuntimeError::Rejected { op, target: target.to_owned(), message: format!("{}: {}", reply.status, reply.message()) }
}

fn split(list: &str) -> Vec<String> {
    list.split(',').filter(|s| !s.is_empty()).map(str::to_owned).collect()
}

/// Percent-encodes a path segment or query value.
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// One container's state from libpod's container inspect.
fn container_state(name: &str, inspect: &Value) -> ContainerState {
    let state = &inspect["State"];
    let running = state["Running"].as_bool().unwrap_or(false) && !state["Restarting"].as_bool().unwrap_or(false);
    let finished = state["FinishedAt"].as_str().is_some_and(|t| !t.is_empty() && !t.starts_with("0001-01-01"));
    ContainerState {
        name: name.to_owned(),
        running,
        exit_code: (!running && finished).then(|| state["ExitCode"].as_i64().unwrap_or(0)),
        oom_killed: state["OOMKilled"].as_bool().unwrap_or(false),
        started_at: state["StartedAt"].as_str().unwrap_or_default().to_owned(),
        restart_count: inspect["RestartCount"].as_i64().unwrap_or(0),
    }
}

/// The pod's published TCP ports, from its infra container's bindings.
fn port_bindings(bindings: &Value) -> Vec<PortMapping> {
    let mut out: Vec<PortMapping> = bindings
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(key, list)| {
            let (port, proto) = key.split_once('/').unwrap_or((key.as_str(), "tcp"));
            let container = port.parse::<u16>().ok().filter(|_| proto == "tcp")?;
            Some(list.as_array().into_iter().flatten().filter_map(move |b| {
                let host = b["HostPort"].as_str()?.parse::<u16>().ok()?;
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
    use super::*;

    #[test]
    fn libpod_answers_read_as_states_and_ports() {
        let bindings = serde_json::json!({"8080/tcp": [{"HostIp": "127.0.0.1", "HostPort": "20001"}],
                                          "53/udp": [{"HostIp": "127.0.0.1", "HostPort": "20053"}]});
        assert_eq!(port_bindings(&bindings), [PortMapping { host: 20001, container: 8080 }]);
        let exited = serde_json::json!({"State": {"Running": false, "ExitCode": 3, "FinishedAt": "2026-12-06T21:00:47Z",
                                                   "StartedAt": "2026-12-06T21:00:46Z"}, "RestartCount": 2});
        let state = container_state("api", &exited);
        assert_eq!((state.running, state.exit_code, state.restart_count), (false, Some(3), 2));
        assert_eq!(encode("a b/c"), "a%20b%2Fc");
        assert_eq!(split("api,,worker"), ["api", "worker"]);
    }
}
