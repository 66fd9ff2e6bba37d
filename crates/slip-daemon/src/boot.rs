//! Start-up, in SPEC §18's order: take the single-instance lock, open (and migrate) the store,
//! connect the engine and Caddy, reconcile, then start the queue and the background monitor. The
//! HTTP listener is only served after this returns, so no webhook races reconciliation.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use anyhow::Context;
use slip_core::config::{self, Config};
use slip_engine::caddy;
use slip_engine::fault;
use slip_engine::images::ImagePolicy;
use slip_engine::ports::LogRotation;
use slip_engine::probe;
use slip_engine::reconcile;
use slip_engine::routes::{RouteTable, RouteTemplate};
use slip_engine::run::Engine;
use slip_engine::runtime::{self, Backend};
use slip_engine::secrets::SecretStore;
use slip_engine::secrets::rotate::load_keys;
use slip_engine::store::Store;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::auth::FailureLimiter;
use crate::health::Health;
use crate::monitor;
use crate::queue::Scheduler;
use crate::release::Resolver;
use crate::state::{AppState, Shared};

/// A booted daemon, ready to serve.
pub struct Booted {
    /// Handler state.
    pub state: AppState,
    /// Deploy runner tasks.
    pub tracker: TaskTracker,
    /// Cancelled when shutdown begins: no new deploy starts.
    pub closing: CancellationToken,
    /// The background monitor.
    pub monitor: JoinHandle<()>,
    /// The `slipd.lock` file; the lock lasts as long as this handle.
    pub lock: File,
}

/// Boots slipd with `config`.
pub async fn boot(config: Config) -> anyhow::Result<Booted> {
    let storage = config.storage.path.clone();
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o750)
        .create(&storage)
        .with_context(|| format!("creating the state directory {}", storage.display()))?;
    let lock = single_instance_lock(&storage.join("slipd.lock"))?;
    arm_fault_injection()?;
    let secrets = secret_store_at_boot(&config, &storage)?;
    crate::logging::refresh(&config, &secrets);
    let store = Store::open(&storage.join("slip.db"))
        .with_context(|| format!("opening the database {}", storage.join("slip.db").display()))?;
    let instance_id = store.instance_id().to_owned();

    let runtime = connect_runtime(&config).await?;
    let images = ImagePolicy {
        engine_root: runtime.engine_root.clone(),
        min_free_disk: config.runtime.min_free_disk,
        keep_images: keep_images(&config),
    };
    if images.engine_root.is_none() {
        tracing::warn!("the engine does not report where it keeps images; the disk preflight is skipped");
    }
    let backend = match runtime.backend {
        Backend::Podman => "podman",
        // A connected runtime is never `Auto`; it names the engine that answered.
        Backend::Docker | Backend::Auto => "docker",
    };
    tracing::info!(backend, configured = %config.runtime.backend, "container engine connected");
    let mut proxy = caddy::Client::new(caddy_settings(&config)).context("configuring the Caddy client")?;
    if let Some(wildcard) = preview_wildcard(&config) {
        proxy = proxy.with_preview_wildcard(wildcard);
    }
    let routes = RouteTable::new(Arc::new(proxy));

    let shutdown = CancellationToken::new();
    let engine = Engine {
        instances: runtime.instances,
        image_store: runtime.images,
        logs: runtime.logs,
        probe: Arc::new(probe::Http::new()),
        routes,
        store: store.clone(),
        instance_id,
        port_range: config.runtime.port_range.clone(),
        log: LogRotation { max_size_bytes: config.runtime.log_max_size, max_files: config.runtime.log_max_files },
        shutdown: shutdown.clone(),
        images,
    };

    let mut templates = route_templates(&config);
    templates.extend(preview_route_templates(&config, &store));
    let report = reconcile::reconcile(&engine, &templates, Duration::from_secs(10))
        .await
        .context("reconciling containers and routes with the database")?;
    tracing::info!(
        finished = ?report.finished,
        requeued = ?report.requeued,
        superseded = ?report.superseded,
        failed = ?report.failed,
        removed = ?report.removed,
        orphans_removed = ?report.orphans_removed,
        restarted = ?report.restarted,
        missing = ?report.missing,
        "reconciled"
    );

    let shared_config = Arc::new(RwLock::new(Arc::new(config)));
    let config = shared_config.read().expect("config lock").clone();
    let tracker = TaskTracker::new();
    let closing = CancellationToken::new();
    let scheduler = Scheduler::new(
        engine.clone(),
        Resolver::new(shared_config.clone(), secrets.clone()),
        config.runtime.max_concurrent_deploys as usize,
        tracker.clone(),
        closing.clone(),
    );
    let health = Health::default();
    let events = crate::events::Bus::new(store.clone(), closing.clone());
    let monitor =
        // Checking Caddy is two cheap GETs, so it happens at least every 5 s: a Caddy restarted without
        // `--resume` gets slip's routes back well within 10 s even with the default 10 s interval.
        tokio::spawn(monitor::run(
            engine.clone(),
            health.clone(),
            events.clone(),
            config.caddy.reconcile_interval.min(Duration::from_secs(5)),
            shutdown.clone(),
        ));
    let state = AppState(Arc::new(Shared {
        config: shared_config,
        store,
        engine,
        secrets,
        scheduler: scheduler.clone(),
        limiter: FailureLimiter::new(config.auth.max_failures, config.auth.failure_window),
        decoy_key: rand::random(),
        started: Instant::now(),
        backend,
        health,
        events,
        config_path: Default::default(),
        sources: Default::default(),
    }));
    crate::heal::recreate_missing(&state, &report.missing);
    let evicting = state.clone();
    scheduler.on_preview_completed(Box::new(move |target, deploy| {
        let state = evicting.clone();
        let Some(id) = target.preview else { return };
        state.scheduler.tracker().clone().spawn(async move {
            crate::previews::evict_over_cap(&state, &target.app, &id, &deploy).await;
        });
    }));
    scheduler.kick_all();
    // The reaper's first pass runs now (SPEC §13.6: at start-up), then every minute until shutdown begins.
    tokio::spawn(crate::previews::run_reaper(state.clone(), crate::previews::REAP_INTERVAL, closing.clone()));
    // Ends when shutdown begins (`closing`), so nothing is restarted or queued while slipd winds down.
    let heal_now = Arc::new(tokio::sync::Notify::new());
    tokio::spawn(crate::heal::run(state.clone(), config.caddy.reconcile_interval, heal_now.clone(), closing.clone()));
    tokio::spawn(crate::watch::run(state.clone(), heal_now, config.caddy.reconcile_interval, closing.clone()));
    Ok(Booted { state, tracker, closing, monitor, lock })
}

/// The daemon's one secret store: `storage`'s, with `secrets.key_file` loaded (once: `[secrets]` changes need a
/// restart). Checks the store's permissions (SPEC §11.1), then re-encrypts the plain files it finds when a key is
/// set (SPEC §11.2). A key file that cannot be read or holds no key stops the boot.
fn secret_store_at_boot(config: &Config, storage: &Path) -> anyhow::Result<SecretStore> {
    let keys = match &config.secrets.key_file {
        Some(path) => Some(load_keys(path)?),
        None => None,
    };
    let key_id = keys.as_ref().map(|k| k.current.id().to_owned());
    if let Some((key, path)) = keys.as_ref().and_then(|k| k.pending.as_ref()) {
        tracing::warn!(
            pending = %path.display(),
            pending_key_id = key.id(),
            "secret store: a key rotation did not finish; secrets are read with both keys until slipd --rotate-key is run again (with slipd stopped)"
        );
    }
    let store = match keys {
        Some(keys) => keys.store(storage),
        None => SecretStore::new(storage),
    };
    for warning in store.check_permissions().context("checking the secret store's permissions")? {
        tracing::warn!(warning, "secret store");
    }
    if let Some(key_id) = key_id {
        let count = store.encrypt_plain_files().context("encrypting the plain secret files")?;
        if count > 0 {
            tracing::info!(count, key_id, "secret store: re-encrypted plain secret files with secrets.key_file");
        } else {
            tracing::info!(key_id, "secret store: encryption at rest is on");
        }
    }
    Ok(store)
}

/// Each app's `deploy.keep_images` (SPEC §12), for retention.
fn keep_images(config: &Config) -> BTreeMap<String, usize> {
    config.apps.iter().map(|(name, app)| (name.to_string(), app.deploy.keep_images as usize)).collect()
}

/// Arms test-only fault injection when `SLIP_FAULT_INJECTION=1` and `SLIP_FAULT_ABORT_AFTER` say so, and says so
/// loudly. `SLIP_FAULT_ABORT_AFTER` without the enabling variable is ignored with a warning; an unknown status is
/// an error, so a mistyped test setup cannot pass by not crashing.
fn arm_fault_injection() -> anyhow::Result<()> {
    match fault::install_from_env() {
        Ok(None) => Ok(()),
        Ok(Some(armed)) => {
            tracing::error!(
                status = armed.status,
                point = ?armed.point,
                tag = armed.tag,
                "FAULT INJECTION ARMED: slipd will abort mid-deploy (SLIP_FAULT_INJECTION); never use this in production"
            );
            eprintln!("slipd: FAULT INJECTION ARMED: {armed:?}");
            Ok(())
        }
        Err(e @ fault::FaultError::NotEnabled) => {
            tracing::warn!(error = %e, "fault injection not armed");
            Ok(())
        }
        Err(e) => Err(anyhow::Error::new(e).context("reading the fault injection variables")),
    }
}

/// Each web app's routes from config, for reconciliation.
pub fn route_templates(config: &Config) -> BTreeMap<String, Vec<RouteTemplate>> {
    config
        .apps
        .iter()
        .map(|(name, app)| {
            let templates = app
                .routes
                .iter()
                .filter_map(|r| {
                    Some(RouteTemplate {
                        hostname: r.hostname.clone(),
                        path_prefix: (r.path_prefix != "/").then(|| r.path_prefix.clone()),
                        strip_prefix: r.strip_prefix,
                        container_port: r.port?,
                        hold_timeout: app.hold_timeout,
                    })
                })
                .collect();
            (name.to_string(), templates)
        })
        .collect()
}

/// Each live preview's routes (its app's, on the preview's hostnames), keyed `app:preview`, for reconciliation.
pub fn preview_route_templates(config: &Config, store: &Store) -> BTreeMap<String, Vec<RouteTemplate>> {
    let production = route_templates(config);
    let mut out = BTreeMap::new();
    for p in store.live_previews(None).unwrap_or_default() {
        let (Some(templates), Ok(placement)) =
            (production.get(p.app.as_str()), slip_core::preview::place(config, &p.app, &p.id))
        else {
            continue;
        };
        let mut templates = templates.clone();
        for (t, host) in templates.iter_mut().zip(&placement.hostnames) {
            t.hostname.clone_from(host);
        }
        out.insert(slip_core::names::Target::preview(p.app, p.id).to_string(), templates);
    }
    out
}

/// Takes `<storage>/slipd.lock` or fails naming the pid that holds it (`slipd --rotate-key` takes it too).
pub(crate) fn single_instance_lock(path: &Path) -> anyhow::Result<File> {
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("opening {}", path.display()))?;
    if file.try_lock().is_err() {
        let holder = std::fs::read_to_string(path).unwrap_or_default();
        anyhow::bail!(
            "another slipd is already running (pid {}) and holds {}",
            holder.trim().if_empty("unknown"),
            path.display()
        );
    }
    file.set_len(0)?;
    writeln!(file, "{}", std::process::id())?;
    Ok(file)
}

trait IfEmpty {
    fn if_empty<'a>(&'a self, other: &'a str) -> &'a str;
}

impl IfEmpty for str {
    fn if_empty<'a>(&'a self, other: &'a str) -> &'a str {
        if self.is_empty() { other } else { self }
    }
}

/// Connects to the engine, retrying for a while: at boot the engine may still be starting.
async fn connect_runtime(config: &Config) -> anyhow::Result<runtime::Runtime> {
    let backend = match config.runtime.backend {
        config::Backend::Auto => Backend::Auto,
        config::Backend::Docker => Backend::Docker,
        config::Backend::Podman => Backend::Podman,
    };
    let socket = config.runtime.socket.as_deref();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match runtime::connect(backend, socket).await {
            Ok(rt) => return Ok(rt),
            Err(e) if Instant::now() >= deadline => {
                return Err(anyhow::Error::new(e).context("connecting to the container engine (runtime.backend)"));
            }
            Err(e) => {
                tracing::warn!(error = %e, "container engine not reachable yet; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

/// The wildcard preview domains (SPEC §13.5) when `preview.tls = "wildcard"`: the server's `preview.domain` and every
/// app's, with the DNS-01 solver from `caddy.tls` in `acme` mode (internal TLS issues wildcards itself). Read at
/// boot: a changed preview domain needs a restart to get its wildcard route.
pub fn preview_wildcard(config: &Config) -> Option<caddy::PreviewWildcard> {
    if config.preview.tls != config::PreviewTls::Wildcard || config.caddy.tls.mode == config::TlsMode::Off {
        return None;
    }
    let mut domains: Vec<String> = config.preview.domain.iter().cloned().collect();
    domains.extend(config.apps.values().filter_map(|a| a.preview.domain.clone()));
    domains.sort();
    domains.dedup();
    if domains.is_empty() {
        return None;
    }
    let tls = &config.caddy.tls;
    let dns = match (&tls.mode, &tls.dns_provider) {
        (config::TlsMode::Acme, Some(provider)) => Some(caddy::DnsChallenge {
            provider: provider.clone(),
            config: tls.dns_provider_config.iter().map(|(k, v)| (k.clone(), provider_json(v))).collect(),
            propagation_delay: tls.propagation_delay,
        }),
        _ => None,
    };
    Some(caddy::PreviewWildcard { domains, dns })
}

fn provider_json(value: &config::ProviderValue) -> serde_json::Value {
    use config::ProviderValue as V;
    match value {
        V::String(s) => s.expose().into(),
        V::Integer(i) => (*i).into(),
        V::Float(f) => serde_json::Number::from_f64(*f).map_or(serde_json::Value::Null, serde_json::Value::Number),
        V::Bool(b) => (*b).into(),
        V::Array(items) => items.iter().map(provider_json).collect(),
        V::Table(t) => t.iter().map(|(k, v)| (k.clone(), provider_json(v))).collect::<serde_json::Map<_, _>>().into(),
    }
}

/// Maps `[caddy]` and `[server]` onto the Caddy adapter's settings.
pub fn caddy_settings(config: &Config) -> caddy::Settings {
    let c = &config.caddy;
    let tls = match c.tls.mode {
        config::TlsMode::Off => caddy::TlsMode::Off,
        config::TlsMode::Internal => caddy::TlsMode::Internal,
        config::TlsMode::Acme => caddy::TlsMode::Acme { email: c.tls.email.clone(), staging: c.tls.staging },
    };
    let daemon_route = config.server.public_domain.as_ref().map(|host| caddy::DaemonRoute {
        host: host.clone(),
        paths: if config.server.public_api == "all" {
            Vec::new()
        } else {
            ["/v1/deploy", "/v1/deploys/*", "/v1/apps/*/rollback", "/v1/previews/*", "/healthz"]
                .map(str::to_owned)
                .to_vec()
        },
        upstream: config.server.listen.dial(),
    });
    caddy::Settings {
        admin_api: c.admin_api.clone(),
        server: c.server.clone().unwrap_or_else(|| slip_core::defaults::CADDY_SERVER.to_owned()),
        share_existing: c.server.is_none(),
        listen: c.listen.clone(),
        tls,
        stream_close_delay: c.stream_close_delay,
        hold_try_interval: Duration::from_millis(250),
        daemon_route,
    }
}
