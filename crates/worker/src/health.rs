//! `/healthz`, `/readyz` and `/metrics` over a deliberately small HTTP/1.1 responder: probes
//! and Prometheus scrapes need nothing more, and it keeps a web framework out of the worker.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tracing::{debug, warn};

use crate::metrics::metrics;

/// What readiness depends on; the worker loop and the binary flip these.
#[derive(Debug, Default)]
pub struct Readiness {
    /// Consuming with a live broker connection.
    pub broker: AtomicBool,
    /// The last S3 check succeeded.
    pub storage: AtomicBool,
    /// The classifier is loaded (true when the worker runs without one).
    pub model: AtomicBool,
}

impl Readiness {
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

/// Serves the endpoints on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, readiness: Arc<Readiness>) {
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
                "/healthz" | "/livez" => ("200 OK", "text/plain", "ok\n".to_string()),
                "/readyz" => {
                    let text = readiness.describe();
                    if readiness.ready() {
                        ("200 OK", "text/plain", text)
                    } else {
                        ("503 Service Unavailable", "text/plain", text)
                    }
                }
                "/metrics" => ("200 OK", "text/plain; version=0.0.4", metrics().render()),
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
