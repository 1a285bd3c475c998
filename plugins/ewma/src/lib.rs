//! `ewma`: the exponentially weighted moving average control chart (Roberts, 1959), as
//! in standard SPC texts (Montgomery, *Introduction to Statistical Quality Control*;
//! NIST/SEMATECH e-Handbook 6.3.2.4). A streaming detector: the chart lives in the
//! host-owned per-series state, and each evaluation consumes only samples newer than
//! the last one it saw.
//!
//! # Config
//!
//! ```json
//! { "l": 3.5, "reference_samples": 120, "direction": "both" }
//! ```
//!
//! | field               | type    | default  | meaning |
//! |---------------------|---------|----------|---------|
//! | `lambda`            | number  | `0.2`; `0.1` on seasonal residuals | λ, weight of the newest sample, in (0, 1] |
//! | `l`                 | number  | `3.5`    | L, width of the control limits in σ of the statistic (finite, > 0) |
//! | `reference_samples` | integer | `120`    | samples learned as the in-control reference before the chart starts (Phase I, on raw samples or residuals); with `baseline: reference`: the fewest baseline samples accepted (≥ 2) |
//! | `direction`         | string  | `"both"` | `both`, `up` (only above the upper limit), `down` (only below the lower) |
//! | `baseline`          | string  | `"season"` | what the rule's baseline window is for: `season`, chart residuals against the same phase of it; `reference`, its mean and σ are μ₀ and σ₀ |
//! | `season_seconds`    | number  | none: the season the rule's baseline implies | chart residuals against the same time this long ago, from the rule's baseline (see Seasonal metrics; ≥ 1) |
//! | `season_tolerance_seconds` | number | `300` | how much older than one season back the matching sample may be (≥ 0, < `season_seconds`) |
//!
//! Unknown fields are an error. Textbook settings are λ ∈ [0.05, 0.25] and L ≈ 3
//! (ARL₀ ≈ 500 samples for λ = 0.2); the default L = 3.5 trades a little delay for
//! far fewer false alarms, because at a 15 s sample period 500 samples are two hours.
//! Smaller λ detects smaller, persistent shifts; λ = 1 is a Shewhart chart.
//!
//! # Seasonal metrics
//!
//! The chart assumes a stationary in-control process; a metric with a daily or weekly
//! cycle is out of control to it most of the day (in the detection-quality harness,
//! BENCHMARKS.md, the defaults on the raw samples fired 79 % of the time on a metric
//! with a ±20 % daily cycle). **Give the rule a baseline one season back** and the
//! chart runs on `x - x offset <season>` instead: each new sample minus the newest
//! baseline sample at or before one season earlier (at most
//! `season_tolerance_seconds` older, as PromQL's lookback), so the cycle drops out;
//! μ₀ and σ₀ are then learned from the first `reference_samples` residuals (the
//! baseline only supplies last season's values), and λ defaults to 0.1 (a residual
//! carries last season's noise too, and the changes worth catching against last
//! season are persistent). The season is `season_seconds` when set; otherwise the
//! one the rule's baseline implies: a detector sees the baseline's samples, not the
//! rule's `offset`, so it takes the time from the baseline's newest sample to the
//! window's newest sample, which is the offset for a series pushed or scraped on a
//! steady schedule (a push that drifts within its interval moves the match by at
//! most one sample). Samples without a baseline value are skipped and counted in the
//! `season_unmatched` annotation; a series charting residuals whose baseline is
//! empty for an evaluation (a gap last season) skips its samples the same way. The
//! rule's baseline must reach one season back for every new sample (and the store's
//! `store.retention` must cover the season):
//!
//! ```yaml
//! - alert: LatencyLevelShift
//!   query: 'ml_prediction_latency_seconds'
//!   window: 30m                               # the group is evaluated every 30m
//!   baseline: { offset: 1w, window: 35m }     # interval + the 5 min lookback
//!   detector: ewma                            # no config: against last week
//! ```
//!
//! Until the store holds a season of history the baseline is empty, which a detector
//! cannot tell from a rule without one: the chart then runs on the raw samples (and
//! starts over on residuals once the baseline fills). Set `season_seconds` to have it
//! skip those samples instead.
//!
//! Measured (BENCHMARKS.md: a weekly-seasonal metric sampled every minute, noise σ
//! 3, that rule, `{}`): every 5-8 σ level shift flagged at the first evaluation
//! (precision 0.91) and every gradual drift (to 8-12 σ over 3 h) within 2
//! (median), 0-0.5 false alerts a week, on three seed sets. λ 0.2 (the raw default)
//! caught the drifts of one seed set only at the third evaluation (median 2.5);
//! L 3 or 3.2 cost precision (0.74-0.87) and up to 1.25 false alerts a week.
//!
//! # Formula
//!
//! In-control mean μ₀ and standard deviation σ₀ (the sample standard deviation):
//!
//! - with `baseline: reference` and a baseline window (rule `baseline:`): its finite
//!   samples, recomputed at every evaluation, so the limits follow e.g. last week's
//!   same hour;
//! - otherwise (Phase I): the series' first `reference_samples` finite samples (or
//!   seasonal residuals),
//!   learned into the state and then frozen. Learning starts over only from a fresh
//!   state: when the series had no sample in the rule's window for an evaluation (the
//!   host then drops its state), or when the rule gains or loses its baseline.
//!
//! Each later finite sample `x_i` (i = 1, 2, ...) updates
//! `z_i = λ·x_i + (1-λ)·z_{i-1}`, `z_0 = μ₀`, and the limits are
//! `μ₀ ± L·σ₀·sqrt(λ/(2-λ)·(1-(1-λ)^{2i}))` (the exact, time-varying limits).
//! The score is the standardised statistic
//! `(z_i - μ₀) / (σ₀·sqrt(λ/(2-λ)·(1-(1-λ)^{2i})))`, which crosses ±L exactly where
//! `z_i` crosses a limit. The verdict is about the newest sample's `z`.
//!
//! NaN and ±Inf samples are skipped (they advance nothing but the last-seen time).
//! σ₀ = 0 (a constant reference): the score is 0 while `z = μ₀` and ±1e6 otherwise.
//! Scores are clamped to ±1e6: never NaN or infinite.
//!
//! # State
//!
//! Tag `E`, version 1, 59 bytes: last-seen timestamp, `z`, `i`, the Phase I count,
//! mean and sum of squared deviations, the newest consumed value, and a reference
//! byte (bit 0: the chart runs on a baseline; bit 1: on seasonal residuals; a chart
//! whose reference kind no longer matches the rule starts over). An unknown tag,
//! version or length is ignored: the chart starts fresh from the current window.
//!
//! # Verdict
//!
//! - score: the standardised `z` (in units of the limit width: fires beyond ±`l`);
//!   summary like `ewma=10.9 above UCL 10.7 (mean=10, stddev=1, lambda=0.2, 12 samples)`;
//! - annotations: `ewma`, `ucl`, `lcl`, `mean`, `stddev`, `samples` (i), `latest`;
//! - while learning: not firing, score 0, summary like `learning reference: 12 of 120 samples`;
//! - with `baseline: reference`, too few baseline samples: not firing, score 0,
//!   `3 baseline samples, need 120`;
//!   the window's samples stay unconsumed until the baseline is usable.
//!
//! # Measured
//!
//! On iid N(0, 1) samples, a rule window of 240 samples judged every 4 samples
//! (15 s samples, 1 min evaluations), 40 000 samples (≈ a week), 5 seeds, defaults: 7.4
//! false alert episodes per week; a 3σ level shift is flagged 3-7 samples after it.
//! (With a 30-sample Phase I it was 16 a week: the estimation error of μ₀ and σ₀
//! widens the real false-alarm rate, hence the 120-sample default.)

use klaxon_anomaly_common::season::{self, BaselineUse, DEFAULT_TOLERANCE_SECONDS, Season};
use klaxon_anomaly_common::state::{StateReader, StateWriter, unseen};
use klaxon_anomaly_common::{Direction, Reference, Warmup, scaled};
use klaxon_sdk::prelude::*;
use serde::Deserialize;

/// The EWMA control chart detector.
pub struct Ewma;

/// Parsed config; see the crate docs.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// λ: weight of the newest sample (none: [`RAW_LAMBDA`], or [`SEASONAL_LAMBDA`]
    /// on seasonal residuals).
    pub lambda: Option<f64>,
    /// L: limit width in σ of the statistic.
    pub l: f64,
    /// Phase I length, or the fewest baseline samples.
    pub reference_samples: u32,
    /// Chart residuals against the same time this many seconds back (none: off).
    pub season_seconds: Option<f64>,
    /// Half-width of the matching past span, in seconds.
    pub season_tolerance_seconds: f64,
    /// What the rule's baseline is for.
    pub baseline: BaselineUse,
    /// Which limit fires.
    pub direction: Direction,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            lambda: None,
            l: 3.5,
            reference_samples: 120,
            season_seconds: None,
            season_tolerance_seconds: DEFAULT_TOLERANCE_SECONDS,
            baseline: BaselineUse::Season,
            direction: Direction::Both,
        }
    }
}

/// λ's default on raw samples (and with `baseline: reference`).
pub const RAW_LAMBDA: f64 = 0.2;

/// λ's default on seasonal residuals: a residual against one past sample carries
/// that sample's noise too (twice the variance), and the changes worth catching
/// against last season are persistent, so the chart averages longer.
pub const SEASONAL_LAMBDA: f64 = 0.1;

impl Config {
    /// λ in force for a chart on raw samples or on seasonal residuals.
    pub fn lambda(&self, seasonal: bool) -> f64 {
        self.lambda.unwrap_or(if seasonal {
            SEASONAL_LAMBDA
        } else {
            RAW_LAMBDA
        })
    }
}

const SCHEMA: &str = r#"{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "title": "ewma",
  "type": "object",
  "additionalProperties": false,
  "properties": {
    "lambda": {"type": ["number", "null"], "exclusiveMinimum": 0, "maximum": 1, "default": null, "description": "Weight of the newest sample (default 0.2 on raw samples, 0.1 on seasonal residuals)."},
    "l": {"type": "number", "exclusiveMinimum": 0, "default": 3.5, "description": "Control limit width, in standard deviations of the statistic."},
    "reference_samples": {"type": "integer", "minimum": 2, "default": 120, "description": "Samples learned as the in-control reference (no baseline), or fewest baseline samples."},
    "season_seconds": {"type": ["number", "null"], "minimum": 1, "default": null, "description": "Chart each sample minus the rule's baseline samples this many seconds earlier (e.g. 604800: last week), so a daily or weekly cycle drops out."},
    "season_tolerance_seconds": {"type": "number", "minimum": 0, "default": 300, "description": "Baseline samples within this many seconds of one season back are averaged into the expected value."},
    "baseline": {"enum": ["season", "reference"], "default": "season", "description": "With a rule baseline: chart residuals against the same phase of it (season), or use its mean and standard deviation as the in-control reference (reference)."},
    "direction": {"enum": ["both", "up", "down"], "default": "both", "description": "Which limit fires."}
  }
}"#;

const TAG: u8 = b'E';
const VERSION: u8 = 1;

/// The chart's per-series state.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Chart {
    /// Timestamp of the newest sample consumed.
    pub last_seen_ms: Option<i64>,
    /// The EWMA statistic `z_i` (meaningless while `monitored == 0`).
    pub z: f64,
    /// Samples monitored so far (`i`).
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
            z: r.f64()?,
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
            .f64(self.z)
            .u64(self.monitored)
            .u64(self.warmup.count)
            .f64(self.warmup.mean)
            .f64(self.warmup.m2)
            .f64(self.latest)
            .u8(u8::from(self.on_baseline) | (u8::from(self.seasonal) << 1))
            .finish()
    }

    /// Monitors one finite sample against `reference`.
    fn monitor(&mut self, lambda: f64, reference: &Reference, x: f64) {
        let previous = if self.monitored == 0 {
            reference.mean
        } else {
            self.z
        };
        self.z = lambda * x + (1.0 - lambda) * previous;
        self.monitored += 1;
    }
}

/// `sqrt(λ/(2-λ)·(1-(1-λ)^{2i}))`: σ of `z_i` in units of σ₀.
pub fn limit_factor(lambda: f64, i: u64) -> f64 {
    let decay = (1.0 - lambda).powf(2.0 * i as f64);
    (lambda / (2.0 - lambda) * (1.0 - decay)).sqrt()
}

impl Detector for Ewma {
    type Config = Config;

    fn info() -> Info {
        Info::new(
            "ewma",
            env!("CARGO_PKG_VERSION"),
            "EWMA control chart: fires when the exponentially weighted moving average of \
             the samples leaves mean ± L·σ·sqrt(λ/(2-λ)·(1-(1-λ)^2i)) of the in-control \
             reference (the baseline window, or the series' first samples).",
        )
        .schema(SCHEMA)
    }

    fn check_config(cfg: &Config) -> Result<(), String> {
        if let Some(lambda) = cfg.lambda
            && !(lambda > 0.0 && lambda <= 1.0)
        {
            return Err(format!("lambda: must be in (0, 1], got {lambda}"));
        }
        if !(cfg.l.is_finite() && cfg.l > 0.0) {
            return Err(format!("l: must be a finite number above 0, got {}", cfg.l));
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
        // With a baseline the chart runs on residuals against its season (set, or
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
        // A chart that switched between baseline and Phase I references starts over.
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
                    // Nothing consumed: the samples wait for a usable baseline.
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
                Some(reference) => {
                    chart.monitor(cfg.lambda(chart.seasonal), &reference, x);
                    chart.latest = raw;
                }
                None => {
                    chart.warmup.push(x);
                    chart.latest = raw;
                }
            }
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
    let lambda = cfg.lambda(chart.seasonal);
    let sigma_z = reference.stddev * limit_factor(lambda, chart.monitored);
    let score = scaled(chart.z - reference.mean, sigma_z);
    let firing = cfg.direction.exceeds(score, cfg.l);
    let ucl = reference.mean + cfg.l * sigma_z;
    let lcl = reference.mean - cfg.l * sigma_z;
    let mut summary = String::with_capacity(112);
    summary.push_str("ewma=");
    push_value(&mut summary, chart.z);
    if score > cfg.l {
        summary.push_str(" above UCL ");
        push_value(&mut summary, ucl);
    } else if score < -cfg.l {
        summary.push_str(" below LCL ");
        push_value(&mut summary, lcl);
    } else {
        summary.push_str(" within ");
        push_value(&mut summary, lcl);
        summary.push_str("..");
        push_value(&mut summary, ucl);
    }
    summary.push_str(" (mean=");
    push_value(&mut summary, reference.mean);
    summary.push_str(", stddev=");
    push_value(&mut summary, reference.stddev);
    summary.push_str(&format!(", lambda={lambda}, {} samples)", chart.monitored));
    Verdict::new(firing, score, summary)
        .annotate("ewma", format_value(chart.z))
        .annotate("ucl", format_value(ucl))
        .annotate("lcl", format_value(lcl))
        .annotate("mean", format_value(reference.mean))
        .annotate("stddev", format_value(reference.stddev))
        .annotate("samples", chart.monitored.to_string())
        .annotate("latest", format_value(chart.latest))
}

klaxon_sdk::export_detector!(Ewma);

#[cfg(test)]
mod tests {
    use super::*;
    use klaxon_sdk::testing::{self, TestSeries};

    const NAN: f64 = f64::NAN;

    /// The defaults with the 30-sample Phase I the vectors below were computed for.
    const CFG30: &str = r#"{"reference_samples":30}"#;

    fn run(config: &str, series: TestSeries) -> Output {
        testing::run_detector::<Ewma>(config, &[series])
            .expect("evaluate")
            .remove(0)
    }

    /// Reference 2,4,4,4,5,5,7,9: μ₀ = 5, σ₀ = sqrt(32/7) = 2.138089935299395.
    const REFERENCE: [f64; 8] = [2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0];

    #[test]
    fn hand_computed_chart() {
        // λ = 0.5, L = 3, Phase I on the first 8 samples, then 9, 9, 9:
        // z1 = 0.5·9 + 0.5·5 = 7, z2 = 8, z3 = 8.5.
        // factor(3) = sqrt(0.5/1.5·(1-0.5^6)) = sqrt(1/3·63/64) = 0.572821...;
        // σ_z = 2.138089935·0.572821 = 1.224744871 (= sqrt(1.5) exactly:
        // 32/7·63/192 = 1.5); score = 3.5/1.224744871 = 2.857738033 < 3.
        let mut values = REFERENCE.to_vec();
        values.extend([9.0, 9.0, 9.0]);
        let config = r#"{"lambda":0.5,"l":3,"reference_samples":8}"#;
        let out = run(config, TestSeries::from_values(&values));
        let v = &out.verdict;
        assert!(!v.firing);
        assert!((v.score - 3.5 / 1.5f64.sqrt()).abs() < 1e-12, "{}", v.score);
        assert_eq!(v.annotation("ewma"), Some("8.5"));
        assert_eq!(v.annotation("samples"), Some("3"));
        // UCL = 5 + 3·sqrt(1.5) = 8.674234614
        assert_eq!(v.annotation("ucl"), Some("8.67423"));
        // One more 9: z4 = 8.75; factor(4) = sqrt(1/3·(1-0.5^8)) → σ_z² = 32/7·255/768
        // = 1.517857..., σ_z = 1.232013; score = 3.75/1.232013 = 3.043800 > 3.
        values.push(9.0);
        let v = run(config, TestSeries::from_values(&values)).verdict;
        assert!(v.firing);
        let expected = 3.75 / (32.0 / 7.0 * 255.0 / 768.0f64).sqrt();
        assert!((v.score - expected).abs() < 1e-12);
        assert!(
            v.summary.starts_with("ewma=8.75 above UCL 8.69604"),
            "{}",
            v.summary
        );
    }

    #[test]
    fn matches_a_direct_recursion() {
        // Independent recomputation of the recursion over a longer stream.
        let mut values: Vec<f64> = (0..40).map(|i| 10.0 + ((i * 7) % 5) as f64).collect();
        values.extend([13.0, 15.0, 16.0, 11.0, 18.0]);
        let lambda = 0.2;
        let reference: Vec<f64> = values[..30].to_vec();
        let m = stats::moments(&reference).unwrap();
        let s = m.sample_stddev().unwrap();
        let mut z = m.mean;
        for (i, &x) in values[30..].iter().enumerate() {
            z = lambda * x + (1.0 - lambda) * z;
            let n = (i + 1) as f64;
            let factor = (lambda / (2.0 - lambda) * (1.0 - (1.0 - lambda).powf(2.0 * n))).sqrt();
            let series = TestSeries::from_values(&values[..31 + i]);
            let v = run(CFG30, series).verdict;
            let expected = (z - m.mean) / (s * factor);
            assert!(
                (v.score - expected).abs() < 1e-9,
                "{i}: {} vs {expected}",
                v.score
            );
            assert_eq!(v.firing, expected.abs() > 3.5);
        }
    }

    #[test]
    fn incremental_evaluation_equals_one_shot() {
        let values: Vec<f64> = (0..60)
            .map(|i| {
                if i == 17 {
                    NAN
                } else {
                    (i as f64 * 0.7).sin() * 3.0 + if i > 45 { 6.0 } else { 0.0 }
                }
            })
            .collect();
        let full = TestSeries::from_values(&values);
        let one_shot = run(CFG30, full.clone());
        // The same stream seen through overlapping 20-sample windows ending at each
        // sample, state handed from one evaluation to the next.
        let mut state: Option<Vec<u8>> = None;
        let mut last = None;
        for end in 1..=values.len() {
            let start = end.saturating_sub(20);
            let mut s = TestSeries::new(
                &[("__name__", "test")],
                full.timestamps_ms[start..end].to_vec(),
                values[start..end].to_vec(),
            );
            s.state = state.clone();
            let out = testing::run_detector_at::<Ewma>(CFG30, &[s], full.timestamps_ms[end - 1])
                .unwrap()
                .remove(0);
            state = out.state.clone();
            last = Some(out);
        }
        let last = last.unwrap();
        assert_eq!(last.state, one_shot.state);
        assert_eq!(last.verdict, one_shot.verdict);
        assert!(one_shot.verdict.firing, "{}", one_shot.verdict.summary);
        // Re-evaluating the same window changes nothing (no double counting).
        let again = run(CFG30, full.state(one_shot.state.clone().unwrap()));
        assert_eq!(again, one_shot);
    }

    #[test]
    fn baseline_reference() {
        // Baseline REFERENCE, window 9,9,9,9 with λ=0.5, L=3: as in the hand-computed
        // chart, the fourth 9 fires.
        let config = r#"{"lambda":0.5,"l":3,"reference_samples":8,"baseline":"reference"}"#;
        let s = TestSeries::from_values(&[9.0, 9.0, 9.0, 9.0]).baseline(&REFERENCE);
        let v = run(config, s).verdict;
        assert!(v.firing);
        assert_eq!(v.annotation("samples"), Some("4"));
        // A too-short baseline consumes nothing.
        let s = TestSeries::from_values(&[9.0, 9.0]).baseline(&REFERENCE[..3]);
        let out = run(config, s);
        assert!(!out.verdict.firing);
        assert_eq!(out.verdict.summary, "3 baseline samples, need 8");
        assert_eq!(
            Chart::decode(out.state.as_deref().unwrap())
                .unwrap()
                .last_seen_ms,
            None
        );
    }

    #[test]
    fn empty_constant_and_nan_windows_never_give_nan() {
        for values in [vec![], vec![NAN; 40], vec![4.0; 40]] {
            let out = run(CFG30, TestSeries::from_values(&values));
            assert!(!out.verdict.firing, "{values:?}");
            assert_eq!(out.verdict.score, 0.0);
        }
        // Constant reference then a change: ±1e6, finite.
        let mut values = vec![4.0; 30];
        values.push(4.5);
        let v = run(CFG30, TestSeries::from_values(&values)).verdict;
        assert_eq!((v.firing, v.score), (true, 1e6));
        assert_eq!(v.annotation("stddev"), Some("0"));
        // Baseline of NaNs.
        let s = TestSeries::from_values(&[1.0]).baseline(&[NAN; 40]);
        let v = run(CFG30, s).verdict;
        assert_eq!((v.firing, v.score), (false, 0.0));
    }

    #[test]
    fn learning_then_direction() {
        let v = run(CFG30, TestSeries::from_values(&REFERENCE)).verdict;
        assert_eq!(v.summary, "learning reference: 8 of 30 samples");
        let mut values = REFERENCE.to_vec();
        values.extend([0.0; 6]);
        let cfg =
            |d: &str| format!(r#"{{"lambda":0.5,"l":3,"reference_samples":8,"direction":"{d}"}}"#);
        assert!(
            run(&cfg("both"), TestSeries::from_values(&values))
                .verdict
                .firing
        );
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
    fn foreign_state_starts_fresh() {
        let values = REFERENCE.to_vec();
        let fresh = run(
            r#"{"reference_samples":8}"#,
            TestSeries::from_values(&values),
        );
        for junk in [
            vec![],
            vec![b'E', 2, 0, 0],
            vec![b'C', 1],
            vec![b'E', 1, 1, 2, 3],
        ] {
            let out = run(
                r#"{"reference_samples":8}"#,
                TestSeries::from_values(&values).state(junk),
            );
            assert_eq!(out, fresh);
        }
        let chart = Chart::decode(fresh.state.as_deref().unwrap()).unwrap();
        assert_eq!(chart.warmup.count, 8);
        assert_eq!(fresh.state.unwrap().len(), 2 + 7 * 8 + 1);
    }

    #[test]
    fn config_checks() {
        let check = testing::check_detector_config::<Ewma>;
        assert!(check("{}").is_ok());
        assert!(check(r#"{"lambda":1,"l":2.7,"reference_samples":2,"direction":"up"}"#).is_ok());
        for (config, field) in [
            (r#"{"lambda":0}"#, "lambda:"),
            (r#"{"lambda":1.5}"#, "lambda:"),
            (r#"{"l":0}"#, "l:"),
            (r#"{"reference_samples":1}"#, "reference_samples:"),
            (r#"{"direction":"x"}"#, "direction:"),
        ] {
            let err = check(config).unwrap_err();
            assert!(err.starts_with(field), "{config}: {err}");
        }
        assert!(
            check(r#"{"L":3}"#)
                .unwrap_err()
                .contains("unknown field `L`")
        );
    }

    #[test]
    fn season_seconds_charts_residuals_against_last_season() {
        klaxon_anomaly_common::fixtures::assert_season_charts_residuals::<Ewma>("ewma");
    }

    #[test]
    fn a_rule_baseline_implies_the_season() {
        use klaxon_anomaly_common::fixtures::assert_baseline_implies_the_season;
        // Without season_seconds, the baseline one season back (60 s) sets the season:
        // the verdicts equal those with season_seconds: 60.
        assert_baseline_implies_the_season::<Ewma>(r#"{"season_tolerance_seconds":1}"#, 10.0);
        // On residuals λ defaults to 0.1.
        let (_, after) = klaxon_anomaly_common::fixtures::season_before_and_after::<Ewma>(
            r#"{"season_tolerance_seconds":1}"#,
            10.0,
        );
        assert!(
            after.verdict.summary.contains("lambda=0.1,"),
            "{}",
            after.verdict.summary
        );
        // `baseline: reference` keeps the baseline as the in-control reference, and
        // cannot be combined with an explicit season.
        let err = testing::check_detector_config::<Ewma>(
            r#"{"baseline":"reference","season_seconds":600}"#,
        )
        .unwrap_err();
        assert!(err.starts_with("baseline:"), "{err}");
    }
}
