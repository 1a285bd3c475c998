//! API security end to end: with tokens configured, every route the API
//! registers (read from the router's source, so a new route is caught)
//! answers each caller — no token, and a token of each scope — as the scope
//! table says; per-token rate and body limits; HTTPS with a self-signed
//! certificate; a real Prometheus remote-writing and sending alerts with a
//! `push` token.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::*;
use klaxon_host::api::auth::{Access, hash_token, route_access};
use klaxon_host::config::Scope;
use reqwest::{Method, StatusCode};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// `(caller, token, scopes)`; the caller without a token is `None`.
const TOKENS: &[(&str, &str, &str)] = &[
    ("pusher", "tok-push-1", "[push]"),
    ("reader", "tok-read-1", "[read]"),
    ("writer", "tok-write-1", "[write]"),
    ("admin", "tok-admin-1", "[admin]"),
    ("limited", "tok-limited-1", "[read]"),
    ("small", "tok-small-1", "[push]"),
];

fn config(extra_server: &str) -> String {
    let mut tokens = String::new();
    for (name, token, scopes) in TOKENS {
        let limits = match *name {
            // One request per 1000 s after a burst of 2: the third is refused
            // however slow the machine.
            "limited" => ", rate_limit: { per_second: 0.001, burst: 2 }",
            "small" => ", max_body_bytes: 200",
            _ => "",
        };
        tokens.push_str(&format!(
            "      - {{ name: {name}, sha256: {}, scopes: {scopes}{limits} }}\n",
            hash_token(token)
        ));
    }
    format!(
        r#"
server:
{extra_server}
  auth:
    tokens:
{tokens}
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
  receiver: console
receivers:
  - name: console
    plugin_configs: [{{ plugin: console }}]
"#
    )
}

/// Every `(method, path)` registered with `.route(` in the API's sources.
fn registered_routes() -> BTreeSet<(String, String)> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("host/src/api");
    let method_call = method_calls();
    let mut routes = BTreeSet::new();
    for entry in std::fs::read_dir(&dir).expect("host/src/api") {
        let path = entry.expect("dir entry").path();
        if path.extension().and_then(|e| e.to_str()) != Some("rs") {
            continue;
        }
        let src = std::fs::read_to_string(&path).expect("read source");
        let mut rest = src.as_str();
        while let Some(at) = rest.find(".route(") {
            rest = &rest[at + ".route(".len()..];
            let trimmed = rest.trim_start();
            let Some(lit) = trimmed.strip_prefix('"') else {
                continue;
            };
            let end = lit.find('"').expect("closing quote");
            let route = lit[..end].to_string();
            // The method router: up to the `)` closing `.route(`.
            let mut depth = 1;
            let args = &lit[end + 1..];
            let close = args
                .char_indices()
                .find(|&(_, c)| {
                    match c {
                        '(' => depth += 1,
                        ')' => depth -= 1,
                        _ => {}
                    }
                    depth == 0
                })
                .map(|(i, _)| i)
                .expect("closing paren of .route(");
            let methods = &args[..close];
            let mut found = false;
            for (name, method) in &method_call {
                let mut s = methods;
                while let Some(i) = s.find(name) {
                    let before = s[..i].chars().last();
                    if !before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                        routes.insert((method.to_string(), route.clone()));
                        found = true;
                    }
                    s = &s[i + name.len()..];
                }
            }
            assert!(
                found,
                "{}: cannot tell the methods of route {route}",
                path.display()
            );
        }
    }
    routes
}

fn method_calls() -> Vec<(&'static str, &'static str)> {
    vec![
        ("get(", "GET"),
        ("post(", "POST"),
        ("put(", "PUT"),
        ("delete(", "DELETE"),
        ("patch(", "PATCH"),
    ]
}

/// A concrete URL path for a route pattern (`{name}` → `x1`).
fn concrete(route: &str) -> String {
    route
        .split('/')
        .map(|seg| if seg.starts_with('{') { "x1" } else { seg })
        .collect::<Vec<_>>()
        .join("/")
}

fn scope_of(name: &str) -> Option<Scope> {
    match name {
        "pusher" => Some(Scope::Push),
        "reader" => Some(Scope::Read),
        "writer" => Some(Scope::Write),
        "admin" => Some(Scope::Admin),
        _ => None,
    }
}

fn token_of(name: &str) -> &'static str {
    TOKENS
        .iter()
        .find(|(n, _, _)| *n == name)
        .map(|(_, t, _)| *t)
        .expect("known caller")
}

async fn call(
    client: &reqwest::Client,
    base: &str,
    method: &Method,
    path: &str,
    token: Option<&str>,
) -> reqwest::Response {
    let mut req = client.request(method.clone(), format!("{base}{path}"));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if matches!(*method, Method::POST | Method::PUT | Method::PATCH) {
        req = req.header("content-type", "application/json").body("{}");
    }
    req.send().await.expect("request")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_needs_its_scope() {
    let routes = registered_routes();
    assert!(
        routes.len() >= 30,
        "found only {} routes: {routes:?}",
        routes.len()
    );
    let server = start_klaxon(&config("")).await;
    let base = format!("http://{}", server.addr());
    let client = reqwest::Client::new();
    let callers = [
        None,
        Some("pusher"),
        Some("reader"),
        Some("writer"),
        Some("admin"),
    ];
    let mut problems = Vec::new();
    let mut checked = 0;
    for (method, route) in &routes {
        let method: Method = method.parse().expect("method");
        let Some(access) = route_access(&method, route) else {
            problems.push(format!(
                "{method} {route}: not in api::auth::ROUTE_SCOPES (it needs admin until listed)"
            ));
            continue;
        };
        let path = concrete(route);
        for caller in callers {
            let status = call(&client, &base, &method, &path, caller.map(token_of))
                .await
                .status();
            checked += 1;
            let allowed = match (access, caller) {
                (Access::Open, _) => true,
                (Access::Scoped(_), None) => false,
                (Access::Scoped(needed), Some(c)) => {
                    let s = scope_of(c).expect("scope");
                    s == Scope::Admin || s == needed
                }
            };
            let ok = match (allowed, caller) {
                (true, _) => !matches!(status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN),
                (false, None) => status == StatusCode::UNAUTHORIZED,
                (false, Some(_)) => status == StatusCode::FORBIDDEN,
            };
            if !ok {
                problems.push(format!(
                    "{method} {path} as {}: {status} (access {access:?})",
                    caller.unwrap_or("anonymous")
                ));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "{} of {checked} checks failed:\n{}",
        problems.len(),
        problems.join("\n")
    );

    // A path no route has needs admin like any unlisted route.
    for (caller, want) in [
        (None, StatusCode::UNAUTHORIZED),
        (Some("reader"), StatusCode::FORBIDDEN),
        (Some("admin"), StatusCode::NOT_FOUND),
    ] {
        let status = call(
            &client,
            &base,
            &Method::GET,
            "/api/v1/no-such-route",
            caller.map(token_of),
        )
        .await
        .status();
        assert_eq!(status, want, "{caller:?}");
    }

    // Refusals say why, and a wrong token is not a missing one.
    let r = call(
        &client,
        &base,
        &Method::POST,
        "/-/reload",
        Some(token_of("reader")),
    )
    .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let body: serde_json::Value = r.json().await.expect("json");
    assert_eq!(
        body["error"],
        "token `reader` lacks scope `admin` for POST /-/reload"
    );
    let r = call(&client, &base, &Method::GET, "/api/v1/alerts", Some("nope")).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(r.headers()["www-authenticate"], "Bearer realm=\"klaxon\"");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_token_rate_and_body_limits() {
    let server = start_klaxon(&config("")).await;
    let base = format!("http://{}", server.addr());
    let client = reqwest::Client::new();
    let limited = Some(token_of("limited"));
    for _ in 0..2 {
        let r = call(&client, &base, &Method::GET, "/api/v1/alerts", limited).await;
        assert_eq!(r.status(), StatusCode::OK);
    }
    let r = call(&client, &base, &Method::GET, "/api/v1/alerts", limited).await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = r.headers()["retry-after"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("seconds");
    assert!((1..=1000).contains(&retry), "Retry-After {retry}");
    // Another token is not limited by this one's bucket.
    let r = call(
        &client,
        &base,
        &Method::GET,
        "/api/v1/alerts",
        Some(token_of("reader")),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);

    let small = token_of("small");
    let big =
        json!({"series": [{"metric": "x", "labels": {"pad": "p".repeat(400)}, "value": 1.0}]});
    let r = client
        .post(format!("{base}/api/v1/push"))
        .bearer_auth(small)
        .json(&big)
        .send()
        .await
        .expect("push");
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    // The same body is fine for a token without the limit...
    let r = client
        .post(format!("{base}/api/v1/push"))
        .bearer_auth(token_of("pusher"))
        .json(&big)
        .send()
        .await
        .expect("push");
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    // ...and a small one for the limited token.
    let r = client
        .post(format!("{base}/api/v1/push"))
        .bearer_auth(small)
        .json(&json!({"series": [{"metric": "x", "value": 0.5}]}))
        .send()
        .await
        .expect("push");
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    // A chunked body (no length to check up front) is cut at the limit as it
    // streams, and nothing of it is stored.
    let body = format!(
        r#"{{"series": [{{"metric": "x", "labels": {{"pad": "{}"}}, "value": 1.0}}]}}"#,
        "q".repeat(400)
    );
    let request = format!(
        "POST /api/v1/push HTTP/1.1\r\nHost: klaxon\r\nAuthorization: Bearer {small}\r\n\
         Content-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n\
         {:x}\r\n{body}\r\n0\r\n\r\n",
        body.len()
    );
    let mut conn = tokio::net::TcpStream::connect(server.addr())
        .await
        .expect("connect");
    conn.write_all(request.as_bytes()).await.expect("send");
    let mut answer = Vec::new();
    conn.read_to_end(&mut answer).await.expect("answer");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 4"), "{answer}");
    let series = client
        .get(format!("{base}/api/v1/series"))
        .query(&[("match[]", r#"x{pad=~"q+"}"#)])
        .bearer_auth(token_of("reader"))
        .send()
        .await
        .expect("series")
        .json::<serde_json::Value>()
        .await
        .expect("json");
    assert_eq!(series["data"], json!([]), "{series}");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_tokens_the_api_is_open() {
    let server = start_klaxon(
        "route:\n  receiver: c\nreceivers:\n  - name: c\n    plugin_configs: [{ plugin: console }]\n",
    )
    .await;
    let base = format!("http://{}", server.addr());
    let client = reqwest::Client::new();
    let r = call(&client, &base, &Method::GET, "/api/v1/alerts", None).await;
    assert_eq!(r.status(), StatusCode::OK);
    let r = call(&client, &base, &Method::POST, "/api/v2/silences", None).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_with_a_self_signed_certificate() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()])
        .expect("self-signed certificate");
    let cert_pem = cert.cert.pem();
    let cert_file = dir.path().join("cert.pem");
    let key_file = dir.path().join("key.pem");
    std::fs::write(&cert_file, &cert_pem).expect("write cert");
    std::fs::write(&key_file, cert.signing_key.serialize_pem()).expect("write key");
    let tls = format!(
        "  tls: {{ cert_file: \"{}\", key_file: \"{}\" }}",
        cert_file.display(),
        key_file.display()
    );
    let server = start_klaxon(&config(&tls)).await;
    let addr = server.addr();
    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(cert_pem.as_bytes()).expect("pem"))
        .resolve("localhost", addr)
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    let base = format!("https://localhost:{}", addr.port());

    let r = client
        .get(format!("{base}/healthz"))
        .send()
        .await
        .expect("https");
    assert_eq!(r.status(), StatusCode::OK);
    let r = call(&client, &base, &Method::GET, "/api/v1/alerts", None).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = client
        .post(format!("{base}/api/v1/push"))
        .bearer_auth(token_of("pusher"))
        .json(&json!({"series": [{"metric": "x", "value": 0.5}]}))
        .send()
        .await
        .expect("push over https");
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let r = client
        .get(format!("{base}/api/v1/query?query=x"))
        .bearer_auth(token_of("reader"))
        .send()
        .await
        .expect("query over https");
    let body: serde_json::Value = r.json().await.expect("json");
    assert_eq!(body["data"]["result"][0]["value"][1], "0.5", "{body}");

    // Plain HTTP to the TLS port gets no HTTP answer.
    let plain = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    let r = plain.get(format!("http://{addr}/healthz")).send().await;
    assert!(
        r.is_err() || !r.as_ref().is_ok_and(|r| r.status().is_success()),
        "plain HTTP got {r:?}"
    );
    // A client that does not trust the certificate refuses the server.
    let untrusting = reqwest::Client::builder()
        .resolve("localhost", addr)
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    assert!(
        untrusting
            .get(format!("{base}/healthz"))
            .send()
            .await
            .is_err()
    );
    server.shutdown().await;
}

/// A real Prometheus (Debian's `prometheus`) remote-writes its own metrics
/// and sends its alerts to Klaxon with a `push` token in its
/// `authorization` settings.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_writes_and_alerts_with_a_push_token() {
    use std::process::{Command, Stdio};

    let bin = debian_bin("prometheus", "PROMETHEUS_BIN", "prometheus");
    let server = start_klaxon(&config("")).await;
    let klaxon = server.addr();
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("rules.yml"),
        "groups:\n  - name: ml\n    interval: 1s\n    rules:\n      - alert: ModelAccuracyLow\n        expr: vector(0.61) < 0.8\n",
    )
    .expect("write rules.yml");
    let port = free_port();
    let token = token_of("pusher");
    let prometheus_yml = dir.path().join("prometheus.yml");
    std::fs::write(
        &prometheus_yml,
        format!(
            r#"global:
  evaluation_interval: 1s
  scrape_interval: 1s
rule_files: [rules.yml]
scrape_configs:
  - job_name: prom
    static_configs: [{{ targets: ["127.0.0.1:{port}"] }}]
remote_write:
  - url: http://{klaxon}/api/v1/write
    authorization: {{ credentials: {token} }}
alerting:
  alertmanagers:
    - api_version: v2
      authorization: {{ credentials: {token} }}
      static_configs: [{{ targets: ["{klaxon}"] }}]
"#
        ),
    )
    .expect("write prometheus.yml");
    let log = dir.path().join("prometheus.log");
    let child = Command::new(&bin)
        .arg(format!("--config.file={}", prometheus_yml.display()))
        .arg("--rules.alert.resend-delay=1s")
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log file"))
        .spawn()
        .expect("start prometheus");
    let _prometheus = Process { child, log };

    let client = reqwest::Client::new();
    let reader = token_of("reader");
    let base = format!("http://{klaxon}");
    eventually(
        Duration::from_secs(60),
        "Prometheus's alert in Klaxon",
        || {
            let req = client
                .get(format!("{base}/api/v2/alerts"))
                .bearer_auth(reader);
            async move {
                let v: serde_json::Value = req.send().await.ok()?.json().await.ok()?;
                v.as_array()?
                    .iter()
                    .any(|a| a["labels"]["alertname"] == "ModelAccuracyLow")
                    .then_some(())
            }
        },
    )
    .await;
    eventually(
        Duration::from_secs(60),
        "Prometheus's remote-written `up` in Klaxon",
        || {
            let req = client
                .get(format!("{base}/api/v1/query"))
                .query(&[("query", r#"up{job="prom"}"#)])
                .bearer_auth(reader);
            async move {
                let v: serde_json::Value = req.send().await.ok()?.json().await.ok()?;
                (v["data"]["result"][0]["value"][1] == "1").then_some(())
            }
        },
    )
    .await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_certificate_stops_the_start_naming_the_file() {
    let yaml =
        config("  tls: { cert_file: /nonexistent/cert.pem, key_file: /nonexistent/key.pem }");
    let parsed = klaxon_host::config::Config::parse(&yaml, "test.yml").expect("parses");
    let err = klaxon_host::server::start(klaxon_host::server::ServerOptions {
        listen: "127.0.0.1:0".parse().expect("addr"),
        config: parsed,
        config_file: "test.yml".into(),
        config_text: yaml.clone(),
        config_path: None,
        data_dir: None,
    })
    .await
    .err()
    .expect("refused");
    let text = format!("{err:#}");
    assert!(
        text.contains("server.tls.cert_file /nonexistent/cert.pem"),
        "{text}"
    );
}

/// Tokens come from the config in force: a reload that replaces one takes
/// it out and lets the new one in, with no restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_changes_the_tokens() {
    let with = |token: &str| {
        format!(
            "server:\n  auth:\n    tokens:\n      - {{ name: ops, sha256: {}, scopes: [admin] }}\nroute:\n  receiver: c\nreceivers:\n  - name: c\n    plugin_configs: [{{ plugin: console }}]\n",
            hash_token(token)
        )
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("klaxon.yml");
    let first = with("tok-old");
    std::fs::write(&path, &first).expect("write config");
    let server = klaxon_host::server::start(klaxon_host::server::ServerOptions {
        listen: "127.0.0.1:0".parse().expect("addr"),
        config: klaxon_host::config::Config::parse(&first, "klaxon.yml").expect("config"),
        config_file: path.display().to_string(),
        config_text: first.clone(),
        config_path: Some(path.clone()),
        data_dir: None,
    })
    .await
    .expect("klaxon starts");
    let base = format!("http://{}", server.addr());
    let client = reqwest::Client::new();
    let alerts = |token: &'static str| {
        let req = client
            .get(format!("{base}/api/v1/alerts"))
            .bearer_auth(token);
        async move { req.send().await.expect("request").status() }
    };
    assert_eq!(alerts("tok-old").await, StatusCode::OK);
    assert_eq!(alerts("tok-new").await, StatusCode::UNAUTHORIZED);

    std::fs::write(&path, with("tok-new")).expect("rewrite config");
    let r = call(&client, &base, &Method::POST, "/-/reload", Some("tok-old")).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(alerts("tok-old").await, StatusCode::UNAUTHORIZED);
    assert_eq!(alerts("tok-new").await, StatusCode::OK);

    // A config with an invalid token entry is refused; the tokens stay.
    std::fs::write(
        &path,
        with("tok-newer").replace("scopes: [admin]", "scopes: [root]"),
    )
    .expect("rewrite config");
    let r = call(&client, &base, &Method::POST, "/-/reload", Some("tok-new")).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(alerts("tok-new").await, StatusCode::OK);
    server.shutdown().await;
}
