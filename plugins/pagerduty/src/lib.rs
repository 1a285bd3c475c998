//! `pagerduty`: sends each notification to PagerDuty's Events API v2 as Alertmanager's
//! `pagerduty_configs` does: `trigger` while the group fires, `resolve` once it is
//! resolved, both with the same `dedup_key` so the resolve closes the incident.
//!
//! The config uses Alertmanager's field names and defaults; text fields are
//! Alertmanager templates (see `klaxon_notify_common::template`).
//!
//! # Config
//!
//! ```json
//! {
//!   "routing_key": "R0UT1NGKEY",
//!   "severity": "critical",
//!   "details": {"model": "{{ .CommonLabels.model }}"},
//!   "links": [{"href": "https://runbooks.example/{{ .CommonLabels.alertname }}", "text": "runbook"}]
//! }
//! ```
//!
//! | field | default | meaning |
//! |-------|---------|---------|
//! | `routing_key` | required | integration key (template); a secret (never echoed) |
//! | `url` | `https://events.pagerduty.com/v2/enqueue` (or `global.pagerduty_url`) | |
//! | `client` | `{{ template "pagerduty.default.client" . }}` (`Alertmanager`) | |
//! | `client_url` | `{{ template "pagerduty.default.clientURL" . }}` (the alerts page) | |
//! | `description` | `{{ template "pagerduty.default.description" . }}` (the subject) | `payload.summary`, cut at 1024 characters |
//! | `severity` | `error` | `critical`, `error`, `warning` or `info` (template) |
//! | `source` | the value of `client` | `payload.source` |
//! | `class`, `component`, `group` | none | `payload.*` |
//! | `details` | `firing`, `resolved`, `num_firing`, `num_resolved` | `payload.custom_details`; entries given here are added to (or replace) those four |
//! | `links` | the alerts' `runbook_url` and `dashboard_url` annotations | `[{"href", "text"}]`; entries with an empty `href` are dropped |
//! | `images` | none | `[{"src", "alt", "href"}]`; entries with an empty `src` are dropped |
//! | `send_resolved` | `true` | accepted for compatibility and ignored here: the host applies it |
//!
//! The four default details are Alertmanager's: `firing` and `resolved` list the alerts
//! with `__text_alert_list`, `num_firing` and `num_resolved` count them. Default links
//! (a Klaxon addition, used only when `links` is not set) are one `Runbook` and one
//! `Dashboard` link per distinct annotation value, in alert order.
//!
//! Unknown fields, `service_key` (Events API v1 is not supported) and Alertmanager's
//! `*_file` variants (plugins have no files) are errors; so is a template that does not
//! parse or calls an unknown function.
//!
//! # Request
//!
//! `POST url` with `Content-Type: application/json`, `User-Agent: Klaxon/0.1` and:
//!
//! ```json
//! {"routing_key":"…","dedup_key":"<sha256 hex of the group key>","event_action":"trigger",
//!  "payload":{"summary":"[FIRING:1] HighLatency (fraud-v2)","source":"Alertmanager",
//!    "severity":"error","custom_details":{"firing":"Labels:\n…","num_firing":"1",
//!    "num_resolved":"0","resolved":""}},
//!  "client":"Alertmanager","client_url":"http://klaxon:9190/#/alerts?receiver=ml",
//!  "links":[{"href":"https://runbooks.example/high-latency","text":"Runbook"}]}
//! ```
//!
//! # Outcome
//!
//! As every stock notifier (`klaxon_notify_common::send`): 2xx (PagerDuty answers 202)
//! delivered; 429 and 5xx retryable (honouring `Retry-After` in seconds); other
//! statuses (400: invalid event) permanent with the status and the first 200 bytes of
//! the body.

use std::collections::BTreeMap;

use klaxon_notify_common::{self as common, Renderer, Templates};
use klaxon_sdk::prelude::*;
use serde::{Deserialize, Serialize};

/// The PagerDuty notifier.
pub struct PagerDuty;

/// PagerDuty's limit on `payload.summary`.
const MAX_SUMMARY_CHARS: usize = 1024;

/// Events API v2 endpoint.
pub const DEFAULT_URL: &str = "https://events.pagerduty.com/v2/enqueue";

/// Parsed config; see the crate docs. Not `Debug`: `routing_key` is a secret.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `{{ define }}`s from the config's top-level `templates:` files, set by
    /// the host; usable from every templated field.
    #[serde(default, rename = "templates")]
    pub definitions: String,
    /// Integration key.
    pub routing_key: String,
    /// Events API v2 endpoint.
    #[serde(default = "default_url")]
    pub url: String,
    /// Name of the sender.
    #[serde(default = "default_client")]
    pub client: String,
    /// Link back to the sender.
    #[serde(default = "default_client_url")]
    pub client_url: String,
    /// The incident's summary.
    #[serde(default = "default_description")]
    pub description: String,
    /// `critical`, `error`, `warning` or `info`.
    #[serde(default = "default_severity")]
    pub severity: String,
    /// Where the problem is; defaults to `client`.
    #[serde(default)]
    pub source: Option<String>,
    /// Class of the problem.
    #[serde(default)]
    pub class: String,
    /// Component at fault.
    #[serde(default)]
    pub component: String,
    /// Logical group of components.
    #[serde(default)]
    pub group: String,
    /// Custom details, added to Alertmanager's four.
    #[serde(default)]
    pub details: BTreeMap<String, String>,
    /// Links in the incident; `None`: runbook and dashboard annotations.
    #[serde(default)]
    pub links: Option<Vec<Link>>,
    /// Images in the incident.
    #[serde(default)]
    pub images: Vec<Image>,
    /// Events API v1: accepted only to be refused with a clear message.
    #[serde(default)]
    pub service_key: Option<serde::de::IgnoredAny>,
    /// Accepted for Alertmanager compatibility; the host applies it.
    #[serde(default)]
    pub send_resolved: Option<bool>,
}

fn default_url() -> String {
    DEFAULT_URL.to_owned()
}
fn default_client() -> String {
    r#"{{ template "pagerduty.default.client" . }}"#.to_owned()
}
fn default_client_url() -> String {
    r#"{{ template "pagerduty.default.clientURL" . }}"#.to_owned()
}
fn default_description() -> String {
    r#"{{ template "pagerduty.default.description" .}}"#.to_owned()
}
fn default_severity() -> String {
    "error".to_owned()
}

/// Alertmanager's `DefaultPagerdutyDetails`.
const DEFAULT_DETAILS: [(&str, &str); 4] = [
    (
        "firing",
        r#"{{ template "__text_alert_list" .Alerts.Firing }}"#,
    ),
    (
        "resolved",
        r#"{{ template "__text_alert_list" .Alerts.Resolved }}"#,
    ),
    ("num_firing", "{{ .Alerts.Firing | len }}"),
    ("num_resolved", "{{ .Alerts.Resolved | len }}"),
];

/// A link in the incident.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Link {
    /// Target (template).
    #[serde(default)]
    pub href: String,
    /// Text (template).
    #[serde(default)]
    pub text: String,
}

/// An image in the incident.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Image {
    /// Image URL (template).
    #[serde(default)]
    pub src: String,
    /// Alternative text (template).
    #[serde(default)]
    pub alt: String,
    /// Link of the image (template).
    #[serde(default)]
    pub href: String,
}

impl Config {
    /// The effective details: Alertmanager's four, then the configured ones.
    fn details(&self) -> BTreeMap<String, String> {
        let mut all: BTreeMap<String, String> = DEFAULT_DETAILS
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        all.extend(self.details.clone());
        all
    }

    fn source(&self) -> &str {
        self.source.as_deref().unwrap_or(&self.client)
    }

    /// Every templated field as (name, text).
    fn templates(&self) -> Vec<(String, String)> {
        let mut all: Vec<(String, String)> = [
            ("routing_key", &self.routing_key),
            ("client", &self.client),
            ("client_url", &self.client_url),
            ("description", &self.description),
            ("severity", &self.severity),
            ("class", &self.class),
            ("component", &self.component),
            ("group", &self.group),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.clone()))
        .collect();
        all.push(("source".into(), self.source().to_owned()));
        for (k, v) in &self.details {
            all.push((format!("details.{k}"), v.clone()));
        }
        for (i, l) in self.links.iter().flatten().enumerate() {
            all.push((format!("links[{i}].href"), l.href.clone()));
            all.push((format!("links[{i}].text"), l.text.clone()));
        }
        for (i, im) in self.images.iter().enumerate() {
            all.push((format!("images[{i}].src"), im.src.clone()));
            all.push((format!("images[{i}].alt"), im.alt.clone()));
            all.push((format!("images[{i}].href"), im.href.clone()));
        }
        all
    }
}

/// Alertmanager's Events API v2 message, field for field and in its order.
#[derive(Debug, Serialize)]
struct Message {
    routing_key: String,
    dedup_key: String,
    event_action: &'static str,
    payload: Payload,
    #[serde(skip_serializing_if = "String::is_empty")]
    client: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    client_url: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    images: Vec<ImageBody>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    links: Vec<LinkBody>,
}

#[derive(Debug, Serialize)]
struct Payload {
    summary: String,
    source: String,
    severity: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    class: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    component: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    group: String,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    custom_details: BTreeMap<String, String>,
}

#[derive(Debug, Serialize)]
struct LinkBody {
    href: String,
    text: String,
}

#[derive(Debug, Serialize)]
struct ImageBody {
    src: String,
    alt: String,
    href: String,
}

/// `Runbook` and `Dashboard` links from the alerts' annotations, each value once.
fn annotation_links(n: &Notification) -> Vec<LinkBody> {
    let mut links: Vec<LinkBody> = Vec::new();
    for (annotation, text) in [("runbook_url", "Runbook"), ("dashboard_url", "Dashboard")] {
        for alert in &n.alerts {
            if let Some(href) = alert.annotation(annotation).filter(|h| !h.is_empty())
                && !links.iter().any(|l| l.href == href)
            {
                links.push(LinkBody {
                    href: href.to_owned(),
                    text: text.to_owned(),
                });
            }
        }
    }
    links
}

/// The event for `n`; a template error names the field.
fn message(cfg: &Config, n: &Notification) -> Result<Message, String> {
    let r = Renderer::with_templates(n, Templates::with_definitions(&cfg.definitions)?);
    let event_action = if n.status == "resolved" {
        "resolve"
    } else {
        "trigger"
    };
    let (summary, _) = common::truncate_runes(
        &r.render("description", &cfg.description)?,
        MAX_SUMMARY_CHARS,
    );
    let mut custom_details = BTreeMap::new();
    for (k, v) in cfg.details() {
        let value = r.render(&format!("details.{k}"), &v)?;
        custom_details.insert(k, value);
    }
    let links = match &cfg.links {
        None => annotation_links(n),
        Some(links) => {
            let mut out = Vec::with_capacity(links.len());
            for (i, l) in links.iter().enumerate() {
                let link = LinkBody {
                    href: r.render(&format!("links[{i}].href"), &l.href)?,
                    text: r.render(&format!("links[{i}].text"), &l.text)?,
                };
                if !link.href.is_empty() {
                    out.push(link);
                }
            }
            out
        }
    };
    let mut images = Vec::with_capacity(cfg.images.len());
    for (i, im) in cfg.images.iter().enumerate() {
        let image = ImageBody {
            src: r.render(&format!("images[{i}].src"), &im.src)?,
            alt: r.render(&format!("images[{i}].alt"), &im.alt)?,
            href: r.render(&format!("images[{i}].href"), &im.href)?,
        };
        if !image.src.is_empty() {
            images.push(image);
        }
    }
    Ok(Message {
        routing_key: r.render("routing_key", &cfg.routing_key)?,
        dedup_key: common::group_key_hash(&n.group_key),
        event_action,
        payload: Payload {
            summary,
            source: r.render("source", cfg.source())?,
            severity: r.render("severity", &cfg.severity)?,
            class: r.render("class", &cfg.class)?,
            component: r.render("component", &cfg.component)?,
            group: r.render("group", &cfg.group)?,
            custom_details,
        },
        client: r.render("client", &cfg.client)?,
        client_url: r.render("client_url", &cfg.client_url)?,
        images,
        links,
    })
}

const SCHEMA: &str = r#"{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "title": "pagerduty",
  "type": "object",
  "additionalProperties": false,
  "required": ["routing_key"],
  "properties": {
    "templates": {"type": "string", "description": "Template definitions from the top-level templates files; set by the host."},
    "routing_key": {"type": "string", "minLength": 1, "description": "Integration key; secret."},
    "url": {"type": "string", "pattern": "^[Hh][Tt][Tt][Pp][Ss]?://", "default": "https://events.pagerduty.com/v2/enqueue"},
    "client": {"type": "string"},
    "client_url": {"type": "string"},
    "description": {"type": "string"},
    "severity": {"type": "string", "default": "error"},
    "source": {"type": "string"},
    "class": {"type": "string"},
    "component": {"type": "string"},
    "group": {"type": "string"},
    "details": {"type": "object", "additionalProperties": {"type": "string"}},
    "links": {"type": "array", "items": {"type": "object", "additionalProperties": false,
      "properties": {"href": {"type": "string"}, "text": {"type": "string"}}}},
    "images": {"type": "array", "items": {"type": "object", "additionalProperties": false,
      "properties": {"src": {"type": "string"}, "alt": {"type": "string"}, "href": {"type": "string"}}}},
    "send_resolved": {"type": "boolean", "default": true, "description": "Applied by the host."}
  }
}"#;

impl Notifier for PagerDuty {
    type Config = Config;

    fn info() -> Info {
        Info::new(
            "pagerduty",
            env!("CARGO_PKG_VERSION"),
            "Triggers and resolves PagerDuty incidents through the Events API v2 as \
             Alertmanager's pagerduty_configs does (dedup_key = SHA-256 of the group key).",
        )
        .schema(SCHEMA)
    }

    fn check_config(cfg: &Config) -> Result<(), String> {
        if cfg.service_key.is_some() {
            return Err(
                "service_key: PagerDuty Events API v1 is not supported, use routing_key".into(),
            );
        }
        if cfg.routing_key.trim().is_empty() {
            return Err("routing_key: must not be empty".into());
        }
        common::check_url("url", &cfg.url)?;
        let templates = Templates::with_definitions(&cfg.definitions)?;
        for (name, text) in cfg.templates() {
            templates.check(&name, &text)?;
        }
        Ok(())
    }

    fn send(cfg: &Config, notification: &Notification) -> Result<Delivery, DeliveryError> {
        let message = message(cfg, notification)
            .map_err(|e| DeliveryError::Permanent(format!("template {e}")))?;
        if message.routing_key.is_empty() {
            return Err(DeliveryError::Permanent(
                "routing_key: rendered empty".into(),
            ));
        }
        let detail = format!(
            "{} {} alerts, dedup_key {}",
            message.event_action,
            notification.alerts.len(),
            message.dedup_key
        );
        let body = serde_json::to_vec(&message)
            .map_err(|e| DeliveryError::Permanent(format!("cannot encode payload: {e}")))?;
        common::send(common::post_json(&cfg.url, body), &detail).map(|(d, _)| d)
    }
}

klaxon_sdk::export_notifier!(PagerDuty);

#[cfg(test)]
mod tests {
    use super::*;
    use klaxon_sdk::http::{HttpError, Request, Response};
    use klaxon_sdk::testing::{self, pairs};
    use serde_json::{Value, json};

    const GROUP_KEY: &str = "{}:{alertname=\"HighLatency\"}";

    fn notification(status: &str) -> Notification {
        let mut n = testing::sample_notification(status);
        n.alerts[0].annotations = pairs(&[
            ("runbook_url", "https://runbooks.example/high-latency"),
            ("summary", "p99 above 250ms"),
        ]);
        n
    }

    fn deliver(
        config: &str,
        n: &Notification,
        response: Result<Response, HttpError>,
    ) -> (Result<Delivery, DeliveryError>, Request) {
        testing::deliver_once::<PagerDuty>(config, n, response)
    }

    const KEY: &str = r#"{"routing_key":"R0UT1NG"}"#;

    #[test]
    fn trigger_matches_alertmanager() {
        let accepted = Response::new(202, r#"{"status":"success"}"#);
        let (result, req) = deliver(KEY, &notification("firing"), Ok(accepted));
        let dedup = common::group_key_hash(GROUP_KEY);
        assert_eq!(
            result.unwrap().detail,
            format!("HTTP 202: trigger 1 alerts, dedup_key {dedup}")
        );
        assert_eq!(req.url, DEFAULT_URL);
        let body: Value = serde_json::from_slice(&req.body).unwrap();
        assert_eq!(
            body,
            json!({
                "routing_key": "R0UT1NG",
                "dedup_key": dedup,
                "event_action": "trigger",
                "payload": {
                    "summary": "[FIRING:1] HighLatency (fraud-v2)",
                    "source": "Alertmanager",
                    "severity": "error",
                    "custom_details": {
                        "firing": "Labels:\n - alertname = HighLatency\n - model = fraud-v2\nAnnotations:\n - runbook_url = https://runbooks.example/high-latency\n - summary = p99 above 250ms\nSource: http://klaxon:9190/rules/high-latency\n",
                        "resolved": "",
                        "num_firing": "1",
                        "num_resolved": "0"
                    }
                },
                "client": "Alertmanager",
                "client_url": "http://klaxon:9190/#/alerts?receiver=ml-oncall",
                "links": [{"href": "https://runbooks.example/high-latency", "text": "Runbook"}]
            })
        );
        let text = String::from_utf8(req.body).unwrap();
        assert!(text.starts_with(r#"{"routing_key":"R0UT1NG","dedup_key":""#));
    }

    #[test]
    fn resolve_uses_the_same_dedup_key() {
        let (_, trigger) = deliver(KEY, &notification("firing"), Ok(Response::new(202, "")));
        let (_, resolve) = deliver(KEY, &notification("resolved"), Ok(Response::new(202, "")));
        let trigger: Value = serde_json::from_slice(&trigger.body).unwrap();
        let resolve: Value = serde_json::from_slice(&resolve.body).unwrap();
        assert_eq!(resolve["event_action"], "resolve");
        assert_eq!(resolve["dedup_key"], trigger["dedup_key"]);
        assert_eq!(
            resolve["payload"]["summary"],
            "[RESOLVED] HighLatency (fraud-v2)"
        );
        assert_eq!(resolve["payload"]["custom_details"]["num_resolved"], "1");
    }

    #[test]
    fn configured_fields() {
        let cfg = r#"{"routing_key":"k","url":"http://pd.example/enqueue","severity":"critical",
            "client":"klaxon","class":"latency","component":"{{ .CommonLabels.model }}","group":"ml",
            "details":{"model":"{{ .CommonLabels.model }}","num_firing":"many"},
            "links":[{"href":"https://d.example/{{ .CommonLabels.model }}","text":"dash"},{"href":"","text":"dropped"}],
            "images":[{"src":"https://i.example/p.png","alt":"plot","href":""}]}"#;
        let (_, req) = deliver(cfg, &notification("firing"), Ok(Response::new(202, "")));
        assert_eq!(req.url, "http://pd.example/enqueue");
        let body: Value = serde_json::from_slice(&req.body).unwrap();
        let p = &body["payload"];
        assert_eq!(p["severity"], "critical");
        assert_eq!(p["source"], "klaxon", "source defaults to client");
        assert_eq!(p["class"], "latency");
        assert_eq!(p["component"], "fraud-v2");
        assert_eq!(p["group"], "ml");
        assert_eq!(p["custom_details"]["model"], "fraud-v2");
        assert_eq!(p["custom_details"]["num_firing"], "many");
        assert_eq!(p["custom_details"]["num_resolved"], "0");
        assert_eq!(body["client"], "klaxon");
        assert_eq!(
            body["links"],
            json!([{"href": "https://d.example/fraud-v2", "text": "dash"}])
        );
        assert_eq!(
            body["images"],
            json!([{"src": "https://i.example/p.png", "alt": "plot", "href": ""}])
        );
    }

    #[test]
    fn summary_is_cut_at_1024_characters() {
        let cfg = format!(
            r#"{{"routing_key":"k","description":"{}"}}"#,
            "x".repeat(2000)
        );
        let (_, req) = deliver(&cfg, &notification("firing"), Ok(Response::new(202, "")));
        let body: Value = serde_json::from_slice(&req.body).unwrap();
        let summary = body["payload"]["summary"].as_str().unwrap();
        assert_eq!(summary.chars().count(), 1024);
        assert!(summary.ends_with('…'));
    }

    #[test]
    fn outcomes() {
        let n = notification("firing");
        let (r, _) = deliver(
            KEY,
            &n,
            Ok(Response::new(429, "").header("Retry-After", "2")),
        );
        assert_eq!(
            r,
            Err(DeliveryError::Retryable {
                reason: "HTTP 429".into(),
                retry_after_ms: Some(2000)
            })
        );
        let (r, _) = deliver(
            KEY,
            &n,
            Ok(Response::new(
                400,
                r#"{"status":"invalid event","message":"Event object is invalid"}"#,
            )),
        );
        assert_eq!(
            r,
            Err(DeliveryError::Permanent(
                r#"HTTP 400: {"status":"invalid event","message":"Event object is invalid"}"#
                    .into()
            ))
        );
        let (r, _) = deliver(KEY, &n, Ok(Response::new(502, "")));
        assert!(r.unwrap_err().is_retryable());
    }

    #[test]
    fn config_checks() {
        let check = testing::check_notifier_config::<PagerDuty>;
        assert!(check(KEY).is_ok());
        for (cfg, expected) in [
            (r#"{}"#, "missing field `routing_key`"),
            (r#"{"routing_key":" "}"#, "routing_key: must not be empty"),
            (
                r#"{"routing_key":"k","service_key":"secret-v1"}"#,
                "service_key: PagerDuty Events API v1 is not supported",
            ),
            (
                r#"{"routing_key_file":"/etc/pd"}"#,
                "unknown field `routing_key_file`",
            ),
            (
                r#"{"routing_key":"k","url":"events.pagerduty.com"}"#,
                "url: must start with http:// or https://",
            ),
            (
                r#"{"routing_key":"k","details":{"x":"{{ humanize 1 }}"}}"#,
                "details.x: function \"humanize\" not defined",
            ),
            (
                r#"{"routing_key":"k","links":[{"href":"x","url":"y"}]}"#,
                "unknown field `url`",
            ),
        ] {
            let err = check(cfg).unwrap_err();
            assert!(err.contains(expected), "{cfg}: {err}");
            assert!(!err.contains("secret"), "{err}");
        }
    }
}
