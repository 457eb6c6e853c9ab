//! Operations surface: health, readiness and Prometheus metrics of a running worker.

use std::time::{Duration, Instant};

use crate::support::media::jpeg;
use crate::support::{harness, http_get, job_id, media_job};

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
