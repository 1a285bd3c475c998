//! The [`Detector`] trait: a plugin that judges metric series windows.
//!
//! Export an implementation with [`export_detector!`](crate::export_detector).

use serde::de::DeserializeOwned;

use crate::info::Info;
use crate::series::{Batch, Series};
use crate::verdict::Output;

/// A plugin that judges a batch of series windows, one verdict per series.
///
/// The host calls, in this order:
///
/// 1. [`info`](Detector::info) once, when it loads the plugin;
/// 2. `check-config` when it loads a rule: the SDK parses the JSON text into
///    [`Config`](Detector::Config) (errors name the field) and then calls
///    [`check_config`](Detector::check_config);
/// 3. `evaluate` every evaluation interval, with the rule's config and a [`Batch`]:
///    the SDK parses and checks the config again (so `evaluate` only ever sees configs
///    `check_config` accepted) and calls [`evaluate_batch`](Detector::evaluate_batch),
///    which by default calls [`evaluate`](Detector::evaluate) per series.
///
/// Everything is stateless between calls: keep per-series memory in
/// [`Output::state`], which the host stores and hands back as
/// [`Series::state`].
pub trait Detector {
    /// The config, deserialised from the rule's JSON. Use `#[serde(deny_unknown_fields)]`
    /// so typos are errors, and `#[serde(default)]` for optional fields.
    type Config: DeserializeOwned;

    /// Name, version, description and config schema.
    fn info() -> Info;

    /// Semantic checks serde cannot express (ranges, mutually exclusive fields).
    /// The error is shown to the operator as is: name the field.
    fn check_config(_cfg: &Self::Config) -> Result<(), String> {
        Ok(())
    }

    /// Judges one series. Must not panic on any input: a panic traps the plugin and
    /// fails the whole batch.
    fn evaluate(cfg: &Self::Config, series: &Series<'_>) -> Output;

    /// Judges the whole batch: exactly one output per series, in order (the host
    /// rejects anything else). Override it to share work across series; the default
    /// calls [`evaluate`](Detector::evaluate) for each. An error fails the call.
    fn evaluate_batch(cfg: &Self::Config, batch: &Batch<'_>) -> Result<Vec<Output>, String> {
        Ok(batch.iter().map(|s| Self::evaluate(cfg, &s)).collect())
    }
}
