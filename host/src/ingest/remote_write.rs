//! Prometheus remote write 1.0, as accepted by `POST /api/v1/write`: a
//! snappy block-compressed (raw, not framed) protobuf `prometheus.WriteRequest`
//! turned into [`SeriesSamples`], or an [`IngestError`] naming the bad field
//! (`timeseries[3].labels.job`, `timeseries[0].samples[2].timestamp`).
//!
//! The messages are written with `prost`'s derive (no `protoc`), keeping only
//! the fields Klaxon stores; protobuf skips the others (metadata, exemplars,
//! native histograms), so a Prometheus sending them is still understood.
//!
//! Values are kept bit for bit: Prometheus marks a series stale with the NaN
//! whose bits are `0x7ff0000000000002`, and the store must be able to tell it
//! from an ordinary NaN.
//!
//! The same rules as the JSON push apply: every series needs a valid
//! `__name__`; other label names match `[a-zA-Z_][a-zA-Z0-9_]*` and must not
//! start with `__`; all `IngestLimits` apply, and the body limit counts both
//! the compressed and the decompressed size; timestamps must lie within
//! `max_sample_age` / `max_sample_future` of the server's clock, so a batch
//! Prometheus resends after a long outage is refused whole (400), which
//! Prometheus takes as "drop it" rather than retrying forever.

use std::borrow::Cow;

use prost::Message;

use super::push::{is_metric_name, merge_duplicates, short};
use super::{IngestError, IngestLimits};
use crate::duration::as_millis_i64;
use crate::store::is_label_name;
use crate::store::{Labels, METRIC_NAME, SeriesSamples};

/// The protobuf messages of remote write 1.0 (`prometheus/prompb`), the
/// fields Klaxon reads.
pub mod proto {
    /// `prometheus.WriteRequest`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct WriteRequest {
        #[prost(message, repeated, tag = "1")]
        pub timeseries: Vec<TimeSeries>,
    }

    /// `prometheus.TimeSeries`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct TimeSeries {
        #[prost(message, repeated, tag = "1")]
        pub labels: Vec<Label>,
        #[prost(message, repeated, tag = "2")]
        pub samples: Vec<Sample>,
    }

    /// `prometheus.Label`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Label {
        #[prost(string, tag = "1")]
        pub name: String,
        #[prost(string, tag = "2")]
        pub value: String,
    }

    /// `prometheus.Sample`: `timestamp` in milliseconds.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Sample {
        #[prost(double, tag = "1")]
        pub value: f64,
        #[prost(int64, tag = "2")]
        pub timestamp: i64,
    }
}

fn body_error(message: String) -> IngestError {
    IngestError {
        field: "body".into(),
        message,
    }
}

/// Decompresses, decodes and validates a remote write body. `now_ms` is the
/// server's clock, the centre of the accepted timestamp range.
pub fn parse_remote_write(
    body: &[u8],
    limits: &IngestLimits,
    now_ms: i64,
) -> Result<Vec<SeriesSamples>, IngestError> {
    let max = limits.max_body_bytes;
    if body.len() > max {
        return Err(body_error(format!(
            "request body is {} bytes, more than limits.max_body_bytes = {max}",
            body.len()
        )));
    }
    let len = snap::raw::decompress_len(body)
        .map_err(|e| body_error(format!("invalid snappy block: {e}")))?;
    if len > max {
        return Err(body_error(format!(
            "decompressed body is {len} bytes, more than limits.max_body_bytes = {max}"
        )));
    }
    let raw = snap::raw::Decoder::new()
        .decompress_vec(body)
        .map_err(|e| body_error(format!("invalid snappy block: {e}")))?;
    let request = proto::WriteRequest::decode(raw.as_slice())
        .map_err(|e| body_error(format!("invalid protobuf WriteRequest: {e}")))?;
    validate(request, limits, now_ms)
}

/// Checks a decoded request and turns it into store input.
pub fn validate(
    request: proto::WriteRequest,
    limits: &IngestLimits,
    now_ms: i64,
) -> Result<Vec<SeriesSamples>, IngestError> {
    let max_series = limits.max_series_per_request;
    if request.timeseries.len() > max_series {
        return Err(IngestError {
            field: "timeseries".into(),
            message: format!(
                "request has {} series, more than limits.max_series_per_request = {max_series}",
                request.timeseries.len()
            ),
        });
    }
    let min_ts = now_ms.saturating_sub(as_millis_i64(limits.max_sample_age));
    let max_ts = now_ms.saturating_add(as_millis_i64(limits.max_sample_future));
    let mut sample_count = 0usize;
    let mut out = Vec::with_capacity(request.timeseries.len());
    for (i, ts) in request.timeseries.into_iter().enumerate() {
        let labels = series_labels(i, &ts.labels, limits)?;
        for (j, s) in ts.samples.iter().enumerate() {
            if s.timestamp < min_ts || s.timestamp > max_ts {
                return Err(IngestError {
                    field: format!("timeseries[{i}].samples[{j}].timestamp"),
                    message: format!(
                        "timestamp {} is outside the accepted range [{min_ts}, {max_ts}] (server \
                         time {now_ms} minus limits.max_sample_age, plus limits.max_sample_future)",
                        s.timestamp
                    ),
                });
            }
        }
        sample_count += ts.samples.len();
        if sample_count > limits.max_samples_per_request {
            return Err(IngestError {
                field: format!("timeseries[{i}].samples"),
                message: format!(
                    "request has more than {} samples (limits.max_samples_per_request)",
                    limits.max_samples_per_request
                ),
            });
        }
        // A series with only exemplars or native histograms: nothing to store.
        if ts.samples.is_empty() {
            continue;
        }
        out.push(SeriesSamples {
            labels,
            samples: ts.samples.iter().map(|s| (s.timestamp, s.value)).collect(),
        });
    }
    Ok(merge_duplicates(out))
}

/// One series' labels, checked.
fn series_labels(
    i: usize,
    labels: &[proto::Label],
    limits: &IngestLimits,
) -> Result<Labels, IngestError> {
    let fail = |field: String, message: Cow<'_, str>| IngestError {
        field,
        message: message.into_owned(),
    };
    let field = |name: &str| format!("timeseries[{i}].labels.{}", short(name));
    let mut has_name = false;
    for l in labels {
        if l.name == METRIC_NAME {
            has_name = true;
            if !is_metric_name(&l.value) {
                return Err(fail(
                    field(&l.name),
                    format!(
                        "invalid metric name {:?}: must match [a-zA-Z_:][a-zA-Z0-9_:]*",
                        short(&l.value)
                    )
                    .into(),
                ));
            }
            if l.value.len() > limits.max_label_name_bytes {
                return Err(fail(
                    field(&l.name),
                    format!(
                        "metric name is {} bytes, more than limits.max_label_name_bytes = {}",
                        l.value.len(),
                        limits.max_label_name_bytes
                    )
                    .into(),
                ));
            }
            continue;
        }
        let problem: Option<Cow<'_, str>> = if l.name.starts_with("__") {
            Some("label names starting with `__` are reserved".into())
        } else if !is_label_name(&l.name) {
            Some("invalid label name: must match [a-zA-Z_][a-zA-Z0-9_]*".into())
        } else if l.name.len() > limits.max_label_name_bytes {
            Some(
                format!(
                    "label name is {} bytes, more than limits.max_label_name_bytes = {}",
                    l.name.len(),
                    limits.max_label_name_bytes
                )
                .into(),
            )
        } else if l.value.len() > limits.max_label_value_bytes {
            Some(
                format!(
                    "label value is {} bytes, more than limits.max_label_value_bytes = {}",
                    l.value.len(),
                    limits.max_label_value_bytes
                )
                .into(),
            )
        } else {
            None
        };
        if let Some(message) = problem {
            return Err(fail(field(&l.name), message));
        }
    }
    if !has_name {
        return Err(fail(
            format!("timeseries[{i}].labels"),
            "missing the `__name__` label (the metric name)".into(),
        ));
    }
    let others = labels.len() - 1;
    if others > limits.max_labels_per_series {
        return Err(fail(
            format!("timeseries[{i}].labels"),
            format!(
                "{others} labels besides `__name__`, more than limits.max_labels_per_series = {}",
                limits.max_labels_per_series
            )
            .into(),
        ));
    }
    let mut names: Vec<&str> = labels.iter().map(|l| l.name.as_str()).collect();
    names.sort_unstable();
    if let Some(w) = names.windows(2).find(|w| w[0] == w[1]) {
        return Err(fail(field(w[0]), "duplicate label name".into()));
    }
    Ok(Labels::new(
        labels.iter().map(|l| (l.name.as_str(), l.value.as_str())),
    ))
}
