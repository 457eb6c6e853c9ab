//! mediagate-testkit: the pieces every crate's tests and benches need, held once.
//!
//! - [`s3`]: a throwaway s3s-fs (the workspace's local S3 server) per test, restartable for
//!   outage tests;
//! - [`rabbit`]: a throwaway RabbitMQ vhost per test (the broker must be running: `make test`
//!   starts it);
//! - [`tether`]: child processes that die with the test process, however it ends;
//! - [`ports`]: free ports and waiting for one to open;
//! - [`media`]: test media made here (the `image` crate) or by the real tools (ffmpeg, sox,
//!   espeak-ng), never downloaded;
//! - [`heif`]: HEIC/HEIF/AVIF photos written by the real encoders (pillow-heif, Pillow);
//! - [`jobs`]: jobs as producers send them;
//! - [`timing`]: medians, timed runs and the load average for benches;
//! - [`peers`]: the ffmpeg CLI as the benches' peer (our settings, held once), the benches'
//!   generated-input folder and the real media folder;
//! - [`latency`]: a TCP proxy that adds a delay to every request (S3 as over a network);
//! - [`faults`]: the same proxy switchable while it runs: delays, refused connections, 500/503
//!   answers (the soak test's S3 faults).
//!
//! A missing server or tool FAILS the test with what to run (`make test` provides them all);
//! nothing here skips silently. Dev-only: no crate depends on it outside `[dev-dependencies]`.

pub mod docs;
pub mod faults;
pub mod heif;
pub mod jobs;
pub mod latency;
pub mod media;
pub mod peers;
pub mod ports;
pub mod rabbit;
pub mod s3;
pub mod tether;
pub mod timing;

/// The workspace's root directory (for `.tools/`, `models/`, `target/`).
pub fn workspace_root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().expect("workspace root")
}
