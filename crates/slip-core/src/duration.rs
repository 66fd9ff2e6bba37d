//! The one duration grammar used everywhere (config, API, CLI flags, webhook fields).
//! Owned by the config work; see SPEC §3.1.
