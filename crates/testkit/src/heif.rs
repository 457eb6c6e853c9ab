//! HEIC/HEIF and AVIF test photos, written by the real encoders (pillow-heif's libheif + x265,
//! Pillow's libavif) through `scripts/heif-fixture.py` in the reference virtualenv
//! (`.local/venv-ref`, made by `make test`). See the script for the picture and the options.

use std::path::PathBuf;

/// The reference virtualenv's Python (`MEDIAGATE_REFERENCE_PYTHON` overrides it).
pub fn python() -> PathBuf {
    let p = std::env::var_os("MEDIAGATE_REFERENCE_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| crate::workspace_root().join(".local/venv-ref/bin/python"));
    assert!(
        p.exists(),
        "{} is missing: the HEIC/AVIF fixtures need the reference virtualenv with pillow-heif; run `make test` (or `make reference-venv`)",
        p.display()
    );
    p
}

/// A photo from `scripts/heif-fixture.py`: `kind` is "heic" or "avif", `args` its options
/// (e.g. `["--grid", "256", "--orientation", "6"]`).
pub fn photo(kind: &str, width: u32, height: u32, args: &[&str]) -> Vec<u8> {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join(format!("fixture.{kind}"));
    let script = crate::workspace_root().join("scripts/heif-fixture.py");
    let output = std::process::Command::new(python())
        .arg(&script)
        .arg(&out)
        .arg(kind)
        .arg(width.to_string())
        .arg(height.to_string())
        .args(args)
        .output()
        .expect("run heif-fixture.py");
    assert!(output.status.success(), "heif-fixture.py {kind} {args:?}: {}", String::from_utf8_lossy(&output.stderr));
    std::fs::read(&out).expect("fixture output")
}

/// Rewrites every `ispe` (image spatial extents) box to claim `width`×`height`: a file that
/// declares a pixel bomb while its data stays small.
pub fn claiming(bytes: &[u8], width: u32, height: u32) -> Vec<u8> {
    let mut out = bytes.to_vec();
    let mut at = 0;
    let mut n = 0;
    while let Some(i) = out[at..].windows(4).position(|w| w == b"ispe") {
        let p = at + i + 4 + 4; // after the type and version/flags
        out[p..p + 4].copy_from_slice(&width.to_be_bytes());
        out[p + 4..p + 8].copy_from_slice(&height.to_be_bytes());
        at = p + 8;
        n += 1;
    }
    assert!(n > 0, "no ispe box to rewrite");
    out
}

/// The quadrant colours of the fixture picture as displayed: top-left, top-right,
/// bottom-left, bottom-right.
pub const QUADRANTS: [[u8; 3]; 4] = [[220, 30, 30], [30, 200, 30], [30, 30, 220], [235, 235, 235]];
