//! `mediagate reprocess`: publish stored jobs again (a new model, new sizes, new limits).
//!
//! Selects the jobs whose verdict matches the filters and publishes each job again to
//! `mediagate.jobs` with key `reprocess`, `reprocess: true` and the manifest's revision plus
//! one. Workers give these jobs only spare capacity, so a batch of any size never delays live
//! traffic; `--max-rate` bounds it further.
//!
//! Selection (contract §4, §7): with `manifests-index/complete-since` = T stored, the part of
//! the range at or after T is read from the index — one listing per hour folder that has
//! entries, then one GET per selected job's manifest, so the requests grow with the selection,
//! not with the history — and the part before T (all of it when T is absent) by reading every
//! manifest under `manifests/`. Every selected job is checked against its manifest: the index
//! is a hint, and a newer revision may have moved the job.
//!
//! With `--state FILE` a stopped run resumes after the last manifest (or index entry) it
//! handled. `--backfill-index` writes the index for the manifests that exist, then T.

use std::collections::HashSet;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use futures_util::future::join_all;
use indicatif::{ProgressBar, ProgressStyle};
use mediagate_contract::index::{entries_after, hour_of_prefix, Entry, Stamp, COMPLETE_SINCE_KEY, ENTRIES_PREFIX};
use mediagate_contract::keys::{manifest_key, MANIFEST_PREFIX};
use mediagate_contract::{is_valid_id, JobId, JobLimits, Manifest};
use mediagate_queue::{names, Broker, JobPublisher};
use mediagate_store::{Store, StoreError};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use tokio::time::Instant;

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
    /// The manifest is gone (the job was erased since it was listed or indexed).
    Gone,
}

/// Which jobs a run (or one part of it) selects.
#[derive(Debug, Clone)]
struct Filters {
    /// `processed_at` at or after.
    since: Option<OffsetDateTime>,
    /// `processed_at` before.
    until: Option<OffsetDateTime>,
    /// Any of these statuses (none: all).
    statuses: Vec<String>,
    limits: JobLimits,
}

impl Filters {
    fn time(&self, t: OffsetDateTime) -> bool {
        self.since.is_none_or(|s| t >= s) && self.until.is_none_or(|u| t < u)
    }

    fn status(&self, status: &str) -> bool {
        self.statuses.is_empty() || self.statuses.iter().any(|s| s == status)
    }
}

/// How a run splits its range between `manifests/` and the index (T = complete-since): the
/// part before T is read from `manifests/`, the part at or after T from the index.
#[derive(Debug, PartialEq)]
struct Split {
    /// The bounds of the part read from `manifests/`, if any.
    scan: Option<(Option<OffsetDateTime>, Option<OffsetDateTime>)>,
    /// The bounds of the part read from the index, if any (it always has a lower bound).
    index: Option<(OffsetDateTime, Option<OffsetDateTime>)>,
}

fn split(since: Option<OffsetDateTime>, until: Option<OffsetDateTime>, complete: Option<OffsetDateTime>) -> Split {
    let Some(t) = complete else { return Split { scan: Some((since, until)), index: None } };
    let scan_until = until.map_or(t, |u| u.min(t));
    let scan = since.is_none_or(|s| s < scan_until).then_some((since, Some(scan_until)));
    let index_since = since.map_or(t, |s| s.max(t));
    let index = until.is_none_or(|u| index_since < u).then_some((index_since, until));
    Split { scan, index }
}

fn parse_time(flag: &str, value: Option<&str>) -> Result<Option<OffsetDateTime>> {
    value
        .map(|s| OffsetDateTime::parse(s, &Rfc3339).with_context(|| format!("{flag} {s:?} is not an RFC 3339 time")))
        .transpose()
}

pub async fn run(common: &Common, args: ReprocessArgs) -> Result<ExitCode> {
    let since = parse_time("--since", args.since.as_deref())?;
    let until = parse_time("--until", args.until.as_deref())?;
    let usage = |message: String| {
        eprintln!("mediagate reprocess: {message}");
        Ok(ExitCode::from(crate::EXIT_USAGE))
    };
    if let (Some(s), Some(u)) = (since, until) {
        if u <= s {
            return usage(format!("--until ({u}) must be after --since ({s})"));
        }
    }
    if let Some(rate) = args.max_rate {
        if !(rate.is_finite() && rate > 0.0) {
            return usage(format!("--max-rate {rate} must be a number of jobs a second above 0"));
        }
    }
    let limits = crate::job_limits(common);
    if let Err(e) = mediagate_worker::check_job_limits(limits) {
        return usage(e.to_string());
    }
    let bucket = crate::manifest_bucket(common);
    let store = Store::connect(&crate::store_config(common)).await.context("configuring S3")?;
    if args.backfill_index {
        return backfill(&store, &bucket).await;
    }
    let complete = complete_since(&store, &bucket).await?;
    let (resume_after, cap) = match &args.state {
        Some(path) if path.exists() => load_state(path)?,
        _ => (None, None),
    };
    if let Some(after) = &resume_after {
        eprintln!("resuming after {after}");
    }
    // Only jobs processed before the run began (or the run it resumes): the jobs it publishes
    // get verdicts, manifests and index entries of their own while it runs, and are not
    // selected again.
    // `processed_at` has whole seconds, so the end is the start of the run's own second: a job
    // the run publishes can be verdicted within the second it began, and must still fall after.
    let cap = cap.unwrap_or_else(|| Stamp::of(OffsetDateTime::now_utc()).time());
    let until = Some(until.map_or(cap, |u| u.min(cap)));
    let parts = split(since, until, complete);
    let broker = match args.dry_run {
        true => None,
        false => Some(
            Broker::connect_any(&common.amqp_url, None, "mediagate reprocess")
                .await
                .context("connecting to RabbitMQ")?,
        ),
    };
    let publisher = match &broker {
        Some(b) => Some(b.job_publisher().await.context("opening a publisher")?),
        None => None,
    };
    let filters = Filters { since, until, statuses: args.status.clone(), limits };
    let mut run = Run {
        store: &store,
        bucket: &bucket,
        publisher: publisher.as_ref(),
        pace: args.max_rate.map(|r| Pace::new(r, Instant::now())),
        state: args.state.as_deref().filter(|_| !args.dry_run).map(|path| (path, cap)),
        bar: ProgressBar::hidden(),
        tally: Tally::default(),
        seen: HashSet::new(),
    };
    // A state inside the index means the `manifests/` part was finished.
    let resume_in_index = resume_after.as_deref().is_some_and(|k| k.starts_with(ENTRIES_PREFIX));
    if let Some((since, until)) = parts.scan {
        if !resume_in_index {
            if complete.is_some() {
                eprintln!("reading manifests/ for the part of the range before manifests-index/complete-since");
            }
            let filters = Filters { since, until, ..filters.clone() };
            run.scan_manifests(&filters, resume_after.as_deref()).await?;
        }
    }
    if let Some((since, until)) = parts.index {
        let filters = Filters { since: Some(since), until, ..filters.clone() };
        run.walk_index(&filters, resume_after.as_deref().filter(|_| resume_in_index)).await?;
    }
    run.bar.finish();
    if let Some(b) = &broker {
        b.close().await;
    }
    let Tally { selected, filtered, unusable, gone, entries } = run.tally;
    let verb = if args.dry_run { "would be published" } else { "published to mediagate.reprocess" };
    let index = match parts.index {
        Some(_) => format!("; {entries} index entries listed"),
        None => String::new(),
    };
    eprintln!(
        "{} manifests read: {selected} {verb}, {filtered} outside the filters, {unusable} not reprocessable, {gone} \
         gone{index}",
        selected + filtered + unusable + gone
    );
    Ok(ExitCode::SUCCESS)
}

/// `manifests-index/complete-since`, when stored.
async fn complete_since(store: &Store, bucket: &str) -> Result<Option<OffsetDateTime>> {
    match store.get(bucket, COMPLETE_SINCE_KEY).await {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let t = OffsetDateTime::parse(text.trim(), &Rfc3339).with_context(|| {
                format!(
                    "s3://{bucket}/{COMPLETE_SINCE_KEY} holds {:?}, not an RFC 3339 time: delete it or run `mediagate \
                     reprocess --backfill-index` again",
                    text.trim()
                )
            })?;
            Ok(Some(t))
        }
        Err(StoreError::NotFound { .. }) => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading s3://{bucket}/{COMPLETE_SINCE_KEY}")),
    }
}

#[derive(Debug, Default)]
struct Tally {
    selected: u64,
    filtered: u64,
    unusable: u64,
    gone: u64,
    /// Index entries listed (in range or not).
    entries: u64,
}

/// At most `rate` publishes a second: each one waits for its turn.
struct Pace {
    every: Duration,
    next: Instant,
}

impl Pace {
    fn new(rate: f64, now: Instant) -> Pace {
        Pace { every: Duration::from_secs_f64(1.0 / rate), next: now }
    }

    /// The turn of the next publish, given the time now; the one after is `every` later.
    fn turn(&mut self, now: Instant) -> Instant {
        let turn = self.next.max(now);
        self.next = turn + self.every;
        turn
    }
}

struct Run<'a> {
    store: &'a Store,
    bucket: &'a str,
    /// `None` on a dry run: the selected jobs are listed instead.
    publisher: Option<&'a JobPublisher>,
    pace: Option<Pace>,
    /// The state file, and the time the run's selection ends (saved with the resume point).
    state: Option<(&'a Path, OffsetDateTime)>,
    bar: ProgressBar,
    tally: Tally,
    /// The jobs selected so far (or, in the index, checked): a job is published once a run.
    seen: HashSet<JobId>,
}

impl Run<'_> {
    /// Every manifest under `manifests/` (after `resume_after`), in key order.
    async fn scan_manifests(&mut self, filters: &Filters, resume_after: Option<&str>) -> Result<()> {
        let bucket = self.bucket;
        // Listing first gives the progress bar its length; keys are small (a million ≈ 60 MB).
        let pages = self.store.list_pages(bucket, MANIFEST_PREFIX).delimiter("/");
        let mut keys = pages.all_keys().await.with_context(|| format!("listing s3://{bucket}/{MANIFEST_PREFIX}"))?;
        keys.retain(|k| k.ends_with(".json"));
        keys.sort();
        if let Some(after) = resume_after {
            keys.retain(|k| k.as_str() > after);
        }
        self.bar = ProgressBar::new(keys.len() as u64);
        self.bar.set_style(
            ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} manifests ({per_sec}, eta {eta}) {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        for chunk in keys.chunks(CHUNK) {
            let pairs: Vec<(&str, &str)> = chunk.iter().map(|k| (k.as_str(), k.as_str())).collect();
            self.handle(filters, &pairs).await?;
        }
        Ok(())
    }

    /// The index entries from `filters.since` (or after `resume_after`) to `filters.until`: the
    /// hour folders that exist, each listed from where the range starts, each selected job
    /// checked against its manifest.
    async fn walk_index(&mut self, filters: &Filters, resume_after: Option<&str>) -> Result<()> {
        let bucket = self.bucket;
        let since = Stamp::of(filters.since.context("the index part of a range has a start")?);
        let start = match resume_after {
            Some(after) if after > entries_after(since).as_str() => after.to_string(),
            _ => entries_after(since),
        };
        let last_hour = filters.until.map(|u| Stamp::of(u).hour());
        self.bar = ProgressBar::new_spinner();
        self.bar.set_style(
            ProgressStyle::with_template("{spinner} [{elapsed_precise}] {pos} index entries ({per_sec}) {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        // Hour folders from the start's own (`…/t/{hour}` sorts before `…/t/{hour}/`).
        let first_hour = start.strip_prefix(ENTRIES_PREFIX).and_then(|r| r.split('/').next()).unwrap_or_default();
        let mut hours = self
            .store
            .list_pages(bucket, ENTRIES_PREFIX)
            .delimiter("/")
            .start_after(&format!("{ENTRIES_PREFIX}{first_hour}"));
        while let Some(page) =
            hours.next_listing().await.with_context(|| format!("listing s3://{bucket}/{ENTRIES_PREFIX}"))?
        {
            for folder in page.prefixes {
                let Some(hour) = hour_of_prefix(&folder) else { continue };
                if last_hour.as_deref().is_some_and(|last| hour > last) {
                    return Ok(());
                }
                if self.walk_hour(filters, &folder, &start).await? {
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    /// One hour folder's entries after `start`; `true` once an entry at or after `until` was met
    /// (every later one is too).
    async fn walk_hour(&mut self, filters: &Filters, folder: &str, start: &str) -> Result<bool> {
        let bucket = self.bucket;
        let since = filters.since.map(Stamp::of);
        let mut pages = self.store.list_pages(bucket, folder).delimiter("/").start_after(start);
        while let Some(page) = pages.next_page().await.with_context(|| format!("listing s3://{bucket}/{folder}"))? {
            // Every entry looked at is a resume point; those not picked have no manifest to read.
            let mut looked: Vec<(String, String)> = Vec::new();
            let mut past_until = false;
            for key in page {
                self.tally.entries += 1;
                self.bar.inc(1);
                let Some(entry) = Entry::parse(&key) else { continue };
                if filters.until.is_some_and(|u| entry.stamp.time() >= u) {
                    past_until = true;
                    break;
                }
                // The stamp is `processed_at` to the second: the manifest decides at the edges.
                let in_range = since.is_none_or(|s| entry.stamp >= s);
                // A job listed twice (two revisions in range) is checked once.
                let picked =
                    in_range && filters.status(entry.status.as_str()) && self.seen.insert(entry.job_id.clone());
                let manifest = if picked { manifest_key(&entry.job_id) } else { String::new() };
                looked.push((key, manifest));
            }
            for chunk in looked.chunks(CHUNK) {
                let pairs: Vec<(&str, &str)> = chunk.iter().map(|(k, m)| (k.as_str(), m.as_str())).collect();
                self.handle(filters, &pairs).await?;
            }
            self.bar.set_message(format!("{} selected", self.tally.selected));
            if past_until {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Checks each `(resume key, manifest key)` against its manifest and publishes the selected
    /// jobs, then saves the last resume key. An empty manifest key only moves the resume point.
    async fn handle(&mut self, filters: &Filters, pairs: &[(&str, &str)]) -> Result<()> {
        let (store, bucket) = (self.store, self.bucket);
        let outcomes = join_all(pairs.iter().map(|&(_, manifest)| async move {
            match manifest.is_empty() {
                true => Ok(None),
                false => examine(store, bucket, manifest, filters).await.map(Some),
            }
        }))
        .await;
        for (&(resume, manifest), outcome) in pairs.iter().zip(outcomes) {
            match outcome? {
                None => {}
                Some(Outcome::Selected { job_id, body }) => {
                    // The index part then skips it (it marks its own before reading them).
                    self.seen.insert(JobId::from(job_id.as_str()));
                    self.tally.selected += 1;
                    match self.publisher {
                        Some(p) => {
                            if let Some(pace) = &mut self.pace {
                                tokio::time::sleep_until(pace.turn(Instant::now())).await;
                            }
                            p.publish(names::REPROCESS_KEY, &job_id, body).await.with_context(|| {
                                format!("publishing {job_id} (resume with --state to continue after {resume})")
                            })?;
                        }
                        None => self.bar.suspend(|| println!("{job_id}")),
                    }
                }
                Some(Outcome::Filtered) => self.tally.filtered += 1,
                Some(Outcome::Gone) => self.tally.gone += 1,
                Some(Outcome::Unusable(why)) => {
                    self.tally.unusable += 1;
                    self.bar.suspend(|| eprintln!("skipped {manifest}: {why}"));
                }
            }
            // The scan's bar counts manifests; the index's (a spinner) counts entries as listed.
            if self.bar.length().is_some() {
                self.bar.inc(1);
            }
        }
        if let (Some((path, cap)), Some(&(last, _))) = (self.state, pairs.last()) {
            save_state(path, last, cap)?;
        }
        self.bar.set_message(format!("{} selected", self.tally.selected));
        Ok(())
    }
}

/// A manifest as read back.
enum Stored {
    Manifest(Box<Manifest>),
    /// Erased since it was listed or indexed.
    Gone,
    /// Not a mediagate manifest: why.
    NotOne(String),
}

async fn read_manifest(store: &Store, bucket: &str, key: &str) -> Result<Stored> {
    let bytes = match store.get(bucket, key).await {
        Ok(bytes) => bytes,
        Err(StoreError::NotFound { .. }) => return Ok(Stored::Gone),
        Err(e) => return Err(e).with_context(|| format!("reading s3://{bucket}/{key}")),
    };
    Ok(match serde_json::from_slice(&bytes) {
        Ok(m) => Stored::Manifest(Box::new(m)),
        Err(e) => Stored::NotOne(format!("not a mediagate manifest: {e}")),
    })
}

async fn examine(store: &Store, bucket: &str, key: &str, filters: &Filters) -> Result<Outcome> {
    let manifest = match read_manifest(store, bucket, key).await? {
        Stored::Manifest(m) => m,
        // Erased since it was listed: never republished.
        Stored::Gone => return Ok(Outcome::Gone),
        Stored::NotOne(why) => return Ok(Outcome::Unusable(why)),
    };
    let v = &manifest.verdict;
    if !filters.status(v.status.as_str()) {
        return Ok(Outcome::Filtered);
    }
    if filters.since.is_some() || filters.until.is_some() {
        match OffsetDateTime::parse(&v.processed_at, &Rfc3339) {
            Ok(t) if filters.time(t) => {}
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
    if let Err(reason) = filters.limits.check(&body) {
        return Ok(Outcome::Unusable(format!("job {job_id} would be rejected: {}", reason.message)));
    }
    Ok(Outcome::Selected { job_id, body })
}

/// The state file: the last key handled, and on a second line the time the run's selection
/// ends (a file with the key alone, from an earlier version, resumes with a new end).
fn save_state(path: &Path, last_key: &str, cap: OffsetDateTime) -> Result<()> {
    let tmp = path.with_extension("tmp");
    let cap = cap.format(&Rfc3339).context("formatting the state's end time")?;
    std::fs::write(&tmp, format!("{last_key}\n{cap}\n")).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

fn load_state(path: &Path) -> Result<(Option<String>, Option<OffsetDateTime>)> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut lines = text.lines().map(str::trim);
    let key = lines.next().filter(|k| !k.is_empty()).map(str::to_owned);
    let cap = match lines.next().filter(|c| !c.is_empty()) {
        Some(c) => Some(
            OffsetDateTime::parse(c, &Rfc3339)
                .with_context(|| format!("{}: line 2 ({c:?}) is not an RFC 3339 time", path.display()))?,
        ),
        None => None,
    };
    Ok((key, cap))
}

/// `--backfill-index`: the index objects of every manifest under `manifests/` (pointer first,
/// then entry, as a worker writes them), then `complete-since` = the earliest `processed_at`
/// indexed (or this run's start, if earlier): from then on, every manifest has its index
/// objects, provided every worker already writes them.
async fn backfill(store: &Store, bucket: &str) -> Result<ExitCode> {
    let mut earliest = Stamp::of(OffsetDateTime::now_utc());
    let bar = ProgressBar::new_spinner();
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {pos} manifests indexed ({per_sec}) {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    let (mut indexed, mut skipped) = (0u64, 0u64);
    let mut pages = store.list_pages(bucket, MANIFEST_PREFIX).delimiter("/");
    while let Some(page) =
        pages.next_page().await.with_context(|| format!("listing s3://{bucket}/{MANIFEST_PREFIX}"))?
    {
        for chunk in page.chunks(CHUNK) {
            let results = join_all(chunk.iter().map(|key| index_one(store, bucket, key))).await;
            for (key, result) in chunk.iter().zip(results) {
                match result? {
                    Ok(stamp) => {
                        indexed += 1;
                        earliest = earliest.min(stamp);
                        bar.inc(1);
                    }
                    Err(why) => {
                        skipped += 1;
                        bar.suspend(|| eprintln!("skipped {key}: {why}"));
                    }
                }
            }
        }
    }
    let t = earliest.time().format(&Rfc3339).context("formatting complete-since")?;
    store
        .put(bucket, COMPLETE_SINCE_KEY, t.clone().into_bytes(), "text/plain")
        .await
        .with_context(|| format!("writing s3://{bucket}/{COMPLETE_SINCE_KEY}"))?;
    bar.finish_and_clear();
    eprintln!(
        "{indexed} manifests indexed, {skipped} skipped (not mediagate manifests); s3://{bucket}/{COMPLETE_SINCE_KEY} \
         = {t}"
    );
    Ok(ExitCode::SUCCESS)
}

/// Indexes one manifest: `Ok(Ok(stamp))` when done, `Ok(Err(why))` when it is not one to index.
async fn index_one(store: &Store, bucket: &str, key: &str) -> Result<Result<Stamp, String>> {
    let Some(id) = key.strip_prefix(MANIFEST_PREFIX).and_then(|k| k.strip_suffix(".json")) else {
        return Ok(Err("not named manifests/{job_id}.json".into()));
    };
    let Ok(job_id) = JobId::parse(id) else { return Ok(Err(format!("{id:?} is not a job id"))) };
    let manifest = match read_manifest(store, bucket, key).await? {
        Stored::Manifest(m) => m,
        Stored::Gone => return Ok(Err("gone (erased since it was listed)".into())),
        Stored::NotOne(why) => return Ok(Err(why)),
    };
    let v = manifest.verdict;
    let Some(stamp) = Stamp::parse_rfc3339(&v.processed_at) else {
        return Ok(Err(format!("processed_at {:?} is not RFC 3339", v.processed_at)));
    };
    let entry = Entry { stamp, job_id, revision: v.revision, status: v.status };
    for key in [entry.pointer_key(), entry.key()] {
        store
            .put(bucket, &key, Vec::new(), "application/octet-stream")
            .await
            .with_context(|| format!("writing s3://{bucket}/{key}"))?;
    }
    Ok(Ok(stamp))
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn the_range_is_split_at_complete_since() {
        let t = datetime!(2026-06-01 0:00 UTC);
        let (a, b) = (datetime!(2026-01-01 0:00 UTC), datetime!(2026-09-01 0:00 UTC));
        // Without the index, everything is read from manifests/.
        assert_eq!(split(Some(a), None, None), Split { scan: Some((Some(a), None)), index: None });
        // A range across T: both parts, meeting at T.
        assert_eq!(
            split(Some(a), Some(b), Some(t)),
            Split { scan: Some((Some(a), Some(t))), index: Some((t, Some(b))) }
        );
        assert_eq!(split(None, None, Some(t)), Split { scan: Some((None, Some(t))), index: Some((t, None)) });
        // All after T: the index only; all before T: manifests/ only.
        assert_eq!(split(Some(b), None, Some(t)), Split { scan: None, index: Some((b, None)) });
        assert_eq!(split(Some(t), None, Some(t)), Split { scan: None, index: Some((t, None)) });
        assert_eq!(split(None, Some(a), Some(t)), Split { scan: Some((None, Some(a))), index: None });
        assert_eq!(split(Some(a), Some(t), Some(t)), Split { scan: Some((Some(a), Some(t))), index: None });
    }

    #[test]
    fn the_pace_spaces_publishes_and_does_not_bank_idle_time() {
        let start = Instant::now();
        let mut pace = Pace::new(4.0, start);
        assert_eq!(pace.turn(start), start);
        assert_eq!(pace.turn(start), start + Duration::from_millis(250));
        assert_eq!(pace.turn(start), start + Duration::from_millis(500));
        // After a long pause the next turn is now, not a burst of the turns missed.
        let later = start + Duration::from_secs(10);
        assert_eq!(pace.turn(later), later);
        assert_eq!(pace.turn(later), later + Duration::from_millis(250));
    }

    #[test]
    fn filters_keep_since_and_drop_until() {
        let f = Filters {
            since: Some(datetime!(2026-01-01 0:00 UTC)),
            until: Some(datetime!(2026-01-02 0:00 UTC)),
            statuses: vec!["cleared".into()],
            limits: JobLimits { max_bytes: 1, max_recipients: 1 },
        };
        assert!(f.time(datetime!(2026-01-01 0:00 UTC)));
        assert!(!f.time(datetime!(2026-01-02 0:00 UTC)));
        assert!(f.status("cleared") && !f.status("failed"));
    }
}
