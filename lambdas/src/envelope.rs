//! The IoT Rule's envelope around each MQTT message.
//!
//! The rule `SELECT encode(*, 'base64') AS payload, topic() AS topic, clientid() AS
//! client_id, timestamp() AS received_at FROM '<filter>'` turns each message into
//! `{"payload":"<base64>","topic":"dt/monitoring/1/d-0001/telemetry","client_id":"d-0001","received_at":1764230400000}`:
//! the SQS message body, or the whole event of a direct invoke. Base64 keeps the raw bytes,
//! so the core parser sees exactly what the device sent, garbage included, and rejects it
//! with the same reasons as the local stack.
//!
//! `client_id` says who published (ARCHITECTURE §4.8): IoT Core has already bound it to the
//! connection's credential (the device policy: client id = the certificate's thing; the
//! guest role: `{identity id}.{suffix}`), so the worker takes it as the publisher's identity
//! ([`Publisher::of_client_id`]) and rejects every reading whose device that identity may
//! not report (`device_not_publisher`). An envelope **without** `client_id` (a rule made
//! before the SQL carried it, or a message sent to the queue by hand) names nobody: its
//! readings are all rejected that way (template.yml changes the rules and the worker in one
//! deploy; envelopes queued before it are rejected and archived, not lost unseen).
//! A message that did not come over MQTT (an HTTPS publish) has the client id `n/a`, which
//! names nobody either.
//!
//! Devices may publish through Basic Ingest (`$aws/rules/<rule>/dt/monitoring/…`, no
//! messaging charge). The rule's filter and `topic()` see the topic after that prefix; should
//! a `topic()` ever carry it, it is dropped here, so the topic is checked the same either way.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use fleet_core::{DeviceId, Publisher};
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
    /// The publisher's MQTT client id, the rule's `clientid()` (`None` if the rule left it
    /// out: its readings are then rejected, see the module doc).
    pub client_id: Option<String>,
}

/// Why a body is not an envelope.
#[derive(Debug, thiserror::Error)]
pub enum EnvelopeError {
    /// Not a JSON object of the expected fields and types.
    #[error(
        "the envelope is not a JSON object with string `payload`, `topic` and `client_id`: {0}"
    )]
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
    client_id: Option<String>,
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
            client_id: raw.client_id,
        })
    }

    /// The envelope a rule would make of `payload` published by `client_id` on `topic`
    /// (tests, the bench, fixtures).
    pub fn encode(topic: &str, client_id: &str, payload: &[u8], received_ms: u64) -> String {
        serde_json::json!({
            "payload": STANDARD.encode(payload),
            "topic": topic,
            "client_id": client_id,
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
    /// The client id that published it (`None`: the envelope had none, or did not decode).
    pub client_id: Option<String>,
    /// Whose readings it may carry: [`Publisher::of_client_id`] of the client id, made once
    /// per message and shared by all the readings of a batch message;
    /// [`Publisher::Nobody`] without a client id.
    pub publisher: Publisher,
    /// Why the envelope did not decode, if it did not.
    pub envelope_error: Option<EnvelopeError>,
}

impl Message {
    /// A message from a body; `fallback_ms` is the arrival when the envelope has none, and
    /// `legacy_device` the device the original stack's fixed client id
    /// ([`fleet_core::access::LEGACY_CLIENT_ID`]) speaks for.
    pub fn from_body(
        id: String,
        body: &[u8],
        fallback_ms: u64,
        legacy_device: &DeviceId,
    ) -> Message {
        match Envelope::decode(body) {
            Ok(e) => {
                let publisher = e.client_id.as_deref().map_or(Publisher::Nobody, |c| {
                    Publisher::of_client_id(c, Some(legacy_device))
                });
                Message {
                    id,
                    topic: e.topic,
                    payload: e.payload,
                    received_ms: e.received_ms.unwrap_or(fallback_ms),
                    client_id: e.client_id,
                    publisher,
                    envelope_error: None,
                }
            }
            Err(e) => Message {
                id,
                topic: String::new(),
                payload: body.to_vec(),
                received_ms: fallback_ms,
                client_id: None,
                publisher: Publisher::Nobody,
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
            publisher: &self.publisher,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn legacy() -> DeviceId {
        DeviceId::try_from("381938912").unwrap()
    }

    #[test]
    fn round_trips() {
        let body = Envelope::encode("dt/monitoring/1/d-1/telemetry", "d-1", b"{\"a\":1}", 42);
        let e = Envelope::decode(body.as_bytes()).unwrap();
        assert_eq!(e.topic, "dt/monitoring/1/d-1/telemetry");
        assert_eq!(e.payload, b"{\"a\":1}");
        assert_eq!(e.received_ms, Some(42));
        assert_eq!(e.client_id.as_deref(), Some("d-1"));
    }

    #[test]
    fn the_client_id_names_the_publisher_and_its_absence_names_nobody() {
        let publisher =
            |body: &str| Message::from_body("m".into(), body.as_bytes(), 7, &legacy()).publisher;
        let topic = "dt/monitoring/1/d-1/telemetry";
        assert_eq!(
            publisher(&Envelope::encode(topic, "d-1", b"{}", 1)),
            Publisher::Device(DeviceId::try_from("d-1").unwrap())
        );
        assert_eq!(
            publisher(&Envelope::encode(
                "monitoring-device/building-1",
                "monitoring-device",
                b"{}",
                1
            )),
            Publisher::Device(legacy())
        );
        let guest = publisher(&Envelope::encode(
            topic,
            "eu-west-1:7d7c5d4e-0a1b-4c2d-8e3f-1234567890ab.gw0",
            b"{}",
            1,
        ));
        assert!(guest.may_report("browser", "g7d7c5d4e0a1b4c2d8e3f1234567890ab-0001"));
        assert!(!guest.may_report("browser", "d-1"));
        // An old rule's envelope (no client_id), an explicit null, and a message that did
        // not come over MQTT (`n/a`) speak for nobody.
        for body in [
            r#"{"payload":"e30=","topic":"dt/monitoring/1/d-1/telemetry"}"#,
            r#"{"payload":"e30=","topic":"dt/monitoring/1/d-1/telemetry","client_id":null}"#,
            r#"{"payload":"e30=","topic":"dt/monitoring/1/d-1/telemetry","client_id":"n/a"}"#,
        ] {
            assert_eq!(publisher(body), Publisher::Nobody, "{body}");
        }
    }

    #[test]
    fn a_basic_ingest_prefix_is_dropped_and_nothing_else() {
        let topic = |t: &str| {
            Envelope::decode(Envelope::encode(t, "d-1", b"{}", 1).as_bytes())
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
            br#"{"payload":"e30=","topic":"t","client_id":5}"#,
        ] {
            let m = Message::from_body("m".into(), body, 7, &legacy());
            assert!(m.envelope_error.is_some(), "{body:?}");
            assert_eq!(
                (m.topic.as_str(), m.payload.as_slice(), m.received_ms),
                ("", body, 7)
            );
            assert_eq!(m.publisher, Publisher::Nobody);
        }
    }
}
