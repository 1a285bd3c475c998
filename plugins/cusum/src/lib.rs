//! `cusum`: the two-sided tabular CUSUM control chart (Page, 1954), as in Montgomery,
//! *Introduction to Statistical Quality Control* §9.1, with `k` and `h` in units of
//! the in-control σ. A streaming detector: the cumulative sums live in the host-owned
//! per-series state, and each evaluation consumes only samples newer than the last
//! one it saw.
//!
//! # Config
//!
//! ```json
//! { "k": 0.5, "h": 8.0, "reference_samples": 120, "direction": "both" }
//! ```
//!
//! | field               | type    | default  | meaning |
//! |---------------------|---------|----------|---------|
//! | `k`                 | number  | `0.5`    | allowance (slack) in σ: half the shift to detect fastest (finite, ≥ 0) |
//! | `h`                 | number  | `8.0`    | decision interval in σ (finite, > 0) |
//! | `reference_samples` | integer | `120`    | samples learned as the in-control reference (Phase I, on raw samples or residuals); with `baseline: reference`: the fewest baseline samples accepted (≥ 2) |
//! | `direction`         | string  | `"both"` | `both`, `up` (only `C⁺`), `down` (only `C⁻`) |
//! | `baseline`          | string  | `"season"` | what the rule's baseline window is for: `season`, sums of residuals against the same phase of it; `reference`, its mean and σ are μ₀ and σ₀ |
//! | `season_seconds`    | number  | none: the season the rule's baseline implies | chart residuals against the same time this long ago, from the rule's baseline (see Seasonal metrics; ≥ 1) |
//! | `season_tolerance_seconds` | number | `300` | how much older than one season back the matching sample may be (≥ 0, < `season_seconds`) |
//!
//! Unknown fields are an error. The textbook `k = 0.5, h = 5` has an in-control ARL
//! of ~465 samples (two hours at a 15 s period); the default `h = 8` has ~9 500
//! (Siegmund's approximation: `(e^{2k(h+1.166)} - 2k(h+1.166) - 1)/(2k²)` per side),
//! and still detects a 1σ shift in ~16 samples and a 3σ shift in ~4.
//!
//! # Seasonal metrics
//!
//! As `ewma`: **with a rule baseline one season back** the sums run on `x - x
//! offset <season>` (each new sample minus the newest baseline sample at or before
//! one season earlier, at most `season_tolerance_seconds` older), μ₀ and σ₀ learned
//! from the first `reference_samples` residuals; samples without a baseline value
//! are skipped and counted (`season_unmatched`). The season is `season_seconds`
//! when set, otherwise the one the baseline implies (the time from the baseline's
//! newest sample to the window's newest: the rule's `offset` for a series on a
//! steady schedule; see `klaxon_anomaly_common::season`). The rule's baseline must
//! reach one season back for every new sample, e.g. evaluated every 30 min:
//! `window: 30m`, `baseline: { offset: 1w, window: 35m }`, no config. Until the store
//! holds a season of history the baseline is empty and the sums run on the raw
//! samples; `season_seconds` makes them skip those samples instead. Measured
//! (BENCHMARKS.md, weekly-seasonal metric sampled every minute, that rule, `{}`):
//! every 5-8 σ level shift flagged at the first evaluation, every gradual drift
//! within 2 (median), 0-0.5 false alerts a week on three seed sets; on the raw
//! seasonal metric the defaults fire all the time. Residuals against one past
//! sample rather than an average: an average shared by consecutive samples gives
//! them a common error that the sums accumulate.
//!
//! # Formula
//!
//! In-control mean μ₀ and σ₀ (sample standard deviation): the baseline window's finite
//! samples with `baseline: reference` (recomputed every evaluation), otherwise the
//! series' first `reference_samples` finite samples (or seasonal residuals), learned
//! into the state and then frozen. With `K = k·σ₀`, `H = h·σ₀` and each later finite sample `x_i`:
//!
//! ```text
//! C⁺_i = max(0, x_i - (μ₀ + K) + C⁺_{i-1})
//! C⁻_i = max(0, (μ₀ - K) - x_i + C⁻_{i-1})      C⁺_0 = C⁻_0 = 0
//! ```
//!
//! The chart signals when `C⁺ > H` or `C⁻ > H`. It is not reset after a signal: the
//! alert resolves once the sums fall back under `H`, at about `k·σ₀` per in-control
//! sample. NaN and ±Inf samples are skipped. σ₀ = 0: `K = H = 0`, so any deviation
//! fires, with score ±1e6; scores are clamped to ±1e6 and never NaN.
//!
//! # State
//!
//! Tag `C`, version 1, 67 bytes: last-seen timestamp, `C⁺`, `C⁻`, samples monitored,
//! Phase I count, mean and squared deviations, the newest value, and a reference byte
//! (bit 0: the chart runs on a baseline; bit 1: on seasonal residuals). A chart whose
//! reference kind no longer matches the rule starts over. Unknown tag, version or
//! length: start fresh.
//!
//! # Verdict
//!
//! - score: `C⁺/σ₀` when `C⁺ ≥ C⁻`, else `-C⁻/σ₀` (the sums in σ units; fires past ±`h`);
//!   summary like `cusum C+=9.5σ > h=8 (mean=10, stddev=1, 14 samples)`;
//! - annotations: `cusum_upper`, `cusum_lower` (in the metric's units), `mean`,
//!   `stddev`, `h`, `samples`, `latest`;
//! - while learning, or with too few baseline samples (`baseline: reference`): not
//!   firing, score 0, as `ewma`.
//!
//! # Measured
//!
//! On iid N(0, 1) samples, a rule window of 240 samples judged every 4 samples
//! (15 s samples, 1 min evaluations), 40 000 samples (≈ a week), 5 seeds, defaults: 7.2
//! false alert episodes per week; a 3σ level shift is flagged 3-7 samples after it.
//! (With a 30-sample Phase I it was 18 a week, hence the 120-sample default.)

use klaxon_anomaly_common::season::{self, BaselineUse, DEFAULT_TOLERANCE_SECONDS, Season};
use klaxon_anomaly_common::state::{StateReader, StateWriter, unseen};
use klaxon_anomaly_common::{Direction, Reference, Warmup, scaled};
use klaxon_sdk::prelude::*;
use serde::Deserialize;

/// The CUSUM detector.
pub struct Cusum;

/// Parsed config; see the crate docs.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Allowance in σ.
    pub k: f64,
    /// Decision interval in σ.
    pub h: f64,
    /// Phase I length, or the fewest baseline samples.
    pub reference_samples: u32,
    /// Chart residuals against the same time this many seconds back (none: off).
    pub season_seconds: Option<f64>,
    /// Half-width of the matching past span, in seconds.
    pub season_tolerance_seconds: f64,
    /// What the rule's baseline is for.
    pub baseline: BaselineUse,
    /// Which sum fires.
    pub direction: Direction,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            k: 0.5,
            h: 8.0,
            reference_samples: 120,
            season_seconds: None,
            season_tolerance_seconds: DEFAULT_TOLERANCE_SECONDS,
            baseline: BaselineUse::Season,
            direction: Direction::Both,
        }
    }
}

const SCHEMA: &str = r#"{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "title": "cusum",
  "type": "object",
  "additionalProperties": false,
  "properties": {
    "k": {"type": "number", "minimum": 0, "default": 0.5, "description": "Allowance, in standard deviations."},
    "h": {"type": "number", "exclusiveMinimum": 0, "default": 8.0, "description": "Decision interval, in standard deviations."},
    "reference_samples": {"type": "integer", "minimum": 2, "default": 120, "description": "Samples learned as the in-control reference (no baseline), or fewest baseline samples."},
    "season_seconds": {"type": ["number", "null"], "minimum": 1, "default": null, "description": "Chart each sample minus the rule's baseline samples this many seconds earlier (e.g. 604800: last week), so a daily or weekly cycle drops out."},
    "season_tolerance_seconds": {"type": "number", "minimum": 0, "default": 300, "description": "Baseline samples within this many seconds of one season back are averaged into the expected value."},
    "baseline": {"enum": ["season", "reference"], "default": "season", "description": "With a rule baseline: chart residuals against the same phase of it (season), or use its mean and standard deviation as the in-control reference (reference)."},
    "direction": {"enum": ["both", "up", "down"], "default": "both", "description": "Which cumulative sum fires."}
  }
}"#;

const TAG: u8 = b'C';
const VERSION: u8 = 1;

/// The chart's per-series state.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Chart {
    /// Timestamp of the newest sample consumed.
    pub last_seen_ms: Option<i64>,
    /// `C⁺`.
    pub upper: f64,
    /// `C⁻`.
    pub lower: f64,
    /// Samples monitored so far.
    pub monitored: u64,
    /// Phase I, when running without a baseline.
    pub warmup: Warmup,
    /// The newest finite sample consumed.
    pub latest: f64,
    /// Whether the chart runs on a baseline reference.
    pub on_baseline: bool,
    /// Whether the chart runs on seasonal residuals (`season_seconds`).
    pub seasonal: bool,
}

impl Chart {
    /// Decodes a state; `None` for anything but this exact format.
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        let mut r = StateReader::open(bytes, TAG, VERSION)?;
        let chart = Self {
            last_seen_ms: r.time()?,
            upper: r.f64()?,
            lower: r.f64()?,
            monitored: r.u64()?,
            warmup: Warmup {
                count: r.u64()?,
                mean: r.f64()?,
                m2: r.f64()?,
            },
            latest: r.f64()?,
            on_baseline: false,
            seasonal: false,
        };
        // The reference byte: bit 0 baseline, bit 1 seasonal residuals.
        let flags = r.u8()?;
        let chart = Self {
            on_baseline: flags & 1 == 1,
            seasonal: flags & 2 == 2,
            ..chart
        };
        r.finish()?;
        Some(chart)
    }

    /// Encodes the state.
    pub fn encode(&self) -> Vec<u8> {
        StateWriter::new(TAG, VERSION)
            .time(self.last_seen_ms)
            .f64(self.upper)
            .f64(self.lower)
            .u64(self.monitored)
            .u64(self.warmup.count)
            .f64(self.warmup.mean)
            .f64(self.warmup.m2)
            .f64(self.latest)
            .u8(u8::from(self.on_baseline) | (u8::from(self.seasonal) << 1))
            .finish()
    }

    /// Monitors one finite sample.
    fn monitor(&mut self, k: f64, reference: &Reference, x: f64) {
        let allowance = k * reference.stddev;
        self.upper = (x - (reference.mean + allowance) + self.upper).max(0.0);
        self.lower = ((reference.mean - allowance) - x + self.lower).max(0.0);
        // A sum that overflowed stays the largest finite value: never NaN later.
        self.upper = self.upper.min(f64::MAX);
        self.lower = self.lower.min(f64::MAX);
        self.monitored += 1;
    }
}

impl Detector for Cusum {
    type Config = Config;

    fn info() -> Info {
        Info::new(
            "cusum",
            env!("CARGO_PKG_VERSION"),
            "Two-sided tabular CUSUM: fires when the upper or lower cumulative sum of \
             deviations beyond k·σ from the in-control mean (the baseline window, or the \
             series' first samples) exceeds h·σ.",
        )
        .schema(SCHEMA)
    }

    fn check_config(cfg: &Config) -> Result<(), String> {
        if !(cfg.k.is_finite() && cfg.k >= 0.0) {
            return Err(format!("k: must be a finite number ≥ 0, got {}", cfg.k));
        }
        if !(cfg.h.is_finite() && cfg.h > 0.0) {
            return Err(format!("h: must be a finite number above 0, got {}", cfg.h));
        }
        Season::check(cfg.season_seconds, cfg.season_tolerance_seconds)?;
        cfg.baseline.check(cfg.season_seconds)?;
        if cfg.reference_samples < 2 {
            return Err(format!(
                "reference_samples: must be at least 2 (a standard deviation needs two), got {}",
                cfg.reference_samples
            ));
        }
        Ok(())
    }

    fn evaluate(cfg: &Config, series: &Series<'_>) -> Output {
        let previous = series.state.and_then(Chart::decode);
        // With a baseline the sums run on residuals against its season (set, or
        // implied by the baseline), unless the baseline is the reference.
        let differencing = cfg.baseline.differencing(
            cfg.season_seconds,
            cfg.season_tolerance_seconds,
            series,
            previous.is_some_and(|c| c.seasonal),
        );
        let seasonal = differencing.seasonal;
        // On seasonal residuals the baseline supplies last season's values, and the
        // reference (of the residuals) is learned in Phase I.
        let on_baseline = !seasonal && !series.baseline.is_empty();
        let mut chart = previous
            .filter(|c| c.on_baseline == on_baseline && c.seasonal == seasonal)
            .unwrap_or(Chart {
                on_baseline,
                seasonal,
                ..Chart::default()
            });
        let target = u64::from(cfg.reference_samples);
        let baseline_reference = if on_baseline {
            match Reference::of_window(&series.baseline).filter(|r| r.samples >= target) {
                Some(r) => Some(r),
                None => {
                    let n = series
                        .baseline
                        .values
                        .iter()
                        .filter(|v| v.is_finite())
                        .count();
                    return Verdict::ok(0.0, format!("{n} baseline samples, need {target}"))
                        .annotate("samples", "0")
                        .with_state(chart.encode());
                }
            }
        } else {
            None
        };

        let mut unmatched = 0usize;
        for (t, x) in unseen(&series.window, chart.last_seen_ms) {
            chart.last_seen_ms = Some(t);
            if !x.is_finite() {
                continue;
            }
            let raw = x;
            let Some(x) = differencing.value(&series.baseline, t, x) else {
                unmatched += 1;
                continue;
            };
            match baseline_reference.or_else(|| chart.warmup.reference(target)) {
                Some(reference) => chart.monitor(cfg.k, &reference, x),
                None => chart.warmup.push(x),
            }
            chart.latest = raw;
        }

        let reference = baseline_reference.or_else(|| chart.warmup.reference(target));
        let state = chart.encode();
        let (Some(reference), true) = (reference, chart.monitored > 0) else {
            let v = Verdict::ok(
                0.0,
                format!(
                    "learning reference: {} of {target} samples",
                    chart.warmup.count
                ),
            );
            return season::annotate(v, differencing, unmatched).with_state(state);
        };
        season::annotate(verdict(cfg, &chart, &reference), differencing, unmatched)
            .with_state(state)
    }
}

fn verdict(cfg: &Config, chart: &Chart, reference: &Reference) -> Verdict {
    let upper = scaled(chart.upper, reference.stddev);
    let lower = scaled(chart.lower, reference.stddev);
    let fires_up = upper > cfg.h && cfg.direction != Direction::Down;
    let fires_down = lower > cfg.h && cfg.direction != Direction::Up;
    let score = if upper >= lower { upper } else { -lower };
    let mut summary = String::with_capacity(96);
    let (side, value) = if upper >= lower {
        ("C+", upper)
    } else {
        ("C-", lower)
    };
    summary.push_str(&format!("cusum {side}="));
    push_value(&mut summary, value);
    summary.push_str(if value > cfg.h {
        "σ > h="
    } else {
        "σ ≤ h="
    });
    push_value(&mut summary, cfg.h);
    summary.push_str(" (mean=");
    push_value(&mut summary, reference.mean);
    summary.push_str(", stddev=");
    push_value(&mut summary, reference.stddev);
    summary.push_str(&format!(", {} samples)", chart.monitored));
    Verdict::new(fires_up || fires_down, score, summary)
        .annotate("cusum_upper", format_value(chart.upper))
        .annotate("cusum_lower", format_value(chart.lower))
        .annotate("mean", format_value(reference.mean))
        .annotate("stddev", format_value(reference.stddev))
        .annotate("h", format_value(cfg.h))
        .annotate("samples", chart.monitored.to_string())
        .annotate("latest", format_value(chart.latest))
}

klaxon_sdk::export_detector!(Cusum);

#[cfg(test)]
mod tests {
    use super::*;
    use klaxon_anomaly_common::fixtures::replay;
    use klaxon_sdk::testing::{self, TestSeries};

    const NAN: f64 = f64::NAN;

    /// The defaults with the 30-sample Phase I the vectors below were computed for.
    const CFG30: &str = r#"{"reference_samples":30}"#;

    fn run(config: &str, series: TestSeries) -> Output {
        testing::run_detector::<Cusum>(config, &[series])
            .expect("evaluate")
            .remove(0)
    }

    /// Reference 2,4,4,4,5,5,7,9: μ₀ = 5, σ₀ = sqrt(32/7) = 2.138089935.
    const REFERENCE: [f64; 8] = [2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0];

    #[test]
    fn hand_computed_sums() {
        // k = 0.5 → K = 1.069044968, h = 2 → H = 4.276179871.
        // x = 8: C+ = 8 - 6.069044968 = 1.930955032; C- = max(0, 3.930955 - 8) = 0.
        // x = 8: C+ = 3.861910065 (< H). x = 7: C+ = 4.792865097 > H → fires.
        // Score = 4.792865097 / 2.138089935 = 2.241657387
        let config = r#"{"k":0.5,"h":2,"reference_samples":8}"#;
        let s0 = (32.0f64 / 7.0).sqrt();
        let mut values = REFERENCE.to_vec();
        values.extend([8.0, 8.0]);
        let v = run(config, TestSeries::from_values(&values)).verdict;
        assert!(!v.firing);
        let c2 = 2.0 * (8.0 - 5.0 - 0.5 * s0);
        assert!((v.score - c2 / s0).abs() < 1e-12);
        values.push(7.0);
        let v = run(config, TestSeries::from_values(&values)).verdict;
        let c3 = c2 + 7.0 - 5.0 - 0.5 * s0;
        assert!((c3 - 4.792865097).abs() < 1e-8);
        assert!(v.firing);
        assert!((v.score - c3 / s0).abs() < 1e-12);
        assert_eq!(v.annotation("cusum_upper"), Some("4.79287"));
        assert_eq!(v.annotation("cusum_lower"), Some("0"));
        assert!(
            v.summary.starts_with("cusum C+=2.24166σ > h=2"),
            "{}",
            v.summary
        );
    }

    #[test]
    fn lower_side_and_direction() {
        // Three samples of 1: C-_1 = 3.930955 - 1 = 2.930955, C-_2 = 5.861910,
        // C-_3 = 8.792865 → 4.1125σ > 2.
        let mut values = REFERENCE.to_vec();
        values.extend([1.0, 1.0, 1.0]);
        let cfg = |d: &str| format!(r#"{{"k":0.5,"h":2,"reference_samples":8,"direction":"{d}"}}"#);
        let v = run(&cfg("both"), TestSeries::from_values(&values)).verdict;
        assert!(v.firing);
        let s0 = (32.0f64 / 7.0).sqrt();
        assert!((v.score + 3.0 * (4.0 - 0.5 * s0) / s0).abs() < 1e-12);
        assert!(
            run(&cfg("down"), TestSeries::from_values(&values))
                .verdict
                .firing
        );
        assert!(
            !run(&cfg("up"), TestSeries::from_values(&values))
                .verdict
                .firing
        );
    }

    #[test]
    fn recovers_after_the_shift_ends() {
        // Shift of +4 for 5 samples, then back to the mean: C+ shrinks by K per sample.
        let config = r#"{"k":0.5,"h":2,"reference_samples":8}"#;
        let mut values = REFERENCE.to_vec();
        values.extend([9.0; 5]);
        assert!(run(config, TestSeries::from_values(&values)).verdict.firing);
        values.extend([5.0; 20]);
        let v = run(config, TestSeries::from_values(&values)).verdict;
        assert!(!v.firing);
        assert_eq!(v.score, 0.0);
    }

    #[test]
    fn incremental_evaluation_equals_one_shot() {
        let values: Vec<f64> = (0..70)
            .map(|i| {
                if i % 13 == 4 {
                    NAN
                } else {
                    (i as f64 * 1.3).cos() + if i > 50 { 2.0 } else { 0.0 }
                }
            })
            .collect();
        let full = TestSeries::from_values(&values);
        let one_shot = run(CFG30, full.clone());
        assert!(one_shot.verdict.firing, "{}", one_shot.verdict.summary);
        for (window, step) in [(25, 3), (10, 1), (70, 70)] {
            assert_eq!(replay::<Cusum>(CFG30, &values, window, step), one_shot);
        }
        assert_eq!(
            run(CFG30, full.state(one_shot.state.clone().unwrap())),
            one_shot
        );
    }

    #[test]
    fn baseline_reference() {
        let config = r#"{"k":0.5,"h":2,"reference_samples":8,"baseline":"reference"}"#;
        let s = TestSeries::from_values(&[8.0, 8.0, 7.0]).baseline(&REFERENCE);
        assert!(run(config, s).verdict.firing);
        let s = TestSeries::from_values(&[8.0]).baseline(&REFERENCE[..4]);
        assert_eq!(run(config, s).verdict.summary, "4 baseline samples, need 8");
    }

    #[test]
    fn empty_constant_and_nan_windows_never_give_nan() {
        for values in [vec![], vec![NAN; 40], vec![4.0; 40]] {
            let v = run(CFG30, TestSeries::from_values(&values)).verdict;
            assert!(!v.firing, "{values:?}");
            assert_eq!(v.score, 0.0);
        }
        let mut values = vec![4.0; 30];
        values.push(3.0);
        let v = run(CFG30, TestSeries::from_values(&values)).verdict;
        assert_eq!((v.firing, v.score), (true, -1e6));
        let mut values = [0.0, 1.0].repeat(15);
        values.extend([f64::MAX, f64::MAX, f64::MAX]);
        let v = run(CFG30, TestSeries::from_values(&values)).verdict;
        assert!(v.score.is_finite() && v.firing);
    }

    #[test]
    fn foreign_state_starts_fresh() {
        let s = || TestSeries::from_values(&REFERENCE);
        let fresh = run(r#"{"reference_samples":8}"#, s());
        for junk in [vec![], vec![b'C', 9], vec![b'E', 1, 0]] {
            assert_eq!(run(r#"{"reference_samples":8}"#, s().state(junk)), fresh);
        }
        assert_eq!(fresh.state.unwrap().len(), 67);
    }

    #[test]
    fn config_checks() {
        let check = testing::check_detector_config::<Cusum>;
        assert!(check("{}").is_ok());
        assert!(check(r#"{"k":0,"h":4,"reference_samples":5,"direction":"down"}"#).is_ok());
        for (config, field) in [
            (r#"{"k":-1}"#, "k:"),
            (r#"{"h":0}"#, "h:"),
            (r#"{"h":"5"}"#, "h:"),
            (r#"{"reference_samples":0}"#, "reference_samples:"),
            (r#"{"direction":"x"}"#, "direction:"),
        ] {
            let err = check(config).unwrap_err();
            assert!(err.starts_with(field), "{config}: {err}");
        }
        assert!(
            check(r#"{"H":3}"#)
                .unwrap_err()
                .contains("unknown field `H`")
        );
    }

    #[test]
    fn season_seconds_charts_residuals_against_last_season() {
        klaxon_anomaly_common::fixtures::assert_season_charts_residuals::<Cusum>("cusum_upper");
    }

    #[test]
    fn a_rule_baseline_implies_the_season() {
        use klaxon_anomaly_common::fixtures::assert_baseline_implies_the_season;
        // Without season_seconds, the baseline one season back (60 s) sets the season:
        // the verdicts equal those with season_seconds: 60.
        assert_baseline_implies_the_season::<Cusum>(r#"{"season_tolerance_seconds":1}"#, 10.0);
        // `baseline: reference` keeps the baseline as the in-control reference, and
        // cannot be combined with an explicit season.
        let err = testing::check_detector_config::<Cusum>(
            r#"{"baseline":"reference","season_seconds":600}"#,
        )
        .unwrap_err();
        assert!(err.starts_with("baseline:"), "{err}");
    }
}
