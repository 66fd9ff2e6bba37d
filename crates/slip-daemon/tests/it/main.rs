//! slipd end to end: a real slipd (in-process, on a real socket) against a real Docker engine (and, in `podman`,
//! real Podman), a real Caddy and a real registry. One binary, one module per area.

mod support;

mod apps;
mod apps_api;
mod caddy_share;
mod cancel;
mod crash;
mod deploy;
mod drain;
mod engine_events;
mod engine_restart;
mod full_disk;
mod gen_key;
mod hardening;
mod history;
mod http_bounds;
mod logs;
mod metrics;
mod notifications;
mod notify;
mod podman;
mod pods;
mod preview_crash;
mod previews;
mod reload;
mod repo_config;
mod rollback;
mod rotate_key;
mod watch;
mod webhook;
