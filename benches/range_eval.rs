//! PromQL range-query evaluation in process (no HTTP, no peers): the five
//! example rule queries of `query_compare` over the same generated data
//! (1 000 ML-serving series × 6 h at 15 s), range over the last hour at a
//! 15 s step. For profiling the evaluator (`perf record` on this binary)
//! and tracking it between changes; `query_compare` is the side-by-side.
//! Each query runs both ways, node at a time (what `Engine::range` does)
//! and step by step (`Engine::range_per_step`), and the answers are
//! compared (exactly: NaN would count as different).
//!
//! Run: `cargo bench --bench range_eval` (`-- --runs N`, default 10;
//! `--query "p99 latency"` for one query).

use std::time::Instant;

use klaxon_host::ingest::{IngestLimits, TextFormat, parse_prom_text};
use klaxon_host::promql::{Engine, Query};
use klaxon_host::store::{Store, StoreConfig};

#[path = "shared/mlseries.rs"]
mod mlseries;
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

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let runs: usize = args
        .iter()
        .position(|a| a == "--runs")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let points = (HOURS * 3600 / STEP_S) as usize;
    let now_s = chrono::Utc::now().timestamp();
    let end_s = (now_s - 60) / STEP_S * STEP_S;
    let start_s = end_s - (points as i64 - 1) * STEP_S;
    let (text, _) = render(&generate(points), start_s);
    let limits = IngestLimits {
        max_body_bytes: usize::MAX,
        max_series_per_request: usize::MAX,
        max_samples_per_request: usize::MAX,
        max_sample_age: std::time::Duration::from_secs(7 * 24 * 3600),
        ..IngestLimits::default()
    };
    let batch = parse_prom_text(
        text.as_bytes(),
        TextFormat::Prometheus,
        &limits,
        now_s * 1000,
        &[],
    )
    .expect("generated text parses");
    let store = Store::new(StoreConfig {
        retention: std::time::Duration::from_secs(24 * 3600),
        ..StoreConfig::default()
    });
    store.append(&batch).expect("stored");
    // Off the sample grid, as query_compare queries.
    let end_ms = now_s * 1000 - 7_000;
    let start_ms = end_ms - 3_600_000;
    let engine = Engine::default();
    println!("| query | by node (range 1h/15s median) | step by step | series | same answer |");
    println!("|---|---:|---:|---:|---|");
    let step_ms = STEP_S * 1000;
    let only = args
        .iter()
        .position(|a| a == "--query")
        .and_then(|i| args.get(i + 1));
    for (name, q) in QUERIES {
        if only.is_some_and(|o| o != name) {
            continue;
        }
        let query = Query::parse(q).expect("query parses");
        let by_node = median_ms(runs, || {
            engine
                .range(&store, &query, start_ms, end_ms, step_ms)
                .expect("evaluates")
        });
        let per_step = median_ms(runs, || {
            engine
                .range_per_step(&store, &query, start_ms, end_ms, step_ms)
                .expect("evaluates")
        });
        println!(
            "| {name} | {:.2} ms | {:.2} ms | {} | {} |",
            by_node.0,
            per_step.0,
            by_node.1.len(),
            if by_node.1 == per_step.1 { "yes" } else { "NO" }
        );
    }
}

/// The median time of `runs` calls of `f`, and its last answer.
fn median_ms<T>(runs: usize, mut f: impl FnMut() -> T) -> (f64, T) {
    let mut times = Vec::with_capacity(runs);
    let mut last = f();
    for _ in 0..runs {
        let t = Instant::now();
        last = f();
        times.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    times.sort_by(f64::total_cmp);
    (times[times.len() / 2], last)
}
