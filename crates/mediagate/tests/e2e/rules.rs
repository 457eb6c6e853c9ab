//! Job-level rules (§3 rules 1–5) and unparsable bodies: explicit `rejected` verdicts, a
//! manifest for every valid job id, no media stored, and a worker that keeps running.

use serde_json::{json, Value};

use crate::support::media::jpeg;
use crate::support::{harness, job_id, job_schema, media_job, SeenVerdict};

fn rejected_with(v: &SeenVerdict, code: &str) {
    assert_eq!(v.body["status"], "rejected", "{}", v.body);
    assert_eq!(v.body["reason"]["code"], code, "{}", v.body);
    assert!(v.body["reason"]["message"].as_str().is_some_and(|m| m.len() > 10), "{}", v.body);
    assert_eq!(v.body["items"], json!([]), "{}", v.body);
    assert_eq!(v.routing_key, "verdict.rejected");
}

/// A job-level rejection stores the manifest but no media.
fn manifest_only(job_id: &str) -> Value {
    let h = harness();
    assert!(h.list("media", &format!("media/{job_id}/")).is_empty(), "media stored for a rejected job");
    let m = h.get("media", &format!("manifests/{job_id}.json")).expect("manifest written");
    serde_json::from_slice(&m).expect("manifest is JSON")
}

fn with_source(name: &str) -> (String, Value) {
    let h = harness();
    let id = job_id(name);
    let key = format!("{id}/0.jpg");
    h.put("incoming", &key, jpeg(64, 48, 1));
    let job = media_job(&id, &[&key]);
    (id, job)
}

#[test]
fn rule_2_too_many_items() {
    let h = harness();
    let (id, mut job) = with_source("r2many");
    let item = job["items"][0].clone();
    job["items"] = Value::Array(
        (0..10)
            .map(|i| {
                let mut it = item.clone();
                it["item_id"] = json!(i.to_string());
                it
            })
            .collect(),
    );
    let v = h.run_job(&job);
    rejected_with(&v, "job.too_many_items");
    manifest_only(&id);
}

#[test]
fn rule_2_no_items_and_voice_note_with_two() {
    let h = harness();
    let (_, mut job) = with_source("r2none");
    job["items"] = json!([]);
    rejected_with(&h.run_job(&job), "job.no_items");

    let (_, mut job) = with_source("r2voice");
    job["kind"] = json!("voice_note");
    let mut second = job["items"][0].clone();
    second["item_id"] = json!("1");
    job["items"].as_array_mut().unwrap().push(second);
    rejected_with(&h.run_job(&job), "job.too_many_items");
}

#[test]
fn rule_3_under_16_sender_or_recipient() {
    let h = harness();
    let (id, mut job) = with_source("r3sender");
    job["sender"]["age_band"] = json!("under_16");
    rejected_with(&h.run_job(&job), "policy.under_16");
    manifest_only(&id);

    let (_, mut job) = with_source("r3rcpt");
    job["recipients"].as_array_mut().unwrap().push(json!({"account_id": "kid", "age_band": "under_16"}));
    rejected_with(&h.run_job(&job), "policy.under_16");
}

#[test]
fn rule_4_no_media_on_first_contact() {
    let h = harness();
    let (id, mut job) = with_source("r4");
    job["message"]["first_contact"] = json!(true);
    rejected_with(&h.run_job(&job), "policy.media_first_contact");
    manifest_only(&id);
}

#[test]
fn rule_5_source_bucket_not_allowed() {
    let h = harness();
    let id = job_id("r5");
    let key = format!("{id}/0.jpg");
    h.put("elsewhere", &key, jpeg(64, 48, 1));
    let mut job = media_job(&id, &[&key]);
    job["items"][0]["source"]["bucket"] = json!("elsewhere");
    let v = h.run_job(&job);
    rejected_with(&v, "input.source_not_allowed");
    assert!(v.body["reason"]["message"].as_str().unwrap().contains("elsewhere"));
    let m = manifest_only(&id);
    assert_eq!(m["verdict"]["status"], "rejected");
    assert_eq!(m["job"]["job_id"], id.as_str());
}

#[test]
fn rules_apply_in_order() {
    // Under 16 *and* first contact *and* a foreign bucket: rule 3 speaks first.
    let h = harness();
    let (_, mut job) = with_source("order");
    job["sender"]["age_band"] = json!("under_16");
    job["message"]["first_contact"] = json!(true);
    job["items"][0]["source"]["bucket"] = json!("elsewhere");
    rejected_with(&h.run_job(&job), "policy.under_16");
}

#[test]
fn body_that_is_not_json_gets_job_invalid_with_the_amqp_message_id() {
    let h = harness();
    let id = job_id("notjson");
    h.publish_raw(b"this is not { json", Some(&id));
    let v = h.verdict(&id);
    rejected_with(&v, "job.invalid");
    assert_eq!(v.body["job_id"], id.as_str());
    assert_eq!(v.correlation_id.as_deref(), Some(id.as_str()));
    let m: Value = serde_json::from_slice(&h.get("media", &format!("manifests/{id}.json")).expect("manifest")).unwrap();
    assert_eq!(m["job"], json!("this is not { json"), "the raw body is kept as a string");
    h.assert_worker_alive();
}

#[test]
fn schema_violations_get_job_invalid_naming_the_field() {
    let h = harness();
    let (id, mut job) = with_source("schema");
    job["sender"]["age_band"] = json!("teen");
    assert!(!job_schema().is_valid(&job), "the schema refuses what the worker refuses");
    let v = h.run_job(&job);
    rejected_with(&v, "job.invalid");
    assert!(v.body["reason"]["message"].as_str().unwrap().contains("sender.age_band"), "{}", v.body);
    assert_eq!(v.body["job_id"], id.as_str());
    assert_eq!(v.body["message_id"], format!("m-{id}").as_str());

    let (_, mut job) = with_source("dup");
    let again = job["items"][0].clone();
    job["items"].as_array_mut().unwrap().push(again);
    rejected_with(&h.run_job(&job), "job.invalid");

    let (_, mut job) = with_source("badid");
    job["items"][0]["item_id"] = json!("../x");
    rejected_with(&h.run_job(&job), "job.invalid");
}

#[test]
fn an_invalid_job_id_becomes_null_and_writes_nothing() {
    let h = harness();
    let marker = job_id("nullid");
    let (_, mut job) = with_source("nullid");
    job["job_id"] = json!("../../escape");
    job["message"]["message_id"] = json!(marker);
    h.publish_raw(job.to_string().as_bytes(), Some("also-ignored"));
    let v = h.wait_uncorrelated(|v| v.body["message_id"] == marker.as_str());
    assert_eq!(v.body["job_id"], Value::Null);
    assert_eq!(v.body["status"], "rejected");
    assert_eq!(v.body["reason"]["code"], "job.invalid");
    assert!(h.list("media", "manifests/../").is_empty());
    assert!(h.get("media", "manifests/../../escape.json").is_none());
}

#[test]
fn a_body_with_no_id_at_all_gets_a_null_job_id() {
    let h = harness();
    h.publish_raw(b"[\"an array, not a job\"]", None);
    let v = h.wait_uncorrelated(|v| v.body["reason"]["message"].as_str().is_some_and(|m| m.contains("JSON object")));
    assert_eq!(v.body["job_id"], Value::Null);
    assert_eq!(v.routing_key, "verdict.rejected");
    h.assert_worker_alive();
}

#[test]
fn jobs_over_the_size_limits_are_rejected_naming_the_limit_and_one_at_them_is_processed() {
    let h = harness();
    let recipients = |n: usize| {
        Value::Array((0..n).map(|i| json!({ "account_id": format!("a-{i}"), "age_band": "adult" })).collect())
    };

    // 256 recipients, the default limit: processed as before.
    let (id, mut job) = with_source("at256");
    job["recipients"] = recipients(256);
    assert!(job_schema().is_valid(&job));
    let v = h.run_job(&job);
    assert_eq!(v.body["status"], "cleared", "{}", v.body);
    assert_eq!(v.body["job_id"], id.as_str());

    // 300: refused before the body is parsed in full; the id is the AMQP message_id.
    let (id, mut job) = with_source("over256");
    job["recipients"] = recipients(300);
    assert!(!job_schema().is_valid(&job), "the schema's maxItems says the default");
    let body = job.to_string();
    h.publish_raw(body.as_bytes(), Some(&id));
    let v = h.verdict(&id);
    rejected_with(&v, "job.invalid");
    let message = v.body["reason"]["message"].as_str().unwrap();
    assert!(message.contains("MEDIAGATE_MAX_RECIPIENTS") && message.contains("at most 256"), "{message}");
    assert_eq!(v.body["message_id"], Value::Null, "the body is not read for ids once over a limit");
    let m = manifest_only(&id);
    assert_eq!(m["job"], Value::Null, "{m}");
    assert_eq!(m["job_bytes"], body.len(), "{m}");

    // A 2 MiB body (the default limit is 1 MiB), with an AMQP id that is not a valid identifier:
    // rejected with a null job_id, and nothing written.
    let marker = job_id("big");
    let (_, mut job) = with_source("big");
    job["message"]["message_id"] = json!(marker);
    job["padding"] = json!("x".repeat(2 << 20));
    let body = job.to_string();
    assert!(body.len() > 2 << 20);
    h.publish_raw(body.as_bytes(), Some("../not-an-id"));
    let v = h.wait_uncorrelated(|v| {
        v.body["job_id"].is_null()
            && v.body["reason"]["message"].as_str().is_some_and(|m| m.contains(&format!("is {} bytes", body.len())))
    });
    rejected_with(&v, "job.invalid");
    let message = v.body["reason"]["message"].as_str().unwrap();
    assert!(message.contains("MEDIAGATE_MAX_JOB_BYTES") && message.contains("at most 1048576 bytes"), "{message}");
    h.assert_worker_alive();
}
