//! A throwaway s3s-fs (an S3-compatible server on the local file system, built by `make deps`
//! from `tools/s3-server`) per test, tethered to the test process and restartable on the same
//! root and port for outage tests.
//!
//! The binary is looked up at `$MEDIAGATE_S3FS_BIN`, `<workspace>/.tools/bin/s3s-fs`, then
//! `s3s-fs` on `PATH`. When none exists the test FAILS with what to run; it never skips.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::ports::{free_port, wait_port};
use crate::tether::Tethered;

/// Access key the test servers accept (SigV4).
pub const ACCESS_KEY: &str = "mediagate-test";
/// Secret key the test servers accept.
pub const SECRET_KEY: &str = "mediagate-test-secret";
/// A second user, limited to what a worker needs (contract §6): `deploy/s3/worker-policy.json`.
pub const WORKER_ACCESS_KEY: &str = "mediagate-worker";
/// Its secret key.
pub const WORKER_SECRET_KEY: &str = "mediagate-worker-secret";

/// The s3s-fs binary: `MEDIAGATE_S3FS_BIN`, `.tools/bin/s3s-fs`, or PATH.
pub fn s3fs_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("MEDIAGATE_S3FS_BIN") {
        let p = PathBuf::from(p);
        assert!(p.is_file(), "MEDIAGATE_S3FS_BIN={} does not exist; run `make test`, which builds it", p.display());
        return p;
    }
    let local = crate::workspace_root().join(".tools/bin/s3s-fs");
    if local.is_file() {
        return local;
    }
    if let Ok(out) = Command::new("sh").arg("-c").arg("command -v s3s-fs").output() {
        let p = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if !p.is_empty() {
            return PathBuf::from(p);
        }
    }
    panic!(
        "the S3 test server s3s-fs is missing: run `make test` (it builds the local S3 server, s3s-fs 0.14.1 with \
         TCP_NODELAY from tools/s3-server, into .tools/bin) or set MEDIAGATE_S3FS_BIN"
    );
}

/// A running s3s-fs over a fresh temporary root.
pub struct S3Server {
    /// Port on 127.0.0.1.
    pub port: u16,
    /// The server's data directory (buckets are sub-directories).
    pub dir: tempfile::TempDir,
    /// The process; [`S3Server::restart`] replaces it.
    pub proc: Tethered,
    /// Where its logs go.
    logdir: PathBuf,
    /// A log directory of its own, when the caller gave none.
    _own_logs: Option<tempfile::TempDir>,
}

impl S3Server {
    /// Starts a server on a free port, logging into `logdir`, and waits until it listens.
    pub fn start_logging_to(logdir: &Path) -> S3Server {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let proc = spawn_s3(dir.path(), port, logdir);
        S3Server { port, dir, proc, logdir: logdir.to_path_buf(), _own_logs: None }
    }

    /// Starts a server whose logs go to a temporary directory of its own.
    pub fn start() -> S3Server {
        let logs = tempfile::tempdir().expect("tempdir");
        let mut s = S3Server::start_logging_to(logs.path());
        s._own_logs = Some(logs);
        s
    }

    /// `http://127.0.0.1:<port>`, the store's endpoint.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The data directory.
    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    /// Kills the server (to see how clients behave while the store is down).
    pub fn stop(&mut self) {
        self.proc.kill9();
    }

    /// Starts the server again over the same root and port.
    pub fn restart(&mut self) {
        self.proc = spawn_s3(self.dir.path(), self.port, &self.logdir);
    }
}

/// (Re)starts s3s-fs over `root` on `port`, waiting until it listens.
pub fn spawn_s3(root: &Path, port: u16, logdir: &Path) -> Tethered {
    let proc = Tethered::spawn(
        &s3fs_bin(),
        &[
            "--host",
            "127.0.0.1",
            "--port",
            &port.to_string(),
            "--access-key",
            ACCESS_KEY,
            "--secret-key",
            SECRET_KEY,
            "--user",
            &format!(
                "{WORKER_ACCESS_KEY}:{WORKER_SECRET_KEY}:{}",
                crate::workspace_root().join("deploy/s3/worker-policy.json").display()
            ),
            root.to_str().expect("utf-8 temp path"),
        ],
        &[],
        &logdir.join(format!("s3s-fs-{port}-{}.log", Instant::now().elapsed().as_nanos())),
    );
    wait_port(port, "s3s-fs", Duration::from_secs(20));
    proc
}
