//! A misbehaving plugin (endless loop, 1 GiB allocation, panic, invalid
//! output, endless recursion, a million verdicts, a 100 MB string) loaded by
//! rules: each call fails cleanly with a recorded error, the other rule keeps
//! firing correctly, and /healthz answers throughout. The same plugin
//! looking for files, environment variables and arguments finds none.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_plugins_fail_alone() {
    let dir = tempfile::tempdir().expect("tempdir");
    let wasm = fixture_file(dir.path(), "misbehave");

    let (receiver, received) = start_receiver().await;
    let rule = |name: &str, mode: &str| {
        format!(
            "      - alert: {name}\n        query: x\n        window: 1m\n        detector: misbehave\n        config: {{ mode: {mode} }}\n"
        )
    };
    let yaml = format!(
        r#"
plugins:
  files: ["{wasm}"]
  overrides:
    # 16 MiB: the million verdicts' first allocation (and the 100 MB
    # string's) is over it at once, so those calls stop at the memory
    # guard on any machine rather than racing the 100 ms deadline.
    misbehave: {{ timeout: 100ms, memory_bytes: 16777216 }}
groups:
  - name: bad
    interval: 1s
    rules:
{loop_}{alloc}{panic}{invalid}{recurse}{flood}{bigstring}
  - name: good
    interval: 1s
    rules:
{snoop}      - alert: Good
        query: x
        window: 1m
        detector: threshold
        config: {{ op: ">", value: 0.5 }}
route:
  receiver: hook
  group_wait: 0s
  group_interval: 1s
receivers:
  - name: hook
    webhook_configs: [{{ url: "{receiver}/hook", allowed_networks: ["127.0.0.1/32"] }}]
"#,
        wasm = wasm.display(),
        loop_ = rule("Loop", "loop"),
        alloc = rule("Alloc", "alloc"),
        panic = rule("Panic", "panic"),
        invalid = rule("Invalid", "invalid"),
        recurse = rule("Recurse", "recurse"),
        flood = rule("Flood", "flood"),
        bigstring = rule("Bigstring", "bigstring"),
        snoop = rule("Snoop", "snoop"),
    );
    let server = start_klaxon(&yaml).await;
    let base = format!("http://{}", server.addr());
    let client = reqwest::Client::new();
    let resp = push(
        &client,
        &base,
        json!({"series": [{"metric": "x", "labels": {"job": "j"}, "value": 1.0}]}),
    )
    .await;
    assert_eq!(resp.status(), 204);

    // Health stays up while the bad rules fail, evaluation after evaluation.
    let health = {
        let client = client.clone();
        let base = base.clone();
        tokio::spawn(async move {
            let mut checks = 0;
            for _ in 0..40 {
                let r = client
                    .get(format!("{base}/healthz"))
                    .send()
                    .await
                    .expect("healthz answers");
                assert_eq!(r.status(), 200);
                checks += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            checks
        })
    };

    let errors = eventually(
        Duration::from_secs(20),
        "every bad rule to record an error",
        || async {
            let rules = get_json(&client, &format!("{base}/api/v1/rules")).await;
            let bad = rules["data"]["groups"]
                .as_array()?
                .iter()
                .find(|g| g["name"] == "bad")?
                .clone();
            let errs: Vec<(String, String)> = bad["rules"]
                .as_array()?
                .iter()
                .map(|r| {
                    (
                        r["name"].as_str().unwrap_or("").to_string(),
                        r["lastError"].as_str().unwrap_or("").to_string(),
                    )
                })
                .collect();
            errs.iter().all(|(_, e)| !e.is_empty()).then_some(errs)
        },
    )
    .await;
    let err = |name: &str| {
        errors
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, e)| e.clone())
            .unwrap_or_default()
    };
    assert!(err("Loop").contains("timed out"), "Loop: {}", err("Loop"));
    assert!(
        err("Alloc").contains("memory limit"),
        "Alloc: {}",
        err("Alloc")
    );
    assert!(err("Panic").contains("trapped"), "Panic: {}", err("Panic"));
    assert!(
        err("Invalid").contains("invalid output"),
        "Invalid: {}",
        err("Invalid")
    );
    assert!(
        err("Recurse").contains("trapped"),
        "Recurse: {}",
        err("Recurse")
    );
    // A million verdicts: refused as output, or stopped by the memory they need.
    assert!(
        err("Flood").contains("invalid output") || err("Flood").contains("memory limit"),
        "Flood: {}",
        err("Flood")
    );
    assert!(
        err("Bigstring").contains("memory limit") || err("Bigstring").contains("invalid output"),
        "Bigstring: {}",
        err("Bigstring")
    );

    // The good rule fired and was delivered.
    let got = received.wait_for(1, Duration::from_secs(15)).await;
    assert_eq!(got[0]["alerts"][0]["labels"]["alertname"], "Good");
    assert!(
        got.iter()
            .all(|n| n["alerts"][0]["labels"]["alertname"] == "Good")
    );

    // The bad rules raised nothing, and the plugin's stats count the failures.
    let alerts = get_json(&client, &format!("{base}/api/v1/alerts")).await;
    let names: Vec<Value> = alerts["data"]["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["labels"]["alertname"].clone())
        .collect();
    assert_eq!(names, vec![json!("Good")]);
    // Snoop ran cleanly and found nothing to report (it fires on any finding).
    let rules = get_json(&client, &format!("{base}/api/v1/rules")).await;
    let snoop = rules["data"]["groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_array().unwrap().iter())
        .find(|r| r["name"] == "Snoop")
        .unwrap()
        .clone();
    assert_eq!(snoop["health"], "ok", "{snoop}");
    assert_eq!(snoop["lastError"].as_str().unwrap_or(""), "", "{snoop}");
    let plugins = get_json(&client, &format!("{base}/api/v1/plugins")).await;
    let m = plugins["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "misbehave")
        .unwrap()
        .clone();
    assert!(m["stats"]["timeouts"].as_u64().unwrap() >= 1, "{m}");
    assert!(m["stats"]["traps"].as_u64().unwrap() >= 2, "{m}");

    assert_eq!(health.await.expect("health task"), 40);
    server.shutdown().await;
}

/// A fuel budget stops an endless loop at the same point on every run, long
/// before its (generous) deadline; plugins without a budget run as before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fuel_budget_stops_a_loop_deterministically() {
    let dir = tempfile::tempdir().expect("tempdir");
    let wasm = fixture_file(dir.path(), "misbehave");
    let (receiver, received) = start_receiver().await;
    let yaml = format!(
        r#"
plugins:
  files: ["{wasm}"]
  overrides:
    misbehave: {{ timeout: 30s, fuel: 50000000 }}
groups:
  - name: g
    interval: 1s
    rules:
      - alert: Loop
        query: x
        window: 1m
        detector: misbehave
        config: {{ mode: loop }}
      - alert: Good
        query: x
        window: 1m
        detector: threshold
        config: {{ op: ">", value: 0.5 }}
route:
  receiver: hook
  group_wait: 0s
  group_interval: 1s
receivers:
  - name: hook
    webhook_configs: [{{ url: "{receiver}/hook", allowed_networks: ["127.0.0.1/32"] }}]
"#,
        wasm = wasm.display(),
    );
    let server = start_klaxon(&yaml).await;
    let base = format!("http://{}", server.addr());
    let client = reqwest::Client::new();
    let resp = push(
        &client,
        &base,
        json!({"series": [{"metric": "x", "labels": {"job": "j"}, "value": 1.0}]}),
    )
    .await;
    assert_eq!(resp.status(), 204);
    let error = eventually(
        Duration::from_secs(20),
        "Loop to record an error",
        || async {
            let rules = get_json(&client, &format!("{base}/api/v1/rules")).await;
            rules["data"]["groups"][0]["rules"]
                .as_array()?
                .iter()
                .find(|r| r["name"] == "Loop")
                .and_then(|r| r["lastError"].as_str())
                .filter(|e| !e.is_empty())
                .map(str::to_string)
        },
    )
    .await;
    assert!(
        error.contains("ran out of fuel (budget 50000000 units)"),
        "{error}"
    );
    let got = received.wait_for(1, Duration::from_secs(15)).await;
    assert_eq!(got[0]["alerts"][0]["labels"]["alertname"], "Good");
    server.shutdown().await;
}
