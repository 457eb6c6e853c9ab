//! Limits and thresholds of the contract (§6) with their defaults.
//!
//! The values are configuration (env vars / flags in the binary); the defaults live here so
//! that the binary, the docs and the tests agree on one number each.

/// Per-item limits. Every check that uses them happens before the expensive step it guards.
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    /// `MEDIAGATE_MAX_INPUT_BYTES`: checked with HEAD, before any download.
    pub max_input_bytes: u64,
    /// `MEDIAGATE_IMAGE_MAX_PIXELS`: checked from the header, before any decode allocation.
    pub image_max_pixels: u64,
    /// `MEDIAGATE_VOICE_MAX_MS`: measured by decoding, plus [`Limits::PADDING_ALLOWANCE_MS`].
    pub voice_max_ms: u64,
    /// `MEDIAGATE_VIDEO_MAX_MS`.
    pub video_max_ms: u64,
}

impl Limits {
    /// Encoder padding a voice note may carry beyond its limit (§3).
    pub const PADDING_ALLOWANCE_MS: u64 = 250;
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_input_bytes: 209_715_200,
            image_max_pixels: 50_000_000,
            voice_max_ms: 60_000,
            video_max_ms: 180_000,
        }
    }
}

/// Nudity thresholds (`MEDIAGATE_NUDITY_THRESHOLD_MINOR` / `_ADULT`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Thresholds {
    pub minor: f64,
    pub adult: f64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds { minor: 0.5, adult: 0.8 }
    }
}

/// Default allow-list of source buckets (`MEDIAGATE_SOURCE_BUCKETS`).
pub const DEFAULT_SOURCE_BUCKET: &str = "incoming";
/// Default output bucket (`MEDIAGATE_OUTPUT_BUCKET`).
pub const DEFAULT_OUTPUT_BUCKET: &str = "media";
/// Default quarantine bucket (`MEDIAGATE_QUARANTINE_BUCKET`); empty disables quarantine.
pub const DEFAULT_QUARANTINE_BUCKET: &str = "quarantine";
/// Default AMQP URL (`MEDIAGATE_AMQP_URL`).
pub const DEFAULT_AMQP_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";
/// Most items a `media` job may carry (rule 2).
pub const MAX_MEDIA_ITEMS: usize = 9;
/// Longest caption, in Unicode scalar values (§2).
pub const MAX_CAPTION_CHARS: usize = 1000;
