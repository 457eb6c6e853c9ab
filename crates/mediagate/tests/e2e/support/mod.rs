//! End-to-end harness: the real `mediagate` binary against a real RabbitMQ (a throwaway vhost
//! of the local broker) and a real S3-compatible server (s3s-fs in a temp dir), over loopback.
//!
//! One harness per test binary, shared by its tests: a worker is started once, each test uses
//! its own job ids. Every missing piece is a test failure with a message, never a skip.
#![allow(dead_code)]

pub mod media;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use lapin::options::*;
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection, ConnectionProperties};
use mediagate_store::{Store, StoreConfig};
use serde_json::{json, Value};

pub const ACCESS_KEY: &str = "mediagate-test";
pub const SECRET_KEY: &str = "mediagate-test-secret";
/// The byte limit the test worker runs with, so `input.too_large` needs only a few MiB (a 12 MP test JPEG is ~5 MB).
pub const TEST_MAX_INPUT_BYTES: u64 = 8 * 1024 * 1024;

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

/// Processes that die with the test binary: each runs under a bash wrapper that kills it when
/// our end of the wrapper's stdin pipe closes (the test process exited, however it exited),
/// forwards SIGTERM to it, and exits with its status when it exits by itself.
pub struct Tethered {
    pub child: Child,
}

const TETHER: &str = r#"exec 3<&0
"$@" </dev/null & child=$!
trap 'kill -TERM $child 2>/dev/null; wait $child; exit $?' TERM
cat <&3 >/dev/null & watcher=$!
wait -n $child $watcher; rc=$?
if kill -0 $child 2>/dev/null; then kill -KILL $child; wait $child; exit 137; fi
kill $watcher 2>/dev/null
exit $rc"#;

impl Tethered {
    pub fn spawn(program: &Path, args: &[&str], envs: &[(&str, String)], log: &Path) -> Tethered {
        let logf = std::fs::File::create(log).unwrap_or_else(|e| panic!("creating {}: {e}", log.display()));
        let mut cmd = Command::new("bash");
        cmd.arg("-c")
            .arg(TETHER)
            .arg("tether")
            .arg(program)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(logf.try_clone().expect("log file"))
            .stderr(logf);
        for (k, v) in envs {
            cmd.env(k, v);
        }
        let child = cmd.spawn().unwrap_or_else(|e| panic!("spawning {}: {e}", program.display()));
        Tethered { child }
    }

    /// Sends SIGTERM (forwarded to the process) and waits up to `timeout` for its exit code.
    pub fn terminate(&mut self, timeout: Duration) -> Option<i32> {
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        let start = Instant::now();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            if start.elapsed() > timeout {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().expect("workspace root")
}

/// The s3s-fs binary: `MEDIAGATE_S3FS_BIN`, `.tools/bin/s3s-fs`, or PATH.
pub fn s3fs_bin() -> PathBuf {
    if let Ok(p) = std::env::var("MEDIAGATE_S3FS_BIN") {
        if Path::new(&p).is_file() {
            return PathBuf::from(p);
        }
    }
    let local = workspace_root().join(".tools/bin/s3s-fs");
    if local.is_file() {
        return local;
    }
    if let Ok(out) = Command::new("sh").arg("-c").arg("command -v s3s-fs").output() {
        let p = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if !p.is_empty() {
            return PathBuf::from(p);
        }
    }
    panic!("the S3 test server s3s-fs is missing: run `make test` (it installs s3s-fs 0.14.1 into .tools/bin) or set MEDIAGATE_S3FS_BIN");
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

fn wait_port(port: u16, what: &str, timeout: Duration) {
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(start.elapsed() < timeout, "{what} did not open 127.0.0.1:{port} within {timeout:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn rabbitmqctl(args: &[&str]) -> std::process::Output {
    Command::new("rabbitmqctl").args(args).output().unwrap_or_else(|e| {
        panic!("rabbitmqctl is needed to create a test vhost ({e}); run `make test`, which installs and starts RabbitMQ")
    })
}

/// A throwaway vhost, so tests never touch a developer's running worker or each other's queues.
/// Vhosts of test processes that no longer exist are removed first.
pub fn create_vhost(tag: &str) -> String {
    if std::net::TcpStream::connect(("127.0.0.1", 5672)).is_err() {
        panic!("RabbitMQ is not reachable on 127.0.0.1:5672: run `make test` (it starts it) or `rabbitmq-server -detached`");
    }
    let list = rabbitmqctl(&["-q", "list_vhosts", "name"]);
    for name in String::from_utf8_lossy(&list.stdout).lines() {
        if let Some(pid) = name.strip_prefix("mg-test-").and_then(|r| r.split('-').next()).and_then(|p| p.parse::<u32>().ok()) {
            if !Path::new(&format!("/proc/{pid}")).exists() {
                let _ = rabbitmqctl(&["-q", "delete_vhost", name]);
            }
        }
    }
    let vhost = format!("mg-test-{}-{tag}", std::process::id());
    let out = rabbitmqctl(&["-q", "add_vhost", &vhost]);
    assert!(out.status.success(), "rabbitmqctl add_vhost {vhost}: {}", String::from_utf8_lossy(&out.stderr));
    let out = rabbitmqctl(&["-q", "set_permissions", "-p", &vhost, "guest", ".*", ".*", ".*"]);
    assert!(out.status.success(), "rabbitmqctl set_permissions: {}", String::from_utf8_lossy(&out.stderr));
    vhost
}

pub fn amqp_url(vhost: &str) -> String {
    format!("amqp://guest:guest@127.0.0.1:5672/{vhost}")
}

/// A running s3s-fs with the contract's buckets.
pub struct S3Server {
    pub port: u16,
    pub dir: tempfile::TempDir,
    pub proc: Tethered,
}

impl S3Server {
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

pub fn start_s3(logdir: &Path) -> S3Server {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let proc = Tethered::spawn(
        &s3fs_bin(),
        &["--host", "127.0.0.1", "--port", &port.to_string(), "--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY,
          dir.path().to_str().expect("utf-8 temp path")],
        &[],
        &logdir.join("s3s-fs.log"),
    );
    wait_port(port, "s3s-fs", Duration::from_secs(20));
    S3Server { port, dir, proc }
}

/// Everything a test needs; see [`harness`].
pub struct Harness {
    pub rt: tokio::runtime::Runtime,
    pub vhost: String,
    pub s3: S3Server,
    pub store: Store,
    pub worker: Mutex<Tethered>,
    pub logdir: tempfile::TempDir,
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
        ("MEDIAGATE_LOG_FORMAT", "text".into()),
        ("RUST_LOG", "info".into()),
    ]
}

/// Waits (up to 60 s) until the worker has declared its topology (producers never declare
/// queues), probing passively on throwaway channels.
pub async fn wait_for_topology(conn: &Connection, log: &Path) {
    let start = Instant::now();
    loop {
        let probe = conn.create_channel().await.expect("channel");
        let ok = probe
            .queue_declare("mediagate.uploads".into(), QueueDeclareOptions { passive: true, ..Default::default() }, FieldTable::default())
            .await
            .is_ok();
        let _ = probe.close(200, "probe".into()).await;
        if ok {
            return;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "the worker did not declare its topology within 60 s; see {}", log.display());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
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

/// The shared harness of this test binary, started on first use.
pub fn harness() -> &'static Harness {
    HARNESS.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
        let logdir = tempfile::Builder::new().prefix("mediagate-test-logs-").tempdir().expect("tempdir");
        let vhost = create_vhost("h");
        let s3 = start_s3(logdir.path());
        let store = rt.block_on(async {
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
        });
        let worker = Tethered::spawn(
            Path::new(env!("CARGO_BIN_EXE_mediagate")),
            &["worker"],
            &worker_env(&vhost, &s3),
            &logdir.path().join("worker.log"),
        );
        let (conn, channel, verdicts, uncorrelated) = rt.block_on(async {
            let conn = Connection::connect(&amqp_url(&vhost), ConnectionProperties::default()).await.expect("amqp connect");
            let channel = conn.create_channel().await.expect("channel");
            wait_for_topology(&conn, &logdir.path().join("worker.log")).await;
            channel.confirm_select(ConfirmSelectOptions::default()).await.expect("confirms");
            let listen = conn.create_channel().await.expect("channel");
            let q = listen
                .queue_declare("".into(), QueueDeclareOptions { exclusive: true, auto_delete: true, ..Default::default() }, FieldTable::default())
                .await
                .expect("listener queue");
            listen
                .queue_bind(q.name().clone(), "mediagate.verdicts".into(), "#".into(), QueueBindOptions::default(), FieldTable::default())
                .await
                .expect("bind");
            let mut consumer = listen
                .basic_consume(q.name().clone(), "".into(), BasicConsumeOptions { no_ack: true, ..Default::default() }, FieldTable::default())
                .await
                .expect("consume");
            let verdicts: Arc<Mutex<HashMap<String, Vec<SeenVerdict>>>> = Arc::default();
            let uncorrelated: Arc<Mutex<Vec<SeenVerdict>>> = Arc::default();
            let (v2, u2) = (verdicts.clone(), uncorrelated.clone());
            tokio::spawn(async move {
                let _keep = listen;
                while let Some(Ok(d)) = consumer.next().await {
                    let p = &d.properties;
                    let seen = SeenVerdict {
                        body: serde_json::from_slice(&d.data).unwrap_or(Value::Null),
                        routing_key: d.routing_key.as_str().to_owned(),
                        correlation_id: p.correlation_id().as_ref().map(|s| s.as_str().to_owned()),
                        message_id: p.message_id().as_ref().map(|s| s.as_str().to_owned()),
                        content_type: p.content_type().as_ref().map(|s| s.as_str().to_owned()),
                        delivery_mode: *p.delivery_mode(),
                    };
                    match &seen.correlation_id {
                        Some(id) => v2.lock().unwrap().entry(id.clone()).or_default().push(seen),
                        None => u2.lock().unwrap().push(seen),
                    }
                }
            });
            (conn, channel, verdicts, uncorrelated)
        });
        Harness { rt, vhost, s3, store, worker: Mutex::new(worker), logdir, channel, _conn: conn, verdicts, uncorrelated }
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
                .basic_publish("mediagate.jobs".into(), "upload".into(), BasicPublishOptions::default(), body, props)
                .await
                .expect("publish")
                .await
                .expect("confirm");
            assert!(confirm.is_ack(), "broker did not ack the job");
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

/// A unique job id for this test process.
pub fn job_id(name: &str) -> String {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("t-{name}-{}-{n}", std::process::id())
}

/// A valid `media` job over the given source keys in `incoming`.
pub fn media_job(job_id: &str, keys: &[&str]) -> Value {
    let items: Vec<Value> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| json!({ "item_id": i.to_string(), "source": { "bucket": "incoming", "key": k } }))
        .collect();
    json!({
        "schema": "mediagate.job.v1",
        "job_id": job_id,
        "kind": "media",
        "message": { "message_id": format!("m-{job_id}"), "conversation_id": "c-test", "first_contact": false },
        "sender": { "account_id": "a-sender", "age_band": "adult" },
        "recipients": [ { "account_id": "a-rcpt", "age_band": "adult" } ],
        "items": items,
    })
}

/// The one item of a verdict with this id.
pub fn item<'a>(v: &'a SeenVerdict, item_id: &str) -> &'a Value {
    v.body["items"].as_array().expect("items").iter().find(|i| i["item_id"] == item_id).unwrap_or_else(|| panic!("no item {item_id} in {}", v.body))
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}
