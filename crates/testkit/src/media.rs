//! Test media made on the fly: photographic-ish JPEGs and PNGs, EXIF blocks, bombs, audio.

use std::io::Cursor;

use image::codecs::jpeg::JpegEncoder;
use image::{ImageBuffer, ImageEncoder, Rgb, Rgba};

/// A smooth gradient with deterministic noise, so JPEGs have realistic entropy.
pub fn rgb(w: u32, h: u32, seed: u32) -> ImageBuffer<Rgb<u8>, Vec<u8>> {
    let mut state = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
    ImageBuffer::from_fn(w, h, |x, y| {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        let n = (state & 31) as i32 - 16;
        let r = (x * 255 / w.max(1)) as i32 + n;
        let g = (y * 255 / h.max(1)) as i32 + n;
        let b = (((x + y) * 128) / (w + h).max(1)) as i32 + 64 + n;
        Rgb([r.clamp(0, 255) as u8, g.clamp(0, 255) as u8, b.clamp(0, 255) as u8])
    })
}

pub fn jpeg(w: u32, h: u32, seed: u32) -> Vec<u8> {
    let img = rgb(w, h, seed);
    let mut out = Vec::new();
    JpegEncoder::new_with_quality(&mut out, 90)
        .write_image(img.as_raw(), w, h, image::ExtendedColorType::Rgb8)
        .expect("jpeg encode");
    out
}

pub fn png_rgb(w: u32, h: u32) -> Vec<u8> {
    let img = rgb(w, h, 7);
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).expect("png encode");
    out.into_inner()
}

/// An RGBA PNG; with `transparent`, the left half is fully transparent.
pub fn png_rgba(w: u32, h: u32, transparent: bool) -> Vec<u8> {
    let base = rgb(w, h, 3);
    let img: ImageBuffer<Rgba<u8>, Vec<u8>> = ImageBuffer::from_fn(w, h, |x, y| {
        let p = base.get_pixel(x, y);
        let a = if transparent && x < w / 2 { 0 } else { 255 };
        Rgba([p[0], p[1], p[2], a])
    });
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).expect("png encode");
    out.into_inner()
}

pub fn webp_lossless(w: u32, h: u32) -> Vec<u8> {
    let img = image::DynamicImage::ImageRgb8(rgb(w, h, 9)).to_rgba8();
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::WebP).expect("webp encode");
    out.into_inner()
}

/// A two-frame animated GIF: red first frame, blue second.
pub fn gif_animated(w: u16, h: u16) -> Vec<u8> {
    use image::codecs::gif::{GifEncoder, Repeat};
    use image::{Delay, Frame, RgbaImage};
    let mut out = Vec::new();
    {
        let mut enc = GifEncoder::new(&mut out);
        enc.set_repeat(Repeat::Infinite).expect("repeat");
        for colour in [[220u8, 20, 20, 255], [20, 20, 220, 255]] {
            let img = RgbaImage::from_pixel(w as u32, h as u32, Rgba(colour));
            enc.encode_frame(Frame::from_parts(img, 0, 0, Delay::from_numer_denom_ms(100, 1))).expect("frame");
        }
    }
    out
}

/// An EXIF APP1 segment with an Orientation tag and, optionally, a GPS IFD with a latitude.
pub fn exif_app1(orientation: u16, gps: bool) -> Vec<u8> {
    // Little-endian TIFF: header (8) + IFD0 at 8.
    let mut t: Vec<u8> = b"II*\0".to_vec();
    t.extend_from_slice(&8u32.to_le_bytes());
    let entries: u16 = if gps { 2 } else { 1 };
    t.extend_from_slice(&entries.to_le_bytes());
    // Orientation, SHORT, count 1, value inline.
    t.extend_from_slice(&0x0112u16.to_le_bytes());
    t.extend_from_slice(&3u16.to_le_bytes());
    t.extend_from_slice(&1u32.to_le_bytes());
    t.extend_from_slice(&orientation.to_le_bytes());
    t.extend_from_slice(&[0, 0]);
    let gps_ifd_offset = 8 + 2 + 12 * entries as u32 + 4;
    if gps {
        // GPSInfo pointer, LONG.
        t.extend_from_slice(&0x8825u16.to_le_bytes());
        t.extend_from_slice(&4u16.to_le_bytes());
        t.extend_from_slice(&1u32.to_le_bytes());
        t.extend_from_slice(&gps_ifd_offset.to_le_bytes());
    }
    t.extend_from_slice(&0u32.to_le_bytes()); // no next IFD
    if gps {
        // GPS IFD: GPSLatitudeRef "N", GPSLatitude 3 RATIONALs (52°, 31', 0").
        t.extend_from_slice(&2u16.to_le_bytes());
        t.extend_from_slice(&0x0001u16.to_le_bytes());
        t.extend_from_slice(&2u16.to_le_bytes());
        t.extend_from_slice(&2u32.to_le_bytes());
        t.extend_from_slice(b"N\0\0\0");
        let rationals_offset = gps_ifd_offset + 2 + 12 * 2 + 4;
        t.extend_from_slice(&0x0002u16.to_le_bytes());
        t.extend_from_slice(&5u16.to_le_bytes());
        t.extend_from_slice(&3u32.to_le_bytes());
        t.extend_from_slice(&rationals_offset.to_le_bytes());
        t.extend_from_slice(&0u32.to_le_bytes());
        for (n, d) in [(52u32, 1u32), (31, 1), (0, 1)] {
            t.extend_from_slice(&n.to_le_bytes());
            t.extend_from_slice(&d.to_le_bytes());
        }
    }
    let mut seg = vec![0xFF, 0xE1];
    let len = (2 + 6 + t.len()) as u16;
    seg.extend_from_slice(&len.to_be_bytes());
    seg.extend_from_slice(b"Exif\0\0");
    seg.extend_from_slice(&t);
    seg
}

/// Inserts segments right after a JPEG's SOI.
pub fn insert_after_soi(jpeg: &[u8], segment: &[u8]) -> Vec<u8> {
    assert_eq!(&jpeg[..2], &[0xFF, 0xD8]);
    let mut out = jpeg[..2].to_vec();
    out.extend_from_slice(segment);
    out.extend_from_slice(&jpeg[2..]);
    out
}

/// A COM (comment) segment.
pub fn jpeg_comment(text: &str) -> Vec<u8> {
    let mut seg = vec![0xFF, 0xFE];
    seg.extend_from_slice(&((text.len() + 2) as u16).to_be_bytes());
    seg.extend_from_slice(text.as_bytes());
    seg
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &b in data {
        crc ^= b as u32;
        for _ in 0..8 {
            crc = if crc & 1 != 0 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

/// One PNG chunk: length, type, data and the CRC-32 of type and data.
pub fn png_chunk(kind: &[u8; 4], data: &[u8]) -> Vec<u8> {
    let mut c = (data.len() as u32).to_be_bytes().to_vec();
    let mut body = kind.to_vec();
    body.extend_from_slice(data);
    c.extend_from_slice(&body);
    c.extend_from_slice(&crc32(&body).to_be_bytes());
    c
}

/// A tiny PNG whose header claims `w`×`h` RGB pixels (a decompression bomb's first bytes).
pub fn png_claiming(w: u32, h: u32) -> Vec<u8> {
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = w.to_be_bytes().to_vec();
    ihdr.extend_from_slice(&h.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    out.extend(png_chunk(b"IHDR", &ihdr));
    // An IDAT with an empty zlib stream: 78 9c 03 00 00 00 00 01.
    out.extend(png_chunk(b"IDAT", &[0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01]));
    out.extend(png_chunk(b"IEND", &[]));
    out
}

/// A mono 16-bit PCM WAV of `ms` milliseconds of a 440 Hz tone.
pub fn wav(ms: u32) -> Vec<u8> {
    let rate = 16_000u32;
    let n = rate * ms / 1000;
    let mut data = Vec::with_capacity(n as usize * 2);
    for i in 0..n {
        let s = ((i as f32 * 440.0 * std::f32::consts::TAU / rate as f32).sin() * 8000.0) as i16;
        data.extend_from_slice(&s.to_le_bytes());
    }
    let mut out = b"RIFF".to_vec();
    out.extend_from_slice(&(36 + data.len() as u32).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&rate.to_le_bytes());
    out.extend_from_slice(&(rate * 2).to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&16u16.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out.extend(data);
    out
}

/// Decodes an output and returns its dimensions.
pub fn dims(bytes: &[u8]) -> (u32, u32) {
    let img = image::load_from_memory(bytes).expect("output decodes");
    (img.width(), img.height())
}

/// True when `needle` occurs in `hay`.
pub fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// Runs a media tool (ffmpeg, sox, espeak-ng) that writes `out_name` in a temp dir; returns
/// the file's bytes. A missing tool fails the test with a message saying how to get it.
pub fn tool_output(tool: &str, args: &[&str], out_name: &str) -> Vec<u8> {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join(out_name);
    let args: Vec<String> = args
        .iter()
        .map(|a| a.replace("{out}", out.to_str().unwrap()).replace("{dir}", dir.path().to_str().unwrap()))
        .collect();
    let status = std::process::Command::new(tool)
        .args(&args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .output()
        .unwrap_or_else(|e| {
            panic!("{tool} is needed to generate test media ({e}); run `make test`, which installs it")
        });
    assert!(status.status.success(), "{tool} {args:?}: {}", String::from_utf8_lossy(&status.stderr));
    std::fs::read(&out).expect("tool output")
}

/// `seconds` of synthetic speech-like audio (a warbling tone) as AAC in M4A.
pub fn m4a_tone(seconds: f32) -> Vec<u8> {
    let t = format!("{seconds}");
    tool_output(
        "ffmpeg",
        &[
            "-v",
            "error",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=220:beep_factor=3:sample_rate=44100",
            "-t",
            &t,
            "-c:a",
            "aac",
            "-b:a",
            "64k",
            "-y",
            "{out}",
        ],
        "tone.m4a",
    )
}

/// Spoken words from espeak-ng, encoded by ffmpeg to the codec implied by `ext`.
pub fn speech(text: &str, ext: &str) -> Vec<u8> {
    let wav = tool_output("espeak-ng", &["-w", "{out}", text], "speech.wav");
    let dir = tempfile::tempdir().expect("tempdir");
    let src = dir.path().join("in.wav");
    std::fs::write(&src, wav).unwrap();
    let codec: &[&str] = match ext {
        "ogg" => &["-c:a", "libopus"],
        "mp3" => &["-c:a", "libmp3lame"],
        "m4a" => &["-c:a", "aac"],
        _ => &[],
    };
    let mut args = vec!["-v", "error", "-i", src.to_str().unwrap()];
    args.extend_from_slice(codec);
    args.extend_from_slice(&["-y", "{out}"]);
    tool_output("ffmpeg", &args, &format!("speech.{ext}"))
}

/// A test-pattern H.264 MP4 (with AAC sound when `audio`), `extra` ffmpeg output options.
pub fn mp4(width: u32, height: u32, seconds: f32, fps: u32, audio: bool, extra: &[&str]) -> Vec<u8> {
    let video = format!("testsrc2=size={width}x{height}:rate={fps}");
    let t = format!("{seconds}");
    let mut args = vec!["-v", "error", "-f", "lavfi", "-i", video.as_str()];
    if audio {
        args.extend_from_slice(&["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"]);
    }
    args.extend_from_slice(&["-t", &t, "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"]);
    if audio {
        args.extend_from_slice(&["-c:a", "aac"]);
    }
    args.extend_from_slice(extra);
    args.extend_from_slice(&["-y", "{out}"]);
    tool_output("ffmpeg", &args, "video.mp4")
}

/// ffprobe's JSON about a file's streams and format.
pub fn ffprobe(bytes: &[u8], ext: &str) -> serde_json::Value {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join(format!("probe.{ext}"));
    std::fs::write(&path, bytes).unwrap();
    let out = std::process::Command::new("ffprobe")
        .args(["-v", "error", "-print_format", "json", "-show_streams", "-show_format", path.to_str().unwrap()])
        .output()
        .unwrap_or_else(|e| panic!("ffprobe is needed ({e}); run `make test`"));
    assert!(out.status.success(), "ffprobe: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("ffprobe JSON")
}

/// A phone-style clip: stored landscape, tagged to display rotated by `degrees` (FFmpeg 5.1
/// turns the `rotate` tag into a display matrix only when stream copying).
pub fn mp4_rotated(width: u32, height: u32, seconds: f32, degrees: u32) -> Vec<u8> {
    let plain = mp4(width, height, seconds, 15, false, &[]);
    let dir = tempfile::tempdir().expect("tempdir");
    let src = dir.path().join("plain.mp4");
    std::fs::write(&src, plain).unwrap();
    let tag = format!("rotate={degrees}");
    tool_output(
        "ffmpeg",
        &["-v", "error", "-i", src.to_str().unwrap(), "-c", "copy", "-metadata:s:v:0", &tag, "-y", "{out}"],
        "rotated.mp4",
    )
}

/// A flat RGBA PNG: a few hundred kB that decode to `w × h × 4` bytes, for tests of the
/// decoders' memory limit.
pub fn png_flat_rgba(w: u32, h: u32) -> Vec<u8> {
    let img: ImageBuffer<Rgba<u8>, Vec<u8>> = ImageBuffer::from_pixel(w, h, Rgba([10, 20, 30, 128]));
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).expect("png encode");
    out.into_inner()
}

/// An AMR file (`#!AMR` narrow-band at 12.2 kb/s, or `#!AMR-WB` wide-band at 12.65 kb/s) of
/// `seconds`, written frame by frame: Debian's FFmpeg decodes AMR but has no AMR encoder.
/// Every bit pattern of an AMR speech frame is a valid set of codec parameters, so frames with
/// a deterministic pseudo-random payload decode (to noise-like sound, 20 ms per frame).
pub fn amr(seconds: f32, wideband: bool) -> Vec<u8> {
    // (frame type, frame bytes including its one-byte header)
    let (magic, ft, len): (&[u8], u8, usize) = if wideband { (b"#!AMR-WB\n", 2, 33) } else { (b"#!AMR\n", 7, 32) };
    let frames = (seconds * 50.0).round() as usize;
    let mut out = magic.to_vec();
    let mut s = 0x9E37_79B9u32;
    for _ in 0..frames {
        out.push((ft << 3) | 0x04); // F=0, FT, Q=1 (good frame)
        for _ in 1..len {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            out.push((s >> 24) as u8);
        }
    }
    out
}
