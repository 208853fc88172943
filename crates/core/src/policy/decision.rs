//! A recorded remediation decision, its reason, and the message it publishes.

use serde::{Deserialize, Serialize};

use crate::id::{BuildingId, DeviceId};
use crate::payload::{Command, encode_command, encode_legacy_command};
use crate::topic::Topic;

/// Why the policy decided what it did. Recorded with every decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// Above the band and rising (or first reading): `cool`.
    AboveBandRising,
    /// Above the band but falling back: no command, it is returning by itself.
    AboveBandReturning,
    /// Below the band and falling (or first reading): `heat`.
    BelowBandFalling,
    /// Below the band but rising back: no command.
    BelowBandReturning,
    /// Inside the band with no remediation: nothing to do.
    InBand,
    /// Remediation held long enough and the reading is inside the release band: `release`.
    BackInBand,
    /// Remediation held long enough and the reading left the band on the other side: the
    /// opposite command.
    Overshoot,
    /// A remediation is active and no rule ends or reverses it: no repeated command.
    AlreadyActive,
    /// The device ended the remediation by itself (hold expired); nothing else to do.
    HoldExpired,
    /// The policy is disabled: recorded, no command.
    Disabled,
    /// Same reading (ts and seq) as the last one: a redelivery, ignored.
    Duplicate,
    /// Older than the last reading: out of order, ignored.
    Stale,
}

impl Reason {
    /// Every reason, e.g. to check that stores can read each code back.
    pub const ALL: [Reason; 12] = [
        Reason::AboveBandRising,
        Reason::AboveBandReturning,
        Reason::BelowBandFalling,
        Reason::BelowBandReturning,
        Reason::InBand,
        Reason::BackInBand,
        Reason::Overshoot,
        Reason::AlreadyActive,
        Reason::HoldExpired,
        Reason::Disabled,
        Reason::Duplicate,
        Reason::Stale,
    ];

    /// A stable snake_case code, for metrics and the decisions table.
    pub const fn code(self) -> &'static str {
        match self {
            Reason::AboveBandRising => "above_band_rising",
            Reason::AboveBandReturning => "above_band_returning",
            Reason::BelowBandFalling => "below_band_falling",
            Reason::BelowBandReturning => "below_band_returning",
            Reason::InBand => "in_band",
            Reason::BackInBand => "back_in_band",
            Reason::Overshoot => "overshoot",
            Reason::AlreadyActive => "already_active",
            Reason::HoldExpired => "hold_expired",
            Reason::Disabled => "disabled",
            Reason::Duplicate => "duplicate",
            Reason::Stale => "stale",
        }
    }

    /// Whether the reading was ignored (not taken into the device's state).
    pub const fn is_ignored(self) -> bool {
        matches!(self, Reason::Duplicate | Reason::Stale)
    }
}

/// One decision about one reading: the record stored in the decisions table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    /// The device.
    pub device: DeviceId,
    /// The device's building, when known.
    pub building: Option<BuildingId>,
    /// The reading's `seq` (`None` for legacy readings).
    pub reading_seq: Option<u64>,
    /// The reading's time, ms.
    pub reading_ts: u64,
    /// When the decision was made (the policy's `now_ms`).
    pub at_ms: u64,
    /// The reading's temperature, °C.
    pub temperature: f64,
    /// The reading's humidity, % (echoed in legacy commands).
    pub humidity: f64,
    /// The previous reading's temperature, if any.
    pub previous_temperature: Option<f64>,
    /// Whether the device speaks the original protocol (commands go out in legacy shape).
    pub legacy: bool,
    /// The command to publish, if any.
    pub command: Option<Command>,
    /// Why.
    pub reason: Reason,
}

/// A message to publish: topic and payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Publication {
    /// Where.
    pub topic: Topic,
    /// The JSON payload.
    pub payload: String,
}

impl Decision {
    /// A reading that changed nothing and needs no command: inside the band with nothing
    /// active, or during a remediation that goes on. Most decisions are routine; the cloud
    /// stores only the others (each stored decision is a table write: commands, readings
    /// out of band, remediations ending) and counts these.
    pub fn is_routine(&self) -> bool {
        matches!(self.reason, Reason::InBand | Reason::AlreadyActive) && self.command.is_none()
    }

    /// The message carrying this decision's command to the device, if there is one to send.
    ///
    /// Legacy devices get the legacy shape on `monitoring-device/remediation-{n}`; the
    /// original protocol has no release, so a legacy `release` publishes nothing (the
    /// original device stays damped, as it always did). `None` too when the building is
    /// unknown, as the topic cannot be built.
    pub fn publication(&self) -> Option<Publication> {
        let command = self.command.as_ref()?;
        let building = self.building.clone()?;
        if self.legacy {
            let legacy = command.to_legacy(self.humidity)?;
            Some(Publication {
                topic: Topic::LegacyRemediation { building },
                payload: encode_legacy_command(&legacy),
            })
        } else {
            Some(Publication {
                topic: Topic::command(building, command.device.clone()),
                payload: encode_command(command),
            })
        }
    }
}
