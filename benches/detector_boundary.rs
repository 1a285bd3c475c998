//! One batched detector call, 100 series × 240 samples, through the Wasm
//! boundary (fresh instance from the pre-linked pool, arguments lowered,
//! verdicts lifted) vs the same plugin logic compiled natively and called on
//! the same batch. The ratio is the cost of the sandbox.
//!
//! Run: `cargo bench --bench detector_boundary`.

use std::hint::black_box;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use klaxon_host::plugins::bindings::types as host_types;
use klaxon_host::plugins::{
    EngineSettings, Plugin, PluginEngine, PluginLimits, PluginSource, stock,
};
use klaxon_sdk::testing::{TestSeries, build_batch, run_detector_batch};

const SERIES: usize = 100;
const SAMPLES: usize = 240;
const CONFIG: &str = r#"{"threshold":3.0,"min_samples":10}"#;

/// Deterministic noise around a per-series level, 15 s apart.
fn series() -> Vec<TestSeries> {
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    (0..SERIES)
        .map(|s| {
            let ts: Vec<i64> = (0..SAMPLES as i64)
                .map(|i| 1_763_780_000_000 + i * 15_000)
                .collect();
            let vals: Vec<f64> = (0..SAMPLES)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    s as f64 + (x % 1000) as f64 / 1000.0
                })
                .collect();
            TestSeries::new(
                &[("model_name", &format!("model-{s}")), ("replica", "r1")],
                ts,
                vals,
            )
        })
        .collect()
}

fn to_host(b: &klaxon_sdk::bindings::types::Batch) -> host_types::Batch {
    host_types::Batch {
        series: b
            .series
            .iter()
            .map(|s| host_types::SeriesInput {
                labels: s.labels.clone(),
                window: host_types::Span {
                    start: s.window.start,
                    len: s.window.len,
                },
                baseline: host_types::Span {
                    start: s.baseline.start,
                    len: s.baseline.len,
                },
                state: s.state.clone(),
            })
            .collect(),
        timestamps_ms: b.timestamps_ms.clone(),
        values: b.values.clone(),
        eval_time_ms: b.eval_time_ms,
    }
}

fn bench(c: &mut Criterion) {
    let sdk_batch = build_batch(&series(), 1_763_780_000_000 + SAMPLES as i64 * 15_000);
    let host_batch = to_host(&sdk_batch);

    let engine = PluginEngine::new(EngineSettings::default()).expect("engine");
    let zscore = Plugin::load(
        &engine,
        Some("zscore"),
        stock::bytes("zscore").expect("stock zscore"),
        PluginSource::Stock,
        PluginLimits::default(),
    )
    .expect("load zscore");

    let mut group = c.benchmark_group("zscore_100x240");
    group.bench_function("wasm", |b| {
        b.iter(|| {
            black_box(
                zscore
                    .evaluate(CONFIG, black_box(&host_batch))
                    .expect("evaluate"),
            )
        })
    });
    group.bench_function("native", |b| {
        b.iter_batched(
            || sdk_batch.clone(),
            |batch| {
                black_box(
                    run_detector_batch::<klaxon_plugin_zscore::ZScore>(CONFIG, batch)
                        .expect("evaluate"),
                )
            },
            BatchSize::LargeInput,
        )
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
