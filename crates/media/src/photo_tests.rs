//! Photo pipeline tests. Inputs are generated here (image crate + turbojpeg), nothing on disk.

use super::*;
use crate::jpeg_meta::tests::fake_icc;
use image::{Rgb, RgbImage, Rgba, RgbaImage};

use mediagate_testkit::media::{contains, png_chunk};

use crate::settings::Limits;

/// Deterministic photo-like content: gradients plus pseudo-random noise.
pub(crate) fn noisy_rgb(w: u32, h: u32, seed: u32) -> Vec<u8> {
    let mut s = seed.wrapping_mul(2_654_435_761).max(1);
    let mut out = Vec::with_capacity(w as usize * h as usize * 3);
    for y in 0..h {
        for x in 0..w {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            let n = s & 0x3F;
            out.push(((x * 200 / w.max(1)) + n / 2).min(255) as u8);
            out.push(((y * 200 / h.max(1)) + (n >> 1)).min(255) as u8);
            out.push((((x + y) * 120 / (w + h).max(1)) + n).min(255) as u8);
        }
    }
    out
}

fn jpeg_from_rgb(rgb: &[u8], w: u32, h: u32, quality: i32, subsamp: Subsamp) -> Vec<u8> {
    let image = turbojpeg::Image {
        pixels: rgb,
        width: w as usize,
        pitch: 3 * w as usize,
        height: h as usize,
        format: PixelFormat::RGB,
    };
    turbojpeg::compress(image, quality, subsamp).unwrap().to_vec()
}

fn encode_with_image(img: &DynamicImage, format: ImageFormat) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, format).unwrap();
    out.into_inner()
}

fn decode_rgb(jpeg: &[u8]) -> turbojpeg::Image<Vec<u8>> {
    turbojpeg::decompress(jpeg, PixelFormat::RGB).unwrap()
}

fn px(img: &turbojpeg::Image<Vec<u8>>, x: usize, y: usize) -> [u8; 3] {
    let i = y * img.pitch + x * 3;
    [img.pixels[i], img.pixels[i + 1], img.pixels[i + 2]]
}

fn close(a: [u8; 3], b: [u8; 3], tol: i32) -> bool {
    a.iter().zip(b).all(|(&x, y)| (x as i32 - y as i32).abs() <= tol)
}

/// Left half red, right half blue.
fn two_tone(w: u32, h: u32) -> Vec<u8> {
    let mut v = Vec::with_capacity((w * h * 3) as usize);
    for _ in 0..h {
        for x in 0..w {
            v.extend_from_slice(if x < w / 2 { &[220, 30, 30] } else { &[30, 30, 220] });
        }
    }
    v
}

fn segment(marker: u8, payload: &[u8]) -> Vec<u8> {
    let mut s = vec![0xFF, marker];
    s.extend_from_slice(&((payload.len() + 2) as u16).to_be_bytes());
    s.extend_from_slice(payload);
    s
}

/// Inserts marker segments right after SOI.
fn with_segments(jpeg: &[u8], segments: &[Vec<u8>]) -> Vec<u8> {
    let mut out = jpeg[..2].to_vec();
    for s in segments {
        out.extend_from_slice(s);
    }
    out.extend_from_slice(&jpeg[2..]);
    out
}

/// An APP1 Exif payload (big-endian TIFF) with Orientation and a GPS IFD holding a marker string.
fn exif_app1(orientation: u16) -> Vec<u8> {
    let mut t = b"MM\0*\0\0\0\x08".to_vec();
    // IFD0 at 8: 2 entries.
    t.extend_from_slice(&2u16.to_be_bytes());
    t.extend_from_slice(&[0x01, 0x12, 0, 3, 0, 0, 0, 1]);
    t.extend_from_slice(&orientation.to_be_bytes());
    t.extend_from_slice(&[0, 0]);
    t.extend_from_slice(&[0x88, 0x25, 0, 4, 0, 0, 0, 1, 0, 0, 0, 38]);
    t.extend_from_slice(&[0, 0, 0, 0]);
    // GPS IFD at 38: GPSLatitudeRef "N", GPSMapDatum "SECRET-GPS!" at 68.
    t.extend_from_slice(&2u16.to_be_bytes());
    t.extend_from_slice(&[0x00, 0x01, 0, 2, 0, 0, 0, 2, b'N', 0, 0, 0]);
    t.extend_from_slice(&[0x00, 0x12, 0, 2, 0, 0, 0, 12, 0, 0, 0, 68]);
    t.extend_from_slice(&[0, 0, 0, 0]);
    assert_eq!(t.len(), 68);
    t.extend_from_slice(b"SECRET-GPS!\0");
    let mut p = b"Exif\0\0".to_vec();
    p.extend_from_slice(&t);
    p
}

fn settings() -> MediaSettings {
    MediaSettings::default()
}

/// The default settings with other photo knobs.
fn photo(p: PhotoSettings) -> MediaSettings {
    MediaSettings { photo: p, ..settings() }
}

#[test]
fn twelve_megapixel_jpeg_gives_2048_and_320() {
    let (w, h) = (4000, 3000);
    let src = jpeg_from_rgb(&noisy_rgb(w, h, 1), w, h, 90, Subsamp::Sub2x2);
    let out = process_photo(&src, &settings()).unwrap();
    assert_eq!((out.width, out.height), (4000, 3000));
    assert_eq!((out.full.width, out.full.height), (2048, 1536));
    assert_eq!((out.thumb.width, out.thumb.height), (320, 240));
    assert_eq!(out.full.kind, OutputKind::Jpeg);
    assert_eq!((out.full.kind.ext(), out.full.kind.content_type()), ("jpg", "image/jpeg"));
    assert_eq!(out.source_format, Format::Jpeg);
    let full = turbojpeg::read_header(&out.full.bytes).unwrap();
    assert_eq!((full.width, full.height, full.subsamp), (2048, 1536, Subsamp::Sub2x2));
    let thumb = turbojpeg::read_header(&out.thumb.bytes).unwrap();
    assert_eq!((thumb.width, thumb.height), (320, 240));
    assert_eq!(out.blurhash.len(), 28, "{}", out.blurhash);
}

#[test]
fn never_upscales() {
    let img = DynamicImage::ImageRgb8(RgbImage::from_raw(1000, 800, noisy_rgb(1000, 800, 2)).unwrap());
    let out = process_photo(&encode_with_image(&img, ImageFormat::Png), &settings()).unwrap();
    assert_eq!((out.full.width, out.full.height), (1000, 800));
    assert_eq!((out.thumb.width, out.thumb.height), (320, 256));
    assert_eq!(out.source_format, Format::Png);
    // Tiny images stay tiny, at least 1 px on each edge.
    let img = DynamicImage::ImageRgb8(RgbImage::from_pixel(3000, 2, Rgb([1, 2, 3])));
    let out = process_photo(&encode_with_image(&img, ImageFormat::Png), &settings()).unwrap();
    assert_eq!((out.full.width, out.full.height), (2048, 1));
    assert_eq!((out.thumb.width, out.thumb.height), (320, 1));
}

#[test]
fn fit_rounds_and_keeps_one_pixel() {
    assert_eq!(fit(4000, 3000, 2048), (2048, 1536));
    assert_eq!(fit(3000, 4000, 2048), (1536, 2048));
    assert_eq!(fit(4032, 3024, 2048), (2048, 1536));
    assert_eq!(fit(1000, 800, 2048), (1000, 800));
    assert_eq!(fit(100_000, 10, 320), (320, 1));
}

#[test]
fn transparency_gives_png_for_both_variants() {
    let mut img = RgbaImage::from_pixel(600, 400, Rgba([10, 200, 10, 255]));
    img.put_pixel(5, 5, Rgba([0, 0, 0, 0]));
    for x in 300..600 {
        for y in 0..400 {
            img.put_pixel(x, y, Rgba([10, 200, 10, 100]));
        }
    }
    let src = encode_with_image(&DynamicImage::ImageRgba8(img), ImageFormat::Png);
    let out = process_photo(&src, &settings()).unwrap();
    assert_eq!(out.full.kind, OutputKind::Png);
    assert_eq!(out.thumb.kind, OutputKind::Png);
    assert_eq!((out.full.kind.ext(), out.full.kind.content_type()), ("png", "image/png"));
    assert_eq!((out.thumb.width, out.thumb.height), (320, 213));
    let thumb = image::load_from_memory(&out.thumb.bytes).unwrap().into_rgba8();
    assert_eq!(thumb.dimensions(), (320, 213));
    let a = thumb.get_pixel(300, 100)[3];
    assert!((90..=110).contains(&a), "alpha {a}");
    assert_eq!(thumb.get_pixel(50, 100)[3], 255);
}

#[test]
fn opaque_rgba_gives_jpeg() {
    let img = RgbaImage::from_pixel(640, 480, Rgba([10, 120, 240, 255]));
    let src = encode_with_image(&DynamicImage::ImageRgba8(img), ImageFormat::Png);
    let out = process_photo(&src, &settings()).unwrap();
    assert_eq!(out.full.kind, OutputKind::Jpeg);
    assert_eq!(out.thumb.kind, OutputKind::Jpeg);
    let full = decode_rgb(&out.full.bytes);
    assert!(close(px(&full, 320, 240), [10, 120, 240], 4), "{:?}", px(&full, 320, 240));
}

#[test]
fn exif_orientation_6_is_applied_and_metadata_removed() {
    let (w, h) = (400, 300);
    let base = jpeg_from_rgb(&two_tone(w, h), w, h, 90, Subsamp::Sub2x2);
    let xmp = b"http://ns.adobe.com/xap/1.0/\0<x:xmpmeta>SECRET-XMP</x:xmpmeta>".to_vec();
    let src =
        with_segments(&base, &[segment(0xE1, &exif_app1(6)), segment(0xE1, &xmp), segment(0xFE, b"SECRET-COMMENT")]);
    assert!(contains(&src, b"SECRET-GPS!") && contains(&src, b"Exif\0\0"));
    let out = process_photo(&src, &settings()).unwrap();
    // Displayed size: width and height swapped.
    assert_eq!((out.width, out.height), (300, 400));
    assert_eq!((out.full.width, out.full.height), (300, 400));
    assert_eq!((out.thumb.width, out.thumb.height), (240, 320));
    // 90° clockwise: the source's left (red) half is now on top.
    let full = decode_rgb(&out.full.bytes);
    assert_eq!((full.width, full.height), (300, 400));
    assert!(close(px(&full, 150, 50), [220, 30, 30], 12), "{:?}", px(&full, 150, 50));
    assert!(close(px(&full, 150, 350), [30, 30, 220], 12), "{:?}", px(&full, 150, 350));
    for variant in [&out.full.bytes, &out.thumb.bytes] {
        for needle in [&b"Exif"[..], b"MM\0*", b"SECRET", b"http://ns.adobe.com"] {
            assert!(!contains(variant, needle), "output contains {:?}", String::from_utf8_lossy(needle));
        }
        // Only SOI, APP0 (JFIF), DQT… — no APP1 (Exif/XMP) and no COM.
        assert_eq!(crate::jpeg_meta::read_jpeg_meta(variant), crate::jpeg_meta::JpegMeta { orientation: 1, icc: None });
        assert!(!contains(&variant[..variant.len().min(600)], &[0xFF, 0xE1]));
        assert!(!contains(&variant[..variant.len().min(600)], &[0xFF, 0xFE]));
    }
}

#[test]
fn every_orientation_gives_displayed_dimensions() {
    let (w, h) = (301, 201); // odd on purpose: padding and chroma extents
    let base = jpeg_from_rgb(&noisy_rgb(w, h, 3), w, h, 85, Subsamp::Sub2x2);
    for o in 1..=8u16 {
        let src = with_segments(&base, &[segment(0xE1, &exif_app1(o))]);
        let out = process_photo(&src, &photo(PhotoSettings { full_edge: 150, ..PhotoSettings::DEFAULT })).unwrap();
        let expect = if o >= 5 { (201, 301) } else { (301, 201) };
        assert_eq!((out.width, out.height), expect, "orientation {o}");
        let full = turbojpeg::read_header(&out.full.bytes).unwrap();
        let fexp = if o >= 5 { (100, 150) } else { (150, 100) };
        assert_eq!((full.width, full.height), fexp, "orientation {o}");
    }
}

#[test]
fn broken_exif_is_ignored() {
    let (w, h) = (64, 48);
    let base = jpeg_from_rgb(&noisy_rgb(w, h, 4), w, h, 85, Subsamp::Sub2x2);
    let mut bad = exif_app1(6);
    bad.truncate(20); // IFD cut short
    let src = with_segments(&base, &[segment(0xE1, &bad), segment(0xE1, b"Exif\0\0garbage-garbage")]);
    let out = process_photo(&src, &settings()).unwrap();
    assert_eq!((out.width, out.height), (64, 48));
}

/// A 74-byte PNG that declares 40000×40000 must be refused from its header alone.
#[test]
fn pixel_bomb_png_is_refused_before_decoding() {
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&40000u32.to_be_bytes());
    ihdr.extend_from_slice(&40000u32.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    png.extend(png_chunk(b"IHDR", &ihdr));
    png.extend(png_chunk(
        b"IDAT",
        &[0x78, 0x9C, 0xED, 0xC1, 0x01, 0x0D, 0, 0, 0, 0xC2, 0xA0, 0xF7, 0x4F, 0x6D, 0x0E, 0x37, 0xA0],
    ));
    png.extend(png_chunk(b"IEND", &[]));
    assert_eq!(png.len(), 74);
    let t = std::time::Instant::now();
    let err = process_photo(&png, &settings()).unwrap_err();
    assert!(t.elapsed().as_millis() < 50, "took {:?}", t.elapsed());
    assert_eq!(err, MediaError::TooManyPixels { what: "image".into(), width: 40000, height: 40000, limit: 50_000_000 });
    assert!(matches!(err, MediaError::TooManyPixels { .. }));
    assert_eq!(err.to_string(), "image is 40000×40000 = 1600000000 pixels; the limit is 50000000");
    assert_eq!(probe_dimensions(&png, Format::Png).unwrap(), (40000, 40000));
}

#[test]
fn pixel_limit_applies_to_jpeg_too() {
    let base = jpeg_from_rgb(&noisy_rgb(100, 100, 5), 100, 100, 85, Subsamp::Sub2x2);
    let err =
        process_photo(&base, &MediaSettings { limits: Limits { max_pixels: 9_999, ..Limits::DEFAULT }, ..settings() })
            .unwrap_err();
    assert!(matches!(err, MediaError::TooManyPixels { width: 100, height: 100, .. }));
    assert!(process_photo(
        &base,
        &MediaSettings { limits: Limits { max_pixels: 10_000, ..Limits::DEFAULT }, ..settings() }
    )
    .is_ok());
}

#[test]
fn truncated_jpeg_is_corrupt() {
    let (w, h) = (640, 480);
    let src = jpeg_from_rgb(&noisy_rgb(w, h, 6), w, h, 90, Subsamp::Sub2x2);
    for keep in [src.len() * 3 / 5, src.len() - 2, 700] {
        let err = process_photo(&src[..keep], &settings()).unwrap_err();
        assert!(matches!(err, MediaError::Corrupt { .. }), "kept {keep}: {err}");
        let msg = err.to_string();
        assert!(msg.contains("JPEG"), "{msg}");
    }
    let err = process_photo(&src[..src.len() * 3 / 5], &settings()).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("JPEG data ends after {} bytes, before the image is complete", src.len() * 3 / 5)
    );
}

#[test]
fn garbage_after_magic_is_corrupt() {
    let mut noise = Vec::new();
    let mut s = 7u32;
    for _ in 0..4000 {
        s = s.wrapping_mul(1_103_515_245).wrapping_add(12345);
        noise.push((s >> 16) as u8);
    }
    let cases: [&[u8]; 5] = [
        b"\xFF\xD8\xFF\xE0",
        b"\x89PNG\r\n\x1a\n",
        b"GIF89a\x0a\x00\x0a\x00\xf7\x00\x00",
        b"RIFF\x00\x10\x00\x00WEBPVP8 ",
        b"\xFF\xD8\xFF\xDB\x00\x43",
    ];
    for magic in cases {
        let mut bytes = magic.to_vec();
        bytes.extend_from_slice(&noise);
        let err = process_photo(&bytes, &settings()).unwrap_err();
        assert!(matches!(err, MediaError::Corrupt { .. }), "{:?}: {err}", String::from_utf8_lossy(magic));
    }
    // A valid PNG header followed by garbage IDAT.
    let img = DynamicImage::ImageRgb8(RgbImage::from_raw(200, 100, noisy_rgb(200, 100, 8)).unwrap());
    let mut png = encode_with_image(&img, ImageFormat::Png);
    let m = (png.len() - 80).min(noise.len());
    png[60..60 + m].copy_from_slice(&noise[..m]);
    assert!(matches!(process_photo(&png, &settings()).unwrap_err(), MediaError::Corrupt { .. }));
    // A truncated PNG.
    let png = encode_with_image(&img, ImageFormat::Png);
    assert!(matches!(process_photo(&png[..png.len() / 2], &settings()).unwrap_err(), MediaError::Corrupt { .. }));
}

#[test]
fn unsupported_and_unrecognised_are_named() {
    // A HEIC that is only its `ftyp`: libheif reads it and finds nothing to show.
    let mut heic = b"\0\0\0\x18ftypheic\0\0\0\0mif1heic".to_vec();
    heic.extend_from_slice(&[0; 64]);
    let err = process_photo(&heic, &settings()).unwrap_err();
    assert!(matches!(&err, MediaError::Corrupt { message } if message.starts_with("HEIC ")), "{err:?}");
    let jxl = b"\0\0\0\x0cJXL \r\n\x87\n\0\0\0\x14ftypjxl \0\0\0\0jxl ".to_vec();
    let err = process_photo(&jxl, &settings()).unwrap_err();
    assert_eq!(err, MediaError::Unsupported { format: "JPEG XL".into() });
    assert_eq!(err.to_string(), "JPEG XL photos are not supported; send JPEG, PNG, WebP, GIF, HEIC or AVIF");
    assert!(matches!(
        err,
        MediaError::Unsupported { .. } | MediaError::Unrecognized { .. } | MediaError::UnsupportedCodec { .. }
    ));
    let err = process_photo(b"<!doctype html><html>", &settings()).unwrap_err();
    assert!(matches!(
        err,
        MediaError::Unsupported { .. } | MediaError::Unrecognized { .. } | MediaError::UnsupportedCodec { .. }
    ));
    assert!(err.to_string().contains("3c 21 64 6f"), "{err}");
    assert!(matches!(
        process_photo(b"", &settings()).unwrap_err(),
        MediaError::Unsupported { .. } | MediaError::Unrecognized { .. } | MediaError::UnsupportedCodec { .. }
    ));
    // A TIFF header and an empty IFD (the image crate is built without TIFF: no contract format is one).
    let tiff = b"II*\x00\x08\x00\x00\x00\x00\x00\x00\x00\x00\x00";
    assert_eq!(process_photo(tiff, &settings()).unwrap_err(), MediaError::Unsupported { format: "TIFF".into() });
    let err =
        process_photo(&[1, 2, 3], &photo(PhotoSettings { jpeg_quality: 0, ..PhotoSettings::DEFAULT })).unwrap_err();
    assert!(matches!(err, MediaError::Internal { .. }), "invalid settings are our fault, not the input's: {err:?}");
}

#[test]
fn animated_gif_gives_first_frame() {
    use image::codecs::gif::GifEncoder;
    use image::Frame;
    let red = RgbaImage::from_pixel(200, 100, Rgba([230, 20, 20, 255]));
    let blue = RgbaImage::from_pixel(200, 100, Rgba([20, 20, 230, 255]));
    let mut gif = Vec::new();
    {
        let mut enc = GifEncoder::new(&mut gif);
        enc.encode_frames(vec![Frame::new(red), Frame::new(blue)]).unwrap();
    }
    let out = process_photo(&gif, &settings()).unwrap();
    assert_eq!(out.source_format, Format::Gif);
    assert_eq!(out.full.kind, OutputKind::Jpeg);
    let full = decode_rgb(&out.full.bytes);
    assert_eq!((full.width, full.height), (200, 100));
    assert!(close(px(&full, 100, 50), [230, 20, 20], 16), "{:?}", px(&full, 100, 50));
}

#[test]
fn webp_bmp_and_gray_decode() {
    let rgb = DynamicImage::ImageRgb8(RgbImage::from_raw(300, 200, noisy_rgb(300, 200, 9)).unwrap());
    for (fmt, sniffed) in [(ImageFormat::WebP, Format::Webp), (ImageFormat::Bmp, Format::Bmp)] {
        let src = encode_with_image(&rgb, fmt);
        assert_eq!(probe_dimensions(&src, sniffed).unwrap(), (300, 200));
        let out = process_photo(&src, &settings()).unwrap();
        assert_eq!(out.source_format, sniffed);
        assert_eq!((out.full.width, out.full.height, out.full.kind), (300, 200, OutputKind::Jpeg));
    }
    let gray = DynamicImage::ImageLuma8(image::GrayImage::from_pixel(500, 400, image::Luma([77])));
    let out = process_photo(&encode_with_image(&gray, ImageFormat::Png), &settings()).unwrap();
    assert_eq!(turbojpeg::read_header(&out.full.bytes).unwrap().subsamp, Subsamp::Gray);
    let gray_jpeg = encode_with_image(&gray, ImageFormat::Jpeg);
    let out = process_photo(&gray_jpeg, &settings()).unwrap();
    assert_eq!(turbojpeg::read_header(&out.thumb.bytes).unwrap().subsamp, Subsamp::Gray);
    assert_eq!((out.thumb.width, out.thumb.height), (320, 256));
}

#[test]
fn jpeg_subsamplings_and_cmyk_keep_colours() {
    let (w, h) = (641, 479);
    let rgb = two_tone(w, h);
    for ss in [Subsamp::None, Subsamp::Sub2x1, Subsamp::Sub2x2, Subsamp::Sub1x2, Subsamp::Sub4x1] {
        let src = jpeg_from_rgb(&rgb, w, h, 92, ss);
        let out = process_photo(&src, &photo(PhotoSettings { full_edge: 400, ..PhotoSettings::DEFAULT })).unwrap();
        assert_eq!((out.full.width, out.full.height), (400, 299), "{ss:?}");
        let full = decode_rgb(&out.full.bytes);
        assert!(close(px(&full, 50, 150), [220, 30, 30], 12), "{ss:?} {:?}", px(&full, 50, 150));
        assert!(close(px(&full, 350, 150), [30, 30, 220], 12), "{ss:?} {:?}", px(&full, 350, 150));
    }
    // Adobe CMYK (inverted): C=M=Y=255-x, K=255 for our two colours.
    let cmyk: Vec<u8> = rgb.chunks_exact(3).flat_map(|p| [p[0], p[1], p[2], 255]).collect();
    let image = turbojpeg::Image {
        pixels: &cmyk[..],
        width: w as usize,
        pitch: 4 * w as usize,
        height: h as usize,
        format: PixelFormat::CMYK,
    };
    let src = turbojpeg::compress(image, 95, Subsamp::None).unwrap().to_vec();
    assert!(matches!(turbojpeg::read_header(&src).unwrap().colorspace, Colorspace::YCCK | Colorspace::CMYK));
    let out = process_photo(&src, &settings()).unwrap();
    let full = decode_rgb(&out.full.bytes);
    assert!(close(px(&full, 100, 200), [220, 30, 30], 12), "{:?}", px(&full, 100, 200));
}

#[test]
fn scaled_decode_still_covers_the_full_size() {
    // 2400×1800 for a 500-px full: 1/4 (600×450) covers 500×375, 1/8 (300×225) would not.
    let (w, h) = (2400, 1800);
    let src = jpeg_from_rgb(&two_tone(w, h), w, h, 90, Subsamp::Sub2x2);
    let s = photo(PhotoSettings { full_edge: 500, thumb_edge: 100, ..PhotoSettings::DEFAULT });
    let decoded = decode(&src, &s, false).unwrap();
    match &decoded.pixels {
        Pixels::Yuv { y, .. } => assert_eq!(y.extent, (600.0, 450.0)),
        _ => panic!("expected planar decode"),
    }
    let out = process_photo(&src, &s).unwrap();
    assert_eq!((out.width, out.height), (2400, 1800));
    assert_eq!((out.full.width, out.full.height), (500, 375));
    assert_eq!((out.thumb.width, out.thumb.height), (100, 75));
    let full = decode_rgb(&out.full.bytes);
    assert!(close(px(&full, 100, 100), [220, 30, 30], 12));
    // At the default 2048 px, a 4000-px source is decoded at full size.
    assert!(fit(4000, 3000, 2048).0 > 4000 / 2);
}

#[test]
fn icc_profile_is_kept_and_cmyk_profile_dropped() {
    let (w, h) = (320, 200);
    let base = jpeg_from_rgb(&noisy_rgb(w, h, 10), w, h, 90, Subsamp::Sub2x2);
    let icc = fake_icc(3000, b"RGB ");
    let src = crate::jpeg_meta::embed_icc(base.clone(), &icc);
    let out = process_photo(&src, &settings()).unwrap();
    for v in [&out.full.bytes, &out.thumb.bytes] {
        assert_eq!(crate::jpeg_meta::read_jpeg_meta(v).icc.as_deref(), Some(&icc[..]));
        turbojpeg::decompress(v, PixelFormat::RGB).unwrap();
    }
    let cmyk_profile = fake_icc(3000, b"CMYK");
    let src = crate::jpeg_meta::embed_icc(base, &cmyk_profile);
    let out = process_photo(&src, &settings()).unwrap();
    assert_eq!(crate::jpeg_meta::read_jpeg_meta(&out.full.bytes).icc, None);
}

#[test]
fn outputs_are_deterministic() {
    let (w, h) = (1500, 1000);
    let jpeg = jpeg_from_rgb(&noisy_rgb(w, h, 11), w, h, 90, Subsamp::Sub2x2);
    let mut rgba =
        RgbaImage::from_raw(w, h, noisy_rgb(w, h, 12).chunks_exact(3).flat_map(|p| [p[0], p[1], p[2], p[0]]).collect())
            .unwrap();
    rgba.put_pixel(0, 0, Rgba([0, 0, 0, 0]));
    let png = encode_with_image(&DynamicImage::ImageRgba8(rgba), ImageFormat::Png);
    for src in [jpeg, png] {
        let a = process_photo(&src, &settings()).unwrap();
        let b = process_photo(&src, &settings()).unwrap();
        assert_eq!(a, b);
    }
}

#[test]
fn progressive_trailing_data_and_tolerated_warning() {
    let (w, h) = (500, 300);
    let rgb = noisy_rgb(w, h, 13);
    let image = turbojpeg::Image {
        pixels: &rgb[..],
        width: w as usize,
        pitch: 3 * w as usize,
        height: h as usize,
        format: PixelFormat::RGB,
    };
    let mut c = turbojpeg::Compressor::new().unwrap();
    c.set_progressive(true).unwrap();
    c.set_quality(90).unwrap();
    let progressive = c.compress_to_vec(image).unwrap();
    assert!(turbojpeg::read_header(&progressive).unwrap().is_progressive);
    assert_eq!(process_photo(&progressive, &settings()).unwrap().full.width, 500);

    // Data after EOI (motion photos append a video there) is not part of the image.
    let baseline = jpeg_from_rgb(&rgb, w, h, 90, Subsamp::Sub2x2);
    let mut trailing = baseline.clone();
    trailing.extend_from_slice(b"\0\0\0\x18ftypmp42 trailing video data");
    assert!(process_photo(&trailing, &settings()).is_ok());

    // "N extraneous bytes before marker 0xd9" leaves every pixel decoded: tolerated.
    let n = baseline.len();
    let mut extraneous = baseline[..n - 2].to_vec();
    extraneous.extend_from_slice(&[0x12; 64]);
    extraneous.extend_from_slice(&[0xFF, 0xD9]);
    let warning = turbojpeg::decompress(&extraneous, PixelFormat::RGB).map(|_| ()).unwrap_err().to_string();
    assert!(warning.contains("extraneous bytes"), "{warning}");
    assert!(process_photo(&extraneous, &settings()).is_ok());
}

/// Junk between header segments (what pillow's `junk_jpeg_header.jpg` and Photoshop's broken
/// files carry) is skipped as libjpeg skips it: the photo is the one without the junk, byte for
/// byte. The skip never hides damage further on: a truncated scan behind a dirty header is
/// still refused as truncated.
#[test]
fn junk_between_header_segments_is_read_past() {
    let (w, h) = (320, 240);
    let clean = jpeg_from_rgb(&noisy_rgb(w, h, 12), w, h, 90, Subsamp::Sub2x2);
    assert_eq!(&clean[2..4], &[0xFF, 0xE0], "turbojpeg writes a JFIF APP0 first");
    let after_app0 = 4 + u16::from_be_bytes([clean[4], clean[5]]) as usize;
    let expected = process_photo(&clean, &settings()).unwrap();
    for junk in [&b"hello"[..], &[0xFF, 0x00, 0x01, 0x02][..]] {
        let mut dirty = clean[..after_app0].to_vec();
        dirty.extend_from_slice(junk);
        dirty.extend_from_slice(&clean[after_app0..]);
        let refused = turbojpeg::read_header(&dirty).unwrap_err().to_string();
        assert!(refused.contains("extraneous bytes"), "{refused}");
        let out = process_photo(&dirty, &settings()).unwrap_or_else(|e| panic!("junk {junk:02x?}: {e}"));
        assert_eq!(out.full.bytes, expected.full.bytes);
        assert_eq!(out.thumb.bytes, expected.thumb.bytes);
        assert_eq!(probe_dimensions(&dirty, Format::Jpeg).unwrap(), (w, h));

        let cut = &dirty[..dirty.len() * 3 / 5];
        let err = process_photo(cut, &settings()).unwrap_err();
        assert_eq!(err.to_string(), format!("JPEG data ends after {} bytes, before the image is complete", cut.len()));
    }
}

// ---------------------------------------------------------------------------------------------
// Shapes found in other projects' test suites (real phones' and editors' files).

/// A WebP (lossless) carrying `exif` (a TIFF block, no "Exif\0\0" prefix) in an extended
/// (VP8X) container, as Android's and Lightroom's WebP writers do.
fn webp_with_exif(rgb: &DynamicImage, exif: &[u8]) -> Vec<u8> {
    let simple = encode_with_image(rgb, ImageFormat::WebP);
    assert_eq!(&simple[12..16], b"VP8L");
    let (w, h) = (rgb.width() - 1, rgb.height() - 1);
    let mut body = b"WEBP".to_vec();
    body.extend_from_slice(b"VP8X");
    body.extend_from_slice(&10u32.to_le_bytes());
    body.extend_from_slice(&[0x08, 0, 0, 0]); // EXIF flag
    body.extend_from_slice(&w.to_le_bytes()[..3]);
    body.extend_from_slice(&h.to_le_bytes()[..3]);
    body.extend_from_slice(&simple[12..]);
    body.extend_from_slice(b"EXIF");
    body.extend_from_slice(&(exif.len() as u32).to_le_bytes());
    body.extend_from_slice(exif);
    if exif.len() % 2 == 1 {
        body.push(0);
    }
    let mut out = b"RIFF".to_vec();
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(&body);
    out
}

/// The displayed pixel (x, y) of an output, any format.
fn shown(bytes: &[u8], x: u32, y: u32) -> [u8; 3] {
    let p = image::load_from_memory(bytes).unwrap().into_rgb8().get_pixel(x, y).0;
    [p[0], p[1], p[2]]
}

#[test]
fn webp_and_png_exif_orientation_is_applied() {
    let (w, h) = (400, 300);
    let img = DynamicImage::ImageRgb8(RgbImage::from_raw(w, h, two_tone(w, h)).unwrap());
    let app1 = exif_app1(6);
    let png = encode_with_image(&img, ImageFormat::Png);
    // PNG `eXIf` right after IHDR, as exiftool and Android write it.
    let png_with = |exif: &[u8]| {
        let mut out = png[..33].to_vec();
        out.extend(png_chunk(b"eXIf", exif));
        out.extend_from_slice(&png[33..]);
        out
    };
    // The TIFF block alone (the specs), and with JPEG's "Exif\0\0" prefix (some writers).
    let cases = [
        ("WebP", webp_with_exif(&img, &app1[6..])),
        ("WebP with Exif prefix", webp_with_exif(&img, &app1)),
        ("PNG", png_with(&app1[6..])),
        ("PNG with Exif prefix", png_with(&app1)),
    ];
    assert_eq!(sniff(&cases[0].1), Some(Format::Webp));
    for (label, src) in cases {
        let out = process_photo(&src, &settings()).unwrap_or_else(|e| panic!("{label}: {e}"));
        assert_eq!((out.width, out.height), (300, 400), "{label}: displayed size");
        assert_eq!((out.full.width, out.full.height), (300, 400), "{label}");
        // 90° clockwise: the source's left (red) half is on top.
        assert!(
            close(shown(&out.full.bytes, 150, 50), [220, 30, 30], 12),
            "{label}: {:?}",
            shown(&out.full.bytes, 150, 50)
        );
        assert!(close(shown(&out.full.bytes, 150, 350), [30, 30, 220], 12), "{label}");
        assert!(!contains(&out.full.bytes, b"SECRET-GPS"), "{label}: EXIF survived");
    }
}

/// Moves `segment` to just after the JPEG's SOF0 segment.
fn after_sof(jpeg: &[u8], segments: &[Vec<u8>]) -> Vec<u8> {
    let sof = jpeg.windows(2).position(|w| w == [0xFF, 0xC0]).expect("baseline SOF0");
    let len = u16::from_be_bytes([jpeg[sof + 2], jpeg[sof + 3]]) as usize;
    let end = sof + 2 + len;
    let mut out = jpeg[..end].to_vec();
    for s in segments {
        out.extend_from_slice(s);
    }
    out.extend_from_slice(&jpeg[end..]);
    out
}

fn icc_app2(icc: &[u8], seq: u8, count: u8) -> Vec<u8> {
    let mut p = b"ICC_PROFILE\0".to_vec();
    p.extend_from_slice(&[seq, count]);
    p.extend_from_slice(icc);
    segment(0xE2, &p)
}

#[test]
fn icc_after_sof_is_kept_and_a_broken_one_is_dropped_never_refused() {
    let (w, h) = (320, 200);
    let base = jpeg_from_rgb(&noisy_rgb(w, h, 21), w, h, 90, Subsamp::Sub2x2);
    let icc = fake_icc(3000, b"RGB ");
    // A complete profile after SOF: libjpeg decodes the picture; the profile is kept.
    let src = after_sof(&base, &[icc_app2(&icc, 1, 1)]);
    for inspecting in [false, true] {
        let out = if inspecting {
            process_photo_inspecting(&src, &settings(), |_, _, _| ()).map(|(o, _)| o)
        } else {
            process_photo(&src, &settings())
        }
        .unwrap_or_else(|e| panic!("ICC after SOF refused: {e}"));
        assert_eq!(crate::jpeg_meta::read_jpeg_meta(&out.full.bytes).icc.as_deref(), Some(&icc[..]));
    }
    // Chunk 1 of 2 only, and a chunk with a zero sequence number: dropped, the photo passes.
    for bad in [vec![icc_app2(&icc[..1000], 1, 2)], vec![icc_app2(&icc, 0, 1)]] {
        let src = after_sof(&base, &bad);
        let out = process_photo(&src, &settings()).unwrap_or_else(|e| panic!("broken ICC after SOF refused: {e}"));
        assert_eq!(crate::jpeg_meta::read_jpeg_meta(&out.full.bytes).icc, None);
        let out = process_photo_inspecting(&src, &settings(), |_, _, _| ()).unwrap().0;
        assert_eq!(crate::jpeg_meta::read_jpeg_meta(&out.full.bytes).icc, None);
    }
}
