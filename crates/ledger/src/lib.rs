//! mediagate-ledger: proves that no job is lost.
//!
//! A [`Ledger`] is a producer that remembers every job it published and a consumer of every
//! verdict (on a queue of its own, bound to `mediagate.verdicts` with `#`), and at the end
//! ([`Ledger::settle`]) accounts for each job: its highest revision has a verdict, repeated
//! verdicts agree, the manifest and outputs in S3 match the final verdict, and the job queues
//! have drained. Soak tests use it while they kill workers, restart the broker and take S3
//! away, so the ledger itself rides out those faults: it reconnects with backoff to any of the
//! configured nodes, republishes a job whose confirm was lost (at least once, as a real producer
//! does) and acks a verdict only once it is recorded.
//!
//! The accounting is a pure function over what was recorded (`account.rs`); S3 and the queues
//! are looked at in separate steps (`checks.rs`), so each rule is unit-tested without a broker.

use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use std::{fmt, future::Future};

use mediagate_queue::{names, redact_url};
use mediagate_store::{Store, StoreConfig, StoreError};
use serde_json::{json, Value};
use tokio::sync::{watch, Notify};
use tokio::time::Instant;
use tracing::{debug, warn};

mod account;
mod amqp;
mod audit;
mod checks;
mod publish;
mod records;
mod report;
mod settle;

pub use report::Report;

use amqp::{next_backoff, PubLink, MIN_BACKOFF};
use publish::Publisher;
use records::{Ended, Records};

/// How long [`Ledger::open`] and [`Ledger::publish`] keep trying before they give up.
pub const RETRY_BUDGET: Duration = Duration::from_secs(120);

/// What a [`Ledger`] connects to and checks.
#[derive(Clone)]
pub struct LedgerConfig {
    /// One or more AMQP URLs (the nodes of one cluster); connections try them in a random order.
    pub amqp_urls: Vec<String>,
    /// The ledger's own queue (`ledger.soak-1234`): durable, quorum, bound to
    /// `mediagate.verdicts` with `#`. Never one of the contract's queues.
    pub queue: String,
    /// Where manifests and outputs are read from.
    pub store: StoreConfig,
    /// The output bucket (`media`): outputs whose verdict names no bucket are read here.
    pub output_bucket: String,
    /// The manifest bucket (usually the output bucket).
    pub manifest_bucket: String,
    /// RabbitMQ's management API base URL; `None` = `http://<amqp host>:15672`.
    pub management_url: Option<String>,
    /// When set, every publish, expected revision and verdict is appended here as a JSON line.
    pub record: Option<PathBuf>,
}

impl fmt::Debug for LedgerConfig {
    /// Without passwords: the URLs are redacted and the store's keys left out.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let urls: Vec<String> = self.amqp_urls.iter().map(|u| redact_url(u)).collect();
        f.debug_struct("LedgerConfig")
            .field("amqp_urls", &urls)
            .field("queue", &self.queue)
            .field("s3_endpoint", &self.store.endpoint)
            .field("output_bucket", &self.output_bucket)
            .field("manifest_bucket", &self.manifest_bucket)
            .field("management_url", &self.management_url)
            .field("record", &self.record)
            .finish()
    }
}

/// Which job queue a job goes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Lane {
    /// Live traffic: routing key `upload`.
    Upload,
    /// Batch reprocessing: routing key `reprocess`.
    Reprocess,
}

impl Lane {
    /// The routing key on `mediagate.jobs`.
    pub fn routing_key(self) -> &'static str {
        match self {
            Lane::Upload => names::UPLOAD_KEY,
            Lane::Reprocess => names::REPROCESS_KEY,
        }
    }
}

/// How a publish ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Published {
    /// Confirmed by the broker and routed to a queue: a verdict is owed.
    Confirmed,
    /// Returned (no queue bound, or the exchange does not exist): not published (contract §1),
    /// nothing is owed. A nack without a return is retried, as a producer would.
    Returned,
}

/// Why the ledger could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    /// The configuration cannot work (no AMQP URL, one that does not parse, no queue name).
    #[error("ledger configuration: {0}")]
    Config(String),
    /// No node could be reached, or the ledger's queue could not be set up, within the budget.
    #[error("cannot {what} within {budget:?}: {detail}")]
    Connect {
        /// What was being attempted.
        what: &'static str,
        /// The retry budget spent.
        budget: Duration,
        /// The last errors seen.
        detail: String,
    },
    /// The job has no non-empty string `job_id`.
    #[error("the job has no job_id string")]
    InvalidJob,
    /// The job was not confirmed within the retry budget.
    #[error("job {job_id} rev {revision}: not confirmed after {attempts} attempts in {waited:?}: {last}")]
    Publish {
        /// The job.
        job_id: String,
        /// Its revision.
        revision: u64,
        /// Publishes tried.
        attempts: u32,
        /// Time spent.
        waited: Duration,
        /// The last error.
        last: String,
    },
    /// The S3 client could not be built.
    #[error("S3: {0}")]
    Store(#[from] StoreError),
    /// The record file could not be opened.
    #[error("cannot open the record file {}: {source}", path.display())]
    Record {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// State shared by the ledger's methods and its collector task.
pub(crate) struct Inner {
    pub(crate) cfg: LedgerConfig,
    records: Mutex<Records>,
    audit: audit::Audit,
    pub(crate) store: Store,
    pub(crate) publisher: tokio::sync::Mutex<Publisher>,
    pub(crate) generation: AtomicU64,
    /// The runtime the ledger was opened on. Connections are made there: lapin registers a
    /// connection's socket with the runtime current when it connects, and a caller may publish
    /// from a short-lived runtime of its own (a helper thread's `block_on`).
    pub(crate) runtime: tokio::runtime::Handle,
    /// Woken on every verdict, so `settle` notices the last one at once.
    pub(crate) changed: Notify,
}

impl Inner {
    pub(crate) fn records(&self) -> MutexGuard<'_, Records> {
        // A panic elsewhere while holding the lock leaves plain data behind: keep using it.
        self.records.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(crate) fn record_verdict(&self, body: &[u8], fallback_id: Option<&str>, redelivered: bool, routing_key: &str) {
        let recorded = self.records().add_verdict(body, fallback_id, redelivered);
        if recorded {
            let parsed = serde_json::from_slice::<Value>(body)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(body).into_owned()));
            self.audit.write(
                json!({"event": "verdict", "routing_key": routing_key, "redelivered": redelivered, "body": parsed}),
            );
        } else {
            debug!(routing_key, "the ledger's queue redelivered a verdict already recorded; skipped");
        }
        self.changed.notify_waiters();
    }
}

/// Retries `attempt` with backoff until it succeeds or [`RETRY_BUDGET`] is spent.
async fn with_retries<T, F, Fut>(what: &'static str, mut attempt: F) -> Result<T, LedgerError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let started = Instant::now();
    let mut delay = MIN_BACKOFF;
    loop {
        match attempt().await {
            Ok(v) => return Ok(v),
            Err(detail) if started.elapsed() + delay >= RETRY_BUDGET => {
                return Err(LedgerError::Connect { what, budget: RETRY_BUDGET, detail })
            }
            Err(detail) => warn!(what, %detail, retry_in = ?delay, "ledger retrying"),
        }
        tokio::time::sleep(delay).await;
        delay = next_backoff(delay);
    }
}

/// The ledger: publishes jobs, collects verdicts, and accounts for every job. `Send + Sync`;
/// every method takes `&self`, so many tasks may publish at once.
pub struct Ledger {
    inner: Arc<Inner>,
    stop: watch::Sender<bool>,
    collector: Option<tokio::task::JoinHandle<()>>,
}

impl Drop for Ledger {
    /// A ledger dropped without [`Ledger::close`] still stops its collector (which closes its
    /// connection); its queue is then left to expire unused.
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

impl fmt::Debug for Ledger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ledger").field("queue", &self.inner.cfg.queue).field("pending", &self.pending()).finish()
    }
}

impl Ledger {
    /// Checks the configuration, declares the ledger's queue and starts collecting verdicts,
    /// then connects the publisher; retries for up to [`RETRY_BUDGET`]. The queue is bound
    /// before this returns, so no verdict of a job published afterwards can pass unseen.
    ///
    /// Runs on the current tokio runtime, which must outlive the ledger: the collector and every
    /// connection live there (other runtimes may still call the methods).
    pub async fn open(cfg: LedgerConfig) -> Result<Ledger, LedgerError> {
        if cfg.amqp_urls.is_empty() {
            return Err(LedgerError::Config("no AMQP URL".into()));
        }
        for url in &cfg.amqp_urls {
            if url.parse::<lapin::uri::AMQPUri>().is_err() {
                return Err(LedgerError::Config(format!("not an AMQP URL: {}", redact_url(url))));
            }
        }
        if cfg.queue.is_empty() || cfg.queue.starts_with("amq.") || cfg.queue.starts_with("mediagate.") {
            return Err(LedgerError::Config(format!("{:?} cannot be the ledger's own queue", cfg.queue)));
        }
        let store = Store::connect(&cfg.store).await?;
        let audit = audit::Audit::open(cfg.record.as_deref())?;
        let (urls, queue) = (&cfg.amqp_urls, cfg.queue.as_str());
        let first = with_retries("set up the ledger's queue", || amqp::open_collector(urls, None, queue)).await?;
        let link = with_retries("connect the ledger's publisher", || PubLink::open(urls, None, 1)).await?;
        let inner = Arc::new(Inner {
            records: Mutex::new(Records::default()),
            audit,
            store,
            publisher: tokio::sync::Mutex::new(Publisher { link: Some(link), last_url: None }),
            generation: AtomicU64::new(1),
            runtime: tokio::runtime::Handle::current(),
            changed: Notify::new(),
            cfg,
        });
        let (stop, stopped) = watch::channel(false);
        let collector = tokio::spawn(amqp::collector(inner.clone(), first, stopped));
        Ok(Ledger { inner, stop, collector: Some(collector) })
    }

    /// Publishes `job` to `mediagate.jobs` on `lane`: persistent, `application/json`,
    /// `message_id = job_id`, mandatory, and waits for the broker's confirm. When the link
    /// fails before the confirm, it reconnects and publishes again (at least once; still one
    /// job), for up to [`RETRY_BUDGET`]. Returned: [`Published::Returned`], not retried; a nack is published again.
    pub async fn publish(&self, job: &Value, lane: Lane) -> Result<Published, LedgerError> {
        let job_id = job["job_id"].as_str().filter(|id| !id.is_empty()).ok_or(LedgerError::InvalidJob)?;
        let revision = job["revision"].as_u64().unwrap_or(0);
        let body = job.to_string().into_bytes();
        self.inner.records().publish_started(job_id, revision, lane);
        let started = Instant::now();
        let mut delay = MIN_BACKOFF;
        let mut attempts = 0;
        loop {
            attempts += 1;
            let last = match self.inner.publish_once(job_id, lane, &body).await {
                Ok(done) => {
                    let ended = if done == Published::Confirmed { Ended::Confirmed } else { Ended::Returned };
                    self.finish(job, job_id, revision, lane, ended, attempts);
                    return Ok(done);
                }
                Err(e) => e,
            };
            warn!(job_id, revision, attempt = attempts, error = %last, "publish not confirmed; trying again");
            if started.elapsed() + delay >= RETRY_BUDGET {
                self.finish(job, job_id, revision, lane, Ended::Failed, attempts);
                return Err(LedgerError::Publish {
                    job_id: job_id.to_owned(),
                    revision,
                    attempts,
                    waited: started.elapsed(),
                    last,
                });
            }
            tokio::time::sleep(delay).await;
            delay = next_backoff(delay);
        }
    }

    fn finish(&self, job: &Value, job_id: &str, revision: u64, lane: Lane, ended: Ended, attempts: u32) {
        self.inner.records().publish_ended(job_id, revision, ended);
        let outcome = match ended {
            Ended::Confirmed => "confirmed",
            Ended::Returned => "returned",
            Ended::Failed => "failed",
        };
        self.inner.audit.write(json!({
            "event": "publish", "job_id": job_id, "revision": revision, "lane": lane.routing_key(),
            "outcome": outcome, "attempts": attempts, "job": job,
        }));
        self.inner.changed.notify_waiters();
    }

    /// Someone else (`review release`, `reprocess`) published `revision` of `job_id`: a verdict
    /// for it (or a newer one) is owed.
    pub fn expect_revision(&self, job_id: &str, revision: u64) {
        self.inner.records().expect(job_id, revision);
        self.inner.audit.write(json!({"event": "expect", "job_id": job_id, "revision": revision}));
        self.inner.changed.notify_waiters();
    }

    /// The verdict bodies seen so far for `job_id`, in arrival order (a body that was not JSON
    /// appears as a JSON string).
    pub fn verdicts_for(&self, job_id: &str) -> Vec<Value> {
        self.inner.records().verdicts_of(job_id).map(|v| v.body.clone()).collect()
    }

    /// Jobs whose highest revision has no verdict yet.
    pub fn pending(&self) -> usize {
        self.inner.records().pending()
    }

    /// Stops collecting, deletes the ledger's queue (it is bound to every verdict) and closes
    /// the connections.
    pub async fn close(mut self) {
        let _ = self.stop.send(true);
        if let Some(collector) = self.collector.take() {
            if tokio::time::timeout(Duration::from_secs(10), collector).await.is_err() {
                warn!("the ledger's collector did not stop within 10 s");
            }
        }
        let queue = self.inner.cfg.queue.clone();
        let deleted = tokio::time::timeout(Duration::from_secs(10), async {
            let (channel, _) = self.inner.channel().await?;
            let opts = lapin::options::QueueDeleteOptions::default();
            channel.queue_delete(queue.as_str().into(), opts).await.map_err(|e| e.to_string())
        })
        .await;
        match deleted {
            Ok(Ok(left)) => debug!(queue, left, "ledger queue deleted"),
            Ok(Err(e)) => warn!(queue, error = %e, "could not delete the ledger's queue (it expires unused)"),
            Err(_) => warn!(queue, "deleting the ledger's queue took over 10 s (it expires unused)"),
        }
        if let Some(link) = self.inner.publisher.lock().await.link.take() {
            let _ = tokio::time::timeout(Duration::from_secs(5), link.conn.close(200, "ledger closed".into())).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The soak test shares one ledger between tasks and threads.
    #[allow(dead_code)]
    fn the_ledger_and_its_futures_are_send(ledger: &'static Ledger, job: &'static Value) {
        fn send_sync<T: Send + Sync>(_: &T) {}
        fn send<T: Send>(_: T) {}
        send_sync(ledger);
        send(ledger.publish(job, Lane::Upload));
        send(ledger.settle(Duration::ZERO));
    }

    #[test]
    fn lanes_use_the_contract_routing_keys() {
        assert_eq!((Lane::Upload.routing_key(), Lane::Reprocess.routing_key()), ("upload", "reprocess"));
    }

    #[test]
    fn the_config_debug_hides_passwords() {
        let cfg = LedgerConfig {
            amqp_urls: vec!["amqp://ops:s3cret@mq:5672/%2f".into()],
            queue: "ledger.t".into(),
            store: StoreConfig { secret_key: Some("hidden-key".into()), ..StoreConfig::default() },
            output_bucket: "media".into(),
            manifest_bucket: "media".into(),
            management_url: None,
            record: None,
        };
        let shown = format!("{cfg:?}");
        assert!(!shown.contains("s3cret") && !shown.contains("hidden-key"), "{shown}");
    }
}
