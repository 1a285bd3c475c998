//! The [`Composite`] trait: a plugin that combines other rules' alert states, and the
//! [`SignalGroup`] it receives.
//!
//! Export an implementation with [`export_composite!`](crate::export_composite).

use serde::de::DeserializeOwned;

use crate::info::Info;
use crate::verdict::Output;

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
