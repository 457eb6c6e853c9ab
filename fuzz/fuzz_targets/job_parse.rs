//! Rule 1 (job parsing with id salvage), rules 2–5 and the nudity-filter decision on arbitrary
//! job bodies. Nothing here may panic, and the contract's invariants must hold on every outcome:
//! an id that reaches a verdict or an S3 key is always a valid identifier.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mediagate_contract::settings::{MAX_CAPTION_CHARS, MAX_MEDIA_ITEMS};
use mediagate_contract::{
    check_job_rules, is_valid_id, keys, nudity_policy, AgeBand, Job, JobKind, JobLimits, ParseOutcome, ReasonCode, Thresholds,
};

fn valid_or_none(id: &Option<String>) -> bool {
    id.as_deref().is_none_or(is_valid_id)
}

fuzz_target!(|data: &[u8]| {
    match Job::parse(data, None, JobLimits::DEFAULT) {
        ParseOutcome::Valid(job) => {
            let job = *job;
            assert_eq!(job.schema, "mediagate.job.v1");
            for id in [&job.job_id, &job.message.message_id, &job.message.conversation_id, &job.sender.account_id] {
                assert!(is_valid_id(id), "valid job carries invalid id {id:?}");
            }
            assert!(!job.recipients.is_empty());
            assert!(job.recipients.iter().all(|r| is_valid_id(&r.account_id)));
            let mut ids: Vec<&str> = job.items.iter().map(|i| i.item_id.as_str()).collect();
            assert!(ids.iter().all(|id| is_valid_id(id)));
            ids.sort_unstable();
            ids.dedup();
            assert_eq!(ids.len(), job.items.len(), "duplicate item ids in a valid job");
            if let Some(c) = &job.caption {
                assert!(c.chars().count() <= MAX_CAPTION_CHARS);
            }

            // Keys built from a valid job stay inside the job's own prefix: no empty, `.` or `..`
            // path segment, and exactly the segments the layout has (`3j..json` is a fine name).
            let segments_ok = |key: &str, n: usize| {
                let segs: Vec<&str> = key.split('/').collect();
                segs.len() == n && segs.iter().all(|s| !s.is_empty() && *s != "." && *s != "..")
            };
            let manifest = keys::manifest_key(&job.job_id);
            assert!(segments_ok(&manifest, 2), "manifest key {manifest:?} escapes its prefix");
            for item in &job.items {
                let key = keys::output_key(&job.job_id, &item.item_id, "full", "jpg");
                assert!(key.starts_with(&format!("media/{}/", job.job_id)));
                assert!(segments_ok(&key, 4), "output key {key:?} escapes its prefix");
                let q = keys::quarantine_original_key(&job.job_id, &item.item_id, "jpg");
                assert!(segments_ok(&q, 3), "quarantine key {q:?} escapes its prefix");
            }

            let rules = check_job_rules(&job, &["incoming".into()]);
            match &rules {
                Ok(()) => {
                    // A job that passed rules 2–5 fits its kind and has nobody under 16.
                    let n = job.items.len();
                    match job.kind {
                        JobKind::Media => assert!((1..=MAX_MEDIA_ITEMS).contains(&n)),
                        JobKind::VoiceNote => assert_eq!(n, 1),
                    }
                    assert!(job.age_bands().all(|b| b != AgeBand::Under16));
                    assert!(job.items.iter().all(|i| i.source.bucket == "incoming"));
                }
                Err(reason) => assert!(!reason.message.is_empty()),
            }

            let thresholds = Thresholds::default();
            let policy = nudity_policy(&job, thresholds);
            let minor = job.age_bands().any(|b| b == AgeBand::Age16To17);
            if minor {
                // For a 16–17 recipient (or sender) the filter is mandatory.
                let p = policy.expect("a 16-17 participant must switch the nudity filter on");
                assert!(p.minor);
                assert!(p.threshold <= thresholds.minor);
            }
            if let Some(p) = policy {
                assert!(p.threshold.is_finite() && p.threshold > 0.0 && p.threshold <= 1.0);
            }
            let _ = format!("{job:?} {rules:?} {policy:?}");
        }
        ParseOutcome::Invalid { job_id, message_id, conversation_id, reason, .. } => {
            assert!(valid_or_none(&job_id), "salvaged job_id {job_id:?} is not a valid id");
            assert!(valid_or_none(&message_id), "salvaged message_id {message_id:?} is not a valid id");
            assert!(valid_or_none(&conversation_id), "salvaged conversation_id {conversation_id:?} is not a valid id");
            assert_eq!(reason.code, ReasonCode::JobInvalid);
            assert!(!reason.message.is_empty());
        }
    }
});
