//! `mediagate review`: a moderator's decisions on blocked items (contract §9).
//!
//! Decisions are append-only files beside the quarantined original,
//! `{job_id}/{item_id}/review/{at}.json`; the latest counts. A release binds itself to the file
//! and the job it was made on (`sha256`, `job_sha256`) and republishes the job on the live lane;
//! the worker clears the item from its quarantined original only while both still hold. A
//! confirm writes the item's hashes into the `confirmed` bank, which every worker loads.
//!
//! Exit status: 0 on success (a repeated decision that changes nothing included), 1 on an error
//! (no quarantine bucket, unknown job or item, an item that is not blocked, a confirmed item to
//! release, storage or broker unreachable), 2 on bad usage. Nothing is written when the checks
//! fail.

use std::process::ExitCode;

use anyhow::{Context, Result};
use mediagate_contract::keys::{manifest_key, quarantine_verdict_key};
use mediagate_contract::review::{
    confirmed_bank_key, decision_key, job_sha256, latest_decision_key, quarantine_item_prefix, Decision, DecisionKind,
};
use mediagate_contract::{is_valid_id, ItemId, ItemStatus, ItemVerdict, JobId, Manifest};
use mediagate_queue::{names, Broker};
use mediagate_store::{Store, StoreError};
use serde::Deserialize;
use sha2::Digest as _;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::cli::{Common, DecideArgs, ReviewCommand, ReviewListArgs};

const EXIT_ERROR: u8 = 1;
const EXIT_USAGE: u8 = 2;

/// `{job_id}/{item_id}/verdict.json` in the quarantine bucket (§4).
#[derive(Debug, Deserialize)]
struct Quarantined {
    job_id: String,
    revision: u64,
    processed_at: String,
    item: ItemVerdict,
}

pub async fn run(common: &Common, cmd: ReviewCommand) -> Result<ExitCode> {
    let Some(quarantine) = Some(common.quarantine_bucket.trim()).filter(|b| !b.is_empty()).map(str::to_owned) else {
        eprintln!(
            "mediagate review: no quarantine bucket is configured (MEDIAGATE_QUARANTINE_BUCKET): nothing to review"
        );
        return Ok(ExitCode::from(EXIT_ERROR));
    };
    let store = Store::connect(&crate::store_config(common)).await.context("configuring S3")?;
    match cmd {
        ReviewCommand::List(args) => list(&store, &quarantine, args).await,
        ReviewCommand::Release(args) => decide(common, &store, &quarantine, DecisionKind::Released, args).await,
        ReviewCommand::Confirm(args) => decide(common, &store, &quarantine, DecisionKind::Confirmed, args).await,
    }
}

/// A refusal: the message and the exit status, nothing written.
fn refuse(code: u8, message: impl std::fmt::Display) -> Result<ExitCode> {
    eprintln!("mediagate review: {message}");
    Ok(ExitCode::from(code))
}

/// An object's bytes, `None` when it does not exist.
pub(crate) async fn get_opt(store: &Store, bucket: &str, key: &str) -> Result<Option<Vec<u8>>> {
    match store.get(bucket, key).await {
        Ok(b) => Ok(Some(b)),
        Err(StoreError::NotFound { .. }) => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading s3://{bucket}/{key}")),
    }
}

/// What a decision is made on, once every check has passed.
struct Subject {
    manifest: Manifest,
    quarantined: Quarantined,
    original_key: String,
    original_sha256: String,
    latest: Option<Decision>,
}

/// Reads and checks what a decision needs: the job's manifest, the item's blocked verdict entry
/// and quarantined original, and its latest decision. `Err(code)` after printing why.
async fn subject(
    common: &Common,
    store: &Store,
    quarantine: &str,
    job_id: &JobId,
    item_id: &ItemId,
) -> Result<std::result::Result<Subject, u8>> {
    let manifest_bucket = crate::manifest_bucket(common);
    let Some(bytes) = get_opt(store, &manifest_bucket, &manifest_key(job_id)).await? else {
        eprintln!("mediagate review: no job {job_id}: s3://{manifest_bucket}/{} does not exist", manifest_key(job_id));
        return Ok(Err(EXIT_ERROR));
    };
    let manifest: Manifest =
        serde_json::from_slice(&bytes).with_context(|| format!("the manifest of {job_id} does not parse"))?;
    let Some(entry) = get_opt(store, quarantine, &quarantine_verdict_key(job_id, item_id)).await? else {
        eprintln!(
            "mediagate review: item {item_id} of job {job_id} was never blocked (no s3://{quarantine}/{})",
            quarantine_verdict_key(job_id, item_id)
        );
        return Ok(Err(EXIT_ERROR));
    };
    let quarantined: Quarantined = serde_json::from_slice(&entry)
        .with_context(|| format!("s3://{quarantine}/{} does not parse", quarantine_verdict_key(job_id, item_id)))?;
    if quarantined.item.status != ItemStatus::Blocked {
        eprintln!("mediagate review: item {item_id} of job {job_id} is not blocked");
        return Ok(Err(EXIT_ERROR));
    }
    let prefix = quarantine_item_prefix(job_id, item_id);
    let keys =
        store.list_keys(quarantine, &prefix).await.with_context(|| format!("listing s3://{quarantine}/{prefix}"))?;
    let original = format!("{prefix}original.");
    let Some(original_key) = keys.iter().find(|k| k.starts_with(&original)).cloned() else {
        eprintln!(
            "mediagate review: the quarantined original of {job_id}/{item_id} is gone (s3://{quarantine}/{original}*)"
        );
        return Ok(Err(EXIT_ERROR));
    };
    let latest = match latest_decision_key(keys.iter().map(String::as_str)) {
        Some(key) => {
            let bytes = store.get(quarantine, key).await.with_context(|| format!("reading s3://{quarantine}/{key}"))?;
            Some(
                serde_json::from_slice::<Decision>(&bytes)
                    .with_context(|| format!("s3://{quarantine}/{key} does not parse"))?,
            )
        }
        None => None,
    };
    let bytes = store
        .get(quarantine, &original_key)
        .await
        .with_context(|| format!("reading s3://{quarantine}/{original_key}"))?;
    let original_sha256 = hex::encode(sha2::Sha256::digest(&bytes));
    Ok(Ok(Subject { manifest, quarantined, original_key, original_sha256, latest }))
}

/// Now, RFC 3339 UTC with milliseconds: a decision's `at` and its file name (names sort by time).
fn now_ms() -> String {
    let fmt = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");
    OffsetDateTime::now_utc().format(&fmt).unwrap_or_else(|_| "1970-01-01T00:00:00.000Z".to_string())
}

async fn decide(
    common: &Common,
    store: &Store,
    quarantine: &str,
    kind: DecisionKind,
    args: DecideArgs,
) -> Result<ExitCode> {
    for (what, id) in [("JOB_ID", &args.job_id), ("ITEM_ID", &args.item_id), ("--by", &args.by)] {
        if !is_valid_id(id) {
            return refuse(
                EXIT_USAGE,
                format!("{what} {id:?} is not an identifier ([A-Za-z0-9._-]{{1,128}}, not starting with `.`)"),
            );
        }
    }
    // Both checked just above.
    let (job_id, item_id) = (&JobId::from(args.job_id.as_str()), &ItemId::from(args.item_id.as_str()));
    let s = match subject(common, store, quarantine, job_id, item_id).await? {
        Ok(s) => s,
        Err(code) => return Ok(ExitCode::from(code)),
    };
    let in_manifest = s.manifest.verdict.items.iter().find(|i| i.item_id == *item_id);
    let latest = s.latest.as_ref().map(|d| d.decision);
    match kind {
        DecisionKind::Released => {
            if latest == Some(DecisionKind::Confirmed) {
                return refuse(
                    EXIT_ERROR,
                    format!("{job_id}/{item_id} was confirmed as harmful; a confirmed item cannot be released"),
                );
            }
            match in_manifest {
                Some(i) if i.status == ItemStatus::Cleared && i.review.is_some() => {
                    println!("{job_id}/{item_id} is already released and cleared; nothing published");
                    return Ok(ExitCode::SUCCESS);
                }
                Some(i) if i.status == ItemStatus::Blocked => {}
                Some(i) => {
                    let status = serde_json::to_value(i.status).unwrap_or_default();
                    return refuse(EXIT_ERROR, format!("{job_id}/{item_id} is {status} in the job's latest verdict, not blocked: nothing to release"));
                }
                None => return refuse(EXIT_ERROR, format!("job {job_id} has no item {item_id} in its latest verdict")),
            }
        }
        DecisionKind::Confirmed => {
            if latest == Some(DecisionKind::Confirmed) {
                println!("{job_id}/{item_id} is already confirmed; nothing changed");
                return Ok(ExitCode::SUCCESS);
            }
        }
    }
    let Some(job) = s.manifest.republished() else {
        return refuse(EXIT_ERROR, format!("the stored job {job_id} never parsed: it cannot be republished"));
    };
    let revision = s.manifest.verdict.revision + 1;
    let republish = serde_json::to_vec(&job)?;
    // §2: a release republishes the job; one over the limits would only be rejected, so nothing
    // is decided or written for it.
    if kind == DecisionKind::Released {
        if let Err(reason) = crate::job_limits(common).check(&republish) {
            return refuse(
                EXIT_ERROR,
                format!("job {job_id} cannot be released: republished, it would be rejected: {}", reason.message),
            );
        }
    }
    let at = now_ms();
    let decision = Decision {
        decision: kind,
        by: args.by.clone(),
        at: at.clone(),
        note: args.note.clone(),
        sha256: s.original_sha256.clone(),
        job_sha256: job_sha256(&s.manifest.job),
    };
    if kind == DecisionKind::Confirmed {
        // The bank first: a decision written without its bank entry would say more than is true.
        let bank = confirmed_lines(&s, &args);
        let key = confirmed_bank_key(&s.original_sha256);
        store
            .put(quarantine, &key, bank.clone().into_bytes(), "text/plain; charset=utf-8")
            .await
            .with_context(|| format!("writing s3://{quarantine}/{key}"))?;
        println!("confirmed bank: s3://{quarantine}/{key} ({} entries)", bank.lines().count());
    }
    let key = decision_key(job_id, item_id, &at);
    let body = serde_json::to_vec_pretty(&decision)?;
    store
        .put(quarantine, &key, body, "application/json")
        .await
        .with_context(|| format!("writing s3://{quarantine}/{key}"))?;
    println!("decision {}: s3://{quarantine}/{key} (original s3://{quarantine}/{})", kind.as_str(), s.original_key);
    if kind == DecisionKind::Released {
        let broker =
            Broker::connect_any(&common.amqp_url, None, "mediagate review").await.context("connecting to RabbitMQ")?;
        let publisher = broker.job_publisher().await.context("opening a publisher")?;
        let published = publisher.publish(names::UPLOAD_KEY, job_id, republish).await;
        broker.close().await;
        published.with_context(|| {
            format!("publishing {job_id} again (the decision is written; run the release again to republish)")
        })?;
        println!("job {job_id} republished on the live lane with revision {revision}");
    }
    Ok(ExitCode::SUCCESS)
}

/// The `confirmed` bank's lines for an item: its sha256 and every PDQ of its hashes (the image's
/// or poster's, every sampled frame's) whose quality reaches the minimum, labelled
/// `job_id/item_id by ID` (identifiers only, so a label cannot break a line).
fn confirmed_lines(s: &Subject, args: &DecideArgs) -> String {
    let label = format!("{}/{} by {}", args.job_id, args.item_id, args.by);
    let mut lines = vec![format!("sha256 {} {label}", s.original_sha256)];
    let mut pdqs: Vec<&str> = Vec::new();
    if let Some(h) = &s.quarantined.item.hashes {
        if let (Some(pdq), Some(q)) = (&h.pdq, h.pdq_quality) {
            if q >= args.pdq_min_quality {
                pdqs.push(pdq);
            }
        }
        for f in h.pdq_frames.iter().flatten() {
            if f.quality >= args.pdq_min_quality {
                pdqs.push(&f.pdq);
            }
        }
    }
    let mut seen = std::collections::HashSet::new();
    for p in pdqs.into_iter().filter(|p| seen.insert(*p)) {
        lines.push(format!("pdq {p} {label}"));
    }
    lines.join("\n") + "\n"
}

/// One blocked item for `review list`.
#[derive(serde::Serialize)]
struct Listed {
    job_id: String,
    item_id: String,
    revision: u64,
    processed_at: String,
    reason: Option<String>,
    nudity: Option<mediagate_contract::NudityResult>,
    #[serde(rename = "match")]
    hash_match: Option<mediagate_contract::HashMatch>,
    decision: Option<Decision>,
}

async fn list(store: &Store, quarantine: &str, args: ReviewListArgs) -> Result<ExitCode> {
    let since = args
        .since
        .as_deref()
        .map(|s| OffsetDateTime::parse(s, &Rfc3339).with_context(|| format!("--since {s:?} is not an RFC 3339 time")))
        .transpose();
    let since = match since {
        Ok(s) => s,
        Err(e) => return refuse(EXIT_USAGE, format!("{e:#}")),
    };
    let mut entries: Vec<String> = Vec::new();
    let mut decisions: std::collections::HashMap<String, String> = std::collections::HashMap::new();
    let mut pages = store.list_pages(quarantine, "");
    while let Some(page) = pages.next_page().await.with_context(|| format!("listing s3://{quarantine}"))? {
        for key in page {
            if key.starts_with('.') {
                continue;
            }
            if key.ends_with("/verdict.json") {
                entries.push(key);
            } else if let Some((item, _)) = key.split_once("/review/") {
                let slot = decisions.entry(format!("{item}/")).or_default();
                if key.ends_with(".json") && key.as_str() > slot.as_str() {
                    *slot = key;
                }
            }
        }
    }
    let mut found = Vec::new();
    for key in entries {
        let Some(bytes) = get_opt(store, quarantine, &key).await? else { continue };
        let Ok(q) = serde_json::from_slice::<Quarantined>(&bytes) else {
            eprintln!("skipped s3://{quarantine}/{key}: not a quarantined verdict entry");
            continue;
        };
        if let Some(since) = since {
            match OffsetDateTime::parse(&q.processed_at, &Rfc3339) {
                Ok(t) if t >= since => {}
                _ => continue,
            }
        }
        let reason = q.item.reason.as_ref().map(|r| r.code.as_str().to_string());
        if args.reason.as_deref().is_some_and(|want| reason.as_deref() != Some(want)) {
            continue;
        }
        let prefix = key.trim_end_matches("verdict.json").to_string();
        found.push((q, reason, decisions.get(&prefix).cloned()));
    }
    found.sort_by(|a, b| b.0.processed_at.cmp(&a.0.processed_at).then_with(|| a.0.job_id.cmp(&b.0.job_id)));
    found.truncate(args.limit);
    for (q, reason, decision_key) in found {
        let decision = match decision_key {
            Some(k) => get_opt(store, quarantine, &k).await?.and_then(|b| serde_json::from_slice::<Decision>(&b).ok()),
            None => None,
        };
        let row = Listed {
            job_id: q.job_id,
            item_id: q.item.item_id.to_string(),
            revision: q.revision,
            processed_at: q.processed_at,
            reason,
            nudity: q.item.nudity.clone(),
            hash_match: q.item.hash_match.clone(),
            decision,
        };
        if args.json {
            println!("{}", serde_json::to_string(&row)?);
        } else {
            let what = match (&row.hash_match, &row.nudity) {
                (Some(m), _) => format!("bank {} {} distance {}", m.bank, m.kind, m.distance),
                (None, Some(n)) => format!("score {:.3} ≥ {:.2}", n.score, n.threshold),
                _ => "-".to_string(),
            };
            let decided = row.decision.as_ref().map(|d| format!("{} by {} at {}", d.decision.as_str(), d.by, d.at));
            println!(
                "{}  {}/{}  rev {}  {}  {}  {}",
                row.processed_at,
                row.job_id,
                row.item_id,
                row.revision,
                row.reason.as_deref().unwrap_or("-"),
                what,
                decided.as_deref().unwrap_or("undecided")
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
