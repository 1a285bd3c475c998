//! The email's user-set `headers`, `html` and `text` as Go templates over
//! Alertmanager's notification data, rendered by the notifiers' shared
//! template module (`klaxon-notify-common`): Alertmanager's data model and
//! methods (`.Alerts.Firing`, `.CommonLabels.SortedPairs`, …), its
//! functions and the named templates of its `default.tmpl`, plus the
//! `{{ define }}`s of the config's `templates:` files. Output is not
//! HTML-escaped (Go's text/template, as Alertmanager's `text`).

use klaxon_notify_common::{Renderer, Templates};

/// One templated config field: its name (for errors) and text.
pub struct Template {
    field: String,
    text: String,
}

impl Template {
    /// Checks `text`, the value of config field `field`, against
    /// `templates`; the error names the field.
    pub fn parse(field: &str, text: &str, templates: &Templates) -> Result<Self, String> {
        templates.check(field, text)?;
        Ok(Self {
            field: field.to_owned(),
            text: text.to_owned(),
        })
    }

    /// Renders with `r` (one notification's data); the error names the field.
    pub fn render(&self, r: &Renderer) -> Result<String, String> {
        r.render(&self.field, &self.text)
    }
}
