//! Clocks: the system clock, or a manual clock that tests advance by hand.

use crate::Time;
use parking_lot::{Condvar, Mutex};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A clock the batch timer reads and waits on.
#[derive(Clone, Debug, Default)]
pub enum Clock {
    /// Wall-clock time (milliseconds since the Unix epoch).
    #[default]
    System,
    /// Time that moves only when the program says so; for deterministic tests.
    Manual(ManualClock),
}

/// A clock whose time is set by hand. Cloning shares the clock.
#[derive(Clone, Debug)]
pub struct ManualClock {
    inner: Arc<(Mutex<u64>, Condvar)>,
}

impl ManualClock {
    /// A manual clock reading `start_ms`.
    pub fn new(start_ms: u64) -> ManualClock {
        ManualClock {
            inner: Arc::new((Mutex::new(start_ms), Condvar::new())),
        }
    }

    /// The current time.
    pub fn time(&self) -> Time {
        Time::from_ms(*self.inner.0.lock())
    }

    /// Sets the time (it may only move forward; an earlier time is ignored).
    pub fn set_time(&self, t: Time) {
        let mut now = self.inner.0.lock();
        *now = (*now).max(t.ms());
        self.inner.1.notify_all();
    }

    /// Moves the time forward by `d`.
    pub fn advance(&self, d: Duration) {
        let mut now = self.inner.0.lock();
        *now += d.as_millis() as u64;
        self.inner.1.notify_all();
    }
}

impl Clock {
    /// The current time.
    pub fn now(&self) -> Time {
        match self {
            Clock::System => Time::from_ms(
                SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map(|d| d.as_millis() as u64)
                    .unwrap_or(0),
            ),
            Clock::Manual(m) => m.time(),
        }
    }

    /// Blocks until the clock reads at least `target` (returns true) or `stop` is set (false).
    pub(crate) fn wait_until(&self, target: Time, stop: &AtomicBool) -> bool {
        loop {
            if stop.load(Ordering::Acquire) {
                return false;
            }
            match self {
                Clock::System => {
                    let now = self.now();
                    if now >= target {
                        return true;
                    }
                    std::thread::sleep(target.since(now).min(Duration::from_millis(10)));
                }
                Clock::Manual(m) => {
                    let mut now = m.inner.0.lock();
                    if *now >= target.ms() {
                        return true;
                    }
                    m.inner.1.wait_for(&mut now, Duration::from_millis(20));
                }
            }
        }
    }
}
