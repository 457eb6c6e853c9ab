//! The worker's settings, already validated; the binary fills them from flags and env.

use std::time::Duration;

use mediagate_contract::{Limits, Thresholds};
use mediagate_media::{FrameSampling, PhotoSettings, VideoSettings, VoiceSettings};

/// Everything a worker needs to decide and store; no connection details (those are the
/// store's and the broker's).
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Allow-list of source buckets (rule 5).
    pub source_buckets: Vec<String>,
    /// Where cleared variants go.
    pub output_bucket: String,
    /// Where blocked originals go; `None` keeps none.
    pub quarantine_bucket: Option<String>,
    /// Where `manifests/{job_id}.json` goes.
    pub manifest_bucket: String,
    /// Jobs taken from the broker at once, and items processed at once (CPU slots).
    pub concurrency: usize,
    pub limits: Limits,
    pub thresholds: Thresholds,
    pub photo: PhotoSettings,
    pub voice: VoiceSettings,
    pub video: VideoSettings,
    /// Which video frames the classifier scores when the filter applies.
    pub frame_sampling: FrameSampling,
    /// Wall-clock budget of one photo's media work (voice and video budgets are in their
    /// settings).
    pub photo_budget: Duration,
    /// Memory limit (`RLIMIT_DATA`) of each media sandbox child, in bytes.
    pub sandbox_memory_bytes: u64,
    /// Reported in every verdict (`worker.id`).
    pub worker_id: String,
    /// Reported in every verdict (`worker.version`).
    pub version: String,
}

impl WorkerConfig {
    /// Defaults of the contract, with the given worker id.
    pub fn with_defaults(worker_id: impl Into<String>) -> WorkerConfig {
        let limits = Limits::default();
        WorkerConfig {
            source_buckets: vec![mediagate_contract::settings::DEFAULT_SOURCE_BUCKET.to_string()],
            output_bucket: mediagate_contract::settings::DEFAULT_OUTPUT_BUCKET.to_string(),
            quarantine_bucket: Some(mediagate_contract::settings::DEFAULT_QUARANTINE_BUCKET.to_string()),
            manifest_bucket: mediagate_contract::settings::DEFAULT_OUTPUT_BUCKET.to_string(),
            concurrency: 2,
            photo: PhotoSettings { max_pixels: limits.image_max_pixels, ..PhotoSettings::default() },
            voice: VoiceSettings { max_ms: limits.voice_max_ms, ..VoiceSettings::default() },
            video: VideoSettings {
                max_ms: limits.video_max_ms,
                max_pixels: limits.image_max_pixels,
                ..VideoSettings::default()
            },
            frame_sampling: FrameSampling::default(),
            photo_budget: Duration::from_secs(60),
            sandbox_memory_bytes: 2048 << 20,
            limits,
            thresholds: Thresholds::default(),
            worker_id: worker_id.into(),
            version: env!("CARGO_PKG_VERSION").to_string(),
        }
    }
}
