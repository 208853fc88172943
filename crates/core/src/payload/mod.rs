//! JSON payloads (§4.3): telemetry (single readings and batches) and commands, current and
//! legacy shapes.
//!
//! Encoding is infallible and exact (floats in shortest round-trip form). Parsing never
//! panics and never trusts its input: every way a message can be wrong maps to one
//! [`Rejection`] with a stable [`code`](Rejection::code), so bad messages are counted and
//! archived, never silently dropped.

mod batch;
mod command;
mod context;
mod field;
mod object;
mod rejection;
mod telemetry;

use serde_json::Value;

pub use batch::{
    BatchElement, MAX_BATCH, RECOMMENDED_BATCH, TelemetryMessage, encode_telemetry_batch,
    parse_telemetry_batch,
};
pub use command::{
    Action, Command, LegacyCommand, MAX_COMMAND_ID_LEN, UnknownAction, encode_command,
    encode_legacy_command, parse_command, parse_legacy_command,
};
pub use context::{DEFAULT_MAX_BYTES, MAX_FUTURE_SKEW_MS, ParseContext};
pub use field::{Field, JsonKind};
pub use rejection::Rejection;
pub use telemetry::{
    HUMIDITY_RANGE, ReadingRef, Shape, TEMPERATURE_RANGE, Telemetry, append_reading,
    encode_telemetry, encode_telemetry_into, parse_telemetry,
};

/// Writes a JSON object with its keys in the given order.
///
/// `serde_json`'s own maps sort keys and its `to_string` returns a `Result`; formatting each
/// [`Value`] with `Display` is infallible, escapes correctly, and keeps the documented
/// field order so payloads read like the spec's examples.
pub(crate) fn json_object(fields: &[(&str, Value)]) -> String {
    let mut out = String::from("{");
    for (i, (key, value)) in fields.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&Value::from(*key).to_string());
        out.push(':');
        out.push_str(&value.to_string());
    }
    out.push('}');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_object_keeps_order_and_escapes() {
        let s = json_object(&[
            ("b", Value::from("q\"uote")),
            ("a", Value::from(f64::NAN)),
            ("c", Value::from(1.5)),
        ]);
        assert_eq!(s, r#"{"b":"q\"uote","a":null,"c":1.5}"#);
        assert!(serde_json::from_str::<Value>(&s).is_ok());
    }
}
