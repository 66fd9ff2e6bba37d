//! `[[notifications]]`: outbound deploy notifications, server-wide in `slip.toml` and per app in
//! `apps/<name>.toml`. Each entry is one endpoint: a generic JSON webhook (signed like slip's own webhooks when it
//! has a `secret`) or a Slack incoming webhook.
//!
//! The URL is held as a [`Secret`]: a Slack webhook URL is itself the credential.

use super::reader::{Keys, Reader, Tbl};
use super::secret::Secret;

/// Keys of one `[[notifications]]` entry.
pub(crate) const KEYS: &[&str] = &["url", "format", "secret", "events"];

/// One notification endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    /// `http://` or `https://` URL the notification is POSTed to.
    pub url: Secret,
    /// The body's shape.
    pub format: NotifyFormat,
    /// `json` only: signs the body with HMAC-SHA256 and a timestamp (`X-Slip-Signature`, `X-Slip-Timestamp`).
    pub secret: Option<Secret>,
    /// Which events are sent; all of them when the key is left out.
    pub events: Vec<NotifyEvent>,
}

/// The body's shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotifyFormat {
    /// slip's JSON object.
    Json,
    /// Slack's incoming-webhook `{"text": …}`.
    Slack,
}

/// What a notification reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum NotifyEvent {
    /// The deploy left the queue and started pulling.
    DeployStarted,
    /// The new release serves.
    DeployCompleted,
    /// The deploy failed; the old release keeps serving.
    DeployFailed,
    /// The new release was rolled back after the switch.
    DeployRolledBack,
}

impl NotifyEvent {
    /// Every event, in the order they happen.
    pub const ALL: [NotifyEvent; 4] = [
        NotifyEvent::DeployStarted,
        NotifyEvent::DeployCompleted,
        NotifyEvent::DeployFailed,
        NotifyEvent::DeployRolledBack,
    ];

    /// The name used in config and in the JSON body (`deploy.completed`).
    pub fn as_str(self) -> &'static str {
        match self {
            NotifyEvent::DeployStarted => "deploy.started",
            NotifyEvent::DeployCompleted => "deploy.completed",
            NotifyEvent::DeployFailed => "deploy.failed",
            NotifyEvent::DeployRolledBack => "deploy.rolled_back",
        }
    }
}

/// Events SPEC names that this slipd cannot send yet: `--check` says so instead of accepting them silently.
const NOT_YET: &[&str] = &["preview.created", "preview.torn_down"];

/// Reads the `[[notifications]]` entries of `t` (a file's root table). Problems go to the reader; entries with
/// problems are left out.
pub(crate) fn read(r: &mut Reader<'_>, t: &Tbl<'_>) -> Vec<Notification> {
    let mut out = Vec::new();
    for e in r.tables(t, "notifications", Keys::of(KEYS)) {
        let url = r.string(&e, "url");
        if url.is_none() && !r.has(&e, "url") {
            r.missing(&e, "url", Some("each [[notifications]] entry needs the url it posts to".into()));
        }
        let url = url.and_then(|v| {
            let ok = (v.v.starts_with("https://") || v.v.starts_with("http://"))
                && v.v.split_once("://").is_some_and(|(_, rest)| !rest.is_empty() && !rest.starts_with('/'));
            if ok {
                Some(Secret::new(v.v))
            } else {
                r.invalid(&v, "is not an http:// or https:// URL", Some("e.g. https://hooks.example.com/slip".into()));
                None
            }
        });
        let format = match r.choice(&e, "format", &[("json", NotifyFormat::Json), ("slack", NotifyFormat::Slack)]) {
            Some(v) => Some(v.v),
            None if r.has(&e, "format") => None,
            None => Some(NotifyFormat::Json),
        };
        let secret = r.string(&e, "secret");
        let secret = match (secret, format) {
            (Some(v), Some(NotifyFormat::Slack)) => {
                r.invalid(&v, "signs JSON notifications; Slack's incoming webhooks take no secret", None);
                None
            }
            (Some(v), _) if v.v.is_empty() => {
                r.invalid(&v, "is empty", Some("leave secret out for unsigned notifications".into()));
                None
            }
            (Some(v), _) => Some(Secret::new(v.v)),
            (None, _) => None,
        };
        let events = match r.strings(&e, "events") {
            None => Some(NotifyEvent::ALL.to_vec()),
            Some(list) => {
                let mut events = Vec::new();
                let mut ok = true;
                for v in list {
                    if NOT_YET.contains(&v.v.as_str()) {
                        r.invalid(&v, "is not supported yet: this slipd does not announce preview creation and teardown as events", None);
                        ok = false;
                        continue;
                    }
                    let options: Vec<(&str, NotifyEvent)> = NotifyEvent::ALL.iter().map(|e| (e.as_str(), *e)).collect();
                    match r.choose(v, &options) {
                        Some(e) if !events.contains(&e.v) => events.push(e.v),
                        Some(_) => {}
                        None => ok = false,
                    }
                }
                events.sort();
                ok.then_some(events)
            }
        };
        let bad_secret = r.has(&e, "secret") && secret.is_none();
        if let (Some(url), Some(format), Some(events), false) = (url, format, events, bad_secret) {
            out.push(Notification { url, format, secret, events });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::config::{Problem, SourceFile, Sources, parse};

    const APP: &str = "[app]\nname = \"myapp\"\nimage = \"ghcr.io/acme/myapp\"\n";

    fn sources(slip_toml: &str, app_extra: &str) -> Sources {
        Sources {
            slip_toml: Some(SourceFile { path: "slip.toml".into(), text: slip_toml.to_owned() }),
            apps: vec![SourceFile { path: "apps/myapp.toml".into(), text: format!("{APP}{app_extra}") }],
            env: BTreeMap::from([("HOOK_SECRET".to_owned(), "resolved-hook-secret-0123".to_owned())]),
        }
    }

    fn problems(slip_toml: &str, app_extra: &str) -> String {
        match parse(&sources(slip_toml, app_extra)) {
            Ok(_) => panic!("expected problems"),
            Err(p) => p.iter().map(Problem::to_string).collect::<Vec<_>>().join("\n"),
        }
    }

    #[test]
    fn server_wide_and_per_app_entries_are_read_with_defaults() {
        let slip_toml = "[[notifications]]\nurl = \"https://hooks.example.com/slip\"\nsecret = \"${HOOK_SECRET}\"\n\n\
                         [[notifications]]\nurl = \"https://hooks.slack.com/services/T/B/X\"\nformat = \"slack\"\n\
                         events = [\"deploy.failed\", \"deploy.rolled_back\", \"deploy.failed\"]\n";
        let app = "\n[[notifications]]\nurl = \"http://127.0.0.1:9000/hook\"\nevents = [\"deploy.completed\"]\n";
        let config = parse(&sources(slip_toml, app)).expect("valid").config;
        assert_eq!(config.notifications.len(), 2);
        let json = &config.notifications[0];
        assert_eq!((json.format, json.events.as_slice()), (NotifyFormat::Json, NotifyEvent::ALL.as_slice()));
        assert_eq!(json.secret.as_ref().map(Secret::expose), Some("resolved-hook-secret-0123"));
        let slack = &config.notifications[1];
        assert_eq!(slack.format, NotifyFormat::Slack);
        assert_eq!(slack.events, [NotifyEvent::DeployFailed, NotifyEvent::DeployRolledBack]);
        let per_app = &config.apps.values().next().unwrap().notifications;
        assert_eq!(per_app.len(), 1);
        assert_eq!(per_app[0].url.expose(), "http://127.0.0.1:9000/hook");
        assert_eq!(per_app[0].events, [NotifyEvent::DeployCompleted]);
        assert!(!format!("{config:?}").contains("hooks.slack.com"), "URLs are secrets in Debug output");
    }

    #[test]
    fn bad_entries_are_reported_with_file_line_and_what_is_valid() {
        let slip_toml = "[[notifications]]\nformat = \"json\"\n\n[[notifications]]\nurl = \"ftp://x\"\nformat = \"xml\"\n\n\
                         [[notifications]]\nurl = \"https://hooks.slack.com/x\"\nformat = \"slack\"\nsecret = \"s\"\n\n\
                         [[notifications]]\nurl = \"https://h.example.com\"\nevents = [\"deploy.finished\", \"preview.created\"]\n\
                         urll = \"x\"\n";
        let text = problems(slip_toml, "");
        for expected in [
            "slip.toml:1:1: ",
            "needs the url it posts to",
            "slip.toml:5:7: notifications[1].url: \"ftp://x\" is not an http:// or https:// URL",
            "notifications[1].format: \"xml\" is not one of \"json\", \"slack\"",
            "notifications[2].secret: \"s\" signs JSON notifications; Slack's incoming webhooks take no secret",
            "\"deploy.finished\" is not one of \"deploy.started\", \"deploy.completed\", \"deploy.failed\", \"deploy.rolled_back\"",
            "\"preview.created\" is not supported yet",
            "unknown key \"urll\" in [[notifications]] (did you mean \"url\"?)",
        ] {
            assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
        }
        let app_text = problems("", "\n[[notifications]]\nurl = 3\n");
        assert!(app_text.contains("apps/myapp.toml:6:7: notifications[0].url"), "{app_text}");
    }
}
