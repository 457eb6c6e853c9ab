//! Jobs as producers send them (contract §2), for the tests of every crate that handles one.

use serde_json::{json, Value};

/// A valid `media` job over the given source keys in `incoming`: an adult sender and recipient,
/// not a first contact, item `i` reading the `i`th key.
pub fn media_job(job_id: &str, keys: &[&str]) -> Value {
    let items: Vec<Value> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| json!({ "item_id": i.to_string(), "source": { "bucket": "incoming", "key": k } }))
        .collect();
    json!({
        "schema": "mediagate.job.v1",
        "job_id": job_id,
        "kind": "media",
        "message": { "message_id": format!("m-{job_id}"), "conversation_id": "c-test", "first_contact": false },
        "sender": { "account_id": "a-sender", "age_band": "adult" },
        "recipients": [ { "account_id": "a-rcpt", "age_band": "adult" } ],
        "items": items,
    })
}
