//! FFmpeg plumbing shared by the audio and video pipelines: one-time initialisation, logs routed
//! to `tracing`, inputs opened from memory with a forced demuxer and a deadline, error mapping,
//! and [`probe_av`].
//!
//! Decisions worth knowing:
//! - **Input from memory**: the bytes are handed to FFmpeg through a custom AVIO context
//!   (`ffmpeg-next`'s `StreamIo`), not a temporary file. They are copied once per call into a
//!   shared buffer, which every pass of that call reads.
//! - **Forced demuxer**: the demuxer is chosen from the sniffed [`Format`], never probed, so a file
//!   cannot talk FFmpeg into a playlist or concat demuxer that opens other files or URLs.
//! - **Deadline**: every item has a wall-clock budget. It is polled by FFmpeg through the input's
//!   interrupt callback and by our own loops between packets and frames; running out gives
//!   [`MediaError::TimedOut`].
//! - **Logs**: FFmpeg's log callback formats each line and forwards it to `tracing` (target
//!   `ffmpeg`), never to stderr. Records logged on the calling thread while a pass runs are also
//!   kept (bounded): an error logged by the demuxer or a decoder (judged by the record's level and
//!   its context's `AVClass` category, never its words) makes the input [`MediaError::Corrupt`],
//!   with FFmpeg's own line in the message.
//! - **`unsafe`**: every FFmpeg call `ffmpeg-next` does not wrap safely is in [`ffi`], behind a
//!   safe function; the in-memory MP4's I/O callbacks are in [`memfile`].

use std::cell::RefCell;
use std::ffi::CString;
use std::sync::Once;
use std::time::{Duration, Instant};

use ffmpeg::ffi as sys;
use ffmpeg::format::context::Input;
use ffmpeg::media::Type as MediaType;
use ffmpeg_next as ffmpeg;

use crate::sniff::{ogg_codec, Format, MediaClass, OggCodec};
use crate::MediaError;

#[allow(unsafe_code)]
pub(crate) mod ffi;
#[allow(unsafe_code)]
pub(crate) mod memfile;

pub(crate) use ffi::{read_packet, OpenInput};

static INIT: Once = Once::new();

/// Initialises FFmpeg once per process: registers nothing (FFmpeg ≥ 5 needs no registration),
/// sets the log level to warnings and routes log lines to `tracing`.
/// Cap on any single allocation inside FFmpeg.
const MAX_FFMPEG_ALLOC: usize = 256 << 20;

pub(crate) fn init() {
    INIT.call_once(|| {
        if let Err(e) = ffmpeg::init() {
            tracing::warn!(error = %e, "FFmpeg initialisation reported an error");
        }
        // No single FFmpeg allocation may exceed MAX_FFMPEG_ALLOC: a few bytes of header (an
        // `stco` box claiming 130 million entries, found by fuzzing) otherwise make the demuxer
        // ask for ~1 GB up front. The largest legitimate buffer (an 8K frame) is ~100 MB.
        ffi::configure_process(MAX_FFMPEG_ALLOC, record);
    });
}

const CAPTURE_MAX: usize = 64;

/// One log record of FFmpeg's: what decides damage is its level and the kind of context that
/// logged it, never its words.
#[derive(Debug, Clone)]
pub(crate) struct LogRecord {
    level: i32,
    /// The logging object's `AVClassCategory` (demuxer, decoder, …).
    category: sys::AVClassCategory,
    /// Its `item_name` ("mov,mp4,m4a,3gp,3g2,mj2", "h264", …), for people.
    source: String,
    /// The line (formatted where the platform allows; else FFmpeg's format string), for people.
    text: String,
}

thread_local! {
    /// Records logged on this thread while a [`LogCapture`] is alive.
    static CAPTURED: RefCell<Option<Vec<LogRecord>>> = const { RefCell::new(None) };
}

/// Adds `r` to this thread's capture, if one is alive and not full.
fn keep(r: LogRecord) {
    CAPTURED.with(|c| {
        if let Ok(mut c) = c.try_borrow_mut() {
            if let Some(v) = c.as_mut() {
                if v.len() < CAPTURE_MAX {
                    v.push(r);
                }
            }
        }
    });
}

/// Drops the decoder records captured so far on this thread (see `open_input_with`).
fn forget_decoder_records() {
    CAPTURED.with(|c| {
        if let Ok(mut c) = c.try_borrow_mut() {
            if let Some(v) = c.as_mut() {
                v.retain(|r| r.category != sys::AVClassCategory::AV_CLASS_CATEGORY_DECODER);
            }
        }
    });
}

/// Keeps a record for the capture of this thread (if one is alive) and forwards it to tracing.
fn record(level: i32, source: String, category: sys::AVClassCategory, text: String) {
    if text.is_empty() {
        return;
    }
    // Never let a panic cross the FFI boundary.
    let _ = std::panic::catch_unwind(|| {
        keep(LogRecord { level, category, source: source.clone(), text: text.clone() });
        if level <= sys::AV_LOG_FATAL {
            tracing::warn!(target: "ffmpeg", source = %source, "{text}");
        } else if level <= sys::AV_LOG_ERROR {
            tracing::info!(target: "ffmpeg", source = %source, "{text}");
        } else if level <= sys::AV_LOG_WARNING {
            tracing::debug!(target: "ffmpeg", source = %source, "{text}");
        } else {
            tracing::trace!(target: "ffmpeg", source = %source, "{text}");
        }
    });
}

/// Keeps the FFmpeg log records of the current thread while alive (nested captures share one
/// buffer; the outermost ends it).
pub(crate) struct LogCapture {
    outer: bool,
}

impl LogCapture {
    pub(crate) fn start() -> Self {
        let outer = CAPTURED.with(|c| {
            let mut c = c.borrow_mut();
            if c.is_none() {
                *c = Some(Vec::new());
                true
            } else {
                false
            }
        });
        LogCapture { outer }
    }

    /// Forgets the records captured so far (a second pass over the same input starts afresh).
    pub(crate) fn clear(&self) {
        CAPTURED.with(|c| {
            if let Some(lines) = c.borrow_mut().as_mut() {
                lines.clear();
            }
        });
    }

    /// Notes a decoded frame that its decoder marked as damaged (`decode_error_flags`: invalid
    /// bitstream, missing reference, concealment; or `AV_FRAME_FLAG_CORRUPT`).
    pub(crate) fn check_frame(&self, frame: &ffmpeg::Frame, what: &str) {
        let (errors, flags) = ffi::frame_error_flags(frame);
        if errors != 0 || flags & sys::AV_FRAME_FLAG_CORRUPT != 0 {
            let text =
                format!("{what}: a frame decoded with errors (decode_error_flags {errors:#x}, flags {flags:#x})");
            keep(LogRecord {
                level: sys::AV_LOG_ERROR,
                category: sys::AVClassCategory::AV_CLASS_CATEGORY_DECODER,
                source: what.to_string(),
                text,
            });
        }
    }

    /// The first record that says the input is damaged: an error (or worse) logged by the
    /// demuxer or a decoder of the input — a demuxer's "partial file", a decoder's broken
    /// slice — or a frame its decoder flagged ([`LogCapture::check_frame`]). Decided by the
    /// record's level and its context's category, never by its words; warnings (a demuxer's
    /// notes on odd but readable files) are not damage.
    pub(crate) fn damage(&self) -> Option<String> {
        use sys::AVClassCategory::{AV_CLASS_CATEGORY_DECODER, AV_CLASS_CATEGORY_DEMUXER};
        CAPTURED.with(|c| {
            let c = c.borrow();
            c.as_ref()?
                .iter()
                .find(|r| {
                    r.level <= sys::AV_LOG_ERROR
                        && matches!(r.category, AV_CLASS_CATEGORY_DEMUXER | AV_CLASS_CATEGORY_DECODER)
                })
                .map(|r| if r.source.is_empty() { r.text.clone() } else { format!("{}: {}", r.source, r.text) })
        })
    }
}

impl Drop for LogCapture {
    fn drop(&mut self) {
        if self.outer {
            CAPTURED.with(|c| {
                if let Ok(mut c) = c.try_borrow_mut() {
                    *c = None;
                }
            });
        }
    }
}

/// A wall-clock budget for one item.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Deadline {
    end: Instant,
    budget: Duration,
    stage: &'static str,
}

impl Deadline {
    pub(crate) fn new(budget: Duration, stage: &'static str) -> Self {
        let now = Instant::now();
        Deadline { end: now.checked_add(budget).unwrap_or(now + Duration::from_secs(86_400 * 365)), budget, stage }
    }

    pub(crate) fn expired(&self) -> bool {
        Instant::now() >= self.end
    }

    pub(crate) fn error(&self) -> MediaError {
        MediaError::TimedOut {
            stage: self.stage.into(),
            budget_ms: self.budget.as_millis().min(u64::MAX as u128) as u64,
        }
    }

    pub(crate) fn check(&self) -> Result<(), MediaError> {
        if self.expired() {
            Err(self.error())
        } else {
            Ok(())
        }
    }
}

/// The input bytes, copied once per call and shared by every pass over them.
#[derive(Clone)]
pub(crate) enum SharedBytes<'a> {
    /// The caller's bytes, read in place (in the sandbox: the input's read-only mapping).
    Borrowed(&'a [u8]),
    /// A corrected copy (a WAV whose data chunk declares less than it holds).
    Owned(Vec<u8>),
}

impl<'a> SharedBytes<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        SharedBytes::Borrowed(bytes)
    }

    pub(crate) fn from_vec(bytes: Vec<u8>) -> Self {
        SharedBytes::Owned(bytes)
    }
}

impl AsRef<[u8]> for SharedBytes<'_> {
    fn as_ref(&self) -> &[u8] {
        match self {
            SharedBytes::Borrowed(b) => b,
            SharedBytes::Owned(v) => v,
        }
    }
}

/// The FFmpeg decoders (implementation names, as `ffmpeg -decoders` lists them) any input may
/// reach: those of the video codecs the contract takes (H.264, HEVC, VP8, VP9, AV1 through
/// libdav1d) and the audio codecs of voice notes and video sound. Debian's FFmpeg builds about
/// 500 decoders; each one a file could select is attack surface, so every format context
/// (`codec_whitelist`, which also binds the decoders `avformat_find_stream_info` opens to probe a
/// stream) and every decoder context we open is held to this list. A stream of another codec
/// (a cover picture, a subtitle, a ProRes track) is then never decoded at all.
pub(crate) const DECODERS: &str = "h264,hevc,vp8,vp9,libdav1d,\
aac,aac_fixed,aac_latm,mp3float,mp3,mp2float,mp2,opus,vorbis,flac,alac,ac3,ac3_fixed,eac3,amrnb,amrwb,\
adpcm_ima_wav,adpcm_ms,gsm_ms,libspeex,\
pcm_s8,pcm_u8,pcm_s16le,pcm_s16be,pcm_u16le,pcm_u16be,pcm_s24le,pcm_s24be,pcm_u24le,pcm_u24be,\
pcm_s32le,pcm_s32be,pcm_u32le,pcm_u32be,pcm_f32le,pcm_f32be,pcm_f64le,pcm_f64be,pcm_alaw,pcm_mulaw";

/// Holds the decoder context `ctx` to [`DECODERS`]: `avcodec_open2` refuses any other decoder.
pub(crate) fn allow_contract_decoders(ctx: &mut ffmpeg::codec::context::Context) -> Result<(), MediaError> {
    let list = CString::new(DECODERS).map_err(|_| MediaError::internal("decoder list"))?;
    ffi::set_codec_option(ctx, c"codec_whitelist", &list).map_err(|e| internal_error("restricting the decoders", e))
}

/// The FFmpeg demuxer for a sniffed format (`None`: not an audio/video container).
pub(crate) fn demuxer_for(format: Format) -> Option<&'static str> {
    use Format::*;
    Some(match format {
        Mp4 | Mov | ThreeGp | M4a => "mov",
        Webm | WebmAudio | Mkv | Mka => "matroska",
        Ogg | Ogv => "ogg",
        Mp3 => "mp3",
        Wav => "wav",
        Flac => "flac",
        Aac => "aac",
        Amr => "amr",
        Avi => "avi",
        _ => return None,
    })
}

/// Opens `bytes` with the demuxer of `format`, reads the stream parameters, and arms the
/// deadline as the input's interrupt callback. `options` are demuxer options.
pub(crate) fn open_input<'a>(
    bytes: &'a SharedBytes<'_>,
    format: Format,
    deadline: &Deadline,
    options: &[(&str, &str)],
) -> Result<OpenInput<'a>, MediaError> {
    open_input_with(bytes, format, deadline, options, true)
}

/// [`open_input`], optionally without `avformat_find_stream_info` (which decodes a few frames):
/// for a second pass over an input whose stream parameters were kept from the first.
pub(crate) fn open_input_with<'a>(
    bytes: &'a SharedBytes<'_>,
    format: Format,
    deadline: &Deadline,
    options: &[(&str, &str)],
    find_stream_info: bool,
) -> Result<OpenInput<'a>, MediaError> {
    let name = demuxer_for(format).ok_or_else(|| MediaError::UnsupportedCodec {
        message: format!("{} files carry no audio or video this pipeline reads", format.name()),
    })?;
    let mut dict = ffmpeg::Dictionary::new();
    for (k, v) in options {
        dict.set(k, v);
    }
    // The one demuxer the sniffed format names, the contract's decoders, and no protocol: a
    // reference inside the file (an MP4 `dref`, a playlist entry) cannot open anything.
    dict.set("format_whitelist", name);
    dict.set("codec_whitelist", DECODERS);
    dict.set("protocol_whitelist", "none");
    let end = deadline.end;
    let interrupt = ffmpeg::util::interrupt::new(Box::new(move || Instant::now() >= end));
    let input = ffi::open_input(bytes.as_ref(), name, dict, interrupt, find_stream_info).map_err(|e| match e {
        ffi::OpenFailure::Setup(message) => MediaError::internal(message),
        ffi::OpenFailure::Refused(e) => open_error(format, deadline, e),
    })?;
    // What decoders said while probing is not the input's damage: a cover picture or a subtitle
    // whose decoder is not on the list is refused there (and logged as an error), and the streams
    // we do decode are decoded again, watched, in the pass.
    forget_decoder_records();
    Ok(input)
}

fn open_error(format: Format, deadline: &Deadline, e: ffmpeg::Error) -> MediaError {
    if deadline.expired() || e == ffmpeg::Error::Exit {
        return deadline.error();
    }
    match e {
        // With the per-allocation cap (MAX_FFMPEG_ALLOC), ENOMEM means the file declared
        // structures far larger than any real media needs: the input's doing, not ours.
        ffmpeg::Error::Other { errno } if errno == libc::ENOMEM => MediaError::corrupt(format!(
            "the {} file declares tables or buffers far larger than real media needs; it is damaged or crafted",
            format.name()
        )),
        ffmpeg::Error::Eof => MediaError::corrupt(format!(
            "the {} file ends before its headers are complete; it is truncated",
            format.name()
        )),
        other => MediaError::corrupt(format!(
            "the {} container cannot be read ({other}); the file is damaged or truncated",
            format.name()
        )),
    }
}

/// Maps an error from a read/decode/encode call in a pass.
pub(crate) fn pass_error(what: &str, deadline: &Deadline, e: ffmpeg::Error) -> MediaError {
    if deadline.expired() || e == ffmpeg::Error::Exit {
        return deadline.error();
    }
    match e {
        ffmpeg::Error::InvalidData | ffmpeg::Error::Eof => {
            MediaError::corrupt(format!("{what} does not decode cleanly ({e}); the file is damaged or truncated"))
        }
        ffmpeg::Error::Other { errno } if errno == libc::ENOMEM => MediaError::corrupt(format!(
            "{what} needs a buffer larger than real media does; the file is damaged or crafted"
        )),
        ffmpeg::Error::Other { errno: 22 } => {
            MediaError::corrupt(format!("{what} does not decode cleanly (invalid values in the stream)"))
        }
        other => MediaError::corrupt(format!("{what} does not decode cleanly ({other})")),
    }
}

/// Maps an error from an encoder or muxer (never the input's fault).
pub(crate) fn internal_error(what: &str, e: ffmpeg::Error) -> MediaError {
    MediaError::internal(format!("{what}: {e}"))
}

/// `AVERROR(EAGAIN)`: "feed more input" / "output not ready".
const EAGAIN: i32 = 11;

/// The outcome of one FFmpeg "receive" call (a decoder's frame, an encoder's packet, a filter
/// sink's frame): `true` when it gave something, `false` when it has nothing more for now
/// (`EAGAIN`: feed it more input) or ever (`EOF`). The one place those two are told from errors.
pub(crate) fn received(r: Result<(), ffmpeg::Error>) -> Result<bool, ffmpeg::Error> {
    match r {
        Ok(()) => Ok(true),
        Err(ffmpeg::Error::Eof) => Ok(false),
        Err(ffmpeg::Error::Other { errno }) if errno == EAGAIN => Ok(false),
        Err(e) => Err(e),
    }
}

/// Moves every packet `enc` has ready into `octx` as stream `stream`, its timestamps rescaled
/// from the encoder's time base to the stream's.
pub(crate) fn write_ready(
    enc: &mut ffmpeg::encoder::Encoder,
    stream: usize,
    (enc_tb, stream_tb): (ffmpeg::Rational, ffmpeg::Rational),
    octx: &mut ffmpeg::format::context::Output,
    what: &str,
) -> Result<(), MediaError> {
    let mut p = ffmpeg::Packet::empty();
    while received(enc.receive_packet(&mut p)).map_err(|e| internal_error(what, e))? {
        p.set_stream(stream);
        p.rescale_ts(enc_tb, stream_tb);
        p.write_interleaved(octx).map_err(|e| internal_error("writing the output file", e))?;
    }
    Ok(())
}

/// A libavfilter graph with one source and one sink, `{source}={args} → {spec} → {sink}`: the
/// plumbing the video and the audio chains share (single-threaded, so outputs stay identical).
pub(crate) struct FilterGraph {
    graph: ffmpeg::filter::Graph,
    /// "video" or "audio", for messages.
    what: &'static str,
}

impl FilterGraph {
    /// Builds and validates the graph.
    pub(crate) fn new(
        what: &'static str,
        (source, args): (&str, &str),
        spec: &str,
        sink: &str,
    ) -> Result<FilterGraph, MediaError> {
        let fail = |e: ffmpeg::Error| internal_error(&format!("{what} filter graph"), e);
        let mut graph = ffmpeg::filter::Graph::new();
        ffi::set_single_threaded(&mut graph);
        let find = |name: &str| {
            ffmpeg::filter::find(name).ok_or_else(|| MediaError::internal(format!("no {name} filter in this FFmpeg")))
        };
        graph.add(&find(source)?, "in", args).map_err(fail)?;
        graph.add(&find(sink)?, "out", "").map_err(fail)?;
        graph.output("in", 0).and_then(|p| p.input("out", 0)).and_then(|p| p.parse(spec)).map_err(fail)?;
        graph.validate().map_err(fail)?;
        Ok(FilterGraph { graph, what })
    }

    fn end(&mut self, name: &str) -> Result<ffmpeg::filter::Context, MediaError> {
        let what = self.what;
        self.graph.get(name).ok_or_else(|| MediaError::internal(format!("the {what} filter graph lost its {name}")))
    }

    /// Feeds one frame.
    pub(crate) fn push(&mut self, f: &ffmpeg::Frame) -> Result<(), MediaError> {
        let what = self.what;
        self.end("in")?.source().add(f).map_err(|e| internal_error(&format!("feeding the {what} filter graph"), e))
    }

    /// Signals the end of the input.
    pub(crate) fn flush(&mut self) -> Result<(), MediaError> {
        let what = self.what;
        self.end("in")?.source().flush().map_err(|e| internal_error(&format!("flushing the {what} filter graph"), e))
    }

    /// The next output frame, `false` when none is ready.
    pub(crate) fn pull(&mut self, out: &mut ffmpeg::Frame) -> Result<bool, MediaError> {
        let what = self.what;
        received(self.end("out")?.sink().frame(out))
            .map_err(|e| internal_error(&format!("reading the {what} filter graph"), e))
    }

    /// Makes the sink return frames of exactly `n` samples (encoders without variable frame size).
    pub(crate) fn set_frame_size(&mut self, n: u32) -> Result<(), MediaError> {
        self.end("out")?.sink().set_frame_size(n);
        Ok(())
    }

    /// Time base of the frames [`FilterGraph::pull`] returns.
    pub(crate) fn out_time_base(&mut self) -> Option<ffmpeg::Rational> {
        self.graph.get("out").map(|mut c| c.sink().time_base())
    }
}

/// An audio filter graph `abuffer → {spec} → abuffersink` for frames of one shape (rate,
/// sample format, layout). Frames of another shape need a new chain ([`AudioChain::accepts`]).
pub(crate) struct AudioChain {
    graph: FilterGraph,
    rate: u32,
    format: ffmpeg::format::Sample,
    layout: u64,
    channels: u16,
    next_pts: i64,
}

impl AudioChain {
    /// `frame_size`: fixed output frame size (encoders without variable frame size, e.g. AAC).
    pub(crate) fn new(f: &ffmpeg::frame::Audio, spec: &str, frame_size: Option<u32>) -> Result<Self, MediaError> {
        let layout = frame_layout(f);
        let args = format!(
            "time_base=1/{rate}:sample_rate={rate}:sample_fmt={fmt}:channel_layout=0x{layout:x}",
            rate = f.rate(),
            fmt = f.format().name(),
        );
        let mut graph = FilterGraph::new("audio", ("abuffer", &args), spec, "abuffersink")?;
        if let Some(n) = frame_size {
            graph.set_frame_size(n)?;
        }
        Ok(AudioChain { graph, rate: f.rate(), format: f.format(), layout, channels: f.channels(), next_pts: 0 })
    }

    pub(crate) fn accepts(&self, f: &ffmpeg::frame::Audio) -> bool {
        f.rate() == self.rate
            && f.format() == self.format
            && frame_layout(f) == self.layout
            && f.channels() == self.channels
    }

    /// Sets the first timestamp (in 1/rate units) of the counted timeline.
    pub(crate) fn start_at(&mut self, pts: i64) {
        self.next_pts = pts;
    }

    /// Feeds a frame stamped with the running sample count (not its own timestamp).
    pub(crate) fn push_counted(&mut self, f: &mut ffmpeg::frame::Audio) -> Result<(), MediaError> {
        f.set_pts(Some(self.next_pts));
        self.next_pts += f.samples() as i64;
        if f.channel_layout().is_empty() {
            f.set_channel_layout(ffmpeg::ChannelLayout::from_bits_truncate(self.layout));
        }
        self.graph.push(f)
    }

    pub(crate) fn flush(&mut self) -> Result<(), MediaError> {
        self.graph.flush()
    }

    /// The next output frame, `false` when none is ready.
    pub(crate) fn pull(&mut self, out: &mut ffmpeg::frame::Audio) -> Result<bool, MediaError> {
        self.graph.pull(out)
    }

    /// Time base of the frames [`AudioChain::pull`] returns.
    pub(crate) fn out_time_base(&mut self) -> ffmpeg::Rational {
        self.graph.out_time_base().unwrap_or_else(|| ffmpeg::Rational::new(1, self.rate as i32))
    }
}

/// The frame's channel layout mask, or the default layout for its channel count.
pub(crate) fn frame_layout(f: &ffmpeg::frame::Audio) -> u64 {
    let l = f.channel_layout();
    if !l.is_empty() && l.channels() == f.channels() as i32 {
        l.bits()
    } else {
        ffmpeg::ChannelLayout::default(f.channels() as i32).bits()
    }
}

/// What a quick look at an audio/video file shows (container headers only: nothing here is
/// trusted for limits; durations are measured by the pipelines).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AvProbe {
    /// A real video track (cover art / attached pictures do not count).
    pub has_video: bool,
    /// An audio track.
    pub has_audio: bool,
    /// Video codec name (FFmpeg's, e.g. "h264", "vp9").
    pub video_codec: Option<String>,
    /// Audio codec name (e.g. "aac", "opus").
    pub audio_codec: Option<String>,
    /// Displayed width of the video (rotation applied), 0 without video.
    pub width: u32,
    /// Displayed height of the video (rotation applied), 0 without video.
    pub height: u32,
    /// Clockwise rotation to apply for display: 0, 90, 180 or 270.
    pub rotation: u32,
    /// The container's own duration claim in ms, if any (informational only).
    pub declared_duration_ms: Option<u64>,
}

impl AvProbe {
    /// The class the pipeline should treat the file as: audio when it has sound and no video
    /// track (an audio-only MP4 or WebM is a voice note candidate), video otherwise.
    pub fn media_class(&self) -> MediaClass {
        if self.has_audio && !self.has_video {
            MediaClass::Audio
        } else {
            MediaClass::Video
        }
    }
}

/// Opens an audio/video file and reports its tracks, so the worker can refine the class of an
/// MP4, MOV or WebM/Matroska file that sniffing could not settle. Reads headers only.
pub fn probe_av(bytes: &[u8], format: Format) -> Result<AvProbe, MediaError> {
    init();
    let deadline = Deadline::new(Duration::from_secs(20), "probing the file");
    let _capture = LogCapture::start();
    let shared = SharedBytes::new(bytes);
    let input = open_input(&shared, format, &deadline, &[])?;
    let video = best_video_stream(&input);
    let audio = input.streams().best(MediaType::Audio).map(|s| s.index());
    let mut probe = AvProbe {
        has_video: video.is_some(),
        has_audio: audio.is_some(),
        video_codec: None,
        audio_codec: None,
        width: 0,
        height: 0,
        rotation: 0,
        declared_duration_ms: (input.duration() > 0).then(|| (input.duration() as u64) / 1000),
    };
    if let Some(v) = video {
        let st = input.stream(v).ok_or_else(|| MediaError::internal("stream vanished"))?;
        let par = st.parameters();
        probe.video_codec = Some(par.id().name().to_string());
        let orient = Orientation::of_stream(&st);
        let p = ffi::codec_parameters(&par);
        let (w, h, sar) = (p.width.max(0) as u32, p.height.max(0) as u32, p.sample_aspect_ratio);
        let (dw, dh) = display_size(w, h, sar.num, sar.den);
        (probe.width, probe.height) = if orient.transposes() { (dh, dw) } else { (dw, dh) };
        probe.rotation = orient.rotation;
    }
    if let Some(a) = audio {
        let st = input.stream(a).ok_or_else(|| MediaError::internal("stream vanished"))?;
        probe.audio_codec = Some(st.parameters().id().name().to_string());
    }
    if format == Format::Ogg && ogg_codec(bytes) == Some(OggCodec::Theora) {
        probe.has_video = true;
    }
    Ok(probe)
}

/// The best video stream that is not an attached picture (cover art).
pub(crate) fn best_video_stream(input: &Input) -> Option<usize> {
    let attached = |s: &ffmpeg::Stream| s.disposition().contains(ffmpeg::format::stream::Disposition::ATTACHED_PIC);
    if let Some(s) = input.streams().best(MediaType::Video) {
        if !attached(&s) {
            return Some(s.index());
        }
    }
    input.streams().find(|s| s.parameters().medium() == MediaType::Video && !attached(s)).map(|s| s.index())
}

/// Storage size → display size with the sample aspect ratio applied (non-square pixels are
/// stretched horizontally, as players do).
pub(crate) fn display_size(w: u32, h: u32, sar_num: i32, sar_den: i32) -> (u32, u32) {
    if sar_num > 0 && sar_den > 0 && sar_num != sar_den {
        let dw = ((w as u64 * sar_num as u64 + sar_den as u64 / 2) / sar_den as u64).clamp(1, 16384 * 4) as u32;
        (dw, h)
    } else {
        (w, h)
    }
}

/// How a video's pixels must be turned to be displayed upright (FFmpeg CLI's autorotate rules).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Orientation {
    /// Clockwise rotation in degrees: 0, 90, 180, 270.
    pub rotation: u32,
    /// The libavfilter chain that applies it ("" when none).
    pub filters: &'static str,
}

impl Orientation {
    pub(crate) fn transposes(&self) -> bool {
        self.rotation == 90 || self.rotation == 270
    }

    /// From the stream's display matrix side data, else its legacy `rotate` tag.
    pub(crate) fn of_stream(st: &ffmpeg::Stream) -> Orientation {
        if let Some(m) = ffi::display_matrix(st) {
            return Orientation::from_matrix(&m);
        }
        if let Some(tag) = st.metadata().get("rotate") {
            if let Ok(deg) = tag.trim().parse::<f64>() {
                return Orientation::from_degrees(deg);
            }
        }
        Orientation::default()
    }

    /// FFmpeg 5.1 `ffmpeg_filter.c` `configure_input_video_filter` (autorotate), with angles
    /// that are not a multiple of 90° rounded to the nearest one.
    pub(crate) fn from_matrix(m: &[i32; 9]) -> Orientation {
        let r = ffi::display_rotation(m);
        if !r.is_finite() {
            return Orientation::default();
        }
        let mut theta = -r.round();
        theta -= 360.0 * (theta / 360.0 + 0.9 / 360.0).floor();
        let quadrant = ((theta / 90.0).round() as i64).rem_euclid(4);
        match quadrant {
            1 => Orientation {
                rotation: 90,
                filters: if m[3] > 0 { "transpose=cclock_flip" } else { "transpose=clock" },
            },
            2 => Orientation {
                rotation: 180,
                filters: match (m[0] < 0, m[4] < 0) {
                    (true, true) => "hflip,vflip",
                    (true, false) => "hflip",
                    (false, true) => "vflip",
                    (false, false) => "",
                },
            },
            3 => Orientation {
                rotation: 270,
                filters: if m[3] < 0 { "transpose=clock_flip" } else { "transpose=cclock" },
            },
            _ => Orientation { rotation: 0, filters: if m[4] < 0 { "vflip" } else { "" } },
        }
    }

    fn from_degrees(deg: f64) -> Orientation {
        let quadrant = ((deg / 90.0).round() as i64).rem_euclid(4);
        match quadrant {
            1 => Orientation { rotation: 90, filters: "transpose=clock" },
            2 => Orientation { rotation: 180, filters: "hflip,vflip" },
            3 => Orientation { rotation: 270, filters: "transpose=cclock" },
            _ => Orientation::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matrix_for(deg: f64) -> [i32; 9] {
        ffi::display_matrix_for(deg)
    }

    #[test]
    fn orientation_follows_ffmpeg_autorotate() {
        // av_display_rotation_set(x) describes a clockwise rotation of x degrees (what an
        // iPhone held upright writes, ffprobe's "rotation=-90"): displayed turned clockwise.
        assert_eq!(Orientation::from_matrix(&matrix_for(90.0)).rotation, 90);
        assert_eq!(Orientation::from_matrix(&matrix_for(90.0)).filters, "transpose=clock");
        assert_eq!(Orientation::from_matrix(&matrix_for(-90.0)).rotation, 270);
        assert_eq!(Orientation::from_matrix(&matrix_for(-90.0)).filters, "transpose=cclock");
        assert_eq!(Orientation::from_matrix(&matrix_for(180.0)).rotation, 180);
        assert_eq!(Orientation::from_matrix(&matrix_for(180.0)).filters, "hflip,vflip");
        assert_eq!(Orientation::from_matrix(&matrix_for(0.0)), Orientation::default());
        assert_eq!(Orientation::from_degrees(90.0).filters, "transpose=clock");
        assert_eq!(Orientation::from_degrees(-90.0).rotation, 270);
    }

    #[test]
    fn display_size_applies_sar() {
        assert_eq!(display_size(720, 576, 16, 15), (768, 576));
        assert_eq!(display_size(1920, 1080, 1, 1), (1920, 1080));
        assert_eq!(display_size(1920, 1080, 0, 1), (1920, 1080));
    }

    #[test]
    fn demuxers() {
        assert_eq!(demuxer_for(Format::M4a), Some("mov"));
        assert_eq!(demuxer_for(Format::WebmAudio), Some("matroska"));
        assert_eq!(demuxer_for(Format::Jpeg), None);
    }

    /// The decoder list holds: the contract's decoders open, others that Debian's FFmpeg builds
    /// (and that open without the list, so the test can fail) are refused.
    #[test]
    fn only_the_contract_decoders_can_be_opened() {
        init();
        let opens = |name: &str, restricted: bool| -> bool {
            let codec = ffmpeg::decoder::find_by_name(name).unwrap_or_else(|| panic!("Debian's FFmpeg has {name}"));
            let mut ctx = ffmpeg::codec::context::Context::new_with_codec(codec);
            if restricted {
                allow_contract_decoders(&mut ctx).expect("set the list");
            }
            ctx.decoder().open_as(codec).is_ok()
        };
        // (PCM decoders need a channel count to open, so they are checked by name below.)
        for name in ["h264", "hevc", "vp9", "libdav1d", "aac", "opus", "mp3float", "flac", "amrnb"] {
            assert!(opens(name, true), "{name} must stay open to contract inputs");
        }
        for name in ["mpeg4", "cinepak", "prores", "mjpeg", "png", "tiff", "dvvideo", "gif", "mpeg2video", "mov_text"] {
            assert!(opens(name, false), "{name} opens without the list");
            assert!(!opens(name, true), "{name} must be refused");
        }
        // Every name on the list is a decoder of this FFmpeg (a typo would silently drop one).
        for name in DECODERS.split(',') {
            assert!(ffmpeg::decoder::find_by_name(name).is_some(), "{name} is not a decoder of this FFmpeg");
        }
    }
}
