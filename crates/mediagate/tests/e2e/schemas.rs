//! The shipped JSON Schemas agree with the contract's own examples and refuse what it refuses.

use serde_json::json;

use crate::support::{assert_valid, job_schema, verdict_schema, workspace_root};

fn contract_example(tag: &str, n: usize) -> serde_json::Value {
    // The contract's JSON examples, in order: the job, then the verdict.
    let text = std::fs::read_to_string(workspace_root().join("docs/contract.md")).expect("docs/contract.md");
    let block = text.split("```json").nth(n).unwrap_or_else(|| panic!("no {tag} example")).split("```").next().unwrap();
    serde_json::from_str(block).unwrap_or_else(|e| panic!("{tag} example: {e}"))
}

#[test]
fn the_contract_examples_validate() {
    assert_valid(job_schema(), &contract_example("job", 1), "contract job example");
    assert_valid(verdict_schema(), &verdict_example(), "contract verdict example");
}

/// The contract's verdict example with the hashes it elides ("…") filled in.
fn verdict_example() -> serde_json::Value {
    let mut verdict = contract_example("verdict", 2);
    verdict["items"][0]["nudity"]["model_sha256"] = json!("0".repeat(64));
    verdict["items"][0]["outputs"][0]["sha256"] = json!("1".repeat(64));
    verdict["items"][0]["hashes"]["sha256"] = json!("2".repeat(64));
    verdict["items"][0]["hashes"]["pdq"] = json!("3".repeat(64));
    verdict["items"][1]["hashes"]["sha256"] = json!("4".repeat(64));
    verdict
}

#[test]
fn the_schemas_refuse_what_the_contract_refuses() {
    let job = contract_example("job", 1);
    for (path, bad) in [
        ("/job_id", json!(".hidden")),
        ("/job_id", json!("a/b")),
        ("/kind", json!("sticker")),
        ("/sender/age_band", json!("teen")),
        ("/caption", json!("x".repeat(1001))),
        ("/recipients", json!([])),
    ] {
        let mut j = job.clone();
        *j.pointer_mut(path).unwrap() = bad.clone();
        assert!(!job_schema().is_valid(&j), "{path} = {bad} should be refused");
    }
    let v = verdict_example();
    assert_valid(verdict_schema(), &v, "the example each case below breaks");
    for (path, bad) in [
        ("/items/0/hashes/pdq", json!("not-hex")),
        ("/items/1/reason/code", json!("hash.unknown")),
        ("/status", json!("ok")),
        ("/items/1/reason/code", json!("input.bad")),
        ("/items/0/outputs/0/key", json!("media/../x/full.jpg")),
        ("/items/0/waveform", json!([1, 2, 3])),
    ] {
        let mut w = v.clone();
        *w.pointer_mut(path).unwrap() = bad.clone();
        assert!(!verdict_schema().is_valid(&w), "{path} = {bad} should be refused");
    }
    let mut w = v.clone();
    w["items"][0].as_object_mut().unwrap().remove("duration_ms");
    assert!(!verdict_schema().is_valid(&w), "every item key is required");
}

/// The verdict schema's reason codes are exactly the contract crate's, no more, no fewer.
#[test]
fn the_schema_lists_every_reason_code() {
    let text =
        std::fs::read_to_string(crate::support::workspace_root().join("schemas/verdict.v1.schema.json")).unwrap();
    let schema: serde_json::Value = serde_json::from_str(&text).unwrap();
    let mut listed: Vec<&str> =
        schema["$defs"]["code"]["enum"].as_array().unwrap().iter().map(|c| c.as_str().unwrap()).collect();
    let mut ours: Vec<&str> = mediagate_contract::ReasonCode::ALL.iter().map(|c| c.as_str()).collect();
    listed.sort_unstable();
    ours.sort_unstable();
    assert_eq!(listed, ours);
}
