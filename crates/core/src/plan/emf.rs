//! CloudWatch Embedded Metric Format lines (§4.4): metrics as log lines, no API calls.
//!
//! Each line is one JSON document whose `_aws.CloudWatchMetrics` tells CloudWatch which
//! top-level members are metrics and which are dimensions.

use serde_json::{Map, Value};

/// EMF allows at most 100 values per metric per document.
pub(crate) const MAX_VALUES: usize = 100;

fn object(fields: Vec<(&str, Value)>) -> Value {
    // Inserted one by one, not collected: `Map` is a BTreeMap, whose `FromIterator` sorts
    // with a stable sort that this crate would otherwise bring into the web app (5 KB).
    let mut map = Map::new();
    for (k, v) in fields {
        map.insert(k.to_owned(), v);
    }
    Value::Object(map)
}

/// One EMF document: `dimension` = `key`, and `metrics` as `(name, unit, value)`.
pub(crate) fn line(
    namespace: &str,
    timestamp_ms: u64,
    dimension: &str,
    key: &str,
    metrics: Vec<(&str, &str, Value)>,
) -> String {
    let definitions: Vec<Value> = metrics
        .iter()
        .map(|(name, unit, _)| {
            object(vec![
                ("Name", Value::from(*name)),
                ("Unit", Value::from(*unit)),
            ])
        })
        .collect();
    let directive = object(vec![
        ("Namespace", Value::from(namespace)),
        (
            "Dimensions",
            Value::from(vec![Value::from(vec![dimension])]),
        ),
        ("Metrics", Value::from(definitions)),
    ]);
    let aws = object(vec![
        ("Timestamp", Value::from(timestamp_ms)),
        ("CloudWatchMetrics", Value::from(vec![directive])),
    ]);
    let mut fields = vec![("_aws", aws), (dimension, Value::from(key))];
    fields.extend(metrics.into_iter().map(|(name, _, value)| (name, value)));
    object(fields).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_a_valid_document() {
        let l = line(
            "Device/Monitoring",
            5,
            "Building",
            "1",
            vec![("Readings", "Count", Value::from(3))],
        );
        let v: Value = serde_json::from_str(&l).unwrap();
        assert_eq!(v["_aws"]["Timestamp"], 5);
        let d = &v["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(d["Namespace"], "Device/Monitoring");
        assert_eq!(d["Dimensions"][0][0], "Building");
        assert_eq!(d["Metrics"][0]["Name"], "Readings");
        assert_eq!(d["Metrics"][0]["Unit"], "Count");
        assert_eq!(v["Building"], "1");
        assert_eq!(v["Readings"], 3);
    }
}
