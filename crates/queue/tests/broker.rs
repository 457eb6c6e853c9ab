//! mediagate-queue against a real RabbitMQ, each test in a throwaway vhost.

use std::time::{Duration, Instant};

use lapin::options::{BasicGetOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable};
use mediagate_queue::names::*;
use mediagate_queue::{contract_queue_arguments, Broker, QueueError};
use mediagate_testkit::rabbit::TestVhost;

async fn broker(vh: &TestVhost) -> Broker {
    Broker::connect(&vh.url).await.expect("connect to the test vhost")
}

/// Pulls one message from `queue` with a raw channel (no consumer), waiting up to 5 s.
async fn get_one(b: &Broker, queue: &str) -> Option<lapin::message::BasicGetMessage> {
    let ch = b.connection().create_channel().await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if let Some(m) = ch.basic_get(queue.into(), BasicGetOptions { no_ack: true }).await.unwrap() {
            return Some(m);
        }
        if Instant::now() > deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn message_count(b: &Broker, queue: &str) -> u32 {
    let ch = b.connection().create_channel().await.unwrap();
    let q = ch
        .queue_declare(queue.into(), QueueDeclareOptions { passive: true, ..Default::default() }, FieldTable::default())
        .await
        .unwrap();
    q.message_count()
}

fn header_str(m: &lapin::message::Delivery, name: &str) -> Option<String> {
    match m.properties.headers().as_ref()?.inner().get(name)? {
        AMQPValue::LongString(s) => Some(s.to_string()),
        AMQPValue::ShortString(s) => Some(s.as_str().to_owned()),
        _ => None,
    }
}

#[tokio::test]
async fn topology_is_exact_and_idempotent() {
    let vh = TestVhost::create("queue");
    let b = broker(&vh).await;

    // before the worker declared anything, producers' passive check says "not found"
    let err = b.check_topology().await.unwrap_err();
    assert!(err.is_not_found(), "{err}");

    b.declare_topology().await.unwrap();
    b.declare_topology().await.expect("a second declaration is a no-op");
    b.check_topology().await.unwrap();

    // passive declares of every queue succeed, on a fresh channel each
    for q in [UPLOADS_QUEUE, REPROCESS_QUEUE, DEAD_QUEUE, VERDICTS_QUEUE] {
        let ch = b.connection().create_channel().await.unwrap();
        ch.queue_declare(q.into(), QueueDeclareOptions { passive: true, ..Default::default() }, FieldTable::default())
            .await
            .unwrap_or_else(|e| panic!("passive declare of {q}: {e}"));
        // and re-declaring with the contract's arguments is accepted
        let args = contract_queue_arguments(q).unwrap();
        ch.queue_declare(q.into(), QueueDeclareOptions { durable: true, ..Default::default() }, args).await.unwrap();
    }

    // a declaration with other arguments is refused (and closes only its own channel)
    let ch = b.connection().create_channel().await.unwrap();
    let mut other = contract_queue_arguments(UPLOADS_QUEUE).unwrap();
    other.insert("x-delivery-limit".into(), AMQPValue::LongLongInt(6));
    let err = ch
        .queue_declare(UPLOADS_QUEUE.into(), QueueDeclareOptions { durable: true, ..Default::default() }, other)
        .await
        .unwrap_err();
    let err = QueueError::Topology { what: "test".into(), source: Box::new(err) };
    assert!(err.is_precondition_failed(), "{err}");
    assert!(b.is_connected(), "a channel error leaves the connection up");
    b.declare_topology().await.expect("the connection still works");

    // the broker's own view: exact arguments and types
    let queues: serde_json::Value = serde_json::from_str(&vh.ctl(&[
        "list_queues",
        "-p",
        &vh.name,
        "name",
        "durable",
        "arguments",
        "--formatter",
        "json",
    ]))
    .unwrap();
    let find = |name: &str| queues.as_array().unwrap().iter().find(|q| q["name"] == name).cloned().unwrap();
    // rabbitmqctl lists arguments as [name, AMQP type, value], sorted by name
    let job_args = serde_json::json!([
        ["x-dead-letter-exchange", "longstr", "mediagate.dead"],
        ["x-delivery-limit", "long", 5],
        ["x-queue-type", "longstr", "quorum"]
    ]);
    assert_eq!(find(UPLOADS_QUEUE)["arguments"], job_args);
    assert_eq!(find(REPROCESS_QUEUE)["arguments"], job_args);
    assert_eq!(find(DEAD_QUEUE)["arguments"], serde_json::json!([["x-queue-type", "longstr", "quorum"]]));
    assert_eq!(
        find(VERDICTS_QUEUE)["arguments"],
        serde_json::json!([["x-message-ttl", "long", 604800000], ["x-queue-type", "longstr", "quorum"]])
    );
    for q in [UPLOADS_QUEUE, REPROCESS_QUEUE, DEAD_QUEUE, VERDICTS_QUEUE] {
        assert_eq!(find(q)["durable"], true, "{q}");
    }
    let exchanges: serde_json::Value = serde_json::from_str(&vh.ctl(&[
        "list_exchanges",
        "-p",
        &vh.name,
        "name",
        "type",
        "durable",
        "--formatter",
        "json",
    ]))
    .unwrap();
    for (name, kind) in [(JOBS_EXCHANGE, "direct"), (DEAD_EXCHANGE, "fanout"), (VERDICTS_EXCHANGE, "topic")] {
        let e = exchanges.as_array().unwrap().iter().find(|e| e["name"] == name).unwrap();
        assert_eq!((e["type"].as_str(), e["durable"].as_bool()), (Some(kind), Some(true)), "{name}");
    }
    let bindings = vh.ctl(&["list_bindings", "-p", &vh.name, "source_name", "destination_name", "routing_key"]);
    for line in [
        "mediagate.jobs\tmediagate.uploads\tupload",
        "mediagate.jobs\tmediagate.reprocess\treprocess",
        "mediagate.dead\tmediagate.dead\t",
        "mediagate.verdicts\tmediagate.verdicts\t#",
    ] {
        assert!(bindings.lines().any(|l| l == line), "missing binding {line:?} in\n{bindings}");
    }
    b.close().await;
}

#[tokio::test]
async fn a_published_job_is_consumed_with_its_envelope() {
    let vh = TestVhost::create("queue");
    let b = broker(&vh).await;
    b.declare_topology().await.unwrap();
    let jobs = b.job_publisher().await.unwrap();

    jobs.publish(UPLOAD_KEY, "j-1", br#"{"job_id":"j-1"}"#.to_vec()).await.unwrap();
    // the envelope as any consumer sees it
    let m = get_one(&b, UPLOADS_QUEUE).await.expect("job in mediagate.uploads");
    assert_eq!(m.properties.message_id().as_ref().map(|s| s.as_str()), Some("j-1"));
    assert_eq!(m.properties.delivery_mode(), &Some(2));
    assert_eq!(m.properties.content_type().as_ref().map(|s| s.as_str()), Some("application/json"));

    jobs.publish(UPLOAD_KEY, "j-2", br#"{"job_id":"j-2"}"#.to_vec()).await.unwrap();
    jobs.publish(REPROCESS_KEY, "j-3", br#"{"job_id":"j-3"}"#.to_vec()).await.unwrap();
    let mut c = b.consumer(UPLOADS_QUEUE, 4, "test-worker").await.unwrap();
    let d = c.next().await.unwrap().unwrap();
    assert_eq!(d.body, br#"{"job_id":"j-2"}"#);
    assert_eq!(d.message_id.as_deref(), Some("j-2"));
    assert_eq!(d.routing_key, "upload");
    assert!(!d.redelivered);
    assert!(d.delivery_count.unwrap_or(0) == 0, "{:?}", d.delivery_count);
    // ack from another task, as the worker does
    tokio::spawn(async move { d.acker.ack().await }).await.unwrap().unwrap();
    assert_eq!(message_count(&b, REPROCESS_QUEUE).await, 1, "reprocess jobs go to their own queue");

    // an unroutable job is an error, not a silent loss
    match jobs.publish("no-such-key", "j-4", b"{}".to_vec()).await {
        Err(QueueError::Unroutable { routing_key, .. }) => assert_eq!(routing_key, "no-such-key"),
        other => panic!("expected Unroutable, got {other:?}"),
    }
    // and the publisher still works afterwards
    jobs.publish(UPLOAD_KEY, "j-5", b"{}".to_vec()).await.unwrap();
    let d = c.next().await.unwrap().unwrap();
    assert_eq!(d.message_id.as_deref(), Some("j-5"));
    d.acker.ack().await.unwrap();
    b.close().await;
}

#[tokio::test]
async fn verdicts_are_confirmed_and_land_in_the_verdicts_queue() {
    let vh = TestVhost::create("queue");
    let b = broker(&vh).await;
    b.declare_topology().await.unwrap();
    let mut listener = b.verdict_listener("verdict.*").await.unwrap();
    let verdicts = b.verdict_publisher().await.unwrap();

    let _confirmed =
        verdicts.publish("verdict.cleared", Some("j-1"), br#"{"status":"cleared"}"#.to_vec()).await.unwrap();
    let m = get_one(&b, VERDICTS_QUEUE).await.expect("verdict in mediagate.verdicts");
    assert_eq!(m.routing_key.as_str(), "verdict.cleared");
    assert_eq!(m.exchange.as_str(), VERDICTS_EXCHANGE);
    assert_eq!(m.properties.correlation_id().as_ref().map(|s| s.as_str()), Some("j-1"));
    assert_eq!(m.properties.message_id().as_ref().map(|s| s.as_str()), Some("j-1"));
    assert_eq!(m.properties.delivery_mode(), &Some(2));
    assert_eq!(m.properties.content_type().as_ref().map(|s| s.as_str()), Some("application/json"));
    assert_eq!(m.data, br#"{"status":"cleared"}"#);

    let v = listener.wait_for("j-1", Duration::from_secs(5)).await.unwrap().expect("listener sees it too");
    assert_eq!((v.routing_key.as_str(), v.correlation_id.as_deref()), ("verdict.cleared", Some("j-1")));

    // a verdict without a usable job id
    let _confirmed = verdicts.publish("verdict.rejected", None, b"{}".to_vec()).await.unwrap();
    let v = listener.next(Duration::from_secs(5)).await.unwrap().unwrap();
    assert_eq!((v.routing_key.as_str(), v.correlation_id), ("verdict.rejected", None));

    // many tasks publishing at once on clones of one publisher
    let tasks: Vec<_> = (0..50)
        .map(|i| {
            let p = verdicts.clone();
            tokio::spawn(async move { p.publish("verdict.partial", Some(&format!("j-c{i}")), b"{}".to_vec()).await })
        })
        .collect();
    for t in tasks {
        let _confirmed = t.await.unwrap().unwrap();
    }
    assert_eq!(message_count(&b, VERDICTS_QUEUE).await, 51);
    assert!(listener.next(Duration::from_millis(10)).await.unwrap().is_some());
    b.close().await;
}

#[tokio::test]
async fn ack_nack_reject_and_cancel() {
    let vh = TestVhost::create("queue");
    let b = broker(&vh).await;
    b.declare_topology().await.unwrap();
    let jobs = b.job_publisher().await.unwrap();
    for id in ["a", "b", "c", "d"] {
        jobs.publish(UPLOAD_KEY, id, id.as_bytes().to_vec()).await.unwrap();
    }
    let mut c = b.consumer(UPLOADS_QUEUE, 10, "t").await.unwrap();
    let mut by_id = std::collections::HashMap::new();
    for _ in 0..4 {
        let d = c.next().await.unwrap().unwrap();
        by_id.insert(d.message_id.clone().unwrap(), d);
    }

    // ack: gone for good; a second ack is refused locally
    let a = by_id.remove("a").unwrap();
    a.acker.ack().await.unwrap();
    assert!(matches!(a.acker.ack().await, Err(QueueError::AlreadyAcked { .. })));
    // nack without requeue: dead-lettered at once
    by_id.remove("b").unwrap().acker.nack(false).await.unwrap();
    let dead = get_one(&b, DEAD_QUEUE).await.expect("b in mediagate.dead");
    assert_eq!(dead.properties.message_id().as_ref().map(|s| s.as_str()), Some("b"));
    // reject without requeue: likewise
    by_id.remove("c").unwrap().acker.reject(false).await.unwrap();
    let dead = get_one(&b, DEAD_QUEUE).await.expect("c in mediagate.dead");
    assert_eq!(dead.properties.message_id().as_ref().map(|s| s.as_str()), Some("c"));
    // nack with requeue: redelivered, flagged, counted
    by_id.remove("d").unwrap().acker.nack(true).await.unwrap();
    let d = c.next().await.unwrap().unwrap();
    assert_eq!(d.message_id.as_deref(), Some("d"));
    assert!(d.redelivered);
    assert_eq!(d.delivery_count, Some(1));

    // cancel: the stream ends, but the delivery in flight can still be acked
    c.canceller().cancel().await.unwrap();
    assert!(tokio::time::timeout(Duration::from_secs(5), c.next()).await.unwrap().is_none());
    jobs.publish(UPLOAD_KEY, "e", b"e".to_vec()).await.unwrap();
    d.acker.ack().await.unwrap();
    drop(c);
    assert_eq!(message_count(&b, UPLOADS_QUEUE).await, 1, "only e is left, not redelivered d");
    b.close().await;
}

#[tokio::test]
async fn the_delivery_limit_dead_letters_a_job() {
    let vh = TestVhost::create("queue");
    let b = broker(&vh).await;
    b.declare_topology().await.unwrap();
    b.job_publisher().await.unwrap().publish(UPLOAD_KEY, "j-poison", b"{}".to_vec()).await.unwrap();

    let mut c = b.consumer(UPLOADS_QUEUE, 1, "t").await.unwrap();
    let mut counts = Vec::new();
    for _ in 0..6 {
        let d = tokio::time::timeout(Duration::from_secs(5), c.next()).await.expect("redelivered").unwrap().unwrap();
        assert_eq!(d.message_id.as_deref(), Some("j-poison"));
        counts.push(d.delivery_count.unwrap_or(0));
        d.acker.nack(true).await.unwrap();
    }
    assert_eq!(counts, vec![0, 1, 2, 3, 4, 5]);
    let dead = get_one(&b, DEAD_QUEUE).await.expect("dead-lettered after the 6th nack");
    assert_eq!(dead.properties.message_id().as_ref().map(|s| s.as_str()), Some("j-poison"));
    assert_eq!(header_str(&dead, "x-first-death-reason").as_deref(), Some("delivery_limit"));
    assert!(tokio::time::timeout(Duration::from_millis(300), c.next()).await.is_err(), "no 7th delivery");
    assert_eq!(message_count(&b, UPLOADS_QUEUE).await, 0);
    b.close().await;
}

#[tokio::test]
async fn a_lost_connection_is_noticed() {
    let vh = TestVhost::create("queue");
    let b = broker(&vh).await;
    b.declare_topology().await.unwrap();
    let verdicts = b.verdict_publisher().await.unwrap();
    let mut c = b.consumer(UPLOADS_QUEUE, 1, "t").await.unwrap();
    assert!(b.is_connected());

    vh.ctl(&["close_all_connections", "--vhost", &vh.name, "test: simulated broker restart"]);
    let err = tokio::time::timeout(Duration::from_secs(5), b.closed()).await.expect("closed() resolves");
    assert!(matches!(err, QueueError::Closed { .. }), "{err}");
    assert!(!b.is_connected());
    // the consumer stream ends (with or without a final error) and publishing fails
    let end = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(r) = c.next().await {
            if r.is_err() {
                break;
            }
        }
    });
    end.await.expect("consumer stream ends");
    assert!(verdicts.publish("cleared", Some("j"), b"{}".to_vec()).await.is_err());
    // reconnecting is building a new Broker
    let b2 = broker(&vh).await;
    b2.check_topology().await.unwrap();
    b2.close().await;
}

#[tokio::test]
async fn an_unreachable_broker_fails_clearly_without_leaking_the_password() {
    let err = Broker::connect("amqp://guest:s3cret@127.0.0.1:1/%2f").await.unwrap_err();
    assert!(matches!(err, QueueError::Connect { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("127.0.0.1:1") && !msg.contains("s3cret"), "{msg}");
}
