//! `mediagate erase`: deletes what mediagate stored for jobs, for a privacy request (contract §7).
//!
//! For each job, in this order: its manifest (`manifests/{job_id}.json`: from then on
//! `reprocess` never republishes the job, even if the rest fails), its index objects under
//! `manifests-index/` (every revision's, found from `manifests-index/j/{job_id}/`), its outputs
//! (`media/{job_id}/` in the output bucket), and `{job_id}/` in the quarantine bucket — except,
//! for an item blocked with `hash.matched`, what lies under `{job_id}/{item_id}/`: the
//! quarantined original, the entry that says what it matched and the moderators' decisions on
//! it, kept as evidence for a report unless `--include-evidence` (keeping the entry is what lets
//! a second run recognise the evidence again). Every listing is read page by page; each key is
//! printed on stdout once S3 has confirmed its deletion (`deleted s3://…`), or as `kept s3://…`.
//!
//! Not reached, by design: the producer's own source objects (the uploads in the source
//! buckets), verdicts and escalations already delivered to their consumers, and bank entries
//! (hashes, not media). A worker still holding a redelivery of the job may write its outputs
//! again after an erase; erase a job once it has its verdict.
//!
//! Exit status: 0 when every job was erased (one with nothing stored included), 1 when storage
//! failed (every key printed as deleted is gone; a rerun finishes the rest), 2 on bad usage.

use std::collections::BTreeSet;
use std::process::ExitCode;

use anyhow::{Context, Result};
use futures_util::future::join_all;
use indicatif::{ProgressBar, ProgressStyle};
use mediagate_contract::index::{entry_prefix, parse_pointer, pointers_prefix};
use mediagate_contract::keys::manifest_key;
use mediagate_contract::{ItemVerdict, JobId, ReasonCode};
use mediagate_store::Store;
use serde::Deserialize;

use crate::cli::{Common, EraseArgs};
use crate::review::get_opt;

/// The item of a `{job_id}/{item_id}/verdict.json` entry in the quarantine bucket (§4), read
/// leniently (only what erase needs), so an entry missing other fields still protects evidence.
#[derive(Debug, Deserialize)]
struct Quarantined {
    item: ItemVerdict,
}

const EXIT_ERROR: u8 = 1;
const EXIT_USAGE: u8 = 2;
/// Deletions in flight at once.
const AT_ONCE: usize = 16;

/// What was done, over all jobs.
#[derive(Debug, Default)]
struct Tally {
    jobs: u64,
    deleted: u64,
    kept: u64,
}

pub async fn run(common: &Common, args: EraseArgs) -> Result<ExitCode> {
    let ids = match job_ids(&args) {
        Ok(ids) => ids,
        Err(message) => {
            eprintln!("mediagate erase: {message}");
            return Ok(ExitCode::from(EXIT_USAGE));
        }
    };
    let store = Store::connect(&crate::store_config(common)).await.context("configuring S3")?;
    let plan = Plan {
        store: &store,
        output: common.output_bucket.clone(),
        manifests: crate::manifest_bucket(common),
        quarantine: Some(common.quarantine_bucket.trim().to_string()).filter(|b| !b.is_empty()),
        include_evidence: args.include_evidence,
        dry_run: args.dry_run,
    };
    let bar = if args.from_file.is_some() { ProgressBar::new(ids.len() as u64) } else { ProgressBar::hidden() };
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} jobs ({per_sec}, eta {eta})")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let mut tally = Tally::default();
    for id in &ids {
        if let Err(e) = plan.erase(id, &bar, &mut tally).await {
            bar.abandon();
            eprintln!(
                "mediagate erase: {e:#}\nstopped at job {id}: every key printed as deleted is gone; run the same erase again \
                 to finish ({} of {} jobs done before it)",
                tally.jobs,
                ids.len()
            );
            return Ok(ExitCode::from(EXIT_ERROR));
        }
        tally.jobs += 1;
        bar.inc(1);
    }
    bar.finish_and_clear();
    let verb = if args.dry_run { "would be deleted" } else { "deleted" };
    eprintln!(
        "mediagate erase: {} job{}: {} object{} {verb}, {} kept as evidence{}",
        tally.jobs,
        if tally.jobs == 1 { "" } else { "s" },
        tally.deleted,
        if tally.deleted == 1 { "" } else { "s" },
        tally.kept,
        if tally.kept > 0 && !args.include_evidence { " (--include-evidence deletes them)" } else { "" }
    );
    Ok(ExitCode::SUCCESS)
}

/// The job ids named on the command line and in `--from-file` (one a line; blank lines and
/// `#` comments skipped), each checked against the identifier rule, in order, without repeats.
fn job_ids(args: &EraseArgs) -> Result<Vec<JobId>, String> {
    let mut named: Vec<(String, String)> = args.job_ids.iter().map(|id| (id.clone(), format!("{id:?}"))).collect();
    if let Some(path) = &args.from_file {
        let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if !line.is_empty() && !line.starts_with('#') {
                named.push((line.to_string(), format!("line {} of {} ({line:?})", n + 1, path.display())));
            }
        }
    }
    if named.is_empty() {
        return Err("name at least one job id (or --from-file FILE, one job id a line)".into());
    }
    let mut seen = BTreeSet::new();
    let mut ids = Vec::new();
    for (id, whence) in named {
        let Ok(id) = JobId::parse(&id) else {
            return Err(format!(
                "{whence} is not a job id (1–128 characters from A–Z a–z 0–9 . _ -, not starting with a dot)"
            ));
        };
        if seen.insert(id.clone()) {
            ids.push(id);
        }
    }
    Ok(ids)
}

struct Plan<'a> {
    store: &'a Store,
    output: String,
    manifests: String,
    quarantine: Option<String>,
    include_evidence: bool,
    dry_run: bool,
}

impl Plan<'_> {
    /// Erases one job: manifest, outputs, quarantine (evidence kept unless told otherwise).
    async fn erase(&self, job_id: &JobId, bar: &ProgressBar, tally: &mut Tally) -> Result<()> {
        let manifest = manifest_key(job_id);
        let present = self.listed(&self.manifests, &manifest).await?.into_iter().filter(|k| *k == manifest).collect();
        self.delete_all(&self.manifests, present, bar, tally).await?;
        self.delete_index(job_id, bar, tally).await?;
        let outputs = format!("media/{job_id}/");
        let mut pages = self.store.list_pages(&self.output, &outputs);
        while let Some(page) =
            pages.next_page().await.with_context(|| format!("listing s3://{}/{outputs}", self.output))?
        {
            self.delete_all(&self.output, page, bar, tally).await?;
        }
        let Some(q) = &self.quarantine else { return Ok(()) };
        let prefix = format!("{job_id}/");
        let keys = self.listed(q, &prefix).await?;
        let evidence = if self.include_evidence { BTreeSet::new() } else { self.evidence(q, &prefix, &keys).await? };
        let (kept, gone): (Vec<String>, Vec<String>) = keys.into_iter().partition(|k| {
            let item = k.strip_prefix(&prefix).and_then(|rest| rest.split_once('/')).map(|(item, _)| item);
            item.is_some_and(|i| evidence.contains(i))
        });
        for key in &kept {
            bar.suspend(|| println!("kept s3://{q}/{key} (evidence of a hash.matched item)"));
            tally.kept += 1;
        }
        self.delete_all(q, gone, bar, tally).await
    }

    /// The job's index objects (§4), every revision: each pointer's entries, then the pointer
    /// (so a run stopped half-way still finds the rest from the pointers left).
    async fn delete_index(&self, job_id: &JobId, bar: &ProgressBar, tally: &mut Tally) -> Result<()> {
        let bucket = &self.manifests;
        for pointer in self.listed_flat(bucket, &pointers_prefix(job_id)).await? {
            if let Some((stamp, revision)) = parse_pointer(job_id, &pointer) {
                let entries = self.listed_flat(bucket, &entry_prefix(job_id, stamp, revision)).await?;
                self.delete_all(bucket, entries, bar, tally).await?;
            }
            self.delete_all(bucket, vec![pointer], bar, tally).await?;
        }
        Ok(())
    }

    /// The keys directly under `prefix` (a listing with the delimiter `/`: on stores that keep
    /// keys as files, it walks that folder only).
    async fn listed_flat(&self, bucket: &str, prefix: &str) -> Result<Vec<String>> {
        let pages = self.store.list_pages(bucket, prefix).delimiter("/");
        pages.all_keys().await.with_context(|| format!("listing s3://{bucket}/{prefix}"))
    }

    /// Every key under `prefix`, page by page.
    async fn listed(&self, bucket: &str, prefix: &str) -> Result<Vec<String>> {
        self.store.list_keys(bucket, prefix).await.with_context(|| format!("listing s3://{bucket}/{prefix}"))
    }

    /// The items under `prefix` whose quarantine entry says `hash.matched`.
    async fn evidence(&self, bucket: &str, prefix: &str, keys: &[String]) -> Result<BTreeSet<String>> {
        let mut items = BTreeSet::new();
        for key in keys {
            let Some(item) = key.strip_prefix(prefix).and_then(|rest| rest.strip_suffix("/verdict.json")) else {
                continue;
            };
            let Some(body) = get_opt(self.store, bucket, key).await? else { continue };
            // An entry that does not parse is not evidence of anything; it goes with the rest.
            let matched = serde_json::from_slice::<Quarantined>(&body)
                .ok()
                .and_then(|q| q.item.reason)
                .is_some_and(|r| r.code == ReasonCode::HashMatched);
            if matched && !item.contains('/') {
                items.insert(item.to_string());
            }
        }
        Ok(items)
    }

    /// Deletes `keys`, a few at once, printing each one S3 confirmed, in order; the first
    /// failure stops it (the ones before it printed, none after it).
    async fn delete_all(&self, bucket: &str, keys: Vec<String>, bar: &ProgressBar, tally: &mut Tally) -> Result<()> {
        for chunk in keys.chunks(AT_ONCE) {
            if self.dry_run {
                for key in chunk {
                    bar.suspend(|| println!("would delete s3://{bucket}/{key}"));
                    tally.deleted += 1;
                }
                continue;
            }
            let results = join_all(chunk.iter().map(|key| self.store.delete(bucket, key))).await;
            for (key, result) in chunk.iter().zip(results) {
                result.with_context(|| format!("deleting s3://{bucket}/{key}"))?;
                bar.suspend(|| println!("deleted s3://{bucket}/{key}"));
                tally.deleted += 1;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(ids: &[&str], file: Option<std::path::PathBuf>) -> EraseArgs {
        EraseArgs {
            job_ids: ids.iter().map(|s| s.to_string()).collect(),
            from_file: file,
            include_evidence: false,
            dry_run: false,
        }
    }

    #[test]
    fn job_ids_come_from_the_arguments_and_the_file_checked_and_without_repeats() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("ids.txt");
        std::fs::write(&file, "# privacy request 17\n\nj-2\n  j-3  \nj-1\n").unwrap();
        assert_eq!(job_ids(&args(&["j-1"], Some(file.clone()))).unwrap(), ["j-1", "j-2", "j-3"]);
        assert!(job_ids(&args(&[], None)).unwrap_err().contains("at least one"));
        std::fs::write(&file, "j-1\n../etc\n").unwrap();
        let e = job_ids(&args(&[], Some(file))).unwrap_err();
        assert!(e.contains("line 2 of") && e.contains("not a job id"), "{e}");
        assert!(job_ids(&args(&["a/b"], None)).unwrap_err().contains("\"a/b\""));
    }
}
