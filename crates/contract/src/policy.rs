//! The job-level rules 2–5 in their contract order (§3), and the nudity-filter decision.
//!
//! Rule 1 (schema and ids) is [`crate::Job::parse`]; a job that reaches this module is
//! well-formed. The first rule that fails rejects the whole job.

use crate::job::{AgeBand, Job, JobKind};
use crate::reason::{Reason, ReasonCode};
use crate::settings::{Thresholds, MAX_MEDIA_ITEMS};

/// Applies rules 2–5 in order; the first failure is the job's reason.
pub fn check_job_rules(job: &Job, source_buckets: &[String]) -> Result<(), Reason> {
    // Rule 2: item count fits the kind.
    let n = job.items.len();
    let max = match job.kind {
        JobKind::Media => MAX_MEDIA_ITEMS,
        JobKind::VoiceNote => 1,
    };
    if n == 0 {
        return Err(Reason::new(
            ReasonCode::JobNoItems,
            format!("a {} job needs at least one item; it has none", job.kind.as_str()),
        ));
    }
    if n > max {
        return Err(Reason::new(
            ReasonCode::JobTooManyItems,
            format!("a {} job carries at most {max} item(s); it has {n}", job.kind.as_str()),
        ));
    }
    // Rule 3: no DMs under 16.
    if job.sender.age_band == AgeBand::Under16 {
        return Err(Reason::new(
            ReasonCode::PolicyUnder16,
            "the sender is under 16; direct messages are not available under 16",
        ));
    }
    if let Some(r) = job.recipients.iter().find(|r| r.age_band == AgeBand::Under16) {
        return Err(Reason::new(
            ReasonCode::PolicyUnder16,
            format!("recipient {} is under 16; direct messages are not available under 16", r.account_id),
        ));
    }
    // Rule 4: no media as the first message to a new contact.
    if job.message.first_contact {
        return Err(Reason::new(
            ReasonCode::PolicyMediaFirstContact,
            "media cannot be the first message to a new contact; send a text message first",
        ));
    }
    // Rule 5: every source bucket is on the allow-list.
    if let Some(item) = job.items.iter().find(|i| !source_buckets.contains(&i.source.bucket)) {
        return Err(Reason::new(
            ReasonCode::InputSourceNotAllowed,
            format!(
                "item {} comes from bucket {:?}, which is not an allowed source bucket ({})",
                item.item_id,
                item.source.bucket,
                source_buckets.join(", ")
            ),
        ));
    }
    Ok(())
}

/// Why the filter applies, which decides the threshold.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NudityPolicy {
    /// Someone in the job (sender or recipient) is 16–17: filter mandatory.
    pub minor: bool,
    /// An adult recipient opted in.
    pub adult_opt_in: bool,
    /// The lowest applicable threshold: a score at or above it blocks the item.
    pub threshold: f64,
}

/// Does the nudity filter apply to this job, and at which threshold? `None`: the classifier
/// must not run and the verdict's `nudity` is `null`.
pub fn nudity_policy(job: &Job, thresholds: Thresholds) -> Option<NudityPolicy> {
    let minor = job.age_bands().any(|b| b == AgeBand::Age16To17);
    // For a 16–17 recipient the filter is on whatever the field says; the opt-in that picks the
    // adult threshold is an adult's own.
    let adult_opt_in = job.recipients.iter().any(|r| r.age_band == AgeBand::Adult && r.nudity_filter);
    let threshold = match (minor, adult_opt_in) {
        (false, false) => return None,
        (true, false) => thresholds.minor,
        (false, true) => thresholds.adult,
        (true, true) => thresholds.minor.min(thresholds.adult),
    };
    Some(NudityPolicy { minor, adult_opt_in, threshold })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::tests::{example, parse_value};
    use crate::job::ParseOutcome;
    use serde_json::json;

    fn job(v: serde_json::Value) -> Job {
        match parse_value(&v) {
            ParseOutcome::Valid(j) => *j,
            other => panic!("{other:?}"),
        }
    }
    fn allow() -> Vec<String> {
        vec!["incoming".to_string()]
    }
    fn code(v: serde_json::Value) -> Option<ReasonCode> {
        check_job_rules(&job(v), &allow()).err().map(|r| r.code)
    }
    fn items(n: usize) -> serde_json::Value {
        json!((0..n)
            .map(|i| json!({"item_id": i.to_string(), "source": {"bucket": "incoming", "key": format!("k{i}")}}))
            .collect::<Vec<_>>())
    }

    #[test]
    fn a_good_job_passes() {
        assert_eq!(code(example()), None);
    }

    #[test]
    fn rule_2_item_count_fits_the_kind() {
        let mut v = example();
        v["items"] = items(9);
        assert_eq!(code(v.clone()), None);
        v["items"] = items(10);
        assert_eq!(code(v.clone()), Some(ReasonCode::JobTooManyItems));
        v["items"] = items(0);
        assert_eq!(code(v.clone()), Some(ReasonCode::JobNoItems));
        v["kind"] = json!("voice_note");
        assert_eq!(code(v.clone()), Some(ReasonCode::JobNoItems));
        v["items"] = items(1);
        assert_eq!(code(v.clone()), None);
        v["items"] = items(2);
        assert_eq!(code(v), Some(ReasonCode::JobTooManyItems));
    }

    #[test]
    fn rule_3_nobody_under_16() {
        let mut v = example();
        v["sender"]["age_band"] = json!("under_16");
        assert_eq!(code(v), Some(ReasonCode::PolicyUnder16));
        let mut v = example();
        v["recipients"][1]["age_band"] = json!("under_16");
        let r = check_job_rules(&job(v), &allow()).unwrap_err();
        assert_eq!(r.code, ReasonCode::PolicyUnder16);
        assert!(r.message.contains("a-3"), "{}", r.message);
    }

    #[test]
    fn rule_4_no_media_on_first_contact() {
        let mut v = example();
        v["message"]["first_contact"] = json!(true);
        assert_eq!(code(v), Some(ReasonCode::PolicyMediaFirstContact));
    }

    #[test]
    fn rule_5_source_bucket_allow_list() {
        let mut v = example();
        v["items"][0]["source"]["bucket"] = json!("media");
        let r = check_job_rules(&job(v.clone()), &allow()).unwrap_err();
        assert_eq!(r.code, ReasonCode::InputSourceNotAllowed);
        assert!(r.message.contains("\"media\""), "{}", r.message);
        assert!(check_job_rules(&job(v), &["incoming".into(), "media".into()]).is_ok());
    }

    #[test]
    fn rules_apply_in_contract_order() {
        // Every rule broken at once: rule 2 wins, then 3, then 4, then 5.
        let mut v = example();
        v["items"] = json!((0..10)
            .map(|i| json!({"item_id": i.to_string(), "source": {"bucket": "elsewhere", "key": "k"}}))
            .collect::<Vec<_>>());
        v["sender"]["age_band"] = json!("under_16");
        v["message"]["first_contact"] = json!(true);
        assert_eq!(code(v.clone()), Some(ReasonCode::JobTooManyItems));
        v["items"].as_array_mut().unwrap().truncate(1);
        assert_eq!(code(v.clone()), Some(ReasonCode::PolicyUnder16));
        v["sender"]["age_band"] = json!("adult");
        assert_eq!(code(v.clone()), Some(ReasonCode::PolicyMediaFirstContact));
        v["message"]["first_contact"] = json!(false);
        assert_eq!(code(v), Some(ReasonCode::InputSourceNotAllowed));
    }

    fn policy_for(sender: &str, recipients: serde_json::Value) -> Option<NudityPolicy> {
        let mut v = example();
        v["sender"]["age_band"] = json!(sender);
        v["recipients"] = recipients;
        nudity_policy(&job(v), Thresholds { minor: 0.5, adult: 0.8 })
    }

    #[test]
    fn nudity_filter_matrix() {
        let r = |band: &str, opt: bool| json!({"account_id": "r", "age_band": band, "nudity_filter": opt});
        // Adults without opt-in: no filter, model not run.
        assert_eq!(policy_for("adult", json!([r("adult", false)])), None);
        assert_eq!(policy_for("adult", json!([r("adult", false), r("adult", false)])), None);
        // 16–17 recipient: mandatory, minor threshold, whatever the field says.
        for opt in [false, true] {
            let p = policy_for("adult", json!([r("16_17", opt)])).unwrap();
            assert!(p.minor && !p.adult_opt_in);
            assert_eq!(p.threshold, 0.5);
        }
        // 16–17 sender.
        let p = policy_for("16_17", json!([r("adult", false)])).unwrap();
        assert_eq!(p.threshold, 0.5);
        // Opted-in adult recipient: adult threshold.
        let p = policy_for("adult", json!([r("adult", true)])).unwrap();
        assert!(!p.minor && p.adult_opt_in);
        assert_eq!(p.threshold, 0.8);
        // Mixed: strictest (lowest) wins.
        let p = policy_for("adult", json!([r("adult", true), r("16_17", false)])).unwrap();
        assert!(p.minor && p.adult_opt_in);
        assert_eq!(p.threshold, 0.5);
        // The sender's own opt-in field does not exist; a 16–17 sender with opted-in adults.
        let p = policy_for("16_17", json!([r("adult", true)])).unwrap();
        assert_eq!(p.threshold, 0.5);
    }

    #[test]
    fn lowest_threshold_wins_even_when_adult_is_configured_lower() {
        let mut v = example(); // has a 16_17 and an opted-in adult recipient
        v["sender"]["age_band"] = json!("adult");
        let p = nudity_policy(&job(v), Thresholds { minor: 0.6, adult: 0.3 }).unwrap();
        assert_eq!(p.threshold, 0.3);
    }
}
