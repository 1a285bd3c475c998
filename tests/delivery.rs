//! Webhook delivery under trouble: 5xx and 429 (with Retry-After) are retried
//! until the receiver accepts; a 4xx is permanent and not retried. Each case
//! is visible in the delivery log.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::post;
use common::*;
use serde_json::json;

/// A receiver answering the scripted statuses in turn, then 200 forever.
async fn scripted(script: Vec<(u16, Option<&'static str>)>) -> (String, Arc<AtomicUsize>) {
    #[derive(Clone)]
    struct S {
        script: Arc<Vec<(u16, Option<&'static str>)>>,
        calls: Arc<AtomicUsize>,
    }
    async fn hook(State(s): State<S>, _body: String) -> impl IntoResponse {
        let n = s.calls.fetch_add(1, Ordering::SeqCst);
        let (status, retry_after) = s.script.get(n).copied().unwrap_or((200, None));
        let mut headers = HeaderMap::new();
        if let Some(v) = retry_after {
            headers.insert("retry-after", v.parse().expect("header"));
        }
        (
            StatusCode::from_u16(status).expect("status"),
            headers,
            "scripted",
        )
    }
    let calls = Arc::new(AtomicUsize::new(0));
    let app = Router::new().route("/hook", post(hook)).with_state(S {
        script: Arc::new(script),
        calls: calls.clone(),
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await.expect("serve") });
    (format!("http://{addr}/hook"), calls)
}

fn config(url: &str) -> String {
    format!(
        r#"
notify:
  initial_backoff: 100ms
  max_backoff: 1s
  give_up_after: 30s
groups:
  - name: g
    interval: 1s
    rules:
      - alert: High
        query: x
        window: 1m
        detector: threshold
        config: {{ op: ">", value: 1 }}
route:
  receiver: r
  group_wait: 0s
  group_interval: 1h
receivers:
  - name: r
    webhook_configs: [{{ url: "{url}", allowed_networks: ["127.0.0.1/32"] }}]
"#
    )
}

async fn fire(base: &str) {
    let client = reqwest::Client::new();
    let r = push(
        &client,
        base,
        json!({"series": [{"metric": "x", "value": 5.0}]}),
    )
    .await;
    assert_eq!(r.status(), 204);
}

async fn log(base: &str) -> Vec<serde_json::Value> {
    get_json(
        &reqwest::Client::new(),
        &format!("{base}/api/v1/notifications"),
    )
    .await["data"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_errors_and_429_are_retried_until_delivered() {
    let (url, calls) = scripted(vec![(503, None), (429, Some("1")), (500, None)]).await;
    let server = start_klaxon(&config(&url)).await;
    let base = format!("http://{}", server.addr());
    fire(&base).await;
    let entries = eventually(
        Duration::from_secs(20),
        "a delivered notification",
        || async {
            let l = log(&base).await;
            l.iter().any(|e| e["outcome"] == "delivered").then_some(l)
        },
    )
    .await;
    assert_eq!(
        calls.load(Ordering::SeqCst),
        4,
        "three failures then success"
    );
    let outcomes: Vec<_> = entries
        .iter()
        .map(|e| e["outcome"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(outcomes, ["retrying", "retrying", "retrying", "delivered"]);
    assert_eq!(entries[3]["attempt"], 4);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_errors_are_permanent() {
    let (url, calls) = scripted(vec![(400, None)]).await;
    let server = start_klaxon(&config(&url)).await;
    let base = format!("http://{}", server.addr());
    fire(&base).await;
    let entries = eventually(Duration::from_secs(20), "a failed notification", || async {
        let l = log(&base).await;
        (!l.is_empty()).then_some(l)
    })
    .await;
    assert_eq!(entries[0]["outcome"], "failed");
    assert!(
        entries[0]["detail"].as_str().unwrap_or("").contains("400"),
        "{}",
        entries[0]
    );
    // No retry follows a permanent failure.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    server.shutdown().await;
}
