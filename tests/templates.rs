//! Alert annotations end to end: a rule whose annotations use `$value`,
//! `$labels`, `$externalLabels`, `$externalURL` and Prometheus's template
//! functions, evaluated on pushed samples; the rendered text is read back
//! from `/api/v1/alerts`.

mod common;

use std::time::Duration;

use common::*;
use serde_json::json;

const CONFIG: &str = r#"
global:
  external_url: http://klaxon.example:9190
  external_labels: { cluster: eu-1 }
groups:
  - name: g
    interval: 1s
    rules:
      - alert: Big
        query: 'queue_bytes'
        window: 5m
        detector: threshold
        config: { op: ">", value: 1000, reduce: last }
        for: 1h
        annotations:
          summary: "{{ $labels.model_name | title }}: {{ $value }} = {{ humanize $value }} = {{ humanize1024 $value }} on {{ $externalLabels.cluster }}, see {{ $externalURL }}"
          since: "{{ humanizeDuration 3725 }} {{ 0.1234 | humanizePercentage }} {{ printf \"%.1f\" $value }}"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn annotations_render_with_prometheus_functions() {
    let server = start_klaxon(CONFIG).await;
    let base = format!("http://{}", server.addr());
    let client = reqwest::Client::new();
    let resp = push(
        &client,
        &base,
        json!({"series": [
            {"metric": "queue_bytes", "labels": {"model_name": "fraud"}, "value": 1234567},
            {"metric": "queue_bytes", "labels": {"model_name": "churn"}, "value": 1e21},
        ]}),
    )
    .await;
    assert_eq!(resp.status(), 204);

    let alerts = eventually(Duration::from_secs(10), "two pending alerts", || async {
        let body = get_json(&client, &format!("{base}/api/v1/alerts")).await;
        let list = body["data"]["alerts"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        (list.len() == 2).then_some(list)
    })
    .await;
    let annotation = |model: &str, key: &str| {
        alerts
            .iter()
            .find(|a| a["labels"]["model_name"] == model)
            .and_then(|a| a["annotations"][key].as_str())
            .map(str::to_owned)
    };
    assert_eq!(
        annotation("fraud", "summary").as_deref(),
        Some("Fraud: 1.234567e+06 = 1.235M = 1.177Mi on eu-1, see http://klaxon.example:9190")
    );
    assert_eq!(
        annotation("churn", "summary").as_deref(),
        Some("Churn: 1e+21 = 1Z = 867.4Ei on eu-1, see http://klaxon.example:9190")
    );
    assert_eq!(
        annotation("fraud", "since").as_deref(),
        Some("1h 2m 5s 12.34% 1234567.0")
    );
    server.shutdown().await;
}
