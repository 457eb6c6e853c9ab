//! The nudity filter end to end: who it applies to and at which threshold, the real ONNX
//! model's score in the verdict, and blocking with quarantine (threshold lowered through the
//! environment, since generated test images score low).

use std::time::Duration;

use serde_json::{json, Value};

use crate::support::media::{jpeg, mp4};
use crate::support::{harness, item, job_id, media_job, Isolated, SeenVerdict};

fn run_with(name: &str, sender: &str, recipients: Value) -> SeenVerdict {
    let h = harness();
    let id = job_id(name);
    let key = format!("{id}/0.jpg");
    h.put("incoming", &key, jpeg(640, 480, 5));
    let mut job = media_job(&id, &[&key]);
    job["sender"]["age_band"] = json!(sender);
    job["recipients"] = recipients;
    h.run_job(&job)
}

fn r(band: &str, opt_in: bool) -> Value {
    json!({"account_id": format!("r-{band}-{opt_in}"), "age_band": band, "nudity_filter": opt_in})
}

fn nudity(v: &SeenVerdict) -> Value {
    assert_eq!(v.body["status"], "cleared", "{}", v.body);
    item(v, "0")["nudity"].clone()
}

#[test]
fn adults_without_opt_in_are_not_filtered() {
    assert_eq!(nudity(&run_with("n-adults", "adult", json!([r("adult", false), r("adult", false)]))), Value::Null);
}

#[test]
fn a_16_17_recipient_or_sender_gets_the_minor_threshold() {
    for (sender, rcpts) in [("adult", json!([r("16_17", false)])), ("16_17", json!([r("adult", false)]))] {
        let n = nudity(&run_with("n-minor", sender, rcpts));
        assert_eq!(n["model"], "open_nsfw");
        assert_eq!(n["model_sha256"], "864bb37bf8863564b87eb330ab8c785a79a773f4e7c43cb96db52ed8611305fa");
        assert_eq!(n["threshold"], 0.5);
        assert_eq!(n["frames"], 1);
        let score = n["score"].as_f64().unwrap();
        assert!((0.0..0.5).contains(&score), "a gradient photo scores low: {score}");
        assert_eq!(n["flagged"], false);
    }
}

#[test]
fn an_opted_in_adult_gets_the_adult_threshold_and_mixed_bands_the_strictest() {
    let n = nudity(&run_with("n-optin", "adult", json!([r("adult", true)])));
    assert_eq!(n["threshold"], 0.8);
    let n = nudity(&run_with("n-mixed", "adult", json!([r("adult", true), r("16_17", false)])));
    assert_eq!(n["threshold"], 0.5);
}

#[test]
fn the_score_is_the_same_for_the_same_photo() {
    let a = nudity(&run_with("n-same-a", "adult", json!([r("16_17", false)])));
    let b = nudity(&run_with("n-same-b", "adult", json!([r("adult", true)])));
    assert_eq!(a["score"], b["score"]);
}

#[test]
fn video_frames_are_scored() {
    let h = harness();
    let id = job_id("n-video");
    let key = format!("{id}/0.mp4");
    h.put("incoming", &key, mp4(320, 240, 3.0, 10, false, &[]));
    let mut job = media_job(&id, &[&key]);
    job["recipients"] = json!([r("16_17", false)]);
    let v = h.run_job(&job);
    let n = nudity(&v);
    assert!(n["frames"].as_u64().unwrap() >= 3, "one frame per second at least: {n}");
    assert_eq!(n["threshold"], 0.5);
}

#[test]
fn flagged_items_are_blocked_quarantined_and_never_stored() {
    // Threshold 0 for minors: every score reaches it.
    let env = Isolated::start("nblock", &[("MEDIAGATE_NUDITY_THRESHOLD_MINOR", "0")]);
    let id = job_id("n-block");
    let photo = jpeg(800, 600, 6);
    env.put(&format!("{id}/0.jpg"), photo.clone());
    env.put(&format!("{id}/1.jpg"), jpeg(400, 300, 7));
    let mut job = media_job(&id, &[&format!("{id}/0.jpg"), &format!("{id}/1.jpg")]);
    job["recipients"] = json!([r("16_17", false)]);
    env.publish(&job);
    let v = env.wait_verdicts(&id, 1, Duration::from_secs(60)).remove(0);
    assert_eq!(v.body["status"], "blocked", "{}", v.body);
    assert_eq!(v.routing_key, "verdict.blocked");
    let it = item(&v, "0");
    assert_eq!(it["status"], "blocked");
    assert_eq!(it["reason"]["code"], "nudity.flagged");
    assert_eq!(it["outputs"], json!([]));
    assert_eq!(it["nudity"]["flagged"], true);
    assert_eq!(it["nudity"]["threshold"], 0.0);
    assert!(it["width"].as_u64().is_some(), "measurements are kept for review");
    // Nothing under media/, the original byte for byte in quarantine, the item entry beside it.
    let listed = env.rt.block_on(env.store.list_keys("media", &format!("media/{id}/"))).unwrap();
    assert!(listed.is_empty(), "{listed:?}");
    assert_eq!(env.get("quarantine", &format!("{id}/0/original.jpg")).as_deref(), Some(photo.as_slice()));
    // §4: the entry in its wrapper, with the job's id, revision and the verdict's time.
    let entry: Value =
        serde_json::from_slice(&env.get("quarantine", &format!("{id}/0/verdict.json")).unwrap()).unwrap();
    assert_eq!(&entry["item"], it);
    assert_eq!((entry["job_id"].as_str(), entry["revision"].as_u64()), (Some(id.as_str()), Some(0)));
    assert_eq!(entry["processed_at"], v.body["processed_at"]);
}

#[test]
fn without_a_quarantine_bucket_blocked_originals_are_not_kept() {
    let env =
        Isolated::start("nnoq", &[("MEDIAGATE_NUDITY_THRESHOLD_ADULT", "0"), ("MEDIAGATE_QUARANTINE_BUCKET", "")]);
    let id = job_id("n-noq");
    env.put(&format!("{id}/0.jpg"), jpeg(300, 200, 8));
    let mut job = media_job(&id, &[&format!("{id}/0.jpg")]);
    job["recipients"] = json!([r("adult", true)]);
    env.publish(&job);
    let v = env.wait_verdicts(&id, 1, Duration::from_secs(60)).remove(0);
    assert_eq!(v.body["status"], "blocked");
    assert!(env.get("quarantine", &format!("{id}/0/original.jpg")).is_none());
}

/// A 60 s, 320×240, 10 fps H.264 clip made of solid colours, each shown for its seconds.
fn colour_clip(parts: &[(&str, u32)]) -> Vec<u8> {
    let mut args: Vec<String> = vec!["-v".into(), "error".into()];
    for (colour, secs) in parts {
        args.extend(["-f", "lavfi", "-i"].map(String::from));
        args.push(format!("color=c={colour}:s=320x240:r=10:d={secs}"));
    }
    let inputs: String = (0..parts.len()).map(|i| format!("[{i}:v]")).collect();
    args.extend([
        "-filter_complex".to_string(),
        format!("{inputs}concat=n={}:v=1:a=0", parts.len()),
        "-c:v".into(),
        "libx264".into(),
        "-preset".into(),
        "ultrafast".into(),
        "-pix_fmt".into(),
        "yuv420p".into(),
        "-y".into(),
        "{out}".into(),
    ]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    crate::support::media::tool_output("ffmpeg", &args, "clip.mp4")
}

/// Contract §3: a video's frames are sampled evenly over the whole clip, not from its start. A
/// minute of black whose last 5 s show a skin-toned picture scores like a clip showing that
/// picture throughout (the oracle: the same worker and model on the picture alone), not like
/// black; before the fix only the first 15 s were ever looked at.
#[test]
fn the_last_seconds_of_a_long_video_are_scored() {
    let h = harness();
    let skin = "0xc08070";
    let run = |name: &str, clip: Vec<u8>| -> Value {
        let id = job_id(name);
        let key = format!("{id}/0.mp4");
        h.put("incoming", &key, clip);
        let mut job = media_job(&id, &[&key]);
        job["recipients"] = json!([r("16_17", false)]);
        let v = h.run_job(&job);
        nudity(&v);
        item(&v, "0").clone()
    };
    let score = |name: &str, clip: Vec<u8>| -> (f64, u64) {
        let n = run(name, clip)["nudity"].clone();
        (n["score"].as_f64().expect("score"), n["frames"].as_u64().expect("frames"))
    };
    let (black, _) = score("n-all-black", colour_clip(&[("black", 60)]));
    let (picture, _) = score("n-all-skin", colour_clip(&[(skin, 60)]));
    assert!(
        picture - black > 0.1,
        "the two pictures must score apart for this test to mean anything: {black} vs {picture}"
    );
    let (tail, frames) = score("n-skin-tail", colour_clip(&[("black", 55), (skin, 5)]));
    assert_eq!(frames, 32, "MEDIAGATE_VIDEO_MAX_FRAMES (default 32) frames of a minute-long clip, the poster included");
    assert!(
        (tail - picture).abs() < 0.02,
        "the clip's last seconds were not scored: {tail} (black {black}, picture {picture})"
    );
}

/// Contract §5: `pdq_frames` lists every sampled frame, over the whole clip, in time order,
/// whether or not the filter applies; `pdq` is the poster's.
#[test]
fn a_long_videos_pdq_frames_reach_its_last_seconds() {
    let h = harness();
    let id = job_id("pdq-frames");
    let key = format!("{id}/0.mp4");
    h.put("incoming", &key, colour_clip(&[("black", 30), ("0xc08070", 25), ("white", 5)]));
    let v = h.run_job(&media_job(&id, &[&key]));
    let it = item(&v, "0");
    assert_eq!(it["nudity"], Value::Null, "adults only: no filter, frames hashed all the same");
    let frames = it["hashes"]["pdq_frames"].as_array().expect("pdq_frames");
    assert_eq!(frames.len(), 32, "{frames:?}");
    let ms: Vec<u64> = frames.iter().map(|f| f["ms"].as_u64().unwrap()).collect();
    assert!(ms.windows(2).all(|w| w[0] < w[1]), "in time order: {ms:?}");
    assert!(*ms.last().unwrap() >= 55_000, "the last frames are hashed: {ms:?}");
    assert_eq!(it["hashes"]["pdq"].as_str().map(str::len), Some(64));
    // Flat colours have no gradients: PDQ says so with quality 0.
    assert!(frames.iter().all(|f| f["quality"].as_u64() == Some(0)), "{frames:?}");
}
