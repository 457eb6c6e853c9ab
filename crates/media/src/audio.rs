//! Voice notes: any common audio file in, Ogg Opus (mono, 48 kHz) + true duration + waveform out
//! (contract §3 "voice note ≤ 60 s of audio, measured by decoding", §4 `voice`, §5 `waveform`).
//!
//! One decode pass feeds everything: packets are decoded (FFmpeg), resampled and downmixed to
//! 48 kHz mono float (libswresample through an `aresample,aformat` filter graph), and the samples
//! are kept. Their count is the duration, their peaks the waveform, and they are what libopus
//! encodes, on a thread of its own fed as the decode goes (the same 20 ms frames in the same
//! order as an encode after the decode, so the same bytes); a clip the decode refuses (too long,
//! damaged) stops the encoder and its output is dropped. So the reported duration is the
//! output's length by construction, whatever the headers claim.
//!
//! Decisions worth knowing:
//! - **FFmpeg decodes every format, symphonia is not used.** FFmpeg is needed anyway (Opus has
//!   no symphonia decoder, and the encoder is libopus), it is what the bit-exact and timing
//!   figures were measured with, and symphonia would add a second decoder family for the same
//!   formats with gaps of its own (no HE-AAC/SBR, which phones record, so it would report a
//!   different sample count than what is encoded). One decoder means one set of limits and one
//!   notion of "decodes cleanly".
//! - **Never from headers**: the length is the number of decoded samples. A WAV whose `data`
//!   chunk declares less than the file holds has the size corrected in our copy of the bytes,
//!   so hidden audio is decoded, counted (and encoded); a WAV that declares more than it holds is truncated → `Corrupt`.
//! - **Bounded**: decoding stops as soon as the decoded length passes the limit plus the
//!   allowance, so a 2-hour file costs about as much as a 1-minute one; the kept samples are at
//!   most `(max_ms + allowance_ms) × 48` floats. The wall-clock budget is checked between
//!   packets and by FFmpeg's interrupt callback.
//! - **Strict about damage**: a decoder error, a packet the demuxer flags as corrupt, an Ogg page
//!   cut short, or a demuxer warning that the data ends early (truncated Matroska, MP4 sample
//!   data missing, MP3 shorter than its Xing header) is `Corrupt`.
//! - **Deterministic**: bit-exact flags on the Ogg muxer (fixed stream serial, no version
//!   strings) and the encoder, one encoder thread.

use std::io::{Cursor, Seek, SeekFrom, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use ffmpeg::{codec, format as ffformat, frame, ChannelLayout, Packet};
use ffmpeg_next as ffmpeg;

use crate::av::{
    allow_contract_decoders, best_video_stream, init, internal_error, open_input, pass_error, received, write_ready,
    AudioChain, Deadline, LogCapture, SharedBytes,
};
use crate::settings::{MediaSettings, VOICE_PADDING_MS};
use crate::sniff::{ogg_codec, Format, OggCodec};
use crate::MediaError;

/// Output sample rate (Opus' native rate).
const RATE: u32 = 48_000;
/// libopus frame: 20 ms at 48 kHz.
const OPUS_FRAME: usize = 960;
/// Number of waveform buckets in the verdict.
pub const WAVEFORM_BUCKETS: usize = 100;
/// Largest waveform value (5 bits).
pub const WAVEFORM_MAX: u8 = 31;

/// What the worker stores and reports for a cleared voice note.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct VoiceOutput {
    /// Decoded length in ms — also the length of `ogg`.
    pub duration_ms: u64,
    /// [`WAVEFORM_BUCKETS`] values 0..=[`WAVEFORM_MAX`]: each bucket's peak over the clip's peak.
    pub waveform: Vec<u8>,
    /// Opus in Ogg, mono, 48 kHz (the `voice` variant, `audio/ogg`).
    #[serde(with = "serde_bytes")]
    pub ogg: Vec<u8>,
}

/// Whether `format` may hold a voice note. Containers that usually carry video (MP4, MOV, WebM,
/// Matroska, 3GP) are accepted too: the file is then refused if it has a real video track.
pub fn is_voice_format(format: Format) -> bool {
    use Format::*;
    matches!(format, Ogg | WebmAudio | Mka | Mp3 | M4a | Wav | Flac | Aac | Amr | Mp4 | Mov | ThreeGp | Webm | Mkv)
}

/// Audio codecs accepted for voice notes (FFmpeg codec names; `pcm_*` covers WAV's variants).
fn voice_codec_allowed(name: &str) -> bool {
    const ALLOWED: [&str; 16] = [
        "opus",
        "vorbis",
        "mp3",
        "mp3float",
        "mp2",
        "aac",
        "aac_latm",
        "flac",
        "alac",
        "amr_nb",
        "amr_wb",
        "adpcm_ima_wav",
        "adpcm_ms",
        "gsm_ms",
        "speex",
        "libspeex",
    ];
    name.starts_with("pcm_") || ALLOWED.contains(&name)
}

/// Decodes a voice note once, measures it, draws its waveform and encodes it to Ogg Opus.
/// See the module docs for the rules.
pub fn process_voice(bytes: &[u8], format: Format, settings: &MediaSettings) -> Result<VoiceOutput, MediaError> {
    settings.ensure_valid()?;
    let s = &settings.voice;
    init();
    let t0 = std::time::Instant::now();
    let deadline = Deadline::new(s.budget, "transcoding the voice note");
    let capture = LogCapture::start();
    // The Opus encode runs on a thread of its own, fed as the decoder goes: the encoder sees the
    // very frames it saw when it ran after the decode (so the bytes are the same), and the
    // decode's time is hidden behind the encode's. A note the decode refuses stops the encoder.
    let abort = AtomicBool::new(false);
    let (decoded, ogg) = std::thread::scope(|scope| {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<f32>>(ENCODE_QUEUE);
        let (abort, deadline) = (&abort, &deadline);
        let encoder = scope.spawn(move || -> Result<Vec<u8>, MediaError> {
            let mut enc = OpusEncoder::new(s.bitrate)?;
            for chunk in rx {
                if abort.load(Ordering::Relaxed) {
                    return Err(MediaError::internal("the voice note's encode was stopped"));
                }
                enc.push(&chunk, deadline)?;
            }
            enc.finish(deadline)
        });
        let mut pending: Vec<f32> = Vec::with_capacity(ENCODE_BATCH + OPUS_FRAME);
        let mut tx = Some(tx);
        let mut feed = |new: &[f32]| {
            pending.extend_from_slice(new);
            if pending.len() >= ENCODE_BATCH {
                let batch = std::mem::replace(&mut pending, Vec::with_capacity(ENCODE_BATCH + OPUS_FRAME));
                // A send fails only when the encoder has stopped; its error is reported below.
                if tx.as_ref().is_some_and(|t| t.send(batch).is_err()) {
                    tx = None;
                }
            }
        };
        let decoded = decode_mono48(bytes, format, settings.limits.voice_max_ms, deadline, &capture, &mut feed);
        // A refused note stops the encoder before the channel closes, so the batches still
        // queued are dropped unencoded.
        if decoded.is_err() {
            abort.store(true, Ordering::Relaxed);
        }
        if let Some(t) = tx.take() {
            if decoded.is_ok() && !pending.is_empty() {
                let _ = t.send(std::mem::take(&mut pending));
            }
        }
        let ogg = encoder.join().unwrap_or_else(|_| Err(MediaError::internal("the Opus encoder thread panicked")));
        (decoded, ogg)
    });
    let decoded = decoded?;
    let ogg = ogg?;
    let duration_ms = samples_to_ms(decoded.len() as u64);
    let waveform = waveform(&decoded);
    tracing::debug!(
        format = format.name(),
        duration_ms,
        total_ms = t0.elapsed().as_secs_f64() * 1e3,
        bytes = ogg.len(),
        "voice note processed"
    );
    Ok(VoiceOutput { duration_ms, waveform, ogg })
}

/// Samples handed to the encoder thread at once (about 0.4 s), and how many such batches may
/// wait for it: the decoder runs at most this far ahead.
const ENCODE_BATCH: usize = OPUS_FRAME * 20;
const ENCODE_QUEUE: usize = 8;

fn samples_to_ms(n: u64) -> u64 {
    (n * 1000 + RATE as u64 / 2) / RATE as u64
}

fn unsupported(message: impl Into<String>) -> MediaError {
    MediaError::UnsupportedCodec { message: message.into() }
}

const SEND_AUDIO: &str = "send Ogg Opus, Ogg Vorbis, WebM Opus, MP3, AAC (M4A), FLAC or WAV";

/// The one decode pass: every packet of the best audio stream, resampled to 48 kHz mono f32.
fn decode_mono48(
    bytes: &[u8],
    format: Format,
    max_ms: u64,
    deadline: &Deadline,
    capture: &LogCapture,
    sink: &mut dyn FnMut(&[f32]),
) -> Result<Vec<f32>, MediaError> {
    if !is_voice_format(format) {
        return Err(unsupported(format!("{} files cannot be voice notes; {SEND_AUDIO}", format.name())));
    }
    if format == Format::Ogg {
        if ogg_codec(bytes) == Some(OggCodec::Theora) {
            return Err(unsupported(format!("the Ogg file holds video; {SEND_AUDIO}")));
        }
        check_ogg_pages(bytes)?;
    }
    let shared = match format {
        // A data chunk that declares less than it holds is corrected in our copy, so FFmpeg
        // reads (and we measure and encode) everything the file holds.
        Format::Wav => match wav_data_fix(bytes)? {
            Some((at, size)) => {
                let mut copy = bytes.to_vec();
                copy[at..at + 4].copy_from_slice(&size.to_le_bytes());
                let riff = u32::try_from(copy.len() - 8).unwrap_or(u32::MAX);
                copy[4..8].copy_from_slice(&riff.to_le_bytes());
                SharedBytes::from_vec(copy)
            }
            None => SharedBytes::new(bytes),
        },
        _ => SharedBytes::new(bytes),
    };
    let mut input = open_input(&shared, format, deadline, &[])?;
    if best_video_stream(&input).is_some() {
        return Err(unsupported(format!(
            "the {} file has a video track; a voice note is sound only ({SEND_AUDIO})",
            format.name()
        )));
    }
    let stream = input
        .streams()
        .best(ffmpeg::media::Type::Audio)
        .ok_or_else(|| MediaError::corrupt(format!("the {} file holds no audio track", format.name())))?;
    let index = stream.index();
    let par = stream.parameters();
    let codec_name = par.id().name().to_string();
    if !voice_codec_allowed(&codec_name) {
        return Err(unsupported(format!("{codec_name} audio is not supported for voice notes; {SEND_AUDIO}")));
    }
    let mut ctx =
        codec::context::Context::from_parameters(par).map_err(|e| internal_error("audio decoder context", e))?;
    ctx.set_threading(codec::threading::Config { kind: codec::threading::Type::None, count: 1, ..Default::default() });
    crate::av::ffi::set_decoder_fields(&mut ctx, stream.time_base(), None, None);
    allow_contract_decoders(&mut ctx)?;
    let mut decoder = ctx.decoder().audio().map_err(|e| match e {
        ffmpeg::Error::DecoderNotFound => {
            unsupported(format!("{codec_name} audio has no decoder in this build; {SEND_AUDIO}"))
        }
        e => MediaError::corrupt(format!("the {codec_name} audio cannot be decoded ({e}); the file is damaged")),
    })?;

    let limit_ms = max_ms.saturating_add(VOICE_PADDING_MS);
    let limit_samples = limit_ms * RATE as u64 / 1000;
    let mut out: Vec<f32> = Vec::with_capacity(((limit_samples + OPUS_FRAME as u64) as usize).min(64 << 20));
    let mut chain: Option<AudioChain> = None;
    let spec = format!("aresample={RATE},aformat=sample_fmts=flt:sample_rates={RATE}:channel_layouts=mono");
    let mut resampled = frame::Audio::empty();
    // Appends the chain's ready output (48 kHz mono f32) to `out`.
    // A non-finite sample (a decoder's NaN or infinity) becomes silence before anyone sees it.
    // What is appended is also handed to `sink`.
    let mut drain = |c: &mut AudioChain, out: &mut Vec<f32>| -> Result<(), MediaError> {
        while c.pull(&mut resampled)? {
            let n = resampled.samples();
            let floats = resampled.data(0).get(..n * 4).ok_or_else(|| MediaError::internal("short resampler frame"))?;
            let at = out.len();
            out.extend(floats.chunks_exact(4).map(|b| {
                let x = f32::from_ne_bytes([b[0], b[1], b[2], b[3]]);
                if x.is_finite() {
                    x
                } else {
                    0.0
                }
            }));
            sink(&out[at..]);
        }
        Ok(())
    };
    // Decoded input length in µs, summed frame by frame (the rate may change mid-stream).
    let mut decoded_us: u128 = 0;
    let too_long = |ms: u64| MediaError::TooLong { what: "the voice note".into(), duration_ms: ms, limit_ms: max_ms };

    let mut packet = Packet::empty();
    let mut decoded = frame::Audio::empty();
    let mut eof = false;
    while !eof {
        deadline.check()?;
        match crate::av::read_packet(&mut input, &mut packet) {
            Ok(()) => {
                if packet.stream() != index {
                    continue;
                }
                if packet.is_corrupt() {
                    return Err(damaged(capture, "a packet of the audio track is damaged or cut short"));
                }
                decoder.send_packet(&packet).map_err(|e| decode_error(capture, deadline, e))?;
            }
            Err(ffmpeg::Error::Eof) => {
                eof = true;
                decoder.send_eof().map_err(|e| decode_error(capture, deadline, e))?;
            }
            Err(e) => return Err(read_error(capture, deadline, e)),
        }
        while received(decoder.receive_frame(&mut decoded)).map_err(|e| decode_error(capture, deadline, e))? {
            capture.check_frame(&decoded, "the audio decoder");
            let rate = decoded.rate();
            if rate == 0 || decoded.channels() == 0 {
                return Err(MediaError::corrupt("the audio track has frames without a sample rate or channels"));
            }
            decoded_us += decoded.samples() as u128 * 1_000_000 / rate as u128;
            let stale = chain.as_ref().is_some_and(|c| !c.accepts(&decoded));
            if stale {
                // Rate, layout or sample format changed mid-stream: drain and rebuild.
                if let Some(mut c) = chain.take() {
                    c.flush()?;
                    drain(&mut c, &mut out)?;
                }
            }
            if chain.is_none() {
                chain = Some(AudioChain::new(&decoded, &spec, None)?);
            }
            let c = chain.as_mut().expect("built above");
            // Timestamps are the running sample count: the length is what was decoded, and gaps
            // or jumps in container timestamps neither add nor remove audio.
            c.push_counted(&mut decoded)?;
            drain(c, &mut out)?;
            let ms = (decoded_us / 1000) as u64;
            if ms > limit_ms || out.len() as u64 > limit_samples {
                return Err(too_long(ms.max(samples_to_ms(out.len() as u64))));
            }
        }
    }
    if let Some(mut c) = chain.take() {
        c.flush()?;
        drain(&mut c, &mut out)?;
    }
    if let Some(message) = capture.damage() {
        return Err(MediaError::corrupt(format!("the audio data is damaged or truncated ({message})")));
    }
    if out.is_empty() {
        return Err(MediaError::corrupt(format!("the {} file holds no decodable audio", format.name())));
    }
    let ms = samples_to_ms(out.len() as u64);
    if ms > limit_ms {
        return Err(too_long(ms));
    }
    Ok(out)
}

fn damaged(capture: &LogCapture, fallback: &str) -> MediaError {
    match capture.damage() {
        Some(m) => MediaError::corrupt(format!("the audio data is damaged or truncated ({m})")),
        None => MediaError::corrupt(format!("{fallback}; the file is damaged or truncated")),
    }
}

fn decode_error(capture: &LogCapture, deadline: &Deadline, e: ffmpeg::Error) -> MediaError {
    match pass_error("the audio track", deadline, e) {
        MediaError::Corrupt { message } => match capture.damage() {
            Some(m) => MediaError::corrupt(format!("{message} ({m})")),
            None => MediaError::corrupt(message),
        },
        other => other,
    }
}

fn read_error(capture: &LogCapture, deadline: &Deadline, e: ffmpeg::Error) -> MediaError {
    decode_error(capture, deadline, e)
}

/// Peaks of [`WAVEFORM_BUCKETS`] equal slices of the clip, scaled so the loudest slice is
/// [`WAVEFORM_MAX`]. Silence gives all zeros.
pub(crate) fn waveform(samples: &[f32]) -> Vec<u8> {
    let n = samples.len();
    let peak = samples.iter().fold(0f32, |m, &x| m.max(x.abs()));
    if n == 0 || peak <= 1e-6 {
        return vec![0; WAVEFORM_BUCKETS];
    }
    (0..WAVEFORM_BUCKETS)
        .map(|i| {
            let start = i * n / WAVEFORM_BUCKETS;
            let end = ((i + 1) * n / WAVEFORM_BUCKETS).max(start + 1).min(n);
            let p = samples[start..end].iter().fold(0f32, |m, &x| m.max(x.abs()));
            ((p / peak) * WAVEFORM_MAX as f32).round().clamp(0.0, WAVEFORM_MAX as f32) as u8
        })
        .collect()
}

/// A `Write + Seek` buffer FFmpeg can write into while we keep a handle to read it back.
#[derive(Clone, Default)]
pub(crate) struct MemorySink(Arc<Mutex<Cursor<Vec<u8>>>>);

impl MemorySink {
    pub(crate) fn take(&self) -> Vec<u8> {
        let mut g = self.0.lock().unwrap_or_else(|p| p.into_inner());
        std::mem::take(g.get_mut())
    }
}

impl Write for MemorySink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Seek for MemorySink {
    fn seek(&mut self, pos: SeekFrom) -> std::io::Result<u64> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).seek(pos)
    }
}

/// libopus (application `voip`, VBR, complexity 10 — the CLI's defaults) in Ogg, bit-exact.
/// libopus into Ogg, in memory, fed any number of samples at a time: they are cut into
/// [`OPUS_FRAME`] frames in order (the last one may be short), so how the samples arrive never
/// changes the bytes.
struct OpusEncoder {
    enc: codec::encoder::Audio,
    octx: ffformat::context::Output,
    sink: MemorySink,
    tbs: (ffmpeg::Rational, ffmpeg::Rational),
    frame: frame::Audio,
    /// Samples not yet a whole frame.
    carry: Vec<f32>,
    frames: usize,
}

fn opus_fail(what: &'static str) -> impl Fn(ffmpeg::Error) -> MediaError {
    move |e: ffmpeg::Error| internal_error(what, e)
}

impl OpusEncoder {
    fn new(bitrate: u32) -> Result<OpusEncoder, MediaError> {
        let fail = opus_fail;
        let codec = ffmpeg::encoder::find_by_name("libopus")
            .ok_or_else(|| MediaError::internal("this FFmpeg build has no libopus encoder"))?;
        let sink = MemorySink::default();
        let io = ffformat::context::StreamIo::from_write_seek(sink.clone()).map_err(fail("Ogg output"))?;
        let mut octx = ffformat::output_to_stream(io, None, Some("ogg")).map_err(fail("Ogg muxer"))?;
        crate::av::ffi::set_bitexact(&mut octx);
        let global = octx.format().flags().contains(ffformat::flag::Flags::GLOBAL_HEADER);

        let mut ctx = codec::context::Context::new_with_codec(codec);
        ctx.set_threading(codec::threading::Config {
            kind: codec::threading::Type::None,
            count: 1,
            ..Default::default()
        });
        let mut enc = ctx.encoder().audio().map_err(fail("Opus encoder"))?;
        enc.set_rate(RATE as i32);
        enc.set_format(ffformat::Sample::F32(ffformat::sample::Type::Packed));
        enc.set_channel_layout(ChannelLayout::MONO);
        enc.set_channels(1);
        enc.set_bit_rate(bitrate as usize);
        enc.set_time_base((1, RATE as i32));
        let mut flags = codec::flag::Flags::BITEXACT;
        if global {
            flags |= codec::flag::Flags::GLOBAL_HEADER;
        }
        enc.set_flags(flags);
        let mut opts = ffmpeg::Dictionary::new();
        opts.set("application", "voip");
        let enc = enc.open_as_with(codec, opts).map_err(fail("opening the Opus encoder"))?;
        {
            let mut ost = octx.add_stream(codec).map_err(fail("Ogg stream"))?;
            ost.set_parameters(&enc);
            ost.set_time_base((1, RATE as i32));
        }
        octx.write_header().map_err(fail("Ogg header"))?;
        let stream_tb = octx.stream(0).ok_or_else(|| MediaError::internal("Ogg stream vanished"))?.time_base();
        let enc_tb = ffmpeg::Rational::new(1, RATE as i32);
        let mut frame =
            frame::Audio::new(ffformat::Sample::F32(ffformat::sample::Type::Packed), OPUS_FRAME, ChannelLayout::MONO);
        frame.set_rate(RATE);
        Ok(OpusEncoder {
            enc,
            octx,
            sink,
            tbs: (enc_tb, stream_tb),
            frame,
            carry: Vec::with_capacity(OPUS_FRAME),
            frames: 0,
        })
    }

    fn push(&mut self, mut samples: &[f32], deadline: &Deadline) -> Result<(), MediaError> {
        if !self.carry.is_empty() {
            let take = (OPUS_FRAME - self.carry.len()).min(samples.len());
            self.carry.extend_from_slice(&samples[..take]);
            samples = &samples[take..];
            if self.carry.len() < OPUS_FRAME {
                return Ok(());
            }
            let whole = std::mem::take(&mut self.carry);
            self.send(&whole, deadline)?;
            self.carry = whole;
            self.carry.clear();
        }
        let mut frames = samples.chunks_exact(OPUS_FRAME);
        for f in frames.by_ref() {
            self.send(f, deadline)?;
        }
        self.carry.extend_from_slice(frames.remainder());
        Ok(())
    }

    fn send(&mut self, chunk: &[f32], deadline: &Deadline) -> Result<(), MediaError> {
        if self.frames.is_multiple_of(256) {
            deadline.check()?;
        }
        if chunk.len() != self.frame.samples() {
            self.frame = frame::Audio::new(
                ffformat::Sample::F32(ffformat::sample::Type::Packed),
                chunk.len(),
                ChannelLayout::MONO,
            );
            self.frame.set_rate(RATE);
        }
        let dst = self.frame.data_mut(0);
        for (d, s) in dst.chunks_exact_mut(4).zip(chunk) {
            d.copy_from_slice(&s.to_ne_bytes());
        }
        self.frame.set_pts(Some((self.frames * OPUS_FRAME) as i64));
        self.frames += 1;
        self.enc.send_frame(&self.frame).map_err(opus_fail("Opus encoder"))?;
        write_ready(&mut self.enc, 0, self.tbs, &mut self.octx, "Opus encoder")
    }

    /// Encodes what is left (the clip's last frame may be short) and closes the Ogg stream.
    fn finish(mut self, deadline: &Deadline) -> Result<Vec<u8>, MediaError> {
        if !self.carry.is_empty() {
            let last = std::mem::take(&mut self.carry);
            self.send(&last, deadline)?;
        }
        self.enc.send_eof().map_err(opus_fail("Opus encoder"))?;
        write_ready(&mut self.enc, 0, self.tbs, &mut self.octx, "Opus encoder")?;
        self.octx.write_trailer().map_err(opus_fail("Ogg trailer"))?;
        drop(self.octx);
        Ok(self.sink.take())
    }
}

/// Walks the Ogg pages: a page that runs past the end of the data means a truncated file.
/// Bytes that are not an Ogg page end the walk without a verdict (FFmpeg resyncs on its own).
fn check_ogg_pages(b: &[u8]) -> Result<(), MediaError> {
    let mut at = 0usize;
    let truncated = |need: usize| {
        MediaError::corrupt(format!(
            "the Ogg data ends after {} bytes, inside a page that needs {need}; the file is truncated",
            b.len()
        ))
    };
    while at < b.len() {
        let Some(h) = b.get(at..at + 27) else { return Err(truncated(at + 27)) };
        if &h[..4] != b"OggS" {
            return Ok(());
        }
        let nseg = h[26] as usize;
        let Some(table) = b.get(at + 27..at + 27 + nseg) else { return Err(truncated(at + 27 + nseg)) };
        let body: usize = table.iter().map(|&x| x as usize).sum();
        let end = at + 27 + nseg + body;
        if end > b.len() {
            return Err(truncated(end));
        }
        at = end;
    }
    Ok(())
}

fn le32(b: &[u8], at: usize) -> Option<u32> {
    let s = b.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}

/// Reads a RIFF WAVE's chunk list. `Ok(Some((offset, size)))` when the `data` chunk declares
/// less audio than follows it (the rest is not a valid chunk list, or the size is a streaming
/// writer's 0 / 0xFFFFFFFF): the size field at `offset` must say `size` (everything up to the
/// end, whole sample frames) for the file to be read to its end. `Err(Corrupt)` when the chunk
/// declares more than the file holds. RF64/BW64 are left to FFmpeg.
fn wav_data_fix(b: &[u8]) -> Result<Option<(usize, u32)>, MediaError> {
    if !b.starts_with(b"RIFF") {
        return Ok(None);
    }
    let mut block_align = 1usize;
    let mut at = 12usize;
    loop {
        let (Some(id), Some(size)) = (b.get(at..at + 4), le32(b, at + 4)) else {
            return Err(MediaError::corrupt(format!(
                "the WAV file ends after {} bytes without a data chunk; it is truncated",
                b.len()
            )));
        };
        let start = at + 8;
        let size = size as usize;
        if id == b"fmt " {
            if let Some(a) = b.get(start + 12..start + 14) {
                block_align = (u16::from_le_bytes([a[0], a[1]]) as usize).max(1);
            }
        }
        if id == b"data" {
            let available = b.len() - start;
            let whole = u32::try_from(available - available % block_align).unwrap_or(u32::MAX - 1);
            if size == 0 || size == 0xFFFF_FFFF {
                return Ok(Some((at + 4, whole)));
            }
            if size > available {
                return Err(MediaError::corrupt(format!(
                    "the WAV data chunk declares {size} bytes of audio but the file holds only {available}; it is truncated"
                )));
            }
            let rest_at = start + size + (size & 1);
            if is_chunk_list(b.get(rest_at..).unwrap_or(&[])) {
                return Ok(None);
            }
            return Ok(Some((at + 4, whole)));
        }
        at = start.saturating_add(size).saturating_add(size & 1);
        if at >= b.len() {
            return Err(MediaError::corrupt(format!(
                "the WAV file ends after {} bytes without a data chunk; it is truncated",
                b.len()
            )));
        }
    }
}

/// Whether `b` is a run of well-formed RIFF chunks reaching exactly its end (a few trailing
/// zero bytes tolerated).
fn is_chunk_list(b: &[u8]) -> bool {
    let mut at = 0usize;
    loop {
        let rest = &b[at.min(b.len())..];
        if rest.len() < 8 {
            return rest.iter().all(|&x| x == 0);
        }
        if !rest[..4].iter().all(|c| (0x20..=0x7E).contains(c)) {
            return false;
        }
        let size = u32::from_le_bytes([rest[4], rest[5], rest[6], rest[7]]) as usize;
        let next = 8usize.saturating_add(size).saturating_add(size & 1);
        if next > rest.len() + (size & 1) {
            return false;
        }
        at += next;
        if at >= b.len() {
            return true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waveform_scales_to_clip_peak() {
        let mut s = vec![0f32; 10_000];
        for (i, x) in s.iter_mut().enumerate() {
            *x = if i < 5_000 { 0.25 } else { -0.5 };
        }
        let w = waveform(&s);
        assert_eq!(w.len(), 100);
        assert!(w[..50].iter().all(|&v| v == 16), "{w:?}"); // 0.25/0.5*31 = 15.5 → 16
        assert!(w[50..].iter().all(|&v| v == 31));
        assert_eq!(waveform(&[0.0; 500]), vec![0; 100]);
        assert_eq!(waveform(&[]), vec![0; 100]);
        let tiny = waveform(&[0.1, 0.2, 0.4]);
        assert_eq!(tiny.len(), 100);
        assert_eq!(*tiny.iter().max().unwrap(), 31);
    }

    fn wav(declared: u32, data: usize, trailer: &[u8]) -> Vec<u8> {
        let mut v = b"RIFF\0\0\0\0WAVEfmt \x10\0\0\0".to_vec();
        v.extend_from_slice(&[1, 0, 1, 0, 0x80, 0x3e, 0, 0, 0, 0x7d, 0, 0, 2, 0, 16, 0]);
        v.extend_from_slice(b"data");
        v.extend_from_slice(&declared.to_le_bytes());
        v.extend(std::iter::repeat_n(0x11u8, data));
        v.extend_from_slice(trailer);
        v
    }

    #[test]
    fn wav_chunk_sizes() {
        assert_eq!(wav_data_fix(&wav(100, 100, b"")), Ok(None));
        assert_eq!(wav_data_fix(&wav(100, 100, b"LIST\x04\0\0\0abcd")), Ok(None));
        assert_eq!(wav_data_fix(&wav(100, 900, b"")), Ok(Some((40, 900))));
        assert_eq!(wav_data_fix(&wav(100, 901, b"")), Ok(Some((40, 900))), "whole 2-byte frames");
        assert_eq!(wav_data_fix(&wav(0xFFFF_FFFF, 900, b"")), Ok(Some((40, 900))));
        assert!(matches!(wav_data_fix(&wav(1000, 900, b"")), Err(MediaError::Corrupt { .. })));
        assert!(matches!(wav_data_fix(b"RIFF\0\0\0\0WAVEfmt "), Err(MediaError::Corrupt { .. })));
    }

    /// However the samples reach the encoder (all at once, as the one-pass encode after the
    /// decode gave them, or in the decoder's odd-sized batches), the Ogg bytes are the same.
    #[test]
    fn the_opus_bytes_do_not_depend_on_how_the_samples_arrive() {
        init();
        // 10.37 s: a tone with a little pseudo-noise, and a short last frame.
        let mut seed = 1u32;
        let samples: Vec<f32> = (0..(RATE as usize * 1037 / 100))
            .map(|i| {
                seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                (i as f32 * 0.031).sin() * 0.4 + (seed >> 16) as f32 / 65536.0 * 0.05
            })
            .collect();
        let deadline = Deadline::new(std::time::Duration::from_secs(60), "test");
        let whole = {
            let mut e = OpusEncoder::new(24_000).unwrap();
            e.push(&samples, &deadline).unwrap();
            e.finish(&deadline).unwrap()
        };
        assert!(whole.starts_with(b"OggS") && whole.len() > 10_000, "{} bytes", whole.len());
        for sizes in [&[1usize, 7, 959, 961, 960, 19_200][..], &[ENCODE_BATCH][..], &[OPUS_FRAME - 1][..]] {
            let mut e = OpusEncoder::new(24_000).unwrap();
            let mut rest = &samples[..];
            for n in sizes.iter().cycle() {
                if rest.is_empty() {
                    break;
                }
                let (a, b) = rest.split_at((*n).min(rest.len()));
                e.push(a, &deadline).unwrap();
                rest = b;
            }
            assert!(e.finish(&deadline).unwrap() == whole, "batches of {sizes:?} gave other bytes");
        }
    }

    #[test]
    fn ogg_page_walk() {
        let mut page = b"OggS\0\x02".to_vec();
        page.extend_from_slice(&[0u8; 20]);
        page.push(1);
        page.push(5);
        page.extend_from_slice(b"hello");
        assert_eq!(check_ogg_pages(&page), Ok(()));
        let mut two = page.clone();
        two.extend_from_slice(&page);
        assert_eq!(check_ogg_pages(&two), Ok(()));
        assert!(check_ogg_pages(&two[..two.len() - 2]).is_err());
        assert!(check_ogg_pages(&page[..20]).is_err());
    }
}
