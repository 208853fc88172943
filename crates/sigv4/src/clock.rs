//! The signing time. A SigV4 signature carries the signer's clock (`X-Amz-Date`), and AWS
//! refuses a signature more than [`MAX_SKEW_MS`] from its own time. A browser's clock can
//! be anything, so the page reads AWS's time from an answer it already gets (its `Date`
//! header) and signs with its own clock plus the offset ([`ServerClock`]).
//!
//! The header is parsed by the caller: in the browser `Date.parse` reads it at no cost in
//! wasm (ECMAScript requires it to read `toUTCString()`'s output, which is the HTTP date
//! form AWS sends, `Tue, 16 Feb 2021 17:30:19 GMT`).

/// How far a signature's time may be from AWS's: 5 minutes either way ("Signature
/// expired: … is now earlier than … (… - 5 min.)").
pub const MAX_SKEW_MS: u64 = 5 * 60 * 1000;

/// This computer's clock corrected by a server's: the offset of the last time a server
/// said ([`ServerClock::observe`]), or none yet.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ServerClock {
    offset_ms: Option<i64>,
}

impl ServerClock {
    /// Records that the server's time was `server_ms` when this computer's was `local_ms`.
    pub fn observe(&mut self, server_ms: u64, local_ms: u64) {
        self.offset_ms = Some(signed(server_ms).saturating_sub(signed(local_ms)));
    }

    /// Records the server's `Date` header, parsed to `date_ms`, received when this
    /// computer's clock said `local_ms`. The header has whole seconds: the middle of that
    /// second is the best guess.
    pub fn observe_date(&mut self, date_ms: u64, local_ms: u64) {
        self.observe(date_ms.saturating_add(500), local_ms);
    }

    /// Server time minus this computer's time, ms; `None` before any observation.
    pub fn offset_ms(&self) -> Option<i64> {
        self.offset_ms
    }

    /// The server's time when this computer's clock says `local_ms` (this computer's time
    /// before any observation).
    pub fn now(&self, local_ms: u64) -> u64 {
        let corrected = signed(local_ms).saturating_add(self.offset_ms.unwrap_or(0));
        u64::try_from(corrected).unwrap_or(0)
    }
}

fn signed(ms: u64) -> i64 {
    i64::try_from(ms).unwrap_or(i64::MAX)
}

/// How far this computer's clock is off the server's, as a person sets a clock: whole
/// minutes, and `"slow"` or `"fast"` (`offset_ms` is server minus local, as
/// [`ServerClock::offset_ms`]).
pub fn offset_minutes(offset_ms: i64) -> (u64, &'static str) {
    let minutes = (offset_ms.unsigned_abs() + 30_000) / 60_000;
    (minutes, if offset_ms > 0 { "slow" } else { "fast" })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_clock_is_corrected_by_the_last_offset_seen() {
        let mut clock = ServerClock::default();
        assert_eq!(clock.offset_ms(), None);
        assert_eq!(clock.now(1_000), 1_000, "uncorrected before any answer");
        // This computer is 2 hours slow: its 1_369_346_400_000 is the server's midnight
        // (`Date: Fri, 24 May 2013 00:00:00 GMT`).
        clock.observe_date(1_369_353_600_000, 1_369_346_400_000);
        assert_eq!(clock.offset_ms(), Some(2 * 3_600_000 + 500));
        assert_eq!(clock.now(1_369_346_460_000), 1_369_353_660_500);
        // A later answer replaces the offset (the computer's clock was set meanwhile).
        clock.observe(10_000, 70_000);
        assert_eq!(clock.offset_ms(), Some(-60_000));
        assert_eq!(clock.now(30_000), 0, "never before the epoch");
    }

    #[test]
    fn an_offset_is_said_in_whole_minutes() {
        assert_eq!(offset_minutes(12 * 60_000 + 10_000), (12, "slow"));
        assert_eq!(offset_minutes(-60_000), (1, "fast"));
        assert_eq!(offset_minutes(-(2 * 3_600_000 + 5 * 60_000)), (125, "fast"));
        assert_eq!(offset_minutes(89_000), (1, "slow"));
        assert_eq!(offset_minutes(90_000), (2, "slow"));
        assert_eq!(offset_minutes(-20_000), (0, "fast"));
    }
}
