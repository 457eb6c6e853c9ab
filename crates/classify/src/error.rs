//! The crate's one error type. Start-up problems (files, runtime) name the file and the fix;
//! per-image problems say what was wrong with the input, so the worker can map them to reasons.

use std::path::PathBuf;

/// Everything that can go wrong loading the classifier or scoring an image.
#[derive(Debug, thiserror::Error)]
pub enum ClassifyError {
    /// A model or runtime file is absent. Nothing is downloaded at run time, by design: the
    /// files are fetched and verified ahead of time by `make models`.
    #[error("{what} not found at {}: run `make models` to fetch and verify it", path.display())]
    MissingFile {
        /// "open_nsfw model" or "ONNX Runtime library".
        what: &'static str,
        /// Where it was looked for.
        path: PathBuf,
    },

    /// A model or runtime file is present but is not the pinned one (partial download, other
    /// version, tampering). Scores are only guaranteed for the exact pinned bytes.
    #[error("{what} at {} has sha256 {actual}, expected {expected}: run `make models` to replace it with the verified file", path.display())]
    ChecksumMismatch {
        /// "open_nsfw model" or "ONNX Runtime library".
        what: &'static str,
        /// The file that was hashed.
        path: PathBuf,
        /// The pinned hash (models/SHA256SUMS).
        expected: &'static str,
        /// The hash of the file on disk.
        actual: String,
    },

    /// Reading a file failed for a reason other than its absence.
    #[error("could not read {}: {source}", path.display())]
    Io {
        /// The file being read.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// The ONNX Runtime shared library could not be loaded (wrong architecture, missing
    /// libstdc++, too old a version for `ort`'s api-31).
    #[error("could not load the ONNX Runtime library {}: {message}; run `make models` to fetch the pinned one", path.display())]
    RuntimeLoad {
        /// The library path.
        path: PathBuf,
        /// What `ort` reported.
        message: String,
    },

    /// ONNX Runtime is process-global: once one library is loaded, another cannot replace it.
    #[error("ONNX Runtime is already loaded from {} in this process; cannot also load {}", loaded.display(), requested.display())]
    RuntimeConflict {
        /// The library loaded first.
        loaded: PathBuf,
        /// The library asked for now.
        requested: PathBuf,
    },

    /// ONNX Runtime refused to build the session or to run it.
    #[error("ONNX Runtime: {0}")]
    Runtime(String),

    /// The model did not produce the expected `[1, 2]` (sfw, nsfw) output.
    #[error("unexpected model output: {0}")]
    BadOutput(String),

    /// Pixel buffer and dimensions disagree, or a dimension is zero.
    #[error("invalid image buffer: {0}")]
    InvalidImage(String),

    /// The encoded image is not in a format this crate decodes.
    #[error("unsupported image format: {0}")]
    UnsupportedFormat(String),

    /// The encoded image is corrupt or truncated.
    #[error("could not decode image: {0}")]
    Decode(String),

    /// The image has more pixels than [`crate::MAX_PIXELS`]; refused before allocating.
    #[error("image of {width}x{height} exceeds the classifier's pixel limit of {limit}")]
    TooManyPixels {
        /// Width in pixels.
        width: u64,
        /// Height in pixels.
        height: u64,
        /// The limit.
        limit: u64,
    },

    /// libjpeg-turbo failed during the preprocessing JPEG round trip (should not happen for a
    /// 224x224 RGB image; kept as an error rather than a panic).
    #[error("JPEG round trip in preprocessing failed: {0}")]
    Jpeg(String),

    /// A previous panic while holding the session lock poisoned it.
    #[error("classifier session lock poisoned by an earlier panic")]
    Poisoned,
}
