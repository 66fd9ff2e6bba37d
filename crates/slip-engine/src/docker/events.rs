//! Engine events over the Docker API (`GET /events`, which Podman's compatible API also serves): container exits
//! and OOM kills of containers carrying given labels, as [`RuntimeEvent`]s.

use std::collections::HashMap;

use bollard::models::EventMessage;
use bollard::query_parameters::EventsOptions;
use futures::StreamExt;

use super::errors::Answer;
use super::{Backend, Runtime};
use crate::ports::{RuntimeError, RuntimeEvent, RuntimeEventKind, RuntimeEvents};

/// Attributes the engine adds beside a container's labels.
const NOT_LABELS: [&str; 3] = ["name", "image", "exitCode"];

impl Runtime {
    /// See [`crate::ports::InstanceRuntime::events`].
    pub(super) fn container_events(&self, labels: &[(&str, &str)]) -> RuntimeEvents {
        let mut filters = HashMap::from([
            ("type".to_owned(), vec!["container".to_owned()]),
            ("label".to_owned(), labels.iter().map(|(k, v)| format!("{k}={v}")).collect()),
        ]);
        // Podman 4.3 reports an exit as `die` but filters by its own name for it, `died`; there every container
        // event comes, and `event` below keeps the two that matter.
        if self.backend == Backend::Docker {
            filters.insert("event".to_owned(), vec!["die".to_owned(), "oom".to_owned()]);
        }
        // From the start of this second: the request goes out when the stream is first polled, and an event in
        // between must not be lost.
        let since = time::OffsetDateTime::now_utc().unix_timestamp().to_string();
        let options = EventsOptions { since: Some(since), until: None, filters: Some(filters) };
        let socket = self.socket.clone();
        let stream = self.docker.events(Some(options)).filter_map(move |item| {
            let item = match item {
                Ok(message) => event(message).map(Ok),
                Err(err) => Some(Err(RuntimeError::Unreachable {
                    socket: socket.clone(),
                    message: format!("engine event stream: {}", Answer::of(&err).message()),
                })),
            };
            std::future::ready(item)
        });
        Box::pin(stream)
    }
}

/// The event a message reports, or `None` for one slip does not watch.
fn event(message: EventMessage) -> Option<RuntimeEvent> {
    let attributes = message.actor.and_then(|actor| actor.attributes).unwrap_or_default();
    let kind = match message.action.as_deref()? {
        "die" | "died" => RuntimeEventKind::Died { exit_code: attributes.get("exitCode").and_then(|c| c.parse().ok()) },
        "oom" => RuntimeEventKind::OutOfMemory,
        _ => return None,
    };
    let container = attributes.get("name")?.clone();
    let labels = attributes.into_iter().filter(|(key, _)| !NOT_LABELS.contains(&key.as_str())).collect();
    Some(RuntimeEvent { container, labels, kind })
}

#[cfg(test)]
mod tests {
    use bollard::models::EventActor;

    use super::*;

    #[test]
    fn exits_and_oom_kills_are_read_with_their_labels() {
        let message = |action: &str| EventMessage {
            action: Some(action.to_owned()),
            actor: Some(EventActor {
                id: Some("abc".into()),
                attributes: Some(HashMap::from([
                    ("name".to_owned(), "slip-web-1".to_owned()),
                    ("image".to_owned(), "registry.test/web:v1".to_owned()),
                    ("exitCode".to_owned(), "137".to_owned()),
                    ("slip.app".to_owned(), "web".to_owned()),
                ])),
            }),
            ..EventMessage::default()
        };
        let died = event(message("die")).unwrap();
        assert_eq!(died.container, "slip-web-1");
        assert_eq!(died.kind, RuntimeEventKind::Died { exit_code: Some(137) });
        assert_eq!(died.labels.into_iter().collect::<Vec<_>>(), [("slip.app".to_owned(), "web".to_owned())]);
        assert_eq!(event(message("oom")).unwrap().kind, RuntimeEventKind::OutOfMemory);
        assert_eq!(event(message("start")), None);
    }
}
