//! Command line and environment: every setting is a flag and an env var (contract §6).

use clap::{Args, Parser, Subcommand, ValueEnum};
use mediagate_contract::{settings, Thresholds};
use mediagate_media::{FrameSampling, Limits, PhotoSettings, VideoSettings, VoiceSettings};

/// mediagate: the media pipeline behind private messaging.
#[derive(Debug, Parser)]
#[command(name = "mediagate", version, about, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    pub common: Common,
    #[command(subcommand)]
    pub command: Command,
}

// Parsed once per process: the size of the worker's variant costs nothing worth a box.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Consume and process jobs until SIGTERM/SIGINT, then finish in-flight jobs and exit 0.
    Worker(WorkerArgs),
    /// Upload files to the first source bucket and publish a job (optionally wait for its verdict).
    Submit(SubmitArgs),
    /// The whole job on this machine, with no broker and no S3: the same rules (but the source
    /// bucket rule), sandbox, classifier and local-file hash banks; outputs written under --out,
    /// the verdict printed as JSON. Exit 0 whatever the verdict, 1 on an error. Takes the
    /// worker's flags and variables.
    Inspect(InspectArgs),
    /// Publish stored jobs again from `manifests/` (new model, sizes or limits) on the
    /// low-priority `reprocess` queue.
    Reprocess(ReprocessArgs),
    /// Create the configured source, output, quarantine and manifest buckets if missing
    /// (local set-up and first deployment; the worker itself never creates buckets).
    EnsureBuckets,
    /// Declare contract §1's exchanges, queues and bindings with their exact arguments, and exit
    /// (0 when all are in place, 1 when the broker refuses one, naming it); consumes nothing.
    /// For a new broker, a compose init step or a deployment hook, before producers start.
    EnsureTopology,
    /// A moderator's review of blocked items: list them, release one, or confirm one as content
    /// nobody may send (contract §9).
    #[command(subcommand)]
    Review(ReviewCommand),
    /// Delete what is stored for jobs (a privacy request): outputs, manifest and quarantine
    /// copies, each key printed; the originals of `hash.matched` items are kept as evidence
    /// unless --include-evidence. Not reached: the producer's uploads, verdicts and escalations
    /// already delivered.
    Erase(EraseArgs),
    /// Check a deployment before (or while) running workers: the settings, the broker and its
    /// topology, every bucket's permissions, the model, the sandbox and the hash banks; one line
    /// per check, exit 0 only when all pass. Takes the worker's flags and variables.
    Doctor(DoctorArgs),
}

/// `mediagate doctor`.
#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// The worker's settings, judged as a worker started with them would run.
    #[command(flatten)]
    pub worker: WorkerArgs,
    /// One JSON object with every check instead of the lines.
    #[arg(long)]
    pub json: bool,
    /// RabbitMQ's management API, asked for §1's bindings (AMQP cannot list them); default:
    /// http://HOST:15672 on the AMQP URL's host, with its user and vhost.
    #[arg(long)]
    pub management_url: Option<String>,
}

/// `mediagate erase`.
#[derive(Debug, Args)]
pub struct EraseArgs {
    /// The jobs to erase.
    pub job_ids: Vec<String>,
    /// Also erase the jobs listed in this file, one job id a line (blank lines and `#` comments
    /// skipped); a progress bar shows on a terminal.
    #[arg(long)]
    pub from_file: Option<std::path::PathBuf>,
    /// Also delete the quarantined originals of `hash.matched` items (kept as evidence for a
    /// report otherwise).
    #[arg(long)]
    pub include_evidence: bool,
    /// Only list what would be deleted and kept.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Subcommand)]
pub enum ReviewCommand {
    /// The blocked items in quarantine, newest first: job, item, revision, reason, score or match,
    /// latest decision.
    List(ReviewListArgs),
    /// Release a blocked item: it is processed again from its quarantined original and cleared
    /// (the job is republished on the live lane with its revision + 1).
    Release(DecideArgs),
    /// Confirm a blocked item as content nobody may send to anybody (abuse material,
    /// non-consensual imagery; not adult nudity): its hashes go into the `confirmed` bank, so a
    /// re-send or near copy is blocked in any job.
    Confirm(DecideArgs),
}

#[derive(Debug, Args)]
pub struct ReviewListArgs {
    /// Only items whose verdict's `processed_at` is at or after this RFC 3339 time.
    #[arg(long)]
    pub since: Option<String>,
    /// Only items blocked with this reason code (`nudity.flagged`, `hash.matched`).
    #[arg(long)]
    pub reason: Option<String>,
    /// At most this many items.
    #[arg(long, default_value_t = 100)]
    pub limit: usize,
    /// One JSON object a line.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct DecideArgs {
    /// The job.
    pub job_id: String,
    /// The blocked item.
    pub item_id: String,
    /// Who decides: an identifier ([A-Za-z0-9._-], not starting with `.`), written into the
    /// decision and, for a confirm, into the bank's labels.
    #[arg(long)]
    pub by: String,
    /// Why, for the audit trail.
    #[arg(long)]
    pub note: Option<String>,
    /// PDQ hashes below this quality are not written into the `confirmed` bank (the worker does
    /// not match them either).
    #[arg(long, env = "MEDIAGATE_PDQ_MIN_QUALITY", default_value_t = mediagate_worker::DEFAULT_PDQ_MIN_QUALITY)]
    pub pdq_min_quality: u8,
}

/// Connection and bucket settings shared by every command.
#[derive(Debug, Args)]
pub struct Common {
    /// RabbitMQ URL (AMQP 0-9-1), or the URLs of a cluster's nodes separated by commas: a random
    /// one first, the others in a random order when a connection fails or is lost (contract §6).
    #[arg(
        long = "amqp-url",
        env = "MEDIAGATE_AMQP_URL",
        id = "amqp_url",
        value_name = "AMQP_URL",
        default_value = settings::DEFAULT_AMQP_URL,
        hide_env_values = true,
        global = true
    )]
    pub amqp_url_text: String,
    /// `amqp_url_text` parsed ([`Common::parse_amqp_urls`], which `main` calls first).
    #[arg(skip)]
    pub amqp_url: mediagate_queue::AmqpUrls,
    /// S3-compatible endpoint (path-style addressing); unset means AWS S3.
    #[arg(long, env = "MEDIAGATE_S3_ENDPOINT", global = true)]
    pub s3_endpoint: Option<String>,
    /// Access key; unset uses the AWS default credential chain.
    #[arg(long, env = "AWS_ACCESS_KEY_ID", hide_env_values = true, global = true)]
    pub aws_access_key_id: Option<String>,
    /// Secret key.
    #[arg(long, env = "AWS_SECRET_ACCESS_KEY", hide_env_values = true, global = true)]
    pub aws_secret_access_key: Option<String>,
    /// Region.
    #[arg(long, env = "AWS_REGION", global = true)]
    pub aws_region: Option<String>,
    /// Allow-list of source buckets, comma-separated; `submit` uploads to the first.
    #[arg(
        long,
        env = "MEDIAGATE_SOURCE_BUCKETS",
        default_value = settings::DEFAULT_SOURCE_BUCKET,
        value_delimiter = ',',
        global = true
    )]
    pub source_buckets: Vec<String>,
    /// Bucket for cleared media.
    #[arg(long, env = "MEDIAGATE_OUTPUT_BUCKET", default_value = settings::DEFAULT_OUTPUT_BUCKET, global = true)]
    pub output_bucket: String,
    /// Bucket for blocked originals; empty keeps none.
    #[arg(long, env = "MEDIAGATE_QUARANTINE_BUCKET", default_value = settings::DEFAULT_QUARANTINE_BUCKET, global = true)]
    pub quarantine_bucket: String,
    /// Bucket for `manifests/`; defaults to the output bucket.
    #[arg(long, env = "MEDIAGATE_MANIFEST_BUCKET", global = true)]
    pub manifest_bucket: Option<String>,
    /// S3 attempts per operation before a transient fault returns the job to the queue.
    #[arg(
        long,
        env = "MEDIAGATE_S3_ATTEMPTS",
        default_value_t = mediagate_store::RetryPolicy::DEFAULT.attempts,
        global = true
    )]
    pub s3_attempts: u32,
    /// Largest job body, in bytes (contract §2): the worker refuses a larger one as
    /// `job.invalid` without parsing it; `submit`, `reprocess` and `review release` never publish one.
    #[arg(long, env = "MEDIAGATE_MAX_JOB_BYTES", default_value_t = settings::DEFAULT_MAX_JOB_BYTES, global = true)]
    pub max_job_bytes: usize,
    /// Most recipients a job may name (contract §2), counted while parsing.
    #[arg(long, env = "MEDIAGATE_MAX_RECIPIENTS", default_value_t = settings::DEFAULT_MAX_RECIPIENTS, global = true)]
    pub max_recipients: usize,
    /// Log format. Unset: JSON for the worker and whenever stderr is not a terminal; short
    /// text at `warn` (unless RUST_LOG says otherwise) for the other commands at a terminal.
    #[arg(long, env = "MEDIAGATE_LOG_FORMAT", value_enum, global = true)]
    pub log_format: Option<LogFormat>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Json,
    Text,
}

/// Processing settings of `mediagate worker`. Every default is the constant its type keeps
/// (`mediagate_contract::settings`, `MediaSettings::DEFAULT`, `mediagate_worker`); values are
/// read wide and checked by `WorkerConfig::validate` at start-up, which names the variable.
#[derive(Debug, Args)]
pub struct WorkerArgs {
    /// Items processed at once (live jobs in hand: twice as many at first, then as many as keep
    /// the slots busy, up to 64); default: the number of CPUs.
    #[arg(long, env = "MEDIAGATE_CONCURRENCY")]
    pub concurrency: Option<usize>,
    /// Score at or above which an item is blocked when anyone in the job is 16–17.
    #[arg(long, env = "MEDIAGATE_NUDITY_THRESHOLD_MINOR", default_value_t = Thresholds::DEFAULT.minor)]
    pub nudity_threshold_minor: f64,
    /// Score at or above which an item is blocked when an adult recipient opted in.
    #[arg(long, env = "MEDIAGATE_NUDITY_THRESHOLD_ADULT", default_value_t = Thresholds::DEFAULT.adult)]
    pub nudity_threshold_adult: f64,
    /// Longest voice note, in ms of decoded audio (plus a 250 ms padding allowance).
    #[arg(long, env = "MEDIAGATE_VOICE_MAX_MS", default_value_t = Limits::DEFAULT.voice_max_ms)]
    pub voice_max_ms: u64,
    /// Longest video, in ms.
    #[arg(long, env = "MEDIAGATE_VIDEO_MAX_MS", default_value_t = Limits::DEFAULT.video_max_ms)]
    pub video_max_ms: u64,
    /// Largest input file, in bytes (checked against the GET's Content-Length before the body is read).
    #[arg(long, env = "MEDIAGATE_MAX_INPUT_BYTES", default_value_t = settings::DEFAULT_MAX_INPUT_BYTES)]
    pub max_input_bytes: u64,
    /// Most pixels an image (or video frame) may have (checked from the header).
    #[arg(long, env = "MEDIAGATE_IMAGE_MAX_PIXELS", default_value_t = Limits::DEFAULT.max_pixels)]
    pub image_max_pixels: u64,
    /// Long edge of the `full` photo variant.
    #[arg(long, env = "MEDIAGATE_PHOTO_FULL_EDGE", default_value_t = PhotoSettings::DEFAULT.full_edge)]
    pub photo_full_edge: u32,
    /// Long edge of the `thumb` photo variant.
    #[arg(long, env = "MEDIAGATE_PHOTO_THUMB_EDGE", default_value_t = PhotoSettings::DEFAULT.thumb_edge)]
    pub photo_thumb_edge: u32,
    /// JPEG quality of photo variants (1–100).
    #[arg(long, env = "MEDIAGATE_JPEG_QUALITY", default_value_t = PhotoSettings::DEFAULT.jpeg_quality.into())]
    pub jpeg_quality: u32,
    /// Wall-clock budget for one photo's media work, seconds.
    #[arg(long, env = "MEDIAGATE_PHOTO_BUDGET_S", default_value_t = PhotoSettings::DEFAULT.budget.as_secs())]
    pub photo_budget_s: u64,
    /// Opus bitrate of the `voice` variant, bit/s.
    #[arg(long, env = "MEDIAGATE_VOICE_BITRATE", default_value_t = VoiceSettings::DEFAULT.bitrate)]
    pub voice_bitrate: u32,
    /// Wall-clock budget for one voice note, seconds.
    #[arg(long, env = "MEDIAGATE_VOICE_BUDGET_S", default_value_t = VoiceSettings::DEFAULT.budget.as_secs())]
    pub voice_budget_s: u64,
    /// libx264 CRF of the `video` variant (0–51).
    #[arg(long, env = "MEDIAGATE_VIDEO_CRF", default_value_t = VideoSettings::DEFAULT.crf.into())]
    pub video_crf: u32,
    /// libx264 preset of the `video` variant (ultrafast … veryslow).
    #[arg(long, env = "MEDIAGATE_VIDEO_PRESET", default_value_t = VideoSettings::DEFAULT.preset.as_str().to_string())]
    pub video_preset: String,
    /// Decoder and encoder threads per video (fixed, so outputs are byte-identical).
    #[arg(long, env = "MEDIAGATE_VIDEO_THREADS", default_value_t = VideoSettings::DEFAULT.threads)]
    pub video_threads: usize,
    /// Wall-clock budget for one video, seconds.
    #[arg(long, env = "MEDIAGATE_VIDEO_BUDGET_S", default_value_t = VideoSettings::DEFAULT.budget.as_secs())]
    pub video_budget_s: u64,
    /// Video passthrough (contract §4): `verified` copies a stream that already fits after a
    /// complete verifying decode; `off` re-encodes every stream.
    #[arg(long, env = "MEDIAGATE_VIDEO_PASSTHROUGH", default_value_t = VideoSettings::DEFAULT.passthrough.as_str().to_string())]
    pub video_passthrough: String,
    /// The open_nsfw model; default: `models/open-nsfw.onnx` of the working directory, else
    /// beside the binary (`make models` puts it there, verified by sha256 when loaded).
    #[arg(long, env = "MEDIAGATE_MODEL_PATH")]
    pub model_path: Option<std::path::PathBuf>,
    /// The ONNX Runtime library; default: `models/libonnxruntime.so.1.31.1`, looked up as the model is.
    #[arg(long, env = "MEDIAGATE_ORT_LIB")]
    pub ort_lib: Option<std::path::PathBuf>,
    /// ONNX Runtime intra-op threads of the classifier; default: CPUs / concurrency (at least 1).
    #[arg(long, env = "MEDIAGATE_CLASSIFIER_THREADS")]
    pub classifier_threads: Option<usize>,
    /// Least time between two video frames the classifier scores, ms (contract: 1000).
    #[arg(
        long,
        env = "MEDIAGATE_VIDEO_FRAME_INTERVAL_MS",
        default_value_t = FrameSampling::DEFAULT.min_interval.as_millis() as u64
    )]
    pub video_frame_interval_ms: u64,
    /// Most video frames scored per video, the poster included; they are spread evenly over
    /// the whole clip.
    #[arg(long, env = "MEDIAGATE_VIDEO_MAX_FRAMES", default_value_t = FrameSampling::DEFAULT.max_frames)]
    pub video_max_frames: usize,
    /// Where media work runs: `process` (a fresh, locked-down child process per item: memory and
    /// CPU limits, no network, no files, killed at its budget) or `off` (in the worker itself:
    /// a decoder bug is then a bug of the worker; refused unless
    /// MEDIAGATE_DEV_ALLOW_UNSANDBOXED=1, for debugging and development only).
    #[arg(long, env = "MEDIAGATE_SANDBOX", value_enum, default_value_t = SandboxArg::Process)]
    pub sandbox: SandboxArg,
    /// Development only: accept MEDIAGATE_SANDBOX=off (media parsed inside the worker process,
    /// with the worker's network, files and credentials within reach of a hostile file).
    #[arg(long, env = "MEDIAGATE_DEV_ALLOW_UNSANDBOXED", value_parser = clap::builder::BoolishValueParser::new(), default_value_t = false)]
    pub dev_allow_unsandboxed: bool,
    /// The worker's whole memory, MiB: split between the worker itself, the inputs in hand and
    /// the media sandbox processes (each gets its share as its memory limit). Default: the
    /// container's memory limit (cgroup) when there is one, else 4096.
    #[arg(long, env = "MEDIAGATE_MEMORY_MB")]
    pub memory_mb: Option<u64>,
    /// Memory limit of each media sandbox process (heap, writable mappings and thread stacks),
    /// MiB; default: its share of MEDIAGATE_MEMORY_MB. When set, it must fit in that budget.
    #[arg(long, env = "MEDIAGATE_SANDBOX_MEMORY_MB")]
    pub sandbox_memory_mb: Option<u64>,
    /// Address of the HTTP endpoints `/healthz`, `/readyz` and `/metrics`; empty disables them.
    #[arg(long, env = "MEDIAGATE_METRICS_ADDR", default_value = mediagate_worker::DEFAULT_METRICS_ADDR)]
    pub metrics_addr: String,
    /// This worker's id in verdicts; default: the host name.
    #[arg(long, env = "MEDIAGATE_WORKER_ID")]
    pub worker_id: Option<String>,
    /// Hash banks of known harmful media, `name=SOURCE,…` (SOURCE: a path, s3://bucket/key or
    /// s3://bucket/prefix/); the `confirmed` bank of the quarantine bucket is always added.
    #[arg(long, env = "MEDIAGATE_HASH_BANKS", default_value = "")]
    pub hash_banks: String,
    /// Seconds between checks of the banks for changes.
    #[arg(long, env = "MEDIAGATE_HASH_BANK_REFRESH_S", default_value_t = mediagate_worker::DEFAULT_BANK_REFRESH_S)]
    pub hash_bank_refresh_s: u64,
    /// Most bits a PDQ hash may differ from a bank entry by and still match.
    #[arg(long, env = "MEDIAGATE_PDQ_MAX_DISTANCE", default_value_t = mediagate_worker::DEFAULT_PDQ_MAX_DISTANCE)]
    pub pdq_max_distance: u32,
    /// PDQ hashes below this quality (0–100) are not matched against the banks.
    #[arg(long, env = "MEDIAGATE_PDQ_MIN_QUALITY", default_value_t = mediagate_worker::DEFAULT_PDQ_MIN_QUALITY)]
    pub pdq_min_quality: u8,
}

/// `MEDIAGATE_SANDBOX`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SandboxArg {
    /// A child process per item.
    Process,
    /// In the worker process.
    Off,
}

/// `mediagate submit`.
#[derive(Debug, Args)]
pub struct SubmitArgs {
    #[command(flatten)]
    pub job: JobArgs,
    /// Wait for the verdict and print it as JSON.
    #[arg(long)]
    pub wait: bool,
    /// Seconds to wait for the verdict.
    #[arg(long, default_value_t = 120)]
    pub timeout: u64,
}

/// `mediagate inspect`.
#[derive(Debug, Args)]
pub struct InspectArgs {
    #[command(flatten)]
    pub job: JobArgs,
    /// Directory the outputs are written under, as `{item_id}/{variant}.{ext}`.
    #[arg(long, default_value = "inspect-out")]
    pub out: std::path::PathBuf,
    /// The worker's settings: the job is processed as a worker started with them would.
    #[command(flatten)]
    pub worker: WorkerArgs,
}

/// The job `submit` and `inspect` make of files and flags.
#[derive(Debug, Args)]
pub struct JobArgs {
    /// Files to send (1–9 photos/videos, or one audio file).
    #[arg(required = true)]
    pub files: Vec<std::path::PathBuf>,
    /// Job kind; default: `voice_note` when the one file is audio, else `media`.
    #[arg(long, value_enum)]
    pub kind: Option<KindArg>,
    /// The sender's age band.
    #[arg(long, value_enum, default_value_t = BandArg::Adult)]
    pub sender_age: BandArg,
    /// A recipient's age band; repeat for several recipients (default: one adult).
    #[arg(long, value_enum)]
    pub recipient_age: Vec<BandArg>,
    /// Opt the adult recipients in to the nudity filter.
    #[arg(long)]
    pub nudity_filter: bool,
    /// Mark the message as the first to a new contact (the job is then rejected by rule 4).
    #[arg(long)]
    pub first_contact: bool,
}

/// `mediagate reprocess`.
#[derive(Debug, Args)]
pub struct ReprocessArgs {
    /// Only jobs whose verdict's `processed_at` is at or after this RFC 3339 time.
    #[arg(long)]
    pub since: Option<String>,
    /// Only jobs whose verdict's `processed_at` is before this RFC 3339 time (so runs over
    /// `--since A --until B` and `--since B` never select a job twice).
    #[arg(long)]
    pub until: Option<String>,
    /// Only jobs whose verdict has this status; repeat for several (default: all).
    #[arg(long, value_parser = ["cleared", "blocked", "rejected", "partial", "failed"])]
    pub status: Vec<String>,
    /// Publish at most N jobs a second (default: as fast as the broker confirms), so a batch
    /// cannot flood the reprocess lane.
    #[arg(long, value_name = "N")]
    pub max_rate: Option<f64>,
    /// Only count and list the matching jobs; publish nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Progress file: the last manifest (or index entry) handled is saved here after each
    /// chunk, and a run started with an existing file resumes after it.
    #[arg(long)]
    pub state: Option<std::path::PathBuf>,
    /// Write the §4 index (`manifests-index/`) for every manifest that exists, then
    /// `manifests-index/complete-since`; publishes nothing. Run it once every worker writes the
    /// index (after a rollout). Takes no filter.
    #[arg(long, conflicts_with_all = ["since", "until", "status", "max_rate", "dry_run", "state"])]
    pub backfill_index: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum KindArg {
    Media,
    VoiceNote,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BandArg {
    #[value(name = "under_16")]
    Under16,
    #[value(name = "16_17")]
    Age16To17,
    #[value(name = "adult")]
    Adult,
}

impl BandArg {
    /// The contract's age band.
    pub fn band(self) -> mediagate_contract::AgeBand {
        match self {
            BandArg::Under16 => mediagate_contract::AgeBand::Under16,
            BandArg::Age16To17 => mediagate_contract::AgeBand::Age16To17,
            BandArg::Adult => mediagate_contract::AgeBand::Adult,
        }
    }
}

impl Common {
    /// Parses `MEDIAGATE_AMQP_URL` into [`Common::amqp_url`]. Not a clap value parser: clap's
    /// error would repeat the value, passwords included; this one names the entry, redacted.
    pub fn parse_amqp_urls(&mut self) -> Result<(), mediagate_queue::QueueError> {
        self.amqp_url = mediagate_queue::AmqpUrls::parse(&self.amqp_url_text)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    /// docs/settings.md's table is generated from the flags above, the one source of every
    /// setting, its variable, default and description; `MEDIAGATE_WRITE_DOCS=1` rewrites it.
    #[test]
    fn docs_settings_lists_every_setting_as_the_flags_define_it() {
        mediagate_testkit::docs::check_generated(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/settings.md"),
            "settings",
            "Settings",
            &settings_table(),
            "cargo test -p mediagate --bin mediagate docs_settings",
        );
    }

    /// Every setting with a variable, the shared ones first, then the worker's (which `inspect`
    /// and `doctor` take too), then any other command's not already listed.
    fn settings_table() -> String {
        let cli = Cli::command();
        let mut seen = std::collections::BTreeSet::new();
        let mut out = String::from("| variable | flag | default | what it sets |\n|---|---|---|---|\n");
        let commands = std::iter::once(&cli)
            .chain(cli.get_subcommands())
            .chain(cli.get_subcommands().flat_map(|c| c.get_subcommands()));
        for cmd in commands {
            for arg in cmd.get_arguments() {
                let Some(env) = arg.get_env().and_then(|e| e.to_str()) else { continue };
                if !seen.insert(env.to_string()) {
                    continue;
                }
                let flag = arg.get_long().map(|l| format!("`--{l}`")).unwrap_or_default();
                let defaults: Vec<String> =
                    arg.get_default_values().iter().map(|v| v.to_string_lossy().into_owned()).collect();
                let default = match defaults.join(",") {
                    _ if defaults.is_empty() => "—".to_string(),
                    d if d.is_empty() => "empty".to_string(),
                    d => format!("`{d}`"),
                };
                let help = arg.get_long_help().or(arg.get_help()).map(|h| h.to_string()).unwrap_or_default();
                let help = help.split_whitespace().collect::<Vec<_>>().join(" ").replace('|', "\\|");
                out.push_str(&format!("| `{env}` | {flag} | {default} | {help} |\n"));
            }
        }
        out
    }

    /// Each variable's flag is its name without `MEDIAGATE_`, in lower case with dashes
    /// (`MEDIAGATE_VIDEO_CRF` is `--video-crf`), as the README promises.
    #[test]
    fn every_variable_has_the_flag_of_its_name() {
        let cli = Cli::command();
        let mut wrong = Vec::new();
        for cmd in std::iter::once(&cli)
            .chain(cli.get_subcommands())
            .chain(cli.get_subcommands().flat_map(|c| c.get_subcommands()))
        {
            for arg in cmd.get_arguments() {
                let Some(env) = arg.get_env().and_then(|e| e.to_str()) else { continue };
                let expected = env.strip_prefix("MEDIAGATE_").unwrap_or(env).to_lowercase().replace('_', "-");
                if arg.get_long() != Some(expected.as_str()) {
                    wrong.push(format!("{env}: --{}", arg.get_long().unwrap_or("(none)")));
                }
            }
        }
        assert!(wrong.is_empty(), "flags not named after their variables: {wrong:?}");
    }

    #[test]
    fn the_cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn submit_takes_repeated_recipient_ages() {
        let cli = Cli::try_parse_from([
            "mediagate",
            "submit",
            "a.jpg",
            "b.png",
            "--recipient-age",
            "16_17",
            "--recipient-age",
            "adult",
            "--nudity-filter",
            "--wait",
            "--timeout",
            "5",
        ])
        .unwrap();
        let Command::Submit(s) = cli.command else { panic!() };
        assert_eq!(s.job.files.len(), 2);
        assert_eq!(s.job.recipient_age, vec![BandArg::Age16To17, BandArg::Adult]);
        assert!(s.job.nudity_filter && s.wait && s.timeout == 5);
    }

    #[test]
    fn inspect_takes_the_job_flags_the_worker_settings_and_a_directory() {
        let cli = Cli::try_parse_from([
            "mediagate",
            "inspect",
            "a.jpg",
            "--sender-age",
            "16_17",
            "--video-max-frames",
            "8",
            "--out",
            "/tmp/x",
        ])
        .unwrap();
        let Command::Inspect(i) = cli.command else { panic!() };
        assert_eq!(i.job.files, vec![std::path::PathBuf::from("a.jpg")]);
        assert_eq!(i.job.sender_age, BandArg::Age16To17);
        assert_eq!(i.worker.video_max_frames, 8);
        assert_eq!(i.out, std::path::PathBuf::from("/tmp/x"));
        let cli = Cli::try_parse_from(["mediagate", "inspect", "a.jpg"]).unwrap();
        let Command::Inspect(i) = cli.command else { panic!() };
        assert_eq!(i.out, std::path::PathBuf::from("inspect-out"));
    }
}
