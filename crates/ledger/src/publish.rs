//! The publisher side: one confirm-mode channel shared by every publish, replaced when its
//! connection or channel dies, and the publish-and-confirm step `Ledger::publish` retries.

use std::sync::atomic::Ordering;
use std::time::Duration;

use lapin::options::BasicPublishOptions;
use lapin::{BasicProperties, Channel, Confirmation};
use mediagate_queue::names;

use crate::amqp::PubLink;
use crate::{checks, Inner, Lane, Published};

/// How long one publish waits for its confirm before the link is presumed dead.
const CONFIRM_TIMEOUT: Duration = Duration::from_secs(30);

/// The publisher's link, and the node it last used (tried last on reconnection).
#[derive(Default)]
pub(crate) struct Publisher {
    pub(crate) link: Option<PubLink>,
    pub(crate) last_url: Option<String>,
}

impl Inner {
    /// The publisher's channel, (re)connecting when the link is gone.
    pub(crate) async fn channel(&self) -> Result<(Channel, u64), String> {
        let mut p = self.publisher.lock().await;
        if let Some(link) = p.link.as_ref().filter(|l| l.usable()) {
            return Ok((link.channel.clone(), link.generation));
        }
        if let Some(old) = p.link.take() {
            p.last_url = Some(old.url.clone());
            self.close_quietly(old);
        }
        let generation = self.generation.fetch_add(1, Ordering::Relaxed) + 1;
        let (urls, last) = (self.cfg.amqp_urls.clone(), p.last_url.clone());
        let link = self
            .runtime
            .spawn(async move { PubLink::open(&urls, last.as_deref(), generation).await })
            .await
            .map_err(|e| format!("the connecting task failed: {e}"))??;
        let out = (link.channel.clone(), generation);
        p.link = Some(link);
        Ok(out)
    }

    /// Drops the link a failed publish used, unless another task already replaced it.
    async fn drop_link(&self, generation: u64) {
        let mut p = self.publisher.lock().await;
        if p.link.as_ref().is_some_and(|l| l.generation == generation) {
            if let Some(old) = p.link.take() {
                p.last_url = Some(old.url.clone());
                self.close_quietly(old);
            }
        }
    }

    /// Closes a replaced connection in the background: a dead one fails at once, a stuck one
    /// must not hold up the publisher.
    fn close_quietly(&self, link: PubLink) {
        self.runtime.spawn(async move {
            let _ =
                tokio::time::timeout(Duration::from_secs(2), link.conn.close(320, "ledger reconnecting".into())).await;
        });
    }

    /// One publish and its confirm.
    pub(crate) async fn publish_once(&self, job_id: &str, lane: Lane, body: &[u8]) -> Result<Published, String> {
        let (channel, generation) = self.channel().await?;
        let props = BasicProperties::default()
            .with_delivery_mode(2)
            .with_content_type(names::CONTENT_TYPE.into())
            .with_message_id(job_id.into());
        let mandatory = BasicPublishOptions { mandatory: true, ..Default::default() };
        let attempt = async {
            let exchange = names::JOBS_EXCHANGE.into();
            channel.basic_publish(exchange, lane.routing_key().into(), mandatory, body, props).await?.await
        };
        let outcome = tokio::time::timeout(CONFIRM_TIMEOUT, attempt).await;
        match outcome {
            Ok(Ok(Confirmation::Ack(None))) => Ok(Published::Confirmed),
            Ok(Ok(Confirmation::Ack(Some(_)) | Confirmation::Nack(Some(_)))) => Ok(Published::Returned),
            // A nack without a return: the broker did not take the job (a quorum queue without
            // its leader for a moment); a producer publishes it again, on a new connection: a
            // channel opened while a killed node's queues were electing leaders was seen to be
            // nacked for minutes on end (RabbitMQ 3.10.8), while new channels published.
            Ok(Ok(Confirmation::Nack(None))) => {
                self.drop_link(generation).await;
                Err("the broker nacked the job".into())
            }
            Ok(Err(e)) if checks::is_not_found(&e) => {
                // The exchange does not exist: the broker closed the channel; nothing was queued.
                self.drop_link(generation).await;
                Ok(Published::Returned)
            }
            other => {
                self.drop_link(generation).await;
                Err(match other {
                    Ok(Ok(_)) => "publisher confirms are not enabled on the channel".into(),
                    Ok(Err(e)) => e.to_string(),
                    Err(_) => format!("no confirm within {CONFIRM_TIMEOUT:?}"),
                })
            }
        }
    }
}
