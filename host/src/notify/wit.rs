//! The WIT form of notifications for a notifier call, borrowing their text
//! ([`borrowed`]): the labels of a call's notifications gathered in two
//! lists, the alerts in a third, and each record a slice of them, so that
//! a batch takes a handful of allocations whatever its labels.

use crate::alert::{Notification, Pairs};
use crate::plugins::borrowed::{self, Alert, Label};

/// The label pairs of some notifications, in the order the other two
/// steps slice them: [`Labels::alerts`], then [`Labels::notifications`].
pub struct Labels<'n> {
    /// Each alert's labels, then its annotations.
    of_alerts: Vec<Label<'n>>,
    /// Each notification's group labels, common labels, then common
    /// annotations.
    of_groups: Vec<Label<'n>>,
}

fn push<'n>(to: &mut Vec<Label<'n>>, pairs: &'n Pairs) {
    to.extend(pairs.iter().map(|(name, value)| Label { name, value }));
}

/// The next `len` items from `at` on.
fn take<'a, T>(from: &'a [T], at: &mut usize, len: usize) -> &'a [T] {
    let slice = &from[*at..*at + len];
    *at += len;
    slice
}

impl<'n> Labels<'n> {
    pub fn of(notifications: &[&'n Notification]) -> Self {
        let mut of_alerts = Vec::new();
        let mut of_groups = Vec::new();
        for n in notifications {
            for a in &n.alerts {
                push(&mut of_alerts, &a.labels);
                push(&mut of_alerts, &a.annotations);
            }
            push(&mut of_groups, &n.group_labels);
            push(&mut of_groups, &n.common_labels);
            push(&mut of_groups, &n.common_annotations);
        }
        Self {
            of_alerts,
            of_groups,
        }
    }

    /// The alerts of `notifications` (those [`Labels::of`] was given).
    pub fn alerts<'a>(&'a self, notifications: &[&'a Notification]) -> Vec<Alert<'a>> {
        let mut at = 0;
        notifications
            .iter()
            .flat_map(|n| &n.alerts)
            .map(|a| Alert {
                status: &a.status,
                labels: take(&self.of_alerts, &mut at, a.labels.len()),
                annotations: take(&self.of_alerts, &mut at, a.annotations.len()),
                starts_at: &a.starts_at,
                ends_at: &a.ends_at,
                generator_url: &a.generator_url,
                fingerprint: &a.fingerprint,
            })
            .collect()
    }

    /// The notifications themselves, given their [`Labels::alerts`].
    pub fn notifications<'a>(
        &'a self,
        notifications: &[&'a Notification],
        alerts: &'a [Alert<'a>],
    ) -> Vec<borrowed::Notification<'a>> {
        let (mut at, mut alert_at) = (0, 0);
        notifications
            .iter()
            .map(|n| borrowed::Notification {
                receiver: &n.receiver,
                status: &n.status,
                alerts: take(alerts, &mut alert_at, n.alerts.len()),
                group_labels: take(&self.of_groups, &mut at, n.group_labels.len()),
                common_labels: take(&self.of_groups, &mut at, n.common_labels.len()),
                common_annotations: take(&self.of_groups, &mut at, n.common_annotations.len()),
                external_url: &n.external_url,
                group_key: &n.group_key,
                truncated_alerts: n.truncated_alerts,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::NotifiedAlert;
    use std::collections::BTreeMap;
    use std::sync::Arc;

    fn pairs(p: &[(&str, &str)]) -> Pairs {
        p.iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    fn alert(model: &str, extra: usize) -> NotifiedAlert {
        let mut labels = vec![("alertname", "Drift"), ("model", model)];
        let extra_names: Vec<String> = (0..extra).map(|i| format!("x{i}")).collect();
        labels.extend(extra_names.iter().map(|n| (n.as_str(), "1")));
        NotifiedAlert {
            status: "firing".into(),
            labels: Pairs::Labels(crate::store::Labels::new(labels)),
            annotations: Pairs::Map(Arc::new(BTreeMap::from([(
                "summary".to_string(),
                format!("{model} drifts"),
            )]))),
            starts_at: "2026-12-01T00:00:00.000Z".into(),
            ends_at: crate::alert::ZERO_TIME.into(),
            generator_url: Arc::from("http://g"),
            fingerprint: format!("{:016x}", model.len()),
        }
    }

    fn owned(labels: &[Label<'_>]) -> Vec<(String, String)> {
        labels
            .iter()
            .map(|l| (l.name.to_string(), l.value.to_string()))
            .collect()
    }

    fn owned_pairs(p: &Pairs) -> Vec<(String, String)> {
        p.iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn each_record_gets_its_own_slices() {
        let first = Notification {
            receiver: "a".into(),
            status: "firing".into(),
            alerts: vec![alert("m1", 0), alert("m2", 3)],
            group_labels: pairs(&[("alertname", "Drift")]),
            common_labels: pairs(&[("alertname", "Drift")]),
            common_annotations: Pairs::default(),
            external_url: "http://k".into(),
            group_key: "{}:{alertname=\"Drift\"}".into(),
            truncated_alerts: 2,
        };
        let second = Notification {
            receiver: "b".into(),
            status: "resolved".into(),
            alerts: vec![alert("m3", 1)],
            group_labels: pairs(&[("model", "m3"), ("team", "ml")]),
            common_labels: first.alerts[0].labels.clone(),
            common_annotations: pairs(&[("summary", "m3 drifts")]),
            external_url: "http://k".into(),
            group_key: "{}:{model=\"m3\"}".into(),
            truncated_alerts: 0,
        };
        let all = [&first, &second];
        let labels = Labels::of(&all);
        let alerts = labels.alerts(&all);
        let wits = labels.notifications(&all, &alerts);
        assert_eq!(wits.len(), 2);
        for (wit, n) in wits.iter().zip(all) {
            assert_eq!(wit.receiver, n.receiver);
            assert_eq!(wit.status, n.status);
            assert_eq!(wit.group_key, n.group_key);
            assert_eq!(wit.truncated_alerts, n.truncated_alerts);
            assert_eq!(owned(wit.group_labels), owned_pairs(&n.group_labels));
            assert_eq!(owned(wit.common_labels), owned_pairs(&n.common_labels));
            assert_eq!(
                owned(wit.common_annotations),
                owned_pairs(&n.common_annotations)
            );
            assert_eq!(wit.alerts.len(), n.alerts.len());
            for (a, na) in wit.alerts.iter().zip(&n.alerts) {
                assert_eq!(owned(a.labels), owned_pairs(&na.labels));
                assert_eq!(owned(a.annotations), owned_pairs(&na.annotations));
                assert_eq!(a.fingerprint, na.fingerprint);
                assert_eq!(a.ends_at, na.ends_at);
            }
        }
    }
}
