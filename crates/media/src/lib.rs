//! mediagate-media: sniffing and media processing. Bytes in, outputs and measurements out.
//!
//! Invariants: synchronous (no tokio), no I/O besides the bytes given, no knowledge of queues,
//! buckets or jobs. Every refusal is a [`MediaError`] whose variant maps to one contract reason
//! code, checked in the cheapest order (magic bytes, then header, then pixel limit, then decode).

#![warn(missing_docs)]
#![deny(unsafe_op_in_unsafe_fn)]
// `unsafe` lives in three modules only: `av::ffi` (every FFmpeg call `ffmpeg-next` does not wrap
// safely), `av::memfile` (FFmpeg's custom-I/O callbacks for the in-memory MP4) and `versions`
// (the C libraries' static version strings), plus one test of `raster` that switches CPU
// extensions; each allows it, and each block says why it is sound.
#![deny(unsafe_code)]

mod audio;
mod av;
mod error;
mod fingerprint;
mod heif;
mod icc;
mod jpeg_meta;
mod photo;
mod raster;
mod settings;
mod sniff;
#[allow(unsafe_code)]
mod versions;
mod video;

pub use audio::{is_voice_format, process_voice, VoiceOutput, WAVEFORM_BUCKETS, WAVEFORM_MAX};
pub use av::{probe_av, AvProbe};
pub use error::{panic_message, MediaError};
pub use fingerprint::{FrameHash, ImageHash};
pub use mediagate_hash::Pdq;
pub use versions::{libraries, Libraries};

/// Initialises the media libraries (FFmpeg's logging and allocation cap, libheif's decoders)
/// in this process. The sandbox's fork server calls it before it locks itself down, so children
/// inherit initialised libraries and never need to open a file or load a plugin to start one;
/// every entry point also initialises on first use, so calling it is never required.
pub fn prepare() {
    av::init();
    heif::init();
}
pub use photo::{probe_dimensions, process_photo, process_photo_inspecting, Encoded, OutputKind, PhotoOutput};
pub use settings::{
    outside, FrameSampling, Limits, MediaSettings, OutOfRange, Passthrough, PhotoSettings, Preset, Setting,
    VideoSettings, VoiceSettings, BUDGET_SECS, VOICE_PADDING_MS,
};
pub use sniff::{ogg_codec, sniff, Format, MediaClass, OggCodec};
pub use video::{is_video_format, process_video, sample_frames, RgbFrame, VideoOutput, VideoPath};
