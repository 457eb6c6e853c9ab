//! Every knob of the media pipelines, with its default and its accepted range, held once.
//!
//! The worker's settings (`mediagate_worker::WorkerConfig`) hold one [`MediaSettings`]; the
//! binary's flags take their defaults from the `DEFAULT` constants here, and the worker's
//! start-up validation checks values against the ranges here, so a value the pipelines would
//! refuse stops the worker before it takes a job instead of failing every item.
//!
//! Architecture invariant: a limit lives in exactly one field ([`Limits`]); the pipelines'
//! own settings ([`PhotoSettings`], [`VoiceSettings`], [`VideoSettings`], [`FrameSampling`])
//! hold only how to encode, never how much to accept.

use std::ops::RangeInclusive;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::MediaError;

/// Encoder padding a voice note may carry beyond [`Limits::voice_max_ms`] (contract §3: 250 ms).
pub const VOICE_PADDING_MS: u64 = 250;

/// Everything the media pipelines need to know, in one value (what a sandboxed item carries).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MediaSettings {
    /// How much any input may be.
    pub limits: Limits,
    /// How photos are resized and encoded.
    pub photo: PhotoSettings,
    /// How voice notes are encoded.
    pub voice: VoiceSettings,
    /// How videos are transcoded.
    pub video: VideoSettings,
    /// Which video frames the classifier (and later the hashes) look at.
    pub sampling: FrameSampling,
}

impl MediaSettings {
    /// The contract's defaults.
    pub const DEFAULT: MediaSettings = MediaSettings {
        limits: Limits::DEFAULT,
        photo: PhotoSettings::DEFAULT,
        voice: VoiceSettings::DEFAULT,
        video: VideoSettings::DEFAULT,
        sampling: FrameSampling::DEFAULT,
    };

    /// Checks every value against its accepted range; the first one outside names its field.
    pub fn check(&self) -> Result<(), OutOfRange> {
        self.limits.check()?;
        self.photo.check()?;
        self.voice.check()?;
        self.video.check()?;
        self.sampling.check()
    }

    /// [`MediaSettings::check`] as a media error (a bug or misconfiguration on our side).
    pub(crate) fn ensure_valid(&self) -> Result<(), MediaError> {
        self.check().map_err(|e| MediaError::internal(format!("invalid media settings: {e}")))
    }
}

impl Default for MediaSettings {
    fn default() -> Self {
        MediaSettings::DEFAULT
    }
}

/// Every field of [`MediaSettings`] that is checked against a range: what an [`OutOfRange`]
/// names, so a caller maps each to its own name for it (the worker: its environment variable)
/// with a match the compiler holds to every field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Setting {
    /// `limits.max_pixels`
    MaxPixels,
    /// `limits.voice_max_ms`
    VoiceMaxMs,
    /// `limits.video_max_ms`
    VideoMaxMs,
    /// `photo.full_edge`
    PhotoFullEdge,
    /// `photo.thumb_edge`
    PhotoThumbEdge,
    /// `photo.jpeg_quality`
    JpegQuality,
    /// `photo.budget`
    PhotoBudget,
    /// `voice.bitrate`
    VoiceBitrate,
    /// `voice.budget`
    VoiceBudget,
    /// `video.long_edge`
    VideoLongEdge,
    /// `video.short_edge`
    VideoShortEdge,
    /// `video.crf`
    VideoCrf,
    /// `video.threads`
    VideoThreads,
    /// `video.budget`
    VideoBudget,
    /// `video.poster_quality`
    PosterQuality,
    /// `video.audio_bitrate`
    AudioBitrate,
    /// `sampling.max_frames`
    MaxFrames,
    /// `sampling.min_interval_ms`
    MinIntervalMs,
    /// `sampling.max_edge`
    SamplingMaxEdge,
}

impl Setting {
    /// Every field, in declaration order.
    pub const ALL: [Setting; 19] = [
        Setting::MaxPixels,
        Setting::VoiceMaxMs,
        Setting::VideoMaxMs,
        Setting::PhotoFullEdge,
        Setting::PhotoThumbEdge,
        Setting::JpegQuality,
        Setting::PhotoBudget,
        Setting::VoiceBitrate,
        Setting::VoiceBudget,
        Setting::VideoLongEdge,
        Setting::VideoShortEdge,
        Setting::VideoCrf,
        Setting::VideoThreads,
        Setting::VideoBudget,
        Setting::PosterQuality,
        Setting::AudioBitrate,
        Setting::MaxFrames,
        Setting::MinIntervalMs,
        Setting::SamplingMaxEdge,
    ];

    /// The field's path in [`MediaSettings`], e.g. `video.crf`.
    pub fn as_str(self) -> &'static str {
        match self {
            Setting::MaxPixels => "limits.max_pixels",
            Setting::VoiceMaxMs => "limits.voice_max_ms",
            Setting::VideoMaxMs => "limits.video_max_ms",
            Setting::PhotoFullEdge => "photo.full_edge",
            Setting::PhotoThumbEdge => "photo.thumb_edge",
            Setting::JpegQuality => "photo.jpeg_quality",
            Setting::PhotoBudget => "photo.budget",
            Setting::VoiceBitrate => "voice.bitrate",
            Setting::VoiceBudget => "voice.budget",
            Setting::VideoLongEdge => "video.long_edge",
            Setting::VideoShortEdge => "video.short_edge",
            Setting::VideoCrf => "video.crf",
            Setting::VideoThreads => "video.threads",
            Setting::VideoBudget => "video.budget",
            Setting::PosterQuality => "video.poster_quality",
            Setting::AudioBitrate => "video.audio_bitrate",
            Setting::MaxFrames => "sampling.max_frames",
            Setting::MinIntervalMs => "sampling.min_interval_ms",
            Setting::SamplingMaxEdge => "sampling.max_edge",
        }
    }
}

impl std::fmt::Display for Setting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A setting outside the range the pipelines accept.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field} = {value} is outside the accepted range {accepted}")]
pub struct OutOfRange {
    /// The field.
    pub field: Setting,
    /// The value given.
    pub value: String,
    /// What is accepted, e.g. `0..=51`.
    pub accepted: String,
}

/// `Err((value, accepted))` when `value` is outside `range`: the value and the range as text
/// (`0..=51`), for a caller that names the setting its own way.
pub fn outside<T: PartialOrd + std::fmt::Display>(value: T, range: &RangeInclusive<T>) -> Result<(), (String, String)> {
    if range.contains(&value) {
        Ok(())
    } else {
        Err((value.to_string(), format!("{}..={}", range.start(), range.end())))
    }
}

/// Checks `value` against `range`, naming the field when it is outside.
fn within<T: PartialOrd + std::fmt::Display>(
    field: Setting,
    value: T,
    range: &RangeInclusive<T>,
) -> Result<(), OutOfRange> {
    outside(value, range).map_err(|(value, accepted)| OutOfRange { field, value, accepted })
}

fn within_secs(field: Setting, d: Duration, range: &RangeInclusive<u64>) -> Result<(), OutOfRange> {
    // Sub-second budgets only come from tests of the budget itself: any that is not zero is taken.
    if d.subsec_nanos() != 0 {
        return Ok(());
    }
    within(field, d.as_secs(), range)
}

/// How much an input may be (contract §6). Every check happens before the expensive step it
/// guards: pixels from the header, durations from packet timestamps or decoded samples.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// `MEDIAGATE_IMAGE_MAX_PIXELS`: most pixels a photo or a video frame may have.
    pub max_pixels: u64,
    /// `MEDIAGATE_VOICE_MAX_MS`: longest voice note, plus [`VOICE_PADDING_MS`].
    pub voice_max_ms: u64,
    /// `MEDIAGATE_VIDEO_MAX_MS`: longest video.
    pub video_max_ms: u64,
}

impl Limits {
    /// The contract's defaults: 50 MP, 60 s, 180 s.
    pub const DEFAULT: Limits = Limits { max_pixels: 50_000_000, voice_max_ms: 60_000, video_max_ms: 180_000 };
    /// Accepted pixel limits (up to a gigapixel).
    pub const MAX_PIXELS: RangeInclusive<u64> = 1..=1_000_000_000;
    /// Accepted duration limits, ms (up to an hour).
    pub const MAX_MS: RangeInclusive<u64> = 1..=3_600_000;

    /// See [`MediaSettings::check`].
    pub fn check(&self) -> Result<(), OutOfRange> {
        within(Setting::MaxPixels, self.max_pixels, &Self::MAX_PIXELS)?;
        within(Setting::VoiceMaxMs, self.voice_max_ms, &Self::MAX_MS)?;
        within(Setting::VideoMaxMs, self.video_max_ms, &Self::MAX_MS)
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits::DEFAULT
    }
}

/// Accepted wall-clock budgets of one item's media work, seconds.
pub const BUDGET_SECS: RangeInclusive<u64> = 1..=3600;

/// Knobs of the photo pipeline; the defaults are the contract's (2048 / 320 px).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PhotoSettings {
    /// Long-edge bound of the `full` variant (contract: 2048).
    pub full_edge: u32,
    /// Long-edge bound of the `thumb` variant (contract: 320).
    pub thumb_edge: u32,
    /// JPEG quality 1–100 of both variants.
    pub jpeg_quality: u8,
    /// Wall-clock budget of one photo's media work.
    pub budget: Duration,
}

impl PhotoSettings {
    /// The contract's defaults.
    pub const DEFAULT: PhotoSettings =
        PhotoSettings { full_edge: 2048, thumb_edge: 320, jpeg_quality: 85, budget: Duration::from_secs(60) };
    /// Accepted long edges of either variant, px.
    pub const EDGE: RangeInclusive<u32> = 16..=8192;
    /// Accepted JPEG qualities.
    pub const JPEG_QUALITY: RangeInclusive<u8> = 1..=100;

    /// See [`MediaSettings::check`].
    pub fn check(&self) -> Result<(), OutOfRange> {
        within(Setting::PhotoFullEdge, self.full_edge, &Self::EDGE)?;
        // A thumb edge above the full edge is allowed: the thumb is made from the full.
        within(Setting::PhotoThumbEdge, self.thumb_edge, &Self::EDGE)?;
        within(Setting::JpegQuality, self.jpeg_quality, &Self::JPEG_QUALITY)?;
        within_secs(Setting::PhotoBudget, self.budget, &BUDGET_SECS)
    }
}

impl Default for PhotoSettings {
    fn default() -> Self {
        PhotoSettings::DEFAULT
    }
}

/// Knobs of the voice-note pipeline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VoiceSettings {
    /// Opus bitrate in bit/s (24 000, what Matrix' MSC3245 uses for voice).
    pub bitrate: u32,
    /// Wall-clock budget for the whole item.
    pub budget: Duration,
}

impl VoiceSettings {
    /// The defaults.
    pub const DEFAULT: VoiceSettings = VoiceSettings { bitrate: 24_000, budget: Duration::from_secs(60) };
    /// Bitrates libopus takes, bit/s.
    pub const BITRATE: RangeInclusive<u32> = 6_000..=510_000;

    /// See [`MediaSettings::check`].
    pub fn check(&self) -> Result<(), OutOfRange> {
        within(Setting::VoiceBitrate, self.bitrate, &Self::BITRATE)?;
        within_secs(Setting::VoiceBudget, self.budget, &BUDGET_SECS)
    }
}

impl Default for VoiceSettings {
    fn default() -> Self {
        VoiceSettings::DEFAULT
    }
}

/// libx264's presets, fastest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Preset {
    /// `ultrafast`
    Ultrafast,
    /// `superfast`
    Superfast,
    /// `veryfast`
    Veryfast,
    /// `faster`
    Faster,
    /// `fast`
    Fast,
    /// `medium`
    Medium,
    /// `slow`
    Slow,
    /// `slower`
    Slower,
    /// `veryslow`
    Veryslow,
}

impl Preset {
    /// Every preset, fastest first.
    pub const ALL: [Preset; 9] = [
        Preset::Ultrafast,
        Preset::Superfast,
        Preset::Veryfast,
        Preset::Faster,
        Preset::Fast,
        Preset::Medium,
        Preset::Slow,
        Preset::Slower,
        Preset::Veryslow,
    ];

    /// libx264's name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Preset::Ultrafast => "ultrafast",
            Preset::Superfast => "superfast",
            Preset::Veryfast => "veryfast",
            Preset::Faster => "faster",
            Preset::Fast => "fast",
            Preset::Medium => "medium",
            Preset::Slow => "slow",
            Preset::Slower => "slower",
            Preset::Veryslow => "veryslow",
        }
    }

    /// The preset of that name, if libx264 has one.
    pub fn from_name(name: &str) -> Option<Preset> {
        Preset::ALL.into_iter().find(|p| p.as_str() == name)
    }
}

impl std::fmt::Display for Preset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `MEDIAGATE_VIDEO_PASSTHROUGH` (contract §4): whether a stream that already fits the output is
/// copied, after a complete verifying decode, instead of re-encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Passthrough {
    /// Copy a stream that fits and decodes without error (the default).
    Verified,
    /// Re-encode every stream.
    Off,
}

impl Passthrough {
    /// Every value, in the order the CLI lists them.
    pub const ALL: [Passthrough; 2] = [Passthrough::Verified, Passthrough::Off];

    /// The setting's value as written in the environment.
    pub fn as_str(self) -> &'static str {
        match self {
            Passthrough::Verified => "verified",
            Passthrough::Off => "off",
        }
    }

    /// Parses a value as written in the environment.
    pub fn from_name(name: &str) -> Option<Passthrough> {
        Passthrough::ALL.into_iter().find(|p| p.as_str() == name)
    }
}

impl std::fmt::Display for Passthrough {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Knobs of the video pipeline; the defaults are the contract's where it names one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VideoSettings {
    /// Bound of the output's long edge (1280).
    pub long_edge: u32,
    /// Bound of the output's short edge (720).
    pub short_edge: u32,
    /// libx264 constant rate factor (23, x264's default).
    pub crf: u8,
    /// libx264 preset (`veryfast`: a 3-minute 720p clip in about real time on 2 cores).
    pub preset: Preset,
    /// Threads of the video decoder and of libx264 (fixed, for byte-identical output).
    pub threads: usize,
    /// Wall-clock budget for the whole item.
    pub budget: Duration,
    /// JPEG quality 1–100 of the poster.
    pub poster_quality: u8,
    /// AAC bitrate in bit/s for stereo (mono gets half).
    pub audio_bitrate: u32,
    /// Whether streams that fit are copied (contract §4 "Video passthrough").
    pub passthrough: Passthrough,
}

impl VideoSettings {
    /// The defaults.
    pub const DEFAULT: VideoSettings = VideoSettings {
        long_edge: 1280,
        short_edge: 720,
        crf: 23,
        preset: Preset::Veryfast,
        threads: 2,
        budget: Duration::from_secs(600),
        poster_quality: 85,
        audio_bitrate: 128_000,
        passthrough: Passthrough::Verified,
    };
    /// CRFs libx264 takes (8-bit).
    pub const CRF: RangeInclusive<u8> = 0..=51;
    /// Decoder/encoder threads.
    pub const THREADS: RangeInclusive<usize> = 1..=64;
    /// AAC bitrates, bit/s.
    pub const AUDIO_BITRATE: RangeInclusive<u32> = 16_000..=512_000;

    /// See [`MediaSettings::check`].
    pub fn check(&self) -> Result<(), OutOfRange> {
        within(Setting::VideoLongEdge, self.long_edge, &(2..=8192))?;
        within(Setting::VideoShortEdge, self.short_edge, &(2..=self.long_edge.max(2)))?;
        within(Setting::VideoCrf, self.crf, &Self::CRF)?;
        within(Setting::VideoThreads, self.threads, &Self::THREADS)?;
        within_secs(Setting::VideoBudget, self.budget, &BUDGET_SECS)?;
        within(Setting::PosterQuality, self.poster_quality, &PhotoSettings::JPEG_QUALITY)?;
        within(Setting::AudioBitrate, self.audio_bitrate, &Self::AUDIO_BITRATE)
    }
}

impl Default for VideoSettings {
    fn default() -> Self {
        VideoSettings::DEFAULT
    }
}

/// Which video frames the classifier scores (contract §3): spread evenly over the whole clip,
/// at least `min_interval` apart, at most `max_frames` in all, the poster included.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FrameSampling {
    /// Least time between two sampled frames (contract: 1 s).
    pub min_interval: Duration,
    /// Most frames in all, the poster included (`MEDIAGATE_VIDEO_MAX_FRAMES`, 32).
    pub max_frames: usize,
    /// Frames are fitted into this long edge (never upscaled).
    pub max_edge: u32,
}

impl FrameSampling {
    /// The contract's defaults.
    pub const DEFAULT: FrameSampling =
        FrameSampling { min_interval: Duration::from_secs(1), max_frames: 32, max_edge: 512 };
    /// Accepted frame counts (1: the poster alone).
    pub const MAX_FRAMES: RangeInclusive<usize> = 1..=256;
    /// Accepted least intervals, ms (the contract's floor is 1 s).
    pub const MIN_INTERVAL_MS: RangeInclusive<u64> = 1000..=60_000;

    /// See [`MediaSettings::check`].
    pub fn check(&self) -> Result<(), OutOfRange> {
        within(Setting::MaxFrames, self.max_frames, &Self::MAX_FRAMES)?;
        let ms = u64::try_from(self.min_interval.as_millis()).unwrap_or(u64::MAX);
        within(Setting::MinIntervalMs, ms, &Self::MIN_INTERVAL_MS)?;
        within(Setting::SamplingMaxEdge, self.max_edge, &(16..=4096))
    }

    /// When to sample, in ms from the first frame, for a video track of `duration_ms`, the
    /// poster aside: the middles of `n` equal spans that cover the whole clip, where `n` is
    /// `max_frames - 1` (one is the poster's), fewer when the clip is too short for them to be
    /// `min_interval` apart, and at least one.
    pub fn times(&self, duration_ms: u64) -> Vec<f64> {
        let slots = self.max_frames.saturating_sub(1);
        if slots == 0 {
            return Vec::new();
        }
        let min = u64::try_from(self.min_interval.as_millis()).unwrap_or(u64::MAX).max(1);
        let n = usize::try_from(duration_ms / min).unwrap_or(usize::MAX).clamp(1, slots);
        let step = duration_ms as f64 / n as f64;
        (0..n).map(|i| (i as f64 + 0.5) * step).collect()
    }
}

impl Default for FrameSampling {
    fn default() -> Self {
        FrameSampling::DEFAULT
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_are_valid() {
        assert_eq!(MediaSettings::DEFAULT.check(), Ok(()));
    }

    #[test]
    fn a_value_outside_its_range_names_its_field() {
        let mut s = MediaSettings::DEFAULT;
        s.video.crf = 60;
        let e = s.check().unwrap_err();
        assert_eq!((e.field.as_str(), e.value.as_str(), e.accepted.as_str()), ("video.crf", "60", "0..=51"));
        let mut s = MediaSettings::DEFAULT;
        s.photo.thumb_edge = 9000;
        assert_eq!(s.check().unwrap_err().field.as_str(), "photo.thumb_edge");
        let mut s = MediaSettings::DEFAULT;
        s.voice.budget = Duration::ZERO;
        assert_eq!(s.check().unwrap_err().field.as_str(), "voice.budget");
    }

    #[test]
    fn presets_by_name() {
        assert_eq!(Preset::from_name("veryfast"), Some(Preset::Veryfast));
        assert_eq!(Preset::from_name("placebo"), None);
        assert!(Preset::ALL.iter().all(|p| Preset::from_name(p.as_str()) == Some(*p)));
    }

    #[test]
    fn samples_spread_over_the_whole_clip() {
        let s = FrameSampling::DEFAULT;
        // Three minutes: 31 frames (the poster is the 32nd), 5.8 s apart, the last in the last 3 s.
        let t = s.times(180_000);
        assert_eq!(t.len(), 31);
        assert!(t[0] > 0.0 && t[0] < 3_000.0, "{t:?}");
        assert!(*t.last().unwrap() > 177_000.0, "{t:?}");
        assert!(t.windows(2).all(|w| w[1] - w[0] >= 1000.0));
        // Ten seconds: one a second; half a second: one frame, in its middle.
        assert_eq!(s.times(10_000).len(), 10);
        assert_eq!(s.times(500), vec![250.0]);
        assert_eq!(s.times(0), vec![0.0]);
        // The poster alone.
        assert!(FrameSampling { max_frames: 1, ..s }.times(60_000).is_empty());
    }
}
