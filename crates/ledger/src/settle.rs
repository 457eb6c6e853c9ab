//! [`Ledger::settle`]: wait for the last verdicts, wait for the queues to drain, then account.

use std::time::Duration;

use mediagate_queue::names;
use tokio::time::Instant;
use tracing::info;

use crate::checks::{self, Buckets, Depth, Management, Stats};
use crate::{account, Inner, Ledger, Report};

/// How often the queues are looked at.
const POLL: Duration = Duration::from_millis(500);
/// How long the queues must stay quiet, as the management API reports them, before they count
/// as drained: its figures are a statistics sample up to 5 s old (RabbitMQ's default
/// `collect_statistics_interval`), so one quiet sample can predate a redelivery or a late
/// duplicate verdict.
const QUIET_HOLD: Duration = Duration::from_millis(5_500);
/// The same, when only AMQP's real-time ready counts are known.
const QUIET_HOLD_AMQP: Duration = Duration::from_secs(1);
/// How long to wait for the management API's first statistics of a queue (it shows none for
/// some seconds after a queue is declared or the broker restarted) before settling for AMQP's
/// ready count alone.
const STATS_GRACE: Duration = Duration::from_secs(15);

/// What the drain wait found.
#[derive(Default)]
struct Drain {
    problems: Vec<String>,
    notes: Vec<String>,
}

impl Ledger {
    /// Waits until every job's highest revision has a verdict ([`Ledger::pending`] is 0) or
    /// `timeout` passes, then until the job queues, the dead-letter queue and the ledger's own
    /// queue are quiet (nothing ready, nothing unacknowledged: no redelivery or late duplicate
    /// verdict still to come) within the same deadline, then accounts for every job and checks
    /// what S3 holds for each final verdict.
    pub async fn settle(&self, timeout: Duration) -> Report {
        let deadline = Instant::now() + timeout;
        loop {
            let pending = self.pending();
            let left = deadline.saturating_duration_since(Instant::now());
            if pending == 0 || left.is_zero() {
                info!(pending, "verdict wait over");
                break;
            }
            // Woken by the next verdict; the poll bounds a wake-up lost between check and wait.
            let _ = tokio::time::timeout(left.min(POLL), self.inner.changed.notified()).await;
        }
        let drain = wait_quiet(&self.inner, deadline).await;
        let mut acc = account::account(&self.inner.records());
        let buckets = Buckets { output: &self.inner.cfg.output_bucket, manifest: &self.inner.cfg.manifest_bucket };
        let stored = checks::check_stored(&self.inner.store, &buckets, &acc.stored).await;
        acc.report.problems.extend(stored);
        acc.report.problems.extend(drain.problems);
        acc.report.notes.extend(drain.notes);
        acc.report
    }
}

/// One look at the queues: their depths, and notes on what could not be checked.
struct Observed {
    depths: Vec<Depth>,
    notes: Vec<String>,
    /// The management API answered (its figures may lag: hold quiet for [`QUIET_HOLD`]).
    management: bool,
    /// It answered, but without statistics for some queue.
    stats_pending: bool,
}

/// Polls the queues' depths until they have been quiet for the hold time or the deadline
/// passes; a queue still busy at the deadline is a problem.
async fn wait_quiet(inner: &Inner, deadline: Instant) -> Drain {
    let own = inner.cfg.queue.as_str();
    let queues = [names::UPLOADS_QUEUE, names::REPROCESS_QUEUE, names::DEAD_QUEUE, own];
    let management = Management::new(&inner.cfg.amqp_urls, inner.cfg.management_url.as_deref());
    let mut quiet_since: Option<Instant> = None;
    let grace_ends = Instant::now() + STATS_GRACE;
    loop {
        let seen = observe(inner, &management, &queues).await;
        let now = Instant::now();
        match &seen {
            // Missing statistics hide the unacknowledged count: wait for them a while.
            Ok(o) if o.depths.iter().all(Depth::quiet) && (!o.stats_pending || now >= grace_ends) => {
                let since = *quiet_since.get_or_insert(now);
                let hold = if o.management { QUIET_HOLD } else { QUIET_HOLD_AMQP };
                let held = now.duration_since(since);
                if held >= hold || now >= deadline {
                    let mut drain = Drain { problems: Vec::new(), notes: o.notes.clone() };
                    if held < hold {
                        drain.notes.push(format!(
                            "the queues were quiet for only {:.1} s before the deadline",
                            held.as_secs_f64()
                        ));
                    }
                    return drain;
                }
            }
            _ => quiet_since = None,
        }
        if now >= deadline {
            let mut drain = Drain::default();
            match seen {
                Ok(o) => {
                    for d in o.depths.iter().filter(|d| !d.quiet()) {
                        let unacked = d.unacked.map_or("unknown".to_owned(), |n| n.to_string());
                        drain.problems.push(format!(
                            "queue {} not quiet at the deadline: {} ready, {unacked} unacknowledged",
                            d.queue, d.ready
                        ));
                    }
                    drain.notes.extend(o.notes);
                }
                Err(e) => drain.problems.push(format!("the queues' depths could not be read: {e}")),
            }
            return drain;
        }
        tokio::time::sleep(deadline.saturating_duration_since(now).min(POLL)).await;
    }
}

/// The depths of `queues`: the management API's ready and unacknowledged counts, with the
/// ready counts raised to AMQP's real-time ones when higher (the API's lag a few seconds); for
/// a queue the API has no statistics of yet, and for all of them when the API cannot be
/// reached, AMQP's ready count alone, with a note that unacknowledged messages were not checked.
async fn observe(inner: &Inner, management: &Management, queues: &[&str]) -> Result<Observed, String> {
    let stats = match management.stats(queues).await {
        Ok(stats) => stats,
        Err(api) => {
            let depths =
                inner.amqp_depths(queues).await.map_err(|amqp| format!("management API: {api}; AMQP: {amqp}"))?;
            let note = format!("unacknowledged messages were not checked: the management API did not answer ({api})");
            return Ok(Observed { depths, notes: vec![note], management: false, stats_pending: false });
        }
    };
    // AMQP is asked only about queues that exist: a passive declare of a missing one is refused.
    let present: Vec<&str> = queues.iter().zip(&stats).filter(|(_, s)| **s != Stats::Absent).map(|(q, _)| *q).collect();
    let live = inner.amqp_depths(&present).await;
    let live_ready = |q: &str| live.as_ref().ok().map(|l| l.iter().find(|d| d.queue == q).map_or(0, |d| d.ready));
    let mut o = Observed { depths: Vec::new(), notes: Vec::new(), management: true, stats_pending: false };
    for (q, s) in queues.iter().zip(stats) {
        match s {
            Stats::Absent => {}
            Stats::Counts { ready, unacked } => o.depths.push(Depth {
                queue: (*q).to_owned(),
                ready: ready.max(live_ready(q).unwrap_or(0)),
                unacked: Some(unacked),
            }),
            Stats::Pending => {
                let Some(ready) = live_ready(q) else {
                    let amqp = live.as_ref().err().cloned().unwrap_or_default();
                    return Err(format!("queue {q}: no statistics from the management API yet, and AMQP: {amqp}"));
                };
                o.depths.push(Depth { queue: (*q).to_owned(), ready, unacked: None });
                o.stats_pending = true;
                o.notes.push(format!(
                    "queue {q}: the management API had no statistics yet; its unacknowledged messages were not checked"
                ));
            }
        }
    }
    Ok(o)
}

impl Inner {
    /// Ready counts by passive declares on the publisher's connection (reconnecting if needed).
    async fn amqp_depths(&self, queues: &[&str]) -> Result<Vec<Depth>, String> {
        self.channel().await?;
        let p = self.publisher.lock().await;
        let link = p.link.as_ref().ok_or("no publisher connection")?;
        checks::amqp_depths(&link.conn, queues).await
    }
}
