//! `null_rate`: fires when the share of null samples in the window rises above the
//! baseline share by more than `max_increase` — a feature feed that started sending
//! nulls.
//!
//! # What a null is
//!
//! A sample whose value is NaN. Push a missing value as `"NaN"` (`POST /api/v1/push`
//! accepts `"NaN"`, `"+Inf"`, `"-Inf"` as values; it refuses a JSON `null` with 400,
//! naming the field, so a client bug is loud rather than silently counted), or
//! `NaN` in Prometheus text. Prometheus *staleness markers* (the NaN with bits
//! `0x7ff0000000000002`, written when a scraped series or target disappears, and kept
//! bit-exact by remote write) are bookkeeping, not data: they count neither as null
//! nor as a sample. ±Inf samples are values, not nulls.
//!
//! # Config
//!
//! ```json
//! { "max_increase": 0.05, "baseline_rate": 0.0, "min_samples": 10 }
//! ```
//!
//! | field           | type    | default | meaning |
//! |-----------------|---------|---------|---------|
//! | `max_increase`  | number  | `0.05`  | fire when `rate - baseline > max_increase` (in [0, 1)); 0.05 = 5 percentage points |
//! | `baseline_rate` | number  | `0`     | the expected null share when the rule has no `baseline` (in [0, 1]) |
//! | `min_samples`   | integer | `10`    | fewest samples in the window (and in the baseline window) worth judging |
//!
//! Unknown fields are an error.
//!
//! # Choosing the window
//!
//! A few nulls happen anyway (a feed with 0.2 % NaN has one in 30 samples now and
//! then, two now and then in a 30-sample window: 6.7 % > 5 %). Give the window enough
//! samples that noise stays under `max_increase`: measured in the detection-quality
//! harness (BENCHMARKS.md) on a per-minute metric with 0.2 % background NaN, a 30-minute
//! window paged 2.5 times a week at the defaults; a 1-hour window evaluated every
//! 5 minutes (group `interval: 5m`) caught every 30-minute burst of 60 % nulls within
//! 2 evaluations with no false alert in 4 weeks. With a `baseline` window the
//! background share is subtracted, so noise rather than the usual rate is what the
//! window length must absorb.
//!
//! # Formula
//!
//! `rate = nulls / samples` over the window (staleness markers left out of both);
//! `baseline` = the same share over the rule's baseline window when it has one
//! (non-empty), otherwise `baseline_rate`; fires when `rate - baseline > max_increase`.
//!
//! # Verdict
//!
//! - score: `rate` (0–1); summary like `null rate 40% (8 of 20 samples) vs baseline 0% (of 20)`;
//! - annotations: `null_rate`, `baseline_null_rate`, `nulls`, `samples`, `max_increase`;
//! - fewer than `min_samples` samples in the window or the baseline window: not firing,
//!   score 0, summary says how many; the score is never NaN.

use klaxon_sdk::prelude::*;
use serde::Deserialize;

/// The null-rate detector.
pub struct NullRate;

/// Prometheus's staleness marker bit pattern.
pub const STALE_NAN_BITS: u64 = 0x7ff0_0000_0000_0002;

/// Parsed config; see the crate docs.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Allowed rise of the null share over the baseline.
    pub max_increase: f64,
    /// Null share expected without a baseline window.
    pub baseline_rate: f64,
    /// Fewest samples worth judging.
    pub min_samples: u32,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            max_increase: 0.05,
            baseline_rate: 0.0,
            min_samples: 10,
        }
    }
}

const SCHEMA: &str = r#"{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "title": "null_rate",
  "type": "object",
  "additionalProperties": false,
  "properties": {
    "max_increase": {"type": "number", "minimum": 0, "exclusiveMaximum": 1, "default": 0.05, "description": "Fire when the null share exceeds the baseline share by more than this."},
    "baseline_rate": {"type": "number", "minimum": 0, "maximum": 1, "default": 0, "description": "Expected null share when the rule has no baseline."},
    "min_samples": {"type": "integer", "minimum": 1, "default": 10, "description": "Fewest samples worth judging."}
  }
}"#;

/// `(nulls, samples)` of a window: NaN samples, staleness markers left out.
pub fn null_count(xs: &[f64]) -> (usize, usize) {
    xs.iter()
        .filter(|x| x.to_bits() != STALE_NAN_BITS)
        .fold((0, 0), |(n, s), x| (n + usize::from(x.is_nan()), s + 1))
}

fn percent(rate: f64) -> String {
    format!("{}%", format_value((rate * 1e4).round() / 100.0))
}

impl Detector for NullRate {
    type Config = Config;

    fn info() -> Info {
        Info::new(
            "null_rate",
            env!("CARGO_PKG_VERSION"),
            "Fires when the share of NaN (null) samples in the window exceeds the baseline \
             window's share (or `baseline_rate`) by more than `max_increase` (0.05); \
             staleness markers do not count.",
        )
        .schema(SCHEMA)
    }

    fn check_config(cfg: &Config) -> Result<(), String> {
        if !(0.0..1.0).contains(&cfg.max_increase) {
            return Err(format!(
                "max_increase: must be in [0, 1), got {}",
                cfg.max_increase
            ));
        }
        if !(0.0..=1.0).contains(&cfg.baseline_rate) {
            return Err(format!(
                "baseline_rate: must be in [0, 1], got {}",
                cfg.baseline_rate
            ));
        }
        if cfg.min_samples < 1 {
            return Err("min_samples: must be at least 1".into());
        }
        Ok(())
    }

    fn evaluate(cfg: &Config, series: &Series<'_>) -> Output {
        let (nulls, samples) = null_count(series.window.values);
        if samples < cfg.min_samples as usize {
            return Verdict::ok(
                0.0,
                format!("{samples} samples in the window, need {}", cfg.min_samples),
            )
            .annotate("samples", samples.to_string())
            .into();
        }
        let (baseline, baseline_text) = if series.baseline.is_empty() {
            (cfg.baseline_rate, "configured".to_owned())
        } else {
            let (b_nulls, b_samples) = null_count(series.baseline.values);
            if b_samples < cfg.min_samples as usize {
                return Verdict::ok(
                    0.0,
                    format!(
                        "{b_samples} samples in the baseline window, need {}",
                        cfg.min_samples
                    ),
                )
                .annotate("samples", samples.to_string())
                .into();
            }
            (
                b_nulls as f64 / b_samples as f64,
                format!("(of {b_samples})"),
            )
        };
        let rate = nulls as f64 / samples as f64;
        let summary = format!(
            "null rate {} ({nulls} of {samples} samples) vs baseline {} {baseline_text}",
            percent(rate),
            percent(baseline)
        );
        Verdict::new(rate - baseline > cfg.max_increase, rate, summary)
            .annotate("null_rate", format_value(rate))
            .annotate("baseline_null_rate", format_value(baseline))
            .annotate("nulls", nulls.to_string())
            .annotate("samples", samples.to_string())
            .annotate("max_increase", format_value(cfg.max_increase))
            .into()
    }
}

klaxon_sdk::export_detector!(NullRate);

#[cfg(test)]
mod tests {
    use super::*;
    use klaxon_sdk::testing::{self, TestSeries};

    const NAN: f64 = f64::NAN;

    fn run(config: &str, s: TestSeries) -> Verdict {
        testing::run_detector::<NullRate>(config, &[s])
            .expect("evaluate")
            .remove(0)
            .verdict
    }

    fn with_nulls(n: usize, nulls: usize) -> Vec<f64> {
        (0..n)
            .map(|i| if i < nulls { NAN } else { i as f64 })
            .collect()
    }

    #[test]
    fn rate_against_configured_baseline() {
        // 8 nulls in 20 samples: 0.4 - 0 > 0.05, fires.
        let v = run("{}", TestSeries::from_values(&with_nulls(20, 8)));
        assert!(v.firing);
        assert_eq!(v.score, 0.4);
        assert_eq!(
            v.summary,
            "null rate 40% (8 of 20 samples) vs baseline 0% configured"
        );
        assert_eq!(v.annotation("null_rate"), Some("0.4"));
        assert_eq!(v.annotation("nulls"), Some("8"));
        // 1 in 20 = 0.05, not more than 0.05 above 0.
        let v = run("{}", TestSeries::from_values(&with_nulls(20, 1)));
        assert!(!v.firing);
        // Expected 30 %: 40 % is only 10 pp above, under max_increase 0.2.
        let v = run(
            r#"{"baseline_rate":0.3,"max_increase":0.2}"#,
            TestSeries::from_values(&with_nulls(20, 8)),
        );
        assert!(!v.firing);
    }

    #[test]
    fn rate_against_baseline_window() {
        // Baseline 6 of 20 = 0.3; window 0.4: +0.1 > 0.05 fires; under 0.15 does not.
        let s = || TestSeries::from_values(&with_nulls(20, 8)).baseline(&with_nulls(20, 6));
        let v = run("{}", s());
        assert!(v.firing);
        assert_eq!(v.annotation("baseline_null_rate"), Some("0.3"));
        assert_eq!(
            v.summary,
            "null rate 40% (8 of 20 samples) vs baseline 30% (of 20)"
        );
        assert!(!run(r#"{"max_increase":0.15}"#, s()).firing);
    }

    #[test]
    fn staleness_markers_and_inf_are_not_nulls() {
        let stale = f64::from_bits(STALE_NAN_BITS);
        let mut values = with_nulls(20, 2);
        values.extend([stale, stale, f64::INFINITY]);
        // 2 nulls of 21 samples (the Inf counts, the markers do not).
        assert_eq!(null_count(&values), (2, 21));
    }

    #[test]
    fn too_few_samples_and_empty() {
        let v = run("{}", TestSeries::from_values(&[NAN; 5]));
        assert_eq!((v.firing, v.score), (false, 0.0));
        assert_eq!(v.summary, "5 samples in the window, need 10");
        let v = run("{}", TestSeries::from_values(&[]));
        assert_eq!(v.summary, "0 samples in the window, need 10");
        let v = run(
            "{}",
            TestSeries::from_values(&[1.0; 10]).baseline(&[1.0; 3]),
        );
        assert_eq!(v.summary, "3 samples in the baseline window, need 10");
        // All null: rate 1, finite.
        let v = run("{}", TestSeries::from_values(&[NAN; 10]));
        assert_eq!(v.score, 1.0);
        assert!(v.firing);
    }

    #[test]
    fn config_checks() {
        let check = testing::check_detector_config::<NullRate>;
        assert!(check("{}").is_ok());
        for (config, field) in [
            (r#"{"max_increase":1}"#, "max_increase:"),
            (r#"{"max_increase":-0.1}"#, "max_increase:"),
            (r#"{"baseline_rate":2}"#, "baseline_rate:"),
            (r#"{"min_samples":0}"#, "min_samples:"),
            (r#"{"threshold":1}"#, "unknown field `threshold`"),
        ] {
            let err = check(config).unwrap_err();
            assert!(err.contains(field), "{config}: {err}");
        }
    }
}
