//! Properties of the payload parser: it never panics, and encoding round-trips.

// Helpers outside #[test] fns are test code too: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use fleet_core::payload::{
    LegacyCommand, MAX_FUTURE_SKEW_MS, ReadingRef, Shape, append_reading, encode_legacy_command,
    parse_legacy_command,
};
use fleet_core::{
    Action, BuildingId, Command, DeviceId, ParseContext, Telemetry, encode_command,
    encode_telemetry, parse_command, parse_telemetry,
};
use proptest::prelude::*;

const NOW: u64 = 1_764_230_400_000;

fn id() -> impl Strategy<Value = String> {
    "[A-Za-z0-9_-]{1,64}"
}

fn telemetry() -> impl Strategy<Value = Telemetry> {
    (
        id(),
        id(),
        any::<u64>(),
        1..=NOW + MAX_FUTURE_SKEW_MS,
        -100.0..=200.0f64,
        0.0..=100.0f64,
        any::<bool>(),
    )
        .prop_map(
            |(device, building, seq, ts, temperature, humidity, legacy)| {
                let device = DeviceId::try_from(device).unwrap();
                if legacy {
                    Telemetry::legacy(device, temperature, humidity)
                } else {
                    let building = BuildingId::try_from(building).unwrap();
                    Telemetry::current(device, building, seq, ts, temperature, humidity)
                }
            },
        )
}

fn command() -> impl Strategy<Value = Command> {
    (
        "[ -~]{1,128}",
        id(),
        prop_oneof![
            Just(Action::Cool),
            Just(Action::Heat),
            Just(Action::Release)
        ],
        -100.0..=200.0f64,
        any::<u32>(),
        any::<u64>(),
        any::<Option<u64>>(),
    )
        .prop_map(
            |(id, device, action, reference_temperature, hold_s, issued_at, reading_seq)| Command {
                id,
                device: DeviceId::try_from(device).unwrap(),
                action,
                reference_temperature,
                hold_s,
                issued_at,
                reading_seq,
            },
        )
}

/// JSON-ish text that often gets past the syntax check, to reach the field checks.
fn jsonish() -> impl Strategy<Value = String> {
    let value = prop_oneof![
        Just("null".to_string()),
        Just("true".to_string()),
        Just("1e999".to_string()),
        Just("-1".to_string()),
        Just("27.5".to_string()),
        Just("\"d-1\"".to_string()),
        Just("\"Monitor\"".to_string()),
        Just("{}".to_string()),
        Just("[]".to_string()),
        "[ -~]{0,8}".prop_map(|s| format!("{s:?}")),
        any::<f64>().prop_map(|f| f.to_string()),
        any::<u64>().prop_map(|u| u.to_string()),
    ];
    let key = prop_oneof![
        Just("device"),
        Just("building"),
        Just("seq"),
        Just("ts"),
        Just("temperature"),
        Just("humidity"),
        Just("body"),
        Just("action"),
        Just("other"),
    ];
    prop::collection::vec((key, value), 0..10).prop_map(|fields| {
        let inner: Vec<String> = fields.iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
        format!("{{{}}}", inner.join(","))
    })
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let ctx = ParseContext::new(NOW);
        let _ = parse_telemetry(&bytes, &ctx);
        let _ = parse_command(&bytes, &ctx);
        let _ = parse_legacy_command(&bytes, &ctx);
    }

    #[test]
    fn jsonish_text_never_panics_and_rejections_have_codes(text in jsonish()) {
        let ctx = ParseContext::new(NOW);
        if let Err(r) = parse_telemetry(text.as_bytes(), &ctx) {
            prop_assert!(!r.code().is_empty());
            prop_assert!(!r.to_string().is_empty());
        }
        let legacy = format!("{{\"body\":{text}}}");
        let _ = parse_telemetry(legacy.as_bytes(), &ctx);
    }

    #[test]
    fn telemetry_round_trips(t in telemetry()) {
        let encoded = encode_telemetry(&t);
        let parsed = parse_telemetry(encoded.as_bytes(), &ParseContext::new(NOW)).unwrap();
        prop_assert_eq!(parsed, t);
    }

    #[test]
    fn an_appended_reading_is_the_encoded_reading(t in telemetry(), before in "[ -~]{0,16}") {
        let reading = ReadingRef {
            device: t.device.as_str(),
            building: t.building.as_ref().map_or("unused", |b| b.as_str()),
            seq: t.seq.unwrap_or(7),
            ts: t.ts.unwrap_or(9),
            temperature: t.temperature,
            humidity: t.humidity,
            shape: t.shape,
        };
        let mut out = before.clone();
        append_reading(&reading, &mut out);
        prop_assert_eq!(out, format!("{before}{}", encode_telemetry(&t)));
        prop_assert_eq!(t.shape == Shape::Legacy, t.seq.is_none());
    }

    #[test]
    fn command_round_trips(c in command()) {
        let encoded = encode_command(&c);
        let parsed = parse_command(encoded.as_bytes(), &ParseContext::new(0)).unwrap();
        prop_assert_eq!(parsed, c);
    }

    #[test]
    fn legacy_command_round_trips(
        device in id(),
        temperature in -100.0..=200.0f64,
        humidity in 0.0..=100.0f64,
    ) {
        let c = LegacyCommand { device: DeviceId::try_from(device).unwrap(), temperature, humidity };
        let parsed = parse_legacy_command(encode_legacy_command(&c).as_bytes(), &ParseContext::new(0)).unwrap();
        prop_assert_eq!(parsed, c);
    }

    #[test]
    fn any_f64_text_in_range_parses_exactly(bits: u64) {
        let v = f64::from_bits(bits);
        prop_assume!(v.is_finite() && (-100.0..=200.0).contains(&v));
        let t = Telemetry::legacy(DeviceId::try_from("d").unwrap(), v, 50.0);
        let parsed = parse_telemetry(encode_telemetry(&t).as_bytes(), &ParseContext::new(NOW)).unwrap();
        prop_assert_eq!(parsed.temperature.to_bits(), v.to_bits());
    }
}
