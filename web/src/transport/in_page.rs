//! The in-page cloud: the worker, remediation and alarm logic of the local stack and the
//! Lambdas (`fleet-pipeline` on a bounded [`MemoryStore`]) behind an in-page bus.
//!
//! Readings published during a frame are ingested as one batch at the next
//! [`Transport::poll`], and the commands and alarm notices come back as the broker would
//! deliver them. Every link is up at once; a reading is acknowledged once stored.

use fleet_core::Incoming;
use fleet_core::policy::PolicyConfigError;
use fleet_core::topic::ALARMS_TOPIC;
use fleet_pipeline::{MemoryStore, Pipeline, PipelineConfig};

use super::{Inbound, LinkState, Sent, Transport, TransportStats};

/// The in-page bus and cloud.
#[derive(Debug)]
pub struct InPage {
    pipeline: Pipeline,
    store: MemoryStore,
    /// `(topic, payload)` published since the last poll.
    pending: Vec<(String, Vec<u8>)>,
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
            store: MemoryStore::new(),
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
        self.pending.push((topic.to_owned(), payload.to_vec()));
        self.stats.unacked += 1;
        Sent::Queued
    }

    fn poll(&mut self, now_ms: u64, inbound: &mut Vec<Inbound>) {
        if self.pending.is_empty() {
            return;
        }
        let pending = std::mem::take(&mut self.pending);
        let ids: Vec<String> = pending
            .iter()
            .map(|_| {
                self.next_message += 1;
                format!("page-{}", self.next_message)
            })
            .collect();
        let batch: Vec<Incoming<'_>> = pending
            .iter()
            .zip(&ids)
            .map(|((topic, payload), id)| Incoming {
                topic,
                payload,
                received_ms: now_ms,
                source_id: id,
            })
            .collect();
        self.stats.unacked = self.stats.unacked.saturating_sub(pending.len() as u64);
        match self.pipeline.ingest(&mut self.store, &batch, now_ms) {
            Ok(outcome) => {
                // Rejected and duplicate readings are acknowledged too, as the stack does:
                // sending them again would not change the answer.
                self.stats.acked += pending.len() as u64;
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
                self.stats.dropped += pending.len() as u64;
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
    }
}
