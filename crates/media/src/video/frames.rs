//! Frames picked from the pass: the poster, the classifier's samples, and their RGB, JPEG and
//! BlurHash renderings.

use super::*;

/// Picks the poster: see the module docs.
pub(super) struct PosterPicker {
    pub(super) next_ms: f64,
    pub(super) seen: usize,
    pub(super) chosen: Option<(f64, frame::Video)>,
    pub(super) best: Option<(f64, f64, frame::Video)>,
}

impl PosterPicker {
    const CANDIDATES: usize = 5;

    pub(super) fn new(target_ms: f64) -> Self {
        PosterPicker { next_ms: target_ms.max(0.0), seen: 0, chosen: None, best: None }
    }

    /// Whether [`PosterPicker::offer`] would look at a frame at `t_ms`.
    pub(super) fn wants(&self, t_ms: f64) -> bool {
        self.chosen.is_none() && (t_ms >= self.next_ms || self.best.is_none())
    }

    pub(super) fn offer(&mut self, f: &frame::Video, t_ms: f64) {
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

    pub(super) fn finish(self) -> Option<(f64, frame::Video)> {
        self.chosen.or(self.best.map(|(_, t, f)| (t, f)))
    }
}

/// Mean and standard deviation of the luma plane (every 4th pixel of every 4th row).
pub(super) fn luma_stats(f: &frame::Video) -> (f64, f64) {
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
pub(super) struct Sampler {
    pub(super) cfg: FrameSampling,
    pub(super) times: Vec<f64>,
    pub(super) next: usize,
    pub(super) frames: Vec<RgbFrame>,
    /// PDQ of each sampled frame at the output's size (what a recipient sees), not of the
    /// smaller rendition the classifier takes: PDQ's own downscale is part of the hash.
    pub(super) hashes: Vec<FrameHash>,
}

impl Sampler {
    pub(super) fn new(cfg: FrameSampling, video_ms: u64) -> Self {
        let times = cfg.times(video_ms);
        Sampler { cfg, times, next: 0, frames: Vec::new(), hashes: Vec::new() }
    }

    /// Whether [`Sampler::offer`] would keep a frame at `t_ms`.
    pub(super) fn wants(&self, t_ms: f64) -> bool {
        self.times.get(self.next).is_some_and(|&due| t_ms >= due)
    }

    pub(super) fn offer(&mut self, f: &frame::Video, t_ms: f64, out: (u32, u32)) -> Result<(), MediaError> {
        if !self.wants(t_ms) {
            return Ok(());
        }
        // One frame stands for every time it reached (a clip with fewer frames than times).
        while self.times.get(self.next).is_some_and(|&due| due <= t_ms) {
            self.next += 1;
        }
        let (w, h) = crate::photo::fit(out.0, out.1, self.cfg.max_edge);
        let shown = to_rgb(f, out.0, out.1, t_ms, false)?;
        self.hashes.push(crate::fingerprint::hash_frame(shown.timestamp_ms, shown.width, shown.height, &shown.data)?);
        self.frames.push(if (w, h) == out { shown } else { to_rgb(f, w, h, t_ms, false)? });
        Ok(())
    }
}

/// YUV frame → packed RGB8 at `w`×`h`, with the frame's own matrix and range.
pub(super) fn to_rgb(f: &frame::Video, w: u32, h: u32, t_ms: f64, poster: bool) -> Result<RgbFrame, MediaError> {
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
    crate::av::ffi::set_scaler_colorspace(&mut sws, f.color_space(), f.color_range() == ffmpeg::color::Range::JPEG);
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

pub(super) fn encode_poster(rgb: &RgbFrame, quality: u8) -> Result<Encoded, MediaError> {
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
pub(super) fn blurhash_of(rgb: &RgbFrame) -> Result<String, MediaError> {
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
