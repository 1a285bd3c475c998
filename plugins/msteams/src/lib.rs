//! `msteams`: posts each notification to a Microsoft Teams incoming webhook as the
//! `MessageCard` Alertmanager's `msteams_configs` posts (Alertmanager 0.26 and later),
//! coloured by status.
//!
//! The config uses Alertmanager's field names and defaults; text fields are
//! Alertmanager templates (see `klaxon_notify_common::template`).
//!
//! # Config
//!
//! ```json
//! {"webhook_url": "https://example.webhook.office.com/webhookb2/…", "title": "{{ .CommonLabels.alertname }}"}
//! ```
//!
//! | field | default | meaning |
//! |-------|---------|---------|
//! | `webhook_url` | required | a secret (never echoed) |
//! | `title` | `{{ template "msteams.default.title" . }}` (the subject) | |
//! | `summary` | `{{ template "msteams.default.summary" . }}` (the subject) | |
//! | `text` | `{{ template "msteams.default.text" . }}` (markdown list of firing and resolved alerts) | |
//! | `send_resolved` | `true` | accepted for compatibility and ignored here: the host applies it |
//!
//! Unknown fields and Alertmanager's `*_file` variants (plugins have no files) are
//! errors; so is a template that does not parse or calls an unknown function.
//!
//! # Request
//!
//! `POST webhook_url` with `Content-Type: application/json`, `User-Agent: Klaxon/0.1`
//! and:
//!
//! ```json
//! {"@context":"http://schema.org/extensions","type":"MessageCard",
//!  "title":"[FIRING:1] HighLatency (fraud-v2)","summary":"[FIRING:1] HighLatency (fraud-v2)",
//!  "text":"…","themeColor":"8C1A1A"}
//! ```
//!
//! `themeColor` is `8C1A1A` (red) while firing, `2DC72D` (green) once resolved.
//!
//! # Outcome
//!
//! As every stock notifier (`klaxon_notify_common::send`): 2xx delivered; 429 and 5xx
//! retryable (honouring `Retry-After` in seconds); other statuses permanent with the
//! status and the first 200 bytes of the body.

use klaxon_notify_common::{self as common, Renderer, Templates};
use klaxon_sdk::prelude::*;
use serde::{Deserialize, Serialize};

/// The Microsoft Teams notifier.
pub struct MsTeams;

/// Card colours, as Alertmanager's.
const COLOR_FIRING: &str = "8C1A1A";
const COLOR_RESOLVED: &str = "2DC72D";
const COLOR_UNKNOWN: &str = "808080";

/// Parsed config; see the crate docs. Not `Debug`: `webhook_url` is a secret.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `{{ define }}`s from the config's top-level `templates:` files, set by
    /// the host; usable from every templated field.
    #[serde(default, rename = "templates")]
    pub definitions: String,
    /// The incoming webhook's URL.
    pub webhook_url: String,
    /// Card title.
    #[serde(default = "default_title")]
    pub title: String,
    /// Card summary (notification previews).
    #[serde(default = "default_summary")]
    pub summary: String,
    /// Card text (markdown).
    #[serde(default = "default_text")]
    pub text: String,
    /// Accepted for Alertmanager compatibility; the host applies it.
    #[serde(default)]
    pub send_resolved: Option<bool>,
}

fn default_title() -> String {
    r#"{{ template "msteams.default.title" . }}"#.to_owned()
}
fn default_summary() -> String {
    r#"{{ template "msteams.default.summary" . }}"#.to_owned()
}
fn default_text() -> String {
    r#"{{ template "msteams.default.text" . }}"#.to_owned()
}

/// Alertmanager's Teams card, field for field and in its order.
#[derive(Debug, Serialize)]
struct Card {
    #[serde(rename = "@context")]
    context: &'static str,
    #[serde(rename = "type")]
    kind: &'static str,
    title: String,
    summary: String,
    text: String,
    #[serde(rename = "themeColor")]
    theme_color: &'static str,
}

fn card(cfg: &Config, n: &Notification) -> Result<Card, String> {
    let r = Renderer::with_templates(n, Templates::with_definitions(&cfg.definitions)?);
    Ok(Card {
        context: "http://schema.org/extensions",
        kind: "MessageCard",
        title: r.render("title", &cfg.title)?,
        summary: r.render("summary", &cfg.summary)?,
        text: r.render("text", &cfg.text)?,
        theme_color: match n.status.as_str() {
            "firing" => COLOR_FIRING,
            "resolved" => COLOR_RESOLVED,
            _ => COLOR_UNKNOWN,
        },
    })
}

const SCHEMA: &str = r#"{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "title": "msteams",
  "type": "object",
  "additionalProperties": false,
  "required": ["webhook_url"],
  "properties": {
    "templates": {"type": "string", "description": "Template definitions from the top-level templates files; set by the host."},
    "webhook_url": {"type": "string", "pattern": "^[Hh][Tt][Tt][Pp][Ss]?://", "description": "Incoming webhook URL; secret."},
    "title": {"type": "string"},
    "summary": {"type": "string"},
    "text": {"type": "string"},
    "send_resolved": {"type": "boolean", "default": true, "description": "Applied by the host."}
  }
}"#;

impl Notifier for MsTeams {
    type Config = Config;

    fn info() -> Info {
        Info::new(
            "msteams",
            env!("CARGO_PKG_VERSION"),
            "Posts each notification to a Microsoft Teams incoming webhook as the MessageCard \
             Alertmanager's msteams_configs posts, coloured by status.",
        )
        .schema(SCHEMA)
    }

    fn check_config(cfg: &Config) -> Result<(), String> {
        common::check_url("webhook_url", &cfg.webhook_url)?;
        let templates = Templates::with_definitions(&cfg.definitions)?;
        for (name, text) in [
            ("title", &cfg.title),
            ("summary", &cfg.summary),
            ("text", &cfg.text),
        ] {
            templates.check(name, text)?;
        }
        Ok(())
    }

    fn send(cfg: &Config, notification: &Notification) -> Result<Delivery, DeliveryError> {
        let card = card(cfg, notification)
            .map_err(|e| DeliveryError::Permanent(format!("template {e}")))?;
        let body = serde_json::to_vec(&card)
            .map_err(|e| DeliveryError::Permanent(format!("cannot encode payload: {e}")))?;
        let detail = format!("delivered {} alerts", notification.alerts.len());
        common::send(common::post_json(&cfg.webhook_url, body), &detail).map(|(d, _)| d)
    }
}

klaxon_sdk::export_notifier!(MsTeams);

#[cfg(test)]
mod tests {
    use super::*;
    use klaxon_sdk::http::{HttpError, Request, Response};
    use klaxon_sdk::testing;
    use serde_json::{Value, json};

    fn notification(status: &str) -> Notification {
        testing::sample_notification(status)
    }

    fn deliver(
        config: &str,
        n: &Notification,
        response: Result<Response, HttpError>,
    ) -> (Result<Delivery, DeliveryError>, Request) {
        testing::deliver_once::<MsTeams>(config, n, response)
    }

    const URL: &str = r#"{"webhook_url":"https://example.webhook.office.com/webhookb2/secret"}"#;

    #[test]
    fn posts_alertmanagers_message_card() {
        let (result, req) = deliver(URL, &notification("firing"), Ok(Response::new(200, "1")));
        assert_eq!(result.unwrap().detail, "HTTP 200: delivered 1 alerts");
        assert_eq!(
            req.url,
            "https://example.webhook.office.com/webhookb2/secret"
        );
        let body: Value = serde_json::from_slice(&req.body).unwrap();
        assert_eq!(
            body,
            json!({
                "@context": "http://schema.org/extensions",
                "type": "MessageCard",
                "title": "[FIRING:1] HighLatency (fraud-v2)",
                "summary": "[FIRING:1] HighLatency (fraud-v2)",
                "text": "\n\n# Alerts Firing:\n\nLabels:\n  - alertname = HighLatency\n  - model = fraud-v2\n\nAnnotations:\n  - summary = p99 above 250ms\n\nSource: http://klaxon:9190/rules/high-latency\n\n\n\n\n",
                "themeColor": "8C1A1A"
            })
        );
        let text = String::from_utf8(req.body).unwrap();
        assert!(text.starts_with(
            r#"{"@context":"http://schema.org/extensions","type":"MessageCard","title":"#
        ));
        assert!(text.ends_with(r#""themeColor":"8C1A1A"}"#));
    }

    #[test]
    fn resolved_is_green() {
        let cfg = r#"{"webhook_url":"https://h.example/x","title":"{{ .Status | title }}","summary":"s","text":"t"}"#;
        let (_, req) = deliver(cfg, &notification("resolved"), Ok(Response::new(200, "1")));
        let body: Value = serde_json::from_slice(&req.body).unwrap();
        assert_eq!(body["themeColor"], "2DC72D");
        assert_eq!(body["title"], "Resolved");
        assert_eq!(body["summary"], "s");
        assert_eq!(body["text"], "t");
    }

    #[test]
    fn outcomes() {
        let n = notification("firing");
        let (r, _) = deliver(
            URL,
            &n,
            Ok(Response::new(429, "").header("Retry-After", "9")),
        );
        assert_eq!(
            r,
            Err(DeliveryError::Retryable {
                reason: "HTTP 429".into(),
                retry_after_ms: Some(9000)
            })
        );
        let (r, _) = deliver(
            URL,
            &n,
            Ok(Response::new(
                400,
                "Bad payload received by generic incoming webhook.",
            )),
        );
        assert_eq!(
            r,
            Err(DeliveryError::Permanent(
                "HTTP 400: Bad payload received by generic incoming webhook.".into()
            ))
        );
    }

    #[test]
    fn config_checks() {
        let check = testing::check_notifier_config::<MsTeams>;
        assert!(check(URL).is_ok());
        for (cfg, expected) in [
            (r#"{}"#, "missing field `webhook_url`"),
            (
                r#"{"webhook_url_file":"/etc/teams"}"#,
                "unknown field `webhook_url_file`",
            ),
            (
                r#"{"webhook_url":"ftp://secret"}"#,
                "webhook_url: must start with http:// or https://",
            ),
            (r#"{"webhook_url":"http://h","text":"{{ if }}"}"#, "text: "),
            (
                r#"{"webhook_url":"http://h","color":"red"}"#,
                "unknown field `color`",
            ),
        ] {
            let err = check(cfg).unwrap_err();
            assert!(err.contains(expected), "{cfg}: {err}");
            assert!(!err.contains("secret"), "{err}");
        }
    }
}
