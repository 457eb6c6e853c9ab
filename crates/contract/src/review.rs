//! A moderator's decisions on blocked items (§9): the decision file, where it lives, and the
//! job fingerprint a release is bound to.
//!
//! A decision is bound to the file and to the job it was made on: `sha256` is the quarantined
//! original's, `job_sha256` the manifest's job object's (keys sorted, without `reprocess` and
//! `revision`, which change with every republication). A release applies only while both still
//! hold, so a different file, or another job published under the same id (other recipients),
//! is never covered by it.

use serde::{Deserialize, Serialize};
use sha2::Digest as _;

use crate::ids::{is_valid_id, ItemId, JobId};

/// What a moderator decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DecisionKind {
    /// Not harmful after all: the item is processed from its quarantined original and cleared.
    Released,
    /// Content nobody may send: its hashes go into the `confirmed` bank.
    Confirmed,
}

impl DecisionKind {
    pub fn as_str(self) -> &'static str {
        match self {
            DecisionKind::Released => "released",
            DecisionKind::Confirmed => "confirmed",
        }
    }
}

/// `{job_id}/{item_id}/review/{at}.json` in the quarantine bucket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    pub decision: DecisionKind,
    /// The moderator, an identifier (§2): it is written into bank lines, so no newline can get in.
    pub by: String,
    /// RFC 3339 UTC with milliseconds; also the file's name, so names sort by time.
    pub at: String,
    pub note: Option<String>,
    /// Of the quarantined original decided on.
    pub sha256: String,
    /// Of the manifest's job object (see [`job_sha256`]).
    pub job_sha256: String,
}

/// The prefix of an item's decisions.
pub fn decisions_prefix(job_id: &JobId, item_id: &ItemId) -> String {
    debug_assert!(is_valid_id(job_id) && is_valid_id(item_id));
    format!("{job_id}/{item_id}/review/")
}

/// The key of a decision made at `at`.
pub fn decision_key(job_id: &JobId, item_id: &ItemId, at: &str) -> String {
    format!("{}{at}.json", decisions_prefix(job_id, item_id))
}

/// The prefix of an item's quarantined files (`original.{ext}`, `verdict.json`, `review/`).
pub fn quarantine_item_prefix(job_id: &JobId, item_id: &ItemId) -> String {
    debug_assert!(is_valid_id(job_id) && is_valid_id(item_id));
    format!("{job_id}/{item_id}/")
}

/// The object `review confirm` writes into the `confirmed` bank for an original.
pub fn confirmed_bank_key(sha256: &str) -> String {
    format!(".banks/confirmed/{sha256}.txt")
}

/// The latest of an item's decision keys (names sort by time), ignoring anything else.
pub fn latest_decision_key<'a>(keys: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    keys.into_iter().filter(|k| k.contains("/review/") && k.ends_with(".json")).max()
}

/// sha256 of a job object as stored, serialised with its keys sorted at every level, compactly,
/// without the top-level `reprocess` and `revision` (§9).
pub fn job_sha256(job: &serde_json::Value) -> String {
    let mut text = String::new();
    match job {
        serde_json::Value::Object(map) => {
            let mut stripped = map.clone();
            stripped.remove("reprocess");
            stripped.remove("revision");
            canonical(&serde_json::Value::Object(stripped), &mut text);
        }
        other => canonical(other, &mut text),
    }
    hex::encode(sha2::Sha256::digest(text.as_bytes()))
}

/// Compact JSON with object keys sorted, independent of how the map keeps its keys.
fn canonical(v: &serde_json::Value, out: &mut String) {
    match v {
        serde_json::Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&serde_json::Value::String(k.clone()).to_string());
                out.push(':');
                if let Some(value) = map.get(k) {
                    canonical(value, out);
                }
            }
            out.push('}');
        }
        serde_json::Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical(item, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_job_fingerprint_ignores_key_order_and_republication_fields() {
        let a = json!({"job_id": "j", "items": [{"b": 1, "a": 2}], "recipients": [{"account_id": "x"}]});
        let b = json!({"recipients": [{"account_id": "x"}], "items": [{"a": 2, "b": 1}], "job_id": "j",
                       "reprocess": true, "revision": 3});
        assert_eq!(job_sha256(&a), job_sha256(&b));
        let other = json!({"job_id": "j", "items": [{"b": 1, "a": 2}], "recipients": [{"account_id": "y"}]});
        assert_ne!(job_sha256(&a), job_sha256(&other), "other recipients are another job");
        // Nested reprocess/revision keys are content, only the top-level ones are dropped.
        let nested = json!({"job_id": "j", "x": {"revision": 1}});
        assert_ne!(job_sha256(&nested), job_sha256(&json!({"job_id": "j", "x": {}})));
    }

    #[test]
    fn decisions_sort_by_time_and_live_beside_the_original() {
        assert_eq!(
            decision_key(&"j".into(), &"0".into(), "2026-12-01T10:00:00.000Z"),
            "j/0/review/2026-12-01T10:00:00.000Z.json"
        );
        let keys = [
            "j/0/original.jpg",
            "j/0/review/2026-12-01T10:00:00.000Z.json",
            "j/0/review/2026-12-01T11:00:00.000Z.json",
            "j/0/verdict.json",
        ];
        assert_eq!(latest_decision_key(keys), Some("j/0/review/2026-12-01T11:00:00.000Z.json"));
        assert_eq!(confirmed_bank_key("ab"), ".banks/confirmed/ab.txt");
        let d: Decision = serde_json::from_value(json!({"decision": "released", "by": "mod-1", "at": "t",
            "note": null, "sha256": "s", "job_sha256": "j"}))
        .unwrap();
        assert_eq!(d.decision, DecisionKind::Released);
    }
}
