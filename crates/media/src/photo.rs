//! Photos: bytes in, a `full` and a `thumb` variant + BlurHash out (contract §4).
//!
//! Order of work, each step refusing as early and as cheaply as it can:
//! sniff → header dimensions → pixel limit (before any pixel buffer exists) → decode →
//! resize to `full` → EXIF orientation (on the smaller `full`, cheaper than on the original) →
//! `thumb` from the `full` → BlurHash from a ≤ 32 px rendition of the thumb → encode.
//!
//! Decisions worth knowing:
//! - **Decoders**: JPEG with libjpeg-turbo, straight to Y′CbCr planes (see [`crate::raster`]);
//!   PNG, GIF, WebP, BMP with the `image` crate under [`image::Limits`]. GIF and WebP animations
//!   give their first frame.
//! - **Scaled JPEG decoding**: libjpeg-turbo can decode at 1/2, 1/4 or 1/8 inside the IDCT. The
//!   largest of those reductions is used whose result is still at least the `full` size on both
//!   edges (so the `full` is never upscaled from a reduced decode). Other factors (e.g. 5/8) are
//!   slower than a full decode with this library, so they are never used.
//! - **Resize filter**: Lanczos3 for both variants (libvips' choice in `thumbnail`); never
//!   upscaled; the long edge is the bound, the short edge rounded, at least 1 px.
//! - **Output**: JPEG 4:2:0 at `jpeg_quality`, baseline, libjpeg-turbo's accurate DCT; PNG for
//!   both variants when the decoded alpha has any pixel below 255 (fully opaque alpha is
//!   dropped and gives JPEG).
//! - **Metadata**: outputs are encoded from pixels, so no Exif, GPS, XMP, IPTC or comments
//!   survive. The source's **ICC profile is kept** (JPEG APP2 `ICC_PROFILE`, PNG `iCCP`, WebP
//!   `ICCP`) and re-embedded in both variants when its colour space matches the output pixels
//!   (`RGB ` for colour, `GRAY` for greyscale): dropping a Display P3 profile would visibly
//!   desaturate iPhone photos. CMYK profiles are dropped with the CMYK→RGB conversion.
//! - **Determinism**: the same bytes and settings give byte-identical outputs (fixed-point
//!   resize, libjpeg-turbo's accurate DCT, deterministic PNG deflate, no timestamps).

use std::io::Cursor;

use fast_image_resize::Resizer;
use image::{DynamicImage, ImageDecoder, ImageEncoder, ImageError, ImageFormat, ImageReader};
use turbojpeg::{Colorspace, Decompressor, PixelFormat, ScalingFactor, Subsamp};

use crate::fingerprint::{composite, gray_to_rgb, hash_decoded, ImageHash};
use crate::jpeg_meta::{embed_icc, has_eoi_after_scan, icc_matches, read_jpeg_meta, rewrite_header};
use crate::raster::{orient_pixels, pad_plane, resize_pixels, tiny_rgba, transposes, Pixels, Plane, FILTER};
use crate::settings::{MediaSettings, PhotoSettings};
use crate::sniff::{sniff, Format};
use crate::MediaError;

/// The encoding of an output variant, which decides its key's extension and its Content-Type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum OutputKind {
    /// JPEG, the default.
    Jpeg,
    /// PNG, when the source has real transparency.
    Png,
}

impl OutputKind {
    /// Extension for the output key `media/{job}/{item}/{variant}.{ext}`.
    pub fn ext(self) -> &'static str {
        match self {
            OutputKind::Jpeg => "jpg",
            OutputKind::Png => "png",
        }
    }

    /// Content-Type stored with the object and reported in the verdict.
    pub fn content_type(self) -> &'static str {
        match self {
            OutputKind::Jpeg => "image/jpeg",
            OutputKind::Png => "image/png",
        }
    }
}

/// One encoded variant, ready to store; its size goes into the verdict's `outputs`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Encoded {
    /// The file's bytes.
    #[serde(with = "serde_bytes")]
    pub bytes: Vec<u8>,
    /// JPEG or PNG.
    pub kind: OutputKind,
    /// Pixel width as displayed (orientation applied).
    pub width: u32,
    /// Pixel height as displayed (orientation applied).
    pub height: u32,
}

/// Everything the worker stores and reports for a cleared photo.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PhotoOutput {
    /// Original width as displayed (EXIF orientation applied) — the verdict's `width`.
    pub width: u32,
    /// Original height as displayed — the verdict's `height`.
    pub height: u32,
    /// Fitted to `full_edge`, never upscaled.
    pub full: Encoded,
    /// Fitted to `thumb_edge`, made from the `full`.
    pub thumb: Encoded,
    /// 4×3-component BlurHash of the thumb, the verdict's placeholder.
    pub blurhash: String,
    /// What the bytes were.
    pub source_format: Format,
    /// PDQ of the image as shown (the decode, oriented; transparency on white), contract §5.
    pub hash: ImageHash,
}

/// The one decode of a photo, oriented metadata beside it. Kept separate from rendering so a
/// later consumer (the classifier) can reuse the decoded pixels instead of decoding again.
pub(crate) struct DecodedPhoto {
    pub format: Format,
    /// Source dimensions as stored (before orientation, before any scaled decode).
    pub width: u32,
    pub height: u32,
    /// EXIF orientation 1..=8.
    pub orientation: u8,
    /// Source ICC profile, when present and readable.
    pub icc: Option<Vec<u8>>,
    /// Decoded pixels as stored (possibly reduced by a scaled JPEG decode).
    pub pixels: Pixels,
}

impl DecodedPhoto {
    /// Dimensions as displayed.
    fn oriented(&self) -> (u32, u32) {
        if transposes(self.orientation) {
            (self.height, self.width)
        } else {
            (self.width, self.height)
        }
    }
}

/// Decodes, resizes, orients and encodes a photo. See the module docs for the rules.
pub fn process_photo(bytes: &[u8], settings: &MediaSettings) -> Result<PhotoOutput, MediaError> {
    settings.ensure_valid()?;
    let decoded = decode(bytes, settings, false)?;
    finish(decoded, &settings.photo, std::time::Instant::now())
}

/// [`process_photo`] that also hands `inspect` the image exactly as the outputs show it, for
/// the nudity filter (contract §3): the one decode, at full size, oriented (EXIF, or HEIF's
/// transformations), as packed RGB; greyscale repeated into RGB; an image with transparency
/// twice, composited on black and then on white (a picture drawn only in the alpha channel
/// vanishes on black and shows on white). `inspect` sees those pixels before the variants are
/// made from the same decode, and its results come back in that order.
///
/// A colour JPEG is then decoded to full-size RGB with libjpeg-turbo's default ISLOW IDCT and
/// fancy upsampling — what Pillow's decoder gives, so the classifier's input equals its
/// reference's — instead of to (possibly DCT-scaled) Y′CbCr planes; the variants then come from
/// RGB, so their bytes differ slightly from [`process_photo`]'s (each path is deterministic).
pub fn process_photo_inspecting<T>(
    bytes: &[u8],
    settings: &MediaSettings,
    mut inspect: impl FnMut(u32, u32, &[u8]) -> T,
) -> Result<(PhotoOutput, Vec<T>), MediaError> {
    settings.ensure_valid()?;
    let t0 = std::time::Instant::now();
    let decoded = decode(bytes, settings, true)?;
    let mut seen = Vec::with_capacity(2);
    let oriented = orient_pixels(decoded.pixels.clone(), decoded.orientation);
    match &oriented {
        Pixels::Rgb(p) => seen.push(inspect(p.width, p.height, p.data())),
        Pixels::Gray(p) => seen.push(inspect(p.width, p.height, &gray_to_rgb(p.data()))),
        Pixels::Rgba(p) => {
            for bg in [0, 255] {
                seen.push(inspect(p.width, p.height, &composite(p.data(), bg)));
            }
        }
        Pixels::Yuv { .. } => return Err(MediaError::internal("a photo to inspect was decoded to Y′CbCr planes")),
    }
    drop(oriented);
    Ok((finish(decoded, &settings.photo, t0)?, seen))
}

fn finish(decoded: DecodedPhoto, settings: &PhotoSettings, t0: std::time::Instant) -> Result<PhotoOutput, MediaError> {
    let t_decode = t0.elapsed();
    let out = render(decoded, settings)?;
    tracing::debug!(
        format = out.source_format.name(),
        width = out.width,
        height = out.height,
        decode_ms = t_decode.as_secs_f64() * 1e3,
        total_ms = t0.elapsed().as_secs_f64() * 1e3,
        "photo processed"
    );
    Ok(out)
}

/// Reads a photo's dimensions (as stored, before EXIF orientation) from its header only,
/// without allocating pixels, so oversized images are refused before any decode.
pub fn probe_dimensions(bytes: &[u8], format: Format) -> Result<(u32, u32), MediaError> {
    let dims = match format {
        Format::Jpeg => {
            let h = jpeg_header(bytes)?;
            (h.width, h.height)
        }
        Format::Png => {
            if bytes.len() < 24 || &bytes[12..16] != b"IHDR" {
                return Err(MediaError::corrupt("PNG has no IHDR header chunk"));
            }
            (be32(&bytes[16..20]), be32(&bytes[20..24]))
        }
        Format::Gif => {
            if bytes.len() < 13 {
                return Err(MediaError::corrupt(format!(
                    "GIF data ends after {} bytes, inside its header",
                    bytes.len()
                )));
            }
            (u16::from_le_bytes([bytes[6], bytes[7]]) as u32, u16::from_le_bytes([bytes[8], bytes[9]]) as u32)
        }
        Format::Webp => webp_dimensions(bytes)?,
        Format::Bmp => bmp_dimensions(bytes)?,
        other => return Err(unsupported(other)),
    };
    if dims.0 == 0 || dims.1 == 0 {
        return Err(MediaError::corrupt(format!(
            "{} header declares an empty {}×{} image",
            format.name(),
            dims.0,
            dims.1
        )));
    }
    Ok(dims)
}

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

fn webp_dimensions(b: &[u8]) -> Result<(u32, u32), MediaError> {
    let short = || MediaError::corrupt(format!("WebP data ends after {} bytes, inside its header", b.len()));
    let chunk = b.get(12..16).ok_or_else(short)?;
    match chunk {
        b"VP8 " => {
            let h = b.get(20..30).ok_or_else(short)?;
            if h[3..6] != [0x9D, 0x01, 0x2A] {
                return Err(MediaError::corrupt("WebP VP8 frame has no start code"));
            }
            Ok(((u16::from_le_bytes([h[6], h[7]]) & 0x3FFF) as u32, (u16::from_le_bytes([h[8], h[9]]) & 0x3FFF) as u32))
        }
        b"VP8L" => {
            let h = b.get(20..25).ok_or_else(short)?;
            if h[0] != 0x2F {
                return Err(MediaError::corrupt("WebP lossless stream has a bad signature"));
            }
            let bits = u32::from_le_bytes([h[1], h[2], h[3], h[4]]);
            Ok(((bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1))
        }
        b"VP8X" => {
            let h = b.get(24..30).ok_or_else(short)?;
            let w = u32::from_le_bytes([h[0], h[1], h[2], 0]) + 1;
            let ht = u32::from_le_bytes([h[3], h[4], h[5], 0]) + 1;
            Ok((w, ht))
        }
        _ => Err(MediaError::corrupt("WebP has no VP8, VP8L or VP8X chunk where one is required")),
    }
}

fn bmp_dimensions(b: &[u8]) -> Result<(u32, u32), MediaError> {
    let h = b
        .get(14..26)
        .ok_or_else(|| MediaError::corrupt(format!("BMP data ends after {} bytes, inside its header", b.len())))?;
    let dib = u32::from_le_bytes([h[0], h[1], h[2], h[3]]);
    if dib == 12 {
        Ok((u16::from_le_bytes([h[4], h[5]]) as u32, u16::from_le_bytes([h[6], h[7]]) as u32))
    } else {
        let w = i32::from_le_bytes([h[4], h[5], h[6], h[7]]);
        let ht = i32::from_le_bytes([h[8], h[9], h[10], h[11]]);
        Ok((w.unsigned_abs(), ht.unsigned_abs()))
    }
}

pub(crate) fn check_pixels(width: u32, height: u32, limit: u64) -> Result<(), MediaError> {
    if width as u64 * height as u64 > limit {
        return Err(MediaError::TooManyPixels { what: "image".into(), width, height, limit });
    }
    Ok(())
}

fn unsupported(format: Format) -> MediaError {
    MediaError::Unsupported { format: format.name().to_string() }
}

/// Fits `w`×`h` into a `edge`-px long edge, never upscaling, keeping at least 1 px.
pub(crate) fn fit(w: u32, h: u32, edge: u32) -> (u32, u32) {
    if w.max(h) <= edge {
        return (w, h);
    }
    let scale = |short: u32, long: u32| ((short as u64 * edge as u64 + long as u64 / 2) / long as u64).max(1) as u32;
    if w >= h {
        (edge, scale(h, w))
    } else {
        (scale(w, h), edge)
    }
}

/// Decodes a photo; with `want_rgb`, a JPEG is decoded at full size to RGB (greyscale to one
/// plane; see [`process_photo_inspecting`]) instead of to (possibly DCT-scaled) Y′CbCr planes.
pub(crate) fn decode(bytes: &[u8], settings: &MediaSettings, want_rgb: bool) -> Result<DecodedPhoto, MediaError> {
    let format = sniff(bytes).ok_or_else(|| MediaError::Unrecognized { head: hex_head(bytes) })?;
    if !format.is_supported_photo() {
        return Err(unsupported(format));
    }
    if format.is_heif() {
        // libheif reads the declared size from the boxes and checks it before decoding.
        return crate::heif::decode_heif(bytes, format, settings.limits.max_pixels);
    }
    if format == Format::Jpeg {
        let header = jpeg_header(bytes)?;
        check_pixels(header.width, header.height, settings.limits.max_pixels)?;
        return match &header.rewritten {
            None => decode_jpeg(bytes, bytes.len(), header.width, header.height, &settings.photo, want_rgb),
            Some(rewritten) => {
                let mut d =
                    decode_jpeg(rewritten, bytes.len(), header.width, header.height, &settings.photo, want_rgb)?;
                if header.icc_dropped {
                    // The original's profile, if ours can read it (libjpeg-turbo could not).
                    d.icc = read_jpeg_meta(bytes).icc;
                }
                Ok(d)
            }
        };
    }
    let (w, h) = probe_dimensions(bytes, format)?;
    check_pixels(w, h, settings.limits.max_pixels)?;
    // The pure-Rust decoders are fuzzed but not proven panic-free; a panic on hostile input must
    // reject the item, not take the worker thread down. Nothing shared is mutated inside, so
    // unwinding cannot leave broken state behind.
    let decoded = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        decode_with_image(bytes, format, w, h, settings.limits.max_pixels)
    }));
    decoded.unwrap_or_else(|panic| {
        let what = crate::panic_message(panic.as_ref());
        tracing::warn!(format = format.name(), panic = %what, "image decoder panicked");
        Err(MediaError::corrupt(format!("the {} decoder failed on this file ({what})", format.name())))
    })
}

fn hex_head(bytes: &[u8]) -> String {
    if bytes.is_empty() {
        return "nothing: it is empty".to_string();
    }
    bytes.iter().take(8).map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(" ")
}

/// A JPEG's dimensions from its header, and the header rewritten when libjpeg-turbo could only
/// read it that way (see [`rewrite_header`]).
struct JpegHeader {
    width: u32,
    height: u32,
    rewritten: Option<Vec<u8>>,
    icc_dropped: bool,
}

/// Reads a JPEG's header with libjpeg-turbo. Two kinds of header damage leave the picture intact
/// and are read past, each at most once, by rewriting the header as libjpeg itself would read it:
/// junk between segments ("extraneous bytes before marker", what some cameras and editors write)
/// and profile segments libjpeg refuses ("bad ICC marker"). Anything else is `Corrupt`.
fn jpeg_header(bytes: &[u8]) -> Result<JpegHeader, MediaError> {
    let mut d = Decompressor::new().map_err(|e| MediaError::internal(format!("turbojpeg init: {e}")))?;
    let mut rewritten: Option<Vec<u8>> = None;
    let mut icc_dropped = false;
    loop {
        let src = rewritten.as_deref().unwrap_or(bytes);
        let message = match d.read_header(src) {
            Ok(h) => {
                return Ok(JpegHeader {
                    width: u32::try_from(h.width).map_err(|_| MediaError::corrupt("JPEG width is out of range"))?,
                    height: u32::try_from(h.height).map_err(|_| MediaError::corrupt("JPEG height is out of range"))?,
                    rewritten,
                    icc_dropped,
                })
            }
            Err(e) => tj_message(&e),
        };
        let unreadable = || MediaError::corrupt(format!("JPEG header is unreadable: {message}"));
        if message.contains("extraneous bytes") && rewritten.is_none() {
            let (clean, skipped) = rewrite_header(src, false).ok_or_else(unreadable)?;
            tracing::debug!(warning = %message, skipped, "skipping junk between JPEG header segments");
            rewritten = Some(clean);
        } else if message.contains("ICC") && !icc_dropped {
            let (stripped, _) = rewrite_header(src, true).ok_or_else(unreadable)?;
            tracing::warn!(error = %message, "dropping an unreadable ICC profile from a JPEG");
            rewritten = Some(stripped);
            icc_dropped = true;
        } else {
            return Err(unreadable());
        }
    }
}

/// The message inside a turbojpeg error, without the crate's prefix.
fn tj_message(e: &turbojpeg::Error) -> String {
    match e {
        turbojpeg::Error::TurboJpegError(m) => m.clone(),
        other => other.to_string(),
    }
}

/// Decodes `bytes` (the file, or its header rewritten; `file_len` is the file's own length, for
/// messages).
fn decode_jpeg(
    bytes: &[u8],
    file_len: usize,
    w: u32,
    h: u32,
    settings: &PhotoSettings,
    want_rgb: bool,
) -> Result<DecodedPhoto, MediaError> {
    let tj_internal = |e: turbojpeg::Error| MediaError::internal(format!("turbojpeg: {e}"));
    let mut d = Decompressor::new().map_err(tj_internal)?;
    let header = d
        .read_header(bytes)
        .map_err(|e| MediaError::corrupt(format!("JPEG header is unreadable: {}", tj_message(&e))))?;
    let meta = read_jpeg_meta(bytes);

    // Pick the strongest DCT-domain reduction that still covers the `full` size.
    let (fw, fh) = {
        let (ow, oh) = if transposes(meta.orientation) { (h, w) } else { (w, h) };
        let (fw, fh) = fit(ow, oh, settings.full_edge);
        if transposes(meta.orientation) {
            (fh, fw)
        } else {
            (fw, fh)
        }
    };
    // Inspecting needs every pixel at full size, whatever the colour space (CMYK and greyscale
    // included: what is scored is what is shown).
    let full_rgb = want_rgb;
    let mut scale = ScalingFactor::ONE;
    if !header.is_lossless && !full_rgb {
        for denom in [8u32, 4, 2] {
            if w.div_ceil(denom) >= fw && h.div_ceil(denom) >= fh {
                scale = ScalingFactor::new(1, denom as usize);
                break;
            }
        }
    }
    d.set_scaling_factor(scale).map_err(tj_internal)?;
    // Bounds the work a hostile progressive JPEG can demand (libjpeg-turbo's advice).
    d.set_scan_limit(500).map_err(tj_internal)?;
    let (sw, sh) = (scale.scale(header.width), scale.scale(header.height));

    let planar = !full_rgb
        && matches!(header.colorspace, Colorspace::YCbCr)
        && !header.is_lossless
        && matches!(
            header.subsamp,
            Subsamp::None | Subsamp::Sub2x1 | Subsamp::Sub2x2 | Subsamp::Sub1x2 | Subsamp::Sub4x1 | Subsamp::Sub1x4
        );

    let pixels = if planar {
        let (sx, sy) = header.subsamp.size();
        let (pw, ph) = (sw.next_multiple_of(sx), sh.next_multiple_of(sy));
        let (cw, ch) = (pw / sx, ph / sy);
        let len = pw * ph + 2 * cw * ch;
        let expected = turbojpeg::yuv_pixels_len(sw, 1, sh, header.subsamp).map_err(tj_internal)?;
        if expected != len {
            return Err(MediaError::internal(format!("YUV layout mismatch: {expected} != {len}")));
        }
        let mut buf = vec![0u8; len];
        let image =
            turbojpeg::YuvImage { pixels: &mut buf[..], width: sw, align: 1, height: sh, subsamp: header.subsamp };
        d.decompress_to_yuv(bytes, image).or_else(|e| jpeg_decode_error(bytes, file_len, e))?;
        let buf = std::sync::Arc::new(buf);
        let chroma_extent = (sw as f64 / sx as f64, sh as f64 / sy as f64);
        Pixels::Yuv {
            y: Plane::shared(&buf, 0, pw as u32, ph as u32, (sw as f64, sh as f64)),
            cb: Plane::shared(&buf, pw * ph, cw as u32, ch as u32, chroma_extent),
            cr: Plane::shared(&buf, pw * ph + cw * ch, cw as u32, ch as u32, chroma_extent),
        }
    } else {
        let format = match header.colorspace {
            Colorspace::Gray => PixelFormat::GRAY,
            Colorspace::CMYK | Colorspace::YCCK => PixelFormat::CMYK,
            _ => PixelFormat::RGB,
        };
        let bpp = format.size();
        let mut buf = vec![0u8; sw * sh * bpp];
        let image = turbojpeg::Image { pixels: &mut buf[..], width: sw, pitch: sw * bpp, height: sh, format };
        d.decompress(bytes, image).or_else(|e| jpeg_decode_error(bytes, file_len, e))?;
        match format {
            PixelFormat::GRAY => Pixels::Gray(Plane::tight(buf, sw as u32, sh as u32, 1)),
            PixelFormat::CMYK => Pixels::Rgb(Plane::tight(cmyk_to_rgb(&buf), sw as u32, sh as u32, 3)),
            _ => Pixels::Rgb(Plane::tight(buf, sw as u32, sh as u32, 3)),
        }
    };
    Ok(DecodedPhoto { format: Format::Jpeg, width: w, height: h, orientation: meta.orientation, icc: meta.icc, pixels })
}

/// Turns a libjpeg-turbo failure into our error. libjpeg-turbo reports a truncated file only as
/// a *warning* (and fills the missing rows with grey), which turbojpeg surfaces as an error: a
/// truncated JPEG is `Corrupt`. The one warning tolerated is "extraneous bytes before marker"
/// (junk before the EOI or a restart marker, which some cameras produce, every pixel decoded),
/// and only when the data reaches an EOI: libjpeg-turbo reports one warning per call, so this
/// one could hide a truncation.
fn jpeg_decode_error(bytes: &[u8], file_len: usize, e: turbojpeg::Error) -> Result<(), MediaError> {
    let msg = tj_message(&e);
    let lower = msg.to_ascii_lowercase();
    if lower.contains("premature end") {
        return Err(MediaError::corrupt(format!(
            "JPEG data ends after {file_len} bytes, before the image is complete"
        )));
    }
    if lower.contains("extraneous bytes before marker") {
        // libjpeg-turbo records only the first warning of a call: this one may hide a later
        // "premature end", so the data must show its end itself.
        if !has_eoi_after_scan(bytes) {
            return Err(MediaError::corrupt(format!(
                "JPEG data ends after {file_len} bytes, before the image is complete"
            )));
        }
        tracing::debug!(warning = %msg, "tolerated JPEG warning");
        return Ok(());
    }
    if lower.contains("precision") {
        return Err(MediaError::Unsupported { format: "12- and 16-bit JPEG".to_string() });
    }
    Err(MediaError::corrupt(format!("JPEG does not decode cleanly: {msg}")))
}

/// Adobe-style (inverted) CMYK, what Photoshop writes, to RGB without a colour-management engine.
fn cmyk_to_rgb(cmyk: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(cmyk.len() / 4 * 3);
    for p in cmyk.chunks_exact(4) {
        let k = p[3] as u32;
        out.extend_from_slice(&[
            (p[0] as u32 * k / 255) as u8,
            (p[1] as u32 * k / 255) as u8,
            (p[2] as u32 * k / 255) as u8,
        ]);
    }
    out
}

fn decode_with_image(
    bytes: &[u8],
    format: Format,
    w: u32,
    h: u32,
    max_pixels: u64,
) -> Result<DecodedPhoto, MediaError> {
    let image_format = match format {
        Format::Png => ImageFormat::Png,
        Format::Gif => ImageFormat::Gif,
        Format::Webp => ImageFormat::WebP,
        Format::Bmp => ImageFormat::Bmp,
        other => return Err(unsupported(other)),
    };
    let mut reader = ImageReader::with_format(Cursor::new(bytes), image_format);
    let mut limits = image::Limits::default();
    // Dimensions were checked against the pixel limit; the decoder must not go past them.
    limits.max_image_width = Some(w);
    limits.max_image_height = Some(h);
    // Room for the widest output (16-bit RGBA) plus decoder working memory.
    limits.max_alloc = Some((w as u64 * h as u64).saturating_mul(8).saturating_add(64 << 20));
    reader.limits(limits);
    let name = format.name();
    let mut decoder = reader.into_decoder().map_err(|e| image_error(name, bytes.len(), e))?;
    let (dw, dh) = decoder.dimensions();
    if dw == 0 || dh == 0 {
        return Err(MediaError::corrupt(format!("{name} decoder reports an empty {dw}×{dh} image")));
    }
    check_pixels(dw, dh, max_pixels)?;
    // Broken metadata never fails a photo: fall back to "as stored" / no profile.
    // EXIF (WebP `EXIF`, PNG `eXIf`): some writers keep JPEG's "Exif\0\0" prefix inside the
    // chunk, which the `image` crate's own reading misses.
    let orientation = match decoder.exif_metadata() {
        Ok(Some(chunk)) => exif_orientation(&chunk),
        _ => 1,
    };
    let icc = decoder.icc_profile().ok().flatten();
    let img = DynamicImage::from_decoder(decoder).map_err(|e| image_error(name, bytes.len(), e))?;
    let pixels = to_pixels(img);
    Ok(DecodedPhoto { format, width: dw, height: dh, orientation, icc, pixels })
}

/// The Orientation tag (1..=8) of a TIFF-structured EXIF block, with or without JPEG's
/// "Exif\0\0" prefix; 1 when absent or unreadable.
fn exif_orientation(chunk: &[u8]) -> u8 {
    let tiff = chunk.strip_prefix(b"Exif\0\0").unwrap_or(chunk);
    image::metadata::Orientation::from_exif_chunk(tiff).map(|o| o.to_exif()).unwrap_or(1)
}

fn to_pixels(img: DynamicImage) -> Pixels {
    let (w, h) = (img.width(), img.height());
    if img.color().has_alpha() {
        let rgba = img.into_rgba8().into_raw();
        if rgba.chunks_exact(4).any(|p| p[3] != 255) {
            return Pixels::Rgba(Plane::tight(rgba, w, h, 4));
        }
        let rgb: Vec<u8> = rgba.chunks_exact(4).flat_map(|p| [p[0], p[1], p[2]]).collect();
        return Pixels::Rgb(Plane::tight(rgb, w, h, 3));
    }
    match img {
        DynamicImage::ImageLuma8(_) | DynamicImage::ImageLuma16(_) => {
            Pixels::Gray(Plane::tight(img.into_luma8().into_raw(), w, h, 1))
        }
        _ => Pixels::Rgb(Plane::tight(img.into_rgb8().into_raw(), w, h, 3)),
    }
}

fn image_error(name: &str, len: usize, e: ImageError) -> MediaError {
    match e {
        ImageError::IoError(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
            MediaError::corrupt(format!("{name} data ends after {len} bytes, before the image is complete"))
        }
        ImageError::Unsupported(u) => MediaError::Unsupported { format: format!("{name} ({u})") },
        ImageError::Limits(l) => {
            MediaError::corrupt(format!("{name} needs more memory to decode than its size allows ({l})"))
        }
        other => MediaError::corrupt(format!("{name} does not decode cleanly: {other}")),
    }
}

fn render(decoded: DecodedPhoto, settings: &PhotoSettings) -> Result<PhotoOutput, MediaError> {
    let (ow, oh) = decoded.oriented();
    let (fw, fh) = fit(ow, oh, settings.full_edge);
    let (tw, th) = fit(ow, oh, settings.thumb_edge);
    let o = decoded.orientation;
    let mut resizer = Resizer::new();

    // Resize in stored orientation, then orient the (smaller) full.
    let (fw_s, fh_s) = if transposes(o) { (fh, fw) } else { (fw, fh) };
    let full = resize_pixels(&mut resizer, &decoded.pixels, fw_s, fh_s, FILTER)?;
    let hash = hash_decoded(&decoded.pixels, o)?;
    drop(decoded.pixels);
    let full = orient_pixels(full, o);
    let thumb = resize_pixels(&mut resizer, &full, tw, th, FILTER)?;

    let (bw, bh) = fit(tw, th, 32);
    let tiny = tiny_rgba(&mut resizer, &thumb, bw, bh)?;
    let blurhash = blurhash::encode(4, 3, bw, bh, &tiny).map_err(|e| MediaError::internal(format!("blurhash: {e}")))?;

    let icc = decoded.icc.as_deref().filter(|p| icc_matches(p, full.is_gray()));
    let full = encode(&full, fw, fh, settings.jpeg_quality, icc)?;
    let thumb = encode(&thumb, tw, th, settings.jpeg_quality, icc)?;
    Ok(PhotoOutput { width: ow, height: oh, full, thumb, blurhash, source_format: decoded.format, hash })
}

fn encode(px: &Pixels, w: u32, h: u32, quality: u8, icc: Option<&[u8]>) -> Result<Encoded, MediaError> {
    let tj = |e: turbojpeg::Error| MediaError::internal(format!("JPEG encode: {e}"));
    let jpeg = match px {
        Pixels::Rgba(p) => {
            let mut out = Vec::new();
            let mut enc = image::codecs::png::PngEncoder::new_with_quality(
                &mut out,
                image::codecs::png::CompressionType::Fast,
                image::codecs::png::FilterType::Adaptive,
            );
            if let Some(icc) = icc {
                // An encoder that cannot embed a profile still gives a valid image.
                let _ = enc.set_icc_profile(icc.to_vec());
            }
            enc.write_image(p.data(), w, h, image::ExtendedColorType::Rgba8)
                .map_err(|e| MediaError::internal(format!("PNG encode: {e}")))?;
            return Ok(Encoded { bytes: out, kind: OutputKind::Png, width: w, height: h });
        }
        Pixels::Yuv { y, cb, cr } => {
            let mut c = jpeg_compressor(quality)?;
            let (pw, ph) = (w.next_multiple_of(2), h.next_multiple_of(2));
            let padded;
            let y_data = if (pw, ph) == (w, h) {
                y.data()
            } else {
                padded = pad_plane(y, pw, ph);
                &padded[..]
            };
            let planes = turbojpeg::YuvPlanesImage {
                y_plane: y_data,
                u_plane: cb.data(),
                v_plane: cr.data(),
                width: w as usize,
                height: h as usize,
                y_stride: pw as usize,
                u_stride: cb.width as usize,
                v_stride: cr.width as usize,
                subsamp: Subsamp::Sub2x2,
            };
            c.compress_yuv_planes_to_vec(&planes).map_err(tj)?
        }
        Pixels::Gray(p) => {
            let mut c = jpeg_compressor(quality)?;
            c.set_subsamp(Subsamp::Gray).map_err(tj)?;
            let image = turbojpeg::Image {
                pixels: p.data(),
                width: w as usize,
                pitch: w as usize,
                height: h as usize,
                format: PixelFormat::GRAY,
            };
            c.compress_to_vec(image).map_err(tj)?
        }
        Pixels::Rgb(p) => {
            let mut c = jpeg_compressor(quality)?;
            c.set_subsamp(Subsamp::Sub2x2).map_err(tj)?;
            let image = turbojpeg::Image {
                pixels: p.data(),
                width: w as usize,
                pitch: 3 * w as usize,
                height: h as usize,
                format: PixelFormat::RGB,
            };
            c.compress_to_vec(image).map_err(tj)?
        }
    };
    let bytes = match icc {
        Some(icc) => embed_icc(jpeg, icc),
        None => jpeg,
    };
    Ok(Encoded { bytes, kind: OutputKind::Jpeg, width: w, height: h })
}

fn jpeg_compressor(quality: u8) -> Result<turbojpeg::Compressor, MediaError> {
    let tj = |e: turbojpeg::Error| MediaError::internal(format!("JPEG encode: {e}"));
    let mut c = turbojpeg::Compressor::new().map_err(tj)?;
    c.set_quality(quality as i32).map_err(tj)?;
    Ok(c)
}

#[cfg(test)]
#[path = "photo_tests.rs"]
mod tests;
