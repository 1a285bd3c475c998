//! The plugin lifecycle endpoints: list with health, upload a version
//! (`PUT /api/v1/plugins/NAME`, the body is the component; `?mode=shadow`
//! runs it beside the live one), kept versions, rollback, the shadow report
//! and promotion, removal, and the live component's bytes. Every change goes
//! through the load pipeline (`plugins::lifecycle`) on a blocking thread; a
//! refused change leaves the live version in place and answers 4xx with the
//! reason.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::{ApiError, AppState, success};
use crate::plugins::lifecycle::{Candidate, LoadError};
use crate::plugins::{Plugin, PluginSource};

/// Largest component an upload may carry.
pub const MAX_COMPONENT_BYTES: usize = 64 << 20;

/// The header carrying an upload's detached signature (see `plugins::signing`).
pub const SIGNATURE_HEADER: &str = "x-klaxon-signature";

fn error_response(e: LoadError) -> ApiError {
    let status = if e.is_conflict() {
        StatusCode::CONFLICT
    } else if e.is_not_found() {
        StatusCode::NOT_FOUND
    } else {
        StatusCode::BAD_REQUEST
    };
    ApiError {
        status,
        kind: "bad_data",
        message: e.to_string(),
    }
}

fn version_json(p: &Plugin, live_hash: &str) -> Value {
    json!({
        "hash": p.hash,
        "version": p.info.version,
        "kind": p.info.kind,
        "source": p.source,
        "loadedAt": p.loaded_at,
        "live": p.hash == live_hash,
        "tier": p.tier,
        "health": p.stats(),
    })
}

/// `GET /api/v1/plugins`: every plugin's live version with its health,
/// and the stock plugins not loaded yet (`"loaded": false`: no config uses
/// them so far; they load when something asks for them by name).
pub async fn list(State(state): State<Arc<AppState>>) -> Result<Response, ApiError> {
    let registry = state.manager.registry().clone();
    // Listing a stock plugin not loaded yet probes it once (see
    // `PluginRegistry::offered_stock`): off the async threads.
    let offered = tokio::task::spawn_blocking(move || registry.offered_stock())
        .await
        .map_err(|e| ApiError::internal(format!("plugin listing panicked: {e}")))?;
    let registry = state.manager.registry();
    let mut list: Vec<(String, Value)> = registry
        .list()
        .iter()
        .map(|p| {
            let entry = json!({
                "name": p.info.name,
                "kind": p.info.kind,
                "version": p.info.version,
                "hash": p.hash,
                "source": p.source,
                "description": p.info.description,
                "loaded": true,
                "loadedAt": p.loaded_at,
                "fromCache": p.from_cache,
                "tier": p.tier,
                "limits": p.limits,
                "stats": p.stats(),
                "versions": registry.versions(&p.info.name).map_or(0, |v| v.len()),
                "lastLoadError": state.manager.last_failure(&p.info.name),
            });
            (p.info.name.clone(), entry)
        })
        .collect();
    for o in offered {
        if list.iter().any(|(name, _)| *name == o.info.name) {
            continue; // loaded since
        }
        let entry = json!({
            "name": o.info.name,
            "kind": o.info.kind,
            "version": o.info.version,
            "hash": o.hash,
            "source": PluginSource::Stock,
            "description": o.info.description,
            "loaded": false,
            "loadedAt": null,
            "fromCache": null,
            "tier": null,
            "limits": o.limits,
            "stats": null,
            "versions": 0,
            "lastLoadError": state.manager.last_failure(&o.info.name),
        });
        list.push((o.info.name, entry));
    }
    list.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(success(
        list.into_iter().map(|(_, v)| v).collect::<Vec<_>>(),
    ))
}

/// `PUT /api/v1/plugins/NAME`: loads the body as a new version of NAME.
pub async fn put(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let shadow = match query.get("mode").map(String::as_str) {
        None | Some("live") => false,
        Some("shadow") => true,
        Some(other) => {
            return Err(ApiError::bad_data(format!(
                "mode: `{other}` is neither `live` nor `shadow`"
            )));
        }
    };
    if body.is_empty() {
        return Err(ApiError::bad_data("body: empty; send the component bytes"));
    }
    let signature = headers
        .get(SIGNATURE_HEADER)
        .map(|v| {
            v.to_str()
                .map(str::to_string)
                .map_err(|_| ApiError::bad_data(format!("{SIGNATURE_HEADER}: not ASCII text")))
        })
        .transpose()?;
    let candidate = Candidate {
        name,
        bytes: body,
        source: PluginSource::Upload,
        manifest: None,
        signature,
    };
    let (manager, config) = (state.manager.clone(), state.live.load().config.clone());
    let loaded = tokio::task::spawn_blocking(move || {
        if shadow {
            manager.load_shadow(candidate, &config)
        } else {
            manager.load(candidate, &config)
        }
    })
    .await
    .map_err(|e| ApiError::internal(format!("plugin load panicked: {e}")))?
    .map_err(error_response)?;
    Ok(success(loaded))
}

/// `GET /api/v1/plugins/NAME/versions`: the kept versions, oldest first.
pub async fn versions(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let registry = state.manager.registry().clone();
    let asked = name.clone();
    // A stock plugin not loaded yet loads now: off the async threads.
    let found = tokio::task::spawn_blocking(move || {
        (registry.versions(&asked), registry.get_loaded(&asked))
    })
    .await
    .map_err(|e| ApiError::internal(format!("plugin lookup panicked: {e}")))?;
    let (Some(versions), Some(live)) = found else {
        return Err(not_found(&name));
    };
    let list: Vec<_> = versions
        .iter()
        .map(|p| version_json(p, &live.hash))
        .collect();
    Ok(success(
        json!({"name": name, "live": live.hash, "versions": list}),
    ))
}

fn not_found(name: &str) -> ApiError {
    ApiError {
        status: StatusCode::NOT_FOUND,
        kind: "bad_data",
        message: format!("no plugin named `{name}` is loaded"),
    }
}

/// `POST /api/v1/plugins/NAME/rollback[?version=HASH]`: the previous kept
/// version (or the named one) becomes live again.
pub async fn rollback(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let (manager, config) = (state.manager.clone(), state.live.load().config.clone());
    let version = query.get("version").cloned();
    let swap =
        tokio::task::spawn_blocking(move || manager.rollback(&name, version.as_deref(), &config))
            .await
            .map_err(|e| ApiError::internal(format!("rollback panicked: {e}")))?
            .map_err(error_response)?;
    Ok(success(json!({
        "name": swap.name,
        "from": swap.previous.map(|p| p.hash.clone()),
        "to": swap.live.hash,
    })))
}

/// `GET /api/v1/plugins/NAME/shadow`: how the shadow version compares.
pub async fn shadow_report(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let shadow = state
        .manager
        .registry()
        .shadow(&name)
        .ok_or_else(|| ApiError {
            status: StatusCode::NOT_FOUND,
            kind: "bad_data",
            message: format!("plugin `{name}` has no version in shadow"),
        })?;
    Ok(success(shadow.report()))
}

/// `DELETE /api/v1/plugins/NAME/shadow`: stops shadowing.
pub async fn shadow_stop(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    match state.manager.registry().set_shadow(&name, None) {
        Ok(Some(stopped)) => Ok(success(stopped.report())),
        _ => Err(ApiError {
            status: StatusCode::NOT_FOUND,
            kind: "bad_data",
            message: format!("plugin `{name}` has no version in shadow"),
        }),
    }
}

/// `POST /api/v1/plugins/NAME/promote`: the shadow version becomes live.
pub async fn promote(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let (manager, config) = (state.manager.clone(), state.live.load().config.clone());
    let swap = tokio::task::spawn_blocking(move || manager.promote(&name, &config))
        .await
        .map_err(|e| ApiError::internal(format!("promotion panicked: {e}")))?
        .map_err(error_response)?;
    Ok(success(json!({
        "name": swap.name,
        "from": swap.previous.map(|p| p.hash.clone()),
        "to": swap.live.hash,
    })))
}

/// `DELETE /api/v1/plugins/NAME`: forgets the plugin; 409 while a rule or
/// receiver uses it.
pub async fn delete(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let (manager, config) = (state.manager.clone(), state.live.load().config.clone());
    let removed = tokio::task::spawn_blocking(move || manager.remove(&name, &config))
        .await
        .map_err(|e| ApiError::internal(format!("removal panicked: {e}")))?
        .map_err(error_response)?;
    Ok(success(
        json!({"name": removed.info.name, "hash": removed.hash}),
    ))
}

/// `GET /api/v1/plugins/NAME/component`: the live version's component bytes.
pub async fn component(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let registry = state.manager.registry().clone();
    let asked = name.clone();
    // A stock plugin not loaded yet loads now: off the async threads.
    let plugin = tokio::task::spawn_blocking(move || registry.get(&asked))
        .await
        .map_err(|e| ApiError::internal(format!("plugin lookup panicked: {e}")))?
        .ok_or_else(|| not_found(&name))?;
    Ok((
        [
            (header::CONTENT_TYPE, "application/wasm".to_string()),
            (
                header::HeaderName::from_static("x-klaxon-plugin-hash"),
                plugin.hash.clone(),
            ),
        ],
        plugin.bytes.clone(),
    )
        .into_response())
}
