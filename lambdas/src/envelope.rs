//! The IoT Rule's envelope around each MQTT message.
//!
//! The rule `SELECT encode(*, 'base64') AS payload, topic() AS topic, timestamp() AS
//! received_at FROM '<filter>'` turns each message into
//! `{"payload":"<base64>","topic":"dt/monitoring/1/d-0001/telemetry","received_at":1764230400000}`:
//! the SQS message body, or the whole event of a direct invoke. Base64 keeps the raw bytes,
//! so the core parser sees exactly what the device sent, garbage included, and rejects it
//! with the same reasons as the local stack.
//!
//! Devices may publish through Basic Ingest (`$aws/rules/<rule>/dt/monitoring/…`, no
//! messaging charge). The rule's filter and `topic()` see the topic after that prefix; should
//! a `topic()` ever carry it, it is dropped here, so the topic is checked the same either way.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;

/// One decoded message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// The MQTT topic.
    pub topic: String,
    /// The raw MQTT payload.
    pub payload: Vec<u8>,
    /// When IoT Core received it, ms since the Unix epoch (`None` if the rule left it out).
    pub received_ms: Option<u64>,
}

/// Why a body is not an envelope.
#[derive(Debug, thiserror::Error)]
pub enum EnvelopeError {
    /// Not a JSON object of the expected fields and types.
    #[error("the envelope is not a JSON object with string `payload` and `topic`: {0}")]
    NotJson(#[from] serde_json::Error),
    /// `topic` is missing.
    #[error("the envelope has no `topic`")]
    MissingTopic,
    /// `payload` is missing.
    #[error("the envelope has no `payload`")]
    MissingPayload,
    /// `payload` is not base64.
    #[error("the envelope's `payload` is not base64: {0}")]
    BadBase64(#[from] base64::DecodeError),
}

#[derive(Deserialize)]
struct Raw<'a> {
    #[serde(borrow)]
    payload: Option<std::borrow::Cow<'a, str>>,
    topic: Option<String>,
    received_at: Option<u64>,
}

impl Envelope {
    /// Decodes an envelope from its JSON.
    pub fn decode(body: &[u8]) -> Result<Envelope, EnvelopeError> {
        let raw: Raw<'_> = serde_json::from_slice(body)?;
        let mut topic = raw.topic.ok_or(EnvelopeError::MissingTopic)?;
        if let Some(rest) = fleet_core::topic::basic_ingest::strip(&topic) {
            topic = rest.to_owned();
        }
        let payload = raw.payload.ok_or(EnvelopeError::MissingPayload)?;
        let payload = STANDARD.decode(payload.as_bytes())?;
        Ok(Envelope {
            topic,
            payload,
            received_ms: raw.received_at,
        })
    }

    /// The envelope a rule would make of `payload` on `topic` (tests, the bench, fixtures).
    pub fn encode(topic: &str, payload: &[u8], received_ms: u64) -> String {
        serde_json::json!({
            "payload": STANDARD.encode(payload),
            "topic": topic,
            "received_at": received_ms,
        })
        .to_string()
    }
}

/// One message for the worker: an envelope, or the raw body of one that did not decode.
#[derive(Debug)]
pub struct Message {
    /// Transport id: the SQS message id, or the request id of a direct invoke.
    pub id: String,
    /// The topic (empty when the envelope was bad, so the plan rejects it as
    /// `topic_invalid`: there is no trustworthy topic).
    pub topic: String,
    /// The payload (the whole body when the envelope was bad, so the archive keeps it).
    pub payload: Vec<u8>,
    /// Arrival, ms.
    pub received_ms: u64,
    /// Why the envelope did not decode, if it did not.
    pub envelope_error: Option<EnvelopeError>,
}

impl Message {
    /// A message from a body; `fallback_ms` is the arrival when the envelope has none.
    pub fn from_body(id: String, body: &[u8], fallback_ms: u64) -> Message {
        match Envelope::decode(body) {
            Ok(e) => Message {
                id,
                topic: e.topic,
                payload: e.payload,
                received_ms: e.received_ms.unwrap_or(fallback_ms),
                envelope_error: None,
            },
            Err(e) => Message {
                id,
                topic: String::new(),
                payload: body.to_vec(),
                received_ms: fallback_ms,
                envelope_error: Some(e),
            },
        }
    }

    /// The message as the core plan takes it.
    pub fn incoming(&self) -> fleet_core::Incoming<'_> {
        fleet_core::Incoming {
            topic: &self.topic,
            payload: &self.payload,
            received_ms: self.received_ms,
            source_id: &self.id,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let body = Envelope::encode("dt/monitoring/1/d-1/telemetry", b"{\"a\":1}", 42);
        let e = Envelope::decode(body.as_bytes()).unwrap();
        assert_eq!(e.topic, "dt/monitoring/1/d-1/telemetry");
        assert_eq!(e.payload, b"{\"a\":1}");
        assert_eq!(e.received_ms, Some(42));
    }

    #[test]
    fn a_basic_ingest_prefix_is_dropped_and_nothing_else() {
        let topic = |t: &str| {
            Envelope::decode(Envelope::encode(t, b"{}", 1).as_bytes())
                .unwrap()
                .topic
        };
        assert_eq!(
            topic("$aws/rules/fleet_telemetry/dt/monitoring/1/d-1/telemetry"),
            "dt/monitoring/1/d-1/telemetry"
        );
        // Not a Basic Ingest topic: kept as it is, for the plan to judge.
        for t in [
            "$aws/rules/fleet_telemetry",
            "$aws/rules//dt/x",
            "$aws/things/x/shadow",
        ] {
            assert_eq!(topic(t), t);
        }
    }

    #[test]
    fn bad_envelopes_keep_the_body() {
        for body in [
            &b"not json"[..],
            br#"{"topic":"t"}"#,
            br#"{"payload":"e30="}"#,
            br#"{"payload":"***","topic":"t"}"#,
            br#"{"payload":1,"topic":"t"}"#,
        ] {
            let m = Message::from_body("m".into(), body, 7);
            assert!(m.envelope_error.is_some(), "{body:?}");
            assert_eq!(
                (m.topic.as_str(), m.payload.as_slice(), m.received_ms),
                ("", body, 7)
            );
        }
    }
}
