//! Fakes for unit tests of the deploy driver: a runtime, a proxy and a probe that honour the same
//! contracts as the real adapters (checked by the same contract tests), and write what they were asked
//! to do into one shared [`Journal`], so a test can assert the order of operations across systems.
//!
//! Only compiled for tests and with the `testing` feature. Never used by `slipd` itself.

pub mod contract;
pub mod proxy_contract;

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use futures::StreamExt;
use slip_core::deploy::ProbeResult;
use tokio::sync::Notify;

use crate::ports::{
    Applied, ContainerSpec, ContainerState, Follow, HealthProbe, ImageFile, ImageStore, InstanceId, InstanceRuntime,
    InstanceSpec, InstanceState, InstanceSummary, LogLine, LogRequest, LogSource, LogStream, PortMapping, ProbeTarget,
    Proxy, ProxyError, PulledImage, RegistryCredentials, RouteBlock, RuntimeError, RuntimeEvent, RuntimeEventKind,
    RuntimeEvents,
};

/// An ordered log of what the fakes were asked to do, shared between them.
#[derive(Debug, Clone, Default)]
pub struct Journal(Arc<Mutex<Vec<String>>>);

impl Journal {
    /// Appends one line.
    pub fn push(&self, line: impl Into<String>) {
        self.0.lock().expect("journal lock").push(line.into());
    }

    /// Every line so far.
    pub fn lines(&self) -> Vec<String> {
        self.0.lock().expect("journal lock").clone()
    }

    /// Every line so far, one per line, for snapshot tests.
    pub fn text(&self) -> String {
        self.lines().iter().map(|l| format!("{l}\n")).collect()
    }
}

#[derive(Debug, Clone)]
struct FakeContainer {
    spec: ContainerSpec,
    running: bool,
    started_at: u32,
}

/// An in-memory container engine.
#[derive(Debug, Default)]
pub struct FakeRuntime {
    journal: Journal,
    /// Shared with open log streams, which outlive a borrow of the runtime.
    state: Arc<Mutex<FakeRuntimeState>>,
    /// Wakes followed log streams when a line is written or a container stops.
    changed: Arc<Notify>,
    /// Open event subscriptions: the labels each selects, and where its events go.
    subscribers: Arc<Mutex<Vec<Subscriber>>>,
}

/// One [`InstanceRuntime::events`] subscription of the fake.
type Subscriber = (Vec<(String, String)>, tokio::sync::mpsc::UnboundedSender<RuntimeEvent>);

#[derive(Debug, Default)]
struct FakeRuntimeState {
    containers: BTreeMap<String, FakeContainer>,
    images: BTreeMap<String, PulledImage>,
    /// References whose pull fails with ImageNotFound.
    missing: Vec<String>,
    /// Container names (prefix match) whose start fails.
    fail_start: Vec<String>,
    /// Container ids whose restart fails, as when their host port was taken while they were stopped.
    fail_restart: Vec<String>,
    /// Host ports another process holds: a start publishing one fails as the real engine's would.
    taken_ports: Vec<u16>,
    /// Files in images, by (repository, path): what `read_files` finds.
    files: BTreeMap<(String, String), Vec<u8>>,
    /// Output per container id, in the order written.
    logs: BTreeMap<String, Vec<LogLine>>,
    next_id: u32,
}

impl FakeRuntime {
    /// A runtime writing to `journal`.
    pub fn new(journal: Journal) -> FakeRuntime {
        FakeRuntime { journal, ..FakeRuntime::default() }
    }

    /// Appends `line` to the output of container `id`, as if the app had printed it.
    pub fn write_log(&self, id: &str, line: LogLine) {
        self.state.lock().expect("fake runtime").logs.entry(id.to_owned()).or_default().push(line);
        self.changed.notify_waiters();
    }

    /// Makes pulls of `reference` fail with `ImageNotFound`.
    pub fn make_missing(&self, reference: &str) {
        self.state.lock().expect("fake runtime").missing.push(reference.to_owned());
    }

    /// Puts a file at `path` into every image of `repository`, for `read_files` to find.
    pub fn put_file(&self, repository: &str, path: &str, contents: &str) {
        let mut st = self.state.lock().expect("fake runtime");
        st.files.insert((repository.to_owned(), path.to_owned()), contents.as_bytes().to_vec());
    }

    /// Marks host `port` as held by another process: starting a container that publishes it fails with
    /// `PortUnavailable`, as with the real engine.
    pub fn take_host_port(&self, port: u16) {
        self.state.lock().expect("fake runtime").taken_ports.push(port);
    }

    /// Makes every restart of container `id` fail as a port conflict would.
    pub fn fail_restart_of(&self, id: &str) {
        self.state.lock().expect("fake runtime").fail_restart.push(id.to_owned());
    }

    /// Makes the next starts of containers whose image is `image` fail.
    pub fn fail_start_of(&self, image: &str) {
        self.state.lock().expect("fake runtime").fail_start.push(image.to_owned());
    }

    /// Simulates a crash of a running container.
    pub fn crash(&self, id: &str) {
        self.exited(id, Some(1));
        self.changed.notify_waiters();
    }

    /// Marks container `id` stopped and, when it was running, tells the event subscriptions that select it.
    fn exited(&self, id: &str, exit_code: Option<i64>) {
        let died = {
            let mut st = self.state.lock().expect("fake runtime");
            let Some(c) = st.containers.get_mut(id) else { return };
            let was_running = std::mem::replace(&mut c.running, false);
            was_running.then(|| RuntimeEvent {
                container: c.spec.name.clone(),
                labels: c.spec.labels.clone(),
                kind: RuntimeEventKind::Died { exit_code },
            })
        };
        let Some(died) = died else { return };
        let mut subscribers = self.subscribers.lock().expect("fake runtime");
        subscribers.retain(|(labels, events)| {
            let selected = labels.iter().all(|(k, v)| died.labels.get(k) == Some(v));
            !selected || events.send(died.clone()).is_ok()
        });
    }

    /// Ids of running containers.
    pub fn running(&self) -> Vec<String> {
        let st = self.state.lock().expect("fake runtime");
        st.containers.iter().filter(|(_, c)| c.running).map(|(id, _)| id.clone()).collect()
    }

    /// Ids of every container, running or not.
    pub fn all(&self) -> Vec<String> {
        self.state.lock().expect("fake runtime").containers.keys().cloned().collect()
    }

    /// Simulates an engine restart that re-assigned a container's published host ports.
    pub fn rebind(&self, id: &str, ports: Vec<PortMapping>) {
        if let Some(c) = self.state.lock().expect("fake runtime").containers.get_mut(id) {
            c.spec.ports = ports;
        }
    }

    /// The spec a container was created from.
    pub fn spec(&self, id: &str) -> Option<ContainerSpec> {
        self.state.lock().expect("fake runtime").containers.get(id).map(|c| c.spec.clone())
    }
}

#[async_trait]
impl InstanceRuntime for FakeRuntime {
    async fn ping(&self) -> Result<(), RuntimeError> {
        Ok(())
    }

    async fn start(&self, spec: &InstanceSpec) -> Result<InstanceId, RuntimeError> {
        let InstanceSpec::Container(spec) = spec else {
            // Pods are Podman's own API; the Docker adapter refuses them the same way.
            return Err(RuntimeError::Rejected {
                op: "start",
                target: spec.name().to_owned(),
                message: "this engine runs single containers; pods need Podman's kube play".into(),
            });
        };
        let mut st = self.state.lock().expect("fake runtime");
        if let Some(pos) = st.fail_start.iter().position(|i| *i == spec.image) {
            st.fail_start.remove(pos);
            self.journal.push(format!("start {} failed", spec.name));
            return Err(RuntimeError::Rejected {
                op: "start",
                target: spec.name.clone(),
                message: "simulated failure".into(),
            });
        }
        let running_ports =
            st.containers.values().filter(|c| c.running).flat_map(|c| c.spec.ports.iter().map(|p| p.host));
        let taken: Vec<u16> = st.taken_ports.iter().copied().chain(running_ports).collect();
        if let Some(port) = spec.ports.iter().map(|p| p.host).find(|p| taken.contains(p)) {
            self.journal.push(format!("start {} failed: host port {port} taken", spec.name));
            return Err(RuntimeError::PortUnavailable { port, message: "port is already allocated".into() });
        }
        st.next_id += 1;
        let id = format!("c{}", st.next_id);
        let ports: Vec<String> = spec.ports.iter().map(|p| format!("{}->{}", p.host, p.container)).collect();
        self.journal.push(format!("start {} ({id}) ports={}", spec.name, ports.join(",")));
        st.containers.insert(id.clone(), FakeContainer { spec: spec.clone(), running: true, started_at: 1 });
        Ok(id)
    }

    async fn restart(&self, id: &str) -> Result<(), RuntimeError> {
        self.journal.push(format!("restart {id}"));
        let mut st = self.state.lock().expect("fake runtime");
        if st.fail_restart.iter().any(|f| f == id) {
            return Err(RuntimeError::PortUnavailable { port: 0, message: "port is already allocated".into() });
        }
        match st.containers.get_mut(id) {
            Some(c) => {
                c.running = true;
                c.started_at += 1;
                Ok(())
            }
            None => {
                Err(RuntimeError::Rejected { op: "restart", target: id.into(), message: "no such container".into() })
            }
        }
    }

    async fn inspect(&self, id: &str) -> Result<Option<InstanceState>, RuntimeError> {
        let st = self.state.lock().expect("fake runtime");
        Ok(st.containers.get(id).map(|c| InstanceState {
            id: id.to_owned(),
            name: c.spec.name.clone(),
            labels: c.spec.labels.clone(),
            ports: c.spec.ports.clone(),
            containers: vec![ContainerState {
                name: "app".to_owned(),
                running: c.running,
                exit_code: (!c.running).then_some(1),
                oom_killed: false,
                started_at: format!("t{}", c.started_at),
                restart_count: 0,
            }],
        }))
    }

    async fn stop(&self, id: &str, grace: Duration) -> Result<(), RuntimeError> {
        self.journal.push(format!("stop {id} grace={}s", grace.as_secs()));
        self.exited(id, Some(143));
        self.changed.notify_waiters();
        Ok(())
    }

    async fn remove(&self, id: &str) -> Result<(), RuntimeError> {
        self.journal.push(format!("remove {id}"));
        self.state.lock().expect("fake runtime").containers.remove(id);
        self.changed.notify_waiters();
        Ok(())
    }

    async fn events(&self, labels: &[(&str, &str)]) -> Result<RuntimeEvents, RuntimeError> {
        let (sender, receiver) = tokio::sync::mpsc::unbounded_channel();
        let labels = labels.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        self.subscribers.lock().expect("fake runtime").push((labels, sender));
        Ok(Box::pin(futures::stream::unfold(receiver, |mut receiver| async move {
            receiver.recv().await.map(|event| (Ok(event), receiver))
        })))
    }

    async fn list(&self, labels: &[(&str, &str)]) -> Result<Vec<InstanceSummary>, RuntimeError> {
        let st = self.state.lock().expect("fake runtime");
        Ok(st
            .containers
            .iter()
            .filter(|(_, c)| labels.iter().all(|(k, v)| c.spec.labels.get(*k).map(String::as_str) == Some(*v)))
            .map(|(id, c)| InstanceSummary {
                id: id.clone(),
                name: c.spec.name.clone(),
                running: c.running,
                labels: c.spec.labels.clone(),
            })
            .collect())
    }
}

#[async_trait]
impl ImageStore for FakeRuntime {
    async fn pull(&self, reference: &str, _: Option<&RegistryCredentials>) -> Result<PulledImage, RuntimeError> {
        self.journal.push(format!("pull {reference}"));
        let mut st = self.state.lock().expect("fake runtime");
        if st.missing.iter().any(|m| m == reference) {
            return Err(RuntimeError::ImageNotFound { image: reference.to_owned() });
        }
        let repo = reference.split(['@']).next().unwrap_or(reference);
        let repo = match repo.rsplit_once(':') {
            Some((r, tag)) if !tag.contains('/') => r,
            _ => repo,
        };
        let digest = format!("sha256:{:064x}", reference.len() as u64 * 7919 + st.images.len() as u64);
        let image = PulledImage { id: digest.clone(), digest: Some(format!("{repo}@{digest}")) };
        st.images.insert(reference.to_owned(), image.clone());
        Ok(image)
    }

    async fn local_image(&self, reference: &str) -> Result<Option<PulledImage>, RuntimeError> {
        Ok(self.state.lock().expect("fake runtime").images.get(reference).cloned())
    }

    async fn remove_image(&self, reference: &str) -> Result<(), RuntimeError> {
        self.journal.push(format!("remove image {reference}"));
        self.state.lock().expect("fake runtime").images.remove(reference);
        Ok(())
    }

    async fn read_files(
        &self,
        image: &str,
        paths: &[&str],
        limit: usize,
        _: &BTreeMap<String, String>,
    ) -> Result<Vec<ImageFile>, RuntimeError> {
        let st = self.state.lock().expect("fake runtime");
        Ok(paths
            .iter()
            .map(|path| {
                let repo = image.split(['@', ':']).next().unwrap_or(image);
                match st.files.get(&(repo.to_owned(), (*path).to_owned())) {
                    Some(bytes) if bytes.len() > limit => ImageFile::TooLarge(bytes.len() as u64),
                    Some(bytes) => ImageFile::Found(bytes.clone()),
                    None => ImageFile::Missing,
                }
            })
            .collect())
    }
}

#[async_trait]
impl LogSource for FakeRuntime {
    fn logs(&self, id: &str, request: &LogRequest) -> LogStream {
        let st = self.state.lock().expect("fake runtime");
        let written = st.logs.get(id).map_or(&[][..], Vec::as_slice);
        let wanted: Vec<usize> = (0..written.len()).filter(|i| after(&written[*i], request.since)).collect();
        let skip = request.tail.map_or(0, |tail| wanted.len().saturating_sub(tail));
        let reader = FakeLogReader {
            state: self.state.clone(),
            changed: self.changed.clone(),
            id: id.to_owned(),
            since: request.since,
            follow: request.follow,
            next: wanted.get(skip).copied().unwrap_or(written.len()),
        };
        futures::stream::unfold(reader, FakeLogReader::next).boxed()
    }
}

/// One open log stream of the fake runtime.
struct FakeLogReader {
    state: Arc<Mutex<FakeRuntimeState>>,
    changed: Arc<Notify>,
    id: String,
    since: Option<SystemTime>,
    follow: Follow,
    /// Index of the next line to look at.
    next: usize,
}

impl FakeLogReader {
    async fn next(mut self) -> Option<(Result<LogLine, RuntimeError>, FakeLogReader)> {
        loop {
            let changed = self.changed.clone();
            let notified = changed.notified();
            tokio::pin!(notified);
            // Registered before looking, so a line written in between still wakes this stream.
            notified.as_mut().enable();
            let (line, ended) = {
                let st = self.state.lock().expect("fake runtime");
                let written = st.logs.get(&self.id).map_or(&[][..], Vec::as_slice);
                let found = written[self.next.min(written.len())..].iter().position(|l| after(l, self.since));
                let line = found.map(|offset| written[self.next + offset].clone());
                self.next = found.map_or(written.len(), |offset| self.next + offset + 1);
                let running = st.containers.get(&self.id).is_some_and(|c| c.running);
                (line, self.follow == Follow::No || !running)
            };
            match line {
                Some(line) => return Some((Ok(line), self)),
                None if ended => return None,
                None => {}
            }
            notified.await;
        }
    }
}

/// Whether `line` was written at or after `since`.
fn after(line: &LogLine, since: Option<SystemTime>) -> bool {
    since.is_none_or(|since| line.at.is_none_or(|at| at >= since))
}

/// An in-memory proxy that keeps the last block written.
#[derive(Debug, Default)]
pub struct FakeProxy {
    journal: Journal,
    block: Mutex<Option<RouteBlock>>,
    in_flight: Mutex<BTreeMap<String, VecDeque<u64>>>,
    fail_writes: Mutex<u32>,
}

impl FakeProxy {
    /// A proxy writing to `journal`.
    pub fn new(journal: Journal) -> FakeProxy {
        FakeProxy { journal, ..FakeProxy::default() }
    }

    /// The block Caddy would have now.
    pub fn block(&self) -> Option<RouteBlock> {
        self.block.lock().expect("fake proxy").clone()
    }

    /// The next `n` writes fail.
    pub fn fail_next_writes(&self, n: u32) {
        *self.fail_writes.lock().expect("fake proxy") = n;
    }

    /// Scripts in-flight counts for `upstream` (the last one repeats).
    pub fn script_in_flight(&self, upstream: &str, counts: &[u64]) {
        self.in_flight.lock().expect("fake proxy").insert(upstream.to_owned(), counts.iter().copied().collect());
    }
}

#[async_trait]
impl Proxy for FakeProxy {
    async fn ensure_server(&self) -> Result<(), ProxyError> {
        Ok(())
    }

    async fn apply(&self, block: &RouteBlock) -> Result<Applied, ProxyError> {
        {
            let mut fails = self.fail_writes.lock().expect("fake proxy");
            if *fails > 0 {
                *fails -= 1;
                self.journal.push("route write failed");
                return Err(ProxyError::Rejected { op: "apply".into(), message: "simulated failure".into() });
            }
        }
        let mut current = self.block.lock().expect("fake proxy");
        if current.as_ref().is_some_and(|current| holds(current, block)) {
            return Ok(Applied::Unchanged);
        }
        let mut routes: Vec<String> =
            block.routes.iter().map(|r| format!("{} -> {}", r.hostname, r.upstream)).collect();
        routes.sort();
        let drains: Vec<&str> = block.drains.iter().map(|d| d.upstream.as_str()).collect();
        let drains = if drains.is_empty() { String::new() } else { format!(" (draining {})", drains.join(",")) };
        self.journal.push(format!("route {}{drains}", routes.join(", ")));
        *current = Some(block.clone());
        Ok(Applied::Written)
    }

    async fn in_flight(&self, upstream: &str) -> Result<Option<u64>, ProxyError> {
        let mut map = self.in_flight.lock().expect("fake proxy");
        if let Some(q) = map.get_mut(upstream) {
            return Ok(Some(if q.len() > 1 { q.pop_front().unwrap_or(0) } else { q.front().copied().unwrap_or(0) }));
        }
        // Like Caddy, only upstreams that the block names (routes or drain references) are listed.
        let block = self.block.lock().expect("fake proxy");
        let named = block.as_ref().is_some_and(|block| {
            block.routes.iter().any(|r| r.upstream == upstream) || block.drains.iter().any(|d| d.upstream == upstream)
        });
        Ok(named.then_some(0))
    }
}

/// Whether `current` already serves `wanted`, as Caddy's adapter decides: the same routes in any order, and every
/// wanted drain reference present (a stale drain alone is no reason to write).
fn holds(current: &RouteBlock, wanted: &RouteBlock) -> bool {
    let sorted = |block: &RouteBlock| {
        let mut routes = block.routes.clone();
        routes.sort_by(|a, b| (&a.id, &a.hostname, &a.path_prefix).cmp(&(&b.id, &b.hostname, &b.path_prefix)));
        routes
    };
    sorted(current) == sorted(wanted) && wanted.drains.iter().all(|drain| current.drains.contains(drain))
}

#[async_trait]
impl proxy_contract::Routed for FakeProxy {
    async fn reaches(&self, host: &str) -> Option<String> {
        let block = self.block.lock().expect("fake proxy");
        block.as_ref()?.routes.iter().find(|route| route.hostname == host).map(|route| route.upstream.clone())
    }
}

/// A probe answering from a script: per port, a queue of results (the last one repeats).
#[derive(Debug, Default)]
pub struct ScriptedProbe {
    journal: Journal,
    default: Mutex<Option<ProbeResult>>,
    scripts: Mutex<BTreeMap<u16, VecDeque<ProbeResult>>>,
}

impl ScriptedProbe {
    /// A probe writing to `journal` that answers healthy unless scripted otherwise.
    pub fn new(journal: Journal) -> ScriptedProbe {
        ScriptedProbe { journal, ..ScriptedProbe::default() }
    }

    /// What every unscripted port answers.
    pub fn answer_by_default(&self, result: ProbeResult) {
        *self.default.lock().expect("probe") = Some(result);
    }

    /// Scripts the answers for one port.
    pub fn script(&self, port: u16, results: &[ProbeResult]) {
        self.scripts.lock().expect("probe").insert(port, results.iter().cloned().collect());
    }
}

#[async_trait]
impl HealthProbe for ScriptedProbe {
    async fn check(&self, target: &ProbeTarget) -> ProbeResult {
        // Scripts are per host port; upstreams are loopback `127.0.0.1:<port>` here.
        let port: u16 = target.upstream.rsplit(':').next().and_then(|p| p.parse().ok()).unwrap_or(0);
        self.journal.push(format!("probe :{port}{}", target.path));
        let mut scripts = self.scripts.lock().expect("probe");
        if let Some(q) = scripts.get_mut(&port) {
            if q.len() > 1 {
                return q.pop_front().expect("non-empty");
            }
            if let Some(r) = q.front() {
                return r.clone();
            }
        }
        self.default.lock().expect("probe").clone().unwrap_or(ProbeResult::Healthy(200))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::ports::{LogRotation, Resources};

    #[tokio::test]
    async fn the_fake_runtime_honours_the_runtime_contract() {
        let runtime = FakeRuntime::new(Journal::default());
        let spec = ContainerSpec {
            name: "slip-contract-1".into(),
            image: "registry.test/web@sha256:00".into(),
            labels: BTreeMap::from([("slip.test".to_owned(), "contract".to_owned())]),
            env: Vec::new(),
            ports: vec![PortMapping { host: 41234, container: 8080 }],
            network: None,
            resources: Resources::default(),
            mounts: Vec::new(),
            init: false,
            log: LogRotation { max_size_bytes: 1 << 20, max_files: 1 },
        };
        contract::runtime_contract(&runtime, InstanceSpec::Container(spec), &[("slip.test", "contract")]).await;
    }

    #[tokio::test]
    async fn the_fake_image_store_honours_the_image_files_contract() {
        let runtime = FakeRuntime::new(Journal::default());
        runtime.put_file("registry.test/web", "/slip/slip.toml", "[app]\nname = \"web\"\n");
        let labels = BTreeMap::from([("slip.test".to_owned(), "files".to_owned())]);
        contract::image_files_contract(
            &runtime,
            &runtime,
            "registry.test/web:v1",
            b"[app]\nname = \"web\"\n",
            &labels,
            &[("slip.test", "files")],
        )
        .await;
    }

    #[tokio::test]
    async fn the_fake_proxy_honours_the_proxy_contract() {
        let proxy = FakeProxy::new(Journal::default());
        proxy_contract::proxy_contract(&proxy, &proxy, "127.0.0.1:41001", "127.0.0.1:41002").await;
    }
}
