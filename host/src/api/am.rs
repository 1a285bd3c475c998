//! Alertmanager's HTTP API v2, the parts clients use (Prometheus's
//! `alerting.alertmanagers`, `amtool`, Grafana): alerts (post, list,
//! groups), silences (create/update, list, get, expire), status and
//! receivers, with the JSON shapes of Alertmanager's OpenAPI spec. Errors
//! are a JSON string with a 4xx status, as Alertmanager answers.
//!
//! Alerts posted here go through the same alert store, muting and routing
//! as the alerts of Klaxon's own rules.

use std::borrow::Cow;
use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{AppState, Live};
use crate::alert::{Alert, ZERO_TIME, fingerprint_hex, rfc3339};
use crate::route::tree::parse_matcher;
use crate::route::{BorrowedPairs, DispatcherQuery, MuteStatus, PostedAlert};
use crate::silence::{PostableSilence, Silence, SilenceError, matches_filter, sort_for_api};
use crate::store::{Labels, Matcher, is_label_name};

/// An error as Alertmanager sends it: a JSON string.
pub struct AmError(StatusCode, String);

impl AmError {
    fn bad_request(message: impl Into<String>) -> Self {
        Self(StatusCode::BAD_REQUEST, message.into())
    }
}

impl IntoResponse for AmError {
    fn into_response(self) -> Response {
        (self.0, Json(Value::String(self.1))).into_response()
    }
}

/// One alert of `POST /api/v2/alerts`, its strings borrowed from the body
/// where they need no unescaping, its pairs inline (a re-sent alert then
/// allocates nothing).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PostableAlert<'a> {
    #[serde(borrow)]
    labels: Pairs<'a, 8>,
    #[serde(default, borrow)]
    annotations: Pairs<'a, 4>,
    #[serde(default)]
    starts_at: Option<DateTime<Utc>>,
    #[serde(default)]
    ends_at: Option<DateTime<Utc>>,
    #[serde(default, borrow, rename = "generatorURL")]
    generator_url: Option<Text<'a>>,
}

/// A JSON object of strings as (name, value) pairs in document order, the
/// first `N` inline.
#[derive(Debug, Default)]
struct Pairs<'a, const N: usize>(BorrowedPairs<'a, N>);

/// A string borrowed from the input when it has no escapes.
#[derive(Debug, Deserialize)]
struct Text<'a>(#[serde(borrow)] Cow<'a, str>);

impl<'de: 'a, 'a, const N: usize> Deserialize<'de> for Pairs<'a, N> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit<'a, const N: usize>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a, const N: usize> serde::de::Visitor<'de> for Visit<'a, N> {
            type Value = Pairs<'a, N>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a map of strings")
            }
            fn visit_map<M: serde::de::MapAccess<'de>>(
                self,
                mut map: M,
            ) -> Result<Pairs<'a, N>, M::Error> {
                let mut pairs = BorrowedPairs::new();
                while let Some((Text(k), Text(v))) = map.next_entry::<Text<'de>, Text<'de>>()? {
                    pairs.push((k, v));
                }
                Ok(Pairs(pairs))
            }
        }
        d.deserialize_map(Visit(std::marker::PhantomData))
    }
}

impl<'a, const N: usize> Pairs<'a, N> {
    /// Sorted by name, the last value of a repeated name kept (what a JSON
    /// object decoded into a map holds).
    fn into_sorted(self) -> BorrowedPairs<'a, N> {
        let mut pairs = self.0;
        pairs.reverse();
        // Stable: among equal names the last given now comes first.
        pairs.sort_by(|a, b| a.0.cmp(&b.0));
        pairs.dedup_by(|later, first| later.0 == first.0);
        pairs
    }
}

/// Go's zero time (`0001-01-01T00:00:00Z`), which clients send for "unset".
fn is_zero(t: &Option<DateTime<Utc>>) -> bool {
    t.is_none_or(|t| t.timestamp() <= ZERO_UNIX)
}

/// `0001-01-01T00:00:00Z` in Unix seconds.
const ZERO_UNIX: i64 = -62_135_596_800;

/// `POST /api/v2/alerts`: stores every valid alert (best effort, as
/// Alertmanager does) and reports the invalid ones by index and field.
pub async fn post_alerts(
    State(state): State<Arc<AppState>>,
    body: Bytes,
) -> Result<StatusCode, AmError> {
    // The plain parser first: tracking the path costs on every field, and
    // only an error needs it (the body is parsed again to name the place).
    let posted: Vec<PostableAlert> = match serde_json::from_slice(&body) {
        Ok(posted) => posted,
        Err(plain) => {
            let de = &mut serde_json::Deserializer::from_slice(&body);
            return Err(
                match serde_path_to_error::deserialize::<_, Vec<PostableAlert>>(de) {
                    Err(e) => AmError::bad_request(format!("body: {} at {}", e.inner(), e.path())),
                    Ok(_) => AmError::bad_request(format!("body: {plain}")),
                },
            );
        }
    };
    let now = Utc::now();
    let timeout = chrono::Duration::from_std(state.live.load().config.global.resolve_timeout)
        .unwrap_or(chrono::Duration::minutes(5));
    let mut valid = Vec::with_capacity(posted.len());
    let mut errors = Vec::new();
    for (i, p) in posted.into_iter().enumerate() {
        match validate(p, now, timeout) {
            Ok(a) => valid.push(a),
            Err(e) => errors.push(format!("alerts[{i}]: {e}")),
        }
    }
    if !valid.is_empty() {
        let merged = state.alerts.put_posted(&valid, now);
        drop(valid);
        let dispatch = state.live.load().dispatch.clone();
        if dispatch.send(merged).await.is_err() {
            return Err(AmError(
                StatusCode::SERVICE_UNAVAILABLE,
                "shutting down: alerts not routed".into(),
            ));
        }
    }
    if !errors.is_empty() {
        return Err(AmError::bad_request(errors.join("; ")));
    }
    Ok(StatusCode::OK)
}

/// Alertmanager's defaults and `Alert.Validate`, naming the field.
fn validate<'a>(
    p: PostableAlert<'a>,
    now: DateTime<Utc>,
    timeout: chrono::Duration,
) -> Result<PostedAlert<'a>, String> {
    let starts_at = match (is_zero(&p.starts_at), is_zero(&p.ends_at)) {
        (false, _) => p.starts_at.unwrap_or(now),
        (true, true) => now,
        (true, false) => p.ends_at.unwrap_or(now),
    };
    let (ends_at, timed_out) = if is_zero(&p.ends_at) {
        (now + timeout, true)
    } else {
        (p.ends_at.unwrap_or(now), false)
    };
    if ends_at < starts_at {
        return Err("endsAt: start time must be before end time".into());
    }
    let mut labels = p.labels.into_sorted();
    if let Some((name, _)) = labels.iter().find(|(name, _)| !is_label_name(name)) {
        return Err(format!("labels: invalid name {name:?}"));
    }
    // An empty value is no label.
    labels.retain(|(_, value)| !value.is_empty());
    if labels.is_empty() {
        return Err("labels: at least one label pair required".into());
    }
    let annotations = p.annotations.into_sorted();
    if let Some((name, _)) = annotations.iter().find(|(name, _)| !is_label_name(name)) {
        return Err(format!("annotations: invalid name {name:?}"));
    }
    Ok(PostedAlert {
        labels,
        annotations,
        generator_url: p.generator_url.map(|t| t.0).unwrap_or_default(),
        starts_at,
        ends_at,
        timeout: timed_out,
    })
}

/// Query parameters of the alert endpoints.
struct AlertParams {
    filter: Vec<Matcher>,
    receiver: Option<regex::Regex>,
    active: bool,
    silenced: bool,
    inhibited: bool,
}

fn bool_param(name: &str, v: &str) -> Result<bool, AmError> {
    v.parse::<bool>()
        .map_err(|_| AmError::bad_request(format!("{name}: expected true or false, got {v:?}")))
}

fn filters(query: &Option<String>) -> Result<Vec<(String, String)>, AmError> {
    Ok(
        form_urlencoded::parse(query.as_deref().unwrap_or("").as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect(),
    )
}

fn parse_filter(v: &str) -> Result<Matcher, AmError> {
    parse_matcher(v).map_err(|e| AmError::bad_request(format!("filter: {e}")))
}

impl AlertParams {
    fn parse(query: &Option<String>) -> Result<Self, AmError> {
        let mut p = AlertParams {
            filter: Vec::new(),
            receiver: None,
            active: true,
            silenced: true,
            inhibited: true,
        };
        for (k, v) in filters(query)? {
            match k.as_str() {
                "filter" => p.filter.push(parse_filter(&v)?),
                "receiver" => {
                    p.receiver = Some(regex::Regex::new(&format!("^(?:{v})$")).map_err(|e| {
                        AmError::bad_request(format!(
                            "receiver: failed to parse receiver param: {e}"
                        ))
                    })?)
                }
                "active" => p.active = bool_param("active", &v)?,
                "silenced" => p.silenced = bool_param("silenced", &v)?,
                "inhibited" => p.inhibited = bool_param("inhibited", &v)?,
                "unprocessed" => {
                    bool_param("unprocessed", &v)?;
                }
                _ => {}
            }
        }
        Ok(p)
    }

    /// Whether an alert with this status and these receivers is shown.
    fn shows(&self, labels: &Labels, status: &MuteStatus, receivers: &[&str]) -> bool {
        if let Some(re) = &self.receiver
            && !receivers.iter().any(|r| re.is_match(r))
        {
            return false;
        }
        if !self
            .filter
            .iter()
            .all(|m| m.matches(labels.get(m.name()).unwrap_or("")))
        {
            return false;
        }
        if !self.active && !status.is_muted() {
            return false;
        }
        if !self.silenced && !status.silenced_by.is_empty() {
            return false;
        }
        if !self.inhibited && !status.inhibited_by.is_empty() {
            return false;
        }
        true
    }
}

fn labels_json(labels: &Labels) -> Value {
    Value::Object(
        labels
            .iter()
            .map(|(k, v)| (k.to_string(), Value::String(v.to_string())))
            .collect(),
    )
}

/// A `gettableAlert`.
fn gettable(
    alert: &Alert,
    updated_at: DateTime<Utc>,
    status: &MuteStatus,
    receivers: &[&str],
) -> Value {
    json!({
        "annotations": &*alert.annotations,
        "endsAt": alert.ends_at.map(rfc3339).unwrap_or_else(|| ZERO_TIME.to_string()),
        "fingerprint": fingerprint_hex(alert.fingerprint()),
        "receivers": receivers.iter().map(|r| json!({"name": r})).collect::<Vec<_>>(),
        "startsAt": rfc3339(alert.starts_at),
        "status": {
            "inhibitedBy": status.inhibited_by,
            "silencedBy": status.silenced_by,
            "state": if status.is_muted() { "suppressed" } else { "active" },
        },
        "updatedAt": rfc3339(updated_at),
        "generatorURL": &*alert.generator_url,
        "labels": labels_json(&alert.labels),
    })
}

fn receivers_of<'a>(live: &'a Live, labels: &Labels) -> Vec<&'a str> {
    live.routing
        .as_ref()
        .map(|r| r.tree().receivers_for(labels))
        .unwrap_or_default()
}

/// `GET /api/v2/alerts`: unresolved alerts, sorted by fingerprint.
pub async fn get_alerts(
    State(state): State<Arc<AppState>>,
    RawQuery(query): RawQuery,
) -> Result<Json<Value>, AmError> {
    let params = AlertParams::parse(&query)?;
    let now = Utc::now();
    let live = state.live.load();
    let mut all = state.alerts.list();
    all.sort_by_key(|a| a.alert.fingerprint());
    let out: Vec<Value> = all
        .iter()
        .filter(|a| !a.alert.is_resolved_at(now))
        .filter_map(|a| {
            let receivers = receivers_of(&live, &a.alert.labels);
            let status = live.muter.status(&a.alert.labels, now);
            params
                .shows(&a.alert.labels, &status, &receivers)
                .then(|| gettable(&a.alert, a.updated_at, &status, &receivers))
        })
        .collect();
    Ok(Json(Value::Array(out)))
}

/// `GET /api/v2/alerts/groups`: the routing task's aggregation groups.
pub async fn get_groups(
    State(state): State<Arc<AppState>>,
    RawQuery(query): RawQuery,
) -> Result<Json<Value>, AmError> {
    let params = AlertParams::parse(&query)?;
    let live = state.live.load_full();
    let Some(queries) = &live.dispatcher_queries else {
        return Ok(Json(json!([])));
    };
    let (tx, rx) = tokio::sync::oneshot::channel();
    if queries.send(DispatcherQuery::Groups(tx)).await.is_err() {
        return Err(AmError(
            StatusCode::SERVICE_UNAVAILABLE,
            "routing stopped".into(),
        ));
    }
    let groups = rx
        .await
        .map_err(|_| AmError(StatusCode::SERVICE_UNAVAILABLE, "routing stopped".into()))?;
    let now = Utc::now();
    let updated: std::collections::HashMap<u64, DateTime<Utc>> = state
        .alerts
        .list()
        .into_iter()
        .map(|a| (a.alert.fingerprint(), a.updated_at))
        .collect();
    let out: Vec<Value> = groups
        .iter()
        .filter(|g| {
            params
                .receiver
                .as_ref()
                .is_none_or(|re| re.is_match(&g.receiver))
        })
        .filter_map(|g| {
            let alerts: Vec<Value> = g
                .alerts
                .iter()
                .filter(|a| !a.is_resolved_at(now))
                .filter_map(|a| {
                    let receivers = receivers_of(&live, &a.labels);
                    let status = live.muter.status(&a.labels, now);
                    let updated_at = updated
                        .get(&a.fingerprint())
                        .copied()
                        .unwrap_or(a.starts_at);
                    params
                        .shows(&a.labels, &status, &[g.receiver.as_str()])
                        .then(|| gettable(a, updated_at, &status, &receivers))
                })
                .collect();
            (!alerts.is_empty()).then(|| {
                json!({
                    "labels": labels_json(&g.labels),
                    "receiver": {"name": g.receiver},
                    "alerts": alerts,
                })
            })
        })
        .collect();
    Ok(Json(Value::Array(out)))
}

/// A `gettableSilence`.
fn silence_json(s: &Silence, now: DateTime<Utc>) -> Value {
    json!({
        "id": s.id,
        "status": {"state": s.state(now).as_str()},
        "updatedAt": rfc3339(s.updated_at),
        "comment": s.comment,
        "createdBy": s.created_by,
        "endsAt": rfc3339(s.ends_at),
        "matchers": s.matchers,
        "startsAt": rfc3339(s.starts_at),
    })
}

fn silence_error(e: SilenceError) -> AmError {
    match e {
        SilenceError::NotFound => AmError(StatusCode::NOT_FOUND, e.to_string()),
        SilenceError::Persist { .. } => {
            tracing::error!(error = %e, "silence not persisted");
            AmError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
        }
        SilenceError::AlreadyExpired(_) | SilenceError::Invalid(_) => {
            AmError::bad_request(e.to_string())
        }
    }
}

/// `GET /api/v2/silences`.
pub async fn get_silences(
    State(state): State<Arc<AppState>>,
    RawQuery(query): RawQuery,
) -> Result<Json<Value>, AmError> {
    let mut filter = Vec::new();
    for (k, v) in filters(&query)? {
        if k == "filter" {
            filter.push(parse_filter(&v)?);
        }
    }
    let now = Utc::now();
    let mut all: Vec<Silence> = state
        .silences
        .list()
        .into_iter()
        .filter(|s| matches_filter(s, &filter))
        .collect();
    sort_for_api(&mut all, now);
    Ok(Json(Value::Array(
        all.iter().map(|s| silence_json(s, now)).collect(),
    )))
}

/// `POST /api/v2/silences`: creates or updates; answers the id in effect.
pub async fn post_silence(
    State(state): State<Arc<AppState>>,
    body: Bytes,
) -> Result<Json<Value>, AmError> {
    let de = &mut serde_json::Deserializer::from_slice(&body);
    let post: PostableSilence = serde_path_to_error::deserialize(de)
        .map_err(|e| AmError::bad_request(format!("body: {} at {}", e.inner(), e.path())))?;
    let silences = state.silences.clone();
    let id = tokio::task::spawn_blocking(move || silences.set(post, Utc::now()))
        .await
        .map_err(|e| AmError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
        .map_err(silence_error)?;
    Ok(Json(json!({ "silenceID": id })))
}

/// `GET /api/v2/silence/{id}`.
pub async fn get_silence(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Json<Value>, AmError> {
    let s = state
        .silences
        .get(&id)
        .ok_or_else(|| silence_error(SilenceError::NotFound))?;
    Ok(Json(silence_json(&s, Utc::now())))
}

/// `DELETE /api/v2/silence/{id}`: expires it now.
pub async fn delete_silence(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<StatusCode, AmError> {
    let silences = state.silences.clone();
    tokio::task::spawn_blocking(move || silences.expire(&id, Utc::now()))
        .await
        .map_err(|e| AmError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
        .map_err(silence_error)?;
    Ok(StatusCode::OK)
}

/// `GET /api/v2/status`.
pub async fn status(State(state): State<Arc<AppState>>) -> Json<Value> {
    Json(json!({
        "cluster": {"name": "", "peers": [], "status": "disabled"},
        "config": {"original": crate::config::redact_secrets(&state.live.load().config_text)},
        "uptime": rfc3339(state.started_at),
        "versionInfo": {
            "branch": "",
            "buildDate": "",
            "buildUser": "",
            "goVersion": "",
            "revision": "",
            "version": env!("CARGO_PKG_VERSION"),
        },
    }))
}

/// `GET /api/v2/receivers`.
pub async fn receivers(State(state): State<Arc<AppState>>) -> Json<Value> {
    Json(Value::Array(
        state
            .live
            .load()
            .config
            .receivers
            .iter()
            .map(|r| json!({"name": r.name}))
            .collect(),
    ))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::route::AlertStore;
    use crate::route::inhibit::Inhibitor;

    /// Parses a body and stores its alerts as `POST /api/v2/alerts` does.
    fn post(store: &AlertStore, body: &[u8], now: DateTime<Utc>) -> Result<Vec<Alert>, String> {
        let posted: Vec<PostableAlert> = serde_json::from_slice(body).expect("parses");
        let valid = posted
            .into_iter()
            .map(|p| validate(p, now, chrono::Duration::minutes(5)))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(store.put_posted(&valid, now))
    }

    #[test]
    fn posted_labels_are_read_like_a_map_with_escapes_and_repeats() {
        let store = AlertStore::new(Arc::new(Inhibitor::default()));
        let body = br#"[{"labels": {"b": "2", "a": "x\"y", "b": "3", "c": ""},
                         "annotations": {"s": "one", "s": "two"}}]"#;
        let now = Utc::now();
        let stored = post(&store, body, now).expect("valid");
        let alert = &stored[0];
        // Sorted, the last repeat wins, an empty value is no label.
        assert_eq!(alert.labels, Labels::new([("a", "x\"y"), ("b", "3")]));
        assert_eq!(alert.fingerprint(), alert.labels.fingerprint());
        assert_eq!(
            *alert.annotations,
            BTreeMap::from([("s".to_string(), "two".to_string())])
        );
        // A repeated name whose last value is empty: the label is absent.
        let alert = post(
            &store,
            br#"[{"labels": {"a": "1", "z": "x", "z": ""}}]"#,
            now,
        )
        .expect("valid");
        assert_eq!(alert[0].labels, Labels::new([("a", "1")]));
        // Names are checked in sorted order.
        let err =
            post(&store, br#"[{"labels": {"z-z": "1", "a-a": "2"}}]"#, now).expect_err("invalid");
        assert_eq!(err, "labels: invalid name \"a-a\"");
        let err = post(&store, br#"[{"labels": {"a": ""}}]"#, now).expect_err("invalid");
        assert_eq!(err, "labels: at least one label pair required");
    }

    #[test]
    fn a_resent_alert_keeps_the_stored_text_and_takes_the_new_times() {
        let store = AlertStore::new(Arc::new(Inhibitor::default()));
        let body = br#"[{"labels": {"alertname": "A", "model_name": "m"},
                         "annotations": {"summary": "bad", "runbook_url": "https://r"},
                         "generatorURL": "http://prom/graph"}]"#;
        let t0 = Utc::now();
        let first = post(&store, body, t0).expect("valid").remove(0);
        let t1 = t0 + chrono::Duration::seconds(30);
        let again = post(&store, body, t1).expect("valid").remove(0);
        // The same text, shared rather than rebuilt.
        assert_eq!(again.labels, first.labels);
        assert!(Arc::ptr_eq(&again.annotations, &first.annotations));
        assert!(Arc::ptr_eq(&again.generator_url, &first.generator_url));
        // Start kept, end (resolve timeout) pushed on.
        assert_eq!(again.starts_at, first.starts_at);
        assert_eq!(again.ends_at, Some(t1 + chrono::Duration::minutes(5)));
        let stored = store.list();
        assert_eq!(stored.len(), 1);
        assert_eq!(stored[0].updated_at, t1);
        // A changed annotation or URL is taken; the labels stay shared.
        let changed = br#"[{"labels": {"model_name": "m", "alertname": "A"},
                            "annotations": {"summary": "worse", "runbook_url": "https://r"},
                            "generatorURL": "http://prom/other"}]"#;
        let third = post(&store, changed, t1).expect("valid").remove(0);
        assert_eq!(third.labels, first.labels);
        assert_eq!(third.annotations["summary"], "worse");
        assert_eq!(third.annotations["runbook_url"], "https://r");
        assert_eq!(&*third.generator_url, "http://prom/other");
        assert_eq!(store.list()[0].alert, third);
    }
}
