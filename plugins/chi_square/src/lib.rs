//! `chi_square`: chi-square test that the mix of a categorical variable (e.g. the
//! predicted class) in the current window matches the baseline window's (or a stored
//! reference mix), as `scipy.stats.chi2_contingency(table, correction=False)` on the
//! 2×k table `[window counts, reference counts]` — the test of homogeneity.
//!
//! # Input
//!
//! One series per category value, the category in label `label`, e.g.
//! `predictions_total{model="fraud", class="approve"}` and `{…, class="decline"}`.
//! A detector call receives every category series; they are grouped by their labels
//! minus `label` (one group per model, say) and judged per group: every series of a
//! group gets the same verdict, marked so the host raises ONE alert per group,
//! labelled without `label`. A category's count in a window is its counter's
//! increase (`"counts": "increase"`, resets handled, see `klaxon-drift-common`) or
//! the sum of its samples (`"counts": "sum"`, for per-batch counts pushed as gauges).
//! Histogram buckets work too with `"label": "le"` (the counts are then cumulative:
//! use `psi` or `jensen_shannon` for histograms instead).
//!
//! # Config
//!
//! ```json
//! { "label": "class", "alpha": 0.001, "counts": "increase", "min_count": 30 }
//! ```
//!
//! | field       | type   | default      | meaning |
//! |-------------|--------|--------------|---------|
//! | `label`     | string | required     | the label whose values are the categories |
//! | `alpha`     | number | `0.001`      | fire when the p-value < alpha (in (0, 1)) |
//! | `counts`    | string | `"increase"` | `increase`: counters; `sum`: each sample is a count |
//! | `min_count` | number | `30`         | fewest observations in the window and in the reference (total over categories) |
//! | `reference` | object | none         | stored reference counts per category value, e.g. `{"approve": 900, "decline": 100}`; otherwise the baseline window |
//!
//! Unknown fields are an error.
//!
//! # Formula
//!
//! Table rows: window counts `o_1j` and reference counts `o_2j` per category `j`
//! (categories with zero in both rows dropped, as a zero expected count is undefined).
//! Expected `e_ij = row_i · col_j / total`; `χ² = Σ (o_ij - e_ij)² / e_ij`, with
//! `k - 1` degrees of freedom; p = the chi-square survival function (statrs'
//! regularised incomplete gamma). No Yates continuity correction (scipy applies one by
//! default only when dof = 1; we never do, so say `correction=False` to compare).
//!
//! # NaN handling
//!
//! NaN samples (staleness markers included) are skipped when counting; a negative
//! `sum` count is treated as 0. Fewer than `min_count` observations on either side,
//! fewer than two categories with observations, or no reference: not firing, score
//! 0, summary says why. The score is χ², never NaN.
//!
//! # Verdict
//!
//! - score: χ²; summary like `chi2=22.2 p=1.49e-05 dof=2 (100 window vs 300 reference observations)`;
//! - annotations: `chi2`, `p_value`, `dof`, `alpha`, `current_count`, `reference_count`,
//!   `reference` (`baseline` or `config`).

use std::collections::BTreeMap;

use klaxon_drift_common as drift;
use klaxon_sdk::prelude::*;
use serde::Deserialize;
use statrs::distribution::{ChiSquared, ContinuousCDF};

/// The chi-square detector.
pub struct ChiSquare;

/// Parsed config; see the crate docs.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The category label.
    pub label: String,
    /// Significance level.
    #[serde(default = "default_alpha")]
    pub alpha: f64,
    /// How a window's samples become a count.
    #[serde(default)]
    pub counts: Counts,
    /// Fewest observations per side.
    #[serde(default = "default_min_count")]
    pub min_count: f64,
    /// Stored reference counts per category value.
    #[serde(default)]
    pub reference: Option<BTreeMap<String, f64>>,
}

fn default_alpha() -> f64 {
    0.001
}

fn default_min_count() -> f64 {
    30.0
}

/// How a window's samples become a category count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Counts {
    /// Counter increase over the window.
    #[default]
    Increase,
    /// Sum of the samples.
    Sum,
}

impl Counts {
    fn count(self, xs: &[f64]) -> f64 {
        match self {
            Counts::Increase => drift::increase(xs),
            Counts::Sum => xs
                .iter()
                .filter(|x| x.is_finite())
                .map(|x| x.max(0.0))
                .sum(),
        }
    }
}

const SCHEMA: &str = r#"{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "title": "chi_square",
  "type": "object",
  "additionalProperties": false,
  "required": ["label"],
  "properties": {
    "label": {"type": "string", "minLength": 1, "description": "The label whose values are the categories."},
    "alpha": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1, "default": 0.001, "description": "Fire when the p-value is below this."},
    "counts": {"enum": ["increase", "sum"], "default": "increase", "description": "Counters (increase) or per-sample counts (sum)."},
    "min_count": {"type": "number", "minimum": 1, "default": 30, "description": "Fewest observations in the window and in the reference."},
    "reference": {"type": "object", "additionalProperties": {"type": "number", "minimum": 0}, "description": "Stored reference counts per category value."}
  }
}"#;

/// χ², p-value and degrees of freedom of a 2×k homogeneity test.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ChiResult {
    /// The statistic.
    pub chi2: f64,
    /// Its p-value.
    pub p_value: f64,
    /// Degrees of freedom, `k - 1`.
    pub dof: usize,
}

/// `scipy.stats.chi2_contingency([current, reference], correction=False)` after
/// dropping the categories empty in both rows; `None` with fewer than two categories
/// left or an empty row.
pub fn chi2_homogeneity(current: &[f64], reference: &[f64]) -> Option<ChiResult> {
    let cols: Vec<(f64, f64)> = current
        .iter()
        .zip(reference)
        .map(|(&a, &b)| (a, b))
        .filter(|(a, b)| a + b > 0.0)
        .collect();
    let (r1, r2): (f64, f64) = cols.iter().fold((0.0, 0.0), |s, c| (s.0 + c.0, s.1 + c.1));
    if cols.len() < 2 || r1 <= 0.0 || r2 <= 0.0 {
        return None;
    }
    let total = r1 + r2;
    let chi2: f64 = cols
        .iter()
        .map(|(a, b)| {
            let col = a + b;
            let (e1, e2) = (r1 * col / total, r2 * col / total);
            (a - e1).powi(2) / e1 + (b - e2).powi(2) / e2
        })
        .sum();
    let dof = cols.len() - 1;
    let p_value = ChiSquared::new(dof as f64)
        .map(|d| d.sf(chi2))
        .unwrap_or(f64::NAN);
    Some(ChiResult {
        chi2,
        p_value: if p_value.is_nan() {
            1.0
        } else {
            p_value.clamp(0.0, 1.0)
        },
        dof,
    })
}

impl Detector for ChiSquare {
    type Config = Config;

    fn info() -> Info {
        Info::new(
            "chi_square",
            env!("CARGO_PKG_VERSION"),
            "Chi-square test of homogeneity (scipy's chi2_contingency, no correction) of \
             the mix of a categorical label's values in the window against the baseline \
             window or stored reference counts; one verdict per group; fires when \
             p < `alpha` (0.001).",
        )
        .schema(SCHEMA)
    }

    fn check_config(cfg: &Config) -> Result<(), String> {
        if cfg.label.is_empty() {
            return Err("label: must name the category label".into());
        }
        if !(cfg.alpha > 0.0 && cfg.alpha < 1.0) {
            return Err(format!(
                "alpha: must be between 0 and 1 (exclusive), got {}",
                cfg.alpha
            ));
        }
        if !(cfg.min_count.is_finite() && cfg.min_count >= 1.0) {
            return Err(format!(
                "min_count: must be a number of at least 1, got {}",
                cfg.min_count
            ));
        }
        if let Some(r) = &cfg.reference
            && let Some((k, v)) = r.iter().find(|(_, v)| !(v.is_finite() && **v >= 0.0))
        {
            return Err(format!(
                "reference.{k}: must be a count (finite, ≥ 0), got {v}"
            ));
        }
        Ok(())
    }

    fn evaluate(_cfg: &Config, _series: &Series<'_>) -> Output {
        Verdict::ok(0.0, "chi_square judges whole groups of category series").into()
    }

    fn evaluate_batch(cfg: &Config, batch: &Batch<'_>) -> Result<Vec<Output>, String> {
        let mut out: Vec<Option<Verdict>> = vec![None; batch.len()];
        let (groups, lacking) = drift::group_by_label(batch, &cfg.label);
        for i in lacking {
            out[i] = Some(Verdict::ok(
                0.0,
                format!("no `{}` label: not a category series", cfg.label),
            ));
        }
        for g in &groups {
            let verdict = judge_group(cfg, batch, g).group_without(&[cfg.label.as_str()]);
            for (i, _) in &g.members {
                out[*i] = Some(verdict.clone());
            }
        }
        Ok(out
            .into_iter()
            .map(|v| v.unwrap_or_else(|| Verdict::ok(0.0, "not judged")).into())
            .collect())
    }
}

fn judge_group(cfg: &Config, batch: &Batch<'_>, g: &drift::Group) -> Verdict {
    // Category value → (window count, reference count); several series with the same
    // value (cannot happen for distinct label sets) would add up.
    let mut table: BTreeMap<&str, (f64, f64)> = BTreeMap::new();
    for (i, value) in &g.members {
        let Some(s) = batch.get(*i) else { continue };
        let e = table.entry(value.as_str()).or_default();
        e.0 += cfg.counts.count(s.window.values);
        if cfg.reference.is_none() {
            e.1 += cfg.counts.count(s.baseline.values);
        }
    }
    let source = match &cfg.reference {
        Some(r) => {
            for (k, v) in r {
                table.entry(k.as_str()).or_default().1 = *v;
            }
            "config"
        }
        None => "baseline",
    };
    let current: Vec<f64> = table.values().map(|c| c.0).collect();
    let reference: Vec<f64> = table.values().map(|c| c.1).collect();
    let (n_cur, n_ref) = (current.iter().sum::<f64>(), reference.iter().sum::<f64>());
    let min = cfg.min_count.ceil() as usize;
    if let Some(v) = drift::too_little(n_cur, n_ref, min, source) {
        return v;
    }
    let Some(r) = chi2_homogeneity(&current, &reference) else {
        return Verdict::ok(0.0, "fewer than two categories with observations")
            .annotate("current_count", format_value(n_cur))
            .annotate("reference_count", format_value(n_ref));
    };
    let mut summary = String::from("chi2=");
    push_value(&mut summary, r.chi2);
    summary.push_str(" p=");
    push_value(&mut summary, r.p_value);
    summary.push_str(&format!(
        " dof={} ({} window vs {} reference observations)",
        r.dof,
        format_value(n_cur),
        format_value(n_ref)
    ));
    Verdict::new(r.p_value < cfg.alpha, r.chi2, summary)
        .annotate("chi2", format_value(r.chi2))
        .annotate("p_value", format_value(r.p_value))
        .annotate("dof", r.dof.to_string())
        .annotate("alpha", format_value(cfg.alpha))
        .annotate("current_count", format_value(n_cur))
        .annotate("reference_count", format_value(n_ref))
        .annotate("reference", source)
}

klaxon_sdk::export_detector!(ChiSquare);

#[cfg(test)]
mod tests {
    use super::*;
    use klaxon_sdk::testing::{self, TestSeries};

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol * b.abs().max(1e-300)
    }

    #[test]
    fn matches_scipy_chi2_contingency() {
        // reference_values.py "chi_square": scipy.stats.chi2_contingency(
        // [cur, base], correction=False) with all-zero columns dropped.
        for (cur, base, chi2, p, dof) in [
            (
                &[30.0, 50.0, 20.0][..],
                &[100.0, 150.0, 50.0][..],
                0.7326007326007327,
                0.6932945276198124,
                2,
            ),
            (
                &[60.0, 30.0, 10.0][..],
                &[100.0, 150.0, 50.0][..],
                22.222222222222225,
                1.494533852478142e-05,
                2,
            ),
            (
                &[5.0, 9.0][..],
                &[10.0, 20.0][..],
                0.024083196496989548,
                0.876673410155346,
                1,
            ),
            (
                &[10.0, 0.0, 5.0][..],
                &[20.0, 0.0, 12.0][..],
                0.07679738562091498,
                0.7816853451876159,
                1,
            ),
        ] {
            let r = chi2_homogeneity(cur, base).expect("two categories");
            assert!(close(r.chi2, chi2, 1e-12), "{cur:?}: {r:?}");
            assert!(close(r.p_value, p, 1e-9), "{cur:?}: {r:?} vs {p}");
            assert_eq!(r.dof, dof);
        }
    }

    /// Counter series of one model's classes: window `[0, cur]`, baseline `[0, base]`.
    fn classes(model: &str, counts: &[(&str, f64, f64)]) -> Vec<TestSeries> {
        counts
            .iter()
            .map(|(class, cur, base)| {
                TestSeries::from_values(&[50.0, 50.0 + cur])
                    .labels(&[
                        ("__name__", "predictions_total"),
                        ("model", model),
                        ("class", class),
                    ])
                    .baseline(&[0.0, *base])
            })
            .collect()
    }

    #[test]
    fn one_verdict_per_group() {
        let mut series = classes(
            "a",
            &[
                ("approve", 60.0, 100.0),
                ("review", 30.0, 150.0),
                ("decline", 10.0, 50.0),
            ],
        );
        series.extend(classes(
            "b",
            &[
                ("approve", 30.0, 100.0),
                ("review", 50.0, 150.0),
                ("decline", 20.0, 50.0),
            ],
        ));
        series.push(TestSeries::from_values(&[1.0]).labels(&[("model", "c")]));
        let out = testing::run_detector::<ChiSquare>(r#"{"label":"class"}"#, &series).unwrap();
        for o in &out[..3] {
            let v = &o.verdict;
            assert!(v.firing);
            assert!(close(v.score, 22.222222222222225, 1e-12));
            assert_eq!(v.annotation("__group_without__"), Some("class"));
            assert_eq!(v.annotation("dof"), Some("2"));
            assert_eq!(v.annotation("current_count"), Some("100"));
            assert_eq!(v.annotation("reference_count"), Some("300"));
            assert!(v.summary.starts_with("chi2=22.2222 p="), "{}", v.summary);
        }
        for o in &out[3..6] {
            assert!(!o.verdict.firing);
            assert!(close(o.verdict.score, 0.7326007326007327, 1e-12));
        }
        assert_eq!(
            out[6].verdict.summary,
            "no `class` label: not a category series"
        );
    }

    #[test]
    fn sum_counts_and_stored_reference() {
        let series: Vec<TestSeries> = [
            ("approve", [20.0, 40.0]),
            ("review", [10.0, 20.0]),
            ("decline", [5.0, 5.0]),
        ]
        .iter()
        .map(|(class, v)| TestSeries::from_values(v).labels(&[("class", class)]))
        .collect();
        let config = r#"{"label":"class","counts":"sum","reference":{"approve":100,"review":150,"decline":50}}"#;
        let out = testing::run_detector::<ChiSquare>(config, &series).unwrap();
        let v = &out[0].verdict;
        assert!(close(v.score, 22.222222222222225, 1e-12), "{v:?}");
        assert_eq!(v.annotation("reference"), Some("config"));
    }

    #[test]
    fn too_little_data_and_nan() {
        let series = classes("a", &[("approve", 5.0, 100.0), ("review", 3.0, 150.0)]);
        let out = testing::run_detector::<ChiSquare>(r#"{"label":"class"}"#, &series).unwrap();
        assert_eq!(
            out[0].verdict.summary,
            "8 observations in the window, need 30"
        );
        assert_eq!(out[0].verdict.score, 0.0);
        let series = classes("a", &[("approve", 50.0, 100.0)]);
        let out = testing::run_detector::<ChiSquare>(r#"{"label":"class"}"#, &series).unwrap();
        assert_eq!(
            out[0].verdict.summary,
            "fewer than two categories with observations"
        );
        // NaN samples skipped by the counter increase: 0 → NaN → 60 counts 60.
        let series: Vec<TestSeries> = [
            ("approve", 60.0, 100.0),
            ("review", 30.0, 150.0),
            ("decline", 10.0, 50.0),
        ]
        .iter()
        .map(|(class, cur, base)| {
            TestSeries::from_values(&[0.0, f64::NAN, *cur])
                .labels(&[("class", class)])
                .baseline(&[0.0, *base])
        })
        .collect();
        let out = testing::run_detector::<ChiSquare>(r#"{"label":"class"}"#, &series).unwrap();
        assert!(close(out[0].verdict.score, 22.222222222222225, 1e-12));
        // Identical mixes: χ² = 0, p = 1.
        let r = chi2_homogeneity(&[10.0, 20.0], &[10.0, 20.0]).unwrap();
        assert_eq!((r.chi2, r.p_value), (0.0, 1.0));
    }

    #[test]
    fn config_checks() {
        let check = testing::check_detector_config::<ChiSquare>;
        assert!(check(r#"{"label":"class"}"#).is_ok());
        let err = check("{}").unwrap_err();
        assert!(err.contains("missing field `label`"), "{err}");
        for (config, field) in [
            (r#"{"label":""}"#, "label:"),
            (r#"{"label":"c","alpha":2}"#, "alpha:"),
            (r#"{"label":"c","min_count":0}"#, "min_count:"),
            (r#"{"label":"c","counts":"max"}"#, "counts: unknown variant"),
            (r#"{"label":"c","reference":{"a":-1}}"#, "reference.a:"),
        ] {
            let err = check(config).unwrap_err();
            assert!(err.starts_with(field), "{config}: {err}");
        }
    }
}
