//! The worker's job path without a broker or S3: `JobPath` on a folder per bucket
//! (`LocalFiles::buckets`), media work in process, the real classifier and banks. Each case is
//! one delivery's body handled as `run` would handle it, and judged by what it returned and
//! what it left in the buckets. What needs a broker (publishing the verdict, settling the
//! delivery) stays in the e2e suite; the delivery limit's dead letter is here up to its publish.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use mediagate_classify::{Classifier, ClassifierConfig, ModelPaths, MODEL_FILE, ORT_LIB_FILE};
use mediagate_contract::review::{decision_key, job_sha256, Decision, DecisionKind};
use mediagate_contract::settings::Thresholds;
use mediagate_contract::{ItemStatus, JobStatus, ReasonCode, Verdict};
use mediagate_sandbox::{Mode, Sandbox, SandboxConfig};
use mediagate_testkit::jobs::media_job;
use mediagate_testkit::media::jpeg;
use mediagate_worker::banks::HashBanks;
use mediagate_worker::metrics::Metrics;
use mediagate_worker::{BankSettings, Cause, Engines, Handled, JobPath, Lane, LocalFiles, WorkerConfig};
use serde_json::{json, Value};

/// The repository's `models/`, where `make models` puts the model and ONNX Runtime.
fn model_paths() -> ModelPaths {
    let models = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models");
    ModelPaths { model_path: models.join(MODEL_FILE), ort_lib: models.join(ORT_LIB_FILE) }
}

/// The defaults, with the manifests in a bucket of their own (so a test sees what is a
/// manifest) and inputs up to 64 MiB.
fn config() -> WorkerConfig {
    WorkerConfig {
        manifest_bucket: "manifests".into(),
        max_input_bytes: 64 << 20,
        worker_id: "job-path-test".into(),
        ..WorkerConfig::defaults(model_paths(), 2, 2048)
    }
}

/// The engines of a worker, loaded once per test binary: the real model (`make models` puts it
/// in `models/`), media work on the worker's own threads.
fn engines() -> Engines {
    static CLASSIFIER: std::sync::OnceLock<Arc<Classifier>> = std::sync::OnceLock::new();
    let classifier = CLASSIFIER
        .get_or_init(|| {
            let cfg = ClassifierConfig::with_paths(model_paths(), 1);
            Arc::new(Classifier::load(&cfg).unwrap_or_else(|e| panic!("{e}: run `make models`")))
        })
        .clone();
    let sandbox = Sandbox::new(SandboxConfig {
        mode: Mode::InProcess,
        program: PathBuf::new(),
        env: Vec::new(),
        servers: 0,
        max_report_bytes: 1 << 30,
    })
    .expect("an in-process sandbox");
    let metrics = Arc::new(Metrics::new().expect("metrics"));
    Engines { classifier, sandbox, banks: Arc::new(HashBanks::none()), metrics }
}

/// A worker's job path on a fresh folder of buckets.
struct Bench {
    dir: tempfile::TempDir,
    path: JobPath,
    /// What this bench's worker counted (its own registry, not a global one).
    metrics: Arc<Metrics>,
}

impl Bench {
    fn new(config: WorkerConfig) -> Bench {
        Bench::with_engines(config, engines())
    }

    fn with_engines(config: WorkerConfig, engines: Engines) -> Bench {
        let dir = tempfile::tempdir().expect("tempdir");
        let metrics = engines.metrics.clone();
        let path = JobPath::local(config, engines, LocalFiles::buckets(dir.path())).expect("a valid config");
        Bench { dir, path, metrics }
    }

    /// The value of the counter `family` summed over its series with these labels.
    fn counted(&self, family: &str, labels: &[(&str, &str)]) -> f64 {
        self.metrics
            .registry
            .gather()
            .iter()
            .filter(|f| f.name() == family)
            .flat_map(|f| f.get_metric())
            .filter(|m| labels.iter().all(|(n, v)| m.get_label().iter().any(|p| p.name() == *n && p.value() == *v)))
            .map(|m| m.get_counter().get_value())
            .sum()
    }

    fn put(&self, bucket: &str, key: &str, bytes: &[u8]) {
        let path = self.dir.path().join(bucket).join(key);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, bytes).expect("write");
    }

    fn file(&self, bucket: &str, key: &str) -> Option<Vec<u8>> {
        std::fs::read(self.dir.path().join(bucket).join(key)).ok()
    }

    fn keys(&self, bucket: &str) -> Vec<String> {
        let base = self.dir.path().join(bucket);
        let mut out = Vec::new();
        let mut stack = vec![base.clone()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
                let p = e.path();
                if p.is_dir() {
                    stack.push(p);
                } else {
                    out.push(p.strip_prefix(&base).unwrap().to_string_lossy().into_owned());
                }
            }
        }
        out.sort();
        out
    }

    async fn handle(&self, job: &Value, lane: Lane, redelivered: bool) -> Result<Handled, mediagate_worker::Requeue> {
        self.path.handle(&serde_json::to_vec(job).unwrap(), None, lane, redelivered).await
    }

    async fn verdict(&self, job: &Value) -> Verdict {
        match self.handle(job, Lane::Live, false).await {
            Ok(Handled::Verdict { verdict, .. }) => *verdict,
            other => panic!("expected a verdict, got {other:?}"),
        }
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(bytes))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_photo_is_cleared_with_its_outputs_and_manifest_stored() {
    let b = Bench::new(config());
    b.put("incoming", "j1/0.jpg", &jpeg(640, 480, 1));
    let v = b.verdict(&media_job("j1", &["j1/0.jpg"])).await;
    assert_eq!(v.status, JobStatus::Cleared, "{v:?}");
    let item = &v.items[0];
    assert_eq!(item.status, ItemStatus::Cleared);
    assert!(!item.outputs.is_empty());
    for out in &item.outputs {
        assert_eq!(out.bucket, "media");
        let stored = b.file("media", &out.key).unwrap_or_else(|| panic!("{} stored", out.key));
        assert_eq!(sha256_hex(&stored), out.sha256, "{} intact", out.key);
    }
    let manifest: Value = serde_json::from_slice(&b.file("manifests", "manifests/j1.json").expect("manifest")).unwrap();
    assert_eq!(manifest["verdict"]["status"], "cleared");
    assert_eq!(manifest["job"]["job_id"], "j1");
    assert!(b.keys("quarantine").is_empty(), "nothing quarantined");
    let cleared = [("status", "cleared"), ("reason", "none"), ("media_type", "image")];
    assert_eq!(b.counted("mediagate_items_total", &cleared), 1.0, "the item counted on the worker's own metrics");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_that_is_no_media_is_rejected_with_its_reason() {
    let b = Bench::new(config());
    b.put("incoming", "j2/0.jpg", b"this is not a picture at all");
    let v = b.verdict(&media_job("j2", &["j2/0.jpg"])).await;
    assert_eq!(v.status, JobStatus::Rejected);
    let reason = v.items[0].reason.as_ref().expect("a reason");
    assert_eq!(reason.code, ReasonCode::InputUnsupportedFormat, "{reason:?}");
    assert!(b.keys("media").is_empty(), "no output of a rejected item");
    assert!(b.file("manifests", "manifests/j2.json").is_some(), "a rejected job has its manifest too");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_source_is_rejected_and_a_bad_job_gets_a_job_level_reason() {
    let b = Bench::new(config());
    let v = b.verdict(&media_job("j3", &["j3/none.jpg"])).await;
    assert_eq!(v.items[0].reason.as_ref().map(|r| r.code), Some(ReasonCode::InputMissing));
    let mut bad = media_job("j4", &["j4/0.jpg"]);
    bad["sender"]["age_band"] = json!("under_16");
    let v = b.verdict(&bad).await;
    assert_eq!(v.status, JobStatus::Rejected);
    assert_eq!(v.reason.as_ref().map(|r| r.code), Some(ReasonCode::PolicyUnder16), "{v:?}");
    assert!(v.items.is_empty() || v.items.iter().all(|i| i.outputs.is_empty()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flagged_photo_is_blocked_and_its_original_quarantined() {
    // Generated pictures score low: a threshold of 0 flags any score, as the e2e test does.
    let b = Bench::new(WorkerConfig { thresholds: Thresholds { minor: 0.0, adult: 0.0 }, ..config() });
    let src = jpeg(640, 480, 2);
    b.put("incoming", "j5/0.jpg", &src);
    let mut j = media_job("j5", &["j5/0.jpg"]);
    j["recipients"] = json!([{ "account_id": "r", "age_band": "16_17" }]);
    let v = b.verdict(&j).await;
    assert_eq!(v.status, JobStatus::Blocked, "{v:?}");
    assert_eq!(v.items[0].reason.as_ref().map(|r| r.code), Some(ReasonCode::NudityFlagged));
    assert!(b.keys("media").is_empty(), "nothing of a blocked item is cleared");
    let quarantined = b.keys("quarantine");
    assert!(quarantined.iter().any(|k| k == "j5/0/verdict.json"), "{quarantined:?}");
    let original = quarantined.iter().find(|k| k.starts_with("j5/0/original.")).expect("the original");
    assert_eq!(b.file("quarantine", original).unwrap(), src, "the very bytes fetched");
}

/// A bank (§8) from a file, as `MEDIAGATE_HASH_BANKS` names it, listing the photo's sha256.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_photo_in_a_hash_bank_is_blocked_and_escalated() {
    let src = jpeg(640, 480, 6);
    let bank_dir = tempfile::tempdir().expect("tempdir");
    let bank = bank_dir.path().join("ours.txt");
    std::fs::write(&bank, format!("# test bank\nsha256 {} known test photo\n", sha256_hex(&src))).unwrap();
    let config = WorkerConfig {
        banks: BankSettings { banks: format!("ours={}", bank.display()), ..BankSettings::DEFAULT },
        ..config()
    };
    let files: Vec<_> = config
        .bank_specs()
        .expect("bank specs")
        .into_iter()
        .filter(|s| matches!(s.source, mediagate_worker::banks::BankSource::File(_)))
        .collect();
    assert_eq!(files.len(), 1, "the file bank (the `confirmed` bank lives in the quarantine bucket)");
    let engines = engines();
    let banks = HashBanks::load_files(files, engines.metrics.clone()).await.expect("the bank loads");
    let engines = Engines { banks: Arc::new(banks), ..engines };
    let b = Bench::with_engines(config, engines);
    b.put("incoming", "j8/0.jpg", &src);
    let (v, escalations) = match b.handle(&media_job("j8", &["j8/0.jpg"]), Lane::Live, false).await {
        Ok(Handled::Verdict { verdict, escalations }) => (*verdict, escalations),
        other => panic!("expected a verdict, got {other:?}"),
    };
    assert_eq!(v.status, JobStatus::Blocked, "{v:?}");
    let item = &v.items[0];
    assert_eq!(item.reason.as_ref().map(|r| r.code), Some(ReasonCode::HashMatched));
    let m = item.hash_match.as_ref().expect("the match");
    assert_eq!((m.bank.as_str(), m.kind.as_str()), ("ours", "sha256"));
    assert_eq!(escalations.len(), 1, "one escalation for the matched item");
    let e: Value = serde_json::from_slice(&escalations[0].body).unwrap();
    assert_eq!(e["job_id"], "j8");
    assert!(b.keys("media").is_empty());
    assert!(b.keys("quarantine").iter().any(|k| k.starts_with("j8/0/original.")));
    assert_eq!(b.counted("mediagate_hash_matches_total", &[("bank", "ours"), ("kind", "sha256")]), 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_first_delivery_never_reads_the_manifest_first() {
    // Behaviour, not the predicate: a stored newer revision is met only by a redelivery or a
    // reprocess; a live first delivery never reads the manifest, so it is processed.
    let b = Bench::new(config());
    b.put("incoming", "j6/0.jpg", &jpeg(320, 240, 3));
    // A newer revision is stored (a later reprocess overtook this job).
    let newer = b.verdict(&media_job("j6", &["j6/0.jpg"])).await;
    let mut manifest: Value = serde_json::from_slice(&b.file("manifests", "manifests/j6.json").unwrap()).unwrap();
    manifest["verdict"]["revision"] = json!(5);
    b.put("manifests", "manifests/j6.json", &serde_json::to_vec(&manifest).unwrap());
    assert_eq!(newer.revision, 0);
    // A live job's first delivery does not read it: processed, and its manifest rewritten.
    let first = b.handle(&media_job("j6", &["j6/0.jpg"]), Lane::Live, false).await;
    assert!(matches!(first, Ok(Handled::Verdict { .. })), "{first:?}");
    let rewritten: Value = serde_json::from_slice(&b.file("manifests", "manifests/j6.json").unwrap()).unwrap();
    assert_eq!(rewritten["verdict"]["revision"], 0, "the first delivery did not look");
    // A redelivery and a reprocess of an older revision do, and are superseded.
    b.put("manifests", "manifests/j6.json", &serde_json::to_vec(&manifest).unwrap());
    for (lane, redelivered) in [(Lane::Live, true), (Lane::Reprocess, false)] {
        let mut j = media_job("j6", &["j6/0.jpg"]);
        if lane == Lane::Reprocess {
            j["reprocess"] = json!(true);
            j["revision"] = json!(1);
        }
        match b.handle(&j, lane, redelivered).await {
            Ok(Handled::Superseded { stored_revision: 5, .. }) => {}
            other => panic!("{lane:?} redelivered={redelivered}: expected superseded, got {other:?}"),
        }
    }
    let kept: Value = serde_json::from_slice(&b.file("manifests", "manifests/j6.json").unwrap()).unwrap();
    assert_eq!(kept["verdict"]["revision"], 5, "a superseded job writes nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_that_cannot_be_written_sends_the_job_back_as_a_storage_fault() {
    let b = Bench::new(config());
    b.put("incoming", "j7/0.jpg", &jpeg(320, 240, 4));
    // The output bucket's folder is a file: every write under it fails, as a store that refuses.
    std::fs::write(b.dir.path().join("media"), b"not a folder").unwrap();
    match b.handle(&media_job("j7", &["j7/0.jpg"]), Lane::Live, false).await {
        Err(fault) => assert_eq!(fault.cause, Cause::Storage, "{fault}"),
        Ok(other) => panic!("expected a requeue, got {other:?}"),
    }
    assert!(b.file("manifests", "manifests/j7.json").is_none(), "no manifest for a job sent back");
}

/// §9: a moderator's release of a blocked item, then the reprocess job `review release`
/// publishes: the item is processed from its quarantined original (the source is gone by then)
/// and cleared, the filter's score kept as measured and the release noted in its entry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_released_item_is_cleared_from_its_quarantined_original() {
    let b = Bench::new(WorkerConfig { thresholds: Thresholds { minor: 0.0, adult: 0.0 }, ..config() });
    let src = jpeg(640, 480, 7);
    b.put("incoming", "j9/0.jpg", &src);
    let mut j = media_job("j9", &["j9/0.jpg"]);
    j["recipients"] = json!([{ "account_id": "r", "age_band": "16_17" }]);
    assert_eq!(b.verdict(&j).await.status, JobStatus::Blocked);
    std::fs::remove_file(b.dir.path().join("incoming/j9/0.jpg")).unwrap();
    let decision = Decision {
        decision: DecisionKind::Released,
        by: "moderator-1".into(),
        at: "2026-12-07T10:00:00.000Z".into(),
        note: Some("a beach photo".into()),
        sha256: sha256_hex(&src),
        job_sha256: job_sha256(&j),
    };
    let key = decision_key(&"j9".into(), &"0".into(), &decision.at);
    b.put("quarantine", &key, &serde_json::to_vec(&decision).unwrap());
    let mut reprocess = j.clone();
    reprocess["reprocess"] = json!(true);
    reprocess["revision"] = json!(1);
    let v = match b.handle(&reprocess, Lane::Reprocess, false).await {
        Ok(Handled::Verdict { verdict, .. }) => *verdict,
        other => panic!("expected a verdict, got {other:?}"),
    };
    assert_eq!(v.status, JobStatus::Cleared, "{v:?}");
    let item = &v.items[0];
    let review = item.review.as_ref().expect("the release noted");
    assert_eq!((review.decision.as_str(), review.by.as_str()), ("released", "moderator-1"));
    assert!(item.nudity.as_ref().is_some_and(|n| n.flagged), "the score kept as measured: {item:?}");
    assert_eq!(item.hashes.as_ref().map(|h| h.sha256.clone()), Some(sha256_hex(&src)));
    for out in &item.outputs {
        assert!(b.file("media", &out.key).is_some(), "{} stored", out.key);
    }
    assert!(!item.outputs.is_empty());
    // A release made on another job under the same id does not hold: blocked again.
    let other = Decision { job_sha256: "0".repeat(64), at: "2026-12-07T11:00:00.000Z".into(), ..decision };
    b.put("quarantine", &decision_key(&"j9".into(), &"0".into(), &other.at), &serde_json::to_vec(&other).unwrap());
    reprocess["revision"] = json!(2);
    match b.handle(&reprocess, Lane::Reprocess, false).await {
        // Its source is gone and the release does not hold: rejected as missing, not cleared.
        Ok(Handled::Verdict { verdict, .. }) => {
            assert_ne!(verdict.status, JobStatus::Cleared, "{verdict:?}");
            assert!(verdict.items[0].review.is_none());
        }
        other => panic!("expected a verdict, got {other:?}"),
    }
}

/// The delivery limit (contract §5): a job the broker dead-lettered gets a `failed` verdict with
/// `internal.delivery_limit`, and its manifest; a body that names no job gets the verdict only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_lettered_job_gets_a_failed_verdict_and_its_manifest() {
    let b = Bench::new(config());
    let j = media_job("j10", &["j10/0.jpg"]);
    let v = b.path.dead_lettered(&serde_json::to_vec(&j).unwrap(), None).await.expect("a verdict");
    assert_eq!(v.status, JobStatus::Failed);
    assert_eq!(v.reason.as_ref().map(|r| r.code), Some(ReasonCode::InternalDeliveryLimit), "{v:?}");
    assert_eq!(v.job_id.as_deref(), Some("j10"));
    assert_eq!(v.message_id.as_deref(), j["message"]["message_id"].as_str());
    let manifest: Value =
        serde_json::from_slice(&b.file("manifests", "manifests/j10.json").expect("manifest")).unwrap();
    assert_eq!(manifest["verdict"]["status"], "failed");
    assert_eq!(manifest["job"], j, "the job as it was published");
    let v = b.path.dead_lettered(b"{not json", None).await.expect("a verdict");
    assert_eq!((v.status, v.job_id.clone()), (JobStatus::Failed, None), "{v:?}");
    let mut keys = b.keys("manifests");
    keys.sort();
    assert_eq!(keys.len(), 3, "the manifest and its index objects, and nothing without a job id: {keys:?}");
    assert!(keys[0].starts_with("manifests-index/j/j10/") && keys[0].ends_with("!0"), "the pointer: {keys:?}");
    assert!(keys[1].starts_with("manifests-index/t/") && keys[1].ends_with("!j10!0!failed"), "the entry: {keys:?}");
    assert_eq!(keys[2], "manifests/j10.json");
    assert!(b.keys("media").is_empty(), "nothing processed");
}

#[test]
fn the_tests_above_need_the_model() {
    let paths = model_paths();
    assert!(
        Path::new(&paths.model_path).is_file() && Path::new(&paths.ort_lib).is_file(),
        "the classifier's files are missing ({} and {}): run `make models`",
        paths.model_path.display(),
        paths.ort_lib.display()
    );
}
