//! Videos: MP4/MOV/WebM in, H.264 + AAC fast-start MP4 (`video`), a JPEG `poster` with its
//! BlurHash, the displayed size and the decoded duration out (contract §3, §4, §5); plus frame
//! samples for the nudity classifier.
//!
//! Order of work, each step refusing as early and as cheaply as it can:
//! container headers → codec allow-list → pixel limit (codec parameters, before any decode) →
//! **scan pass** over packet timestamps (no decoding) → duration limit → **transcode pass**:
//! decode → scale + rotate (libavfilter) → poster/sample pick → libx264 → MP4, with the audio
//! (if any) decoded → resampled → AAC alongside.
//!
//! Decisions worth knowing:
//! - **Size**: the displayed picture (rotation and sample aspect ratio applied) is fitted inside
//!   `long_edge` × `short_edge` in its own orientation (1280×720 landscape, 720×1280 portrait),
//!   never upscaled, both dimensions even, square pixels. Scaling happens before rotation, so the
//!   rotation filter moves the smaller picture.
//! - **Rotation**: the display matrix (or a legacy `rotate` tag) is applied to the pixels with
//!   the FFmpeg CLI's autorotate rules; the output carries no rotation, so every player shows
//!   the same thing. Angles that are not a multiple of 90° are rounded to the nearest one.
//! - **Timestamps**: frames keep their own timestamps (variable frame rate stays variable); a
//!   timestamp that does not increase is nudged by one tick. The reported duration is the span
//!   of decoded frame timestamps (video and audio), the limit check uses packet timestamps
//!   before anything is decoded.
//! - **Poster**: the first frame at or after min(1 s, 10 % of the duration) that is neither
//!   dark nor flat; else the next candidates one second apart (5 at most); else the most
//!   detailed frame seen. Encoded with libjpeg-turbo (4:2:0) from full-range RGB converted with
//!   the frame's own colour matrix.
//! - **Metadata**: nothing is copied from the input (no GPS `©xyz`, no `creation_time`, no
//!   handler names, no rotation); muxer and encoders run with bit-exact flags.
//! - **Determinism**: fixed encoder thread count, bit-exact flags; same input and settings give
//!   the same bytes on the same machine.
//! - **Fast start**: the MP4 muxer's `+faststart` rewrites the file so `moov` precedes `mdat`.
//!   It re-reads its own output by name; the MP4 is written to memory ([`crate::av::memfile`]) and that
//!   re-open is served from the same bytes, so nothing touches disk (a sandbox child can open no
//!   path).
//! - **Bounded**: decoder and encoder threads fixed by `threads`, every frame's size checked
//!   against `max_pixels`, a frame-rate ceiling (250 frames per second on average), and the
//!   wall-clock `budget` checked between packets and frames and by FFmpeg's interrupt callback.
//! - **Colour**: any pixel format in (10-bit, 4:2:2, 4:4:4, full range) → 8-bit 4:2:0 limited
//!   range, BT.709 primaries, transfer and matrix, tagged so in the H.264 stream; HDR (PQ, HLG)
//!   is tone-mapped (see [`chain`]).
//! - **Frame rate**: at most 60 fps; faster clips are decimated on their own timeline.

use ffmpeg::ffi;
use ffmpeg::format::context::{Input, Output};
use ffmpeg::{codec, format as ffformat, frame, ChannelLayout, Packet, Rational};
use ffmpeg_next as ffmpeg;

use crate::av::ffi::{codec_parameters, extradata, reorder_depth, AVCodecParameters, BitstreamFilter};
use crate::av::memfile::MemFile;
use crate::av::{
    allow_contract_decoders, best_video_stream, display_size, init, internal_error, open_input, open_input_with,
    pass_error, received, write_ready, AudioChain, Deadline, FilterGraph, LogCapture, Orientation, SharedBytes,
};
use crate::fingerprint::{FrameHash, ImageHash};
use crate::photo::{Encoded, OutputKind};
use crate::settings::{FrameSampling, MediaSettings, Passthrough, VideoSettings};
use crate::sniff::Format;
use crate::MediaError;

mod chain;
mod copy;
mod frames;
mod mux;
mod pass;
mod plan;

use chain::*;
pub use copy::VideoPath;
use copy::*;
use frames::*;
use mux::*;
use pass::*;
use plan::*;

/// One decoded frame as packed RGB8, upright (rotation applied).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RgbFrame {
    /// Time from the first frame, in ms.
    pub timestamp_ms: u64,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// `width × height × 3` bytes, rows top to bottom.
    #[serde(with = "serde_bytes")]
    pub data: Vec<u8>,
    /// Whether this is the poster frame.
    pub poster: bool,
}

/// Everything the worker stores and reports for a cleared video.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct VideoOutput {
    /// Original width as displayed (rotation applied) — the verdict's `width`.
    pub width: u32,
    /// Original height as displayed — the verdict's `height`.
    pub height: u32,
    /// Decoded length in ms — the verdict's `duration_ms`.
    pub duration_ms: u64,
    /// Whether the output has a sound track (the input had decodable audio).
    pub has_audio: bool,
    /// The `video` variant: H.264 (+ AAC) in MP4, fast-start.
    #[serde(with = "serde_bytes")]
    pub mp4: Vec<u8>,
    /// Encoded width.
    pub mp4_width: u32,
    /// Encoded height.
    pub mp4_height: u32,
    /// The `poster` variant (JPEG, the encoded size).
    pub poster: Encoded,
    /// BlurHash of the poster.
    pub blurhash: String,
    /// Sampled frames (contract §3) when asked for, the poster among them.
    pub frames: Vec<RgbFrame>,
    /// PDQ of the poster as stored (contract §5 `pdq`), with its variants.
    pub hash: ImageHash,
    /// PDQ of every frame sampled over the clip (the poster among them), in time order,
    /// whether or not the frames themselves were asked for (`pdq_frames`).
    pub frame_hashes: Vec<FrameHash>,
    /// Which streams were copied and which re-encoded (contract §4 "Video passthrough").
    pub path: VideoPath,
    /// Why each stream that was re-encoded was not copied (`video: …`, `audio: …`), for logs.
    pub reencoded_because: Vec<String>,
}

/// Containers [`process_video`] opens.
pub fn is_video_format(format: Format) -> bool {
    matches!(format, Format::Mp4 | Format::Mov | Format::ThreeGp | Format::Webm | Format::Mkv)
}

const SEND_VIDEO: &str = "send MP4 or MOV (H.264 or HEVC) or WebM (VP8, VP9 or AV1)";
const VIDEO_CODECS: [&str; 5] = ["h264", "hevc", "vp8", "vp9", "av1"];

fn audio_codec_allowed(name: &str) -> bool {
    const ALLOWED: [&str; 11] =
        ["aac", "mp3", "opus", "vorbis", "flac", "alac", "ac3", "eac3", "amr_nb", "amr_wb", "mp2"];
    name.starts_with("pcm_") || ALLOWED.contains(&name)
}

/// Transcodes a video to the `video` and `poster` variants and hashes the poster and the frames
/// `settings.sampling` picks, from the same decode; with `sample`, also returns those frames
/// (for the classifier). See the module docs for the rules.
pub fn process_video(
    bytes: &[u8],
    format: Format,
    settings: &MediaSettings,
    sample: bool,
) -> Result<VideoOutput, MediaError> {
    settings.ensure_valid()?;
    init();
    let s = &settings.video;
    let t0 = std::time::Instant::now();
    let deadline = Deadline::new(s.budget, "transcoding the video");
    let capture = LogCapture::start();
    let shared = SharedBytes::new(bytes);
    let plan = prepare(&shared, format, settings, &deadline, &capture)?;
    let t_scan = t0.elapsed();
    let mut plan = plan;
    let mut input = open_input_with(&shared, format, &deadline, &[], false)?;
    let out = match run_pass(&mut input, &plan, s, &deadline, &capture, true, Some(&settings.sampling)) {
        // The verifying decode found something: the clip goes down the re-encode path, where
        // a stream that does not decode is `input.corrupt` as ever.
        Err(MediaError::Corrupt { message }) if plan.copy.video() => {
            tracing::info!(reason = %message, "video stream not copied after its verifying decode; re-encoding");
            plan.copy.video = Err(message);
            capture.clear();
            let mut input = open_input_with(&shared, format, &deadline, &[], false)?;
            run_pass(&mut input, &plan, s, &deadline, &capture, true, Some(&settings.sampling))?
        }
        r => r?,
    };
    let mux = out.mux.ok_or_else(|| MediaError::internal("transcode pass produced no MP4"))?;
    let (poster_rgb, mut frames) = (out.poster, out.frames);
    let poster = encode_poster(&poster_rgb, s.poster_quality)?;
    let blurhash = blurhash_of(&poster_rgb)?;
    let hash = crate::fingerprint::hash_rgb(poster_rgb.width, poster_rgb.height, &poster_rgb.data)?;
    let frame_hashes = out.frame_hashes;
    if !sample {
        frames = Vec::new();
    }
    tracing::debug!(
        format = format.name(),
        codec = %plan.codec,
        width = plan.display.0,
        height = plan.display.1,
        duration_ms = out.duration_ms,
        scan_ms = t_scan.as_secs_f64() * 1e3,
        total_ms = t0.elapsed().as_secs_f64() * 1e3,
        bytes = mux.len(),
        frames = frames.len(),
        path = VideoPath::of(&plan.copy, plan.audio.is_some()).as_str(),
        "video processed"
    );
    let mut reencoded_because = Vec::new();
    if let Err(why) = &plan.copy.video {
        reencoded_because.push(format!("video: {why}"));
    }
    if let (Some(_), Err(why)) = (plan.audio, &plan.copy.audio) {
        reencoded_because.push(format!("audio: {why}"));
    }
    Ok(VideoOutput {
        width: plan.display.0,
        height: plan.display.1,
        duration_ms: out.duration_ms,
        has_audio: plan.audio.is_some(),
        mp4: mux,
        mp4_width: plan.out.0,
        mp4_height: plan.out.1,
        poster,
        blurhash,
        frames,
        hash,
        frame_hashes,
        path: VideoPath::of(&plan.copy, plan.audio.is_some()),
        reencoded_because,
    })
}

/// Decodes a video (no encoding) and returns the upright RGB frames `settings.sampling` picks,
/// the poster frame first. The same limits apply as in [`process_video`] (duration, pixels,
/// budget).
pub fn sample_frames(bytes: &[u8], format: Format, settings: &MediaSettings) -> Result<Vec<RgbFrame>, MediaError> {
    settings.ensure_valid()?;
    init();
    let s = &settings.video;
    let deadline = Deadline::new(s.budget, "sampling video frames");
    let capture = LogCapture::start();
    let shared = SharedBytes::new(bytes);
    let plan = prepare(&shared, format, settings, &deadline, &capture)?;
    let mut input = open_input_with(&shared, format, &deadline, &[], false)?;
    Ok(run_pass(&mut input, &plan, s, &deadline, &capture, false, Some(&settings.sampling))?.frames)
}

fn unsupported(message: impl Into<String>) -> MediaError {
    MediaError::UnsupportedCodec { message: message.into() }
}
