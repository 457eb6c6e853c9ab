//! What a hostile job body costs a worker, with §2's limits and without them (the peer: the same
//! parse with the limits lifted, which is what a worker did before them). Prints the median time
//! and the peak heap of each, and the load average beside them.
//!
//! `cargo bench -p mediagate-contract --bench limits`

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use mediagate_contract::{Job, JobLimits, ParseOutcome};
use mediagate_testkit::timing::{loadavg, median, times_ms};

/// Counts the heap in use and its peak.
struct Counting;
static IN_USE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards every call to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        // SAFETY: the caller's layout, passed on as it came.
        let p = unsafe { System.alloc(l) };
        if !p.is_null() {
            let now = IN_USE.fetch_add(l.size(), Ordering::Relaxed) + l.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        IN_USE.fetch_sub(l.size(), Ordering::Relaxed);
        // SAFETY: `p` came from `alloc` with this layout.
        unsafe { System.dealloc(p, l) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

fn job(recipients: usize, padding: usize) -> Vec<u8> {
    let r: Vec<String> = (0..recipients)
        .map(|i| format!(r#"{{"account_id":"recipient-{i:08}","age_band":"adult","nudity_filter":false}}"#))
        .collect();
    format!(
        r#"{{"schema":"mediagate.job.v1","job_id":"j-bench","kind":"media","message":{{"message_id":"m-1","conversation_id":"c-1","first_contact":false}},"sender":{{"account_id":"a-1","age_band":"adult"}},"recipients":[{}],"items":[{{"item_id":"0","source":{{"bucket":"incoming","key":"u/a-1/x.jpg"}}}}],"padding":"{}"}}"#,
        r.join(","),
        "x".repeat(padding)
    )
    .into_bytes()
}

/// Median ms and peak heap bytes (above what was in use before) of parsing `body` under `limits`.
fn cost(body: &[u8], limits: JobLimits) -> (f64, usize, bool) {
    let valid = matches!(Job::parse(body, Some("j-bench"), limits), ParseOutcome::Valid(_));
    let base = IN_USE.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    let _ = Job::parse(body, Some("j-bench"), limits);
    let peak = PEAK.load(Ordering::Relaxed) - base;
    let ms = median(&times_ms(7, || {
        let _ = std::hint::black_box(Job::parse(std::hint::black_box(body), Some("j-bench"), limits));
    }));
    (ms, peak, valid)
}

fn main() {
    let unlimited = JobLimits { max_bytes: usize::MAX, max_recipients: usize::MAX };
    let cases: [(&str, Vec<u8>); 4] = [
        ("2 MiB body (a padding field)", job(1, 2 << 20)),
        ("300,000 recipients (~21 MB)", job(300_000, 0)),
        ("1,000 recipients within 1 MiB", job(1_000, 0)),
        ("256 recipients + padding to ~1 MiB (largest accepted)", job(256, 1_000_000)),
    ];
    println!("job body limits (contract §2), load average {}", loadavg());
    println!(
        "{:<56} {:>10} {:>12} {:>12} {:>12} {:>9}",
        "body", "bytes", "limited ms", "peer ms", "limited heap", "peer heap"
    );
    for (name, body) in &cases {
        let (ms, heap, valid) = cost(body, JobLimits::DEFAULT);
        let (peer_ms, peer_heap, _) = cost(body, unlimited);
        println!(
            "{:<56} {:>10} {:>12.3} {:>12.3} {:>12} {:>9}  ({}; {:.0}× faster)",
            name,
            body.len(),
            ms,
            peer_ms,
            heap,
            peer_heap,
            if valid { "accepted" } else { "job.invalid" },
            peer_ms / ms.max(1e-6)
        );
    }
}
