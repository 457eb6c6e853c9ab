//! A job's journey through mediagate, and the worker loop around it.
//!
//! This is the only crate that knows about concurrency, queues and storage at once: it takes
//! deliveries from the queue crate, applies the contract's rules, hands bytes to the media
//! crate off the async runtime, writes outputs and the manifest through the store crate, and
//! acknowledges a job only after its verdict is confirmed by the broker.

pub mod banks;
mod codes;
mod config;
pub mod health;
mod item;
mod job;
pub mod metrics;
mod settle;
mod storage;
mod window;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use mediagate_contract::{Job, JobStatus, Verdict};
use mediagate_queue::{names, Broker, Confirmed, Delivery, QueueError, VerdictPublisher};
use mediagate_store::Store;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tracing::{error, info, warn, Instrument};

pub use codes::{Cause, Requeue};
pub use config::{
    check_job_limits, check_range, BankSettings, InvalidSetting, MemoryPlan, WorkerConfig, DEFAULT_BANK_REFRESH_S,
    DEFAULT_MEMORY_MB, DEFAULT_METRICS_ADDR, DEFAULT_PDQ_MAX_DISTANCE, DEFAULT_PDQ_MIN_QUALITY,
};
pub use health::Readiness;
pub use job::{Escalation, Handled};
pub use storage::{LocalFiles, LOCAL_BUCKET};

use crate::metrics::label::{self, JobEnd, Timed};
use crate::metrics::Metrics;
use crate::settle::Ending;

/// State every job task shares.
pub(crate) struct Shared {
    pub config: WorkerConfig,
    /// S3 for the worker; a local directory for `inspect`.
    pub storage: storage::Storage,
    /// Told each item's stage, when someone watches (`inspect`'s spinner).
    pub progress: Option<Progress>,
    /// CPU slots: media work in the sandbox and classifier runs, across all jobs.
    pub slots: Arc<Semaphore>,
    /// Input bytes in hand across all items, in KiB: fetched sources waiting for or in a slot.
    pub input_budget: Arc<Semaphore>,
    /// The budget's size in KiB (an item never asks for more than all of it).
    pub input_budget_kib: u32,
    /// Gate reprocess items pass before taking a slot: `concurrency - 1` permits, so at least
    /// one slot is never held by reprocess work and a live job never waits behind a batch.
    pub reprocess_gate: Arc<Semaphore>,
    /// The nudity classifier, loaded once per worker before any job is taken.
    pub classifier: Arc<mediagate_classify::Classifier>,
    /// Where media work runs: a fresh, locked-down child process per item by default.
    pub sandbox: mediagate_sandbox::Sandbox,
    /// The hash banks in force (§8), refreshed in the background.
    pub banks: Arc<banks::HashBanks>,
    /// What the worker counts and times.
    pub metrics: Arc<Metrics>,
    /// Slot and wall time of live jobs, for the window of jobs in hand.
    pub window: window::WindowStats,
}

impl Shared {
    /// The state of a worker (or of a local run) with `config`'s slots and `memory`'s input
    /// budget: `concurrency` CPU slots, of which reprocess items may hold all but one.
    fn new(
        config: WorkerConfig,
        memory: &MemoryPlan,
        engines: Engines,
        storage: storage::Storage,
        progress: Option<Progress>,
    ) -> Shared {
        let concurrency = config.concurrency.max(1);
        // Inputs in hand: one per slot and one more waiting, each up to the input limit, within
        // the memory budget's share for them.
        let input_budget_kib = u32::try_from(memory.inputs_bytes.div_ceil(1024).max(1)).unwrap_or(u32::MAX);
        Shared {
            slots: Arc::new(Semaphore::new(concurrency)),
            input_budget: Arc::new(Semaphore::new(input_budget_kib as usize)),
            input_budget_kib,
            reprocess_gate: Arc::new(Semaphore::new(concurrency - 1)),
            classifier: engines.classifier,
            sandbox: engines.sandbox,
            banks: engines.banks,
            metrics: engines.metrics,
            window: window::WindowStats::default(),
            config,
            storage,
            progress,
        }
    }
}

/// Where a job came from: live traffic (`mediagate.uploads`) or a reprocess
/// (`mediagate.reprocess`, the contract's word for a batch run).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lane {
    /// `mediagate.uploads`.
    Live,
    /// `mediagate.reprocess`.
    Reprocess,
}

impl Lane {
    /// The lane's metric label.
    pub(crate) fn label(self) -> metrics::label::Lane {
        match self {
            Lane::Live => metrics::label::Lane::Live,
            Lane::Reprocess => metrics::label::Lane::Reprocess,
        }
    }

    pub(crate) fn queue(self) -> &'static str {
        match self {
            Lane::Live => names::UPLOADS_QUEUE,
            Lane::Reprocess => names::REPROCESS_QUEUE,
        }
    }
}

/// The stage an item is in, for a person watching it (`mediagate inspect`'s spinner).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Reading the source.
    Fetch,
    /// In the sandbox: identified, probed, decoded, processed, hashed.
    MediaWork,
    /// The nudity classifier on the returned frames.
    Classify,
    /// Writing the outputs.
    Store,
}

impl Stage {
    /// What a person reads.
    pub fn describe(self) -> &'static str {
        match self {
            Stage::Fetch => "reading",
            Stage::MediaWork => "decoding and processing in the sandbox",
            Stage::Classify => "scoring with the nudity classifier",
            Stage::Store => "writing outputs",
        }
    }
}

/// Told `(item_id, stage)` as an item moves on.
pub type Progress = Arc<dyn Fn(&str, Stage) + Send + Sync>;

/// Why the worker loop stopped other than by a requested shutdown.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// The broker connection failed or closed; the caller may reconnect and run again.
    #[error("broker: {0}")]
    Broker(#[from] QueueError),
    /// A setting the worker cannot run with (the binary validates first, so only a caller that
    /// skipped `WorkerConfig::validate` sees it).
    #[error("{0}")]
    Setting(#[from] InvalidSetting),
}

/// How long a job that hit a transient fault waits before it is handed back to the broker,
/// so a failing dependency is not hammered by immediate redeliveries.
const TRANSIENT_BACKOFF: Duration = Duration::from_secs(2);

/// How long a job whose storage is unreachable is retried in place (not returned to the
/// broker, so an outage does not burn its delivery count) before it is handed back.
const STORAGE_OUTAGE_PATIENCE: Duration = Duration::from_secs(600);

/// What the worker processes with, loaded once by the binary before any job and kept across
/// broker reconnections.
#[derive(Clone)]
pub struct Engines {
    /// The nudity classifier.
    pub classifier: Arc<mediagate_classify::Classifier>,
    /// Where media work runs.
    pub sandbox: mediagate_sandbox::Sandbox,
    /// The hash banks in force, refreshed in the background.
    pub banks: Arc<banks::HashBanks>,
    /// Where the worker counts and times what it does (`/metrics` serves the same).
    pub metrics: Arc<Metrics>,
}

/// How long jobs in hand may go on after the broker connection was lost (their deliveries are
/// redelivered whatever they do; see the end of [`run`]).
const LOST_CONNECTION_GRACE: Duration = Duration::from_secs(30);

/// How often the worker loop tells [`Readiness::beat`] it is making progress.
const BEAT: Duration = Duration::from_secs(5);

/// How long a consumer's cancel may take once the loop stops (on a lost connection, lapin
/// answers at once; this only bounds a broker that no longer answers).
const CANCEL_TIMEOUT: Duration = Duration::from_secs(10);

/// `fut`, with a beat every [`BEAT`] while it runs: a wait that is the loop's work (jobs in hand
/// finishing), not a stall.
async fn beating<F: Future>(readiness: &Readiness, fut: F) -> F::Output {
    tokio::pin!(fut);
    let mut beat = tokio::time::interval(BEAT);
    loop {
        tokio::select! {
            out = &mut fut => return out,
            _ = beat.tick() => readiness.beat(),
        }
    }
}

/// The consumers of one connection: live uploads (and, while the window of jobs in hand changes,
/// the consumer it replaces, draining), dead letters, and reprocess jobs when a slot can be
/// spared.
struct Lanes {
    tag: String,
    uploads: mediagate_queue::JobConsumer,
    retiring: Option<mediagate_queue::JobConsumer>,
    dead: mediagate_queue::JobConsumer,
    reprocess: Option<mediagate_queue::JobConsumer>,
    /// The uploads consumer's prefetch: the most live jobs in hand.
    window: usize,
    resubscribed: u32,
    /// Where the window is shown (`mediagate_jobs_window`).
    metrics: Arc<Metrics>,
}

/// What the next event of a lane asks of the loop.
enum Next {
    /// A job to process on this lane.
    Job(Delivery, Lane),
    /// A job the broker dead-lettered: it gets its `failed` verdict.
    DeadLetter(Delivery),
    /// The retiring uploads consumer has drained.
    Retired,
    /// A consumer failed or was cancelled by the broker: the connection is done.
    Stop(QueueError),
}

impl Lanes {
    /// Opens every lane's consumer. Twice the slots of live jobs to start with: the next jobs'
    /// downloads (and the last ones' uploads) overlap with the media work in the slots; then as
    /// many as keep the slots busy (`window`). Reprocess jobs only ever get spare capacity:
    /// never the last slot, and a prefetch that holds no more batch jobs than the slots they
    /// may use.
    async fn open(broker: &Broker, config: &WorkerConfig, metrics: Arc<Metrics>) -> Result<Lanes, QueueError> {
        let window = (config.concurrency.max(1) * 2).min(window::MAX_WINDOW);
        let tag = format!("mediagate-{}", config.worker_id);
        let uploads = broker.consumer(Lane::Live.queue(), window as u16, &tag).await?;
        metrics.window.set(window as i64);
        let dead = broker.consumer(names::DEAD_QUEUE, 1, &format!("{tag}-dead")).await?;
        let reprocess_slots = config.concurrency.max(1) - 1;
        let reprocess = if reprocess_slots > 0 {
            let prefetch = u16::try_from(reprocess_slots).unwrap_or(u16::MAX);
            Some(broker.consumer(Lane::Reprocess.queue(), prefetch, &format!("{tag}-reprocess")).await?)
        } else {
            warn!("MEDIAGATE_CONCURRENCY is 1: this worker keeps its one slot for live traffic and does not take reprocess jobs");
            None
        };
        Ok(Lanes { tag, uploads, retiring: None, dead, reprocess, window, resubscribed: 0, metrics })
    }

    /// The next event of any lane.
    async fn next(&mut self) -> Next {
        let cancelled = |which: &str| {
            Next::Stop(QueueError::Closed {
                what: "consumer",
                detail: format!("the {which} consumer was cancelled by the broker"),
            })
        };
        tokio::select! {
            next = next_or_pending(self.retiring.as_mut()) => match next {
                Some(Ok(delivery)) => Next::Job(delivery, Lane::Live),
                Some(Err(e)) => Next::Stop(e),
                // Drained: its channel closes once the last of its deliveries is settled.
                None => {
                    self.retiring = None;
                    Next::Retired
                }
            },
            next = self.uploads.next() => match next {
                Some(Ok(delivery)) => Next::Job(delivery, Lane::Live),
                Some(Err(e)) => Next::Stop(e),
                None => cancelled("uploads"),
            },
            next = next_or_pending(self.reprocess.as_mut()) => match next {
                Some(Ok(delivery)) => Next::Job(delivery, Lane::Reprocess),
                Some(Err(e)) => Next::Stop(e),
                None => cancelled("reprocess"),
            },
            next = self.dead.next() => match next {
                Some(Ok(delivery)) => Next::DeadLetter(delivery),
                Some(Err(e)) => Next::Stop(e),
                None => cancelled("dead-letter"),
            },
        }
    }

    /// Changes the window of live jobs in hand to `next`: a new uploads consumer with that
    /// prefetch, then the old one cancelled, left to drain (see `window`).
    async fn resize(&mut self, broker: &Broker, next: usize) -> Result<(), QueueError> {
        self.resubscribed += 1;
        let tag = format!("{}-w{}", self.tag, self.resubscribed);
        let new = broker.consumer(Lane::Live.queue(), next as u16, &tag).await?;
        info!(from = self.window, to = next, "window of live jobs in hand changed");
        let old = std::mem::replace(&mut self.uploads, new);
        old.cancel().await?;
        self.retiring = Some(old);
        self.window = next;
        self.metrics.window.set(next as i64);
        Ok(())
    }

    /// Stops taking jobs: every consumer cancelled (each within [`CANCEL_TIMEOUT`]).
    async fn cancel(&self) {
        let consumers = [Some(&self.uploads), self.retiring.as_ref(), Some(&self.dead), self.reprocess.as_ref()];
        for c in consumers.into_iter().flatten() {
            let _ = tokio::time::timeout(CANCEL_TIMEOUT, c.cancel()).await;
        }
    }

    /// Closes the channels before the caller closes the connection (a channel still closing in
    /// the background when the connection goes makes lapin log an ERROR on a clean stop).
    async fn close(self) {
        let Lanes { uploads, retiring, dead, reprocess, .. } = self;
        for c in [Some(uploads), retiring, Some(dead), reprocess].into_iter().flatten() {
            c.close().await;
        }
    }
}

/// Lets the jobs in hand finish. After a requested stop (`clean`) every one of them does, its
/// verdict published and its delivery settled. After a lost connection they can no longer be
/// acknowledged on it, and the broker redelivers every one: they get a while to publish their
/// verdicts, then the rest are let go rather than waited for on a settlement the dead
/// connection will never answer, so the worker reconnects.
async fn finish_in_hand(tasks: &mut JoinSet<()>, readiness: &Readiness, clean: bool) {
    let in_flight = tasks.len();
    if in_flight > 0 {
        info!(in_flight, "finishing jobs in hand before stopping");
    }
    if clean {
        beating(readiness, async { while tasks.join_next().await.is_some() {} }).await;
        return;
    }
    let grace = tokio::time::timeout(LOST_CONNECTION_GRACE, async { while tasks.join_next().await.is_some() {} });
    if beating(readiness, grace).await.is_err() {
        warn!(
            remaining = tasks.len(),
            grace_s = LOST_CONNECTION_GRACE.as_secs(),
            "jobs in hand not finished after the broker connection was lost; abandoning them (the broker redelivers them)"
        );
        tasks.abort_all();
        while tasks.join_next().await.is_some() {}
    }
}

/// The worker's state for one connection: the memory budget logged, the slots counted.
fn start(config: WorkerConfig, store: Store, engines: Engines) -> Result<Arc<Shared>, WorkerError> {
    let memory = config.memory()?;
    info!(
        total_mb = memory.total_mb,
        worker_mb = memory.worker_mb,
        inputs_mb = memory.inputs_bytes >> 20,
        child_mb = memory.child_mb,
        children = memory.children,
        "memory budget"
    );
    let concurrency = config.concurrency.max(1);
    engines.metrics.slots.set(i64::try_from(concurrency).unwrap_or(i64::MAX));
    let shared = Arc::new(Shared::new(config, &memory, engines, storage::Storage::s3(store), None));
    info!(concurrency, reprocess_slots = concurrency - 1, worker_id = %shared.config.worker_id, "worker consuming");
    Ok(shared)
}

/// Consumes and processes jobs until `shutdown` resolves, then stops taking new jobs, lets the
/// jobs in hand finish (their verdicts published, deliveries acked) and returns `Ok`. `Err`
/// when the connection is lost (or a verdict was nacked): the caller reconnects.
pub async fn run(
    config: WorkerConfig,
    store: Store,
    engines: Engines,
    broker: &Broker,
    readiness: Arc<Readiness>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), WorkerError> {
    broker.declare_topology().await?;
    let publisher = broker.verdict_publisher().await?;
    let mut lanes = Lanes::open(broker, &config, engines.metrics.clone()).await?;
    let shared = start(config, store, engines)?;
    let concurrency = shared.config.concurrency.max(1);
    readiness.broker.store(true, std::sync::atomic::Ordering::Relaxed);

    let mut tasks = JoinSet::new();
    let mut beat = tokio::time::interval(BEAT);
    let mut tick = tokio::time::interval(Duration::from_secs(2));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(shutdown);
    let outcome = loop {
        tokio::select! {
            _ = &mut shutdown => break Ok(()),
            _ = beat.tick() => readiness.beat(),
            _ = tick.tick(), if lanes.retiring.is_none() => {
                if let Some(next) = shared.window.proposal(concurrency, lanes.window) {
                    if let Err(e) = lanes.resize(broker, next).await {
                        break Err(WorkerError::Broker(e));
                    }
                }
            },
            next = lanes.next() => match next {
                Next::Job(delivery, lane) => {
                    tasks.spawn(job_task(shared.clone(), publisher.clone(), delivery, lane));
                }
                Next::DeadLetter(delivery) => {
                    tasks.spawn(dead_letter_task(shared.clone(), publisher.clone(), delivery));
                }
                Next::Retired => {}
                Next::Stop(e) => break Err(WorkerError::Broker(e)),
            },
            // A nacked verdict: the broker did not take it, and this connection's channel may go
            // on being nacked (seen for minutes after a cluster node was killed); the jobs in hand
            // finish on it, then the caller reconnects, to another node first.
            e = publisher.nacked() => {
                warn!(error = %e, "the broker nacked a verdict or escalation; reconnecting after the jobs in hand");
                break Err(WorkerError::Broker(e));
            },
            // Reap finished tasks so the set does not grow with the worker's lifetime.
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
        }
    };
    readiness.broker.store(false, std::sync::atomic::Ordering::Relaxed);
    lanes.cancel().await;
    finish_in_hand(&mut tasks, &readiness, outcome.is_ok()).await;
    if outcome.is_ok() {
        lanes.close().await;
        publisher.close().await;
    }
    outcome
}

/// Runs one job to its verdict on this machine, with no broker and no S3 (`mediagate inspect`,
/// contract §7): its sources are `local`'s files (item `i`'s source key is `i`), its outputs
/// are written under `local`'s directory, and nothing else is stored (no manifest, no
/// quarantine copy; escalations are not published). Everything else is the worker's own code:
/// the rules, one sandbox call per item, the banks, the classifier, the verdict. The caller
/// leaves rule 5 to pass by naming [`LOCAL_BUCKET`] as the job's source bucket and the only
/// source bucket in `config`.
pub async fn run_local(
    config: WorkerConfig,
    engines: Engines,
    local: LocalFiles,
    job: &Job,
    progress: Option<Progress>,
) -> Result<Verdict, Requeue> {
    let memory = config.memory().map_err(|e| Requeue::internal(e.to_string()))?;
    let shared = Arc::new(Shared::new(config, &memory, engines, storage::Storage::local(local), progress));
    let body = serde_json::to_vec(job).map_err(|e| Requeue::internal(format!("serialising the job: {e}")))?;
    match job::handle_delivery(shared, &body, None, Lane::Live, false).await? {
        job::Handled::Verdict { verdict, .. } => Ok(*verdict),
        job::Handled::Superseded { .. } => Err(Requeue::internal("a local job cannot be superseded")),
    }
}

/// One worker's job path without a broker: what [`run`] does with each delivery's body up to
/// its verdict — the rules, the fetch, the sandbox, the banks, the classifier, outputs,
/// quarantine and manifest — on files of this machine ([`LocalFiles`]). Publishing the verdict
/// and settling the delivery stay [`run`]'s. The worker's own tests drive it on
/// [`LocalFiles::buckets`], where every record is kept as S3 would keep it.
pub struct JobPath {
    shared: Arc<Shared>,
}

impl JobPath {
    /// The job path of a worker with `config` and `engines`, its objects in `files`.
    pub fn local(config: WorkerConfig, engines: Engines, files: LocalFiles) -> Result<JobPath, InvalidSetting> {
        let memory = config.memory()?;
        Ok(JobPath { shared: Arc::new(Shared::new(config, &memory, engines, storage::Storage::local(files), None)) })
    }

    /// Handles one delivery's `body` (with its AMQP `message_id`, on `lane`, redelivered or
    /// not) as [`run`] would: `Err` sends the delivery back to its queue.
    pub async fn handle(
        &self,
        body: &[u8],
        message_id: Option<&str>,
        lane: Lane,
        redelivered: bool,
    ) -> Result<Handled, Requeue> {
        job::handle_delivery(self.shared.clone(), body, message_id, lane, redelivered).await
    }

    /// The `failed` verdict of a job dead-lettered after its delivery limit (`body` as it
    /// arrives on `mediagate.dead`), its manifest written, as [`run`] makes it before publishing.
    pub async fn dead_lettered(&self, body: &[u8], message_id: Option<&str>) -> Result<Verdict, Requeue> {
        job::dead_lettered(&self.shared, body, message_id).await
    }
}

/// Processes one delivery and settles it: ack after the verdict is confirmed, requeue on a
/// transient fault (the quorum queue's delivery limit then applies).
async fn job_task(shared: Arc<Shared>, publisher: VerdictPublisher, delivery: Delivery, lane: Lane) {
    let span = tracing::info_span!(
        "job",
        lane = ?lane,
        message_id = delivery.message_id.as_deref().unwrap_or(""),
        redelivered = delivery.redelivered,
        delivery_count = delivery.delivery_count.unwrap_or(0),
    );
    async move {
        let started = std::time::Instant::now();
        shared.metrics.in_flight.inc();
        let outcome = handle_patiently(&shared, &delivery, lane, started).await;
        settle(&shared.metrics, &publisher, &delivery, lane, started, outcome).await;
        if lane == Lane::Live {
            shared.window.job(started.elapsed());
        }
        shared.metrics.in_flight.dec();
    }
    .instrument(span)
    .await
}

/// Whether a fault is retried in place rather than by returning the job to the broker: a store
/// outage is not the job's fault and must not count against its delivery limit, for a while.
fn retry_in_place(fault: &Requeue, in_hand: Duration) -> bool {
    fault.cause == Cause::Storage && in_hand < STORAGE_OUTAGE_PATIENCE
}

/// Handles the delivery, retrying in place with backoff while the store is down.
async fn handle_patiently(
    shared: &Arc<Shared>,
    delivery: &Delivery,
    lane: Lane,
    started: std::time::Instant,
) -> Result<job::Handled, Requeue> {
    let mut backoff = Duration::from_secs(1);
    loop {
        let message_id = delivery.message_id.as_deref();
        match job::handle_delivery(shared.clone(), &delivery.body, message_id, lane, delivery.redelivered).await {
            Err(fault) if retry_in_place(&fault, started.elapsed()) => {
                shared.metrics.retry(label::Retry::StorageInPlace);
                let retry_in_ms = backoff.as_millis() as u64;
                warn!(error = %fault, retry_in_ms, "storage unavailable; retrying the job in place");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(30));
            }
            other => return other,
        }
    }
}

/// Publishes the verdict of a handled delivery and settles it (`settle::finish`): acked once the
/// verdict is confirmed, acked as superseded, or requeued.
async fn settle(
    metrics: &Metrics,
    publisher: &VerdictPublisher,
    delivery: &Delivery,
    lane: Lane,
    started: std::time::Instant,
    outcome: Result<job::Handled, Requeue>,
) {
    let lane_label = lane.label();
    match outcome {
        Ok(job::Handled::Superseded { job_id, revision, stored_revision }) => {
            metrics.job_done(JobEnd::Superseded, lane_label);
            info!(%job_id, revision, stored_revision, "a newer revision of this job is stored; acked without processing");
            settle::finish(metrics, delivery, lane_label, Ending::Superseded).await;
        }
        Ok(job::Handled::Verdict { verdict: v, escalations }) => {
            let publish_timer = metrics::StageTimer::start(metrics, Timed::Publish);
            match publish_all(metrics, publisher, &escalations, &v).await {
                Ok(confirmed) => {
                    drop(publish_timer);
                    metrics.job_done(JobEnd::Verdict(v.status), lane_label);
                    metrics.job_seconds(lane_label, started.elapsed().as_secs_f64());
                    info!(
                        job_id = v.job_id.as_deref().unwrap_or(""),
                        status = v.status.as_str(),
                        items = v.items.len(),
                        ms = started.elapsed().as_millis() as u64,
                        "verdict published"
                    );
                    settle::finish(metrics, delivery, lane_label, Ending::Verdict(confirmed)).await;
                }
                Err(e) => {
                    metrics.retry(label::Retry::Publish);
                    warn!(error = %e, "verdict or escalation not confirmed; returning the job to the queue");
                    settle::finish(metrics, delivery, lane_label, Ending::Requeued).await;
                }
            }
        }
        Err(fault) => {
            metrics.retry(fault.cause.label());
            warn!(error = %fault, cause = fault.cause.as_str(), "transient fault; returning the job to the queue");
            tokio::time::sleep(TRANSIENT_BACKOFF).await;
            settle::finish(metrics, delivery, lane_label, Ending::Requeued).await;
        }
    }
}

/// A job dead-lettered after its delivery limit still gets its (`failed`) verdict.
async fn dead_letter_task(shared: Arc<Shared>, publisher: VerdictPublisher, delivery: Delivery) {
    let metrics = &shared.metrics;
    metrics.dead_lettered.inc();
    let confirmed = match job::dead_lettered(&shared, &delivery.body, delivery.message_id.as_deref()).await {
        Ok(verdict) => {
            error!(job_id = verdict.job_id.as_deref().unwrap_or(""), "job dead-lettered; publishing a failed verdict");
            publish(&publisher, &verdict).await.ok()
        }
        Err(e) => {
            warn!(error = %e, "cannot write a dead-lettered job's manifest; returning it to mediagate.dead");
            None
        }
    };
    match confirmed {
        Some(c) => {
            metrics.job_done(JobEnd::Verdict(JobStatus::Failed), label::Lane::Dead);
            settle::finish(metrics, &delivery, label::Lane::Dead, Ending::DeadLettered(c)).await
        }
        None => {
            tokio::time::sleep(TRANSIENT_BACKOFF).await;
            settle::finish(metrics, &delivery, label::Lane::Dead, Ending::Requeued).await;
        }
    }
}

/// The next delivery of an optional consumer; pending forever when there is none.
async fn next_or_pending(c: Option<&mut mediagate_queue::JobConsumer>) -> Option<Result<Delivery, QueueError>> {
    match c {
        Some(c) => c.next().await,
        None => std::future::pending().await,
    }
}

/// Publishes a job's escalations, each confirmed, then its verdict (§8: the job is acked only
/// after both are confirmed).
async fn publish_all(
    metrics: &Metrics,
    publisher: &VerdictPublisher,
    escalations: &[job::Escalation],
    verdict: &Verdict,
) -> Result<Confirmed, String> {
    for e in escalations {
        publisher
            .publish_escalation(names::ESCALATION_HASH_MATCHED_KEY, &e.job_id, &e.message_id, e.body.clone())
            .await
            .map_err(|err| {
                metrics.escalation_failures.inc();
                format!("escalation {} not confirmed: {err}", e.message_id)
            })?;
        metrics.escalation(label::Escalation::HashMatched);
    }
    publish(publisher, verdict).await
}

/// Publishes a verdict and waits for the broker's confirm.
async fn publish(publisher: &VerdictPublisher, verdict: &Verdict) -> Result<Confirmed, String> {
    let body = serde_json::to_vec(verdict).map_err(|e| format!("serialising the verdict: {e}"))?;
    publisher.publish(&verdict.status.routing_key(), verdict.job_id.as_deref(), body).await.map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_storage_outage_is_retried_in_place_and_only_for_a_while() {
        let storage = Requeue::storage("s3 down");
        assert!(retry_in_place(&storage, Duration::ZERO));
        assert!(retry_in_place(&storage, STORAGE_OUTAGE_PATIENCE - Duration::from_secs(1)));
        assert!(!retry_in_place(&storage, STORAGE_OUTAGE_PATIENCE));
        assert!(!retry_in_place(&Requeue::media("budget"), Duration::ZERO));
        assert!(!retry_in_place(&Requeue::internal("bug"), Duration::ZERO));
    }

    /// Each lane consumes the queue contract §1 names for it, and its label is one of the
    /// label values registered at start-up (an unregistered one would be a silent new series).
    #[test]
    fn each_lane_consumes_the_contracts_queue_under_a_registered_label() {
        assert_eq!(Lane::Live.queue(), "mediagate.uploads");
        assert_eq!(Lane::Reprocess.queue(), "mediagate.reprocess");
        // Dashboards and alerts select the lanes by these label values.
        assert_eq!(Lane::Live.label().as_str(), "live");
        assert_eq!(Lane::Reprocess.label().as_str(), "reprocess");
        assert!(metrics::label::Lane::ALL.contains(&Lane::Live.label()));
        assert!(metrics::label::Lane::ALL.contains(&Lane::Reprocess.label()));
    }
}
