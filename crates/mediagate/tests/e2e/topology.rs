//! Contract §1 and §7: `mediagate ensure-topology`, and producers that publish with `mandatory`
//! and see a return, not a silent loss, when no queue is bound yet (the first jobs of a new
//! broker, or a topology deleted by hand). No worker runs on these vhosts.

use std::process::{Command, Output};

use lapin::types::FieldTable;
use lapin::{Connection, ConnectionProperties};
use mediagate_queue::{Broker, QueueError};
use mediagate_testkit::rabbit::TestVhost;

use crate::support::media::jpeg;
use crate::support::{harness, queue_depth, ACCESS_KEY, SECRET_KEY};

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// `mediagate` with the shared harness's S3 and the given broker URL.
fn mediagate(amqp: &str) -> Command {
    let h = harness();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mediagate"));
    cmd.env("MEDIAGATE_AMQP_URL", amqp)
        .env("MEDIAGATE_S3_ENDPOINT", h.s3.endpoint())
        .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
        .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
        .env("AWS_REGION", "us-east-1")
        .env("MEDIAGATE_LOG_FORMAT", "text")
        .env("MEDIAGATE_S3_ATTEMPTS", "1");
    cmd
}

/// The Python producer of `examples/` publishing one photo to `amqp`; waits `timeout` s.
fn python_producer(amqp: &str, photo: &std::path::Path, timeout: &str) -> Output {
    let h = harness();
    let python = crate::support::workspace_root().join(".local/venv-examples/bin/python");
    assert!(python.exists(), "{} is missing: run `make test` (it creates the examples' venv)", python.display());
    Command::new(&python)
        .arg(crate::support::workspace_root().join("examples/python/producer.py"))
        .args([photo.to_str().unwrap(), "--timeout", timeout])
        .env("MEDIAGATE_AMQP_URL", amqp)
        .env("MEDIAGATE_S3_ENDPOINT", h.s3.endpoint())
        .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
        .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
        .env("AWS_REGION", "us-east-1")
        .output()
        .unwrap()
}

fn unbind_uploads(amqp: &str) {
    harness().rt.block_on(async {
        let conn = Connection::connect(amqp, ConnectionProperties::default()).await.unwrap();
        let ch = conn.create_channel().await.unwrap();
        ch.queue_unbind("mediagate.uploads".into(), "mediagate.jobs".into(), "upload".into(), FieldTable::default())
            .await
            .unwrap();
        conn.close(200, "unbound".into()).await.unwrap();
    });
}

fn depth(amqp: &str, queue: &str) -> u32 {
    harness().rt.block_on(async {
        let conn = Connection::connect(amqp, ConnectionProperties::default()).await.unwrap();
        let d = queue_depth(&conn, queue).await;
        let _ = conn.close(200, "depth".into()).await;
        d
    })
}

/// A job published with `mandatory` before any worker ran is returned (the Python example and
/// our own publisher both say so), `ensure-topology` sets the broker up, and then the same
/// publish is confirmed and waits in `mediagate.uploads`.
#[test]
fn before_the_topology_exists_a_mandatory_publish_is_returned_not_lost() {
    let vhost = TestVhost::create("topo");
    let dir = tempfile::tempdir().unwrap();
    let photo = dir.path().join("p.jpg");
    std::fs::write(&photo, jpeg(320, 240, 3)).unwrap();

    // A broker nobody has set up: the exchange itself is missing.
    let out = python_producer(&vhost.url, &photo, "1");
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(text(&out).contains("NOT published") && text(&out).contains("ensure-topology"), "{}", text(&out));

    // ensure-topology: every §1 declaration, one line each, exit 0; idempotent.
    for _ in 0..2 {
        let out = mediagate(&vhost.url).arg("ensure-topology").output().unwrap();
        let t = text(&out);
        assert_eq!(out.status.code(), Some(0), "{t}");
        for name in [
            "exchange mediagate.jobs",
            "queue mediagate.uploads",
            "queue mediagate.escalations",
            "binding mediagate.uploads <- mediagate.jobs key \"upload\"",
            "binding mediagate.dead <- mediagate.dead key \"\"",
        ] {
            assert!(t.lines().any(|l| l == format!("✔ {name}")), "{name}: {t}");
        }
        assert_eq!(t.lines().filter(|l| l.starts_with('✔')).count(), 14, "4 exchanges, 5 queues, 5 bindings: {t}");
    }
    let args = vhost.ctl(&["list_queues", "-p", &vhost.name, "name", "arguments"]);
    assert!(args.lines().any(|l| l.starts_with("mediagate.uploads") && l.contains("x-delivery-limit")), "{args}");

    // The exchange and the queue exist but the queue is not bound (the race a probe hit: 9 jobs
    // confirmed and dropped): the publish comes back.
    unbind_uploads(&vhost.url);
    let out = python_producer(&vhost.url, &photo, "1");
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(text(&out).contains("returned"), "{}", text(&out));
    let err = harness().rt.block_on(async {
        let broker = Broker::connect(&vhost.url).await.unwrap();
        let publisher = broker.job_publisher().await.unwrap();
        let r = publisher.publish("upload", "t-topo-rust", b"{}".to_vec()).await;
        broker.close().await;
        r
    });
    assert!(matches!(err, Err(QueueError::Unroutable { .. })), "our own publisher sees the return: {err:?}");
    assert_eq!(depth(&vhost.url, "mediagate.uploads"), 0, "nothing reached the queue");

    // doctor names the missing binding and its fix (the management API lists bindings).
    let out = mediagate(&vhost.url).arg("doctor").output().unwrap();
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    let l =
        t.lines().find(|l| l.contains("binding mediagate.uploads <- mediagate.jobs")).unwrap_or_else(|| panic!("{t}"));
    assert!(l.starts_with('✘') && l.contains("missing"), "{t}");
    assert!(t.contains("fix: run `mediagate ensure-topology`"), "{t}");
    assert!(t.lines().any(|l| l.starts_with("✔ binding mediagate.reprocess <- mediagate.jobs")), "the others: {t}");

    // ensure-topology again: bound; the same publish is confirmed and waits for a worker.
    let out = mediagate(&vhost.url).arg("ensure-topology").output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let out = python_producer(&vhost.url, &photo, "1");
    assert_eq!(out.status.code(), Some(1), "published, then no verdict within 1 s (no worker): {}", text(&out));
    assert!(text(&out).contains("published py-"), "{}", text(&out));
    assert_eq!(depth(&vhost.url, "mediagate.uploads"), 1, "the job waits in the queue");
    let out = mediagate(&vhost.url).arg("doctor").output().unwrap();
    let t = text(&out);
    assert!(t.lines().any(|l| l.starts_with("✔ binding mediagate.uploads <- mediagate.jobs")), "{t}");
}

/// A queue declared by hand with other arguments: ensure-topology names it with the broker's
/// words and the fix, declares everything else, and exits 1.
#[test]
fn ensure_topology_names_a_queue_it_cannot_declare() {
    let vhost = TestVhost::create("topo-bad");
    harness().rt.block_on(async {
        let conn = Connection::connect(&vhost.url, ConnectionProperties::default()).await.unwrap();
        let ch = conn.create_channel().await.unwrap();
        let durable = lapin::options::QueueDeclareOptions { durable: true, ..Default::default() };
        ch.queue_declare("mediagate.reprocess".into(), durable, FieldTable::default()).await.unwrap();
        conn.close(200, "done".into()).await.unwrap();
    });
    let out = mediagate(&vhost.url).arg("ensure-topology").output().unwrap();
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    let l = t.lines().find(|l| l.starts_with("✘ queue mediagate.reprocess")).unwrap_or_else(|| panic!("{t}"));
    assert!(l.contains("PRECONDITION_FAILED") || l.contains("inequivalent"), "the broker's words: {t}");
    assert!(t.contains("drain it, delete it"), "{t}");
    assert!(t.lines().any(|l| l == "✔ queue mediagate.uploads"), "the rest is declared: {t}");
    assert!(t.lines().any(|l| l.starts_with("✔ binding mediagate.uploads")), "{t}");
}

/// The ledger's binary, as the compose tests use it, against the shared harness's worker: a
/// few photos, a voice note and a bad file, every job accounted for, the table printed.
#[test]
fn the_ledger_binary_accounts_for_every_job_of_a_real_worker() {
    let h = harness();
    let exe = std::path::Path::new(env!("CARGO_BIN_EXE_mediagate")).with_file_name("mediagate-ledger");
    assert!(
        exe.exists(),
        "{} is missing: `make test` builds every binary of the workspace (cargo test --workspace --bins)",
        exe.display()
    );
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.jpg"), jpeg(640, 480, 11)).unwrap();
    std::fs::write(dir.path().join("b.jpg"), jpeg(300, 500, 12)).unwrap();
    std::fs::write(dir.path().join("c.wav"), crate::support::media::wav(1500)).unwrap();
    std::fs::write(dir.path().join("d.bin"), b"not media at all".repeat(10)).unwrap();
    let out = Command::new(exe)
        .args(["run", "--media", dir.path().to_str().unwrap(), "--jobs", "8", "--timeout", "120"])
        .env("MEDIAGATE_AMQP_URL", crate::support::amqp_url(&h.vhost))
        .env("MEDIAGATE_S3_ENDPOINT", h.s3.endpoint())
        .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
        .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
        .env("AWS_REGION", "us-east-1")
        .output()
        .unwrap();
    let t = text(&out);
    assert_eq!(out.status.code(), Some(0), "{t}");
    let row = |name: &str| -> u64 {
        t.lines()
            .find_map(|l| l.strip_prefix(name).and_then(|r| r.trim().parse().ok()))
            .unwrap_or_else(|| panic!("no {name} row: {t}"))
    };
    assert_eq!((row("published"), row("confirmed"), row("lost")), (8, 8, 0), "{t}");
    assert!(row("verdicts") >= 8, "{t}");
    assert_eq!(row("status rejected"), 2, "the two bad files: {t}");
}
