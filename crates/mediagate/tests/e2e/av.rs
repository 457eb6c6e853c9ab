//! Voice notes and videos end to end: true durations, contract variants checked with ffprobe,
//! rejections, and byte-identical outputs on a second run.

use serde_json::Value;

use crate::support::media::*;
use crate::support::{fetch_output, item, output, run_uploads, SeenVerdict};

fn run(kind: &str, name: &str, files: Vec<(&str, Vec<u8>)>) -> (String, SeenVerdict) {
    run_uploads(kind, name, files, |_| {})
}

#[test]
fn a_spoken_voice_note_becomes_mono_48k_ogg_opus_with_duration_and_waveform() {
    let src = speech("Hello, this is a voice note for the end to end test of mediagate.", "m4a");
    let (id, v) = run("voice_note", "voice", vec![("m4a", src)]);
    assert_eq!(v.body["status"], "cleared", "{}", v.body);
    let it = item(&v, "0");
    assert_eq!(it["media_type"], "audio");
    assert_eq!(
        (it["width"].clone(), it["height"].clone(), it["blurhash"].clone(), it["nudity"].clone()),
        (Value::Null, Value::Null, Value::Null, Value::Null)
    );
    let wf: Vec<u64> = it["waveform"].as_array().unwrap().iter().map(|x| x.as_u64().unwrap()).collect();
    assert_eq!(wf.len(), 100);
    assert!(wf.iter().all(|&x| x <= 31) && wf.contains(&31), "normalised to the peak: {wf:?}");
    let out = output(it, "voice");
    assert_eq!(out["key"], format!("media/{id}/0/voice.ogg").as_str());
    assert_eq!(out["content_type"], "audio/ogg");
    let probe = ffprobe(&fetch_output(out), "ogg");
    let s = &probe["streams"][0];
    assert_eq!(
        (s["codec_name"].as_str(), s["channels"].as_u64(), s["sample_rate"].as_str()),
        (Some("opus"), Some(1), Some("48000"))
    );
    let out_ms = (probe["format"]["duration"].as_str().unwrap().parse::<f64>().unwrap() * 1000.0) as i64;
    let ms = it["duration_ms"].as_i64().unwrap();
    assert!((out_ms - ms).abs() <= 150, "verdict {ms} ms vs output {out_ms} ms");
    assert!(ms > 2000, "{ms}");
}

#[test]
fn a_voice_note_over_60_seconds_is_too_long() {
    let (_, v) = run("voice_note", "voice-long", vec![("m4a", m4a_tone(61.0))]);
    let it = item(&v, "0");
    assert_eq!(it["status"], "rejected", "{it}");
    assert_eq!(it["reason"]["code"], "input.too_long");
    assert_eq!(it["media_type"], "audio");
}

#[test]
fn a_1080p_video_with_sound_becomes_720p_h264_aac_faststart_with_poster() {
    let (id, v) = run("media", "video", vec![("mp4", mp4(1920, 1080, 2.0, 25, true, &[]))]);
    assert_eq!(v.body["status"], "cleared", "{}", v.body);
    let it = item(&v, "0");
    assert_eq!(it["media_type"], "video");
    assert_eq!((it["width"].as_u64(), it["height"].as_u64()), (Some(1920), Some(1080)));
    let ms = it["duration_ms"].as_u64().unwrap();
    assert!((1900..=2100).contains(&ms), "{ms}");
    assert!(it["blurhash"].as_str().is_some());
    let video = output(it, "video");
    assert_eq!(video["key"], format!("media/{id}/0/video.mp4").as_str());
    assert_eq!(video["content_type"], "video/mp4");
    let bytes = fetch_output(video);
    let moov = bytes.windows(4).position(|w| w == b"moov").expect("moov");
    let mdat = bytes.windows(4).position(|w| w == b"mdat").expect("mdat");
    assert!(moov < mdat, "fast-start: moov before mdat");
    let probe = ffprobe(&bytes, "mp4");
    let streams = probe["streams"].as_array().unwrap();
    let v0 = streams.iter().find(|s| s["codec_type"] == "video").expect("video stream");
    assert_eq!(v0["codec_name"], "h264");
    assert_eq!((v0["width"].as_u64(), v0["height"].as_u64()), (Some(1280), Some(720)));
    assert_eq!((video["width"].as_u64(), video["height"].as_u64()), (Some(1280), Some(720)));
    assert!(streams.iter().any(|s| s["codec_type"] == "audio" && s["codec_name"] == "aac"));
    let poster = output(it, "poster");
    assert_eq!(poster["content_type"], "image/jpeg");
    assert_eq!(poster["key"], format!("media/{id}/0/poster.jpg").as_str());
    let (pw, ph) = dims(&fetch_output(poster));
    assert!(pw > ph && pw <= 1280, "{pw}x{ph}");
}

#[test]
fn a_rotated_phone_video_stays_portrait_and_a_silent_one_gets_no_audio() {
    let rotated = mp4_rotated(640, 360, 1.0, 90);
    let (_, v) = run("media", "rotated", vec![("mp4", rotated)]);
    let it = item(&v, "0");
    assert_eq!(it["status"], "cleared", "{it}");
    assert_eq!((it["width"].as_u64(), it["height"].as_u64()), (Some(360), Some(640)), "displayed size");
    let bytes = fetch_output(output(it, "video"));
    let probe = ffprobe(&bytes, "mp4");
    let streams = probe["streams"].as_array().unwrap();
    let v0 = streams.iter().find(|s| s["codec_type"] == "video").unwrap();
    assert!(v0["height"].as_u64() > v0["width"].as_u64(), "portrait pixels: {v0}");
    assert!(!streams.iter().any(|s| s["codec_type"] == "audio"), "no audio track for a silent input");
}

#[test]
fn video_and_audio_rejections() {
    let long = mp4(64, 64, 190.0, 1, false, &[]);
    let mut truncated = mp4(320, 240, 2.0, 25, true, &[]);
    truncated.truncate(truncated.len() / 3);
    let (_, v) =
        run("media", "video-bad", vec![("mp4", long), ("mp4", truncated), ("ogg", speech("wrong kind", "ogg"))]);
    assert_eq!(v.body["status"], "rejected", "{}", v.body);
    assert_eq!(item(&v, "0")["reason"]["code"], "input.too_long");
    assert_eq!(item(&v, "1")["reason"]["code"], "input.corrupt");
    assert_eq!(item(&v, "2")["reason"]["code"], "input.type_mismatch");
    // A video in a voice-note job.
    let (_, v) = run("voice_note", "video-as-voice", vec![("mp4", mp4(160, 120, 1.0, 10, true, &[]))]);
    assert_eq!(item(&v, "0")["reason"]["code"], "input.type_mismatch");
    assert_eq!(item(&v, "0")["media_type"], "video");
}

#[test]
fn the_same_voice_note_and_video_twice_give_identical_bytes() {
    let voice = speech("Determinism matters for idempotent redelivery.", "mp3");
    let video = mp4(480, 270, 1.0, 15, true, &[]);
    let (_, a) = run("voice_note", "det-voice-a", vec![("mp3", voice.clone())]);
    let (_, b) = run("voice_note", "det-voice-b", vec![("mp3", voice)]);
    assert_eq!(output(item(&a, "0"), "voice")["sha256"], output(item(&b, "0"), "voice")["sha256"]);
    let (_, a) = run("media", "det-video-a", vec![("mp4", video.clone())]);
    let (_, b) = run("media", "det-video-b", vec![("mp4", video)]);
    for variant in ["video", "poster"] {
        assert_eq!(output(item(&a, "0"), variant)["sha256"], output(item(&b, "0"), variant)["sha256"], "{variant}");
    }
}

/// The md5 of a file's first video stream as the ffmpeg CLI reads it, SEI NAL units removed by
/// its own `filter_units` (the one change passthrough makes to what it copies).
fn video_md5_without_sei(bytes: &[u8]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("clip.mp4");
    std::fs::write(&path, bytes).unwrap();
    let out = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-i", path.to_str().unwrap(), "-map", "0:v:0", "-c", "copy"])
        .args(["-bsf:v", "h264_mp4toannexb,filter_units=remove_types=6", "-f", "md5", "-"])
        .output()
        .expect("ffmpeg is needed (make test installs it)");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// Verified passthrough through the worker (contract §4): a 720p H.264 + AAC clip that already
/// fits comes out with its video packets as they were, SEI removed, in a fast-start MP4 of our
/// own, and the worker counts it as `copied`; a 1080p clip is re-encoded.
#[test]
fn a_clip_that_fits_is_copied_by_the_worker_and_counted() {
    let h = crate::support::harness();
    let copied = || {
        let (_, metrics) = crate::support::http_get(&h.metrics_addr, "/metrics");
        metrics
            .lines()
            .find_map(|l| l.strip_prefix("mediagate_video_items_total{path=\"copied\"} "))
            .and_then(|n| n.trim().parse::<u64>().ok())
            .expect("video_items_total{path=\"copied\"} is exported")
    };
    let before = copied();
    let clip = mp4(1280, 720, 2.0, 30, true, &[]);
    let (_, v) = run("media", "passthrough", vec![("mp4", clip.clone())]);
    assert_eq!(v.body["status"], "cleared", "{}", v.body);
    let out = fetch_output(output(item(&v, "0"), "video"));
    assert_eq!(video_md5_without_sei(&out), video_md5_without_sei(&clip), "the video packets were copied");
    assert!(out.windows(4).position(|w| w == b"moov") < out.windows(4).position(|w| w == b"mdat"), "fast start");
    assert!(copied() > before, "counted as copied");

    let big = mp4(1920, 1080, 1.0, 30, true, &[]);
    let (_, v) = run("media", "passthrough-big", vec![("mp4", big.clone())]);
    let out = fetch_output(output(item(&v, "0"), "video"));
    assert_ne!(video_md5_without_sei(&out), video_md5_without_sei(&big), "over the bound: re-encoded");
}
