use std::time::Duration;

use super::*;
use crate::store::Labels;

const NOW: i64 = 1_763_780_000_000;

fn parse(body: &str) -> Result<Vec<SeriesSamples>, IngestError> {
    parse_push(body.as_bytes(), &IngestLimits::default(), NOW)
}

fn parse_with(body: &str, limits: &IngestLimits) -> Result<Vec<SeriesSamples>, IngestError> {
    parse_push(body.as_bytes(), limits, NOW)
}

fn labels(pairs: &[(&str, &str)]) -> Labels {
    Labels::new(pairs.iter().copied())
}

#[test]
fn good_request_with_samples_and_value() {
    let body = r#"{"series":[
        {"metric":"ml_prediction_latency_seconds","labels":{"model_name":"fraud-detector","_a":"x"},
         "samples":[[1763780000000,0.12],[1763780015000,13]]},
        {"value": -2.5e-3, "metric":"ml_drift_score"}
    ]}"#;
    let got = parse(body);
    let expected = vec![
        SeriesSamples {
            labels: labels(&[
                ("__name__", "ml_prediction_latency_seconds"),
                ("model_name", "fraud-detector"),
                ("_a", "x"),
            ]),
            samples: vec![(1_763_780_000_000, 0.12), (1_763_780_015_000, 13.0)],
        },
        SeriesSamples {
            labels: labels(&[("__name__", "ml_drift_score")]),
            samples: vec![(NOW, -0.0025)],
        },
    ];
    assert_eq!(got, Ok(expected));
}

#[test]
fn nan_and_infinity_strings() {
    let body = format!(
        r#"{{"series":[{{"metric":"m","samples":[[{t},"NaN"],[{t1},"+Inf"],[{t2},"-Inf"],[{t3},"Inf"]]}},
                       {{"metric":"n","value":"NaN"}}]}}"#,
        t = NOW,
        t1 = NOW + 1,
        t2 = NOW + 2,
        t3 = NOW + 3
    );
    let got = parse(&body).unwrap_or_default();
    assert_eq!(got.len(), 2);
    let v: Vec<f64> = got[0].samples.iter().map(|s| s.1).collect();
    assert!(v[0].is_nan());
    assert_eq!(v[1..], [f64::INFINITY, f64::NEG_INFINITY, f64::INFINITY]);
    assert!(got[1].samples[0].1.is_nan());
}

#[test]
fn escapes_labels_without_labels_and_empty_values() {
    let body = r#"{"series":[{"metric":"m","labels":{"path":"a\"b\\c\n","empty":""},"value":1}]}"#;
    let got = parse(body).unwrap_or_default();
    assert_eq!(
        got[0].labels,
        labels(&[("__name__", "m"), ("path", "a\"b\\c\n")])
    );
    // No labels at all, an empty samples array (dropped), an empty series list.
    let got = parse(r#"{"series":[{"metric":"m","value":1},{"metric":"e","samples":[]}]}"#)
        .unwrap_or_default();
    assert_eq!(got.len(), 1);
    assert_eq!(parse(r#"{"series":[]}"#), Ok(vec![]));
    // Whitespace around everything is fine.
    assert_eq!(parse(" {\n\"series\" : [ ] }\n"), Ok(vec![]));
}

#[test]
fn duplicate_series_are_merged_in_request_order() {
    let body = format!(
        r#"{{"series":[
            {{"metric":"m","labels":{{"a":"1","b":"2"}},"samples":[[{t1},1]]}},
            {{"metric":"other","value":5}},
            {{"metric":"m","labels":{{"b":"2","a":"1"}},"samples":[[{t0},0],[{t1},9]]}}
        ]}}"#,
        t0 = NOW - 1000,
        t1 = NOW
    );
    let got = parse(&body).unwrap_or_default();
    assert_eq!(got.len(), 2);
    assert_eq!(
        got[0].labels,
        labels(&[("__name__", "m"), ("a", "1"), ("b", "2")])
    );
    assert_eq!(
        got[0].samples,
        vec![(NOW, 1.0), (NOW - 1000, 0.0), (NOW, 9.0)]
    );
    assert_eq!(got[1].labels.metric_name(), Some("other"));
}

#[test]
fn timestamp_bounds_are_inclusive() {
    let limits = IngestLimits::default();
    let oldest = NOW - 6 * 3_600_000;
    let newest = NOW + 600_000;
    let body = format!(r#"{{"series":[{{"metric":"m","samples":[[{oldest},1],[{newest},2]]}}]}}"#);
    assert!(parse_with(&body, &limits).is_ok());
}

/// (body, expected field, a fragment of the message)
fn bad_requests() -> Vec<(String, &'static str, &'static str)> {
    let ok_ts = NOW;
    let mut cases: Vec<(String, &'static str, &'static str)> = vec![
        ("".into(), "body", "EOF while parsing a value"),
        ("not json".into(), "body", "at line 1 column 2"),
        ("\"series\"".into(), "body", "invalid type: string"),
        (
            r#"{"series":[{"metric":"m","value":1}]} trailing"#.into(),
            "body",
            "trailing",
        ),
        ("[]".into(), "body", "push body"),
        (r#"{"serie":[]}"#.into(), "serie", "unknown field"),
        ("{}".into(), "series", "missing field `series`"),
        (r#"{"series":{}}"#.into(), "series", "array of series"),
        (r#"{"series":[5]}"#.into(), "series[0]", "series object"),
        (
            r#"{"series":[{"metric":"m","value":1},{"metric":"m","value":1,}]}"#.into(),
            "series[1]",
            "trailing comma",
        ),
        (
            r#"{"series":[{"labels":{},"value":1}]}"#.into(),
            "series[0].metric",
            "missing field `metric`",
        ),
        (
            r#"{"series":[{"metric":"1bad","value":1}]}"#.into(),
            "series[0].metric",
            "invalid metric name",
        ),
        (
            r#"{"series":[{"metric":"a-b","value":1}]}"#.into(),
            "series[0].metric",
            "invalid metric name",
        ),
        (
            r#"{"series":[{"metric":"","value":1}]}"#.into(),
            "series[0].metric",
            "invalid metric name",
        ),
        (
            r#"{"series":[{"metric":7,"value":1}]}"#.into(),
            "series[0].metric",
            "expected a string",
        ),
        (
            r#"{"series":[{"metric":"m","metric":"n","value":1}]}"#.into(),
            "series[0].metric",
            "duplicate field",
        ),
        (
            r#"{"series":[{"metric":"m","value":1,"extra":2}]}"#.into(),
            "series[0].extra",
            "unknown field",
        ),
        (
            r#"{"series":[{"metric":"m","labels":{"bad-name":"x"},"value":1}]}"#.into(),
            "series[0].labels.bad-name",
            "invalid label name",
        ),
        (
            r#"{"series":[{"metric":"m","labels":{"1a":"x"},"value":1}]}"#.into(),
            "series[0].labels.1a",
            "invalid label name",
        ),
        (
            r#"{"series":[{"metric":"m","labels":{"__name__":"x"},"value":1}]}"#.into(),
            "series[0].labels.__name__",
            "reserved",
        ),
        (
            r#"{"series":[{"metric":"m","labels":{"__x":"y"},"value":1}]}"#.into(),
            "series[0].labels.__x",
            "reserved",
        ),
        (
            r#"{"series":[{"metric":"m","labels":{"a":1},"value":1}]}"#.into(),
            "series[0].labels.a",
            "expected a string",
        ),
        (
            r#"{"series":[{"metric":"m","labels":{"a":"1","a":"2"},"value":1}]}"#.into(),
            "series[0].labels.a",
            "duplicate label",
        ),
        (
            r#"{"series":[{"metric":"m","labels":["a"],"value":1}]}"#.into(),
            "series[0].labels",
            "object of label names",
        ),
        (
            r#"{"series":[{"metric":"m","samples":[],"value":1}]}"#.into(),
            "series[0]",
            "not both",
        ),
        (
            r#"{"series":[{"metric":"m"}]}"#.into(),
            "series[0]",
            "`samples` or `value`",
        ),
        (
            r#"{"series":[{"metric":"m","value":"high"}]}"#.into(),
            "series[0].value",
            r#""NaN""#,
        ),
        (
            r#"{"series":[{"metric":"m","value":null}]}"#.into(),
            "series[0].value",
            "a number",
        ),
        (
            r#"{"series":[{"metric":"m","samples":5}]}"#.into(),
            "series[0].samples",
            "array of [timestamp_ms, value]",
        ),
        (
            r#"{"series":[{"metric":"m","samples":[5]}]}"#.into(),
            "series[0].samples[0]",
            "[timestamp_ms, value]",
        ),
        (
            r#"{"series":[{"metric":"m","samples":[[]]}]}"#.into(),
            "series[0].samples[0]",
            "must be [timestamp_ms, value]",
        ),
        (
            r#"{"series":[{"metric":"m","samples":[[1]]}]}"#.into(),
            "series[0].samples[0]",
            "must be [timestamp_ms, value]",
        ),
        (
            r#"{"series":[{"metric":"m","samples":[[1,2,3]]}]}"#.into(),
            "series[0].samples[0]",
            "must be [timestamp_ms, value]",
        ),
        (
            r#"{"series":[{"metric":"m","samples":[[1763780000000,2]"#.into(),
            "series[0].samples[1]",
            "EOF while parsing a list",
        ),
    ];
    cases.extend([
        (format!(r#"{{"series":[{{"metric":"m","samples":[[{ok_ts},1],[{ok_ts},2],["{ok_ts}",1]]}}]}}"#), "series[0].samples[2][0]", "integer timestamp"),
        (format!(r#"{{"series":[{{"metric":"m","samples":[[{ok_ts}.5,1]]}}]}}"#), "series[0].samples[0][0]", "integer timestamp"),
        (format!(r#"{{"series":[{{"metric":"m","samples":[[{ok_ts},true]]}}]}}"#), "series[0].samples[0][1]", "a number"),
        (format!(r#"{{"series":[{{"metric":"m","samples":[[{ok_ts},"1.5"]]}}]}}"#), "series[0].samples[0][1]", "a number"),
        (format!(r#"{{"series":[{{"metric":"m","samples":[[{ok_ts},1 2]]}}]}}"#), "series[0].samples[0]", "expected `,` or `]`"),
        (format!(r#"{{"series":[{{"metric":"m","value":1}},{{"metric":"m","samples":[[{},1]]}}]}}"#, NOW - 6 * 3_600_000 - 1), "series[1].samples[0][0]", "outside the accepted range"),
        (format!(r#"{{"series":[{{"metric":"m","samples":[[{},1]]}}]}}"#, NOW + 600_001), "series[0].samples[0][0]", "outside the accepted range"),
        (r#"{"series":[{"metric":"m","samples":[[99999999999999999999,1]]}]}"#.to_string(), "series[0].samples[0][0]", "out of range"),
        (r#"{"series":[{"metric":"m","samples":[[-5,1]]}]}"#.to_string(), "series[0].samples[0][0]", "outside the accepted range"),
    ]);
    cases
}

#[test]
fn bad_requests_name_the_field() {
    let mut wrong = Vec::new();
    for (body, field, fragment) in bad_requests() {
        match parse(&body) {
            Ok(v) => wrong.push(format!("accepted {body}: {v:?}")),
            Err(e) => {
                if e.field != field || !e.message.contains(fragment) {
                    wrong.push(format!(
                        "body {body}\n  got      {e}\n  expected {field}: …{fragment}…"
                    ));
                }
                assert_eq!(e.to_string(), format!("{}: {}", e.field, e.message));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn syntax_errors_carry_line_and_column() {
    let body = format!("{{\"series\":[\n{{\"metric\":\"m\",\n\"samples\":[[{NOW},2],,]}}]}}");
    let e = parse(&body).err().unwrap_or_else(|| IngestError {
        field: String::new(),
        message: String::new(),
    });
    assert_eq!(e.field, "series[0].samples[1]");
    assert!(e.message.contains("line 3 column"), "{e}");
}

#[test]
fn limits_are_enforced() {
    let limits = IngestLimits {
        max_body_bytes: 400,
        max_series_per_request: 2,
        max_samples_per_request: 3,
        max_labels_per_series: 2,
        max_label_name_bytes: 8,
        max_label_value_bytes: 4,
        ..IngestLimits::default()
    };
    let cases = [
        (
            r#"{"series":[{"metric":"a","value":1},{"metric":"b","value":1},{"metric":"c","value":1}]}"#,
            "series",
            "more than 2 series",
        ),
        (
            r#"{"series":[{"metric":"a","value":1},{"metric":"b","samples":[[1763780000000,1],[1763780000001,1],[1763780000002,1]]}]}"#,
            "series[1].samples[2]",
            "more than 3 samples",
        ),
        (
            r#"{"series":[{"metric":"a","labels":{"x":"1","y":"2","z":"3"},"value":1}]}"#,
            "series[0].labels",
            "more than 2 labels",
        ),
        (
            r#"{"series":[{"metric":"a","labels":{"x":"12345"},"value":1}]}"#,
            "series[0].labels.x",
            "max_label_value_bytes",
        ),
        (
            r#"{"series":[{"metric":"a","labels":{"longlongname":"1"},"value":1}]}"#,
            "series[0].labels.longlongname",
            "max_label_name_bytes",
        ),
        (
            r#"{"series":[{"metric":"longlongname","value":1}]}"#,
            "series[0].metric",
            "max_label_name_bytes",
        ),
    ];
    for (body, field, fragment) in cases {
        let e = parse_with(body, &limits)
            .err()
            .unwrap_or_else(|| IngestError {
                field: "accepted".into(),
                message: body.into(),
            });
        assert_eq!(e.field, field, "{e}");
        assert!(e.message.contains(fragment), "{e}");
    }
    let big = format!(
        r#"{{"series":[{{"metric":"a","labels":{{"x":"{}"}},"value":1}}]}}"#,
        "y".repeat(500)
    );
    let e = parse_with(&big, &limits)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        e.starts_with("body: ") && e.contains("max_body_bytes"),
        "{e}"
    );
    // Exactly at the limits is fine.
    let at_limit = r#"{"series":[{"metric":"a","labels":{"x":"1234","y":"1"},"value":1},{"metric":"b","samples":[[1763780000000,1],[1763780000001,1]]}]}"#;
    assert!(parse_with(at_limit, &limits).is_ok());
}

#[test]
fn limits_from_config() {
    let limits: Result<IngestLimits, _> = serde_json::from_str(
        r#"{"max_series_per_request": 5, "max_sample_age": "1h", "max_sample_future": "30s"}"#,
    );
    let expected = IngestLimits {
        max_series_per_request: 5,
        max_sample_age: Duration::from_secs(3600),
        max_sample_future: Duration::from_secs(30),
        ..IngestLimits::default()
    };
    assert_eq!(limits.ok(), Some(expected));
    assert!(serde_json::from_str::<IngestLimits>(r#"{"max_series": 5}"#).is_err());
    assert_eq!(IngestLimits::default().max_body_bytes, 16 * 1024 * 1024);
}

#[test]
fn invalid_utf8_names_the_field() {
    let mut body = br#"{"series":[{"metric":"m","labels":{"a":"ok","b":"x"#.to_vec();
    body.push(0xff);
    body.extend_from_slice(br#""},"value":1}]}"#);
    let e = parse_push(&body, &IngestLimits::default(), NOW)
        .err()
        .map(|e| (e.field, e.message));
    assert!(
        matches!(&e, Some((field, message)) if field == "series[0].labels.b" && message.contains("invalid unicode")),
        "{e:?}"
    );
}

#[test]
fn samples_with_whitespace_exponents_and_negative_values() {
    let body = format!(
        "{{ \"series\" : [ {{ \"metric\" : \"m\" , \"samples\" : [ [ {NOW} , -1.5e-3 ] ,\n[{},1E2],[{},-0.0],[{},0.10170000000000001] ] }} ] }}",
        NOW + 1,
        NOW + 2,
        NOW + 3
    );
    let got = parse(&body).map(|s| s[0].samples.clone());
    assert_eq!(
        got,
        Ok(vec![
            (NOW, -0.0015),
            (NOW + 1, 100.0),
            (NOW + 2, -0.0),
            (NOW + 3, 0.10170000000000001)
        ])
    );
}
