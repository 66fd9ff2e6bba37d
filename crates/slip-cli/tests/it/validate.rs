//! `slip validate`, offline: the real binary on repo configs and pod manifests in a temporary directory.
//! Exit codes (0 valid, 2 not), the summary line, and problems naming file, line, column and key.

use std::fs;
use std::path::Path;
use std::process::Stdio;

use assert_cmd::Command;
use predicates::prelude::*;
use predicates::str::contains;

/// `slip` run in `dir` with no slipd settings from the environment (the command must not need them).
pub fn slip_in(dir: &Path) -> Command {
    let mut cmd = assert_cmd::cargo::cargo_bin_cmd!("slip");
    cmd.current_dir(dir)
        .env_remove("SLIP_SERVER")
        .env_remove("SLIP_TOKEN")
        .env_remove("SLIP_SECRET")
        .env_remove("SLIP_CONFIG");
    cmd
}

/// Runs `slip args` in `dir` with stdout a pipe whose reader is already gone, as in `slip validate | true`:
/// every write to it fails with EPIPE. Returns the exit code and stderr.
pub fn slip_into_closed_pipe(dir: &Path, args: &[&str]) -> (Option<i32>, String) {
    let mut reader = std::process::Command::new("true").stdin(Stdio::piped()).spawn().unwrap();
    let closed = reader.stdin.take().unwrap();
    reader.wait().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_slip"))
        .current_dir(dir)
        .args(args)
        .env_remove("SLIP_SERVER")
        .env_remove("SLIP_TOKEN")
        .env_remove("SLIP_SECRET")
        .env_remove("SLIP_CONFIG")
        .stdout(Stdio::from(closed))
        .output()
        .unwrap();
    (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// A temporary project with the given files (paths relative to it).
fn project(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (path, text) in files {
        let path = dir.path().join(path);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
    }
    dir
}

const WEB: &str = "[app]\nname = \"myapp\"\nkind = \"web\"\n\n[routing]\nport = 8080\n\n[health]\npath = \"/health\"\n";

const POD_REPO: &str = r#"[app]
name = "statstream"
kind = "pod"
manifest = "/slip/pod.yaml"

[routing]
container = "api"

[health]
path = "/health"
"#;

const POD_YAML: &str = r#"apiVersion: v1
kind: Pod
metadata:
  name: statstream
spec:
  containers:
    - name: api
      image: ghcr.io/you/statstream-api:${tag}
      ports:
        - containerPort: 8080
    - name: dagster-webserver
      image: ghcr.io/you/statstream-dagster:${tag}
      ports:
        - containerPort: 3000
    - name: redis
      image: redis:latest
"#;

#[test]
fn validate_accepts_a_valid_repo_config_with_a_one_line_summary() {
    let dir = project(&[("slip/slip.toml", WEB)]);
    slip_in(dir.path()).arg("validate").assert().code(0).stdout("✓ slip/slip.toml is valid (kind web)\n").stderr("");
}

#[test]
fn validate_falls_back_to_slip_toml_in_the_current_directory() {
    let dir = project(&[("slip.toml", WEB)]);
    slip_in(dir.path()).arg("validate").assert().code(0).stdout(contains("✓ slip.toml is valid"));
}

#[test]
fn validate_takes_a_file_or_a_project_directory() {
    let dir = project(&[("app/slip/slip.toml", WEB), ("other.toml", WEB)]);
    slip_in(dir.path()).args(["validate", "app"]).assert().code(0).stdout(contains("✓ app/slip/slip.toml is valid"));
    slip_in(dir.path()).args(["validate", "other.toml"]).assert().code(0).stdout(contains("✓ other.toml is valid"));
}

#[test]
fn validate_without_a_repo_config_is_a_usage_error() {
    let dir = project(&[]);
    slip_in(dir.path())
        .arg("validate")
        .assert()
        .code(2)
        .stderr(contains("error: no repo config found: looked for slip/slip.toml and slip.toml"))
        .stderr(contains("hint: pass its path"));
    slip_in(dir.path())
        .args(["validate", "missing.toml"])
        .assert()
        .code(2)
        .stderr(contains("cannot read missing.toml"));
}

#[test]
fn validate_reports_every_problem_with_file_line_column_and_key() {
    let text = "[app]\nname = \"myapp\"\nkind = \"webb\"\n\n[routing]\nport = 0\n\n[health]\nintervl = \"2s\"\nretries = \"5\"\n";
    let dir = project(&[("slip/slip.toml", text)]);
    slip_in(dir.path()).arg("validate").assert().code(2).stdout(
        "✗ slip/slip.toml: validation failed (4 problems)\n\
         slip/slip.toml:3:8: app.kind: \"webb\" is not one of \"web\", \"worker\", \"pod\" (did you mean \"web\"?)\n\
         slip/slip.toml:6:8: routing.port: 0 is out of range: use an integer from 1 to 65535\n\
         slip/slip.toml:9:1: unknown key \"intervl\" in [health] (did you mean \"interval\"?)\n\
         slip/slip.toml:10:11: health.retries: expected an integer, found a string\n  \
         hint: remove the quotes: retries = 5\n",
    );
}

#[test]
fn validate_checks_the_manifest_that_app_manifest_names() {
    let dir = project(&[("slip/slip.toml", POD_REPO), ("slip/pod.yaml", POD_YAML)]);
    slip_in(dir.path())
        .arg("validate")
        .assert()
        .code(0)
        .stdout("✓ slip/slip.toml is valid (kind pod, manifest slip/pod.yaml with 3 containers)\n");

    // A relative app.manifest is relative to the repo config's directory (/slip in the image).
    let relative = POD_REPO.replace("/slip/pod.yaml", "k8s/pod.yaml");
    let dir = project(&[("slip/slip.toml", &relative), ("slip/k8s/pod.yaml", POD_YAML)]);
    slip_in(dir.path()).arg("validate").assert().code(0).stdout(contains("manifest slip/k8s/pod.yaml"));
}

#[test]
fn validate_checks_container_names_against_routes_and_health() {
    let repo = format!("{POD_REPO}container = \"dagster\"\n\n[health.containers.worker]\nstable_for = \"5s\"\n");
    let repo = repo.replace("container = \"api\"", "container = \"apii\"");
    let dir = project(&[("slip/slip.toml", &repo), ("slip/pod.yaml", POD_YAML)]);
    slip_in(dir.path())
        .arg("validate")
        .assert()
        .code(2)
        .stdout(contains("✗ slip/slip.toml: validation failed (3 problems)"))
        .stdout(contains(
            "slip/slip.toml:7:13: routing.container: \"apii\" is not a container in slip/pod.yaml (did you mean \"api\"?)",
        ))
        .stdout(contains("slip/slip.toml:11:13: health.container: \"dagster\" is not a container in slip/pod.yaml"))
        .stdout(contains("slip/slip.toml:13:20: health.containers.worker: \"worker\" is not a container"))
        .stdout(contains("hint: its containers are api, dagster-webserver, redis"));
}

#[test]
fn validate_reports_manifest_rules_at_the_yaml_line() {
    let yaml =
        POD_YAML.replace("kind: Pod", "kind: Deployment").replace("containerPort: 3000", "containerPort: \"3000\"");
    let dir = project(&[("slip/slip.toml", POD_REPO), ("slip/pod.yaml", &yaml)]);
    slip_in(dir.path())
        .arg("validate")
        .assert()
        .code(2)
        .stdout(contains("✗ slip/slip.toml: validation failed (2 problems)"))
        .stdout(contains("slip/pod.yaml:2:7: kind: \"Deployment\" is not supported"))
        .stdout(contains("slip/pod.yaml:14:26: spec.containers[1].ports[0].containerPort: expected an integer"));
}

#[test]
fn validate_reports_a_manifest_it_cannot_find() {
    let dir = project(&[("slip/slip.toml", POD_REPO)]);
    slip_in(dir.path()).arg("validate").assert().code(2).stdout(contains(
        "slip/slip.toml:4:12: app.manifest: \"/slip/pod.yaml\" is slip/pod.yaml in this repo, which cannot be read",
    ));

    let outside = POD_REPO.replace("/slip/pod.yaml", "/etc/app/pod.yaml");
    let dir = project(&[("slip/slip.toml", &outside), ("deploy/pod.yaml", POD_YAML)]);
    slip_in(dir.path())
        .arg("validate")
        .assert()
        .code(2)
        .stdout(contains("slip/slip.toml:4:12: app.manifest: \"/etc/app/pod.yaml\" is outside /slip"))
        .stdout(contains("hint: pass the manifest with --manifest FILE"));
    slip_in(dir.path())
        .args(["validate", "--manifest", "deploy/pod.yaml"])
        .assert()
        .code(0)
        .stdout(contains("✓ slip/slip.toml is valid (kind pod, manifest deploy/pod.yaml with 3 containers)"));
    slip_in(dir.path())
        .args(["validate", "--manifest", "nope.yaml"])
        .assert()
        .code(2)
        .stdout(contains("nope.yaml: cannot read the manifest"));
}

#[test]
fn validate_strict_warns_about_latest_and_untagged_sidecars_but_passes() {
    let dir = project(&[("slip/slip.toml", POD_REPO), ("slip/pod.yaml", POD_YAML)]);
    slip_in(dir.path()).arg("validate").assert().code(0).stdout(contains("⚠").not());
    slip_in(dir.path())
        .args(["validate", "--strict"])
        .assert()
        .code(0)
        .stdout(contains("is valid (kind pod, manifest slip/pod.yaml with 3 containers, 1 warning)"))
        .stdout(contains(
            "⚠ slip/pod.yaml:16:14: container \"redis\": image \"redis:latest\" uses the mutable :latest tag",
        ));
}

#[test]
fn validate_warns_about_settings_it_cannot_decide_offline() {
    let yaml = POD_YAML.replace("spec:\n", "spec:\n  hostNetwork: true\n");
    let dir = project(&[("slip/slip.toml", POD_REPO), ("slip/pod.yaml", &yaml)]);
    slip_in(dir.path())
        .arg("validate")
        .assert()
        .code(0)
        .stdout(contains("⚠ slip/pod.yaml:6:16: spec.hostNetwork: true needs app.allow_privileged = true"));
    slip_in(dir.path()).args(["validate", "--quiet"]).assert().code(0).stdout(contains("⚠").not());
}

#[test]
fn validate_json_lists_problems_and_warnings() {
    let dir = project(&[("slip/slip.toml", "[app]\nnmae = \"x\"\n")]);
    let out = slip_in(dir.path()).args(["validate", "--json"]).assert().code(2).get_output().stdout.clone();
    let report: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(report["valid"], false);
    assert_eq!(report["path"], "slip/slip.toml");
    let p = &report["problems"][0];
    assert_eq!(
        (p["file"].as_str(), p["line"].as_u64(), p["column"].as_u64()),
        (Some("slip/slip.toml"), Some(2), Some(1))
    );
    assert_eq!(p["message"], "unknown key \"nmae\" in [app] (did you mean \"name\"?)");
    assert_eq!(report["warnings"], serde_json::json!([]));
}

#[test]
fn validate_does_not_need_a_server_address() {
    let dir = project(&[("slip/slip.toml", WEB)]);
    slip_in(dir.path()).env("SLIP_SERVER", "not a url").arg("validate").assert().code(0);
}

#[test]
fn validate_refuses_deeply_nested_yaml_without_crashing() {
    // 240 KB, under the size cap: the YAML loader recursed once per level and aborted the process.
    let deep = format!("{}1\n", "- ".repeat(120_000));
    let dir = project(&[("slip/slip.toml", POD_REPO), ("slip/pod.yaml", &deep)]);
    slip_in(dir.path())
        .arg("validate")
        .assert()
        .code(2)
        .stdout(contains("✗ slip/slip.toml: validation failed (1 problem)"))
        .stdout(contains(
            "slip/pod.yaml:1:129: collections nested more than 64 levels deep; slip reads at most 64 levels",
        ));
}

#[test]
fn validate_into_a_closed_pipe_exits_with_its_verdict() {
    let valid = project(&[("slip/slip.toml", WEB)]);
    let invalid = project(&[("slip/slip.toml", "[app]\nnmae = \"x\"\nkind = \"lambda\"\n")]);
    for (dir, code) in [(&valid, 0), (&invalid, 2)] {
        for args in [&["validate"][..], &["validate", "--json"]] {
            assert_eq!(slip_into_closed_pipe(dir.path(), args), (Some(code), String::new()), "slip {args:?}");
        }
    }
}
