//! A misbehaving notifier (the fixture `sneaky` in its `loop`, `alloc` and
//! `panic` modes) fails only its own deliveries: the loop is interrupted at
//! the call's deadline (a timeout, retried until `give_up_after`), the 1 GiB
//! allocation is refused at the memory limit, the panic traps (both
//! permanent failures), while a webhook integration notified of the same
//! alerts delivers every notification and the host keeps serving.
//! Notifier calls run asynchronously on the host's runtime, so this also
//! checks that a guest spinning on a runtime worker neither starves the
//! other deliveries nor escapes its deadline.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_notifiers_fail_only_their_own_deliveries() {
    let dir = tempfile::tempdir().expect("tempdir");
    let wasm = fixture_file(dir.path(), "sneaky");
    let (ok_url, ok_received) = start_receiver().await;

    let modes = ["loop", "alloc", "panic"];
    let mut routes = String::new();
    let mut receivers = String::new();
    for mode in modes {
        routes.push_str(&format!("    - {{ receiver: {mode}, continue: true }}\n"));
        receivers.push_str(&format!(
            "  - name: {mode}\n    plugin_configs:\n      - plugin: sneaky\n        config: {{ url: \"{ok_url}/unused\", target: \"{ok_url}/unused\", mode: {mode} }}\n        allowed_networks: [\"127.0.0.1/32\"]\n"
        ));
    }
    let yaml = format!(
        r#"
plugins:
  files: ["{wasm}"]
  overrides:
    sneaky: {{ timeout: 100ms, memory_bytes: 67108864 }}
notify:
  http_timeout: 100ms
  initial_backoff: 100ms
  max_backoff: 200ms
  give_up_after: 2s
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
  receiver: hook
  group_by: [alertname, model_name]
  group_wait: 0s
  group_interval: 1s
  routes:
{routes}    - {{ receiver: hook }}
receivers:
  - name: hook
    webhook_configs: [{{ url: "{ok_url}/hook", allowed_networks: ["127.0.0.1/32"] }}]
{receivers}"#,
        wasm = wasm.display(),
    );
    let server = start_klaxon(&yaml).await;
    let base = format!("http://{}", server.addr());
    let client = reqwest::Client::new();
    // Two groups: each bad integration gets two notifications to ruin.
    let series =
        |model: &str| json!({"metric": "x", "labels": {"model_name": model}, "value": 5.0});
    let r = push(
        &client,
        &base,
        json!({"series": [series("a"), series("b")]}),
    )
    .await;
    assert_eq!(r.status(), 204);

    let got = ok_received.wait_for(2, Duration::from_secs(30)).await;
    let mut models: Vec<&str> = got
        .iter()
        .map(|b| b["commonLabels"]["model_name"].as_str().unwrap_or_default())
        .collect();
    models.sort_unstable();
    assert_eq!(models, ["a", "b"], "{got:#?}");

    // Every bad integration ends both its deliveries (and any the route
    // retries at a later flush), each the way its misbehaviour calls for.
    let log: Vec<Value> = eventually(
        Duration::from_secs(30),
        "two final delivery records per bad receiver",
        || async {
            let log = get_json(&client, &format!("{base}/api/v1/notifications")).await["data"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let done = modes.iter().all(|mode| {
                log.iter()
                    .filter(|r| {
                        r["receiver"] == *mode
                            && matches!(
                                r["outcome"].as_str(),
                                Some("delivered" | "failed" | "gave_up")
                            )
                    })
                    .count()
                    >= 2
            });
            done.then_some(log)
        },
    )
    .await;
    let finals = |mode: &str| -> Vec<&Value> {
        log.iter()
            .filter(|r| r["receiver"] == mode && r["outcome"] != "retrying")
            .collect()
    };
    for record in finals("loop") {
        assert_eq!(record["outcome"], "gave_up", "{record}");
        let detail = record["detail"].as_str().unwrap_or_default();
        assert!(detail.contains("timed out"), "{record}");
        assert!(
            record["attempt"].as_u64().is_some_and(|a| a >= 2),
            "{record}"
        );
    }
    for record in finals("alloc") {
        assert_eq!(record["outcome"], "failed", "{record}");
        let detail = record["detail"].as_str().unwrap_or_default();
        assert!(detail.contains("memory limit"), "{record}");
    }
    for record in finals("panic") {
        assert_eq!(record["outcome"], "failed", "{record}");
        let detail = record["detail"].as_str().unwrap_or_default();
        assert!(detail.contains("trapped"), "{record}");
    }
    // The good integration delivered both (its 100 ms HTTP timeout may
    // cost a retry on a loaded machine, never a failure).
    let hook: Vec<&Value> = finals("hook");
    assert_eq!(hook.len(), 2, "{hook:#?}");
    assert!(
        hook.iter().all(|r| r["outcome"] == "delivered"),
        "{hook:#?}"
    );

    // The plugin's counters saw the failures; the host still serves.
    let plugins = get_json(&client, &format!("{base}/api/v1/plugins")).await;
    let stats = plugins["data"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| p["name"] == "sneaky")
        .map(|p| p["stats"].clone())
        .expect("sneaky listed");
    assert!(
        stats["timeouts"].as_u64().is_some_and(|n| n >= 4),
        "{stats}"
    );
    assert!(stats["traps"].as_u64().is_some_and(|n| n >= 4), "{stats}");
    let health = client
        .get(format!("{base}/healthz"))
        .send()
        .await
        .expect("healthz");
    assert_eq!(health.status(), 200);
    server.shutdown().await;
}
