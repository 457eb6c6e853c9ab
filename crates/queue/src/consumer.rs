//! Job consumers, their deliveries and acknowledgements.

use super::*;

/// A stream of job deliveries from one queue.
pub struct JobConsumer {
    pub(crate) channel: Channel,
    pub(crate) consumer: lapin::Consumer,
    pub(crate) canceller: ConsumerCanceller,
    pub(crate) queue: String,
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
    pub(crate) channel: Channel,
    pub(crate) tag: String,
    pub(crate) queue: String,
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

pub(crate) fn amqp_int(v: &AMQPValue) -> Option<u64> {
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
    pub(crate) inner: lapin::Acker,
    pub(crate) delivery_tag: u64,
    /// Keeps the channel alive while a delivery is in flight, even after the consumer is gone.
    pub(crate) _channel: Channel,
}

/// How long an ack, nack or reject may take to be handed to the connection. Over a connection
/// that died by a reset (a broker node killed outright) lapin can leave the settlement pending
/// for ever, and a worker finishing its jobs in hand would then never reconnect; past this the
/// channel is taken as closed, and the broker redelivers the job.
pub const SETTLE_TIMEOUT: Duration = Duration::from_secs(10);

impl Acker {
    /// Done: the job's outputs are stored and its verdict confirmed; the broker forgets it.
    pub async fn ack(&self) -> Result<(), QueueError> {
        let r = self.bounded("ack", self.inner.ack(BasicAckOptions::default())).await?;
        self.finish("ack", r)
    }

    /// Not done. `requeue = true` returns it to the queue (counts towards the delivery limit);
    /// `false` dead-letters it to `mediagate.dead` at once.
    pub async fn nack(&self, requeue: bool) -> Result<(), QueueError> {
        let what = if requeue { "nack+requeue" } else { "nack" };
        let r = self.bounded(what, self.inner.nack(BasicNackOptions { requeue, ..Default::default() })).await?;
        self.finish(what, r)
    }

    /// Same effect as [`Acker::nack`] for a single message (basic.reject), for symmetry with
    /// producers' tooling.
    pub async fn reject(&self, requeue: bool) -> Result<(), QueueError> {
        let what = if requeue { "reject+requeue" } else { "reject" };
        let r = self.bounded(what, self.inner.reject(BasicRejectOptions { requeue })).await?;
        self.finish(what, r)
    }

    /// `op` within [`SETTLE_TIMEOUT`], else the channel counts as closed.
    async fn bounded<F: std::future::Future<Output = lapin::Result<bool>>>(
        &self,
        what: &'static str,
        op: F,
    ) -> Result<lapin::Result<bool>, QueueError> {
        tokio::time::timeout(SETTLE_TIMEOUT, op).await.map_err(|_| QueueError::Closed {
            what: "channel",
            detail: format!(
                "cannot {what} delivery {}: no answer within {SETTLE_TIMEOUT:?}; the broker will redeliver it",
                self.delivery_tag
            ),
        })
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delivery_count_reads_any_integer() {
        assert_eq!(amqp_int(&AMQPValue::LongLongInt(3)), Some(3));
        assert_eq!(amqp_int(&AMQPValue::LongInt(-1)), None);
        assert_eq!(amqp_int(&AMQPValue::LongString("x".into())), None);
    }
}
