//! The log source: a container's output, line by line.

use std::pin::Pin;
use std::time::SystemTime;

use async_trait::async_trait;
use futures::{Stream, TryStreamExt};

use super::RuntimeError;

/// Which part of a container's output [`ContainerRuntime::logs`] reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogRequest {
    /// Only the last this many lines (of those from `since` on); `None` means every line.
    pub tail: Option<usize>,
    /// Only lines written at or after this time (exact to the engine's nanosecond timestamps).
    pub since: Option<SystemTime>,
    /// Whether the stream ends now or stays open for new lines.
    pub follow: Follow,
}

impl LogRequest {
    /// The last `lines` lines, then the end of the stream.
    pub fn tail(lines: usize) -> LogRequest {
        LogRequest { tail: Some(lines), since: None, follow: Follow::No }
    }
}

/// Whether a log stream ends after the lines already written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Follow {
    /// The stream ends after the lines written so far.
    No,
    /// The stream stays open and yields new lines as they are written, until the container stops.
    UntilStopped,
}

pub use slip_core::log_lines::{LogLine, MAX_LOG_LINE, OutputStream};

/// A container's output, line by line; an `Err` item ends it.
pub type LogStream = Pin<Box<dyn Stream<Item = Result<LogLine, RuntimeError>> + Send>>;

/// Where container output comes from.
#[async_trait]
pub trait LogSource: Send + Sync {
    /// A container's output (stdout and stderr) as `request` selects, line by line, in the order the engine
    /// received it. A container that does not exist (any more) has no lines: the stream is empty.
    fn logs(&self, id: &str, request: &LogRequest) -> LogStream;
    /// The last `lines` lines of a container's output (stdout and stderr), as text, the pieces of a cut line
    /// joined again (for tests and small reads: a joined line is not bounded by [`MAX_LOG_LINE`]).
    async fn logs_tail(&self, id: &str, lines: usize) -> Result<Vec<String>, RuntimeError> {
        let pieces: Vec<LogLine> = self.logs(id, &LogRequest::tail(lines)).try_collect().await?;
        let mut joined: Vec<String> = Vec::new();
        let mut open: [Option<usize>; 2] = [None, None];
        for piece in pieces {
            let slot = usize::from(piece.stream == OutputStream::Stderr);
            match open[slot] {
                Some(at) => joined[at].push_str(&piece.text),
                None => joined.push(piece.text),
            }
            open[slot] = piece.cut.then(|| open[slot].unwrap_or(joined.len() - 1));
        }
        Ok(joined)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::ports::{ContainerSpec, InstanceRuntime, InstanceSpec, LogRotation, Resources};
    use crate::testing::{FakeRuntime, Journal};

    #[tokio::test]
    async fn logs_tail_joins_the_pieces_of_a_cut_line_per_stream() {
        let runtime = FakeRuntime::new(Journal::default());
        let spec = InstanceSpec::Container(ContainerSpec {
            name: "slip-web-1".into(),
            image: "registry.test/web@sha256:00".into(),
            labels: BTreeMap::new(),
            env: Vec::new(),
            ports: Vec::new(),
            network: None,
            resources: Resources::default(),
            mounts: Vec::new(),
            init: false,
            log: LogRotation { max_size_bytes: 1 << 20, max_files: 1 },
        });
        let id = runtime.start(&spec).await.unwrap();
        let line = |stream, text: &str, cut| LogLine { at: None, stream, text: text.into(), cut };
        runtime.write_log(&id, line(OutputStream::Stdout, "secret-va", true));
        runtime.write_log(&id, line(OutputStream::Stderr, "between", false));
        runtime.write_log(&id, line(OutputStream::Stdout, "lue-1", false));
        runtime.write_log(&id, line(OutputStream::Stdout, "next", false));
        assert_eq!(runtime.logs_tail(&id, 10).await.unwrap(), ["secret-value-1", "between", "next"]);
    }
}
