//! The in-page cloud: the worker, remediation and alarm logic of the local stack and the
//! Lambdas (`fleet-pipeline` on a bounded [`MemoryStore`]) behind an in-page bus.
//!
//! Readings published during a frame are ingested as one batch at the next
//! [`Transport::poll`], and the commands and alarm notices come back as the broker would
//! deliver them. Every link is up at once; a reading is acknowledged once stored.

use fleet_core::policy::PolicyConfigError;
use fleet_core::topic::ALARMS_TOPIC;
use fleet_core::{Incoming, Publisher};
use fleet_pipeline::{Limits, MemoryStore, Pipeline, PipelineConfig};

use super::{Inbound, LinkState, Sent, Transport, TransportStats};

/// Reading rows the in-page store keeps over the whole fleet (each device keeps at least
/// [`MIN_ROWS_PER_DEVICE`]). The page reads no row back: the store keeps them to store a
/// repeated reading once, which needs only a device's newest few. The store's default of
/// 2,000 per device would grow a 100,000-device tab by ~10 MB a second until it ran out of
/// memory, and every growth of the wasm memory was a main-thread pause.
pub const ROWS_KEPT: usize = 200_000;

/// The fewest reading rows a device keeps in page, however large the fleet.
pub const MIN_ROWS_PER_DEVICE: usize = 2;

/// The in-page bus and cloud.
#[derive(Debug)]
pub struct InPage {
    pipeline: Pipeline,
    store: MemoryStore,
    /// The topics and message ids published since the last poll, end to end (reused, so a
    /// reading costs no allocation of its own).
    text: String,
    /// Their payloads, end to end.
    bytes: Vec<u8>,
    /// Per message: where its topic and its id end in `text`, and its payload in `bytes`.
    pending: Vec<(usize, usize, usize)>,
    open: Vec<bool>,
    next_message: u64,
    stats: TransportStats,
    problem: Option<String>,
}

impl InPage {
    /// A cloud with these worker, remediation and alarm settings, for `devices` devices.
    pub fn new(config: PipelineConfig, devices: usize) -> Result<InPage, PolicyConfigError> {
        Ok(InPage {
            pipeline: Pipeline::new(config)?,
            store: MemoryStore::with_limits(Limits {
                readings_per_device: rows_per_device(devices),
                ..Limits::default()
            }),
            text: String::new(),
            bytes: Vec::new(),
            pending: Vec::new(),
            open: vec![false; devices],
            next_message: 0,
            stats: TransportStats::default(),
            problem: None,
        })
    }
}

impl Transport for InPage {
    fn open(&mut self, _now_ms: u64, device: usize) {
        if let Some(open) = self.open.get_mut(device).filter(|o| !**o) {
            *open = true;
            self.stats.links_up += 1;
        }
    }

    fn publish(&mut self, _now_ms: u64, device: usize, topic: &str, payload: &[u8]) -> Sent {
        if !self.open.get(device).copied().unwrap_or(false) {
            self.stats.dropped += 1;
            return Sent::Dropped(format!("device {device} is not connected"));
        }
        use std::fmt::Write;
        self.text.push_str(topic);
        let topic_end = self.text.len();
        self.next_message += 1;
        let _ = write!(self.text, "page-{}", self.next_message);
        self.bytes.extend_from_slice(payload);
        self.pending
            .push((topic_end, self.text.len(), self.bytes.len()));
        self.stats.unacked += 1;
        Sent::Queued
    }

    fn poll(&mut self, now_ms: u64, inbound: &mut Vec<Inbound>) {
        if self.pending.is_empty() {
            return;
        }
        let (mut text_at, mut bytes_at) = (0, 0);
        let batch: Vec<Incoming<'_>> = self
            .pending
            .iter()
            .map(|&(topic_end, id_end, payload_end)| {
                let message = Incoming {
                    topic: &self.text[text_at..topic_end],
                    payload: &self.bytes[bytes_at..payload_end],
                    received_ms: now_ms,
                    source_id: &self.text[topic_end..id_end],
                    // The page's devices and pipeline are one program: no identities.
                    publisher: &Publisher::Unbound,
                };
                (text_at, bytes_at) = (id_end, payload_end);
                message
            })
            .collect();
        let count = self.pending.len() as u64;
        self.stats.unacked = self.stats.unacked.saturating_sub(count);
        let result = self.pipeline.ingest(&mut self.store, &batch, now_ms);
        drop(batch);
        self.text.clear();
        self.bytes.clear();
        self.pending.clear();
        match result {
            Ok(outcome) => {
                // Rejected and duplicate readings are acknowledged too, as the stack does:
                // sending them again would not change the answer.
                self.stats.acked += count;
                self.problem = None;
                inbound.extend(outcome.commands.into_iter().map(|c| Inbound {
                    topic: c.topic.to_string(),
                    payload: c.payload.into_bytes(),
                }));
                inbound.extend(outcome.alarms.into_iter().map(|a| Inbound {
                    topic: ALARMS_TOPIC.to_owned(),
                    payload: a.to_json().into_bytes(),
                }));
            }
            Err(e) => {
                // The memory store only refuses when a limit is hit; say so, drop the batch.
                self.stats.dropped += count;
                self.problem = Some(format!("the in-page store refused a batch: {e}"));
            }
        }
    }

    fn link(&self, device: usize) -> LinkState {
        if self.open.get(device).copied().unwrap_or(false) {
            LinkState::Up
        } else {
            LinkState::Idle
        }
    }

    fn stats(&self) -> TransportStats {
        self.stats
    }

    fn problem(&self) -> Option<String> {
        self.problem.clone()
    }

    fn close(&mut self, _now_ms: u64) {
        self.open.iter_mut().for_each(|o| *o = false);
        self.stats.links_up = 0;
        self.stats.dropped += self.pending.len() as u64;
        self.stats.unacked = 0;
        self.pending.clear();
        self.text.clear();
        self.bytes.clear();
    }
}

/// Reading rows each of `devices` keeps: [`ROWS_KEPT`] shared, within the store's default
/// and at least [`MIN_ROWS_PER_DEVICE`].
fn rows_per_device(devices: usize) -> usize {
    (ROWS_KEPT / devices.max(1)).clamp(MIN_ROWS_PER_DEVICE, Limits::default().readings_per_device)
}

#[cfg(test)]
mod tests {
    use super::*;
    use fleet_core::{BuildingId, DeviceId, Shape, Telemetry, Topic, encode_telemetry};

    /// 2025-11-27T08:00:00Z.
    const T0: u64 = 1_764_230_400_000;

    #[test]
    fn a_large_fleet_keeps_a_bounded_share_of_rows_and_still_stores_a_repeat_once() {
        let devices = 100_000;
        assert_eq!(rows_per_device(devices), MIN_ROWS_PER_DEVICE);
        assert_eq!(rows_per_device(12), Limits::default().readings_per_device);
        assert_eq!(rows_per_device(1_000), 200);

        let mut page = InPage::new(PipelineConfig::default(), devices).unwrap();
        page.open(T0, 0);
        let device: DeviceId = "d-0001".parse().unwrap();
        let building: BuildingId = "1".parse().unwrap();
        let topic = Topic::telemetry(building.clone(), device.clone()).to_string();
        let reading = |seq: u64| {
            encode_telemetry(&Telemetry {
                device: device.clone(),
                building: Some(building.clone()),
                seq: Some(seq),
                ts: Some(T0 + seq * 2_000),
                temperature: 27.0,
                humidity: 60.0,
                shape: Shape::Current,
            })
        };
        let mut inbound = Vec::new();
        for seq in 1..=5 {
            assert_eq!(
                page.publish(T0, 0, &topic, reading(seq).as_bytes()),
                Sent::Queued
            );
        }
        // The newest reading again: kept, so stored once.
        assert_eq!(
            page.publish(T0, 0, &topic, reading(5).as_bytes()),
            Sent::Queued
        );
        page.poll(T0 + 10_000, &mut inbound);

        assert_eq!(page.stats().acked, 6);
        assert_eq!(page.store.readings_total(), 5);
        let kept: Vec<Option<u64>> = page.store.readings(&device).map(|r| r.seq).collect();
        assert_eq!(kept, [Some(4), Some(5)]);
    }
}
