//! Server-sent event streams (SPEC §17.3): `GET /v1/deploys/{id}/events` (signed for the deploy's app, or
//! admin) replays the deploy's stored events from the start or after `Last-Event-ID`, then follows new ones and
//! closes after the terminal event; `GET /v1/events?app=` (admin) sends every event from now on.
//!
//! Frames are `id: <seq>` (the deploy's event sequence; a per-stream counter on `/v1/events`), `event: <type>`
//! and `data: <EventFrame JSON>`, with a heartbeat comment every 15 s. Messages pass through the app's redactor
//! on the way out, in addition to the redaction the driver applied when it recorded them. How new events are
//! found is described in [`crate::events`].

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::Stream;
use slip_api::EventFrame;
use slip_core::names::{AppName, DeployId, PreviewId};
use slip_engine::redact::Redactor;
use slip_engine::store::{EventRow, Store};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use crate::api::admin::{AdminOnly, Needs};
use crate::api::caller::{Caller, Credentials};
use crate::error::ApiError;
use crate::events::{POLL_INTERVAL, frame, is_terminal};
use crate::state::AppState;

/// Interval of the `:` heartbeat comment on every stream.
pub const HEARTBEAT: Duration = Duration::from_secs(15);

/// The 401 message of `GET /v1/events`.
/// The 401 message of every events endpoint.
pub struct EventsApi;

impl Needs for EventsApi {
    const MESSAGE: &str = "the event stream needs the admin token: Authorization: Bearer <auth.admin_token>";
}

/// `GET /v1/deploys/{id}/events`.
pub async fn deploy_events(
    State(state): State<AppState>,
    credentials: Credentials,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let row = match id.parse::<DeployId>() {
        Ok(parsed) => state.store.deploy(&parsed).map_err(|e| ApiError::Internal(e.into()))?,
        Err(_) => None,
    };
    let app = row.as_ref().map(|r| r.app.to_string());
    // As for `GET /v1/deploys/{id}`: an unknown deploy verifies against a decoy key, so only the admin
    // learns that it does not exist.
    if credentials.caller(&state, app.as_deref()).await? == Caller::Public {
        return Err(ApiError::Unauthorized {
            code: "missing_signature",
            message: "this stream needs a signature for the deploy's app (X-Slip-Signature with X-Slip-Timestamp) \
                      or the admin token",
        });
    }
    let Some(row) = row else {
        return Err(ApiError::not_found("deploy_not_found", format!("no deploy {id}")));
    };
    let after = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or(0);
    let stream = DeployStream {
        store: state.store.clone(),
        redactor: crate::redaction::for_app(&state.config(), &state.secrets, &row.app),
        id: row.id,
        app: row.app,
        preview: row.preview_id,
        after,
        pending: VecDeque::new(),
        polled: false,
        done: false,
        closing: state.events.closing().clone(),
    };
    Ok(sse(futures::stream::unfold(stream, DeployStream::next)))
}

/// `?app=` of `/v1/events`.
#[derive(Debug, serde::Deserialize)]
pub struct EventsQuery {
    app: Option<String>,
}

/// `GET /v1/events` (admin): every event from now on, optionally of one app.
pub async fn all_events(
    State(state): State<AppState>,
    Query(q): Query<EventsQuery>,
    _: AdminOnly<EventsApi>,
) -> Result<Response, ApiError> {
    let app = q
        .app
        .map(|a| {
            a.parse::<AppName>()
                .map_err(|e: slip_core::names::NameError| ApiError::field("invalid_request", "app", e.to_string()))
        })
        .transpose()?;
    let stream = LiveStream {
        rx: state.events.subscribe(),
        state: state.clone(),
        app,
        redactors: HashMap::new(),
        counter: 0,
        closing: state.events.closing().clone(),
    };
    Ok(sse(futures::stream::unfold(stream, LiveStream::next)))
}

fn sse(stream: impl Stream<Item = Result<Event, Infallible>> + Send + 'static) -> Response {
    Sse::new(stream).keep_alive(KeepAlive::new().interval(HEARTBEAT).text("")).into_response()
}

fn event(id: u64, frame: &EventFrame) -> Event {
    let data = serde_json::to_string(frame).unwrap_or_else(|_| "{}".to_owned());
    Event::default().id(id.to_string()).event(frame.kind.as_str()).data(data)
}

/// One deploy's events: stored ones first, then new ones as the store gets them, until the terminal one.
struct DeployStream {
    store: Store,
    redactor: Redactor,
    id: DeployId,
    app: AppName,
    preview: Option<PreviewId>,
    after: u64,
    pending: VecDeque<EventRow>,
    polled: bool,
    done: bool,
    closing: CancellationToken,
}

impl DeployStream {
    async fn next(mut self) -> Option<(Result<Event, Infallible>, DeployStream)> {
        loop {
            if let Some(row) = self.pending.pop_front() {
                self.done |= is_terminal(&row);
                let frame = frame(&row, &self.app, self.preview.as_ref(), &self.redactor);
                return Some((Ok(event(row.seq, &frame)), self));
            }
            if self.done {
                return None;
            }
            if self.polled {
                tokio::select! {
                    _ = self.closing.cancelled() => return None,
                    _ = tokio::time::sleep(POLL_INTERVAL) => {}
                }
            }
            self.polled = true;
            let rows = match self.store.events(&self.id, self.after) {
                Ok(rows) => rows,
                Err(e) => {
                    tracing::warn!(deploy_id = %self.id, error = %e, "reading deploy events for a stream");
                    return None;
                }
            };
            if let Some(last) = rows.last() {
                self.after = last.seq;
            } else if self.store.deploy(&self.id).ok().flatten().is_none_or(|d| d.status.is_terminal()) {
                // Everything up to the end was sent before (a resumed stream past the terminal event).
                return None;
            }
            self.pending.extend(rows);
        }
    }
}

/// Every event from now on, from the daemon's bus.
struct LiveStream {
    rx: broadcast::Receiver<Arc<EventFrame>>,
    state: AppState,
    app: Option<AppName>,
    redactors: HashMap<String, Redactor>,
    counter: u64,
    closing: CancellationToken,
}

impl LiveStream {
    async fn next(mut self) -> Option<(Result<Event, Infallible>, LiveStream)> {
        loop {
            let received = tokio::select! {
                _ = self.closing.cancelled() => return None,
                r = self.rx.recv() => r,
            };
            let frame = match received {
                Ok(frame) => frame,
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    let comment = Event::default().comment(format!("{n} events were dropped: this client is too slow"));
                    return Some((Ok(comment), self));
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            };
            if self.app.as_ref().is_some_and(|want| frame.app.as_deref() != Some(want.as_str())) {
                continue;
            }
            let mut frame = (*frame).clone();
            if let (Some(app), Some(message)) = (&frame.app, &frame.message) {
                let redactor = self.redactors.entry(app.clone()).or_insert_with(|| match app.parse::<AppName>() {
                    Ok(name) => crate::redaction::for_app(&self.state.config(), &self.state.secrets, &name),
                    Err(_) => Redactor::default(),
                });
                frame.message = Some(redactor.redact(message).into_owned());
            }
            self.counter += 1;
            return Some((Ok(event(self.counter, &frame)), self));
        }
    }
}
