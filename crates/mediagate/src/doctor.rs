//! `mediagate doctor`: is this deployment ready to run workers? (contract §7)
//!
//! One line per check, `✔` or `✘` with what to do, in this order: the settings (the worker's
//! own start-up validation, with the memory budget's split), the broker (connect) and each §1
//! exchange and queue (present with the contract's type and arguments: absent is a failure, since
//! producers' jobs are returned until `ensure-topology` or a worker declares it) and each §1
//! binding (through the management API, since AMQP cannot list bindings; `?` when it cannot be
//! reached), each bucket's permissions (§6: listed, and a
//! probe object written, read back and deleted where the worker writes; where only `review` and
//! `erase` delete, a worker's credentials without s3:DeleteObject pass), the model and the ONNX
//! Runtime library (their sha256, by loading them as the worker does), the sandbox (a fork
//! server started and locked down: seccomp and `no_new_privs` available), and the hash banks
//! (loaded, with their entry counts). The checks take the worker's flags and variables, so
//! `doctor` judges exactly the configuration a worker started with them would run.
//!
//! Exit status: 0 only when every check passed, 1 otherwise; `--json` prints one object with
//! every check instead of the lines.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Result;
use mediagate_queue::{Broker, Found};
use mediagate_store::{Store, StoreError};
use mediagate_worker::banks::HashBanks;
use mediagate_worker::WorkerConfig;
use serde::Serialize;

use crate::cli::{Common, DoctorArgs};
use crate::topology::BindingFound;

/// One check's outcome.
#[derive(Debug, Serialize)]
struct Check {
    /// What was checked (`bucket media`, `queue mediagate.uploads`…).
    name: String,
    ok: bool,
    /// What was found.
    detail: String,
    /// What to do about a failure.
    #[serde(skip_serializing_if = "Option::is_none")]
    fix: Option<String>,
    /// False when nothing could be checked (shown as `?`; it does not fail the run).
    checked: bool,
}

impl Check {
    fn pass(name: impl Into<String>, detail: impl Into<String>) -> Check {
        Check { name: name.into(), ok: true, detail: detail.into(), fix: None, checked: true }
    }

    fn unchecked(name: impl Into<String>, detail: impl Into<String>) -> Check {
        Check { name: name.into(), ok: true, detail: detail.into(), fix: None, checked: false }
    }

    fn fail(name: impl Into<String>, detail: impl Into<String>, fix: impl Into<String>) -> Check {
        Check { name: name.into(), ok: false, detail: detail.into(), fix: Some(fix.into()), checked: true }
    }
}

/// What each bucket is used for, hence what `doctor` tries on it.
#[derive(Debug, Default, Clone, Copy)]
struct Needs {
    read: bool,
    write: bool,
    /// The worker deletes here (stale outputs). Where it writes but does not delete (manifests,
    /// quarantine), only `review` and `erase` do: a worker's least-privileged credentials may
    /// lack s3:DeleteObject there.
    delete: bool,
}

pub async fn run(common: &Common, args: DoctorArgs) -> Result<ExitCode> {
    let mut checks = Vec::new();
    let config = match crate::worker_config(common, &args.worker) {
        Ok(c) => {
            checks.push(settings_check(&c));
            Some(c)
        }
        Err(e) => {
            checks.push(Check::fail("settings", e.to_string(), format!("set {} to an accepted value", e.var)));
            None
        }
    };
    // Every node of the list: a worker may be sent to any of them.
    let several = common.amqp_url.all().len() > 1;
    for url in common.amqp_url.all() {
        let node = mediagate_queue::redact_url(url);
        for mut check in broker_checks(url, args.management_url.as_deref()).await {
            if several {
                check.name = format!("{node}: {}", check.name);
            }
            checks.push(check);
        }
    }
    let store = match Store::connect(&crate::store_config(common)).await {
        Ok(s) => Some(s),
        Err(e) => {
            checks.push(Check::fail(
                "S3",
                e.to_string(),
                "check MEDIAGATE_S3_ENDPOINT, AWS_REGION and the credentials",
            ));
            None
        }
    };
    if let Some(store) = &store {
        for (bucket, needs) in buckets(common) {
            checks.push(bucket_check(store, &bucket, needs).await);
        }
    }
    let classifier = match &config {
        Some(c) => mediagate_classify::ClassifierConfig::with_paths(c.model_paths.clone(), c.classifier_threads),
        None => mediagate_classify::ClassifierConfig::resolve(1),
    };
    checks.push(model_check(classifier).await);
    if let Some(config) = &config {
        checks.push(sandbox_check(common, &args, config).await);
        if let Some(store) = &store {
            checks.extend(bank_checks(config, store).await);
        }
    }
    let ok = checks.iter().all(|c| c.ok);
    if args.json {
        println!("{}", serde_json::json!({ "ok": ok, "checks": checks }));
    } else {
        for c in &checks {
            match &c.fix {
                None if !c.checked => println!("? {}: {}", c.name, c.detail),
                None => println!("✔ {}: {}", c.name, c.detail),
                Some(fix) => println!("✘ {}: {}\n    fix: {fix}", c.name, c.detail),
            }
        }
        let failed = checks.iter().filter(|c| !c.ok).count();
        if failed == 0 {
            println!("all {} checks passed", checks.len());
        } else {
            println!("{failed} of {} checks failed", checks.len());
        }
    }
    Ok(if ok { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

fn settings_check(c: &WorkerConfig) -> Check {
    match c.memory() {
        Ok(m) => Check::pass(
            "settings",
            format!(
                "valid; concurrency {}, memory budget {} MiB = worker {} + inputs {} + {} × {} per media child",
                c.concurrency,
                m.total_mb,
                m.worker_mb,
                m.inputs_bytes >> 20,
                m.children,
                m.child_mb
            ),
        ),
        Err(e) => Check::fail("settings", e.to_string(), format!("set {} to an accepted value", e.var)),
    }
}

async fn broker_checks(url: &str, management_url: Option<&str>) -> Vec<Check> {
    let broker = match Broker::connect_named(url, "mediagate doctor").await {
        Ok(b) => b,
        Err(e) => {
            return vec![Check::fail(
                "broker",
                e.to_string(),
                "check MEDIAGATE_AMQP_URL (host, port, user, password, vhost) and that RabbitMQ is running",
            )]
        }
    };
    let mut checks = vec![Check::pass("broker", "connected")];
    match broker.inspect_topology().await {
        Ok(found) => {
            for (name, state) in found {
                checks.push(match state {
                    Found::Matches => Check::pass(&name, "present, as contract §1 declares it"),
                    Found::Absent => Check::fail(
                        &name,
                        "absent: until it exists, producers' jobs are returned to them (or lost, without `mandatory`)",
                        "run `mediagate ensure-topology` (a worker also declares it when it starts)",
                    ),
                    Found::Differs(why) => Check::fail(
                        &name,
                        format!("present with another type or other arguments than contract §1's ({why})"),
                        "a queue's arguments cannot be changed in place: drain it, delete it, and let the worker \
                         declare it again",
                    ),
                });
            }
        }
        Err(e) => checks.push(Check::fail("topology", e.to_string(), "check the user's configure/read permissions")),
    }
    broker.close().await;
    checks.extend(binding_checks(url, management_url).await);
    checks
}

/// §1's bindings, through the management API; one `not checked` line when it cannot tell.
async fn binding_checks(url: &str, management_url: Option<&str>) -> Vec<Check> {
    let Some(api) = mediagate_queue::ManagementApi::for_amqp_url(url, management_url) else {
        return vec![Check::unchecked("bindings", "the AMQP URL does not parse, so the management API is unknown")];
    };
    match crate::topology::inspect_bindings(&api).await {
        Ok(found) => found
            .into_iter()
            .map(|(name, state)| match state {
                BindingFound::Present => Check::pass(&name, "present"),
                BindingFound::Missing => Check::fail(
                    &name,
                    "missing: the queue exists but receives nothing, and producers' jobs are returned (or lost, \
                     without `mandatory`)",
                    "run `mediagate ensure-topology`",
                ),
                BindingFound::NoEndpoint => {
                    Check::fail(&name, "its exchange or queue is absent", "run `mediagate ensure-topology`")
                }
            })
            .collect(),
        Err(why) => vec![Check::unchecked(
            "bindings",
            format!(
                "not checked: AMQP cannot list bindings and the management API could not tell ({why}); enable \
                 rabbitmq_management or pass --management-url. `mediagate ensure-topology` (re)declares them \
                 idempotently"
            ),
        )],
    }
}

/// Every configured bucket and what the worker, `review` and `erase` do with it (§6).
fn buckets(common: &Common) -> BTreeMap<String, Needs> {
    let mut all: BTreeMap<String, Needs> = BTreeMap::new();
    for b in common.source_buckets.iter().map(|b| b.trim()).filter(|b| !b.is_empty()) {
        all.entry(b.to_string()).or_default().read = true;
    }
    let output = all.entry(common.output_bucket.clone()).or_default();
    (output.write, output.delete) = (true, true);
    let manifests = all.entry(crate::manifest_bucket(common)).or_default();
    (manifests.read, manifests.write) = (true, true);
    if let Some(q) = Some(common.quarantine_bucket.trim()).filter(|q| !q.is_empty()) {
        let q = all.entry(q.to_string()).or_default();
        (q.read, q.write) = (true, true);
    }
    all
}

/// The probe's key where the worker may not be allowed to delete it.
const FIXED_PROBE: &str = ".mediagate-doctor/probe";

async fn bucket_check(store: &Store, bucket: &str, needs: Needs) -> Check {
    let name = format!("bucket {bucket}");
    let fix = |what: &str| {
        format!(
            "grant {what} on {bucket} (contract §6), or create the bucket (`mediagate ensure-buckets` for a local set-up)"
        )
    };
    let denied = |e: &StoreError, what: &str| Check::fail(&name, e.to_string(), fix(what));
    if let Err(e) = store.list_pages(bucket, "").page_size(1).next_page().await {
        return denied(&e, "s3:ListBucket");
    }
    // Where the worker may lack s3:DeleteObject, the probe has one fixed key: a probe that cannot
    // be deleted is overwritten by the next run instead of piling up.
    let probe = if needs.delete {
        format!(".mediagate-doctor/{}-{}", std::process::id(), time::OffsetDateTime::now_utc().unix_timestamp_nanos())
    } else {
        FIXED_PROBE.to_string()
    };
    let mut did = vec!["listed"];
    if needs.read && !needs.write {
        // Read-only (a source bucket): a missing key must read as missing, not as denied.
        match store.get(bucket, &probe).await {
            Err(StoreError::NotFound { .. }) => did.push("a missing key reads as missing"),
            Ok(_) => did.push("read"),
            Err(e) => return denied(&e, "s3:GetObject"),
        }
    }
    if needs.write {
        if let Err(e) = store.put(bucket, &probe, b"mediagate doctor probe".to_vec(), "text/plain").await {
            return denied(&e, "s3:PutObject");
        }
        did.push("probe written");
        if needs.read {
            match store.get(bucket, &probe).await {
                Ok(b) if b == b"mediagate doctor probe" => did.push("read back"),
                Ok(_) => return Check::fail(&name, "the probe object read back different", "check the S3 endpoint"),
                Err(e) => return denied(&e, "s3:GetObject"),
            }
        }
        match store.delete(bucket, &probe).await {
            Ok(()) => did.push("deleted"),
            Err(StoreError::Denied { .. }) if !needs.delete => did.push(
                "not deleted: s3:DeleteObject is not granted, which the worker does not need here \
                 (`review` and `erase` do, with their own credentials); the probe stays at \
                 .mediagate-doctor/probe, overwritten by each run",
            ),
            Err(e) => {
                return Check::fail(
                    &name,
                    format!("{e}; the probe object s3://{bucket}/{probe} is left behind"),
                    fix("s3:DeleteObject"),
                )
            }
        }
    }
    Check::pass(&name, did.join(", "))
}

async fn model_check(cfg: mediagate_classify::ClassifierConfig) -> Check {
    match tokio::task::spawn_blocking(move || mediagate_classify::Classifier::load(&cfg)).await {
        Ok(Ok(c)) => Check::pass(
            "model",
            format!("{} (sha256 {}) and ONNX Runtime load, checksums match", c.model_name(), c.model_sha256()),
        ),
        Ok(Err(e)) => {
            Check::fail("model", e.to_string(), "run `make models` (or set the model paths the message names)")
        }
        Err(e) => Check::fail("model", format!("loading failed: {e}"), "run `make models`"),
    }
}

async fn sandbox_check(common: &Common, args: &DoctorArgs, config: &WorkerConfig) -> Check {
    let sandbox = match crate::media_sandbox(common, &args.worker, config) {
        Ok(s) => s,
        Err(e) => return Check::fail("sandbox", format!("{e:#}"), "check the binary's path and MEDIAGATE_SANDBOX"),
    };
    if sandbox.mode() == mediagate_sandbox::Mode::InProcess {
        return Check::fail(
            "sandbox",
            "MEDIAGATE_SANDBOX=off: media is parsed inside the worker, with no isolation",
            "run with MEDIAGATE_SANDBOX=process where seccomp and no_new_privs are available",
        );
    }
    match tokio::time::timeout(Duration::from_secs(30), sandbox.warm_up()).await {
        Ok(Ok(())) => match sandbox.layers() {
            Some(layers) => Check::pass("sandbox", format!("a fork server started and locked itself down: {layers}")),
            None => Check::fail("sandbox", "the fork server did not say what it entered", "check the log"),
        },
        Ok(Err(e)) => Check::fail(
            "sandbox",
            e.to_string(),
            "allow seccomp and no_new_privs (Docker and Kubernetes do by default)",
        ),
        Err(_) => {
            Check::fail("sandbox", "the fork server did not start within 30 s", "check the host's load and the log")
        }
    }
}

async fn bank_checks(config: &WorkerConfig, store: &Store) -> Vec<Check> {
    let specs = match config.bank_specs() {
        Ok(s) => s,
        Err(e) => return vec![Check::fail("banks", e.to_string(), "fix MEDIAGATE_HASH_BANKS")],
    };
    if specs.is_empty() {
        return vec![Check::pass("banks", "none configured")];
    }
    // Counted on a registry of its own: doctor serves no metrics.
    let metrics = match mediagate_worker::metrics::Metrics::new() {
        Ok(m) => std::sync::Arc::new(m),
        Err(e) => return vec![Check::fail("banks", format!("registering the metrics: {e}"), "report this bug")],
    };
    match HashBanks::load(specs, store, metrics).await {
        Ok(banks) => banks
            .current()
            .stats()
            .into_iter()
            .map(|s| {
                Check::pass(
                    format!("bank {}", s.name),
                    format!("loaded: {} sha256, {} md5, {} pdq entries", s.sha256, s.md5, s.pdq),
                )
            })
            .collect(),
        Err(e) => vec![Check::fail(
            "banks",
            e.to_string(),
            "fix the bank's source, or its permissions (s3:GetObject, s3:ListBucket)",
        )],
    }
}
