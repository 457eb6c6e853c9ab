//! Audio/video track probing through FFmpeg with a forced demuxer chosen by `sniff`. Must return
//! Ok or Err (FFmpeg errors, time-outs) and never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mediagate_media::{probe_av, sniff, MediaClass};

/// `MEDIAGATE_FUZZ_VERBOSE=1` prints each input's outcome (for checking seeds, replaying crashes).
fn verbose() -> bool {
    static V: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *V.get_or_init(|| std::env::var_os("MEDIAGATE_FUZZ_VERBOSE").is_some_and(|v| v == "1"))
}

fuzz_target!(|data: &[u8]| {
    let Some(format) = sniff(data) else { return };
    if format.media_class() == MediaClass::Image {
        return;
    }
    let result = probe_av(data, format);
    if verbose() {
        eprintln!("probe_av({format:?}): {result:?}");
    }
});
