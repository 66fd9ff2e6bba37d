//! Server configuration: SPEC §3 and §4.
