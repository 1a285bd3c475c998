//! Annotation and label templates in Go text/template syntax (the `gotmpl`
//! crate, a port of Go's text/template), with the variables Prometheus
//! defines for alerting rules: `$labels`, `$externalLabels`, `$value`.
//! Templates are parsed once, when the rule is built.

use std::collections::BTreeMap;
use std::sync::Arc;

use gotmpl::Value;

/// What Prometheus prepends to every alert template.
const PREFIX: &str =
    "{{$labels := .Labels}}{{$externalLabels := .ExternalLabels}}{{$value := .Value}}";

/// A parsed template; text without `{{` is kept as is.
#[derive(Clone)]
pub struct AlertTemplate {
    raw: String,
    parsed: Option<Arc<gotmpl::Template>>,
}

impl std::fmt::Debug for AlertTemplate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.raw)
    }
}

impl AlertTemplate {
    /// Parses `text`; the error says what is wrong.
    pub fn parse(text: &str) -> Result<Self, String> {
        let parsed = if text.contains("{{") {
            let t = gotmpl::Template::new("alert")
                .parse(&format!("{PREFIX}{text}"))
                .map_err(|e| e.to_string())?;
            Some(Arc::new(t))
        } else {
            None
        };
        Ok(Self {
            raw: text.to_string(),
            parsed,
        })
    }

    /// The template's source text.
    pub fn source(&self) -> &str {
        &self.raw
    }

    /// Renders for one alert.
    pub fn render(
        &self,
        labels: &BTreeMap<String, String>,
        external_labels: &BTreeMap<String, String>,
        value: f64,
    ) -> Result<String, String> {
        let Some(t) = &self.parsed else {
            return Ok(self.raw.clone());
        };
        let map = |m: &BTreeMap<String, String>| {
            Value::from(
                m.iter()
                    .map(|(k, v)| (k.clone(), Value::from(v.as_str())))
                    .collect::<BTreeMap<String, Value>>(),
            )
        };
        let data = Value::from(BTreeMap::from([
            ("Labels".to_string(), map(labels)),
            ("ExternalLabels".to_string(), map(external_labels)),
            ("Value".to_string(), Value::Float(value)),
        ]));
        t.execute_to_string(&data).map_err(|e| e.to_string())
    }
}

/// Checks that a template parses.
pub fn check(text: &str) -> Result<(), String> {
    AlertTemplate::parse(text).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(text: &str, value: f64) -> String {
        let labels = BTreeMap::from([("model_name".to_string(), "fraud".to_string())]);
        AlertTemplate::parse(text)
            .unwrap()
            .render(&labels, &BTreeMap::new(), value)
            .unwrap()
    }

    #[test]
    fn renders_labels_and_value_like_go() {
        assert_eq!(
            render(
                "{{ $labels.model_name }} latency {{ $value }} above 0.2 s",
                0.25
            ),
            "fraud latency 0.25 above 0.2 s"
        );
        assert_eq!(render("plain", 1.0), "plain");
        // Shortest representation, as Go's %v prints float64. (Go switches to
        // exponent form from 1e21; gotmpl does not yet: tracked with the
        // Prometheus template functions.)
        assert_eq!(render("{{ $value }}", 3.0), "3");
    }

    #[test]
    fn bad_templates_are_refused() {
        assert!(check("{{ $labels.x ").is_err());
        assert!(check("{{ if }}").is_err());
        assert!(check("{{ $labels.x }}").is_ok());
    }
}
