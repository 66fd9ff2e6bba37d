//! `slip init`, offline: the files it writes, what it refuses, and that the results pass the real checks
//! (`slip validate` for the repo config, slipd's config loader for the server's app file).

use std::fs;
use std::path::Path;

use predicates::prelude::*;
use predicates::str::contains;
use slip_core::config::{self, Loaded};
use slip_engine::config_source;

use crate::validate::{slip_in, slip_into_closed_pipe};

/// Loads `<name>.toml` from `project` as slipd would: in `apps/` of a config directory beside a minimal
/// `slip.toml`, through the real reader and parser.
#[track_caller]
fn load_server_file(project: &Path, name: &str) -> Loaded {
    let etc = tempfile::tempdir().unwrap();
    fs::write(etc.path().join("slip.toml"), "[server]\nlisten = \"127.0.0.1:7890\"\n").unwrap();
    fs::create_dir(etc.path().join("apps")).unwrap();
    fs::copy(project.join(format!("{name}.toml")), etc.path().join(format!("apps/{name}.toml"))).unwrap();
    let sources = config_source::read_with_env(etc.path(), Vec::new()).unwrap();
    match config::parse(&sources) {
        Ok(loaded) => loaded,
        Err(problems) => panic!("the generated server file has problems:\n{problems:#?}"),
    }
}

#[test]
fn init_web_writes_a_repo_config_and_a_server_file_that_both_pass() {
    let dir = tempfile::tempdir().unwrap();
    slip_in(dir.path())
        .args(["init", "shop", "--domain", "shop.example.org", "--port", "3000", "--image", "ghcr.io/acme/shop"])
        .assert()
        .code(0)
        .stdout(contains("created slip/slip.toml\ncreated shop.toml\n"))
        .stdout(contains("install shop.toml on the server as /etc/slip/apps/shop.toml"));
    assert!(!dir.path().join("slip/pod.yaml").exists());
    let repo = fs::read_to_string(dir.path().join("slip/slip.toml")).unwrap();
    assert!(repo.contains("name = \"shop\"\nkind = \"web\"\n"), "{repo}");
    assert!(repo.contains("port = 3000\n"), "{repo}");
    assert!(repo.lines().any(|l| l.starts_with('#')), "the starter is commented");

    slip_in(dir.path()).arg("validate").assert().code(0).stdout("✓ slip/slip.toml is valid (kind web)\n");

    let loaded = load_server_file(dir.path(), "shop");
    assert!(loaded.warnings.is_empty(), "{:#?}", loaded.warnings);
    let app = &loaded.config.apps[&"shop".parse().unwrap()];
    assert_eq!(app.image.to_string(), "ghcr.io/acme/shop");
    assert_eq!(app.routes[0].hostname, "shop.example.org");
}

#[test]
fn init_pod_adds_a_manifest_that_passes_strict_validation() {
    let dir = tempfile::tempdir().unwrap();
    slip_in(dir.path())
        .args(["init", "stats", "--kind", "pod"])
        .assert()
        .code(0)
        .stdout(contains("created slip/slip.toml\ncreated slip/pod.yaml\ncreated stats.toml\n"));
    let yaml = fs::read_to_string(dir.path().join("slip/pod.yaml")).unwrap();
    assert!(yaml.contains("image: ghcr.io/you/stats:${tag}"), "{yaml}");
    assert!(yaml.contains("containerPort: 8080"), "{yaml}");
    slip_in(dir.path())
        .args(["validate", "--strict"])
        .assert()
        .code(0)
        .stdout("✓ slip/slip.toml is valid (kind pod, manifest slip/pod.yaml with 1 container)\n");
    let loaded = load_server_file(dir.path(), "stats");
    assert!(loaded.warnings.is_empty(), "{:#?}", loaded.warnings);
    assert_eq!(loaded.config.apps[&"stats".parse().unwrap()].routes[0].hostname, "stats.example.com");
}

#[test]
fn init_worker_has_no_routes() {
    let dir = tempfile::tempdir().unwrap();
    slip_in(dir.path()).args(["init", "jobs", "--kind", "worker"]).assert().code(0);
    slip_in(dir.path()).arg("validate").assert().code(0).stdout("✓ slip/slip.toml is valid (kind worker)\n");
    let loaded = load_server_file(dir.path(), "jobs");
    assert!(loaded.warnings.is_empty(), "{:#?}", loaded.warnings);
    assert!(loaded.config.apps[&"jobs".parse().unwrap()].routes.is_empty());
    for flag in [["--domain", "jobs.example.com"], ["--port", "8080"]] {
        slip_in(dir.path())
            .args(["init", "jobs2", "--kind", "worker"])
            .args(flag)
            .assert()
            .code(2)
            .stderr(contains(format!("error: {} does not apply to workers", flag[0])));
    }
}

#[test]
fn init_refuses_to_overwrite_without_force_and_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir(dir.path().join("slip")).unwrap();
    fs::write(dir.path().join("slip/slip.toml"), "# mine\n").unwrap();
    slip_in(dir.path())
        .args(["init", "shop"])
        .assert()
        .code(2)
        .stdout("")
        .stderr(contains("error: slip/slip.toml already exists; not overwriting"))
        .stderr(contains("hint: pass --force to overwrite"));
    assert_eq!(fs::read_to_string(dir.path().join("slip/slip.toml")).unwrap(), "# mine\n");
    assert!(!dir.path().join("shop.toml").exists(), "nothing is written when anything would be overwritten");

    slip_in(dir.path())
        .args(["init", "shop", "--force"])
        .assert()
        .code(0)
        .stdout(contains("overwrote slip/slip.toml\ncreated shop.toml\n"));
    assert!(fs::read_to_string(dir.path().join("slip/slip.toml")).unwrap().contains("name = \"shop\""));
    slip_in(dir.path())
        .args(["init", "shop"])
        .assert()
        .code(2)
        .stderr(contains("error: slip/slip.toml, shop.toml already exist"));
}

#[test]
fn init_names_the_app_after_the_project_directory() {
    let parent = tempfile::tempdir().unwrap();
    let project = parent.path().join("shop-api");
    fs::create_dir(&project).unwrap();
    slip_in(&project).arg("init").assert().code(0).stdout(contains("created shop-api.toml"));
    assert!(fs::read_to_string(project.join("slip/slip.toml")).unwrap().contains("name = \"shop-api\""));

    // --dir names the project too.
    slip_in(parent.path())
        .args(["init", "--dir", "billing"])
        .assert()
        .code(0)
        .stdout(contains("created billing/billing.toml"));
    assert!(parent.path().join("billing/slip/slip.toml").exists());

    let bad = parent.path().join("My_Project");
    fs::create_dir(&bad).unwrap();
    slip_in(&bad)
        .arg("init")
        .assert()
        .code(2)
        .stderr(contains("error: the directory name \"My_Project\" is not an app name"))
        .stderr(contains("hint: pass a name: slip init my-project"));
    assert!(!bad.join("slip").exists());
}

#[test]
fn init_rejects_invalid_answers_before_writing() {
    let dir = tempfile::tempdir().unwrap();
    let cases: [(&[&str], &str); 4] = [
        (&["init", "Bad Name"], "error: \"Bad Name\" is not an app name"),
        (&["init", "shop", "--image", "ghcr.io/acme/shop:v1"], "error: --image \"ghcr.io/acme/shop:v1\""),
        (&["init", "shop", "--domain", "https://shop.example.com"], "is not a hostname"),
        (&["init", "shop", "--kind", "lambda"], "invalid value 'lambda' for '--kind"),
    ];
    for (args, message) in cases {
        slip_in(dir.path()).args(args).assert().code(2).stderr(contains(message));
    }
    assert!(fs::read_dir(dir.path()).unwrap().next().is_none(), "nothing was written");
    slip_in(dir.path()).args(["init", "shop", "--port", "0"]).assert().code(2).stderr(contains("--port"));
    slip_in(dir.path()).args(["init", "shop", "--quiet"]).assert().code(0).stdout(predicate::str::is_empty());
}

#[cfg(unix)]
#[test]
fn init_never_writes_through_a_symbolic_link() {
    use std::os::unix::fs::symlink;

    let elsewhere = tempfile::tempdir().unwrap();
    let theirs = elsewhere.path().join("theirs.toml");
    fs::write(&theirs, "# theirs\n").unwrap();
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir(dir.path().join("slip")).unwrap();
    symlink(&theirs, dir.path().join("slip/slip.toml")).unwrap();
    // A dangling link too: writing through it would create a file wherever it points.
    let missing = elsewhere.path().join("missing.toml");
    symlink(&missing, dir.path().join("shop.toml")).unwrap();

    slip_in(dir.path())
        .args(["init", "shop"])
        .assert()
        .code(2)
        .stdout("")
        .stderr(contains("error: slip/slip.toml, shop.toml are symbolic links; slip init does not write through links"))
        .stderr(contains("hint: pass --force to replace the link itself (its target is left alone)"));
    assert_eq!(fs::read_to_string(&theirs).unwrap(), "# theirs\n");
    assert!(!missing.exists());

    slip_in(dir.path())
        .args(["init", "shop", "--force"])
        .assert()
        .code(0)
        .stdout(contains("replaced the link slip/slip.toml\nreplaced the link shop.toml\n"));
    assert_eq!(fs::read_to_string(&theirs).unwrap(), "# theirs\n", "the link's target is left alone");
    assert!(!missing.exists());
    for file in ["slip/slip.toml", "shop.toml"] {
        let meta = fs::symlink_metadata(dir.path().join(file)).unwrap();
        assert!(meta.is_file(), "{file} is now a regular file");
    }
    assert!(fs::read_to_string(dir.path().join("slip/slip.toml")).unwrap().contains("name = \"shop\""));
    let leftovers: Vec<_> = fs::read_dir(dir.path().join("slip")).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(leftovers, ["slip.toml"], "no temporary files are left");
}

#[test]
fn init_refuses_a_directory_where_a_file_goes_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir(dir.path().join("shop.toml")).unwrap();
    slip_in(dir.path())
        .args(["init", "shop", "--force"])
        .assert()
        .code(2)
        .stderr(contains("error: shop.toml is not a file; not replacing"));
    assert!(!dir.path().join("slip").exists(), "nothing is written");
}

#[test]
fn init_into_a_closed_pipe_still_writes_every_file() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(slip_into_closed_pipe(dir.path(), &["init", "shop", "--kind", "pod"]), (Some(0), String::new()));
    for file in ["slip/slip.toml", "slip/pod.yaml", "shop.toml"] {
        assert!(dir.path().join(file).is_file(), "{file} is written");
    }
}
