//! End to end: the stock drift and data-quality detectors (`psi` on raw samples and on
//! histogram buckets, `ks`, `jensen_shannon`, `wasserstein`, `chi_square`,
//! `null_rate`, `freshness`, `absent`) in a real Klaxon on an ephemeral port, fed by
//! real HTTP pushes, notifying a real local webhook receiver.
//!
//! Each case pushes a history (the baseline windows lie 5 minutes back), then feeds
//! its metric live from a seeded generator: healthy data (no notification), a fault
//! (one firing notification whose annotations carry the detector's statistic), and
//! healthy data again (the resolved notification). All cases share one host and run
//! concurrently.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use common::*;
use serde_json::{Value, json};

/// Sample spacing of every feed: 40 samples a second per series.
const STEP_MS: i64 = 25;
/// History pushed before the live feed: the 5 m baseline offset plus its 10 s window
/// and some slack.
const HISTORY_MS: i64 = 5 * 60_000 + 30_000;

const NORMAL: u8 = 0;
const FAULT: u8 = 1;

/// A small seeded generator (xorshift64*), so every run feeds the same values.
struct Rng(u64);

impl Rng {
    fn uniform(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// What a fault looks like for a case.
#[derive(Clone, Copy, PartialEq)]
enum FaultKind {
    /// The generator switches to its fault distribution.
    Values,
    /// Nothing is pushed at all.
    Silence,
}

/// One metric feed: its series and a generator of one value per series per step.
struct Feed {
    metric: &'static str,
    series: Vec<Vec<(&'static str, &'static str)>>,
    fault: FaultKind,
    step: Box<dyn FnMut(bool) -> Vec<f64> + Send>,
}

impl Feed {
    /// The push body for steps at `times`.
    fn body(&mut self, times: &[i64], fault: bool) -> Value {
        let mut samples: Vec<Vec<Value>> = vec![Vec::new(); self.series.len()];
        for &t in times {
            for (i, v) in (self.step)(fault).into_iter().enumerate() {
                let v = if v.is_nan() { json!("NaN") } else { json!(v) };
                samples[i].push(json!([t, v]));
            }
        }
        let series: Vec<Value> = self
            .series
            .iter()
            .zip(samples)
            .map(|(labels, samples)| {
                let labels: BTreeMap<_, _> = labels.iter().copied().collect();
                json!({"metric": self.metric, "labels": labels, "samples": samples})
            })
            .collect();
        json!({ "series": series })
    }
}

/// Raw observations: uniform on [0, 1), shifted by `fault_shift` during a fault.
fn scores(metric: &'static str, seed: u64, fault_shift: f64) -> Feed {
    let mut rng = Rng(seed);
    Feed {
        metric,
        series: vec![vec![("model", "fraud")]],
        fault: FaultKind::Values,
        step: Box::new(move |fault| {
            let x = rng.uniform();
            vec![if fault { x + fault_shift } else { x }]
        }),
    }
}

/// A Prometheus histogram's cumulative bucket counters: one observation per step,
/// uniform on [0, 0.3) normally, on [0.4, 1.2) during a fault.
fn latency_histogram(seed: u64) -> Feed {
    const LES: [(&str, f64); 5] = [
        ("0.1", 0.1),
        ("0.25", 0.25),
        ("0.5", 0.5),
        ("1", 1.0),
        ("+Inf", f64::INFINITY),
    ];
    let mut rng = Rng(seed);
    let mut counts = [0.0; 5];
    Feed {
        metric: "drift_latency_seconds_bucket",
        series: LES
            .iter()
            .map(|(le, _)| vec![("model", "fraud"), ("le", *le)])
            .collect(),
        fault: FaultKind::Values,
        step: Box::new(move |fault| {
            let u = rng.uniform();
            let x = if fault { 0.4 + 0.8 * u } else { 0.3 * u };
            for (c, (_, bound)) in counts.iter_mut().zip(LES) {
                if x <= bound {
                    *c += 1.0;
                }
            }
            counts.to_vec()
        }),
    }
}

/// Predicted-class counters: one prediction per step, mix 70/20/10 normally,
/// 30/30/40 during a fault.
fn class_counters(seed: u64) -> Feed {
    let mut rng = Rng(seed);
    let mut counts = [0.0; 3];
    Feed {
        metric: "drift_predictions_total",
        series: ["approve", "review", "decline"]
            .iter()
            .map(|c| vec![("model", "fraud"), ("class", *c)])
            .collect(),
        fault: FaultKind::Values,
        step: Box::new(move |fault| {
            let u = rng.uniform();
            let (a, r) = if fault { (0.3, 0.6) } else { (0.7, 0.9) };
            let class = if u < a {
                0
            } else if u < r {
                1
            } else {
                2
            };
            counts[class] += 1.0;
            counts.to_vec()
        }),
    }
}

/// A feature value, NaN (null) for about half the samples during a fault.
fn feature_values(seed: u64) -> Feed {
    let mut rng = Rng(seed);
    Feed {
        metric: "drift_feature_income",
        series: vec![vec![("feature", "income")]],
        fault: FaultKind::Values,
        step: Box::new(move |fault| {
            let u = rng.uniform();
            vec![if fault && u < 0.5 {
                f64::NAN
            } else {
                1000.0 * u
            }]
        }),
    }
}

/// A feed that goes silent during a fault.
fn heartbeat(metric: &'static str, labels: Vec<(&'static str, &'static str)>) -> Feed {
    let mut n = 0.0;
    Feed {
        metric,
        series: vec![labels],
        fault: FaultKind::Silence,
        step: Box::new(move |_| {
            n += 1.0;
            vec![n]
        }),
    }
}

/// Pushes `feed`'s history, then feeds it live every 250 ms until `phase` is 255.
async fn run_feed(mut feed: Feed, base: String, phase: Arc<AtomicU8>) {
    let client = reqwest::Client::new();
    let t0 = now_ms();
    let history: Vec<i64> = (0..HISTORY_MS / STEP_MS)
        .map(|i| t0 - HISTORY_MS + i * STEP_MS)
        .collect();
    let resp = push(&client, &base, feed.body(&history, false)).await;
    assert_eq!(resp.status(), 204, "{}: history push", feed.metric);
    let mut last = t0 - STEP_MS;
    loop {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let p = phase.load(Ordering::SeqCst);
        if p == 255 {
            return;
        }
        let now = now_ms();
        let fault = p == FAULT;
        if fault && feed.fault == FaultKind::Silence {
            last = now;
            continue;
        }
        let times: Vec<i64> = (1..)
            .map(|i| last + i * STEP_MS)
            .take_while(|t| *t <= now)
            .collect();
        let Some(&end) = times.last() else { continue };
        last = end;
        let resp = push(&client, &base, feed.body(&times, fault)).await;
        assert_eq!(resp.status(), 204, "{}: live push", feed.metric);
    }
}

/// The alerts for `alertname` with `status` in the notifications received after
/// the first `from`.
async fn alerts_of(received: &Received, alertname: &str, status: &str, from: usize) -> Vec<Value> {
    received
        .all()
        .await
        .iter()
        .skip(from)
        .flat_map(|n| n["alerts"].as_array().cloned().unwrap_or_default())
        .filter(|a| a["labels"]["alertname"] == alertname && a["status"] == status)
        .collect()
}

/// What to check on a firing alert: the annotation holding the statistic and the
/// bound it must exceed (or fall below, for p-values).
struct Expect {
    alertname: &'static str,
    labels: Value,
    statistic: &'static str,
    check: fn(f64) -> bool,
    /// A dead man's switch rightly fires at start, before the feed's first push.
    fires_before_data: bool,
}

/// Healthy, fault, healthy again: no notification, then one firing alert with the
/// statistic, then its resolution.
async fn run_case(feed: Feed, expect: Expect, base: String, received: Received) {
    let client = reqwest::Client::new();
    let phase = Arc::new(AtomicU8::new(NORMAL));
    let pusher = tokio::spawn(run_feed(feed, base.clone(), phase.clone()));
    let name = expect.alertname;

    // Three healthy evaluations that judged the series, and no notification.
    let mut seen: Vec<Value> = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while seen.len() < 3 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{name}: no three healthy evaluations within 60 s"
        );
        let rules = get_json(&client, &format!("{base}/api/v1/rules")).await;
        let rule = rules["data"]["groups"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|g| g["rules"].as_array().cloned().unwrap_or_default())
            .find(|r| r["name"] == name)
            .unwrap_or_else(|| panic!("{name}: no such rule"));
        assert_ne!(rule["health"], "err", "{name}: {rule:#}");
        if rule["health"] == "ok"
            && rule["series"].as_u64() >= Some(1)
            && !seen.contains(&rule["lastEvaluation"])
        {
            seen.push(rule["lastEvaluation"].clone());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let active = get_json(&client, &format!("{base}/api/v1/alerts")).await;
    assert!(
        !active["data"]["alerts"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|a| a["labels"]["alertname"] == name),
        "{name}: active on healthy data: {active:#}"
    );
    if !expect.fires_before_data {
        assert!(
            alerts_of(&received, name, "firing", 0).await.is_empty(),
            "{name}: fired on healthy data"
        );
    }

    let from = received.all().await.len();
    phase.store(FAULT, Ordering::SeqCst);
    let firing = eventually(
        Duration::from_secs(60),
        &format!("{name}: firing notification"),
        || async {
            alerts_of(&received, name, "firing", from)
                .await
                .into_iter()
                .next()
        },
    )
    .await;
    assert_eq!(firing["labels"], expect.labels, "{name}");
    let stat = &firing["annotations"][expect.statistic];
    let value: f64 = stat
        .as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            panic!(
                "{name}: annotation {} missing: {firing:#}",
                expect.statistic
            )
        });
    assert!(
        (expect.check)(value),
        "{name}: {} = {value}",
        expect.statistic
    );
    assert!(
        firing["annotations"]["detector_summary"].is_string(),
        "{name}: {firing:#}"
    );

    phase.store(NORMAL, Ordering::SeqCst);
    let resolved = eventually(
        Duration::from_secs(60),
        &format!("{name}: resolved notification"),
        || async {
            alerts_of(&received, name, "resolved", from)
                .await
                .into_iter()
                .next()
        },
    )
    .await;
    assert_eq!(resolved["fingerprint"], firing["fingerprint"], "{name}");
    // One alert throughout (one per histogram, not one per bucket or class).
    let fingerprints: std::collections::BTreeSet<String> =
        alerts_of(&received, name, "firing", from)
            .await
            .iter()
            .map(|a| a["fingerprint"].to_string())
            .collect();
    assert_eq!(fingerprints.len(), 1, "{name}: {fingerprints:?}");
    phase.store(255, Ordering::SeqCst);
    pusher.await.expect("pusher");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drift_and_data_quality_detectors_fire_and_resolve() {
    let (receiver, received) = start_receiver().await;
    let baseline = "baseline: { offset: 5m }";
    let yaml = format!(
        r#"
groups:
  - name: drift
    interval: 1s
    rules:
      - alert: PsiScoreDrift
        query: 'drift_psi_score{{model="fraud"}}'
        window: 10s
        {baseline}
        detector: psi
        config: {{ bins: 5, threshold: 0.2 }}
      - alert: PsiLatencyHistogramDrift
        query: 'drift_latency_seconds_bucket{{model="fraud"}}'
        window: 10s
        {baseline}
        detector: psi
        config: {{ input: buckets, threshold: 0.2 }}
      - alert: KsScoreDrift
        query: 'drift_ks_score{{model="fraud"}}'
        window: 10s
        {baseline}
        detector: ks
        config: {{ alpha: 0.0001 }}
      - alert: JsScoreDrift
        query: 'drift_js_score{{model="fraud"}}'
        window: 10s
        {baseline}
        detector: jensen_shannon
        config: {{ bins: 5, threshold: 0.15 }}
      - alert: WassersteinScoreDrift
        query: 'drift_w_score{{model="fraud"}}'
        window: 10s
        detector: wasserstein
        config: {{ threshold: 0.25, reference: [{reference}] }}
      - alert: PredictedClassMixDrift
        query: 'drift_predictions_total{{model="fraud"}}'
        window: 10s
        {baseline}
        detector: chi_square
        config: {{ label: class, alpha: 0.0001 }}
      - alert: FeatureNulls
        query: 'drift_feature_income'
        window: 10s
        detector: null_rate
        config: {{ max_increase: 0.2, min_samples: 20 }}
      - alert: FeedStale
        query: 'drift_feed_rows{{feed="clicks"}}'
        window: 1m
        detector: freshness
        config: {{ max_age: 3s }}
      - alert: PipelineDead
        query: 'drift_heartbeat{{pipeline="daily"}}'
        window: 3s
        detector: absent
        judge_absent: true
route:
  receiver: hook
  group_by: ['...']
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 4h
receivers:
  - name: hook
    webhook_configs: [{{ url: "{receiver}/hook" }}]
"#,
        reference = (0..50)
            .map(|i| format!("{}", f64::from(i) / 49.0))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let server = start_klaxon(&yaml).await;
    let base = format!("http://{}", server.addr());
    let case = |feed: Feed, expect: Expect| run_case(feed, expect, base.clone(), received.clone());
    tokio::join!(
        case(
            scores("drift_psi_score", 1, 0.5),
            Expect {
                alertname: "PsiScoreDrift",
                labels: json!({"alertname": "PsiScoreDrift", "model": "fraud"}),
                statistic: "psi",
                check: |v| v > 0.2,
                fires_before_data: false,
            },
        ),
        case(
            latency_histogram(2),
            Expect {
                alertname: "PsiLatencyHistogramDrift",
                // One alert for the histogram: its labels without `le`.
                labels: json!({"alertname": "PsiLatencyHistogramDrift", "model": "fraud"}),
                statistic: "psi",
                check: |v| v > 0.2,
                fires_before_data: false,
            },
        ),
        case(
            scores("drift_ks_score", 3, 0.6),
            Expect {
                alertname: "KsScoreDrift",
                labels: json!({"alertname": "KsScoreDrift", "model": "fraud"}),
                statistic: "ks_statistic",
                // p < 1e-4 with ~400 samples a side needs D > 0.14.
                check: |v| v > 0.14 && v <= 1.0,
                fires_before_data: false,
            },
        ),
        case(
            scores("drift_js_score", 4, 0.5),
            Expect {
                alertname: "JsScoreDrift",
                labels: json!({"alertname": "JsScoreDrift", "model": "fraud"}),
                statistic: "js_distance",
                check: |v| v > 0.15 && v <= 1.0,
                fires_before_data: false,
            },
        ),
        case(
            scores("drift_w_score", 5, 0.5),
            Expect {
                alertname: "WassersteinScoreDrift",
                labels: json!({"alertname": "WassersteinScoreDrift", "model": "fraud"}),
                statistic: "wasserstein_distance",
                check: |v| v > 0.25,
                fires_before_data: false,
            },
        ),
        case(
            class_counters(6),
            Expect {
                alertname: "PredictedClassMixDrift",
                // One alert per model: the labels without `class`.
                labels: json!({"alertname": "PredictedClassMixDrift", "model": "fraud"}),
                statistic: "chi2",
                // p < 1e-4 with 2 degrees of freedom: chi2 > 18.42.
                check: |v| v > 18.42,
                fires_before_data: false,
            },
        ),
        case(
            feature_values(7),
            Expect {
                alertname: "FeatureNulls",
                labels: json!({"alertname": "FeatureNulls", "feature": "income"}),
                statistic: "null_rate",
                check: |v| v > 0.2 && v < 1.0,
                fires_before_data: false,
            },
        ),
        case(
            heartbeat("drift_feed_rows", vec![("feed", "clicks")]),
            Expect {
                alertname: "FeedStale",
                labels: json!({"alertname": "FeedStale", "feed": "clicks"}),
                statistic: "age_seconds",
                check: |v| v > 3.0,
                fires_before_data: false,
            },
        ),
        case(
            heartbeat("drift_heartbeat", vec![("pipeline", "daily")]),
            Expect {
                alertname: "PipelineDead",
                // As PromQL's absent(): the selector's equality labels.
                labels: json!({"alertname": "PipelineDead", "pipeline": "daily"}),
                statistic: "samples",
                check: |v| v == 0.0,
                fires_before_data: true,
            },
        ),
    );
    server.shutdown().await;
}
