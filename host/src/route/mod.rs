//! Routing and grouping with Alertmanager's semantics: alerts are grouped by
//! the route's `group_by` labels into aggregation groups; a new group is
//! flushed after `group_wait`, then every `group_interval` when something
//! changed, and again after `repeat_interval` when nothing did. A per-group,
//! per-integration notification log dedups (Alertmanager's `needsUpdate`),
//! and resolved alerts are dropped from a group once their resolution was
//! delivered.
//!
//! Alerts are matched against the routing tree ([`tree`]); every matched
//! route has its own aggregation groups, timers and receiver, and its group
//! keys start with the route's key (`{}/{severity="critical"}:{...}`).
//!
//! A route's `mute_time_intervals` and `active_time_intervals`
//! ([`timeinterval`]) are checked at each flush, as Alertmanager's
//! `TimeMuteStage` and `TimeActiveStage` do: a muted flush sends nothing and
//! leaves the notification log alone, so the alerts go out at the first
//! flush after the mute ends (alerts already notified before it wait for
//! `repeat_interval`). Like Alertmanager, a muted flush still counts as
//! done: the next flush is a `group_interval` later, and alerts that
//! resolved meanwhile are dropped from the group without a notification.
//!
//! One task owns all groups (no locks on the hot path); timers are tokio's,
//! so tests drive them with paused time. Hands notifications forward to
//! notify; never imports rules.

use std::cmp::Reverse;
use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, BinaryHeap};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use rustc_hash::FxHashMap;
use smallvec::SmallVec;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::alert::{Alert, Notification};
use crate::config::Config;
use crate::notify::{DeliveryRequest, Done, NotifyHandle};
use crate::store::Labels;

pub mod alerts;
pub mod inhibit;
pub mod timeinterval;
pub mod tree;

pub use alerts::{AlertStore, BorrowedPairs, MuteStatus, Muter, PostedAlert, StoredAlert};
pub use timeinterval::RouteTimeIntervals;
pub use tree::{RouteError, RouteOpts, RouteTree};

/// One route's settings resolved from config: its options after
/// inheritance and its receiver's integrations.
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
    /// The route's own mute and active time intervals, resolved.
    pub time_intervals: RouteTimeIntervals,
}

impl RouteSettings {
    /// The settings of one route of the tree; `send_resolved` comes from
    /// the route's receiver (none when it has no integrations).
    pub fn for_route(opts: &RouteOpts, config: &Config) -> Self {
        let send_resolved = config
            .receivers
            .iter()
            .find(|r| r.name == opts.receiver)
            .map(|r| r.integrations().iter().map(|i| i.send_resolved).collect())
            .unwrap_or_default();
        // A validated config defines every name; an unknown one is skipped.
        let resolve = |names: &[String]| {
            names
                .iter()
                .filter_map(|n| config.time_interval(n).cloned())
                .collect()
        };
        Self {
            receiver: opts.receiver.clone(),
            group_by: if opts.group_by_all {
                vec!["...".into()]
            } else {
                opts.group_by.clone()
            },
            group_wait: opts.group_wait,
            group_interval: opts.group_interval,
            repeat_interval: opts.repeat_interval,
            external_url: config.global.external_url.clone(),
            send_resolved,
            time_intervals: RouteTimeIntervals {
                mute: resolve(&opts.mute_time_intervals),
                active: resolve(&opts.active_time_intervals),
            },
        }
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

/// The routing tree and each route's settings, indexed by node id.
#[derive(Debug, Clone)]
pub struct Routing {
    tree: RouteTree,
    routes: Vec<RouteSettings>,
}

impl Routing {
    /// From a config; `None` when there is no route (alerts are then
    /// visible in the API only). A validated config builds without error.
    pub fn from_config(config: &Config) -> Result<Option<Self>, RouteError> {
        let Some(route) = &config.route else {
            return Ok(None);
        };
        let names = config.receivers.iter().map(|r| r.name.as_str()).collect();
        let intervals = config
            .named_time_intervals()
            .map(|t| t.name.as_str())
            .collect();
        let tree = RouteTree::build(route, &names, &intervals)?;
        tracing::info!(routes = tree.nodes().len(), "routing tree built");
        let routes = tree
            .nodes()
            .iter()
            .map(|n| RouteSettings::for_route(&n.opts, config))
            .collect();
        Ok(Some(Self { tree, routes }))
    }

    /// Only a root route, with these settings.
    pub fn single(settings: RouteSettings) -> Self {
        let opts = RouteOpts {
            receiver: settings.receiver.clone(),
            group_by: settings.group_by.clone(),
            group_by_all: settings.group_by.iter().any(|g| g == "..."),
            group_wait: settings.group_wait,
            group_interval: settings.group_interval,
            repeat_interval: settings.repeat_interval,
            mute_time_intervals: names_of(&settings.time_intervals.mute),
            active_time_intervals: names_of(&settings.time_intervals.active),
        };
        Self {
            tree: RouteTree::single(opts),
            routes: vec![settings],
        }
    }

    /// The routing tree.
    pub fn tree(&self) -> &RouteTree {
        &self.tree
    }
}

fn names_of(intervals: &[timeinterval::NamedTimeInterval]) -> Vec<String> {
    intervals.iter().map(|t| t.name.clone()).collect()
}

/// Alertmanager's group key on the root route, e.g.
/// `{}:{alertname="A", model_name="m"}`.
pub fn group_key(group_labels: &Labels) -> String {
    route_group_key("{}", group_labels)
}

/// Alertmanager's group key: the route's key (its matcher path) and the
/// group labels, e.g. `{}/{severity="critical"}:{alertname="A"}`.
pub fn route_group_key(route_key: &str, group_labels: &Labels) -> String {
    let inner: Vec<String> = group_labels
        .iter()
        .map(|(k, v)| format!("{k}={v:?}"))
        .collect();
    format!("{route_key}:{{{}}}", inner.join(", "))
}

/// An aggregation group's identity: its route (node id) and group key. Two
/// routes may form the same key (same matchers); their groups stay apart.
/// The key is shared by the group, its schedule entries and its log entries;
/// its hash is computed once, so looking a group up by a cached id reads
/// no key text (equal ids share the key, compared by pointer first).
#[derive(Debug, Clone)]
struct GroupId {
    route: usize,
    key: Arc<str>,
    hash: u64,
}

impl GroupId {
    fn new(route: usize, key: Arc<str>) -> Self {
        use std::hash::BuildHasher as _;
        let hash = rustc_hash::FxBuildHasher.hash_one((route, &*key));
        Self { route, key, hash }
    }
}

impl PartialEq for GroupId {
    fn eq(&self, other: &Self) -> bool {
        self.hash == other.hash && self.route == other.route && self.key == other.key
    }
}

impl Eq for GroupId {}

impl std::hash::Hash for GroupId {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        state.write_u64(self.hash);
    }
}

impl Ord for GroupId {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.route, &self.key).cmp(&(other.route, &other.key))
    }
}

impl PartialOrd for GroupId {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

/// The groups one alert belongs to: one in the common case, inline.
type GroupIds = SmallVec<[GroupId; 1]>;

/// A set of alert fingerprints, sorted; one or two inline (most groups
/// hold one alert), so a log entry of a small group allocates nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Fingerprints(SmallVec<[u64; 2]>);

impl Fingerprints {
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn is_subset(&self, of: &Fingerprints) -> bool {
        self.0.len() <= of.0.len() && self.0.iter().all(|fp| of.0.binary_search(fp).is_ok())
    }
}

impl FromIterator<u64> for Fingerprints {
    fn from_iter<I: IntoIterator<Item = u64>>(iter: I) -> Self {
        let mut fps: SmallVec<[u64; 2]> = iter.into_iter().collect();
        fps.sort_unstable();
        fps.dedup();
        Fingerprints(fps)
    }
}

/// What the notification log remembers of the last delivery.
#[derive(Debug, Clone)]
struct LogEntry {
    firing: Fingerprints,
    resolved: Fingerprints,
    at: Instant,
}

/// The alerts of one aggregation group by fingerprint: a few inline,
/// searched in place (most groups hold one alert), a map past that.
#[derive(Debug)]
enum GroupAlerts {
    Few(SmallVec<[Alert; 1]>),
    Many(FxHashMap<u64, Alert>),
}

/// Past this many alerts a group's alerts move into a map.
const FEW_ALERTS: usize = 8;

impl GroupAlerts {
    fn new() -> Self {
        GroupAlerts::Few(SmallVec::new())
    }

    fn get(&self, fp: u64) -> Option<&Alert> {
        match self {
            GroupAlerts::Few(few) => few.iter().find(|a| a.fingerprint() == fp),
            GroupAlerts::Many(map) => map.get(&fp),
        }
    }

    /// Stores `alert`, replacing the one with its fingerprint.
    fn insert(&mut self, alert: Alert) {
        let fp = alert.fingerprint();
        match self {
            GroupAlerts::Few(few) => {
                if let Some(slot) = few.iter_mut().find(|a| a.fingerprint() == fp) {
                    *slot = alert;
                } else if few.len() < FEW_ALERTS {
                    few.push(alert);
                } else {
                    let mut map: FxHashMap<u64, Alert> =
                        few.drain(..).map(|a| (a.fingerprint(), a)).collect();
                    map.insert(fp, alert);
                    *self = GroupAlerts::Many(map);
                }
            }
            GroupAlerts::Many(map) => {
                map.insert(fp, alert);
            }
        }
    }

    fn remove(&mut self, fp: u64) {
        match self {
            GroupAlerts::Few(few) => few.retain(|a| a.fingerprint() != fp),
            GroupAlerts::Many(map) => {
                map.remove(&fp);
            }
        }
    }

    fn is_empty(&self) -> bool {
        match self {
            GroupAlerts::Few(few) => few.is_empty(),
            GroupAlerts::Many(map) => map.is_empty(),
        }
    }

    /// The alerts, sorted by labels.
    fn sorted(&self) -> Vec<Alert> {
        let mut alerts: Vec<Alert> = match self {
            GroupAlerts::Few(few) => few.to_vec(),
            GroupAlerts::Many(map) => map.values().cloned().collect(),
        };
        alerts.sort_by(|a, b| a.labels.cmp(&b.labels));
        alerts
    }
}

struct AggrGroup {
    id: GroupId,
    labels: Labels,
    alerts: GroupAlerts,
    next_flush: Instant,
    has_flushed: bool,
    flushing: bool,
}

/// Reported back to the dispatcher when a flush's deliveries finished.
struct Flushed {
    id: GroupId,
    firing: Fingerprints,
    resolved: Fingerprints,
    /// The resolved alerts as flushed: dropped if unchanged and all succeeded.
    resolved_alerts: Vec<Alert>,
    /// Per integration: `Some(true)` delivered (or nothing to send), `Some(false)` failed, `None` not attempted.
    outcomes: Vec<Option<bool>>,
}

/// One aggregation group as the API shows it.
#[derive(Debug, Clone)]
pub struct GroupSnapshot {
    pub labels: Labels,
    pub receiver: String,
    pub alerts: Vec<Alert>,
}

/// A question to the routing task, answered on `reply`.
pub enum DispatcherQuery {
    /// Every aggregation group with its alerts, sorted by receiver and labels.
    Groups(oneshot::Sender<Vec<GroupSnapshot>>),
    /// Hands the notification log over (to the dispatcher of a reloaded
    /// config); this dispatcher is about to stop.
    TakeLog(oneshot::Sender<NotificationLog>),
}

/// The routing task's state.
pub struct Dispatcher {
    routing: Routing,
    /// Each route's receiver name, shared by its log entries.
    receivers: Vec<Arc<str>>,
    notify: NotifyHandle,
    groups: FxHashMap<GroupId, AggrGroup>,
    log: NotificationLog,
    muter: Option<Muter>,
    /// Flush times of the groups not flushing, soonest first. Entries go
    /// stale when a group's `next_flush` changes or it starts flushing; stale
    /// ones are skipped when they surface.
    schedule: Schedule,
    /// The groups an alert belongs to, by fingerprint: a re-sent alert
    /// (Prometheus re-sends every firing alert each evaluation) walks no
    /// tree and formats no key. Entries leave with the alert's resolution;
    /// the cache lives as long as this dispatcher, i.e. one routing tree.
    routes_of: FxHashMap<u64, GroupIds>,
    /// The deliveries of the flushes under way, queued together (one
    /// journal write) when the flushing stops.
    outbox: Vec<DeliveryRequest>,
}

/// When each group flushes next: a min-heap on the time, ties (the groups
/// of one batch of alerts share it) broken by the order of scheduling, so
/// the heap never compares group keys. A group rescheduled leaves its old
/// entry behind; [`Dispatcher::is_current`] tells the stale ones.
#[derive(Default)]
struct Schedule {
    heap: BinaryHeap<Reverse<(Instant, u64, GroupId)>>,
    seq: u64,
}

impl Schedule {
    fn push(&mut self, at: Instant, id: GroupId) {
        self.seq += 1;
        self.heap.push(Reverse((at, self.seq, id)));
    }

    fn peek(&self) -> Option<(Instant, &GroupId)> {
        self.heap.peek().map(|Reverse((at, _, id))| (*at, id))
    }

    fn pop(&mut self) -> Option<(Instant, GroupId)> {
        self.heap.pop().map(|Reverse((at, _, id))| (at, id))
    }
}

/// Alertmanager's notification log: what each integration was last told
/// about each group, keyed by (group key, receiver, integration index) so it
/// outlives the dispatcher across a config reload.
#[derive(Default)]
pub struct NotificationLog(FxHashMap<(Arc<str>, Arc<str>, usize), LogEntry>);

/// How many due groups the dispatcher flushes before it lets other tasks
/// run. A burst of groups falling due together (10 000 alerts posted at
/// once, each its own group) takes the dispatcher ~100 ms to flush; in one
/// stretch, the notification worker it woke waited on the same thread
/// (tokio runs a task woken from a task next on that thread, and no other
/// thread may take it), so nothing was delivered until the whole burst was
/// flushed: 50-70 ms without a delivery in the Alertmanager comparison.
/// 64 flushes are about a millisecond.
const FLUSH_CHUNK: usize = 64;

impl Dispatcher {
    /// A dispatcher with only a root route, delivering through `notify`.
    pub fn new(settings: RouteSettings, notify: NotifyHandle) -> Self {
        Self::with_routing(Routing::single(settings), notify)
    }

    /// A dispatcher routing through a tree, delivering through `notify`.
    pub fn with_routing(routing: Routing, notify: NotifyHandle) -> Self {
        let receivers = routing
            .routes
            .iter()
            .map(|r| Arc::from(r.receiver.as_str()))
            .collect();
        Self {
            routing,
            receivers,
            notify,
            groups: FxHashMap::default(),
            log: NotificationLog::default(),
            muter: None,
            schedule: Schedule::default(),
            routes_of: FxHashMap::default(),
            outbox: Vec::new(),
        }
    }

    /// Starts from the notification log of a previous dispatcher.
    pub fn with_log(mut self, log: NotificationLog) -> Self {
        self.log = log;
        self
    }

    /// Mutes silenced and inhibited alerts at flush time.
    pub fn with_muter(mut self, muter: Muter) -> Self {
        self.muter = Some(muter);
        self
    }

    /// Runs until `alerts` closes.
    pub async fn run(self, alerts: mpsc::Receiver<Vec<Alert>>) {
        let (_keep, queries) = mpsc::channel(1);
        self.run_with_queries(alerts, queries).await;
    }

    /// Runs until `alerts` closes, answering `queries` as well.
    pub async fn run_with_queries(
        mut self,
        mut alerts: mpsc::Receiver<Vec<Alert>>,
        mut queries: mpsc::Receiver<DispatcherQuery>,
    ) {
        let (flushed_tx, mut flushed_rx) = mpsc::unbounded_channel::<Flushed>();
        loop {
            let next = self.next_due();
            tokio::select! {
                batch = alerts.recv() => match batch {
                    Some(batch) => self.insert(batch, Instant::now()),
                    None => break,
                },
                Some(done) = flushed_rx.recv() => self.on_flushed(done, Instant::now()),
                Some(query) = queries.recv() => self.answer(query),
                _ = sleep_until_opt(next) => {
                    if self.flush_some_due(Instant::now(), &flushed_tx, FLUSH_CHUNK) {
                        // More groups are due: let the deliveries just
                        // queued (and every other task) run first.
                        tokio::task::yield_now().await;
                    }
                }
            }
        }
    }

    fn answer(&mut self, query: DispatcherQuery) {
        match query {
            DispatcherQuery::TakeLog(reply) => {
                let _ = reply.send(std::mem::take(&mut self.log));
            }
            DispatcherQuery::Groups(reply) => {
                let mut out: Vec<GroupSnapshot> = self
                    .groups
                    .values()
                    .map(|g| GroupSnapshot {
                        labels: g.labels.clone(),
                        receiver: self.routing.routes[g.id.route].receiver.clone(),
                        alerts: g.alerts.sorted(),
                    })
                    .collect();
                out.sort_by(|a, b| (&a.receiver, &a.labels).cmp(&(&b.receiver, &b.labels)));
                let _ = reply.send(out);
            }
        }
    }

    /// The groups `alert` belongs to (cached by fingerprint; a clone of a
    /// cached entry allocates nothing in the common case of one group).
    fn groups_of(&mut self, alert: &Alert) -> GroupIds {
        let fp = alert.fingerprint();
        if let Some(ids) = self.routes_of.get(&fp) {
            return ids.clone();
        }
        let ids: GroupIds = self
            .routing
            .tree
            .match_labels(&alert.labels)
            .into_iter()
            .map(|route| {
                let labels = self.routing.routes[route].group_labels(&alert.labels);
                let key = route_group_key(&self.routing.tree.node(route).key, &labels);
                let id = GroupId::new(route, Arc::from(key));
                // Share the key of a group that exists (compared by pointer).
                match self.groups.get_key_value(&id) {
                    Some((existing, _)) => existing.clone(),
                    None => id,
                }
            })
            .collect();
        self.routes_of.insert(fp, ids.clone());
        ids
    }

    /// Files each alert into its groups. A known alert (the common case:
    /// Prometheus re-sends every firing alert) costs one lookup per group
    /// and replaces the group's copy in place: no allocation.
    fn insert(&mut self, batch: Vec<Alert>, now: Instant) {
        let now_utc = Utc::now();
        for alert in batch {
            let ids = self.groups_of(&alert);
            for id in ids {
                let settings = &self.routing.routes[id.route];
                let group_wait = settings.group_wait;
                let schedule = &mut self.schedule;
                let group = match self.groups.entry(id) {
                    Entry::Occupied(slot) => slot.into_mut(),
                    Entry::Vacant(slot) => {
                        let id = slot.key().clone();
                        tracing::debug!(group = %id.key, receiver = %settings.receiver, "new alert group");
                        schedule.push(now + group_wait, id.clone());
                        slot.insert(AggrGroup {
                            id,
                            labels: settings.group_labels(&alert.labels),
                            alerts: GroupAlerts::new(),
                            next_flush: now + group_wait,
                            has_flushed: false,
                            flushing: false,
                        })
                    }
                };
                // An alert older than group_wait need not wait for company.
                if !group.has_flushed && group.next_flush > now {
                    let age = (now_utc - alert.starts_at).to_std().unwrap_or_default();
                    if age >= group_wait {
                        group.next_flush = now;
                        if !group.flushing {
                            schedule.push(now, group.id.clone());
                        }
                    }
                }
                group.alerts.insert(alert.clone());
            }
        }
    }

    /// Whether a schedule entry still describes its group.
    fn is_current(&self, at: Instant, id: &GroupId) -> bool {
        self.groups
            .get(id)
            .is_some_and(|g| !g.flushing && g.next_flush == at)
    }

    /// The soonest flush time, dropping stale schedule entries.
    fn next_due(&mut self) -> Option<Instant> {
        while let Some((at, id)) = self.schedule.peek() {
            if self.is_current(at, id) {
                return Some(at);
            }
            self.schedule.pop();
        }
        None
    }

    /// Flushes every group due at `now`.
    #[cfg(test)]
    fn flush_due(&mut self, now: Instant, flushed_tx: &mpsc::UnboundedSender<Flushed>) {
        while self.flush_some_due(now, flushed_tx, usize::MAX) {}
    }

    /// Flushes at most `limit` of the groups due at `now` and queues their
    /// deliveries; true when more are due.
    fn flush_some_due(
        &mut self,
        now: Instant,
        flushed_tx: &mpsc::UnboundedSender<Flushed>,
        limit: usize,
    ) -> bool {
        let mut flushed = 0;
        let more = loop {
            let Some((at, _)) = self.schedule.peek() else {
                break false;
            };
            if at > now {
                break false;
            }
            if flushed == limit {
                break true;
            }
            let Some((at, id)) = self.schedule.pop() else {
                break false;
            };
            if self.is_current(at, &id) {
                self.flush(&id, now, flushed_tx);
                flushed += 1;
            }
        };
        self.send_outbox();
        more
    }

    /// Queues the flushed deliveries (journaled in one write).
    fn send_outbox(&mut self) {
        if self.outbox.is_empty() {
            return;
        }
        // A refused request reports `false` as it is dropped.
        self.notify
            .enqueue_many(std::mem::take(&mut self.outbox), |request, e| {
                tracing::error!(group = %request.notification.group_key, receiver = %request.receiver, integration = request.integration, error = %e, "notification dropped");
            });
    }

    fn flush(&mut self, id: &GroupId, now: Instant, flushed_tx: &mpsc::UnboundedSender<Flushed>) {
        let Some(group) = self.groups.get_mut(id) else {
            return;
        };
        if group.alerts.is_empty() {
            self.groups.remove(id);
            return;
        }
        let settings = &self.routing.routes[id.route];
        let key = &*id.key;
        let now_utc = Utc::now();
        let muted = is_muted(settings, key, now_utc);
        let mut alerts = group.alerts.sorted();
        // Resolved alerts leave the group once the flush succeeded, muted or not.
        let resolved_all: Vec<Alert> = alerts
            .iter()
            .filter(|a| a.is_resolved_at(now_utc))
            .cloned()
            .collect();
        // Alertmanager's mute stages: silenced and inhibited alerts are not
        // sent, and when nothing is left nothing is sent or logged.
        if let Some(muter) = &self.muter {
            let before = alerts.len();
            alerts.retain(|a| !muter.mutes(&a.labels, now_utc));
            if alerts.len() < before {
                tracing::debug!(group = %key, muted = before - alerts.len(), "muted alerts not sent");
            }
        }
        group.has_flushed = true;
        if alerts.is_empty() {
            group.next_flush = now + settings.group_interval;
            let flushed = Flushed {
                id: id.clone(),
                firing: Fingerprints::default(),
                resolved: Fingerprints::default(),
                resolved_alerts: resolved_all,
                outcomes: vec![None; settings.send_resolved.len()],
            };
            group.flushing = true;
            self.on_flushed(flushed, now);
            return;
        }
        let (resolved_alerts, firing_alerts): (Vec<&Alert>, Vec<&Alert>) =
            alerts.iter().partition(|a| a.is_resolved_at(now_utc));
        let firing: Fingerprints = firing_alerts.iter().map(|a| a.fingerprint()).collect();
        let resolved: Fingerprints = resolved_alerts.iter().map(|a| a.fingerprint()).collect();
        group.flushing = true;
        group.has_flushed = true;
        group.next_flush = now + settings.group_interval;

        let mut outcomes: Vec<Option<bool>> = Vec::new();
        let mut to_deliver = Vec::new();
        for (idx, send_resolved) in settings.send_resolved.iter().copied().enumerate() {
            if muted {
                outcomes.push(None); // held back: neither sent nor logged
                continue;
            }
            let entry = self
                .log
                .0
                .get(&(id.key.clone(), self.receivers[id.route].clone(), idx));
            if !needs_update(
                entry,
                &firing,
                &resolved,
                send_resolved,
                settings.repeat_interval,
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
                &settings.receiver,
                key,
                &group.labels,
                &settings.external_url,
                &to_send,
                now_utc,
            );
            // Failed until the delivery reports otherwise.
            outcomes.push(Some(false));
            to_deliver.push((idx, notification));
        }
        let flushed = Flushed {
            id: id.clone(),
            firing,
            resolved,
            resolved_alerts: resolved_all,
            outcomes,
        };
        if to_deliver.is_empty() {
            self.on_flushed(flushed, now);
            return;
        }
        // The last delivery to report hands the flush back to this task.
        let waiting = Arc::new(parking_lot::Mutex::new((Some(flushed), to_deliver.len())));
        for (idx, notification) in to_deliver {
            let (waiting, tx) = (waiting.clone(), flushed_tx.clone());
            let done = Done::new(move |delivered| {
                let mut state = waiting.lock();
                let (flushed, left) = &mut *state;
                if let Some(flushed) = flushed {
                    flushed.outcomes[idx] = Some(delivered);
                }
                *left -= 1;
                if *left == 0
                    && let Some(flushed) = flushed.take()
                {
                    drop(state);
                    let _ = tx.send(flushed);
                }
            });
            self.outbox.push(DeliveryRequest {
                receiver: settings.receiver.clone(),
                integration: idx,
                notification,
                done,
                journal_id: None,
            });
        }
    }

    fn on_flushed(&mut self, done: Flushed, now: Instant) {
        let receiver = self.receivers[done.id.route].clone();
        for (idx, outcome) in done.outcomes.iter().enumerate() {
            if *outcome == Some(true) {
                self.log.0.insert(
                    (done.id.key.clone(), receiver.clone(), idx),
                    LogEntry {
                        firing: done.firing.clone(),
                        resolved: done.resolved.clone(),
                        at: now,
                    },
                );
            }
        }
        let all_ok = done.outcomes.iter().all(|o| *o != Some(false));
        let Some(group) = self.groups.get_mut(&done.id) else {
            return;
        };
        group.flushing = false;
        self.schedule.push(group.next_flush, done.id.clone());
        if all_ok {
            for sent in &done.resolved_alerts {
                let fp = sent.fingerprint();
                if group.alerts.get(fp) == Some(sent) {
                    group.alerts.remove(fp);
                    // Resolved and told: a return walks the tree again
                    // (the entry is also rebuilt if another route's group
                    // still holds the alert).
                    self.routes_of.remove(&fp);
                }
            }
        }
        if group.alerts.is_empty() {
            self.groups.remove(&done.id);
            // Keep log entries that still remember firing alerts, so a group
            // that comes back is deduplicated against what was last sent.
            self.log.0.retain(|(key, r, _), entry| {
                key != &done.id.key || r != &receiver || !entry.firing.is_empty()
            });
        }
    }
}

/// Alertmanager's TimeActiveStage and TimeMuteStage for one flush of a
/// group: whether the route's time intervals hold its notifications back now.
fn is_muted(settings: &RouteSettings, key: &str, now: DateTime<Utc>) -> bool {
    let Some(why) = settings.time_intervals.muted_at(now) else {
        return false;
    };
    tracing::debug!(group = %key, receiver = %settings.receiver, reason = %why, "notifications not sent: route is muted");
    true
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
    firing: &Fingerprints,
    resolved: &Fingerprints,
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
