//! The one decode pass: video (and audio) packets → frames → filter chain → poster and samples
//! → encoders.

use super::*;

/// What the decode pass produced.
pub(super) struct PassOutput {
    pub(super) mux: Option<Vec<u8>>,
    pub(super) poster: RgbFrame,
    pub(super) frames: Vec<RgbFrame>,
    /// PDQ of the poster and of the sampled frames, in time order (`pdq_frames`).
    pub(super) frame_hashes: Vec<FrameHash>,
    pub(super) duration_ms: u64,
}

/// The video decoder's threads: two per core (at most 8), and never fewer than the configured
/// `video.threads`. Unlike the encoder's count, which decides the bytes and so stays fixed,
/// this one may follow the machine: FFmpeg's decoders give the same pixels whatever their
/// thread count. More frames in flight keep the cores busy while the encoder's threads wait
/// (the ffmpeg CLI on a 2-core box: 4.8 s with 2 decoder threads, 4.5 s with 4, same bytes).
pub(super) fn decode_threads(configured: usize) -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    (cores * 2).min(8).max(configured)
}

/// The decode (and, with `encode`, transcode) pass.
pub(super) fn run_pass(
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
    // Frame and slice threading. The verifying decode of a stream to be copied: any error
    // FFmpeg can detect fails it.
    let strict = (encode && plan.copy.video()).then_some(crate::av::ffi::STRICT_ERRORS);
    crate::av::ffi::set_decoder_fields(&mut ctx, plan.time_base, Some(decode_threads(s.threads)), strict);
    allow_contract_decoders(&mut ctx)?;
    let vdec = ctx.decoder().video().map_err(|e| {
        MediaError::corrupt(format!("the {} video cannot be decoded ({e}); the file is damaged", plan.codec))
    })?;

    let audio = match (encode, plan.audio, &plan.audio_par) {
        (true, Some(idx), Some(par)) => {
            let ast = input.stream(idx).ok_or_else(|| MediaError::internal("audio stream vanished"))?;
            let mut a = AudioIn::new(idx, ast.time_base(), par.clone())?;
            if plan.copy.video() {
                // Re-encoded sound beside a copied video keeps its place on the shifted timeline.
                a.shift = ffmpeg::rescale::Rescale::rescale(&plan.origin, plan.time_base, a.time_base);
            }
            Some(a)
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
        verify: if encode && plan.copy.video() { Some(Verify::new(&plan.video_par)?) } else { None },
        copy_audio: encode && plan.copy.audio(),
    };

    let mut packet = Packet::empty();
    loop {
        if !next_packet(input, &mut packet, deadline, capture)? {
            break;
        }
        let idx = packet.stream();
        if idx == plan.video {
            if packet.is_corrupt() {
                return Err(damaged(capture, "a packet of the video track is damaged or cut short"));
            }
            pass.vdec.send_packet(&packet).map_err(|e| video_error(capture, "the video track", deadline, e))?;
            if let (Some(v), Some(mux)) = (pass.verify.as_mut(), pass.mux.as_mut()) {
                v.packet(packet.data().unwrap_or(&[]))?;
                mux.copy_video(Some(&packet))?;
            }
            pass.drain_video()?;
        } else if pass.audio.as_ref().is_some_and(|a| a.index == idx) {
            if packet.is_corrupt() {
                return Err(damaged(capture, "a packet of the audio track is damaged or cut short"));
            }
            if pass.copy_audio {
                if let Some(mux) = pass.mux.as_mut() {
                    mux.copy_audio(&packet)?;
                }
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
    if let Some(v) = pass.verify.as_ref() {
        v.finish(&pass.vdec)?;
    }
    let duration_ms = pass.span.ms();
    let poster_frame =
        pass.picker.finish().ok_or_else(|| MediaError::corrupt("the video track holds no decodable frame"))?;
    let poster = to_rgb(&poster_frame.1, plan.out.0, plan.out.1, poster_frame.0, true)?;
    let mut frames = Vec::new();
    let mut frame_hashes = Vec::new();
    if let Some(sampler) = pass.sampler.take() {
        let (sw, sh) = crate::photo::fit(plan.out.0, plan.out.1, sampler.cfg.max_edge);
        let poster_small = to_rgb(&poster_frame.1, sw, sh, poster_frame.0, true)?;
        frames.push(poster_small);
        frames.extend(sampler.frames.into_iter().filter(|f| f.timestamp_ms != poster.timestamp_ms));
        frames.truncate(sampler.cfg.max_frames);
        let ms = poster.timestamp_ms;
        frame_hashes.push(crate::fingerprint::hash_frame(ms, poster.width, poster.height, &poster.data)?);
        frame_hashes.extend(sampler.hashes.into_iter().filter(|f| f.ms != ms));
        frame_hashes.truncate(sampler.cfg.max_frames);
        frame_hashes.sort_by_key(|f| f.ms);
    }
    let mux = match pass.mux.take() {
        Some(m) => Some(m.finish(pass.audio.as_mut(), deadline)?),
        None => None,
    };
    Ok(PassOutput { mux, poster, frames, frame_hashes, duration_ms })
}

pub(super) struct Pass<'a> {
    pub(super) plan: &'a Plan,
    pub(super) deadline: &'a Deadline,
    pub(super) capture: &'a LogCapture,
    pub(super) vdec: codec::decoder::Video,
    pub(super) chain: Option<VideoChain>,
    pub(super) mux: Option<Mux>,
    pub(super) audio: Option<AudioIn>,
    pub(super) picker: PosterPicker,
    pub(super) sampler: Option<Sampler>,
    /// Decoded timestamps, video and audio, in ms.
    pub(super) span: Span,
    /// First filtered video timestamp (time base of the stream), origin of poster/sample times.
    pub(super) first_pts: Option<i64>,
    /// Last timestamp sent to the encoder.
    pub(super) last_pts: Option<i64>,
    /// The verifying decode's checks, when the video is copied.
    pub(super) verify: Option<Verify>,
    /// Whether the sound is copied (it is still decoded: its timing and its soundness).
    pub(super) copy_audio: bool,
}

impl Pass<'_> {
    pub(super) fn drain_video(&mut self) -> Result<(), MediaError> {
        let mut f = frame::Video::empty();
        while received(self.vdec.receive_frame(&mut f))
            .map_err(|e| video_error(self.capture, "the video track", self.deadline, e))?
        {
            self.capture.check_frame(&f, "the video decoder");
            self.deadline.check()?;
            let (w, h) = (f.width(), f.height());
            if w == 0 || h == 0 {
                return Err(MediaError::corrupt("the video track has an empty frame"));
            }
            if w as u64 * h as u64 > self.plan.max_pixels {
                return Err(MediaError::TooManyPixels {
                    what: "video frame".into(),
                    width: w,
                    height: h,
                    limit: self.plan.max_pixels,
                });
            }
            if f.is_corrupt() || f.has_decode_errors() {
                return Err(damaged(self.capture, "a frame of the video track does not decode cleanly"));
            }
            if let Some(v) = self.verify.as_mut() {
                v.frame(&f)?;
            }

            let ts = f.timestamp().or(f.pts());
            if let Some(ts) = ts {
                let tb = self.plan.time_base;
                let dur = f.packet().duration.max(0);
                self.span.add(to_ms(ts, tb), to_ms(ts.saturating_add(dur), tb));
            }
            f.set_pts(ts);
            if self.verify.is_some() && !self.wanted(ts) {
                // A copied stream has no encoder to feed: only the frames the poster picker or
                // the sampler will look at go through the chain (which keeps timestamps as they
                // are for a copied stream: no frame-rate filter), so they are exactly the
                // re-encode path's; the others only keep the timeline.
                self.retime(ts);
                continue;
            }
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
        Ok(())
    }

    pub(super) fn drain_chain(&mut self, chain: &mut VideoChain) -> Result<(), MediaError> {
        let mut g = frame::Video::empty();
        while chain.pull(&mut g)? {
            self.filtered(&mut g)?;
        }
        Ok(())
    }

    /// The timestamp a frame with `pts` gets (a missing or non-increasing one is nudged one
    /// tick past the last), and its time from the first frame in ms, without taking it.
    fn peek_time(&self, pts: Option<i64>) -> (i64, f64) {
        let mut pts = pts.unwrap_or_else(|| self.last_pts.map_or(0, |l| l + 1));
        if let Some(l) = self.last_pts {
            if pts <= l {
                pts = l + 1;
            }
        }
        let first = self.first_pts.unwrap_or(pts);
        (pts, to_ms(pts - first, self.plan.time_base).max(0.0))
    }

    /// [`Pass::peek_time`], taking the frame's place on the timeline.
    fn retime(&mut self, pts: Option<i64>) -> (i64, f64) {
        let (pts, t_ms) = self.peek_time(pts);
        self.last_pts = Some(pts);
        self.first_pts.get_or_insert(pts);
        (pts, t_ms)
    }

    /// Whether the poster picker or the sampler would look at a frame with `pts`.
    fn wanted(&self, pts: Option<i64>) -> bool {
        let (_, t_ms) = self.peek_time(pts);
        self.picker.wants(t_ms) || self.sampler.as_ref().is_some_and(|s| s.wants(t_ms))
    }

    /// One upright, scaled frame: poster and sample candidates, then the encoder.
    pub(super) fn filtered(&mut self, g: &mut frame::Video) -> Result<(), MediaError> {
        let (pts, t_ms) = self.retime(g.pts());
        g.set_pts(Some(pts));
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
    pub(super) fn audio_packet(&mut self, packet: Option<&Packet>) -> Result<(), MediaError> {
        let (Some(audio), Some(mux)) = (self.audio.as_mut(), self.mux.as_mut()) else { return Ok(()) };
        let capture = self.capture;
        let deadline = self.deadline;
        let aerr = |e| video_error(capture, "the audio track", deadline, e);
        match packet {
            Some(p) => audio.dec.send_packet(p).map_err(aerr)?,
            None => audio.dec.send_eof().map_err(aerr)?,
        }
        let mut f = frame::Audio::empty();
        while received(audio.dec.receive_frame(&mut f)).map_err(aerr)? {
            capture.check_frame(&f, "the audio decoder");
            let rate = f.rate();
            if rate == 0 || f.channels() == 0 {
                return Err(MediaError::corrupt("the audio track has frames without a sample rate or channels"));
            }
            if let Some(ts) = f.timestamp().or(f.pts()) {
                let start = to_ms(ts, audio.time_base);
                self.span.add(start, start + f.samples() as f64 * 1000.0 / rate as f64);
            }
            if !self.copy_audio {
                audio.push(&mut f, mux)?;
            }
        }
        if packet.is_none() && !self.copy_audio {
            audio.finish(mux)?;
        }
        Ok(())
    }
}
