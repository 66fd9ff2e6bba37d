//! The rules for the Pod document itself (SPEC §14.1, §14.2): one `apiVersion: v1`, `kind: Pod` document;
//! at most [`MAX_CONTAINERS`] containers with unique DNS-label names and valid images; `containerPort`s;
//! privileged settings only with `app.allow_privileged`; volumes of the types slip runs, `hostPath`s that
//! the server's app file lists, and mounts that name a volume.
//!
//! Fields slip does not read are left alone (Podman runs them), except that unknown keys in the parts slip
//! reads get a "did you mean" warning.

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::yaml::{self, Map, Node, Walker, at};
use super::{Container, MAX_CONTAINERS, Manifest, Policy, Volume, VolumeSource, image};
use crate::config::reader::At;
use crate::config::server::check_absolute;
use crate::names::is_dns_label;

const TOP: &[&str] = &["apiVersion", "kind", "metadata", "spec", "status"];
const POD_SPEC: &[&str] = &[
    "activeDeadlineSeconds",
    "affinity",
    "automountServiceAccountToken",
    "containers",
    "dnsConfig",
    "dnsPolicy",
    "enableServiceLinks",
    "ephemeralContainers",
    "hostAliases",
    "hostIPC",
    "hostNetwork",
    "hostPID",
    "hostUsers",
    "hostname",
    "imagePullSecrets",
    "initContainers",
    "nodeName",
    "nodeSelector",
    "os",
    "overhead",
    "preemptionPolicy",
    "priority",
    "priorityClassName",
    "readinessGates",
    "resourceClaims",
    "resources",
    "restartPolicy",
    "runtimeClassName",
    "schedulerName",
    "schedulingGates",
    "securityContext",
    "serviceAccount",
    "serviceAccountName",
    "setHostnameAsFQDN",
    "shareProcessNamespace",
    "subdomain",
    "terminationGracePeriodSeconds",
    "tolerations",
    "topologySpreadConstraints",
    "volumes",
];
const CONTAINER: &[&str] = &[
    "args",
    "command",
    "env",
    "envFrom",
    "image",
    "imagePullPolicy",
    "lifecycle",
    "livenessProbe",
    "name",
    "ports",
    "readinessProbe",
    "resizePolicy",
    "resources",
    "restartPolicy",
    "securityContext",
    "startupProbe",
    "stdin",
    "stdinOnce",
    "terminationMessagePath",
    "terminationMessagePolicy",
    "tty",
    "volumeDevices",
    "volumeMounts",
    "workingDir",
];
const PORT: &[&str] = &["containerPort", "hostIP", "hostPort", "name", "protocol"];
const MOUNT: &[&str] =
    &["mountPath", "mountPropagation", "name", "readOnly", "recursiveReadOnly", "subPath", "subPathExpr"];
const HOST_NAMESPACES: &[&str] = &["hostNetwork", "hostPID", "hostIPC"];
const NOT_IN_V1: &[&str] = &["configMap", "secret"];

/// Reads the document in `text`; `None` when it is not a readable Pod (every problem is in `w`).
pub(crate) fn read(w: &mut Walker, text: &str, policy: &Policy) -> Option<Manifest> {
    let docs = yaml::load(w, text)?;
    let doc = match docs.as_slice() {
        [] => {
            w.problem((None, None), "the manifest is empty: it needs one kind: Pod document".into(), None);
            return None;
        }
        [doc] => doc,
        [_, second, ..] => {
            w.problem(
                at(second),
                format!("the manifest holds {} YAML documents; slip runs exactly one kind: Pod", docs.len()),
                Some("put every container in the one Pod's spec.containers".into()),
            );
            return None;
        }
    };
    let root = w.mapping(doc, "the manifest")?;
    w.unknown_keys(root, "", TOP);
    header(w, root);
    let Some(spec) = root.get("spec") else {
        w.problem(root.at(), "missing spec: a Pod needs spec.containers".into(), None);
        return None;
    };
    let spec = w.mapping(spec, "spec")?;
    w.unknown_keys(spec, "spec", POD_SPEC);
    for key in HOST_NAMESPACES {
        if let Some(node) = spec.get(key)
            && w.boolean(node, &format!("spec.{key}")) == Some(true)
        {
            privileged(w, policy, at(node), &format!("spec.{key}: true"));
        }
    }
    let (volumes, volume_names) = volumes(w, spec, policy);
    let mut names = BTreeMap::new();
    // Init containers first: they come first in most files, and run first.
    let init_containers = containers_opt(w, spec, "initContainers", &volume_names, policy, &mut names);
    let containers = containers(w, spec, "containers", &volume_names, policy, &mut names);
    let total = names.len();
    if total > MAX_CONTAINERS {
        w.problem(
            spec.at(),
            format!(
                "spec: the pod has {total} containers; slip runs at most {MAX_CONTAINERS}, init containers included"
            ),
            None,
        );
    }
    Some(Manifest { containers, init_containers, volumes })
}

fn header(w: &mut Walker, root: Map<'_, '_>) {
    match root.get("apiVersion") {
        None => w.problem(root.at(), "missing apiVersion: a Pod is apiVersion: v1".into(), None),
        Some(node) => {
            if let Some(v) = w.string(node, "apiVersion")
                && v != "v1"
            {
                w.problem(at(node), format!("apiVersion: {v:?} is not \"v1\", the apiVersion of a Pod"), None);
            }
        }
    }
    match root.get("kind") {
        None => w.problem(root.at(), "missing kind: slip runs one kind: Pod".into(), None),
        Some(node) => {
            if let Some(kind) = w.string(node, "kind")
                && kind != "Pod"
            {
                w.problem(
                    at(node),
                    format!("kind: {kind:?} is not supported: slip runs one kind: Pod with Podman kube play"),
                    Some("write the containers as a Pod: kind: Pod, spec.containers".into()),
                );
            }
        }
    }
    if let Some(node) = root.get("metadata") {
        w.mapping(node, "metadata");
    }
}

/// A privileged setting: fine with `app.allow_privileged`, a problem without, a warning when unknown.
fn privileged(w: &mut Walker, policy: &Policy, at: At, what: &str) {
    let hint = Some("set allow_privileged = true in [app] of the server's app file if the app needs it".into());
    match policy.allow_privileged {
        Some(true) => {}
        Some(false) => w.problem(at, format!("{what} is not allowed: app.allow_privileged is false"), hint),
        None => w.warn(at, format!("{what} needs app.allow_privileged = true in the server's app file"), hint),
    }
}

fn containers(
    w: &mut Walker,
    spec: Map<'_, '_>,
    key: &str,
    volumes: &[String],
    policy: &Policy,
    names: &mut BTreeMap<String, At>,
) -> Vec<Container> {
    match spec.get(key) {
        None => {
            w.problem(spec.at(), format!("missing spec.{key}: a Pod needs at least one container"), None);
            Vec::new()
        }
        Some(node) => {
            let Some(list) = w.sequence(node, &format!("spec.{key}")) else { return Vec::new() };
            if list.is_empty() {
                w.problem(at(node), format!("spec.{key} is empty: a Pod needs at least one container"), None);
            }
            container_list(w, list, key, volumes, policy, names)
        }
    }
}

fn containers_opt(
    w: &mut Walker,
    spec: Map<'_, '_>,
    key: &str,
    volumes: &[String],
    policy: &Policy,
    names: &mut BTreeMap<String, At>,
) -> Vec<Container> {
    let Some(node) = spec.get(key) else { return Vec::new() };
    let list = w.sequence(node, &format!("spec.{key}")).unwrap_or_default();
    container_list(w, list, key, volumes, policy, names)
}

fn container_list(
    w: &mut Walker,
    list: &[Node<'_>],
    key: &str,
    volumes: &[String],
    policy: &Policy,
    names: &mut BTreeMap<String, At>,
) -> Vec<Container> {
    list.iter()
        .enumerate()
        .filter_map(|(i, node)| container(w, node, &format!("spec.{key}[{i}]"), volumes, policy, names))
        .collect()
}

fn container(
    w: &mut Walker,
    node: &Node<'_>,
    path: &str,
    volumes: &[String],
    policy: &Policy,
    names: &mut BTreeMap<String, At>,
) -> Option<Container> {
    let c = w.mapping(node, path)?;
    w.unknown_keys(c, path, CONTAINER);
    let name = container_name(w, c, path, names);
    let (image, image_at) = match c.get("image") {
        None => {
            w.problem(c.at(), format!("missing {path}.image"), None);
            (None, (None, None))
        }
        Some(node) => {
            let parsed = w.string(node, &format!("{path}.image")).and_then(|s| match image::parse(s) {
                Ok(image) => Some(image),
                Err(why) => {
                    w.problem(at(node), format!("{path}.image: {s:?} {why}"), None);
                    None
                }
            });
            (parsed, at(node))
        }
    };
    let ports = ports(w, c, path);
    security(w, c, path, policy);
    mounts(w, c, path, volumes);
    let (name, name_at) = name?;
    Some(Container { name, image, ports, at: name_at, image_at })
}

fn container_name(
    w: &mut Walker,
    c: Map<'_, '_>,
    path: &str,
    names: &mut BTreeMap<String, At>,
) -> Option<(String, At)> {
    let Some(node) = c.get("name") else {
        w.problem(c.at(), format!("missing {path}.name"), None);
        return None;
    };
    let name = w.string(node, &format!("{path}.name"))?;
    if !is_dns_label(name) {
        w.problem(
            at(node),
            format!("{path}.name: {name:?} is not a container name"),
            Some("container names are DNS labels: 1-63 lowercase letters, digits and '-'".into()),
        );
        return None;
    }
    if let Some(first) = names.get(name) {
        let line = first.0.map(|l| format!(" (line {l})")).unwrap_or_default();
        w.problem(at(node), format!("{path}.name: {name:?} is already the name of a container{line}"), None);
        return None;
    }
    names.insert(name.to_owned(), at(node));
    Some((name.to_owned(), at(node)))
}

fn ports(w: &mut Walker, c: Map<'_, '_>, path: &str) -> Vec<u16> {
    let Some(node) = c.get("ports") else { return Vec::new() };
    let mut out = Vec::new();
    for (i, entry) in w.sequence(node, &format!("{path}.ports")).unwrap_or_default().iter().enumerate() {
        let path = format!("{path}.ports[{i}]");
        let Some(p) = w.mapping(entry, &path) else { continue };
        w.unknown_keys(p, &path, PORT);
        for key in ["hostPort", "hostIP"] {
            if let Some(node) = p.get(key) {
                w.warn(
                    at(node),
                    format!("{path}.{key} is ignored: slip publishes only route and health ports, on 127.0.0.1"),
                    Some(format!("remove {key}; the server's routes decide what is reachable")),
                );
            }
        }
        let Some(port) = p.get("containerPort") else {
            w.problem(p.at(), format!("missing {path}.containerPort"), None);
            continue;
        };
        let Some(n) = w.integer(port, &format!("{path}.containerPort")) else { continue };
        match u16::try_from(n) {
            Ok(n) if n >= 1 => out.push(n),
            _ => w.problem(at(port), format!("{path}.containerPort: {n} is out of range: use 1 to 65535"), None),
        }
    }
    out
}

fn security(w: &mut Walker, c: Map<'_, '_>, path: &str, policy: &Policy) {
    let Some(node) = c.get("securityContext") else { return };
    let path = format!("{path}.securityContext");
    let Some(sc) = w.mapping(node, &path) else { return };
    if let Some(node) = sc.get("privileged")
        && w.boolean(node, &format!("{path}.privileged")) == Some(true)
    {
        privileged(w, policy, at(node), &format!("{path}.privileged: true"));
    }
    let Some(caps) = sc.get("capabilities") else { return };
    let Some(caps) = w.mapping(caps, &format!("{path}.capabilities")) else { return };
    if let Some(add) = caps.get("add") {
        let list = w.sequence(add, &format!("{path}.capabilities.add")).unwrap_or_default();
        if !list.is_empty() {
            privileged(w, policy, at(add), &format!("{path}.capabilities.add"));
        }
    }
}

/// `volumes` are the names in `spec.volumes`, including those of volumes with problems, so a mount of one is
/// not reported twice.
fn mounts(w: &mut Walker, c: Map<'_, '_>, path: &str, volumes: &[String]) {
    let Some(node) = c.get("volumeMounts") else { return };
    for (i, entry) in w.sequence(node, &format!("{path}.volumeMounts")).unwrap_or_default().iter().enumerate() {
        let path = format!("{path}.volumeMounts[{i}]");
        let Some(m) = w.mapping(entry, &path) else { continue };
        w.unknown_keys(m, &path, MOUNT);
        match m.get("name") {
            None => w.problem(m.at(), format!("missing {path}.name"), None),
            Some(node) => {
                if let Some(name) = w.string(node, &format!("{path}.name"))
                    && !volumes.iter().any(|v| v == name)
                {
                    let known: Vec<&str> = volumes.iter().map(String::as_str).collect();
                    let hint = if known.is_empty() {
                        "add it to spec.volumes".to_owned()
                    } else {
                        format!("spec.volumes has: {}", known.join(", "))
                    };
                    w.problem(at(node), format!("{path}.name: {name:?} is not in spec.volumes"), Some(hint));
                }
            }
        }
        match m.get("mountPath") {
            None => w.problem(m.at(), format!("missing {path}.mountPath"), None),
            Some(node) => {
                if let Some(p) = w.string(node, &format!("{path}.mountPath"))
                    && let Err(why) = check_absolute(p)
                {
                    w.problem(at(node), format!("{path}.mountPath: {p:?} {why}"), None);
                }
            }
        }
    }
}

/// The valid volumes, and the names of all of them.
fn volumes(w: &mut Walker, spec: Map<'_, '_>, policy: &Policy) -> (Vec<Volume>, Vec<String>) {
    let Some(node) = spec.get("volumes") else { return (Vec::new(), Vec::new()) };
    let mut out: Vec<Volume> = Vec::new();
    let mut names: Vec<String> = Vec::new();
    for (i, entry) in w.sequence(node, "spec.volumes").unwrap_or_default().iter().enumerate() {
        let path = format!("spec.volumes[{i}]");
        let Some(v) = w.mapping(entry, &path) else { continue };
        let name = match v.get("name") {
            None => {
                w.problem(v.at(), format!("missing {path}.name"), None);
                None
            }
            Some(node) => w.string(node, &format!("{path}.name")).and_then(|name| {
                if !is_dns_label(name) {
                    w.problem(at(node), format!("{path}.name: {name:?} is not a volume name (a DNS label)"), None);
                    None
                } else if names.iter().any(|n| n == name) {
                    w.problem(at(node), format!("{path}.name: {name:?} is already the name of a volume"), None);
                    None
                } else {
                    Some(name.to_owned())
                }
            }),
        };
        names.extend(name.clone());
        let source = volume_source(w, v, &path, policy);
        if let (Some(name), Some(source)) = (name, source) {
            out.push(Volume { name, source });
        }
    }
    (out, names)
}

fn volume_source(w: &mut Walker, v: Map<'_, '_>, path: &str, policy: &Policy) -> Option<VolumeSource> {
    let sources: Vec<(String, At)> = v.keys().filter(|(k, _)| k != "name").collect();
    let (kind, kind_at) = match sources.as_slice() {
        [] => {
            w.problem(v.at(), format!("{path} has no source: use emptyDir, hostPath or persistentVolumeClaim"), None);
            return None;
        }
        [one] => one.clone(),
        [_, second, ..] => {
            w.problem(second.1, format!("{path} has more than one source: keep exactly one"), None);
            return None;
        }
    };
    let node = v.get(&kind);
    match kind.as_str() {
        "emptyDir" => Some(VolumeSource::EmptyDir),
        "hostPath" => host_path(w, node, &format!("{path}.hostPath"), kind_at, policy).map(VolumeSource::HostPath),
        "persistentVolumeClaim" => {
            claim(w, node, &format!("{path}.persistentVolumeClaim"), kind_at).map(VolumeSource::Claim)
        }
        k if NOT_IN_V1.contains(&k) => {
            w.problem(
                kind_at,
                format!("{path}.{k}: {k} volumes are not supported in this version"),
                Some("bake the files into the image, or mount a hostPath that the server's [[volumes]] lists".into()),
            );
            None
        }
        k => {
            w.problem(
                kind_at,
                format!("{path}.{k}: slip does not run {k} volumes: use emptyDir, hostPath or persistentVolumeClaim"),
                None,
            );
            None
        }
    }
}

fn host_path(w: &mut Walker, node: Option<&Node<'_>>, path: &str, at_kind: At, policy: &Policy) -> Option<PathBuf> {
    let Some(node) = node else {
        w.problem(at_kind, format!("missing {path}.path"), None);
        return None;
    };
    let hp = w.mapping(node, path)?;
    let Some(p) = hp.get("path") else {
        w.problem(hp.at(), format!("missing {path}.path"), None);
        return None;
    };
    let written = w.string(p, &format!("{path}.path"))?;
    let host = match check_absolute(written) {
        Ok(host) => host,
        Err(why) => {
            w.problem(at(p), format!("{path}.path: {written:?} {why}"), None);
            return None;
        }
    };
    let hint = Some("add it to the app's [[volumes]] as host_path, or use a persistentVolumeClaim".into());
    match &policy.host_paths {
        Some(allowed) if allowed.contains(&host) => {}
        Some(_) => w.problem(
            at(p),
            format!("{path}.path: {written:?} is not a [[volumes]].host_path of the server's app file"),
            hint,
        ),
        None => w.warn(
            at(p),
            format!("{path}.path: {written:?} must equal a [[volumes]].host_path in the server's app file"),
            hint,
        ),
    }
    Some(host)
}

fn claim(w: &mut Walker, node: Option<&Node<'_>>, path: &str, at_kind: At) -> Option<String> {
    let Some(node) = node else {
        w.problem(at_kind, format!("missing {path}.claimName"), None);
        return None;
    };
    let pvc = w.mapping(node, path)?;
    let Some(c) = pvc.get("claimName") else {
        w.problem(pvc.at(), format!("missing {path}.claimName"), None);
        return None;
    };
    let name = w.string(c, &format!("{path}.claimName"))?;
    if !is_dns_label(name) {
        w.problem(
            at(c),
            format!("{path}.claimName: {name:?} is not a claim name"),
            Some("slip names the volume slip-<app>-<claim>: use lowercase letters, digits and '-'".into()),
        );
        return None;
    }
    Some(name.to_owned())
}
