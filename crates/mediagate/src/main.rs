//! The `mediagate` binary: a thin layer of commands over the library crates.

mod cli;
mod reprocess;
mod submit;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Parser;
use mediagate_contract::{Limits, Thresholds};
use mediagate_media::{FrameSampling, PhotoSettings, VideoSettings, VoiceSettings};
use mediagate_queue::{redact_url, Broker};
use mediagate_store::{RetryPolicy, Store, StoreConfig};
use mediagate_worker::{Readiness, WorkerConfig};
use tokio::sync::watch;
use tracing::{error, info, warn};

use cli::{Cli, Command, Common, LogFormat, WorkerArgs};

fn main() -> std::process::ExitCode {
    // A media sandbox child (started by the worker, never by hand): no CLI, no runtime.
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some(mediagate_sandbox::CHILD_ARG) {
        let format = match std::env::var("MEDIAGATE_LOG_FORMAT").as_deref() {
            Ok("text") => LogFormat::Text,
            _ => LogFormat::Json,
        };
        init_tracing(format);
        return mediagate_sandbox::child::serve(&args[1..]);
    }
    let cli = Cli::parse();
    init_tracing(cli.common.log_format);
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
            Command::Reprocess(args) => reprocess::run(&cli.common, args).await,
            Command::EnsureBuckets => ensure_buckets(&cli.common).await,
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

/// Logs go to stderr; JSON for machines by default, text for people on request.
fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().with_current_span(true).with_span_list(false).init(),
        LogFormat::Text => builder.init(),
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

fn worker_config(common: &Common, args: &WorkerArgs) -> Result<WorkerConfig> {
    let concurrency = args
        .concurrency
        .filter(|&n| n > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2));
    let source_buckets: Vec<String> =
        common.source_buckets.iter().map(|b| b.trim().to_string()).filter(|b| !b.is_empty()).collect();
    anyhow::ensure!(!source_buckets.is_empty(), "MEDIAGATE_SOURCE_BUCKETS names no bucket");
    for (name, t) in [("minor", args.nudity_threshold_minor), ("adult", args.nudity_threshold_adult)] {
        anyhow::ensure!((0.0..=1.0).contains(&t), "the {name} nudity threshold must be within 0..1, got {t}");
    }
    anyhow::ensure!(args.photo_thumb_edge > 0 && args.photo_full_edge > 0, "photo edges must be positive");
    let limits = Limits {
        max_input_bytes: args.max_input_bytes,
        image_max_pixels: args.image_max_pixels,
        voice_max_ms: args.voice_max_ms,
        video_max_ms: args.video_max_ms,
    };
    Ok(WorkerConfig {
        source_buckets,
        output_bucket: common.output_bucket.clone(),
        quarantine_bucket: Some(common.quarantine_bucket.clone()).filter(|b| !b.is_empty()),
        manifest_bucket: manifest_bucket(common),
        concurrency,
        photo: PhotoSettings {
            full_edge: args.photo_full_edge,
            thumb_edge: args.photo_thumb_edge,
            jpeg_quality: args.jpeg_quality,
            max_pixels: limits.image_max_pixels,
        },
        voice: VoiceSettings {
            max_ms: limits.voice_max_ms,
            bitrate: args.voice_bitrate,
            budget: Duration::from_secs(args.voice_budget_s.max(1)),
            ..VoiceSettings::default()
        },
        video: VideoSettings {
            max_ms: limits.video_max_ms,
            max_pixels: limits.image_max_pixels,
            crf: args.video_crf,
            preset: args.video_preset.clone(),
            threads: args.video_threads.max(1),
            budget: Duration::from_secs(args.video_budget_s.max(1)),
            ..VideoSettings::default()
        },
        photo_budget: Duration::from_secs(args.photo_budget_s.max(1)),
        sandbox_memory_bytes: args.sandbox_memory_mb.max(16).saturating_mul(1 << 20),
        frame_sampling: FrameSampling {
            every: Duration::from_millis(args.video_frame_interval_ms.max(1)),
            max_frames: args.video_max_frames.max(1),
            ..FrameSampling::default()
        },
        limits,
        thresholds: Thresholds { minor: args.nudity_threshold_minor, adult: args.nudity_threshold_adult },
        worker_id: args.worker_id.clone().unwrap_or_else(hostname),
        version: env!("CARGO_PKG_VERSION").to_string(),
    })
}

/// `mediagate worker`: runs until SIGTERM/SIGINT; reconnects to the broker with backoff when
/// the connection is lost.
async fn worker(common: &Common, args: WorkerArgs) -> Result<std::process::ExitCode> {
    let config = worker_config(common, &args)?;
    let store = Store::connect(&store_config(common)).await.context("configuring S3")?;
    let readiness = Arc::new(Readiness::default());
    // The classifier is loaded once, before any job is taken: a missing or altered model stops
    // the worker here with the make target that fixes it.
    let threads = args.classifier_threads.filter(|&n| n > 0).unwrap_or_else(|| {
        let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
        (cpus / config.concurrency.max(1)).max(1)
    });
    let classifier_config = mediagate_classify::ClassifierConfig::resolve(threads);
    let classifier = tokio::task::spawn_blocking(move || mediagate_classify::Classifier::load(&classifier_config))
        .await
        .context("loading the classifier")?
        .context("loading the nudity classifier")?;
    info!(model = classifier.model_name(), sha256 = classifier.model_sha256(), threads, "nudity classifier loaded");
    let classifier = Some(Arc::new(classifier));
    let sandbox = media_sandbox(common, &args, config.concurrency)?;
    sandbox.warm_up().await.context("starting the media sandbox")?;
    readiness.model.store(true, Ordering::Relaxed);
    if !args.metrics_addr.trim().is_empty() {
        let listener = tokio::net::TcpListener::bind(args.metrics_addr.trim()).await.with_context(|| {
            format!("binding the health/metrics endpoint {} (MEDIAGATE_METRICS_ADDR)", args.metrics_addr)
        })?;
        info!(addr = %listener.local_addr().map(|a| a.to_string()).unwrap_or_default(), "serving /healthz /readyz /metrics");
        tokio::spawn(mediagate_worker::health::serve(listener, readiness.clone()));
    }
    // Storage readiness: a cheap HeadBucket on the output bucket every few seconds.
    {
        let store = store.clone();
        let readiness = readiness.clone();
        let bucket = config.output_bucket.clone();
        tokio::spawn(async move {
            loop {
                let ok = store.check(&bucket).await.is_ok();
                readiness.storage.store(ok, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_secs(if ok { 10 } else { 2 })).await;
            }
        });
    }
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        wait_for_signal().await;
        info!("shutdown requested: no new jobs; finishing the jobs in hand");
        let _ = stop_tx.send(true);
    });

    let url = common.amqp_url.clone();
    let mut backoff = Duration::from_millis(500);
    loop {
        if *stop_rx.borrow() {
            break;
        }
        let broker = match Broker::connect_named(&url, &format!("mediagate worker {}", config.worker_id)).await {
            Ok(b) => b,
            Err(e) => {
                warn!(url = %redact_url(&url), error = %e, retry_in_ms = backoff.as_millis() as u64, "cannot reach the broker");
                let mut rx = stop_rx.clone();
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = rx.wait_for(|s| *s) => break,
                }
                backoff = (backoff * 2).min(Duration::from_secs(30));
                continue;
            }
        };
        backoff = Duration::from_millis(500);
        let mut rx = stop_rx.clone();
        let shutdown = async move {
            let _ = rx.wait_for(|s| *s).await;
        };
        match mediagate_worker::run(
            config.clone(),
            store.clone(),
            classifier.clone(),
            sandbox.clone(),
            &broker,
            readiness.clone(),
            shutdown,
        )
        .await
        {
            Ok(()) => {
                broker.close().await;
                break;
            }
            Err(e) => {
                warn!(error = %e, "broker connection lost; reconnecting");
                broker.close().await;
            }
        }
    }
    info!("worker stopped");
    Ok(std::process::ExitCode::SUCCESS)
}

/// The media sandbox of `MEDIAGATE_SANDBOX`: children of this very binary, as many kept ready
/// as items may run at once, with only the logging settings in their environment.
fn media_sandbox(common: &Common, args: &WorkerArgs, concurrency: usize) -> Result<mediagate_sandbox::Sandbox> {
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
    let format = match common.log_format {
        LogFormat::Json => "json",
        LogFormat::Text => "text",
    };
    cfg.env.push(("MEDIAGATE_LOG_FORMAT".into(), format.into()));
    info!(mode = ?cfg.mode, memory_mb = args.sandbox_memory_mb, "media sandbox");
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
