//! `mad`: fires when the latest sample is far from the median of the rest, in robust
//! standard deviations (median absolute deviation).
//!
//! # Config
//!
//! ```json
//! { "threshold": 5.5, "min_samples": 10, "direction": "both" }
//! ```
//!
//! | field         | type    | default  | meaning |
//! |---------------|---------|----------|---------|
//! | `threshold`   | number  | `5.5`    | fire when the robust z crosses it (finite, > 0) |
//! | `min_samples` | integer | `10`     | fewest reference samples worth judging (≥ 3) |
//! | `direction`   | string  | `"both"` | `both`: `|z| > threshold`; `up`: `z > threshold`; `down`: `z < -threshold` |
//!
//! Unknown fields are an error. 3.5 is Iglewicz & Hoaglin's recommended cut-off for
//! labelling outliers in a data set; a rule, though, judges its latest sample at every
//! evaluation, and at 3.5 noise alone pages 37 times a week at a 1-minute interval in
//! the detection-quality harness (BENCHMARKS.md). The default 5.5 was measured there
//! (noisy seasonal metric, 1 sample a minute, 60-minute window, evaluated every
//! minute, `for: 0`; grid 3.5, 5, 5.5, 6, 7, checked on a second seed set): every
//! 6-10 σ spike and ≥ 95 % of 5-8 σ level shifts found at the first evaluation, at
//! most one false alert in 4 weeks. 5 pages about 3 times a month; 7 misses 15-25 %
//! of the shifts.
//!
//! # Formula
//!
//! - `x`: the latest finite sample of the window (NaN and ±Inf samples are skipped
//!   everywhere);
//! - reference: the baseline's finite samples when the rule has a baseline, otherwise
//!   the window's finite samples before `x`;
//! - `m = median(reference)`, `MAD = median(|r - m|)` (medians as numpy's, the mean of
//!   the two middle values for an even count);
//! - `scale = 1.4826 · MAD` (R's `mad()` constant, ≈ 1/Φ⁻¹(3/4), so that `scale`
//!   estimates σ for normal data);
//! - `z = (x - m) / scale`.
//!
//! When more than half the reference is one value, MAD is 0. Then, as IBM SPSS
//! Modeler's modified z does, the scale falls back to `1.253314 · meanAD` with
//! `meanAD = mean(|r - m|)` (1.253314 ≈ √(π/2) makes it estimate σ too); the
//! annotation `scale_from` says `meanad` instead of `mad`. When that is 0 as well
//! (a constant reference), `z = 0` if `x == m`, else `±1e6` (the sign of `x - m`).
//! `z` is always clamped to ±1e6: a verdict never carries NaN or ±Inf.
//!
//! # Verdict
//!
//! - score: `z`; summary like `robust z=5.4 over 20 window samples (latest=12, median=10, mad=0.25)`;
//! - annotations: `median`, `mad`, `scale` (the σ estimate), `scale_from`
//!   (`mad`/`meanad`), `samples`;
//! - no finite sample in the window: not firing, score 0, `no finite samples in window`;
//! - fewer than `min_samples` reference samples: not firing, score 0, summary like
//!   `3 window samples, need 10`, annotation `samples` only.
//!
//! # Measured
//!
//! On iid N(0, 1) samples, a rule window of 240 samples judged every 4 samples
//! (15 s samples, 1 min evaluations), 40 000 samples (≈ a week), 5 seeds, with the
//! previous default threshold 3.5: 7.4 false alert episodes per week; a 3σ level shift
//! is flagged at the first evaluation after it in 4 of 5 runs. Single-sample outlier
//! tests page on tails, hence the default 5.5.

use klaxon_anomaly_common::{Direction, scaled};
use klaxon_sdk::prelude::*;
use serde::Deserialize;

/// The MAD detector.
pub struct Mad;

/// Consistency constant: `scale = CONSISTENCY · MAD` estimates σ for normal data.
pub const CONSISTENCY: f64 = 1.4826;

/// Consistency constant of the mean absolute deviation fallback (√(π/2)).
pub const MEAN_AD_CONSISTENCY: f64 = 1.253314;

/// Parsed config; see the crate docs.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Robust |z| above which the detector fires.
    pub threshold: f64,
    /// Fewest reference samples worth judging.
    pub min_samples: u32,
    /// Which side of the median counts.
    pub direction: Direction,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            threshold: 5.5,
            min_samples: 10,
            direction: Direction::Both,
        }
    }
}

const SCHEMA: &str = r#"{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "title": "mad",
  "type": "object",
  "additionalProperties": false,
  "properties": {
    "threshold": {"type": "number", "exclusiveMinimum": 0, "default": 5.5, "description": "Fire when the robust |z| exceeds this."},
    "min_samples": {"type": "integer", "minimum": 3, "default": 10, "description": "Fewest reference samples worth judging."},
    "direction": {"enum": ["both", "up", "down"], "default": "both", "description": "Which side of the median fires."}
  }
}"#;

/// Median of the finite values of `xs` (sorted in place); `None` when empty.
fn median_sorted(xs: &mut [f64]) -> Option<f64> {
    xs.sort_unstable_by(f64::total_cmp);
    let n = xs.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(xs[n / 2]),
        _ => Some(xs[n / 2 - 1] / 2.0 + xs[n / 2] / 2.0),
    }
}

/// Median, MAD and the mean absolute deviation around the median.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Spread {
    /// Median of the reference.
    pub median: f64,
    /// Median absolute deviation from it (unscaled).
    pub mad: f64,
    /// Mean absolute deviation from the median.
    pub mean_ad: f64,
    /// Number of finite reference samples.
    pub count: usize,
}

/// The spread of the finite samples of `reference`; `None` when there are none.
pub fn spread(reference: &[f64]) -> Option<Spread> {
    let mut values: Vec<f64> = reference
        .iter()
        .copied()
        .filter(|x| x.is_finite())
        .collect();
    let count = values.len();
    let median = median_sorted(&mut values)?;
    for v in &mut values {
        *v = (*v - median).abs();
    }
    let mean_ad = stats::mean(&values).unwrap_or(0.0);
    let mad = median_sorted(&mut values)?;
    Some(Spread {
        median,
        mad,
        mean_ad: if mean_ad.is_finite() { mean_ad } else { 0.0 },
        count,
    })
}

impl Detector for Mad {
    type Config = Config;

    fn info() -> Info {
        Info::new(
            "mad",
            env!("CARGO_PKG_VERSION"),
            "Fires when the latest sample lies more than `threshold` robust standard \
             deviations (1.4826 × median absolute deviation) from the median of the rest \
             of the window (or of the baseline window when the rule has one).",
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
        if cfg.min_samples < 3 {
            return Err(format!(
                "min_samples: must be at least 3 (a median absolute deviation of fewer says nothing), got {}",
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
        let spread = spread(reference);
        let n = spread.map_or(0, |s| s.count);
        let Some(spread) = spread.filter(|_| n >= cfg.min_samples as usize) else {
            return Verdict::ok(
                0.0,
                format!("{n} {source} samples, need {}", cfg.min_samples),
            )
            .annotate("samples", n.to_string())
            .into();
        };
        let (scale, scale_from) = if spread.mad > 0.0 {
            (CONSISTENCY * spread.mad, "mad")
        } else {
            (MEAN_AD_CONSISTENCY * spread.mean_ad, "meanad")
        };
        let z = scaled(latest - spread.median, scale);
        let firing = cfg.direction.exceeds(z, cfg.threshold);
        let median = format_value(spread.median);
        let mad = format_value(spread.mad);
        let mut summary = String::with_capacity(96);
        summary.push_str("robust z=");
        push_value(&mut summary, z);
        summary.push_str(&format!(" over {n} {source} samples (latest="));
        push_value(&mut summary, latest);
        summary.push_str(&format!(", median={median}, mad={mad})"));
        Verdict::new(firing, z, summary)
            .annotate("median", median)
            .annotate("mad", mad)
            .annotate("scale", format_value(scale))
            .annotate("scale_from", scale_from)
            .annotate("samples", n.to_string())
            .into()
    }
}

klaxon_sdk::export_detector!(Mad);

#[cfg(test)]
mod tests {
    use super::*;
    use klaxon_sdk::testing::{self, TestSeries};

    const NAN: f64 = f64::NAN;
    const INF: f64 = f64::INFINITY;

    /// Iglewicz & Hoaglin's cut-off, which the hand-computed vectors below use.
    const IGLEWICZ: &str = r#"{"threshold":3.5}"#;

    fn judge(config: &str, series: TestSeries) -> Verdict {
        let mut out = testing::run_detector::<Mad>(config, &[series]).expect("evaluate");
        out.remove(0).verdict
    }

    /// Reference 1,2,3,4,5,6,7,8,9,100 (by hand; numpy 2.4 `median` and scipy 1.17
    /// `median_abs_deviation` give 5.5 and 2.5, and z = 3.9120464049642525): median (5+6)/2 = 5.5; absolute deviations
    /// 4.5,3.5,2.5,1.5,0.5,0.5,1.5,2.5,3.5,94.5 → sorted median (2.5+2.5)/2 = 2.5;
    /// scale = 1.4826·2.5 = 3.7065.
    const REFERENCE: [f64; 10] = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 100.0];

    fn window_then(latest: f64) -> TestSeries {
        let mut values = REFERENCE.to_vec();
        values.push(latest);
        TestSeries::from_values(&values)
    }

    #[test]
    fn outlier_fires_despite_an_outlier_in_the_reference() {
        // z = (20 - 5.5) / 3.7065 = 3.91205...: the 100 in the reference does not
        // mask it (a plain z-score's stddev would be ~30).
        let v = judge(IGLEWICZ, window_then(20.0));
        assert!(v.firing);
        assert!((v.score - 14.5 / 3.7065).abs() < 1e-12);
        assert_eq!(
            v.summary,
            "robust z=3.91205 over 10 window samples (latest=20, median=5.5, mad=2.5)"
        );
        assert_eq!(v.annotation("median"), Some("5.5"));
        assert_eq!(v.annotation("mad"), Some("2.5"));
        assert_eq!(v.annotation("scale"), Some("3.7065"));
        assert_eq!(v.annotation("scale_from"), Some("mad"));
        assert_eq!(v.annotation("samples"), Some("10"));
    }

    #[test]
    fn inside_threshold_and_directions() {
        // z = (15 - 5.5) / 3.7065 = 2.56307 < 3.5
        let v = judge(IGLEWICZ, window_then(15.0));
        assert!(!v.firing);
        assert!((v.score - 2.56307).abs() < 1e-5);
        assert!(judge(r#"{"threshold":2.5}"#, window_then(15.0)).firing);
        // z = (-10 - 5.5) / 3.7065 = -4.18184
        assert!(judge(IGLEWICZ, window_then(-10.0)).firing);
        assert!(
            judge(
                r#"{"threshold":3.5,"direction":"down"}"#,
                window_then(-10.0)
            )
            .firing
        );
        assert!(!judge(r#"{"threshold":3.5,"direction":"up"}"#, window_then(-10.0)).firing);
        assert!(!judge(r#"{"threshold":3.5,"direction":"down"}"#, window_then(20.0)).firing);
    }

    #[test]
    fn default_threshold_is_five_and_a_half() {
        // z = (25 - 5.5) / 3.7065 = 5.26102 ≤ 5.5: quiet;
        // z = (27 - 5.5) / 3.7065 = 5.80062 > 5.5: fires.
        let v = judge("{}", window_then(25.0));
        assert!(!v.firing);
        assert!((v.score - 19.5 / 3.7065).abs() < 1e-12);
        assert!(judge("{}", window_then(27.0)).firing);
    }

    #[test]
    fn baseline_is_the_reference_when_present() {
        let series = TestSeries::from_values(&[50.0, 50.0, 20.0]).baseline(&REFERENCE);
        let v = judge(IGLEWICZ, series);
        assert!((v.score - 14.5 / 3.7065).abs() < 1e-12);
        assert!(
            v.summary.contains("over 10 baseline samples"),
            "{}",
            v.summary
        );
    }

    #[test]
    fn zero_mad_falls_back_to_mean_absolute_deviation() {
        // Reference 6×7 + 1,2,3,13 (10 samples): median 7 (middle of sorted
        // 1,2,3,7,7,7,7,7,7,13 is (7+7)/2), absolute deviations 0×6,6,5,4,6 →
        // MAD = median(0,0,0,0,0,0,4,5,6,6) = 0; meanAD = 21/10 = 2.1;
        // scale = 1.253314·2.1 = 2.6319594; z = (20-7)/2.6319594 = 4.93929...
        let values = [7.0, 7.0, 7.0, 7.0, 7.0, 7.0, 1.0, 2.0, 3.0, 13.0, 20.0];
        let v = judge(IGLEWICZ, TestSeries::from_values(&values));
        assert_eq!(v.annotation("scale_from"), Some("meanad"));
        assert!((v.score - 13.0 / (1.253314 * 2.1)).abs() < 1e-12);
        assert!(v.firing);
    }

    #[test]
    fn constant_reference_never_gives_nan() {
        let mut values = vec![3.0; 10];
        values.push(3.0);
        let v = judge(IGLEWICZ, TestSeries::from_values(&values));
        assert_eq!((v.firing, v.score), (false, 0.0));
        values.push(3.1);
        let v = judge(IGLEWICZ, TestSeries::from_values(&values));
        assert_eq!((v.firing, v.score), (true, 1e6));
    }

    #[test]
    fn nan_and_inf_are_skipped() {
        let values = [
            1.0, NAN, 2.0, 3.0, INF, 4.0, 5.0, 6.0, 7.0, -INF, 8.0, 9.0, 100.0, 20.0, NAN,
        ];
        let v = judge(IGLEWICZ, TestSeries::from_values(&values));
        assert!((v.score - 14.5 / 3.7065).abs() < 1e-12);
        assert_eq!(v.annotation("samples"), Some("10"));
    }

    #[test]
    fn empty_and_short_windows() {
        for values in [&[][..], &[NAN, INF, NAN][..]] {
            let v = judge(IGLEWICZ, TestSeries::from_values(values));
            assert_eq!((v.firing, v.score), (false, 0.0));
            assert_eq!(v.summary, "no finite samples in window");
        }
        let v = judge(IGLEWICZ, TestSeries::from_values(&[1.0, 2.0, 90.0]));
        assert_eq!((v.firing, v.score), (false, 0.0));
        assert_eq!(v.summary, "2 window samples, need 10");
    }

    #[test]
    fn scores_are_always_finite() {
        // Deterministic pseudo-random windows with extremes: never NaN, never infinite.
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        for len in 0..40 {
            let values: Vec<f64> = (0..len)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    match seed % 7 {
                        0 => NAN,
                        1 => f64::MAX,
                        2 => -f64::MAX,
                        3 => INF,
                        _ => (seed % 1000) as f64,
                    }
                })
                .collect();
            let v = judge(r#"{"min_samples":3}"#, TestSeries::from_values(&values));
            assert!(v.score.is_finite(), "{values:?}");
        }
    }

    #[test]
    fn config_checks() {
        let check = testing::check_detector_config::<Mad>;
        assert!(check("{}").is_ok());
        assert!(check(r#"{"threshold":3,"min_samples":30,"direction":"up"}"#).is_ok());
        let err = check(r#"{"threshold":-1}"#).unwrap_err();
        assert!(err.starts_with("threshold:"), "{err}");
        let err = check(r#"{"min_samples":2}"#).unwrap_err();
        assert!(err.starts_with("min_samples:"), "{err}");
        let err = check(r#"{"direction":"left"}"#).unwrap_err();
        assert!(err.starts_with("direction:"), "{err}");
        let err = check(r#"{"k":1}"#).unwrap_err();
        assert!(err.contains("unknown field `k`"), "{err}");
    }

    #[test]
    fn schema_is_json() {
        let info = testing::info::<Mad>();
        let schema: serde_json::Value = serde_json::from_str(&info.config_schema).unwrap();
        assert_eq!(schema["properties"]["threshold"]["default"], 5.5);
    }
}
