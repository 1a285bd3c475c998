//! `wasserstein`: 1-D Wasserstein (earth mover's) distance between the current
//! window's samples and a reference sample (the rule's baseline window, or
//! `reference` in the config), as `scipy.stats.wasserstein_distance(window, reference)`.
//!
//! # Config
//!
//! ```json
//! { "threshold": 0.5, "min_samples": 20 }
//! ```
//!
//! | field         | type            | default  | meaning |
//! |---------------|-----------------|----------|---------|
//! | `threshold`   | number          | required | fire when the distance > threshold, in the metric's own unit (finite, > 0) |
//! | `min_samples` | integer         | `20`     | fewest finite samples in the window and in the reference (≥ 1) |
//! | `reference`   | array of number | none     | a stored reference sample; otherwise the baseline window |
//!
//! Unknown fields are an error. The distance is in the metric's unit (how far, on
//! average, the mass has to move), so there is no universal default: a common
//! choice is a fraction of the reference's standard deviation or of the metric's
//! range (e.g. 0.05 for a score in [0, 1]).
//!
//! # Formula
//!
//! `W1 = ∫ |F_window(x) - F_reference(x)| dx`, with `F` the empirical CDFs: over the
//! sorted pooled samples `z_0 ≤ … ≤ z_k`, `Σ_i |F_w(z_i) - F_r(z_i)| · (z_{i+1} - z_i)`.
//!
//! Histogram buckets are not supported (a bucket has no position for its mass
//! inside it); use `psi` or `jensen_shannon` for them.
//!
//! # NaN handling
//!
//! NaN and ±Inf samples are skipped. Fewer than `min_samples` finite samples on
//! either side (an empty window included), or no reference: not firing, score 0,
//! summary says why. Zero variance is fine: two constants give their difference.
//! A distance that overflows (samples near ±f64::MAX) is reported as f64::MAX, so the
//! score is never NaN or infinite.
//!
//! # Verdict
//!
//! - score: the distance; summary like `wasserstein=1.21 (150 window vs 200 reference samples)`;
//! - annotations: `wasserstein_distance`, `threshold`, `current_count`,
//!   `reference_count`, `reference` (`baseline` or `config`).

use klaxon_drift_common as drift;
use klaxon_sdk::prelude::*;
use serde::Deserialize;

/// The Wasserstein-distance detector.
pub struct Wasserstein;

/// Parsed config; see the crate docs.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Distance above which the detector fires.
    pub threshold: f64,
    /// Fewest finite samples per side.
    #[serde(default = "default_min_samples")]
    pub min_samples: u32,
    /// Stored reference sample.
    #[serde(default)]
    pub reference: Option<Vec<f64>>,
}

fn default_min_samples() -> u32 {
    20
}

const SCHEMA: &str = r#"{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "title": "wasserstein",
  "type": "object",
  "additionalProperties": false,
  "required": ["threshold"],
  "properties": {
    "threshold": {"type": "number", "exclusiveMinimum": 0, "description": "Fire when the distance exceeds this (the metric's unit)."},
    "min_samples": {"type": "integer", "minimum": 1, "default": 20, "description": "Fewest finite samples in the window and in the reference."},
    "reference": {"type": "array", "items": {"type": "number"}, "description": "Stored reference sample; otherwise the baseline window."}
  }
}"#;

/// `scipy.stats.wasserstein_distance(u, v)` for non-empty samples of finite values;
/// 0 when either is empty.
pub fn wasserstein_distance(u: &[f64], v: &[f64]) -> f64 {
    if u.is_empty() || v.is_empty() {
        return 0.0;
    }
    let mut u = u.to_vec();
    let mut v = v.to_vec();
    u.sort_by(f64::total_cmp);
    v.sort_by(f64::total_cmp);
    let mut all: Vec<f64> = u.iter().chain(&v).copied().collect();
    all.sort_by(f64::total_cmp);
    let (nu, nv) = (u.len() as f64, v.len() as f64);
    let mut total = 0.0;
    for w in all.windows(2) {
        let cu = u.partition_point(|&x| x <= w[0]) as f64 / nu;
        let cv = v.partition_point(|&x| x <= w[0]) as f64 / nv;
        total += (cu - cv).abs() * (w[1] - w[0]);
    }
    if total.is_finite() { total } else { f64::MAX }
}

impl Detector for Wasserstein {
    type Config = Config;

    fn info() -> Info {
        Info::new(
            "wasserstein",
            env!("CARGO_PKG_VERSION"),
            "1-D Wasserstein (earth mover's) distance between the window's samples and the \
             baseline window's or a stored reference, as scipy's wasserstein_distance; \
             fires above `threshold` (in the metric's unit).",
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
        if cfg.min_samples < 1 {
            return Err("min_samples: must be at least 1".into());
        }
        if let Some(r) = &cfg.reference
            && r.iter().any(|x| !x.is_finite())
        {
            return Err("reference: every value must be a finite number".into());
        }
        Ok(())
    }

    fn evaluate(cfg: &Config, series: &Series<'_>) -> Output {
        let current = drift::finite(series.window.values);
        let (reference, source) = match &cfg.reference {
            Some(r) => (r.clone(), "config"),
            None => (drift::finite(series.baseline.values), "baseline"),
        };
        if let Some(v) = drift::too_little(
            current.len() as f64,
            reference.len() as f64,
            cfg.min_samples as usize,
            source,
        ) {
            return v.into();
        }
        let w = wasserstein_distance(&current, &reference);
        let mut summary = String::from("wasserstein=");
        push_value(&mut summary, w);
        summary.push_str(&format!(
            " ({} window vs {} reference samples)",
            current.len(),
            reference.len()
        ));
        Verdict::new(w > cfg.threshold, w, summary)
            .annotate("wasserstein_distance", format_value(w))
            .annotate("threshold", format_value(cfg.threshold))
            .annotate("current_count", current.len().to_string())
            .annotate("reference_count", reference.len().to_string())
            .annotate("reference", source)
            .into()
    }
}

klaxon_sdk::export_detector!(Wasserstein);

#[cfg(test)]
mod tests {
    use super::*;
    use klaxon_sdk::testing::{self, TestSeries};

    use klaxon_drift_common::reference_data::{current as cur_data, reference as ref_data};

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-12 * b.abs().max(1.0)
    }

    fn run(config: &str, s: TestSeries) -> Verdict {
        testing::run_detector::<Wasserstein>(config, &[s])
            .expect("evaluate")
            .remove(0)
            .verdict
    }

    #[test]
    fn matches_scipy() {
        // reference_values.py "wasserstein": scipy.stats.wasserstein_distance.
        assert!(close(
            wasserstein_distance(&cur_data(150, 1.5), &ref_data(200)),
            1.2115
        ));
        assert!(close(
            wasserstein_distance(&cur_data(150, 0.0), &ref_data(200)),
            0.28850000000000003
        ));
        assert!(close(
            wasserstein_distance(&[0.0, 1.0, 3.0], &[5.0, 6.0, 8.0]),
            5.0
        ));
        assert!(close(
            wasserstein_distance(&[1.0, 2.0, 2.0, 7.0], &[3.0, 3.0]),
            2.0
        ));
    }

    #[test]
    fn verdict() {
        let v = run(
            r#"{"threshold":0.5}"#,
            TestSeries::from_values(&cur_data(150, 1.5)).baseline(&ref_data(200)),
        );
        assert!(v.firing);
        assert!(close(v.score, 1.2115));
        assert_eq!(v.annotation("wasserstein_distance"), Some("1.2115"));
        assert_eq!(v.annotation("threshold"), Some("0.5"));
        assert_eq!(
            v.summary,
            "wasserstein=1.2115 (150 window vs 200 reference samples)"
        );
        let v = run(
            r#"{"threshold":0.5}"#,
            TestSeries::from_values(&cur_data(150, 0.0)).baseline(&ref_data(200)),
        );
        assert!(!v.firing);
        // Stored reference.
        let reference = serde_json::to_string(&ref_data(200)).unwrap();
        let v = run(
            &format!(r#"{{"threshold":0.5,"reference":{reference}}}"#),
            TestSeries::from_values(&cur_data(150, 1.5)),
        );
        assert!(close(v.score, 1.2115));
        assert_eq!(v.annotation("reference"), Some("config"));
    }

    #[test]
    fn properties_and_edge_cases() {
        // Non-negative, symmetric, 0 for identical samples.
        for seed in 1..100u32 {
            let a: Vec<f64> = (0..(3 + seed % 7))
                .map(|i| f64::from((i * seed) % 11))
                .collect();
            let b: Vec<f64> = (0..(2 + seed % 5))
                .map(|i| f64::from((i * 3 + seed) % 7))
                .collect();
            let w = wasserstein_distance(&a, &b);
            assert!(w >= 0.0 && w.is_finite());
            assert!(close(w, wasserstein_distance(&b, &a)));
            assert_eq!(wasserstein_distance(&a, &a), 0.0);
        }
        // Zero variance: two constants differ by their gap.
        assert_eq!(wasserstein_distance(&[2.0; 30], &[3.5; 30]), 1.5);
        assert_eq!(wasserstein_distance(&[], &[1.0]), 0.0);
        assert_eq!(
            wasserstein_distance(&[f64::MAX, -f64::MAX], &[0.0]),
            f64::MAX
        );
        let v = run(
            r#"{"threshold":1}"#,
            TestSeries::from_values(&[]).baseline(&[1.0; 30]),
        );
        assert_eq!((v.firing, v.score), (false, 0.0));
        assert_eq!(v.summary, "0 observations in the window, need 20");
        let mut values = cur_data(150, 1.5);
        values.extend([f64::NAN, f64::NEG_INFINITY]);
        let v = run(
            r#"{"threshold":1}"#,
            TestSeries::from_values(&values).baseline(&ref_data(200)),
        );
        assert!(close(v.score, 1.2115));
    }

    #[test]
    fn config_checks() {
        let check = testing::check_detector_config::<Wasserstein>;
        assert!(check(r#"{"threshold":0.1}"#).is_ok());
        let err = check("{}").unwrap_err();
        assert!(err.contains("missing field `threshold`"), "{err}");
        for (config, field) in [
            (r#"{"threshold":0}"#, "threshold:"),
            (r#"{"threshold":1,"min_samples":0}"#, "min_samples:"),
            (r#"{"threshold":"1"}"#, "threshold: invalid type"),
        ] {
            let err = check(config).unwrap_err();
            assert!(err.starts_with(field), "{config}: {err}");
        }
    }
}
