//! Who the devices are: ids, buildings and wire shapes, in flat tables.
//!
//! A fleet of 100,000 devices would hold 100,000 id strings and as many building strings
//! as separate heap objects; here the ids share one string, buildings are interned (a fleet
//! has few), and a hash index of slot numbers finds a device by id without a map of owned
//! keys (4 to 8 bytes a device, and little code: the page's download counts every KB).

use std::ops::Range;

use fleet_core::{BuildingId, Shape};

use crate::config::{DeviceSpec, EngineError};

/// The devices' identities.
#[derive(Debug, Clone, Default)]
pub(crate) struct Roster {
    /// Every id, one after the other.
    ids: String,
    /// Where device `i`'s id ends in `ids` (it starts where `i - 1`'s ends).
    id_ends: Vec<u32>,
    /// Device `i`'s building, as an index into `buildings`.
    building: Vec<u32>,
    buildings: Vec<BuildingId>,
    /// Device `i` speaks the legacy shape.
    legacy: Vec<bool>,
    /// Devices by id.
    by_id: Index,
}

/// Where entry `i` lies in a string of entries that end at `ends`.
fn span(ends: &[u32], i: usize) -> Range<usize> {
    let start = if i == 0 { 0 } else { ends[i - 1] as usize };
    start..ends[i] as usize
}

impl Roster {
    pub(crate) fn new(devices: &[DeviceSpec]) -> Result<Roster, EngineError> {
        let mut roster = Roster::default();
        let mut buildings = Index::default();
        for spec in devices {
            let n = roster.id_ends.len();
            if u32::try_from(n).is_err() {
                return Err(EngineError::TooMany(n));
            }
            let (ids, ends) = (&roster.ids, &roster.id_ends);
            let id_of = |i: u32| &ids[span(ends, i as usize)];
            if roster.by_id.find(spec.id.as_str(), &id_of).is_some() {
                return Err(EngineError::Duplicate(spec.id.to_string()));
            }
            roster.ids.push_str(spec.id.as_str());
            // Ids are at most 64 bytes; 2^32 bytes of them are more devices than fit anyway.
            let end = u32::try_from(roster.ids.len()).map_err(|_| EngineError::TooMany(n))?;
            roster.id_ends.push(end);
            let (ids, ends) = (&roster.ids, &roster.id_ends);
            roster
                .by_id
                .insert(n as u32, &|i: u32| &ids[span(ends, i as usize)]);
            let known = &roster.buildings;
            let b = match buildings.find(spec.building.as_str(), &|b| known[b as usize].as_str()) {
                Some(b) => b,
                None => {
                    let b = roster.buildings.len() as u32;
                    roster.buildings.push(spec.building.clone());
                    let known = &roster.buildings;
                    buildings.insert(b, &|b| known[b as usize].as_str());
                    b
                }
            };
            roster.building.push(b);
            roster.legacy.push(spec.shape == Shape::Legacy);
        }
        Ok(roster)
    }

    pub(crate) fn len(&self) -> usize {
        self.id_ends.len()
    }

    pub(crate) fn id(&self, i: usize) -> &str {
        &self.ids[span(&self.id_ends, i)]
    }

    pub(crate) fn building(&self, i: usize) -> &BuildingId {
        &self.buildings[self.building[i] as usize]
    }

    pub(crate) fn shape(&self, i: usize) -> Shape {
        if self.legacy[i] {
            Shape::Legacy
        } else {
            Shape::Current
        }
    }

    /// The device with this id.
    pub(crate) fn find(&self, id: &str) -> Option<usize> {
        self.by_id
            .find(id, &|i| self.id(i as usize))
            .map(|i| i as usize)
    }

    /// Appends device `i`'s telemetry topic (after `prefix`) to `out`: what
    /// `Topic::Telemetry` and `Topic::LegacyTelemetry` display, without building one (a
    /// `Topic` owns copies of the ids).
    pub(crate) fn write_telemetry_topic(&self, i: usize, prefix: &str, out: &mut String) {
        out.push_str(prefix);
        // Ids are `[A-Za-z0-9_-]+`: they are valid topic levels as they are (§4.2).
        match self.shape(i) {
            Shape::Current => {
                out.push_str("dt/monitoring/");
                out.push_str(self.building(i).as_str());
                out.push('/');
                out.push_str(self.id(i));
                out.push_str("/telemetry");
            }
            Shape::Legacy => {
                out.push_str("monitoring-device/building-");
                out.push_str(self.building(i).as_str());
            }
        }
    }

    /// Device `i`'s command topic: what it subscribes to.
    pub(crate) fn command_topic(&self, i: usize) -> String {
        let building = self.building(i).as_str();
        match self.shape(i) {
            Shape::Current => format!("cmd/monitoring/{building}/{}/remediation", self.id(i)),
            Shape::Legacy => format!("monitoring-device/remediation-{building}"),
        }
    }
}

/// An open-addressing hash index of entries whose names are kept elsewhere (a caller's
/// function gives entry `e`'s name): slots hold entry numbers, probed linearly.
#[derive(Debug, Clone, Default)]
struct Index {
    slots: Vec<u32>,
    len: usize,
}

const EMPTY: u32 = u32::MAX;

impl Index {
    fn find<'n>(&self, key: &str, name: &dyn Fn(u32) -> &'n str) -> Option<u32> {
        if self.slots.is_empty() {
            return None;
        }
        let mask = self.slots.len() - 1;
        let mut at = hash(key) as usize & mask;
        loop {
            match self.slots[at] {
                EMPTY => return None,
                e if name(e) == key => return Some(e),
                _ => at = (at + 1) & mask,
            }
        }
    }

    /// Adds entry `e`, whose name is not in the index yet.
    fn insert<'n>(&mut self, e: u32, name: &dyn Fn(u32) -> &'n str) {
        // At most half full, so probes stay short.
        if (self.len + 1) * 2 > self.slots.len() {
            let old = std::mem::replace(
                &mut self.slots,
                vec![EMPTY; ((self.len + 1) * 4).next_power_of_two().max(16)],
            );
            for e in old.into_iter().filter(|&e| e != EMPTY) {
                self.place(e, name(e));
            }
        }
        self.place(e, name(e));
        self.len += 1;
    }

    fn place(&mut self, e: u32, key: &str) {
        let mask = self.slots.len() - 1;
        let mut at = hash(key) as usize & mask;
        while self.slots[at] != EMPTY {
            at = (at + 1) & mask;
        }
        self.slots[at] = e;
    }
}

/// FNV-1a with a final mix (so the low bits, which pick the slot, depend on every byte).
fn hash(key: &str) -> u64 {
    let h = key.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    (h ^ (h >> 29)).wrapping_mul(0xbf58_476d_1ce4_e5b9) ^ (h >> 32)
}

#[cfg(test)]
mod tests {
    use fleet_core::{DeviceId, FleetVariation, Topic};

    use super::*;

    fn spec(id: &str, building: &str, shape: Shape) -> DeviceSpec {
        DeviceSpec {
            id: DeviceId::try_from(id).unwrap(),
            building: BuildingId::try_from(building).unwrap(),
            variation: FleetVariation::NONE,
            shape,
        }
    }

    #[test]
    fn ids_buildings_and_topics_are_the_core_topics() {
        let roster = Roster::new(&[
            spec("d-0002", "7", Shape::Current),
            spec("381938912", "1", Shape::Legacy),
            spec("d-0001", "7", Shape::Current),
        ])
        .unwrap();
        assert_eq!(roster.len(), 3);
        assert_eq!(roster.buildings.len(), 2, "buildings are interned");
        assert_eq!(roster.building, [0, 1, 0]);
        for i in 0..3 {
            let id = DeviceId::try_from(roster.id(i)).unwrap();
            let building = roster.building(i).clone();
            let (telemetry, command) = match roster.shape(i) {
                Shape::Current => (
                    Topic::telemetry(building.clone(), id.clone()),
                    Topic::command(building, id),
                ),
                Shape::Legacy => (
                    Topic::LegacyTelemetry {
                        building: building.clone(),
                    },
                    Topic::LegacyRemediation { building },
                ),
            };
            let mut out = String::from("x");
            roster.write_telemetry_topic(i, "$aws/rules/r/", &mut out);
            assert_eq!(out, format!("x$aws/rules/r/{telemetry}"));
            assert_eq!(roster.command_topic(i), command.to_string());
        }
        assert_eq!(roster.find("d-0001"), Some(2));
        assert_eq!(roster.find("381938912"), Some(1));
        assert_eq!(roster.find("d-0003"), None);
        assert_eq!(roster.find(""), None);
    }

    #[test]
    fn a_big_fleet_finds_every_device_and_shares_its_buildings() {
        let specs: Vec<DeviceSpec> = (0..20_000)
            .map(|i| {
                spec(
                    &format!("d-{:05}", i + 1),
                    &(i % 37).to_string(),
                    Shape::Current,
                )
            })
            .collect();
        let roster = Roster::new(&specs).unwrap();
        assert_eq!(roster.buildings.len(), 37);
        for i in (0..20_000).step_by(7) {
            assert_eq!(roster.find(&format!("d-{:05}", i + 1)), Some(i));
            assert_eq!(roster.building(i).as_str(), (i % 37).to_string());
        }
        assert_eq!(roster.find("d-20001"), None);
        assert_eq!(roster.find("d-0001"), None);
    }

    #[test]
    fn a_duplicate_id_is_refused() {
        let twice = Roster::new(&[
            spec("a", "1", Shape::Current),
            spec("b", "1", Shape::Current),
            spec("a", "2", Shape::Current),
        ]);
        assert_eq!(twice.unwrap_err(), EngineError::Duplicate("a".into()));
        assert_eq!(Roster::new(&[]).unwrap().len(), 0);
    }
}
