//! Prometheus metrics of one worker: what ops watch to size the fleet and spot trouble.

use std::sync::OnceLock;

use prometheus::{
    register_histogram_vec_with_registry, register_int_counter_vec_with_registry, register_int_counter_with_registry,
    register_int_gauge_with_registry, Encoder, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec,
    Registry, TextEncoder,
};

/// All of the worker's metrics, registered once per process.
pub struct Metrics {
    pub registry: Registry,
    /// Jobs finished, by status and lane (live/reprocess; `dead` for the `failed` verdict of a
    /// job dead-lettered after its delivery limit); `superseded` for a job acked unprocessed
    /// because a newer revision of it was already stored.
    pub jobs: IntCounterVec,
    /// Items finished, by status, reason code (`none` when cleared) and media type.
    pub items: IntCounterVec,
    /// Seconds spent per stage and media type: fetch, process (the sandboxed media work as the
    /// worker waits for it), media_work (the same work as timed inside the sandbox: the rest of
    /// `process` is the sandbox's overhead), classify, store, manifest, publish.
    pub stage_seconds: HistogramVec,
    /// Seconds from taking a job to its confirmed verdict, by lane.
    pub job_seconds: HistogramVec,
    /// Jobs currently held by this worker.
    pub in_flight: IntGauge,
    /// The most live jobs this worker takes in hand now (the uploads consumer's prefetch).
    pub window: IntGauge,
    /// Media sandbox runs by outcome (`ok`, `crashed_once`, `crashed`, `timed_out`, `spawn_failed`).
    pub sandbox_runs: IntCounterVec,
    /// CPU seconds (user + system) the media sandbox children used: with the process's own
    /// `process_cpu_seconds_total`, how the worker's CPU splits between media work and the rest.
    pub sandbox_cpu: prometheus::Counter,
    /// CPU seconds (user + system, all threads) of the worker process itself, read at each
    /// scrape (the process collector's `process_cpu_seconds_total` counts whole seconds only).
    pub worker_cpu: prometheus::Gauge,
    /// Peak resident memory of each media sandbox child, by media type: what
    /// `MEDIAGATE_SANDBOX_MEMORY_MB` must leave room for.
    pub sandbox_peak_rss: HistogramVec,
    /// Jobs handed back to the broker after a transient fault, by cause.
    pub retries: IntCounterVec,
    /// Jobs that reached the delivery limit and got a `failed` verdict.
    pub dead_lettered: IntCounter,
    /// Deliveries settled, by lane (`live`, `reprocess`, `dead`) and how they ended (`verdict`:
    /// acked after a confirmed verdict; `superseded`; `requeued`; `dead_lettered`: acked from
    /// `mediagate.dead` after its `failed` verdict; `channel_closed`: the channel closed before
    /// the ack or requeue, so the broker redelivers). See `settle.rs`.
    pub deliveries: IntCounterVec,
    /// Items blocked by a hash bank, by bank and entry kind (`sha256`, `md5`, `pdq`).
    pub bank_matches: IntCounterVec,
    /// Entries loaded, by bank and kind.
    pub bank_entries: IntGaugeVec,
    /// Malformed lines skipped in each bank's current contents.
    pub bank_bad_lines: IntGaugeVec,
    /// Failed loads or reloads of a bank (the previous contents stay in force).
    pub bank_reload_failures: IntCounterVec,
    /// Unix time of each bank's last successful load or unchanged check: how stale it may be.
    pub bank_checked: prometheus::GaugeVec,
    /// Seconds per bank lookup (an item's exact digests, or all of its PDQ hashes).
    pub bank_lookup_seconds: prometheus::Histogram,
    /// Escalations published and confirmed, by reason.
    pub escalations: IntCounterVec,
    /// Escalations the broker did not confirm (the job goes back to the queue and is redone).
    pub escalation_failures: IntCounter,
    /// CPU slots (`MEDIAGATE_CONCURRENCY`).
    pub slots: IntGauge,
    /// CPU slots held now (media work in the sandbox, or the classifier).
    pub slots_busy: IntGauge,
    /// 1 while the output bucket answers the readiness probe, 0 during a storage outage.
    pub storage_up: IntGauge,
    /// Videos processed, by path: `copied`, `audio_reencoded`, `video_reencoded`, `reencoded`
    /// (contract §4 "Video passthrough").
    pub video_paths: IntCounterVec,
}

/// The process-wide metrics.
pub fn metrics() -> &'static Metrics {
    static M: OnceLock<Metrics> = OnceLock::new();
    M.get_or_init(|| Metrics::new().unwrap_or_else(|e| panic!("metric registration is static and cannot fail: {e}")))
}

/// The reason codes an item can be rejected with (contract §3): the `input.*` codes but rule 5's,
/// which rejects a whole job.
fn item_rejections() -> impl Iterator<Item = &'static str> {
    use mediagate_contract::ReasonCode;
    ReasonCode::ALL
        .into_iter()
        .filter(|c| c.as_str().starts_with("input.") && *c != ReasonCode::InputSourceNotAllowed)
        .map(ReasonCode::as_str)
}

const STAGE_BUCKETS: &[f64] =
    &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0];

impl Metrics {
    fn new() -> prometheus::Result<Metrics> {
        let registry = Registry::new_custom(Some("mediagate".into()), None)?;
        #[cfg(target_os = "linux")]
        registry.register(Box::new(prometheus::process_collector::ProcessCollector::for_self()))?;
        Ok(Metrics {
            jobs: register_int_counter_vec_with_registry!(
                "jobs_total",
                "Jobs finished, by verdict status (or superseded) and lane.",
                &["status", "lane"],
                registry
            )?,
            items: register_int_counter_vec_with_registry!(
                "items_total",
                "Items finished, by status, reason code and media type.",
                &["status", "reason", "media_type"],
                registry
            )?,
            stage_seconds: register_histogram_vec_with_registry!(
                "stage_seconds",
                "Time per pipeline stage and media type.",
                &["stage", "media_type"],
                STAGE_BUCKETS.to_vec(),
                registry
            )?,
            job_seconds: register_histogram_vec_with_registry!(
                "job_seconds",
                "Time from taking a job to its confirmed verdict.",
                &["lane"],
                STAGE_BUCKETS.to_vec(),
                registry
            )?,
            in_flight: register_int_gauge_with_registry!("jobs_in_flight", "Jobs held by this worker now.", registry)?,
            window: register_int_gauge_with_registry!(
                "jobs_window",
                "The most live jobs this worker takes in hand now (its prefetch), as many as keep its slots busy.",
                registry
            )?,
            retries: register_int_counter_vec_with_registry!(
                "retries_total",
                "Jobs handed back to the broker after a transient fault.",
                &["cause"],
                registry
            )?,
            sandbox_runs: register_int_counter_vec_with_registry!(
                "sandbox_runs_total",
                "Media sandbox runs, by outcome.",
                &["outcome"],
                registry
            )?,
            sandbox_cpu: prometheus::register_counter_with_registry!(
                "sandbox_cpu_seconds_total",
                "CPU seconds used by media sandbox children.",
                registry
            )?,
            worker_cpu: prometheus::register_gauge_with_registry!(
                "worker_cpu_seconds",
                "CPU seconds used by the worker process itself (not its sandbox children).",
                registry
            )?,
            sandbox_peak_rss: register_histogram_vec_with_registry!(
                "sandbox_peak_rss_bytes",
                "Peak resident memory of a media sandbox child, by media type.",
                &["media_type"],
                vec![16e6, 32e6, 64e6, 128e6, 256e6, 512e6, 1024e6, 2048e6, 4096e6],
                registry
            )?,
            dead_lettered: register_int_counter_with_registry!(
                "dead_lettered_total",
                "Jobs that reached their delivery limit and got a failed verdict.",
                registry
            )?,
            deliveries: register_int_counter_vec_with_registry!(
                "deliveries_total",
                "Deliveries settled, by lane and by how they ended (verdict, superseded, requeued, dead_lettered, channel_closed).",
                &["lane", "ending"],
                registry
            )?,
            bank_matches: register_int_counter_vec_with_registry!(
                "hash_matches_total",
                "Items blocked by a hash bank, by bank and entry kind.",
                &["bank", "kind"],
                registry
            )?,
            bank_entries: prometheus::register_int_gauge_vec_with_registry!(
                "hash_bank_entries",
                "Entries loaded, by bank and kind.",
                &["bank", "kind"],
                registry
            )?,
            bank_bad_lines: prometheus::register_int_gauge_vec_with_registry!(
                "hash_bank_bad_lines",
                "Malformed lines skipped in the bank's current contents.",
                &["bank"],
                registry
            )?,
            bank_reload_failures: register_int_counter_vec_with_registry!(
                "hash_bank_reload_failures_total",
                "Failed loads or reloads of a bank; the previous contents stay in force.",
                &["bank"],
                registry
            )?,
            bank_checked: prometheus::register_gauge_vec_with_registry!(
                "hash_bank_checked_timestamp_seconds",
                "Unix time a bank was last loaded or found unchanged.",
                &["bank"],
                registry
            )?,
            bank_lookup_seconds: prometheus::register_histogram_with_registry!(
                "hash_lookup_seconds",
                "Time per hash bank lookup.",
                vec![1e-6, 1e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 1e-2, 0.1],
                registry
            )?,
            escalations: register_int_counter_vec_with_registry!(
                "escalations_total",
                "Escalations published and confirmed, by reason.",
                &["reason"],
                registry
            )?,
            escalation_failures: register_int_counter_with_registry!(
                "escalation_failures_total",
                "Escalations the broker did not confirm; the job goes back to the queue.",
                registry
            )?,
            slots: register_int_gauge_with_registry!("slots", "CPU slots of this worker.", registry)?,
            slots_busy: register_int_gauge_with_registry!(
                "slots_busy",
                "CPU slots held now (media work in the sandbox or the classifier).",
                registry
            )?,
            storage_up: register_int_gauge_with_registry!(
                "storage_up",
                "1 while the output bucket answers, 0 during a storage outage.",
                registry
            )?,
            video_paths: {
                let v = register_int_counter_vec_with_registry!(
                    "video_items_total",
                    "Videos processed, by path (which streams were copied, which re-encoded).",
                    &["path"],
                    registry
                )?;
                for path in mediagate_media::VideoPath::ALL {
                    v.with_label_values(&[path.as_str()]);
                }
                v
            },
            registry,
        }
        .with_label_sets())
    }

    /// Every label set the worker can count, registered at zero, so that a dashboard or an
    /// alert finds each series (and `rate()` sees its first increase) before anything happened.
    fn with_label_sets(self) -> Metrics {
        const STATUSES: [&str; 6] = ["cleared", "blocked", "rejected", "partial", "failed", "superseded"];
        const LANES: [&str; 2] = ["live", "reprocess"];
        const MEDIA: [&str; 3] = ["image", "video", "audio"];
        for status in STATUSES {
            for lane in LANES {
                self.jobs.with_label_values(&[status, lane]);
            }
        }
        // A job dead-lettered after its delivery limit gets a `failed` verdict from the `dead` lane.
        self.jobs.with_label_values(&["failed", "dead"]);
        for lane in LANES {
            self.job_seconds.with_label_values(&[lane]);
        }
        for media in MEDIA {
            self.items.with_label_values(&["cleared", "none", media]);
            for reason in item_rejections() {
                self.items.with_label_values(&["rejected", reason, media]);
            }
            for reason in ["nudity.flagged", "hash.matched"] {
                self.items.with_label_values(&["blocked", reason, media]);
            }
            for stage in ["process", "media_work", "classify", "store"] {
                self.stage_seconds.with_label_values(&[stage, media]);
            }
            self.sandbox_peak_rss.with_label_values(&[media]);
        }
        // Refused before the file's kind was known (a crashed decoder, a missing source).
        for reason in item_rejections() {
            self.items.with_label_values(&["rejected", reason, "unknown"]);
        }
        self.items.with_label_values(&["blocked", "hash.matched", "unknown"]);
        for (stage, media) in [("fetch", "any"), ("slot_wait", "any"), ("manifest", "job"), ("publish", "job")] {
            self.stage_seconds.with_label_values(&[stage, media]);
        }
        for outcome in ["ok", "crashed_once", "crashed", "timed_out", "spawn_failed"] {
            self.sandbox_runs.with_label_values(&[outcome]);
        }
        for cause in ["storage", "media", "internal", "publish", "storage_in_place"] {
            self.retries.with_label_values(&[cause]);
        }
        self.escalations.with_label_values(&["hash_matched"]);
        for lane in crate::settle::LANES {
            for ending in crate::settle::ENDINGS {
                self.deliveries.with_label_values(&[lane, ending]);
            }
        }
        self
    }

    /// A bank's label sets, registered when it is configured (its name is only known then).
    pub fn register_bank(&self, bank: &str) {
        for kind in ["sha256", "md5", "pdq"] {
            self.bank_matches.with_label_values(&[bank, kind]);
            self.bank_entries.with_label_values(&[bank, kind]);
        }
        self.bank_bad_lines.with_label_values(&[bank]);
        self.bank_reload_failures.with_label_values(&[bank]);
        self.bank_checked.with_label_values(&[bank]);
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        self.worker_cpu.set(mediagate_sandbox::lockdown::cpu_time().as_secs_f64());
        let mut buf = Vec::new();
        if TextEncoder::new().encode(&self.registry.gather(), &mut buf).is_err() {
            return String::new();
        }
        String::from_utf8(buf).unwrap_or_default()
    }
}

/// Records a stage's duration when dropped.
pub struct StageTimer {
    stage: &'static str,
    media_type: &'static str,
    start: std::time::Instant,
}

impl StageTimer {
    pub fn start(stage: &'static str, media_type: &'static str) -> StageTimer {
        StageTimer { stage, media_type, start: std::time::Instant::now() }
    }
}

impl Drop for StageTimer {
    fn drop(&mut self) {
        metrics()
            .stage_seconds
            .with_label_values(&[self.stage, self.media_type])
            .observe(self.start.elapsed().as_secs_f64());
    }
}
