//! `freshness`: fires when a series' newest sample is older than `max_age` at
//! evaluation time — a stale feature feed, a batch job that stopped writing.
//!
//! # Config
//!
//! ```json
//! { "max_age": "15m" }
//! ```
//!
//! | field     | type   | default  | meaning |
//! |-----------|--------|----------|---------|
//! | `max_age` | string | required | a duration (`90s`, `15m`, `1h 30m`, `2d`; humantime syntax), > 0 |
//!
//! Unknown fields are an error.
//!
//! The rule's `window` must be longer than `max_age` (e.g. twice): the host hands the
//! detector only series with at least one sample in the window, so a series silent
//! for the whole window is no longer judged here — pair the rule with `absent`
//! (or set `judge_absent: true`, see below) to catch that too.
//!
//! # Formula
//!
//! `age = eval_time - t_last`, with `t_last` the timestamp of the window's newest
//! sample (a NaN value still counts as a sample that arrived; a Prometheus staleness
//! marker does not). Fires when `age > max_age`.
//!
//! # Verdict
//!
//! - score: the age in seconds; summary like `last sample 20m ago, limit 15m`;
//! - annotations: `age_seconds`, `max_age_seconds`, `last_sample` (Unix ms);
//! - no sample in the window (only staleness markers, or the empty series a
//!   `judge_absent: true` rule passes when nothing matched): firing, score = the age of
//!   the window's start when known (its first marker) or `max_age`, summary
//!   `no sample in the window`. The score is never NaN.

use std::time::Duration;

use klaxon_sdk::prelude::*;
use serde::Deserialize;

/// The freshness detector.
pub struct Freshness;

/// Prometheus's staleness marker bit pattern.
pub const STALE_NAN_BITS: u64 = 0x7ff0_0000_0000_0002;

/// Parsed config; see the crate docs.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Largest acceptable age of the newest sample.
    #[serde(deserialize_with = "duration")]
    pub max_age: Duration,
}

fn duration<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(d)?;
    humantime::parse_duration(&text)
        .map_err(|e| serde::de::Error::custom(format!("invalid duration {text:?}: {e}")))
}

const SCHEMA: &str = r#"{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "title": "freshness",
  "type": "object",
  "additionalProperties": false,
  "required": ["max_age"],
  "properties": {
    "max_age": {"type": "string", "description": "Largest acceptable age of the newest sample, e.g. 15m."}
  }
}"#;

fn human(ms: i64) -> String {
    let d = Duration::from_millis(ms.max(0) as u64);
    humantime::format_duration(Duration::from_secs(d.as_secs())).to_string()
}

impl Detector for Freshness {
    type Config = Config;

    fn info() -> Info {
        Info::new(
            "freshness",
            env!("CARGO_PKG_VERSION"),
            "Fires when the newest sample of a series is older than `max_age` at \
             evaluation time (a stale feed).",
        )
        .schema(SCHEMA)
    }

    fn check_config(cfg: &Config) -> Result<(), String> {
        if cfg.max_age.is_zero() {
            return Err("max_age: must be longer than 0".into());
        }
        Ok(())
    }

    fn evaluate(cfg: &Config, series: &Series<'_>) -> Output {
        let max_age_ms = i64::try_from(cfg.max_age.as_millis()).unwrap_or(i64::MAX);
        let max_age_s = max_age_ms as f64 / 1000.0;
        let last = series
            .window
            .iter()
            .rev()
            .find(|(_, v)| v.to_bits() != STALE_NAN_BITS);
        let Some((t_last, _)) = last else {
            let age_ms = series.window.timestamps_ms.first().map_or(max_age_ms, |t| {
                series.eval_time_ms.saturating_sub(*t).max(max_age_ms)
            });
            let age_s = age_ms as f64 / 1000.0;
            return Verdict::firing(age_s, "no sample in the window")
                .annotate("age_seconds", format_value(age_s))
                .annotate("max_age_seconds", format_value(max_age_s))
                .into();
        };
        let age_ms = series.eval_time_ms.saturating_sub(t_last);
        let age_s = age_ms as f64 / 1000.0;
        Verdict::new(
            age_ms > max_age_ms,
            age_s,
            format!(
                "last sample {} ago, limit {}",
                human(age_ms),
                human(max_age_ms)
            ),
        )
        .annotate("age_seconds", format_value(age_s))
        .annotate("max_age_seconds", format_value(max_age_s))
        .annotate("last_sample", t_last.to_string())
        .into()
    }
}

klaxon_sdk::export_detector!(Freshness);

#[cfg(test)]
mod tests {
    use super::*;
    use klaxon_sdk::testing::{self, EVAL_TIME_MS, TestSeries};

    fn run(config: &str, s: TestSeries) -> Verdict {
        testing::run_detector::<Freshness>(config, &[s])
            .expect("evaluate")
            .remove(0)
            .verdict
    }

    fn at(ages_s: &[i64], values: &[f64]) -> TestSeries {
        TestSeries::new(
            &[("__name__", "feed")],
            ages_s.iter().map(|a| EVAL_TIME_MS - a * 1000).collect(),
            values.to_vec(),
        )
    }

    #[test]
    fn fires_when_the_newest_sample_is_too_old() {
        // Newest sample 20 min old, limit 15 min.
        let v = run(r#"{"max_age":"15m"}"#, at(&[1800, 1200], &[1.0, 2.0]));
        assert!(v.firing);
        assert_eq!(v.score, 1200.0);
        assert_eq!(v.summary, "last sample 20m ago, limit 15m");
        assert_eq!(v.annotation("age_seconds"), Some("1200"));
        assert_eq!(v.annotation("max_age_seconds"), Some("900"));
        assert_eq!(
            v.annotation("last_sample"),
            Some((EVAL_TIME_MS - 1_200_000).to_string().as_str())
        );
        // 10 min old: fresh enough.
        let v = run(r#"{"max_age":"15m"}"#, at(&[1800, 600], &[1.0, 2.0]));
        assert!(!v.firing);
        assert_eq!(v.score, 600.0);
        // Exactly the limit is not older than it.
        assert!(!run(r#"{"max_age":"10m"}"#, at(&[600], &[1.0])).firing);
        // Compound durations.
        assert!(!run(r#"{"max_age":"1h 30m"}"#, at(&[5000], &[1.0])).firing);
    }

    #[test]
    fn nan_counts_as_arrived_staleness_marker_does_not() {
        let stale = f64::from_bits(STALE_NAN_BITS);
        // A NaN 1 min ago is a fresh sample.
        assert!(!run(r#"{"max_age":"5m"}"#, at(&[1200, 60], &[1.0, f64::NAN])).firing);
        // A staleness marker 1 min ago is not: the real sample is 20 min old.
        let v = run(r#"{"max_age":"5m"}"#, at(&[1200, 60], &[1.0, stale]));
        assert!(v.firing);
        assert_eq!(v.score, 1200.0);
    }

    #[test]
    fn no_sample_in_the_window() {
        let stale = f64::from_bits(STALE_NAN_BITS);
        let v = run(r#"{"max_age":"5m"}"#, at(&[1200], &[stale]));
        assert!(v.firing);
        assert_eq!(v.score, 1200.0);
        assert_eq!(v.summary, "no sample in the window");
        let v = run(r#"{"max_age":"5m"}"#, at(&[], &[]));
        assert!(v.firing);
        assert_eq!(v.score, 300.0);
    }

    #[test]
    fn config_checks() {
        let check = testing::check_detector_config::<Freshness>;
        assert!(check(r#"{"max_age":"90s"}"#).is_ok());
        let err = check("{}").unwrap_err();
        assert!(err.contains("missing field `max_age`"), "{err}");
        let err = check(r#"{"max_age":"soon"}"#).unwrap_err();
        assert!(
            err.starts_with("max_age: invalid duration \"soon\""),
            "{err}"
        );
        let err = check(r#"{"max_age":"0s"}"#).unwrap_err();
        assert!(err.starts_with("max_age:"), "{err}");
        let err = check(r#"{"max_age":300}"#).unwrap_err();
        assert!(err.starts_with("max_age: invalid type"), "{err}");
    }
}
