//! How a delivery ends: the one place the worker acknowledges or returns a job.
//!
//! Every delivery the worker takes ends in exactly one of these ways, each counted in
//! `mediagate_deliveries_total{lane, ending}` and logged with its `ending`:
//!
//! - `verdict`: acked after its verdict (and escalations) were confirmed by the broker. The
//!   [`Ending::Verdict`] variant holds the publisher's [`Confirmed`] receipt, which only
//!   `VerdictPublisher::publish` makes: a job cannot be acked "as done" without one.
//! - `superseded`: acked unprocessed, because a newer revision of the job is already stored.
//! - `requeued`: returned to its queue after a transient fault (the delivery limit applies).
//! - `dead_lettered`: a job the broker dead-lettered after its delivery limit, acked from
//!   `mediagate.dead` after its `failed` verdict was confirmed (lane `dead`).
//! - `channel_closed`: the ack or requeue could not be sent because the delivery's channel (or
//!   the connection) closed first; the broker redelivers the job by itself.

use mediagate_queue::{Confirmed, Delivery, QueueError};
use tracing::{error, info, warn};

use crate::metrics::{label, Metrics};

/// How the worker means a delivery to end.
#[derive(Debug)]
pub(crate) enum Ending {
    /// Its verdict was confirmed: ack.
    Verdict(Confirmed),
    /// A newer revision is stored: ack without processing.
    Superseded,
    /// A transient fault: back to the queue.
    Requeued,
    /// A dead-lettered job whose `failed` verdict was confirmed: ack it from `mediagate.dead`.
    DeadLettered(Confirmed),
}

impl Ending {
    pub(crate) fn label(&self) -> label::Ending {
        match self {
            Ending::Verdict(_) => label::Ending::Verdict,
            Ending::Superseded => label::Ending::Superseded,
            Ending::Requeued => label::Ending::Requeued,
            Ending::DeadLettered(_) => label::Ending::DeadLettered,
        }
    }
}

/// Settles `delivery` as `ending` says, then counts and logs how it really ended.
pub(crate) async fn finish(metrics: &Metrics, delivery: &Delivery, lane: label::Lane, ending: Ending) {
    let result = match &ending {
        Ending::Verdict(_) | Ending::Superseded | Ending::DeadLettered(_) => delivery.acker.ack().await,
        Ending::Requeued => delivery.acker.nack(true).await,
    };
    let intended = ending.label();
    let message_id = delivery.message_id.as_deref().unwrap_or("");
    let delivery_tag = delivery.acker.delivery_tag();
    match result {
        Ok(()) => {
            metrics.delivery(lane, intended);
            info!(lane = lane.as_str(), ending = intended.as_str(), message_id, delivery_tag, "delivery settled");
        }
        Err(e @ (QueueError::Closed { .. } | QueueError::Ack { .. })) => {
            metrics.delivery(lane, label::Ending::ChannelClosed);
            warn!(
                lane = lane.as_str(),
                ending = label::Ending::ChannelClosed.as_str(),
                intended = intended.as_str(),
                message_id,
                delivery_tag,
                error = %e,
                "delivery not settled: its channel closed first; the broker redelivers it (a repeat is idempotent)"
            );
        }
        Err(e) => {
            // Settling twice is a bug of ours, not an ending: loud, and not counted.
            error!(lane = lane.as_str(), intended = intended.as_str(), message_id, delivery_tag, error = %e, "delivery settled twice");
        }
    }
}

#[cfg(test)]
mod tests {
    /// The worker's non-test code acks and returns deliveries here and nowhere else, so the
    /// one place that needs a `Confirmed` receipt to ack is the only way to ack.
    #[test]
    fn deliveries_are_settled_only_here() {
        let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut offenders = Vec::new();
        let mut stack = vec![src];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).expect("read src") {
                let path = entry.expect("entry").path();
                if path.is_dir() {
                    stack.push(path);
                    continue;
                }
                if path.file_name().is_some_and(|n| n == "settle.rs") || path.extension().is_none_or(|e| e != "rs") {
                    continue;
                }
                let text = std::fs::read_to_string(&path).expect("read");
                // Only the code before a file's unit tests counts.
                let code = text.split("#[cfg(test)]").next().unwrap_or("");
                for needle in ["acker.ack(", "acker.nack(", "acker.reject("] {
                    if code.contains(needle) {
                        offenders.push(format!("{} calls {needle}", path.display()));
                    }
                }
            }
        }
        assert!(offenders.is_empty(), "settle deliveries through settle::finish: {offenders:#?}");
    }
}
