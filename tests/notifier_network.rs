//! The notifier network sandbox (SSRF guard) end to end: webhook
//! integrations aimed at a loopback address, a cloud metadata address, a
//! name resolving to loopback, and redirects to a private address, a
//! metadata address and a host not on the allow-list, and a notifier plugin
//! calling a host its receiver did not name, are each refused with
//! the host and the reason in the delivery log, the refused targets get
//! nothing, no secret of the URLs leaks, and an allowed integration next to
//! them delivers while the host keeps serving.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::routing::any;
use common::*;
use serde_json::{Value, json};

/// A server answering every request with a 307 to `location`; counts hits.
async fn redirector(location: String) -> (String, Arc<AtomicUsize>) {
    let hits = Arc::new(AtomicUsize::new(0));
    async fn redirect(
        State((location, hits)): State<(String, Arc<AtomicUsize>)>,
    ) -> (StatusCode, HeaderMap) {
        hits.fetch_add(1, Ordering::SeqCst);
        let mut h = HeaderMap::new();
        h.insert(header::LOCATION, location.parse().expect("location"));
        (StatusCode::TEMPORARY_REDIRECT, h)
    }
    let app = Router::new()
        .fallback(any(redirect))
        .with_state((location, hits.clone()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await.expect("serve") });
    (format!("http://{addr}"), hits)
}

/// A server on `ip` counting every request it gets.
async fn target(ip: &str) -> (u16, Arc<AtomicUsize>) {
    let hits = Arc::new(AtomicUsize::new(0));
    async fn hit(State(hits): State<Arc<AtomicUsize>>) -> StatusCode {
        hits.fetch_add(1, Ordering::SeqCst);
        StatusCode::OK
    }
    let app = Router::new().fallback(any(hit)).with_state(hits.clone());
    let listener = tokio::net::TcpListener::bind((ip, 0)).await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move { axum::serve(listener, app).await.expect("serve") });
    (port, hits)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_destinations_are_recorded_and_get_nothing() {
    // What must never be reached: a loopback receiver without the opt-in,
    // one on 127.0.0.2 (loopback, outside the opted-in 127.0.0.1/32).
    let (loop_port, loop_hits) = target("127.0.0.1").await;
    let (other_port, other_hits) = target("127.0.0.2").await;
    let (to_private, to_private_hits) =
        redirector(format!("http://127.0.0.2:{other_port}/stolen")).await;
    let (to_metadata, to_metadata_hits) =
        redirector("http://169.254.169.254/latest/meta-data/iam/".into()).await;
    let (to_other_host, to_other_host_hits) =
        redirector(format!("http://localhost:{loop_port}/stolen")).await;
    let (ok_url, ok_received) = start_receiver().await;

    let secret = "T0KEN-IN-PATH";
    let receivers = [
        // name, url, extra integration keys, expected reason
        (
            "loopback",
            format!("http://127.0.0.1:{loop_port}/hook/{secret}"),
            "",
            "host `127.0.0.1` (127.0.0.1) is a loopback address",
        ),
        (
            "metadata",
            format!("http://169.254.169.254/latest/meta-data/{secret}"),
            // A broad network never opens the metadata address.
            r#", allowed_networks: ["169.254.0.0/16"]"#,
            "host `169.254.169.254` (169.254.169.254) is a cloud metadata address",
        ),
        (
            "name-to-loopback",
            format!("http://localhost:{loop_port}/hook/{secret}"),
            "",
            "host `localhost` (",
        ),
        (
            "redirect-private",
            format!("{to_private}/hook/{secret}"),
            r#", allowed_hosts: ["127.0.0.2"], allowed_networks: ["127.0.0.1/32"]"#,
            "host `127.0.0.2` (127.0.0.2) is a loopback address",
        ),
        (
            "redirect-metadata",
            format!("{to_metadata}/hook/{secret}"),
            r#", allowed_hosts: ["169.254.169.254"], allowed_networks: ["127.0.0.1/32", "169.254.0.0/16"]"#,
            "a cloud metadata address",
        ),
        (
            "redirect-host",
            format!("{to_other_host}/hook/{secret}"),
            r#", allowed_networks: ["127.0.0.1/32"]"#,
            "host `localhost` is not allowed for this receiver",
        ),
        (
            "allowed",
            format!("{ok_url}/hook"),
            r#", allowed_networks: ["127.0.0.1/32"]"#,
            "",
        ),
    ];
    // A notifier that declares one URL and calls another host (the fixture
    // `sneaky`, loaded from a file as a user's plugin would be).
    let dir = tempfile::tempdir().expect("tempdir");
    let sneaky_wasm = fixture_file(dir.path(), "sneaky");
    let sneaky_reason = "host `localhost` is not allowed for this receiver";
    let mut routes = String::new();
    let mut receiver_yaml = String::new();
    for (name, url, extra, _) in &receivers {
        routes.push_str(&format!("    - {{ receiver: {name}, continue: true }}\n"));
        receiver_yaml.push_str(&format!(
            "  - name: {name}\n    webhook_configs: [{{ url: \"{url}\"{extra} }}]\n"
        ));
    }
    routes.push_str("    - { receiver: sneaky, continue: true }\n");
    receiver_yaml.push_str(&format!(
        "  - name: sneaky\n    plugin_configs:\n      - plugin: sneaky\n        config: {{ url: \"{ok_url}/declared\", target: \"http://localhost:{loop_port}/{secret}\" }}\n        allowed_networks: [\"127.0.0.1/32\"]\n"
    ));
    let yaml = format!(
        r#"
plugins:
  files: ["{wasm}"]
notify:
  initial_backoff: 100ms
  max_backoff: 200ms
  give_up_after: 5s
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
  receiver: allowed
  group_wait: 0s
  group_interval: 1s
  routes:
{routes}
receivers:
{receiver_yaml}
"#,
        wasm = sneaky_wasm.display(),
    );
    let server = start_klaxon(&yaml).await;
    let base = format!("http://{}", server.addr());
    let client = reqwest::Client::new();
    let r = push(
        &client,
        &base,
        json!({"series": [{"metric": "x", "value": 5.0}]}),
    )
    .await;
    assert_eq!(r.status(), 204);

    ok_received.wait_for(1, Duration::from_secs(30)).await;
    let log: Vec<Value> = eventually(
        Duration::from_secs(30),
        "a final delivery record for every receiver",
        || async {
            let log = get_json(&client, &format!("{base}/api/v1/notifications")).await["data"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let done = receivers
                .iter()
                .map(|(name, ..)| *name)
                .chain(["sneaky"])
                .all(|name| {
                    log.iter().any(|r| {
                        r["receiver"] == name
                            && matches!(
                                r["outcome"].as_str(),
                                Some("delivered" | "failed" | "gave_up")
                            )
                    })
                });
            done.then_some(log)
        },
    )
    .await;

    for (name, _, _, reason) in &receivers {
        let record = log
            .iter()
            .find(|r| r["receiver"] == *name)
            .expect("a record");
        let detail = record["detail"].as_str().unwrap_or_default();
        if name == &"allowed" {
            assert_eq!(record["outcome"], "delivered", "{record}");
            continue;
        }
        // Refused destinations are permanent failures: never retried.
        assert_eq!(record["outcome"], "failed", "{name}: {record}");
        assert!(
            detail.contains("destination denied") && detail.contains(reason),
            "{name}: detail {detail:?} lacks {reason:?}"
        );
    }
    let sneaky_record = log
        .iter()
        .find(|r| r["receiver"] == "sneaky")
        .expect("a record");
    assert_eq!(sneaky_record["outcome"], "failed", "{sneaky_record}");
    assert!(
        sneaky_record["detail"]
            .as_str()
            .is_some_and(|d| d.contains(sneaky_reason)),
        "{sneaky_record}"
    );
    let all = serde_json::to_string(&log).expect("json");
    assert!(!all.contains(secret), "a URL secret leaked: {all}");

    // The refused targets got nothing; the redirectors were asked, once each.
    assert_eq!(loop_hits.load(Ordering::SeqCst), 0);
    assert_eq!(other_hits.load(Ordering::SeqCst), 0);
    for hits in [&to_private_hits, &to_metadata_hits, &to_other_host_hits] {
        assert_eq!(hits.load(Ordering::SeqCst), 1);
    }
    let health = client
        .get(format!("{base}/healthz"))
        .send()
        .await
        .expect("healthz");
    assert_eq!(health.status(), 200);
    server.shutdown().await;
}

#[test]
fn bad_allowed_networks_are_refused_at_load() {
    let yaml = "route:\n  receiver: r\nreceivers:\n  - name: r\n    webhook_configs:\n      - url: http://10.0.0.1/\n        allowed_networks: [\"10.0.0.0/33\"]\n";
    let config = klaxon_host::config::Config::parse(yaml, "t.yml").expect("parses");
    let err = config
        .validate_static("t.yml", yaml)
        .expect_err("invalid CIDR refused");
    assert!(
        err.to_string()
            .contains("allowed_networks: `10.0.0.0/33` is not a CIDR"),
        "{err}"
    );
    assert_eq!(err.line, 7, "{err}");
}
