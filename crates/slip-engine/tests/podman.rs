//! `docker::Runtime` on Podman's Docker-compatible socket, as `backend = "auto"` picks it on a host that has Podman:
//! the same runtime contract as the fake and Docker, with an image pulled from a real loopback registry.
//! Needs the Podman API service and docker-registry (`scripts/setup.sh --dev`); fails, never skips, without them.

use std::collections::BTreeMap;

use slip_engine::docker::Runtime;
use slip_engine::ports::{ContainerSpec, ImageStore, InstanceSpec, LogRotation, PortMapping, Resources};
use slip_engine::testing::contract::runtime_contract;
use slip_testenv::{
    ContainerGuard, Image, PODMAN_SOCKET, Registry, free_port, require_docker, require_podman, unique_id,
};

#[tokio::test]
async fn podman_honours_the_runtime_contract() {
    require_docker();
    require_podman();
    let test_id = unique_id();
    let _guard = ContainerGuard::podman("slip.test", &test_id);
    let registry = Registry::start();
    let reference = registry.push(&Image::V1, &format!("contract-{test_id}"), "v1");
    let runtime = Runtime::connect(Some(PODMAN_SOCKET)).await.expect("connecting to Podman");
    let pulled = runtime.pull(&reference, None).await.expect("Podman pulls from the loopback registry");
    let spec = ContainerSpec {
        name: format!("slip-test-{}", unique_id()),
        image: pulled.digest.clone().unwrap_or(pulled.id.clone()),
        labels: BTreeMap::from([
            ("slip.test".to_owned(), test_id.clone()),
            ("slip.managed".to_owned(), "true".to_owned()),
        ]),
        env: Vec::new(),
        ports: vec![PortMapping { host: free_port(), container: 8080 }],
        network: None,
        resources: Resources::default(),
        mounts: Vec::new(),
        init: false,
        log: LogRotation { max_size_bytes: 1 << 20, max_files: 2 },
    };
    runtime_contract(&runtime, InstanceSpec::Container(spec), &[("slip.test", test_id.as_str())]).await;
    runtime.remove_image(&reference).await.expect("removing the pulled image");
}

#[tokio::test]
async fn podman_reads_files_out_of_an_image_through_a_never_started_container() {
    require_docker();
    require_podman();
    let test_id = unique_id();
    let _guard = ContainerGuard::podman("slip.test", &test_id);
    let registry = Registry::start();
    let contents = format!("[app]\nname = \"files-{test_id}\"\n");
    let image = Image::V1.with_file("/slip/slip.toml", contents.clone());
    let reference = registry.push(&image, &format!("files-{test_id}"), "v1");
    let runtime = Runtime::connect(Some(PODMAN_SOCKET)).await.expect("connecting to Podman");
    let pulled = runtime.pull(&reference, None).await.expect("Podman pulls from the loopback registry");
    let mut labels = slip_engine::labels::extract("slipd-test");
    labels.insert("slip.test".into(), test_id.clone());
    let image_ref = pulled.digest.clone().unwrap_or(pulled.id.clone());
    slip_engine::testing::contract::image_files_contract(
        &runtime,
        &runtime,
        &image_ref,
        contents.as_bytes(),
        &labels,
        &[("slip.test", test_id.as_str())],
    )
    .await;
    runtime.remove_image(&reference).await.expect("removing the pulled image");
}
