//! `seasonal`: compares the latest sample with the same time one or more periods back
//! ("now vs the same minute of the last 4 weeks"), as mean ± k·σ of those values or as
//! a ratio to their mean.
//!
//! # Config
//!
//! ```json
//! { "period_seconds": 604800, "periods": 4, "tolerance_seconds": 300,
//!   "mode": "sigma", "k": 5.0, "min_ratio": 0.5, "max_ratio": 2.0,
//!   "min_periods": 2, "direction": "both" }
//! ```
//!
//! | field               | type    | default   | meaning |
//! |---------------------|---------|-----------|---------|
//! | `period_seconds`    | number  | `604800`  | the season (1 week; `86400` for daily) (> 0) |
//! | `periods`           | integer | `4`       | how many periods back to look (1..=1000) |
//! | `tolerance_seconds` | number  | `300`     | samples within ± this of each past time are averaged into that period's value (≥ 0) |
//! | `mode`              | string  | `"sigma"` | `sigma`: `z = (x - mean)/stddev`, the mean of the past values and the spread of the past samples; `ratio`: `x / mean` |
//! | `k`                 | number  | `5.0`     | sigma mode: fire when `|z| > k` (finite, > 0) |
//! | `min_ratio`         | number  | `0.5`     | ratio mode: fire below it (finite, ≥ 0) |
//! | `max_ratio`         | number  | `2.0`     | ratio mode: fire above it (finite, > `min_ratio`) |
//! | `min_periods`       | integer | `2`       | fewest past values worth judging (≥ 2 in sigma mode, ≥ 1 in ratio mode, ≤ `periods`) |
//! | `direction`         | string  | `"both"`  | `both`, `up` (only high), `down` (only low) |
//!
//! Unknown fields are an error. Use `ratio` mode for "traffic halved compared to the
//! usual".
//!
//! The default k = 5 was measured in the detection-quality harness (BENCHMARKS.md):
//! a noisy weekly-seasonal metric sampled every minute, the rule below (10-minute
//! window, 4 past weeks ± 5 min through a baseline, evaluated every minute, `for:
//! 0`); grid k = 3, 4, 4.5, 5, checked on a second seed set. k = 5 finds every 6-10 σ
//! spike and 5-8 σ level shift at the first evaluation with at most one false alert
//! in 4 weeks; k = 3 pages 46 times a week (the latest sample is judged at every
//! evaluation, so the threshold must sit far in the tail).
//!
//! # Where the past values come from
//!
//! The detector reads every sample the host hands it: the rule's window and, when the
//! rule has one, its baseline window. Give it samples that span the periods, either a
//! window of `periods × period + tolerance` (e.g. `window: 29d` for 4 weeks, with
//! `store.retention` at least that long), or a baseline covering the past weeks
//! (e.g. `baseline: { offset: 6d23h55m, window: 21d10m }` with a short window). A
//! period with no finite sample within the tolerance is skipped.
//!
//! # Formula
//!
//! - `x`: the latest finite sample of the window, at time `t` (NaN and ±Inf samples are
//!   skipped everywhere);
//! - `p_j`: the mean of the finite samples within `[t - j·P - tol, t - j·P + tol]`, for
//!   `j = 1..=periods`;
//! - sigma mode: `mean` = the mean of the `p_j`; `stddev` = the sample standard
//!   deviation (n-1) of every finite past sample the `p_j` were averaged from (all
//!   periods pooled), so that one sample `x` is compared with the spread of single
//!   past samples, not with the much narrower spread of period averages (with one
//!   sample per period the two are the same); `score = (x - mean)/stddev`; a zero
//!   stddev gives 0 when `x == mean`, else ±1e6;
//! - ratio mode: `score = x / mean`; a zero mean gives 1 when `x == 0`, else ±1e6 (the
//!   sign of `x`).
//!
//! Scores are clamped to ±1e6: never NaN or infinite.
//!
//! # Verdict
//!
//! - summary like `latest 40 vs 100 ± 5 over 4 past periods: z=-12`;
//! - annotations: `expected` (the mean of the `p_j`), `stddev` (sigma mode), `ratio`,
//!   `periods` (past values found), `latest`;
//! - no finite sample in the window: not firing, score 0, `no finite samples in window`;
//! - fewer than `min_periods` past values: not firing, score 0, summary like
//!   `found 1 of 4 past periods, need 2`.

use klaxon_anomaly_common::{Direction, MAX_SCORE, scaled};
use klaxon_sdk::prelude::*;
use serde::Deserialize;

/// The seasonal detector.
pub struct Seasonal;

/// How the latest sample is compared with the past.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Standard deviations from the mean of the past values.
    #[default]
    Sigma,
    /// Ratio to the mean of the past values.
    Ratio,
}

/// Parsed config; see the crate docs.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// The season, in seconds.
    pub period_seconds: f64,
    /// Periods to look back.
    pub periods: u32,
    /// Half-width of the averaging window around each past time, in seconds.
    pub tolerance_seconds: f64,
    /// Comparison.
    pub mode: Mode,
    /// Sigma mode threshold.
    pub k: f64,
    /// Ratio mode lower bound.
    pub min_ratio: f64,
    /// Ratio mode upper bound.
    pub max_ratio: f64,
    /// Fewest past values.
    pub min_periods: u32,
    /// Which side fires.
    pub direction: Direction,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            period_seconds: 604_800.0,
            periods: 4,
            tolerance_seconds: 300.0,
            mode: Mode::Sigma,
            k: 5.0,
            min_ratio: 0.5,
            max_ratio: 2.0,
            min_periods: 2,
            direction: Direction::Both,
        }
    }
}

const SCHEMA: &str = r#"{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "title": "seasonal",
  "type": "object",
  "additionalProperties": false,
  "properties": {
    "period_seconds": {"type": "number", "exclusiveMinimum": 0, "default": 604800, "description": "The season, in seconds."},
    "periods": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 4, "description": "Periods to look back."},
    "tolerance_seconds": {"type": "number", "minimum": 0, "default": 300, "description": "Samples within this many seconds of each past time are averaged."},
    "mode": {"enum": ["sigma", "ratio"], "default": "sigma", "description": "Standard deviations from, or ratio to, the mean of the past values."},
    "k": {"type": "number", "exclusiveMinimum": 0, "default": 5.0, "description": "Sigma mode: fire when |z| exceeds this."},
    "min_ratio": {"type": "number", "minimum": 0, "default": 0.5, "description": "Ratio mode: fire below this ratio."},
    "max_ratio": {"type": "number", "exclusiveMinimum": 0, "default": 2.0, "description": "Ratio mode: fire above this ratio."},
    "min_periods": {"type": "integer", "minimum": 1, "default": 2, "description": "Fewest past values worth judging."},
    "direction": {"enum": ["both", "up", "down"], "default": "both", "description": "Which side fires."}
  }
}"#;

/// The finite samples of `w` within `[from, to]`.
fn finite_within<'a>(w: &Window<'a>, from: i64, to: i64) -> impl Iterator<Item = f64> + 'a {
    let start = w.timestamps_ms.partition_point(|&t| t < from);
    let end = w.timestamps_ms.partition_point(|&t| t <= to);
    let values: &'a [f64] = w.values.get(start..end).unwrap_or_default();
    values.iter().copied().filter(|v| v.is_finite())
}

/// What the past periods say about the sample at `t_ms`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Past {
    /// The past values `p_j` (each period's mean within the tolerance), newest period
    /// first; periods without a finite sample are skipped.
    pub values: Vec<f64>,
    /// Every finite raw sample those values were averaged from.
    pub samples: Vec<f64>,
}

/// The past values and raw samples for the sample at `t_ms`.
pub fn past(cfg: &Config, series: &Series<'_>, t_ms: i64) -> Past {
    let period_ms = (cfg.period_seconds * 1000.0) as i64;
    let tol_ms = (cfg.tolerance_seconds * 1000.0) as i64;
    let mut out = Past::default();
    for j in 1..=i64::from(cfg.periods) {
        let center = t_ms.saturating_sub(period_ms.saturating_mul(j));
        let (from, to) = (center.saturating_sub(tol_ms), center.saturating_add(tol_ms));
        let before = out.samples.len();
        out.samples
            .extend(finite_within(&series.window, from, to).chain(finite_within(
                &series.baseline,
                from,
                to,
            )));
        let period = &out.samples[before..];
        let mean = period.iter().sum::<f64>() / period.len() as f64;
        if !period.is_empty() && mean.is_finite() {
            out.values.push(mean);
        } else {
            out.samples.truncate(before);
        }
    }
    out
}

/// The past values `p_j`, newest period first, for the sample at `t_ms`.
pub fn past_values(cfg: &Config, series: &Series<'_>, t_ms: i64) -> Vec<f64> {
    past(cfg, series, t_ms).values
}

impl Detector for Seasonal {
    type Config = Config;

    fn info() -> Info {
        Info::new(
            "seasonal",
            env!("CARGO_PKG_VERSION"),
            "Compares the latest sample with the same time one or more periods back \
             (mean ± k·σ of those values, or the ratio to their mean).",
        )
        .schema(SCHEMA)
    }

    fn check_config(cfg: &Config) -> Result<(), String> {
        if !(cfg.period_seconds.is_finite() && cfg.period_seconds >= 0.001) {
            return Err(format!(
                "period_seconds: must be a finite number of at least 0.001, got {}",
                cfg.period_seconds
            ));
        }
        if !(1..=1000).contains(&cfg.periods) {
            return Err(format!(
                "periods: must be between 1 and 1000, got {}",
                cfg.periods
            ));
        }
        if !(cfg.tolerance_seconds.is_finite() && cfg.tolerance_seconds >= 0.0) {
            return Err(format!(
                "tolerance_seconds: must be a finite number ≥ 0, got {}",
                cfg.tolerance_seconds
            ));
        }
        if !(cfg.k.is_finite() && cfg.k > 0.0) {
            return Err(format!("k: must be a finite number above 0, got {}", cfg.k));
        }
        if !(cfg.min_ratio.is_finite() && cfg.min_ratio >= 0.0) {
            return Err(format!(
                "min_ratio: must be a finite number ≥ 0, got {}",
                cfg.min_ratio
            ));
        }
        if !(cfg.max_ratio.is_finite() && cfg.max_ratio > cfg.min_ratio) {
            return Err(format!(
                "max_ratio: must be a finite number above min_ratio ({}), got {}",
                cfg.min_ratio, cfg.max_ratio
            ));
        }
        let least = if cfg.mode == Mode::Sigma { 2 } else { 1 };
        if cfg.min_periods < least || cfg.min_periods > cfg.periods {
            return Err(format!(
                "min_periods: must be between {least} and periods ({}), got {}",
                cfg.periods, cfg.min_periods
            ));
        }
        Ok(())
    }

    fn evaluate(cfg: &Config, series: &Series<'_>) -> Output {
        let Some((latest_index, latest)) = series.window.last_finite() else {
            return Verdict::ok(0.0, "no finite samples in window").into();
        };
        let t = series.window.timestamps_ms[latest_index];
        let past = past(cfg, series, t);
        let found = past.values.len();
        if found < cfg.min_periods as usize {
            return Verdict::ok(
                0.0,
                format!(
                    "found {found} of {} past periods, need {}",
                    cfg.periods, cfg.min_periods
                ),
            )
            .annotate("periods", found.to_string())
            .into();
        }
        let expected = stats::moments(&past.values).map_or(0.0, |m| m.mean);
        // The spread of single past samples, the same kind of thing as `latest`.
        let stddev = stats::moments(&past.samples)
            .and_then(|m| m.sample_stddev())
            .filter(|s| s.is_finite())
            .unwrap_or(0.0);
        let ratio = if expected == 0.0 {
            if latest == 0.0 {
                1.0
            } else {
                MAX_SCORE.copysign(latest)
            }
        } else {
            scaled(latest, expected)
        };
        let (score, firing) = match cfg.mode {
            Mode::Sigma => {
                let z = scaled(latest - expected, stddev);
                (z, cfg.direction.exceeds(z, cfg.k))
            }
            Mode::Ratio => {
                let high = ratio > cfg.max_ratio && cfg.direction != Direction::Down;
                let low = ratio < cfg.min_ratio && cfg.direction != Direction::Up;
                (ratio, high || low)
            }
        };
        let mut summary = String::from("latest ");
        push_value(&mut summary, latest);
        summary.push_str(" vs ");
        push_value(&mut summary, expected);
        if cfg.mode == Mode::Sigma {
            summary.push_str(" ± ");
            push_value(&mut summary, stddev);
        }
        summary.push_str(&format!(" over {found} past periods: "));
        summary.push_str(if cfg.mode == Mode::Sigma {
            "z="
        } else {
            "ratio="
        });
        push_value(&mut summary, score);
        let mut v =
            Verdict::new(firing, score, summary).annotate("expected", format_value(expected));
        if cfg.mode == Mode::Sigma {
            v = v.annotate("stddev", format_value(stddev));
        }
        v.annotate("ratio", format_value(ratio))
            .annotate("periods", found.to_string())
            .annotate("latest", format_value(latest))
            .into()
    }
}

klaxon_sdk::export_detector!(Seasonal);

#[cfg(test)]
mod tests {
    use super::*;
    use klaxon_sdk::testing::{self, EVAL_TIME_MS, TestSeries};

    const HOUR_MS: i64 = 3_600_000;

    /// A daily series: one sample per hour for `days` days ending at EVAL_TIME_MS, value
    /// `f(sample index)`.
    fn hourly(days: i64, f: impl Fn(i64) -> f64) -> TestSeries {
        let n = days * 24 + 1;
        let ts: Vec<i64> = (0..n)
            .map(|i| EVAL_TIME_MS - (n - 1 - i) * HOUR_MS)
            .collect();
        let vs: Vec<f64> = (0..n).map(f).collect();
        TestSeries::new(&[("__name__", "test")], ts, vs)
    }

    fn judge(config: &str, series: TestSeries) -> Verdict {
        testing::run_detector::<Seasonal>(config, &[series])
            .unwrap()
            .remove(0)
            .verdict
    }

    const DAILY: &str = r#"{"period_seconds":86400,"periods":4,"tolerance_seconds":60,"k":3}"#;

    #[test]
    fn hand_computed_sigma() {
        // 4 days + 1 hour of hourly samples; the latest (index 96) compared with
        // indices 72, 48, 24, 0, whose values are 100, 104, 96, 100 (set below):
        // mean 100, squared deviations 0+16+16+0 = 32, s = sqrt(32/3) = 3.265986.
        // latest 115: z = 15/3.265986 = 4.592793 > 3.
        let past = [(0, 100.0), (24, 96.0), (48, 104.0), (72, 100.0)];
        let series = |latest: f64| {
            hourly(4, move |i| match past.iter().find(|(j, _)| *j == i) {
                Some((_, v)) => *v,
                None if i == 96 => latest,
                None => 1000.0 + i as f64, // other hours are irrelevant
            })
        };
        let v = judge(DAILY, series(115.0));
        assert!(v.firing);
        assert!((v.score - 15.0 / (32.0f64 / 3.0).sqrt()).abs() < 1e-12);
        assert_eq!(v.annotation("expected"), Some("100"));
        assert_eq!(v.annotation("stddev"), Some("3.26599"));
        assert_eq!(v.annotation("periods"), Some("4"));
        assert_eq!(
            v.summary,
            "latest 115 vs 100 ± 3.26599 over 4 past periods: z=4.59279"
        );
        // latest 105: z = 1.530931 → quiet.
        let v = judge(DAILY, series(105.0));
        assert!(!v.firing);
        assert!((v.score - 5.0 / (32.0f64 / 3.0).sqrt()).abs() < 1e-12);
        // ratio mode: 115/100 = 1.15 within 0.5..2; 40/100 = 0.4 fires low.
        let ratio = r#"{"period_seconds":86400,"tolerance_seconds":60,"mode":"ratio"}"#;
        let v = judge(ratio, series(115.0));
        assert_eq!((v.firing, v.score), (false, 1.15));
        let v = judge(ratio, series(40.0));
        assert_eq!((v.firing, v.score), (true, 0.4));
        assert!(!judge(&ratio.replace('}', r#","direction":"up"}"#), series(40.0)).firing);
    }

    #[test]
    fn sigma_is_the_spread_of_single_past_samples() {
        // Periods 1..3 back, ± 1 h: samples 99, 100, 101 around each past time, so
        // every p_j = 100 (their spread is 0), while single samples spread:
        // nine samples, mean 100, squared deviations 3·1 + 3·1 = 6, s = sqrt(6/8).
        let series = |latest: f64| {
            hourly(4, move |i| match (i, i % 24) {
                (96, _) => latest,
                (_, 23) => 99.0,
                (_, 0) => 100.0,
                (_, 1) => 101.0,
                _ => 1000.0,
            })
        };
        let config = r#"{"period_seconds":86400,"periods":3,"tolerance_seconds":3600}"#;
        let s = (6.0f64 / 8.0).sqrt();
        // 104: z = 4/0.866025 = 4.6188, under the default k = 5.
        let v = judge(config, series(104.0));
        assert!(!v.firing);
        assert!((v.score - 4.0 / s).abs() < 1e-12);
        assert_eq!(v.annotation("expected"), Some("100"));
        assert_eq!(v.annotation("stddev"), Some("0.866025"));
        // 105: z = 5.7735 > 5.
        let v = judge(config, series(105.0));
        assert!(v.firing);
        assert!((v.score - 5.0 / s).abs() < 1e-12);
    }

    #[test]
    fn tolerance_averages_neighbours_and_baseline_counts_too() {
        // Window: only the last 2 hours (latest = 130 at EVAL). Baseline: hourly
        // samples of the previous 3 days. With tolerance 1 h, the past value of day j
        // is the mean of the 3 samples around EVAL - j·24 h.
        let window = TestSeries::new(
            &[("__name__", "test")],
            vec![EVAL_TIME_MS - HOUR_MS, EVAL_TIME_MS],
            vec![100.0, 130.0],
        );
        let mut series = window;
        let n = 3 * 24 + 2;
        series.baseline_timestamps_ms = (0..n)
            .map(|i| EVAL_TIME_MS - 2 * HOUR_MS - (n - 1 - i) * HOUR_MS)
            .collect();
        // Value = hours before EVAL, so around day j: (24j-1, 24j, 24j+1) → mean 24j.
        series.baseline_values = series
            .baseline_timestamps_ms
            .iter()
            .map(|t| ((EVAL_TIME_MS - t) / HOUR_MS) as f64)
            .collect();
        let config = r#"{"period_seconds":86400,"periods":3,"tolerance_seconds":3600,"mode":"ratio","min_periods":1}"#;
        let v = judge(config, series.clone());
        // p = 24, 48, (72 and 71, 73 → 72) → mean 48, ratio 130/48 = 2.708333 > 2.
        assert_eq!(v.annotation("expected"), Some("48"));
        assert_eq!(v.annotation("periods"), Some("3"));
        assert!((v.score - 130.0 / 48.0).abs() < 1e-12);
        assert!(v.firing);
    }

    #[test]
    fn missing_periods() {
        // Only one day of history: one past value.
        let v = judge(DAILY, hourly(1, |_| 5.0));
        assert_eq!((v.firing, v.score), (false, 0.0));
        assert_eq!(v.summary, "found 1 of 4 past periods, need 2");
        // NaN past values do not count.
        let v = judge(
            DAILY,
            hourly(4, |i| if i % 24 == 0 && i < 96 { f64::NAN } else { 5.0 }),
        );
        assert_eq!(v.summary, "found 0 of 4 past periods, need 2");
    }

    #[test]
    fn empty_constant_and_nan_windows_never_give_nan() {
        for s in [
            TestSeries::from_values(&[]),
            TestSeries::from_values(&[f64::NAN; 5]),
            hourly(4, |_| 7.0),
            hourly(4, |_| 0.0),
            hourly(4, |i| if i % 2 == 0 { f64::MAX } else { -f64::MAX }),
        ] {
            for mode in ["sigma", "ratio"] {
                let config =
                    format!(r#"{{"period_seconds":86400,"tolerance_seconds":60,"mode":"{mode}"}}"#);
                let v = judge(&config, s.clone());
                assert!(v.score.is_finite(), "{mode} {:?}", s.values);
                assert!(!v.firing, "{mode}: {}", v.summary);
            }
        }
        // Constant history, then a change: ±1e6 in sigma mode; zero mean in ratio mode.
        let v = judge(DAILY, hourly(4, |i| if i == 96 { 8.0 } else { 7.0 }));
        assert_eq!((v.firing, v.score), (true, 1e6));
        let ratio = r#"{"period_seconds":86400,"tolerance_seconds":60,"mode":"ratio"}"#;
        let v = judge(ratio, hourly(4, |i| if i == 96 { -3.0 } else { 0.0 }));
        assert_eq!((v.firing, v.score), (true, -1e6));
    }

    #[test]
    fn config_checks() {
        let check = testing::check_detector_config::<Seasonal>;
        assert!(check("{}").is_ok());
        assert!(check(r#"{"mode":"ratio","min_periods":1,"periods":1}"#).is_ok());
        for (config, field) in [
            (r#"{"period_seconds":0}"#, "period_seconds:"),
            (r#"{"periods":0}"#, "periods:"),
            (r#"{"tolerance_seconds":-1}"#, "tolerance_seconds:"),
            (r#"{"k":0}"#, "k:"),
            (r#"{"min_ratio":-0.1}"#, "min_ratio:"),
            (r#"{"max_ratio":0.4}"#, "max_ratio:"),
            (r#"{"min_periods":1}"#, "min_periods:"),
            (r#"{"min_periods":5}"#, "min_periods:"),
            (r#"{"mode":"diff"}"#, "mode:"),
        ] {
            let err = check(config).unwrap_err();
            assert!(err.starts_with(field), "{config}: {err}");
        }
        assert!(
            check(r#"{"period":3}"#)
                .unwrap_err()
                .contains("unknown field `period`")
        );
    }
}
