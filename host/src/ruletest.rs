//! `ruletest` owns `klaxon test rules FILE...`: Prometheus rule unit tests in
//! promtool's format (`rule_files`, `evaluation_interval`,
//! `group_eval_order`, `tests` with `input_series`, `alert_rule_test`,
//! `promql_expr_test`, `external_labels`, `external_url`), run offline
//! against Klaxon's own rule engine and PromQL evaluator, and reported the
//! way `promtool test rules` reports them.
//!
//! As promtool does: input samples sit at multiples of the test's
//! `interval` from time 0; every rule group is evaluated at every
//! `evaluation_interval` from 0 to the last `eval_time`; an alert test
//! compares the *firing* alerts of its alert name (labels including
//! `alertname`, and annotations) as sets; an expression test compares an
//! instant query's samples as a set.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chrono::{TimeZone, Utc};
use serde::Deserialize;

use crate::config::Config;
use crate::plugins::PluginRegistry;
use crate::promql::notation::{Point, expand, parse_series};
use crate::promql::{Engine, Query, Value};
use crate::rules::state::AlertState;
use crate::rules::{EvalContext, RuleGroup, build_groups};
use crate::store::{Labels, SeriesSamples, Store, StoreConfig};

/// A test file could not be read or run at all.
#[derive(Debug, thiserror::Error)]
pub enum TestFileError {
    #[error("{file}: {reason}")]
    Invalid { file: String, reason: String },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TestFile {
    #[serde(default)]
    rule_files: Vec<String>,
    #[serde(default, with = "crate::duration::serde_opt")]
    evaluation_interval: Option<Duration>,
    #[serde(default)]
    group_eval_order: Vec<String>,
    #[serde(default)]
    tests: Vec<TestGroup>,
    #[serde(default)]
    fuzzy_compare: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TestGroup {
    #[serde(default)]
    name: String,
    #[serde(default, with = "crate::duration::serde_opt")]
    interval: Option<Duration>,
    #[serde(default)]
    input_series: Vec<InputSeries>,
    #[serde(default)]
    alert_rule_test: Vec<AlertTest>,
    #[serde(default)]
    promql_expr_test: Vec<ExprTest>,
    #[serde(default)]
    external_labels: BTreeMap<String, String>,
    #[serde(default)]
    external_url: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct InputSeries {
    series: String,
    #[serde(default)]
    values: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AlertTest {
    #[serde(with = "crate::duration::serde_str")]
    eval_time: Duration,
    alertname: String,
    #[serde(default)]
    exp_alerts: Vec<ExpAlert>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExpAlert {
    #[serde(default)]
    exp_labels: BTreeMap<String, String>,
    #[serde(default)]
    exp_annotations: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExprTest {
    expr: String,
    #[serde(with = "crate::duration::serde_str")]
    eval_time: Duration,
    #[serde(default)]
    exp_samples: Vec<ExpSample>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExpSample {
    #[serde(default)]
    labels: String,
    #[serde(default)]
    value: f64,
}

/// An alert as a test compares it.
type LabelsAndAnnotations = (BTreeMap<String, String>, BTreeMap<String, String>);

/// Runs every file; prints promtool-style results to `out`. Returns whether
/// all tests passed.
pub fn run_files(files: &[PathBuf], out: &mut String) -> bool {
    let mut all_ok = true;
    for file in files {
        let _ = writeln!(out, "Unit Testing:  {}", file.display());
        match run_file(file) {
            Ok(failures) if failures.is_empty() => {
                let _ = writeln!(out, "  SUCCESS\n");
            }
            Ok(failures) => {
                all_ok = false;
                let _ = writeln!(out, "  FAILED:");
                for f in failures {
                    for line in f.lines() {
                        let _ = writeln!(out, "    {line}");
                    }
                }
                let _ = writeln!(out);
            }
            Err(e) => {
                all_ok = false;
                let _ = writeln!(out, "  FAILED:\n    {e}\n");
            }
        }
    }
    all_ok
}

fn invalid(file: &Path, reason: impl Into<String>) -> TestFileError {
    TestFileError::Invalid {
        file: file.display().to_string(),
        reason: reason.into(),
    }
}

/// Runs one test file; the failures, one message each.
fn run_file(path: &Path) -> Result<Vec<String>, TestFileError> {
    let text = std::fs::read_to_string(path).map_err(|e| invalid(path, e.to_string()))?;
    let test: TestFile = serde_norway::from_str(&text).map_err(|e| invalid(path, e.to_string()))?;
    let dir = path.parent().unwrap_or(Path::new("."));
    let eval_interval = test.evaluation_interval.unwrap_or(Duration::from_secs(60));
    if eval_interval.is_zero() {
        return Err(invalid(path, "evaluation_interval must be > 0"));
    }
    // The rule files, merged as one rule config (groups in file order).
    let mut groups = Vec::new();
    for pattern in &test.rule_files {
        let full = dir.join(pattern);
        let pattern_text = full.to_string_lossy().into_owned();
        let matches: Vec<PathBuf> = glob::glob(&pattern_text)
            .map_err(|e| invalid(path, format!("rule_files: {pattern}: {e}")))?
            .filter_map(Result::ok)
            .collect();
        if matches.is_empty() {
            return Err(invalid(
                path,
                format!("rule_files: no file matches {pattern}"),
            ));
        }
        for rule_file in matches {
            let (config, _) = Config::load(&rule_file).map_err(|e| invalid(path, e.to_string()))?;
            groups.extend(config.groups);
        }
    }
    if !test.group_eval_order.is_empty() {
        let mut ordered = Vec::with_capacity(groups.len());
        for name in &test.group_eval_order {
            let Some(i) = groups.iter().position(|g| &g.name == name) else {
                return Err(invalid(
                    path,
                    format!("group_eval_order: no rule group named {name:?}"),
                ));
            };
            ordered.push(groups.remove(i));
        }
        ordered.append(&mut groups);
        groups = ordered;
    }
    for g in &mut groups {
        // promtool evaluates every group at the evaluation interval.
        g.interval = Some(eval_interval);
    }
    let config = Config {
        groups,
        ..Config::default()
    };
    let _ = test.fuzzy_compare;

    let mut failures = Vec::new();
    for (i, group) in test.tests.iter().enumerate() {
        let label = if group.name.is_empty() {
            format!("test {i}")
        } else {
            group.name.clone()
        };
        match run_group(&config, eval_interval, group) {
            Ok(errs) => failures.extend(errs),
            Err(e) => failures.push(format!("{label}: {e}")),
        }
    }
    Ok(failures)
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

fn run_group(
    config: &Config,
    eval_interval: Duration,
    t: &TestGroup,
) -> Result<Vec<String>, String> {
    let store = Arc::new(Store::new(StoreConfig {
        retention: Duration::from_secs(100 * 365 * 86400),
        max_series: usize::MAX,
    }));
    let step = ms(t.interval.unwrap_or(eval_interval)).max(1);
    let mut batch = Vec::with_capacity(t.input_series.len());
    for s in &t.input_series {
        let labels = parse_series(&s.series)
            .ok_or_else(|| format!("input_series: cannot parse series {:?}", s.series))?;
        let points = expand(&s.values).ok_or_else(|| {
            format!(
                "input_series: cannot parse values {:?} of {}",
                s.values, s.series
            )
        })?;
        let mut samples = Vec::with_capacity(points.len());
        for (k, p) in points.into_iter().enumerate() {
            match p {
                Point::Value(v) => samples.push((k as i64 * step, v)),
                Point::Omitted => {}
                Point::Histogram => {
                    return Err(format!(
                        "input_series: {} has native histogram values, which Klaxon does not support",
                        s.series
                    ));
                }
            }
        }
        if !samples.is_empty() {
            batch.push(SeriesSamples { labels, samples });
        }
    }
    store.append(&batch).map_err(|e| e.to_string())?;

    let groups: Vec<Arc<RuleGroup>> = build_groups(config)?;
    let ctx = EvalContext {
        store: store.clone(),
        plugins: Arc::new(PluginRegistry::new()),
        external_labels: t.external_labels.clone(),
        external_url: t.external_url.clone(),
        external_labels_on_alerts: false,
    };

    // Alert tests by eval time.
    let mut alert_tests: Vec<&AlertTest> = t.alert_rule_test.iter().collect();
    alert_tests.sort_by_key(|a| a.eval_time);
    let max_t = alert_tests
        .iter()
        .map(|a| ms(a.eval_time))
        .chain(t.promql_expr_test.iter().map(|e| ms(e.eval_time)))
        .max()
        .unwrap_or(0);
    let interval = ms(eval_interval);
    let mut failures = Vec::new();
    let mut next = 0;
    let mut ts = 0;
    while ts <= max_t {
        let now = Utc
            .timestamp_millis_opt(ts)
            .single()
            .ok_or_else(|| format!("time {ts} ms out of range"))?;
        for g in &groups {
            g.evaluate(&ctx, now);
            for rule in &g.rules {
                if let Some(e) = rule.health().last_error {
                    failures.push(format!(
                        "    group {:?}, rule {}, time {}: {e}",
                        g.name,
                        rule.name,
                        crate::duration::format(Duration::from_millis(ts as u64))
                    ));
                }
            }
        }
        // Tests whose eval_time falls in [ts, ts + interval) see this evaluation.
        while next < alert_tests.len() && ms(alert_tests[next].eval_time) < ts + interval {
            let test = alert_tests[next];
            next += 1;
            let mut got: Vec<LabelsAndAnnotations> = Vec::new();
            for g in &groups {
                for rule in g.rules.iter().filter(|r| r.name == test.alertname) {
                    for a in rule.active_alerts() {
                        if a.state == AlertState::Firing {
                            got.push((a.labels, a.annotations));
                        }
                    }
                }
            }
            let mut exp: Vec<LabelsAndAnnotations> = test
                .exp_alerts
                .iter()
                .map(|e| {
                    let mut labels = e.exp_labels.clone();
                    labels.insert("alertname".into(), test.alertname.clone());
                    (labels, e.exp_annotations.clone())
                })
                .collect();
            got.sort();
            exp.sort();
            if got != exp {
                failures.push(format!(
                    "alertname: {}, time: {}, \n        exp:{},\n        got:{}",
                    test.alertname,
                    crate::duration::format(test.eval_time),
                    fmt_alerts(&exp),
                    fmt_alerts(&got)
                ));
            }
        }
        ts += interval;
    }

    // Expression tests.
    let engine = Engine {
        default_subquery_step_ms: interval,
        ..Engine::default()
    };
    for e in &t.promql_expr_test {
        let query = match Query::parse(&e.expr) {
            Ok(q) => q,
            Err(err) => {
                failures.push(format!(
                    "    expr: {:?}, time: {}, err: {err}",
                    e.expr,
                    crate::duration::format(e.eval_time)
                ));
                continue;
            }
        };
        let got = match engine.instant(&*store, &query, ms(e.eval_time)) {
            Ok(Value::Vector(v)) => v.into_iter().map(|s| (s.labels, s.v)).collect::<Vec<_>>(),
            Ok(Value::Scalar(v)) => vec![(Labels::empty(), v)],
            Ok(other) => {
                failures.push(format!(
                    "    expr: {:?}, time: {}, err: unexpected {} result",
                    e.expr,
                    crate::duration::format(e.eval_time),
                    other.value_type().as_str()
                ));
                continue;
            }
            Err(err) => {
                failures.push(format!(
                    "    expr: {:?}, time: {}, err: {err}",
                    e.expr,
                    crate::duration::format(e.eval_time)
                ));
                continue;
            }
        };
        let mut exp = Vec::with_capacity(e.exp_samples.len());
        for s in &e.exp_samples {
            let labels = if s.labels.trim().is_empty() {
                Labels::empty()
            } else {
                match parse_series(&s.labels) {
                    Some(l) => l,
                    None => {
                        failures.push(format!(
                            "    expr: {:?}: cannot parse expected labels {:?}",
                            e.expr, s.labels
                        ));
                        continue;
                    }
                }
            };
            exp.push((labels, s.value));
        }
        let mut got_sorted = got.clone();
        got_sorted.sort_by(|a, b| a.0.cmp(&b.0));
        exp.sort_by(|a, b| a.0.cmp(&b.0));
        let same = got_sorted.len() == exp.len()
            && got_sorted
                .iter()
                .zip(&exp)
                .all(|(g, x)| g.0 == x.0 && values_equal(g.1, x.1));
        if !same {
            failures.push(format!(
                "    expr: {:?}, time: {},\n        exp: {}\n        got: {}",
                e.expr,
                crate::duration::format(e.eval_time),
                fmt_samples(&exp),
                fmt_samples(&got_sorted)
            ));
        }
    }
    Ok(failures)
}

/// Equal, or both NaN; tiny relative differences (float rounding) allowed,
/// as promtool's comparison does.
fn values_equal(a: f64, b: f64) -> bool {
    if a.is_nan() && b.is_nan() {
        return true;
    }
    if a == b {
        return true;
    }
    let diff = (a - b).abs();
    diff <= 1e-12 * a.abs().max(b.abs())
}

/// Labels as Prometheus prints them: `{a="1", b="2"}`.
fn fmt_map(m: &BTreeMap<String, String>) -> String {
    let inner: Vec<String> = m.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
    format!("{{{}}}", inner.join(", "))
}

fn fmt_alerts(alerts: &[LabelsAndAnnotations]) -> String {
    if alerts.is_empty() {
        return "[]".into();
    }
    let mut out = String::from("[\n");
    for (i, (labels, annotations)) in alerts.iter().enumerate() {
        let _ = writeln!(
            out,
            "            {i}:\n              Labels:{}\n              Annotations:{}",
            fmt_map(labels),
            fmt_map(annotations)
        );
    }
    out.push_str("            ]");
    out
}

fn fmt_samples(samples: &[(Labels, f64)]) -> String {
    let inner: Vec<String> = samples
        .iter()
        .map(|(l, v)| {
            let m: BTreeMap<String, String> = l
                .iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect();
            format!("{} {}", fmt_map(&m), crate::rules::format_value(*v))
        })
        .collect();
    format!("[{}]", inner.join(", "))
}
