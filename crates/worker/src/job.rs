//! One job's journey: parse (rule 1) → rules 2–5 → items concurrently → manifest → verdict.

use std::sync::Arc;

use mediagate_contract::keys::manifest_key;
use mediagate_contract::verdict::VERDICT_SCHEMA;
use mediagate_contract::{
    check_job_rules, job_status, nudity_policy, ItemStatus, Job, JobStatus, Manifest, ParseOutcome, Reason, Verdict,
    WorkerInfo,
};
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
        job_id: String,
        /// This delivery's revision.
        revision: u64,
        /// The newer revision stored.
        stored_revision: u64,
    },
}

/// Runs one delivery to its verdict, storing outputs and the manifest on the way.
/// `Err(Requeue)` means nothing final was decided: the delivery goes back to the queue.
pub(crate) async fn handle_delivery(
    shared: Arc<Shared>,
    body: &[u8],
    amqp_message_id: Option<&str>,
    lane: Lane,
    redelivered: bool,
) -> Result<Handled, Requeue> {
    let job = match Job::parse(body, amqp_message_id, shared.config.job_limits) {
        ParseOutcome::Valid(job) => job,
        ParseOutcome::Invalid { job_id, message_id, conversation_id, reprocess, revision, reason, job_bytes } => {
            let verdict = Verdict {
                job_id: job_id.clone(),
                message_id,
                conversation_id,
                reprocess,
                revision,
                ..job_verdict(&shared, JobStatus::Rejected, Some(reason))
            };
            if let Some(job_id) = &job_id {
                write_manifest(&shared, job_id, manifest_job(body, job_bytes), job_bytes, &verdict).await?;
            }
            return Ok(Handled::Verdict { verdict: Box::new(verdict), escalations: Vec::new() });
        }
    };
    let job_value = serde_json::from_slice::<serde_json::Value>(body)
        .map_err(|e| Requeue::internal(format!("re-reading a body that parsed once: {e}")))?;
    // Only a reprocess job or a redelivery can meet a newer stored revision; a live job's first
    // delivery skips the extra read.
    let mut stored = None;
    if may_be_superseded(job.reprocess, redelivered) {
        stored = stored_manifest(&shared, &job.job_id).await?;
        if let Some(stored_revision) =
            stored.as_ref().map(|m| m.verdict.revision).filter(|&stored| superseded(job.revision, stored))
        {
            return Ok(Handled::Superseded { job_id: job.job_id.clone(), revision: job.revision, stored_revision });
        }
    }
    // A reprocess job (`review release` publishes one) checks the moderators' decisions of the
    // items its stored verdict blocked; every other item, and every other job, skips that read.
    let blocked_before: Vec<String> = match (&stored, job.reprocess) {
        (Some(m), true) => m
            .verdict
            .items
            .iter()
            // A released item stays released in later reprocesses (a batch run with a new model
            // must not block it again), so its decision is read again too.
            .filter(|i| i.status == ItemStatus::Blocked || i.review.is_some())
            .map(|i| i.item_id.clone())
            .collect(),
        _ => Vec::new(),
    };
    let job_fingerprint = mediagate_contract::review::job_sha256(&job_value);

    let mut verdict = Verdict {
        job_id: Some(job.job_id.clone()),
        message_id: Some(job.message.message_id.clone()),
        conversation_id: Some(job.message.conversation_id.clone()),
        reprocess: job.reprocess,
        revision: job.revision,
        ..job_verdict(&shared, JobStatus::Rejected, None)
    };
    if let Err(reason) = check_job_rules(&job, &shared.config.source_buckets) {
        info!(job_id = %job.job_id, code = %reason.code, "job rejected by a job-level rule");
        verdict.reason = Some(reason);
        write_manifest(&shared, &job.job_id, job_value, None, &verdict).await?;
        return Ok(Handled::Verdict { verdict: Box::new(verdict), escalations: Vec::new() });
    }

    // Items of one job run concurrently; the worker-wide slots bound the CPU and memory.
    // Objects from an earlier delivery or revision may exist under the item's prefix: a
    // redelivery or a reprocess removes the ones its new verdict does not list.
    let tidy = redelivered || job.reprocess;
    // The filter decision is the contract crate's; the classifier only runs when it applies.
    let nudity = nudity_policy(&job, shared.config.thresholds);
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
            processed_at: verdict.processed_at.clone(),
            release_check: blocked_before.contains(&item.item_id).then(|| job_fingerprint.clone()),
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
    if let Some(t) = requeue {
        return Err(t);
    }
    let done: Vec<ItemDone> = items.into_iter().flatten().collect();
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

/// An escalation to publish before the verdict (§8), de-duplicated by its `message_id`.
#[derive(Debug)]
pub struct Escalation {
    /// `{job_id}/{item_id}/{sha256}`: the same for every delivery and revision of that file in
    /// that job.
    pub message_id: String,
    /// The job it came from (its `correlation_id`).
    pub job_id: String,
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
async fn stored_manifest(shared: &Shared, job_id: &str) -> Result<Option<Manifest>, Requeue> {
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

/// `manifests/{job_id}.json`: written before the verdict is published, so a consumer that
/// sees a verdict can always find its manifest.
pub(crate) async fn write_manifest(
    shared: &Shared,
    job_id: &str,
    job: serde_json::Value,
    job_bytes: Option<u64>,
    verdict: &Verdict,
) -> Result<(), Requeue> {
    let manifest = Manifest { job, job_bytes, verdict: verdict.clone() };
    let body =
        serde_json::to_vec(&manifest).map_err(|e| Requeue::internal(format!("serialising the manifest: {e}")))?;
    let bucket = &shared.config.manifest_bucket;
    let key = manifest_key(job_id);
    let _timer = crate::metrics::StageTimer::start("manifest", "job");
    // A local run (`inspect`) keeps no manifest (its verdict is printed): nothing is written.
    shared.storage.put_record(bucket, &key, body.into(), "application/json").await.map_err(|e| {
        warn!(%bucket, %key, error = %e, "manifest write failed");
        Requeue::storage(format!("writing s3://{bucket}/{key}: {e}"))
    })?;
    Ok(())
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

    #[test]
    fn only_a_newer_stored_revision_supersedes_a_job() {
        assert!(superseded(0, 1));
        assert!(!superseded(1, 1), "the same revision again is a redelivery, redone");
        assert!(!superseded(2, 1));
    }

    // Whether a live first delivery reads the manifest is tested on the job path itself:
    // tests/job_path.rs, `a_live_first_delivery_never_reads_the_manifest_first`.
}
