//! Telemetry payloads (§4.3): the current shape and the original stack's legacy shape.

use std::ops::RangeInclusive;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::id::{BuildingId, DeviceId};
use crate::payload::context::{MAX_FUTURE_SKEW_MS, ParseContext};
use crate::payload::field::Field;
use crate::payload::json_object;
use crate::payload::object::{Object, document, excerpt};
use crate::payload::rejection::Rejection;

/// Accepted temperatures, °C: wider than any real room, narrow enough to catch unit mix-ups
/// (Kelvin) and garbage.
pub const TEMPERATURE_RANGE: RangeInclusive<f64> = -100.0..=200.0;
/// Accepted relative humidities, %.
pub const HUMIDITY_RANGE: RangeInclusive<f64> = 0.0..=100.0;

/// What `ts` may be, for rejection messages.
const TS_ALLOWED: &str = "ms since the Unix epoch, > 0, at most 5 minutes ahead of the receiver";

/// The legacy telemetry `action`.
pub(crate) const LEGACY_MONITOR: &str = "Monitor";

/// Which wire shape a telemetry message has (or is to be encoded in).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Shape {
    /// `{"device","building","seq","ts","temperature","humidity"}`.
    Current,
    /// The original stack's `{"body":{"device","temperature","humidity","action":"Monitor"}}`.
    Legacy,
}

/// One reading as sent by a device.
///
/// A [`Shape::Current`] reading carries `building`, `seq` and `ts`; a [`Shape::Legacy`] one
/// carries none of them (the worker takes the building from the legacy topic and the time
/// from the arrival).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Telemetry {
    /// The device that measured.
    pub device: DeviceId,
    /// The device's building (current shape only).
    pub building: Option<BuildingId>,
    /// Per-device counter (current shape only).
    pub seq: Option<u64>,
    /// Device clock at measurement, ms since the Unix epoch (current shape only).
    pub ts: Option<u64>,
    /// Temperature, °C.
    pub temperature: f64,
    /// Relative humidity, %.
    pub humidity: f64,
    /// Wire shape.
    pub shape: Shape,
}

impl Telemetry {
    /// A reading in the current shape.
    pub fn current(
        device: DeviceId,
        building: BuildingId,
        seq: u64,
        ts: u64,
        temperature: f64,
        humidity: f64,
    ) -> Self {
        Telemetry {
            device,
            building: Some(building),
            seq: Some(seq),
            ts: Some(ts),
            temperature,
            humidity,
            shape: Shape::Current,
        }
    }

    /// A reading in the original stack's shape.
    pub fn legacy(device: DeviceId, temperature: f64, humidity: f64) -> Self {
        Telemetry {
            device,
            building: None,
            seq: None,
            ts: None,
            temperature,
            humidity,
            shape: Shape::Legacy,
        }
    }
}

/// Encodes a reading in its [`shape`](Telemetry::shape).
///
/// Floats are written in their shortest round-trip form, so [`parse_telemetry`] gives back
/// the same bits. Fields a current reading lacks are left out (and the parser will reject the
/// result); non-finite numbers become `null` (also rejected): the encoder never invents data.
pub fn encode_telemetry(t: &Telemetry) -> String {
    match t.shape {
        Shape::Current => {
            let mut fields = vec![("device", Value::from(t.device.as_str()))];
            if let Some(b) = &t.building {
                fields.push(("building", Value::from(b.as_str())));
            }
            if let Some(seq) = t.seq {
                fields.push(("seq", Value::from(seq)));
            }
            if let Some(ts) = t.ts {
                fields.push(("ts", Value::from(ts)));
            }
            fields.push(("temperature", Value::from(t.temperature)));
            fields.push(("humidity", Value::from(t.humidity)));
            json_object(&fields)
        }
        Shape::Legacy => {
            let body = json_object(&[
                ("device", Value::from(t.device.as_str())),
                ("temperature", Value::from(t.temperature)),
                ("humidity", Value::from(t.humidity)),
                ("action", Value::from(LEGACY_MONITOR)),
            ]);
            format!("{{\"body\":{body}}}")
        }
    }
}

/// [`encode_telemetry`] into `out` (cleared first), so a caller sending many readings reuses
/// one buffer: no allocation once `out` has grown to a payload's size. Same bytes.
pub fn encode_telemetry_into(t: &Telemetry, out: &mut String) {
    use std::fmt::Write;
    // Ids are `[A-Za-z0-9_-]+` (see `id`): nothing to escape. Numbers through `Value`'s
    // `Display`, as `encode_telemetry` writes them (non-finite floats as `null`).
    let legacy = t.shape == Shape::Legacy;
    out.clear();
    out.push_str(if legacy { "{\"body\":{" } else { "{" });
    out.push_str("\"device\":\"");
    out.push_str(t.device.as_str());
    out.push('"');
    if !legacy {
        if let Some(b) = &t.building {
            out.push_str(",\"building\":\"");
            out.push_str(b.as_str());
            out.push('"');
        }
        if let Some(seq) = t.seq {
            let _ = write!(out, ",\"seq\":{seq}");
        }
        if let Some(ts) = t.ts {
            let _ = write!(out, ",\"ts\":{ts}");
        }
    }
    let _ = write!(
        out,
        ",\"temperature\":{},\"humidity\":{}",
        Value::from(t.temperature),
        Value::from(t.humidity)
    );
    out.push_str(if legacy {
        ",\"action\":\"Monitor\"}}"
    } else {
        "}"
    });
}

/// One reading by reference, for [`append_reading`]: a sender that keeps its devices' ids
/// in its own tables encodes without building a [`Telemetry`] (no id cloned per reading).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ReadingRef<'a> {
    /// The device (a valid device id).
    pub device: &'a str,
    /// Its building (a valid building id); not sent in the legacy shape.
    pub building: &'a str,
    /// Per-device counter; not sent in the legacy shape.
    pub seq: u64,
    /// Device clock, ms since the Unix epoch; not sent in the legacy shape.
    pub ts: u64,
    /// Temperature, °C.
    pub temperature: f64,
    /// Relative humidity, %.
    pub humidity: f64,
    /// Wire shape.
    pub shape: Shape,
}

/// Appends the reading's payload to `out`: the bytes [`encode_telemetry`] gives for the
/// same reading. Appending (not replacing) lets a batch be written into one buffer.
pub fn append_reading(r: &ReadingRef<'_>, out: &mut String) {
    use std::fmt::Write;
    // Ids are `[A-Za-z0-9_-]+` (see `id`): nothing to escape. Numbers through `Value`'s
    // `Display`, as `encode_telemetry` writes them (non-finite floats as `null`).
    let legacy = r.shape == Shape::Legacy;
    out.push_str(if legacy {
        "{\"body\":{\"device\":\""
    } else {
        "{\"device\":\""
    });
    out.push_str(r.device);
    if !legacy {
        out.push_str("\",\"building\":\"");
        out.push_str(r.building);
        let _ = write!(out, "\",\"seq\":{},\"ts\":{}", r.seq, r.ts);
    } else {
        out.push('"');
    }
    let _ = write!(
        out,
        ",\"temperature\":{},\"humidity\":{}",
        Value::from(r.temperature),
        Value::from(r.humidity)
    );
    out.push_str(if legacy {
        ",\"action\":\"Monitor\"}}"
    } else {
        "}"
    });
}

/// Parses a telemetry payload of either shape, checking it against `ctx`.
///
/// Unknown fields are ignored (forward compatibility); everything else wrong yields a
/// [`Rejection`] naming the first problem found.
pub fn parse_telemetry(bytes: &[u8], ctx: &ParseContext) -> Result<Telemetry, Rejection> {
    let top = document(bytes, ctx.max_bytes)?;
    if top.has(Field::Body) {
        let current_fields = [
            Field::Device,
            Field::Building,
            Field::Seq,
            Field::Ts,
            Field::Temperature,
            Field::Humidity,
        ];
        if current_fields.into_iter().any(|f| top.has(f)) {
            return Err(Rejection::AmbiguousShape);
        }
        parse_legacy(&top.object(Field::Body)?, ctx)
    } else {
        parse_current(&top, ctx)
    }
}

/// A current-shape reading from its object, checked against `ctx` (also each batch element).
pub(crate) fn parse_current(obj: &Object<'_>, ctx: &ParseContext) -> Result<Telemetry, Rejection> {
    let device = obj.device(Field::Device)?;
    check_device(&device, ctx)?;
    let building = obj.building(Field::Building)?;
    check_building(&building, ctx)?;
    let seq = obj.u64(Field::Seq, "an integer in 0..=18446744073709551615")?;
    let ts = obj.u64(Field::Ts, TS_ALLOWED)?;
    if ts == 0 || ts > ctx.now_ms.saturating_add(MAX_FUTURE_SKEW_MS) {
        return Err(obj.out_of_range(Field::Ts, TS_ALLOWED));
    }
    let (temperature, humidity) = reading_values(obj)?;
    Ok(Telemetry::current(
        device,
        building,
        seq,
        ts,
        temperature,
        humidity,
    ))
}

fn parse_legacy(body: &Object<'_>, ctx: &ParseContext) -> Result<Telemetry, Rejection> {
    let device = body.device(Field::Device)?;
    check_device(&device, ctx)?;
    let (temperature, humidity) = reading_values(body)?;
    let action = body.string(Field::Action)?;
    if action != LEGACY_MONITOR {
        return Err(Rejection::UnexpectedAction {
            expected: LEGACY_MONITOR,
            found: excerpt(&action),
        });
    }
    Ok(Telemetry::legacy(device, temperature, humidity))
}

fn reading_values(obj: &Object<'_>) -> Result<(f64, f64), Rejection> {
    let temperature = obj.f64_in(Field::Temperature, TEMPERATURE_RANGE, "-100..=200 °C")?;
    let humidity = obj.f64_in(Field::Humidity, HUMIDITY_RANGE, "0..=100 %")?;
    Ok((temperature, humidity))
}

pub(crate) fn check_device(device: &DeviceId, ctx: &ParseContext) -> Result<(), Rejection> {
    match &ctx.device {
        Some(expected) if expected != device => Err(Rejection::TopicMismatch {
            field: Field::Device,
            topic: expected.to_string(),
            payload: device.to_string(),
        }),
        _ => Ok(()),
    }
}

fn check_building(building: &BuildingId, ctx: &ParseContext) -> Result<(), Rejection> {
    match &ctx.building {
        Some(expected) if expected != building => Err(Rejection::TopicMismatch {
            field: Field::Building,
            topic: expected.to_string(),
            payload: building.to_string(),
        }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::payload::context::DEFAULT_MAX_BYTES;

    const NOW: u64 = 1_764_230_400_000;

    fn ctx() -> ParseContext {
        ParseContext::new(NOW)
    }

    fn d(s: &str) -> DeviceId {
        DeviceId::try_from(s).unwrap()
    }

    fn b(s: &str) -> BuildingId {
        BuildingId::try_from(s).unwrap()
    }

    #[test]
    fn encodes_the_documented_shapes() {
        let t = Telemetry::current(d("d-0001"), b("1"), 42, 1_764_230_400_123, 27.1, 60.1);
        assert_eq!(
            encode_telemetry(&t),
            r#"{"device":"d-0001","building":"1","seq":42,"ts":1764230400123,"temperature":27.1,"humidity":60.1}"#
        );
        let l = Telemetry::legacy(d("381938912"), 27.5, 60.5);
        assert_eq!(
            encode_telemetry(&l),
            r#"{"body":{"device":"381938912","temperature":27.5,"humidity":60.5,"action":"Monitor"}}"#
        );
    }

    #[test]
    fn encoding_into_a_reused_buffer_gives_the_same_bytes() {
        let mut out = String::from("left over");
        let values = [
            27.1,
            28.0,
            -0.0,
            1e-7,
            1e21,
            123_456.789_012_345,
            f64::NAN,
            f64::INFINITY,
            f64::MIN_POSITIVE,
        ];
        for (i, &v) in values.iter().enumerate() {
            let mut current = Telemetry::current(
                d("d-0001"),
                b("b_2"),
                i as u64,
                1_764_230_400_123,
                v,
                60.0 - v,
            );
            encode_telemetry_into(&current, &mut out);
            assert_eq!(out, encode_telemetry(&current));
            current.building = None;
            current.seq = None;
            encode_telemetry_into(&current, &mut out);
            assert_eq!(out, encode_telemetry(&current));
            let legacy = Telemetry::legacy(d("381938912"), v, 61.5);
            encode_telemetry_into(&legacy, &mut out);
            assert_eq!(out, encode_telemetry(&legacy));
        }
        // Once grown, the buffer is reused, not reallocated.
        let t = Telemetry::current(d("d-0001"), b("1"), 1, 1_764_230_400_123, 27.1, 60.1);
        encode_telemetry_into(&t, &mut out);
        let (ptr, cap) = (out.as_ptr(), out.capacity());
        encode_telemetry_into(&t, &mut out);
        assert_eq!((out.as_ptr(), out.capacity()), (ptr, cap));
    }

    #[test]
    fn parses_both_shapes() {
        let t = parse_telemetry(
            br#"{"device":"d-0001","building":"1","seq":42,"ts":1764230400123,"temperature":27.1,"humidity":60.1,"extra":{"a":[1]}}"#,
            &ctx(),
        )
        .unwrap();
        assert_eq!(
            t,
            Telemetry::current(d("d-0001"), b("1"), 42, 1_764_230_400_123, 27.1, 60.1)
        );
        let l = parse_telemetry(
            br#" {"body":{"device":"381938912","temperature":28,"humidity":61,"action":"Monitor"}} "#,
            &ctx(),
        )
        .unwrap();
        assert_eq!(l, Telemetry::legacy(d("381938912"), 28.0, 61.0));
    }

    #[test]
    fn legacy_on_a_device_topic_is_checked_against_it() {
        let mut c = ctx();
        c.device = Some(d("other"));
        let err = parse_telemetry(
            br#"{"body":{"device":"381938912","temperature":28,"humidity":61,"action":"Monitor"}}"#,
            &c,
        )
        .unwrap_err();
        assert_eq!(err.code(), "device_topic_mismatch");
    }

    /// A current-shape payload with `field` replaced by `value` (or removed when `None`).
    fn current_with(field: &str, value: Option<&str>) -> Vec<u8> {
        let fields = [
            ("device", "\"d-0001\""),
            ("building", "\"1\""),
            ("seq", "42"),
            ("ts", "1764230400123"),
            ("temperature", "27.1"),
            ("humidity", "60.1"),
        ];
        let parts: Vec<String> = fields
            .iter()
            .filter_map(|&(k, v)| {
                if k == field {
                    value.map(|v| format!("\"{k}\":{v}"))
                } else {
                    Some(format!("\"{k}\":{v}"))
                }
            })
            .collect();
        format!("{{{}}}", parts.join(",")).into_bytes()
    }

    fn legacy_with(field: &str, value: Option<&str>) -> Vec<u8> {
        let fields = [
            ("device", "\"381938912\""),
            ("temperature", "27.1"),
            ("humidity", "60.1"),
            ("action", "\"Monitor\""),
        ];
        let parts: Vec<String> = fields
            .iter()
            .filter_map(|&(k, v)| {
                if k == field {
                    value.map(|v| format!("\"{k}\":{v}"))
                } else {
                    Some(format!("\"{k}\":{v}"))
                }
            })
            .collect();
        format!("{{\"body\":{{{}}}}}", parts.join(",")).into_bytes()
    }

    #[test]
    fn every_bad_input_gets_its_own_code() {
        let dup = |k: &str, v: &str| {
            let mut s = current_with("", None);
            s.pop();
            let mut s = String::from_utf8(s).unwrap();
            s.push_str(&format!(",\"{k}\":{v}}}"));
            s.into_bytes()
        };
        let mut topic_ctx = ctx();
        topic_ctx.device = Some(d("d-0001"));
        topic_ctx.building = Some(b("1"));
        let mut other_device = topic_ctx.clone();
        other_device.device = Some(d("d-0002"));
        let mut other_building = topic_ctx.clone();
        other_building.building = Some(b("2"));
        let far_future = (NOW + MAX_FUTURE_SKEW_MS + 1).to_string();

        let table: Vec<(&str, Vec<u8>, ParseContext, &str)> = vec![
            ("empty", vec![], ctx(), "empty"),
            (
                "too large",
                vec![b' '; DEFAULT_MAX_BYTES + 1],
                ctx(),
                "too_large",
            ),
            ("not utf-8", vec![b'{', 0xff, b'}'], ctx(), "not_utf8"),
            ("trailing data", b"{} {}".to_vec(), ctx(), "syntax"),
            ("array", b"[1,2]".to_vec(), ctx(), "not_object"),
            (
                "dup device",
                dup("device", "\"d-0001\""),
                ctx(),
                "device_duplicate",
            ),
            (
                "dup building",
                dup("building", "\"1\""),
                ctx(),
                "building_duplicate",
            ),
            ("dup seq", dup("seq", "1"), ctx(), "seq_duplicate"),
            ("dup ts", dup("ts", "1"), ctx(), "ts_duplicate"),
            (
                "dup temperature",
                dup("temperature", "1"),
                ctx(),
                "temperature_duplicate",
            ),
            (
                "dup humidity",
                dup("humidity", "1"),
                ctx(),
                "humidity_duplicate",
            ),
            (
                "dup body",
                br#"{"body":{},"body":{}}"#.to_vec(),
                ctx(),
                "body_duplicate",
            ),
            (
                "no device",
                current_with("device", None),
                ctx(),
                "device_missing",
            ),
            (
                "no building",
                current_with("building", None),
                ctx(),
                "building_missing",
            ),
            ("no seq", current_with("seq", None), ctx(), "seq_missing"),
            ("no ts", current_with("ts", None), ctx(), "ts_missing"),
            (
                "no temperature",
                current_with("temperature", None),
                ctx(),
                "temperature_missing",
            ),
            (
                "no humidity",
                current_with("humidity", None),
                ctx(),
                "humidity_missing",
            ),
            (
                "no action",
                legacy_with("action", None),
                ctx(),
                "action_missing",
            ),
            (
                "device number",
                current_with("device", Some("1")),
                ctx(),
                "device_wrong_type",
            ),
            (
                "building list",
                current_with("building", Some("[]")),
                ctx(),
                "building_wrong_type",
            ),
            (
                "seq string",
                current_with("seq", Some("\"1\"")),
                ctx(),
                "seq_wrong_type",
            ),
            (
                "ts null",
                current_with("ts", Some("null")),
                ctx(),
                "ts_wrong_type",
            ),
            (
                "temp string",
                current_with("temperature", Some("\"27\"")),
                ctx(),
                "temperature_wrong_type",
            ),
            (
                "hum bool",
                current_with("humidity", Some("true")),
                ctx(),
                "humidity_wrong_type",
            ),
            (
                "body string",
                br#"{"body":"x"}"#.to_vec(),
                ctx(),
                "body_wrong_type",
            ),
            (
                "action number",
                legacy_with("action", Some("1")),
                ctx(),
                "action_wrong_type",
            ),
            (
                "temp overflow",
                current_with("temperature", Some("1e999")),
                ctx(),
                "temperature_non_finite",
            ),
            (
                "hum overflow",
                current_with("humidity", Some("-1e999")),
                ctx(),
                "humidity_non_finite",
            ),
            (
                "temp too hot",
                current_with("temperature", Some("250")),
                ctx(),
                "temperature_out_of_range",
            ),
            (
                "hum over 100",
                current_with("humidity", Some("100.5")),
                ctx(),
                "humidity_out_of_range",
            ),
            (
                "seq negative",
                current_with("seq", Some("-1")),
                ctx(),
                "seq_out_of_range",
            ),
            (
                "ts far future",
                current_with("ts", Some(&far_future)),
                ctx(),
                "ts_out_of_range",
            ),
            (
                "bad device id",
                current_with("device", Some("\"a b\"")),
                ctx(),
                "device_bad_id",
            ),
            (
                "bad building id",
                current_with("building", Some("\"x/y\"")),
                ctx(),
                "building_bad_id",
            ),
            (
                "other device",
                current_with("", None),
                other_device,
                "device_topic_mismatch",
            ),
            (
                "other building",
                current_with("", None),
                other_building,
                "building_topic_mismatch",
            ),
            (
                "both shapes",
                br#"{"body":{},"temperature":1}"#.to_vec(),
                ctx(),
                "ambiguous_shape",
            ),
            (
                "legacy command",
                legacy_with("action", Some("\"Remediate\"")),
                ctx(),
                "action_unexpected",
            ),
        ];
        assert!(table.len() >= 30);
        let codes: BTreeSet<&str> = table.iter().map(|row| row.3).collect();
        assert_eq!(codes.len(), table.len(), "every row must test its own code");
        for (name, bytes, c, code) in &table {
            match parse_telemetry(bytes, c) {
                Ok(t) => panic!("{name}: accepted {t:?}"),
                Err(r) => {
                    assert_eq!(r.code(), *code, "{name}: {r}");
                    assert!(!r.to_string().is_empty());
                }
            }
        }
        // The same payloads with a matching topic are fine.
        assert!(parse_telemetry(&current_with("", None), &topic_ctx).is_ok());
    }

    #[test]
    fn more_bad_inputs_map_to_the_expected_codes() {
        let cases: [(&[u8], &str); 8] = [
            (b"not json", "syntax"),
            (b"\"a string\"", "not_object"),
            (b"null", "not_object"),
            (br#"{"body":[]}"#, "body_wrong_type"),
            (br#"{"body":null}"#, "body_wrong_type"),
            (&current_with("seq", Some("1.5")), "seq_out_of_range"),
            (
                &current_with("seq", Some("18446744073709551616")),
                "seq_out_of_range",
            ),
            (&current_with("ts", Some("0")), "ts_out_of_range"),
        ];
        for (bytes, code) in cases {
            assert_eq!(parse_telemetry(bytes, &ctx()).unwrap_err().code(), code);
        }
    }

    #[test]
    fn ts_limits_are_inclusive() {
        let edge = (NOW + MAX_FUTURE_SKEW_MS).to_string();
        assert!(parse_telemetry(&current_with("ts", Some(&edge)), &ctx()).is_ok());
        assert!(parse_telemetry(&current_with("ts", Some("1")), &ctx()).is_ok());
        assert!(parse_telemetry(&current_with("temperature", Some("-100")), &ctx()).is_ok());
        assert!(parse_telemetry(&current_with("humidity", Some("100")), &ctx()).is_ok());
    }

    #[test]
    fn deep_nesting_does_not_crash() {
        // serde_json skips ignored values iteratively, so depth alone is not an error; the
        // size limit bounds the work.
        let deep = format!("{{\"x\":{}{}}}", "[".repeat(50_000), "]".repeat(50_000));
        assert_eq!(
            parse_telemetry(deep.as_bytes(), &ctx()).unwrap_err().code(),
            "device_missing"
        );
        let deep = format!(
            "{{\"device\":{}{}}}",
            "[".repeat(50_000),
            "]".repeat(50_000)
        );
        assert_eq!(
            parse_telemetry(deep.as_bytes(), &ctx()).unwrap_err().code(),
            "device_wrong_type"
        );
    }
}
