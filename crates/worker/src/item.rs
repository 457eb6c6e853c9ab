//! One item's journey: fetch with limits → one sandbox call (identify, probe, admit, process)
//! → classifier on the returned tensors → store outputs, or quarantine → tidy up.
//!
//! Architecture invariant: the worker never parses the item's bytes. It fetches them, hands
//! them to the sandbox once, and stores what comes back; `store` is reached only to fetch, to
//! write outputs (or the quarantine copy) and to remove stale outputs.

use std::sync::Arc;
use std::time::Duration;

use mediagate_contract::keys::{output_item_prefix, output_key, quarantine_original_key, quarantine_verdict_key};
use mediagate_contract::{Item, ItemStatus, ItemVerdict, JobKind, MediaType, NudityPolicy, NudityResult, Output};
use mediagate_media::Encoded;
use mediagate_sandbox::{Admit, ChildLimits, Done, Outcome, Request, Stats, Task, Tensor};
use tokio::sync::OwnedSemaphorePermit;
use tracing::{debug, info_span, warn, Instrument};

use crate::codes::{self, media_type_of, Requeue, Stop};
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
pub(crate) async fn process_item(ctx: ItemCtx, item: Item) -> Result<ItemVerdict, Requeue> {
    let span = info_span!("item", job_id = %ctx.job_id, item_id = %item.item_id);
    async move {
        let verdict = match process(&ctx, &item).await {
            Ok(v) => v,
            Err(Stop::Rejected(r)) => ItemVerdict::rejected(&item.item_id, r.media_type, r.reason),
            Err(Stop::Requeue(q)) => return Err(q),
        };
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

/// The item's work: fetch, one sandbox call, score, store.
async fn process(ctx: &ItemCtx, item: &Item) -> Result<ItemVerdict, Stop> {
    // The permit keeps the bytes counted against the worker's input budget until the item is done.
    let (bytes, _input_permit) = fetch(ctx, item).await?;
    debug!(bytes = bytes.len(), "fetched source");
    let (done, stats) = sandboxed(ctx, item, Arc::new(bytes)).await?;
    let format = done.format;
    let media_type = media_type_of(done.outcome.class());
    let label = media_label(Some(media_type));
    // The filter scores exactly what the outputs are made from: the tensors came from the same
    // decode (a photo) or the same decode pass (a video's sampled frames, the poster among them).
    let (measured, uploads) = match done.outcome {
        Outcome::Photo { out, tensor } => {
            let nudity = score(ctx, label, tensor.into_iter().collect(), stats.classify_prep).await?;
            let measured = ItemVerdict {
                width: Some(out.width),
                height: Some(out.height),
                blurhash: Some(out.blurhash),
                nudity,
                ..cleared(&item.item_id, media_type)
            };
            (measured, vec![Upload::image("full", out.full), Upload::image("thumb", out.thumb)])
        }
        Outcome::Video { out, tensors } => {
            let nudity = score(ctx, label, tensors, stats.classify_prep).await?;
            let measured = ItemVerdict {
                width: Some(out.width),
                height: Some(out.height),
                duration_ms: Some(out.duration_ms),
                blurhash: Some(out.blurhash),
                nudity,
                ..cleared(&item.item_id, media_type)
            };
            let mp4 = Upload {
                variant: "video",
                ext: "mp4",
                content_type: "video/mp4",
                bytes: out.mp4,
                dims: Some((out.mp4_width, out.mp4_height)),
            };
            (measured, vec![mp4, Upload::image("poster", out.poster)])
        }
        Outcome::Voice(out) => {
            let measured = ItemVerdict {
                duration_ms: Some(out.duration_ms),
                waveform: Some(out.waveform),
                ..cleared(&item.item_id, media_type)
            };
            let ogg = Upload { variant: "voice", ext: "ogg", content_type: "audio/ogg", bytes: out.ogg, dims: None };
            (measured, vec![ogg])
        }
    };
    if measured.nudity.as_ref().is_some_and(|n| n.flagged) {
        return Ok(block(ctx, item, format.ext(), measured).await?);
    }
    let _store_timer = StageTimer::start("store", label);
    let outputs = futures_util::future::try_join_all(uploads.into_iter().map(|u| store(ctx, &item.item_id, u))).await?;
    Ok(ItemVerdict { outputs, ..measured })
}

/// Fetches the source within the limit, reserving its size from the worker's budget of input
/// bytes in hand first (so prefetched jobs cannot hold more than that between them).
async fn fetch(ctx: &ItemCtx, item: &Item) -> Result<(Vec<u8>, OwnedSemaphorePermit), Stop> {
    let shared = &ctx.shared;
    let (bucket, key) = (&item.source.bucket, &item.source.key);
    let limit = shared.config.max_input_bytes;
    let _timer = StageTimer::start("fetch", "any");
    let info = shared.store.head(bucket, key).await.map_err(|e| codes::source_error(e, bucket, key))?;
    if info.size > limit {
        let e = mediagate_store::StoreError::TooLarge { size: info.size, limit };
        return Err(codes::source_error(e, bucket, key));
    }
    let kib = u32::try_from(info.size.div_ceil(1024).max(1)).unwrap_or(u32::MAX).min(shared.input_budget_kib);
    let permit = shared
        .input_budget
        .clone()
        .acquire_many_owned(kib)
        .await
        .map_err(|_| Requeue::internal("worker is shutting down"))?;
    let bytes =
        shared.store.get_body_at_most(bucket, key, limit).await.map_err(|e| codes::source_error(e, bucket, key))?;
    Ok((bytes, permit))
}

/// One slot of CPU work (media in the sandbox, or the classifier) for this item. Only this
/// work holds a slot: fetching and storing overlap with other items' CPU work, so the slots
/// stay busy while S3 and the broker answer. Reprocess items first pass the gate that keeps
/// one slot for live traffic.
async fn cpu_slot(ctx: &ItemCtx) -> Result<(Option<OwnedSemaphorePermit>, OwnedSemaphorePermit), Requeue> {
    let closed = |_| Requeue::internal("worker is shutting down");
    let gate = match ctx.lane {
        Lane::Reprocess => Some(ctx.shared.reprocess_gate.clone().acquire_owned().await.map_err(closed)?),
        Lane::Live => None,
    };
    let slot = ctx.shared.slots.clone().acquire_owned().await.map_err(closed)?;
    Ok((gate, slot))
}

/// What the job takes, in the sandbox's terms.
pub(crate) fn admit(kind: JobKind) -> Admit {
    match kind {
        JobKind::Media => Admit::Visual,
        JobKind::VoiceNote => Admit::Audio,
    }
}

/// The item's one sandbox call: identify, probe, admit and process.
async fn sandboxed(ctx: &ItemCtx, item: &Item, bytes: Arc<Vec<u8>>) -> Result<(Done, Stats), Stop> {
    let shared = &ctx.shared;
    let admit = admit(ctx.kind);
    let settings = shared.config.media.clone();
    // Until the child says what the file is, the longest budget the job admits; the child then
    // tightens its own clock and CPU limit to its class's.
    let budget = admit.budget(&settings);
    let request = Request {
        job_id: ctx.job_id.clone(),
        item_id: item.item_id.clone(),
        task: Task { admit, settings, classify: ctx.nudity.is_some() },
        limits: ChildLimits {
            memory_bytes: shared.config.sandbox_memory_bytes(),
            // A backstop behind the wall clock: two busy cores for the whole budget, and some.
            cpu_seconds: budget.as_secs().saturating_mul(2).saturating_add(10),
            file_bytes: SANDBOX_FILE_BYTES,
        },
    };
    let m = metrics();
    let waiting = StageTimer::start("slot_wait", "any");
    let slot = cpu_slot(ctx).await?;
    drop(waiting);
    let started = std::time::Instant::now();
    let ran = shared.sandbox.run(request, bytes, budget).await;
    drop(slot);
    let report = match ran {
        Ok(report) => report,
        Err(e) => {
            let outcome = match &e {
                mediagate_sandbox::SandboxError::Crashed { .. } => "crashed",
                mediagate_sandbox::SandboxError::TimedOut { .. } => "timed_out",
                mediagate_sandbox::SandboxError::Spawn { .. } => "spawn_failed",
            };
            m.sandbox_runs.with_label_values(&[outcome]).inc();
            if outcome == "crashed" {
                warn!(error = %e, "the media sandbox crashed twice on this file; rejecting it");
            }
            return Err(codes::sandbox_error(e));
        }
    };
    let label = match &report.result {
        Ok(done) => media_label(Some(media_type_of(done.outcome.class()))),
        Err(_) => "unknown",
    };
    m.stage_seconds.with_label_values(&["process", label]).observe(started.elapsed().as_secs_f64());
    m.sandbox_runs.with_label_values(&[if report.stats.crashes > 0 { "crashed_once" } else { "ok" }]).inc();
    m.stage_seconds.with_label_values(&["media_work", label]).observe(report.stats.work.as_secs_f64());
    m.sandbox_cpu.inc_by(report.stats.cpu.as_secs_f64());
    if report.stats.peak_rss_bytes > 0 {
        m.sandbox_peak_rss.with_label_values(&[label]).observe(report.stats.peak_rss_bytes as f64);
    }
    let done = report.result.map_err(codes::refusal)?;
    Ok((done, report.stats))
}

/// Largest file a sandbox child may write (the video muxer's temporary MP4).
const SANDBOX_FILE_BYTES: u64 = 4 << 30;

/// Runs the classifier on tensors from the sandbox, off the async threads, when the job's
/// filter applies; the item's result is the highest score. A job that needs the filter is
/// never cleared without a score: no tensor then is a bug, and the job goes back to the queue.
async fn score(
    ctx: &ItemCtx,
    media_type: &'static str,
    tensors: Vec<Tensor>,
    prep: Duration,
) -> Result<Option<NudityResult>, Requeue> {
    let Some(policy) = ctx.nudity else { return Ok(None) };
    if tensors.is_empty() {
        return Err(Requeue::internal(format!(
            "the nudity filter applies but the sandbox returned no {media_type} frame"
        )));
    }
    let frames = u32::try_from(tensors.len()).unwrap_or(u32::MAX);
    let classifier = ctx.shared.classifier.clone();
    let _slot = cpu_slot(ctx).await?;
    let started = std::time::Instant::now();
    let max = tokio::task::spawn_blocking(move || {
        tensors.iter().try_fold(0f32, |max, t| classifier.infer(&t.0).map(|s| max.max(s)))
    })
    .await
    .map_err(|e| Requeue::internal(format!("the classifier thread failed: {e}")))?
    .map_err(|e| Requeue::internal(format!("running the classifier: {e}")))?;
    metrics()
        .stage_seconds
        .with_label_values(&["classify", media_type])
        .observe((started.elapsed() + prep).as_secs_f64());
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
fn cleared(item_id: &str, media_type: MediaType) -> ItemVerdict {
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
        outputs: Vec::new(),
    }
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

/// Turns a measured item into a `blocked` one: no cleared output, the original copied byte for
/// byte to quarantine with the item's verdict entry beside it (unless quarantine is off).
async fn block(ctx: &ItemCtx, item: &Item, ext: &str, measured: ItemVerdict) -> Result<ItemVerdict, Requeue> {
    let media_type = measured.media_type.unwrap_or(MediaType::Image);
    let reason = measured.nudity.as_ref().map(|n| codes::flagged(media_type, n));
    let blocked = ItemVerdict { status: ItemStatus::Blocked, reason, outputs: Vec::new(), ..measured };
    if let Some(q) = &ctx.shared.config.quarantine_bucket {
        let store = &ctx.shared.store;
        let original = quarantine_original_key(&ctx.job_id, &item.item_id, ext);
        store
            .copy(&item.source.bucket, &item.source.key, q, &original)
            .await
            .map_err(|e| Requeue::storage(format!("copying the original to s3://{q}/{original}: {e}")))?;
        let entry = serde_json::to_vec_pretty(&blocked)
            .map_err(|e| Requeue::internal(format!("serialising the item verdict: {e}")))?;
        let key = quarantine_verdict_key(&ctx.job_id, &item.item_id);
        store
            .put(q, &key, entry, "application/json")
            .await
            .map_err(|e| Requeue::storage(format!("writing s3://{q}/{key}: {e}")))?;
    }
    Ok(blocked)
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
async fn store(ctx: &ItemCtx, item_id: &str, up: Upload) -> Result<Output, Requeue> {
    let bucket = &ctx.shared.config.output_bucket;
    let key = output_key(&ctx.job_id, item_id, up.variant, up.ext);
    let receipt = ctx
        .shared
        .store
        .put(bucket, &key, up.bytes, up.content_type)
        .await
        .map_err(|e| Requeue::storage(format!("writing s3://{bucket}/{key}: {e}")))?;
    Ok(Output {
        variant: up.variant.to_string(),
        bucket: bucket.clone(),
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
async fn remove_stale_outputs(ctx: &ItemCtx, item_id: &str, verdict: &ItemVerdict) -> Result<(), Requeue> {
    let bucket = &ctx.shared.config.output_bucket;
    let prefix = output_item_prefix(&ctx.job_id, item_id);
    let keys = ctx
        .shared
        .store
        .list_keys(bucket, &prefix)
        .await
        .map_err(|e| Requeue::storage(format!("listing s3://{bucket}/{prefix}: {e}")))?;
    for key in stale(&keys, verdict) {
        ctx.shared
            .store
            .delete(bucket, key)
            .await
            .map_err(|e| Requeue::storage(format!("deleting s3://{bucket}/{key}: {e}")))?;
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
            ..cleared("0", MediaType::Image)
        };
        assert_eq!(stale(&stored, &v).collect::<Vec<_>>(), vec!["media/j/0/full.png"]);
        // A rejected or blocked item lists nothing: everything stored goes.
        let r = ItemVerdict::rejected("0", None, Reason::new(ReasonCode::InputCorrupt, "x"));
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

    #[test]
    fn scores_are_rounded_to_six_decimals() {
        assert_eq!(round6(0.123_456_79), 0.123457);
        assert_eq!(round6(0.5), 0.5);
        assert_eq!(round6(1.0), 1.0);
    }
}
