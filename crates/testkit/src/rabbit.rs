//! A throwaway RabbitMQ vhost per test, so tests never touch the queues of a developer's
//! running worker (vhost `/`) nor each other's.
//!
//! Needs RabbitMQ on 127.0.0.1:5672 with the `guest` user and `rabbitmqctl` (at
//! `$MEDIAGATE_RABBITMQCTL`, `/usr/sbin/rabbitmqctl` or on `PATH`). When the broker is not
//! reachable the test FAILS with what to run; it never skips silently.

use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Once;
use std::time::Duration;

const PORT: u16 = 5672;
const PREFIX: &str = "mg-test-";

/// A vhost `mg-test-<pid>-<tag>-<n>` with full permissions for `guest`, deleted on drop (also
/// when the test panics); vhosts of test processes that are gone are swept the first time.
pub struct TestVhost {
    /// The vhost's name.
    pub name: String,
    /// `amqp://guest:guest@127.0.0.1:5672/<name>`.
    pub url: String,
}

impl TestVhost {
    /// A fresh vhost tagged `tag` (for people reading `rabbitmqctl list_vhosts`).
    pub fn create(tag: &str) -> TestVhost {
        let addr: SocketAddr = ([127, 0, 0, 1], PORT).into();
        if let Err(e) = TcpStream::connect_timeout(&addr, Duration::from_secs(2)) {
            panic!(
                "RabbitMQ is not reachable on {addr} ({e}): run `make test` (it starts it) or \
                 `rabbitmq-server -detached` then `rabbitmqctl await_startup`"
            );
        }
        static SWEEP: Once = Once::new();
        SWEEP.call_once(sweep_stale);
        static N: AtomicU32 = AtomicU32::new(0);
        let name = format!("{PREFIX}{}-{tag}-{}", std::process::id(), N.fetch_add(1, Ordering::SeqCst));
        ctl(&["add_vhost", &name]);
        ctl(&["set_permissions", "-p", &name, "guest", ".*", ".*", ".*"]);
        let url = amqp_url(&name);
        TestVhost { name, url }
    }

    /// Keeps the vhost past this value (for a harness shared by a whole test binary); the sweep
    /// of the next run removes it.
    pub fn keep(self) -> String {
        let name = self.name.clone();
        std::mem::forget(self);
        name
    }

    /// Runs `rabbitmqctl -q <args…>` and returns its stdout, for checks AMQP cannot make (exact
    /// queue arguments, closing connections). Add `-p`, `&self.name` yourself.
    pub fn ctl(&self, args: &[&str]) -> String {
        ctl(args)
    }
}

impl Drop for TestVhost {
    fn drop(&mut self) {
        let _ = Command::new(rabbitmqctl()).args(["-q", "delete_vhost", &self.name]).output();
    }
}

/// A vhost kept for the life of the test process (see [`TestVhost::keep`]).
pub fn create_vhost(tag: &str) -> String {
    TestVhost::create(tag).keep()
}

/// The AMQP URL of a vhost on the local broker.
pub fn amqp_url(vhost: &str) -> String {
    format!("amqp://guest:guest@127.0.0.1:{PORT}/{}", encode(vhost))
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
    let out = Command::new(rabbitmqctl()).arg("-q").args(args).output().unwrap_or_else(|e| {
        panic!("cannot run rabbitmqctl ({e}): run `make test`, which installs and starts RabbitMQ")
    });
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
        let Some(pid) = name.strip_prefix(PREFIX).and_then(|r| r.split('-').next()).and_then(|p| p.parse::<u32>().ok())
        else {
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

#[cfg(test)]
mod tests {
    #[test]
    fn vhost_names_are_url_encoded() {
        assert_eq!(super::amqp_url("mg-test-1-a-0"), "amqp://guest:guest@127.0.0.1:5672/mg-test-1-a-0");
        assert_eq!(super::amqp_url("/"), "amqp://guest:guest@127.0.0.1:5672/%2F");
    }
}
