//! The photo pipeline end to end (sniff → header probe → pixel limit → decode → orientation →
//! resize → encode → BlurHash) on arbitrary bytes. It must return Ok or Err — never panic, never
//! allocate without bound (run with `-rss_limit_mb=1024 -malloc_limit_mb=512`).
//!
//! `process_photo` wraps the pure-Rust decoders (PNG/GIF/WebP/BMP) in `catch_unwind`, so a panic
//! there becomes `input.corrupt` in production. libfuzzer-sys aborts on *any* panic by default,
//! caught or not; this target keeps that strict behaviour unless `MEDIAGATE_FUZZ_ALLOW_CAUGHT=1`,
//! in which case only panics that escape `process_photo` are crashes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mediagate_media::{process_photo, PhotoSettings};

const SETTINGS: PhotoSettings = PhotoSettings { full_edge: 2048, thumb_edge: 320, jpeg_quality: 85, max_pixels: 4_000_000 };

fuzz_target!(
    init: {
        if std::env::var_os("MEDIAGATE_FUZZ_ALLOW_CAUGHT").is_some_and(|v| v == "1") {
            // Print the panic but do not abort; libfuzzer-sys still aborts if it unwinds out.
            let _ = std::panic::take_hook();
        }
        let d = PhotoSettings::default();
        assert_eq!((d.full_edge, d.thumb_edge, d.jpeg_quality), (SETTINGS.full_edge, SETTINGS.thumb_edge, SETTINGS.jpeg_quality));
    },
    |data: &[u8]| {
        if let Ok(out) = process_photo(data, &SETTINGS) {
            // What the pipeline reports must respect the limits it was given.
            assert!(out.width as u64 * out.height as u64 <= SETTINGS.max_pixels, "{}x{} over the pixel limit", out.width, out.height);
            for (v, edge) in [(&out.full, SETTINGS.full_edge), (&out.thumb, SETTINGS.thumb_edge)] {
                assert!(v.width >= 1 && v.height >= 1 && v.width.max(v.height) <= edge, "variant {}x{} breaks edge {edge}", v.width, v.height);
                assert!(!v.bytes.is_empty());
            }
            assert!(out.full.width.max(out.full.height) <= out.width.max(out.height), "full variant upscaled");
            assert!(!out.blurhash.is_empty());
        }
    }
);
