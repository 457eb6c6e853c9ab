//! `cargo bench -p mediagate-media --bench photo`: the photo pipeline on a 12 MP JPEG and PNG,
//! against libvips in-process (bench/pyvips_photo.py), plus the decode-alone floor, throughput
//! at concurrency 2 and peak RSS. Inputs are generated once into `target/bench-media/`.

use mediagate_testkit::peers::{bench_python, media_dir};
use mediagate_testkit::timing::{loadavg, median, times_ms};
use std::path::{Path, PathBuf};
use std::time::Instant;

use mediagate_media::{process_photo, MediaSettings};

/// Runs per round; ours and the peer alternate for `ROUNDS` rounds so load from other processes
/// hits both alike. Medians are over all `RUNS * ROUNDS` runs.
const RUNS: usize = 5;
const ROUNDS: usize = 3;

/// Photo-like 12 MP content: smooth large-scale shapes, texture and sensor-like noise, so the
/// JPEG is several MB at q92 like a phone photo (flat synthetic images decode unrealistically fast).
fn photo_like(w: u32, h: u32) -> Vec<u8> {
    let mut s: u32 = 0x1234_5678;
    let mut out = Vec::with_capacity((w * h * 3) as usize);
    for y in 0..h {
        for x in 0..w {
            let (fx, fy) = (x as f32 / w as f32, y as f32 / h as f32);
            let base = [
                120.0 + 80.0 * (fx * 6.0 + fy * 2.0).sin() * (fy * 3.0).cos(),
                110.0 + 70.0 * (fy * 5.0 - fx * 3.0).sin(),
                100.0 + 60.0 * ((fx + fy) * 9.0).cos() * (fx * 2.0).sin(),
            ];
            let texture = 18.0 * ((x as f32 * 0.21).sin() * (y as f32 * 0.17).cos());
            for b in base {
                s ^= s << 13;
                s ^= s >> 17;
                s ^= s << 5;
                let noise = ((s & 0xFF) as f32 + ((s >> 8) & 0xFF) as f32) / 2.0 - 127.5; // triangular
                out.push((b + texture + noise * 0.30).clamp(0.0, 255.0) as u8);
            }
        }
    }
    out
}

fn inputs() -> (PathBuf, PathBuf) {
    let dir = media_dir();
    let jpg = dir.join("photo-12mp.jpg");
    let png = dir.join("photo-12mp.png");
    if !jpg.exists() || !png.exists() {
        let (w, h) = (4000u32, 3000u32);
        let rgb = photo_like(w, h);
        let image = turbojpeg::Image {
            pixels: &rgb[..],
            width: w as usize,
            pitch: 3 * w as usize,
            height: h as usize,
            format: turbojpeg::PixelFormat::RGB,
        };
        let jpeg = turbojpeg::compress(image, 92, turbojpeg::Subsamp::Sub2x2).expect("encode bench JPEG");
        std::fs::write(&jpg, &jpeg[..]).expect("write bench JPEG");
        image::RgbImage::from_raw(w, h, rgb).expect("rgb buffer").save(&png).expect("write bench PNG");
    }
    (jpg, png)
}

fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

struct Peer {
    times_ms: std::collections::HashMap<String, Vec<f64>>,
    decode_ms: std::collections::HashMap<String, f64>,
    describe: String,
}

/// The 12 MP picture as an iPhone stores it: HEVC in 512 px grid tiles (pillow-heif's x265).
fn heic_input(png: &Path) -> PathBuf {
    let heic = png.with_extension("heic");
    if !heic.exists() {
        let bytes = mediagate_testkit::heif::photo(
            "heic",
            4000,
            3000,
            &["--from", png.to_str().expect("utf-8 path"), "--grid", "512", "--quality", "85"],
        );
        std::fs::write(&heic, bytes).expect("write bench HEIC");
    }
    heic
}

/// libheif's decode of the primary image to interleaved RGB, alone (where the time goes).
fn heif_decode(bytes: &[u8]) {
    use libheif_rs::{ColorSpace, HeifContext, LibHeif, RgbChroma};
    let lib = LibHeif::new();
    let ctx = HeifContext::read_from_bytes(bytes).expect("read HEIC");
    let handle = ctx.primary_image_handle().expect("primary image");
    std::hint::black_box(lib.decode(&handle, ColorSpace::Rgb(RgbChroma::Rgb), None).expect("decode HEIC"));
}

fn run_peer(jpg: &Path, png: &Path, heic: &Path) -> Result<Peer, String> {
    let root = mediagate_testkit::peers::repo_root();
    let python = bench_python();
    if !python.exists() {
        return Err(format!("{} not found", python.display()));
    }
    let out = std::process::Command::new(&python)
        .arg(root.join("bench/pyvips_photo.py"))
        .arg(RUNS.to_string())
        .arg(format!("jpeg={}", jpg.display()))
        .arg(format!("png={}", png.display()))
        .arg(format!("heic={}", heic.display()))
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
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).map_err(|e| format!("bad peer output: {e}"))?;
    let mut times_ms = std::collections::HashMap::new();
    let mut decode_ms = std::collections::HashMap::new();
    if let Some(cases) = v["cases"].as_object() {
        for (k, c) in cases {
            let t: Vec<f64> =
                c["times_ms"].as_array().map(|a| a.iter().filter_map(|x| x.as_f64()).collect()).unwrap_or_default();
            times_ms.insert(k.clone(), t);
            if let Some(d) = c["decode_ms"].as_f64() {
                decode_ms.insert(k.clone(), d);
            }
        }
    }
    let jpeg = &v["cases"]["jpeg"];
    let describe = format!(
        "pyvips, libvips {} ({} threads); its JPEG outputs: full {} B, thumb {} B",
        v["vips"].as_str().unwrap_or("?"),
        v["concurrency"],
        jpeg["full_bytes"],
        jpeg["thumb_bytes"]
    );
    Ok(Peer { times_ms, decode_ms, describe })
}

fn main() {
    let settings = MediaSettings::default();
    let (jpg, png) = inputs();
    let jpeg_bytes = std::fs::read(&jpg).expect("read bench JPEG");
    let png_bytes = std::fs::read(&png).expect("read bench PNG");
    let heic = heic_input(&png);
    let heic_bytes = std::fs::read(&heic).expect("read bench HEIC");
    println!(
        "inputs: {} ({:.1} MB), {} ({:.1} MB)",
        jpg.display(),
        jpeg_bytes.len() as f64 / 1e6,
        png.display(),
        png_bytes.len() as f64 / 1e6
    );
    println!("load average at start: {}", loadavg());

    let (mut decode_rgb, mut decode_yuv, mut ours_jpeg, mut ours_png) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut peer_jpeg = Vec::new();
    let mut peer_png = Vec::new();
    let (mut ours_heic, mut decode_heic, mut peer_heic) = (Vec::new(), Vec::new(), Vec::new());
    let mut peer_heic_decode = Vec::new();
    let mut peer_result: Result<String, String> = Err("not run".into());
    for _ in 0..ROUNDS {
        decode_rgb.extend(times_ms(RUNS, || {
            std::hint::black_box(turbojpeg::decompress(&jpeg_bytes, turbojpeg::PixelFormat::RGB).expect("decode"));
        }));
        decode_yuv.extend(times_ms(RUNS, || {
            std::hint::black_box(turbojpeg::decompress_to_yuv(&jpeg_bytes).expect("decode"));
        }));
        ours_jpeg.extend(times_ms(RUNS, || {
            std::hint::black_box(process_photo(&jpeg_bytes, &settings).expect("process JPEG"));
        }));
        ours_png.extend(times_ms(RUNS, || {
            std::hint::black_box(process_photo(&png_bytes, &settings).expect("process PNG"));
        }));
        ours_heic.extend(times_ms(RUNS, || {
            std::hint::black_box(process_photo(&heic_bytes, &settings).expect("process HEIC"));
        }));
        decode_heic.extend(times_ms(RUNS, || heif_decode(&heic_bytes)));
        if peer_result.is_err() && !matches!(&peer_result, Err(e) if e == "not run") {
            continue; // the peer is unavailable; do not retry every round
        }
        match run_peer(&jpg, &png, &heic) {
            Ok(p) => {
                peer_jpeg.extend(p.times_ms.get("jpeg").cloned().unwrap_or_default());
                peer_png.extend(p.times_ms.get("png").cloned().unwrap_or_default());
                peer_heic.extend(p.times_ms.get("heic").cloned().unwrap_or_default());
                peer_heic_decode.extend(p.decode_ms.get("heic").copied());
                peer_result = Ok(p.describe);
            }
            Err(e) => peer_result = Err(e),
        }
    }
    let sample = process_photo(&jpeg_bytes, &settings).expect("process JPEG");
    println!(
        "outputs: full {}×{} {} B, thumb {}×{} {} B, blurhash {}",
        sample.full.width,
        sample.full.height,
        sample.full.bytes.len(),
        sample.thumb.width,
        sample.thumb.height,
        sample.thumb.bytes.len(),
        sample.blurhash
    );

    // Throughput: two threads, each processing the JPEG repeatedly (what MEDIAGATE_CONCURRENCY=2 does).
    let per_thread = 8;
    let t = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| {
                for _ in 0..per_thread {
                    std::hint::black_box(process_photo(&jpeg_bytes, &settings).expect("process JPEG"));
                }
            });
        }
    });
    let photos_per_s = (2 * per_thread) as f64 / t.elapsed().as_secs_f64();

    println!();
    println!("{:<10} {:>9} {:>9} {:>10} {:>24}", "case", "ours ms", "peer ms", "peer/ours", "decode-alone ms");
    let (d_rgb, d_yuv) = (median(&decode_rgb), median(&decode_yuv));
    for (name, ours, peer, decode) in [
        ("12MP JPEG", median(&ours_jpeg), peer_jpeg, Some((d_rgb, d_yuv))),
        ("12MP PNG", median(&ours_png), peer_png, None),
        ("12MP HEIC", median(&ours_heic), peer_heic, None),
    ] {
        let peer_ms = (!peer.is_empty()).then(|| median(&peer));
        println!(
            "{:<10} {:>9.1} {:>9} {:>10} {:>24}",
            name,
            ours,
            peer_ms.map(|p| format!("{p:.1}")).unwrap_or_else(|| "-".into()),
            peer_ms.map(|p| format!("{:.2}x", p / ours)).unwrap_or_else(|| "-".into()),
            decode.map(|(rgb, yuv)| format!("{rgb:.1} (RGB) {yuv:.1} (YUV)")).unwrap_or_else(|| "-".into()),
        );
    }
    println!(
        "medians of {} runs ({ROUNDS} rounds of {RUNS}, ours and peer alternating); peer/ours > 1 means we are faster",
        RUNS * ROUNDS
    );
    let libs = mediagate_media::libraries();
    println!("decode-alone: libjpeg-turbo full-size decode to RGB (the floor of an RGB pipeline) and to Y'CbCr planes (what we do)");
    println!(
        "12MP HEIC ({:.1} MB, 512 px grid): decode alone, ours (libheif {} + libde265 {}, to RGB) {:.1} ms, peer (libvips heifload, Debian's libheif 1.15.1 + libde265) {}",
        heic_bytes.len() as f64 / 1e6,
        libs.libheif,
        libs.libde265,
        median(&decode_heic),
        if peer_heic_decode.is_empty() { "-".to_string() } else { format!("{:.1} ms", median(&peer_heic_decode)) }
    );
    match &peer_result {
        Ok(d) => println!("peer: {d}"),
        Err(e) => println!(
            "peer could not run ({e}); create it with `make bench` or \
             `python3 -m venv bench/.venv && bench/.venv/bin/pip install pyvips` (needs libvips42), \
             or point MEDIAGATE_BENCH_PYTHON at a python with pyvips"
        ),
    }
    println!("throughput at concurrency 2 (12MP JPEG, 2 threads x {per_thread}): {photos_per_s:.2} photos/s");
    match peak_rss_mib() {
        Some(m) => println!("peak RSS (VmHWM): {m:.0} MiB"),
        None => println!("peak RSS: /proc/self/status unavailable"),
    }
    println!("load average at end: {}", loadavg());
}
