//! The Grafana dashboard and the Prometheus rules in `deploy/`: every `mediagate_*` name they
//! use is one a running worker exports (before it has counted anything), the rules and the
//! scrape configuration pass `promtool`, and the dashboard is wired to the provisioned source.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::support::{harness, http_get};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(repo().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// Every `mediagate_…` metric name in a text.
fn names_in(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("mediagate_") {
        let before = rest[..at].chars().next_back();
        let tail = &rest[at..];
        let end = tail.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(tail.len());
        // A name starts a word (not `x_mediagate_…`) and is more than the prefix (`mediagate_*`
        // in a comment).
        let name = &tail[..end];
        if !before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') && !name.ends_with('_') {
            names.insert(name.to_string());
        }
        rest = &tail[end..];
    }
    names
}

/// The sample names of a scrape (histograms' `_bucket`, `_sum`, `_count` included).
fn exported(scrape: &str) -> BTreeSet<String> {
    scrape
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| l.split(['{', ' ']).next())
        .map(str::to_string)
        .collect()
}

/// Every expression of the dashboard's panels (rows hold none).
fn dashboard_exprs(dashboard: &Value) -> Vec<String> {
    let mut exprs = Vec::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().into_iter().flatten() {
            exprs.push(target["expr"].as_str().expect("a target's expr").to_string());
        }
    }
    exprs
}

#[test]
fn dashboard_and_alerts_use_only_metrics_a_worker_exports() {
    let h = harness();
    let (code, scrape) = http_get(&h.metrics_addr, "/metrics");
    assert_eq!(code, 200);
    let exported = exported(&scrape);

    let dashboard: Value = serde_json::from_str(&read("deploy/grafana/dashboards/mediagate.json")).expect("JSON");
    let exprs = dashboard_exprs(&dashboard);
    assert!(exprs.len() >= 20, "the dashboard's panels carry their queries: {}", exprs.len());
    let rules = read("deploy/prometheus/alerts.yml");
    let mut used = names_in(&exprs.join("\n"));
    let in_rules = names_in(&rules);
    assert!(used.len() >= 15 && in_rules.len() >= 8, "names found: {used:?} and {in_rules:?}");
    used.extend(in_rules);

    let missing: Vec<&String> = used.iter().filter(|n| !exported.contains(*n)).collect();
    assert!(
        missing.is_empty(),
        "the dashboard or the rules use metrics no worker exports: {missing:?}\nexported: {exported:?}"
    );
    // The issue's list: each of these is on the dashboard.
    for needed in [
        "mediagate_jobs_total",
        "mediagate_items_total",
        "mediagate_stage_seconds_bucket",
        "mediagate_slots_busy",
        "mediagate_sandbox_runs_total",
        "mediagate_retries_total",
        "mediagate_dead_lettered_total",
        "mediagate_hash_matches_total",
    ] {
        assert!(exprs.iter().any(|e| e.contains(needed)), "no panel shows {needed}");
    }
    assert!(exprs.iter().any(|e| e.contains("rabbitmq_detailed_queue_messages_ready")), "queue depth panel");

    // Every panel queries the provisioned data source.
    let source = read("deploy/grafana/provisioning/datasources/prometheus.yml");
    assert!(source.contains("uid: prometheus"), "{source}");
    for panel in dashboard["panels"].as_array().unwrap().iter().filter(|p| p["type"] != "row") {
        assert_eq!(panel["datasource"]["uid"], "prometheus", "panel {}", panel["title"]);
    }
}

/// Label sets are registered at start-up: a series a rule or a panel selects exists at zero.
#[test]
fn label_sets_exist_before_anything_was_counted() {
    let h = harness();
    let (_, scrape) = http_get(&h.metrics_addr, "/metrics");
    for series in [
        "mediagate_jobs_total{lane=\"live\",status=\"failed\"}",
        "mediagate_items_total{media_type=\"video\",reason=\"input.too_long\",status=\"rejected\"}",
        "mediagate_sandbox_runs_total{outcome=\"timed_out\"}",
        "mediagate_retries_total{cause=\"storage_in_place\"}",
        "mediagate_escalation_failures_total",
        "mediagate_hash_bank_reload_failures_total{bank=\"confirmed\"}",
        "mediagate_slots ",
        "mediagate_storage_up 1",
    ] {
        assert!(scrape.contains(series), "{series} is not in the scrape:\n{scrape}");
    }
}

fn promtool() -> &'static str {
    let found = std::process::Command::new("promtool").arg("--version").output();
    assert!(
        found.is_ok_and(|o| o.status.success()),
        "promtool is needed to check deploy/prometheus (Debian's `prometheus` package; `make test` installs it)"
    );
    "promtool"
}

#[test]
fn the_rules_and_the_scrape_configuration_pass_promtool() {
    let rules = repo().join("deploy/prometheus/alerts.yml");
    let out = std::process::Command::new(promtool()).args(["check", "rules"]).arg(&rules).output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "promtool check rules: {text}");
    assert!(text.contains("SUCCESS: 16 rules found"), "{text}");

    // The configurations (one broker, and the three-node cluster of deploy/compose) name the
    // rules where the compose file mounts them; check them with the real paths in their place.
    let dir = tempfile::tempdir().unwrap();
    let fleet = repo().join("deploy/prometheus/fleet.yml");
    for file in ["deploy/prometheus/prometheus.yml", "deploy/compose/prometheus-cluster.yml"] {
        let config = read(file)
            .replace("/etc/prometheus/alerts.yml", rules.to_str().unwrap())
            .replace("/etc/prometheus/fleet.yml", fleet.to_str().unwrap());
        let path = dir.path().join("prometheus.yml");
        std::fs::write(&path, config).unwrap();
        let out = std::process::Command::new(promtool()).args(["check", "config"]).arg(&path).output().unwrap();
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success(), "promtool check config {file}: {text}");
        assert!(text.contains("SUCCESS: 16 rules found") && text.contains("SUCCESS: 1 rules found"), "{file}: {text}");
    }

    // A broken rule is caught (the check can fail).
    let broken = dir.path().join("broken.yml");
    std::fs::write(&broken, read("deploy/prometheus/alerts.yml").replacen("expr: sum(", "expr: sum((", 1)).unwrap();
    let out = std::process::Command::new(promtool()).args(["check", "rules"]).arg(&broken).output().unwrap();
    assert!(!out.status.success(), "a rule with unbalanced parentheses must not pass");
}

/// The cluster's configuration is the single broker's with every node listed, nothing else.
#[test]
fn the_cluster_scrape_configuration_differs_only_in_its_broker_targets() {
    let single = read("deploy/prometheus/prometheus.yml");
    let cluster = read("deploy/compose/prometheus-cluster.yml");
    let body = |text: &str| text[text.find("global:").expect("global:")..].to_string();
    let listed = body(&single).replace(
        r#"targets: ["rabbitmq:15692"]"#,
        r#"targets: ["rabbitmq:15692", "rabbitmq-2:15692", "rabbitmq-3:15692"]"#,
    );
    assert_ne!(listed, body(&single), "the single broker's targets were not found");
    assert_eq!(
        body(&cluster),
        listed,
        "deploy/compose/prometheus-cluster.yml drifted from deploy/prometheus/prometheus.yml"
    );
}

/// The alerts that count across series (workers missing against fleet.yml, unread verdicts and
/// escalations, quorum-queue members, a broker node down) fire and stay quiet as
/// `deploy/prometheus/alerts_test.yml` says, by Prometheus' own rule engine.
#[test]
fn the_alert_rules_pass_their_unit_tests() {
    let run = |dir: &Path| {
        let out = std::process::Command::new(promtool())
            .args(["test", "rules", "alerts_test.yml"])
            .current_dir(dir)
            .output()
            .unwrap();
        (
            out.status.success(),
            format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)),
        )
    };
    let (ok, text) = run(&repo().join("deploy/prometheus"));
    assert!(ok && text.contains("SUCCESS"), "promtool test rules: {text}");
    for alert in [
        "MediagateWorkersMissing",
        "MediagateVerdictsUnread",
        "MediagateEscalationsUnread",
        "MediagateQuorumQueueMembersMissing",
        "MediagateBrokerNodeDown",
    ] {
        assert!(read("deploy/prometheus/alerts_test.yml").contains(&format!("alertname: {alert}")), "{alert} untested");
    }

    // The tests can fail: with two workers expected instead of one, they do.
    let dir = tempfile::tempdir().unwrap();
    for file in ["alerts.yml", "alerts_test.yml"] {
        std::fs::copy(repo().join("deploy/prometheus").join(file), dir.path().join(file)).unwrap();
    }
    let fleet = read("deploy/prometheus/fleet.yml");
    assert!(fleet.contains("expr: vector(1)"), "{fleet}");
    std::fs::write(dir.path().join("fleet.yml"), fleet.replace("expr: vector(1)", "expr: vector(2)")).unwrap();
    let (ok, text) = run(dir.path());
    assert!(!ok && text.contains("MediagateWorkersMissing"), "a wrong expected count must fail the tests: {text}");
}

#[test]
fn names_are_found_as_words() {
    let found = names_in("sum(rate(mediagate_jobs_total[5m])) / x_mediagate_no + mediagate_slots_busy # mediagate_*");
    assert_eq!(found.into_iter().collect::<Vec<_>>(), ["mediagate_jobs_total", "mediagate_slots_busy"]);
}
