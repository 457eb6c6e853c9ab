//! The S3 key layout (§4). Keys are derived from the job only, so a redelivered or
//! reprocessed job overwrites the same objects. They take typed ids ([`JobId`], [`ItemId`]),
//! valid once a job was parsed or an id checked with `parse`; they assert it in debug builds.

use crate::ids::{is_valid_id, ItemId, JobId};

/// `media/{job_id}/{item_id}/{variant}.{ext}` in the output bucket.
pub fn output_key(job_id: &JobId, item_id: &ItemId, variant: &str, ext: &str) -> String {
    debug_assert!(is_valid_id(job_id) && is_valid_id(item_id));
    format!("media/{job_id}/{item_id}/{variant}.{ext}")
}

/// The prefix under which all of one item's outputs live (for cleanup of stale variants).
pub fn output_item_prefix(job_id: &JobId, item_id: &ItemId) -> String {
    debug_assert!(is_valid_id(job_id) && is_valid_id(item_id));
    format!("media/{job_id}/{item_id}/")
}

/// `manifests/{job_id}.json` in the manifest bucket.
pub fn manifest_key(job_id: &JobId) -> String {
    debug_assert!(is_valid_id(job_id));
    format!("manifests/{job_id}.json")
}

/// The prefix `mediagate reprocess` lists.
pub const MANIFEST_PREFIX: &str = "manifests/";

/// `{job_id}/{item_id}/original.{ext}` in the quarantine bucket.
pub fn quarantine_original_key(job_id: &JobId, item_id: &ItemId, ext: &str) -> String {
    debug_assert!(is_valid_id(job_id) && is_valid_id(item_id));
    format!("{job_id}/{item_id}/original.{ext}")
}

/// `{job_id}/{item_id}/verdict.json` in the quarantine bucket.
pub fn quarantine_verdict_key(job_id: &JobId, item_id: &ItemId) -> String {
    debug_assert!(is_valid_id(job_id) && is_valid_id(item_id));
    format!("{job_id}/{item_id}/verdict.json")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_follow_the_contract_layout() {
        assert_eq!(output_key(&"j-01HZX3".into(), &"0".into(), "full", "jpg"), "media/j-01HZX3/0/full.jpg");
        assert_eq!(output_key(&"j".into(), &"1".into(), "thumb", "png"), "media/j/1/thumb.png");
        assert_eq!(output_item_prefix(&"j".into(), &"1".into()), "media/j/1/");
        assert_eq!(manifest_key(&"j-1".into()), "manifests/j-1.json");
        assert_eq!(quarantine_original_key(&"j".into(), &"2".into(), "webp"), "j/2/original.webp");
        assert_eq!(quarantine_verdict_key(&"j".into(), &"2".into()), "j/2/verdict.json");
    }
}
