//! The seam between wit-bindgen's types and the SDK's.
//!
//! Owns the generic entry points the `export_*!` macros call from the Wasm exports and
//! [`crate::testing`] calls natively, so both run the same code: config text → parse →
//! `check_config` → (batch view | conversion) → the author's code → conversion back.
//! Must never be used by plugin authors directly; its API can change at any time.

use crate::bindings::types as wit;
use crate::composite::{Composite, Signal, SignalGroup};
use crate::config;
use crate::detector::Detector;
use crate::info::Info;
use crate::notifier::{Alert, Delivery, DeliveryError, Notification, Notifier};
use crate::series::Batch;
use crate::verdict::{Output, Verdict};

pub use crate::bindings::types as wit_types;

/// Parses `text` and runs the plugin's own checks on it.
fn checked_config<C: serde::de::DeserializeOwned>(
    text: &str,
    check: fn(&C) -> Result<(), String>,
) -> Result<C, String> {
    let cfg = config::parse::<C>(text)?;
    check(&cfg)?;
    Ok(cfg)
}

/// Routes panic messages to the host's log before the trap, so an operator sees why
/// the plugin died rather than a bare `unreachable` trap.
fn install_panic_hook() {
    #[cfg(target_arch = "wasm32")]
    {
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| {
            std::panic::set_hook(Box::new(|info| {
                crate::log::error(&format!("plugin {info}"));
            }));
        });
    }
}

fn info_to_wit(info: Info, kind: wit::PluginKind) -> wit::PluginInfo {
    wit::PluginInfo {
        name: info.name,
        version: info.version,
        kind,
        description: info.description,
        config_schema: info.config_schema,
    }
}

fn labels_to_wit(pairs: Vec<(String, String)>) -> Vec<wit::Label> {
    pairs
        .into_iter()
        .map(|(name, value)| wit::Label { name, value })
        .collect()
}

fn labels_from_wit(labels: Vec<wit::Label>) -> Vec<(String, String)> {
    labels.into_iter().map(|l| (l.name, l.value)).collect()
}

/// SDK output → wire output.
pub fn output_to_wit(output: Output) -> wit::SeriesOutput {
    let Output { verdict, state } = output;
    wit::SeriesOutput {
        verdict: wit::Verdict {
            firing: verdict.firing,
            score: verdict.score,
            summary: verdict.summary,
            annotations: labels_to_wit(verdict.annotations),
        },
        state,
    }
}

/// Wire output → SDK output (for the native harness).
pub fn output_from_wit(output: wit::SeriesOutput) -> Output {
    Output {
        verdict: Verdict {
            firing: output.verdict.firing,
            score: output.verdict.score,
            summary: output.verdict.summary,
            annotations: labels_from_wit(output.verdict.annotations),
        },
        state: output.state,
    }
}

// ---- detector ----

/// `info` of a detector.
pub fn detector_info<D: Detector>() -> wit::PluginInfo {
    info_to_wit(D::info(), wit::PluginKind::Detector)
}

/// `check-config` of a detector.
pub fn detector_check_config<D: Detector>(config: String) -> Result<(), String> {
    checked_config(&config, D::check_config).map(drop)
}

/// `evaluate` of a detector.
pub fn detector_evaluate<D: Detector>(
    config: String,
    batch: wit::Batch,
) -> Result<Vec<wit::SeriesOutput>, String> {
    install_panic_hook();
    let cfg =
        checked_config(&config, D::check_config).map_err(|e| format!("invalid config: {e}"))?;
    let view = Batch::new(&batch)?;
    let outputs = D::evaluate_batch(&cfg, &view)?;
    Ok(outputs.into_iter().map(output_to_wit).collect())
}

// ---- composite ----

/// `info` of a composite.
pub fn composite_info<C: Composite>() -> wit::PluginInfo {
    info_to_wit(C::info(), wit::PluginKind::Composite)
}

/// `check-config` of a composite.
pub fn composite_check_config<C: Composite>(config: String) -> Result<(), String> {
    checked_config(&config, C::check_config).map(drop)
}

/// `evaluate` of a composite.
pub fn composite_evaluate<C: Composite>(
    config: String,
    groups: Vec<wit::SignalGroup>,
) -> Result<Vec<wit::SeriesOutput>, String> {
    install_panic_hook();
    let cfg =
        checked_config(&config, C::check_config).map_err(|e| format!("invalid config: {e}"))?;
    let groups: Vec<SignalGroup> = groups.into_iter().map(group_from_wit).collect();
    let outputs = C::evaluate_groups(&cfg, &groups)?;
    Ok(outputs.into_iter().map(output_to_wit).collect())
}

fn group_from_wit(g: wit::SignalGroup) -> SignalGroup {
    SignalGroup {
        labels: labels_from_wit(g.labels),
        signals: g
            .signals
            .into_iter()
            .map(|s| Signal {
                name: s.name,
                firing: s.firing,
                value: s.value,
                since_ms: s.since_ms,
                history: s.history,
            })
            .collect(),
        eval_time_ms: g.eval_time_ms,
        state: g.state,
    }
}

/// SDK group → wire group (for the native harness).
pub fn group_to_wit(g: SignalGroup) -> wit::SignalGroup {
    wit::SignalGroup {
        labels: labels_to_wit(g.labels),
        signals: g
            .signals
            .into_iter()
            .map(|s| wit::Signal {
                name: s.name,
                firing: s.firing,
                value: s.value,
                since_ms: s.since_ms,
                history: s.history,
            })
            .collect(),
        eval_time_ms: g.eval_time_ms,
        state: g.state,
    }
}

// ---- notifier ----

/// `info` of a notifier.
pub fn notifier_info<N: Notifier>() -> wit::PluginInfo {
    info_to_wit(N::info(), wit::PluginKind::Notifier)
}

/// `check-config` of a notifier.
pub fn notifier_check_config<N: Notifier>(config: String) -> Result<(), String> {
    checked_config(&config, N::check_config).map(drop)
}

/// `send` of a notifier.
pub fn notifier_send<N: Notifier>(
    config: String,
    notification: wit::Notification,
) -> Result<wit::Delivery, wit::DeliveryError> {
    install_panic_hook();
    let cfg = checked_config(&config, N::check_config)
        .map_err(|e| wit::DeliveryError::Permanent(format!("invalid config: {e}")))?;
    send_one::<N>(&cfg, notification)
}

/// `send-batch` of a notifier: the config checked once, then each
/// notification sent as `send` would.
pub fn notifier_send_batch<N: Notifier>(
    config: String,
    notifications: Vec<wit::Notification>,
) -> Vec<Result<wit::Delivery, wit::DeliveryError>> {
    install_panic_hook();
    let cfg = checked_config(&config, N::check_config);
    notifications
        .into_iter()
        .enumerate()
        .map(|(index, n)| {
            let outcome = match &cfg {
                Ok(cfg) => send_one::<N>(cfg, n),
                Err(e) => Err(wit::DeliveryError::Permanent(format!(
                    "invalid config: {e}"
                ))),
            };
            // So that a later trap in the same call does not send it again.
            crate::bindings::wit_batch::report(index as u32, outcome.as_ref());
            outcome
        })
        .collect()
}

fn send_one<N: Notifier>(
    cfg: &N::Config,
    notification: wit::Notification,
) -> Result<wit::Delivery, wit::DeliveryError> {
    let notification = notification_from_wit(notification);
    match N::send(cfg, &notification) {
        Ok(d) => Ok(wit::Delivery {
            status_code: d.status_code,
            detail: d.detail,
        }),
        Err(DeliveryError::Retryable {
            reason,
            retry_after_ms,
        }) => Err(wit::DeliveryError::Retryable(wit::RetryableError {
            reason,
            retry_after_ms,
        })),
        Err(DeliveryError::Permanent(reason)) => Err(wit::DeliveryError::Permanent(reason)),
    }
}

/// Wire delivery result → SDK result (for the native harness).
pub fn delivery_from_wit(
    result: Result<wit::Delivery, wit::DeliveryError>,
) -> Result<Delivery, DeliveryError> {
    match result {
        Ok(d) => Ok(Delivery {
            status_code: d.status_code,
            detail: d.detail,
        }),
        Err(wit::DeliveryError::Retryable(r)) => Err(DeliveryError::Retryable {
            reason: r.reason,
            retry_after_ms: r.retry_after_ms,
        }),
        Err(wit::DeliveryError::Permanent(reason)) => Err(DeliveryError::Permanent(reason)),
    }
}

fn notification_from_wit(n: wit::Notification) -> Notification {
    Notification {
        receiver: n.receiver,
        status: n.status,
        alerts: n
            .alerts
            .into_iter()
            .map(|a| Alert {
                status: a.status,
                labels: labels_from_wit(a.labels),
                annotations: labels_from_wit(a.annotations),
                starts_at: a.starts_at,
                ends_at: a.ends_at,
                generator_url: a.generator_url,
                fingerprint: a.fingerprint,
            })
            .collect(),
        group_labels: labels_from_wit(n.group_labels),
        common_labels: labels_from_wit(n.common_labels),
        common_annotations: labels_from_wit(n.common_annotations),
        external_url: n.external_url,
        group_key: n.group_key,
        truncated_alerts: n.truncated_alerts,
    }
}

/// SDK notification → wire notification (for the native harness).
pub fn notification_to_wit(n: Notification) -> wit::Notification {
    wit::Notification {
        receiver: n.receiver,
        status: n.status,
        alerts: n
            .alerts
            .into_iter()
            .map(|a| wit::Alert {
                status: a.status,
                labels: labels_to_wit(a.labels),
                annotations: labels_to_wit(a.annotations),
                starts_at: a.starts_at,
                ends_at: a.ends_at,
                generator_url: a.generator_url,
                fingerprint: a.fingerprint,
            })
            .collect(),
        group_labels: labels_to_wit(n.group_labels),
        common_labels: labels_to_wit(n.common_labels),
        common_annotations: labels_to_wit(n.common_annotations),
        external_url: n.external_url,
        group_key: n.group_key,
        truncated_alerts: n.truncated_alerts,
    }
}
