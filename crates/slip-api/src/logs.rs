//! Container logs (SPEC §6.3): one line of `GET /v1/apps/{name}/logs` with `Accept: application/x-ndjson`.

use serde::{Deserialize, Serialize};

/// One line of a container's output, already redacted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogLine {
    /// When the engine received the line: RFC 3339 with the engine's precision (nanoseconds for Docker), so a
    /// client can resume with `since=<at>`. `None` when the engine gave no time.
    pub at: Option<String>,
    /// `stdout` or `stderr`.
    pub stream: String,
    /// The container's name.
    pub container: String,
    /// The text, without its line ending, with secret values replaced by `[redacted:KEY]`.
    pub line: String,
}
