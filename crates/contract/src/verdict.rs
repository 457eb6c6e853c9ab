//! The verdict (`mediagate.verdict.v1`, §5) and the manifest (§4).
//!
//! Every item carries every key, `null` where it does not apply: the structs have no
//! `skip_serializing_if`, on purpose.

use serde::{Deserialize, Serialize};

use crate::ids::{ItemId, JobId};
use crate::reason::Reason;

/// The schema tag every verdict carries.
pub const VERDICT_SCHEMA: &str = "mediagate.verdict.v1";

/// A job's status; also the routing key suffix `verdict.<status>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    Cleared,
    Blocked,
    Rejected,
    Partial,
    Failed,
}

impl JobStatus {
    /// Every status, in the contract's order.
    pub const ALL: [JobStatus; 5] =
        [JobStatus::Cleared, JobStatus::Blocked, JobStatus::Rejected, JobStatus::Partial, JobStatus::Failed];

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Cleared => "cleared",
            JobStatus::Blocked => "blocked",
            JobStatus::Rejected => "rejected",
            JobStatus::Partial => "partial",
            JobStatus::Failed => "failed",
        }
    }

    /// The AMQP routing key the verdict is published with.
    pub fn routing_key(self) -> String {
        format!("verdict.{}", self.as_str())
    }
}

/// An item's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ItemStatus {
    Cleared,
    Blocked,
    Rejected,
}

/// What an item turned out to be; `None` (null) when not recognised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MediaType {
    Image,
    Video,
    Audio,
}

/// The job status from its items' statuses (§3): unanimous, else `partial`.
pub fn job_status(items: &[ItemStatus]) -> JobStatus {
    let Some(first) = items.first() else {
        // No items means a job-level rule failed; callers never get here for a valid job.
        return JobStatus::Rejected;
    };
    if items.iter().any(|s| s != first) {
        return JobStatus::Partial;
    }
    match first {
        ItemStatus::Cleared => JobStatus::Cleared,
        ItemStatus::Blocked => JobStatus::Blocked,
        ItemStatus::Rejected => JobStatus::Rejected,
    }
}

/// The classifier's result for one item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NudityResult {
    pub model: String,
    pub model_sha256: String,
    pub score: f64,
    pub threshold: f64,
    pub flagged: bool,
    pub frames: u32,
}

/// One stored output object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Output {
    pub variant: String,
    pub bucket: String,
    pub key: String,
    pub content_type: String,
    pub bytes: u64,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub sha256: String,
}

/// One sampled video frame's PDQ (`pdq_frames`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FramePdq {
    /// The frame's time from the start of the clip.
    pub ms: u64,
    /// 64 hex digits.
    pub pdq: String,
    /// PDQ quality, 0..=100.
    pub quality: u8,
}

/// The item's hashes (§5): `null` as a whole when the original was never fetched.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hashes {
    /// Of the original's bytes, lower-case hex.
    pub sha256: String,
    /// PDQ of the image as shown (a photo) or of the poster (a video); `null` for audio and
    /// input that did not decode.
    pub pdq: Option<String>,
    pub pdq_quality: Option<u8>,
    /// A video's sampled frames, in time order; `null` otherwise.
    pub pdq_frames: Option<Vec<FramePdq>>,
}

impl Hashes {
    /// The hashes of fetched bytes that were not (or could not be) decoded.
    pub fn bytes_only(sha256: String) -> Hashes {
        Hashes { sha256, pdq: None, pdq_quality: None, pdq_frames: None }
    }
}

/// A hash-bank match (§5, §8): the entry reported when several match.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HashMatch {
    /// The bank's name in `MEDIAGATE_HASH_BANKS` (or `confirmed`).
    pub bank: String,
    /// `sha256`, `md5` or `pdq`.
    pub kind: String,
    /// The bank's entry, lower-case hex.
    pub hash: String,
    /// Hamming distance; 0 for an exact kind.
    pub distance: u32,
    pub label: Option<String>,
    /// The matching frame of a video, else `null`.
    pub frame_ms: Option<u64>,
}

/// A moderator's release of a blocked item (§9), as the verdict reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReviewNote {
    /// Always `released` in a verdict.
    pub decision: String,
    pub by: String,
    /// RFC 3339, UTC.
    pub at: String,
    pub note: Option<String>,
}

/// One item's outcome.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ItemVerdict {
    pub item_id: ItemId,
    pub status: ItemStatus,
    pub media_type: Option<MediaType>,
    pub reason: Option<Reason>,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub duration_ms: Option<u64>,
    pub waveform: Option<Vec<u8>>,
    pub blurhash: Option<String>,
    pub nudity: Option<NudityResult>,
    pub hashes: Option<Hashes>,
    #[serde(rename = "match")]
    pub hash_match: Option<HashMatch>,
    pub review: Option<ReviewNote>,
    pub outputs: Vec<Output>,
}

impl ItemVerdict {
    /// A rejected item: nothing measured, nothing stored (hashes added by the caller when the
    /// bytes were fetched).
    pub fn rejected(item_id: &ItemId, media_type: Option<MediaType>, reason: Reason) -> ItemVerdict {
        ItemVerdict {
            item_id: item_id.clone(),
            status: ItemStatus::Rejected,
            media_type,
            reason: Some(reason),
            width: None,
            height: None,
            duration_ms: None,
            waveform: None,
            blurhash: None,
            nudity: None,
            hashes: None,
            hash_match: None,
            review: None,
            outputs: Vec::new(),
        }
    }
}

/// Who produced a verdict.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkerInfo {
    pub id: String,
    pub version: String,
}

/// The verdict event published once per job (at least once on the wire).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    pub schema: String,
    pub job_id: Option<JobId>,
    pub message_id: Option<String>,
    pub conversation_id: Option<String>,
    pub status: JobStatus,
    pub reason: Option<Reason>,
    pub reprocess: bool,
    pub revision: u64,
    pub items: Vec<ItemVerdict>,
    /// RFC 3339, UTC.
    pub processed_at: String,
    pub worker: WorkerInfo,
}

/// `manifests/{job_id}.json`: the job as received and its verdict; what `reprocess` reads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// The parsed job object, or the raw body as a string when it did not parse; `null` when
    /// the body was over a §2 limit and not parsed.
    pub job: serde_json::Value,
    /// The body's length when it was over a §2 limit (`job` is then `null`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_bytes: Option<u64>,
    pub verdict: Verdict,
}

impl Manifest {
    /// The stored job published again (`reprocess` and `review release`, contract §7 and §9):
    /// the job object as it was sent, with `reprocess: true` and the revision after the stored
    /// verdict's. `None` when the stored job never parsed as a JSON object (nothing to publish).
    pub fn republished(&self) -> Option<serde_json::Map<String, serde_json::Value>> {
        let serde_json::Value::Object(mut job) = self.job.clone() else { return None };
        job.insert("reprocess".into(), serde_json::Value::Bool(true));
        job.insert("revision".into(), serde_json::Value::from(self.verdict.revision + 1));
        Some(job)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reason::ReasonCode;
    use ItemStatus::*;

    #[test]
    fn a_republished_job_is_the_stored_one_with_the_next_revision_as_a_reprocess() {
        let verdict = Verdict {
            schema: "x".into(),
            job_id: Some("j".into()),
            message_id: None,
            conversation_id: None,
            status: JobStatus::Cleared,
            reason: None,
            reprocess: false,
            revision: 4,
            items: Vec::new(),
            processed_at: "2026-01-01T00:00:00Z".into(),
            worker: WorkerInfo { id: "w".into(), version: "0".into() },
        };
        let job = serde_json::json!({"job_id": "j", "kind": "media", "extra": [1, 2], "reprocess": false});
        let m = Manifest { job: job.clone(), job_bytes: None, verdict: verdict.clone() };
        let again = m.republished().unwrap();
        assert_eq!(again["revision"], 5);
        assert_eq!(again["reprocess"], true);
        assert_eq!(again["extra"], job["extra"], "the rest of the job as it was sent");
        assert_eq!(again.len(), 5);
        let unparsed = Manifest { job: serde_json::Value::String("{not json".into()), job_bytes: None, verdict };
        assert!(unparsed.republished().is_none());
    }

    #[test]
    fn job_status_is_unanimous_or_partial() {
        assert_eq!(job_status(&[Cleared]), JobStatus::Cleared);
        assert_eq!(job_status(&[Blocked, Blocked]), JobStatus::Blocked);
        assert_eq!(job_status(&[Rejected, Rejected]), JobStatus::Rejected);
        assert_eq!(job_status(&[Cleared, Rejected]), JobStatus::Partial);
        assert_eq!(job_status(&[Cleared, Blocked]), JobStatus::Partial);
        assert_eq!(job_status(&[Blocked, Rejected]), JobStatus::Partial);
        let mut nine = vec![Cleared; 8];
        nine.push(Rejected);
        assert_eq!(job_status(&nine), JobStatus::Partial);
        assert_eq!(JobStatus::Partial.routing_key(), "verdict.partial");
    }

    #[test]
    fn every_item_key_is_present_even_when_null() {
        let item = ItemVerdict::rejected(&"1".into(), None, Reason::new(ReasonCode::InputCorrupt, "x"));
        let v = serde_json::to_value(&item).unwrap();
        for key in [
            "item_id",
            "status",
            "media_type",
            "reason",
            "width",
            "height",
            "duration_ms",
            "waveform",
            "blurhash",
            "nudity",
            "hashes",
            "match",
            "review",
            "outputs",
        ] {
            assert!(v.as_object().unwrap().contains_key(key), "{key} missing");
        }
        assert_eq!(v["status"], "rejected");
        assert_eq!(v["media_type"], serde_json::Value::Null);
        assert_eq!(v["reason"]["code"], "input.corrupt");
    }

    #[test]
    fn the_contract_example_verdict_round_trips() {
        let text = r#"{
          "schema": "mediagate.verdict.v1",
          "job_id": "j-01HZX3", "message_id": "m-123", "conversation_id": "c-9",
          "status": "partial", "reason": null, "reprocess": false, "revision": 0,
          "items": [
            { "item_id": "0", "status": "cleared", "media_type": "image", "reason": null,
              "width": 4032, "height": 3024, "duration_ms": null, "waveform": null,
              "blurhash": "LEHV6nWB2yk8pyo0adR*.7kCMdnj",
              "nudity": { "model": "open_nsfw", "model_sha256": "x", "score": 0.031, "threshold": 0.5, "flagged": false, "frames": 1 },
              "hashes": { "sha256": "z", "pdq": "p", "pdq_quality": 100, "pdq_frames": null },
              "match": null, "review": null,
              "outputs": [
                { "variant": "full", "bucket": "media", "key": "media/j-01HZX3/0/full.jpg",
                  "content_type": "image/jpeg", "bytes": 412345, "width": 2048, "height": 1536, "sha256": "y" }
              ] },
            { "item_id": "1", "status": "rejected", "media_type": null,
              "reason": { "code": "input.corrupt", "message": "JPEG ends after 1203 of 48211 bytes" },
              "width": null, "height": null, "duration_ms": null, "waveform": null, "blurhash": null,
              "nudity": null, "hashes": { "sha256": "z", "pdq": null, "pdq_quality": null, "pdq_frames": null },
              "match": null, "review": null, "outputs": [] }
          ],
          "processed_at": "2026-11-24T22:00:00Z",
          "worker": { "id": "host-1", "version": "0.1.0" }
        }"#;
        let v: Verdict = serde_json::from_str(text).unwrap();
        assert_eq!(v.status, JobStatus::Partial);
        assert_eq!(v.items[1].reason.as_ref().unwrap().code, ReasonCode::InputCorrupt);
        let back = serde_json::to_value(&v).unwrap();
        let orig: serde_json::Value = serde_json::from_str(text).unwrap();
        assert_eq!(back, orig);
    }
}
