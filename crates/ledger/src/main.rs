//! `mediagate-ledger run`: upload a directory of media, publish N jobs over it, wait for every
//! verdict and print the ledger's report; exit 0 only when every job is accounted for. For
//! compose tests, where the faults happen around it.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use futures_util::stream::{FuturesUnordered, StreamExt};
use mediagate_ledger::{Lane, Ledger, LedgerConfig, Published};
use mediagate_store::{Store, StoreConfig};
use serde_json::{json, Value};
use tracing::{info, warn};

/// Publishes in flight at once when no rate is set.
const WINDOW: usize = 32;

#[derive(Parser)]
#[command(name = "mediagate-ledger", version, about = "Publishes jobs and proves that none is lost.")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Upload DIR's files, publish N jobs over them, settle, print the report.
    Run(RunArgs),
}

#[derive(clap::Args)]
struct RunArgs {
    /// AMQP URL(s): repeat the flag or separate them with commas (the nodes of one cluster).
    #[arg(
        long = "amqp-url",
        env = "MEDIAGATE_AMQP_URL",
        value_delimiter = ',',
        hide_env_values = true,
        default_value = "amqp://guest:guest@127.0.0.1:5672/%2f"
    )]
    amqp_urls: Vec<String>,
    /// S3-compatible endpoint (path-style addressing); unset means AWS S3.
    #[arg(long, env = "MEDIAGATE_S3_ENDPOINT")]
    s3_endpoint: Option<String>,
    /// Access key; unset uses the AWS default credential chain.
    #[arg(long, env = "AWS_ACCESS_KEY_ID", hide_env_values = true)]
    aws_access_key_id: Option<String>,
    /// Secret key.
    #[arg(long, env = "AWS_SECRET_ACCESS_KEY", hide_env_values = true)]
    aws_secret_access_key: Option<String>,
    /// Region.
    #[arg(long, env = "AWS_REGION")]
    aws_region: Option<String>,
    /// Bucket the media are uploaded to (under `ledger/`).
    #[arg(long, default_value = "incoming")]
    source_bucket: String,
    /// Bucket the workers write outputs to.
    #[arg(long, default_value = "media")]
    output_bucket: String,
    /// Bucket of the manifests (default: the output bucket).
    #[arg(long)]
    manifest_bucket: Option<String>,
    /// RabbitMQ management API base URL (default: http://<amqp host>:15672).
    #[arg(long)]
    management_url: Option<String>,
    /// Directory whose files the jobs cycle through.
    #[arg(long)]
    media: PathBuf,
    /// Jobs to publish.
    #[arg(long, default_value_t = 100)]
    jobs: u64,
    /// Jobs per second; 0 = as fast as confirms allow.
    #[arg(long, default_value_t = 0.0)]
    rate: f64,
    /// Seconds to wait for the verdicts and the queues to drain.
    #[arg(long, default_value_t = 300)]
    timeout: u64,
    /// The ledger's own queue (default: ledger.<hostname>.<pid>).
    #[arg(long)]
    queue: Option<String>,
    /// Append every publish and verdict to this file as JSON lines.
    #[arg(long)]
    record: Option<PathBuf>,
}

/// One uploaded file and the kind of job it makes.
struct Medium {
    key: String,
    kind: &'static str,
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let Command::Run(args) = Cli::parse().command;
    match run(args).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("mediagate-ledger: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: RunArgs) -> Result<bool> {
    let urls: Vec<String> = args.amqp_urls.iter().map(|u| u.trim().to_owned()).collect();
    if urls.iter().any(String::is_empty) {
        bail!("an empty entry in --amqp-url / MEDIAGATE_AMQP_URL");
    }
    if args.rate < 0.0 || !args.rate.is_finite() {
        bail!("--rate must be a number of jobs per second, 0 for no limit");
    }
    let store_cfg = StoreConfig {
        endpoint: args.s3_endpoint.clone(),
        region: args.aws_region.clone(),
        access_key: args.aws_access_key_id.clone(),
        secret_key: args.aws_secret_access_key.clone(),
        ..StoreConfig::default()
    };
    let store = Store::connect(&store_cfg).await.context("building the S3 client")?;
    let media = upload(&store, &args.media, &args.source_bucket).await?;
    let cfg = LedgerConfig {
        amqp_urls: urls,
        queue: args.queue.clone().unwrap_or_else(|| format!("ledger.{}.{}", hostname(), std::process::id())),
        store: store_cfg,
        manifest_bucket: args.manifest_bucket.clone().unwrap_or_else(|| args.output_bucket.clone()),
        output_bucket: args.output_bucket.clone(),
        management_url: args.management_url.clone(),
        record: args.record.clone(),
    };
    let ledger = Ledger::open(cfg).await.context("opening the ledger")?;
    let errors = publish_all(&ledger, &media, &args).await;
    info!(jobs = args.jobs, errors, "published; settling");
    let report = ledger.settle(Duration::from_secs(args.timeout)).await;
    ledger.close().await;
    print!("{}", report.table());
    if errors > 0 {
        println!("{errors} publishes were given up on (see the log)");
    }
    Ok(report.ok() && errors == 0)
}

/// Uploads each regular file of `dir` once to `ledger/<file name>` in `bucket`.
async fn upload(store: &Store, dir: &Path, bucket: &str) -> Result<Vec<Medium>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    let mut media = Vec::new();
    for path in files {
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            warn!(path = %path.display(), "skipping a file whose name is not UTF-8");
            continue;
        };
        let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        let key = format!("ledger/{name}");
        store
            .put(bucket, &key, bytes, "application/octet-stream")
            .await
            .with_context(|| format!("uploading {} to s3://{bucket}/{key}", path.display()))?;
        media.push(Medium { key, kind: kind_of(&path) });
    }
    if media.is_empty() {
        bail!("{} holds no files to publish", dir.display());
    }
    info!(files = media.len(), bucket, "media uploaded");
    Ok(media)
}

/// The job kind a file makes, from its extension: audio makes a voice note, anything else a
/// media job (a file that is neither photo nor video is then expected to be rejected).
fn kind_of(path: &Path) -> &'static str {
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
    match ext.as_str() {
        "m4a" | "ogg" | "opus" | "mp3" | "wav" | "amr" | "aac" => "voice_note",
        _ => "media",
    }
}

fn job(n: u64, m: &Medium, source_bucket: &str) -> Value {
    // The run's start time as well as the pid: in a container the pid repeats from run to run,
    // and a job id must not (its manifest and outputs would be a previous run's).
    static RUN: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    let run = RUN.get_or_init(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
    });
    let job_id = format!("l-{run}-{}-{n}", std::process::id());
    json!({
        "schema": "mediagate.job.v1",
        "job_id": job_id,
        "kind": m.kind,
        "message": { "message_id": job_id, "conversation_id": "c-ledger", "first_contact": false },
        "sender": { "account_id": "a-ledger-sender", "age_band": "adult" },
        "recipients": [ { "account_id": "a-ledger-recipient", "age_band": "adult" } ],
        "items": [ { "item_id": "0", "source": { "bucket": source_bucket, "key": m.key } } ],
    })
}

/// Publishes the jobs, at most [`WINDOW`] awaiting their confirms at once, paced by `--rate`
/// when set; returns how many were given up on.
async fn publish_all(ledger: &Ledger, media: &[Medium], args: &RunArgs) -> u64 {
    let interval = (args.rate > 0.0).then(|| Duration::from_secs_f64(1.0 / args.rate));
    let start = tokio::time::Instant::now();
    let mut in_flight = FuturesUnordered::new();
    let (mut errors, mut returned) = (0u64, 0u64);
    let mut tally = |done: Result<Published, mediagate_ledger::LedgerError>| match done {
        Ok(Published::Confirmed) => {}
        Ok(Published::Returned) => returned += 1,
        Err(e) => {
            warn!(error = %e, "publish given up");
            errors += 1;
        }
    };
    for n in 0..args.jobs {
        if let Some(every) = interval {
            // Keep the publishes in flight moving while waiting for this one's turn.
            let turn = tokio::time::sleep_until(start + every.mul_f64(n as f64));
            tokio::pin!(turn);
            loop {
                tokio::select! {
                    _ = &mut turn => break,
                    Some(done) = in_flight.next(), if !in_flight.is_empty() => tally(done),
                }
            }
        }
        while in_flight.len() >= WINDOW {
            if let Some(done) = in_flight.next().await {
                tally(done);
            }
        }
        let medium = &media[(n % media.len() as u64) as usize];
        let body = job(n, medium, &args.source_bucket);
        in_flight.push(async move { ledger.publish(&body, Lane::Upload).await });
    }
    while let Some(done) = in_flight.next().await {
        tally(done);
    }
    if returned > 0 {
        warn!(returned, "jobs were returned by the broker: is the topology declared (mediagate ensure-topology)?");
    }
    errors
}

/// This host's name, reduced to identifier characters, for the default queue name.
fn hostname() -> String {
    let raw = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_default();
    let name: String =
        raw.trim().chars().filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')).collect();
    if name.is_empty() {
        "host".into()
    } else {
        name
    }
}
