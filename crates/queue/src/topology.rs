//! The exact arguments of contract §1's queues and the declare/bind calls that use them.

use super::*;

/// `x-queue-type=quorum`, `x-delivery-limit=5`, `x-dead-letter-exchange=mediagate.dead`.
pub(crate) fn job_queue_arguments() -> FieldTable {
    let mut t = quorum();
    t.insert("x-delivery-limit".into(), AMQPValue::LongLongInt(names::DELIVERY_LIMIT));
    t.insert("x-dead-letter-exchange".into(), AMQPValue::LongString(names::DEAD_EXCHANGE.into()));
    t
}

pub(crate) fn dead_queue_arguments() -> FieldTable {
    quorum()
}

pub(crate) fn verdicts_queue_arguments() -> FieldTable {
    let mut t = quorum();
    t.insert("x-message-ttl".into(), AMQPValue::LongLongInt(names::VERDICTS_TTL_MS));
    t
}

pub(crate) fn quorum() -> FieldTable {
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
        names::ESCALATIONS_QUEUE => Some(quorum()),
        _ => None,
    }
}

pub(crate) async fn declare_exchange(
    ch: &Channel,
    name: &str,
    kind: ExchangeKind,
    opts: ExchangeDeclareOptions,
) -> Result<(), QueueError> {
    ch.exchange_declare(name.into(), kind.clone(), opts, FieldTable::default()).await.map_err(|source| {
        QueueError::Topology { what: format!("exchange {name} ({kind:?})"), source: Box::new(source) }
    })
}

pub(crate) async fn declare_queue(ch: &Channel, name: &str, args: FieldTable) -> Result<(), QueueError> {
    ch.queue_declare(name.into(), QueueDeclareOptions { durable: true, ..Default::default() }, args)
        .await
        .map(|_| ())
        .map_err(|source| QueueError::Topology { what: format!("queue {name}"), source: Box::new(source) })
}

pub(crate) async fn bind(ch: &Channel, queue: &str, exchange: &str, key: &str) -> Result<(), QueueError> {
    ch.queue_bind(queue.into(), exchange.into(), key.into(), QueueBindOptions::default(), FieldTable::default())
        .await
        .map_err(|source| QueueError::Topology {
            what: format!("bind {queue} to {exchange} with {key:?}"),
            source: Box::new(source),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
