//! PromQL conformance: runs every `.test` file of Prometheus's own engine
//! test data (vendored unmodified in `tests/promql-testdata/` from
//! `../shared/conformance/promql/`, Apache-2.0; format in its README)
//! against Klaxon's evaluator and prints, per file,
//! `FILE: P of N in-scope evals pass, K skipped`.
//!
//! Skipped, and reported as such: the files the README lists as out of
//! scope (native histograms, experimental features), evals over native
//! histogram data elsewhere, and evals using experimental functions.
//! An in-scope eval that fails must be listed in
//! `tests/promql_known_failures.txt` (`file:line`); the list may only
//! shrink: a listed eval that now passes fails the test until it is removed.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

use klaxon_host::promql::notation::{Point, expand, parse_number, parse_series as parse_labels};
use klaxon_host::promql::{Engine, Query, RangeSeries, Value};
use klaxon_host::store::{Labels, Matcher, SeriesSamples, Store, StoreConfig};

/// Files the README puts out of scope.
const OUT_OF_SCOPE_FILES: &[(&str, &str)] = &[
    ("native_histograms.test", "native histograms"),
    ("info.test", "experimental: info()"),
    ("fill-modifier.test", "experimental: fill modifiers"),
    (
        "extended_vectors.test",
        "experimental: extended range vectors",
    ),
    (
        "duration_expression.test",
        "experimental: duration expressions",
    ),
    ("type_and_unit.test", "experimental: type and unit labels"),
    ("start_timestamps.test", "experimental: start timestamps"),
];

/// Prometheus's experimental functions (enabled only behind a feature flag).
const EXPERIMENTAL_FUNCTIONS: &[&str] = &[
    "limitk",
    "limit_ratio",
    "sort_by_label",
    "sort_by_label_desc",
    "mad_over_time",
    "double_exponential_smoothing",
    "first_over_time",
    "ts_of_min_over_time",
    "ts_of_max_over_time",
    "ts_of_last_over_time",
    "ts_of_first_over_time",
    "info",
    "step",
    "range",
    "start",
    "end",
    "min_of",
    "max_of",
    "histogram_quantiles",
];

/// Functions outside Klaxon's PromQL scope (the function list):
/// native-histogram functions.
const OUT_OF_SCOPE_FUNCTIONS: &[&str] = &[
    "histogram_fraction",
    "histogram_count",
    "histogram_sum",
    "histogram_avg",
    "histogram_stddev",
    "histogram_stdvar",
];

fn conformance_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/promql-testdata")
}

/// `5m`, `1h30m`, `0`, `100` (seconds), `1.5` (seconds).
fn parse_time(s: &str) -> Option<i64> {
    if let Ok(secs) = s.parse::<f64>() {
        return Some((secs * 1000.0).round() as i64);
    }
    klaxon_host::duration::parse(s)
        .ok()
        .map(|d| d.as_millis() as i64)
}

/// Splits `metric{a="b"} rest` into the series descriptor and the rest.
fn split_series(line: &str) -> (&str, &str) {
    let line = line.trim();
    let mut in_quote = false;
    let mut escaped = false;
    let mut depth = 0;
    for (i, c) in line.char_indices() {
        if in_quote {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_quote = false;
            }
            continue;
        }
        match c {
            '"' => in_quote = true,
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return (&line[..=i], &line[i + 1..]);
                }
            }
            c if c.is_whitespace() && depth == 0 => return (&line[..i], &line[i..]),
            _ => {}
        }
    }
    (line, "")
}

fn almost_equal(a: f64, b: f64) -> bool {
    if a.is_nan() && b.is_nan() {
        return true;
    }
    if a == b {
        return true;
    }
    let diff = (a - b).abs();
    if a == 0.0 || b == 0.0 {
        return diff < 1e-6 * f64::MIN_POSITIVE;
    }
    diff / (a.abs() + b.abs()) < 1e-6
}

#[derive(Debug, Default)]
struct Expect {
    fail: bool,
    fail_msg: Option<String>,
    ordered: bool,
    string: Option<String>,
    range_vector: Option<(i64, i64, i64)>,
    results: Vec<(String, String)>,
}

enum Outcome {
    Pass,
    Fail(String),
    Skip(&'static str),
}

struct FileResult {
    pass: usize,
    fail: Vec<(usize, String)>,
    skipped: usize,
    reasons: BTreeMap<&'static str, usize>,
}

fn new_store() -> Store {
    Store::new(StoreConfig {
        retention: Duration::from_secs(100 * 365 * 86400),
        ..StoreConfig::default()
    })
}

fn run_file(text: &str) -> FileResult {
    let mut result = FileResult {
        pass: 0,
        fail: Vec::new(),
        skipped: 0,
        reasons: BTreeMap::new(),
    };
    let lines: Vec<&str> = text.lines().collect();
    let mut store = new_store();
    let mut histograms: Vec<Labels> = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i].trim_end();
        let lineno = i + 1;
        i += 1;
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        // The indented block that follows a command.
        let mut block = Vec::new();
        while i < lines.len() {
            let l = lines[i];
            if l.trim().is_empty() || !l.starts_with(|c: char| c.is_whitespace()) {
                break;
            }
            if !l.trim().starts_with('#') {
                block.push(l.trim());
            }
            i += 1;
        }
        if trimmed == "clear" {
            store = new_store();
            histograms.clear();
            continue;
        }
        if let Some(rest) = trimmed.strip_prefix("load") {
            let nhcb = rest.starts_with("_with_nhcb");
            let step = rest.trim_start_matches("_with_nhcb").trim();
            let Some(step) = parse_time(step) else {
                result
                    .fail
                    .push((lineno, format!("bad load step {step:?}")));
                continue;
            };
            let mut batch = Vec::new();
            for l in block {
                let (desc, values) = split_series(l);
                let Some(labels) = parse_labels(desc) else {
                    result.fail.push((lineno, format!("bad series {desc:?}")));
                    continue;
                };
                let Some(points) = expand(values) else {
                    result.fail.push((lineno, format!("bad values {values:?}")));
                    continue;
                };
                if points.iter().any(|p| matches!(p, Point::Histogram)) {
                    histograms.push(labels.clone());
                }
                if nhcb {
                    // The classic series load as floats, and are also
                    // converted to a native histogram under the base name.
                    let name = labels.get("__name__").unwrap_or_default();
                    for suffix in ["_bucket", "_sum", "_count"] {
                        if let Some(base) = name.strip_suffix(suffix) {
                            histograms.push(Labels::new(
                                labels
                                    .iter()
                                    .filter(|(n, _)| *n != "__name__" && *n != "le")
                                    .chain([("__name__", base)]),
                            ));
                        }
                    }
                }
                let samples: Vec<(i64, f64)> = points
                    .iter()
                    .enumerate()
                    .filter_map(|(k, p)| match p {
                        Point::Value(v) => Some((k as i64 * step, *v)),
                        _ => None,
                    })
                    .collect();
                if !samples.is_empty() {
                    batch.push(SeriesSamples { labels, samples });
                }
            }
            if let Err(e) = store.append(&batch) {
                result.fail.push((lineno, format!("load failed: {e}")));
            }
            continue;
        }
        if trimmed.starts_with("eval") {
            let outcome = run_eval(&store, &histograms, trimmed, &block);
            match outcome {
                Outcome::Pass => result.pass += 1,
                Outcome::Skip(why) => {
                    result.skipped += 1;
                    *result.reasons.entry(why).or_default() += 1;
                }
                Outcome::Fail(why) => result.fail.push((lineno, format!("{trimmed}\n    {why}"))),
            }
            continue;
        }
        result
            .fail
            .push((lineno, format!("unknown command {trimmed:?}")));
    }
    result
}

fn run_eval(store: &Store, histograms: &[Labels], command: &str, block: &[&str]) -> Outcome {
    let (kind, rest) = command.split_once(' ').unwrap_or((command, ""));
    let mut expect = Expect {
        fail: kind == "eval_fail",
        ..Expect::default()
    };
    let rest = rest.trim();
    // instant at T EXPR | range from A to B step S EXPR
    let (range, query_text) = if let Some(r) = rest.strip_prefix("instant at ") {
        let (t, q) = r.split_once(' ').unwrap_or((r, ""));
        let Some(t) = parse_time(t) else {
            return Outcome::Fail(format!("bad time {t:?}"));
        };
        ((t, t, 0), q.trim())
    } else if let Some(r) = rest.strip_prefix("range from ") {
        let parts: Vec<&str> = r.splitn(6, ' ').collect();
        if parts.len() < 6 || parts[1] != "to" || parts[3] != "step" {
            return Outcome::Fail(format!("bad range eval {r:?}"));
        }
        let (Some(a), Some(b), Some(s)) = (
            parse_time(parts[0]),
            parse_time(parts[2]),
            parse_time(parts[4]),
        ) else {
            return Outcome::Fail(format!("bad range times {r:?}"));
        };
        ((a, b, s), parts[5].trim())
    } else {
        return Outcome::Fail(format!("bad eval {rest:?}"));
    };
    for l in block {
        if let Some(e) = l.strip_prefix("expect ") {
            let e = e.trim();
            if e == "fail" {
                expect.fail = true;
            } else if let Some(m) = e.strip_prefix("fail msg:") {
                expect.fail = true;
                expect.fail_msg = Some(m.trim().to_owned());
            } else if e.starts_with("fail regex:") {
                expect.fail = true;
            } else if e == "ordered" {
                expect.ordered = true;
            } else if let Some(s) = e.strip_prefix("string ") {
                let s = s.trim();
                expect.string = Some(s[1..s.len().saturating_sub(1)].to_owned());
            } else if let Some(r) = e.strip_prefix("range vector from ") {
                let parts: Vec<&str> = r.split_whitespace().collect();
                if let (Some(a), Some(b), Some(s)) = (
                    parts.first().and_then(|x| parse_time(x)),
                    parts.get(2).and_then(|x| parse_time(x)),
                    parts.get(4).and_then(|x| parse_time(x)),
                ) {
                    expect.range_vector = Some((a, b, s));
                }
            }
            // warn / info / no_warn / no_info: Klaxon emits no annotations.
            continue;
        }
        let (desc, values) = split_series(l);
        if parse_labels(desc).is_some() || desc.starts_with('{') {
            expect
                .results
                .push((desc.to_owned(), values.trim().to_owned()));
        } else {
            // A scalar result line.
            expect.results.push((String::new(), l.trim().to_owned()));
        }
    }
    if block.iter().any(|l| l.contains("{{")) {
        return Outcome::Skip("native histogram result");
    }
    if touches_histograms(query_text, histograms) {
        return Outcome::Skip("native histogram data");
    }
    let calls =
        |f: &&str| query_text.contains(&format!("{f}(")) || query_text.contains(&format!("{f} ("));
    if EXPERIMENTAL_FUNCTIONS.iter().any(calls) {
        return Outcome::Skip("experimental function");
    }
    if OUT_OF_SCOPE_FUNCTIONS.iter().any(calls) {
        return Outcome::Skip("native-histogram function");
    }

    // Prometheus's test engine runs with `promql-delayed-name-removal`.
    let engine = Engine {
        delayed_name_removal: true,
        ..Engine::default()
    };
    let query = match Query::parse(query_text) {
        Ok(q) => q,
        Err(e) => {
            return if expect.fail {
                Outcome::Pass
            } else {
                Outcome::Fail(format!("parse error: {e}"))
            };
        }
    };
    let (start, end, step) = range;
    let got = if step == 0 {
        engine.instant(store, &query, start).map(Some)
    } else {
        engine
            .range(store, &query, start, end, step)
            .map(|m| Some(Value::Matrix(m)))
    };
    let got = match got {
        Ok(v) => v,
        Err(e) => {
            return if expect.fail {
                match &expect.fail_msg {
                    Some(m) if !e.to_string().contains(m.as_str()) => {
                        Outcome::Fail(format!("failed with `{e}`, expected message `{m}`"))
                    }
                    _ => Outcome::Pass,
                }
            } else {
                Outcome::Fail(format!("evaluation error: {e}"))
            };
        }
    };
    if expect.fail {
        return Outcome::Fail(format!("expected failure, got {got:?}"));
    }
    let Some(got) = got else {
        return Outcome::Fail("no result".into());
    };
    compare(&expect, got, range)
}

/// Whether any selector of the query selects a series loaded with native
/// histogram samples.
fn touches_histograms(query: &str, histograms: &[Labels]) -> bool {
    use promql_parser::parser::Expr;
    fn selectors<'a>(e: &'a Expr, out: &mut Vec<&'a promql_parser::parser::VectorSelector>) {
        match e {
            Expr::VectorSelector(vs) => out.push(vs),
            Expr::MatrixSelector(m) => out.push(&m.vs),
            Expr::Aggregate(a) => {
                selectors(&a.expr, out);
                if let Some(p) = &a.param {
                    selectors(p, out);
                }
            }
            Expr::Unary(u) => selectors(&u.expr, out),
            Expr::Binary(b) => {
                selectors(&b.lhs, out);
                selectors(&b.rhs, out);
            }
            Expr::Paren(p) => selectors(&p.expr, out),
            Expr::Subquery(s) => selectors(&s.expr, out),
            Expr::Call(c) => c.args.args.iter().for_each(|a| selectors(a, out)),
            _ => {}
        }
    }
    if histograms.is_empty() {
        return false;
    }
    let Ok(expr) = promql_parser::parser::parse(query) else {
        return false;
    };
    let mut found = Vec::new();
    selectors(&expr, &mut found);
    found.iter().any(|vs| {
        let mut ms: Vec<Matcher> = vs
            .matchers
            .matchers
            .iter()
            .map(Matcher::from_promql)
            .collect();
        if let Some(name) = &vs.name {
            ms.push(Matcher::equal("__name__", name.as_str()));
        }
        histograms.iter().any(|h| {
            ms.iter()
                .all(|m| m.matches(h.get(m.name()).unwrap_or_default()))
        })
    })
}

fn fmt_labels(l: &Labels) -> String {
    l.to_prom_string()
}

fn compare(expect: &Expect, got: Value, (start, _end, step): (i64, i64, i64)) -> Outcome {
    if let Some(s) = &expect.string {
        return match got {
            Value::String(g) if &g == s => Outcome::Pass,
            other => Outcome::Fail(format!("expected string {s:?}, got {other:?}")),
        };
    }
    match got {
        Value::Scalar(v) => {
            let Some((_, want)) = expect.results.first() else {
                return Outcome::Fail(format!("expected nothing, got scalar {v}"));
            };
            match parse_number(want) {
                Some(w) if almost_equal(w, v) => Outcome::Pass,
                _ => Outcome::Fail(format!("expected scalar {want}, got {v}")),
            }
        }
        Value::String(s) => Outcome::Fail(format!("unexpected string {s:?}")),
        Value::Vector(samples) => {
            let mut want: Vec<(Labels, f64)> = Vec::new();
            for (desc, value) in &expect.results {
                let (Some(l), Some(v)) = (parse_labels(desc), parse_number(value.trim())) else {
                    return Outcome::Fail(format!("cannot read expected line `{desc} {value}`"));
                };
                want.push((l, v));
            }
            if want.len() != samples.len() {
                return Outcome::Fail(format!(
                    "expected {} samples, got {}: {}",
                    want.len(),
                    samples.len(),
                    samples
                        .iter()
                        .map(|s| format!("{} {}", fmt_labels(&s.labels), s.v))
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
            if expect.ordered {
                for (k, ((wl, wv), s)) in want.iter().zip(&samples).enumerate() {
                    if wl != &s.labels || !almost_equal(*wv, s.v) {
                        return Outcome::Fail(format!(
                            "at position {k}: expected {} {wv}, got {} {}",
                            fmt_labels(wl),
                            fmt_labels(&s.labels),
                            s.v
                        ));
                    }
                }
                return Outcome::Pass;
            }
            let got: HashMap<&Labels, f64> = samples.iter().map(|s| (&s.labels, s.v)).collect();
            for (wl, wv) in &want {
                match got.get(wl) {
                    Some(v) if almost_equal(*wv, *v) => {}
                    Some(v) => {
                        return Outcome::Fail(format!(
                            "{}: expected {wv}, got {v}",
                            fmt_labels(wl)
                        ));
                    }
                    None => {
                        return Outcome::Fail(format!(
                            "missing {} (got {})",
                            fmt_labels(wl),
                            samples
                                .iter()
                                .map(|s| format!("{} {}", fmt_labels(&s.labels), s.v))
                                .collect::<Vec<_>>()
                                .join(", ")
                        ));
                    }
                }
            }
            Outcome::Pass
        }
        Value::Matrix(series) => {
            let (origin, step) = match expect.range_vector {
                Some((a, _b, s)) => (a, s),
                None => (start, step),
            };
            compare_matrix(expect, &series, origin, step)
        }
    }
}

fn compare_matrix(expect: &Expect, series: &[RangeSeries], origin: i64, step: i64) -> Outcome {
    let mut want: BTreeMap<String, Vec<(i64, f64)>> = BTreeMap::new();
    for (desc, values) in &expect.results {
        let (Some(l), Some(points)) = (parse_labels(desc), expand(values)) else {
            return Outcome::Fail(format!("cannot read expected line `{desc} {values}`"));
        };
        let samples = points
            .iter()
            .enumerate()
            .filter_map(|(k, p)| match p {
                Point::Value(v) => Some((origin + k as i64 * step, *v)),
                _ => None,
            })
            .collect();
        want.insert(fmt_labels(&l), samples);
    }
    let got: BTreeMap<String, &Vec<(i64, f64)>> = series
        .iter()
        .map(|s| (fmt_labels(&s.labels), &s.samples))
        .collect();
    if want.len() != got.len() {
        return Outcome::Fail(format!(
            "expected {} series {:?}, got {} {:?}",
            want.len(),
            want.keys().collect::<Vec<_>>(),
            got.len(),
            got
        ));
    }
    for (l, w) in &want {
        let Some(g) = got.get(l) else {
            return Outcome::Fail(format!("missing series {l}; got {:?}", got.keys()));
        };
        let same = w.len() == g.len()
            && w.iter()
                .zip(g.iter())
                .all(|(a, b)| a.0 == b.0 && almost_equal(a.1, b.1));
        if !same {
            return Outcome::Fail(format!("{l}: expected {w:?}, got {g:?}"));
        }
    }
    Outcome::Pass
}

#[test]
fn promql_conformance() {
    let dir = conformance_dir();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "test"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no .test files in {}", dir.display());

    let known_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/promql_known_failures.txt");
    let known: BTreeSet<String> = std::fs::read_to_string(&known_path)
        .unwrap_or_default()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_owned)
        .collect();

    let mut unexpected = Vec::new();
    let mut now_passing = Vec::new();
    let mut failing_ids = BTreeSet::new();
    let (mut total_pass, mut total_n, mut total_skip) = (0, 0, 0);
    for path in &files {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if let Some((_, why)) = OUT_OF_SCOPE_FILES.iter().find(|(f, _)| *f == name) {
            let evals = text
                .lines()
                .filter(|l| l.trim_start().starts_with("eval"))
                .count();
            println!("{name}: 0 of 0 in-scope evals pass, {evals} skipped ({why})");
            total_skip += evals;
            continue;
        }
        let r = run_file(&text);
        let n = r.pass + r.fail.len();
        let reasons: Vec<String> = r.reasons.iter().map(|(w, n)| format!("{w}: {n}")).collect();
        println!(
            "{name}: {} of {n} in-scope evals pass, {} skipped{}",
            r.pass,
            r.skipped,
            if reasons.is_empty() {
                String::new()
            } else {
                format!(" ({})", reasons.join(", "))
            }
        );
        total_pass += r.pass;
        total_n += n;
        total_skip += r.skipped;
        for (line, why) in r.fail {
            let id = format!("{name}:{line}");
            if !known.contains(&id) {
                unexpected.push(format!("{id}: {why}"));
            }
            failing_ids.insert(id);
        }
    }
    for id in &known {
        if !failing_ids.contains(id) {
            now_passing.push(id.clone());
        }
    }
    println!(
        "total: {total_pass} of {total_n} in-scope evals pass ({:.1} %), {total_skip} skipped",
        100.0 * total_pass as f64 / total_n.max(1) as f64
    );
    assert!(
        unexpected.is_empty(),
        "{} in-scope evals fail that are not in tests/promql_known_failures.txt:\n{}",
        unexpected.len(),
        unexpected.join("\n")
    );
    assert!(
        now_passing.is_empty(),
        "these evals pass now: remove them from tests/promql_known_failures.txt:\n{}",
        now_passing.join("\n")
    );
}
