//! `webhook`: POSTs each notification as Alertmanager's webhook payload (version 4).
//!
//! Anything that accepts Alertmanager's `webhook_configs` accepts Klaxon's webhook
//! unchanged, and the config uses Alertmanager's field names.
//!
//! # Config
//!
//! ```json
//! {
//!   "url": "https://hooks.example.com/alerts",
//!   "max_alerts": 0,
//!   "timeout": "10s",
//!   "send_resolved": true,
//!   "http_config": {
//!     "basic_auth": {"username": "klaxon", "password": "s3cret"},
//!     "authorization": {"type": "Bearer", "credentials": "token"},
//!     "bearer_token": "token",
//!     "http_headers": {"X-Team": "ml"}
//!   }
//! }
//! ```
//!
//! | field | default | meaning |
//! |-------|---------|---------|
//! | `url` | required | `http://` or `https://` endpoint; treated as a secret (never echoed) |
//! | `max_alerts` | `0` | most alerts per message, 0 = all; the rest are dropped and counted in `truncatedAlerts` |
//! | `timeout` | host default | Prometheus duration (`500ms`, `10s`, `1m30s`); `0` = host default |
//! | `send_resolved` | `true` | accepted for compatibility and ignored here: the host applies it |
//! | `http_config.basic_auth` | none | `{"username", "password"}` → `Authorization: Basic …` |
//! | `http_config.authorization` | none | `{"type" (default `Bearer`), "credentials"}` → `Authorization: <type> <credentials>` |
//! | `http_config.bearer_token` | none | shorthand for `authorization` with type `Bearer` |
//! | `http_config.http_headers` | none | extra headers, `{name: value}` |
//!
//! At most one of `basic_auth`, `authorization` and `bearer_token`. Headers the plugin
//! owns (`Authorization`, `Content-Type`, `Content-Length`, `User-Agent`, `Host`,
//! `Connection`, `Transfer-Encoding`) cannot be set in `http_headers`. Unknown fields,
//! and Alertmanager's `*_file` variants (plugins have no files), are errors.
//!
//! # Request
//!
//! `POST url` with `Content-Type: application/json`, `User-Agent: Klaxon/0.1` and:
//!
//! ```json
//! {"receiver":"…","status":"firing","alerts":[{"status":"firing","labels":{},"annotations":{},
//!   "startsAt":"…","endsAt":"…","generatorURL":"…","fingerprint":"…"}],
//!  "groupLabels":{},"commonLabels":{},"commonAnnotations":{},"externalURL":"…",
//!  "version":"4","groupKey":"…","truncatedAlerts":0}
//! ```
//!
//! Fields in Alertmanager's order; label maps sorted by name.
//!
//! # Outcome
//!
//! - 2xx → delivered;
//! - 429 and 5xx → retryable, with the delay from `Retry-After` when it is in
//!   delta-seconds (an HTTP-date is ignored);
//! - any other status → permanent, with the status and the first 200 bytes of the body;
//! - timeout or connection failure → retryable; destination denied, invalid request or
//!   response too large → permanent.

use std::collections::BTreeMap;

use klaxon_notify_common as common;
use klaxon_sdk::http::Request;
use klaxon_sdk::prelude::*;
use serde::{Deserialize, Serialize};

/// The webhook notifier.
pub struct Webhook;

/// `User-Agent` of every request.
pub use common::USER_AGENT;

/// Parsed config; see the crate docs. Not `Debug`: it holds secrets (the URL too).
#[derive(Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The endpoint.
    pub url: String,
    /// Most alerts per message; 0 = all.
    #[serde(default)]
    pub max_alerts: u32,
    /// Authentication and extra headers.
    #[serde(default)]
    pub http_config: HttpConfig,
    /// Request timeout; `None` = the host's default.
    #[serde(default)]
    pub timeout: Option<Timeout>,
    /// Accepted for Alertmanager compatibility; the host applies it.
    #[serde(default)]
    pub send_resolved: Option<bool>,
}

/// Alertmanager's `http_config`, the parts a plugin can honour.
#[derive(Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// HTTP basic authentication.
    #[serde(default)]
    pub basic_auth: Option<BasicAuth>,
    /// `Authorization: <type> <credentials>`.
    #[serde(default)]
    pub authorization: Option<Authorization>,
    /// `Authorization: Bearer <token>`.
    #[serde(default)]
    pub bearer_token: Option<String>,
    /// Extra headers.
    #[serde(default)]
    pub http_headers: BTreeMap<String, String>,
}

/// Basic authentication credentials.
#[derive(Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BasicAuth {
    /// User name.
    pub username: String,
    /// Password.
    #[serde(default)]
    pub password: String,
}

/// The `Authorization` header's scheme and credentials.
#[derive(Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Authorization {
    /// Scheme; `Bearer` by default.
    #[serde(rename = "type", default = "bearer")]
    pub kind: String,
    /// Credentials.
    #[serde(default)]
    pub credentials: String,
}

fn bearer() -> String {
    "Bearer".to_owned()
}

/// A timeout written as a Prometheus duration (`500ms`, `10s`, `1m30s`), in ms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct Timeout(pub u32);

impl TryFrom<String> for Timeout {
    type Error = String;

    fn try_from(s: String) -> Result<Self, String> {
        let ms = parse_duration_ms(&s).ok_or_else(|| {
            format!("invalid duration {s:?}: expected e.g. \"500ms\", \"10s\", \"1m30s\"")
        })?;
        u32::try_from(ms)
            .map(Timeout)
            .map_err(|_| format!("duration {s:?} is too long"))
    }
}

/// Parses a Prometheus duration: `0`, or number-unit pairs with units `y w d h m s ms`
/// in that order, each at most once.
fn parse_duration_ms(s: &str) -> Option<u64> {
    if s == "0" {
        return Some(0);
    }
    const UNITS: [(&str, u64); 7] = [
        ("y", 365 * 86_400_000),
        ("w", 7 * 86_400_000),
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("ms", 1),
        ("m", 60_000),
        ("s", 1_000),
    ];
    // Order of units as they must appear; `ms` is listed before `m` above only so the
    // longer suffix matches first.
    let rank = |unit: &str| match unit {
        "y" => 0,
        "w" => 1,
        "d" => 2,
        "h" => 3,
        "m" => 4,
        "s" => 5,
        _ => 6,
    };
    let mut rest = s;
    let mut total: u64 = 0;
    let mut last_rank = -1;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        let n: u64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let (unit, factor) = UNITS.iter().find(|(u, _)| rest.starts_with(u))?;
        if rank(unit) <= last_rank {
            return None;
        }
        last_rank = rank(unit);
        rest = &rest[unit.len()..];
        total = total.checked_add(n.checked_mul(*factor)?)?;
    }
    (last_rank >= 0).then_some(total)
}

/// Headers the plugin sets itself.
const RESERVED_HEADERS: [&str; 7] = [
    "authorization",
    "content-type",
    "content-length",
    "user-agent",
    "host",
    "connection",
    "transfer-encoding",
];

/// An HTTP token (RFC 9110 §5.6.2): header names and auth schemes.
fn is_token(s: &str) -> bool {
    const SEPARATORS: &[u8] = b"()<>@,;:\\\"/[]?={} \t";
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_graphic() && !SEPARATORS.contains(&b))
}

/// Whether `value` can go into a header without splitting it.
fn is_header_safe(value: &str) -> bool {
    !value.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0)
}

fn check_header(name: &str, value: &str) -> Result<(), String> {
    if !is_token(name) {
        return Err(format!(
            "http_config.http_headers: invalid header name {name:?}"
        ));
    }
    if RESERVED_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
        return Err(format!(
            "http_config.http_headers: {name:?} is set by the plugin \
             (use basic_auth, authorization or bearer_token for credentials)"
        ));
    }
    if !is_header_safe(value) {
        return Err(format!(
            "http_config.http_headers.{name}: value must not contain CR, LF or NUL"
        ));
    }
    Ok(())
}

impl HttpConfig {
    fn check(&self) -> Result<(), String> {
        let schemes = [
            self.basic_auth.is_some(),
            self.authorization.is_some(),
            self.bearer_token.is_some(),
        ];
        if schemes.iter().filter(|set| **set).count() > 1 {
            return Err(
                "http_config: at most one of basic_auth, authorization and bearer_token".into(),
            );
        }
        if let Some(auth) = &self.authorization {
            if auth.kind.eq_ignore_ascii_case("basic") {
                return Err(
                    "http_config.authorization.type: cannot be \"Basic\", use basic_auth".into(),
                );
            }
            if !is_token(&auth.kind) {
                return Err("http_config.authorization.type: must be one word (a token)".into());
            }
            if !is_header_safe(&auth.credentials) {
                return Err(
                    "http_config.authorization.credentials: must not contain CR, LF or NUL".into(),
                );
            }
        }
        if self
            .bearer_token
            .as_deref()
            .is_some_and(|t| !is_header_safe(t))
        {
            return Err("http_config.bearer_token: must not contain CR, LF or NUL".into());
        }
        for (name, value) in &self.http_headers {
            check_header(name, value)?;
        }
        Ok(())
    }

    /// The `Authorization` header value, if any.
    fn authorization(&self) -> Option<String> {
        if let Some(token) = &self.bearer_token {
            return Some(format!("Bearer {token}"));
        }
        self.authorization
            .as_ref()
            .map(|a| format!("{} {}", a.kind, a.credentials))
    }
}

/// Alertmanager's webhook message, version 4, field for field and in its order.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Message<'a> {
    receiver: &'a str,
    status: &'a str,
    alerts: Vec<AlertBody<'a>>,
    group_labels: Kv<'a>,
    common_labels: Kv<'a>,
    common_annotations: Kv<'a>,
    #[serde(rename = "externalURL")]
    external_url: &'a str,
    version: &'static str,
    group_key: &'a str,
    truncated_alerts: u64,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct AlertBody<'a> {
    status: &'a str,
    labels: Kv<'a>,
    annotations: Kv<'a>,
    starts_at: &'a str,
    ends_at: &'a str,
    #[serde(rename = "generatorURL")]
    generator_url: &'a str,
    fingerprint: &'a str,
}

/// A label map; sorted by name like Go's JSON encoding of a map.
type Kv<'a> = BTreeMap<&'a str, &'a str>;

fn kv(pairs: &[(String, String)]) -> Kv<'_> {
    pairs
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect()
}

/// The message for `n`, keeping at most `max_alerts` alerts (0 = all).
fn message(n: &Notification, max_alerts: u32) -> Message<'_> {
    let keep = match max_alerts {
        0 => n.alerts.len(),
        max => n.alerts.len().min(max as usize),
    };
    let dropped = (n.alerts.len() - keep) as u64;
    Message {
        receiver: &n.receiver,
        status: &n.status,
        alerts: n.alerts[..keep]
            .iter()
            .map(|a| AlertBody {
                status: &a.status,
                labels: kv(&a.labels),
                annotations: kv(&a.annotations),
                starts_at: &a.starts_at,
                ends_at: &a.ends_at,
                generator_url: &a.generator_url,
                fingerprint: &a.fingerprint,
            })
            .collect(),
        group_labels: kv(&n.group_labels),
        common_labels: kv(&n.common_labels),
        common_annotations: kv(&n.common_annotations),
        external_url: &n.external_url,
        version: "4",
        group_key: &n.group_key,
        truncated_alerts: u64::from(n.truncated_alerts) + dropped,
    }
}

fn request(cfg: &Config, body: Vec<u8>) -> Request {
    let mut req = Request::post(cfg.url.as_str())
        .header("Content-Type", "application/json")
        .header("User-Agent", USER_AGENT);
    if let Some(basic) = &cfg.http_config.basic_auth {
        req = req.basic_auth(&basic.username, &basic.password);
    } else if let Some(value) = cfg.http_config.authorization() {
        req = req.header("Authorization", value);
    }
    for (name, value) in &cfg.http_config.http_headers {
        req = req.header(name.as_str(), value.as_str());
    }
    req = req.body(body);
    match cfg.timeout {
        Some(Timeout(ms)) if ms > 0 => req.timeout_ms(ms),
        _ => req,
    }
}

const SCHEMA: &str = r#"{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "title": "webhook",
  "type": "object",
  "additionalProperties": false,
  "required": ["url"],
  "properties": {
    "url": {"type": "string", "pattern": "^[Hh][Tt][Tt][Pp][Ss]?://", "description": "Endpoint; secret."},
    "max_alerts": {"type": "integer", "minimum": 0, "maximum": 4294967295, "default": 0, "description": "Most alerts per message; 0 = all."},
    "timeout": {"type": "string", "pattern": "^(0|([0-9]+y)?([0-9]+w)?([0-9]+d)?([0-9]+h)?([0-9]+m)?([0-9]+s)?([0-9]+ms)?)$", "description": "Request timeout (Prometheus duration); the host caps it."},
    "send_resolved": {"type": "boolean", "default": true, "description": "Applied by the host."},
    "http_config": {
      "type": "object",
      "additionalProperties": false,
      "properties": {
        "basic_auth": {
          "type": "object", "additionalProperties": false, "required": ["username"],
          "properties": {"username": {"type": "string"}, "password": {"type": "string"}}
        },
        "authorization": {
          "type": "object", "additionalProperties": false,
          "properties": {"type": {"type": "string", "default": "Bearer"}, "credentials": {"type": "string"}}
        },
        "bearer_token": {"type": "string"},
        "http_headers": {"type": "object", "additionalProperties": {"type": "string"}}
      }
    }
  }
}"#;

impl Notifier for Webhook {
    type Config = Config;

    fn info() -> Info {
        Info::new(
            "webhook",
            env!("CARGO_PKG_VERSION"),
            "POSTs each notification as JSON in Alertmanager's webhook format (version 4), \
             with optional basic, bearer or custom authorization and extra headers.",
        )
        .schema(SCHEMA)
    }

    fn check_config(cfg: &Config) -> Result<(), String> {
        // The URL is a secret in Alertmanager (it often embeds a token): the
        // check describes the problem without quoting it.
        common::check_url("url", &cfg.url)?;
        cfg.http_config.check()
    }

    fn send(cfg: &Config, notification: &Notification) -> Result<Delivery, DeliveryError> {
        let message = message(notification, cfg.max_alerts);
        let alerts = message.alerts.len();
        let body = serde_json::to_vec(&message)
            .map_err(|e| DeliveryError::Permanent(format!("cannot encode payload: {e}")))?;
        common::send(request(cfg, body), &format!("delivered {alerts} alerts")).map(|(d, _)| d)
    }
}

klaxon_sdk::export_notifier!(Webhook);

#[cfg(test)]
mod tests {
    use super::*;
    use klaxon_sdk::http::{HttpError, Response};
    use klaxon_sdk::testing;
    use serde_json::{Value, json};

    fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
        p.iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    fn alert(name: &str, status: &str) -> Alert {
        Alert {
            status: status.into(),
            labels: pairs(&[("alertname", "ScoreDrift"), ("model", name)]),
            annotations: pairs(&[("summary", "z=4.1 over 20 samples")]),
            starts_at: "2024-05-01T10:00:00Z".into(),
            ends_at: if status == "firing" {
                "0001-01-01T00:00:00Z".into()
            } else {
                "2024-05-01T10:05:00Z".into()
            },
            generator_url: "http://klaxon:9095/rules/score-drift".into(),
            fingerprint: "c0ffee00c0ffee00".into(),
        }
    }

    fn notification() -> Notification {
        Notification {
            receiver: "ml-oncall".into(),
            status: "firing".into(),
            alerts: vec![alert("fraud", "firing"), alert("churn", "resolved")],
            group_labels: pairs(&[("alertname", "ScoreDrift")]),
            common_labels: pairs(&[("alertname", "ScoreDrift")]),
            common_annotations: pairs(&[("summary", "z=4.1 over 20 samples")]),
            external_url: "http://klaxon:9095".into(),
            group_key: "{}:{alertname=\"ScoreDrift\"}".into(),
            truncated_alerts: 0,
        }
    }

    /// Sends `n` with `config` to a handler answering `response`; returns the outcome
    /// and the one request made.
    fn deliver(
        config: &str,
        n: &Notification,
        response: Result<Response, HttpError>,
    ) -> (Result<Delivery, DeliveryError>, Request) {
        testing::set_http_handler(move |_| response.clone());
        let result = testing::run_notifier::<Webhook>(config, n);
        let mut sent = testing::take_http_requests();
        assert_eq!(sent.len(), 1, "exactly one request");
        (result, sent.remove(0))
    }

    const URL: &str = r#"{"url":"https://hooks.example.com/alerts"}"#;

    #[test]
    fn posts_alertmanager_v4_payload() {
        let (result, req) = deliver(URL, &notification(), Ok(Response::new(200, "ok")));
        assert_eq!(
            result,
            Ok(Delivery {
                status_code: 200,
                detail: "HTTP 200: delivered 2 alerts".into()
            })
        );
        assert_eq!(req.method, "POST");
        assert_eq!(req.url, "https://hooks.example.com/alerts");
        assert_eq!(req.header_value("content-type"), Some("application/json"));
        assert_eq!(req.header_value("user-agent"), Some("Klaxon/0.1"));
        assert_eq!(req.header_value("authorization"), None);
        assert_eq!(req.timeout_ms, None);

        let body: Value = serde_json::from_slice(&req.body).unwrap();
        assert_eq!(body["version"], "4");
        assert_eq!(body["groupKey"], "{}:{alertname=\"ScoreDrift\"}");
        assert_eq!(body["truncatedAlerts"], 0);
        assert_eq!(body["status"], "firing");
        assert_eq!(body["receiver"], "ml-oncall");
        assert_eq!(body["groupLabels"], json!({"alertname": "ScoreDrift"}));
        assert_eq!(body["commonLabels"], json!({"alertname": "ScoreDrift"}));
        assert_eq!(
            body["commonAnnotations"],
            json!({"summary": "z=4.1 over 20 samples"})
        );
        assert_eq!(body["externalURL"], "http://klaxon:9095");
        let alerts = body["alerts"].as_array().unwrap();
        assert_eq!(alerts.len(), 2);
        assert_eq!(
            alerts[0],
            json!({
                "status": "firing",
                "labels": {"alertname": "ScoreDrift", "model": "fraud"},
                "annotations": {"summary": "z=4.1 over 20 samples"},
                "startsAt": "2024-05-01T10:00:00Z",
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "http://klaxon:9095/rules/score-drift",
                "fingerprint": "c0ffee00c0ffee00"
            })
        );
        assert_eq!(alerts[1]["status"], "resolved");
        assert_eq!(alerts[1]["endsAt"], "2024-05-01T10:05:00Z");
        assert_eq!(body.as_object().unwrap().len(), 10, "no extra fields");

        // Field order follows Alertmanager's Go struct.
        let text = String::from_utf8(req.body).unwrap();
        assert!(text.starts_with(r#"{"receiver":"ml-oncall","status":"firing","alerts":["#));
        assert!(text.ends_with(
            r#""version":"4","groupKey":"{}:{alertname=\"ScoreDrift\"}","truncatedAlerts":0}"#
        ));
    }

    #[test]
    fn empty_label_sets_are_objects() {
        let n = Notification {
            status: "resolved".into(),
            ..Notification::default()
        };
        let (_, req) = deliver(URL, &n, Ok(Response::new(204, "")));
        let body: Value = serde_json::from_slice(&req.body).unwrap();
        assert_eq!(body["groupLabels"], json!({}));
        assert_eq!(body["alerts"], json!([]));
    }

    #[test]
    fn max_alerts_truncates_and_counts() {
        let mut n = notification();
        n.alerts.push(alert("spam", "firing"));
        n.truncated_alerts = 4;
        let cfg = r#"{"url":"https://h.example/x","max_alerts":1}"#;
        let (result, req) = deliver(cfg, &n, Ok(Response::new(200, "")));
        let body: Value = serde_json::from_slice(&req.body).unwrap();
        assert_eq!(body["alerts"].as_array().unwrap().len(), 1);
        assert_eq!(body["alerts"][0]["labels"]["model"], "fraud");
        // 4 already truncated by the host + 2 dropped here = 6.
        assert_eq!(body["truncatedAlerts"], 6);
        assert_eq!(result.unwrap().detail, "HTTP 200: delivered 1 alerts");
    }

    #[test]
    fn authentication_headers() {
        let cases = [
            // base64("klaxon:s3cret") = a2xheG9uOnMzY3JldA==
            (
                r#"{"basic_auth":{"username":"klaxon","password":"s3cret"}}"#,
                "Basic a2xheG9uOnMzY3JldA==",
            ),
            (r#"{"bearer_token":"tok"}"#, "Bearer tok"),
            (r#"{"authorization":{"credentials":"tok"}}"#, "Bearer tok"),
            (
                r#"{"authorization":{"type":"Token","credentials":"abc"}}"#,
                "Token abc",
            ),
        ];
        for (http_config, expected) in cases {
            let cfg = format!(r#"{{"url":"http://h.example","http_config":{http_config}}}"#);
            let (_, req) = deliver(&cfg, &notification(), Ok(Response::new(200, "")));
            assert_eq!(
                req.header_value("Authorization"),
                Some(expected),
                "{http_config}"
            );
        }
    }

    #[test]
    fn extra_headers_and_timeout() {
        let cfg = r#"{"url":"http://h.example","timeout":"1m30s","send_resolved":false,
                      "http_config":{"http_headers":{"X-Team":"ml","X-Env":"prod"}}}"#;
        let (_, req) = deliver(cfg, &notification(), Ok(Response::new(200, "")));
        assert_eq!(req.header_value("x-team"), Some("ml"));
        assert_eq!(req.header_value("x-env"), Some("prod"));
        // 1m30s = 90 000 ms
        assert_eq!(req.timeout_ms, Some(90_000));
    }

    #[test]
    fn retryable_statuses_honour_retry_after() {
        let resp = Response::new(429, "slow down").header("Retry-After", "120");
        let (result, _) = deliver(URL, &notification(), Ok(resp));
        assert_eq!(
            result,
            Err(DeliveryError::Retryable {
                reason: "HTTP 429: slow down".into(),
                retry_after_ms: Some(120_000)
            })
        );
        let resp = Response::new(503, "").header("retry-after", "Wed, 21 Oct 2015 07:28:00 GMT");
        let (result, _) = deliver(URL, &notification(), Ok(resp));
        assert_eq!(
            result,
            Err(DeliveryError::Retryable {
                reason: "HTTP 503".into(),
                retry_after_ms: None
            })
        );
        let (result, _) = deliver(URL, &notification(), Ok(Response::new(500, "boom")));
        assert!(result.unwrap_err().is_retryable());
    }

    #[test]
    fn other_statuses_are_permanent_with_a_body_snippet() {
        let long = format!("{}{}", "x".repeat(199), "é and more");
        let (result, _) = deliver(URL, &notification(), Ok(Response::new(404, long)));
        // 199 'x' then 'é' (2 bytes) would straddle the 200-byte cut: it is dropped.
        assert_eq!(
            result,
            Err(DeliveryError::Permanent(format!(
                "HTTP 404: {}…",
                "x".repeat(199)
            )))
        );
        let (result, _) = deliver(
            URL,
            &notification(),
            Ok(Response::new(400, "bad\nrequest\n")),
        );
        assert_eq!(
            result,
            Err(DeliveryError::Permanent("HTTP 400: bad request".into()))
        );
        let (result, _) = deliver(URL, &notification(), Ok(Response::new(301, "")));
        assert_eq!(result, Err(DeliveryError::Permanent("HTTP 301".into())));
    }

    #[test]
    fn transport_errors() {
        for (error, retryable) in [
            (HttpError::Timeout, true),
            (HttpError::Connection("reset".into()), true),
            (HttpError::Denied("private address".into()), false),
            (HttpError::InvalidRequest("bad header".into()), false),
            (HttpError::TooLarge, false),
        ] {
            let (result, _) = deliver(URL, &notification(), Err(error.clone()));
            assert_eq!(result.unwrap_err().is_retryable(), retryable, "{error:?}");
        }
    }

    #[test]
    fn config_checks() {
        let check = testing::check_notifier_config::<Webhook>;
        assert!(check(URL).is_ok());
        assert!(check(r#"{"url":"HTTP://h.example:8080/path?q=1","timeout":"0"}"#).is_ok());
        for (cfg, expected) in [
            (r#"{}"#, "missing field `url`"),
            (
                r#"{"url":"ftp://h.example"}"#,
                "url: must start with http:// or https://",
            ),
            (r#"{"url":"https:///path"}"#, "url: has no host"),
            (
                r#"{"url":"https://h.example/a b"}"#,
                "url: must not contain whitespace",
            ),
            (r#"{"url":"http://h","extra":1}"#, "unknown field `extra`"),
            (
                r#"{"url":"http://h","max_alerts":-1}"#,
                "max_alerts: invalid value",
            ),
            (
                r#"{"url":"http://h","timeout":"10"}"#,
                "timeout: invalid duration \"10\"",
            ),
            (
                r#"{"url":"http://h","timeout":"5s1m"}"#,
                "timeout: invalid duration",
            ),
            (
                r#"{"url":"http://h","http_config":{"bearer_token":"a","basic_auth":{"username":"u"}}}"#,
                "http_config: at most one of",
            ),
            (
                r#"{"url":"http://h","http_config":{"authorization":{"type":"basic"}}}"#,
                "http_config.authorization.type: cannot be \"Basic\"",
            ),
            (
                r#"{"url":"http://h","http_config":{"http_headers":{"Authorization":"x"}}}"#,
                "is set by the plugin",
            ),
            (
                r#"{"url":"http://h","http_config":{"http_headers":{"X-A":"a\nb"}}}"#,
                "must not contain CR, LF or NUL",
            ),
            (
                r#"{"url":"http://h","http_config":{"bearer_token":"a\r\nX-Evil: 1"}}"#,
                "http_config.bearer_token: must not contain CR, LF or NUL",
            ),
            (
                r#"{"url":"http://h","http_config":{"authorization":{"type":"Bearer x"}}}"#,
                "http_config.authorization.type: must be one word",
            ),
            (
                r#"{"url":"http://h","http_config":{"http_headers":{"Bad Name":"x"}}}"#,
                "invalid header name",
            ),
            (
                r#"{"url":"http://h","http_config":{"password_file":"/x"}}"#,
                "http_config.password_file: unknown field `password_file`",
            ),
        ] {
            let err = check(cfg).unwrap_err();
            assert!(err.contains(expected), "{cfg}: {err}");
        }
    }

    #[test]
    fn secrets_stay_out_of_errors() {
        let cfg = r#"{"url":"ftp://token-abc@h.example","http_config":{"bearer_token":"tok-xyz"}}"#;
        let err = testing::check_notifier_config::<Webhook>(cfg).unwrap_err();
        assert!(!err.contains("token-abc"), "{err}");
        // A bad config at send time is a permanent error, and nothing is sent.
        testing::set_http_handler(|_| Ok(Response::new(200, "")));
        let result = testing::run_notifier::<Webhook>(cfg, &notification());
        assert!(
            matches!(result, Err(DeliveryError::Permanent(ref e)) if e.starts_with("invalid config: url:"))
        );
        assert!(testing::take_http_requests().is_empty());
    }

    #[test]
    fn durations() {
        for (s, ms) in [
            ("0", Some(0)),
            ("500ms", Some(500)),
            ("10s", Some(10_000)),
            ("1m30s", Some(90_000)),
            ("1h", Some(3_600_000)),
            ("1d2h", Some(93_600_000)),
            ("1s500ms", Some(1_500)),
            ("", None),
            ("s", None),
            ("10", None),
            ("1m1m", None),
            ("1ms1s", None),
            ("-1s", None),
            ("1.5s", None),
        ] {
            assert_eq!(parse_duration_ms(s), ms, "{s:?}");
        }
        assert!(Timeout::try_from("50d".to_owned()).is_err(), "over u32 ms");
    }

    #[test]
    fn schema_is_json() {
        let info = Webhook::info();
        let schema: Value = serde_json::from_str(&info.config_schema).unwrap();
        assert_eq!(schema["required"], json!(["url"]));
    }
}
