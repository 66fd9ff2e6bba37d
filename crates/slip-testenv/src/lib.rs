//! Test-only harness that runs slip's real neighbours: the Docker engine, a loopback registry, a private Caddy and
//! locally built app images.
//!
//! Tests that need a real component call [`require_docker`] (or [`require_podman`]) first. When the component is
//! unreachable the test panics with the command that fixes it: a silent skip would make CI lie.
//! Every helper panics with a message naming what failed, because its callers are tests and a panic is how a test
//! fails. The helpers are synchronous (they run commands and wait for sockets), so they can be used from plain
//! `#[test]`s and, for set-up and clean-up, from async tests too.
//!
//! This crate deliberately knows nothing about slip itself: it depends on no other slip crate and speaks only in
//! Docker, registry and HTTP terms.
//!
//! # Layout
//! - [`check`]: [`require_docker`] and [`require_podman`], the "is the engine there" gates.
//! - [`image`]: [`Image`], tiny `FROM scratch` images built from busybox-static, cached per process.
//! - [`registry`]: [`Registry`], a `docker-registry` on a free loopback port, optionally with htpasswd auth.
//! - [`guard`]: [`ContainerGuard`], which removes a test's labelled containers when dropped, even on panic.
//! - [`wait`]: [`wait_until`], [`wait_until_async`], [`free_port`] and [`unique_id`].
//! - [`caddy`]: a private Caddy per test.
//! - [`ports`]: [`PortRange`], a host port range per test daemon that no other live test daemon shares.

pub mod caddy;
pub mod check;
pub mod guard;
pub mod image;
pub mod ports;
pub mod registry;
pub mod wait;

mod cmd;

pub use check::{DOCKER_SOCKET, PODMAN_SOCKET, require_docker, require_podman};
pub use guard::{ContainerGuard, Engine};
pub use image::Image;
pub use ports::PortRange;
pub use registry::{Pushed, Registry};
pub use wait::{free_port, unique_id, wait_until, wait_until_async};
