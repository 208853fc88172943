//! The payload fields the parser knows, and the JSON kinds it distinguishes.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Expands `$m!` with the wire name of every [`Field`], in declaration order, so the
/// per-field code tables in `rejection.rs` cannot drift from the enum.
macro_rules! with_field_names {
    ($m:ident, $($arg:tt)*) => {
        $m!($($arg)*; "device", "building", "seq", "ts", "temperature", "humidity", "body",
            "action", "id", "reference_temperature", "hold_s", "issued_at", "reading_seq")
    };
}
pub(crate) use with_field_names;

/// A known field of a telemetry or command payload, named as on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Field {
    /// `device`
    Device,
    /// `building`
    Building,
    /// `seq`
    Seq,
    /// `ts`
    Ts,
    /// `temperature`
    Temperature,
    /// `humidity`
    Humidity,
    /// `body` (the legacy envelope)
    Body,
    /// `action`
    Action,
    /// `id` (commands)
    Id,
    /// `reference_temperature` (commands)
    ReferenceTemperature,
    /// `hold_s` (commands)
    HoldS,
    /// `issued_at` (commands)
    IssuedAt,
    /// `reading_seq` (commands)
    ReadingSeq,
}

impl Field {
    /// Number of fields; sizes per-field tables.
    pub const COUNT: usize = 13;

    /// Every field, in declaration order (`ALL[f as usize] == f`).
    pub const ALL: [Field; Field::COUNT] = [
        Field::Device,
        Field::Building,
        Field::Seq,
        Field::Ts,
        Field::Temperature,
        Field::Humidity,
        Field::Body,
        Field::Action,
        Field::Id,
        Field::ReferenceTemperature,
        Field::HoldS,
        Field::IssuedAt,
        Field::ReadingSeq,
    ];

    /// The field's name on the wire.
    pub const fn name(self) -> &'static str {
        macro_rules! pick {
            ($f:expr; $($name:literal),*) => { [$($name),*][$f as usize] };
        }
        with_field_names!(pick, self)
    }

    /// The field with this wire name, if it is a known one.
    pub fn from_name(name: &str) -> Option<Field> {
        Field::ALL.into_iter().find(|f| f.name() == name)
    }
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The kind of a JSON value, as told by its first byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JsonKind {
    /// `null`
    Null,
    /// `true` or `false`
    Bool,
    /// A number.
    Number,
    /// A string.
    String,
    /// An array.
    Array,
    /// An object.
    Object,
}

impl JsonKind {
    /// The kind of an already syntax-checked JSON text.
    pub(crate) fn of(json: &str) -> JsonKind {
        match json.trim_start().as_bytes().first() {
            Some(b'"') => JsonKind::String,
            Some(b'{') => JsonKind::Object,
            Some(b'[') => JsonKind::Array,
            Some(b't' | b'f') => JsonKind::Bool,
            Some(b'-' | b'0'..=b'9') => JsonKind::Number,
            // `null`, and nothing else once the text has passed the syntax check.
            _ => JsonKind::Null,
        }
    }
}

impl fmt::Display for JsonKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            JsonKind::Null => "null",
            JsonKind::Bool => "a boolean",
            JsonKind::Number => "a number",
            JsonKind::String => "a string",
            JsonKind::Array => "an array",
            JsonKind::Object => "an object",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_match_serde() {
        for (i, f) in Field::ALL.into_iter().enumerate() {
            assert_eq!(f as usize, i);
            assert_eq!(Field::from_name(f.name()), Some(f));
            assert_eq!(
                serde_json::to_string(&f).unwrap(),
                format!("\"{}\"", f.name())
            );
        }
        assert_eq!(Field::from_name("nope"), None);
    }

    #[test]
    fn kinds_from_first_byte() {
        assert_eq!(JsonKind::of(" {}"), JsonKind::Object);
        assert_eq!(JsonKind::of("-1"), JsonKind::Number);
        assert_eq!(JsonKind::of("false"), JsonKind::Bool);
        assert_eq!(JsonKind::of("null"), JsonKind::Null);
        assert_eq!(JsonKind::of("\"x\""), JsonKind::String);
        assert_eq!(JsonKind::of("[]"), JsonKind::Array);
    }
}
