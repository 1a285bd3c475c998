//! Step 3: the statistic.
//!
//! Keep the maths in a pure function over slices: it is trivial to unit-test, and it
//! is where speed matters. The host sends hundreds of series per call, and plugins
//! run under epoch interruption, which makes naive loops slower than natively.
//! `klaxon_sdk::stats` has chunked, NaN-aware implementations of the usual statistics;
//! use them rather than hand-rolled loops.

use klaxon_sdk::stats;

/// The result of comparing a window with its baseline.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Shift {
    /// Mean of the window's finite samples.
    pub window_mean: f64,
    /// Mean of the baseline's finite samples.
    pub baseline_mean: f64,
    /// Sample standard deviation of the baseline's finite samples.
    pub baseline_stddev: f64,
    /// `(window_mean - baseline_mean) / max(baseline_stddev, min_stddev)`.
    pub sigmas: f64,
}

/// Compares the means of `window` and `baseline`, in baseline standard deviations.
///
/// NaN and ±Inf samples are ignored (scrape gaps, division by zero upstream). The
/// error, when there are too few finite samples, is a summary line for the verdict.
pub fn mean_shift(
    window: &[f64],
    baseline: &[f64],
    min_samples: usize,
    min_stddev: f64,
) -> Result<Shift, String> {
    // `moments` gives count, mean and the sum of squared deviations in two fast passes.
    let w = stats::moments(window).filter(|m| m.count >= min_samples);
    let b = stats::moments(baseline).filter(|m| m.count >= min_samples);
    let (Some(w), Some(b)) = (w, b) else {
        return Err(format!(
            "{} window and {} baseline samples, need {min_samples} of each",
            stats::finite_count(window),
            stats::finite_count(baseline)
        ));
    };
    let baseline_stddev = b.sample_stddev().unwrap_or(0.0);
    // The floor keeps the ratio finite (see `Config::min_stddev`), and `max` also
    // turns a NaN stddev (impossible here, but cheap to guard) into the floor.
    let sigmas = (w.mean - b.mean) / baseline_stddev.max(min_stddev);
    Ok(Shift {
        window_mean: w.mean,
        baseline_mean: b.mean,
        baseline_stddev,
        sigmas,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shift_in_baseline_sigmas() {
        // Baseline 1, 3 (mean 2, sample stddev sqrt(2) ≈ 1.41421);
        // window 4, 6 (mean 5): shift = 3 / 1.41421 ≈ 2.12132.
        let s = mean_shift(&[4.0, 6.0], &[1.0, 3.0], 2, 0.01).unwrap();
        assert_eq!(s.window_mean, 5.0);
        assert_eq!(s.baseline_mean, 2.0);
        assert!((s.sigmas - 3.0 / 2f64.sqrt()).abs() < 1e-12);
    }

    #[test]
    fn flat_baseline_uses_the_floor() {
        // Baseline stddev 0 → divide by min_stddev 0.5: (3 - 2) / 0.5 = 2.
        let s = mean_shift(&[3.0, 3.0], &[2.0, 2.0], 2, 0.5).unwrap();
        assert_eq!(s.sigmas, 2.0);
    }

    #[test]
    fn non_finite_samples_are_ignored_and_counted_out() {
        let nan = f64::NAN;
        // Window has one finite sample only: not enough for min_samples = 2.
        let err = mean_shift(&[nan, 1.0, f64::INFINITY], &[1.0, 2.0], 2, 0.01).unwrap_err();
        assert_eq!(err, "1 window and 2 baseline samples, need 2 of each");
    }
}
