//! What phones send, end to end through the worker: HEIC grids with rotation, 10-bit HEIF,
//! AVIF with alpha, HEIF pixel bombs and truncations; HLG HDR video, 120 fps slow motion, an
//! iPhone MOV with location and timecode; an Android AMR voice note. Files are made by the real
//! encoders (pillow-heif, Pillow's libavif, x265, the ffmpeg CLI; AMR frames by hand).

use serde_json::json;

use crate::support::media::*;
use crate::support::{fetch_output, item, output, run_uploads, SeenVerdict};
use mediagate_testkit::heif::{claiming, photo};

fn run(kind: &str, name: &str, files: Vec<(&str, Vec<u8>)>, minor: bool) -> (String, SeenVerdict) {
    run_uploads(kind, name, files, |job| {
        if minor {
            job["recipients"][0]["age_band"] = json!("16_17");
        }
    })
}

#[test]
fn heic_avif_and_heif_from_phones() {
    let heic = photo("heic", 1200, 900, &["--grid", "256", "--orientation", "6", "--thumb", "160"]);
    let mut truncated = photo("heic", 640, 480, &["--grid", "256"]);
    truncated.truncate(truncated.len() * 3 / 5);
    let files = vec![
        ("heic", heic),
        ("heif", photo("heic", 320, 240, &["--bits", "10"])),
        ("avif", photo("avif", 320, 240, &["--alpha"])),
        ("heic", claiming(&photo("heic", 256, 256, &[]), 40000, 40000)),
        ("heic", truncated),
    ];
    // A 16–17 recipient: the nudity filter scores each decoded primary image.
    let (id, v) = run("media", "phones-heif", files, true);
    assert_eq!(v.body["status"], "partial", "{}", v.body);

    let grid = item(&v, "0");
    assert_eq!(grid["status"], "cleared", "{grid}");
    assert_eq!((grid["width"].as_u64(), grid["height"].as_u64()), (Some(1200), Some(900)), "displayed size");
    assert!(grid["nudity"]["score"].as_f64().is_some(), "scored: {grid}");
    let full = output(grid, "full");
    assert_eq!(full["key"], format!("media/{id}/0/full.jpg").as_str());
    let bytes = fetch_output(full);
    assert_eq!(dims(&bytes), (1200, 900));
    assert!(!contains(&bytes, b"SECRET-MAKE"), "EXIF survived");

    let ten = item(&v, "1");
    assert_eq!(ten["status"], "cleared", "{ten}");
    assert_eq!(output(ten, "full")["content_type"], "image/jpeg");

    let alpha = item(&v, "2");
    assert_eq!(alpha["status"], "cleared", "{alpha}");
    assert_eq!(output(alpha, "full")["content_type"], "image/png");
    assert_eq!(output(alpha, "thumb")["content_type"], "image/png");

    let bomb = item(&v, "3");
    assert_eq!(bomb["reason"]["code"], "input.too_many_pixels", "{bomb}");
    assert!(bomb["reason"]["message"].as_str().unwrap().contains("40000×40000"), "{bomb}");
    let cut = item(&v, "4");
    assert_eq!(cut["reason"]["code"], "input.corrupt", "{cut}");
}

#[test]
fn hlg_120fps_and_iphone_mov_videos() {
    let hlg = tool_output(
        "ffmpeg",
        &[
            "-v", "error", "-f", "lavfi", "-i", "smptehdbars=size=640x360:rate=30:duration=1",
            "-vf", "format=yuv420p,setparams=color_primaries=bt709:color_trc=bt709:colorspace=bt709:range=tv,zscale=t=linear:npl=203,format=gbrpf32le,zscale=p=bt2020,zscale=t=arib-std-b67:m=bt2020nc:r=tv,format=yuv420p10le",
            "-c:v", "libx265", "-preset", "ultrafast", "-x265-params", "log-level=error:colorprim=bt2020:transfer=arib-std-b67:colormatrix=bt2020nc",
            "-color_primaries", "bt2020", "-color_trc", "arib-std-b67", "-colorspace", "bt2020nc", "-tag:v", "hvc1", "{out}",
        ],
        "hlg.mp4",
    );
    let slomo = tool_output(
        "ffmpeg",
        &[
            "-v",
            "error",
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=320x240:rate=120:duration=2",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "{out}",
        ],
        "slomo.mp4",
    );
    let mov = tool_output(
        "ffmpeg",
        &[
            "-v",
            "error",
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=320x240:rate=30:duration=1",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:duration=1",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-c:a",
            "aac",
            "-timecode",
            "01:00:00:00",
            "-metadata",
            "location=+48.8584+002.2945+035.000/",
            "-metadata",
            "com.apple.quicktime.location.ISO6709=+48.8584+002.2945+035.000/",
            "-movflags",
            "use_metadata_tags",
            "-f",
            "mov",
            "{out}",
        ],
        "iphone.mov",
    );
    assert!(contains(&mov, b"48.8584") && contains(&mov, b"tmcd"));
    let (_, v) = run("media", "phones-video", vec![("mp4", hlg), ("mp4", slomo), ("mov", mov)], false);
    assert_eq!(v.body["status"], "cleared", "{}", v.body);

    let hlg_out = ffprobe(&fetch_output(output(item(&v, "0"), "video")), "mp4");
    let s = &hlg_out["streams"][0];
    assert_eq!((s["pix_fmt"].as_str(), s["color_transfer"].as_str()), (Some("yuv420p"), Some("bt709")), "{s}");

    let slomo = item(&v, "1");
    let ms = slomo["duration_ms"].as_u64().unwrap();
    assert!((1950..=2050).contains(&ms), "slow motion keeps its length: {ms} ms");
    let p = ffprobe(&fetch_output(output(slomo, "video")), "mp4");
    assert_eq!(p["streams"][0]["r_frame_rate"], "60/1");

    let mov_out = fetch_output(output(item(&v, "2"), "video"));
    assert!(!contains(&mov_out, b"48.8584") && !contains(&mov_out, b"ISO6709"), "location survived");
    let kinds: Vec<String> = ffprobe(&mov_out, "mp4")["streams"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["codec_type"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(kinds, ["video", "audio"], "no timecode or metadata track");
}

#[test]
fn an_android_amr_voice_note() {
    let amr = amr(3.0, false);
    let gp = {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("v.amr");
        std::fs::write(&src, &amr).unwrap();
        tool_output(
            "ffmpeg",
            &["-v", "error", "-i", src.to_str().unwrap(), "-c", "copy", "-f", "3gp", "{out}"],
            "v.3gp",
        )
    };
    for (ext, bytes) in [("amr", amr), ("3gp", gp)] {
        let (_, v) = run("voice_note", &format!("amr-{ext}"), vec![(ext, bytes)], false);
        assert_eq!(v.body["status"], "cleared", "{ext}: {}", v.body);
        let it = item(&v, "0");
        assert_eq!(it["media_type"], "audio", "{it}");
        let ms = it["duration_ms"].as_u64().unwrap();
        assert!((2950..=3050).contains(&ms), "{ext}: {ms} ms");
        let ogg = fetch_output(output(it, "voice"));
        assert!(ogg.starts_with(b"OggS"));
    }
}
