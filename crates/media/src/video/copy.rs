//! Verified passthrough (contract §4): which streams may be copied instead of re-encoded, the
//! checks the verifying decode adds, and the bitstream filter that takes SEI out of what is
//! copied.
//!
//! A stream is copied only when everything about it is what the re-encode path would produce
//! anyway, or something every player handles the same way, and when a complete decode of it with
//! FFmpeg's strictest error detection found nothing wrong:
//! - **Video**: H.264 Constrained Baseline, Main or High, level ≤ 4.2, with the SPS values the
//!   verifying decoder reports (reference frames, reorder depth, macroblocks per frame and per
//!   second, bitrate) within what that level allows; 8-bit 4:2:0 limited range; BT.709 or
//!   unspecified primaries, transfer and matrix; square pixels; progressive; the size already
//!   within the bound (nothing to scale); at most 60 frames in any second (the shortest gap between
//!   two frames' timestamps); no display matrix but the identity; no edit list that drops frames
//!   (packets the demuxer marks to discard) or repeats them (two packets from one file position);
//!   every packet timed and decoded to exactly one frame of the same size and format; from an
//!   MP4/MOV/3GP container, whose packets carry both timestamps the MP4 muxer needs.
//! - **Audio**: AAC-LC, at most 48 kHz and 2 channels, decoded cleanly (as every audio track is).
//!
//! What is copied is sanitised: SEI NAL units (type 6: encoder settings, user data, HDR or
//! camera metadata) are removed by FFmpeg's `filter_units`, from the packets and from the
//! `avcC` extradata; the container is rebuilt by the same muxer as a re-encoded clip (fast-start,
//! bit-exact, no metadata, no other tracks) with timestamps starting at 0. The poster, the
//! classifier's frames and their PDQ come from the verifying decode through the same filter chain
//! as a re-encoded clip's, so a copied clip is scored exactly like one that was re-encoded.

use super::*;

/// Which of the two streams the pass copies; `Err` says why a stream is re-encoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Streams {
    pub(super) video: Result<(), String>,
    pub(super) audio: Result<(), String>,
}

impl Streams {
    pub(super) fn reencode(why: &str) -> Streams {
        Streams { video: Err(why.to_string()), audio: Err(why.to_string()) }
    }

    pub(super) fn video(&self) -> bool {
        self.video.is_ok()
    }

    pub(super) fn audio(&self) -> bool {
        self.audio.is_ok()
    }
}

/// Which path a video item took (the `path` label of the worker's metric).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VideoPath {
    /// Every stream copied (the video, and the sound when there is one).
    Copied,
    /// The video copied, the sound re-encoded to AAC.
    AudioReencoded,
    /// The video re-encoded, the AAC sound copied.
    VideoReencoded,
    /// Everything re-encoded.
    Reencoded,
}

impl VideoPath {
    /// Every path, in the order of the metric's documentation.
    pub const ALL: [VideoPath; 4] =
        [VideoPath::Copied, VideoPath::AudioReencoded, VideoPath::VideoReencoded, VideoPath::Reencoded];

    pub(super) fn of(copy: &Streams, has_audio: bool) -> VideoPath {
        match (copy.video(), !has_audio || copy.audio()) {
            (true, true) => VideoPath::Copied,
            (true, false) => VideoPath::AudioReencoded,
            (false, true) if has_audio => VideoPath::VideoReencoded,
            (false, _) => VideoPath::Reencoded,
        }
    }

    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            VideoPath::Copied => "copied",
            VideoPath::AudioReencoded => "audio_reencoded",
            VideoPath::VideoReencoded => "video_reencoded",
            VideoPath::Reencoded => "reencoded",
        }
    }
}

/// What the stream's headers say beyond its codec parameters.
pub(super) struct StreamFacts {
    /// The display matrix side data, when there is one.
    pub(super) matrix: Option<[i32; 9]>,
    /// A legacy `rotate` tag other than 0.
    pub(super) rotate_tag: bool,
    pub(super) time_base: Rational,
    /// Whether the container is one whose packets carry decoding timestamps (the MOV demuxer).
    pub(super) mov: bool,
}

pub(super) fn st_facts(input: &Input, index: usize, format: Format) -> StreamFacts {
    let mut facts = StreamFacts {
        matrix: None,
        rotate_tag: false,
        time_base: Rational::new(0, 1),
        mov: matches!(format, Format::Mp4 | Format::Mov | Format::ThreeGp),
    };
    let Some(st) = input.stream(index) else { return facts };
    facts.time_base = st.time_base();
    facts.matrix = crate::av::ffi::display_matrix(&st);
    facts.rotate_tag = st.metadata().get("rotate").is_some_and(|t| t.trim().parse::<f64>() != Ok(0.0));
    facts
}

/// The identity display matrix (16.16 fixed point, last column 2.30).
const IDENTITY: [i32; 9] = [1 << 16, 0, 0, 0, 1 << 16, 0, 0, 0, 1 << 30];

/// H.264 profiles that are copied: Constrained Baseline, Main, High.
const PROFILES: [(i32, &str); 3] = [(66 | (1 << 9), "Constrained Baseline"), (77, "Main"), (100, "High")];
/// Level 4.2's limits (H.264 Table A-1): macroblocks per second, per frame, in the decoded
/// picture buffer; the bitrate in kbit/s of Baseline/Main (High: × 1.25).
const LEVEL: i32 = 42;
const MAX_MBPS: u64 = 522_240;
const MAX_FS: u64 = 8_704;
const MAX_DPB_MBS: u64 = 34_816;
const MAX_BR_KBPS: u64 = 50_000;

fn macroblocks(w: i32, h: i32) -> u64 {
    (((w.max(0) + 15) / 16) as u64) * (((h.max(0) + 15) / 16) as u64)
}

/// Most frames level 4.2's picture buffer holds at this size (at most 16).
pub(super) fn max_dpb_frames(w: i32, h: i32) -> u64 {
    (MAX_DPB_MBS / macroblocks(w, h).max(1)).min(16)
}

/// The predicate on the video stream, from what is known before decoding.
pub(super) fn video_fits(
    facts: &StreamFacts,
    par: &codec::Parameters,
    display: (u32, u32),
    out: (u32, u32),
    scanned: &Scanned,
) -> Result<(), String> {
    use ffi::{AVColorPrimaries as P, AVColorRange as R, AVColorSpace as S, AVColorTransferCharacteristic as T};
    let p = codec_parameters(par);
    if p.codec_id != ffi::AVCodecID::AV_CODEC_ID_H264 {
        return Err(format!("{} video", par.id().name()));
    }
    if !facts.mov {
        return Err("not from an MP4/MOV/3GP container".into());
    }
    let Some((_, profile)) = PROFILES.iter().find(|(id, _)| *id == p.profile) else {
        return Err(format!("H.264 profile {} is not Constrained Baseline, Main or High", p.profile));
    };
    if p.level <= 0 || p.level > LEVEL {
        return Err(format!("H.264 level {} is above 4.2", p.level));
    }
    if p.format != ffi::AVPixelFormat::AV_PIX_FMT_YUV420P as i32 {
        return Err("not 8-bit 4:2:0 (or full range)".into());
    }
    if p.color_range == R::AVCOL_RANGE_JPEG {
        return Err("full range".into());
    }
    if !matches!(p.color_primaries, P::AVCOL_PRI_BT709 | P::AVCOL_PRI_UNSPECIFIED)
        || !matches!(p.color_trc, T::AVCOL_TRC_BT709 | T::AVCOL_TRC_UNSPECIFIED)
        || !matches!(p.color_space, S::AVCOL_SPC_BT709 | S::AVCOL_SPC_UNSPECIFIED)
    {
        return Err("colour other than BT.709 or unspecified".into());
    }
    let sar = p.sample_aspect_ratio;
    if sar.num != 0 && sar.num != sar.den {
        return Err(format!("non-square pixels ({}:{})", sar.num, sar.den));
    }
    if !matches!(p.field_order, ffi::AVFieldOrder::AV_FIELD_PROGRESSIVE | ffi::AVFieldOrder::AV_FIELD_UNKNOWN) {
        return Err("interlaced".into());
    }
    if facts.matrix.is_some_and(|m| m != IDENTITY) || (facts.matrix.is_none() && facts.rotate_tag) {
        return Err("a display matrix other than the identity".into());
    }
    if display != out || (p.width as u32, p.height as u32) != display {
        return Err(format!("{}×{} is not within the bound as it is", display.0, display.1));
    }
    let extradata = extradata(p);
    let config = AvcConfig::parse(extradata)?;
    for sps in &config.sps {
        Sps::parse(sps)?.fits(p.width, p.height)?;
    }
    let v = &scanned.video;
    if v.discarded > 0 {
        return Err(format!("an edit list drops {} frame(s)", v.discarded));
    }
    if v.repeated > 0 {
        return Err(format!("an edit list repeats {} frame(s)", v.repeated));
    }
    if v.untimed > 0 {
        return Err(format!("{} packet(s) without a timestamp", v.untimed));
    }
    let tb = facts.time_base;
    let fps = match v.min_gap() {
        Some(gap) if gap <= 0 => return Err("two frames with one timestamp".into()),
        // gap × num / den seconds ≥ 1/60.
        Some(gap) if (gap as i128) * (tb.numerator() as i128) * (MAX_FPS as i128) < tb.denominator() as i128 => {
            return Err(format!(
                "frames {:.2} ms apart (over {MAX_FPS} fps)",
                gap as f64 * 1000.0 * tb.numerator() as f64 / tb.denominator() as f64
            ))
        }
        Some(gap) => tb.denominator() as f64 / (gap as f64 * tb.numerator() as f64),
        None => 1.0,
    };
    let mbs = macroblocks(p.width, p.height);
    if mbs > MAX_FS || mbs as f64 * fps > MAX_MBPS as f64 {
        return Err(format!("{mbs} macroblocks at {fps:.1} fps exceed level 4.2"));
    }
    let max_kbps = if *profile == "High" { MAX_BR_KBPS * 5 / 4 } else { MAX_BR_KBPS };
    if scanned.video_ms > 0 && v.bytes * 8 / scanned.video_ms > max_kbps {
        return Err(format!("{} kbit/s exceeds level 4.2", v.bytes * 8 / scanned.video_ms));
    }
    Ok(())
}

/// The predicate on the audio stream.
pub(super) fn audio_fits(par: &codec::Parameters, discarded_s: f64) -> Result<(), String> {
    let p = codec_parameters(par);
    if p.codec_id != ffi::AVCodecID::AV_CODEC_ID_AAC {
        return Err(format!("{} audio", par.id().name()));
    }
    if p.profile != ffi::FF_PROFILE_AAC_LOW {
        return Err(format!("AAC profile {} is not LC", p.profile));
    }
    if p.sample_rate <= 0 || p.sample_rate > 48_000 {
        return Err(format!("AAC at {} Hz", p.sample_rate));
    }
    let channels = p.ch_layout.nb_channels;
    if !(1..=2).contains(&channels) {
        return Err(format!("AAC with {channels} channels"));
    }
    // The encoder's priming (an edit list's first 1024–2112 samples) is kept as it is; more
    // than that is an edit that cuts sound, which only a decode honours.
    if discarded_s * p.sample_rate as f64 > 2112.5 {
        return Err(format!("an edit list drops {:.0} ms of sound", discarded_s * 1000.0));
    }
    if p.extradata.is_null() || p.extradata_size < 2 {
        return Err("AAC without its AudioSpecificConfig".into());
    }
    Ok(())
}

/// What the verifying decode checks packet by packet, frame by frame and at its end.
pub(super) struct Verify {
    pub(super) packets: u64,
    pub(super) frames: u64,
    width: i32,
    height: i32,
    config: AvcConfig,
}

impl Verify {
    pub(super) fn new(par: &codec::Parameters) -> Result<Verify, MediaError> {
        let p = codec_parameters(par);
        let extradata = extradata(p);
        let config = AvcConfig::parse(extradata).map_err(not_verified)?;
        Ok(Verify { packets: 0, frames: 0, width: p.width, height: p.height, config })
    }

    /// A packet of the stream being copied: only the NAL unit types of a plain H.264 stream
    /// (slices, SEI, parameter sets, delimiters, end of sequence/stream, filler), and an SPS
    /// repeated in the stream (as some Android encoders do before each IDR) equal to the header's.
    pub(super) fn packet(&mut self, data: &[u8]) -> Result<(), MediaError> {
        self.packets += 1;
        let nals = avcc_nals(data, self.config.len_size)
            .ok_or_else(|| not_verified(format!("packet {}: NAL unit lengths do not add up", self.packets)))?;
        for nal in nals {
            match nal[0] & 0x1f {
                1 | 5 | 6 | 8..=12 => {}
                7 if self.config.sps.iter().any(|s| s.as_slice() == nal) => {}
                7 => return Err(not_verified(format!("packet {}: an SPS unlike the header's", self.packets))),
                t => return Err(not_verified(format!("packet {}: NAL unit type {t}", self.packets))),
            }
        }
        Ok(())
    }

    /// A decoded frame of a stream being copied: its size, format, range and scan as declared.
    pub(super) fn frame(&mut self, f: &frame::Video) -> Result<(), MediaError> {
        self.frames += 1;
        if (f.width() as i32, f.height() as i32) != (self.width, self.height) {
            return Err(not_verified(format!(
                "frame {} is {}×{}, not the declared {}×{}",
                self.frames,
                f.width(),
                f.height(),
                self.width,
                self.height
            )));
        }
        if f.format() != ffformat::Pixel::YUV420P || f.color_range() == ffmpeg::color::Range::JPEG {
            return Err(not_verified(format!("frame {} is not 8-bit 4:2:0 limited range", self.frames)));
        }
        if f.is_interlaced() {
            return Err(not_verified(format!("frame {} is interlaced", self.frames)));
        }
        Ok(())
    }

    /// At the end: every packet gave one frame, and the reorder depth the decoder needed is
    /// within level 4.2's picture buffer.
    pub(super) fn finish(&self, dec: &codec::decoder::Video) -> Result<(), MediaError> {
        if self.frames != self.packets {
            return Err(not_verified(format!("{} packets decoded to {} frames", self.packets, self.frames)));
        }
        let reorder = reorder_depth(dec);
        let max = max_dpb_frames(self.width, self.height);
        if reorder.max(0) as u64 > max {
            return Err(not_verified(format!("a reorder depth of {reorder} exceeds level 4.2's {max} at this size")));
        }
        Ok(())
    }
}

/// A finding of the verifying decode: the stream is re-encoded instead (the error is `Corrupt`
/// so that every decode error of the pass reads the same way; the caller retries).
pub(super) fn not_verified(message: impl std::fmt::Display) -> MediaError {
    MediaError::corrupt(format!("not copied: {message}"))
}

/// `filter_units=remove_types=6`: SEI NAL units out of H.264 packets and extradata.
pub(super) struct SeiFilter(BitstreamFilter);

impl SeiFilter {
    pub(super) fn new(par: &codec::Parameters, time_base: Rational) -> Result<SeiFilter, MediaError> {
        match BitstreamFilter::new(c"filter_units", (c"remove_types", c"6"), par, time_base) {
            Ok(Some(f)) => Ok(SeiFilter(f)),
            Ok(None) => Err(MediaError::internal("this FFmpeg build has no filter_units bitstream filter")),
            Err((what, e)) => Err(internal_error(&format!("filter_units: {what}"), e)),
        }
    }

    /// The output's codec parameters (the extradata without SEI).
    pub(super) fn parameters(&self) -> &AVCodecParameters {
        self.0.parameters()
    }

    /// Sends a packet (`None`: the end) and hands every filtered packet to `sink`.
    pub(super) fn filter(
        &mut self,
        packet: Option<&Packet>,
        mut sink: impl FnMut(&mut Packet) -> Result<(), MediaError>,
    ) -> Result<(), MediaError> {
        let unparsable =
            |e| MediaError::corrupt(format!("not copied: the H.264 stream cannot be parsed to remove its SEI ({e})"));
        self.0.send(packet).map_err(unparsable)?;
        loop {
            let mut out = Packet::empty();
            match received(self.0.receive(&mut out)) {
                Ok(true) => sink(&mut out)?,
                Ok(false) => return Ok(()),
                Err(e) => return Err(unparsable(e)),
            }
        }
    }
}

/// The NAL units of an AVCC packet (`len_size`-byte big-endian lengths); `None` when the
/// lengths do not add up to the packet.
pub(super) fn avcc_nals(data: &[u8], len_size: usize) -> Option<Vec<&[u8]>> {
    let mut out = Vec::new();
    let mut at = 0usize;
    while at < data.len() {
        let len_bytes = data.get(at..at + len_size)?;
        let len = len_bytes.iter().fold(0usize, |n, &b| (n << 8) | b as usize);
        at += len_size;
        let nal = data.get(at..at.checked_add(len)?)?;
        if nal.is_empty() {
            return None;
        }
        out.push(nal);
        at += len;
    }
    Some(out)
}

/// The `avcC` record: NAL length size and the SPS it carries.
pub(super) struct AvcConfig {
    pub(super) len_size: usize,
    pub(super) sps: Vec<Vec<u8>>,
}

impl AvcConfig {
    pub(super) fn parse(extradata: &[u8]) -> Result<AvcConfig, String> {
        let bad = || "no valid avcC record".to_string();
        if extradata.len() < 7 || extradata[0] != 1 {
            return Err(bad());
        }
        let len_size = (extradata[4] & 3) as usize + 1;
        if len_size == 3 {
            return Err(bad());
        }
        let n = (extradata[5] & 0x1f) as usize;
        let mut at = 6usize;
        let mut sps = Vec::new();
        for _ in 0..n {
            let len = u16::from_be_bytes([*extradata.get(at).ok_or_else(bad)?, *extradata.get(at + 1).ok_or_else(bad)?])
                as usize;
            sps.push(extradata.get(at + 2..at + 2 + len).ok_or_else(bad)?.to_vec());
            at += 2 + len;
        }
        if sps.is_empty() {
            return Err("no SPS in the avcC record".into());
        }
        Ok(AvcConfig { len_size, sps })
    }
}

/// An exp-Golomb bit reader over a NAL unit's payload (emulation prevention removed).
struct Bits {
    data: Vec<u8>,
    pos: usize,
}

impl Bits {
    fn new(nal: &[u8]) -> Bits {
        let mut data = Vec::with_capacity(nal.len());
        let mut zeros = 0;
        for &b in nal {
            if zeros >= 2 && b == 3 {
                zeros = 0;
                continue;
            }
            zeros = if b == 0 { zeros + 1 } else { 0 };
            data.push(b);
        }
        Bits { data, pos: 0 }
    }

    fn bit(&mut self) -> Result<u32, String> {
        let byte = self.data.get(self.pos / 8).ok_or("the SPS ends early")?;
        let b = (byte >> (7 - self.pos % 8)) & 1;
        self.pos += 1;
        Ok(b as u32)
    }

    fn bits(&mut self, n: u32) -> Result<u32, String> {
        (0..n).try_fold(0u32, |v, _| Ok((v << 1) | self.bit()?))
    }

    fn ue(&mut self) -> Result<u32, String> {
        let mut zeros = 0;
        while self.bit()? == 0 {
            zeros += 1;
            if zeros > 31 {
                return Err("an SPS value is out of range".into());
            }
        }
        Ok(((1u64 << zeros) - 1 + self.bits(zeros)? as u64).min(u32::MAX as u64) as u32)
    }

    fn se(&mut self) -> Result<i64, String> {
        let k = self.ue()? as i64;
        Ok(if k % 2 == 1 { (k + 1) / 2 } else { -(k / 2) })
    }
}

/// What the passthrough predicate reads from an H.264 SPS (ITU-T H.264 7.3.2.1.1, E.1.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Sps {
    pub(super) chroma_format_idc: u32,
    pub(super) bit_depth: (u32, u32),
    pub(super) max_num_ref_frames: u32,
    pub(super) frame_mbs_only: bool,
    /// From the VUI's bitstream restriction, when present.
    pub(super) max_dec_frame_buffering: Option<u32>,
}

impl Sps {
    pub(super) fn parse(nal: &[u8]) -> Result<Sps, String> {
        let mut r = Bits::new(nal.get(1..).ok_or("an empty SPS")?);
        let profile = r.bits(8)?;
        r.bits(16)?; // constraint flags, reserved bits, level_idc
        r.ue()?; // seq_parameter_set_id
        let (mut chroma_format_idc, mut bit_depth) = (1, (8, 8));
        if [100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135].contains(&profile) {
            chroma_format_idc = r.ue()?;
            if chroma_format_idc == 3 {
                r.bit()?;
            }
            bit_depth = (r.ue()? + 8, r.ue()? + 8);
            r.bit()?; // qpprime_y_zero_transform_bypass_flag
            if r.bit()? == 1 {
                for i in 0..if chroma_format_idc == 3 { 12 } else { 8 } {
                    if r.bit()? == 1 {
                        let size = if i < 6 { 16 } else { 64 };
                        let (mut last, mut next) = (8i64, 8i64);
                        for _ in 0..size {
                            if next != 0 {
                                next = (last + r.se()? + 256).rem_euclid(256);
                            }
                            if next != 0 {
                                last = next;
                            }
                        }
                    }
                }
            }
        }
        r.ue()?; // log2_max_frame_num_minus4
        match r.ue()? {
            0 => {
                r.ue()?;
            }
            1 => {
                r.bit()?;
                r.se()?;
                r.se()?;
                let n = r.ue()?;
                if n > 255 {
                    return Err("an SPS value is out of range".into());
                }
                for _ in 0..n {
                    r.se()?;
                }
            }
            _ => {}
        }
        let max_num_ref_frames = r.ue()?;
        r.bit()?; // gaps_in_frame_num_value_allowed_flag
        r.ue()?;
        r.ue()?; // picture size in macroblocks / map units
        let frame_mbs_only = r.bit()? == 1;
        if !frame_mbs_only {
            r.bit()?;
        }
        r.bit()?; // direct_8x8_inference_flag
        if r.bit()? == 1 {
            for _ in 0..4 {
                r.ue()?; // frame cropping
            }
        }
        let mut max_dec_frame_buffering = None;
        if r.bit()? == 1 {
            max_dec_frame_buffering = Self::vui(&mut r)?;
        }
        Ok(Sps { chroma_format_idc, bit_depth, max_num_ref_frames, frame_mbs_only, max_dec_frame_buffering })
    }

    fn vui(r: &mut Bits) -> Result<Option<u32>, String> {
        if r.bit()? == 1 && r.bits(8)? == 255 {
            r.bits(32)?; // extended SAR
        }
        if r.bit()? == 1 {
            r.bit()?; // overscan
        }
        if r.bit()? == 1 {
            r.bits(4)?;
            if r.bit()? == 1 {
                r.bits(24)?; // colour description
            }
        }
        if r.bit()? == 1 {
            r.ue()?;
            r.ue()?; // chroma sample locations
        }
        if r.bit()? == 1 {
            r.bits(32)?;
            r.bits(32)?;
            r.bit()?; // timing info
        }
        let nal_hrd = r.bit()? == 1;
        if nal_hrd {
            Self::hrd(r)?;
        }
        let vcl_hrd = r.bit()? == 1;
        if vcl_hrd {
            Self::hrd(r)?;
        }
        if nal_hrd || vcl_hrd {
            r.bit()?; // low_delay_hrd_flag
        }
        r.bit()?; // pic_struct_present_flag
        if r.bit()? == 0 {
            return Ok(None);
        }
        r.bit()?; // motion_vectors_over_pic_boundaries_flag
        for _ in 0..4 {
            r.ue()?; // max bytes/bits per picture/macroblock, log2 max mv lengths
        }
        r.ue()?; // max_num_reorder_frames
        Ok(Some(r.ue()?))
    }

    fn hrd(r: &mut Bits) -> Result<(), String> {
        let cpb = r.ue()? + 1;
        if cpb > 32 {
            return Err("an SPS value is out of range".into());
        }
        r.bits(8)?;
        for _ in 0..cpb {
            r.ue()?;
            r.ue()?;
            r.bit()?;
        }
        r.bits(20)?;
        Ok(())
    }

    /// The predicate's part that only the SPS knows.
    pub(super) fn fits(&self, w: i32, h: i32) -> Result<(), String> {
        if self.chroma_format_idc != 1 || self.bit_depth != (8, 8) {
            return Err("the SPS is not 8-bit 4:2:0".into());
        }
        if !self.frame_mbs_only {
            return Err("the SPS allows interlaced coding".into());
        }
        let max = max_dpb_frames(w, h);
        if self.max_num_ref_frames as u64 > max {
            return Err(format!("{} reference frames exceed level 4.2's {max} at {w}×{h}", self.max_num_ref_frames));
        }
        if self.max_dec_frame_buffering.is_some_and(|n| n as u64 > max) {
            return Err(format!(
                "a decoded picture buffer of {} frames exceeds level 4.2's {max} at {w}×{h}",
                self.max_dec_frame_buffering.unwrap_or(0)
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_golomb_and_emulation_prevention() {
        // 1 → 0, 010 → 1, 011 → 2, 00100 → 3; then se: 010 → +1, 011 → −1.
        let mut r = Bits::new(&[0b1010_0110, 0b0100_0100, 0b1100_0000]);
        assert_eq!((r.ue().unwrap(), r.ue().unwrap(), r.ue().unwrap(), r.ue().unwrap()), (0, 1, 2, 3));
        assert_eq!((r.se().unwrap(), r.se().unwrap()), (1, -1));
        // 00 00 03 01 → 00 00 01.
        assert_eq!(Bits::new(&[0, 0, 3, 1]).data, vec![0, 0, 1]);
        assert!(Bits::new(&[0, 0]).ue().is_err(), "runs out without panicking");
    }

    #[test]
    fn avcc_nals_must_add_up() {
        assert_eq!(avcc_nals(&[0, 0, 0, 2, 9, 16, 0, 0, 0, 1, 6], 4).unwrap(), vec![&[9u8, 16][..], &[6u8][..]]);
        assert!(avcc_nals(&[0, 0, 0, 5, 9, 16], 4).is_none());
        assert!(avcc_nals(&[0, 0, 0, 0], 4).is_none());
    }

    #[test]
    fn level_4_2_picture_buffer() {
        assert_eq!(max_dpb_frames(1280, 720), 9);
        assert_eq!(max_dpb_frames(640, 360), 16);
        assert_eq!(max_dpb_frames(1920, 1088), 4);
    }
}
