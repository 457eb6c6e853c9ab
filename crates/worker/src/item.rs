//! One item's journey: fetch with limits → sha256/md5 and the banks' exact entries → one
//! sandbox call (identify, probe, admit, process, PDQ) → the banks' PDQ entries → classifier on
//! the returned tensors → store outputs, or block and quarantine → tidy up.
//!
//! Architecture invariant: the worker never parses the item's bytes. It fetches them, hands
//! them to the sandbox once, and stores what comes back; `store` is reached only to fetch, to
//! write outputs (or the quarantine copy) and to remove stale outputs.

use std::sync::Arc;
use std::time::Duration;

use mediagate_contract::keys::{quarantine_original_key, quarantine_verdict_key};
use mediagate_contract::review::{latest_decision_key, quarantine_item_prefix, Decision, DecisionKind};
use mediagate_contract::{
    FramePdq, HashMatch, Hashes, Item, ItemStatus, ItemVerdict, JobKind, MediaType, NudityPolicy, NudityResult, Output,
    ReviewNote,
};
use mediagate_contract::{ItemId, JobId};
use mediagate_hash::Query;
use mediagate_media::{Encoded, Format, FrameHash, ImageHash, PhotoOutput, VideoOutput, VoiceOutput};
use mediagate_sandbox::{Admit, ChildLimits, Done, Input, InputWriter, Outcome, Request, Stats, Task, Tensor};
use mediagate_store::BodySink;
use tokio::sync::OwnedSemaphorePermit;
use tracing::{debug, info, info_span, warn, Instrument};

use crate::codes::{self, media_type_of, Rejection, Requeue, Stop};
use crate::metrics::label::{ItemStage, Media, SandboxRun, Timed};
use crate::metrics::{Metrics, StageTimer};
use crate::{Lane, Shared, Stage};

/// What an item task needs to know about its job.
pub(crate) struct ItemCtx {
    pub shared: Arc<Shared>,
    pub job_id: JobId,
    pub kind: JobKind,
    pub lane: Lane,
    /// Remove objects under the item's prefix that the new verdict does not list.
    pub tidy: bool,
    /// The nudity filter of this job, when it applies.
    pub nudity: Option<NudityPolicy>,
    /// The job's revision and its verdict's `processed_at`, for the quarantined verdict entry.
    pub revision: u64,
    pub processed_at: String,
    /// Set for an item of a reprocess job that its stored verdict had blocked: the job's
    /// fingerprint (§9), against which a moderator's release is checked.
    pub release_check: Option<String>,
}

impl ItemCtx {
    /// Tells whoever watches (`inspect`'s spinner) which stage the item is in.
    fn stage(&self, item_id: &ItemId, stage: Stage) {
        if let Some(progress) = &self.shared.progress {
            progress(item_id, stage);
        }
    }
}

/// A moderator's release that holds for this item (§9): the quarantined original, whose sha256
/// is the decision's, and the note the verdict reports.
struct Release {
    bytes: Arc<Input>,
    /// Its digests, computed once to check the decision and used again for the verdict.
    digests: Digests,
    note: ReviewNote,
}

/// An item's verdict entry, and where its original was quarantined (a blocked item).
pub(crate) struct ItemDone {
    pub verdict: ItemVerdict,
    pub quarantine: Option<QuarantineRef>,
}

/// The quarantined original of a blocked item, for its escalation (§8).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub(crate) struct QuarantineRef {
    pub bucket: String,
    pub key: String,
}

/// Processes one item to its verdict entry. `Err` only for faults that are not the input's.
pub(crate) async fn process_item(ctx: ItemCtx, item: Item) -> Result<ItemDone, Requeue> {
    let span = info_span!("item", job_id = %ctx.job_id, item_id = %item.item_id);
    async move {
        let done = process(&ctx, &item).await?;
        let verdict = &done.verdict;
        ctx.shared.metrics.item_done(verdict);
        // A blocked item must leave no cleared output behind, whatever an earlier delivery wrote.
        if ctx.tidy || verdict.status == ItemStatus::Blocked {
            remove_stale_outputs(&ctx, &item.item_id, verdict).await?;
        }
        Ok(done)
    }
    .instrument(span)
    .await
}

/// The item's work, step by step: obtain the bytes (a release's quarantined original, or the
/// source) → the banks' exact entries → one sandbox call → measure (score, hashes, outputs) →
/// the banks' PDQ entries → decide → commit (store the outputs, or block).
async fn process(ctx: &ItemCtx, item: &Item) -> Result<ItemDone, Requeue> {
    // One snapshot of the banks for the whole item: it also says whether the MD5 is needed.
    let banks = ctx.shared.banks.current();
    let obtained = match obtain(ctx, item, banks.has_md5()).await? {
        Ok(obtained) => obtained,
        Err(rejected) => return Ok(rejected),
    };
    let hashes = Hashes::bytes_only(hex::encode(obtained.digests.sha256));
    // Exact entries are checked before anything looks inside the file (contract §3): a known
    // file is blocked even when it would be refused for its format or length.
    let exact =
        lookup(&ctx.shared.metrics, &banks, |b| b.exact(&obtained.digests.sha256, obtained.digests.md5.as_ref()));
    let (done, stats) = match sandboxed(ctx, item, obtained.bytes.clone()).await? {
        Ran::Done(done, stats) => (*done, stats),
        Ran::Refused { rejection, format } => {
            let ext = format.map_or("bin", |f| f.ext());
            return match refused(item, rejection, hashes, exact, obtained.review.clone()) {
                Decided::Block(measured, matched) => block(ctx, item, ext, &obtained.bytes, measured, matched).await,
                Decided::Final(done) => Ok(done),
            };
        }
    };
    let measured = measure(ctx, item, done.outcome, hashes, stats.classify_prep).await?;
    let matched = exact.or_else(|| {
        let max = ctx.shared.config.banks.pdq_max_distance;
        lookup(&ctx.shared.metrics, &banks, |b| b.pdq(&measured.queries, max))
    });
    match decide(obtained.review.clone(), matched, measured.verdict) {
        Decided::Block(verdict, matched) => {
            block(ctx, item, done.format.ext(), &obtained.bytes, verdict, matched).await
        }
        Decided::Final(done) => commit(ctx, item, done.verdict, measured.uploads).await,
    }
}

/// The bytes an item is processed from, with what they hold in hand.
struct Obtained {
    bytes: Arc<Input>,
    digests: Digests,
    /// A moderator's release that holds for this item (§9): its bytes are the quarantined original.
    review: Option<ReviewNote>,
    /// Keeps the bytes counted against the worker's input budget until the item is done.
    _permit: OwnedSemaphorePermit,
}

/// The first step: a released item's quarantined original (the source may be gone), or the
/// source fetched within the limits and hashed. `Ok(Err(..))` is the item's final entry: a
/// source that cannot be had (missing, too large, not allowed).
async fn obtain(ctx: &ItemCtx, item: &Item, with_md5: bool) -> Result<Result<Obtained, ItemDone>, Requeue> {
    let release = match &ctx.release_check {
        Some(job_sha256) => find_release(ctx, item, job_sha256, with_md5).await?,
        None => None,
    };
    if let Some(r) = release {
        let _permit = reserve(ctx, r.bytes.len() as u64).await?;
        return Ok(Ok(Obtained { bytes: r.bytes, digests: r.digests, review: Some(r.note), _permit }));
    }
    match fetch(ctx, item).await {
        Ok((bytes, _permit)) => {
            debug!(bytes = bytes.len(), "fetched source");
            let digests = digest(bytes.clone(), with_md5).await?;
            Ok(Ok(Obtained { bytes, digests, review: None, _permit }))
        }
        Err(Stop::Rejected(r)) => Ok(Err(rejected(item, r, None))),
        Err(Stop::Requeue(q)) => Err(q),
    }
}

/// What decides an item's fate once it is measured.
enum Decided {
    /// Block it: the measured entry, and the bank entry that matched (else the filter flagged it).
    Block(ItemVerdict, Option<mediagate_hash::Match>),
    /// Its entry stands as it is (outputs still to be stored, for a cleared one).
    Final(ItemDone),
}

/// A file the sandbox refused: rejected as measured, unless an exact bank entry matched it,
/// which blocks it even so — but not when a moderator released it, which keeps the match as
/// measured.
fn refused(
    item: &Item,
    rejection: Rejection,
    hashes: Hashes,
    exact: Option<mediagate_hash::Match>,
    review: Option<ReviewNote>,
) -> Decided {
    match exact {
        Some(m) if review.is_none() => {
            let measured = ItemVerdict {
                media_type: rejection.media_type,
                hashes: Some(hashes),
                ..ItemVerdict::rejected(&item.item_id, None, rejection.reason)
            };
            Decided::Block(measured, Some(m))
        }
        exact => {
            let mut done = rejected(item, rejection, Some(hashes));
            done.verdict.hash_match = exact.map(hash_match);
            done.verdict.review = review;
            Decided::Final(done)
        }
    }
}

/// A processed item's fate: a bank match (exact, or PDQ) or the filter's flag blocks it;
/// neither can block an item a moderator released, which keeps both as measured.
fn decide(review: Option<ReviewNote>, matched: Option<mediagate_hash::Match>, measured: ItemVerdict) -> Decided {
    match review {
        Some(note) => {
            debug!(by = %note.by, "released by a moderator: clearing from the quarantined original");
            let verdict = ItemVerdict { hash_match: matched.map(hash_match), review: Some(note), ..measured };
            Decided::Final(ItemDone { verdict, quarantine: None })
        }
        None if matched.is_some() || measured.nudity.as_ref().is_some_and(|n| n.flagged) => {
            Decided::Block(measured, matched)
        }
        None => Decided::Final(ItemDone { verdict: measured, quarantine: None }),
    }
}

/// The last step of a cleared item: its outputs stored, and listed in its entry.
async fn commit(ctx: &ItemCtx, item: &Item, measured: ItemVerdict, uploads: Vec<Upload>) -> Result<ItemDone, Requeue> {
    ctx.stage(&item.item_id, Stage::Store);
    let media = Media::of(measured.media_type);
    let _store_timer = StageTimer::start(&ctx.shared.metrics, Timed::Item(ItemStage::Store, media));
    let outputs = futures_util::future::try_join_all(uploads.into_iter().map(|u| store(ctx, &item.item_id, u))).await?;
    Ok(ItemDone { verdict: ItemVerdict { outputs, ..measured }, quarantine: None })
}

/// What the media work measured: the cleared entry it would make, the outputs to store, and
/// the PDQ hashes to look up in the banks.
struct Measured {
    verdict: ItemVerdict,
    uploads: Vec<Upload>,
    queries: Vec<Query>,
}

/// Scores the item where the filter applies and builds its measured entry. The filter scores
/// exactly what the outputs are made from: the tensors came from the same decode (a photo) or
/// the same decode pass (a video's sampled frames, the poster among them).
async fn measure(
    ctx: &ItemCtx,
    item: &Item,
    outcome: Outcome,
    hashes: Hashes,
    classify_prep: Duration,
) -> Result<Measured, Requeue> {
    let media_type = media_type_of(outcome.class());
    let base = cleared(&item.item_id, media_type);
    let min_quality = ctx.shared.config.banks.pdq_min_quality;
    Ok(match outcome {
        Outcome::Photo { out, tensors } => {
            let nudity = score(ctx, &item.item_id, Media::Image, tensors, classify_prep).await?;
            measured_photo(base, out, nudity, hashes, min_quality)
        }
        Outcome::Video { out, tensors } => {
            ctx.shared.metrics.video_path(out.path);
            debug!(path = out.path.as_str(), reencoded_because = ?out.reencoded_because, "video streams copied or re-encoded");
            let nudity = score(ctx, &item.item_id, Media::Video, tensors, classify_prep).await?;
            measured_video(base, out, nudity, hashes, min_quality)
        }
        Outcome::Voice(out) => measured_voice(base, out, hashes),
    })
}

/// A photo's entry, outputs (`full`, `thumb`) and PDQ queries.
fn measured_photo(
    base: ItemVerdict,
    out: PhotoOutput,
    nudity: Option<NudityResult>,
    hashes: Hashes,
    min_quality: u8,
) -> Measured {
    let queries = pdq_queries(min_quality, Some(&out.hash), &[]);
    let verdict = ItemVerdict {
        width: Some(out.width),
        height: Some(out.height),
        blurhash: Some(out.blurhash),
        nudity,
        hashes: Some(Hashes { pdq: Some(out.hash.pdq.to_hex()), pdq_quality: Some(out.hash.quality), ..hashes }),
        ..base
    };
    Measured { verdict, uploads: vec![Upload::image("full", out.full), Upload::image("thumb", out.thumb)], queries }
}

/// A video's entry (its sampled frames' PDQ among the hashes), outputs (`video`, `poster`) and
/// PDQ queries.
fn measured_video(
    base: ItemVerdict,
    out: VideoOutput,
    nudity: Option<NudityResult>,
    hashes: Hashes,
    min_quality: u8,
) -> Measured {
    let queries = pdq_queries(min_quality, Some(&out.hash), &out.frame_hashes);
    let frames =
        out.frame_hashes.iter().map(|f| FramePdq { ms: f.ms, pdq: f.pdq.to_hex(), quality: f.quality }).collect();
    let verdict = ItemVerdict {
        width: Some(out.width),
        height: Some(out.height),
        duration_ms: Some(out.duration_ms),
        blurhash: Some(out.blurhash),
        nudity,
        hashes: Some(Hashes {
            pdq: Some(out.hash.pdq.to_hex()),
            pdq_quality: Some(out.hash.quality),
            pdq_frames: Some(frames),
            ..hashes
        }),
        ..base
    };
    let mp4 = Upload {
        variant: "video",
        ext: "mp4",
        content_type: "video/mp4",
        bytes: out.mp4,
        dims: Some((out.mp4_width, out.mp4_height)),
    };
    Measured { verdict, uploads: vec![mp4, Upload::image("poster", out.poster)], queries }
}

/// A voice note's entry and its one output (`voice`); no PDQ.
fn measured_voice(base: ItemVerdict, out: VoiceOutput, hashes: Hashes) -> Measured {
    let verdict =
        ItemVerdict { duration_ms: Some(out.duration_ms), waveform: Some(out.waveform), hashes: Some(hashes), ..base };
    let ogg = Upload { variant: "voice", ext: "ogg", content_type: "audio/ogg", bytes: out.ogg, dims: None };
    Measured { verdict, uploads: vec![ogg], queries: Vec::new() }
}

/// A rejected entry, with the hashes of the bytes when they were fetched.
fn rejected(item: &Item, r: Rejection, hashes: Option<Hashes>) -> ItemDone {
    let verdict = ItemVerdict { hashes, ..ItemVerdict::rejected(&item.item_id, r.media_type, r.reason) };
    ItemDone { verdict, quarantine: None }
}

/// The original's digests, for the verdict and the exact bank entries.
struct Digests {
    sha256: [u8; 32],
    /// Only when a bank holds MD5 entries (the verdict never shows it).
    md5: Option<[u8; 16]>,
}

/// Hashes the fetched bytes off the async threads (a 200 MiB video takes most of a second).
async fn digest(bytes: Arc<Input>, with_md5: bool) -> Result<Digests, Requeue> {
    use sha2::Digest as _;
    tokio::task::spawn_blocking(move || Digests {
        sha256: sha2::Sha256::digest(&bytes[..]).into(),
        md5: with_md5.then(|| md5::Md5::digest(&bytes[..]).into()),
    })
    .await
    .map_err(|e| Requeue::internal(format!("hashing the original failed: {e}")))
}

/// One bank lookup, timed and counted.
fn lookup(
    metrics: &Metrics,
    banks: &mediagate_hash::Banks,
    find: impl FnOnce(&mediagate_hash::Banks) -> Option<mediagate_hash::Match>,
) -> Option<mediagate_hash::Match> {
    if banks.is_empty() {
        return None;
    }
    let started = std::time::Instant::now();
    let found = find(banks);
    metrics.bank_lookup_seconds.observe(started.elapsed().as_secs_f64());
    found
}

/// The PDQ hashes an item is matched by (§8): the image's (or poster's) 8 rotations and
/// mirrors and every sampled frame, each only when its quality reaches the minimum (a flat or
/// tiny picture's hash says nothing and would match other flat pictures).
fn pdq_queries(min: u8, image: Option<&ImageHash>, frames: &[FrameHash]) -> Vec<Query> {
    let mut queries = Vec::new();
    if let Some(h) = image.filter(|h| h.quality >= min) {
        queries.extend(h.variants.iter().map(|&hash| Query { hash, frame_ms: None }));
    }
    queries.extend(frames.iter().filter(|f| f.quality >= min).map(|f| Query { hash: f.pdq, frame_ms: Some(f.ms) }));
    queries
}

/// Fetches the source within the limit with one GET (no HEAD: the answer's `Content-Length`
/// is checked against the limit before the body is read; a local file's length likewise),
/// reserving its size from the worker's
/// budget of input bytes in hand before reading the body (so prefetched jobs cannot hold more
/// than that between them). When the budget is spent, the connection is let go while the item
/// waits for its share, and the GET is made again once it has it. The body goes straight into a
/// sealed memfd, which the sandbox child maps: the bytes are held once, never copied.
async fn fetch(ctx: &ItemCtx, item: &Item) -> Result<(Arc<Input>, OwnedSemaphorePermit), Stop> {
    let shared = &ctx.shared;
    let (bucket, key) = (&item.source.bucket, &item.source.key);
    let limit = shared.config.max_input_bytes;
    let _timer = StageTimer::start(&ctx.shared.metrics, Timed::Fetch);
    ctx.stage(&item.item_id, Stage::Fetch);
    let new_sink = || {
        Input::writer().map(InputSink).map_err(|e| Requeue::internal(format!("cannot make a memfd for the input: {e}")))
    };
    let open = || async {
        shared.storage.open_source(bucket, key, limit).await.map_err(|e| codes::source_error(e, bucket, key))
    };
    let mut download = open().await?;
    let size = download.size().unwrap_or(limit);
    let permit = match try_reserve(ctx, size) {
        Some(permit) => permit,
        None => {
            drop(download);
            let permit = reserve(ctx, size).await?;
            download = open().await?;
            permit
        }
    };
    let mut sink = new_sink()?;
    download.read_into(&mut sink).await.map_err(|e| codes::source_error(e, bucket, key))?;
    let bytes = sink.0.finish().map_err(|e| Requeue::internal(format!("cannot seal the input's memfd: {e}")))?;
    Ok((Arc::new(bytes), permit))
}

/// An input shared with a PUT body (`Bytes::from_owner`), so quarantining it copies nothing.
struct HeldInput(Arc<Input>);

impl AsRef<[u8]> for HeldInput {
    fn as_ref(&self) -> &[u8] {
        self.0.bytes()
    }
}

/// A download written into an input's memfd.
struct InputSink(InputWriter);

/// For a local file (`inspect`), read through `std::io::copy`.
impl std::io::Write for InputSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.write(buf)?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl BodySink for InputSink {
    fn append(&mut self, chunk: &[u8]) -> std::io::Result<()> {
        self.0.write(chunk)
    }
    fn len(&self) -> u64 {
        self.0.len()
    }
    fn reset(&mut self) -> std::io::Result<()> {
        self.0.clear()
    }
}

/// The share of the worker's budget of input bytes in hand that `size` bytes take, in KiB.
fn budget_kib(ctx: &ItemCtx, size: u64) -> u32 {
    u32::try_from(size.div_ceil(1024).max(1)).unwrap_or(u32::MAX).min(ctx.shared.input_budget_kib)
}

/// Reserves `size` bytes from the worker's budget of input bytes in hand, if they are free now.
fn try_reserve(ctx: &ItemCtx, size: u64) -> Option<OwnedSemaphorePermit> {
    ctx.shared.input_budget.clone().try_acquire_many_owned(budget_kib(ctx, size)).ok()
}

/// Reserves `size` bytes from the worker's budget of input bytes in hand.
async fn reserve(ctx: &ItemCtx, size: u64) -> Result<OwnedSemaphorePermit, Requeue> {
    let kib = budget_kib(ctx, size);
    ctx.shared
        .input_budget
        .clone()
        .acquire_many_owned(kib)
        .await
        .map_err(|_| Requeue::internal("worker is shutting down"))
}

/// One slot of CPU work (media in the sandbox, or the classifier) for this item. Only this
/// work holds a slot: fetching and storing overlap with other items' CPU work, so the slots
/// stay busy while S3 and the broker answer. Reprocess items first pass the gate that keeps
/// one slot for live traffic.
async fn cpu_slot(ctx: &ItemCtx) -> Result<Slot<'_>, Requeue> {
    let closed = |_| Requeue::internal("worker is shutting down");
    let gate = match ctx.lane {
        Lane::Reprocess => Some(ctx.shared.reprocess_gate.clone().acquire_owned().await.map_err(closed)?),
        Lane::Live => None,
    };
    let slot = ctx.shared.slots.clone().acquire_owned().await.map_err(closed)?;
    ctx.shared.metrics.slots_busy.inc();
    Ok(Slot { _gate: gate, _slot: slot, since: std::time::Instant::now(), ctx })
}

/// A held CPU slot; a live item's time in it counts towards the window of jobs in hand.
struct Slot<'a> {
    _gate: Option<OwnedSemaphorePermit>,
    _slot: OwnedSemaphorePermit,
    since: std::time::Instant,
    ctx: &'a ItemCtx,
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.ctx.shared.metrics.slots_busy.dec();
        if self.ctx.lane == Lane::Live {
            self.ctx.shared.window.slot(self.since.elapsed());
        }
    }
}

/// What the job takes, in the sandbox's terms.
pub(crate) fn admit(kind: JobKind) -> Admit {
    match kind {
        JobKind::Media => Admit::Visual,
        JobKind::VoiceNote => Admit::Audio,
    }
}

/// What the item's sandbox call came to.
enum Ran {
    /// Processed.
    Done(Box<Done>, Stats),
    /// Refused for what the file is (or a decoder that died on it), with the format when the
    /// child recognised one (the quarantine key's extension, should a bank have matched).
    Refused { rejection: Rejection, format: Option<Format> },
}

/// The item's one sandbox call: identify, probe, admit and process.
async fn sandboxed(ctx: &ItemCtx, item: &Item, bytes: Arc<Input>) -> Result<Ran, Requeue> {
    let shared = &ctx.shared;
    let admit = admit(ctx.kind);
    let settings = shared.config.media.clone();
    // Until the child says what the file is, the longest budget the job admits; the child then
    // tightens its own clock and CPU limit to its class's.
    let budget = admit.budget(&settings);
    let request = Request {
        job_id: ctx.job_id.to_string(),
        item_id: item.item_id.to_string(),
        task: Task { admit, settings, classify: ctx.nudity.is_some() },
        limits: ChildLimits {
            memory_bytes: shared.config.sandbox_memory_bytes(),
            // A backstop behind the wall clock: two busy cores for the whole budget, and some.
            cpu_seconds: budget.as_secs().saturating_mul(2).saturating_add(10),
            file_bytes: SANDBOX_FILE_BYTES,
        },
    };
    let waiting = StageTimer::start(&ctx.shared.metrics, Timed::SlotWait);
    let slot = cpu_slot(ctx).await?;
    drop(waiting);
    ctx.stage(&item.item_id, Stage::MediaWork);
    let started = std::time::Instant::now();
    let ran = shared.sandbox.run(request, bytes, budget).await;
    drop(slot);
    let report = match ran {
        Ok(report) => report,
        Err(e) => return sandbox_failed(&shared.metrics, e),
    };
    count_run(&shared.metrics, &report, started.elapsed());
    match report.result {
        Ok(done) => Ok(Ran::Done(Box::new(done), report.stats)),
        Err(refusal) => {
            let format = refusal.format();
            match codes::refusal(refusal) {
                Stop::Rejected(rejection) => Ok(Ran::Refused { rejection, format }),
                Stop::Requeue(q) => Err(q),
            }
        }
    }
}

/// A sandbox run that gave no answer: counted, and rejected (it crashed twice on the file) or
/// requeued (it overran its clock, or no child could be started), as `codes` decides.
fn sandbox_failed(metrics: &Metrics, e: mediagate_sandbox::SandboxError) -> Result<Ran, Requeue> {
    let outcome = match &e {
        mediagate_sandbox::SandboxError::Crashed { .. } => SandboxRun::Crashed,
        mediagate_sandbox::SandboxError::TimedOut { .. } => SandboxRun::TimedOut,
        mediagate_sandbox::SandboxError::Spawn { .. } => SandboxRun::SpawnFailed,
    };
    metrics.sandbox_run(outcome);
    if outcome == SandboxRun::Crashed {
        warn!(error = %e, "the media sandbox crashed twice on this file; rejecting it");
    }
    match codes::sandbox_error(e) {
        Stop::Rejected(rejection) => Ok(Ran::Refused { rejection, format: None }),
        Stop::Requeue(q) => Err(q),
    }
}

/// Counts an answered sandbox run: its time as the worker waited (`waited`) and as the child
/// timed it, its CPU and its peak memory.
fn count_run(m: &Metrics, report: &mediagate_sandbox::Report, waited: Duration) {
    let media = match &report.result {
        Ok(done) => Media::of(Some(media_type_of(done.outcome.class()))),
        Err(_) => Media::Unknown,
    };
    m.stage(Timed::Item(ItemStage::Process, media), waited.as_secs_f64());
    m.sandbox_run(if report.stats.crashes > 0 { SandboxRun::CrashedOnce } else { SandboxRun::Ok });
    m.stage(Timed::Item(ItemStage::MediaWork, media), report.stats.work.as_secs_f64());
    m.sandbox_cpu.inc_by(report.stats.cpu.as_secs_f64());
    if report.stats.peak_rss_bytes > 0 {
        m.sandbox_peak_rss(media, report.stats.peak_rss_bytes);
    }
}

/// Largest file a sandbox child may write (the video muxer's temporary MP4).
const SANDBOX_FILE_BYTES: u64 = 4 << 30;

/// Runs the classifier on tensors from the sandbox, off the async threads, when the job's
/// filter applies; the item's result is the highest score. A job that needs the filter is
/// never cleared without a score: no tensor then is a bug, and the job goes back to the queue.
async fn score(
    ctx: &ItemCtx,
    item_id: &ItemId,
    media: Media,
    tensors: Vec<Tensor>,
    prep: Duration,
) -> Result<Option<NudityResult>, Requeue> {
    let Some(policy) = ctx.nudity else { return Ok(None) };
    // A transparent image gives two renderings (on black, on white): one frame as reported.
    if tensors.is_empty() {
        return Err(Requeue::internal(format!(
            "the nudity filter applies but the sandbox returned no {} frame",
            media.as_str()
        )));
    }
    let frames = if media == Media::Image { 1 } else { u32::try_from(tensors.len()).unwrap_or(u32::MAX) };
    let classifier = ctx.shared.classifier.clone();
    let _slot = cpu_slot(ctx).await?;
    ctx.stage(item_id, Stage::Classify);
    let started = std::time::Instant::now();
    let max = tokio::task::spawn_blocking(move || {
        tensors.iter().try_fold(0f32, |max, t| classifier.infer(&t.0).map(|s| max.max(s)))
    })
    .await
    .map_err(|e| Requeue::internal(format!("the classifier thread failed: {e}")))?
    .map_err(|e| Requeue::internal(format!("running the classifier: {e}")))?;
    ctx.shared.metrics.stage(Timed::Item(ItemStage::Classify, media), (started.elapsed() + prep).as_secs_f64());
    Ok(Some(nudity_result(&ctx.shared.classifier, policy, max, frames)))
}

/// The classifier's verdict on one item. Scores are rounded to 6 decimals: an f32 widened to
/// f64 prints noise digits otherwise.
fn nudity_result(
    classifier: &mediagate_classify::Classifier,
    policy: NudityPolicy,
    score: f32,
    frames: u32,
) -> NudityResult {
    let score = round6(score);
    NudityResult {
        model: classifier.model_name().to_string(),
        model_sha256: classifier.model_sha256().to_string(),
        score,
        threshold: policy.threshold,
        flagged: score >= policy.threshold,
        frames,
    }
}

/// An f32 score as the verdict's f64, rounded to 6 decimals.
pub(crate) fn round6(score: f32) -> f64 {
    (f64::from(score) * 1e6).round() / 1e6
}

/// A cleared item of this type without measurements or outputs; the caller fills in what applies.
fn cleared(item_id: &ItemId, media_type: MediaType) -> ItemVerdict {
    ItemVerdict {
        item_id: item_id.clone(),
        status: ItemStatus::Cleared,
        media_type: Some(media_type),
        reason: None,
        width: None,
        height: None,
        duration_ms: None,
        waveform: None,
        blurhash: None,
        nudity: None,
        hashes: None,
        hash_match: None,
        review: None,
        outputs: Vec::new(),
    }
}

/// Turns a measured item into a `blocked` one — for a bank match (`hash.matched`, which comes
/// first: the rules put the banks before the filter) or the filter's flag: no cleared output;
/// the very bytes that were fetched and hashed PUT to quarantine, with the item's entry beside
/// them in the `{job_id, revision, processed_at, item}` wrapper of §4 (unless quarantine is off).
async fn block(
    ctx: &ItemCtx,
    item: &Item,
    ext: &str,
    bytes: &Arc<Input>,
    measured: ItemVerdict,
    matched: Option<mediagate_hash::Match>,
) -> Result<ItemDone, Requeue> {
    let media_type = measured.media_type.unwrap_or(MediaType::Image);
    let reason = match &matched {
        Some(m) => {
            ctx.shared.metrics.bank_match(&m.bank, m.kind);
            Some(codes::hash_matched(media_type, m))
        }
        None => measured.nudity.as_ref().map(|n| codes::flagged(media_type, n)),
    };
    let hash_match = matched.map(hash_match);
    let blocked = ItemVerdict { status: ItemStatus::Blocked, reason, hash_match, outputs: Vec::new(), ..measured };
    let Some(q) = &ctx.shared.config.quarantine_bucket else {
        return Ok(ItemDone { verdict: blocked, quarantine: None });
    };
    let storage = &ctx.shared.storage;
    let original = quarantine_original_key(&ctx.job_id, &item.item_id, ext);
    let kept = storage
        .put_record(q, &original, bytes::Bytes::from_owner(HeldInput(bytes.clone())), "application/octet-stream")
        .await
        .map_err(|e| Requeue::storage(format!("writing the original to s3://{q}/{original}: {e}")))?;
    // A local run (`inspect`) keeps no quarantine: nothing of a blocked item is written.
    if !kept {
        return Ok(ItemDone { verdict: blocked, quarantine: None });
    }
    let entry = QuarantinedEntry {
        job_id: &ctx.job_id,
        revision: ctx.revision,
        processed_at: &ctx.processed_at,
        item: &blocked,
    };
    let entry = serde_json::to_vec_pretty(&entry)
        .map_err(|e| Requeue::internal(format!("serialising the item verdict: {e}")))?;
    let key = quarantine_verdict_key(&ctx.job_id, &item.item_id);
    storage
        .put_record(q, &key, entry.into(), "application/json")
        .await
        .map_err(|e| Requeue::storage(format!("writing s3://{q}/{key}: {e}")))?;
    Ok(ItemDone { verdict: blocked, quarantine: Some(QuarantineRef { bucket: q.clone(), key: original }) })
}

/// A bank match as the verdict reports it.
fn hash_match(m: mediagate_hash::Match) -> HashMatch {
    HashMatch {
        bank: m.bank,
        kind: m.kind.as_str().to_string(),
        hash: m.hash,
        distance: m.distance,
        label: m.label,
        frame_ms: m.frame_ms,
    }
}

/// The item's latest decision, when it is a release that still holds (§9): made on this job
/// (`job_sha256`) and on the original now in quarantine (its sha256). Anything else — no
/// decision, a confirm, another job under the same id, another file — is `None`: the item is
/// processed as any item is.
async fn find_release(
    ctx: &ItemCtx,
    item: &Item,
    job_sha256: &str,
    with_md5: bool,
) -> Result<Option<Release>, Requeue> {
    let Some(q) = &ctx.shared.config.quarantine_bucket else { return Ok(None) };
    let store = &ctx.shared.storage;
    let storage = |what: &str, e: mediagate_store::StoreError| Requeue::storage(format!("{what} in s3://{q}: {e}"));
    let prefix = quarantine_item_prefix(&ctx.job_id, &item.item_id);
    let keys = store.list_records(q, &prefix).await.map_err(|e| storage("listing the item's quarantine", e))?;
    let Some(latest) = latest_decision_key(keys.iter().map(String::as_str)) else { return Ok(None) };
    // A decision is a small file of ours; one that vanished since the listing is none.
    let Some(body) = store.get_record(q, latest, 1 << 20).await.map_err(|e| storage("reading a decision", e))? else {
        return Ok(None);
    };
    let decision: Decision = match serde_json::from_slice(&body) {
        Ok(d) => d,
        Err(e) => {
            warn!(key = %latest, error = %e, "a review decision does not parse; ignoring it");
            return Ok(None);
        }
    };
    if decision.decision != DecisionKind::Released {
        return Ok(None);
    }
    if decision.job_sha256 != job_sha256 {
        info!(key = %latest, "a release was made on another job under this id; processing as usual");
        return Ok(None);
    }
    let original = format!("{prefix}original.");
    let Some(key) = keys.iter().find(|k| k.starts_with(&original)) else { return Ok(None) };
    let bytes = match store.get_record(q, key, ctx.shared.config.max_input_bytes).await {
        Ok(Some(b)) => b,
        Ok(None) | Err(mediagate_store::StoreError::TooLarge { .. }) => return Ok(None),
        Err(e) => return Err(storage("reading the quarantined original", e)),
    };
    let bytes = Arc::new(
        Input::copy_of(&bytes).map_err(|e| Requeue::internal(format!("cannot make a memfd for the input: {e}")))?,
    );
    let digests = digest(bytes.clone(), with_md5).await?;
    if hex::encode(digests.sha256) != decision.sha256 {
        info!(key = %key, "the quarantined original is not the file the release was made on; processing as usual");
        return Ok(None);
    }
    let note = ReviewNote { decision: "released".to_string(), by: decision.by, at: decision.at, note: decision.note };
    Ok(Some(Release { bytes, digests, note }))
}

/// `{job_id}/{item_id}/verdict.json` in the quarantine bucket (§4).
#[derive(serde::Serialize)]
struct QuarantinedEntry<'a> {
    job_id: &'a str,
    revision: u64,
    processed_at: &'a str,
    item: &'a ItemVerdict,
}

/// One output variant on its way to the output bucket.
struct Upload {
    variant: &'static str,
    ext: &'static str,
    content_type: &'static str,
    bytes: Vec<u8>,
    /// Width and height, for images and videos.
    dims: Option<(u32, u32)>,
}

impl Upload {
    /// An encoded image variant (`full`, `thumb`, `poster`).
    fn image(variant: &'static str, enc: Encoded) -> Upload {
        Upload {
            variant,
            ext: enc.kind.ext(),
            content_type: enc.kind.content_type(),
            dims: Some((enc.width, enc.height)),
            bytes: enc.bytes,
        }
    }
}

/// Writes one variant under its contract key and describes it for the verdict.
async fn store(ctx: &ItemCtx, item_id: &ItemId, up: Upload) -> Result<Output, Requeue> {
    let storage = &ctx.shared.storage;
    let key = storage.output_key(&ctx.job_id, item_id, up.variant, up.ext);
    let (bucket, receipt) =
        storage.put_output(&ctx.shared.config.output_bucket, &key, up.bytes, up.content_type).await?;
    Ok(Output {
        variant: up.variant.to_string(),
        bucket,
        key,
        content_type: up.content_type.to_string(),
        bytes: receipt.bytes,
        width: up.dims.map(|d| d.0),
        height: up.dims.map(|d| d.1),
        sha256: receipt.sha256,
    })
}

/// Deletes objects under `media/{job}/{item}/` that this verdict does not list (a variant whose
/// extension changed, or outputs of an item that is now rejected or blocked).
async fn remove_stale_outputs(ctx: &ItemCtx, item_id: &ItemId, verdict: &ItemVerdict) -> Result<(), Requeue> {
    let bucket = &ctx.shared.config.output_bucket;
    let storage = &ctx.shared.storage;
    let prefix = storage.output_item_prefix(&ctx.job_id, item_id);
    let keys = storage.list_outputs(bucket, &prefix).await?;
    for key in stale(&keys, verdict) {
        storage.delete_output(bucket, key).await?;
        debug!(%key, "removed a stale output");
    }
    Ok(())
}

/// The stored keys this verdict does not list.
fn stale<'a>(stored: &'a [String], verdict: &'a ItemVerdict) -> impl Iterator<Item = &'a String> + 'a {
    stored.iter().filter(|key| !verdict.outputs.iter().any(|o| &o.key == *key))
}

#[cfg(test)]
mod tests {
    use mediagate_contract::{Reason, ReasonCode};
    use mediagate_media::MediaClass;

    use super::*;

    fn output(key: &str) -> Output {
        Output {
            variant: "full".into(),
            bucket: "media".into(),
            key: key.into(),
            content_type: "image/jpeg".into(),
            bytes: 1,
            width: Some(1),
            height: Some(1),
            sha256: "00".into(),
        }
    }

    #[test]
    fn stale_outputs_are_what_the_new_verdict_does_not_list() {
        let stored: Vec<String> =
            ["media/j/0/full.png", "media/j/0/full.jpg", "media/j/0/thumb.jpg"].map(String::from).to_vec();
        let v = ItemVerdict {
            outputs: vec![output("media/j/0/full.jpg"), output("media/j/0/thumb.jpg")],
            ..cleared(&"0".into(), MediaType::Image)
        };
        assert_eq!(stale(&stored, &v).collect::<Vec<_>>(), vec!["media/j/0/full.png"]);
        // A rejected or blocked item lists nothing: everything stored goes.
        let r = ItemVerdict::rejected(&"0".into(), None, Reason::new(ReasonCode::InputCorrupt, "x"));
        assert_eq!(stale(&stored, &r).count(), 3);
    }

    #[test]
    fn kinds_admit_their_classes() {
        assert!(admit(JobKind::Media).admits(MediaClass::Image) && admit(JobKind::Media).admits(MediaClass::Video));
        assert!(!admit(JobKind::Media).admits(MediaClass::Audio));
        assert!(admit(JobKind::VoiceNote).admits(MediaClass::Audio));
        assert!(!admit(JobKind::VoiceNote).admits(MediaClass::Video));
    }

    #[test]
    fn before_the_file_is_known_the_clock_is_the_longest_budget_the_kind_admits() {
        let s = mediagate_media::MediaSettings::DEFAULT;
        assert_eq!(admit(JobKind::Media).budget(&s), s.video.budget.max(s.photo.budget));
        assert_eq!(admit(JobKind::VoiceNote).budget(&s), s.voice.budget);
    }

    fn a_match() -> mediagate_hash::Match {
        mediagate_hash::Match {
            bank: "ours".into(),
            kind: mediagate_hash::Kind::Sha256,
            hash: "ab".into(),
            distance: 0,
            label: None,
            frame_ms: None,
        }
    }

    fn note() -> ReviewNote {
        ReviewNote { decision: "released".into(), by: "m".into(), at: "2026-12-07T10:00:00.000Z".into(), note: None }
    }

    fn flagged(flagged: bool) -> ItemVerdict {
        let nudity = NudityResult {
            model: "open_nsfw".into(),
            model_sha256: "00".into(),
            score: 0.9,
            threshold: 0.5,
            flagged,
            frames: 1,
        };
        ItemVerdict { nudity: Some(nudity), ..cleared(&"0".into(), MediaType::Image) }
    }

    #[test]
    fn a_match_or_the_filters_flag_blocks_and_a_release_overrides_both() {
        assert!(matches!(decide(None, Some(a_match()), flagged(false)), Decided::Block(_, Some(_))));
        assert!(matches!(decide(None, None, flagged(true)), Decided::Block(_, None)));
        match decide(None, None, flagged(false)) {
            Decided::Final(done) => assert_eq!(done.verdict.status, ItemStatus::Cleared),
            Decided::Block(..) => panic!("nothing blocks it"),
        }
        match decide(Some(note()), Some(a_match()), flagged(true)) {
            Decided::Final(done) => {
                let v = done.verdict;
                assert_eq!(v.status, ItemStatus::Cleared);
                assert_eq!(v.review, Some(note()));
                assert_eq!(v.hash_match.map(|m| m.bank), Some("ours".to_string()), "the match kept as measured");
                assert!(v.nudity.is_some_and(|n| n.flagged), "the score kept as measured");
            }
            Decided::Block(..) => panic!("a released item is never blocked"),
        }
    }

    #[test]
    fn a_refused_file_is_rejected_unless_an_exact_entry_matched_it() {
        let item = Item {
            item_id: "0".into(),
            source: mediagate_contract::Source { bucket: "incoming".into(), key: "j/0".into() },
            declared_type: None,
        };
        let rejection =
            || Rejection { media_type: None, reason: Reason::new(ReasonCode::InputUnsupportedFormat, "not media") };
        let hashes = || Hashes::bytes_only("ab".into());
        match refused(&item, rejection(), hashes(), None, None) {
            Decided::Final(done) => {
                assert_eq!(done.verdict.status, ItemStatus::Rejected);
                assert!(done.verdict.hashes.is_some(), "the bytes' hashes reported");
            }
            Decided::Block(..) => panic!("nothing matched"),
        }
        match refused(&item, rejection(), hashes(), Some(a_match()), None) {
            Decided::Block(measured, Some(m)) => {
                assert_eq!(m.bank, "ours");
                assert_eq!(measured.reason.map(|r| r.code), Some(ReasonCode::InputUnsupportedFormat));
            }
            _ => panic!("an exact entry blocks even a file that cannot be processed"),
        }
        match refused(&item, rejection(), hashes(), Some(a_match()), Some(note())) {
            Decided::Final(done) => {
                assert_eq!(done.verdict.status, ItemStatus::Rejected, "released, it still cannot be processed");
                assert!(done.verdict.hash_match.is_some() && done.verdict.review.is_some());
            }
            Decided::Block(..) => panic!("a released item is never blocked"),
        }
    }

    #[test]
    fn scores_are_rounded_to_six_decimals() {
        assert_eq!(round6(0.123_456_79), 0.123457);
        assert_eq!(round6(0.5), 0.5);
        assert_eq!(round6(1.0), 1.0);
    }
}
