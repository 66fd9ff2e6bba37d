//! Turns a [`ContainerSpec`] into the engine's container-create body: a pure function, tested without an engine.
//!
//! The rules slip guarantees live here: ports are published on 127.0.0.1 only, the restart policy is
//! `unless-stopped`, logs rotate. It does not choose names, labels, ports or limits (the caller does), and it
//! never reads or logs the environment's values beyond copying them into the body.

use std::collections::{BTreeMap, HashMap};

use bollard::models::{
    ContainerCreateBody, EndpointSettings, HostConfig, HostConfigLogConfig, Mount as EngineMount, MountType,
    NetworkingConfig, PortBinding, RestartPolicy, RestartPolicyNameEnum,
};

use super::Backend;
use crate::ports::{ContainerSpec, LogRotation};

/// The only host address slip publishes ports on.
pub(crate) const LOOPBACK: &str = "127.0.0.1";

/// The create body for `spec` on `backend`.
pub(crate) fn container_body(spec: &ContainerSpec, backend: Backend) -> ContainerCreateBody {
    let mut bindings: BTreeMap<String, Vec<PortBinding>> = BTreeMap::new();
    for port in &spec.ports {
        bindings
            .entry(format!("{}/tcp", port.container))
            .or_default()
            .push(PortBinding { host_ip: Some(LOOPBACK.to_owned()), host_port: Some(port.host.to_string()) });
    }
    let exposed: Vec<String> = bindings.keys().cloned().collect();
    let port_bindings: HashMap<String, Option<Vec<PortBinding>>> =
        bindings.into_iter().map(|(port, list)| (port, Some(list))).collect();

    let mounts: Vec<EngineMount> = spec
        .mounts
        .iter()
        .map(|m| EngineMount {
            typ: Some(MountType::BIND),
            source: Some(m.host_path.to_string_lossy().into_owned()),
            target: Some(m.container_path.clone()),
            read_only: Some(m.read_only),
            ..Default::default()
        })
        .collect();

    let host_config = HostConfig {
        port_bindings: Some(port_bindings),
        restart_policy: Some(RestartPolicy {
            name: Some(RestartPolicyNameEnum::UNLESS_STOPPED),
            maximum_retry_count: None,
        }),
        memory: spec.resources.memory_bytes.map(saturating_i64),
        nano_cpus: spec.resources.nano_cpus.map(saturating_i64),
        pids_limit: spec.resources.pids,
        mounts: (!mounts.is_empty()).then_some(mounts),
        init: spec.init.then_some(true),
        log_config: Some(log_config(spec.log, backend)),
        network_mode: spec.network.as_ref().map(|n| n.name.clone()),
        ..Default::default()
    };

    let networking_config = spec.network.as_ref().map(|n| NetworkingConfig {
        endpoints_config: Some(HashMap::from([(
            n.name.clone(),
            EndpointSettings { aliases: n.alias.clone().map(|a| vec![a]), ..Default::default() },
        )])),
    });

    ContainerCreateBody {
        image: Some(spec.image.clone()),
        labels: Some(spec.labels.iter().map(|(k, v)| (k.clone(), v.clone())).collect()),
        env: Some(spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
        exposed_ports: Some(exposed),
        host_config: Some(host_config),
        networking_config,
        ..Default::default()
    }
}

/// Points the network attachment of `body` (made for network `name`) at the network with engine id `id`, so a
/// duplicate network name (Docker accepts those) cannot make the create ambiguous.
pub(super) fn attach_by_id(body: &mut ContainerCreateBody, name: &str, id: &str) {
    if let Some(host) = body.host_config.as_mut() {
        host.network_mode = Some(id.to_owned());
    }
    if let Some(endpoints) = body.networking_config.as_mut().and_then(|n| n.endpoints_config.as_mut())
        && let Some(settings) = endpoints.remove(name)
    {
        endpoints.insert(id.to_owned(), settings);
    }
}

/// Log rotation for the engine's file driver.
///
/// Docker's `json-file` takes `max-size` and `max-file`. Podman's `k8s-file` rotates by size only (it keeps one
/// file, truncated at `max-size`), so `max-file` is not sent there.
pub(crate) fn log_config(log: LogRotation, backend: Backend) -> HostConfigLogConfig {
    let mut config = HashMap::from([("max-size".to_owned(), log.max_size_bytes.to_string())]);
    let driver = match backend {
        Backend::Podman => "k8s-file",
        Backend::Docker | Backend::Auto => {
            config.insert("max-file".to_owned(), log.max_files.max(1).to_string());
            "json-file"
        }
    };
    HostConfigLogConfig { typ: Some(driver.to_owned()), config: Some(config) }
}

fn saturating_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::ports::{Mount, NetworkAttachment, PortMapping, Resources};

    fn spec() -> ContainerSpec {
        ContainerSpec {
            name: "slip-web-1a2b3c4d".into(),
            image: "127.0.0.1:5000/web@sha256:abc".into(),
            labels: BTreeMap::from([("slip.app".into(), "web".into()), ("slip.managed".into(), "true".into())]),
            env: vec![("PORT".into(), "8080".into())],
            ports: vec![PortMapping { host: 20001, container: 8080 }, PortMapping { host: 20002, container: 9090 }],
            network: Some(NetworkAttachment { name: "slip".into(), alias: Some("web".into()) }),
            resources: Resources { memory_bytes: Some(256 << 20), nano_cpus: Some(500_000_000), pids: Some(128) },
            mounts: vec![Mount {
                host_path: PathBuf::from("/var/lib/slip/volumes/web"),
                container_path: "/data".into(),
                read_only: true,
            }],
            init: true,
            log: LogRotation { max_size_bytes: 10 << 20, max_files: 3 },
        }
    }

    #[test]
    fn ports_are_published_on_loopback_only() {
        let body = container_body(&spec(), Backend::Docker);
        let bindings = body.host_config.unwrap().port_bindings.unwrap();
        assert_eq!(bindings.len(), 2);
        for (port, list) in &bindings {
            assert!(port.ends_with("/tcp"), "{port}");
            for binding in list.as_ref().unwrap() {
                assert_eq!(binding.host_ip.as_deref(), Some(LOOPBACK));
            }
        }
        assert_eq!(bindings["8080/tcp"].as_ref().unwrap()[0].host_port.as_deref(), Some("20001"));
        assert_eq!(body.exposed_ports.unwrap(), vec!["8080/tcp".to_owned(), "9090/tcp".to_owned()]);
    }

    #[test]
    fn restart_policy_limits_mounts_network_and_init_are_set() {
        let body = container_body(&spec(), Backend::Docker);
        let host = body.host_config.unwrap();
        assert_eq!(host.restart_policy.unwrap().name, Some(RestartPolicyNameEnum::UNLESS_STOPPED));
        assert_eq!(host.memory, Some(256 << 20));
        assert_eq!(host.nano_cpus, Some(500_000_000));
        assert_eq!(host.pids_limit, Some(128));
        assert_eq!(host.init, Some(true));
        let mount = &host.mounts.unwrap()[0];
        assert_eq!(mount.source.as_deref(), Some("/var/lib/slip/volumes/web"));
        assert_eq!(mount.read_only, Some(true));
        assert_eq!(host.network_mode.as_deref(), Some("slip"));
        let endpoints = body.networking_config.unwrap().endpoints_config.unwrap();
        assert_eq!(endpoints["slip"].aliases, Some(vec!["web".to_owned()]));
        assert_eq!(body.env.unwrap(), vec!["PORT=8080".to_owned()]);
    }

    #[test]
    fn unset_limits_and_no_network_stay_unset() {
        let mut spec = spec();
        spec.resources = Resources::default();
        spec.network = None;
        spec.init = false;
        spec.mounts.clear();
        let body = container_body(&spec, Backend::Docker);
        let host = body.host_config.unwrap();
        assert_eq!((host.memory, host.nano_cpus, host.pids_limit, host.init), (None, None, None, None));
        assert!(host.mounts.is_none() && host.network_mode.is_none() && body.networking_config.is_none());
    }

    #[test]
    fn log_rotation_per_backend() {
        let log = LogRotation { max_size_bytes: 10 << 20, max_files: 3 };
        let docker = log_config(log, Backend::Docker);
        assert_eq!(docker.typ.as_deref(), Some("json-file"));
        let config = docker.config.unwrap();
        assert_eq!((config["max-size"].as_str(), config["max-file"].as_str()), ("10485760", "3"));
        let podman = log_config(log, Backend::Podman);
        assert_eq!(podman.typ.as_deref(), Some("k8s-file"));
        assert!(!podman.config.unwrap().contains_key("max-file"));
    }
}
