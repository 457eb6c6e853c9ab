//! Pixel planes and the operations the photo pipeline does on them: resize (fast_image_resize),
//! EXIF orientation, and the tiny RGBA downscale for BlurHash.
//!
//! JPEG sources stay in Y′CbCr planes from decode to encode (no upsampling, no colour
//! conversion either way): libjpeg-turbo decodes straight to planes, the planes are resized one
//! by one (the chroma planes are a quarter of the luma for 4:2:0), and the encoder takes planes.
//! That removes the decoder's upsampling + colour conversion, the encoder's colour conversion +
//! downsampling, and half of the resize work compared with an RGB pipeline.

use std::sync::Arc;

use fast_image_resize::images::{Image, ImageRef};
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};

use crate::MediaError;

/// One 8-bit plane (1, 3 or 4 interleaved channels), tightly packed within `buf[offset..]`.
///
/// `extent` is the part of the plane, in its own pixels, that covers the image: the decoder pads
/// planes to whole MCUs (a 4001-px-wide 4:2:0 JPEG has a 4002-px Y plane and a 2001-px chroma
/// plane covering 2000.5 px of image), and resizing from the exact extent keeps luma and
/// chroma aligned. The buffer is shared so the three planes of one decode need no copies.
#[derive(Clone)]
pub(crate) struct Plane {
    buf: Arc<Vec<u8>>,
    offset: usize,
    pub width: u32,
    pub height: u32,
    pub channels: u8,
    pub extent: (f64, f64),
}

impl Plane {
    /// A plane that owns its buffer and whose extent is all of it.
    pub fn tight(data: Vec<u8>, width: u32, height: u32, channels: u8) -> Plane {
        Plane { buf: Arc::new(data), offset: 0, width, height, channels, extent: (width as f64, height as f64) }
    }

    /// A plane inside a shared buffer (decoder output).
    pub fn shared(buf: &Arc<Vec<u8>>, offset: usize, width: u32, height: u32, extent: (f64, f64)) -> Plane {
        Plane { buf: Arc::clone(buf), offset, width, height, channels: 1, extent }
    }

    pub fn len(&self) -> usize {
        self.width as usize * self.height as usize * self.channels as usize
    }

    pub fn data(&self) -> &[u8] {
        &self.buf[self.offset..self.offset + self.len()]
    }

    fn pixel_type(&self) -> Result<PixelType, MediaError> {
        match self.channels {
            1 => Ok(PixelType::U8),
            3 => Ok(PixelType::U8x3),
            4 => Ok(PixelType::U8x4),
            n => Err(MediaError::internal(format!("no resize for {n}-channel planes"))),
        }
    }
}

/// Decoded or resized pixels, in one of the layouts the pipeline keeps.
#[derive(Clone)]
pub(crate) enum Pixels {
    /// JPEG Y′CbCr planes at any chroma subsampling (decoded) or 4:2:0 (resized).
    Yuv { y: Plane, cb: Plane, cr: Plane },
    /// One luma plane: greyscale JPEG, PNG, …
    Gray(Plane),
    /// Interleaved RGB.
    Rgb(Plane),
    /// Interleaved RGBA with at least one pixel that is not fully opaque (so the output is PNG).
    Rgba(Plane),
}

impl Pixels {
    pub fn is_gray(&self) -> bool {
        matches!(self, Pixels::Gray(_))
    }
}

/// The filter for both variants: Lanczos3, as libvips' `thumbnail` uses.
pub(crate) const FILTER: ResizeAlg = ResizeAlg::Convolution(FilterType::Lanczos3);

/// Resizes one plane's extent to `w`×`h`. Same size and full extent is a plain copy.
pub(crate) fn resize_plane(
    resizer: &mut Resizer,
    src: &Plane,
    w: u32,
    h: u32,
    alg: ResizeAlg,
) -> Result<Plane, MediaError> {
    let pt = src.pixel_type()?;
    let src_img = ImageRef::new(src.width, src.height, src.data(), pt)
        .map_err(|e| MediaError::internal(format!("resize source: {e}")))?;
    let mut dst = Image::new(w, h, pt);
    let mut opts = ResizeOptions::new().resize_alg(alg);
    if src.extent != (src.width as f64, src.height as f64) {
        opts = opts.crop(0.0, 0.0, src.extent.0, src.extent.1);
    }
    resizer.resize(&src_img, &mut dst, &opts).map_err(|e| MediaError::internal(format!("resize: {e}")))?;
    Ok(Plane::tight(dst.into_vec(), w, h, src.channels))
}

/// Resizes an image to `w`×`h`; Y′CbCr comes out 4:2:0 (chroma planes ⌈w/2⌉×⌈h/2⌉ covering
/// exactly w/2 × h/2), whatever its subsampling going in.
pub(crate) fn resize_pixels(
    resizer: &mut Resizer,
    px: &Pixels,
    w: u32,
    h: u32,
    alg: ResizeAlg,
) -> Result<Pixels, MediaError> {
    Ok(match px {
        Pixels::Yuv { y, cb, cr } => {
            let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
            let mut cb = resize_plane(resizer, cb, cw, ch, alg)?;
            let mut cr = resize_plane(resizer, cr, cw, ch, alg)?;
            cb.extent = (w as f64 / 2.0, h as f64 / 2.0);
            cr.extent = cb.extent;
            Pixels::Yuv { y: resize_plane(resizer, y, w, h, alg)?, cb, cr }
        }
        Pixels::Gray(p) => Pixels::Gray(resize_plane(resizer, p, w, h, alg)?),
        Pixels::Rgb(p) => Pixels::Rgb(resize_plane(resizer, p, w, h, alg)?),
        Pixels::Rgba(p) => Pixels::Rgba(resize_plane(resizer, p, w, h, alg)?),
    })
}

/// Whether EXIF orientation `o` swaps width and height (5..=8).
pub(crate) fn transposes(o: u8) -> bool {
    (5..=8).contains(&o)
}

/// Applies EXIF orientation `o` to every plane (a no-op for 1 or an unknown value).
pub(crate) fn orient_pixels(px: Pixels, o: u8) -> Pixels {
    if !(2..=8).contains(&o) {
        return px;
    }
    match px {
        Pixels::Yuv { y, cb, cr } => {
            Pixels::Yuv { y: orient_plane(&y, o), cb: orient_plane(&cb, o), cr: orient_plane(&cr, o) }
        }
        Pixels::Gray(p) => Pixels::Gray(orient_plane(&p, o)),
        Pixels::Rgb(p) => Pixels::Rgb(orient_plane(&p, o)),
        Pixels::Rgba(p) => Pixels::Rgba(orient_plane(&p, o)),
    }
}

fn orient_plane(p: &Plane, o: u8) -> Plane {
    let data = match p.channels {
        1 => orient_typed::<1>(p, o),
        3 => orient_typed::<3>(p, o),
        _ => orient_typed::<4>(p, o),
    };
    let (w, h, extent) =
        if transposes(o) { (p.height, p.width, (p.extent.1, p.extent.0)) } else { (p.width, p.height, p.extent) };
    let mut out = Plane::tight(data, w, h, p.channels);
    out.extent = extent;
    out
}

/// Where the pixel shown at (`x`, `y`) is stored, in a `sw`×`sh` image of EXIF orientation `o`
/// (1 or an unknown value: where it is shown).
pub(crate) fn stored_at(o: u8, sw: usize, sh: usize, x: usize, y: usize) -> (usize, usize) {
    match o {
        2 => (sw - 1 - x, y),
        3 => (sw - 1 - x, sh - 1 - y),
        4 => (x, sh - 1 - y),
        5 => (y, x),
        6 => (y, sh - 1 - x),
        7 => (sw - 1 - y, sh - 1 - x),
        8 => (sw - 1 - y, x),
        _ => (x, y),
    }
}

/// Destination-order copy in 64×64 tiles so the transposing orientations stay cache-friendly.
fn orient_typed<const C: usize>(p: &Plane, o: u8) -> Vec<u8> {
    let src = p.data();
    let (sw, sh) = (p.width as usize, p.height as usize);
    let (dw, dh) = if transposes(o) { (sh, sw) } else { (sw, sh) };
    let mut dst = vec![0u8; dw * dh * C];
    const T: usize = 64;
    for ty in (0..dh).step_by(T) {
        for tx in (0..dw).step_by(T) {
            for y in ty..(ty + T).min(dh) {
                let row = &mut dst[y * dw * C..(y + 1) * dw * C];
                for x in tx..(tx + T).min(dw) {
                    let (sx, sy) = stored_at(o, sw, sh, x, y);
                    let s = (sy * sw + sx) * C;
                    row[x * C..x * C + C].copy_from_slice(&src[s..s + C]);
                }
            }
        }
    }
    dst
}

/// A `w`×`h` RGBA rendition (for BlurHash), converting Y′CbCr with the JFIF (full-range BT.601)
/// equations libjpeg uses.
pub(crate) fn tiny_rgba(resizer: &mut Resizer, px: &Pixels, w: u32, h: u32) -> Result<Vec<u8>, MediaError> {
    let alg = ResizeAlg::Convolution(FilterType::Bilinear);
    let n = w as usize * h as usize;
    let mut out = Vec::with_capacity(n * 4);
    match px {
        Pixels::Yuv { y, cb, cr } => {
            let y = resize_plane(resizer, y, w, h, alg)?;
            let cb = resize_plane(resizer, cb, w, h, alg)?;
            let cr = resize_plane(resizer, cr, w, h, alg)?;
            for ((&y, &cb), &cr) in y.data().iter().zip(cb.data()).zip(cr.data()) {
                let (y, cb, cr) = (y as f32, cb as f32 - 128.0, cr as f32 - 128.0);
                let clamp = |v: f32| v.round().clamp(0.0, 255.0) as u8;
                out.extend_from_slice(&[
                    clamp(y + 1.402 * cr),
                    clamp(y - 0.344_136 * cb - 0.714_136 * cr),
                    clamp(y + 1.772 * cb),
                    255,
                ]);
            }
        }
        Pixels::Gray(p) => {
            for &g in resize_plane(resizer, p, w, h, alg)?.data() {
                out.extend_from_slice(&[g, g, g, 255]);
            }
        }
        Pixels::Rgb(p) => {
            for c in resize_plane(resizer, p, w, h, alg)?.data().chunks_exact(3) {
                out.extend_from_slice(&[c[0], c[1], c[2], 255]);
            }
        }
        Pixels::Rgba(p) => out.extend_from_slice(resize_plane(resizer, p, w, h, alg)?.data()),
    }
    Ok(out)
}

/// Copies a plane into a `pw`×`ph` buffer (pw ≥ width, ph ≥ height), replicating the last
/// column and row: libjpeg-turbo reads 4:2:0 luma in whole 2×2 blocks.
pub(crate) fn pad_plane(p: &Plane, pw: u32, ph: u32) -> Vec<u8> {
    let (w, h, pw, ph) = (p.width as usize, p.height as usize, pw as usize, ph as usize);
    let src = p.data();
    let mut out = Vec::with_capacity(pw * ph);
    for y in 0..ph {
        let row = &src[y.min(h - 1) * w..y.min(h - 1) * w + w];
        out.extend_from_slice(row);
        out.resize(out.len() + (pw - w), row[w - 1]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orientations_map_corners() {
        // 3×2 plane with distinct values; check where the top-left source pixel lands.
        let p = Plane::tight(vec![1, 2, 3, 4, 5, 6], 3, 2, 1);
        let o6 = orient_plane(&p, 6);
        assert_eq!((o6.width, o6.height), (2, 3));
        assert_eq!(o6.data(), &[4, 1, 5, 2, 6, 3]); // 90° clockwise
        let o8 = orient_plane(&p, 8);
        assert_eq!(o8.data(), &[3, 6, 2, 5, 1, 4]); // 90° counter-clockwise
        assert_eq!(orient_plane(&p, 3).data(), &[6, 5, 4, 3, 2, 1]);
        assert_eq!(orient_plane(&p, 2).data(), &[3, 2, 1, 6, 5, 4]);
        assert_eq!(orient_plane(&p, 4).data(), &[4, 5, 6, 1, 2, 3]);
        assert_eq!(orient_plane(&p, 5).data(), &[1, 4, 2, 5, 3, 6]);
        assert_eq!(orient_plane(&p, 7).data(), &[6, 3, 5, 2, 4, 1]);
    }

    #[test]
    fn pad_replicates_edges() {
        let p = Plane::tight(vec![1, 2, 3, 4, 5, 6], 3, 2, 1);
        assert_eq!(pad_plane(&p, 4, 3), vec![1, 2, 3, 3, 4, 5, 6, 6, 4, 5, 6, 6]);
    }
}

/// Outputs must be byte-identical on every worker (a redelivery may land on another host), and
/// fast_image_resize picks its SIMD code path per CPU at run time: check that the paths agree.
#[cfg(test)]
mod determinism {
    use super::*;
    use fast_image_resize::CpuExtensions;

    #[test]
    #[allow(unsafe_code)] // fast_image_resize's switch between CPU extensions is `unsafe`
    fn resize_is_identical_across_cpu_extensions() {
        let mut s = 1u32;
        for (channels, w, h, dw, dh) in
            [(1u8, 997, 601, 512, 308), (3, 640, 480, 320, 240), (4, 333, 222, 100, 67), (1, 4000, 30, 2048, 15)]
        {
            let data: Vec<u8> = (0..w * h * channels as u32)
                .map(|_| {
                    s ^= s << 13;
                    s ^= s >> 17;
                    s ^= s << 5;
                    s as u8
                })
                .collect();
            let mut p = Plane::tight(data, w, h, channels);
            p.extent = (w as f64 - 0.5, h as f64);
            let mut outs = Vec::new();
            for ext in [CpuExtensions::None, CpuExtensions::Sse4_1, CpuExtensions::Avx2] {
                if !ext.is_supported() {
                    continue;
                }
                let mut r = Resizer::new();
                // SAFETY: only extensions this CPU reports as supported are selected.
                unsafe { r.set_cpu_extensions(ext) };
                outs.push((ext, resize_plane(&mut r, &p, dw, dh, FILTER).unwrap().data().to_vec()));
            }
            for o in &outs[1..] {
                assert!(o.1 == outs[0].1, "{:?} differs from {:?} for {channels} channels", o.0, outs[0].0);
            }
        }
    }
}
