//! Real Alertmanager clients against a running Klaxon: a Prometheus server
//! (Debian's `prometheus`) with Klaxon as its Alertmanager delivers a firing
//! alert to a local webhook receiver, and `amtool` (Debian's
//! `prometheus-alertmanager`) queries alerts, adds, lists and expires
//! silences, and tests routes through the API. `.ci/run` installs both.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use serde_json::{Value, json};

fn config(receiver: &str) -> String {
    format!(
        r#"route:
  receiver: default
  group_by: [alertname, model_name]
  group_wait: 200ms
  group_interval: 500ms
  repeat_interval: 1h
  routes:
    - matchers: [severity="critical"]
      receiver: pager
      continue: true
    - matchers: [team="ml"]
      receiver: ml
receivers:
  - name: default
    webhook_configs: [{{ url: "{receiver}/hook", allowed_networks: ["127.0.0.1/32"] }}]
  - name: pager
    webhook_configs: [{{ url: "{receiver}/hook", allowed_networks: ["127.0.0.1/32"] }}]
  - name: ml
    webhook_configs: [{{ url: "{receiver}/hook", allowed_networks: ["127.0.0.1/32"] }}]
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_sends_its_alerts_to_klaxon() {
    let bin = debian_bin("prometheus", "PROMETHEUS_BIN", "prometheus");
    let (receiver, received) = start_receiver().await;
    let server = start_klaxon(&config(&receiver)).await;
    let klaxon = server.addr();

    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("rules.yml"),
        r#"groups:
  - name: ml
    interval: 1s
    rules:
      - alert: ModelAccuracyLow
        expr: vector(0.61) < 0.8
        labels:
          model_name: fraud
          severity: critical
        annotations:
          summary: "accuracy {{ $value }} below 0.8"
"#,
    )
    .expect("write rules.yml");
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            r#"global:
  evaluation_interval: 1s
rule_files: [rules.yml]
alerting:
  alertmanagers:
    - api_version: v2
      static_configs:
        - targets: ["{klaxon}"]
"#
        ),
    )
    .expect("write prometheus.yml");
    let log = dir.path().join("prometheus.log");
    let child = Command::new(&bin)
        .arg(format!("--config.file={}", config.display()))
        // Alerts evaluated before the Alertmanager target is discovered
        // (discovery syncs every 5 s) are dropped; re-send every second.
        .arg("--rules.alert.resend-delay=1s")
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{}", free_port()))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log file"))
        .spawn()
        .expect("start prometheus");
    let _prometheus = Process { child, log };

    let client = reqwest::Client::new();
    let listed = eventually(
        Duration::from_secs(60),
        "Prometheus to post its alert",
        || {
            let (c, u) = (client.clone(), format!("http://{klaxon}/api/v2/alerts"));
            async move {
                let v = get_json(&c, &u).await;
                v.as_array().is_some_and(|a| !a.is_empty()).then_some(v)
            }
        },
    )
    .await;
    let bodies = received.wait_for(1, Duration::from_secs(10)).await;
    let body = &bodies[0];
    assert_eq!(body["receiver"], "pager", "{body:#}");
    assert_eq!(body["status"], "firing");
    let alert = &body["alerts"][0];
    assert_eq!(alert["labels"]["alertname"], "ModelAccuracyLow");
    assert_eq!(alert["labels"]["model_name"], "fraud");
    assert_eq!(alert["annotations"]["summary"], "accuracy 0.61 below 0.8");
    assert!(
        alert["generatorURL"]
            .as_str()
            .is_some_and(|u| u.contains("/graph?g0.expr=")),
        "{alert:#}"
    );
    // And the API lists it as Alertmanager would.
    assert_eq!(listed[0]["labels"]["alertname"], "ModelAccuracyLow");
    assert_eq!(listed[0]["receivers"], json!([{"name": "pager"}]));
    server.shutdown().await;
}

/// Runs amtool against `url`; returns stdout, panicking with stderr on failure.
fn amtool(url: &str, args: &[&str]) -> String {
    let bin = debian_bin("amtool", "AMTOOL_BIN", "prometheus-alertmanager");
    let out = Command::new(bin)
        .arg(format!("--alertmanager.url={url}"))
        .args(args)
        .env("HOME", std::env::temp_dir())
        .output()
        .expect("run amtool");
    assert!(
        out.status.success(),
        "amtool {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn amtool_works_against_klaxon() {
    let (receiver, received) = start_receiver().await;
    let server = start_klaxon(&config(&receiver)).await;
    let url = format!("http://{}", server.addr());
    let run = |args: &'static [&'static str]| {
        let url = url.clone();
        async move {
            tokio::task::spawn_blocking(move || amtool(&url, args))
                .await
                .expect("amtool thread")
        }
    };

    // Alerts: add and query.
    run(&[
        "alert",
        "add",
        "alertname=DriftHigh",
        "model_name=fraud",
        "team=ml",
        "--annotation=summary=psi 0.31",
    ])
    .await;
    received.wait_for(1, Duration::from_secs(10)).await;
    let alerts: Value =
        serde_json::from_str(&run(&["alert", "query", "-o", "json"]).await).expect("JSON");
    assert_eq!(alerts[0]["labels"]["alertname"], "DriftHigh");
    assert_eq!(alerts[0]["annotations"]["summary"], "psi 0.31");
    let simple = run(&["alert", "query", "model_name=fraud"]).await;
    assert!(
        simple.contains("DriftHigh") && simple.contains("psi 0.31"),
        "{simple}"
    );

    // Silences: add, query, expire.
    let id = run(&[
        "silence",
        "add",
        "--author=ops",
        "--comment=retraining",
        "--duration=1h",
        "model_name=fraud",
    ])
    .await;
    let id = id.trim().to_string();
    assert_eq!(id.len(), 36, "a UUID: {id:?}");
    let ids = run(&["silence", "query", "-q"]).await;
    assert_eq!(ids.trim(), id);
    let listed: Value =
        serde_json::from_str(&run(&["silence", "query", "-o", "json"]).await).expect("JSON");
    assert_eq!(listed[0]["createdBy"], "ops");
    assert_eq!(listed[0]["comment"], "retraining");
    // The alert is now silenced.
    let silenced: Value =
        serde_json::from_str(&run(&["alert", "query", "-o", "json", "--silenced"]).await)
            .expect("JSON");
    assert_eq!(silenced[0]["status"]["silencedBy"], json!([id]));
    let url2 = url.clone();
    let id2 = id.clone();
    tokio::task::spawn_blocking(move || amtool(&url2, &["silence", "expire", &id2]))
        .await
        .expect("amtool thread");
    let ids = run(&["silence", "query", "-q"]).await;
    assert_eq!(ids.trim(), "", "expired silences are not listed by default");
    let expired = run(&["silence", "query", "-q", "--expired"]).await;
    assert_eq!(expired.trim(), id);

    // Routes, tested against the config Klaxon serves.
    let routed = run(&["config", "routes", "test", "severity=critical", "team=ml"]).await;
    assert_eq!(routed.trim(), "pager,ml");
    let tree = run(&["config", "routes", "show"]).await;
    assert!(
        tree.contains("receiver: pager") && tree.contains("receiver: ml"),
        "{tree}"
    );
    let status = run(&["config", "show"]).await;
    assert!(status.contains("group_by"), "{status}");
    server.shutdown().await;
}
