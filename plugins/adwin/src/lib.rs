//! `adwin`: ADWIN, adaptive windowing (Bifet & Gavaldà, 2007), with river's definition
//! of the window (exponential histogram of buckets) and of the cut test. A streaming
//! detector: the buckets live in the host-owned per-series state, and each evaluation
//! consumes only samples newer than the last one it saw.
//!
//! # Config
//!
//! ```json
//! { "delta": 0.002, "clock": 1, "max_buckets": 5, "min_window_length": 5,
//!   "grace_period": 10, "hold_seconds": 600 }
//! ```
//!
//! | field               | type    | default | meaning |
//! |---------------------|---------|---------|---------|
//! | `delta`             | number  | `0.002` | δ, confidence of the cut test, in (0, 1) |
//! | `clock`             | integer | `1`     | test for a cut every `clock` samples (≥ 1; river's default is 32, which delays detection by up to 32 samples) |
//! | `max_buckets`       | integer | `5`     | buckets of each size kept before two merge (2..=64) |
//! | `min_window_length` | integer | `5`     | fewest samples in each sub-window of a cut (≥ 1) |
//! | `grace_period`      | integer | `10`    | window size before any cut is tested (≥ 0) |
//! | `hold_seconds`      | number  | `600`   | the verdict fires while a detection happened at most this long before the evaluation time, or among the samples this evaluation consumed (finite, ≥ 0) |
//! | `season_seconds`    | number  | none: the season the rule's baseline implies | test residuals against the same time this long ago, from the rule's baseline (see Seasonal metrics; ≥ 1) |
//! | `season_tolerance_seconds` | number | `300` | how much older than one season back the matching sample may be (≥ 0, < `season_seconds`) |
//!
//! Unknown fields are an error. Smaller δ means fewer false alarms and slower
//! detection; δ is per test, so with `clock: 1` the false-alarm rate per sample is
//! roughly δ-bounded per cut point.
//!
//! # Seasonal metrics
//!
//! **With a rule baseline one season back** ADWIN runs on `x - x offset <season>`
//! (each new sample minus the newest baseline sample at or before one season
//! earlier, at most `season_tolerance_seconds` older; samples without one are
//! skipped and counted in `season_unmatched`), so a daily or weekly cycle is not a
//! change. The season is `season_seconds` when set, otherwise the one the baseline
//! implies (the time from the baseline's newest sample to the window's newest: the
//! rule's `offset` for a series on a steady schedule; see
//! `klaxon_anomaly_common::season`). The rule's baseline must reach one season back
//! for every new sample (`window: 30m`, `baseline: { offset: 1w, window: 35m }` for
//! a rule evaluated every 30 min, no config); a detection is reported at the next
//! evaluation even when that is longer than `hold_seconds` after it. Until the
//! store holds a season of history the baseline is empty and ADWIN runs on the raw
//! samples; `season_seconds` makes it skip those samples instead. Measured
//! (BENCHMARKS.md, weekly-seasonal metric sampled every minute, that rule, `{}`):
//! every 5-8 σ level shift flagged at the first evaluation, gradual drifts within 2
//! (median), no false alert in 4 weeks, on three seed sets.
//!
//! # Formula (river's)
//!
//! Each finite sample (NaN and ±Inf are skipped) enters a bucket of size 1; when a size
//! holds `max_buckets + 1` buckets, the two oldest merge into one of twice the size
//! (sums add, variances combine as `v₁ + v₂ + n₁n₂(μ₁-μ₂)²/(n₁+n₂)`). Every `clock`
//! samples, once the window is longer than `grace_period`, every split between
//! buckets into an older `W₀` (n₀ samples) and a newer `W₁` (n₁) with both at least
//! `min_window_length` long is tested, oldest first:
//!
//! ```text
//! δ' = ln(2·ln(n)/δ)                      n: window length
//! m  = 1/(n₀ - min_window_length + 1) + 1/(n₁ - min_window_length + 1)
//! ε  = sqrt(2·m·σ²_W·δ') + 2/3·δ'·m       σ²_W: variance of the whole window
//! cut when |μ₀ - μ₁| > ε
//! ```
//!
//! A cut drops the oldest bucket and tests again, until no split cuts; the sample
//! that caused a cut signals a drift, and, as river's `ADWIN` does, the next sample
//! starts from an empty window. (Beyond river: a window whose sums overflow, from
//! samples near ±1.8e308, restarts empty instead of turning NaN.)
//!
//! # Alerting
//!
//! The verdict fires while the last detection's sample is no older than
//! `hold_seconds` before the evaluation time, or was among the samples this
//! evaluation consumed (so a rule evaluated less often than `hold_seconds` still
//! sees every detection once; not on a series' first evaluation, whose window may
//! reach far back).
//!
//! # State
//!
//! Tag `A`, version 2: last-seen and last-detection timestamps, the shift at that
//! detection, detection count, drift flag, a seasonal byte (the window holds
//! residuals; a window whose kind no longer matches the rule starts over), tick,
//! window length, sum and variance, then
//! the buckets (per size: count, then sum and variance of each). About
//! `16·max_buckets·log₂(n/max_buckets)` bytes: ~1 KiB for 100 000 samples. Unknown
//! tag, version or length: start fresh.
//!
//! # Verdict
//!
//! - score: while holding, the shift of the first cut, `μ₁ - μ₀` (new minus old mean;
//!   negative for a drop); otherwise 0;
//! - summary like `drift detected 30s ago: mean moved 10 → 13.1 (window now 40 samples)`;
//! - annotations: `shift`, `mean` (of the current window), `width`, `detections`, and
//!   `drift_at` (Unix ms of the detecting sample) once there was one.
//!
//! # Measured
//!
//! On iid N(0, 1) samples, a rule window of 240 samples judged every 4 samples
//! (15 s samples, 1 min evaluations), 40 000 samples (≈ a week), 5 seeds, defaults: 0
//! false alert episodes per week; a 3σ level shift is flagged 7-11 samples after it.

use klaxon_anomaly_common::season::{self, DEFAULT_TOLERANCE_SECONDS, Differencing, Season};
use klaxon_anomaly_common::state::{StateReader, StateWriter, first_unseen, unseen};
use klaxon_anomaly_common::{bounded, check_hold_seconds, held_detection};
use klaxon_sdk::prelude::*;
use serde::Deserialize;

/// The ADWIN detector.
pub struct Adwin;

/// Parsed config; see the crate docs.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// δ.
    pub delta: f64,
    /// Samples between cut tests.
    pub clock: u64,
    /// Buckets per size before merging.
    pub max_buckets: u32,
    /// Fewest samples per sub-window.
    pub min_window_length: u64,
    /// Window length before cuts are tested.
    pub grace_period: u64,
    /// How long a detection keeps the verdict firing.
    pub hold_seconds: f64,
    /// Test residuals against the same time this many seconds back (none: off).
    pub season_seconds: Option<f64>,
    /// How much older than one season back the matching sample may be, in seconds.
    pub season_tolerance_seconds: f64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            delta: 0.002,
            clock: 1,
            max_buckets: 5,
            min_window_length: 5,
            grace_period: 10,
            hold_seconds: 600.0,
            season_seconds: None,
            season_tolerance_seconds: DEFAULT_TOLERANCE_SECONDS,
        }
    }
}

const SCHEMA: &str = r#"{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "title": "adwin",
  "type": "object",
  "additionalProperties": false,
  "properties": {
    "delta": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1, "default": 0.002, "description": "Confidence of the cut test."},
    "clock": {"type": "integer", "minimum": 1, "default": 1, "description": "Samples between cut tests."},
    "max_buckets": {"type": "integer", "minimum": 2, "maximum": 64, "default": 5, "description": "Buckets of each size before two merge."},
    "min_window_length": {"type": "integer", "minimum": 1, "default": 5, "description": "Fewest samples in each sub-window of a cut."},
    "grace_period": {"type": "integer", "minimum": 0, "default": 10, "description": "Window length before cuts are tested."},
    "hold_seconds": {"type": "number", "minimum": 0, "default": 600, "description": "Seconds a detection keeps the verdict firing."},
    "season_seconds": {"type": ["number", "null"], "minimum": 1, "default": null, "description": "Test each sample minus the rule's baseline sample this many seconds earlier (e.g. 604800: last week), so a daily or weekly cycle drops out."},
    "season_tolerance_seconds": {"type": "number", "minimum": 0, "default": 300, "description": "How much older than one season back the matching baseline sample may be."}
  }
}"#;

const TAG: u8 = b'A';
const VERSION: u8 = 2;

/// A bucket: sum of its samples and their sum of squared deviations.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bucket {
    /// Sum of the samples.
    pub total: f64,
    /// Sum of squared deviations from their mean.
    pub variance: f64,
}

/// The adaptive window.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Window {
    /// Samples consumed since the last reset (river's `tick`).
    pub tick: u64,
    /// Window length.
    pub width: f64,
    /// Sum of the window.
    pub total: f64,
    /// Sum of squared deviations of the window.
    pub variance: f64,
    /// `rows[i]`: buckets of size 2^i, oldest first; row 0 holds the newest samples.
    pub rows: Vec<Vec<Bucket>>,
}

fn bucket_size(row: usize) -> f64 {
    2f64.powi(row as i32)
}

impl Window {
    fn insert(&mut self, cfg: &Config, value: f64) {
        if self.rows.is_empty() {
            self.rows.push(Vec::new());
        }
        self.rows[0].push(Bucket {
            total: value,
            variance: 0.0,
        });
        self.width += 1.0;
        if self.width > 1.0 {
            let mean_before = self.total / (self.width - 1.0);
            self.variance +=
                (self.width - 1.0) * (value - mean_before) * (value - mean_before) / self.width;
        }
        self.total += value;
        self.compress(cfg);
    }

    fn compress(&mut self, cfg: &Config) {
        let full = cfg.max_buckets as usize + 1;
        let mut idx = 0;
        while idx < self.rows.len() && self.rows[idx].len() == full {
            if idx + 1 == self.rows.len() {
                self.rows.push(Vec::new());
            }
            let n = bucket_size(idx);
            let (b1, b2) = (self.rows[idx][0], self.rows[idx][1]);
            let (mu1, mu2) = (b1.total / n, b2.total / n);
            let merged = Bucket {
                total: b1.total + b2.total,
                variance: b1.variance + b2.variance + n * n * (mu1 - mu2) * (mu1 - mu2) / (n + n),
            };
            self.rows[idx].drain(..2);
            self.rows[idx + 1].push(merged);
            if self.rows[idx + 1].len() <= cfg.max_buckets as usize {
                break;
            }
            idx += 1;
        }
    }

    /// Drops the oldest bucket; returns its size.
    fn delete_oldest(&mut self) -> f64 {
        let Some(last) = self.rows.len().checked_sub(1) else {
            return 0.0;
        };
        let n = bucket_size(last);
        let Some(bucket) = self.rows[last].first().copied() else {
            self.rows.pop();
            return 0.0;
        };
        self.width -= n;
        self.total -= bucket.total;
        let mu = bucket.total / n;
        let mu_window = if self.width > 0.0 {
            self.total / self.width
        } else {
            0.0
        };
        self.variance -= bucket.variance
            + n * self.width * (mu - mu_window) * (mu - mu_window) / (n + self.width);
        self.rows[last].remove(0);
        if self.rows[last].is_empty() {
            self.rows.pop();
        }
        n
    }

    fn cut(&self, cfg: &Config, n0: f64, n1: f64, delta_mean: f64) -> bool {
        let delta_prime = (2.0 * self.width.ln() / cfg.delta).ln();
        let mwl = cfg.min_window_length as f64;
        let m_recip = 1.0 / (n0 - mwl + 1.0) + 1.0 / (n1 - mwl + 1.0);
        let variance_in_window = self.variance / self.width;
        let epsilon = (2.0 * m_recip * variance_in_window * delta_prime).sqrt()
            + 2.0 / 3.0 * delta_prime * m_recip;
        delta_mean.abs() > epsilon
    }

    /// Adds a sample and tests for a cut; returns the shift (new minus old mean) of
    /// the first cut when there was one.
    pub fn update(&mut self, cfg: &Config, value: f64) -> Option<f64> {
        self.insert(cfg, value);
        self.tick += 1;
        let mwl = cfg.min_window_length as f64;
        let mut shift = None;
        if !self.tick.is_multiple_of(cfg.clock.max(1)) || self.width <= cfg.grace_period as f64 {
            return None;
        }
        let mut reduce = true;
        while reduce {
            reduce = false;
            let (mut n0, mut n1) = (0.0, self.width);
            let (mut u0, mut u1) = (0.0, self.total);
            'rows: for idx in (0..self.rows.len()).rev() {
                let row_len = self.rows[idx].len();
                for k in 0..row_len {
                    let n2 = bucket_size(idx);
                    let u2 = self.rows[idx][k].total;
                    n0 += n2;
                    n1 -= n2;
                    u0 += u2;
                    u1 -= u2;
                    // The newest bucket ends the walk: W₁ would be empty.
                    if idx == 0 && k + 1 == row_len {
                        break 'rows;
                    }
                    let delta_mean = u0 / n0 - u1 / n1;
                    if n1 >= mwl && n0 >= mwl && self.cut(cfg, n0, n1, delta_mean) {
                        reduce = true;
                        shift.get_or_insert(-delta_mean);
                        if self.width > 0.0 {
                            self.delete_oldest();
                            break 'rows;
                        }
                    }
                }
            }
        }
        shift
    }

    /// Mean of the window (0 when empty).
    pub fn mean(&self) -> f64 {
        if self.width > 0.0 {
            self.total / self.width
        } else {
            0.0
        }
    }
}

/// The detector's per-series state.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct State {
    /// Timestamp of the newest sample consumed.
    pub last_seen_ms: Option<i64>,
    /// Timestamp of the sample that signalled the last drift.
    pub drift_at_ms: Option<i64>,
    /// Shift of that drift's first cut.
    pub drift_shift: f64,
    /// Detections so far.
    pub detections: u64,
    /// Whether the newest sample signalled a drift (the next one resets the window).
    pub drift_detected: bool,
    /// Whether the window holds seasonal residuals rather than raw samples.
    pub seasonal: bool,
    /// The window.
    pub window: Window,
}

impl State {
    /// Decodes a state; `None` for anything but this exact format.
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        let mut r = StateReader::open(bytes, TAG, VERSION)?;
        let mut state = Self {
            last_seen_ms: r.time()?,
            drift_at_ms: r.time()?,
            drift_shift: r.f64()?,
            detections: r.u64()?,
            drift_detected: r.u8()? == 1,
            seasonal: r.u8()? == 1,
            window: Window {
                tick: r.u64()?,
                width: r.f64()?,
                total: r.f64()?,
                variance: r.f64()?,
                rows: Vec::new(),
            },
        };
        let rows = r.u8()?;
        for _ in 0..rows {
            let len = r.u8()?;
            let mut row = Vec::with_capacity(len as usize);
            for _ in 0..len {
                row.push(Bucket {
                    total: r.f64()?,
                    variance: r.f64()?,
                });
            }
            state.window.rows.push(row);
        }
        r.finish()?;
        Some(state)
    }

    /// Encodes the state.
    pub fn encode(&self) -> Vec<u8> {
        let w = &self.window;
        let mut out = StateWriter::new(TAG, VERSION)
            .time(self.last_seen_ms)
            .time(self.drift_at_ms)
            .f64(self.drift_shift)
            .u64(self.detections)
            .u8(u8::from(self.drift_detected))
            .u8(u8::from(self.seasonal))
            .u64(w.tick)
            .f64(w.width)
            .f64(w.total)
            .f64(w.variance)
            // Rows double in size: 255 of them would hold more than 2^254 samples.
            .u8(w.rows.len().min(255) as u8);
        for row in w.rows.iter().take(255) {
            out = out.u8(row.len().min(255) as u8);
            for b in row.iter().take(255) {
                out = out.f64(b.total).f64(b.variance);
            }
        }
        out.finish()
    }

    /// river's `ADWIN.update(x)`; returns whether `x` signals a drift.
    pub fn update(&mut self, cfg: &Config, x: f64) -> bool {
        if self.drift_detected {
            self.window = Window::default();
        }
        let shift = self.window.update(cfg, x);
        if !(self.window.total.is_finite() && self.window.variance.is_finite()) {
            // Overflow (samples near ±f64::MAX): restart rather than carry NaN forever.
            self.window = Window::default();
            self.drift_detected = false;
            return false;
        }
        self.drift_detected = shift.is_some();
        if let Some(shift) = shift {
            self.drift_shift = shift;
        }
        self.drift_detected
    }
}

impl Detector for Adwin {
    type Config = Config;

    fn info() -> Info {
        Info::new(
            "adwin",
            env!("CARGO_PKG_VERSION"),
            "ADWIN adaptive windowing (river's definition): fires for `hold_seconds` after \
             the means of an older and a newer part of the adaptive window differ by more \
             than the Hoeffding-style bound for confidence `delta`.",
        )
        .schema(SCHEMA)
    }

    fn check_config(cfg: &Config) -> Result<(), String> {
        if !(cfg.delta > 0.0 && cfg.delta < 1.0) {
            return Err(format!("delta: must be in (0, 1), got {}", cfg.delta));
        }
        if cfg.clock < 1 {
            return Err("clock: must be at least 1, got 0".into());
        }
        if !(2..=64).contains(&cfg.max_buckets) {
            return Err(format!(
                "max_buckets: must be between 2 and 64, got {}",
                cfg.max_buckets
            ));
        }
        if cfg.min_window_length < 1 {
            return Err("min_window_length: must be at least 1, got 0".into());
        }
        check_hold_seconds(cfg.hold_seconds)?;
        Season::check(cfg.season_seconds, cfg.season_tolerance_seconds)
    }

    fn evaluate(cfg: &Config, series: &Series<'_>) -> Output {
        let previous = series.state.and_then(State::decode);
        let differencing = Differencing::of_series(
            cfg.season_seconds,
            cfg.season_tolerance_seconds,
            series,
            previous.as_ref().is_some_and(|s| s.seasonal),
        );
        // A window of raw samples is no window of residuals: switching starts over.
        let kept = previous.filter(|s| s.seasonal == differencing.seasonal);
        // A detection among this evaluation's new samples is reported even when older
        // than the hold (a rule evaluated less often than `hold_seconds`); not on a
        // first evaluation, whose window may reach far back.
        let consumed_from = kept
            .as_ref()
            .and_then(|s| first_unseen(&series.window, s.last_seen_ms));
        let mut state = kept.unwrap_or(State {
            seasonal: differencing.seasonal,
            ..State::default()
        });
        let mut unmatched = 0usize;
        for (t, x) in unseen(&series.window, state.last_seen_ms) {
            state.last_seen_ms = Some(t);
            if !x.is_finite() {
                continue;
            }
            let Some(x) = differencing.value(&series.baseline, t, x) else {
                unmatched += 1;
                continue;
            };
            if state.update(cfg, x) {
                state.drift_at_ms = Some(t);
                state.detections += 1;
            }
        }
        let v = verdict(cfg, &state, series.eval_time_ms, consumed_from);
        season::annotate(v, differencing, unmatched).with_state(state.encode())
    }
}

fn verdict(
    cfg: &Config,
    state: &State,
    eval_time_ms: i64,
    consumed_from_ms: Option<i64>,
) -> Verdict {
    let holding = held_detection(
        state.drift_at_ms,
        eval_time_ms,
        cfg.hold_seconds,
        consumed_from_ms,
    );
    let mean = bounded(state.window.mean());
    let width = state.window.width as u64;
    let shift = bounded(state.drift_shift);
    let (score, summary) = match holding {
        Some(at) => {
            let mut s = format!(
                "drift detected {}s ago: mean moved by ",
                (eval_time_ms - at).max(0) / 1000
            );
            push_value(&mut s, shift);
            s.push_str(&format!(" (window now {width} samples, mean "));
            push_value(&mut s, mean);
            s.push(')');
            (shift, s)
        }
        None => {
            let mut s = format!("no drift (window {width} samples, mean ");
            push_value(&mut s, mean);
            s.push(')');
            (0.0, s)
        }
    };
    let mut v = Verdict::new(holding.is_some(), score, summary)
        .annotate("shift", format_value(shift))
        .annotate("mean", format_value(mean))
        .annotate("width", width.to_string())
        .annotate("detections", state.detections.to_string());
    if let Some(at) = state.drift_at_ms {
        v = v.annotate("drift_at", at.to_string());
    }
    v
}

klaxon_sdk::export_detector!(Adwin);

#[cfg(test)]
mod tests {
    use super::*;
    use klaxon_anomaly_common::fixtures::{replay, river_prefix, river_stream};
    use klaxon_sdk::testing::{self, TestSeries};

    /// Detection indices and the window length right after each detection.
    fn detections(config: &str, values: &[f64]) -> (Vec<usize>, Vec<f64>, State) {
        let cfg: Config = serde_json::from_str(config).unwrap();
        let mut state = State::default();
        let (mut at, mut widths) = (Vec::new(), Vec::new());
        for (i, &x) in values.iter().enumerate() {
            if state.update(&cfg, x) {
                at.push(i);
                widths.push(state.window.width);
            }
        }
        (at, widths, state)
    }

    #[test]
    fn matches_river() {
        // river 0.26.1, `testdata/adwin.py` in anomaly-common: drift.ADWIN(**kwargs) over
        // river_stream(); detection indices, `width` at each, and the final
        // width / estimation / variance.
        let xs = river_stream();
        let close = |a: f64, b: f64| (a - b).abs() < 1e-9 * b.abs().max(1.0);
        // ADWIN() (clock=32): [319], width 40; final 280, 3.0237571428571437, 275.4198034857142
        let (at, widths, s) = detections(r#"{"clock":32}"#, &xs);
        assert_eq!((at, widths), (vec![319], vec![40.0]));
        assert_eq!(s.window.width, 280.0);
        assert!(close(s.window.mean(), 3.0237571428571437));
        assert!(close(s.window.variance, 275.4198034857142));
        // ADWIN(clock=1): [307], width 276; final 292, 3.0326609589041107, 282.9396394349316
        let (at, widths, s) = detections("{}", &xs);
        assert_eq!((at, widths), (vec![307], vec![276.0]));
        assert_eq!(s.window.width, 292.0);
        assert!(close(s.window.mean(), 3.0326609589041107));
        assert!(close(s.window.variance, 282.9396394349316));
        // ADWIN(delta=0.1, clock=1): [304], width 177; final 295, 3.0361762711864415
        let (at, widths, s) = detections(r#"{"delta":0.1}"#, &xs);
        assert_eq!((at, widths), (vec![304], vec![177.0]));
        assert!(close(s.window.mean(), 3.0361762711864415));
        assert!(close(s.window.variance, 292.05135483389824));
        // ADWIN(delta=0.002, clock=4, grace_period=20, min_window_length=8): [311], 120
        let (at, widths, s) = detections(
            r#"{"clock":4,"grace_period":20,"min_window_length":8}"#,
            &xs,
        );
        assert_eq!((at, widths), (vec![311], vec![120.0]));
        assert!(close(s.window.variance, 278.11972449652785));
        // A clean step, 40 zeros then 40 ones (clock=1): detected at index 63 with
        // width 56 and estimation 24/56 = 0.42857142857142855; final width 16, mean 1.
        let step: Vec<f64> = [0.0; 40].iter().chain([1.0; 40].iter()).copied().collect();
        let (at, widths, s) = detections("{}", &step);
        assert_eq!((at, widths), (vec![63], vec![56.0]));
        assert_eq!((s.window.width, s.window.mean()), (16.0, 1.0));
    }

    #[test]
    fn verdict_holds_and_reports_the_shift() {
        let xs = river_stream();
        let ts = TestSeries::from_values(&xs).timestamps_ms;
        let eval = |end: usize, state: Option<Vec<u8>>| river_prefix::<Adwin>("{}", end, state);
        let out = eval(308, None);
        let v = &out.verdict;
        assert!(v.firing, "{}", v.summary);
        assert!(v.score > 1.0, "upward shift of ~3: {}", v.score);
        assert_eq!(v.annotation("drift_at"), Some(ts[307].to_string().as_str()));
        assert_eq!(v.annotation("width"), Some("276"));
        assert!(
            v.summary
                .starts_with("drift detected 0s ago: mean moved by "),
            "{}",
            v.summary
        );
        assert!(eval(348, out.state.clone()).verdict.firing);
        let later = eval(349, out.state.clone()).verdict;
        assert!(!later.firing, "{}", later.summary);
        assert_eq!(later.score, 0.0);
    }

    #[test]
    fn incremental_evaluation_equals_one_shot() {
        let mut xs = river_stream();
        xs[10] = f64::NAN;
        xs[400] = f64::NEG_INFINITY;
        let one_shot = testing::run_detector::<Adwin>("{}", &[TestSeries::from_values(&xs)])
            .unwrap()
            .remove(0);
        for (window, step) in [(30, 1), (100, 9), (600, 600)] {
            assert_eq!(replay::<Adwin>("{}", &xs, window, step), one_shot);
        }
        let state = State::decode(one_shot.state.as_deref().unwrap()).unwrap();
        assert_eq!(state.detections, 1);
    }

    #[test]
    fn empty_constant_and_nan_windows_never_give_nan() {
        for values in [
            vec![],
            vec![f64::NAN; 50],
            vec![7.0; 300],
            [f64::MAX, -f64::MAX].repeat(30),
        ] {
            let v = testing::run_detector::<Adwin>("{}", &[TestSeries::from_values(&values)])
                .unwrap()
                .remove(0)
                .verdict;
            assert!(v.score.is_finite(), "{values:?}");
        }
        let v = testing::run_detector::<Adwin>("{}", &[TestSeries::from_values(&[7.0; 300])])
            .unwrap()
            .remove(0)
            .verdict;
        assert!(!v.firing);
        assert_eq!(v.annotation("width"), Some("300"));
    }

    #[test]
    fn state_is_compact_and_foreign_states_start_fresh() {
        let xs: Vec<f64> = (0..100_000).map(|i| (i % 17) as f64).collect();
        let out = testing::run_detector::<Adwin>("{}", &[TestSeries::from_values(&xs)])
            .unwrap()
            .remove(0);
        let len = out.state.as_ref().unwrap().len();
        assert!(len < 2048, "{len} bytes");
        let decoded = State::decode(out.state.as_deref().unwrap()).unwrap();
        assert_eq!(decoded.encode(), out.state.clone().unwrap());
        let s = || TestSeries::from_values(&xs[..50]);
        let fresh = testing::run_detector::<Adwin>("{}", &[s()])
            .unwrap()
            .remove(0);
        for junk in [vec![], vec![b'A', 2], vec![b'P', 1, 0], vec![b'A', 1, 0, 0]] {
            let again = testing::run_detector::<Adwin>("{}", &[s().state(junk)])
                .unwrap()
                .remove(0);
            assert_eq!(again, fresh);
        }
    }

    #[test]
    fn config_checks() {
        let check = testing::check_detector_config::<Adwin>;
        assert!(check("{}").is_ok());
        for (config, field) in [
            (r#"{"delta":0}"#, "delta:"),
            (r#"{"delta":1}"#, "delta:"),
            (r#"{"clock":0}"#, "clock:"),
            (r#"{"max_buckets":1}"#, "max_buckets:"),
            (r#"{"min_window_length":0}"#, "min_window_length:"),
            (r#"{"grace_period":-1}"#, "grace_period:"),
            (r#"{"hold_seconds":-1}"#, "hold_seconds:"),
        ] {
            let err = check(config).unwrap_err();
            assert!(err.starts_with(field), "{config}: {err}");
        }
        assert!(
            check(r#"{"width":3}"#)
                .unwrap_err()
                .contains("unknown field `width`")
        );
    }

    #[test]
    fn season_seconds_charts_residuals_against_last_season() {
        klaxon_anomaly_common::fixtures::assert_season_charts_residuals::<Adwin>("shift");
    }

    #[test]
    fn a_rule_baseline_implies_the_season() {
        use klaxon_anomaly_common::fixtures::assert_baseline_implies_the_season;
        // Without season_seconds, the baseline one season back (60 s) sets the season:
        // the verdicts equal those with season_seconds: 60.
        assert_baseline_implies_the_season::<Adwin>(r#"{"season_tolerance_seconds":1}"#, 10.0);
    }
}
