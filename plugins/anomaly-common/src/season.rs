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
//!
//! Without `season_seconds`, a rule that has a baseline sets the season itself
//! ([`Season::resolve`]): a detector knows no offset (the WIT gives it the baseline's
//! samples, not the rule's `offset`), so the season is taken from the samples' times,
//! as the time from the baseline's newest sample to the window's newest sample. For a
//! series pushed or scraped on a steady schedule, and for a PromQL query (evaluated
//! on the rule's step grid), that is the rule's `offset`. When the window's newest
//! sample is more than one baseline sample interval older than the evaluation time
//! (the feed is stale now), the evaluation time stands in for it, so a gap now does
//! not shift the phase; the season is then the offset plus less than one sample
//! interval, and the lookback matches at worst the sample one interval before the
//! same phase. (A gap at the end of last season's data does shift it, by at most
//! the baseline's length.) A rule without a baseline has no season.

use klaxon_sdk::{Series, Verdict, Window};
use serde::Deserialize;

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

    /// The season of an evaluation: `season_seconds` when set, otherwise the one the
    /// rule's baseline implies ([`Season::of_baseline`]); `None` when neither.
    pub fn resolve(
        season_seconds: Option<f64>,
        tolerance_seconds: f64,
        window: &Window<'_>,
        baseline: &Window<'_>,
        eval_time_ms: i64,
    ) -> Option<Self> {
        match season_seconds {
            Some(_) => Self::of(season_seconds, tolerance_seconds),
            None => Self::of_baseline(window, baseline, eval_time_ms, tolerance_seconds),
        }
    }

    /// The season a rule's baseline implies: the time from the baseline's newest
    /// sample to the window's newest sample (the rule's `offset` for samples on a
    /// steady schedule), or to `eval_time_ms` when the window's newest sample is older
    /// than that by more than the baseline's last sample interval; the lookback is
    /// capped just under it. `None` without a baseline sample, or when the season
    /// would be under a second.
    pub fn of_baseline(
        window: &Window<'_>,
        baseline: &Window<'_>,
        eval_time_ms: i64,
        tolerance_seconds: f64,
    ) -> Option<Self> {
        let past = baseline.timestamps_ms;
        let newest_past = *past.last()?;
        let spacing = match past {
            [.., before, last] => last - before,
            _ => 0,
        };
        let newest = match window.timestamps_ms.last() {
            Some(&t) if eval_time_ms.saturating_sub(t) <= spacing => t,
            _ => eval_time_ms,
        };
        let period_ms = newest.checked_sub(newest_past)?;
        if period_ms < 1000 {
            return None;
        }
        let tolerance_ms = ((tolerance_seconds * 1000.0) as i64).min(period_ms - 1);
        Some(Self {
            period_ms,
            tolerance_ms,
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

/// What one evaluation's samples are tested as: themselves, or their residuals
/// against one season back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Differencing {
    /// The season, when this evaluation has one.
    pub season: Option<Season>,
    /// Whether the detector runs on residuals. True with no season when the series
    /// ran on residuals of a baseline-implied season before and this evaluation's
    /// baseline is empty (a gap in last season's data): its samples are then
    /// unmatched, rather than fed raw to a test of residuals.
    pub seasonal: bool,
}

impl Differencing {
    /// Raw samples: no season.
    pub const RAW: Self = Self {
        season: None,
        seasonal: false,
    };

    /// The differencing of an evaluation: `season_seconds` when set, otherwise the
    /// season the rule's baseline implies ([`Season::resolve`]); `was_seasonal` is
    /// whether the series' state ran on residuals.
    pub fn of(
        season_seconds: Option<f64>,
        tolerance_seconds: f64,
        window: &Window<'_>,
        baseline: &Window<'_>,
        eval_time_ms: i64,
        was_seasonal: bool,
    ) -> Self {
        let season = Season::resolve(
            season_seconds,
            tolerance_seconds,
            window,
            baseline,
            eval_time_ms,
        );
        Self {
            season,
            seasonal: season.is_some() || (was_seasonal && baseline.is_empty()),
        }
    }

    /// [`Differencing::of`] for one series of an evaluation.
    pub fn of_series(
        season_seconds: Option<f64>,
        tolerance_seconds: f64,
        series: &Series<'_>,
        was_seasonal: bool,
    ) -> Self {
        Self::of(
            season_seconds,
            tolerance_seconds,
            &series.window,
            &series.baseline,
            series.eval_time_ms,
            was_seasonal,
        )
    }

    /// The value a detector tests for the finite sample `x` at `t_ms`: `x` itself
    /// on raw samples, its residual on seasonal ones; `None` (unmatched) when there
    /// is no residual.
    pub fn value(&self, baseline: &Window<'_>, t_ms: i64, x: f64) -> Option<f64> {
        if !self.seasonal {
            return Some(x);
        }
        self.season?.residual(baseline, t_ms, x)
    }
}

/// Adds `season_seconds` to a verdict of a detector running on residuals, and
/// `season_unmatched` when samples of this evaluation were skipped for want of a
/// baseline value one season back.
pub fn annotate(v: Verdict, differencing: Differencing, unmatched: usize) -> Verdict {
    if !differencing.seasonal {
        return v;
    }
    let v = match differencing.season {
        Some(season) => v.annotate(
            "season_seconds",
            (season.period_ms as f64 / 1000.0).to_string(),
        ),
        None => v,
    };
    if unmatched > 0 {
        v.annotate("season_unmatched", unmatched.to_string())
    } else {
        v
    }
}

/// What a control chart (`ewma`, `cusum`) does with the rule's baseline window: the
/// config field `baseline`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BaselineUse {
    /// Residuals against the same phase of the baseline (the season its offset implies).
    #[default]
    Season,
    /// The baseline's mean and standard deviation are the in-control reference.
    Reference,
}

impl BaselineUse {
    /// Checks `baseline` against `season_seconds`; the error names the field.
    pub fn check(self, season_seconds: Option<f64>) -> Result<(), String> {
        if self == Self::Reference && season_seconds.is_some() {
            return Err(
                "baseline: \"reference\" uses the baseline as the reference, so season_seconds (residuals against it) cannot be set too".into(),
            );
        }
        Ok(())
    }

    /// The differencing of an evaluation: raw samples when the baseline is the
    /// reference, otherwise [`Differencing::of_series`].
    pub fn differencing(
        self,
        season_seconds: Option<f64>,
        tolerance_seconds: f64,
        series: &Series<'_>,
        was_seasonal: bool,
    ) -> Differencing {
        match self {
            Self::Reference => Differencing::RAW,
            Self::Season => {
                Differencing::of_series(season_seconds, tolerance_seconds, series, was_seasonal)
            }
        }
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
    fn a_baseline_implies_the_season_when_none_is_set() {
        let vs = [1.0, 2.0, 3.0];
        // A season under a second is none.
        let (w_ts, b_ts) = ([1000, 1100, 1200], [400, 500, 600]);
        let (window, baseline) = (Window::new(&w_ts, &vs), Window::new(&b_ts, &vs));
        assert_eq!(Season::of_baseline(&window, &baseline, 1200, 300.0), None);
        // A week back on a minute grid: exactly the offset, the lookback kept, even
        // when the evaluation comes 30 s after the newest sample.
        let week = 604_800_000;
        let w_ts = [week + 60_000, week + 120_000];
        let b_ts = [0, 60_000, 120_000];
        let window = Window::new(&w_ts, &vs[..2]);
        let baseline = Window::new(&b_ts, &vs);
        let season = Season::of_baseline(&window, &baseline, week + 150_000, 300.0).unwrap();
        assert_eq!(
            season,
            Season {
                period_ms: week,
                tolerance_ms: 300_000
            }
        );
        // Each window sample is matched with the baseline sample at the same phase.
        assert_eq!(season.expected(&baseline, week + 60_000), Some(2.0));
        // The feed stale now (newest sample 10 min old): the evaluation time stands
        // in for it, so the phase does not move by the gap.
        let stale = Season::of_baseline(&window, &baseline, week + 720_000, 300.0).unwrap();
        assert_eq!(stale.period_ms, week + 600_000);
        // A season shorter than the lookback caps the lookback just under it.
        let (w_ts, b_ts) = ([62_000], [2_000]);
        let short = Season::of_baseline(
            &Window::new(&w_ts, &vs[..1]),
            &Window::new(&b_ts, &vs[..1]),
            62_000,
            300.0,
        )
        .unwrap();
        assert_eq!((short.period_ms, short.tolerance_ms), (60_000, 59_999));
        // No baseline: no season; an explicit one wins.
        let empty = Window::new(&[], &[]);
        let at = week + 120_000;
        assert_eq!(Season::of_baseline(&window, &empty, at, 300.0), None);
        assert_eq!(Season::resolve(None, 300.0, &window, &empty, at), None);
        assert_eq!(
            Season::resolve(Some(86_400.0), 300.0, &window, &baseline, at).map(|s| s.period_ms),
            Some(86_400_000)
        );
        assert_eq!(
            Season::resolve(None, 300.0, &window, &baseline, at).map(|s| s.period_ms),
            Some(week)
        );
        // A gap in last season's data keeps a seasonal series seasonal, unmatched.
        let gap = Differencing::of(None, 300.0, &window, &empty, at, true);
        assert_eq!((gap.season, gap.seasonal), (None, true));
        assert_eq!(gap.value(&empty, week + 60_000, 5.0), None);
        assert_eq!(
            Differencing::of(None, 300.0, &window, &empty, at, false),
            Differencing::RAW
        );
        assert_eq!(Differencing::RAW.value(&empty, 0, 5.0), Some(5.0));
        let d = Differencing::of(None, 300.0, &window, &baseline, at, false);
        assert_eq!(d.value(&baseline, week + 60_000, 5.0), Some(3.0));
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
