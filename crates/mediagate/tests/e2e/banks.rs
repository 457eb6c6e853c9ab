//! Hash banks end to end (contract §8): a bank file and an S3-prefix bank, exact and PDQ
//! entries, the block with its quarantine and escalation, a change picked up while the worker
//! runs, broken lines, and a bank that cannot be loaded at start-up.

use std::time::Duration;

use image::{ImageBuffer, Rgb, RgbImage};
use serde_json::Value;

use crate::support::{assert_valid, escalation_schema, harness, media_job, sha256_hex, worker_env, Isolated};

/// A picture with structure at PDQ's scale (blocks and discs of different greys, some noise),
/// so its PDQ quality is high and a near copy hashes close to it.
pub(crate) fn scene(w: u32, h: u32, seed: u32) -> RgbImage {
    let mut state = seed.wrapping_mul(2_654_435_761).wrapping_add(7);
    ImageBuffer::from_fn(w, h, |x, y| {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        let (fx, fy) = (x as f32 / w as f32, y as f32 / h as f32);
        let block = (((fx * 5.0) as u32 * 37 + (fy * 4.0) as u32 * 91 + seed * 13) % 200) as f32;
        let disc = ((fx - 0.6).powi(2) + (fy - 0.4).powi(2)).sqrt() < 0.2;
        let base = if disc { 240.0 - block / 2.0 } else { 20.0 + block };
        let n = (state & 15) as f32 - 8.0;
        let v = |k: f32| (base * k + n).clamp(0.0, 255.0) as u8;
        Rgb([v(1.0), v(0.8), v(0.6)])
    })
}

pub(crate) fn jpeg_of(img: &RgbImage, quality: u8) -> Vec<u8> {
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, quality).encode_image(img).expect("jpeg");
    out
}

/// The PDQ hex of a re-encoded (q60), ×0.7 copy of `img`: what a bank would hold of a picture
/// that was circulated and re-saved.
fn near_copy_pdq(img: &RgbImage) -> String {
    let small = image::imageops::resize(
        img,
        img.width() * 7 / 10,
        img.height() * 7 / 10,
        image::imageops::FilterType::Triangle,
    );
    let copy = image::load_from_memory(&jpeg_of(&small, 60)).expect("decode copy").to_rgb8();
    mediagate_hash::pdq_rgb(copy.width(), copy.height(), copy.as_raw()).expect("pdq").hash.to_hex()
}

fn md5_hex(bytes: &[u8]) -> String {
    use md5::Digest;
    hex::encode(md5::Md5::digest(bytes))
}

fn item<'a>(v: &'a Value, id: &str) -> &'a Value {
    v["items"].as_array().unwrap().iter().find(|i| i["item_id"] == id).unwrap()
}

/// An adult-only job (the filter off) with a near copy of a banked picture, a file whose sha256
/// is banked, an unsupported file whose md5 is banked (blocked, not `unsupported_format`), and an
/// unrelated photo: three `hash.matched`, quarantined with the bytes fetched, three escalations
/// with the contract's envelope and body, and the unrelated photo cleared. The bank file has
/// broken lines; its good lines still match.
#[test]
fn a_bank_file_blocks_near_copies_and_exact_files_in_an_adult_job() {
    let dir = tempfile::tempdir().unwrap();
    let banked = scene(800, 600, 1);
    let exact = jpeg_of(&scene(640, 480, 2), 85);
    let unsupported = b"not an image at all, but a known file".to_vec();
    let near = near_copy_pdq(&banked);
    // A byte-order mark, CRLF, a comment, a blank line, tabs, upper-case hex and three broken lines.
    let bank = format!(
        "\u{feff}# test bank\r\n\r\npdq {near} label one\r\n\tgarbage line\nsha256 {}\nmd5 {}\t  spaced label \npdq 1234\nsha512 00\n",
        sha256_hex(&exact).to_uppercase(),
        md5_hex(&unsupported),
    );
    let path = dir.path().join("bank.txt");
    std::fs::write(&path, bank).unwrap();
    let banks = format!("test={}", path.display());
    let env = Isolated::start("bank-file", &[("MEDIAGATE_HASH_BANKS", &banks)]);

    let id = "t-bank-file";
    let files = [
        ("0.jpg", jpeg_of(&banked, 92)),
        ("1.jpg", exact.clone()),
        ("2.txt", unsupported.clone()),
        ("3.jpg", jpeg_of(&scene(800, 600, 9), 92)),
    ];
    for (name, bytes) in &files {
        env.put(&format!("{id}/{name}"), bytes.clone());
    }
    let keys: Vec<String> = files.iter().map(|(n, _)| format!("{id}/{n}")).collect();
    let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
    env.publish(&media_job(id, &refs));
    let v = env.wait_verdicts(id, 1, Duration::from_secs(60)).remove(0).body;
    assert_eq!(v["status"], "partial", "{v}");

    let pdq = item(&v, "0");
    assert_eq!(pdq["status"], "blocked", "{pdq}");
    assert_eq!(pdq["reason"]["code"], "hash.matched");
    assert_eq!(pdq["nudity"], Value::Null, "the filter does not apply to adults; banks do");
    let m = &pdq["match"];
    assert_eq!(
        (m["bank"].as_str(), m["kind"].as_str(), m["hash"].as_str()),
        (Some("test"), Some("pdq"), Some(near.as_str()))
    );
    let distance = m["distance"].as_u64().unwrap();
    assert!(distance <= 31, "{m}");
    assert_eq!(m["label"], "label one");
    assert_eq!(m["frame_ms"], Value::Null);
    assert!(pdq["hashes"]["pdq_quality"].as_u64().unwrap() >= 50, "{}", pdq["hashes"]);
    assert!(pdq["outputs"].as_array().unwrap().is_empty());

    let sha = item(&v, "1");
    assert_eq!((sha["status"].as_str(), sha["match"]["kind"].as_str()), (Some("blocked"), Some("sha256")), "{sha}");
    assert_eq!(sha["match"]["hash"], sha256_hex(&exact));
    assert_eq!((sha["match"]["distance"].as_u64(), &sha["match"]["label"]), (Some(0), &Value::Null));

    let md5 = item(&v, "2");
    assert_eq!((md5["status"].as_str(), md5["match"]["kind"].as_str()), (Some("blocked"), Some("md5")), "{md5}");
    assert_eq!(md5["match"]["label"], "spaced label", "the label's trailing blanks are trimmed");
    assert_eq!(md5["hashes"]["sha256"], sha256_hex(&unsupported));
    assert_eq!(md5["hashes"]["pdq"], Value::Null);

    let clear = item(&v, "3");
    assert_eq!(clear["status"], "cleared", "{clear}");
    assert_eq!(clear["match"], Value::Null);
    assert_eq!(clear["hashes"]["sha256"], sha256_hex(&files[3].1));
    assert_eq!(clear["hashes"]["pdq"].as_str().map(str::len), Some(64));

    // Quarantine: the very bytes fetched, and the §4 wrapper beside them.
    for (i, ext) in [("0", "jpg"), ("1", "jpg"), ("2", "bin")] {
        let original = env.get("quarantine", &format!("{id}/{i}/original.{ext}")).expect("quarantined original");
        assert_eq!(original, files[i.parse::<usize>().unwrap()].1, "item {i}");
        let wrapper: Value =
            serde_json::from_slice(&env.get("quarantine", &format!("{id}/{i}/verdict.json")).unwrap()).unwrap();
        assert_eq!((wrapper["job_id"].as_str(), wrapper["revision"].as_u64()), (Some(id), Some(0)));
        assert_eq!(wrapper["processed_at"], v["processed_at"]);
        assert_eq!(&wrapper["item"], item(&v, i));
    }

    // One escalation per matched item, confirmed before the verdict.
    let mut escalations = env.take_escalations(3, Duration::from_secs(10));
    assert_eq!(escalations.len(), 3, "escalations: {escalations:?}");
    escalations.sort_by(|a, b| a.body["item_id"].as_str().cmp(&b.body["item_id"].as_str()));
    for (e, i) in escalations.iter().zip(["0", "1", "2"]) {
        assert_valid(escalation_schema(), &e.body, "escalation");
        let it = item(&v, i);
        assert_eq!(e.routing_key, "escalation.hash_matched");
        assert_eq!(e.correlation_id.as_deref(), Some(id));
        let sha = it["hashes"]["sha256"].as_str().unwrap();
        assert_eq!(e.message_id.as_deref(), Some(format!("{id}/{i}/{sha}").as_str()));
        assert_eq!((e.content_type.as_deref(), e.delivery_mode), (Some("application/json"), Some(2)));
        let b = &e.body;
        assert_eq!(
            (b["schema"].as_str(), b["job_id"].as_str(), b["revision"].as_u64()),
            (Some("mediagate.escalation.v1"), Some(id), Some(0))
        );
        assert_eq!(b["message_id"], format!("m-{id}"));
        assert_eq!(b["sender"]["account_id"], "a-sender");
        assert_eq!(b["recipients"][0]["account_id"], "a-rcpt");
        assert_eq!(b["match"], it["match"]);
        assert_eq!(b["hashes"], it["hashes"]);
        assert_eq!(b["quarantine"]["bucket"], "quarantine");
        assert!(b["quarantine"]["key"].as_str().unwrap().starts_with(&format!("{id}/{i}/original.")));
        assert_eq!(b["at"], v["processed_at"]);
    }

    // The broken lines were skipped and counted.
    let metrics = crate::support::http_get(&crate::support::metrics_addr_of(&env.env), "/metrics").1;
    assert!(metrics.contains("mediagate_hash_bank_bad_lines{bank=\"test\"} 3"), "{metrics}");
    assert!(metrics.contains("mediagate_hash_matches_total{bank=\"test\",kind=\"pdq\"} 1"), "{metrics}");
}

/// A bank under an S3 prefix: used from the start, and an object added while the worker runs
/// is used within the refresh; a failed reload (a non-UTF-8 object) keeps the bank as it was.
#[test]
fn an_s3_prefix_bank_is_refreshed_while_the_worker_runs() {
    let first = jpeg_of(&scene(320, 240, 3), 80);
    let second = jpeg_of(&scene(320, 240, 4), 80);
    let line = format!("sha256 {}\n", sha256_hex(&first));
    let env = Isolated::start_with(
        "bank-s3",
        &[("MEDIAGATE_HASH_BANKS", "ours=s3://elsewhere/banks/"), ("MEDIAGATE_HASH_BANK_REFRESH_S", "1")],
        |rt, store| {
            rt.block_on(store.put("elsewhere", "banks/a.txt", line.into_bytes(), "text/plain")).unwrap();
        },
    );
    let run = |id: &str, bytes: &[u8]| -> Value {
        env.put(&format!("{id}/0.jpg"), bytes.to_vec());
        env.publish(&media_job(id, &[&format!("{id}/0.jpg")]));
        env.wait_verdicts(id, 1, Duration::from_secs(60)).remove(0).body["items"][0].clone()
    };
    assert_eq!(run("t-s3bank-1", &first)["match"]["bank"], "ours");
    assert_eq!(run("t-s3bank-2", &second)["status"], "cleared");

    let put = |key: &str, body: Vec<u8>| env.rt.block_on(env.store.put("elsewhere", key, body, "text/plain")).unwrap();
    put("banks/b.txt", format!("sha256 {}\n", sha256_hex(&second)).into_bytes());
    std::thread::sleep(Duration::from_millis(2500));
    let third = run("t-s3bank-3", &second);
    assert_eq!((third["status"].as_str(), third["match"]["bank"].as_str()), (Some("blocked"), Some("ours")), "{third}");

    // A broken object fails the reload; what was loaded stays in force.
    put("banks/c.txt", vec![0xff, 0xfe, 0x00, 0x80]);
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(run("t-s3bank-4", &first)["status"], "blocked");
    let metrics = crate::support::http_get(&crate::support::metrics_addr_of(&env.env), "/metrics").1;
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("mediagate_hash_bank_reload_failures_total{bank=\"ours\"}") && !l.ends_with(" 0")),
        "{metrics}"
    );
}

/// A bank that cannot be loaded at start-up stops the worker before it takes a job, with a
/// message naming the bank and its source.
#[test]
fn a_bank_missing_at_start_up_stops_the_worker() {
    let h = harness();
    let mut env = worker_env(&h.vhost, &h.s3);
    env.push(("MEDIAGATE_HASH_BANKS", "gone=/nonexistent/mediagate/bank.txt".into()));
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mediagate"))
        .arg("worker")
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .expect("run the worker");
    assert!(!out.status.success(), "the worker started without its bank");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("`gone`") && stderr.contains("/nonexistent/mediagate/bank.txt"), "{stderr}");
}
