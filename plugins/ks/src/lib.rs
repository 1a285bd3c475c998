//! `ks`: two-sample Kolmogorov-Smirnov test of the current window against a reference
//! sample (the rule's baseline window, or `reference` in the config), with the
//! statistic and two-sided p-value of `scipy.stats.ks_2samp(window, reference,
//! method="auto")`.
//!
//! # Config
//!
//! ```json
//! { "alpha": 0.0001, "min_statistic": 0.0, "min_samples": 20 }
//! ```
//!
//! | field           | type            | default | meaning |
//! |-----------------|-----------------|---------|---------|
//! | `alpha`         | number          | `1e-4`  | fire when the p-value < alpha (in (0, 1)) |
//! | `min_statistic` | number          | `0`     | and the statistic D ≥ this (in [0, 1]): ignore tiny but "significant" shifts of huge windows |
//! | `min_samples`   | integer         | `20`    | fewest finite samples in the window and in the reference (≥ 1) |
//! | `reference`     | array of number | none    | a stored reference sample; otherwise the baseline window |
//!
//! Unknown fields are an error.
//!
//! The default α = 1e-4, not the textbook 0.01: a drift rule tests at every
//! evaluation, so α is close to the share of evaluations that page on a stable
//! distribution (at 0.01 and a 1-hour window of 600 scores against the same hour
//! yesterday, evaluated every 30 min, 3 false alerts a week; every minute, 22).
//! Measured in the detection-quality harness (BENCHMARKS.md), that rule at α = 1e-4
//! catches every 0.08-0.15 shift of a prediction-score mean within 2 evaluations with
//! no false alert in 4 weeks. Lower α for longer windows or more frequent evaluation.
//!
//! # Formula
//!
//! `D = max_x |F_window(x) - F_reference(x)|` over the pooled samples, with `F` the
//! empirical CDFs (right-continuous, ties handled as scipy does with
//! `searchsorted(side="right")`).
//!
//! p-value: scipy's `method="auto"` uses the *exact* distribution when both samples
//! have at most 10 000 values, and so does this plugin, with scipy's algorithms:
//! `D` is rounded to the lattice `h / lcm(n1, n2)` (so the reported D is `h / lcm`),
//! then for `n1 == n2` the closed form `2·Σ_k (-1)^(k-1) C(2n, n-kh) / C(2n, n)`
//! evaluated as a Horner product, otherwise the proportion of lattice paths from
//! `(0,0)` to `(n1,n2)` leaving the band `|x/n1 - y/n2| < h/lcm` (Hodges 1958),
//! counted with normalised path weights so nothing overflows. `h = 0` gives p = 1.
//!
//! **Not implemented:** scipy's asymptotic branch (`kstwo.sf(D, round(n1·n2/(n1+n2)))`),
//! which `auto` uses when a sample has more than 10 000 values. For such windows the
//! verdict reports D but does not fire, and its summary says the p-value was not
//! computed; keep windows (or the baseline) under 10 000 samples.
//!
//! **Cost.** The path count takes about `n1 · 2·D·n2` steps: measured natively
//! (release), 400 vs 400 samples 0.03 ms, 1 000 vs 1 200 0.7 ms, 10 000 vs 9 000 with
//! D = 0.02 19 ms, but with D = 0.3 240 ms — above the default 100 ms plugin deadline
//! once in Wasm. A call over the deadline fails that evaluation only (the rule's
//! health shows it); for windows of many thousand samples raise the plugin's
//! `timeout` (`plugins.overrides`) or use `psi` / `jensen_shannon`.
//!
//! # NaN handling
//!
//! NaN and ±Inf samples are skipped. Fewer than `min_samples` finite samples on
//! either side (an empty window included), or no reference at all: not firing,
//! score 0, summary says why. Zero variance is fine (D = 0 for equal constants,
//! 1 for different ones). The score is D, in [0, 1], never NaN.
//!
//! # Verdict
//!
//! - score: D; summary like `D=0.15 p=0.0386 (150 window vs 200 reference samples)`;
//! - annotations: `ks_statistic`, `p_value`, `alpha`, `current_count`,
//!   `reference_count`, `reference` (`baseline` or `config`).

use klaxon_drift_common as drift;
use klaxon_sdk::prelude::*;
use serde::Deserialize;

/// The Kolmogorov-Smirnov detector.
pub struct Ks;

/// Largest sample size scipy's `auto` method computes exactly.
pub const MAX_EXACT_N: usize = 10_000;

/// Parsed config; see the crate docs.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Significance level.
    pub alpha: f64,
    /// Smallest statistic worth firing on.
    pub min_statistic: f64,
    /// Fewest finite samples per side.
    pub min_samples: u32,
    /// Stored reference sample.
    pub reference: Option<Vec<f64>>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            alpha: 1e-4,
            min_statistic: 0.0,
            min_samples: 20,
            reference: None,
        }
    }
}

const SCHEMA: &str = r#"{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "title": "ks",
  "type": "object",
  "additionalProperties": false,
  "properties": {
    "alpha": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1, "default": 0.0001, "description": "Fire when the p-value is below this."},
    "min_statistic": {"type": "number", "minimum": 0, "maximum": 1, "default": 0, "description": "And the KS statistic is at least this."},
    "min_samples": {"type": "integer", "minimum": 1, "default": 20, "description": "Fewest finite samples in the window and in the reference."},
    "reference": {"type": "array", "items": {"type": "number"}, "description": "Stored reference sample; otherwise the baseline window."}
  }
}"#;

/// Result of the two-sample test.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct KsResult {
    /// The statistic D (on the exact lattice when the p-value is exact).
    pub statistic: f64,
    /// Two-sided p-value; `None` where scipy would use its asymptotic method.
    pub p_value: Option<f64>,
}

/// `scipy.stats.ks_2samp(a, b, method="auto")`, two-sided, for non-empty samples of
/// finite values. The p-value is `None` when a sample exceeds [`MAX_EXACT_N`] or the
/// exact computation fails (where scipy switches to its asymptotic method).
pub fn ks_2samp(a: &[f64], b: &[f64]) -> KsResult {
    let mut a = a.to_vec();
    let mut b = b.to_vec();
    a.sort_by(f64::total_cmp);
    b.sort_by(f64::total_cmp);
    let (n1, n2) = (a.len(), b.len());
    if n1 == 0 || n2 == 0 {
        return KsResult {
            statistic: 0.0,
            p_value: None,
        };
    }
    let (mut max_s, mut min_s) = (f64::NEG_INFINITY, f64::INFINITY);
    for &x in a.iter().chain(&b) {
        let c1 = a.partition_point(|&v| v <= x) as f64 / n1 as f64;
        let c2 = b.partition_point(|&v| v <= x) as f64 / n2 as f64;
        let diff = c1 - c2;
        max_s = max_s.max(diff);
        min_s = min_s.min(diff);
    }
    let min_s = (-min_s).clamp(0.0, 1.0);
    let d = if min_s > max_s { min_s } else { max_s };
    if n1.max(n2) > MAX_EXACT_N {
        return KsResult {
            statistic: d,
            p_value: None,
        };
    }
    let g = gcd(n1 as u64, n2 as u64);
    let lcm = (n1 as u64 / g) * n2 as u64;
    let h = (d * lcm as f64).round_ties_even() as u64;
    let d = h as f64 / lcm as f64;
    if h == 0 {
        return KsResult {
            statistic: d,
            p_value: Some(1.0),
        };
    }
    let p = if n1 == n2 {
        prob_outside_square(n1 as u64, h)
    } else {
        prob_outside_band(n1 as u64, n2 as u64, g, h)
    };
    KsResult {
        statistic: d,
        p_value: (p.is_finite() && (0.0..=1.0).contains(&p)).then_some(p),
    }
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// `P(D_{n,n} ≥ h/n)`: `2·(A0 - A0·A1 + A0·A1·A2 - …)` with `A_k` the ratio of
/// consecutive binomial terms, evaluated innermost first (no cancellation).
fn prob_outside_square(n: u64, h: u64) -> f64 {
    let mut p = 0.0;
    let mut k = n / h;
    loop {
        let mut p1 = 1.0;
        for j in 0..h {
            let num = n as f64 - (k * h + j) as f64;
            let den = (n + k * h + j + 1) as f64;
            p1 = num * p1 / den;
        }
        p = p1 * (1.0 - p);
        if k == 0 {
            break;
        }
        k -= 1;
    }
    2.0 * p
}

/// Proportion of monotone lattice paths from (0,0) to (m,n) that leave the band
/// `|x·n/g - y·m/g| < h` at some point. Tracks, column by column, the share of paths
/// to each point that stayed inside: `P(x,y) = (x·P(x-1,y) + y·P(x,y-1)) / (x+y)`,
/// so values stay in [0, 1].
fn prob_outside_band(m: u64, n: u64, g: u64, h: u64) -> f64 {
    let (m, n) = if m < n { (n, m) } else { (m, n) };
    let (mg, ng) = ((m / g) as i128, (n / g) as i128);
    let h = h as i128;
    let n_us = n as usize;
    // Column x = 0: y·mg < h.
    let mut col = vec![0.0f64; n_us + 1];
    for (y, c) in col.iter_mut().enumerate() {
        if (y as i128) * mg < h {
            *c = 1.0;
        } else {
            break;
        }
    }
    let mut prev_lo = 0usize;
    for x in 1..=m as i128 {
        // Inside: ng·x - h < mg·y < ng·x + h.
        let lo_num = ng * x - h;
        let lo = if lo_num < 0 { 0 } else { lo_num / mg + 1 };
        let hi_num = ng * x + h;
        let hi = ((hi_num + mg - 1) / mg - 1).min(n as i128);
        if lo > hi {
            return 1.0;
        }
        let (lo, hi) = (lo as usize, hi as usize);
        // Rows that fell below the band are now outside (the band only moves up).
        for c in col.iter_mut().take(lo).skip(prev_lo) {
            *c = 0.0;
        }
        prev_lo = lo;
        let mut below = 0.0;
        let xf = x as f64;
        for (y, c) in col.iter_mut().enumerate().take(hi + 1).skip(lo) {
            let yf = y as f64;
            let v = (xf * *c + yf * below) / (xf + yf);
            *c = v;
            below = v;
        }
    }
    1.0 - col[n_us]
}

impl Detector for Ks {
    type Config = Config;

    fn info() -> Info {
        Info::new(
            "ks",
            env!("CARGO_PKG_VERSION"),
            "Two-sample Kolmogorov-Smirnov test of the window against the baseline window \
             or a stored reference: statistic and exact p-value as scipy's ks_2samp; fires \
             when p < `alpha` (1e-4) and D ≥ `min_statistic`.",
        )
        .schema(SCHEMA)
    }

    fn check_config(cfg: &Config) -> Result<(), String> {
        if !(cfg.alpha > 0.0 && cfg.alpha < 1.0) {
            return Err(format!(
                "alpha: must be between 0 and 1 (exclusive), got {}",
                cfg.alpha
            ));
        }
        if !(0.0..=1.0).contains(&cfg.min_statistic) {
            return Err(format!(
                "min_statistic: must be between 0 and 1, got {}",
                cfg.min_statistic
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
        let r = ks_2samp(&current, &reference);
        let sizes = format!(
            "({} window vs {} reference samples)",
            current.len(),
            reference.len()
        );
        let mut summary = String::from("D=");
        push_value(&mut summary, r.statistic);
        let (firing, p_text) = match r.p_value {
            Some(p) => {
                summary.push_str(" p=");
                push_value(&mut summary, p);
                (
                    p < cfg.alpha && r.statistic >= cfg.min_statistic,
                    format_value(p),
                )
            }
            None => {
                summary.push_str(&format!(
                    " p-value not computed: over {MAX_EXACT_N} samples (scipy's asymptotic method is not implemented)"
                ));
                (false, "NaN".to_owned())
            }
        };
        summary.push(' ');
        summary.push_str(&sizes);
        Verdict::new(firing, r.statistic, summary)
            .annotate("ks_statistic", format_value(r.statistic))
            .annotate("p_value", p_text)
            .annotate("alpha", format_value(cfg.alpha))
            .annotate("current_count", current.len().to_string())
            .annotate("reference_count", reference.len().to_string())
            .annotate("reference", source)
            .into()
    }
}

klaxon_sdk::export_detector!(Ks);

#[cfg(test)]
mod tests {
    use super::*;
    use klaxon_sdk::testing::{self, TestSeries};

    use klaxon_drift_common::reference_data::{current as cur_data, reference as ref_data};

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol * b.abs().max(1e-300)
    }

    #[test]
    fn matches_scipy_ks_2samp() {
        // reference_values.py "ks": scipy.stats.ks_2samp(cur_data(n1, shift),
        // ref_data(n2), method="auto") → (D, p).
        for (n1, n2, shift, d, p) in [
            (150, 200, 1.5, 0.15, 0.03855214825130296),
            (150, 200, 0.0, 0.05333333333333334, 0.9583986938543092),
            (40, 40, 0.7, 0.075, 0.99992460868065),
            (9, 7, 2.0, 0.3492063492063492, 0.5727272727272728),
            (60, 45, 0.3, 0.05, 0.9999992513628081),
            (150, 200, 3.0, 0.295, 4.6456431911211854e-07),
            (120, 120, 3.0, 0.3, 3.614525754482387e-05),
        ] {
            let r = ks_2samp(&cur_data(n1, shift), &ref_data(n2));
            assert!(
                close(r.statistic, d, 1e-12),
                "{n1} {n2} {shift}: D {}",
                r.statistic
            );
            let got = r.p_value.expect("exact p-value");
            // 1 - (share of paths inside) cancels: ~1e-16 absolute error, as scipy's.
            assert!(
                (got - p).abs() <= 1e-9 * p + 1e-15,
                "{n1} {n2} {shift}: p {got} vs {p}"
            );
        }
    }

    #[test]
    fn verdict_and_annotations() {
        let series = TestSeries::from_values(&cur_data(150, 3.0)).baseline(&ref_data(200));
        let mut out = testing::run_detector::<Ks>("{}", &[series]).unwrap();
        let v = out.remove(0).verdict;
        assert!(v.firing);
        assert!(close(v.score, 0.295, 1e-12));
        assert_eq!(v.annotation("ks_statistic"), Some("0.295"));
        assert_eq!(v.annotation("alpha"), Some("0.0001"));
        assert_eq!(v.annotation("reference"), Some("baseline"));
        assert!(v.summary.starts_with("D=0.295 p="), "{}", v.summary);
        assert!(
            v.summary.ends_with("(150 window vs 200 reference samples)"),
            "{}",
            v.summary
        );
        // min_statistic holds it back.
        let series = TestSeries::from_values(&cur_data(150, 3.0)).baseline(&ref_data(200));
        let out = testing::run_detector::<Ks>(r#"{"min_statistic":0.5}"#, &[series]).unwrap();
        assert!(!out[0].verdict.firing);
        // p = 3.6e-5 is below the default 1e-4; 4.6e-7 is not below 1e-7.
        let series = TestSeries::from_values(&cur_data(120, 3.0)).baseline(&ref_data(120));
        let out = testing::run_detector::<Ks>("{}", &[series]).unwrap();
        assert!(out[0].verdict.firing);
        let series = TestSeries::from_values(&cur_data(150, 3.0)).baseline(&ref_data(200));
        let out = testing::run_detector::<Ks>(r#"{"alpha":1e-7}"#, &[series]).unwrap();
        assert!(!out[0].verdict.firing);
        // Not significant at 1e-4 (nor at 1 %): p = 0.0386.
        let series = TestSeries::from_values(&cur_data(150, 1.5)).baseline(&ref_data(200));
        let out = testing::run_detector::<Ks>("{}", &[series]).unwrap();
        assert!(!out[0].verdict.firing);
    }

    #[test]
    fn statistic_in_unit_interval_and_p_valid() {
        for seed in 1..60u32 {
            let a: Vec<f64> = (0..(5 + seed % 17))
                .map(|i| f64::from((i * seed + 3) % 11))
                .collect();
            let b: Vec<f64> = (0..(4 + seed % 13))
                .map(|i| f64::from((i * 7 + seed) % 9))
                .collect();
            let r = ks_2samp(&a, &b);
            assert!((0.0..=1.0).contains(&r.statistic), "seed {seed}: {r:?}");
            let p = r.p_value.expect("exact");
            assert!((0.0..=1.0).contains(&p), "seed {seed}: {r:?}");
            let same = ks_2samp(&a, &a);
            assert_eq!(
                same,
                KsResult {
                    statistic: 0.0,
                    p_value: Some(1.0)
                }
            );
        }
    }

    #[test]
    fn zero_variance_empty_nan_and_large() {
        // Equal constants: D = 0, p = 1; different constants: D = 1.
        let r = ks_2samp(&[2.0; 30], &[2.0; 25]);
        assert_eq!(
            r,
            KsResult {
                statistic: 0.0,
                p_value: Some(1.0)
            }
        );
        let r = ks_2samp(&[2.0; 30], &[3.0; 25]);
        assert_eq!(r.statistic, 1.0);
        assert!(r.p_value.unwrap() < 1e-10);
        let run = |s: TestSeries| {
            testing::run_detector::<Ks>("{}", &[s])
                .unwrap()
                .remove(0)
                .verdict
        };
        let v = run(TestSeries::from_values(&[]).baseline(&ref_data(30)));
        assert_eq!((v.firing, v.score), (false, 0.0));
        assert_eq!(v.summary, "0 observations in the window, need 20");
        let v = run(TestSeries::from_values(&ref_data(30)));
        assert_eq!(v.summary, "0 observations in the baseline window, need 20");
        // NaN and Inf skipped: same verdict as without them.
        let mut values = cur_data(150, 3.0);
        values.extend([f64::NAN, f64::INFINITY]);
        let v = run(TestSeries::from_values(&values).baseline(&ref_data(200)));
        assert!(close(v.score, 0.295, 1e-12));
        assert_eq!(v.annotation("current_count"), Some("150"));
        // Over 10 000 samples: statistic reported, p-value not computed, never fires.
        let big: Vec<f64> = (0..10_001).map(|i| f64::from(i % 100)).collect();
        let v = run(TestSeries::from_values(&big).baseline(&[500.0; 30]));
        assert!(!v.firing);
        assert_eq!(v.score, 1.0);
        assert_eq!(v.annotation("p_value"), Some("NaN"));
        assert!(v.summary.contains("p-value not computed"), "{}", v.summary);
    }

    #[test]
    fn config_checks() {
        let check = testing::check_detector_config::<Ks>;
        assert!(check("{}").is_ok());
        for (config, field) in [
            (r#"{"alpha":0}"#, "alpha:"),
            (r#"{"alpha":1}"#, "alpha:"),
            (r#"{"min_statistic":2}"#, "min_statistic:"),
            (r#"{"min_samples":0}"#, "min_samples:"),
            (r#"{"reference":["x"]}"#, "reference[0]: invalid type"),
        ] {
            let err = check(config).unwrap_err();
            assert!(err.starts_with(field), "{config}: {err}");
        }
    }
}
