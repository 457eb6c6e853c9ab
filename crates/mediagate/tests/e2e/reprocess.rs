//! `mediagate reprocess`: stored jobs published again with `reprocess: true` and a higher
//! revision, filtered by status and time, resumable, and overwriting the same keys.

use std::time::Duration;

use serde_json::{json, Value};

use crate::support::media::jpeg;
use crate::support::{item, job_id, media_job, Isolated};

#[test]
fn reprocess_republishes_matching_jobs_with_a_higher_revision() {
    let env = Isolated::start("rp", &[]);
    let cleared = job_id("rp-ok");
    let rejected = job_id("rp-no");
    env.put(&format!("{cleared}/0.jpg"), jpeg(1200, 900, 3));
    env.put(&format!("{rejected}/0.jpg"), jpeg(100, 100, 4));
    env.publish(&media_job(&cleared, &[&format!("{cleared}/0.jpg")]));
    let mut bad = media_job(&rejected, &[&format!("{rejected}/0.jpg")]);
    bad["sender"]["age_band"] = json!("under_16");
    env.publish(&bad);
    let first = env.wait_verdicts(&cleared, 1, Duration::from_secs(60)).remove(0);
    env.wait_verdicts(&rejected, 1, Duration::from_secs(60));
    assert_eq!(first.body["revision"], 0);
    // A run selects only what was processed before the second it began.
    std::thread::sleep(Duration::from_millis(1100));

    // Dry run: lists both, publishes nothing.
    let out = env.command().args(["reprocess", "--dry-run"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let listed = String::from_utf8_lossy(&out.stdout);
    assert!(listed.contains(&cleared) && listed.contains(&rejected), "{listed}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("2 would be published"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Filters: a future --since matches nothing; bad input is a usage error.
    let out = env.command().args(["reprocess", "--dry-run", "--since", "2999-01-01T00:00:00Z"]).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("0 would be published"));
    let out = env.command().args(["reprocess", "--since", "yesterday"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let out = env.command().args(["reprocess", "--status", "great"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));

    // Real run over cleared jobs only, with a state file.
    let state = env.logdir.path().join("reprocess.state");
    let out =
        env.command().args(["reprocess", "--status", "cleared", "--state", state.to_str().unwrap()]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("1 published"), "{}", String::from_utf8_lossy(&out.stderr));
    let again = env.wait_verdicts(&cleared, 2, Duration::from_secs(60)).remove(1);
    assert_eq!(again.body["reprocess"], true);
    assert_eq!(again.body["revision"], 1);
    assert_eq!(again.body["status"], "cleared");
    // Same keys, same bytes.
    for (a, b) in
        item(&first, "0")["outputs"].as_array().unwrap().iter().zip(item(&again, "0")["outputs"].as_array().unwrap())
    {
        assert_eq!((&a["key"], &a["sha256"]), (&b["key"], &b["sha256"]));
    }
    let manifest: Value =
        serde_json::from_slice(&env.get("media", &format!("manifests/{cleared}.json")).unwrap()).unwrap();
    assert_eq!(manifest["verdict"]["revision"], 1);
    assert_eq!(manifest["job"]["reprocess"], true);
    assert_eq!(env.verdicts_for(&rejected).len(), 1, "the rejected job was filtered out");

    // A stale reprocess job (revision 0 when revision 1 is stored, e.g. left in the queue by an
    // earlier run) is acked without processing: no verdict, the manifest keeps revision 1.
    let mut stale = manifest["job"].clone();
    stale["revision"] = json!(0);
    env.publish_to("reprocess", &stale);
    let metrics_addr = crate::support::metrics_addr_of(&env.env);
    let superseded = "mediagate_jobs_total{lane=\"reprocess\",status=\"superseded\"} 1";
    let start = std::time::Instant::now();
    loop {
        let (_, text) = crate::support::http_get(&metrics_addr, "/metrics");
        if text.contains(superseded) {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "no superseded job counted; log:\n{}", env.log_tail());
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(env.verdicts_for(&cleared).len(), 2, "the stale job published no verdict");
    let manifest: Value =
        serde_json::from_slice(&env.get("media", &format!("manifests/{cleared}.json")).unwrap()).unwrap();
    assert_eq!(manifest["verdict"]["revision"], 1, "the stale job did not overwrite the newer manifest");

    // Resuming with the same state file has nothing left to do.
    let out =
        env.command().args(["reprocess", "--status", "cleared", "--state", state.to_str().unwrap()]).output().unwrap();
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("0 manifests read"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Writes a manifest straight to the store, as an older worker (one without the index) would
/// have: `like`'s manifest with another job id and `processed_at`.
fn lay_manifest(env: &Isolated, like: &Value, job_id: &str, processed_at: &str) {
    let mut m = like.clone();
    m["job"]["job_id"] = json!(job_id);
    m["verdict"]["job_id"] = json!(job_id);
    m["verdict"]["processed_at"] = json!(processed_at);
    let key = format!("manifests/{job_id}.json");
    env.rt.block_on(env.store.put("media", &key, serde_json::to_vec(&m).unwrap(), "application/json")).unwrap();
}

fn index_keys_of(env: &Isolated, job_id: &str) -> Vec<String> {
    let all = env.rt.block_on(env.store.list_keys("media", "manifests-index/")).unwrap();
    all.into_iter().filter(|k| k.contains(&format!("!{job_id}!")) || k.contains(&format!("/j/{job_id}/"))).collect()
}

fn reprocess(env: &Isolated, args: &[&str]) -> (String, String) {
    let out = env.command().arg("reprocess").args(args).output().unwrap();
    let (stdout, stderr) =
        (String::from_utf8_lossy(&out.stdout).to_string(), String::from_utf8_lossy(&out.stderr).to_string());
    assert!(out.status.success(), "reprocess {args:?}: {stderr}");
    (stdout, stderr)
}

/// The manifests index (§4, §7): every verdict writes a pointer and an entry; `--backfill-index`
/// indexes the manifests older workers wrote and sets `complete-since`; from then on reprocess
/// reads the index for the range after it (a manifest that is not in the index is not seen
/// there) and `manifests/` before it, re-checks each job against its manifest, and honours
/// `--until`, `--max-rate` and `--state`; erase deletes every revision's index objects.
#[test]
fn the_index_selects_by_time_and_status_and_erase_removes_all_of_it() {
    let env = Isolated::start("rpx", &[]);
    let a = job_id("rpx-a");
    let b = job_id("rpx-b");
    env.put(&format!("{a}/0.jpg"), jpeg(640, 480, 3));
    env.publish(&media_job(&a, &[&format!("{a}/0.jpg")]));
    let mut under_16 = media_job(&b, &[&format!("{a}/0.jpg")]);
    under_16["sender"]["age_band"] = json!("under_16");
    env.publish(&under_16);
    env.wait_verdicts(&a, 1, Duration::from_secs(60));
    env.wait_verdicts(&b, 1, Duration::from_secs(60));
    // A run selects only what was processed before the second it began.
    std::thread::sleep(Duration::from_millis(1100));
    let a_index = index_keys_of(&env, &a);
    assert_eq!(a_index.len(), 2, "a pointer and an entry: {a_index:?}");
    assert!(a_index.iter().any(|k| k.starts_with("manifests-index/t/") && k.ends_with(&format!("!{a}!0!cleared"))));
    assert!(index_keys_of(&env, &b).iter().any(|k| k.ends_with(&format!("!{b}!0!rejected"))));

    // Manifests of older workers: before the backfill, only a read of manifests/ finds them.
    let like: Value = serde_json::from_slice(&env.get("media", &format!("manifests/{a}.json")).unwrap()).unwrap();
    let old = job_id("rpx-old");
    lay_manifest(&env, &like, &old, "2020-01-01T00:00:00Z");
    let (listed, stderr) = reprocess(&env, &["--dry-run"]);
    assert!(listed.contains(&old) && listed.contains(&a) && listed.contains(&b), "{listed}");
    assert!(!stderr.contains("index entries"), "no complete-since yet: manifests/ only: {stderr}");

    let (_, stderr) = reprocess(&env, &["--backfill-index"]);
    assert!(stderr.contains("3 manifests indexed"), "{stderr}");
    assert!(stderr.contains("complete-since = 2020-01-01T00:00:00Z"), "the earliest processed_at: {stderr}");
    assert_eq!(index_keys_of(&env, &old).len(), 2);

    // After the backfill: a manifest after complete-since that is not in the index is not read
    // (the index alone is used there); one before it is found in manifests/.
    let unindexed = job_id("rpx-unindexed");
    lay_manifest(&env, &like, &unindexed, "2024-01-01T00:00:00Z");
    let before = job_id("rpx-before");
    lay_manifest(&env, &like, &before, "2019-06-01T00:00:00Z");
    let (listed, stderr) = reprocess(&env, &["--dry-run"]);
    assert!(!listed.contains(&unindexed), "{listed}");
    for id in [&old, &a, &b, &before] {
        assert!(listed.contains(id.as_str()), "{id}: {listed}");
    }
    assert!(stderr.contains("4 would be published") && stderr.contains("3 index entries listed"), "{stderr}");

    // --until: before it only; the status filter applies to the index's part too.
    let (listed, stderr) = reprocess(&env, &["--dry-run", "--until", "2020-06-01T00:00:00Z"]);
    assert_eq!(listed.lines().collect::<Vec<_>>().len(), 2, "{listed}");
    assert!(listed.contains(&old) && listed.contains(&before), "{listed}: {stderr}");
    let (listed, _) = reprocess(&env, &["--dry-run", "--since", "2020-01-01T00:00:00Z", "--status", "rejected"]);
    assert_eq!(listed.trim(), b, "{listed}");

    // A stale entry (a newer revision moved the job): the manifest decides.
    let stale = format!("manifests-index/t/20210101T00/20210101T000000Z!{old}!0!cleared");
    env.rt.block_on(env.store.put("media", &stale, Vec::new(), "application/octet-stream")).unwrap();
    let (listed, stderr) =
        reprocess(&env, &["--dry-run", "--since", "2021-01-01T00:00:00Z", "--until", "2022-01-01T00:00:00Z"]);
    assert!(listed.is_empty() && stderr.contains("0 would be published, 1 outside the filters"), "{listed}{stderr}");

    // A real run at --max-rate 4 over three jobs (a, and the two laid down), with a state file:
    // the third publish waits for its turn, half a second after the first.
    let state = env.logdir.path().join("index.state");
    let start = std::time::Instant::now();
    let (_, stderr) = reprocess(
        &env,
        &[
            "--since",
            "2019-01-01T00:00:00Z",
            "--status",
            "cleared",
            "--max-rate",
            "4",
            "--state",
            state.to_str().unwrap(),
        ],
    );
    assert!(start.elapsed() >= Duration::from_millis(500), "{:?}", start.elapsed());
    assert!(stderr.contains("3 published"), "{stderr}");
    assert!(std::fs::read_to_string(&state).unwrap().starts_with("manifests-index/t/"), "the index part was last");
    let (_, stderr) = reprocess(&env, &["--status", "cleared", "--state", state.to_str().unwrap()]);
    assert!(stderr.contains("0 manifests read"), "resumed after the last entry: {stderr}");
    let again = env.wait_verdicts(&a, 2, Duration::from_secs(60)).remove(1);
    assert_eq!(again.body["revision"], 1);
    env.wait_verdicts(&old, 1, Duration::from_secs(60));
    let a_index = index_keys_of(&env, &a);
    assert_eq!(a_index.len(), 4, "two revisions, each a pointer and an entry: {a_index:?}");

    // Erase finds every revision's objects from the job id, and only this job's.
    let out = env.command().args(["erase", &a]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let printed = String::from_utf8_lossy(&out.stdout);
    for key in &a_index {
        assert!(printed.contains(&format!("deleted s3://media/{key}")), "{key}: {printed}");
    }
    assert!(index_keys_of(&env, &a).is_empty());
    assert_eq!(index_keys_of(&env, &b).len(), 2, "another job's index is kept");
    let (listed, _) = reprocess(&env, &["--dry-run"]);
    assert!(!listed.contains(&a), "an erased job is not selected: {listed}");
}
