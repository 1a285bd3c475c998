//! The Prometheus ingestion endpoints: `POST /api/v1/import/prometheus`
//! (text exposition format 0.0.4 or OpenMetrics, by `Content-Type`, with
//! optional `extra_label=name=value` query parameters) and `POST
//! /api/v1/write` (remote write 1.0). Both answer 204 when the whole request
//! is stored and 400 in the error envelope, storing nothing, otherwise.
//!
//! Parsing and validation live in `ingest`; this file only reads the body,
//! picks the parser and hands the batch to the store.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::{ApiError, AppState};
use crate::ingest::{ExtraLabel, SeriesSamples, TextFormat, parse_prom_text, parse_remote_write};

/// Reads the body within `limits.max_body_bytes`.
async fn read_body(state: &AppState, headers: &HeaderMap, body: Body) -> Result<Bytes, ApiError> {
    let limit = state.live.load().config.limits.max_body_bytes;
    if let Some(len) = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
        && len > limit
    {
        return Err(ApiError::bad_data(format!(
            "body: request body of {len} bytes exceeds the limit of {limit} bytes (limits.max_body_bytes)"
        )));
    }
    axum::body::to_bytes(body, limit).await.map_err(|_| {
        ApiError::bad_data(format!(
            "body: request body exceeds the limit of {limit} bytes (limits.max_body_bytes)"
        ))
    })
}

/// Stores a validated batch; 204, or 400 when the store refuses it.
fn store(state: &AppState, batch: &[SeriesSamples], endpoint: &'static str) -> Response {
    match state.store.append(batch) {
        Ok(stats) => {
            tracing::trace!(endpoint, ?stats, "samples stored");
            StatusCode::NO_CONTENT.into_response()
        }
        Err(e) => {
            tracing::debug!(endpoint, error = %e, "batch refused by the store");
            ApiError::bad_data(e.to_string()).into_response()
        }
    }
}

/// `POST /api/v1/import/prometheus`.
pub(super) async fn import_prometheus(
    State(state): State<Arc<AppState>>,
    Query(params): Query<Vec<(String, String)>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let mut extra = Vec::new();
    for (key, value) in &params {
        if key == "extra_label" {
            let label = ExtraLabel::parse(value, &state.live.load().config.limits)
                .map_err(|e| ApiError::bad_data(e.to_string()))?;
            // A repeated name: the last one wins.
            extra.retain(|e: &ExtraLabel| e.name != label.name);
            extra.push(label);
        }
    }
    let format = TextFormat::from_content_type(
        headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok()),
    );
    let bytes = read_body(&state, &headers, body).await?;
    let now_ms = chrono::Utc::now().timestamp_millis();
    let batch = parse_prom_text(
        &bytes,
        format,
        &state.live.load().config.limits,
        now_ms,
        &extra,
    )
    .map_err(|e| {
        tracing::debug!(endpoint = "import/prometheus", error = %e, "import refused");
        ApiError::bad_data(e.to_string())
    })?;
    Ok(store(&state, &batch, "import/prometheus"))
}

/// `POST /api/v1/write`.
pub(super) async fn remote_write(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    if let Some(encoding) = headers.get(header::CONTENT_ENCODING)
        && !encoding.as_bytes().eq_ignore_ascii_case(b"snappy")
    {
        return Err(ApiError::bad_data(format!(
            "body: unsupported Content-Encoding {encoding:?}: remote write bodies are snappy-compressed"
        )));
    }
    let bytes = read_body(&state, &headers, body).await?;
    let now_ms = chrono::Utc::now().timestamp_millis();
    let batch =
        parse_remote_write(&bytes, &state.live.load().config.limits, now_ms).map_err(|e| {
            tracing::debug!(endpoint = "write", error = %e, "remote write refused");
            ApiError::bad_data(e.to_string())
        })?;
    Ok(store(&state, &batch, "write"))
}
