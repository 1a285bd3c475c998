//! `sequence`: a composite that fires when the child rules fired in order, each within
//! δ of the previous one — "feature drift precedes prediction drift precedes accuracy
//! drop" — and the last one still fires.
//!
//! # Config
//!
//! ```json
//! { "within_seconds": 1800, "order": ["FeatureDrift", "PredictionDrift", "AccuracyDrop"], "hold_down_seconds": 300 }
//! ```
//!
//! | field               | type     | default            | meaning |
//! |---------------------|----------|--------------------|---------|
//! | `within_seconds`    | number   | required           | δ: the longest gap between one child going firing and the next, > 0 |
//! | `order`             | [string] | the rule's `children` order | child rule names, first to last |
//! | `hold_down_seconds` | number   | `0`                | once the verdict changes, it holds at least this long (see [`HoldDown`]) |
//!
//! Unknown fields are an error.
//!
//! # Formula
//!
//! A child's *onsets* are the times it went firing: the `true` entries of its recent
//! history plus, while it fires, `since_ms`. With children `C1 … Cn` in order, the chain
//! matches when there are onsets `t1 ≤ t2 ≤ … ≤ tn` of `C1 … Cn` with
//! `t(i+1) − t(i) ≤ δ`, where `tn` is the onset of `Cn`'s current firing episode (so
//! `Cn` fires now). Earlier children may have resolved since: the order is what
//! counts. Two children going firing at the same evaluation count as in order (the
//! host cannot tell them apart). Pending children are not firing.
//!
//! # Verdict
//!
//! - firing when the whole chain matches, subject to the hold-down;
//! - score: how many children, from the first, match in order (`n` when firing);
//! - summary: `A → B → C in order within 1800 s`, or `A → B in order; C not after B
//!   within 1800 s`; annotations: `sequence` (names, comma-separated), `matched`,
//!   `within_seconds`;
//! - a name of `order` missing from the group: not firing, score 0, summary
//!   `no signal for child X`.

use klaxon_sdk::prelude::*;
use serde::Deserialize;

/// The `sequence` composite.
pub struct Sequence;

/// Parsed config; see the crate docs.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// δ in seconds.
    pub within_seconds: f64,
    /// Child names in order; the group's signal order when unset.
    #[serde(default)]
    pub order: Option<Vec<String>>,
    /// Minimum time a verdict holds before it may change, in seconds.
    #[serde(default)]
    pub hold_down_seconds: f64,
}

/// Times `s` went firing, ascending; `current_only` keeps just the current episode's.
fn onsets(s: &Signal, current_only: bool) -> Vec<i64> {
    let mut out: Vec<i64> = Vec::new();
    if !current_only {
        out.extend(s.history.iter().filter(|(_, f)| *f).map(|(t, _)| *t));
    }
    if s.firing {
        out.push(s.since_ms);
    }
    out.sort_unstable();
    out.dedup();
    out
}

impl Composite for Sequence {
    type Config = Config;

    fn info() -> Info {
        Info::new(
            "sequence",
            env!("CARGO_PKG_VERSION"),
            "Fires when the child rules went firing in order, each within `within_seconds` of the previous, and the last still fires.",
        )
        .schema(
            r#"{"type":"object","additionalProperties":false,"required":["within_seconds"],"properties":{"within_seconds":{"type":"number","exclusiveMinimum":0},"order":{"type":"array","items":{"type":"string"}},"hold_down_seconds":{"type":"number","minimum":0,"default":0}}}"#,
        )
    }

    fn check_config(cfg: &Config) -> Result<(), String> {
        if !(cfg.within_seconds > 0.0 && cfg.within_seconds.is_finite()) {
            return Err("within_seconds: must be a finite number > 0".into());
        }
        HoldDown::check_seconds(cfg.hold_down_seconds)?;
        if cfg.order.as_ref().is_some_and(|o| o.is_empty()) {
            return Err("order: must name at least one child".into());
        }
        Ok(())
    }

    fn evaluate(cfg: &Config, group: &SignalGroup) -> Output {
        let names: Vec<&str> = match &cfg.order {
            Some(order) => order.iter().map(String::as_str).collect(),
            None => group.signals.iter().map(|s| s.name.as_str()).collect(),
        };
        let mut chain = Vec::with_capacity(names.len());
        for name in &names {
            match group.signal(name) {
                Some(s) => chain.push(s),
                None => return Verdict::ok(0.0, format!("no signal for child {name}")).into(),
            }
        }
        let within_ms = (cfg.within_seconds * 1000.0) as i64;
        let last = chain.len().saturating_sub(1);
        let mut feasible: Vec<i64> = Vec::new();
        let mut matched = 0;
        for (i, s) in chain.iter().enumerate() {
            let candidates = onsets(s, i == last);
            let next: Vec<i64> = if i == 0 {
                candidates
            } else {
                candidates
                    .into_iter()
                    .filter(|&t| feasible.iter().any(|&p| p <= t && t - p <= within_ms))
                    .collect()
            };
            if next.is_empty() {
                break;
            }
            feasible = next;
            matched += 1;
        }
        let raw = !chain.is_empty() && matched == chain.len();
        let (held, state) = HoldDown::apply(
            group.state.as_deref(),
            raw,
            group.eval_time_ms,
            (cfg.hold_down_seconds * 1000.0) as i64,
        );
        let within = format_value(cfg.within_seconds);
        let done = names[..matched].join(" → ");
        let summary = if raw {
            format!("{done} in order within {within} s")
        } else if matched == 0 {
            format!("{} has not fired", names.first().copied().unwrap_or(""))
        } else {
            format!(
                "{done} in order; {} not after {} within {within} s",
                names[matched],
                names[matched - 1]
            )
        };
        Verdict::new(held, matched as f64, summary)
            .annotate("sequence", names.join(","))
            .annotate("matched", matched.to_string())
            .annotate("within_seconds", within)
            .with_state(state)
    }
}

klaxon_sdk::export_composite!(Sequence);

#[cfg(test)]
mod tests {
    use super::*;
    use klaxon_sdk::testing::{check_composite_config, run_composite};

    /// A child that went firing at each of `onsets` (seconds) and resolved `dur` s later;
    /// fires now when its last episode has not resolved by `now`.
    fn child(name: &str, onsets: &[i64], dur: i64, now: i64) -> Signal {
        let mut history = Vec::new();
        for &t in onsets {
            history.push((t * 1000, true));
            if t + dur <= now {
                history.push(((t + dur) * 1000, false));
            }
        }
        let firing = history.last().is_some_and(|(_, f)| *f);
        Signal {
            name: name.into(),
            firing,
            value: 1.0,
            since_ms: history.last().map_or(0, |(t, _)| *t),
            history,
        }
    }

    fn group(signals: Vec<Signal>, now: i64) -> SignalGroup {
        SignalGroup {
            labels: vec![("model_name".into(), "fraud".into())],
            signals,
            eval_time_ms: now * 1000,
            state: None,
        }
    }

    fn run(cfg: &str, g: SignalGroup) -> Output {
        run_composite::<Sequence>(cfg, &[g]).unwrap().remove(0)
    }

    const CFG: &str = r#"{"within_seconds": 600}"#;

    #[test]
    fn fires_in_order_only() {
        let now = 10_000;
        let a_then_b = group(
            vec![
                child("A", &[100], 9_999, now),
                child("B", &[400], 9_999, now),
            ],
            now,
        );
        let out = run(CFG, a_then_b);
        assert!(out.verdict.firing, "{out:?}");
        assert_eq!(out.verdict.summary, "A → B in order within 600 s");
        assert_eq!(out.verdict.score, 2.0);

        let b_then_a = group(
            vec![
                child("A", &[400], 9_999, now),
                child("B", &[100], 9_999, now),
            ],
            now,
        );
        let out = run(CFG, b_then_a);
        assert!(!out.verdict.firing);
        assert_eq!(out.verdict.score, 1.0);
        assert_eq!(
            out.verdict.summary,
            "A in order; B not after A within 600 s"
        );
    }

    #[test]
    fn gap_longer_than_within_does_not_fire() {
        let now = 10_000;
        let g = group(
            vec![
                child("A", &[100], 9_999, now),
                child("B", &[800], 9_999, now),
            ],
            now,
        );
        assert!(!run(CFG, g).verdict.firing);
    }

    #[test]
    fn earlier_children_may_have_resolved_but_the_last_must_fire() {
        let now = 10_000;
        // A fired at 100 and resolved at 200; B went firing at 500.
        let g = group(
            vec![child("A", &[100], 100, now), child("B", &[500], 9_999, now)],
            now,
        );
        assert!(run(CFG, g).verdict.firing);
        // B fired in order once but has resolved: no.
        let g = group(
            vec![child("A", &[100], 9_999, now), child("B", &[500], 100, now)],
            now,
        );
        assert!(!run(CFG, g).verdict.firing);
        // B fired in order once, resolved, and fires again long after A: no.
        let g = group(
            vec![
                child("A", &[100], 9_999, now),
                child("B", &[500, 5_000], 100, now),
            ],
            now,
        );
        let mut g = g;
        // B's second episode is still on.
        g.signals[1].history.pop();
        g.signals[1].firing = true;
        g.signals[1].since_ms = 5_000_000;
        assert!(!run(CFG, g).verdict.firing);
    }

    #[test]
    fn three_steps_and_explicit_order() {
        let now = 10_000;
        let signals = vec![
            child("AccuracyDrop", &[900], 9_999, now),
            child("FeatureDrift", &[100], 9_999, now),
            child("PredictionDrift", &[500], 9_999, now),
        ];
        let cfg = r#"{"within_seconds": 600, "order": ["FeatureDrift", "PredictionDrift", "AccuracyDrop"]}"#;
        let out = run(cfg, group(signals.clone(), now));
        assert!(out.verdict.firing);
        assert_eq!(out.verdict.annotation("matched"), Some("3"));
        // In the group's own order (accuracy first) it is out of order.
        assert!(!run(CFG, group(signals, now)).verdict.firing);
        let cfg = r#"{"within_seconds": 600, "order": ["Nope"]}"#;
        let out = run(cfg, group(vec![], now));
        assert_eq!(out.verdict.summary, "no signal for child Nope");
    }

    #[test]
    fn same_evaluation_counts_as_in_order() {
        let now = 10_000;
        let g = group(
            vec![
                child("A", &[100], 9_999, now),
                child("B", &[100], 9_999, now),
            ],
            now,
        );
        assert!(run(CFG, g).verdict.firing);
    }

    #[test]
    fn hold_down_keeps_a_verdict() {
        let cfg = r#"{"within_seconds": 600, "hold_down_seconds": 120}"#;
        let now = 1_000;
        let mut g = group(
            vec![
                child("A", &[100], 9_999, now),
                child("B", &[200], 9_999, now),
            ],
            now,
        );
        let out = run(cfg, g.clone());
        assert!(out.verdict.firing);
        // B resolves 60 s later: still held.
        g.state = out.state;
        g.eval_time_ms = 1_060_000;
        g.signals[1].firing = false;
        g.signals[1].history.push((1_060_000, false));
        g.signals[1].since_ms = 1_060_000;
        let out = run(cfg, g.clone());
        assert!(out.verdict.firing);
        g.state = out.state;
        g.eval_time_ms = 1_120_000;
        assert!(!run(cfg, g).verdict.firing);
    }

    #[test]
    fn config_is_checked() {
        assert!(check_composite_config::<Sequence>(CFG).is_ok());
        let e = check_composite_config::<Sequence>(r#"{"within_seconds": 0}"#).unwrap_err();
        assert!(e.starts_with("within_seconds"), "{e}");
        let e = check_composite_config::<Sequence>(r#"{"within_seconds": 1, "order": []}"#)
            .unwrap_err();
        assert!(e.starts_with("order"), "{e}");
    }
}
