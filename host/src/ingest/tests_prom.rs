//! Tables of good and bad inputs for the Prometheus text, OpenMetrics and
//! remote write readers, with the exact samples or error expected.

use prost::Message;

use super::remote_write_proto as pb;
use super::*;
use crate::store::{Labels, Store};

const NOW: i64 = 1_763_780_000_000;

fn labels(pairs: &[(&str, &str)]) -> Labels {
    Labels::new(pairs.iter().copied())
}

fn series(pairs: &[(&str, &str)], samples: &[(i64, f64)]) -> SeriesSamples {
    SeriesSamples {
        labels: labels(pairs),
        samples: samples.to_vec(),
    }
}

fn text(body: &str) -> Result<Vec<SeriesSamples>, IngestError> {
    parse_prom_text(
        body.as_bytes(),
        TextFormat::Prometheus,
        &IngestLimits::default(),
        NOW,
        &[],
    )
}

fn om(body: &str) -> Result<Vec<SeriesSamples>, IngestError> {
    parse_prom_text(
        body.as_bytes(),
        TextFormat::OpenMetrics,
        &IngestLimits::default(),
        NOW,
        &[],
    )
}

fn err(line: usize, message: &str) -> IngestError {
    IngestError {
        field: format!("line {line}"),
        message: message.into(),
    }
}

#[test]
fn content_type_picks_the_format() {
    use TextFormat::*;
    let cases = [
        (None, Prometheus),
        (Some("text/plain; version=0.0.4; charset=utf-8"), Prometheus),
        (Some("application/x-www-form-urlencoded"), Prometheus),
        (
            Some("application/openmetrics-text; version=1.0.0; charset=utf-8"),
            OpenMetrics,
        ),
        (Some("Application/OpenMetrics-Text"), OpenMetrics),
    ];
    for (ct, want) in cases {
        assert_eq!(TextFormat::from_content_type(ct), want, "{ct:?}");
    }
}

#[test]
fn good_text_bodies() {
    let t = NOW - 5_000;
    let cases: Vec<(&str, String, Vec<SeriesSamples>)> = vec![
        (
            "counter with HELP and TYPE, timestamp",
            format!(
                "# HELP http_requests_total The total.\n# TYPE http_requests_total counter\n\
                 http_requests_total{{method=\"post\",code=\"200\"}} 1027 {t}\n"
            ),
            vec![series(
                &[
                    ("__name__", "http_requests_total"),
                    ("method", "post"),
                    ("code", "200"),
                ],
                &[(t, 1027.0)],
            )],
        ),
        (
            "gauge without labels or timestamp, no final newline",
            "# TYPE temp gauge\ntemp -3.5e1".into(),
            vec![series(&[("__name__", "temp")], &[(NOW, -35.0)])],
        ),
        (
            "untyped, empty braces, spaces and tabs, trailing comma, blank lines, comments",
            "# just a comment\n\n  metric_without_type {} 1\n\
             other\t{ a = \"x\" , b=\"y\", }\t2\r\n#HELP is a comment\n"
                .into(),
            vec![
                series(&[("__name__", "metric_without_type")], &[(NOW, 1.0)]),
                series(
                    &[("__name__", "other"), ("a", "x"), ("b", "y")],
                    &[(NOW, 2.0)],
                ),
            ],
        ),
        (
            "label escapes and special characters",
            r#"m{path="C:\\dir\\",q="say \"hi\"",nl="a\nb",u="ünï {},= #"} 1"#.into(),
            vec![series(
                &[
                    ("__name__", "m"),
                    ("path", "C:\\dir\\"),
                    ("q", "say \"hi\""),
                    ("nl", "a\nb"),
                    ("u", "ünï {},= #"),
                ],
                &[(NOW, 1.0)],
            )],
        ),
        (
            "histogram",
            "# TYPE rpc_seconds histogram\n\
             rpc_seconds_bucket{le=\"0.05\"} 24054\nrpc_seconds_bucket{le=\"+Inf\"} 144320\n\
             rpc_seconds_sum 53423\nrpc_seconds_count 144320\n"
                .into(),
            vec![
                series(
                    &[("__name__", "rpc_seconds_bucket"), ("le", "0.05")],
                    &[(NOW, 24054.0)],
                ),
                series(
                    &[("__name__", "rpc_seconds_bucket"), ("le", "+Inf")],
                    &[(NOW, 144320.0)],
                ),
                series(&[("__name__", "rpc_seconds_sum")], &[(NOW, 53423.0)]),
                series(&[("__name__", "rpc_seconds_count")], &[(NOW, 144320.0)]),
            ],
        ),
        (
            "summary, and _created of a counter dropped",
            "# TYPE rpc_duration summary\nrpc_duration{quantile=\"0.5\"} 4773\n\
             rpc_duration_sum 1.7560473e+07\nrpc_duration_count 2693\n\
             # TYPE c counter\nc_total 3\nc_created 1.7e9\n"
                .into(),
            vec![
                series(
                    &[("__name__", "rpc_duration"), ("quantile", "0.5")],
                    &[(NOW, 4773.0)],
                ),
                series(&[("__name__", "rpc_duration_sum")], &[(NOW, 17_560_473.0)]),
                series(&[("__name__", "rpc_duration_count")], &[(NOW, 2693.0)]),
                series(&[("__name__", "c_total")], &[(NOW, 3.0)]),
            ],
        ),
        (
            "the same series twice is merged",
            format!("m 1 {t}\nm 2 {NOW}\n"),
            vec![series(&[("__name__", "m")], &[(t, 1.0), (NOW, 2.0)])],
        ),
        (
            "an empty label value means no label",
            "m{a=\"\",b=\"1\"} 1\n".into(),
            vec![series(&[("__name__", "m"), ("b", "1")], &[(NOW, 1.0)])],
        ),
        ("an empty body stores nothing", "".into(), vec![]),
    ];
    for (name, body, want) in cases {
        assert_eq!(text(&body), Ok(want), "{name}");
    }
}

#[test]
fn special_values() {
    let got = text("a NaN\nb +Inf\nc -Inf\nd Inf\ne 1e308\nf -0\n").unwrap_or_default();
    let values: Vec<f64> = got.iter().map(|s| s.samples[0].1).collect();
    assert_eq!(values.len(), 6);
    assert!(values[0].is_nan());
    assert_eq!(
        values[1..],
        [f64::INFINITY, f64::NEG_INFINITY, f64::INFINITY, 1e308, -0.0]
    );
}

#[test]
fn bad_text_bodies() {
    let old = NOW - 7 * 3600 * 1000;
    let cases: Vec<(&str, String, IngestError)> = vec![
        (
            "bad value",
            "ok 1\nm abc\n".into(),
            err(
                2,
                r#"invalid value "abc": expected a float, NaN, +Inf or -Inf"#,
            ),
        ),
        (
            "missing value",
            "m{a=\"1\"}\n".into(),
            err(1, "metric m has no value"),
        ),
        (
            "metric name starting with a digit",
            "1m 1\n".into(),
            err(
                1,
                r#"invalid metric name "1m": must match [a-zA-Z_:][a-zA-Z0-9_:]*"#,
            ),
        ),
        (
            "not a name at all",
            "{a=\"1\"} 1\n".into(),
            err(1, r#"expected a metric name, found "{a=\"1\"} 1""#),
        ),
        (
            "reserved label",
            "m{__x=\"1\"} 1\n".into(),
            err(1, "label __x: label names starting with `__` are reserved"),
        ),
        (
            "label name starting with a digit",
            "m{1a=\"1\"} 1\n".into(),
            err(
                1,
                "label 1a: invalid label name: must match [a-zA-Z_][a-zA-Z0-9_]*",
            ),
        ),
        (
            "bad character in a label name",
            "m{a-b=\"1\"} 1\n".into(),
            err(1, "expected `=` after label name a"),
        ),
        (
            "unquoted label value",
            "m{a=1} 1\n".into(),
            err(1, "expected a quoted value for label a"),
        ),
        (
            "unterminated label value",
            "m{a=\"1} 1\n".into(),
            err(1, "label a: unterminated label value"),
        ),
        (
            "bad escape",
            r#"m{a="\t"} 1"#.into(),
            err(1, r"label a: invalid escape sequence `\t` in label value"),
        ),
        (
            "missing comma",
            "m{a=\"1\" b=\"2\"} 1\n".into(),
            err(
                1,
                r#"expected `,` or `}` after the value of label a, found "b=\"2\"} 1""#,
            ),
        ),
        (
            "duplicate label",
            "m{a=\"1\",a=\"2\"} 1\n".into(),
            err(1, "duplicate label name a"),
        ),
        (
            "float timestamp in 0.0.4",
            format!("m 1 {NOW}.5\n"),
            err(
                1,
                &format!(
                    "invalid timestamp \"{NOW}.5\": expected integer milliseconds since the Unix epoch"
                ),
            ),
        ),
        (
            "too old",
            format!("m 1 {old}\n"),
            err(
                1,
                &format!(
                    "timestamp {old} is outside the accepted range [{}, {}] (server time {NOW} minus \
                     limits.max_sample_age, plus limits.max_sample_future)",
                    NOW - 6 * 3600 * 1000,
                    NOW + 600 * 1000
                ),
            ),
        ),
        (
            "something after the timestamp",
            format!("m 1 {NOW} extra\n"),
            err(1, r#"unexpected "extra" after the timestamp"#),
        ),
        (
            "exemplar in 0.0.4",
            "m 1 # {a=\"1\"} 1\n".into(),
            err(1, r##"unexpected "#" after the timestamp"##),
        ),
        (
            "unknown type",
            "# TYPE m gaugez\n".into(),
            err(
                1,
                r#"unknown metric type "gaugez": expected counter, gauge, histogram, summary or untyped"#,
            ),
        ),
        (
            "OpenMetrics type in 0.0.4",
            "# TYPE m stateset\n".into(),
            err(
                1,
                r#"unknown metric type "stateset": expected counter, gauge, histogram, summary or untyped"#,
            ),
        ),
        (
            "second TYPE",
            "# TYPE m gauge\nm 1\n# TYPE m counter\n".into(),
            err(3, "second `# TYPE` line for metric m"),
        ),
        (
            "TYPE without type",
            "# TYPE m\n".into(),
            err(1, "`# TYPE m` without a type"),
        ),
        (
            "HELP with a bad name",
            "# HELP 0m help\n".into(),
            err(
                1,
                r#"invalid metric name "0m": must match [a-zA-Z_:][a-zA-Z0-9_:]*"#,
            ),
        ),
        (
            "bucket without le",
            "# TYPE h histogram\nh_bucket{x=\"1\"} 1\n".into(),
            err(2, "a histogram bucket needs a `le` label"),
        ),
        (
            "bucket with a bad le",
            "# TYPE h histogram\nh_bucket{le=\"big\"} 1\n".into(),
            err(
                2,
                r#"a histogram bucket needs a numeric `le` label, found "big""#,
            ),
        ),
        (
            "summary without quantile",
            "# TYPE s summary\ns 1\n".into(),
            err(2, "a summary quantile needs a `quantile` label"),
        ),
    ];
    for (name, body, want) in cases {
        assert_eq!(text(&body), Err(want), "{name}");
    }
    let mut bad_utf8 = b"m 1\nm{a=\"".to_vec();
    bad_utf8.extend_from_slice(&[0xff, 0xfe]);
    bad_utf8.extend_from_slice(b"\"} 1\n");
    let got = parse_prom_text(
        &bad_utf8,
        TextFormat::Prometheus,
        &IngestLimits::default(),
        NOW,
        &[],
    );
    assert_eq!(got, Err(err(2, "invalid UTF-8")));
}

#[test]
fn good_openmetrics_bodies() {
    let secs = NOW / 1000 - 5;
    let cases: Vec<(&str, String, Vec<SeriesSamples>)> = vec![
        (
            "counter with float-seconds timestamp, _created dropped, exemplar ignored",
            format!(
                "# TYPE foo counter\n# UNIT foo seconds\n# HELP foo Help.\n\
                 foo_total{{a=\"b\"}} 17.0 {secs}.25 # {{trace_id=\"KOO5S4vxi0o\"}} 0.67\n\
                 foo_created{{a=\"b\"}} 1520430000.123\n# EOF\n"
            ),
            vec![series(
                &[("__name__", "foo_total"), ("a", "b")],
                &[(secs * 1000 + 250, 17.0)],
            )],
        ),
        (
            "gauge histogram, info, stateset, unknown; # EOF without newline",
            "# TYPE g gaugehistogram\ng_bucket{le=\"+Inf\"} 3\ng_gcount 3\ng_gsum 2\n\
             # TYPE i info\ni_info{version=\"1.2\"} 1\n# TYPE s stateset\ns{s=\"a\"} 1\n\
             # TYPE u unknown\nu NaN\n# EOF"
                .into(),
            vec![
                series(&[("__name__", "g_bucket"), ("le", "+Inf")], &[(NOW, 3.0)]),
                series(&[("__name__", "g_gcount")], &[(NOW, 3.0)]),
                series(&[("__name__", "g_gsum")], &[(NOW, 2.0)]),
                series(&[("__name__", "i_info"), ("version", "1.2")], &[(NOW, 1.0)]),
                series(&[("__name__", "s"), ("s", "a")], &[(NOW, 1.0)]),
            ],
        ),
    ];
    for (name, body, want) in cases {
        let mut got = om(&body);
        if name.starts_with("gauge histogram") {
            // `u NaN` compares unequal to itself: check and remove it.
            let last = got.as_mut().ok().and_then(|s| s.pop());
            assert!(
                last.as_ref().is_some_and(
                    |s| s.labels == labels(&[("__name__", "u")]) && s.samples[0].1.is_nan()
                ),
                "{name}: {last:?}"
            );
        }
        assert_eq!(got, Ok(want), "{name}");
    }
}

#[test]
fn bad_openmetrics_bodies() {
    let cases: Vec<(&str, &str, IngestError)> = vec![
        (
            "missing EOF",
            "# TYPE m gauge\nm 1\n",
            err(3, "missing `# EOF`: an OpenMetrics body must end with it"),
        ),
        (
            "empty body",
            "",
            err(1, "missing `# EOF`: an OpenMetrics body must end with it"),
        ),
        (
            "content after EOF",
            "m 1\n# EOF\nm 2\n",
            err(3, "content after `# EOF`"),
        ),
        (
            "blank line after EOF",
            "m 1\n# EOF\n\n",
            err(3, "content after `# EOF`"),
        ),
        (
            "integer-millisecond timestamp is read as seconds and too far ahead",
            "m 1 1763780000000\n# EOF\n",
            err(
                1,
                &format!(
                    "timestamp 1763780000000000 is outside the accepted range [{}, {}] (server time {NOW} \
                     minus limits.max_sample_age, plus limits.max_sample_future)",
                    NOW - 6 * 3600 * 1000,
                    NOW + 600 * 1000
                ),
            ),
        ),
        (
            "untyped is not an OpenMetrics type",
            "# TYPE m untyped\n# EOF\n",
            err(
                1,
                r#"unknown metric type "untyped": expected counter, gauge, histogram, gaugehistogram, summary, info, stateset or unknown"#,
            ),
        ),
    ];
    for (name, body, want) in cases {
        assert_eq!(om(body), Err(want), "{name}");
    }
}

#[test]
fn text_limits() {
    let limits = IngestLimits {
        max_body_bytes: 64,
        max_series_per_request: 2,
        max_samples_per_request: 3,
        max_labels_per_series: 2,
        max_label_name_bytes: 8,
        max_label_value_bytes: 4,
        ..IngestLimits::default()
    };
    let parse =
        |body: &str| parse_prom_text(body.as_bytes(), TextFormat::Prometheus, &limits, NOW, &[]);
    let cases: Vec<(&str, String, IngestError)> = vec![
        (
            "body",
            format!("m{{a=\"{}\"}} 1\n", "x".repeat(80)),
            IngestError {
                field: "body".into(),
                message: "request body is 90 bytes, more than limits.max_body_bytes = 64".into(),
            },
        ),
        (
            "samples",
            "a 1\nb 1\na 2\nb 2\n".into(),
            err(
                4,
                "request has more than 3 samples (limits.max_samples_per_request)",
            ),
        ),
        (
            "series",
            "a 1\nb 1\nc 1\n".into(),
            IngestError {
                field: "body".into(),
                message: "request has 3 series, more than limits.max_series_per_request = 2".into(),
            },
        ),
        (
            "labels",
            "m{a=\"1\",b=\"2\",c=\"3\"} 1\n".into(),
            err(
                1,
                "series has more than limits.max_labels_per_series = 2 labels",
            ),
        ),
        (
            "metric name length",
            "long_metric 1\n".into(),
            err(
                1,
                "metric name is 11 bytes, more than limits.max_label_name_bytes = 8",
            ),
        ),
        (
            "label name length",
            "m{long_label=\"1\"} 1\n".into(),
            err(
                1,
                "label long_label: label name is 10 bytes, more than limits.max_label_name_bytes = 8",
            ),
        ),
        (
            "label value length",
            "m{a=\"12345\"} 1\n".into(),
            err(
                1,
                "label a: value is 5 bytes, more than limits.max_label_value_bytes = 4",
            ),
        ),
    ];
    for (name, body, want) in cases {
        assert_eq!(parse(&body), Err(want), "{name}");
    }
}

#[test]
fn extra_labels_are_added_and_replace() {
    let limits = IngestLimits::default();
    let extra = [
        ExtraLabel::parse("job=import", &limits),
        ExtraLabel::parse("env=prod=eu", &limits),
    ];
    let extra: Vec<ExtraLabel> = extra.into_iter().flatten().collect();
    assert_eq!(extra.len(), 2);
    let got = parse_prom_text(
        b"m{job=\"body\",a=\"1\"} 1\n",
        TextFormat::Prometheus,
        &limits,
        NOW,
        &extra,
    );
    assert_eq!(
        got,
        Ok(vec![series(
            &[
                ("__name__", "m"),
                ("a", "1"),
                ("job", "import"),
                ("env", "prod=eu")
            ],
            &[(NOW, 1.0)],
        )])
    );
    let bad = |spec: &str, message: &str| {
        assert_eq!(
            ExtraLabel::parse(spec, &limits),
            Err(IngestError {
                field: "extra_label".into(),
                message: message.into()
            }),
            "{spec}"
        );
    };
    bad("job", r#"expected name=value, found "job""#);
    bad(
        "__name__=x",
        r#""__name__": label names starting with `__` are reserved"#,
    );
    bad(
        "a-b=x",
        r#""a-b": invalid label name: must match [a-zA-Z_][a-zA-Z0-9_]*"#,
    );
}

// ---- remote write ----

fn label(name: &str, value: &str) -> pb::Label {
    pb::Label {
        name: name.into(),
        value: value.into(),
    }
}

fn sample(value: f64, timestamp: i64) -> pb::Sample {
    pb::Sample { value, timestamp }
}

fn encode(request: &pb::WriteRequest) -> Vec<u8> {
    let raw = request.encode_to_vec();
    snap::raw::Encoder::new()
        .compress_vec(&raw)
        .unwrap_or_default()
}

fn rw(request: &pb::WriteRequest) -> Result<Vec<SeriesSamples>, IngestError> {
    parse_remote_write(&encode(request), &IngestLimits::default(), NOW)
}

fn ts(labels: Vec<pb::Label>, samples: Vec<pb::Sample>) -> pb::TimeSeries {
    pb::TimeSeries { labels, samples }
}

#[test]
fn remote_write_good_request() {
    let request = pb::WriteRequest {
        timeseries: vec![
            ts(
                vec![
                    label("__name__", "up"),
                    label("job", "node"),
                    label("instance", "a:9100"),
                ],
                vec![sample(1.0, NOW - 1000), sample(0.0, NOW)],
            ),
            ts(vec![label("__name__", "no_samples")], vec![]),
            ts(
                vec![
                    label("job", "node"),
                    label("__name__", "up"),
                    label("instance", "a:9100"),
                ],
                vec![sample(1.0, NOW + 1000)],
            ),
            ts(
                vec![label("__name__", "x"), label("empty", "")],
                vec![sample(f64::INFINITY, NOW)],
            ),
        ],
    };
    assert_eq!(
        rw(&request),
        Ok(vec![
            series(
                &[("__name__", "up"), ("job", "node"), ("instance", "a:9100")],
                &[(NOW - 1000, 1.0), (NOW, 0.0), (NOW + 1000, 1.0)],
            ),
            series(&[("__name__", "x")], &[(NOW, f64::INFINITY)]),
        ])
    );
    assert_eq!(rw(&pb::WriteRequest::default()), Ok(vec![]));
}

#[test]
fn remote_write_keeps_the_staleness_nan_bit_exact() {
    const STALE_NAN: u64 = 0x7ff0_0000_0000_0002;
    let stale = f64::from_bits(STALE_NAN);
    let request = pb::WriteRequest {
        timeseries: vec![ts(
            vec![label("__name__", "m")],
            vec![sample(f64::NAN, NOW - 1), sample(stale, NOW)],
        )],
    };
    let batch = rw(&request).unwrap_or_default();
    assert_eq!(batch.len(), 1);
    assert_eq!(batch[0].samples[1].1.to_bits(), STALE_NAN);
    assert_eq!(batch[0].samples[0].1.to_bits(), f64::NAN.to_bits());

    let store = Store::default();
    assert!(store.append(&batch).is_ok());
    let handle = store.get(&labels(&[("__name__", "m")]));
    let (mut t, mut v) = (Vec::new(), Vec::new());
    if let Some(h) = &handle {
        store.read_window(h, NOW - 10, NOW, &mut t, &mut v);
    }
    assert_eq!(t, [NOW - 1, NOW]);
    let bits: Vec<u64> = v.iter().map(|v| v.to_bits()).collect();
    assert_eq!(bits, [f64::NAN.to_bits(), STALE_NAN]);
}

#[test]
fn remote_write_bad_requests() {
    let limits = IngestLimits {
        max_labels_per_series: 2,
        max_samples_per_request: 3,
        max_series_per_request: 3,
        ..IngestLimits::default()
    };
    let one = |labels: Vec<pb::Label>, samples: Vec<pb::Sample>| pb::WriteRequest {
        timeseries: vec![ts(labels, samples)],
    };
    let fail = |field: &str, message: &str| IngestError {
        field: field.into(),
        message: message.into(),
    };
    let old = NOW - 7 * 3600 * 1000;
    let cases: Vec<(&str, pb::WriteRequest, IngestError)> = vec![
        (
            "no metric name",
            one(vec![label("job", "x")], vec![sample(1.0, NOW)]),
            fail(
                "timeseries[0].labels",
                "missing the `__name__` label (the metric name)",
            ),
        ),
        (
            "bad metric name",
            one(vec![label("__name__", "a-b")], vec![sample(1.0, NOW)]),
            fail(
                "timeseries[0].labels.__name__",
                r#"invalid metric name "a-b": must match [a-zA-Z_:][a-zA-Z0-9_:]*"#,
            ),
        ),
        (
            "reserved label",
            one(
                vec![label("__name__", "m"), label("__tmp", "1")],
                vec![sample(1.0, NOW)],
            ),
            fail(
                "timeseries[0].labels.__tmp",
                "label names starting with `__` are reserved",
            ),
        ),
        (
            "bad label name",
            one(
                vec![label("__name__", "m"), label("a.b", "1")],
                vec![sample(1.0, NOW)],
            ),
            fail(
                "timeseries[0].labels.a.b",
                "invalid label name: must match [a-zA-Z_][a-zA-Z0-9_]*",
            ),
        ),
        (
            "duplicate label",
            one(
                vec![label("__name__", "m"), label("a", "1"), label("a", "2")],
                vec![sample(1.0, NOW)],
            ),
            fail("timeseries[0].labels.a", "duplicate label name"),
        ),
        (
            "too many labels",
            one(
                vec![
                    label("__name__", "m"),
                    label("a", "1"),
                    label("b", "2"),
                    label("c", "3"),
                ],
                vec![sample(1.0, NOW)],
            ),
            fail(
                "timeseries[0].labels",
                "3 labels besides `__name__`, more than limits.max_labels_per_series = 2",
            ),
        ),
        (
            "too old",
            one(
                vec![label("__name__", "m")],
                vec![sample(1.0, NOW), sample(1.0, old)],
            ),
            fail(
                "timeseries[0].samples[1].timestamp",
                &format!(
                    "timestamp {old} is outside the accepted range [{}, {}] (server time {NOW} minus \
                     limits.max_sample_age, plus limits.max_sample_future)",
                    NOW - 6 * 3600 * 1000,
                    NOW + 600 * 1000
                ),
            ),
        ),
        (
            "too many samples",
            pb::WriteRequest {
                timeseries: vec![
                    ts(
                        vec![label("__name__", "a")],
                        vec![sample(1.0, NOW), sample(1.0, NOW - 1)],
                    ),
                    ts(
                        vec![label("__name__", "b")],
                        vec![sample(1.0, NOW), sample(1.0, NOW - 1)],
                    ),
                ],
            },
            fail(
                "timeseries[1].samples",
                "request has more than 3 samples (limits.max_samples_per_request)",
            ),
        ),
        (
            "too many series",
            pb::WriteRequest {
                timeseries: (0..4)
                    .map(|_| ts(vec![label("__name__", "a")], vec![]))
                    .collect(),
            },
            fail(
                "timeseries",
                "request has 4 series, more than limits.max_series_per_request = 3",
            ),
        ),
    ];
    for (name, request, want) in cases {
        assert_eq!(
            parse_remote_write(&encode(&request), &limits, NOW),
            Err(want),
            "{name}"
        );
    }

    // Not snappy, not protobuf, too large once decompressed.
    let not_snappy = parse_remote_write(b"\xff\xff\xff\xff\xff\xff", &limits, NOW);
    assert!(
        not_snappy
            .as_ref()
            .is_err_and(|e| e.field == "body" && e.message.starts_with("invalid snappy block")),
        "{not_snappy:?}"
    );
    let garbage = snap::raw::Encoder::new()
        .compress_vec(b"\x0a\xff\xff\xff\xff\x0f")
        .unwrap_or_default();
    let not_proto = parse_remote_write(&garbage, &limits, NOW);
    assert!(
        not_proto.as_ref().is_err_and(
            |e| e.field == "body" && e.message.starts_with("invalid protobuf WriteRequest")
        ),
        "{not_proto:?}"
    );
    let small = IngestLimits {
        max_body_bytes: 1000,
        ..IngestLimits::default()
    };
    let zeros = snap::raw::Encoder::new()
        .compress_vec(&[0u8; 5000])
        .unwrap_or_default();
    assert!(zeros.len() < 1000);
    assert_eq!(
        parse_remote_write(&zeros, &small, NOW),
        Err(fail(
            "body",
            "decompressed body is 5000 bytes, more than limits.max_body_bytes = 1000"
        ))
    );
}

/// A history import repeats each series line after line: those lines are
/// read as one series, and are still checked line by line.
#[test]
fn repeated_series_lines_read_as_one_series() {
    let t = |k: i64| NOW - 10_000 + k * 1000;
    let got = text(&format!(
        "up{{job=\"a\"}} 1 {}\nup{{job=\"a\"}} 0 {}\nup{{job=\"a\"}}\t1 {}\nup 5 {}\nup {{job=\"b\"}} 7 {}\nup{{job=\"a\"}} 2 {}\n",
        t(1), t(2), t(3), t(4), t(5), t(6)
    ))
    .expect("parses");
    assert_eq!(
        got,
        vec![
            series(
                &[("__name__", "up"), ("job", "a")],
                &[(t(1), 1.0), (t(2), 0.0), (t(3), 1.0), (t(6), 2.0)]
            ),
            series(&[("__name__", "up")], &[(t(4), 5.0)]),
            series(&[("__name__", "up"), ("job", "b")], &[(t(5), 7.0)]),
        ]
    );
    assert_eq!(
        text("up{job=\"a\"} 1\nup{job=\"a\"} one\n").err(),
        Some(err(
            2,
            "invalid value \"one\": expected a float, NaN, +Inf or -Inf"
        ))
    );
    assert_eq!(
        text("up{job=\"a\"} 1\nup{job=\"a\"}\n").err(),
        Some(err(2, "metric up has no value"))
    );
    let limits = IngestLimits {
        max_samples_per_request: 2,
        ..IngestLimits::default()
    };
    let over = parse_prom_text(
        b"up 1\nup 2\nup 3\n",
        TextFormat::Prometheus,
        &limits,
        NOW,
        &[],
    );
    assert_eq!(
        over.err(),
        Some(err(
            3,
            "request has more than 2 samples (limits.max_samples_per_request)"
        ))
    );
}
