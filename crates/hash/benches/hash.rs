//! `cargo bench -p mediagate-hash --bench hash`: (a) PDQ per image, ours against PyPI pdqhash
//! 0.2.8 (timed inside Python, same pixels, `tests/pdq_reference.py --bench`), at the sizes the
//! pipelines hash: the photo's 320-px thumb, a video frame, 3 MP and 12 MP; (b) bank lookup at
//! 1,000,000 random PDQ entries plus 1,000 planted near matches: build time, index memory,
//! latency per query of 8 hashes (an image's dihedral variants) at the contract's default
//! distance 31, multi-index hashing against the linear scan, and the planted matches' recall.
//!
//! Env: MEDIAGATE_BENCH_PYTHON (a Python with pdqhash; when it lacks pdqhash — `make bench` points
//! it at the pyvips venv — the reference venv `.local/venv-ref` is used, as it is by default).
//! Run it alone: the figures are wall-clock times on a 2-core machine.

#[path = "../tests/support/images.rs"]
mod images;

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use mediagate_hash::{pdq_rgb, Banks, Digest, Entry, Pdq, Query};
use mediagate_testkit::timing::{loadavg, median, times_ms};

const MAX_DISTANCE: u32 = 31;

fn repo_root() -> PathBuf {
    mediagate_testkit::workspace_root()
}

/// A Python that imports pdqhash, or why there is none.
fn peer_python() -> Result<PathBuf, String> {
    let reference = repo_root().join(".local/venv-ref/bin/python");
    let candidates: Vec<PathBuf> =
        std::env::var_os("MEDIAGATE_BENCH_PYTHON").map(PathBuf::from).into_iter().chain([reference]).collect();
    for p in &candidates {
        let ok = Command::new(p).args(["-c", "import pdqhash"]).output().is_ok_and(|o| o.status.success());
        if ok {
            return Ok(p.clone());
        }
    }
    Err(format!("none of {candidates:?} imports pdqhash; run `make reference-venv`"))
}

fn pdq_bench() {
    let cases = [
        ("thumb 320x240", images::natural(320, 240, 1), 41),
        ("video frame 512x288", images::natural(512, 288, 2), 41),
        ("3 MP 2048x1536", images::natural(2048, 1536, 3), 15),
        ("12 MP 4032x3024", images::natural(4032, 3024, 4), 9),
    ];
    let dir = repo_root().join("target/bench-hash");
    std::fs::create_dir_all(&dir).expect("create target/bench-hash");
    let mut manifest = Vec::new();
    for (i, (name, img, _)) in cases.iter().enumerate() {
        let file = dir.join(format!("{i}.rgb"));
        std::fs::write(&file, &img.data).expect("write bench pixels");
        manifest.push(serde_json::json!({ "name": name, "file": file, "width": img.width, "height": img.height }));
    }
    let manifest_path = dir.join("manifest.json");
    std::fs::write(&manifest_path, serde_json::to_vec(&manifest).unwrap()).unwrap();

    println!("(a) PDQ per image (RGB8 in, hash + quality out; dihedral variants excluded on both sides)");
    println!("    loadavg before: {}", loadavg());
    let ours: Vec<f64> = cases
        .iter()
        .map(|(_, img, runs)| {
            median(&times_ms(*runs, || {
                std::hint::black_box(pdq_rgb(img.width, img.height, &img.data).unwrap());
            }))
        })
        .collect();
    let peer = match peer_python() {
        Ok(python) => {
            let runs = cases.iter().map(|c| c.2).min().unwrap_or(9);
            let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/pdq_reference.py");
            let out = Command::new(&python)
                .arg(&script)
                .args(["--bench", &runs.to_string()])
                .arg(&manifest_path)
                .output()
                .expect("run pdq_reference.py --bench");
            if out.status.success() {
                serde_json::from_slice::<serde_json::Value>(&out.stdout).ok()
            } else {
                println!("    peer failed: {}", String::from_utf8_lossy(&out.stderr));
                None
            }
        }
        Err(e) => {
            println!("    no peer: {e}");
            None
        }
    };
    println!("    {:<22} {:>10} {:>16} {:>8}", "image", "ours ms", "pdqhash 0.2.8 ms", "ratio");
    for ((name, _, _), ours) in cases.iter().zip(&ours) {
        let theirs = peer.as_ref().and_then(|p| p[*name].as_f64());
        let (t, ratio) = match theirs {
            Some(t) => (format!("{t:.3}"), format!("{:.1}×", t / ours)),
            None => ("-".into(), "-".into()),
        };
        println!("    {name:<22} {ours:>10.3} {t:>16} {ratio:>8}");
    }
    println!("    loadavg after: {}", loadavg());
}

/// splitmix64
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn pdq(&mut self) -> Pdq {
        let mut w = [0u16; 16];
        for chunk in w.chunks_mut(4) {
            let v = self.next();
            for (i, x) in chunk.iter_mut().enumerate() {
                *x = (v >> (16 * i)) as u16;
            }
        }
        Pdq(w)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// `p` with exactly `k` distinct bits flipped.
fn flipped(rng: &mut Rng, p: Pdq, k: u32) -> Pdq {
    let mut bits: Vec<usize> = (0..256).collect();
    for i in 0..k as usize {
        let j = i + rng.below((256 - i) as u64) as usize;
        bits.swap(i, j);
    }
    let mut q = p;
    for &b in &bits[..k as usize] {
        q.0[b >> 4] ^= 1 << (b & 15);
    }
    q
}

fn vm_rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn percentile(v: &[f64], p: f64) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    v.get(((v.len() as f64 * p).ceil() as usize).saturating_sub(1)).copied().unwrap_or(0.0)
}

fn time_queries(banks: &Banks, queries: &[Vec<Query>], linear: bool) -> (Vec<f64>, Vec<Option<mediagate_hash::Match>>) {
    let mut times = Vec::with_capacity(queries.len());
    let mut answers = Vec::with_capacity(queries.len());
    for q in queries {
        let t = Instant::now();
        let m = if linear { banks.pdq_linear(q, MAX_DISTANCE) } else { banks.pdq(q, MAX_DISTANCE) };
        times.push(t.elapsed().as_secs_f64() * 1e6);
        answers.push(std::hint::black_box(m));
    }
    (times, answers)
}

fn lookup_bench() {
    const RANDOM: usize = 1_000_000;
    const PLANTED: usize = 1_000;
    println!("(b) PDQ lookup: {RANDOM} random entries + {PLANTED} planted near matches, d = {MAX_DISTANCE}");
    println!("    loadavg before: {}", loadavg());
    let mut rng = Rng(2024);
    let rss_start = vm_rss_kb();
    let mut entries: Vec<Entry> = (0..RANDOM).map(|_| Entry { digest: Digest::Pdq(rng.pdq()), label: None }).collect();
    // planted: an entry at distance k (uniform 0..=31) from its query, placed at random
    let mut planted = Vec::with_capacity(PLANTED);
    for i in 0..PLANTED {
        let q = rng.pdq();
        let k = (i as u32) % (MAX_DISTANCE + 1);
        let e = flipped(&mut rng, q, k);
        entries.push(Entry { digest: Digest::Pdq(e), label: Some(format!("planted-{i}")) });
        let last = entries.len() - 1;
        entries.swap(rng.below(RANDOM as u64) as usize, last);
        planted.push((q, e, k));
    }
    let rss_entries = vm_rss_kb();
    let t = Instant::now();
    let banks = Banks::build(vec![("bench".into(), entries)]);
    let build_s = t.elapsed().as_secs_f64();
    let rss_built = vm_rss_kb();
    println!(
        "    build {build_s:.2} s; index {:.1} MB (its tables and hashes, counted); VmRSS {:.1} MB at start, {:.1} MB with the entries, {:.1} MB after build (entries freed)",
        banks.heap_bytes() as f64 / 1e6,
        rss_start as f64 / 1e3,
        rss_entries as f64 / 1e3,
        rss_built as f64 / 1e3
    );

    // queries of 8 hashes: the planted one among 7 random ones, at a random position
    let planted_queries: Vec<Vec<Query>> = planted
        .iter()
        .map(|(q, _, _)| {
            let mut qs: Vec<Query> = (0..8).map(|_| Query { hash: rng.pdq(), frame_ms: None }).collect();
            qs[rng.below(8) as usize].hash = *q;
            qs
        })
        .collect();
    let random_queries: Vec<Vec<Query>> =
        (0..PLANTED).map(|_| (0..8).map(|_| Query { hash: rng.pdq(), frame_ms: None }).collect()).collect();

    let (_, _) = time_queries(&banks, &planted_queries[..50], false); // warm-up
    let (t_planted, answers) = time_queries(&banks, &planted_queries, false);
    let (t_random, random_answers) = time_queries(&banks, &random_queries, false);
    let found = planted
        .iter()
        .zip(&answers)
        .filter(|((_, e, k), m)| {
            m.as_ref().is_some_and(|m| m.distance <= *k && (m.hash == e.to_hex() || m.distance < *k))
        })
        .count();
    let false_random = random_answers.iter().filter(|m| m.is_some()).count();
    const LINEAR: usize = 20;
    let (t_linear, linear_answers) = time_queries(&banks, &planted_queries[..LINEAR], true);
    let (t_linear_random, _) = time_queries(&banks, &random_queries[..LINEAR], true);
    let agree = linear_answers.iter().zip(&answers).filter(|(a, b)| a == b).count();
    let us = |v: &[f64]| {
        format!("median {:>8.1} µs  p99 {:>8.1} µs  max {:>8.1} µs", median(v), percentile(v, 0.99), percentile(v, 1.0))
    };
    println!("    MIH, planted queries ({PLANTED}):     {}", us(&t_planted));
    println!("    MIH, random queries ({PLANTED}):      {}", us(&t_random));
    println!("    linear, planted queries ({LINEAR}):   {}", us(&t_linear));
    println!("    linear, random queries ({LINEAR}):    {}", us(&t_linear_random));
    println!(
        "    recall of planted matches: {found}/{PLANTED} ({:.1}%); random queries matched: {false_random}; MIH = linear on {agree}/{LINEAR}",
        100.0 * found as f64 / PLANTED as f64
    );
    println!("    speed-up at the median: {:.0}×", median(&t_linear) / median(&t_planted));
    println!("    loadavg after: {}", loadavg());
}

fn main() {
    println!("mediagate-hash bench (loadavg {})", loadavg());
    pdq_bench();
    lookup_bench();
}
