//! `fleet sim --shard I/N`: which part of a fleet one process runs.
//!
//! `--devices` is the whole fleet's size, the same on every shard (what a Kubernetes
//! Indexed Job gives each pod: one command line and its completion index). Shard `I` of `N`
//! (`I` from 0, as `JOB_COMPLETION_INDEX` counts) runs the devices at indexes
//! `devices·I/N .. devices·(I+1)/N`: consecutive, disjoint, together exactly the fleet,
//! and within one device of the same size. Ids keep the fleet's numbering (`d-0001` is
//! index 0 on whichever shard runs it), and each device's phase and noise are the ones it
//! has in the unsharded fleet, so N shards publish what one process would have.

use std::fmt;
use std::ops::Range;
use std::str::FromStr;

/// Shard `index` of `count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// From 0.
    pub index: u32,
    /// How many shards the fleet is split into (≥ 1).
    pub count: u32,
}

/// Why a `--shard` value was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShardError {
    /// Not `I/N` with two whole numbers.
    #[error("{0:?} is not I/N (shard I of N, I counted from 0: 0/4, 1/4, 2/4, 3/4)")]
    Syntax(String),
    /// `N` is 0.
    #[error("a fleet is split into at least 1 shard, not 0")]
    NoShards,
    /// `I ≥ N`.
    #[error("shard {index} of {count} does not exist: shards are counted from 0, so I goes up to {}", count - 1)]
    OutOfRange {
        /// I.
        index: u32,
        /// N.
        count: u32,
    },
    /// More shards than devices: some would run none.
    #[error(
        "{count} shards for {devices} devices would leave shards without a device; --devices is the whole fleet's size"
    )]
    TooManyShards {
        /// N.
        count: u32,
        /// The fleet's size.
        devices: u32,
    },
}

impl FromStr for Shard {
    type Err = ShardError;

    fn from_str(s: &str) -> Result<Shard, ShardError> {
        let syntax = || ShardError::Syntax(s.to_owned());
        let (i, n) = s.trim().split_once('/').ok_or_else(syntax)?;
        let number = |t: &str| {
            // Digits only: no sign, no spaces inside.
            if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
                return Err(syntax());
            }
            t.parse::<u32>().map_err(|_| syntax())
        };
        let (index, count) = (number(i)?, number(n)?);
        if count == 0 {
            return Err(ShardError::NoShards);
        }
        if index >= count {
            return Err(ShardError::OutOfRange { index, count });
        }
        Ok(Shard { index, count })
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl Shard {
    /// The whole fleet as one shard.
    pub const WHOLE: Shard = Shard { index: 0, count: 1 };

    /// The device indexes this shard runs in a fleet of `devices`.
    pub fn range(&self, devices: u32) -> Result<Range<usize>, ShardError> {
        if self.count > devices {
            return Err(ShardError::TooManyShards {
                count: self.count,
                devices,
            });
        }
        let bound = |i: u32| (u64::from(devices) * u64::from(i) / u64::from(self.count)) as usize;
        Ok(bound(self.index)..bound(self.index + 1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_split_the_fleet_into_disjoint_ranges_that_cover_it() {
        for devices in [1u32, 2, 3, 7, 10, 99, 100, 101, 100_000] {
            for count in 1..=devices.min(16) {
                let ranges: Vec<_> = (0..count)
                    .map(|index| Shard { index, count }.range(devices).unwrap())
                    .collect();
                assert_eq!(ranges[0].start, 0);
                assert_eq!(ranges.last().unwrap().end, devices as usize);
                for pair in ranges.windows(2) {
                    assert_eq!(pair[0].end, pair[1].start, "consecutive, no overlap");
                }
                let sizes: Vec<_> = ranges.iter().map(|r| r.len()).collect();
                let (min, max) = (sizes.iter().min().unwrap(), sizes.iter().max().unwrap());
                assert!(*min >= 1 && max - min <= 1, "{devices}/{count}: {sizes:?}");
            }
        }
        assert_eq!(Shard::WHOLE.range(50).unwrap(), 0..50);
        assert_eq!("2/4".parse::<Shard>().unwrap().range(100).unwrap(), 50..75);
    }

    #[test]
    fn bad_shards_are_refused_with_the_reason() {
        for bad in [
            "", "1", "1/", "/4", "a/4", "1/b", "-1/4", "1/-4", "1/4/2", "1 /4",
        ] {
            assert!(
                matches!(bad.parse::<Shard>(), Err(ShardError::Syntax(_))),
                "{bad:?}"
            );
        }
        assert_eq!("0/0".parse::<Shard>(), Err(ShardError::NoShards));
        let e = "4/4".parse::<Shard>().unwrap_err();
        assert_eq!(e, ShardError::OutOfRange { index: 4, count: 4 });
        assert!(e.to_string().contains("up to 3"), "{e}");
        let e = "0/5".parse::<Shard>().unwrap().range(3).unwrap_err();
        assert!(e.to_string().contains("whole fleet"), "{e}");
        assert_eq!(
            " 3/8 ".parse::<Shard>().unwrap(),
            Shard { index: 3, count: 8 }
        );
    }
}
