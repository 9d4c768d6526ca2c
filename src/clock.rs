//! The one place that reads the wall clock. Protocol code takes `now` from a `Clock`, so tests
//! move time forward instead of sleeping.
//!
//! A leaf: imports nothing from the crate. Monotonic `Instant`s for timeouts and back-off may
//! be read anywhere; calendar time that a protocol decision depends on comes only from here.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

/// Seconds since the Unix epoch.
pub type UnixTime = i64;

/// Milliseconds since the Unix epoch, for the few windows that seconds would round (the refresh
/// token reuse grace).
pub type UnixMillis = i64;

pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> UnixTime;

    /// `now` to the millisecond.
    fn now_millis(&self) -> UnixMillis {
        self.now() * 1000
    }
}

/// The real clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> UnixTime {
        self.now_millis().div_euclid(1000)
    }

    fn now_millis(&self) -> UnixMillis {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or_default()
    }
}

/// A clock that starts at the real time (a whole second) and moves only when told; for tests.
/// It counts milliseconds, so that `now` and `now_millis` always agree.
#[derive(Debug, Clone)]
pub struct ManualClock(Arc<AtomicI64>);

impl Default for ManualClock {
    fn default() -> Self {
        Self(Arc::new(AtomicI64::new(SystemClock.now() * 1000)))
    }
}

impl ManualClock {
    pub fn advance(&self, seconds: i64) {
        self.advance_millis(seconds * 1000);
    }

    pub fn advance_millis(&self, millis: i64) {
        self.0.fetch_add(millis, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> UnixTime {
        self.now_millis().div_euclid(1000)
    }

    fn now_millis(&self) -> UnixMillis {
        self.0.load(Ordering::SeqCst)
    }
}
