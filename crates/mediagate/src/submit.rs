//! `mediagate submit`: a producer that follows the contract, for people and scripts.

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use mediagate_contract::{Item, Job, JobKind, MessageRef, Party, Recipient, Source, JOB_SCHEMA};
use mediagate_media::{sniff, MediaClass};
use mediagate_queue::{names, Broker};
use mediagate_store::Store;

use crate::cli::{BandArg, Common, JobArgs, KindArg, SubmitArgs};

/// A job id that is unique enough for a person's submissions: time, pid and a random tail.
pub(crate) fn new_job_id(prefix: &str) -> String {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    format!("{prefix}-{:x}-{:x}-{:x}", now.as_millis(), std::process::id(), now.subsec_nanos())
}

/// The files a job is made of, read whole (a file that cannot be read is an error).
pub(crate) async fn read_files(args: &JobArgs) -> Result<Vec<(PathBuf, Vec<u8>)>> {
    let mut files = Vec::new();
    for path in &args.files {
        let bytes = tokio::fs::read(path).await.with_context(|| format!("reading {}", path.display()))?;
        files.push((path.clone(), bytes));
    }
    Ok(files)
}

/// `--kind`, or `voice_note` when every file sniffs as audio, else `media`.
pub(crate) fn job_kind(args: &JobArgs, files: &[(PathBuf, Vec<u8>)]) -> JobKind {
    match args.kind {
        Some(KindArg::Media) => JobKind::Media,
        Some(KindArg::VoiceNote) => JobKind::VoiceNote,
        None => {
            let all_audio = files.iter().all(|(_, b)| sniff(b).map(|f| f.media_class()) == Some(MediaClass::Audio));
            if all_audio {
                JobKind::VoiceNote
            } else {
                JobKind::Media
            }
        }
    }
}

/// The job of the flags, with these items: an adult sender unless told, one adult recipient
/// unless `--recipient-age` repeats, `--nudity-filter` opting the adult recipients in.
pub(crate) fn job_of(args: &JobArgs, job_id: &str, kind: JobKind, items: Vec<Item>) -> Job {
    let recipients = if args.recipient_age.is_empty() { vec![BandArg::Adult] } else { args.recipient_age.clone() }
        .into_iter()
        .enumerate()
        .map(|(i, band)| Recipient {
            account_id: format!("recipient-{i}"),
            age_band: band.band(),
            nudity_filter: args.nudity_filter && band == BandArg::Adult,
        })
        .collect();
    Job {
        schema: JOB_SCHEMA.to_string(),
        job_id: job_id.into(),
        kind,
        message: MessageRef {
            message_id: format!("m-{job_id}"),
            conversation_id: "c-submit".into(),
            first_contact: args.first_contact,
        },
        sender: Party { account_id: "submitter".into(), age_band: args.sender_age.band() },
        recipients,
        items,
        caption: None,
        reprocess: false,
        revision: 0,
    }
}

pub async fn run(common: &Common, args: SubmitArgs) -> Result<std::process::ExitCode> {
    let bucket = common
        .source_buckets
        .iter()
        .map(|b| b.trim())
        .find(|b| !b.is_empty())
        .context("MEDIAGATE_SOURCE_BUCKETS names no bucket")?
        .to_string();
    let files = read_files(&args.job).await?;
    let kind = job_kind(&args.job, &files);
    let job_id = new_job_id("j");
    // The job is built (and measured against §2's limits) before anything is uploaded: a job
    // the workers would refuse is refused here, with nothing sent.
    let mut uploads = Vec::new();
    let mut items = Vec::new();
    for (i, (path, bytes)) in files.into_iter().enumerate() {
        let format = sniff(&bytes);
        let ext = format.map(|f| f.ext()).unwrap_or("bin");
        let key = format!("submit/{job_id}/{i}.{ext}");
        let content_type = format.map(|f| f.mime()).unwrap_or("application/octet-stream");
        items.push(Item {
            item_id: i.to_string().into(),
            source: Source { bucket: bucket.clone(), key: key.clone() },
            declared_type: format.map(|f| f.mime().to_string()),
        });
        uploads.push((path, bytes, key, content_type));
    }
    let job = job_of(&args.job, &job_id, kind, items);
    let body = serde_json::to_vec(&job)?;
    let limits = crate::job_limits(common);
    if let Err(e) = mediagate_worker::check_job_limits(limits) {
        eprintln!("mediagate: {e}");
        return Ok(std::process::ExitCode::from(crate::EXIT_USAGE));
    }
    if let Err(reason) = limits.check(&body) {
        eprintln!("mediagate: not submitted, the workers would reject this job: {}", reason.message);
        return Ok(std::process::ExitCode::from(crate::EXIT_USAGE));
    }
    let store = Store::connect(&crate::store_config(common)).await.context("configuring S3")?;
    for (path, bytes, key, content_type) in uploads {
        store
            .put(&bucket, &key, bytes, content_type)
            .await
            .with_context(|| format!("uploading {} to s3://{bucket}/{key}", path.display()))?;
    }

    let broker =
        Broker::connect_any(&common.amqp_url, None, "mediagate submit").await.context("connecting to RabbitMQ")?;
    // Bind the private verdict queue before publishing, or a fast verdict could pass unseen.
    let mut listener = if args.wait { Some(broker.verdict_listener("verdict.*").await?) } else { None };
    let publisher = broker.job_publisher().await?;
    publisher.publish(names::UPLOAD_KEY, &job_id, body).await.context("publishing the job to mediagate.jobs")?;
    eprintln!("published job {job_id} ({}, {} item(s))", kind.as_str(), job.items.len());
    let Some(listener) = listener.as_mut() else {
        println!("{job_id}");
        broker.close().await;
        return Ok(std::process::ExitCode::SUCCESS);
    };
    let got = listener.wait_for(&job_id, Duration::from_secs(args.timeout)).await?;
    broker.close().await;
    match got {
        Some(v) => {
            let value: serde_json::Value = serde_json::from_slice(&v.body).context("the verdict is not JSON")?;
            println!("{}", serde_json::to_string_pretty(&value)?);
            Ok(std::process::ExitCode::SUCCESS)
        }
        None => {
            eprintln!("mediagate: no verdict for {job_id} within {} s (is a worker running?)", args.timeout);
            Ok(std::process::ExitCode::FAILURE)
        }
    }
}
