//! Hash banks (contract §8): which banks there are (`MEDIAGATE_HASH_BANKS`), loading them from
//! local files, single S3 objects or S3 prefixes, and keeping them current.
//!
//! Parsing one bank's text and the index that matches against all of them are
//! `mediagate_hash`'s; this module owns the sources, the refresh and what is in force. The rules:
//! every bank is loaded before the first job (a failed load at start-up is an error the binary
//! stops on); every `refresh` each source is checked for a change (a file's size and
//! modification time, an object's ETag, a prefix's listing) and reloaded only then; a failed
//! reload keeps the bank's previous contents; malformed lines are skipped and counted. Lookups
//! take the index in force at that moment (`current`), so a reload never blocks a job.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use mediagate_contract::is_valid_id;
use mediagate_hash::{parse_bank, Banks, Entry, Kind, Parsed, MAX_BANK_BYTES};
use mediagate_store::{Store, StoreError};
use tracing::{info, warn};

use crate::metrics::Metrics;

/// The bank `review confirm` writes (§9), always loaded from the quarantine bucket when one is
/// configured; no bank in `MEDIAGATE_HASH_BANKS` may take its name.
pub const CONFIRMED_BANK: &str = "confirmed";

/// Where the `confirmed` bank lives in the quarantine bucket.
pub const CONFIRMED_PREFIX: &str = ".banks/confirmed/";

/// Where one bank's entries come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BankSource {
    /// A local file.
    File(PathBuf),
    /// `s3://bucket/key`: one object.
    S3Object { bucket: String, key: String },
    /// `s3://bucket/prefix/`: every object under the prefix, read as one bank.
    S3Prefix { bucket: String, prefix: String },
}

impl std::fmt::Display for BankSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BankSource::File(p) => write!(f, "{}", p.display()),
            BankSource::S3Object { bucket, key } => write!(f, "s3://{bucket}/{key}"),
            BankSource::S3Prefix { bucket, prefix } => write!(f, "s3://{bucket}/{prefix}"),
        }
    }
}

/// One named bank.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BankSpec {
    pub name: String,
    pub source: BankSource,
    /// Whether a source with no valid entry is a good load (only the `confirmed` bank: it is
    /// empty until a moderator confirms something).
    pub may_be_empty: bool,
}

/// Parses `MEDIAGATE_HASH_BANKS` (`name=SOURCE,…`); the error says what to fix.
pub fn parse_specs(text: &str) -> Result<Vec<BankSpec>, String> {
    let mut specs: Vec<BankSpec> = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let Some((name, source)) = part.split_once('=') else {
            return Err(format!("`{part}` is not name=SOURCE"));
        };
        let (name, source) = (name.trim(), source.trim());
        if !is_valid_id(name) {
            return Err(format!("bank name `{name}` must match [A-Za-z0-9._-]{{1,128}} and not start with `.`"));
        }
        if name == CONFIRMED_BANK {
            return Err(format!(
                "the bank name `{CONFIRMED_BANK}` is reserved for the bank `mediagate review confirm` writes \
                 (loaded from the quarantine bucket); rename this one"
            ));
        }
        if specs.iter().any(|s| s.name == name) {
            return Err(format!("the bank name `{name}` is used twice"));
        }
        specs.push(BankSpec { name: name.to_string(), source: parse_source(source)?, may_be_empty: false });
    }
    Ok(specs)
}

fn parse_source(source: &str) -> Result<BankSource, String> {
    if source.is_empty() {
        return Err("a bank needs a SOURCE: a path, s3://bucket/key or s3://bucket/prefix/".into());
    }
    let Some(rest) = source.strip_prefix("s3://") else { return Ok(BankSource::File(PathBuf::from(source))) };
    let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() {
        return Err(format!("`{source}` names no bucket"));
    }
    if key.is_empty() || key.ends_with('/') {
        Ok(BankSource::S3Prefix { bucket: bucket.to_string(), prefix: key.to_string() })
    } else {
        Ok(BankSource::S3Object { bucket: bucket.to_string(), key: key.to_string() })
    }
}

/// The `confirmed` bank of a quarantine bucket.
pub fn confirmed_spec(quarantine_bucket: &str) -> BankSpec {
    BankSpec {
        name: CONFIRMED_BANK.to_string(),
        source: BankSource::S3Prefix { bucket: quarantine_bucket.to_string(), prefix: CONFIRMED_PREFIX.to_string() },
        may_be_empty: true,
    }
}

/// Why a bank could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum BankLoadError {
    #[error("hash bank `{bank}` ({source_name}): {message}")]
    Source { bank: String, source_name: String, message: String },
    #[error("hash bank `{bank}` ({source_name}): {error}")]
    Storage { bank: String, source_name: String, error: Box<StoreError> },
}

/// What tells a source's current contents from the last loaded ones.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Fingerprint {
    File { len: u64, modified: Option<SystemTime> },
    Objects(Vec<(String, u64, Option<String>)>),
}

/// A bank's contents in force.
struct Loaded {
    fingerprint: Fingerprint,
    entries: Arc<Vec<Entry>>,
}

/// The banks in force and what they were loaded from.
pub struct HashBanks {
    specs: Vec<BankSpec>,
    loaded: Mutex<Vec<Option<Loaded>>>,
    current: RwLock<Arc<Banks>>,
    /// Where loads, reloads and entries are counted; `None` only for [`HashBanks::none`].
    metrics: Option<Arc<Metrics>>,
}

impl HashBanks {
    /// No banks at all (nothing configured, no quarantine bucket).
    pub fn none() -> HashBanks {
        HashBanks {
            specs: Vec::new(),
            loaded: Mutex::new(Vec::new()),
            current: RwLock::new(Arc::new(Banks::empty())),
            metrics: None,
        }
    }

    /// Loads every bank; the first that fails is the error (the worker must not start with a
    /// bank missing: it would let through what the bank is there to stop).
    pub async fn load(specs: Vec<BankSpec>, store: &Store, metrics: Arc<Metrics>) -> Result<HashBanks, BankLoadError> {
        HashBanks::load_from(specs, Some(store), metrics).await
    }

    /// Loads banks that are local files, with no S3 at hand (`mediagate inspect`); a bank in S3
    /// is an error here: the caller leaves those out, and says so.
    pub async fn load_files(specs: Vec<BankSpec>, metrics: Arc<Metrics>) -> Result<HashBanks, BankLoadError> {
        HashBanks::load_from(specs, None, metrics).await
    }

    async fn load_from(
        specs: Vec<BankSpec>,
        store: Option<&Store>,
        metrics: Arc<Metrics>,
    ) -> Result<HashBanks, BankLoadError> {
        let mut loaded = Vec::with_capacity(specs.len());
        for spec in &specs {
            metrics.register_bank(&spec.name);
            let fingerprint = fingerprint(spec, store).await?;
            let entries = read(spec, &fingerprint, store, &metrics).await?;
            loaded.push(Some(Loaded { fingerprint, entries: Arc::new(entries) }));
        }
        let banks = HashBanks {
            specs,
            loaded: Mutex::new(loaded),
            current: RwLock::new(Arc::new(Banks::empty())),
            metrics: Some(metrics),
        };
        banks.rebuild();
        Ok(banks)
    }

    /// The index in force now.
    pub fn current(&self) -> Arc<Banks> {
        match self.current.read() {
            Ok(g) => g.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Checks every source and reloads those that changed; a failure keeps that bank as it was
    /// (logged and counted). Returns how many banks were reloaded.
    pub async fn refresh(&self, store: &Store) -> usize {
        // No metrics only for `none()`, which has no bank to refresh.
        let Some(m) = self.metrics.as_deref() else { return 0 };
        let mut changed = 0;
        for (i, spec) in self.specs.iter().enumerate() {
            let result = async {
                let fp = fingerprint(spec, Some(store)).await?;
                let same = self.with_loaded(|l| l[i].as_ref().is_some_and(|l| l.fingerprint == fp));
                if same {
                    return Ok(false);
                }
                let entries = read(spec, &fp, Some(store), m).await?;
                self.with_loaded(|l| l[i] = Some(Loaded { fingerprint: fp, entries: Arc::new(entries) }));
                Ok::<_, BankLoadError>(true)
            }
            .await;
            match result {
                Ok(reloaded) => {
                    m.bank_checked(&spec.name, unix_now());
                    if reloaded {
                        changed += 1;
                    }
                }
                Err(e) => {
                    m.bank_reload_failed(&spec.name);
                    warn!(bank = %spec.name, error = %e, "hash bank reload failed; keeping its previous contents");
                }
            }
        }
        if changed > 0 {
            self.rebuild();
        }
        changed
    }

    /// Refreshes every `every` until the returned task is aborted.
    pub fn spawn_refresh(self: &Arc<Self>, store: Store, every: Duration) -> tokio::task::JoinHandle<()> {
        let banks = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tick.tick().await;
                banks.refresh(&store).await;
            }
        })
    }

    fn with_loaded<T>(&self, f: impl FnOnce(&mut Vec<Option<Loaded>>) -> T) -> T {
        match self.loaded.lock() {
            Ok(mut g) => f(&mut g),
            Err(poisoned) => f(&mut poisoned.into_inner()),
        }
    }

    /// Builds the index from every bank's contents in force and swaps it in.
    fn rebuild(&self) {
        let started = std::time::Instant::now();
        let parts: Vec<(String, Vec<Entry>)> = self.with_loaded(|l| {
            self.specs
                .iter()
                .zip(l.iter())
                .map(|(spec, loaded)| {
                    (spec.name.clone(), loaded.as_ref().map(|l| l.entries.as_ref().clone()).unwrap_or_default())
                })
                .collect()
        });
        let index = Arc::new(Banks::build(parts));
        for s in index.stats() {
            if let Some(m) = self.metrics.as_deref() {
                for (kind, n) in [(Kind::Sha256, s.sha256), (Kind::Md5, s.md5), (Kind::Pdq, s.pdq)] {
                    m.bank_entries(&s.name, kind, n);
                }
                m.bank_checked(&s.name, unix_now());
            }
            info!(bank = %s.name, sha256 = s.sha256, md5 = s.md5, pdq = s.pdq, "hash bank in force");
        }
        info!(ms = started.elapsed().as_millis() as u64, "hash bank index built");
        match self.current.write() {
            Ok(mut g) => *g = index,
            Err(poisoned) => *poisoned.into_inner() = index,
        }
    }
}

fn unix_now() -> f64 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}

fn source_error(spec: &BankSpec, message: impl Into<String>) -> BankLoadError {
    BankLoadError::Source { bank: spec.name.clone(), source_name: spec.source.to_string(), message: message.into() }
}

fn storage_error(spec: &BankSpec, error: StoreError) -> BankLoadError {
    BankLoadError::Storage { bank: spec.name.clone(), source_name: spec.source.to_string(), error: Box::new(error) }
}

/// The S3 client a bank in S3 is read with; `None` in a local run.
fn s3<'a>(spec: &BankSpec, store: Option<&'a Store>) -> Result<&'a Store, BankLoadError> {
    store.ok_or_else(|| source_error(spec, "a bank in S3 cannot be read without S3"))
}

async fn fingerprint(spec: &BankSpec, store: Option<&Store>) -> Result<Fingerprint, BankLoadError> {
    match &spec.source {
        BankSource::File(path) => {
            let meta = tokio::fs::metadata(path)
                .await
                .map_err(|e| source_error(spec, format!("cannot read the file: {e}")))?;
            Ok(Fingerprint::File { len: meta.len(), modified: meta.modified().ok() })
        }
        BankSource::S3Object { bucket, key } => {
            let info = s3(spec, store)?.head(bucket, key).await.map_err(|e| storage_error(spec, e))?;
            Ok(Fingerprint::Objects(vec![(key.clone(), info.size, info.etag)]))
        }
        BankSource::S3Prefix { bucket, prefix } => {
            let mut objects: Vec<_> = s3(spec, store)?
                .list_objects(bucket, prefix)
                .await
                .map_err(|e| storage_error(spec, e))?
                .into_iter()
                .map(|o| (o.key, o.size, o.etag))
                .collect();
            objects.sort();
            Ok(Fingerprint::Objects(objects))
        }
    }
}

/// Reads and parses a source as `fingerprint` describes it (for a prefix, every object it
/// listed, 256 MiB at most in all).
async fn read(
    spec: &BankSpec,
    fingerprint: &Fingerprint,
    store: Option<&Store>,
    metrics: &Metrics,
) -> Result<Vec<Entry>, BankLoadError> {
    let mut parsed: Option<Parsed> = None;
    let mut merge = |p: Parsed| match &mut parsed {
        Some(all) => all.extend(p),
        None => parsed = Some(p),
    };
    let parse = |bytes: &[u8], what: &str| match parse_bank(bytes) {
        Ok(p) => Ok(Some(p)),
        // A prefix's object may hold only comments; the bank as a whole must hold an entry.
        Err(mediagate_hash::BankError::NoEntries { bad_count }) => {
            if bad_count > 0 {
                Ok(Some(Parsed { entries: Vec::new(), bad_lines: Vec::new(), bad_count }))
            } else {
                Ok(None)
            }
        }
        Err(e) => Err(source_error(spec, format!("{what}: {e}"))),
    };
    match (&spec.source, fingerprint) {
        (BankSource::File(path), Fingerprint::File { len, .. }) => {
            if *len > MAX_BANK_BYTES {
                return Err(source_error(spec, format!("{len} bytes is over the {MAX_BANK_BYTES}-byte limit")));
            }
            let bytes = tokio::fs::read(path).await.map_err(|e| source_error(spec, format!("cannot read it: {e}")))?;
            if let Some(p) = parse(&bytes, "the file")? {
                merge(p);
            }
        }
        (BankSource::S3Object { bucket, .. } | BankSource::S3Prefix { bucket, .. }, Fingerprint::Objects(objects)) => {
            let total: u64 = objects.iter().map(|o| o.1).sum();
            if total > MAX_BANK_BYTES {
                return Err(source_error(spec, format!("{total} bytes is over the {MAX_BANK_BYTES}-byte limit")));
            }
            for (key, _, _) in objects {
                let bytes = s3(spec, store)?
                    .get_at_most(bucket, key, MAX_BANK_BYTES)
                    .await
                    .map_err(|e| storage_error(spec, e))?;
                if let Some(p) = parse(&bytes, &format!("s3://{bucket}/{key}"))? {
                    merge(p);
                }
            }
        }
        _ => return Err(source_error(spec, "internal: the source changed kind between checks")),
    }
    let parsed = parsed.unwrap_or(Parsed { entries: Vec::new(), bad_lines: Vec::new(), bad_count: 0 });
    for bad in &parsed.bad_lines {
        warn!(bank = %spec.name, line = bad.line, reason = %bad.reason, "skipping a malformed hash bank line");
    }
    metrics.bank_bad_lines(&spec.name, parsed.bad_count);
    if parsed.entries.is_empty() && !spec.may_be_empty {
        return Err(source_error(
            spec,
            format!(
                "it holds no valid entry ({} malformed lines); a bank must list at least one hash",
                parsed.bad_count
            ),
        ));
    }
    Ok(parsed.entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_name_files_objects_and_prefixes() {
        let specs = parse_specs(" ncmec=/etc/banks/ncmec.txt, stopncii=s3://banks/stopncii.txt,ours=s3://banks/ours/ ")
            .unwrap();
        assert_eq!(specs.len(), 3);
        assert_eq!(specs[0].source, BankSource::File("/etc/banks/ncmec.txt".into()));
        assert_eq!(specs[1].source, BankSource::S3Object { bucket: "banks".into(), key: "stopncii.txt".into() });
        assert_eq!(specs[2].source, BankSource::S3Prefix { bucket: "banks".into(), prefix: "ours/".into() });
        assert_eq!(
            parse_specs("all=s3://banks").unwrap()[0].source,
            BankSource::S3Prefix { bucket: "banks".into(), prefix: String::new() }
        );
        assert!(parse_specs("").unwrap().is_empty());
    }

    #[test]
    fn bad_specs_say_what_to_fix() {
        assert!(parse_specs("confirmed=/x").unwrap_err().contains("reserved"));
        assert!(parse_specs("a=/x,a=/y").unwrap_err().contains("twice"));
        assert!(parse_specs("/just/a/path").unwrap_err().contains("name=SOURCE"));
        assert!(parse_specs(".hidden=/x").unwrap_err().contains("bank name"));
        assert!(parse_specs("a=").unwrap_err().contains("needs a SOURCE"));
        assert!(parse_specs("a=s3:///key").unwrap_err().contains("no bucket"));
    }
}
