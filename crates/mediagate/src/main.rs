//! The `mediagate` binary: a thin layer of commands over the library crates.

mod cli;
mod doctor;
mod erase;
mod inspect;
mod reprocess;
mod review;
mod submit;
mod topology;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use mediagate_contract::Thresholds;
use mediagate_media::{
    FrameSampling, Limits, MediaSettings, Passthrough, PhotoSettings, Preset, VideoSettings, VoiceSettings,
};
use mediagate_queue::Broker;
use mediagate_store::{RetryPolicy, Store, StoreConfig};
use mediagate_worker::banks::HashBanks;
use mediagate_worker::metrics::Metrics;
use mediagate_worker::{BankSettings, Engines, InvalidSetting, Readiness, WorkerConfig};
use tokio::sync::watch;
use tracing::{error, info, warn};

use cli::{Cli, Command, Common, LogFormat, WorkerArgs};

/// Exit status of a command given something it cannot do as asked (clap's own usage errors
/// exit 2 too): `submit` of a job over §2's limits.
pub(crate) const EXIT_USAGE: u8 = 2;

/// Exit status of `mediagate worker` when a setting is not accepted (EX_CONFIG).
const EXIT_BAD_SETTING: u8 = 78;
/// `mediagate worker` exits with this (EX_SOFTWARE) when its loop has made no progress for
/// [`WATCHDOG_LIMIT`]: something blocks it, and a restart is the cure.
const EXIT_STALLED: i32 = 70;
/// How long the worker loop may go without a beat before the watchdog ends the process: twice
/// the time after which `/healthz` reports it stuck.
const WATCHDOG_LIMIT: Duration = Duration::from_secs(2 * mediagate_worker::health::STALL_LIMIT.as_secs());

fn main() -> std::process::ExitCode {
    // A media sandbox child (started by the worker, never by hand): no CLI, no runtime.
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some(mediagate_sandbox::SERVER_ARG) {
        let format = match std::env::var("MEDIAGATE_LOG_FORMAT").as_deref() {
            Ok("text") => LogFormat::Text,
            _ => LogFormat::Json,
        };
        init_tracing(match format {
            LogFormat::Json => Logs::Json,
            LogFormat::Text => Logs::Text,
        });
        return mediagate_sandbox::server::serve(&args[1..]);
    }
    let cli = parse_cli();
    init_tracing(logs_for(&cli));
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("mediagate: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Worker(args) => worker(&cli.common, args).await,
            Command::Submit(args) => submit::run(&cli.common, args).await,
            Command::Inspect(args) => inspect::run(&cli.common, args).await,
            Command::Reprocess(args) => reprocess::run(&cli.common, args).await,
            Command::EnsureBuckets => ensure_buckets(&cli.common).await,
            Command::EnsureTopology => topology::ensure(&cli.common).await,
            Command::Review(cmd) => review::run(&cli.common, cmd).await,
            Command::Erase(args) => erase::run(&cli.common, args).await,
            Command::Doctor(args) => doctor::run(&cli.common, args).await,
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            error!(error = format!("{e:#}"), "mediagate failed");
            eprintln!("mediagate: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// The command line. `--version` (and only it: reading the libraries initialises them) also
/// lists every decoder library in the binary with the version it reports at run time.
fn parse_cli() -> Cli {
    use clap::{CommandFactory, FromArgMatches};
    let mut cmd = Cli::command();
    if std::env::args_os().skip(1).any(|a| a == "--version") {
        let report = format!("{}\n{}", env!("CARGO_PKG_VERSION"), mediagate_media::libraries());
        cmd = cmd.long_version(&*Box::leak(report.into_boxed_str()));
    }
    let matches = cmd.get_matches();
    let mut cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    // An empty entry or a broken URL in MEDIAGATE_AMQP_URL stops every command before it starts,
    // as a usage error (contract §6).
    if let Err(e) = cli.common.parse_amqp_urls() {
        eprintln!("mediagate: {e}");
        std::process::exit(2);
    }
    cli
}

/// How logs are written (always to stderr).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Logs {
    /// One JSON record a line, from `info`: for machines (the worker's default).
    Json,
    /// tracing's full text lines, from `info` (`MEDIAGATE_LOG_FORMAT=text`).
    Text,
    /// Short text lines from `warn` only: a person at a terminal running a command whose own
    /// lines (a verdict, the keys erased) must not be buried in log records.
    Terminal,
}

/// `MEDIAGATE_LOG_FORMAT` when set; else JSON for the worker and for any command whose stderr is
/// not a terminal (scripts and CI collect it), and short text for a command at a terminal.
fn logs_for(cli: &Cli) -> Logs {
    use std::io::IsTerminal;
    match (cli.common.log_format, &cli.command) {
        (Some(LogFormat::Json), _) => Logs::Json,
        (Some(LogFormat::Text), _) => Logs::Text,
        (None, Command::Worker(_)) => Logs::Json,
        (None, _) if std::io::stderr().is_terminal() => Logs::Terminal,
        (None, _) => Logs::Json,
    }
}

/// Logs go to stderr; `RUST_LOG` overrides the level.
fn init_tracing(logs: Logs) {
    // ONNX Runtime logs every graph transformation at INFO: a hundred lines per start.
    let default = if logs == Logs::Terminal { "warn" } else { "info,ort=warn" };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match logs {
        Logs::Json => builder.json().with_current_span(true).with_span_list(false).init(),
        Logs::Text => builder.init(),
        Logs::Terminal => builder.without_time().with_target(false).compact().init(),
    }
}

/// The store configuration from the common flags.
pub(crate) fn store_config(common: &Common) -> StoreConfig {
    StoreConfig {
        endpoint: common.s3_endpoint.clone().filter(|s| !s.is_empty()),
        region: common.aws_region.clone().filter(|s| !s.is_empty()),
        access_key: common.aws_access_key_id.clone().filter(|s| !s.is_empty()),
        secret_key: common.aws_secret_access_key.clone().filter(|s| !s.is_empty()),
        retry: RetryPolicy { attempts: common.s3_attempts.max(1), ..RetryPolicy::default() },
        ..StoreConfig::default()
    }
}

pub(crate) fn manifest_bucket(common: &Common) -> String {
    common.manifest_bucket.clone().filter(|s| !s.is_empty()).unwrap_or_else(|| common.output_bucket.clone())
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "mediagate".to_string())
}

/// The worker's settings from its flags and environment, checked as a whole: a value the worker
/// cannot run with is an error naming its variable, before anything is connected or loaded.
pub(crate) fn worker_config(common: &Common, args: &WorkerArgs) -> Result<WorkerConfig, InvalidSetting> {
    let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
    let concurrency = args.concurrency.unwrap_or(cpus);
    // Read wide so that an out-of-range value reaches the check (and its message), not clap's.
    let narrow = |var: &'static str, value: u32, range: std::ops::RangeInclusive<u8>| {
        mediagate_worker::check_range(var, value, &(u32::from(*range.start())..=u32::from(*range.end())))?;
        Ok::<u8, InvalidSetting>(u8::try_from(value).unwrap_or(u8::MAX))
    };
    let preset = Preset::from_name(args.video_preset.trim()).ok_or_else(|| {
        let names: Vec<&str> = Preset::ALL.iter().map(|p| p.as_str()).collect();
        InvalidSetting::new("MEDIAGATE_VIDEO_PRESET", &args.video_preset, format!("use one of {}", names.join(", ")))
    })?;
    let passthrough = Passthrough::from_name(args.video_passthrough.trim()).ok_or_else(|| {
        let names: Vec<&str> = Passthrough::ALL.iter().map(|p| p.as_str()).collect();
        InvalidSetting::new(
            "MEDIAGATE_VIDEO_PASSTHROUGH",
            &args.video_passthrough,
            format!("use one of {}", names.join(", ")),
        )
    })?;
    let metrics_addr = match args.metrics_addr.trim() {
        "" => None,
        addr => Some(addr.parse().map_err(|_| {
            InvalidSetting::new(
                "MEDIAGATE_METRICS_ADDR",
                addr,
                "use HOST:PORT with an IP address (0.0.0.0:9464), or empty for none",
            )
        })?),
    };
    let media = MediaSettings {
        limits: Limits {
            max_pixels: args.image_max_pixels,
            voice_max_ms: args.voice_max_ms,
            video_max_ms: args.video_max_ms,
        },
        photo: PhotoSettings {
            full_edge: args.photo_full_edge,
            thumb_edge: args.photo_thumb_edge,
            jpeg_quality: narrow("MEDIAGATE_JPEG_QUALITY", args.jpeg_quality, PhotoSettings::JPEG_QUALITY)?,
            budget: Duration::from_secs(args.photo_budget_s),
        },
        voice: VoiceSettings { bitrate: args.voice_bitrate, budget: Duration::from_secs(args.voice_budget_s) },
        video: VideoSettings {
            crf: narrow("MEDIAGATE_VIDEO_CRF", args.video_crf, VideoSettings::CRF)?,
            preset,
            threads: args.video_threads,
            budget: Duration::from_secs(args.video_budget_s),
            passthrough,
            ..VideoSettings::DEFAULT
        },
        sampling: FrameSampling {
            min_interval: Duration::from_millis(args.video_frame_interval_ms),
            max_frames: args.video_max_frames,
            ..FrameSampling::DEFAULT
        },
    };
    let config = WorkerConfig {
        source_buckets: common.source_buckets.iter().map(|b| b.trim().to_string()).filter(|b| !b.is_empty()).collect(),
        output_bucket: common.output_bucket.clone(),
        quarantine_bucket: Some(common.quarantine_bucket.clone()).filter(|b| !b.is_empty()),
        manifest_bucket: manifest_bucket(common),
        concurrency,
        max_input_bytes: args.max_input_bytes,
        job_limits: job_limits(common),
        thresholds: Thresholds { minor: args.nudity_threshold_minor, adult: args.nudity_threshold_adult },
        media,
        memory_mb: args.memory_mb.or_else(container_memory_mb).unwrap_or(mediagate_worker::DEFAULT_MEMORY_MB),
        sandbox_memory_mb: args.sandbox_memory_mb,
        classifier_threads: args.classifier_threads.unwrap_or_else(|| (cpus / concurrency.max(1)).max(1)),
        model_paths: model_paths(args),
        metrics_addr,
        banks: BankSettings {
            banks: args.hash_banks.clone(),
            refresh_s: args.hash_bank_refresh_s,
            pdq_max_distance: args.pdq_max_distance,
            pdq_min_quality: args.pdq_min_quality,
        },
        worker_id: args.worker_id.clone().unwrap_or_else(hostname),
        version: env!("CARGO_PKG_VERSION").to_string(),
    };
    mediagate_worker::check_range("MEDIAGATE_S3_ATTEMPTS", common.s3_attempts, &(1..=20))?;
    if args.sandbox == cli::SandboxArg::Off && !args.dev_allow_unsandboxed {
        return Err(InvalidSetting::new(
            "MEDIAGATE_SANDBOX",
            "off",
            "`process` (the default); `off` parses hostile files inside the worker, with its network, \
             files and credentials in reach, and is accepted only with MEDIAGATE_DEV_ALLOW_UNSANDBOXED=1, \
             for development",
        ));
    }
    config.validate()?;
    Ok(config)
}

/// §2's job limits as configured (`MEDIAGATE_MAX_JOB_BYTES`, `MEDIAGATE_MAX_RECIPIENTS`).
pub(crate) fn job_limits(common: &Common) -> mediagate_contract::JobLimits {
    mediagate_contract::JobLimits { max_bytes: common.max_job_bytes, max_recipients: common.max_recipients }
}

/// The memory limit of this process's cgroup (v2 `memory.max`, else v1
/// `memory.limit_in_bytes`), MiB, when one is set: what a container was given.
fn container_memory_mb() -> Option<u64> {
    let read = |p: &str| std::fs::read_to_string(p).ok().and_then(|s| s.trim().parse::<u64>().ok());
    let cgroup = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    let path_of = |prefix: &str| cgroup.lines().find_map(|l| l.strip_prefix(prefix)).map(str::trim).unwrap_or("");
    let v2 = path_of("0::");
    let v1 = cgroup.lines().find_map(|l| l.split_once(":memory:").map(|(_, p)| p.trim())).unwrap_or("");
    let bytes = read(&format!("/sys/fs/cgroup{v2}/memory.max"))
        .or_else(|| read(&format!("/sys/fs/cgroup/memory{v1}/memory.limit_in_bytes")))?;
    // v1 says "no limit" with a huge number; v2 with "max", which does not parse.
    (bytes < 1 << 50).then_some(bytes >> 20)
}

/// `mediagate worker`: runs until SIGTERM/SIGINT; reconnects to the broker with backoff when
/// the connection is lost. Start-up in order: settings → S3 → engines (model, sandbox, banks) →
/// health endpoint and storage probe → consume.
async fn worker(common: &Common, args: WorkerArgs) -> Result<std::process::ExitCode> {
    let config = match worker_config(common, &args) {
        Ok(c) => c,
        Err(e) => return Ok(bad_setting(&e)),
    };
    let store = Store::connect(&store_config(common)).await.context("configuring S3")?;
    let readiness = Arc::new(Readiness::default());
    let metrics = Arc::new(Metrics::new().context("registering the metrics")?);
    let engines = match engines(common, &args, &config, &store, metrics.clone()).await? {
        Ok(engines) => engines,
        Err(exit) => return Ok(exit),
    };
    readiness.model.store(true, Ordering::Relaxed);
    if let Some(addr) = config.metrics_addr {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding the health/metrics endpoint {addr} (MEDIAGATE_METRICS_ADDR)"))?;
        info!(addr = %listener.local_addr().map(|a| a.to_string()).unwrap_or_default(), "serving /healthz /readyz /metrics");
        tokio::spawn(mediagate_worker::health::serve(listener, readiness.clone(), metrics.clone()));
    }
    tokio::spawn(probe_storage(store.clone(), readiness.clone(), metrics, config.output_bucket.clone()));
    let stop = stop_on_signal();
    readiness.beat();
    spawn_watchdog(readiness.clone());
    consume(common, config, store, engines, readiness, stop).await;
    info!("worker stopped");
    Ok(std::process::ExitCode::SUCCESS)
}

/// A setting that stops the worker before it starts: logged, printed, and `EXIT_BAD_SETTING`.
fn bad_setting(e: &dyn std::fmt::Display) -> std::process::ExitCode {
    error!(error = %e, "invalid setting; not starting");
    eprintln!("mediagate worker: {e}");
    std::process::ExitCode::from(EXIT_BAD_SETTING)
}

/// The classifier, the warmed-up media sandbox and every hash bank, loaded before any job is
/// taken. A missing or altered model stops the worker with the make target that fixes it (`Err`);
/// a bank that cannot be read stops it with `EXIT_BAD_SETTING`, naming the bank and its source (§8).
async fn engines(
    common: &Common,
    args: &WorkerArgs,
    config: &WorkerConfig,
    store: &Store,
    metrics: Arc<Metrics>,
) -> Result<Result<Engines, std::process::ExitCode>> {
    let classifier = load_classifier(config).await?;
    let sandbox = media_sandbox(common, args, config)?;
    sandbox.warm_up().await.context("starting the media sandbox")?;
    if let Some(layers) = sandbox.layers() {
        info!(
            namespaces = layers.namespaces.join("+"),
            landlock_abi = layers.landlock.unwrap_or(0),
            layers_off = layers.missing.join("; "),
            "media sandbox: {layers}"
        );
    }
    let specs = config.bank_specs()?;
    if specs.is_empty() {
        return Ok(Ok(Engines { classifier, sandbox, banks: Arc::new(HashBanks::none()), metrics }));
    }
    let banks = match HashBanks::load(specs, store, metrics.clone()).await {
        Ok(b) => Arc::new(b),
        Err(e) => return Ok(Err(bad_setting(&e))),
    };
    banks.spawn_refresh(store.clone(), Duration::from_secs(config.banks.refresh_s));
    Ok(Ok(Engines { classifier, sandbox, banks, metrics }))
}

/// Storage readiness: a cheap HeadBucket on the output bucket every few seconds.
async fn probe_storage(store: Store, readiness: Arc<Readiness>, metrics: Arc<Metrics>, bucket: String) {
    loop {
        let ok = store.check(&bucket).await.is_ok();
        readiness.storage.store(ok, Ordering::Relaxed);
        metrics.storage_up.set(i64::from(ok));
        tokio::time::sleep(Duration::from_secs(if ok { 10 } else { 2 })).await;
    }
}

/// Turns `true` on the first SIGTERM or SIGINT.
fn stop_on_signal() -> watch::Receiver<bool> {
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        wait_for_signal().await;
        info!("shutdown requested: no new jobs; finishing the jobs in hand");
        let _ = stop_tx.send(true);
    });
    stop_rx
}

/// Consumes until `stop`: connects to one of the broker's nodes (the one lost last is tried
/// last), runs the worker on it, and reconnects with backoff (0.5 s doubling to 30 s) when the
/// connection is lost or refused.
async fn consume(
    common: &Common,
    config: WorkerConfig,
    store: Store,
    engines: Engines,
    readiness: Arc<Readiness>,
    stop: watch::Receiver<bool>,
) {
    let name = format!("mediagate worker {}", config.worker_id);
    let mut backoff = Duration::from_millis(500);
    let mut last: Option<String> = None;
    loop {
        readiness.beat();
        if *stop.borrow() {
            return;
        }
        let broker = match Broker::connect_any(&common.amqp_url, last.as_deref(), &name).await {
            Ok(b) => b,
            Err(e) => {
                let retry_in_ms = backoff.as_millis() as u64;
                warn!(urls = %common.amqp_url, error = %e, retry_in_ms, "cannot reach the broker");
                let mut rx = stop.clone();
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = rx.wait_for(|s| *s) => return,
                }
                backoff = (backoff * 2).min(Duration::from_secs(30));
                continue;
            }
        };
        backoff = Duration::from_millis(500);
        let mut rx = stop.clone();
        let shutdown = async move {
            let _ = rx.wait_for(|s| *s).await;
        };
        let ran =
            mediagate_worker::run(config.clone(), store.clone(), engines.clone(), &broker, readiness.clone(), shutdown)
                .await;
        broker.close().await;
        match ran {
            Ok(()) => return,
            Err(e) => {
                warn!(url = %broker.url(), error = %e, "broker connection lost; reconnecting");
                last = Some(broker.url().to_owned());
            }
        }
    }
}

/// A thread beside the runtime that ends the process when the worker loop stops beating for
/// [`WATCHDOG_LIMIT`] (a loop blocked by something no timeout of its own can reach). The jobs it
/// held go back to their queues when its connection closes, and the container's restart policy
/// (or Kubernetes) starts it again. It writes to stderr, not through `tracing`: whatever blocks
/// the loop might hold the log writer too.
fn spawn_watchdog(readiness: Arc<Readiness>) {
    let watch = move || loop {
        std::thread::sleep(Duration::from_secs(5));
        if let Some(stalled) = readiness.stalled_for().filter(|d| *d > WATCHDOG_LIMIT) {
            eprintln!(
                "mediagate worker: the worker loop has made no progress for {} s; exiting with status {EXIT_STALLED} \
                 so that it is restarted (the broker redelivers the jobs it held)",
                stalled.as_secs()
            );
            std::process::exit(EXIT_STALLED);
        }
    };
    if let Err(e) = std::thread::Builder::new().name("mediagate-watchdog".into()).spawn(watch) {
        warn!(error = %e, "cannot start the watchdog thread; a stuck worker loop will not end the process");
    }
}

/// `--model-path` and `--ort-lib` (clap reads their variables), each else found where `make
/// models` puts it (`mediagate_classify::resolve_overriding`).
fn model_paths(args: &WorkerArgs) -> mediagate_classify::ModelPaths {
    let flag = |var: &str| {
        let path = match var {
            mediagate_classify::ENV_MODEL_PATH => args.model_path.as_ref(),
            mediagate_classify::ENV_ORT_LIB => args.ort_lib.as_ref(),
            _ => None,
        };
        path.map(|p| p.clone().into_os_string())
    };
    mediagate_classify::resolve_overriding(flag)
}

/// The nudity classifier with the worker's thread count, loaded off the async threads; its
/// model and ONNX Runtime are checked against their sha256 (the error names `make models`).
pub(crate) async fn load_classifier(config: &WorkerConfig) -> Result<Arc<mediagate_classify::Classifier>> {
    let threads = config.classifier_threads;
    let classifier_config = mediagate_classify::ClassifierConfig::with_paths(config.model_paths.clone(), threads);
    let classifier = tokio::task::spawn_blocking(move || mediagate_classify::Classifier::load(&classifier_config))
        .await
        .context("loading the classifier")?
        .context("loading the nudity classifier")?;
    info!(model = classifier.model_name(), sha256 = classifier.model_sha256(), threads, "nudity classifier loaded");
    Ok(Arc::new(classifier))
}

/// The media sandbox of `MEDIAGATE_SANDBOX`: children of this very binary, as many kept ready
/// as items may run at once, with only the logging settings in their environment.
pub(crate) fn media_sandbox(
    common: &Common,
    args: &WorkerArgs,
    config: &WorkerConfig,
) -> Result<mediagate_sandbox::Sandbox> {
    let concurrency = config.concurrency;
    let mut cfg = match args.sandbox {
        cli::SandboxArg::Off => {
            warn!("MEDIAGATE_SANDBOX=off: media work runs inside the worker, without isolation");
            mediagate_sandbox::SandboxConfig {
                mode: mediagate_sandbox::Mode::InProcess,
                ..mediagate_sandbox::SandboxConfig::process(std::path::PathBuf::new(), 0, &[])
            }
        }
        cli::SandboxArg::Process => {
            let exe = std::env::current_exe().context("finding this binary to start media sandboxes")?;
            mediagate_sandbox::SandboxConfig::process(
                exe,
                concurrency.max(1),
                &["RUST_LOG", "TMPDIR", "RUST_BACKTRACE"],
            )
        }
    };
    // The sandbox's lines join the worker's: the same format (JSON unless told otherwise).
    let format = match common.log_format {
        Some(LogFormat::Text) => "text",
        Some(LogFormat::Json) | None => "json",
    };
    cfg.env.push(("MEDIAGATE_LOG_FORMAT".into(), format.into()));
    info!(mode = ?cfg.mode, memory_mb = config.sandbox_memory_bytes() >> 20, "media sandbox");
    Ok(mediagate_sandbox::Sandbox::new(cfg)?)
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) {
            (Ok(mut term), Ok(mut int)) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
            }
            _ => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// `mediagate ensure-buckets`.
async fn ensure_buckets(common: &Common) -> Result<std::process::ExitCode> {
    let store = Store::connect(&store_config(common)).await.context("configuring S3")?;
    let mut buckets: Vec<String> = common.source_buckets.clone();
    buckets.push(common.output_bucket.clone());
    buckets.push(common.quarantine_bucket.clone());
    buckets.push(manifest_bucket(common));
    buckets.retain(|b| !b.trim().is_empty());
    buckets.sort();
    buckets.dedup();
    for b in &buckets {
        store.ensure_bucket(b).await.with_context(|| format!("creating bucket {b}"))?;
        info!(bucket = %b, "bucket ready");
    }
    Ok(std::process::ExitCode::SUCCESS)
}
