//! One item's journey: fetch with limits → sniff → fit the kind → process → store outputs.

use std::sync::Arc;
use std::time::Duration;

use mediagate_classify::Classifier;
use mediagate_contract::keys::{output_item_prefix, output_key, quarantine_original_key, quarantine_verdict_key};
use mediagate_contract::{
    Item, ItemStatus, ItemVerdict, JobKind, MediaType, NudityPolicy, NudityResult, Output, Reason, ReasonCode,
};
use mediagate_media::{sniff, Encoded, Format, MediaClass};
use mediagate_sandbox::{ChildLimits, Outcome, Request, SandboxError, Stats, Task, Tensor};
use tokio::sync::OwnedSemaphorePermit;
use tracing::{debug, info_span, warn, Instrument};

use crate::codes::{media_error, source_error, Transient};
use crate::metrics::{metrics, StageTimer};
use crate::{Lane, Shared};

/// What an item task needs to know about its job.
pub(crate) struct ItemCtx {
    pub shared: Arc<Shared>,
    pub job_id: String,
    pub kind: JobKind,
    pub lane: Lane,
    /// Remove objects under the item's prefix that the new verdict does not list.
    pub tidy: bool,
    /// The nudity filter of this job, when it applies.
    pub nudity: Option<NudityPolicy>,
}

/// Processes one item to its verdict entry. `Err` only for faults that are not the input's.
pub(crate) async fn process_item(ctx: ItemCtx, item: Item) -> Result<ItemVerdict, Transient> {
    let span = info_span!("item", job_id = %ctx.job_id, item_id = %item.item_id);
    async move {
        let verdict = process(&ctx, &item).await?;
        let media_type = media_label(verdict.media_type);
        let reason = verdict.reason.as_ref().map(|r| r.code.as_str()).unwrap_or("none");
        let status = match verdict.status {
            ItemStatus::Cleared => "cleared",
            ItemStatus::Blocked => "blocked",
            ItemStatus::Rejected => "rejected",
        };
        metrics().items.with_label_values(&[status, reason, media_type]).inc();
        // A blocked item must leave no cleared output behind, whatever an earlier delivery wrote.
        if ctx.tidy || verdict.status == ItemStatus::Blocked {
            remove_stale_outputs(&ctx, &item.item_id, &verdict).await?;
        }
        Ok(verdict)
    }
    .instrument(span)
    .await
}

/// Deletes objects under `media/{job}/{item}/` that this verdict does not list (a variant whose
/// extension changed, or outputs of an item that is now rejected or blocked).
async fn remove_stale_outputs(ctx: &ItemCtx, item_id: &str, verdict: &ItemVerdict) -> Result<(), Transient> {
    let bucket = &ctx.shared.config.output_bucket;
    let prefix = output_item_prefix(&ctx.job_id, item_id);
    let keys = ctx
        .shared
        .store
        .list_keys(bucket, &prefix)
        .await
        .map_err(|e| Transient::storage(format!("listing s3://{bucket}/{prefix}: {e}")))?;
    for key in keys {
        if !verdict.outputs.iter().any(|o| o.key == key) {
            ctx.shared
                .store
                .delete(bucket, &key)
                .await
                .map_err(|e| Transient::storage(format!("deleting s3://{bucket}/{key}: {e}")))?;
            debug!(%key, "removed a stale output");
        }
    }
    Ok(())
}

/// One slot of CPU work (media in the sandbox, or the classifier) for this item. Only this
/// work holds a slot: fetching and storing overlap with other items' CPU work, so the slots
/// stay busy while S3 and the broker answer. Batch items first pass the gate that keeps one
/// slot for live traffic.
async fn cpu_slot(ctx: &ItemCtx) -> Result<(Option<OwnedSemaphorePermit>, OwnedSemaphorePermit), Transient> {
    let closed = |_| Transient::internal("worker is shutting down");
    let gate = match ctx.lane {
        Lane::Batch => Some(ctx.shared.batch_gate.clone().acquire_owned().await.map_err(closed)?),
        Lane::Live => None,
    };
    let slot = ctx.shared.slots.clone().acquire_owned().await.map_err(closed)?;
    Ok((gate, slot))
}

/// Fetches the source within the limit, reserving its size from the worker's budget of input
/// bytes in hand first (so prefetched jobs cannot hold more than that between them).
async fn fetch(ctx: &ItemCtx, item: &Item) -> Result<Result<(Vec<u8>, OwnedSemaphorePermit), Reason>, Transient> {
    let shared = &ctx.shared;
    let bucket = &item.source.bucket;
    let key = &item.source.key;
    let limit = shared.config.limits.max_input_bytes;
    let _timer = StageTimer::start("fetch", "any");
    let info = match shared.store.head(bucket, key).await {
        Ok(info) => info,
        Err(e) => return Ok(Err(source_error(e, bucket, key)?)),
    };
    if info.size > limit {
        let e = mediagate_store::StoreError::TooLarge { size: info.size, limit };
        return Ok(Err(source_error(e, bucket, key)?));
    }
    let kib = u32::try_from(info.size.div_ceil(1024).max(1)).unwrap_or(u32::MAX).min(shared.input_budget_kib);
    let permit = shared
        .input_budget
        .clone()
        .acquire_many_owned(kib)
        .await
        .map_err(|_| Transient::internal("worker is shutting down"))?;
    match shared.store.get_capped(bucket, key, limit).await {
        Ok(bytes) => Ok(Ok((bytes, permit))),
        Err(e) => Ok(Err(source_error(e, bucket, key)?)),
    }
}

/// The item's work: fetch, sniff, fit the kind, process, store.
async fn process(ctx: &ItemCtx, item: &Item) -> Result<ItemVerdict, Transient> {
    let job_id = ctx.job_id.as_str();
    let kind = ctx.kind;
    {
        // Shared, not copied, between the probe and the processing; the permit keeps its bytes
        // counted until the item is done.
        let (bytes, _input_permit) = match fetch(ctx, item).await? {
            Ok((b, permit)) => (Arc::new(b), permit),
            Err(reason) => return Ok(ItemVerdict::rejected(&item.item_id, None, reason)),
        };
        debug!(bytes = bytes.len(), "fetched source");

        let Some(format) = sniff(&bytes) else {
            let head: String = bytes.iter().take(8).map(|b| format!("{b:02x}")).collect();
            return Ok(ItemVerdict::rejected(
                &item.item_id,
                None,
                Reason::new(
                    ReasonCode::InputUnsupportedFormat,
                    if bytes.is_empty() {
                        "the file is empty".to_string()
                    } else {
                        format!(
                            "the file is not a recognised image, video or audio format (it starts with {head}); \
                             send JPEG, PNG, WebP or GIF photos"
                        )
                    },
                ),
            ));
        };
        // MP4/MOV/WebM/Matroska may hold a video or only sound: the tracks decide.
        let class = if mediagate_media::is_video_format(format) {
            let task = Task::Probe { format };
            match sandboxed(ctx, item, task, Arc::clone(&bytes), PROBE_BUDGET).await? {
                Ok((Outcome::Probe(probe), _)) => probe.media_class(),
                Ok(_) => return Err(unexpected()),
                Err(reason) => {
                    return Ok(ItemVerdict::rejected(&item.item_id, Some(media_type_of(format.media_class())), reason))
                }
            }
        } else {
            format.media_class()
        };
        let media_type = media_type_of(class);
        if let Some(reason) = kind_mismatch(kind, format, class) {
            return Ok(ItemVerdict::rejected(&item.item_id, Some(media_type), reason));
        }
        match class {
            MediaClass::Image => photo(ctx, item, bytes, format).await,
            MediaClass::Audio => voice(ctx, job_id, item, bytes, format).await,
            MediaClass::Video => video(ctx, item, bytes, format).await,
        }
    }
}

/// Wall-clock budget of looking at a container's tracks.
const PROBE_BUDGET: Duration = Duration::from_secs(30);

/// Runs media work in the sandbox: its outcome, or the item's rejection (`Err(Transient)` only
/// for faults that are not the input's: a budget overrun, an internal error, no sandbox).
async fn sandboxed(
    ctx: &ItemCtx,
    item: &Item,
    task: Task,
    bytes: Arc<Vec<u8>>,
    budget: Duration,
) -> Result<Result<(Outcome, Stats), Reason>, Transient> {
    let shared = &ctx.shared;
    let media_type = task.label();
    let request = Request {
        job_id: ctx.job_id.clone(),
        item_id: item.item_id.clone(),
        task,
        limits: ChildLimits {
            memory_bytes: shared.config.sandbox_memory_bytes,
            // A backstop behind the wall clock: two busy cores for the whole budget, and some.
            cpu_seconds: budget.as_secs().saturating_mul(2).saturating_add(10),
            file_bytes: SANDBOX_FILE_BYTES,
        },
    };
    let m = metrics();
    let waiting = StageTimer::start("slot_wait", media_type);
    let slot = cpu_slot(ctx).await?;
    drop(waiting);
    let timer = StageTimer::start("process", media_type);
    let ran = shared.sandbox.run(request, bytes, budget).await;
    drop(timer);
    drop(slot);
    match ran {
        Ok(report) => {
            m.sandbox_runs.with_label_values(&[if report.stats.crashes > 0 { "crashed_once" } else { "ok" }]).inc();
            m.stage_seconds.with_label_values(&["media_work", media_type]).observe(report.stats.work.as_secs_f64());
            m.sandbox_cpu.inc_by(report.stats.cpu.as_secs_f64());
            if report.stats.peak_rss_bytes > 0 {
                m.sandbox_peak_rss.with_label_values(&[media_type]).observe(report.stats.peak_rss_bytes as f64);
            }
            match report.result {
                Ok(outcome) => Ok(Ok((outcome, report.stats))),
                Err(e) => Ok(Err(media_error(e)?)),
            }
        }
        Err(e @ SandboxError::Crashed { .. }) => {
            m.sandbox_runs.with_label_values(&["crashed"]).inc();
            warn!(error = %e, "the media sandbox crashed twice on this file; rejecting it");
            Ok(Err(Reason::new(ReasonCode::InputCorrupt, e.to_string())))
        }
        Err(e @ SandboxError::TimedOut { .. }) => {
            m.sandbox_runs.with_label_values(&["timed_out"]).inc();
            Err(Transient::media(e.to_string()))
        }
        Err(e @ SandboxError::Spawn { .. }) => {
            m.sandbox_runs.with_label_values(&["spawn_failed"]).inc();
            Err(Transient::internal(e.to_string()))
        }
    }
}

/// Largest file a sandbox child may write (the video muxer's temporary MP4).
const SANDBOX_FILE_BYTES: u64 = 4 << 30;

fn unexpected() -> Transient {
    Transient::internal("the media sandbox answered with the outcome of another task")
}

/// Runs the classifier on tensors from the sandbox, off the async threads; the highest score.
async fn score(
    ctx: &ItemCtx,
    media_type: &'static str,
    tensors: Vec<Tensor>,
    prep: Duration,
) -> Result<f32, Transient> {
    let classifier = ctx
        .shared
        .classifier
        .clone()
        .ok_or_else(|| Transient::internal("the nudity filter applies but no classifier is loaded"))?;
    let _slot = cpu_slot(ctx).await?;
    let started = std::time::Instant::now();
    let max = tokio::task::spawn_blocking(move || {
        tensors.iter().try_fold(0f32, |max, t| classifier.infer(&t.0).map(|s| max.max(s)))
    })
    .await
    .map_err(|e| Transient::internal(format!("the classifier thread failed: {e}")))?
    .map_err(|e| Transient::internal(format!("running the classifier: {e}")))?;
    metrics()
        .stage_seconds
        .with_label_values(&["classify", media_type])
        .observe((started.elapsed() + prep).as_secs_f64());
    Ok(max)
}

/// A cleared item with its measurements and outputs; the caller fills in what applies.
fn cleared(item_id: &str, media_type: MediaType, outputs: Vec<Output>) -> ItemVerdict {
    ItemVerdict {
        item_id: item_id.to_string(),
        status: ItemStatus::Cleared,
        media_type: Some(media_type),
        reason: None,
        width: None,
        height: None,
        duration_ms: None,
        waveform: None,
        blurhash: None,
        nudity: None,
        outputs,
    }
}

/// Measures and transcodes a voice note to Ogg Opus, with its waveform.
async fn voice(
    ctx: &ItemCtx,
    job_id: &str,
    item: &Item,
    bytes: Arc<Vec<u8>>,
    format: Format,
) -> Result<ItemVerdict, Transient> {
    let shared = &ctx.shared;
    let settings = shared.config.voice.clone();
    let budget = settings.budget;
    let result = sandboxed(ctx, item, Task::Voice { format, settings }, bytes, budget).await?;
    let out = match result {
        Ok((Outcome::Voice(out), _)) => out,
        Ok(_) => return Err(unexpected()),
        Err(reason) => return Ok(ItemVerdict::rejected(&item.item_id, Some(MediaType::Audio), reason)),
    };
    let _store_timer = StageTimer::start("store", "audio");
    let ogg = store_bytes(shared, job_id, &item.item_id, "voice", "ogg", "audio/ogg", out.ogg, None).await?;
    Ok(ItemVerdict {
        duration_ms: Some(out.duration_ms),
        waveform: Some(out.waveform),
        ..cleared(&item.item_id, MediaType::Audio, vec![ogg])
    })
}

/// Measures and transcodes a video to H.264/AAC MP4 with a poster; when the filter applies,
/// frames sampled from the same decode (the poster among them) are scored and the item's score
/// is their maximum.
async fn video(ctx: &ItemCtx, item: &Item, bytes: Arc<Vec<u8>>, format: Format) -> Result<ItemVerdict, Transient> {
    let shared = &ctx.shared;
    let mut settings = shared.config.video.clone();
    let filter = classifier_for(ctx)?;
    if filter.is_some() {
        settings.sampling = Some(shared.config.frame_sampling.clone());
    }
    let budget = settings.budget;
    let result = sandboxed(ctx, item, Task::Video { format, settings }, bytes, budget).await?;
    let (out, tensors, stats) = match result {
        Ok((Outcome::Video { out, tensors }, stats)) => (out, tensors, stats),
        Ok(_) => return Err(unexpected()),
        Err(reason) => return Ok(ItemVerdict::rejected(&item.item_id, Some(MediaType::Video), reason)),
    };
    let score = match filter {
        Some(_) => {
            let n = tensors.len() as u32;
            Some((score(ctx, "video", tensors, stats.classify_prep).await?, n))
        }
        None => None,
    };
    let nudity = match (score, ctx.nudity) {
        (Some((s, n)), Some(policy)) => {
            if n == 0 {
                return Err(Transient::internal("the nudity filter applies but no video frame was sampled"));
            }
            Some(Scored::new(shared, policy, s, n)?.result)
        }
        _ => None,
    };
    let measured = ItemVerdict {
        width: Some(out.width),
        height: Some(out.height),
        duration_ms: Some(out.duration_ms),
        blurhash: Some(out.blurhash.clone()),
        nudity: nudity.clone(),
        ..cleared(&item.item_id, MediaType::Video, Vec::new())
    };
    if nudity.as_ref().is_some_and(|n| n.flagged) {
        return block(ctx, item, format, measured).await;
    }
    let _store_timer = StageTimer::start("store", "video");
    let dims = Some((out.mp4_width, out.mp4_height));
    let (mp4, poster) = tokio::try_join!(
        store_bytes(shared, &ctx.job_id, &item.item_id, "video", "mp4", "video/mp4", out.mp4, dims),
        store_output(shared, &ctx.job_id, &item.item_id, "poster", out.poster),
    )?;
    Ok(ItemVerdict { outputs: vec![mp4, poster], ..measured })
}

/// Metric label of a media type.
fn media_label(t: Option<MediaType>) -> &'static str {
    match t {
        Some(MediaType::Image) => "image",
        Some(MediaType::Video) => "video",
        Some(MediaType::Audio) => "audio",
        None => "unknown",
    }
}

/// The verdict's media type of a media class.
fn media_type_of(class: MediaClass) -> MediaType {
    match class {
        MediaClass::Image => MediaType::Image,
        MediaClass::Video => MediaType::Video,
        MediaClass::Audio => MediaType::Audio,
    }
}

/// Rule "sniffed type fits the kind": images and videos for `media`, audio for `voice_note`.
fn kind_mismatch(kind: JobKind, format: Format, class: MediaClass) -> Option<Reason> {
    let fits = match kind {
        JobKind::Media => matches!(class, MediaClass::Image | MediaClass::Video),
        JobKind::VoiceNote => class == MediaClass::Audio,
    };
    (!fits).then(|| {
        Reason::new(
            ReasonCode::InputTypeMismatch,
            match kind {
                JobKind::Media => format!(
                    "the file is {} audio, but a media job takes photos and videos; send it as a voice_note job",
                    format.name()
                ),
                JobKind::VoiceNote => format!(
                    "the file is a {} {}, but a voice_note job takes one audio file",
                    format.name(),
                    if class == MediaClass::Image { "image" } else { "video" }
                ),
            },
        )
    })
}

/// The classifier's verdict on one item, before anything is stored.
struct Scored {
    result: NudityResult,
}

impl Scored {
    fn new(shared: &Shared, policy: NudityPolicy, score: f32, frames: u32) -> Result<Scored, Transient> {
        let classifier = shared
            .classifier
            .as_ref()
            .ok_or_else(|| Transient::internal("the nudity filter applies but no classifier is loaded"))?;
        // Round to 6 decimals: an f32 widened to f64 prints noise digits otherwise.
        let score = (f64::from(score) * 1e6).round() / 1e6;
        Ok(Scored {
            result: NudityResult {
                model: classifier.model_name().to_string(),
                model_sha256: classifier.model_sha256().to_string(),
                score,
                threshold: policy.threshold,
                flagged: score >= policy.threshold,
                frames,
            },
        })
    }
}

/// The classifier for a job that needs the filter; `Err` when it is missing (never clear
/// unfiltered media).
fn classifier_for(ctx: &ItemCtx) -> Result<Option<(Arc<Classifier>, NudityPolicy)>, Transient> {
    match ctx.nudity {
        None => Ok(None),
        Some(policy) => match &ctx.shared.classifier {
            Some(c) => Ok(Some((c.clone(), policy))),
            None => Err(Transient::internal("the nudity filter applies to this job but the worker has no classifier")),
        },
    }
}

/// Decodes, resizes and (when the filter applies) scores a photo, then stores it or, when
/// flagged, quarantines the original.
async fn photo(ctx: &ItemCtx, item: &Item, bytes: Arc<Vec<u8>>, format: Format) -> Result<ItemVerdict, Transient> {
    let shared = &ctx.shared;
    let settings = shared.config.photo.clone();
    let filter = classifier_for(ctx)?;
    let task = Task::Photo { settings, classify: filter.is_some() };
    let result = sandboxed(ctx, item, task, bytes, shared.config.photo_budget).await?;
    let (out, tensor, stats) = match result {
        Ok((Outcome::Photo { out, tensor }, stats)) => (out, tensor, stats),
        Ok(_) => return Err(unexpected()),
        Err(reason) => return Ok(ItemVerdict::rejected(&item.item_id, Some(MediaType::Image), reason)),
    };
    let score = match (filter, tensor) {
        (Some(_), Some(t)) => Some(score(ctx, "image", vec![t], stats.classify_prep).await?),
        (Some(_), None) => return Err(Transient::internal("the media sandbox returned no tensor for the classifier")),
        (None, _) => None,
    };
    let nudity = match (score, ctx.nudity) {
        (Some(s), Some(policy)) => Some(Scored::new(shared, policy, s, 1)?.result),
        _ => None,
    };
    let measured = ItemVerdict {
        width: Some(out.width),
        height: Some(out.height),
        blurhash: Some(out.blurhash.clone()),
        nudity: nudity.clone(),
        ..cleared(&item.item_id, MediaType::Image, Vec::new())
    };
    if nudity.as_ref().is_some_and(|n| n.flagged) {
        return block(ctx, item, format, measured).await;
    }
    let _store_timer = StageTimer::start("store", "image");
    let (full, thumb) = tokio::try_join!(
        store_output(shared, &ctx.job_id, &item.item_id, "full", out.full),
        store_output(shared, &ctx.job_id, &item.item_id, "thumb", out.thumb),
    )?;
    Ok(ItemVerdict { outputs: vec![full, thumb], ..measured })
}

/// Turns a measured item into a `blocked` one: no cleared output, the original copied byte for
/// byte to quarantine with the item's verdict entry beside it (unless quarantine is off).
async fn block(ctx: &ItemCtx, item: &Item, format: Format, measured: ItemVerdict) -> Result<ItemVerdict, Transient> {
    let score = measured.nudity.as_ref().map(|n| (n.score, n.threshold)).unwrap_or_default();
    let blocked = ItemVerdict {
        status: ItemStatus::Blocked,
        reason: Some(Reason::new(
            ReasonCode::NudityFlagged,
            format!(
                "the nudity filter flagged this {} (score {:.3} at or above the threshold {:.2} that applies to this conversation); it was not delivered",
                match measured.media_type {
                    Some(MediaType::Video) => "video",
                    _ => "photo",
                },
                score.0,
                score.1
            ),
        )),
        outputs: Vec::new(),
        ..measured
    };
    if let Some(q) = &ctx.shared.config.quarantine_bucket {
        let store = &ctx.shared.store;
        let original = quarantine_original_key(&ctx.job_id, &item.item_id, format.ext());
        store
            .copy(&item.source.bucket, &item.source.key, q, &original)
            .await
            .map_err(|e| Transient::storage(format!("copying the original to s3://{q}/{original}: {e}")))?;
        let entry = serde_json::to_vec_pretty(&blocked)
            .map_err(|e| Transient::internal(format!("serialising the item verdict: {e}")))?;
        let key = quarantine_verdict_key(&ctx.job_id, &item.item_id);
        store
            .put(q, &key, entry, "application/json")
            .await
            .map_err(|e| Transient::storage(format!("writing s3://{q}/{key}: {e}")))?;
    }
    Ok(blocked)
}

/// Writes one encoded image variant and describes it for the verdict.
async fn store_output(
    shared: &Arc<Shared>,
    job_id: &str,
    item_id: &str,
    variant: &str,
    enc: Encoded,
) -> Result<Output, Transient> {
    let dims = Some((enc.width, enc.height));
    store_bytes(shared, job_id, item_id, variant, enc.kind.ext(), enc.kind.content_type(), enc.bytes, dims).await
}

/// Writes one variant under its contract key and describes it for the verdict.
#[allow(clippy::too_many_arguments)]
async fn store_bytes(
    shared: &Arc<Shared>,
    job_id: &str,
    item_id: &str,
    variant: &str,
    ext: &str,
    content_type: &str,
    bytes: Vec<u8>,
    dims: Option<(u32, u32)>,
) -> Result<Output, Transient> {
    let bucket = &shared.config.output_bucket;
    let key = output_key(job_id, item_id, variant, ext);
    let receipt = shared
        .store
        .put(bucket, &key, bytes, content_type)
        .await
        .map_err(|e| Transient::storage(format!("writing s3://{bucket}/{key}: {e}")))?;
    Ok(Output {
        variant: variant.to_string(),
        bucket: bucket.clone(),
        key,
        content_type: content_type.to_string(),
        bytes: receipt.bytes,
        width: dims.map(|d| d.0),
        height: dims.map(|d| d.1),
        sha256: receipt.sha256,
    })
}
