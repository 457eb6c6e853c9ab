//! End-to-end harness: the real `mediagate` binary against a real RabbitMQ (a throwaway vhost
//! of the local broker) and a real S3-compatible server (s3s-fs in a temp dir), over loopback.
//!
//! One harness per test binary, shared by its tests: a worker is started once, each test uses
//! its own job ids. Every missing piece is a test failure with a message, never a skip.
#![allow(dead_code)]

pub use mediagate_testkit::jobs::media_job;
pub use mediagate_testkit::media;
pub use mediagate_testkit::ports::free_port;
pub use mediagate_testkit::rabbit::{amqp_url, create_vhost};
pub use mediagate_testkit::s3::{S3Server, ACCESS_KEY, SECRET_KEY};
pub use mediagate_testkit::tether::Tethered;
pub use mediagate_testkit::workspace_root;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use lapin::options::*;
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection, ConnectionProperties};
use mediagate_store::{Store, StoreConfig};
use serde_json::{json, Value};

/// The byte limit the test worker runs with, so `input.too_large` needs only a few MiB (a 12 MP test JPEG is ~5 MB).
pub const TEST_MAX_INPUT_BYTES: u64 = 8 * 1024 * 1024;

/// The verdict schema every received verdict is checked against.
pub fn verdict_schema() -> &'static jsonschema::Validator {
    static V: OnceLock<jsonschema::Validator> = OnceLock::new();
    V.get_or_init(|| {
        let text =
            std::fs::read_to_string(workspace_root().join("schemas/verdict.v1.schema.json")).expect("verdict schema");
        jsonschema::validator_for(&serde_json::from_str(&text).expect("schema JSON")).expect("valid schema")
    })
}

/// The escalation schema every received escalation is checked against.
pub fn escalation_schema() -> &'static jsonschema::Validator {
    static S: OnceLock<jsonschema::Validator> = OnceLock::new();
    S.get_or_init(|| {
        let text = std::fs::read_to_string(workspace_root().join("schemas/escalation.v1.schema.json"))
            .expect("escalation schema");
        jsonschema::validator_for(&serde_json::from_str(&text).expect("schema JSON")).expect("valid schema")
    })
}

/// The job schema; valid jobs the tests publish are checked against it.
pub fn job_schema() -> &'static jsonschema::Validator {
    static V: OnceLock<jsonschema::Validator> = OnceLock::new();
    V.get_or_init(|| {
        let text = std::fs::read_to_string(workspace_root().join("schemas/job.v1.schema.json")).expect("job schema");
        jsonschema::validator_for(&serde_json::from_str(&text).expect("schema JSON")).expect("valid schema")
    })
}

/// Panics with every schema error of `v`.
pub fn assert_valid(schema: &jsonschema::Validator, v: &Value, what: &str) {
    let errors: Vec<String> = schema.iter_errors(v).map(|e| format!("{} at {}", e, e.instance_path())).collect();
    assert!(errors.is_empty(), "{what} breaks its JSON Schema: {errors:#?}\n{v}");
}

/// A verdict as a consumer sees it: the JSON and the AMQP envelope.
#[derive(Debug, Clone)]
pub struct SeenVerdict {
    pub body: Value,
    pub routing_key: String,
    pub correlation_id: Option<String>,
    pub message_id: Option<String>,
    pub content_type: Option<String>,
    pub delivery_mode: Option<u8>,
}

impl SeenVerdict {
    /// The verdict and the envelope fields the contract fixes.
    pub fn from_delivery(d: &lapin::message::Delivery) -> SeenVerdict {
        let p = &d.properties;
        SeenVerdict {
            body: serde_json::from_slice(&d.data).unwrap_or(Value::Null),
            routing_key: d.routing_key.as_str().to_owned(),
            correlation_id: p.correlation_id().as_ref().map(|s| s.as_str().to_owned()),
            message_id: p.message_id().as_ref().map(|s| s.as_str().to_owned()),
            content_type: p.content_type().as_ref().map(|s| s.as_str().to_owned()),
            delivery_mode: *p.delivery_mode(),
        }
    }
}

/// Everything a test needs; see [`harness`].
pub struct Harness {
    pub rt: tokio::runtime::Runtime,
    pub vhost: String,
    pub s3: S3Server,
    pub store: Store,
    pub worker: Mutex<Tethered>,
    pub logdir: tempfile::TempDir,
    /// The worker's `/healthz`, `/readyz`, `/metrics` address.
    pub metrics_addr: String,
    channel: lapin::Channel,
    _conn: Connection,
    verdicts: Arc<Mutex<HashMap<String, Vec<SeenVerdict>>>>,
    uncorrelated: Arc<Mutex<Vec<SeenVerdict>>>,
}

static HARNESS: OnceLock<Harness> = OnceLock::new();

/// The worker's environment for the tests.
pub fn worker_env(vhost: &str, s3: &S3Server) -> Vec<(&'static str, String)> {
    vec![
        ("MEDIAGATE_AMQP_URL", amqp_url(vhost)),
        ("MEDIAGATE_S3_ENDPOINT", s3.endpoint()),
        ("AWS_ACCESS_KEY_ID", ACCESS_KEY.into()),
        ("AWS_SECRET_ACCESS_KEY", SECRET_KEY.into()),
        ("AWS_REGION", "us-east-1".into()),
        ("MEDIAGATE_MAX_INPUT_BYTES", TEST_MAX_INPUT_BYTES.to_string()),
        ("MEDIAGATE_CONCURRENCY", "2".into()),
        ("MEDIAGATE_WORKER_ID", "test-worker".into()),
        ("MEDIAGATE_METRICS_ADDR", format!("127.0.0.1:{}", free_port())),
        ("MEDIAGATE_LOG_FORMAT", "text".into()),
        ("MEDIAGATE_CLASSIFIER_THREADS", "1".into()),
        ("RUST_LOG", "info".into()),
    ]
}

/// A private, exclusive queue bound to `mediagate.verdicts` with `#`, consumed without acks: how
/// a test sees every verdict of its vhost. Keep the channel as long as the consumer.
pub async fn private_verdicts(conn: &Connection) -> (lapin::Channel, lapin::Consumer) {
    let ch = conn.create_channel().await.expect("channel");
    let q = ch
        .queue_declare(
            "".into(),
            QueueDeclareOptions { exclusive: true, auto_delete: true, ..Default::default() },
            FieldTable::default(),
        )
        .await
        .expect("listener queue");
    ch.queue_bind(
        q.name().clone(),
        "mediagate.verdicts".into(),
        "#".into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .expect("bind");
    let consumer = ch
        .basic_consume(
            q.name().clone(),
            "".into(),
            BasicConsumeOptions { no_ack: true, ..Default::default() },
            FieldTable::default(),
        )
        .await
        .expect("consume");
    (ch, consumer)
}

/// Waits (up to 60 s) for a worker's `/readyz` to answer 200: its topology is declared (queues
/// *and* bindings), it consumes, and S3 answers. A passive queue check alone races the bindings.
pub fn wait_ready(metrics_addr: &str, log: &Path) {
    let start = Instant::now();
    loop {
        if std::net::TcpStream::connect(metrics_addr).is_ok() && http_get(metrics_addr, "/readyz").0 == 200 {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the worker was not ready within 60 s; see {}",
            log.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The metrics address a worker environment names.
pub fn metrics_addr_of(env: &[(&'static str, String)]) -> String {
    env.iter().find(|(k, _)| *k == "MEDIAGATE_METRICS_ADDR").map(|(_, v)| v.clone()).expect("MEDIAGATE_METRICS_ADDR")
}

/// The sum of every series in a `/metrics` text whose line starts with `prefix` (a metric name
/// with, optionally, the start of its labels).
pub fn metric_total(text: &str, prefix: &str) -> f64 {
    text.lines().filter(|l| l.starts_with(prefix)).filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok()).sum()
}

/// Messages waiting in a queue (passive declare).
pub async fn queue_depth(conn: &Connection, queue: &str) -> u32 {
    let ch = conn.create_channel().await.expect("channel");
    let q = ch
        .queue_declare(queue.into(), QueueDeclareOptions { passive: true, ..Default::default() }, FieldTable::default())
        .await
        .expect("passive declare");
    let _ = ch.close(200, "depth".into()).await;
    q.message_count()
}

/// A store client for a test S3 server, with every bucket the tests use.
pub async fn test_store(s3: &S3Server) -> Store {
    let store = Store::connect(&StoreConfig {
        endpoint: Some(s3.endpoint()),
        region: Some("us-east-1".into()),
        access_key: Some(ACCESS_KEY.into()),
        secret_key: Some(SECRET_KEY.into()),
        ..StoreConfig::default()
    })
    .await
    .expect("store");
    for b in ["incoming", "media", "quarantine", "elsewhere"] {
        store.ensure_bucket(b).await.expect("bucket");
    }
    store
}

/// The shared harness of this test binary, started on first use.
pub fn harness() -> &'static Harness {
    HARNESS.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
        let logdir = tempfile::Builder::new().prefix("mediagate-test-logs-").tempdir().expect("tempdir");
        let vhost = create_vhost("h");
        let s3 = S3Server::start_logging_to(logdir.path());
        let store = rt.block_on(test_store(&s3));
        let env = worker_env(&vhost, &s3);
        let metrics_addr =
            env.iter().find(|(k, _)| *k == "MEDIAGATE_METRICS_ADDR").map(|(_, v)| v.clone()).expect("metrics addr");
        let worker = Tethered::spawn(
            Path::new(env!("CARGO_BIN_EXE_mediagate")),
            &["worker"],
            &env,
            &logdir.path().join("worker.log"),
        );
        wait_ready(&metrics_addr, &logdir.path().join("worker.log"));
        let (conn, channel, verdicts, uncorrelated) = rt.block_on(async {
            let conn =
                Connection::connect(&amqp_url(&vhost), ConnectionProperties::default()).await.expect("amqp connect");
            let channel = conn.create_channel().await.expect("channel");
            channel.confirm_select(ConfirmSelectOptions::default()).await.expect("confirms");
            let (listen, mut consumer) = private_verdicts(&conn).await;
            let verdicts: Arc<Mutex<HashMap<String, Vec<SeenVerdict>>>> = Arc::default();
            let uncorrelated: Arc<Mutex<Vec<SeenVerdict>>> = Arc::default();
            let (v2, u2) = (verdicts.clone(), uncorrelated.clone());
            tokio::spawn(async move {
                let _keep = listen;
                while let Some(Ok(d)) = consumer.next().await {
                    let seen = SeenVerdict::from_delivery(&d);
                    match &seen.correlation_id {
                        Some(id) => v2.lock().unwrap().entry(id.clone()).or_default().push(seen),
                        None => u2.lock().unwrap().push(seen),
                    }
                }
            });
            (conn, channel, verdicts, uncorrelated)
        });
        Harness {
            rt,
            vhost,
            s3,
            store,
            worker: Mutex::new(worker),
            logdir,
            metrics_addr,
            channel,
            _conn: conn,
            verdicts,
            uncorrelated,
        }
    })
}

impl Harness {
    /// Uploads a source object.
    pub fn put(&self, bucket: &str, key: &str, bytes: Vec<u8>) {
        self.rt.block_on(self.store.put(bucket, key, bytes, "application/octet-stream")).expect("put source");
    }

    /// Reads an object, `None` if missing.
    pub fn get(&self, bucket: &str, key: &str) -> Option<Vec<u8>> {
        match self.rt.block_on(self.store.get(bucket, key)) {
            Ok(b) => Some(b),
            Err(mediagate_store::StoreError::NotFound { .. }) => None,
            Err(e) => panic!("get s3://{bucket}/{key}: {e}"),
        }
    }

    pub fn content_type(&self, bucket: &str, key: &str) -> Option<String> {
        self.rt.block_on(self.store.head(bucket, key)).expect("head").content_type
    }

    pub fn list(&self, bucket: &str, prefix: &str) -> Vec<String> {
        self.rt.block_on(self.store.list_keys(bucket, prefix)).expect("list")
    }

    /// Publishes a body as a producer would (persistent, JSON, message_id), with confirm.
    pub fn publish_raw(&self, body: &[u8], message_id: Option<&str>) {
        let mut props = BasicProperties::default().with_delivery_mode(2).with_content_type("application/json".into());
        if let Some(id) = message_id {
            props = props.with_message_id(id.into());
        }
        self.rt.block_on(async {
            let confirm = self
                .channel
                .basic_publish("mediagate.jobs".into(), "upload".into(), MANDATORY, body, props)
                .await
                .expect("publish")
                .await
                .expect("confirm");
            assert_published(confirm);
        });
    }

    /// Publishes a job and waits for its verdict.
    pub fn run_job(&self, job: &Value) -> SeenVerdict {
        let id = job["job_id"].as_str().expect("job_id").to_string();
        self.publish_raw(job.to_string().as_bytes(), Some(&id));
        self.verdict(&id)
    }

    /// Waits (up to 90 s) for the verdict correlated to `job_id`.
    pub fn verdict(&self, job_id: &str) -> SeenVerdict {
        let start = Instant::now();
        loop {
            if let Some(v) = self.verdicts.lock().unwrap().get(job_id).and_then(|v| v.first().cloned()) {
                assert_valid(verdict_schema(), &v.body, "verdict");
                return v;
            }
            if start.elapsed() > Duration::from_secs(90) {
                panic!("no verdict for {job_id} within 90 s; worker log:\n{}", self.worker_log_tail());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Verdicts that carried no correlation id (job_id null).
    pub fn uncorrelated(&self) -> Vec<SeenVerdict> {
        self.uncorrelated.lock().unwrap().clone()
    }

    /// Waits until a verdict without correlation id satisfies `pred`.
    pub fn wait_uncorrelated(&self, pred: impl Fn(&SeenVerdict) -> bool) -> SeenVerdict {
        let start = Instant::now();
        loop {
            if let Some(v) = self.uncorrelated().into_iter().find(|v| pred(v)) {
                assert_valid(verdict_schema(), &v.body, "verdict");
                return v;
            }
            assert!(start.elapsed() < Duration::from_secs(60), "no matching uncorrelated verdict within 60 s");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn worker_log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.logdir.path().join("worker.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(60)..].join("\n")
    }

    /// Asserts the worker process is still alive (bad input never crashes it).
    pub fn assert_worker_alive(&self) {
        let mut w = self.worker.lock().unwrap();
        if let Ok(Some(status)) = w.child.try_wait() {
            panic!("the worker exited ({status}); log:\n{}", self.worker_log_tail());
        }
    }
}

/// A plain HTTP GET on loopback: (status code, body).
pub fn http_get(addr: &str, path: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let code = out.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = out.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    (code, body)
}

/// Tests publish as contract §1 tells producers to: `mandatory`, and a return is a failure.
pub const MANDATORY: BasicPublishOptions = BasicPublishOptions { mandatory: true, immediate: false };

/// Panics unless the broker confirmed the message without returning it.
pub fn assert_published(c: lapin::Confirmation) {
    match c {
        lapin::Confirmation::Ack(None) => {}
        other => panic!("the job was not published (returned or nacked): {other:?}"),
    }
}

/// A unique job id for this test process.
pub fn job_id(name: &str) -> String {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("t-{name}-{}-{n}", std::process::id())
}

/// The one item of a verdict with this id.
pub fn item<'a>(v: &'a SeenVerdict, item_id: &str) -> &'a Value {
    v.body["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|i| i["item_id"] == item_id)
        .unwrap_or_else(|| panic!("no item {item_id} in {}", v.body))
}

/// Uploads each file under the job's prefix (`{job}/{i}.{ext}`), runs a job of `kind` over them
/// after `edit` has adjusted it (age bands, flags), and returns the job id and its verdict.
pub fn run_uploads(
    kind: &str,
    name: &str,
    files: Vec<(&str, Vec<u8>)>,
    edit: impl FnOnce(&mut Value),
) -> (String, SeenVerdict) {
    let h = harness();
    let id = job_id(name);
    let keys: Vec<String> = files
        .into_iter()
        .enumerate()
        .map(|(i, (ext, bytes))| {
            let key = format!("{id}/{i}.{ext}");
            h.put("incoming", &key, bytes);
            key
        })
        .collect();
    let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
    let mut job = media_job(&id, &refs);
    job["kind"] = json!(kind);
    edit(&mut job);
    (id.clone(), h.run_job(&job))
}

/// The output of a verdict item with this variant.
pub fn output<'a>(item: &'a Value, variant: &str) -> &'a Value {
    item["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["variant"] == variant)
        .unwrap_or_else(|| panic!("no {variant} in {item}"))
}

/// Fetches an output, checks its size and sha256 against the verdict, returns its bytes.
pub fn fetch_output(out: &Value) -> Vec<u8> {
    let h = harness();
    let bytes = h.get(out["bucket"].as_str().unwrap(), out["key"].as_str().unwrap()).expect("stored");
    assert_eq!(out["sha256"], sha256_hex(&bytes).as_str());
    assert_eq!(out["bytes"], bytes.len() as u64);
    bytes
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// A worker of its own, on its own vhost and S3 server: for tests that change settings,
/// restart things, or must not see other tests' jobs and manifests.
pub struct Isolated {
    pub rt: tokio::runtime::Runtime,
    pub vhost: String,
    pub s3: S3Server,
    pub store: Store,
    pub worker: Option<Tethered>,
    pub env: Vec<(&'static str, String)>,
    pub log: PathBuf,
    pub logdir: tempfile::TempDir,
    pub conn: Connection,
    channel: lapin::Channel,
    verdicts: Arc<Mutex<Vec<SeenVerdict>>>,
}

impl Isolated {
    /// Starts S3, a vhost and a worker with the test settings overridden by `overrides`.
    pub fn start(tag: &str, overrides: &[(&'static str, &str)]) -> Isolated {
        Isolated::start_with(tag, overrides, |_, _| {})
    }

    /// [`Isolated::start`] that lets `setup` write to the store (banks, sources) before the
    /// worker starts.
    pub fn start_with(
        tag: &str,
        overrides: &[(&'static str, &str)],
        setup: impl FnOnce(&tokio::runtime::Runtime, &Store),
    ) -> Isolated {
        Isolated::start_full(tag, overrides, setup, None)
    }

    /// [`Isolated::start`] with the worker reaching S3 through a proxy that delays every request
    /// by `delay` (S3 as over a network; the test's own calls go direct).
    pub fn start_behind_slow_s3(tag: &str, overrides: &[(&'static str, &str)], delay: Duration) -> Isolated {
        Isolated::start_full(tag, overrides, |_, _| {}, Some(delay))
    }

    fn start_full(
        tag: &str,
        overrides: &[(&'static str, &str)],
        setup: impl FnOnce(&tokio::runtime::Runtime, &Store),
        s3_delay: Option<Duration>,
    ) -> Isolated {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
        let logdir = tempfile::Builder::new().prefix("mediagate-iso-").tempdir().expect("tempdir");
        let vhost = create_vhost(tag);
        let s3 = S3Server::start_logging_to(logdir.path());
        let store = rt.block_on(test_store(&s3));
        setup(&rt, &store);
        let mut env = worker_env(&vhost, &s3);
        for (k, v) in overrides {
            env.retain(|(e, _)| e != k);
            env.push((k, v.to_string()));
        }
        if let Some(delay) = s3_delay {
            let proxy = mediagate_testkit::latency::latency_proxy(s3.port, delay);
            env.retain(|(e, _)| *e != "MEDIAGATE_S3_ENDPOINT");
            env.push(("MEDIAGATE_S3_ENDPOINT", proxy.endpoint));
        }
        let log = logdir.path().join("worker.log");
        let worker = Tethered::spawn(Path::new(env!("CARGO_BIN_EXE_mediagate")), &["worker"], &env, &log);
        wait_ready(&metrics_addr_of(&env), &log);
        let verdicts: Arc<Mutex<Vec<SeenVerdict>>> = Arc::default();
        let (conn, channel) = rt.block_on(async {
            let conn =
                Connection::connect(&amqp_url(&vhost), ConnectionProperties::default()).await.expect("amqp connect");
            let channel = conn.create_channel().await.expect("channel");
            channel.confirm_select(ConfirmSelectOptions::default()).await.expect("confirms");
            (conn, channel)
        });
        // Verdicts are read from the contract's durable `mediagate.verdicts` queue (this vhost
        // has no other consumer), reconnecting when the broker goes away: nothing is missed
        // across a broker restart, and a redelivered verdict is just a repeat.
        let sink = verdicts.clone();
        let url = amqp_url(&vhost);
        rt.spawn(async move {
            loop {
                if let Ok(conn) = Connection::connect(&url, ConnectionProperties::default()).await {
                    if let Ok(ch) = conn.create_channel().await {
                        if let Ok(mut consumer) = ch
                            .basic_consume(
                                "mediagate.verdicts".into(),
                                "".into(),
                                BasicConsumeOptions::default(),
                                FieldTable::default(),
                            )
                            .await
                        {
                            while let Some(Ok(d)) = consumer.next().await {
                                sink.lock().unwrap().push(SeenVerdict::from_delivery(&d));
                                let _ = d.acker.ack(BasicAckOptions::default()).await;
                            }
                        }
                    }
                }
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        });
        Isolated { rt, vhost, s3, store, worker: Some(worker), env, log, logdir, conn, channel, verdicts }
    }

    /// Uploads a source object to `incoming`.
    pub fn put(&self, key: &str, bytes: Vec<u8>) {
        self.rt.block_on(self.store.put("incoming", key, bytes, "application/octet-stream")).expect("put source");
    }

    pub fn get(&self, bucket: &str, key: &str) -> Option<Vec<u8>> {
        match self.rt.block_on(self.store.get(bucket, key)) {
            Ok(b) => Some(b),
            Err(mediagate_store::StoreError::NotFound { .. }) => None,
            Err(e) => panic!("get s3://{bucket}/{key}: {e}"),
        }
    }

    /// Publishes a job body with routing key `upload`.
    pub fn publish(&self, job: &Value) {
        self.publish_to("upload", job)
    }

    /// Publishes a job body with the given routing key (`upload` or `reprocess`).
    pub fn publish_to(&self, routing_key: &str, job: &Value) {
        let id = job["job_id"].as_str().unwrap_or_default().to_string();
        let props = BasicProperties::default()
            .with_delivery_mode(2)
            .with_content_type("application/json".into())
            .with_message_id(id.into());
        self.rt.block_on(async {
            let c = self
                .channel
                .basic_publish(
                    "mediagate.jobs".into(),
                    routing_key.into(),
                    MANDATORY,
                    job.to_string().as_bytes(),
                    props,
                )
                .await
                .expect("publish")
                .await
                .expect("confirm");
            assert_published(c);
        });
    }

    /// All verdicts seen so far for `job_id`, in arrival order.
    pub fn verdicts_for(&self, job_id: &str) -> Vec<SeenVerdict> {
        self.verdicts.lock().unwrap().iter().filter(|v| v.correlation_id.as_deref() == Some(job_id)).cloned().collect()
    }

    /// Waits until `job_id` has at least `n` verdicts; returns them.
    pub fn wait_verdicts(&self, job_id: &str, n: usize, timeout: Duration) -> Vec<SeenVerdict> {
        let start = Instant::now();
        loop {
            let v = self.verdicts_for(job_id);
            if v.len() >= n {
                for seen in &v {
                    assert_valid(verdict_schema(), &seen.body, "verdict");
                }
                return v;
            }
            assert!(
                start.elapsed() < timeout,
                "{job_id}: {} of {n} verdicts after {timeout:?}; log:\n{}",
                v.len(),
                self.log_tail()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Takes (and acks) the escalations waiting in the contract's `mediagate.escalations` queue,
    /// waiting until there are at least `n` or `timeout` has passed.
    pub fn take_escalations(&self, n: usize, timeout: Duration) -> Vec<SeenVerdict> {
        let start = Instant::now();
        let mut got = Vec::new();
        self.rt.block_on(async {
            let ch = self.conn.create_channel().await.expect("channel");
            while got.len() < n && start.elapsed() < timeout {
                match ch
                    .basic_get("mediagate.escalations".into(), BasicGetOptions { no_ack: true })
                    .await
                    .expect("basic.get")
                {
                    Some(m) => got.push(SeenVerdict::from_delivery(&m.delivery)),
                    None => tokio::time::sleep(Duration::from_millis(50)).await,
                }
            }
            let _ = ch.close(200, "escalations".into()).await;
        });
        got
    }

    /// Every verdict seen so far.
    pub fn all_verdicts(&self) -> Vec<SeenVerdict> {
        self.verdicts.lock().unwrap().clone()
    }

    pub fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(80)..].join("\n")
    }

    /// Starts one more worker process with this environment's settings (its own id and
    /// metrics port).
    pub fn spawn_worker(&self, name: &str) -> Tethered {
        self.spawn_worker_metrics(name).0
    }

    /// [`Isolated::spawn_worker`], also returning the worker's `/metrics` address.
    pub fn spawn_worker_metrics(&self, name: &str) -> (Tethered, String) {
        let mut env = self.env.clone();
        env.retain(|(k, _)| !matches!(*k, "MEDIAGATE_WORKER_ID" | "MEDIAGATE_METRICS_ADDR"));
        env.push(("MEDIAGATE_WORKER_ID", name.to_string()));
        env.push(("MEDIAGATE_METRICS_ADDR", format!("127.0.0.1:{}", free_port())));
        let log = self.logdir.path().join(format!("{name}.log"));
        let t = Tethered::spawn(Path::new(env!("CARGO_BIN_EXE_mediagate")), &["worker"], &env, &log);
        let addr = metrics_addr_of(&env);
        wait_ready(&addr, &log);
        (t, addr)
    }

    /// Messages waiting in a queue of this vhost (a fresh connection, so it works after a
    /// broker restart).
    pub fn depth(&self, queue: &str) -> u32 {
        self.rt.block_on(async {
            let conn = Connection::connect(&amqp_url(&self.vhost), ConnectionProperties::default())
                .await
                .expect("amqp connect");
            let d = queue_depth(&conn, queue).await;
            let _ = conn.close(200, "depth".into()).await;
            d
        })
    }

    /// A `mediagate` command with this environment's connection settings.
    pub fn command(&self) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_mediagate"));
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd
    }
}
