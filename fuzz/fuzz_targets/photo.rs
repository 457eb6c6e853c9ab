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
use mediagate_media::{process_photo, Limits, MediaSettings};

fn settings() -> MediaSettings {
    MediaSettings { limits: Limits { max_pixels: 4_000_000, ..Limits::DEFAULT }, ..MediaSettings::DEFAULT }
}

/// `MEDIAGATE_FUZZ_VERBOSE=1` prints each input's outcome (for checking seeds, replaying crashes).
fn verbose() -> bool {
    static V: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *V.get_or_init(|| std::env::var_os("MEDIAGATE_FUZZ_VERBOSE").is_some_and(|v| v == "1"))
}

fn check(data: &[u8]) {
    let settings = settings();
    let result = process_photo(data, &settings);
    if verbose() {
        eprintln!(
            "process_photo: {:?}",
            result.as_ref().map(|o| (o.source_format, o.width, o.height, o.full.kind, o.full.width, o.full.height))
        );
    }
    if let Ok(out) = result {
        // What the pipeline reports must respect the limits it was given.
        assert!(
            out.width as u64 * out.height as u64 <= settings.limits.max_pixels,
            "{}x{} over the pixel limit",
            out.width,
            out.height
        );
        for (v, edge) in [(&out.full, settings.photo.full_edge), (&out.thumb, settings.photo.thumb_edge)] {
            assert!(
                v.width >= 1 && v.height >= 1 && v.width.max(v.height) <= edge,
                "variant {}x{} breaks edge {edge}",
                v.width,
                v.height
            );
            assert!(!v.bytes.is_empty());
        }
        assert!(out.full.width.max(out.full.height) <= out.width.max(out.height), "full variant upscaled");
        assert!(!out.blurhash.is_empty());
    }
}

fuzz_target!(
    init: {
        if std::env::var_os("MEDIAGATE_FUZZ_ALLOW_CAUGHT").is_some_and(|v| v == "1") {
            // Print the panic but do not abort; libfuzzer-sys still aborts if it unwinds out.
            let _ = std::panic::take_hook();
        }
    },
    |data: &[u8]| check(data)
);
