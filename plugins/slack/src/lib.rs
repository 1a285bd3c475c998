//! `slack`: posts each notification to a Slack incoming webhook (or `chat.postMessage`)
//! as the one-attachment message Alertmanager's `slack_configs` posts.
//!
//! The config uses Alertmanager's field names and defaults, and the text fields are
//! Alertmanager templates (see `klaxon_notify_common::template`).
//!
//! # Config
//!
//! ```json
//! {
//!   "api_url": "https://hooks.slack.com/services/T000/B000/XXXX",
//!   "channel": "#ml-alerts",
//!   "text": "{{ range .Alerts }}{{ .Annotations.summary }}\n{{ end }}",
//!   "fields": [{"title": "model", "value": "{{ .CommonLabels.model }}", "short": true}]
//! }
//! ```
//!
//! | field | default | meaning |
//! |-------|---------|---------|
//! | `api_url` | required (the host fills in `global.slack_api_url`) | webhook URL; a secret (never echoed) |
//! | `channel` | none | channel or user to post to |
//! | `username` | `{{ template "slack.default.username" . }}` (`Alertmanager`) | |
//! | `color` | `{{ if eq .Status "firing" }}danger{{ else }}good{{ end }}` | attachment colour |
//! | `title` | `{{ template "slack.default.title" . }}` (`[FIRING:1] HighLatency (…)`) | cut at 1024 characters |
//! | `title_link` | `{{ template "slack.default.titlelink" . }}` (the alerts page) | |
//! | `pretext`, `text`, `footer`, `callback_id` | `{{ template "slack.default.<name>" . }}` (empty) | |
//! | `fallback` | `{{ template "slack.default.fallback" . }}` (title \| link) | |
//! | `icon_emoji`, `icon_url` | `{{ template "slack.default.icon…" . }}` (empty) | |
//! | `image_url`, `thumb_url` | none | |
//! | `fields` | none | `[{"title", "value", "short"}]`; title and value are templates |
//! | `short_fields` | `false` | `short` of fields that do not set it |
//! | `link_names` | `false` | |
//! | `mrkdwn_in` | `["fallback", "pretext", "text"]` | |
//! | `send_resolved` | `false` | accepted for compatibility and ignored here: the host applies it |
//!
//! Unknown fields, `actions` (Slack message buttons: not supported) and Alertmanager's
//! `*_file` variants (plugins have no files) are errors; so is a template that does
//! not parse or calls an unknown function.
//!
//! # Request
//!
//! `POST api_url` with `Content-Type: application/json`, `User-Agent: Klaxon/0.1` and,
//! empty optional fields left out as Alertmanager does:
//!
//! ```json
//! {"channel":"#ml-alerts","username":"Alertmanager","attachments":[{
//!   "title":"[FIRING:1] HighLatency (fraud-v2)","title_link":"http://klaxon:9190/#/alerts?receiver=ml",
//!   "text":"","fallback":"[FIRING:1] HighLatency (fraud-v2) | http://…","callback_id":"",
//!   "footer":"","color":"danger","mrkdwn_in":["fallback","pretext","text"]}]}
//! ```
//!
//! # Outcome
//!
//! As every stock notifier (`klaxon_notify_common::send`): 2xx delivered; 429 and 5xx
//! retryable (honouring `Retry-After` in seconds); other statuses permanent with the
//! status and the first 200 bytes of the body. Slack also reports some errors with a
//! 200: a JSON body with `"ok": false`, or a text body other than `ok`, is a permanent
//! failure, as in Alertmanager.

use klaxon_notify_common::{self as common, Renderer, Templates};
use klaxon_sdk::prelude::*;
use serde::{Deserialize, Serialize};

/// The Slack notifier.
pub struct Slack;

/// Alertmanager's `maxTitleLenRunes`.
const MAX_TITLE_CHARS: usize = 1024;

fn default_template(name: &str) -> String {
    format!("{{{{ template \"slack.default.{name}\" . }}}}")
}

/// Parsed config; see the crate docs. Not `Debug`: `api_url` is a secret.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `{{ define }}`s from the config's top-level `templates:` files, set by
    /// the host; usable from every templated field.
    #[serde(default, rename = "templates")]
    pub definitions: String,
    /// The webhook URL.
    pub api_url: String,
    /// Channel or user.
    #[serde(default)]
    pub channel: String,
    /// Bot name.
    #[serde(default = "default_username")]
    pub username: String,
    /// Attachment colour.
    #[serde(default = "default_color")]
    pub color: String,
    /// Attachment title.
    #[serde(default = "default_title")]
    pub title: String,
    /// Link of the title.
    #[serde(default = "default_title_link")]
    pub title_link: String,
    /// Text above the attachment.
    #[serde(default = "default_pretext")]
    pub pretext: String,
    /// Attachment text.
    #[serde(default = "default_text")]
    pub text: String,
    /// Attachment fields.
    #[serde(default)]
    pub fields: Vec<Field>,
    /// `short` of fields that do not set it.
    #[serde(default)]
    pub short_fields: bool,
    /// Attachment footer.
    #[serde(default = "default_footer")]
    pub footer: String,
    /// Plain-text summary.
    #[serde(default = "default_fallback")]
    pub fallback: String,
    /// Callback id of interactive messages.
    #[serde(default = "default_callback_id")]
    pub callback_id: String,
    /// Emoji used as the bot's icon.
    #[serde(default = "default_icon_emoji")]
    pub icon_emoji: String,
    /// Image used as the bot's icon.
    #[serde(default = "default_icon_url")]
    pub icon_url: String,
    /// Image in the attachment.
    #[serde(default)]
    pub image_url: String,
    /// Thumbnail in the attachment.
    #[serde(default)]
    pub thumb_url: String,
    /// Link `@names` and `#channels`.
    #[serde(default)]
    pub link_names: bool,
    /// Fields Slack formats as markdown.
    #[serde(default)]
    pub mrkdwn_in: Vec<String>,
    /// Slack message buttons: accepted only to be refused with a clear message.
    #[serde(default)]
    pub actions: Option<serde::de::IgnoredAny>,
    /// Accepted for Alertmanager compatibility; the host applies it.
    #[serde(default)]
    pub send_resolved: Option<bool>,
}

fn default_username() -> String {
    default_template("username")
}
fn default_color() -> String {
    r#"{{ if eq .Status "firing" }}danger{{ else }}good{{ end }}"#.to_owned()
}
fn default_title() -> String {
    default_template("title")
}
fn default_title_link() -> String {
    default_template("titlelink")
}
fn default_pretext() -> String {
    default_template("pretext")
}
fn default_text() -> String {
    default_template("text")
}
fn default_footer() -> String {
    default_template("footer")
}
fn default_fallback() -> String {
    default_template("fallback")
}
fn default_callback_id() -> String {
    default_template("callbackid")
}
fn default_icon_emoji() -> String {
    default_template("iconemoji")
}
fn default_icon_url() -> String {
    default_template("iconurl")
}

/// One attachment field.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Field {
    /// Field title (template).
    pub title: String,
    /// Field value (template).
    pub value: String,
    /// Displayed side by side with other short fields.
    #[serde(default)]
    pub short: Option<bool>,
}

impl Config {
    /// Every templated field as (name, text), in the order the message uses them.
    fn templates(&self) -> Vec<(String, &str)> {
        let mut all: Vec<(String, &str)> = [
            ("channel", &self.channel),
            ("username", &self.username),
            ("color", &self.color),
            ("title", &self.title),
            ("title_link", &self.title_link),
            ("pretext", &self.pretext),
            ("text", &self.text),
            ("footer", &self.footer),
            ("fallback", &self.fallback),
            ("callback_id", &self.callback_id),
            ("icon_emoji", &self.icon_emoji),
            ("icon_url", &self.icon_url),
            ("image_url", &self.image_url),
            ("thumb_url", &self.thumb_url),
        ]
        .into_iter()
        .map(|(name, text)| (name.to_owned(), text.as_str()))
        .collect();
        for (i, f) in self.fields.iter().enumerate() {
            all.push((format!("fields[{i}].title"), &f.title));
            all.push((format!("fields[{i}].value"), &f.value));
        }
        all
    }
}

/// Alertmanager's Slack request, field for field and in its order.
#[derive(Debug, Serialize)]
struct Message {
    #[serde(skip_serializing_if = "String::is_empty")]
    channel: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    username: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    icon_emoji: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    icon_url: String,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    link_names: bool,
    attachments: Vec<Attachment>,
}

#[derive(Debug, Serialize)]
struct Attachment {
    #[serde(skip_serializing_if = "String::is_empty")]
    title: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    title_link: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pretext: String,
    text: String,
    fallback: String,
    callback_id: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    fields: Vec<FieldBody>,
    #[serde(skip_serializing_if = "String::is_empty")]
    image_url: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    thumb_url: String,
    footer: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    color: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    mrkdwn_in: Vec<String>,
}

#[derive(Debug, Serialize)]
struct FieldBody {
    title: String,
    value: String,
    short: bool,
}

/// The message for `n`; a template error names the field.
fn message(cfg: &Config, n: &Notification) -> Result<Message, String> {
    let r = Renderer::with_templates(n, Templates::with_definitions(&cfg.definitions)?);
    let (title, _) = common::truncate_runes(&r.render("title", &cfg.title)?, MAX_TITLE_CHARS);
    let mrkdwn_in = if cfg.mrkdwn_in.is_empty() {
        vec!["fallback".into(), "pretext".into(), "text".into()]
    } else {
        cfg.mrkdwn_in.clone()
    };
    let mut fields = Vec::with_capacity(cfg.fields.len());
    for (i, f) in cfg.fields.iter().enumerate() {
        fields.push(FieldBody {
            title: r.render(&format!("fields[{i}].title"), &f.title)?,
            value: r.render(&format!("fields[{i}].value"), &f.value)?,
            short: f.short.unwrap_or(cfg.short_fields),
        });
    }
    let attachment = Attachment {
        title,
        title_link: r.render("title_link", &cfg.title_link)?,
        pretext: r.render("pretext", &cfg.pretext)?,
        text: r.render("text", &cfg.text)?,
        fallback: r.render("fallback", &cfg.fallback)?,
        callback_id: r.render("callback_id", &cfg.callback_id)?,
        fields,
        image_url: r.render("image_url", &cfg.image_url)?,
        thumb_url: r.render("thumb_url", &cfg.thumb_url)?,
        footer: r.render("footer", &cfg.footer)?,
        color: r.render("color", &cfg.color)?,
        mrkdwn_in,
    };
    Ok(Message {
        channel: r.render("channel", &cfg.channel)?,
        username: r.render("username", &cfg.username)?,
        icon_emoji: r.render("icon_emoji", &cfg.icon_emoji)?,
        icon_url: r.render("icon_url", &cfg.icon_url)?,
        link_names: cfg.link_names,
        attachments: vec![attachment],
    })
}

/// Slack's answer to a 2xx: webhooks say `ok`, the Web API `{"ok": true}`.
fn check_slack_body(body: &[u8]) -> Result<(), DeliveryError> {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.starts_with('{') {
        #[derive(Deserialize)]
        struct Answer {
            ok: bool,
            #[serde(default)]
            error: String,
        }
        return match serde_json::from_str::<Answer>(text) {
            Ok(Answer { ok: true, .. }) => Ok(()),
            Ok(Answer { error, .. }) => Err(DeliveryError::Permanent(format!(
                "error response from Slack: {}",
                common::body_snippet(error.as_bytes())
            ))),
            Err(e) => Err(DeliveryError::Permanent(format!(
                "could not parse Slack's JSON answer: {e}"
            ))),
        };
    }
    if text.is_empty() || text == "ok" {
        Ok(())
    } else {
        Err(DeliveryError::Permanent(format!(
            "error response from Slack: {}",
            common::body_snippet(text.as_bytes())
        )))
    }
}

const SCHEMA: &str = r#"{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "title": "slack",
  "type": "object",
  "additionalProperties": false,
  "required": ["api_url"],
  "properties": {
    "templates": {"type": "string", "description": "Template definitions from the top-level templates files; set by the host."},
    "api_url": {"type": "string", "pattern": "^[Hh][Tt][Tt][Pp][Ss]?://", "description": "Webhook URL; secret."},
    "channel": {"type": "string"},
    "username": {"type": "string"},
    "color": {"type": "string"},
    "title": {"type": "string"},
    "title_link": {"type": "string"},
    "pretext": {"type": "string"},
    "text": {"type": "string"},
    "fields": {"type": "array", "items": {"type": "object", "additionalProperties": false, "required": ["title", "value"],
      "properties": {"title": {"type": "string"}, "value": {"type": "string"}, "short": {"type": "boolean"}}}},
    "short_fields": {"type": "boolean", "default": false},
    "footer": {"type": "string"},
    "fallback": {"type": "string"},
    "callback_id": {"type": "string"},
    "icon_emoji": {"type": "string"},
    "icon_url": {"type": "string"},
    "image_url": {"type": "string"},
    "thumb_url": {"type": "string"},
    "link_names": {"type": "boolean", "default": false},
    "mrkdwn_in": {"type": "array", "items": {"type": "string"}},
    "send_resolved": {"type": "boolean", "default": false, "description": "Applied by the host."}
  }
}"#;

impl Notifier for Slack {
    type Config = Config;

    fn info() -> Info {
        Info::new(
            "slack",
            env!("CARGO_PKG_VERSION"),
            "Posts each notification to Slack as Alertmanager's slack_configs does: one \
             attachment, coloured by status, with Alertmanager's templates and defaults.",
        )
        .schema(SCHEMA)
    }

    fn check_config(cfg: &Config) -> Result<(), String> {
        common::check_url("api_url", &cfg.api_url)?;
        if cfg.actions.is_some() {
            return Err("actions: Slack message actions are not supported".into());
        }
        for (i, f) in cfg.fields.iter().enumerate() {
            if f.title.is_empty() || f.value.is_empty() {
                return Err(format!("fields[{i}]: title and value are required"));
            }
        }
        let templates = Templates::with_definitions(&cfg.definitions)?;
        for (name, text) in cfg.templates() {
            templates.check(&name, text)?;
        }
        Ok(())
    }

    fn send(cfg: &Config, notification: &Notification) -> Result<Delivery, DeliveryError> {
        let message = message(cfg, notification)
            .map_err(|e| DeliveryError::Permanent(format!("template {e}")))?;
        let body = serde_json::to_vec(&message)
            .map_err(|e| DeliveryError::Permanent(format!("cannot encode payload: {e}")))?;
        let detail = format!("delivered {} alerts", notification.alerts.len());
        let (delivery, resp) = common::send(common::post_json(&cfg.api_url, body), &detail)?;
        check_slack_body(&resp.body)?;
        Ok(delivery)
    }
}

klaxon_sdk::export_notifier!(Slack);

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
        testing::deliver_once::<Slack>(config, n, response)
    }

    const URL: &str = r#"{"api_url":"https://hooks.slack.com/services/T0/B0/secret"}"#;

    #[test]
    fn posts_alertmanagers_default_attachment() {
        let (result, req) = deliver(URL, &notification("firing"), Ok(Response::new(200, "ok")));
        assert_eq!(result.unwrap().detail, "HTTP 200: delivered 1 alerts");
        assert_eq!(req.method, "POST");
        assert_eq!(req.url, "https://hooks.slack.com/services/T0/B0/secret");
        assert_eq!(req.header_value("content-type"), Some("application/json"));
        let body: Value = serde_json::from_slice(&req.body).unwrap();
        assert_eq!(
            body,
            json!({
                "username": "Alertmanager",
                "attachments": [{
                    "title": "[FIRING:1] HighLatency (fraud-v2)",
                    "title_link": "http://klaxon:9190/#/alerts?receiver=ml-oncall",
                    "text": "",
                    "fallback": "[FIRING:1] HighLatency (fraud-v2) | http://klaxon:9190/#/alerts?receiver=ml-oncall",
                    "callback_id": "",
                    "footer": "",
                    "color": "danger",
                    "mrkdwn_in": ["fallback", "pretext", "text"]
                }]
            })
        );
        // Field order follows Alertmanager's Go structs.
        let text = String::from_utf8(req.body).unwrap();
        assert!(text.starts_with(r#"{"username":"Alertmanager","attachments":[{"title":"#));
    }

    #[test]
    fn resolved_is_good() {
        let (_, req) = deliver(URL, &notification("resolved"), Ok(Response::new(200, "ok")));
        let body: Value = serde_json::from_slice(&req.body).unwrap();
        assert_eq!(body["attachments"][0]["color"], "good");
        assert_eq!(
            body["attachments"][0]["title"],
            "[RESOLVED] HighLatency (fraud-v2)"
        );
    }

    #[test]
    fn custom_fields_and_templates() {
        let cfg = r##"{"api_url":"https://hooks.slack.com/x","channel":"#ml",
            "username":"klaxon","icon_emoji":":rotating_light:","link_names":true,
            "text":"{{ range .Alerts }}*{{ .Labels.model }}*: {{ .Annotations.summary }}{{ end }}",
            "pretext":"{{ .Receiver }}","footer":"f","image_url":"https://i.example/x.png",
            "mrkdwn_in":["text"],"short_fields":true,
            "fields":[{"title":"model","value":"{{ .CommonLabels.model }}"},
                      {"title":"long","value":"v","short":false}]}"##;
        let (_, req) = deliver(cfg, &notification("firing"), Ok(Response::new(200, "ok")));
        let body: Value = serde_json::from_slice(&req.body).unwrap();
        assert_eq!(body["channel"], "#ml");
        assert_eq!(body["username"], "klaxon");
        assert_eq!(body["icon_emoji"], ":rotating_light:");
        assert_eq!(body["link_names"], true);
        let a = &body["attachments"][0];
        assert_eq!(a["text"], "*fraud-v2*: p99 above 250ms");
        assert_eq!(a["pretext"], "ml-oncall");
        assert_eq!(a["footer"], "f");
        assert_eq!(a["image_url"], "https://i.example/x.png");
        assert_eq!(a["mrkdwn_in"], json!(["text"]));
        assert_eq!(
            a["fields"],
            json!([
                {"title": "model", "value": "fraud-v2", "short": true},
                {"title": "long", "value": "v", "short": false}
            ])
        );
    }

    #[test]
    fn long_titles_are_cut_at_1024_characters() {
        let cfg = format!(
            r#"{{"api_url":"https://h.example/x","title":"{}"}}"#,
            "é".repeat(1100)
        );
        let (_, req) = deliver(&cfg, &notification("firing"), Ok(Response::new(200, "ok")));
        let body: Value = serde_json::from_slice(&req.body).unwrap();
        let title = body["attachments"][0]["title"].as_str().unwrap();
        assert_eq!(title.chars().count(), 1024);
        assert!(title.ends_with('…'));
    }

    #[test]
    fn outcomes() {
        let n = notification("firing");
        let (r, _) = deliver(
            URL,
            &n,
            Ok(Response::new(429, "").header("Retry-After", "3")),
        );
        assert_eq!(
            r,
            Err(DeliveryError::Retryable {
                reason: "HTTP 429".into(),
                retry_after_ms: Some(3000)
            })
        );
        let (r, _) = deliver(URL, &n, Ok(Response::new(404, "no_team")));
        assert_eq!(r, Err(DeliveryError::Permanent("HTTP 404: no_team".into())));
        let (r, _) = deliver(
            URL,
            &n,
            Ok(Response::new(200, r#"{"ok":false,"error":"invalid_auth"}"#)),
        );
        assert_eq!(
            r,
            Err(DeliveryError::Permanent(
                "error response from Slack: invalid_auth".into()
            ))
        );
        let (r, _) = deliver(URL, &n, Ok(Response::new(200, r#"{"ok":true}"#)));
        assert!(r.is_ok());
        let (r, _) = deliver(URL, &n, Err(HttpError::Timeout));
        assert!(r.unwrap_err().is_retryable());
    }

    #[test]
    fn config_checks() {
        let check = testing::check_notifier_config::<Slack>;
        assert!(check(URL).is_ok());
        for (cfg, expected) in [
            (r#"{}"#, "missing field `api_url`"),
            (
                r#"{"api_url":"ftp://secret@h"}"#,
                "api_url: must start with http:// or https://",
            ),
            (
                r#"{"api_url_file":"/etc/slack"}"#,
                "unknown field `api_url_file`",
            ),
            (
                r#"{"api_url":"http://h","colour":"red"}"#,
                "unknown field `colour`",
            ),
            (
                r#"{"api_url":"http://h","actions":[{"type":"button"}]}"#,
                "actions: Slack message actions are not supported",
            ),
            (r#"{"api_url":"http://h","title":"{{ .Status "}"#, "title: "),
            (
                r#"{"api_url":"http://h","text":"{{ since .Alerts }}"}"#,
                "text: function \"since\" not defined",
            ),
            (
                r#"{"api_url":"http://h","fields":[{"title":"t","value":"{{ nope }}"}]}"#,
                "fields[0].value: function \"nope\" not defined",
            ),
            (
                r#"{"api_url":"http://h","fields":[{"title":"t","value":""}]}"#,
                "fields[0]: title and value are required",
            ),
        ] {
            let err = check(cfg).unwrap_err();
            assert!(err.contains(expected), "{cfg}: {err}");
            assert!(!err.contains("secret"), "{err}");
        }
    }

    #[test]
    fn schema_is_json() {
        let schema: Value = serde_json::from_str(&Slack::info().config_schema).unwrap();
        assert_eq!(schema["required"], json!(["api_url"]));
    }
}
