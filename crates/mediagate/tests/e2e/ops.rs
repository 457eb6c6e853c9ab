//! Operations surface: health, readiness and Prometheus metrics of a running worker.

use std::time::{Duration, Instant};

use crate::support::media::jpeg;
use crate::support::{harness, http_get, job_id, media_job, metrics_addr_of, Isolated};

#[test]
fn healthz_readyz_and_metrics() {
    let h = harness();
    let (code, body) = http_get(&h.metrics_addr, "/healthz");
    assert_eq!((code, body.trim()), (200, "ok"));
    // Ready once consuming with S3 reachable (the storage probe runs right at start-up).
    let start = Instant::now();
    loop {
        let (code, body) = http_get(&h.metrics_addr, "/readyz");
        if code == 200 {
            assert!(body.contains("broker ok") && body.contains("storage ok"), "{body}");
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(30), "not ready after 30 s: {code} {body}");
        std::thread::sleep(Duration::from_millis(200));
    }
    // A job moves the counters.
    let id = job_id("metrics");
    let key = format!("{id}/0.jpg");
    h.put("incoming", &key, jpeg(300, 200, 1));
    assert_eq!(h.run_job(&media_job(&id, &[&key])).body["status"], "cleared");
    // The counters move right after the verdict is confirmed, which may be a moment after the
    // verdict reached us.
    let start = Instant::now();
    let text = loop {
        let (code, text) = http_get(&h.metrics_addr, "/metrics");
        assert_eq!(code, 200);
        if text.contains("mediagate_jobs_total{lane=\"live\",status=\"cleared\"}")
            || start.elapsed() > Duration::from_secs(10)
        {
            break text;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    for needle in [
        "mediagate_jobs_total{lane=\"live\",status=\"cleared\"}",
        "mediagate_items_total{media_type=\"image\",reason=\"none\",status=\"cleared\"}",
        "mediagate_stage_seconds_bucket{media_type=\"image\",stage=\"process\"",
        "mediagate_stage_seconds_count{media_type=\"any\",stage=\"fetch\"}",
        "mediagate_job_seconds_count{lane=\"live\"}",
        "mediagate_jobs_in_flight",
        "mediagate_dead_lettered_total",
        "mediagate_process_resident_memory_bytes",
    ] {
        assert!(text.contains(needle), "{needle} missing from /metrics:\n{text}");
    }
    assert_eq!(http_get(&h.metrics_addr, "/nope").0, 404);
}

/// The window of live jobs in hand follows what keeps the slots busy: behind an S3 that takes
/// 40 ms per request, small photos spend most of their life waiting on it, so the worker takes
/// more of them at once (a new consumer with a larger prefetch; the old one is drained), and
/// every job still gets exactly its verdict.
#[test]
fn the_window_of_jobs_in_hand_grows_when_jobs_wait_on_s3() {
    let env = Isolated::start_behind_slow_s3("window", &[("MEDIAGATE_CONCURRENCY", "1")], Duration::from_millis(40));
    let window = || -> i64 {
        let (_, text) = http_get(&metrics_addr_of(&env.env), "/metrics");
        text.lines()
            .find_map(|l| l.strip_prefix("mediagate_jobs_window "))
            .and_then(|v| v.trim().parse().ok())
            .expect("mediagate_jobs_window in /metrics")
    };
    assert_eq!(window(), 2, "twice the slots to start with");
    let src = jpeg(320, 240, 5);
    let mut ids = Vec::new();
    for round in 0..2 {
        for i in 0..30 {
            let id = job_id(&format!("win{round}-{i}"));
            env.put(&format!("{id}/0.jpg"), src.clone());
            env.publish(&media_job(&id, &[&format!("{id}/0.jpg")]));
            ids.push(id);
        }
        for id in &ids {
            let v = env.wait_verdicts(id, 1, Duration::from_secs(120));
            assert_eq!(v[0].body["status"], "cleared", "{}", v[0].body);
        }
    }
    let grown = window();
    assert!(grown > 2, "window {grown}; log:\n{}", env.log_tail());
    let log = std::fs::read_to_string(&env.log).unwrap_or_default();
    assert!(log.contains("window of live jobs in hand changed"), "{}", env.log_tail());
    for id in &ids {
        assert_eq!(env.verdicts_for(id).len(), 1, "{id}: exactly one verdict");
    }
    assert_eq!(env.depth("mediagate.uploads"), 0);
}
