//! Seasonal differencing for the streaming detectors (`season_seconds`): each sample
//! is replaced by its residual against the same time one season back, read from the
//! rule's baseline window, so a chart that assumes a stationary process watches the
//! deviation from last week (or yesterday) instead of the daily cycle itself.
//!
//! The detectors take two config fields for it: `season_seconds` (none: off) and
//! `season_tolerance_seconds` (default [`DEFAULT_TOLERANCE_SECONDS`]). The expected
//! value of a sample at `t` is what PromQL's `x offset <season>` reads at `t`: the
//! newest finite baseline sample at or before `t - season`, at most `tolerance` older
//! (Prometheus's 5-minute lookback by default), so the residual is `x - x offset
//! <season>`. One past sample rather than an average of several: an average over a
//! span shared by consecutive samples would give them a common, slowly wandering
//! error, which a CUSUM accumulates. A sample with no such baseline sample is skipped
//! (and counted). The rule's baseline must cover one season back for every new
//! sample: `baseline: { offset: <season>, window: <evaluation interval> + 5m }` (or
//! longer).

use klaxon_sdk::{Verdict, Window};

/// Default lookback from one season back, in seconds (Prometheus's lookback delta).
pub const DEFAULT_TOLERANCE_SECONDS: f64 = 300.0;

/// A season to difference against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Season {
    /// The season, in ms.
    pub period_ms: i64,
    /// How much older than one season back the matching sample may be, in ms.
    pub tolerance_ms: i64,
}

impl Season {
    /// The season of a config: `None` when `season_seconds` is unset.
    pub fn of(season_seconds: Option<f64>, tolerance_seconds: f64) -> Option<Self> {
        season_seconds.map(|s| Self {
            period_ms: (s * 1000.0) as i64,
            tolerance_ms: (tolerance_seconds * 1000.0) as i64,
        })
    }

    /// Checks the two config fields: a season of at least 1 s, a finite tolerance ≥ 0
    /// and shorter than the season.
    pub fn check(season_seconds: Option<f64>, tolerance_seconds: f64) -> Result<(), String> {
        if !(tolerance_seconds.is_finite() && tolerance_seconds >= 0.0) {
            return Err(format!(
                "season_tolerance_seconds: must be a finite number ≥ 0, got {tolerance_seconds}"
            ));
        }
        let Some(season) = season_seconds else {
            return Ok(());
        };
        if !(season.is_finite() && season >= 1.0) {
            return Err(format!(
                "season_seconds: must be a finite number of at least 1, got {season}"
            ));
        }
        if tolerance_seconds >= season {
            return Err(format!(
                "season_tolerance_seconds: must be under season_seconds ({season}), got {tolerance_seconds}"
            ));
        }
        Ok(())
    }

    /// The value expected at `t_ms`: the newest finite sample of `baseline` in
    /// `[t_ms - period - tolerance, t_ms - period]`; `None` without one.
    pub fn expected(&self, baseline: &Window<'_>, t_ms: i64) -> Option<f64> {
        let to = t_ms.saturating_sub(self.period_ms);
        let from = to.saturating_sub(self.tolerance_ms);
        let start = baseline.timestamps_ms.partition_point(|&t| t < from);
        let end = baseline.timestamps_ms.partition_point(|&t| t <= to);
        baseline
            .values
            .get(start..end)
            .unwrap_or_default()
            .iter()
            .rev()
            .copied()
            .find(|v| v.is_finite())
    }

    /// `x` minus its expected value, `None` when there is none (or it is not finite).
    pub fn residual(&self, baseline: &Window<'_>, t_ms: i64, x: f64) -> Option<f64> {
        let r = x - self.expected(baseline, t_ms)?;
        r.is_finite().then_some(r)
    }
}

/// Adds `season_seconds` to a verdict of a detector running on residuals, and
/// `season_unmatched` when samples of this evaluation were skipped for want of a
/// baseline value one season back.
pub fn annotate(v: Verdict, season: Option<Season>, unmatched: usize) -> Verdict {
    let Some(season) = season else {
        return v;
    };
    let v = v.annotate(
        "season_seconds",
        (season.period_ms as f64 / 1000.0).to_string(),
    );
    if unmatched > 0 {
        v.annotate("season_unmatched", unmatched.to_string())
    } else {
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expected_is_the_newest_sample_at_or_before_one_season_back() {
        // Season 100 ms, lookback 10 ms: for t = 250 the span is [140, 150].
        let ts = [130, 140, 150, 160, 240];
        let vs = [1.0, 2.0, 3.0, 100.0, 50.0];
        let b = Window::new(&ts, &vs);
        let s = Season {
            period_ms: 100,
            tolerance_ms: 10,
        };
        assert_eq!(s.expected(&b, 250), Some(3.0));
        assert_eq!(s.residual(&b, 250, 10.0), Some(7.0));
        // For t = 255: [145, 155] → 3 (160 is after one season back).
        assert_eq!(s.expected(&b, 255), Some(3.0));
        // A NaN one season back: the newest finite one before it.
        let nan = [1.0, 2.0, f64::NAN, 100.0, 50.0];
        assert_eq!(s.expected(&Window::new(&ts, &nan), 250), Some(2.0));
        // Nothing within [180, 190].
        assert_eq!(s.expected(&b, 290), None);
        assert_eq!(s.residual(&b, 290, 1.0), None);
        assert_eq!(s.expected(&Window::new(&[], &[]), 250), None);
        // Overflow gives no residual rather than an infinite one.
        let big = [-f64::MAX];
        assert_eq!(s.residual(&Window::new(&[150], &big), 250, f64::MAX), None);
    }

    #[test]
    fn config_checks() {
        assert!(Season::check(None, 300.0).is_ok());
        assert!(Season::check(Some(604_800.0), 300.0).is_ok());
        assert!(Season::of(None, 300.0).is_none());
        assert_eq!(
            Season::of(Some(86_400.0), 60.0),
            Some(Season {
                period_ms: 86_400_000,
                tolerance_ms: 60_000
            })
        );
        for (season, tol, field) in [
            (Some(0.5), 0.0, "season_seconds:"),
            (Some(f64::NAN), 0.0, "season_seconds:"),
            (Some(300.0), 300.0, "season_tolerance_seconds:"),
            (None, -1.0, "season_tolerance_seconds:"),
        ] {
            let err = Season::check(season, tol).unwrap_err();
            assert!(err.starts_with(field), "{season:?} {tol}: {err}");
        }
    }
}
