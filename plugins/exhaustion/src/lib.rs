//! `exhaustion`: fires when a least-squares line through the window, extended
//! `horizon_seconds` past the evaluation time, reaches a limit: disk full, quota spent,
//! a queue at capacity within the next hours. The prediction is PromQL's
//! `predict_linear(window, horizon)`, computed the same way.
//!
//! # Config
//!
//! ```json
//! { "limit": 0.95, "horizon_seconds": 14400, "direction": "up", "min_samples": 5 }
//! ```
//!
//! | field             | type    | default  | meaning |
//! |-------------------|---------|----------|---------|
//! | `limit`           | number  | required | the value that must not be reached (finite) |
//! | `horizon_seconds` | number  | `14400`  | how far ahead to predict (4 h; finite, ≥ 0) |
//! | `direction`       | string  | `"up"`   | `up`: fire when the prediction is ≥ `limit` (usage growing to a cap); `down`: when it is ≤ `limit` (free space shrinking to 0) |
//! | `min_samples`     | integer | `5`      | fewest finite window samples worth a line (≥ 2) |
//!
//! Unknown fields are an error. Use a window long enough to average out noise (an hour
//! or more for a 4 h horizon), as with `predict_linear`.
//!
//! # Formula
//!
//! As Prometheus's `linearRegression` (with its Kahan-Neumaier summation): with
//! `x = (t - eval_time)/1000` seconds and `y` the finite samples (NaN and ±Inf are
//! skipped, where PromQL would propagate them),
//!
//! ```text
//! slope     = (Σxy - Σx·Σy/n) / (Σx² - (Σx)²/n)
//! intercept = Σy/n - slope·Σx/n            the line's value at the evaluation time
//! predicted = intercept + slope·horizon
//! ```
//!
//! and a constant window has slope 0 and its value as intercept. The time to the limit
//! is `(limit - intercept)/slope` when the line heads for it, 0 when the line is
//! already past it at the evaluation time. Predictions are clamped to ±1.8e308, never
//! NaN.
//!
//! # Verdict
//!
//! - score: `predicted`; summary like
//!   `predicted 0.97 in 14400s reaches limit 0.95 (now 0.8, slope 1.2e-5/s, limit in 12500s)`;
//! - annotations: `predicted`, `current` (the line at the evaluation time), `slope`
//!   (per second), `limit`, `horizon_seconds`, and `time_to_limit_seconds` when the
//!   line heads for the limit;
//! - fewer than `min_samples` finite samples: not firing, score 0, summary like
//!   `3 window samples, need 5`.

use klaxon_sdk::prelude::*;
use serde::Deserialize;

/// The exhaustion detector.
pub struct Exhaustion;

/// Which side of the limit is exhaustion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Toward {
    /// Growing to a cap: fire when the prediction is ≥ the limit.
    #[default]
    Up,
    /// Shrinking to a floor: fire when the prediction is ≤ the limit.
    Down,
}

/// Parsed config; see the crate docs.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The limit.
    pub limit: f64,
    /// Seconds ahead.
    #[serde(default = "default_horizon")]
    pub horizon_seconds: f64,
    /// Up to a cap or down to a floor.
    #[serde(default)]
    pub direction: Toward,
    /// Fewest samples.
    #[serde(default = "default_min_samples")]
    pub min_samples: u32,
}

fn default_horizon() -> f64 {
    14_400.0
}

fn default_min_samples() -> u32 {
    5
}

const SCHEMA: &str = r#"{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "title": "exhaustion",
  "type": "object",
  "additionalProperties": false,
  "required": ["limit"],
  "properties": {
    "limit": {"type": "number", "description": "The value that must not be reached."},
    "horizon_seconds": {"type": "number", "minimum": 0, "default": 14400, "description": "How far ahead to predict, in seconds."},
    "direction": {"enum": ["up", "down"], "default": "up", "description": "up: fire when the prediction reaches the limit from below; down: from above."},
    "min_samples": {"type": "integer", "minimum": 2, "default": 5, "description": "Fewest finite samples worth a line."}
  }
}"#;

/// Kahan-Neumaier summation step, as Prometheus's `kahanSumInc`.
fn kahan_inc(inc: f64, sum: f64, c: f64) -> (f64, f64) {
    let t = sum + inc;
    let c = if t.is_infinite() {
        0.0
    } else if sum.abs() >= inc.abs() {
        c + ((sum - t) + inc)
    } else {
        c + ((inc - t) + sum)
    };
    (t, c)
}

/// Prometheus's `linearRegression` over the finite samples of `window`, with the
/// intercept at `intercept_ms`: `(slope per second, intercept, samples)`; `None` with
/// fewer than two finite samples.
pub fn linear_regression(window: &Window<'_>, intercept_ms: i64) -> Option<(f64, f64, usize)> {
    let mut n = 0.0;
    let (mut sum_x, mut c_x) = (0.0, 0.0);
    let (mut sum_y, mut c_y) = (0.0, 0.0);
    let (mut sum_xy, mut c_xy) = (0.0, 0.0);
    let (mut sum_x2, mut c_x2) = (0.0, 0.0);
    let mut first_y = None;
    let mut const_y = true;
    for (t, y) in window.iter().filter(|(_, y)| y.is_finite()) {
        match first_y {
            None => first_y = Some(y),
            Some(f) if f != y => const_y = false,
            Some(_) => {}
        }
        n += 1.0;
        let x = (t - intercept_ms) as f64 / 1e3;
        (sum_x, c_x) = kahan_inc(x, sum_x, c_x);
        (sum_y, c_y) = kahan_inc(y, sum_y, c_y);
        (sum_xy, c_xy) = kahan_inc(x * y, sum_xy, c_xy);
        (sum_x2, c_x2) = kahan_inc(x * x, sum_x2, c_x2);
    }
    let first_y = first_y?;
    if n < 2.0 {
        return None;
    }
    if const_y {
        return Some((0.0, first_y, n as usize));
    }
    sum_x += c_x;
    sum_y += c_y;
    sum_xy += c_xy;
    sum_x2 += c_x2;
    let cov_xy = sum_xy - sum_x * sum_y / n;
    let var_x = sum_x2 - sum_x * sum_x / n;
    let slope = cov_xy / var_x;
    let intercept = sum_y / n - slope * sum_x / n;
    Some((slope, intercept, n as usize))
}

fn finite(x: f64) -> f64 {
    if x.is_nan() {
        0.0
    } else {
        x.clamp(-f64::MAX, f64::MAX)
    }
}

impl Detector for Exhaustion {
    type Config = Config;

    fn info() -> Info {
        Info::new(
            "exhaustion",
            env!("CARGO_PKG_VERSION"),
            "Fires when the least-squares line through the window (PromQL's \
             predict_linear) reaches `limit` within `horizon_seconds`.",
        )
        .schema(SCHEMA)
    }

    fn check_config(cfg: &Config) -> Result<(), String> {
        if !cfg.limit.is_finite() {
            return Err(format!("limit: must be a finite number, got {}", cfg.limit));
        }
        if !(cfg.horizon_seconds.is_finite() && cfg.horizon_seconds >= 0.0) {
            return Err(format!(
                "horizon_seconds: must be a finite number ≥ 0, got {}",
                cfg.horizon_seconds
            ));
        }
        if cfg.min_samples < 2 {
            return Err(format!(
                "min_samples: must be at least 2 (a line needs two points), got {}",
                cfg.min_samples
            ));
        }
        Ok(())
    }

    fn evaluate(cfg: &Config, series: &Series<'_>) -> Output {
        let fit = linear_regression(&series.window, series.eval_time_ms);
        let n = fit.map_or_else(|| stats::finite_count(series.window.values), |f| f.2);
        let Some((slope, intercept, _)) = fit.filter(|_| n >= cfg.min_samples as usize) else {
            return Verdict::ok(0.0, format!("{n} window samples, need {}", cfg.min_samples))
                .into();
        };
        let (slope, intercept) = (finite(slope), finite(intercept));
        let predicted = finite(intercept + slope * cfg.horizon_seconds);
        let firing = match cfg.direction {
            Toward::Up => predicted >= cfg.limit,
            Toward::Down => predicted <= cfg.limit,
        };
        let already = match cfg.direction {
            Toward::Up => intercept >= cfg.limit,
            Toward::Down => intercept <= cfg.limit,
        };
        let heading = match cfg.direction {
            Toward::Up => slope > 0.0,
            Toward::Down => slope < 0.0,
        };
        let time_to_limit = if already {
            Some(0.0)
        } else if heading {
            Some(finite((cfg.limit - intercept) / slope))
        } else {
            None
        };
        let mut summary = String::from("predicted ");
        push_value(&mut summary, predicted);
        summary.push_str(&format!(" in {}s ", format_value(cfg.horizon_seconds)));
        summary.push_str(if firing { "reaches" } else { "stays short of" });
        summary.push_str(" limit ");
        push_value(&mut summary, cfg.limit);
        summary.push_str(" (now ");
        push_value(&mut summary, intercept);
        summary.push_str(", slope ");
        push_value(&mut summary, slope);
        summary.push_str("/s");
        if let Some(t) = time_to_limit {
            summary.push_str(", limit in ");
            push_value(&mut summary, t);
            summary.push('s');
        }
        summary.push(')');
        let mut v = Verdict::new(firing, predicted, summary)
            .annotate("predicted", format_value(predicted))
            .annotate("current", format_value(intercept))
            .annotate("slope", format_value(slope))
            .annotate("limit", format_value(cfg.limit))
            .annotate("horizon_seconds", format_value(cfg.horizon_seconds));
        if let Some(t) = time_to_limit {
            v = v.annotate("time_to_limit_seconds", format_value(t));
        }
        v.into()
    }
}

klaxon_sdk::export_detector!(Exhaustion);

#[cfg(test)]
mod tests {
    use super::*;
    use klaxon_sdk::testing::{self, EVAL_TIME_MS, TestSeries};

    fn judge(config: &str, series: TestSeries) -> Verdict {
        testing::run_detector::<Exhaustion>(config, &[series])
            .unwrap()
            .remove(0)
            .verdict
    }

    /// Samples at EVAL - 60 s, -45, -30, -15, 0 (15 s apart).
    fn five(values: [f64; 5]) -> TestSeries {
        TestSeries::from_values(&values)
    }

    #[test]
    fn hand_computed_line() {
        // x = -60,-45,-30,-15,0; y = 10,11,13,14,16. Σx = -150, Σy = 64,
        // Σxy = -600-495-390-210+0 = -1695, Σx² = 3600+2025+900+225 = 6750, n = 5.
        // cov = -1695 - (-150·64)/5 = -1695 + 1920 = 225; var = 6750 - 22500/5 = 2250;
        // slope = 0.1/s; intercept = 64/5 - 0.1·(-150)/5 = 12.8 + 3 = 15.8.
        // predict_linear(…, 100) = 15.8 + 10 = 25.8, as Prometheus computes it for the
        // same samples (promtool 2.42: testdata/predict_linear_test.yml, which also
        // checks deriv = 0.1). Limit 25: reached; time to limit = (25 - 15.8)/0.1 = 92 s.
        let v = judge(
            r#"{"limit":25,"horizon_seconds":100}"#,
            five([10.0, 11.0, 13.0, 14.0, 16.0]),
        );
        assert!(v.firing);
        assert!((v.score - 25.8).abs() < 1e-9, "{}", v.score);
        assert_eq!(v.annotation("slope"), Some("0.1"));
        assert_eq!(v.annotation("current"), Some("15.8"));
        assert_eq!(v.annotation("time_to_limit_seconds"), Some("92"));
        assert_eq!(
            v.summary,
            "predicted 25.8 in 100s reaches limit 25 (now 15.8, slope 0.1/s, limit in 92s)"
        );
        // Limit 26 is not reached within 100 s (it is in 102 s).
        let v = judge(
            r#"{"limit":26,"horizon_seconds":100}"#,
            five([10.0, 11.0, 13.0, 14.0, 16.0]),
        );
        assert!(!v.firing);
        assert_eq!(v.annotation("time_to_limit_seconds"), Some("102"));
    }

    #[test]
    fn shrinking_free_space() {
        // Free bytes 1000, 900, 800, 700, 600 (slope -100/15 s); at +4 h far below 0.
        let config = r#"{"limit":0,"direction":"down"}"#;
        let v = judge(config, five([1000.0, 900.0, 800.0, 700.0, 600.0]));
        assert!(v.firing);
        // Time to 0: 600 / (100/15) = 90 s.
        assert_eq!(v.annotation("time_to_limit_seconds"), Some("90"));
        // Growing free space never reaches 0: no time to limit.
        let v = judge(config, five([600.0, 700.0, 800.0, 900.0, 1000.0]));
        assert!(!v.firing);
        assert_eq!(v.annotation("time_to_limit_seconds"), None);
        // Already at the limit: 0.
        let v = judge(config, five([0.0, 0.0, 0.0, 0.0, 0.0]));
        assert!(v.firing);
        assert_eq!(v.annotation("time_to_limit_seconds"), Some("0"));
    }

    #[test]
    fn intercept_is_at_the_evaluation_time() {
        // Same samples, evaluated 60 s after the newest: the line at eval time is
        // 15.8 + 6 = 21.8, and the prediction 100 s later 31.8.
        let out = testing::run_detector_at::<Exhaustion>(
            r#"{"limit":30,"horizon_seconds":100}"#,
            &[five([10.0, 11.0, 13.0, 14.0, 16.0])],
            EVAL_TIME_MS + 60_000,
        )
        .unwrap();
        let v = &out[0].verdict;
        assert!((v.score - 31.8).abs() < 1e-9, "{}", v.score);
        assert!(v.firing);
    }

    #[test]
    fn nan_and_short_windows() {
        // NaN/Inf skipped: the line through the finite samples is unchanged.
        let s = TestSeries::from_values(&[10.0, f64::NAN, 11.0, 13.0, f64::INFINITY, 14.0, 16.0]);
        let v = judge(r#"{"limit":1000,"min_samples":2}"#, s);
        assert!(v.score.is_finite());
        for values in [&[][..], &[f64::NAN; 4][..], &[1.0, 2.0][..]] {
            let v = judge(r#"{"limit":0}"#, TestSeries::from_values(values));
            assert_eq!((v.firing, v.score), (false, 0.0));
            assert!(v.summary.ends_with("need 5"), "{}", v.summary);
        }
        let v = judge(
            r#"{"limit":1e308}"#,
            five([f64::MAX, -f64::MAX, f64::MAX, -f64::MAX, f64::MAX]),
        );
        assert!(v.score.is_finite());
        assert!(
            v.annotations.iter().all(|(_, a)| a != "NaN"),
            "{:?}",
            v.annotations
        );
    }

    #[test]
    fn config_checks() {
        let check = testing::check_detector_config::<Exhaustion>;
        assert!(check(r#"{"limit":1}"#).is_ok());
        let err = check("{}").unwrap_err();
        assert!(err.contains("missing field `limit`"), "{err}");
        for (config, field) in [
            (r#"{"limit":1,"horizon_seconds":-1}"#, "horizon_seconds:"),
            (r#"{"limit":1,"min_samples":1}"#, "min_samples:"),
            (r#"{"limit":1,"direction":"both"}"#, "direction:"),
            (r#"{"limit":"full"}"#, "limit:"),
        ] {
            let err = check(config).unwrap_err();
            assert!(err.starts_with(field), "{config}: {err}");
        }
        assert!(
            check(r#"{"limit":1,"x":1}"#)
                .unwrap_err()
                .contains("unknown field `x`")
        );
    }
}
