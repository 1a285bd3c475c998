//! Prometheus's query API against a running Klaxon: `/api/v1/query` and
//! `/api/v1/query_range` answer with Prometheus's JSON shapes, and errors
//! with Prometheus's envelope and status codes.

mod common;

use common::*;
use serde_json::{Value, json};

async fn get(client: &reqwest::Client, url: &str, params: &[(&str, &str)]) -> (u16, Value) {
    let resp = client.get(url).query(params).send().await.expect("GET");
    let status = resp.status().as_u16();
    (status, resp.json().await.expect("JSON body"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_endpoints_answer_like_prometheus() {
    let server = start_klaxon("groups: []\n").await;
    let base = format!("http://{}", server.addr());
    let client = reqwest::Client::new();

    // Two counters, one sample a minute for ten minutes, ending at t0 + 9 min.
    let t0 = (now_ms() - 20 * 60_000) / 60_000 * 60_000;
    let series = |job: &str, per_min: f64| {
        let samples: Vec<Value> = (0..10)
            .map(|k| json!([t0 + k * 60_000, per_min * k as f64]))
            .collect();
        json!({"metric": "requests_total", "labels": {"job": job}, "samples": samples})
    };
    let resp = push(
        &client,
        &base,
        json!({"series": [series("a", 60.0), series("b", 120.0)]}),
    )
    .await;
    assert_eq!(resp.status(), 204);

    let t_end = (t0 + 9 * 60_000) / 1000;
    let at = t_end.to_string();

    // Instant vector: sorted by labels here for comparison; values as strings.
    let (status, body) = get(
        &client,
        &format!("{base}/api/v1/query"),
        &[
            ("query", "sum by (job) (rate(requests_total[5m]))"),
            ("time", &at),
        ],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "success");
    assert_eq!(body["data"]["resultType"], "vector");
    let mut result = body["data"]["result"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    result.sort_by_key(|r| r["metric"]["job"].as_str().unwrap_or_default().to_owned());
    assert_eq!(
        Value::Array(result),
        json!([
            {"metric": {"job": "a"}, "value": [t_end, "1"]},
            {"metric": {"job": "b"}, "value": [t_end, "2"]},
        ])
    );

    // Scalar and string results.
    let (_, body) = get(
        &client,
        &format!("{base}/api/v1/query"),
        &[("query", "1 + 1"), ("time", &at)],
    )
    .await;
    assert_eq!(
        body["data"],
        json!({"resultType": "scalar", "result": [t_end, "2"]})
    );
    let (_, body) = get(
        &client,
        &format!("{base}/api/v1/query"),
        &[("query", "\"hi\""), ("time", &at)],
    )
    .await;
    assert_eq!(
        body["data"],
        json!({"resultType": "string", "result": [t_end, "hi"]})
    );

    // Range query: one point per step where the series has a value.
    let start = (t0 / 1000 + 120).to_string();
    let (status, body) = get(
        &client,
        &format!("{base}/api/v1/query_range"),
        &[
            ("query", "requests_total{job=\"a\"}"),
            ("start", &start),
            ("end", &at),
            ("step", "3m"),
        ],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let s0 = t0 / 1000 + 120;
    assert_eq!(
        body["data"],
        json!({"resultType": "matrix", "result": [
            {"metric": {"__name__": "requests_total", "job": "a"},
             "values": [[s0, "120"], [s0 + 180, "300"], [s0 + 360, "480"]]}
        ]})
    );

    // Errors, as Prometheus reports them.
    let (status, body) = get(
        &client,
        &format!("{base}/api/v1/query"),
        &[("query", "sum(")],
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(body["status"], "error");
    assert_eq!(body["errorType"], "bad_data");
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|e| e.starts_with("invalid parameter \"query\"")),
        "{body}"
    );
    let (status, body) = get(
        &client,
        &format!("{base}/api/v1/query_range"),
        &[("query", "up"), ("start", &at), ("end", &at), ("step", "0")],
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        body["error"].as_str().is_some_and(
            |e| e.contains("zero or negative query resolution step widths are not accepted")
        ),
        "{body}"
    );
    let (status, body) = get(
        &client,
        &format!("{base}/api/v1/query_range"),
        &[
            ("query", "up"),
            ("start", &at),
            ("end", &start),
            ("step", "15"),
        ],
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|e| e.contains("end timestamp must not be before start time")),
        "{body}"
    );
    // Many-to-many matching fails while evaluating: 422 `execution`.
    let (status, body) = get(
        &client,
        &format!("{base}/api/v1/query"),
        &[
            ("query", "requests_total + on() requests_total"),
            ("time", &at),
        ],
    )
    .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["errorType"], "execution");
    // An unsupported function names itself.
    let (status, body) = get(
        &client,
        &format!("{base}/api/v1/query"),
        &[("query", "mad_over_time(up[5m])")],
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|e| e.contains("function `mad_over_time`")),
        "{body}"
    );
}
