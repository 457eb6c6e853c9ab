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
