//! A TCP proxy that adds a fixed delay to every request, to measure the worker against an S3
//! that answers like a real one over a network (20–100 ms) instead of loopback (~2 ms).
//!
//! The delay is applied once per request: when bytes arrive from the client and the server has
//! answered since the client last sent anything (a new request on a kept-alive connection), or
//! on a new connection, they are held for `delay` before being forwarded; the rest of a request
//! body and every answer flow through at once (an `Expect: 100-continue` body waits once more,
//! as it would over a network). Plain threads and blocking sockets, so it runs beside any
//! runtime.

use std::time::Duration;

use crate::faults::{FaultProxy, S3Fault};

/// A running proxy; it lives as long as the process (its threads are detached).
pub struct LatencyProxy {
    /// `http://127.0.0.1:PORT`, for `MEDIAGATE_S3_ENDPOINT`.
    pub endpoint: String,
}

/// Starts a proxy to `127.0.0.1:upstream_port` that delays each request by `delay`: a
/// [`FaultProxy`] held at one delay.
pub fn latency_proxy(upstream_port: u16, delay: Duration) -> LatencyProxy {
    let proxy = FaultProxy::start(upstream_port);
    proxy.set(S3Fault::Delay(delay));
    LatencyProxy { endpoint: proxy.endpoint }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};
    use std::time::Instant;

    #[test]
    fn each_request_is_delayed_once() {
        let upstream = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = upstream.local_addr().unwrap().port();
        std::thread::spawn(move || {
            let (mut s, _) = upstream.accept().unwrap();
            let mut b = [0u8; 4];
            while s.read_exact(&mut b).is_ok() {
                s.write_all(&b).unwrap();
            }
        });
        let proxy = latency_proxy(port, Duration::from_millis(40));
        let mut c = TcpStream::connect(proxy.endpoint.trim_start_matches("http://")).unwrap();
        for _ in 0..3 {
            let t = Instant::now();
            c.write_all(b"ping").unwrap();
            let mut b = [0u8; 4];
            c.read_exact(&mut b).unwrap();
            assert_eq!(&b, b"ping");
            let ms = t.elapsed().as_millis();
            assert!(ms >= 40, "each round trip waits the delay: {ms} ms");
        }
    }
}
