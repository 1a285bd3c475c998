//! Step 2: the config object.
//!
//! A rule using this plugin carries a JSON object; the SDK deserialises it into
//! [`Config`] with serde. Three habits worth copying:
//!
//! - `#[serde(deny_unknown_fields)]`: a typo (`treshold`) is an error at load time,
//!   not a silently ignored setting that pages nobody.
//! - `#[serde(default)]` with a `Default` impl: every field is optional and the
//!   defaults live in one place.
//! - Range checks go in [`Config::validate`] (called from `check_config`), with
//!   messages that start with the field name, like the SDK's own serde errors.

use serde::Deserialize;

/// The `mean_shift` config.
///
/// ```json
/// { "threshold": 3.0, "min_samples": 10, "min_stddev": 0.01 }
/// ```
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Fire when the mean moved more than this many baseline standard deviations.
    pub threshold: f64,
    /// Fewest finite samples needed in each of the window and the baseline.
    pub min_samples: usize,
    /// Floor for the baseline's standard deviation, in the metric's own units. A flat
    /// baseline has stddev 0, and any change at all would be an infinite shift; the
    /// floor says how small a standard deviation is still meaningful. For prediction
    /// scores in [0, 1], 0.01 is a sensible default.
    pub min_stddev: f64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            threshold: 3.0,
            min_samples: 10,
            min_stddev: 0.01,
        }
    }
}

impl Config {
    /// Range checks; each message starts with the field it is about.
    pub fn validate(&self) -> Result<(), String> {
        if !(self.threshold.is_finite() && self.threshold > 0.0) {
            return Err(format!(
                "threshold: must be above 0, got {}",
                self.threshold
            ));
        }
        if self.min_samples < 2 {
            return Err(format!(
                "min_samples: must be at least 2 (a standard deviation needs two samples), got {}",
                self.min_samples
            ));
        }
        if !(self.min_stddev.is_finite() && self.min_stddev > 0.0) {
            return Err(format!(
                "min_stddev: must be above 0, got {}",
                self.min_stddev
            ));
        }
        Ok(())
    }
}

/// JSON Schema of [`Config`], returned by `info`. Keep it in step with the struct:
/// the host uses it to validate rules and to document the plugin.
pub const SCHEMA: &str = r#"{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "title": "mean_shift",
  "type": "object",
  "additionalProperties": false,
  "properties": {
    "threshold": {"type": "number", "exclusiveMinimum": 0, "default": 3.0},
    "min_samples": {"type": "integer", "minimum": 2, "default": 10},
    "min_stddev": {"type": "number", "exclusiveMinimum": 0, "default": 0.01}
  }
}"#;

#[cfg(test)]
mod tests {
    use crate::MeanShift;
    use klaxon_sdk::testing;

    // `testing::check_detector_config` runs the same parse-then-check path as the
    // host's `check-config` call.
    #[test]
    fn defaults_and_errors() {
        let check = testing::check_detector_config::<MeanShift>;
        assert!(check("{}").is_ok());
        assert!(check(r#"{"threshold": 1.5, "min_samples": 30, "min_stddev": 0.001}"#).is_ok());
        for (config, field) in [
            (r#"{"threshold": 0}"#, "threshold:"),
            (r#"{"min_samples": 1}"#, "min_samples:"),
            (r#"{"min_stddev": -1}"#, "min_stddev:"),
            (r#"{"threshold": "high"}"#, "threshold: invalid type"),
            (r#"{"treshold": 2}"#, "unknown field `treshold`"),
        ] {
            let err = check(config).unwrap_err();
            assert!(err.contains(field), "{config}: {err}");
        }
    }

    #[test]
    fn schema_is_valid_json() {
        let schema: serde_json::Value = serde_json::from_str(super::SCHEMA).unwrap();
        assert_eq!(schema["properties"]["threshold"]["default"], 3.0);
    }
}
