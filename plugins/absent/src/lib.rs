//! `absent`: a dead man's switch — fires when a rule's query has no data at all in the
//! window, like PromQL's `absent_over_time(selector[window])`.
//!
//! # Host side: `judge_absent: true`
//!
//! The host only hands a detector the series that have samples in the window, so an
//! `absent` rule sets `judge_absent: true`: when nothing matched, the host calls the
//! detector with ONE empty series labelled with the query's equality matchers
//! (`{__name__="feature_rows_total", pipeline="daily"}` for
//! `feature_rows_total{pipeline="daily", env=~"prod.*"}`; `{}` for a query that is not
//! a plain selector), as PromQL's `absent()` labels its result. The alert therefore
//! carries `pipeline="daily"`.
//!
//! ```yaml
//! - alert: FeaturePipelineDead
//!   query: 'feature_rows_total{pipeline="daily"}'
//!   window: 10m
//!   detector: absent
//!   judge_absent: true
//! ```
//!
//! # Choosing the window
//!
//! The rule fires once its whole window is empty, so the time to detect a dead feed
//! is the window: keep it short, about twice the interval the series is pushed or
//! scraped at (never shorter than that interval, or it fires between two healthy
//! pushes). For a batch pipeline writing every few minutes, `window: 10m` as above;
//! for a per-minute feed, `window: 2m` with the group evaluated every minute. The
//! latter, measured in the detection-quality harness (BENCHMARKS.md): every hour-long
//! gap detected at the second evaluation, no false alert in 4 weeks.
//!
//! # Config
//!
//! None: `{}` (unknown fields are an error).
//!
//! # Verdict
//!
//! - window with no sample (or only Prometheus staleness markers, the NaN with bits
//!   `0x7ff0000000000002` written when a series disappears): firing, score 1, summary
//!   `no samples in the window`;
//! - otherwise: not firing, score 0, summary `N samples in the window`
//!   (NaN-valued samples count: data arrived);
//! - annotation `samples` (the count) either way.

use klaxon_sdk::prelude::*;
use serde::Deserialize;

/// The absence detector.
pub struct Absent;

/// Prometheus's staleness marker bit pattern.
pub const STALE_NAN_BITS: u64 = 0x7ff0_0000_0000_0002;

/// No settings.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {}

const SCHEMA: &str = r#"{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "title": "absent",
  "type": "object",
  "additionalProperties": false,
  "properties": {}
}"#;

impl Detector for Absent {
    type Config = Config;

    fn info() -> Info {
        Info::new(
            "absent",
            env!("CARGO_PKG_VERSION"),
            "Dead man's switch: fires when the window holds no sample (use with \
             `judge_absent: true` so the host calls it when nothing matched).",
        )
        .schema(SCHEMA)
    }

    fn evaluate(_cfg: &Config, series: &Series<'_>) -> Output {
        let samples = series
            .window
            .values
            .iter()
            .filter(|v| v.to_bits() != STALE_NAN_BITS)
            .count();
        if samples == 0 {
            Verdict::firing(1.0, "no samples in the window")
        } else {
            Verdict::ok(0.0, format!("{samples} samples in the window"))
        }
        .annotate("samples", samples.to_string())
        .into()
    }
}

klaxon_sdk::export_detector!(Absent);

#[cfg(test)]
mod tests {
    use super::*;
    use klaxon_sdk::testing::{self, TestSeries};

    fn run(s: TestSeries) -> Verdict {
        testing::run_detector::<Absent>("{}", &[s])
            .expect("evaluate")
            .remove(0)
            .verdict
    }

    #[test]
    fn fires_only_without_samples() {
        let v = run(TestSeries::from_values(&[]).labels(&[("job", "pipeline")]));
        assert!(v.firing);
        assert_eq!(v.score, 1.0);
        assert_eq!(v.summary, "no samples in the window");
        assert_eq!(v.annotation("samples"), Some("0"));
        let stale = f64::from_bits(STALE_NAN_BITS);
        assert!(run(TestSeries::from_values(&[stale, stale])).firing);
        let v = run(TestSeries::from_values(&[1.0, f64::NAN, stale]));
        assert!(!v.firing);
        assert_eq!(v.score, 0.0);
        assert_eq!(v.summary, "2 samples in the window");
    }

    #[test]
    fn config_checks() {
        assert!(testing::check_detector_config::<Absent>("{}").is_ok());
        assert!(testing::check_detector_config::<Absent>("").is_ok());
        let err = testing::check_detector_config::<Absent>(r#"{"for":"5m"}"#).unwrap_err();
        assert!(err.contains("unknown field `for`"), "{err}");
    }
}
