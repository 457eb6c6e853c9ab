//! A moderator's review end to end (contract §9): release, confirm, and what neither may do.
//! The classifier is made to block everything (minor threshold 0, a 16–17 recipient), so any
//! photo gives a blocked item to decide on.

use std::process::Output;
use std::time::Duration;

use serde_json::{json, Value};

use crate::banks::{jpeg_of, scene};
use crate::support::{media_job, sha256_hex, Isolated};

fn start(tag: &str) -> Isolated {
    Isolated::start(tag, &[("MEDIAGATE_NUDITY_THRESHOLD_MINOR", "0"), ("MEDIAGATE_HASH_BANK_REFRESH_S", "1")])
}

fn minor_job(id: &str, key: &str) -> Value {
    let mut job = media_job(id, &[key]);
    job["recipients"] = json!([{ "account_id": "a-teen", "age_band": "16_17" }]);
    job
}

/// Runs a job over one upload and returns its first verdict.
fn blocked(env: &Isolated, id: &str, bytes: Vec<u8>) -> Value {
    let key = format!("{id}/0.jpg");
    env.put(&key, bytes);
    env.publish(&minor_job(id, &key));
    let v = env.wait_verdicts(id, 1, Duration::from_secs(60)).remove(0).body;
    assert_eq!(v["items"][0]["status"], "blocked", "{v}");
    v
}

fn review(env: &Isolated, args: &[&str]) -> Output {
    env.command().arg("review").args(args).output().expect("run mediagate review")
}

fn code(out: &Output) -> i32 {
    out.status.code().unwrap_or(-1)
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

fn keys(env: &Isolated, prefix: &str) -> Vec<String> {
    env.rt.block_on(env.store.list_keys("quarantine", prefix)).expect("list")
}

fn listed(env: &Isolated, id: &str) -> Value {
    let out = review(env, &["list", "--json"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("JSON line"))
        .find(|v| v["job_id"] == id)
        .unwrap_or_else(|| panic!("{id} not listed: {}", text(&out)))
}

/// A blocked photo released by a moderator: the job comes back on the live lane with its
/// revision plus one and the item is cleared from its quarantined original — the source is deleted first —
/// with `review` set and its score kept as measured. A second release changes nothing; a job
/// republished under the same id with other recipients is not covered by the release.
#[test]
fn a_released_item_is_cleared_from_its_quarantined_original() {
    let env = start("review-release");
    let id = "t-review-release";
    let photo = jpeg_of(&scene(640, 480, 11), 90);
    let first = blocked(&env, id, photo.clone());
    assert_eq!(listed(&env, id)["decision"], Value::Null);
    env.rt.block_on(env.store.delete("incoming", &format!("{id}/0.jpg"))).expect("delete the source");

    let out = review(&env, &["release", id, "0", "--by", "mod-1", "--note", "a beach photo"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let v = env.wait_verdicts(id, 2, Duration::from_secs(60)).remove(1).body;
    assert_eq!(
        (v["revision"].as_u64(), &v["reprocess"], v["status"].as_str()),
        (Some(1), &json!(true), Some("cleared")),
        "{v}"
    );
    let it = &v["items"][0];
    assert_eq!(it["review"]["decision"], "released");
    assert_eq!((it["review"]["by"].as_str(), it["review"]["note"].as_str()), (Some("mod-1"), Some("a beach photo")));
    assert_eq!(it["nudity"], first["items"][0]["nudity"], "the score is kept as measured");
    assert_eq!(it["hashes"]["sha256"], sha256_hex(&photo));
    let outputs = it["outputs"].as_array().unwrap();
    assert_eq!(outputs.len(), 2, "{it}");
    for o in outputs {
        assert!(env.get("media", o["key"].as_str().unwrap()).is_some(), "{o}");
    }
    let decision = listed(&env, id)["decision"].clone();
    assert_eq!(
        (decision["decision"].as_str(), decision["sha256"].as_str()),
        (Some("released"), Some(sha256_hex(&photo).as_str()))
    );

    // Again: nothing published, nothing written.
    let out = review(&env, &["release", id, "0", "--by", "mod-1"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert!(text(&out).contains("already released"), "{}", text(&out));
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(env.verdicts_for(id).len(), 2, "a second release published the job again");
    assert_eq!(keys(&env, &format!("{id}/0/review/")).len(), 1);

    // Another job under the same id (other recipients) is processed as any job: blocked again.
    env.put(&format!("{id}/0.jpg"), photo);
    let mut other = minor_job(id, &format!("{id}/0.jpg"));
    other["recipients"] = json!([{ "account_id": "a-someone-else", "age_band": "16_17" }]);
    other["reprocess"] = json!(true);
    other["revision"] = json!(2);
    env.publish(&other);
    let v = env.wait_verdicts(id, 3, Duration::from_secs(60)).remove(2).body;
    assert_eq!((v["revision"].as_u64(), v["items"][0]["status"].as_str()), (Some(2), Some("blocked")), "{v}");
    assert_eq!(v["items"][0]["review"], Value::Null);
}

/// What review refuses, writing nothing: an unknown job, an item that was never blocked, a
/// `--by` that is not an identifier (a newline could forge a bank line), a confirmed item to
/// release. A confirm writes the item's hashes into the `confirmed` bank, and the same picture
/// re-encoded, in a new adult-only job, is then blocked with `hash.matched` from that bank.
#[test]
fn confirm_feeds_the_confirmed_bank_and_release_refuses_what_it_must() {
    let env = start("review-confirm");
    let unknown = review(&env, &["release", "t-no-such-job", "0", "--by", "mod-1"]);
    assert_eq!(code(&unknown), 1, "{}", text(&unknown));
    assert!(keys(&env, "t-no-such-job/").is_empty());

    let cleared = "t-review-cleared";
    env.put(&format!("{cleared}/0.jpg"), jpeg_of(&scene(320, 240, 5), 85));
    env.publish(&media_job(cleared, &[&format!("{cleared}/0.jpg")]));
    assert_eq!(env.wait_verdicts(cleared, 1, Duration::from_secs(60))[0].body["status"], "cleared");
    let out = review(&env, &["release", cleared, "0", "--by", "mod-1"]);
    assert_eq!(code(&out), 1, "{}", text(&out));
    assert!(keys(&env, &format!("{cleared}/")).is_empty(), "nothing written for a cleared item");

    let id = "t-review-confirm";
    let picture = scene(800, 600, 21);
    blocked(&env, id, jpeg_of(&picture, 92));
    let bad_by = review(&env, &["confirm", id, "0", "--by", "mod-1\npdq 0000"]);
    assert_eq!(code(&bad_by), 2, "{}", text(&bad_by));
    assert!(keys(&env, &format!("{id}/0/review/")).is_empty());

    let out = review(&env, &["confirm", id, "0", "--by", "mod-2", "--note", "known abuse image"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let original = env.get("quarantine", &format!("{id}/0/original.jpg")).expect("original kept");
    let bank = String::from_utf8(
        env.get("quarantine", &format!(".banks/confirmed/{}.txt", sha256_hex(&original))).expect("bank object"),
    )
    .unwrap();
    let label = format!("{id}/0 by mod-2");
    assert!(bank.lines().any(|l| l == format!("sha256 {} {label}", sha256_hex(&original))), "{bank}");
    assert!(bank.lines().any(|l| l.starts_with("pdq ") && l.ends_with(&label)), "{bank}");

    let again = review(&env, &["confirm", id, "0", "--by", "mod-2"]);
    assert_eq!(code(&again), 0, "{}", text(&again));
    let release = review(&env, &["release", id, "0", "--by", "mod-1"]);
    assert_eq!(code(&release), 1, "{}", text(&release));
    assert_eq!(keys(&env, &format!("{id}/0/review/")).len(), 1, "only the one confirm is on record");

    // A re-send, re-encoded at another quality, in an adult-only job (no filter): blocked by the bank.
    std::thread::sleep(Duration::from_millis(2500));
    let resend = "t-review-resend";
    env.put(&format!("{resend}/0.jpg"), jpeg_of(&picture, 70));
    env.publish(&media_job(resend, &[&format!("{resend}/0.jpg")]));
    let v = env.wait_verdicts(resend, 1, Duration::from_secs(60)).remove(0).body;
    let it = &v["items"][0];
    assert_eq!((it["status"].as_str(), it["reason"]["code"].as_str()), (Some("blocked"), Some("hash.matched")), "{it}");
    assert_eq!((it["match"]["bank"].as_str(), it["match"]["kind"].as_str()), (Some("confirmed"), Some("pdq")));
    assert_eq!(it["match"]["label"], label.as_str());
    assert_eq!(it["nudity"], Value::Null);
}
