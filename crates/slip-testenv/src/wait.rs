//! Small test utilities: polling for a condition, picking a free loopback port and naming things uniquely.
//!
//! Waiting is always polling with a deadline, never a fixed sleep. Nothing here talks to an engine.

use std::future::Future;
use std::net::TcpListener;
use std::time::{Duration, Instant};

/// How often [`wait_until`] and [`wait_until_async`] re-check their condition.
pub const POLL_INTERVAL: Duration = Duration::from_millis(75);

/// Polls `condition` every [`POLL_INTERVAL`] until it returns `true`; panics once `timeout` has passed.
///
/// `what` completes the sentence "timed out waiting until …" in the panic message, e.g. `"the registry answers"`.
/// The condition is checked one last time at the deadline, so a slow machine only fails when it really is late.
/// Use [`wait_until_async`] inside async tests when the condition is driven by the same runtime.
#[track_caller]
pub fn wait_until(timeout: Duration, what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    loop {
        if condition() {
            return;
        }
        if Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting until {what}");
        }
        std::thread::sleep(POLL_INTERVAL.min(deadline.saturating_duration_since(Instant::now())));
    }
}

/// The async form of [`wait_until`]: awaits `condition()` every [`POLL_INTERVAL`] until it yields `true`.
///
/// It sleeps with `tokio::time::sleep`, so other tasks on the runtime (a daemon under test, say) keep running.
/// The deadline is measured on the wall clock, because what it waits for is a real component.
#[track_caller]
pub fn wait_until_async<'a, F, Fut>(timeout: Duration, what: &'a str, mut condition: F) -> impl Future<Output = ()> + 'a
where
    F: FnMut() -> Fut + 'a,
    Fut: Future<Output = bool> + 'a,
{
    // Captured here, outside the future, so the panic points at the test's call site.
    let caller = std::panic::Location::caller();
    async move {
        let deadline = Instant::now() + timeout;
        loop {
            if condition().await {
                return;
            }
            if Instant::now() >= deadline {
                panic!("timed out after {timeout:?} waiting until {what} (waited at {caller})");
            }
            tokio::time::sleep(POLL_INTERVAL.min(deadline.saturating_duration_since(Instant::now()))).await;
        }
    }
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
///
/// The port is found by binding port 0 and closing the socket again, so another process could take it before the
/// caller binds it; the kernel's ephemeral-port rotation makes that rare. Prefer passing a bound listener where the
/// code under test accepts one.
#[track_caller]
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|error| panic!("cannot bind 127.0.0.1:0: {error}"));
    listener.local_addr().expect("a bound listener has an address").port()
}

/// A short random identifier that is a valid DNS label, app name, label value and image repository name.
///
/// It is `t` followed by 10 lowercase hex digits, e.g. `t3fa90c1b2d`; use it to keep parallel tests apart.
pub fn unique_id() -> String {
    let hex = uuid::Uuid::new_v4().simple().to_string();
    format!("t{}", &hex[..10])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unique_ids_are_dns_labels_and_differ() {
        let a = unique_id();
        let b = unique_id();
        assert_ne!(a, b);
        assert_eq!(a.len(), 11);
        assert!(a.starts_with('t'));
        assert!(a.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()), "{a}");
    }

    #[test]
    fn free_port_can_be_bound() {
        let port = free_port();
        assert_ne!(port, 0);
        TcpListener::bind(("127.0.0.1", port)).expect("the port should still be free");
    }

    #[test]
    fn wait_until_returns_once_the_condition_holds() {
        let mut calls = 0;
        wait_until(Duration::from_secs(5), "the third call", || {
            calls += 1;
            calls == 3
        });
        assert_eq!(calls, 3);
    }

    #[test]
    fn wait_until_panics_with_what_it_waited_for() {
        let started = Instant::now();
        let panic = std::panic::catch_unwind(|| wait_until(Duration::from_millis(200), "pigs fly", || false))
            .expect_err("the condition never holds");
        let message = panic.downcast_ref::<String>().expect("a formatted panic message");
        assert_eq!(message, "timed out after 200ms waiting until pigs fly");
        assert!(started.elapsed() >= Duration::from_millis(200));
    }

    #[tokio::test]
    async fn wait_until_async_lets_other_tasks_run() {
        let flag = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let setter = flag.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(150)).await;
            setter.store(true, std::sync::atomic::Ordering::SeqCst);
        });
        wait_until_async(Duration::from_secs(5), "the spawned task sets the flag", || {
            let flag = flag.clone();
            async move { flag.load(std::sync::atomic::Ordering::SeqCst) }
        })
        .await;
    }
}
