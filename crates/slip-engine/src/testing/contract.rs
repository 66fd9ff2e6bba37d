//! The contract every [`InstanceRuntime`] honours, as one function that runs against the fake and against each real
//! adapter (Docker, Podman), so the fake the driver's unit tests use cannot drift from the engines.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::StreamExt;

use crate::ports::{ImageFile, ImageStore, InstanceRuntime, InstanceSpec, PodSpec, RuntimeError, RuntimeEventKind};

/// Checks `runtime` with `spec`: a container of a long-running image that stops on SIGTERM, publishing exactly one
/// free host port, labelled so that `labels` selects only the instances this contract makes. Leaves nothing behind
/// when it passes.
pub async fn runtime_contract(runtime: &dyn InstanceRuntime, spec: InstanceSpec, labels: &[(&str, &str)]) {
    let InstanceSpec::Container(container) = &spec else { panic!("the contract starts a container") };
    assert_eq!(container.ports.len(), 1, "the contract's spec publishes one port");
    let grace = Duration::from_secs(5);

    // Start: running, named and labelled as asked, publishing what it asked for, one container.
    let id = runtime.start(&spec).await.expect("start");
    let state = runtime.inspect(&id).await.expect("inspect").expect("a started instance exists");
    assert!(state.running(), "{state:?}");
    assert_eq!(state.name, container.name);
    assert_eq!(state.ports, container.ports, "published as asked");
    assert_eq!(state.containers.len(), 1, "one container: {state:?}");
    assert_eq!(state.containers[0].exit_code, None);
    for (k, v) in &container.labels {
        assert_eq!(state.labels.get(k), Some(v), "label {k}");
    }
    let listed = runtime.list(labels).await.expect("list");
    assert_eq!(listed.iter().map(|i| (i.id.as_str(), i.running)).collect::<Vec<_>>(), [(id.as_str(), true)]);

    // A second instance on a host port the first one holds is refused as a taken port, and leaves nothing behind.
    let mut clash = container.clone();
    clash.name = format!("{}-clash", container.name);
    let port = container.ports[0].host;
    match runtime.start(&InstanceSpec::Container(clash)).await {
        Err(RuntimeError::PortUnavailable { port: reported, .. }) => assert_eq!(reported, port),
        other => panic!("a start on a taken host port must be PortUnavailable, got {other:?}"),
    }
    assert_eq!(runtime.list(labels).await.expect("list").len(), 1, "the refused start left nothing behind");

    // Stop is idempotent; a stopped instance still exists, with an exit code and the ports it will bind again.
    // The engine reports the exit to an event subscription that selects the instance, with its labels.
    let mut events = runtime.events(labels).await.expect("events");
    runtime.stop(&id, grace).await.expect("stop");
    let died = tokio::time::timeout(Duration::from_secs(15), async {
        loop {
            let event = events.next().await.expect("the event stream stays open").expect("an event");
            if event.container == container.name {
                return event;
            }
        }
    })
    .await
    .expect("the exit is reported within 15 s");
    assert!(matches!(died.kind, RuntimeEventKind::Died { .. }), "{died:?}");
    for (k, v) in labels {
        assert_eq!(died.labels.get(*k).map(String::as_str), Some(*v), "label {k} on the event: {died:?}");
    }
    drop(events);
    runtime.stop(&id, grace).await.expect("stopping a stopped instance is ok");
    let stopped = runtime.inspect(&id).await.expect("inspect").expect("a stopped instance still exists");
    assert!(!stopped.running(), "{stopped:?}");
    assert!(stopped.containers[0].exit_code.is_some(), "{stopped:?}");
    assert_eq!(stopped.ports, container.ports, "a stopped instance reports the ports it will bind");
    assert!(!runtime.list(labels).await.expect("list")[0].running, "list shows stopped instances too");

    // Restart runs it again on the same ports, as a new start (restart detection relies on it).
    runtime.restart(&id).await.expect("restart");
    let restarted = runtime.inspect(&id).await.expect("inspect").expect("restarted");
    assert!(restarted.running(), "{restarted:?}");
    assert_eq!(restarted.ports, container.ports, "restart keeps the leased port");
    assert_ne!(restarted.containers[0].started_at, state.containers[0].started_at, "a restart is a new start");

    // Remove is idempotent, and a removed instance is gone for every verb.
    runtime.stop(&id, grace).await.expect("stop");
    runtime.remove(&id).await.expect("remove");
    runtime.remove(&id).await.expect("removing a missing instance is ok");
    runtime.stop(&id, grace).await.expect("stopping a missing instance is ok");
    assert_eq!(runtime.inspect(&id).await.expect("inspect"), None);
    assert!(runtime.list(labels).await.expect("list").is_empty());
    assert!(matches!(runtime.restart(&id).await, Err(RuntimeError::Rejected { .. })), "restart of a missing instance");

    // These adapters run containers; a pod spec is refused, never half-made.
    let pod = PodSpec {
        name: format!("{}-pod", container.name),
        labels: container.labels.clone(),
        manifest: String::new(),
        ports: Vec::new(),
    };
    assert!(matches!(runtime.start(&InstanceSpec::Pod(pod)).await, Err(RuntimeError::Rejected { .. })));
    assert!(runtime.list(labels).await.expect("list").is_empty());
}

/// Checks [`ImageStore::read_files`] on `image`, which holds `/slip/slip.toml` with `contents`: a file is read
/// whole, a missing one (or one in a missing directory) is `Missing`, one over the limit is `TooLarge`, and no
/// container carrying `labels` (which `selector` selects) is left behind.
pub async fn image_files_contract(
    store: &dyn ImageStore,
    runtime: &dyn InstanceRuntime,
    image: &str,
    contents: &[u8],
    labels: &BTreeMap<String, String>,
    selector: &[(&str, &str)],
) {
    let paths = ["/slip/slip.toml", "/slip/missing.toml", "/nowhere/at/all"];
    let files = store.read_files(image, &paths, 64 * 1024, labels).await.expect("read_files");
    assert_eq!(
        files,
        [ImageFile::Found(contents.to_vec()), ImageFile::Missing, ImageFile::Missing],
        "what the image holds, in the order asked"
    );
    let small = store.read_files(image, &["/slip/slip.toml"], contents.len() - 1, labels).await.expect("read_files");
    assert_eq!(small, [ImageFile::TooLarge(contents.len() as u64)]);
    assert!(runtime.list(selector).await.expect("list").is_empty(), "every extract container is removed");
}
