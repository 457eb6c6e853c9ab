//! Reason codes (§3, §5): the machine-readable half of every rejection, block or failure.

use serde::{Deserialize, Serialize};

/// Every reason code the contract names. `Internal` codes only ever come with `failed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReasonCode {
    JobInvalid,
    JobTooManyItems,
    JobNoItems,
    PolicyUnder16,
    PolicyMediaFirstContact,
    InputSourceNotAllowed,
    InputMissing,
    InputTooLarge,
    InputUnsupportedFormat,
    InputTypeMismatch,
    InputCorrupt,
    InputTooManyPixels,
    InputTooLong,
    NudityFlagged,
    /// The item matched a hash bank entry (§8).
    HashMatched,
    /// The job could not be processed after its delivery limit (transient faults).
    InternalDeliveryLimit,
    /// Storage kept failing (5xx, timeouts, denied) for the whole retry budget.
    InternalStorage,
    /// A bug or an unexpected failure inside mediagate.
    InternalError,
}

impl ReasonCode {
    /// All codes, for exhaustive tests and schema generation.
    pub const ALL: [ReasonCode; 18] = [
        ReasonCode::JobInvalid,
        ReasonCode::JobTooManyItems,
        ReasonCode::JobNoItems,
        ReasonCode::PolicyUnder16,
        ReasonCode::PolicyMediaFirstContact,
        ReasonCode::InputSourceNotAllowed,
        ReasonCode::InputMissing,
        ReasonCode::InputTooLarge,
        ReasonCode::InputUnsupportedFormat,
        ReasonCode::InputTypeMismatch,
        ReasonCode::InputCorrupt,
        ReasonCode::InputTooManyPixels,
        ReasonCode::InputTooLong,
        ReasonCode::NudityFlagged,
        ReasonCode::HashMatched,
        ReasonCode::InternalDeliveryLimit,
        ReasonCode::InternalStorage,
        ReasonCode::InternalError,
    ];

    /// The code exactly as it appears on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            ReasonCode::JobInvalid => "job.invalid",
            ReasonCode::JobTooManyItems => "job.too_many_items",
            ReasonCode::JobNoItems => "job.no_items",
            ReasonCode::PolicyUnder16 => "policy.under_16",
            ReasonCode::PolicyMediaFirstContact => "policy.media_first_contact",
            ReasonCode::InputSourceNotAllowed => "input.source_not_allowed",
            ReasonCode::InputMissing => "input.missing",
            ReasonCode::InputTooLarge => "input.too_large",
            ReasonCode::InputUnsupportedFormat => "input.unsupported_format",
            ReasonCode::InputTypeMismatch => "input.type_mismatch",
            ReasonCode::InputCorrupt => "input.corrupt",
            ReasonCode::InputTooManyPixels => "input.too_many_pixels",
            ReasonCode::InputTooLong => "input.too_long",
            ReasonCode::NudityFlagged => "nudity.flagged",
            ReasonCode::HashMatched => "hash.matched",
            ReasonCode::InternalDeliveryLimit => "internal.delivery_limit",
            ReasonCode::InternalStorage => "internal.storage",
            ReasonCode::InternalError => "internal.error",
        }
    }

    /// Parses a wire code back (verdict consumers, tests).
    pub fn from_wire(s: &str) -> Option<ReasonCode> {
        ReasonCode::ALL.into_iter().find(|c| c.as_str() == s)
    }

    /// True for the `internal.*` codes, which only a `failed` job carries.
    pub fn is_internal(self) -> bool {
        self.as_str().starts_with("internal.")
    }
}

impl std::fmt::Display for ReasonCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for ReasonCode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for ReasonCode {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        ReasonCode::from_wire(&s).ok_or_else(|| serde::de::Error::custom(format!("unknown reason code `{s}`")))
    }
}

/// A reason: the code for machines, the message for people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reason {
    pub code: ReasonCode,
    pub message: String,
}

impl Reason {
    /// Builds a reason; the message should say what was wrong and what to do about it.
    pub fn new(code: ReasonCode, message: impl Into<String>) -> Reason {
        Reason { code, message: message.into() }
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_round_trips_through_the_wire() {
        for c in ReasonCode::ALL {
            let json = serde_json::to_string(&c).unwrap();
            assert_eq!(json, format!("\"{}\"", c.as_str()));
            assert_eq!(serde_json::from_str::<ReasonCode>(&json).unwrap(), c);
        }
    }

    #[test]
    fn codes_are_unique_and_namespaced() {
        let mut seen = std::collections::HashSet::new();
        for c in ReasonCode::ALL {
            assert!(seen.insert(c.as_str()), "duplicate {}", c);
            let ns = c.as_str().split('.').next().unwrap();
            assert!(["job", "policy", "input", "nudity", "hash", "internal"].contains(&ns));
        }
    }

    #[test]
    fn the_contract_codes_are_spelled_exactly() {
        let wire: Vec<&str> = ReasonCode::ALL.iter().map(|c| c.as_str()).collect();
        for code in [
            "job.invalid",
            "job.too_many_items",
            "job.no_items",
            "policy.under_16",
            "policy.media_first_contact",
            "input.source_not_allowed",
            "input.missing",
            "input.too_large",
            "input.unsupported_format",
            "input.type_mismatch",
            "input.corrupt",
            "input.too_many_pixels",
            "input.too_long",
            "nudity.flagged",
            "hash.matched",
        ] {
            assert!(wire.contains(&code), "{code} missing");
        }
        assert!(ReasonCode::InternalError.is_internal());
        assert!(!ReasonCode::InputCorrupt.is_internal());
    }

    #[test]
    fn unknown_codes_are_refused() {
        assert!(serde_json::from_str::<ReasonCode>("\"input.nope\"").is_err());
    }
}
