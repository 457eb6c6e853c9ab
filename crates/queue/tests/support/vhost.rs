//! A throwaway RabbitMQ vhost per test, so integration tests never touch the queues of a
//! developer's running worker (vhost `/`) nor each other's. Self-contained on purpose: copy this
//! file into another crate's `tests/support/` and `mod support;` it (std only).
//!
//! Needs RabbitMQ on 127.0.0.1:5672 with the `guest` user and `rabbitmqctl` (at
//! `$MEDIAGATE_RABBITMQCTL`, `/usr/sbin/rabbitmqctl` or on `PATH`; ~1 s per call). When the
//! broker is not reachable the test FAILS with instructions; it never skips silently.

#![allow(dead_code)]

use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Once;
use std::time::Duration;

const HOST: [u8; 4] = [127, 0, 0, 1];
const PORT: u16 = 5672;
const PREFIX: &str = "mg-test-";

/// A vhost `mg-test-<pid>-<n>` with full permissions for `guest`; deleted on drop (also when the
/// test panics).
pub struct TestVhost {
    /// The vhost's name.
    pub name: String,
    /// `amqp://guest:guest@127.0.0.1:5672/<name>`, for `Broker::connect`.
    pub url: String,
}

impl TestVhost {
    /// Creates a fresh vhost (and, once per process, deletes the `mg-test-*` vhosts that dead
    /// test processes left behind).
    pub fn create() -> TestVhost {
        let addr: SocketAddr = (HOST, PORT).into();
        if let Err(e) = TcpStream::connect_timeout(&addr, Duration::from_secs(2)) {
            panic!(
                "RabbitMQ is not reachable on {addr} ({e}): start it: rabbitmq-server -detached \
                 (then `rabbitmqctl await_startup`), or run `make test`"
            );
        }
        static SWEEP: Once = Once::new();
        SWEEP.call_once(sweep_stale);

        static N: AtomicU32 = AtomicU32::new(0);
        let name = format!("{PREFIX}{}-{}", std::process::id(), N.fetch_add(1, Ordering::SeqCst));
        ctl(&["add_vhost", &name]);
        ctl(&["set_permissions", "-p", &name, "guest", ".*", ".*", ".*"]);
        let url = format!("amqp://guest:guest@127.0.0.1:{PORT}/{}", encode(&name));
        TestVhost { name, url }
    }

    /// Runs `rabbitmqctl -q <args…>` and returns its stdout, for checks the AMQP protocol cannot
    /// make (exact queue arguments, closing connections). Add `-p`, `&self.name` yourself.
    pub fn ctl(&self, args: &[&str]) -> String {
        ctl(args)
    }
}

impl Drop for TestVhost {
    fn drop(&mut self) {
        let _ = Command::new(rabbitmqctl()).args(["-q", "delete_vhost", &self.name]).output();
    }
}

fn rabbitmqctl() -> PathBuf {
    if let Some(p) = std::env::var_os("MEDIAGATE_RABBITMQCTL") {
        return PathBuf::from(p);
    }
    let sbin = PathBuf::from("/usr/sbin/rabbitmqctl");
    if sbin.is_file() {
        return sbin;
    }
    PathBuf::from("rabbitmqctl")
}

/// Runs rabbitmqctl and returns stdout; panics with its output on failure.
fn ctl(args: &[&str]) -> String {
    let out = Command::new(rabbitmqctl())
        .arg("-q")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run rabbitmqctl ({e}): install RabbitMQ or run `make test`"));
    if !out.status.success() {
        panic!(
            "rabbitmqctl {} failed ({}): {}{}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Deletes `mg-test-<pid>-*` vhosts whose process is gone (a test run that was killed).
fn sweep_stale() {
    let Ok(out) = Command::new(rabbitmqctl()).args(["-q", "list_vhosts", "name"]).output() else {
        return;
    };
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let name = line.trim();
        let Some(rest) = name.strip_prefix(PREFIX) else {
            continue;
        };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if pid != std::process::id() && !PathBuf::from(format!("/proc/{pid}")).exists() {
            let _ = Command::new(rabbitmqctl()).args(["-q", "delete_vhost", name]).output();
        }
    }
}

/// Percent-encodes a vhost name for the URL path.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}
