//! SIGTERM with jobs queued: the worker stops taking jobs, finishes the one in hand (verdict
//! published, job acked), exits 0, and leaves the rest queued for other workers.

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use lapin::options::*;
use lapin::{BasicProperties, Connection, ConnectionProperties};

use crate::support::media::jpeg;
use crate::support::*;

#[test]
fn sigterm_finishes_the_job_in_hand_and_leaves_the_rest_queued() {
    let h = harness(); // shared S3 server and sources; this test has its own vhost and worker
    let vhost = create_vhost("sd");
    let mut env = worker_env(&vhost, &h.s3);
    env.retain(|(k, _)| *k != "MEDIAGATE_CONCURRENCY");
    env.push(("MEDIAGATE_CONCURRENCY", "1".into()));
    let log = h.logdir.path().join("worker-shutdown.log");
    let mut worker = Tethered::spawn(std::path::Path::new(env!("CARGO_BIN_EXE_mediagate")), &["worker"], &env, &log);

    let total = 6;
    let src = jpeg(4000, 3000, 42);
    let ids: Vec<String> = (0..total).map(|_| job_id("sd")).collect();
    for id in &ids {
        h.put("incoming", &format!("{id}/0.jpg"), src.clone());
    }
    wait_ready(&metrics_addr_of(&env), &log);
    h.rt.block_on(async {
        let conn = Connection::connect(&amqp_url(&vhost), ConnectionProperties::default()).await.expect("connect");
        let (ch, mut verdicts) = private_verdicts(&conn).await;
        ch.confirm_select(ConfirmSelectOptions::default()).await.unwrap();
        for id in &ids {
            let key = format!("{id}/0.jpg");
            let body = media_job(id, &[&key]).to_string();
            let props = BasicProperties::default().with_delivery_mode(2).with_message_id(id.as_str().into());
            let c = ch
                .basic_publish("mediagate.jobs".into(), "upload".into(), MANDATORY, body.as_bytes(), props)
                .await
                .unwrap()
                .await
                .unwrap();
            assert_published(c);
        }
        // Let the first verdict arrive, so the worker is busy with the second job, then stop it.
        let first = tokio::time::timeout(Duration::from_secs(60), verdicts.next()).await.expect("a first verdict");
        assert!(first.is_some());
        let started = Instant::now();
        let code = tokio::task::block_in_place(|| worker.terminate(Duration::from_secs(60)));
        assert_eq!(
            code,
            Some(0),
            "worker exit code after SIGTERM; log:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        let mut seen = 1;
        while let Ok(Some(Ok(_))) = tokio::time::timeout(Duration::from_millis(500), verdicts.next()).await {
            seen += 1;
        }
        let queued = queue_depth(&conn, "mediagate.uploads").await;
        assert!(seen >= 1 && seen < total, "verdicts {seen} of {total}: the worker must stop early");
        assert_eq!(queued as usize, total - seen, "every job either got its verdict or is still queued");
        let log_text = std::fs::read_to_string(&log).unwrap_or_default();
        assert!(log_text.contains("shutdown requested"), "{log_text}");
        // A clean stop pages nobody: not one ERROR line (lapin used to log one while closing).
        let errors: Vec<&str> = log_text.lines().filter(|l| l.contains("ERROR")).collect();
        assert!(errors.is_empty(), "a clean stop logged errors: {errors:#?}");
        assert!(started.elapsed() < Duration::from_secs(60));
    });
}
