//! `page_hinkley`: the Page-Hinkley change detector exactly as river's
//! `drift.PageHinkley` (river 0.26) defines it, two-sided by default. A streaming
//! detector: the test's running sums live in the host-owned per-series state, and each
//! evaluation consumes only samples newer than the last one it saw.
//!
//! # Config
//!
//! ```json
//! { "min_instances": 30, "alpha": 0.9999, "mode": "both", "hold_seconds": 600 }
//! ```
//!
//! | field           | type    | default   | meaning |
//! |-----------------|---------|-----------|---------|
//! | `min_instances` | integer | `30`      | samples before any detection (≥ 1) |
//! | `delta`         | number  | `0.005` on raw samples (metric's units); `1` on seasonal residuals (σ̂) | δ, magnitude of change tolerated (finite, ≥ 0) |
//! | `threshold`     | number  | `50` on raw samples (metric's units × samples); `10` on seasonal residuals (σ̂ × samples) | λ, detection threshold (finite, > 0) |
//! | `alpha`         | number  | `0.9999`  | α, forgetting factor of the cumulative sums, in (0, 1] |
//! | `mode`          | string  | `"both"`  | `up` (increases), `down` (decreases) or `both` |
//! | `hold_seconds`  | number  | `600`     | the verdict fires while a detection happened at most this long before the evaluation time, or among the samples this evaluation consumed (finite, ≥ 0) |
//! | `season_seconds` | number | none: the season the rule's baseline implies | test residuals against the same time this long ago, from the rule's baseline (see Seasonal metrics; ≥ 1) |
//! | `season_tolerance_seconds` | number | `300` | how much older than one season back the matching sample may be (≥ 0, < `season_seconds`) |
//! | `reference_samples` | integer | `120` | on seasonal residuals: residuals learned for their standard deviation σ̂ before the test starts (≥ 2) |
//!
//! Unknown fields are an error. On raw samples the defaults are river's (and
//! scikit-multiflow's), and `threshold` is scale-dependent: a sustained shift of `d`
//! crosses it after about `threshold / d` samples, so set it from the shift worth an
//! alert (e.g. `50` for a latency in ms where a 5 ms shift should alert within ~10
//! samples).
//!
//! # Seasonal metrics
//!
//! **With a rule baseline one season back** the test runs on `x - x offset <season>`
//! (each new sample minus the newest baseline sample at or before one season
//! earlier, at most `season_tolerance_seconds` older; samples without one are
//! skipped and counted in `season_unmatched`), so a daily or weekly cycle is not a
//! change. The season is `season_seconds` when set, otherwise the one the baseline
//! implies (the time from the baseline's newest sample to the window's newest: the
//! rule's `offset` for a series on a steady schedule; see
//! `klaxon_anomaly_common::season`). The residuals are tested in units of their own
//! standard deviation σ̂, learned from the first `reference_samples` of them, so
//! `delta` and `threshold` are in σ̂ there and the defaults (δ 1, λ 10) fit any
//! metric. The rule's baseline must reach one season back for every new sample:
//! `window: 30m`, `baseline: { offset: 1w, window: 35m }` for a rule evaluated
//! every 30 min, no config. A detection is reported at the next evaluation even
//! when that is longer than `hold_seconds` after it. Until the store holds a season
//! of history the baseline is empty and the test runs on the raw samples (in the
//! metric's units); `season_seconds` makes it skip those samples instead.
//!
//! Measured (BENCHMARKS.md, weekly-seasonal metric sampled every minute, that rule,
//! `{}`): every 5-8 σ level shift flagged at the first evaluation, gradual drifts
//! within 2 (median), 0.75 false alerts a week, precision ≥ 0.95, on three seed
//! sets. Grid (δ, λ in σ̂; seed sets 0 / 1 / 2): (0.5, 15) and (0.5, 20) pass with
//! precision down to 0.90; (0.5, 25) and (1, 15) catch one seed set's drifts only
//! at the third evaluation (median 2.5-3); (0.25, 25) pages 1.25 times a week.
//! Before the residuals were standardised, δ 2 and λ 100 in the metric's units did
//! the same on this metric only (its residual σ ≈ 4.2).
//!
//! # Formula (river's)
//!
//! For each finite sample `x` (NaN and ±Inf are skipped; on seasonal residuals,
//! `x` is the residual divided by σ̂, ±1e6 when σ̂ = 0): if the previous sample
//! signalled a drift, everything resets first. Then, with `x̄` the running mean
//! including `x` and `dev = x - x̄`:
//!
//! ```text
//! S⁺ = α·S⁺ + dev - δ        m⁺ = min(m⁺, S⁺)     (m⁺ starts at +∞)
//! S⁻ = α·S⁻ + dev + δ        M⁻ = max(M⁻, S⁻)     (M⁻ starts at -1, as in river)
//! once n ≥ min_instances: drift when (S⁺ - m⁺) > λ [up] or (M⁻ - S⁻) > λ [down]
//! ```
//!
//! Beyond river: sums that overflow (samples near ±1.8e308) restart the test instead
//! of turning NaN.
//!
//! # Alerting
//!
//! A detection is an event, so the verdict fires while the last detection's sample is
//! no older than `hold_seconds` before the evaluation time, or was among the samples
//! this evaluation consumed (so a rule evaluated less often than `hold_seconds`
//! still sees every detection once; not on a series' first evaluation, whose window
//! may reach far back); after a detection the test restarts and learns the new
//! level, as river's does (σ̂ is kept).
//!
//! # State
//!
//! Tag `P`, version 2, 108 bytes: last-seen timestamp, last detection's timestamp and
//! statistic, detection count, the drift flag, `n`, `x̄`, `S⁺`, `S⁻`, `m⁺`, `M⁻`, a
//! seasonal byte, then the count, mean and squared deviations of the residuals
//! learned for σ̂. Unknown tag, version or length: start fresh; a test whose kind (raw
//! or residuals) no longer matches the rule starts over.
//!
//! # Verdict
//!
//! - score: while holding, the detection's statistic (`S⁺ - m⁺`, or `-(M⁻ - S⁻)` for a
//!   decrease); otherwise the larger current statistic, signed the same way (0 before
//!   `min_instances`); never NaN;
//! - summary like `drift up detected 120s ago (statistic 61.2 > 50, mean 10.3 over 45 samples)`;
//!   while learning σ̂: `learning the residuals' spread: 12 of 120 samples`;
//! - annotations: `statistic`, `threshold` (in force), `mean`, `samples`,
//!   `detections`, `stddev` (σ̂, on residuals), and `drift_at` (Unix ms of the
//!   detecting sample) once there was one.
//!
//! # Measured
//!
//! On iid N(0, 1) samples, a rule window of 240 samples judged every 4 samples
//! (15 s samples, 1 min evaluations), 40 000 samples (≈ a week), 5 seeds, defaults: 24
//! false alert episodes per week, a 3σ shift flagged 7-19 samples after it. river's
//! `threshold` 50 is low for unit-variance data (the statistic wanders like a random
//! walk, ~σ·√n): scale `threshold` with the metric's spread.

use klaxon_anomaly_common::season::{self, DEFAULT_TOLERANCE_SECONDS, Differencing, Season};
use klaxon_anomaly_common::state::{StateReader, StateWriter, first_unseen, unseen};
use klaxon_anomaly_common::{
    Direction, Warmup, bounded, check_hold_seconds, held_detection, scaled,
};
use klaxon_sdk::prelude::*;
use serde::Deserialize;

/// The Page-Hinkley detector.
pub struct PageHinkley;

/// Parsed config; see the crate docs.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Samples before any detection.
    pub min_instances: u64,
    /// δ (none: the default of the values tested, see [`Config::limits`]).
    pub delta: Option<f64>,
    /// λ (none: the default of the values tested).
    pub threshold: Option<f64>,
    /// α.
    pub alpha: f64,
    /// Which changes count.
    pub mode: Direction,
    /// How long a detection keeps the verdict firing.
    pub hold_seconds: f64,
    /// Test residuals against the same time this many seconds back (none: off).
    pub season_seconds: Option<f64>,
    /// How much older than one season back the matching sample may be, in seconds.
    pub season_tolerance_seconds: f64,
    /// Residuals learned for their standard deviation before the test starts.
    pub reference_samples: u32,
}

/// river's δ and λ, the defaults on raw samples (in the metric's units).
pub const RAW_LIMITS: Limits = Limits {
    delta: 0.005,
    threshold: 50.0,
};

/// The defaults on seasonal residuals, in units of their standard deviation σ̂.
pub const SEASONAL_LIMITS: Limits = Limits {
    delta: 1.0,
    threshold: 10.0,
};

/// δ and λ of one test, in the units of the values it tests.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    /// δ.
    pub delta: f64,
    /// λ.
    pub threshold: f64,
}

impl Config {
    /// δ and λ: the configured ones, else the defaults of raw samples or of
    /// (standardised) seasonal residuals.
    pub fn limits(&self, seasonal: bool) -> Limits {
        let defaults = if seasonal {
            SEASONAL_LIMITS
        } else {
            RAW_LIMITS
        };
        Limits {
            delta: self.delta.unwrap_or(defaults.delta),
            threshold: self.threshold.unwrap_or(defaults.threshold),
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            min_instances: 30,
            delta: None,
            threshold: None,
            alpha: 1.0 - 0.0001,
            mode: Direction::Both,
            hold_seconds: 600.0,
            season_seconds: None,
            season_tolerance_seconds: DEFAULT_TOLERANCE_SECONDS,
            reference_samples: 120,
        }
    }
}

const SCHEMA: &str = r#"{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "title": "page_hinkley",
  "type": "object",
  "additionalProperties": false,
  "properties": {
    "min_instances": {"type": "integer", "minimum": 1, "default": 30, "description": "Samples before any detection."},
    "delta": {"type": ["number", "null"], "minimum": 0, "default": null, "description": "Magnitude of change tolerated: in the metric's units on raw samples (default 0.005), in standard deviations on seasonal residuals (default 1)."},
    "threshold": {"type": ["number", "null"], "exclusiveMinimum": 0, "default": null, "description": "Detection threshold (lambda): in the metric's units on raw samples (default 50), in standard deviations on seasonal residuals (default 10)."},
    "alpha": {"type": "number", "exclusiveMinimum": 0, "maximum": 1, "default": 0.9999, "description": "Forgetting factor of the cumulative sums."},
    "mode": {"enum": ["both", "up", "down"], "default": "both", "description": "Which changes are detected."},
    "hold_seconds": {"type": "number", "minimum": 0, "default": 600, "description": "Seconds a detection keeps the verdict firing."},
    "season_seconds": {"type": ["number", "null"], "minimum": 1, "default": null, "description": "Test each sample minus the rule's baseline sample this many seconds earlier (e.g. 604800: last week), so a daily or weekly cycle drops out."},
    "season_tolerance_seconds": {"type": "number", "minimum": 0, "default": 300, "description": "How much older than one season back the matching baseline sample may be."},
    "reference_samples": {"type": "integer", "minimum": 2, "default": 120, "description": "On seasonal residuals: residuals learned for their standard deviation before the test starts."}
  }
}"#;

const TAG: u8 = b'P';
const VERSION: u8 = 2;

/// The test's per-series state.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Test {
    /// Timestamp of the newest sample consumed.
    pub last_seen_ms: Option<i64>,
    /// Timestamp of the sample that signalled the last drift.
    pub drift_at_ms: Option<i64>,
    /// The statistic at that detection (signed: negative for a decrease).
    pub drift_statistic: f64,
    /// Detections so far.
    pub detections: u64,
    /// Whether the newest sample signalled a drift (the next one resets the test).
    pub drift_detected: bool,
    /// Samples in the running mean.
    pub n: u64,
    /// Running mean.
    pub mean: f64,
    /// `S⁺`.
    pub sum_increase: f64,
    /// `S⁻`.
    pub sum_decrease: f64,
    /// `m⁺`.
    pub min_increase: f64,
    /// `M⁻`.
    pub max_decrease: f64,
    /// Whether the test runs on seasonal residuals (standardised by `spread`).
    pub seasonal: bool,
    /// On residuals: the first `reference_samples` of them, for their σ̂.
    pub spread: Warmup,
}

impl Default for Test {
    fn default() -> Self {
        Self {
            last_seen_ms: None,
            drift_at_ms: None,
            drift_statistic: 0.0,
            detections: 0,
            drift_detected: false,
            n: 0,
            mean: 0.0,
            sum_increase: 0.0,
            sum_decrease: 0.0,
            min_increase: f64::INFINITY,
            max_decrease: -1.0,
            seasonal: false,
            spread: Warmup::default(),
        }
    }
}

impl Test {
    /// Decodes a state; `None` for anything but this exact format.
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        let mut r = StateReader::open(bytes, TAG, VERSION)?;
        let test = Self {
            last_seen_ms: r.time()?,
            drift_at_ms: r.time()?,
            drift_statistic: r.f64()?,
            detections: r.u64()?,
            drift_detected: r.u8()? == 1,
            n: r.u64()?,
            mean: r.f64()?,
            sum_increase: r.f64()?,
            sum_decrease: r.f64()?,
            min_increase: r.f64()?,
            max_decrease: r.f64()?,
            seasonal: r.u8()? == 1,
            spread: Warmup {
                count: r.u64()?,
                mean: r.f64()?,
                m2: r.f64()?,
            },
        };
        r.finish()?;
        Some(test)
    }

    /// Encodes the state.
    pub fn encode(&self) -> Vec<u8> {
        StateWriter::new(TAG, VERSION)
            .time(self.last_seen_ms)
            .time(self.drift_at_ms)
            .f64(self.drift_statistic)
            .u64(self.detections)
            .u8(u8::from(self.drift_detected))
            .u64(self.n)
            .f64(self.mean)
            .f64(self.sum_increase)
            .f64(self.sum_decrease)
            .f64(self.min_increase)
            .f64(self.max_decrease)
            .u8(u8::from(self.seasonal))
            .u64(self.spread.count)
            .f64(self.spread.mean)
            .f64(self.spread.m2)
            .finish()
    }

    /// `(S⁺ - m⁺, M⁻ - S⁻)`.
    pub fn statistics(&self) -> (f64, f64) {
        (
            self.sum_increase - self.min_increase,
            self.max_decrease - self.sum_decrease,
        )
    }

    /// The test restarted, keeping its history and learned spread.
    fn restarted(&self) -> Self {
        Self {
            last_seen_ms: self.last_seen_ms,
            drift_at_ms: self.drift_at_ms,
            drift_statistic: self.drift_statistic,
            detections: self.detections,
            seasonal: self.seasonal,
            spread: self.spread,
            ..Self::default()
        }
    }

    /// river's `update(x)` with δ and λ of `limits`; returns whether `x` signals a
    /// drift.
    pub fn update(&mut self, cfg: &Config, limits: Limits, x: f64) -> bool {
        if self.drift_detected {
            *self = self.restarted();
        }
        self.n += 1;
        self.mean += (x - self.mean) / self.n as f64;
        let dev = x - self.mean;
        self.sum_increase = cfg.alpha * self.sum_increase + dev - limits.delta;
        self.sum_decrease = cfg.alpha * self.sum_decrease + dev + limits.delta;
        if self.sum_increase < self.min_increase {
            self.min_increase = self.sum_increase;
        }
        if self.sum_decrease > self.max_decrease {
            self.max_decrease = self.sum_decrease;
        }
        if !(self.mean.is_finite()
            && self.sum_increase.is_finite()
            && self.sum_decrease.is_finite())
        {
            // Overflow (samples near ±f64::MAX): nothing sensible survives it, so the
            // test restarts at the next sample instead of carrying NaN forever.
            *self = self.restarted();
            return false;
        }
        if self.n >= cfg.min_instances {
            let (up, down) = self.statistics();
            let fires_up = up > limits.threshold && cfg.mode != Direction::Down;
            let fires_down = down > limits.threshold && cfg.mode != Direction::Up;
            self.drift_detected = fires_up || fires_down;
            if self.drift_detected {
                self.drift_statistic = if fires_up && (!fires_down || up >= down) {
                    up
                } else {
                    -down
                };
            }
        }
        self.drift_detected
    }
}

impl Detector for PageHinkley {
    type Config = Config;

    fn info() -> Info {
        Info::new(
            "page_hinkley",
            env!("CARGO_PKG_VERSION"),
            "Page-Hinkley change detection (river's definition): fires for `hold_seconds` \
             after the cumulative deviation from the running mean exceeds `threshold`.",
        )
        .schema(SCHEMA)
    }

    fn check_config(cfg: &Config) -> Result<(), String> {
        if cfg.min_instances < 1 {
            return Err("min_instances: must be at least 1, got 0".into());
        }
        if let Some(delta) = cfg.delta
            && !(delta.is_finite() && delta >= 0.0)
        {
            return Err(format!("delta: must be a finite number ≥ 0, got {delta}"));
        }
        if let Some(threshold) = cfg.threshold
            && !(threshold.is_finite() && threshold > 0.0)
        {
            return Err(format!(
                "threshold: must be a finite number above 0, got {threshold}"
            ));
        }
        if cfg.reference_samples < 2 {
            return Err(format!(
                "reference_samples: must be at least 2 (a standard deviation needs two), got {}",
                cfg.reference_samples
            ));
        }
        if !(cfg.alpha > 0.0 && cfg.alpha <= 1.0) {
            return Err(format!("alpha: must be in (0, 1], got {}", cfg.alpha));
        }
        check_hold_seconds(cfg.hold_seconds)?;
        Season::check(cfg.season_seconds, cfg.season_tolerance_seconds)
    }

    fn evaluate(cfg: &Config, series: &Series<'_>) -> Output {
        let previous = series.state.and_then(Test::decode);
        let differencing = Differencing::of_series(
            cfg.season_seconds,
            cfg.season_tolerance_seconds,
            series,
            previous.is_some_and(|t| t.seasonal),
        );
        // A test of raw samples is no test of residuals: switching starts over.
        let kept = previous.filter(|s| s.seasonal == differencing.seasonal);
        // A detection among this evaluation's new samples is reported even when older
        // than the hold (a rule evaluated less often than `hold_seconds`); not on a
        // first evaluation, whose window may reach far back.
        let consumed_from = kept
            .as_ref()
            .and_then(|s| first_unseen(&series.window, s.last_seen_ms));
        let mut test = kept.unwrap_or(Test {
            seasonal: differencing.seasonal,
            ..Test::default()
        });
        let limits = cfg.limits(test.seasonal);
        let target = u64::from(cfg.reference_samples);
        let mut unmatched = 0usize;
        for (t, x) in unseen(&series.window, test.last_seen_ms) {
            test.last_seen_ms = Some(t);
            if !x.is_finite() {
                continue;
            }
            let Some(x) = differencing.value(&series.baseline, t, x) else {
                unmatched += 1;
                continue;
            };
            // Residuals are tested in units of their spread, learned first.
            let x = if test.seasonal {
                match test.spread.reference(target) {
                    Some(r) => scaled(x, r.stddev),
                    None => {
                        test.spread.push(x);
                        continue;
                    }
                }
            } else {
                x
            };
            if test.update(cfg, limits, x) {
                test.drift_at_ms = Some(t);
                test.detections += 1;
            }
        }
        let v = verdict(cfg, &test, series.eval_time_ms, consumed_from);
        season::annotate(v, differencing, unmatched).with_state(test.encode())
    }
}

fn verdict(cfg: &Config, test: &Test, eval_time_ms: i64, consumed_from_ms: Option<i64>) -> Verdict {
    let limits = cfg.limits(test.seasonal);
    let holding = held_detection(
        test.drift_at_ms,
        eval_time_ms,
        cfg.hold_seconds,
        consumed_from_ms,
    );
    let spread = test
        .spread
        .reference(u64::from(cfg.reference_samples))
        .filter(|_| test.seasonal);
    let (up, down) = test.statistics();
    let current = if test.n < cfg.min_instances {
        0.0
    } else if up >= down {
        up
    } else {
        -down
    };
    let score = bounded(if holding.is_some() {
        test.drift_statistic
    } else {
        current
    });
    let summary = match holding {
        Some(at) => {
            let mut s = format!(
                "drift {} detected {}s ago (statistic ",
                if test.drift_statistic >= 0.0 {
                    "up"
                } else {
                    "down"
                },
                (eval_time_ms - at).max(0) / 1000
            );
            push_value(&mut s, test.drift_statistic.abs());
            s.push_str(" > ");
            push_value(&mut s, limits.threshold);
            s.push_str(", mean ");
            push_value(&mut s, test.mean);
            s.push_str(&format!(" over {} samples)", test.n));
            s
        }
        None if test.seasonal && spread.is_none() => format!(
            "learning the residuals' spread: {} of {} samples",
            test.spread.count, cfg.reference_samples
        ),
        None if test.n < cfg.min_instances => {
            format!(
                "{} of {} samples before detection starts",
                test.n, cfg.min_instances
            )
        }
        None => {
            let mut s = String::from("no drift (statistic ");
            push_value(&mut s, current.abs());
            s.push_str(" ≤ ");
            push_value(&mut s, limits.threshold);
            s.push_str(", mean ");
            push_value(&mut s, test.mean);
            s.push_str(&format!(" over {} samples)", test.n));
            s
        }
    };
    let mut v = Verdict::new(holding.is_some(), score, summary)
        .annotate("statistic", format_value(score))
        .annotate("threshold", format_value(limits.threshold))
        .annotate("mean", format_value(bounded(test.mean)))
        .annotate("samples", test.n.to_string())
        .annotate("detections", test.detections.to_string());
    if let Some(spread) = spread {
        v = v.annotate("stddev", format_value(spread.stddev));
    }
    if let Some(at) = test.drift_at_ms {
        v = v.annotate("drift_at", at.to_string());
    }
    v
}

klaxon_sdk::export_detector!(PageHinkley);

#[cfg(test)]
mod tests {
    use super::*;
    use klaxon_anomaly_common::fixtures::{replay, river_prefix, river_stream};
    use klaxon_sdk::testing::{self, STEP_MS, TestSeries};

    /// Indices at which river 0.26.1's `drift.PageHinkley(**kwargs)` reports
    /// `drift_detected` on [`river_stream`], by `testdata/ph.py` in anomaly-common.
    fn detections(config: &str, values: &[f64]) -> Vec<usize> {
        let cfg: Config = serde_json::from_str(config).unwrap();
        let mut test = Test::default();
        (0..values.len())
            .filter(|&i| test.update(&cfg, cfg.limits(false), values[i]))
            .collect()
    }

    #[test]
    fn matches_river_detections() {
        let xs = river_stream();
        assert_eq!(xs.len(), 600);
        // PageHinkley()
        assert_eq!(detections("{}", &xs), vec![311]);
        // PageHinkley(threshold=10.0)
        assert_eq!(
            detections(r#"{"threshold":10}"#, &xs),
            vec![110, 277, 307, 390, 420, 460, 527, 585]
        );
        // PageHinkley(threshold=10.0, mode="up") / "down"
        assert_eq!(
            detections(r#"{"threshold":10,"mode":"up"}"#, &xs),
            vec![110, 301, 415, 529]
        );
        assert_eq!(
            detections(r#"{"threshold":10,"mode":"down"}"#, &xs),
            vec![278]
        );
        // PageHinkley(min_instances=10, delta=0.05, threshold=5.0, alpha=0.99)
        assert_eq!(
            detections(
                r#"{"min_instances":10,"delta":0.05,"threshold":5,"alpha":0.99}"#,
                &xs
            ),
            vec![
                68, 82, 134, 186, 209, 232, 248, 278, 295, 305, 321, 374, 391, 405, 437, 450, 468,
                516, 577
            ]
        );
        // The mirrored stream swaps up and down.
        let neg: Vec<f64> = xs.iter().map(|x| -x).collect();
        assert_eq!(
            detections(r#"{"threshold":10,"mode":"up"}"#, &neg),
            vec![278]
        );
    }

    #[test]
    fn matches_river_internal_sums() {
        // After the whole stream, PageHinkley(): _x_mean.n = 288,
        // _x_mean.get() = 3.0278090277777796, _sum_increase = -13.044705359412564,
        // _sum_decrease = -10.205642157146917, _min_increase = -26.24078075449564,
        // _max_decrease = 5.133919659905321 (river 0.26.1).
        let cfg = Config::default();
        let mut test = Test::default();
        for x in river_stream() {
            test.update(&cfg, RAW_LIMITS, x);
        }
        assert_eq!(test.n, 288);
        let close = |a: f64, b: f64| (a - b).abs() < 1e-9;
        assert!(close(test.mean, 3.0278090277777796));
        assert!(close(test.sum_increase, -13.044705359412564));
        assert!(close(test.sum_decrease, -10.205642157146917));
        assert!(close(test.min_increase, -26.24078075449564));
        assert!(close(test.max_decrease, 5.133919659905321));
    }

    #[test]
    fn verdict_holds_after_a_detection() {
        let xs = river_stream();
        let ts = TestSeries::from_values(&xs).timestamps_ms;
        let eval =
            |end: usize, state: Option<Vec<u8>>| river_prefix::<PageHinkley>("{}", end, state);
        // Evaluated at the detecting sample (index 311): firing.
        let out = eval(312, None);
        let v = &out.verdict;
        assert!(v.firing, "{}", v.summary);
        assert!(v.score > 50.0);
        assert_eq!(v.annotation("detections"), Some("1"));
        assert_eq!(v.annotation("drift_at"), Some(ts[311].to_string().as_str()));
        assert!(
            v.summary.starts_with("drift up detected 0s ago"),
            "{}",
            v.summary
        );
        // 40 samples later (600 s at 15 s) it still holds; 41 later (615 s) it does not.
        assert_eq!(40 * STEP_MS, 600_000);
        assert!(eval(352, out.state.clone()).verdict.firing);
        let later = eval(353, out.state.clone()).verdict;
        assert!(!later.firing, "{}", later.summary);
        assert!(later.summary.starts_with("no drift"), "{}", later.summary);
        assert_eq!(
            later.annotation("drift_at"),
            Some(ts[311].to_string().as_str())
        );
    }

    #[test]
    fn a_detection_is_reported_at_the_next_evaluation_however_late() {
        // Evaluated at sample 299, then once at sample 599 (75 min later, far past the
        // 600 s hold): the detection at 311 is among the samples that evaluation
        // consumed, so it fires; evaluated again with nothing new, it does not.
        let xs = river_stream();
        let ts = TestSeries::from_values(&xs).timestamps_ms;
        let eval =
            |end: usize, state: Option<Vec<u8>>| river_prefix::<PageHinkley>("{}", end, state);
        let first = eval(300, None);
        assert!(!first.verdict.firing, "{}", first.verdict.summary);
        let late = eval(600, first.state.clone());
        assert!(late.verdict.firing, "{}", late.verdict.summary);
        assert_eq!(
            late.verdict.annotation("drift_at"),
            Some(ts[311].to_string().as_str())
        );
        let again = eval(600, late.state.clone());
        assert!(!again.verdict.firing, "{}", again.verdict.summary);
        // A first evaluation (no state) reaching that far back does not page for it.
        assert!(!eval(600, None).verdict.firing);
    }

    #[test]
    fn incremental_evaluation_equals_one_shot() {
        let mut xs = river_stream();
        xs[100] = f64::NAN;
        xs[320] = f64::INFINITY;
        let one_shot = testing::run_detector::<PageHinkley>(
            r#"{"threshold":10}"#,
            &[TestSeries::from_values(&xs)],
        )
        .unwrap()
        .remove(0);
        for (window, step) in [(20, 1), (50, 7), (600, 600)] {
            assert_eq!(
                replay::<PageHinkley>(r#"{"threshold":10}"#, &xs, window, step),
                one_shot
            );
        }
        let t = Test::decode(one_shot.state.as_deref().unwrap()).unwrap();
        assert_eq!(t.detections, 8);
    }

    #[test]
    fn empty_constant_and_nan_windows_never_give_nan() {
        for values in [
            vec![],
            vec![f64::NAN; 50],
            vec![7.0; 50],
            [f64::MAX, -f64::MAX].repeat(30),
        ] {
            let v = testing::run_detector::<PageHinkley>("{}", &[TestSeries::from_values(&values)])
                .unwrap()
                .remove(0)
                .verdict;
            assert!(v.score.is_finite(), "{values:?}");
            assert!(
                v.annotations.iter().all(|(_, a)| a != "NaN"),
                "{:?}",
                v.annotations
            );
        }
        let v = testing::run_detector::<PageHinkley>("{}", &[TestSeries::from_values(&[7.0; 50])])
            .unwrap()
            .remove(0)
            .verdict;
        assert!(!v.firing);
    }

    #[test]
    fn foreign_state_starts_fresh() {
        let xs = river_stream();
        let s = || TestSeries::from_values(&xs[..50]);
        let fresh = testing::run_detector::<PageHinkley>("{}", &[s()])
            .unwrap()
            .remove(0);
        for junk in [vec![], vec![b'P', 1], vec![b'P', 2], vec![b'A', 1, 0]] {
            let out = testing::run_detector::<PageHinkley>("{}", &[s().state(junk)])
                .unwrap()
                .remove(0);
            assert_eq!(out, fresh);
        }
        assert_eq!(fresh.state.unwrap().len(), 108);
    }

    #[test]
    fn config_checks() {
        let check = testing::check_detector_config::<PageHinkley>;
        assert!(check("{}").is_ok());
        for (config, field) in [
            (r#"{"min_instances":0}"#, "min_instances:"),
            (r#"{"delta":-1}"#, "delta:"),
            (r#"{"threshold":0}"#, "threshold:"),
            (r#"{"alpha":0}"#, "alpha:"),
            (r#"{"alpha":1.1}"#, "alpha:"),
            (r#"{"mode":"sideways"}"#, "mode:"),
            (r#"{"hold_seconds":-5}"#, "hold_seconds:"),
        ] {
            let err = check(config).unwrap_err();
            assert!(err.starts_with(field), "{config}: {err}");
        }
        assert!(
            check(r#"{"lambda":3}"#)
                .unwrap_err()
                .contains("unknown field `lambda`")
        );
    }

    #[test]
    fn season_seconds_charts_residuals_against_last_season() {
        klaxon_anomaly_common::fixtures::assert_season_charts_residuals::<PageHinkley>("statistic");
    }

    #[test]
    fn a_rule_baseline_implies_the_season() {
        use klaxon_anomaly_common::fixtures::assert_baseline_implies_the_season;
        // Without season_seconds, the baseline one season back (60 s) sets the season:
        // the verdicts equal those with season_seconds: 60.
        assert_baseline_implies_the_season::<PageHinkley>(
            r#"{"season_tolerance_seconds":1}"#,
            10.0,
        );
        // On residuals the test runs in units of their σ̂, with δ 1 and λ 10.
        let (_, after) = klaxon_anomaly_common::fixtures::season_before_and_after::<PageHinkley>(
            r#"{"season_tolerance_seconds":1}"#,
            10.0,
        );
        assert_eq!(after.verdict.annotation("threshold"), Some("10"));
        let sd: f64 = after
            .verdict
            .annotation("stddev")
            .and_then(|s| s.parse().ok())
            .expect("stddev annotation");
        assert!(
            (0.6..1.1).contains(&sd),
            "the fixture's residual σ is ≈ 0.82: {sd}"
        );
    }
}
