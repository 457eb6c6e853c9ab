//! RabbitMQ for mediagate: the contract's topology (§1), the job consumer, and publishers that
//! wait for broker confirms.
//!
//! Built on lapin (plain AMQP 0-9-1). The rules this crate enforces so the worker cannot get them
//! wrong:
//!
//! - the topology is declared with the *exact* arguments of contract §1 (a queue re-declared with
//!   other arguments is refused by the broker, so every declarer must agree byte for byte);
//! - every publish is persistent, `application/json`, carries the job id as `message_id` (and
//!   `correlation_id` for verdicts), is `mandatory` (an unroutable message is an error, not a
//!   silent loss) and is only reported done once the broker has **confirmed** it;
//! - consumers use manual acknowledgements on their own channel with a prefetch limit, and each
//!   delivery carries an [`Acker`] that can be moved to another task.
//!
//! Reconnection is left to the caller: when [`Broker::closed`] resolves, build a new [`Broker`].

#![warn(missing_docs)]

use std::fmt;
use std::time::Duration;

use futures_util::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicNackOptions, BasicPublishOptions, BasicQosOptions,
    BasicRejectOptions, ConfirmSelectOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::protocol::{AMQPErrorKind, AMQPSoftError};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{BasicProperties, Channel, Confirmation, Connection, ConnectionProperties, ErrorKind, ExchangeKind};
use tracing::{debug, info, warn};

/// Names fixed by contract §1. Producers and consumers in other languages use the same strings.
pub mod names {
    /// Direct exchange producers publish jobs to.
    pub const JOBS_EXCHANGE: &str = "mediagate.jobs";
    /// Quorum queue of live upload jobs.
    pub const UPLOADS_QUEUE: &str = "mediagate.uploads";
    /// Quorum queue of reprocessing jobs (batch; must never starve live traffic).
    pub const REPROCESS_QUEUE: &str = "mediagate.reprocess";
    /// Fanout exchange jobs are dead-lettered to after their delivery limit.
    pub const DEAD_EXCHANGE: &str = "mediagate.dead";
    /// Quorum queue bound to [`DEAD_EXCHANGE`].
    pub const DEAD_QUEUE: &str = "mediagate.dead";
    /// Topic exchange verdicts are published to, with routing key `verdict.<status>`.
    pub const VERDICTS_EXCHANGE: &str = "mediagate.verdicts";
    /// Quorum queue (7-day message TTL) bound to [`VERDICTS_EXCHANGE`] with `#`, so no verdict is
    /// lost while no consumer is bound.
    pub const VERDICTS_QUEUE: &str = "mediagate.verdicts";
    /// Routing key of live jobs on [`JOBS_EXCHANGE`].
    pub const UPLOAD_KEY: &str = "upload";
    /// Routing key of reprocessing jobs on [`JOBS_EXCHANGE`].
    pub const REPROCESS_KEY: &str = "reprocess";
    /// `x-delivery-limit` of the job queues: redeliveries before a job is dead-lettered.
    pub const DELIVERY_LIMIT: i64 = 5;
    /// `x-message-ttl` of [`VERDICTS_QUEUE`]: 7 days in milliseconds.
    pub const VERDICTS_TTL_MS: i64 = 604_800_000;
    /// Content type of every job and verdict.
    pub const CONTENT_TYPE: &str = "application/json";
}

/// Why a queue operation failed.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// The broker could not be reached or refused the login.
    #[error("cannot connect to RabbitMQ at {url}: {source}")]
    Connect {
        /// The URL, password removed.
        url: String,
        /// lapin's error (boxed: it is large).
        #[source]
        source: Box<lapin::Error>,
    },
    /// Connecting took longer than the connect timeout.
    #[error("cannot connect to RabbitMQ at {url}: no answer within {timeout:?}")]
    ConnectTimeout {
        /// The URL, password removed.
        url: String,
        /// The limit that was applied.
        timeout: Duration,
    },
    /// Declaring or binding an exchange or queue failed (PRECONDITION_FAILED when it exists with
    /// other arguments; see [`QueueError::is_precondition_failed`]).
    #[error("RabbitMQ topology: {what}: {source}")]
    Topology {
        /// Which declaration failed.
        what: String,
        /// lapin's error (boxed: it is large).
        #[source]
        source: Box<lapin::Error>,
    },
    /// Opening a channel, setting QoS, consuming or cancelling failed.
    #[error("RabbitMQ channel: {what}: {source}")]
    Channel {
        /// Which step failed.
        what: String,
        /// lapin's error (boxed: it is large).
        #[source]
        source: Box<lapin::Error>,
    },
    /// Sending a message (or receiving its confirm) failed.
    #[error("publish to exchange {exchange:?} with key {routing_key:?} failed: {source}")]
    Publish {
        /// Target exchange.
        exchange: String,
        /// Routing key used.
        routing_key: String,
        /// lapin's error (boxed: it is large).
        #[source]
        source: Box<lapin::Error>,
    },
    /// The broker negatively confirmed a message: it did not take responsibility for it.
    #[error("broker refused (nack) the message to exchange {exchange:?} with key {routing_key:?}")]
    Nacked {
        /// Target exchange.
        exchange: String,
        /// Routing key used.
        routing_key: String,
    },
    /// A mandatory message matched no queue and came back (the topology is missing or wrong).
    #[error("message to exchange {exchange:?} with key {routing_key:?} is unroutable: {reply}")]
    Unroutable {
        /// Target exchange.
        exchange: String,
        /// Routing key used.
        routing_key: String,
        /// The broker's reply (`312 NO_ROUTE`).
        reply: String,
    },
    /// Acknowledging a delivery failed.
    #[error("acknowledging delivery {delivery_tag} failed: {source}")]
    Ack {
        /// The delivery's tag on its channel.
        delivery_tag: u64,
        /// lapin's error (boxed: it is large).
        #[source]
        source: Box<lapin::Error>,
    },
    /// The delivery was already acknowledged (ack/nack/reject is single-use).
    #[error("delivery {delivery_tag} was already acknowledged")]
    AlreadyAcked {
        /// The delivery's tag on its channel.
        delivery_tag: u64,
    },
    /// The channel or connection is closed; the broker redelivers unacknowledged messages, so
    /// the caller should reconnect rather than retry on this handle.
    #[error("RabbitMQ {what} is closed: {detail}")]
    Closed {
        /// `connection`, `channel`, `consumer`…
        what: &'static str,
        /// Why, as far as known.
        detail: String,
    },
}

impl QueueError {
    /// True when the broker answered PRECONDITION_FAILED (406): typically a queue that already
    /// exists with other arguments.
    pub fn is_precondition_failed(&self) -> bool {
        self.lapin_error().is_some_and(|e| {
            matches!(e.kind(), ErrorKind::ProtocolError(p) if *p.kind() == AMQPErrorKind::Soft(AMQPSoftError::PRECONDITIONFAILED))
        })
    }

    /// True when the broker answered NOT_FOUND (404): an exchange or queue does not exist (a
    /// passive declare on a missing queue, for example).
    pub fn is_not_found(&self) -> bool {
        self.lapin_error().is_some_and(|e| {
            matches!(e.kind(), ErrorKind::ProtocolError(p) if *p.kind() == AMQPErrorKind::Soft(AMQPSoftError::NOTFOUND))
        })
    }

    /// The underlying lapin error, if any.
    pub fn lapin_error(&self) -> Option<&lapin::Error> {
        match self {
            QueueError::Connect { source, .. }
            | QueueError::Topology { source, .. }
            | QueueError::Channel { source, .. }
            | QueueError::Publish { source, .. }
            | QueueError::Ack { source, .. } => Some(source.as_ref()),
            _ => None,
        }
    }
}

fn conn_state(s: &lapin::ConnectionStatus) -> String {
    let state = if s.errored() {
        "errored"
    } else if s.closed() {
        "closed"
    } else if s.closing() {
        "closing"
    } else if s.connected() {
        "connected"
    } else {
        "connecting"
    };
    format!("connection {state}")
}

/// Removes the password from an AMQP URL for logs and error messages.
pub fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_owned();
    };
    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    match authority.rfind('@') {
        Some(at) => {
            let userinfo = &authority[..at];
            match userinfo.find(':') {
                Some(colon) => format!("{}{}:***{}", &url[..scheme_end + 3], &userinfo[..colon], &rest[at..]),
                None => url.to_owned(),
            }
        }
        None => url.to_owned(),
    }
}

/// How long [`Broker::connect`] waits for the broker before giving up.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// One AMQP connection. Each consumer and publisher opens its own channel on it, so a channel
/// error (a refused publish, say) does not take the others down.
pub struct Broker {
    conn: Connection,
    url: String,
}

impl fmt::Debug for Broker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Broker").field("url", &self.url).field("connected", &self.conn.status().connected()).finish()
    }
}

impl Broker {
    /// Connects (with [`CONNECT_TIMEOUT`]); `url` is an AMQP URI such as
    /// `amqp://guest:guest@127.0.0.1:5672/%2f` (contract §6 `MEDIAGATE_AMQP_URL`).
    pub async fn connect(url: &str) -> Result<Broker, QueueError> {
        Self::connect_named(url, "mediagate").await
    }

    /// Like [`Broker::connect`], with a connection name shown in the management UI
    /// (`mediagate worker host-1`), which makes a stuck connection easy to find.
    pub async fn connect_named(url: &str, name: &str) -> Result<Broker, QueueError> {
        let redacted = redact_url(url);
        let props = ConnectionProperties::default().with_connection_name(LongString::from(name));
        let conn = tokio::time::timeout(CONNECT_TIMEOUT, Connection::connect(url, props))
            .await
            .map_err(|_| QueueError::ConnectTimeout { url: redacted.clone(), timeout: CONNECT_TIMEOUT })?
            .map_err(|source| QueueError::Connect { url: redacted.clone(), source: Box::new(source) })?;
        info!(url = %redacted, name, "connected to RabbitMQ");
        Ok(Broker { conn, url: redacted })
    }

    /// The raw lapin connection, for diagnostics and tests (declaring test queues, passive
    /// checks). Production code should not need it.
    pub fn connection(&self) -> &Connection {
        &self.conn
    }

    /// True while the connection is open and usable.
    pub fn is_connected(&self) -> bool {
        self.conn.status().connected()
    }

    /// Resolves when the connection is lost (broker gone, heartbeat missed, closed by an operator
    /// or by us), with the reason. The worker selects on it to stop consuming and reconnect.
    pub async fn closed(&self) -> QueueError {
        let mut events = self.conn.events_listener();
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        let mut last_error: Option<String> = None;
        loop {
            let status = self.conn.status();
            if status.errored() || status.closed() || status.closing() {
                let detail = last_error.unwrap_or_else(|| conn_state(status));
                warn!(url = %self.url, %detail, "RabbitMQ connection lost");
                return QueueError::Closed { what: "connection", detail };
            }
            tokio::select! {
                ev = events.next() => match ev {
                    Some(lapin::Event::Error(e)) => last_error = Some(e.to_string()),
                    Some(_) => {}
                    None => return QueueError::Closed { what: "connection", detail: "event stream ended".into() },
                },
                _ = tick.tick() => {}
            }
        }
    }

    /// Declares contract §1 exactly. Idempotent: declaring again with the same arguments is a
    /// no-op for the broker. Fails with PRECONDITION_FAILED if a queue exists with other
    /// arguments (which needs an operator: queues cannot be altered in place).
    pub async fn declare_topology(&self) -> Result<(), QueueError> {
        use names::*;
        let ch = self.channel("topology").await?;
        let durable = ExchangeDeclareOptions { durable: true, ..Default::default() };

        declare_exchange(&ch, JOBS_EXCHANGE, ExchangeKind::Direct, durable).await?;
        declare_exchange(&ch, DEAD_EXCHANGE, ExchangeKind::Fanout, durable).await?;
        declare_exchange(&ch, VERDICTS_EXCHANGE, ExchangeKind::Topic, durable).await?;

        declare_queue(&ch, UPLOADS_QUEUE, job_queue_arguments()).await?;
        declare_queue(&ch, REPROCESS_QUEUE, job_queue_arguments()).await?;
        declare_queue(&ch, DEAD_QUEUE, dead_queue_arguments()).await?;
        declare_queue(&ch, VERDICTS_QUEUE, verdicts_queue_arguments()).await?;

        bind(&ch, UPLOADS_QUEUE, JOBS_EXCHANGE, UPLOAD_KEY).await?;
        bind(&ch, REPROCESS_QUEUE, JOBS_EXCHANGE, REPROCESS_KEY).await?;
        bind(&ch, DEAD_QUEUE, DEAD_EXCHANGE, "").await?;
        bind(&ch, VERDICTS_QUEUE, VERDICTS_EXCHANGE, "#").await?;

        let _ = ch.close(200, "topology declared".into()).await;
        info!("RabbitMQ topology declared");
        Ok(())
    }

    /// Passively checks that the job exchange and queues exist, without declaring anything:
    /// what producers such as `mediagate submit` do (contract §1: only the worker declares).
    /// A missing entity gives an error with [`QueueError::is_not_found`].
    pub async fn check_topology(&self) -> Result<(), QueueError> {
        use names::*;
        let ch = self.channel("topology check").await?;
        let passive = ExchangeDeclareOptions { passive: true, ..Default::default() };
        declare_exchange(&ch, JOBS_EXCHANGE, ExchangeKind::Direct, passive).await?;
        declare_exchange(&ch, VERDICTS_EXCHANGE, ExchangeKind::Topic, passive).await?;
        for q in [UPLOADS_QUEUE, REPROCESS_QUEUE, VERDICTS_QUEUE] {
            ch.queue_declare(
                q.into(),
                QueueDeclareOptions { passive: true, ..Default::default() },
                FieldTable::default(),
            )
            .await
            .map_err(|source| QueueError::Topology {
                what: format!("queue {q} (passive)"),
                source: Box::new(source),
            })?;
        }
        let _ = ch.close(200, "checked".into()).await;
        Ok(())
    }

    async fn channel(&self, what: &str) -> Result<Channel, QueueError> {
        self.conn.create_channel().await.map_err(|source| QueueError::Channel {
            what: format!("open channel for {what}"),
            source: Box::new(source),
        })
    }

    /// Starts consuming `queue` with manual acks on a channel of its own, with at most
    /// `prefetch` unacknowledged deliveries (the worker's concurrency bound). `tag` names the
    /// consumer in the management UI.
    pub async fn consumer(&self, queue: &str, prefetch: u16, tag: &str) -> Result<JobConsumer, QueueError> {
        let ch = self.channel(&format!("consumer {tag}")).await?;
        ch.basic_qos(prefetch, BasicQosOptions::default()).await.map_err(|source| QueueError::Channel {
            what: format!("basic.qos {prefetch} on {queue}"),
            source: Box::new(source),
        })?;
        let consumer = ch
            .basic_consume(queue.into(), tag.into(), BasicConsumeOptions::default(), FieldTable::default())
            .await
            .map_err(|source| QueueError::Channel {
                what: format!("basic.consume on {queue}"),
                source: Box::new(source),
            })?;
        info!(queue, prefetch, tag, "consuming");
        Ok(JobConsumer {
            canceller: ConsumerCanceller { channel: ch.clone(), tag: tag.to_owned(), queue: queue.to_owned() },
            channel: ch,
            consumer,
            queue: queue.to_owned(),
        })
    }

    /// A publisher of verdicts on a channel of its own with publisher confirms enabled.
    pub async fn verdict_publisher(&self) -> Result<VerdictPublisher, QueueError> {
        Ok(VerdictPublisher { channel: self.confirm_channel("verdict publisher").await? })
    }

    /// A publisher of jobs (`mediagate submit`, `mediagate reprocess`, tests) with publisher
    /// confirms enabled.
    pub async fn job_publisher(&self) -> Result<JobPublisher, QueueError> {
        Ok(JobPublisher { channel: self.confirm_channel("job publisher").await? })
    }

    async fn confirm_channel(&self, what: &str) -> Result<Channel, QueueError> {
        let ch = self.channel(what).await?;
        ch.confirm_select(ConfirmSelectOptions::default()).await.map_err(|source| QueueError::Channel {
            what: format!("confirm.select for {what}"),
            source: Box::new(source),
        })?;
        Ok(ch)
    }

    /// Binds a fresh exclusive, auto-delete, server-named queue to `mediagate.verdicts` with
    /// `binding_key` (`verdict.*`, `#`, `verdict.cleared`…) and consumes it. Create it **before**
    /// publishing the job whose verdict you wait for, or the verdict may pass by unseen. Used by
    /// `submit --wait` and tests; the queue disappears with the connection.
    pub async fn verdict_listener(&self, binding_key: &str) -> Result<VerdictListener, QueueError> {
        let ch = self.channel("verdict listener").await?;
        let q = ch
            .queue_declare(
                "".into(),
                QueueDeclareOptions { exclusive: true, auto_delete: true, ..Default::default() },
                FieldTable::default(),
            )
            .await
            .map_err(|source| QueueError::Topology {
                what: "exclusive verdict listener queue".into(),
                source: Box::new(source),
            })?;
        let queue = q.name().as_str().to_owned();
        bind(&ch, &queue, names::VERDICTS_EXCHANGE, binding_key).await?;
        let consumer = ch
            .basic_consume(
                queue.as_str().into(),
                "".into(),
                BasicConsumeOptions { no_ack: true, exclusive: true, ..Default::default() },
                FieldTable::default(),
            )
            .await
            .map_err(|source| QueueError::Channel {
                what: format!("basic.consume on {queue}"),
                source: Box::new(source),
            })?;
        debug!(queue = %queue, binding_key, "verdict listener bound");
        Ok(VerdictListener { _channel: ch, consumer, queue })
    }

    /// Closes the connection politely (200). Unacknowledged deliveries go back to their queues.
    pub async fn close(&self) {
        if let Err(e) = self.conn.close(200, "bye".into()).await {
            debug!(error = %e, "closing RabbitMQ connection");
        }
    }
}

/// `x-queue-type=quorum`, `x-delivery-limit=5`, `x-dead-letter-exchange=mediagate.dead`.
fn job_queue_arguments() -> FieldTable {
    let mut t = quorum();
    t.insert("x-delivery-limit".into(), AMQPValue::LongLongInt(names::DELIVERY_LIMIT));
    t.insert("x-dead-letter-exchange".into(), AMQPValue::LongString(names::DEAD_EXCHANGE.into()));
    t
}

fn dead_queue_arguments() -> FieldTable {
    quorum()
}

fn verdicts_queue_arguments() -> FieldTable {
    let mut t = quorum();
    t.insert("x-message-ttl".into(), AMQPValue::LongLongInt(names::VERDICTS_TTL_MS));
    t
}

fn quorum() -> FieldTable {
    let mut t = FieldTable::default();
    t.insert("x-queue-type".into(), AMQPValue::LongString("quorum".into()));
    t
}

/// The exact arguments contract §1 gives a queue, for tools that must agree with the worker
/// (tests, migration scripts). `None` for a name that is not one of the contract's queues.
pub fn contract_queue_arguments(queue: &str) -> Option<FieldTable> {
    match queue {
        names::UPLOADS_QUEUE | names::REPROCESS_QUEUE => Some(job_queue_arguments()),
        names::DEAD_QUEUE => Some(dead_queue_arguments()),
        names::VERDICTS_QUEUE => Some(verdicts_queue_arguments()),
        _ => None,
    }
}

async fn declare_exchange(
    ch: &Channel,
    name: &str,
    kind: ExchangeKind,
    opts: ExchangeDeclareOptions,
) -> Result<(), QueueError> {
    ch.exchange_declare(name.into(), kind.clone(), opts, FieldTable::default()).await.map_err(|source| {
        QueueError::Topology { what: format!("exchange {name} ({kind:?})"), source: Box::new(source) }
    })
}

async fn declare_queue(ch: &Channel, name: &str, args: FieldTable) -> Result<(), QueueError> {
    ch.queue_declare(name.into(), QueueDeclareOptions { durable: true, ..Default::default() }, args)
        .await
        .map(|_| ())
        .map_err(|source| QueueError::Topology { what: format!("queue {name}"), source: Box::new(source) })
}

async fn bind(ch: &Channel, queue: &str, exchange: &str, key: &str) -> Result<(), QueueError> {
    ch.queue_bind(queue.into(), exchange.into(), key.into(), QueueBindOptions::default(), FieldTable::default())
        .await
        .map_err(|source| QueueError::Topology {
            what: format!("bind {queue} to {exchange} with {key:?}"),
            source: Box::new(source),
        })
}

/// A stream of job deliveries from one queue.
pub struct JobConsumer {
    channel: Channel,
    consumer: lapin::Consumer,
    canceller: ConsumerCanceller,
    queue: String,
}

impl fmt::Debug for JobConsumer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JobConsumer").field("queue", &self.queue).field("tag", &self.canceller.tag).finish()
    }
}

impl JobConsumer {
    /// The next delivery; `None` once the consumer is cancelled (by [`JobConsumer::cancel`] or
    /// by the broker, e.g. the queue was deleted); an error when the channel or connection
    /// failed, after which the stream ends (reconnect).
    pub async fn next(&mut self) -> Option<Result<Delivery, QueueError>> {
        match self.consumer.next().await? {
            Ok(d) => Some(Ok(Delivery::from_lapin(d, self.channel.clone()))),
            Err(e) => Some(Err(QueueError::Closed {
                what: "consumer",
                detail: format!("{} on {}: {e}", self.canceller.tag, self.queue),
            })),
        }
    }

    /// Stops receiving new deliveries (basic.cancel) for a graceful shutdown. Deliveries already
    /// handed out can still be acknowledged: the channel stays open while any of them, or this
    /// consumer, is alive.
    pub async fn cancel(&self) -> Result<(), QueueError> {
        self.canceller.cancel().await
    }

    /// A handle that cancels this consumer from another task (a signal handler) while this one
    /// is busy in [`JobConsumer::next`].
    pub fn canceller(&self) -> ConsumerCanceller {
        self.canceller.clone()
    }

    /// The queue consumed.
    pub fn queue(&self) -> &str {
        &self.queue
    }

    /// Closes the consumer's channel and waits for the broker's close-ok, once every delivery it
    /// handed out is settled. Dropping it instead closes the channel in the background, which
    /// races a connection close that follows (lapin then logs a spurious "Connection error …
    /// invalid channel state: Closing" at ERROR on every clean stop).
    pub async fn close(self) {
        if let Err(e) = self.channel.close(200, "consumer done".into()).await {
            debug!(queue = %self.queue, error = %e, "closing a consumer channel");
        }
    }
}

/// Cancels a [`JobConsumer`] from anywhere; see [`JobConsumer::canceller`].
#[derive(Clone)]
pub struct ConsumerCanceller {
    channel: Channel,
    tag: String,
    queue: String,
}

impl fmt::Debug for ConsumerCanceller {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConsumerCanceller").field("queue", &self.queue).field("tag", &self.tag).finish()
    }
}

impl ConsumerCanceller {
    /// Sends basic.cancel and waits for the broker's cancel-ok. Cancelling twice is harmless.
    pub async fn cancel(&self) -> Result<(), QueueError> {
        if !self.channel.status().connected() {
            return Err(QueueError::Closed { what: "channel", detail: format!("cannot cancel consumer {}", self.tag) });
        }
        self.channel.basic_cancel(self.tag.as_str().into(), BasicCancelOptions::default()).await.map_err(|source| {
            QueueError::Channel {
                what: format!("basic.cancel {} on {}", self.tag, self.queue),
                source: Box::new(source),
            }
        })?;
        info!(queue = %self.queue, tag = %self.tag, "consumer cancelled");
        Ok(())
    }
}

/// One job as delivered, with what the worker needs from the AMQP envelope.
#[derive(Debug)]
pub struct Delivery {
    /// The message body (the job JSON, unparsed).
    pub body: Vec<u8>,
    /// AMQP `message_id` (the job id by contract; the fallback `job_id` when the body does not
    /// parse, §5).
    pub message_id: Option<String>,
    /// AMQP `correlation_id`, if the producer set one.
    pub correlation_id: Option<String>,
    /// Routing key it was published with (`upload` or `reprocess`).
    pub routing_key: String,
    /// The broker's redelivered flag: this message was delivered before (possibly processed).
    pub redelivered: bool,
    /// `x-delivery-count` of quorum queues: how many times it was returned before (absent on a
    /// first delivery). The job is dead-lettered once this exceeds the delivery limit.
    pub delivery_count: Option<u64>,
    /// Acknowledges this delivery; movable to another task.
    pub acker: Acker,
}

impl Delivery {
    fn from_lapin(d: lapin::message::Delivery, channel: Channel) -> Delivery {
        let props = &d.properties;
        let delivery_count =
            props.headers().as_ref().and_then(|h| h.inner().get("x-delivery-count").and_then(amqp_int));
        Delivery {
            message_id: props.message_id().as_ref().map(|s| s.as_str().to_owned()),
            correlation_id: props.correlation_id().as_ref().map(|s| s.as_str().to_owned()),
            routing_key: d.routing_key.as_str().to_owned(),
            redelivered: d.redelivered,
            delivery_count,
            acker: Acker { inner: d.acker, delivery_tag: d.delivery_tag, _channel: channel },
            body: d.data,
        }
    }
}

fn amqp_int(v: &AMQPValue) -> Option<u64> {
    match v {
        AMQPValue::ShortShortInt(n) => u64::try_from(*n).ok(),
        AMQPValue::ShortShortUInt(n) => Some(u64::from(*n)),
        AMQPValue::ShortInt(n) => u64::try_from(*n).ok(),
        AMQPValue::ShortUInt(n) => Some(u64::from(*n)),
        AMQPValue::LongInt(n) => u64::try_from(*n).ok(),
        AMQPValue::LongUInt(n) => Some(u64::from(*n)),
        AMQPValue::LongLongInt(n) => u64::try_from(*n).ok(),
        AMQPValue::Timestamp(n) => Some(*n),
        _ => None,
    }
}

/// Acknowledges one delivery. `Send + Sync + 'static`, so the worker acks from the task that
/// processed the job; it keeps the channel open until used or dropped. Single use: after the
/// first ack/nack/reject the others return [`QueueError::AlreadyAcked`].
#[derive(Debug)]
pub struct Acker {
    inner: lapin::Acker,
    delivery_tag: u64,
    /// Keeps the channel alive while a delivery is in flight, even after the consumer is gone.
    _channel: Channel,
}

impl Acker {
    /// Done: the job's outputs are stored and its verdict confirmed; the broker forgets it.
    pub async fn ack(&self) -> Result<(), QueueError> {
        let r = self.inner.ack(BasicAckOptions::default()).await;
        self.finish("ack", r)
    }

    /// Not done. `requeue = true` returns it to the queue (counts towards the delivery limit);
    /// `false` dead-letters it to `mediagate.dead` at once.
    pub async fn nack(&self, requeue: bool) -> Result<(), QueueError> {
        let r = self.inner.nack(BasicNackOptions { requeue, ..Default::default() }).await;
        self.finish(if requeue { "nack+requeue" } else { "nack" }, r)
    }

    /// Same effect as [`Acker::nack`] for a single message (basic.reject), for symmetry with
    /// producers' tooling.
    pub async fn reject(&self, requeue: bool) -> Result<(), QueueError> {
        let r = self.inner.reject(BasicRejectOptions { requeue }).await;
        self.finish(if requeue { "reject+requeue" } else { "reject" }, r)
    }

    /// The delivery's tag on its channel, for logs.
    pub fn delivery_tag(&self) -> u64 {
        self.delivery_tag
    }

    fn finish(&self, what: &'static str, r: lapin::Result<bool>) -> Result<(), QueueError> {
        match r {
            Ok(true) => {
                debug!(delivery_tag = self.delivery_tag, what, "acknowledged");
                Ok(())
            }
            Ok(false) if self.inner.poisoned() => Err(QueueError::Closed {
                what: "channel",
                detail: format!("cannot {what} delivery {}: the broker will redeliver it", self.delivery_tag),
            }),
            Ok(false) => Err(QueueError::AlreadyAcked { delivery_tag: self.delivery_tag }),
            Err(source) => Err(QueueError::Ack { delivery_tag: self.delivery_tag, source: Box::new(source) }),
        }
    }
}

/// Publishes verdicts and waits for the broker's confirm. Cheap to clone; safe to use from many
/// tasks at once (each publish waits for its own confirm).
#[derive(Clone)]
pub struct VerdictPublisher {
    channel: Channel,
}

impl fmt::Debug for VerdictPublisher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerdictPublisher").field("channel", &self.channel.id()).finish()
    }
}

impl VerdictPublisher {
    /// Closes the publisher's channel and waits for the broker (see [`JobConsumer::close`]);
    /// clones still held elsewhere can no longer publish.
    pub async fn close(&self) {
        if let Err(e) = self.channel.close(200, "publisher done".into()).await {
            debug!(error = %e, "closing the verdict publisher's channel");
        }
    }

    /// Publishes a verdict to `mediagate.verdicts` with `routing_key` (the contract's
    /// `verdict.<status>`: the caller's `JobStatus::routing_key`, this crate knows no verdicts),
    /// persistent, `application/json`, `message_id` and `correlation_id` = `job_id` when known.
    /// Returns once the broker has confirmed it; a nack or an unroutable return is an error (the
    /// job must not be acked then).
    pub async fn publish(&self, job_id: Option<&str>, routing_key: &str, body: Vec<u8>) -> Result<(), QueueError> {
        let mut props = persistent_json();
        if let Some(id) = job_id {
            props = props.with_message_id(id.into()).with_correlation_id(id.into());
        }
        publish_confirmed(&self.channel, names::VERDICTS_EXCHANGE, routing_key, &body, props).await?;
        debug!(job_id, routing_key, bytes = body.len(), "verdict confirmed");
        Ok(())
    }
}

/// Publishes jobs and waits for the broker's confirm. Cheap to clone.
#[derive(Clone)]
pub struct JobPublisher {
    channel: Channel,
}

impl fmt::Debug for JobPublisher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JobPublisher").field("channel", &self.channel.id()).finish()
    }
}

impl JobPublisher {
    /// Publishes a job to `mediagate.jobs` with `routing_key` ([`names::UPLOAD_KEY`] or
    /// [`names::REPROCESS_KEY`]), persistent, `application/json`, `message_id = job_id`,
    /// mandatory. Returns once confirmed; [`QueueError::Unroutable`] when no queue is bound
    /// (the worker never declared the topology).
    pub async fn publish(&self, routing_key: &str, job_id: &str, body: Vec<u8>) -> Result<(), QueueError> {
        let props = persistent_json().with_message_id(job_id.into());
        publish_confirmed(&self.channel, names::JOBS_EXCHANGE, routing_key, &body, props).await?;
        debug!(job_id, routing_key, bytes = body.len(), "job confirmed");
        Ok(())
    }
}

fn persistent_json() -> BasicProperties {
    BasicProperties::default().with_delivery_mode(2).with_content_type(names::CONTENT_TYPE.into())
}

async fn publish_confirmed(
    ch: &Channel,
    exchange: &str,
    routing_key: &str,
    body: &[u8],
    props: BasicProperties,
) -> Result<(), QueueError> {
    let err = |source: lapin::Error| QueueError::Publish {
        exchange: exchange.to_owned(),
        routing_key: routing_key.to_owned(),
        source: Box::new(source),
    };
    let confirm = ch
        .basic_publish(
            exchange.into(),
            ShortString::from(routing_key),
            BasicPublishOptions { mandatory: true, ..Default::default() },
            body,
            props,
        )
        .await
        .map_err(err)?
        .await
        .map_err(err)?;
    match confirm {
        Confirmation::Ack(None) => Ok(()),
        Confirmation::Ack(Some(ret)) | Confirmation::Nack(Some(ret)) => Err(QueueError::Unroutable {
            exchange: exchange.to_owned(),
            routing_key: routing_key.to_owned(),
            reply: format!("{} {}", ret.reply_code, ret.reply_text.as_str()),
        }),
        Confirmation::Nack(None) => {
            Err(QueueError::Nacked { exchange: exchange.to_owned(), routing_key: routing_key.to_owned() })
        }
        Confirmation::NotRequested => Err(QueueError::Closed {
            what: "channel",
            detail: "publisher confirms are not enabled on this channel".into(),
        }),
    }
}

/// A verdict as seen by a listener.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReceivedVerdict {
    /// The verdict JSON, unparsed.
    pub body: Vec<u8>,
    /// The job id (`correlation_id`), when the verdict has one.
    pub correlation_id: Option<String>,
    /// `message_id` (also the job id).
    pub message_id: Option<String>,
    /// `verdict.<status>`.
    pub routing_key: String,
}

/// Receives verdicts on a private queue; see [`Broker::verdict_listener`].
pub struct VerdictListener {
    _channel: Channel,
    consumer: lapin::Consumer,
    queue: String,
}

impl fmt::Debug for VerdictListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerdictListener").field("queue", &self.queue).finish()
    }
}

impl VerdictListener {
    /// The next verdict, or `Ok(None)` if none arrives within `timeout`.
    pub async fn next(&mut self, timeout: Duration) -> Result<Option<ReceivedVerdict>, QueueError> {
        match tokio::time::timeout(timeout, self.consumer.next()).await {
            Err(_) => Ok(None),
            Ok(None) => Err(QueueError::Closed {
                what: "consumer",
                detail: format!("listener on {} was cancelled", self.queue),
            }),
            Ok(Some(Err(e))) => {
                Err(QueueError::Closed { what: "consumer", detail: format!("listener on {}: {e}", self.queue) })
            }
            Ok(Some(Ok(d))) => Ok(Some(ReceivedVerdict {
                correlation_id: d.properties.correlation_id().as_ref().map(|s| s.as_str().to_owned()),
                message_id: d.properties.message_id().as_ref().map(|s| s.as_str().to_owned()),
                routing_key: d.routing_key.as_str().to_owned(),
                body: d.data,
            })),
        }
    }

    /// The first verdict whose `correlation_id` is `job_id`, skipping others, or `Ok(None)`
    /// once `timeout` has passed in total.
    pub async fn wait_for(&mut self, job_id: &str, timeout: Duration) -> Result<Option<ReceivedVerdict>, QueueError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            match self.next(left).await? {
                Some(v) if v.correlation_id.as_deref() == Some(job_id) => return Ok(Some(v)),
                Some(v) => {
                    debug!(want = job_id, got = ?v.correlation_id, "skipping another job's verdict")
                }
                None => return Ok(None),
            }
        }
    }

    /// The server-generated name of the private queue.
    pub fn queue(&self) -> &str {
        &self.queue
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_redacted() {
        assert_eq!(redact_url("amqp://guest:secret@127.0.0.1:5672/%2f"), "amqp://guest:***@127.0.0.1:5672/%2f");
        assert_eq!(redact_url("amqp://127.0.0.1"), "amqp://127.0.0.1");
        assert_eq!(redact_url("amqps://u@h/v"), "amqps://u@h/v");
    }

    #[test]
    fn job_queue_arguments_match_the_contract() {
        let t = job_queue_arguments();
        let m = t.inner();
        assert_eq!(m.get("x-queue-type"), Some(&AMQPValue::LongString("quorum".into())));
        assert_eq!(m.get("x-delivery-limit"), Some(&AMQPValue::LongLongInt(5)));
        assert_eq!(m.get("x-dead-letter-exchange"), Some(&AMQPValue::LongString("mediagate.dead".into())));
        assert_eq!(m.len(), 3);
        let v = verdicts_queue_arguments();
        assert_eq!(v.inner().get("x-message-ttl"), Some(&AMQPValue::LongLongInt(604_800_000)));
    }

    #[test]
    fn delivery_count_reads_any_integer() {
        assert_eq!(amqp_int(&AMQPValue::LongLongInt(3)), Some(3));
        assert_eq!(amqp_int(&AMQPValue::LongInt(-1)), None);
        assert_eq!(amqp_int(&AMQPValue::LongString("x".into())), None);
    }
}
