//! Log output: JSON lines by default, text with `log.format = "text"`; `RUST_LOG` overrides the level.
//!
//! Every line slipd writes passes through a redactor over every app's secrets and the config's tokens (SPEC
//! §11.4), refreshed with [`refresh`] whenever secrets or the config change. slipd never logs a value on purpose;
//! this catches the ones that arrive inside other text, such as an engine's error quoting a container's
//! environment.

use std::io::Write;
use std::sync::{LazyLock, RwLock};

use slip_engine::redact::Redactor;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

/// What log lines are redacted with now.
static REDACTOR: LazyLock<RwLock<Redactor>> = LazyLock::new(|| RwLock::new(Redactor::default()));

/// Installs the global subscriber. Safe to call once per process.
pub fn init(config: &slip_core::config::Config) {
    // Before boot there is no keyed store yet: plain secret files are covered now, encrypted ones from boot's
    // refresh on.
    refresh(config, &slip_engine::secrets::SecretStore::new(&config.storage.path));
    // bollard logs request and answer bodies at debug level, and those hold container env (secrets):
    // it is capped at warn whatever the user asks for.
    let base = std::env::var("RUST_LOG").unwrap_or_else(|_| config.log.level.to_string());
    let filter = EnvFilter::try_new(format!("{base},{}", slip_engine::docker::LOG_FILTER_DIRECTIVE))
        .unwrap_or_else(|_| EnvFilter::new(format!("info,{}", slip_engine::docker::LOG_FILTER_DIRECTIVE)));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(Stderr);
    if config.log.format == "text" {
        let _ = builder.try_init();
    } else {
        let _ = builder.json().flatten_event(true).try_init();
    }
}

/// Rebuilds the log redactor from `config` and the secret store (after a secret changed or the config was
/// reloaded).
pub fn refresh(config: &slip_core::config::Config, store: &slip_engine::secrets::SecretStore) {
    let redactor = crate::redaction::for_server(config, store);
    *REDACTOR.write().expect("log redactor lock") = redactor;
}

/// A writer that redacts what is written to it before passing it to `inner`. The formatter writes each event in
/// one call, so a value is never split between two writes.
pub struct Redacting<W> {
    inner: W,
    redactor: Redactor,
}

impl<W: Write> Redacting<W> {
    /// Redacts with `redactor` into `inner`.
    pub fn new(inner: W, redactor: Redactor) -> Redacting<W> {
        Redacting { inner, redactor }
    }
}

impl<W: Write> Write for Redacting<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match std::str::from_utf8(buf) {
            Ok(text) => self.inner.write_all(self.redactor.redact(text).as_bytes())?,
            Err(_) => self.inner.write_all(self.redactor.redact(&String::from_utf8_lossy(buf)).as_bytes())?,
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Makes a [`Redacting`] stderr writer per event, with the current redactor.
struct Stderr;

impl<'a> MakeWriter<'a> for Stderr {
    type Writer = Redacting<std::io::Stderr>;

    fn make_writer(&'a self) -> Self::Writer {
        Redacting::new(std::io::stderr(), REDACTOR.read().expect("log redactor lock").clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_inside_a_log_line_is_redacted_even_when_escaped() {
        let redactor = Redactor::new([("DATABASE_URL", "postgres://u:hunter2@db"), ("NULV", "abc\u{0}defghij")]);
        let mut out = Vec::new();
        let line =
            "{\"error\":\"start failed: invalid env \\\"NULV=abc\\\\x00defghij\\\" with postgres://u:hunter2@db\"}\n";
        Redacting::new(&mut out, redactor).write_all(line.as_bytes()).unwrap();
        let written = String::from_utf8(out).unwrap();
        assert!(!written.contains("hunter2") && !written.contains("defghij"), "{written}");
        assert!(written.contains("[redacted:DATABASE_URL]") && written.contains("[redacted:NULV]"), "{written}");
    }
}
