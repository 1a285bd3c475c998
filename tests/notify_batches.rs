//! Notifications queued for one integration leave in batches when they
//! outnumber its delivery slots: one `send-batch` call (one plugin
//! instance) delivers several, each still its own POST, its own delivery
//! record and its own outcome. A notification that makes the plugin trap
//! ends the batch call; the host keeps the outcomes the plugin reported
//! before that and sends the rest on their own, so only the bad one fails
//! and none is sent twice.

mod common;

use std::time::Duration;

use common::*;
use klaxon_host::alert::Notification;
use klaxon_host::config::Config;
use klaxon_host::notify::{self, DeliveryRequest};
use klaxon_host::plugins::stock::FIXTURES;
use serde_json::{Value, json};
use tokio::sync::oneshot;

const PER_INTEGRATION: usize = 8;
/// The `boom` integration's notification that makes `sneaky` panic.
const EXPLODING: usize = 3;

fn notification(receiver: &str, i: usize) -> Notification {
    let mut labels = json!({"alertname": "Drift", "model_name": format!("m{i}")});
    if receiver == "boom" && i == EXPLODING {
        labels["explode"] = json!("true");
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

// A current-thread runtime: every request is queued before either worker
// first runs, so each worker finds a backlog of eight for its one slot.
#[tokio::test]
async fn a_backlog_leaves_in_batches_and_a_bad_notification_fails_alone() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_, sneaky) = FIXTURES
        .iter()
        .find(|(n, _)| *n == "sneaky")
        .expect("fixture built");
    let wasm = dir.path().join("sneaky.wasm");
    std::fs::write(&wasm, sneaky).expect("write fixture");
    let (url, received) = start_receiver().await;
    let yaml = format!(
        r#"
plugins:
  files: ["{wasm}"]
notify:
  max_in_flight: 1
route:
  receiver: hook
receivers:
  - name: hook
    webhook_configs: [{{ url: "{url}/hook", allowed_networks: ["127.0.0.1/32"] }}]
  - name: boom
    plugin_configs:
      - plugin: sneaky
        config: {{ url: "{url}/hook", target: "{url}/hook", mode: explode }}
        allowed_networks: ["127.0.0.1/32"]
"#,
        wasm = wasm.display(),
    );
    let config = Config::parse(&yaml, "test.yml").expect("config parses");
    let plugins = klaxon_host::server::load_plugins(&config, None)
        .await
        .expect("plugins load");
    let handle = notify::start(&config, plugins.clone(), None).expect("notify starts");
    let calls = |name: &str| plugins.get(name).expect("plugin loaded").stats().calls;
    let (webhook_calls, sneaky_calls) = (calls("webhook"), calls("sneaky"));

    let mut outcomes = Vec::new();
    for receiver in ["hook", "boom"] {
        for i in 0..PER_INTEGRATION {
            let (done, outcome) = oneshot::channel();
            handle
                .enqueue(DeliveryRequest {
                    receiver: receiver.into(),
                    integration: 0,
                    notification: notification(receiver, i),
                    done,
                    journal_id: None,
                })
                .expect("queued");
            outcomes.push((receiver, i, outcome));
        }
    }
    for (receiver, i, outcome) in outcomes {
        let delivered = tokio::time::timeout(Duration::from_secs(30), outcome)
            .await
            .expect("delivery ends")
            .expect("worker reports");
        let expected = !(receiver == "boom" && i == EXPLODING);
        assert_eq!(delivered, expected, "{receiver} m{i}");
    }

    // Each notification its own POST: every webhook one, every `boom` one
    // but the exploding one, none twice.
    let got = received
        .wait_for(2 * PER_INTEGRATION - 1, Duration::from_secs(10))
        .await;
    let mut keys: Vec<String> = got
        .iter()
        .map(|b| b["groupKey"].as_str().unwrap_or_default().to_string())
        .collect();
    keys.sort_unstable();
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
