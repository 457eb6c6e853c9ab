//! The soak: every published job accounted for while the fleet is hurt (issue "No job lost,
//! proven"). Real workers (the built binary, three at different concurrencies on one queue), a
//! real RabbitMQ vhost and a real S3 server behind a proxy that can delay, refuse and err; the
//! ledger (`mediagate-ledger`) publishes a mix of photos, voice notes, videos, bad files and
//! files a hash bank blocks, re-publishes some as reprocess jobs, has some blocked items
//! released by `mediagate review release`, and at the end of each phase proves that every job's
//! highest revision got a verdict whose manifest and outputs are in S3, that repeats agree, and
//! that nothing is left in the queues.
//!
//! One phase per fault, each with its own ledger table:
//! `window` (S3 latency switched between 0, 40 and 150 ms every few seconds, so the window of
//! jobs in hand keeps changing), `kill9`, `sigterm` (with jobs in hand; the worker must exit 0),
//! `broker_restart` (`rabbitmqctl stop_app` / `start_app`), `connections_cut` (every connection
//! of the vhost closed by the broker), `s3_refuse` (20 s), `s3_errors` (503, then 500, then
//! 3 s answers), and `mixed` (several at once).
//!
//! Not a libtest binary (`harness = false`): `make test` runs the short version (the `window` and
//! `kill9` phases, two workers, within 2 minutes); `make soak DURATION=1800 JOBS=2400` the full
//! one. Settings: MEDIAGATE_SOAK_SECONDS (total active time), MEDIAGATE_SOAK_JOBS (all phases),
//! MEDIAGATE_SOAK_FULL=1 (every phase, three workers), MEDIAGATE_SOAK_PHASES (a comma list).
//! It prints libtest's `test result:` line so `make test` counts it.

#[path = "e2e/support/mod.rs"]
#[allow(unused_imports)]
mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mediagate_ledger::{Lane, Ledger, LedgerConfig, Published, Report};
use mediagate_store::{Store, StoreConfig};
use mediagate_testkit::faults::{FaultProxy, S3Fault};
use mediagate_testkit::media;
use mediagate_testkit::rabbit::TestVhost;
use serde_json::{json, Value};
use support::{free_port, http_get, sha256_hex, wait_ready, S3Server, Tethered, ACCESS_KEY, SECRET_KEY};

const PHASES: [&str; 8] =
    ["window", "kill9", "sigterm", "broker_restart", "connections_cut", "s3_refuse", "s3_errors", "mixed"];

/// What one kind of upload is and what its verdict must say.
#[derive(Clone)]
struct Fixture {
    key: String,
    kind: &'static str,
    expect: &'static str,
}

/// One worker process and how to start it again.
struct Worker {
    name: String,
    env: Vec<(&'static str, String)>,
    log: PathBuf,
    proc: Option<Tethered>,
    restarts: u32,
}

impl Worker {
    fn start(&mut self) {
        let log = self.log.with_extension(format!("{}.log", self.restarts));
        self.proc = Some(Tethered::spawn(Path::new(env!("CARGO_BIN_EXE_mediagate")), &["worker"], &self.env, &log));
        wait_ready(&support::metrics_addr_of(&self.env), &log);
        self.restarts += 1;
    }

    fn rss_kb(&self) -> u64 {
        let pid = self.proc.as_ref().and_then(|p| p.inner_pid());
        pid.and_then(|p| std::fs::read_to_string(format!("/proc/{p}/status")).ok())
            .and_then(|s| {
                s.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
            })
            .unwrap_or(0)
    }
}

struct Soak {
    rt: tokio::runtime::Runtime,
    vhost: TestVhost,
    _s3: S3Server,
    proxy: FaultProxy,
    store: Store,
    store_config: StoreConfig,
    fixtures: Vec<Fixture>,
    workers: Vec<Arc<Mutex<Worker>>>,
    logdir: PathBuf,
    base_env: Vec<(&'static str, String)>,
    problems: Vec<String>,
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok()).unwrap_or(default)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--list") {
        println!("soak: test");
        return ExitCode::SUCCESS;
    }
    // A libtest-style filter that does not name the soak skips it (as `cargo test foo` would).
    if let Some(filter) = args.iter().find(|a| !a.starts_with('-')) {
        if !"soak".contains(filter.as_str()) {
            println!("test result: ok. 0 passed; 0 failed; 0 ignored; 0 measured; 1 filtered out");
            return ExitCode::SUCCESS;
        }
    }
    if std::env::var("MEDIAGATE_SOAK_MODE").is_ok_and(|m| m == "runs") {
        return latency_runs();
    }
    let full = std::env::var("MEDIAGATE_SOAK_FULL").is_ok_and(|v| v == "1");
    let phases: Vec<String> = match std::env::var("MEDIAGATE_SOAK_PHASES") {
        Ok(list) if !list.trim().is_empty() => list.split(',').map(|s| s.trim().to_string()).collect(),
        _ if full => PHASES.iter().map(|s| s.to_string()).collect(),
        _ => vec!["window".into(), "kill9".into()],
    };
    if let Some(bad) = phases.iter().find(|p| !PHASES.contains(&p.as_str())) {
        eprintln!("soak: unknown phase {bad:?}; phases are {}", PHASES.join(", "));
        return ExitCode::FAILURE;
    }
    let seconds = env_u64("MEDIAGATE_SOAK_SECONDS", if full { 1800 } else { 40 });
    let jobs = env_u64("MEDIAGATE_SOAK_JOBS", if full { 2400 } else { 40 }) as usize;
    let concurrencies: &[usize] = if full || phases.len() > 2 { &[2, 1, 3] } else { &[2, 1] };
    let started = Instant::now();
    println!(
        "soak: {} phase(s) [{}], {seconds} s of faults, {jobs} jobs, workers at concurrency {concurrencies:?}",
        phases.len(),
        phases.join(", ")
    );
    let mut soak = Soak::start(concurrencies);
    let per_phase_secs = (seconds / phases.len() as u64).max(20);
    let per_phase_jobs = (jobs / phases.len()).max(10);
    let mut rows = Vec::new();
    for phase in &phases {
        let report = soak.phase(phase, Duration::from_secs(per_phase_secs), per_phase_jobs);
        rows.push((phase.clone(), report));
    }
    soak.stop_workers();
    println!("\nsoak summary ({} s in all):", started.elapsed().as_secs());
    println!(
        "{:<16} {:>9} {:>8} {:>9} {:>8} {:>10} {:>10} {:>6} {:>5} {:>8}",
        "phase",
        "published",
        "returned",
        "confirmed",
        "verdicts",
        "duplicates",
        "superseded",
        "failed",
        "lost",
        "problems"
    );
    for (phase, (r, extra)) in &rows {
        println!(
            "{:<16} {:>9} {:>8} {:>9} {:>8} {:>10} {:>10} {:>6} {:>5} {:>8}",
            phase,
            r.published,
            r.returned,
            r.confirmed,
            r.verdicts,
            r.duplicates,
            r.superseded,
            r.failed,
            r.lost,
            r.problems.len() + extra.len()
        );
    }
    let mut failed = !soak.problems.is_empty();
    for (phase, (r, extra)) in &rows {
        if !r.ok() || !extra.is_empty() {
            failed = true;
            for p in r.problems.iter().chain(extra.iter()).take(20) {
                println!("  {phase}: {p}");
            }
        }
    }
    for p in &soak.problems {
        println!("  soak: {p}");
    }
    if failed {
        println!("logs kept in {}", soak.logdir.display());
        println!("test soak ... FAILED");
        println!("test result: FAILED. 0 passed; 1 failed; 0 ignored; 0 measured; 0 filtered out");
        // Keep the logs for whoever reads the failure.
        std::mem::forget(soak);
        ExitCode::FAILURE
    } else {
        if std::env::var_os("MEDIAGATE_SOAK_KEEP_LOGS").is_some() {
            println!("logs kept in {}", soak.logdir.display());
        } else {
            let _ = std::fs::remove_dir_all(&soak.logdir);
        }
        println!("test soak ... ok");
        println!("test result: ok. 1 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out");
        ExitCode::SUCCESS
    }
}

impl Soak {
    fn start(concurrencies: &[usize]) -> Soak {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
        let logdir = tempfile::Builder::new().prefix("mediagate-soak-").tempdir().expect("tempdir").keep();
        let vhost = TestVhost::create("soak");
        let s3 = S3Server::start_logging_to(&logdir);
        let proxy = FaultProxy::start(s3.port);
        let store_config = StoreConfig {
            endpoint: Some(s3.endpoint()),
            region: Some("us-east-1".into()),
            access_key: Some(ACCESS_KEY.into()),
            secret_key: Some(SECRET_KEY.into()),
            ..StoreConfig::default()
        };
        let store = rt.block_on(support::test_store(&s3));
        let (fixtures, bank_sha) = make_fixtures(&rt, &store);
        let bank = logdir.join("bank.txt");
        std::fs::write(&bank, format!("sha256 {bank_sha} soak-known-file\n")).expect("bank file");

        let mut base_env = support::worker_env(&vhost.name, &s3);
        base_env.retain(|(k, _)| !matches!(*k, "MEDIAGATE_S3_ENDPOINT" | "RUST_LOG"));
        base_env.push(("MEDIAGATE_S3_ENDPOINT", proxy.endpoint.clone()));
        base_env.push(("MEDIAGATE_HASH_BANKS", format!("soak={}", bank.display())));
        base_env.push(("RUST_LOG", "info,mediagate_worker::settle=warn".into()));

        // The topology comes first, as a deployment would set it up: no job can be returned.
        let out = Command::new(env!("CARGO_BIN_EXE_mediagate"))
            .arg("ensure-topology")
            .env("MEDIAGATE_AMQP_URL", &vhost.url)
            .output()
            .expect("run ensure-topology");
        assert!(out.status.success(), "ensure-topology: {}", String::from_utf8_lossy(&out.stdout));

        let workers: Vec<Arc<Mutex<Worker>>> = concurrencies
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let name = format!("soak-w{}", i + 1);
                let mut env = base_env.clone();
                env.retain(|(k, _)| {
                    !matches!(*k, "MEDIAGATE_WORKER_ID" | "MEDIAGATE_METRICS_ADDR" | "MEDIAGATE_CONCURRENCY")
                });
                env.push(("MEDIAGATE_WORKER_ID", name.clone()));
                env.push(("MEDIAGATE_METRICS_ADDR", format!("127.0.0.1:{}", free_port())));
                env.push(("MEDIAGATE_CONCURRENCY", c.to_string()));
                let mut w = Worker { log: logdir.join(&name), name, env, proc: None, restarts: 0 };
                w.start();
                Arc::new(Mutex::new(w))
            })
            .collect();
        println!("soak: {} workers ready; logs in {}", workers.len(), logdir.display());
        Soak {
            rt,
            vhost,
            _s3: s3,
            proxy,
            store,
            store_config,
            fixtures,
            workers,
            logdir,
            base_env,
            problems: Vec::new(),
        }
    }

    /// One phase: `jobs` jobs published over `active` while the fault runs, then the ledger's
    /// accounting. Returns the ledger's report and the soak's own findings (expected statuses,
    /// workers that died).
    fn phase(&mut self, name: &str, active: Duration, jobs: usize) -> (Report, Vec<String>) {
        let started = Instant::now();
        println!("\n== phase {name}: {jobs} jobs over {} s", active.as_secs());
        let ledger = Arc::new(
            self.rt
                .block_on(Ledger::open(LedgerConfig {
                    amqp_urls: vec![self.vhost.url.clone()],
                    queue: format!("ledger.soak-{}-{name}", std::process::id()),
                    store: self.store_config.clone(),
                    output_bucket: "media".into(),
                    manifest_bucket: "media".into(),
                    management_url: None,
                    record: Some(self.logdir.join(format!("ledger-{name}.jsonl"))),
                }))
                .expect("open the ledger"),
        );
        let expected: Arc<Mutex<BTreeMap<String, (Fixture, &'static str)>>> = Arc::default();
        let done = Arc::new(AtomicBool::new(false));

        // The producer: jobs spread over 80 % of the phase, then follow-ups (reprocess copies,
        // review releases) as verdicts come in.
        let producer = {
            let ledger = ledger.clone();
            let fixtures = self.fixtures.clone();
            let expected = expected.clone();
            let tag = name.to_string();
            let spacing = active.mul_f64(0.8) / jobs.max(1) as u32;
            self.rt.spawn(async move {
                let mut ids = Vec::new();
                for i in 0..jobs {
                    let f = &fixtures[i % fixtures.len()];
                    let id = format!("s-{}-{tag}-{i}", std::process::id());
                    let job = job_json(&id, f, 0, false);
                    match ledger.publish(&job, Lane::Upload).await {
                        Ok(Published::Confirmed) => {
                            expected.lock().unwrap().insert(id.clone(), (f.clone(), f.expect));
                            ids.push((id, f.clone()));
                        }
                        Ok(Published::Returned) => eprintln!("soak: {id} returned (the topology was declared first)"),
                        Err(e) => eprintln!("soak: {id} not published: {e}"),
                    }
                    tokio::time::sleep(spacing).await;
                }
                ids
            })
        };
        let follow = {
            let ledger = ledger.clone();
            let expected = expected.clone();
            let done = done.clone();
            let env = self.base_env.clone();
            let amqp = self.vhost.url.clone();
            let s3 = self.store_config.endpoint.clone().unwrap_or_default();
            std::thread::spawn(move || follow_ups(&ledger, &expected, &done, &env, &amqp, &s3))
        };

        let fault_notes = self.run_fault(name, active);
        let mut extra: Vec<String> = fault_notes;
        let published = self.rt.block_on(producer).unwrap_or_default();
        // Every worker up and S3 healthy before the accounting.
        self.proxy.set(S3Fault::Delay(Duration::ZERO));
        for w in &self.workers {
            let mut w = w.lock().unwrap();
            let alive = w.proc.as_mut().is_some_and(|p| matches!(p.child.try_wait(), Ok(None)));
            if !alive {
                extra.push(format!("worker {} had exited unexpectedly; restarted", w.name));
                w.start();
            }
        }
        // Follow-ups stop once the producer is done and its verdicts are in.
        let deadline = Instant::now() + Duration::from_secs(300);
        while ledger.pending() > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(200));
        }
        done.store(true, Ordering::SeqCst);
        let _ = follow.join();
        let report = self.rt.block_on(ledger.settle(Duration::from_secs(300)));
        // The soak's own check: each job's final verdict says what its file is.
        for (id, (_, want)) in expected.lock().unwrap().iter() {
            let vs = ledger.verdicts_for(id);
            let last = vs.iter().max_by_key(|v| v["revision"].as_u64().unwrap_or(0));
            match last {
                Some(v) if v["status"] == *want => {}
                Some(v) if v["status"] == "failed" => {} // counted by the ledger as failed
                Some(v) => extra.push(format!(
                    "{id}: expected {want}, got {} ({})",
                    v["status"],
                    v["items"][0]["reason"]["code"].as_str().or(v["reason"]["code"].as_str()).unwrap_or("-")
                )),
                None => {} // the ledger counts it as lost
            }
        }
        let rss: Vec<String> = self
            .workers
            .iter()
            .map(|w| {
                let w = w.lock().unwrap();
                format!("{} {} MB", w.name, w.rss_kb() / 1024)
            })
            .collect();
        println!("{}", report.table());
        println!("deliveries settled by the running workers (lane/ending): {:?}", deliveries(&self.workers));
        println!(
            "phase {name}: {} jobs published in {} s; worker RSS now: {}",
            published.len(),
            started.elapsed().as_secs(),
            rss.join(", ")
        );
        if let Ok(l) = Arc::try_unwrap(ledger) {
            self.rt.block_on(l.close());
        }
        (report, extra)
    }

    /// Runs the fault of phase `name` for `active`; returns what went wrong with the fleet
    /// itself (a worker that did not exit 0 on SIGTERM).
    fn run_fault(&self, name: &str, active: Duration) -> Vec<String> {
        // A long phase repeats its fault: one round every 75 s or so.
        let rounds = (active.as_secs() / 75).max(1) as u32;
        let mut notes = Vec::new();
        for _ in 0..rounds {
            notes.extend(self.fault_round(name, active / rounds));
        }
        notes
    }

    /// One round of phase `name`'s fault, spread over `active`.
    fn fault_round(&self, name: &str, active: Duration) -> Vec<String> {
        let mut notes = Vec::new();
        let start = Instant::now();
        let at = |f: f64| start + active.mul_f64(f);
        let sleep_until = |t: Instant| {
            let now = Instant::now();
            if t > now {
                std::thread::sleep(t - now);
            }
        };
        match name {
            "window" => self.switch_latency(start + active),
            "kill9" => {
                sleep_until(at(0.3));
                self.kill9(0);
                sleep_until(at(0.5));
                self.kill9(self.workers.len() - 1);
            }
            "sigterm" => {
                sleep_until(at(0.3));
                if let Some(n) = self.sigterm(1) {
                    notes.push(n)
                }
                sleep_until(at(0.6));
                if let Some(n) = self.sigterm(0) {
                    notes.push(n)
                }
            }
            "broker_restart" => {
                sleep_until(at(0.3));
                broker_restart();
            }
            "connections_cut" => {
                sleep_until(at(0.25));
                self.cut_connections();
                sleep_until(at(0.55));
                self.cut_connections();
            }
            "s3_refuse" => {
                sleep_until(at(0.2));
                println!("soak: S3 refusing connections for 20 s");
                self.proxy.set(S3Fault::Refuse);
                std::thread::sleep(Duration::from_secs(20));
                self.proxy.set(S3Fault::Delay(Duration::ZERO));
            }
            "s3_errors" => {
                sleep_until(at(0.1));
                for (mode, secs) in [
                    (S3Fault::Status(503), 10),
                    (S3Fault::Status(500), 10),
                    (S3Fault::Delay(Duration::from_secs(3)), 15),
                ] {
                    println!("soak: S3 {mode:?} for {secs} s");
                    self.proxy.set(mode);
                    std::thread::sleep(Duration::from_secs(secs));
                }
                self.proxy.set(S3Fault::Delay(Duration::ZERO));
            }
            "mixed" => {
                let latency = {
                    let proxy = self.proxy.clone();
                    let end = start + active;
                    std::thread::spawn(move || switch_latency(&proxy, end))
                };
                sleep_until(at(0.2));
                self.kill9(0);
                sleep_until(at(0.35));
                self.cut_connections();
                sleep_until(at(0.5));
                if let Some(n) = self.sigterm(self.workers.len() - 1) {
                    notes.push(n)
                }
                sleep_until(at(0.6));
                broker_restart();
                let _ = latency.join();
            }
            other => notes.push(format!("no such phase {other}")),
        }
        sleep_until(start + active);
        notes
    }

    fn switch_latency(&self, until: Instant) {
        switch_latency(&self.proxy, until)
    }

    fn kill9(&self, i: usize) {
        let mut w = self.workers[i].lock().unwrap();
        println!("soak: kill -9 {}", w.name);
        if let Some(p) = w.proc.as_mut() {
            p.kill9();
        }
        std::thread::sleep(Duration::from_secs(3));
        w.start();
        println!("soak: {} restarted", w.name);
    }

    /// SIGTERM with jobs in hand: the worker finishes them and exits 0; then it starts again.
    fn sigterm(&self, i: usize) -> Option<String> {
        let mut w = self.workers[i].lock().unwrap();
        // With jobs in hand: wait (up to 20 s) until its jobs_in_flight gauge says so.
        let addr = support::metrics_addr_of(&w.env);
        let waited = Instant::now();
        while waited.elapsed() < Duration::from_secs(20) {
            let m = http_get(&addr, "/metrics").1;
            let in_flight = m
                .lines()
                .find_map(|l| l.strip_prefix("mediagate_jobs_in_flight "))
                .and_then(|v| v.trim().parse::<f64>().ok())
                .unwrap_or(0.0);
            if in_flight > 0.0 {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        println!("soak: SIGTERM {}", w.name);
        let t = Instant::now();
        let code = w.proc.as_mut().and_then(|p| p.terminate(Duration::from_secs(120)));
        let note = (code != Some(0)).then(|| format!("{} exited {code:?} after SIGTERM, not 0", w.name));
        // What it had in hand, from its own log line.
        let log = std::fs::read_to_string(w.log.with_extension(format!("{}.log", w.restarts - 1))).unwrap_or_default();
        let in_hand = log
            .lines()
            .rev()
            .find(|l| l.contains("finishing jobs in hand"))
            .map(strip_ansi)
            .and_then(|l| l.split("in_flight=").nth(1).map(str::to_string))
            .and_then(|r| r.split(|c: char| !c.is_ascii_digit()).next().map(str::to_string))
            .unwrap_or_else(|| "0".into());
        println!(
            "soak: {} finished {in_hand} job(s) in hand and exited {code:?} in {} ms",
            w.name,
            t.elapsed().as_millis()
        );
        w.start();
        println!("soak: {} restarted", w.name);
        note
    }

    fn cut_connections(&self) {
        let list = self.vhost.ctl(&["list_connections", "pid", "vhost"]);
        let mut n = 0;
        for line in list.lines() {
            let mut parts = line.split('\t');
            let (Some(pid), Some(vhost)) = (parts.next(), parts.next()) else { continue };
            if vhost.trim() == self.vhost.name {
                let _ = Command::new("rabbitmqctl")
                    .args(["-q", "close_connection", pid.trim(), "soak: connection cut"])
                    .output();
                n += 1;
            }
        }
        println!("soak: {n} connections of the vhost closed by the broker");
    }

    fn stop_workers(&mut self) {
        for w in &self.workers {
            let mut w = w.lock().unwrap();
            let code = w.proc.as_mut().and_then(|p| p.terminate(Duration::from_secs(120)));
            if code != Some(0) {
                self.problems.push(format!("{} exited {code:?} at the end, not 0", w.name));
            }
        }
        let _ = &self.store;
    }
}

/// The ledger run again and again against a fresh worker (concurrency 2) whose S3 answers
/// `MEDIAGATE_SOAK_DELAY_MS` late (default 40), `MEDIAGATE_SOAK_RUNS` times (default 100), each
/// run `MEDIAGATE_SOAK_JOBS` small-photo jobs (default 200); then `MEDIAGATE_SOAK_BASELINE_RUNS`
/// runs (default 10) with S3 on loopback, for the throughput beside it. Lost must be 0 in every
/// run. `make ledger-runs`.
fn latency_runs() -> ExitCode {
    let runs = env_u64("MEDIAGATE_SOAK_RUNS", 100);
    let baseline_runs = env_u64("MEDIAGATE_SOAK_BASELINE_RUNS", 10);
    let delay = Duration::from_millis(env_u64("MEDIAGATE_SOAK_DELAY_MS", 40));
    let jobs = env_u64("MEDIAGATE_SOAK_JOBS", 200) as usize;
    let soak = Soak::start(&[]);
    let photo = Fixture { key: "soak/photo-640.jpg".into(), kind: "media", expect: "cleared" };
    let mut rows: Vec<(Duration, u64, f64, u64, usize)> = Vec::new();
    let mut failed = false;
    for n in 0..runs + baseline_runs {
        let d = if n < runs { delay } else { Duration::ZERO };
        soak.proxy.set(S3Fault::Delay(d));
        let mut env = soak.base_env.clone();
        env.retain(|(k, _)| !matches!(*k, "MEDIAGATE_WORKER_ID" | "MEDIAGATE_METRICS_ADDR"));
        env.push(("MEDIAGATE_WORKER_ID", format!("run-{n}")));
        env.push(("MEDIAGATE_METRICS_ADDR", format!("127.0.0.1:{}", free_port())));
        let mut w = Worker {
            name: format!("run-{n}"),
            log: soak.logdir.join(format!("run-{n}")),
            env,
            proc: None,
            restarts: 0,
        };
        w.start();
        let ledger = soak
            .rt
            .block_on(Ledger::open(LedgerConfig {
                amqp_urls: vec![soak.vhost.url.clone()],
                queue: format!("ledger.runs-{}-{n}", std::process::id()),
                store: soak.store_config.clone(),
                output_bucket: "media".into(),
                manifest_bucket: "media".into(),
                management_url: None,
                record: None,
            }))
            .expect("open the ledger");
        let start = Instant::now();
        soak.rt.block_on(async {
            for i in 0..jobs {
                let id = format!("r-{}-{n}-{i}", std::process::id());
                if let Err(e) = ledger.publish(&job_json(&id, &photo, 0, false), Lane::Upload).await {
                    eprintln!("runs: {id} not published: {e}");
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(300);
        while ledger.pending() > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let took = start.elapsed();
        let report = soak.rt.block_on(ledger.settle(Duration::from_secs(120)));
        let rate = jobs as f64 / took.as_secs_f64();
        println!(
            "run {n:>3}: S3 +{:>3} ms, {} published, {} verdicts, lost {}, {:.1} jobs/s, {} problems",
            d.as_millis(),
            report.published,
            report.verdicts,
            report.lost,
            rate,
            report.problems.len()
        );
        if !report.ok() {
            failed = true;
            for p in report.problems.iter().take(10) {
                println!("    {p}");
            }
        }
        rows.push((d, report.lost, rate, report.published, report.problems.len()));
        soak.rt.block_on(ledger.close());
        let code = w.proc.as_mut().and_then(|p| p.terminate(Duration::from_secs(60)));
        if code != Some(0) {
            failed = true;
            println!("    worker {} exited {code:?}, not 0", w.name);
        }
    }
    let summary = |d: Duration| {
        let sel: Vec<_> = rows.iter().filter(|r| r.0 == d).collect();
        let mut rates: Vec<f64> = sel.iter().map(|r| r.2).collect();
        rates.sort_by(|a, b| a.total_cmp(b));
        let median = rates.get(rates.len() / 2).copied().unwrap_or(0.0);
        let lost: u64 = sel.iter().map(|r| r.1).sum();
        let published: u64 = sel.iter().map(|r| r.3).sum();
        (
            sel.len(),
            published,
            lost,
            median,
            rates.first().copied().unwrap_or(0.0),
            rates.last().copied().unwrap_or(0.0),
        )
    };
    let (n40, p40, l40, m40, lo40, hi40) = summary(delay);
    let (n0, p0, l0, m0, lo0, hi0) = summary(Duration::ZERO);
    println!("\nledger runs ({} jobs each, a fresh worker at concurrency 2 each run):", jobs);
    println!("  S3 +{} ms: {n40} runs, {p40} jobs published, lost {l40}; jobs/s median {m40:.1} (min {lo40:.1}, max {hi40:.1})", delay.as_millis());
    println!(
        "  S3 +0 ms:  {n0} runs, {p0} jobs published, lost {l0}; jobs/s median {m0:.1} (min {lo0:.1}, max {hi0:.1})"
    );
    if m0 > 0.0 {
        println!("  throughput at +{} ms / at 0 ms: {:.0} %", delay.as_millis(), 100.0 * m40 / m0);
    }
    println!("  load average: {}", std::fs::read_to_string("/proc/loadavg").unwrap_or_default().trim());
    if failed || l40 + l0 > 0 {
        println!("test result: FAILED. 0 passed; 1 failed; 0 ignored; 0 measured; 0 filtered out");
        ExitCode::FAILURE
    } else {
        let _ = std::fs::remove_dir_all(&soak.logdir);
        println!("test result: ok. 1 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out");
        ExitCode::SUCCESS
    }
}

/// A text log line without its colours (`ESC [ … m`).
fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c == 'm' {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// S3 latency switched between 0, 40 and 150 ms every 3 s until `until`.
fn switch_latency(proxy: &FaultProxy, until: Instant) {
    let steps = [0u64, 40, 150];
    let mut i = 0;
    while Instant::now() < until {
        proxy.set(S3Fault::Delay(Duration::from_millis(steps[i % steps.len()])));
        i += 1;
        std::thread::sleep(Duration::from_secs(3).min(until.saturating_duration_since(Instant::now())));
    }
    proxy.set(S3Fault::Delay(Duration::ZERO));
}

fn broker_restart() {
    println!("soak: rabbitmqctl stop_app");
    let run = |args: &[&str]| {
        let out = Command::new("rabbitmqctl").args(args).output().expect("rabbitmqctl");
        assert!(out.status.success(), "rabbitmqctl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    run(&["-q", "stop_app"]);
    std::thread::sleep(Duration::from_secs(5));
    run(&["-q", "start_app"]);
    run(&["-q", "await_startup", "--timeout", "60"]);
    println!("soak: broker back");
}

/// Reprocess copies of every 7th job seen cleared, and `review release` of every other
/// bank-blocked one (the rest stay blocked), as their verdicts come in; until `done`.
fn follow_ups(
    ledger: &Ledger,
    expected: &Mutex<BTreeMap<String, (Fixture, &'static str)>>,
    done: &AtomicBool,
    env: &[(&'static str, String)],
    amqp: &str,
    s3: &str,
) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let mut handled: std::collections::HashSet<String> = Default::default();
    let mut n = 0usize;
    let mut banked = 0usize;
    while !done.load(Ordering::SeqCst) {
        let jobs: Vec<(String, Fixture, &'static str)> =
            expected.lock().unwrap().iter().map(|(k, (f, want))| (k.clone(), f.clone(), *want)).collect();
        for (id, fixture, want) in jobs {
            if handled.contains(&id) {
                continue;
            }
            let vs = ledger.verdicts_for(&id);
            let Some(v) = vs.iter().find(|v| v["revision"] == 0) else { continue };
            handled.insert(id.clone());
            n += 1;
            if want == "cleared" && v["status"] == "cleared" && n.is_multiple_of(7) {
                // What `mediagate reprocess` publishes: the stored job, reprocess, revision + 1.
                let _ = rt.block_on(ledger.publish(&job_json(&id, &fixture, 1, true), Lane::Reprocess));
            } else if want == "blocked" && v["status"] == "blocked" && {
                banked += 1;
                !banked.is_multiple_of(2)
            } {
                if let Some(rev) = release(&id, env, amqp, s3) {
                    ledger.expect_revision(&id, rev);
                    expected.lock().unwrap().insert(id.clone(), (fixture.clone(), "cleared"));
                }
            }
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// `mediagate review release JOB 0`, retried while the broker is away; the revision it published.
fn release(id: &str, env: &[(&'static str, String)], amqp: &str, s3: &str) -> Option<u64> {
    for _ in 0..10 {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_mediagate"));
        for (k, v) in env {
            cmd.env(k, v);
        }
        let out = cmd
            .args(["review", "release", id, "0", "--by", "soak", "--note", "soak test"])
            .env("MEDIAGATE_AMQP_URL", amqp)
            .env("MEDIAGATE_S3_ENDPOINT", s3)
            .output()
            .ok()?;
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        if out.status.success() {
            let rev = text.split("with revision ").nth(1).and_then(|r| r.trim().parse().ok());
            println!("soak: released {id} (revision {rev:?})");
            return rev;
        }
        std::thread::sleep(Duration::from_secs(3));
    }
    eprintln!("soak: could not release {id}");
    None
}

fn job_json(id: &str, f: &Fixture, revision: u64, reprocess: bool) -> Value {
    let mut job = json!({
        "schema": "mediagate.job.v1",
        "job_id": id,
        "kind": f.kind,
        "message": { "message_id": format!("m-{id}"), "conversation_id": "c-soak", "first_contact": false },
        "sender": { "account_id": "a-soak", "age_band": "adult" },
        "recipients": [ { "account_id": "a-rcpt", "age_band": "adult" } ],
        "items": [ { "item_id": "0", "source": { "bucket": "incoming", "key": f.key } } ],
    });
    if revision > 0 || reprocess {
        job["revision"] = json!(revision);
        job["reprocess"] = json!(reprocess);
    }
    job
}

/// The mix, uploaded once: photos of several sizes, voice notes, videos, bad files and a photo
/// the soak's bank knows. Returns them in a 20-slot cycle and the banked photo's sha256.
fn make_fixtures(rt: &tokio::runtime::Runtime, store: &Store) -> (Vec<Fixture>, String) {
    let banked = media::jpeg(700, 500, 77);
    let bank_sha = sha256_hex(&banked);
    let files: Vec<(&str, Vec<u8>, &'static str, &'static str)> = vec![
        ("photo-640.jpg", media::jpeg(640, 480, 1), "media", "cleared"),
        ("photo-1600.jpg", media::jpeg(1600, 1200, 2), "media", "cleared"),
        ("photo-800.png", media::png_rgb(800, 600), "media", "cleared"),
        ("photo-12mp.jpg", media::jpeg(4000, 3000, 3), "media", "cleared"),
        ("voice.m4a", media::speech("the soak test speaks a short voice note", "m4a"), "voice_note", "cleared"),
        ("voice.ogg", media::speech("another voice note, in ogg opus", "ogg"), "voice_note", "cleared"),
        ("video-240.mp4", media::mp4(320, 240, 2.0, 25, true, &[]), "media", "cleared"),
        ("video-360.mp4", media::mp4(640, 360, 3.0, 30, true, &[]), "media", "cleared"),
        ("not-media.jpg", b"this is not a picture, whatever its name says\n".repeat(40), "media", "rejected"),
        ("truncated.png", media::png_rgb(400, 300)[..200].to_vec(), "media", "rejected"),
        ("banked.jpg", banked, "media", "blocked"),
    ];
    let mut by_name = BTreeMap::new();
    for (name, bytes, kind, expect) in files {
        let key = format!("soak/{name}");
        rt.block_on(store.put("incoming", &key, bytes, "application/octet-stream")).expect("upload a fixture");
        by_name.insert(name, Fixture { key, kind, expect });
    }
    // 20 slots: 12 photos, 3 voice notes, 2 videos, 2 bad files, 1 banked photo.
    let cycle = [
        "photo-640.jpg",
        "photo-1600.jpg",
        "voice.m4a",
        "photo-800.png",
        "photo-640.jpg",
        "video-240.mp4",
        "photo-1600.jpg",
        "not-media.jpg",
        "photo-640.jpg",
        "banked.jpg",
        "photo-800.png",
        "voice.ogg",
        "photo-640.jpg",
        "photo-12mp.jpg",
        "video-360.mp4",
        "photo-1600.jpg",
        "truncated.png",
        "photo-640.jpg",
        "voice.m4a",
        "photo-800.png",
    ];
    (cycle.iter().map(|n| by_name[n].clone()).collect(), bank_sha)
}

/// `mediagate_deliveries_total` of the running workers, summed by ending (the counts of a
/// worker restarted in the phase start again from zero).
fn deliveries(workers: &[Arc<Mutex<Worker>>]) -> BTreeMap<String, u64> {
    let mut sum = BTreeMap::new();
    for w in workers {
        let w = w.lock().unwrap();
        let text = http_get(&support::metrics_addr_of(&w.env), "/metrics").1;
        for line in text.lines().filter(|l| l.starts_with("mediagate_deliveries_total{")) {
            let ending = line.split("ending=\"").nth(1).and_then(|r| r.split('"').next()).unwrap_or("?");
            let lane = line.split("lane=\"").nth(1).and_then(|r| r.split('"').next()).unwrap_or("?");
            let n: f64 = line.rsplit(' ').next().and_then(|v| v.parse().ok()).unwrap_or(0.0);
            if n > 0.0 {
                *sum.entry(format!("{lane}/{ending}")).or_default() += n as u64;
            }
        }
    }
    sum
}
