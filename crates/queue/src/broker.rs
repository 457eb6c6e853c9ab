//! The connection: connect, declare the §1 topology, open consumers, publishers and listeners.

use super::*;

/// How long [`Broker::connect`] waits for the broker before giving up.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// One AMQP connection. Each consumer and publisher opens its own channel on it, so a channel
/// error (a refused publish, say) does not take the others down.
pub struct Broker {
    pub(crate) conn: Connection,
    pub(crate) url: String,
}

impl fmt::Debug for Broker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Broker").field("url", &self.url).field("connected", &self.conn.status().connected()).finish()
    }
}

/// How an entity stands, from its passive declare (`exists`) and, when it exists, a declare with
/// the contract's type and arguments.
async fn stands<F: std::future::Future<Output = Result<(), QueueError>>>(
    exists: Result<(), QueueError>,
    declare: impl FnOnce() -> F,
) -> Result<Found, QueueError> {
    match exists {
        Err(e) if e.is_not_found() => Ok(Found::Absent),
        Err(e) => Err(e),
        Ok(()) => match declare().await {
            Ok(()) => Ok(Found::Matches),
            Err(e) if e.is_precondition_failed() => Ok(Found::Differs(e.to_string())),
            Err(e) => Err(e),
        },
    }
}

/// How long a topology check waits for each answer of the broker.
const CHECK_TIMEOUT: Duration = Duration::from_secs(15);

/// `op`, or [`QueueError::NoAnswer`] when the broker has not answered within [`CHECK_TIMEOUT`].
async fn answer<F: std::future::Future<Output = Result<(), QueueError>>>(what: &str, op: F) -> Result<(), QueueError> {
    tokio::time::timeout(CHECK_TIMEOUT, op)
        .await
        .unwrap_or_else(|_| Err(QueueError::NoAnswer { what: what.to_owned(), timeout: CHECK_TIMEOUT }))
}

/// How one exchange or queue of §1 stands on the broker ([`Broker::inspect_topology`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    /// It exists with the contract's type and arguments.
    Matches,
    /// It does not exist (the worker declares it at start-up).
    Absent,
    /// It exists with another type or other arguments: the broker's words.
    Differs(String),
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

    /// Declares contract §1 exactly: every exchange, queue and binding. Idempotent: declaring
    /// again with the same arguments is a no-op for the broker. Fails with PRECONDITION_FAILED if
    /// a queue exists with other arguments (which needs an operator: queues cannot be altered in
    /// place). Used by the worker at start-up and by `mediagate ensure-topology`; see
    /// [`Broker::declare_topology_each`] for one result per entity.
    pub async fn declare_topology(&self) -> Result<(), QueueError> {
        for (_, result) in self.declare_topology_each().await? {
            result?;
        }
        info!("RabbitMQ topology declared");
        Ok(())
    }

    /// Declares every exchange, queue and binding of contract §1 and says how each went, in
    /// declaration order (`exchange mediagate.jobs`, `queue mediagate.uploads`, `binding
    /// mediagate.uploads <- mediagate.jobs key "upload"`…). A refused declaration does not stop the
    /// others: each gets a channel of its own, since a refusal closes its channel (a binding
    /// whose queue was refused fails in turn, naming it). `Err` only when no channel opens.
    pub async fn declare_topology_each(&self) -> Result<Vec<(String, Result<(), QueueError>)>, QueueError> {
        let durable = ExchangeDeclareOptions { durable: true, ..Default::default() };
        let mut ch = self.channel("topology").await?;
        let mut done = Vec::new();
        for (name, kind) in contract_exchanges() {
            self.reopen(&mut ch).await?;
            done.push((format!("exchange {name}"), declare_exchange(&ch, name, kind, durable).await));
        }
        for (name, args) in contract_queues() {
            self.reopen(&mut ch).await?;
            done.push((format!("queue {name}"), declare_queue(&ch, name, args).await));
        }
        for (queue, exchange, key) in contract_bindings() {
            self.reopen(&mut ch).await?;
            done.push((binding_name(queue, exchange, key), bind(&ch, queue, exchange, key).await));
        }
        if ch.status().connected() {
            let _ = ch.close(200, "topology declared".into()).await;
        }
        Ok(done)
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
            declare_queue_passive(&ch, q).await?;
        }
        let _ = ch.close(200, "checked".into()).await;
        Ok(())
    }

    /// How each exchange and queue of §1 stands on the broker, declaring nothing that is
    /// missing (for `mediagate doctor`): a passive declare says whether it exists, and for one
    /// that does, a declare with the contract's type and arguments says whether they match (the
    /// broker refuses it with PRECONDITION_FAILED when they differ; it changes nothing when they
    /// match). Bindings are not checked: AMQP cannot list them (the worker binds at start-up).
    /// Each entity gets a channel of its own, since a refused declare closes its channel.
    pub async fn inspect_topology(&self) -> Result<Vec<(String, Found)>, QueueError> {
        let mut found = Vec::new();
        let passive = ExchangeDeclareOptions { passive: true, ..Default::default() };
        let durable = ExchangeDeclareOptions { durable: true, ..Default::default() };
        for (name, kind) in contract_exchanges() {
            let what = format!("the check of exchange {name}");
            let exists = answer(&what, async {
                declare_exchange(&self.channel("topology check").await?, name, kind.clone(), passive).await
            })
            .await;
            let state = stands(exists, || {
                answer(&what, async {
                    declare_exchange(&self.channel("topology check").await?, name, kind, durable).await
                })
            })
            .await?;
            found.push((format!("exchange {name}"), state));
        }
        for (name, args) in contract_queues() {
            let what = format!("the check of queue {name}");
            let exists =
                answer(&what, async { declare_queue_passive(&self.channel("topology check").await?, name).await })
                    .await;
            let state = stands(exists, || {
                answer(&what, async { declare_queue(&self.channel("topology check").await?, name, args).await })
            })
            .await?;
            found.push((format!("queue {name}"), state));
        }
        Ok(found)
    }

    /// A new channel in place of `ch` when a refused declaration closed it.
    async fn reopen(&self, ch: &mut Channel) -> Result<(), QueueError> {
        if !ch.status().connected() {
            *ch = self.channel("topology").await?;
        }
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
        Ok(VerdictPublisher::new(self.confirm_channel("verdict publisher").await?))
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
