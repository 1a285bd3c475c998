//! Grouping and timing, driven with tokio's paused clock.

use std::time::Duration;

use chrono::Utc;
use tokio::sync::mpsc;

use super::*;
use crate::notify::NotifyHandle;

fn settings(send_resolved: bool) -> RouteSettings {
    RouteSettings {
        receiver: "r".into(),
        group_by: vec!["alertname".into()],
        group_wait: Duration::from_secs(30),
        group_interval: Duration::from_secs(300),
        repeat_interval: Duration::from_secs(3600),
        external_url: "http://klaxon".into(),
        send_resolved: vec![send_resolved],
        time_intervals: RouteTimeIntervals::default(),
    }
}

fn alert(name: &str, model: &str, resolved: bool) -> Alert {
    let now = Utc::now();
    Alert {
        labels: Labels::new([("alertname", name), ("model_name", model)]),
        annotations: Default::default(),
        starts_at: now,
        ends_at: resolved.then_some(now),
        generator_url: "".into(),
    }
}

struct Harness {
    alerts: mpsc::Sender<Vec<Alert>>,
    deliveries: mpsc::Receiver<DeliveryRequest>,
}

impl Harness {
    fn start(settings: RouteSettings) -> Self {
        let (notify, deliveries) = NotifyHandle::capture("r", settings.send_resolved.len(), 100);
        let (tx, rx) = mpsc::channel(100);
        tokio::spawn(Dispatcher::new(settings, notify).run(rx));
        Self {
            alerts: tx,
            deliveries,
        }
    }

    async fn send(&self, alerts: Vec<Alert>) {
        self.alerts.send(alerts).await.unwrap();
    }

    /// Next delivery within `within`, acknowledged as delivered.
    async fn next(&mut self, within: Duration) -> Option<Notification> {
        let req = tokio::time::timeout(within, self.deliveries.recv())
            .await
            .ok()??;
        req.done.send(true);
        Some(req.notification)
    }
}

#[tokio::test(start_paused = true)]
async fn group_wait_batches_alerts_of_one_group() {
    let mut h = Harness::start(settings(true));
    h.send(vec![alert("A", "m1", false)]).await;
    tokio::time::sleep(Duration::from_secs(10)).await;
    h.send(vec![alert("A", "m2", false), alert("B", "m1", false)])
        .await;
    assert!(
        h.next(Duration::from_secs(19)).await.is_none(),
        "nothing before group_wait"
    );
    let mut got = [
        h.next(Duration::from_secs(2)).await.unwrap(),
        h.next(Duration::from_secs(11)).await.unwrap(),
    ];
    got.sort_by(|a, b| a.group_key.cmp(&b.group_key));
    assert_eq!(got[0].group_key, "{}:{alertname=\"A\"}");
    assert_eq!(got[0].alerts.len(), 2);
    assert_eq!(got[0].status, "firing");
    assert_eq!(got[0].group_labels.get("alertname"), Some("A"));
    assert_eq!(got[1].group_key, "{}:{alertname=\"B\"}");
}

#[tokio::test(start_paused = true)]
async fn unchanged_group_repeats_only_after_repeat_interval() {
    let mut h = Harness::start(settings(true));
    h.send(vec![alert("A", "m1", false)]).await;
    assert!(h.next(Duration::from_secs(31)).await.is_some());
    // Still firing, re-sent by the rule each evaluation: no new notification.
    for _ in 0..10 {
        h.send(vec![alert("A", "m1", false)]).await;
        tokio::time::sleep(Duration::from_secs(60)).await;
    }
    assert!(h.next(Duration::from_secs(3000 - 600 - 31)).await.is_none());
    // After repeat_interval (checked at a group_interval tick) it repeats.
    let again = h.next(Duration::from_secs(1200)).await.unwrap();
    assert_eq!(again.alerts.len(), 1);
}

#[tokio::test(start_paused = true)]
async fn new_alert_in_flushed_group_waits_for_group_interval() {
    let mut h = Harness::start(settings(true));
    h.send(vec![alert("A", "m1", false)]).await;
    assert!(h.next(Duration::from_secs(31)).await.is_some());
    h.send(vec![alert("A", "m2", false)]).await;
    assert!(h.next(Duration::from_secs(200)).await.is_none());
    let n = h.next(Duration::from_secs(101)).await.unwrap();
    assert_eq!(n.alerts.len(), 2);
}

#[tokio::test(start_paused = true)]
async fn resolution_is_notified_then_group_is_dropped() {
    let mut h = Harness::start(settings(true));
    h.send(vec![alert("A", "m1", false)]).await;
    assert!(h.next(Duration::from_secs(31)).await.is_some());
    h.send(vec![alert("A", "m1", true)]).await;
    let n = h.next(Duration::from_secs(301)).await.unwrap();
    assert_eq!(n.status, "resolved");
    assert_eq!(n.alerts[0].status, "resolved");
    assert_ne!(n.alerts[0].ends_at, crate::alert::ZERO_TIME);
    // Nothing more: the group is gone.
    assert!(h.next(Duration::from_secs(7200)).await.is_none());
}

#[tokio::test(start_paused = true)]
async fn send_resolved_false_still_clears_without_sending_resolved() {
    let mut h = Harness::start(settings(false));
    h.send(vec![alert("A", "m1", false), alert("A", "m2", false)])
        .await;
    assert_eq!(
        h.next(Duration::from_secs(31)).await.unwrap().alerts.len(),
        2
    );
    h.send(vec![alert("A", "m2", true)]).await;
    // One resolved, one still firing: nothing new to say without send_resolved.
    assert!(h.next(Duration::from_secs(301)).await.is_none());
}

#[tokio::test(start_paused = true)]
async fn failed_delivery_is_retried_at_next_interval() {
    let mut h = Harness::start(settings(true));
    h.send(vec![alert("A", "m1", false)]).await;
    let req = tokio::time::timeout(Duration::from_secs(31), h.deliveries.recv())
        .await
        .unwrap()
        .unwrap();
    req.done.send(false);
    // Not logged as sent, so the next group_interval tick sends it again.
    assert!(h.next(Duration::from_secs(301)).await.is_some());
}

#[test]
fn group_key_formats_like_alertmanager() {
    let l = Labels::new([("alertname", "A"), ("model_name", "m")]);
    assert_eq!(group_key(&l), "{}:{alertname=\"A\", model_name=\"m\"}");
    assert_eq!(group_key(&Labels::empty()), "{}:{}");
}

/// A dispatcher over a routing tree parsed from `route` YAML, capturing the
/// deliveries of receivers `default`, `pager` and `ml` (one integration each).
fn tree_harness(route_yaml: &str) -> Harness {
    tree_harness_with("", route_yaml)
}

/// As [`tree_harness`], with top-level YAML (e.g. `time_intervals`) first.
fn tree_harness_with(top_yaml: &str, route_yaml: &str) -> Harness {
    let yaml = format!(
        "{top_yaml}route:\n{route_yaml}receivers:\n  - name: default\n    webhook_configs: [{{url: 'http://d'}}]\n  - name: pager\n    webhook_configs: [{{url: 'http://p'}}]\n  - name: ml\n    webhook_configs: [{{url: 'http://m'}}]\n"
    );
    let config = Config::parse(&yaml, "t.yml").unwrap();
    config.validate_static("t.yml", &yaml).unwrap();
    let routing = Routing::from_config(&config).unwrap().unwrap();
    let (notify, deliveries) =
        NotifyHandle::capture_many(&[("default", 1), ("pager", 1), ("ml", 1)], 100);
    let (tx, rx) = mpsc::channel(100);
    tokio::spawn(Dispatcher::with_routing(routing, notify).run(rx));
    Harness {
        alerts: tx,
        deliveries,
    }
}

fn labelled(pairs: &[(&str, &str)]) -> Alert {
    Alert {
        labels: Labels::new(pairs.iter().copied()),
        annotations: Default::default(),
        starts_at: Utc::now(),
        ends_at: None,
        generator_url: "".into(),
    }
}

const TREE: &str = "  receiver: default\n  group_by: [alertname]\n  group_wait: 30s\n  group_interval: 5m\n  routes:\n    - matchers: ['severity=\"critical\"']\n      receiver: pager\n      group_wait: 10s\n      continue: true\n    - match: {team: ml}\n      receiver: ml\n      group_by: ['...']\n";

#[tokio::test(start_paused = true)]
async fn each_matched_route_groups_and_notifies_its_receiver() {
    let mut h = tree_harness(TREE);
    h.send(vec![
        labelled(&[("alertname", "A"), ("severity", "critical"), ("team", "ml")]),
        labelled(&[("alertname", "B"), ("severity", "warning")]),
    ])
    .await;
    // The pager route's own group_wait (10s) comes first.
    let first = h.next(Duration::from_secs(11)).await.unwrap();
    assert_eq!(first.receiver, "pager");
    assert_eq!(
        first.group_key,
        "{}/{severity=\"critical\"}:{alertname=\"A\"}"
    );
    assert!(
        h.next(Duration::from_secs(18)).await.is_none(),
        "the other routes wait 30s"
    );
    let mut rest = [
        h.next(Duration::from_secs(3)).await.unwrap(),
        h.next(Duration::from_secs(1)).await.unwrap(),
    ];
    rest.sort_by(|a, b| a.receiver.cmp(&b.receiver));
    assert_eq!(rest[0].receiver, "default");
    assert_eq!(rest[0].group_key, "{}:{alertname=\"B\"}");
    assert_eq!(rest[1].receiver, "ml");
    // `...` groups by every label; the timers are inherited from the root.
    assert_eq!(
        rest[1].group_key,
        "{}/{team=\"ml\"}:{alertname=\"A\", severity=\"critical\", team=\"ml\"}"
    );
    assert_eq!(rest[1].group_labels.len(), 3);
    assert!(h.next(Duration::from_secs(3600)).await.is_none());
}

#[tokio::test(start_paused = true)]
async fn resolution_reaches_every_matched_route() {
    let mut h = tree_harness(TREE);
    let labels = [("alertname", "A"), ("severity", "critical"), ("team", "ml")];
    h.send(vec![labelled(&labels)]).await;
    let mut got = Vec::new();
    while let Some(n) = h.next(Duration::from_secs(31)).await {
        got.push(n.receiver);
        if got.len() == 2 {
            break;
        }
    }
    got.sort();
    assert_eq!(got, ["ml", "pager"]);
    let mut resolved = labelled(&labels);
    resolved.ends_at = Some(Utc::now());
    h.send(vec![resolved]).await;
    let mut got = Vec::new();
    while let Some(n) = h.next(Duration::from_secs(301)).await {
        assert_eq!(n.status, "resolved");
        got.push(n.receiver);
        if got.len() == 2 {
            break;
        }
    }
    got.sort();
    assert_eq!(got, ["ml", "pager"]);
    assert!(h.next(Duration::from_secs(7200)).await.is_none());
}

/// Time intervals that contain every instant and none: the dispatcher reads
/// the wall clock (`Utc::now()`), which paused tokio time does not move.
const INTERVALS: &str = "time_intervals:\n  - name: always\n    time_intervals:\n      - times: [{start_time: '00:00', end_time: '24:00'}]\n  - name: never\n    time_intervals:\n      - years: ['2000']\n";

fn named(name: &str, yaml: &str) -> timeinterval::NamedTimeInterval {
    timeinterval::NamedTimeInterval {
        name: name.into(),
        time_intervals: vec![serde_norway::from_str(yaml).unwrap()],
    }
}

#[tokio::test(start_paused = true)]
async fn a_muted_route_sends_nothing_while_its_sibling_does() {
    let mut h = tree_harness_with(
        INTERVALS,
        "  receiver: default\n  group_by: [alertname]\n  group_wait: 30s\n  group_interval: 5m\n  routes:\n    - matchers: ['severity=\"critical\"']\n      receiver: pager\n      continue: true\n      mute_time_intervals: [never, always]\n    - match: {team: ml}\n      receiver: ml\n",
    );
    h.send(vec![labelled(&[
        ("alertname", "A"),
        ("severity", "critical"),
        ("team", "ml"),
    ])])
    .await;
    let n = h.next(Duration::from_secs(31)).await.unwrap();
    assert_eq!(n.receiver, "ml");
    // Hours of group_interval ticks (short of the 4h repeat_interval): the
    // muted pager route never sends.
    assert!(h.next(Duration::from_secs(3 * 3600)).await.is_none());
}

#[tokio::test(start_paused = true)]
async fn active_time_intervals_send_only_inside_them() {
    let mut h = tree_harness_with(
        INTERVALS,
        "  receiver: default\n  group_by: [alertname]\n  group_wait: 30s\n  group_interval: 5m\n  routes:\n    - matchers: ['severity=\"critical\"']\n      receiver: pager\n      continue: true\n      active_time_intervals: [never]\n    - match: {team: ml}\n      receiver: ml\n      active_time_intervals: [never, always]\n",
    );
    h.send(vec![labelled(&[
        ("alertname", "A"),
        ("severity", "critical"),
        ("team", "ml"),
    ])])
    .await;
    // Any one active interval containing now is enough.
    let n = h.next(Duration::from_secs(31)).await.unwrap();
    assert_eq!(n.receiver, "ml");
    // Outside its only active interval, the pager route sends nothing.
    assert!(h.next(Duration::from_secs(3 * 3600)).await.is_none());
}

/// Drives the dispatcher's flushes directly: the mute "ends" when the
/// route's interval stops containing the wall-clock instant of a flush,
/// which a test cannot move, so the interval is swapped instead.
#[tokio::test(start_paused = true)]
async fn a_muted_flush_leaves_the_log_so_the_first_flush_after_the_mute_sends() {
    let mut s = settings(true);
    s.time_intervals.mute = vec![named("maintenance", "{}")];
    let (notify, mut deliveries) = NotifyHandle::capture("r", 1, 100);
    let mut d = Dispatcher::new(s, notify);
    let (flushed_tx, _flushed_rx) = mpsc::unbounded_channel();
    let t0 = Instant::now();
    d.insert(vec![alert("A", "m1", false)], t0);

    // Muted: the group flushes on time but nothing is sent or logged.
    let mut t = t0 + Duration::from_secs(30);
    for _ in 0..3 {
        d.flush_due(t, &flushed_tx);
        assert!(deliveries.try_recv().is_err(), "muted flush sent something");
        assert!(d.log.0.is_empty(), "muted flush updated the log");
        t += Duration::from_secs(300);
    }

    // The mute is over: the next group_interval flush sends the alert.
    d.routing.routes[0].time_intervals.mute = vec![named("maintenance", "years: ['2000']")];
    d.flush_due(t, &flushed_tx);
    let req = deliveries.try_recv().expect("sent after the mute");
    assert_eq!(req.notification.alerts.len(), 1);
    assert_eq!(req.notification.status, "firing");
}

/// Alertmanager's consequence of a muted flush counting as done: an alert
/// that resolves during the mute is dropped from its group without a
/// resolved notification.
#[tokio::test(start_paused = true)]
async fn an_alert_resolved_during_a_mute_is_dropped_as_alertmanager_does() {
    let mut s = settings(true);
    s.time_intervals.active = vec![named("office", "{}")];
    let (notify, mut deliveries) = NotifyHandle::capture("r", 1, 100);
    let mut d = Dispatcher::new(s, notify);
    let (flushed_tx, mut flushed_rx) = mpsc::unbounded_channel();
    let t0 = Instant::now();
    d.insert(vec![alert("A", "m1", false)], t0);
    let t = t0 + Duration::from_secs(30);
    d.flush_due(t, &flushed_tx);
    let req = deliveries.try_recv().expect("sent while active");
    req.done.send(true);
    let done = flushed_rx.recv().await.unwrap();
    d.on_flushed(done, t);
    assert_eq!(d.log.0.len(), 1);

    // Outside the active interval, the alert resolves: the flush sends
    // nothing, and the group is gone.
    d.routing.routes[0].time_intervals.active = vec![named("office", "years: ['2000']")];
    d.insert(vec![alert("A", "m1", true)], t);
    d.flush_due(t + Duration::from_secs(300), &flushed_tx);
    assert!(deliveries.try_recv().is_err());
    assert!(d.groups.is_empty());
}

/// The other side of leaving the log alone: an alert notified before the
/// mute is not re-sent when it ends, only at its repeat_interval (as in
/// Alertmanager, prometheus/alertmanager#3367).
#[tokio::test(start_paused = true)]
async fn an_alert_notified_before_a_mute_waits_for_repeat_interval_after_it() {
    let mut s = settings(true);
    s.repeat_interval = Duration::from_secs(3600);
    let (notify, mut deliveries) = NotifyHandle::capture("r", 1, 100);
    let mut d = Dispatcher::new(s, notify);
    let (flushed_tx, mut flushed_rx) = mpsc::unbounded_channel();
    let t0 = Instant::now();
    d.insert(vec![alert("A", "m1", false)], t0);
    let mut t = t0 + Duration::from_secs(30);
    d.flush_due(t, &flushed_tx);
    deliveries
        .try_recv()
        .expect("sent before the mute")
        .done
        .send(true);
    let done = flushed_rx.recv().await.unwrap();
    d.on_flushed(done, t);

    d.routing.routes[0].time_intervals.mute = vec![named("maintenance", "{}")];
    t += Duration::from_secs(300);
    d.flush_due(t, &flushed_tx);
    assert!(deliveries.try_recv().is_err(), "muted");

    // The mute ends: nothing new to say until repeat_interval has passed.
    d.routing.routes[0].time_intervals.mute.clear();
    t += Duration::from_secs(300);
    d.flush_due(t, &flushed_tx);
    assert!(
        deliveries.try_recv().is_err(),
        "nothing changed since the last notification"
    );
    t = t0 + Duration::from_secs(30 + 3600);
    d.flush_due(t, &flushed_tx);
    assert!(deliveries.try_recv().is_ok(), "repeated at repeat_interval");
}
