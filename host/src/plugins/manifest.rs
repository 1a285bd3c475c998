//! `NAME.toml`, the optional manifest beside a plugin component (in the
//! plugins directory): the plugin's sandbox limits and its self-test vectors,
//! which the load pipeline runs before a version goes live.
//!
//! ```toml
//! [limits]
//! timeout = "50ms"
//! memory_bytes = 33554432
//!
//! [[self_test]]
//! name = "fires above the threshold"
//! config = { threshold = 0.5 }
//! labels = { model_name = "fraud" }
//! values = [0.1, 0.9]
//! firing = true
//! ```

use std::collections::BTreeMap;

use serde::Deserialize;

use super::bindings::types::{Batch, SeriesInput, Span};
use super::{Plugin, PluginKind, PluginLimits};
use crate::store::Labels;

/// Evaluation time of self-test batches; samples are 1 s apart and end here.
const SELF_TEST_EVAL_MS: i64 = 1_000_000_000;

/// A parsed `NAME.toml`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Sandbox limits of this plugin (replacing the config's for it).
    #[serde(default)]
    pub limits: Option<PluginLimits>,
    /// Vectors run against the detector before it goes live.
    #[serde(default, rename = "self_test")]
    pub self_tests: Vec<SelfTest>,
    /// Notifiers: hosts this version may reach beside those its receivers'
    /// configs name (names, IP literals or `*.suffix`; private and metadata
    /// addresses stay refused unless a receiver's `allowed_networks` covers
    /// them).
    #[serde(default)]
    pub allowed_hosts: Vec<String>,
}

/// One self-test: a single series, the config to judge it with, and whether
/// the verdict must be firing.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SelfTest {
    pub name: String,
    /// The detector config (a table); `{}` by default.
    #[serde(default)]
    pub config: toml::Table,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// The window's values, oldest first, one second apart.
    pub values: Vec<f64>,
    /// Baseline values, just before the window.
    #[serde(default)]
    pub baseline: Vec<f64>,
    /// The expected verdict.
    pub firing: bool,
}

/// Why a manifest is refused or a self-test failed.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("invalid manifest: {0}")]
    Parse(String),
    #[error("self-tests are run on detectors only; `{name}` is a {kind}")]
    NotDetector { name: String, kind: PluginKind },
    #[error("self-test `{test}`: {reason}")]
    Failed { test: String, reason: String },
}

impl Manifest {
    /// Parses manifest text.
    pub fn parse(text: &str) -> Result<Self, ManifestError> {
        toml::from_str(text).map_err(|e| ManifestError::Parse(e.to_string()))
    }

    /// Runs every self-test against `plugin`.
    pub fn run_self_tests(&self, plugin: &Plugin) -> Result<(), ManifestError> {
        if self.self_tests.is_empty() {
            return Ok(());
        }
        if plugin.info.kind != PluginKind::Detector {
            return Err(ManifestError::NotDetector {
                name: plugin.info.name.clone(),
                kind: plugin.info.kind,
            });
        }
        for test in &self.self_tests {
            test.run(plugin)?;
        }
        Ok(())
    }
}

impl SelfTest {
    fn run(&self, plugin: &Plugin) -> Result<(), ManifestError> {
        let fail = |reason: String| ManifestError::Failed {
            test: self.name.clone(),
            reason,
        };
        let config = serde_json::to_string(&self.config).map_err(|e| fail(e.to_string()))?;
        let n = self.baseline.len() + self.values.len();
        let timestamps_ms: Vec<i64> = (0..n)
            .map(|i| SELF_TEST_EVAL_MS - 1000 * (n - 1 - i) as i64)
            .collect();
        // Baseline first in time, window last; in the batch the window comes first.
        let (base_ts, window_ts) = timestamps_ms.split_at(self.baseline.len());
        let mut ts = window_ts.to_vec();
        ts.extend_from_slice(base_ts);
        let mut values = self.values.clone();
        values.extend_from_slice(&self.baseline);
        let labels = Labels::new(self.labels.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        let batch = Batch {
            series: vec![SeriesInput {
                labels: labels.to_prom_string(),
                window: Span {
                    start: 0,
                    len: self.values.len() as u32,
                },
                baseline: Span {
                    start: self.values.len() as u32,
                    len: self.baseline.len() as u32,
                },
                state: None,
            }],
            timestamps_ms: ts,
            values,
            eval_time_ms: SELF_TEST_EVAL_MS,
        };
        plugin
            .check_config(&config)
            .map_err(|e| fail(e.to_string()))?;
        let outputs = plugin
            .evaluate(&config, &batch)
            .map_err(|e| fail(e.to_string()))?;
        let verdict = &outputs
            .first()
            .ok_or_else(|| fail("no verdict".into()))?
            .verdict;
        if verdict.firing != self.firing {
            return Err(fail(format!(
                "expected firing={}, got firing={} (score {}, summary {:?})",
                self.firing, verdict.firing, verdict.score, verdict.summary
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_limits_and_self_tests_and_refuses_unknown_fields() {
        let m = Manifest::parse(
            r#"
[limits]
timeout = "50ms"

[[self_test]]
name = "high"
config = { threshold = 0.5 }
labels = { model_name = "fraud" }
values = [0.1, 0.9]
firing = true
"#,
        )
        .expect("parses");
        let limits = m.limits.expect("limits");
        assert_eq!(limits.timeout, std::time::Duration::from_millis(50));
        assert_eq!(limits.memory_bytes, PluginLimits::default().memory_bytes);
        assert_eq!(m.self_tests.len(), 1);
        assert_eq!(m.self_tests[0].config["threshold"].as_float(), Some(0.5));
        assert!(m.self_tests[0].firing);
        let m = Manifest::parse("allowed_hosts = [\"api.vendor.io\", \"*.vendor.io\"]")
            .expect("parses");
        assert_eq!(m.allowed_hosts, ["api.vendor.io", "*.vendor.io"]);
        let err = Manifest::parse("allowed_hostz = []").expect_err("unknown field");
        assert!(err.to_string().contains("allowed_hostz"), "{err}");
    }
}
