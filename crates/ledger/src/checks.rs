//! The two checks that look outside the ledger's records: what S3 holds for each job's final
//! verdict (check 3), and whether the job queues have drained (check 5). Each finding is a
//! line of text for the report.

use std::time::Duration;

use futures_util::StreamExt;
use lapin::options::QueueDeclareOptions;
use lapin::types::FieldTable;
use lapin::Connection;
use mediagate_queue::{ManagementApi, ManagementClient};
use mediagate_store::{Store, StoreError};
use sha2::{Digest, Sha256};

use crate::account::StoredCheck;

/// S3 reads in flight at once during check 3.
const S3_PARALLEL: usize = 8;
/// How long one management API request may take.
const HTTP_TIMEOUT: Duration = Duration::from_secs(5);

/// Where the S3 step reads.
pub(crate) struct Buckets<'a> {
    pub output: &'a str,
    pub manifest: &'a str,
}

/// Check 3 for every final verdict: the manifest holds that verdict (same revision and status)
/// and every output it names is stored with its sha256. Earlier revisions are not looked at:
/// a newer one overwrites their objects.
pub(crate) async fn check_stored(store: &Store, buckets: &Buckets<'_>, checks: &[StoredCheck]) -> Vec<String> {
    // The futures are made before the stream (no closure inside it), so the settle future
    // stays `Send`.
    let each: Vec<_> = checks.iter().map(|c| check_one(store, buckets, c)).collect();
    futures_util::stream::iter(each)
        .buffered(S3_PARALLEL)
        .collect::<Vec<Vec<String>>>()
        .await
        .into_iter()
        .flatten()
        .collect()
}

async fn check_one(store: &Store, buckets: &Buckets<'_>, c: &StoredCheck) -> Vec<String> {
    let mut problems = Vec::new();
    let (job, rev) = (&c.job_id, c.revision);
    let key = format!("manifests/{job}.json");
    match store.get(buckets.manifest, &key).await {
        Err(StoreError::NotFound { .. }) => {
            problems.push(format!("job {job} rev {rev}: manifest s3://{}/{key} is missing", buckets.manifest))
        }
        Err(e) => problems.push(format!("job {job} rev {rev}: cannot read its manifest: {e}")),
        Ok(bytes) => {
            if let Some(p) = manifest_mismatch(&bytes, rev, &c.status) {
                problems.push(format!("job {job} rev {rev}: manifest s3://{}/{key} {p}", buckets.manifest));
            }
        }
    }
    for out in &c.outputs {
        let bucket = out.bucket.as_deref().unwrap_or(buckets.output);
        let at = format!("s3://{bucket}/{}", out.key);
        match store.get(bucket, &out.key).await {
            Err(StoreError::NotFound { .. }) => {
                problems.push(format!("job {job} rev {rev}: output {}/{} {at} is missing", out.item_id, out.variant))
            }
            Err(e) => problems.push(format!("job {job} rev {rev}: cannot read output {at}: {e}")),
            Ok(bytes) => {
                let sha = hex::encode(Sha256::digest(&bytes));
                if !sha.eq_ignore_ascii_case(&out.sha256) {
                    problems.push(format!(
                        "job {job} rev {rev}: output {at} has sha256 {sha}, the verdict says {}",
                        out.sha256
                    ));
                }
            }
        }
    }
    problems
}

/// Why a manifest does not hold the verdict `revision`/`status`, if it does not. The manifest
/// is `{"job": …, "verdict": {…}}` (contract §4, `worker::job::write_manifest`).
pub(crate) fn manifest_mismatch(bytes: &[u8], revision: u64, status: &str) -> Option<String> {
    let m: serde_json::Value = match serde_json::from_slice(bytes) {
        Ok(m) => m,
        Err(e) => return Some(format!("is not JSON: {e}")),
    };
    let v = &m["verdict"];
    if !v.is_object() {
        return Some("has no verdict object".into());
    }
    let (m_rev, m_status) = (v["revision"].as_u64(), v["status"].as_str());
    if m_rev != Some(revision) || m_status != Some(status) {
        return Some(format!(
            "holds revision {} status {}, the verdict revision {revision} status {status}",
            m_rev.map_or("none".into(), |r| r.to_string()),
            m_status.unwrap_or("none")
        ));
    }
    None
}

/// One queue's depth. `unacked` is `None` when only AMQP could be asked (it cannot tell).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Depth {
    pub queue: String,
    pub ready: u64,
    pub unacked: Option<u64>,
}

impl Depth {
    pub(crate) fn quiet(&self) -> bool {
        self.ready == 0 && self.unacked.unwrap_or(0) == 0
    }
}

/// Asks RabbitMQ's management API for queue depths (`GET /api/queues/{vhost}/{queue}`).
pub(crate) struct Management {
    client: ManagementClient,
    apis: Vec<ManagementApi>,
}

/// What the management API says about one queue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Stats {
    /// Its ready and unacknowledged counts.
    Counts { ready: u64, unacked: u64 },
    /// It exists but has no statistics yet: the API shows a queue's counts only from its first
    /// statistics sample, some seconds after it is declared (or after a broker restart).
    Pending,
    /// 404: it does not exist, so nothing can wait in it.
    Absent,
}

impl Management {
    /// The API of `base` (when given) or of each AMQP URL's host; the first that answers is used.
    pub(crate) fn new(amqp_urls: &[String], base: Option<&str>) -> Management {
        let mut apis: Vec<ManagementApi> =
            amqp_urls.iter().filter_map(|u| ManagementApi::for_amqp_url(u, base)).collect();
        apis.dedup();
        Management { client: ManagementClient::default(), apis }
    }

    /// The statistics of `queues` (in order) from the first API that answers for all of them;
    /// `Err` says why none did.
    pub(crate) async fn stats(&self, queues: &[&str]) -> Result<Vec<Stats>, String> {
        let mut errors = Vec::new();
        'apis: for api in &self.apis {
            let mut found = Vec::new();
            for q in queues {
                match self.ask(api, q).await {
                    Ok(stats) => found.push(stats),
                    Err(e) => {
                        errors.push(format!("{}: {e}", api.base_url));
                        continue 'apis;
                    }
                }
            }
            return Ok(found);
        }
        Err(if errors.is_empty() { "no management API (no AMQP URL parsed)".into() } else { errors.join("; ") })
    }

    async fn ask(&self, api: &ManagementApi, queue: &str) -> Result<Stats, String> {
        let (status, body) = self.client.get(api, &api.queue_path(queue), HTTP_TIMEOUT).await?;
        match status {
            200 => parse_stats(queue, &body),
            404 => Ok(Stats::Absent),
            other => Err(format!("HTTP {other} for queue {queue}")),
        }
    }
}

/// `messages_ready` and `messages_unacknowledged` of a management API queue object, or
/// [`Stats::Pending`] when the API has no sample of them yet.
pub(crate) fn parse_stats(queue: &str, body: &[u8]) -> Result<Stats, String> {
    let v: serde_json::Value = serde_json::from_slice(body).map_err(|e| format!("queue {queue}: not JSON: {e}"))?;
    Ok(match (v["messages_ready"].as_u64(), v["messages_unacknowledged"].as_u64()) {
        (Some(ready), Some(unacked)) => Stats::Counts { ready, unacked },
        _ => Stats::Pending,
    })
}

/// Depths from AMQP alone: a passive `queue.declare` tells the ready count (not the
/// unacknowledged). Each queue gets a channel of its own, since a missing queue closes it.
pub(crate) async fn amqp_depths(conn: &Connection, queues: &[&str]) -> Result<Vec<Depth>, String> {
    let mut found = Vec::new();
    for q in queues {
        let ch = conn.create_channel().await.map_err(|e| format!("opening a channel: {e}"))?;
        let passive = QueueDeclareOptions { passive: true, ..Default::default() };
        match ch.queue_declare((*q).into(), passive, FieldTable::default()).await {
            Ok(state) => {
                found.push(Depth { queue: (*q).to_owned(), ready: u64::from(state.message_count()), unacked: None });
                let _ = ch.close(200, "depth read".into()).await;
            }
            Err(e) if is_not_found(&e) => {}
            Err(e) => return Err(format!("passive declare of {q}: {e}")),
        }
    }
    Ok(found)
}

pub(crate) fn is_not_found(e: &lapin::Error) -> bool {
    use lapin::protocol::{AMQPErrorKind, AMQPSoftError};
    matches!(e.kind(), lapin::ErrorKind::ProtocolError(p) if *p.kind() == AMQPErrorKind::Soft(AMQPSoftError::NOTFOUND))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manifest_must_hold_the_final_verdict() {
        let m = br#"{"job":{"job_id":"j"},"verdict":{"job_id":"j","revision":2,"status":"cleared"}}"#;
        assert_eq!(manifest_mismatch(m, 2, "cleared"), None);
        let p = manifest_mismatch(m, 3, "cleared").unwrap_or_default();
        assert!(p.contains("holds revision 2 status cleared, the verdict revision 3"), "{p}");
        assert!(manifest_mismatch(m, 2, "blocked").is_some());
        assert!(manifest_mismatch(br#"{"job":"raw"}"#, 0, "rejected").is_some_and(|p| p.contains("no verdict")));
        assert!(manifest_mismatch(b"<html>", 0, "rejected").is_some_and(|p| p.contains("not JSON")));
    }

    #[test]
    fn depths_come_from_the_management_fields() {
        let d = parse_stats("q", br#"{"name":"q","messages_ready":3,"messages_unacknowledged":1}"#);
        assert_eq!(d, Ok(Stats::Counts { ready: 3, unacked: 1 }));
        assert!(!Depth { queue: "q".into(), ready: 0, unacked: Some(1) }.quiet());
        assert!(Depth { queue: "q".into(), ready: 0, unacked: None }.quiet());
        assert_eq!(parse_stats("q", br#"{"name":"q","type":"quorum"}"#), Ok(Stats::Pending));
        assert!(parse_stats("q", b"<html>").is_err());
    }

    /// A stand-in management API: answers `GET /api/queues/%2F/mediagate.uploads` for
    /// guest:guest, 404 for any other queue, 401 for other credentials.
    async fn fake_management() -> u16 {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        tokio::spawn(async move {
            while let Ok((mut sock, _)) = listener.accept().await {
                let mut buf = vec![0u8; 4096];
                let mut len = 0;
                while !buf[..len].windows(4).any(|w| w == b"\r\n\r\n") && len < buf.len() {
                    match sock.read(&mut buf[len..]).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => len += n,
                    }
                }
                let req = String::from_utf8_lossy(&buf[..len]).to_ascii_lowercase();
                let (status, body) = if !req.contains("authorization: basic z3vlc3q6z3vlc3q=") {
                    ("401 Unauthorized", String::new())
                } else if req.starts_with("get /api/queues/%2f/mediagate.uploads ") {
                    ("200 OK", r#"{"name":"mediagate.uploads","messages_ready":0,"messages_unacknowledged":2}"#.into())
                } else {
                    ("404 Not Found", r#"{"error":"Object Not Found"}"#.into())
                };
                let answer = format!(
                    "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = sock.write_all(answer.as_bytes()).await;
            }
        });
        port
    }

    #[tokio::test]
    async fn the_management_api_is_asked_with_the_amqp_credentials() {
        let port = fake_management().await;
        let base = format!("http://127.0.0.1:{port}");
        let urls = vec!["amqp://guest:guest@127.0.0.1:5672/%2f".to_owned()];
        let api = Management::new(&urls, Some(&base));
        let found = api.stats(&["mediagate.uploads", "ledger.absent"]).await;
        assert_eq!(found, Ok(vec![Stats::Counts { ready: 0, unacked: 2 }, Stats::Absent]));
        let wrong = vec!["amqp://guest:nope@127.0.0.1:5672/%2f".to_owned()];
        let refused = Management::new(&wrong, Some(&base)).stats(&["mediagate.uploads"]).await;
        assert!(refused.as_ref().is_err_and(|e| e.contains("HTTP 401")), "{refused:?}");
        let nobody = Management::new(&urls, Some("http://127.0.0.1:9")).stats(&["mediagate.uploads"]).await;
        assert!(nobody.is_err());
    }
}
