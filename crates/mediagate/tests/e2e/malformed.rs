//! A corpus of malformed bodies and files, each with the precise reason code it must get.
//! Together with the other tests this is well over fifty bad inputs; the worker stays up.

use serde_json::{json, Value};

use crate::support::media::*;
use crate::support::{harness, item, job_id, media_job};

/// Bodies that break rule 1 (or 2), each published as a job; the verdict code must match.
#[test]
fn malformed_bodies_get_precise_codes() {
    let h = harness();
    let base = |id: &str| media_job(id, &["k/0.jpg"]);
    type Mutate = fn(&mut Value);
    let cases: Vec<(&str, Mutate, &str)> = vec![
        (
            "no-schema",
            |j| {
                j.as_object_mut().unwrap().remove("schema");
            },
            "job.invalid",
        ),
        ("schema-v2", |j| j["schema"] = json!("mediagate.job.v2"), "job.invalid"),
        ("schema-num", |j| j["schema"] = json!(1), "job.invalid"),
        (
            "kind-missing",
            |j| {
                j.as_object_mut().unwrap().remove("kind");
            },
            "job.invalid",
        ),
        ("kind-bad", |j| j["kind"] = json!("photo"), "job.invalid"),
        ("kind-case", |j| j["kind"] = json!("MEDIA"), "job.invalid"),
        (
            "msg-missing",
            |j| {
                j.as_object_mut().unwrap().remove("message");
            },
            "job.invalid",
        ),
        ("msg-id-empty", |j| j["message"]["message_id"] = json!(""), "job.invalid"),
        ("msg-id-slash", |j| j["message"]["message_id"] = json!("a/b"), "job.invalid"),
        ("conv-long", |j| j["message"]["conversation_id"] = json!("c".repeat(129)), "job.invalid"),
        ("fc-string", |j| j["message"]["first_contact"] = json!("false"), "job.invalid"),
        (
            "fc-missing",
            |j| {
                j["message"].as_object_mut().unwrap().remove("first_contact");
            },
            "job.invalid",
        ),
        (
            "sender-missing",
            |j| {
                j.as_object_mut().unwrap().remove("sender");
            },
            "job.invalid",
        ),
        ("sender-band-null", |j| j["sender"]["age_band"] = json!(null), "job.invalid"),
        ("sender-band-15", |j| j["sender"]["age_band"] = json!("15"), "job.invalid"),
        ("sender-id-dot", |j| j["sender"]["account_id"] = json!(".a"), "job.invalid"),
        ("rcpts-object", |j| j["recipients"] = json!({"account_id": "x"}), "job.invalid"),
        ("rcpts-empty", |j| j["recipients"] = json!([]), "job.invalid"),
        ("rcpt-no-band", |j| j["recipients"] = json!([{"account_id": "x"}]), "job.invalid"),
        ("rcpt-filter-str", |j| j["recipients"][0]["nudity_filter"] = json!("yes"), "job.invalid"),
        ("items-object", |j| j["items"] = json!({"0": {}}), "job.invalid"),
        (
            "item-no-source",
            |j| {
                j["items"][0].as_object_mut().unwrap().remove("source");
            },
            "job.invalid",
        ),
        ("item-key-empty", |j| j["items"][0]["source"]["key"] = json!(""), "job.invalid"),
        ("item-key-long", |j| j["items"][0]["source"]["key"] = json!("k".repeat(1025)), "job.invalid"),
        ("item-id-space", |j| j["items"][0]["item_id"] = json!("a b"), "job.invalid"),
        ("item-id-num", |j| j["items"][0]["item_id"] = json!(0), "job.invalid"),
        ("caption-long", |j| j["caption"] = json!("é".repeat(1001)), "job.invalid"),
        ("caption-num", |j| j["caption"] = json!(5), "job.invalid"),
        ("revision-neg", |j| j["revision"] = json!(-1), "job.invalid"),
        ("reprocess-str", |j| j["reprocess"] = json!("true"), "job.invalid"),
        ("items-none", |j| j["items"] = json!([]), "job.no_items"),
    ];
    let mut ids = Vec::new();
    for (name, mutate, _) in &cases {
        let id = job_id(&format!("mal-{name}"));
        let mut job = base(&id);
        mutate(&mut job);
        h.publish_raw(job.to_string().as_bytes(), Some(&id));
        ids.push(id);
    }
    for ((name, _, code), id) in cases.iter().zip(&ids) {
        let v = h.verdict(id);
        assert_eq!(v.body["status"], "rejected", "{name}: {}", v.body);
        assert_eq!(v.body["reason"]["code"], *code, "{name}: {}", v.body);
    }
    // Raw bodies that are not a job object at all.
    for (n, body) in
        [&b"null"[..], b"42", b"\"job\"", b"{", b"\xff\xfe\x00", b"{\"job_id\": \"x\"", b""].iter().enumerate()
    {
        let id = job_id(&format!("raw-{n}"));
        h.publish_raw(body, Some(&id));
        let v = h.verdict(&id);
        assert_eq!(v.body["reason"]["code"], "job.invalid", "raw body {n}");
    }
    h.assert_worker_alive();
}

/// Files that are not what they claim, each an item of one job.
#[test]
fn malformed_files_get_precise_codes() {
    let h = harness();
    let id = job_id("mal-files");
    let good = jpeg(120, 90, 1);
    let png = png_rgb(60, 40);
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("jpeg-header-only", good[..200.min(good.len())].to_vec(), "input.corrupt"),
        ("jpeg-soi-only", vec![0xFF, 0xD8, 0xFF], "input.corrupt"),
        (
            "jpeg-zero-dims",
            {
                // SOF0 claims a 0×0 frame.
                let mut b = good.clone();
                let sof = b.windows(2).position(|w| w == [0xFF, 0xC0]).expect("SOF0");
                b[sof + 5..sof + 9].fill(0);
                b
            },
            "input.corrupt",
        ),
        ("png-sig-only", b"\x89PNG\r\n\x1a\n".to_vec(), "input.corrupt"),
        ("png-truncated", png[..png.len() / 2].to_vec(), "input.corrupt"),
        ("png-zero-size", png_claiming(0, 0), "input.corrupt"),
        ("png-huge", png_claiming(100_000, 100_000), "input.too_many_pixels"),
        ("png-wide", png_claiming(60_000_000, 1), "input.too_many_pixels"),
        ("gif-header-only", b"GIF89a\x10\x00\x10\x00".to_vec(), "input.corrupt"),
        ("webp-riff-only", b"RIFF\x10\x00\x00\x00WEBPVP8 ".to_vec(), "input.corrupt"),
        ("pdf", b"%PDF-1.7\n1 0 obj\n".to_vec(), "input.unsupported_format"),
        ("zip", b"PK\x03\x04\x14\x00\x00\x00".to_vec(), "input.unsupported_format"),
        ("elf", b"\x7fELF\x02\x01\x01\x00".to_vec(), "input.unsupported_format"),
        ("text", b"hello world, definitely not a photo".to_vec(), "input.unsupported_format"),
        // An AVIF that is only its `ftyp`: recognised, decoded by libheif, nothing in it.
        ("avif", b"\0\0\0\x1cftypavif\0\0\0\0avifmif1".to_vec(), "input.corrupt"),
        ("jxl", b"\0\0\0\x0cJXL \r\n\x87\n\0\0\0\x14ftypjxl \0\0\0\0jxl ".to_vec(), "input.unsupported_format"),
        ("mp3-in-media", speech("mp3", "mp3"), "input.type_mismatch"),
        ("wav-in-media", wav(300), "input.type_mismatch"),
        (
            "mp4-garbage",
            {
                let mut b = b"\0\0\0\x18ftypisom\0\0\0\0isomavc1".to_vec();
                b.extend(vec![0x42; 500]);
                b
            },
            "input.corrupt",
        ),
    ];
    // A job carries at most nine items: split into jobs of nine.
    for (chunk_no, chunk) in cases.chunks(9).enumerate() {
        let jid = format!("{id}-{chunk_no}");
        let keys: Vec<String> = chunk
            .iter()
            .map(|(name, bytes, _)| {
                let key = format!("{jid}/{name}");
                h.put("incoming", &key, bytes.clone());
                key
            })
            .collect();
        let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
        let v = h.run_job(&media_job(&jid, &refs));
        for (i, (name, _, code)) in chunk.iter().enumerate() {
            let it = item(&v, &i.to_string());
            assert_eq!(it["status"], "rejected", "{name}: {it}");
            assert_eq!(it["reason"]["code"], *code, "{name}: {it}");
            assert!(
                it["reason"]["message"].as_str().is_some_and(|m| m.len() > 10),
                "{name}: a message a person can act on"
            );
        }
    }
    h.assert_worker_alive();
}
