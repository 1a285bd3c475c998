//! The delivery queue under trouble: a notification accepted while the
//! receiver is down survives a shutdown in the data dir's journal and is
//! delivered by the next start; a rate-limited integration sends critical
//! groups before the warnings queued ahead of them.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use common::*;
use klaxon_host::config::Config;
use klaxon_host::server::{ServerOptions, start};
use serde_json::{Value, json};
use tokio::sync::Mutex;

/// A receiver that answers 503 until `up` is set, then 200, recording what
/// it accepted.
async fn flaky() -> (String, Arc<AtomicBool>, Received) {
    #[derive(Clone)]
    struct S {
        up: Arc<AtomicBool>,
        got: Received,
    }
    async fn hook(State(s): State<S>, Json(body): Json<Value>) -> StatusCode {
        if !s.up.load(Ordering::SeqCst) {
            return StatusCode::SERVICE_UNAVAILABLE;
        }
        s.got.bodies.lock().await.push(body);
        StatusCode::OK
    }
    let up = Arc::new(AtomicBool::new(false));
    let got = Received {
        bodies: Arc::new(Mutex::new(Vec::new())),
    };
    let app = Router::new().route("/hook", post(hook)).with_state(S {
        up: up.clone(),
        got: got.clone(),
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await.expect("serve") });
    (format!("http://{addr}"), up, got)
}

async fn start_with_dir(yaml: &str, dir: &std::path::Path) -> klaxon_host::server::Server {
    start(ServerOptions {
        listen: "127.0.0.1:0".parse().expect("addr"),
        config: Config::parse(yaml, "test.yml").expect("config"),
        config_file: "test.yml".into(),
        config_text: yaml.into(),
        config_path: None,
        data_dir: Some(dir.to_path_buf()),
    })
    .await
    .expect("klaxon starts")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_notifications_survive_a_restart() {
    let (receiver, up, got) = flaky().await;
    let yaml = format!(
        r#"
notify:
  initial_backoff: 100ms
  max_backoff: 500ms
  give_up_after: 1h
route:
  receiver: hook
  group_by: [alertname]
  group_wait: 0s
receivers:
  - name: hook
    webhook_configs: [{{ url: "{receiver}/hook", allowed_networks: ["127.0.0.1/32"] }}]
"#
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let server = start_with_dir(&yaml, dir.path()).await;
    let base = format!("http://{}", server.addr());
    let client = reqwest::Client::new();
    let r = client
        .post(format!("{base}/api/v2/alerts"))
        .json(&json!([{"labels": {"alertname": "FeatureNullRate", "model_name": "fraud"}}]))
        .send()
        .await
        .expect("POST");
    assert_eq!(r.status(), 200);
    // The receiver is down: the delivery is being retried.
    eventually(
        Duration::from_secs(10),
        "a failed attempt in the delivery log",
        || {
            let (c, u) = (client.clone(), format!("{base}/api/v1/notifications"));
            async move {
                let log = get_json(&c, &u).await;
                log["data"]
                    .as_array()
                    .is_some_and(|l| l.iter().any(|r| r["outcome"] == "retrying"))
                    .then_some(())
            }
        },
    )
    .await;
    assert_eq!(
        server
            .state
            .live
            .load()
            .notify
            .as_ref()
            .and_then(|n| n.pending()),
        Some(1)
    );
    server.shutdown().await;

    // The receiver comes back; a new Klaxon on the same data dir delivers
    // what the first one had accepted, with no alert posted again.
    up.store(true, Ordering::SeqCst);
    let server = start_with_dir(&yaml, dir.path()).await;
    let bodies = got.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(
        bodies[0]["alerts"][0]["labels"]["alertname"],
        "FeatureNullRate"
    );
    assert_eq!(bodies[0]["groupKey"], "{}:{alertname=\"FeatureNullRate\"}");
    eventually(Duration::from_secs(5), "the journal to be empty", || {
        let pending = server
            .state
            .live
            .load()
            .notify
            .as_ref()
            .and_then(|n| n.pending());
        async move { (pending == Some(0)).then_some(()) }
    })
    .await;
    server.shutdown().await;
    let server = start_with_dir(&yaml, dir.path()).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        got.all().await.len(),
        1,
        "a delivered notification is not sent again"
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limited_integrations_send_critical_first() {
    let (receiver, received) = start_receiver().await;
    let yaml = format!(
        r#"
notify:
  rate_limits:
    webhook: {{ per_minute: 120, burst: 1 }}
route:
  receiver: hook
  group_by: [alertname]
  group_wait: 0s
receivers:
  - name: hook
    webhook_configs: [{{ url: "{receiver}/hook", allowed_networks: ["127.0.0.1/32"] }}]
"#
    );
    let server = start_klaxon(&yaml).await;
    let base = format!("http://{}", server.addr());
    let client = reqwest::Client::new();
    let post = |alerts: Value| {
        let (c, u) = (client.clone(), format!("{base}/api/v2/alerts"));
        async move {
            let r = c.post(u).json(&alerts).send().await.expect("POST");
            assert_eq!(r.status(), 200);
        }
    };
    // The first notification takes the only token.
    post(json!([{"labels": {"alertname": "First", "severity": "warning"}}])).await;
    received.wait_for(1, Duration::from_secs(10)).await;
    // Three warnings, then a critical, all waiting for tokens.
    post(json!([
        {"labels": {"alertname": "W1", "severity": "warning"}},
        {"labels": {"alertname": "W2", "severity": "warning"}},
        {"labels": {"alertname": "W3", "severity": "warning"}},
    ]))
    .await;
    post(json!([{"labels": {"alertname": "Crit", "severity": "critical"}}])).await;
    let bodies = received.wait_for(5, Duration::from_secs(20)).await;
    let order: Vec<&str> = bodies
        .iter()
        .map(|b| b["groupLabels"]["alertname"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(order[0], "First");
    assert_eq!(
        order[1], "Crit",
        "critical goes before queued warnings: {order:?}"
    );
    server.shutdown().await;
}
