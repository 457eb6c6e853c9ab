//! `mediagate doctor` (contract §7): all ✔ against a working stack, and each kind of fault named
//! with its fix.

use std::process::Output;

use lapin::options::QueueDeclareOptions;
use lapin::types::FieldTable;
use lapin::{Connection, ConnectionProperties};

use crate::support::{amqp_url, create_vhost, Isolated};

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// The line of the check named `name`.
fn line<'a>(out: &'a str, name: &str) -> &'a str {
    out.lines()
        .find(|l| {
            (l.starts_with('✔') || l.starts_with('✘')) && l.get(4..).is_some_and(|r| r.starts_with(&format!("{name}:")))
        })
        .unwrap_or_else(|| panic!("no line for {name}: {out}"))
}

#[test]
fn doctor_passes_on_a_working_stack_and_names_each_fault_with_its_fix() {
    let env = Isolated::start("doctor", &[]);
    let doctor = |extra: &[(&str, &str)]| -> Output {
        let mut cmd = env.command();
        cmd.arg("doctor").env("MEDIAGATE_S3_ATTEMPTS", "1");
        for (k, v) in extra {
            cmd.env(k, v);
        }
        mediagate_testkit::tether::output_within(&mut cmd, std::time::Duration::from_secs(120))
    };

    let ok = doctor(&[]);
    let out = text(&ok);
    assert_eq!(ok.status.code(), Some(0), "{out}");
    for name in [
        "settings",
        "broker",
        "exchange mediagate.jobs",
        "queue mediagate.uploads",
        "queue mediagate.escalations",
        "bucket incoming",
        "bucket media",
        "bucket quarantine",
        "model",
        "sandbox",
        "bank confirmed",
    ] {
        assert!(line(&out, name).starts_with('✔'), "{name}: {out}");
    }
    assert!(line(&out, "settings").contains("memory budget"), "{out}");
    assert!(line(&out, "bucket media").contains("probe written, read back, deleted"), "{out}");
    assert!(
        env.rt.block_on(env.store.list_keys("media", ".mediagate-doctor/")).unwrap().is_empty(),
        "the probe objects are deleted again"
    );
    let json = mediagate_testkit::tether::output_within(
        env.command().args(["doctor", "--json"]),
        std::time::Duration::from_secs(120),
    );
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).expect("--json prints one object");
    assert_eq!(v["ok"], true, "{v}");
    assert!(v["checks"].as_array().unwrap().len() >= 15, "{v}");

    // A wrong secret key: every bucket is denied, with the permission to grant.
    let bad_key = doctor(&[("AWS_SECRET_ACCESS_KEY", "not-the-key")]);
    let out = text(&bad_key);
    assert_eq!(bad_key.status.code(), Some(1), "{out}");
    let l = line(&out, "bucket media");
    assert!(l.starts_with('✘'), "{out}");
    assert!(out.contains("fix: grant s3:ListBucket on media"), "{out}");

    // A bucket that does not exist.
    let missing = doctor(&[("MEDIAGATE_OUTPUT_BUCKET", "no-such-bucket")]);
    let out = text(&missing);
    assert_eq!(missing.status.code(), Some(1), "{out}");
    assert!(line(&out, "bucket no-such-bucket").starts_with('✘'), "{out}");
    assert!(line(&out, "bucket incoming").starts_with('✔'), "the others still pass: {out}");

    // A model that is not there.
    let no_model = doctor(&[("MEDIAGATE_MODEL_PATH", "/nonexistent/open-nsfw.onnx")]);
    let out = text(&no_model);
    assert_eq!(no_model.status.code(), Some(1), "{out}");
    assert!(line(&out, "model").starts_with('✘') && out.contains("make models"), "{out}");

    // A vhost where someone declared the upload queue as a classic queue: that queue is ✘
    // with the broker's words; the entities still absent are fine (the worker declares them).
    let vhost = create_vhost("doctor-bad");
    env.rt.block_on(async {
        let conn = Connection::connect(&amqp_url(&vhost), ConnectionProperties::default()).await.unwrap();
        let ch = conn.create_channel().await.unwrap();
        let durable = QueueDeclareOptions { durable: true, ..Default::default() };
        ch.queue_declare("mediagate.uploads".into(), durable, FieldTable::default()).await.unwrap();
        conn.close(200, "done".into()).await.unwrap();
    });
    let wrong = doctor(&[("MEDIAGATE_AMQP_URL", &amqp_url(&vhost))]);
    let out = text(&wrong);
    assert_eq!(wrong.status.code(), Some(1), "{out}");
    let l = line(&out, "queue mediagate.uploads");
    assert!(l.starts_with('✘') && l.contains("other arguments"), "{out}");
    assert!(out.contains("delete it, and let the worker declare it again"), "{out}");
    assert!(line(&out, "queue mediagate.reprocess").contains("absent"), "{out}");
}
