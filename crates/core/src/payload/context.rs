//! What the receiver knows about a message besides its bytes.

use crate::id::{BuildingId, DeviceId};
use crate::topic::Topic;

/// AWS IoT Core's payload limit (128 KiB): nothing larger can arrive through it, so
/// anything larger arriving elsewhere is rejected rather than half-processed.
pub const DEFAULT_MAX_BYTES: usize = 128 * 1024;

/// How far a reading's `ts` may be ahead of the receiver's clock (5 minutes, §4.8). Device
/// clocks drift, so some skew is tolerated; a reading from further ahead would sort after
/// every later real reading of its device, and remediation ignores readings older than the
/// newest it has seen: one spoofed reading a day ahead would freeze the device's loop for a
/// day. So it is rejected instead.
pub const MAX_FUTURE_SKEW_MS: u64 = 5 * 60 * 1000;

/// Context for parsing a payload: what the topic says and the receiver's limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseContext {
    /// The device named by the topic; a payload naming another device is rejected.
    pub device: Option<DeviceId>,
    /// The building named by the topic; a payload naming another building is rejected.
    pub building: Option<BuildingId>,
    /// Largest accepted payload, in bytes.
    pub max_bytes: usize,
    /// The receiver's clock (ms since the Unix epoch), to reject readings from the far future.
    pub now_ms: u64,
}

impl ParseContext {
    /// A context knowing nothing about the topic, with the default size limit.
    pub fn new(now_ms: u64) -> Self {
        ParseContext {
            device: None,
            building: None,
            max_bytes: DEFAULT_MAX_BYTES,
            now_ms,
        }
    }

    /// A context carrying the device and building named by `topic`.
    pub fn for_topic(topic: &Topic, now_ms: u64) -> Self {
        ParseContext {
            device: topic.device().cloned(),
            building: topic.building().cloned(),
            ..ParseContext::new(now_ms)
        }
    }

    /// The same context with another size limit.
    pub fn with_max_bytes(self, max_bytes: usize) -> Self {
        ParseContext { max_bytes, ..self }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn for_topic_takes_ids_from_the_topic() {
        let t = Topic::parse("dt/monitoring/b/d/telemetry").unwrap();
        let ctx = ParseContext::for_topic(&t, 5).with_max_bytes(10);
        assert_eq!(ctx.device.unwrap().as_str(), "d");
        assert_eq!(ctx.building.unwrap().as_str(), "b");
        assert_eq!((ctx.max_bytes, ctx.now_ms), (10, 5));
        let legacy = Topic::parse("monitoring-device/building-3").unwrap();
        let ctx = ParseContext::for_topic(&legacy, 0);
        assert_eq!(ctx.device, None);
        assert_eq!(ctx.building.unwrap().as_str(), "3");
    }
}
