//! The ledger against the real broker (a throwaway vhost) and a real S3 server (s3s-fs), with a
//! stand-in worker that writes outputs and manifests and publishes verdicts the way mediagate's
//! does, so the ledger's own fault handling and findings are tested without the media stack.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions, ConfirmSelectOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection, ConnectionProperties};
use mediagate_ledger::{Lane, Ledger, LedgerConfig, Published};
use mediagate_queue::{names, Broker};
use mediagate_store::{RetryPolicy, Store, StoreConfig};
use mediagate_testkit::rabbit::TestVhost;
use mediagate_testkit::s3::{S3Server, ACCESS_KEY, SECRET_KEY};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

fn store_config(s3: &S3Server) -> StoreConfig {
    StoreConfig {
        endpoint: Some(s3.endpoint()),
        region: Some("us-east-1".into()),
        access_key: Some(ACCESS_KEY.into()),
        secret_key: Some(SECRET_KEY.into()),
        retry: RetryPolicy {
            attempts: 2,
            initial_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(50),
        },
        ..StoreConfig::default()
    }
}

/// The ledger's settings; `management` None asks the local broker's management API (which
/// `make test` enables), else the given base URL.
fn config(vhost: &TestVhost, s3: &S3Server, tag: &str, management: Option<&str>) -> LedgerConfig {
    LedgerConfig {
        amqp_urls: vec![vhost.url.clone()],
        queue: format!("ledger.test-{}-{tag}", std::process::id()),
        store: store_config(s3),
        output_bucket: "media".into(),
        manifest_bucket: "media".into(),
        management_url: management.map(str::to_owned),
        record: None,
    }
}

fn job(id: &str) -> Value {
    json!({
        "schema": "mediagate.job.v1", "job_id": id, "kind": "media",
        "message": { "message_id": id, "conversation_id": "c-1", "first_contact": false },
        "sender": { "account_id": "a-1", "age_band": "adult" },
        "recipients": [ { "account_id": "a-2", "age_band": "adult" } ],
        "items": [ { "item_id": "0", "source": { "bucket": "incoming", "key": "x.jpg" } } ]
    })
}

/// How the stand-in worker mistreats a job, by the end of its id.
fn misbehaviour(id: &str) -> &'static str {
    for m in ["-drop", "-badsha", "-nomanifest", "-twice", "-differ"] {
        if id.ends_with(m) {
            return m;
        }
    }
    ""
}

/// Consumes `mediagate.uploads` until aborted, reconnecting when its connection is closed:
/// writes the output and the manifest, publishes the verdict with a confirm, then acks.
async fn fake_worker(url: String, store: Store) {
    loop {
        if let Err(e) = serve(&url, &store).await {
            eprintln!("fake worker: {e}; reconnecting");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn serve(url: &str, store: &Store) -> Result<(), String> {
    let conn = Connection::connect(url, ConnectionProperties::default()).await.map_err(|e| e.to_string())?;
    let consume = conn.create_channel().await.map_err(|e| e.to_string())?;
    let publish = conn.create_channel().await.map_err(|e| e.to_string())?;
    publish.confirm_select(ConfirmSelectOptions::default()).await.map_err(|e| e.to_string())?;
    consume.basic_qos(4, BasicQosOptions::default()).await.map_err(|e| e.to_string())?;
    let mut deliveries = consume
        .basic_consume(
            names::UPLOADS_QUEUE.into(),
            "fake".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .map_err(|e| e.to_string())?;
    while let Some(d) = deliveries.next().await {
        let d = d.map_err(|e| e.to_string())?;
        let job: Value = serde_json::from_slice(&d.data).map_err(|e| e.to_string())?;
        let id = job["job_id"].as_str().unwrap_or_default().to_owned();
        let revision = job["revision"].as_u64().unwrap_or(0);
        let how = misbehaviour(&id);
        if how != "-drop" {
            let key = format!("media/{id}/0/full.jpg");
            let bytes = format!("the output of {id}").into_bytes();
            let mut sha = hex::encode(Sha256::digest(&bytes));
            store.put("media", &key, bytes, "image/jpeg").await.map_err(|e| e.to_string())?;
            if how == "-badsha" {
                sha = "00".repeat(32);
            }
            let verdict = |sha: &str| {
                json!({
                    "schema": "mediagate.verdict.v1", "job_id": id, "revision": revision, "status": "cleared",
                    "reason": null, "reprocess": false,
                    "items": [{ "item_id": "0", "status": "cleared", "outputs": [
                        { "variant": "full", "bucket": "media", "key": key, "sha256": sha }
                    ]}]
                })
            };
            let v = verdict(&sha);
            if how != "-nomanifest" {
                let manifest = json!({ "job": job, "verdict": v }).to_string().into_bytes();
                store
                    .put("media", &format!("manifests/{id}.json"), manifest, "application/json")
                    .await
                    .map_err(|e| e.to_string())?;
            }
            let mut bodies = vec![v.clone()];
            match how {
                "-twice" => bodies.push(v),
                "-differ" => bodies.push(verdict(&"ff".repeat(32))),
                _ => {}
            }
            for body in bodies {
                let props = BasicProperties::default()
                    .with_delivery_mode(2)
                    .with_content_type("application/json".into())
                    .with_message_id(id.as_str().into())
                    .with_correlation_id(id.as_str().into());
                publish
                    .basic_publish(
                        names::VERDICTS_EXCHANGE.into(),
                        "verdict.cleared".into(),
                        BasicPublishOptions { mandatory: true, ..Default::default() },
                        body.to_string().as_bytes(),
                        props,
                    )
                    .await
                    .map_err(|e| e.to_string())?
                    .await
                    .map_err(|e| e.to_string())?;
            }
        }
        d.acker.ack(BasicAckOptions::default()).await.map_err(|e| e.to_string())?;
    }
    Err("the consumer ended".into())
}

async fn setup(tag: &str) -> (TestVhost, S3Server, Store) {
    let vhost = TestVhost::create(tag);
    let broker = Broker::connect(&vhost.url).await.expect("broker");
    broker.declare_topology().await.expect("topology");
    broker.close().await;
    let s3 = S3Server::start();
    let store = Store::connect(&store_config(&s3)).await.expect("store");
    store.ensure_bucket("media").await.expect("bucket");
    (vhost, s3, store)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_job_is_accounted_for_through_closed_connections() {
    let (vhost, s3, store) = setup("ledger-ok").await;
    let worker = tokio::spawn(fake_worker(vhost.url.clone(), store.clone()));
    let ledger = Arc::new(Ledger::open(config(&vhost, &s3, "ok", None)).await.expect("open"));
    let mut publishes = Vec::new();
    for n in 0..40 {
        let ledger = ledger.clone();
        let id = if n % 10 == 3 { format!("j-{n}-twice") } else { format!("j-{n}") };
        publishes.push(tokio::spawn(async move { ledger.publish(&job(&id), Lane::Upload).await }));
        if n == 20 {
            // Every connection of the vhost, the ledger's two included, is closed under it.
            vhost.ctl(&["close_all_connections", "-p", &vhost.name, "ledger test"]);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for p in publishes {
        assert_eq!(p.await.expect("task").expect("publish"), Published::Confirmed);
    }
    vhost.ctl(&["close_all_connections", "-p", &vhost.name, "ledger test again"]);
    let report = ledger.settle(Duration::from_secs(60)).await;
    println!("{}", report.table());
    assert!(report.ok(), "{}", report.table());
    assert_eq!((report.published, report.confirmed, report.lost), (40, 40, 0));
    assert!(report.duplicates >= 4, "{}", report.table());
    assert_eq!(report.by_status.get("cleared"), Some(&40));
    assert_eq!(ledger.verdicts_for("j-3-twice").len(), 2);
    worker.abort();
    if let Ok(l) = Arc::try_unwrap(ledger) {
        l.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_and_inconsistent_jobs_are_reported() {
    let (vhost, s3, store) = setup("ledger-bad").await;
    let worker = tokio::spawn(fake_worker(vhost.url.clone(), store));
    // Nothing listens there: the ledger falls back to AMQP's ready counts, with a note.
    let ledger = Ledger::open(config(&vhost, &s3, "bad", Some("http://127.0.0.1:9"))).await.expect("open");
    for id in ["b-1", "b-2-drop", "b-3-badsha", "b-4-nomanifest", "b-5-differ", "b-6"] {
        assert_eq!(ledger.publish(&job(id), Lane::Upload).await.expect("publish"), Published::Confirmed);
    }
    ledger.expect_revision("b-6", 1); // a release nobody processes
    let report = ledger.settle(Duration::from_secs(8)).await;
    println!("{}", report.table());
    assert!(!report.ok());
    assert_eq!((report.lost, report.duplicates), (2, 1), "{}", report.table());
    let has = |what: &str| report.problems.iter().any(|p| p.contains(what));
    assert!(has("job b-2-drop: LOST"), "{:?}", report.problems);
    assert!(has("job b-6: LOST, no verdict for its highest revision 1"), "{:?}", report.problems);
    assert!(
        has("job b-3-badsha rev 0: output s3://media/media/b-3-badsha/0/full.jpg has sha256"),
        "{:?}",
        report.problems
    );
    assert!(
        has("job b-4-nomanifest rev 0: manifest s3://media/manifests/b-4-nomanifest.json is missing"),
        "{:?}",
        report.problems
    );
    assert!(has("job b-5-differ rev 0: repeated verdicts differ"), "{:?}", report.problems);
    assert_eq!(report.problems.len(), 5, "{:?}", report.problems);
    assert!(report.notes.iter().any(|n| n.contains("unacknowledged messages were not checked")), "{:?}", report.notes);
    worker.abort();
    ledger.close().await;
}

#[tokio::test]
async fn a_job_no_queue_takes_is_returned_not_lost() {
    let vhost = TestVhost::create("ledger-returned");
    let s3 = S3Server::start();
    let ledger = Ledger::open(config(&vhost, &s3, "ret", None)).await.expect("open");
    // No exchange at all yet: the broker refuses the publish.
    assert_eq!(ledger.publish(&job("r-1"), Lane::Upload).await.expect("publish"), Published::Returned);
    // The exchange but no queue bound: a basic.return.
    let conn = Connection::connect(&vhost.url, ConnectionProperties::default()).await.expect("connect");
    let ch = conn.create_channel().await.expect("channel");
    let durable = lapin::options::ExchangeDeclareOptions { durable: true, ..Default::default() };
    ch.exchange_declare(names::JOBS_EXCHANGE.into(), lapin::ExchangeKind::Direct, durable, FieldTable::default())
        .await
        .expect("exchange");
    assert_eq!(ledger.publish(&job("r-2"), Lane::Reprocess).await.expect("publish"), Published::Returned);
    assert_eq!(ledger.pending(), 0);
    let report = ledger.settle(Duration::from_secs(3)).await;
    assert!(report.ok(), "{}", report.table());
    assert_eq!((report.published, report.returned, report.lost), (2, 2, 0));
    ledger.close().await;
}
