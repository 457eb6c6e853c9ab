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
    let mut verdict = contract_example("verdict", 2);
    // The example elides hashes with "…".
    verdict["items"][0]["nudity"]["model_sha256"] = json!("0".repeat(64));
    verdict["items"][0]["outputs"][0]["sha256"] = json!("1".repeat(64));
    assert_valid(verdict_schema(), &verdict, "contract verdict example");
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
    let mut v = contract_example("verdict", 2);
    v["items"][0]["nudity"]["model_sha256"] = json!("0".repeat(64));
    v["items"][0]["outputs"][0]["sha256"] = json!("1".repeat(64));
    for (path, bad) in [
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
