//! Reading the engine's error answers: which ones mean "not found", "already done", "registry refused us" or
//! "port taken".
//!
//! Docker and Podman say these things in status codes where they can and in message text where they cannot (a
//! pull that fails after streaming has begun has only a message), so both are looked at. Nothing here builds a
//! [`RuntimeError`] that needs the caller's context; `super` does that.

use bollard::errors::Error;

/// What an engine error says, as far as slip cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Answer {
    /// The engine could not be reached, or broke off the connection.
    Transport(String),
    /// The engine answered with this HTTP status (`None` for an error inside a stream) and message.
    Engine { status: Option<u16>, message: String },
}

impl Answer {
    /// Classifies a bollard error.
    pub(crate) fn of(err: &Error) -> Answer {
        match err {
            Error::DockerResponseServerError { status_code, message } => {
                Answer::Engine { status: Some(*status_code), message: message.trim().to_owned() }
            }
            Error::DockerStreamError { error } => Answer::Engine { status: None, message: error.trim().to_owned() },
            Error::JsonDataError { .. } | Error::JsonSerdeError { .. } => {
                Answer::Engine { status: None, message: format!("unexpected answer from the engine: {err}") }
            }
            other => Answer::Transport(other.to_string()),
        }
    }

    /// The HTTP status, when there was one.
    pub(crate) fn status(&self) -> Option<u16> {
        match self {
            Answer::Engine { status, .. } => *status,
            Answer::Transport(_) => None,
        }
    }

    /// The message, whatever its origin.
    pub(crate) fn message(&self) -> &str {
        match self {
            Answer::Engine { message, .. } | Answer::Transport(message) => message,
        }
    }
}

/// Why a pull failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PullFailure {
    /// The registry has no such repository, tag or digest.
    NotFound,
    /// The registry wants (other) credentials.
    Auth,
    /// Anything else.
    Other,
}

/// Classifies a failed pull by status code and message.
///
/// Authorisation is checked first: registries and engines phrase a refused anonymous pull as "pull access denied
/// … repository does not exist or may require 'docker login'", which also contains not-found words.
pub(crate) fn pull_failure(status: Option<u16>, message: &str) -> PullFailure {
    let m = message.to_ascii_lowercase();
    const AUTH: [&str; 7] = [
        "unauthorized",
        "authentication required",
        "no basic auth credentials",
        "denied",
        "401 unauthorized",
        "403 forbidden",
        "incorrect username or password",
    ];
    const NOT_FOUND: [&str; 4] = ["manifest unknown", "not found", "name unknown", "does not exist"];
    if matches!(status, Some(401 | 403)) || AUTH.iter().any(|s| m.contains(s)) {
        PullFailure::Auth
    } else if status == Some(404) || NOT_FOUND.iter().any(|s| m.contains(s)) {
        PullFailure::NotFound
    } else {
        PullFailure::Other
    }
}

/// Whether an engine message says a host port could not be bound.
pub(crate) fn is_port_conflict(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    m.contains("port is already allocated") || m.contains("address already in use")
}

/// The host port a port-conflict message names, among `candidates`; else the first candidate.
pub(crate) fn conflicting_port(message: &str, candidates: &[u16]) -> u16 {
    candidates
        .iter()
        .copied()
        .find(|port| {
            let needle = format!(":{port}");
            message
                .match_indices(&needle)
                .any(|(i, _)| !message[i + needle.len()..].starts_with(|c: char| c.is_ascii_digit()))
        })
        .or_else(|| candidates.first().copied())
        .unwrap_or(0)
}

/// `message` with every environment value of four or more characters replaced by `***`.
///
/// Engines sometimes echo parts of a create body back in an error; shorter values are left alone because
/// replacing them would garble the message without protecting anything worth a secret.
pub(crate) fn redact(message: &str, env: &[(String, String)]) -> String {
    let mut out = message.to_owned();
    for (_, value) in env {
        if value.chars().count() >= 4 {
            out = out.replace(value.as_str(), "***");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pull_failures_are_told_apart() {
        let cases = [
            (
                Some(404),
                "manifest for 127.0.0.1:5000/app:nope not found: manifest unknown: manifest unknown",
                PullFailure::NotFound,
            ),
            (None, "manifest unknown", PullFailure::NotFound),
            (
                Some(500),
                "Head \"http://127.0.0.1:5000/v2/app/manifests/v1\": no basic auth credentials",
                PullFailure::Auth,
            ),
            (Some(500), "unauthorized: authentication required", PullFailure::Auth),
            (
                Some(404),
                "pull access denied for app, repository does not exist or may require 'docker login'",
                PullFailure::Auth,
            ),
            (Some(403), "forbidden", PullFailure::Auth),
            (
                Some(500),
                "Get \"https://127.0.0.1:1/v2/\": dial tcp 127.0.0.1:1: connect: connection refused",
                PullFailure::Other,
            ),
        ];
        for (status, message, expected) in cases {
            assert_eq!(pull_failure(status, message), expected, "{message}");
        }
    }

    #[test]
    fn port_conflicts_name_the_port() {
        let docker = "driver failed programming external connectivity on endpoint slip-web (abc): \
                      Bind for 127.0.0.1:20002 failed: port is already allocated";
        assert!(is_port_conflict(docker));
        assert_eq!(conflicting_port(docker, &[2000, 20002]), 20002);
        let proxy = "Error starting userland proxy: listen tcp4 127.0.0.1:20001: bind: address already in use";
        assert!(is_port_conflict(proxy));
        assert_eq!(conflicting_port(proxy, &[20001]), 20001);
        assert_eq!(conflicting_port("address already in use", &[7, 8]), 7);
        assert!(!is_port_conflict("No such image: app:v1"));
    }

    #[test]
    fn redaction_hides_env_values() {
        let env = vec![("TOKEN".to_owned(), "s3cr3t-value".to_owned()), ("N".to_owned(), "1".to_owned())];
        assert_eq!(redact("bad env TOKEN=s3cr3t-value at 1", &env), "bad env TOKEN=*** at 1");
    }
}
