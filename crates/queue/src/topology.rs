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

/// Contract §1's exchanges and their types, in declaration order.
pub(crate) fn contract_exchanges() -> [(&'static str, ExchangeKind); 4] {
    [
        (names::JOBS_EXCHANGE, ExchangeKind::Direct),
        (names::DEAD_EXCHANGE, ExchangeKind::Fanout),
        (names::VERDICTS_EXCHANGE, ExchangeKind::Topic),
        (names::ESCALATIONS_EXCHANGE, ExchangeKind::Topic),
    ]
}

/// Contract §1's queues and their exact arguments, in declaration order.
pub(crate) fn contract_queues() -> [(&'static str, FieldTable); 5] {
    [
        (names::UPLOADS_QUEUE, job_queue_arguments()),
        (names::REPROCESS_QUEUE, job_queue_arguments()),
        (names::DEAD_QUEUE, dead_queue_arguments()),
        (names::VERDICTS_QUEUE, verdicts_queue_arguments()),
        (names::ESCALATIONS_QUEUE, quorum()),
    ]
}

/// Contract §1's bindings as `(queue, exchange, routing key)`, in declaration order.
pub fn contract_bindings() -> [(&'static str, &'static str, &'static str); 5] {
    [
        (names::UPLOADS_QUEUE, names::JOBS_EXCHANGE, names::UPLOAD_KEY),
        (names::REPROCESS_QUEUE, names::JOBS_EXCHANGE, names::REPROCESS_KEY),
        (names::DEAD_QUEUE, names::DEAD_EXCHANGE, ""),
        (names::VERDICTS_QUEUE, names::VERDICTS_EXCHANGE, "#"),
        (names::ESCALATIONS_QUEUE, names::ESCALATIONS_EXCHANGE, "#"),
    ]
}

/// How a binding is named in reports: `binding mediagate.uploads <- mediagate.jobs key "upload"`.
pub fn binding_name(queue: &str, exchange: &str, key: &str) -> String {
    format!("binding {queue} <- {exchange} key {key:?}")
}

/// The exact arguments contract §1 gives a queue, for tools that must agree with the worker
/// (tests, migration scripts). `None` for a name that is not one of the contract's queues.
pub fn contract_queue_arguments(queue: &str) -> Option<FieldTable> {
    contract_queues().into_iter().find(|(name, _)| *name == queue).map(|(_, args)| args)
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

/// Declares `name` passively: an error with [`QueueError::is_not_found`] when it does not exist.
pub(crate) async fn declare_queue_passive(ch: &Channel, name: &str) -> Result<(), QueueError> {
    ch.queue_declare(name.into(), QueueDeclareOptions { passive: true, ..Default::default() }, FieldTable::default())
        .await
        .map(|_| ())
        .map_err(|source| QueueError::Topology { what: format!("queue {name} (passive)"), source: Box::new(source) })
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

    #[test]
    fn every_contract_queue_is_bound_once() {
        let queues: Vec<&str> = contract_queues().iter().map(|(q, _)| *q).collect();
        let bound: Vec<&str> = contract_bindings().iter().map(|(q, _, _)| *q).collect();
        assert_eq!(queues, bound, "each §1 queue has its one binding, in the same order");
    }
}
