//! Time from the push that crosses a threshold to the webhook request
//! arriving at a local receiver, with `group_wait: 0s` and the rule evaluated
//! every second. Each cycle pushes a fault, waits for the firing webhook,
//! pushes recovery and waits for the resolved one. Reports p50/p99/max.
//!
//! Run: `cargo bench --bench notify_latency` (option: `-- --cycles N`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use hdrhistogram::Histogram;
use serde_json::{Value, json};
use tokio::sync::mpsc;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let cycles: usize = args
        .iter()
        .position(|a| a == "--cycles")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(40);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(run(cycles));
}

async fn run(cycles: usize) {
    let (tx, mut rx) = mpsc::unbounded_channel::<(Instant, Value)>();
    async fn hook(
        State(tx): State<Arc<mpsc::UnboundedSender<(Instant, Value)>>>,
        Json(v): Json<Value>,
    ) -> &'static str {
        let _ = tx.send((Instant::now(), v));
        "ok"
    }
    let app = Router::new()
        .route("/hook", post(hook))
        .with_state(Arc::new(tx));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let receiver = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await.expect("receiver") });

    let yaml = format!(
        r#"
groups:
  - name: latency
    interval: 1s
    rules:
      - alert: LatencyHigh
        query: ml_prediction_latency_seconds
        window: 1m
        detector: threshold
        config: {{ op: ">", value: 0.2 }}
route:
  receiver: hook
  group_by: [alertname]
  group_wait: 0s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: hook
    webhook_configs: [{{ url: "http://{receiver}/hook", allowed_networks: ["127.0.0.1/32"] }}]
"#
    );
    let config = klaxon_host::config::Config::parse(&yaml, "bench.yml").expect("config");
    let server = klaxon_host::server::start(klaxon_host::server::ServerOptions {
        listen: "127.0.0.1:0".parse().expect("addr"),
        config,
        config_file: "bench.yml".into(),
        config_text: yaml.clone(),
        config_path: None,
        data_dir: None,
    })
    .await
    .expect("server");
    let push_url = format!("http://{}/api/v1/push", server.addr());
    let client = reqwest::Client::new();
    let push = |v: f64| {
        let client = client.clone();
        let url = push_url.clone();
        async move {
            let r = client
                .post(url)
                .json(&json!({"series":[{"metric":"ml_prediction_latency_seconds","labels":{"model_name":"m"},"value":v}]}))
                .send()
                .await
                .expect("push");
            assert!(r.status().is_success());
        }
    };
    push(0.1).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;

    let mut hist = Histogram::<u64>::new(3).expect("histogram");
    for i in 0..cycles {
        // Spread the push phase over the evaluation interval.
        tokio::time::sleep(Duration::from_millis(137 * (i as u64 % 7))).await;
        let pushed = Instant::now();
        push(0.5).await;
        let (arrived, body) = wait(&mut rx, "firing").await;
        assert_eq!(body["status"], "firing");
        hist.record(arrived.duration_since(pushed).as_micros() as u64)
            .expect("record");
        push(0.1).await;
        let (_, body) = wait(&mut rx, "resolved").await;
        assert_eq!(body["status"], "resolved");
    }
    let ms = |q: f64| hist.value_at_quantile(q) as f64 / 1000.0;
    println!(
        "notify_latency: {cycles} cycles, interval 1 s, group_wait 0: p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        ms(0.5),
        ms(0.9),
        ms(0.99),
        hist.max() as f64 / 1000.0
    );
    server.shutdown().await;
}

async fn wait(rx: &mut mpsc::UnboundedReceiver<(Instant, Value)>, what: &str) -> (Instant, Value) {
    tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .unwrap_or_else(|_| panic!("no {what} webhook within 10 s"))
        .expect("receiver alive")
}
