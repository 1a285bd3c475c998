//! The Prometheus metadata API end to end: samples pushed over HTTP, then
//! `/api/v1/series`, `/api/v1/labels`, `/api/v1/label/<name>/values` and
//! `/api/v1/status/buildinfo` answered with Prometheus's exact JSON, over GET
//! and form-encoded POST, with Prometheus's `bad_data` errors.

mod common;

use common::*;
use serde_json::{Value, json};

/// No rules: only the store and the API matter here.
const CONFIG: &str = "global: { evaluation_interval: 1m }\n";

struct Fixture {
    server: klaxon_host::server::Server,
    base: String,
    client: reqwest::Client,
    /// A whole second, two minutes ago: every sample is at `t0 + k s`.
    t0: i64,
}

impl Fixture {
    async fn new() -> Fixture {
        let server = start_klaxon(CONFIG).await;
        let base = format!("http://{}", server.addr());
        let client = reqwest::Client::new();
        let t0 = (now_ms() / 1000 - 120) * 1000;
        let resp = push(
            &client,
            &base,
            json!({"series": [
                {"metric": "ml_latency", "labels": {"model_name": "fraud", "env": "prod"},
                 "samples": [[t0, 0.1], [t0 + 10_000, 0.2]]},
                {"metric": "ml_latency", "labels": {"model_name": "churn", "env": "dev"},
                 "samples": [[t0 + 30_000, 0.3]]},
                {"metric": "ml_accuracy", "labels": {"model_name": "fraud"},
                 "samples": [[t0 + 20_000, 0.9]]},
            ]}),
        )
        .await;
        assert_eq!(resp.status(), 204);
        Fixture {
            server,
            base,
            client,
            t0,
        }
    }

    /// `t0 + secs` as unix seconds with a fraction, as Grafana sends it.
    fn unix(&self, secs: f64) -> String {
        format!("{:.3}", self.t0 as f64 / 1000.0 + secs)
    }

    /// `t0 + secs` in RFC 3339.
    fn rfc3339(&self, secs: i64) -> String {
        chrono::DateTime::from_timestamp_millis(self.t0 + secs * 1000)
            .expect("valid time")
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
    }

    /// GET `path` with `params`; returns status and JSON body.
    async fn get(&self, path: &str, params: &[(&str, &str)]) -> (u16, Value) {
        let resp = self
            .client
            .get(format!("{}{path}?{}", self.base, form(params)))
            .send()
            .await
            .expect("GET");
        let status = resp.status().as_u16();
        (status, resp.json().await.expect("JSON body"))
    }

    /// POST `params` form-encoded to `path`; returns status and JSON body.
    async fn post_form(&self, path: &str, params: &[(&str, &str)]) -> (u16, Value) {
        let body = form(params);
        let resp = self
            .client
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .expect("POST");
        let status = resp.status().as_u16();
        (status, resp.json().await.expect("JSON body"))
    }
}

/// `k=v&k=v`, percent-encoded.
fn form(params: &[(&str, &str)]) -> String {
    params
        .iter()
        .map(|(k, v)| format!("{}={}", url_encode(k), url_encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn ok(data: Value) -> (u16, Value) {
    (200, json!({"status": "success", "data": data}))
}

fn bad_data(error: &str) -> (u16, Value) {
    (
        400,
        json!({"status": "error", "errorType": "bad_data", "error": error}),
    )
}

const FRAUD_LATENCY: &str = r#"{"__name__":"ml_latency","env":"prod","model_name":"fraud"}"#;
const CHURN_LATENCY: &str = r#"{"__name__":"ml_latency","env":"dev","model_name":"churn"}"#;
const FRAUD_ACCURACY: &str = r#"{"__name__":"ml_accuracy","model_name":"fraud"}"#;

fn series(list: &[&str]) -> Value {
    Value::Array(
        list.iter()
            .map(|s| serde_json::from_str(s).expect("labels JSON"))
            .collect(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn series_endpoint() {
    let f = Fixture::new().await;
    let p = "/api/v1/series";

    assert_eq!(
        f.get(p, &[("match[]", "ml_latency")]).await,
        ok(series(&[CHURN_LATENCY, FRAUD_LATENCY]))
    );
    // Several selectors: the union, each series once, in label order.
    assert_eq!(
        f.get(
            p,
            &[
                ("match[]", r#"ml_latency{env="prod"}"#),
                ("match[]", r#"{model_name="fraud"}"#),
            ]
        )
        .await,
        ok(series(&[FRAUD_ACCURACY, FRAUD_LATENCY]))
    );
    // Regex matchers, and nothing matching.
    assert_eq!(
        f.get(p, &[("match[]", r#"{__name__=~"ml_.*", env!="prod"}"#)])
            .await,
        ok(series(&[FRAUD_ACCURACY, CHURN_LATENCY]))
    );
    assert_eq!(
        f.get(p, &[("match[]", "nothing_here")]).await,
        ok(json!([]))
    );

    // Time range [start, end], both ends inclusive, RFC 3339 or unix seconds.
    let (s25, e35) = (f.rfc3339(25), f.unix(35.0));
    assert_eq!(
        f.get(
            p,
            &[
                ("match[]", r#"{model_name=~".+"}"#),
                ("start", &s25),
                ("end", &e35)
            ]
        )
        .await,
        ok(series(&[CHURN_LATENCY]))
    );
    let (s10, e20) = (f.unix(10.0), f.rfc3339(20));
    assert_eq!(
        f.get(
            p,
            &[
                ("match[]", r#"{model_name=~".+"}"#),
                ("start", &s10),
                ("end", &e20)
            ]
        )
        .await,
        ok(series(&[FRAUD_ACCURACY, FRAUD_LATENCY]))
    );
    let (s10_5, e19_5) = (f.unix(10.5), f.unix(19.5));
    assert_eq!(
        f.get(
            p,
            &[
                ("match[]", r#"{model_name=~".+"}"#),
                ("start", &s10_5),
                ("end", &e19_5)
            ]
        )
        .await,
        ok(json!([]))
    );

    // Form-encoded POST, as Grafana sends long selectors.
    assert_eq!(
        f.post_form(p, &[("match[]", "ml_accuracy"), ("start", &s10)])
            .await,
        ok(series(&[FRAUD_ACCURACY]))
    );

    // Errors, in Prometheus's words.
    assert_eq!(
        f.get(p, &[]).await,
        bad_data("no match[] parameter provided")
    );
    assert_eq!(
        f.get(p, &[("match[]", "ml_latency"), ("start", "yesterday")])
            .await,
        bad_data(
            r#"invalid time value for 'start': cannot parse "yesterday" to a valid timestamp"#
        )
    );
    assert_eq!(
        f.get(p, &[("match[]", "ml_latency"), ("end", "2024-01-01")])
            .await,
        bad_data(r#"invalid time value for 'end': cannot parse "2024-01-01" to a valid timestamp"#)
    );
    let (status, body) = f.get(p, &[("match[]", "ml_latency{")]).await;
    assert_eq!(status, 400);
    assert_eq!(body["errorType"], "bad_data");
    let msg = body["error"].as_str().unwrap_or_default();
    assert!(msg.starts_with(r#"invalid parameter "match[]": "#), "{msg}");

    f.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn labels_endpoint() {
    let f = Fixture::new().await;
    let p = "/api/v1/labels";

    assert_eq!(
        f.get(p, &[]).await,
        ok(json!(["__name__", "env", "model_name"]))
    );
    assert_eq!(
        f.get(p, &[("match[]", "ml_accuracy")]).await,
        ok(json!(["__name__", "model_name"]))
    );
    let (s15, e25) = (f.unix(15.0), f.rfc3339(25));
    assert_eq!(
        f.get(p, &[("start", &s15), ("end", &e25)]).await,
        ok(json!(["__name__", "model_name"]))
    );
    assert_eq!(
        f.get(
            p,
            &[("match[]", "ml_latency"), ("start", &s15), ("end", &e25)]
        )
        .await,
        ok(json!([]))
    );
    assert_eq!(
        f.post_form(p, &[("match[]", r#"{env="dev"}"#)]).await,
        ok(json!(["__name__", "env", "model_name"]))
    );
    assert_eq!(
        f.post_form(p, &[("limit", "2")]).await,
        (
            200,
            json!({"status": "success", "data": ["__name__", "env"],
                   "warnings": ["results truncated due to limit"]})
        )
    );
    assert_eq!(
        f.get(p, &[("limit", "many")]).await,
        bad_data(r#"invalid parameter "limit": strconv.Atoi: parsing "many": invalid syntax"#)
    );
    assert_eq!(
        f.get(p, &[("start", "soon")]).await,
        bad_data(r#"invalid time value for 'start': cannot parse "soon" to a valid timestamp"#)
    );
    let (status, body) = f.get(p, &[("match[]", "sum(")]).await;
    assert_eq!((status, &body["errorType"]), (400, &json!("bad_data")));

    f.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn label_values_endpoint() {
    let f = Fixture::new().await;
    let values = |name: &str| format!("/api/v1/label/{name}/values");

    assert_eq!(
        f.get(&values("model_name"), &[]).await,
        ok(json!(["churn", "fraud"]))
    );
    assert_eq!(
        f.get(&values("__name__"), &[]).await,
        ok(json!(["ml_accuracy", "ml_latency"]))
    );
    assert_eq!(
        f.get(&values("model_name"), &[("match[]", "ml_accuracy")])
            .await,
        ok(json!(["fraud"]))
    );
    assert_eq!(
        f.get(&values("env"), &[("match[]", r#"{model_name="fraud"}"#)])
            .await,
        ok(json!(["prod"]))
    );
    let (s25, e35) = (f.rfc3339(25), f.unix(35.0));
    assert_eq!(
        f.get(&values("__name__"), &[("start", &s25), ("end", &e35)])
            .await,
        ok(json!(["ml_latency"]))
    );
    let (s15, e25) = (f.unix(15.0), f.unix(25.0));
    assert_eq!(
        f.get(&values("env"), &[("start", &s15), ("end", &e25)])
            .await,
        ok(json!([]))
    );
    assert_eq!(f.get(&values("no_such_label"), &[]).await, ok(json!([])));
    assert_eq!(
        f.get(&values("model_name"), &[("limit", "1")]).await,
        (
            200,
            json!({"status": "success", "data": ["churn"],
                   "warnings": ["results truncated due to limit"]})
        )
    );
    assert_eq!(
        f.get(&values("a-b"), &[]).await,
        bad_data(r#"invalid label name: "a-b""#)
    );
    assert_eq!(
        f.get(&values("env"), &[("end", "later")]).await,
        bad_data(r#"invalid time value for 'end': cannot parse "later" to a valid timestamp"#)
    );

    f.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn buildinfo_is_shaped_as_prometheus() {
    let f = Fixture::new().await;
    let (status, body) = f.get("/api/v1/status/buildinfo", &[]).await;
    assert_eq!(status, 200);
    assert_eq!(body["status"], "success");
    assert_eq!(body["data"]["version"], env!("CARGO_PKG_VERSION"));
    let data = body["data"].as_object().expect("data object");
    let mut keys: Vec<&str> = data.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "branch",
            "buildDate",
            "buildUser",
            "goVersion",
            "revision",
            "version"
        ]
    );
    assert!(data.values().all(Value::is_string), "{data:?}");
    f.server.shutdown().await;
}
