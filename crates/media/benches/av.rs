//! `cargo bench -p mediagate-media --bench av`: the voice-note and video pipelines against the
//! ffmpeg CLI doing the same encode with the same settings, in the same run, alternating.
//!
//! - voice: 60 s of speech (espeak-ng → AAC in M4A) → Ogg Opus 24 kb/s voip mono 48 kHz.
//!   Ours also measures the duration and draws the waveform in the same decode pass.
//! - video: 10 s of 1080p30 H.264 + AAC → 1280×720 H.264 (libx264, same preset/CRF/threads) +
//!   AAC 128 kb/s, fast-start MP4. Ours also runs the duration scan pass and makes the poster.
//! - hdr: the same clip as an iPhone records HDR (HEVC Main10, BT.2020, HLG) → the same output,
//!   tone-mapped (zscale + tonemap=mobius, the same filter chain on both sides).
//!
//! - passthrough: a 10 s 720p30 H.264 High + AAC clip that fits (§4): ours copying it after the
//!   verifying decode, ours re-encoding it (`off`), the CLI's decode alone, its unverified
//!   `-c copy`, and its re-encode.
//!
//! Inputs are generated once into `target/bench-media/`. The CLI's times include its process
//! start-up, which is part of what a worker shelling out to ffmpeg would pay.

use mediagate_testkit::peers::{cli_voice, ffmpeg, media_dir, tool, CLI_HDR_TO_SDR, X264};
use mediagate_testkit::timing::{loadavg, median};
use std::path::{Path, PathBuf};
use std::time::Instant;

use mediagate_media::{process_video, process_voice, Format, MediaSettings};

/// Timed runs of each side (after one warm-up each), alternating ours / CLI.
const RUNS: usize = 5;

fn dir() -> PathBuf {
    media_dir()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

const TEXT: &str = "Hi, it's me. I'm on the train and the signal keeps dropping, so I'm sending a voice note \
instead of calling. The meeting moved to Thursday at ten, in the small room on the third floor. \
Could you bring the printed slides and the budget sheet? I think Maria wants to go through the numbers \
for the second quarter before we show them to anyone else. Also, the car is still at the garage; they said \
it should be ready tomorrow afternoon, but you know how that goes. If you're free after work we could \
pick it up together and grab something to eat on the way back. Let me know what you think. ";

fn voice_input() -> PathBuf {
    let d = dir();
    let m4a = d.join("speech-60s.m4a");
    if !m4a.exists() {
        let wav = d.join("speech.wav");
        tool("espeak-ng", &["-s", "165", "-w", s(&wav), TEXT]);
        ffmpeg(&["-stream_loop", "-1", "-i", s(&wav), "-t", "60", "-c:a", "aac", "-b:a", "64k", s(&m4a)]);
    }
    m4a
}

fn video_input() -> PathBuf {
    let d = dir();
    // Phone-like: ~16 Mb/s with a little sensor-like noise (a clean test pattern compresses
    // unrealistically well).
    let mp4 = d.join("video-1080p30-10s-16M.mp4");
    if !mp4.exists() {
        ffmpeg(&[
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=1920x1080:rate=30:duration=10,noise=alls=6:allf=t",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=330:sample_rate=48000:duration=10",
            "-c:v",
            "libx264",
            "-preset",
            "fast",
            "-b:v",
            "16M",
            "-maxrate",
            "20M",
            "-bufsize",
            "32M",
            "-pix_fmt",
            "yuv420p",
            "-c:a",
            "aac",
            "-ac",
            "2",
            "-b:a",
            "128k",
            s(&mp4),
        ]);
    }
    mp4
}

/// What a phone app's own compression uploads (Bluesky: ≤ 1920 px, ~3 Mb/s): 10 s of 720p30
/// H.264 High + AAC, a little sensor-like noise; within the bound, so it is copied (§4).
fn compliant_input() -> PathBuf {
    let mp4 = dir().join("video-720p30-10s-3M.mp4");
    if !mp4.exists() {
        ffmpeg(&[
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=1280x720:rate=30:duration=10,noise=alls=6:allf=t",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=330:sample_rate=48000:duration=10",
            "-c:v",
            "libx264",
            "-preset",
            "fast",
            "-profile:v",
            "high",
            "-b:v",
            "3M",
            "-maxrate",
            "4M",
            "-bufsize",
            "6M",
            "-pix_fmt",
            "yuv420p",
            "-c:a",
            "aac",
            "-ac",
            "2",
            "-b:a",
            "128k",
            s(&mp4),
        ]);
    }
    mp4
}

/// Times each of `sides` `RUNS` times after a warm-up, round-robin; medians in ms.
fn round_robin(sides: &mut [&mut dyn FnMut()]) -> Vec<(f64, Vec<f64>)> {
    for f in sides.iter_mut() {
        f();
    }
    let mut runs = vec![Vec::new(); sides.len()];
    for _ in 0..RUNS {
        for (f, r) in sides.iter_mut().zip(runs.iter_mut()) {
            r.push(time_ms(*f));
        }
    }
    runs.into_iter().map(|r| (median(&r), r)).collect()
}

/// The ffmpeg CLI doing our transcode with `settings`' x264 and AAC settings
/// ([`mediagate_testkit::peers::cli_transcode`]).
fn cli_transcode(input: &Path, settings: &MediaSettings, vf: Option<&str>, video: &[&str], out: &Path) {
    let v = &settings.video;
    let x = X264 { threads: v.threads, preset: v.preset.as_str(), crf: v.crf, audio_bitrate: v.audio_bitrate };
    mediagate_testkit::peers::cli_transcode(input, &x, vf, video, out);
}

fn time_ms(f: &mut dyn FnMut()) -> f64 {
    let t = Instant::now();
    f();
    t.elapsed().as_secs_f64() * 1e3
}

/// Alternates the two, one warm-up each, and returns (ours, cli) medians in ms.
fn compare(ours: &mut dyn FnMut(), cli: &mut dyn FnMut()) -> (f64, f64, Vec<f64>, Vec<f64>) {
    ours();
    cli();
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for _ in 0..RUNS {
        a.push(time_ms(ours));
        b.push(time_ms(cli));
    }
    (median(&a.clone()), median(&b.clone()), a, b)
}

fn fmt(v: &[f64]) -> String {
    v.iter().map(|x| format!("{x:.0}")).collect::<Vec<_>>().join(" ")
}

fn main() {
    // `cargo bench` passes `--bench`; a filter argument selects one part.
    let filter: Option<String> = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    let want = |name: &str| filter.as_deref().is_none_or(|f| name.contains(f));
    let out_dir = dir();
    println!("av bench: {RUNS} timed runs each after a warm-up, alternating ours / ffmpeg CLI; load {}", loadavg());

    if want("voice") {
        let input = voice_input();
        let bytes = std::fs::read(&input).unwrap();
        let settings = MediaSettings::default();
        let cli_out = out_dir.join("cli-voice.ogg");
        let mut last = None;
        let (ours, cli, a, b) = compare(
            &mut || last = Some(process_voice(&bytes, Format::M4a, &settings).expect("process_voice")),
            &mut || cli_voice(&input, &cli_out),
        );
        let out = last.unwrap();
        let cli_len = std::fs::metadata(&cli_out).map(|m| m.len()).unwrap_or(0);
        println!("voice: 60 s speech AAC/M4A ({} KB) → Ogg Opus 24 kb/s voip mono 48 kHz", bytes.len() / 1024);
        println!(
            "  ours (decode once → duration + waveform + libopus): median {ours:.0} ms  [{}]  → {} bytes, {} ms",
            fmt(&a),
            out.ogg.len(),
            out.duration_ms
        );
        println!(
            "  ffmpeg CLI (same libopus settings):                  median {cli:.0} ms  [{}]  → {cli_len} bytes",
            fmt(&b)
        );
        println!("  ratio CLI/ours: {:.2}×", cli / ours);
    }

    if want("video") {
        let input = video_input();
        let bytes = std::fs::read(&input).unwrap();
        let settings = MediaSettings::default();
        let cli_out = out_dir.join("cli-video.mp4");
        let mut last = None;
        let (ours, cli, a, b) = compare(
            &mut || last = Some(process_video(&bytes, Format::Mp4, &settings, false).expect("process_video")),
            &mut || {
                cli_transcode(&input, &settings, Some("scale=w=1280:h=720:flags=bicubic,format=yuv420p"), &[], &cli_out)
            },
        );
        let out = last.unwrap();
        let cli_len = std::fs::metadata(&cli_out).map(|m| m.len()).unwrap_or(0);
        // Kept beside the CLI's, to compare the two with ffprobe.
        let _ = std::fs::write(out_dir.join("ours-video.mp4"), &out.mp4);
        println!(
            "video: 10 s 1080p30 H.264 + AAC ({} KB) → {}×{} libx264 preset {} crf {} threads {} + AAC, fast start",
            bytes.len() / 1024,
            out.mp4_width,
            out.mp4_height,
            settings.video.preset,
            settings.video.crf,
            settings.video.threads
        );
        println!(
            "  ours (scan + transcode + poster/BlurHash): median {ours:.0} ms  [{}]  → {} bytes",
            fmt(&a),
            out.mp4.len()
        );
        println!("  ffmpeg CLI (same x264/AAC settings):       median {cli:.0} ms  [{}]  → {cli_len} bytes", fmt(&b));
        println!("  ratio CLI/ours: {:.2}×", cli / ours);
    }

    if want("passthrough") {
        let input = compliant_input();
        let bytes = std::fs::read(&input).unwrap();
        let verified = MediaSettings::default();
        let mut off = MediaSettings::default();
        off.video.passthrough = mediagate_media::Passthrough::Off;
        let threads = verified.video.threads.to_string();
        let (copy_out, cli_out) = (out_dir.join("cli-copy.mp4"), out_dir.join("cli-reencode-720p.mp4"));
        let (mut copied, mut reencoded) = (None, None);
        let r = round_robin(&mut [
            &mut || copied = Some(process_video(&bytes, Format::Mp4, &verified, false).expect("verified")),
            &mut || reencoded = Some(process_video(&bytes, Format::Mp4, &off, false).expect("off")),
            &mut || ffmpeg(&["-threads", &threads, "-i", s(&input), "-f", "null", "-"]),
            &mut || ffmpeg(&["-i", s(&input), "-c", "copy", "-movflags", "+faststart", s(&copy_out)]),
            &mut || cli_transcode(&input, &verified, None, &[], &cli_out),
        ]);
        let (copied, reencoded) = (copied.unwrap(), reencoded.unwrap());
        assert_eq!(copied.path, mediagate_media::VideoPath::Copied, "{:?}", copied.reencoded_because);
        println!("passthrough: 10 s 720p30 H.264 High 3 Mb/s + AAC ({} KB), threads {threads}", bytes.len() / 1024);
        let names = [
            "ours, verified copy (full decode + SEI filter + mux + poster/PDQ)",
            "ours, re-encode path (MEDIAGATE_VIDEO_PASSTHROUGH=off)",
            "ffmpeg CLI decode alone (-f null): the floor of a verified copy",
            "ffmpeg CLI -c copy +faststart (unverified)",
            "ffmpeg CLI re-encode (same x264/AAC settings)",
        ];
        for (name, (m, runs)) in names.iter().zip(&r) {
            println!("  {name:<68} median {m:>6.0} ms  [{}]", fmt(runs));
        }
        println!("  outputs: copied {} bytes, re-encoded {} bytes", copied.mp4.len(), reencoded.mp4.len());
        println!("  ratio re-encode path / verified copy: {:.2}×  (target ≥ 5×)", r[1].0 / r[0].0);
        println!("  ratio verified copy / CLI decode alone: {:.2}×  (target ≤ 1.3×)", r[0].0 / r[2].0);
        println!("  ratio CLI re-encode / verified copy: {:.2}×", r[4].0 / r[0].0);
    }

    if want("hdr") {
        let d = dir();
        let hlg = d.join("video-1080p30-10s-hlg.mp4");
        if !hlg.exists() {
            let part = d.join("video-1080p30-10s-hlg.part.mp4");
            ffmpeg(&[
                "-i", s(&video_input()),
                "-vf", "setparams=color_primaries=bt709:color_trc=bt709:colorspace=bt709:range=tv,zscale=t=linear:npl=203,format=gbrpf32le,zscale=p=bt2020,zscale=t=arib-std-b67:m=bt2020nc:r=tv,format=yuv420p10le",
                "-c:v", "libx265", "-preset", "fast", "-b:v", "16M",
                "-x265-params", "log-level=error:colorprim=bt2020:transfer=arib-std-b67:colormatrix=bt2020nc",
                "-color_primaries", "bt2020", "-color_trc", "arib-std-b67", "-colorspace", "bt2020nc",
                "-tag:v", "hvc1", "-c:a", "copy", s(&part),
            ]);
            std::fs::rename(&part, &hlg).expect("keep the HLG input");
        }
        let bytes = std::fs::read(&hlg).unwrap();
        let settings = MediaSettings::default();
        let cli_out = out_dir.join("cli-hlg.mp4");
        let vf = format!("scale=w=1280:h=720:flags=bicubic,{CLI_HDR_TO_SDR}");
        let mut last = None;
        let (ours, cli, a, b) = compare(
            &mut || last = Some(process_video(&bytes, Format::Mp4, &settings, false).expect("process_video")),
            &mut || {
                cli_transcode(
                    &hlg,
                    &settings,
                    Some(&vf),
                    &["-color_primaries", "bt709", "-color_trc", "bt709", "-colorspace", "bt709"],
                    &cli_out,
                )
            },
        );
        let out = last.unwrap();
        let cli_len = std::fs::metadata(&cli_out).map(|m| m.len()).unwrap_or(0);
        println!(
            "hdr: 10 s 1080p30 HEVC Main10 HLG + AAC ({} KB) → {}×{} tone-mapped, libx264 preset {} crf {} threads {} + AAC",
            bytes.len() / 1024,
            out.mp4_width,
            out.mp4_height,
            settings.video.preset,
            settings.video.crf,
            settings.video.threads
        );
        println!(
            "  ours (scan + transcode + tone map + poster): median {ours:.0} ms  [{}]  → {} bytes",
            fmt(&a),
            out.mp4.len()
        );
        println!(
            "  ffmpeg CLI (same filters, x264/AAC settings): median {cli:.0} ms  [{}]  → {cli_len} bytes",
            fmt(&b)
        );
        println!("  ratio CLI/ours: {:.2}×", cli / ours);
    }

    if want("sampling") {
        // Contract §3: the classifier's frames spread over the whole clip, at most 32 with the
        // poster (it was 16 from the start). The media side of what the extra frames cost: the
        // same transcode with 16 and with 32 frames sampled. Each frame then costs the
        // classifier's preprocessing and one model run in the worker (see the classify bench).
        let d = dir();
        let clip = d.join("video-360p30-60s.mp4");
        if !clip.exists() {
            ffmpeg(&[
                "-f",
                "lavfi",
                "-i",
                "testsrc2=size=640x360:rate=30:duration=60,noise=alls=6:allf=t",
                "-c:v",
                "libx264",
                "-preset",
                "fast",
                "-pix_fmt",
                "yuv420p",
                s(&clip),
            ]);
        }
        let bytes = std::fs::read(&clip).unwrap();
        let with = |frames: usize| MediaSettings {
            sampling: mediagate_media::FrameSampling { max_frames: frames, ..mediagate_media::FrameSampling::DEFAULT },
            ..MediaSettings::default()
        };
        let (s16, s32) = (with(16), with(32));
        let mut n = (0, 0);
        let (t16, t32, a, b) = compare(
            &mut || n.0 = process_video(&bytes, Format::Mp4, &s16, true).expect("video").frames.len(),
            &mut || n.1 = process_video(&bytes, Format::Mp4, &s32, true).expect("video").frames.len(),
        );
        println!("sampling: 60 s 640x360 clip, transcode with the classifier's frames sampled over the whole clip");
        println!("  {} frames: median {t16:.0} ms  [{}]", n.0, fmt(&a));
        println!("  {} frames: median {t32:.0} ms  [{}]", n.1, fmt(&b));
        println!(
            "  media cost of the {} extra frames: {:.0} ms per video ({:.1} ms a frame), plus one classifier run each",
            n.1.saturating_sub(n.0),
            t32 - t16,
            (t32 - t16) / (n.1.saturating_sub(n.0).max(1)) as f64
        );
    }
}
