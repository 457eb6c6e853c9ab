//! `mediagate reprocess`: publish stored jobs again (a new model, new sizes, new limits).
//!
//! Reads `manifests/` page by page, keeps the jobs whose verdict matches the filters, and
//! publishes each job again to `mediagate.jobs` with key `reprocess`, `reprocess: true` and
//! the manifest's revision plus one. Workers give these jobs only spare capacity, so a batch of
//! any size never delays live traffic. With `--state FILE` a stopped run resumes after the last
//! manifest it handled.

use std::path::Path;

use anyhow::{Context, Result};
use futures_util::future::join_all;
use indicatif::{ProgressBar, ProgressStyle};
use mediagate_contract::keys::MANIFEST_PREFIX;
use mediagate_contract::{is_valid_id, JobLimits, Manifest};
use mediagate_queue::{names, Broker};
use mediagate_store::Store;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::cli::{Common, ReprocessArgs};

/// Manifests fetched at once.
const CHUNK: usize = 32;

/// What happened to one manifest.
enum Outcome {
    /// Matches the filters: the job to publish again.
    Selected { job_id: String, body: Vec<u8> },
    /// Outside the filters.
    Filtered,
    /// The stored job is not a job (it never parsed): nothing to reprocess.
    Unusable(String),
}

pub async fn run(common: &Common, args: ReprocessArgs) -> Result<std::process::ExitCode> {
    let since = args
        .since
        .as_deref()
        .map(|s| OffsetDateTime::parse(s, &Rfc3339).with_context(|| format!("--since {s:?} is not an RFC 3339 time")))
        .transpose()?;
    let limits = crate::job_limits(common);
    if let Err(e) = mediagate_worker::check_job_limits(limits) {
        eprintln!("mediagate: {e}");
        return Ok(std::process::ExitCode::from(crate::EXIT_USAGE));
    }
    let bucket = crate::manifest_bucket(common);
    let store = Store::connect(&crate::store_config(common)).await.context("configuring S3")?;
    let resume_after = match &args.state {
        Some(path) if path.exists() => Some(
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?.trim().to_string(),
        ),
        _ => None,
    };

    // Listing first gives the progress bar its length; keys are small (a million ≈ 60 MB).
    let mut keys = Vec::new();
    let mut pages = store.list_pages(&bucket, MANIFEST_PREFIX);
    while let Some(page) =
        pages.next_page().await.with_context(|| format!("listing s3://{bucket}/{MANIFEST_PREFIX}"))?
    {
        keys.extend(page.into_iter().filter(|k| k.ends_with(".json")));
    }
    keys.sort();
    if let Some(after) = &resume_after {
        keys.retain(|k| k.as_str() > after.as_str());
        eprintln!("resuming after {after}");
    }

    let broker = if args.dry_run {
        None
    } else {
        Some(
            Broker::connect_any(&common.amqp_url, None, "mediagate reprocess")
                .await
                .context("connecting to RabbitMQ")?,
        )
    };
    let publisher = match &broker {
        Some(b) => Some(b.job_publisher().await.context("opening a publisher")?),
        None => None,
    };
    let bar = ProgressBar::new(keys.len() as u64);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} manifests ({per_sec}, eta {eta}) {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let (mut selected, mut filtered, mut unusable) = (0u64, 0u64, 0u64);
    for chunk in keys.chunks(CHUNK) {
        let outcomes =
            join_all(chunk.iter().map(|key| examine(&store, &bucket, key, since, &args.status, limits))).await;
        for (key, outcome) in chunk.iter().zip(outcomes) {
            match outcome? {
                Outcome::Selected { job_id, body } => {
                    selected += 1;
                    match &publisher {
                        Some(p) => p.publish(names::REPROCESS_KEY, &job_id, body).await.with_context(|| {
                            format!("publishing {job_id} (resume with --state to continue after {key})")
                        })?,
                        None => bar.suspend(|| println!("{job_id}")),
                    }
                }
                Outcome::Filtered => filtered += 1,
                Outcome::Unusable(why) => {
                    unusable += 1;
                    bar.suspend(|| eprintln!("skipped {key}: {why}"));
                }
            }
            bar.inc(1);
        }
        if let (Some(path), Some(last)) = (&args.state, chunk.last()) {
            if !args.dry_run {
                save_state(path, last)?;
            }
        }
        bar.set_message(format!("{selected} selected"));
    }
    bar.finish();
    if let Some(b) = &broker {
        b.close().await;
    }
    let verb = if args.dry_run { "would be published" } else { "published to mediagate.reprocess" };
    eprintln!(
        "{} manifests read: {selected} {verb}, {filtered} outside the filters, {unusable} not reprocessable",
        selected + filtered + unusable
    );
    Ok(std::process::ExitCode::SUCCESS)
}

async fn examine(
    store: &Store,
    bucket: &str,
    key: &str,
    since: Option<OffsetDateTime>,
    statuses: &[String],
    limits: JobLimits,
) -> Result<Outcome> {
    let bytes = store.get(bucket, key).await.with_context(|| format!("reading s3://{bucket}/{key}"))?;
    let manifest: Manifest = match serde_json::from_slice(&bytes) {
        Ok(m) => m,
        Err(e) => return Ok(Outcome::Unusable(format!("not a mediagate manifest: {e}"))),
    };
    let v = &manifest.verdict;
    if !statuses.is_empty() && !statuses.iter().any(|s| s == v.status.as_str()) {
        return Ok(Outcome::Filtered);
    }
    if let Some(since) = since {
        match OffsetDateTime::parse(&v.processed_at, &Rfc3339) {
            Ok(t) if t >= since => {}
            Ok(_) => return Ok(Outcome::Filtered),
            Err(_) => return Ok(Outcome::Unusable(format!("processed_at {:?} is not RFC 3339", v.processed_at))),
        }
    }
    let Some(job) = manifest.republished() else {
        return Ok(Outcome::Unusable("the stored job never parsed as JSON".into()));
    };
    let Some(job_id) = job.get("job_id").and_then(|j| j.as_str()).filter(|j| is_valid_id(j)).map(str::to_owned) else {
        return Ok(Outcome::Unusable("the stored job has no valid job_id".into()));
    };
    let body = serde_json::to_vec(&job)?;
    // §2: the limits apply to jobs as they arrive, so one over them is never republished.
    if let Err(reason) = limits.check(&body) {
        return Ok(Outcome::Unusable(format!("job {job_id} would be rejected: {}", reason.message)));
    }
    Ok(Outcome::Selected { job_id, body })
}

fn save_state(path: &Path, last_key: &str) -> Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, last_key).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}
