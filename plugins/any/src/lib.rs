//! `any`: a composite that fires when at least one child rule fires for the joined labels.
//!
//! # Config
//!
//! ```json
//! { "hold_down_seconds": 300 }
//! ```
//!
//! | field               | type   | default | meaning |
//! |---------------------|--------|---------|---------|
//! | `hold_down_seconds` | number | `0`     | once the verdict changes, it holds at least this long (see [`HoldDown`]) |
//!
//! Unknown fields are an error.
//!
//! # Verdict
//!
//! - firing when at least one child signal fires
//!   (pending children do not count as firing), subject to the hold-down;
//! - score: the number of firing children; summary `2 of 3 firing: A, B`;
//! - annotations: `firing_children` (comma-separated names), `children` (count).

use klaxon_sdk::prelude::*;
use serde::Deserialize;

/// The `any` composite.
pub struct Any;

/// Parsed config; see the crate docs.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Minimum time a verdict holds before it may change, in seconds.
    #[serde(default)]
    pub hold_down_seconds: f64,
}

impl Composite for Any {
    type Config = Config;

    fn info() -> Info {
        Info::new(
            "any",
            env!("CARGO_PKG_VERSION"),
            "Fires when any child rule fires for the joined labels (OR), with an optional hold-down.",
        )
        .schema(
            r#"{"type":"object","additionalProperties":false,"properties":{"hold_down_seconds":{"type":"number","minimum":0,"default":0}}}"#,
        )
    }

    fn check_config(cfg: &Config) -> Result<(), String> {
        HoldDown::check_seconds(cfg.hold_down_seconds)
    }

    fn evaluate(cfg: &Config, group: &SignalGroup) -> Output {
        let count = FiringCount::of(group, 1, cfg.hold_down_seconds);
        count.verdict("").with_state(count.state)
    }
}

klaxon_sdk::export_composite!(Any);

#[cfg(test)]
mod tests {
    use super::*;
    use klaxon_sdk::testing::{check_composite_config, run_composite, signal_group as group};

    #[test]
    fn fires_when_one_child_fires() {
        let out = run_composite::<Any>("{}", &[group(&[false, true], None, 0)]).unwrap();
        assert!(out[0].verdict.firing);
        assert_eq!(out[0].verdict.score, 1.0);
        assert_eq!(out[0].verdict.summary, "1 of 2 firing: C1");
        assert_eq!(out[0].verdict.annotation("children"), Some("2"));
        let out = run_composite::<Any>("{}", &[group(&[false, false], None, 0)]).unwrap();
        assert!(!out[0].verdict.firing);
        let out = run_composite::<Any>("{}", &[group(&[], None, 0)]).unwrap();
        assert!(!out[0].verdict.firing);
    }

    #[test]
    fn hold_down_keeps_a_verdict() {
        let cfg = r#"{"hold_down_seconds": 60}"#;
        let out = run_composite::<Any>(cfg, &[group(&[true, false], None, 0)]).unwrap();
        assert!(out[0].verdict.firing);
        let s = out[0].state.clone();
        let out = run_composite::<Any>(cfg, &[group(&[false, false], s, 30_000)]).unwrap();
        assert!(out[0].verdict.firing, "held for 60 s");
        let s = out[0].state.clone();
        let out = run_composite::<Any>(cfg, &[group(&[false, false], s, 60_000)]).unwrap();
        assert!(!out[0].verdict.firing);
    }

    #[test]
    fn config_is_checked() {
        assert!(check_composite_config::<Any>("{}").is_ok());
        let e = check_composite_config::<Any>(r#"{"hold_down_seconds": -1}"#).unwrap_err();
        assert!(e.starts_with("hold_down_seconds"), "{e}");
        let e = check_composite_config::<Any>(r#"{"hold": 1}"#).unwrap_err();
        assert!(e.contains("unknown field `hold`"), "{e}");
    }
}
