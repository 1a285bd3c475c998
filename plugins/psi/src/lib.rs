//! `psi`: Population Stability Index of the current window against a reference
//! distribution (the rule's baseline window, or a reference sample in the config).
//!
//! # Config
//!
//! ```json
//! { "threshold": 0.2, "bins": 10, "epsilon": 0.0001, "min_samples": 30, "input": "samples" }
//! ```
//!
//! | field         | type            | default     | meaning |
//! |---------------|-----------------|-------------|---------|
//! | `threshold`   | number          | `0.2`       | fire when PSI > threshold (finite, > 0) |
//! | `bins`        | integer         | `10`        | bins at the reference's quantiles `k/bins` (≥ 2) |
//! | `edges`       | array of number | none        | fixed interior bin edges instead, strictly ascending |
//! | `epsilon`     | number          | `0.0001`    | proportion used for an empty bin (in (0, 1)) |
//! | `min_samples` | integer         | `30`        | fewest observations in the window and in the reference |
//! | `input`       | string          | `"samples"` | `samples`: raw observations; `buckets`: Prometheus histogram buckets |
//! | `reference`   | array of number | none        | a stored reference sample (samples input); otherwise the baseline window |
//!
//! Unknown fields are an error. Typical thresholds: PSI < 0.1 no significant shift,
//! 0.1–0.2 moderate (investigate), > 0.2 (or 0.25 in the credit-scoring literature)
//! significant shift. The default, 0.2, pages on a significant shift.
//!
//! # Formula
//!
//! With `p_i` the share of the window's observations in bin `i` and `q_i` the share
//! of the reference's, an empty bin's share replaced by `epsilon`:
//!
//! `PSI = Σ_i (p_i - q_i) · ln(p_i / q_i)` (natural log).
//!
//! Each term is ≥ 0, so PSI ≥ 0, 0 for identical binned distributions, and symmetric
//! in `p` and `q`.
//!
//! Bins (samples input): interior edges at the reference's quantiles `1/bins … (bins-1)/bins`
//! (numpy's linear interpolation; repeated edges merged), or `edges`; bins are
//! right-closed like Prometheus buckets (`edges[i-1] < x <= edges[i]`). With
//! `"input": "buckets"` the rule's query is the histogram's plain `*_bucket`
//! selector: the bins are the histogram's buckets, the counts their increase over
//! the window and over the baseline window, one verdict per histogram (see
//! `klaxon-drift-common`), and the alert carries the histogram's labels without `le`.
//!
//! # NaN handling
//!
//! NaN and ±Inf samples are skipped (they belong to no bin). A window or reference
//! with fewer than `min_samples` observations gives a non-firing verdict with score 0
//! saying so; so does a rule with neither a baseline nor a `reference`. The score is
//! never NaN: every proportion is > 0 after the epsilon substitution.
//!
//! # Verdict
//!
//! - score: PSI; summary like `psi=0.775583 over 10 bins (150 window vs 200 reference observations)`;
//! - annotations: `psi`, `threshold`, `bins`, `current_count`, `reference_count`,
//!   `reference` (`baseline` or `config`).

use klaxon_drift_common::{self as drift, Binned, Binning, Input};
use klaxon_sdk::prelude::*;
use serde::Deserialize;

/// The PSI detector.
pub struct Psi;

/// Parsed config; see the crate docs.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// PSI above which the detector fires.
    pub threshold: f64,
    /// Number of reference-quantile bins.
    pub bins: u32,
    /// Fixed interior bin edges.
    pub edges: Option<Vec<f64>>,
    /// Proportion standing in for an empty bin.
    pub epsilon: f64,
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
            threshold: 0.2,
            bins: 10,
            edges: None,
            epsilon: 1e-4,
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
  "title": "psi",
  "type": "object",
  "additionalProperties": false,
  "properties": {
    "threshold": {"type": "number", "exclusiveMinimum": 0, "default": 0.2, "description": "Fire when PSI exceeds this (0.1 moderate, 0.2/0.25 significant)."},
    "bins": {"type": "integer", "minimum": 2, "default": 10, "description": "Bins at the reference's quantiles."},
    "edges": {"type": "array", "items": {"type": "number"}, "description": "Fixed interior bin edges, strictly ascending."},
    "epsilon": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1, "default": 0.0001, "description": "Proportion used for an empty bin."},
    "min_samples": {"type": "integer", "minimum": 1, "default": 30, "description": "Fewest observations in the window and in the reference."},
    "input": {"enum": ["samples", "buckets"], "default": "samples", "description": "Raw observations or Prometheus histogram buckets."},
    "reference": {"type": "array", "items": {"type": "number"}, "description": "Stored reference sample; otherwise the baseline window."}
  }
}"#;

/// `Σ (p_i - q_i) ln(p_i / q_i)` over the two count vectors' proportions, empty
/// bins at `epsilon`. 0 when either side has no observations.
pub fn psi(current: &[f64], reference: &[f64], epsilon: f64) -> f64 {
    let (p, q) = (drift::proportions(current), drift::proportions(reference));
    if current.iter().sum::<f64>() <= 0.0 || reference.iter().sum::<f64>() <= 0.0 {
        return 0.0;
    }
    p.iter()
        .zip(&q)
        .map(|(&p, &q)| {
            let p = if p == 0.0 { epsilon } else { p };
            let q = if q == 0.0 { epsilon } else { q };
            (p - q) * (p / q).ln()
        })
        .sum::<f64>()
        .max(0.0)
}

impl Detector for Psi {
    type Config = Config;

    fn info() -> Info {
        Info::new(
            "psi",
            env!("CARGO_PKG_VERSION"),
            "Population Stability Index of the window against the baseline window or a \
             stored reference: bins at the reference's quantiles (or fixed edges, or a \
             histogram's buckets), Σ(p-q)·ln(p/q); fires above `threshold` (0.2).",
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
        if !(cfg.epsilon > 0.0 && cfg.epsilon < 1.0) {
            return Err(format!(
                "epsilon: must be between 0 and 1 (exclusive), got {}",
                cfg.epsilon
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
    let score = psi(&b.current, &b.reference, cfg.epsilon);
    Verdict::new(score > cfg.threshold, score, b.summary("psi", score))
        .annotate("psi", format_value(score))
        .annotate("threshold", format_value(cfg.threshold))
}

klaxon_sdk::export_detector!(Psi);

#[cfg(test)]
mod tests {
    use super::*;
    use klaxon_sdk::testing::{self, TestSeries};

    use klaxon_drift_common::reference_data::{current as cur_data, reference as ref_data};

    fn judge_one(config: &str, series: TestSeries) -> Verdict {
        let mut out = testing::run_detector::<Psi>(config, &[series]).expect("evaluate");
        out.remove(0).verdict
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-12 * b.abs().max(1.0)
    }

    #[test]
    fn matches_numpy_on_quantile_bins() {
        // reference_values.py "psi" shift=1.5: 0.775583362895407 (one empty window bin
        // at epsilon 1e-4), and shift=0.0: 0.034205744648848437.
        let series = TestSeries::from_values(&cur_data(150, 1.5)).baseline(&ref_data(200));
        let v = judge_one("{}", series);
        assert!(close(v.score, 0.775583362895407), "{}", v.score);
        assert!(v.firing);
        assert_eq!(v.annotation("bins"), Some("10"));
        assert_eq!(v.annotation("current_count"), Some("150"));
        assert_eq!(v.annotation("reference_count"), Some("200"));
        assert_eq!(v.annotation("reference"), Some("baseline"));
        assert_eq!(v.annotation("threshold"), Some("0.2"));
        assert_eq!(v.annotation("psi"), Some(format_value(v.score).as_str()));
        assert!(
            v.summary
                .starts_with("psi=0.775583 over 10 bins (150 window vs 200 reference"),
            "{}",
            v.summary
        );
        let series = TestSeries::from_values(&cur_data(150, 0.0)).baseline(&ref_data(200));
        let v = judge_one("{}", series);
        assert!(close(v.score, 0.034205744648848437), "{}", v.score);
        assert!(!v.firing);
        // Threshold 0.01 < 0.0342: fires.
        let series = TestSeries::from_values(&cur_data(150, 0.0)).baseline(&ref_data(200));
        assert!(judge_one(r#"{"threshold":0.01}"#, series).firing);
    }

    #[test]
    fn fixed_edges_and_stored_reference() {
        // reference_values.py "fixed edges [2,4,6,8]": 0.19137252612205533.
        let reference = serde_json::to_string(&ref_data(200)).unwrap();
        let config = format!(r#"{{"edges":[2,4,6,8],"reference":{reference}}}"#);
        let v = judge_one(&config, TestSeries::from_values(&cur_data(150, 1.5)));
        assert!(close(v.score, 0.19137252612205533), "{}", v.score);
        assert!(!v.firing);
        assert_eq!(v.annotation("bins"), Some("5"));
        assert_eq!(v.annotation("reference"), Some("config"));
    }

    /// Cumulative bucket counters of one histogram: `counts` observations per bucket
    /// over the window, starting from `start` per bucket.
    fn buckets(labels: &[(&str, &str)], counts: &[f64], baseline: &[f64]) -> Vec<TestSeries> {
        let les = ["0.1", "0.25", "0.5", "1", "+Inf"];
        let mut cum = (0.0, 0.0);
        les.iter()
            .zip(counts.iter().zip(baseline))
            .map(|(le, (c, b))| {
                cum = (cum.0 + c, cum.1 + b);
                let mut l = labels.to_vec();
                l.push(("le", *le));
                TestSeries::from_values(&[100.0, 100.0 + cum.0])
                    .labels(&l)
                    .baseline(&[7.0, 7.0 + cum.1])
            })
            .collect()
    }

    #[test]
    fn histogram_buckets_give_one_verdict_per_histogram() {
        // reference_values.py "buckets psi": counts 10,30,40,15,5 vs 30,40,20,8,2
        // → 0.45861142920657993. A second histogram (model b) is unchanged → 0.
        let mut series = buckets(
            &[("__name__", "score_bucket"), ("model", "a")],
            &[10.0, 30.0, 40.0, 15.0, 5.0],
            &[30.0, 40.0, 20.0, 8.0, 2.0],
        );
        series.reverse(); // order must not matter
        series.extend(buckets(
            &[("__name__", "score_bucket"), ("model", "b")],
            &[30.0, 40.0, 20.0, 8.0, 2.0],
            &[30.0, 40.0, 20.0, 8.0, 2.0],
        ));
        let out =
            testing::run_detector::<Psi>(r#"{"input":"buckets"}"#, &series).expect("evaluate");
        assert_eq!(out.len(), 10);
        for o in &out[..5] {
            let v = &o.verdict;
            assert!(close(v.score, 0.45861142920657993), "{}", v.score);
            assert!(v.firing);
            assert_eq!(v.annotation("__group_without__"), Some("le"));
            assert_eq!(v.annotation("current_count"), Some("100"));
        }
        for o in &out[5..] {
            assert_eq!(o.verdict.score, 0.0);
            assert!(!o.verdict.firing);
            assert_eq!(o.verdict.annotation("__group_without__"), Some("le"));
        }
    }

    #[test]
    fn empty_bins_use_epsilon() {
        // reference_values.py "buckets with empty bin": 0 vs 0.2 share → 1.5640491119253042.
        assert!(close(
            psi(&[0.0, 50.0, 50.0], &[20.0, 40.0, 40.0], 1e-4),
            1.5640491119253042
        ));
    }

    #[test]
    fn psi_is_non_negative_and_zero_for_identical_inputs() {
        // Property over many generated pairs: PSI ≥ 0, finite, and 0 for p == q.
        for seed in 1..200u32 {
            let a: Vec<f64> = (0..8)
                .map(|i| f64::from((i * seed + seed * seed) % 13))
                .collect();
            let b: Vec<f64> = (0..8).map(|i| f64::from((i * 7 + seed) % 11)).collect();
            let v = psi(&a, &b, 1e-4);
            assert!(v >= 0.0 && v.is_finite(), "seed {seed}: {v}");
            assert_eq!(psi(&a, &a, 1e-4), 0.0);
            // Symmetric.
            assert!(close(v, psi(&b, &a, 1e-4)));
        }
        let same = TestSeries::from_values(&ref_data(200)).baseline(&ref_data(200));
        let v = judge_one("{}", same);
        assert_eq!(v.score, 0.0);
        assert!(!v.firing);
    }

    #[test]
    fn zero_variance_empty_and_nan_windows() {
        // Constant reference: one edge, two bins; a constant window equal to it: 0.
        let flat = TestSeries::from_values(&[3.0; 40]).baseline(&[3.0; 40]);
        let v = judge_one("{}", flat);
        assert_eq!(v.score, 0.0);
        // Constant window elsewhere: finite, firing.
        let moved = TestSeries::from_values(&[4.0; 40]).baseline(&[3.0; 40]);
        let v = judge_one("{}", moved);
        assert!(v.score.is_finite() && v.firing, "{v:?}");
        // Empty window / no baseline / all-NaN: not firing, score 0, says why.
        let v = judge_one("{}", TestSeries::from_values(&[]).baseline(&ref_data(50)));
        assert_eq!((v.firing, v.score), (false, 0.0));
        assert_eq!(v.summary, "0 observations in the window, need 30");
        let v = judge_one("{}", TestSeries::from_values(&ref_data(50)));
        assert_eq!(v.summary, "0 observations in the baseline window, need 30");
        let v = judge_one(
            "{}",
            TestSeries::from_values(&[f64::NAN; 50]).baseline(&ref_data(50)),
        );
        assert_eq!(v.summary, "0 observations in the window, need 30");
    }

    #[test]
    fn nan_samples_are_skipped() {
        let mut values = cur_data(150, 1.5);
        for x in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            values.insert(10, x);
        }
        let v = judge_one(
            "{}",
            TestSeries::from_values(&values).baseline(&ref_data(200)),
        );
        assert!(close(v.score, 0.775583362895407), "{}", v.score);
        assert_eq!(v.annotation("current_count"), Some("150"));
    }

    #[test]
    fn config_checks() {
        let check = testing::check_detector_config::<Psi>;
        assert!(check("{}").is_ok());
        assert!(check(r#"{"input":"buckets","threshold":0.1}"#).is_ok());
        for (config, field) in [
            (r#"{"threshold":0}"#, "threshold:"),
            (r#"{"epsilon":0}"#, "epsilon:"),
            (r#"{"bins":1}"#, "bins:"),
            (r#"{"edges":[2,1]}"#, "edges:"),
            (r#"{"edges":[]}"#, "edges:"),
            (r#"{"min_samples":0}"#, "min_samples:"),
            (r#"{"input":"buckets","reference":[1]}"#, "reference:"),
            (r#"{"input":"buckets","edges":[1]}"#, "edges:"),
            (r#"{"input":"rows"}"#, "input: unknown variant"),
            (r#"{"bins":"ten"}"#, "bins: invalid type"),
        ] {
            let err = check(config).unwrap_err();
            assert!(err.starts_with(field), "{config}: {err}");
        }
        let err = check(r#"{"treshold":1}"#).unwrap_err();
        assert!(err.contains("unknown field `treshold`"), "{err}");
    }

    #[test]
    fn schema_is_json() {
        let info = testing::info::<Psi>();
        let schema: serde_json::Value = serde_json::from_str(&info.config_schema).unwrap();
        assert_eq!(schema["properties"]["threshold"]["default"], 0.2);
    }
}
