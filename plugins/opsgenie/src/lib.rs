//! `opsgenie`: creates an Opsgenie alert while the group fires and closes it once the
//! group is resolved, as Alertmanager's `opsgenie_configs` does. Both requests name
//! the alert by its alias, the SHA-256 of the group key, so they meet the same alert.
//!
//! The config uses Alertmanager's field names and defaults; text fields are
//! Alertmanager templates (see `klaxon_notify_common::template`).
//!
//! # Config
//!
//! ```json
//! {
//!   "api_key": "0000-1111",
//!   "priority": "P2",
//!   "tags": "ml,{{ .CommonLabels.model }}",
//!   "responders": [{"name": "ml-oncall", "type": "team"}]
//! }
//! ```
//!
//! | field | default | meaning |
//! |-------|---------|---------|
//! | `api_key` | required (the host fills in `global.opsgenie_api_key`) | a secret (never echoed) |
//! | `api_url` | `https://api.opsgenie.com/` (or `global.opsgenie_api_url`) | |
//! | `message` | `{{ template "opsgenie.default.message" . }}` (the subject) | cut at 130 characters |
//! | `description` | `{{ template "opsgenie.default.description" . }}` (annotations and alert list) | |
//! | `source` | `{{ template "opsgenie.default.source" . }}` (the alerts page) | |
//! | `details` | none | added to the group's common labels (template values) |
//! | `entity`, `note`, `priority` | none | templates |
//! | `responders` | none | `[{"id" \| "name" \| "username", "type"}]`; type `team`, `teams` (comma-separated names), `user`, `escalation`, `schedule` |
//! | `actions`, `tags` | none | comma-separated lists (templates) |
//! | `update_alerts` | `false` | also update the message and description of an existing alert |
//! | `send_resolved` | `true` | accepted for compatibility and ignored here: the host applies it |
//!
//! Unknown fields and Alertmanager's `*_file` variants (plugins have no files) are
//! errors; so is a template that does not parse or calls an unknown function.
//!
//! # Requests
//!
//! With `Content-Type: application/json`, `User-Agent: Klaxon/0.1` and
//! `Authorization: GenieKey <api_key>`:
//!
//! - firing: `POST {api_url}v2/alerts` with
//!   `{"alias":"<sha256 hex of the group key>","message":"[FIRING:1] …","description":"…",
//!   "details":{"alertname":"HighLatency",…},"source":"…","responders":[…],"tags":[…],
//!   "note":"…","priority":"P2","entity":"…","actions":[…]}` (empty optional fields
//!   left out); with `update_alerts`, then `PUT {api_url}v2/alerts/{alias}/message?identifierType=alias`
//!   `{"message":…}` and `PUT …/description?identifierType=alias` `{"description":…}`;
//! - resolved: `POST {api_url}v2/alerts/{alias}/close?identifierType=alias` with
//!   `{"source":"…"}`.
//!
//! # Outcome
//!
//! As every stock notifier (`klaxon_notify_common::send`), for each request in turn:
//! 2xx (Opsgenie answers 202) delivered; 429 and 5xx retryable (honouring
//! `Retry-After` in seconds); other statuses permanent with the status and the first
//! 200 bytes of the body. The first failing request decides the outcome.

use std::collections::BTreeMap;

use klaxon_notify_common::{self as common, Renderer, Templates};
use klaxon_sdk::http::Request;
use klaxon_sdk::prelude::*;
use serde::{Deserialize, Serialize};

/// The Opsgenie notifier.
pub struct Opsgenie;

/// Opsgenie's limit on `message`.
const MAX_MESSAGE_CHARS: usize = 130;

/// Opsgenie's API.
pub const DEFAULT_API_URL: &str = "https://api.opsgenie.com/";

/// Responder types Opsgenie knows; `teams` is Alertmanager's list of team names.
const RESPONDER_TYPES: [&str; 5] = ["team", "teams", "user", "escalation", "schedule"];

/// Parsed config; see the crate docs. Not `Debug`: `api_key` is a secret.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `{{ define }}`s from the config's top-level `templates:` files, set by
    /// the host; usable from every templated field.
    #[serde(default, rename = "templates")]
    pub definitions: String,
    /// API key (an Opsgenie API integration's key).
    pub api_key: String,
    /// Opsgenie's API base URL.
    #[serde(default = "default_api_url")]
    pub api_url: String,
    /// Alert message.
    #[serde(default = "default_message")]
    pub message: String,
    /// Alert description.
    #[serde(default = "default_description")]
    pub description: String,
    /// Source of the alert.
    #[serde(default = "default_source")]
    pub source: String,
    /// Extra details, added to the common labels.
    #[serde(default)]
    pub details: BTreeMap<String, String>,
    /// Entity the alert is about.
    #[serde(default)]
    pub entity: String,
    /// Who is notified.
    #[serde(default)]
    pub responders: Vec<Responder>,
    /// Comma-separated custom actions.
    #[serde(default)]
    pub actions: String,
    /// Comma-separated tags.
    #[serde(default)]
    pub tags: String,
    /// Additional note.
    #[serde(default)]
    pub note: String,
    /// `P1` … `P5`.
    #[serde(default)]
    pub priority: String,
    /// Update message and description of an existing alert.
    #[serde(default)]
    pub update_alerts: bool,
    /// Accepted for Alertmanager compatibility; the host applies it.
    #[serde(default)]
    pub send_resolved: Option<bool>,
}

fn default_api_url() -> String {
    DEFAULT_API_URL.to_owned()
}
fn default_message() -> String {
    r#"{{ template "opsgenie.default.message" . }}"#.to_owned()
}
fn default_description() -> String {
    r#"{{ template "opsgenie.default.description" . }}"#.to_owned()
}
fn default_source() -> String {
    r#"{{ template "opsgenie.default.source" . }}"#.to_owned()
}

/// One responder.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Responder {
    /// Opsgenie id.
    #[serde(default)]
    pub id: String,
    /// Name (of a team, escalation or schedule).
    #[serde(default)]
    pub name: String,
    /// User name.
    #[serde(default)]
    pub username: String,
    /// `team`, `teams`, `user`, `escalation` or `schedule` (or a template).
    #[serde(rename = "type")]
    pub kind: String,
}

impl Config {
    /// Every templated field as (name, text).
    fn templates(&self) -> Vec<(String, &str)> {
        let mut all: Vec<(String, &str)> = [
            ("api_key", &self.api_key),
            ("message", &self.message),
            ("description", &self.description),
            ("source", &self.source),
            ("entity", &self.entity),
            ("actions", &self.actions),
            ("tags", &self.tags),
            ("note", &self.note),
            ("priority", &self.priority),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.as_str()))
        .collect();
        for (k, v) in &self.details {
            all.push((format!("details.{k}"), v));
        }
        for (i, r) in self.responders.iter().enumerate() {
            all.push((format!("responders[{i}].id"), &r.id));
            all.push((format!("responders[{i}].name"), &r.name));
            all.push((format!("responders[{i}].username"), &r.username));
            all.push((format!("responders[{i}].type"), &r.kind));
        }
        all
    }

    /// `api_url` joined with `path`.
    fn endpoint(&self, path: &str) -> String {
        let base = self.api_url.trim_end_matches('/');
        format!("{base}/{path}")
    }
}

/// Alertmanager's create message, field for field and in its order.
#[derive(Debug, Serialize)]
struct Create {
    alias: String,
    message: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    description: String,
    details: BTreeMap<String, String>,
    source: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    responders: Vec<ResponderBody>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tags: Vec<String>,
    #[serde(skip_serializing_if = "String::is_empty")]
    note: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    priority: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    entity: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    actions: Vec<String>,
}

#[derive(Debug, Serialize, PartialEq)]
struct ResponderBody {
    #[serde(skip_serializing_if = "String::is_empty")]
    id: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    name: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    username: String,
    #[serde(rename = "type")]
    kind: String,
}

/// The requests for `n`, in order; a template error names the field.
fn requests(cfg: &Config, n: &Notification) -> Result<Vec<Request>, String> {
    let r = Renderer::with_templates(n, Templates::with_definitions(&cfg.definitions)?);
    let alias = common::group_key_hash(&n.group_key);
    let api_key = r.render("api_key", &cfg.api_key)?;
    if api_key.is_empty() {
        return Err("api_key: rendered empty".into());
    }
    let request = |method: &str, url: String, body: Vec<u8>| {
        Request::new(method, url)
            .header("Content-Type", "application/json")
            .header("User-Agent", common::USER_AGENT)
            .header("Authorization", format!("GenieKey {api_key}"))
            .body(body)
    };
    if n.status == "resolved" {
        let close = serde_json::json!({"source": r.render("source", &cfg.source)?});
        let url = cfg.endpoint(&format!("v2/alerts/{alias}/close?identifierType=alias"));
        return Ok(vec![request("POST", url, json(&close))]);
    }
    let (message, _) =
        common::truncate_runes(&r.render("message", &cfg.message)?, MAX_MESSAGE_CHARS);
    let mut details: BTreeMap<String, String> = n.common_labels.iter().cloned().collect();
    for (k, v) in &cfg.details {
        details.insert(k.clone(), r.render(&format!("details.{k}"), v)?);
    }
    let mut responders = Vec::new();
    for (i, resp) in cfg.responders.iter().enumerate() {
        let body = ResponderBody {
            id: r.render(&format!("responders[{i}].id"), &resp.id)?,
            name: r.render(&format!("responders[{i}].name"), &resp.name)?,
            username: r.render(&format!("responders[{i}].username"), &resp.username)?,
            kind: r.render(&format!("responders[{i}].type"), &resp.kind)?,
        };
        if body.id.is_empty()
            && body.name.is_empty()
            && body.username.is_empty()
            && body.kind.is_empty()
        {
            continue;
        }
        if body.kind == "teams" {
            for team in common::split_list(&body.name, ',') {
                responders.push(ResponderBody {
                    id: String::new(),
                    name: team,
                    username: String::new(),
                    kind: "team".into(),
                });
            }
            continue;
        }
        responders.push(body);
    }
    let create = Create {
        alias: alias.clone(),
        message,
        description: r.render("description", &cfg.description)?,
        details,
        source: r.render("source", &cfg.source)?,
        responders,
        tags: common::split_list(&r.render("tags", &cfg.tags)?, ','),
        note: r.render("note", &cfg.note)?,
        priority: r.render("priority", &cfg.priority)?,
        entity: r.render("entity", &cfg.entity)?,
        actions: common::split_list(&r.render("actions", &cfg.actions)?, ','),
    };
    let mut out = vec![request("POST", cfg.endpoint("v2/alerts"), json(&create))];
    if cfg.update_alerts {
        let message = serde_json::json!({"message": create.message});
        let url = cfg.endpoint(&format!("v2/alerts/{alias}/message?identifierType=alias"));
        out.push(request("PUT", url, json(&message)));
        let description = serde_json::json!({"description": create.description});
        let url = cfg.endpoint(&format!(
            "v2/alerts/{alias}/description?identifierType=alias"
        ));
        out.push(request("PUT", url, json(&description)));
    }
    Ok(out)
}

/// The JSON body of a message: plain structs of strings and string maps always encode.
fn json<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).unwrap_or_default()
}

fn check_responders(cfg: &Config) -> Result<(), String> {
    for (i, r) in cfg.responders.iter().enumerate() {
        let at = format!("responders[{i}]");
        if r.id.is_empty() && r.name.is_empty() && r.username.is_empty() {
            return Err(format!("{at}: one of id, name or username is required"));
        }
        if r.kind.is_empty() {
            return Err(format!("{at}.type: is required"));
        }
        if !r.kind.contains("{{") && !RESPONDER_TYPES.contains(&r.kind.to_lowercase().as_str()) {
            return Err(format!(
                "{at}.type: {:?} is not one of team, teams, user, escalation, schedule",
                r.kind
            ));
        }
    }
    Ok(())
}

const SCHEMA: &str = r#"{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "title": "opsgenie",
  "type": "object",
  "additionalProperties": false,
  "required": ["api_key"],
  "properties": {
    "templates": {"type": "string", "description": "Template definitions from the top-level templates files; set by the host."},
    "api_key": {"type": "string", "minLength": 1, "description": "API key; secret."},
    "api_url": {"type": "string", "pattern": "^[Hh][Tt][Tt][Pp][Ss]?://", "default": "https://api.opsgenie.com/"},
    "message": {"type": "string"},
    "description": {"type": "string"},
    "source": {"type": "string"},
    "details": {"type": "object", "additionalProperties": {"type": "string"}},
    "entity": {"type": "string"},
    "responders": {"type": "array", "items": {"type": "object", "additionalProperties": false, "required": ["type"],
      "properties": {"id": {"type": "string"}, "name": {"type": "string"}, "username": {"type": "string"}, "type": {"type": "string"}}}},
    "actions": {"type": "string"},
    "tags": {"type": "string"},
    "note": {"type": "string"},
    "priority": {"type": "string"},
    "update_alerts": {"type": "boolean", "default": false},
    "send_resolved": {"type": "boolean", "default": true, "description": "Applied by the host."}
  }
}"#;

impl Notifier for Opsgenie {
    type Config = Config;

    fn info() -> Info {
        Info::new(
            "opsgenie",
            env!("CARGO_PKG_VERSION"),
            "Creates and closes Opsgenie alerts as Alertmanager's opsgenie_configs does \
             (alias = SHA-256 of the group key).",
        )
        .schema(SCHEMA)
    }

    fn check_config(cfg: &Config) -> Result<(), String> {
        if cfg.api_key.trim().is_empty() {
            return Err("api_key: must not be empty".into());
        }
        common::check_header_value("api_key", &cfg.api_key)?;
        common::check_url("api_url", &cfg.api_url)?;
        if cfg.api_url.contains(['?', '#']) {
            return Err("api_url: must not have a query or fragment".into());
        }
        check_responders(cfg)?;
        let templates = Templates::with_definitions(&cfg.definitions)?;
        for (name, text) in cfg.templates() {
            templates.check(&name, text)?;
        }
        Ok(())
    }

    fn send(cfg: &Config, notification: &Notification) -> Result<Delivery, DeliveryError> {
        let requests = requests(cfg, notification)
            .map_err(|e| DeliveryError::Permanent(format!("template {e}")))?;
        let action = if notification.status == "resolved" {
            "closed"
        } else {
            "created"
        };
        let detail = format!(
            "{action} alert {} ({} alerts)",
            common::group_key_hash(&notification.group_key),
            notification.alerts.len()
        );
        let mut last = None;
        for req in requests {
            last = Some(common::send(req, &detail)?.0);
        }
        last.ok_or_else(|| DeliveryError::Permanent("no request to send".into()))
    }
}

klaxon_sdk::export_notifier!(Opsgenie);

#[cfg(test)]
mod tests {
    use super::*;
    use klaxon_sdk::http::{HttpError, Response};
    use klaxon_sdk::testing;
    use serde_json::{Value, json};

    const GROUP_KEY: &str = "{}:{alertname=\"HighLatency\"}";

    fn notification(status: &str) -> Notification {
        testing::sample_notification(status)
    }

    fn deliver(
        config: &str,
        n: &Notification,
        response: Result<Response, HttpError>,
    ) -> (Result<Delivery, DeliveryError>, Vec<Request>) {
        testing::set_http_handler(move |_| response.clone());
        let result = testing::run_notifier::<Opsgenie>(config, n);
        (result, testing::take_http_requests())
    }

    const KEY: &str = r#"{"api_key":"0000-1111"}"#;

    #[test]
    fn create_matches_alertmanager() {
        let (result, sent) = deliver(KEY, &notification("firing"), Ok(Response::new(202, "")));
        let alias = common::group_key_hash(GROUP_KEY);
        assert_eq!(
            result.unwrap().detail,
            format!("HTTP 202: created alert {alias} (1 alerts)")
        );
        assert_eq!(sent.len(), 1);
        let req = &sent[0];
        assert_eq!(req.method, "POST");
        assert_eq!(req.url, "https://api.opsgenie.com/v2/alerts");
        assert_eq!(
            req.header_value("authorization"),
            Some("GenieKey 0000-1111")
        );
        let body: Value = serde_json::from_slice(&req.body).unwrap();
        assert_eq!(
            body,
            json!({
                "alias": alias,
                "message": "[FIRING:1] HighLatency (fraud-v2)",
                "description": "p99 above 250ms\nAlerts Firing:\nLabels:\n - alertname = HighLatency\n - model = fraud-v2\nAnnotations:\n - summary = p99 above 250ms\nSource: http://klaxon:9190/rules/high-latency\n\n",
                "details": {"alertname": "HighLatency", "model": "fraud-v2"},
                "source": "http://klaxon:9190/#/alerts?receiver=ml-oncall"
            })
        );
    }

    #[test]
    fn resolve_closes_by_alias() {
        let (_, sent) = deliver(KEY, &notification("resolved"), Ok(Response::new(202, "")));
        assert_eq!(sent.len(), 1);
        let alias = common::group_key_hash(GROUP_KEY);
        assert_eq!(sent[0].method, "POST");
        assert_eq!(
            sent[0].url,
            format!("https://api.opsgenie.com/v2/alerts/{alias}/close?identifierType=alias")
        );
        let body: Value = serde_json::from_slice(&sent[0].body).unwrap();
        assert_eq!(
            body,
            json!({"source": "http://klaxon:9190/#/alerts?receiver=ml-oncall"})
        );
    }

    #[test]
    fn configured_fields_and_updates() {
        let cfg = r#"{"api_key":"k","api_url":"https://api.eu.opsgenie.com","message":"{{ .CommonLabels.model }} slow",
            "description":"d","source":"klaxon","details":{"team":"ml","model":"{{ .CommonLabels.model | toUpper }}"},
            "entity":"e","note":"n","priority":"P2","tags":"ml, {{ .CommonLabels.model }},","actions":"restart,page",
            "responders":[{"name":"ml-oncall","type":"team"},{"username":"ana@example.com","type":"user"},
                          {"name":"a, b","type":"teams"}],
            "update_alerts":true}"#;
        let (result, sent) = deliver(cfg, &notification("firing"), Ok(Response::new(202, "")));
        assert!(result.is_ok());
        assert_eq!(sent.len(), 3);
        let alias = common::group_key_hash(GROUP_KEY);
        assert_eq!(sent[0].url, "https://api.eu.opsgenie.com/v2/alerts");
        let body: Value = serde_json::from_slice(&sent[0].body).unwrap();
        assert_eq!(
            body,
            json!({
                "alias": alias,
                "message": "fraud-v2 slow",
                "description": "d",
                "details": {"alertname": "HighLatency", "model": "FRAUD-V2", "team": "ml"},
                "source": "klaxon",
                "responders": [
                    {"name": "ml-oncall", "type": "team"},
                    {"username": "ana@example.com", "type": "user"},
                    {"name": "a", "type": "team"},
                    {"name": "b", "type": "team"}
                ],
                "tags": ["ml", "fraud-v2"],
                "note": "n",
                "priority": "P2",
                "entity": "e",
                "actions": ["restart", "page"]
            })
        );
        assert_eq!(sent[1].method, "PUT");
        assert_eq!(
            sent[1].url,
            format!("https://api.eu.opsgenie.com/v2/alerts/{alias}/message?identifierType=alias")
        );
        assert_eq!(
            serde_json::from_slice::<Value>(&sent[1].body).unwrap(),
            json!({"message": "fraud-v2 slow"})
        );
        assert_eq!(sent[2].method, "PUT");
        assert!(sent[2].url.ends_with("/description?identifierType=alias"));
        assert_eq!(
            serde_json::from_slice::<Value>(&sent[2].body).unwrap(),
            json!({"description": "d"})
        );
    }

    #[test]
    fn message_is_cut_at_130_characters() {
        let cfg = format!(r#"{{"api_key":"k","message":"{}"}}"#, "m".repeat(200));
        let (_, sent) = deliver(&cfg, &notification("firing"), Ok(Response::new(202, "")));
        let body: Value = serde_json::from_slice(&sent[0].body).unwrap();
        assert_eq!(body["message"].as_str().unwrap().chars().count(), 130);
    }

    #[test]
    fn outcomes() {
        let n = notification("firing");
        let (r, _) = deliver(
            KEY,
            &n,
            Ok(Response::new(429, "").header("Retry-After", "4")),
        );
        assert_eq!(
            r,
            Err(DeliveryError::Retryable {
                reason: "HTTP 429".into(),
                retry_after_ms: Some(4000)
            })
        );
        let (r, sent) = deliver(
            r#"{"api_key":"k","update_alerts":true}"#,
            &n,
            Ok(Response::new(
                422,
                r#"{"message":"Request body is not processable"}"#,
            )),
        );
        assert_eq!(
            r,
            Err(DeliveryError::Permanent(
                r#"HTTP 422: {"message":"Request body is not processable"}"#.into()
            ))
        );
        assert_eq!(sent.len(), 1, "the first failure stops the sequence");
        let (r, _) = deliver(KEY, &n, Err(HttpError::Connection("reset".into())));
        assert!(r.unwrap_err().is_retryable());
    }

    #[test]
    fn config_checks() {
        let check = testing::check_notifier_config::<Opsgenie>;
        assert!(check(KEY).is_ok());
        for (cfg, expected) in [
            (r#"{}"#, "missing field `api_key`"),
            (r#"{"api_key":""}"#, "api_key: must not be empty"),
            (
                r#"{"api_key":"secret\nX: y"}"#,
                "api_key: must not contain CR, LF or NUL",
            ),
            (
                r#"{"api_key_file":"/etc/og"}"#,
                "unknown field `api_key_file`",
            ),
            (
                r#"{"api_key":"secret","api_url":"api.opsgenie.com"}"#,
                "api_url: must start with http:// or https://",
            ),
            (
                r#"{"api_key":"k","responders":[{"type":"team"}]}"#,
                "responders[0]: one of id, name or username is required",
            ),
            (
                r#"{"api_key":"k","responders":[{"name":"x","type":"squad"}]}"#,
                "responders[0].type: \"squad\" is not one of",
            ),
            (
                r#"{"api_key":"k","tags":"{{ .Nope | bogus }}"}"#,
                "tags: function \"bogus\" not defined",
            ),
        ] {
            let err = check(cfg).unwrap_err();
            assert!(err.contains(expected), "{cfg}: {err}");
            assert!(!err.contains("secret"), "{err}");
        }
    }
}
