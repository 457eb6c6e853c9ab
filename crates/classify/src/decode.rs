//! Decoding encoded bytes to the RGB8 pixels the reference sees after
//! `Image.open(BytesIO(data)); img.load(); img.convert("RGB")` (Pillow 13.0.0).
//!
//! - No EXIF orientation is applied (Pillow's `open` does not), no ICC/gamma conversion.
//! - JPEG: libjpeg-turbo (Pillow bundles libjpeg-turbo 3.2.0, `turbojpeg` bundles 3.1.0), default
//!   ISLOW IDCT and fancy upsampling, no DCT scaling (`draft` is not used on this path).
//!   Greyscale is replicated to RGB. CMYK/YCCK: Pillow stores the decoder's CMYK inverted (it
//!   assumes Adobe polarity, `CMYK;I`) and converts with `cmyk2rgb`; both are reproduced.
//! - PNG: the `png` crate with palette/low-bit-depth/tRNS expansion (same values as Pillow's
//!   unpackers: 1/2/4-bit grey scaled by 255/85/17), then Pillow's mode conversions: alpha
//!   dropped (never composited), 16-bit RGB(A)/grey+alpha keep the high byte (`RGB;16B`,
//!   `LA;16B`), and 16-bit grey is Pillow's `I;16` mode, whose conversion to RGB *clips* every
//!   value above 255 to 255 (`I16_RGB`), a reference quirk kept for parity.
//! - Anything else (GIF, WebP, BMP, TIFF) is decoded by the `image` crate and dropped to RGB8:
//!   a best effort, not guaranteed identical to Pillow (e.g. a GIF's transparent index, lossy
//!   WebP upsampling). The worker scores its own decoded pixels through `score_rgb` anyway.

use crate::{ClassifyError, MAX_PIXELS};

/// Decoded RGB8 pixels.
#[derive(Debug, Clone)]
pub struct Rgb8 {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// `width * height * 3` bytes, packed RGB.
    pub pixels: Vec<u8>,
}

fn check_pixels(width: u64, height: u64) -> Result<(), ClassifyError> {
    if width == 0 || height == 0 {
        return Err(ClassifyError::Decode(format!("image has no pixels ({width}x{height})")));
    }
    if width.saturating_mul(height) > MAX_PIXELS {
        return Err(ClassifyError::TooManyPixels { width, height, limit: MAX_PIXELS });
    }
    Ok(())
}

/// Decodes `bytes` the way the reference does before preprocessing.
pub fn decode_like_pillow(bytes: &[u8]) -> Result<Rgb8, ClassifyError> {
    if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        decode_jpeg(bytes)
    } else if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        decode_png(bytes)
    } else {
        decode_other(bytes)
    }
}

fn decode_jpeg(bytes: &[u8]) -> Result<Rgb8, ClassifyError> {
    use turbojpeg::{Colorspace, Image, PixelFormat};
    let derr = |e: turbojpeg::Error| ClassifyError::Decode(format!("JPEG: {e}"));
    let mut d = turbojpeg::Decompressor::new().map_err(derr)?;
    let header = d.read_header(bytes).map_err(derr)?;
    check_pixels(header.width as u64, header.height as u64)?;
    let (w, h) = (header.width, header.height);
    let cmyk = matches!(header.colorspace, Colorspace::CMYK | Colorspace::YCCK);
    let format = if cmyk { PixelFormat::CMYK } else { PixelFormat::RGB };
    let mut buf = vec![0u8; w * h * format.size()];
    d.decompress(bytes, Image { pixels: &mut buf[..], width: w, pitch: w * format.size(), height: h, format })
        .map_err(derr)?;
    let pixels = if cmyk {
        buf.chunks_exact(4)
            .flat_map(|p| {
                // Pillow: rawmode "CMYK;I" inverts what libjpeg returns, then cmyk2rgb.
                let (c, m, y, k) = (255 - p[0], 255 - p[1], 255 - p[2], 255 - p[3]);
                let nk = 255 - i32::from(k);
                [c, m, y].map(|v| clip8(nk - muldiv255(i32::from(v), nk)))
            })
            .collect()
    } else {
        buf
    };
    Ok(Rgb8 { width: w as u32, height: h as u32, pixels })
}

/// Pillow's `MULDIV255(a, b)`: `a * b / 255` rounded, in integers.
#[inline]
fn muldiv255(a: i32, b: i32) -> i32 {
    let tmp = a * b + 128;
    ((tmp >> 8) + tmp) >> 8
}

#[inline]
fn clip8(v: i32) -> u8 {
    v.clamp(0, 255) as u8
}

fn decode_png(bytes: &[u8]) -> Result<Rgb8, ClassifyError> {
    use png::{BitDepth, ColorType, Transformations};
    let derr = |e: png::DecodingError| ClassifyError::Decode(format!("PNG: {e}"));
    let mut decoder = png::Decoder::new(std::io::Cursor::new(bytes));
    // The pixel limit below bounds memory; the png crate's own byte limit would refuse 12 MP
    // 16-bit images.
    decoder.set_limits(png::Limits { bytes: usize::MAX });
    decoder.set_transformations(Transformations::EXPAND);
    let mut reader = decoder.read_info().map_err(derr)?;
    {
        let info = reader.info();
        check_pixels(u64::from(info.width), u64::from(info.height))?;
    }
    let size =
        reader.output_buffer_size().ok_or_else(|| ClassifyError::Decode("PNG: output buffer size overflows".into()))?;
    let mut buf = vec![0u8; size];
    let frame = reader.next_frame(&mut buf).map_err(derr)?;
    let (w, h) = (frame.width as usize, frame.height as usize);
    let stride = frame.line_size;
    let (channels, sixteen) = match (frame.color_type, frame.bit_depth) {
        (ColorType::Grayscale, BitDepth::Sixteen) => (1, true),
        (ColorType::Grayscale, _) => (1, false),
        (ColorType::GrayscaleAlpha, BitDepth::Sixteen) => (2, true),
        (ColorType::GrayscaleAlpha, _) => (2, false),
        (ColorType::Rgb, BitDepth::Sixteen) => (3, true),
        (ColorType::Rgb, _) => (3, false),
        (ColorType::Rgba, BitDepth::Sixteen) => (4, true),
        (ColorType::Rgba, _) => (4, false),
        (ColorType::Indexed, _) => {
            return Err(ClassifyError::Decode("PNG: palette was not expanded".into()));
        }
    };
    // Pillow's I;16 mode (16-bit grey in the file, with or without tRNS) -> RGB clips at 255;
    // 16-bit grey+alpha in the file is Pillow RGBA via LA;16B (high bytes).
    let i16_grey = sixteen && reader.info().color_type == ColorType::Grayscale;
    let bps = if sixteen { 2 } else { 1 };
    let mut pixels = Vec::with_capacity(w * h * 3);
    for row in buf.chunks(stride).take(h) {
        for px in row.chunks_exact(channels * bps).take(w) {
            // sample i: the high byte for 16-bit (big-endian in PNG), the byte for 8-bit
            let s = |i: usize| px[i * bps];
            match channels {
                1 | 2 if i16_grey => {
                    let v = if px[0] == 0 { px[1] } else { 255 };
                    pixels.extend_from_slice(&[v, v, v]);
                }
                1 | 2 => pixels.extend_from_slice(&[s(0), s(0), s(0)]),
                _ => pixels.extend_from_slice(&[s(0), s(1), s(2)]),
            }
        }
    }
    if pixels.len() != w * h * 3 {
        return Err(ClassifyError::Decode("PNG: truncated image data".into()));
    }
    Ok(Rgb8 { width: w as u32, height: h as u32, pixels })
}

fn decode_other(bytes: &[u8]) -> Result<Rgb8, ClassifyError> {
    let format =
        image::guess_format(bytes).map_err(|_| ClassifyError::UnsupportedFormat("not a recognised image".into()))?;
    let mut reader = image::ImageReader::with_format(std::io::Cursor::new(bytes), format);
    reader.limits(limits_for(MAX_PIXELS));
    let (w, h) = reader.into_dimensions().map_err(|e| ClassifyError::Decode(format!("{format:?}: {e}")))?;
    check_pixels(u64::from(w), u64::from(h))?;
    let mut reader = image::ImageReader::with_format(std::io::Cursor::new(bytes), format);
    reader.limits(limits_for(MAX_PIXELS));
    let img = reader.decode().map_err(|e| ClassifyError::Decode(format!("{format:?}: {e}")))?;
    let rgb = img.into_rgb8();
    Ok(Rgb8 { width: rgb.width(), height: rgb.height(), pixels: rgb.into_raw() })
}

/// Allocation cap for the `image` decoders: 8 bytes per allowed pixel (16-bit RGBA).
fn limits_for(max_pixels: u64) -> image::Limits {
    let mut limits = image::Limits::default();
    limits.max_alloc = Some(max_pixels * 8);
    limits
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn muldiv255_matches_pillow_macro() {
        for a in [0, 1, 127, 128, 254, 255] {
            for b in [0, 1, 128, 255] {
                let exact = (f64::from(a) * f64::from(b) / 255.0).round() as i32;
                assert!((muldiv255(a, b) - exact).abs() <= 1, "{a} {b}");
            }
        }
        assert_eq!(muldiv255(255, 255), 255);
        assert_eq!(muldiv255(0, 255), 0);
    }

    #[test]
    fn rejects_garbage_and_truncation() {
        assert!(matches!(decode_like_pillow(b"hello"), Err(ClassifyError::UnsupportedFormat(_))));
        assert!(matches!(decode_like_pillow(&[0xFF, 0xD8, 0xFF, 0xE0, 0, 1]), Err(ClassifyError::Decode(_))));
        assert!(matches!(decode_like_pillow(b"\x89PNG\r\n\x1a\n\0\0"), Err(ClassifyError::Decode(_))));
    }
}
