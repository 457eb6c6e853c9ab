//! A TCP proxy in front of the local S3 server whose behaviour can be switched while it runs:
//! S3 as over a network (a delay per request), refusing connections, answering 500 or 503, or
//! answering slowly. The soak test drives the worker's storage through it; the latency proxy
//! ([`crate::latency`]) is this proxy held at one delay. At zero delay it forwards any TCP
//! protocol both ways, so a fault test also puts it in front of RabbitMQ: `Refuse` then closes
//! every AMQP connection and refuses new ones, as a killed broker node does.
//!
//! A delay is applied once per request: when bytes arrive from the client and the server has
//! answered since the client last sent anything (a new request on a kept-alive connection), or
//! on a new connection, they are held for the delay in force before being forwarded; the rest
//! of a request body and every answer flow through at once. Switching to a refusing or erring
//! mode cuts every open connection, so pooled connections cannot dodge the fault. Plain threads
//! and blocking sockets, so it runs beside any runtime.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How the proxy answers now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum S3Fault {
    /// Forward everything, each request held this long first (zero: straight through).
    Delay(Duration),
    /// Nothing listens: connections are refused.
    Refuse,
    /// Every request is answered with this HTTP status (500, 503) and the connection closed.
    Status(u16),
}

struct State {
    mode: Mutex<S3Fault>,
    /// Both ends of every open connection, to cut them when the mode turns hostile.
    open: Mutex<Vec<TcpStream>>,
}

/// A running proxy; its threads live as long as the process.
#[derive(Clone)]
pub struct FaultProxy {
    /// `http://127.0.0.1:PORT`, for `MEDIAGATE_S3_ENDPOINT`.
    pub endpoint: String,
    /// The port it listens on (kept across a refusing spell).
    pub port: u16,
    state: Arc<State>,
}

impl FaultProxy {
    /// Starts a proxy to `127.0.0.1:upstream_port` that forwards without delay.
    pub fn start(upstream_port: u16) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the fault proxy");
        let port = listener.local_addr().expect("proxy address").port();
        let state = Arc::new(State { mode: Mutex::new(S3Fault::Delay(Duration::ZERO)), open: Mutex::new(Vec::new()) });
        let s = state.clone();
        std::thread::spawn(move || accept_loop(listener, port, upstream_port, s));
        FaultProxy { endpoint: format!("http://127.0.0.1:{port}"), port, state }
    }

    /// Switches the behaviour; a refusing or erring mode cuts the open connections.
    pub fn set(&self, mode: S3Fault) {
        *self.state.mode.lock().unwrap_or_else(|p| p.into_inner()) = mode;
        if !matches!(mode, S3Fault::Delay(_)) {
            for s in self.state.open.lock().unwrap_or_else(|p| p.into_inner()).drain(..) {
                let _ = s.shutdown(Shutdown::Both);
            }
        }
    }

    /// The behaviour in force.
    pub fn mode(&self) -> S3Fault {
        *self.state.mode.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn mode(state: &State) -> S3Fault {
    *state.mode.lock().unwrap_or_else(|p| p.into_inner())
}

/// Accepts while the mode is not `Refuse`; drops the listening socket (so connections are
/// refused) while it is, and binds the same port again after.
fn accept_loop(listener: TcpListener, port: u16, upstream_port: u16, state: Arc<State>) {
    let mut listener = Some(listener);
    loop {
        if mode(&state) == S3Fault::Refuse {
            listener = None;
            std::thread::sleep(Duration::from_millis(20));
            continue;
        }
        if listener.is_none() {
            match TcpListener::bind(("127.0.0.1", port)) {
                Ok(l) => listener = Some(l),
                Err(_) => {
                    std::thread::sleep(Duration::from_millis(20));
                    continue;
                }
            }
        }
        let Some(l) = &listener else { continue };
        let _ = l.set_nonblocking(true);
        match l.accept() {
            Ok((client, _)) => {
                let _ = client.set_nonblocking(false);
                let state = state.clone();
                std::thread::spawn(move || serve(client, upstream_port, state));
            }
            Err(_) => std::thread::sleep(Duration::from_millis(5)),
        }
    }
}

/// One client connection, handled as the mode says when it arrived.
fn serve(mut client: TcpStream, upstream_port: u16, state: Arc<State>) {
    match mode(&state) {
        S3Fault::Refuse => {}
        S3Fault::Status(code) => {
            // Read the request head (its body, if any, is not waited for), answer, close.
            let mut head = Vec::new();
            let mut b = [0u8; 4096];
            let _ = client.set_read_timeout(Some(Duration::from_secs(2)));
            while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 64 * 1024 {
                match client.read(&mut b) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => head.extend_from_slice(&b[..n]),
                }
            }
            let reason = if code == 503 { "Service Unavailable" } else { "Internal Server Error" };
            let body = format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>{}</Code><Message>injected by the fault proxy</Message></Error>",
                if code == 503 { "SlowDown" } else { "InternalError" }
            );
            let _ = write!(
                client,
                "HTTP/1.1 {code} {reason}\r\nContent-Type: application/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = client.shutdown(Shutdown::Both);
        }
        S3Fault::Delay(_) => {
            let Ok(server) = TcpStream::connect(("127.0.0.1", upstream_port)) else { return };
            let _ = client.set_nodelay(true);
            let _ = server.set_nodelay(true);
            let (Ok(c2), Ok(s2), Ok(c3), Ok(s3)) =
                (client.try_clone(), server.try_clone(), client.try_clone(), server.try_clone())
            else {
                return;
            };
            {
                let mut open = state.open.lock().unwrap_or_else(|p| p.into_inner());
                open.retain(|s| s.peer_addr().is_ok());
                open.push(c3);
                open.push(s3);
            }
            // Bytes the server has sent back: when it moved, the client's next bytes are a new request.
            let answered = Arc::new(AtomicU64::new(0));
            let a2 = answered.clone();
            std::thread::spawn(move || forward(s2, c2, None, a2));
            forward(client, server, Some(state), answered);
        }
    }
}

/// Copies `from` to `to` until either side closes. With `state` (the request direction), each
/// new request first waits the delay in force; without, counts what it forwards into `answered`.
fn forward(mut from: TcpStream, mut to: TcpStream, state: Option<Arc<State>>, answered: Arc<AtomicU64>) {
    let mut buf = vec![0u8; 256 * 1024];
    let mut seen: Option<u64> = None;
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if let Some(state) = &state {
            if seen != Some(answered.load(Ordering::SeqCst)) {
                match mode(state) {
                    S3Fault::Delay(d) if !d.is_zero() => std::thread::sleep(d),
                    S3Fault::Delay(_) => {}
                    // Turned hostile while this connection was open: cut it.
                    _ => break,
                }
            }
            seen = Some(answered.load(Ordering::SeqCst));
        }
        // An answer is counted before it is passed on: once the client has it, its next bytes
        // must already see that the server answered (counted after, a quick client's next
        // request could slip through undelayed).
        if state.is_none() {
            answered.fetch_add(n as u64, Ordering::SeqCst);
        }
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    fn echo_server() -> u16 {
        let upstream = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = upstream.local_addr().unwrap().port();
        std::thread::spawn(move || {
            for s in upstream.incoming() {
                let Ok(mut s) = s else { continue };
                std::thread::spawn(move || {
                    let mut b = [0u8; 4];
                    while s.read_exact(&mut b).is_ok() {
                        if s.write_all(&b).is_err() {
                            break;
                        }
                    }
                });
            }
        });
        port
    }

    fn round_trip(p: &FaultProxy) -> std::io::Result<Vec<u8>> {
        let mut c = TcpStream::connect(("127.0.0.1", p.port))?;
        c.set_read_timeout(Some(Duration::from_secs(5)))?;
        c.write_all(b"ping")?;
        let mut out = Vec::new();
        let mut b = [0u8; 512];
        let n = c.read(&mut b)?;
        out.extend_from_slice(&b[..n]);
        Ok(out)
    }

    #[test]
    fn each_mode_does_what_it_says_and_the_port_comes_back() {
        let p = FaultProxy::start(echo_server());
        assert_eq!(round_trip(&p).unwrap(), b"ping");
        p.set(S3Fault::Delay(Duration::from_millis(60)));
        let t = Instant::now();
        assert_eq!(round_trip(&p).unwrap(), b"ping");
        assert!(t.elapsed() >= Duration::from_millis(60), "delayed: {:?}", t.elapsed());
        p.set(S3Fault::Refuse);
        std::thread::sleep(Duration::from_millis(100));
        let e = TcpStream::connect(("127.0.0.1", p.port)).expect_err("refused while refusing");
        assert_eq!(e.kind(), std::io::ErrorKind::ConnectionRefused);
        p.set(S3Fault::Status(503));
        std::thread::sleep(Duration::from_millis(100));
        let mut c = TcpStream::connect(("127.0.0.1", p.port)).unwrap();
        c.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let mut answer = String::new();
        c.read_to_string(&mut answer).unwrap();
        assert!(answer.starts_with("HTTP/1.1 503 "), "{answer}");
        p.set(S3Fault::Delay(Duration::ZERO));
        assert_eq!(round_trip(&p).unwrap(), b"ping", "back to forwarding on the same port");
    }
}
