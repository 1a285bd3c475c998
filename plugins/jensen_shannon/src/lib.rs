//! `jensen_shannon`: Jensen-Shannon distance (base 2) between the current window's
//! distribution and a reference (the rule's baseline window, or a reference sample
//! in the config), as `scipy.spatial.distance.jensenshannon(p, q, base=2)`.
//!
//! # Config
//!
//! ```json
//! { "threshold": 0.15, "bins": 10, "min_samples": 30, "input": "samples" }
//! ```
//!
//! | field         | type            | default     | meaning |
//! |---------------|-----------------|-------------|---------|
//! | `threshold`   | number          | `0.15`      | fire when the distance > threshold (in (0, 1]) |
//! | `bins`        | integer         | `10`        | bins at the reference's quantiles `k/bins` (≥ 2) |
//! | `edges`       | array of number | none        | fixed interior bin edges instead, strictly ascending |
//! | `min_samples` | integer         | `30`        | fewest observations in the window and in the reference |
//! | `input`       | string          | `"samples"` | `samples`: raw observations; `buckets`: Prometheus histogram buckets |
//! | `reference`   | array of number | none        | a stored reference sample (samples input); otherwise the baseline window |
//!
//! Unknown fields are an error. The distance lies in [0, 1]: 0 for identical
//! distributions, 1 for disjoint ones. As a rough guide 0.1 is a noticeable shift
//! and 0.2 a large one (it is about √(PSI/8) for small shifts: PSI 0.1 ≈ 0.11).
//!
//! The default 0.15 is above the distance sampling noise alone gives: two windows of
//! a few hundred samples from one distribution, 10 quantile bins, are ~0.06 apart and
//! now and then over 0.1 (at 0.1, a 1-hour window of 600 prediction scores against the
//! same hour yesterday, evaluated every 30 min, paged 18 times a week in the
//! detection-quality harness, BENCHMARKS.md). At 0.15 that rule catches every
//! 0.08-0.15 shift of the score mean within 2 evaluations, no false alert in 4 weeks
//! (0.12: 2.5 a week at a 20-minute interval). Smaller windows need a higher threshold.
//!
//! # Formula
//!
//! With `p`, `q` the window's and the reference's proportions per bin and
//! `m = (p + q) / 2`:
//!
//! `JS = sqrt( (KL(p‖m) + KL(q‖m)) / 2 / ln 2 )`, `KL(a‖b) = Σ a_i ln(a_i / b_i)`
//! (terms with `a_i = 0` count 0, as `scipy.special.rel_entr`). No epsilon is needed.
//!
//! Bins: as `psi` (reference quantiles, right-closed, or `edges`, or a histogram's
//! buckets with `"input": "buckets"`, one verdict per histogram whose alert carries
//! the histogram's labels without `le`).
//!
//! # NaN handling
//!
//! NaN and ±Inf samples are skipped. Fewer than `min_samples` observations on either
//! side, or no reference at all: not firing, score 0, summary says why. Rounding can
//! make the divergence a hair below 0; it is clamped to 0, so the score is never NaN.
//!
//! # Verdict
//!
//! - score: the distance; summary like `js=0.255 over 10 bins (150 window vs 200 reference observations)`;
//! - annotations: `js_distance`, `threshold`, `bins`, `current_count`, `reference_count`,
//!   `reference` (`baseline` or `config`).

use klaxon_drift_common::{self as drift, Binned, Binning, Input};
use klaxon_sdk::prelude::*;
use serde::Deserialize;

/// The Jensen-Shannon detector.
pub struct JensenShannon;

/// Parsed config; see the crate docs.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Distance above which the detector fires.
    pub threshold: f64,
    /// Number of reference-quantile bins.
    pub bins: u32,
    /// Fixed interior bin edges.
    pub edges: Option<Vec<f64>>,
    /// Fewest observations worth judging.
    pub min_samples: u32,
    /// Samples or histogram buckets.
    pub input: Input,
    /// Stored reference sample.
    pub reference: Option<Vec<f64>>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            threshold: 0.15,
            bins: 10,
            edges: None,
            min_samples: 30,
            input: Input::Samples,
            reference: None,
        }
    }
}

impl Config {
    fn binning(&self) -> Binning<'_> {
        Binning {
            input: self.input,
            bins: self.bins as usize,
            edges: self.edges.as_deref(),
            reference: self.reference.as_deref(),
            min_samples: self.min_samples as usize,
        }
    }
}

const SCHEMA: &str = r#"{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "title": "jensen_shannon",
  "type": "object",
  "additionalProperties": false,
  "properties": {
    "threshold": {"type": "number", "exclusiveMinimum": 0, "maximum": 1, "default": 0.15, "description": "Fire when the Jensen-Shannon distance (base 2) exceeds this."},
    "bins": {"type": "integer", "minimum": 2, "default": 10, "description": "Bins at the reference's quantiles."},
    "edges": {"type": "array", "items": {"type": "number"}, "description": "Fixed interior bin edges, strictly ascending."},
    "min_samples": {"type": "integer", "minimum": 1, "default": 30, "description": "Fewest observations in the window and in the reference."},
    "input": {"enum": ["samples", "buckets"], "default": "samples", "description": "Raw observations or Prometheus histogram buckets."},
    "reference": {"type": "array", "items": {"type": "number"}, "description": "Stored reference sample; otherwise the baseline window."}
  }
}"#;

/// Jensen-Shannon distance, base 2, between the proportions of two count vectors,
/// as `scipy.spatial.distance.jensenshannon(current, reference, base=2)`. 0 when
/// either side has no observations.
pub fn js_distance(current: &[f64], reference: &[f64]) -> f64 {
    if current.iter().sum::<f64>() <= 0.0 || reference.iter().sum::<f64>() <= 0.0 {
        return 0.0;
    }
    let (p, q) = (drift::proportions(current), drift::proportions(reference));
    let rel_entr = |a: f64, b: f64| if a > 0.0 { a * (a / b).ln() } else { 0.0 };
    let divergence: f64 = p
        .iter()
        .zip(&q)
        .map(|(&p, &q)| {
            let m = (p + q) / 2.0;
            rel_entr(p, m) + rel_entr(q, m)
        })
        .sum::<f64>()
        / 2.0
        / std::f64::consts::LN_2;
    divergence.max(0.0).sqrt()
}

impl Detector for JensenShannon {
    type Config = Config;

    fn info() -> Info {
        Info::new(
            "jensen_shannon",
            env!("CARGO_PKG_VERSION"),
            "Jensen-Shannon distance (base 2, as scipy's jensenshannon) between the \
             window's distribution and the baseline window's or a stored reference's, \
             binned at the reference's quantiles (or fixed edges, or a histogram's \
             buckets); fires above `threshold` (0.15).",
        )
        .schema(SCHEMA)
    }

    fn check_config(cfg: &Config) -> Result<(), String> {
        if !(cfg.threshold > 0.0 && cfg.threshold <= 1.0) {
            return Err(format!(
                "threshold: must be above 0 and at most 1 (the distance's range), got {}",
                cfg.threshold
            ));
        }
        drift::check_binning(&cfg.binning())
    }

    fn evaluate(cfg: &Config, series: &Series<'_>) -> Output {
        drift::judge_series(&cfg.binning(), series, &|b: &Binned| judge(cfg, b)).into()
    }

    fn evaluate_batch(cfg: &Config, batch: &Batch<'_>) -> Result<Vec<Output>, String> {
        Ok(drift::judge_binned(&cfg.binning(), batch, |b| {
            judge(cfg, b)
        }))
    }
}

fn judge(cfg: &Config, b: &Binned) -> Verdict {
    let score = js_distance(&b.current, &b.reference);
    Verdict::new(score > cfg.threshold, score, b.summary("js", score))
        .annotate("js_distance", format_value(score))
        .annotate("threshold", format_value(cfg.threshold))
}

klaxon_sdk::export_detector!(JensenShannon);

#[cfg(test)]
mod tests {
    use super::*;
    use klaxon_sdk::testing::{self, TestSeries};

    use klaxon_drift_common::reference_data::{current as cur_data, reference as ref_data};

    fn judge_one(config: &str, series: TestSeries) -> Verdict {
        let mut out = testing::run_detector::<JensenShannon>(config, &[series]).expect("evaluate");
        out.remove(0).verdict
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-12 * b.abs().max(1.0)
    }

    #[test]
    fn matches_scipy_on_quantile_bins() {
        // reference_values.py "jensen_shannon": shift=1.5 → 0.2552595561840516,
        // shift=0.0 → 0.077992211117626 (scipy.spatial.distance.jensenshannon, base=2).
        let v = judge_one(
            "{}",
            TestSeries::from_values(&cur_data(150, 1.5)).baseline(&ref_data(200)),
        );
        assert!(close(v.score, 0.2552595561840516), "{}", v.score);
        assert!(v.firing);
        assert_eq!(
            v.annotation("js_distance"),
            Some(format_value(v.score).as_str())
        );
        assert_eq!(v.annotation("threshold"), Some("0.15"));
        assert!(
            v.summary.starts_with("js=0.25526 over 10 bins"),
            "{}",
            v.summary
        );
        let v = judge_one(
            "{}",
            TestSeries::from_values(&cur_data(150, 0.0)).baseline(&ref_data(200)),
        );
        assert!(close(v.score, 0.077992211117626), "{}", v.score);
        assert!(!v.firing);
    }

    #[test]
    fn matches_scipy_on_counts() {
        // reference_values.py: buckets js → 0.28288465335554863; disjoint → 1.0.
        assert!(close(
            js_distance(
                &[10.0, 30.0, 40.0, 15.0, 5.0],
                &[30.0, 40.0, 20.0, 8.0, 2.0]
            ),
            0.28288465335554863
        ));
        assert!(close(js_distance(&[1.0, 0.0], &[0.0, 1.0]), 1.0));
    }

    #[test]
    fn histogram_buckets() {
        let les = ["0.1", "0.25", "0.5", "1", "+Inf"];
        let (cur, base) = ([10.0, 30.0, 40.0, 15.0, 5.0], [30.0, 40.0, 20.0, 8.0, 2.0]);
        let mut cum = (0.0, 0.0);
        let series: Vec<TestSeries> = les
            .iter()
            .zip(cur.iter().zip(&base))
            .map(|(le, (c, b))| {
                cum = (cum.0 + c, cum.1 + b);
                TestSeries::from_values(&[0.0, cum.0])
                    .labels(&[("__name__", "s_bucket"), ("le", le)])
                    .baseline(&[0.0, cum.1])
            })
            .collect();
        let out = testing::run_detector::<JensenShannon>(r#"{"input":"buckets"}"#, &series)
            .expect("evaluate");
        for o in &out {
            assert!(close(o.verdict.score, 0.28288465335554863));
            assert_eq!(o.verdict.annotation("__group_without__"), Some("le"));
        }
    }

    #[test]
    fn properties() {
        // In [0, 1], symmetric, 0 for identical inputs, never NaN.
        for seed in 1..200u32 {
            let a: Vec<f64> = (0..8)
                .map(|i| f64::from((i * seed + seed * seed) % 13))
                .collect();
            let b: Vec<f64> = (0..8).map(|i| f64::from((i * 7 + seed) % 11)).collect();
            let d = js_distance(&a, &b);
            assert!((0.0..=1.0).contains(&d), "seed {seed}: {d}");
            assert!(close(d, js_distance(&b, &a)));
            assert_eq!(js_distance(&a, &a), 0.0);
        }
        let flat = judge_one(
            "{}",
            TestSeries::from_values(&[2.0; 40]).baseline(&[2.0; 40]),
        );
        assert_eq!(flat.score, 0.0);
        let v = judge_one("{}", TestSeries::from_values(&[]).baseline(&ref_data(40)));
        assert_eq!((v.firing, v.score), (false, 0.0));
        assert_eq!(v.summary, "0 observations in the window, need 30");
        let mut values = cur_data(150, 1.5);
        values.push(f64::NAN);
        let v = judge_one(
            "{}",
            TestSeries::from_values(&values).baseline(&ref_data(200)),
        );
        assert!(close(v.score, 0.2552595561840516));
    }

    #[test]
    fn config_checks() {
        let check = testing::check_detector_config::<JensenShannon>;
        assert!(check("{}").is_ok());
        for (config, field) in [
            (r#"{"threshold":0}"#, "threshold:"),
            (r#"{"threshold":1.5}"#, "threshold:"),
            (r#"{"bins":1}"#, "bins:"),
            (r#"{"edges":[1,1]}"#, "edges:"),
            (r#"{"input":"buckets","reference":[1]}"#, "reference:"),
            (r#"{"epsilon":0.1}"#, "unknown field `epsilon`"),
        ] {
            let err = check(config).unwrap_err();
            assert!(err.contains(field), "{config}: {err}");
        }
    }
}
