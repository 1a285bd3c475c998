//! `email`: sends each notification as an email through the host's `smtp` capability,
//! with a text and an HTML part, configured with Alertmanager's `email_configs` field
//! names (the host maps `email_configs` to this plugin and fills unset fields from
//! `global.smtp_*`).
//!
//! # Config
//!
//! ```json
//! {
//!   "to": "oncall@example.com, ml-team@example.com",
//!   "from": "Klaxon <klaxon@example.com>",
//!   "smarthost": "smtp.example.com:587",
//!   "hello": "klaxon.example.com",
//!   "auth_username": "klaxon",
//!   "auth_password": "s3cret",
//!   "require_tls": true,
//!   "headers": {"Subject": "[{{ .Status | toUpper }}] {{ .GroupLabels.alertname }}"},
//!   "send_resolved": false
//! }
//! ```
//!
//! | field | default | meaning |
//! |-------|---------|---------|
//! | `to` | required | recipients, comma-separated (`a@x, Name <b@y>`): envelope and `To` header |
//! | `from` | required (or `global.smtp_from`) | sender: envelope and `From` header |
//! | `smarthost` | required (or `global.smtp_smarthost`) | `host:port` of the SMTP server; the host allows this destination only |
//! | `hello` | `localhost` | name sent in EHLO |
//! | `auth_username`, `auth_password` | none | SMTP AUTH (PLAIN or LOGIN, as the server offers); the password is never logged nor echoed |
//! | `auth_identity` | none | accepted for compatibility and ignored: PLAIN is sent with an empty authorization identity, which servers take as `auth_username` |
//! | `require_tls` | `true` | `true`: STARTTLS, and fail if the server does not offer it; `false`: plain SMTP (no opportunistic STARTTLS, unlike Alertmanager). Port `465` always means implicit TLS (SMTPS) |
//! | `tls_config` | none | only `insecure_skip_verify: false` is accepted: certificates are always verified against the platform's roots; no client certificates or custom CAs (plugins have no files) |
//! | `headers` | `Subject`: Alertmanager's default subject | extra headers (Go templates); `Subject` replaces the default; `To`/`From` cannot be set here (use `to`/`from`) |
//! | `html` | a built-in HTML body | Go template; `""` sends no HTML part |
//! | `text` | a built-in text body | Go template; `""` sends no text part |
//! | `send_resolved` | `false` | applied by the host |
//!
//! Templates (see [`template`]) see Alertmanager's data (`.Status`, `.Alerts`,
//! `.GroupLabels`, `.CommonLabels`, `.CommonAnnotations`, `.ExternalURL`, …), its methods
//! (`.Alerts.Firing`, `.SortedPairs`, …), functions and the named templates of its
//! `default.tmpl`, and the `{{ define }}`s of the config's `templates:` files. Unknown
//! fields, and Alertmanager's `*_file` variants and `auth_secret` (CRAM-MD5), are errors.
//!
//! # Message
//!
//! Subject: Alertmanager's `email.default.subject`, e.g. `[FIRING:2] ScoreDrift (fraud critical)`.
//! Bodies answer the on-call questions for each alert: what broke (alert name, `model`
//! or `model_name`, `model_version`/`version`), how bad (annotations `value` against
//! `threshold`, `summary`, `description`), since when (`startsAt`) and what to do
//! (`runbook_url`, a link in HTML), plus every label.
//!
//! # Outcome
//!
//! - 250 (accepted) → delivered;
//! - 4xx reply, timeout, connection or TLS failure → retryable;
//! - 5xx reply, destination denied by the host, malformed message → permanent.

pub mod template;

use std::collections::BTreeMap;
use std::fmt::Write as _;

use klaxon_sdk::prelude::*;
use klaxon_sdk::smtp::{self, Message, Server, SmtpError, TlsMode};
use serde::Deserialize;

use template::Template;

/// The email notifier.
pub struct Email;

/// EHLO name when `hello` is unset (Alertmanager's default).
const DEFAULT_HELLO: &str = "localhost";

/// Parsed config; see the crate docs. Not `Debug`: it holds the password.
#[derive(Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `{{ define }}`s from the config's top-level `templates:` files, set by
    /// the host; usable from `headers`, `html` and `text`.
    #[serde(default, rename = "templates")]
    pub definitions: String,
    /// Recipients, comma-separated.
    pub to: String,
    /// Sender.
    #[serde(default)]
    pub from: String,
    /// `host:port`.
    #[serde(default)]
    pub smarthost: String,
    /// EHLO name.
    #[serde(default)]
    pub hello: Option<String>,
    /// AUTH user.
    #[serde(default)]
    pub auth_username: Option<String>,
    /// AUTH password.
    #[serde(default)]
    pub auth_password: Option<String>,
    /// Accepted and ignored (see the crate docs).
    #[serde(default)]
    pub auth_identity: Option<String>,
    /// STARTTLS required (default true).
    #[serde(default)]
    pub require_tls: Option<bool>,
    /// Only `insecure_skip_verify: false`.
    #[serde(default)]
    pub tls_config: Option<TlsConfig>,
    /// Extra headers, Go templates.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// HTML body template; `None`: the built-in one.
    #[serde(default)]
    pub html: Option<String>,
    /// Text body template; `None`: the built-in one.
    #[serde(default)]
    pub text: Option<String>,
    /// Accepted for Alertmanager compatibility; the host applies it.
    #[serde(default)]
    pub send_resolved: Option<bool>,
}

/// Alertmanager's `tls_config`, the part a plugin can honour.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// Must be false: certificates are always verified.
    #[serde(default)]
    pub insecure_skip_verify: bool,
}

impl Config {
    /// The server to connect to; the error names the field.
    pub fn server(&self) -> Result<Server, String> {
        let (host, port) = split_host_port(&self.smarthost).ok_or_else(|| {
            if self.smarthost.is_empty() {
                "smarthost: required (here or as global.smtp_smarthost)".to_owned()
            } else {
                format!("smarthost: {:?} is not host:port", self.smarthost)
            }
        })?;
        let tls = if port == 465 {
            TlsMode::Tls
        } else if self.require_tls.unwrap_or(true) {
            TlsMode::StartTls
        } else {
            TlsMode::None
        };
        Ok(Server {
            host: host.to_owned(),
            port,
            tls,
            username: self.auth_username.clone().filter(|u| !u.is_empty()),
            password: self.auth_password.clone(),
            hello: Some(self.hello.clone().unwrap_or_else(|| DEFAULT_HELLO.into())),
            timeout_ms: None,
        })
    }

    /// The recipients, split on commas.
    pub fn recipients(&self) -> Vec<String> {
        self.to
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect()
    }

    fn check(&self) -> Result<Templates, String> {
        self.server()?;
        if self.recipients().is_empty() {
            return Err("to: at least one recipient".into());
        }
        for r in self.recipients() {
            check_address("to", &r)?;
        }
        if self.from.trim().is_empty() {
            return Err("from: required (here or as global.smtp_from)".into());
        }
        check_address("from", &self.from)?;
        if self
            .tls_config
            .as_ref()
            .is_some_and(|t| t.insecure_skip_verify)
        {
            return Err("tls_config.insecure_skip_verify: not supported; \
                        the server's certificate is always verified"
                .into());
        }
        if self.auth_password.is_some() && self.auth_username.as_deref().unwrap_or("").is_empty() {
            return Err("auth_password: needs auth_username".into());
        }
        let templates = klaxon_notify_common::Templates::with_definitions(&self.definitions)?;
        let mut headers = Vec::new();
        let mut subject = None;
        for (name, value) in &self.headers {
            if !is_token(name) {
                return Err(format!("headers: invalid header name {name:?}"));
            }
            let lower = name.to_ascii_lowercase();
            if matches!(
                lower.as_str(),
                "to" | "from" | "content-type" | "content-transfer-encoding" | "mime-version"
            ) {
                return Err(format!(
                    "headers.{name}: set by the plugin (use `to` and `from` for addresses)"
                ));
            }
            let t = Template::parse(&format!("headers.{name}"), value, &templates)?;
            if lower == "subject" {
                subject = Some(t);
            } else {
                headers.push((name.clone(), t));
            }
        }
        let body =
            |field: &str, src: &Option<String>| -> Result<Option<Option<Template>>, String> {
                match src.as_deref() {
                    None => Ok(None),
                    Some("") => Ok(Some(None)),
                    Some(s) => Template::parse(field, s, &templates).map(|t| Some(Some(t))),
                }
            };
        Ok(Templates {
            subject,
            headers,
            html: body("html", &self.html)?,
            text: body("text", &self.text)?,
        })
    }
}

/// The parsed user templates. For a body: `None` = built-in, `Some(None)` = no part.
struct Templates {
    subject: Option<Template>,
    headers: Vec<(String, Template)>,
    html: Option<Option<Template>>,
    text: Option<Option<Template>>,
}

/// `host:port` or `[v6]:port`.
pub fn split_host_port(hostport: &str) -> Option<(&str, u16)> {
    let (host, port) = hostport.rsplit_once(':')?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    let port = port.parse().ok()?;
    (!host.is_empty() && !host.contains(char::is_whitespace)).then_some((host, port))
}

/// Loose mailbox check (`a@b` or `Name <a@b>`); the host parses it for real.
fn check_address(field: &str, addr: &str) -> Result<(), String> {
    let inner = match (addr.find('<'), addr.rfind('>')) {
        (Some(l), Some(r)) if l < r => &addr[l + 1..r],
        _ => addr.trim(),
    };
    let ok = inner
        .split_once('@')
        .is_some_and(|(local, domain)| !local.is_empty() && !domain.is_empty())
        && !addr.chars().any(|c| c.is_control());
    if ok {
        Ok(())
    } else {
        Err(format!("{field}: {addr:?} is not an email address"))
    }
}

/// An RFC 5322 header field name.
fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_graphic() && b != b':')
}

/// Alertmanager's `email.default.subject`:
/// `[{{ .Status | toUpper }}{{ if eq .Status "firing" }}:{{ .Alerts.Firing | len }}{{ end }}]
/// {{ .GroupLabels.SortedPairs.Values | join " " }} {{ if gt (len .CommonLabels) (len
/// .GroupLabels) }}({{ with .CommonLabels.Remove .GroupLabels.Names }}{{ .Values | join " "
/// }}{{ end }}){{ end }}`.
pub fn default_subject(n: &Notification) -> String {
    let mut s = format!("[{}", n.status.to_uppercase());
    if n.status == "firing" {
        let firing = n.alerts.iter().filter(|a| a.status == "firing").count();
        let _ = write!(s, ":{firing}");
    }
    s.push_str("] ");
    s.push_str(&sorted_values(&n.group_labels, |_| true).join(" "));
    s.push(' ');
    if n.common_labels.len() > n.group_labels.len() {
        let rest = sorted_values(&n.common_labels, |name| {
            !n.group_labels.iter().any(|(g, _)| g == name)
        });
        let _ = write!(s, "({})", rest.join(" "));
    }
    s
}

/// Values of the pairs whose name passes `keep`, ordered by name.
fn sorted_values(pairs: &[(String, String)], keep: impl Fn(&str) -> bool) -> Vec<&str> {
    let mut kept: Vec<&(String, String)> = pairs.iter().filter(|(k, _)| keep(k)).collect();
    kept.sort_by(|a, b| a.0.cmp(&b.0));
    kept.into_iter().map(|(_, v)| v.as_str()).collect()
}

fn get<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .filter(|v| !v.is_empty())
}

/// What one alert says to the on-call: the four questions.
struct Facts<'a> {
    name: &'a str,
    model: Option<&'a str>,
    version: Option<&'a str>,
    value: Option<&'a str>,
    threshold: Option<&'a str>,
    summary: Option<&'a str>,
    description: Option<&'a str>,
    runbook: Option<&'a str>,
}

fn facts(a: &Alert) -> Facts<'_> {
    let l = &a.labels;
    let an = &a.annotations;
    Facts {
        name: get(l, "alertname").unwrap_or("(unnamed alert)"),
        model: get(l, "model").or_else(|| get(l, "model_name")),
        version: get(l, "model_version").or_else(|| get(l, "version")),
        value: get(an, "value"),
        threshold: get(an, "threshold"),
        summary: get(an, "summary"),
        description: get(an, "description"),
        runbook: get(an, "runbook_url").or_else(|| get(an, "runbook")),
    }
}

impl Facts<'_> {
    fn what(&self) -> String {
        let mut s = self.name.to_owned();
        if let Some(m) = self.model {
            let _ = write!(s, " on model {m}");
        }
        if let Some(v) = self.version {
            let _ = write!(s, " (version {v})");
        }
        s
    }

    fn how_bad(&self) -> Option<String> {
        match (self.value, self.threshold) {
            (Some(v), Some(t)) => Some(format!("value {v} vs threshold {t}")),
            (Some(v), None) => Some(format!("value {v}")),
            (None, Some(t)) => Some(format!("threshold {t}")),
            (None, None) => None,
        }
    }
}

/// Annotations the bodies show under their own heading.
const KNOWN_ANNOTATIONS: [&str; 6] = [
    "value",
    "threshold",
    "summary",
    "description",
    "runbook_url",
    "runbook",
];

fn counts(n: &Notification) -> (usize, usize) {
    let firing = n.alerts.iter().filter(|a| a.status == "firing").count();
    (firing, n.alerts.len() - firing)
}

/// The built-in text body.
pub fn default_text(n: &Notification, subject: &str) -> String {
    let (firing, resolved) = counts(n);
    let mut s = format!("{subject}\n\n{firing} firing, {resolved} resolved");
    if n.truncated_alerts > 0 {
        let _ = write!(s, " ({} more not shown)", n.truncated_alerts);
    }
    s.push('\n');
    for a in &n.alerts {
        let f = facts(a);
        let _ = write!(s, "\n[{}] {}\n", a.status.to_uppercase(), f.what());
        if let Some(bad) = f.how_bad() {
            let _ = writeln!(s, "  How bad:     {bad}");
        }
        let _ = writeln!(s, "  Since:       {}", a.starts_at);
        if a.status != "firing" {
            let _ = writeln!(s, "  Resolved:    {}", a.ends_at);
        }
        if let Some(r) = f.runbook {
            let _ = writeln!(s, "  Runbook:     {r}");
        }
        if let Some(v) = f.summary {
            let _ = writeln!(s, "  Summary:     {v}");
        }
        if let Some(v) = f.description {
            let _ = writeln!(s, "  Description: {v}");
        }
        let labels: Vec<String> = a.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let _ = writeln!(s, "  Labels:      {}", labels.join(", "));
        for (k, v) in &a.annotations {
            if !KNOWN_ANNOTATIONS.contains(&k.as_str()) {
                let _ = writeln!(s, "  {k}: {v}");
            }
        }
        if !a.generator_url.is_empty() {
            let _ = writeln!(s, "  Source:      {}", a.generator_url);
        }
    }
    if !n.external_url.is_empty() {
        let _ = write!(s, "\nSent by Klaxon: {}\n", n.external_url);
    }
    s
}

/// HTML-escapes text for element content and attribute values.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A link when `url` is http(s), else escaped text (no `javascript:` links).
fn link(url: &str) -> String {
    let lower = url.to_ascii_lowercase();
    if lower.starts_with("http://") || lower.starts_with("https://") {
        format!("<a href=\"{0}\">{0}</a>", esc(url))
    } else {
        esc(url)
    }
}

/// The built-in HTML body.
pub fn default_html(n: &Notification, subject: &str) -> String {
    let (firing, resolved) = counts(n);
    let mut s = String::from(
        "<!DOCTYPE html>\n<html><head><meta charset=\"UTF-8\"></head>\
         <body style=\"font-family:sans-serif\">\n",
    );
    let _ = writeln!(
        s,
        "<h2>{}</h2>\n<p>{firing} firing, {resolved} resolved</p>",
        esc(subject)
    );
    for a in &n.alerts {
        let f = facts(a);
        let color = if a.status == "firing" {
            "#c0392b"
        } else {
            "#27ae60"
        };
        let _ = writeln!(
            s,
            "<h3 style=\"color:{color}\">[{}] {}</h3>\n<table>",
            esc(&a.status.to_uppercase()),
            esc(&f.what())
        );
        let mut row = |k: &str, v: String| {
            let _ = writeln!(s, "<tr><th align=\"left\">{}</th><td>{v}</td></tr>", esc(k));
        };
        if let Some(bad) = f.how_bad() {
            row("How bad", esc(&bad));
        }
        row("Since", esc(&a.starts_at));
        if a.status != "firing" {
            row("Resolved", esc(&a.ends_at));
        }
        if let Some(r) = f.runbook {
            row("Runbook", link(r));
        }
        if let Some(v) = f.summary {
            row("Summary", esc(v));
        }
        if let Some(v) = f.description {
            row("Description", esc(v));
        }
        let labels: Vec<String> = a
            .labels
            .iter()
            .map(|(k, v)| format!("{}={}", esc(k), esc(v)))
            .collect();
        row("Labels", labels.join("<br>"));
        for (k, v) in &a.annotations {
            if !KNOWN_ANNOTATIONS.contains(&k.as_str()) {
                row(k, esc(v));
            }
        }
        if !a.generator_url.is_empty() {
            row("Source", link(&a.generator_url));
        }
        s.push_str("</table>\n");
    }
    if !n.external_url.is_empty() {
        let _ = writeln!(s, "<p>Sent by Klaxon: {}</p>", link(&n.external_url));
    }
    s.push_str("</body></html>\n");
    s
}

/// Headers must stay on one line.
fn one_line(field: &str, s: String) -> Result<String, String> {
    if s.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
        Err(format!("{field}: rendered value contains CR, LF or NUL"))
    } else {
        Ok(s)
    }
}

/// The message for `n` (pure: no I/O), or why it cannot be built.
pub fn message(cfg: &Config, n: &Notification) -> Result<Message, String> {
    let t = cfg.check()?;
    let r = klaxon_notify_common::Renderer::with_templates(
        n,
        klaxon_notify_common::Templates::with_definitions(&cfg.definitions)?,
    );
    let subject = match &t.subject {
        Some(tpl) => one_line("headers.Subject", tpl.render(&r)?)?,
        None => default_subject(n),
    };
    let mut headers = Vec::new();
    for (name, tpl) in &t.headers {
        let v = tpl.render(&r)?;
        headers.push((name.clone(), one_line(&format!("headers.{name}"), v)?));
    }
    // Template errors name their field (`text`, `html`) themselves.
    let body =
        |user: &Option<Option<Template>>, built_in: fn(&Notification, &str) -> String| match user {
            None => Ok(Some(built_in(n, &subject))),
            Some(None) => Ok(None),
            Some(Some(tpl)) => tpl.render(&r).map(Some),
        };
    let text_body = body(&t.text, default_text)?;
    let html_body = body(&t.html, default_html)?;
    if text_body.is_none() && html_body.is_none() {
        return Err("html and text: at least one body is needed".into());
    }
    Ok(Message {
        from: cfg.from.trim().to_owned(),
        to: cfg.recipients(),
        subject,
        text_body,
        html_body,
        headers,
    })
}

/// Maps the host's answer to the delivery outcome (see the crate docs).
fn outcome(
    result: Result<(), SmtpError>,
    recipients: usize,
    alerts: usize,
) -> Result<Delivery, DeliveryError> {
    match result {
        Ok(()) => Ok(Delivery {
            status_code: 250,
            detail: format!("SMTP 250: {alerts} alerts to {recipients} recipients"),
        }),
        Err(e @ (SmtpError::Transient(..) | SmtpError::Timeout | SmtpError::Connection(_))) => {
            Err(DeliveryError::retryable(format!("SMTP {e}")))
        }
        Err(e @ (SmtpError::Rejected(..) | SmtpError::Denied(_) | SmtpError::Invalid(_))) => {
            Err(DeliveryError::Permanent(format!("SMTP {e}")))
        }
    }
}

/// Removes the password from text bound for the delivery log.
fn scrub(text: String, cfg: &Config) -> String {
    match cfg.auth_password.as_deref() {
        Some(p) if !p.is_empty() => text.replace(p, "<secret>"),
        _ => text,
    }
}

const SCHEMA: &str = r#"{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "title": "email",
  "type": "object",
  "additionalProperties": false,
  "required": ["to"],
  "properties": {
    "templates": {"type": "string", "description": "Template definitions from the top-level templates files; set by the host."},
    "to": {"type": "string", "description": "Recipients, comma-separated."},
    "from": {"type": "string", "description": "Sender; default global.smtp_from."},
    "smarthost": {"type": "string", "description": "host:port; default global.smtp_smarthost."},
    "hello": {"type": "string", "default": "localhost"},
    "auth_username": {"type": "string"},
    "auth_password": {"type": "string", "description": "Secret."},
    "auth_identity": {"type": "string", "description": "Accepted and ignored."},
    "require_tls": {"type": "boolean", "default": true, "description": "STARTTLS required; port 465 is implicit TLS."},
    "tls_config": {"type": "object", "additionalProperties": false, "properties": {"insecure_skip_verify": {"const": false}}},
    "headers": {"type": "object", "additionalProperties": {"type": "string"}},
    "html": {"type": "string"},
    "text": {"type": "string"},
    "send_resolved": {"type": "boolean", "default": false, "description": "Applied by the host."}
  }
}"#;

impl Notifier for Email {
    type Config = Config;

    fn info() -> Info {
        Info::new(
            "email",
            env!("CARGO_PKG_VERSION"),
            "Sends each notification as an email (text and HTML) through the host's SMTP \
             capability, with STARTTLS or implicit TLS and AUTH; Alertmanager's email_configs.",
        )
        .schema(SCHEMA)
    }

    fn check_config(cfg: &Config) -> Result<(), String> {
        cfg.check().map(|_| ()).map_err(|e| scrub(e, cfg))
    }

    fn send(cfg: &Config, notification: &Notification) -> Result<Delivery, DeliveryError> {
        let server = cfg.server().map_err(DeliveryError::Permanent)?;
        let msg =
            message(cfg, notification).map_err(|e| DeliveryError::Permanent(scrub(e, cfg)))?;
        let result = smtp::send(&server, &msg);
        outcome(result, msg.to.len(), notification.alerts.len()).map_err(|e| match e {
            DeliveryError::Permanent(r) => DeliveryError::Permanent(scrub(r, cfg)),
            DeliveryError::Retryable {
                reason,
                retry_after_ms,
            } => DeliveryError::Retryable {
                reason: scrub(reason, cfg),
                retry_after_ms,
            },
        })
    }
}

klaxon_sdk::export_notifier!(Email);

#[cfg(test)]
mod tests;
