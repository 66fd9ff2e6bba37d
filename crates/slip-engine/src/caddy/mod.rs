//! [`Proxy`] over Caddy's admin API (SPEC §9): bootstrap of slip's server, the atomic compare-and-swap
//! of slip's route block, the `slipd-tls` and `slipd-tls-preview` policies, wildcard preview routes
//! (SPEC §13.5), and in-flight counts for draining.
//!
//! slip owns objects whose `@id` is `slipd` or starts with `slipd-`, `slipd:` or `slip-`, plus the
//! server it created (`@id` `slipd-server`). Everything else in Caddy (other servers, foreign routes,
//! global options, foreign TLS policies) is read at most and written back byte-for-byte unchanged.
//! Writes are serialised inside one [`Client`], so share one client per process.
//!
//! This module does not decide *what* should be routed (the engine renders a [`RouteBlock`] from
//! SQLite and config), does not poll or wait for drains (the engine polls [`Proxy::in_flight`]), and
//! does not schedule reconciliation (the engine calls [`Proxy::ensure_server`] and [`Proxy::apply`]).
//!
//! # Layout
//! - [`render`]: pure functions from settings and a route block to Caddy JSON, plus ownership rules.
//! - `admin`: the HTTP/unix-socket transport, ETag header/trailer handling and "absent" detection.

mod admin;
pub mod render;
pub mod share;

use std::collections::BTreeSet;
use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use hyper::Method;
use serde::Deserialize;
use serde_json::{Value, json};

use self::admin::{Admin, AdminError, Endpoint, Fetched};
use self::share::Choice;
use crate::ports::{Applied, Proxy, ProxyError, RouteBlock};

/// Longest wait for one admin API request (SPEC §7.8).
pub const ADMIN_TIMEOUT: Duration = Duration::from_secs(10);

/// How many times a write is retried after Caddy answers `412 Precondition Failed` (SPEC §9.2).
pub const MAX_RETRIES: u32 = 5;

/// How long a listener move Caddy refused is not tried again.
pub const MOVE_RETRY: Duration = Duration::from_secs(60);

/// Pause before the first retry; doubled for each further one.
pub const RETRY_BACKOFF: Duration = Duration::from_millis(50);

/// How slip talks to Caddy and what its server looks like; mapped from `[caddy]` in `slip.toml`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// `http://host:port` or `unix//path/to/admin.sock`.
    pub admin_api: String,
    /// Name of slip's server under `apps.http.servers`.
    pub server: String,
    /// `caddy.server` is unset: when slip's own server does not exist and exactly one other server already listens
    /// on slip's addresses (a Caddyfile's `srv0` on `:443`), slip's routes go inside that server instead
    /// ([`share`]). When `false`, `server` is used as named: created when missing, shared when someone else's.
    pub share_existing: bool,
    /// Listener addresses (`:443`, `127.0.0.1:8080`, ...). With TLS, port-80 entries only mean "keep
    /// Caddy's HTTP→HTTPS redirect" and are not put on the server (SPEC §9.3).
    pub listen: Vec<String>,
    /// Certificate handling for slip's hostnames.
    pub tls: TlsMode,
    /// Keeps proxied WebSockets open across config loads; needs Caddy ≥ 2.7.
    pub stream_close_delay: Option<Duration>,
    /// How often Caddy retries the dial while it holds a request (`try_interval`).
    pub hold_try_interval: Duration,
    /// The route from `server.public_domain` to slipd itself, when configured.
    pub daemon_route: Option<DaemonRoute>,
}

/// How Caddy gets certificates for slip's hostnames.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsMode {
    /// Public certificates from an ACME CA. With neither `email` nor `staging`, Caddy's defaults apply
    /// and slip writes no TLS policy.
    Acme {
        /// ACME account e-mail.
        email: Option<String>,
        /// Use Let's Encrypt's staging directory.
        staging: bool,
    },
    /// Caddy's local CA, for development and LANs.
    Internal,
    /// Plain HTTP: `automatic_https.disable` on slip's server.
    Off,
}

/// slipd's own public route (SPEC §9.4, `server.public_domain`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DaemonRoute {
    /// `server.public_domain`.
    pub host: String,
    /// Path patterns exposed publicly (from `server.public_api`); empty exposes every path. Other paths
    /// of `host` get a JSON 404 from Caddy.
    pub paths: Vec<String>,
    /// slipd's API listener (`server.listen`); `0.0.0.0` is dialled as `127.0.0.1`.
    pub upstream: String,
}

/// Wildcard certificates for previews (SPEC §13.5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreviewWildcard {
    /// Preview base domains (`preview.example.com`). A route whose hostname is one label under one of
    /// them is served through that domain's `slipd-previews:<domain>` route.
    pub domains: Vec<String>,
    /// The DNS-01 solver the wildcard certificate needs in `acme` mode; `internal` TLS needs none.
    pub dns: Option<DnsChallenge>,
}

/// A DNS-01 challenge solver (`caddy.tls.dns_provider` and friends).
#[derive(Clone, PartialEq, Eq)]
pub struct DnsChallenge {
    /// Caddy DNS module name (`cloudflare`, `route53`, ...).
    pub provider: String,
    /// Passed verbatim beside `name`. May hold credentials, so `Debug` shows only the keys.
    pub config: serde_json::Map<String, Value>,
    /// How long to wait for DNS propagation.
    pub propagation_delay: Duration,
}

/// Settings that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettingsError {
    /// The admin API address has neither accepted form.
    #[error("caddy.admin_api {0:?} is invalid: use http://host:port or unix//path/to/admin.sock")]
    AdminApi(String),
    /// The server name cannot be used as a config path segment.
    #[error("caddy.server {0:?} is invalid: use letters, digits, '-' or '_'")]
    Server(String),
}

/// The Caddy adapter. Cheap to keep around; share one per process so its writes stay serialised.
#[derive(Debug)]
pub struct Client {
    settings: Settings,
    previews: Option<PreviewWildcard>,
    admin: Admin,
    /// Held for the whole of every read-compare-write, so slipd never races itself (SPEC §9.2).
    writer: tokio::sync::Mutex<()>,
    /// The last listener move Caddy refused.
    failed_move: FailedMove,
    /// The server slip's routes went to last, to log when that changes.
    in_use: std::sync::Mutex<Option<Choice>>,
}

/// A listener move Caddy refused, and when. Each attempt takes slip's server down for a moment, so a refused
/// move is tried again only after [`MOVE_RETRY`]; meanwhile the refusal is the answer.
#[derive(Debug, Default)]
struct FailedMove(std::sync::Mutex<Option<(tokio::time::Instant, ProxyError)>>);

/// What one attempt of a read-compare-write loop achieved.
enum Step {
    /// Caddy now matches; stop.
    Done,
    /// Something was written that needs a fresh read before the next comparison.
    Again,
}

/// One entry of `GET /reverse_proxy/upstreams`.
#[derive(Debug, Deserialize)]
struct UpstreamStatus {
    address: String,
    num_requests: i64,
}

impl Default for Settings {
    /// The documented defaults of `[caddy]` (SPEC §3.2).
    fn default() -> Settings {
        Settings {
            admin_api: "http://localhost:2019".to_owned(),
            server: "slip".to_owned(),
            share_existing: true,
            listen: vec![":443".to_owned(), ":80".to_owned()],
            tls: TlsMode::Acme { email: None, staging: false },
            stream_close_delay: None,
            hold_try_interval: Duration::from_millis(250),
            daemon_route: None,
        }
    }
}

impl fmt::Debug for DnsChallenge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DnsChallenge")
            .field("provider", &self.provider)
            .field("config_keys", &self.config.keys().collect::<Vec<_>>())
            .field("propagation_delay", &self.propagation_delay)
            .finish()
    }
}

impl Client {
    /// A client for `settings`. Does not contact Caddy.
    pub fn new(settings: Settings) -> Result<Client, SettingsError> {
        let endpoint =
            Endpoint::parse(&settings.admin_api).ok_or_else(|| SettingsError::AdminApi(settings.admin_api.clone()))?;
        let server_ok = !settings.server.is_empty()
            && settings.server.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !server_ok {
            return Err(SettingsError::Server(settings.server.clone()));
        }
        let admin = Admin::new(endpoint, &settings.admin_api, ADMIN_TIMEOUT);
        Ok(Client {
            settings,
            previews: None,
            admin,
            writer: tokio::sync::Mutex::new(()),
            failed_move: FailedMove::default(),
            in_use: std::sync::Mutex::new(None),
        })
    }

    /// Serves previews under `previews.domains` through one wildcard route and certificate per domain
    /// (SPEC §13.5, `preview.tls = "wildcard"`). Without it, every preview route is top-level and gets
    /// its own certificate (`per_host`).
    pub fn with_preview_wildcard(mut self, previews: PreviewWildcard) -> Client {
        self.previews = Some(previews);
        self
    }

    /// The settings this client was built from.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The server slip's routes go to now ([`share`]), logged when it changes.
    async fn choose_server(&self) -> Result<Choice, AdminError> {
        if !self.settings.share_existing {
            return Ok(Choice::Own(self.settings.server.clone()));
        }
        let http = self.admin.get("/config/apps/http").await?;
        let plain_http = self.settings.tls == TlsMode::Off;
        let choice =
            share::choose(http.value.as_ref(), &self.settings.server, &render::listen(&self.settings), plain_http);
        let mut in_use = self.in_use.lock().expect("server choice lock");
        if in_use.as_ref() != Some(&choice) {
            match &choice {
                Choice::Shared(name) => tracing::info!(
                    server = %name,
                    listen = ?self.settings.listen,
                    "Caddy server '{name}' already listens on caddy.listen: slip manages only its own routes inside                      it (set caddy.server to choose another)"
                ),
                Choice::Own(name) => tracing::info!(server = %name, "slip's routes are in its own Caddy server"),
                Choice::Refused(message) => tracing::warn!("{message}"),
            }
            *in_use = Some(choice.clone());
        }
        Ok(choice)
    }

    /// Bootstrap without taking the writer lock; the caller holds it.
    async fn ensure_server_locked(&self) -> Result<(), ProxyError> {
        let op = "bootstrapping slip's server";
        for attempt in 0..=MAX_RETRIES {
            backoff(attempt).await;
            let path = match self.choose_server().await.map_err(|e| self.error(op, e))? {
                // Someone else's server: only slip's route block inside it is managed.
                Choice::Shared(_) => return Ok(()),
                Choice::Refused(message) => return Err(ProxyError::ListenerConflict(message)),
                Choice::Own(name) => server_path(&name),
            };
            let current = self.admin.get(&path).await.map_err(|e| self.error(op, e))?;
            let step = match current.value {
                None => {
                    let server = render::server(&self.settings);
                    self.admin
                        .write(Method::PUT, &path, Some(&server), current.etag.as_deref())
                        .await
                        .map(|()| Step::Done)
                }
                Some(server) if render::object_id(&server) == Some(render::SERVER_ID) => {
                    let moving = server.get("listen") != Some(&json!(render::listen(&self.settings)));
                    if let Some(error) = moving.then(|| self.failed_move.recent()).flatten() {
                        return Err(error);
                    }
                    match self.align_own_server(&path, &server, current.etag.as_deref()).await {
                        Err(error @ AdminError::Status { .. }) if moving => {
                            let error = self.error("moving slip's server to caddy.listen", error);
                            self.failed_move.remember(&error);
                            return Err(error);
                        }
                        step => step,
                    }
                }
                // A server slip did not create: only slip's route block inside it is managed.
                Some(_) => Ok(Step::Done),
            };
            match step {
                Ok(Step::Done) => return Ok(()),
                Ok(Step::Again) | Err(AdminError::PreconditionFailed | AdminError::Interrupted { .. }) => continue,
                Err(error) => return Err(self.error(op, error)),
            }
        }
        Err(ProxyError::Conflict { op: op.to_owned() })
    }

    /// Moves slip's own server to the configured listeners, or rewrites its `automatic_https`, when either
    /// differs from the settings. One change per call, then [`Step::Again`]: the next attempt re-reads, so
    /// each write carries a fresh ETag.
    async fn align_own_server(&self, path: &str, server: &Value, etag: Option<&str>) -> Result<Step, AdminError> {
        let listen = json!(render::listen(&self.settings));
        let automatic_https = render::automatic_https(&self.settings.tls, &self.settings.listen);
        if server.get("listen") != Some(&listen) {
            let mut moved = server.clone();
            moved["listen"] = listen;
            moved["automatic_https"] = automatic_https;
            self.move_listeners(path, server, &moved, etag).await?;
            return Ok(Step::Again);
        }
        let method = match server.get("automatic_https") {
            Some(current) if *current == automatic_https => return Ok(Step::Done),
            Some(_) => Method::PATCH,
            None => Method::PUT,
        };
        self.admin.write(method, &format!("{path}/automatic_https"), Some(&automatic_https), etag).await?;
        Ok(Step::Again)
    }

    /// Replaces slip's own server `current` with `moved` (the same server on other listeners) in two config
    /// loads: first without the server, so Caddy closes its old TCP and UDP (HTTP/3) sockets, then with it.
    /// In one load Caddy binds the new addresses while the old ones are still open, and `127.0.0.1:443`
    /// cannot be bound beside `*:443`. When the new listeners cannot be bound, `current` is put back, so
    /// slip's routes keep serving on the old ones, and the error is the one the new listeners caused.
    async fn move_listeners(
        &self,
        path: &str,
        current: &Value,
        moved: &Value,
        etag: Option<&str>,
    ) -> Result<(), AdminError> {
        self.admin.write(Method::DELETE, path, None, etag).await?;
        let Err(error) = self.admin.write(Method::PUT, path, Some(moved), None).await else { return Ok(()) };
        // If restoring fails too, the server stays absent and the next reconcile bootstraps it again.
        if let Err(restore) = self.admin.write(Method::PUT, path, Some(current), None).await {
            tracing::warn!(error = ?restore, "putting slip's server back on its old listeners");
        }
        Err(error)
    }

    /// Makes the route block current. Returns whether anything was written.
    async fn apply_routes(&self, block: &RouteBlock) -> Result<bool, ProxyError> {
        let op = "writing slip's routes";
        let desired = render::routes(block, &self.settings, self.previews.as_ref());
        let mut bootstrapped = false;
        for attempt in 0..=MAX_RETRIES {
            backoff(attempt).await;
            let server = match self.choose_server().await.map_err(|e| self.error(op, e))? {
                Choice::Refused(message) => return Err(ProxyError::ListenerConflict(message)),
                Choice::Own(name) | Choice::Shared(name) => server_path(&name),
            };
            let path = format!("{server}/routes");
            let current = self.admin.get(&path).await.map_err(|e| self.error(op, e))?;
            let (body, method) = match current.value {
                Some(Value::Array(routes)) if render::is_current(&routes, &desired) => return Ok(bootstrapped),
                Some(Value::Array(routes)) => (render::merged(&routes, &desired), Method::PATCH),
                Some(other) => {
                    return Err(ProxyError::Rejected {
                        op: format!("GET {}", self.admin.url(&path)),
                        message: format!("expected a JSON array of routes, found {}", kind(&other)),
                    });
                }
                None => {
                    let server = self.admin.get(&server).await.map_err(|e| self.error(op, e))?;
                    if server.value.is_none() {
                        // Caddy restarted without --resume, or someone removed the server.
                        if bootstrapped {
                            return Err(ProxyError::Conflict { op: op.to_owned() });
                        }
                        self.ensure_server_locked().await?;
                        bootstrapped = true;
                        continue;
                    }
                    if desired.is_empty() {
                        return Ok(bootstrapped);
                    }
                    (desired.clone(), Method::PUT)
                }
            };
            let body = Value::Array(body);
            match self.admin.write(method, &path, Some(&body), current.etag.as_deref()).await {
                Ok(()) => {}
                // An interrupted write may or may not have landed: the next attempt re-reads first.
                Err(AdminError::PreconditionFailed | AdminError::Interrupted { .. }) => continue,
                Err(error) => return Err(self.error(op, error)),
            }
            let written = self.admin.get(&path).await.map_err(|e| self.error(op, e))?;
            if written.value.as_ref() != Some(&body) {
                return Err(ProxyError::Conflict { op: format!("{op} (read-back differs)") });
            }
            return Ok(true);
        }
        Err(ProxyError::Conflict { op: op.to_owned() })
    }

    /// Makes `slipd-tls` and `slipd-tls-preview` match the block's hostnames (SPEC §9.7). Returns
    /// whether it wrote.
    async fn apply_tls_policies(&self, block: &RouteBlock) -> Result<bool, ProxyError> {
        let mut wrote = false;
        for id in [render::TLS_POLICY_ID, render::PREVIEW_TLS_POLICY_ID] {
            let op = format!("writing the {id} policy");
            let mut done = false;
            for attempt in 0..=MAX_RETRIES {
                backoff(attempt).await;
                match self.try_apply_tls_policy(id, block).await {
                    Ok(written) => {
                        wrote |= written;
                        done = true;
                        break;
                    }
                    Err(AdminError::PreconditionFailed | AdminError::Interrupted { .. }) => continue,
                    Err(error) => return Err(self.error(&op, error)),
                }
            }
            if !done {
                return Err(ProxyError::Conflict { op });
            }
        }
        Ok(wrote)
    }

    async fn try_apply_tls_policy(&self, id: &str, block: &RouteBlock) -> Result<bool, AdminError> {
        let id_path = format!("/id/{id}");
        let existing = self.admin.get(&id_path).await?;
        if existing.value.is_none() && self.settings.tls == TlsMode::Off {
            return Ok(false);
        }
        let policies = self.admin.get("/config/apps/tls/automation/policies").await?;
        let taken = foreign_subjects(policies.value.as_ref());
        let previews = self.previews.as_ref();
        let desired = render::tls_policy(id, block, &self.settings, previews, &taken);
        if existing.value != desired {
            let wanted = render::policy_subjects(id, block, &self.settings, previews);
            let clashing: Vec<&String> = wanted.intersection(&taken).collect();
            if !clashing.is_empty() {
                tracing::warn!(
                    policy = id,
                    subjects = ?clashing,
                    "a TLS policy slip does not own already names these subjects; slip leaves them to it"
                );
            }
        }
        match (existing.value, desired) {
            (None, None) => Ok(false),
            (Some(current), Some(wanted)) if current == wanted => Ok(false),
            (Some(_), None) => {
                self.admin.write(Method::DELETE, &id_path, None, existing.etag.as_deref()).await.map(|()| true)
            }
            (Some(_), Some(wanted)) => {
                self.admin.write(Method::PATCH, &id_path, Some(&wanted), existing.etag.as_deref()).await.map(|()| true)
            }
            (None, Some(wanted)) => self.insert_tls_policy(policies, wanted).await.map(|()| true),
        }
    }

    /// Creates the policy at the shallowest missing level, with `If-Match` on the parent, so existing
    /// automation objects and foreign policies are never overwritten.
    async fn insert_tls_policy(&self, policies: Fetched, policy: Value) -> Result<(), AdminError> {
        if let Some(Value::Array(_)) = policies.value {
            let path = "/config/apps/tls/automation/policies/0";
            return self.admin.write(Method::PUT, path, Some(&policy), policies.etag.as_deref()).await;
        }
        let levels = [
            ("/config/apps/tls/automation", "policies", json!([policy])),
            ("/config/apps/tls", "automation", json!({"policies": [policy]})),
            ("/config/apps", "tls", json!({"automation": {"policies": [policy]}})),
        ];
        for (parent, key, value) in levels {
            let found = self.admin.get(parent).await?;
            if found.value.is_some() || parent == "/config/apps" {
                let path = format!("{parent}/{key}");
                return self.admin.write(Method::PUT, &path, Some(&value), found.etag.as_deref()).await;
            }
        }
        Ok(())
    }

    /// Turns a transport error into the trait's error, recognising listener conflicts.
    fn error(&self, op: &str, error: AdminError) -> ProxyError {
        match error {
            AdminError::Unreachable { url, message } => ProxyError::Unreachable { url, message },
            AdminError::Interrupted { url, message } => ProxyError::Unreachable {
                url,
                message: format!("Caddy closed the connection before it answered: {message}"),
            },
            AdminError::PreconditionFailed => ProxyError::Conflict { op: op.to_owned() },
            AdminError::Status { method, url, status, message } => {
                if let Some(conflict) = listener_conflict(&message, &self.settings.server, &self.settings.listen) {
                    return ProxyError::ListenerConflict(conflict);
                }
                let hint = if message.contains("unknown field \"stream_close_delay\"") {
                    " (caddy.stream_close_delay needs Caddy 2.7 or newer; remove it or upgrade Caddy)"
                } else {
                    ""
                };
                ProxyError::Rejected {
                    op: format!("{op} ({method} {url})"),
                    message: format!("HTTP {}: {message}{hint}", status.as_u16()),
                }
            }
        }
    }
}

#[async_trait]
impl Proxy for Client {
    /// Creates slip's server when it is missing (PUT creates missing parents). When it is slip's own,
    /// aligns `listen` and `automatic_https` with the settings; a foreign server is left as it is.
    async fn ensure_server(&self) -> Result<(), ProxyError> {
        let _writer = self.writer.lock().await;
        self.ensure_server_locked().await
    }

    /// Aligns the `slipd-tls` and `slipd-tls-preview` policies, then replaces slip's route block with
    /// `block` in one `PATCH` (If-Match, foreign routes kept in order after it) and reads it back.
    /// Bootstraps a missing server.
    ///
    /// Drain references that Caddy still has but `block` no longer lists do not by themselves cause a
    /// write (they never match); they disappear with the next write that changes something else.
    async fn apply(&self, block: &RouteBlock) -> Result<Applied, ProxyError> {
        let _writer = self.writer.lock().await;
        let policy_written = self.apply_tls_policies(block).await?;
        let routes_written = self.apply_routes(block).await?;
        Ok(if policy_written || routes_written { Applied::Written } else { Applied::Unchanged })
    }

    async fn in_flight(&self, upstream: &str) -> Result<Option<u64>, ProxyError> {
        let path = "/reverse_proxy/upstreams";
        let fetched = self.admin.get(path).await.map_err(|e| self.error("reading upstream counts", e))?;
        let Some(value) = fetched.value else { return Ok(None) };
        let upstreams: Vec<UpstreamStatus> = serde_json::from_value(value).map_err(|error| ProxyError::Rejected {
            op: format!("GET {}", self.admin.url(path)),
            message: format!("unexpected answer: {error}"),
        })?;
        Ok(upstreams
            .into_iter()
            .find(|status| status.address == upstream)
            .map(|status| u64::try_from(status.num_requests).unwrap_or(0)))
    }
}

impl FailedMove {
    /// The refusal, while it is more recent than [`MOVE_RETRY`].
    fn recent(&self) -> Option<ProxyError> {
        let failed = self.0.lock().expect("failed move lock");
        failed.as_ref().filter(|(at, _)| at.elapsed() < MOVE_RETRY).map(|(_, error)| copy(error))
    }

    fn remember(&self, error: &ProxyError) {
        *self.0.lock().expect("failed move lock") = Some((tokio::time::Instant::now(), copy(error)));
    }
}

/// A copy of `error` (the trait's error type is not `Clone`).
fn copy(error: &ProxyError) -> ProxyError {
    match error {
        ProxyError::Unreachable { url, message } => {
            ProxyError::Unreachable { url: url.clone(), message: message.clone() }
        }
        ProxyError::Rejected { op, message } => ProxyError::Rejected { op: op.clone(), message: message.clone() },
        ProxyError::ListenerConflict(message) => ProxyError::ListenerConflict(message.clone()),
        ProxyError::Conflict { op } => ProxyError::Conflict { op: op.clone() },
    }
}

/// The config path of the server `name`.
fn server_path(name: &str) -> String {
    format!("/config/apps/http/servers/{name}")
}

/// Waits before retry `attempt` (none before the first try).
async fn backoff(attempt: u32) {
    if attempt > 0 {
        tokio::time::sleep(RETRY_BACKOFF * 2u32.pow(attempt - 1)).await;
    }
}

/// Subjects named by TLS policies slip does not own.
fn foreign_subjects(policies: Option<&Value>) -> BTreeSet<String> {
    let Some(Value::Array(policies)) = policies else { return BTreeSet::new() };
    policies
        .iter()
        .filter(|policy| !render::object_id(policy).is_some_and(render::is_owned_id))
        .filter_map(|policy| policy.get("subjects").and_then(Value::as_array))
        .flatten()
        .filter_map(Value::as_str)
        .map(str::to_owned)
        .collect()
}

/// The SPEC §9.3 sentence for a listener Caddy could not give slip's server, naming its address (or, when
/// Caddy's message names none, every configured one), or `None` when the error is about something else.
fn listener_conflict(message: &str, own_server: &str, listen: &[String]) -> Option<String> {
    if let Some((before, after)) = message.split_once("already claimed by server '") {
        let claimant = after.split('\'').next().unwrap_or_default();
        let listener = before
            .rsplit_once("listener address repeated: ")
            .map(|(_, rest)| rest.trim().trim_end_matches('(').trim())
            .map(|address| address.split_once('/').map_or(address, |(_, bare)| bare).to_owned())
            .unwrap_or_else(|| format!("({})", listen.join(", ")));
        let claimant_is_us = claimant == own_server;
        let other = if claimant_is_us { server_named_before(before).unwrap_or(claimant) } else { claimant };
        return Some(format!(
            "Caddy listener {listener} is already claimed by server '{other}'. Move that site, change caddy.listen, or set caddy.server = \"{other}\" to share it."
        ));
    }
    if message.contains("address already in use") {
        let (listener, what) = in_use_address(message).unwrap_or_else(|| (format!("({})", listen.join(", ")), ""));
        return Some(format!(
            "Caddy listener {listener}{what} is already in use by another process. Stop that process or change caddy.listen."
        ));
    }
    None
}

/// In Go's "listen tcp ADDR: bind: …" or "listen udp ADDR: …" (else "listening on ADDR: …"), the address and,
/// for UDP, what the socket is for.
fn in_use_address(message: &str) -> Option<(String, &'static str)> {
    for (marker, what) in [("listen udp ", " (UDP, for HTTP/3)"), ("listen tcp ", ""), ("listening on ", "")] {
        if let Some((_, rest)) = message.rsplit_once(marker)
            && let Some((address, _)) = rest.split_once(": ")
        {
            return Some((address.to_owned(), what));
        }
    }
    None
}

/// In "… server NAME: listener address repeated …", the NAME.
fn server_named_before(text: &str) -> Option<&str> {
    let (head, _) = text.rsplit_once(": listener address repeated")?;
    head.rsplit_once("server ").map(|(_, name)| name.trim())
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listener_conflicts_name_the_other_server_and_the_bare_address() {
        let claimed = "loading new config: loading http app module: http: invalid configuration: server slip: \
                       listener address repeated: tcp/:443 (already claimed by server 'srv0')";
        assert_eq!(
            listener_conflict(claimed, "slip", &[]).unwrap(),
            "Caddy listener :443 is already claimed by server 'srv0'. Move that site, change caddy.listen, or set caddy.server = \"srv0\" to share it."
        );
        let claimed_by_us = "http: invalid configuration: server srv0: listener address repeated: \
                             tcp/127.0.0.1:8080 (already claimed by server 'slip')";
        assert_eq!(
            listener_conflict(claimed_by_us, "slip", &[]).unwrap(),
            "Caddy listener 127.0.0.1:8080 is already claimed by server 'srv0'. Move that site, change caddy.listen, or set caddy.server = \"srv0\" to share it."
        );
        let in_use = "loading new config: http app module: start: listening on 127.0.0.1:32090: listen tcp \
                      127.0.0.1:32090: bind: address already in use";
        assert_eq!(
            listener_conflict(in_use, "slip", &[]).unwrap(),
            "Caddy listener 127.0.0.1:32090 is already in use by another process. Stop that process or change caddy.listen."
        );
        let udp = "loading new config: http app module: start: listen udp 127.0.0.1:443: bind: address already in use";
        assert_eq!(
            listener_conflict(udp, "slip", &[]).unwrap(),
            "Caddy listener 127.0.0.1:443 (UDP, for HTTP/3) is already in use by another process. Stop that process or change caddy.listen."
        );
        let unnamed = "start: bind: address already in use";
        let listen = ["127.0.0.1:443".to_owned(), "127.0.0.1:80".to_owned()];
        assert_eq!(
            listener_conflict(unnamed, "slip", &listen).unwrap(),
            "Caddy listener (127.0.0.1:443, 127.0.0.1:80) is already in use by another process. Stop that process or change caddy.listen."
        );
        assert_eq!(listener_conflict("unknown field \"x\"", "slip", &[]), None);
    }

    #[test]
    fn settings_are_checked_before_any_request() {
        let settings = |admin_api: &str, server: &str| Settings {
            admin_api: admin_api.to_owned(),
            server: server.to_owned(),
            ..Settings::default()
        };
        assert!(Client::new(settings("unix//run/caddy/admin.sock", "slip")).is_ok());
        assert_eq!(
            Client::new(settings("localhost:2019", "slip")).unwrap_err().to_string(),
            "caddy.admin_api \"localhost:2019\" is invalid: use http://host:port or unix//path/to/admin.sock"
        );
        assert!(matches!(Client::new(settings("http://localhost:2019", "a/b")), Err(SettingsError::Server(_))));
    }

    #[test]
    fn foreign_subjects_skip_slip_policies() {
        let policies = json!([
            {"@id": "slipd-tls", "subjects": ["a.example.com"]},
            {"subjects": ["b.example.com", "c.example.com"]},
            {"issuers": []},
        ]);
        let taken: Vec<String> = foreign_subjects(Some(&policies)).into_iter().collect();
        assert_eq!(taken, ["b.example.com", "c.example.com"]);
    }
}
