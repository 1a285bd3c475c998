//! Test helpers the detector crates share (native builds only).
//!
//! - [`river_stream`]: 600 samples, N(0, 1) then N(3, 1) from sample 300, rounded to 3
//!   decimals (`testdata/ph.py` made them with Python's `random.Random(7)`); the
//!   river-computed vectors in the `page_hinkley` and `adwin` tests run over it.
//! - [`river_prefix`]: one evaluation of the stream's first samples, with a state.
//! - [`replay`]: evaluates a stream the way the host does, window after overlapping
//!   window with the state handed back, to check streaming detectors against a
//!   one-shot evaluation.
//! - [`seasonal_with_last_season`]: a strongly seasonal series and its baseline one
//!   season back, for the streaming detectors' `season_seconds` and the season a
//!   baseline implies ([`assert_baseline_implies_the_season`]).

use klaxon_sdk::Detector;
use klaxon_sdk::testing::{self, TestSeries};
use klaxon_sdk::verdict::Output;

/// The reference stream (see the module docs).
pub fn river_stream() -> Vec<f64> {
    include_str!("../testdata/river_stream.txt")
        .trim()
        .split(',')
        .map(|x| x.trim().parse().expect("river_stream.txt holds numbers"))
        .collect()
}

/// Evaluates the first `end` samples of [`river_stream`] (15 s apart) at the newest
/// one's time with `config` and the state of an earlier evaluation, as the host does
/// for a rule whose window reaches back to the stream's start.
pub fn river_prefix<D: Detector>(config: &str, end: usize, state: Option<Vec<u8>>) -> Output {
    let xs = river_stream();
    let ts = TestSeries::from_values(&xs).timestamps_ms;
    let mut s = TestSeries::new(
        &[("__name__", "test")],
        ts[..end].to_vec(),
        xs[..end].to_vec(),
    );
    s.state = state;
    testing::run_detector_at::<D>(config, &[s], ts[end - 1])
        .expect("the river stream evaluates")
        .remove(0)
}

/// Evaluates `values` (15 s apart, as [`TestSeries::from_values`] spaces them) in
/// evaluations every `step` samples over windows of the last `window` samples,
/// handing each evaluation's state to the next, and returns the last output. The
/// evaluation time is the newest sample's.
pub fn replay<D: Detector>(config: &str, values: &[f64], window: usize, step: usize) -> Output {
    let full = TestSeries::from_values(values);
    let mut state: Option<Vec<u8>> = None;
    let mut last = None;
    let mut end = 0;
    while end < values.len() {
        end = (end + step.max(1)).min(values.len());
        let start = end.saturating_sub(window);
        let mut s = TestSeries::new(
            &[("__name__", "test")],
            full.timestamps_ms[start..end].to_vec(),
            values[start..end].to_vec(),
        );
        s.state = state.take();
        let out = testing::run_detector_at::<D>(config, &[s], full.timestamps_ms[end - 1])
            .expect("evaluate")
            .remove(0);
        state = out.state.clone();
        last = Some(out);
    }
    last.expect("replay needs at least one sample")
}

/// Season of [`seasonal_with_last_season`], in seconds (samples are 1 s apart).
pub const SEASON_SECONDS: i64 = 60;

/// Deterministic uniform noise in [-1, 1) (a SplitMix64 hash of `i`).
fn noise(i: u64) -> f64 {
    let mut x = i.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^= x >> 31;
    (x >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
}

/// `n` samples 1 s apart, `50 + 20·sin(2πi/60)` plus uniform noise in [-1, 1), plus
/// `shift` from sample `shift_at` on; the baseline holds the same cycle with other
/// noise, exactly one season ([`SEASON_SECONDS`]) before each window sample. The
/// residual's σ is ≈ 0.82; the cycle swings ±20, so a detector reading the raw values
/// sees mostly the cycle.
pub fn seasonal_with_last_season(n: usize, shift_at: usize, shift: f64) -> TestSeries {
    let t0 = 1_767_571_200_000i64;
    let cycle = |i: usize| 50.0 + 20.0 * (std::f64::consts::TAU * i as f64 / 60.0).sin();
    let timestamps: Vec<i64> = (0..n).map(|i| t0 + i as i64 * 1000).collect();
    let values = (0..n)
        .map(|i| cycle(i) + noise(i as u64) + if i >= shift_at { shift } else { 0.0 })
        .collect();
    let mut s = TestSeries::new(&[("__name__", "test")], timestamps.clone(), values);
    s.baseline_timestamps_ms = timestamps
        .iter()
        .map(|t| t - SEASON_SECONDS * 1000)
        .collect();
    s.baseline_values = (0..n)
        .map(|i| cycle(i) + noise(1_000_000 + i as u64))
        .collect();
    s
}

/// A streaming detector with `config` (which sets `season_seconds: 60`) on
/// [`seasonal_with_last_season`]: the verdict after 300 in-control samples, and after
/// 10 more shifted by `shift`; each judged at its newest sample's time.
pub fn season_before_and_after<D: Detector>(config: &str, shift: f64) -> (Output, Output) {
    let judge = |n: usize| {
        let s = seasonal_with_last_season(n, 300, shift);
        let at = *s.timestamps_ms.last().expect("samples");
        testing::run_detector_at::<D>(config, &[s], at)
            .expect("evaluate")
            .remove(0)
    };
    (judge(300), judge(310))
}

/// The `season_seconds` behaviour every streaming detector shares, with
/// `season_seconds: 60`: on a ±20 cycle with noise ≈ 0.8, residuals against one season
/// back keep the test quiet, a shift of 10 fires within 10 samples with the
/// detector's `statistic` annotation and `season_seconds`, and nothing is unmatched;
/// then [`assert_season_unmatched_and_tolerance_checked`].
pub fn assert_season_charts_residuals<D: Detector>(statistic: &str) {
    let config = r#"{"season_seconds":60,"season_tolerance_seconds":1}"#;
    let (before, after) = season_before_and_after::<D>(config, 10.0);
    assert!(!before.verdict.firing, "{}", before.verdict.summary);
    assert!(after.verdict.firing, "{}", after.verdict.summary);
    assert!(
        after.verdict.annotation(statistic).is_some(),
        "no `{statistic}` annotation: {}",
        after.verdict.summary
    );
    assert_eq!(after.verdict.annotation("season_seconds"), Some("60"));
    assert_eq!(after.verdict.annotation("season_unmatched"), None);
    assert_season_unmatched_and_tolerance_checked::<D>(config);
}

/// The `season_seconds` contract every streaming detector shares, for `config` (which
/// sets `season_seconds: 60` and a tolerance under it): with no baseline sample one
/// season back, every sample is skipped, counted in `season_unmatched`, and the
/// detector does not fire; a tolerance of a whole season is refused, naming the field.
pub fn assert_season_unmatched_and_tolerance_checked<D: Detector>(config: &str) {
    let mut s = seasonal_with_last_season(50, 300, 0.0);
    s.baseline_timestamps_ms.clear();
    s.baseline_values.clear();
    let v = testing::run_detector::<D>(config, &[s])
        .expect("evaluate")
        .remove(0)
        .verdict;
    assert!(!v.firing, "{}", v.summary);
    assert_eq!(v.annotation("season_unmatched"), Some("50"));
    let err = testing::check_detector_config::<D>(
        r#"{"season_seconds":60,"season_tolerance_seconds":60}"#,
    )
    .expect_err("a tolerance of a whole season is refused");
    assert!(err.starts_with("season_tolerance_seconds:"), "{err}");
}

/// The baseline-implied season every streaming detector shares: `config` (which does
/// not set `season_seconds`, and sets `season_tolerance_seconds` under 60) on [`seasonal_with_last_season`] gives the same verdicts
/// as `config` with `season_seconds: 60`, before and after a shift of `shift`, and
/// the verdict says the season it used.
pub fn assert_baseline_implies_the_season<D: Detector>(config: &str, shift: f64) {
    let explicit = if config.trim() == "{}" {
        r#"{"season_seconds":60}"#.to_owned()
    } else {
        config.replacen('{', r#"{"season_seconds":60,"#, 1)
    };
    let (before, after) = season_before_and_after::<D>(config, shift);
    let (e_before, e_after) = season_before_and_after::<D>(&explicit, shift);
    assert_eq!(before, e_before, "{config} vs {explicit}");
    assert_eq!(after, e_after, "{config} vs {explicit}");
    assert!(!before.verdict.firing, "{}", before.verdict.summary);
    assert!(after.verdict.firing, "{}", after.verdict.summary);
    assert_eq!(after.verdict.annotation("season_seconds"), Some("60"));
}
