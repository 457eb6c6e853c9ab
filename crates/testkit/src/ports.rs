//! Loopback ports.

use std::time::{Duration, Instant};

/// A port nothing listens on right now (the OS picks it).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

/// Waits until something accepts connections on `127.0.0.1:port`; panics after `timeout`.
pub fn wait_port(port: u16, what: &str, timeout: Duration) {
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(start.elapsed() < timeout, "{what} did not open 127.0.0.1:{port} within {timeout:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}
