//! End to end: composite rules. A real Klaxon on an ephemeral port, real HTTP
//! pushes, a real local webhook receiver.
//!
//! - `sequence` fires only when the children fired in order (drift, then an
//!   accuracy drop), per model: model `fraud` gets A then B and pages; model
//!   `churn` gets B then A and does not.
//! - The children are `notify: false`: their alerts are visible in
//!   `/api/v1/alerts`, but the receiver only ever gets the composite.
//! - A composite naming a detector as its plugin is refused at start, with
//!   the file and line.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{Value, json};

fn config(receiver: &str) -> String {
    format!(
        r#"
groups:
  - name: model-quality
    interval: 1s
    rules:
      - alert: ModelDegrading
        composite: sequence
        children: [FeatureDrift, AccuracyDrop]
        on: [model_name]
        config: {{ within_seconds: 600 }}
        labels: {{ severity: page }}
        annotations:
          summary: "{{{{ $labels.model_name }}}}: feature drift, then an accuracy drop"
      - alert: FeatureDrift
        query: ml_feature_drift
        window: 1m
        detector: threshold
        config: {{ op: ">", value: 0.5 }}
        notify: false
  - name: accuracy
    interval: 1s
    rules:
      - alert: AccuracyDrop
        query: ml_model_accuracy
        window: 1m
        detector: threshold
        config: {{ op: "<", value: 0.8 }}
        notify: false
route:
  receiver: hook
  group_by: [alertname, model_name]
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 4h
receivers:
  - name: hook
    webhook_configs: [{{ url: "{receiver}/hook", allowed_networks: ["127.0.0.1/32"] }}]
"#
    )
}

async fn push_values(client: &reqwest::Client, base: &str, values: &[(&str, &str, f64)]) {
    let series: Vec<Value> = values
        .iter()
        .map(|(metric, model, v)| json!({"metric": metric, "labels": {"model_name": model}, "value": v}))
        .collect();
    let resp = push(client, base, json!({ "series": series })).await;
    assert_eq!(resp.status(), 204);
}

/// The firing alerts of `/api/v1/alerts` as (alertname, model_name).
async fn firing(client: &reqwest::Client, base: &str) -> Vec<(String, String)> {
    let alerts = get_json(client, &format!("{base}/api/v1/alerts")).await;
    let mut out: Vec<(String, String)> = alerts["data"]["alerts"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .filter(|a| a["state"] == "firing")
        .map(|a| {
            (
                a["labels"]["alertname"].as_str().unwrap_or("").to_owned(),
                a["labels"]["model_name"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    out.sort();
    out
}

fn pair(a: &str, m: &str) -> (String, String) {
    (a.to_owned(), m.to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sequence_fires_in_order_only_and_quiet_children_never_notify() {
    let (receiver, received) = start_receiver().await;
    let server = start_klaxon(&config(&receiver)).await;
    let base = format!("http://{}", server.addr());
    let client = reqwest::Client::new();

    // Step one: fraud drifts (A); churn's accuracy drops (B).
    push_values(
        &client,
        &base,
        &[
            ("ml_feature_drift", "fraud", 0.9),
            ("ml_model_accuracy", "fraud", 0.95),
            ("ml_feature_drift", "churn", 0.1),
            ("ml_model_accuracy", "churn", 0.5),
        ],
    )
    .await;
    eventually(
        Duration::from_secs(15),
        "the first children to fire",
        || async {
            let f = firing(&client, &base).await;
            (f == vec![pair("AccuracyDrop", "churn"), pair("FeatureDrift", "fraud")]).then_some(())
        },
    )
    .await;

    // Step two: the other child of each model fires.
    push_values(
        &client,
        &base,
        &[
            ("ml_feature_drift", "fraud", 0.9),
            ("ml_model_accuracy", "fraud", 0.5),
            ("ml_feature_drift", "churn", 0.9),
            ("ml_model_accuracy", "churn", 0.5),
        ],
    )
    .await;
    // fraud: A then B → the composite fires; churn: B then A → it does not.
    eventually(
        Duration::from_secs(15),
        "the composite to fire for fraud",
        || async {
            let f = firing(&client, &base).await;
            (f == vec![
                pair("AccuracyDrop", "churn"),
                pair("AccuracyDrop", "fraud"),
                pair("FeatureDrift", "churn"),
                pair("FeatureDrift", "fraud"),
                pair("ModelDegrading", "fraud"),
            ])
            .then_some(())
        },
    )
    .await;

    let got = received.wait_for(1, Duration::from_secs(15)).await;
    let n = &got[0];
    assert_eq!(n["status"], "firing");
    let alerts = n["alerts"].as_array().expect("alerts");
    assert_eq!(alerts.len(), 1);
    let a = &alerts[0];
    assert_eq!(
        a["labels"],
        json!({"alertname": "ModelDegrading", "model_name": "fraud", "severity": "page"})
    );
    assert_eq!(
        a["annotations"]["summary"],
        "fraud: feature drift, then an accuracy drop"
    );
    assert_eq!(
        a["annotations"]["composite_summary"],
        "FeatureDrift → AccuracyDrop in order within 600 s"
    );
    assert_eq!(a["annotations"]["sequence"], "FeatureDrift,AccuracyDrop");

    // Several more evaluations and group intervals: churn never pages, and
    // no child alert ever reaches the receiver.
    for _ in 0..4 {
        push_values(
            &client,
            &base,
            &[
                ("ml_feature_drift", "fraud", 0.9),
                ("ml_model_accuracy", "fraud", 0.5),
                ("ml_feature_drift", "churn", 0.9),
                ("ml_model_accuracy", "churn", 0.5),
            ],
        )
        .await;
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    assert!(
        !firing(&client, &base)
            .await
            .contains(&pair("ModelDegrading", "churn"))
    );
    for n in received.all().await {
        for a in n["alerts"].as_array().cloned().unwrap_or_default() {
            assert_eq!(a["labels"]["alertname"], "ModelDegrading", "{n:#}");
            assert_eq!(a["labels"]["model_name"], "fraud", "{n:#}");
        }
    }

    // The rules API shows the composite and the quiet children.
    let rules = get_json(&client, &format!("{base}/api/v1/rules")).await;
    let group = &rules["data"]["groups"][0];
    assert_eq!(group["rules"][0]["name"], "ModelDegrading");
    assert_eq!(group["rules"][0]["composite"]["plugin"], "sequence");
    assert_eq!(
        group["rules"][0]["composite"]["children"],
        json!(["FeatureDrift", "AccuracyDrop"])
    );
    assert_eq!(group["rules"][0]["health"], "ok");
    assert_eq!(group["rules"][0]["notify"], true);
    assert_eq!(group["rules"][1]["notify"], false);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_detector_is_not_a_composite() {
    let yaml = config("http://127.0.0.1:1").replace("composite: sequence", "composite: threshold");
    let parsed = klaxon_host::config::Config::parse(&yaml, "test.yml").expect("parses");
    let err = klaxon_host::server::start(klaxon_host::server::ServerOptions {
        listen: "127.0.0.1:0".parse().expect("addr"),
        config: parsed,
        config_file: "test.yml".into(),
        config_text: yaml.clone(),
        config_path: None,
        data_dir: None,
    })
    .await
    .err()
    .expect("a detector named as a composite is refused");
    let msg = format!("{err:#}");
    let line = yaml
        .lines()
        .position(|l| l.contains("alert: ModelDegrading"))
        .expect("rule line")
        + 1;
    assert!(
        msg.starts_with(&format!(
            "test.yml:{line}: rule `ModelDegrading`: composite:"
        )),
        "{msg}"
    );
    assert!(msg.contains("is a detector, not a composite"), "{msg}");
}
