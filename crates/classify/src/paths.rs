//! Where the model and the runtime library are looked for. Nothing is ever downloaded at run
//! time: `make models` puts both in `models/`, verified; this only finds them.
//!
//! Order, for each file: its environment variable when set and non-empty (used verbatim), else
//! the first that exists of `./models/`, `<exe dir>/models/`, `<exe dir>/../../models/` (the
//! repository's `models/` for `target/release/mediagate`). When none exists the first candidate
//! is returned, so the start-up error names the conventional location and `make models`.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// File name of the model in `models/`.
pub const MODEL_FILE: &str = "open-nsfw.onnx";
/// File name of the ONNX Runtime library in `models/`.
pub const ORT_LIB_FILE: &str = "libonnxruntime.so.1.31.1";
/// Overrides the model path.
pub const ENV_MODEL_PATH: &str = "MEDIAGATE_MODEL_PATH";
/// Overrides the ONNX Runtime library path.
pub const ENV_ORT_LIB: &str = "MEDIAGATE_ORT_LIB";

/// The two files the classifier needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelPaths {
    /// `open-nsfw.onnx`.
    pub model_path: PathBuf,
    /// `libonnxruntime.so.1.31.1`.
    pub ort_lib: PathBuf,
}

/// Resolves both paths from the process environment, working directory and executable.
pub fn resolve_model_paths() -> ModelPaths {
    resolve_overriding(|k| std::env::var_os(k))
}

/// [`resolve_model_paths`] with `lookup` in place of the environment (the binary passes its
/// `--model-path` and `--ort-lib` flags, which clap fills from the same variables).
pub fn resolve_overriding(lookup: impl Fn(&str) -> Option<OsString>) -> ModelPaths {
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    let exe = std::env::current_exe().ok();
    resolve_with(lookup, &cwd, exe.as_deref())
}

/// [`resolve_model_paths`] with its inputs injected (for tests).
pub fn resolve_with(env: impl Fn(&str) -> Option<OsString>, cwd: &Path, exe: Option<&Path>) -> ModelPaths {
    let mut dirs = vec![cwd.join("models")];
    if let Some(exe_dir) = exe.and_then(Path::parent) {
        dirs.push(exe_dir.join("models"));
        dirs.push(exe_dir.join("../../models"));
    }
    let pick = |var: &str, file: &str| -> PathBuf {
        if let Some(v) = env(var).filter(|v| !v.is_empty()) {
            return PathBuf::from(v);
        }
        dirs.iter().map(|d| d.join(file)).find(|p| p.is_file()).unwrap_or_else(|| dirs[0].join(file))
    };
    ModelPaths { model_path: pick(ENV_MODEL_PATH, MODEL_FILE), ort_lib: pick(ENV_ORT_LIB, ORT_LIB_FILE) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_wins_then_cwd_then_exe_dirs() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let root = tmp.path();
        let cwd = root.join("work");
        let exe = root.join("repo/target/release/mediagate");
        std::fs::create_dir_all(cwd.join("models")).expect("mkdir");
        std::fs::create_dir_all(root.join("repo/models")).expect("mkdir");
        std::fs::create_dir_all(exe.parent().expect("parent")).expect("mkdir");
        let no_env = |_: &str| None;

        // nothing anywhere: the cwd candidate, so the error names ./models
        let p = resolve_with(no_env, &cwd, Some(&exe));
        assert_eq!(p.model_path, cwd.join("models").join(MODEL_FILE));

        // only beside the binary, two levels up (target/release -> repo/models)
        std::fs::write(root.join("repo/models").join(ORT_LIB_FILE), b"x").expect("write");
        let p = resolve_with(no_env, &cwd, Some(&exe));
        assert_eq!(p.ort_lib, exe.parent().expect("parent").join("../../models").join(ORT_LIB_FILE));

        // the working directory's models/ wins over the binary's
        std::fs::write(cwd.join("models").join(ORT_LIB_FILE), b"x").expect("write");
        let p = resolve_with(no_env, &cwd, Some(&exe));
        assert_eq!(p.ort_lib, cwd.join("models").join(ORT_LIB_FILE));

        // the environment wins over everything; an empty variable counts as unset
        let env = |k: &str| match k {
            ENV_MODEL_PATH => Some(OsString::from("/elsewhere/m.onnx")),
            ENV_ORT_LIB => Some(OsString::new()),
            _ => None,
        };
        let p = resolve_with(env, &cwd, Some(&exe));
        assert_eq!(p.model_path, PathBuf::from("/elsewhere/m.onnx"));
        assert_eq!(p.ort_lib, cwd.join("models").join(ORT_LIB_FILE));
    }
}
