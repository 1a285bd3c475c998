//! `ingest` owns the push formats and their validation: it turns a request
//! body into [`SeriesSamples`] for the store, or into an [`IngestError`] that
//! names the offending field. It checks everything before returning, so the
//! caller applies a request whole or not at all. It depends on `store` only
//! for the types it produces and must never import `rules`, `route`,
//! `notify`, `api` or `plugins`.
//!
//! # The JSON push format (`POST /api/v1/push`)
//! ```json
//! {"series": [
//!   {"metric": "ml_prediction_latency_seconds",
//!    "labels": {"model_name": "fraud-detector"},
//!    "samples": [[1763780000000, 0.12], [1763780015000, 0.13]]},
//!   {"metric": "ml_drift_score", "value": 0.4}
//! ]}
//! ```
//! - `metric` (required) matches `[a-zA-Z_:][a-zA-Z0-9_:]*`.
//! - `labels` (optional): names match `[a-zA-Z_][a-zA-Z0-9_]*` and must not
//!   start with `__` (reserved); values are strings. An empty value means
//!   "no such label", as in Prometheus.
//! - exactly one of `samples` (`[timestamp_ms, value]` pairs, integer
//!   milliseconds) or `value` (one sample at the server's `now`).
//! - a value is a JSON number or one of the strings `"NaN"`, `"+Inf"`,
//!   `"Inf"`, `"-Inf"` (JSON has no literal for them).
//! - the same series given twice in one request is merged into one entry,
//!   its samples in request order (the store keeps the last value for a
//!   repeated timestamp).
//! - unknown fields are errors, so a typo (`"sample"`) is not silently lost.
//!
//! # How it is read
//! `serde_json` drives `DeserializeSeed` visitors (`push`) that build the
//! output vectors directly: no intermediate tree, label strings borrowed
//! from the body, limits checked as the body is read so an oversized request
//! fails early, and each visitor records its field path when an error passes
//! through it, so the innermost one names the field.
//!
//! # Prometheus formats
//! - `prom_text`: the text exposition format 0.0.4 and OpenMetrics text
//!   (`POST /api/v1/import/prometheus`); errors name the line.
//! - `remote_write`: Prometheus remote write 1.0 (`POST /api/v1/write`),
//!   snappy-compressed protobuf; errors name the field.
//!
//! Both follow the JSON push's name rules and [`IngestLimits`].

mod prom_text;
mod push;
mod remote_write;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_prom;

use std::time::Duration;

use serde::Deserialize;

pub use prom_text::{ExtraLabel, TextFormat, parse_prom_text};
pub use push::parse_push;
pub use remote_write::{parse_remote_write, proto as remote_write_proto};

use crate::duration;
#[doc(no_inline)]
pub use crate::store::SeriesSamples;

/// Limits on what one push request may contain; in the config file under
/// `limits:`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IngestLimits {
    /// Largest request body, in bytes; enforced by the HTTP layer (and again
    /// by [`parse_push`]).
    pub max_body_bytes: usize,
    /// Most series in one request.
    pub max_series_per_request: usize,
    /// Most samples in one request, all series together.
    pub max_samples_per_request: usize,
    /// Most entries in one series' `labels` object (the metric name is not
    /// counted).
    pub max_labels_per_series: usize,
    /// Longest label name or metric name, in bytes.
    pub max_label_name_bytes: usize,
    /// Longest label value, in bytes.
    pub max_label_value_bytes: usize,
    /// How far before the server's clock a sample may be, e.g. `6h`.
    #[serde(with = "duration::serde_str")]
    pub max_sample_age: Duration,
    /// How far after the server's clock a sample may be, e.g. `10m`.
    #[serde(with = "duration::serde_str")]
    pub max_sample_future: Duration,
}

impl Default for IngestLimits {
    fn default() -> IngestLimits {
        IngestLimits {
            max_body_bytes: 16 << 20,
            max_series_per_request: 100_000,
            max_samples_per_request: 2_000_000,
            max_labels_per_series: 30,
            max_label_name_bytes: 1024,
            max_label_value_bytes: 2048,
            max_sample_age: Duration::from_secs(6 * 3600),
            max_sample_future: Duration::from_secs(10 * 60),
        }
    }
}

/// A refused request: `field` is where (`series[3].labels.bad-name`,
/// `series[0].samples[2][0]`, or `body` for the request as a whole), `message`
/// what is wrong (JSON errors include line and column).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct IngestError {
    pub field: String,
    pub message: String,
}
