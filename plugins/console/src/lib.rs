//! `console` notifier: prints each notification readably into Klaxon's log
//! (through the `log` import, at info level), so a first run shows alerts
//! firing and resolving with no receiver to set up.
//!
//! Config (all optional): `max_alerts` (default 10): alerts listed per
//! notification; the rest are counted.
//!
//! Output:
//! ```text
//! [FIRING:1] MLPredictionLatencyHigh model_name=fraud-detector (receiver console)
//!   - firing since 2026-11-22T03:00:00.000Z: alertname=MLPredictionLatencyHigh model_name=fraud-detector severity=warning
//!     summary: fraud-detector prediction latency 0.9s is above 0.5s
//! ```

use std::fmt::Write as _;

use klaxon_sdk::prelude::*;
use serde::Deserialize;

/// The receiver's config.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Alerts listed per notification.
    pub max_alerts: usize,
}

impl Default for Config {
    fn default() -> Self {
        Self { max_alerts: 10 }
    }
}

/// The plugin.
pub struct Console;

/// Renders a notification as the console prints it.
pub fn render(cfg: &Config, n: &Notification) -> String {
    let firing = n.alerts.iter().filter(|a| a.status == "firing").count();
    let mut out = String::new();
    let group: Vec<String> = n
        .group_labels
        .iter()
        .filter(|(k, _)| k != "alertname")
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let name = n
        .group_labels
        .iter()
        .chain(&n.common_labels)
        .find(|(k, _)| k == "alertname")
        .map(|(_, v)| v.as_str())
        .unwrap_or("alerts");
    let head = if n.status == "firing" {
        format!("FIRING:{firing}")
    } else {
        "RESOLVED".to_string()
    };
    let _ = write!(
        out,
        "[{head}] {name} {} (receiver {})",
        group.join(" "),
        n.receiver
    );
    for alert in n.alerts.iter().take(cfg.max_alerts) {
        let labels: Vec<String> = alert
            .labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let when = if alert.status == "firing" {
            format!("firing since {}", alert.starts_at)
        } else {
            format!(
                "resolved at {} (firing since {})",
                alert.ends_at, alert.starts_at
            )
        };
        let _ = write!(out, "\n  - {when}: {}", labels.join(" "));
        for (k, v) in &alert.annotations {
            let _ = write!(out, "\n    {k}: {v}");
        }
    }
    let hidden = n.alerts.len().saturating_sub(cfg.max_alerts);
    if hidden > 0 {
        let _ = write!(out, "\n  ... and {hidden} more");
    }
    out
}

impl Notifier for Console {
    type Config = Config;

    fn info() -> Info {
        Info::new(
            "console",
            env!("CARGO_PKG_VERSION"),
            "Prints each notification readably into Klaxon's log.",
        )
        .schema(
            r#"{"$schema":"https://json-schema.org/draft/2020-12/schema","type":"object","additionalProperties":false,"properties":{"max_alerts":{"type":"integer","minimum":1}}}"#,
        )
    }

    fn check_config(cfg: &Config) -> Result<(), String> {
        if cfg.max_alerts == 0 {
            return Err("max_alerts: must be at least 1".into());
        }
        Ok(())
    }

    fn send(cfg: &Config, notification: &Notification) -> Result<Delivery, DeliveryError> {
        log::info(&render(cfg, notification));
        Ok(Delivery {
            status_code: 0,
            detail: "printed".into(),
        })
    }
}

klaxon_sdk::export_notifier!(Console);

#[cfg(test)]
mod tests {
    use super::*;
    use klaxon_sdk::Alert;

    #[test]
    fn renders_firing_and_resolved() {
        let alert = |status: &str| Alert {
            status: status.into(),
            labels: vec![
                ("alertname".into(), "Lat".into()),
                ("model_name".into(), "m".into()),
            ],
            annotations: vec![("summary".into(), "too slow".into())],
            starts_at: "2026-01-01T00:00:00.000Z".into(),
            ends_at: "2026-01-01T00:05:00.000Z".into(),
            ..Default::default()
        };
        let n = Notification {
            receiver: "console".into(),
            status: "firing".into(),
            alerts: vec![alert("firing")],
            group_labels: vec![
                ("alertname".into(), "Lat".into()),
                ("model_name".into(), "m".into()),
            ],
            ..Default::default()
        };
        let text = render(&Config::default(), &n);
        assert_eq!(
            text,
            "[FIRING:1] Lat model_name=m (receiver console)\n  - firing since 2026-01-01T00:00:00.000Z: alertname=Lat model_name=m\n    summary: too slow"
        );
        let n = Notification {
            status: "resolved".into(),
            alerts: vec![alert("resolved")],
            ..n
        };
        assert!(render(&Config::default(), &n).starts_with("[RESOLVED] Lat model_name=m"));
        assert!(
            render(
                &Config { max_alerts: 1 },
                &Notification {
                    alerts: vec![alert("firing"), alert("firing")],
                    ..n
                }
            )
            .ends_with("... and 1 more")
        );
    }
}
