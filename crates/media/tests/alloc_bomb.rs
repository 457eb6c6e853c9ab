//! Regression for a fuzzing find: a 1.8 KB MP4 whose `stco` box claims 130 million chunk
//! offsets made FFmpeg allocate ~1 GB before failing. The per-allocation cap set at FFmpeg
//! initialisation refuses that request; the file is reported as corrupt either way.

use mediagate_media::{probe_av, sniff, MediaError};

fn peak_rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

#[test]
fn a_tiny_mp4_claiming_a_gigabyte_table_is_refused_as_corrupt() {
    let bytes = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/stco-claims-1gb.mp4")).unwrap();
    assert!(bytes.len() < 4096);
    let format = sniff(&bytes).expect("sniffed as MP4");
    match probe_av(&bytes, format) {
        Err(MediaError::Corrupt { .. }) => {}
        other => panic!("expected Corrupt, got {other:?}"),
    }
    assert!(peak_rss_kb() < 512 * 1024, "peak RSS {} kB", peak_rss_kb());
}
