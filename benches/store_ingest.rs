//! Single-core throughput of the two halves of a push: `ingest::parse_push`
//! (JSON → validated series) and `Store::append` (series → windows).
//! Throughput is reported in samples per second.
//!
//! Run: `cargo bench --bench store_ingest -- --warm-up-time 1 --measurement-time 3`.
//!
//! Targets: append ≥ 5 M samples/s and parse ≥ 10 M samples/s on one core,
//! so that HTTP push can reach 2.5 M samples/s on two.

use std::cell::Cell;
use std::fmt::Write as _;
use std::hint::black_box;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use klaxon_host::ingest::{IngestLimits, parse_push};
use klaxon_host::store::{Labels, SeriesSamples, Store, StoreConfig};

/// A realistic scrape interval: with the default 6 h retention a series
/// settles at 1 440 samples, so the in-order benches measure steady state
/// (appending and trimming), not an ever-growing buffer.
const STEP_MS: i64 = 15_000;
const NOW_MS: i64 = 1_763_780_000_000;

fn series_labels(n: usize) -> Vec<Labels> {
    (0..n)
        .map(|i| {
            let model = format!("model-{}", i % 50);
            let instance = format!("10.0.{}.{}:9100", i / 250, i % 250);
            Labels::new([
                ("__name__", "ml_prediction_latency_seconds"),
                ("model_name", model.as_str()),
                ("env", "prod"),
                ("instance", instance.as_str()),
            ])
        })
        .collect()
}

fn value(i: usize, k: usize) -> f64 {
    0.1 + ((i * 31 + k * 17) % 1000) as f64 / 10_000.0
}

fn bench_append(c: &mut Criterion) {
    let mut group = c.benchmark_group("store_append");

    for (series, per_series) in [(1_000usize, 1_000usize), (10_000, 1)] {
        let store = Store::new(StoreConfig::default());
        let labels = series_labels(series);
        let next_t = Cell::new(0i64);
        group.throughput(Throughput::Elements((series * per_series) as u64));
        group.bench_function(format!("{series}x{per_series}"), |b| {
            b.iter_batched_ref(
                || {
                    // Fresh, later timestamps each call: the in-order fast path.
                    let t0 = next_t.get();
                    next_t.set(t0 + per_series as i64 * STEP_MS);
                    labels
                        .iter()
                        .enumerate()
                        .map(|(i, l)| SeriesSamples {
                            labels: l.clone(),
                            samples: (0..per_series)
                                .map(|k| (t0 + k as i64 * STEP_MS, value(i, k)))
                                .collect(),
                        })
                        .collect::<Vec<_>>()
                },
                |batch| black_box(store.append(batch)),
                BatchSize::LargeInput,
            )
        });
        // Zero when a filter skipped this case.
        let stored = store.series_count();
        assert!(stored == 0 || stored == series, "{stored} series stored");
    }
    group.finish();
}

/// A push body: `series` series of `per_series` samples each, timestamps
/// ending at `end_ms`.
fn push_body(series: usize, per_series: usize, end_ms: i64) -> Vec<u8> {
    let labels = series_labels(series);
    let mut body = String::from(r#"{"series":["#);
    for (i, l) in labels.iter().enumerate() {
        if i > 0 {
            body.push(',');
        }
        let _ = write!(
            body,
            r#"{{"metric":"ml_prediction_latency_seconds","labels":{{"model_name":"{}","env":"prod","instance":"{}"}},"samples":["#,
            l.get("model_name").unwrap_or_default(),
            l.get("instance").unwrap_or_default()
        );
        for k in 0..per_series {
            if k > 0 {
                body.push(',');
            }
            let t = end_ms - (per_series - 1 - k) as i64 * STEP_MS;
            let _ = write!(body, "[{t},{}]", value(i, k));
        }
        body.push_str("]}");
    }
    body.push_str("]}");
    body.into_bytes()
}

fn bench_parse(c: &mut Criterion) {
    let mut group = c.benchmark_group("parse_push");
    let limits = IngestLimits::default();
    for (series, per_series) in [(1usize, 1_000usize), (10, 100), (100, 10)] {
        let body = push_body(series, per_series, NOW_MS);
        let parsed = parse_push(&body, &limits, NOW_MS)
            .map(|s| s.iter().map(|s| s.samples.len()).sum::<usize>());
        assert_eq!(parsed, Ok(series * per_series), "bench body must parse");
        group.throughput(Throughput::Elements((series * per_series) as u64));
        group.bench_function(
            format!("{series}x{per_series} ({} bytes)", body.len()),
            |b| b.iter(|| black_box(parse_push(black_box(&body), &limits, NOW_MS))),
        );
    }
    group.finish();
}

/// Both halves together, as the push handler runs them (minus HTTP), each
/// call with later timestamps than the one before.
fn bench_pipeline(c: &mut Criterion) {
    let mut group = c.benchmark_group("parse_and_append");
    let limits = IngestLimits::default();
    let (series, per_series) = (10usize, 100usize);
    let store = Store::new(StoreConfig::default());
    let end = Cell::new(NOW_MS);
    group.throughput(Throughput::Elements((series * per_series) as u64));
    group.bench_function(format!("{series}x{per_series}"), |b| {
        b.iter_batched_ref(
            || {
                let now = end.get() + per_series as i64 * STEP_MS;
                end.set(now);
                (push_body(series, per_series, now), now)
            },
            |(body, now)| {
                let batch = parse_push(body, &limits, *now);
                black_box(batch.map(|batch| store.append(&batch)))
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

criterion_group!(benches, bench_append, bench_parse, bench_pipeline);
criterion_main!(benches);
