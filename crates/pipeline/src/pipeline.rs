//! One batch, end to end: plan, archive, store, remediate, alarm.

use fleet_core::policy::PolicyConfigError;
use fleet_core::{
    AlarmConfig, AlarmNotice, Alarms, Decision, Incoming, PlanSummary, PolicyConfig, Publication,
    ReadingRow, Rejected, WorkerConfig, decide, plan,
};

use crate::store::{ArchiveStore, Batch, ReadingStore, RemediationStore, StoreError};

/// Settings of the whole loop.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PipelineConfig {
    /// Worker (§4.4).
    pub worker: WorkerConfig,
    /// Remediation (§4.5).
    pub policy: PolicyConfig,
    /// Alarms (§4.6).
    pub alarms: AlarmConfig,
}

/// What one batch produced.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Counts from the worker plan (messages and readings: see [`PlanSummary`]).
    pub summary: PlanSummary,
    /// Rejected messages and batch elements with their reasons.
    pub rejected: Vec<Rejected>,
    /// EMF metric lines (the local stack logs them, as a Lambda would).
    pub emf: Vec<String>,
    /// Rows newly stored: the change feed. A batch message contributes one row per new
    /// reading it carried.
    pub stored: Vec<ReadingRow>,
    /// Readings that repeated one in the batch or already stored.
    pub duplicates: usize,
    /// One decision per stored row (so per reading, batched or not).
    pub decisions: Vec<Decision>,
    /// Commands to publish, from the decisions.
    pub commands: Vec<Publication>,
    /// Alarm state changes to publish on `dt/monitoring/alarms`.
    pub alarms: Vec<AlarmNotice>,
    /// Archive writes that failed. The readings are stored all the same; the failure is
    /// reported, not swallowed.
    pub archive_errors: Vec<StoreError>,
}

/// The in-process loop. It owns only the alarm state; everything durable is in the store.
#[derive(Debug)]
pub struct Pipeline {
    config: PipelineConfig,
    alarms: Alarms,
}

impl Pipeline {
    /// A pipeline with these settings.
    pub fn new(config: PipelineConfig) -> Result<Pipeline, PolicyConfigError> {
        config.policy.validate()?;
        let alarms = Alarms::new(config.alarms);
        Ok(Pipeline { config, alarms })
    }

    /// The settings in use.
    pub fn config(&self) -> &PipelineConfig {
        &self.config
    }

    /// The alarm state.
    pub fn alarms(&self) -> &Alarms {
        &self.alarms
    }

    /// Runs one batch. Readings, device states and decisions are written in one store
    /// [`Batch`]: when this returns `Ok`, all of them are committed. It fails only if the
    /// store failed; then the batch was rolled back and can be retried whole (keys make
    /// that idempotent). Archive writes are outside the batch and reported in the outcome.
    pub fn ingest<S>(
        &mut self,
        store: &mut S,
        batch: &[Incoming<'_>],
        now_ms: u64,
    ) -> Result<Outcome, StoreError>
    where
        S: ReadingStore + RemediationStore + ArchiveStore + Batch,
    {
        let plan = plan(&self.config.worker, batch);
        let mut outcome = Outcome {
            duplicates: plan.duplicates.len(),
            summary: plan.summary,
            rejected: plan.rejected,
            emf: plan.emf,
            ..Outcome::default()
        };
        for object in plan.archive.iter().chain(plan.rejected_archive.iter()) {
            if let Err(e) = store.put_object(object) {
                outcome.archive_errors.push(e);
            }
        }
        store.begin()?;
        if let Err(e) = self.store_and_decide(store, plan.rows, now_ms, &mut outcome) {
            store.rollback();
            return Err(e);
        }
        store.commit()?;
        // Alarms follow committed readings only, so a rolled-back batch raises none.
        for row in &outcome.stored {
            outcome.alarms.extend(self.alarms.observe(
                &row.device,
                Some(&row.building),
                row.temperature,
                row.time_ms(),
            ));
        }
        Ok(outcome)
    }

    fn store_and_decide<S>(
        &self,
        store: &mut S,
        rows: Vec<ReadingRow>,
        now_ms: u64,
        outcome: &mut Outcome,
    ) -> Result<(), StoreError>
    where
        S: ReadingStore + RemediationStore,
    {
        let fresh = store.insert_new(&rows)?;
        for (row, new) in rows.into_iter().zip(fresh) {
            if new {
                outcome.stored.push(row);
            } else {
                outcome.duplicates += 1;
            }
        }
        for row in &outcome.stored {
            let state = store.device_state(&row.device)?;
            let (next, decision) = decide(&self.config.policy, &state, &row.reading(), now_ms);
            store.record_decision(&decision, &next)?;
            outcome.commands.extend(decision.publication());
            outcome.decisions.push(decision);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use fleet_core::payload::{Action, parse_command};
    use fleet_core::{ParseContext, Telemetry, Topic, encode_telemetry, encode_telemetry_batch};

    use super::*;
    use crate::MemoryStore;

    fn telemetry(device: &str, seq: u64, temperature: f64) -> (String, String) {
        let t = Telemetry::current(
            device.try_into().unwrap(),
            "1".try_into().unwrap(),
            seq,
            1_000 + seq * 2_000,
            temperature,
            60.0,
        );
        let topic = Topic::telemetry("1".try_into().unwrap(), device.try_into().unwrap());
        (topic.to_string(), encode_telemetry(&t))
    }

    fn ingest(
        p: &mut Pipeline,
        s: &mut MemoryStore,
        msgs: &[(String, String)],
        now: u64,
    ) -> Outcome {
        let ids: Vec<String> = (0..msgs.len()).map(|i| format!("m{now}-{i}")).collect();
        let batch: Vec<Incoming<'_>> = msgs
            .iter()
            .zip(&ids)
            .map(|((topic, payload), id)| Incoming {
                topic,
                payload: payload.as_bytes(),
                received_ms: now,
                source_id: id,
                publisher: &fleet_core::Publisher::Unbound,
            })
            .collect();
        p.ingest(s, &batch, now).unwrap()
    }

    #[test]
    fn a_hot_reading_is_stored_remediated_and_alarmed() {
        let mut p = Pipeline::new(PipelineConfig::default()).unwrap();
        let mut s = MemoryStore::new();
        let out = ingest(
            &mut p,
            &mut s,
            &[telemetry("d-1", 0, 27.0), telemetry("d-1", 1, 28.3)],
            5_000,
        );
        assert_eq!(out.stored.len(), 2);
        assert_eq!(out.decisions.len(), 2);
        assert_eq!(out.commands.len(), 1);
        let cmd = &out.commands[0];
        assert_eq!(cmd.topic.to_string(), "cmd/monitoring/1/d-1/remediation");
        let parsed = parse_command(cmd.payload.as_bytes(), &ParseContext::new(5_000)).unwrap();
        assert_eq!(parsed.action, Action::Cool);
        assert_eq!(out.alarms.len(), 1, "{:?}", out.alarms);
        assert_eq!(s.readings_total(), 2);
        assert_eq!(s.decisions_total(), 2);
        assert_eq!(s.archive_total(), 1);
    }

    #[test]
    fn a_redelivered_batch_is_stored_once_and_commands_once() {
        let mut p = Pipeline::new(PipelineConfig::default()).unwrap();
        let mut s = MemoryStore::new();
        let msgs = [telemetry("d-1", 0, 28.5)];
        let first = ingest(&mut p, &mut s, &msgs, 5_000);
        let again = ingest(&mut p, &mut s, &msgs, 6_000);
        assert_eq!((first.stored.len(), first.commands.len()), (1, 1));
        assert_eq!(
            (again.stored.len(), again.commands.len(), again.duplicates),
            (0, 0, 1)
        );
        assert_eq!(s.readings_total(), 1);
    }

    #[test]
    fn a_batch_message_is_stored_and_remediated_reading_by_reading() {
        let mut p = Pipeline::new(PipelineConfig::default()).unwrap();
        let mut s = MemoryStore::new();
        let readings: Vec<Telemetry> = [27.0, 27.5, 28.4, 28.6]
            .iter()
            .enumerate()
            .map(|(i, &t)| {
                Telemetry::current(
                    "d-1".try_into().unwrap(),
                    "1".try_into().unwrap(),
                    i as u64,
                    1_000 + i as u64 * 2_000,
                    t,
                    60.0,
                )
            })
            .collect();
        let topic = Topic::telemetry("1".try_into().unwrap(), "d-1".try_into().unwrap());
        let msgs = [(topic.to_string(), encode_telemetry_batch(&readings))];
        let out = ingest(&mut p, &mut s, &msgs, 10_000);
        assert_eq!((out.summary.received, out.summary.readings), (1, 4));
        assert_eq!(out.stored.len(), 4);
        assert_eq!(out.decisions.len(), 4, "one decision per reading");
        // Seq 2 leaves the band rising: one cool command, and no storm for seq 3.
        assert_eq!(out.commands.len(), 1);
        let cmd = parse_command(
            out.commands[0].payload.as_bytes(),
            &ParseContext::new(10_000),
        )
        .unwrap();
        assert_eq!((cmd.action, cmd.reading_seq), (Action::Cool, Some(2)));
        assert_eq!(s.readings_total(), 4);

        // Redelivered whole: every reading is a duplicate, nothing is decided again.
        let again = ingest(&mut p, &mut s, &msgs, 11_000);
        assert_eq!(
            (again.stored.len(), again.duplicates, again.commands.len()),
            (0, 4, 0)
        );
        assert_eq!(s.readings_total(), 4);
    }

    #[test]
    fn bad_messages_are_rejected_without_hurting_good_ones() {
        let mut p = Pipeline::new(PipelineConfig::default()).unwrap();
        let mut s = MemoryStore::new();
        let good = telemetry("d-1", 0, 27.0);
        let msgs = [
            (
                "dt/monitoring/1/d-1/telemetry".to_string(),
                "not json".to_string(),
            ),
            good,
            ("dt/monitoring/1/d!/telemetry".to_string(), "{}".to_string()),
        ];
        let out = ingest(&mut p, &mut s, &msgs, 5_000);
        assert_eq!(out.stored.len(), 1);
        assert_eq!(out.rejected.len(), 2);
        assert_eq!(out.summary.rejected_by_code.values().sum::<u64>(), 2);
        assert_eq!(
            s.archive_total(),
            2,
            "readings and rejects are both archived"
        );
    }
}
