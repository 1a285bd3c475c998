//! The Prometheus metadata API, so Grafana and other Prometheus clients can
//! browse Klaxon's series: `/api/v1/series`, `/api/v1/labels`,
//! `/api/v1/label/<name>/values` and `/api/v1/status/buildinfo`, with
//! Prometheus's JSON shapes and error texts (`web/api/v1/api.go`). Reads the
//! store only; parameters are parsed by `params`.
//!
//! Time ranges are exact: a series counts when it holds a sample with
//! `start <= t <= end` (Prometheus answers from whole blocks, so it may also
//! list series just outside the range). Without `match[]`, `start` or `end`,
//! names and values come straight from the label index.
//! `limit` truncates the answer and adds Prometheus's warning
//! `results truncated due to limit`. Label names follow the classic rule
//! (`[a-zA-Z_][a-zA-Z0-9_]*`, which ingest enforces); `U__` escaped names
//! are not decoded.

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::json;

use super::params::{MAX_TIME_MS, MIN_TIME_MS, ParamError, PromParams};
use super::{ApiError, AppState, success};
use crate::store::{Labels, Matcher, SeriesHandle, Store, is_label_name};

/// `start`/`end` as given, or Prometheus's defaults.
struct Range {
    start: i64,
    end: i64,
    /// Whether the caller gave either bound (else every stored series is in range).
    given: bool,
}

fn range(params: &PromParams) -> Result<Range, ApiError> {
    let bad = |e: ParamError| ApiError::bad_data(e.to_string());
    let start = params.time_or("start", MIN_TIME_MS).map_err(bad)?;
    let end = params.time_or("end", MAX_TIME_MS).map_err(bad)?;
    Ok(Range {
        start,
        end,
        given: start != MIN_TIME_MS || end != MAX_TIME_MS,
    })
}

/// The success envelope with at most `limit` items; when more were found,
/// Prometheus's truncation warning beside the data.
fn limited<T: Serialize>(mut items: Vec<T>, limit: Option<usize>) -> Response {
    match limit {
        Some(limit) if items.len() > limit => {
            items.truncate(limit);
            Json(json!({
                "status": "success",
                "data": items,
                "warnings": ["results truncated due to limit"],
            }))
            .into_response()
        }
        _ => success(items),
    }
}

fn limit_param(params: &PromParams) -> Result<Option<usize>, ApiError> {
    params
        .limit()
        .map_err(|e| ApiError::bad_data(e.to_string()))
}

/// Series matching any of `sets` (every series when `sets` is empty) with a
/// sample in the range, each once, in label order.
fn series_in_range(store: &Store, sets: &[Vec<Matcher>], range: &Range) -> Vec<SeriesHandle> {
    let mut found: Vec<SeriesHandle> = if sets.is_empty() {
        store.select(&[])
    } else {
        let mut all: Vec<SeriesHandle> = sets.iter().flat_map(|set| store.select(set)).collect();
        all.sort_by(|a, b| a.labels().cmp(b.labels()));
        all.dedup_by(|a, b| a.labels() == b.labels());
        all
    };
    if range.given {
        let (mut ts, mut vals) = (Vec::new(), Vec::new());
        found.retain(|h| {
            ts.clear();
            vals.clear();
            // read_window is left-open: (start - 1, end] is [start, end].
            store.read_window(
                h,
                range.start.saturating_sub(1),
                range.end,
                &mut ts,
                &mut vals,
            );
            !ts.is_empty()
        });
    }
    found
}

/// `GET|POST /api/v1/series`: label sets of the series matching at least
/// one `match[]` (required) with samples in `[start, end]`.
pub(super) async fn series(
    State(state): State<Arc<AppState>>,
    params: PromParams,
) -> Result<Response, ApiError> {
    let selectors = params.all("match[]");
    if selectors.is_empty() {
        return Err(ApiError::bad_data("no match[] parameter provided"));
    }
    let range = range(&params)?;
    let sets = params
        .match_sets()
        .map_err(|e| ApiError::bad_data(format!("invalid parameter \"match[]\": {e}")))?;
    let limit = limit_param(&params)?;
    let found = series_in_range(&state.store, &sets, &range);
    tracing::debug!(
        endpoint = "series",
        selectors = selectors.len(),
        series = found.len(),
        "metadata query"
    );
    let labels: Vec<&Labels> = found.iter().map(SeriesHandle::labels).collect();
    Ok(limited(labels, limit))
}

/// `GET|POST /api/v1/labels`: label names, optionally of the series matching
/// `match[]` and with samples in `[start, end]`, sorted.
pub(super) async fn labels(
    State(state): State<Arc<AppState>>,
    params: PromParams,
) -> Result<Response, ApiError> {
    let range = range(&params)?;
    let sets = params
        .match_sets()
        .map_err(|e| ApiError::bad_data(e.to_string()))?;
    let limit = limit_param(&params)?;
    let names: Vec<String> = if sets.is_empty() && !range.given {
        state.store.label_names()
    } else {
        let found = series_in_range(&state.store, &sets, &range);
        let names: BTreeSet<&str> = found
            .iter()
            .flat_map(|h| h.labels().iter().map(|(n, _)| n))
            .collect();
        names.into_iter().map(str::to_owned).collect()
    };
    tracing::debug!(endpoint = "labels", names = names.len(), "metadata query");
    Ok(limited(names, limit))
}

/// `GET /api/v1/label/<name>/values`: the values of one label, optionally
/// of the series matching `match[]` and with samples in `[start, end]`, sorted.
pub(super) async fn label_values(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    params: PromParams,
) -> Result<Response, ApiError> {
    if !is_label_name(&name) {
        return Err(ApiError::bad_data(format!("invalid label name: {name:?}")));
    }
    let range = range(&params)?;
    let sets = params
        .match_sets()
        .map_err(|e| ApiError::bad_data(e.to_string()))?;
    let limit = limit_param(&params)?;
    let values: Vec<String> = if sets.is_empty() && !range.given {
        state.store.label_values(&name)
    } else {
        // Only series that have the label can contribute a value.
        let has_label = Matcher::not_equal(name.as_str(), "");
        let sets: Vec<Vec<Matcher>> = if sets.is_empty() {
            vec![vec![has_label]]
        } else {
            sets.into_iter()
                .map(|mut set| {
                    set.push(has_label.clone());
                    set
                })
                .collect()
        };
        let found = series_in_range(&state.store, &sets, &range);
        let values: BTreeSet<&str> = found.iter().filter_map(|h| h.labels().get(&name)).collect();
        values.into_iter().map(str::to_owned).collect()
    };
    tracing::debug!(endpoint = "label_values", label = %name, values = values.len(), "metadata query");
    Ok(limited(values, limit))
}

/// `GET /api/v1/status/buildinfo`, shaped as Prometheus's (Grafana probes it).
/// `version` is Klaxon's; `revision` is `KLAXON_BUILD_REVISION` at build time
/// if set. There is no Go toolchain, so `goVersion` is empty.
pub(super) async fn buildinfo() -> Response {
    success(json!({
        "version": env!("CARGO_PKG_VERSION"),
        "revision": option_env!("KLAXON_BUILD_REVISION").unwrap_or(""),
        "branch": option_env!("KLAXON_BUILD_BRANCH").unwrap_or(""),
        "buildUser": "",
        "buildDate": option_env!("KLAXON_BUILD_DATE").unwrap_or(""),
        "goVersion": "",
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_names_follow_prometheus_rule() {
        for ok in ["a", "_", "model_name", "__name__", "A9"] {
            assert!(is_label_name(ok), "{ok}");
        }
        for bad in ["", "9a", "a-b", "é", "a b"] {
            assert!(!is_label_name(bad), "{bad}");
        }
    }
}
