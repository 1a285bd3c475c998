//! End to end through the routing tree: two real local webhook receivers get
//! different alerts by `severity`, and an alert matching a `continue: true`
//! route reaches both, each notification with its route's `receiver`,
//! `groupKey` and `groupLabels`. Time intervals hold a route's
//! notifications back, through the real server and webhooks.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{Value, json};

fn summary(got: &[Value]) -> Vec<(String, String, Value)> {
    let mut out: Vec<(String, String, Value)> = got
        .iter()
        .map(|n| {
            (
                n["receiver"].as_str().unwrap_or_default().to_string(),
                n["groupKey"].as_str().unwrap_or_default().to_string(),
                n["groupLabels"].clone(),
            )
        })
        .collect();
    out.sort_by(|a, b| a.1.cmp(&b.1));
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_reach_receivers_by_severity_and_continue_reaches_both() {
    let (pager_url, pager) = start_receiver().await;
    let (tickets_url, tickets) = start_receiver().await;
    let yaml = format!(
        r#"
groups:
  - name: serving
    interval: 1s
    rules:
      - alert: LatencyCritical
        expr: ml_latency_seconds > 0.5
        labels: {{ severity: critical }}
      - alert: QueueWarning
        expr: ml_queue_depth > 100
        labels: {{ severity: warning }}
      - alert: DriftWarning
        expr: ml_feature_drift > 0.3
        labels: {{ severity: warning, team: ml }}
route:
  receiver: tickets
  group_by: [alertname]
  group_wait: 1s
  group_interval: 2s
  repeat_interval: 4h
  routes:
    - matchers: ['team="ml"']
      receiver: pager
      continue: true
    - matchers: ['severity="critical"']
      receiver: pager
    - match: {{ severity: warning }}
      receiver: tickets
receivers:
  - name: pager
    webhook_configs: [{{ url: "{pager_url}/hook", allowed_networks: ["127.0.0.1/32"] }}]
  - name: tickets
    webhook_configs: [{{ url: "{tickets_url}/hook", allowed_networks: ["127.0.0.1/32"] }}]
"#
    );
    let server = start_klaxon(&yaml).await;
    let base = format!("http://{}", server.addr());
    let client = reqwest::Client::new();
    let resp = push(
        &client,
        &base,
        json!({"series": [
            {"metric": "ml_latency_seconds", "labels": {"model_name": "fraud"}, "value": 0.9},
            {"metric": "ml_queue_depth", "labels": {"model_name": "fraud"}, "value": 500},
            {"metric": "ml_feature_drift", "labels": {"model_name": "fraud"}, "value": 0.6},
        ]}),
    )
    .await;
    assert_eq!(resp.status(), 204);

    let paged = pager.wait_for(2, Duration::from_secs(15)).await;
    let ticketed = tickets.wait_for(2, Duration::from_secs(15)).await;
    // A few more group intervals: nothing else arrives (no duplicates).
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(pager.all().await.len(), 2, "{paged:#?}");
    assert_eq!(tickets.all().await.len(), 2, "{ticketed:#?}");

    assert_eq!(
        summary(&pager.all().await),
        [
            (
                "pager".to_string(),
                "{}/{severity=\"critical\"}:{alertname=\"LatencyCritical\"}".to_string(),
                json!({"alertname": "LatencyCritical"}),
            ),
            (
                "pager".to_string(),
                "{}/{team=\"ml\"}:{alertname=\"DriftWarning\"}".to_string(),
                json!({"alertname": "DriftWarning"}),
            ),
        ]
    );
    assert_eq!(
        summary(&tickets.all().await),
        [
            (
                "tickets".to_string(),
                "{}/{severity=\"warning\"}:{alertname=\"DriftWarning\"}".to_string(),
                json!({"alertname": "DriftWarning"}),
            ),
            (
                "tickets".to_string(),
                "{}/{severity=\"warning\"}:{alertname=\"QueueWarning\"}".to_string(),
                json!({"alertname": "QueueWarning"}),
            ),
        ]
    );
    for n in pager.all().await.iter().chain(tickets.all().await.iter()) {
        assert_eq!(n["status"], "firing");
        assert_eq!(n["alerts"].as_array().map(Vec::len), Some(1));
        assert_eq!(
            n["alerts"][0]["labels"]["alertname"],
            n["groupLabels"]["alertname"]
        );
    }
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn muted_and_inactive_routes_send_nothing_end_to_end() {
    let (pager_url, pager) = start_receiver().await;
    let (tickets_url, tickets) = start_receiver().await;
    // `always` contains every instant and `never` none, whatever the clock says.
    let yaml = format!(
        r#"
groups:
  - name: serving
    interval: 1s
    rules:
      - alert: LatencyCritical
        expr: ml_latency_seconds > 0.5
        labels: {{ severity: critical }}
      - alert: QueueWarning
        expr: ml_queue_depth > 100
        labels: {{ severity: warning }}
time_intervals:
  - name: always
    time_intervals:
      - times: [{{ start_time: "00:00", end_time: "24:00" }}]
  - name: never
    time_intervals:
      - years: ["2000"]
route:
  receiver: tickets
  group_by: [alertname]
  group_wait: 1s
  group_interval: 2s
  repeat_interval: 4h
  routes:
    - matchers: ['severity="critical"']
      receiver: pager
      mute_time_intervals: [always]
      continue: true
    - matchers: ['severity="critical"']
      receiver: tickets
      active_time_intervals: [never, always]
    - match: {{ severity: warning }}
      receiver: pager
      active_time_intervals: [never]
receivers:
  - name: pager
    webhook_configs: [{{ url: "{pager_url}/hook", allowed_networks: ["127.0.0.1/32"] }}]
  - name: tickets
    webhook_configs: [{{ url: "{tickets_url}/hook", allowed_networks: ["127.0.0.1/32"] }}]
"#
    );
    let server = start_klaxon(&yaml).await;
    let base = format!("http://{}", server.addr());
    let client = reqwest::Client::new();
    let resp = push(
        &client,
        &base,
        json!({"series": [
            {"metric": "ml_latency_seconds", "labels": {"model_name": "fraud"}, "value": 0.9},
            {"metric": "ml_queue_depth", "labels": {"model_name": "fraud"}, "value": 500},
        ]}),
    )
    .await;
    assert_eq!(resp.status(), 204);

    let ticketed = tickets.wait_for(1, Duration::from_secs(15)).await;
    // Several group intervals: the muted and the inactive routes stay silent.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(tickets.all().await.len(), 1, "{ticketed:#?}");
    assert_eq!(
        summary(&tickets.all().await),
        [(
            "tickets".to_string(),
            "{}/{severity=\"critical\"}:{alertname=\"LatencyCritical\"}".to_string(),
            json!({"alertname": "LatencyCritical"}),
        )]
    );
    assert_eq!(pager.all().await, Vec::<Value>::new());
    server.shutdown().await;
}
