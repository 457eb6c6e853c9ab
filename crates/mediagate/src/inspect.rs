//! `mediagate inspect` (contract §7): the whole job on this machine, with no broker and no S3 —
//! what a producer's developer, support, or a newcomer runs to see what mediagate does with a
//! file. The job is the one `submit` would publish; it is processed by the worker's own code
//! (`mediagate_worker::run_local`): the rules but rule 5, the sandbox, the classifier and the hash
//! banks that are local files. Outputs go under `--out` as `{item_id}/{variant}.{ext}`; the
//! verdict is printed as JSON. Exit 0 whatever the verdict, 1 on an error, 2 on bad usage.

use std::io::IsTerminal;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use mediagate_contract::{Item, Source};
use mediagate_media::sniff;
use mediagate_worker::banks::{BankSource, HashBanks};
use mediagate_worker::{Engines, LocalFiles, Progress, LOCAL_BUCKET};
use tracing::{info, warn};

use crate::cli::{Common, InspectArgs};
use crate::submit::{job_kind, job_of, new_job_id, read_files};

/// Exit status of bad usage (a setting that is out of range included).
const EXIT_USAGE: u8 = 2;

pub async fn run(common: &Common, args: InspectArgs) -> Result<std::process::ExitCode> {
    let mut config = match crate::worker_config(common, &args.worker) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("mediagate inspect: {e}");
            return Ok(std::process::ExitCode::from(EXIT_USAGE));
        }
    };
    // Rule 5 is about buckets: the sources here are the named files, in the one `local` bucket.
    config.source_buckets = vec![LOCAL_BUCKET.to_string()];
    let files = read_files(&args.job).await?;
    let kind = job_kind(&args.job, &files);
    let job_id = new_job_id("local");
    let items = files
        .iter()
        .enumerate()
        .map(|(i, (_, bytes))| Item {
            item_id: i.to_string().into(),
            source: Source { bucket: LOCAL_BUCKET.to_string(), key: i.to_string() },
            declared_type: sniff(bytes).map(|f| f.mime().to_string()),
        })
        .collect();
    let job = job_of(&args.job, &job_id, kind, items);
    let names: Vec<String> = files.iter().map(|(p, _)| p.display().to_string()).collect();
    // The worker reads each file again into its own memory budget, as it reads an S3 object.
    let sources = files.into_iter().map(|(path, _)| path).collect();

    let specs = config.bank_specs()?;
    let (local, remote): (Vec<_>, Vec<_>) = specs.into_iter().partition(|s| matches!(s.source, BankSource::File(_)));
    for spec in &remote {
        if spec.name == mediagate_worker::banks::CONFIRMED_BANK {
            info!(source = %spec.source, "the `confirmed` bank lives in S3: not used by inspect");
        } else {
            warn!(bank = %spec.name, source = %spec.source, "a hash bank in S3 is skipped: inspect reads no S3");
        }
    }
    // A local run's own counts, served nowhere.
    let metrics = Arc::new(mediagate_worker::metrics::Metrics::new().context("registering the metrics")?);
    let banks = if local.is_empty() {
        Arc::new(HashBanks::none())
    } else {
        Arc::new(HashBanks::load_files(local, metrics.clone()).await.context("loading the hash banks")?)
    };
    let classifier = crate::load_classifier(&config).await?;
    let sandbox = crate::media_sandbox(common, &args.worker, &config)?;
    sandbox.warm_up().await.context("starting the media sandbox")?;
    let engines = Engines { classifier, sandbox, banks, metrics };

    let spinner = spinner(&names);
    let progress: Option<Progress> = spinner.clone().map(|bar| {
        let names = names.clone();
        Arc::new(move |item_id: &str, stage: mediagate_worker::Stage| {
            let name = item_id.parse::<usize>().ok().and_then(|i| names.get(i)).map_or(item_id, String::as_str);
            bar.set_message(format!("{name}: {}", stage.describe()));
        }) as Progress
    });
    let out = args.out.clone();
    let verdict = mediagate_worker::run_local(config, engines, LocalFiles::new(sources, args.out), &job, progress)
        .await
        .context("processing the job");
    if let Some(bar) = spinner {
        bar.finish_and_clear();
    }
    let verdict = verdict?;
    println!("{}", serde_json::to_string_pretty(&verdict)?);
    let written = verdict.items.iter().map(|i| i.outputs.len()).sum::<usize>();
    if written > 0 && std::io::stderr().is_terminal() {
        eprintln!("{} output(s) under {}", written, out.display());
    }
    Ok(std::process::ExitCode::SUCCESS)
}

/// A spinner with the stage, for a person at a terminal; none when stdout is not a terminal
/// (a script reads the verdict) or stderr is not one.
fn spinner(names: &[String]) -> Option<ProgressBar> {
    if !(std::io::stdout().is_terminal() && std::io::stderr().is_terminal()) {
        return None;
    }
    let bar = ProgressBar::new_spinner();
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed}] {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    bar.set_message(format!("{}: starting", names.join(", ")));
    bar.enable_steady_tick(Duration::from_millis(120));
    Some(bar)
}
