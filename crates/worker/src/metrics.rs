//! Prometheus metrics of one worker: what ops watch to size the fleet and spot trouble.

use mediagate_contract::{ItemStatus, ItemVerdict, ReasonCode};
use mediagate_hash::Kind;
use prometheus::{
    register_histogram_vec_with_registry, register_int_counter_vec_with_registry, register_int_counter_with_registry,
    register_int_gauge_with_registry, Encoder, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec,
    Registry, TextEncoder,
};

/// The values each metric label takes. A call site names a variant, never a string, and the
/// label sets registered at start-up are built from the same variants: no call site can make a
/// series that the registration did not (a typo used to make one silently).
pub mod label {
    use mediagate_contract::{JobStatus, MediaType};

    macro_rules! labels {
        ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $v:ident = $s:literal,)+ }) => {
            $(#[$m])*
            #[derive(Debug, Clone, Copy, PartialEq, Eq)]
            pub enum $name { $($(#[$vm])* $v,)+ }
            impl $name {
                /// Every value, in registration order.
                pub const ALL: &'static [$name] = &[$($name::$v,)+];
                /// The label's value in the exposition.
                pub fn as_str(self) -> &'static str {
                    match self { $($name::$v => $s,)+ }
                }
            }
        };
    }

    labels!(
        /// The lane a job came by.
        Lane {
            /// `mediagate.uploads`.
            Live = "live",
            /// `mediagate.reprocess`.
            Reprocess = "reprocess",
            /// `mediagate.dead`: a job dead-lettered after its delivery limit.
            Dead = "dead",
        }
    );
    labels!(
        /// An item's media type; `unknown` before the file's kind is known.
        Media {
            /// A photo.
            Image = "image",
            /// A video.
            Video = "video",
            /// A voice note.
            Audio = "audio",
            /// Refused before its kind was known (a crashed decoder, a missing source).
            Unknown = "unknown",
        }
    );
    labels!(
        /// A timed stage of one item's work.
        ItemStage {
            /// The sandboxed media work as the worker waits for it.
            Process = "process",
            /// The same work as timed inside the sandbox.
            MediaWork = "media_work",
            /// The classifier.
            Classify = "classify",
            /// Writing the outputs.
            Store = "store",
        }
    );
    labels!(
        /// How a media sandbox run ended.
        SandboxRun {
            /// It answered.
            Ok = "ok",
            /// It answered on its second try.
            CrashedOnce = "crashed_once",
            /// It crashed twice: the file is rejected.
            Crashed = "crashed",
            /// It overran its clock.
            TimedOut = "timed_out",
            /// No child could be started.
            SpawnFailed = "spawn_failed",
        }
    );
    labels!(
        /// Why a job was handed back to the broker (or retried in place).
        Retry {
            /// S3 faults.
            Storage = "storage",
            /// A media budget overrun or an internal media error.
            Media = "media",
            /// Anything else inside the worker.
            Internal = "internal",
            /// The verdict or an escalation was not confirmed.
            Publish = "publish",
            /// A storage outage retried in place, not returned to the broker.
            StorageInPlace = "storage_in_place",
        }
    );
    labels!(
        /// How a delivery was settled (see `settle.rs`).
        Ending {
            /// Acked after its confirmed verdict.
            Verdict = "verdict",
            /// Acked unprocessed: a newer revision is stored.
            Superseded = "superseded",
            /// Returned to its queue.
            Requeued = "requeued",
            /// Acked from `mediagate.dead` after its `failed` verdict.
            DeadLettered = "dead_lettered",
            /// Its channel closed before the ack or requeue.
            ChannelClosed = "channel_closed",
        }
    );
    labels!(
        /// Why an escalation was published (§8).
        Escalation {
            /// A hash bank matched.
            HashMatched = "hash_matched",
        }
    );

    impl Media {
        /// The label of a verdict's media type.
        pub fn of(t: Option<MediaType>) -> Media {
            match t {
                Some(MediaType::Image) => Media::Image,
                Some(MediaType::Video) => Media::Video,
                Some(MediaType::Audio) => Media::Audio,
                None => Media::Unknown,
            }
        }
    }

    /// How a job ended, as `jobs_total{status}` counts it.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum JobEnd {
        /// Its verdict, of this status, was published.
        Verdict(JobStatus),
        /// Acked unprocessed: a newer revision is stored.
        Superseded,
    }

    impl JobEnd {
        /// Every value, in registration order.
        pub const ALL: [JobEnd; 6] = [
            JobEnd::Verdict(JobStatus::Cleared),
            JobEnd::Verdict(JobStatus::Blocked),
            JobEnd::Verdict(JobStatus::Rejected),
            JobEnd::Verdict(JobStatus::Partial),
            JobEnd::Verdict(JobStatus::Failed),
            JobEnd::Superseded,
        ];

        /// The label's value.
        pub fn as_str(self) -> &'static str {
            match self {
                JobEnd::Verdict(s) => s.as_str(),
                JobEnd::Superseded => "superseded",
            }
        }
    }

    /// A timed stage and what it timed: `stage_seconds{stage, media_type}`. The job-wide stages
    /// are labelled `any` (before the file is known) or `job`.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Timed {
        /// Fetching the source (`any`).
        Fetch,
        /// Waiting for a CPU slot (`any`).
        SlotWait,
        /// Writing the manifest (`job`).
        Manifest,
        /// Publishing the escalations and the verdict (`job`).
        Publish,
        /// A stage of one item's work, by its media type.
        Item(ItemStage, Media),
    }

    impl Timed {
        /// The `stage` and `media_type` labels.
        pub fn labels(self) -> [&'static str; 2] {
            match self {
                Timed::Fetch => ["fetch", "any"],
                Timed::SlotWait => ["slot_wait", "any"],
                Timed::Manifest => ["manifest", "job"],
                Timed::Publish => ["publish", "job"],
                Timed::Item(stage, media) => [stage.as_str(), media.as_str()],
            }
        }

        /// Every value, in registration order.
        pub fn all() -> impl Iterator<Item = Timed> {
            [Timed::Fetch, Timed::SlotWait, Timed::Manifest, Timed::Publish]
                .into_iter()
                .chain(ItemStage::ALL.iter().flat_map(|&s| Media::ALL.iter().map(move |&m| Timed::Item(s, m))))
        }
    }
}

use label::{JobEnd, Media, Timed};

/// All of the worker's metrics. The labelled families are
/// private: they are counted through the methods below, which take [`label`] values.
pub struct Metrics {
    pub registry: Registry,
    /// Jobs finished, by status and lane (live/reprocess; `dead` for the `failed` verdict of a
    /// job dead-lettered after its delivery limit); `superseded` for a job acked unprocessed
    /// because a newer revision of it was already stored.
    jobs: IntCounterVec,
    /// Items finished, by status, reason code (`none` when cleared) and media type.
    items: IntCounterVec,
    /// Seconds spent per stage and media type: fetch, process (the sandboxed media work as the
    /// worker waits for it), media_work (the same work as timed inside the sandbox: the rest of
    /// `process` is the sandbox's overhead), classify, store, manifest, publish.
    stage_seconds: HistogramVec,
    /// Seconds from taking a job to its confirmed verdict, by lane.
    job_seconds: HistogramVec,
    /// Jobs currently held by this worker.
    pub in_flight: IntGauge,
    /// The most live jobs this worker takes in hand now (the uploads consumer's prefetch).
    pub window: IntGauge,
    /// Media sandbox runs by outcome (`ok`, `crashed_once`, `crashed`, `timed_out`, `spawn_failed`).
    sandbox_runs: IntCounterVec,
    /// CPU seconds (user + system) the media sandbox children used: with the process's own
    /// `process_cpu_seconds_total`, how the worker's CPU splits between media work and the rest.
    pub sandbox_cpu: prometheus::Counter,
    /// CPU seconds (user + system, all threads) of the worker process itself, read at each
    /// scrape (the process collector's `process_cpu_seconds_total` counts whole seconds only).
    pub worker_cpu: prometheus::Gauge,
    /// Peak resident memory of each media sandbox child, by media type: what
    /// `MEDIAGATE_SANDBOX_MEMORY_MB` must leave room for.
    sandbox_peak_rss: HistogramVec,
    /// Jobs handed back to the broker after a transient fault, by cause.
    retries: IntCounterVec,
    /// Jobs that reached the delivery limit and got a `failed` verdict.
    pub dead_lettered: IntCounter,
    /// Deliveries settled, by lane (`live`, `reprocess`, `dead`) and how they ended (`verdict`:
    /// acked after a confirmed verdict; `superseded`; `requeued`; `dead_lettered`: acked from
    /// `mediagate.dead` after its `failed` verdict; `channel_closed`: the channel closed before
    /// the ack or requeue, so the broker redelivers). See `settle.rs`.
    deliveries: IntCounterVec,
    /// Items blocked by a hash bank, by bank and entry kind (`sha256`, `md5`, `pdq`).
    bank_matches: IntCounterVec,
    /// Entries loaded, by bank and kind.
    bank_entries: IntGaugeVec,
    /// Malformed lines skipped in each bank's current contents.
    bank_bad_lines: IntGaugeVec,
    /// Failed loads or reloads of a bank (the previous contents stay in force).
    bank_reload_failures: IntCounterVec,
    /// Unix time of each bank's last successful load or unchanged check: how stale it may be.
    bank_checked: prometheus::GaugeVec,
    /// Seconds per bank lookup (an item's exact digests, or all of its PDQ hashes).
    pub bank_lookup_seconds: prometheus::Histogram,
    /// Escalations published and confirmed, by reason.
    escalations: IntCounterVec,
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
    video_paths: IntCounterVec,
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

/// The `status` label of an item.
fn item_status(s: ItemStatus) -> &'static str {
    match s {
        ItemStatus::Cleared => "cleared",
        ItemStatus::Blocked => "blocked",
        ItemStatus::Rejected => "rejected",
    }
}

const STAGE_BUCKETS: &[f64] =
    &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0];

impl Metrics {
    /// A worker's metrics on a registry of their own, every label set registered at zero. The
    /// binary makes one and passes it to the worker ([`crate::Engines`]) and to the `/metrics`
    /// responder; a test makes its own and reads what its jobs counted.
    pub fn new() -> prometheus::Result<Metrics> {
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
            video_paths: register_int_counter_vec_with_registry!(
                "video_items_total",
                "Videos processed, by path (which streams were copied, which re-encoded).",
                &["path"],
                registry
            )?,
            registry,
        }
        .with_label_sets())
    }

    /// Every label set the worker can count, registered at zero, so that a dashboard or an
    /// alert finds each series (and `rate()` sees its first increase) before anything happened.
    fn with_label_sets(self) -> Metrics {
        let lanes = [label::Lane::Live, label::Lane::Reprocess];
        for end in JobEnd::ALL {
            for lane in lanes {
                self.jobs.with_label_values(&[end.as_str(), lane.as_str()]);
            }
        }
        // A job dead-lettered after its delivery limit gets a `failed` verdict from the `dead` lane.
        let failed = JobEnd::Verdict(mediagate_contract::JobStatus::Failed);
        self.jobs.with_label_values(&[failed.as_str(), label::Lane::Dead.as_str()]);
        for lane in lanes {
            self.job_seconds.with_label_values(&[lane.as_str()]);
        }
        for &media in Media::ALL {
            let media = media.as_str();
            self.items.with_label_values(&["cleared", "none", media]);
            for reason in item_rejections() {
                self.items.with_label_values(&["rejected", reason, media]);
            }
            for reason in [ReasonCode::NudityFlagged, ReasonCode::HashMatched] {
                self.items.with_label_values(&["blocked", reason.as_str(), media]);
            }
            self.sandbox_peak_rss.with_label_values(&[media]);
        }
        for timed in Timed::all() {
            self.stage_seconds.with_label_values(&timed.labels());
        }
        for outcome in label::SandboxRun::ALL {
            self.sandbox_runs.with_label_values(&[outcome.as_str()]);
        }
        for cause in label::Retry::ALL {
            self.retries.with_label_values(&[cause.as_str()]);
        }
        for reason in label::Escalation::ALL {
            self.escalations.with_label_values(&[reason.as_str()]);
        }
        for lane in label::Lane::ALL {
            for ending in label::Ending::ALL {
                self.deliveries.with_label_values(&[lane.as_str(), ending.as_str()]);
            }
        }
        for path in mediagate_media::VideoPath::ALL {
            self.video_paths.with_label_values(&[path.as_str()]);
        }
        self
    }

    /// A bank's label sets, registered when it is configured (its name is only known then).
    pub fn register_bank(&self, bank: &str) {
        for kind in Kind::ALL {
            self.bank_matches.with_label_values(&[bank, kind.as_str()]);
            self.bank_entries.with_label_values(&[bank, kind.as_str()]);
        }
        self.bank_bad_lines.with_label_values(&[bank]);
        self.bank_reload_failures.with_label_values(&[bank]);
        self.bank_checked.with_label_values(&[bank]);
    }

    /// Counts a finished job.
    pub fn job_done(&self, end: JobEnd, lane: label::Lane) {
        self.jobs.with_label_values(&[end.as_str(), lane.as_str()]).inc();
    }

    /// Records the time from taking a job to its confirmed verdict.
    pub fn job_seconds(&self, lane: label::Lane, seconds: f64) {
        self.job_seconds.with_label_values(&[lane.as_str()]).observe(seconds);
    }

    /// Counts a finished item by its verdict entry.
    pub fn item_done(&self, item: &ItemVerdict) {
        let reason = item.reason.as_ref().map_or("none", |r| r.code.as_str());
        let media = Media::of(item.media_type).as_str();
        self.items.with_label_values(&[item_status(item.status), reason, media]).inc();
    }

    /// Records a stage's duration.
    pub fn stage(&self, timed: Timed, seconds: f64) {
        self.stage_seconds.with_label_values(&timed.labels()).observe(seconds);
    }

    /// Counts a media sandbox run.
    pub fn sandbox_run(&self, outcome: label::SandboxRun) {
        self.sandbox_runs.with_label_values(&[outcome.as_str()]).inc();
    }

    /// Records a sandbox child's peak resident memory.
    pub fn sandbox_peak_rss(&self, media: Media, bytes: u64) {
        self.sandbox_peak_rss.with_label_values(&[media.as_str()]).observe(bytes as f64);
    }

    /// Counts a job handed back (or retried in place).
    pub fn retry(&self, cause: label::Retry) {
        self.retries.with_label_values(&[cause.as_str()]).inc();
    }

    /// Counts a settled delivery.
    pub fn delivery(&self, lane: label::Lane, ending: label::Ending) {
        self.deliveries.with_label_values(&[lane.as_str(), ending.as_str()]).inc();
    }

    /// Counts a confirmed escalation.
    pub fn escalation(&self, reason: label::Escalation) {
        self.escalations.with_label_values(&[reason.as_str()]).inc();
    }

    /// Counts a processed video by its path.
    pub fn video_path(&self, path: mediagate_media::VideoPath) {
        self.video_paths.with_label_values(&[path.as_str()]).inc();
    }

    /// Counts an item blocked by `bank` (a configured bank, registered by [`Self::register_bank`]).
    pub fn bank_match(&self, bank: &str, kind: Kind) {
        self.bank_matches.with_label_values(&[bank, kind.as_str()]).inc();
    }

    /// Sets how many entries of `kind` a bank holds.
    pub fn bank_entries(&self, bank: &str, kind: Kind, entries: usize) {
        self.bank_entries.with_label_values(&[bank, kind.as_str()]).set(i64::try_from(entries).unwrap_or(i64::MAX));
    }

    /// Sets how many malformed lines a bank's current contents skipped.
    pub fn bank_bad_lines(&self, bank: &str, lines: usize) {
        self.bank_bad_lines.with_label_values(&[bank]).set(i64::try_from(lines).unwrap_or(i64::MAX));
    }

    /// Counts a failed load or reload of a bank.
    pub fn bank_reload_failed(&self, bank: &str) {
        self.bank_reload_failures.with_label_values(&[bank]).inc();
    }

    /// Records when a bank was last loaded or found unchanged (Unix seconds).
    pub fn bank_checked(&self, bank: &str, unix_seconds: f64) {
        self.bank_checked.with_label_values(&[bank]).set(unix_seconds);
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
pub struct StageTimer<'a> {
    metrics: &'a Metrics,
    timed: Timed,
    start: std::time::Instant,
}

impl StageTimer<'_> {
    pub fn start(metrics: &Metrics, timed: Timed) -> StageTimer<'_> {
        StageTimer { metrics, timed, start: std::time::Instant::now() }
    }
}

impl Drop for StageTimer<'_> {
    fn drop(&mut self) {
        self.metrics.stage(self.timed, self.start.elapsed().as_secs_f64());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// docs/metrics.md's table is generated from the registry itself: every family, its type,
    /// help, and the label values registered at start-up; `MEDIAGATE_WRITE_DOCS=1` rewrites it.
    #[test]
    fn docs_metrics_lists_every_registered_family() {
        mediagate_testkit::docs::check_generated(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/metrics.md"),
            "metrics",
            "Metrics",
            &metrics_table(),
            "cargo test -p mediagate-worker --lib docs_metrics",
        );
    }

    fn metrics_table() -> String {
        let m = Metrics::new().expect("a fresh registry");
        // A bank's series appear once it is configured; one named `BANK` stands for any.
        m.register_bank("BANK");
        let mut out = String::from(
            "| metric | type | labels: values registered at start-up | what it measures |\n|---|---|---|---|\n",
        );
        for family in m.registry.gather() {
            if family.name().starts_with("mediagate_process_") {
                continue; // the process collector's, which vary by platform
            }
            let mut labels: Vec<(String, Vec<String>)> = Vec::new();
            for metric in family.get_metric() {
                for pair in metric.get_label() {
                    let i = match labels.iter().position(|(n, _)| n == pair.name()) {
                        Some(i) => i,
                        None => {
                            labels.push((pair.name().to_string(), Vec::new()));
                            labels.len() - 1
                        }
                    };
                    if !labels[i].1.iter().any(|v| v == pair.value()) {
                        labels[i].1.push(pair.value().to_string());
                    }
                }
            }
            let labels = labels
                .into_iter()
                .map(|(name, values)| format!("`{name}`: {}", values.join(", ")))
                .collect::<Vec<_>>()
                .join("; ");
            let kind = format!("{:?}", family.get_field_type()).to_lowercase();
            out.push_str(&format!("| `{}` | {kind} | {labels} | {} |\n", family.name(), family.help()));
        }
        out
    }
}
