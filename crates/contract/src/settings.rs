//! The contract's own settings (§6) with their defaults: the binary's flags read these, so the
//! docs, the flags and the tests agree on one number each.
//!
//! The media pipelines' limits and knobs (`MEDIAGATE_IMAGE_MAX_PIXELS`, `…_VOICE_MAX_MS`,
//! `…_VIDEO_MAX_MS`, sizes, encoders, the voice padding allowance) live with the pipelines, in
//! `mediagate_media::MediaSettings`; the worker's own in `mediagate_worker::WorkerConfig`.

/// Nudity thresholds (`MEDIAGATE_NUDITY_THRESHOLD_MINOR` / `_ADULT`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Thresholds {
    /// Applies when anyone in the job is 16–17.
    pub minor: f64,
    /// Applies when an adult recipient opted in.
    pub adult: f64,
}

impl Thresholds {
    /// The contract's defaults: 0.5 and 0.8.
    pub const DEFAULT: Thresholds = Thresholds { minor: 0.5, adult: 0.8 };
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds::DEFAULT
    }
}

/// Default largest input (`MEDIAGATE_MAX_INPUT_BYTES`, 200 MiB), checked with HEAD before any
/// download.
pub const DEFAULT_MAX_INPUT_BYTES: u64 = 209_715_200;
/// Default allow-list of source buckets (`MEDIAGATE_SOURCE_BUCKETS`).
pub const DEFAULT_SOURCE_BUCKET: &str = "incoming";
/// Default output bucket (`MEDIAGATE_OUTPUT_BUCKET`).
pub const DEFAULT_OUTPUT_BUCKET: &str = "media";
/// Default quarantine bucket (`MEDIAGATE_QUARANTINE_BUCKET`); empty disables quarantine.
pub const DEFAULT_QUARANTINE_BUCKET: &str = "quarantine";
/// Default AMQP URL (`MEDIAGATE_AMQP_URL`).
pub const DEFAULT_AMQP_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";
/// Default largest job body (`MEDIAGATE_MAX_JOB_BYTES`, 1 MiB, §2): a larger body is
/// `job.invalid` without being parsed.
pub const DEFAULT_MAX_JOB_BYTES: usize = 1_048_576;
/// Default most recipients a job may name (`MEDIAGATE_MAX_RECIPIENTS`, §2), counted while parsing.
pub const DEFAULT_MAX_RECIPIENTS: usize = 256;
/// Most items a `media` job may carry (rule 2).
pub const MAX_MEDIA_ITEMS: usize = 9;
/// Longest caption, in Unicode scalar values (§2).
pub const MAX_CAPTION_CHARS: usize = 1000;
