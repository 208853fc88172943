//! The one place Fleet reads the wall clock.
//!
//! Fleet's logic never reads a clock (ARCHITECTURE §3): the device model, the MQTT session,
//! the fleet engine and the worker plan take `now` as an argument. The front ends and
//! adapters that drive them (`fleet sim`, `fleet bench`, the local stack, the Lambdas, the
//! page) read it here, through a small port: [`Clock`], with [`SystemClock`] for real time
//! and [`ManualClock`] for simulated time (`fleet demo`, tests).
//!
//! # Key decision: microseconds since the Unix epoch, on every target
//! Readings carry the wall clock in ms (`ts`, which the stack checks against its own), so a
//! monotonic clock will not do; round trips at a few thousand readings per second are
//! around a millisecond, so the port reads microseconds ([`Clock::now_us`]) and gives
//! milliseconds as a convenience ([`now_ms`]). On `wasm32-unknown-unknown`
//! `std::time::SystemTime` panics; there the browser's clock is read, `Date.now()` (the
//! page shows round trips in whole milliseconds, and its download counts every KB).
//!
//! Not here: the MQTT client's driver keeps its session clock on tokio's monotonic
//! `Instant` (so tests can pause time), and deadlines measured on it never leave the
//! driver.

use std::sync::atomic::{AtomicU64, Ordering};

/// A source of wall-clock time, in microseconds since the Unix epoch.
pub trait Clock {
    /// Now, µs since the Unix epoch.
    fn now_us(&self) -> u64;

    /// Now, ms since the Unix epoch.
    fn now_ms(&self) -> u64 {
        self.now_us() / 1000
    }
}

/// The machine's (or the browser's) wall clock.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_us(&self) -> u64 {
        now_us()
    }
}

/// A clock that moves only when told: simulated time.
#[derive(Debug, Default)]
pub struct ManualClock(AtomicU64);

impl ManualClock {
    /// A clock reading `now_us`.
    pub fn new(now_us: u64) -> ManualClock {
        ManualClock(AtomicU64::new(now_us))
    }

    /// Sets the time; it may go back (the caller's simulation decides).
    pub fn set_us(&self, now_us: u64) {
        self.0.store(now_us, Ordering::Relaxed);
    }

    /// Moves the time forward by `us`.
    pub fn advance_us(&self, us: u64) {
        self.0.fetch_add(us, Ordering::Relaxed);
    }
}

impl Clock for ManualClock {
    fn now_us(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// The wall clock now, ms since the Unix epoch.
pub fn now_ms() -> u64 {
    now_us() / 1000
}

/// The wall clock now, µs since the Unix epoch (0 if the clock is before 1970).
#[cfg(not(target_arch = "wasm32"))]
pub fn now_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

/// The wall clock now, µs since the Unix epoch: the page's `Date.now()` (whole
/// milliseconds; browsers coarsen finer clocks anyway).
#[cfg(target_arch = "wasm32")]
pub fn now_us() -> u64 {
    // Float-to-int `as` saturates: a NaN or negative time gives 0.
    (js_sys::Date::now() * 1000.0) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_system_clock_is_the_wall_clock_in_both_units() {
        let before = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_micros() as u64)
            .unwrap_or(0);
        let us = SystemClock.now_us();
        let ms = SystemClock.now_ms();
        assert!(us >= before);
        // 2025-01-01 or later: a real epoch clock, in µs and ms.
        assert!(us > 1_735_689_600_000_000, "{us}");
        assert!(ms >= us / 1000 && ms > 1_735_689_600_000, "{ms}");
        assert!(now_ms() >= ms);
    }

    #[test]
    fn a_manual_clock_moves_only_when_told() {
        let clock = ManualClock::new(5_000);
        assert_eq!((clock.now_us(), clock.now_ms()), (5_000, 5));
        clock.advance_us(2_500);
        assert_eq!(clock.now_us(), 7_500);
        clock.set_us(1_000);
        assert_eq!(clock.now_ms(), 1);
    }
}
