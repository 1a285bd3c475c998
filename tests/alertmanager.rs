//! Alertmanager's API v2 end to end: alerts posted to a running Klaxon are
//! routed to a real local webhook receiver, muted by inhibit rules and by
//! silences (one created before its window, one expiring mid-group), and
//! listed with Alertmanager's JSON shapes.

mod common;

use std::time::Duration;

use chrono::{SecondsFormat, Utc};
use common::*;
use serde_json::{Value, json};

fn config(receiver: &str) -> String {
    format!(
        r#"
route:
  receiver: hook
  group_by: [alertname, model_name]
  group_wait: 200ms
  group_interval: 500ms
  repeat_interval: 1h
receivers:
  - name: hook
    webhook_configs: [{{ url: "{receiver}/hook", allowed_networks: ["127.0.0.1/32"] }}]
inhibit_rules:
  - source_matchers: [alertname="ModelServerDown"]
    target_matchers: [team="ml"]
    equal: [model_name]
"#
    )
}

fn ts(t: chrono::DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

async fn post_alerts(client: &reqwest::Client, base: &str, alerts: Value) -> reqwest::Response {
    client
        .post(format!("{base}/api/v2/alerts"))
        .json(&alerts)
        .send()
        .await
        .expect("POST /api/v2/alerts")
}

/// The notifications that carry an alert with this name and model.
fn notified(bodies: &[Value], alertname: &str, model: &str) -> Vec<Value> {
    bodies
        .iter()
        .filter(|b| {
            b["alerts"].as_array().is_some_and(|alerts| {
                alerts.iter().any(|a| {
                    a["labels"]["alertname"] == alertname && a["labels"]["model_name"] == model
                })
            })
        })
        .cloned()
        .collect()
}

async fn alert_status(client: &reqwest::Client, base: &str, alertname: &str, model: &str) -> Value {
    let all = get_json(
        client,
        &format!("{base}/api/v2/alerts?filter=alertname%3D%22{alertname}%22"),
    )
    .await;
    all.as_array()
        .expect("alert list")
        .iter()
        .find(|a| a["labels"]["model_name"] == model)
        .unwrap_or_else(|| panic!("{alertname}/{model} not listed: {all:#}"))
        .clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inhibition_mutes_targets_while_the_source_fires() {
    let (receiver, received) = start_receiver().await;
    let server = start_klaxon(&config(&receiver)).await;
    let base = format!("http://{}", server.addr());
    let client = reqwest::Client::new();

    let resp = post_alerts(
        &client,
        &base,
        json!([
            {"labels": {"alertname": "ModelServerDown", "model_name": "fraud", "severity": "critical"}},
            {"labels": {"alertname": "AccuracyLow", "model_name": "fraud", "team": "ml"},
             "annotations": {"summary": "accuracy 0.61 below 0.8"}},
            {"labels": {"alertname": "AccuracyLow", "model_name": "churn", "team": "ml"}},
        ]),
    )
    .await;
    assert_eq!(resp.status(), 200);

    // The source and the uninhibited target are notified.
    eventually(
        Duration::from_secs(10),
        "the two uninhibited groups",
        || {
            let r = received.clone();
            async move {
                let all = r.all().await;
                (!notified(&all, "ModelServerDown", "fraud").is_empty()
                    && !notified(&all, "AccuracyLow", "churn").is_empty())
                .then_some(())
            }
        },
    )
    .await;
    // Several group intervals later the inhibited one still has not been.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(notified(&received.all().await, "AccuracyLow", "fraud").is_empty());

    let down = alert_status(&client, &base, "ModelServerDown", "fraud").await;
    let muted = alert_status(&client, &base, "AccuracyLow", "fraud").await;
    assert_eq!(muted["status"]["state"], "suppressed");
    assert_eq!(muted["status"]["inhibitedBy"], json!([down["fingerprint"]]));
    assert_eq!(muted["status"]["silencedBy"], json!([]));
    assert_eq!(muted["receivers"], json!([{"name": "hook"}]));
    assert_eq!(muted["annotations"]["summary"], "accuracy 0.61 below 0.8");
    assert_eq!(down["status"]["state"], "active");
    assert_eq!(
        alert_status(&client, &base, "AccuracyLow", "churn").await["status"]["state"],
        "active"
    );
    // `inhibited=false` hides it.
    let shown = get_json(&client, &format!("{base}/api/v2/alerts?inhibited=false")).await;
    assert_eq!(shown.as_array().map(Vec::len), Some(2), "{shown:#}");

    // The source resolves: the target's group is notified at its next flush.
    let now = Utc::now();
    let resp = post_alerts(
        &client,
        &base,
        json!([{"labels": {"alertname": "ModelServerDown", "model_name": "fraud", "severity": "critical"},
                "startsAt": ts(now - chrono::Duration::minutes(1)), "endsAt": ts(now)}]),
    )
    .await;
    assert_eq!(resp.status(), 200);
    let bodies = eventually(
        Duration::from_secs(10),
        "the no longer inhibited target",
        || {
            let r = received.clone();
            async move {
                let got = notified(&r.all().await, "AccuracyLow", "fraud");
                (!got.is_empty()).then_some(got)
            }
        },
    )
    .await;
    assert_eq!(bodies[0]["status"], "firing");
    assert_eq!(
        bodies[0]["alerts"][0]["annotations"]["summary"],
        "accuracy 0.61 below 0.8"
    );
    // The resolved source is gone from the list of active alerts.
    let listed = get_json(&client, &format!("{base}/api/v2/alerts")).await;
    assert!(
        listed
            .as_array()
            .expect("list")
            .iter()
            .all(|a| a["labels"]["alertname"] != "ModelServerDown"),
        "{listed:#}"
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silences_created_ahead_and_expiring_mid_group() {
    let (receiver, received) = start_receiver().await;
    let server = start_klaxon(&config(&receiver)).await;
    let base = format!("http://{}", server.addr());
    let client = reqwest::Client::new();

    // A maintenance window that starts in 3 s and lasts 3 s, for model fraud.
    let now = Utc::now();
    let window_start = now + chrono::Duration::seconds(3);
    let window_end = now + chrono::Duration::seconds(6);
    let created: Value = client
        .post(format!("{base}/api/v2/silences"))
        .json(&json!({
            "matchers": [{"name": "model_name", "value": "fraud", "isRegex": false, "isEqual": true}],
            "startsAt": ts(window_start),
            "endsAt": ts(window_end),
            "createdBy": "ops@example.com",
            "comment": "model server maintenance",
        }))
        .send()
        .await
        .expect("POST silence")
        .json()
        .await
        .expect("silence id");
    let id = created["silenceID"]
        .as_str()
        .expect("silenceID")
        .to_string();
    let silence = get_json(&client, &format!("{base}/api/v2/silence/{id}")).await;
    assert_eq!(silence["status"]["state"], "pending");
    assert_eq!(silence["createdBy"], "ops@example.com");
    assert_eq!(
        silence["matchers"][0],
        json!({"name": "model_name", "value": "fraud", "isRegex": false, "isEqual": true})
    );

    // Before the window: an alert for fraud is notified as usual.
    post_alerts(
        &client,
        &base,
        json!([{"labels": {"alertname": "LatencyHigh", "model_name": "fraud"}}]),
    )
    .await;
    received.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(
        notified(&received.all().await, "LatencyHigh", "fraud").len(),
        1
    );

    // Inside the window: a new alert for fraud is muted.
    eventually(
        Duration::from_secs(10),
        "the silence to become active",
        || {
            let (c, u) = (client.clone(), format!("{base}/api/v2/silence/{id}"));
            async move { (get_json(&c, &u).await["status"]["state"] == "active").then_some(()) }
        },
    )
    .await;
    post_alerts(
        &client,
        &base,
        json!([{"labels": {"alertname": "DriftHigh", "model_name": "fraud"}}]),
    )
    .await;
    post_alerts(
        &client,
        &base,
        json!([{"labels": {"alertname": "DriftHigh", "model_name": "churn"}}]),
    )
    .await;
    eventually(Duration::from_secs(10), "the unsilenced model's alert", || {
        let r = received.clone();
        async move { (!notified(&r.all().await, "DriftHigh", "churn").is_empty()).then_some(()) }
    })
    .await;
    let muted = alert_status(&client, &base, "DriftHigh", "fraud").await;
    assert_eq!(muted["status"]["state"], "suppressed");
    assert_eq!(muted["status"]["silencedBy"], json!([id]));
    let listed = get_json(&client, &format!("{base}/api/v2/alerts?silenced=false")).await;
    assert!(
        listed
            .as_array()
            .expect("list")
            .iter()
            .all(|a| a["labels"]["model_name"] != "fraud"),
        "{listed:#}"
    );
    assert!(
        notified(&received.all().await, "DriftHigh", "fraud").is_empty(),
        "silenced alert notified"
    );

    // The silence expires mid-group: the group's next flush sends it.
    let bodies = eventually(
        Duration::from_secs(15),
        "the alert after the silence ended",
        || {
            let r = received.clone();
            async move {
                let got = notified(&r.all().await, "DriftHigh", "fraud");
                (!got.is_empty()).then_some(got)
            }
        },
    )
    .await;
    assert!(
        Utc::now() >= window_end,
        "notified before the silence ended"
    );
    assert_eq!(bodies.len(), 1);
    assert_eq!(
        bodies[0]["groupLabels"],
        json!({"alertname": "DriftHigh", "model_name": "fraud"})
    );
    let silence = get_json(&client, &format!("{base}/api/v2/silence/{id}")).await;
    assert_eq!(
        silence["status"]["state"], "expired",
        "kept after it expired"
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silence_lifecycle_and_validation() {
    let (receiver, _received) = start_receiver().await;
    let server = start_klaxon(&config(&receiver)).await;
    let base = format!("http://{}", server.addr());
    let client = reqwest::Client::new();
    let now = Utc::now();
    let body = |model: &str| {
        json!({
            "matchers": [{"name": "model_name", "value": model, "isRegex": false}],
            "startsAt": ts(now),
            "endsAt": ts(now + chrono::Duration::hours(1)),
            "createdBy": "ops",
            "comment": "x",
        })
    };
    let mut ids = Vec::new();
    for model in ["fraud", "churn"] {
        let r: Value = client
            .post(format!("{base}/api/v2/silences"))
            .json(&body(model))
            .send()
            .await
            .expect("POST")
            .json()
            .await
            .expect("JSON");
        ids.push(r["silenceID"].as_str().expect("id").to_string());
    }
    let filtered = get_json(
        &client,
        &format!("{base}/api/v2/silences?filter=model_name%3D%22churn%22"),
    )
    .await;
    assert_eq!(filtered.as_array().map(Vec::len), Some(1));
    assert_eq!(filtered[0]["id"], ids[1]);

    // Extending an active silence keeps its id.
    let mut extended = body("fraud");
    extended["id"] = json!(ids[0]);
    extended["startsAt"] =
        get_json(&client, &format!("{base}/api/v2/silence/{}", ids[0])).await["startsAt"].clone();
    extended["endsAt"] = json!(ts(now + chrono::Duration::hours(2)));
    let r: Value = client
        .post(format!("{base}/api/v2/silences"))
        .json(&extended)
        .send()
        .await
        .expect("POST")
        .json()
        .await
        .expect("JSON");
    assert_eq!(r["silenceID"], ids[0]);

    // Expire, then expiring again is refused; unknown ids are 404.
    let r = client
        .delete(format!("{base}/api/v2/silence/{}", ids[0]))
        .send()
        .await
        .expect("DELETE");
    assert_eq!(r.status(), 200);
    let got = get_json(&client, &format!("{base}/api/v2/silence/{}", ids[0])).await;
    assert_eq!(got["status"]["state"], "expired");
    let r = client
        .delete(format!("{base}/api/v2/silence/{}", ids[0]))
        .send()
        .await
        .expect("DELETE");
    assert_eq!(r.status(), 400);
    let r = client
        .get(format!("{base}/api/v2/silence/nope"))
        .send()
        .await
        .expect("GET");
    assert_eq!(r.status(), 404);
    let all = get_json(&client, &format!("{base}/api/v2/silences")).await;
    let states: Vec<&str> = all
        .as_array()
        .expect("list")
        .iter()
        .map(|s| s["status"]["state"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(states, ["active", "expired"], "active first");

    // Bad silences and alerts: 400 with the reason and the field.
    let mut bad = body("fraud");
    bad["matchers"] = json!([]);
    let r = client
        .post(format!("{base}/api/v2/silences"))
        .json(&bad)
        .send()
        .await
        .expect("POST");
    assert_eq!(r.status(), 400);
    assert_eq!(
        r.json::<Value>().await.expect("JSON"),
        json!("at least one matcher required")
    );
    let mut bad = body("fraud");
    bad["endsAt"] = json!(ts(now - chrono::Duration::hours(2)));
    let r = client
        .post(format!("{base}/api/v2/silences"))
        .json(&bad)
        .send()
        .await
        .expect("POST");
    assert_eq!(r.status(), 400);
    let r = client
        .post(format!("{base}/api/v2/silences"))
        .json(&json!({"matchers": 3}))
        .send()
        .await
        .expect("POST");
    assert_eq!(r.status(), 400);
    let msg = r.json::<Value>().await.expect("JSON");
    assert!(
        msg.as_str().is_some_and(|m| m.contains("matchers")),
        "{msg}"
    );

    let r = post_alerts(
        &client,
        &base,
        json!([{"labels": {"alertname": "Good", "model_name": "a"}}, {"labels": {}}, {"labels": {"bad-name": "x"}}]),
    )
    .await;
    assert_eq!(r.status(), 400);
    let msg = r.json::<Value>().await.expect("JSON");
    let msg = msg.as_str().expect("a string");
    assert!(
        msg.contains("alerts[1]: labels: at least one label pair required"),
        "{msg}"
    );
    assert!(
        msg.contains("alerts[2]: labels: invalid name \"bad-name\""),
        "{msg}"
    );
    // The valid alert of that request was kept.
    let listed = get_json(&client, &format!("{base}/api/v2/alerts")).await;
    assert_eq!(listed.as_array().map(Vec::len), Some(1), "{listed:#}");
    assert_eq!(listed[0]["labels"]["alertname"], "Good");

    let receivers = get_json(&client, &format!("{base}/api/v2/receivers")).await;
    assert_eq!(receivers, json!([{"name": "hook"}]));
    let status = get_json(&client, &format!("{base}/api/v2/status")).await;
    assert_eq!(status["cluster"]["status"], "disabled");
    let original = status["config"]["original"].as_str().expect("config text");
    assert!(original.contains("inhibit_rules"), "{original}");
    assert!(
        !original.contains("/hook") && original.contains("<secret>"),
        "receiver URLs are secrets: {original}"
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn groups_endpoint_lists_aggregation_groups() {
    let (receiver, received) = start_receiver().await;
    let server = start_klaxon(&config(&receiver)).await;
    let base = format!("http://{}", server.addr());
    let client = reqwest::Client::new();
    post_alerts(
        &client,
        &base,
        json!([
            {"labels": {"alertname": "A", "model_name": "fraud", "version": "v1"}},
            {"labels": {"alertname": "A", "model_name": "fraud", "version": "v2"}},
            {"labels": {"alertname": "A", "model_name": "churn"}},
        ]),
    )
    .await;
    received.wait_for(2, Duration::from_secs(10)).await;
    let groups = get_json(&client, &format!("{base}/api/v2/alerts/groups")).await;
    let groups = groups.as_array().expect("groups");
    assert_eq!(groups.len(), 2, "{groups:#?}");
    assert_eq!(
        groups[0]["labels"],
        json!({"alertname": "A", "model_name": "churn"})
    );
    assert_eq!(groups[0]["receiver"], json!({"name": "hook"}));
    assert_eq!(groups[1]["alerts"].as_array().map(Vec::len), Some(2));
    let filtered = get_json(
        &client,
        &format!("{base}/api/v2/alerts/groups?filter=version%3D%22v2%22"),
    )
    .await;
    assert_eq!(filtered.as_array().map(Vec::len), Some(1));
    assert_eq!(filtered[0]["alerts"][0]["labels"]["version"], "v2");
    server.shutdown().await;
}
