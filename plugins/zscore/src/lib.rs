//! `zscore`: fires when the latest sample is far from the rest, in standard deviations.
//!
//! # Config
//!
//! ```json
//! { "threshold": 5.0, "min_samples": 10, "direction": "both" }
//! ```
//!
//! | field         | type    | default  | meaning |
//! |---------------|---------|----------|---------|
//! | `threshold`   | number  | `5.0`    | fire when `|z|` exceeds it (finite, > 0) |
//! | `min_samples` | integer | `10`     | fewest reference samples worth judging (≥ 2) |
//! | `direction`   | string  | `"both"` | `both`: `|z| > threshold`; `up`: `z > threshold`; `down`: `z < -threshold` |
//!
//! Unknown fields are an error.
//!
//! The default threshold is 5, not the textbook 3: a rule judges its latest sample
//! at every evaluation, and at `|z| > 3` Gaussian noise alone crosses the threshold
//! once in ~370 evaluations (72 pages a week at a 1-minute interval in the
//! detection-quality harness, BENCHMARKS.md). Measured there on a noisy seasonal
//! metric (1 sample a minute, 60-minute window, evaluated every minute, `for: 0`):
//! threshold 5 finds every 6-10 σ spike and 5-8 σ level shift at the first
//! evaluation with no false alert in 4 weeks; 4 pages 3 times a week, 4.5 about
//! once every two weeks.
//!
//! # Formula
//!
//! - `x`: the latest finite sample of the window (NaN and ±Inf samples are skipped);
//! - reference: the baseline's finite samples when the rule has a baseline (non-empty
//!   baseline span), otherwise the window's finite samples before `x`;
//! - `z = (x - mean) / s`, with `mean` and `s` the reference's mean and *sample*
//!   standard deviation (divide by n-1).
//!
//! Zero variance: `z = 0` when `x == mean`, else `z = ±1e6` (the sign of `x - mean`),
//! which fires in any direction that matches. More generally `z` is clamped to
//! `[-1e6, 1e6]`, so a verdict never carries NaN or ±Inf.
//!
//! # Verdict
//!
//! - score: `z`; summary like `z=4.1 over 20 window samples (latest=12, mean=10, stddev=0.5)`;
//! - annotations: `mean`, `stddev` (up to 6 significant digits) and `samples` (the
//!   reference count);
//! - no finite sample in the window: not firing, score 0, summary
//!   `no finite samples in window`;
//! - fewer than `min_samples` reference samples: not firing, score 0, summary like
//!   `3 baseline samples, need 10`, annotations `samples` only.

use klaxon_sdk::prelude::*;
use serde::Deserialize;

/// The z-score detector.
pub struct ZScore;

/// Largest |z| a verdict reports; also the score of any change against zero variance.
pub const MAX_ABS_Z: f64 = 1e6;

/// Parsed config; see the crate docs.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// |z| above which the detector fires.
    pub threshold: f64,
    /// Fewest reference samples worth judging.
    pub min_samples: u32,
    /// Which side of the mean counts.
    pub direction: Direction,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            threshold: 5.0,
            min_samples: 10,
            direction: Direction::Both,
        }
    }
}

/// Which deviations fire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Either side.
    #[default]
    Both,
    /// Only above the mean.
    Up,
    /// Only below the mean.
    Down,
}

const SCHEMA: &str = r#"{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "title": "zscore",
  "type": "object",
  "additionalProperties": false,
  "properties": {
    "threshold": {"type": "number", "exclusiveMinimum": 0, "default": 5.0, "description": "Fire when |z| exceeds this."},
    "min_samples": {"type": "integer", "minimum": 2, "default": 10, "description": "Fewest reference samples worth judging."},
    "direction": {"enum": ["both", "up", "down"], "default": "both", "description": "Which side of the mean fires."}
  }
}"#;

impl Detector for ZScore {
    type Config = Config;

    fn info() -> Info {
        Info::new(
            "zscore",
            env!("CARGO_PKG_VERSION"),
            "Fires when the latest sample lies more than `threshold` sample standard \
             deviations from the mean of the rest of the window (or of the baseline window \
             when the rule has one).",
        )
        .schema(SCHEMA)
    }

    fn check_config(cfg: &Config) -> Result<(), String> {
        if !(cfg.threshold.is_finite() && cfg.threshold > 0.0) {
            return Err(format!(
                "threshold: must be a finite number above 0, got {}",
                cfg.threshold
            ));
        }
        if cfg.min_samples < 2 {
            return Err(format!(
                "min_samples: must be at least 2 (a sample standard deviation needs two), got {}",
                cfg.min_samples
            ));
        }
        Ok(())
    }

    fn evaluate(cfg: &Config, series: &Series<'_>) -> Output {
        let Some((latest_index, latest)) = series.window.last_finite() else {
            return Verdict::ok(0.0, "no finite samples in window").into();
        };
        let (reference, source) = if series.baseline.is_empty() {
            (&series.window.values[..latest_index], "window")
        } else {
            (series.baseline.values, "baseline")
        };
        let moments = stats::moments(reference);
        let n = moments.map_or(0, |m| m.count);
        let Some(moments) = moments.filter(|_| n >= cfg.min_samples as usize) else {
            return Verdict::ok(
                0.0,
                format!("{n} {source} samples, need {}", cfg.min_samples),
            )
            .annotate("samples", n.to_string())
            .into();
        };
        let mean = moments.mean;
        let stddev = moments.sample_stddev().unwrap_or(0.0);
        let z = z_score(latest, mean, stddev);
        let firing = match cfg.direction {
            Direction::Both => z.abs() > cfg.threshold,
            Direction::Up => z > cfg.threshold,
            Direction::Down => z < -cfg.threshold,
        };
        let (mean_text, stddev_text) = (format_value(mean), format_value(stddev));
        let mut summary = String::with_capacity(96);
        summary.push_str("z=");
        push_value(&mut summary, z);
        summary.push_str(&format!(" over {n} {source} samples (latest="));
        push_value(&mut summary, latest);
        summary.push_str(", mean=");
        summary.push_str(&mean_text);
        summary.push_str(", stddev=");
        summary.push_str(&stddev_text);
        summary.push(')');
        Verdict::new(firing, z, summary)
            .annotate("mean", mean_text)
            .annotate("stddev", stddev_text)
            .annotate("samples", n.to_string())
            .into()
    }
}

/// `(x - mean) / stddev`, clamped to ±[`MAX_ABS_Z`], never NaN.
fn z_score(x: f64, mean: f64, stddev: f64) -> f64 {
    let deviation = x - mean;
    if deviation == 0.0 {
        return 0.0;
    }
    if stddev == 0.0 {
        return MAX_ABS_Z.copysign(deviation);
    }
    let z = deviation / stddev;
    if z.is_nan() {
        // Only when both overflowed to infinity: no meaningful distance.
        return 0.0;
    }
    z.clamp(-MAX_ABS_Z, MAX_ABS_Z)
}

klaxon_sdk::export_detector!(ZScore);

#[cfg(test)]
mod tests {
    use super::*;
    use klaxon_sdk::testing::{self, TestSeries};

    const NAN: f64 = f64::NAN;
    const INF: f64 = f64::INFINITY;

    fn judge(config: &str, series: TestSeries) -> Verdict {
        let mut out = testing::run_detector::<ZScore>(config, &[series]).expect("evaluate");
        out.remove(0).verdict
    }

    /// Reference 2,4,4,4,5,5,7,9: n = 8, mean 40/8 = 5, squared deviations
    /// 9+1+1+1+0+0+4+16 = 32, sample variance 32/7, s = sqrt(32/7) ≈ 2.13809.
    const REFERENCE: [f64; 8] = [2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0];

    fn window_then(latest: f64) -> TestSeries {
        let mut values = REFERENCE.to_vec();
        values.push(latest);
        TestSeries::from_values(&values)
    }

    #[test]
    fn latest_far_above_the_window_fires() {
        // z = (12 - 5) / 2.13809 = 3.27395 > 3
        let v = judge(r#"{"min_samples":8,"threshold":3}"#, window_then(12.0));
        assert!(v.firing);
        assert!((v.score - 7.0 / (32.0f64 / 7.0).sqrt()).abs() < 1e-12);
        assert!((v.score - 3.27395).abs() < 1e-5);
        assert_eq!(
            v.summary,
            "z=3.27395 over 8 window samples (latest=12, mean=5, stddev=2.13809)"
        );
        assert_eq!(v.annotation("mean"), Some("5"));
        assert_eq!(v.annotation("stddev"), Some("2.13809"));
        assert_eq!(v.annotation("samples"), Some("8"));
    }

    #[test]
    fn within_threshold_does_not_fire() {
        // z = (9 - 5) / 2.13809 = 1.87083 < 3
        let v = judge(r#"{"min_samples":8,"threshold":3}"#, window_then(9.0));
        assert!(!v.firing);
        assert!((v.score - 1.87083).abs() < 1e-5);
    }

    #[test]
    fn direction_selects_the_side() {
        // z = (-2 - 5) / 2.13809 = -3.27395: below the mean.
        let low = || window_then(-2.0);
        assert!(judge(r#"{"min_samples":8,"threshold":3}"#, low()).firing);
        assert!(
            judge(
                r#"{"min_samples":8,"threshold":3,"direction":"down"}"#,
                low()
            )
            .firing
        );
        assert!(!judge(r#"{"min_samples":8,"threshold":3,"direction":"up"}"#, low()).firing);
        assert!(
            judge(
                r#"{"min_samples":8,"threshold":3,"direction":"up"}"#,
                window_then(12.0)
            )
            .firing
        );
        assert!(
            !judge(
                r#"{"min_samples":8,"threshold":3,"direction":"down"}"#,
                window_then(12.0)
            )
            .firing
        );
    }

    #[test]
    fn threshold_is_configurable() {
        // z = 1.87083 > 1.5
        assert!(judge(r#"{"min_samples":8,"threshold":1.5}"#, window_then(9.0)).firing);
    }

    #[test]
    fn default_threshold_is_five() {
        // z = (15 - 5) / 2.13809 = 4.67707: above 3, below the default 5.
        assert!(!judge(r#"{"min_samples":8}"#, window_then(15.0)).firing);
        // z = (16 - 5) / 2.13809 = 5.14477 > 5.
        let v = judge(r#"{"min_samples":8}"#, window_then(16.0));
        assert!(v.firing);
        assert!((v.score - 11.0 / (32.0f64 / 7.0).sqrt()).abs() < 1e-12);
    }

    #[test]
    fn non_finite_samples_are_skipped() {
        // Same reference with NaN/Inf sprinkled in, and trailing non-finite samples:
        // the latest finite sample is 12, so z is unchanged at 3.27395.
        let values = [
            2.0, NAN, 4.0, 4.0, INF, 4.0, 5.0, 5.0, -INF, 7.0, 9.0, 12.0, NAN, INF,
        ];
        let v = judge(
            r#"{"min_samples":8,"threshold":3}"#,
            TestSeries::from_values(&values),
        );
        assert!(v.firing);
        assert!((v.score - 3.27395).abs() < 1e-5);
        assert_eq!(v.annotation("samples"), Some("8"));
    }

    #[test]
    fn baseline_replaces_the_window_as_reference() {
        // Reference = baseline 2,4,4,4,5,5,7,9 (mean 5, s 2.13809); the window's other
        // samples (100s) are ignored. z = (12 - 5) / 2.13809 = 3.27395.
        let series = TestSeries::from_values(&[100.0, 100.0, 12.0]).baseline(&REFERENCE);
        let v = judge(r#"{"min_samples":8,"threshold":3}"#, series);
        assert!(v.firing);
        assert!((v.score - 3.27395).abs() < 1e-5);
        assert!(
            v.summary.contains("over 8 baseline samples"),
            "{}",
            v.summary
        );
    }

    #[test]
    fn too_few_reference_samples() {
        // Default min_samples is 10; the window has 8 reference samples.
        let v = judge("{}", window_then(100.0));
        assert!(!v.firing);
        assert_eq!(v.score, 0.0);
        assert_eq!(v.summary, "8 window samples, need 10");
        // A baseline of NaNs holds no reference samples at all.
        let v = judge("{}", TestSeries::from_values(&[1.0]).baseline(&[NAN, NAN]));
        assert_eq!(v.summary, "0 baseline samples, need 10");
    }

    #[test]
    fn no_finite_sample() {
        for values in [&[][..], &[NAN, INF][..]] {
            let v = judge("{}", TestSeries::from_values(values));
            assert!(!v.firing);
            assert_eq!(v.score, 0.0);
            assert_eq!(v.summary, "no finite samples in window");
        }
    }

    #[test]
    fn zero_variance() {
        let flat = [3.0; 10];
        // Latest equals the mean: z = 0.
        let mut values = flat.to_vec();
        values.push(3.0);
        let v = judge("{}", TestSeries::from_values(&values));
        assert!(!v.firing);
        assert_eq!(v.score, 0.0);
        // Any change: z = ±1e6, firing.
        values.push(3.5);
        let v = judge("{}", TestSeries::from_values(&values));
        assert!(v.firing);
        assert_eq!(v.score, 1e6);
        let mut values = flat.to_vec();
        values.push(2.0);
        let v = judge(r#"{"direction":"up"}"#, TestSeries::from_values(&values));
        assert!(!v.firing);
        assert_eq!(v.score, -1e6);
    }

    #[test]
    fn scores_are_always_finite() {
        // Reference ±f64::MAX: mean 0, variance overflows to +Inf, so z = 0.
        let values = [f64::MAX, -f64::MAX, f64::MAX, -f64::MAX, 1.0];
        let v = judge(r#"{"min_samples":2}"#, TestSeries::from_values(&values));
        assert!(v.score.is_finite());
        // Tiny spread, huge deviation: clamped to 1e6.
        let values = [0.0, 1e-300, 0.0, 1e-300, 1e10];
        let v = judge(r#"{"min_samples":2}"#, TestSeries::from_values(&values));
        assert_eq!(v.score, 1e6);
    }

    #[test]
    fn config_checks() {
        let check = testing::check_detector_config::<ZScore>;
        assert!(check("{}").is_ok());
        assert!(check(r#"{"threshold":2.5,"min_samples":30,"direction":"down"}"#).is_ok());
        let err = check(r#"{"threshold":0}"#).unwrap_err();
        assert!(err.starts_with("threshold:"), "{err}");
        let err = check(r#"{"min_samples":1}"#).unwrap_err();
        assert!(err.starts_with("min_samples:"), "{err}");
        let err = check(r#"{"min_samples":-1}"#).unwrap_err();
        assert!(err.starts_with("min_samples:"), "{err}");
        let err = check(r#"{"direction":"sideways"}"#).unwrap_err();
        assert!(
            err.starts_with("direction: unknown variant `sideways`"),
            "{err}"
        );
        let err = check(r#"{"treshold":3}"#).unwrap_err();
        assert!(err.contains("unknown field `treshold`"), "{err}");
    }

    #[test]
    fn schema_is_json() {
        let info = testing::info::<ZScore>();
        let schema: serde_json::Value = serde_json::from_str(&info.config_schema).unwrap();
        assert_eq!(schema["properties"]["min_samples"]["default"], 10);
    }
}
