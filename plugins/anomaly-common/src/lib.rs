//! Pieces the stock anomaly detectors share, so each detector crate holds only its
//! own statistics:
//!
//! - [`state`]: the versioned, compact byte format streaming detectors keep in the
//!   host-owned per-series state, and which samples of a window are new to them;
//! - [`Direction`]: which side of a statistic fires;
//! - [`Reference`] and [`Warmup`]: the in-control mean and standard deviation a
//!   control chart (EWMA, CUSUM) measures against, from the rule's baseline window
//!   or learned from a series' first samples;
//! - [`season`]: seasonal differencing of a streaming detector's samples against the
//!   same time one season back, from the rule's baseline window;
//! - [`scaled`] and [`bounded`]: ratios and scores that are never NaN or infinite;
//! - `fixtures` (native only): test helpers the detector crates share, such as the
//!   reference stream their river-computed vectors were made from.
//!
//! Pure computation over SDK types: never imports the SDK's bindings.

#[cfg(not(target_arch = "wasm32"))]
pub mod fixtures;
pub mod season;
pub mod state;

use klaxon_sdk::{Window, stats};
use serde::Deserialize;

/// Largest |score| a verdict reports; also the score of any change measured
/// against a zero spread.
pub const MAX_SCORE: f64 = 1e6;

/// `x` clamped to ±[`MAX_SCORE`]; NaN becomes 0.
pub fn bounded(x: f64) -> f64 {
    if x.is_nan() {
        0.0
    } else {
        x.clamp(-MAX_SCORE, MAX_SCORE)
    }
}

/// Checks a `hold_seconds` config value (finite, ≥ 0) of the change detectors
/// whose detections are one-off events (`page_hinkley`, `adwin`).
pub fn check_hold_seconds(hold_seconds: f64) -> Result<(), String> {
    if hold_seconds.is_finite() && hold_seconds >= 0.0 {
        Ok(())
    } else {
        Err(format!(
            "hold_seconds: must be a finite number ≥ 0, got {hold_seconds}"
        ))
    }
}

/// The last detection, when it happened at most `hold_seconds` before
/// `eval_time_ms`, or at one of the samples this evaluation consumed (from
/// `consumed_from_ms`, the oldest of them): while there is one, a one-off detector's
/// verdict fires. The second clause means a detection is always reported at the
/// next evaluation, however long the rule's interval is against `hold_seconds`.
pub fn held_detection(
    drift_at_ms: Option<i64>,
    eval_time_ms: i64,
    hold_seconds: f64,
    consumed_from_ms: Option<i64>,
) -> Option<i64> {
    let hold_ms = (hold_seconds * 1000.0) as i64;
    let held_from = eval_time_ms.saturating_sub(hold_ms);
    let held_from = consumed_from_ms.map_or(held_from, |t| held_from.min(t));
    drift_at_ms.filter(|at| *at >= held_from)
}

/// `deviation / scale`, never NaN or infinite: 0 when `deviation` is 0, ±[`MAX_SCORE`]
/// (the sign of `deviation`) when `scale` is 0, otherwise clamped to ±[`MAX_SCORE`].
pub fn scaled(deviation: f64, scale: f64) -> f64 {
    if deviation == 0.0 || deviation.is_nan() {
        return 0.0;
    }
    if scale == 0.0 {
        return MAX_SCORE.copysign(deviation);
    }
    bounded(deviation / scale)
}

/// Which side of a signed statistic fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Either side: `|score| > threshold`.
    #[default]
    Both,
    /// Only above: `score > threshold`.
    Up,
    /// Only below: `score < -threshold`.
    Down,
}

impl Direction {
    /// Whether `score` crosses `threshold` on this side.
    pub fn exceeds(self, score: f64, threshold: f64) -> bool {
        match self {
            Direction::Both => score.abs() > threshold,
            Direction::Up => score > threshold,
            Direction::Down => score < -threshold,
        }
    }

    /// The JSON name, for summaries.
    pub fn name(self) -> &'static str {
        match self {
            Direction::Both => "both",
            Direction::Up => "up",
            Direction::Down => "down",
        }
    }
}

/// In-control mean and standard deviation of a control chart.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Reference {
    /// μ0.
    pub mean: f64,
    /// σ0: the sample standard deviation (divide by n-1) of the reference samples.
    pub stddev: f64,
    /// Number of reference samples.
    pub samples: u64,
}

impl Reference {
    /// The reference of the finite samples of a baseline window; `None` with fewer
    /// than two (a sample standard deviation needs two).
    pub fn of_window(window: &Window<'_>) -> Option<Self> {
        let m = stats::moments(window.values)?;
        let stddev = m.sample_stddev()?;
        Some(Self {
            mean: m.mean,
            stddev: if stddev.is_finite() { stddev } else { 0.0 },
            samples: m.count as u64,
        })
    }
}

/// Phase I of a control chart without a baseline: Welford's running mean and sum of
/// squared deviations over a series' first finite samples, frozen once `target`
/// samples are in.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Warmup {
    /// Samples learned so far.
    pub count: u64,
    /// Their mean.
    pub mean: f64,
    /// Their sum of squared deviations from the mean.
    pub m2: f64,
}

impl Warmup {
    /// Learns one finite sample.
    pub fn push(&mut self, x: f64) {
        self.count += 1;
        let delta = x - self.mean;
        self.mean += delta / self.count as f64;
        self.m2 += delta * (x - self.mean);
    }

    /// The reference once at least `target` (≥ 2) samples are in.
    pub fn reference(&self, target: u64) -> Option<Reference> {
        if self.count < target.max(2) {
            return None;
        }
        let stddev = (self.m2.max(0.0) / (self.count - 1) as f64).sqrt();
        Some(Reference {
            mean: self.mean,
            stddev: if stddev.is_finite() { stddev } else { 0.0 },
            samples: self.count,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scaled_is_always_finite() {
        assert_eq!(scaled(0.0, 0.0), 0.0);
        assert_eq!(scaled(2.0, 0.0), MAX_SCORE);
        assert_eq!(scaled(-2.0, 0.0), -MAX_SCORE);
        assert_eq!(scaled(1e300, 1e-300), MAX_SCORE);
        assert_eq!(scaled(f64::INFINITY, f64::INFINITY), 0.0);
        assert_eq!(scaled(3.0, 2.0), 1.5);
        assert_eq!(bounded(f64::NAN), 0.0);
        assert_eq!(bounded(f64::NEG_INFINITY), -MAX_SCORE);
    }

    #[test]
    fn a_detection_is_held_for_hold_seconds_or_until_reported() {
        // Hold 10 s, evaluation at 100 s.
        assert_eq!(
            held_detection(Some(95_000), 100_000, 10.0, None),
            Some(95_000)
        );
        assert_eq!(held_detection(Some(80_000), 100_000, 10.0, None), None);
        // Older than the hold, but among this evaluation's new samples: reported.
        assert_eq!(
            held_detection(Some(80_000), 100_000, 10.0, Some(70_000)),
            Some(80_000)
        );
        // Consumed by an earlier evaluation and older than the hold: not any more.
        assert_eq!(
            held_detection(Some(60_000), 100_000, 10.0, Some(70_000)),
            None
        );
        assert_eq!(held_detection(None, 100_000, 10.0, Some(0)), None);
    }

    #[test]
    fn directions() {
        assert!(Direction::Both.exceeds(-4.0, 3.0));
        assert!(!Direction::Up.exceeds(-4.0, 3.0));
        assert!(Direction::Down.exceeds(-4.0, 3.0));
        assert!(!Direction::Both.exceeds(3.0, 3.0));
    }

    #[test]
    fn warmup_matches_two_pass_moments() {
        // 2,4,4,4,5,5,7,9: mean 5, m2 32, sample stddev sqrt(32/7) = 2.138089935...
        let mut w = Warmup::default();
        for x in [2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0] {
            w.push(x);
        }
        assert!(w.reference(9).is_none());
        let r = w.reference(8).unwrap();
        assert_eq!(r.mean, 5.0);
        assert!((r.stddev - (32.0f64 / 7.0).sqrt()).abs() < 1e-12);
        let window_values = [2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0, f64::NAN];
        let ts: Vec<i64> = (0..9).collect();
        let b = Reference::of_window(&Window::new(&ts, &window_values)).unwrap();
        assert_eq!(b.samples, 8);
        assert!((b.stddev - r.stddev).abs() < 1e-12);
        assert!(Reference::of_window(&Window::new(&ts[..1], &window_values[..1])).is_none());
    }
}
