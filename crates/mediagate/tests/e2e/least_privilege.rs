//! A worker on least-privileged S3 credentials (contract §6, `deploy/s3/worker-policy.json`):
//! every S3 server of the tests has that user, limited by the policy document operators give
//! MinIO or AWS. With it a worker clears a photo, blocks a banked one (quarantine, escalation),
//! removes the stale outputs of a redelivered job, and `doctor` passes; what the worker must not
//! do (create a bucket, delete in quarantine) is refused.

use std::time::Duration;

use mediagate_testkit::s3::{WORKER_ACCESS_KEY, WORKER_SECRET_KEY};

use crate::banks::{jpeg_of, scene};
use crate::support::{media_job, sha256_hex, Isolated};

#[test]
fn a_worker_runs_on_the_permissions_the_contract_lists() {
    let banked = jpeg_of(&scene(640, 480, 71), 90);
    let bank_line = format!("sha256 {} least-privilege-test\n", sha256_hex(&banked));
    let env = Isolated::start_with(
        "least-priv",
        &[
            ("AWS_ACCESS_KEY_ID", WORKER_ACCESS_KEY),
            ("AWS_SECRET_ACCESS_KEY", WORKER_SECRET_KEY),
            ("MEDIAGATE_HASH_BANKS", "test=s3://incoming/banks/test.txt"),
        ],
        // The set-up (buckets, the bank) runs as root, as `init` does in the compose stack.
        |rt, store| {
            rt.block_on(store.put("incoming", "banks/test.txt", bank_line.into_bytes(), "text/plain")).unwrap();
        },
    );

    // A photo cleared and a banked one blocked and quarantined, in one job.
    env.put("lp/0.jpg", jpeg_of(&scene(800, 600, 5), 90));
    env.put("lp/1.jpg", banked.clone());
    let job = media_job("t-lp-1", &["lp/0.jpg", "lp/1.jpg"]);
    env.publish(&job);
    let v = env.wait_verdicts("t-lp-1", 1, Duration::from_secs(90)).remove(0).body;
    let items = v["items"].as_array().unwrap();
    assert_eq!(items[0]["status"], "cleared", "{v}");
    assert_eq!(
        (items[1]["status"].as_str(), items[1]["reason"]["code"].as_str()),
        (Some("blocked"), Some("hash.matched")),
        "{v}"
    );
    // Contract §4: the original goes to the quarantine bucket under {job_id}/{item_id}/original.{ext}.
    let (bucket, key) = ("quarantine", "t-lp-1/1/original.jpg");
    let quarantined = env.get(bucket, key);
    assert_eq!(quarantined.as_deref(), Some(&banked[..]), "the banked original is in quarantine: {v}");
    assert_eq!(env.take_escalations(1, Duration::from_secs(30)).len(), 1);
    let outputs: Vec<String> = env.rt.block_on(env.store.list_keys("media", "media/t-lp-1/")).unwrap();
    assert!(!outputs.is_empty(), "outputs written");

    // The job again with the photo replaced by a banked copy: the worker removes the outputs it
    // had stored for item 0 (s3:DeleteObject on the output bucket).
    env.put("lp/0.jpg", banked.clone());
    let mut job2 = job.clone();
    job2["revision"] = 1.into();
    env.publish(&job2);
    let v2 = env.wait_verdicts("t-lp-1", 2, Duration::from_secs(90)).remove(1).body;
    assert_eq!(v2["items"][0]["status"], "blocked", "{v2}");
    let left: Vec<String> = env.rt.block_on(env.store.list_keys("media", "media/t-lp-1/0/")).unwrap();
    assert!(left.is_empty(), "the stale outputs of item 0 are gone: {left:?}");

    assert_eq!(denials(&env), Vec::<String>::new(), "the worker asked for nothing the policy does not grant");

    // doctor with the worker's credentials: every bucket passes; on quarantine it says who needs
    // the delete it was not given.
    let out = env.command().arg("doctor").output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let line = |name: &str| text.lines().find(|l| l.contains(name)).unwrap_or_default().to_string();
    assert!(line("bucket media").starts_with('✔') && line("bucket incoming").starts_with('✔'), "{text}");
    let ql = line("bucket quarantine");
    assert!(ql.starts_with('✔') && ql.contains("not deleted: s3:DeleteObject is not granted"), "{text}");

    // What it must not do, refused by the store.
    let out = env.command().arg("ensure-buckets").env("MEDIAGATE_OUTPUT_BUCKET", "another-bucket").output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(!out.status.success() && text.to_lowercase().contains("denied"), "CreateBucket must be refused: {text}");
    let worker = env
        .rt
        .block_on(mediagate_store::Store::connect(&mediagate_store::StoreConfig {
            endpoint: Some(env.s3.endpoint()),
            region: Some("us-east-1".into()),
            access_key: Some(WORKER_ACCESS_KEY.into()),
            secret_key: Some(WORKER_SECRET_KEY.into()),
            ..Default::default()
        }))
        .expect("store");
    let refused = env.rt.block_on(worker.delete(bucket, key));
    assert!(matches!(refused, Err(mediagate_store::StoreError::Denied { .. })), "{refused:?}");
    let refused = env.rt.block_on(worker.put("incoming", "lp/new.jpg", b"x".to_vec(), "image/jpeg"));
    assert!(matches!(refused, Err(mediagate_store::StoreError::Denied { .. })), "{refused:?}");
    assert!(env.get(bucket, key).is_some(), "the quarantined original is still there");
    let denied = denials(&env);
    assert!(
        denied.iter().any(|l| l.contains("s3:DeleteObject on arn:aws:s3:::quarantine/t-lp-1/1/original.jpg"))
            && denied.iter().any(|l| l.contains("s3:PutObject on arn:aws:s3:::incoming/lp/new.jpg")),
        "the server says what it refused: {denied:#?}"
    );
}

/// What the S3 server refused (its logs, in the environment's log folder).
fn denials(env: &Isolated) -> Vec<String> {
    let mut lines = Vec::new();
    for entry in std::fs::read_dir(env.logdir.path()).unwrap().flatten() {
        if entry.file_name().to_string_lossy().starts_with("s3s-fs-") {
            let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
            lines.extend(text.lines().filter(|l| l.contains("access denied by policy")).map(str::to_string));
        }
    }
    lines
}
