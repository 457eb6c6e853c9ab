//! The accounting's rules on synthetic records: no broker, no S3.

use serde_json::{json, Value};

use super::*;
use crate::records::Ended;
use crate::Lane;

fn published(rec: &mut Records, job: &str, rev: u64, ended: Ended) {
    rec.publish_started(job, rev, Lane::Upload);
    rec.publish_ended(job, rev, ended);
}

fn verdict(job: &str, rev: u64, status: &str, sha: &str) -> Value {
    json!({
        "schema": "mediagate.verdict.v1", "job_id": job, "revision": rev, "status": status, "reason": null,
        "processed_at": "2026-01-01T00:00:00Z",
        "items": [{ "item_id": "0", "status": status, "outputs": [
            { "variant": "full", "bucket": "media", "key": format!("media/{job}/0/full.jpg"), "sha256": sha },
            { "variant": "thumb", "bucket": "media", "key": format!("media/{job}/0/thumb.jpg"), "sha256": "t" }
        ]}]
    })
}

fn deliver(rec: &mut Records, v: &Value) {
    assert!(rec.add_verdict(v.to_string().as_bytes(), None, false));
}

#[test]
fn a_job_with_its_verdict_is_accounted_and_checked_in_s3() {
    let mut rec = Records::default();
    published(&mut rec, "j-1", 0, Ended::Confirmed);
    assert_eq!(rec.pending(), 1);
    deliver(&mut rec, &verdict("j-1", 0, "cleared", "aa"));
    assert_eq!(rec.pending(), 0);
    let acc = account(&rec);
    let r = &acc.report;
    assert_eq!((r.published, r.confirmed, r.returned, r.verdicts, r.lost), (1, 1, 0, 1, 0));
    assert_eq!(r.by_status.get("cleared"), Some(&1));
    assert!(r.ok(), "{:?}", r.problems);
    assert_eq!(acc.stored.len(), 1);
    let check = &acc.stored[0];
    assert_eq!((check.job_id.as_str(), check.revision, check.status.as_str()), ("j-1", 0, "cleared"));
    let keys: Vec<&str> = check.outputs.iter().map(|o| o.key.as_str()).collect();
    assert_eq!(keys, ["media/j-1/0/full.jpg", "media/j-1/0/thumb.jpg"]);
}

#[test]
fn a_confirmed_job_without_a_verdict_is_lost() {
    let mut rec = Records::default();
    published(&mut rec, "j-1", 0, Ended::Confirmed);
    published(&mut rec, "j-2", 0, Ended::Confirmed);
    deliver(&mut rec, &verdict("j-2", 0, "cleared", "aa"));
    let r = account(&rec).report;
    assert_eq!(r.lost, 1);
    assert!(!r.ok());
    assert!(r.problems.iter().any(|p| p.contains("job j-1") && p.contains("LOST")), "{:?}", r.problems);
}

#[test]
fn a_verdict_for_a_newer_revision_supersedes_the_older_one() {
    let mut rec = Records::default();
    published(&mut rec, "j-1", 0, Ended::Confirmed);
    deliver(&mut rec, &verdict("j-1", 1, "blocked", "bb"));
    assert_eq!(rec.pending(), 0);
    let acc = account(&rec);
    let r = &acc.report;
    assert_eq!((r.superseded, r.lost), (1, 0));
    assert_eq!(r.by_status.get("blocked"), Some(&1));
    assert!(r.ok(), "{:?}", r.problems);
    assert_eq!(acc.stored[0].revision, 1, "only the highest revision's stored results are checked");
}

#[test]
fn an_expected_revision_without_its_verdict_is_lost_and_a_late_one_settles_it() {
    let mut rec = Records::default();
    published(&mut rec, "j-1", 0, Ended::Confirmed);
    deliver(&mut rec, &verdict("j-1", 0, "blocked", "aa"));
    rec.expect("j-1", 1);
    assert_eq!(rec.pending(), 1, "the released revision is owed");
    let r = account(&rec).report;
    assert_eq!((r.lost, r.superseded), (1, 0), "rev 0 has its own verdict: not superseded");
    deliver(&mut rec, &verdict("j-1", 1, "cleared", "bb"));
    let r = account(&rec).report;
    assert_eq!((r.lost, r.superseded, r.duplicates), (0, 0, 0));
    assert_eq!(r.by_status.get("cleared"), Some(&1));
    assert_eq!(r.by_status.get("blocked"), None, "only the highest revision's status counts");
}

#[test]
fn repeated_verdicts_count_as_duplicates_and_must_agree() {
    let mut rec = Records::default();
    published(&mut rec, "j-1", 0, Ended::Confirmed);
    published(&mut rec, "j-2", 0, Ended::Confirmed);
    let same = verdict("j-1", 0, "cleared", "aa");
    deliver(&mut rec, &same);
    let mut again = same.clone();
    again["processed_at"] = json!("2026-01-01T00:00:07Z");
    deliver(&mut rec, &again);
    deliver(&mut rec, &verdict("j-2", 0, "cleared", "aa"));
    deliver(&mut rec, &verdict("j-2", 0, "cleared", "ff"));
    let r = account(&rec).report;
    assert_eq!((r.verdicts, r.duplicates, r.lost), (4, 2, 0));
    assert_eq!(r.problems.len(), 1, "{:?}", r.problems);
    assert!(r.problems[0].contains("job j-2 rev 0: repeated verdicts differ"), "{}", r.problems[0]);
    assert!(r.problems[0].contains("sha256 ff"), "{}", r.problems[0]);
    assert!(!r.ok());

    let mut rec = Records::default();
    published(&mut rec, "j-3", 0, Ended::Confirmed);
    deliver(&mut rec, &verdict("j-3", 0, "cleared", "aa"));
    deliver(&mut rec, &verdict("j-3", 0, "blocked", "aa"));
    let r = account(&rec).report;
    assert!(
        r.problems.iter().any(|p| p.contains("status Some(\"cleared\") then Some(\"blocked\")")),
        "{:?}",
        r.problems
    );
}

#[test]
fn the_ledgers_own_redelivery_is_not_a_duplicate() {
    let mut rec = Records::default();
    published(&mut rec, "j-1", 0, Ended::Confirmed);
    let body = verdict("j-1", 0, "cleared", "aa").to_string();
    assert!(rec.add_verdict(body.as_bytes(), None, false));
    assert!(!rec.add_verdict(body.as_bytes(), None, true), "an ack lost with the connection");
    assert!(rec.add_verdict(body.as_bytes(), None, false), "a worker's byte-identical repeat still counts");
    assert_eq!(account(&rec).report.duplicates, 1);
}

#[test]
fn a_returned_job_is_published_but_not_lost() {
    let mut rec = Records::default();
    published(&mut rec, "j-1", 0, Ended::Returned);
    assert_eq!(rec.pending(), 0);
    let r = account(&rec).report;
    assert_eq!((r.published, r.returned, r.confirmed, r.lost), (1, 1, 0, 0));
    assert!(r.ok(), "{:?}", r.problems);
    assert!(r.by_status.is_empty());
}

#[test]
fn a_republished_revision_counts_once_and_confirmed_wins() {
    let mut rec = Records::default();
    published(&mut rec, "j-1", 0, Ended::Returned);
    published(&mut rec, "j-1", 0, Ended::Confirmed);
    let r = account(&rec).report;
    assert_eq!((r.published, r.confirmed, r.returned, r.lost), (1, 1, 0, 1));
}

#[test]
fn a_publish_given_up_on_is_a_note_not_a_loss() {
    let mut rec = Records::default();
    published(&mut rec, "j-1", 0, Ended::Failed);
    let r = account(&rec).report;
    assert_eq!((r.published, r.lost), (0, 0));
    assert!(r.ok());
    assert!(r.notes.iter().any(|n| n.contains("job j-1")), "{:?}", r.notes);
}

#[test]
fn delivery_limit_failures_are_counted_and_not_checked_in_s3() {
    let mut rec = Records::default();
    published(&mut rec, "j-1", 0, Ended::Confirmed);
    published(&mut rec, "j-2", 0, Ended::Confirmed);
    let failed = |job: &str, code: &str| json!({"job_id": job, "revision": 0, "status": "failed", "reason": {"code": code, "message": "x"}, "items": []});
    deliver(&mut rec, &failed("j-1", "internal.delivery_limit"));
    deliver(&mut rec, &failed("j-2", "internal.other"));
    let acc = account(&rec);
    assert_eq!((acc.report.failed, acc.report.lost), (1, 0));
    assert_eq!(acc.report.by_status.get("failed"), Some(&2));
    assert!(acc.stored.is_empty());
}

#[test]
fn other_producers_verdicts_are_counted_and_ignored() {
    let mut rec = Records::default();
    published(&mut rec, "j-1", 0, Ended::Confirmed);
    deliver(&mut rec, &verdict("j-1", 0, "rejected", "aa"));
    deliver(&mut rec, &verdict("someone-else", 0, "cleared", "aa"));
    deliver(&mut rec, &json!({"job_id": null, "revision": 0, "status": "rejected", "items": []}));
    assert!(rec.add_verdict(b"not json at all", None, false));
    let acc = account(&rec);
    assert_eq!((acc.report.verdicts, acc.report.duplicates), (4, 0));
    assert!(acc.report.ok(), "{:?}", acc.report.problems);
    assert_eq!(acc.stored.len(), 1);
}

#[test]
fn malformed_verdicts_of_a_known_job_are_problems_not_panics() {
    let mut rec = Records::default();
    published(&mut rec, "j-1", 0, Ended::Confirmed);
    assert!(rec.add_verdict(b"{\"job_id\": \"j-1\", \"revision\": \"zero\"", None, false));
    assert!(rec.add_verdict(b"garbage", Some("j-1"), false));
    deliver(&mut rec, &json!({"job_id": "j-1", "revision": "zero", "status": 7, "items": "no"}));
    deliver(&mut rec, &json!({"job_id": "j-1", "revision": 0, "status": null, "items": [{"outputs": [{}]}]}));
    let r = account(&rec).report;
    assert_eq!(r.lost, 0, "a verdict of revision 0 arrived, however broken");
    assert!(r.problems.iter().any(|p| p.contains("not a verdict object")), "{:?}", r.problems);
    assert!(r.problems.iter().any(|p| p.contains("without a numeric revision")), "{:?}", r.problems);
    assert!(r.problems.iter().any(|p| p.contains("has no status")), "{:?}", r.problems);
}

#[test]
fn a_publish_still_in_flight_at_settle_is_a_problem() {
    let mut rec = Records::default();
    rec.publish_started("j-1", 0, Lane::Reprocess);
    assert_eq!(rec.pending(), 1);
    let r = account(&rec).report;
    assert!(r.problems.iter().any(|p| p.contains("job j-1 rev 0") && p.contains("confirm")), "{:?}", r.problems);
}
