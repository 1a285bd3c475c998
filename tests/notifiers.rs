//! The stock notifier plugins end to end: a real Klaxon fires and resolves an alert,
//! and each plugin delivers it to a local HTTP server speaking its service's
//! contract (Slack webhook, PagerDuty Events v2, Opsgenie alerts API, Teams
//! webhook). Request bodies are checked field by field; a 429 with `Retry-After` is
//! retried, a 400 with an error body is not and lands in the delivery log as failed.

mod common;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::IntoResponse;
use common::*;
use serde_json::{Value, json};
use tokio::sync::Mutex;

/// SHA-256 of the test group key `{}:{alertname="High"}`: PagerDuty's `dedup_key`
/// and Opsgenie's `alias`.
const GROUP_KEY_HASH: &str = "f3d6947c9c15e6b3a6ec260804b8d597eb27cad181cfeb7ae7dfa22cc537fc3e";

/// One request the fake service received.
#[derive(Debug, Clone)]
struct Hit {
    method: String,
    /// Path and query.
    target: String,
    authorization: Option<String>,
    content_type: Option<String>,
    body: Value,
}

/// A fake service: answers the scripted (status, Retry-After, body) in turn, then
/// `default` forever, and records every request.
#[derive(Clone)]
struct Service {
    hits: Arc<Mutex<Vec<Hit>>>,
    script: Arc<Vec<(u16, Option<&'static str>, &'static str)>>,
    default: (u16, &'static str),
}

impl Service {
    async fn start(
        script: Vec<(u16, Option<&'static str>, &'static str)>,
        default: (u16, &'static str),
    ) -> (String, Self) {
        let service = Self {
            hits: Arc::default(),
            script: Arc::new(script),
            default,
        };
        async fn handle(
            State(s): State<Service>,
            method: Method,
            uri: Uri,
            headers: HeaderMap,
            body: Bytes,
        ) -> impl IntoResponse {
            let header = |name: &str| {
                headers
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned)
            };
            let mut hits = s.hits.lock().await;
            let n = hits.len();
            hits.push(Hit {
                method: method.to_string(),
                target: uri
                    .path_and_query()
                    .map(|p| p.to_string())
                    .unwrap_or_default(),
                authorization: header("authorization"),
                content_type: header("content-type"),
                body: serde_json::from_slice(&body).unwrap_or(Value::Null),
            });
            let (status, retry_after, body) =
                s.script
                    .get(n)
                    .copied()
                    .unwrap_or((s.default.0, None, s.default.1));
            let mut headers = HeaderMap::new();
            if let Some(v) = retry_after {
                headers.insert("retry-after", v.parse().expect("header value"));
            }
            (StatusCode::from_u16(status).expect("status"), headers, body)
        }
        let app = Router::new().fallback(handle).with_state(service.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move { axum::serve(listener, app).await.expect("serve") });
        (format!("http://{addr}"), service)
    }

    /// Waits for at least `n` requests.
    async fn wait_for(&self, n: usize) -> Vec<Hit> {
        eventually(
            Duration::from_secs(20),
            &format!("{n} requests"),
            || async {
                let hits = self.hits.lock().await.clone();
                (hits.len() >= n).then_some(hits)
            },
        )
        .await
    }
}

/// A config with one rule (`High` on series `x`, labelled `model: fraud-v2`) and
/// one receiver `oncall` whose integration is `integration` (YAML).
fn config(integration: &str) -> String {
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
        config: {{ op: ">", value: 1, reduce: last }}
        labels: {{ model: fraud-v2 }}
        annotations:
          summary: latency too high
          runbook_url: https://runbooks.example/high
route:
  receiver: oncall
  group_by: [alertname]
  group_wait: 0s
  group_interval: 1s
  repeat_interval: 4h
receivers:
  - name: oncall
    {integration}
"#
    )
}

async fn push_value(base: &str, value: f64) {
    let r = push(
        &reqwest::Client::new(),
        base,
        json!({"series": [{"metric": "x", "value": value}]}),
    )
    .await;
    assert_eq!(r.status(), 204);
}

async fn delivery_log(base: &str) -> Vec<Value> {
    get_json(
        &reqwest::Client::new(),
        &format!("{base}/api/v1/notifications"),
    )
    .await["data"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// Starts Klaxon with `integration`, fires the alert, waits for `service` to get
/// one request, resolves the alert and waits for `total` requests.
async fn fire_then_resolve(integration: &str, service: &Service, total: usize) -> Vec<Hit> {
    let server = start_klaxon(&config(integration)).await;
    let base = format!("http://{}", server.addr());
    push_value(&base, 5.0).await;
    service.wait_for(1).await;
    push_value(&base, 0.0).await;
    let hits = service.wait_for(total).await;
    server.shutdown().await;
    hits
}

const ALERTS_PAGE: &str = "http://127.0.0.1:9190/#/alerts?receiver=oncall";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slack_posts_danger_then_good() {
    let (url, slack) = Service::start(vec![], (200, "ok")).await;
    let integration = format!(
        r##"slack_configs: [{{ api_url: "{url}/services/T0/B0/x", channel: "#ml", send_resolved: true, allowed_networks: ["127.0.0.1/32"] }}]"##
    );
    let hits = fire_then_resolve(&integration, &slack, 2).await;
    assert_eq!(hits.len(), 2);
    assert_eq!(hits[0].method, "POST");
    assert_eq!(hits[0].target, "/services/T0/B0/x");
    assert_eq!(hits[0].content_type.as_deref(), Some("application/json"));
    assert_eq!(
        hits[0].body,
        json!({
            "channel": "#ml",
            "username": "Alertmanager",
            "attachments": [{
                "title": "[FIRING:1] High (fraud-v2)",
                "title_link": ALERTS_PAGE,
                "text": "",
                "fallback": format!("[FIRING:1] High (fraud-v2) | {ALERTS_PAGE}"),
                "callback_id": "",
                "footer": "",
                "color": "danger",
                "mrkdwn_in": ["fallback", "pretext", "text"]
            }]
        })
    );
    let resolved = &hits[1].body["attachments"][0];
    assert_eq!(resolved["color"], "good");
    assert_eq!(resolved["title"], "[RESOLVED] High (fraud-v2)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn template_files_define_what_notifiers_render() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("ml.tmpl"),
        r#"{{ define "ml.title" }}{{ .CommonLabels.alertname }} on {{ .CommonLabels.model }}: {{ .CommonAnnotations.summary }}{{ end }}
{{ define "slack.default.text" }}runbook: {{ (index .Alerts 0).Annotations.runbook_url }}{{ end }}"#,
    )
    .expect("write template");
    let (url, slack) = Service::start(vec![], (200, "ok")).await;
    let integration = format!(
        r##"slack_configs: [{{ api_url: "{url}/services/T0/B0/x", title: '{{{{ template "ml.title" . }}}}', allowed_networks: ["127.0.0.1/32"] }}]"##
    );
    let yaml = format!(
        "templates: [\"{}/*.tmpl\"]\n{}",
        dir.path().display(),
        config(&integration)
    );
    let server = start_klaxon(&yaml).await;
    let base = format!("http://{}", server.addr());
    push_value(&base, 5.0).await;
    let hits = slack.wait_for(1).await;
    let attachment = &hits[0].body["attachments"][0];
    assert_eq!(attachment["title"], "High on fraud-v2: latency too high");
    assert_eq!(
        attachment["text"], "runbook: https://runbooks.example/high",
        "a file's define replaces Alertmanager's default of the same name"
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pagerduty_triggers_then_resolves_with_the_same_dedup_key() {
    let (url, pd) = Service::start(vec![], (202, r#"{"status":"success"}"#)).await;
    let integration = format!(
        r#"pagerduty_configs: [{{ routing_key: R0UT1NG, url: "{url}/v2/enqueue", allowed_networks: ["127.0.0.1/32"] }}]"#
    );
    let hits = fire_then_resolve(&integration, &pd, 2).await;
    assert_eq!(hits[0].target, "/v2/enqueue");
    let trigger = &hits[0].body;
    assert_eq!(trigger["routing_key"], "R0UT1NG");
    assert_eq!(trigger["dedup_key"], GROUP_KEY_HASH);
    assert_eq!(trigger["event_action"], "trigger");
    assert_eq!(trigger["client"], "Alertmanager");
    assert_eq!(trigger["client_url"], ALERTS_PAGE);
    assert_eq!(
        trigger["links"],
        json!([{"href": "https://runbooks.example/high", "text": "Runbook"}])
    );
    let payload = &trigger["payload"];
    assert_eq!(payload["summary"], "[FIRING:1] High (fraud-v2)");
    assert_eq!(payload["source"], "Alertmanager");
    assert_eq!(payload["severity"], "error");
    let details = &payload["custom_details"];
    assert_eq!(details["num_firing"], "1");
    assert_eq!(details["num_resolved"], "0");
    assert_eq!(details["resolved"], "");
    let firing = details["firing"].as_str().expect("firing details");
    assert!(
        firing.starts_with("Labels:\n - alertname = High\n - model = fraud-v2\nAnnotations:\n"),
        "{firing}"
    );

    let resolve = &hits[1].body;
    assert_eq!(resolve["event_action"], "resolve");
    assert_eq!(resolve["dedup_key"], trigger["dedup_key"]);
    assert_eq!(resolve["payload"]["summary"], "[RESOLVED] High (fraud-v2)");
    assert_eq!(resolve["payload"]["custom_details"]["num_resolved"], "1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opsgenie_creates_then_closes_by_alias() {
    let (url, og) =
        Service::start(vec![], (202, r#"{"result":"Request will be processed"}"#)).await;
    let integration = format!(
        r#"opsgenie_configs: [{{ api_key: og-key, api_url: "{url}/", priority: P2, tags: "ml,{{{{ .CommonLabels.model }}}}", allowed_networks: ["127.0.0.1/32"] }}]"#
    );
    let hits = fire_then_resolve(&integration, &og, 2).await;
    let create = &hits[0];
    assert_eq!(create.method, "POST");
    assert_eq!(create.target, "/v2/alerts");
    assert_eq!(create.authorization.as_deref(), Some("GenieKey og-key"));
    assert_eq!(create.body["alias"], GROUP_KEY_HASH);
    assert_eq!(create.body["message"], "[FIRING:1] High (fraud-v2)");
    assert_eq!(
        create.body["details"],
        json!({"alertname": "High", "model": "fraud-v2"})
    );
    assert_eq!(create.body["source"], ALERTS_PAGE);
    assert_eq!(create.body["priority"], "P2");
    assert_eq!(create.body["tags"], json!(["ml", "fraud-v2"]));
    let description = create.body["description"].as_str().expect("description");
    // The common annotations' values (the rule's, and those the detector adds)
    // in name order, then the alert list.
    let (values, alerts) = description
        .split_once("\nAlerts Firing:\n")
        .expect("an alert list");
    assert!(
        values.contains("https://runbooks.example/high latency too high"),
        "{description}"
    );
    assert!(
        alerts.starts_with("Labels:\n - alertname = High\n - model = fraud-v2\nAnnotations:\n"),
        "{description}"
    );

    let close = &hits[1];
    assert_eq!(close.method, "POST");
    assert_eq!(
        close.target,
        format!("/v2/alerts/{GROUP_KEY_HASH}/close?identifierType=alias")
    );
    assert_eq!(close.authorization.as_deref(), Some("GenieKey og-key"));
    assert_eq!(close.body, json!({"source": ALERTS_PAGE}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn msteams_posts_message_cards_coloured_by_status() {
    let (url, teams) = Service::start(vec![], (200, "1")).await;
    let integration = format!(
        r#"msteams_configs: [{{ webhook_url: "{url}/webhookb2/x", allowed_networks: ["127.0.0.1/32"] }}]"#
    );
    let hits = fire_then_resolve(&integration, &teams, 2).await;
    assert_eq!(hits[0].target, "/webhookb2/x");
    let card = &hits[0].body;
    assert_eq!(card["@context"], "http://schema.org/extensions");
    assert_eq!(card["type"], "MessageCard");
    assert_eq!(card["title"], "[FIRING:1] High (fraud-v2)");
    assert_eq!(card["summary"], "[FIRING:1] High (fraud-v2)");
    assert_eq!(card["themeColor"], "8C1A1A");
    let text = card["text"].as_str().expect("text");
    assert!(text.contains("# Alerts Firing:"), "{text}");
    assert!(text.contains("  - model = fraud-v2\n"), "{text}");
    assert_eq!(
        card.as_object().map(|o| o.len()),
        Some(6),
        "no extra fields"
    );

    let resolved = &hits[1].body;
    assert_eq!(resolved["themeColor"], "2DC72D");
    assert_eq!(resolved["title"], "[RESOLVED] High (fraud-v2)");
    assert!(
        resolved["text"]
            .as_str()
            .is_some_and(|t| t.contains("# Alerts Resolved:"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limited_delivery_is_retried_after_retry_after() {
    let (url, slack) = Service::start(vec![(429, Some("1"), "rate_limited")], (200, "ok")).await;
    // The text also shows Go's time layouts on the alert's start.
    let server = start_klaxon(&config(&format!(
        r#"slack_configs: [{{ api_url: "{url}/hook", text: '{{{{ range .Alerts }}}}{{{{ .Labels.model }}}} since {{{{ .StartsAt.Format "2006-01-02 15:04" }}}}{{{{ end }}}}', allowed_networks: ["127.0.0.1/32"] }}]"#
    )))
    .await;
    let base = format!("http://{}", server.addr());
    push_value(&base, 5.0).await;
    let log = eventually(
        Duration::from_secs(20),
        "a delivered notification",
        || async {
            let log = delivery_log(&base).await;
            log.iter()
                .any(|e| e["outcome"] == "delivered")
                .then_some(log)
        },
    )
    .await;
    let outcomes: Vec<_> = log
        .iter()
        .map(|e| e["outcome"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(outcomes, ["retrying", "delivered"]);
    assert_eq!(log[0]["integration"], "slack");
    assert_eq!(log[0]["detail"], "HTTP 429: rate_limited");
    assert_eq!(log[1]["attempt"], 2);
    let hits = slack.wait_for(2).await;
    assert_eq!(hits.len(), 2);
    assert_eq!(hits[0].body, hits[1].body, "the same message is sent again");
    let text = hits[0].body["attachments"][0]["text"]
        .as_str()
        .expect("text");
    let since = text.strip_prefix("fraud-v2 since ").expect("the model");
    let shape: String = since
        .chars()
        .map(|c| if c.is_ascii_digit() { '9' } else { c })
        .collect();
    assert_eq!(shape, "9999-99-99 99:99", "{text}");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_request_is_not_retried_and_logged_as_failed() {
    const INVALID: &str = r#"{"status":"invalid event","message":"Event object is invalid"}"#;
    let (url, pd) = Service::start(vec![], (400, INVALID)).await;
    let server = start_klaxon(&config(&format!(
        r#"pagerduty_configs: [{{ routing_key: R0UT1NG, url: "{url}/v2/enqueue", allowed_networks: ["127.0.0.1/32"] }}]"#
    )))
    .await;
    let base = format!("http://{}", server.addr());
    push_value(&base, 5.0).await;
    let log = eventually(Duration::from_secs(20), "a logged delivery", || async {
        let log = delivery_log(&base).await;
        (!log.is_empty()).then_some(log)
    })
    .await;
    assert_eq!(log[0]["outcome"], "failed", "{:?}", log[0]);
    assert_eq!(log[0]["integration"], "pagerduty");
    assert_eq!(log[0]["detail"], format!("HTTP 400: {INVALID}"));
    // Every request the service got is a first attempt logged as failed: a later
    // group interval may notify again, but nothing is retried.
    let log = delivery_log(&base).await;
    let hits = pd.hits.lock().await.len();
    assert!(hits >= 1);
    for entry in &log {
        assert_eq!(entry["outcome"], "failed", "{entry}");
        assert_eq!(entry["attempt"], 1, "{entry}");
    }
    assert!(
        hits <= log.len() + 1,
        "{hits} requests for {} log entries",
        log.len()
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_notifier_configs_are_refused_at_start_naming_the_field() {
    use klaxon_host::config::Config;
    use klaxon_host::server::{ServerOptions, start};
    for (integration, expected) in [
        (
            r#"slack_configs: [{ api_url: "https://hooks.slack.com/services/T/B/secret", actions: [{ type: button }] }]"#,
            "actions: Slack message actions are not supported",
        ),
        (
            r#"pagerduty_configs: [{ routing_key_file: /etc/pagerduty/key }]"#,
            "unknown field `routing_key_file`",
        ),
        (
            r#"opsgenie_configs: [{ api_key: secret, message: "{{ .CommonLabels.x | humanize }}" }]"#,
            "message: function \"humanize\" not defined",
        ),
        (
            r#"msteams_configs: [{ webhook_url: "ftp://teams.example/secret" }]"#,
            "webhook_url: must start with http:// or https://",
        ),
    ] {
        let yaml = config(integration);
        let config = Config::parse(&yaml, "test.yml").expect("parses");
        let started = start(ServerOptions {
            listen: "127.0.0.1:0".parse().expect("addr"),
            config,
            config_file: "test.yml".into(),
            config_text: yaml.clone(),
            config_path: None,
            data_dir: None,
        })
        .await;
        let Err(e) = started else {
            panic!("{integration}: started");
        };
        let e = format!("{e:#}");
        assert!(e.contains("receiver `oncall`"), "{e}");
        assert!(e.contains(expected), "{integration}: {e}");
        assert!(!e.contains("secret"), "a secret was echoed: {e}");
    }
}
