//! What a device card draws: the recent readings, their counterfactual, and the commands
//! that came back, in fixed-size rings so a tab can run for hours.

use std::collections::VecDeque;

use fleet_core::payload::Action;

/// One point of a device's curves.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    /// Reading counter.
    pub seq: u64,
    /// Device clock, ms.
    pub ts: u64,
    /// Temperature, °C.
    pub temperature: f64,
    /// What the temperature would have been without remediation, °C.
    pub counterfactual: f64,
    /// Relative humidity, %.
    pub humidity: f64,
}

/// A command as it reached the device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Marker {
    /// When it arrived, ms.
    pub at_ms: u64,
    /// The device's next reading counter when it arrived (where the chart puts it).
    pub seq: u64,
    /// What it asked.
    pub action: Action,
}

/// The last `capacity` points and the markers that fall within them.
#[derive(Debug, Clone)]
pub struct Series {
    points: VecDeque<Point>,
    markers: VecDeque<Marker>,
    capacity: usize,
}

impl Series {
    /// An empty series keeping `capacity` points (at least 1).
    pub fn new(capacity: usize) -> Series {
        let capacity = capacity.max(1);
        Series {
            // Allocated at the first point: a big fleet need not allocate every history up
            // front (that was a long task at start).
            points: VecDeque::new(),
            markers: VecDeque::new(),
            capacity,
        }
    }

    /// Adds a point, dropping the oldest (and markers older than what is kept) when full.
    pub fn push(&mut self, point: Point) {
        if self.points.capacity() == 0 {
            // Once, exactly: later pushes never allocate (a doubling ring would hold up to
            // twice the points asked for).
            self.points.reserve_exact(self.capacity);
        }
        if self.points.len() == self.capacity {
            self.points.pop_front();
            let oldest = self.points.front().map_or(0, |p| p.seq);
            while self.markers.front().is_some_and(|m| m.seq < oldest) {
                self.markers.pop_front();
            }
        }
        self.points.push_back(point);
    }

    /// Records a command that arrived.
    pub fn mark(&mut self, marker: Marker) {
        self.markers.push_back(marker);
    }

    /// The kept points, oldest first.
    pub fn points(&self) -> impl ExactSizeIterator<Item = &Point> {
        self.points.iter()
    }

    /// The kept markers, oldest first.
    pub fn markers(&self) -> impl ExactSizeIterator<Item = &Marker> {
        self.markers.iter()
    }

    /// How many points are kept.
    pub fn len(&self) -> usize {
        self.points.len()
    }

    /// Whether no point is kept yet.
    pub fn is_empty(&self) -> bool {
        self.points.is_empty()
    }

    /// The newest point.
    pub fn last(&self) -> Option<&Point> {
        self.points.back()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(seq: u64) -> Point {
        Point {
            seq,
            ts: seq * 1000,
            temperature: 27.0,
            counterfactual: 27.0,
            humidity: 60.0,
        }
    }

    #[test]
    fn a_full_series_drops_its_oldest_points_and_their_markers() {
        let mut s = Series::new(3);
        for seq in 0..3 {
            s.push(point(seq));
        }
        s.mark(Marker {
            at_ms: 0,
            seq: 0,
            action: Action::Cool,
        });
        s.mark(Marker {
            at_ms: 0,
            seq: 2,
            action: Action::Release,
        });
        s.push(point(3));
        let seqs: Vec<u64> = s.points().map(|p| p.seq).collect();
        assert_eq!(seqs, [1, 2, 3]);
        let kept: Vec<Action> = s.markers().map(|m| m.action).collect();
        assert_eq!(kept, [Action::Release]);
        assert_eq!(s.last().map(|p| p.seq), Some(3));
    }

    #[test]
    fn a_series_allocates_its_ring_once() {
        let mut s = Series::new(60);
        assert_eq!(s.points.capacity(), 0);
        s.push(point(0));
        let capacity = s.points.capacity();
        assert!((60..64).contains(&capacity), "{capacity}");
        for seq in 1..1000 {
            s.push(point(seq));
        }
        assert_eq!(s.points.capacity(), capacity);
        assert_eq!(s.len(), 60);
    }
}
