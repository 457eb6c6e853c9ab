//! One job's journey: parse (rule 1) → rules 2–5 → items concurrently → manifest → verdict.

use std::sync::Arc;

use mediagate_contract::index::{Entry, Stamp};
use mediagate_contract::keys::manifest_key;
use mediagate_contract::verdict::VERDICT_SCHEMA;
use mediagate_contract::{
    check_job_rules, job_status, nudity_policy, ItemStatus, Job, JobStatus, Manifest, ParseOutcome, Reason, Verdict,
    WorkerInfo,
};
use mediagate_contract::{ItemId, JobId};
use tracing::{info, warn};

use crate::codes::Requeue;
use crate::item::{process_item, ItemCtx, ItemDone, QuarantineRef};
use crate::{Lane, Shared};

/// What the run loop does with a delivery once its job has been handled.
#[derive(Debug)]
pub enum Handled {
    /// Publish these escalations (each confirmed), then this verdict, then ack.
    Verdict {
        /// The job's verdict.
        verdict: Box<Verdict>,
        /// Its escalations (§8), published first.
        escalations: Vec<Escalation>,
    },
    /// A newer revision of this job is already stored (a stale reprocess job, or a redelivery
    /// that a later reprocess overtook): ack without touching outputs, manifest or verdicts, so
    /// an old revision never overwrites a newer one.
    Superseded {
        /// The job.
        job_id: JobId,
        /// This delivery's revision.
        revision: u64,
        /// The newer revision stored.
        stored_revision: u64,
    },
}

/// Runs one delivery to its verdict, storing outputs and the manifest on the way:
/// parse (rule 1) → supersession → rules 2–5 → items → escalations, status and manifest.
/// `Err(Requeue)` means nothing final was decided: the delivery goes back to the queue.
pub(crate) async fn handle_delivery(
    shared: Arc<Shared>,
    body: &[u8],
    amqp_message_id: Option<&str>,
    lane: Lane,
    redelivered: bool,
) -> Result<Handled, Requeue> {
    let parsed = Job::parse(body, amqp_message_id, shared.config.job_limits);
    let job = match parsed {
        ParseOutcome::Valid(job) => job,
        // Rule 1: a body that is not a valid job is rejected.
        ParseOutcome::Invalid { ref reason, .. } => {
            let verdict = unprocessed(&shared, body, &parsed, JobStatus::Rejected, reason.clone()).await?;
            return Ok(Handled::Verdict { verdict: Box::new(verdict), escalations: Vec::new() });
        }
    };
    let job_value = serde_json::from_slice::<serde_json::Value>(body)
        .map_err(|e| Requeue::internal(format!("re-reading a body that parsed once: {e}")))?;
    // Only a reprocess job or a redelivery can meet a newer stored revision; a live job's first
    // delivery skips the extra read.
    let stored = match may_be_superseded(job.reprocess, redelivered) {
        true => stored_manifest(&shared, &job.job_id).await?,
        false => None,
    };
    if let Some(stored_revision) =
        stored.as_ref().map(|m| m.verdict.revision).filter(|&stored| superseded(job.revision, stored))
    {
        return Ok(Handled::Superseded { job_id: job.job_id.clone(), revision: job.revision, stored_revision });
    }
    let mut verdict = Head::of_job(&job).verdict(&shared, JobStatus::Rejected, None);
    if let Err(reason) = check_job_rules(&job, &shared.config.source_buckets) {
        info!(job_id = %job.job_id, code = %reason.code, "job rejected by a job-level rule");
        verdict.reason = Some(reason);
        write_index_pointer(&shared, &job.job_id, &verdict).await?;
        write_manifest(&shared, &job.job_id, job_value, None, &verdict).await?;
        return Ok(Handled::Verdict { verdict: Box::new(verdict), escalations: Vec::new() });
    }
    let released = release_candidates(stored.as_ref(), job.reprocess);
    let fingerprint = mediagate_contract::review::job_sha256(&job_value);
    // The index pointer depends only on the job and this delivery's time: it is written while
    // the items run, so it costs no round trip of its own (§4; the entry follows it).
    let (pointer, done) = tokio::join!(
        write_index_pointer(&shared, &job.job_id, &verdict),
        run_items(&shared, &job, lane, redelivered, &verdict.processed_at, &released, &fingerprint)
    );
    pointer?;
    let done = done?;
    let escalations = done
        .iter()
        .filter_map(|d| escalation(&shared, &job, &verdict.processed_at, d).transpose())
        .collect::<Result<Vec<_>, _>>()?;
    verdict.items = done.into_iter().map(|d| d.verdict).collect();
    let statuses: Vec<ItemStatus> = verdict.items.iter().map(|i| i.status).collect();
    verdict.status = job_status(&statuses);
    write_manifest(&shared, &job.job_id, job_value, None, &verdict).await?;
    Ok(Handled::Verdict { verdict: Box::new(verdict), escalations })
}

/// The verdict of a body that is not processed — rule 1's rejection of an invalid job, or the
/// delivery limit's failure — with its manifest written when the body names a job id.
async fn unprocessed(
    shared: &Shared,
    body: &[u8],
    parsed: &ParseOutcome,
    status: JobStatus,
    reason: Reason,
) -> Result<Verdict, Requeue> {
    let job_bytes = match parsed {
        ParseOutcome::Invalid { job_bytes, .. } => *job_bytes,
        ParseOutcome::Valid(_) => None,
    };
    let verdict = Head::of(parsed).verdict(shared, status, Some(reason));
    if let Some(job_id) = &verdict.job_id {
        write_index_pointer(shared, job_id, &verdict).await?;
        write_manifest(shared, job_id, manifest_job(body, job_bytes), job_bytes, &verdict).await?;
    }
    Ok(verdict)
}

/// What a verdict says of its job, whether or not the body parsed as one.
pub(crate) struct Head {
    job_id: Option<JobId>,
    message_id: Option<String>,
    conversation_id: Option<String>,
    reprocess: bool,
    revision: u64,
}

impl Head {
    /// The head of a parsed body; of an invalid one, what could be read of it.
    pub(crate) fn of(parsed: &ParseOutcome) -> Head {
        match parsed {
            ParseOutcome::Valid(job) => Head::of_job(job),
            ParseOutcome::Invalid { job_id, message_id, conversation_id, reprocess, revision, .. } => Head {
                job_id: job_id.clone(),
                message_id: message_id.clone(),
                conversation_id: conversation_id.clone(),
                reprocess: *reprocess,
                revision: *revision,
            },
        }
    }

    /// The head of a valid job.
    pub(crate) fn of_job(job: &Job) -> Head {
        Head {
            job_id: Some(job.job_id.clone()),
            message_id: Some(job.message.message_id.clone()),
            conversation_id: Some(job.message.conversation_id.clone()),
            reprocess: job.reprocess,
            revision: job.revision,
        }
    }

    /// A verdict of this job, signed by this worker now.
    pub(crate) fn verdict(self, shared: &Shared, status: JobStatus, reason: Option<Reason>) -> Verdict {
        let Head { job_id, message_id, conversation_id, reprocess, revision } = self;
        Verdict { job_id, message_id, conversation_id, reprocess, revision, ..job_verdict(shared, status, reason) }
    }
}

/// The `failed` verdict of a job the broker dead-lettered after its delivery limit, with its
/// manifest written when the body names a job id (contract §5).
pub(crate) async fn dead_lettered(shared: &Shared, body: &[u8], message_id: Option<&str>) -> Result<Verdict, Requeue> {
    let parsed = Job::parse(body, message_id, shared.config.job_limits);
    unprocessed(shared, body, &parsed, JobStatus::Failed, crate::codes::delivery_limit()).await
}

/// The items whose moderators' decisions a job checks (§9): for a reprocess job (`review
/// release` publishes one), those its stored verdict blocked, and those released before — a
/// released item stays released in later reprocesses (a batch run with a new model must not
/// block it again). Every other job, and every other item, skips that read.
fn release_candidates(stored: Option<&Manifest>, reprocess: bool) -> Vec<ItemId> {
    match (stored, reprocess) {
        (Some(m), true) => m
            .verdict
            .items
            .iter()
            .filter(|i| i.status == ItemStatus::Blocked || i.review.is_some())
            .map(|i| i.item_id.clone())
            .collect(),
        _ => Vec::new(),
    }
}

/// Runs the job's items concurrently (the worker-wide slots bound the CPU and memory) and
/// returns their entries in the job's order; the first fault requeues the whole job.
async fn run_items(
    shared: &Arc<Shared>,
    job: &Job,
    lane: Lane,
    redelivered: bool,
    processed_at: &str,
    release_candidates: &[ItemId],
    fingerprint: &str,
) -> Result<Vec<ItemDone>, Requeue> {
    // Objects from an earlier delivery or revision may exist under the item's prefix: a
    // redelivery or a reprocess removes the ones its new verdict does not list.
    let tidy = redelivered || job.reprocess;
    // The filter decision is the contract crate's; the classifier only runs when it applies.
    let nudity = nudity_policy(job, shared.config.thresholds);
    let mut tasks = tokio::task::JoinSet::new();
    for (index, item) in job.items.iter().cloned().enumerate() {
        let ctx = ItemCtx {
            shared: shared.clone(),
            job_id: job.job_id.clone(),
            kind: job.kind,
            lane,
            tidy,
            nudity,
            revision: job.revision,
            processed_at: processed_at.to_string(),
            release_check: release_candidates.contains(&item.item_id).then(|| fingerprint.to_string()),
        };
        tasks.spawn(async move { (index, process_item(ctx, item).await) });
    }
    let mut items: Vec<Option<ItemDone>> = (0..job.items.len()).map(|_| None).collect();
    let mut requeue = None;
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok((index, Ok(item))) => items[index] = Some(item),
            Ok((_, Err(t))) => requeue = Some(t),
            Err(e) => requeue = Some(Requeue::internal(format!("an item task failed: {e}"))),
        }
    }
    match requeue {
        Some(t) => Err(t),
        None => Ok(items.into_iter().flatten().collect()),
    }
}

/// An escalation to publish before the verdict (§8), de-duplicated by its `message_id`.
#[derive(Debug)]
pub struct Escalation {
    /// `{job_id}/{item_id}/{sha256}`: the same for every delivery and revision of that file in
    /// that job.
    pub message_id: String,
    /// The job it came from (its `correlation_id`).
    pub job_id: JobId,
    /// `mediagate.escalation.v1` JSON.
    pub body: Vec<u8>,
}

/// `mediagate.escalation.v1` (§8): who sent what to whom, which bank entry it matched and
/// where the evidence is.
#[derive(serde::Serialize)]
struct EscalationBody<'a> {
    schema: &'static str,
    job_id: &'a str,
    item_id: &'a str,
    revision: u64,
    message_id: &'a str,
    conversation_id: &'a str,
    sender: &'a mediagate_contract::Party,
    recipients: &'a [mediagate_contract::Recipient],
    #[serde(rename = "match")]
    hash_match: &'a mediagate_contract::HashMatch,
    hashes: &'a mediagate_contract::Hashes,
    quarantine: Option<&'a QuarantineRef>,
    at: &'a str,
    worker: WorkerInfo,
}

/// The schema tag of an escalation.
pub(crate) const ESCALATION_SCHEMA: &str = "mediagate.escalation.v1";

/// The escalation of an item a bank matched; `None` for every other item.
fn escalation(shared: &Shared, job: &Job, at: &str, done: &ItemDone) -> Result<Option<Escalation>, Requeue> {
    let item = &done.verdict;
    let (Some(hash_match), Some(hashes)) = (&item.hash_match, &item.hashes) else { return Ok(None) };
    if item.status != ItemStatus::Blocked || item.review.is_some() {
        return Ok(None);
    }
    let body = EscalationBody {
        schema: ESCALATION_SCHEMA,
        job_id: &job.job_id,
        item_id: &item.item_id,
        revision: job.revision,
        message_id: &job.message.message_id,
        conversation_id: &job.message.conversation_id,
        sender: &job.sender,
        recipients: &job.recipients,
        hash_match,
        hashes,
        quarantine: done.quarantine.as_ref(),
        at,
        worker: WorkerInfo { id: shared.config.worker_id.clone(), version: shared.config.version.clone() },
    };
    let body = serde_json::to_vec(&body).map_err(|e| Requeue::internal(format!("serialising an escalation: {e}")))?;
    Ok(Some(Escalation {
        message_id: format!("{}/{}/{}", job.job_id, item.item_id, hashes.sha256),
        job_id: job.job_id.clone(),
        body,
    }))
}

/// The job's stored manifest; `None` when there is none, or when it cannot be read as a manifest
/// (then the job is processed and its manifest rewritten).
async fn stored_manifest(shared: &Shared, job_id: &JobId) -> Result<Option<Manifest>, Requeue> {
    let bucket = &shared.config.manifest_bucket;
    let key = manifest_key(job_id);
    // Manifests are small; a huge object under that key is not one of ours. A local run
    // (`inspect`) keeps none, so it finds none.
    match shared.storage.get_record(bucket, &key, 64 * 1024 * 1024).await {
        Ok(None) => Ok(None),
        Ok(Some(bytes)) => match serde_json::from_slice::<Manifest>(&bytes) {
            Ok(m) => Ok(Some(m)),
            Err(e) => {
                warn!(%bucket, %key, error = %e, "stored manifest does not parse; processing the job");
                Ok(None)
            }
        },
        Err(mediagate_store::StoreError::TooLarge { .. }) => Ok(None),
        Err(e) => Err(Requeue::storage(format!("reading s3://{bucket}/{key}: {e}"))),
    }
}

/// A verdict skeleton with this worker's identity and the current time.
pub(crate) fn job_verdict(shared: &Shared, status: JobStatus, reason: Option<Reason>) -> Verdict {
    Verdict {
        schema: VERDICT_SCHEMA.to_string(),
        job_id: None,
        message_id: None,
        conversation_id: None,
        status,
        reason,
        reprocess: false,
        revision: 0,
        items: Vec::new(),
        processed_at: now_rfc3339(),
        worker: WorkerInfo { id: shared.config.worker_id.clone(), version: shared.config.version.clone() },
    }
}

/// The `job` a manifest keeps of a body that did not parse as a job: the JSON itself, the raw
/// body as a string when it is not JSON, or `null` when it was over a §2 limit (`job_bytes`).
pub(crate) fn manifest_job(body: &[u8], job_bytes: Option<u64>) -> serde_json::Value {
    match job_bytes {
        Some(_) => serde_json::Value::Null,
        None => serde_json::from_slice::<serde_json::Value>(body)
            .unwrap_or_else(|_| serde_json::Value::String(String::from_utf8_lossy(body).into_owned())),
    }
}

/// `manifests/{job_id}.json` and its index entry (§4), side by side: written before the
/// verdict is published, so a consumer that sees a verdict can always find its manifest. The
/// entry's pointer must already be stored ([`write_index_pointer`]).
pub(crate) async fn write_manifest(
    shared: &Shared,
    job_id: &JobId,
    job: serde_json::Value,
    job_bytes: Option<u64>,
    verdict: &Verdict,
) -> Result<(), Requeue> {
    let manifest = Manifest { job, job_bytes, verdict: verdict.clone() };
    let body =
        serde_json::to_vec(&manifest).map_err(|e| Requeue::internal(format!("serialising the manifest: {e}")))?;
    let entry = index_entry(job_id, verdict)?;
    let _timer = crate::metrics::StageTimer::start(&shared.metrics, crate::metrics::label::Timed::Manifest);
    let (manifest, entry) = tokio::join!(
        put_record(shared, manifest_key(job_id), body.into(), "application/json"),
        put_record(shared, entry.key(), bytes::Bytes::new(), "application/octet-stream"),
    );
    manifest.and(entry)
}

/// The index pointer of this delivery's verdict (§4): stored before its entry, so that every
/// entry `erase` must delete can be found from the job id.
pub(crate) async fn write_index_pointer(shared: &Shared, job_id: &JobId, verdict: &Verdict) -> Result<(), Requeue> {
    let entry = index_entry(job_id, verdict)?;
    put_record(shared, entry.pointer_key(), bytes::Bytes::new(), "application/octet-stream").await
}

/// The index entry of a verdict (its status is only read for the entry's key, not the pointer's).
fn index_entry(job_id: &JobId, verdict: &Verdict) -> Result<Entry, Requeue> {
    let stamp = Stamp::parse_rfc3339(&verdict.processed_at)
        .ok_or_else(|| Requeue::internal(format!("processed_at {:?} is not RFC 3339", verdict.processed_at)))?;
    Ok(Entry { stamp, job_id: job_id.clone(), revision: verdict.revision, status: verdict.status })
}

/// Writes a record to the manifest bucket (a manifest or an index object).
async fn put_record(shared: &Shared, key: String, body: bytes::Bytes, content_type: &str) -> Result<(), Requeue> {
    let bucket = &shared.config.manifest_bucket;
    // A local run (`inspect`) keeps no records (its verdict is printed): nothing is written.
    shared.storage.put_record(bucket, &key, body, content_type).await.map(|_| ()).map_err(|e| {
        warn!(%bucket, %key, error = %e, "manifest or index write failed");
        Requeue::storage(format!("writing s3://{bucket}/{key}: {e}"))
    })
}

/// RFC 3339 UTC with second precision, as in the contract's example.
fn now_rfc3339() -> String {
    let now = time::OffsetDateTime::now_utc().replace_nanosecond(0).unwrap_or_else(|_| time::OffsetDateTime::now_utc());
    now.format(&time::format_description::well_known::Rfc3339).unwrap_or_else(|_| "1970-01-01T00:00:00Z".to_string())
}

/// Only a reprocess job or a redelivery can meet a newer stored revision of itself; a live job's
/// first delivery skips the extra manifest read.
fn may_be_superseded(reprocess: bool, redelivered: bool) -> bool {
    reprocess || redelivered
}

/// A job of `revision` is superseded when a strictly newer revision is stored: an equal one is
/// this job's own earlier delivery, redone idempotently.
fn superseded(revision: u64, stored: u64) -> bool {
    stored > revision
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(items: &[(&str, ItemStatus, bool)]) -> Manifest {
        let worker = WorkerInfo { id: "w".into(), version: "v".into() };
        let items = items
            .iter()
            .map(|&(id, status, released)| mediagate_contract::ItemVerdict {
                status,
                review: released.then(|| mediagate_contract::ReviewNote {
                    decision: "released".into(),
                    by: "m".into(),
                    at: "2026-01-01T00:00:00Z".into(),
                    note: None,
                }),
                ..mediagate_contract::ItemVerdict::rejected(
                    &id.into(),
                    None,
                    Reason::new(mediagate_contract::ReasonCode::InputCorrupt, "x"),
                )
            })
            .collect();
        let verdict = Verdict {
            schema: VERDICT_SCHEMA.into(),
            job_id: Some("j".into()),
            message_id: None,
            conversation_id: None,
            status: JobStatus::Partial,
            reason: None,
            reprocess: false,
            revision: 0,
            items,
            processed_at: "2026-01-01T00:00:00Z".into(),
            worker,
        };
        Manifest { job: serde_json::Value::Null, job_bytes: None, verdict }
    }

    #[test]
    fn a_reprocess_job_checks_the_decisions_of_its_blocked_and_released_items_only() {
        let m = manifest(&[
            ("0", ItemStatus::Cleared, false),
            ("1", ItemStatus::Blocked, false),
            ("2", ItemStatus::Cleared, true),
            ("3", ItemStatus::Rejected, false),
        ]);
        assert_eq!(release_candidates(Some(&m), true), vec!["1", "2"]);
        assert!(release_candidates(Some(&m), false).is_empty(), "a live job checks no decision");
        assert!(release_candidates(None, true).is_empty());
    }

    #[test]
    fn only_a_newer_stored_revision_supersedes_a_job() {
        assert!(superseded(0, 1));
        assert!(!superseded(1, 1), "the same revision again is a redelivery, redone");
        assert!(!superseded(2, 1));
    }

    // Whether a live first delivery reads the manifest is tested on the job path itself:
    // tests/job_path.rs, `a_live_first_delivery_never_reads_the_manifest_first`.
}
