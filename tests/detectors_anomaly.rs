//! End to end, the stock anomaly detectors: a real Klaxon on an ephemeral port, real
//! HTTP pushes with timestamps the test chooses, a real local webhook receiver. For
//! each detector a healthy history stays quiet, a seeded fault fires exactly one
//! notification carrying the detector's statistic in its annotations, and recovery
//! resolves it with exactly one resolved notification.
//!
//! All ten rules run in one host, one rule per metric, so the whole file takes as
//! long as its slowest detector. The change detectors (`page_hinkley`, `adwin`)
//! signal an event: their fault is a level change, their recovery is the series
//! staying at its new level until the detection's `hold_seconds` pass.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::*;
use serde_json::{Value, json};

/// Seconds the change detectors hold a detection in this test.
const HOLD_SECONDS: u64 = 6;

/// A deterministic wiggle in [-1, 1]: test noise without a random generator.
fn wiggle(i: i64) -> f64 {
    ((i as f64) * 1.3).sin() * 0.6 + ((i as f64) * 0.7).cos() * 0.4
}

/// Samples ending `end_ms`, `step_ms` apart, values `f(i)` for i in 0..n.
fn samples(end_ms: i64, step_ms: i64, n: i64, f: impl Fn(i64) -> f64) -> Vec<Value> {
    (0..n)
        .map(|i| json!([end_ms - (n - 1 - i) * step_ms, f(i)]))
        .collect()
}

fn series(metric: &str, samples: Vec<Value>) -> Value {
    json!({"metric": metric, "labels": {"model_name": "fraud"}, "samples": samples})
}

/// The seasonal test pattern: period 60 s, amplitude 10 around 50.
fn seasonal_value(t_ms: i64) -> f64 {
    let phase = (t_ms % 60_000) as f64 / 60_000.0 * std::f64::consts::TAU;
    50.0 + 10.0 * phase.sin() + wiggle(t_ms / 2_000) * 0.5
}

/// (alertname, metric, detector, window, extra rule lines, config, the annotation
/// that must carry the statistic).
const RULES: &[(&str, &str, &str, &str, &str, &str, &str)] = &[
    ("MadSpike", "m_mad", "mad", "10m", "", "{}", "median"),
    (
        "EwmaShift",
        "m_ewma",
        "ewma",
        "10m",
        "",
        "{ reference_samples: 30 }",
        "ewma",
    ),
    (
        "CusumShift",
        "m_cusum",
        "cusum",
        "10m",
        "",
        "{ h: 5, reference_samples: 30 }",
        "cusum_upper",
    ),
    (
        "PageHinkleyChange",
        "m_ph",
        "page_hinkley",
        "10m",
        "",
        "{ mode: up, hold_seconds: 6 }",
        "statistic",
    ),
    (
        "AdwinChange",
        "m_adwin",
        "adwin",
        "10m",
        "",
        "{ hold_seconds: 6 }",
        "shift",
    ),
    (
        "SeasonalDeviation",
        "m_seasonal",
        "seasonal",
        "5m",
        "",
        "{ period_seconds: 60, periods: 3, tolerance_seconds: 3, mode: ratio }",
        "ratio",
    ),
    (
        "HoltWintersBand",
        "m_hw",
        "holt_winters",
        "10m",
        "",
        "{}",
        "forecast",
    ),
    (
        "ApprovalRateMoved",
        "m_roc",
        "rate_of_change",
        "1m",
        "        baseline: { offset: 2m, window: 1m }\n",
        "{ mode: absolute, threshold: 0.06 }",
        "change",
    ),
    (
        "KnnNovelty",
        "m_knn",
        "knn",
        "10m",
        "",
        "{ dimension: 4, min_samples: 10, warmup: 10 }",
        "novelty",
    ),
    (
        "DiskFillsUp",
        "m_exhaustion",
        "exhaustion",
        "30s",
        "",
        "{ limit: 1.0, horizon_seconds: 120 }",
        "predicted",
    ),
];

fn config(receiver: &str) -> String {
    let mut yaml = String::from("groups:\n  - name: anomaly\n    interval: 1s\n    rules:\n");
    for (alert, metric, detector, window, extra, config, _) in RULES {
        yaml.push_str(&format!(
            "      - alert: {alert}\n        query: '{metric}'\n        window: {window}\n{extra}        detector: {detector}\n        config: {config}\n        labels: {{ severity: warning }}\n        annotations:\n          summary: \"{{{{ $labels.model_name }}}} {detector} {{{{ $value }}}}\"\n"
        ));
    }
    yaml.push_str(&format!(
        "route:\n  receiver: hook\n  group_by: [alertname]\n  group_wait: 1s\n  group_interval: 1s\n  repeat_interval: 4h\nreceivers:\n  - name: hook\n    webhook_configs: [{{ url: \"{receiver}/hook\", allowed_networks: [\"127.0.0.1/32\"] }}]\n"
    ));
    yaml
}

/// Every notification per alertname, in arrival order, as (status, alert).
async fn by_alert(received: &Received) -> BTreeMap<String, Vec<(String, Value)>> {
    let mut out: BTreeMap<String, Vec<(String, Value)>> = BTreeMap::new();
    for n in received.all().await {
        for a in n["alerts"].as_array().cloned().unwrap_or_default() {
            let name = a["labels"]["alertname"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            out.entry(name)
                .or_default()
                .push((n["status"].as_str().unwrap_or_default().to_owned(), a));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_anomaly_detector_fires_on_its_fault_and_resolves() {
    let (receiver, received) = start_receiver().await;
    let server = start_klaxon(&config(&receiver)).await;
    let base = format!("http://{}", server.addr());
    let client = reqwest::Client::new();

    // Healthy history, all ending at t0.
    let t0 = now_ms();
    let level = |i: i64| 10.0 + wiggle(i);
    let history = vec![
        series("m_mad", samples(t0, 5_000, 40, level)),
        series("m_ewma", samples(t0, 5_000, 40, level)),
        series("m_cusum", samples(t0, 5_000, 40, level)),
        series("m_ph", samples(t0, 5_000, 50, level)),
        series("m_adwin", samples(t0, 5_000, 60, level)),
        series(
            "m_seasonal",
            (0..=100)
                .map(|i| {
                    let t = t0 - (100 - i) * 2_000;
                    json!([t, seasonal_value(t)])
                })
                .collect(),
        ),
        series(
            "m_hw",
            samples(t0, 5_000, 60, |i| 100.0 + 0.5 * i as f64 + wiggle(i)),
        ),
        series(
            "m_roc",
            samples(t0, 2_000, 100, |i| 0.9 + 0.005 * wiggle(i)),
        ),
        series("m_exhaustion", samples(t0, 2_000, 30, |_| 0.5)),
        series("m_knn", samples(t0, 5_000, 60, level)),
    ];
    let resp = push(&client, &base, json!({ "series": history })).await;
    assert_eq!(resp.status(), 204);

    // Every rule judges its series, and nothing fires on the healthy history.
    eventually(Duration::from_secs(20), "healthy evaluations", || async {
        let rules = get_json(&client, &format!("{base}/api/v1/rules")).await;
        let list = rules["data"]["groups"][0]["rules"].as_array().cloned()?;
        (list.len() == RULES.len() && list.iter().all(|r| r["health"] == "ok" && r["series"] == 1))
            .then_some(())
    })
    .await;
    // Two more evaluation rounds on the history alone.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let alerts = get_json(&client, &format!("{base}/api/v1/alerts")).await;
    assert_eq!(alerts["data"]["alerts"], json!([]), "quiet on healthy data");
    assert!(received.all().await.is_empty());

    // The faults, timestamped now (just after the history).
    let tf = now_ms();
    let fault = vec![
        series("m_mad", vec![json!([tf, 20.0])]),
        series("m_ewma", samples(tf, 10, 5, |_| 20.0)),
        series("m_cusum", samples(tf, 10, 3, |_| 14.0)),
        series("m_ph", samples(tf, 10, 10, |_| 30.0)),
        series("m_adwin", samples(tf, 10, 30, |i| 20.0 + wiggle(i))),
        series("m_seasonal", vec![json!([tf, seasonal_value(tf) * 3.0])]),
        series("m_hw", vec![json!([tf, 100.0 + 0.5 * 60.0 + 25.0])]),
        series("m_roc", vec![json!([tf, 0.82])]),
        series(
            "m_exhaustion",
            samples(tf, 500, 10, |i| 0.55 + 0.05 * i as f64),
        ),
        series("m_knn", vec![json!([tf, 20.0])]),
    ];
    let resp = push(&client, &base, json!({ "series": fault })).await;
    assert_eq!(resp.status(), 204);

    // One firing notification per rule, with the statistic in its annotations.
    let firing = eventually(
        Duration::from_secs(30),
        "every rule to notify firing",
        || async {
            let got = by_alert(&received).await;
            RULES
                .iter()
                .all(|r| {
                    got.get(r.0)
                        .is_some_and(|n| n.iter().any(|(s, _)| s == "firing"))
                })
                .then_some(got)
        },
    )
    .await;
    for (alert, _, detector, _, _, _, statistic) in RULES {
        let (status, a) = &firing[*alert][0];
        assert_eq!(status, "firing", "{alert}");
        let annotations = &a["annotations"];
        assert!(
            annotations[statistic].is_string(),
            "{alert}: no `{statistic}` annotation in {annotations}"
        );
        assert!(
            annotations["detector_summary"].is_string(),
            "{alert}: {annotations}"
        );
        let summary = annotations["summary"].as_str().unwrap_or_default();
        assert!(
            summary.starts_with(&format!("fraud {detector} ")),
            "{alert}: {summary}"
        );
        assert_eq!(a["labels"]["model_name"], "fraud");
    }
    // Spot checks of the statistics against the seeded faults.
    let annotation = |alert: &str, key: &str| -> f64 {
        firing[alert][0].1["annotations"][key]
            .as_str()
            .and_then(|s| s.parse().ok())
            .unwrap_or(f64::NAN)
    };
    assert!(annotation("MadSpike", "median") < 11.0);
    assert!(annotation("EwmaShift", "ewma") > 11.0);
    assert!(annotation("CusumShift", "cusum_upper") > 0.0);
    assert!(annotation("PageHinkleyChange", "statistic") > 50.0);
    assert!(annotation("AdwinChange", "shift") > 0.0);
    assert!(annotation("SeasonalDeviation", "ratio") > 2.0);
    assert!(annotation("HoltWintersBand", "residual") > 15.0);
    assert!((annotation("ApprovalRateMoved", "change") + 0.08).abs() < 0.01);
    assert!(annotation("DiskFillsUp", "predicted") >= 1.0);
    assert_eq!(annotation("KnnNovelty", "latest"), 20.0);
    assert!(annotation("KnnNovelty", "window_max") < 11.0);
    assert_eq!(
        firing["KnnNovelty"][0].1["annotations"]["new_extreme"],
        "above"
    );

    // Recovery. Window detectors see a normal latest value; the control charts see
    // enough in-control samples to drain; the change detectors stay at their new
    // level while the hold runs out.
    let tr = now_ms().max(tf + 1_000);
    let recovery = vec![
        series("m_mad", vec![json!([tr, 10.2])]),
        series("m_ewma", samples(tr, 10, 40, level)),
        series("m_cusum", samples(tr, 10, 80, level)),
        series("m_ph", samples(tr, 10, 10, |i| 30.0 + wiggle(i))),
        series("m_adwin", samples(tr, 10, 10, |i| 20.0 + wiggle(i))),
        series("m_seasonal", vec![json!([tr, seasonal_value(tr)])]),
        series("m_hw", vec![json!([tr, 100.0 + 0.5 * 61.0 + wiggle(61)])]),
        series("m_roc", vec![json!([tr, 0.9])]),
        series("m_exhaustion", samples(tr, 100, 30, |_| 0.3)),
        // Past the spike: the newest lag vector is an everyday shape again.
        series("m_knn", samples(tr, 10, 10, level)),
    ];
    let resp = push(&client, &base, json!({ "series": recovery })).await;
    assert_eq!(resp.status(), 204);

    let resolved = eventually(
        Duration::from_secs(20 + HOLD_SECONDS),
        "every rule to notify resolved",
        || async {
            let got = by_alert(&received).await;
            RULES
                .iter()
                .all(|r| {
                    got.get(r.0)
                        .is_some_and(|n| n.iter().any(|(s, _)| s == "resolved"))
                })
                .then_some(got)
        },
    )
    .await;
    // A few more group intervals: nothing else arrives.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let settled = by_alert(&received).await;
    assert_eq!(settled, resolved, "no notification after the resolved ones");
    for (alert, ..) in RULES {
        let statuses: Vec<&str> = settled[*alert].iter().map(|(s, _)| s.as_str()).collect();
        assert_eq!(statuses, ["firing", "resolved"], "{alert}");
        let (first, last) = (&settled[*alert][0].1, &settled[*alert][1].1);
        assert_eq!(first["fingerprint"], last["fingerprint"], "{alert}");
    }
    let alerts = get_json(&client, &format!("{base}/api/v1/alerts")).await;
    assert_eq!(alerts["data"]["alerts"], json!([]));
    server.shutdown().await;
}
