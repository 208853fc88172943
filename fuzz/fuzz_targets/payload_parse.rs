//! Parses arbitrary bytes as telemetry (single readings and batches) and as commands, in
//! both shapes. The parser must never panic; anything it accepts must hold finite numbers
//! and encode to a payload that parses back to the same value.
#![no_main]

use fleet_core::payload::{
    ParseContext, TelemetryMessage, encode_telemetry, encode_telemetry_batch, parse_command,
    parse_legacy_command, parse_telemetry, parse_telemetry_batch,
};
use fleet_core::topic::Topic;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let ctx = ParseContext::new(1_764_230_400_000);
    if let Ok(t) = parse_telemetry(data, &ctx) {
        assert!(t.temperature.is_finite() && t.humidity.is_finite());
        let again = parse_telemetry(encode_telemetry(&t).as_bytes(), &ctx).expect("round trip");
        assert_eq!(again, t);
    }
    // Batches are accepted on a device's own topic only.
    let topic = Topic::parse("dt/monitoring/1/d-0001/telemetry").expect("a valid topic");
    let device_ctx = ParseContext::for_topic(&topic, 1_764_230_400_000);
    if let Ok(TelemetryMessage::Batch(elements)) = parse_telemetry_batch(data, &device_ctx) {
        assert!((1..=fleet_core::MAX_BATCH).contains(&elements.len()));
        let good: Vec<_> = elements.into_iter().filter_map(|e| e.reading.ok()).collect();
        assert!(good.iter().all(|t| t.temperature.is_finite() && t.humidity.is_finite()));
        if !good.is_empty() {
            match parse_telemetry_batch(encode_telemetry_batch(&good).as_bytes(), &device_ctx) {
                Ok(TelemetryMessage::Batch(again)) => {
                    let again: Vec<_> = again.into_iter().map(|e| e.reading).collect();
                    assert_eq!(again, good.into_iter().map(Ok).collect::<Vec<_>>());
                }
                other => panic!("batch round trip: {other:?}"),
            }
        }
    }
    let _ = parse_telemetry_batch(data, &ctx);
    let _ = parse_command(data, &ctx);
    let _ = parse_legacy_command(data, &ctx);
});
