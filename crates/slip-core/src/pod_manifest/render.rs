//! Rendering a checked manifest for one release (SPEC §14.2): a pure function from the manifest's text and what
//! the deploy decided to the document Podman's `kube play` runs.
//!
//! The output is JSON, which is YAML, so Podman reads it as the manifest it is, and nothing is lost in a YAML
//! emitter's quoting. It holds secret values (env): the caller sends it to the engine and never writes it down.
//!
//! What changes: `metadata.name` and the slip labels; every container's `image` becomes the reference pinned to
//! the pulled digest; every declared port is removed (Podman would publish each one), and only the ports slip
//! publishes are declared, with `hostIP: 127.0.0.1` and their leased `hostPort`; env is added (names the manifest sets keep its value);
//! `[[volumes]]` are added as `hostPath` volumes mounted into the containers they list; the pod's
//! `restartPolicy` is `OnFailure` and init containers run at every start of the pod (why: docs/decisions.md, init
//! containers on Podman 4.3).

use std::collections::BTreeMap;

use saphyr::{LoadableYamlNode, Scalar, Yaml};
use serde_json::{Map, Value, json};

/// The only host address pod ports are published on.
pub const LOOPBACK: &str = "127.0.0.1";

/// Podman's annotation that makes init containers run at every start of the pod (`always`), not just the first.
pub const INIT_TYPE_ANNOTATION: &str = "io.podman.annotations.init.container.type";

/// The restart policy slip gives every pod.
pub const RESTART_POLICY: &str = "OnFailure";

/// A host directory from the server's `[[volumes]]`, for the pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostVolume {
    /// Absolute host path.
    pub host_path: String,
    /// Absolute path inside the containers.
    pub mount_path: String,
    /// Mount read-only.
    pub read_only: bool,
    /// The containers that mount it; empty means every container (init containers included).
    pub containers: Vec<String>,
}

/// What one release puts into the manifest.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rendering {
    /// The pod's name (`slip-<app>-<8 hex>`).
    pub name: String,
    /// Labels for the pod (Podman puts them on its containers too).
    pub labels: BTreeMap<String, String>,
    /// Container name → the image reference it runs, pinned to the pulled digest.
    pub images: BTreeMap<String, String>,
    /// (container name, container port) → the leased host port on 127.0.0.1.
    pub ports: BTreeMap<(String, u16), u16>,
    /// Container name → the environment slip adds, in order (secrets already filtered per container).
    pub env: BTreeMap<String, Vec<(String, String)>>,
    /// The server's `[[volumes]]`.
    pub volumes: Vec<HostVolume>,
}

/// Renders `manifest` (a document [`super::read`] found valid) for one release.
pub fn render(manifest: &str, rendering: &Rendering) -> Result<String, String> {
    let docs = Yaml::load_from_str(manifest).map_err(|e| format!("invalid YAML: {e}"))?;
    let [doc] = docs.as_slice() else { return Err("the manifest must be exactly one document".into()) };
    let mut pod = to_json(doc);
    let root = pod.as_object_mut().ok_or("the manifest is not a mapping")?;

    let metadata = object(root, "metadata");
    metadata.insert("name".into(), json!(rendering.name));
    let labels = object(metadata, "labels");
    for (k, v) in &rendering.labels {
        labels.insert(k.clone(), json!(v));
    }
    // Init containers run again on every start of the pod (SPEC §14.4), not only at its creation.
    object(metadata, "annotations").insert(INIT_TYPE_ANNOTATION.into(), json!("always"));

    let spec = object(root, "spec");
    spec.insert("restartPolicy".into(), json!(RESTART_POLICY));
    let mut volumes_of: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    if !rendering.volumes.is_empty() {
        let list = array(spec, "volumes");
        for (n, volume) in rendering.volumes.iter().enumerate() {
            let name = format!("slip-volume-{n}");
            list.push(json!({"name": name, "hostPath": {"path": volume.host_path, "type": "DirectoryOrCreate"}}));
            let mount = json!({"name": name, "mountPath": volume.mount_path, "readOnly": volume.read_only});
            if volume.containers.is_empty() {
                volumes_of.entry("*".into()).or_default().push(mount);
            } else {
                for c in &volume.containers {
                    volumes_of.entry(c.clone()).or_default().push(mount.clone());
                }
            }
        }
    }
    for list in ["initContainers", "containers"] {
        let Some(Value::Array(containers)) = spec.get_mut(list) else { continue };
        for container in containers.iter_mut().filter_map(Value::as_object_mut) {
            let name = container.get("name").and_then(Value::as_str).unwrap_or_default().to_owned();
            render_container(container, &name, rendering, &volumes_of);
        }
    }
    serde_json::to_string_pretty(&pod).map_err(|e| format!("rendering the manifest: {e}"))
}

fn render_container(
    container: &mut Map<String, Value>,
    name: &str,
    rendering: &Rendering,
    volumes_of: &BTreeMap<String, Vec<Value>>,
) {
    if let Some(image) = rendering.images.get(name) {
        container.insert("image".into(), json!(image));
    }
    // Podman publishes every declared containerPort, on 0.0.0.0 when it has no hostPort (measured on 4.3.1), so
    // only the ports slip publishes are kept: declared ports are informational to Kubernetes and the containers of
    // a pod share one network namespace, so nothing inside the pod depends on them.
    container.remove("ports");
    for ((owner, container_port), host) in &rendering.ports {
        if owner != name {
            continue;
        }
        let port = json!({"containerPort": container_port, "hostIP": LOOPBACK, "hostPort": host, "protocol": "TCP"});
        array(container, "ports").push(port);
    }
    if let Some(extra) = rendering.env.get(name).filter(|e| !e.is_empty()) {
        let env = array(container, "env");
        for (key, value) in extra {
            let set = env.iter().any(|e| e.get("name").and_then(Value::as_str) == Some(key.as_str()));
            if !set {
                env.push(json!({"name": key, "value": value}));
            }
        }
    }
    let mounts: Vec<Value> =
        volumes_of.get("*").into_iter().chain(volumes_of.get(name)).flatten().cloned().collect::<Vec<_>>();
    if !mounts.is_empty() {
        array(container, "volumeMounts").extend(mounts);
    }
}

/// `map[key]` as an object, made (or replacing a non-object) when needed.
fn object<'m>(map: &'m mut Map<String, Value>, key: &str) -> &'m mut Map<String, Value> {
    let slot = map.entry(key).or_insert_with(|| Value::Object(Map::new()));
    if !slot.is_object() {
        *slot = Value::Object(Map::new());
    }
    slot.as_object_mut().expect("an object")
}

/// `map[key]` as an array, made (or replacing a non-array, such as `null`) when needed.
fn array<'m>(map: &'m mut Map<String, Value>, key: &str) -> &'m mut Vec<Value> {
    let slot = map.entry(key).or_insert_with(|| Value::Array(Vec::new()));
    if !slot.is_array() {
        *slot = Value::Array(Vec::new());
    }
    slot.as_array_mut().expect("an array")
}

fn to_json(node: &Yaml<'_>) -> Value {
    match node {
        Yaml::Value(Scalar::Null) | Yaml::BadValue | Yaml::Alias(_) => Value::Null,
        Yaml::Value(Scalar::Boolean(b)) => json!(b),
        Yaml::Value(Scalar::Integer(i)) => json!(i),
        Yaml::Value(Scalar::FloatingPoint(f)) => json!(f.into_inner()),
        Yaml::Value(Scalar::String(s)) => json!(s.as_ref()),
        Yaml::Representation(s, _, _) => json!(s.as_ref()),
        Yaml::Sequence(items) => Value::Array(items.iter().map(to_json).collect()),
        Yaml::Mapping(entries) => Value::Object(
            entries
                .iter()
                .map(|(k, v)| {
                    let key = match to_json(k) {
                        Value::String(s) => s,
                        other => other.to_string(),
                    };
                    (key, to_json(v))
                })
                .collect(),
        ),
        Yaml::Tagged(_, inner) => to_json(inner),
    }
}

#[cfg(test)]
mod tests {
    use expect_test::expect;

    use super::*;

    const README_POD: &str = "\
apiVersion: v1
kind: Pod
metadata:
  name: statstream
  labels:
    team: data
spec:
  initContainers:
  - name: migrate
    image: ghcr.io/you/statstream-api:${tag}
    command: [\"/bin/busybox\", \"sh\", \"-c\", \"echo migrated >> /opt/dagster/dagster_home/init.log\"]
  containers:
  - name: api
    image: ghcr.io/you/statstream-api:${tag}
    ports:
    - containerPort: 8080
      hostPort: 8080
      hostIP: 0.0.0.0
    env:
    - name: MODE
      value: api
  - name: dagster-webserver
    image: ghcr.io/you/statstream-dagster:${tag}
    ports:
    - containerPort: 3000
  - name: worker
    image: ghcr.io/you/statstream-api:${tag}
    ports:
    - containerPort: 9100
      hostPort: 9100
";

    fn rendering() -> Rendering {
        let digest = |repo: &str| format!("{repo}@sha256:{}", "a".repeat(64));
        Rendering {
            name: "slip-statstream-1a2b3c4d".into(),
            labels: BTreeMap::from([("slip.app".into(), "statstream".into()), ("slip.managed".into(), "true".into())]),
            images: BTreeMap::from([
                ("migrate".into(), digest("ghcr.io/you/statstream-api")),
                ("api".into(), digest("ghcr.io/you/statstream-api")),
                ("dagster-webserver".into(), digest("ghcr.io/you/statstream-dagster")),
                ("worker".into(), digest("ghcr.io/you/statstream-api")),
            ]),
            ports: BTreeMap::from([(("api".into(), 8080), 20001), (("dagster-webserver".into(), 3000), 20002)]),
            env: BTreeMap::from([
                ("api".into(), vec![("MODE".into(), "slip-would-override".into()), ("SLIP_TAG".into(), "v1".into())]),
                ("worker".into(), vec![("SLIP_TAG".into(), "v1".into())]),
            ]),
            volumes: vec![HostVolume {
                host_path: "/var/lib/slip/volumes/statstream/dagster-home".into(),
                mount_path: "/opt/dagster/dagster_home".into(),
                read_only: false,
                containers: Vec::new(),
            }],
        }
    }

    #[test]
    fn the_readme_pod_renders_with_pinned_images_loopback_ports_env_and_the_shared_volume() {
        let rendered = render(README_POD, &rendering()).unwrap();
        expect![[r#"
            {
              "apiVersion": "v1",
              "kind": "Pod",
              "metadata": {
                "annotations": {
                  "io.podman.annotations.init.container.type": "always"
                },
                "labels": {
                  "slip.app": "statstream",
                  "slip.managed": "true",
                  "team": "data"
                },
                "name": "slip-statstream-1a2b3c4d"
              },
              "spec": {
                "containers": [
                  {
                    "env": [
                      {
                        "name": "MODE",
                        "value": "api"
                      },
                      {
                        "name": "SLIP_TAG",
                        "value": "v1"
                      }
                    ],
                    "image": "ghcr.io/you/statstream-api@sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
                    "name": "api",
                    "ports": [
                      {
                        "containerPort": 8080,
                        "hostIP": "127.0.0.1",
                        "hostPort": 20001,
                        "protocol": "TCP"
                      }
                    ],
                    "volumeMounts": [
                      {
                        "mountPath": "/opt/dagster/dagster_home",
                        "name": "slip-volume-0",
                        "readOnly": false
                      }
                    ]
                  },
                  {
                    "image": "ghcr.io/you/statstream-dagster@sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
                    "name": "dagster-webserver",
                    "ports": [
                      {
                        "containerPort": 3000,
                        "hostIP": "127.0.0.1",
                        "hostPort": 20002,
                        "protocol": "TCP"
                      }
                    ],
                    "volumeMounts": [
                      {
                        "mountPath": "/opt/dagster/dagster_home",
                        "name": "slip-volume-0",
                        "readOnly": false
                      }
                    ]
                  },
                  {
                    "env": [
                      {
                        "name": "SLIP_TAG",
                        "value": "v1"
                      }
                    ],
                    "image": "ghcr.io/you/statstream-api@sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
                    "name": "worker",
                    "volumeMounts": [
                      {
                        "mountPath": "/opt/dagster/dagster_home",
                        "name": "slip-volume-0",
                        "readOnly": false
                      }
                    ]
                  }
                ],
                "initContainers": [
                  {
                    "command": [
                      "/bin/busybox",
                      "sh",
                      "-c",
                      "echo migrated >> /opt/dagster/dagster_home/init.log"
                    ],
                    "image": "ghcr.io/you/statstream-api@sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
                    "name": "migrate",
                    "volumeMounts": [
                      {
                        "mountPath": "/opt/dagster/dagster_home",
                        "name": "slip-volume-0",
                        "readOnly": false
                      }
                    ]
                  }
                ],
                "restartPolicy": "OnFailure",
                "volumes": [
                  {
                    "hostPath": {
                      "path": "/var/lib/slip/volumes/statstream/dagster-home",
                      "type": "DirectoryOrCreate"
                    },
                    "name": "slip-volume-0"
                  }
                ]
              }
            }"#]]
        .assert_eq(&rendered);
    }

    #[test]
    fn no_host_address_but_loopback_survives_and_only_leased_ports_are_published() {
        let rendered: Value = serde_json::from_str(&render(README_POD, &rendering()).unwrap()).unwrap();
        let mut published = Vec::new();
        for c in rendered["spec"]["containers"].as_array().unwrap() {
            for p in c["ports"].as_array().into_iter().flatten() {
                if let Some(host) = p.get("hostPort") {
                    assert_eq!(p["hostIP"], LOOPBACK, "{p}");
                    published.push(host.as_u64().unwrap());
                } else {
                    assert!(p.get("hostIP").is_none(), "{p}");
                }
            }
        }
        assert_eq!(published, [20001, 20002], "the worker's manifest hostPort 9100 is gone");
        assert!(rendered["spec"]["containers"][2].get("ports").is_none(), "an unpublished port is not declared");
    }

    #[test]
    fn a_volume_limited_to_containers_mounts_only_there() {
        let mut r = rendering();
        r.volumes[0].containers = vec!["worker".into()];
        let rendered: Value = serde_json::from_str(&render(README_POD, &r).unwrap()).unwrap();
        let mounted: Vec<&str> = rendered["spec"]["containers"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c.get("volumeMounts").is_some())
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert_eq!(mounted, ["worker"]);
        assert!(rendered["spec"]["initContainers"][0].get("volumeMounts").is_none());
    }
}
