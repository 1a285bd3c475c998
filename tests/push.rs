//! Push validation: each bad request gets a 400 naming the problem, and the
//! store is left exactly as it was.

mod common;

use common::*;
use serde_json::{Value, json};

const CONFIG: &str = r#"
limits:
  max_body_bytes: 20000
  max_labels_per_series: 3
"#;

async fn counts(client: &reqwest::Client, base: &str) -> (u64, u64) {
    let s = get_json(client, &format!("{base}/api/v1/status/runtime")).await;
    (
        s["data"]["series"].as_u64().unwrap(),
        s["data"]["samples"].as_u64().unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_pushes_are_refused_whole() {
    let server = start_klaxon(CONFIG).await;
    let base = format!("http://{}", server.addr());
    let client = reqwest::Client::new();
    let now = now_ms();

    let ok = push(&client, &base, json!({"series": [{"metric": "m", "labels": {"a": "1"}, "samples": [[now - 1000, 1.0], [now, "NaN"]]}]})).await;
    assert_eq!(ok.status(), 204);
    assert_eq!(counts(&client, &base).await, (1, 2));

    let big_value = "v".repeat(25_000);
    let good_series = json!({"metric": "m", "labels": {"a": "2"}, "value": 1.0});
    let cases: Vec<(&str, String, &str)> = vec![
        ("bad JSON", "{\"series\": [".into(), "series[0]"),
        ("not an object", "[1,2]".into(), "body"),
        ("bad metric name", json!({"series": [good_series, {"metric": "3bad", "value": 1}]}).to_string(), "series[1].metric"),
        ("reserved label", json!({"series": [{"metric": "m", "labels": {"__x": "1"}, "value": 1}]}).to_string(), "series[0].labels.__x"),
        ("bad label name", json!({"series": [{"metric": "m", "labels": {"a-b": "1"}, "value": 1}]}).to_string(), "series[0].labels.a-b"),
        ("too many labels", json!({"series": [{"metric": "m", "labels": {"a": "1", "b": "2", "c": "3", "d": "4"}, "value": 1}]}).to_string(), "series[0].labels"),
        ("string timestamp", json!({"series": [{"metric": "m", "samples": [["now", 1.0]]}]}).to_string(), "series[0].samples[0][0]"),
        ("string value", json!({"series": [{"metric": "m", "samples": [[now, "high"]]}]}).to_string(), "series[0].samples[0][1]"),
        ("samples and value", json!({"series": [{"metric": "m", "value": 1, "samples": [[now, 1.0]]}]}).to_string(), "series[0]"),
        ("missing metric", json!({"series": [{"labels": {"a": "1"}, "value": 1}]}).to_string(), "series[0]"),
        ("too old", json!({"series": [{"metric": "m", "samples": [[now - 86_400_000, 1.0]]}]}).to_string(), "series[0].samples[0][0]"),
        ("body too large", json!({"series": [{"metric": "m", "labels": {"a": big_value}, "value": 1}]}).to_string(), "body"),
    ];
    for (name, body, field) in cases {
        let resp = client
            .post(format!("{base}/api/v1/push"))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("push");
        assert_eq!(resp.status(), 400, "{name}");
        let err: Value = resp.json().await.expect("JSON error body");
        assert_eq!(err["status"], "error", "{name}");
        assert_eq!(err["errorType"], "bad_data", "{name}");
        let msg = err["error"].as_str().unwrap_or_default();
        assert!(
            msg.starts_with(field),
            "{name}: expected the message to name `{field}`, got `{msg}`"
        );
        assert_eq!(
            counts(&client, &base).await,
            (1, 2),
            "{name}: the store changed"
        );
    }
    server.shutdown().await;
}
