//! `all`: a composite that fires when every child rule fires for the joined labels.
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
//! - firing when the group has at least one child signal and every one fires
//!   (pending children do not count as firing), subject to the hold-down;
//! - score: the number of firing children; summary `2 of 3 firing: A, B`;
//! - annotations: `firing_children` (comma-separated names), `children` (count).

use klaxon_sdk::prelude::*;
use serde::Deserialize;

/// The `all` composite.
pub struct All;

/// Parsed config; see the crate docs.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Minimum time a verdict holds before it may change, in seconds.
    #[serde(default)]
    pub hold_down_seconds: f64,
}

impl Composite for All {
    type Config = Config;

    fn info() -> Info {
        Info::new(
            "all",
            env!("CARGO_PKG_VERSION"),
            "Fires when every child rule fires for the joined labels (AND), with an optional hold-down.",
        )
        .schema(
            r#"{"type":"object","additionalProperties":false,"properties":{"hold_down_seconds":{"type":"number","minimum":0,"default":0}}}"#,
        )
    }

    fn check_config(cfg: &Config) -> Result<(), String> {
        HoldDown::check_seconds(cfg.hold_down_seconds)
    }

    fn evaluate(cfg: &Config, group: &SignalGroup) -> Output {
        let count = FiringCount::of(group, group.signals.len(), cfg.hold_down_seconds);
        count.verdict("").with_state(count.state)
    }
}

klaxon_sdk::export_composite!(All);

#[cfg(test)]
mod tests {
    use super::*;
    use klaxon_sdk::testing::{check_composite_config, run_composite, signal_group as group};

    #[test]
    fn fires_only_when_every_child_fires() {
        let out = run_composite::<All>("{}", &[group(&[true, true], None, 0)]).unwrap();
        assert!(out[0].verdict.firing);
        assert_eq!(out[0].verdict.score, 2.0);
        assert_eq!(out[0].verdict.summary, "2 of 2 firing: C0, C1");
        assert_eq!(out[0].verdict.annotation("firing_children"), Some("C0,C1"));
        let out = run_composite::<All>("{}", &[group(&[true, false], None, 0)]).unwrap();
        assert!(!out[0].verdict.firing);
        assert_eq!(out[0].verdict.score, 1.0);
        let out = run_composite::<All>("{}", &[group(&[], None, 0)]).unwrap();
        assert!(!out[0].verdict.firing, "no children: nothing to agree");
    }

    #[test]
    fn hold_down_keeps_a_verdict() {
        let cfg = r#"{"hold_down_seconds": 60}"#;
        let out = run_composite::<All>(cfg, &[group(&[true, true], None, 0)]).unwrap();
        assert!(out[0].verdict.firing);
        let s = out[0].state.clone();
        let out = run_composite::<All>(cfg, &[group(&[true, false], s, 30_000)]).unwrap();
        assert!(out[0].verdict.firing, "held for 60 s");
        let s = out[0].state.clone();
        let out = run_composite::<All>(cfg, &[group(&[true, false], s, 60_000)]).unwrap();
        assert!(!out[0].verdict.firing);
    }

    #[test]
    fn config_is_checked() {
        assert!(check_composite_config::<All>("{}").is_ok());
        let e = check_composite_config::<All>(r#"{"hold_down_seconds": -1}"#).unwrap_err();
        assert!(e.starts_with("hold_down_seconds"), "{e}");
        let e = check_composite_config::<All>(r#"{"hold": 1}"#).unwrap_err();
        assert!(e.contains("unknown field `hold`"), "{e}");
    }
}
