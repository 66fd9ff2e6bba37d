use std::time::Duration;

use super::*;
use crate::config::{SourceFile, Sources, UnknownKeys, parse};
use crate::pod_manifest::{self, Policy};
use crate::repo_config;

#[track_caller]
fn app(text: &str) -> AppConfig {
    let sources = Sources {
        slip_toml: None,
        apps: vec![SourceFile { path: "apps/myapp.toml".into(), text: text.to_owned() }],
        env: Default::default(),
    };
    let loaded = parse(&sources).unwrap_or_else(|p| panic!("{p:?}"));
    loaded.config.apps.into_values().next().unwrap()
}

#[track_caller]
fn repo(text: &str) -> RepoConfig {
    let read =
        repo_config::read(&SourceFile { path: "/slip/slip.toml".into(), text: text.to_owned() }, UnknownKeys::Warning);
    assert!(read.is_valid(), "{:?}", read.problems);
    read.config
}

const SERVER: &str = "[app]\nname = \"myapp\"\nimage = \"registry.test/myapp\"\n[routing]\ndomain = \"myapp.test\"\n";

#[test]
fn without_a_repo_config_the_server_file_alone_decides_and_a_route_needs_a_port() {
    let failure = merge(&app(SERVER), None, None).unwrap_err();
    assert_eq!(failure.code, ErrorCode::NoPort);
    assert!(failure.message.contains("route myapp.test has no port"), "{}", failure.message);
    let merged = merge(&app(&format!("{SERVER}port = 8080\n")), None, None).unwrap();
    assert_eq!((merged.kind, merged.strategy), (Kind::Web, Strategy::BlueGreen));
    assert_eq!(merged.routes[0].port, 8080);
    assert_eq!(merged.health.path, None);
    assert_eq!(merged.health_host.as_deref(), Some("myapp.test"));
}

#[test]
fn the_repo_fills_what_the_server_leaves_out_field_by_field() {
    let server = app(&format!("{SERVER}[health]\ninterval = \"1s\"\n[resources]\nmemory = \"256m\"\n"));
    let image = repo(
        "[app]\nname = \"myapp\"\n[routing]\nport = 8081\n[health]\npath = \"/up\"\ninterval = \"9s\"\nretries = 2\n\
         [defaults.resources]\nmemory = \"1g\"\ncpus = \"0.5\"\n",
    );
    let merged = merge(&server, Some(&image), None).unwrap();
    assert_eq!(merged.routes[0].port, 8081, "port from the repo");
    assert_eq!(merged.health.path.as_deref(), Some("/up"), "path from the repo");
    assert_eq!(merged.health.interval, Duration::from_secs(1), "interval written on the server wins");
    assert_eq!(merged.health.retries, 2);
    assert_eq!(merged.health_port, Some(8081), "the route's port is probed");
    assert_eq!(merged.resources.memory, Some(256 << 20), "memory written on the server wins");
    assert_eq!(merged.resources.nano_cpus, Some(500_000_000), "cpus from the repo");
    let server_port = app(&format!("{SERVER}port = 9000\n"));
    assert_eq!(merge(&server_port, Some(&image), None).unwrap().routes[0].port, 9000, "the server's port wins");
}

#[test]
fn name_and_kind_conflicts_fail_with_their_codes() {
    let server = app(&format!("{SERVER}port = 8080\n"));
    let other = repo("[app]\nname = \"other\"\n");
    let failure = merge(&server, Some(&other), None).unwrap_err();
    assert_eq!(failure.code, ErrorCode::RepoConfigNameMismatch);
    assert!(failure.message.contains("\"other\", not \"myapp\""), "{}", failure.message);

    let worker = repo("[app]\nkind = \"worker\"\n");
    let failure = merge(&server, Some(&worker), None).unwrap_err();
    assert_eq!(failure.code, ErrorCode::KindMismatch);
    assert!(failure.message.contains("routes it (myapp.test)"), "{}", failure.message);

    let explicit = app(&format!("{SERVER}port = 8080\n").replace("[app]\n", "[app]\nkind = \"web\"\n"));
    let pod = repo("[app]\nkind = \"pod\"\n");
    let failure = merge(&explicit, Some(&pod), None).unwrap_err();
    assert_eq!(failure.code, ErrorCode::KindMismatch);
    assert!(failure.message.contains("says app.kind = \"web\" but the image"), "{}", failure.message);

    let unrouted = app("[app]\nname = \"myapp\"\nimage = \"registry.test/myapp\"\n");
    let web = repo("[app]\nkind = \"container\"\n");
    assert_eq!(merge(&unrouted, Some(&web), None).unwrap_err().code, ErrorCode::KindMismatch);
}

#[test]
fn a_repo_worker_defaults_to_recreate_and_a_worker_probe_needs_a_port() {
    let server = app("[app]\nname = \"myapp\"\nimage = \"registry.test/myapp\"\n");
    let merged = merge(&server, Some(&repo("[app]\nkind = \"worker\"\n")), None).unwrap();
    assert_eq!((merged.kind, merged.strategy), (Kind::Worker, Strategy::Recreate));
    let failure = merge(&server, Some(&repo("[health]\npath = \"/up\"\n")), None).unwrap_err();
    assert_eq!(failure.code, ErrorCode::NoPort);
    let merged = merge(&server, Some(&repo("[health]\npath = \"/up\"\nport = 9000\n")), None).unwrap();
    assert_eq!(merged.health_port, Some(9000));
}

#[test]
fn a_pod_route_takes_its_container_and_the_manifests_only_port() {
    let server = app("[app]\nname = \"myapp\"\nimage = \"registry.test/myapp\"\nkind = \"pod\"\n\
         [[routing.routes]]\nhostname = \"api.test\"\ncontainer = \"api\"\n\
         [[routing.routes]]\nhostname = \"dagster.test\"\ncontainer = \"dagster-webserver\"\n");
    let manifest = pod_manifest::read(
        &SourceFile {
            path: "/slip/pod.yaml".into(),
            text: "apiVersion: v1\nkind: Pod\nmetadata:\n  name: x\nspec:\n  containers:\n  - name: api\n    image: \
                   registry.test/myapp:${tag}\n    ports:\n    - containerPort: 8080\n  - name: dagster-webserver\n    \
                   image: registry.test/myapp:${tag}\n    ports:\n    - containerPort: 3000\n"
                .into(),
        },
        &Policy::default(),
    );
    assert!(manifest.is_valid(), "{:?}", manifest.problems);
    let merged =
        merge(&server, Some(&repo("[app]\nmanifest = \"/slip/pod.yaml\"\n")), manifest.manifest.as_ref()).unwrap();
    let routes: Vec<_> = merged.routes.iter().map(|r| (r.container.as_deref(), r.port)).collect();
    assert_eq!(routes, [(Some("api"), 8080), (Some("dagster-webserver"), 3000)]);
    assert_eq!(merged.manifest.as_deref(), Some("/slip/pod.yaml"));
    assert_eq!(merged.strategy, Strategy::BlueGreen);
}
