//! Config reload (`POST /-/reload`) on a running Klaxon: a new routing tree
//! takes effect for new alerts; a firing rule keeps its state and is not
//! notified again; an invalid config is refused with its file, line and
//! reason while the running one stays in force; a removed rule's firing
//! alert resolves.

mod common;

use std::time::Duration;

use common::*;
use klaxon_host::config::Config;
use klaxon_host::server::{ServerOptions, start};
use serde_json::{Value, json};

fn config(hook: &str, pager: &str, with_pager_route: bool) -> String {
    let routes = if with_pager_route {
        "  routes:\n    - matchers: [severity=\"critical\"]\n      receiver: pager\n"
    } else {
        ""
    };
    format!(
        r#"groups:
  - name: ml
    interval: 200ms
    rules:
      - alert: ModelStale
        expr: vector(1)
        labels: {{ severity: warning, model_name: fraud }}
route:
  receiver: hook
  group_by: [alertname]
  group_wait: 100ms
  group_interval: 300ms
  repeat_interval: 1h
{routes}receivers:
  - name: hook
    webhook_configs: [{{ url: "{hook}/hook", allowed_networks: ["127.0.0.1/32"] }}]
  - name: pager
    webhook_configs: [{{ url: "{pager}/hook", allowed_networks: ["127.0.0.1/32"] }}]
"#
    )
}

fn named<'a>(bodies: &'a [Value], alertname: &str) -> Vec<&'a Value> {
    bodies
        .iter()
        .filter(|b| b["groupLabels"]["alertname"] == alertname)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_swaps_routing_keeps_rule_state_and_refuses_bad_configs() {
    let (hook, hook_got) = start_receiver().await;
    let (pager, pager_got) = start_receiver().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("klaxon.yml");
    let first = config(&hook, &pager, false);
    std::fs::write(&path, &first).expect("write config");
    let server = start(ServerOptions {
        listen: "127.0.0.1:0".parse().expect("addr"),
        config: Config::parse(&first, "klaxon.yml").expect("config"),
        config_file: path.display().to_string(),
        config_text: first.clone(),
        config_path: Some(path.clone()),
        data_dir: None,
    })
    .await
    .expect("klaxon starts");
    let base = format!("http://{}", server.addr());
    let client = reqwest::Client::new();

    // The rule fires and is notified once.
    hook_got.wait_for(1, Duration::from_secs(10)).await;
    let active_at = |v: Value| v["data"]["alerts"][0]["activeAt"].clone();
    let before = active_at(get_json(&client, &format!("{base}/api/v1/alerts")).await);
    assert!(before.is_string(), "{before}");

    // A critical alert goes to the root receiver: no pager route yet.
    let crit = json!([{"labels": {"alertname": "ServerDown", "severity": "critical"}}]);
    client
        .post(format!("{base}/api/v2/alerts"))
        .json(&crit)
        .send()
        .await
        .expect("POST");
    eventually(Duration::from_secs(10), "ServerDown at hook", || {
        let r = hook_got.clone();
        async move { (!named(&r.all().await, "ServerDown").is_empty()).then_some(()) }
    })
    .await;

    // Reload with a pager route.
    std::fs::write(&path, config(&hook, &pager, true)).expect("rewrite config");
    let r = client
        .post(format!("{base}/-/reload"))
        .send()
        .await
        .expect("reload");
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap_or_default());
    let status = get_json(&client, &format!("{base}/api/v2/status")).await;
    assert!(
        status["config"]["original"]
            .as_str()
            .is_some_and(|c| c.contains("receiver: pager"))
    );

    // The known critical alert is routed by the new tree: the pager hears of it.
    let paged = pager_got.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(paged[0]["groupLabels"]["alertname"], "ServerDown");
    // The rule kept its state (same activeAt) and was not notified again.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let after = active_at(get_json(&client, &format!("{base}/api/v1/alerts")).await);
    assert_eq!(before, after, "rule state carried over");
    assert_eq!(
        named(&hook_got.all().await, "ModelStale").len(),
        1,
        "no duplicate after reload"
    );

    // An invalid config is refused and the running one stays.
    std::fs::write(
        &path,
        config(&hook, &pager, true).replace("receiver: pager\n", "receiver: nobody\n"),
    )
    .expect("rewrite config");
    let r = client
        .post(format!("{base}/-/reload"))
        .send()
        .await
        .expect("reload");
    assert_eq!(r.status(), 400);
    let msg = r.text().await.expect("text");
    assert!(
        msg.contains("klaxon.yml:") && msg.contains("undefined receiver \"nobody\""),
        "{msg}"
    );
    let crit2 = json!([{"labels": {"alertname": "DiskFull", "severity": "critical"}}]);
    client
        .post(format!("{base}/api/v2/alerts"))
        .json(&crit2)
        .send()
        .await
        .expect("POST");
    eventually(Duration::from_secs(10), "DiskFull at the pager", || {
        let r = pager_got.clone();
        async move { (!named(&r.all().await, "DiskFull").is_empty()).then_some(()) }
    })
    .await;

    // The rule is removed: its firing alert resolves.
    let without_rule = config(&hook, &pager, true);
    let routes_at = without_rule.find("route:").expect("route section");
    std::fs::write(&path, &without_rule[routes_at..]).expect("rewrite config");
    let r = client
        .post(format!("{base}/-/reload"))
        .send()
        .await
        .expect("reload");
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap_or_default());
    let resolved = eventually(Duration::from_secs(10), "ModelStale resolved", || {
        let r = hook_got.clone();
        async move {
            let all = r.all().await;
            named(&all, "ModelStale")
                .into_iter()
                .find(|b| b["status"] == "resolved")
                .cloned()
        }
    })
    .await;
    assert_eq!(resolved["alerts"][0]["labels"]["model_name"], "fraud");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_without_a_config_file_is_refused() {
    let (hook, _) = start_receiver().await;
    let server = start_klaxon(&config(&hook, &hook, false)).await;
    let r = reqwest::Client::new()
        .post(format!("http://{}/-/reload", server.addr()))
        .send()
        .await
        .expect("reload");
    assert_eq!(r.status(), 400);
    assert!(r.text().await.expect("text").contains("no config file"));
    server.shutdown().await;
}
