//! A port of Pillow's `ImagingResample` (libImaging/Resample.c, Pillow 13.0.0) for 8-bit RGB and
//! the BILINEAR filter: the resize the reference preprocessing does with
//! `img.resize((256, 256), Image.Resampling.BILINEAR)`.
//!
//! Why a port and not a resize crate: open_nsfw scores move by up to ~0.04 when the 256x256
//! pixels differ by a single level (seen with `image`'s Triangle filter), and the contract wants
//! the reference's scores. Every detail below is Pillow's and matters for bit-exactness:
//! - the filter is a triangle of support 1 stretched by the scale when downscaling (antialias);
//! - coefficients are computed in f64 per output pixel, normalised to sum 1, then rounded to
//!   22-bit fixed point (`PRECISION_BITS = 32 - 8 - 2`);
//! - sums start at half a unit (rounding) and are clipped to 0..=255 after `>> 22`;
//! - two separable passes with an 8-bit intermediate image, horizontal first, except (as the
//!   pinned Pillow 13.0.0 does) when the height shrinks by more than twice as
//!   much as the width, when the vertical pass runs first — the intermediate rounding differs, so
//!   the order matters for tall images; with horizontal first, only the source rows the
//!   vertical pass reads are resampled horizontally;
//! - a resize to the same size is a plain copy.

/// Fixed-point precision of the coefficients (Pillow: `32 - 8 - 2`).
const PRECISION_BITS: u32 = 22;

/// Pillow's bilinear (triangle) filter, support 1.
#[inline]
fn bilinear_filter(x: f64) -> f64 {
    let x = x.abs();
    if x < 1.0 {
        1.0 - x
    } else {
        0.0
    }
}

/// Per-output-pixel filter windows along one axis: `bounds[i] = (first input index, count)` and
/// `ksize` fixed-point coefficients per output pixel (the unused tail is zero).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Coeffs {
    pub(crate) ksize: usize,
    pub(crate) bounds: Vec<(usize, usize)>,
    pub(crate) kk: Vec<i32>,
}

/// `precompute_coeffs` + `normalize_coeffs_8bpc` for the whole input range (`box` = 0..in_size).
pub(crate) fn precompute_coeffs(in_size: usize, out_size: usize) -> Coeffs {
    // Pillow passes the box edges as C floats; `in1 - in0` is a float subtraction, then widened.
    let (in0, in1) = (0.0f32, in_size as f32);
    let scale = f64::from(in1 - in0) / out_size as f64;
    let filterscale = if scale < 1.0 { 1.0 } else { scale };
    let support = 1.0 * filterscale; // BILINEAR support is 1.0
    let ksize = support.ceil() as usize * 2 + 1;
    let inv_filterscale = 1.0 / filterscale;

    let mut bounds = Vec::with_capacity(out_size);
    let mut kk = vec![0i32; out_size * ksize];
    let mut k = vec![0f64; ksize];
    for xx in 0..out_size {
        let center = f64::from(in0) + (xx as f64 + 0.5) * scale;
        // C's `(int)` truncates toward zero, as `as i64` does.
        let xmin = ((center - support + 0.5) as i64).max(0);
        let xmax = ((center + support + 0.5) as i64).min(in_size as i64) - xmin;
        let (xmin, n) = (xmin as usize, xmax.max(0) as usize);
        let mut ww = 0.0f64;
        for (x, kx) in k.iter_mut().enumerate().take(n) {
            let w = bilinear_filter(((x + xmin) as f64 - center + 0.5) * inv_filterscale);
            *kx = w;
            ww += w;
        }
        for (x, kx) in k.iter().enumerate().take(n) {
            let v = if ww != 0.0 { kx / ww } else { *kx };
            let scaled = v * f64::from(1u32 << PRECISION_BITS);
            kk[xx * ksize + x] = if v < 0.0 { (-0.5 + scaled) as i32 } else { (0.5 + scaled) as i32 };
        }
        bounds.push((xmin, n));
    }
    Coeffs { ksize, bounds, kk }
}

/// Pillow's `clip8`: the fixed-point sum back to a byte.
#[inline(always)]
fn clip8(ss: i32) -> u8 {
    (ss >> PRECISION_BITS).clamp(0, 255) as u8
}

/// Half a unit: every sum starts here so `>> 22` rounds to nearest.
const HALF: i32 = 1 << (PRECISION_BITS - 1);

/// The horizontal coefficients laid out for AVX2: per output pixel, taps in pairs, each pair one
/// 8-lane vector `[k0, k0, k0, k1, k1, k1, 0, 0]` matching 8 source bytes `R0 G0 B0 R1 G1 B1 . .`
/// (lanes 6-7 and a missing odd tap multiply by zero).
struct HorizontalPlan {
    /// `(first source byte, tap pairs)` per output pixel.
    spans: Vec<(usize, usize)>,
    /// `stride` i32 per output pixel.
    k8: Vec<i32>,
    stride: usize,
}

impl HorizontalPlan {
    fn new(c: &Coeffs) -> Self {
        let stride = c.ksize.div_ceil(2) * 8;
        let mut k8 = vec![0i32; stride * c.bounds.len()];
        let mut spans = Vec::with_capacity(c.bounds.len());
        for (xx, &(xmin, n)) in c.bounds.iter().enumerate() {
            for (x, &k) in c.kk[xx * c.ksize..xx * c.ksize + n].iter().enumerate() {
                let at = xx * stride + (x / 2) * 8 + (x % 2) * 3;
                k8[at..at + 3].fill(k);
            }
            spans.push((xmin * 3, n.div_ceil(2)));
        }
        HorizontalPlan { spans, k8, stride }
    }
}

/// Horizontal pass over source rows `row0..row0 + rows` of a packed RGB image `src_w` wide.
///
/// With AVX2 the sums are computed 8 lanes at a time; they are the same integers as Pillow's
/// (every term is non-negative for BILINEAR and the total stays below 2^31, so the order of the
/// additions cannot change them).
fn horizontal(src: &[u8], src_w: usize, row0: usize, rows: usize, c: &Coeffs) -> Vec<u8> {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU supports AVX2 (checked just above).
        return unsafe { avx2::horizontal(src, src_w, row0, rows, c, &HorizontalPlan::new(c)) };
    }
    horizontal_portable(src, src_w, row0, rows, c)
}

/// Pillow's loop, one output pixel at a time.
fn horizontal_portable(src: &[u8], src_w: usize, row0: usize, rows: usize, c: &Coeffs) -> Vec<u8> {
    let out_w = c.bounds.len();
    let mut out = vec![0u8; out_w * rows * 3];
    for (y, line_out) in out.chunks_exact_mut(out_w * 3).enumerate() {
        let line = &src[(row0 + y) * src_w * 3..(row0 + y + 1) * src_w * 3];
        for (xx, px) in line_out.chunks_exact_mut(3).enumerate() {
            let sums = pixel_portable(line, c, xx);
            px.copy_from_slice(&sums.map(clip8));
        }
    }
    out
}

#[inline(always)]
fn pixel_portable(line: &[u8], c: &Coeffs, xx: usize) -> [i32; 3] {
    let (xmin, n) = c.bounds[xx];
    let k = &c.kk[xx * c.ksize..xx * c.ksize + n];
    let mut sums = [HALF; 3];
    for (p, &kx) in line[xmin * 3..(xmin + n) * 3].chunks_exact(3).zip(k) {
        sums[0] += i32::from(p[0]) * kx;
        sums[1] += i32::from(p[1]) * kx;
        sums[2] += i32::from(p[2]) * kx;
    }
    sums
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    use super::{clip8, pixel_portable, Coeffs, HorizontalPlan, HALF};

    /// # Safety
    /// The CPU must support AVX2.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn horizontal(
        src: &[u8],
        src_w: usize,
        row0: usize,
        rows: usize,
        c: &Coeffs,
        plan: &HorizontalPlan,
    ) -> Vec<u8> {
        let out_w = c.bounds.len();
        let mut out = vec![0u8; out_w * rows * 3];
        for (y, line_out) in out.chunks_exact_mut(out_w * 3).enumerate() {
            let row_start = (row0 + y) * src_w * 3;
            // Vector loads may run past the row into the next one (zero coefficients there), but
            // never past the buffer: the pixels whose last load would are done the scalar way.
            let tail = &src[row_start..];
            for (xx, px) in line_out.chunks_exact_mut(3).enumerate() {
                let (start, pairs) = plan.spans[xx];
                let sums = if pairs > 0 && start + 6 * (pairs - 1) + 8 <= tail.len() {
                    let k = &plan.k8[xx * plan.stride..xx * plan.stride + pairs * 8];
                    // SAFETY: loads cover tail[start .. start + 6 * (pairs - 1) + 8] (checked
                    // above) and k[0 .. pairs * 8]; unaligned loads are used throughout.
                    unsafe { dot(tail.as_ptr().add(start), k.as_ptr(), pairs) }
                } else {
                    pixel_portable(&tail[..src_w * 3], c, xx)
                };
                px.copy_from_slice(&sums.map(clip8));
            }
        }
        out
    }

    /// Sum over `pairs` tap pairs of 8 source bytes (zero-extended) times 8 coefficients, folded
    /// to R, G, B (lanes 0+3, 1+4, 2+5), plus the rounding half.
    ///
    /// # Safety
    /// The CPU must support AVX2, and when `pairs > 0`, `p[0 .. 6 * (pairs - 1) + 8]` and
    /// `k[0 .. pairs * 8]` must be readable.
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn dot(p: *const u8, k: *const i32, pairs: usize) -> [i32; 3] {
        // SAFETY: (whole body) the caller guarantees p[0 .. 6 * (pairs - 1) + 8] and
        // k[0 .. pairs * 8] are readable; every load and the store are unaligned ones.
        unsafe {
            let load = |j: usize| {
                let s = _mm256_cvtepu8_epi32(_mm_loadl_epi64(p.add(6 * j).cast()));
                _mm256_mullo_epi32(s, _mm256_loadu_si256(k.add(8 * j).cast()))
            };
            // two accumulators: independent multiply-add chains
            let (mut a, mut b) = (_mm256_setzero_si256(), _mm256_setzero_si256());
            let mut j = 0;
            while j + 1 < pairs {
                a = _mm256_add_epi32(a, load(j));
                b = _mm256_add_epi32(b, load(j + 1));
                j += 2;
            }
            if j < pairs {
                a = _mm256_add_epi32(a, load(j));
            }
            let mut lanes = [0i32; 8];
            _mm256_storeu_si256(lanes.as_mut_ptr().cast(), _mm256_add_epi32(a, b));
            [HALF + lanes[0] + lanes[3], HALF + lanes[1] + lanes[4], HALF + lanes[2] + lanes[5]]
        }
    }
}

/// Vertical pass: every output row is a weighted sum of `n` source rows; `bounds` are relative to
/// the first row of `src`. Accumulates whole rows at a time (cache-friendly, vectorisable); integer
/// sums of non-negative terms, so the result is Pillow's whatever the order.
fn vertical(src: &[u8], w: usize, c: &Coeffs) -> Vec<u8> {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU supports AVX2 (checked just above).
        return unsafe { vertical_avx2(src, w, c) };
    }
    vertical_body(src, w, c)
}

/// [`vertical_body`] compiled for AVX2.
///
/// # Safety
/// The CPU must support AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn vertical_avx2(src: &[u8], w: usize, c: &Coeffs) -> Vec<u8> {
    vertical_body(src, w, c)
}

#[inline(always)]
fn vertical_body(src: &[u8], w: usize, c: &Coeffs) -> Vec<u8> {
    let out_h = c.bounds.len();
    let stride = w * 3;
    let mut out = vec![0u8; stride * out_h];
    let mut acc = vec![0i32; stride];
    for (yy, line_out) in out.chunks_exact_mut(stride).enumerate() {
        let (ymin, n) = c.bounds[yy];
        let k = &c.kk[yy * c.ksize..yy * c.ksize + n];
        acc.fill(HALF);
        for (y, &ky) in k.iter().enumerate() {
            let row = &src[(ymin + y) * stride..(ymin + y + 1) * stride];
            for (a, &p) in acc.iter_mut().zip(row) {
                *a += i32::from(p) * ky;
            }
        }
        for (o, &a) in line_out.iter_mut().zip(&acc) {
            *o = clip8(a);
        }
    }
    out
}

/// Pillow's loops, kept for the tests: the optimised passes must equal these.
#[cfg(test)]
fn horizontal_reference(src: &[u8], src_w: usize, row0: usize, rows: usize, c: &Coeffs) -> Vec<u8> {
    let out_w = c.bounds.len();
    let mut out = vec![0u8; out_w * rows * 3];
    for yy in 0..rows {
        for xx in 0..out_w {
            let (xmin, n) = c.bounds[xx];
            let mut ss = [HALF; 3];
            for x in 0..n {
                let k = c.kk[xx * c.ksize + x];
                for ch in 0..3 {
                    ss[ch] += i32::from(src[((yy + row0) * src_w + x + xmin) * 3 + ch]) * k;
                }
            }
            for ch in 0..3 {
                out[(yy * out_w + xx) * 3 + ch] = clip8(ss[ch]);
            }
        }
    }
    out
}

#[cfg(test)]
fn vertical_reference(src: &[u8], w: usize, c: &Coeffs) -> Vec<u8> {
    let out_h = c.bounds.len();
    let mut out = vec![0u8; w * out_h * 3];
    for yy in 0..out_h {
        let (ymin, n) = c.bounds[yy];
        for xx in 0..w * 3 {
            let mut ss = HALF;
            for y in 0..n {
                ss += i32::from(src[(y + ymin) * w * 3 + xx]) * c.kk[yy * c.ksize + y];
            }
            out[yy * w * 3 + xx] = clip8(ss);
        }
    }
    out
}

/// Resizes a packed RGB8 image exactly as Pillow 13's `Image.resize(size, BILINEAR)` does.
///
/// `src.len()` must be `src_w * src_h * 3` and all sizes non-zero (checked by the caller).
pub fn resize_bilinear_rgb(src: &[u8], src_w: usize, src_h: usize, out_w: usize, out_h: usize) -> Vec<u8> {
    debug_assert_eq!(src.len(), src_w * src_h * 3);
    if src_w == out_w && src_h == out_h {
        return src.to_vec(); // Image.resize returns self.copy()
    }
    let need_horizontal = out_w != src_w;
    let need_vertical = out_h != src_h;
    // Pillow: vertical first when the height shrinks by more than twice what the width does.
    let (dw, dh) = (src_w as i64 - out_w as i64, src_h as i64 - out_h as i64);
    let horizontal_first = !(dh > 0 && dh > dw * 2);

    let mut vert = ((need_horizontal && horizontal_first) || need_vertical).then(|| precompute_coeffs(src_h, out_h));
    let horiz = need_horizontal.then(|| precompute_coeffs(src_w, out_w));

    if horizontal_first {
        let mut cur: Option<Vec<u8>> = None;
        if let (Some(h), Some(v)) = (&horiz, &mut vert) {
            // Only the rows the vertical pass will read.
            let first = v.bounds[0].0;
            let (lmin, ln) = v.bounds[v.bounds.len() - 1];
            let last = lmin + ln;
            for b in &mut v.bounds {
                b.0 -= first;
            }
            cur = Some(horizontal(src, src_w, first, last - first, h));
        }
        match (&vert, need_vertical) {
            (Some(v), true) => vertical(cur.as_deref().unwrap_or(src), out_w, v),
            _ => cur.unwrap_or_else(|| src.to_vec()),
        }
    } else {
        // dh > 0 here, so the vertical pass is always needed.
        let v = vert.as_ref().map(|v| vertical(src, src_w, v)).unwrap_or_else(|| src.to_vec());
        match &horiz {
            Some(h) => horizontal(&v, src_w, 0, out_h, h),
            None => v,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gray(rgb: &[u8]) -> Vec<u8> {
        rgb.chunks_exact(3).map(|p| p[0]).collect()
    }
    fn rgb_of(g: &[u8]) -> Vec<u8> {
        g.iter().flat_map(|&v| [v, v, v]).collect()
    }

    #[test]
    fn coefficients_halving_are_pillows() {
        // 4 -> 2: scale 2, support 2; centres 1.0 and 3.0. For output 0 the window is x in
        // [0, 3) (xmin = (int)(1 - 2 + 0.5) = 0, xmax = (int)(1 + 2 + 0.5) = 3), triangle
        // weights at (x - 1 + 0.5) / 2 = -0.25, 0.25, 0.75 -> 0.75, 0.75, 0.25, normalised by 1.75.
        let c = precompute_coeffs(4, 2);
        assert_eq!(c.ksize, 5);
        assert_eq!(c.bounds, vec![(0, 3), (1, 3)]);
        let one = f64::from(1u32 << 22);
        let expect = |w: f64| (0.5 + w / 1.75 * one) as i32;
        assert_eq!(&c.kk[0..3], &[expect(0.75), expect(0.75), expect(0.25)]);
        // output 1: centre 3.0, window [1, 4): weights 0.25, 0.75, 0.75
        assert_eq!(&c.kk[5..8], &[expect(0.25), expect(0.75), expect(0.75)]);
        assert_eq!(&c.kk[3..5], &[0, 0]);
    }

    #[test]
    fn upscale_two_to_four_matches_hand_computation() {
        // 2 -> 4 (upscale, support 1): centres 0.25, 0.75, 1.25, 1.75.
        // out0: window [0,1) clipped at 0..(int)(1.75)=1 -> weight only on pixel 0 -> 10.
        // out1: window [(int)0.25=0, (int)2.25=2 clipped 2): weights f(0-0.75+0.5)=0.75, f(1-0.75+0.5)=0.25 -> 10*.75+30*.25 = 15.
        // out2: mirror -> 25; out3 -> 30.
        let src = rgb_of(&[10, 30]);
        let out = resize_bilinear_rgb(&src, 2, 1, 4, 1);
        assert_eq!(gray(&out), vec![10, 15, 25, 30]);
    }

    #[test]
    fn downscale_rounds_half_up_like_pillow() {
        // 4 -> 2 with [0, 255, 0, 255]: out0 = (0*.75 + 255*.75 + 0*.25)/1.75 = 109.29 -> 109,
        // out1 = (255*.25 + 0*.75 + 255*.75)/1.75 = 145.71 -> 146
        let src = rgb_of(&[0, 255, 0, 255]);
        let out = resize_bilinear_rgb(&src, 4, 1, 2, 1);
        assert_eq!(gray(&out), vec![109, 146]);
    }

    #[test]
    fn same_size_is_a_copy_and_constant_stays_constant() {
        let src: Vec<u8> = (0..5 * 4 * 3).map(|i| (i * 7 % 256) as u8).collect();
        assert_eq!(resize_bilinear_rgb(&src, 5, 4, 5, 4), src);
        let flat = vec![200u8; 37 * 23 * 3];
        let out = resize_bilinear_rgb(&flat, 37, 23, 256, 256);
        assert!(out.iter().all(|&v| v == 200));
        let out = resize_bilinear_rgb(&flat, 37, 23, 7, 3);
        assert!(out.iter().all(|&v| v == 200));
    }

    #[test]
    fn channels_are_independent_and_axes_separable() {
        // A horizontal ramp keeps identical rows and a vertical resize alone keeps columns.
        let (w, h) = (9, 5);
        let src: Vec<u8> = (0..h).flat_map(|_| (0..w).flat_map(|x| [x as u8 * 20, 255 - x as u8 * 20, 77])).collect();
        let out = resize_bilinear_rgb(&src, w, h, 4, 3);
        let row0 = &out[0..12];
        assert!(out.chunks_exact(12).all(|r| r == row0));
        assert!(out.chunks_exact(3).all(|p| p[2] == 77 && u16::from(p[0]) + u16::from(p[1]) == 255));
    }

    #[test]
    fn optimised_passes_equal_pillows_loops() {
        // Odd sizes, up- and downscaling, windows touching both image edges and the buffer end.
        let mut seed = 0x9E37_79B9u32;
        for &(w, h, ow, oh) in &[
            (1usize, 1usize, 5usize, 3usize),
            (7, 3, 2, 9),
            (97, 41, 13, 256),
            (640, 480, 256, 256),
            (4000, 12, 256, 5),
            (33, 700, 256, 256),
        ] {
            let src: Vec<u8> = (0..w * h * 3)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 17;
                    seed ^= seed << 5;
                    (seed >> 24) as u8
                })
                .collect();
            let hc = precompute_coeffs(w, ow);
            assert_eq!(
                horizontal(&src, w, 0, h, &hc),
                horizontal_reference(&src, w, 0, h, &hc),
                "horizontal {w}x{h}->{ow}"
            );
            if h > 2 {
                assert_eq!(
                    horizontal(&src, w, 1, h - 2, &hc),
                    horizontal_reference(&src, w, 1, h - 2, &hc),
                    "rows 1.. {w}x{h}"
                );
            }
            let vc = precompute_coeffs(h, oh);
            assert_eq!(vertical(&src, w, &vc), vertical_reference(&src, w, &vc), "vertical {w}x{h}->{oh}");
            assert_eq!(
                horizontal_portable(&src, w, 0, h, &hc),
                horizontal_reference(&src, w, 0, h, &hc),
                "portable {w}x{h}"
            );
        }
    }

    #[test]
    fn vertical_first_order_is_chosen_for_tall_shrinks() {
        // 10x100 -> 8x10: dh = 90 > dw*2 = 4, so Pillow runs the vertical pass first; the result
        // must equal doing the passes by hand in that order.
        let (w, h) = (10usize, 100usize);
        let src: Vec<u8> = (0..w * h * 3).map(|i| ((i * 31 + i / 7) % 251) as u8).collect();
        let v = precompute_coeffs(h, 10);
        let hc = precompute_coeffs(w, 8);
        let by_hand = horizontal(&vertical(&src, w, &v), w, 0, 10, &hc);
        assert_eq!(resize_bilinear_rgb(&src, w, h, 8, 10), by_hand);
        // and horizontal first (only the rows used) for a wide shrink
        let (w, h) = (100usize, 10usize);
        let src: Vec<u8> = (0..w * h * 3).map(|i| ((i * 13 + i / 5) % 253) as u8).collect();
        let mut v = precompute_coeffs(h, 8);
        let first = v.bounds[0].0;
        let last = v.bounds[7].0 + v.bounds[7].1;
        v.bounds.iter_mut().for_each(|b| b.0 -= first);
        let by_hand = vertical(&horizontal(&src, w, first, last - first, &precompute_coeffs(w, 10)), 10, &v);
        assert_eq!(resize_bilinear_rgb(&src, w, h, 10, 8), by_hand);
    }
}
