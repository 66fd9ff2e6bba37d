//! Time for the driver and the record: the monotonic clock the deploy machine is fed, and wall-clock Unix
//! milliseconds for the store.

/// The monotonic now, from tokio's clock so paused-time tests control it.
pub fn now() -> std::time::Instant {
    tokio::time::Instant::now().into_std()
}

/// Wall-clock Unix milliseconds for the record.
pub fn unix_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}
