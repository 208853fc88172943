//! When each device is due: the ramp-up that starts devices, and a queue of deadlines.
//!
//! A binary heap of `(due, device)` rather than a scan of every device per tick: a tick
//! touches only the devices it steps, whatever the fleet's size, and equal deadlines come
//! out in device order, so a fleet that reads together publishes in id order.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::ops::Range;

use crate::config::{CatchUp, Start};

/// Deadlines of the started devices, and the ramp-up of the others.
#[derive(Debug, Clone)]
pub(crate) struct Schedule {
    origin_us: u64,
    ramp_per_s: f64,
    start: Start,
    catch_up: CatchUp,
    /// Devices in the fleet.
    devices: usize,
    /// Devices started so far: `0..started`.
    started: usize,
    due: BinaryHeap<Reverse<(u64, u32)>>,
}

impl Schedule {
    pub(crate) fn new(
        origin_us: u64,
        devices: usize,
        ramp_per_s: f64,
        start: Start,
        catch_up: CatchUp,
    ) -> Schedule {
        Schedule {
            origin_us,
            ramp_per_s,
            start,
            catch_up,
            devices,
            started: 0,
            due: BinaryHeap::with_capacity(devices),
        }
    }

    pub(crate) fn started(&self) -> usize {
        self.started
    }

    /// When the ramp-up starts device `i`.
    fn start_at(&self, i: usize) -> u64 {
        if self.ramp_per_s > 0.0 {
            // Float-to-int `as` saturates: a rate too slow to matter starts devices never.
            self.origin_us
                .saturating_add((i as f64 * 1e6 / self.ramp_per_s) as u64)
        } else {
            self.origin_us
        }
    }

    /// Starts the devices whose time has come by `now_us`, each due for its first reading
    /// at `now_us` (or, spread, at its share of a `period_us` if later). Returns them.
    pub(crate) fn ramp(&mut self, now_us: u64, period_us: u64) -> Range<usize> {
        let first = self.started;
        while self.started < self.devices && self.start_at(self.started) <= now_us {
            let i = self.started;
            let due = match self.start {
                Start::Together => now_us,
                Start::Spread => {
                    // Whole milliseconds: readings carry ms timestamps, and a spread in ms
                    // keeps the grouping of devices per tick that an ms clock gives.
                    let offset_ms = period_us.saturating_mul(i as u64) / self.devices as u64 / 1000;
                    now_us.max(self.origin_us.saturating_add(offset_ms * 1000))
                }
            };
            self.due.push(Reverse((due, i as u32)));
            self.started += 1;
        }
        first..self.started
    }

    /// The next device due at or before `now_us`, taken off the queue (put it back with
    /// [`Schedule::reschedule`]).
    pub(crate) fn pop_due(&mut self, now_us: u64) -> Option<(u64, usize)> {
        match self.due.peek() {
            Some(&Reverse((due, i))) if due <= now_us => {
                self.due.pop();
                Some((due, i as usize))
            }
            _ => None,
        }
    }

    /// Puts device `i`, which was due at `due_us` and read at `now_us`, back for its next
    /// reading a period later.
    pub(crate) fn reschedule(&mut self, i: usize, due_us: u64, now_us: u64, period_us: u64) {
        let next = due_us.saturating_add(period_us.max(1));
        let next = match self.catch_up {
            CatchUp::Burst => next,
            // After a pause, a period from now rather than a burst of the readings missed.
            CatchUp::Skip if next <= now_us => now_us.saturating_add(period_us.max(1)),
            CatchUp::Skip => next,
        };
        self.due.push(Reverse((next, i as u32)));
    }

    /// The earliest of the next device's reading and the next start of the ramp-up.
    pub(crate) fn next_deadline(&self) -> Option<u64> {
        let reading = self.due.peek().map(|&Reverse((due, _))| due);
        let start = (self.started < self.devices).then(|| self.start_at(self.started));
        match (reading, start) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ramp_starts_devices_at_its_pace_and_equal_deadlines_come_in_device_order() {
        let mut s = Schedule::new(1_000_000, 5, 4.0, Start::Together, CatchUp::Skip);
        assert_eq!(s.next_deadline(), Some(1_000_000));
        assert_eq!(s.ramp(999_999, 2_000_000), 0..0);
        assert_eq!(s.ramp(1_000_000, 2_000_000), 0..1);
        assert_eq!(s.next_deadline(), Some(1_000_000));
        // 250 ms apart: at +0.6 s devices 1 and 2 have started.
        assert_eq!(s.ramp(1_600_000, 2_000_000), 1..3);
        assert_eq!(s.pop_due(1_600_000), Some((1_000_000, 0)));
        assert_eq!(s.pop_due(1_600_000), Some((1_600_000, 1)));
        assert_eq!(s.pop_due(1_600_000), Some((1_600_000, 2)));
        assert_eq!(s.pop_due(1_600_000), None);
        assert_eq!(s.next_deadline(), Some(1_750_000), "device 3 starts next");
        assert_eq!(s.ramp(u64::MAX, 2_000_000), 3..5);
        assert_eq!(s.started(), 5);
    }

    #[test]
    fn spread_devices_share_a_period_in_whole_milliseconds() {
        let mut s = Schedule::new(10_000_000, 3, 0.0, Start::Spread, CatchUp::Skip);
        assert_eq!(s.ramp(10_000_000, 1_000_000), 0..3);
        let dues: Vec<u64> = std::iter::from_fn(|| s.pop_due(u64::MAX).map(|d| d.0)).collect();
        // 1 s over 3 devices: 0, 333 and 666 ms (not 333.333).
        assert_eq!(dues, [10_000_000, 10_333_000, 10_666_000]);
        // Started late, a device is due when it starts, not in the past.
        let mut s = Schedule::new(0, 2, 0.0, Start::Spread, CatchUp::Skip);
        s.ramp(700_000, 1_000_000);
        assert_eq!(s.pop_due(u64::MAX), Some((700_000, 0)));
        assert_eq!(s.pop_due(u64::MAX), Some((700_000, 1)));
    }

    #[test]
    fn skip_resumes_a_period_after_a_pause_and_burst_replays_it() {
        for (catch_up, next) in [(CatchUp::Skip, 12_000), (CatchUp::Burst, 2_000)] {
            let mut s = Schedule::new(0, 1, 0.0, Start::Together, catch_up);
            s.ramp(0, 1_000);
            let (due, i) = s.pop_due(0).unwrap();
            s.reschedule(i, due, 0, 1_000);
            // Read 10 periods late.
            let (due, i) = s.pop_due(11_000).unwrap();
            assert_eq!(due, 1_000);
            s.reschedule(i, due, 11_000, 1_000);
            assert_eq!(s.next_deadline(), Some(next), "{catch_up:?}");
        }
    }
}
