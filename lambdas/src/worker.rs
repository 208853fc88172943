//! The worker (§4.4): IoT Rule → SQS batches (or a direct invoke) → the core's worker plan →
//! EMF lines on stdout, one NDJSON archive object per batch, table rows.
//!
//! The three sinks run concurrently and each failure is reported: a failed archive write
//! fails the records it holds, a failed row fails its record; Lambda redelivers only those
//! (`ReportBatchItemFailures`). A bad message is rejected by the plan (logged with its
//! reason, counted in EMF, archived under `rejected/…`) and acknowledged, because a retry
//! would only reject it again.
//!
//! A record may carry a batch of readings (a JSON array, §4.3): it yields one row per
//! reading, every row naming the record, so a record fails if *any* of its rows could not
//! be written and is redelivered whole (rewriting its other rows is idempotent). A bad
//! element is rejected on its own (`{message id}#{index}` in the logs) and fails nothing.
//!
//! Only a device speaks for itself (§4.8): each message's publisher comes from the rule's
//! `clientid()` in its envelope ([`crate::envelope`]), and a reading of a device that
//! client may not report is rejected (`device_not_publisher`), like any other bad input.

use std::collections::{BTreeSet, HashMap};

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use fleet_core::{DeviceId, Incoming, PlanSummary, WorkerConfig, plan};
use serde::Deserialize;
use serde::de::{Deserializer, Error as _, MapAccess, Visitor};
use serde_json::Value;
use tracing::{error, info, warn};

use crate::envelope::Message;
use crate::ports::{Archive, MetricLog, ReadingTable};

/// The worker's handler: the plan settings and the ports it writes through.
#[derive(Debug)]
pub struct Worker<T, A, M> {
    /// The core's worker settings (TTL, band, metric devices and buildings).
    pub config: WorkerConfig,
    /// The device the original stack's fixed client id `monitoring-device` speaks for
    /// (`LEGACY_DEVICE_ID`): its thing is named `monitoring-device`, so its readings
    /// cannot name their device by the client id.
    pub legacy_device: DeviceId,
    /// The readings table.
    pub table: T,
    /// The archive bucket.
    pub archive: A,
    /// Where EMF lines go.
    pub metrics: M,
}

/// What one batch came to.
#[derive(Debug, Default)]
pub struct BatchReport {
    /// Ids of the messages to redeliver, in batch order: each once, however many of its
    /// rows failed.
    pub failed: Vec<String>,
    /// The plan's counts.
    pub summary: PlanSummary,
    /// Every write error, as text (also logged).
    pub errors: Vec<String>,
}

/// The handler could not report its failures per record (a direct invoke, or a failed
/// record without a message id): Lambda must retry the whole event.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// Some writes failed.
    #[error("{count} message(s) could not be stored: {first}")]
    Failed {
        /// How many messages failed.
        count: usize,
        /// The first error.
        first: String,
    },
    /// The event is neither an SQS batch nor an envelope.
    #[error("the event is not an SQS batch: {0}")]
    BadEvent(#[from] serde_json::Error),
}

/// The worker's event, read in one pass from Lambda's JSON: an SQS batch (an object with
/// `Records`), or a direct IoT Rule invoke (any other object: the envelope itself).
///
/// Read straight into this, not through a `serde_json::Value` first: a generic value of a
/// 500-message batch cost more CPU than the rest of the worker's path (BENCHMARKS.md).
#[derive(Debug, Clone, PartialEq)]
pub enum WorkerEvent {
    /// An SQS batch.
    Sqs(Vec<SqsRecord>),
    /// A direct invoke: the envelope's JSON text.
    Direct(Vec<u8>),
}

/// What the worker reads of an SQS record. The rest (other attributes, message attributes,
/// digests, the queue's ARN) is skipped, not stored.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct SqsRecord {
    /// The message id: what `batchItemFailures` names.
    #[serde(rename = "messageId")]
    pub message_id: Option<String>,
    /// The body: the IoT Rule's envelope.
    pub body: Option<String>,
    /// `attributes.SentTimestamp` (ms, as text): the arrival when the envelope has none.
    #[serde(default, rename = "attributes", deserialize_with = "sent_timestamp")]
    pub sent_timestamp: Option<String>,
}

fn sent_timestamp<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    #[derive(Deserialize)]
    struct Attributes {
        #[serde(rename = "SentTimestamp")]
        sent_timestamp: Option<String>,
    }
    Ok(Option::<Attributes>::deserialize(d)?.and_then(|a| a.sent_timestamp))
}

impl From<SqsMessage> for SqsRecord {
    fn from(m: SqsMessage) -> SqsRecord {
        SqsRecord {
            sent_timestamp: m.attributes.get("SentTimestamp").cloned(),
            message_id: m.message_id,
            body: m.body,
        }
    }
}

impl<'de> Deserialize<'de> for WorkerEvent {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<WorkerEvent, D::Error> {
        struct Event;
        impl<'de> Visitor<'de> for Event {
            type Value = WorkerEvent;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an SQS event or an IoT Rule envelope (a JSON object)")
            }

            fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<WorkerEvent, M::Error> {
                let mut records = None;
                // A direct invoke's members, to give the envelope back as text: one small
                // object, so a generic value costs nothing here.
                let mut rest = serde_json::Map::new();
                while let Some(key) = map.next_key::<String>()? {
                    if key == "Records" {
                        records = Some(map.next_value::<Vec<SqsRecord>>()?);
                    } else {
                        rest.insert(key, map.next_value::<Value>()?);
                    }
                }
                match records {
                    Some(records) => Ok(WorkerEvent::Sqs(records)),
                    None => serde_json::to_vec(&Value::Object(rest))
                        .map(WorkerEvent::Direct)
                        .map_err(M::Error::custom),
                }
            }
        }
        d.deserialize_map(Event)
    }
}

impl<T: ReadingTable, A: Archive, M: MetricLog> Worker<T, A, M> {
    /// Runs one batch of messages through the plan and the sinks.
    pub async fn handle_messages(&self, messages: &[Message]) -> BatchReport {
        let incoming: Vec<Incoming<'_>> = messages.iter().map(Message::incoming).collect();
        let plan = plan(&self.config, &incoming);

        // Rejections are logged with their message's envelope error and client id; the
        // index is built only when there is something to log.
        let by_id: HashMap<&str, &Message> = if plan.rejected.is_empty() {
            HashMap::new()
        } else {
            messages.iter().map(|m| (m.id.as_str(), m)).collect()
        };
        for r in &plan.rejected {
            let message = by_id.get(r.source_id.as_str());
            warn!(
                message_id = %r.source_id,
                client_id = message.and_then(|m| m.client_id.as_deref()),
                element = r.element,
                reference = %r.reference(),
                topic = %r.topic,
                code = r.reason.code(),
                reason = %r.reason,
                envelope = message.and_then(|m| m.envelope_error.as_ref()).map(|e| e.to_string()),
                "rejected"
            );
        }
        let anonymous = messages
            .iter()
            .filter(|m| m.envelope_error.is_none() && m.client_id.is_none())
            .count();
        if anonymous > 0 {
            // Said once per batch, with the fix: every such reading is rejected.
            error!(
                messages = anonymous,
                "envelopes without client_id: their readings are rejected (device_not_publisher); \
                 the IoT rule must select clientid() AS client_id (redeploy template.yml)"
            );
        }
        self.metrics.emit(&plan.emf);

        let readings = async {
            match &plan.archive {
                Some(o) => self.archive.put_object(o).await,
                None => Ok(()),
            }
        };
        let rejected = async {
            match &plan.rejected_archive {
                Some(o) => self.archive.put_object(o).await,
                None => Ok(()),
            }
        };
        let rows = self.table.put_rows(&plan.rows);
        let (readings, rejected, rows) = tokio::join!(readings, rejected, rows);

        let mut failed: BTreeSet<&str> = BTreeSet::new();
        let mut errors = Vec::new();
        if let Err(e) = readings {
            error!(error = %e, rows = plan.rows.len(), "archiving the readings failed; their messages will be redelivered");
            failed.extend(plan.rows.iter().map(|r| r.source_id.as_str()));
            errors.push(e.to_string());
        }
        if let Err(e) = rejected {
            error!(error = %e, rejected = plan.rejected.len(), "archiving the rejected messages failed; they will be redelivered");
            failed.extend(plan.rejected.iter().map(|r| r.source_id.as_str()));
            errors.push(e.to_string());
        }
        if let Err(e) = rows {
            error!(error = %e, "writing readings failed; their messages will be redelivered");
            failed.extend(
                e.failed
                    .iter()
                    .filter_map(|&i| plan.rows.get(i))
                    .map(|r| r.source_id.as_str()),
            );
            errors.push(e.to_string());
        }
        let failed: Vec<String> = messages
            .iter()
            .filter(|m| failed.contains(m.id.as_str()))
            .map(|m| m.id.clone())
            .collect();
        info!(
            received = plan.summary.received,
            batches = plan.summary.batches,
            readings = plan.summary.readings,
            accepted = plan.summary.accepted,
            duplicates = plan.summary.duplicates,
            rejected = plan.summary.rejected,
            failed = failed.len(),
            "batch"
        );
        BatchReport {
            failed,
            summary: plan.summary,
            errors,
        }
    }

    /// An SQS batch in `aws_lambda_events`' shape: as [`Worker::handle_records`].
    pub async fn handle_sqs(
        &self,
        event: SqsEvent,
        now_ms: u64,
    ) -> Result<SqsBatchResponse, WorkerError> {
        let records = event.records.into_iter().map(SqsRecord::from).collect();
        self.handle_records(records, now_ms).await
    }

    /// An SQS batch: returns the ids to redeliver as `batchItemFailures`.
    pub async fn handle_records(
        &self,
        records: Vec<SqsRecord>,
        now_ms: u64,
    ) -> Result<SqsBatchResponse, WorkerError> {
        let messages: Vec<Message> = records
            .into_iter()
            .enumerate()
            .map(|(i, record)| {
                let sent_ms = record
                    .sent_timestamp
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(now_ms);
                // SQS always sends an id; one missing cannot be reported, so it is named
                // here and, if it fails, the whole batch is retried below.
                let id = record.message_id.unwrap_or_else(|| format!("(no id #{i})"));
                let body = record.body.unwrap_or_default();
                Message::from_body(id, body.as_bytes(), sent_ms, &self.legacy_device)
            })
            .collect();
        let report = self.handle_messages(&messages).await;
        if report.failed.iter().any(|id| id.starts_with("(no id")) {
            return Err(WorkerError::Failed {
                count: report.failed.len(),
                first: report.errors.first().cloned().unwrap_or_default(),
            });
        }
        let mut response = SqsBatchResponse::default();
        response.set_failures(report.failed);
        Ok(response)
    }

    /// A direct IoT Rule → Lambda invoke: the event is one envelope. A failed write fails
    /// the invoke, so Lambda's async retry delivers it again; a rejected message does not.
    pub async fn handle_direct(
        &self,
        body: &[u8],
        request_id: &str,
        now_ms: u64,
    ) -> Result<BatchReport, WorkerError> {
        let message = Message::from_body(request_id.to_owned(), body, now_ms, &self.legacy_device);
        let report = self.handle_messages(std::slice::from_ref(&message)).await;
        if report.failed.is_empty() {
            Ok(report)
        } else {
            Err(WorkerError::Failed {
                count: report.failed.len(),
                first: report.errors.first().cloned().unwrap_or_default(),
            })
        }
    }

    /// Either event: the response is the SQS batch response (empty for a direct invoke).
    pub async fn handle_event(
        &self,
        event: WorkerEvent,
        request_id: &str,
        now_ms: u64,
    ) -> Result<SqsBatchResponse, WorkerError> {
        match event {
            WorkerEvent::Sqs(records) => self.handle_records(records, now_ms).await,
            WorkerEvent::Direct(body) => {
                self.handle_direct(&body, request_id, now_ms).await?;
                Ok(SqsBatchResponse::default())
            }
        }
    }
}

/// Lambda's error report for a failed invoke: the variant as the error type.
impl From<WorkerError> for lambda_runtime::Diagnostic {
    fn from(e: WorkerError) -> Self {
        let error_type = match e {
            WorkerError::Failed { .. } => "WorkerError::Failed",
            WorkerError::BadEvent(_) => "WorkerError::BadEvent",
        };
        lambda_runtime::Diagnostic {
            error_type: error_type.to_owned(),
            error_message: e.to_string(),
        }
    }
}
