//! Publishers that wait for the broker's confirm.

use std::sync::Arc;

use super::*;

/// The broker's confirm of a verdict, as a value: only [`VerdictPublisher::publish`] makes one,
/// after the broker confirmed the verdict without returning it. The worker's settling takes it
/// to acknowledge a job with a verdict, so "ack only after the verdict is confirmed" is a type
/// the compiler checks, not a habit.
#[derive(Debug)]
#[must_use = "a confirmed verdict is what allows the job to be acked"]
pub struct Confirmed {
    _private: (),
}

/// Publishes verdicts and waits for the broker's confirm. Cheap to clone; safe to use from many
/// tasks at once (each publish waits for its own confirm).
#[derive(Clone)]
pub struct VerdictPublisher {
    pub(crate) channel: Channel,
    /// The last nack (exchange, routing key) not yet reported by [`VerdictPublisher::nacked`].
    pub(crate) nacks: Arc<Nacks>,
}

impl fmt::Debug for VerdictPublisher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerdictPublisher").field("channel", &self.channel.id()).finish()
    }
}

impl VerdictPublisher {
    pub(crate) fn new(channel: Channel) -> VerdictPublisher {
        VerdictPublisher { channel, nacks: Arc::default() }
    }

    /// Resolves once the broker has nacked a publish of this publisher (or of a clone) since
    /// the last time it resolved. A nack without a return means the broker did not take the
    /// message, and a channel that is nacked once was seen to be nacked for minutes on end
    /// (RabbitMQ 3.10.8, a cluster node killed while its quorum queues elected leaders) while
    /// new connections published: the worker answers a nack by reconnecting.
    pub async fn nacked(&self) -> QueueError {
        loop {
            self.nacks.notify.notified().await;
            let last = self.nacks.last.lock().map(|mut l| l.take()).unwrap_or_default();
            if let Some((exchange, routing_key)) = last {
                return QueueError::Nacked { exchange, routing_key };
            }
        }
    }

    /// Closes the publisher's channel and waits for the broker (see [`JobConsumer::close`]);
    /// clones still held elsewhere can no longer publish.
    pub async fn close(&self) {
        if let Err(e) = self.channel.close(200, "publisher done".into()).await {
            debug!(error = %e, "closing the verdict publisher's channel");
        }
    }

    /// Publishes a verdict to `mediagate.verdicts` with `routing_key` (the contract's
    /// `verdict.<status>`: the caller's `JobStatus::routing_key`, this crate knows no verdicts),
    /// the arguments in [`JobPublisher::publish`]'s order,
    /// persistent, `application/json`, `message_id` and `correlation_id` = `job_id` when known.
    /// Returns once the broker has confirmed it, with the [`Confirmed`] receipt the worker needs
    /// to ack the job; a nack or an unroutable return is an error (the job must not be acked then).
    pub async fn publish(
        &self,
        routing_key: &str,
        job_id: Option<&str>,
        body: Vec<u8>,
    ) -> Result<Confirmed, QueueError> {
        let mut props = persistent_json();
        if let Some(id) = job_id {
            props = props.with_message_id(id.into()).with_correlation_id(id.into());
        }
        publish_confirmed(&self.channel, names::VERDICTS_EXCHANGE, routing_key, &body, props)
            .await
            .inspect_err(|e| self.note(e))?;
        debug!(job_id, routing_key, bytes = body.len(), "verdict confirmed");
        Ok(Confirmed { _private: () })
    }
}

impl VerdictPublisher {
    /// Publishes an escalation (§8) to `mediagate.escalations` with `routing_key`
    /// (`escalation.<reason>`), persistent, `application/json`, `correlation_id = job_id` and the
    /// caller's de-duplicating `message_id` (`{job_id}/{item_id}/{sha256}`); returns once the
    /// broker has confirmed it. On the verdicts' channel: the escalations of a job are
    /// confirmed before its verdict is published.
    pub async fn publish_escalation(
        &self,
        routing_key: &str,
        job_id: &str,
        message_id: &str,
        body: Vec<u8>,
    ) -> Result<(), QueueError> {
        let props = persistent_json().with_message_id(message_id.into()).with_correlation_id(job_id.into());
        publish_confirmed(&self.channel, names::ESCALATIONS_EXCHANGE, routing_key, &body, props)
            .await
            .inspect_err(|e| self.note(e))?;
        debug!(job_id, message_id, routing_key, bytes = body.len(), "escalation confirmed");
        Ok(())
    }
}

impl VerdictPublisher {
    /// Wakes [`VerdictPublisher::nacked`] on a nack (a permit is kept when nobody waits).
    fn note(&self, e: &QueueError) {
        if let QueueError::Nacked { exchange, routing_key } = e {
            if let Ok(mut last) = self.nacks.last.lock() {
                *last = Some((exchange.clone(), routing_key.clone()));
            }
            self.nacks.notify.notify_one();
        }
    }
}

/// Nacks seen by a [`VerdictPublisher`] and its clones.
#[derive(Default)]
pub(crate) struct Nacks {
    notify: tokio::sync::Notify,
    last: std::sync::Mutex<Option<(String, String)>>,
}

/// Publishes jobs and waits for the broker's confirm. Cheap to clone.
#[derive(Clone)]
pub struct JobPublisher {
    pub(crate) channel: Channel,
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

pub(crate) fn persistent_json() -> BasicProperties {
    BasicProperties::default().with_delivery_mode(2).with_content_type(names::CONTENT_TYPE.into())
}

pub(crate) async fn publish_confirmed(
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
