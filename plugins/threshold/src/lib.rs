//! `threshold`: fires when a reduction of the window crosses a fixed value.
//!
//! # Config
//!
//! ```json
//! { "op": ">", "value": 0.2, "reduce": "p99" }
//! ```
//!
//! | field    | type   | default  | meaning |
//! |----------|--------|----------|---------|
//! | `op`     | string | required | `>`, `>=`, `<`, `<=`, `==` or `!=` |
//! | `value`  | number | required | the threshold |
//! | `reduce` | string | `"last"` | how the window becomes one number: `last`, `avg`, `min`, `max`, `sum`, `count`, or `pNN` (`p50`, `p99`, `p99.9`: the NN-th percentile, 0 ≤ NN ≤ 100) |
//!
//! Unknown fields are an error.
//!
//! # Formula
//!
//! `r = reduce(window)`, then `firing = r op value`. NaN samples are skipped by every
//! reduction; ±Inf samples take part (`max` of `[1, +Inf]` is `+Inf`):
//!
//! - `last`: the newest non-NaN sample;
//! - `avg`: `sum / count`; `sum`, `min`, `max`: as named; `count`: non-NaN samples;
//! - `pNN`: the NN/100-quantile with linear interpolation between closest ranks
//!   (numpy's default, Prometheus' `quantile_over_time`).
//!
//! The baseline window, if any, is ignored; `==` and `!=` compare exactly.
//!
//! # Verdict
//!
//! - score: `r`; summary: `<reduce>=<r> <op> <value>`, e.g. `last=0.25 > 0.2`
//!   (numbers with up to 6 significant digits);
//! - annotations: `threshold` (the configured value) and `reduce` (as configured);
//! - empty window, or only NaN samples: not firing, score 0, summary
//!   `no samples in window` (whatever the reduction, `count` included);
//! - undefined reduction (`sum`/`avg` of a window holding both +Inf and -Inf, or a
//!   percentile between them): not firing, score 0, summary `<reduce> undefined: window
//!   mixes +Inf and -Inf`.

use std::fmt;

use klaxon_sdk::prelude::*;
use serde::Deserialize;

/// The threshold detector.
pub struct Threshold;

/// Parsed config; see the crate docs.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Comparison of the reduced value against `value`.
    pub op: Op,
    /// The threshold.
    pub value: f64,
    /// How the window becomes one number.
    #[serde(default)]
    pub reduce: Reduce,
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub enum Op {
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `==`
    Eq,
    /// `!=`
    Ne,
}

impl Op {
    fn holds(self, left: f64, right: f64) -> bool {
        match self {
            Self::Gt => left > right,
            Self::Ge => left >= right,
            Self::Lt => left < right,
            Self::Le => left <= right,
            Self::Eq => left == right,
            Self::Ne => left != right,
        }
    }
}

impl TryFrom<String> for Op {
    type Error = String;

    fn try_from(s: String) -> Result<Self, String> {
        Ok(match s.as_str() {
            ">" => Self::Gt,
            ">=" => Self::Ge,
            "<" => Self::Lt,
            "<=" => Self::Le,
            "==" => Self::Eq,
            "!=" => Self::Ne,
            _ => {
                return Err(format!(
                    "unknown op {s:?}: expected one of \">\", \">=\", \"<\", \"<=\", \"==\", \"!=\""
                ));
            }
        })
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Gt => ">",
            Self::Ge => ">=",
            Self::Lt => "<",
            Self::Le => "<=",
            Self::Eq => "==",
            Self::Ne => "!=",
        })
    }
}

/// How the window is reduced to one number.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(try_from = "String")]
pub enum Reduce {
    /// Newest non-NaN sample.
    #[default]
    Last,
    /// Mean of the non-NaN samples.
    Avg,
    /// Smallest.
    Min,
    /// Largest.
    Max,
    /// Sum.
    Sum,
    /// Number of non-NaN samples.
    Count,
    /// A percentile: `q` in `[0, 1]`, `name` as configured (`p99.9`).
    Quantile {
        /// The quantile, percentile / 100.
        q: f64,
        /// The configured spelling, used in summaries.
        name: String,
    },
}

impl TryFrom<String> for Reduce {
    type Error = String;

    fn try_from(s: String) -> Result<Self, String> {
        Ok(match s.as_str() {
            "last" => Self::Last,
            "avg" => Self::Avg,
            "min" => Self::Min,
            "max" => Self::Max,
            "sum" => Self::Sum,
            "count" => Self::Count,
            _ => match parse_percentile(&s) {
                Some(percent) => Self::Quantile {
                    q: percent / 100.0,
                    name: s,
                },
                None => {
                    return Err(format!(
                        "unknown reduce {s:?}: expected last, avg, min, max, sum, count or pNN \
                         with 0 <= NN <= 100 (p50, p99, p99.9)"
                    ));
                }
            },
        })
    }
}

/// `p99.9` → 99.9: digits, an optional fraction, at most 100.
fn parse_percentile(s: &str) -> Option<f64> {
    let digits = s.strip_prefix('p')?;
    let (int, frac) = digits.split_once('.').unwrap_or((digits, "0"));
    let all_digits = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
    if !all_digits(int) || !all_digits(frac) {
        return None;
    }
    let percent: f64 = digits.parse().ok()?;
    (0.0..=100.0).contains(&percent).then_some(percent)
}

impl fmt::Display for Reduce {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Last => "last",
            Self::Avg => "avg",
            Self::Min => "min",
            Self::Max => "max",
            Self::Sum => "sum",
            Self::Count => "count",
            Self::Quantile { name, .. } => name,
        })
    }
}

impl Reduce {
    /// The reduced value; `None` when the window has no non-NaN sample.
    fn apply(&self, values: &[f64]) -> Option<f64> {
        // `min`, `max`, `quantile` and `last` say "none" themselves; the others count.
        let counted = || Some(stats::count(values)).filter(|n| *n > 0);
        match self {
            Self::Last => values.iter().rev().copied().find(|v| !v.is_nan()),
            Self::Avg => counted().map(|n| stats::sum(values) / n as f64),
            Self::Min => stats::min(values),
            Self::Max => stats::max(values),
            Self::Sum => counted().map(|_| stats::sum(values)),
            Self::Count => counted().map(|n| n as f64),
            Self::Quantile { q, .. } => stats::quantile(values, *q),
        }
    }
}

/// The parts of a verdict that depend on the config only, formatted once per batch
/// rather than once per series.
struct Rendered {
    /// `threshold` annotation: the value as configured (shortest exact form).
    threshold: String,
    /// `reduce` annotation, also the summary's first word.
    reduce: String,
    /// The summary's tail: ` > 0.2`.
    comparison: String,
}

impl Rendered {
    fn new(cfg: &Config) -> Self {
        let mut comparison = format!(" {} ", cfg.op);
        push_value(&mut comparison, cfg.value);
        Self {
            threshold: cfg.value.to_string(),
            reduce: cfg.reduce.to_string(),
            comparison,
        }
    }
}

/// The verdict on one window.
fn judge(cfg: &Config, rendered: &Rendered, values: &[f64]) -> Output {
    let verdict = match cfg.reduce.apply(values) {
        None => Verdict::ok(0.0, "no samples in window"),
        Some(r) if r.is_nan() => Verdict::ok(
            0.0,
            format!("{} undefined: window mixes +Inf and -Inf", rendered.reduce),
        ),
        Some(r) => {
            let mut summary = String::with_capacity(rendered.reduce.len() + 32);
            summary.push_str(&rendered.reduce);
            summary.push('=');
            push_value(&mut summary, r);
            summary.push_str(&rendered.comparison);
            Verdict::new(cfg.op.holds(r, cfg.value), r, summary)
        }
    };
    verdict
        .annotate("threshold", rendered.threshold.as_str())
        .annotate("reduce", rendered.reduce.as_str())
        .into()
}

const SCHEMA: &str = r#"{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "title": "threshold",
  "type": "object",
  "additionalProperties": false,
  "required": ["op", "value"],
  "properties": {
    "op": {"enum": [">", ">=", "<", "<=", "==", "!="], "description": "Comparison of the reduced window against value."},
    "value": {"type": "number", "description": "The threshold."},
    "reduce": {
      "type": "string",
      "default": "last",
      "pattern": "^(last|avg|min|max|sum|count|p[0-9]+(\\.[0-9]+)?)$",
      "description": "last, avg, min, max, sum, count, or pNN (percentile, 0 <= NN <= 100). NaN samples are skipped."
    }
  }
}"#;

impl Detector for Threshold {
    type Config = Config;

    fn info() -> Info {
        Info::new(
            "threshold",
            env!("CARGO_PKG_VERSION"),
            "Fires when a reduction of the window (last, avg, min, max, sum, count or a \
             percentile; NaN samples skipped) compares true against a fixed value.",
        )
        .schema(SCHEMA)
    }

    fn check_config(cfg: &Config) -> Result<(), String> {
        // JSON has no NaN or Inf, but the config may come from elsewhere one day.
        if !cfg.value.is_finite() {
            return Err(format!("value: must be a finite number, got {}", cfg.value));
        }
        Ok(())
    }

    fn evaluate(cfg: &Config, series: &Series<'_>) -> Output {
        judge(cfg, &Rendered::new(cfg), series.window.values)
    }

    fn evaluate_batch(cfg: &Config, batch: &Batch<'_>) -> Result<Vec<Output>, String> {
        let rendered = Rendered::new(cfg);
        Ok(batch
            .iter()
            .map(|s| judge(cfg, &rendered, s.window.values))
            .collect())
    }
}

klaxon_sdk::export_detector!(Threshold);

#[cfg(test)]
mod tests {
    use super::*;
    use klaxon_sdk::testing::{self, TestSeries};

    const NAN: f64 = f64::NAN;
    const INF: f64 = f64::INFINITY;

    /// Evaluates one series and returns its verdict.
    fn judge(config: &str, values: &[f64]) -> Verdict {
        let mut out =
            testing::run_detector::<Threshold>(config, &[TestSeries::from_values(values)])
                .expect("evaluate");
        out.remove(0).verdict
    }

    #[test]
    fn last_above_threshold_fires() {
        let v = judge(r#"{"op":">","value":0.2}"#, &[0.1, 0.3, 0.25]);
        // last = 0.25 > 0.2
        assert!(v.firing);
        assert_eq!(v.score, 0.25);
        assert_eq!(v.summary, "last=0.25 > 0.2");
        assert_eq!(v.annotation("threshold"), Some("0.2"));
        assert_eq!(v.annotation("reduce"), Some("last"));
    }

    #[test]
    fn every_operator() {
        // last = 2 in every case.
        for (op, value, firing) in [
            (">", 2.0, false),
            (">=", 2.0, true),
            ("<", 2.0, false),
            ("<=", 2.0, true),
            ("==", 2.0, true),
            ("!=", 2.0, false),
            ("!=", 3.0, true),
            ("<", 3.0, true),
        ] {
            let v = judge(&format!(r#"{{"op":"{op}","value":{value}}}"#), &[9.0, 2.0]);
            assert_eq!(v.firing, firing, "2 {op} {value}");
        }
    }

    #[test]
    fn reductions_skip_nan() {
        let values = [4.0, NAN, 1.0, 3.0, 2.0, NAN];
        // Non-NaN samples: 4, 1, 3, 2 → sum 10, count 4, avg 2.5, min 1, max 4,
        // last non-NaN 2; sorted 1,2,3,4: p50 rank 1.5 → 2.5; p75 rank 2.25 → 3.25;
        // p0 → 1; p100 → 4; p99.9 rank 2.997 → 3 + 0.997·1 = 3.997.
        for (reduce, expected) in [
            ("last", 2.0),
            ("avg", 2.5),
            ("min", 1.0),
            ("max", 4.0),
            ("sum", 10.0),
            ("count", 4.0),
            ("p50", 2.5),
            ("p75", 3.25),
            ("p0", 1.0),
            ("p100", 4.0),
        ] {
            let v = judge(
                &format!(r#"{{"op":">","value":0,"reduce":"{reduce}"}}"#),
                &values,
            );
            assert_eq!(v.score, expected, "{reduce}");
            assert!(v.firing, "{reduce}");
        }
        let v = judge(r#"{"op":">","value":0,"reduce":"p99.9"}"#, &values);
        assert!((v.score - 3.997).abs() < 1e-12, "{}", v.score);
        assert_eq!(v.summary, "p99.9=3.997 > 0");
        assert_eq!(v.annotation("reduce"), Some("p99.9"));
    }

    #[test]
    fn infinities_take_part() {
        // max of [1, +Inf] = +Inf > 5
        let v = judge(r#"{"op":">","value":5,"reduce":"max"}"#, &[1.0, INF]);
        assert!(v.firing);
        assert_eq!(v.score, INF);
        assert_eq!(v.summary, "max=+Inf > 5");
        // avg of [1, -Inf] = -Inf < 0
        assert!(judge(r#"{"op":"<","value":0,"reduce":"avg"}"#, &[1.0, -INF]).firing);
        // sum of [+Inf, -Inf] is undefined.
        let v = judge(r#"{"op":"!=","value":0,"reduce":"sum"}"#, &[INF, -INF]);
        assert!(!v.firing);
        assert_eq!(v.score, 0.0);
        assert_eq!(v.summary, "sum undefined: window mixes +Inf and -Inf");
    }

    #[test]
    fn empty_or_all_nan_window_does_not_fire() {
        for values in [&[][..], &[NAN, NAN][..]] {
            for reduce in ["last", "count", "p50"] {
                let v = judge(
                    &format!(r#"{{"op":"<","value":1,"reduce":"{reduce}"}}"#),
                    values,
                );
                assert!(!v.firing);
                assert_eq!(v.score, 0.0);
                assert_eq!(v.summary, "no samples in window");
            }
        }
    }

    #[test]
    fn one_verdict_per_series_in_order() {
        let series = [
            TestSeries::from_values(&[1.0]).labels(&[("id", "a")]),
            TestSeries::from_values(&[]).labels(&[("id", "b")]),
            TestSeries::from_values(&[3.0]).labels(&[("id", "c")]),
        ];
        let out = testing::run_detector::<Threshold>(r#"{"op":">","value":2}"#, &series).unwrap();
        let firing: Vec<bool> = out.iter().map(|o| o.verdict.firing).collect();
        // 1 > 2 no; empty no; 3 > 2 yes.
        assert_eq!(firing, [false, false, true]);
        assert!(out.iter().all(|o| o.state.is_none()));
    }

    #[test]
    fn config_errors_name_the_field() {
        let check = testing::check_detector_config::<Threshold>;
        assert!(check(r#"{"op":">=","value":1.5,"reduce":"p99"}"#).is_ok());

        let err = check(r#"{"op":">>","value":1}"#).unwrap_err();
        assert!(err.starts_with("op: unknown op \">>\""), "{err}");
        for bad in ["p101", "p", "p9x", "pinf", "p-1", "p1e2", "median"] {
            let err = check(&format!(r#"{{"op":">","value":1,"reduce":"{bad}"}}"#)).unwrap_err();
            assert!(err.starts_with("reduce: unknown reduce"), "{bad}: {err}");
        }
        let err = check(r#"{"op":">","value":"high"}"#).unwrap_err();
        assert!(err.starts_with("value: invalid type"), "{err}");
        let err = check(r#"{"op":">"}"#).unwrap_err();
        assert!(err.contains("missing field `value`"), "{err}");
        let err = check(r#"{"op":">","value":1,"reduction":"max"}"#).unwrap_err();
        assert!(err.contains("unknown field `reduction`"), "{err}");
    }

    #[test]
    fn schema_is_json() {
        let info = testing::info::<Threshold>();
        assert_eq!(info.name, "threshold");
        let schema: serde_json::Value = serde_json::from_str(&info.config_schema).unwrap();
        assert_eq!(schema["required"], serde_json::json!(["op", "value"]));
    }
}
