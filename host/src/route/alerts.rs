//! The alert store (Alertmanager's alert provider): every alert the host
//! received, from its own rules or from `POST /api/v2/alerts`, by
//! fingerprint. A re-sent alert is merged with the one stored as
//! Alertmanager merges them (earliest start; an explicit end beats a
//! timeout); alerts posted without an end time resolve by themselves after
//! `resolve_timeout` unless re-sent. Resolved alerts are dropped by `gc`.
//! An alert posted again with the text stored keeps the stored text (the
//! API hands it over borrowed, [`PostedAlert`]): a re-send allocates nothing.
//!
//! Also what muting needs: every stored alert is shown to the inhibitor, and
//! [`Muter`] answers "is this alert silenced or inhibited now, and by what".

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::Arc;

use arc_swap::ArcSwap;
use chrono::{DateTime, Utc};
use dashmap::DashMap;
use dashmap::mapref::entry::Entry;
use rustc_hash::FxBuildHasher;
use smallvec::SmallVec;

use crate::alert::Alert;
use crate::silence::Silences;
use crate::store::Labels;

use super::inhibit::Inhibitor;

/// An alert as stored: the alert and what merging needs.
#[derive(Debug, Clone)]
pub struct StoredAlert {
    pub alert: Alert,
    pub updated_at: DateTime<Utc>,
    /// The end time is a timeout (`resolve_timeout`), not one the sender set.
    pub timeout: bool,
}

impl StoredAlert {
    fn end(&self) -> DateTime<Utc> {
        self.alert.ends_at.unwrap_or(DateTime::<Utc>::MAX_UTC)
    }

    fn resolved(&self, now: DateTime<Utc>) -> bool {
        self.alert.is_resolved_at(now)
    }

    /// Alertmanager's `Alert.Merge`; `self` is the older alert.
    fn merge(&self, newer: StoredAlert, now: DateTime<Utc>) -> StoredAlert {
        if newer.updated_at < self.updated_at {
            return newer.merge(self.clone(), now);
        }
        let (newer_resolved, newer_end) = (newer.resolved(now), newer.end());
        let mut res = newer;
        if self.alert.starts_at < res.alert.starts_at {
            res.alert.starts_at = self.alert.starts_at;
        }
        if newer_resolved {
            if self.resolved(now) && self.end() > newer_end {
                res.alert.ends_at = self.alert.ends_at;
            }
        } else if self.end() > newer_end && !self.timeout {
            res.alert.ends_at = self.alert.ends_at;
            res.timeout = false;
        }
        res
    }
}

/// Name-value pairs borrowed from a request, sorted by name, names unique.
pub type BorrowedPairs<'a, const N: usize> = SmallVec<[(Cow<'a, str>, Cow<'a, str>); N]>;

/// An alert as posted to `POST /api/v2/alerts`, validated, its text still
/// borrowed from the request: the store compares it with the stored alert
/// and builds only what differs, so a re-sent alert allocates nothing.
#[derive(Debug)]
pub struct PostedAlert<'a> {
    /// Sorted by name, names unique, no empty value.
    pub labels: BorrowedPairs<'a, 8>,
    /// Sorted by name, names unique.
    pub annotations: BorrowedPairs<'a, 4>,
    pub generator_url: Cow<'a, str>,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    /// The end time is a timeout (`resolve_timeout`), not one the sender set.
    pub timeout: bool,
}

impl PostedAlert<'_> {
    /// The [`text_hash`] of this alert.
    fn text_hash(&self) -> u64 {
        text_hash(
            self.labels.iter().map(|(k, v)| (&**k, &**v)),
            self.annotations.iter().map(|(k, v)| (&**k, &**v)),
            &self.generator_url,
        )
    }

    /// The alert as stored, sharing the text of `known` (the stored alert
    /// of the same fingerprint) where it is the same.
    fn to_stored(&self, known: Option<&Alert>, now: DateTime<Utc>) -> StoredAlert {
        let labels = match known {
            Some(k) if k.labels.equals_sorted(&self.labels) => k.labels.clone(),
            _ => Labels::from_sorted(&self.labels),
        };
        let annotations = match known {
            Some(k) if same_pairs(&k.annotations, &self.annotations) => k.annotations.clone(),
            _ => Arc::new(
                self.annotations
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            ),
        };
        let generator_url = match known {
            Some(k) if *k.generator_url == *self.generator_url => k.generator_url.clone(),
            _ => Arc::from(&*self.generator_url),
        };
        self.with_text(labels, annotations, generator_url, now)
    }

    /// The alert as stored, its text that of `known` (the same text).
    fn with_text_of(&self, known: &Alert, now: DateTime<Utc>) -> StoredAlert {
        self.with_text(
            known.labels.clone(),
            known.annotations.clone(),
            known.generator_url.clone(),
            now,
        )
    }

    fn with_text(
        &self,
        labels: Labels,
        annotations: Arc<BTreeMap<String, String>>,
        generator_url: Arc<str>,
        now: DateTime<Utc>,
    ) -> StoredAlert {
        StoredAlert {
            alert: Alert {
                labels,
                annotations,
                starts_at: self.starts_at,
                ends_at: Some(self.ends_at),
                generator_url,
            },
            updated_at: now,
            timeout: self.timeout,
        }
    }
}

/// A hash of an alert's text (labels, annotations, generator URL), kept
/// beside the stored alert: a re-sent alert whose fingerprint (the store's
/// key, FNV-64 of the labels) and text hash (foldhash, 64 bits, over
/// everything) both match the stored one's is taken as unchanged, and its
/// stored text is kept without reading it (reading it costs a cache miss
/// per string).
fn text_hash<'a>(
    labels: impl Iterator<Item = (&'a str, &'a str)>,
    annotations: impl Iterator<Item = (&'a str, &'a str)>,
    generator_url: &str,
) -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = foldhash::quality::FixedState::with_seed(0x6b6c_6178_6f6e).build_hasher();
    let mut text = |s: &str| {
        h.write_usize(s.len());
        h.write(s.as_bytes());
    };
    for (k, v) in labels {
        text(k);
        text(v);
    }
    text("");
    for (k, v) in annotations {
        text(k);
        text(v);
    }
    text(generator_url);
    h.finish()
}

/// The [`text_hash`] of a stored alert.
fn alert_text_hash(a: &Alert) -> u64 {
    text_hash(
        a.labels.iter(),
        a.annotations.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        &a.generator_url,
    )
}

/// A stored alert and the hash of its text.
struct Slot {
    stored: StoredAlert,
    text: u64,
}

/// Whether `map` holds exactly these pairs (sorted by name, names unique).
fn same_pairs(map: &BTreeMap<String, String>, pairs: &[(Cow<'_, str>, Cow<'_, str>)]) -> bool {
    map.len() == pairs.len()
        && map
            .iter()
            .zip(pairs)
            .all(|((k, v), (pk, pv))| k == pk && v == pv)
}

/// Every alert the host knows, by fingerprint.
pub struct AlertStore {
    /// Keyed by fingerprint, itself a hash: hashed again with Fx (one
    /// multiplication) rather than SipHash.
    alerts: DashMap<u64, Slot, FxBuildHasher>,
    inhibitor: ArcSwap<Inhibitor>,
}

impl AlertStore {
    pub fn new(inhibitor: Arc<Inhibitor>) -> Self {
        Self {
            alerts: DashMap::with_hasher(FxBuildHasher),
            inhibitor: ArcSwap::new(inhibitor),
        }
    }

    /// Switches to the inhibit rules of a reloaded config, showing it every
    /// stored alert first.
    pub fn set_inhibitor(&self, inhibitor: Arc<Inhibitor>) {
        for a in self.alerts.iter() {
            inhibitor.observe(&a.stored.alert);
        }
        self.inhibitor.store(inhibitor);
    }

    /// Stores alerts, merging each with the stored one when their activity
    /// overlaps; returns them as stored, for the dispatcher.
    pub fn put(&self, incoming: Vec<StoredAlert>, now: DateTime<Utc>) -> Vec<Alert> {
        let mut out = Vec::with_capacity(incoming.len());
        let inhibitor = self.inhibitor.load();
        for alert in incoming {
            let fp = alert.alert.fingerprint();
            // One lookup (one shard lock) per alert; the stored alert and
            // the one handed on share their text (`Alert` clones are cheap).
            let text = alert_text_hash(&alert.alert);
            let merged = match self.alerts.entry(fp) {
                Entry::Occupied(mut slot) => {
                    let slot = slot.get_mut();
                    slot.text = text;
                    merge_into(&mut slot.stored, alert, now)
                }
                Entry::Vacant(slot) => slot
                    .insert(Slot {
                        stored: alert,
                        text,
                    })
                    .stored
                    .alert
                    .clone(),
            };
            inhibitor.observe(&merged);
            out.push(merged);
        }
        out
    }

    /// Like [`AlertStore::put`], for alerts posted to the API: an alert
    /// whose labels, annotations and generator URL are those stored keeps
    /// the stored text, and only its times change (no allocation).
    pub fn put_posted(&self, incoming: &[PostedAlert<'_>], now: DateTime<Utc>) -> Vec<Alert> {
        let mut out = Vec::with_capacity(incoming.len());
        let inhibitor = self.inhibitor.load();
        for posted in incoming {
            let fp = Labels::fingerprint_of_sorted(&posted.labels);
            let text = posted.text_hash();
            let merged = match self.alerts.entry(fp) {
                Entry::Occupied(mut slot) => {
                    let slot = slot.get_mut();
                    let alert = if slot.text == text {
                        posted.with_text_of(&slot.stored.alert, now)
                    } else {
                        slot.text = text;
                        posted.to_stored(Some(&slot.stored.alert), now)
                    };
                    merge_into(&mut slot.stored, alert, now)
                }
                Entry::Vacant(slot) => {
                    let stored = posted.to_stored(None, now);
                    slot.insert(Slot { stored, text }).stored.alert.clone()
                }
            };
            inhibitor.observe(&merged);
            out.push(merged);
        }
        out
    }

    /// Every stored alert.
    pub fn list(&self) -> Vec<StoredAlert> {
        self.alerts
            .iter()
            .map(|e| e.value().stored.clone())
            .collect()
    }

    /// Number of stored alerts.
    pub fn len(&self) -> usize {
        self.alerts.len()
    }

    /// True when no alert is stored.
    pub fn is_empty(&self) -> bool {
        self.alerts.is_empty()
    }

    /// Drops resolved alerts (the dispatcher keeps its own copies until
    /// their resolution was delivered); returns how many.
    pub fn gc(&self, now: DateTime<Utc>) -> usize {
        let before = self.alerts.len();
        self.alerts.retain(|_, a| !a.stored.resolved(now));
        self.inhibitor.load().gc(now);
        before - self.alerts.len()
    }
}

/// Stores `alert` over `old` (the stored alert of the same fingerprint),
/// merged with it when their activity overlaps, as Alertmanager does;
/// returns the alert as stored.
fn merge_into(old: &mut StoredAlert, alert: StoredAlert, now: DateTime<Utc>) -> Alert {
    let merged = if (alert.end() > old.alert.starts_at && alert.end() < old.end())
        || (alert.alert.starts_at > old.alert.starts_at && alert.alert.starts_at < old.end())
    {
        old.merge(alert, now)
    } else {
        alert
    };
    *old = merged;
    old.alert.clone()
}

/// Why an alert is muted right now.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MuteStatus {
    /// Ids of the active silences that match it.
    pub silenced_by: Vec<String>,
    /// Fingerprints of the firing alerts that inhibit it.
    pub inhibited_by: Vec<String>,
}

impl MuteStatus {
    pub fn is_muted(&self) -> bool {
        !self.silenced_by.is_empty() || !self.inhibited_by.is_empty()
    }
}

/// Silences and inhibition together: Alertmanager's mute stages.
#[derive(Clone)]
pub struct Muter {
    pub silences: Arc<Silences>,
    pub inhibitor: Arc<Inhibitor>,
}

impl Muter {
    /// Whether (and by what) `labels` are muted at `now`.
    pub fn status(&self, labels: &Labels, now: DateTime<Utc>) -> MuteStatus {
        MuteStatus {
            inhibited_by: self
                .inhibitor
                .mutes(labels, now)
                .map(crate::alert::fingerprint_hex)
                .into_iter()
                .collect(),
            silenced_by: self.silences.mutes(labels, now),
        }
    }

    /// True when inhibited or silenced at `now`.
    pub fn mutes(&self, labels: &Labels, now: DateTime<Utc>) -> bool {
        self.inhibitor.mutes(labels, now).is_some() || self.silences.is_muted(labels, now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().expect("test time")
    }

    fn stored(start: &str, end: Option<&str>, updated: &str, timeout: bool) -> StoredAlert {
        StoredAlert {
            alert: Alert {
                labels: Labels::new([("alertname", "A")]),
                annotations: Default::default(),
                starts_at: t(start),
                ends_at: end.map(t),
                generator_url: "".into(),
            },
            updated_at: t(updated),
            timeout,
        }
    }

    #[test]
    fn resent_alert_keeps_earliest_start_and_refreshes_timeout() {
        let store = AlertStore::new(Arc::new(Inhibitor::default()));
        let now = t("2026-01-01T10:00:00Z");
        store.put(
            vec![stored(
                "2026-01-01T09:00:00Z",
                Some("2026-01-01T10:05:00Z"),
                "2026-01-01T10:00:00Z",
                true,
            )],
            now,
        );
        let later = t("2026-01-01T10:01:00Z");
        let out = store.put(
            vec![stored(
                "2026-01-01T09:30:00Z",
                Some("2026-01-01T10:06:00Z"),
                "2026-01-01T10:01:00Z",
                true,
            )],
            later,
        );
        assert_eq!(out[0].starts_at, t("2026-01-01T09:00:00Z"));
        assert_eq!(out[0].ends_at, Some(t("2026-01-01T10:06:00Z")));
        assert_eq!(store.gc(later), 0);
        assert_eq!(
            store.gc(t("2026-01-01T10:07:00Z")),
            1,
            "timed out and resolved"
        );
    }

    #[test]
    fn explicit_resolution_wins() {
        let store = AlertStore::new(Arc::new(Inhibitor::default()));
        let now = t("2026-01-01T10:00:00Z");
        store.put(
            vec![stored(
                "2026-01-01T09:00:00Z",
                Some("2026-01-01T10:05:00Z"),
                "2026-01-01T10:00:00Z",
                true,
            )],
            now,
        );
        let later = t("2026-01-01T10:02:00Z");
        let out = store.put(
            vec![stored(
                "2026-01-01T09:00:00Z",
                Some("2026-01-01T10:01:30Z"),
                "2026-01-01T10:02:00Z",
                false,
            )],
            later,
        );
        assert_eq!(out[0].ends_at, Some(t("2026-01-01T10:01:30Z")));
        assert!(out[0].is_resolved_at(later));
    }
}
