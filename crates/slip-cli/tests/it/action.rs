//! The composite GitHub Action (`action.yml`), run the way a runner runs it: each step's `run` under
//! `bash -eo pipefail` with its `env`, `${{ inputs.* }}`, `${{ github.action_path }}` and `${{ steps.*.outputs.* }}`
//! expanded, `GITHUB_PATH` lines prepended to `PATH` for later steps, `GITHUB_OUTPUT` files read back as step
//! outputs and the action's `outputs` evaluated from them. The release it installs is a tarball of this build's
//! `slip` with its `.sha256`, served by `file://`; the deploys go to a real slipd, Docker, Caddy and registry.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use saphyr::{LoadableYamlNode, Scalar, Yaml};
use slip_testenv::Image;

use crate::support::{GLOBAL, Setup, app_name, web_app};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

/// A release tarball laid out as scripts/release.sh lays it out, holding this build's `slip`, and its `.sha256`.
fn release_tarball(dir: &Path) -> PathBuf {
    let top = dir.join("slip-0.0.0-x86_64-linux");
    std::fs::create_dir_all(top.join("bin")).unwrap();
    std::fs::copy(env!("CARGO_BIN_EXE_slip"), top.join("bin/slip")).unwrap();
    let tarball = dir.join("slip-x86_64-linux.tar.gz");
    let tar = Command::new("tar").arg("-czf").arg(&tarball).arg("-C").arg(dir).arg("slip-0.0.0-x86_64-linux").status();
    assert!(tar.unwrap().success());
    let sum = Command::new("sha256sum").arg("slip-x86_64-linux.tar.gz").current_dir(dir).output().unwrap();
    std::fs::write(dir.join("slip-x86_64-linux.tar.gz.sha256"), sum.stdout).unwrap();
    tarball
}

/// What one run of the action produced.
struct ActionRun {
    /// Exit code of the step that ended the run (the last one, or the first that failed).
    code: i32,
    /// Everything the steps printed.
    log: String,
    /// The action's `outputs`.
    outputs: BTreeMap<String, String>,
    /// `GITHUB_STEP_SUMMARY`.
    summary: String,
}

fn text(node: &Yaml<'_>) -> String {
    match node {
        Yaml::Value(Scalar::String(s)) | Yaml::Representation(s, _, _) => s.to_string(),
        Yaml::Value(Scalar::Boolean(b)) => b.to_string(),
        Yaml::Value(Scalar::Integer(i)) => i.to_string(),
        _ => String::new(),
    }
}

/// The text of `node`'s `key`, empty when it has none.
fn field(node: &Yaml<'_>, key: &str) -> String {
    node.as_mapping_get(key).map(text).unwrap_or_default()
}

/// Replaces every `${{ ... }}` in `s` through `lookup`, which panics on an expression the test does not know.
fn expand(s: &str, lookup: &dyn Fn(&str) -> String) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(start) = rest.find("${{") {
        out.push_str(&rest[..start]);
        let end = rest[start..].find("}}").expect("an unclosed ${{") + start;
        out.push_str(&lookup(rest[start + 3..end].trim()));
        rest = &rest[end + 2..];
    }
    out.push_str(rest);
    out
}

/// Runs action.yml with `inputs`, as a runner would.
fn run_action(inputs: &[(&str, &str)], scratch: &Path) -> ActionRun {
    let source = std::fs::read_to_string(workspace().join("action.yml")).unwrap();
    let docs = Yaml::load_from_str(&source).expect("action.yml is YAML");
    let action = &docs[0];
    assert_eq!(text(&action["runs"]["using"]), "composite");

    let mut values: BTreeMap<String, String> = BTreeMap::new();
    let declared = action["inputs"].as_mapping().expect("inputs");
    for (name, spec) in declared {
        values.insert(text(name), field(spec, "default"));
    }
    for (k, v) in inputs {
        assert!(values.contains_key(*k), "action.yml has no input {k}");
        values.insert((*k).to_owned(), (*v).to_owned());
    }
    for (name, spec) in declared {
        if field(spec, "required") == "true" {
            assert!(!values[&text(name)].is_empty(), "required input {} not given", text(name));
        }
    }

    let runner_temp = scratch.join("runner-temp");
    std::fs::create_dir_all(&runner_temp).unwrap();
    let github_path = scratch.join("github-path");
    let summary = scratch.join("step-summary");
    std::fs::write(&github_path, "").unwrap();
    std::fs::write(&summary, "").unwrap();
    let base_path = std::env::var("PATH").unwrap_or_default();
    let mut step_outputs: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    let mut log = String::new();
    let mut code = 0;

    for (index, step) in action["runs"]["steps"].as_sequence().expect("steps").iter().enumerate() {
        let id = field(step, "id");
        let lookup = |expr: &str| -> String {
            if let Some(name) = expr.strip_prefix("inputs.") {
                return values.get(name).cloned().unwrap_or_else(|| panic!("no input {name}"));
            }
            if expr == "github.action_path" {
                return workspace().display().to_string();
            }
            if let Some(rest) = expr.strip_prefix("steps.") {
                let (step, output) = rest.split_once(".outputs.").expect("steps.<id>.outputs.<name>");
                return step_outputs.get(step).and_then(|o| o.get(output)).cloned().unwrap_or_default();
            }
            panic!("the test runner does not know the expression {expr:?}")
        };
        let script = expand(&field(step, "run"), &lookup);
        assert_eq!(field(step, "shell"), "bash", "every step runs in bash");
        let output_file = scratch.join(format!("output-{index}"));
        std::fs::write(&output_file, "").unwrap();
        let added: Vec<String> =
            std::fs::read_to_string(&github_path).unwrap().lines().rev().map(str::to_owned).collect();
        let path = added.into_iter().chain([base_path.clone()]).collect::<Vec<_>>().join(":");
        let mut command = Command::new("bash");
        command
            .args(["--noprofile", "--norc", "-eo", "pipefail", "-c", &script])
            .env_clear()
            .env("PATH", path)
            .env("HOME", scratch)
            .env("RUNNER_TEMP", &runner_temp)
            .env("GITHUB_PATH", &github_path)
            .env("GITHUB_OUTPUT", &output_file)
            .env("GITHUB_STEP_SUMMARY", &summary)
            .env("GITHUB_ACTIONS", "true")
            .env("GITHUB_SHA", "0123456789abcdef0123456789abcdef01234567")
            .env("GITHUB_REPOSITORY", "acme/web")
            .env("GITHUB_RUN_ID", "42");
        if let Some(env) = step.as_mapping_get("env").and_then(|e| e.as_mapping()) {
            for (k, v) in env {
                command.env(text(k), expand(&text(v), &lookup));
            }
        }
        let out = command.output().unwrap();
        log.push_str(&String::from_utf8_lossy(&out.stdout));
        log.push_str(&String::from_utf8_lossy(&out.stderr));
        let outputs = std::fs::read_to_string(&output_file)
            .unwrap()
            .lines()
            .filter_map(|l| l.split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned())))
            .collect();
        step_outputs.insert(id, outputs);
        code = out.status.code().unwrap_or(-1);
        if code != 0 {
            break;
        }
    }

    let mut outputs = BTreeMap::new();
    for (name, spec) in action["outputs"].as_mapping().expect("outputs") {
        let value = expand(&text(&spec["value"]), &|expr: &str| {
            let rest = expr.strip_prefix("steps.").expect("outputs come from steps");
            let (step, output) = rest.split_once(".outputs.").unwrap();
            step_outputs.get(step).and_then(|o| o.get(output)).cloned().unwrap_or_default()
        });
        outputs.insert(text(name), value);
    }
    ActionRun { code, log, outputs, summary: std::fs::read_to_string(&summary).unwrap() }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_action_installs_slip_deploys_and_reports_outputs_and_a_summary() {
    let app = app_name("action");
    let a = app.clone();
    let setup = Setup::new(|reg| vec![(a.clone(), web_app(&a, reg))], "");
    setup.registry.push(&Image::V1, &app, "sha-1111111");
    setup.registry.push(&Image::UNHEALTHY, &app, "sha-bad0000");
    let slipd = setup.start(&[&app]).await;
    let server = slipd.base();
    let releases = tempfile::tempdir().unwrap();
    let tarball = release_tarball(releases.path());
    let release_url = format!("file://{}", tarball.display());
    let scratch = tempfile::tempdir().unwrap();

    let inputs = |tag: &'static str, wait: &'static str, dir: &str| {
        let dir = scratch.path().join(dir);
        std::fs::create_dir_all(&dir).unwrap();
        let inputs = [
            ("server", server.as_str()),
            ("app", app.as_str()),
            ("tag", tag),
            ("secret", GLOBAL),
            ("wait", wait),
            ("url", "https://action.example.com"),
            ("slip-release-url", release_url.as_str()),
        ];
        (inputs.map(|(k, v)| (k, v.to_owned())), dir)
    };
    let run = |(inputs, dir): ([(&'static str, String); 7], PathBuf)| {
        let borrowed: Vec<(&str, &str)> = inputs.iter().map(|(k, v)| (*k, v.as_str())).collect();
        run_action(&borrowed, &dir)
    };

    // A release that becomes healthy: exit 0, outputs, and a summary with the steps.
    let ok = tokio::task::spawn_blocking({
        let i = inputs("sha-1111111", "true", "ok");
        move || run(i)
    })
    .await
    .unwrap();
    assert_eq!(ok.code, 0, "{}", ok.log);
    assert!(ok.log.contains("installed slip"), "the install step ran:\n{}", ok.log);
    assert!(ok.outputs["deploy-id"].starts_with("dep_"), "{:?}", ok.outputs);
    assert_eq!(ok.outputs["status"], "completed");
    assert_eq!(ok.outputs["url"], "https://action.example.com");
    assert_eq!(ok.outputs["preview-url"], "");
    assert!(ok.summary.contains(&format!("### slip: {app}@sha-1111111 completed")), "{}", ok.summary);
    assert!(ok.summary.contains(&ok.outputs["deploy-id"]), "{}", ok.summary);
    for step in ["pulling", "starting", "health_checking", "switching"] {
        assert!(ok.summary.contains(&format!("| {step} |")), "summary lists the step {step}:\n{}", ok.summary);
    }
    let deployed = reqwest::Client::new()
        .get(format!("http://127.0.0.1:{}/version", setup.caddy.http_port()))
        .header("host", format!("{app}.test"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(deployed.trim(), "v1", "the deploy really happened");
    let (status, body) =
        slipd.admin(reqwest::Method::GET, &format!("/v1/deploys/{}", ok.outputs["deploy-id"]), GLOBAL, None).await;
    assert_eq!(status, 200);
    assert!(body.contains("\"trigger\":\"webhook\""), "{body}");
    let deploy: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(deploy["meta"]["sha"], "0123456789abcdef0123456789abcdef01234567", "the commit travels as metadata");
    assert_eq!(deploy["meta"]["run_url"], "https://github.com/acme/web/actions/runs/42");

    // A release that never becomes healthy: the step fails with slip's exit code 1 and the reason.
    let bad = tokio::task::spawn_blocking({
        let i = inputs("sha-bad0000", "true", "bad");
        move || run(i)
    })
    .await
    .unwrap();
    assert_eq!(bad.code, 1, "{}", bad.log);
    assert_eq!(bad.outputs["status"], "failed");
    assert!(bad.summary.contains("**failed**"), "the summary names the failure:\n{}", bad.summary);

    // Without wait: accepted, exit 0, nothing followed.
    let nowait = tokio::task::spawn_blocking({
        let i = inputs("sha-1111111", "false", "nowait");
        move || run(i)
    })
    .await
    .unwrap();
    assert_eq!(nowait.code, 0, "{}", nowait.log);
    assert!(matches!(nowait.outputs["status"].as_str(), "accepted" | "queued"), "{:?}", nowait.outputs);
    assert!(nowait.outputs["deploy-id"].starts_with("dep_"));

    for run in [&ok, &bad, &nowait] {
        // The runner consumes `::add-mask::` commands (and masks the value from then on); nothing else shows it.
        assert!(run.log.contains(&format!("::add-mask::{GLOBAL}")), "the secret is masked:\n{}", run.log);
        let shown: Vec<&str> = run.log.lines().filter(|l| !l.starts_with("::add-mask::")).collect();
        assert!(!shown.join("\n").contains(GLOBAL) && !run.summary.contains(GLOBAL), "the secret never shows");
        assert!(run.outputs.values().all(|v| !v.contains(GLOBAL)));
    }
}

#[test]
fn the_reusable_workflow_passes_only_inputs_the_action_declares() {
    let action = &Yaml::load_from_str(&std::fs::read_to_string(workspace().join("action.yml")).unwrap()).unwrap()[0];
    let path = workspace().join(".github/workflows/slip-deploy.yml");
    let workflow = &Yaml::load_from_str(&std::fs::read_to_string(path).unwrap()).unwrap()[0];
    let declared: Vec<String> = action["inputs"].as_mapping().unwrap().keys().map(text).collect();
    let required: Vec<String> = action["inputs"]
        .as_mapping()
        .unwrap()
        .iter()
        .filter(|(_, spec)| field(spec, "required") == "true")
        .map(|(name, _)| text(name))
        .collect();
    let step = &workflow["jobs"]["deploy"]["steps"][0];
    assert!(field(step, "uses").starts_with("mitchelljphayes/slip@"), "the workflow runs slip's action");
    let with: Vec<String> = step["with"].as_mapping().unwrap().keys().map(text).collect();
    for key in &with {
        assert!(declared.contains(key), "the workflow passes {key}, which action.yml does not declare");
    }
    for key in &required {
        assert!(with.contains(key), "the workflow does not pass the required input {key}");
    }
    let outputs: Vec<String> = action["outputs"].as_mapping().unwrap().keys().map(text).collect();
    let job_outputs: Vec<String> =
        workflow["jobs"]["deploy"]["outputs"].as_mapping().unwrap().keys().map(text).collect();
    assert_eq!(outputs, job_outputs, "the workflow forwards every output of the action");
}
