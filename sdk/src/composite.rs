//! The [`Composite`] trait: a plugin that combines other rules' alert states, and the
//! [`SignalGroup`] it receives.
//!
//! Export an implementation with [`export_composite!`](crate::export_composite).

use serde::de::DeserializeOwned;

use crate::info::Info;
use crate::verdict::{Output, Verdict};

/// A plugin that combines child rules' signals, one verdict per joined label set.
///
/// Config handling is the same as for [`Detector`](crate::Detector): parsed from JSON,
/// then [`check_config`](Composite::check_config), at load and again before every
/// evaluation.
pub trait Composite {
    /// The config, deserialised from the rule's JSON.
    type Config: DeserializeOwned;

    /// Name, version, description and config schema.
    fn info() -> Info;

    /// Semantic checks serde cannot express. Name the field in the error.
    fn check_config(_cfg: &Self::Config) -> Result<(), String> {
        Ok(())
    }

    /// Judges one group.
    fn evaluate(cfg: &Self::Config, group: &SignalGroup) -> Output;

    /// Judges every group: exactly one output per group, in order. The default calls
    /// [`evaluate`](Composite::evaluate) for each.
    fn evaluate_groups(cfg: &Self::Config, groups: &[SignalGroup]) -> Result<Vec<Output>, String> {
        Ok(groups.iter().map(|g| Self::evaluate(cfg, g)).collect())
    }
}

/// The child rules' signals for one joined label set.
#[derive(Debug, Clone, PartialEq)]
pub struct SignalGroup {
    /// The joined labels, sorted by name.
    pub labels: Vec<(String, String)>,
    /// One signal per child rule.
    pub signals: Vec<Signal>,
    /// Evaluation time (Unix ms).
    pub eval_time_ms: i64,
    /// The state this plugin returned for this group last time.
    pub state: Option<Vec<u8>>,
}

impl SignalGroup {
    /// The value of label `name`.
    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The signal of child rule `name`.
    pub fn signal(&self, name: &str) -> Option<&Signal> {
        self.signals.iter().find(|s| s.name == name)
    }
}

/// One child rule's state.
#[derive(Debug, Clone, PartialEq)]
pub struct Signal {
    /// The child rule's name.
    pub name: String,
    /// Whether the child fires.
    pub firing: bool,
    /// The child's last score.
    pub value: f64,
    /// When the child entered its current state (Unix ms).
    pub since_ms: i64,
    /// Recent state changes, oldest first: (time Unix ms, firing).
    pub history: Vec<(i64, bool)>,
}

/// A hold-down: once a composite's verdict changes, it holds for at least `hold_ms`
/// before it may change again, so a composite over flapping children does not flap.
///
/// Kept in the group's host-owned state (9 bytes: the held verdict, then the Unix ms
/// it took effect, little-endian), so it survives reloads and restarts like any plugin
/// state. The first verdict of a group (no state yet) takes effect at once.
///
/// ```
/// use klaxon_sdk::composite::HoldDown;
/// let (firing, state) = HoldDown::apply(None, true, 1_000, 60_000);
/// assert!(firing);
/// // Clears 10 s later: still held firing (60 s hold-down).
/// let (firing, state) = HoldDown::apply(Some(&state), false, 11_000, 60_000);
/// assert!(firing);
/// // A minute after it took effect, it may change.
/// let (firing, _) = HoldDown::apply(Some(&state), false, 61_000, 60_000);
/// assert!(!firing);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HoldDown {
    /// The verdict in force.
    pub firing: bool,
    /// When it took effect (Unix ms).
    pub since_ms: i64,
}

impl HoldDown {
    /// Reads the state bytes; `None` when absent or not a hold-down state.
    pub fn decode(state: Option<&[u8]>) -> Option<Self> {
        let bytes = state?;
        let (&flag, rest) = bytes.split_first()?;
        let since: [u8; 8] = rest.try_into().ok()?;
        Some(Self {
            firing: flag == 1,
            since_ms: i64::from_le_bytes(since),
        })
    }

    /// The state bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(9);
        out.push(u8::from(self.firing));
        out.extend_from_slice(&self.since_ms.to_le_bytes());
        out
    }

    /// Checks a `hold_down_seconds` config value (finite, ≥ 0).
    pub fn check_seconds(seconds: f64) -> Result<(), String> {
        if seconds >= 0.0 && seconds.is_finite() {
            Ok(())
        } else {
            Err("hold_down_seconds: must be a finite number >= 0".into())
        }
    }

    /// Applies the raw verdict `raw` at `now_ms` under a hold-down of `hold_ms`: returns
    /// the verdict to report and the state to keep.
    pub fn apply(state: Option<&[u8]>, raw: bool, now_ms: i64, hold_ms: i64) -> (bool, Vec<u8>) {
        let next = match Self::decode(state) {
            Some(held) if held.firing == raw => held,
            // Time going backwards (a replay) counts as not yet elapsed.
            Some(held) if now_ms.saturating_sub(held.since_ms) < hold_ms => held,
            _ => Self {
                firing: raw,
                since_ms: now_ms,
            },
        };
        (next.firing, next.encode())
    }
}

/// How many children of a group fire, judged against a requirement and held
/// by [`HoldDown`]: what the counting composites (`all`, `any`, `k_of_n`) share.
#[derive(Debug, Clone, PartialEq)]
pub struct FiringCount<'a> {
    /// The firing children's names, in signal order.
    pub firing: Vec<&'a str>,
    /// How many children the group has.
    pub children: usize,
    /// The verdict after the hold-down.
    pub held: bool,
    /// The hold-down state to keep.
    pub state: Vec<u8>,
}

impl<'a> FiringCount<'a> {
    /// Counts `group`'s firing children; the raw verdict is "at least
    /// `required` (and at least one) fire", then held for `hold_down_seconds`.
    pub fn of(group: &'a SignalGroup, required: usize, hold_down_seconds: f64) -> Self {
        let firing: Vec<&str> = group
            .signals
            .iter()
            .filter(|s| s.firing)
            .map(|s| s.name.as_str())
            .collect();
        let raw = firing.len() >= required.max(1);
        let (held, state) = HoldDown::apply(
            group.state.as_deref(),
            raw,
            group.eval_time_ms,
            (hold_down_seconds * 1000.0) as i64,
        );
        Self {
            firing,
            children: group.signals.len(),
            held,
            state,
        }
    }

    /// The counting composites' verdict: firing when held, score = how many
    /// children fire, summary `"F of N firing{detail}: names"`, annotations
    /// `firing_children` and `children`; the caller adds [`FiringCount::state`].
    pub fn verdict(&self, detail: &str) -> Verdict {
        let (firing, n) = (self.firing.len(), self.children);
        let names = self.firing.join(", ");
        Verdict::new(
            self.held,
            firing as f64,
            format!("{firing} of {n} firing{detail}: {names}"),
        )
        .annotate("firing_children", self.firing.join(","))
        .annotate("children", n.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hold_down_holds_both_ways() {
        let (f, s) = HoldDown::apply(None, false, 0, 100);
        assert!(!f);
        // Goes firing as soon as the raw verdict does: the hold counts from `since`.
        let (f, s) = HoldDown::apply(Some(&s), true, 150, 100);
        assert!(f);
        let (f, s) = HoldDown::apply(Some(&s), false, 200, 100);
        assert!(f, "held firing within 100 ms of going firing");
        let (f, s) = HoldDown::apply(Some(&s), true, 220, 100);
        assert!(f);
        let (f, s) = HoldDown::apply(Some(&s), false, 250, 100);
        assert!(!f, "100 ms after going firing it may clear");
        let (f, _) = HoldDown::apply(Some(&s), true, 300, 100);
        assert!(!f, "held clear within 100 ms of clearing");
    }

    #[test]
    fn bad_state_reads_as_none() {
        assert_eq!(HoldDown::decode(Some(&[1, 2])), None);
        assert_eq!(HoldDown::decode(None), None);
        let (f, _) = HoldDown::apply(Some(&[9]), true, 5, 100);
        assert!(f);
    }
}
