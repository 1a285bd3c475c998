//! End to end: a real Klaxon on an ephemeral port, real HTTP pushes, a real
//! local webhook receiver. A normal series, then a fault: exactly one firing
//! notification with the rule's labels and rendered annotations; after
//! recovery, exactly one resolved notification.

mod common;

use std::time::Duration;

use common::*;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_fires_once_then_resolves_once() {
    let (receiver, received) = start_receiver().await;
    let yaml = format!(
        r#"
groups:
  - name: fraud-model
    interval: 1s
    rules:
      - alert: FraudLatencyHigh
        query: 'ml_prediction_latency_seconds{{model_name="fraud-detector"}}'
        window: 5m
        detector: threshold
        config: {{ op: ">", value: 0.2, reduce: last }}
        for: 2s
        labels: {{ severity: critical, team: ml-platform }}
        annotations:
          summary: "{{{{ $labels.model_name }}}} p99 latency {{{{ $value }}}} above 0.2 s"
          runbook_url: https://runbooks.example/latency
route:
  receiver: oncall
  group_by: [alertname, model_name]
  group_wait: 1s
  group_interval: 2s
  repeat_interval: 4h
receivers:
  - name: oncall
    webhook_configs: [{{ url: "{receiver}/hook", allowed_networks: ["127.0.0.1/32"] }}]
"#
    );
    let server = start_klaxon(&yaml).await;
    let base = format!("http://{}", server.addr());
    let client = reqwest::Client::new();

    // A normal history, and another model's latency that must not alert.
    let t0 = now_ms() - 60_000;
    let normal: Vec<_> = (0..12).map(|i| json!([t0 + i * 5_000, 0.12])).collect();
    let resp = push(
        &client,
        &base,
        json!({"series": [
            {"metric": "ml_prediction_latency_seconds", "labels": {"model_name": "fraud-detector"}, "samples": normal},
            {"metric": "ml_prediction_latency_seconds", "labels": {"model_name": "churn"}, "value": 0.9},
        ]}),
    )
    .await;
    assert_eq!(resp.status(), 204);

    // Rules run and stay quiet on normal data.
    eventually(Duration::from_secs(10), "a healthy evaluation", || async {
        let rules = get_json(&client, &format!("{base}/api/v1/rules")).await;
        let rule = &rules["data"]["groups"][0]["rules"][0];
        (rule["health"] == "ok" && rule["series"] == 1).then_some(())
    })
    .await;
    assert!(received.all().await.is_empty());

    // The fault.
    let resp = push(
        &client,
        &base,
        json!({"series": [{"metric": "ml_prediction_latency_seconds", "labels": {"model_name": "fraud-detector"}, "value": 0.5}]}),
    )
    .await;
    assert_eq!(resp.status(), 204);

    // Pending, then firing, visible in the API.
    eventually(
        Duration::from_secs(10),
        "the alert to be firing",
        || async {
            let alerts = get_json(&client, &format!("{base}/api/v1/alerts")).await;
            let list = alerts["data"]["alerts"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            list.iter()
                .any(|a| {
                    a["state"] == "firing"
                        && a["value"] == "0.5"
                        && a["labels"]["model_name"] == "fraud-detector"
                })
                .then_some(())
        },
    )
    .await;

    let got = received.wait_for(1, Duration::from_secs(15)).await;
    let n = &got[0];
    assert_eq!(n["version"], "4");
    assert_eq!(n["status"], "firing");
    assert_eq!(n["receiver"], "oncall");
    assert_eq!(
        n["groupKey"],
        "{}:{alertname=\"FraudLatencyHigh\", model_name=\"fraud-detector\"}"
    );
    assert_eq!(
        n["groupLabels"],
        json!({"alertname": "FraudLatencyHigh", "model_name": "fraud-detector"})
    );
    assert_eq!(n["externalURL"], "http://127.0.0.1:9190");
    let alerts = n["alerts"].as_array().expect("alerts array");
    assert_eq!(alerts.len(), 1);
    let a = &alerts[0];
    assert_eq!(a["status"], "firing");
    assert_eq!(
        a["labels"],
        json!({"alertname": "FraudLatencyHigh", "model_name": "fraud-detector", "severity": "critical", "team": "ml-platform"})
    );
    assert_eq!(
        a["annotations"]["summary"],
        "fraud-detector p99 latency 0.5 above 0.2 s"
    );
    assert_eq!(
        a["annotations"]["runbook_url"],
        "https://runbooks.example/latency"
    );
    assert_eq!(a["endsAt"], "0001-01-01T00:00:00Z");
    assert_eq!(a["fingerprint"].as_str().map(str::len), Some(16));
    assert_eq!(n["commonLabels"], a["labels"]);

    // Recovery.
    let resp = push(
        &client,
        &base,
        json!({"series": [{"metric": "ml_prediction_latency_seconds", "labels": {"model_name": "fraud-detector"}, "value": 0.1}]}),
    )
    .await;
    assert_eq!(resp.status(), 204);
    let got = received.wait_for(2, Duration::from_secs(15)).await;
    let r = &got[1];
    assert_eq!(r["status"], "resolved");
    assert_eq!(r["alerts"][0]["status"], "resolved");
    assert_eq!(r["alerts"][0]["fingerprint"], a["fingerprint"]);
    assert_eq!(r["alerts"][0]["startsAt"], a["startsAt"]);
    assert_ne!(r["alerts"][0]["endsAt"], "0001-01-01T00:00:00Z");

    // Several more group intervals: nothing else arrives.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(
        received.all().await.len(),
        2,
        "exactly one firing and one resolved notification"
    );
    let alerts = get_json(&client, &format!("{base}/api/v1/alerts")).await;
    assert_eq!(alerts["data"]["alerts"], json!([]));
    server.shutdown().await;
}
