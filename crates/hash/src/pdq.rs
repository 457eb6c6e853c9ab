//! PDQ, Meta's 256-bit perceptual hash, ported bit for bit from ThreatExchange's C++
//! (`pdq/cpp/hashing/pdqhashing.cpp`, `downscaling/downscaling.cpp`, `hashing/torben.cpp`) as
//! the PyPI package `pdqhash` 0.2.8 wraps it. Banks of known harmful media hold PDQ hashes made
//! by that code, so ours must give the same bits on the same pixels: every floating-point
//! operation below is the reference's, in the reference's order, in `f32` (Rust never fuses a
//! multiply and an add, and no sum here is reordered). `tests/pdq_reference.rs` checks it
//! against the Python package itself.
//!
//! The algorithm: luma → two passes of a box filter along rows then columns (Jarosz's tent
//! approximation) → decimation to 64×64 → quality metric → the 16×16 low-frequency block of a
//! 2D DCT → one bit per coefficient: above the median or not.
//!
//! What differs from the reference is only *how* it is computed: the reference filters two
//! full-size float buffers in place (and walks columns with a stride of a whole row); here the
//! filter streams — rows are filtered a batch at a time as the column pass needs them, a ring of
//! `window + batch` rows is all that is kept, and the second pass only keeps the 64 columns and
//! rows the decimation samples. Each output value still comes from the very same sequence of
//! additions, subtractions and divisions, so the result is identical (the unit tests compare with
//! a literal transcription of the C++). A 12 MP photo needs ~2.5 MB of scratch instead of ~100 MB.

use std::f64::consts::PI;
use std::fmt;
use std::str::FromStr;
use std::sync::OnceLock;

pub use crate::hex::HexError;

/// 256-bit PDQ hash; word i is the reference's Hash256::w[i].
///
/// Bit `k` (`k = 16 i + j` for DCT coefficient row `i`, column `j`) is bit `k & 15` of word
/// `k >> 4`, as the reference's `setBit` puts it.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub struct Pdq(pub [u16; 16]);

impl Pdq {
    /// 64 lower-case hex digits, `w[15]` first: the reference's `Hash256::format` (`%04hx` per
    /// word), the form ThreatExchange and bank files exchange.
    pub fn to_hex(&self) -> String {
        let mut s = String::with_capacity(64);
        for w in self.0.iter().rev() {
            // writing to a String cannot fail
            let _ = fmt::Write::write_fmt(&mut s, format_args!("{w:04x}"));
        }
        s
    }

    /// Parses exactly 64 hex digits of either case, `w[15]` first (the inverse of
    /// [`Pdq::to_hex`]).
    pub fn from_hex(s: &str) -> Result<Pdq, HexError> {
        let bytes: [u8; 32] = crate::hex::decode(s)?;
        let mut w = [0u16; 16];
        for (i, pair) in bytes.chunks_exact(2).enumerate() {
            w[15 - i] = u16::from_be_bytes([pair[0], pair[1]]);
        }
        Ok(Pdq(w))
    }

    /// The Hamming distance: how many of the 256 bits differ.
    pub fn distance(&self, other: &Pdq) -> u32 {
        let mut d = 0;
        for (a, b) in self.0.iter().zip(other.0.iter()) {
            d += (a ^ b).count_ones();
        }
        d
    }

    /// The hash as four 64-bit words (word `i` holds `w[4i..4i+4]`, `w[4i]` lowest), the form the
    /// index verifies distances in.
    pub(crate) fn to_u64s(self) -> [u64; 4] {
        let w = self.0.map(u64::from);
        [0, 1, 2, 3].map(|i| w[4 * i] | (w[4 * i + 1] << 16) | (w[4 * i + 2] << 32) | (w[4 * i + 3] << 48))
    }

    /// The inverse of [`Pdq::to_u64s`].
    pub(crate) fn from_u64s(q: [u64; 4]) -> Pdq {
        let mut w = [0u16; 16];
        for (i, word) in w.iter_mut().enumerate() {
            *word = (q[i / 4] >> (16 * (i % 4))) as u16;
        }
        Pdq(w)
    }
}

impl fmt::Display for Pdq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for w in self.0.iter().rev() {
            write!(f, "{w:04x}")?;
        }
        Ok(())
    }
}

impl FromStr for Pdq {
    type Err = HexError;
    fn from_str(s: &str) -> Result<Pdq, HexError> {
        Pdq::from_hex(s)
    }
}

impl serde::Serialize for Pdq {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Pdq {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Pdq, D::Error> {
        struct HexVisitor;
        impl serde::de::Visitor<'_> for HexVisitor {
            type Value = Pdq;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a PDQ hash as 64 hex digits")
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Pdq, E> {
                Pdq::from_hex(s).map_err(|e| E::custom(format_args!("PDQ hash {e}")))
            }
        }
        deserializer.deserialize_str(HexVisitor)
    }
}

/// Why pixels could not be hashed (always the caller's bug or a non-image input, never a
/// property of a real picture).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PdqError {
    /// The buffer does not hold `width × height` pixels of the layout.
    #[error("{what} for a {width}×{height} image must be {expected} values long, got {found}")]
    Size { what: &'static str, width: u32, height: u32, expected: u128, found: usize },
    /// Float luma that is NaN or infinite (or so large its sums overflow) gives no median.
    #[error("the luma holds NaN or infinite values (or values so large their sums overflow); PDQ needs finite luma")]
    NotFinite,
}

/// The hash of one image, its quality and the DCT it came from (for the dihedral variants).
#[derive(Clone)]
pub struct Hashed {
    /// The image's PDQ hash.
    pub hash: Pdq,
    /// The reference's image-domain quality metric, 0..=100: how much gradient the 64×64
    /// downsample has (flat or tiny images score 0; the contract ignores hashes below
    /// `MEDIAGATE_PDQ_MIN_QUALITY`).
    pub quality: u8,
    /// The 16×16 DCT block the hash thresholds, row-major.
    dct: [[f32; 16]; 16],
}

impl fmt::Debug for Hashed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hashed").field("hash", &self.hash).field("quality", &self.quality).finish_non_exhaustive()
    }
}

impl Hashed {
    /// The hashes of the image's 8 rotations and mirrors, computed from the same DCT (a rotated
    /// or mirrored DCT is the original's with signs flipped and/or transposed): the reference's
    /// `pdqDihedralHash256esFromFloatLuma` order, as `pdqhash.compute_dihedral` returns them —
    /// original, rotate 90, rotate 180, rotate 270, flip X, flip Y, flip +1, flip −1.
    /// `[0]` is always [`Hashed::hash`].
    ///
    /// One reference quirk is not copied: for an image of exactly 64×64 the reference's
    /// `compute` uses the pixels as they are while its `compute_dihedral` still runs the
    /// (width-1) box filter, whose running sums add rounding noise, so the two disagree slightly
    /// with each other. Here every variant comes from the DCT `compute` uses.
    pub fn dihedral(&self) -> [Pdq; 8] {
        let a = &self.dct;
        let neg = |v: f32, flip: bool| if flip { -v } else { v };
        let mut out = [self.hash; 8];
        for (n, slot) in out.iter_mut().enumerate().skip(1) {
            let mut b = [[0f32; 16]; 16];
            for i in 0..16 {
                for j in 0..16 {
                    match n {
                        1 => b[j][i] = neg(a[i][j], j & 1 == 0),
                        2 => b[i][j] = neg(a[i][j], (i + j) & 1 == 1),
                        3 => b[j][i] = neg(a[i][j], i & 1 == 0),
                        4 => b[i][j] = neg(a[i][j], i & 1 == 0),
                        5 => b[i][j] = neg(a[i][j], j & 1 == 0),
                        6 => b[j][i] = a[i][j],
                        _ => b[j][i] = neg(a[i][j], (i + j) & 1 == 1),
                    }
                }
            }
            *slot = bits(&b);
        }
        out
    }
}

/// Images narrower or shorter than this hash to all zeros with quality 0 (the reference's
/// `MIN_HASHABLE_DIM`).
const MIN_HASHABLE_DIM: usize = 5;

/// PDQ of packed RGB8 pixels (`rgb.len() == width × height × 3`, rows top to bottom).
///
/// The luma is what `pdqhash`'s Cython binding computes with numpy — `R*0.299 + G*0.587 +
/// B*0.114` in float64, left to right, then rounded to float32 — not the C++ library's own
/// float32 `fillFloatLumaFromRGB`: the binding is what bank hashes are made with, and the two
/// round differently.
pub fn pdq_rgb(width: u32, height: u32, rgb: &[u8]) -> Result<Hashed, PdqError> {
    let (w, h) = (width as usize, height as usize);
    let expected = u128::from(width) * u128::from(height) * 3;
    if rgb.len() as u128 != expected {
        return Err(PdqError::Size { what: "packed RGB8", width, height, expected, found: rgb.len() });
    }
    let luts = luma_tables();
    let fill = |r: usize, row: &mut [f32]| {
        let src = &rgb[r * w * 3..(r + 1) * w * 3];
        for (out, px) in row.iter_mut().zip(src.chunks_exact(3)) {
            *out = (luts[0][usize::from(px[0])] + luts[1][usize::from(px[1])] + luts[2][usize::from(px[2])]) as f32;
        }
    };
    hash_rows(w, h, fill)
}

/// PDQ of row-major float luma (`luma.len() == width × height`), as the reference's
/// `pdqHash256FromFloatLuma` takes it (e.g. a decoder's 8-bit Y′ plane as floats).
///
/// It takes the Vec because the reference filters in that buffer (its `fullBuffer1`); this
/// port only reads it, and frees it on return.
pub fn pdq_luma(width: u32, height: u32, luma: Vec<f32>) -> Result<Hashed, PdqError> {
    let (w, h) = (width as usize, height as usize);
    let expected = u128::from(width) * u128::from(height);
    if luma.len() as u128 != expected {
        return Err(PdqError::Size { what: "float luma", width, height, expected, found: luma.len() });
    }
    hash_rows(w, h, |r, row| row.copy_from_slice(&luma[r * w..(r + 1) * w]))
}

/// `v * 0.299`, `v * 0.587`, `v * 0.114` in float64 for every 8-bit value: the exact products
/// numpy forms (uint8 × Python float is float64), looked up instead of multiplied.
fn luma_tables() -> &'static [[f64; 256]; 3] {
    static T: OnceLock<[[f64; 256]; 3]> = OnceLock::new();
    T.get_or_init(|| [0.299, 0.587, 0.114].map(|coeff| std::array::from_fn(|v| v as f64 * coeff)))
}

/// PDQ luma of one RGB8 pixel, exactly as [`pdq_rgb`] computes it (`pdqhash`'s binding:
/// float64 `R*0.299 + G*0.587 + B*0.114`, rounded to float32).
pub fn luma(r: u8, g: u8, b: u8) -> f32 {
    let t = luma_tables();
    (t[0][usize::from(r)] + t[1][usize::from(g)] + t[2][usize::from(b)]) as f32
}

/// Adds the PDQ luma of each pixel of `row` (RGB8 when `channels` is 3, grey otherwise) to the
/// sum of its run of `k` pixels: `sums[i]` gets pixels `i*k..i*k+k`, in order. The same f32
/// additions, in the same order, as a loop calling [`luma`] per pixel, so the sums are the same
/// bit for bit; the tables are looked up once per row instead of once per pixel.
pub fn add_luma_blocks(sums: &mut [f32], row: &[u8], channels: usize, k: usize) {
    let [r, g, b] = luma_tables();
    if channels == 3 {
        for (sum, block) in sums.iter_mut().zip(row.chunks_exact(3 * k)) {
            for p in block.chunks_exact(3) {
                *sum += (r[usize::from(p[0])] + g[usize::from(p[1])] + b[usize::from(p[2])]) as f32;
            }
        }
    } else {
        for (sum, block) in sums.iter_mut().zip(row.chunks_exact(k)) {
            for &v in block {
                let v = usize::from(v);
                *sum += (r[v] + g[v] + b[v]) as f32;
            }
        }
    }
}

/// PDQ of a `width`×`height` image whose row `r` of float luma `fill(r, row)` writes, rows top
/// to bottom: for callers that hold pixels in another layout (planes, RGBA to composite, an
/// orientation still to apply) and would otherwise copy the whole image to call [`pdq_rgb`] or
/// [`pdq_luma`]. The same hash as those on the same luma.
pub fn pdq_rows(width: u32, height: u32, fill: impl FnMut(usize, &mut [f32])) -> Result<Hashed, PdqError> {
    hash_rows(width as usize, height as usize, fill)
}

/// The hash of an image whose row `r` of luma `fill(r, row)` writes.
fn hash_rows(w: usize, h: usize, fill: impl FnMut(usize, &mut [f32])) -> Result<Hashed, PdqError> {
    if w < MIN_HASHABLE_DIM || h < MIN_HASHABLE_DIM {
        return Ok(Hashed { hash: Pdq::default(), quality: 0, dct: [[0.0; 16]; 16] });
    }
    let mut fill = fill;
    let buffer64 = if w == 64 && h == 64 {
        // As the reference: an input already 64×64 (e.g. a video frame ffmpeg downsampled) is
        // used as it is, unfiltered.
        let mut b = Box::new([[0f32; 64]; 64]);
        for (r, row) in b.iter_mut().enumerate() {
            fill(r, &mut row[..]);
        }
        b
    } else {
        downsample(w, h, fill)
    };
    let quality = quality(&buffer64);
    let dct = dct64_to_16(&buffer64);
    if dct.iter().flatten().any(|v| !v.is_finite()) {
        return Err(PdqError::NotFinite);
    }
    Ok(Hashed { hash: bits(&dct), quality, dct })
}

/// The reference's `computeJaroszFilterWindowSize(old, 64)`: half a 64th of the dimension,
/// rounded up (two passes of a box that wide make a tent a 64th wide).
fn window(old: usize) -> usize {
    // = (old + 2*64 - 1) / (2*64), the reference's integer expression
    old.div_ceil(2 * 64)
}

/// The reference's decimation indices, `(int)(((out + 0.5) * in) / 64)` in double: the centres
/// of the 64 cells.
fn decimation(len: usize) -> [usize; 64] {
    std::array::from_fn(|i| (((i as f64 + 0.5) * len as f64) / 64.0) as usize)
}

/// How many rows the row filter runs side by side: independent running sums hide the latency of
/// each one's dependent add/subtract chain, and fill one AVX register (two SSE ones).
const BATCH: usize = 8;

/// The reference's box filter phases for a vector of `n` values and a window of `w` (`w <= n`):
/// reads before the first write, writes while the window grows, full-window writes, writes while
/// it shrinks. See `box1DFloat` in downscaling.cpp.
#[derive(Clone, Copy)]
struct Phases {
    grow_silent: usize,
    grow: usize,
    full: usize,
    shrink: usize,
}

impl Phases {
    fn new(n: usize, w: usize) -> Phases {
        let half = (w + 2) / 2;
        Phases { grow_silent: half - 1, grow: w + 1 - half, full: n.saturating_sub(w), shrink: half - 1 }
    }
}

/// `box1DFloat` on `BATCH` vectors at once, stored interleaved (`inp[k][b]` is element `k` of
/// vector `b`). Per vector the operations and their order are exactly the reference's.
#[inline(always)]
fn box_batch(inp: &[[f32; BATCH]], out: &mut [[f32; BATCH]], w: usize) {
    box_batch_each(inp, w, |oi, sum, d| {
        for b in 0..BATCH {
            out[oi][b] = sum[b] / d;
        }
    });
}

/// The running sums of [`box_batch`]: `emit(k, sums, window)` for each output position `k`,
/// whose values are `sums[b] / window` — left to the caller, so a pass that keeps only some
/// positions skips the other divisions.
#[inline(always)]
fn box_batch_each(inp: &[[f32; BATCH]], w: usize, mut emit: impl FnMut(usize, &[f32; BATCH], f32)) {
    let p = Phases::new(inp.len(), w);
    let mut sum = [0f32; BATCH];
    let mut size = 0u32;
    let (mut li, mut ri, mut oi) = (0, 0, 0);
    for _ in 0..p.grow_silent {
        for b in 0..BATCH {
            sum[b] += inp[ri][b];
        }
        size += 1;
        ri += 1;
    }
    for _ in 0..p.grow {
        size += 1;
        for b in 0..BATCH {
            sum[b] += inp[ri][b];
        }
        emit(oi, &sum, size as f32);
        ri += 1;
        oi += 1;
    }
    let d = size as f32;
    for _ in 0..p.full {
        for b in 0..BATCH {
            sum[b] += inp[ri][b];
            sum[b] -= inp[li][b];
        }
        emit(oi, &sum, d);
        li += 1;
        ri += 1;
        oi += 1;
    }
    for _ in 0..p.shrink {
        size -= 1;
        for b in 0..BATCH {
            sum[b] -= inp[li][b];
        }
        emit(oi, &sum, size as f32);
        li += 1;
        oi += 1;
    }
}

/// Where the column filter reads its input rows from.
trait Rows {
    /// Makes row `r` readable; rows are asked for in order 0, 1, 2, …
    fn ensure(&mut self, r: usize);
    fn row(&self, r: usize) -> &[f32];
}

/// `box1DFloat` down every column of an `n`-row matrix at once (`sum` and `out` one row wide),
/// handing each output row to `emit` in order. Per column the operations are exactly the
/// reference's `boxAlongColsFloat`; only the loop nest is swapped, so memory is read row by row.
#[inline(always)]
fn box_columns<R: Rows>(
    src: &mut R,
    n: usize,
    w: usize,
    sum: &mut [f32],
    out: &mut [f32],
    mut emit: impl FnMut(usize, &[f32]),
) {
    let p = Phases::new(n, w);
    sum.fill(0.0);
    let mut size = 0u32;
    let (mut li, mut ri, mut oi) = (0, 0, 0);
    for _ in 0..p.grow_silent {
        src.ensure(ri);
        for (s, a) in sum.iter_mut().zip(src.row(ri)) {
            *s += a;
        }
        size += 1;
        ri += 1;
    }
    for _ in 0..p.grow {
        src.ensure(ri);
        size += 1;
        let d = size as f32;
        for ((s, a), o) in sum.iter_mut().zip(src.row(ri)).zip(out.iter_mut()) {
            *s += a;
            *o = *s / d;
        }
        emit(oi, out);
        ri += 1;
        oi += 1;
    }
    let d = size as f32;
    for _ in 0..p.full {
        src.ensure(ri);
        for (((s, a), b), o) in sum.iter_mut().zip(src.row(ri)).zip(src.row(li)).zip(out.iter_mut()) {
            *s += a;
            *s -= b;
            *o = *s / d;
        }
        emit(oi, out);
        li += 1;
        ri += 1;
        oi += 1;
    }
    for _ in 0..p.shrink {
        size -= 1;
        let d = size as f32;
        for ((s, b), o) in sum.iter_mut().zip(src.row(li)).zip(out.iter_mut()) {
            *s -= b;
            *o = *s / d;
        }
        emit(oi, out);
        li += 1;
        oi += 1;
    }
}

/// The first row pass, produced `BATCH` rows at a time into a ring the first column pass reads:
/// it holds the rows that pass still subtracts (up to `window` back) plus the batch ahead.
struct FirstPass<F> {
    fill: F,
    width: usize,
    height: usize,
    window: usize,
    produced: usize,
    line: Vec<f32>,
    inp: Vec<[f32; BATCH]>,
    out: Vec<[f32; BATCH]>,
    ring: Vec<f32>,
    slots: usize,
}

impl<F: FnMut(usize, &mut [f32])> Rows for FirstPass<F> {
    #[inline(always)]
    fn ensure(&mut self, r: usize) {
        while self.produced <= r {
            let base = self.produced;
            let count = BATCH.min(self.height.saturating_sub(base));
            if count == 0 {
                return; // past the last row: never asked for by the column pass
            }
            for b in 0..BATCH {
                if b < count {
                    (self.fill)(base + b, &mut self.line);
                } else {
                    self.line.fill(0.0); // padding: filtered, never read
                }
                for (k, v) in self.line.iter().enumerate() {
                    self.inp[k][b] = *v;
                }
            }
            box_batch(&self.inp, &mut self.out, self.window);
            for b in 0..count {
                let slot = (base + b) % self.slots;
                let dst = &mut self.ring[slot * self.width..(slot + 1) * self.width];
                for (d, o) in dst.iter_mut().zip(&self.out) {
                    *d = o[b];
                }
            }
            self.produced += count;
        }
    }

    fn row(&self, r: usize) -> &[f32] {
        let slot = r % self.slots;
        &self.ring[slot * self.width..(slot + 1) * self.width]
    }
}

/// A matrix held whole (the 64-column result of the second row pass).
struct Held<'a> {
    data: &'a [f32],
    width: usize,
}

impl Rows for Held<'_> {
    fn ensure(&mut self, _: usize) {}
    fn row(&self, r: usize) -> &[f32] {
        &self.data[r * self.width..(r + 1) * self.width]
    }
}

/// The reference's `jaroszFilterFloat` (2 passes of rows-then-columns box filters) followed by
/// `decimateFloat` to 64×64, streamed: see the module comment.
///
/// Compiled twice: for the x86-64 baseline (SSE2, 4 floats a vector) and, chosen at run time, for
/// AVX2 (8). The same IEEE operations either way — wider registers, no fused multiply-add (Rust
/// never contracts `a * b + c`, and this code only adds, subtracts and divides) — so the bits
/// are the same; the tests run whichever the machine has.
fn downsample(w: usize, h: usize, fill: impl FnMut(usize, &mut [f32])) -> Box<[[f32; 64]; 64]> {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU supports AVX2 (checked just above).
        return unsafe { downsample_avx2(w, h, fill) };
    }
    downsample_portable(w, h, fill)
}

/// # Safety
/// The CPU must support AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn downsample_avx2(w: usize, h: usize, fill: impl FnMut(usize, &mut [f32])) -> Box<[[f32; 64]; 64]> {
    downsample_portable(w, h, fill)
}

#[inline(always)]
fn downsample_portable(w: usize, h: usize, fill: impl FnMut(usize, &mut [f32])) -> Box<[[f32; 64]; 64]> {
    let along_rows = window(w);
    let along_cols = window(h);
    let cols = decimation(w);
    let rows = decimation(h);

    let mut first = FirstPass {
        fill,
        width: w,
        height: h,
        window: along_rows,
        produced: 0,
        line: vec![0.0; w],
        inp: vec![[0.0; BATCH]; w],
        out: vec![[0.0; BATCH]; w],
        ring: vec![0.0; (along_cols + BATCH + 1) * w],
        slots: along_cols + BATCH + 1,
    };

    // Second row pass: rows from the first column pass, batched; only the 64 sampled columns
    // of its output are kept (every later value depends on those alone).
    let mut second_in = vec![[0f32; BATCH]; w];
    let mut sampled = [[0f32; BATCH]; 64];
    let mut kept = vec![0f32; h * 64];
    let mut sum = vec![0f32; w];
    let mut line = vec![0f32; w];
    box_columns(&mut first, h, along_cols, &mut sum, &mut line, |r, row| {
        let b = r % BATCH;
        for (k, v) in row.iter().enumerate() {
            second_in[k][b] = *v;
        }
        if b == BATCH - 1 || r == h - 1 {
            // `cols` ascends (with repeats when w < 64): divide only at the sampled positions
            let mut next = 0;
            box_batch_each(&second_in, along_rows, |k, sums, d| {
                while next < 64 && cols[next] == k {
                    sampled[next] = sums.map(|s| s / d);
                    next += 1;
                }
            });
            let base = r - b;
            for i in 0..=b {
                for (j, col) in sampled.iter().enumerate() {
                    kept[(base + i) * 64 + j] = col[i];
                }
            }
        }
    });

    // Second column pass on the 64 kept columns, then the 64 sampled rows.
    let mut filtered = vec![0f32; h * 64];
    let mut sum = [0f32; 64];
    let mut line = [0f32; 64];
    box_columns(&mut Held { data: &kept, width: 64 }, h, along_cols, &mut sum, &mut line, |r, row| {
        filtered[r * 64..(r + 1) * 64].copy_from_slice(row)
    });
    let mut out = Box::new([[0f32; 64]; 64]);
    for (i, &r) in rows.iter().enumerate() {
        out[i].copy_from_slice(&filtered[r * 64..(r + 1) * 64]);
    }
    out
}

/// The reference's `pdqImageDomainQualityMetric`: the sum of the 64×64 image's absolute
/// vertical and horizontal differences, each quantised to whole percent of 255 (truncated, so
/// only significant gradients count), divided by 90 and capped at 100.
fn quality(b: &[[f32; 64]; 64]) -> u8 {
    let step = |u: f32, v: f32| (((u - v) * 100.0) / 255.0) as i32;
    let mut gradient_sum: i64 = 0;
    for (upper, lower) in b.iter().zip(&b[1..]) {
        for (&u, &v) in upper.iter().zip(lower) {
            gradient_sum += i64::from(step(u, v).unsigned_abs());
        }
    }
    for row in b {
        for j in 0..63 {
            gradient_sum += i64::from(step(row[j], row[j + 1]).unsigned_abs());
        }
    }
    (gradient_sum / 90).min(100) as u8
}

/// The reference's `dct_matrix_64`: rows 1..=16 of the 64-point DCT-II basis, computed in double
/// (with the scale factor first rounded to float, as the C++ declares it) and stored as float.
fn dct_matrix() -> &'static [[f32; 64]; 16] {
    static M: OnceLock<[[f32; 64]; 16]> = OnceLock::new();
    M.get_or_init(|| {
        let scale = (2.0f64 / 64.0).sqrt() as f32;
        let mut m = [[0f32; 64]; 16];
        for (i, row) in m.iter_mut().enumerate() {
            for (j, v) in row.iter_mut().enumerate() {
                *v = (f64::from(scale) * ((PI / 2.0 / 64.0) * (i + 1) as f64 * (2 * j + 1) as f64).cos()) as f32;
            }
        }
        m
    })
}

/// The reference's `dct64To16`: `B = D A Dᵀ` through `T = D A`, each sum in float, k ascending.
/// (T's loop is run for all 64 columns at once; each T[i][j] still adds its 64 products in the
/// same order.)
fn dct64_to_16(a: &[[f32; 64]; 64]) -> [[f32; 16]; 16] {
    let d = dct_matrix();
    let mut t = [[0f32; 64]; 16];
    for (ti, di) in t.iter_mut().zip(d) {
        for (ak, &dik) in a.iter().zip(di) {
            for (tij, &akj) in ti.iter_mut().zip(ak) {
                *tij += dik * akj;
            }
        }
    }
    let mut b = [[0f32; 16]; 16];
    for (bi, ti) in b.iter_mut().zip(&t) {
        for (bij, dj) in bi.iter_mut().zip(d) {
            let mut sum = 0f32;
            for k in 0..64 {
                sum += ti[k] * dj[k];
            }
            *bij = sum;
        }
    }
    b
}

/// The reference's `pdqBuffer16x16ToBits`: bit `16 i + j` is set when coefficient `[i][j]` is
/// above the median (`torben`).
fn bits(dct: &[[f32; 16]; 16]) -> Pdq {
    let flat: [f32; 256] = std::array::from_fn(|k| dct[k / 16][k % 16]);
    let median = torben(&flat);
    let mut w = [0u16; 16];
    for (k, &v) in flat.iter().enumerate() {
        if v > median {
            w[k >> 4] |= 1 << (k & 15);
        }
    }
    Pdq(w)
}

/// Torben Mogensen's median (N. Devillard's implementation, as in torben.cpp): the lower median
/// for an even count, found without sorting. Terminates on finite input (each round strictly
/// narrows `[min, max]` to values present); callers reject non-finite DCTs first.
fn torben(m: &[f32; 256]) -> f32 {
    let n = m.len();
    let half = n.div_ceil(2);
    let (mut min, mut max) = (m[0], m[0]);
    for &v in &m[1..] {
        if v < min {
            min = v;
        }
        if v > max {
            max = v;
        }
    }
    loop {
        let guess = (min + max) / 2.0;
        let (mut less, mut greater, mut equal) = (0usize, 0usize, 0usize);
        let (mut maxltguess, mut mingtguess) = (min, max);
        for &v in m {
            if v < guess {
                less += 1;
                if v > maxltguess {
                    maxltguess = v;
                }
            } else if v > guess {
                greater += 1;
                if v < mingtguess {
                    mingtguess = v;
                }
            } else {
                equal += 1;
            }
        }
        if less <= half && greater <= half {
            return if less >= half {
                maxltguess
            } else if less + equal >= half {
                guess
            } else {
                mingtguess
            };
        } else if less > greater {
            max = maxltguess;
        } else {
            min = mingtguess;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A literal transcription of the C++ (full-size buffers, in-place passes, strided columns,
    /// the reference's float32 luma is *not* used: the binding's float64 one is), to check that
    /// the streamed filter computes the same values.
    mod literal {
        // a transcription keeps the C++'s shape: its index loops and integer expressions
        #![allow(clippy::needless_range_loop, clippy::manual_div_ceil)]

        fn box1d(invec: &[f32], inoff: usize, outvec: &mut [f32], outoff: usize, len: usize, stride: usize, w: usize) {
            let half = (w + 2) / 2;
            let p1 = half as isize - 1;
            let p2 = w as isize - half as isize + 1;
            let p3 = len as isize - w as isize;
            let p4 = half as isize - 1;
            let (mut li, mut ri, mut oi) = (0, 0, 0);
            let mut sum = 0f32;
            let mut cur = 0i32;
            for _ in 0..p1 {
                sum += invec[inoff + ri];
                cur += 1;
                ri += stride;
            }
            for _ in 0..p2 {
                sum += invec[inoff + ri];
                cur += 1;
                outvec[outoff + oi] = sum / cur as f32;
                ri += stride;
                oi += stride;
            }
            for _ in 0..p3 {
                sum += invec[inoff + ri];
                sum -= invec[inoff + li];
                outvec[outoff + oi] = sum / cur as f32;
                li += stride;
                ri += stride;
                oi += stride;
            }
            for _ in 0..p4 {
                sum -= invec[inoff + li];
                cur -= 1;
                outvec[outoff + oi] = sum / cur as f32;
                li += stride;
                oi += stride;
            }
        }

        pub fn downsample(mut b1: Vec<f32>, rows: usize, cols: usize) -> [[f32; 64]; 64] {
            let mut b2 = vec![0f32; rows * cols];
            let wr = (cols + 2 * 64 - 1) / (2 * 64);
            let wc = (rows + 2 * 64 - 1) / (2 * 64);
            for _ in 0..2 {
                for i in 0..rows {
                    box1d(&b1, i * cols, &mut b2, i * cols, cols, 1, wr);
                }
                for j in 0..cols {
                    box1d(&b2, j, &mut b1, j, rows, cols, wc);
                }
            }
            let mut out = [[0f32; 64]; 64];
            for (oi, row) in out.iter_mut().enumerate() {
                let ini = (((oi as f64 + 0.5) * rows as f64) / 64.0) as usize;
                for (oj, v) in row.iter_mut().enumerate() {
                    let inj = (((oj as f64 + 0.5) * cols as f64) / 64.0) as usize;
                    *v = b1[ini * cols + inj];
                }
            }
            out
        }

        pub fn dct(a: &[[f32; 64]; 64]) -> [[f32; 16]; 16] {
            let d = super::dct_matrix();
            let mut t = [[0f32; 64]; 16];
            for i in 0..16 {
                for j in 0..64 {
                    let mut s = 0f32;
                    for k in 0..64 {
                        s += d[i][k] * a[k][j];
                    }
                    t[i][j] = s;
                }
            }
            let mut b = [[0f32; 16]; 16];
            for i in 0..16 {
                for j in 0..16 {
                    let mut s = 0f32;
                    for k in 0..64 {
                        s += t[i][k] * d[j][k];
                    }
                    b[i][j] = s;
                }
            }
            b
        }
    }

    /// Deterministic pseudo-random bytes (splitmix64).
    fn noise(n: usize, seed: u64) -> Vec<u8> {
        let mut x = seed;
        (0..n)
            .map(|_| {
                x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
                let mut z = x;
                z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
                z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
                (z ^ (z >> 31)) as u8
            })
            .collect()
    }

    /// Smooth-ish content with noise, so the filter's values vary everywhere.
    fn picture(w: usize, h: usize, seed: u64) -> Vec<u8> {
        let n = noise(w * h * 3, seed);
        let mut out = vec![0u8; w * h * 3];
        for y in 0..h {
            for x in 0..w {
                for c in 0..3 {
                    let base = 128.0 + 90.0 * ((x as f64 * 0.05 + c as f64) + (y as f64 * 0.031)).sin();
                    let v = base + (f64::from(n[(y * w + x) * 3 + c]) - 128.0) * 0.3;
                    out[(y * w + x) * 3 + c] = v.clamp(0.0, 255.0) as u8;
                }
            }
        }
        out
    }

    fn luma_of(rgb: &[u8]) -> Vec<f32> {
        rgb.chunks_exact(3)
            .map(|p| (f64::from(p[0]) * 0.299 + f64::from(p[1]) * 0.587 + f64::from(p[2]) * 0.114) as f32)
            .collect()
    }

    #[test]
    fn streamed_filter_equals_the_literal_transcription() {
        let sizes = [
            (5, 5),
            (7, 9),
            (63, 65),
            (65, 63),
            (127, 129),
            (128, 128),
            (129, 127),
            (255, 257),
            (300, 17),
            (17, 300),
            (640, 480),
            (1000, 7),
            (8, 1000),
            (1283, 961),
        ];
        for (i, &(w, h)) in sizes.iter().enumerate() {
            let rgb = picture(w, h, i as u64);
            let luma = luma_of(&rgb);
            let expected = literal::downsample(luma.clone(), h, w);
            let fill = |r: usize, row: &mut [f32]| row.copy_from_slice(&luma[r * w..(r + 1) * w]);
            // the dispatched build (AVX2 where the CPU has it) and the baseline one
            let got = downsample(w, h, fill);
            let portable = downsample_portable(w, h, fill);
            for r in 0..64 {
                for c in 0..64 {
                    assert_eq!(got[r][c].to_bits(), expected[r][c].to_bits(), "{w}×{h} at [{r}][{c}]");
                    assert_eq!(portable[r][c].to_bits(), expected[r][c].to_bits(), "{w}×{h} at [{r}][{c}], baseline");
                }
            }
            let dct = dct64_to_16(&got);
            let lit = literal::dct(&got);
            assert_eq!(dct.map(|r| r.map(f32::to_bits)), lit.map(|r| r.map(f32::to_bits)), "{w}×{h} DCT");
            // and the RGB entry point sees the same luma
            let a = pdq_rgb(w as u32, h as u32, &rgb).unwrap();
            let b = pdq_luma(w as u32, h as u32, luma).unwrap();
            assert_eq!((a.hash, a.quality), (b.hash, b.quality));
        }
    }

    #[test]
    fn hex_round_trip_and_word_order() {
        let mut w = [0u16; 16];
        w[15] = 0xabcd;
        w[0] = 0x0001;
        let p = Pdq(w);
        let hex = p.to_hex();
        assert_eq!(hex.len(), 64);
        assert!(hex.starts_with("abcd0000"));
        assert!(hex.ends_with("0001"));
        assert_eq!(p.to_string(), hex);
        assert_eq!(Pdq::from_hex(&hex.to_uppercase()), Ok(p));
        assert_eq!(hex.parse::<Pdq>(), Ok(p));
        assert_eq!(Pdq::from_hex(&hex[1..]), Err(HexError::Length { expected: 64, found: 63 }));
        assert!(Pdq::from_hex(&format!("{}g", &hex[1..])).is_err());
        assert_eq!(Pdq::from_u64s(p.to_u64s()), p);
        let json = serde_json::to_string(&p).unwrap();
        assert_eq!(json, format!("\"{hex}\""));
        assert_eq!(serde_json::from_str::<Pdq>(&json).unwrap(), p);
        assert!(serde_json::from_str::<Pdq>("\"abc\"").unwrap_err().to_string().contains("needs 64 hex digits"));
    }

    #[test]
    fn distance_counts_differing_bits() {
        let a = Pdq([0xffff; 16]);
        assert_eq!(a.distance(&Pdq::default()), 256);
        let mut b = a;
        b.0[3] ^= 0b1011;
        assert_eq!(a.distance(&b), 3);
    }

    #[test]
    fn sizes_are_checked_and_tiny_images_hash_to_zero() {
        assert!(matches!(pdq_rgb(10, 10, &[0; 299]), Err(PdqError::Size { expected: 300, found: 299, .. })));
        assert!(pdq_luma(10, 10, vec![0.0; 101]).is_err());
        assert!(pdq_rgb(u32::MAX, u32::MAX, &[]).is_err());
        for (w, h) in [(0, 0), (1, 1), (4, 4), (7, 3), (3, 700)] {
            let rgb = picture(w, h, 1);
            let hashed = pdq_rgb(w as u32, h as u32, &rgb).unwrap();
            assert_eq!((hashed.hash, hashed.quality), (Pdq::default(), 0));
            assert_eq!(hashed.dihedral(), [Pdq::default(); 8]);
        }
    }

    #[test]
    fn non_finite_luma_is_an_error_not_a_hang() {
        let mut luma = vec![1.0f32; 100 * 100];
        luma[50] = f32::NAN;
        assert_eq!(pdq_luma(100, 100, luma).unwrap_err(), PdqError::NotFinite);
        let mut luma = vec![1.0f32; 64 * 64];
        luma[5] = f32::INFINITY;
        assert_eq!(pdq_luma(64, 64, luma).unwrap_err(), PdqError::NotFinite);
        assert_eq!(pdq_luma(64, 64, vec![f32::MAX; 64 * 64]).unwrap_err(), PdqError::NotFinite);
    }

    #[test]
    fn flat_images_have_quality_zero() {
        let h = pdq_rgb(100, 80, &vec![77; 100 * 80 * 3]).unwrap();
        assert_eq!(h.quality, 0);
    }

    #[test]
    fn torben_is_the_lower_median() {
        let mut m = [0f32; 256];
        for (i, v) in m.iter_mut().enumerate() {
            *v = ((i * 37) % 256) as f32;
        }
        assert_eq!(torben(&m), 127.0);
        assert_eq!(torben(&[5.0; 256]), 5.0);
    }

    #[test]
    fn dihedral_of_a_transposed_image_is_flip_plus1() {
        let (w, h) = (120, 90);
        let rgb = picture(w, h, 7);
        let mut t = vec![0u8; rgb.len()];
        for y in 0..h {
            for x in 0..w {
                t[(x * h + y) * 3..(x * h + y) * 3 + 3].copy_from_slice(&rgb[(y * w + x) * 3..(y * w + x) * 3 + 3]);
            }
        }
        let a = pdq_rgb(w as u32, h as u32, &rgb).unwrap();
        let b = pdq_rgb(h as u32, w as u32, &t).unwrap();
        let v = a.dihedral();
        assert_eq!(v[0], a.hash);
        assert!(v[6].distance(&b.hash) <= 16, "transpose: {}", v[6].distance(&b.hash));
    }
}
