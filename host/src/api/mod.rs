//! The HTTP API (axum): metric push, alerts, rules, plugins, the delivery
//! log and health. Errors use Prometheus's envelope
//! (`{"status":"error","errorType":"bad_data","error":"<field>: <reason>"}`).
//!
//! Reads from rules, notify and plugins through `AppState`; owns no state.
//!
//! - `am`: Alertmanager's API v2 (alerts, groups, silences, status, receivers).
//! - `auth`: bearer tokens, the scope of every route, per-token limits.
//! - `tls`: HTTPS (rustls) for the listener.
//! - `params`: Prometheus read-API parameters (times, durations, `match[]`).
//! - `plugins`: plugin versions: list, upload, rollback, removal.
//! - `prom_meta`: the Prometheus metadata endpoints (series, labels, buildinfo).
//! - `prom_query`: the Prometheus query endpoints (`query`, `query_range`).

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Serialize;
use serde_json::json;

use crate::alert::Alert;
use crate::config::Config;
use crate::duration::format as format_duration;
use crate::ingest::parse_push;
use crate::notify::NotifyHandle;
use crate::plugins::PluginRegistry;
use crate::route::{AlertStore, DispatcherQuery, Muter, Routing};
use crate::rules::RuleGroup;
use crate::silence::Silences;
use crate::store::Store;
use arc_swap::ArcSwap;
use tokio::sync::mpsc;

mod am;
pub mod auth;
pub(crate) mod params;
mod plugins;
mod prom_ingest;
mod prom_meta;
mod prom_query;
pub mod tls;

/// What the handlers read.
pub struct AppState {
    pub store: Arc<Store>,
    pub plugins: Arc<PluginRegistry>,
    /// Every alert received (rules and API), for the Alertmanager API.
    pub alerts: Arc<AlertStore>,
    pub silences: Arc<Silences>,
    pub started_at: chrono::DateTime<chrono::Utc>,
    /// What a config reload replaces, swapped atomically.
    pub live: ArcSwap<Live>,
    /// Reloads the config from its file; `None` when it has no file.
    pub reloader: Option<Arc<dyn Reload>>,
    /// The plugin load pipeline (upload, rollback, removal).
    pub manager: Arc<crate::plugins::lifecycle::PluginManager>,
}

/// The parts of a running Klaxon that come from its config.
pub struct Live {
    pub config: Arc<Config>,
    /// The config's source text (`/api/v2/status`).
    pub config_text: String,
    pub groups: Vec<Arc<RuleGroup>>,
    pub routing: Option<Routing>,
    pub notify: Option<NotifyHandle>,
    /// Into the routing task (through which API alerts are routed).
    pub dispatch: mpsc::Sender<Vec<Alert>>,
    /// Questions to the routing task; `None` without a route.
    pub dispatcher_queries: Option<mpsc::Sender<DispatcherQuery>>,
    /// Silences and this config's inhibit rules.
    pub muter: Muter,
    pub loaded_at: chrono::DateTime<chrono::Utc>,
}

/// Reloads the config (`POST /-/reload`, SIGHUP).
pub trait Reload: Send + Sync {
    /// Loads and checks the config file and, when it is valid, swaps it in;
    /// otherwise the running config stays and the error says why.
    fn reload<'a>(
        &'a self,
        state: &'a Arc<AppState>,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = anyhow::Result<()>> + Send + 'a>>;
}

/// The router with every endpoint.
pub fn router(state: Arc<AppState>) -> Router {
    // Leave room above the push limit so the handler, not axum, answers with
    // a message naming the limit.
    let body_limit = state
        .live
        .load()
        .config
        .limits
        .max_body_bytes
        .saturating_add(1);
    let gate = auth::Gate::new(state.clone());
    let routes = Router::new()
        .route("/api/v1/push", post(push))
        .route(
            "/api/v1/import/prometheus",
            post(prom_ingest::import_prometheus),
        )
        .route("/api/v1/write", post(prom_ingest::remote_write))
        .route("/api/v1/alerts", get(alerts))
        .route("/api/v1/rules", get(rules))
        .route("/api/v1/slos", get(slos))
        .route("/api/v1/plugins", get(plugins::list))
        .route(
            "/api/v1/plugins/{name}",
            axum::routing::put(plugins::put)
                .delete(plugins::delete)
                .layer(DefaultBodyLimit::max(plugins::MAX_COMPONENT_BYTES)),
        )
        .route("/api/v1/plugins/{name}/versions", get(plugins::versions))
        .route("/api/v1/plugins/{name}/rollback", post(plugins::rollback))
        .route("/api/v1/plugins/{name}/component", get(plugins::component))
        .route(
            "/api/v1/plugins/{name}/shadow",
            get(plugins::shadow_report).delete(plugins::shadow_stop),
        )
        .route("/api/v1/plugins/{name}/promote", post(plugins::promote))
        .route("/api/v1/notifications", get(notifications))
        .route("/api/v1/status/runtime", get(runtime))
        .route(
            "/api/v1/query",
            get(prom_query::query).post(prom_query::query),
        )
        .route(
            "/api/v1/query_range",
            get(prom_query::query_range).post(prom_query::query_range),
        )
        .route(
            "/api/v1/series",
            get(prom_meta::series).post(prom_meta::series),
        )
        .route(
            "/api/v1/labels",
            get(prom_meta::labels).post(prom_meta::labels),
        )
        .route("/api/v1/label/{name}/values", get(prom_meta::label_values))
        .route("/api/v1/status/buildinfo", get(prom_meta::buildinfo))
        .route("/api/v2/alerts", get(am::get_alerts).post(am::post_alerts))
        .route("/api/v2/alerts/groups", get(am::get_groups))
        .route(
            "/api/v2/silences",
            get(am::get_silences).post(am::post_silence),
        )
        .route(
            "/api/v2/silence/{id}",
            get(am::get_silence).delete(am::delete_silence),
        )
        .route("/api/v2/status", get(am::status))
        .route("/api/v2/receivers", get(am::receivers))
        .route("/-/reload", post(reload))
        .route("/healthz", get(healthz))
        .route("/-/healthy", get(healthz))
        .route("/-/ready", get(healthz))
        .layer(DefaultBodyLimit::max(body_limit))
        .with_state(state);
    // Last, so it wraps every route above (each route, after matching: the
    // scope table is keyed by the matched path).
    routes.layer(axum::middleware::from_fn_with_state(gate, auth::authorize))
}

/// An API error in Prometheus's envelope.
pub struct ApiError {
    status: StatusCode,
    kind: &'static str,
    message: String,
}

impl ApiError {
    /// 400 `bad_data`.
    pub fn bad_data(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            kind: "bad_data",
            message: message.into(),
        }
    }

    /// 422 `execution`: a valid query that failed while evaluating.
    pub fn execution(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            kind: "execution",
            message: message.into(),
        }
    }

    /// 500 `internal`.
    pub fn internal(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            kind: "internal",
            message: message.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({"status": "error", "errorType": self.kind, "error": self.message});
        (self.status, Json(body)).into_response()
    }
}

fn success<T: Serialize>(data: T) -> Response {
    Json(json!({"status": "success", "data": data})).into_response()
}

async fn push(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let live = state.live.load();
    let limits = &live.config.limits;
    let limit = limits.max_body_bytes;
    if let Some(len) = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
        && len > limit
    {
        return Err(ApiError::bad_data(format!(
            "body: request body of {len} bytes exceeds the limit of {limit} bytes (limits.ingest.max_body_bytes)"
        )));
    }
    let bytes: Bytes = axum::body::to_bytes(body, limit).await.map_err(|_| {
        ApiError::bad_data(format!(
            "body: request body exceeds the limit of {limit} bytes (limits.ingest.max_body_bytes)"
        ))
    })?;
    let now_ms = chrono::Utc::now().timestamp_millis();
    let batch =
        parse_push(&bytes, limits, now_ms).map_err(|e| ApiError::bad_data(e.to_string()))?;
    let stats = state
        .store
        .append(&batch)
        .map_err(|e| ApiError::bad_data(e.to_string()))?;
    tracing::trace!(?stats, "push stored");
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn alerts(State(state): State<Arc<AppState>>) -> Response {
    let alerts: Vec<_> = state
        .live
        .load()
        .groups
        .iter()
        .flat_map(|g| g.rules.iter())
        .flat_map(|r| r.active_alerts())
        .collect();
    success(json!({ "alerts": alerts }))
}

async fn rules(State(state): State<Arc<AppState>>) -> Response {
    let groups: Vec<_> = state
        .live
        .load()
        .groups
        .iter()
        .map(|g| {
            let (last, secs) = g.last_evaluation();
            let rules: Vec<_> = g
                .rules
                .iter()
                .map(|r| {
                    let h = r.health();
                    let alerts = r.active_alerts();
                    let detector = match &r.kind {
                        crate::rules::RuleKind::Detector(d) => Some(d),
                        _ => None,
                    };
                    let composite = match &r.kind {
                        crate::rules::RuleKind::Composite(c) => Some(json!({"plugin": c.plugin, "config": c.config, "children": c.children, "on": c.on})),
                        _ => None,
                    };
                    let kind = match &r.kind {
                        crate::rules::RuleKind::Record { .. } => "recording",
                        _ => "alerting",
                    };
                    let rule_state = if alerts.iter().any(|a| a.state == crate::rules::state::AlertState::Firing) {
                        "firing"
                    } else if alerts.is_empty() {
                        "inactive"
                    } else {
                        "pending"
                    };
                    json!({
                        "type": kind,
                        "name": r.name,
                        "query": r.query_text(),
                        "window": detector.map(|d| format_duration(d.window)),
                        "baseline": detector.and_then(|d| d.baseline).map(|(o, w)| json!({"offset": format_duration(o), "window": format_duration(w)})),
                        "detector": detector.map(|d| d.detector.as_str()),
                        "config": detector.map(|d| &d.config),
                        "composite": composite,
                        "notify": r.notify,
                        "duration": r.hold.as_secs_f64(),
                        "keepFiringFor": r.keep_firing_for.as_secs_f64(),
                        "labels": crate::rules::template_sources(&r.labels),
                        "annotations": crate::rules::template_sources(&r.annotations),
                        "state": rule_state,
                        "alerts": alerts,
                        "health": match (&h.last_evaluation, &h.last_error) {
                            (None, _) => "unknown",
                            (Some(_), Some(_)) => "err",
                            (Some(_), None) => "ok",
                        },
                        "lastError": h.last_error.unwrap_or_default(),
                        "lastEvaluation": h.last_evaluation,
                        "evaluationTime": h.evaluation_seconds,
                        "series": h.series,
                        "evaluationFailures": h.failures,
                    })
                })
                .collect();
            json!({
                "name": g.name,
                "interval": g.interval.as_secs_f64(),
                "rules": rules,
                "lastEvaluation": last,
                "evaluationTime": secs,
            })
        })
        .collect();
    success(json!({ "groups": groups }))
}

/// `GET /api/v1/slos`: each SLO's objective, error budget and, per SLI
/// label set, budget consumed and remaining and the burn rate per window.
async fn slos(State(state): State<Arc<AppState>>) -> Response {
    let config = state.live.load().config.clone();
    let store = state.store.clone();
    let now = chrono::Utc::now().timestamp_millis();
    match tokio::task::spawn_blocking(move || crate::slo::status(&config.slos, &store, now)).await {
        Ok(list) => success(list),
        Err(e) => ApiError::internal(format!("slo status: {e}")).into_response(),
    }
}

async fn notifications(State(state): State<Arc<AppState>>) -> Response {
    let log = state
        .live
        .load()
        .notify
        .as_ref()
        .map(|n| n.delivery_log())
        .unwrap_or_default();
    success(log)
}

async fn runtime(State(state): State<Arc<AppState>>) -> Response {
    success(json!({
        "series": state.store.series_count(),
        "samples": state.store.sample_count(),
        "ruleGroups": state.live.load().groups.len(),
        "plugins": state.plugins.list().len() + state.plugins.offered_count(),
        "version": env!("CARGO_PKG_VERSION"),
    }))
}

/// `POST /-/reload`: re-reads the config file; 200 when the new config
/// runs, 400 with the reason (file, line) when the running one stays.
async fn reload(State(state): State<Arc<AppState>>) -> Response {
    let Some(reloader) = state.reloader.clone() else {
        return (
            StatusCode::BAD_REQUEST,
            "no config file to reload: Klaxon runs on its embedded default config\n",
        )
            .into_response();
    };
    match reloader.reload(&state).await {
        Ok(()) => (StatusCode::OK, "config reloaded\n").into_response(),
        Err(e) => (
            StatusCode::BAD_REQUEST,
            format!("failed to reload config: {e:#}\n"),
        )
            .into_response(),
    }
}

async fn healthz() -> &'static str {
    "ok\n"
}
