//! The output side: the input's audio decoded and resampled to AAC, libx264, and the fast-start
//! MP4 muxer.

use super::*;

/// The input's audio track, decoded and resampled for AAC.
pub(super) struct AudioIn {
    pub(super) index: usize,
    pub(super) time_base: Rational,
    pub(super) dec: codec::decoder::Audio,
    pub(super) chain: Option<AudioChain>,
    /// Output rate and layout (AAC encoder's).
    pub(super) rate: u32,
    pub(super) layout: ChannelLayout,
    /// Counted timeline origin, in 1/input-rate units.
    pub(super) started: bool,
    /// Subtracted from the input's timestamps (its time base): the start of a copied video's
    /// timeline, which becomes 0.
    pub(super) shift: i64,
}

impl AudioIn {
    pub(super) fn new(index: usize, time_base: Rational, par: codec::Parameters) -> Result<Self, MediaError> {
        let mut ctx =
            codec::context::Context::from_parameters(par).map_err(|e| internal_error("audio decoder context", e))?;
        ctx.set_threading(codec::threading::Config {
            kind: codec::threading::Type::None,
            count: 1,
            ..Default::default()
        });
        crate::av::ffi::set_decoder_fields(&mut ctx, time_base, None, None);
        allow_contract_decoders(&mut ctx)?;
        let dec = ctx.decoder().audio().map_err(|e| {
            MediaError::corrupt(format!("the audio track cannot be decoded ({e}); the file is damaged"))
        })?;
        let in_rate = dec.rate();
        const AAC_RATES: [u32; 9] = [8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000];
        let rate = if AAC_RATES.contains(&in_rate) { in_rate } else { 48_000 };
        let layout = if dec.channels() == 1 { ChannelLayout::MONO } else { ChannelLayout::STEREO };
        Ok(AudioIn { index, time_base, dec, chain: None, rate, layout, started: false, shift: 0 })
    }

    pub(super) fn spec(&self) -> String {
        let layout = if self.layout == ChannelLayout::MONO { "mono" } else { "stereo" };
        format!("aresample={r},aformat=sample_fmts=fltp:sample_rates={r}:channel_layouts={layout}", r = self.rate)
    }

    pub(super) fn push(&mut self, f: &mut frame::Audio, mux: &mut Mux) -> Result<(), MediaError> {
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
                let start = f.timestamp().or(f.pts()).unwrap_or(0) - self.shift;
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

    pub(super) fn finish(&mut self, mux: &mut Mux) -> Result<(), MediaError> {
        if let Some(mut c) = self.chain.take() {
            c.flush()?;
            mux.audio_from(&mut c)?;
        }
        Ok(())
    }
}

/// The AAC encoder and the FIFO that cuts its 1024-sample frames (planar f32).
pub(super) struct AacOut {
    pub(super) enc: codec::encoder::Audio,
    /// Encoder time base (1/rate) and the MP4 stream's.
    pub(super) tb: Rational,
    pub(super) st_tb: Rational,
    pub(super) layout: ChannelLayout,
    pub(super) rate: u32,
    pub(super) fifo: Vec<Vec<f32>>,
    /// Timestamp of the FIFO's first sample, in `tb`.
    pub(super) next_pts: Option<i64>,
}

/// A stream copied from the input: its packets' time base in and out, and the shift that puts
/// the copied timeline's start at 0 (in the input's time base).
pub(super) struct Copied {
    pub(super) in_tb: Rational,
    pub(super) st_tb: Rational,
    pub(super) shift: i64,
    pub(super) stream: usize,
}

impl Copied {
    /// Retimes a packet of the input for the output stream.
    fn retime(&self, p: &mut Packet) {
        if let Some(pts) = p.pts() {
            p.set_pts(Some(pts - self.shift));
        }
        if let Some(dts) = p.dts() {
            p.set_dts(Some(dts - self.shift));
        }
        p.set_position(-1);
        p.set_stream(self.stream);
        p.rescale_ts(self.in_tb, self.st_tb);
    }
}

/// Adds an output stream that carries copied packets: the input's codec parameters (`par`), no
/// codec tag (the MP4 muxer picks its own), the input's time base.
fn copied_stream(
    octx: &mut Output,
    par: &crate::av::ffi::AVCodecParameters,
    time_base: Rational,
    what: &str,
) -> Result<(), MediaError> {
    let mut ost = octx
        .add_stream(None::<ffmpeg::Codec>)
        .map_err(|e| internal_error(&format!("MP4 stream for the copied {what}"), e))?;
    crate::av::ffi::copy_parameters_to_stream(&mut ost, par)
        .map_err(|e| internal_error(&format!("copying the {what} parameters"), e))?;
    ost.set_time_base(time_base);
    Ok(())
}

/// libx264 (+ AAC), or the copied streams, into a fast-start MP4 written to memory.
pub(super) struct Mux {
    pub(super) octx: Output,
    /// Where `octx` writes; declared after it, so it outlives it.
    file: MemFile,
    /// The H.264 encoder, unless the video is copied.
    pub(super) venc: Option<codec::encoder::Video>,
    pub(super) venc_tb: Rational,
    pub(super) vst_tb: Rational,
    /// The copied video: its SEI filter and timing.
    pub(super) vcopy: Option<(SeiFilter, Copied)>,
    pub(super) aac: Option<AacOut>,
    /// The copied AAC track.
    pub(super) acopy: Option<Copied>,
    /// The last frame received, held until the next one tells how long it lasts.
    pending: Option<frame::Video>,
    /// Each sent frame's duration by pts (encoder time base), for its packet: libx264 does not
    /// pass durations on, and without them the MP4's last sample would have none, so its edit
    /// list would end before the last frame of a variable-frame-rate clip.
    durations: std::collections::HashMap<i64, i64>,
    last_duration: i64,
}

impl Mux {
    pub(super) fn new(plan: &Plan, s: &VideoSettings, audio: Option<&AudioIn>) -> Result<Self, MediaError> {
        let fail = |what: &'static str| move |e: ffmpeg::Error| internal_error(what, e);
        let (mut octx, file) = MemFile::mp4()?;
        crate::av::ffi::set_bitexact(&mut octx);

        let (venc, sei) = if plan.copy.video() {
            let sei = SeiFilter::new(&plan.video_par, plan.time_base)?;
            copied_stream(&mut octx, sei.parameters(), plan.time_base, "H.264")?;
            (None, Some(sei))
        } else {
            (Some(Self::x264(plan, s, &mut octx)?), None)
        };
        let audio_index = 1;

        let aenc = match audio {
            Some(a) if plan.copy.audio() => {
                let par =
                    plan.audio_par.as_ref().ok_or_else(|| MediaError::internal("copied audio without parameters"))?;
                copied_stream(&mut octx, crate::av::ffi::codec_parameters(par), a.time_base, "AAC")?;
                None
            }
            Some(a) => Some(Self::aac(a, s, &mut octx)?),
            None => None,
        };

        let mut opts = ffmpeg::Dictionary::new();
        opts.set("movflags", "+faststart");
        octx.write_header_with(opts).map_err(fail("MP4 header"))?;
        let vst_tb = octx.stream(0).ok_or_else(|| MediaError::internal("MP4 stream vanished"))?.time_base();
        let ast_tb = octx.stream(audio_index).map(|st| st.time_base());
        let vcopy =
            sei.map(|sei| (sei, Copied { in_tb: plan.time_base, st_tb: vst_tb, shift: plan.origin, stream: 0 }));
        let acopy = match (audio, ast_tb) {
            (Some(a), Some(st_tb)) if plan.copy.audio() => Some(Copied {
                in_tb: a.time_base,
                st_tb,
                // The copied sound moves with a copied video's timeline; beside a re-encoded
                // video (which keeps the input's timestamps) it keeps its own.
                shift: if plan.copy.video() {
                    ffmpeg::rescale::Rescale::rescale(&plan.origin, plan.time_base, a.time_base)
                } else {
                    0
                },
                stream: audio_index,
            }),
            _ => None,
        };
        let aac = match (aenc, ast_tb) {
            (Some((enc, tb, layout, rate)), Some(st_tb)) => {
                let channels = layout.channels().max(1) as usize;
                Some(AacOut { enc, tb, st_tb, layout, rate, fifo: vec![Vec::new(); channels], next_pts: None })
            }
            _ => None,
        };
        Ok(Mux {
            octx,
            file,
            venc,
            venc_tb: plan.time_base,
            vst_tb,
            vcopy,
            aac,
            acopy,
            pending: None,
            durations: std::collections::HashMap::new(),
            last_duration: 0,
        })
    }

    /// libx264 at the output size, tagged BT.709 SDR, and its MP4 stream.
    fn x264(plan: &Plan, s: &VideoSettings, octx: &mut Output) -> Result<codec::encoder::Video, MediaError> {
        let fail = |what: &'static str| move |e: ffmpeg::Error| internal_error(what, e);
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
        // The chain outputs BT.709 SDR (tone-mapped when the source is HDR): say so in the VUI.
        enc.set_colorspace(ffmpeg::color::Space::BT709);
        crate::av::ffi::set_bt709_primaries_and_transfer(&mut enc);
        enc.set_flags(codec::flag::Flags::GLOBAL_HEADER | codec::flag::Flags::BITEXACT);
        let mut opts = ffmpeg::Dictionary::new();
        opts.set("preset", s.preset.as_str());
        opts.set("crf", &s.crf.to_string());
        // The lookahead runs in step with the encode, not on a thread of its own: with its own
        // thread, what it has analysed when a frame's type and macroblock tree are decided
        // depends on timing, and the bytes with it (a 160x120 clip through the ffmpeg CLI on a
        // busy machine: 9 different outputs in 25 runs, 1 in 25 this way). Where that thread
        // kept up (unloaded: 26 of 27 test clips) the bytes are the same either way. Through the
        // worker's path (a fresh sandbox process per item) a real 160x120 slow-motion clip gave
        // 3 versions in 15 runs beside a busy process before, 1 in 15 after (also beside two).
        // Not the whole story: encoded 16 times in a row in one process beside two busy ones,
        // it still comes out in several versions from identical input frames, even with one
        // encoder thread, which the ffmpeg CLI does not do; not yet explained.
        opts.set("x264-params", "sync-lookahead=0");
        let venc = enc
            .open_as_with(x264, opts)
            .map_err(|e| MediaError::internal(format!("opening libx264 (preset {}, crf {}): {e}", s.preset, s.crf)))?;
        {
            let mut ost = octx.add_stream(x264).map_err(fail("MP4 video stream"))?;
            ost.set_parameters(&venc);
            ost.set_time_base(plan.time_base);
        }
        Ok(venc)
    }

    /// The AAC encoder for the input's sound, and its MP4 stream.
    #[allow(clippy::type_complexity)]
    fn aac(
        a: &AudioIn,
        s: &VideoSettings,
        octx: &mut Output,
    ) -> Result<(codec::encoder::Audio, Rational, ChannelLayout, u32), MediaError> {
        let fail = |what: &'static str| move |e: ffmpeg::Error| internal_error(what, e);
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
        Ok((enc, Rational::new(1, a.rate as i32), a.layout, a.rate))
    }

    /// Writes a packet of the copied video with its SEI removed (`None`: the end, flushing the
    /// filter).
    pub(super) fn copy_video(&mut self, p: Option<&Packet>) -> Result<(), MediaError> {
        let Some((sei, timing)) = self.vcopy.as_mut() else { return Ok(()) };
        let octx = &mut self.octx;
        sei.filter(p, |q| {
            timing.retime(q);
            q.write_interleaved(octx).map_err(|e| internal_error("writing the output file", e))
        })
    }

    /// Writes a packet of the copied sound.
    pub(super) fn copy_audio(&mut self, p: &Packet) -> Result<(), MediaError> {
        let Some(timing) = self.acopy.as_ref() else { return Ok(()) };
        let mut q = p.clone();
        timing.retime(&mut q);
        q.write_interleaved(&mut self.octx).map_err(|e| internal_error("writing the output file", e))
    }

    /// Takes a frame (`None`: end of stream; the frame is moved out, `f` is left empty), encodes
    /// the one before it now that its duration is known, and writes what the encoder has ready.
    pub(super) fn video_frame(&mut self, f: Option<&mut frame::Video>) -> Result<(), MediaError> {
        let fail = |e| internal_error("H.264 encoder", e);
        let Some(venc) = self.venc.as_mut() else { return Ok(()) };
        let next = f.map(|f| std::mem::replace(f, frame::Video::empty()));
        if let Some(prev) = self.pending.take() {
            let pts = prev.pts().unwrap_or(0);
            let duration = match next.as_ref().and_then(|n| n.pts()) {
                Some(n) if n > pts => n - pts,
                // The last frame lasts as long as its source packet said, else as the one before.
                _ => Some(prev.packet().duration).filter(|d| *d > 0).unwrap_or(self.last_duration).max(1),
            };
            self.last_duration = duration;
            self.durations.insert(pts, duration);
            venc.send_frame(&prev).map_err(fail)?;
        }
        match next {
            Some(n) => self.pending = Some(n),
            None => venc.send_eof().map_err(fail)?,
        }
        let mut p = Packet::empty();
        while received(venc.receive_packet(&mut p)).map_err(fail)? {
            if let Some(d) = p.pts().and_then(|pts| self.durations.remove(&pts)) {
                if p.duration() <= 0 {
                    p.set_duration(d);
                }
            }
            p.set_stream(0);
            p.rescale_ts(self.venc_tb, self.vst_tb);
            p.write_interleaved(&mut self.octx).map_err(|e| internal_error("writing the output file", e))?;
        }
        Ok(())
    }

    /// Pulls ready frames out of a chain into the FIFO and encodes every whole AAC frame.
    pub(super) fn audio_from(&mut self, chain: &mut AudioChain) -> Result<(), MediaError> {
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
    pub(super) fn encode_fifo(&mut self, last: bool) -> Result<(), MediaError> {
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

    pub(super) fn audio_packets(&mut self) -> Result<(), MediaError> {
        let Some(aac) = self.aac.as_mut() else { return Ok(()) };
        write_ready(&mut aac.enc, 1, (aac.tb, aac.st_tb), &mut self.octx, "AAC encoder")
    }

    /// Flushes the encoders, writes the trailer (fast-start rewrite) and returns the MP4.
    pub(super) fn finish(mut self, audio: Option<&mut AudioIn>, deadline: &Deadline) -> Result<Vec<u8>, MediaError> {
        if let Some(a) = audio {
            a.finish(&mut self)?;
        }
        deadline.check()?;
        self.video_frame(None)?;
        self.copy_video(None)?;
        self.encode_fifo(true)?;
        if let Some(aac) = self.aac.as_mut() {
            aac.enc.send_eof().map_err(|e| internal_error("AAC encoder", e))?;
            self.audio_packets()?;
        }
        deadline.check()?;
        self.octx.write_trailer().map_err(|e| internal_error("MP4 trailer", e))?;
        let Mux { octx, file, .. } = self;
        drop(octx);
        Ok(file.into_bytes())
    }
}
