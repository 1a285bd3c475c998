//! The [`Notifier`] trait: a plugin that delivers one notification group to an outside
//! service, with the [`Notification`] it receives and the outcome it reports.
//!
//! Export an implementation with [`export_notifier!`](crate::export_notifier). Reach the
//! outside world with [`crate::http::send`], or [`crate::smtp::send`] for mail.

use std::fmt;

use serde::de::DeserializeOwned;

use crate::info::Info;

/// A plugin that delivers notifications.
///
/// The host calls [`info`](Notifier::info) at load, `check-config` for each receiver
/// that uses the plugin, and `send` for each notification. Before `send` the SDK parses
/// and checks the config again; a config error becomes
/// [`DeliveryError::Permanent`].
///
/// Retries, dedup, grouping and `send_resolved` are the host's business: a notifier
/// makes one delivery attempt and says whether another could succeed.
pub trait Notifier {
    /// The receiver's config for this plugin, deserialised from JSON. Secrets are
    /// included; never echo them in errors or logs.
    type Config: DeserializeOwned;

    /// Name, version, description and config schema.
    fn info() -> Info;

    /// Semantic checks serde cannot express. Name the field in the error.
    fn check_config(_cfg: &Self::Config) -> Result<(), String> {
        Ok(())
    }

    /// Makes one delivery attempt. The host may call it for several
    /// notifications in one instance (a batch, in turn): keep no state
    /// between calls that one notification could leave for the next.
    fn send(cfg: &Self::Config, notification: &Notification) -> Result<Delivery, DeliveryError>;
}

/// One notification for one alert group (Alertmanager's webhook model).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Notification {
    /// The receiver's name.
    pub receiver: String,
    /// `firing` if any alert fires, else `resolved`.
    pub status: String,
    /// The group's alerts.
    pub alerts: Vec<Alert>,
    /// The labels the group is keyed on.
    pub group_labels: Vec<(String, String)>,
    /// Labels every alert shares.
    pub common_labels: Vec<(String, String)>,
    /// Annotations every alert shares.
    pub common_annotations: Vec<(String, String)>,
    /// The host's external URL.
    pub external_url: String,
    /// Identifies the group across notifications.
    pub group_key: String,
    /// Alerts the host already left out of `alerts`.
    pub truncated_alerts: u32,
}

/// One alert inside a notification.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Alert {
    /// `firing` or `resolved`.
    pub status: String,
    /// The alert's labels.
    pub labels: Vec<(String, String)>,
    /// The alert's annotations.
    pub annotations: Vec<(String, String)>,
    /// RFC 3339.
    pub starts_at: String,
    /// RFC 3339; `0001-01-01T00:00:00Z` while firing.
    pub ends_at: String,
    /// Link back to the rule that produced the alert.
    pub generator_url: String,
    /// 16 hex digits, as Alertmanager computes it.
    pub fingerprint: String,
}

impl Alert {
    /// The value of label `name`.
    pub fn label(&self, name: &str) -> Option<&str> {
        lookup(&self.labels, name)
    }

    /// The value of annotation `name`.
    pub fn annotation(&self, name: &str) -> Option<&str> {
        lookup(&self.annotations, name)
    }
}

fn lookup<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

/// A delivery that succeeded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// The remote status code, 0 when not HTTP.
    pub status_code: u16,
    /// Free text for the delivery log.
    pub detail: String,
}

/// A delivery that failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliveryError {
    /// Worth retrying: 5xx, 429, timeouts, broken connections.
    Retryable {
        /// What went wrong.
        reason: String,
        /// When the remote said how long to wait.
        retry_after_ms: Option<u64>,
    },
    /// Never worth retrying: other 4xx, refused destination, bad config.
    Permanent(String),
}

impl DeliveryError {
    /// A retryable error without a retry hint.
    pub fn retryable(reason: impl Into<String>) -> Self {
        Self::Retryable {
            reason: reason.into(),
            retry_after_ms: None,
        }
    }

    /// Whether another attempt could succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Retryable { .. })
    }
}

impl fmt::Display for DeliveryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Retryable {
                reason,
                retry_after_ms: Some(ms),
            } => write!(f, "{reason} (retry after {ms} ms)"),
            Self::Retryable { reason, .. } => f.write_str(reason),
            Self::Permanent(reason) => f.write_str(reason),
        }
    }
}

impl std::error::Error for DeliveryError {}
