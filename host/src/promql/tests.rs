use super::*;
use crate::store::{SeriesSamples, StoreConfig};

type TestSeries<'a> = (&'a [(&'a str, &'a str)], &'a [(i64, f64)]);

fn store(series: &[TestSeries<'_>]) -> Store {
    let store = Store::new(StoreConfig {
        retention: Duration::from_secs(10 * 365 * 86400),
        ..StoreConfig::default()
    });
    let batch: Vec<SeriesSamples> = series
        .iter()
        .map(|(labels, samples)| SeriesSamples {
            labels: Labels::new(labels.iter().copied()),
            samples: samples.to_vec(),
        })
        .collect();
    store.append(&batch).expect("append");
    store
}

fn instant(store: &Store, q: &str, t: i64) -> Value {
    let query = Query::parse(q).expect("parses");
    Engine::default()
        .instant(store, &query, t)
        .expect("evaluates")
}

#[test]
fn rate_extrapolates_like_prometheus() {
    // A counter going up 10 per 15 s, scraped from t=0 to t=300 s.
    let samples: Vec<(i64, f64)> = (0..=20).map(|i| (i * 15_000, i as f64 * 10.0)).collect();
    let s = store(&[(&[("__name__", "reqs"), ("job", "a")], &samples)]);
    let Value::Vector(v) = instant(&s, "rate(reqs[5m])", 300_000) else {
        panic!("vector expected");
    };
    // Window (0, 300 s]: 20 samples from 15 s to 300 s, 190 increase over
    // 285 s; the start is 15 s away (≤ 1.1 × the 15 s gap), so extrapolate
    // to it, but not below zero: 10 / (190 / 285) = 15 s. 200 / 300 s.
    assert_eq!(v.len(), 1);
    assert!((v[0].v - 200.0 / 300.0).abs() < 1e-12, "{}", v[0].v);
    assert_eq!(v[0].labels.get("__name__"), None);
    assert_eq!(v[0].labels.get("job"), Some("a"));
}

#[test]
fn staleness_marker_ends_a_series() {
    let s = store(&[(&[("__name__", "up")], &[(0, 1.0), (60_000, stale_nan())])]);
    let Value::Vector(before) = instant(&s, "up", 30_000) else {
        panic!()
    };
    assert_eq!(before.len(), 1);
    let Value::Vector(after) = instant(&s, "up", 90_000) else {
        panic!()
    };
    assert!(after.is_empty());
}

#[test]
fn unsupported_functions_fail_at_parse_naming_them() {
    let e = Query::parse("limitk(2, up)").err().map(|e| e.to_string());
    assert!(e.as_deref().is_some_and(|e| e.contains("limitk")), "{e:?}");
    let e = Query::parse("mad_over_time(up[5m])")
        .err()
        .map(|e| e.to_string());
    assert!(
        e.as_deref()
            .is_some_and(|e| e.contains("function `mad_over_time`") && e.contains("not supported")),
        "{e:?}"
    );
}

#[test]
fn range_query_assembles_series() {
    let s = store(&[(
        &[("__name__", "x")],
        &[(0, 1.0), (60_000, 2.0), (120_000, 3.0)],
    )]);
    let q = Query::parse("x * 2").expect("parses");
    let r = Engine::default()
        .range(&s, &q, 0, 120_000, 60_000)
        .expect("evaluates");
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].samples, vec![(0, 2.0), (60_000, 4.0), (120_000, 6.0)]);
}

/// The sliding-window path of range queries gives what evaluating the
/// instant query at every step gives (the per-window path), on series with
/// counter resets, staleness markers, gaps, irregular scrapes and a
/// non-finite value.
#[test]
fn range_sliding_windows_equal_per_step_evaluation() {
    let mut counter = Vec::new();
    let mut gauge = Vec::new();
    let mut spiky = Vec::new();
    let (mut t, mut c) = (0i64, 0.0f64);
    let mut seed = 7u64;
    let mut rnd = move || {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (seed >> 33) as f64 / (1u64 << 31) as f64
    };
    for i in 0..400 {
        t += 10_000 + (rnd() * 9_000.0) as i64;
        c = if i % 97 == 50 {
            rnd() * 5.0
        } else {
            c + rnd() * 20.0
        };
        if i % 61 == 30 {
            counter.push((t, stale_nan()));
            gauge.push((t, stale_nan()));
        } else if !(150..170).contains(&i) {
            counter.push((t, c));
            gauge.push((t, 100.0 * rnd() - 50.0));
        }
        spiky.push((t, if i == 200 { f64::INFINITY } else { rnd() }));
    }
    let s = store(&[
        (&[("__name__", "reqs"), ("job", "a")], &counter),
        (&[("__name__", "temp"), ("job", "a")], &gauge),
        (&[("__name__", "spiky"), ("job", "a")], &spiky),
    ]);
    let engine = Engine::default();
    let (start, end, step) = (300_000, t + 60_000, 7_000);
    for q in [
        "rate(reqs[1m])",
        "increase(reqs[5m] offset 30s)",
        "delta(temp[2m])",
        "rate(spiky[1m])",
        "sum_over_time(temp[3m])",
        "avg_over_time(temp[10m] offset 1m)",
        "count_over_time(reqs[1m])",
        "avg_over_time(spiky[2m])",
        "sum_over_time(spiky[2m])",
        "sum by (job) (rate(reqs[2m]))",
    ] {
        let query = Query::parse(q).expect("parses");
        let range = engine.range(&s, &query, start, end, step).expect("range");
        let mut by_step: Vec<(i64, String, f64)> = Vec::new();
        for r in &range {
            for &(ts, v) in &r.samples {
                by_step.push((ts, r.labels.to_string(), v));
            }
        }
        by_step.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
        let mut expected: Vec<(i64, String, f64)> = Vec::new();
        let mut ts = start;
        while ts <= end {
            if let Value::Vector(v) = engine.instant(&s, &query, ts).expect("instant") {
                for sample in v {
                    expected.push((ts, sample.labels.to_string(), sample.v));
                }
            }
            ts += step;
        }
        expected.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
        assert_eq!(by_step.len(), expected.len(), "{q}: point count");
        for (got, want) in by_step.iter().zip(&expected) {
            assert_eq!((got.0, &got.1), (want.0, &want.1), "{q}");
            let close = got.2 == want.2
                || (got.2.is_nan() && want.2.is_nan())
                || ((got.2 - want.2).abs() <= 1e-9 * want.2.abs().max(1e-9));
            assert!(
                close,
                "{q} at {}: sliding {} vs per step {}",
                got.0, got.2, want.2
            );
        }
        assert!(!expected.is_empty(), "{q}: the case has points");
    }
}
