//! Prometheus alerting rules (`expr`) end to end: the ML-serving rules of
//! the Prometheus-compatibility issue, loaded as a Prometheus rule file
//! would write them, against a real Klaxon and a real local webhook
//! receiver. Each rule fires on a synthetic fault with the expected labels
//! and annotations, and resolves when the fault clears.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::*;
use serde_json::{Value, json};

const RULES: &str = r#"
groups:
  - name: ml-serving
    interval: 1s
    rules:
      - alert: FraudLatencyP99
        expr: histogram_quantile(0.99, sum by (le, model_name) (rate(ml_prediction_duration_seconds_bucket{job="model-server"}[5m]))) > 0.2
        for: 0s
        labels: { severity: page }
        annotations:
          summary: "{{ $labels.model_name }} p99 latency {{ $value }} s"
      - alert: ErrorBudgetBurn
        expr: (sum(rate(ml_prediction_errors_total[1h])) / sum(rate(ml_predictions_total[1h]))) / (1 - 0.999) > 14.4
        labels: { severity: page }
        annotations:
          summary: "burning the error budget {{ $value }}x too fast"
      - alert: FeatureNullRateHigh
        expr: ml_feature_null_rate > 0.05 and ml_feature_null_rate > 3 * avg_over_time(ml_feature_null_rate[7d])
        labels: { severity: ticket }
        annotations:
          summary: "{{ $labels.feature }} of {{ $labels.model_name }} is null {{ $value }} of the time"
      - alert: ApprovalRateShift
        expr: abs(avg_over_time(ml_approval_rate[1d]) - avg_over_time(ml_approval_rate[7d] offset 1d)) > 0.06
        labels: { severity: ticket }
        annotations:
          summary: "approval rate of {{ $labels.model_name }} moved by {{ $value }}"
      - alert: DriftCascade
        expr: rate(ml_feature_drift_events_total[5m]) > 0.1 and on() rate(ml_prediction_drift_events_total[5m]) > 0.1
        labels: { severity: ticket }
        annotations:
          summary: "feature and prediction drift together"
route:
  receiver: hook
  group_by: [alertname]
  group_wait: 0s
  group_interval: 1s
  repeat_interval: 4h
receivers:
  - name: hook
    webhook_configs: [{ url: "RECEIVER/hook", allowed_networks: ["127.0.0.1/32"] }]
store:
  retention: 9d
limits:
  max_sample_age: 9d
"#;

const MIN: i64 = 60_000;

fn samples(points: impl IntoIterator<Item = (i64, f64)>) -> Value {
    Value::Array(points.into_iter().map(|(t, v)| json!([t, v])).collect())
}

/// The history of every metric, each ending in its fault.
fn faulty_history(now: i64) -> Value {
    let mut series = Vec::new();
    // Latency: 40 scrapes 15 s apart, every request slow (0.25–0.5 s).
    let scrapes: Vec<i64> = (0..40).map(|k| now - 600_000 + k * 15_000).collect();
    for (le, per_scrape) in [("0.1", 0.0), ("0.25", 0.0), ("0.5", 10.0), ("+Inf", 10.0)] {
        series.push(json!({
            "metric": "ml_prediction_duration_seconds_bucket",
            "labels": {"job": "model-server", "model_name": "fraud", "le": le},
            "samples": samples(scrapes.iter().enumerate().map(|(k, t)| (*t, per_scrape * k as f64))),
        }));
    }
    // Error budget: 2 % errors for 70 minutes.
    let minutes: Vec<i64> = (0..70).map(|k| now - 70 * MIN + k * MIN).collect();
    series.push(
        json!({"metric": "ml_predictions_total", "labels": {"model_name": "fraud"},
        "samples": samples(minutes.iter().enumerate().map(|(k, t)| (*t, 6000.0 * k as f64)))}),
    );
    series.push(
        json!({"metric": "ml_prediction_errors_total", "labels": {"model_name": "fraud"},
        "samples": samples(minutes.iter().enumerate().map(|(k, t)| (*t, 120.0 * k as f64)))}),
    );
    // Null rate: 1 % for two hours, then 30 %.
    let mut nulls: Vec<(i64, f64)> = (1..=120).map(|k| (now - k * MIN, 0.01)).collect();
    nulls.reverse();
    nulls.push((now - 2_000, 0.3));
    series.push(json!({"metric": "ml_feature_null_rate", "labels": {"model_name": "fraud", "feature": "amount"},
        "samples": samples(nulls)}));
    // Approval rate: 0.80 for a week, 0.90 over the last day (30 min apart).
    let mut approvals: Vec<(i64, f64)> = (1..=384)
        .map(|k| (now - k * 30 * MIN, if k < 48 { 0.9 } else { 0.8 }))
        .collect();
    approvals.reverse();
    series.push(
        json!({"metric": "ml_approval_rate", "labels": {"model_name": "fraud"},
        "samples": samples(approvals)}),
    );
    // Drift events: 5 per second until 4m30s ago; they leave the 5m window
    // about 30 s from now, which resolves the alert.
    for metric in [
        "ml_feature_drift_events_total",
        "ml_prediction_drift_events_total",
    ] {
        let points: Vec<(i64, f64)> = (0..=33)
            .map(|k| (now - 10 * MIN + k * 10_000, 50.0 * k as f64))
            .collect();
        series.push(json!({"metric": metric, "labels": {"model_name": "fraud"}, "samples": samples(points)}));
    }
    json!({ "series": series })
}

/// What clears each fault, pushed at `now`.
fn recovery(now: i64) -> Value {
    let mut series = Vec::new();
    // A flood of fast requests: p99 falls into the 0.1 s bucket.
    for (le, v) in [
        ("0.1", 1e6),
        ("0.25", 1e6),
        ("0.5", 1e6 + 400.0),
        ("+Inf", 1e6 + 400.0),
    ] {
        series.push(json!({"metric": "ml_prediction_duration_seconds_bucket",
            "labels": {"job": "model-server", "model_name": "fraud", "le": le}, "samples": [[now, v]]}));
    }
    // Many more successful predictions: the error ratio collapses.
    series.push(json!({"metric": "ml_predictions_total", "labels": {"model_name": "fraud"}, "samples": [[now, 1e8]]}));
    series.push(json!({"metric": "ml_feature_null_rate", "labels": {"model_name": "fraud", "feature": "amount"}, "samples": [[now, 0.01]]}));
    // 47 samples of 0.9 in the last day plus this one average 0.8 again.
    series.push(
        json!({"metric": "ml_approval_rate", "labels": {"model_name": "fraud"},
        "samples": [[now, 0.8 * 48.0 - 0.9 * 47.0]]}),
    );
    json!({ "series": series })
}

/// alertname → (status, labels, annotations) of each alert in each payload, in order.
async fn notifications(received: &Received) -> Vec<(String, String, Value, Value)> {
    received
        .all()
        .await
        .into_iter()
        .flat_map(|body| {
            body["alerts"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .map(|a| {
                    (
                        a["labels"]["alertname"]
                            .as_str()
                            .unwrap_or_default()
                            .to_owned(),
                        a["status"].as_str().unwrap_or_default().to_owned(),
                        a["labels"].clone(),
                        a["annotations"].clone(),
                    )
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_rules_fire_and_resolve() {
    let (receiver, received) = start_receiver().await;
    let server = start_klaxon(&RULES.replace("RECEIVER", &receiver)).await;
    let base = format!("http://{}", server.addr());
    let client = reqwest::Client::new();

    let resp = push(&client, &base, faulty_history(now_ms())).await;
    assert_eq!(resp.status(), 204, "{:?}", resp.text().await);

    let expected: BTreeMap<&str, Value> = [
        ("FraudLatencyP99", json!({"alertname": "FraudLatencyP99", "model_name": "fraud", "severity": "page"})),
        ("ErrorBudgetBurn", json!({"alertname": "ErrorBudgetBurn", "severity": "page"})),
        ("FeatureNullRateHigh", json!({"alertname": "FeatureNullRateHigh", "model_name": "fraud", "feature": "amount", "severity": "ticket"})),
        ("ApprovalRateShift", json!({"alertname": "ApprovalRateShift", "model_name": "fraud", "severity": "ticket"})),
        ("DriftCascade", json!({"alertname": "DriftCascade", "model_name": "fraud", "severity": "ticket"})),
    ]
    .into_iter()
    .collect();

    // Every rule fires, with the series' labels and its own.
    let fired = eventually(Duration::from_secs(20), "all five rules firing", || async {
        let got = notifications(&received).await;
        let firing: BTreeMap<String, (Value, Value)> = got
            .into_iter()
            .filter(|(_, status, _, _)| status == "firing")
            .map(|(name, _, labels, annotations)| (name, (labels, annotations)))
            .collect();
        (firing.len() == expected.len()).then_some(firing)
    })
    .await;
    for (name, labels) in &expected {
        assert_eq!(&fired[*name].0, labels, "labels of {name}");
    }
    let summary = |name: &str| {
        fired[name].1["summary"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };
    // p99 of requests all in (0.25, 0.5]: 0.25 + 0.25 × 0.99.
    let latency = summary("FraudLatencyP99");
    let p99: f64 = latency
        .trim_start_matches("fraud p99 latency ")
        .trim_end_matches(" s")
        .parse()
        .unwrap_or(f64::NAN);
    assert!((p99 - 0.4975).abs() < 1e-9, "{latency}");
    assert_eq!(
        summary("FeatureNullRateHigh"),
        "amount of fraud is null 0.3 of the time"
    );
    // 2 % errors against a 0.1 % budget: 20× (up to float rounding).
    let burn = summary("ErrorBudgetBurn");
    let x: f64 = burn
        .trim_start_matches("burning the error budget ")
        .trim_end_matches("x too fast")
        .parse()
        .unwrap_or(f64::NAN);
    assert!((x - 20.0).abs() < 1e-9, "{burn}");
    let shift = summary("ApprovalRateShift");
    let moved: f64 = shift
        .trim_start_matches("approval rate of fraud moved by ")
        .parse()
        .unwrap_or(f64::NAN);
    assert!((moved - 0.1).abs() < 1e-9, "{shift}");

    // The API lists them as firing alerts with their values.
    let alerts = get_json(&client, &format!("{base}/api/v1/alerts")).await;
    let firing = alerts["data"]["alerts"]
        .as_array()
        .map(|a| a.iter().filter(|a| a["state"] == "firing").count())
        .unwrap_or(0);
    assert!(firing >= 4, "{alerts:#}");

    // Clear the faults: every rule resolves (DriftCascade when its last
    // events leave the 5 m window).
    let resp = push(&client, &base, recovery(now_ms())).await;
    assert_eq!(resp.status(), 204, "{:?}", resp.text().await);
    eventually(
        Duration::from_secs(60),
        "all five rules resolved",
        || async {
            let got = notifications(&received).await;
            let resolved: BTreeMap<String, Value> = got
                .into_iter()
                .filter(|(_, status, _, _)| status == "resolved")
                .map(|(name, _, labels, _)| (name, labels))
                .collect();
            (resolved.len() == expected.len()).then_some(resolved)
        },
    )
    .await;

    // Exactly one firing and one resolved notification per rule.
    let got = notifications(&received).await;
    for name in expected.keys() {
        let of_rule: Vec<&String> = got
            .iter()
            .filter(|(n, _, _, _)| n == name)
            .map(|(_, s, _, _)| s)
            .collect();
        assert_eq!(of_rule, ["firing", "resolved"], "notifications of {name}");
    }
}
