//! A TCP proxy that adds a fixed delay to every request, to measure the worker against an S3
//! that answers like a real one over a network (20–100 ms) instead of loopback (~2 ms).
//!
//! The delay is applied once per request: when bytes arrive from the client and the server has
//! answered since the client last sent anything (a new request on a kept-alive connection), or
//! on a new connection, they are held for `delay` before being forwarded; the rest of a request
//! body and every answer flow through at once (an `Expect: 100-continue` body waits once more,
//! as it would over a network). Plain threads and blocking sockets, so it runs beside any
//! runtime.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
#[cfg(test)]
use std::time::Instant;

/// A running proxy; it lives as long as the process (its threads are detached).
pub struct LatencyProxy {
    /// `http://127.0.0.1:PORT`, for `MEDIAGATE_S3_ENDPOINT`.
    pub endpoint: String,
}

/// Starts a proxy to `127.0.0.1:upstream_port` that delays each request by `delay`.
pub fn latency_proxy(upstream_port: u16, delay: Duration) -> LatencyProxy {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind the latency proxy");
    let endpoint = format!("http://{}", listener.local_addr().expect("proxy address"));
    std::thread::spawn(move || {
        for client in listener.incoming() {
            let Ok(client) = client else { continue };
            let Ok(server) = TcpStream::connect(("127.0.0.1", upstream_port)) else { continue };
            let _ = client.set_nodelay(true);
            let _ = server.set_nodelay(true);
            let (Ok(c2), Ok(s2)) = (client.try_clone(), server.try_clone()) else { continue };
            // Bytes the server has sent back: when it moved, the client's next bytes are a new request.
            let answered = Arc::new(AtomicU64::new(0));
            let a2 = answered.clone();
            std::thread::spawn(move || forward(client, server, Direction::Request { delay, answered }));
            std::thread::spawn(move || forward(s2, c2, Direction::Answer { answered: a2 }));
        }
    });
    LatencyProxy { endpoint }
}

/// Which way a [`forward`] copies.
enum Direction {
    /// Client to server: each new request waits `delay`; `answered` is the server's byte count.
    Request { delay: Duration, answered: Arc<AtomicU64> },
    /// Server to client: counts what it forwards into `answered`.
    Answer { answered: Arc<AtomicU64> },
}

/// Copies `from` to `to` until either side closes.
fn forward(mut from: TcpStream, mut to: TcpStream, direction: Direction) {
    let mut buf = vec![0u8; 256 * 1024];
    let mut seen: Option<u64> = None;
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if let Direction::Request { delay, answered } = &direction {
            if seen != Some(answered.load(Ordering::SeqCst)) {
                std::thread::sleep(*delay);
            }
            seen = Some(answered.load(Ordering::SeqCst));
        }
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
        if let Direction::Answer { answered } = &direction {
            answered.fetch_add(n as u64, Ordering::SeqCst);
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}

#[cfg(test)]
mod tests {
    use super::*;

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
