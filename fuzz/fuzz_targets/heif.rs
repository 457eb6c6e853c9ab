//! HEIC/HEIF/AVIF photos through libheif (the primary image, its transformations, the pixel
//! limit from `ispe`, libheif's security limits) on arbitrary bytes, seeded with small files the
//! real encoders wrote (fuzz/seeds/heif). It must return Ok or Err — never panic, never allocate
//! without bound (run with `-rss_limit_mb=1024 -malloc_limit_mb=512`).
//!
//! libheif itself is a static C++ library built without coverage instrumentation, so libFuzzer
//! steers by the Rust side only and mutates the seeds blindly inside the codec; AddressSanitizer
//! still sees every allocation (the malloc limit) and any crash.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mediagate_media::{process_photo, Limits, MediaSettings};

fuzz_target!(|data: &[u8]| {
    let settings =
        MediaSettings { limits: Limits { max_pixels: 4_000_000, ..Limits::DEFAULT }, ..MediaSettings::DEFAULT };
    if let Ok(out) = process_photo(data, &settings) {
        assert!(out.width as u64 * out.height as u64 <= settings.limits.max_pixels, "over the pixel limit");
        for (v, edge) in [(&out.full, settings.photo.full_edge), (&out.thumb, settings.photo.thumb_edge)] {
            assert!(v.width >= 1 && v.height >= 1 && v.width.max(v.height) <= edge);
        }
    }
});
