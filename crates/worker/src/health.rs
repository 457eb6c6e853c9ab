//! `/healthz`, `/readyz` and `/metrics` over a deliberately small HTTP/1.1 responder: probes
//! and Prometheus scrapes need nothing more, and it keeps a web framework out of the worker.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tracing::{debug, warn};

use crate::metrics::Metrics;

/// What readiness depends on; the worker loop and the binary flip these.
#[derive(Debug, Default)]
pub struct Readiness {
    /// Consuming with a live broker connection.
    pub broker: AtomicBool,
    /// The last S3 check succeeded.
    pub storage: AtomicBool,
    /// The classifier is loaded (true when the worker runs without one).
    pub model: AtomicBool,
    /// When the worker loop last showed it was making progress ([`Readiness::beat`]): seconds
    /// since the process's first beat, plus one; 0 before the first.
    beat: AtomicU64,
}

/// How long the worker loop may go without a beat before `/healthz` says it is stuck. The loop
/// beats every few seconds whatever it is doing (consuming, draining, reconnecting with
/// backoff), so this is many beats missed.
pub const STALL_LIMIT: Duration = Duration::from_secs(90);

fn stalled(beat: u64, now: Duration) -> Option<Duration> {
    match beat {
        0 => None,
        b => Some(now.saturating_sub(Duration::from_secs(b - 1))),
    }
}

fn live(stalled: Option<Duration>) -> Result<(), String> {
    match stalled {
        Some(d) if d > STALL_LIMIT => Err(format!("worker loop stalled for {} s\n", d.as_secs())),
        _ => Ok(()),
    }
}

fn clock() -> Duration {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed()
}

impl Readiness {
    /// The worker loop is making progress (it calls this every few seconds).
    pub fn beat(&self) {
        self.beat.store(clock().as_secs() + 1, Ordering::Relaxed);
    }

    /// How long since the last beat; `None` before the first (the loop has not started).
    pub fn stalled_for(&self) -> Option<Duration> {
        stalled(self.beat.load(Ordering::Relaxed), clock())
    }

    /// Alive unless the worker loop has gone [`STALL_LIMIT`] without a beat: then something
    /// blocks it, and only a restart helps (the broker redelivers its jobs).
    pub fn live(&self) -> Result<(), String> {
        live(self.stalled_for())
    }

    /// Ready when every dependency is.
    pub fn ready(&self) -> bool {
        self.broker.load(Ordering::Relaxed)
            && self.storage.load(Ordering::Relaxed)
            && self.model.load(Ordering::Relaxed)
    }

    fn describe(&self) -> String {
        format!(
            "broker {}\nstorage {}\nmodel {}\n",
            ok(self.broker.load(Ordering::Relaxed)),
            ok(self.storage.load(Ordering::Relaxed)),
            ok(self.model.load(Ordering::Relaxed))
        )
    }
}

fn ok(b: bool) -> &'static str {
    if b {
        "ok"
    } else {
        "unavailable"
    }
}

/// Serves the endpoints on `listener` until the task is dropped; `/metrics` renders `metrics`.
pub async fn serve(listener: TcpListener, readiness: Arc<Readiness>, metrics: Arc<Metrics>) {
    loop {
        let (mut sock, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                warn!(error = %e, "health listener accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let readiness = readiness.clone();
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 2048];
            let mut n = 0;
            // Read the request head (bounded in size and time); the body, if any, is ignored.
            let read = tokio::time::timeout(Duration::from_secs(5), async {
                while n < buf.len() {
                    match sock.read(&mut buf[n..]).await {
                        Ok(0) | Err(_) => break,
                        Ok(k) => {
                            n += k;
                            if buf[..n].windows(4).any(|w| w == b"\r\n\r\n") {
                                break;
                            }
                        }
                    }
                }
            })
            .await;
            if read.is_err() {
                return;
            }
            let head = String::from_utf8_lossy(&buf[..n]);
            let path = head.split_whitespace().nth(1).unwrap_or("/");
            let (status, content_type, body) = match path {
                "/healthz" | "/livez" => match readiness.live() {
                    Ok(()) => ("200 OK", "text/plain", "ok\n".to_string()),
                    Err(why) => ("503 Service Unavailable", "text/plain", why),
                },
                "/readyz" => {
                    let text = readiness.describe();
                    if readiness.ready() {
                        ("200 OK", "text/plain", text)
                    } else {
                        ("503 Service Unavailable", "text/plain", text)
                    }
                }
                "/metrics" => ("200 OK", "text/plain; version=0.0.4", metrics.render()),
                _ => ("404 Not Found", "text/plain", "not found\n".to_string()),
            };
            let response = format!(
                "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            if let Err(e) = sock.write_all(response.as_bytes()).await {
                debug!(%peer, error = %e, "health response not sent");
            }
            let _ = sock.shutdown().await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_loop_that_stops_beating_is_reported_stalled_only_past_the_limit() {
        let r = Readiness::default();
        assert_eq!(r.stalled_for(), None, "not started: not stalled");
        assert!(r.live().is_ok());
        r.beat();
        assert!(r.stalled_for().expect("beaten") < Duration::from_secs(2));
        assert!(r.live().is_ok());
        let at = |s: u64| Duration::from_secs(s);
        assert_eq!(stalled(0, at(1000)), None);
        assert_eq!(stalled(101, at(130)), Some(at(30)));
        assert!(live(stalled(101, at(100 + STALL_LIMIT.as_secs()))).is_ok(), "at the limit: alive");
        let why = live(stalled(101, at(101 + STALL_LIMIT.as_secs()))).expect_err("past the limit");
        assert_eq!(why, format!("worker loop stalled for {} s\n", STALL_LIMIT.as_secs() + 1));
    }
}
