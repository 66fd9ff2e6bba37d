//! Live events (SPEC §17.3): the broadcast behind `GET /v1/events`, and the conversion of stored deploy events
//! into the wire's [`EventFrame`].
//!
//! Design: deploy events are already committed to SQLite by the driver, so the store is the only source.
//! A per-deploy stream (`/v1/deploys/{id}/events`) simply reads that deploy's events after the last `seq` it
//! sent, every [`POLL_INTERVAL`]; it needs nothing from here but [`frame`]. For `/v1/events`, one pump task per
//! daemon polls the store the same way for every unfinished or recent deploy and publishes on a tokio
//! broadcast channel, which non-deploy events (`secret.changed`) are published on directly. The pump runs only
//! while someone listens: the first subscriber starts it and it stops when the last one leaves. Polling costs a
//! few indexed reads per tick and keeps the driver free of any hook; the price is up to 200 ms of latency.
//!
//! Every stream ends when slipd begins to shut down (the `closing` token), so an open stream never holds up
//! graceful shutdown. This module does not authenticate (the handlers do) and does not redact stored messages
//! again beyond what the caller's redactor does.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use slip_api::EventFrame;
use slip_api::time::rfc3339;
use slip_core::names::{AppName, DeployId, PreviewId};
use slip_engine::clock::unix_ms;
use slip_engine::redact::Redactor;
use slip_engine::store::{DeployFilter, DeployStatus, EventKind, EventRow, Store, StoreError};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

/// How often streams look for new events in the store.
pub const POLL_INTERVAL: Duration = Duration::from_millis(200);

/// Events buffered per `/v1/events` subscriber before the slowest one starts missing some.
const CAPACITY: usize = 1024;

/// Recent deploys the pump looks at each tick besides the unfinished ones, so a deploy that starts and ends
/// between two ticks is still announced.
const RECENT: u32 = 20;

/// The daemon's live event broadcast. Cheap to clone.
#[derive(Clone)]
pub struct Bus {
    inner: Arc<Inner>,
}

struct Inner {
    tx: broadcast::Sender<Arc<EventFrame>>,
    store: Store,
    closing: CancellationToken,
    pumping: AtomicBool,
}

impl Bus {
    /// A bus reading deploy events from `store`; every stream ends when `closing` is cancelled.
    pub fn new(store: Store, closing: CancellationToken) -> Bus {
        let (tx, _) = broadcast::channel(CAPACITY);
        Bus { inner: Arc::new(Inner { tx, store, closing, pumping: AtomicBool::new(false) }) }
    }

    /// Announces a non-deploy event (e.g. `secret.changed`) to current subscribers. Nobody listening is fine.
    pub fn publish(&self, frame: EventFrame) {
        let _ = self.inner.tx.send(Arc::new(frame));
    }

    /// Announces an event that belongs to no deploy (`app.created`, `config.reloaded`, `caddy.reconciled`, ...).
    pub fn announce(&self, kind: &str, app: Option<&str>, message: String, data: Option<serde_json::Value>) {
        self.publish(EventFrame {
            kind: kind.to_owned(),
            at: rfc3339(unix_ms()),
            app: app.map(str::to_owned),
            deploy_id: None,
            preview_id: None,
            status: None,
            message: Some(message),
            data,
        });
    }

    /// A receiver of every event from now on; starts the deploy-event pump if it is not running.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<EventFrame>> {
        let rx = self.inner.tx.subscribe();
        if !self.inner.pumping.swap(true, Ordering::SeqCst) {
            tokio::spawn(pump(self.inner.clone()));
        }
        rx
    }

    /// Cancelled when slipd begins to shut down.
    pub fn closing(&self) -> &CancellationToken {
        &self.inner.closing
    }
}

/// The wire form of a stored deploy event, its message passed through `redactor`.
pub fn frame(event: &EventRow, app: &AppName, preview: Option<&PreviewId>, redactor: &Redactor) -> EventFrame {
    EventFrame {
        kind: event_type(event).to_owned(),
        at: rfc3339(event.at),
        app: Some(app.to_string()),
        deploy_id: Some(event.deploy_id.to_string()),
        preview_id: preview.map(|p| p.to_string()),
        status: Some(event.status.as_str().to_owned()),
        message: Some(redactor.redact(&event.message).into_owned()),
        data: event.data.as_deref().and_then(|d| serde_json::from_str(d).ok()),
    }
}

/// SPEC §17.3's type of a stored event.
pub fn event_type(event: &EventRow) -> &'static str {
    match (event.kind, event.status) {
        (EventKind::Log, _) => "deploy.log",
        (EventKind::Warning, _) => "deploy.warning",
        (EventKind::Status, DeployStatus::Queued) => "deploy.queued",
        (EventKind::Status, DeployStatus::Completed) => "deploy.completed",
        (EventKind::Status, DeployStatus::Failed) => "deploy.failed",
        (EventKind::Status, DeployStatus::Superseded) => "deploy.superseded",
        (EventKind::Status, DeployStatus::RolledBack) => "deploy.rolled_back",
        (EventKind::Status, _) => "deploy.status",
    }
}

/// True for the event that ends a deploy.
pub fn is_terminal(event: &EventRow) -> bool {
    event.kind == EventKind::Status && event.status.is_terminal()
}

/// A deploy the pump follows.
struct Followed {
    app: AppName,
    preview: Option<PreviewId>,
    last_seq: u64,
    done: bool,
}

/// Publishes new deploy events while anyone is subscribed.
async fn pump(inner: Arc<Inner>) {
    let started = unix_ms();
    let mut followed: HashMap<DeployId, Followed> = HashMap::new();
    let mut first = true;
    loop {
        if inner.tx.receiver_count() == 0 {
            inner.pumping.store(false, Ordering::SeqCst);
            // A subscriber that arrived after the check above saw `pumping` still set and relies on this
            // task: take the flag back and carry on, unless a new pump already did.
            if inner.tx.receiver_count() == 0 || inner.pumping.swap(true, Ordering::SeqCst) {
                return;
            }
        }
        if let Err(e) = tick(&inner, &mut followed, started, first) {
            tracing::warn!(error = %e, "reading deploy events for /v1/events");
        }
        first = false;
        tokio::select! {
            _ = inner.closing.cancelled() => return,
            _ = tokio::time::sleep(POLL_INTERVAL) => {}
        }
    }
}

fn tick(
    inner: &Inner,
    followed: &mut HashMap<DeployId, Followed>,
    started: i64,
    first: bool,
) -> Result<(), StoreError> {
    let store = &inner.store;
    let mut rows = store.unfinished()?;
    rows.extend(store.list_deploys(&DeployFilter { limit: Some(RECENT), ..DeployFilter::default() })?.0);
    let mut seen = HashSet::new();
    for row in rows {
        if !seen.insert(row.id.clone()) || followed.contains_key(&row.id) {
            continue;
        }
        // Live only: what happened before the stream opened is not replayed.
        let (last_seq, done) = if first || row.created_at < started {
            (store.events(&row.id, 0)?.last().map(|e| e.seq).unwrap_or(0), row.status.is_terminal())
        } else {
            (0, false)
        };
        followed.insert(row.id.clone(), Followed { app: row.app, preview: row.preview_id, last_seq, done });
    }
    let redactor = Redactor::default();
    for (id, f) in followed.iter_mut().filter(|(_, f)| !f.done) {
        for event in store.events(id, f.last_seq)? {
            f.last_seq = event.seq;
            f.done |= is_terminal(&event);
            let _ = inner.tx.send(Arc::new(frame(&event, &f.app, f.preview.as_ref(), &redactor)));
        }
    }
    followed.retain(|id, f| !f.done || seen.contains(id));
    Ok(())
}
