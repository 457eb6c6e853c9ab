//! Audio and video pipelines end to end, on media generated here with espeak-ng, sox and the
//! ffmpeg CLI (never downloaded), outputs checked with ffprobe and the ffmpeg CLI's decoders.
//!
//! A missing tool fails the test with its name: `make test` installs them.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use mediagate_media::{
    probe_av, process_video, process_voice, sample_frames, sniff, Format, FrameSampling, Limits, MediaClass,
    MediaError, MediaSettings, VideoSettings, VoiceSettings,
};
use sha2::{Digest, Sha256};

// ---------------------------------------------------------------------------------------------
// fixtures

fn dir() -> &'static Path {
    static D: OnceLock<tempfile::TempDir> = OnceLock::new();
    D.get_or_init(|| tempfile::Builder::new().prefix("mediagate-av-tests-").tempdir().expect("temp dir")).path()
}

/// Runs a tool; a missing tool is a test failure that names it.
fn run(tool: &str, args: &[&str]) -> std::process::Output {
    let out = Command::new(tool)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("`{tool}` could not be run ({e}): it is required by these tests; run `make test` (scripts/setup-deps.sh installs it)"));
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

macro_rules! fixture {
    ($name:ident, $file:expr, |$out:ident| $make:block) => {
        fn $name() -> &'static Path {
            static P: OnceLock<PathBuf> = OnceLock::new();
            P.get_or_init(|| {
                let $out = path($file);
                $make
                $out
            })
        }
    };
}

fixture!(speech_wav, "speech.wav", |out| {
    run("espeak-ng", &["-w", p(&out), "Hello, this is a voice note for the media pipeline. It should come out as Ogg Opus, mono, at forty eight kilohertz."]);
});

fn speech_as(name: &str, args: &[&str]) -> PathBuf {
    let out = path(name);
    let mut a = vec!["-i", p(speech_wav())];
    a.extend_from_slice(args);
    a.push(p(&out));
    ffmpeg(&a);
    out
}

/// The speech with a cover picture (an attached picture, not a video track).
fn speech_with_cover(name: &str, args: &[&str]) -> PathBuf {
    let cover = path("cover.png");
    if !cover.exists() {
        ffmpeg(&["-f", "lavfi", "-i", "color=c=blue:s=300x300:d=1", "-frames:v", "1", p(&cover)]);
    }
    let out = path(name);
    let mut a =
        vec!["-i", p(speech_wav()), "-i", p(&cover), "-map", "0", "-map", "1", "-disposition:v", "attached_pic"];
    a.extend_from_slice(args);
    a.push(p(&out));
    ffmpeg(&a);
    out
}

fixture!(speech_opus, "speech.opus.ogg", |out| {
    ffmpeg(&["-i", p(speech_wav()), "-c:a", "libopus", "-b:a", "32k", "-f", "ogg", p(&out)]);
});

fn tone(name: &str, seconds: &str, rate: &str) -> PathBuf {
    let out = path(name);
    run("sox", &["-n", "-r", rate, "-c", "1", "-b", "16", p(&out), "synth", seconds, "sine", "300-900", "vol", "0.5"]);
    out
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap()
}

fn sha(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn write(name: &str, bytes: &[u8]) -> PathBuf {
    let out = path(name);
    std::fs::write(&out, bytes).unwrap();
    out
}

/// ffprobe's JSON for a file: streams and format.
fn probe(path: &Path) -> serde_json::Value {
    let out = run("ffprobe", &["-v", "error", "-print_format", "json", "-show_format", "-show_streams", p(path)]);
    serde_json::from_slice(&out.stdout).unwrap()
}

fn streams<'a>(v: &'a serde_json::Value, kind: &str) -> Vec<&'a serde_json::Value> {
    v["streams"].as_array().unwrap().iter().filter(|s| s["codec_type"] == kind).collect()
}

fn num(v: &serde_json::Value) -> f64 {
    match v {
        serde_json::Value::String(s) => s.parse().unwrap(),
        serde_json::Value::Number(n) => n.as_f64().unwrap(),
        other => panic!("not a number: {other}"),
    }
}

fn voice(path: &Path) -> Result<mediagate_media::VoiceOutput, MediaError> {
    let bytes = read(path);
    let format = sniff(&bytes).expect("sniffed");
    process_voice(&bytes, format, &MediaSettings::default())
}

/// Checks a voice output with ffprobe and returns its duration in ms.
fn check_voice_output(out: &mediagate_media::VoiceOutput, name: &str) -> f64 {
    assert_eq!(out.waveform.len(), 100);
    assert!(out.waveform.iter().all(|&v| v <= 31));
    assert_eq!(out.waveform.iter().max(), Some(&31), "normalised to the clip's peak");
    assert!(out.ogg.starts_with(b"OggS"));
    let f = write(name, &out.ogg);
    let v = probe(&f);
    let a = streams(&v, "audio");
    assert_eq!(a.len(), 1);
    assert_eq!(a[0]["codec_name"], "opus");
    assert_eq!(a[0]["channels"], 1);
    assert_eq!(num(&a[0]["sample_rate"]), 48000.0);
    assert_eq!(v["format"]["format_name"], "ogg");
    let dur = num(&v["format"]["duration"]) * 1000.0;
    assert!((dur - out.duration_ms as f64).abs() <= 150.0, "ffprobe says {dur} ms, we said {} ms", out.duration_ms);
    // And a real decoder reads it to the end without complaint.
    run("ffmpeg", &["-v", "error", "-xerror", "-i", p(&f), "-f", "null", "-"]);
    dur
}

// ---------------------------------------------------------------------------------------------
// voice notes

#[test]
fn voice_every_accepted_format() {
    let speech_ms = {
        let v = probe(speech_wav());
        num(&v["format"]["duration"]) * 1000.0
    };
    let inputs: Vec<(&str, PathBuf, Format)> = vec![
        ("Ogg Opus", speech_opus().to_path_buf(), Format::Ogg),
        ("Ogg Vorbis", speech_as("speech.vorbis.ogg", &["-c:a", "libvorbis", "-f", "ogg"]), Format::Ogg),
        ("WebM Opus", speech_as("speech.webm", &["-c:a", "libopus", "-f", "webm"]), Format::WebmAudio),
        ("MP3", speech_as("speech.mp3", &["-c:a", "libmp3lame", "-b:a", "64k"]), Format::Mp3),
        ("M4A AAC", speech_as("speech.m4a", &["-c:a", "aac", "-b:a", "64k"]), Format::M4a),
        ("MP4 AAC (audio only)", speech_as("speech-audio.mp4", &["-c:a", "aac", "-f", "mp4"]), Format::M4a),
        ("WAV", speech_wav().to_path_buf(), Format::Wav),
        ("FLAC", speech_as("speech.flac", &["-c:a", "flac"]), Format::Flac),
        (
            "MP3 with cover art",
            speech_with_cover("speech-cover.mp3", &["-c:a", "libmp3lame", "-c:v", "png", "-id3v2_version", "3"]),
            Format::Mp3,
        ),
        ("M4A with cover art", speech_with_cover("speech-cover.m4a", &["-c:a", "aac", "-c:v", "mjpeg"]), Format::M4a),
        // What browsers' MediaRecorder and streaming recorders write: sizes unknown, no cues.
        (
            "WebM Opus (live)",
            speech_as("speech-live.webm", &["-c:a", "libopus", "-f", "webm", "-live", "1"]),
            Format::WebmAudio,
        ),
        (
            "fragmented MP4 AAC",
            speech_as("speech-frag.mp4", &["-c:a", "aac", "-movflags", "frag_keyframe+empty_moov", "-f", "mp4"]),
            Format::M4a,
        ),
    ];
    for (label, file, format) in inputs {
        let bytes = read(&file);
        assert_eq!(sniff(&bytes), Some(format), "{label} sniffed");
        assert_eq!(format.media_class(), MediaClass::Audio, "{label} is audio");
        let out = process_voice(&bytes, format, &MediaSettings::default()).unwrap_or_else(|e| panic!("{label}: {e}"));
        // Encoders pad (MP3, AAC, Opus add up to a few tens of ms): the input's own length ±150 ms.
        assert!(
            (out.duration_ms as f64 - speech_ms).abs() < 150.0,
            "{label}: {} ms vs {speech_ms} ms",
            out.duration_ms
        );
        check_voice_output(&out, &format!("out-{}.ogg", label.replace(' ', "_")));
    }
}

#[test]
fn voice_amr_nb_and_wb_as_android_recorders_write_them() {
    // Bare .amr files (hand-written frames: no AMR encoder in Debian's FFmpeg) and the same
    // streams copied into 3GP by the ffmpeg CLI, as Android's recorder stores them.
    for (wideband, codec) in [(false, "amr_nb"), (true, "amr_wb")] {
        let amr = write(&format!("voice-{codec}.amr"), &mediagate_testkit::media::amr(4.0, wideband));
        let gp = path(&format!("voice-{codec}.3gp"));
        ffmpeg(&["-i", p(&amr), "-c", "copy", "-f", "3gp", p(&gp)]);
        assert_eq!(streams(&probe(&gp), "audio")[0]["codec_name"], codec);
        // An audio-only 3GP is sniffed as what it is, an MPEG-4 audio file (no video track).
        for (file, format) in [(&amr, Format::Amr), (&gp, Format::M4a)] {
            let bytes = read(file);
            assert_eq!(sniff(&bytes), Some(format));
            let out = process_voice(&bytes, format, &MediaSettings::default())
                .unwrap_or_else(|e| panic!("{codec} in {format:?}: {e}"));
            assert!((out.duration_ms as i64 - 4000).abs() <= 40, "{codec} in {format:?}: {} ms", out.duration_ms);
            check_voice_output(&out, &format!("out-{codec}-{format:?}.ogg"));
        }
    }
}

#[test]
fn voice_limit_is_measured_by_decoding() {
    // 59.9 s passes (AAC in M4A, whose priming/padding the allowance covers).
    let src = tone("tone-59.9.wav", "59.9", "16000");
    let m4a = path("tone-59.9.m4a");
    ffmpeg(&["-i", p(&src), "-c:a", "aac", "-b:a", "48k", p(&m4a)]);
    let out = voice(&m4a).expect("59.9 s passes");
    assert!((59_850..=60_100).contains(&out.duration_ms), "{}", out.duration_ms);
    check_voice_output(&out, "out-59.9.ogg");

    // 61 s (WAV) and 75 s (Ogg Opus) fail, and decoding stops soon after the limit.
    let wav61 = tone("tone-61.wav", "61", "16000");
    let ogg75 = path("tone-75.ogg");
    ffmpeg(&["-i", p(&tone("tone-75.wav", "75", "16000")), "-c:a", "libopus", "-b:a", "16k", p(&ogg75)]);
    for f in [&wav61, &ogg75] {
        match voice(f) {
            Err(MediaError::TooLong { duration_ms, limit_ms, .. }) => {
                assert_eq!(limit_ms, 60_000);
                assert!((60_250..61_000).contains(&duration_ms), "stopped at {duration_ms} ms");
            }
            other => panic!("{}: expected TooLong, got {other:?}", f.display()),
        }
        assert!(matches!(voice(f).unwrap_err(), MediaError::TooLong { .. }));
    }
}

#[test]
fn voice_two_hours_are_not_decoded_whole() {
    // 2 h of Opus: one minute encoded, then repeated by stream copy (cheap to make).
    let minute = path("one-minute.ogg");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "anoisesrc=d=60:r=8000:a=0.1",
        "-c:a",
        "libopus",
        "-b:a",
        "6k",
        "-application",
        "voip",
        p(&minute),
    ]);
    let src = path("two-hours.ogg");
    ffmpeg(&["-stream_loop", "119", "-i", p(&minute), "-c", "copy", p(&src)]);
    let declared = num(&probe(&src)["format"]["duration"]);
    assert!(declared > 7_000.0, "fixture is {declared} s");
    let t = Instant::now();
    let err = voice(&src).unwrap_err();
    assert!(matches!(err, MediaError::TooLong { .. }), "{err:?}");
    assert!(t.elapsed() < Duration::from_secs(5), "took {:?}", t.elapsed());
}

#[test]
fn voice_lying_wav_is_measured_by_what_it_holds() {
    // 90 s of audio whose data chunk (and RIFF size) declare 10 s.
    let src = tone("lying-90.wav", "90", "8000");
    let mut b = read(&src);
    let data = b.windows(4).position(|w| w == b"data").expect("data chunk");
    let declared: u32 = 10 * 8000 * 2;
    b[data + 4..data + 8].copy_from_slice(&declared.to_le_bytes());
    let riff = (data as u32 + 8 + declared) - 8;
    b[4..8].copy_from_slice(&riff.to_le_bytes());
    let lying = write("lying.wav", &b);
    // Headers indeed claim 10 s.
    let claimed = num(&probe(&lying)["format"]["duration"]);
    assert!((claimed - 10.0).abs() < 0.1, "ffprobe reads {claimed} s");
    match voice(&lying) {
        Err(MediaError::TooLong { duration_ms, .. }) => assert!(duration_ms > 60_250),
        other => panic!("a WAV holding 90 s must not pass as 10 s: {other:?}"),
    }
    // A WAV holding 30 s but declaring 10 s is measured (and transcoded) as 30 s.
    let src = tone("lying-30.wav", "30", "8000");
    let mut b = read(&src);
    let data = b.windows(4).position(|w| w == b"data").unwrap();
    b[data + 4..data + 8].copy_from_slice(&declared.to_le_bytes());
    let out = voice(&write("lying-30-10.wav", &b)).unwrap();
    assert!((29_900..=30_100).contains(&out.duration_ms), "{}", out.duration_ms);
    check_voice_output(&out, "out-lying-30.ogg");
}

#[test]
fn voice_truncated_or_garbage_is_corrupt() {
    let cut = |src: &Path, name: &str| {
        let b = read(src);
        write(name, &b[..b.len() * 6 / 10])
    };
    let cases = [
        ("Ogg Opus", cut(speech_opus(), "cut.ogg")),
        ("M4A (moov at the end)", cut(&speech_as("speech-cut-src.m4a", &["-c:a", "aac"]), "cut.m4a")),
        (
            "M4A (fast start)",
            cut(&speech_as("speech-fs.m4a", &["-c:a", "aac", "-movflags", "+faststart"]), "cut-fs.m4a"),
        ),
        ("FLAC", cut(&speech_as("speech-cut-src.flac", &["-c:a", "flac"]), "cut.flac")),
        ("WebM", cut(&speech_as("speech-cut-src.webm", &["-c:a", "libopus", "-f", "webm"]), "cut.webm")),
        ("WAV", cut(speech_wav(), "cut.wav")),
    ];
    for (label, f) in cases {
        match voice(&f) {
            Err(MediaError::Corrupt { message }) => {
                assert!(!message.is_empty(), "{label}");
                eprintln!("{label}: {message}");
            }
            other => panic!("{label}: expected Corrupt, got {other:?}"),
        }
    }
    // Garbage after a valid Ogg page header.
    let mut g = read(speech_opus())[..200].to_vec();
    g.extend(std::iter::repeat_n(0x5Au8, 5000));
    let err = process_voice(&g, Format::Ogg, &MediaSettings::default()).unwrap_err();
    assert!(matches!(err, MediaError::Corrupt { .. }), "{err:?}");
}

#[test]
fn voice_is_deterministic_and_refuses_video() {
    let bytes = read(&speech_as("speech-det.m4a", &["-c:a", "aac"]));
    let a = process_voice(&bytes, Format::M4a, &MediaSettings::default()).unwrap();
    let b = process_voice(&bytes, Format::M4a, &MediaSettings::default()).unwrap();
    assert_eq!(sha(&a.ogg), sha(&b.ogg));
    assert_eq!(a.waveform, b.waveform);
    // Bitrate is honoured (24 kb/s default vs 64 kb/s).
    let hi = process_voice(
        &bytes,
        Format::M4a,
        &MediaSettings { voice: VoiceSettings { bitrate: 64_000, ..VoiceSettings::DEFAULT }, ..MediaSettings::DEFAULT },
    )
    .unwrap();
    assert!(hi.ogg.len() > a.ogg.len() * 3 / 2, "{} vs {}", hi.ogg.len(), a.ogg.len());
    // A video is not a voice note.
    let v = read(no_audio_mp4());
    let err = process_voice(&v, Format::Mp4, &MediaSettings::default()).unwrap_err();
    assert!(
        matches!(
            err,
            MediaError::Unsupported { .. } | MediaError::Unrecognized { .. } | MediaError::UnsupportedCodec { .. }
        ),
        "{err:?}"
    );
}

#[test]
fn voice_budget_gives_a_clear_error() {
    let bytes = read(speech_opus());
    let s = MediaSettings {
        voice: VoiceSettings { budget: Duration::from_nanos(1), ..VoiceSettings::DEFAULT },
        ..MediaSettings::DEFAULT
    };
    let err = process_voice(&bytes, Format::Ogg, &s).unwrap_err();
    assert!(matches!(err, MediaError::TimedOut { .. }), "{err:?}");
}

#[test]
fn probe_refines_audio_only_containers() {
    let webm = read(&speech_as("probe.webm", &["-c:a", "libopus", "-f", "webm"]));
    let p = probe_av(&webm, Format::WebmAudio).unwrap();
    assert!(p.has_audio && !p.has_video);
    assert_eq!(p.media_class(), MediaClass::Audio);
    let mp4 = read(video_1080p());
    let p = probe_av(&mp4, Format::Mp4).unwrap();
    assert!(p.has_audio && p.has_video);
    assert_eq!((p.width, p.height), (1920, 1080));
    assert_eq!(p.video_codec.as_deref(), Some("h264"));
    assert_eq!(p.media_class(), MediaClass::Video);
}

// ---------------------------------------------------------------------------------------------
// videos

fixture!(video_1080p, "in-1080p.mov", |out| {
    // QuickTime with GPS (©xyz) and creation_time, as an iPhone writes them.
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=1920x1080:rate=30:duration=2",
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=440:sample_rate=48000:duration=2",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-pix_fmt",
        "yuv420p",
        "-c:a",
        "aac",
        "-ac",
        "2",
        "-metadata",
        "location=+48.8584+002.2945/",
        "-metadata",
        "creation_time=2024-05-01T10:00:00Z",
        "-f",
        "mov",
        p(&out),
    ]);
});

fixture!(no_audio_mp4, "in-noaudio.mp4", |out| {
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=320x240:rate=25:duration=1",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-pix_fmt",
        "yuv420p",
        p(&out),
    ]);
});

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
fn video_1080p_h264_aac_to_720p_without_metadata() {
    let bytes = read(video_1080p());
    assert_eq!(sniff(&bytes), Some(Format::Mov));
    let inp = probe(video_1080p());
    assert!(inp["format"]["tags"]["location"].is_string(), "fixture carries GPS: {}", inp["format"]);
    let out = process_video(&bytes, Format::Mov, &MediaSettings::DEFAULT, true).unwrap();
    assert_eq!((out.width, out.height), (1920, 1080));
    assert_eq!((out.mp4_width, out.mp4_height), (1280, 720));
    assert!(out.has_audio);
    assert!((1_950..=2_100).contains(&out.duration_ms), "{}", out.duration_ms);
    check_faststart(&out.mp4);

    let f = write("out-1080p.mp4", &out.mp4);
    let v = probe(&f);
    let vs = streams(&v, "video");
    let a = streams(&v, "audio");
    assert_eq!(vs.len(), 1);
    assert_eq!(vs[0]["codec_name"], "h264");
    assert_eq!(vs[0]["pix_fmt"], "yuv420p");
    assert_eq!((vs[0]["width"].as_u64(), vs[0]["height"].as_u64()), (Some(1280), Some(720)));
    assert_eq!(a.len(), 1);
    assert_eq!(a[0]["codec_name"], "aac");
    assert_eq!(a[0]["channels"], 2);
    assert_eq!(num(&a[0]["sample_rate"]), 48000.0);
    let dur = num(&v["format"]["duration"]) * 1000.0;
    assert!((dur - out.duration_ms as f64).abs() < 150.0, "{dur} vs {}", out.duration_ms);
    // Metadata removed: no GPS, no creation time, anywhere in the file.
    let mut tags = vec![&v["format"]["tags"]];
    tags.extend(v["streams"].as_array().unwrap().iter().map(|s| &s["tags"]));
    for t in tags {
        let t = t.as_object().unwrap();
        assert!(!t.contains_key("location") && !t.contains_key("creation_time") && !t.contains_key("encoder"), "{t:?}");
    }
    assert!(!format!("{v}").contains("48.8584"));
    assert!(!out.mp4.windows(4).any(|w| w == b"\xa9xyz"));
    assert!(!out.mp4.windows(7).any(|w| w == b"48.8584"));
    run("ffmpeg", &["-v", "error", "-xerror", "-i", p(&f), "-f", "null", "-"]);

    // Poster: a JPEG of the encoded size, with a BlurHash; frames for the classifier.
    assert!(out.poster.bytes.starts_with(&[0xFF, 0xD8, 0xFF]));
    assert_eq!((out.poster.width, out.poster.height), (1280, 720));
    let pf = write("out-poster.jpg", &out.poster.bytes);
    let pv = probe(&pf);
    assert_eq!(streams(&pv, "video")[0]["codec_name"], "mjpeg");
    assert_eq!(out.blurhash.len(), 28, "4×3 components: {}", out.blurhash);
    assert!(!out.frames.is_empty() && out.frames.len() <= 16);
    assert!(out.frames[0].poster);
    assert_eq!(out.frames.iter().filter(|f| f.poster).count(), 1);
    for fr in &out.frames {
        assert_eq!((fr.width, fr.height), (512, 288));
        assert_eq!(fr.data.len(), 512 * 288 * 3);
    }
    // One a second over 2 s: t=0 and t=1 s, plus the poster (at 0.2 s: 10 % in).
    assert_eq!(out.frames.len(), 3, "{:?}", out.frames.iter().map(|f| f.timestamp_ms).collect::<Vec<_>>());
}

#[test]
fn video_vp9_opus_webm() {
    let src = path("in-vp9.webm");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=640x360:rate=24:duration=1.5",
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=300:sample_rate=48000:duration=1.5",
        "-c:v",
        "libvpx-vp9",
        "-deadline",
        "realtime",
        "-cpu-used",
        "8",
        "-b:v",
        "300k",
        "-c:a",
        "libopus",
        "-ac",
        "1",
        p(&src),
    ]);
    let bytes = read(&src);
    assert_eq!(sniff(&bytes), Some(Format::Webm));
    let out = process_video(&bytes, Format::Webm, &MediaSettings::default(), false).unwrap();
    assert_eq!((out.width, out.height), (640, 360));
    assert_eq!((out.mp4_width, out.mp4_height), (640, 360), "never upscaled");
    assert!(out.has_audio);
    assert!((1_450..=1_600).contains(&out.duration_ms), "{}", out.duration_ms);
    let v = probe(&write("out-vp9.mp4", &out.mp4));
    assert_eq!(streams(&v, "video")[0]["codec_name"], "h264");
    let a = streams(&v, "audio");
    assert_eq!(a[0]["codec_name"], "aac");
    assert_eq!(a[0]["channels"], 1);
}

#[test]
fn video_hevc_10bit_like_an_iphone() {
    // HEVC Main 10 in QuickTime (`hvc1`), portrait by display matrix, AAC sound.
    let plain = path("in-hevc-plain.mov");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=640x360:rate=30:duration=1",
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=500:sample_rate=44100:duration=1",
        "-c:v",
        "libx265",
        "-preset",
        "ultrafast",
        "-x265-params",
        "log-level=error",
        "-pix_fmt",
        "yuv420p10le",
        "-tag:v",
        "hvc1",
        "-c:a",
        "aac",
        "-f",
        "mov",
        p(&plain),
    ]);
    let src = path("in-hevc.mov");
    ffmpeg(&["-i", p(&plain), "-c", "copy", "-metadata:s:v:0", "rotate=270", "-f", "mov", p(&src)]);
    let bytes = read(&src);
    assert_eq!(sniff(&bytes), Some(Format::Mov));
    let out = process_video(&bytes, Format::Mov, &MediaSettings::default(), false).unwrap();
    assert_eq!((out.width, out.height), (360, 640));
    assert_eq!((out.mp4_width, out.mp4_height), (360, 640));
    let v = probe(&write("out-hevc.mp4", &out.mp4));
    let vs = streams(&v, "video");
    assert_eq!(vs[0]["codec_name"], "h264");
    assert_eq!(vs[0]["pix_fmt"], "yuv420p", "8-bit 4:2:0 for every player");
    let a = streams(&v, "audio");
    assert_eq!(a[0]["codec_name"], "aac");
    assert_eq!(num(&a[0]["sample_rate"]), 44100.0);
}

#[test]
fn video_rotated_phone_clip_stays_portrait() {
    // Stored 1280×720 landscape, top half red, bottom half blue, displayed rotated by 90° one
    // way or the other. (FFmpeg 5.1's CLI turns a `rotate` tag into a display matrix only when
    // stream copying; ffprobe then reports rotation -90 for "270", like an upright iPhone clip.)
    let plain = path("in-rotated-plain.mp4");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "color=c=red:s=1280x720:r=25:d=1,drawbox=x=0:y=360:w=1280:h=360:color=blue:t=fill",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-pix_fmt",
        "yuv420p",
        p(&plain),
    ]);
    let px =
        |d: &[u8], w: usize, x: usize, y: usize| [d[(y * w + x) * 3], d[(y * w + x) * 3 + 1], d[(y * w + x) * 3 + 2]];
    let mut sides = Vec::new();
    for tag in ["90", "270"] {
        let src = path(&format!("in-rotated-{tag}.mp4"));
        ffmpeg(&["-i", p(&plain), "-c", "copy", "-metadata:s:v:0", &format!("rotate={tag}"), p(&src)]);
        let bytes = read(&src);
        let pr = probe_av(&bytes, Format::Mp4).unwrap();
        assert_eq!((pr.width, pr.height), (720, 1280));
        assert!(pr.rotation == 90 || pr.rotation == 270, "{pr:?}");
        let s = MediaSettings {
            sampling: FrameSampling { max_edge: 1280, ..FrameSampling::DEFAULT },
            ..MediaSettings::DEFAULT
        };
        let out = process_video(&bytes, Format::Mp4, &s, true).unwrap();
        assert_eq!((out.width, out.height), (720, 1280), "displayed size is portrait");
        assert_eq!((out.mp4_width, out.mp4_height), (720, 1280));
        let f = write(&format!("out-rotated-{tag}.mp4"), &out.mp4);
        let v = probe(&f);
        let vs = streams(&v, "video");
        assert_eq!((vs[0]["width"].as_u64(), vs[0]["height"].as_u64()), (Some(720), Some(1280)));
        assert!(vs[0]["side_data_list"].is_null(), "no display matrix left: {}", vs[0]);

        // Same pixels as the ffmpeg CLI's autorotate: compare which side is red.
        let reference = path(&format!("rotated-ref-{tag}.rgb"));
        ffmpeg(&["-i", p(&src), "-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "rgb24", p(&reference)]);
        let r = read(&reference);
        assert_eq!(r.len(), 720 * 1280 * 3, "the CLI shows it 720×1280 too");
        let red_right = px(&r, 720, 600, 640)[0] > 200;
        let poster = &out.frames[0];
        assert_eq!((poster.width, poster.height), (720, 1280));
        assert_eq!(px(&poster.data, 720, 600, 640)[0] > 200, red_right, "rotate={tag}: right side");
        assert_eq!(px(&poster.data, 720, 120, 640)[0] > 200, !red_right, "rotate={tag}: left side");
        // Our MP4 decodes to the same picture.
        let ours_mp4 = path(&format!("rotated-ours-{tag}.rgb"));
        ffmpeg(&["-i", p(&f), "-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "rgb24", p(&ours_mp4)]);
        assert_eq!(px(&read(&ours_mp4), 720, 600, 640)[0] > 200, red_right);
        sides.push(red_right);
    }
    assert_ne!(sides[0], sides[1], "the two rotations turn opposite ways");
}

#[test]
fn video_without_audio_has_no_audio_stream() {
    let bytes = read(no_audio_mp4());
    let out = process_video(&bytes, Format::Mp4, &MediaSettings::default(), false).unwrap();
    assert!(!out.has_audio);
    assert_eq!((out.mp4_width, out.mp4_height), (320, 240));
    let v = probe(&write("out-noaudio.mp4", &out.mp4));
    assert_eq!(streams(&v, "audio").len(), 0);
    assert_eq!(streams(&v, "video").len(), 1);
    assert!((950..=1_100).contains(&out.duration_ms), "{}", out.duration_ms);
}

#[test]
fn video_too_long_is_refused_before_transcoding() {
    let src = path("in-190s.mp4");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc=size=64x64:rate=1:duration=190",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-pix_fmt",
        "yuv420p",
        p(&src),
    ]);
    let bytes = read(&src);
    let t = Instant::now();
    match process_video(&bytes, Format::Mp4, &MediaSettings::default(), false) {
        Err(MediaError::TooLong { duration_ms, limit_ms, .. }) => {
            assert_eq!(limit_ms, 180_000);
            assert!((189_000..=191_000).contains(&duration_ms), "{duration_ms}");
        }
        other => panic!("expected TooLong, got {other:?}"),
    }
    assert!(t.elapsed() < Duration::from_secs(2), "no transcode: {:?}", t.elapsed());
    let err = sample_frames(&bytes, Format::Mp4, &MediaSettings::default()).unwrap_err();
    assert!(matches!(err, MediaError::TooLong { .. }));
}

#[test]
fn video_is_deterministic() {
    let bytes = read(video_1080p());
    let s = MediaSettings::default();
    let a = process_video(&bytes, Format::Mov, &s, false).unwrap();
    let b = process_video(&bytes, Format::Mov, &s, false).unwrap();
    assert_eq!(sha(&a.mp4), sha(&b.mp4));
    assert_eq!(sha(&a.poster.bytes), sha(&b.poster.bytes));
    assert_eq!(a.blurhash, b.blurhash);
}

#[test]
fn video_limits_and_damage() {
    // Pixel limit from codec parameters, before decoding.
    let bytes = read(no_audio_mp4());
    let err = process_video(
        &bytes,
        Format::Mp4,
        &MediaSettings { limits: Limits { max_pixels: 320 * 240 - 1, ..Limits::DEFAULT }, ..MediaSettings::DEFAULT },
        false,
    )
    .unwrap_err();
    assert!(matches!(err, MediaError::TooManyPixels { width: 320, height: 240, .. }), "{err:?}");
    assert_eq!(err.to_string(), "video frame is 320×240 = 76800 pixels; the limit is 76799");
    // Truncated (fast-start source, so the index survives and the data does not).
    let src = path("in-fs.mp4");
    ffmpeg(&["-i", p(no_audio_mp4()), "-c", "copy", "-movflags", "+faststart", p(&src)]);
    let b = read(&src);
    let err = process_video(&b[..b.len() * 6 / 10], Format::Mp4, &MediaSettings::default(), false).unwrap_err();
    assert!(matches!(err, MediaError::Corrupt { .. }), "{err:?}");
    // Truncated with the index at the end: the container cannot be read.
    let err = process_video(&bytes[..bytes.len() / 2], Format::Mp4, &MediaSettings::default(), false).unwrap_err();
    assert!(matches!(err, MediaError::Corrupt { .. }), "{err:?}");
    // Budget.
    let err = process_video(
        &bytes,
        Format::Mp4,
        &MediaSettings {
            video: VideoSettings { budget: Duration::from_nanos(1), ..VideoSettings::DEFAULT },
            ..MediaSettings::DEFAULT
        },
        false,
    )
    .unwrap_err();
    assert!(matches!(err, MediaError::TimedOut { .. }), "{err:?}");
    // Not a video.
    let err = process_video(&read(speech_opus()), Format::Ogg, &MediaSettings::default(), false).unwrap_err();
    assert!(matches!(
        err,
        MediaError::Unsupported { .. } | MediaError::Unrecognized { .. } | MediaError::UnsupportedCodec { .. }
    ));
}

#[test]
fn sample_frames_for_the_classifier() {
    let bytes = read(video_1080p());
    // A 2 s clip: the poster and one frame a second.
    let sampling = FrameSampling { min_interval: Duration::from_secs(1), max_frames: 3, max_edge: 224 };
    let frames = sample_frames(&bytes, Format::Mov, &MediaSettings { sampling, ..MediaSettings::DEFAULT }).unwrap();
    assert_eq!(frames.len(), 3);
    assert!(frames[0].poster);
    for f in &frames {
        assert_eq!((f.width, f.height), (224, 126));
        assert_eq!(f.data.len(), 224 * 126 * 3);
        assert!(f.data.iter().any(|&x| x > 0));
    }
}

/// Damaged bytes in the middle of valid files: an input error (or a clean result when the
/// damage falls where the decoder can conceal it), never a panic, a hang or an internal error.
#[test]
fn damaged_files_never_panic_or_hang() {
    let mut files: Vec<(PathBuf, bool)> = vec![
        (speech_opus().to_path_buf(), false),
        (speech_as("dmg.mp3", &["-c:a", "libmp3lame"]), false),
        (speech_as("dmg.m4a", &["-c:a", "aac", "-movflags", "+faststart"]), false),
        (speech_as("dmg.flac", &["-c:a", "flac"]), false),
        (speech_as("dmg.webm", &["-c:a", "libopus", "-f", "webm"]), false),
        (no_audio_mp4().to_path_buf(), true),
    ];
    let webm = path("dmg-vp8.webm");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=320x240:rate=15:duration=1",
        "-c:v",
        "libvpx",
        "-deadline",
        "realtime",
        p(&webm),
    ]);
    files.push((webm, true));
    for (f, is_video) in files {
        let good = read(&f);
        let format = sniff(&good).unwrap();
        for (i, step) in [97usize, 13, 3].into_iter().enumerate() {
            let mut b = good.clone();
            let (from, to) = (b.len() / 3, b.len() * 2 / 3);
            for (k, x) in b[from..to].iter_mut().enumerate() {
                if k % step == 0 {
                    *x = x.wrapping_mul(31).wrapping_add(7 + i as u8);
                }
            }
            let t = Instant::now();
            let r = if is_video {
                process_video(&b, format, &MediaSettings::default(), false).map(|_| ())
            } else {
                process_voice(&b, format, &MediaSettings::default()).map(|_| ())
            };
            assert!(t.elapsed() < Duration::from_secs(20), "{}: {:?}", f.display(), t.elapsed());
            if let Err(e) = r {
                assert!(
                    !matches!(e, MediaError::Internal { .. } | MediaError::TimedOut { .. }),
                    "{} (every {step}th byte): {e:?}",
                    f.display()
                );
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// what phones record: HDR, high frame rates, iPhone/Android containers

/// Mean R, G, B of packed RGB24 samples.
fn mean_of(px: &[u8]) -> [f64; 3] {
    assert!(!px.is_empty());
    let n = (px.len() / 3) as f64;
    let mut m = [0.0; 3];
    for c in px.chunks_exact(3) {
        for (acc, v) in m.iter_mut().zip(c) {
            *acc += *v as f64;
        }
    }
    m.map(|v| v / n)
}

/// Mean R, G, B of a video (every frame, decoded by the ffmpeg CLI to 64×36 RGB24).
fn mean_rgb(file: &Path) -> [f64; 3] {
    let out = run(
        "ffmpeg",
        &["-v", "error", "-i", p(file), "-vf", "scale=64:36:flags=area,format=rgb24", "-f", "rawvideo", "-"],
    );
    mean_of(&out.stdout)
}

fn mean_rgb_of_jpeg(bytes: &[u8]) -> [f64; 3] {
    mean_of(image::load_from_memory(bytes).unwrap().into_rgb8().as_raw())
}

fn distance(a: [f64; 3], b: [f64; 3]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).sum()
}

/// Colour bars and a gradient as an SDR BT.709 original, and the same converted to HDR the way
/// an iPhone records it: HEVC Main10, BT.2020 primaries and matrix, HLG (or PQ) transfer.
///
/// Made once per transfer, under a lock: two tests use the HLG clip, and one must not read it
/// while the other is still writing it.
fn hdr_clips(transfer: &str) -> (PathBuf, PathBuf) {
    static MAKING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _making = MAKING.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let sdr = path("hdr-source-sdr.mp4");
    let hdr = path(&format!("hdr-{transfer}.mp4"));
    if hdr.exists() {
        return (sdr, hdr);
    }
    if !sdr.exists() {
        ffmpeg(&[
            "-f",
            "lavfi",
            "-i",
            "smptehdbars=size=1280x720:rate=30:duration=2",
            "-vf",
            "format=yuv420p",
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
            "-crf",
            "12",
            "-color_primaries",
            "bt709",
            "-color_trc",
            "bt709",
            "-colorspace",
            "bt709",
            p(&sdr),
        ]);
    }
    let (t, x265) = match transfer {
        "hlg" => ("arib-std-b67", "arib-std-b67"),
        _ => ("smpte2084", "smpte2084"),
    };
    let vf = format!(
        "zscale=tin=bt709:min=bt709:pin=bt709:t=linear:npl=203,format=gbrpf32le,zscale=p=bt2020,zscale=t={t}:m=bt2020nc:r=tv,format=yuv420p10le"
    );
    let params = format!("colorprim=bt2020:transfer={x265}:colormatrix=bt2020nc");
    ffmpeg(&[
        "-i",
        p(&sdr),
        "-vf",
        &vf,
        "-c:v",
        "libx265",
        "-preset",
        "ultrafast",
        "-x265-params",
        &params,
        "-color_primaries",
        "bt2020",
        "-color_trc",
        t,
        "-colorspace",
        "bt2020nc",
        "-tag:v",
        "hvc1",
        p(&hdr),
    ]);
    (sdr, hdr)
}

#[test]
fn hdr_hlg_and_pq_are_tone_mapped_to_bt709_sdr() {
    for transfer in ["hlg", "pq"] {
        let (sdr, hdr) = hdr_clips(transfer);
        let src = probe(&hdr);
        let sv = &streams(&src, "video")[0];
        assert_eq!((sv["codec_name"].as_str(), sv["pix_fmt"].as_str()), (Some("hevc"), Some("yuv420p10le")));
        let out = process_video(&read(&hdr), Format::Mp4, &MediaSettings::default(), false).unwrap();
        let f = write(&format!("out-{transfer}.mp4"), &out.mp4);
        let v = probe(&f);
        let ov = &streams(&v, "video")[0];
        assert_eq!(ov["pix_fmt"], "yuv420p", "{transfer}");
        assert_eq!(ov["color_range"], "tv", "{transfer}");
        assert_eq!(ov["color_space"], "bt709", "{transfer}");
        assert_eq!(ov["color_transfer"], "bt709", "{transfer}");
        assert_eq!(ov["color_primaries"], "bt709", "{transfer}");
        // What the pipeline did before: convert to 8-bit 4:2:0 without tone mapping.
        let naive = path(&format!("naive-{transfer}.mp4"));
        ffmpeg(&[
            "-i",
            p(&hdr),
            "-vf",
            "scale=out_range=tv,format=yuv420p",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            p(&naive),
        ]);
        let (want, ours, flat) = (mean_rgb(&sdr), mean_rgb(&f), mean_rgb(&naive));
        let (d_ours, d_flat) = (distance(ours, want), distance(flat, want));
        eprintln!("{transfer}: SDR original {want:.1?}, ours {ours:.1?} (off by {d_ours:.1}), untone-mapped {flat:.1?} (off by {d_flat:.1})");
        assert!(d_ours < d_flat, "{transfer}: tone-mapped output ({d_ours:.1}) is not closer to the SDR original than an untone-mapped conversion ({d_flat:.1})");
        // The poster comes out of the same chain.
        let d_poster = distance(mean_rgb_of_jpeg(&out.poster.bytes), want);
        assert!(d_poster < d_flat, "{transfer}: poster off by {d_poster:.1}, untone-mapped by {d_flat:.1}");
    }
}

#[test]
fn an_hlg_clip_that_tags_only_its_transfer_is_still_tone_mapped() {
    // HLG transfer, but no primaries, matrix or range in the stream: taken as BT.2020, limited.
    let (_, hdr) = hdr_clips("hlg");
    let bare = path("hlg-transfer-only.mp4");
    ffmpeg(&[
        "-i",
        p(&hdr),
        "-c",
        "copy",
        "-bsf:v",
        "hevc_metadata=colour_primaries=2:matrix_coefficients=2:video_full_range_flag=0",
        "-color_primaries",
        "unknown",
        "-colorspace",
        "unknown",
        p(&bare),
    ]);
    let v = probe(&bare);
    assert_eq!(streams(&v, "video")[0]["color_transfer"], "arib-std-b67");
    let out = process_video(&read(&bare), Format::Mp4, &MediaSettings::default(), false).unwrap();
    let o = probe(&write("out-hlg-transfer-only.mp4", &out.mp4));
    assert_eq!(streams(&o, "video")[0]["color_transfer"], "bt709");
}

#[test]
fn ten_bit_422_444_and_full_range_come_out_8_bit_420_limited() {
    for (pix, codec) in [("yuv422p10le", "libx264"), ("yuv444p", "libx264"), ("yuvj420p", "libx264")] {
        let src = path(&format!("pix-{pix}.mov"));
        ffmpeg(&[
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=320x240:rate=25:duration=1",
            "-pix_fmt",
            pix,
            "-c:v",
            codec,
            p(&src),
        ]);
        let out = process_video(&read(&src), Format::Mov, &MediaSettings::default(), false)
            .unwrap_or_else(|e| panic!("{pix}: {e}"));
        let v = probe(&write(&format!("out-{pix}.mp4"), &out.mp4));
        let ov = &streams(&v, "video")[0];
        assert_eq!((ov["pix_fmt"].as_str(), ov["color_range"].as_str()), (Some("yuv420p"), Some("tv")), "{pix}");
        assert_eq!(ov["profile"], "High", "{pix}: 8-bit 4:2:0 H.264");
    }
}

#[test]
fn slow_motion_120_fps_is_decimated_to_60_on_the_same_timeline() {
    let src = path("slomo-120.mp4");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=320x240:rate=120:duration=3",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        p(&src),
    ]);
    let out = process_video(&read(&src), Format::Mp4, &MediaSettings::default(), false).unwrap();
    assert!((out.duration_ms as i64 - 3000).abs() <= 50, "duration {} ms", out.duration_ms);
    let v = probe(&write("out-slomo.mp4", &out.mp4));
    let ov = &streams(&v, "video")[0];
    assert_eq!(ov["r_frame_rate"], "60/1");
    let frames: i64 = ov["nb_frames"].as_str().unwrap().parse().unwrap();
    assert!((frames - 180).abs() <= 2, "{frames} frames for 3 s at 60 fps");
    let dur = num(&v["format"]["duration"]);
    assert!((dur - 3.0).abs() < 0.06, "plays for {dur} s, not slowed down");
    // At 60 fps nothing is dropped.
    let src = path("fps-60.mp4");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=320x240:rate=60:duration=2",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        p(&src),
    ]);
    let out = process_video(&read(&src), Format::Mp4, &MediaSettings::default(), false).unwrap();
    let v = probe(&write("out-60.mp4", &out.mp4));
    assert_eq!(streams(&v, "video")[0]["nb_frames"], "120");
}

#[test]
fn iphone_mov_with_location_timecode_and_two_audio_tracks_keeps_only_picture_and_first_sound() {
    // What an iPhone writes beside the picture: a location (the ISO 6709 mdta key and the
    // classic ©xyz), make and model, a timecode track; and a second audio track.
    let src = mov_with_two_audio_tracks(
        "iphone.mov",
        &[
            "-timecode",
            "01:00:00:00",
            "-metadata",
            "location=+48.8584+002.2945+035.000/",
            "-metadata",
            "com.apple.quicktime.location.ISO6709=+48.8584+002.2945+035.000/",
            "-metadata",
            "com.apple.quicktime.make=SECRET-MAKE",
            "-metadata",
            "com.apple.quicktime.model=SECRET-MODEL",
            "-movflags",
            "use_metadata_tags",
        ],
    );
    let bytes = read(&src);
    let v = probe(&src);
    assert!(v["streams"].as_array().unwrap().iter().any(|s| s["codec_tag_string"] == "tmcd"), "no timecode track");
    assert_eq!(streams(&v, "audio").len(), 2);
    assert!(bytes.windows(7).any(|w| w == b"48.8584"), "no location in the source");
    let out = process_video(&bytes, Format::Mov, &MediaSettings::default(), false).unwrap();
    assert!(out.has_audio);
    let f = write("out-iphone.mp4", &out.mp4);
    let o = probe(&f);
    let kinds: Vec<&str> = o["streams"].as_array().unwrap().iter().map(|s| s["codec_type"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["video", "audio"], "exactly one picture and one sound track");
    for needle in [&b"48.8584"[..], b"002.2945", b"SECRET", b"ISO6709", b"\xa9xyz", b"tmcd"] {
        assert!(
            !out.mp4.windows(needle.len()).any(|w| w == needle),
            "output keeps {:?}",
            String::from_utf8_lossy(needle)
        );
    }
}

#[test]
fn a_bt601_clip_is_converted_to_the_bt709_matrix_it_is_tagged_with() {
    // An SD-style clip whose Y′CbCr uses the BT.601 matrix (smpte170m), as older phones and
    // webcams write: the output is tagged BT.709, so its pixels must be converted, not relabelled.
    let src = path("red-601.mp4");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "color=c=0xC02020:s=320x240:d=1",
        "-vf",
        "scale=out_color_matrix=bt601:out_range=tv,format=yuv420p,setparams=colorspace=smpte170m:range=tv",
        "-c:v",
        "libx264",
        "-qp",
        "0",
        "-colorspace",
        "smpte170m",
        p(&src),
    ]);
    let out = process_video(&read(&src), Format::Mp4, &MediaSettings::default(), false).unwrap();
    let f = write("out-red-601.mp4", &out.mp4);
    assert_eq!(streams(&probe(&f), "video")[0]["color_space"], "bt709");
    // Decoded with the matrix it is tagged with, the red is the source's red.
    let px = run(
        "ffmpeg",
        &[
            "-v",
            "error",
            "-i",
            p(&f),
            "-vf",
            "scale=in_color_matrix=bt709:in_range=tv,format=rgb24",
            "-frames:v",
            "1",
            "-f",
            "rawvideo",
            "-",
        ],
    )
    .stdout;
    let mid = 3 * (120 * 320 + 160);
    let got = [px[mid], px[mid + 1], px[mid + 2]];
    let want = [0xC0u8, 0x20, 0x20];
    let off: i32 = got.iter().zip(want).map(|(a, b)| (*a as i32 - b as i32).abs()).sum();
    // Relabelling without converting would be off by ~30 levels (205, 47, 29).
    assert!(off <= 12, "red came out as {got:?}, want about {want:?}");
}

/// Every video frame's presentation time, in seconds, per ffprobe.
fn frame_times(file: &Path) -> Vec<f64> {
    let out = run(
        "ffprobe",
        &["-v", "error", "-select_streams", "v:0", "-show_entries", "frame=pts_time", "-of", "csv=p=0", p(file)],
    );
    String::from_utf8_lossy(&out.stdout).lines().filter_map(|l| l.trim().trim_end_matches(',').parse().ok()).collect()
}

#[test]
fn a_variable_frame_rate_screen_recording_keeps_its_timing() {
    // A screen recorder writes frames only when something changes: 20 fps for a second, a
    // 1.5 s still gap, then 10 fps for a second.
    let src = path("screen-vfr.mp4");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=320x240:rate=20:duration=2",
        "-vf",
        "setpts='if(lt(N,20),N/20,if(lt(N,30),2.5+(N-20)/10,5))/TB'",
        "-fps_mode",
        "vfr",
        "-frames:v",
        "30",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        p(&src),
    ]);
    let want = frame_times(&src);
    assert_eq!(want.len(), 30, "source frames: {want:?}");
    let out = process_video(&read(&src), Format::Mp4, &MediaSettings::default(), false).unwrap();
    let got = frame_times(&write("out-screen-vfr.mp4", &out.mp4));
    assert_eq!(got.len(), want.len(), "no frame added or dropped: {got:?} vs {want:?}");
    let origin = want[0];
    for (g, w) in got.iter().zip(&want) {
        assert!((g - (w - origin)).abs() < 0.002, "frame at {g} s, source at {} s", w - origin);
    }
}

/// A 2 s 640×360 H.264 MOV with two AAC tracks (440 Hz, then 880 Hz), `extra` output options
/// (metadata, a timecode) before the container.
fn mov_with_two_audio_tracks(name: &str, extra: &[&str]) -> PathBuf {
    let src = path(name);
    let mut args = vec![
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=640x360:rate=30:duration=2",
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=440:duration=2",
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=880:duration=2",
        "-map",
        "0:v",
        "-map",
        "1:a",
        "-map",
        "2:a",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-c:a",
        "aac",
    ];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["-f", "mov", p(&src)]);
    ffmpeg(&args);
    src
}

/// Turns the first `n` AAC sample entries of a MOV/MP4 into a codec no decoder knows, as a
/// phone's proprietary or future audio codec reads to this FFmpeg: the entry's four-character
/// code (`mp4a`) and its `esds` object type (0x40, AAC; FFmpeg reads the codec from either)
/// become ones FFmpeg has no mapping for.
fn unknown_audio_codec(bytes: &[u8], n: usize) -> Vec<u8> {
    let mut out = bytes.to_vec();
    let mut i = 0;
    for _ in 0..n {
        let at = out[i..].windows(4).position(|w| w == b"mp4a").expect("an mp4a sample entry") + i;
        out[at..at + 4].copy_from_slice(b"zzzz");
        let esds = out[at..].windows(4).position(|w| w == b"esds").expect("its esds") + at;
        // DecoderConfigDescriptor: tag 0x04, a length (FFmpeg writes 0x80 0x80 0x80 len), then
        // the object type indication.
        let dcd =
            out[esds..].windows(4).position(|w| w == [0x04, 0x80, 0x80, 0x80]).expect("its decoder config") + esds;
        assert_eq!(out[dcd + 5], 0x40, "AAC's object type");
        out[dcd + 5] = 0xC0;
        i = dcd + 6;
    }
    out
}

#[test]
fn an_audio_track_ffmpeg_cannot_decode_is_skipped_for_the_next_or_the_clip_is_silent() {
    // Two audio tracks, the first in a codec this build cannot decode: the second is used.
    let src = mov_with_two_audio_tracks("undecodable-first.mov", &[]);
    let two = unknown_audio_codec(&read(&src), 1);
    let v = probe(&write("undecodable-first-patched.mov", &two));
    let audio = streams(&v, "audio");
    assert_eq!(audio.len(), 2);
    assert_ne!(audio[0]["codec_name"], "aac", "the first track no longer reads as AAC: {}", audio[0]);
    let out = process_video(&two, Format::Mov, &MediaSettings::default(), false).unwrap();
    assert!(out.has_audio, "the decodable second track is used");
    let o = probe(&write("out-undecodable-first.mp4", &out.mp4));
    assert_eq!(streams(&o, "audio").len(), 1);
    assert_eq!(streams(&o, "audio")[0]["codec_name"], "aac");

    // Its only audio track undecodable: the clip is kept, silent, with its picture and length.
    let one = unknown_audio_codec(&read(&src), 2);
    let out = process_video(&one, Format::Mov, &MediaSettings::default(), false).unwrap();
    assert!(!out.has_audio);
    assert!((1900..=2100).contains(&out.duration_ms), "{}", out.duration_ms);
    let o = probe(&write("out-undecodable-only.mp4", &out.mp4));
    assert!(streams(&o, "audio").is_empty());
    assert_eq!(streams(&o, "video").len(), 1);
}
