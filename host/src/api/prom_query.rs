//! `prom_query` owns Prometheus's query endpoints, `/api/v1/query` and
//! `/api/v1/query_range` (GET, or POST with a form body), answering with
//! Prometheus's JSON shapes and errors so Grafana and other Prometheus
//! clients read Klaxon as a Prometheus data source. Evaluation runs on a
//! blocking thread, off the async workers.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::ser::{Serialize, SerializeMap, SerializeTuple, Serializer};
use serde_json::{Value as Json_, json};

use super::params::{PromParams, parse_duration_or_float, parse_time};
use super::{ApiError, AppState};
use crate::promql::{Engine, Query, RangeSeries, Sample, Value};
use crate::store::Labels;

/// Prometheus's cap on points per series in a range query.
const MAX_POINTS: i64 = 11_000;

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// A timestamp as Prometheus's JSON writes it: seconds, with a millisecond
/// fraction only when there is one (`1700000000`, `1700000000.5`).
fn json_time(t_ms: i64) -> Json_ {
    if t_ms % 1000 == 0 {
        json!(t_ms / 1000)
    } else {
        json!(t_ms as f64 / 1000.0)
    }
}

fn json_value(v: f64) -> Json_ {
    json!(crate::rules::format_value(v))
}

fn json_metric(l: &Labels) -> Json_ {
    let map: serde_json::Map<String, Json_> =
        l.iter().map(|(k, v)| (k.to_owned(), json!(v))).collect();
    Json_::Object(map)
}

fn vector_json(samples: &[Sample], t: i64) -> Json_ {
    Json_::Array(
        samples
            .iter()
            .map(|s| json!({"metric": json_metric(&s.labels), "value": [json_time(t), json_value(s.v)]}))
            .collect(),
    )
}

/// A matrix result serialised straight from the evaluator's series (no
/// intermediate JSON tree: a range query can hold 10⁵ points).
struct MatrixJson<'a>(&'a [RangeSeries]);

struct SeriesJson<'a>(&'a RangeSeries);

struct MetricJson<'a>(&'a Labels);

struct PointsJson<'a>(&'a [(i64, f64)]);

struct PointJson(i64, f64);

impl Serialize for MatrixJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter().map(SeriesJson))
    }
}

impl Serialize for SeriesJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(2))?;
        m.serialize_entry("metric", &MetricJson(&self.0.labels))?;
        m.serialize_entry("values", &PointsJson(&self.0.samples))?;
        m.end()
    }
}

impl Serialize for MetricJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.0.iter())
    }
}

impl Serialize for PointsJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter().map(|&(t, v)| PointJson(t, v)))
    }
}

impl Serialize for PointJson {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut t = s.serialize_tuple(2)?;
        if self.0 % 1000 == 0 {
            t.serialize_element(&(self.0 / 1000))?;
        } else {
            t.serialize_element(&(self.0 as f64 / 1000.0))?;
        }
        t.serialize_element(&ValueJson(self.1))?;
        t.end()
    }
}

/// A sample value as Prometheus writes it (a string: `"0.25"`, `"NaN"`,
/// `"+Inf"`), written without an intermediate `String`.
struct ValueJson(f64);

impl Serialize for ValueJson {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let v = self.0;
        if v.is_finite() {
            s.collect_str(&v)
        } else {
            s.serialize_str(&crate::rules::format_value(v))
        }
    }
}

/// Prometheus's success envelope around a matrix.
#[derive(serde::Serialize)]
struct RangeResponse<'a> {
    status: &'static str,
    data: RangeData<'a>,
}

#[derive(serde::Serialize)]
struct RangeData<'a> {
    #[serde(rename = "resultType")]
    result_type: &'static str,
    result: MatrixJson<'a>,
}

fn matrix_json(series: &[RangeSeries]) -> Json_ {
    Json_::Array(
        series
            .iter()
            .map(|s| {
                let values: Vec<Json_> = s
                    .samples
                    .iter()
                    .map(|(t, v)| json!([json_time(*t), json_value(*v)]))
                    .collect();
                json!({"metric": json_metric(&s.labels), "values": values})
            })
            .collect(),
    )
}

fn parse_query(params: &PromParams) -> Result<Query, ApiError> {
    let text = params.first("query").unwrap_or_default();
    Query::parse(text).map_err(|e| ApiError::bad_data(format!("invalid parameter \"query\": {e}")))
}

fn execution(e: impl std::fmt::Display) -> ApiError {
    ApiError::execution(e.to_string())
}

fn success(data: Json_) -> (StatusCode, Json<Json_>) {
    (
        StatusCode::OK,
        Json(json!({"status": "success", "data": data})),
    )
}

/// `GET/POST /api/v1/query?query=...&time=...`.
pub(super) async fn query(
    State(state): State<Arc<AppState>>,
    params: PromParams,
) -> Result<(StatusCode, Json<Json_>), ApiError> {
    let query = parse_query(&params)?;
    let t = match params.first("time") {
        None | Some("") => now_ms(),
        Some(text) => parse_time(text)
            .map_err(|e| ApiError::bad_data(format!("invalid parameter \"time\": {e}")))?,
    };
    let store = state.store.clone();
    let value = tokio::task::spawn_blocking(move || Engine::default().instant(&*store, &query, t))
        .await
        .map_err(|e| ApiError::internal(format!("query panicked: {e}")))?
        .map_err(execution)?;
    let data = match value {
        Value::Scalar(v) => {
            json!({"resultType": "scalar", "result": [json_time(t), json_value(v)]})
        }
        Value::String(s) => json!({"resultType": "string", "result": [json_time(t), s]}),
        Value::Vector(v) => json!({"resultType": "vector", "result": vector_json(&v, t)}),
        Value::Matrix(m) => json!({"resultType": "matrix", "result": matrix_json(&m)}),
    };
    Ok(success(data))
}

/// `GET/POST /api/v1/query_range?query=...&start=...&end=...&step=...`.
pub(super) async fn query_range(
    State(state): State<Arc<AppState>>,
    params: PromParams,
) -> Result<Response, ApiError> {
    let time = |name: &'static str| -> Result<i64, ApiError> {
        let text = params.first(name).unwrap_or_default();
        parse_time(text)
            .map_err(|e| ApiError::bad_data(format!("invalid parameter \"{name}\": {e}")))
    };
    let start = time("start")?;
    let end = time("end")?;
    if end < start {
        return Err(ApiError::bad_data(
            "invalid parameter \"end\": end timestamp must not be before start time",
        ));
    }
    let step_text = params.first("step").unwrap_or_default();
    let step = parse_duration_or_float(step_text)
        .map_err(|e| ApiError::bad_data(format!("invalid parameter \"step\": {e}")))?
        .num_milliseconds();
    if step <= 0 {
        return Err(ApiError::bad_data(
            "invalid parameter \"step\": zero or negative query resolution step widths are not accepted. Try a positive integer",
        ));
    }
    if (end - start) / step > MAX_POINTS {
        return Err(ApiError::bad_data(
            "exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)",
        ));
    }
    let query = parse_query(&params)?;
    let store = state.store.clone();
    let series = tokio::task::spawn_blocking(move || {
        Engine::default().range(&*store, &query, start, end, step)
    })
    .await
    .map_err(|e| ApiError::internal(format!("query panicked: {e}")))?
    .map_err(execution)?;
    Ok(Json(RangeResponse {
        status: "success",
        data: RangeData {
            result_type: "matrix",
            result: MatrixJson(&series),
        },
    })
    .into_response())
}
