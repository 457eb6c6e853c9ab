//! Whole-pipeline bench: the real worker binary against RabbitMQ and s3s-fs over loopback.
//! Prints throughput of photo jobs at concurrency 2, peak RSS (worker and sandbox children), and
//! each job's time split into media work (timed inside the sandbox), the sandbox round trip, and
//! everything else (broker, S3, verdict), from the worker's own histograms; live latency under a
//! reprocess backlog; and peak PSS of the worker and its sandbox processes under three 105 MB
//! 1080p uploads (the memory budget's worst case).
//! Run with `make bench` (or `cargo bench -p mediagate --bench pipeline [-- photos|latency|memory]`).

#[path = "../tests/e2e/support/mod.rs"]
mod support;

use mediagate_testkit::timing::median;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use lapin::options::*;
use lapin::{BasicProperties, Connection, ConnectionProperties};
use mediagate_media::{process_photo, MediaSettings};
use support::media::jpeg;
use support::*;

fn worker_pid(wrapper: u32) -> Option<u32> {
    let children = std::fs::read_to_string(format!("/proc/{wrapper}/task/{wrapper}/children")).ok()?;
    children.split_whitespace().filter_map(|p| p.parse().ok()).find(|pid: &u32| {
        std::fs::read_to_string(format!("/proc/{pid}/comm")).map(|c| c.trim() == "mediagate").unwrap_or(false)
    })
}

fn status_kb(pid: u32, field: &str) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines().find(|l| l.starts_with(field))?.split_whitespace().nth(1)?.parse().ok()
}

/// Runs `jobs` photo jobs through a fresh worker and returns its throughput in jobs/s. With a
/// `latency`, the worker reaches S3 through a proxy that delays every request by it (the bench's
/// own uploads go direct).
fn run_batch(label: &str, src: &[u8], jobs: usize, concurrency: usize, latency: Duration) -> f64 {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let logdir = tempfile::tempdir().unwrap();
    let vhost = create_vhost("bench");
    let s3 = S3Server::start_logging_to(logdir.path());
    let store = rt.block_on(test_store(&s3));
    let mut env = worker_env(&vhost, &s3);
    env.retain(|(k, _)| !matches!(*k, "MEDIAGATE_CONCURRENCY" | "MEDIAGATE_MAX_INPUT_BYTES" | "RUST_LOG"));
    env.push(("MEDIAGATE_CONCURRENCY", concurrency.to_string()));
    env.push(("RUST_LOG", "warn".into()));
    if !latency.is_zero() {
        let proxy = mediagate_testkit::latency::latency_proxy(s3.port, latency);
        env.retain(|(k, _)| *k != "MEDIAGATE_S3_ENDPOINT");
        env.push(("MEDIAGATE_S3_ENDPOINT", proxy.endpoint));
    }
    let label = &format!("{label}, S3 +{} ms", latency.as_millis());
    let log = logdir.path().join("worker.log");
    let worker = Tethered::spawn(std::path::Path::new(env!("CARGO_BIN_EXE_mediagate")), &["worker"], &env, &log);

    wait_ready(&metrics_addr_of(&env), &log);
    let batch = |tag: &str, n: usize| -> Duration {
        let ids: Vec<String> = (0..n).map(|i| format!("bench-{tag}-{}-{i}", std::process::id())).collect();
        rt.block_on(async {
            for id in &ids {
                store.put("incoming", &format!("{id}/0.jpg"), src.to_vec(), "image/jpeg").await.unwrap();
            }
            let conn = Connection::connect(&amqp_url(&vhost), ConnectionProperties::default()).await.unwrap();
            let (ch, mut verdicts) = private_verdicts(&conn).await;
            let start = Instant::now();
            for id in &ids {
                let key = format!("{id}/0.jpg");
                let body = media_job(id, &[&key]).to_string();
                ch.basic_publish(
                    "mediagate.jobs".into(),
                    "upload".into(),
                    // mandatory, as contract §1 asks of producers (no confirms here: the bench
                    // waits for every verdict, which a lost job would make it miss)
                    BasicPublishOptions { mandatory: true, immediate: false },
                    body.as_bytes(),
                    BasicProperties::default().with_delivery_mode(2).with_message_id(id.as_str().into()),
                )
                .await
                .unwrap();
            }
            for _ in 0..n {
                let d = tokio::time::timeout(Duration::from_secs(300), verdicts.next())
                    .await
                    .expect("verdict")
                    .unwrap()
                    .unwrap();
                let v: serde_json::Value = serde_json::from_slice(&d.data).unwrap();
                assert_eq!(v["status"], "cleared", "{v}");
            }
            start.elapsed()
        })
    };
    // A warm-up batch first, as a worker that has been running a while: its window of jobs in
    // hand has settled (it starts at twice the slots and follows what keeps them busy).
    batch("warm", (jobs / 2).max(40));
    // Counters are since start-up (the model load, the warm-up): the run is the difference.
    let (_, before) = http_get(&metrics_addr_of(&env), "/metrics");
    let elapsed = batch("run", jobs);
    // Where the time went, from the worker's own histograms.
    let (_, metrics) = http_get(&metrics_addr_of(&env), "/metrics");
    let sum = |prefix: &str| -> f64 { metric_total(&metrics, prefix) - metric_total(&before, prefix) };
    let per_job = |v: f64| v * 1000.0 / jobs as f64;
    let job = per_job(sum("mediagate_job_seconds_sum{lane=\"live\"}"));
    let fetch = per_job(sum("mediagate_stage_seconds_sum{media_type=\"any\",stage=\"fetch\"}"));
    let wait = per_job(sum("mediagate_stage_seconds_sum{media_type=\"image\",stage=\"slot_wait\"}"));
    let process = per_job(sum("mediagate_stage_seconds_sum{media_type=\"image\",stage=\"process\"}"));
    let work = per_job(sum("mediagate_stage_seconds_sum{media_type=\"image\",stage=\"media_work\"}"));
    let store = per_job(sum("mediagate_stage_seconds_sum{media_type=\"image\",stage=\"store\"}"));
    let manifest = per_job(sum("mediagate_stage_seconds_sum{media_type=\"job\",stage=\"manifest\"}"));
    let publish = per_job(sum("mediagate_stage_seconds_sum{media_type=\"job\",stage=\"publish\"}"));
    println!(
        "{label}: per job (ms of its own wall time): taken -> confirmed verdict {job:.1}: fetch {fetch:.1}, waiting for a CPU slot {wait:.1}, \
         in the sandbox {process:.1} (media work {work:.1} + round trip {:.1}), store {store:.1}, manifest {manifest:.1}, publish {publish:.1}",
        process - work,
    );
    // Pipelining: jobs fetch and store while others hold the slots, so what matters is how
    // busy the slots are with media work over the run.
    let slot_busy = sum("mediagate_stage_seconds_sum{media_type=\"image\",stage=\"media_work\"}")
        / (concurrency as f64 * elapsed.as_secs_f64());
    println!(
        "{label}: the {concurrency} slots spent {:.1} % of the run on media work; {:.1} % of slot time went to everything else \
         (sandbox round trips, waiting on S3 and the broker, and the CPU this box's S3 server, broker and bench client take)",
        slot_busy * 100.0,
        (1.0 - slot_busy) * 100.0
    );
    // CPU: the worker process itself (S3 client, AMQP, JSON, hashing, the runtime) against its
    // sandbox children (the media work), from the same /metrics.
    let worker_cpu = sum("mediagate_worker_cpu_seconds");
    let media_cpu = sum("mediagate_sandbox_cpu_seconds_total");
    println!(
        "{label}: CPU per job: media work (sandbox children) {:.1} ms, the worker itself (S3, broker, verdicts, runtime) {:.1} ms \
         = {:.1} % of the worker's CPU outside media work (target <= 10 %)",
        per_job(media_cpu),
        per_job(worker_cpu),
        worker_cpu / (worker_cpu + media_cpu) * 100.0
    );
    let pid = worker_pid(worker.child.id());
    let hwm = pid.and_then(|p| status_kb(p, "VmHWM:"));
    let child_rss =
        sum("mediagate_sandbox_peak_rss_bytes_sum") / sum("mediagate_sandbox_peak_rss_bytes_count").max(1.0);
    let per_s = jobs as f64 / elapsed.as_secs_f64();
    let window =
        metrics.lines().find_map(|l| l.strip_prefix("mediagate_jobs_window ")).unwrap_or("?").trim().to_string();
    println!(
        "{label}: {jobs} jobs at concurrency {concurrency}, window of {window} jobs in hand: {:.2} s, {per_s:.2} photos/s; peak RSS: worker {} MB, \
         each sandbox child {:.0} MB on average (at most {concurrency} at once)",
        elapsed.as_secs_f64(),
        hwm.map(|k| format!("{:.0}", k as f64 / 1024.0)).unwrap_or_else(|| "?".into()),
        child_rss / 1e6
    );
    // Media work alone, in process, on the same photo: the floor the pipeline adds to.
    let settings = MediaSettings::default();
    let media: Vec<f64> = (0..5)
        .map(|_| {
            let t = Instant::now();
            process_photo(src, &settings).unwrap();
            t.elapsed().as_secs_f64()
        })
        .collect();
    let media_s = median(&media);
    let media_share = (media_s * jobs as f64 / concurrency as f64) / elapsed.as_secs_f64();
    println!(
        "{label}: media work alone, in-process and unloaded: {:.1} ms/photo; {jobs} of them at concurrency {concurrency} would be \
         {:.0} % of this run's wall time (the rest: S3 transfers, broker, verdicts, the sandbox, and sharing 2 cores with s3s-fs and RabbitMQ)",
        media_s * 1000.0,
        media_share * 100.0
    );
    drop(worker);
    per_s
}

/// Live-job latency when idle and with a deep reprocess backlog: the reprocess lane may never
/// take the last slot, so a live job should wait for nobody.
fn live_latency_under_reprocess() {
    let env = Isolated::start("bench-lat", &[("MEDIAGATE_CONCURRENCY", "2"), ("RUST_LOG", "warn")]);
    let live_src = jpeg(1600, 1200, 3);
    let batch_src = jpeg(2400, 1800, 4);
    let measure = |tag: &str, n: usize| -> Vec<f64> {
        (0..n)
            .map(|_| {
                let id = job_id(tag);
                env.put(&format!("{id}/0.jpg"), live_src.clone());
                let start = Instant::now();
                env.publish(&media_job(&id, &[&format!("{id}/0.jpg")]));
                env.wait_verdicts(&id, 1, Duration::from_secs(120));
                start.elapsed().as_secs_f64() * 1000.0
            })
            .collect()
    };
    let idle = median(&measure("idle", 9));
    let backlog = 400;
    for _ in 0..backlog {
        let id = job_id("batch");
        env.put(&format!("{id}/0.jpg"), batch_src.clone());
        let mut job = media_job(&id, &[&format!("{id}/0.jpg")]);
        job["reprocess"] = serde_json::json!(true);
        job["revision"] = serde_json::json!(1);
        env.publish_to("reprocess", &job);
    }
    std::thread::sleep(Duration::from_secs(1));
    let busy = median(&measure("busy", 9));
    let left = env.depth("mediagate.reprocess");
    println!(
        "live photo job latency (1600x1200, publish to verdict): idle {idle:.0} ms, with {backlog} reprocess jobs queued {busy:.0} ms \
         ({:.2}x idle; target <= 2x); {left} reprocess jobs still queued at the end",
        busy / idle
    );
}

/// PSS (kB) of `pid` and every process below it (the fork servers and their media children).
fn tree_pss_kb(pid: u32, each: &mut Vec<(u32, String, u64)>) -> u64 {
    let pss = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup"))
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("Pss:"))?.split_whitespace().nth(1)?.parse::<u64>().ok())
        .unwrap_or(0);
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default().trim().to_string();
    each.push((pid, comm, pss));
    let mut total = pss;
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).into_iter().flatten().flatten();
    for task in tasks {
        let children = std::fs::read_to_string(task.path().join("children")).unwrap_or_default();
        for child in children.split_whitespace().filter_map(|c| c.parse::<u32>().ok()) {
            total += tree_pss_kb(child, each);
        }
    }
    total
}

/// Three ~105 MB, 60 s 1080p uploads at concurrency 2 (the load that peaked at 1.57 GB PSS before
/// inputs were held once): peak PSS of the worker and all its sandbox processes, sampled from
/// outside every 50 ms.
fn big_video_memory() {
    // Noise keeps x264 from compressing the test pattern: ~14 Mb/s, as a phone's 1080p.
    let clip = support::media::mp4(
        1920,
        1080,
        60.0,
        30,
        true,
        &["-vf", "noise=alls=12:allf=t", "-b:v", "14M", "-maxrate", "14M", "-bufsize", "28M"],
    );
    let env = Isolated::start(
        "bench-mem",
        &[
            ("MEDIAGATE_CONCURRENCY", "2"),
            ("MEDIAGATE_MEMORY_MB", "2048"),
            ("MEDIAGATE_MAX_INPUT_BYTES", "209715200"),
            ("RUST_LOG", "warn"),
        ],
    );
    let ids: Vec<String> = (0..3).map(|_| job_id("bigvideo")).collect();
    for id in &ids {
        env.put(&format!("{id}/0.mp4"), clip.clone());
    }
    let wrapper = env.worker.as_ref().map(|w| w.child.id()).expect("worker");
    let pid = worker_pid(wrapper).expect("worker pid");
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = {
        let done = done.clone();
        std::thread::spawn(move || {
            let mut peak = (0u64, Vec::new());
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                let mut each = Vec::new();
                let total = tree_pss_kb(pid, &mut each);
                if total > peak.0 {
                    peak = (total, each);
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            peak
        })
    };
    let start = Instant::now();
    for id in &ids {
        env.publish(&media_job(id, &[&format!("{id}/0.mp4")]));
    }
    for id in &ids {
        let v = env.wait_verdicts(id, 1, Duration::from_secs(900));
        assert_eq!(v[0].body["status"], "cleared", "{}", v[0].body);
    }
    let elapsed = start.elapsed();
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let (peak, each) = sampler.join().expect("sampler");
    let worker_kb = each.first().map(|e| e.2).unwrap_or(0);
    let children: Vec<String> =
        each.iter().skip(1).filter(|e| e.2 > 10 * 1024).map(|e| format!("{:.0}", e.2 as f64 / 1024.0)).collect();
    println!(
        "3 x {:.0} MB 60 s 1080p uploads at concurrency 2, MEDIAGATE_MEMORY_MB=2048: peak PSS {:.0} MB in all (target <= 1000 MB; \
         1570 MB before inputs were held once): worker {:.0} MB, sandbox processes over 10 MB [{}] MB; {:.0} s",
        clip.len() as f64 / 1e6,
        peak as f64 / 1024.0,
        worker_kb as f64 / 1024.0,
        children.join(", "),
        elapsed.as_secs_f64()
    );
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        println!("pipeline: bench");
        return;
    }
    // `cargo bench --bench pipeline -- memory` runs one section: photos, latency or memory.
    let only: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    let run = |section: &str| only.is_empty() || only.iter().any(|o| o == section);
    println!(
        "== pipeline bench (real worker, RabbitMQ, s3s-fs over loopback, then behind a proxy adding 40 ms to every S3 request); load {} ==",
        mediagate_testkit::timing::loadavg()
    );
    if run("photos") {
        let mut lines = Vec::new();
        for (label, src, jobs) in
            [("12 MP JPEG", jpeg(4000, 3000, 1), 20), ("small JPEG 640x480", jpeg(640, 480, 2), 100)]
        {
            let fast = run_batch(label, &src, jobs, 2, Duration::ZERO);
            let slow = run_batch(label, &src, jobs, 2, Duration::from_millis(40));
            lines.push(format!(
                "{label}: {fast:.2} jobs/s with S3 on loopback, {slow:.2} jobs/s with 40 ms per S3 request = {:.0} % (target >= 85 %)",
                slow / fast * 100.0
            ));
        }
        for l in lines {
            println!("{l}");
        }
    }
    if run("latency") {
        live_latency_under_reprocess();
    }
    if run("memory") {
        big_video_memory();
    }
}
