//! Private verdict listeners: how `submit --wait` (and tests) see a job's verdict.

use super::*;

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
    pub(crate) _channel: Channel,
    pub(crate) consumer: lapin::Consumer,
    pub(crate) queue: String,
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
