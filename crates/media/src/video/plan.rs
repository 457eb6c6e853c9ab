//! The plan of a video's work: container headers, codec allow-list, pixel limit, then the scan
//! pass over packet timestamps (duration limit, damage, frame-rate ceiling), before any decode.

use super::*;

/// What the headers and the scan pass decided.
pub(super) struct Plan {
    pub(super) video: usize,
    pub(super) audio: Option<usize>,
    /// Complete stream parameters (after `find_stream_info`) of the first open: the transcode
    /// pass reopens the input without probing again and builds its decoders from these.
    pub(super) video_par: codec::Parameters,
    pub(super) audio_par: Option<codec::Parameters>,
    pub(super) codec: String,
    pub(super) orientation: Orientation,
    /// Displayed size of the original (rotation and SAR applied).
    pub(super) display: (u32, u32),
    /// Encoded size (displayed orientation).
    pub(super) out: (u32, u32),
    /// Size the scaler produces, before the rotation filters.
    pub(super) scaled: (u32, u32),
    pub(super) time_base: Rational,
    pub(super) frame_rate: Option<Rational>,
    /// Whether the source's average frame rate is above [`MAX_FPS`], so frames are dropped to it.
    pub(super) decimate: bool,
    /// Scan-pass duration (packet timestamps), used for the poster position.
    pub(super) scan_ms: u64,
    /// Scan-pass duration of the video track alone, over which frames are sampled.
    pub(super) video_ms: u64,
    /// Most pixels a decoded frame may have.
    pub(super) max_pixels: u64,
    /// Which streams the pass copies (contract §4 "Video passthrough"), and why one is not.
    pub(super) copy: Streams,
    /// Where a copied timeline starts (the video's earliest timestamp, its time base): it
    /// becomes 0 in the output.
    pub(super) origin: i64,
}

/// Opens the input, checks codecs and the pixel limit from codec parameters, then scans packet
/// timestamps and enforces the duration limit — all before any frame is decoded.
pub(super) fn prepare(
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
    // The pixel aspect ratio as players take it (FFmpeg's av_guess_sample_aspect_ratio): the
    // container's (`pasp`, Matroska's display size) when it gives one, else the bitstream's. A
    // Samsung slow-motion MP4 says 1:1 in `pasp` and 27:64 in its H.264 VUI; players show 4:3.
    let (w, h, sar) = {
        let p = crate::av::ffi::codec_parameters(&par);
        let container = crate::av::ffi::stream_sample_aspect_ratio(&st);
        let sar = if container.numerator() > 0 && container.denominator() > 0 {
            container
        } else {
            p.sample_aspect_ratio.into()
        };
        (p.width, p.height, sar)
    };
    if w <= 0 || h <= 0 {
        return Err(MediaError::corrupt(format!("the {codec_name} video track declares an empty {w}×{h} picture")));
    }
    let (w, h) = (w as u32, h as u32);
    if w as u64 * h as u64 > max_pixels {
        return Err(MediaError::TooManyPixels { what: "video frame".into(), width: w, height: h, limit: max_pixels });
    }
    let orientation = Orientation::of_stream(&st);
    let (dw, dh) = display_size(w, h, sar.numerator(), sar.denominator());
    let display = if orientation.transposes() { (dh, dw) } else { (dw, dh) };
    let out = fit_even(display.0, display.1, s.long_edge, s.short_edge);
    let scaled = if orientation.transposes() { (out.1, out.0) } else { out };
    let time_base = st.time_base();
    if time_base.numerator() <= 0 || time_base.denominator() <= 0 {
        return Err(MediaError::corrupt("the video track has an invalid time base"));
    }
    // The average rate when the container knows it; else FFmpeg's guess (`r_frame_rate`), unless
    // that guess is only the time base's tick rate (a Matroska file without frame durations
    // "runs at" 1000 fps by its 1 ms ticks, and decimating a one-frame WebM to 60 fps left it
    // with no frame at all).
    let ticks = Rational::new(time_base.denominator(), time_base.numerator());
    let frame_rate = [st.avg_frame_rate(), st.rate()]
        .into_iter()
        .enumerate()
        .find(|(i, r)| {
            r.numerator() > 0
                && r.denominator() > 0
                && r.numerator() / r.denominator() <= 1000
                && !(*i == 1
                    && r.numerator() as i64 * ticks.denominator() as i64
                        == ticks.numerator() as i64 * r.denominator() as i64)
        })
        .map(|(_, r)| r);

    // 120/240 fps slow motion is decimated to 60 (the chain's `fps`); the encoder is told so.
    let decimate = frame_rate.is_some_and(|r| r.numerator() as i64 > MAX_FPS as i64 * r.denominator() as i64);
    let frame_rate = if decimate { Some(Rational::new(MAX_FPS, 1)) } else { frame_rate };
    let video_par = par.clone();
    // The first audio track this build can decode, in file order: iPhone MOVs and Android MP4s
    // may carry a second audio track (or one in a codec FFmpeg cannot decode) beside timecode,
    // metadata (`mebx`) and depth tracks, which are all ignored. With no usable audio track the
    // output has no sound, and the log says why.
    let audio = input
        .streams()
        .filter(|a| a.parameters().medium() == ffmpeg::media::Type::Audio)
        .find(|a| {
            let name = a.parameters().id().name().to_string();
            let ok = audio_codec_allowed(&name) && ffmpeg::decoder::find(a.parameters().id()).is_some();
            if !ok {
                tracing::info!(codec = %name, track = a.index(), "skipping an audio track this build cannot decode");
            }
            ok
        })
        .map(|a| a.index());
    let audio_par = audio.and_then(|a| input.stream(a)).map(|a| a.parameters().clone());

    let scanned = scan(&mut input, video, audio, settings.limits.video_max_ms, deadline, capture)?;
    let (scan_ms, video_ms) = (scanned.ms, scanned.video_ms);
    let copy = match s.passthrough {
        Passthrough::Off => Streams::reencode("MEDIAGATE_VIDEO_PASSTHROUGH is off"),
        Passthrough::Verified => Streams {
            video: video_fits(&st_facts(&input, video, format), &video_par, display, out, &scanned),
            audio: match &audio_par {
                Some(a) => audio_fits(a, scanned.audio_discarded_s),
                None => Err("no sound".into()),
            },
        },
    };
    let origin = scanned.video.first_pts().unwrap_or(0);
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
        decimate,
        scan_ms,
        video_ms,
        max_pixels,
        copy,
        origin,
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

/// What the scan pass saw of the video track's packets, for the passthrough predicate.
#[derive(Debug, Default)]
pub(super) struct VideoPackets {
    /// Packets of the video track.
    pub(super) count: u64,
    /// Their payload bytes.
    pub(super) bytes: u64,
    /// Every packet's presentation (else decoding) timestamp, stream time base.
    pub(super) pts: Vec<i64>,
    /// A packet the demuxer marked to be decoded but not shown (an edit list that drops frames).
    pub(super) discarded: u64,
    /// A packet read from the same file position as an earlier one (an edit list that repeats).
    pub(super) repeated: u64,
    /// A packet without any timestamp.
    pub(super) untimed: u64,
}

impl VideoPackets {
    /// The earliest timestamp: where a copied stream's timeline starts (0 in the output).
    pub(super) fn first_pts(&self) -> Option<i64> {
        self.pts.iter().copied().min()
    }

    /// The shortest gap between two frames' timestamps, in stream ticks: `Some(0)` when two
    /// frames share a timestamp, `None` with fewer than two frames.
    pub(super) fn min_gap(&self) -> Option<i64> {
        let mut sorted = self.pts.clone();
        sorted.sort_unstable();
        sorted.windows(2).map(|w| w[1] - w[0]).min()
    }
}

/// The scan pass's findings.
pub(super) struct Scanned {
    /// Duration of both tracks, ms.
    pub(super) ms: u64,
    /// Duration of the video track alone, ms.
    pub(super) video_ms: u64,
    pub(super) video: VideoPackets,
    /// Seconds of sound in packets the demuxer marked to discard: an AAC encoder's priming
    /// (≤ 2112 samples), or the cut of an edit list.
    pub(super) audio_discarded_s: f64,
}

/// Reads every packet of the chosen tracks without decoding: damaged packets, truncation, the
/// frame-rate ceiling, and the duration limit; and what the passthrough predicate needs to know
/// of the video packets' timing and edits.
pub(super) fn scan(
    input: &mut Input,
    video: usize,
    audio: Option<usize>,
    max_ms: u64,
    deadline: &Deadline,
    capture: &LogCapture,
) -> Result<Scanned, MediaError> {
    let tbs: Vec<Rational> = input.streams().map(|st| st.time_base()).collect();
    let mut span = Span::default();
    let mut video_span = Span::default();
    let mut vp = VideoPackets::default();
    let mut positions = std::collections::HashSet::new();
    let mut audio_discarded_s = 0f64;
    let mut packet = Packet::empty();
    loop {
        if !next_packet(input, &mut packet, deadline, capture)? {
            break;
        }
        let idx = packet.stream();
        if idx != video && Some(idx) != audio {
            continue;
        }
        if packet.is_corrupt() {
            return Err(damaged(capture, "a packet of the file is damaged or cut short"));
        }
        let (flags, pos) = crate::av::ffi::packet_flags_and_pos(&packet);
        let discard = flags & ffi::AV_PKT_FLAG_DISCARD as std::ffi::c_int != 0;
        if idx == video {
            vp.count += 1;
            vp.bytes += packet.size() as u64;
            if discard {
                vp.discarded += 1;
            }
            if pos >= 0 && !positions.insert(pos) {
                vp.repeated += 1;
            }
            match packet.pts().or(packet.dts()) {
                // Bounded by the frame-rate ceiling below (checked once the count is known).
                Some(ts) if vp.pts.len() < 1 << 20 => vp.pts.push(ts),
                Some(_) => {}
                None => vp.untimed += 1,
            }
        }
        if Some(idx) == audio && discard {
            let tb = tbs[idx];
            audio_discarded_s += packet.duration().max(0) as f64 * tb.numerator() as f64 / tb.denominator() as f64;
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
    if vp.count == 0 {
        return Err(MediaError::corrupt("the video track holds no frames"));
    }
    let duration_ms = span.ms();
    if duration_ms > max_ms {
        return Err(MediaError::TooLong { what: "the video".into(), duration_ms, limit_ms: max_ms });
    }
    let ceiling = (duration_ms / 1000 + 1) * 250 + 100;
    if vp.count > ceiling {
        return Err(unsupported(format!(
            "the video has {} frames in {:.1} s, more than 250 per second; re-encode it at a normal frame rate",
            vp.count,
            duration_ms as f64 / 1000.0
        )));
    }
    Ok(Scanned { ms: duration_ms, video_ms: video_span.ms(), video: vp, audio_discarded_s })
}

/// Reads the container's next packet into `packet` within the budget: `false` at the end.
pub(super) fn next_packet(
    input: &mut Input,
    packet: &mut Packet,
    deadline: &Deadline,
    capture: &LogCapture,
) -> Result<bool, MediaError> {
    deadline.check()?;
    match crate::av::read_packet(input, packet) {
        Ok(()) => Ok(true),
        Err(ffmpeg::Error::Eof) => Ok(false),
        Err(e) => Err(video_error(capture, "the container", deadline, e)),
    }
}

pub(super) fn to_ms(ts: i64, tb: Rational) -> f64 {
    ts as f64 * tb.numerator() as f64 * 1000.0 / tb.denominator() as f64
}

/// The earliest start and latest end seen, in ms.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Span {
    pub(super) start: Option<f64>,
    pub(super) end: Option<f64>,
}

impl Span {
    pub(super) fn add(&mut self, start: f64, end: f64) {
        if !start.is_finite() || !end.is_finite() {
            return;
        }
        self.start = Some(self.start.map_or(start, |s| s.min(start)));
        self.end = Some(self.end.map_or(end, |e| e.max(end.max(start))));
    }

    pub(super) fn ms(&self) -> u64 {
        match (self.start, self.end) {
            (Some(s), Some(e)) if e > s => (e - s).round().min(u64::MAX as f64 / 2.0) as u64,
            _ => 0,
        }
    }
}

pub(super) fn damaged(capture: &LogCapture, fallback: &str) -> MediaError {
    match capture.damage() {
        Some(m) => MediaError::corrupt(format!("the video file is damaged or truncated ({m})")),
        None => MediaError::corrupt(format!("{fallback}; the file is damaged or truncated")),
    }
}

pub(super) fn video_error(capture: &LogCapture, what: &str, deadline: &Deadline, e: ffmpeg::Error) -> MediaError {
    match pass_error(what, deadline, e) {
        MediaError::Corrupt { message } => match capture.damage() {
            Some(m) => MediaError::corrupt(format!("{message} ({m})")),
            None => MediaError::corrupt(message),
        },
        other => other,
    }
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
