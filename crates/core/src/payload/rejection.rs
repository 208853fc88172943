//! Why a payload was rejected (§4.3), with a stable code per reason and field.

use crate::id::IdError;
use crate::payload::field::{Field, JsonKind, with_field_names};
use crate::topic::TopicError;

/// Builds a `[&'static str; Field::COUNT]` of `"{field}_{suffix}"` codes, one per field in
/// declaration order.
macro_rules! codes {
    ($suffix:literal; $($name:literal),*) => { [$(concat!($name, "_", $suffix)),*] };
}

const DUPLICATE: [&str; Field::COUNT] = with_field_names!(codes, "duplicate");
const MISSING: [&str; Field::COUNT] = with_field_names!(codes, "missing");
const WRONG_TYPE: [&str; Field::COUNT] = with_field_names!(codes, "wrong_type");
const NON_FINITE: [&str; Field::COUNT] = with_field_names!(codes, "non_finite");
const OUT_OF_RANGE: [&str; Field::COUNT] = with_field_names!(codes, "out_of_range");
const BAD_ID: [&str; Field::COUNT] = with_field_names!(codes, "bad_id");
const TOPIC_MISMATCH: [&str; Field::COUNT] = with_field_names!(codes, "topic_mismatch");

/// Codes of the reasons that do not depend on a field.
const FIELDLESS: [&str; 14] = [
    "empty",
    "too_large",
    "not_utf8",
    "syntax",
    "not_object",
    "ambiguous_shape",
    "action_unexpected",
    "topic_invalid",
    "topic_not_telemetry",
    "batch_empty",
    "batch_too_long",
    "batch_not_allowed",
    "batch_element_not_object",
    "device_not_publisher",
];

/// Why a message was rejected. Every reading is accepted or rejected with one of these, which
/// is logged, counted under its [`code`](Rejection::code) and archived with the raw message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    /// The payload has no bytes.
    #[error("payload is empty")]
    Empty,
    /// The payload is larger than allowed.
    #[error("payload is {len} bytes, at most {max} allowed")]
    TooLarge {
        /// Payload size in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The payload is not UTF-8, so it cannot be JSON.
    #[error("payload is not UTF-8 (invalid byte at {valid_up_to})")]
    NotUtf8 {
        /// Length of the valid UTF-8 prefix.
        valid_up_to: usize,
    },
    /// The payload is not one JSON value (bad syntax, trailing data, nesting too deep).
    #[error("payload is not valid JSON (line {line}, column {column})")]
    Syntax {
        /// 1-based line of the error.
        line: usize,
        /// 1-based column of the error.
        column: usize,
    },
    /// The payload is JSON but not an object.
    #[error("payload is {found}, expected an object")]
    NotObject {
        /// What the payload is.
        found: JsonKind,
    },
    /// The payload has a legacy `body` and top-level reading fields, so its shape is unclear.
    #[error("payload has both a legacy `body` and top-level reading fields")]
    AmbiguousShape,
    /// A known key appears twice; JSON parsers disagree on which one wins, so neither does.
    #[error("field `{field}` appears more than once")]
    Duplicate {
        /// The repeated field.
        field: Field,
    },
    /// A required field is absent.
    #[error("field `{field}` is missing")]
    Missing {
        /// The absent field.
        field: Field,
    },
    /// A field has the wrong JSON type.
    #[error("field `{field}` is {found}, expected {expected}")]
    WrongType {
        /// The field.
        field: Field,
        /// The JSON kind the field must have.
        expected: JsonKind,
        /// The JSON kind it has.
        found: JsonKind,
    },
    /// A number field overflows to infinity (e.g. `1e999`).
    #[error("field `{field}` is not a finite number")]
    NonFinite {
        /// The field.
        field: Field,
    },
    /// A field's value is outside its allowed range.
    #[error("field `{field}` is {value}, allowed: {allowed}")]
    OutOfRange {
        /// The field.
        field: Field,
        /// The value as found (truncated JSON text).
        value: String,
        /// The allowed range, for humans.
        allowed: &'static str,
    },
    /// An id field is not a valid id.
    #[error("field `{field}` is not a valid id")]
    BadId {
        /// The field.
        field: Field,
        /// Why the id is invalid.
        #[source]
        source: IdError,
    },
    /// The payload names another device or building than its topic.
    #[error("field `{field}` is {payload:?} but the topic says {topic:?}")]
    TopicMismatch {
        /// The field.
        field: Field,
        /// The value from the topic.
        topic: String,
        /// The value from the payload.
        payload: String,
    },
    /// A legacy payload's `action` is not the one its direction calls for.
    #[error("`action` is {found:?}, expected {expected:?}")]
    UnexpectedAction {
        /// The required action (`Monitor` for telemetry, `Remediate` for commands).
        expected: &'static str,
        /// The action found (truncated).
        found: String,
    },
    /// The message arrived on a topic that is not one of the fleet's topics.
    #[error("topic is invalid: {source}")]
    BadTopic {
        /// Why the topic is invalid.
        #[source]
        source: TopicError,
    },
    /// The message arrived on a valid topic that does not carry telemetry.
    #[error("topic does not carry telemetry")]
    NotTelemetryTopic,
    /// The payload is an empty JSON array: a batch holds at least one reading.
    #[error("payload is an empty batch, expected 1..={max} readings")]
    EmptyBatch {
        /// The largest batch accepted.
        max: usize,
    },
    /// The payload is a batch with more readings than allowed.
    #[error("batch has {len} readings, at most {max} allowed")]
    BatchTooLong {
        /// Readings in the batch.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A batch (JSON array) where none is allowed: on a legacy topic, or a legacy-shaped
    /// (`{"body":…}`) reading inside a batch. Only current-shape readings on a device's own
    /// telemetry topic may be batched (§4.3).
    #[error(
        "batches are accepted only on a device's telemetry topic \
         (dt/monitoring/{{building}}/{{device}}/telemetry), of current-shape readings"
    )]
    BatchNotAllowed,
    /// An element of a batch is not a JSON object (a number, a string, a nested array…).
    #[error("batch element is {found}, expected a reading object")]
    BatchElementNotObject {
        /// What the element is.
        found: JsonKind,
    },
    /// The reading's device is not one its publisher speaks for (§4.8: only a device speaks
    /// for itself). The publisher is the connection's identity in the local stack, and the
    /// rule's `clientid()` on AWS.
    #[error("reading of device {device:?}, but it was published by {publisher}")]
    NotPublisher {
        /// The device the reading names.
        device: String,
        /// Who published it ([`crate::Publisher`]'s description).
        publisher: String,
    },
}

impl Rejection {
    /// A stable snake_case code, unique per (reason, field): a metric label of bounded
    /// cardinality. Field-specific codes read `{field}_{reason}`, e.g. `temperature_missing`.
    pub fn code(&self) -> &'static str {
        match self {
            Rejection::Empty => FIELDLESS[0],
            Rejection::TooLarge { .. } => FIELDLESS[1],
            Rejection::NotUtf8 { .. } => FIELDLESS[2],
            Rejection::Syntax { .. } => FIELDLESS[3],
            Rejection::NotObject { .. } => FIELDLESS[4],
            Rejection::AmbiguousShape => FIELDLESS[5],
            Rejection::UnexpectedAction { .. } => FIELDLESS[6],
            Rejection::BadTopic { .. } => FIELDLESS[7],
            Rejection::NotTelemetryTopic => FIELDLESS[8],
            Rejection::EmptyBatch { .. } => FIELDLESS[9],
            Rejection::BatchTooLong { .. } => FIELDLESS[10],
            Rejection::BatchNotAllowed => FIELDLESS[11],
            Rejection::BatchElementNotObject { .. } => FIELDLESS[12],
            Rejection::NotPublisher { .. } => FIELDLESS[13],
            Rejection::Duplicate { field } => DUPLICATE[*field as usize],
            Rejection::Missing { field } => MISSING[*field as usize],
            Rejection::WrongType { field, .. } => WRONG_TYPE[*field as usize],
            Rejection::NonFinite { field } => NON_FINITE[*field as usize],
            Rejection::OutOfRange { field, .. } => OUT_OF_RANGE[*field as usize],
            Rejection::BadId { field, .. } => BAD_ID[*field as usize],
            Rejection::TopicMismatch { field, .. } => TOPIC_MISMATCH[*field as usize],
        }
    }

    /// Every code [`code`](Rejection::code) can return, e.g. to pre-register counters.
    pub fn all_codes() -> impl Iterator<Item = &'static str> {
        FIELDLESS.into_iter().chain(
            [
                DUPLICATE,
                MISSING,
                WRONG_TYPE,
                NON_FINITE,
                OUT_OF_RANGE,
                BAD_ID,
                TOPIC_MISMATCH,
            ]
            .into_iter()
            .flatten(),
        )
    }

    /// The field the rejection is about, if any.
    pub fn field(&self) -> Option<Field> {
        match self {
            Rejection::Duplicate { field }
            | Rejection::Missing { field }
            | Rejection::WrongType { field, .. }
            | Rejection::NonFinite { field }
            | Rejection::OutOfRange { field, .. }
            | Rejection::BadId { field, .. }
            | Rejection::TopicMismatch { field, .. } => Some(*field),
            Rejection::UnexpectedAction { .. } => Some(Field::Action),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    #[test]
    fn all_codes_are_unique_snake_case() {
        let codes: Vec<_> = Rejection::all_codes().collect();
        let unique: BTreeSet<_> = codes.iter().collect();
        assert_eq!(codes.len(), unique.len());
        assert_eq!(codes.len(), 14 + 7 * Field::COUNT);
        for c in codes {
            assert!(
                c.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
                "{c}"
            );
        }
    }

    #[test]
    fn field_codes_name_their_field() {
        for f in Field::ALL {
            assert_eq!(
                Rejection::Missing { field: f }.code(),
                format!("{}_missing", f.name())
            );
            assert_eq!(
                Rejection::TopicMismatch {
                    field: f,
                    topic: String::new(),
                    payload: String::new()
                }
                .code(),
                format!("{}_topic_mismatch", f.name())
            );
        }
    }

    #[test]
    fn messages_are_human() {
        let r = Rejection::WrongType {
            field: Field::Temperature,
            expected: JsonKind::Number,
            found: JsonKind::String,
        };
        assert_eq!(
            r.to_string(),
            "field `temperature` is a string, expected a number"
        );
    }
}
