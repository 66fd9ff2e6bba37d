//! Data-driven tests of the whole config parser: files in, a `Config` dump or the rendered problems out,
//! compared with `expect!` snapshots (`UPDATE_EXPECT=1 cargo test -p slip-core` rewrites them).

use std::collections::BTreeMap;
use std::time::Duration;

use expect_test::{Expect, expect};

use super::*;
use crate::deploy::Strategy;

/// A value for `SLIP_SECRET` that must never show up in a problem or in `Debug` output.
const SECRET_VALUE: &str = "resolved-secret-value-0123456789abcdef";

fn env() -> BTreeMap<String, String> {
    [
        ("SLIP_SECRET", SECRET_VALUE),
        ("MYAPP_SECRET", "resolved-myapp-key-0123456789abcdef"),
        ("DB_PASSWORD", "resolved-db-password"),
        ("PORT", "9090"),
        ("ENABLED", "true"),
        ("DRAIN", "45s"),
        ("HOST", "from-env.example.com"),
        ("EMPTY", ""),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

fn sources(slip_toml: Option<&str>, apps: &[(&str, &str)]) -> Sources {
    Sources {
        slip_toml: slip_toml.map(|text| SourceFile { path: "slip.toml".into(), text: text.to_owned() }),
        apps: apps
            .iter()
            .map(|(name, text)| SourceFile { path: format!("apps/{name}.toml").into(), text: text.to_string() })
            .collect(),
        env: env(),
    }
}

#[track_caller]
fn load(slip_toml: Option<&str>, apps: &[(&str, &str)]) -> Loaded {
    match parse(&sources(slip_toml, apps)) {
        Ok(loaded) => loaded,
        Err(problems) => panic!("expected a valid config, got:\n{}", render(&problems)),
    }
}

#[track_caller]
fn app(text: &str) -> AppConfig {
    let loaded = load(None, &[("myapp", text)]);
    loaded.config.apps.into_values().next().unwrap()
}

fn render(problems: &[Problem]) -> String {
    problems.iter().map(|p| format!("{p}\n")).collect()
}

#[track_caller]
fn check_problems(slip_toml: Option<&str>, apps: &[(&str, &str)], expect: Expect) {
    match parse(&sources(slip_toml, apps)) {
        Ok(loaded) => panic!("expected problems, got a valid config: {:#?}", loaded.config),
        Err(problems) => {
            let text = render(&problems);
            assert!(!text.contains(SECRET_VALUE), "a resolved secret leaked into:\n{text}");
            expect.assert_eq(&text);
        }
    }
}

#[track_caller]
fn check_warnings(slip_toml: Option<&str>, apps: &[(&str, &str)], expect: Expect) {
    let loaded = load(slip_toml, apps);
    expect.assert_eq(&render(&loaded.warnings));
}

const MINIMAL_APP: &str = "[app]\nname = \"myapp\"\nimage = \"ghcr.io/you/myapp\"\n";

// The original README, as written (SPEC §19).

const README_SLIP_TOML: &str = include_str!("testdata/readme/slip.toml");
const README_MYAPP: &str = include_str!("testdata/readme/apps/myapp.toml");
const README_API: &str = include_str!("testdata/readme/apps/api.toml");
const README_PIPELINE: &str = include_str!("testdata/readme/apps/pipeline.toml");
const README_STATSTREAM: &str = include_str!("testdata/readme/apps/statstream.toml");

#[test]
fn readme_quick_start_is_valid_as_written() {
    let loaded = load(Some(README_SLIP_TOML), &[("myapp", README_MYAPP)]);
    assert_eq!(loaded.config.summary().to_string(), "1 app, listening on 127.0.0.1:7890");
    assert_eq!(loaded.config.auth.secret.as_ref().unwrap().expose(), SECRET_VALUE);
    let myapp = &loaded.config.apps[&"myapp".parse().unwrap()];
    assert_eq!(myapp.image.to_string(), "ghcr.io/you/myapp");
    assert_eq!(myapp.kind(), Kind::Web);
    assert_eq!(myapp.strategy(), Strategy::BlueGreen);
    assert_eq!(
        myapp.routes,
        [Route {
            hostname: "myapp.example.com".into(),
            port: Some(8080),
            container: None,
            path_prefix: "/".into(),
            strip_prefix: false
        }]
    );
    assert_eq!(myapp.health.path.as_deref(), Some("/health"));
    assert_eq!(myapp.health.retries, Some(5));
    assert_eq!(myapp.health.start_period, Some(Duration::from_secs(10)));
    assert_eq!(myapp.deploy.drain_timeout, Duration::from_secs(30));
    assert_eq!(myapp.resources, Resources { memory: Some(512 << 20), nano_cpus: Some(1_000_000_000), pids: None });
    check_warnings(
        Some(README_SLIP_TOML),
        &[("myapp", README_MYAPP)],
        expect![[r#"
            slip.toml:8:10: auth.admin_token is unset, so auth.secret (the webhook key CI holds) is also the admin token
              hint: set a separate auth.admin_token, e.g. from `slip gen-secret`
        "#]],
    );
}

#[test]
fn readme_app_types_are_valid_as_written() {
    let loaded = load(
        Some(README_SLIP_TOML),
        &[
            ("api", README_API),
            ("myapp", README_MYAPP),
            ("pipeline", README_PIPELINE),
            ("statstream", README_STATSTREAM),
        ],
    );
    assert_eq!(loaded.config.summary().to_string(), "4 apps, listening on 127.0.0.1:7890");
    let get = |name: &str| &loaded.config.apps[&name.parse().unwrap()];

    let pipeline = get("pipeline");
    assert_eq!((pipeline.kind(), pipeline.strategy()), (Kind::Worker, Strategy::Recreate));
    assert!(pipeline.has_writable_volume());
    assert_eq!(pipeline.health, Health::default(), "an empty [health] is a missing one");

    let statstream = get("statstream");
    assert_eq!(statstream.kind(), Kind::Web, "no app.kind on the server: routes make it web until the repo says pod");
    let routes: Vec<_> =
        statstream.routes.iter().map(|r| (r.hostname.as_str(), r.port, r.container.as_deref())).collect();
    assert_eq!(
        routes,
        [("statstream.example.com", None, Some("api")), ("dagster.example.com", None, Some("dagster-webserver"))]
    );
    assert_eq!(statstream.route_ids(), ["slip-statstream", "slip-statstream-1"]);
    assert_eq!(statstream.volumes[0].containers, None, "volumes mount into every pod container by default");

    assert_eq!(get("api").strategy(), Strategy::BlueGreen);
}

#[test]
fn readme_quick_start_without_the_variable_names_it() {
    let mut s = sources(Some(README_SLIP_TOML), &[("myapp", README_MYAPP)]);
    s.env.remove("SLIP_SECRET");
    let text = render(&parse(&s).unwrap_err());
    expect![[r#"
        slip.toml:8:10: auth.secret: variable SLIP_SECRET is not set
          hint: set SLIP_SECRET in slipd's environment or in slip.env beside slip.toml (KEY=VALUE lines), or give a default: ${SLIP_SECRET:-value}
    "#]]
    .assert_eq(&text);
}

// Defaults and values of every key (SPEC §3.2, §4.2).

#[test]
fn every_daemon_default() {
    let loaded = load(None, &[]);
    assert!(loaded.warnings.is_empty());
    let empty_tables = "[server]\n[runtime]\n[auth]\n[registry]\n[caddy]\n[storage]\n[secrets]\n[preview]\n[log]\n";
    let with_empty_tables = load(Some(empty_tables), &[]);
    assert_eq!(format!("{:#?}", with_empty_tables.config), format!("{:#?}", loaded.config), "empty = missing");
    expect![[r#"
        Config {
            server: Server {
                listen: Addr(
                    127.0.0.1:7890,
                ),
                public_domain: None,
                public_api: Ci,
                trusted_proxies: [
                    127.0.0.1/32,
                    ::1/128,
                ],
                shutdown_timeout: 60s,
            },
            runtime: Runtime {
                backend: Auto,
                socket: None,
                port_range: 20000..=29999,
                min_free_disk: 2147483648,
                max_concurrent_deploys: 4,
                log_max_size: 10485760,
                log_max_files: 3,
            },
            auth: Auth {
                secret: None,
                admin_token: None,
                metrics_token: None,
                require_timestamp: false,
                max_skew: 300s,
                max_failures: 20,
                failure_window: 600s,
                public_status: false,
                public_metrics: false,
            },
            registry: Registry {
                ghcr_token: None,
                ghcr_username: "slip",
                auth: [],
            },
            caddy: Caddy {
                admin_api: "http://localhost:2019",
                server: None,
                listen: [
                    ":443",
                    ":80",
                ],
                tls: Tls {
                    mode: Acme,
                    email: None,
                    staging: false,
                    dns_provider: None,
                    dns_provider_config: {},
                    propagation_delay: 120s,
                },
                stream_close_delay: None,
                reconcile_interval: 10s,
            },
            storage: Storage {
                path: "/var/lib/slip",
                volume_roots: [
                    "/var/lib/slip/volumes",
                ],
                history_retention: 15552000s,
            },
            secrets: Secrets {
                key_file: None,
            },
            preview: Preview {
                domain: None,
                max_per_app: 10,
                max_total: 30,
                default_ttl: 604800s,
                max_ttl: 2592000s,
                max_memory: None,
                max_nano_cpus: None,
                tls: PerHost,
            },
            log: Log {
                level: "info",
                format: Json,
            },
            notifications: [],
            apps: {},
        }"#]]
    .assert_eq(&format!("{:#?}", loaded.config));
}

#[test]
fn every_daemon_key_set() {
    let text = r#"
[server]
listen = "[::1]:7000"
public_domain = "Deploy.Example.com"
public_api = "all"
trusted_proxies = ["10.0.0.0/8", "192.168.1.7", "fd00::/8"]
shutdown_timeout = "2m"

[runtime]
backend = "podman"
socket = "unix:///run/user/1000/podman/podman.sock"
port_range = "40000-40999"
min_free_disk = "1.5g"
max_concurrent_deploys = 2
log_max_size = "5m"
log_max_files = 7

[auth]
secret = "${SLIP_SECRET}"
admin_token = "literal-admin-token-0123456789abcdef"
metrics_token = "${DB_PASSWORD}"
require_timestamp = true
max_skew = "30s"
max_failures = 3
failure_window = "1h"
public_status = true
public_metrics = "${ENABLED}"

[registry]
ghcr_token = "${DB_PASSWORD}"
ghcr_username = "octocat"
[[registry.auth]]
host = "Registry.Example.com:5000"
username = "ci"
password = "${DB_PASSWORD}"

[caddy]
admin_api = "unix//run/caddy/admin.sock"
server = "srv0"
listen = [":8443", "127.0.0.1:8080"]
stream_close_delay = "5m"
reconcile_interval = "3s"
[caddy.tls]
mode = "acme"
email = "ops@example.com"
staging = true
dns_provider = "cloudflare"
dns_provider_config = { api_token = "{env.CF_API_TOKEN}", zone = "${HOST}", ttl = 120, nested = { on = true } }
propagation_delay = "90s"

[storage]
path = "/srv/slip"
volume_roots = ["/srv/data", "/mnt/disk//x/./y"]
history_retention = "90d"

[secrets]
key_file = "/etc/slip/master.key"

[preview]
domain = "preview.example.com"
max_per_app = 3
max_total = 12
default_ttl = "2d"
max_ttl = "10d"
max_memory = "256m"
max_cpus = 0.5
tls = "wildcard"

[log]
level = "info,slip_engine=debug"
format = "text"
"#;
    let loaded = load(Some(text), &[]);
    let dump = format!("{:#?}", loaded.config);
    assert!(!dump.contains(SECRET_VALUE) && !dump.contains("resolved-db-password"), "{dump}");
    expect![[r#"
        Config {
            server: Server {
                listen: Addr(
                    [::1]:7000,
                ),
                public_domain: Some(
                    "deploy.example.com",
                ),
                public_api: All,
                trusted_proxies: [
                    10.0.0.0/8,
                    192.168.1.7/32,
                    fd00::/8,
                ],
                shutdown_timeout: 120s,
            },
            runtime: Runtime {
                backend: Podman,
                socket: Some(
                    "unix:///run/user/1000/podman/podman.sock",
                ),
                port_range: 40000..=40999,
                min_free_disk: 1610612736,
                max_concurrent_deploys: 2,
                log_max_size: 5242880,
                log_max_files: 7,
            },
            auth: Auth {
                secret: Some(
                    ***,
                ),
                admin_token: Some(
                    ***,
                ),
                metrics_token: Some(
                    ***,
                ),
                require_timestamp: true,
                max_skew: 30s,
                max_failures: 3,
                failure_window: 3600s,
                public_status: true,
                public_metrics: true,
            },
            registry: Registry {
                ghcr_token: Some(
                    ***,
                ),
                ghcr_username: "octocat",
                auth: [
                    RegistryAuth {
                        host: "registry.example.com:5000",
                        username: "ci",
                        password: ***,
                    },
                ],
            },
            caddy: Caddy {
                admin_api: "unix//run/caddy/admin.sock",
                server: Some(
                    "srv0",
                ),
                listen: [
                    ":8443",
                    "127.0.0.1:8080",
                ],
                tls: Tls {
                    mode: Acme,
                    email: Some(
                        "ops@example.com",
                    ),
                    staging: true,
                    dns_provider: Some(
                        "cloudflare",
                    ),
                    dns_provider_config: {
                        "api_token": String(
                            ***,
                        ),
                        "nested": Table(
                            {
                                "on": Bool(
                                    true,
                                ),
                            },
                        ),
                        "ttl": Integer(
                            120,
                        ),
                        "zone": String(
                            ***,
                        ),
                    },
                    propagation_delay: 90s,
                },
                stream_close_delay: Some(
                    300s,
                ),
                reconcile_interval: 3s,
            },
            storage: Storage {
                path: "/srv/slip",
                volume_roots: [
                    "/srv/data",
                    "/mnt/disk/x/y",
                ],
                history_retention: 7776000s,
            },
            secrets: Secrets {
                key_file: Some(
                    "/etc/slip/master.key",
                ),
            },
            preview: Preview {
                domain: Some(
                    "preview.example.com",
                ),
                max_per_app: 3,
                max_total: 12,
                default_ttl: 172800s,
                max_ttl: 864000s,
                max_memory: Some(
                    268435456,
                ),
                max_nano_cpus: Some(
                    500000000,
                ),
                tls: Wildcard,
            },
            log: Log {
                level: "info,slip_engine=debug",
                format: Text,
            },
            notifications: [],
            apps: {},
        }"#]]
    .assert_eq(&dump);
}

#[test]
fn every_app_default() {
    let config = app(MINIMAL_APP);
    assert_eq!((config.kind(), config.strategy()), (Kind::Worker, Strategy::Recreate));
    expect![[r#"
        AppConfig {
            name: AppName(
                "myapp",
            ),
            image: ImageRepo {
                host: "ghcr.io",
                path: "you/myapp",
            },
            kind: None,
            secret: None,
            allowed_images: [],
            manifest: None,
            init: false,
            allow_privileged: false,
            routes: [],
            hold_timeout: 30s,
            health: Health {
                path: None,
                port: None,
                host: None,
                interval: None,
                timeout: None,
                retries: None,
                start_period: None,
                stable_for: None,
                container: None,
            },
            health_containers: {},
            deploy: DeployCfg {
                strategy: None,
                allow_overlap: false,
                drain_timeout: 30s,
                stop_grace: 10s,
                timeout: 600s,
                watch: 0ns,
                keep_images: 3,
                queue_ttl: 3600s,
            },
            env: {},
            env_file: None,
            resources: Resources {
                memory: None,
                nano_cpus: None,
                pids: None,
            },
            network: "slip",
            volumes: [],
            containers: {},
            preview: AppPreview {
                enabled: true,
                domain: None,
                max: None,
                default_ttl: None,
                inherit_secrets: false,
            },
            notifications: [],
            github: None,
        }"#]]
    .assert_eq(&format!("{config:#?}"));
}

#[test]
fn every_app_key_set() {
    let text = r#"
[app]
name = "myapp"
image = "nginx"
kind = "pod"
secret = "${MYAPP_SECRET}"
allowed_images = ["ghcr.io/you/*", "redis"]
manifest = "/slip/pod.yaml"
init = true
allow_privileged = "${ENABLED}"

[routing]
domain = "MyApp.example.com"
port = "${PORT}"
container = "web"
hold_timeout = "1m"

[[routing.routes]]
hostname = "*.api.example.com"

[[routing.routes]]
hostname = "api.example.com"
port = 8081
container = "admin"
path_prefix = "/admin"
strip_prefix = true

[health]
path = "/up?full=1"
port = 8080
host = "probe.example.com"
interval = "1s"
timeout = "2s"
retries = 3
start_period = "0s"
stable_for = "7s"
container = "web"

[health.containers.worker]
stable_for = "20s"

[health.containers.admin]
path = "/ready"
port = 8081

[deploy]
strategy = "blue-green"
allow_overlap = true
drain_timeout = "${DRAIN}"
stop_grace = "3s"
timeout = "20m"
watch = "2m"
keep_images = 5
queue_ttl = "30m"

[env]
DATABASE_URL = "postgres://app:${DB_PASSWORD}@db/app"
LITERAL = "$${NOT_A_VAR} and $HOME"

[env_file]
path = "/etc/slip/env/myapp.env"

[resources]
memory = "1.5g"
cpus = 0.25
pids = 200

[network]
name = "backend"

[[volumes]]
host_path = "/var/lib/slip/volumes/myapp/data"
mount_path = "/data"
owner = "1000:1000"
containers = ["web"]
preview = "readonly"

[[volumes]]
host_path = "/var/lib/slip/volumes/myapp/static"
mount_path = "/static"
read_only = true
preview = "none"

[containers.cache]
image = "redis:7.2"
env = { MAXMEMORY = "64mb" }
secrets = ["REDIS_PASSWORD"]

[preview]
enabled = false
domain = "pr.example.com"
max = 4
default_ttl = "1d"
inherit_secrets = true
"#;
    let config = app(text);
    let dump = format!("{config:#?}");
    assert!(!dump.contains("resolved-"), "{dump}");
    assert_eq!(config.env["DATABASE_URL"], "postgres://app:resolved-db-password@db/app");
    assert_eq!(config.env["LITERAL"], "${NOT_A_VAR} and $HOME");
    assert_eq!(config.secret.as_ref().unwrap().expose(), "resolved-myapp-key-0123456789abcdef");
    assert_eq!((config.kind(), config.strategy()), (Kind::Pod, Strategy::BlueGreen));
    expect![[r#"
        AppConfig {
            name: AppName(
                "myapp",
            ),
            image: ImageRepo {
                host: "docker.io",
                path: "library/nginx",
            },
            kind: Some(
                Pod,
            ),
            secret: Some(
                ***,
            ),
            allowed_images: [
                ImagePattern(
                    "ghcr.io/you/*",
                ),
                ImagePattern(
                    "docker.io/library/redis",
                ),
            ],
            manifest: Some(
                "/slip/pod.yaml",
            ),
            init: true,
            allow_privileged: true,
            routes: [
                Route {
                    hostname: "myapp.example.com",
                    port: Some(
                        9090,
                    ),
                    container: Some(
                        "web",
                    ),
                    path_prefix: "/",
                    strip_prefix: false,
                },
                Route {
                    hostname: "*.api.example.com",
                    port: Some(
                        9090,
                    ),
                    container: Some(
                        "web",
                    ),
                    path_prefix: "/",
                    strip_prefix: false,
                },
                Route {
                    hostname: "api.example.com",
                    port: Some(
                        8081,
                    ),
                    container: Some(
                        "admin",
                    ),
                    path_prefix: "/admin",
                    strip_prefix: true,
                },
            ],
            hold_timeout: 60s,
            health: Health {
                path: Some(
                    "/up?full=1",
                ),
                port: Some(
                    8080,
                ),
                host: Some(
                    "probe.example.com",
                ),
                interval: Some(
                    1s,
                ),
                timeout: Some(
                    2s,
                ),
                retries: Some(
                    3,
                ),
                start_period: Some(
                    0ns,
                ),
                stable_for: Some(
                    7s,
                ),
                container: Some(
                    "web",
                ),
            },
            health_containers: {
                "admin": Health {
                    path: Some(
                        "/ready",
                    ),
                    port: Some(
                        8081,
                    ),
                    host: None,
                    interval: None,
                    timeout: None,
                    retries: None,
                    start_period: None,
                    stable_for: None,
                    container: None,
                },
                "worker": Health {
                    path: None,
                    port: None,
                    host: None,
                    interval: None,
                    timeout: None,
                    retries: None,
                    start_period: None,
                    stable_for: Some(
                        20s,
                    ),
                    container: None,
                },
            },
            deploy: DeployCfg {
                strategy: Some(
                    BlueGreen,
                ),
                allow_overlap: true,
                drain_timeout: 45s,
                stop_grace: 3s,
                timeout: 1200s,
                watch: 120s,
                keep_images: 5,
                queue_ttl: 1800s,
            },
            env: {
                "DATABASE_URL": "…",
                "LITERAL": "…",
            },
            env_file: Some(
                "/etc/slip/env/myapp.env",
            ),
            resources: Resources {
                memory: Some(
                    1610612736,
                ),
                nano_cpus: Some(
                    250000000,
                ),
                pids: Some(
                    200,
                ),
            },
            network: "backend",
            volumes: [
                Volume {
                    host_path: "/var/lib/slip/volumes/myapp/data",
                    mount_path: "/data",
                    read_only: false,
                    containers: Some(
                        [
                            "web",
                        ],
                    ),
                    owner: Some(
                        Owner {
                            uid: 1000,
                            gid: 1000,
                        },
                    ),
                    preview: Readonly,
                },
                Volume {
                    host_path: "/var/lib/slip/volumes/myapp/static",
                    mount_path: "/static",
                    read_only: true,
                    containers: None,
                    owner: None,
                    preview: None,
                },
            ],
            containers: {
                "cache": ContainerOverride {
                    image: Some(
                        PinnedImage {
                            repo: ImageRepo {
                                host: "docker.io",
                                path: "library/redis",
                            },
                            tag: Named(
                                "7.2",
                            ),
                        },
                    ),
                    env: {
                        "MAXMEMORY": "…",
                    },
                    secrets: Some(
                        [
                            "REDIS_PASSWORD",
                        ],
                    ),
                },
            },
            preview: AppPreview {
                enabled: false,
                domain: Some(
                    "pr.example.com",
                ),
                max: Some(
                    4,
                ),
                default_ttl: Some(
                    86400s,
                ),
                inherit_secrets: true,
            },
            notifications: [],
            github: None,
        }"#]]
    .assert_eq(&dump);
}

#[test]
fn bad_daemon_values_are_all_reported() {
    let text = r#"
[server]
listen = "0.0.0.0"
public_domain = "https://deploy.example.com"
public_api = "everything"
trusted_proxies = ["10.0.0.0/33", 7]
shutdown_timeout = 60

[runtime]
backend = "dokcer"
socket = "tcp://1.2.3.4:2375"
port_range = "30000-20000"
min_free_disk = "2 GB"
max_concurrent_deploys = 0
log_max_size = "0"
log_max_files = "3"

[auth]
secret = 12345
require_timestamp = "yes"
max_skew = "0s"
max_failures = -1
failure_window = "10 minutes"
public_status = 1

[registry]
ghcr_username = ["x"]
[[registry.auth]]
host = "https://ghcr.io"
username = "u"
password = "p"
[[registry.auth]]
host = "docker.io"
username = "u"
[[registry.auth]]
host = "Docker.io"
username = "u"
password = "p"

[caddy]
admin_api = "localhost:2019"
server = "my server"
listen = []
tls = "letsencrypt"
stream_close_delay = "5"
reconcile_interval = "0ms"

[storage]
path = "var/lib/slip"
volume_roots = ["/srv/../etc"]
history_retention = "forever"

[secrets]
key_file = "master.key"

[preview]
domain = "*.preview.example.com"
max_per_app = 0
default_ttl = "60d"
max_memory = "1m"
max_cpus = "0"

[log]
level = "loud"
format = "xml"
"#;
    check_problems(
        Some(text),
        &[],
        expect![[r#"
            slip.toml:3:10: server.listen: "0.0.0.0" is not IP:port or localhost:port, e.g. 127.0.0.1:7890 or [::1]:7890
            slip.toml:4:17: server.public_domain: "https://deploy.example.com" is not a hostname: use a DNS name such as app.example.com, without scheme, port or path
            slip.toml:5:14: server.public_api: "everything" is not one of "ci", "all"
            slip.toml:6:20: server.trusted_proxies[0]: "10.0.0.0/33" is not a CIDR block or an IP address, e.g. 10.0.0.0/8 or 127.0.0.1
            slip.toml:6:35: server.trusted_proxies[1]: expected a string, found an integer
            slip.toml:7:20: server.shutdown_timeout: a duration needs a unit and quotes, found the integer 60
              hint: write shutdown_timeout = "60s" (units: ms, s, m, h, d)
            slip.toml:10:11: runtime.backend: "dokcer" is not one of "auto", "docker", "podman" (did you mean "docker"?)
            slip.toml:11:10: runtime.socket: "tcp://1.2.3.4:2375" is not a unix socket: use unix:///path/to/engine.sock or an absolute path
            slip.toml:12:14: runtime.port_range: "30000-20000" is empty: the low port must not be above the high one
            slip.toml:13:17: runtime.min_free_disk: "2 GB" is not a size: write a number with an optional k, m, g or t suffix and no spaces, e.g. 512m or 1.5g
            slip.toml:14:26: runtime.max_concurrent_deploys: 0 is out of range: use an integer from 1 to 1024
            slip.toml:15:16: runtime.log_max_size: "0" must be greater than 0
            slip.toml:16:17: runtime.log_max_files: expected an integer, found a string
              hint: remove the quotes: log_max_files = 3
            slip.toml:19:10: auth.secret: expected a string, found an integer
              hint: put the value in quotes: secret = "…"
            slip.toml:20:21: auth.require_timestamp: expected a boolean (true or false), found a string
            slip.toml:21:12: auth.max_skew: "0s" must be greater than 0s
            slip.toml:22:16: auth.max_failures: -1 is out of range: use an integer from 1 to 4294967295
            slip.toml:23:18: auth.failure_window: "10 minutes" is not a duration: write <number><unit> pairs with no spaces or signs, e.g. 30s, 1.5s or 1m30s
            slip.toml:24:17: auth.public_status: expected a boolean (true or false), found an integer
            slip.toml:27:17: registry.ghcr_username: expected a string, found an array
            slip.toml:29:8: registry.auth[0].host: "https://ghcr.io" is not a registry host: use host or host:port, e.g. ghcr.io or 127.0.0.1:5000
            slip.toml:32:1: missing registry.auth[1].password in [[registry.auth]]
              hint: [[registry.auth]] needs host, username and password
            slip.toml:36:8: registry.auth[2].host: "Docker.io" is listed twice in [[registry.auth]]
              hint: keep one entry per host
            slip.toml:41:13: caddy.admin_api: "localhost:2019" is not an admin address: use http://host:port or unix//path/to/admin.sock
            slip.toml:42:10: caddy.server: "my server" is not a server name: use letters, digits, '_', '-' and '.'
            slip.toml:43:10: caddy.listen: must list at least one address, e.g. [":443", ":80"]
            slip.toml:44:7: caddy.tls: "letsencrypt" is not one of "acme", "internal", "off"
            slip.toml:45:22: caddy.stream_close_delay: "5" is not a duration: add a unit, e.g. 30s
            slip.toml:46:22: caddy.reconcile_interval: "0ms" must be greater than 0s
            slip.toml:49:8: storage.path: "var/lib/slip" is not an absolute path
            slip.toml:50:17: storage.volume_roots[0]: "/srv/../etc" contains a ".." segment; write the path without it
            slip.toml:51:21: storage.history_retention: "forever" is not a duration: write <number><unit> pairs with no spaces or signs, e.g. 30s, 1.5s or 1m30s
            slip.toml:54:12: secrets.key_file: "master.key" is not an absolute path
            slip.toml:57:10: preview.domain: "*.preview.example.com" is not a hostname: use a DNS name such as app.example.com, without scheme, port or path
            slip.toml:58:15: preview.max_per_app: 0 is out of range: use an integer from 1 to 4294967295
            slip.toml:59:15: preview.default_ttl: "60d" is longer than preview.max_ttl (the default 30d)
            slip.toml:60:14: preview.max_memory: "1m" is below the minimum of 6m that container engines accept
            slip.toml:61:12: preview.max_cpus: "0" is not a decimal number greater than 0 (at most 9 decimals), e.g. "1.5"
            slip.toml:64:9: log.level: "loud" is not a log level
              hint: use trace, debug, info, warn or error, optionally with target=level directives: "info,slip_engine=debug"
            slip.toml:65:10: log.format: "xml" is not one of "json", "text"
        "#]],
    );
}

#[test]
fn bad_app_values_are_all_reported() {
    let text = r#"
[app]
name = "myapp"
image = "ghcr.io/you/myapp:v1"
kind = "container"
allowed_images = ["ghcr.io/you/x@sha256:00"]
manifest = "slip/pod.yaml"
init = "true"

[routing]
domain = "myapp.example.com:443"
port = 70000
container = "Web"
hold_timeout = "30"

[[routing.routes]]
path_prefix = "api/"
strip_prefix = true

[[routing.routes]]
hostname = "myapp.example.com"

[health]
path = "health"
retries = 0
interval = "0s"
timeout = "fast"

[health.containers.Bad_Name]
path = "/"

[health.containers.sidecar]
paht = "/"

[deploy]
strategy = "blue_green"
keep_images = 1
watch = "-1s"

[env]
SLIP_TAG = "mine"
GOOD = "yes"
PORT = 8080

[env_file]
path = "./myapp.env"

[resources]
memory = "4m"
cpus = "0"
pids = 0

[network]
name = "host"

[[volumes]]
host_path = "/etc/passwd-dir"
mount_path = "data"

[[volumes]]
host_path = "/var/lib/slip/volumes/../../../etc"
mount_path = "/"

[[volumes]]
mount_path = "/x"
owner = "root:root"
preview = "copy"

[containers.cache]
image = "redis"
secrets = ["1BAD"]

[preview]
default_ttl = "60d"
max = 0
"#;
    check_problems(
        None,
        &[("myapp", text)],
        expect![[r#"
            apps/myapp.toml:4:9: app.image: "ghcr.io/you/myapp:v1" is not an image repository: use a repository such as ghcr.io/you/myapp, without a tag or digest (the tag comes from the webhook)
            apps/myapp.toml:5:8: app.kind: "container" is not one of "web", "worker", "pod"
            apps/myapp.toml:6:19: app.allowed_images[0]: "ghcr.io/you/x@sha256:00" is not a repository pattern: write a repository without tag or digest, where * matches within one path segment
              hint: e.g. ghcr.io/you/* or redis
            apps/myapp.toml:7:12: app.manifest: "slip/pod.yaml" is not an absolute path inside the image, e.g. /slip/pod.yaml
            apps/myapp.toml:8:8: app.init: expected a boolean (true or false), found a string
              hint: remove the quotes: init = true
            apps/myapp.toml:11:10: routing.domain: "myapp.example.com:443" is not a hostname: use a DNS name such as app.example.com (a leading *. is allowed), without scheme, port or path
            apps/myapp.toml:12:8: routing.port: 70000 is out of range: use an integer from 1 to 65535
            apps/myapp.toml:13:13: routing.container: "Web" is not a container name: use lowercase letters, digits and '-' (a DNS label)
            apps/myapp.toml:14:16: routing.hold_timeout: "30" is not a duration: add a unit, e.g. 30s
            apps/myapp.toml:16:1: missing routing.routes[0].hostname in [[routing.routes]]
            apps/myapp.toml:17:15: routing.routes[0].path_prefix: "api/" must start with /
            apps/myapp.toml:18:16: routing.routes[0]: strip_prefix needs a path_prefix other than "/"
              hint: set path_prefix, e.g. "/api", or remove strip_prefix
            apps/myapp.toml:24:8: health.path: "health" must start with /
            apps/myapp.toml:25:11: health.retries: 0 is out of range: use an integer from 1 to 1000
            apps/myapp.toml:26:12: health.interval: "0s" must be greater than 0s
            apps/myapp.toml:27:11: health.timeout: "fast" is not a duration: write <number><unit> pairs with no spaces or signs, e.g. 30s, 1.5s or 1m30s
            apps/myapp.toml:29:20: health.containers: "Bad_Name" is not a container name
              hint: container names are DNS labels: lowercase letters, digits and '-'
            apps/myapp.toml:33:1: unknown key "paht" in [health.containers.sidecar] (did you mean "path"?)
            apps/myapp.toml:36:12: deploy.strategy: "blue_green" is not one of "blue-green", "recreate" (did you mean "blue-green"?)
            apps/myapp.toml:37:15: deploy.keep_images: 1 is out of range: use an integer from 2 to 1000
            apps/myapp.toml:38:9: deploy.watch: "-1s" is not a duration: write <number><unit> pairs with no spaces or signs, e.g. 30s, 1.5s or 1m30s
            apps/myapp.toml:41:1: env.SLIP_TAG: keys starting with SLIP_ are reserved for slip
              hint: slip sets SLIP_APP, SLIP_TAG, SLIP_DEPLOY_ID and SLIP_KIND itself; rename the variable
            apps/myapp.toml:43:8: env.PORT: expected a string, found an integer
              hint: put the value in quotes: PORT = "…"
            apps/myapp.toml:46:8: env_file.path: "./myapp.env" is not an absolute path
            apps/myapp.toml:49:10: resources.memory: "4m" is below the minimum of 6m that container engines accept
            apps/myapp.toml:50:8: resources.cpus: "0" is not a decimal number greater than 0 (at most 9 decimals), e.g. "1.5"
            apps/myapp.toml:51:8: resources.pids: 0 is out of range: use an integer at least 1
            apps/myapp.toml:54:8: network.name: "host" is not allowed: slip only attaches apps to their own networks
              hint: use a bridge network such as "slip" (the default); slip creates it when missing
            apps/myapp.toml:57:13: volumes[0].host_path: "/etc/passwd-dir" is not under storage.volume_roots
              hint: put it under /var/lib/slip/volumes (the default volume root) or set storage.volume_roots
            apps/myapp.toml:58:14: volumes[0].mount_path: "data" is not an absolute path
            apps/myapp.toml:61:13: volumes[1].host_path: "/var/lib/slip/volumes/../../../etc" contains a ".." segment; write the path without it
            apps/myapp.toml:62:14: volumes[1].mount_path: "/" cannot be the container's root directory
            apps/myapp.toml:64:1: missing volumes[2].host_path in [[volumes]]
            apps/myapp.toml:66:9: volumes[2].owner: "root:root" is not "uid:gid" with numeric ids, e.g. "1000:1000"
            apps/myapp.toml:67:11: volumes[2].preview: "copy" is not one of "isolated", "readonly", "none"
            apps/myapp.toml:70:9: containers.cache.image: "redis" has no tag: pin one, e.g. redis:7.2
            apps/myapp.toml:71:12: containers.cache.secrets[0]: "1BAD" is not a secret key: use letters, digits and '_', not starting with a digit
            apps/myapp.toml:74:15: preview.default_ttl: "60d" is longer than the server's preview.max_ttl (default 30d)
              hint: lower it, or raise preview.max_ttl in slip.toml
            apps/myapp.toml:75:7: preview.max: 0 is out of range: use an integer from 1 to 4294967295
        "#]],
    );
}

#[test]
fn unknown_tables_and_keys_get_suggestions() {
    let slip_toml = r#"
[server]
lissen = "127.0.0.1:7890"

[[apps]]
name = "myapp"

[caddy.tls]
mode = "acme"
emial = "ops@example.com"

[logs]
level = "info"

stray = 1
"#;
    let myapp = r#"
name = "myapp"
[app]
name = "myapp"
image = "ghcr.io/you/myapp"
[deploy]
drain_timout = "30s"
[[routing.routes]]
hostname = "a.example.com"
pathprefix = "/x"
[heath]
path = "/"
[volumes]
host_path = "/var/lib/slip/volumes/x"
"#;
    check_problems(
        Some(slip_toml),
        &[("myapp", myapp)],
        expect![[r#"
        apps/myapp.toml:2:1: unknown key "name" at the top level
          hint: name belongs in the [app] table
        apps/myapp.toml:7:1: unknown key "drain_timout" in [deploy] (did you mean "drain_timeout"?)
        apps/myapp.toml:10:1: unknown key "pathprefix" in [[routing.routes]] (did you mean "path_prefix"?)
        apps/myapp.toml:11:1: unknown table [heath] (did you mean [health]?)
        apps/myapp.toml:13:1: volumes: expected an array of tables, found a table
        slip.toml:3:1: unknown key "lissen" in [server] (did you mean "listen"?)
        slip.toml:5:1: unknown table [[apps]]
          hint: each app is its own file: apps/<name>.toml with an [app] table
        slip.toml:10:1: unknown key "emial" in [caddy.tls] (did you mean "email"?)
        slip.toml:12:1: unknown table [logs] (did you mean [log]?)
    "#]],
    );
}

#[test]
fn one_run_reports_every_kind_of_problem_sorted_by_file_and_line() {
    // An unknown key, a bad duration, an unset variable and a mismatched file name, across three files.
    let slip_toml = "[server]\nshutdown_timeout = \"60\"\n[auth]\nadmin_token = \"${ADMIN_TOKEN}\"\n";
    let a = "[app]\nname = \"a\"\nimage = \"ghcr.io/you/a\"\n[deploy]\ndrain_timout = \"30s\"\n";
    let b = "[app]\nname = \"bee\"\nimage = \"ghcr.io/you/b\"\n";
    check_problems(
        Some(slip_toml),
        &[("b", b), ("a", a)],
        expect![[r#"
        apps/a.toml:5:1: unknown key "drain_timout" in [deploy] (did you mean "drain_timeout"?)
        apps/b.toml:2:8: app.name "bee" does not match the file name apps/b.toml
          hint: rename the file to apps/bee.toml, or set name = "b"
        slip.toml:2:20: server.shutdown_timeout: "60" is not a duration: add a unit, e.g. 30s
        slip.toml:4:15: auth.admin_token: variable ADMIN_TOKEN is not set
          hint: set ADMIN_TOKEN in slipd's environment or in slip.env beside slip.toml (KEY=VALUE lines), or give a default: ${ADMIN_TOKEN:-value}
    "#]],
    );
}

#[test]
fn unset_secret_names_the_variable_and_no_value_is_ever_printed() {
    let mut s = sources(
        Some(
            "[auth]\nsecret = \"${SLIP_SECRET}\"\nadmin_token = \"${ADMIN_TOKEN}\"\nmax_skew = \"${SLIP_SECRET}\"\n\
             [caddy]\nserver = \"${SLIP_SECRET}\"\n[preview]\ndomain = \"${SLIP_SECRET}\"\n",
        ),
        &[(
            "myapp",
            "[app]\nname = \"myapp\"\nimage = \"ghcr.io/you/myapp\"\nsecret = \"${MYAPP_KEY}\"\n\
             [deploy]\nstrategy = \"${SLIP_SECRET}\"\n[env]\nTOKEN = \"${SLIP_SECRET}\"\n",
        )],
    );
    s.env.insert("ADMIN_TOKEN".into(), "x".repeat(40));
    let problems = parse(&s).unwrap_err();
    let text = render(&problems);
    assert!(!text.contains(SECRET_VALUE), "{text}");
    expect![[r#"
        apps/myapp.toml:4:10: app.secret: variable MYAPP_KEY is not set
          hint: set MYAPP_KEY in slipd's environment or in slip.env beside slip.toml (KEY=VALUE lines), or give a default: ${MYAPP_KEY:-value}
        apps/myapp.toml:6:12: deploy.strategy: "${SLIP_SECRET}" (after interpolation) is not one of "blue-green", "recreate"
        slip.toml:4:12: auth.max_skew: "${SLIP_SECRET}" (after interpolation) is not a duration: write <number><unit> pairs with no spaces or signs, e.g. 30s, 1.5s or 1m30s
    "#]]
    .assert_eq(&text);

    // A valid config with secrets everywhere: Debug shows none of them.
    let loaded = load(
        Some(
            "[auth]\nsecret = \"${SLIP_SECRET}\"\nadmin_token = \"${SLIP_SECRET}x\"\n[registry]\nghcr_token = \"${SLIP_SECRET}\"\n",
        ),
        &[(
            "myapp",
            "[app]\nname = \"myapp\"\nimage = \"ghcr.io/you/myapp\"\nsecret = \"${SLIP_SECRET}\"\n[env]\nT = \"${SLIP_SECRET}\"\n",
        )],
    );
    let dump = format!("{loaded:?} {:?}", sources(None, &[]));
    assert!(!dump.contains(SECRET_VALUE), "{dump}");
}

#[test]
fn interpolation_reaches_arrays_inline_tables_numbers_and_booleans() {
    let slip_toml = r#"
[server]
trusted_proxies = ["${PROXY:-10.1.0.0/16}"]
[runtime]
max_concurrent_deploys = "${WORKERS:-6}"
[auth]
require_timestamp = "${ENABLED}"
"#;
    let myapp = r#"
[app]
name = "myapp"
image = "ghcr.io/you/${IMAGE_NAME:-myapp}"
[routing]
domain = "${HOST}"
port = "${PORT}"
[[routing.routes]]
hostname = "${HOST}"
path_prefix = "/${PREFIX:-api}"
[containers.sidecar]
env = { A = "${EMPTY:-fallback}", B = "$${literal}" }
"#;
    let loaded = load(Some(slip_toml), &[("myapp", myapp)]);
    let c = &loaded.config;
    assert_eq!(c.server.trusted_proxies, ["10.1.0.0/16".parse().unwrap()]);
    assert_eq!(c.runtime.max_concurrent_deploys, 6);
    assert!(c.auth.require_timestamp);
    let a = &c.apps[&"myapp".parse().unwrap()];
    assert_eq!(a.image.to_string(), "ghcr.io/you/myapp");
    assert_eq!(a.routes[0].hostname, "from-env.example.com");
    assert_eq!(a.routes[0].port, Some(9090));
    assert_eq!((a.routes[1].port, a.routes[1].path_prefix.as_str()), (Some(9090), "/api"));
    assert_eq!(a.containers["sidecar"].env["A"], "fallback");
    assert_eq!(a.containers["sidecar"].env["B"], "${literal}");

    check_problems(
        Some(
            "[runtime]\nmax_concurrent_deploys = \"${PORT}0\"\nlog_max_files = \"${HOST}\"\n[auth]\npublic_status = \"${PORT}\"\n",
        ),
        &[],
        expect![[r#"
            slip.toml:2:26: runtime.max_concurrent_deploys: expected an integer, found a string
              hint: where a number or boolean is expected, a string is interpolated only when it is exactly one ${VAR}
            slip.toml:3:17: runtime.log_max_files: "${HOST}" (after interpolation) is not an integer
            slip.toml:5:17: auth.public_status: "${PORT}" (after interpolation) is not a boolean: it must resolve to true or false
        "#]],
    );
}

#[test]
fn rules_across_apps_name_both_files() {
    let api = "[app]\nname = \"api\"\nimage = \"ghcr.io/you/api\"\n[routing]\ndomain = \"api.example.com\"\nport = 80\n\
               [[routing.routes]]\nhostname = \"x.example.com\"\n[[routing.routes]]\nhostname = \"y.example.com\"\n";
    let api2 =
        "[app]\nname = \"api-2\"\nimage = \"ghcr.io/you/api2\"\n[routing]\ndomain = \"z.example.com\"\nport = 80\n";
    let web = "[app]\nname = \"web\"\nimage = \"ghcr.io/you/web\"\n[routing]\ndomain = \"API.example.com\"\nport = 80\n\
               [[routing.routes]]\nhostname = \"api.example.com\"\npath_prefix = \"/web\"\n\
               [[routing.routes]]\nhostname = \"deploy.example.com\"\n";
    // An interpolated hostname is shown as written, never resolved.
    let literal = "[app]\nname = \"a-literal\"\nimage = \"x/y\"\n[routing]\ndomain = \"from-env.example.com\"\n";
    let from_env = "[app]\nname = \"b-env\"\nimage = \"x/y\"\n[routing]\ndomain = \"${HOST}\"\n";
    check_problems(
        Some("[server]\npublic_domain = \"deploy.example.com\"\n"),
        &[("web", web), ("api-2", api2), ("api", api), ("b-env", from_env), ("a-literal", literal)],
        expect![[r#"
            apps/api.toml:10:12: route 2 of app "api" gets the Caddy id "slip-api-2", which route 0 of app "api-2" already has (apps/api-2.toml:5)
              hint: rename one of the apps: Caddy ids are slip-<app> and slip-<app>-<n>
            apps/b-env.toml:5:10: routing: hostname "${HOST}" with path prefix "/" is already routed by app "a-literal" (apps/a-literal.toml:5)
              hint: two apps may share a hostname only with different path_prefix values
            apps/web.toml:5:10: routing: hostname api.example.com with path prefix "/" is already routed by app "api" (apps/api.toml:5)
              hint: two apps may share a hostname only with different path_prefix values
            apps/web.toml:11:12: routing: hostname deploy.example.com is server.public_domain (slip.toml:2), which routes to slipd itself
              hint: give the app another hostname
        "#]],
    );
}

#[test]
fn per_app_rules() {
    let roots = "[storage]\nvolume_roots = [\"/srv/volumes\"]\n[runtime]\nbackend = \"docker\"\n";
    let overlap = "[app]\nname = \"overlap\"\nimage = \"x/y\"\n[deploy]\nstrategy = \"blue-green\"\n\
                   [[volumes]]\nhost_path = \"/srv/volumes/a\"\nmount_path = \"/a\"\n";
    let pod = "[app]\nname = \"pod\"\nimage = \"x/y\"\nkind = \"pod\"\n";
    let worker =
        "[app]\nname = \"worker\"\nimage = \"x/y\"\nkind = \"worker\"\n[routing]\ndomain = \"w.example.com\"\n";
    let outside = "[app]\nname = \"outside\"\nimage = \"x/y\"\n[[volumes]]\nhost_path = \"/var/lib/slip/volumes/a\"\n\
                   mount_path = \"/a\"\n[[volumes]]\nhost_path = \"/srv/volumes/b\"\nmount_path = \"/a\"\n\
                   [network]\nname = \"container:db\"\n";
    check_problems(
        Some(roots),
        &[("overlap", overlap), ("pod", pod), ("worker", worker), ("outside", outside)],
        expect![[r#"
            apps/outside.toml:5:13: volumes[0].host_path: "/var/lib/slip/volumes/a" is not under storage.volume_roots
              hint: put it under a storage.volume_roots entry (slip.toml:2)
            apps/outside.toml:11:8: network.name: "container:db" is not allowed: slip only attaches apps to their own networks
              hint: use a bridge network such as "slip" (the default); slip creates it when missing
            apps/overlap.toml:5:12: deploy.strategy: "blue-green" with a writable volume runs two releases on the same data at once
              hint: use strategy = "recreate" (the default with writable volumes), mount the volume read_only, or set deploy.allow_overlap = true if the app copes with two writers
            apps/pod.toml:4:8: app.kind: "pod" needs the Podman backend, but runtime.backend is "docker"
              hint: pods need Podman: set runtime.backend = "podman" or "auto" (slip.toml:4)
            apps/worker.toml:4:8: app.kind: "worker" cannot have routes
              hint: remove the routes, or set kind = "web"
        "#]],
    );

    // The same overlap is fine when allowed, or with a read-only volume, or with the default strategy.
    let allowed = overlap.replace("[deploy]\n", "[deploy]\nallow_overlap = true\n");
    let read_only = overlap.replace("mount_path = \"/a\"\n", "mount_path = \"/a\"\nread_only = true\n");
    let implicit = overlap.replace("strategy = \"blue-green\"\n", "");
    for text in [allowed, read_only, implicit] {
        load(Some(roots), &[("overlap", &text)]);
    }
    let web = format!("{MINIMAL_APP}[routing]\ndomain = \"a.example.com\"\n");
    assert_eq!(app(&web).strategy(), Strategy::BlueGreen);
}

#[test]
fn file_level_problems() {
    check_problems(
        None,
        &[
            ("broken", "[app]\nname = \"broken\"\nimage = \n"),
            ("empty", ""),
            ("no-image", "[app]\nname = \"no-image\"\n"),
            ("Bad_Name", "[app]\nname = \"Bad_Name\"\nimage = \"x/y\"\n"),
            ("dup", "[app]\nname = \"dup\"\nname = \"dup\"\n"),
        ],
        expect![[r#"
            apps/Bad_Name.toml:2:8: app.name: "Bad_Name" is not an app name: use 1-63 lowercase letters, digits or '-', starting and ending with a letter or digit
            apps/broken.toml:3:9: invalid TOML: string values must be quoted, expected literal string
            apps/dup.toml:3:1: invalid TOML: duplicate key
            apps/empty.toml: missing the [app] table
              hint: start the file with [app], name = "empty" and image = "<repository>"
            apps/no-image.toml:1:1: missing app.image in [app]
              hint: image = "ghcr.io/you/myapp" (a repository, no tag)
        "#]],
    );
}

#[test]
fn a_broken_slip_toml_does_not_make_app_files_look_wrong() {
    let outside =
        "[app]\nname = \"myapp\"\nimage = \"x/y\"\n[[volumes]]\nhost_path = \"/srv/data/a\"\nmount_path = \"/a\"\n";
    check_problems(
        Some("[storage]\nvolume_roots = [\"/srv/data\"\n"),
        &[("myapp", outside)],
        expect![[r#"
            slip.toml:2:28: invalid TOML: unclosed array, expected `]`
        "#]],
    );
}

#[test]
fn tls_forms_and_mode_dependent_defaults() {
    let c = load(Some("[caddy]\ntls = \"off\"\n"), &[]).config;
    assert_eq!((c.caddy.tls.mode, c.caddy.listen.as_slice()), (TlsMode::Off, &[":80".to_owned()][..]));
    let c = load(Some("[caddy]\ntls = \"internal\"\n"), &[]).config;
    assert_eq!((c.caddy.tls.mode, c.caddy.listen.len()), (TlsMode::Internal, 2));
    let c = load(Some("[caddy]\ntls = { mode = \"off\" }\nlisten = [\":8080\"]\n"), &[]).config;
    assert_eq!((c.caddy.tls.mode, c.caddy.listen.as_slice()), (TlsMode::Off, &[":8080".to_owned()][..]));
    assert_eq!(c.preview.tls, PreviewTls::PerHost);
    let c = load(Some("[caddy.tls]\ndns_provider = \"route53\"\n"), &[]).config;
    assert_eq!(c.preview.tls, PreviewTls::Wildcard, "a DNS provider makes wildcard the default");
}

#[test]
fn registry_credentials_go_to_exactly_their_host() {
    let c = load(
        Some(
            "[registry]\nghcr_token = \"${DB_PASSWORD}\"\n[[registry.auth]]\nhost = \"docker.io\"\nusername = \"hub\"\n\
             password = \"hub-pass\"\n[[registry.auth]]\nhost = \"127.0.0.1:5000\"\nusername = \"local\"\npassword = \"p\"\n",
        ),
        &[],
    )
    .config;
    let who = |host: &str| c.registry.credentials_for(host).map(|(u, p)| format!("{u}:{}", p.expose()));
    assert_eq!(who("ghcr.io").as_deref(), Some("slip:resolved-db-password"));
    assert_eq!(who("docker.io").as_deref(), Some("hub:hub-pass"));
    assert_eq!(who("").as_deref(), Some("hub:hub-pass"), "no host means docker.io");
    assert_eq!(who("127.0.0.1:5000").as_deref(), Some("local:p"));
    assert_eq!(who("127.0.0.1:5001"), None, "the port is part of the host");
    assert_eq!(who("ghcr.io.evil.com"), None);
    assert_eq!(who("index.docker.io"), None, "exact host only");
    let repo: crate::names::ImageRepo = "nginx".parse().unwrap();
    assert_eq!(who(repo.host()).as_deref(), Some("hub:hub-pass"));
}

#[test]
fn warnings_for_valid_but_risky_settings() {
    check_warnings(
        Some(
            "[server]\nlisten = \"0.0.0.0:7890\"\n[auth]\nsecret = \"short\"\nadmin_token = \"short\"\n\
             [preview]\ndomain = \"preview.example.com\"\n",
        ),
        &[(
            "myapp",
            "[app]\nname = \"myapp\"\nimage = \"x/y\"\nsecret = \"also-short\"\nkind = \"web\"\n\
             [routing]\nport = 80\n[containers.x]\nimage = \"redis:7\"\n",
        )],
        expect![[r#"
            apps/myapp.toml:4:10: app.secret is shorter than 32 characters
              hint: `slip gen-secret` prints a 64-character random key
            apps/myapp.toml:7:8: routing.port is set but the app has no routes
              hint: set routing.domain, or use health.port for a worker's probe port
            apps/myapp.toml:8:2: [containers] only applies to pods; this app's kind is not pod
            slip.toml:2:10: server.listen is not a loopback address: tokens and keys would cross the network in clear text
              hint: listen on 127.0.0.1 and reach slipd over HTTPS through server.public_domain
            slip.toml:4:10: auth.secret is shorter than 32 characters
              hint: `slip gen-secret` prints a 64-character random key
            slip.toml:5:15: auth.admin_token equals auth.secret, so CI's webhook key can manage slipd
              hint: use a different value for auth.admin_token
            slip.toml:5:15: auth.admin_token is shorter than 32 characters
              hint: `slip gen-secret` prints a 64-character random key
            slip.toml:7:10: previews get one certificate per hostname; Let's Encrypt allows 50 certificates per registered domain per week
              hint: set caddy.tls.dns_provider for one wildcard certificate per preview domain
        "#]],
    );
}

#[test]
fn summaries() {
    let listen: Listen = "127.0.0.1:7890".parse().unwrap();
    assert_eq!(Summary { apps: 0, listen }.to_string(), "0 apps, listening on 127.0.0.1:7890");
    assert_eq!(Summary { apps: 1, listen }.to_string(), "1 app, listening on 127.0.0.1:7890");
    let localhost: Listen = "localhost:7890".parse().unwrap();
    assert_eq!(Summary { apps: 2, listen: localhost }.to_string(), "2 apps, listening on localhost:7890");
    assert!(localhost.is_loopback());
    assert_eq!("0.0.0.0:7890".parse::<Listen>().unwrap().dial(), "127.0.0.1:7890");
    assert_eq!("[::]:7890".parse::<Listen>().unwrap().dial(), "[::1]:7890");
}

#[test]
fn health_resolves_field_by_field() {
    let server = Health { path: Some("/up".into()), retries: Some(2), ..Health::default() };
    let repo = Health { path: Some("/repo".into()), interval: Some(Duration::from_secs(9)), ..Health::default() };
    let merged = server.or(&repo).resolve();
    assert_eq!(merged.path.as_deref(), Some("/up"));
    assert_eq!(merged.retries, 2);
    assert_eq!(merged.interval, Duration::from_secs(9));
    assert_eq!(merged.timeout, crate::defaults::HEALTH_TIMEOUT);
}

#[test]
fn env_values_with_control_characters_are_refused_by_key_without_the_value() {
    let text =
        "[app]\nname = \"web\"\nimage = \"ghcr.io/acme/web\"\n[env]\nGOOD = \"fine\"\nBAD = \"abc\\u0000defghij\"\n";
    let problems = parse(&sources(None, &[("web", text)])).expect_err("a control character is a problem");
    let shown = render(&problems);
    assert!(shown.contains("env.BAD") && shown.contains("U+0000"), "{shown}");
    assert!(!shown.contains("defghij"), "the value is never printed: {shown}");
}

#[test]
fn the_packaged_daemon_config_loads_and_requires_timestamps() {
    let loaded = load(Some(include_str!("../../../../packaging/slip.toml")), &[]);
    assert!(loaded.config.auth.require_timestamp, "new installs refuse untimestamped (replayable) webhooks");
    let warnings = render(&loaded.warnings);
    assert!(!warnings.contains("require_timestamp"), "{warnings}");
}

#[test]
fn a_wildcard_over_another_apps_name_and_ip_literals_are_refused() {
    let web = |name: &str, domain: &str| {
        format!(
            "[app]\nname = \"{name}\"\nimage = \"ghcr.io/acme/{name}\"\n[routing]\ndomain = \"{domain}\"\nport = 8080\n"
        )
    };
    check_problems(
        None,
        &[("star", &web("star", "*.example.com")), ("myapp", &web("myapp", "myapp.example.com"))],
        expect![[r#"
            apps/star.toml:5:10: routing: hostname *.example.com is already routed by app "myapp" (apps/myapp.toml:5): *.example.com and myapp.example.com overlap
              hint: a wildcard matches every name one label below it; give one of the apps another hostname
        "#]],
    );
    // One label below only, as Caddy matches: a deeper name and the bare domain do not overlap.
    load(
        None,
        &[
            ("star", &web("star", "*.example.com")),
            ("deep", &web("deep", "a.b.example.com")),
            ("bare", &web("bare", "example.com")),
        ],
    );
    check_problems(
        None,
        &[("vfour", &web("vfour", "127.0.0.1")), ("vsix", &web("vsix", "::1")), ("num", &web("num", "10.0.0.300"))],
        expect![[r#"
            apps/num.toml:5:10: routing.domain: "10.0.0.300" is an IP address, not a hostname: Caddy routes by name; use a DNS name such as app.example.com
            apps/vfour.toml:5:10: routing.domain: "127.0.0.1" is an IP address, not a hostname: Caddy routes by name; use a DNS name such as app.example.com
            apps/vsix.toml:5:10: routing.domain: "::1" is an IP address, not a hostname: Caddy routes by name; use a DNS name such as app.example.com
        "#]],
    );
}

/// Inputs on which toml_edit 0.23.10 panics, found by `scripts/fuzz.sh` (fuzz/ server_config, app_config,
/// repo_config): each is a problem, never a panic.
const TOML_PANICS: [&str; 3] = ["\n===.\n\n.=?", "==-_[\n=\n[.[=[\n", "==\r[.o"];

#[test]
fn toml_that_panics_the_parser_is_an_invalid_toml_problem() {
    for text in TOML_PANICS {
        let shown = render(&parse(&sources(Some(text), &[])).expect_err("slip.toml"));
        assert!(shown.contains("invalid TOML"), "{text:?}: {shown}");
        let shown = render(&parse(&sources(None, &[("myapp", text)])).expect_err("an app file"));
        assert!(shown.contains("invalid TOML"), "{text:?}: {shown}");
        let repo = crate::repo_config::read(
            &SourceFile { path: "slip/slip.toml".into(), text: text.to_owned() },
            UnknownKeys::Warning,
        );
        assert!(repo.problems.iter().any(|p| p.message.contains("invalid TOML")), "{text:?}");
    }
}
