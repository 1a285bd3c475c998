//! PromQL query latency, Klaxon side by side with Prometheus and
//! VictoriaMetrics (Debian's `prometheus` and `victoria-metrics` packages),
//! each started by this harness on loopback over the same generated data:
//! 1 000 ML-serving series × 6 h at 15 s (~1.44 M samples). For each of the
//! five example rule queries of the Prometheus-compatibility issue: the
//! median latency of the instant query and of the range query over the last
//! hour at a 15 s step, over HTTP, and whether Klaxon's answers equal
//! Prometheus's (same series, values within 1e-9 relative).
//!
//! Prometheus gets the data by `promtool tsdb create-blocks-from
//! openmetrics` (backfill), VictoriaMetrics and Klaxon through their
//! Prometheus text import.
//!
//! Run: `cargo bench --bench query_compare` (`-- --runs N`, default 20).

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

#[path = "shared/harness.rs"]
mod harness;
#[path = "shared/mlseries.rs"]
mod mlseries;
use harness::{Proc, free_port, wait_http};
use mlseries::{STEP_S, generate, render};

const HOURS: i64 = 6;

const QUERIES: [(&str, &str); 5] = [
    (
        "p99 latency",
        r#"histogram_quantile(0.99, sum by (le, model_name) (rate(ml_prediction_duration_seconds_bucket{job="model-server"}[5m])))"#,
    ),
    (
        "burn rate",
        "(sum(rate(ml_prediction_errors_total[1h])) / sum(rate(ml_predictions_total[1h]))) / (1 - 0.999) > 14.4",
    ),
    (
        "null rate",
        "ml_feature_null_rate > 0.05 and ml_feature_null_rate > 3 * avg_over_time(ml_feature_null_rate[7d])",
    ),
    (
        "approval shift",
        "abs(avg_over_time(ml_approval_rate[1d]) - avg_over_time(ml_approval_rate[7d] offset 1d)) > 0.06",
    ),
    (
        "drift cascade",
        "rate(ml_feature_drift_events_total[5m]) > 0.1 and on() rate(ml_prediction_drift_events_total[5m]) > 0.1",
    ),
];

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn query(
    client: &reqwest::blocking::Client,
    url: &str,
    params: &[(&str, String)],
) -> (Duration, Value) {
    let started = Instant::now();
    let resp = client.post(url).form(params).send().expect("query");
    let body: Value = resp.json().expect("query JSON");
    (started.elapsed(), body)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// (labels, values) of a vector or matrix answer, sorted, for comparison.
fn normalise(body: &Value) -> Result<BTreeMap<String, Vec<(f64, f64)>>, String> {
    if body["status"] != "success" {
        return Err(format!("{body}"));
    }
    let mut out = BTreeMap::new();
    for s in body["data"]["result"]
        .as_array()
        .cloned()
        .unwrap_or_default()
    {
        let metric = s["metric"].to_string();
        let points: Vec<&Value> = match s.get("values").and_then(Value::as_array) {
            Some(vs) => vs.iter().collect(),
            None => vec![&s["value"]],
        };
        let parsed = points
            .iter()
            .map(|p| {
                let t = p[0].as_f64().unwrap_or(f64::NAN);
                let v = p[1]
                    .as_str()
                    .and_then(|s| s.parse::<f64>().ok())
                    .unwrap_or(f64::NAN);
                (t, v)
            })
            .collect();
        out.insert(metric, parsed);
    }
    Ok(out)
}

fn same(a: &BTreeMap<String, Vec<(f64, f64)>>, b: &BTreeMap<String, Vec<(f64, f64)>>) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|((ka, va), (kb, vb))| {
            ka == kb
                && va.len() == vb.len()
                && va.iter().zip(vb).all(|(x, y)| {
                    x.0 == y.0
                        && ((x.1.is_nan() && y.1.is_nan())
                            || (x.1 - y.1).abs() <= 1e-9 * x.1.abs().max(y.1.abs()).max(1e-300))
                })
        })
}

fn main() {
    if std::env::args().any(|a| a == "--serve-klaxon") {
        serve_klaxon();
        return;
    }
    klaxon_host::server::install_tls_provider();
    let runs = arg("--runs", 20);
    for bin in [
        "/usr/bin/prometheus",
        "/usr/bin/promtool",
        "/usr/bin/victoria-metrics",
    ] {
        assert!(
            Path::new(bin).exists(),
            "{bin} is missing: apt-get install prometheus victoria-metrics"
        );
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let points = (HOURS * 3600 / STEP_S) as usize;
    let now_s = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64;
    // Data ends a minute ago, on a step boundary.
    let end_s = (now_s - 60) / STEP_S * STEP_S;
    let start_s = end_s - (points as i64 - 1) * STEP_S;
    let families = generate(points);
    let series: usize = families.iter().map(|f| f.series.len()).sum();
    let (text, om) = render(&families, start_s);
    println!(
        "data: {series} series × {points} samples = {} samples, {:.1} MB of text",
        series * points,
        text.len() as f64 / 1e6
    );

    // Prometheus: backfill, then start on the blocks.
    let om_path = dir.path().join("data.om");
    std::fs::write(&om_path, &om).expect("write openmetrics");
    let tsdb = dir.path().join("prom");
    let status = Command::new("/usr/bin/promtool")
        .args(["tsdb", "create-blocks-from", "openmetrics"])
        .arg(&om_path)
        .arg(&tsdb)
        .stdout(Stdio::null())
        .status()
        .expect("promtool");
    assert!(status.success(), "promtool backfill failed");
    let prom_config = dir.path().join("prometheus.yml");
    std::fs::write(&prom_config, "global:\n  scrape_interval: 15s\n").expect("write config");
    let prom_port = free_port();
    let _prom = Proc(
        Command::new("/usr/bin/prometheus")
            .arg(format!("--config.file={}", prom_config.display()))
            .arg(format!("--storage.tsdb.path={}", tsdb.display()))
            .arg(format!("--web.listen-address=127.0.0.1:{prom_port}"))
            .arg("--storage.tsdb.retention.time=30d")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start prometheus"),
    );
    // VictoriaMetrics.
    let vm_port = free_port();
    let _vm = Proc(
        Command::new("/usr/bin/victoria-metrics")
            .arg(format!(
                "-storageDataPath={}",
                dir.path().join("vm").display()
            ))
            .arg(format!("-httpListenAddr=127.0.0.1:{vm_port}"))
            .arg("-retentionPeriod=30d")
            .arg("-search.latencyOffset=0s")
            .arg("-search.disableCache")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start victoria-metrics"),
    );
    // Klaxon, in its own process.
    let (_klaxon, klaxon) = harness::spawn_klaxon();
    let prom = format!("http://127.0.0.1:{prom_port}");
    let vm = format!("http://127.0.0.1:{vm_port}");
    wait_http(&format!("{prom}/-/ready"));
    wait_http(&format!("{vm}/health"));

    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(120))
        .build()
        .expect("client");
    for (base, path) in [
        (&vm, "/api/v1/import/prometheus"),
        (&klaxon, "/api/v1/import/prometheus"),
    ] {
        // In chunks under Klaxon's default 16 MiB body limit, whole lines.
        let mut chunk = String::new();
        for l in text.lines() {
            chunk.push_str(l);
            chunk.push('\n');
            if chunk.len() > 8 << 20 {
                let r = client
                    .post(format!("{base}{path}"))
                    .body(std::mem::take(&mut chunk))
                    .send()
                    .expect("import");
                assert!(r.status().is_success(), "{base}: {:?}", r.text());
            }
        }
        let r = client
            .post(format!("{base}{path}"))
            .body(chunk)
            .send()
            .expect("import");
        assert!(r.status().is_success(), "{base}: {:?}", r.text());
    }
    let _ = client.get(format!("{vm}/internal/force_flush")).send();
    std::thread::sleep(Duration::from_secs(2));

    // Query times off the 15 s sample grid: no sample sits exactly on a
    // window boundary, where Prometheus 2.42 (closed windows) and Prometheus
    // 3 semantics (left-open), which Klaxon follows, differ by design.
    let t_end = (end_s - 7).to_string();
    let t_start = (end_s - 7 - 3600).to_string();
    println!("\n| query | kind | Klaxon | Prometheus | VictoriaMetrics | Klaxon = Prometheus |");
    println!("|---|---|---|---|---|---|");
    for (name, q) in QUERIES {
        for kind in ["instant", "range 1h/15s"] {
            let (path, params): (&str, Vec<(&str, String)>) = if kind == "instant" {
                (
                    "/api/v1/query",
                    vec![("query", q.to_owned()), ("time", t_end.clone())],
                )
            } else {
                (
                    "/api/v1/query_range",
                    vec![
                        ("query", q.to_owned()),
                        ("start", t_start.clone()),
                        ("end", t_end.clone()),
                        ("step", "15".to_owned()),
                    ],
                )
            };
            let mut medians = Vec::new();
            let mut answers = Vec::new();
            for base in [&klaxon, &prom, &vm] {
                let url = format!("{base}{path}");
                let (_, first) = query(&client, &url, &params); // warm-up
                answers.push(first);
                let times = (0..runs).map(|_| query(&client, &url, &params).0).collect();
                medians.push(median(times));
            }
            let equal = match (normalise(&answers[0]), normalise(&answers[1])) {
                (Ok(k), Ok(p)) => {
                    if same(&k, &p) {
                        format!("yes ({} series)", k.len())
                    } else {
                        format!("NO: Klaxon {} series, Prometheus {}", k.len(), p.len())
                    }
                }
                (Err(e), _) => format!("Klaxon error: {e}"),
                (_, Err(e)) => format!("Prometheus error: {e}"),
            };
            println!(
                "| {name} | {kind} | {:.2} ms | {:.2} ms | {:.2} ms | {equal} |",
                medians[0].as_secs_f64() * 1e3,
                medians[1].as_secs_f64() * 1e3,
                medians[2].as_secs_f64() * 1e3,
            );
        }
    }
}

/// Klaxon with no rules, keeping 7 h.
fn serve_klaxon() {
    harness::serve_klaxon("limits:\n  max_sample_age: 7h\nstore:\n  retention: 7h\n");
}
