//! Photo items end to end: variants, sizes, formats, metadata, and every item reason code.

use serde_json::{json, Value};

use crate::support::media::*;
use crate::support::{
    assert_valid, harness, item, job_id, job_schema, media_job, run_uploads, sha256_hex, SeenVerdict,
    TEST_MAX_INPUT_BYTES,
};

/// Uploads each file under the job's prefix and runs a media job over them.
fn run_files(name: &str, files: Vec<(&str, Vec<u8>)>) -> (String, SeenVerdict) {
    run_uploads("media", name, files, |job| assert_valid(job_schema(), job, "job"))
}

fn output<'a>(item: &'a Value, variant: &str) -> &'a Value {
    item["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["variant"] == variant)
        .unwrap_or_else(|| panic!("no {variant} in {item}"))
}

/// Fetches an output, checks bytes/sha256/content type against the verdict, returns its bytes.
fn fetch(out: &Value) -> Vec<u8> {
    let h = harness();
    let bucket = out["bucket"].as_str().unwrap();
    let key = out["key"].as_str().unwrap();
    let bytes = h.get(bucket, key).unwrap_or_else(|| panic!("{key} not stored"));
    assert_eq!(out["bytes"], bytes.len() as u64, "{key} size");
    assert_eq!(out["sha256"], sha256_hex(&bytes).as_str(), "{key} sha256");
    assert_eq!(h.content_type(bucket, key).as_deref(), out["content_type"].as_str(), "{key} content type");
    assert_eq!(
        dims(&bytes),
        (out["width"].as_u64().unwrap() as u32, out["height"].as_u64().unwrap() as u32),
        "{key} dims"
    );
    bytes
}

fn rejected(v: &SeenVerdict, item_id: &str, code: &str) -> String {
    let it = item(v, item_id);
    assert_eq!(it["status"], "rejected", "{it}");
    assert_eq!(it["reason"]["code"], code, "{it}");
    assert_eq!(it["outputs"], json!([]));
    it["reason"]["message"].as_str().unwrap().to_string()
}

#[test]
fn a_12mp_jpeg_gives_full_and_thumb_and_one_complete_verdict() {
    let h = harness();
    let (id, v) = run_files("big", vec![("jpg", jpeg(4000, 3000, 11))]);
    // Envelope.
    assert_eq!(v.routing_key, "verdict.cleared");
    assert_eq!(v.correlation_id.as_deref(), Some(id.as_str()));
    assert_eq!(v.content_type.as_deref(), Some("application/json"));
    assert_eq!(v.delivery_mode, Some(2));
    // Body.
    let b = &v.body;
    assert_eq!(b["schema"], "mediagate.verdict.v1");
    assert_eq!(b["job_id"], id.as_str());
    assert_eq!(b["message_id"], format!("m-{id}").as_str());
    assert_eq!(b["conversation_id"], "c-test");
    assert_eq!(b["status"], "cleared");
    assert_eq!(b["reason"], Value::Null);
    assert_eq!(b["reprocess"], false);
    assert_eq!(b["revision"], 0);
    assert_eq!(b["worker"]["id"], "test-worker");
    assert!(b["processed_at"].as_str().unwrap().ends_with('Z'));
    let it = item(&v, "0");
    assert_eq!(it["status"], "cleared");
    assert_eq!(it["media_type"], "image");
    assert_eq!((it["width"].as_u64(), it["height"].as_u64()), (Some(4000), Some(3000)));
    for k in ["duration_ms", "waveform", "nudity", "reason"] {
        assert_eq!(it[k], Value::Null, "{k}");
    }
    assert!(it["blurhash"].as_str().is_some_and(|s| s.len() >= 6), "{it}");
    let full = output(it, "full");
    let thumb = output(it, "thumb");
    assert_eq!(full["key"], format!("media/{id}/0/full.jpg").as_str());
    assert_eq!(thumb["key"], format!("media/{id}/0/thumb.jpg").as_str());
    assert_eq!(full["content_type"], "image/jpeg");
    assert_eq!(full["bucket"], "media");
    let fb = fetch(full);
    assert_eq!(dims(&fb), (2048, 1536));
    let tb = fetch(thumb);
    assert_eq!(dims(&tb), (320, 240));
    // Manifest: the job and the same verdict.
    let m: Value = serde_json::from_slice(&h.get("media", &format!("manifests/{id}.json")).unwrap()).unwrap();
    assert_eq!(m["job"]["job_id"], id.as_str());
    assert_eq!(m["verdict"], v.body);
}

#[test]
fn small_photos_are_never_upscaled() {
    let (_, v) = run_files("small", vec![("png", png_rgb(800, 600)), ("jpg", jpeg(200, 100, 2))]);
    assert_eq!(v.body["status"], "cleared");
    let a = item(&v, "0");
    assert_eq!(dims(&fetch(output(a, "full"))), (800, 600));
    assert_eq!(dims(&fetch(output(a, "thumb"))), (320, 240));
    assert_eq!(output(a, "full")["content_type"], "image/jpeg", "an opaque PNG becomes JPEG");
    let b = item(&v, "1");
    assert_eq!(dims(&fetch(output(b, "full"))), (200, 100));
    assert_eq!(dims(&fetch(output(b, "thumb"))), (200, 100));
}

#[test]
fn transparency_keeps_png_and_opaque_alpha_does_not() {
    let (id, v) = run_files("alpha", vec![("png", png_rgba(600, 400, true)), ("png", png_rgba(600, 400, false))]);
    let t = item(&v, "0");
    for variant in ["full", "thumb"] {
        let o = output(t, variant);
        assert_eq!(o["content_type"], "image/png");
        assert_eq!(o["key"], format!("media/{id}/0/{variant}.png").as_str());
        let bytes = fetch(o);
        let img = image::load_from_memory(&bytes).unwrap().to_rgba8();
        assert_eq!(img.get_pixel(0, 0)[3], 0, "transparent pixel kept");
        assert_eq!(img.get_pixel(img.width() - 1, 0)[3], 255);
    }
    let o = item(&v, "1");
    assert_eq!(output(o, "full")["content_type"], "image/jpeg");
    assert_eq!(output(o, "thumb")["content_type"], "image/jpeg");
}

#[test]
fn exif_orientation_is_applied_and_all_metadata_removed() {
    // A landscape 600×400 sensor image tagged "rotate 90° CW" (6) with GPS and a comment.
    let base = jpeg(600, 400, 5);
    let tagged = insert_after_soi(&insert_after_soi(&base, &jpeg_comment("secret comment")), &exif_app1(6, true));
    assert!(contains(&tagged, b"Exif\0\0") && contains(&tagged, b"secret comment"));
    let (_, v) = run_files("exif", vec![("jpg", tagged)]);
    let it = item(&v, "0");
    assert_eq!(it["status"], "cleared", "{it}");
    assert_eq!((it["width"].as_u64(), it["height"].as_u64()), (Some(400), Some(600)), "displayed size");
    for variant in ["full", "thumb"] {
        let bytes = fetch(output(it, variant));
        let (w, h) = dims(&bytes);
        assert!(h > w, "{variant} is portrait after orientation: {w}×{h}");
        assert!(!contains(&bytes, b"Exif"), "{variant} has no EXIF");
        assert!(!contains(&bytes, b"secret comment"), "{variant} has no comment");
        assert!(!contains(&bytes, b"http://ns.adobe.com/xap"), "{variant} has no XMP");
        assert!(!contains(&bytes, &[0xFF, 0xE1]), "{variant} has no APP1 segment");
    }
    // The pixels were rotated, not just re-labelled: the left column of the source (red≈0)
    // becomes the top row of the output.
    let full = image::load_from_memory(&fetch(output(it, "full"))).unwrap().to_rgb8();
    let top_mid = full.get_pixel(full.width() / 2, 2);
    let bottom_mid = full.get_pixel(full.width() / 2, full.height() - 3);
    assert!(top_mid[0] < 60 && bottom_mid[0] > 190, "rotation: top {top_mid:?} bottom {bottom_mid:?}");
}

#[test]
fn webp_and_animated_gif_give_their_first_frame() {
    let (_, v) = run_files("webpgif", vec![("webp", webp_lossless(300, 200)), ("gif", gif_animated(100, 80))]);
    assert_eq!(v.body["status"], "cleared", "{}", v.body);
    assert_eq!(dims(&fetch(output(item(&v, "0"), "full"))), (300, 200));
    let gif_full = image::load_from_memory(&fetch(output(item(&v, "1"), "full"))).unwrap().to_rgb8();
    let p = gif_full.get_pixel(50, 40);
    assert!(p[0] > 150 && p[2] < 100, "first (red) frame, got {p:?}");
}

#[test]
fn nine_items_are_all_cleared() {
    let files = (0..9).map(|i| ("jpg", jpeg(640 + i * 10, 480, i))).collect();
    let (id, v) = run_files("nine", files);
    assert_eq!(v.body["status"], "cleared");
    assert_eq!(v.body["items"].as_array().unwrap().len(), 9);
    let ids: Vec<&str> = v.body["items"].as_array().unwrap().iter().map(|i| i["item_id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["0", "1", "2", "3", "4", "5", "6", "7", "8"], "items keep the job's order");
    assert_eq!(harness().list("media", &format!("media/{id}/")).len(), 18);
}

#[test]
fn one_truncated_jpeg_of_nine_gives_partial_with_eight_cleared() {
    let mut files: Vec<(&str, Vec<u8>)> = (0..9).map(|i| ("jpg", jpeg(500, 400, 100 + i))).collect();
    let full = files[4].1.clone();
    files[4].1 = full[..full.len() / 2].to_vec();
    let (id, v) = run_files("partial", files);
    assert_eq!(v.body["status"], "partial");
    assert_eq!(v.routing_key, "verdict.partial");
    let cleared = v.body["items"].as_array().unwrap().iter().filter(|i| i["status"] == "cleared").count();
    assert_eq!(cleared, 8);
    let msg = rejected(&v, "4", "input.corrupt");
    assert_eq!(item(&v, "4")["media_type"], "image");
    assert!(!msg.is_empty());
    assert!(harness().list("media", &format!("media/{id}/4/")).is_empty(), "nothing stored for the bad item");
}

#[test]
fn item_reason_codes() {
    let h = harness();
    let id = job_id("codes");
    let put = |name: &str, bytes: Vec<u8>| {
        let key = format!("{id}/{name}");
        h.put("incoming", &key, bytes);
        key
    };
    let too_large = {
        let mut big = jpeg(64, 64, 1);
        big.resize(TEST_MAX_INPUT_BYTES as usize + 4096, 0);
        put("big.jpg", big)
    };
    let keys = vec![
        format!("{id}/never-uploaded.jpg"),                                  // 0 missing
        too_large,                                                           // 1 too large
        put("text.jpg", b"<html><body>not an image</body></html>".to_vec()), // 2 unrecognised
        put("jxl.jpg", b"\0\0\0\x0cJXL \r\n\x87\n\0\0\0\x14ftypjxl \0\0\0\0jxl ".to_vec()), // 3 recognised, unsupported
        put("voice.wav", wav(500)),                                          // 4 audio in a media job
        put("garbage.png", {
            let mut p = png_rgb(50, 50);
            let n = p.len();
            p[40..n - 12].fill(0x5a);
            p
        }), // 5 corrupt
        put("bomb.png", png_claiming(40000, 40000)),                         // 6 too many pixels
        put("ok.jpg", jpeg(100, 100, 3)),                                    // 7 fine
        put("empty.jpg", Vec::new()),                                        // 8 empty
    ];
    let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
    let v = h.run_job(&media_job(&id, &refs));
    assert_eq!(v.body["status"], "partial", "{}", v.body);
    assert!(rejected(&v, "0", "input.missing").contains("never-uploaded.jpg"));
    assert!(rejected(&v, "1", "input.too_large").contains(&TEST_MAX_INPUT_BYTES.to_string()));
    assert_eq!(item(&v, "1")["media_type"], Value::Null);
    rejected(&v, "2", "input.unsupported_format");
    assert_eq!(item(&v, "2")["media_type"], Value::Null);
    assert!(rejected(&v, "3", "input.unsupported_format").contains("JPEG XL"));
    rejected(&v, "4", "input.type_mismatch");
    assert_eq!(item(&v, "4")["media_type"], "audio");
    rejected(&v, "5", "input.corrupt");
    let bomb = rejected(&v, "6", "input.too_many_pixels");
    assert!(bomb.contains("40000"), "{bomb}");
    assert_eq!(item(&v, "7")["status"], "cleared");
    rejected(&v, "8", "input.unsupported_format");
    h.assert_worker_alive();
}

#[test]
fn an_image_in_a_voice_note_job_is_a_type_mismatch() {
    let h = harness();
    let id = job_id("vn");
    let key = format!("{id}/0.jpg");
    h.put("incoming", &key, jpeg(64, 64, 4));
    let mut job = media_job(&id, &[&key]);
    job["kind"] = json!("voice_note");
    let v = h.run_job(&job);
    assert_eq!(v.body["status"], "rejected");
    assert_eq!(v.body["reason"], Value::Null, "item-level rejection, not job-level");
    let msg = rejected(&v, "0", "input.type_mismatch");
    assert!(msg.contains("voice_note"), "{msg}");
}

#[test]
fn the_same_photo_twice_gives_byte_identical_outputs() {
    let src = jpeg(1500, 1000, 77);
    let (_, a) = run_files("det-a", vec![("jpg", src.clone())]);
    let (_, b) = run_files("det-b", vec![("jpg", src)]);
    for variant in ["full", "thumb"] {
        assert_eq!(output(item(&a, "0"), variant)["sha256"], output(item(&b, "0"), variant)["sha256"]);
    }
    assert_eq!(item(&a, "0")["blurhash"], item(&b, "0")["blurhash"]);
}
