//! Routing and grouping with Alertmanager's semantics: alerts are grouped by
//! the route's `group_by` labels into aggregation groups; a new group is
//! flushed after `group_wait`, then every `group_interval` when something
//! changed, and again after `repeat_interval` when nothing did. A per-group,
//! per-integration notification log dedups (Alertmanager's `needsUpdate`),
//! and resolved alerts are dropped from a group once their resolution was
//! delivered.
//!
//! One task owns all groups (no locks on the hot path); timers are tokio's,
//! so tests drive them with paused time. Hands notifications forward to
//! notify; never imports rules.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use chrono::Utc;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::alert::{Alert, Notification};
use crate::config::{Config, RouteConfig};
use crate::notify::{DeliveryRequest, NotifyHandle};
use crate::store::Labels;

/// Routing settings resolved from config.
#[derive(Debug, Clone)]
pub struct RouteSettings {
    pub receiver: String,
    pub group_by: Vec<String>,
    pub group_wait: Duration,
    pub group_interval: Duration,
    pub repeat_interval: Duration,
    pub external_url: String,
    /// `send_resolved` of each integration of the receiver, in order.
    pub send_resolved: Vec<bool>,
}

impl RouteSettings {
    /// From a validated config; `None` when there is no route (alerts are
    /// then visible in the API only).
    pub fn from_config(config: &Config) -> Option<Self> {
        let route: &RouteConfig = config.route.as_ref()?;
        let receiver = config.receivers.iter().find(|r| r.name == route.receiver)?;
        Some(Self {
            receiver: route.receiver.clone(),
            group_by: route.group_by.clone(),
            group_wait: route.group_wait,
            group_interval: route.group_interval,
            repeat_interval: route.repeat_interval,
            external_url: config.global.external_url.clone(),
            send_resolved: receiver
                .integrations()
                .iter()
                .map(|i| i.send_resolved)
                .collect(),
        })
    }

    /// The labels an alert is grouped by.
    fn group_labels(&self, labels: &Labels) -> Labels {
        if self.group_by.iter().any(|g| g == "...") {
            return labels.clone();
        }
        Labels::new(
            labels
                .iter()
                .filter(|(k, _)| self.group_by.iter().any(|g| g == k)),
        )
    }
}

/// Alertmanager's group key: the route's matcher path and the group labels,
/// e.g. `{}:{alertname="A", model_name="m"}`.
pub fn group_key(group_labels: &Labels) -> String {
    let inner: Vec<String> = group_labels
        .iter()
        .map(|(k, v)| format!("{k}={v:?}"))
        .collect();
    format!("{{}}:{{{}}}", inner.join(", "))
}

/// What the notification log remembers of the last delivery.
#[derive(Debug, Clone)]
struct LogEntry {
    firing: HashSet<u64>,
    resolved: HashSet<u64>,
    at: Instant,
}

struct AggrGroup {
    key: String,
    labels: Labels,
    alerts: HashMap<u64, Alert>,
    next_flush: Instant,
    has_flushed: bool,
    flushing: bool,
}

/// Reported back to the dispatcher when a flush's deliveries finished.
struct Flushed {
    key: String,
    firing: HashSet<u64>,
    resolved: HashSet<u64>,
    /// The resolved alerts as flushed: dropped if unchanged and all succeeded.
    resolved_alerts: Vec<Alert>,
    /// Per integration: `Some(true)` delivered (or nothing to send), `Some(false)` failed, `None` not attempted.
    outcomes: Vec<Option<bool>>,
}

/// The routing task's state.
pub struct Dispatcher {
    settings: RouteSettings,
    notify: NotifyHandle,
    groups: HashMap<String, AggrGroup>,
    log: HashMap<(String, usize), LogEntry>,
}

impl Dispatcher {
    /// A dispatcher delivering through `notify`.
    pub fn new(settings: RouteSettings, notify: NotifyHandle) -> Self {
        Self {
            settings,
            notify,
            groups: HashMap::new(),
            log: HashMap::new(),
        }
    }

    /// Runs until `alerts` closes.
    pub async fn run(mut self, mut alerts: mpsc::Receiver<Vec<Alert>>) {
        let (flushed_tx, mut flushed_rx) = mpsc::unbounded_channel::<Flushed>();
        loop {
            let next = self
                .groups
                .values()
                .filter(|g| !g.flushing)
                .map(|g| g.next_flush)
                .min();
            tokio::select! {
                batch = alerts.recv() => match batch {
                    Some(batch) => self.insert(batch, Instant::now()),
                    None => break,
                },
                Some(done) = flushed_rx.recv() => self.on_flushed(done, Instant::now()),
                _ = sleep_until_opt(next) => self.flush_due(Instant::now(), &flushed_tx),
            }
        }
    }

    fn insert(&mut self, batch: Vec<Alert>, now: Instant) {
        let now_utc = Utc::now();
        for alert in batch {
            let labels = self.settings.group_labels(&alert.labels);
            let key = group_key(&labels);
            let group_wait = self.settings.group_wait;
            let group = self.groups.entry(key.clone()).or_insert_with(|| {
                tracing::debug!(group = %key, "new alert group");
                AggrGroup {
                    key,
                    labels,
                    alerts: HashMap::new(),
                    next_flush: now + group_wait,
                    has_flushed: false,
                    flushing: false,
                }
            });
            // An alert older than group_wait need not wait for company.
            let age = (now_utc - alert.starts_at).to_std().unwrap_or_default();
            if !group.has_flushed && age >= group_wait && group.next_flush > now {
                group.next_flush = now;
            }
            group.alerts.insert(alert.fingerprint(), alert);
        }
    }

    fn flush_due(&mut self, now: Instant, flushed_tx: &mpsc::UnboundedSender<Flushed>) {
        let due: Vec<String> = self
            .groups
            .values()
            .filter(|g| !g.flushing && g.next_flush <= now)
            .map(|g| g.key.clone())
            .collect();
        for key in due {
            self.flush(&key, now, flushed_tx);
        }
    }

    fn flush(&mut self, key: &str, now: Instant, flushed_tx: &mpsc::UnboundedSender<Flushed>) {
        let Some(group) = self.groups.get_mut(key) else {
            return;
        };
        if group.alerts.is_empty() {
            self.groups.remove(key);
            return;
        }
        let now_utc = Utc::now();
        let mut alerts: Vec<Alert> = group.alerts.values().cloned().collect();
        alerts.sort_by(|a, b| a.labels.cmp(&b.labels));
        let (resolved_alerts, firing_alerts): (Vec<&Alert>, Vec<&Alert>) =
            alerts.iter().partition(|a| a.is_resolved_at(now_utc));
        let firing: HashSet<u64> = firing_alerts.iter().map(|a| a.fingerprint()).collect();
        let resolved: HashSet<u64> = resolved_alerts.iter().map(|a| a.fingerprint()).collect();
        group.flushing = true;
        group.has_flushed = true;
        group.next_flush = now + self.settings.group_interval;

        let mut outcomes: Vec<Option<bool>> = Vec::new();
        let mut pending = Vec::new();
        for (idx, send_resolved) in self.settings.send_resolved.iter().copied().enumerate() {
            let entry = self.log.get(&(key.to_string(), idx));
            if !needs_update(
                entry,
                &firing,
                &resolved,
                send_resolved,
                self.settings.repeat_interval,
                now,
            ) {
                outcomes.push(None);
                continue;
            }
            let to_send: Vec<Alert> = if send_resolved {
                alerts.clone()
            } else {
                firing_alerts.iter().map(|a| (*a).clone()).collect()
            };
            if to_send.is_empty() {
                outcomes.push(Some(true)); // nothing the receiver wants; log it as done
                continue;
            }
            let notification = Notification::build(
                &self.settings.receiver,
                key,
                &group.labels,
                &self.settings.external_url,
                &to_send,
                now_utc,
            );
            let (done_tx, done_rx) = oneshot::channel();
            let request = DeliveryRequest {
                receiver: self.settings.receiver.clone(),
                integration: idx,
                notification,
                done: done_tx,
            };
            if let Err(e) = self.notify.enqueue(request) {
                tracing::error!(group = %key, integration = idx, error = %e, "notification dropped");
                outcomes.push(Some(false));
                continue;
            }
            outcomes.push(Some(false));
            pending.push((idx, done_rx));
        }
        let flushed = Flushed {
            key: key.to_string(),
            firing,
            resolved,
            resolved_alerts: resolved_alerts.into_iter().cloned().collect(),
            outcomes,
        };
        if pending.is_empty() {
            self.on_flushed(flushed, now);
            return;
        }
        let tx = flushed_tx.clone();
        tokio::spawn(async move {
            let mut flushed = flushed;
            for (idx, rx) in pending {
                flushed.outcomes[idx] = Some(rx.await.unwrap_or(false));
            }
            let _ = tx.send(flushed);
        });
    }

    fn on_flushed(&mut self, done: Flushed, now: Instant) {
        for (idx, outcome) in done.outcomes.iter().enumerate() {
            if *outcome == Some(true) {
                self.log.insert(
                    (done.key.clone(), idx),
                    LogEntry {
                        firing: done.firing.clone(),
                        resolved: done.resolved.clone(),
                        at: now,
                    },
                );
            }
        }
        let all_ok = done.outcomes.iter().all(|o| *o != Some(false));
        let Some(group) = self.groups.get_mut(&done.key) else {
            return;
        };
        group.flushing = false;
        if all_ok {
            for sent in &done.resolved_alerts {
                let fp = sent.fingerprint();
                if group.alerts.get(&fp) == Some(sent) {
                    group.alerts.remove(&fp);
                }
            }
        }
        if group.alerts.is_empty() {
            self.groups.remove(&done.key);
            // Keep log entries that still remember firing alerts, so a group
            // that comes back is deduplicated against what was last sent.
            self.log
                .retain(|(key, _), entry| key != &done.key || !entry.firing.is_empty());
        }
    }
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Alertmanager's DedupStage decision.
fn needs_update(
    entry: Option<&LogEntry>,
    firing: &HashSet<u64>,
    resolved: &HashSet<u64>,
    send_resolved: bool,
    repeat: Duration,
    now: Instant,
) -> bool {
    let Some(entry) = entry else {
        return !firing.is_empty();
    };
    if !firing.is_subset(&entry.firing) {
        return true;
    }
    if firing.is_empty() {
        // Everything resolved: tell the receiver if it had been told of firing
        // alerts (regardless of send_resolved, to clear the log).
        return !entry.firing.is_empty();
    }
    if send_resolved && !resolved.is_subset(&entry.resolved) {
        return true;
    }
    entry.at + repeat <= now
}

/// Group labels as a map, for APIs.
pub fn labels_map(labels: &Labels) -> BTreeMap<String, String> {
    labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[cfg(test)]
mod tests;
