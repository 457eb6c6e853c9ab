//! HEIC/HEIF and AVIF photos end to end, on files written by the real encoders (pillow-heif's
//! libheif + x265 and Pillow's libavif, via `scripts/heif-fixture.py`), decoded pixels checked
//! against pillow-heif / Pillow as the independent reader.

use std::process::Command;

use mediagate_media::{process_photo, process_photo_inspecting, Format, MediaError, MediaSettings, OutputKind};
use mediagate_testkit::heif::{claiming, photo, python, QUADRANTS};
use mediagate_testkit::media::contains;

fn rgb(jpeg_or_png: &[u8]) -> image::RgbaImage {
    image::load_from_memory(jpeg_or_png).expect("output decodes").into_rgba8()
}

fn close(a: [u8; 3], b: [u8; 3], tol: i32) -> bool {
    a.iter().zip(b).all(|(&x, y)| (x as i32 - y as i32).abs() <= tol)
}

/// The four quadrant centres of a displayed picture are the fixture's colours, in order.
fn assert_quadrants(img: &image::RgbaImage, what: &str) {
    let (w, h) = img.dimensions();
    let at = |x: u32, y: u32| {
        let p = img.get_pixel(x, y).0;
        [p[0], p[1], p[2]]
    };
    let got = [at(w / 4, h / 4), at(3 * w / 4, h / 4), at(w / 4, 3 * h / 4), at(3 * w / 4, 3 * h / 4)];
    for (g, want) in got.iter().zip(QUADRANTS) {
        assert!(close(*g, want, 24), "{what}: quadrants {got:?}, want {QUADRANTS:?}");
    }
}

/// The file as pillow-heif (HEIF) or Pillow (AVIF) shows it, transformations applied, as RGB.
fn pillow_rgb(bytes: &[u8]) -> (u32, u32, Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    let (src, out) = (dir.path().join("in"), dir.path().join("out.rgb"));
    std::fs::write(&src, bytes).unwrap();
    let code = "import sys, pillow_heif; from PIL import Image, ImageOps; pillow_heif.register_heif_opener(); \
                im = ImageOps.exif_transpose(Image.open(sys.argv[1])).convert('RGB'); \
                open(sys.argv[2], 'wb').write(im.tobytes()); print(im.size[0], im.size[1])";
    let o = Command::new(python()).args(["-c", code]).arg(&src).arg(&out).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let s = String::from_utf8(o.stdout).unwrap();
    let mut it = s.split_whitespace().map(|v| v.parse::<u32>().unwrap());
    (it.next().unwrap(), it.next().unwrap(), std::fs::read(out).unwrap())
}

fn settings() -> MediaSettings {
    MediaSettings::default()
}

#[test]
fn grid_heic_with_irot_thumbnail_and_exif_is_shown_as_displayed() {
    // 1200×900 displayed, stored as 900×1200 in 256 px HEVC tiles with irot/imir for
    // orientation 6, a 160 px thumbnail item and an EXIF block beside it.
    let src = photo("heic", 1200, 900, &["--grid", "256", "--orientation", "6", "--thumb", "160"]);
    assert!(contains(&src, b"grid") && contains(&src, b"irot") && contains(&src, b"SECRET-MAKE"));
    let out = process_photo(&src, &settings()).unwrap();
    assert_eq!(out.source_format, Format::Heic);
    assert_eq!((out.width, out.height), (1200, 900), "displayed size, not the stored 900×1200 nor the thumbnail");
    assert_eq!((out.full.width, out.full.height), (1200, 900));
    assert_eq!((out.thumb.width, out.thumb.height), (320, 240));
    assert_eq!(out.full.kind, OutputKind::Jpeg);
    assert_quadrants(&rgb(&out.full.bytes), "full");
    assert_quadrants(&rgb(&out.thumb.bytes), "thumb");
    for v in [&out.full.bytes, &out.thumb.bytes] {
        assert!(!contains(v, b"SECRET-MAKE") && !contains(v, b"Exif"), "metadata survived");
    }
}

/// How far two RGB buffers are apart: (worst level difference, share of samples more than 2
/// levels apart, mean absolute difference).
fn apart(a: &[u8], b: &[u8]) -> (i32, f64, f64) {
    let d: Vec<i32> = a.iter().zip(b).map(|(x, y)| (*x as i32 - *y as i32).abs()).collect();
    let n = d.len() as f64;
    (
        d.iter().copied().max().unwrap_or(0),
        d.iter().filter(|&&v| v > 2).count() as f64 / n,
        d.iter().map(|&v| v as f64).sum::<f64>() / n,
    )
}

#[test]
fn decoded_pixels_equal_pillow_heif_s() {
    // HEIC: pillow-heif is libheif too (1.23.6 with its own libde265 build): the same pixels.
    let src = photo("heic", 700, 500, &["--grid", "256", "--orientation", "8"]);
    let (pw, ph, want) = pillow_rgb(&src);
    let (out, seen) = process_photo_inspecting(&src, &settings(), |w, h, px| (w, h, px.to_vec())).expect("decodes");
    let (w, h, got) = seen.into_iter().next().expect("a HEIF's decode is shared with the classifier");
    assert_eq!((w, h, out.width, out.height), (pw, ph, pw, ph), "size as displayed");
    let (worst, _, mean) = apart(&got, &want);
    eprintln!("heic vs pillow-heif: worst {worst} levels, mean {mean:.4}");
    assert!(worst <= 1, "HEIC differs from pillow-heif's decode by up to {worst} levels");

    // AVIF: Pillow reads it with libavif, another decoder: the same picture, but chroma is
    // upsampled differently at hard colour edges (up to ~90 levels on the one-pixel quadrant
    // borders, 0.7 % of samples) and rounded differently elsewhere.
    let src = photo("avif", 700, 500, &["--orientation", "6"]);
    let (pw, ph, want) = pillow_rgb(&src);
    let (_, seen) = process_photo_inspecting(&src, &settings(), |w, h, px| (w, h, px.to_vec())).expect("decodes");
    let (w, h, got) = seen.into_iter().next().unwrap();
    assert_eq!((w, h), (pw, ph), "AVIF size as displayed (irot applied)");
    let (worst, over2, mean) = apart(&got, &want);
    eprintln!("avif vs Pillow/libavif: worst {worst} levels, {:.2} % over 2 levels, mean {mean:.4}", over2 * 100.0);
    assert!(over2 < 0.02 && mean < 1.0, "AVIF: {:.2} % of samples over 2 levels, mean {mean:.3}", over2 * 100.0);
}

#[test]
fn ten_bit_heif_becomes_eight_bit() {
    let src = photo("heic", 320, 240, &["--bits", "10"]);
    let out = process_photo(&src, &settings()).unwrap();
    assert_eq!((out.width, out.height), (320, 240));
    assert_quadrants(&rgb(&out.full.bytes), "10-bit");
    let (_, _, want) = pillow_rgb(&src);
    let (_, seen) = process_photo_inspecting(&src, &settings(), |_, _, px| px.to_vec()).unwrap();
    let (worst, _, _) = apart(&seen[0], &want);
    assert!(worst <= 1, "10-bit to 8-bit differs from pillow-heif's by {worst} levels");
}

#[test]
fn alpha_avif_gives_png_with_its_transparency() {
    let src = photo("avif", 320, 240, &["--alpha"]);
    let out = process_photo(&src, &settings()).unwrap();
    assert_eq!(out.source_format, Format::Avif);
    assert_eq!((out.full.kind, out.thumb.kind), (OutputKind::Png, OutputKind::Png));
    let full = rgb(&out.full.bytes);
    let (l, r) = (full.get_pixel(40, 60).0, full.get_pixel(280, 60).0);
    assert!((l[3] as i32 - 128).abs() <= 2 && r[3] == 255, "alpha left {} right {}", l[3], r[3]);
    assert!(close([l[0], l[1], l[2]], QUADRANTS[0], 24));
}

#[test]
fn display_p3_nclx_gets_a_p3_profile() {
    let src = photo("heic", 320, 240, &["--p3"]);
    let out = process_photo(&src, &settings()).unwrap();
    for v in [&out.full.bytes, &out.thumb.bytes] {
        assert!(contains(v, b"ICC_PROFILE\0"), "no ICC profile embedded");
        let utf16: Vec<u8> = "Display P3".encode_utf16().flat_map(|u| u.to_be_bytes()).collect();
        assert!(contains(v, &utf16), "the profile is not Display P3");
    }
    // BT.709/sRGB nclx (pillow-heif's default) needs no profile.
    let plain = process_photo(&photo("heic", 320, 240, &[]), &settings()).unwrap();
    assert!(!contains(&plain.full.bytes, b"ICC_PROFILE\0"));
}

#[test]
fn a_heif_claiming_40000_by_40000_is_refused_before_decoding() {
    let src = claiming(&photo("heic", 256, 256, &[]), 40000, 40000);
    let err = process_photo(&src, &settings()).unwrap_err();
    assert!(
        matches!(err, MediaError::TooManyPixels { width: 40000, height: 40000, .. }),
        "expected TooManyPixels 40000×40000, got {err:?}"
    );
    let src = claiming(&photo("avif", 256, 256, &[]), 40000, 40000);
    assert!(matches!(process_photo(&src, &settings()), Err(MediaError::TooManyPixels { .. })));
}

#[test]
fn truncated_and_damaged_heif_are_corrupt() {
    let src = photo("heic", 640, 480, &["--grid", "256"]);
    for cut in [src.len() * 3 / 5, src.len() / 10, 40] {
        match process_photo(&src[..cut], &settings()) {
            Err(MediaError::Corrupt { message }) => assert!(!message.is_empty()),
            Err(other) => panic!("cut at {cut} of {}: expected Corrupt, got {other:?}", src.len()),
            Ok(out) => panic!("cut at {cut} of {}: decoded to {}×{}", src.len(), out.width, out.height),
        }
    }
    // Garbage over the coded data (after the boxes): never a panic, always an explicit refusal.
    let mut damaged = src.clone();
    let from = damaged.len() / 2;
    for (i, b) in damaged[from..].iter_mut().enumerate() {
        *b = (i * 31 % 251) as u8;
    }
    // HEVC conceals some damage, so a decoded picture is a fair outcome; an error must be the
    // input's (a `rejected` item), never ours.
    if let Err(e) = process_photo(&damaged, &settings()) {
        assert!(!matches!(e, MediaError::Internal { .. } | MediaError::TimedOut { .. }), "{e:?}");
    }
}
