//! Perceptual hashes (PDQ, contract §5) of what the outputs show, and the renderings of a
//! transparent image that the classifier scores (§3).
//!
//! The rule behind both: what is hashed and scored is exactly what a recipient is shown — the
//! same decode, the same frame of an animation, the same orientation. So a photo's PDQ comes from
//! the one decode its outputs are made from, oriented, composited on white when it has
//! transparency; a video's from its poster and the frames its one decode pass sampled, at the
//! output's size.
//!
//! Why the decode and not the `thumb` it is cheaper to hash: PDQ's own blur and decimation to
//! 64×64 is part of the hash, and a hash of a 320-px Lanczos rendition lands 6 to 14 bits away
//! from the reference's hash of the decoded picture (tests/pdq.rs measured it), more than the
//! contract's 10. The luma is streamed row by row from the decoded layout (Y′CbCr's Y′ plane
//! directly: PDQ's luma, 0.299 R + 0.587 G + 0.114 B, is JFIF's Y′), orientation applied on the
//! fly, so no oriented or RGB copy of the picture is made.

use mediagate_hash::{add_luma_blocks, luma, pdq_rgb, pdq_rows, Hashed, Pdq};

use crate::raster::Pixels;
use crate::MediaError;

/// A still's PDQ with its quality and its 8 dihedral variants (rotations and mirrors, from the
/// same DCT), which bank matching also tries.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ImageHash {
    /// The hash of the image as shown.
    pub pdq: Pdq,
    /// PDQ's own quality metric, 0..=100 (below ~50 the hash says little: flat or tiny images).
    pub quality: u8,
    /// `[original, rotate 90, rotate 180, rotate 270, flip x, flip y, flip +1, flip −1]`.
    pub variants: [Pdq; 8],
}

impl ImageHash {
    fn from_hashed(h: &Hashed) -> ImageHash {
        ImageHash { pdq: h.hash, quality: h.quality, variants: h.dihedral() }
    }
}

/// One sampled video frame's PDQ (`pdq_frames` in the verdict).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FrameHash {
    /// The frame's time from the start, ms.
    pub ms: u64,
    /// The frame's PDQ.
    pub pdq: Pdq,
    /// Its quality, 0..=100.
    pub quality: u8,
}

fn pdq_error(e: mediagate_hash::PdqError) -> MediaError {
    MediaError::internal(format!("PDQ: {e}"))
}

/// The PDQ of packed RGB8 pixels (a video frame, a poster).
pub(crate) fn hash_rgb(width: u32, height: u32, rgb: &[u8]) -> Result<ImageHash, MediaError> {
    pdq_rgb(width, height, rgb).map(|h| ImageHash::from_hashed(&h)).map_err(pdq_error)
}

/// The PDQ of a frame, without variants (frames are matched as they are).
pub(crate) fn hash_frame(ms: u64, width: u32, height: u32, rgb: &[u8]) -> Result<FrameHash, MediaError> {
    let h = pdq_rgb(width, height, rgb).map_err(pdq_error)?;
    Ok(FrameHash { ms, pdq: h.hash, quality: h.quality })
}

/// The PDQ of decoded pixels as shown: oriented by EXIF orientation `o` (1..=8; 1 for HEIF, whose
/// transformations libheif applied), transparency on white.
pub(crate) fn hash_decoded(px: &Pixels, o: u8) -> Result<ImageHash, MediaError> {
    hash_decoded_with(px, o, true)
}

/// [`hash_decoded`], with the block-sum fast path allowed or not (its test compares the two).
fn hash_decoded_with(px: &Pixels, o: u8, fast: bool) -> Result<ImageHash, MediaError> {
    let (sw, sh) = match px {
        // The decoder pads planes to whole MCUs; the picture is the extent.
        Pixels::Yuv { y, .. } => (y.extent.0 as usize, y.extent.1 as usize),
        Pixels::Gray(p) | Pixels::Rgb(p) | Pixels::Rgba(p) => (p.width as usize, p.height as usize),
    };
    let o = if (2..=8).contains(&o) { o } else { 1 };
    let (dw, dh) = if crate::raster::transposes(o) { (sh, sw) } else { (sw, sh) };
    let source = move |x: usize, y: usize| crate::raster::stored_at(o, sw, sh, x, y);
    let white = |p: &[u8]| {
        let a = u32::from(p[3]);
        let mix = |c: u8| ((u32::from(c) * a + 255 * (255 - a) + 127) / 255) as u8;
        luma(mix(p[0]), mix(p[1]), mix(p[2]))
    };
    let (stride, channels, data) = match px {
        Pixels::Yuv { y, .. } => (y.width as usize, 1usize, y.data()),
        Pixels::Gray(p) => (p.width as usize, 1, p.data()),
        Pixels::Rgb(p) => (p.width as usize, 3, p.data()),
        Pixels::Rgba(p) => (p.width as usize, 4, p.data()),
    };
    let yuv = matches!(px, Pixels::Yuv { .. });
    let sample = |sx: usize, sy: usize| -> f32 {
        let i = (sy * stride + sx) * channels;
        match channels {
            1 if yuv => f32::from(data[i]),
            1 => luma(data[i], data[i], data[i]),
            3 => luma(data[i], data[i + 1], data[i + 2]),
            _ => white(&data[i..i + 4]),
        }
    };
    // A large picture is averaged in k×k blocks first (k = short edge / 1024, so at least 1024
    // px stay on the short edge): PDQ's own first step is a box blur of about 1/64 of the edge,
    // which such a pre-average barely changes (0 bits on every case of tests/pdq.rs), and the
    // filter then runs on k² times fewer samples — 12 MP costs ~15 ms instead of ~48.
    let k = (dw.min(dh) / PRE_AVERAGE_EDGE).max(1);
    let (hw, hh) = (dw / k, dh / k);
    let scale = 1.0 / (k * k) as f32;
    // A JPEG's luma plane stored as shown: each row of blocks summed in integers straight from
    // the plane's rows, with no per-pixel orientation or channel dispatch (that general loop was
    // a third of a 12 MP photo's instructions). The sums are exact, and so are the general
    // path's f32 sums of the same integer samples (below 2^24: at most 255 × k² for k ≤ 7), so
    // the hash is the same bit for bit.
    if fast && yuv && o == 1 && k > 1 {
        let mut sums = vec![0u32; hw];
        let hashed = pdq_rows(hw as u32, hh as u32, |r, row| {
            sums.iter_mut().for_each(|s| *s = 0);
            for y in r * k..r * k + k {
                add_block_sums(&mut sums, &data[y * stride..y * stride + hw * k], k);
            }
            for (out, &sum) in row.iter_mut().zip(&sums) {
                *out = sum as f32 * scale;
            }
        })
        .map_err(pdq_error)?;
        return Ok(ImageHash::from_hashed(&hashed));
    }
    // The same for a rotated or mirrored one (a phone's portrait JPEG): the blocks are summed in
    // stored order over the stored rectangle the shown blocks cover, then read in shown order.
    if fast && yuv && k > 1 {
        let (ax, ay) = source(0, 0);
        let (bx, by) = source(hw * k - 1, hh * k - 1);
        let (ox, oy) = (ax.min(bx), ay.min(by));
        let (gw, gh) = ((ax.max(bx) - ox + 1) / k, (ay.max(by) - oy + 1) / k);
        let mut grid = vec![0u32; gw * gh];
        for sy in 0..gh * k {
            let start = (oy + sy) * stride + ox;
            add_block_sums(&mut grid[(sy / k) * gw..(sy / k + 1) * gw], &data[start..start + gw * k], k);
        }
        let hashed = pdq_rows(hw as u32, hh as u32, |r, row| {
            for (x, out) in row.iter_mut().enumerate() {
                let (x0, y0) = source(x * k, r * k);
                let (x1, y1) = source(x * k + k - 1, r * k + k - 1);
                let (gx, gy) = ((x0.min(x1) - ox) / k, (y0.min(y1) - oy) / k);
                *out = grid[gy * gw + gx] as f32 * scale;
            }
        })
        .map_err(pdq_error)?;
        return Ok(ImageHash::from_hashed(&hashed));
    }
    // RGB or grey pixels stored as shown (PNG, WebP, HEIC after libheif's transformations) have
    // each row's blocks summed straight from the row, without the per-pixel orientation and
    // channel dispatch: the very f32 additions of the per-pixel loop, in the same order, so the
    // hash is the same bit for bit.
    let whole_rows = fast && !yuv && channels != 4 && o == 1;
    let mut acc = vec![0f32; if k > 1 { hw } else { 0 }];
    let hashed = pdq_rows(hw as u32, hh as u32, |r, row| {
        if k == 1 {
            for (x, out) in row.iter_mut().enumerate() {
                let (sx, sy) = source(x, r);
                *out = sample(sx, sy);
            }
            return;
        }
        acc.iter_mut().for_each(|a| *a = 0.0);
        for y in r * k..r * k + k {
            if whole_rows {
                let start = y * stride * channels;
                add_luma_blocks(&mut acc, &data[start..start + hw * k * channels], channels, k);
                continue;
            }
            for x in 0..hw * k {
                let (sx, sy) = source(x, y);
                acc[x / k] += sample(sx, sy);
            }
        }
        for (out, a) in row.iter_mut().zip(&acc) {
            *out = a * scale;
        }
    })
    .map_err(pdq_error)?;
    Ok(ImageHash::from_hashed(&hashed))
}

/// Adds each run of `k` samples of `line` to its block's sum.
fn add_block_sums(sums: &mut [u32], line: &[u8], k: usize) {
    for (sum, block) in sums.iter_mut().zip(line.chunks_exact(k)) {
        *sum += block.iter().map(|&v| u32::from(v)).sum::<u32>();
    }
}

/// Pictures whose short edge is at least twice this are block-averaged before PDQ (see
/// [`hash_decoded`]).
const PRE_AVERAGE_EDGE: usize = 1024;

/// Greyscale to RGB by repeating the sample (what Pillow's `convert("RGB")` does for `L`).
pub(crate) fn gray_to_rgb(gray: &[u8]) -> Vec<u8> {
    gray.iter().flat_map(|&g| [g, g, g]).collect()
}

/// RGBA composited over an opaque background of grey level `bg` (0 black, 255 white), rounded:
/// how a viewer shows a transparent image on that background.
pub(crate) fn composite(rgba: &[u8], bg: u8) -> Vec<u8> {
    let bg = u32::from(bg);
    let mut out = Vec::with_capacity(rgba.len() / 4 * 3);
    for p in rgba.chunks_exact(4) {
        let a = u32::from(p[3]);
        let mix = |c: u8| ((u32::from(c) * a + bg * (255 - a) + 127) / 255) as u8;
        out.extend_from_slice(&[mix(p[0]), mix(p[1]), mix(p[2])]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compositing_shows_the_pixel_over_its_background() {
        let px = [200, 100, 0, 255, 200, 100, 0, 0, 255, 255, 255, 128];
        assert_eq!(composite(&px, 0), vec![200, 100, 0, 0, 0, 0, 128, 128, 128]);
        assert_eq!(composite(&px, 255), vec![200, 100, 0, 255, 255, 255, 255, 255, 255]);
    }

    /// A picture drawn only in the alpha channel (colour all black) disappears on black and
    /// shows on white: the two renderings differ, and the hash sees the white one.
    #[test]
    fn a_picture_in_the_alpha_channel_is_hashed_as_shown_on_white() {
        let (w, h) = (64u32, 64u32);
        let mut rgba = Vec::new();
        for y in 0..h {
            for x in 0..w {
                let a = if (x / 8 + y / 8) % 2 == 0 { 255 } else { 0 };
                rgba.extend_from_slice(&[0, 0, 0, a]);
            }
        }
        let flat_black = vec![0u8; (w * h * 3) as usize];
        assert_eq!(composite(&rgba, 0), flat_black);
        let plane = crate::raster::Plane::tight(rgba.clone(), w, h, 4);
        let shown = hash_decoded(&Pixels::Rgba(plane), 1).unwrap();
        let expected = hash_rgb(w, h, &composite(&rgba, 255)).unwrap();
        assert_eq!(shown, expected);
        assert!(shown.quality > 0, "a checkerboard has gradients");
        assert_eq!(hash_rgb(w, h, &flat_black).unwrap().quality, 0);
    }

    /// Orientation applied on the fly gives the hash of the oriented copy, for every EXIF
    /// orientation and every layout.
    #[test]
    fn the_hash_of_a_stored_image_is_the_hash_of_it_as_shown() {
        let (w, h) = (97u32, 61u32);
        let rgb: Vec<u8> = (0..w * h)
            .flat_map(|i| {
                let (x, y) = (i % w, i / w);
                [(x * 7 + y * 3) as u8, (x * x / 13 + y) as u8, ((x ^ y) * 5) as u8]
            })
            .collect();
        let gray: Vec<u8> = rgb.chunks_exact(3).map(|p| p[1]).collect();
        let layouts = [
            Pixels::Rgb(crate::raster::Plane::tight(rgb.clone(), w, h, 3)),
            Pixels::Gray(crate::raster::Plane::tight(gray, w, h, 1)),
        ];
        for px in layouts {
            for o in 1..=8u8 {
                let shown = crate::raster::orient_pixels(px.clone(), o);
                let (sw, sh, data) = match &shown {
                    Pixels::Rgb(p) => (p.width, p.height, p.data().to_vec()),
                    Pixels::Gray(p) => (p.width, p.height, gray_to_rgb(p.data())),
                    _ => unreachable!(),
                };
                assert_eq!(hash_decoded(&px, o).unwrap(), hash_rgb(sw, sh, &data).unwrap(), "orientation {o}");
            }
        }
    }

    /// The block-sum fast paths of a large luma plane give the general path's hash bit for bit,
    /// in every orientation, on a plane wider than its picture (a decoder's padding) and edges
    /// that k does not divide.
    #[test]
    fn the_luma_fast_path_hashes_exactly_as_the_general_path() {
        for (w, h, stride) in [(2101u32, 2213u32, 2112u32), (4000, 3000, 4000), (3077, 6151, 3088)] {
            let luma: Vec<u8> = (0..stride * h)
                .map(|i| {
                    let (x, y) = (i % stride, i / stride);
                    ((x * 7 + y * 3) ^ (x * y / 97)) as u8
                })
                .collect();
            let mut y = crate::raster::Plane::tight(luma, stride, h, 1);
            y.extent = (f64::from(w), f64::from(h));
            let chroma = crate::raster::Plane::tight(vec![128; 4], 2, 2, 1);
            let px = Pixels::Yuv { y, cb: chroma.clone(), cr: chroma };
            for o in 1..=8u8 {
                let fast = hash_decoded_with(&px, o, true).unwrap();
                let general = hash_decoded_with(&px, o, false).unwrap();
                assert_eq!(fast, general, "{w}×{h} in rows of {stride}, orientation {o}");
                assert!(fast.quality > 0);
            }
        }
    }

    /// The same for RGB and grey pixels stored as shown (PNG, WebP, HEIC), on edges that k does
    /// not divide; a rotated picture takes the general path and gives the same as before.
    #[test]
    fn the_rgb_and_grey_fast_path_hashes_exactly_as_the_general_path() {
        for (w, h) in [(2101u32, 2213u32), (4000, 3000), (2049, 6151)] {
            let at = |x: u32, y: u32, c: u32| (((x * 7 + y * 3 + c * 50) ^ (x * y / 97)) % 256) as u8;
            let rgb: Vec<u8> = (0..w * h).flat_map(|i| (0..3).map(move |c| at(i % w, i / w, c))).collect();
            let grey: Vec<u8> = (0..w * h).map(|i| at(i % w, i / w, 1)).collect();
            for px in [
                Pixels::Rgb(crate::raster::Plane::tight(rgb.clone(), w, h, 3)),
                Pixels::Gray(crate::raster::Plane::tight(grey.clone(), w, h, 1)),
            ] {
                for o in [1u8, 6] {
                    let fast = hash_decoded_with(&px, o, true).unwrap();
                    let general = hash_decoded_with(&px, o, false).unwrap();
                    assert_eq!(fast, general, "{w}×{h}, orientation {o}");
                    assert!(fast.quality > 0);
                }
            }
        }
    }
}
