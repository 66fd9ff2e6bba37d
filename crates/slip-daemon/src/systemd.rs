//! systemd's notify protocol for `Type=notify` (SPEC §2): `READY=1` once slipd has booted and its API listener is
//! bound, `STOPPING=1` when shutdown begins, and `WATCHDOG=1` every `WatchdogSec/2` while slipd's own loops are
//! alive.
//!
//! Everything here is a no-op when `NOTIFY_SOCKET` is unset (slipd started by hand, in a container, in tests), so
//! callers never check. The messages go through the `sd-notify` crate.
//!
//! The watchdog does not ping from a timer alone: a ping means "slipd works", so before each one it checks that
//! the background monitor task (health and Caddy reconcile) is still running and that the API listener serves
//! `GET /healthz` (which answers 503 when the store does not) through the same accept loop clients use. A stalled runtime sends nothing
//! because this task runs on it. When a check fails, the ping is withheld and systemd restarts slipd after
//! `WatchdogSec`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use sd_notify::NotifyState;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::task::AbortHandle;
use tokio_util::sync::CancellationToken;

/// Tells systemd that slipd is ready: its listener on `listen` is bound and boot (store, reconcile) is done.
pub fn ready(listen: SocketAddr) {
    let status = format!("listening on {listen}");
    send(&[NotifyState::Ready, NotifyState::Status(&status)]);
}

/// Tells systemd that slipd is shutting down (running deploys get `server.shutdown_timeout`).
pub fn stopping() {
    send(&[NotifyState::Stopping, NotifyState::Status("shutting down: waiting for running deploys")]);
}

fn send(states: &[NotifyState<'_>]) {
    if let Err(e) = sd_notify::notify(false, states) {
        tracing::warn!(error = %e, "sending a notification to systemd (NOTIFY_SOCKET)");
    }
}

/// The watchdog interval systemd asked for (`WATCHDOG_USEC`, for this process), if any.
pub fn watchdog_interval() -> Option<Duration> {
    let mut usec = 0;
    (sd_notify::watchdog_enabled(false, &mut usec) && usec > 0).then(|| Duration::from_micros(usec))
}

/// What the watchdog looks at before each ping.
pub struct Liveness {
    /// The monitor task; it runs for slipd's whole life, so a finished one means it died.
    pub monitor: AbortHandle,
    /// The bound API address.
    pub listen: SocketAddr,
}

/// Spawns the watchdog when systemd asked for one; it ends when `closing` is cancelled.
pub fn spawn_watchdog(liveness: Liveness, closing: CancellationToken) {
    let Some(interval) = watchdog_interval() else { return };
    tokio::spawn(watchdog(liveness, interval / 2, closing));
}

async fn watchdog(liveness: Liveness, period: Duration, closing: CancellationToken) {
    let mut failing = false;
    loop {
        match check(&liveness, period).await {
            Ok(()) => {
                if failing {
                    tracing::info!("slipd's loops answer again; watchdog pings resume");
                    failing = false;
                }
                send(&[NotifyState::Watchdog]);
            }
            Err(problem) => {
                if !failing {
                    tracing::error!(problem = %problem, "withholding the systemd watchdog ping");
                    failing = true;
                }
            }
        }
        tokio::select! {
            _ = closing.cancelled() => return,
            _ = tokio::time::sleep(period) => {}
        }
    }
}

/// Ok when every loop of slipd is alive; else what is not.
async fn check(liveness: &Liveness, timeout: Duration) -> Result<(), String> {
    if liveness.monitor.is_finished() {
        return Err("the background monitor (health and Caddy reconcile) has stopped".into());
    }
    match tokio::time::timeout(timeout, healthz(liveness.listen)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(format!("the API listener on {} does not serve /healthz: {e}", liveness.listen)),
        Err(_) => Err(format!("the API listener on {} did not answer /healthz within {timeout:?}", liveness.listen)),
    }
}

/// One `GET /healthz` over a fresh connection to slipd's own listener; Ok on a 200.
async fn healthz(listen: SocketAddr) -> std::io::Result<()> {
    let address = dial_address(listen);
    let mut stream = tokio::net::TcpStream::connect(address).await?;
    // The Host is the address dialled: slipd answers an unauthenticated request only for a host it is reached at.
    let request = format!("GET /healthz HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut head = [0u8; 13];
    stream.read_exact(&mut head).await?;
    if status_is_ok(&head) {
        Ok(())
    } else {
        Err(std::io::Error::other(format!("answered {:?}", String::from_utf8_lossy(&head))))
    }
}

/// Where to connect to reach a listener bound to `listen` (a wildcard address is reached on loopback).
fn dial_address(listen: SocketAddr) -> SocketAddr {
    match listen.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => SocketAddr::new(Ipv4Addr::LOCALHOST.into(), listen.port()),
        IpAddr::V6(ip) if ip.is_unspecified() => SocketAddr::new(Ipv6Addr::LOCALHOST.into(), listen.port()),
        _ => listen,
    }
}

/// True for the start of an HTTP/1.x 200 response (`HTTP/1.1 200 `: the status code is followed by a space).
fn status_is_ok(head: &[u8]) -> bool {
    head.len() >= 13 && head.starts_with(b"HTTP/1.") && &head[8..13] == b" 200 "
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_200_counts() {
        assert!(status_is_ok(b"HTTP/1.1 200 OK"));
        assert!(status_is_ok(b"HTTP/1.0 200 "));
        assert!(!status_is_ok(b"HTTP/1.1 503 Service Unavailable"));
        assert!(!status_is_ok(b"HTTP/1.1 2000"));
        assert!(!status_is_ok(b"SSH-2.0-Open"));
    }

    #[test]
    fn wildcard_listeners_are_dialled_on_loopback() {
        assert_eq!(dial_address("0.0.0.0:7890".parse().unwrap()), "127.0.0.1:7890".parse().unwrap());
        assert_eq!(dial_address("[::]:7890".parse().unwrap()), "[::1]:7890".parse().unwrap());
        assert_eq!(dial_address("127.0.0.1:7890".parse().unwrap()), "127.0.0.1:7890".parse().unwrap());
    }
}
