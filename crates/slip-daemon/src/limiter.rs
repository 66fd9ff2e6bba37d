//! Failed-authentication limiting per client (SPEC §6.2): after `max` failures within `window` a client gets 429
//! until the window has passed.
//!
//! A client is an IPv4 address or an IPv6 /64 (one host usually owns a whole /64, so counting single IPv6
//! addresses would let it rotate forever). Memory and time per failure are bounded under a spray of addresses:
//! clients live in two generations of maps, the current one and the one before; a failure moves its client into
//! the current one, and the generations turn over once per window (or when the current one is full), dropping
//! the clients that failed in neither. Nothing ever scans every client, and each keeps at most `max` times.
//!
//! The log line of a rejected request is rate-limited here too: [`FailureLimiter::record`] says when the caller
//! should log, with the number of lines it held back since the last one.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, Ipv6Addr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::error::ApiError;

/// Clients tracked in one generation at most; past this the generations turn over early.
pub const MAX_TRACKED: usize = 50_000;

/// Time between two rejection log lines.
const LOG_EVERY: Duration = Duration::from_secs(1);

/// Counts failed authentications per client over a sliding window.
#[derive(Debug)]
pub struct FailureLimiter {
    max: u32,
    window: Duration,
    capacity: usize,
    inner: Mutex<Generations>,
}

/// What a client is counted as: an IPv4 address or an IPv6 /64.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Client {
    /// One IPv4 address (also an IPv4-mapped IPv6 one).
    V4(std::net::Ipv4Addr),
    /// The first 64 bits of an IPv6 address.
    V6Prefix(u64),
}

impl Client {
    /// The client `ip` counts as.
    pub fn of(ip: IpAddr) -> Client {
        match ip {
            IpAddr::V4(v4) => Client::V4(v4),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Client::V4(v4),
                None => Client::V6Prefix((u128::from(v6) >> 64) as u64),
            },
        }
    }
}

impl std::fmt::Display for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Client::V4(v4) => write!(f, "{v4}"),
            Client::V6Prefix(prefix) => write!(f, "{}/64", Ipv6Addr::from(u128::from(*prefix) << 64)),
        }
    }
}

#[derive(Debug)]
struct Generations {
    current: HashMap<Client, VecDeque<Instant>>,
    previous: HashMap<Client, VecDeque<Instant>>,
    turned: Option<Instant>,
    last_log: Option<Instant>,
    held_back: u64,
}

impl FailureLimiter {
    /// At most `max` failures per `window` per client.
    pub fn new(max: u32, window: Duration) -> FailureLimiter {
        FailureLimiter::with_capacity(max, window, MAX_TRACKED)
    }

    /// [`FailureLimiter::new`] tracking at most `capacity` clients per generation.
    pub fn with_capacity(max: u32, window: Duration, capacity: usize) -> FailureLimiter {
        let inner = Generations {
            current: HashMap::new(),
            previous: HashMap::new(),
            turned: None,
            last_log: None,
            held_back: 0,
        };
        FailureLimiter { max: max.max(1), window, capacity: capacity.max(1), inner: Mutex::new(inner) }
    }

    /// `Err(429)` when `ip`'s client is blocked now. Direct loopback clients are never blocked.
    pub fn check(&self, ip: IpAddr, direct_loopback: bool, now: Instant) -> Result<(), ApiError> {
        if direct_loopback {
            return Ok(());
        }
        let client = Client::of(ip);
        let inner = self.inner.lock().expect("limiter lock");
        let Some(times) = inner.current.get(&client).or_else(|| inner.previous.get(&client)) else { return Ok(()) };
        let recent: Vec<&Instant> = times.iter().filter(|t| now.saturating_duration_since(**t) < self.window).collect();
        if recent.len() as u32 >= self.max {
            let oldest = recent.first().map(|t| **t).unwrap_or(now);
            let retry = self.window.saturating_sub(now.saturating_duration_since(oldest)).as_secs().max(1);
            return Err(ApiError::RateLimited { retry_after: retry });
        }
        Ok(())
    }

    /// Records one failure of `ip`'s client. `Some(n)` when the caller should log the rejection now, `n` being the
    /// rejections it did not log since the last line; `None` to stay quiet.
    pub fn record(&self, ip: IpAddr, now: Instant) -> Option<u64> {
        let client = Client::of(ip);
        let mut inner = self.inner.lock().expect("limiter lock");
        let due = inner.turned.is_none_or(|t| now.saturating_duration_since(t) >= self.window);
        if due || inner.current.len() >= self.capacity {
            inner.previous = std::mem::take(&mut inner.current);
            inner.turned = Some(now);
        }
        let mut times = match inner.current.remove(&client) {
            Some(times) => times,
            None => inner.previous.remove(&client).unwrap_or_default(),
        };
        times.retain(|t| now.saturating_duration_since(*t) < self.window);
        times.push_back(now);
        while times.len() > self.max as usize {
            times.pop_front();
        }
        inner.current.insert(client, times);

        if inner.last_log.is_some_and(|t| now.saturating_duration_since(t) < LOG_EVERY) {
            inner.held_back += 1;
            return None;
        }
        inner.last_log = Some(now);
        Some(std::mem::take(&mut inner.held_back))
    }

    /// Clients tracked now, in both generations (for tests and metrics).
    pub fn tracked(&self) -> usize {
        let inner = self.inner.lock().expect("limiter lock");
        inner.current.len() + inner.previous.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn failures_block_until_the_window_passes() {
        let limiter = FailureLimiter::new(2, Duration::from_secs(60));
        let t0 = Instant::now();
        limiter.record(ip("198.51.100.7"), t0);
        assert!(limiter.check(ip("198.51.100.7"), false, t0).is_ok());
        limiter.record(ip("198.51.100.7"), t0);
        assert_eq!(limiter.check(ip("198.51.100.7"), false, t0).unwrap_err().code(), "rate_limited");
        assert!(limiter.check(ip("198.51.100.7"), true, t0).is_ok(), "direct loopback clients are exempt");
        assert!(limiter.check(ip("198.51.100.8"), false, t0).is_ok(), "another address is another client");
        assert!(limiter.check(ip("198.51.100.7"), false, t0 + Duration::from_secs(61)).is_ok());
    }

    #[test]
    fn an_ipv6_client_is_its_slash_64() {
        let limiter = FailureLimiter::new(3, Duration::from_secs(60));
        let t0 = Instant::now();
        for host in ["2001:db8:1:2::1", "2001:db8:1:2::beef", "2001:db8:1:2:ffff:ffff:ffff:ffff"] {
            limiter.record(ip(host), t0);
        }
        let err = limiter.check(ip("2001:db8:1:2:abcd::9"), false, t0).unwrap_err();
        assert_eq!(err.code(), "rate_limited", "rotating inside the /64 does not help");
        assert!(limiter.check(ip("2001:db8:1:3::1"), false, t0).is_ok(), "the next /64 is another client");
        assert_eq!(Client::of(ip("2001:db8:1:2::1")).to_string(), "2001:db8:1:2::/64");
        assert_eq!(Client::of(ip("::ffff:192.0.2.1")), Client::V4("192.0.2.1".parse().unwrap()), "v4-mapped");
    }

    #[test]
    fn a_spray_of_addresses_stays_bounded_and_a_blocked_client_stays_blocked() {
        let limiter = FailureLimiter::with_capacity(3, Duration::from_secs(60), 1000);
        let t0 = Instant::now();
        for _ in 0..3 {
            limiter.record(ip("203.0.113.9"), t0);
        }
        for i in 0..20_000u32 {
            let sprayed = IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + i));
            limiter.record(sprayed, t0 + Duration::from_millis(u64::from(i) / 100));
            if i % 500 == 0 {
                // The attacker keeps failing too, so it stays in the current generation.
                limiter.record(ip("203.0.113.9"), t0 + Duration::from_millis(u64::from(i) / 100));
            }
            assert!(limiter.tracked() <= 2 * 1000, "at most two generations of clients");
        }
        assert!(limiter.check(ip("203.0.113.9"), false, t0 + Duration::from_secs(1)).is_err());
    }

    #[test]
    fn rejections_are_logged_at_most_once_a_second_with_the_count_held_back() {
        let limiter = FailureLimiter::new(1000, Duration::from_secs(60));
        let t0 = Instant::now();
        assert_eq!(limiter.record(ip("198.51.100.1"), t0), Some(0));
        for i in 1..=50u64 {
            assert_eq!(limiter.record(ip("198.51.100.1"), t0 + Duration::from_millis(i * 10)), None);
        }
        assert_eq!(limiter.record(ip("198.51.100.2"), t0 + Duration::from_secs(1)), Some(50));
    }
}
