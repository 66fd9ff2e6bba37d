//! Log output: JSON lines by default, text with `log.format = "text"`; `RUST_LOG` overrides the level.

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber. Safe to call once per process.
pub fn init(config: &slip_core::config::Config) {
    // bollard logs request and answer bodies at debug level, and those hold container env (secrets):
    // it is capped at warn whatever the user asks for.
    let base = std::env::var("RUST_LOG").unwrap_or_else(|_| config.log.level.to_string());
    let filter = EnvFilter::try_new(format!("{base},{}", slip_engine::docker::LOG_FILTER_DIRECTIVE))
        .unwrap_or_else(|_| EnvFilter::new(format!("info,{}", slip_engine::docker::LOG_FILTER_DIRECTIVE)));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if config.log.format == "text" {
        let _ = builder.try_init();
    } else {
        let _ = builder.json().flatten_event(true).try_init();
    }
}
