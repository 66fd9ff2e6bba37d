//! Host port ranges for the code under test to lease from (slip's `runtime.port_range`), one per test daemon, never
//! shared by two daemons running at once, even in different test processes.
//!
//! Ranges are [`RANGE_SIZE`] ports of `20000..32500`, below Linux's ephemeral range (32768-60999) so that client
//! sockets and [`crate::free_port`] never take them. A range is held by an exclusive `flock` on a file named after
//! it in the system's temporary directory, for as long as the [`PortRange`] lives; the kernel drops the lock when
//! the process dies, so a crashed test leaves nothing to clean up. Before handing a range out, every port of it is
//! checked to be free on 127.0.0.1.

use std::fs::{self, File};
use std::net::TcpListener;
use std::path::PathBuf;

/// Ports per range: enough for a test's releases, old and new, of a few apps.
pub const RANGE_SIZE: u16 = 25;

/// The first port of the first range.
const FIRST: u16 = 20000;

/// How many ranges there are.
const SLOTS: u16 = 500;

/// A leased range `first..=last`, free of other test daemons while this value lives.
#[derive(Debug)]
pub struct PortRange {
    first: u16,
    /// Holds the `flock`; closing it releases the range.
    _lock: File,
}

impl PortRange {
    /// Leases a range no other live [`PortRange`] holds and no process listens in; panics when every range is taken.
    #[track_caller]
    pub fn lease() -> PortRange {
        let dir = std::env::temp_dir().join("slip-testenv-port-ranges");
        fs::create_dir_all(&dir).unwrap_or_else(|error| panic!("cannot create {}: {error}", dir.display()));
        let start = uuid::Uuid::new_v4().as_u128() as u16 % SLOTS;
        for offset in 0..SLOTS {
            let slot = (start + offset) % SLOTS;
            let first = FIRST + slot * RANGE_SIZE;
            let path: PathBuf = dir.join(format!("{first}.lock"));
            let file = File::options()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&path)
                .unwrap_or_else(|error| panic!("cannot open {}: {error}", path.display()));
            let locked = file.try_lock().is_ok();
            if locked && (first..first + RANGE_SIZE).all(|port| TcpListener::bind(("127.0.0.1", port)).is_ok()) {
                return PortRange { first, _lock: file };
            }
        }
        panic!("every test port range in {FIRST}-{} is in use", FIRST + SLOTS * RANGE_SIZE - 1);
    }

    /// The first port.
    pub fn first(&self) -> u16 {
        self.first
    }

    /// The last port.
    pub fn last(&self) -> u16 {
        self.first + RANGE_SIZE - 1
    }

    /// The range as slip's `runtime.port_range` writes it: `first-last`.
    pub fn config_value(&self) -> String {
        format!("{}-{}", self.first(), self.last())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn live_ranges_never_overlap() {
        let ranges: Vec<PortRange> = (0..20).map(|_| PortRange::lease()).collect();
        for (i, a) in ranges.iter().enumerate() {
            assert_eq!(a.last() - a.first() + 1, RANGE_SIZE);
            assert!(a.first() >= FIRST && a.last() < 32768, "{a:?} lies below the ephemeral range");
            for b in &ranges[i + 1..] {
                assert!(a.last() < b.first() || b.last() < a.first(), "{a:?} overlaps {b:?}");
            }
        }
        assert_eq!(ranges[0].config_value(), format!("{}-{}", ranges[0].first(), ranges[0].last()));
    }

    #[test]
    fn a_range_is_locked_while_leased_and_released_on_drop() {
        let range = PortRange::lease();
        let first = range.first();
        let path = std::env::temp_dir().join("slip-testenv-port-ranges").join(format!("{first}.lock"));
        let file = File::options().write(true).open(path).unwrap();
        assert!(file.try_lock().is_err(), "held while leased");
        drop(range);
        assert!(file.try_lock().is_ok(), "released on drop");
    }
}
