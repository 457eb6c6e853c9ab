//! RabbitMQ for mediagate: the contract's topology (§1), the job consumer, and publishers that
//! wait for broker confirms.
//!
//! Built on lapin (plain AMQP 0-9-1); `management` reads what AMQP cannot tell (bindings, a
//! queue's unacknowledged count) from RabbitMQ's management HTTP API, for tools only. The rules this crate enforces so the worker cannot get them
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
//! Reconnection is left to the caller: when [`Broker::closed`] resolves, build a new [`Broker`]
//! with [`Broker::connect_any`], passing the lost one's [`Broker::url`] so another node is tried first.

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

mod broker;
mod consumer;
mod error;
mod listener;
mod management;
mod publisher;
mod topology;
mod urls;

pub use broker::*;
pub use consumer::*;
pub use error::*;
pub use listener::*;
pub use management::*;
pub use publisher::*;
pub use topology::*;
pub use urls::*;

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
    /// Topic exchange of escalations for the trust-and-safety team (§8), routing key
    /// `escalation.<reason>`.
    pub const ESCALATIONS_EXCHANGE: &str = "mediagate.escalations";
    /// Quorum queue (no TTL: kept until someone reads them) bound to [`ESCALATIONS_EXCHANGE`]
    /// with `#`.
    pub const ESCALATIONS_QUEUE: &str = "mediagate.escalations";
    /// Routing key of an escalation for a hash-bank match.
    pub const ESCALATION_HASH_MATCHED_KEY: &str = "escalation.hash_matched";
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
