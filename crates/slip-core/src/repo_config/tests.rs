//! The repo config, data-driven: a file in, its problems and warnings (or what it says) out, compared with
//! `expect!` snapshots (`UPDATE_EXPECT=1 cargo test -p slip-core` rewrites them).

use std::time::Duration;

use expect_test::{Expect, expect};

use super::*;

fn file(text: &str) -> SourceFile {
    SourceFile { path: "slip/slip.toml".into(), text: text.to_owned() }
}

fn render(read: &Read) -> String {
    let mut out: String = read.problems.iter().map(|p| format!("{p}\n")).collect();
    out.extend(read.warnings.iter().map(|w| format!("⚠ {w}\n")));
    out
}

/// Problems and warnings of `text` read as `slip validate` reads it.
#[track_caller]
fn check(text: &str, expect: Expect) {
    expect.assert_eq(&render(&read(&file(text), UnknownKeys::Problem)));
}

#[track_caller]
fn valid(text: &str) -> RepoConfig {
    let r = read(&file(text), UnknownKeys::Problem);
    assert!(r.is_valid(), "expected a valid repo config, got:\n{}", render(&r));
    r.config
}

const FULL: &str = r#"
[app]
name = "statstream"
kind = "pod"
manifest = "/slip/pod.yaml"

[routing]
port = 8080
container = "api"

[health]
path = "/health"
port = 8081
container = "api"
interval = "3s"
timeout = "4s"
retries = 6
start_period = "20s"
stable_for = "7s"

[health.containers.worker]
stable_for = "10s"

[defaults.resources]
memory = "512m"
cpus = "1.5"

[preview]
enabled = true
ttl = "3d"
max = 4

[preview.resources]
memory = "256m"
cpus = 0.5

[preview.hooks]
migrate = "bin/migrate"
seed = "bin/seed --demo"
timeout = "2m"

[preview.database]
branch_from = "main"
"#;

#[test]
fn every_key_of_spec_section_5_is_read() {
    let r = read(&file(FULL), UnknownKeys::Problem);
    expect![[r#"
        ⚠ slip/slip.toml:42:1: [preview.database] is read and ignored: preview databases are not in this version
    "#]]
    .assert_eq(&render(&r));
    let c = r.config;
    assert_eq!(c.name.unwrap().as_str(), "statstream");
    assert_eq!(c.kind, Some(Kind::Pod));
    assert_eq!(c.manifest.as_deref(), Some("/slip/pod.yaml"));
    assert_eq!((c.port, c.container.as_deref()), (Some(8080), Some("api")));
    assert_eq!(c.health.path.as_deref(), Some("/health"));
    assert_eq!(c.health.port, Some(8081));
    assert_eq!(c.health.container.as_deref(), Some("api"));
    assert_eq!(c.health.interval, Some(Duration::from_secs(3)));
    assert_eq!(c.health.timeout, Some(Duration::from_secs(4)));
    assert_eq!(c.health.retries, Some(6));
    assert_eq!(c.health.start_period, Some(Duration::from_secs(20)));
    assert_eq!(c.health.stable_for, Some(Duration::from_secs(7)));
    assert_eq!(c.health_containers["worker"].stable_for, Some(Duration::from_secs(10)));
    assert_eq!(c.resources.memory, Some(512 * 1024 * 1024));
    assert_eq!(c.resources.nano_cpus, Some(1_500_000_000));
    assert!(c.preview.enabled);
    assert_eq!(c.preview.ttl, Some(Duration::from_secs(3 * 86_400)));
    assert_eq!(c.preview.max, Some(4));
    assert_eq!(c.preview.resources.memory, Some(256 * 1024 * 1024));
    assert_eq!(c.preview.resources.nano_cpus, Some(500_000_000));
    assert_eq!(c.preview.hooks.migrate.as_deref(), Some("bin/migrate"));
    assert_eq!(c.preview.hooks.seed.as_deref(), Some("bin/seed --demo"));
    assert_eq!(c.preview.hooks.timeout, Duration::from_secs(120));
}

#[test]
fn an_empty_file_says_nothing_and_is_valid() {
    let c = valid("");
    assert_eq!(c, RepoConfig::default());
    assert_eq!(c.preview.hooks.timeout, defaults::PREVIEW_HOOK_TIMEOUT);
    assert!(!c.preview.enabled);
}

#[test]
fn kind_is_case_insensitive_and_container_means_web() {
    for (written, kind) in [("web", Kind::Web), ("Worker", Kind::Worker), ("POD", Kind::Pod), ("container", Kind::Web)]
    {
        let c = valid(&format!("[app]\nkind = \"{written}\"\n"));
        assert_eq!(c.kind, Some(kind), "{written}");
    }
    check(
        "[app]\nkind = \"pdo\"\n",
        expect![[r#"
            slip/slip.toml:2:8: app.kind: "pdo" is not one of "web", "worker", "pod" (did you mean "pod"?)
        "#]],
    );
}

#[test]
fn unknown_keys_are_problems_with_the_nearest_valid_key() {
    check(
        r#"
[app]
nmae = "web"
image = "ghcr.io/you/web"

[helth]
path = "/up"

[health]
intervl = "2s"
host = "example.com"

[routing]
domain = "example.com"

[preview.hooks]
migrat = "x"

port = 1
"#,
        expect![[r#"
            slip/slip.toml:3:1: unknown key "nmae" in [app] (did you mean "name"?)
            slip/slip.toml:4:1: unknown key "image" in [app]
              hint: app.image is server config: set it in the app's file in /etc/slip/apps/
            slip/slip.toml:6:1: unknown table [helth] (did you mean [health]?)
            slip/slip.toml:10:1: unknown key "intervl" in [health] (did you mean "interval"?)
            slip/slip.toml:11:1: unknown key "host" in [health] (did you mean "port"?)
              hint: health.host is server config: set it in the app's file in /etc/slip/apps/
            slip/slip.toml:14:1: unknown key "domain" in [routing]
              hint: routing.domain is server config: set it in the app's file in /etc/slip/apps/
            slip/slip.toml:17:1: unknown key "migrat" in [preview.hooks] (did you mean "migrate"?)
            slip/slip.toml:19:1: unknown key "port" in [preview.hooks]
        "#]],
    );
}

#[test]
fn top_level_keys_get_a_hint_to_their_table() {
    check(
        "name = \"web\"\nport = 8080\nimage = \"x\"\n[resources]\nmemory = \"1g\"\n[[apps]]\nname = \"x\"\n",
        expect![[r#"
            slip/slip.toml:1:1: unknown key "name" at the top level
              hint: name belongs in the [app] table
            slip/slip.toml:2:1: unknown key "port" at the top level
              hint: port belongs in the [routing] table
            slip/slip.toml:3:1: unknown key "image" at the top level
              hint: image is server config: set it in the app's file in /etc/slip/apps/
            slip/slip.toml:4:1: unknown table [resources]
              hint: resource defaults go in [defaults.resources]
            slip/slip.toml:6:1: unknown table [[apps]] (did you mean [app]?)
              hint: the repo config describes one app: a single [app] table
        "#]],
    );
}

#[test]
fn unknown_keys_are_warnings_at_deploy_time() {
    let r = read(&file("[app]\nname = \"web\"\nfuture_key = 1\n[future]\nx = 1\n"), UnknownKeys::Warning);
    assert!(r.is_valid());
    expect![[r#"
        ⚠ slip/slip.toml:3:1: unknown key "future_key" in [app]
        ⚠ slip/slip.toml:4:1: unknown table [future]
    "#]]
    .assert_eq(&render(&r));
    assert_eq!(r.config.name.unwrap().as_str(), "web");
}

#[test]
fn every_wrong_value_is_reported_with_file_line_and_key() {
    check(
        r#"[app]
name = "My App"
manifest = "/slip/../etc/pod.yaml"

[routing]
port = 70000
container = "Web_1"

[health]
path = "health"
port = "8080"
interval = "2"
timeout = "0s"
retries = 0
start_period = 10

[health.containers.Bad_Name]
stable_for = "1s"

[health.containers.worker]
host = "x.example.com"

[defaults.resources]
memory = "1m"
cpus = "0"

[preview]
enabled = "yes"
ttl = "0s"
max = 0

[preview.resources]
cpus = "lots"

[preview.hooks]
migrate = ""
timeout = "5"
"#,
        expect![[r#"
            slip/slip.toml:2:8: app.name: "My App" is not an app name: use 1-63 lowercase letters, digits or '-', starting and ending with a letter or digit
            slip/slip.toml:3:12: app.manifest: "/slip/../etc/pod.yaml" contains a ".." segment; write the path without it
            slip/slip.toml:6:8: routing.port: 70000 is out of range: use an integer from 1 to 65535
            slip/slip.toml:7:13: routing.container: "Web_1" is not a container name: use lowercase letters, digits and '-' (a DNS label)
            slip/slip.toml:10:8: health.path: "health" must start with /
            slip/slip.toml:11:8: health.port: expected an integer, found a string
              hint: remove the quotes: port = 8080
            slip/slip.toml:12:12: health.interval: "2" is not a duration: add a unit, e.g. 30s
            slip/slip.toml:13:11: health.timeout: "0s" must be greater than 0s
            slip/slip.toml:14:11: health.retries: 0 is out of range: use an integer from 1 to 1000
            slip/slip.toml:15:16: health.start_period: a duration needs a unit and quotes, found the integer 10
              hint: write start_period = "10s" (units: ms, s, m, h, d)
            slip/slip.toml:17:20: health.containers: "Bad_Name" is not a container name
              hint: container names are DNS labels: lowercase letters, digits and '-'
            slip/slip.toml:21:1: unknown key "host" in [health.containers.worker] (did you mean "port"?)
            slip/slip.toml:24:10: defaults.resources.memory: "1m" is below the minimum of 6m that container engines accept
            slip/slip.toml:25:8: defaults.resources.cpus: "0" is not a decimal number greater than 0 (at most 9 decimals), e.g. "1.5"
            slip/slip.toml:28:11: preview.enabled: expected a boolean (true or false), found a string
            slip/slip.toml:29:7: preview.ttl: "0s" must be greater than 0s
            slip/slip.toml:30:7: preview.max: 0 is out of range: use an integer from 1 to 4294967295
            slip/slip.toml:33:8: preview.resources.cpus: "lots" is not a decimal number greater than 0 (at most 9 decimals), e.g. "1.5"
            slip/slip.toml:36:11: preview.hooks.migrate: "" is empty: give a shell command, or remove the key
            slip/slip.toml:37:11: preview.hooks.timeout: "5" is not a duration: add a unit, e.g. 30s
        "#]],
    );
}

#[test]
fn nothing_is_interpolated() {
    let c = valid("[health]\npath = \"/${HEALTH_PATH}\"\n");
    assert_eq!(c.health.path.as_deref(), Some("/${HEALTH_PATH}"));
    check(
        "[routing]\nport = \"${PORT}\"\n",
        expect![[r#"
            slip/slip.toml:2:8: routing.port: expected an integer, found a string
        "#]],
    );
}

#[test]
fn manifest_paths_are_inside_the_image() {
    let manifest = |written: &str| valid(&format!("[app]\nkind = \"pod\"\nmanifest = \"{written}\"\n")).manifest;
    assert_eq!(manifest("/slip/pod.yaml").as_deref(), Some("/slip/pod.yaml"));
    assert_eq!(manifest("pod.yaml").as_deref(), Some("/slip/pod.yaml"));
    assert_eq!(manifest("k8s/./pod.yaml").as_deref(), Some("/slip/k8s/pod.yaml"));
    assert_eq!(manifest("/app/pod.yaml").as_deref(), Some("/app/pod.yaml"));
    check(
        "[app]\nmanifest = \"\"\n[health]\nmanifest = \"x\"\n",
        expect![[r#"
            slip/slip.toml:2:12: app.manifest: "" is not a file path: use e.g. "/slip/pod.yaml" or "pod.yaml" (relative to /slip)
            slip/slip.toml:4:1: unknown key "manifest" in [health]
        "#]],
    );
    assert_eq!(repo_relative("/slip/pod.yaml"), Some(PathBuf::from("pod.yaml")));
    assert_eq!(repo_relative("/slip/k8s/pod.yaml"), Some(PathBuf::from("k8s/pod.yaml")));
    assert_eq!(repo_relative("/slipx/pod.yaml"), None);
    assert_eq!(repo_relative("/app/pod.yaml"), None);
    assert_eq!(repo_relative("/slip"), None);
}

#[test]
fn pod_settings_on_other_kinds_are_warnings() {
    check(
        r#"[app]
kind = "web"
manifest = "/slip/pod.yaml"
[routing]
container = "web"
[health]
container = "web"
[health.containers.web]
path = "/up"
"#,
        expect![[r#"
            ⚠ slip/slip.toml:3:12: app.manifest only applies to pods; app.kind is "web"
            ⚠ slip/slip.toml:5:13: routing.container only applies to pods; app.kind is "web"
            ⚠ slip/slip.toml:7:13: health.container only applies to pods; app.kind is "web"
            ⚠ slip/slip.toml:8:9: [health.containers] only applies to pods; app.kind is "web"
        "#]],
    );
    check(
        "[app]\nkind = \"worker\"\n[routing]\nport = 8080\n",
        expect![[r#"
            ⚠ slip/slip.toml:4:8: routing.port is set but workers have no routes
              hint: use health.port for the port a worker's health probe uses
        "#]],
    );
}

#[test]
fn hooks_without_previews_are_a_warning() {
    check(
        "[preview.hooks]\nmigrate = \"bin/migrate\"\n",
        expect![[r#"
            ⚠ slip/slip.toml:1:1: preview hooks are set but previews are off: they run only in previews
              hint: set enabled = true in [preview] to allow previews of this image
        "#]],
    );
}

#[test]
fn syntax_errors_and_oversized_files_are_problems() {
    check(
        "[app]\nname = \"web\nkind = \"web\"\n",
        expect![[r#"
            slip/slip.toml:2:12: invalid TOML: invalid basic string, expected `"`
        "#]],
    );
    let big = format!("# {}\n", "x".repeat(MAX_SIZE));
    check(
        &big,
        expect![[r#"
            slip/slip.toml: the repo config is 65539 bytes; slip reads at most 65536 (64 KiB)
        "#]],
    );
}

#[test]
fn positions_of_keys_are_kept_for_later_checks() {
    let r = read(&file(FULL), UnknownKeys::Problem);
    assert_eq!(r.position("routing.container"), (Some(9), Some(13)));
    assert_eq!(r.position("health.containers.worker"), (Some(21), Some(20)));
    assert_eq!(r.position("app.kind"), (Some(4), Some(8)));
    assert_eq!(r.position("preview.nothing"), (None, None));
    let p = r.problem_at("health.container", "x".into(), None);
    assert_eq!(p.to_string(), "slip/slip.toml:14:13: x");
}
