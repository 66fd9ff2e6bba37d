//! Pod manifests, data-driven: YAML in, problems and warnings (or the manifest) out, compared with
//! `expect!` snapshots (`UPDATE_EXPECT=1 cargo test -p slip-core` rewrites them).

use std::path::{Path, PathBuf};

use expect_test::{Expect, expect};

use super::*;
use crate::config::UnknownKeys;
use crate::repo_config;

fn file(text: &str) -> SourceFile {
    SourceFile { path: "slip/pod.yaml".into(), text: text.to_owned() }
}

fn render(problems: &[Problem], warnings: &[Problem]) -> String {
    let mut out: String = problems.iter().map(|p| format!("{p}\n")).collect();
    out.extend(warnings.iter().map(|w| format!("⚠ {w}\n")));
    out
}

/// Problems and warnings of `yaml` read offline (no server config at hand).
#[track_caller]
fn check(yaml: &str, expect: Expect) {
    check_with(yaml, &Policy::default(), expect);
}

#[track_caller]
fn check_with(yaml: &str, policy: &Policy, expect: Expect) {
    let r = read(&file(yaml), policy);
    expect.assert_eq(&render(&r.problems, &r.warnings));
}

#[track_caller]
fn manifest(yaml: &str) -> Manifest {
    let r = read(&file(yaml), &Policy::default());
    assert!(r.is_valid(), "expected a valid manifest, got:\n{}", render(&r.problems, &r.warnings));
    r.manifest.unwrap()
}

/// The manifest against a repo config, as `slip validate` checks them.
#[track_caller]
fn check_against_repo(repo: &str, yaml: &str, strictness: Strictness, expect: Expect) {
    let repo =
        repo_config::read(&SourceFile { path: "slip/slip.toml".into(), text: repo.into() }, UnknownKeys::Problem);
    assert!(repo.is_valid(), "{}", render(&repo.problems, &[]));
    let m = manifest(yaml);
    let found = check_against(&repo, &m, Path::new("slip/pod.yaml"), strictness);
    expect.assert_eq(&render(&found.problems, &found.warnings));
}

/// The README's pod app (`statstream`): an API, the Dagster webserver, and a database migration first.
const STATSTREAM: &str = r#"apiVersion: v1
kind: Pod
metadata:
  name: statstream
spec:
  initContainers:
    - name: migrate
      image: ghcr.io/you/statstream-api:${tag}
      command: ["bin/migrate"]
  containers:
    - name: api
      image: ghcr.io/you/statstream-api:${tag}
      ports:
        - containerPort: 8080
      volumeMounts:
        - name: dagster-home
          mountPath: /opt/dagster/dagster_home
    - name: dagster-webserver
      image: ghcr.io/you/statstream-dagster:${tag}
      ports:
        - containerPort: 3000
      volumeMounts:
        - name: dagster-home
          mountPath: /opt/dagster/dagster_home
    - name: redis
      image: docker.io/library/redis:7.2
  volumes:
    - name: dagster-home
      persistentVolumeClaim:
        claimName: dagster-home
    - name: scratch
      emptyDir: {}
"#;

#[test]
fn a_readme_style_pod_is_read_with_its_containers_ports_and_volumes() {
    let m = manifest(STATSTREAM);
    let names: Vec<&str> = m.containers.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["api", "dagster-webserver", "redis"]);
    assert_eq!(m.init_containers[0].name, "migrate");
    assert_eq!(m.container("api").unwrap().ports, [8080]);
    assert_eq!(m.container("dagster-webserver").unwrap().ports, [3000]);
    assert!(m.container("redis").unwrap().ports.is_empty());
    assert_eq!(m.container("api").unwrap().image.as_ref().unwrap().reference, Reference::DeployTag);
    assert!(m.container("migrate").is_none());
    assert!(m.init_container("migrate").is_some());
    assert_eq!(m.claims().collect::<Vec<_>>(), ["dagster-home"]);
    assert_eq!(m.volumes[1].source, VolumeSource::EmptyDir);
    assert_eq!(m.container("api").unwrap().at, (Some(11), Some(13)));
}

#[test]
fn only_one_v1_pod_document_is_run() {
    check(
        "apiVersion: apps/v1\nkind: Deployment\nspec:\n  containers:\n    - name: web\n      image: nginx:1\n",
        expect![[r#"
            slip/pod.yaml:1:13: apiVersion: "apps/v1" is not "v1", the apiVersion of a Pod
            slip/pod.yaml:2:7: kind: "Deployment" is not supported: slip runs one kind: Pod with Podman kube play
              hint: write the containers as a Pod: kind: Pod, spec.containers
        "#]],
    );
    check(
        "spec:\n  containers:\n    - name: web\n      image: nginx:1\n",
        expect![[r#"
            slip/pod.yaml:1:1: missing apiVersion: a Pod is apiVersion: v1
            slip/pod.yaml:1:1: missing kind: slip runs one kind: Pod
        "#]],
    );
    check(
        "apiVersion: v1\nkind: Pod\nspec:\n  containers: []\n---\napiVersion: v1\nkind: Pod\n",
        expect![[r#"
            slip/pod.yaml:6:1: the manifest holds 2 YAML documents; slip runs exactly one kind: Pod
              hint: put every container in the one Pod's spec.containers
        "#]],
    );
    check(
        "# nothing here\n",
        expect![[r#"
            slip/pod.yaml: the manifest is empty: it needs one kind: Pod document
        "#]],
    );
    check(
        "- a\n- b\n",
        expect![[r#"
            slip/pod.yaml:1:1: the manifest: expected a mapping, found a list
        "#]],
    );
}

#[test]
fn yaml_syntax_errors_point_at_the_line() {
    check(
        "apiVersion: v1\nkind: Pod\nspec:\n  containers:\n    - name: web\n     image: [nginx\n",
        expect![[r#"
            slip/pod.yaml:6:6: invalid YAML: while parsing a block collection, did not find expected '-' indicator
        "#]],
    );
    check(
        "apiVersion: v1\nkind: Pod\nkind: Pod\n",
        expect![[r#"
            slip/pod.yaml:3:1: invalid YAML: duplicated key in mapping
        "#]],
    );
}

#[test]
fn a_pod_needs_containers_with_unique_dns_label_names_and_images() {
    check(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: x}\n",
        expect![[r#"
            slip/pod.yaml:1:1: missing spec: a Pod needs spec.containers
        "#]],
    );
    check(
        "apiVersion: v1\nkind: Pod\nspec:\n  containers: []\n",
        expect![[r#"
            slip/pod.yaml:4:15: spec.containers is empty: a Pod needs at least one container
        "#]],
    );
    check(
        r#"apiVersion: v1
kind: Pod
spec:
  initContainers:
    - name: web
      image: busybox:1
  containers:
    - name: web
      image: nginx:1
    - name: Web_2
      image: nginx:1
    - image: nginx:1
    - name: cache
    - name: 42
      image: nginx:1
    - just a string
"#,
        expect![[r#"
            slip/pod.yaml:8:13: spec.containers[0].name: "web" is already the name of a container (line 5)
            slip/pod.yaml:10:13: spec.containers[1].name: "Web_2" is not a container name
              hint: container names are DNS labels: 1-63 lowercase letters, digits and '-'
            slip/pod.yaml:12:7: missing spec.containers[2].name
            slip/pod.yaml:13:7: missing spec.containers[3].image
            slip/pod.yaml:14:13: spec.containers[4].name: expected a string, found an integer
            slip/pod.yaml:16:7: spec.containers[5]: expected a mapping, found a string
        "#]],
    );
}

#[test]
fn at_most_sixteen_containers_init_containers_included() {
    let mut yaml = "apiVersion: v1\nkind: Pod\nspec:\n  initContainers:\n    - name: init\n      image: busybox:1\n  containers:\n".to_owned();
    for i in 0..16 {
        yaml.push_str(&format!("    - name: c{i}\n      image: nginx:1\n"));
    }
    check(
        &yaml,
        expect![[r#"
            slip/pod.yaml:4:3: spec: the pod has 17 containers; slip runs at most 16, init containers included
        "#]],
    );
}

#[test]
fn images_may_use_only_the_tag_placeholder() {
    check(
        r#"apiVersion: v1
kind: Pod
spec:
  containers:
    - name: a
      image: ghcr.io/you/app:${tag}
    - name: b
      image: ghcr.io/you/app:${TAG}
    - name: c
      image: ghcr.io/you/${tag}
    - name: d
      image: Ghcr.io/You/App:1
    - name: e
      image: 8080
"#,
        expect![[r#"
            slip/pod.yaml:8:14: spec.containers[1].image: "ghcr.io/you/app:${TAG}" has a placeholder other than ${tag}: manifests are not interpolated, and ${tag} is the only one
            slip/pod.yaml:10:14: spec.containers[2].image: "ghcr.io/you/${tag}" ${tag} may only stand in the tag, e.g. ghcr.io/you/app:${tag}
            slip/pod.yaml:12:14: spec.containers[3].image: "Ghcr.io/You/App:1" is not an image reference: path segments use lowercase letters, digits, '.', '_' and '-'
            slip/pod.yaml:14:14: spec.containers[4].image: expected a string, found an integer
        "#]],
    );
}

#[test]
fn ports_are_container_ports_and_host_ports_are_dropped() {
    check(
        r#"apiVersion: v1
kind: Pod
spec:
  containers:
    - name: web
      image: nginx:1
      ports:
        - containerPort: 8080
          hostPort: 80
          hostIP: 0.0.0.0
        - containerPort: "9090"
        - containerPort: 70000
        - name: metrics
        - containerPort: 9100
          protocl: TCP
"#,
        expect![[r#"
            slip/pod.yaml:11:26: spec.containers[0].ports[1].containerPort: expected an integer, found a string
              hint: remove the quotes: 9090
            slip/pod.yaml:12:26: spec.containers[0].ports[2].containerPort: 70000 is out of range: use 1 to 65535
            slip/pod.yaml:13:11: missing spec.containers[0].ports[3].containerPort
            ⚠ slip/pod.yaml:9:21: spec.containers[0].ports[0].hostPort is ignored: slip publishes only route and health ports, on 127.0.0.1
              hint: remove hostPort; the server's routes decide what is reachable
            ⚠ slip/pod.yaml:10:19: spec.containers[0].ports[0].hostIP is ignored: slip publishes only route and health ports, on 127.0.0.1
              hint: remove hostIP; the server's routes decide what is reachable
            ⚠ slip/pod.yaml:15:11: unknown key "protocl" in spec.containers[0].ports[4] (did you mean "protocol"?): Podman ignores it
        "#]],
    );
}

const PRIVILEGED: &str = r#"apiVersion: v1
kind: Pod
spec:
  hostNetwork: true
  hostPID: false
  hostIPC: true
  containers:
    - name: web
      image: nginx:1
      securityContext:
        privileged: true
        capabilities:
          add: [NET_ADMIN]
          drop: [ALL]
"#;

#[test]
fn privileged_settings_need_allow_privileged() {
    check_with(
        PRIVILEGED,
        &Policy { allow_privileged: Some(false), host_paths: None },
        expect![[r#"
            slip/pod.yaml:4:16: spec.hostNetwork: true is not allowed: app.allow_privileged is false
              hint: set allow_privileged = true in [app] of the server's app file if the app needs it
            slip/pod.yaml:6:12: spec.hostIPC: true is not allowed: app.allow_privileged is false
              hint: set allow_privileged = true in [app] of the server's app file if the app needs it
            slip/pod.yaml:11:21: spec.containers[0].securityContext.privileged: true is not allowed: app.allow_privileged is false
              hint: set allow_privileged = true in [app] of the server's app file if the app needs it
            slip/pod.yaml:13:16: spec.containers[0].securityContext.capabilities.add is not allowed: app.allow_privileged is false
              hint: set allow_privileged = true in [app] of the server's app file if the app needs it
        "#]],
    );
    check_with(PRIVILEGED, &Policy { allow_privileged: Some(true), host_paths: None }, expect![""]);
    // Offline, the server's answer is unknown: warnings that name the setting.
    check(
        PRIVILEGED,
        expect![[r#"
            ⚠ slip/pod.yaml:4:16: spec.hostNetwork: true needs app.allow_privileged = true in the server's app file
              hint: set allow_privileged = true in [app] of the server's app file if the app needs it
            ⚠ slip/pod.yaml:6:12: spec.hostIPC: true needs app.allow_privileged = true in the server's app file
              hint: set allow_privileged = true in [app] of the server's app file if the app needs it
            ⚠ slip/pod.yaml:11:21: spec.containers[0].securityContext.privileged: true needs app.allow_privileged = true in the server's app file
              hint: set allow_privileged = true in [app] of the server's app file if the app needs it
            ⚠ slip/pod.yaml:13:16: spec.containers[0].securityContext.capabilities.add needs app.allow_privileged = true in the server's app file
              hint: set allow_privileged = true in [app] of the server's app file if the app needs it
        "#]],
    );
}

const VOLUMES: &str = r#"apiVersion: v1
kind: Pod
spec:
  containers:
    - name: web
      image: nginx:1
      volumeMounts:
        - name: data
          mountPath: /data
        - name: missing
          mountPath: relative/path
        - mountPath: /x
  volumes:
    - name: data
      hostPath:
        path: /var/lib/slip/volumes/web/data
    - name: config
      configMap:
        name: web-config
    - name: creds
      secret:
        secretName: web
    - name: nfs
      nfs: {server: x, path: /}
    - name: claim
      persistentVolumeClaim:
        claimName: Bad_Claim
    - name: two
      emptyDir: {}
      hostPath: {path: /tmp}
    - name: none
    - name: etc
      hostPath:
        path: /srv/../etc
"#;

#[test]
fn volumes_are_empty_dirs_claims_or_the_servers_host_paths() {
    let policy =
        Policy { allow_privileged: None, host_paths: Some(vec![PathBuf::from("/var/lib/slip/volumes/other")]) };
    check_with(
        VOLUMES,
        &policy,
        expect![[r#"
            slip/pod.yaml:10:17: spec.containers[0].volumeMounts[1].name: "missing" is not in spec.volumes
              hint: spec.volumes has: data, config, creds, nfs, claim, two, none, etc
            slip/pod.yaml:11:22: spec.containers[0].volumeMounts[1].mountPath: "relative/path" is not an absolute path
            slip/pod.yaml:12:11: missing spec.containers[0].volumeMounts[2].name
            slip/pod.yaml:16:15: spec.volumes[0].hostPath.path: "/var/lib/slip/volumes/web/data" is not a [[volumes]].host_path of the server's app file
              hint: add it to the app's [[volumes]] as host_path, or use a persistentVolumeClaim
            slip/pod.yaml:18:7: spec.volumes[1].configMap: configMap volumes are not supported in this version
              hint: bake the files into the image, or mount a hostPath that the server's [[volumes]] lists
            slip/pod.yaml:21:7: spec.volumes[2].secret: secret volumes are not supported in this version
              hint: bake the files into the image, or mount a hostPath that the server's [[volumes]] lists
            slip/pod.yaml:24:7: spec.volumes[3].nfs: slip does not run nfs volumes: use emptyDir, hostPath or persistentVolumeClaim
            slip/pod.yaml:27:20: spec.volumes[4].persistentVolumeClaim.claimName: "Bad_Claim" is not a claim name
              hint: slip names the volume slip-<app>-<claim>: use lowercase letters, digits and '-'
            slip/pod.yaml:30:7: spec.volumes[5] has more than one source: keep exactly one
            slip/pod.yaml:31:7: spec.volumes[6] has no source: use emptyDir, hostPath or persistentVolumeClaim
            slip/pod.yaml:34:15: spec.volumes[7].hostPath.path: "/srv/../etc" contains a ".." segment; write the path without it
        "#]],
    );
}

#[test]
fn host_paths_are_warnings_offline_and_fine_when_listed() {
    let yaml = "apiVersion: v1\nkind: Pod\nspec:\n  containers:\n    - name: web\n      image: nginx:1\n  volumes:\n    - name: data\n      hostPath:\n        path: /var/lib/slip/volumes/web/data/\n";
    check(
        yaml,
        expect![[r#"
            ⚠ slip/pod.yaml:10:15: spec.volumes[0].hostPath.path: "/var/lib/slip/volumes/web/data/" must equal a [[volumes]].host_path in the server's app file
              hint: add it to the app's [[volumes]] as host_path, or use a persistentVolumeClaim
        "#]],
    );
    let listed = Policy { allow_privileged: None, host_paths: Some(vec!["/var/lib/slip/volumes/web/data".into()]) };
    check_with(yaml, &listed, expect![""]);
}

#[test]
fn unknown_keys_in_the_parts_slip_reads_are_warnings() {
    check(
        r#"apiVersion: v1
kind: Pod
metdata: {}
spec:
  hostnetwork: true
  restartPolicy: Always
  containers:
    - name: web
      image: nginx:1
      imagePullPolicy: Always
      volumeMount: []
"#,
        expect![[r#"
            ⚠ slip/pod.yaml:3:1: unknown key "metdata" at the top level (did you mean "metadata"?): Podman ignores it
            ⚠ slip/pod.yaml:5:3: unknown key "hostnetwork" in spec (did you mean "hostNetwork"?): Podman ignores it
            ⚠ slip/pod.yaml:11:7: unknown key "volumeMount" in spec.containers[0] (did you mean "volumeMounts"?): Podman ignores it
        "#]],
    );
}

#[test]
fn oversized_manifests_are_refused() {
    let big = format!("# {}\n", "x".repeat(MAX_SIZE));
    check(
        &big,
        expect![[r#"
            slip/pod.yaml: the manifest is 262147 bytes; slip reads at most 262144 (256 KiB)
        "#]],
    );
}

/// Like [`check`], but on a thread with a small stack: deep YAML must be refused without recursing per level
/// (saphyr's loader does, and aborted `slip validate` at a few thousand levels in a debug build).
#[track_caller]
fn check_deep(yaml: String, expect: Expect) {
    let reader = std::thread::Builder::new().stack_size(256 * 1024);
    let rendered = reader
        .spawn(move || {
            let r = read(&file(&yaml), &Policy::default());
            render(&r.problems, &r.warnings)
        })
        .unwrap()
        .join()
        .unwrap();
    expect.assert_eq(&rendered);
}

/// A valid Pod whose `metadata` is `metadata` (slip checks only that it is a mapping).
fn pod_with_metadata(metadata: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {metadata}\nspec:\n  containers:\n    - name: web\n      image: nginx:1\n"
    )
}

#[test]
fn deep_nesting_is_a_problem_not_a_stack_overflow() {
    // Each is close to MAX_SIZE, like the 240 KB manifest that aborted a release build.
    let block_sequence = format!("{}1\n", "- ".repeat(120_000));
    check_deep(
        block_sequence,
        expect![[r#"
            slip/pod.yaml:1:129: collections nested more than 64 levels deep; slip reads at most 64 levels
        "#]],
    );
    let block_mapping: String = (0..500).map(|level| format!("{}a:\n", "  ".repeat(level))).collect();
    check_deep(
        block_mapping,
        expect![[r#"
            slip/pod.yaml:65:129: collections nested more than 64 levels deep; slip reads at most 64 levels
        "#]],
    );
    let flow_sequence = format!("{}{}\n", "[".repeat(100), "]".repeat(100));
    check_deep(
        flow_sequence,
        expect![[r#"
            slip/pod.yaml:1:65: collections nested more than 64 levels deep; slip reads at most 64 levels
        "#]],
    );
    // Before the parser reports a `[`, the scanner reads ahead for a `:` that would make the list a key, and
    // stops at its own limit of 255 flow levels, so this is refused before the depth check sees it.
    let flow_sequence_at_max_size = format!("{}{}\n", "[".repeat(120_000), "]".repeat(120_000));
    check_deep(
        flow_sequence_at_max_size,
        expect![[r#"
            slip/pod.yaml:1:256: invalid YAML: recursion limit exceeded
        "#]],
    );
    let flow_mapping = pod_with_metadata(&format!("{}1{}", "{a: ".repeat(50_000), "}".repeat(50_000)));
    check_deep(
        flow_mapping,
        expect![[r#"
            slip/pod.yaml:3:263: collections nested more than 64 levels deep; slip reads at most 64 levels
        "#]],
    );
}

#[test]
fn aliases_count_at_the_depth_they_expand_to() {
    // Each line nests the one before one level deeper; saphyr copies the anchored node for every alias.
    let chain: String = std::iter::once("- &a1 [0]\n".to_owned())
        .chain((2..=1000).map(|i| format!("- &a{i} [*a{}]\n", i - 1)))
        .collect();
    check_deep(
        chain,
        expect![[r#"
            slip/pod.yaml:64:9: this alias expands to collections nested more than 64 levels deep; slip reads at most 64 levels
        "#]],
    );
}

#[test]
fn aliases_that_multiply_past_the_node_limit_are_a_problem_not_a_memory_bomb() {
    // The "billion laughs": nine levels of nine aliases each expand to 9^9 nodes from a few hundred bytes.
    let laughs: String = std::iter::once("a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n".to_owned())
        .chain((1..=9).map(|i| {
            let p = i - 1;
            format!("a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n")
        }))
        .collect();
    check_deep(
        laughs,
        expect![[r#"
            slip/pod.yaml:6:10: this alias makes the document more than 100000 nodes once expanded; slip reads at most 100000 (aliases to aliases multiply)
        "#]],
    );
    // A few aliases of a small anchor are fine.
    let reused = "a: &a [1, 2, 3]\nb: [*a, *a, *a]\n";
    check_deep(
        reused.to_owned(),
        expect![[r#"
        slip/pod.yaml:1:1: missing apiVersion: a Pod is apiVersion: v1
        slip/pod.yaml:1:1: missing kind: slip runs one kind: Pod
        slip/pod.yaml:1:1: missing spec: a Pod needs spec.containers
        ⚠ slip/pod.yaml:1:1: unknown key "a" at the top level: Podman ignores it
        ⚠ slip/pod.yaml:2:1: unknown key "b" at the top level: Podman ignores it
    "#]],
    );
}

#[test]
fn nesting_up_to_the_depth_limit_is_read() {
    // The root mapping is level 1 and metadata level 2, so MAX_DEPTH - 1 flow mappings reach the limit.
    let deepest = format!("{}1{}", "{a: ".repeat(MAX_DEPTH - 1), "}".repeat(MAX_DEPTH - 1));
    manifest(&pod_with_metadata(&deepest));
    let too_deep = format!("{}1{}", "{a: ".repeat(MAX_DEPTH), "}".repeat(MAX_DEPTH));
    check(
        &pod_with_metadata(&too_deep),
        expect![[r#"
            slip/pod.yaml:3:263: collections nested more than 64 levels deep; slip reads at most 64 levels
        "#]],
    );
    // A list nested MAX_DEPTH deep loads (and is then no Pod); one level more does not load.
    check(
        &format!("{}1\n", "- ".repeat(MAX_DEPTH)),
        expect![[r#"
            slip/pod.yaml:1:1: the manifest: expected a mapping, found a list
        "#]],
    );
    check(
        &format!("{}1\n", "- ".repeat(MAX_DEPTH + 1)),
        expect![[r#"
            slip/pod.yaml:1:129: collections nested more than 64 levels deep; slip reads at most 64 levels
        "#]],
    );
}

const REPO_POD: &str = r#"[app]
kind = "pod"
manifest = "/slip/pod.yaml"

[routing]
container = "api"

[health]
path = "/health"
container = "api"

[health.containers.dagster-webserver]
path = "/server_info"
"#;

#[test]
fn repo_containers_that_exist_pass() {
    check_against_repo(REPO_POD, STATSTREAM, Strictness::Normal, expect![""]);
}

#[test]
fn repo_container_names_must_be_main_containers_of_the_manifest() {
    check_against_repo(
        r#"[app]
kind = "pod"
[routing]
container = "apl"
[health]
container = "migrate"
[health.containers.worker]
stable_for = "5s"
"#,
        STATSTREAM,
        Strictness::Normal,
        expect![[r#"
            slip/slip.toml:4:13: routing.container: "apl" is not a container in slip/pod.yaml (did you mean "api"?)
              hint: its containers are api, dagster-webserver, redis
            slip/slip.toml:6:13: health.container: "migrate" is an init container in slip/pod.yaml: init containers must exit, so they are not routed or probed
            slip/slip.toml:7:20: health.containers.worker: "worker" is not a container in slip/pod.yaml
              hint: its containers are api, dagster-webserver, redis
        "#]],
    );
}

#[test]
fn route_ports_come_from_the_repo_or_the_only_container_port() {
    let two_ports = "apiVersion: v1\nkind: Pod\nspec:\n  containers:\n    - name: web\n      image: nginx:1\n      ports:\n        - containerPort: 80\n        - containerPort: 9100\n";
    check_against_repo(
        "[app]\nkind = \"pod\"\n",
        two_ports,
        Strictness::Normal,
        expect![[r#"
            ⚠ slip/pod.yaml:5:13: container "web" is the route target and declares 2 containerPorts (80, 9100), and routing.port is not set: a routed deploy fails with no_port unless the server sets routing.port
              hint: set routing.port in the repo config, or declare exactly one containerPort
        "#]],
    );
    check_against_repo("[app]\nkind = \"pod\"\n[routing]\nport = 80\n", two_ports, Strictness::Normal, expect![""]);
    check_against_repo(
        "[app]\nkind = \"pod\"\n[routing]\nport = 8080\n",
        two_ports,
        Strictness::Normal,
        expect![[r#"
            ⚠ slip/slip.toml:4:8: routing.port: 8080 is not a containerPort of container "web" in slip/pod.yaml (80, 9100)
        "#]],
    );
    check_against_repo(
        "[app]\nkind = \"pod\"\n[routing]\nport = 8080\n",
        STATSTREAM,
        Strictness::Normal,
        expect![[r#"
            ⚠ slip/slip.toml:4:8: slip/pod.yaml has no container named "web", the default route target
              hint: set routing.container to the container that serves HTTP
        "#]],
    );
}

#[test]
fn a_manifest_for_a_web_app_is_unused() {
    check_against_repo(
        "[app]\nkind = \"web\"\n",
        "apiVersion: v1\nkind: Pod\nspec:\n  containers:\n    - name: web\n      image: nginx:1\n      ports: [{containerPort: 80}]\n",
        Strictness::Normal,
        expect![[r#"
            ⚠ slip/slip.toml:2:8: app.kind is "web", so slip/pod.yaml is not used: only pods have a manifest
        "#]],
    );
}

#[test]
fn strict_mode_warns_about_latest_and_untagged_sidecars() {
    let yaml = r#"apiVersion: v1
kind: Pod
spec:
  initContainers:
    - name: wait
      image: busybox
  containers:
    - name: web
      image: ghcr.io/you/web
      ports: [{containerPort: 8080}]
    - name: cache
      image: redis:latest
    - name: proxy
      image: docker.io/library/nginx:1.27
"#;
    check_against_repo("[app]\nkind = \"pod\"\n", yaml, Strictness::Normal, expect![""]);
    check_against_repo(
        "[app]\nkind = \"pod\"\n",
        yaml,
        Strictness::Strict,
        expect![[r#"
            ⚠ slip/pod.yaml:6:14: container "wait": image "busybox" has no tag, so it runs whatever :latest is when the pod starts
              hint: pin a version or a digest, e.g. docker.io/library/busybox:<version>
            ⚠ slip/pod.yaml:12:14: container "cache": image "redis:latest" uses the mutable :latest tag
              hint: pin a version or a digest, e.g. docker.io/library/redis:<version>
        "#]],
    );
}

#[test]
fn wrong_shapes_are_reported_where_they_are() {
    check(
        r#"apiVersion: v1
kind: Pod
metadata: statstream
spec:
  hostPID: "true"
  containers:
    - name: web
      image: nginx:1
      ports: 8080
      securityContext: privileged
      volumeMounts:
        - name: data
  volumes:
    - name: data
      hostPath: {}
    - name: claim
      persistentVolumeClaim:
    - name: Data2
      emptyDir: {}
"#,
        expect![[r#"
            slip/pod.yaml:3:11: metadata: expected a mapping, found a string
            slip/pod.yaml:5:12: spec.hostPID: expected true or false, found a string
              hint: remove the quotes: true
            slip/pod.yaml:9:14: spec.containers[0].ports: expected a list, found an integer
            slip/pod.yaml:10:24: spec.containers[0].securityContext: expected a mapping, found a string
            slip/pod.yaml:12:11: missing spec.containers[0].volumeMounts[0].mountPath
            slip/pod.yaml:15:17: missing spec.volumes[0].hostPath.path
            slip/pod.yaml:17:7: missing spec.volumes[1].persistentVolumeClaim.claimName
            slip/pod.yaml:18:13: spec.volumes[2].name: "Data2" is not a volume name (a DNS label)
        "#]],
    );
}
