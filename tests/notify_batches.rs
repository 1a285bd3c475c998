//! Notifications queued for one integration leave in batches when they
//! outnumber its delivery slots: one `send-batch` call (one plugin
//! instance) delivers several, each still its own POST, its own delivery
//! record and its own outcome. A notification that makes the plugin trap
//! ends the batch call; the host keeps the outcomes the plugin reported
//! before that and sends the rest on their own, so only the bad one fails
//! and none is sent twice.
//!
//! Each notification of a batch gets one call's deadline, restarted when
//! the plugin reports the one before: a slow batch is not cut short, a
//! plugin stuck on one notification is.
//!
//! A notifier built for the plain `notifier` world (no `send-batch`) still
//! delivers a backlog, one notification per call.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use klaxon_host::alert::Notification;
use klaxon_host::config::Config;
use klaxon_host::notify::{self, DeliveryRequest};
use klaxon_host::plugins::PluginRegistry;
use serde_json::{Value, json};
use tokio::sync::oneshot;

const PER_INTEGRATION: usize = 8;
/// The `boom` integration's notification that makes `sneaky` panic.
const EXPLODING: usize = 3;

fn notification(receiver: &str, i: usize) -> Notification {
    let explode = (receiver == "boom" && i == EXPLODING).then_some("true");
    notification_with(receiver, i, explode)
}

/// A notification of group `m{i}` for `receiver`, labelled `explode=VALUE`
/// when given (what the fixture `sneaky` does with it in `explode` mode).
fn notification_with(receiver: &str, i: usize, explode: Option<&str>) -> Notification {
    let mut labels = json!({"alertname": "Drift", "model_name": format!("m{i}")});
    if let Some(value) = explode {
        labels["explode"] = json!(value);
    }
    serde_json::from_value(json!({
        "receiver": receiver,
        "status": "firing",
        "alerts": [{
            "status": "firing",
            "labels": labels,
            "annotations": {"summary": "drift"},
            "startsAt": "2026-12-01T00:00:00Z",
            "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "",
            "fingerprint": format!("{i:016x}"),
        }],
        "groupLabels": {"model_name": format!("m{i}")},
        "commonLabels": labels,
        "commonAnnotations": {"summary": "drift"},
        "externalURL": "http://klaxon.example",
        "groupKey": format!("{receiver}/m{i}"),
        "truncatedAlerts": 0,
    }))
    .expect("notification")
}

/// The receiver `boom`: the fixture `sneaky` in `explode` mode, posting to
/// `url`/hook.
fn boom_receiver(url: &str) -> String {
    format!(
        r#"  - name: boom
    plugin_configs:
      - plugin: sneaky
        config: {{ url: "{url}/hook", target: "{url}/hook", mode: explode }}
        allowed_networks: ["127.0.0.1/32"]
"#
    )
}

/// A config loading the fixture at `wasm`, one delivery slot per
/// integration (so a backlog leaves in batches), routing everything to
/// `receiver`, with `receivers` (YAML list items).
fn one_slot_config(wasm: &std::path::Path, receiver: &str, receivers: &str) -> String {
    format!(
        r#"
plugins:
  files: ["{wasm}"]
notify:
  max_in_flight: 1
route:
  receiver: {receiver}
receivers:
{receivers}"#,
        wasm = wasm.display(),
    )
}

/// The plugins and the delivery queues of `yaml` (no routing, no server).
async fn start_notify(yaml: &str) -> (notify::NotifyHandle, Arc<PluginRegistry>) {
    let config = Config::parse(yaml, "test.yml").expect("config parses");
    let plugins = klaxon_host::server::load_plugins(&config, None)
        .await
        .expect("plugins load");
    let handle = notify::start(&config, plugins.clone(), None).expect("notify starts");
    (handle, plugins)
}

/// Queues `notification` for its receiver's first integration; whether it
/// was delivered arrives on the receiver returned.
fn enqueue(handle: &notify::NotifyHandle, notification: Notification) -> oneshot::Receiver<bool> {
    let (done, outcome) = oneshot::channel();
    handle
        .enqueue(DeliveryRequest {
            receiver: notification.receiver.clone(),
            integration: 0,
            notification,
            done: notify::Done::channel(done),
            journal_id: None,
        })
        .expect("queued");
    outcome
}

/// The `groupKey` of each body received, sorted.
fn sorted_group_keys(bodies: &[Value]) -> Vec<String> {
    let mut keys: Vec<String> = bodies
        .iter()
        .map(|b| b["groupKey"].as_str().unwrap_or_default().to_string())
        .collect();
    keys.sort_unstable();
    keys
}

/// Whether a queued notification was delivered (after its retries).
async fn delivered(outcome: oneshot::Receiver<bool>) -> bool {
    tokio::time::timeout(Duration::from_secs(60), outcome)
        .await
        .expect("delivery ends")
        .expect("worker reports")
}

// A current-thread runtime: every request is queued before either worker
// first runs, so each worker finds a backlog of eight for its one slot.
#[tokio::test]
async fn a_backlog_leaves_in_batches_and_a_bad_notification_fails_alone() {
    let dir = tempfile::tempdir().expect("tempdir");
    let wasm = fixture_file(dir.path(), "sneaky");
    let (url, received) = start_receiver().await;
    let yaml = one_slot_config(
        &wasm,
        "hook",
        &format!(
            r#"  - name: hook
    webhook_configs: [{{ url: "{url}/hook", allowed_networks: ["127.0.0.1/32"] }}]
{boom}"#,
            boom = boom_receiver(&url),
        ),
    );
    let (handle, plugins) = start_notify(&yaml).await;
    let calls = |name: &str| plugins.get(name).expect("plugin loaded").stats().calls;
    let (webhook_calls, sneaky_calls) = (calls("webhook"), calls("sneaky"));

    let outcomes: Vec<_> = ["hook", "boom"]
        .iter()
        .flat_map(|r| (0..PER_INTEGRATION).map(move |i| notification(r, i)))
        .map(|n| enqueue(&handle, n))
        .collect();
    for (n, outcome) in outcomes.into_iter().enumerate() {
        let (receiver, i) = (["hook", "boom"][n / PER_INTEGRATION], n % PER_INTEGRATION);
        let expected = !(receiver == "boom" && i == EXPLODING);
        assert_eq!(delivered(outcome).await, expected, "{receiver} m{i}");
    }

    // Each notification its own POST: every webhook one, every `boom` one
    // but the exploding one, none twice.
    let got = received
        .wait_for(2 * PER_INTEGRATION - 1, Duration::from_secs(10))
        .await;
    let keys = sorted_group_keys(&got);
    let mut expected: Vec<String> = ["hook", "boom"]
        .iter()
        .flat_map(|r| (0..PER_INTEGRATION).map(move |i| (r, i)))
        .filter(|&(r, i)| !(*r == "boom" && i == EXPLODING))
        .map(|(r, i)| format!("{r}/m{i}"))
        .collect();
    expected.sort_unstable();
    assert_eq!(keys, expected);
    // The webhook bodies are whole notifications.
    let hook_body: &Value = got
        .iter()
        .find(|b| b["groupKey"] == "hook/m0")
        .expect("hook/m0 delivered");
    assert_eq!(hook_body["version"], "4");
    assert_eq!(hook_body["commonLabels"]["model_name"], "m0");

    // The webhook's eight went out in one call. Sneaky's batch call
    // reported the three before the exploding one, then trapped: those
    // three stay delivered, and the exploding one and the four after it
    // were each sent on their own.
    assert_eq!(calls("webhook") - webhook_calls, 1);
    assert_eq!(
        calls("sneaky") - sneaky_calls,
        1 + (PER_INTEGRATION - EXPLODING) as u64
    );

    // One record per notification; the exploding one failed as a trap, on
    // its first attempt, and nothing else failed.
    let log = handle.delivery_log();
    assert_eq!(log.len(), 2 * PER_INTEGRATION, "{log:#?}");
    for record in &log {
        if record.group_key == format!("boom/m{EXPLODING}") {
            assert_eq!(record.outcome, "failed", "{record:?}");
            assert!(record.detail.contains("trapped"), "{record:?}");
        } else {
            assert_eq!(record.outcome, "delivered", "{record:?}");
        }
        assert_eq!(record.attempt, 1, "{record:?}");
    }
    handle.shutdown();
}

/// A batch as a whole may take longer than one notification's deadline
/// (each notification the plugin reports gives the next one its time), but
/// a plugin stuck on one notification is stopped at that notification's
/// deadline: the ones it reported stay delivered (and are reported done at
/// once), and the stuck one times out (and is retried alone until given
/// up).
#[tokio::test]
async fn each_notification_of_a_batch_gets_one_calls_time() {
    const STUCK: usize = PER_INTEGRATION - 1;
    let dir = tempfile::tempdir().expect("tempdir");
    let wasm = fixture_file(dir.path(), "sneaky");
    // 120 ms per POST: the batch's first seven take 840 ms, more than one
    // notification's whole deadline (100 ms + 3 requests x 200 ms).
    let (url, received) = start_slow_receiver(Duration::from_millis(120)).await;
    let yaml = format!(
        r#"
plugins:
  files: ["{wasm}"]
  overrides:
    sneaky: {{ timeout: 100ms }}
notify:
  max_in_flight: 1
  http_timeout: 200ms
  initial_backoff: 50ms
  max_backoff: 100ms
  give_up_after: 1s
route:
  receiver: boom
receivers:
{boom}"#,
        wasm = wasm.display(),
        boom = boom_receiver(&url),
    );
    let (handle, _plugins) = start_notify(&yaml).await;

    let mut outcomes: Vec<_> = (0..PER_INTEGRATION)
        .map(|i| notification_with("boom", i, (i == STUCK).then_some("loop")))
        .map(|n| enqueue(&handle, n))
        .collect();
    let mut stuck = outcomes.pop().expect("the stuck one");
    for (i, outcome) in outcomes.into_iter().enumerate() {
        assert!(delivered(outcome).await, "m{i}");
    }
    // The batch's settled notifications were reported while the stuck one
    // was still being tried alone (its own deadline after the batch's).
    assert_eq!(
        stuck.try_recv(),
        Err(oneshot::error::TryRecvError::Empty),
        "the stuck one ended no later than the others"
    );
    assert!(!delivered(stuck).await, "m{STUCK}");

    let got = received.all().await;
    let keys = sorted_group_keys(&got);
    let expected: Vec<String> = (0..PER_INTEGRATION)
        .filter(|&i| i != STUCK)
        .map(|i| format!("boom/m{i}"))
        .collect();
    assert_eq!(keys, expected, "each delivered once");

    let log = handle.delivery_log();
    for i in 0..PER_INTEGRATION {
        let key = format!("boom/m{i}");
        let records: Vec<_> = log.iter().filter(|r| r.group_key == key).collect();
        let last = records.last().expect("a record");
        if i == STUCK {
            assert_eq!(last.outcome, "gave_up", "{records:?}");
            assert!(last.detail.contains("timed out"), "{records:?}");
        } else {
            // All from the batch call, at their first attempt.
            assert_eq!(records.len(), 1, "{records:?}");
            assert_eq!(last.outcome, "delivered", "{records:?}");
            assert_eq!(last.attempt, 1, "{records:?}");
        }
    }
    handle.shutdown();
}

/// A notifier built for the plain `notifier` world (no `send-batch`, no
/// `batch` import; the fixture `plain`, built with wit-bindgen alone)
/// loads and delivers a backlog one notification per call.
#[tokio::test]
async fn a_plain_world_notifier_delivers_one_notification_per_call() {
    let dir = tempfile::tempdir().expect("tempdir");
    let wasm = fixture_file(dir.path(), "plain");
    let (url, received) = start_receiver().await;
    let yaml = one_slot_config(
        &wasm,
        "plain",
        &format!(
            r#"  - name: plain
    plugin_configs:
      - plugin: plain
        config: {{ url: "{url}/hook" }}
        allowed_networks: ["127.0.0.1/32"]
"#
        ),
    );
    let (handle, plugins) = start_notify(&yaml).await;
    let plugin = plugins.get("plain").expect("plugin loaded");
    assert!(!plugin.sends_batches());
    let calls = plugin.stats().calls;

    let outcomes: Vec<_> = (0..PER_INTEGRATION)
        .map(|i| enqueue(&handle, notification("plain", i)))
        .collect();
    for (i, outcome) in outcomes.into_iter().enumerate() {
        assert!(delivered(outcome).await, "plain m{i}");
    }
    let got = received
        .wait_for(PER_INTEGRATION, Duration::from_secs(10))
        .await;
    let keys = sorted_group_keys(&got);
    let expected: Vec<String> = (0..PER_INTEGRATION)
        .map(|i| format!("plain/m{i}"))
        .collect();
    assert_eq!(keys, expected);
    assert_eq!(
        plugins.get("plain").expect("plugin loaded").stats().calls - calls,
        PER_INTEGRATION as u64
    );
    handle.shutdown();
}

/// Names of this process's threads that are delivery lanes.
fn lane_threads() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir("/proc/self/task")
        .map(|tasks| {
            tasks
                .filter_map(Result::ok)
                .filter_map(|t| std::fs::read_to_string(t.path().join("comm")).ok())
                .map(|name| name.trim().to_string())
                .filter(|name| name.starts_with("klaxon-lane-"))
                .collect()
        })
        .unwrap_or_default();
    names.sort_unstable();
    names
}

/// `notify.delivery_threads` starts that many delivery lanes (threads);
/// with lanes or without (0: on the caller's runtime), a backlog spread over
/// several delivery slots arrives whole, each notification once. (That
/// dropped lanes stop is `notify::lanes`' unit test.)
#[tokio::test]
async fn deliveries_arrive_with_and_without_delivery_lanes() {
    const BACKLOG: usize = 40;
    for threads in [3, 0] {
        let (url, received) = start_receiver().await;
        let yaml = format!(
            r#"
notify:
  max_in_flight: 4
  delivery_threads: {threads}
route:
  receiver: hook
receivers:
  - name: hook
    webhook_configs: [{{ url: "{url}/hook", allowed_networks: ["127.0.0.1/32"] }}]
"#
        );
        let (handle, _plugins) = start_notify(&yaml).await;
        if threads > 0 {
            // Other tests of this binary may run lanes of their own.
            let lanes = lane_threads();
            for i in 0..threads {
                assert!(
                    lanes.contains(&format!("klaxon-lane-{i}")),
                    "{threads} lanes: {lanes:?}"
                );
            }
        }
        let outcomes: Vec<_> = (0..BACKLOG)
            .map(|i| enqueue(&handle, notification("hook", i)))
            .collect();
        for (i, outcome) in outcomes.into_iter().enumerate() {
            assert!(delivered(outcome).await, "{threads} lanes: m{i}");
        }
        let got = received.wait_for(BACKLOG, Duration::from_secs(10)).await;
        let mut expected: Vec<String> = (0..BACKLOG).map(|i| format!("hook/m{i}")).collect();
        expected.sort_unstable();
        assert_eq!(sorted_group_keys(&got), expected, "{threads} lanes");
        handle.shutdown();
    }
}
