//! `k_of_n`: a composite that fires when at least `k` of the child rules fire for the
//! joined labels ("two of the three drift checks agree").
//!
//! # Config
//!
//! ```json
//! { "k": 2, "hold_down_seconds": 300 }
//! ```
//!
//! | field               | type    | default  | meaning |
//! |---------------------|---------|----------|---------|
//! | `k`                 | integer | required | how many children must fire, ≥ 1 |
//! | `hold_down_seconds` | number  | `0`      | once the verdict changes, it holds at least this long (see [`HoldDown`]) |
//!
//! Unknown fields are an error. A `k` above the number of children never fires.
//!
//! # Verdict
//!
//! - firing when at least `k` children fire (pending children do not count), subject
//!   to the hold-down;
//! - score: the number of firing children; summary `2 of 3 firing (k=2): A, B`;
//! - annotations: `firing_children` (comma-separated names), `children` (count), `k`.

use klaxon_sdk::prelude::*;
use serde::Deserialize;

/// The `k_of_n` composite.
pub struct KOfN;

/// Parsed config; see the crate docs.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// How many children must fire.
    pub k: u32,
    /// Minimum time a verdict holds before it may change, in seconds.
    #[serde(default)]
    pub hold_down_seconds: f64,
}

impl Composite for KOfN {
    type Config = Config;

    fn info() -> Info {
        Info::new(
            "k_of_n",
            env!("CARGO_PKG_VERSION"),
            "Fires when at least k of the child rules fire for the joined labels, with an optional hold-down.",
        )
        .schema(
            r#"{"type":"object","additionalProperties":false,"required":["k"],"properties":{"k":{"type":"integer","minimum":1},"hold_down_seconds":{"type":"number","minimum":0,"default":0}}}"#,
        )
    }

    fn check_config(cfg: &Config) -> Result<(), String> {
        if cfg.k == 0 {
            return Err("k: must be at least 1".into());
        }
        HoldDown::check_seconds(cfg.hold_down_seconds)
    }

    fn evaluate(cfg: &Config, group: &SignalGroup) -> Output {
        let count = FiringCount::of(group, cfg.k as usize, cfg.hold_down_seconds);
        count
            .verdict(&format!(" (k={})", cfg.k))
            .annotate("k", cfg.k.to_string())
            .with_state(count.state)
    }
}

klaxon_sdk::export_composite!(KOfN);

#[cfg(test)]
mod tests {
    use super::*;
    use klaxon_sdk::testing::{check_composite_config, run_composite, signal_group as group};

    #[test]
    fn fires_at_k() {
        let cfg = r#"{"k": 2}"#;
        let out = run_composite::<KOfN>(
            cfg,
            &[
                group(&[true, false, false], None, 0),
                group(&[true, false, true], None, 0),
                group(&[true, true, true], None, 0),
            ],
        )
        .unwrap();
        let fired: Vec<bool> = out.iter().map(|o| o.verdict.firing).collect();
        assert_eq!(fired, [false, true, true]);
        assert_eq!(out[1].verdict.summary, "2 of 3 firing (k=2): C0, C2");
        assert_eq!(out[1].verdict.annotation("k"), Some("2"));
        let out = run_composite::<KOfN>(r#"{"k": 3}"#, &[group(&[true, true], None, 0)]).unwrap();
        assert!(!out[0].verdict.firing, "k above n never fires");
    }

    #[test]
    fn hold_down_keeps_a_verdict() {
        let cfg = r#"{"k": 1, "hold_down_seconds": 10}"#;
        let out = run_composite::<KOfN>(cfg, &[group(&[false], None, 0)]).unwrap();
        let s = out[0].state.clone();
        let out = run_composite::<KOfN>(cfg, &[group(&[true], s, 5_000)]).unwrap();
        assert!(!out[0].verdict.firing, "held clear for 10 s");
        let s = out[0].state.clone();
        let out = run_composite::<KOfN>(cfg, &[group(&[true], s, 10_000)]).unwrap();
        assert!(out[0].verdict.firing);
    }

    #[test]
    fn config_is_checked() {
        let e = check_composite_config::<KOfN>(r#"{"k": 0}"#).unwrap_err();
        assert_eq!(e, "k: must be at least 1");
        let e = check_composite_config::<KOfN>("{}").unwrap_err();
        assert!(e.contains("missing field `k`"), "{e}");
    }
}
