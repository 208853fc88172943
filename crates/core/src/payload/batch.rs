//! Batched telemetry (§4.3; `docs/decisions/batched-telemetry.md`): one message carrying a
//! JSON array of current-shape readings of the device named by its topic.
//!
//! Why: on AWS every MQTT message pays an IoT Core message, a rule trigger and action and an
//! SQS `SendMessage`, whatever it holds, so a device that sends N readings per message cuts
//! that part of the bill by N. Each element is checked exactly like a single reading (same
//! rejections, same topic check) and judged on its own: a bad element is rejected with its
//! index and never takes the good ones down with it. Only what makes the whole array
//! unreadable (size, UTF-8, syntax, length, the wrong topic) rejects the whole message.

use serde_json::value::RawValue;

use crate::payload::context::ParseContext;
use crate::payload::field::{Field, JsonKind};
use crate::payload::object::Object;
use crate::payload::rejection::Rejection;
use crate::payload::telemetry::{Telemetry, encode_telemetry, parse_current, parse_telemetry};

/// Most readings in one batch. A bound on the work one message can cause, and with about
/// 110 bytes per reading 100 readings stay far below IoT Core's 128 KB message limit.
pub const MAX_BATCH: usize = 100;

/// Readings per message that keep a batch within IoT Core's 5 KB metering step, for
/// readings as sensors report them (two decimals, ~105 bytes: 40 readings ≈ 4.2 KB). A
/// bigger message is billed as several. Full-precision floats (`fleet sim`'s noisy curves,
/// ~126 bytes a reading) fit 38 per step.
pub const RECOMMENDED_BATCH: usize = 40;

/// One element of a batch: its JSON text (for the rejection archive) and what it came to.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchElement<'a> {
    /// The element as sent (a slice of the payload).
    pub raw: &'a str,
    /// The reading, or why this element was rejected.
    pub reading: Result<Telemetry, Rejection>,
}

/// A telemetry message: one reading, or a batch of readings judged one by one.
#[derive(Debug, Clone, PartialEq)]
pub enum TelemetryMessage<'a> {
    /// A single object, of either shape (exactly what [`parse_telemetry`] accepts).
    One(Telemetry),
    /// A JSON array of 1..=[`MAX_BATCH`] elements, in payload order.
    Batch(Vec<BatchElement<'a>>),
}

/// Parses a telemetry payload that may be a batch.
///
/// An object is parsed by [`parse_telemetry`], unchanged. An array is a batch: it is
/// accepted only when `ctx` names the device and building of the topic (a device's own
/// telemetry topic; on a legacy topic it is [`Rejection::BatchNotAllowed`]), must hold
/// 1..=[`MAX_BATCH`] elements, and fits in `ctx.max_bytes` as a whole. Each element must be a
/// current-shape reading object and is then checked like a single reading against `ctx`.
///
/// `Err` rejects the whole message; element rejections are inside [`TelemetryMessage::Batch`].
pub fn parse_telemetry_batch<'a>(
    bytes: &'a [u8],
    ctx: &ParseContext,
) -> Result<TelemetryMessage<'a>, Rejection> {
    // The first byte tells an array apart without parsing twice: objects keep their
    // single-reading path (and its cost) exactly.
    if bytes.trim_ascii_start().first() != Some(&b'[') {
        return parse_telemetry(bytes, ctx).map(TelemetryMessage::One);
    }
    if bytes.len() > ctx.max_bytes {
        return Err(Rejection::TooLarge {
            len: bytes.len(),
            max: ctx.max_bytes,
        });
    }
    let text = std::str::from_utf8(bytes).map_err(|e| Rejection::NotUtf8 {
        valid_up_to: e.valid_up_to(),
    })?;
    if ctx.device.is_none() || ctx.building.is_none() {
        return Err(Rejection::BatchNotAllowed);
    }
    // Each element as raw text: the array's syntax is checked as a whole, elements are
    // interpreted one by one.
    let elements: Vec<&RawValue> = serde_json::from_str(text).map_err(|e| Rejection::Syntax {
        line: e.line(),
        column: e.column(),
    })?;
    if elements.is_empty() {
        return Err(Rejection::EmptyBatch { max: MAX_BATCH });
    }
    if elements.len() > MAX_BATCH {
        return Err(Rejection::BatchTooLong {
            len: elements.len(),
            max: MAX_BATCH,
        });
    }
    Ok(TelemetryMessage::Batch(
        elements
            .into_iter()
            .map(|raw| BatchElement {
                raw: raw.get(),
                reading: parse_element(raw, ctx),
            })
            .collect(),
    ))
}

fn parse_element(raw: &RawValue, ctx: &ParseContext) -> Result<Telemetry, Rejection> {
    let found = JsonKind::of(raw.get());
    if found != JsonKind::Object {
        return Err(Rejection::BatchElementNotObject { found });
    }
    let obj = Object::from_raw(raw, None)?;
    // Legacy devices never batch (the original's devices send one `{"body":…}` each).
    if obj.has(Field::Body) {
        return Err(Rejection::BatchNotAllowed);
    }
    parse_current(&obj, ctx)
}

/// Encodes readings as one batch message: a JSON array of [`encode_telemetry`] objects.
///
/// For current-shape readings of one device, at most [`MAX_BATCH`] of them (the parser
/// rejects anything else; the encoder never invents or drops data). Keep to
/// [`RECOMMENDED_BATCH`] to stay within IoT Core's 5 KB metering step.
pub fn encode_telemetry_batch(readings: &[Telemetry]) -> String {
    let mut out = String::from("[");
    for (i, t) in readings.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&encode_telemetry(t));
    }
    out.push(']');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::{BuildingId, DeviceId};
    use crate::payload::context::DEFAULT_MAX_BYTES;
    use crate::topic::Topic;

    const NOW: u64 = 1_764_230_400_000;

    fn ctx() -> ParseContext {
        let topic = Topic::parse("dt/monitoring/1/d-0001/telemetry").unwrap();
        ParseContext::for_topic(&topic, NOW)
    }

    fn reading(seq: u64) -> Telemetry {
        Telemetry::current(
            DeviceId::try_from("d-0001").unwrap(),
            BuildingId::try_from("1").unwrap(),
            seq,
            NOW - 10_000 + seq,
            27.0 + seq as f64 / 10.0,
            60.0,
        )
    }

    fn batch(payload: &[u8], ctx: &ParseContext) -> Vec<Result<Telemetry, &'static str>> {
        match parse_telemetry_batch(payload, ctx) {
            Ok(TelemetryMessage::Batch(elements)) => elements
                .into_iter()
                .map(|e| e.reading.map_err(|r| r.code()))
                .collect(),
            other => panic!("not a batch: {other:?}"),
        }
    }

    fn whole(payload: &[u8], ctx: &ParseContext) -> &'static str {
        match parse_telemetry_batch(payload, ctx) {
            Err(r) => r.code(),
            Ok(m) => panic!("accepted {m:?}"),
        }
    }

    #[test]
    fn encode_then_parse_gives_the_readings_back() {
        let readings: Vec<Telemetry> = (1..=MAX_BATCH as u64).map(reading).collect();
        let payload = encode_telemetry_batch(&readings);
        let parsed: Vec<Telemetry> = batch(payload.as_bytes(), &ctx())
            .into_iter()
            .map(Result::unwrap)
            .collect();
        assert_eq!(parsed, readings);
        assert_eq!(
            encode_telemetry_batch(&readings[..1]),
            format!("[{}]", crate::payload::encode_telemetry(&readings[0]))
        );
        assert_eq!(encode_telemetry_batch(&[]), "[]");
    }

    #[test]
    fn the_recommended_batch_fits_in_one_5_kb_metering_step() {
        // Metered in steps of 5 KB; counted here as 5,000 bytes, the stricter reading.
        let reading = |temperature, humidity| {
            Telemetry::current(
                DeviceId::try_from("d-0001").unwrap(),
                BuildingId::try_from("1").unwrap(),
                9_999_999, // 115 days at one reading a second
                NOW,
                temperature,
                humidity,
            )
        };
        // As sensors report them (0.01 °C / 0.01 %): 40 readings are about 4.2 KB.
        let sensor = encode_telemetry_batch(&vec![reading(-27.12, 60.12); RECOMMENDED_BATCH]);
        assert!(sensor.len() <= 5_000, "{} bytes", sensor.len());
        // `fleet sim`'s noisy curves in full precision (17 digits) are ~126 bytes a reading:
        // 38 fit, 40 would be billed as two messages (as the decision record says).
        let full = reading(-27.123_456_789_012_34, 60.123_456_789_012_34);
        assert!(encode_telemetry_batch(&vec![full.clone(); 38]).len() <= 5_000);
        assert!(encode_telemetry_batch(&vec![full; RECOMMENDED_BATCH]).len() > 5_000);
        assert!(
            encode_telemetry_batch(&vec![reading(27.0, 60.0); MAX_BATCH]).len() < DEFAULT_MAX_BYTES
        );
    }

    #[test]
    fn objects_keep_the_single_reading_path() {
        let payload = crate::payload::encode_telemetry(&reading(3));
        assert_eq!(
            parse_telemetry_batch(payload.as_bytes(), &ctx()),
            Ok(TelemetryMessage::One(reading(3)))
        );
        // Whole-message reasons of a single object are unchanged.
        assert_eq!(whole(b"", &ctx()), "empty");
        assert_eq!(whole(b"\"x\"", &ctx()), "not_object");
    }

    #[test]
    fn a_bad_element_is_rejected_alone_with_the_single_reading_reason() {
        let good = |seq| crate::payload::encode_telemetry(&reading(seq));
        let mut other_device = reading(4);
        other_device.device = DeviceId::try_from("d-0002").unwrap();
        let mut dup_seq = good(8);
        dup_seq.insert_str(dup_seq.len() - 1, ",\"seq\":9");
        let elements = [
            good(1),
            r#"{"device":"d-0001"}"#.to_owned(),
            good(3).replace("27.3", "250"),
            crate::payload::encode_telemetry(&other_device),
            "1".to_owned(),
            format!("[{}]", good(5)),
            good(6).replace("\"humidity\":60.0", "\"humidity\":1e999"),
            r#"{"body":{"device":"d-0001","temperature":27,"humidity":60,"action":"Monitor"}}"#
                .to_owned(),
            dup_seq,
            good(7),
        ];
        let payload = format!("[{}]", elements.join(","));
        let got = batch(payload.as_bytes(), &ctx());
        assert_eq!(
            got,
            [
                Ok(reading(1)),
                Err("building_missing"),
                Err("temperature_out_of_range"),
                Err("device_topic_mismatch"),
                Err("batch_element_not_object"),
                Err("batch_element_not_object"),
                Err("humidity_non_finite"),
                Err("batch_not_allowed"),
                Err("seq_duplicate"),
                Ok(reading(7)),
            ][..]
        );
        // Each element keeps its own text, for the rejection archive.
        let Ok(TelemetryMessage::Batch(parsed)) = parse_telemetry_batch(payload.as_bytes(), &ctx())
        else {
            panic!("not a batch")
        };
        let raws: Vec<&str> = parsed.iter().map(|e| e.raw).collect();
        assert_eq!(
            raws,
            elements.iter().map(String::as_str).collect::<Vec<_>>()
        );
    }

    #[test]
    fn nan_is_not_json_so_it_rejects_the_whole_array() {
        // JSON has no NaN: the array cannot be split into elements, so the message goes.
        let payload = format!(
            "[{}]",
            crate::payload::encode_telemetry(&reading(1)).replace("27.1", "NaN")
        );
        assert_eq!(whole(payload.as_bytes(), &ctx()), "syntax");
    }

    #[test]
    fn whole_batch_problems_reject_the_message() {
        let one = crate::payload::encode_telemetry(&reading(1));
        let legacy = Topic::parse("monitoring-device/building-1").unwrap();
        let legacy_ctx = ParseContext::for_topic(&legacy, NOW);
        let too_long = format!("[{}]", vec![one.as_str(); MAX_BATCH + 1].join(","));
        let small = ctx().with_max_bytes(one.len() + 1);
        let topic_ctx = ctx();
        let cases: Vec<(Vec<u8>, &ParseContext, &str)> = vec![
            (b" [ ] ".to_vec(), &topic_ctx, "batch_empty"),
            (too_long.into_bytes(), &topic_ctx, "batch_too_long"),
            (
                format!("[{one}]").into_bytes(),
                &legacy_ctx,
                "batch_not_allowed",
            ),
            (format!("[{one}]").into_bytes(), &small, "too_large"),
            (format!("[{one},]").into_bytes(), &topic_ctx, "syntax"),
            (format!("[{one}] x").into_bytes(), &topic_ctx, "syntax"),
            (vec![b'[', 0xff, b']'], &topic_ctx, "not_utf8"),
        ];
        for (payload, c, code) in &cases {
            assert_eq!(
                whole(payload, c),
                *code,
                "{}",
                String::from_utf8_lossy(payload)
            );
        }
        // Without a topic there is no device to hold the batch to.
        assert_eq!(
            whole(format!("[{one}]").as_bytes(), &ParseContext::new(NOW)),
            "batch_not_allowed"
        );
        // Exactly MAX_BATCH is fine.
        let full = format!("[{}]", vec![one.as_str(); MAX_BATCH].join(","));
        assert_eq!(batch(full.as_bytes(), &ctx()).len(), MAX_BATCH);
    }

    #[test]
    fn deeply_nested_elements_do_not_crash() {
        let deep = format!("[{}{}]", "[".repeat(50_000), "]".repeat(50_000));
        let got = parse_telemetry_batch(deep.as_bytes(), &ctx().with_max_bytes(200_000));
        // Either a syntax error (recursion limit) or one element that is not an object.
        match got {
            Err(r) => assert_eq!(r.code(), "syntax"),
            Ok(TelemetryMessage::Batch(e)) => {
                assert_eq!(e.len(), 1);
                assert_eq!(
                    e[0].reading.as_ref().unwrap_err().code(),
                    "batch_element_not_object"
                );
            }
            Ok(other) => panic!("{other:?}"),
        }
    }
}
