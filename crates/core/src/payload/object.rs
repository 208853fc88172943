//! A JSON object read field by field, so each problem gets its own precise [`Rejection`].
//!
//! Why not `#[derive(Deserialize)]`: serde reports problems as error *strings*, accepts
//! duplicate keys (last wins), and stops at the first error with no field attached. Instead
//! the object's known keys are collected as raw JSON slices ([`RawValue`]) in one pass, and
//! each field is then checked on its own: its kind from the first byte, numbers correctly
//! rounded ([`crate::number::parse_f64`], so encode → parse is exact), ids with their validators.

use std::fmt;

use serde::Deserializer as _;
use serde::de::{self, IgnoredAny, MapAccess, Visitor};
use serde_json::value::RawValue;

use crate::id::{BuildingId, DeviceId};
use crate::payload::field::{Field, JsonKind};
use crate::payload::rejection::Rejection;

/// Longest excerpt of a bad value kept in a [`Rejection`], in characters.
const EXCERPT_CHARS: usize = 32;

/// The known fields of one JSON object, as raw JSON text.
#[derive(Debug)]
pub(crate) struct Object<'a> {
    slots: [Option<&'a RawValue>; Field::COUNT],
}

/// Checks size, encoding and syntax of a whole payload and returns its top-level object.
pub(crate) fn document(bytes: &[u8], max_bytes: usize) -> Result<Object<'_>, Rejection> {
    if bytes.is_empty() {
        return Err(Rejection::Empty);
    }
    if bytes.len() > max_bytes {
        return Err(Rejection::TooLarge {
            len: bytes.len(),
            max: max_bytes,
        });
    }
    let text = std::str::from_utf8(bytes).map_err(|e| Rejection::NotUtf8 {
        valid_up_to: e.valid_up_to(),
    })?;
    // Parsing to a RawValue first validates the whole text (including trailing data) before
    // anything is interpreted, which separates "not JSON" from "JSON of the wrong kind".
    let raw: &RawValue = serde_json::from_str(text).map_err(|e| syntax(&e))?;
    Object::from_raw(raw, None)
}

fn syntax(e: &serde_json::Error) -> Rejection {
    Rejection::Syntax {
        line: e.line(),
        column: e.column(),
    }
}

/// Keeps at most [`EXCERPT_CHARS`] characters of `s`, for error messages.
pub(crate) fn excerpt(s: &str) -> String {
    match s.char_indices().nth(EXCERPT_CHARS) {
        Some((at, _)) => format!("{}…", &s[..at]),
        None => s.to_owned(),
    }
}

impl<'a> Object<'a> {
    /// Reads `raw` as an object; `field` is the field holding it (`None` at the top level)
    /// and decides which rejection a non-object gets.
    pub(crate) fn from_raw(raw: &'a RawValue, field: Option<Field>) -> Result<Self, Rejection> {
        let found = JsonKind::of(raw.get());
        if found != JsonKind::Object {
            return Err(match field {
                None => Rejection::NotObject { found },
                Some(field) => Rejection::WrongType {
                    field,
                    expected: JsonKind::Object,
                    found,
                },
            });
        }
        let mut de = serde_json::Deserializer::from_str(raw.get());
        let collected = de.deserialize_map(Collect).map_err(|e| syntax(&e))?;
        if let Some(field) = collected.duplicate {
            return Err(Rejection::Duplicate { field });
        }
        Ok(Object {
            slots: collected.slots,
        })
    }

    /// Whether the object has the field (with any value, `null` included).
    pub(crate) fn has(&self, field: Field) -> bool {
        self.slots[field as usize].is_some()
    }

    /// The field's raw value, or a `Missing` rejection.
    pub(crate) fn required(&self, field: Field) -> Result<&'a RawValue, Rejection> {
        self.slots[field as usize].ok_or(Rejection::Missing { field })
    }

    fn typed(&self, field: Field, expected: JsonKind) -> Result<&'a str, Rejection> {
        let text = self.required(field)?.get();
        let found = JsonKind::of(text);
        if found == expected {
            Ok(text)
        } else {
            Err(Rejection::WrongType {
                field,
                expected,
                found,
            })
        }
    }

    /// A required string field, unescaped.
    pub(crate) fn string(&self, field: Field) -> Result<String, Rejection> {
        let text = self.typed(field, JsonKind::String)?;
        // Fails only on escapes the syntax pass lets through (lone surrogates): still bad JSON.
        serde_json::from_str(text).map_err(|e| syntax(&e))
    }

    /// A required finite number.
    pub(crate) fn f64(&self, field: Field) -> Result<f64, Rejection> {
        let text = self.typed(field, JsonKind::Number)?;
        // Correctly rounded; overflow (`1e999`) is an infinity, refused here.
        match crate::number::parse_f64(text) {
            Some(v) if v.is_finite() => Ok(v),
            _ => Err(Rejection::NonFinite { field }),
        }
    }

    /// A required finite number within `range`.
    pub(crate) fn f64_in(
        &self,
        field: Field,
        range: std::ops::RangeInclusive<f64>,
        allowed: &'static str,
    ) -> Result<f64, Rejection> {
        let v = self.f64(field)?;
        if range.contains(&v) {
            Ok(v)
        } else {
            Err(self.out_of_range(field, allowed))
        }
    }

    /// A required non-negative integer that fits in a `u64` (no fraction, no exponent).
    pub(crate) fn u64(&self, field: Field, allowed: &'static str) -> Result<u64, Rejection> {
        let text = self.typed(field, JsonKind::Number)?;
        text.parse::<u64>()
            .map_err(|_| self.out_of_range(field, allowed))
    }

    /// An optional integer: absent or `null` is `None`.
    pub(crate) fn opt_u64(
        &self,
        field: Field,
        allowed: &'static str,
    ) -> Result<Option<u64>, Rejection> {
        match self.slots[field as usize] {
            None => Ok(None),
            Some(raw) if JsonKind::of(raw.get()) == JsonKind::Null => Ok(None),
            Some(_) => self.u64(field, allowed).map(Some),
        }
    }

    /// A rejection for a value outside its range, quoting the value.
    pub(crate) fn out_of_range(&self, field: Field, allowed: &'static str) -> Rejection {
        Rejection::OutOfRange {
            field,
            value: self.slots[field as usize]
                .map(|raw| excerpt(raw.get()))
                .unwrap_or_default(),
            allowed,
        }
    }

    /// A required device id.
    pub(crate) fn device(&self, field: Field) -> Result<DeviceId, Rejection> {
        DeviceId::try_from(self.string(field)?).map_err(|source| Rejection::BadId { field, source })
    }

    /// A required building id.
    pub(crate) fn building(&self, field: Field) -> Result<BuildingId, Rejection> {
        BuildingId::try_from(self.string(field)?)
            .map_err(|source| Rejection::BadId { field, source })
    }

    /// A required nested object.
    pub(crate) fn object(&self, field: Field) -> Result<Object<'a>, Rejection> {
        Object::from_raw(self.required(field)?, Some(field))
    }
}

/// What one pass over an object's keys yields.
struct Collected<'a> {
    slots: [Option<&'a RawValue>; Field::COUNT],
    /// The first known key seen twice.
    duplicate: Option<Field>,
}

/// A key: one of the known fields, or anything else (ignored, for forward compatibility).
struct Key(Option<Field>);

impl<'de> de::Deserialize<'de> for Key {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl Visitor<'_> for KeyVisitor {
            type Value = Key;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object key")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Key, E> {
                Ok(Key(Field::from_name(v)))
            }
        }
        deserializer.deserialize_identifier(KeyVisitor)
    }
}

struct Collect;

impl<'de> Visitor<'de> for Collect {
    type Value = Collected<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Collected<'de>, A::Error> {
        let mut out = Collected {
            slots: [None; Field::COUNT],
            duplicate: None,
        };
        while let Some(Key(key)) = map.next_key()? {
            match key {
                Some(field) => {
                    let value: &'de RawValue = map.next_value()?;
                    let slot = &mut out.slots[field as usize];
                    if slot.is_some() {
                        out.duplicate.get_or_insert(field);
                    } else {
                        *slot = Some(value);
                    }
                }
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collects_known_fields_and_ignores_others() {
        let obj = document(br#"{"device":"d","x":[1,{"y":2}],"seq":3}"#, 1024).unwrap();
        assert!(obj.has(Field::Device) && obj.has(Field::Seq));
        assert!(!obj.has(Field::Ts));
        assert_eq!(obj.u64(Field::Seq, "").unwrap(), 3);
        assert_eq!(obj.string(Field::Device).unwrap(), "d");
    }

    #[test]
    fn escaped_keys_are_recognised() {
        let obj = document(br#"{"dev\u0069ce":"d\u002d1"}"#, 1024).unwrap();
        assert_eq!(obj.device(Field::Device).unwrap().as_str(), "d-1");
    }

    #[test]
    fn duplicates_are_found_even_with_escapes() {
        let err = document(br#"{"seq":1,"s\u0065q":2}"#, 1024).unwrap_err();
        assert_eq!(err, Rejection::Duplicate { field: Field::Seq });
    }

    #[test]
    fn numbers_parse_exactly() {
        let obj = document(
            br#"{"temperature":27.100000000000001,"humidity":1e999}"#,
            64,
        )
        .unwrap();
        assert_eq!(obj.f64(Field::Temperature).unwrap(), 27.1);
        assert_eq!(
            obj.f64(Field::Humidity),
            Err(Rejection::NonFinite {
                field: Field::Humidity
            })
        );
    }

    #[test]
    fn excerpt_truncates_on_char_boundaries() {
        assert_eq!(excerpt("abc"), "abc");
        let long = "é".repeat(40);
        assert_eq!(excerpt(&long).chars().count(), EXCERPT_CHARS + 1);
    }
}
