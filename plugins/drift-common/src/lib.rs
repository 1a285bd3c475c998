//! What the stock drift detectors (`psi`, `jensen_shannon`, `chi_square`, and the
//! sample helpers of `ks` and `wasserstein`) share: where the two distributions come
//! from, how raw samples are binned, and how Prometheus histogram buckets or
//! per-category counters are grouped into ONE judgement per histogram.
//!
//! Pure computation over the SDK's batch view. Not a plugin: a library the plugin
//! crates link.
//!
//! # Two input shapes
//!
//! - **Samples** (`"input": "samples"`, the default): each series' window holds raw
//!   observations (e.g. one prediction score per request). The reference is the
//!   `reference` list of the config when given, otherwise the rule's baseline window.
//!   NaN and ±Inf samples are skipped.
//! - **Buckets** (`"input": "buckets"`): the rule's query is a plain `*_bucket`
//!   selector of a Prometheus histogram. A detector call receives every bucket series;
//!   they are grouped by their labels minus `le` (one group per histogram), each
//!   bucket's *increase* over the window (and over the baseline window) is taken from
//!   its cumulative counter, and consecutive buckets are subtracted to get the count
//!   that fell in each bucket. Every series of a group gets the same verdict, marked
//!   with [`Verdict::group_without`]`(["le"])`, so the host raises one alert per
//!   histogram, labelled without `le`.
//!
//! # Counter increase
//!
//! [`increase`] is PromQL's `increase` without extrapolation: the sum of the
//! differences between consecutive samples, where a drop is a counter reset (the new
//! value counts from zero). NaN samples (staleness markers included) are skipped.
//! The increment between the last sample before the window and its first sample is
//! not part of the window.

use std::collections::HashMap;

use klaxon_sdk::prelude::*;
use serde::Deserialize;

/// The label that names a Prometheus histogram bucket's upper bound.
pub const BUCKET_LABEL: &str = "le";

/// Which shape the rule's series have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Input {
    /// Raw observations per series.
    #[default]
    Samples,
    /// Cumulative Prometheus histogram bucket counters (`*_bucket{le=...}`).
    Buckets,
}

/// The finite samples of `xs`, in order.
pub fn finite(xs: &[f64]) -> Vec<f64> {
    xs.iter().copied().filter(|x| x.is_finite()).collect()
}

/// A counter's increase over the samples (see the crate docs): resets count from
/// zero, NaN samples are skipped, fewer than two samples give 0.
pub fn increase(xs: &[f64]) -> f64 {
    let mut total = 0.0;
    let mut prev: Option<f64> = None;
    for &x in xs.iter().filter(|x| !x.is_nan()) {
        if let Some(p) = prev {
            total += if x >= p { x - p } else { x };
        }
        prev = Some(x);
    }
    if total.is_finite() { total } else { 0.0 }
}

/// Interior bin edges at the reference's quantiles `k/bins` (`k = 1..bins-1`,
/// numpy's linear interpolation), with repeated edges merged, so a reference with
/// few distinct values gives fewer bins. Empty when the reference is.
pub fn quantile_edges(reference: &[f64], bins: usize) -> Vec<f64> {
    let mut edges: Vec<f64> = (1..bins)
        .filter_map(|k| stats::quantile(reference, k as f64 / bins as f64))
        .collect();
    edges.dedup();
    edges
}

/// Counts per bin for the interior `edges` (ascending): bin `0` is `x <= edges[0]`,
/// bin `i` is `edges[i-1] < x <= edges[i]`, the last bin is `x > edges[last]`
/// (right-closed, as Prometheus' `le` buckets; numpy's `searchsorted(edges, x,
/// side="left")`). Non-finite samples are skipped.
pub fn bin_counts(xs: &[f64], edges: &[f64]) -> Vec<f64> {
    let mut counts = vec![0.0; edges.len() + 1];
    for &x in xs.iter().filter(|x| x.is_finite()) {
        counts[edges.partition_point(|&e| e < x)] += 1.0;
    }
    counts
}

/// The series of a batch grouped by all their labels but one.
#[derive(Debug, Clone, PartialEq)]
pub struct Group {
    /// The shared labels (the grouping label left out), in Prometheus notation order.
    pub labels: Vec<(String, String)>,
    /// Batch index and value of the grouping label of each member, in batch order.
    pub members: Vec<(usize, String)>,
}

/// Groups the batch's series by their labels less `label`. Series that lack
/// `label` are returned apart, by batch index.
pub fn group_by_label(batch: &Batch<'_>, label: &str) -> (Vec<Group>, Vec<usize>) {
    let mut groups: Vec<Group> = Vec::new();
    let mut index: HashMap<Vec<(String, String)>, usize> = HashMap::new();
    let mut lacking = Vec::new();
    for (i, s) in batch.iter().enumerate() {
        let mut value = None;
        let rest: Vec<(String, String)> = s
            .labels
            .to_vec()
            .into_iter()
            .filter_map(|(n, v)| {
                if n == label {
                    value = Some(v);
                    None
                } else {
                    Some((n, v))
                }
            })
            .collect();
        let Some(value) = value else {
            lacking.push(i);
            continue;
        };
        let g = *index.entry(rest.clone()).or_insert_with(|| {
            groups.push(Group {
                labels: rest,
                members: Vec::new(),
            });
            groups.len() - 1
        });
        groups[g].members.push((i, value));
    }
    (groups, lacking)
}

/// One histogram's buckets: upper bounds and the count that fell in each bucket
/// during the window and during the baseline window.
#[derive(Debug, Clone, PartialEq)]
pub struct Histogram {
    /// Upper bounds (`le`), ascending; the last is usually `+Inf`.
    pub upper_bounds: Vec<f64>,
    /// Observations per bucket in the window (non-cumulative).
    pub current: Vec<f64>,
    /// Observations per bucket in the baseline window (non-cumulative).
    pub baseline: Vec<f64>,
}

/// Reads one group of bucket series as a [`Histogram`]. Errors (shown in the verdict
/// summary) name a bad or repeated `le`.
pub fn histogram(batch: &Batch<'_>, group: &Group) -> Result<Histogram, String> {
    let mut buckets: Vec<(f64, f64, f64)> = Vec::with_capacity(group.members.len());
    for (i, le) in &group.members {
        let bound: f64 = le
            .trim()
            .parse()
            .ok()
            .filter(|b: &f64| !b.is_nan())
            .ok_or_else(|| format!("le=\"{le}\" is not a number"))?;
        let Some(s) = batch.get(*i) else { continue };
        buckets.push((
            bound,
            increase(s.window.values),
            increase(s.baseline.values),
        ));
    }
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    if let Some(w) = buckets.windows(2).find(|w| w[0].0 == w[1].0) {
        return Err(format!("le=\"{}\" appears twice", format_value(w[0].0)));
    }
    // Cumulative to per-bucket; a bucket that grew less than the one below it
    // (samples taken at different times) counts 0 rather than a negative count.
    let per_bucket = |cum: Vec<f64>| -> Vec<f64> {
        let mut prev = 0.0;
        cum.into_iter()
            .map(|c| {
                let n = (c - prev).max(0.0);
                prev = prev.max(c);
                n
            })
            .collect()
    };
    Ok(Histogram {
        upper_bounds: buckets.iter().map(|b| b.0).collect(),
        current: per_bucket(buckets.iter().map(|b| b.1).collect()),
        baseline: per_bucket(buckets.iter().map(|b| b.2).collect()),
    })
}

/// Settings of a binned comparison (PSI, Jensen-Shannon), as their configs spell them.
#[derive(Debug, Clone, PartialEq)]
pub struct Binning<'c> {
    /// Samples or histogram buckets.
    pub input: Input,
    /// Number of reference-quantile bins (samples input, no `edges`).
    pub bins: usize,
    /// Fixed interior bin edges, ascending (samples input).
    pub edges: Option<&'c [f64]>,
    /// A stored reference sample (samples input); otherwise the baseline window.
    pub reference: Option<&'c [f64]>,
    /// Fewest observations in the window (and in the reference) worth judging.
    pub min_samples: usize,
}

/// Two binned distributions to compare, as counts per bin.
#[derive(Debug, Clone, PartialEq)]
pub struct Binned {
    /// Observations per bin in the current window.
    pub current: Vec<f64>,
    /// Observations per bin in the reference.
    pub reference: Vec<f64>,
}

impl Binned {
    /// Total observations in the window.
    pub fn current_total(&self) -> f64 {
        self.current.iter().sum()
    }

    /// Total observations in the reference.
    pub fn reference_total(&self) -> f64 {
        self.reference.iter().sum()
    }

    /// The verdict summary of a binned statistic: `psi=0.31 over 10 bins (150 window
    /// vs 200 reference observations)`.
    pub fn summary(&self, statistic: &str, score: f64) -> String {
        let mut summary = format!("{statistic}=");
        push_value(&mut summary, score);
        summary.push_str(&format!(
            " over {} bins ({} window vs {} reference observations)",
            self.current.len(),
            format_value(self.current_total()),
            format_value(self.reference_total())
        ));
        summary
    }
}

/// The deterministic samples of `tools/reference_values.py`, which computed the
/// reference-library values the drift detectors' tests check against.
pub mod reference_data {
    /// `ref_data(n)` of `reference_values.py`: the reference sample.
    pub fn reference(n: u32) -> Vec<f64> {
        (0..n).map(|i| f64::from(i * 37 % 101) / 10.0).collect()
    }

    /// `cur_data(n, shift)` of `reference_values.py`: the current sample, shifted.
    pub fn current(n: u32, shift: f64) -> Vec<f64> {
        (0..n)
            .map(|i| f64::from(i * 53 % 97) / 10.0 + shift)
            .collect()
    }
}

/// Checks the binning fields of a config; errors name the field.
pub fn check_binning(b: &Binning<'_>) -> Result<(), String> {
    if b.bins < 2 {
        return Err(format!("bins: must be at least 2, got {}", b.bins));
    }
    if let Some(edges) = b.edges {
        if edges.is_empty() {
            return Err("edges: give at least one interior edge".into());
        }
        if edges.iter().any(|e| !e.is_finite()) {
            return Err("edges: every edge must be a finite number".into());
        }
        if edges.windows(2).any(|w| w[0] >= w[1]) {
            return Err("edges: must be strictly ascending".into());
        }
    }
    if let Some(r) = b.reference
        && r.iter().any(|x| !x.is_finite())
    {
        return Err("reference: every value must be a finite number".into());
    }
    if b.input == Input::Buckets {
        if b.edges.is_some() {
            return Err(
                "edges: not with input \"buckets\" (the histogram's buckets are the bins)".into(),
            );
        }
        if b.reference.is_some() {
            return Err(
                "reference: not with input \"buckets\" (the baseline window is the reference)"
                    .into(),
            );
        }
    }
    if b.min_samples < 1 {
        return Err("min_samples: must be at least 1".into());
    }
    Ok(())
}

/// Runs a binned comparison over a whole batch: bins each series (samples input) or
/// each histogram (buckets input) and calls `judge` on the two count vectors; adds
/// the annotations `bins`, `current_count`, `reference_count` and `reference`
/// (`baseline` or `config`). Too little data gives a non-firing verdict with score 0
/// that says why.
pub fn judge_binned(
    b: &Binning<'_>,
    batch: &Batch<'_>,
    judge: impl Fn(&Binned) -> Verdict,
) -> Vec<Output> {
    match b.input {
        Input::Samples => batch
            .iter()
            .map(|s| judge_series(b, &s, &judge).into())
            .collect(),
        Input::Buckets => judge_buckets(b, batch, &judge),
    }
}

/// Judges one series of raw samples (buckets need the whole batch: see
/// [`judge_binned`]).
pub fn judge_series(
    b: &Binning<'_>,
    s: &Series<'_>,
    judge: &impl Fn(&Binned) -> Verdict,
) -> Verdict {
    if b.input == Input::Buckets {
        return Verdict::ok(0.0, "histogram buckets are judged per batch");
    }
    let current = finite(s.window.values);
    let (reference, source) = match b.reference {
        Some(r) => (r.to_vec(), "config"),
        None => (finite(s.baseline.values), "baseline"),
    };
    if let Some(v) = too_little(
        current.len() as f64,
        reference.len() as f64,
        b.min_samples,
        source,
    ) {
        return v;
    }
    let edges = match b.edges {
        Some(e) => e.to_vec(),
        None => quantile_edges(&reference, b.bins),
    };
    let binned = Binned {
        current: bin_counts(&current, &edges),
        reference: bin_counts(&reference, &edges),
    };
    annotated(judge(&binned), &binned, source)
}

fn judge_buckets(
    b: &Binning<'_>,
    batch: &Batch<'_>,
    judge: &impl Fn(&Binned) -> Verdict,
) -> Vec<Output> {
    let mut out: Vec<Option<Verdict>> = vec![None; batch.len()];
    let (groups, lacking) = group_by_label(batch, BUCKET_LABEL);
    for i in lacking {
        out[i] = Some(Verdict::ok(
            0.0,
            "no `le` label: not a histogram bucket series",
        ));
    }
    for g in &groups {
        let verdict = match histogram(batch, g) {
            Err(e) => Verdict::ok(0.0, e),
            Ok(h) => {
                let binned = Binned {
                    current: h.current,
                    reference: h.baseline,
                };
                match too_little(
                    binned.current_total(),
                    binned.reference_total(),
                    b.min_samples,
                    "baseline",
                ) {
                    Some(v) => v,
                    None => annotated(judge(&binned), &binned, "baseline"),
                }
            }
        }
        .group_without(&[BUCKET_LABEL]);
        for (i, _) in &g.members {
            out[*i] = Some(verdict.clone());
        }
    }
    out.into_iter()
        .map(|v| v.unwrap_or_else(|| Verdict::ok(0.0, "not judged")).into())
        .collect()
}

/// A non-firing verdict when either side has fewer than `min` observations.
pub fn too_little(current: f64, reference: f64, min: usize, source: &str) -> Option<Verdict> {
    let min_f = min as f64;
    if reference < min_f.max(1.0) {
        let why = if source == "baseline" {
            "baseline window"
        } else {
            "reference"
        };
        return Some(
            Verdict::ok(
                0.0,
                format!(
                    "{} observations in the {why}, need {min}",
                    format_value(reference)
                ),
            )
            .annotate("reference_count", format_value(reference)),
        );
    }
    if current < min_f.max(1.0) {
        return Some(
            Verdict::ok(
                0.0,
                format!(
                    "{} observations in the window, need {min}",
                    format_value(current)
                ),
            )
            .annotate("current_count", format_value(current)),
        );
    }
    None
}

fn annotated(v: Verdict, binned: &Binned, source: &str) -> Verdict {
    v.annotate("bins", binned.current.len().to_string())
        .annotate("current_count", format_value(binned.current_total()))
        .annotate("reference_count", format_value(binned.reference_total()))
        .annotate("reference", source)
}

/// `p` as proportions of its total (all zero when the total is 0).
pub fn proportions(counts: &[f64]) -> Vec<f64> {
    let total: f64 = counts.iter().sum();
    if total > 0.0 {
        counts.iter().map(|c| c / total).collect()
    } else {
        vec![0.0; counts.len()]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use klaxon_sdk::testing::{self, TestSeries};

    #[test]
    fn increase_handles_resets_and_nan() {
        assert_eq!(increase(&[]), 0.0);
        assert_eq!(increase(&[5.0]), 0.0);
        // 10 -> 15 (+5) -> NaN skipped -> 18 (+3) -> reset to 2 (+2) -> 6 (+4) = 14
        assert_eq!(increase(&[10.0, 15.0, f64::NAN, 18.0, 2.0, 6.0]), 14.0);
    }

    #[test]
    fn quantile_edges_and_right_closed_bins() {
        // numpy.quantile([1..10], [0.25, 0.5, 0.75]) = [3.25, 5.5, 7.75]
        let reference: Vec<f64> = (1..=10).map(f64::from).collect();
        let edges = quantile_edges(&reference, 4);
        assert_eq!(edges, vec![3.25, 5.5, 7.75]);
        // numpy.searchsorted(edges, x, side="left") per x, then bincount.
        let counts = bin_counts(&[3.25, 3.26, 5.5, 100.0, -1.0, f64::NAN], &edges);
        assert_eq!(counts, vec![2.0, 2.0, 0.0, 1.0]);
        // A constant reference has one distinct edge.
        assert_eq!(quantile_edges(&[2.0; 5], 10), vec![2.0]);
        assert!(quantile_edges(&[], 10).is_empty());
    }

    /// Runs grouping and bucket reading inside a detector call, as a plugin does, and
    /// reports what it saw in the summaries.
    struct Probe;

    #[derive(serde::Deserialize)]
    struct NoConfig {}

    impl Detector for Probe {
        type Config = NoConfig;
        fn info() -> Info {
            Info::new("probe", "0", "test")
        }
        fn evaluate(_: &NoConfig, _: &Series<'_>) -> Output {
            Verdict::ok(0.0, "").into()
        }
        fn evaluate_batch(_: &NoConfig, batch: &Batch<'_>) -> Result<Vec<Output>, String> {
            let (groups, lacking) = group_by_label(batch, "le");
            let mut out = vec![String::new(); batch.len()];
            for i in lacking {
                out[i] = "lacking".into();
            }
            for g in &groups {
                let h = histogram(batch, g)?;
                let text = format!(
                    "{:?} {:?} {:?} {:?}",
                    g.members, h.upper_bounds, h.current, h.baseline
                );
                for (i, _) in &g.members {
                    out[*i] = text.clone();
                }
            }
            Ok(out
                .into_iter()
                .map(|t| Verdict::ok(0.0, t).into())
                .collect())
        }
    }

    #[test]
    fn buckets_group_per_histogram() {
        // Two histograms (model a, b), buckets given out of order; cumulative counters.
        let bucket = |model: &str, le: &str, window: &[f64], baseline: &[f64]| {
            TestSeries::from_values(window)
                .labels(&[("__name__", "h_bucket"), ("model", model), ("le", le)])
                .baseline(baseline)
        };
        let series = [
            bucket("a", "+Inf", &[10.0, 30.0], &[0.0, 40.0]),
            bucket("a", "0.5", &[5.0, 15.0], &[0.0, 30.0]),
            bucket("b", "1", &[0.0, 1.0], &[0.0, 1.0]),
            TestSeries::from_values(&[1.0]).labels(&[("__name__", "other")]),
        ];
        let out = testing::run_detector::<Probe>("{}", &series).expect("evaluate");
        // Window increases: le=0.5 +10, +Inf +20, so 10 and 10 per bucket;
        // baseline: 30 and 40 cumulative, so 30 and 10.
        let a = r#"[(0, "+Inf"), (1, "0.5")] [0.5, inf] [10.0, 10.0] [30.0, 10.0]"#;
        assert_eq!(out[0].verdict.summary, a);
        assert_eq!(out[1].verdict.summary, a);
        assert_eq!(out[2].verdict.summary, r#"[(2, "1")] [1.0] [1.0] [1.0]"#);
        assert_eq!(out[3].verdict.summary, "lacking");
    }

    #[test]
    fn repeated_or_bad_le_is_named() {
        let series = [
            TestSeries::from_values(&[1.0]).labels(&[("le", "0.5")]),
            TestSeries::from_values(&[1.0]).labels(&[("le", "0.50")]),
        ];
        let err = testing::run_detector::<Probe>("{}", &series).unwrap_err();
        assert!(err.contains("le=\"0.5\" appears twice"), "{err}");
        let series = [TestSeries::from_values(&[1.0]).labels(&[("le", "big")])];
        let err = testing::run_detector::<Probe>("{}", &series).unwrap_err();
        assert!(err.contains("le=\"big\" is not a number"), "{err}");
    }
}
