//! Parses arbitrary bytes as telemetry and as commands, in both shapes. The parser must
//! never panic; anything it accepts must hold finite numbers and encode to a payload that
//! parses back to the same value.
#![no_main]

use fleet_core::payload::{
    ParseContext, encode_telemetry, parse_command, parse_legacy_command, parse_telemetry,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let ctx = ParseContext::new(1_764_230_400_000);
    if let Ok(t) = parse_telemetry(data, &ctx) {
        assert!(t.temperature.is_finite() && t.humidity.is_finite());
        let again = parse_telemetry(encode_telemetry(&t).as_bytes(), &ctx).expect("round trip");
        assert_eq!(again, t);
    }
    let _ = parse_command(data, &ctx);
    let _ = parse_legacy_command(data, &ctx);
});
