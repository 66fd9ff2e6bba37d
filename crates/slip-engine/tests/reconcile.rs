//! The periodic reconcile against a real Docker engine and a real Caddy: when the engine re-assigns a current
//! instance's published host port (as a Docker restart can), `reconcile::refresh_ports` records the new port and
//! moves the routes, and Caddy serves the app again.
//!
//! Restarting dockerd itself would break every other test running in parallel, so the re-assignment is made
//! the way Docker does it for a dynamic binding: the container publishes `127.0.0.1::8080` and is restarted,
//! which gives it a new host port. Containers slip creates bind their leased port explicitly, which Docker
//! restores after its own restart; this test covers the engines and setups that do not.

use std::collections::BTreeMap;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use slip_core::names::AppName;
use slip_engine::caddy::{Client, Settings, TlsMode};
use slip_engine::clock::unix_ms;
use slip_engine::images::ImagePolicy;
use slip_engine::ports::{LogRotation, loopback_upstream};
use slip_engine::reconcile::{PortChange, refresh_ports};
use slip_engine::routes::{RouteTable, RouteTemplate, app_routes};
use slip_engine::run::Engine;
use slip_engine::runtime::{self, Backend};
use slip_engine::store::{InstanceRole, InstanceRow, NewDeploy, Store, Trigger};
use slip_testenv::caddy::Caddy;
use slip_testenv::{ContainerGuard, DOCKER_SOCKET, Image, PortRange, unique_id, wait_until_async};
use tokio_util::sync::CancellationToken;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_follow_a_host_port_the_engine_reassigned() {
    slip_testenv::require_docker();
    let caddy = Caddy::start();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("slip.db")).unwrap();
    let app: AppName = format!("ports-{}", &unique_id()[..8]).parse().unwrap();
    let _guard = ContainerGuard::new("slip.app", app.as_str());
    let settings = Settings {
        admin_api: caddy.admin_url(),
        listen: vec![format!("127.0.0.1:{}", caddy.http_port())],
        tls: TlsMode::Off,
        ..Settings::default()
    };
    let runtime = runtime::connect(Backend::Docker, Some(DOCKER_SOCKET)).await.expect("connecting to Docker");
    // A range no concurrent test daemon leases from.
    let ports = PortRange::lease();
    let engine = Engine {
        instances: runtime.instances,
        image_store: runtime.images,
        logs: runtime.logs,
        probe: Arc::new(slip_engine::probe::Http::new()),
        routes: RouteTable::new(Arc::new(Client::new(settings).unwrap())),
        instance_id: store.instance_id().to_owned(),
        store: store.clone(),
        port_range: ports.first()..=ports.last(),
        log: LogRotation { max_size_bytes: 1 << 20, max_files: 1 },
        shutdown: CancellationToken::new(),
        images: ImagePolicy::without_disk_check(),
    };

    // A current instance on a dynamically bound host port, recorded and routed like one slip started.
    let image = Image::V1.build();
    let container = docker(&[
        "run",
        "-d",
        "--label",
        &format!("slip.app={app}"),
        "--label",
        "slip.managed=true",
        "-p",
        "127.0.0.1::8080",
        &image,
    ]);
    let first = host_port(&engine, &container).await;
    let deploy_id = "dep_01jz0000000000000000000001".parse().unwrap();
    store
        .enqueue(
            &NewDeploy {
                id: deploy_id,
                app: app.clone(),
                preview_id: None,
                trigger: Trigger::Webhook,
                tag: "v1".parse().unwrap(),
                images: "{}".into(),
                kind: Some("web".into()),
                strategy: Some("blue-green".into()),
                rollback_of: None,
                meta: None,
                actor: None,
                source_ip: None,
                created_at: unix_ms(),
            },
            unix_ms(),
        )
        .unwrap();
    store
        .insert_instance(&InstanceRow {
            id: "ins_ports".into(),
            app: app.clone(),
            preview_id: None,
            deploy_id: "dep_01jz0000000000000000000001".parse().unwrap(),
            runtime_kind: slip_engine::store::RuntimeKind::Container,
            runtime_id: container.clone(),
            name: format!("{app}-container"),
            role: InstanceRole::Current,
            ports: BTreeMap::from([(8080, first)]),
            created_at: unix_ms(),
            retired_at: None,
        })
        .unwrap();
    let template = RouteTemplate {
        hostname: format!("{app}.test"),
        path_prefix: None,
        strip_prefix: false,
        container_port: 8080,
        hold_timeout: Duration::from_secs(1),
    };
    let entry = app_routes(
        &slip_core::names::Target::production(app.clone()),
        std::slice::from_ref(&template),
        &BTreeMap::from([(8080, first)]),
        &loopback_upstream,
    );
    engine.routes.update(&slip_core::names::Target::production(app.clone()), entry).await.unwrap();
    let host = format!("{app}.test");
    wait_until_async(Duration::from_secs(15), "Caddy serves v1 on the first port", || serves(&caddy, &host)).await;
    assert!(refresh_ports(&engine).await.unwrap().is_empty(), "nothing changed yet");

    // The engine re-assigns the port; until the refresh, Caddy dials the dead one.
    let mut second = first;
    for _ in 0..5 {
        docker(&["restart", "-t", "1", &container]);
        second = host_port(&engine, &container).await;
        if second != first {
            break;
        }
    }
    assert_ne!(second, first, "Docker gave the restarted container a new host port");
    assert!(!serves(&caddy, &host).await, "Caddy still dials the old port");

    let changes = refresh_ports(&engine).await.unwrap();
    assert_eq!(changes, [PortChange { app: app.to_string(), container: 8080, from: first, to: second }]);
    wait_until_async(Duration::from_secs(15), "Caddy serves v1 on the new port", || serves(&caddy, &host)).await;
    let routes = caddy.get_json(&format!("/id/slip-{app}"));
    assert_eq!(routes["handle"][0]["upstreams"][0]["dial"], format!("127.0.0.1:{second}"));
    let row = store.instance("ins_ports").unwrap().unwrap();
    assert_eq!(row.ports, BTreeMap::from([(8080, second)]));
    assert!(refresh_ports(&engine).await.unwrap().is_empty(), "settled");
}

/// Runs docker and returns its trimmed stdout; panics with stderr on failure.
fn docker(args: &[&str]) -> String {
    let out = Command::new("docker").args(args).output().expect("running docker");
    assert!(out.status.success(), "docker {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// The host port bound to container port 8080 now.
async fn host_port(engine: &Engine, container: &str) -> u16 {
    let state = engine.instances.inspect(container).await.unwrap().expect("container exists");
    state.ports.iter().find(|p| p.container == 8080).map(|p| p.host).expect("8080 is published")
}

/// Whether `GET /version` through Caddy with `Host: host` answers `v1`.
async fn serves(caddy: &Caddy, host: &str) -> bool {
    let url = format!("http://127.0.0.1:{}/version", caddy.http_port());
    let client = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().unwrap();
    match client.get(url).header("host", host).send().await {
        Ok(r) if r.status().is_success() => r.text().await.unwrap_or_default().trim() == "v1",
        _ => false,
    }
}
