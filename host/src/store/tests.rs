use std::sync::Arc;
use std::time::Duration;

use super::*;

const H: i64 = 3_600_000;

fn labels(pairs: &[(&str, &str)]) -> Labels {
    Labels::new(pairs.iter().copied())
}

fn series(pairs: &[(&str, &str)], samples: &[(i64, f64)]) -> SeriesSamples {
    SeriesSamples {
        labels: labels(pairs),
        samples: samples.to_vec(),
    }
}

fn window(store: &Store, l: &Labels, start: i64, end: i64) -> Vec<(i64, f64)> {
    let Some(h) = store.get(l) else {
        return Vec::new();
    };
    let (mut ts, mut vs) = (Vec::new(), Vec::new());
    store.read_window(&h, start, end, &mut ts, &mut vs);
    ts.into_iter().zip(vs).collect()
}

fn all(store: &Store, l: &Labels) -> Vec<(i64, f64)> {
    window(store, l, i64::MIN, i64::MAX)
}

fn names(handles: &[SeriesHandle]) -> Vec<String> {
    handles.iter().map(|h| h.labels().to_string()).collect()
}

#[test]
fn store_is_shareable() {
    fn shareable<T: Send + Sync>() {}
    shareable::<Store>();
    shareable::<SeriesHandle>();
    shareable::<Labels>();
}

// ---- Labels -------------------------------------------------------------

#[test]
fn fingerprint_matches_prometheus() {
    // prometheus/common model/signature_test.go
    assert_eq!(Labels::empty().fingerprint(), 14_695_981_039_346_656_037);
    assert_eq!(
        labels(&[("name", "garland, briggs"), ("fear", "love is not enough")]).fingerprint(),
        5_799_056_148_416_392_346
    );
    assert_eq!(
        labels(&[("first-label", "first-label-value")]).fingerprint(),
        5_146_282_821_936_882_169
    );
    assert_eq!(
        labels(&[
            ("third-label", "third-label-value"),
            ("first-label", "first-label-value"),
            ("second-label", "second-label-value"),
        ])
        .fingerprint(),
        13_843_036_195_897_128_121
    );
}

#[test]
fn fingerprint_by_hand() {
    // {a="b"}: FNV-1a 64 over the bytes 'a' 0xff 'b' 0xff.
    //   h = 0xcbf29ce484222325 (offset basis)
    //   for byte in [0x61, 0xff, 0x62, 0xff]: h ^= byte; h *= 0x100000001b3 (mod 2^64)
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in [0x61u8, 0xff, 0x62, 0xff] {
        h ^= u64::from(byte);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    assert_eq!(labels(&[("a", "b")]).fingerprint(), h);
    // The separator keeps {a="bc"} and {ab="c"} apart.
    assert_ne!(
        labels(&[("a", "bc")]).fingerprint(),
        labels(&[("ab", "c")]).fingerprint()
    );
}

#[test]
fn labels_are_sorted_deduplicated_and_drop_empty_values() {
    let l = labels(&[
        ("z", "1"),
        ("__name__", "up"),
        ("a", "2"),
        ("empty", ""),
        ("a", "3"),
    ]);
    let pairs: Vec<_> = l.iter().collect();
    assert_eq!(pairs, vec![("__name__", "up"), ("a", "3"), ("z", "1")]);
    assert_eq!(l.get("a"), Some("3"));
    assert_eq!(l.get("z"), Some("1"));
    assert_eq!(l.get("empty"), None);
    assert_eq!(l.get("b"), None);
    assert_eq!(l.metric_name(), Some("up"));
    assert_eq!(l.len(), 3);
    assert_eq!(l, labels(&[("a", "3"), ("z", "1"), ("__name__", "up")]));
    assert!(Labels::empty().is_empty());
}

#[test]
fn labels_print_in_prometheus_notation() {
    let l = labels(&[
        ("__name__", "up"),
        ("job", "api"),
        ("path", "C:\\x \"q\"\nnext"),
    ]);
    assert_eq!(l.to_string(), r#"up{job="api", path="C:\\x \"q\"\nnext"}"#);
    assert_eq!(
        l.to_prom_string(),
        r#"{__name__="up",job="api",path="C:\\x \"q\"\nnext"}"#
    );
    assert_eq!(labels(&[("__name__", "up")]).to_string(), "up");
    assert_eq!(labels(&[("job", "api")]).to_string(), r#"{job="api"}"#);
    assert_eq!(Labels::empty().to_string(), "{}");
    assert_eq!(Labels::empty().to_prom_string(), "{}");
    assert_eq!(
        serde_json::to_string(&l).ok().as_deref(),
        Some(r#"{"__name__":"up","job":"api","path":"C:\\x \"q\"\nnext"}"#)
    );
}

// ---- append / read ----------------------------------------------------

#[test]
fn in_order_appends_and_left_open_windows() {
    let store = Store::default();
    let l = labels(&[("__name__", "m")]);
    let stats = store.append(&[series(
        &[("__name__", "m")],
        &[(1000, 1.0), (2000, 2.0), (3000, 3.0)],
    )]);
    assert_eq!(
        stats,
        Ok(AppendStats {
            series_created: 1,
            samples_appended: 3,
            ..AppendStats::default()
        })
    );
    store
        .append(&[series(&[("__name__", "m")], &[(4000, 4.0)])])
        .ok();
    assert_eq!(
        all(&store, &l),
        vec![(1000, 1.0), (2000, 2.0), (3000, 3.0), (4000, 4.0)]
    );
    // start excluded, end included
    assert_eq!(
        window(&store, &l, 1000, 3000),
        vec![(2000, 2.0), (3000, 3.0)]
    );
    assert_eq!(window(&store, &l, 999, 1000), vec![(1000, 1.0)]);
    assert_eq!(window(&store, &l, 4000, 9000), vec![]);
    assert_eq!(window(&store, &l, 3000, 1000), vec![]);
    assert_eq!(store.series_count(), 1);
    assert_eq!(store.sample_count(), 4);
}

#[test]
fn read_window_appends_to_caller_buffers() {
    let store = Store::default();
    store
        .append(&[
            series(&[("__name__", "a")], &[(1, 1.0), (2, 2.0)]),
            series(&[("__name__", "b")], &[(1, 10.0)]),
        ])
        .ok();
    let (mut ts, mut vs) = (vec![-1], vec![-1.0]);
    for h in store.select(&[Matcher::new(MatchOp::RegexMatch, "__name__", "a|b").unwrap()]) {
        store.read_window(&h, 0, 10, &mut ts, &mut vs);
    }
    assert_eq!(ts, vec![-1, 1, 2, 1]);
    assert_eq!(vs, vec![-1.0, 1.0, 2.0, 10.0]);
}

#[test]
fn read_window_across_ring_wraparound() {
    // Retention 10 ms with steadily advancing samples makes the ring wrap.
    let store = Store::new(StoreConfig {
        retention: Duration::from_millis(10),
        ..StoreConfig::default()
    });
    let l = labels(&[("__name__", "w")]);
    for t in 1..=200i64 {
        store
            .append(&[SeriesSamples {
                labels: l.clone(),
                samples: vec![(t, t as f64)],
            }])
            .ok();
        let got = all(&store, &l);
        let expected: Vec<_> = ((t - 9).max(1)..=t).map(|t| (t, t as f64)).collect();
        assert_eq!(got, expected, "after t={t}");
        let mid = window(&store, &l, t - 5, t - 2);
        let expected: Vec<_> = ((t - 4).max(1)..=(t - 2)).map(|t| (t, t as f64)).collect();
        assert_eq!(mid, expected, "window after t={t}");
    }
}

#[test]
fn duplicates_replace_last_write_wins() {
    let store = Store::default();
    let l = labels(&[("__name__", "d")]);
    store
        .append(&[series(
            &[("__name__", "d")],
            &[(1000, 1.0), (2000, 2.0), (3000, 3.0)],
        )])
        .ok();
    // Duplicate of the newest, of an older one, and twice in one batch.
    let stats = store.append(&[series(
        &[("__name__", "d")],
        &[(3000, 30.0), (1000, 10.0), (2000, 20.0), (2000, 21.0)],
    )]);
    assert_eq!(
        stats.map(|s| (s.samples_replaced, s.samples_appended)),
        Ok((4, 0))
    );
    assert_eq!(
        all(&store, &l),
        vec![(1000, 10.0), (2000, 21.0), (3000, 30.0)]
    );
    assert_eq!(store.sample_count(), 3);
    // Same entry twice in one batch: applied in batch order.
    store
        .append(&[
            series(&[("__name__", "d")], &[(4000, 1.0)]),
            series(&[("__name__", "d")], &[(4000, 2.0)]),
        ])
        .ok();
    assert_eq!(all(&store, &l).last(), Some(&(4000, 2.0)));
}

#[test]
fn out_of_order_inserted_in_place() {
    let store = Store::default();
    let l = labels(&[("__name__", "o")]);
    store
        .append(&[series(&[("__name__", "o")], &[(1000, 1.0), (4000, 4.0)])])
        .ok();
    let stats = store.append(&[series(
        &[("__name__", "o")],
        &[(3000, 3.0), (2000, 2.0), (5000, 5.0), (500, 0.5)],
    )]);
    assert_eq!(
        stats.map(|s| (s.samples_appended, s.samples_out_of_order)),
        Ok((4, 3))
    );
    assert_eq!(
        all(&store, &l),
        vec![
            (500, 0.5),
            (1000, 1.0),
            (2000, 2.0),
            (3000, 3.0),
            (4000, 4.0),
            (5000, 5.0)
        ]
    );
    // An unsorted batch for a new series.
    let m = labels(&[("__name__", "new")]);
    store
        .append(&[series(
            &[("__name__", "new")],
            &[(3, 3.0), (1, 1.0), (2, 2.0)],
        )])
        .ok();
    assert_eq!(all(&store, &m), vec![(1, 1.0), (2, 2.0), (3, 3.0)]);
    assert_eq!(store.sample_count(), 9);
}

#[test]
fn nan_and_infinities_are_stored() {
    let store = Store::default();
    let l = labels(&[("__name__", "n")]);
    store
        .append(&[series(
            &[("__name__", "n")],
            &[(1, f64::NAN), (2, f64::INFINITY), (3, f64::NEG_INFINITY)],
        )])
        .ok();
    let got = all(&store, &l);
    assert!(got[0].1.is_nan());
    assert_eq!(got[1..], [(2, f64::INFINITY), (3, f64::NEG_INFINITY)]);
}

#[test]
fn retention_on_append_and_gc() {
    let store = Store::new(StoreConfig {
        retention: Duration::from_secs(3600),
        ..StoreConfig::default()
    });
    let a = labels(&[("__name__", "a")]);
    let b = labels(&[("__name__", "b"), ("job", "x")]);
    store
        .append(&[
            series(&[("__name__", "a")], &[(0, 0.0), (H / 2, 1.0), (H, 2.0)]),
            series(&[("__name__", "b"), ("job", "x")], &[(H / 2, 1.0)]),
        ])
        .ok();
    // Relative to its newest sample (H), "a" keeps samples newer than 0.
    assert_eq!(all(&store, &a), vec![(H / 2, 1.0), (H, 2.0)]);
    // An append far ahead trims the old ones; a sample behind retention is dropped.
    let stats = store.append(&[series(&[("__name__", "a")], &[(3 * H, 3.0), (H, 9.0)])]);
    assert_eq!(stats.map(|s| s.samples_too_old), Ok(1));
    assert_eq!(all(&store, &a), vec![(3 * H, 3.0)]);
    assert_eq!(store.sample_count(), 2);

    // gc relative to now: "b" empties and leaves the index; "a" survives.
    let gc = store.gc(3 * H + 1);
    assert_eq!(
        gc,
        GcStats {
            samples_removed: 1,
            series_removed: 1
        }
    );
    assert!(store.get(&b).is_none());
    assert_eq!(store.series_count(), 1);
    assert_eq!(store.sample_count(), 1);
    assert_eq!(store.label_names(), vec!["__name__"]);
    assert_eq!(store.label_values("__name__"), vec!["a"]);
    assert!(store.select(&[Matcher::equal("job", "x")]).is_empty());
    // A new series whose samples are all too old is not created.
    let stats = store.append(&[series(
        &[("__name__", "c")],
        &[(0, 1.0), (10 * H, 2.0), (H, 3.0)],
    )]);
    assert_eq!(
        stats.map(|s| (s.series_created, s.samples_too_old)),
        Ok((1, 1))
    );
    // And it comes back after gc removed it.
    store.gc(100 * H);
    assert_eq!(store.series_count(), 0);
    assert_eq!(store.sample_count(), 0);
    assert!(store.label_names().is_empty());
    store
        .append(&[series(
            &[("__name__", "b"), ("job", "x")],
            &[(100 * H, 1.0)],
        )])
        .ok();
    assert_eq!(
        names(&store.select(&[Matcher::equal("job", "x")])),
        vec![r#"b{job="x"}"#]
    );
}

#[test]
fn series_limit_rejects_whole_batch() {
    let store = Store::new(StoreConfig {
        max_series: 2,
        ..StoreConfig::default()
    });
    store
        .append(&[series(&[("__name__", "a")], &[(1, 1.0)])])
        .ok();
    let batch = [
        series(&[("__name__", "a")], &[(2, 2.0)]),
        series(&[("__name__", "b")], &[(1, 1.0)]),
        series(&[("__name__", "c")], &[(1, 1.0)]),
    ];
    let err = store.append(&batch);
    assert_eq!(
        err,
        Err(StoreError::SeriesLimit {
            limit: 2,
            current: 1,
            new: 2
        })
    );
    let message = err.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(message.contains("max_series = 2"), "{message}");
    // Nothing applied: not even the sample for the existing series.
    assert_eq!(all(&store, &labels(&[("__name__", "a")])), vec![(1, 1.0)]);
    assert_eq!(store.series_count(), 1);
    assert_eq!(store.sample_count(), 1);
    assert!(store.get(&labels(&[("__name__", "b")])).is_none());
    // The same new series twice counts once.
    let batch = [
        series(&[("__name__", "b")], &[(1, 1.0)]),
        series(&[("__name__", "b")], &[(2, 2.0)]),
    ];
    assert_eq!(store.append(&batch).map(|s| s.series_created), Ok(1));
    assert_eq!(store.series_count(), 2);
    assert!(
        store
            .append(&[series(&[("__name__", "z")], &[(1, 1.0)])])
            .is_err()
    );
}

#[test]
fn fingerprint_collisions_keep_series_apart() {
    // Force two label sets into one map slot to exercise collision handling.
    let a = Arc::new(Series::new(1, labels(&[("x", "1")]), Default::default()));
    let b = Arc::new(Series::new(2, labels(&[("x", "2")]), Default::default()));
    let mut shard = Shard::default();
    shard.insert(42, Arc::clone(&a));
    shard.insert(42, Arc::clone(&b));
    assert!(shard.find(42, &a.labels).is_some_and(|s| s.id == 1));
    assert!(shard.find(42, &b.labels).is_some_and(|s| s.id == 2));
    assert!(shard.find(42, &labels(&[("x", "3")])).is_none());
    shard.remove(42, &a);
    assert!(shard.find(42, &a.labels).is_none());
    assert!(shard.find(42, &b.labels).is_some_and(|s| s.id == 2));
    assert!(shard.collisions.is_empty());
    shard.remove(42, &b);
    assert!(shard.by_fp.is_empty());
}

// ---- matchers -----------------------------------------------------------

fn matcher_store() -> Store {
    let store = Store::default();
    store
        .append(&[
            series(
                &[("__name__", "latency"), ("model", "fraud"), ("env", "prod")],
                &[(1, 1.0)],
            ),
            series(
                &[
                    ("__name__", "latency"),
                    ("model", "fraud-v2"),
                    ("env", "dev"),
                ],
                &[(1, 1.0)],
            ),
            series(&[("__name__", "latency"), ("model", "churn")], &[(1, 1.0)]),
            series(
                &[
                    ("__name__", "accuracy"),
                    ("model", "fraud"),
                    ("env", "prod"),
                ],
                &[(1, 1.0)],
            ),
        ])
        .ok();
    store
}

fn select(store: &Store, selector: &str) -> Vec<String> {
    match parse_selector(selector) {
        Ok(m) => names(&store.select(&m)),
        Err(e) => vec![format!("error: {e}")],
    }
}

#[test]
fn matchers_of_each_type() {
    let s = matcher_store();
    assert_eq!(
        select(&s, r#"latency{model="fraud"}"#),
        vec![r#"latency{env="prod", model="fraud"}"#]
    );
    assert_eq!(
        select(&s, r#"latency{model!="fraud"}"#),
        vec![
            r#"latency{env="dev", model="fraud-v2"}"#,
            r#"latency{model="churn"}"#
        ]
    );
    assert_eq!(
        select(&s, r#"{model=~"fraud.*"}"#),
        vec![
            r#"accuracy{env="prod", model="fraud"}"#,
            r#"latency{env="dev", model="fraud-v2"}"#,
            r#"latency{env="prod", model="fraud"}"#
        ]
    );
    assert_eq!(
        select(&s, r#"latency{model!~"fraud.*"}"#),
        vec![r#"latency{model="churn"}"#]
    );
    assert_eq!(select(&s, "latency").len(), 3);
    assert_eq!(select(&s, r#"{__name__=~"lat.*|acc.*"}"#).len(), 4);
    assert_eq!(select(&s, "nothing"), Vec::<String>::new());
    assert_eq!(select(&s, r#"latency{nolabel="x"}"#), Vec::<String>::new());
    assert_eq!(s.select(&[]).len(), 4);
}

#[test]
fn regexes_are_fully_anchored() {
    let s = matcher_store();
    // "fraud" must not match "fraud-v2" (no implicit .*), nor "ra" match "fraud".
    assert_eq!(
        select(&s, r#"latency{model=~"fraud"}"#),
        vec![r#"latency{env="prod", model="fraud"}"#]
    );
    assert!(select(&s, r#"latency{model=~"ra"}"#).is_empty());
    // Anchoring wraps alternations: ^(?:a|b)$, not ^a|b$.
    assert_eq!(
        select(&s, r#"latency{model=~"churn|frau"}"#),
        vec![r#"latency{model="churn"}"#]
    );
    assert_eq!(
        select(&s, r#"latency{model!~"fraud|churn"}"#),
        vec![r#"latency{env="dev", model="fraud-v2"}"#]
    );
    let m = Matcher::new(MatchOp::RegexMatch, "a", "b|c").unwrap();
    assert!(m.matches("b") && m.matches("c") && !m.matches("bc") && !m.matches("xb"));
}

#[test]
fn empty_matching_matchers_select_series_without_the_label() {
    let s = matcher_store();
    // env="" selects series with no env label.
    assert_eq!(
        select(&s, r#"latency{env=""}"#),
        vec![r#"latency{model="churn"}"#]
    );
    // env!="prod" includes series with no env.
    assert_eq!(
        select(&s, r#"latency{env!="prod"}"#),
        vec![
            r#"latency{env="dev", model="fraud-v2"}"#,
            r#"latency{model="churn"}"#
        ]
    );
    // env=~"dev|" matches dev and missing.
    assert_eq!(
        select(&s, r#"latency{env=~"dev|"}"#),
        vec![
            r#"latency{env="dev", model="fraud-v2"}"#,
            r#"latency{model="churn"}"#
        ]
    );
    // env!~".+" is "env is missing"; env=~".+" is "env is present".
    assert_eq!(
        select(&s, r#"latency{env!~".+"}"#),
        vec![r#"latency{model="churn"}"#]
    );
    assert_eq!(select(&s, r#"latency{env=~".+"}"#).len(), 2);
    // env=~".*" matches every series.
    assert_eq!(select(&s, r#"latency{env=~".*"}"#).len(), 3);
    // Without any positive matcher the store still answers.
    assert_eq!(
        names(&s.select(&[Matcher::not_equal("env", "prod")])).len(),
        2
    );
    assert!(Matcher::equal("env", "").matches_empty());
    assert!(!Matcher::equal("env", "x").matches_empty());
}

#[test]
fn label_names_and_values() {
    let s = matcher_store();
    assert_eq!(s.label_names(), vec!["__name__", "env", "model"]);
    assert_eq!(s.label_values("model"), vec!["churn", "fraud", "fraud-v2"]);
    assert_eq!(s.label_values("__name__"), vec!["accuracy", "latency"]);
    assert!(s.label_values("nope").is_empty());
}

#[test]
fn parse_selector_accepts_only_series_selectors() {
    let m =
        parse_selector(r#"ml_latency{model="a", env!="b", x=~"c.*", y!~"d"}"#).unwrap_or_default();
    let shown: Vec<String> = m.iter().map(|m| m.to_string()).collect();
    assert_eq!(
        shown,
        vec![
            r#"__name__="ml_latency""#,
            r#"model="a""#,
            r#"env!="b""#,
            r#"x=~"c.*""#,
            r#"y!~"d""#
        ]
    );
    assert_eq!(parse_selector("(up)").map(|m| m.len()).ok(), Some(1));
    for bad in [
        "rate(up[5m])",
        "up[5m]",
        "sum(up)",
        "up + 1",
        "1",
        "up offset 5m",
        r#"{a="1" or b="2"}"#,
        "{",
        "",
    ] {
        let err = parse_selector(bad)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(!err.is_empty(), "{bad:?} should be refused");
    }
    let err = parse_selector("rate(up[5m])")
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        err.contains(r#"expected a series selector like metric{label="value"}"#),
        "{err}"
    );
    assert!(Matcher::new(MatchOp::RegexMatch, "a", "(").is_err());
    // A regex written with Go's literal braces, as promql-parser accepts it.
    assert!(parse_selector(r#"{a=~"x{y}"}"#).is_ok());
}

#[test]
fn store_config_from_yaml_like_json() {
    let c: StoreConfig =
        serde_json::from_str(r#"{"retention": "2h", "max_series": 10}"#).unwrap_or_default();
    assert_eq!(
        c,
        StoreConfig {
            retention: Duration::from_secs(7200),
            max_series: 10
        }
    );
    let c: StoreConfig = serde_json::from_str("{}").unwrap_or_else(|_| StoreConfig {
        max_series: 0,
        ..StoreConfig::default()
    });
    assert_eq!(c, StoreConfig::default());
    assert!(serde_json::from_str::<StoreConfig>(r#"{"retention": "2h", "typo": 1}"#).is_err());
    assert!(serde_json::from_str::<StoreConfig>(r#"{"retention": "2 hours"}"#).is_err());
}

#[test]
fn concurrent_appends_and_gc() {
    let store = Arc::new(Store::new(StoreConfig {
        retention: Duration::from_millis(1000),
        max_series: 10_000,
    }));
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let store = Arc::clone(&store);
            std::thread::spawn(move || {
                for round in 0..200i64 {
                    let batch: Vec<SeriesSamples> = (0..50)
                        .map(|i| SeriesSamples {
                            labels: Labels::new([
                                ("__name__", "c".to_string()),
                                ("i", (i % 25).to_string()),
                            ]),
                            samples: vec![(round * 10 + t, 1.0)],
                        })
                        .collect();
                    assert!(store.append(&batch).is_ok());
                    if round % 50 == 0 {
                        store.gc(round * 10);
                    }
                }
            })
        })
        .collect();
    for t in threads {
        assert!(t.join().is_ok());
    }
    assert_eq!(store.series_count(), 25);
    assert_eq!(store.select(&[]).len(), 25);
    let stored: usize = store.select(&[]).iter().map(|h| store.series_len(h)).sum();
    assert_eq!(store.sample_count(), stored);
}
