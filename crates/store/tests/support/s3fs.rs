//! Spawns a throwaway s3s-fs (an S3-compatible server on the local file system) for integration
//! tests. Self-contained on purpose: copy this file into another crate's `tests/support/` and
//! `mod support;` it (needs the `tempfile` dev-dependency only).
//!
//! The binary is looked up, in order, at `$MEDIAGATE_S3FS_BIN`, `<workspace>/.tools/bin/s3s-fs`
//! and `s3s-fs` on `PATH`. When none exists the test FAILS (it never skips silently): run
//! `make test`, which installs it.

#![allow(dead_code)]

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Access key the server accepts.
pub const ACCESS_KEY: &str = "mediagate-test-ak";
/// Secret key the server accepts.
pub const SECRET_KEY: &str = "mediagate-test-sk";

/// A running s3s-fs; killed (and its data directory removed) on drop.
pub struct S3Fs {
    child: Option<Child>,
    /// Port it listens on (127.0.0.1).
    pub port: u16,
    /// `http://127.0.0.1:<port>`, for the store's `endpoint`.
    pub endpoint: String,
    root: tempfile::TempDir,
}

/// Finds the s3s-fs binary or panics with instructions.
pub fn s3fs_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("MEDIAGATE_S3FS_BIN") {
        let p = PathBuf::from(p);
        assert!(p.is_file(), "MEDIAGATE_S3FS_BIN={} does not exist; run `make test` — it installs s3s-fs", p.display());
        return p;
    }
    let ws = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.tools/bin/s3s-fs");
    if ws.is_file() {
        return ws;
    }
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let p = dir.join("s3s-fs");
            if p.is_file() {
                return p;
            }
        }
    }
    panic!(
        "s3s-fs not found (looked at $MEDIAGATE_S3FS_BIN, {}, and PATH): run `make test` — it installs s3s-fs \
         (or `cargo install s3s-fs@0.14.1 --locked --features binary --root .tools`)",
        ws.display()
    );
}

impl S3Fs {
    /// Starts a server on a free port with a fresh empty root and waits until it accepts
    /// connections (panics after 10 s, with the reason when the process died).
    pub fn start() -> S3Fs {
        let bin = s3fs_bin();
        let mut last = String::new();
        for _ in 0..3 {
            let root = tempfile::tempdir().expect("temp dir for s3s-fs");
            let port = free_port();
            let mut child = Command::new(&bin)
                .args(["--host", "127.0.0.1", "--port", &port.to_string()])
                .args(["--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY])
                .arg(root.path())
                .env("RUST_LOG", "error")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap_or_else(|e| panic!("cannot run {}: {e}", bin.display()));
            let addr: SocketAddr = ([127, 0, 0, 1], port).into();
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                    return S3Fs { child: Some(child), port, endpoint: format!("http://{addr}"), root };
                }
                if let Ok(Some(status)) = child.try_wait() {
                    last = format!("s3s-fs exited with {status} (port {port} taken?)");
                    break;
                }
                if Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!("s3s-fs did not accept connections on {addr} within 10 s");
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        panic!("could not start s3s-fs: {last}");
    }

    /// Kills the server now (to test how clients behave when the store is down).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// The server's data directory (buckets are sub-directories).
    pub fn root(&self) -> &Path {
        self.root.path()
    }
}

impl Drop for S3Fs {
    fn drop(&mut self) {
        self.stop();
    }
}

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    l.local_addr().expect("local addr").port()
}
