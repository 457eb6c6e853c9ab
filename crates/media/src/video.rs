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
//!   It re-reads its own output by name, so the MP4 is written to a private temporary file
//!   (created 0600 by `tempfile`, removed on return) and read back; the input never touches disk.
//! - **Bounded**: decoder and encoder threads fixed by `threads`, every frame's size checked
//!   against `max_pixels`, a frame-rate ceiling (250 frames per second on average), and the
//!   wall-clock `budget` checked between packets and frames and by FFmpeg's interrupt callback.
//! - **HDR** (PQ/HLG, BT.2020) is not tone-mapped: the scaler only converts it to 8-bit 4:2:0,
//!   so such clips look flat. Rare in DMs; left for later.

use ffmpeg::ffi;
use ffmpeg::format::context::{Input, Output};
use ffmpeg::{codec, filter, format as ffformat, frame, ChannelLayout, Packet, Rational};
use ffmpeg_next as ffmpeg;

use crate::av::{
    best_video_stream, display_size, init, internal_error, open_input, open_input_with, pass_error, AudioChain,
    Deadline, LogCapture, Orientation, SharedBytes, EAGAIN,
};
use crate::photo::{Encoded, OutputKind};
use crate::settings::{FrameSampling, MediaSettings, VideoSettings};
use crate::sniff::Format;
use crate::MediaError;

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
}

/// Containers [`process_video`] opens.
pub fn is_video_format(format: Format) -> bool {
    matches!(format, Format::Mp4 | Format::Mov | Format::ThreeGp | Format::Webm | Format::Mkv)
}

const SEND_VIDEO: &str = "send MP4 or MOV (H.264 or HEVC) or WebM (VP8, VP9 or AV1)";
const VIDEO_CODECS: [&str; 5] = ["h264", "hevc", "vp8", "vp9", "av1"];

fn audio_codec_allowed(name: &str) -> bool {
    const ALLOWED: [&str; 11] =
        ["aac", "mp3", "opus", "vorbis", "flac", "alac", "ac3", "eac3", "amrnb", "amrwb", "mp2"];
    name.starts_with("pcm_") || ALLOWED.contains(&name)
}

/// Transcodes a video to the `video` and `poster` variants; with `sample`, also returns the
/// frames `settings.sampling` picks, from the same decode. See the module docs for the rules.
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
    let mut input = open_input_with(&shared, format, &deadline, &[], false)?;
    let out = run_pass(&mut input, &plan, s, &deadline, &capture, true, sample.then_some(&settings.sampling))?;
    let mux = out.mux.ok_or_else(|| MediaError::internal("transcode pass produced no MP4"))?;
    let (poster_rgb, frames) = (out.poster, out.frames);
    let poster = encode_poster(&poster_rgb, s.poster_quality)?;
    let blurhash = blurhash_of(&poster_rgb)?;
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
        "video processed"
    );
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

/// What the headers and the scan pass decided.
struct Plan {
    video: usize,
    audio: Option<usize>,
    /// Complete stream parameters (after `find_stream_info`) of the first open: the transcode
    /// pass reopens the input without probing again and builds its decoders from these.
    video_par: codec::Parameters,
    audio_par: Option<codec::Parameters>,
    codec: String,
    orientation: Orientation,
    /// Displayed size of the original (rotation and SAR applied).
    display: (u32, u32),
    /// Encoded size (displayed orientation).
    out: (u32, u32),
    /// Size the scaler produces, before the rotation filters.
    scaled: (u32, u32),
    time_base: Rational,
    frame_rate: Option<Rational>,
    /// Scan-pass duration (packet timestamps), used for the poster position.
    scan_ms: u64,
    /// Scan-pass duration of the video track alone, over which frames are sampled.
    video_ms: u64,
    /// Most pixels a decoded frame may have.
    max_pixels: u64,
}

/// Opens the input, checks codecs and the pixel limit from codec parameters, then scans packet
/// timestamps and enforces the duration limit — all before any frame is decoded.
fn prepare(
    bytes: &SharedBytes,
    format: Format,
    settings: &MediaSettings,
    deadline: &Deadline,
    capture: &LogCapture,
) -> Result<Plan, MediaError> {
    let s = &settings.video;
    let max_pixels = settings.limits.max_pixels;
    if !is_video_format(format) {
        return Err(unsupported(format!("{} files are not videos this pipeline takes; {SEND_VIDEO}", format.name())));
    }
    let mut input = open_input(bytes, format, deadline, &[])?;
    let video = best_video_stream(&input)
        .ok_or_else(|| unsupported(format!("the {} file has no video track; {SEND_VIDEO}", format.name())))?;
    let st = input.stream(video).ok_or_else(|| MediaError::internal("video stream vanished"))?;
    let par = st.parameters();
    let codec_name = par.id().name().to_string();
    if !VIDEO_CODECS.contains(&codec_name.as_str()) {
        return Err(unsupported(format!("{codec_name} video is not supported; {SEND_VIDEO}")));
    }
    if ffmpeg::decoder::find(par.id()).is_none() {
        return Err(unsupported(format!("{codec_name} video cannot be decoded by this build; {SEND_VIDEO}")));
    }
    let (w, h, sar) = unsafe {
        let p = par.as_ptr();
        ((*p).width, (*p).height, (*p).sample_aspect_ratio)
    };
    if w <= 0 || h <= 0 {
        return Err(MediaError::corrupt(format!("the {codec_name} video track declares an empty {w}×{h} picture")));
    }
    let (w, h) = (w as u32, h as u32);
    if w as u64 * h as u64 > max_pixels {
        return Err(MediaError::TooManyPixels { width: w, height: h, limit: max_pixels });
    }
    let orientation = Orientation::of_stream(&st);
    let (dw, dh) = display_size(w, h, sar.num, sar.den);
    let display = if orientation.transposes() { (dh, dw) } else { (dw, dh) };
    let out = fit_even(display.0, display.1, s.long_edge, s.short_edge);
    let scaled = if orientation.transposes() { (out.1, out.0) } else { out };
    let time_base = st.time_base();
    if time_base.numerator() <= 0 || time_base.denominator() <= 0 {
        return Err(MediaError::corrupt("the video track has an invalid time base"));
    }
    let frame_rate = [st.avg_frame_rate(), st.rate()]
        .into_iter()
        .find(|r| r.numerator() > 0 && r.denominator() > 0 && r.numerator() / r.denominator() <= 1000);

    let video_par = par.clone();
    let audio = input.streams().best(ffmpeg::media::Type::Audio).and_then(|a| {
        let name = a.parameters().id().name().to_string();
        let ok = audio_codec_allowed(&name) && ffmpeg::decoder::find(a.parameters().id()).is_some();
        if !ok {
            tracing::info!(codec = %name, "video's audio codec is not supported; the output has no sound");
        }
        ok.then_some(a.index())
    });
    let audio_par = audio.and_then(|a| input.stream(a)).map(|a| a.parameters().clone());

    let (scan_ms, video_ms) = scan(&mut input, video, audio, settings.limits.video_max_ms, deadline, capture)?;
    Ok(Plan {
        video,
        audio,
        video_par,
        audio_par,
        codec: codec_name,
        orientation,
        display,
        out,
        scaled,
        time_base,
        frame_rate,
        scan_ms,
        video_ms,
        max_pixels,
    })
}

/// Fits `w`×`h` inside `long`×`short` in its own orientation; never upscales; even sizes.
pub(crate) fn fit_even(w: u32, h: u32, long: u32, short: u32) -> (u32, u32) {
    let (l, sh) = (w.max(h) as f64, w.min(h) as f64);
    let scale = (long as f64 / l).min(short as f64 / sh).min(1.0);
    // Nearest even size, capped by the axis' bound and by the original (never upscaled).
    let (cap_w, cap_h) = if w >= h { (long.min(w), short.min(h)) } else { (short.min(w), long.min(h)) };
    let even = |x: f64, cap: u32| (((x / 2.0).round() * 2.0) as u32).min(cap & !1).max(2);
    (even(w as f64 * scale, cap_w), even(h as f64 * scale, cap_h))
}

/// Reads every packet of the chosen tracks without decoding: damaged packets, truncation, the
/// frame-rate ceiling, and the duration limit. Returns the duration in ms, of both tracks and of
/// the video track alone.
fn scan(
    input: &mut Input,
    video: usize,
    audio: Option<usize>,
    max_ms: u64,
    deadline: &Deadline,
    capture: &LogCapture,
) -> Result<(u64, u64), MediaError> {
    let tbs: Vec<Rational> = input.streams().map(|st| st.time_base()).collect();
    let mut span = Span::default();
    let mut video_span = Span::default();
    let mut video_packets = 0u64;
    let mut packet = Packet::empty();
    loop {
        deadline.check()?;
        match packet.read(input) {
            Ok(()) => {}
            Err(ffmpeg::Error::Eof) => break,
            Err(e) => return Err(video_error(capture, "the container", deadline, e)),
        }
        let idx = packet.stream();
        if idx != video && Some(idx) != audio {
            continue;
        }
        if packet.is_corrupt() {
            return Err(damaged(capture, "a packet of the file is damaged or cut short"));
        }
        if idx == video {
            video_packets += 1;
        }
        let Some(ts) = packet.pts().or(packet.dts()) else { continue };
        let tb = tbs[idx];
        let (start, end) = (to_ms(ts, tb), to_ms(ts.saturating_add(packet.duration().max(0)), tb));
        span.add(start, end);
        if idx == video {
            video_span.add(start, end);
        }
    }
    if let Some(m) = capture.damage() {
        return Err(MediaError::corrupt(format!("the video file is damaged or truncated ({m})")));
    }
    if video_packets == 0 {
        return Err(MediaError::corrupt("the video track holds no frames"));
    }
    let duration_ms = span.ms();
    if duration_ms > max_ms {
        return Err(MediaError::TooLong { what: "the video".into(), duration_ms, limit_ms: max_ms });
    }
    let ceiling = (duration_ms / 1000 + 1) * 250 + 100;
    if video_packets > ceiling {
        return Err(unsupported(format!(
            "the video has {video_packets} frames in {:.1} s, more than 250 per second; re-encode it at a normal frame rate",
            duration_ms as f64 / 1000.0
        )));
    }
    Ok((duration_ms, video_span.ms()))
}

fn to_ms(ts: i64, tb: Rational) -> f64 {
    ts as f64 * tb.numerator() as f64 * 1000.0 / tb.denominator() as f64
}

/// The earliest start and latest end seen, in ms.
#[derive(Debug, Default, Clone, Copy)]
struct Span {
    start: Option<f64>,
    end: Option<f64>,
}

impl Span {
    fn add(&mut self, start: f64, end: f64) {
        if !start.is_finite() || !end.is_finite() {
            return;
        }
        self.start = Some(self.start.map_or(start, |s| s.min(start)));
        self.end = Some(self.end.map_or(end, |e| e.max(end.max(start))));
    }

    fn ms(&self) -> u64 {
        match (self.start, self.end) {
            (Some(s), Some(e)) if e > s => (e - s).round().min(u64::MAX as f64 / 2.0) as u64,
            _ => 0,
        }
    }
}

fn damaged(capture: &LogCapture, fallback: &str) -> MediaError {
    match capture.damage() {
        Some(m) => MediaError::corrupt(format!("the video file is damaged or truncated ({m})")),
        None => MediaError::corrupt(format!("{fallback}; the file is damaged or truncated")),
    }
}

fn video_error(capture: &LogCapture, what: &str, deadline: &Deadline, e: ffmpeg::Error) -> MediaError {
    match pass_error(what, deadline, e) {
        MediaError::Corrupt { message } => match capture.damage() {
            Some(m) => MediaError::corrupt(format!("{message} ({m})")),
            None => MediaError::corrupt(message),
        },
        other => other,
    }
}

/// What the decode pass produced.
struct PassOutput {
    mux: Option<Vec<u8>>,
    poster: RgbFrame,
    frames: Vec<RgbFrame>,
    duration_ms: u64,
}

/// The decode (and, with `encode`, transcode) pass.
fn run_pass(
    input: &mut Input,
    plan: &Plan,
    s: &VideoSettings,
    deadline: &Deadline,
    capture: &LogCapture,
    encode: bool,
    sampling: Option<&FrameSampling>,
) -> Result<PassOutput, MediaError> {
    let mut ctx = codec::context::Context::from_parameters(plan.video_par.clone())
        .map_err(|e| internal_error("video decoder context", e))?;
    unsafe {
        // Frame and slice threading, as FFmpeg's default (a fixed count keeps output identical).
        (*ctx.as_mut_ptr()).thread_count = s.threads as std::ffi::c_int;
        (*ctx.as_mut_ptr()).thread_type = (ffi::FF_THREAD_FRAME | ffi::FF_THREAD_SLICE) as std::ffi::c_int;
        (*ctx.as_mut_ptr()).pkt_timebase = plan.time_base.into();
    }
    let vdec = ctx.decoder().video().map_err(|e| {
        MediaError::corrupt(format!("the {} video cannot be decoded ({e}); the file is damaged", plan.codec))
    })?;

    let audio = match (encode, plan.audio, &plan.audio_par) {
        (true, Some(idx), Some(par)) => {
            let ast = input.stream(idx).ok_or_else(|| MediaError::internal("audio stream vanished"))?;
            Some(AudioIn::new(idx, ast.time_base(), par.clone())?)
        }
        _ => None,
    };
    let mux = if encode { Some(Mux::new(plan, s, audio.as_ref())?) } else { None };

    let target = (plan.scan_ms as f64 / 10.0).min(1000.0);
    let mut pass = Pass {
        plan,
        deadline,
        capture,
        vdec,
        chain: None,
        mux,
        audio,
        picker: PosterPicker::new(target),
        sampler: sampling.filter(|f| f.max_frames > 0).map(|f| Sampler::new(f.clone(), plan.video_ms)),
        span: Span::default(),
        first_pts: None,
        last_pts: None,
    };

    let mut packet = Packet::empty();
    loop {
        deadline.check()?;
        match packet.read(input) {
            Ok(()) => {}
            Err(ffmpeg::Error::Eof) => break,
            Err(e) => return Err(video_error(capture, "the container", deadline, e)),
        }
        let idx = packet.stream();
        if idx == plan.video {
            if packet.is_corrupt() {
                return Err(damaged(capture, "a packet of the video track is damaged or cut short"));
            }
            pass.vdec.send_packet(&packet).map_err(|e| video_error(capture, "the video track", deadline, e))?;
            pass.drain_video()?;
        } else if pass.audio.as_ref().is_some_and(|a| a.index == idx) {
            if packet.is_corrupt() {
                return Err(damaged(capture, "a packet of the audio track is damaged or cut short"));
            }
            pass.audio_packet(Some(&packet))?;
        }
    }
    pass.vdec.send_eof().map_err(|e| video_error(capture, "the video track", deadline, e))?;
    pass.drain_video()?;
    if let Some(mut chain) = pass.chain.take() {
        chain.flush()?;
        pass.drain_chain(&mut chain)?;
    }
    if pass.audio.is_some() {
        pass.audio_packet(None)?;
    }
    if let Some(m) = capture.damage() {
        return Err(MediaError::corrupt(format!("the video file is damaged or truncated ({m})")));
    }
    let duration_ms = pass.span.ms();
    let poster_frame =
        pass.picker.finish().ok_or_else(|| MediaError::corrupt("the video track holds no decodable frame"))?;
    let poster = to_rgb(&poster_frame.1, plan.out.0, plan.out.1, poster_frame.0, true)?;
    let mut frames = Vec::new();
    if let Some(sampler) = pass.sampler.take() {
        let (sw, sh) = crate::photo::fit(plan.out.0, plan.out.1, sampler.cfg.max_edge);
        let poster_small = to_rgb(&poster_frame.1, sw, sh, poster_frame.0, true)?;
        frames.push(poster_small);
        frames.extend(sampler.frames.into_iter().filter(|f| f.timestamp_ms != poster.timestamp_ms));
        frames.truncate(sampler.cfg.max_frames);
    }
    let mux = match pass.mux.take() {
        Some(m) => Some(m.finish(pass.audio.as_mut(), deadline)?),
        None => None,
    };
    Ok(PassOutput { mux, poster, frames, duration_ms })
}

struct Pass<'a> {
    plan: &'a Plan,
    deadline: &'a Deadline,
    capture: &'a LogCapture,
    vdec: codec::decoder::Video,
    chain: Option<VideoChain>,
    mux: Option<Mux>,
    audio: Option<AudioIn>,
    picker: PosterPicker,
    sampler: Option<Sampler>,
    /// Decoded timestamps, video and audio, in ms.
    span: Span,
    /// First filtered video timestamp (time base of the stream), origin of poster/sample times.
    first_pts: Option<i64>,
    /// Last timestamp sent to the encoder.
    last_pts: Option<i64>,
}

impl Pass<'_> {
    fn drain_video(&mut self) -> Result<(), MediaError> {
        let mut f = frame::Video::empty();
        loop {
            match self.vdec.receive_frame(&mut f) {
                Ok(()) => {}
                Err(ffmpeg::Error::Other { errno }) if errno == EAGAIN => return Ok(()),
                Err(ffmpeg::Error::Eof) => return Ok(()),
                Err(e) => return Err(video_error(self.capture, "the video track", self.deadline, e)),
            }
            self.deadline.check()?;
            let (w, h) = (f.width(), f.height());
            if w == 0 || h == 0 {
                return Err(MediaError::corrupt("the video track has an empty frame"));
            }
            if w as u64 * h as u64 > self.plan.max_pixels {
                return Err(MediaError::TooManyPixels { width: w, height: h, limit: self.plan.max_pixels });
            }
            if f.is_corrupt() || f.has_decode_errors() {
                return Err(damaged(self.capture, "a frame of the video track does not decode cleanly"));
            }
            let ts = f.timestamp().or(f.pts());
            if let Some(ts) = ts {
                let tb = self.plan.time_base;
                let dur = f.packet().duration.max(0);
                self.span.add(to_ms(ts, tb), to_ms(ts.saturating_add(dur), tb));
            }
            f.set_pts(ts);
            let stale = self.chain.as_ref().is_some_and(|c| !c.accepts(&f));
            if stale {
                if let Some(mut old) = self.chain.take() {
                    old.flush()?;
                    self.drain_chain(&mut old)?;
                }
            }
            if self.chain.is_none() {
                self.chain = Some(VideoChain::new(&f, self.plan)?);
            }
            let mut chain = self.chain.take().expect("built above");
            let r = chain.push(&mut f).and_then(|_| self.drain_chain(&mut chain));
            self.chain = Some(chain);
            r?;
        }
    }

    fn drain_chain(&mut self, chain: &mut VideoChain) -> Result<(), MediaError> {
        let mut g = frame::Video::empty();
        while chain.pull(&mut g)? {
            self.filtered(&mut g)?;
        }
        Ok(())
    }

    /// One upright, scaled frame: poster and sample candidates, then the encoder.
    fn filtered(&mut self, g: &mut frame::Video) -> Result<(), MediaError> {
        let tb = self.plan.time_base;
        let mut pts = g.pts().unwrap_or_else(|| self.last_pts.map_or(0, |l| l + 1));
        if let Some(l) = self.last_pts {
            if pts <= l {
                pts = l + 1;
            }
        }
        self.last_pts = Some(pts);
        g.set_pts(Some(pts));
        let first = *self.first_pts.get_or_insert(pts);
        let t_ms = to_ms(pts - first, tb).max(0.0);
        self.picker.offer(g, t_ms);
        if let Some(sampler) = self.sampler.as_mut() {
            sampler.offer(g, t_ms, self.plan.out)?;
        }
        if let Some(mux) = self.mux.as_mut() {
            g.set_kind(ffmpeg::picture::Type::None);
            mux.video_frame(Some(g))?;
        }
        Ok(())
    }

    /// Feeds an audio packet (`None`: end of stream) through decoder → resampler → AAC.
    fn audio_packet(&mut self, packet: Option<&Packet>) -> Result<(), MediaError> {
        let (Some(audio), Some(mux)) = (self.audio.as_mut(), self.mux.as_mut()) else { return Ok(()) };
        let capture = self.capture;
        let deadline = self.deadline;
        let aerr = |e| video_error(capture, "the audio track", deadline, e);
        match packet {
            Some(p) => audio.dec.send_packet(p).map_err(aerr)?,
            None => audio.dec.send_eof().map_err(aerr)?,
        }
        let mut f = frame::Audio::empty();
        loop {
            match audio.dec.receive_frame(&mut f) {
                Ok(()) => {}
                Err(ffmpeg::Error::Other { errno }) if errno == EAGAIN => break,
                Err(ffmpeg::Error::Eof) => break,
                Err(e) => return Err(aerr(e)),
            }
            let rate = f.rate();
            if rate == 0 || f.channels() == 0 {
                return Err(MediaError::corrupt("the audio track has frames without a sample rate or channels"));
            }
            if let Some(ts) = f.timestamp().or(f.pts()) {
                let start = to_ms(ts, audio.time_base);
                self.span.add(start, start + f.samples() as f64 * 1000.0 / rate as f64);
            }
            audio.push(&mut f, mux)?;
        }
        if packet.is_none() {
            audio.finish(mux)?;
        }
        Ok(())
    }
}

/// `buffer → scale(+range) → format=yuv420p → rotation → setsar=1 → buffersink`.
struct VideoChain {
    graph: filter::Graph,
    w: u32,
    h: u32,
    format: ffformat::Pixel,
}

impl VideoChain {
    fn new(f: &frame::Video, plan: &Plan) -> Result<Self, MediaError> {
        let fail = |e: ffmpeg::Error| internal_error("video filter graph", e);
        let mut graph = filter::Graph::new();
        unsafe {
            (*graph.as_mut_ptr()).nb_threads = 1;
        }
        let sar = f.aspect_ratio();
        let (sn, sd) =
            if sar.numerator() > 0 && sar.denominator() > 0 { (sar.numerator(), sar.denominator()) } else { (1, 1) };
        let pix: ffi::AVPixelFormat = f.format().into();
        let tb = plan.time_base;
        let args = format!(
            "video_size={}x{}:pix_fmt={}:time_base={}/{}:pixel_aspect={sn}/{sd}",
            f.width(),
            f.height(),
            pix as i32,
            tb.numerator(),
            tb.denominator()
        );
        let rot =
            if plan.orientation.filters.is_empty() { String::new() } else { format!(",{}", plan.orientation.filters) };
        let spec = format!(
            "scale=w={}:h={}:flags=bicubic:out_range=tv,format=yuv420p{rot},setsar=1",
            plan.scaled.0, plan.scaled.1
        );
        let buffer = filter::find("buffer").ok_or_else(|| MediaError::internal("no buffer filter"))?;
        let buffersink = filter::find("buffersink").ok_or_else(|| MediaError::internal("no buffersink filter"))?;
        graph.add(&buffer, "in", &args).map_err(fail)?;
        graph.add(&buffersink, "out", "").map_err(fail)?;
        graph.output("in", 0).and_then(|p| p.input("out", 0)).and_then(|p| p.parse(&spec)).map_err(fail)?;
        graph.validate().map_err(fail)?;
        Ok(VideoChain { graph, w: f.width(), h: f.height(), format: f.format() })
    }

    fn accepts(&self, f: &frame::Video) -> bool {
        f.width() == self.w && f.height() == self.h && f.format() == self.format
    }

    fn push(&mut self, f: &mut frame::Video) -> Result<(), MediaError> {
        let mut src = self.graph.get("in").ok_or_else(|| MediaError::internal("video graph lost its source"))?;
        src.source().add(f).map_err(|e| internal_error("feeding the video filter graph", e))
    }

    fn flush(&mut self) -> Result<(), MediaError> {
        let mut src = self.graph.get("in").ok_or_else(|| MediaError::internal("video graph lost its source"))?;
        src.source().flush().map_err(|e| internal_error("flushing the video filter graph", e))
    }

    fn pull(&mut self, out: &mut frame::Video) -> Result<bool, MediaError> {
        let mut sink = self.graph.get("out").ok_or_else(|| MediaError::internal("video graph lost its sink"))?;
        match sink.sink().frame(out) {
            Ok(()) => Ok(true),
            Err(ffmpeg::Error::Eof) => Ok(false),
            Err(ffmpeg::Error::Other { errno }) if errno == EAGAIN => Ok(false),
            Err(e) => Err(internal_error("reading the video filter graph", e)),
        }
    }
}

/// The input's audio track, decoded and resampled for AAC.
struct AudioIn {
    index: usize,
    time_base: Rational,
    dec: codec::decoder::Audio,
    chain: Option<AudioChain>,
    /// Output rate and layout (AAC encoder's).
    rate: u32,
    layout: ChannelLayout,
    /// Counted timeline origin, in 1/input-rate units.
    started: bool,
}

impl AudioIn {
    fn new(index: usize, time_base: Rational, par: codec::Parameters) -> Result<Self, MediaError> {
        let mut ctx =
            codec::context::Context::from_parameters(par).map_err(|e| internal_error("audio decoder context", e))?;
        ctx.set_threading(codec::threading::Config {
            kind: codec::threading::Type::None,
            count: 1,
            ..Default::default()
        });
        unsafe {
            (*ctx.as_mut_ptr()).pkt_timebase = time_base.into();
        }
        let dec = ctx.decoder().audio().map_err(|e| {
            MediaError::corrupt(format!("the audio track cannot be decoded ({e}); the file is damaged"))
        })?;
        let in_rate = dec.rate();
        const AAC_RATES: [u32; 9] = [8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000];
        let rate = if AAC_RATES.contains(&in_rate) { in_rate } else { 48_000 };
        let layout = if dec.channels() == 1 { ChannelLayout::MONO } else { ChannelLayout::STEREO };
        Ok(AudioIn { index, time_base, dec, chain: None, rate, layout, started: false })
    }

    fn spec(&self) -> String {
        let layout = if self.layout == ChannelLayout::MONO { "mono" } else { "stereo" };
        format!("aresample={r},aformat=sample_fmts=fltp:sample_rates={r}:channel_layouts={layout}", r = self.rate)
    }

    fn push(&mut self, f: &mut frame::Audio, mux: &mut Mux) -> Result<(), MediaError> {
        if self.chain.as_ref().is_some_and(|c| !c.accepts(f)) {
            // Shape changed mid-stream: finish the old chain; the AAC FIFO keeps the timeline.
            let mut old = self.chain.take().expect("checked");
            old.flush()?;
            mux.audio_from(&mut old)?;
        }
        if self.chain.is_none() {
            let mut c = AudioChain::new(f, &self.spec(), None)?;
            if !self.started {
                // The timeline starts at the first frame's own timestamp (A/V sync) and then
                // counts samples.
                let start = f.timestamp().or(f.pts()).unwrap_or(0);
                let start =
                    ffmpeg::rescale::Rescale::rescale(&start, self.time_base, Rational::new(1, f.rate() as i32));
                c.start_at(start.max(0));
                self.started = true;
            }
            self.chain = Some(c);
        }
        let c = self.chain.as_mut().expect("built above");
        c.push_counted(f)?;
        mux.audio_from(c)
    }

    fn finish(&mut self, mux: &mut Mux) -> Result<(), MediaError> {
        if let Some(mut c) = self.chain.take() {
            c.flush()?;
            mux.audio_from(&mut c)?;
        }
        Ok(())
    }
}

/// The AAC encoder and the FIFO that cuts its 1024-sample frames (planar f32).
struct AacOut {
    enc: codec::encoder::Audio,
    /// Encoder time base (1/rate) and the MP4 stream's.
    tb: Rational,
    st_tb: Rational,
    layout: ChannelLayout,
    rate: u32,
    fifo: Vec<Vec<f32>>,
    /// Timestamp of the FIFO's first sample, in `tb`.
    next_pts: Option<i64>,
}

/// libx264 (+ AAC) into a fast-start MP4 written to a private temporary file.
struct Mux {
    octx: Output,
    file: tempfile::NamedTempFile,
    venc: codec::encoder::Video,
    venc_tb: Rational,
    vst_tb: Rational,
    aac: Option<AacOut>,
}

impl Mux {
    fn new(plan: &Plan, s: &VideoSettings, audio: Option<&AudioIn>) -> Result<Self, MediaError> {
        let fail = |what: &'static str| move |e: ffmpeg::Error| internal_error(what, e);
        let file = tempfile::Builder::new()
            .prefix("mediagate-video-")
            .suffix(".mp4")
            .tempfile()
            .map_err(|e| MediaError::internal(format!("creating a temporary file for the MP4: {e}")))?;
        let mut octx = ffformat::output_as(file.path(), "mp4").map_err(fail("MP4 muxer"))?;
        unsafe {
            (*octx.as_mut_ptr()).flags |= ffi::AVFMT_FLAG_BITEXACT as std::ffi::c_int;
        }

        let x264 = ffmpeg::encoder::find_by_name("libx264")
            .ok_or_else(|| MediaError::internal("this FFmpeg build has no libx264 encoder"))?;
        let mut ctx = codec::context::Context::new_with_codec(x264);
        ctx.set_threading(codec::threading::Config {
            kind: codec::threading::Type::Frame,
            count: s.threads,
            ..Default::default()
        });
        let mut enc = ctx.encoder().video().map_err(fail("H.264 encoder"))?;
        enc.set_width(plan.out.0);
        enc.set_height(plan.out.1);
        enc.set_format(ffformat::Pixel::YUV420P);
        enc.set_time_base(plan.time_base);
        enc.set_frame_rate(plan.frame_rate);
        enc.set_aspect_ratio(Rational::new(1, 1));
        enc.set_color_range(ffmpeg::color::Range::MPEG);
        enc.set_flags(codec::flag::Flags::GLOBAL_HEADER | codec::flag::Flags::BITEXACT);
        let mut opts = ffmpeg::Dictionary::new();
        opts.set("preset", s.preset.as_str());
        opts.set("crf", &s.crf.to_string());
        let venc = enc
            .open_as_with(x264, opts)
            .map_err(|e| MediaError::internal(format!("opening libx264 (preset {}, crf {}): {e}", s.preset, s.crf)))?;
        {
            let mut ost = octx.add_stream(x264).map_err(fail("MP4 video stream"))?;
            ost.set_parameters(&venc);
            ost.set_time_base(plan.time_base);
        }

        let aenc = match audio {
            Some(a) => {
                let aac = ffmpeg::encoder::find_by_name("aac")
                    .ok_or_else(|| MediaError::internal("this FFmpeg build has no AAC encoder"))?;
                let mut ctx = codec::context::Context::new_with_codec(aac);
                ctx.set_threading(codec::threading::Config {
                    kind: codec::threading::Type::None,
                    count: 1,
                    ..Default::default()
                });
                let mut enc = ctx.encoder().audio().map_err(fail("AAC encoder"))?;
                let mono = a.layout == ChannelLayout::MONO;
                enc.set_rate(a.rate as i32);
                enc.set_format(ffformat::Sample::F32(ffformat::sample::Type::Planar));
                enc.set_channel_layout(a.layout);
                enc.set_channels(if mono { 1 } else { 2 });
                enc.set_bit_rate(if mono { s.audio_bitrate as usize / 2 } else { s.audio_bitrate as usize });
                enc.set_time_base((1, a.rate as i32));
                enc.set_flags(codec::flag::Flags::GLOBAL_HEADER | codec::flag::Flags::BITEXACT);
                let enc = enc.open_as(aac).map_err(fail("opening the AAC encoder"))?;
                {
                    let mut ost = octx.add_stream(aac).map_err(fail("MP4 audio stream"))?;
                    ost.set_parameters(&enc);
                    ost.set_time_base((1, a.rate as i32));
                }
                Some((enc, Rational::new(1, a.rate as i32), a.layout, a.rate))
            }
            None => None,
        };

        let mut opts = ffmpeg::Dictionary::new();
        opts.set("movflags", "+faststart");
        octx.write_header_with(opts).map_err(fail("MP4 header"))?;
        let vst_tb = octx.stream(0).ok_or_else(|| MediaError::internal("MP4 stream vanished"))?.time_base();
        let aac = match aenc {
            Some((enc, tb, layout, rate)) => {
                let st_tb = octx.stream(1).ok_or_else(|| MediaError::internal("MP4 stream vanished"))?.time_base();
                let channels = layout.channels().max(1) as usize;
                Some(AacOut { enc, tb, st_tb, layout, rate, fifo: vec![Vec::new(); channels], next_pts: None })
            }
            None => None,
        };
        Ok(Mux { octx, file, venc, venc_tb: plan.time_base, vst_tb, aac })
    }

    /// Encodes a frame (`None`: end of stream) and writes what the encoder has ready.
    fn video_frame(&mut self, f: Option<&frame::Video>) -> Result<(), MediaError> {
        let fail = |e| internal_error("H.264 encoder", e);
        match f {
            Some(f) => self.venc.send_frame(f).map_err(fail)?,
            None => self.venc.send_eof().map_err(fail)?,
        }
        let mut p = Packet::empty();
        loop {
            match self.venc.receive_packet(&mut p) {
                Ok(()) => {
                    p.set_stream(0);
                    p.rescale_ts(self.venc_tb, self.vst_tb);
                    p.write_interleaved(&mut self.octx).map_err(|e| internal_error("writing the MP4", e))?;
                }
                Err(ffmpeg::Error::Other { errno }) if errno == EAGAIN => return Ok(()),
                Err(ffmpeg::Error::Eof) => return Ok(()),
                Err(e) => return Err(fail(e)),
            }
        }
    }

    /// Pulls ready frames out of a chain into the FIFO and encodes every whole AAC frame.
    fn audio_from(&mut self, chain: &mut AudioChain) -> Result<(), MediaError> {
        let chain_tb = chain.out_time_base();
        let mut f = frame::Audio::empty();
        while chain.pull(&mut f)? {
            let Some(aac) = self.aac.as_mut() else { return Ok(()) };
            if aac.next_pts.is_none() {
                aac.next_pts = Some(f.pts().map_or(0, |p| ffmpeg::rescale::Rescale::rescale(&p, chain_tb, aac.tb)));
            }
            let n = f.samples();
            for (ch, buf) in aac.fifo.iter_mut().enumerate() {
                let bytes = f.data(ch).get(..n * 4).ok_or_else(|| MediaError::internal("short audio frame"))?;
                buf.extend(bytes.chunks_exact(4).map(|b| f32::from_ne_bytes([b[0], b[1], b[2], b[3]])));
            }
            self.encode_fifo(false)?;
        }
        Ok(())
    }

    /// Encodes the FIFO in 1024-sample frames; with `last`, the remainder too.
    fn encode_fifo(&mut self, last: bool) -> Result<(), MediaError> {
        const AAC_FRAME: usize = 1024;
        loop {
            let Some(aac) = self.aac.as_mut() else { return Ok(()) };
            let have = aac.fifo[0].len();
            let n = if have >= AAC_FRAME {
                AAC_FRAME
            } else if last && have > 0 {
                have
            } else {
                return Ok(());
            };
            let mut f = frame::Audio::new(ffformat::Sample::F32(ffformat::sample::Type::Planar), n, aac.layout);
            f.set_rate(aac.rate);
            for (ch, buf) in aac.fifo.iter_mut().enumerate() {
                for (d, s) in f.data_mut(ch).chunks_exact_mut(4).zip(buf.drain(..n)) {
                    d.copy_from_slice(&s.to_ne_bytes());
                }
            }
            let pts = aac.next_pts.unwrap_or(0);
            f.set_pts(Some(pts));
            aac.next_pts = Some(pts + n as i64);
            aac.enc.send_frame(&f).map_err(|e| internal_error("AAC encoder", e))?;
            self.audio_packets()?;
        }
    }

    fn audio_packets(&mut self) -> Result<(), MediaError> {
        let Some(aac) = self.aac.as_mut() else { return Ok(()) };
        let mut p = Packet::empty();
        loop {
            match aac.enc.receive_packet(&mut p) {
                Ok(()) => {
                    p.set_stream(1);
                    p.rescale_ts(aac.tb, aac.st_tb);
                    p.write_interleaved(&mut self.octx).map_err(|e| internal_error("writing the MP4", e))?;
                }
                Err(ffmpeg::Error::Other { errno }) if errno == EAGAIN => return Ok(()),
                Err(ffmpeg::Error::Eof) => return Ok(()),
                Err(e) => return Err(internal_error("AAC encoder", e)),
            }
        }
    }

    /// Flushes the encoders, writes the trailer (fast-start rewrite) and reads the file back.
    fn finish(mut self, audio: Option<&mut AudioIn>, deadline: &Deadline) -> Result<Vec<u8>, MediaError> {
        if let Some(a) = audio {
            a.finish(&mut self)?;
        }
        deadline.check()?;
        self.video_frame(None)?;
        self.encode_fifo(true)?;
        if let Some(aac) = self.aac.as_mut() {
            aac.enc.send_eof().map_err(|e| internal_error("AAC encoder", e))?;
            self.audio_packets()?;
        }
        deadline.check()?;
        self.octx.write_trailer().map_err(|e| internal_error("MP4 trailer", e))?;
        let Mux { octx, file, .. } = self;
        drop(octx);
        std::fs::read(file.path()).map_err(|e| MediaError::internal(format!("reading the MP4 back: {e}")))
    }
}

/// Picks the poster: see the module docs.
struct PosterPicker {
    next_ms: f64,
    seen: usize,
    chosen: Option<(f64, frame::Video)>,
    best: Option<(f64, f64, frame::Video)>,
}

impl PosterPicker {
    const CANDIDATES: usize = 5;

    fn new(target_ms: f64) -> Self {
        PosterPicker { next_ms: target_ms.max(0.0), seen: 0, chosen: None, best: None }
    }

    fn offer(&mut self, f: &frame::Video, t_ms: f64) {
        if self.chosen.is_some() {
            return;
        }
        let candidate = t_ms >= self.next_ms;
        if !candidate && self.best.is_some() {
            return;
        }
        let (mean, sd) = luma_stats(f);
        if candidate {
            self.seen += 1;
            self.next_ms = t_ms + 1000.0;
            if mean >= 40.0 && sd >= 10.0 {
                self.chosen = Some((t_ms, f.clone()));
                return;
            }
        }
        let score = sd + (mean - 16.0).max(0.0) / 4.0;
        if self.best.as_ref().is_none_or(|(s, _, _)| score > *s) {
            self.best = Some((score, t_ms, f.clone()));
        }
        if self.seen >= Self::CANDIDATES {
            self.chosen = self.best.take().map(|(_, t, f)| (t, f));
        }
    }

    fn finish(self) -> Option<(f64, frame::Video)> {
        self.chosen.or(self.best.map(|(_, t, f)| (t, f)))
    }
}

/// Mean and standard deviation of the luma plane (every 4th pixel of every 4th row).
fn luma_stats(f: &frame::Video) -> (f64, f64) {
    let (w, h) = (f.width() as usize, f.height() as usize);
    let stride = f.stride(0);
    let y = f.data(0);
    let (mut n, mut sum, mut sq) = (0f64, 0f64, 0f64);
    for row in (0..h).step_by(4) {
        let Some(line) = y.get(row * stride..row * stride + w) else { break };
        for &v in line.iter().step_by(4) {
            let v = v as f64;
            n += 1.0;
            sum += v;
            sq += v * v;
        }
    }
    if n == 0.0 {
        return (0.0, 0.0);
    }
    let mean = sum / n;
    (mean, (sq / n - mean * mean).max(0.0).sqrt())
}

/// Keeps the first frame at or after each of the sampling times (contract §3: spread over the
/// whole clip), converted at once (frames are not kept as YUV).
struct Sampler {
    cfg: FrameSampling,
    times: Vec<f64>,
    next: usize,
    frames: Vec<RgbFrame>,
}

impl Sampler {
    fn new(cfg: FrameSampling, video_ms: u64) -> Self {
        let times = cfg.times(video_ms);
        Sampler { cfg, times, next: 0, frames: Vec::new() }
    }

    fn offer(&mut self, f: &frame::Video, t_ms: f64, out: (u32, u32)) -> Result<(), MediaError> {
        if self.times.get(self.next).is_none_or(|&due| t_ms < due) {
            return Ok(());
        }
        // One frame stands for every time it reached (a clip with fewer frames than times).
        while self.times.get(self.next).is_some_and(|&due| due <= t_ms) {
            self.next += 1;
        }
        let (w, h) = crate::photo::fit(out.0, out.1, self.cfg.max_edge);
        self.frames.push(to_rgb(f, w, h, t_ms, false)?);
        Ok(())
    }
}

/// YUV frame → packed RGB8 at `w`×`h`, with the frame's own matrix and range.
fn to_rgb(f: &frame::Video, w: u32, h: u32, t_ms: f64, poster: bool) -> Result<RgbFrame, MediaError> {
    use ffmpeg::software::scaling::{Context, Flags};
    let fail = |e| internal_error("converting a frame to RGB", e);
    let mut sws = Context::get(
        f.format(),
        f.width(),
        f.height(),
        ffformat::Pixel::RGB24,
        w,
        h,
        Flags::BICUBIC | Flags::ACCURATE_RND | Flags::FULL_CHR_H_INT,
    )
    .map_err(fail)?;
    unsafe {
        let cs = match f.color_space() {
            ffmpeg::color::Space::BT709 => ffi::SWS_CS_ITU709,
            ffmpeg::color::Space::BT2020NCL | ffmpeg::color::Space::BT2020CL => ffi::SWS_CS_BT2020,
            ffmpeg::color::Space::SMPTE240M => ffi::SWS_CS_SMPTE240M,
            ffmpeg::color::Space::FCC => ffi::SWS_CS_FCC,
            _ => ffi::SWS_CS_DEFAULT,
        } as std::ffi::c_int;
        let src_full = i32::from(f.color_range() == ffmpeg::color::Range::JPEG);
        ffi::sws_setColorspaceDetails(
            sws.as_mut_ptr(),
            ffi::sws_getCoefficients(cs),
            src_full,
            ffi::sws_getCoefficients(ffi::SWS_CS_DEFAULT as std::ffi::c_int),
            1,
            0,
            1 << 16,
            1 << 16,
        );
    }
    let mut out = frame::Video::new(ffformat::Pixel::RGB24, w, h);
    sws.run(f, &mut out).map_err(fail)?;
    let stride = out.stride(0);
    let src = out.data(0);
    let row = w as usize * 3;
    let mut data = Vec::with_capacity(row * h as usize);
    for y in 0..h as usize {
        data.extend_from_slice(
            src.get(y * stride..y * stride + row).ok_or_else(|| MediaError::internal("short RGB frame"))?,
        );
    }
    Ok(RgbFrame { timestamp_ms: t_ms.round().max(0.0) as u64, width: w, height: h, data, poster })
}

fn encode_poster(rgb: &RgbFrame, quality: u8) -> Result<Encoded, MediaError> {
    let tj = |e: turbojpeg::Error| MediaError::internal(format!("poster JPEG: {e}"));
    let mut c = turbojpeg::Compressor::new().map_err(tj)?;
    c.set_quality(quality as i32).map_err(tj)?;
    c.set_subsamp(turbojpeg::Subsamp::Sub2x2).map_err(tj)?;
    let image = turbojpeg::Image {
        pixels: &rgb.data[..],
        width: rgb.width as usize,
        pitch: rgb.width as usize * 3,
        height: rgb.height as usize,
        format: turbojpeg::PixelFormat::RGB,
    };
    let bytes = c.compress_to_vec(image).map_err(tj)?;
    Ok(Encoded { bytes, kind: OutputKind::Jpeg, width: rgb.width, height: rgb.height })
}

/// 4×3-component BlurHash (as for photos) of a ≤ 32 px box-filtered rendition of the poster.
fn blurhash_of(rgb: &RgbFrame) -> Result<String, MediaError> {
    let (w, h) = (rgb.width as usize, rgb.height as usize);
    let (bw, bh) = crate::photo::fit(rgb.width, rgb.height, 32);
    let (bw, bh) = (bw as usize, bh as usize);
    let mut tiny = Vec::with_capacity(bw * bh * 4);
    for by in 0..bh {
        let (y0, y1) = (by * h / bh, ((by + 1) * h / bh).max(by * h / bh + 1));
        for bx in 0..bw {
            let (x0, x1) = (bx * w / bw, ((bx + 1) * w / bw).max(bx * w / bw + 1));
            let mut acc = [0u64; 3];
            for y in y0..y1 {
                let line = &rgb.data[(y * w + x0) * 3..(y * w + x1) * 3];
                for p in line.chunks_exact(3) {
                    acc[0] += p[0] as u64;
                    acc[1] += p[1] as u64;
                    acc[2] += p[2] as u64;
                }
            }
            let n = ((y1 - y0) * (x1 - x0)) as u64;
            tiny.extend_from_slice(&[(acc[0] / n) as u8, (acc[1] / n) as u8, (acc[2] / n) as u8, 255]);
        }
    }
    blurhash::encode(4, 3, bw as u32, bh as u32, &tiny).map_err(|e| MediaError::internal(format!("blurhash: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fit_even_bounds_and_orientation() {
        assert_eq!(fit_even(1920, 1080, 1280, 720), (1280, 720));
        assert_eq!(fit_even(1080, 1920, 1280, 720), (720, 1280));
        assert_eq!(fit_even(640, 480, 1280, 720), (640, 480));
        assert_eq!(fit_even(641, 481, 1280, 720), (640, 480)); // never upscaled, even
        assert_eq!(fit_even(3840, 1600, 1280, 720), (1280, 534));
        assert_eq!(fit_even(1280, 721, 1280, 720), (1278, 720));
        assert_eq!(fit_even(1440, 1080, 1280, 720), (960, 720));
        assert_eq!(fit_even(1, 1, 1280, 720), (2, 2));
    }

    #[test]
    fn span_measures_extent() {
        let mut s = Span::default();
        assert_eq!(s.ms(), 0);
        s.add(100.0, 140.0);
        s.add(0.0, 40.0);
        s.add(f64::NAN, 1.0);
        assert_eq!(s.ms(), 140);
    }
}
