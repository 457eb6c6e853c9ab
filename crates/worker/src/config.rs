//! The worker's settings: what the binary's flags and environment fill in, checked as a whole
//! by [`WorkerConfig::validate`] before the worker connects to anything.
//!
//! Architecture invariant: each setting is held once. Its default lives beside its type
//! (`mediagate_contract::settings` for the contract's, `mediagate_media::MediaSettings::DEFAULT`
//! for the pipelines', the constants below for the worker's own) and the binary's clap
//! attributes read those constants; its accepted range lives beside its type too, and
//! [`WorkerConfig::validate`] turns a value outside it into an [`InvalidSetting`] that names
//! the environment variable.

use std::net::SocketAddr;
use std::ops::RangeInclusive;

use mediagate_contract::{JobLimits, Thresholds};
use mediagate_media::{MediaSettings, OutOfRange, Setting};

/// `MEDIAGATE_MEMORY_MB` when it is not set and no container limit is found, MiB.
pub const DEFAULT_MEMORY_MB: u64 = 4096;
/// Accepted `MEDIAGATE_MEMORY_MB` values.
pub const MEMORY_MB: RangeInclusive<u64> = 512..=16_777_216;
/// Of the memory budget, what the worker process needs besides the inputs it holds (runtime,
/// the classifier's session and tensors, outputs on their way to S3, the broker's buffers), MiB.
/// Measured: 160–220 MB peak RSS with two slots busy (the pipeline bench).
pub const WORKER_RESERVE_MB: u64 = 320;
/// The largest memory limit a media child is given when the budget would allow more, MiB.
pub const MAX_CHILD_MEMORY_MB: u64 = 2048;
/// The smallest memory limit the budget may leave a media child, MiB: below it a 1080p video
/// or a large photo cannot be decoded.
pub const MIN_CHILD_MEMORY_MB: u64 = 384;
/// Accepted explicit sandbox memory limits (`MEDIAGATE_SANDBOX_MEMORY_MB`), MiB.
pub const SANDBOX_MEMORY_MB: RangeInclusive<u64> = 16..=1_048_576;
/// Accepted `MEDIAGATE_CONCURRENCY` values.
pub const CONCURRENCY: RangeInclusive<usize> = 1..=256;
/// Accepted `MEDIAGATE_CLASSIFIER_THREADS` values.
pub const CLASSIFIER_THREADS: RangeInclusive<usize> = 1..=256;
/// Accepted `MEDIAGATE_MAX_INPUT_BYTES` values (4 GiB: what a sandbox child may hold and write).
pub const MAX_INPUT_BYTES: RangeInclusive<u64> = 1..=4 << 30;
/// Accepted `MEDIAGATE_MAX_JOB_BYTES` values: 1 KiB (the contract's example job is ~500 bytes)
/// to 128 MiB (RabbitMQ's own largest message).
pub const MAX_JOB_BYTES: RangeInclusive<usize> = 1024..=128 << 20;
/// Accepted `MEDIAGATE_MAX_RECIPIENTS` values.
pub const MAX_RECIPIENTS: RangeInclusive<usize> = 1..=1_000_000;
/// Default `MEDIAGATE_HASH_BANK_REFRESH_S`.
pub const DEFAULT_BANK_REFRESH_S: u64 = 60;
/// Accepted `MEDIAGATE_HASH_BANK_REFRESH_S` values.
pub const BANK_REFRESH_S: RangeInclusive<u64> = 1..=86_400;
/// Default `MEDIAGATE_PDQ_MAX_DISTANCE` (contract §6).
pub const DEFAULT_PDQ_MAX_DISTANCE: u32 = 31;
/// Accepted `MEDIAGATE_PDQ_MAX_DISTANCE` values: beyond 64 of 256 bits, unrelated pictures
/// start to match.
pub const PDQ_MAX_DISTANCE: RangeInclusive<u32> = 0..=64;
/// Default `MEDIAGATE_PDQ_MIN_QUALITY` (contract §6).
pub const DEFAULT_PDQ_MIN_QUALITY: u8 = 50;
/// Accepted `MEDIAGATE_PDQ_MIN_QUALITY` values.
pub const PDQ_MIN_QUALITY: RangeInclusive<u8> = 0..=100;

/// Hash banks and matching (§8).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BankSettings {
    /// `MEDIAGATE_HASH_BANKS` as given (`name=SOURCE,…`), parsed by [`WorkerConfig::bank_specs`].
    pub banks: String,
    /// `MEDIAGATE_HASH_BANK_REFRESH_S`.
    pub refresh_s: u64,
    /// `MEDIAGATE_PDQ_MAX_DISTANCE`: the most bits a PDQ match may differ by.
    pub pdq_max_distance: u32,
    /// `MEDIAGATE_PDQ_MIN_QUALITY`: hashes of lower quality are not matched.
    pub pdq_min_quality: u8,
}

impl BankSettings {
    /// No banks; the contract's defaults for the rest.
    pub const DEFAULT: BankSettings = BankSettings {
        banks: String::new(),
        refresh_s: DEFAULT_BANK_REFRESH_S,
        pdq_max_distance: DEFAULT_PDQ_MAX_DISTANCE,
        pdq_min_quality: DEFAULT_PDQ_MIN_QUALITY,
    };
}

/// Default address of `/healthz`, `/readyz` and `/metrics` (`MEDIAGATE_METRICS_ADDR`).
pub const DEFAULT_METRICS_ADDR: &str = "0.0.0.0:9464";

/// Everything a worker needs to decide and store; no connection details (those are the
/// store's and the broker's).
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Allow-list of source buckets (rule 5).
    pub source_buckets: Vec<String>,
    /// Where cleared variants go.
    pub output_bucket: String,
    /// Where blocked originals go; `None` keeps none.
    pub quarantine_bucket: Option<String>,
    /// Where `manifests/{job_id}.json` goes.
    pub manifest_bucket: String,
    /// Items processed at once (CPU slots); twice as many jobs are taken from the broker.
    pub concurrency: usize,
    /// `MEDIAGATE_MAX_INPUT_BYTES`: checked against the GET's `Content-Length` before the body is read.
    pub max_input_bytes: u64,
    /// `MEDIAGATE_MAX_JOB_BYTES` / `MEDIAGATE_MAX_RECIPIENTS` (§2), checked before a body is parsed.
    pub job_limits: JobLimits,
    /// Nudity thresholds.
    pub thresholds: Thresholds,
    /// Limits and knobs of the media pipelines.
    pub media: MediaSettings,
    /// `MEDIAGATE_MEMORY_MB`: the whole worker's memory (its container's limit), split by
    /// [`WorkerConfig::memory`] between the worker, the inputs in hand and the media children.
    pub memory_mb: u64,
    /// `MEDIAGATE_SANDBOX_MEMORY_MB`: each media child's memory limit (`RLIMIT_DATA`), MiB,
    /// when set; else the budget's share.
    pub sandbox_memory_mb: Option<u64>,
    /// ONNX Runtime intra-op threads of the classifier.
    pub classifier_threads: usize,
    /// `MEDIAGATE_MODEL_PATH` and `MEDIAGATE_ORT_LIB` (or where they are found without them).
    pub model_paths: mediagate_classify::ModelPaths,
    /// Where `/healthz`, `/readyz` and `/metrics` are served; `None` serves none.
    pub metrics_addr: Option<SocketAddr>,
    /// Hash banks and matching.
    pub banks: BankSettings,
    /// Reported in every verdict (`worker.id`).
    pub worker_id: String,
    /// Reported in every verdict (`worker.version`).
    pub version: String,
}

/// `limits` within [`MAX_JOB_BYTES`] and [`MAX_RECIPIENTS`], named by their variables.
pub fn check_job_limits(limits: JobLimits) -> Result<(), InvalidSetting> {
    check_range("MEDIAGATE_MAX_JOB_BYTES", limits.max_bytes, &MAX_JOB_BYTES)?;
    check_range("MEDIAGATE_MAX_RECIPIENTS", limits.max_recipients, &MAX_RECIPIENTS)
}

/// A setting the worker cannot run with, named by its environment variable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{var}={value:?} is not accepted: {accepted}")]
pub struct InvalidSetting {
    /// The environment variable (the flag is its lower-case, dashed spelling).
    pub var: &'static str,
    /// The value given.
    pub value: String,
    /// What is accepted, for the person fixing it.
    pub accepted: String,
}

impl InvalidSetting {
    /// A setting `var` whose `value` is not accepted.
    pub fn new(var: &'static str, value: impl ToString, accepted: impl Into<String>) -> InvalidSetting {
        InvalidSetting { var, value: value.to_string(), accepted: accepted.into() }
    }
}

/// `value` within `range`, else an [`InvalidSetting`] for `var`.
pub fn check_range<T: PartialOrd + std::fmt::Display>(
    var: &'static str,
    value: T,
    range: &RangeInclusive<T>,
) -> Result<(), InvalidSetting> {
    mediagate_media::outside(value, range).map_err(|(value, accepted)| named(var, value, accepted))
}

/// A value outside its range as a setting: the range said the way a person reads it.
fn named(var: &'static str, value: String, accepted: String) -> InvalidSetting {
    let accepted = match accepted.split_once("..=") {
        Some((lo, hi)) => format!("use a value from {lo} to {hi}"),
        None => accepted,
    };
    InvalidSetting { var, value, accepted }
}

/// The environment variable (and flag) that sets a media settings field; `None` for a field
/// with no variable (its value is built in, so only a bug in the defaults puts it out of range).
fn media_var(field: Setting) -> Option<&'static str> {
    match field {
        Setting::MaxPixels => Some("MEDIAGATE_IMAGE_MAX_PIXELS"),
        Setting::VoiceMaxMs => Some("MEDIAGATE_VOICE_MAX_MS"),
        Setting::VideoMaxMs => Some("MEDIAGATE_VIDEO_MAX_MS"),
        Setting::PhotoFullEdge => Some("MEDIAGATE_PHOTO_FULL_EDGE"),
        Setting::PhotoThumbEdge => Some("MEDIAGATE_PHOTO_THUMB_EDGE"),
        Setting::JpegQuality => Some("MEDIAGATE_JPEG_QUALITY"),
        Setting::PhotoBudget => Some("MEDIAGATE_PHOTO_BUDGET_S"),
        Setting::VoiceBitrate => Some("MEDIAGATE_VOICE_BITRATE"),
        Setting::VoiceBudget => Some("MEDIAGATE_VOICE_BUDGET_S"),
        Setting::VideoCrf => Some("MEDIAGATE_VIDEO_CRF"),
        Setting::VideoThreads => Some("MEDIAGATE_VIDEO_THREADS"),
        Setting::VideoBudget => Some("MEDIAGATE_VIDEO_BUDGET_S"),
        Setting::MaxFrames => Some("MEDIAGATE_VIDEO_MAX_FRAMES"),
        Setting::MinIntervalMs => Some("MEDIAGATE_VIDEO_FRAME_INTERVAL_MS"),
        Setting::VideoLongEdge
        | Setting::VideoShortEdge
        | Setting::PosterQuality
        | Setting::AudioBitrate
        | Setting::SamplingMaxEdge => None,
    }
}

fn from_media(e: OutOfRange) -> InvalidSetting {
    match media_var(e.field) {
        Some(var) => named(var, e.value, e.accepted),
        None => {
            let mut invalid = named("(built-in media setting)", e.value, e.accepted);
            invalid.accepted = format!("{} ({})", e.field, invalid.accepted);
            invalid
        }
    }
}

impl WorkerConfig {
    /// A worker's settings with every default the flags have — the contract's buckets (the
    /// manifests in the output bucket), limits, thresholds, media settings and banks — with
    /// `concurrency` slots, `memory_mb` of memory, one classifier thread and the model at
    /// `model_paths`; no `/metrics` endpoint. The starting point of the worker's tests, which
    /// change what they test.
    pub fn defaults(model_paths: mediagate_classify::ModelPaths, concurrency: usize, memory_mb: u64) -> WorkerConfig {
        use mediagate_contract::settings;
        WorkerConfig {
            source_buckets: vec![settings::DEFAULT_SOURCE_BUCKET.to_string()],
            output_bucket: settings::DEFAULT_OUTPUT_BUCKET.to_string(),
            quarantine_bucket: Some(settings::DEFAULT_QUARANTINE_BUCKET.to_string()),
            manifest_bucket: settings::DEFAULT_OUTPUT_BUCKET.to_string(),
            concurrency,
            max_input_bytes: settings::DEFAULT_MAX_INPUT_BYTES,
            job_limits: JobLimits::DEFAULT,
            thresholds: Thresholds::DEFAULT,
            media: MediaSettings::DEFAULT,
            memory_mb,
            sandbox_memory_mb: None,
            classifier_threads: 1,
            model_paths,
            metrics_addr: None,
            banks: BankSettings::DEFAULT,
            worker_id: "mediagate".to_string(),
            version: env!("CARGO_PKG_VERSION").to_string(),
        }
    }

    /// `MEDIAGATE_MAX_JOB_BYTES` and `MEDIAGATE_MAX_RECIPIENTS` within their accepted ranges
    /// (commands that publish jobs check only these).
    pub fn job_limits_valid(&self) -> Result<(), InvalidSetting> {
        check_job_limits(self.job_limits)
    }

    /// Checks every setting; the first one the worker cannot run with is returned, so the
    /// binary can stop before it connects instead of failing every job of that kind.
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        if self.source_buckets.iter().all(|b| b.trim().is_empty()) {
            return Err(InvalidSetting::new(
                "MEDIAGATE_SOURCE_BUCKETS",
                self.source_buckets.join(","),
                "name at least one bucket (comma-separated)",
            ));
        }
        if self.output_bucket.trim().is_empty() {
            return Err(InvalidSetting::new("MEDIAGATE_OUTPUT_BUCKET", &self.output_bucket, "name a bucket"));
        }
        check_range("MEDIAGATE_CONCURRENCY", self.concurrency, &CONCURRENCY)?;
        check_range("MEDIAGATE_MAX_INPUT_BYTES", self.max_input_bytes, &MAX_INPUT_BYTES)?;
        self.job_limits_valid()?;
        for (var, t) in [
            ("MEDIAGATE_NUDITY_THRESHOLD_MINOR", self.thresholds.minor),
            ("MEDIAGATE_NUDITY_THRESHOLD_ADULT", self.thresholds.adult),
        ] {
            if !(0.0..=1.0).contains(&t) {
                return Err(InvalidSetting::new(var, t, "use a score from 0 to 1"));
            }
        }
        self.media.check().map_err(from_media)?;
        self.memory()?;
        check_range("MEDIAGATE_CLASSIFIER_THREADS", self.classifier_threads, &CLASSIFIER_THREADS)?;
        self.bank_specs()?;
        check_range("MEDIAGATE_HASH_BANK_REFRESH_S", self.banks.refresh_s, &BANK_REFRESH_S)?;
        check_range("MEDIAGATE_PDQ_MAX_DISTANCE", self.banks.pdq_max_distance, &PDQ_MAX_DISTANCE)?;
        check_range("MEDIAGATE_PDQ_MIN_QUALITY", self.banks.pdq_min_quality, &PDQ_MIN_QUALITY)?;
        Ok(())
    }

    /// Every bank to load, in `MEDIAGATE_HASH_BANKS` order, then `confirmed` (§8) when a
    /// quarantine bucket is configured.
    pub fn bank_specs(&self) -> Result<Vec<crate::banks::BankSpec>, InvalidSetting> {
        let mut specs = crate::banks::parse_specs(&self.banks.banks)
            .map_err(|e| InvalidSetting::new("MEDIAGATE_HASH_BANKS", &self.banks.banks, e))?;
        if let Some(q) = &self.quarantine_bucket {
            specs.push(crate::banks::confirmed_spec(q));
        }
        Ok(specs)
    }

    /// How the memory budget is split: the worker's reserve, the inputs in hand (one per slot
    /// and one waiting, each up to the input limit, but no more than a third of what the worker
    /// does not reserve), and what is left shared by the media children (at most
    /// [`MAX_CHILD_MEMORY_MB`] each). Every input is held once (a sealed memfd that the child maps
    /// read-only), so these three add up to the most the worker's processes can hold.
    pub fn memory(&self) -> Result<MemoryPlan, InvalidSetting> {
        check_range("MEDIAGATE_MEMORY_MB", self.memory_mb, &MEMORY_MB)?;
        let mib = 1u64 << 20;
        let slots = self.concurrency.max(1) as u64;
        let max_input_mb = self.max_input_bytes.div_ceil(mib);
        let needed = WORKER_RESERVE_MB + max_input_mb + slots * MIN_CHILD_MEMORY_MB;
        let avail = self.memory_mb.saturating_sub(WORKER_RESERVE_MB);
        if self.memory_mb < needed {
            return Err(InvalidSetting::new(
                "MEDIAGATE_MEMORY_MB",
                self.memory_mb,
                format!(
                    "with MEDIAGATE_CONCURRENCY={} and MEDIAGATE_MAX_INPUT_BYTES={} it must be at least {needed} \
                     ({WORKER_RESERVE_MB} for the worker, {max_input_mb} for one input, {MIN_CHILD_MEMORY_MB} for each \
                     media child); give the worker more memory or lower the concurrency",
                    self.concurrency, self.max_input_bytes
                ),
            ));
        }
        let inputs_mb = (max_input_mb * (slots + 1)).min((avail / 3).max(max_input_mb));
        let child_mb = match self.sandbox_memory_mb {
            Some(mb) => {
                check_range("MEDIAGATE_SANDBOX_MEMORY_MB", mb, &SANDBOX_MEMORY_MB)?;
                let most = (avail - inputs_mb) / slots;
                if mb > most {
                    return Err(InvalidSetting::new(
                        "MEDIAGATE_SANDBOX_MEMORY_MB",
                        mb,
                        format!(
                            "{} children of {mb} MiB do not fit in MEDIAGATE_MEMORY_MB={} beside the worker \
                             ({WORKER_RESERVE_MB} MiB) and its inputs ({inputs_mb} MiB): use at most {most}, or leave \
                             it unset",
                            slots, self.memory_mb
                        ),
                    ));
                }
                mb
            }
            None => ((avail - inputs_mb) / slots).min(MAX_CHILD_MEMORY_MB),
        };
        Ok(MemoryPlan {
            total_mb: self.memory_mb,
            worker_mb: WORKER_RESERVE_MB,
            inputs_bytes: inputs_mb * mib,
            child_mb,
            children: slots,
        })
    }

    /// The sandbox children's memory limit in bytes (the budget's share; see [`WorkerConfig::memory`]).
    pub fn sandbox_memory_bytes(&self) -> u64 {
        self.memory().map(|m| m.child_mb).unwrap_or(MIN_CHILD_MEMORY_MB).saturating_mul(1 << 20)
    }
}

/// The split of `MEDIAGATE_MEMORY_MB` ([`WorkerConfig::memory`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryPlan {
    /// The whole budget, MiB.
    pub total_mb: u64,
    /// Kept for the worker process itself, MiB.
    pub worker_mb: u64,
    /// The budget of input bytes in hand (fetched, not yet done), bytes.
    pub inputs_bytes: u64,
    /// Each media child's memory limit, MiB.
    pub child_mb: u64,
    /// Media children at once (the slots).
    pub children: u64,
}

impl MemoryPlan {
    /// The most the worker's processes may hold between them, MiB.
    pub fn committed_mb(&self) -> u64 {
        self.worker_mb + self.inputs_bytes / (1 << 20) + self.children * self.child_mb
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use mediagate_media::{FrameSampling, Limits, PhotoSettings, VideoSettings, VoiceSettings};

    use super::*;

    fn config() -> WorkerConfig {
        WorkerConfig::defaults(mediagate_classify::resolve_model_paths(), 2, 2048)
    }

    fn refused(c: WorkerConfig) -> InvalidSetting {
        c.validate().expect_err("must be refused")
    }

    #[test]
    fn the_defaults_pass() {
        assert_eq!(config().validate(), Ok(()));
    }

    // One bad value of each family, each named by its variable with what would be accepted.

    #[test]
    fn buckets() {
        let e = refused(WorkerConfig { source_buckets: vec![" ".into()], ..config() });
        assert_eq!(e.var, "MEDIAGATE_SOURCE_BUCKETS");
        assert_eq!(refused(WorkerConfig { output_bucket: String::new(), ..config() }).var, "MEDIAGATE_OUTPUT_BUCKET");
    }

    #[test]
    fn limits() {
        let c = WorkerConfig {
            media: MediaSettings { limits: Limits { max_pixels: 0, ..Limits::DEFAULT }, ..MediaSettings::DEFAULT },
            ..config()
        };
        let e = refused(c);
        assert_eq!((e.var, e.value.as_str()), ("MEDIAGATE_IMAGE_MAX_PIXELS", "0"));
        assert_eq!(e.accepted, "use a value from 1 to 1000000000");
        assert_eq!(refused(WorkerConfig { max_input_bytes: 0, ..config() }).var, "MEDIAGATE_MAX_INPUT_BYTES");
        let limits = |max_bytes, max_recipients| WorkerConfig {
            job_limits: JobLimits { max_bytes, max_recipients },
            ..config()
        };
        assert_eq!(refused(limits(100, 256)).var, "MEDIAGATE_MAX_JOB_BYTES");
        assert_eq!(refused(limits(1 << 20, 0)).var, "MEDIAGATE_MAX_RECIPIENTS");
        assert!(limits(1024, 1).validate().is_ok());
    }

    #[test]
    fn thresholds() {
        let e = refused(WorkerConfig { thresholds: Thresholds { minor: 1.5, adult: 0.8 }, ..config() });
        assert_eq!(e.var, "MEDIAGATE_NUDITY_THRESHOLD_MINOR");
        let e = refused(WorkerConfig { thresholds: Thresholds { minor: 0.5, adult: f64::NAN }, ..config() });
        assert_eq!(e.var, "MEDIAGATE_NUDITY_THRESHOLD_ADULT");
    }

    #[test]
    fn photo() {
        let media = MediaSettings {
            photo: PhotoSettings { thumb_edge: 8, ..PhotoSettings::DEFAULT },
            ..MediaSettings::DEFAULT
        };
        let e = refused(WorkerConfig { media, ..config() });
        assert_eq!(e.var, "MEDIAGATE_PHOTO_THUMB_EDGE");
        assert_eq!(e.accepted, "use a value from 16 to 8192");
    }

    #[test]
    fn voice() {
        let media = MediaSettings {
            voice: VoiceSettings { bitrate: 1_000, ..VoiceSettings::DEFAULT },
            ..MediaSettings::DEFAULT
        };
        assert_eq!(refused(WorkerConfig { media, ..config() }).var, "MEDIAGATE_VOICE_BITRATE");
    }

    #[test]
    fn video() {
        let media =
            MediaSettings { video: VideoSettings { crf: 60, ..VideoSettings::DEFAULT }, ..MediaSettings::DEFAULT };
        let e = refused(WorkerConfig { media, ..config() });
        assert_eq!(
            (e.var, e.value.as_str(), e.accepted.as_str()),
            ("MEDIAGATE_VIDEO_CRF", "60", "use a value from 0 to 51")
        );
        let media =
            MediaSettings { video: VideoSettings { threads: 0, ..VideoSettings::DEFAULT }, ..MediaSettings::DEFAULT };
        assert_eq!(refused(WorkerConfig { media, ..config() }).var, "MEDIAGATE_VIDEO_THREADS");
        let media = MediaSettings {
            video: VideoSettings { budget: Duration::ZERO, ..VideoSettings::DEFAULT },
            ..MediaSettings::DEFAULT
        };
        assert_eq!(refused(WorkerConfig { media, ..config() }).var, "MEDIAGATE_VIDEO_BUDGET_S");
    }

    #[test]
    fn sampling() {
        let media = MediaSettings {
            sampling: FrameSampling { max_frames: 0, ..FrameSampling::DEFAULT },
            ..MediaSettings::DEFAULT
        };
        assert_eq!(refused(WorkerConfig { media, ..config() }).var, "MEDIAGATE_VIDEO_MAX_FRAMES");
        let media = MediaSettings {
            sampling: FrameSampling { min_interval: Duration::from_millis(200), ..FrameSampling::DEFAULT },
            ..MediaSettings::DEFAULT
        };
        assert_eq!(refused(WorkerConfig { media, ..config() }).var, "MEDIAGATE_VIDEO_FRAME_INTERVAL_MS");
    }

    #[test]
    fn worker() {
        assert_eq!(refused(WorkerConfig { concurrency: 0, ..config() }).var, "MEDIAGATE_CONCURRENCY");
        assert_eq!(refused(WorkerConfig { sandbox_memory_mb: Some(1), ..config() }).var, "MEDIAGATE_SANDBOX_MEMORY_MB");
        assert_eq!(refused(WorkerConfig { classifier_threads: 0, ..config() }).var, "MEDIAGATE_CLASSIFIER_THREADS");
    }

    #[test]
    fn memory() {
        // The compose file's 2 GiB, two slots, 200 MiB inputs: a third of what is not the
        // worker's for inputs, the rest split between the two children, all within the budget.
        let plan = config().memory().unwrap();
        assert_eq!((plan.worker_mb, plan.inputs_bytes >> 20, plan.child_mb, plan.children), (320, 576, 576, 2));
        assert!(plan.committed_mb() <= 2048);
        // Plenty of memory: three inputs, and children at the cap.
        let big = WorkerConfig { memory_mb: 65536, ..config() }.memory().unwrap();
        assert_eq!((big.inputs_bytes >> 20, big.child_mb), (600, MAX_CHILD_MEMORY_MB));
        // Too little for the slots: refused at start-up, saying what would do.
        let e = refused(WorkerConfig { memory_mb: 1024, ..config() });
        assert_eq!(e.var, "MEDIAGATE_MEMORY_MB");
        assert!(e.accepted.contains("at least 1288"), "{e}");
        // An explicit child limit must fit beside the rest.
        let e = refused(WorkerConfig { sandbox_memory_mb: Some(1024), ..config() });
        assert_eq!(e.var, "MEDIAGATE_SANDBOX_MEMORY_MB");
        assert!(e.accepted.contains("at most 576"), "{e}");
        let small = WorkerConfig { sandbox_memory_mb: Some(64), ..config() };
        assert_eq!(small.memory().unwrap().child_mb, 64);
        assert_eq!(small.sandbox_memory_bytes(), 64 << 20);
    }

    #[test]
    fn banks() {
        let banks = |b: BankSettings| refused(WorkerConfig { banks: b, ..config() });
        let e = banks(BankSettings { banks: "confirmed=/x".into(), ..BankSettings::DEFAULT });
        assert_eq!(e.var, "MEDIAGATE_HASH_BANKS");
        assert!(e.accepted.contains("reserved"), "{e}");
        assert_eq!(banks(BankSettings { refresh_s: 0, ..BankSettings::DEFAULT }).var, "MEDIAGATE_HASH_BANK_REFRESH_S");
        assert_eq!(
            banks(BankSettings { pdq_max_distance: 65, ..BankSettings::DEFAULT }).var,
            "MEDIAGATE_PDQ_MAX_DISTANCE"
        );
        assert_eq!(
            banks(BankSettings { pdq_min_quality: 101, ..BankSettings::DEFAULT }).var,
            "MEDIAGATE_PDQ_MIN_QUALITY"
        );
        let ok = WorkerConfig {
            banks: BankSettings { banks: "a=/x,b=s3://q/p/".into(), ..BankSettings::DEFAULT },
            ..config()
        };
        let names: Vec<_> = ok.bank_specs().unwrap().into_iter().map(|s| s.name).collect();
        assert_eq!(names, ["a", "b", "confirmed"]);
    }

    /// Each media field's variable is one the binary reads (a flag of `cli.rs` with that `env`),
    /// so a setting out of range is reported under the name an operator can set.
    #[test]
    fn every_settable_media_field_has_its_variable() {
        let cli = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../mediagate/src/cli.rs")).unwrap();
        let mut settable = 0;
        for field in Setting::ALL {
            if let Some(var) = media_var(field) {
                assert!(cli.contains(&format!("env = \"{var}\"")), "{field}: {var} is no flag of the binary");
                settable += 1;
            }
        }
        assert_eq!(settable, 14);
    }
}
