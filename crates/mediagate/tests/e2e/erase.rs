//! `mediagate erase` (contract §7): a privacy request's deletions, what they keep, and what they
//! report when storage fails.

use std::process::Output;
use std::time::Duration;

use serde_json::json;

use crate::banks::{jpeg_of, scene};
use crate::support::{media_job, sha256_hex, Isolated};

fn erase(env: &Isolated, args: &[&str]) -> Output {
    env.command().arg("erase").args(args).output().expect("run mediagate erase")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).to_string()
}

fn text(out: &Output) -> String {
    format!("{}{}", stdout(out), String::from_utf8_lossy(&out.stderr))
}

fn keys(env: &Isolated, bucket: &str, prefix: &str) -> Vec<String> {
    env.rt.block_on(env.store.list_keys(bucket, prefix)).expect("list")
}

/// A cleared job: a dry run lists and deletes nothing; the erase deletes the outputs and the
/// manifest, printing each, and leaves the producer's upload alone; a second erase and an
/// unknown job find nothing and still exit 0; bad ids are bad usage.
#[test]
fn a_cleared_job_is_erased_once_and_a_second_erase_finds_nothing() {
    let env = Isolated::start("erase-cleared", &[]);
    let id = "t-erase-cleared";
    let src = format!("{id}/0.jpg");
    env.put(&src, jpeg_of(&scene(640, 480, 3), 85));
    env.publish(&media_job(id, &[&src]));
    let v = env.wait_verdicts(id, 1, Duration::from_secs(60)).remove(0).body;
    assert_eq!(v["status"], "cleared", "{v}");
    let mut stored: Vec<String> = keys(&env, "media", &format!("media/{id}/"));
    stored.push(format!("manifests/{id}.json"));
    stored.extend(keys(&env, "media", "manifests-index/").into_iter().filter(|k| k.contains(id)));
    assert_eq!(stored.len(), 5, "full, thumb, the manifest and its index pointer and entry: {stored:?}");

    let dry = erase(&env, &["--dry-run", id]);
    assert_eq!(dry.status.code(), Some(0), "{}", text(&dry));
    for key in &stored {
        assert!(stdout(&dry).contains(&format!("would delete s3://media/{key}")), "{key}: {}", text(&dry));
    }
    assert_eq!(keys(&env, "media", &format!("media/{id}/")).len(), 2, "a dry run deletes nothing");

    let out = erase(&env, &[id]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let mut got: Vec<String> =
        stdout(&out).lines().filter_map(|l| l.strip_prefix("deleted s3://media/")).map(str::to_owned).collect();
    got.sort();
    let mut want = stored.clone();
    want.sort();
    assert_eq!(got, want, "{}", text(&out));
    assert!(keys(&env, "media", &format!("media/{id}/")).is_empty());
    assert!(env.get("media", &format!("manifests/{id}.json")).is_none());
    assert!(env.get("incoming", &src).is_some(), "the producer's upload is not erase's to delete");

    let again = erase(&env, &[id, "t-erase-no-such-job"]);
    assert_eq!(again.status.code(), Some(0), "{}", text(&again));
    assert!(!stdout(&again).contains("deleted"), "{}", text(&again));
    assert!(text(&again).contains("2 jobs: 0 objects deleted"), "{}", text(&again));

    for bad in [&[][..], &["../etc"][..]] {
        let out = erase(&env, bad);
        assert_eq!(out.status.code(), Some(2), "{bad:?}: {}", text(&out));
    }
}

/// A job with a banked photo (`hash.matched`) and a flagged one, the flagged one confirmed by a
/// moderator: erase deletes the flagged item's quarantine copy, entry and decision, keeps the
/// matched item's original and entry as evidence and the `confirmed` bank's entry (hashes, not
/// media); `--include-evidence` from a file then deletes the evidence too. With S3 down, erase
/// exits 1 and reports nothing deleted.
#[test]
fn evidence_of_a_hash_match_is_kept_unless_asked_and_a_storage_outage_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let banked = jpeg_of(&scene(640, 480, 31), 88);
    let flagged = jpeg_of(&scene(640, 480, 32), 88);
    let bank = dir.path().join("bank.txt");
    std::fs::write(&bank, format!("sha256 {}\n", sha256_hex(&banked))).unwrap();
    let banks = format!("test={}", bank.display());
    let env = Isolated::start(
        "erase-evidence",
        &[("MEDIAGATE_HASH_BANKS", &banks), ("MEDIAGATE_NUDITY_THRESHOLD_MINOR", "0")],
    );
    let id = "t-erase-evidence";
    let (k0, k1) = (format!("{id}/0.jpg"), format!("{id}/1.jpg"));
    env.put(&k0, banked);
    env.put(&k1, flagged.clone());
    let mut job = media_job(id, &[&k0, &k1]);
    job["recipients"] = json!([{ "account_id": "a-teen", "age_band": "16_17" }]);
    env.publish(&job);
    let v = env.wait_verdicts(id, 1, Duration::from_secs(60)).remove(0).body;
    let reasons: Vec<&str> =
        v["items"].as_array().unwrap().iter().map(|i| i["reason"]["code"].as_str().unwrap()).collect();
    assert_eq!(reasons, ["hash.matched", "nudity.flagged"], "{v}");
    let confirm = env.command().args(["review", "confirm", id, "1", "--by", "mod-1"]).output().unwrap();
    assert_eq!(confirm.status.code(), Some(0), "{}", text(&confirm));
    let confirmed = format!(".banks/confirmed/{}.txt", sha256_hex(&flagged));
    assert!(env.get("quarantine", &confirmed).is_some());
    assert!(keys(&env, "quarantine", &format!("{id}/1/review/")).len() == 1);

    // Storage down: an error, and no key reported deleted.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let down = env
        .command()
        .args(["erase", id])
        .env("MEDIAGATE_S3_ENDPOINT", format!("http://127.0.0.1:{closed}"))
        .env("MEDIAGATE_S3_ATTEMPTS", "1")
        .output()
        .unwrap();
    assert_eq!(down.status.code(), Some(1), "{}", text(&down));
    assert!(!stdout(&down).contains("deleted"), "{}", text(&down));
    assert!(env.get("quarantine", &format!("{id}/1/original.jpg")).is_some(), "nothing was deleted");

    let out = erase(&env, &[id]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(keys(&env, "quarantine", &format!("{id}/1/")).is_empty(), "the flagged item's copy, entry and decision");
    let kept = keys(&env, "quarantine", &format!("{id}/0/"));
    assert_eq!(kept, [format!("{id}/0/original.jpg"), format!("{id}/0/verdict.json")]);
    for key in &kept {
        assert!(stdout(&out).contains(&format!("kept s3://quarantine/{key}")), "{}", text(&out));
    }
    assert!(env.get("quarantine", &confirmed).is_some(), "bank entries are hashes, not media: kept");
    assert!(text(&out).contains("kept as evidence"), "{}", text(&out));

    let list = dir.path().join("request.txt");
    std::fs::write(&list, format!("# privacy request\n{id}\n")).unwrap();
    let all = erase(&env, &["--include-evidence", "--from-file", list.to_str().unwrap()]);
    assert_eq!(all.status.code(), Some(0), "{}", text(&all));
    assert!(keys(&env, "quarantine", &format!("{id}/")).is_empty(), "{}", text(&all));
    assert!(stdout(&all).contains(&format!("deleted s3://quarantine/{id}/0/original.jpg")), "{}", text(&all));
}
