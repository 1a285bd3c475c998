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

/// Range results equal bit for bit (NaN equal to NaN), or the same error.
fn assert_same_range(
    q: &str,
    got: Result<Vec<RangeSeries>, EvalError>,
    want: Result<Vec<RangeSeries>, EvalError>,
) {
    match (got, want) {
        (Ok(got), Ok(want)) => {
            assert_eq!(got.len(), want.len(), "{q}: series count");
            for (g, w) in got.iter().zip(&want) {
                assert_eq!(g.labels, w.labels, "{q}: labels");
                assert_eq!(g.samples.len(), w.samples.len(), "{q} {}: points", w.labels);
                for (a, b) in g.samples.iter().zip(&w.samples) {
                    assert_eq!(a.0, b.0, "{q} {}: timestamps", w.labels);
                    assert!(
                        a.1.to_bits() == b.1.to_bits() || (a.1.is_nan() && b.1.is_nan()),
                        "{q} {} at {}: by node {} vs per step {}",
                        w.labels,
                        a.0,
                        a.1,
                        b.1
                    );
                }
            }
        }
        (Err(got), Err(want)) => assert_eq!(got, want, "{q}: error"),
        (got, want) => panic!("{q}: by node {got:?} vs per step {want:?}"),
    }
}

/// A series' label pairs and samples.
type OwnedSeries = (Vec<(String, String)>, Vec<(i64, f64)>);

/// Test data for the node-at-a-time path: histograms with a duplicate and a
/// late bucket, counters with resets, gaps and staleness markers, gauges
/// with NaN, series that collide once their name is dropped, and groups
/// whose first member is missing at some steps.
fn matrix_store() -> Store {
    let mut seed = 11u64;
    let mut rnd = move || {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (seed >> 33) as f64 / (1u64 << 31) as f64
    };
    let mut series: Vec<OwnedSeries> = Vec::new();
    let labels = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    };
    let points = 480; // 2 h at 15 s
    for m in ["m0", "m1", "m2"] {
        let mut total = 0.0;
        let mut totals = Vec::new();
        for i in 0..points {
            total = if m == "m1" && i == 200 {
                3.0 // counter reset
            } else {
                total + (rnd() * 100.0).round()
            };
            totals.push(total);
        }
        let mut les = vec!["0.1", "0.5", "1", "+Inf"];
        if m == "m2" {
            les.push("1.0"); // same bound as "1"
        }
        for (b, le) in les.iter().enumerate() {
            let share = [0.3, 0.6, 0.9, 1.0, 0.1][b];
            let mut samples = Vec::new();
            for (i, tot) in totals.iter().enumerate() {
                let t = i as i64 * 15_000 + (rnd() * 2_000.0) as i64;
                if m == "m0" && *le == "0.5" && (100..140).contains(&i) {
                    continue; // a bucket missing for 10 minutes
                }
                if m == "m2" && *le == "0.1" && i < 120 {
                    continue; // a bucket that starts late
                }
                if m == "m1" && i == 300 {
                    samples.push((t, stale_nan()));
                    continue;
                }
                samples.push((t, (tot * share).floor()));
            }
            series.push((
                labels(&[
                    ("__name__", "lat_bucket"),
                    ("job", "srv"),
                    ("model", m),
                    ("le", le),
                ]),
                samples,
            ));
        }
        let errs: Vec<(i64, f64)> = totals
            .iter()
            .enumerate()
            .map(|(i, t)| (i as i64 * 15_000, (t * 0.03).floor()))
            .collect();
        let reqs: Vec<(i64, f64)> = totals
            .iter()
            .enumerate()
            .filter(|(i, _)| !(m == "m0" && (250..260).contains(i)))
            .map(|(i, t)| (i as i64 * 15_000, *t))
            .collect();
        series.push((labels(&[("__name__", "errs_total"), ("model", m)]), errs));
        series.push((labels(&[("__name__", "reqs_total"), ("model", m)]), reqs));
        let gauge: Vec<(i64, f64)> = (0..points)
            .filter(|i| !(m == "m2" && (60..100).contains(i)))
            .map(|i| {
                let v = match (m, i) {
                    ("m0", 150) => f64::NAN,
                    ("m1", 170) => stale_nan(),
                    ("m2", 400) => f64::INFINITY,
                    _ => rnd(),
                };
                (i as i64 * 15_000 + 3_000, v)
            })
            .collect();
        series.push((
            labels(&[("__name__", "g"), ("job", "srv"), ("model", m)]),
            gauge,
        ));
        series.push((
            labels(&[("__name__", "info"), ("model", m), ("team", "t1")]),
            vec![(0, 1.0), (3_600_000, 1.0), (7_000_000, 1.0)],
        ));
        for name in ["a_total", "b_total"] {
            let mut c = 0.0;
            let samples = (0..points)
                .map(|i| {
                    c += (rnd() * 40.0).round();
                    (i as i64 * 15_000, c)
                })
                .collect();
            series.push((labels(&[("__name__", name), ("model", m)]), samples));
        }
    }
    // Same labels once the name is dropped: disjoint, then overlapping.
    for (name, range) in [
        ("x1", 0..200),
        ("x2", 240..480),
        ("y1", 0..300),
        ("y2", 200..480),
    ] {
        let samples = range.map(|i| (i as i64 * 15_000, i as f64)).collect();
        series.push((labels(&[("__name__", name), ("k", "a")]), samples));
    }
    // Groups whose first member (by labels) is missing at some steps.
    for (a, grp, range) in [("1", "x", 100..200), ("2", "y", 0..480), ("3", "x", 0..480)] {
        let samples = range
            .map(|i| (i as i64 * 15_000, 0.1 * i as f64 + 1e-3))
            .collect();
        series.push((
            labels(&[("__name__", "u"), ("a", a), ("grp", grp)]),
            samples,
        ));
    }
    let s = Store::new(StoreConfig {
        retention: Duration::from_secs(10 * 365 * 86400),
        ..StoreConfig::default()
    });
    let batch: Vec<SeriesSamples> = series
        .into_iter()
        .map(|(labels, samples)| SeriesSamples {
            labels: Labels::new(labels),
            samples,
        })
        .collect();
    s.append(&batch).expect("append");
    s
}

/// The node-at-a-time range path gives exactly what step-by-step
/// evaluation gives: the benchmark's queries and the tricky cases
/// (staleness, missing steps, counter resets, NaN, empty groups, label
/// collisions, nodes it does not cover, errors).
#[test]
fn range_by_node_equals_per_step() {
    let s = matrix_store();
    let engine = Engine::default();
    let queries = [
        // The benchmark's five.
        r#"histogram_quantile(0.99, sum by (le, model) (rate(lat_bucket{job="srv"}[5m])))"#,
        "(sum(rate(errs_total[1h])) / sum(rate(reqs_total[1h]))) / (1 - 0.999) > 14.4",
        "g > 0.05 and g > 3 * avg_over_time(g[7d])",
        "abs(avg_over_time(g[1d]) - avg_over_time(g[7d] offset 1d)) > 0.06",
        "rate(a_total[5m]) > 0.1 and on() rate(b_total[5m]) > 0.1",
        // Histograms.
        "histogram_quantile(0.5, rate(lat_bucket[2m]))",
        "histogram_quantile(0.9, sum by (le) (increase(lat_bucket[5m])))",
        "histogram_quantile(time() / 1e4, sum by (le, model) (rate(lat_bucket[5m])))",
        "histogram_quantile(0.5, lat_bucket)",
        // Aggregations.
        "sum(g)",
        "avg by (model) (g)",
        "min(g)",
        "max by (job) (g)",
        "count without (model) (g)",
        "stddev(g)",
        "stdvar by (job) (g)",
        "group by (model) (g)",
        "sum by (model) (rate(reqs_total[1m]))",
        "sum(sum by (grp) (u))",
        "avg(sum by (grp) (u))",
        "sum by (grp) (u)",
        // Arithmetic, comparisons, matching.
        "-g",
        "abs(-g)",
        "ln(g)",
        "g * 2",
        "2 - g",
        "g > 0.5",
        "0.5 < g",
        "g > bool 0.5",
        "g == g",
        "g + on(model) group_left(team) info",
        "info * on(model) group_right(team) g",
        "g / ignoring(job) g",
        "rate(errs_total[5m]) / rate(reqs_total[5m])",
        "errs_total / on(model) reqs_total > bool 0.02",
        "1 + 2 * 3",
        "time() - 100",
        "a_total and b_total",
        "a_total and on(model) b_total",
        "a_total or b_total",
        "g or a_total",
        "x1 or x2",
        "a_total unless on(model) reqs_total",
        "reqs_total unless on(model) errs_total > 100000",
        // Nodes evaluated step by step inside a covered query.
        "sum(topk(2, g))",
        "topk(1, g)",
        "label_replace(g, \"x\", \"$1\", \"model\", \"(.*)\") * 2",
        "sum by (model) (timestamp(g))",
        "sum_over_time(g[1m:15s]) + 1",
        "g @ 3600 - g",
        "scalar(sum(g)) * g",
        "vector(1) + on() group_left sum(g)",
        "max_over_time(g[10m])",
        // Label collisions and errors.
        "rate({__name__=~\"x.\"}[1m])",
        "rate({__name__=~\"y.\"}[1m])",
        "-{__name__=~\"x.\"}",
        "-{__name__=~\"y.\"}",
        "{__name__=~\"y.\"} + on(k) {__name__=~\"x.\"}",
        "g + on() g",
        "g + on(job) group_left a_total",
        "sum by (model) (g) + on() group_left sum by (job) (g)",
    ];
    // The benchmark's queries, among others, are evaluated node at a time
    // throughout (no fallback hides in the comparison); the others mix.
    let stepped = |q: &str| {
        let query = Query::parse(q).expect("parses");
        engine.nodes_stepped(&s, &query, (600_000, 7_200_000, 15_000))
    };
    for q in &queries[..44] {
        let expect = match *q {
            "sum(sum by (grp) (u))" | "avg(sum by (grp) (u))" => Some(1), // unordered groups
            "histogram_quantile(time() / 1e4, sum by (le, model) (rate(lat_bucket[5m])))"
            | "time() - 100" => Some(1),
            _ => Some(0),
        };
        assert_eq!(stepped(q), expect, "{q}: nodes evaluated step by step");
    }
    assert!(
        stepped("sum(topk(2, g))").is_some_and(|n| n >= 1),
        "topk is evaluated step by step"
    );
    assert_eq!(
        stepped("rate({__name__=~\"y.\"}[1m])"),
        None,
        "colliding at some steps"
    );
    for (start, end, step) in [
        (600_000, 7_200_000, 15_000),
        (607_000, 7_207_000, 60_000),
        (0, 1_000_000, 7_000),
        (9_000_000, 9_600_000, 30_000),
    ] {
        for q in queries {
            let query = Query::parse(q).expect("parses");
            let got = engine.range(&s, &query, start, end, step);
            let want = engine.range_per_step(&s, &query, start, end, step);
            assert_same_range(q, got, want);
        }
    }
}

/// With delayed name removal (Prometheus's `promql-delayed-name-removal`),
/// the node-at-a-time path still equals step-by-step evaluation, including
/// names marked for removal that label functions and `by (__name__)` see,
/// and series merged once their marked names are removed.
#[test]
fn range_by_node_equals_per_step_with_delayed_name_removal() {
    let s = matrix_store();
    let engine = Engine {
        delayed_name_removal: true,
        ..Engine::default()
    };
    let queries = [
        r#"histogram_quantile(0.99, sum by (le, model) (rate(lat_bucket{job="srv"}[5m])))"#,
        "histogram_quantile(0.5, rate(lat_bucket[2m]))",
        "-g",
        "abs(-g)",
        "g * 2",
        "g > bool 0.5",
        "g > 0.5",
        "rate(errs_total[5m]) / rate(reqs_total[5m])",
        "g + on(model) group_left(team) info",
        "sum by (__name__) (rate(reqs_total[1m]))",
        "sum by (__name__, model) (rate(reqs_total[1m]) or errs_total)",
        "max by (__name__) (-g or g)",
        "rate({__name__=~\"x.\"}[1m])",
        "rate({__name__=~\"y.\"}[1m])",
        "-{__name__=~\"x.\"}",
        "sum(rate({__name__=~\"x.\"}[1m]))",
        "-a_total or -b_total",
        "label_replace(rate(reqs_total[1m]), \"__name__\", \"r_$1\", \"__name__\", \"(.+)\")",
        "label_replace(rate(reqs_total[1m]), \"n\", \"$1\", \"__name__\", \"(.+)\")",
        "label_join(-g, \"n\", \"-\", \"__name__\", \"model\")",
        "topk by (__name__) (1, -g)",
        "count_values by (__name__) (\"v\", round(g))",
    ];
    for (start, end, step) in [(600_000, 7_200_000, 15_000), (0, 1_000_000, 7_000)] {
        for q in queries {
            let query = Query::parse(q).expect("parses");
            let got = engine.range(&s, &query, start, end, step);
            let want = engine.range_per_step(&s, &query, start, end, step);
            if let Ok(series) = &want {
                assert!(
                    series
                        .iter()
                        .all(|r| r.labels.get(super::eval::MARKED_NAME).is_none()),
                    "{q}: marked names are removed"
                );
            }
            assert_same_range(q, got, want);
        }
    }
}

/// Without delayed name removal (Prometheus's default) functions drop the
/// name at once; with it they only mark it, so `label_replace` and
/// `by (__name__)` still see it, and it is removed when the query ends.
#[test]
fn delayed_name_removal_marks_the_name_until_the_query_ends() {
    let samples: Vec<(i64, f64)> = (0..=10).map(|i| (i * 60_000, i as f64)).collect();
    let s = store(&[
        (&[("__name__", "a_total"), ("env", "1")], &samples),
        (&[("__name__", "b_total"), ("env", "1")], &samples),
        (&[("__name__", "a_total"), ("env", "2")], &samples),
    ]);
    let delayed = Engine {
        delayed_name_removal: true,
        ..Engine::default()
    };
    let eval = |engine: &Engine, q: &str| {
        let query = Query::parse(q).expect("parses");
        engine.instant(&s, &query, 600_000)
    };
    let labels_of = |v: Value| -> Vec<String> {
        let Value::Vector(v) = v else {
            panic!("not a vector: {v:?}")
        };
        let mut out: Vec<String> = v.iter().map(|s| s.labels.to_string()).collect();
        out.sort();
        out
    };

    let q = r#"label_replace(rate({env="1"}[5m]), "n", "$1", "__name__", "(.+)")"#;
    assert_eq!(
        labels_of(eval(&delayed, q).expect("evaluates")),
        vec![r#"{env="1", n="a_total"}"#, r#"{env="1", n="b_total"}"#]
    );
    // Immediate removal: both rates are `{env="1"}`, a collision.
    assert!(eval(&Engine::default(), q).is_err());

    let q = r#"label_replace(rate(a_total{env="1"}[5m]), "__name__", "r_$1", "__name__", "(.+)")"#;
    assert_eq!(
        labels_of(eval(&delayed, q).expect("evaluates")),
        vec![r#"r_a_total{env="1"}"#]
    );
    assert_eq!(
        labels_of(eval(&Engine::default(), q).expect("evaluates")),
        vec![r#"{env="1"}"#]
    );

    // Grouped by the marked names, then both removed: a collision.
    assert!(eval(&delayed, r#"sum by (__name__) (rate({env="1"}[5m]))"#).is_err());
    // A group keeps its name only if no member's name was marked.
    assert_eq!(
        labels_of(
            eval(
                &delayed,
                r#"sum by (__name__) (a_total{env="1"} or rate(a_total{env="2"}[5m]))"#
            )
            .expect("evaluates")
        ),
        vec!["{}"]
    );
    assert_eq!(
        labels_of(eval(&delayed, r#"sum by (__name__) (a_total{env="1"})"#).expect("evaluates")),
        vec!["a_total"]
    );
}
