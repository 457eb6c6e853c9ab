//! Decoder isolation: a poison file that makes its decoder die takes only its own item down;
//! the worker and the other jobs carry on. And `MEDIAGATE_SANDBOX=off` still works.

use std::time::Duration;

use crate::support::media::{jpeg, png_flat_rgba};
use crate::support::{http_get, item, job_id, media_job, metrics_addr_of, Isolated};

#[test]
fn a_poison_file_that_kills_its_decoder_is_rejected_and_everything_else_carries_on() {
    // 64 MiB per decoder: plenty for ordinary photos; a 7000×7000 RGBA PNG (a few hundred kB
    // on the wire) needs 196 MB to decode, so its decoder process aborts on allocation.
    let env = Isolated::start("poison", &[("MEDIAGATE_SANDBOX_MEMORY_MB", "64"), ("MEDIAGATE_CONCURRENCY", "2")]);
    let worker_pid = env.worker.as_ref().and_then(|w| w.inner_pid()).expect("worker pid");
    let poisoned = job_id("poison");
    env.put(&format!("{poisoned}/ok.jpg"), jpeg(1600, 1200, 1));
    env.put(&format!("{poisoned}/bomb.png"), png_flat_rgba(7000, 7000));
    env.publish(&media_job(&poisoned, &[&format!("{poisoned}/ok.jpg"), &format!("{poisoned}/bomb.png")]));
    let others: Vec<String> = (0..3).map(|i| job_id(&format!("beside-{i}"))).collect();
    for (i, id) in others.iter().enumerate() {
        env.put(&format!("{id}/0.jpg"), jpeg(1200, 900, 10 + i as u32));
        env.publish(&media_job(id, &[&format!("{id}/0.jpg")]));
    }

    let v = env.wait_verdicts(&poisoned, 1, Duration::from_secs(120)).remove(0);
    assert_eq!(v.body["status"], "partial", "{}", v.body);
    assert_eq!(item(&v, "0")["status"], "cleared");
    let bomb = item(&v, "1");
    assert_eq!(bomb["status"], "rejected");
    assert_eq!(bomb["reason"]["code"], "input.corrupt", "{bomb}");
    let message = bomb["reason"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("64 MiB") && message.contains("SIGABRT"), "{message}");
    for id in &others {
        let v = env.wait_verdicts(id, 1, Duration::from_secs(120)).remove(0);
        assert_eq!(v.body["status"], "cleared", "{}", v.body);
    }
    // The same worker process did all of it, and says what happened.
    assert_eq!(env.worker.as_ref().and_then(|w| w.inner_pid()), Some(worker_pid), "the worker was not restarted");
    let addr = metrics_addr_of(&env.env);
    assert_eq!(http_get(&addr, "/healthz").0, 200);
    let (_, metrics) = http_get(&addr, "/metrics");
    assert!(metrics.contains("mediagate_sandbox_runs_total{outcome=\"crashed\"} 1"), "{metrics}");
    assert!(metrics.contains("mediagate_sandbox_peak_rss_bytes_count{media_type=\"image\"}"), "{metrics}");
    assert!(env.log_tail().contains("memory allocation of"), "the decoder's last words reach the worker's log");
}

#[test]
fn with_the_sandbox_off_media_work_runs_in_the_worker() {
    let env = Isolated::start("nosandbox", &[("MEDIAGATE_SANDBOX", "off"), ("MEDIAGATE_DEV_ALLOW_UNSANDBOXED", "1")]);
    let id = job_id("nosandbox");
    env.put(&format!("{id}/0.jpg"), jpeg(1600, 1200, 5));
    env.publish(&media_job(&id, &[&format!("{id}/0.jpg")]));
    let v = env.wait_verdicts(&id, 1, Duration::from_secs(60)).remove(0);
    assert_eq!(v.body["status"], "cleared", "{}", v.body);
    assert_eq!(item(&v, "0")["width"], 1600);
    assert!(env.log_tail().contains("without isolation"), "the worker warns that the sandbox is off");
    let (_, metrics) = http_get(&metrics_addr_of(&env.env), "/metrics");
    // Every label set is registered at zero at start-up: no child ran means every count is 0.
    let counts: Vec<&str> =
        metrics.lines().filter(|l| l.starts_with("mediagate_sandbox_peak_rss_bytes_count")).collect();
    assert!(!counts.is_empty(), "{metrics}");
    assert!(counts.iter().all(|l| l.ends_with(" 0")), "no child ran: {counts:?}");
}
