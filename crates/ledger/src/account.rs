//! The accounting: a pure function from what was recorded to the counts and findings of the
//! [`Report`], plus the list of verdicts whose stored results the S3 step must check. No I/O
//! here, so every rule is unit-tested on synthetic records (`account_tests.rs`).

use std::collections::BTreeMap;

use crate::records::{OutputRef, PubState, Records, SeenVerdict};
use crate::Report;

/// The job status the dead-letter consumer gives a job after its delivery limit.
const FAILED: &str = "failed";
/// The reason code of such a verdict.
const DELIVERY_LIMIT: &str = "internal.delivery_limit";

/// A verdict whose stored manifest and outputs the S3 step must check (check 3): the first
/// verdict of a job's highest revision, when its status is not `failed`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct StoredCheck {
    pub job_id: String,
    pub revision: u64,
    pub status: String,
    pub outputs: Vec<OutputRef>,
}

/// The accounting's result: the report so far (queues and S3 not yet looked at) and what S3
/// must hold.
#[derive(Debug, Default)]
pub(crate) struct Accounting {
    pub report: Report,
    pub stored: Vec<StoredCheck>,
}

/// Accounts for every job in `rec` (checks 1, 2 and 4 of the brief; 3 is prepared as
/// [`Accounting::stored`]).
pub(crate) fn account(rec: &Records) -> Accounting {
    let mut acc = Accounting::default();
    // Check 4: verdicts of other producers' jobs count as received and are otherwise ignored.
    acc.report.verdicts = rec.verdicts.len() as u64;
    for job in rec.known_jobs() {
        account_job(rec, job, &mut acc);
    }
    acc
}

fn account_job(rec: &Records, job: &str, acc: &mut Accounting) {
    let r = &mut acc.report;
    let publishes = rec.published.get(job);
    let mut owed_here = false;
    for (rev, p) in publishes.into_iter().flatten() {
        match p.state() {
            PubState::Confirmed => {
                r.published += 1;
                r.confirmed += 1;
                owed_here = true;
            }
            PubState::Returned => {
                r.published += 1;
                r.returned += 1;
            }
            PubState::InFlight => r
                .problems
                .push(format!("job {job} rev {rev}: settled while its publish was still waiting for a confirm")),
            PubState::Failed => r.notes.push(format!(
                "job {job} rev {rev}: never confirmed ({} attempts gave up); not counted as published",
                p.failed
            )),
        }
    }
    let expected = rec.expected.get(job);
    owed_here |= expected.is_some_and(|e| !e.is_empty());

    // Group this job's verdicts by revision, in arrival order.
    let mut by_rev: BTreeMap<u64, Vec<&SeenVerdict>> = BTreeMap::new();
    for v in rec.verdicts_of(job) {
        if let Some(why) = &v.malformed {
            r.problems.push(format!("job {job}: a verdict that is not a verdict object ({why})"));
            continue;
        }
        match v.revision {
            Some(rev) => by_rev.entry(rev).or_default().push(v),
            None => r.problems.push(format!("job {job}: a verdict without a numeric revision")),
        }
    }

    // Check 2: repeated verdicts of one revision agree on status and outputs.
    for (rev, vs) in &by_rev {
        let Some((first, rest)) = vs.split_first() else { continue };
        r.duplicates += rest.len() as u64;
        for again in rest {
            if let Some(diff) = differs(first, again) {
                r.problems.push(format!("job {job} rev {rev}: repeated verdicts differ ({diff})"));
            }
        }
    }

    // Check 1: the highest owed revision has a verdict; lower ones without one were superseded.
    let Some(top) = rec.highest_owed(job) else { return };
    let published_revs = publishes
        .into_iter()
        .flatten()
        .filter(|(_, p)| matches!(p.state(), PubState::Confirmed | PubState::InFlight))
        .map(|(rev, _)| *rev);
    let mut owed: Vec<u64> = published_revs.chain(expected.into_iter().flatten().copied()).collect();
    owed.sort_unstable();
    owed.dedup();
    r.superseded += owed.iter().filter(|&&rev| rev < top && !by_rev.contains_key(&rev)).count() as u64;

    let Some(first) = by_rev.get(&top).and_then(|vs| vs.first()) else {
        if owed_here {
            r.lost += 1;
            r.problems.push(format!("job {job}: LOST, no verdict for its highest revision {top}"));
        }
        return;
    };
    let Some(status) = first.status.as_deref() else {
        r.problems.push(format!("job {job} rev {top}: the verdict has no status"));
        return;
    };
    *r.by_status.entry(status.to_owned()).or_default() += 1;
    if status == FAILED {
        if first.reason_code.as_deref() == Some(DELIVERY_LIMIT) {
            r.failed += 1;
        }
        return;
    }
    acc.stored.push(StoredCheck {
        job_id: job.to_owned(),
        revision: top,
        status: status.to_owned(),
        outputs: first.outputs.clone(),
    });
}

/// How two verdicts of one `(job, revision)` differ, if they do.
fn differs(a: &SeenVerdict, b: &SeenVerdict) -> Option<String> {
    if a.status != b.status {
        return Some(format!("status {:?} then {:?}", a.status, b.status));
    }
    let x: Vec<_> = a.outputs.iter().map(OutputRef::identity).collect();
    let y: Vec<_> = b.outputs.iter().map(OutputRef::identity).collect();
    if x == y {
        return None;
    }
    let only_first: Vec<String> = x.iter().filter(|o| !y.contains(o)).map(|o| describe(*o)).collect();
    let only_second: Vec<String> = y.iter().filter(|o| !x.contains(o)).map(|o| describe(*o)).collect();
    Some(format!(
        "outputs only in the first: [{}]; only in the repeat: [{}]",
        only_first.join(", "),
        only_second.join(", ")
    ))
}

fn describe((item, variant, key, sha): (&str, &str, &str, &str)) -> String {
    let short = sha.get(..12).unwrap_or(sha);
    format!("{item}/{variant} {key} sha256 {short}…")
}

#[cfg(test)]
#[path = "account_tests.rs"]
mod tests;
