//! Audio/video track probing through FFmpeg with a forced demuxer chosen by `sniff`. Must return
//! Ok or Err (FFmpeg errors, time-outs) and never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mediagate_media::{probe_av, sniff, MediaClass};

fuzz_target!(|data: &[u8]| {
    let Some(format) = sniff(data) else { return };
    if format.media_class() == MediaClass::Image {
        return;
    }
    if let Ok(p) = probe_av(data, format) {
        let _ = format!("{p:?}");
    }
});
