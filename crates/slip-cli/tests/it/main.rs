//! `slip` end to end: the real binary against a real slipd (in-process, on a real socket) with real Docker,
//! Caddy and a registry, and in local mode against a real secret store; `validate` and `init` run offline on
//! temporary directories. One binary, one module per area.

mod support;

mod action;
mod apps;
mod deploy;
mod everyday;
mod init;
mod logs;
mod ops;
mod previews;
mod readme;
mod secrets;
mod validate;
