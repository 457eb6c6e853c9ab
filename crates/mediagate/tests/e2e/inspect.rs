//! `mediagate inspect` (contract §7): the whole job on this machine, with no broker and no S3 —
//! and the same verdict and the same bytes as the worker gives for the same files and settings.

use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::{json, Value};

use crate::banks::{jpeg_of, scene};
use crate::support::{assert_valid, harness, run_uploads, sha256_hex, verdict_schema, worker_env};

/// The worker's test settings, with the broker and S3 pointed at a closed port: inspect must
/// not need either.
fn inspect(args: &[&str], dir: &Path, extra_env: &[(&str, &str)]) -> Output {
    let h = harness();
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_mediagate"));
    for (k, v) in worker_env(&h.vhost, &h.s3) {
        cmd.env(k, v);
    }
    cmd.env("MEDIAGATE_AMQP_URL", format!("amqp://guest:guest@127.0.0.1:{closed}/%2f"))
        .env("MEDIAGATE_S3_ENDPOINT", format!("http://127.0.0.1:{closed}"))
        .env("MEDIAGATE_S3_ATTEMPTS", "1")
        .env("MEDIAGATE_METRICS_ADDR", "")
        .current_dir(dir);
    for (k, v) in extra_env {
        cmd.env(k, v);
    }
    cmd.arg("inspect").args(args).output().expect("run mediagate inspect")
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// The verdict inspect printed, checked against the schema: it is §5's verdict but for where
/// the outputs are (§7: bucket `local`, key `{item_id}/{variant}.{ext}`, which the schema's S3 key
/// pattern does not take), so the check puts each key back where a worker would write it.
fn verdict(out: &Output) -> Value {
    assert_eq!(out.status.code(), Some(0), "{}", text(out));
    let v: Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}", text(out)));
    let job_id = v["job_id"].as_str().unwrap_or_default().to_string();
    assert!(job_id.starts_with("local-"), "{v}");
    let mut as_published = v.clone();
    for item in as_published["items"].as_array_mut().into_iter().flatten() {
        for o in item["outputs"].as_array_mut().into_iter().flatten() {
            o["key"] = json!(format!("media/{job_id}/{}", o["key"].as_str().unwrap_or_default()));
        }
    }
    assert_valid(verdict_schema(), &as_published, "inspect's verdict");
    v
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

/// Every output is where the verdict says, under `out`, with the verdict's size and sha256.
fn assert_outputs_on_disk(v: &Value, out: &Path) {
    for item in v["items"].as_array().unwrap() {
        for o in item["outputs"].as_array().unwrap() {
            assert_eq!(o["bucket"], "local", "{o}");
            let key = o["key"].as_str().unwrap();
            let want = format!("{}/{}.", item["item_id"].as_str().unwrap(), o["variant"].as_str().unwrap());
            assert!(key.starts_with(&want), "key {key} is not {{item_id}}/{{variant}}.{{ext}}");
            let bytes = std::fs::read(out.join(key)).unwrap_or_else(|e| panic!("{key}: {e}"));
            assert_eq!(o["bytes"], bytes.len() as u64, "{key}");
            assert_eq!(o["sha256"], sha256_hex(&bytes).as_str(), "{key}");
        }
    }
}

/// What must be equal between inspect's item and the worker's: everything but where the
/// outputs are (their bytes' sha256 included).
fn comparable(item: &Value) -> Value {
    let mut item = item.clone();
    let outputs: Vec<Value> = item["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| json!([o["variant"], o["content_type"], o["bytes"], o["width"], o["height"], o["sha256"]]))
        .collect();
    item["outputs"] = json!(outputs);
    item
}

/// A photo, a video with sound and a file that is no media, sent to a 16-year-old (so the filter
/// runs): inspect's verdict validates, its files are where it says, and item by item it is the
/// worker's verdict for the same files — the same measurements, scores, hashes and output bytes.
#[test]
fn inspect_gives_the_workers_verdict_and_bytes_for_a_media_job() {
    let dir = tempfile::tempdir().unwrap();
    let photo = jpeg_of(&scene(800, 600, 41), 88);
    let video = mediagate_testkit::media::mp4(320, 240, 2.0, 30, true, &[]);
    let junk = b"this is not a picture, only some text".to_vec();
    let files = [
        write(dir.path(), "photo.jpg", &photo),
        write(dir.path(), "clip.mp4", &video),
        write(dir.path(), "notes.txt", &junk),
    ];
    let out = dir.path().join("out");
    let names: Vec<&str> = files.iter().map(|p| p.to_str().unwrap()).collect();
    let mut args = names.clone();
    args.extend(["--recipient-age", "16_17", "--out", out.to_str().unwrap()]);
    let run = inspect(&args, dir.path(), &[]);
    let v = verdict(&run);
    assert_eq!(v["status"], "partial", "{v}");
    assert_outputs_on_disk(&v, &out);
    let items = v["items"].as_array().unwrap();
    assert_eq!(items[0]["media_type"], "image");
    assert!(items[0]["nudity"]["score"].is_number(), "the filter ran: {v}");
    assert_eq!(items[1]["media_type"], "video");
    assert_eq!(items[2]["reason"]["code"], "input.unsupported_format", "{v}");
    assert!(!out.join("2").exists(), "a rejected item writes nothing");

    let (_, worker) =
        run_uploads("media", "inspect-same", vec![("jpg", photo), ("mp4", video), ("txt", junk)], |job| {
            job["recipients"] = json!([{ "account_id": "a-teen", "age_band": "16_17" }])
        });
    assert_eq!(worker.body["status"], v["status"]);
    for (ours, theirs) in items.iter().zip(worker.body["items"].as_array().unwrap()) {
        assert_eq!(comparable(ours), comparable(theirs), "inspect and the worker differ");
    }
}

/// A voice note (the kind comes from the file, as `submit` decides it) is the worker's too; a
/// local bank file matches (and its item writes nothing), a bank in S3 is skipped with a
/// warning; a second run into the same directory replaces what the first wrote.
#[test]
fn inspect_reads_voice_notes_and_local_banks() {
    let dir = tempfile::tempdir().unwrap();
    let speech = mediagate_testkit::media::speech("inspect this voice note please", "m4a");
    let voice = write(dir.path(), "memo.m4a", &speech);
    let out = dir.path().join("out");
    let run = inspect(&[voice.to_str().unwrap(), "--out", out.to_str().unwrap()], dir.path(), &[]);
    let v = verdict(&run);
    assert_eq!(v["status"], "cleared", "{v}");
    assert_outputs_on_disk(&v, &out);
    assert_eq!(v["items"][0]["outputs"][0]["key"], "0/voice.ogg");
    let (_, worker) = run_uploads("voice_note", "inspect-voice", vec![("m4a", speech)], |_| {});
    assert_eq!(comparable(&v["items"][0]), comparable(&worker.body["items"][0]));

    let photo = jpeg_of(&scene(640, 480, 42), 90);
    let banked = write(dir.path(), "banked.jpg", &photo);
    let bank = write(dir.path(), "bank.txt", format!("sha256 {} known-test-file\n", sha256_hex(&photo)).as_bytes());
    let banks = format!("local={},remote=s3://nowhere/bank.txt", bank.display());
    // The same directory: the banked photo is item 0 now, so the voice note's 0/voice.ogg goes.
    let run = inspect(
        &[banked.to_str().unwrap(), "--out", out.to_str().unwrap()],
        dir.path(),
        &[("MEDIAGATE_HASH_BANKS", &banks), ("MEDIAGATE_LOG_FORMAT", "text")],
    );
    let v = verdict(&run);
    let item = &v["items"][0];
    assert_eq!(item["status"], "blocked", "{v}");
    assert_eq!(item["reason"]["code"], "hash.matched", "{v}");
    assert_eq!(item["match"]["bank"], "local", "{v}");
    assert!(String::from_utf8_lossy(&run.stderr).contains("skipped"), "{}", text(&run));
    assert!(std::fs::read_dir(out.join("0")).unwrap().next().is_none(), "a blocked item leaves no output behind");
}

/// The rules run as in the worker (an under-16 sender is rejected, nothing written, exit 0);
/// an unreadable file is an error (exit 1); no file or a setting out of range is bad usage (2).
#[test]
fn inspect_applies_the_rules_and_exits_as_the_contract_says() {
    let dir = tempfile::tempdir().unwrap();
    let photo = write(dir.path(), "p.jpg", &jpeg_of(&scene(320, 240, 43), 85));
    let out = dir.path().join("out");
    let run = inspect(&[photo.to_str().unwrap(), "--sender-age", "under_16", "--out", "out"], dir.path(), &[]);
    let v = verdict(&run);
    assert_eq!(v["status"], "rejected");
    assert_eq!(v["reason"]["code"], "policy.under_16", "{v}");
    assert!(!out.exists(), "a rejected job writes nothing");

    let default_out = inspect(&[photo.to_str().unwrap()], dir.path(), &[]);
    let v = verdict(&default_out);
    assert_eq!(v["items"][0]["outputs"][0]["key"], "0/full.jpg");
    assert!(dir.path().join("inspect-out/0/full.jpg").is_file(), "the default directory is ./inspect-out");

    let missing = inspect(&["no-such-file.jpg"], dir.path(), &[]);
    assert_eq!(missing.status.code(), Some(1), "{}", text(&missing));
    assert!(text(&missing).contains("no-such-file.jpg"), "{}", text(&missing));
    assert!(missing.stdout.is_empty());

    let none = inspect(&[], dir.path(), &[]);
    assert_eq!(none.status.code(), Some(2), "{}", text(&none));
    let bad = inspect(&[photo.to_str().unwrap()], dir.path(), &[("MEDIAGATE_VIDEO_CRF", "60")]);
    assert_eq!(bad.status.code(), Some(2), "{}", text(&bad));
    assert!(text(&bad).contains("MEDIAGATE_VIDEO_CRF"), "{}", text(&bad));
}
