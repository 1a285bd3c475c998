//! The values that flow from rules to routing to notification: an `Alert`
//! (Alertmanager's model: labels, annotations, start and end) and a
//! `Notification` for one alert group.
//!
//! Plain data only; owns no behaviour beyond formatting. Imported by rules,
//! route, notify and api; imports nothing from them.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

use crate::store::Labels;

/// One alert as routing sees it. Identity is the fingerprint of its labels.
///
/// Cheap to clone: labels, annotations and generator URL are shared, so
/// the alert store and every routing group holding the alert hold one copy
/// of its text.
#[derive(Debug, Clone, PartialEq)]
pub struct Alert {
    pub labels: Labels,
    pub annotations: Arc<BTreeMap<String, String>>,
    pub starts_at: DateTime<Utc>,
    /// `None` while firing; the resolution time once resolved.
    pub ends_at: Option<DateTime<Utc>>,
    pub generator_url: Arc<str>,
}

impl Alert {
    /// The alert's identity (FNV-1a of its labels, as Alertmanager computes it).
    pub fn fingerprint(&self) -> u64 {
        self.labels.fingerprint()
    }

    /// True once `ends_at` has passed.
    pub fn is_resolved_at(&self, now: DateTime<Utc>) -> bool {
        self.ends_at.is_some_and(|end| end <= now)
    }

    /// The alert's name (`alertname` label), or "".
    pub fn name(&self) -> &str {
        self.labels.get("alertname").unwrap_or("")
    }
}

/// Alertmanager's `0001-01-01T00:00:00Z`: the end time of a firing alert.
pub const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

/// RFC 3339 with millisecond precision, `Z` suffix.
pub fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Fingerprint as Alertmanager prints it: 16 hex digits.
pub fn fingerprint_hex(fp: u64) -> String {
    format!("{fp:016x}")
}

/// Label (or annotation) pairs sorted by name, each name once: the label
/// sets of a notification. A JSON object on the wire, as Alertmanager's; in
/// memory, shared with the alert or group they come from, so that building
/// a notification copies no label, and handing it to a plugin lowers the
/// text straight from here (see `notify::wit`).
#[derive(Debug, Clone)]
pub enum Pairs {
    /// A label set (an alert's labels, a group's).
    Labels(Labels),
    /// A map (an alert's annotations; what several alerts share).
    Map(Arc<BTreeMap<String, String>>),
}

impl Default for Pairs {
    fn default() -> Self {
        Pairs::Labels(Labels::empty())
    }
}

impl PartialEq for Pairs {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl Pairs {
    /// The value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        match self {
            Pairs::Labels(l) => l.get(name),
            Pairs::Map(m) => m.get(name).map(String::as_str),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn len(&self) -> usize {
        match self {
            Pairs::Labels(l) => l.len(),
            Pairs::Map(m) => m.len(),
        }
    }

    /// The pairs, by name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        let (labels, map) = match self {
            Pairs::Labels(l) => (Some(l.iter()), None),
            Pairs::Map(m) => (None, Some(m.iter().map(|(n, v)| (n.as_str(), v.as_str())))),
        };
        labels
            .into_iter()
            .flatten()
            .chain(map.into_iter().flatten())
    }
}

/// From pairs in any order; of a name given twice the last value stays,
/// as in a map.
impl FromIterator<(String, String)> for Pairs {
    fn from_iter<I: IntoIterator<Item = (String, String)>>(pairs: I) -> Self {
        Pairs::Map(Arc::new(pairs.into_iter().collect()))
    }
}

impl Serialize for Pairs {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.iter())
    }
}

impl<'de> Deserialize<'de> for Pairs {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        BTreeMap::<String, String>::deserialize(deserializer).map(|m| Pairs::Map(Arc::new(m)))
    }
}

/// One alert inside a notification.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct NotifiedAlert {
    /// `firing` or `resolved`.
    pub status: Cow<'static, str>,
    pub labels: Pairs,
    pub annotations: Pairs,
    pub starts_at: String,
    pub ends_at: Cow<'static, str>,
    #[serde(rename = "generatorURL")]
    pub generator_url: Arc<str>,
    pub fingerprint: String,
}

/// One notification for one alert group and one receiver.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Notification {
    pub receiver: String,
    /// `firing` if any alert fires, else `resolved`.
    pub status: Cow<'static, str>,
    pub alerts: Vec<NotifiedAlert>,
    pub group_labels: Pairs,
    pub common_labels: Pairs,
    pub common_annotations: Pairs,
    #[serde(rename = "externalURL")]
    pub external_url: String,
    pub group_key: String,
    pub truncated_alerts: u32,
}

impl Notification {
    /// Builds a notification from alerts as of `now`: statuses, common labels
    /// and annotations (those every alert shares with the same value).
    pub fn build(
        receiver: &str,
        group_key: &str,
        group_labels: &Labels,
        external_url: &str,
        alerts: &[Alert],
        now: DateTime<Utc>,
    ) -> Self {
        let notified: Vec<NotifiedAlert> = alerts
            .iter()
            .map(|a| {
                let resolved = a.is_resolved_at(now);
                NotifiedAlert {
                    status: Cow::Borrowed(if resolved { "resolved" } else { "firing" }),
                    labels: Pairs::Labels(a.labels.clone()),
                    annotations: Pairs::Map(a.annotations.clone()),
                    starts_at: rfc3339(a.starts_at),
                    ends_at: match a.ends_at {
                        Some(t) if resolved => Cow::Owned(rfc3339(t)),
                        _ => Cow::Borrowed(ZERO_TIME),
                    },
                    generator_url: a.generator_url.clone(),
                    fingerprint: fingerprint_hex(a.fingerprint()),
                }
            })
            .collect();
        let status = if notified.iter().any(|a| a.status == "firing") {
            "firing"
        } else {
            "resolved"
        };
        let common_labels = common(&notified, |a| &a.labels);
        let common_annotations = common(&notified, |a| &a.annotations);
        Self {
            receiver: receiver.to_string(),
            status: Cow::Borrowed(status),
            alerts: notified,
            group_labels: Pairs::Labels(group_labels.clone()),
            common_labels,
            common_annotations,
            external_url: external_url.to_string(),
            group_key: group_key.to_string(),
            truncated_alerts: 0,
        }
    }
}

/// The pairs present with the same value in every alert's `set`: the first
/// alert's own (shared) when all of them are.
fn common(alerts: &[NotifiedAlert], set: impl Fn(&NotifiedAlert) -> &Pairs) -> Pairs {
    let Some((first, rest)) = alerts.split_first() else {
        return Pairs::default();
    };
    let first = set(first);
    let shared = |(n, v): &(&str, &str)| rest.iter().all(|a| set(a).get(n) == Some(*v));
    if first.iter().all(|pair| shared(&pair)) {
        return first.clone();
    }
    first
        .iter()
        .filter(shared)
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notification_has_common_labels_and_status() {
        let now = Utc::now();
        let mk = |model: &str, resolved: bool| Alert {
            labels: Labels::new([("alertname", "A"), ("model_name", model)]),
            annotations: Arc::new(BTreeMap::from([(
                "summary".to_string(),
                format!("{model} bad"),
            )])),
            starts_at: now - chrono::Duration::seconds(60),
            ends_at: resolved.then(|| now - chrono::Duration::seconds(1)),
            generator_url: "".into(),
        };
        let n = Notification::build(
            "r",
            "{}:{alertname=\"A\"}",
            &Labels::new([("alertname", "A")]),
            "http://k",
            &[mk("a", false), mk("b", true)],
            now,
        );
        assert_eq!(n.status, "firing");
        assert_eq!(n.alerts[0].status, "firing");
        assert_eq!(n.alerts[0].ends_at, ZERO_TIME);
        assert_eq!(n.alerts[1].status, "resolved");
        assert_eq!(
            n.common_labels,
            Pairs::from_iter([("alertname".to_string(), "A".to_string())])
        );
        assert!(n.common_annotations.is_empty());
        assert_eq!(n.alerts[0].fingerprint.len(), 16);
    }

    #[test]
    fn pairs_are_sorted_unique_and_a_json_object() {
        let pair = |n: &str, v: &str| (n.to_string(), v.to_string());
        let p: Pairs = [pair("b", "1"), pair("a", "2"), pair("b", "3")]
            .into_iter()
            .collect();
        assert_eq!(p.iter().collect::<Vec<_>>(), [("a", "2"), ("b", "3")]);
        assert_eq!(p.get("b"), Some("3"));
        assert_eq!(p.get("c"), None);
        let json = serde_json::to_string(&p).expect("serialize");
        assert_eq!(json, r#"{"a":"2","b":"3"}"#);
        let back: Pairs = serde_json::from_str(r#"{"b":"3","a":"2"}"#).expect("deserialize");
        assert_eq!(back, p);
    }
}
