//! Start-up failures name the file and the fix. Its own test binary (process): ONNX Runtime is
//! process-global, and these cases must run before any runtime is loaded.

use std::path::{Path, PathBuf};

use mediagate_classify::{Classifier, ClassifierConfig, ClassifyError, MODEL_FILE, ORT_LIB_SHA256};

fn real_model() -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models").join(MODEL_FILE);
    assert!(p.exists(), "{} missing: run `make models` first (this test never skips)", p.display());
    p
}

#[test]
fn runtime_library_is_verified_before_it_is_loaded() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let model_path = real_model();

    // absent
    let ort_lib = tmp.path().join("libonnxruntime.so.1.31.1");
    let err = Classifier::load(&ClassifierConfig {
        model_path: model_path.clone(),
        ort_lib: ort_lib.clone(),
        intra_threads: 1,
    })
    .expect_err("missing library");
    assert!(matches!(err, ClassifyError::MissingFile { .. }), "{err}");
    let msg = err.to_string();
    assert!(msg.contains(&*ort_lib.to_string_lossy()) && msg.contains("make models"), "{msg}");

    // present but not the pinned build: refused before dlopen, so it is never executed
    std::fs::write(&ort_lib, b"\x7fELF not really").expect("write");
    let err = Classifier::load(&ClassifierConfig { model_path, ort_lib: ort_lib.clone(), intra_threads: 1 })
        .expect_err("foreign library");
    assert!(matches!(err, ClassifyError::ChecksumMismatch { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains(ORT_LIB_SHA256) && msg.contains("make models") && msg.contains(&*ort_lib.to_string_lossy()),
        "{msg}"
    );
}
