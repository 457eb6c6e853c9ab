//! The ledger's own AMQP plumbing: connecting to any of several nodes in a random order with
//! backoff, its private verdict queue, and the collector that records every verdict. The ledger
//! must outlive the faults it watches (brokers restarted, connections closed), so nothing here
//! gives up on the first error.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicQosOptions, ConfirmSelectOptions, ExchangeDeclareOptions,
    QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::{Channel, Connection, ConnectionProperties, Consumer, ExchangeKind};
use mediagate_queue::{connection_order, names, redact_url};
use tokio::sync::watch;
use tracing::{debug, info, warn};

use crate::Inner;

/// How long one connection attempt to one node may take.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// First pause between reconnection rounds.
pub(crate) const MIN_BACKOFF: Duration = Duration::from_millis(200);
/// Longest pause between reconnection rounds.
pub(crate) const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// Verdicts the collector may hold unacknowledged (it records and acks each at once).
const PREFETCH: u16 = 256;
/// How long the ledger's queue survives unused (no consumer) after a crashed ledger, so a
/// forgotten queue bound to every verdict with `#` does not grow forever. Long enough for any
/// broker restart the ledger itself rides out.
pub(crate) const QUEUE_EXPIRES_MS: i64 = 3_600_000;

/// The next pause of an exponential backoff between [`MIN_BACKOFF`] and [`MAX_BACKOFF`].
pub(crate) fn next_backoff(d: Duration) -> Duration {
    (d * 2).clamp(MIN_BACKOFF, MAX_BACKOFF)
}

/// One pass over the nodes in [`connection_order`]: the first connection that opens, with its
/// URL, or the last error seen (redacted).
pub(crate) async fn connect_any(
    urls: &[String],
    last: Option<&str>,
    name: &str,
) -> Result<(Connection, String), String> {
    let mut errors = Vec::new();
    for url in connection_order(urls, last) {
        let props = ConnectionProperties::default().with_connection_name(LongString::from(name));
        match tokio::time::timeout(CONNECT_TIMEOUT, Connection::connect(&url, props)).await {
            Ok(Ok(conn)) => {
                info!(url = %redact_url(&url), name, "ledger connected to RabbitMQ");
                return Ok((conn, url));
            }
            Ok(Err(e)) => errors.push(format!("{}: {e}", redact_url(&url))),
            Err(_) => errors.push(format!("{}: no answer within {CONNECT_TIMEOUT:?}", redact_url(&url))),
        }
    }
    Err(errors.join("; "))
}

/// The publisher's connection and its confirm-mode channel. `generation` tells a failed
/// publish whether someone else already replaced the link it used.
pub(crate) struct PubLink {
    pub conn: Connection,
    pub channel: Channel,
    pub url: String,
    pub generation: u64,
}

impl PubLink {
    pub(crate) fn usable(&self) -> bool {
        self.conn.status().connected() && self.channel.status().connected()
    }

    /// Connects to any node and opens a channel with publisher confirms.
    pub(crate) async fn open(urls: &[String], last: Option<&str>, generation: u64) -> Result<PubLink, String> {
        let (conn, url) = connect_any(urls, last, "mediagate-ledger publisher").await?;
        let channel = conn.create_channel().await.map_err(|e| format!("opening the publisher's channel: {e}"))?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .map_err(|e| format!("confirm.select on the publisher's channel: {e}"))?;
        Ok(PubLink { conn, channel, url, generation })
    }
}

/// The arguments of the ledger's own queue: quorum (it survives a broker restart with its
/// verdicts) and [`QUEUE_EXPIRES_MS`].
pub(crate) fn own_queue_arguments() -> FieldTable {
    let mut t = FieldTable::default();
    t.insert("x-queue-type".into(), AMQPValue::LongString("quorum".into()));
    t.insert("x-expires".into(), AMQPValue::LongLongInt(QUEUE_EXPIRES_MS));
    t
}

/// The collector's connection, channel and consumer of the ledger's own queue.
pub(crate) struct Collecting {
    conn: Connection,
    channel: Channel,
    consumer: Consumer,
    url: String,
}

/// Connects to any node, declares the ledger's queue (durable, quorum) bound to
/// `mediagate.verdicts` with `#`, and consumes it with manual acks. The verdicts exchange is
/// declared too, with the contract's type, so the binding holds even before any worker started;
/// the contract's own verdict queue is never touched.
pub(crate) async fn open_collector(urls: &[String], last: Option<&str>, queue: &str) -> Result<Collecting, String> {
    let (conn, url) = connect_any(urls, last, "mediagate-ledger collector").await?;
    let step = |what: &'static str| move |e: lapin::Error| format!("{what}: {e}");
    let channel = conn.create_channel().await.map_err(step("opening the collector's channel"))?;
    let durable = ExchangeDeclareOptions { durable: true, ..Default::default() };
    channel
        .exchange_declare(names::VERDICTS_EXCHANGE.into(), ExchangeKind::Topic, durable, FieldTable::default())
        .await
        .map_err(step("declaring the verdicts exchange"))?;
    let q = QueueDeclareOptions { durable: true, ..Default::default() };
    channel
        .queue_declare(queue.into(), q, own_queue_arguments())
        .await
        .map_err(step("declaring the ledger's queue"))?;
    channel
        .queue_bind(
            queue.into(),
            names::VERDICTS_EXCHANGE.into(),
            "#".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .map_err(step("binding the ledger's queue"))?;
    channel.basic_qos(PREFETCH, BasicQosOptions::default()).await.map_err(step("basic.qos"))?;
    let consumer = channel
        .basic_consume(queue.into(), "mediagate-ledger".into(), BasicConsumeOptions::default(), FieldTable::default())
        .await
        .map_err(step("consuming the ledger's queue"))?;
    info!(queue, url = %redact_url(&url), "ledger collecting verdicts");
    Ok(Collecting { conn, channel, consumer, url })
}

/// Why [`collect`] returned.
enum Ended {
    Stopped,
    Lost(String),
}

/// The collector task: consumes the ledger's queue, records each verdict and acks it, and
/// reconnects (backoff [`MIN_BACKOFF`]..[`MAX_BACKOFF`], across the node list, redeclaring the
/// queue) whenever the connection, the channel or the consumer goes away. Stops when `stop`
/// turns true.
pub(crate) async fn collector(inner: Arc<Inner>, first: Collecting, mut stop: watch::Receiver<bool>) {
    let mut current = Some(first);
    let mut last_url: Option<String> = None;
    let mut delay = MIN_BACKOFF;
    loop {
        let mut c = match current.take() {
            Some(c) => c,
            None => match open_collector(&inner.cfg.amqp_urls, last_url.as_deref(), &inner.cfg.queue).await {
                Ok(c) => c,
                Err(e) => {
                    warn!(error = %e, retry_in = ?delay, "ledger collector cannot reconnect yet");
                    tokio::select! {
                        _ = tokio::time::sleep(delay) => {}
                        _ = stop.changed() => return,
                    }
                    delay = next_backoff(delay);
                    continue;
                }
            },
        };
        delay = MIN_BACKOFF;
        last_url = Some(c.url.clone());
        match collect(&inner, &mut c, &mut stop).await {
            Ended::Stopped => {
                let _ = c.channel.close(200, "ledger closing".into()).await;
                let _ = c.conn.close(200, "ledger closing".into()).await;
                return;
            }
            Ended::Lost(why) => {
                warn!(%why, "ledger collector lost its connection; reconnecting");
                let _ = c.conn.close(320, "ledger reconnecting".into()).await;
            }
        }
    }
}

async fn collect(inner: &Inner, c: &mut Collecting, stop: &mut watch::Receiver<bool>) -> Ended {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        if *stop.borrow() {
            return Ended::Stopped;
        }
        tokio::select! {
            _ = stop.changed() => return Ended::Stopped,
            _ = tick.tick() => {
                if !c.conn.status().connected() || !c.channel.status().connected() {
                    return Ended::Lost("connection or channel no longer open".into());
                }
            }
            next = c.consumer.next() => match next {
                None => return Ended::Lost("the broker cancelled the consumer".into()),
                Some(Err(e)) => return Ended::Lost(e.to_string()),
                Some(Ok(d)) => {
                    let fallback = d.properties.correlation_id().as_ref().or(d.properties.message_id().as_ref());
                    let fallback = fallback.map(|s| s.as_str().to_owned());
                    inner.record_verdict(&d.data, fallback.as_deref(), d.redelivered, d.routing_key.as_str());
                    // Acked only once recorded: a verdict lost with the connection comes back.
                    if let Err(e) = d.acker.ack(BasicAckOptions::default()).await {
                        return Ended::Lost(format!("ack failed: {e}"));
                    }
                    debug!(routing_key = d.routing_key.as_str(), "verdict recorded");
                }
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_node_is_tried_once_and_the_failed_one_last() {
        let urls: Vec<String> = (0..5).map(|i| format!("amqp://n{i}")).collect();
        let mut firsts = std::collections::BTreeSet::new();
        for _ in 0..200 {
            let order = connection_order(&urls, Some("amqp://n2"));
            let mut sorted = order.clone();
            sorted.sort();
            assert_eq!(sorted, urls, "a permutation");
            assert_eq!(order.last().map(String::as_str), Some("amqp://n2"));
            firsts.insert(order[0].clone());
        }
        assert!(firsts.len() >= 3, "the order varies: {firsts:?}");
        assert_eq!(connection_order(&urls[..1], None), urls[..1].to_vec());
    }

    #[test]
    fn backoff_doubles_within_bounds() {
        assert_eq!(next_backoff(MIN_BACKOFF), Duration::from_millis(400));
        assert_eq!(next_backoff(Duration::from_secs(4)), MAX_BACKOFF);
        assert_eq!(next_backoff(Duration::ZERO), MIN_BACKOFF);
    }
}
