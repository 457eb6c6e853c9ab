//! `mediagate submit`: a producer that follows the contract, for people and scripts.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use mediagate_media::{sniff, MediaClass};
use mediagate_queue::{names, Broker};
use mediagate_store::Store;
use serde_json::json;

use crate::cli::{BandArg, Common, KindArg, SubmitArgs};

/// A job id that is unique enough for a person's submissions: time, pid and a random tail.
fn new_job_id() -> String {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    format!("j-{:x}-{:x}-{:x}", now.as_millis(), std::process::id(), now.subsec_nanos())
}

pub async fn run(common: &Common, args: SubmitArgs) -> Result<std::process::ExitCode> {
    let bucket = common
        .source_buckets
        .iter()
        .map(|b| b.trim())
        .find(|b| !b.is_empty())
        .context("MEDIAGATE_SOURCE_BUCKETS names no bucket")?
        .to_string();
    let mut files = Vec::new();
    for path in &args.files {
        let bytes = tokio::fs::read(path).await.with_context(|| format!("reading {}", path.display()))?;
        files.push((path.clone(), bytes));
    }
    let kind = match args.kind {
        Some(KindArg::Media) => "media",
        Some(KindArg::VoiceNote) => "voice_note",
        None => {
            let all_audio = files.iter().all(|(_, b)| sniff(b).map(|f| f.media_class()) == Some(MediaClass::Audio));
            if all_audio {
                "voice_note"
            } else {
                "media"
            }
        }
    };
    let job_id = new_job_id();
    let store = Store::connect(&crate::store_config(common)).await.context("configuring S3")?;
    let mut items = Vec::new();
    for (i, (path, bytes)) in files.into_iter().enumerate() {
        let format = sniff(&bytes);
        let ext = format.map(|f| f.ext()).unwrap_or("bin");
        let key = format!("submit/{job_id}/{i}.{ext}");
        let content_type = format.map(|f| f.mime()).unwrap_or("application/octet-stream");
        store
            .put(&bucket, &key, bytes, content_type)
            .await
            .with_context(|| format!("uploading {} to s3://{bucket}/{key}", path.display()))?;
        let mut item = json!({ "item_id": i.to_string(), "source": { "bucket": bucket, "key": key } });
        if let Some(f) = format {
            item["declared_type"] = json!(f.mime());
        }
        items.push(item);
    }
    let recipients: Vec<serde_json::Value> =
        if args.recipient_age.is_empty() { vec![BandArg::Adult] } else { args.recipient_age.clone() }
            .into_iter()
            .enumerate()
            .map(|(i, band)| {
                json!({
                    "account_id": format!("recipient-{i}"),
                    "age_band": band.as_str(),
                    "nudity_filter": args.nudity_filter && band == BandArg::Adult,
                })
            })
            .collect();
    let job = json!({
        "schema": "mediagate.job.v1",
        "job_id": job_id,
        "kind": kind,
        "message": { "message_id": format!("m-{job_id}"), "conversation_id": "c-submit", "first_contact": args.first_contact },
        "sender": { "account_id": "submitter", "age_band": args.sender_age.as_str() },
        "recipients": recipients,
        "items": items,
    });

    let broker = Broker::connect_named(&common.amqp_url, "mediagate submit").await.context("connecting to RabbitMQ")?;
    // Bind the private verdict queue before publishing, or a fast verdict could pass unseen.
    let mut listener = if args.wait { Some(broker.verdict_listener("verdict.*").await?) } else { None };
    let publisher = broker.job_publisher().await?;
    publisher
        .publish(names::UPLOAD_KEY, &job_id, serde_json::to_vec(&job)?)
        .await
        .context("publishing the job to mediagate.jobs")?;
    eprintln!("published job {job_id} ({kind}, {} item(s))", items_len(&job));
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

fn items_len(job: &serde_json::Value) -> usize {
    job["items"].as_array().map(|a| a.len()).unwrap_or(0)
}
