//! The command line: `submit --wait` against the running worker, usage errors, and the
//! compose file ops use.

use std::process::Command;

use serde_json::Value;

use crate::support::media::jpeg;
use crate::support::{amqp_url, harness, ACCESS_KEY, SECRET_KEY};

fn mediagate() -> Command {
    let h = harness();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mediagate"));
    cmd.env("MEDIAGATE_AMQP_URL", amqp_url(&h.vhost))
        .env("MEDIAGATE_S3_ENDPOINT", h.s3.endpoint())
        .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
        .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
        .env("AWS_REGION", "us-east-1")
        .env("MEDIAGATE_LOG_FORMAT", "text");
    cmd
}

#[test]
fn submit_wait_prints_the_verdict() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.jpg");
    let b = dir.path().join("b.jpg");
    std::fs::write(&a, jpeg(900, 600, 1)).unwrap();
    std::fs::write(&b, jpeg(300, 600, 2)).unwrap();
    let out = mediagate()
        .args(["submit", a.to_str().unwrap(), b.to_str().unwrap(), "--wait", "--timeout", "60"])
        .output()
        .unwrap();
    assert!(out.status.success(), "submit failed: {}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).expect("stdout is the verdict JSON");
    assert_eq!(v["schema"], "mediagate.verdict.v1");
    assert_eq!(v["status"], "cleared", "{v}");
    assert_eq!(v["items"].as_array().unwrap().len(), 2);
    assert_eq!(v["items"][1]["width"], 300);
}

#[test]
fn submit_with_an_under_16_recipient_is_rejected_but_exits_zero() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.jpg");
    std::fs::write(&a, jpeg(100, 100, 1)).unwrap();
    let out = mediagate()
        .args(["submit", a.to_str().unwrap(), "--recipient-age", "under_16", "--wait", "--timeout", "60"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["reason"]["code"], "policy.under_16");
}

/// Contract §6: `MEDIAGATE_AMQP_URL` may list a cluster's nodes, and a command tries them until
/// one answers. A node that refuses connections (port 1) is passed over, whether it came first
/// or not (the order is random), and the job goes through the one that answers.
#[test]
fn a_list_of_broker_urls_is_tried_until_a_node_answers() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.jpg");
    std::fs::write(&a, jpeg(320, 240, 7)).unwrap();
    let live = amqp_url(&harness().vhost);
    for list in
        [format!("amqp://guest:guest@127.0.0.1:1/%2f, {live}"), format!("{live} ,amqp://guest:guest@127.0.0.1:1/%2f")]
    {
        let out = mediagate()
            .env("MEDIAGATE_AMQP_URL", &list)
            .args(["submit", a.to_str().unwrap(), "--wait", "--timeout", "60"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{list}: {}", String::from_utf8_lossy(&out.stderr));
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["status"], "cleared", "{v}");
    }
}

/// An empty entry in the list, or one that is not an AMQP URL, stops every command before it
/// starts (exit 2), naming the entry and never printing a password.
#[test]
fn a_broken_broker_url_list_is_a_usage_error() {
    for (list, needle) in [
        ("amqp://guest:guest@127.0.0.1:5672/%2f,,amqp://guest:guest@127.0.0.1:5673/%2f", "entry 2"),
        ("amqp://guest:s3cret@127.0.0.1:5672/%2f,", "entry 2"),
        ("amqp://guest:s3cret@127.0.0.1:5672/%2f,http://127.0.0.1:5673", "entry 2"),
    ] {
        for command in [&["ensure-topology"][..], &["worker"][..]] {
            let out = mediagate().env("MEDIAGATE_AMQP_URL", list).args(command).output().unwrap();
            let err = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{command:?} {list}: {err}");
            assert!(err.contains(needle) && err.contains("MEDIAGATE_AMQP_URL"), "{err}");
            assert!(!err.contains("s3cret"), "{err}");
        }
    }
}

#[test]
fn bad_usage_exits_2() {
    let out = Command::new(env!("CARGO_BIN_EXE_mediagate")).args(["submit"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = Command::new(env!("CARGO_BIN_EXE_mediagate"))
        .args(["submit", "x.jpg", "--sender-age", "teen"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn submit_of_a_missing_file_exits_1() {
    let out = mediagate().args(["submit", "/nonexistent/photo.jpg"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/photo.jpg"));
}

#[test]
fn docker_compose_file_is_valid() {
    let root = crate::support::workspace_root();
    let out = Command::new("docker-compose")
        .args(["-f", "docker-compose.yml", "config", "-q"])
        .current_dir(&root)
        .output()
        .unwrap_or_else(|e| {
            panic!("docker-compose is needed to validate docker-compose.yml ({e}); run `make test`, which installs it")
        });
    assert!(out.status.success(), "docker-compose config: {}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn the_python_producer_example_gets_its_verdict() {
    let h = harness();
    let python = crate::support::workspace_root().join(".local/venv-examples/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run `make test` (it creates the examples' venv with pika and boto3)",
        python.display()
    );
    let dir = tempfile::tempdir().unwrap();
    let photo = dir.path().join("p.jpg");
    std::fs::write(&photo, jpeg(500, 400, 9)).unwrap();
    let out = Command::new(&python)
        .arg(crate::support::workspace_root().join("examples/python/producer.py"))
        .args([photo.to_str().unwrap(), "--recipient-age", "16_17", "--timeout", "60"])
        .env("MEDIAGATE_AMQP_URL", amqp_url(&h.vhost))
        .env("MEDIAGATE_S3_ENDPOINT", h.s3.endpoint())
        .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
        .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
        .env("AWS_REGION", "us-east-1")
        .output()
        .unwrap();
    assert!(out.status.success(), "producer.py: {}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).expect("the example prints the verdict JSON");
    crate::support::assert_valid(crate::support::verdict_schema(), &v, "verdict");
    assert_eq!(v["status"], "cleared", "{v}");
    assert_eq!(v["items"][0]["nudity"]["threshold"], 0.5, "16–17 recipient: the filter applied");
}

/// A bad setting stops `mediagate worker` before it connects to anything (the broker and S3
/// here are closed ports, so a worker that got further would hang or say so), with exit 78 and
/// a message naming the variable and what it accepts. One bad value per family.
#[test]
fn a_bad_setting_stops_the_worker_before_it_connects() {
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let cases: &[(&str, &str, &str)] = &[
        ("MEDIAGATE_VIDEO_CRF", "60", "from 0 to 51"),
        ("MEDIAGATE_VIDEO_PRESET", "warp", "veryfast"),
        ("MEDIAGATE_VIDEO_THREADS", "0", "from 1 to 64"),
        ("MEDIAGATE_VOICE_BITRATE", "100", "from 6000 to 510000"),
        ("MEDIAGATE_JPEG_QUALITY", "0", "from 1 to 100"),
        ("MEDIAGATE_PHOTO_THUMB_EDGE", "9000", "from 16 to 8192"),
        ("MEDIAGATE_IMAGE_MAX_PIXELS", "0", "from 1 to"),
        ("MEDIAGATE_NUDITY_THRESHOLD_MINOR", "1.5", "from 0 to 1"),
        ("MEDIAGATE_VIDEO_MAX_FRAMES", "0", "from 1 to 256"),
        ("MEDIAGATE_SANDBOX_MEMORY_MB", "1", "from 16 to"),
        ("MEDIAGATE_MEMORY_MB", "1000", "at least"),
        ("MEDIAGATE_SANDBOX_MEMORY_MB", "100000", "do not fit in MEDIAGATE_MEMORY_MB"),
        ("MEDIAGATE_CONCURRENCY", "0", "from 1 to 256"),
        ("MEDIAGATE_METRICS_ADDR", "localhost", "HOST:PORT"),
        ("MEDIAGATE_S3_ATTEMPTS", "0", "from 1 to 20"),
        ("MEDIAGATE_SANDBOX", "off", "MEDIAGATE_DEV_ALLOW_UNSANDBOXED=1"),
        ("MEDIAGATE_MAX_JOB_BYTES", "10", "from 1024 to"),
        ("MEDIAGATE_MAX_RECIPIENTS", "0", "from 1 to"),
    ];
    for (var, value, accepted) in cases {
        let started = std::time::Instant::now();
        let out = Command::new(env!("CARGO_BIN_EXE_mediagate"))
            .arg("worker")
            .env("MEDIAGATE_AMQP_URL", format!("amqp://guest:guest@127.0.0.1:{closed}/%2f"))
            .env("MEDIAGATE_S3_ENDPOINT", format!("http://127.0.0.1:{closed}"))
            .env("MEDIAGATE_METRICS_ADDR", "")
            .env("MEDIAGATE_LOG_FORMAT", "text")
            .env(var, value)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(78), "{var}={value}: {stderr}");
        assert!(
            stderr.contains(&format!("{var}=\"{value}\"")) && stderr.contains(accepted),
            "{var}={value}: the message must name the variable and what it accepts: {stderr}"
        );
        assert!(!stderr.contains("classifier loaded"), "{var}: got as far as loading the model: {stderr}");
        assert!(started.elapsed() < std::time::Duration::from_secs(10), "{var}: took {:?}", started.elapsed());
    }
}

/// At a terminal (a pseudo-terminal from `script`), a command's log lines are short text from
/// `warn` up — not JSON records interleaved with its own output; `MEDIAGATE_LOG_FORMAT=json`
/// still gives JSON, and without a terminal the default stays JSON.
#[test]
fn at_a_terminal_a_command_logs_short_text_at_warn() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let run = |tty: bool, format: Option<&str>| -> String {
        let bin = env!("CARGO_BIN_EXE_mediagate");
        let mut cmd = if tty {
            let mut c = Command::new("script");
            c.args(["-qec", &format!("{bin} erase t-nothing-here"), "/dev/null"]);
            c
        } else {
            let mut c = Command::new(bin);
            c.args(["erase", "t-nothing-here"]);
            c
        };
        cmd.env("MEDIAGATE_S3_ENDPOINT", format!("http://127.0.0.1:{closed}"))
            .env("MEDIAGATE_S3_ATTEMPTS", "2")
            .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
            .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
            .env("AWS_REGION", "us-east-1")
            .env_remove("MEDIAGATE_LOG_FORMAT")
            .env_remove("RUST_LOG");
        if let Some(f) = format {
            cmd.env("MEDIAGATE_LOG_FORMAT", f);
        }
        let out = cmd.output().expect("`script` (util-linux) runs the command on a pseudo-terminal; run `make test`");
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
    };
    let tty = run(true, None);
    assert!(tty.contains("WARN") && tty.contains("transient S3 failure, retrying"), "{tty}");
    assert!(!tty.contains("\"level\""), "no JSON records at a terminal: {tty}");
    assert!(tty.contains("mediagate erase:"), "the command's own line: {tty}");
    let json = run(true, Some("json"));
    assert!(json.contains("\"level\":\"WARN\""), "MEDIAGATE_LOG_FORMAT decides when set: {json}");
    let piped = run(false, None);
    assert!(piped.contains("\"level\":\"WARN\""), "JSON when stderr is not a terminal: {piped}");
}

#[test]
fn submit_refuses_a_job_over_the_limits_before_it_uploads_or_publishes() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.jpg");
    std::fs::write(&a, jpeg(64, 64, 1)).unwrap();
    // Nothing listens on these: an upload or a publish would fail with exit 1, not 2.
    let closed = mediagate_testkit::ports::free_port();
    let submit = |recipients: usize, extra: &[(&str, &str)]| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_mediagate"));
        cmd.env("MEDIAGATE_AMQP_URL", format!("amqp://guest:guest@127.0.0.1:{closed}/%2f"))
            .env("MEDIAGATE_S3_ENDPOINT", format!("http://127.0.0.1:{closed}"))
            .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
            .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
            .env("AWS_REGION", "us-east-1")
            .env("MEDIAGATE_S3_ATTEMPTS", "1")
            .args(["submit", a.to_str().unwrap()]);
        for _ in 0..recipients {
            cmd.args(["--recipient-age", "adult"]);
        }
        cmd.envs(extra.iter().copied());
        cmd.output().unwrap()
    };
    let out = submit(257, &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("MEDIAGATE_MAX_RECIPIENTS") && err.contains("at most 256"), "{err}");

    let out = submit(1, &[("MEDIAGATE_MAX_JOB_BYTES", "1024")]);
    assert_eq!(out.status.code(), Some(1), "a small job passes the check and then meets the closed S3 port");
    let out = submit(40, &[("MEDIAGATE_MAX_JOB_BYTES", "1024")]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("MEDIAGATE_MAX_JOB_BYTES") && err.contains("at most 1024 bytes"), "{err}");
    // A limit outside its range is a usage error too, named.
    let out = submit(1, &[("MEDIAGATE_MAX_RECIPIENTS", "0")]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("MEDIAGATE_MAX_RECIPIENTS"));
}

/// `--version` names every decoder library with the version the library itself reports, checked
/// against independent sources: Debian's package database for libde265 and dav1d, the ffmpeg
/// CLI (the same shared libraries) for FFmpeg.
#[test]
fn version_lists_the_decoder_libraries_as_they_report_themselves() {
    let out = Command::new(env!("CARGO_BIN_EXE_mediagate")).arg("--version").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let line = |prefix: &str| -> String {
        text.lines().find(|l| l.starts_with(prefix)).unwrap_or_else(|| panic!("no `{prefix}` line in:\n{text}")).into()
    };
    assert!(text.starts_with(&format!("mediagate {}", env!("CARGO_PKG_VERSION"))), "{text}");
    assert_eq!(line("libheif "), "libheif 1.23.5 (decoders: dav1d, libde265; encoders: none; unci: no)");
    let dpkg = |package: &str| -> String {
        let out = Command::new("dpkg-query").args(["-W", "-f=${Version}", package]).output().expect("dpkg-query");
        let v = String::from_utf8_lossy(&out.stdout).into_owned();
        // 1.0.11-1+deb12u2 → 1.0.11 (upstream version, Debian revision dropped)
        v.split('-').next().unwrap_or_default().to_string()
    };
    assert_eq!(line("libde265 "), format!("libde265 {}", dpkg("libde265-0")));
    assert_eq!(line("dav1d "), format!("dav1d {}", dpkg("libdav1d6")));
    let cli = Command::new("ffmpeg").arg("-version").output().expect("ffmpeg -version");
    let cli = String::from_utf8_lossy(&cli.stdout).into_owned();
    let release = cli.lines().next().and_then(|l| l.split_whitespace().nth(2)).expect("ffmpeg version line");
    assert_eq!(line("FFmpeg "), format!("FFmpeg {release}"));
    for lib in ["libavutil", "libavcodec", "libavformat", "libavfilter", "libswscale", "libswresample"] {
        // ffmpeg -version prints e.g. "libavcodec     59. 37.100 / 59. 37.100" (built / running).
        let running = cli
            .lines()
            .find(|l| l.starts_with(lib))
            .and_then(|l| l.split('/').nth(1))
            .map(|v| v.split('.').map(str::trim).collect::<Vec<_>>().join("."))
            .unwrap_or_else(|| panic!("no {lib} in ffmpeg -version"));
        assert_eq!(line(&format!("{lib} ")), format!("{lib} {running}"));
    }
}
