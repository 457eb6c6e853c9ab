//! Verified video passthrough (contract §4): which clips are copied, that what is copied is the
//! input's own packets with SEI removed in a rebuilt container, and that everything odd goes
//! down the re-encode path. Clips are generated here with the ffmpeg CLI (x264, x265, LAME),
//! outputs checked with ffprobe and with the CLI's own `filter_units` and `md5` muxer.
//!
//! A missing tool fails the test with its name: `make test` installs them.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use mediagate_media::{process_video, Format, MediaError, MediaSettings, Passthrough, VideoPath, VideoSettings};
use sha2::{Digest, Sha256};

fn dir() -> &'static Path {
    static D: OnceLock<tempfile::TempDir> = OnceLock::new();
    D.get_or_init(|| tempfile::Builder::new().prefix("mediagate-passthrough-").tempdir().expect("temp dir")).path()
}

fn run(tool: &str, args: &[&str]) -> std::process::Output {
    let out = Command::new(tool)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("`{tool}` could not be run ({e}): these tests need it; run `make test`"));
    assert!(out.status.success(), "{tool} {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    out
}

fn ffmpeg(args: &[&str]) {
    let mut all = vec!["-hide_banner", "-loglevel", "error", "-nostdin", "-y"];
    all.extend_from_slice(args);
    run("ffmpeg", &all);
}

fn path(name: &str) -> PathBuf {
    dir().join(name)
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap()
}

fn write(name: &str, bytes: &[u8]) -> PathBuf {
    let out = path(name);
    std::fs::write(&out, bytes).unwrap();
    out
}

fn sha(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn probe(path: &Path) -> serde_json::Value {
    let out = run("ffprobe", &["-v", "error", "-print_format", "json", "-show_format", "-show_streams", p(path)]);
    serde_json::from_slice(&out.stdout).unwrap()
}

fn stream<'a>(v: &'a serde_json::Value, kind: &str) -> Vec<&'a serde_json::Value> {
    v["streams"].as_array().unwrap().iter().filter(|s| s["codec_type"] == kind).collect()
}

fn num(v: &serde_json::Value) -> f64 {
    match v {
        serde_json::Value::String(s) => s.parse().unwrap(),
        serde_json::Value::Number(n) => n.as_f64().unwrap(),
        other => panic!("not a number: {other}"),
    }
}

/// The md5 of one stream's packets as the ffmpeg CLI reads them, through `bsf` when given.
fn packets_md5(file: &Path, stream: &str, bsf: Option<&str>) -> String {
    let mut args = vec!["-v", "error", "-i", p(file), "-map", stream, "-c", "copy"];
    if let Some(b) = bsf {
        args.extend_from_slice(&["-bsf", b]);
    }
    args.extend_from_slice(&["-f", "md5", "-"]);
    let out = run("ffmpeg", &args);
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// The md5 of the video stream's NAL units in Annex B form.
fn video_md5(file: &Path) -> String {
    packets_md5(file, "0:v", Some("h264_mp4toannexb"))
}

/// [`video_md5`] of the stream with its SEI removed by the ffmpeg CLI's own `filter_units`.
fn video_md5_without_sei(file: &Path) -> String {
    packets_md5(file, "0:v", Some("h264_mp4toannexb,filter_units=remove_types=6"))
}

/// The md5 of every decoded video frame (the CLI's `framemd5`, timestamps left out).
fn decoded_md5(file: &Path) -> String {
    let out = run("ffmpeg", &["-v", "error", "-i", p(file), "-map", "0:v", "-f", "framemd5", "-"]);
    let lines: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| l.rsplit(',').next().unwrap().trim().to_string())
        .collect();
    assert!(!lines.is_empty());
    lines.join(" ")
}

/// Counts NAL units of `kind` in the first video stream (Annex B after `h264_mp4toannexb`).
fn nal_count(file: &Path, kind: u8) -> usize {
    let raw = path(&format!("{}.h264", file.file_name().unwrap().to_str().unwrap()));
    ffmpeg(&["-i", p(file), "-map", "0:v", "-c", "copy", "-bsf:v", "h264_mp4toannexb", "-f", "h264", p(&raw)]);
    let b = read(&raw);
    b.windows(4).filter(|w| w[0] == 0 && w[1] == 0 && w[2] == 1 && w[3] & 0x1f == kind).count()
}

const SEI: u8 = 6;

fn settings(passthrough: Passthrough) -> MediaSettings {
    MediaSettings { video: VideoSettings { passthrough, ..VideoSettings::DEFAULT }, ..MediaSettings::DEFAULT }
}

fn process(file: &Path, passthrough: Passthrough) -> Result<mediagate_media::VideoOutput, MediaError> {
    let format = if file.extension().is_some_and(|e| e == "mov") { Format::Mov } else { Format::Mp4 };
    process_video(&read(file), format, &settings(passthrough), true)
}

/// A 4 s test pattern, 30 fps, x264 `veryfast` High with B-frames (what a phone app's own
/// compression makes), 1280×720 unless `size` says otherwise; AAC sound unless `audio` says.
fn clip(name: &str, size: &str, video: &[&str], audio: &[&str]) -> PathBuf {
    let out = path(name);
    let src = format!("testsrc2=size={size}:rate=30");
    let mut args =
        vec!["-f", "lavfi", "-i", &src, "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-t", "4"];
    args.extend_from_slice(video);
    args.extend_from_slice(audio);
    args.push(p(&out));
    ffmpeg(&args);
    out
}

const X264: [&str; 8] = ["-c:v", "libx264", "-preset", "veryfast", "-profile:v", "high", "-pix_fmt", "yuv420p"];
const AAC: [&str; 2] = ["-c:a", "aac"];

fn compliant() -> &'static Path {
    static P: OnceLock<PathBuf> = OnceLock::new();
    P.get_or_init(|| clip("in-720p.mp4", "1280x720", &X264, &AAC))
}

fn check_faststart(mp4: &[u8]) {
    let mut at = 0usize;
    let mut order = Vec::new();
    while at + 8 <= mp4.len() {
        let size = u32::from_be_bytes(mp4[at..at + 4].try_into().unwrap()) as usize;
        order.push(String::from_utf8_lossy(&mp4[at + 4..at + 8]).to_string());
        if size < 8 {
            break;
        }
        at += size;
    }
    let moov = order.iter().position(|b| b == "moov").expect("moov");
    let mdat = order.iter().position(|b| b == "mdat").expect("mdat");
    assert!(moov < mdat, "fast start: {order:?}");
}

#[test]
fn a_compliant_720p_h264_aac_clip_is_copied_with_its_sei_removed() {
    let input = compliant();
    assert!(nal_count(input, SEI) > 0, "x264 writes its settings in an SEI");
    let out = process(input, Passthrough::Verified).unwrap();
    assert_eq!(out.path, VideoPath::Copied, "{:?}", out.reencoded_because);
    assert!(out.reencoded_because.is_empty());
    assert_eq!((out.mp4_width, out.mp4_height), (1280, 720));
    check_faststart(&out.mp4);
    let f = write("out-720p.mp4", &out.mp4);

    // The video packets are the input's with SEI removed (compared as Annex B NAL units, so
    // that only their content counts), and decode to the input's frames; the AAC packets are
    // the input's.
    assert_eq!(video_md5(&f), video_md5_without_sei(input), "copied video packets");
    assert_ne!(video_md5(&f), video_md5(input), "the SEI is gone");
    assert_eq!(decoded_md5(&f), decoded_md5(input), "the same pictures");
    assert_eq!(nal_count(&f, SEI), 0);
    assert_eq!(packets_md5(&f, "0:a", None), packets_md5(input, "0:a", None), "copied AAC packets");

    // Rebuilt container: two tracks, no metadata, timeline from 0, the input's duration.
    let (v, i) = (probe(&f), probe(input));
    assert_eq!(v["streams"].as_array().unwrap().len(), 2);
    assert_eq!(stream(&v, "video")[0]["profile"], "High");
    for t in std::iter::once(&v["format"]["tags"]).chain(v["streams"].as_array().unwrap().iter().map(|s| &s["tags"])) {
        let t = t.as_object().unwrap();
        assert!(!t.contains_key("encoder") && !t.contains_key("creation_time"), "{t:?}");
    }
    assert!(!out.mp4.windows(4).any(|w| w == b"x264"), "no encoder string left anywhere");
    assert_eq!(num(&stream(&v, "video")[0]["start_time"]), 0.0);
    let (d_out, d_in) = (num(&v["format"]["duration"]), num(&i["format"]["duration"]));
    assert!((d_out - d_in).abs() < 0.034, "duration {d_out} vs {d_in}");
    assert!((3_950..=4_100).contains(&out.duration_ms), "{}", out.duration_ms);
    run("ffmpeg", &["-v", "error", "-xerror", "-i", p(&f), "-f", "null", "-"]);

    // Poster, classifier frames and their PDQ as for the re-encoded clip: the same decode.
    let re = process(input, Passthrough::Off).unwrap();
    assert_eq!(re.path, VideoPath::Reencoded);
    assert_eq!(out.poster, re.poster);
    assert_eq!(out.blurhash, re.blurhash);
    assert_eq!(out.frames, re.frames);
    assert_eq!(out.frame_hashes, re.frame_hashes);
    assert_eq!(out.hash, re.hash);
    assert_eq!(out.duration_ms, re.duration_ms);
    assert_ne!(sha(&out.mp4), sha(&re.mp4));

    // Deterministic on both paths.
    assert_eq!(sha(&process(input, Passthrough::Verified).unwrap().mp4), sha(&out.mp4));
    assert_eq!(sha(&process(input, Passthrough::Off).unwrap().mp4), sha(&re.mp4));
}

#[test]
fn mp3_in_a_mov_beside_h264_keeps_the_video_and_makes_the_sound_aac() {
    let input = clip("in-mp3.mov", "1280x720", &X264, &["-c:a", "libmp3lame"]);
    let out = process(&input, Passthrough::Verified).unwrap();
    assert_eq!(out.path, VideoPath::AudioReencoded, "{:?}", out.reencoded_because);
    let f = write("out-mp3.mp4", &out.mp4);
    assert_eq!(video_md5(&f), video_md5_without_sei(&input));
    let v = probe(&f);
    assert_eq!(stream(&v, "audio")[0]["codec_name"], "aac");
    let (d_out, d_in) = (num(&v["format"]["duration"]), num(&probe(&input)["format"]["duration"]));
    assert!((d_out - d_in).abs() < 0.1, "duration {d_out} vs {d_in}");
}

#[test]
fn aac_is_copied_beside_a_reencoded_hevc_track() {
    let input = clip("in-hevc.mp4", "1280x720", &["-c:v", "libx265", "-preset", "ultrafast", "-tag:v", "hvc1"], &AAC);
    let out = process(&input, Passthrough::Verified).unwrap();
    assert_eq!(out.path, VideoPath::VideoReencoded, "{:?}", out.reencoded_because);
    assert!(out.reencoded_because[0].starts_with("video: hevc"), "{:?}", out.reencoded_because);
    let f = write("out-hevc.mp4", &out.mp4);
    let v = probe(&f);
    assert_eq!(stream(&v, "video")[0]["codec_name"], "h264");
    assert_eq!(packets_md5(&f, "0:a", None), packets_md5(&input, "0:a", None), "copied AAC packets");
}

#[test]
fn over_the_bound_rotated_or_off_is_reencoded() {
    let big = clip("in-1080p.mp4", "1920x1080", &X264, &AAC);
    let out = process(&big, Passthrough::Verified).unwrap();
    assert_eq!(out.path, VideoPath::VideoReencoded);
    assert_eq!((out.mp4_width, out.mp4_height), (1280, 720));
    assert!(out.reencoded_because[0].contains("not within the bound"), "{:?}", out.reencoded_because);

    // Stored landscape, displayed portrait: the rotation goes into the pixels.
    let rotated = path("in-rotated.mp4");
    ffmpeg(&["-i", p(compliant()), "-c", "copy", "-metadata:s:v:0", "rotate=90", p(&rotated)]);
    let out = process(&rotated, Passthrough::Verified).unwrap();
    assert_eq!(out.path, VideoPath::VideoReencoded, "{:?}", out.reencoded_because);
    assert_eq!((out.mp4_width, out.mp4_height), (720, 1280));
    assert!(out.reencoded_because[0].contains("display matrix"), "{:?}", out.reencoded_because);
    let v = probe(&write("out-rotated.mp4", &out.mp4));
    assert!(stream(&v, "video")[0]["side_data_list"].is_null(), "no display matrix left");

    let out = process(compliant(), Passthrough::Off).unwrap();
    assert_eq!(out.path, VideoPath::Reencoded);
    assert_eq!(
        out.reencoded_because,
        vec!["video: MEDIAGATE_VIDEO_PASSTHROUGH is off", "audio: MEDIAGATE_VIDEO_PASSTHROUGH is off"]
    );
}

#[test]
fn an_edit_list_that_drops_the_first_second_is_not_copied() {
    // `-ss 1` with stream copy keeps the packets from the keyframe at 0 and writes an edit list
    // that starts the timeline at 1 s: the demuxer marks the first second's packets to discard.
    let cut = path("in-edit.mp4");
    ffmpeg(&["-ss", "1", "-i", p(compliant()), "-c", "copy", p(&cut)]);
    let out = process(&cut, Passthrough::Verified).unwrap();
    assert_eq!(out.path, VideoPath::Reencoded, "{:?}", out.reencoded_because);
    assert!(out.reencoded_because[0].contains("edit list drops 30 frame"), "{:?}", out.reencoded_because);
    assert!(out.reencoded_because[1].contains("edit list drops"), "the sound is cut too: {:?}", out.reencoded_because);
    assert!((2_900..=3_100).contains(&out.duration_ms), "the dropped second stays dropped: {}", out.duration_ms);
    let v = probe(&write("out-edit.mp4", &out.mp4));
    let d = num(&v["format"]["duration"]);
    assert!((2.9..=3.1).contains(&d), "{d}");
}

/// `(size, position)` of each video packet of a file, as ffprobe reports them.
fn video_packets(file: &Path) -> Vec<(usize, usize)> {
    let out = run(
        "ffprobe",
        &["-v", "error", "-select_streams", "v", "-show_entries", "packet=pos,size", "-of", "csv=p=0", p(file)],
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let (size, pos) = l.split_once(',').unwrap();
            (size.parse().unwrap(), pos.parse().unwrap())
        })
        .collect()
}

/// Offsets of the NAL units of `kind` in each video packet of an MP4 (4-byte AVCC lengths).
fn nals_in_packets(file: &Path, kind: u8) -> Vec<Vec<usize>> {
    let bytes = read(file);
    video_packets(file)
        .into_iter()
        .map(|(size, pos)| {
            let mut found = Vec::new();
            let mut at = pos;
            while at + 5 <= pos + size {
                let len = u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
                if bytes[at + 4] & 0x1f == kind {
                    found.push(at + 4);
                }
                at += 4 + len;
            }
            found
        })
        .collect()
}

#[test]
fn sps_values_beyond_level_4_2_send_the_clip_to_the_reencode_path() {
    // 16 reference frames at 720p while the SPS says level 4.1 (whose picture buffer holds 9 at
    // this size): x264 warns and writes it anyway, and FFmpeg's own probe reports `refs=1`.
    // The SPS itself says 16, and the clip is re-encoded.
    let mut video = X264.to_vec();
    video.extend_from_slice(&["-x264-params", "ref=16:level=4.1"]);
    let input = clip("in-refs.mp4", "1280x720", &video, &AAC);
    let out = process(&input, Passthrough::Verified).unwrap();
    assert_eq!(out.path, VideoPath::VideoReencoded, "{:?}", out.reencoded_because);
    assert!(out.reencoded_because[0].contains("reference frames"), "{:?}", out.reencoded_because);
    let v = probe(&write("out-refs.mp4", &out.mp4));
    assert_eq!(stream(&v, "video")[0]["color_primaries"], "bt709", "re-encoded by us: {}", stream(&v, "video")[0]);
    assert_eq!(packets_md5(&write("out-refs.mp4", &out.mp4), "0:a", None), packets_md5(&input, "0:a", None));
}

#[test]
fn damaged_packets_are_never_copied() {
    // x264 with HRD signalling writes a picture-timing SEI in every frame. Damage the SEI of
    // three frames in the middle (a payload size past the end of the NAL), then, separately,
    // the picture data of three frames: the verifying decode refuses both. The pictures of the
    // first still decode, so it is re-encoded; the second's do not, so it is `input.corrupt`.
    let mut video = X264.to_vec();
    video.extend_from_slice(&["-x264-params", "nal-hrd=vbr:vbv-maxrate=4000:vbv-bufsize=4000"]);
    let clean = clip("in-hrd.mp4", "1280x720", &video, &AAC);
    let copied = process(&clean, Passthrough::Verified).unwrap();
    assert_eq!(copied.path, VideoPath::Copied, "the undamaged clip is copied: {:?}", copied.reencoded_because);
    let f = write("out-hrd.mp4", &copied.mp4);
    assert_eq!(nal_count(&f, SEI), 0, "the HRD SEI are removed too");
    assert_eq!(decoded_md5(&f), decoded_md5(&clean));

    let seis = nals_in_packets(&clean, SEI);
    let mut bytes = read(&clean);
    for frame in [55, 60, 65] {
        let at = *seis[frame].first().expect("an SEI in every frame");
        bytes[at + 2] = 0xFE; // payload size byte (after the header and the payload type)
    }
    // The pictures themselves decode (their decoder only warns about the SEI): not copied, but
    // re-encoded from intact pixels.
    let out = process_video(&bytes, Format::Mp4, &settings(Passthrough::Verified), true).expect("re-encoded");
    assert_eq!(out.path, VideoPath::VideoReencoded, "a stream with a damaged SEI is never copied");
    assert!(out.reencoded_because.iter().any(|r| r.starts_with("video:")), "{:?}", out.reencoded_because);

    let mut bytes = read(compliant());
    let packets = video_packets(compliant());
    let mut x = 0x9E37_79B9u32;
    for &(size, pos) in &packets[60..63] {
        for b in &mut bytes[pos + size / 3..pos + 2 * size / 3] {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            *b = x as u8;
        }
    }
    let err = process_video(&bytes, Format::Mp4, &settings(Passthrough::Verified), true).unwrap_err();
    assert!(matches!(err, MediaError::Corrupt { .. }), "{err:?}");
}

#[test]
fn a_spliced_clip_whose_sps_changes_fails_verification_and_is_reencoded_whole() {
    // Two halves encoded apart (levels 3.1 and 4.0: two different SPS), each with its
    // parameter sets in band, joined with `-c copy` as a trim-and-join editor does: the
    // header's SPS is the first half's, and the second half brings its own. FFmpeg decodes the
    // join cleanly, so it is not damaged; but what would be copied is not what the header says,
    // so the verifying decode refuses it and the clip goes down the re-encode path, whole.
    let half = |name: &str, level: &'static str| {
        let mut v = X264.to_vec();
        v.extend_from_slice(&["-level:v", level, "-x264-params", "repeat-headers=1"]);
        clip(name, "1280x720", &v, &AAC)
    };
    let first = half("splice-a.mp4", "3.1");
    let second = half("splice-b.mp4", "4.0");
    assert!(!nals_in_packets(&second, 7)[0].is_empty(), "the halves carry their SPS in band");
    let list = write("splice.txt", format!("file '{}'\nfile '{}'\n", p(&first), p(&second)).as_bytes());
    let joined = path("splice.mp4");
    ffmpeg(&["-f", "concat", "-safe", "0", "-i", p(&list), "-c", "copy", p(&joined)]);

    let out = process(&joined, Passthrough::Verified).unwrap();
    assert!(matches!(out.path, VideoPath::VideoReencoded | VideoPath::Reencoded), "{:?}", out.path);
    assert!(
        out.reencoded_because.iter().any(|r| r.contains("SPS unlike the header's")),
        "the reason names the changed SPS: {:?}",
        out.reencoded_because
    );
    let v = probe(&write("out-splice.mp4", &out.mp4));
    let video = stream(&v, "video")[0];
    assert!((num(&video["duration"]) - 8.0).abs() < 0.1, "both halves are in the output: {video}");
    assert_eq!(video["color_primaries"], "bt709", "encoded by us: {video}");
    // The same decode made the poster and the frames as on the re-encode path.
    let off = process(&joined, Passthrough::Off).unwrap();
    assert_eq!(out.poster.bytes, off.poster.bytes);
    assert_eq!(out.frame_hashes, off.frame_hashes);
}

#[test]
fn an_untagged_clip_is_read_as_players_read_it_bt709_when_hd_bt601_below() {
    // The same pixels twice: tagged with their matrix, and with the tag cleared from the SPS
    // (`h264_metadata`, matrix 2 = unspecified). Read as players do, the untagged one must give
    // the poster and the frames the tagged one gives.
    for (size, matrix, code) in [("1280x720", "bt709", "1"), ("640x480", "smpte170m", "6")] {
        let mut v = X264.to_vec();
        let vf = format!("scale=out_color_matrix={}:out_range=tv", if code == "1" { "bt709" } else { "bt601" });
        v.extend_from_slice(&["-vf", &vf, "-colorspace", matrix, "-color_range", "tv"]);
        let tagged = clip(&format!("tagged-{size}.mp4"), size, &v, &AAC);
        let untagged = path(&format!("untagged-{size}.mp4"));
        ffmpeg(&[
            "-i",
            p(&tagged),
            "-c",
            "copy",
            "-bsf:v",
            "h264_metadata=matrix_coefficients=2:colour_primaries=2:transfer_characteristics=2",
            p(&untagged),
        ]);
        let probe_matrix = |f: &Path| stream(&probe(f), "video")[0]["color_space"].clone();
        assert_eq!(probe_matrix(&tagged), matrix);
        assert!(probe_matrix(&untagged).is_null(), "the tag is gone: {}", probe_matrix(&untagged));
        let a = process(&tagged, Passthrough::Off).unwrap();
        let b = process(&untagged, Passthrough::Off).unwrap();
        assert!(a.poster.bytes == b.poster.bytes, "{size}: the untagged poster is read with {matrix}");
        assert_eq!(a.frame_hashes, b.frame_hashes, "{size}");
    }
}
