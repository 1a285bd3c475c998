//! Go-template rendering of the email's user-set `headers`, `html` and `text`,
//! over Alertmanager's notification data (`.Status`, `.Receiver`, `.Alerts`,
//! `.GroupLabels`, `.CommonLabels`, `.CommonAnnotations`, `.ExternalURL`; each
//! alert has `.Status`, `.Labels`, `.Annotations`, `.StartsAt`, `.EndsAt`,
//! `.GeneratorURL`, `.Fingerprint`). Functions: `toUpper`, `toLower`, `title`,
//! `join` (`{{ join "," .List }}`), `safeHtml`, plus Go's builtins.
//!
//! Not provided: Alertmanager's methods on its data (`.Alerts.Firing`,
//! `.SortedPairs`, `.Remove`, `.Names`, `.Values`) and its named templates
//! (`{{ template "email.default.html" . }}`); the *defaults* those produce are
//! built in Rust in the crate root instead. This module is self-contained on
//! purpose: it is meant to move onto the shared notifier template module once
//! one exists, and only [`Template::parse`] / [`Template::render`] are used.
//! Output is not HTML-escaped (Go's text/template, as Alertmanager's `text`).

use std::collections::BTreeMap;
use std::sync::Arc;

use gotmpl::{FuncMap, TemplateError, Value};
use klaxon_sdk::Notification;

/// Text that may hold `{{ … }}`; parsed once, text without `{{` kept as is.
pub struct Template {
    raw: String,
    parsed: Option<gotmpl::Template>,
}

impl Template {
    /// Parses `text`; the error says what is wrong.
    pub fn parse(text: &str) -> Result<Self, String> {
        let parsed = if text.contains("{{") {
            Some(
                gotmpl::Template::new("email")
                    .funcs(funcs())
                    .parse(text)
                    .map_err(|e| e.to_string())?,
            )
        } else {
            None
        };
        Ok(Self {
            raw: text.to_owned(),
            parsed,
        })
    }

    /// Renders over `n`.
    pub fn render(&self, n: &Notification) -> Result<String, String> {
        match &self.parsed {
            None => Ok(self.raw.clone()),
            Some(t) => t.execute_to_string(&data(n)).map_err(|e| e.to_string()),
        }
    }
}

fn map(pairs: &[(String, String)]) -> Value {
    Value::from(
        pairs
            .iter()
            .map(|(k, v)| (k.clone(), Value::from(v.as_str())))
            .collect::<BTreeMap<String, Value>>(),
    )
}

fn obj(fields: Vec<(&str, Value)>) -> Value {
    Value::from(
        fields
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect::<BTreeMap<String, Value>>(),
    )
}

/// Alertmanager's template data for a notification.
fn data(n: &Notification) -> Value {
    let alerts: Vec<Value> = n
        .alerts
        .iter()
        .map(|a| {
            obj(vec![
                ("Status", Value::from(a.status.as_str())),
                ("Labels", map(&a.labels)),
                ("Annotations", map(&a.annotations)),
                ("StartsAt", Value::from(a.starts_at.as_str())),
                ("EndsAt", Value::from(a.ends_at.as_str())),
                ("GeneratorURL", Value::from(a.generator_url.as_str())),
                ("Fingerprint", Value::from(a.fingerprint.as_str())),
            ])
        })
        .collect();
    obj(vec![
        ("Receiver", Value::from(n.receiver.as_str())),
        ("Status", Value::from(n.status.as_str())),
        ("Alerts", Value::List(Arc::from(alerts))),
        ("GroupLabels", map(&n.group_labels)),
        ("CommonLabels", map(&n.common_labels)),
        ("CommonAnnotations", map(&n.common_annotations)),
        ("ExternalURL", Value::from(n.external_url.as_str())),
        ("GroupKey", Value::from(n.group_key.as_str())),
    ])
}

type FuncResult = Result<Value, TemplateError>;

fn funcs() -> FuncMap {
    let mut m = FuncMap::new();
    let mut add = |name: &str, f: fn(&[Value]) -> FuncResult| {
        m.insert(name.to_owned(), Arc::new(f));
    };
    add("toUpper", |a| one_str(a, |s| s.to_uppercase()));
    add("toLower", |a| one_str(a, |s| s.to_lowercase()));
    add("safeHtml", |a| one_str(a, str::to_owned));
    add("title", |a| {
        one_str(a, |s| {
            s.split(' ')
                .map(|w| {
                    let mut c = w.chars();
                    c.next()
                        .map(|f| f.to_uppercase().chain(c).collect::<String>())
                        .unwrap_or_default()
                })
                .collect::<Vec<_>>()
                .join(" ")
        })
    });
    add("join", |a| match a {
        [Value::String(sep), Value::List(items)] => Ok(Value::from(
            items
                .iter()
                .map(|v| v.to_string())
                .collect::<Vec<_>>()
                .join(sep),
        )),
        _ => Err(TemplateError::Exec(
            "join: want a separator and a list".into(),
        )),
    });
    m
}

fn one_str(args: &[Value], f: impl Fn(&str) -> String) -> FuncResult {
    match args {
        [Value::String(s)] => Ok(Value::from(f(s).as_str())),
        [other] => Ok(Value::from(f(&other.to_string()).as_str())),
        _ => Err(TemplateError::Exec("want one argument".into())),
    }
}
