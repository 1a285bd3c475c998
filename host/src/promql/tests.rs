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
