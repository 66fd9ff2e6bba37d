//! slip's pure domain.
//!
//! Everything here is a function of its inputs: no IO, no clock, no async, no logging.
//! The daemon and the engine call into it; it never calls out.
//!
//! # Layout
//! - [`names`]: validated newtypes (`AppName`, `ImageRef`, `Tag`, `DeployId`, ...).
//! - [`env_file`]: the env-file (dotenv) text format, without `$` expansion.
//! - [`env_value`]: which texts may be a container environment value (no control characters).
//! - [`duration`] and [`size`]: the one parser and canonical printer for durations and sizes.
//! - [`log_lines`]: a container's output frames (timestamped, cut anywhere) as lines, per stream.
//! - [`config`]: server config (`slip.toml`, `apps/*.toml`): raw parse, interpolation, validation, problems.
//! - [`repo_config`]: the repo config (`/slip/slip.toml` in the image), read verbatim from memory.
//! - [`merge`]: the server's app file and the image's repo config merged for one deploy (SPEC §5).
//! - [`pod_manifest`]: a pod's Kubernetes manifest: parsed with positions and checked against SPEC §14.
//! - [`signature`]: webhook HMAC verification and admin-token comparison.
//! - [`deploy`]: one deploy attempt as a state machine (events in, actions out).
//! - [`defaults`]: named defaults shared by config and the deploy machine.

pub mod config;
pub mod defaults;
pub mod deploy;
pub mod duration;
pub mod env_file;
pub mod env_value;
pub mod error_chain;
pub mod log_lines;
pub mod merge;
pub mod names;
pub mod pod_manifest;
pub mod preview;
pub mod repo_config;
pub mod signature;
pub mod size;
