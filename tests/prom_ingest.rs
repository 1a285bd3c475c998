//! The Prometheus ingestion endpoints end to end: text imports over HTTP,
//! and a real Prometheus (`/usr/bin/prometheus`, Debian's package, which
//! `.ci/run` installs) scraping a local exporter and remote-writing to
//! Klaxon.

mod common;

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use common::*;
use klaxon_host::server::Server;
use klaxon_host::store::Labels;
use serde_json::Value;
use tokio::sync::Mutex;

/// Prometheus's staleness marker.
use klaxon_host::promql::STALE_NAN_BITS;

const CONFIG: &str = r#"
limits:
  max_labels_per_series: 5
"#;

fn labels(pairs: &[(&str, &str)]) -> Labels {
    Labels::new(pairs.iter().copied())
}

/// The newest stored sample of the series with exactly these labels.
fn last(server: &Server, pairs: &[(&str, &str)]) -> Option<(i64, f64)> {
    let store = &server.state.store;
    store
        .get(&labels(pairs))
        .and_then(|h| store.last_sample(&h))
}

async fn counts(client: &reqwest::Client, base: &str) -> (u64, u64) {
    let s = get_json(client, &format!("{base}/api/v1/status/runtime")).await;
    (
        s["data"]["series"].as_u64().unwrap_or(u64::MAX),
        s["data"]["samples"].as_u64().unwrap_or(u64::MAX),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_imports_are_stored_or_refused_whole() {
    let server = start_klaxon(CONFIG).await;
    let base = format!("http://{}", server.addr());
    let client = reqwest::Client::new();
    let now = now_ms();

    let body = format!(
        "# TYPE jobs_total counter\njobs_total{{queue=\"a \\\"b\\\"\"}} 7 {now}\n\
         # TYPE temp gauge\ntemp NaN\n"
    );
    let resp = client
        .post(format!("{base}/api/v1/import/prometheus"))
        .header("content-type", "text/plain; version=0.0.4")
        .body(body)
        .send()
        .await
        .expect("import");
    assert_eq!(resp.status(), 204);
    assert_eq!(
        last(&server, &[("__name__", "jobs_total"), ("queue", "a \"b\"")]),
        Some((now, 7.0))
    );
    assert!(last(&server, &[("__name__", "temp")]).is_some_and(|(_, v)| v.is_nan()));

    let secs = now / 1000;
    let resp = client
        .post(format!(
            "{base}/api/v1/import/prometheus?extra_label=job=batch&extra_label=env=dev"
        ))
        .header("content-type", "application/openmetrics-text; version=1.0.0")
        .body(format!(
            "# TYPE runs counter\nruns_total 3 {secs} # {{trace_id=\"x\"}} 1\nruns_created 1.7e9\n# EOF\n"
        ))
        .send()
        .await
        .expect("import");
    assert_eq!(resp.status(), 204);
    assert_eq!(
        last(
            &server,
            &[("__name__", "runs_total"), ("job", "batch"), ("env", "dev")]
        ),
        Some((secs * 1000, 3.0))
    );
    assert_eq!(counts(&client, &base).await, (3, 3));

    let cases: Vec<(&str, &str, &str, String)> = vec![
        (
            "bad value on line 3",
            "",
            "text/plain",
            "ok 1\n# TYPE m gauge\nm one\n".into(),
        ),
        (
            "missing # EOF",
            "",
            "application/openmetrics-text",
            "ok 1\n".into(),
        ),
        (
            "too many labels",
            "",
            "text/plain",
            "m{a=\"1\",b=\"2\",c=\"3\",d=\"4\",e=\"5\",f=\"6\"} 1\n".into(),
        ),
        (
            "bad extra_label",
            "?extra_label=__x=1",
            "text/plain",
            "ok 1\n".into(),
        ),
    ];
    let expected_errors = [
        "line 3: invalid value \"one\": expected a float, NaN, +Inf or -Inf",
        "line 2: missing `# EOF`: an OpenMetrics body must end with it",
        "line 1: series has more than limits.max_labels_per_series = 5 labels",
        "extra_label: \"__x\": label names starting with `__` are reserved",
    ];
    for ((name, query, content_type, body), want) in cases.into_iter().zip(expected_errors) {
        let resp = client
            .post(format!("{base}/api/v1/import/prometheus{query}"))
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .expect("import");
        assert_eq!(resp.status(), 400, "{name}");
        let err: Value = resp.json().await.expect("JSON error body");
        assert_eq!(err["status"], "error", "{name}");
        assert_eq!(err["errorType"], "bad_data", "{name}");
        assert_eq!(err["error"], want, "{name}");
        assert_eq!(
            counts(&client, &base).await,
            (3, 3),
            "{name}: the store changed"
        );
    }

    // Remote write: not snappy, and a foreign encoding.
    let resp = client
        .post(format!("{base}/api/v1/write"))
        .header("content-encoding", "snappy")
        .body(vec![0xffu8; 8])
        .send()
        .await
        .expect("write");
    assert_eq!(resp.status(), 400);
    let err: Value = resp.json().await.expect("JSON error body");
    let msg = err["error"].as_str().unwrap_or_default();
    assert!(msg.starts_with("body: invalid snappy block"), "{msg}");
    let resp = client
        .post(format!("{base}/api/v1/write"))
        .header("content-encoding", "gzip")
        .body(vec![0u8; 8])
        .send()
        .await
        .expect("write");
    assert_eq!(resp.status(), 400);
    assert_eq!(counts(&client, &base).await, (3, 3));
    server.shutdown().await;
}

/// What the local exporter serves, and the samples Klaxon must end up with
/// (besides `job` and `instance`, which Prometheus adds).
const EXPOSITION: &str = r#"# HELP klaxon_e2e_temperature_celsius Room temperature.
# TYPE klaxon_e2e_temperature_celsius gauge
klaxon_e2e_temperature_celsius{room="lab \"A\" \\ 1"} 21.5
klaxon_e2e_temperature_celsius{room="hall"} -3.25
# HELP klaxon_e2e_requests_total Requests served.
# TYPE klaxon_e2e_requests_total counter
klaxon_e2e_requests_total{code="200"} 1027
klaxon_e2e_requests_total{code="500"} 3
# TYPE klaxon_e2e_latency_seconds histogram
klaxon_e2e_latency_seconds_bucket{le="0.1"} 5
klaxon_e2e_latency_seconds_bucket{le="1"} 8
klaxon_e2e_latency_seconds_bucket{le="+Inf"} 9
klaxon_e2e_latency_seconds_sum 4.5
klaxon_e2e_latency_seconds_count 9
klaxon_e2e_untyped 42
"#;

const EXPOSED: &[(&[(&str, &str)], f64)] = &[
    (
        &[
            ("__name__", "klaxon_e2e_temperature_celsius"),
            ("room", "lab \"A\" \\ 1"),
        ],
        21.5,
    ),
    (
        &[
            ("__name__", "klaxon_e2e_temperature_celsius"),
            ("room", "hall"),
        ],
        -3.25,
    ),
    (
        &[("__name__", "klaxon_e2e_requests_total"), ("code", "200")],
        1027.0,
    ),
    (
        &[("__name__", "klaxon_e2e_requests_total"), ("code", "500")],
        3.0,
    ),
    (
        &[
            ("__name__", "klaxon_e2e_latency_seconds_bucket"),
            ("le", "0.1"),
        ],
        5.0,
    ),
    (
        &[
            ("__name__", "klaxon_e2e_latency_seconds_bucket"),
            ("le", "1"),
        ],
        8.0,
    ),
    (
        &[
            ("__name__", "klaxon_e2e_latency_seconds_bucket"),
            ("le", "+Inf"),
        ],
        9.0,
    ),
    (&[("__name__", "klaxon_e2e_latency_seconds_sum")], 4.5),
    (&[("__name__", "klaxon_e2e_latency_seconds_count")], 9.0),
    (&[("__name__", "klaxon_e2e_untyped")], 42.0),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_prometheus_remote_writes_what_it_scrapes() {
    let bin = debian_bin("prometheus", "PROMETHEUS_BIN", "prometheus");
    let server = start_klaxon(CONFIG).await;
    let klaxon = server.addr();

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind exporter");
    let exporter = listener.local_addr().expect("exporter addr");
    let exposition = Arc::new(Mutex::new(EXPOSITION.to_owned()));
    let served = exposition.clone();
    let app = Router::new().route(
        "/metrics",
        get(move || {
            let served = served.clone();
            async move {
                (
                    [("content-type", "text/plain; version=0.0.4; charset=utf-8")],
                    served.lock().await.clone(),
                )
            }
        }),
    );
    tokio::spawn(async move {
        axum::serve(listener, app).await.expect("exporter serves");
    });

    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            r#"global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: exporter
    static_configs:
      - targets: ["{exporter}"]
remote_write:
  - url: http://{klaxon}/api/v1/write
    queue_config:
      batch_send_deadline: 1s
      min_backoff: 100ms
      max_backoff: 1s
"#
        ),
    )
    .expect("write prometheus.yml");
    let log = dir.path().join("prometheus.log");
    let log_file = std::fs::File::create(&log).expect("log file");
    let child = Command::new(&bin)
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{}", free_port()))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log_file)
        .spawn()
        .expect("start prometheus");
    let _prometheus = Process {
        child,
        log: log.clone(),
    };

    let instance = exporter.to_string();
    let with_target = |pairs: &[(&'static str, &'static str)]| {
        let mut all: Vec<(&str, &str)> = pairs.to_vec();
        all.push(("job", "exporter"));
        all.push(("instance", instance.as_str()));
        all
    };
    eventually(
        Duration::from_secs(90),
        "Prometheus to remote-write every exposed series and its up/scrape_* series",
        || {
            let done = EXPOSED
                .iter()
                .all(|(pairs, _)| last(&server, &with_target(pairs)).is_some())
                && ["up", "scrape_duration_seconds", "scrape_samples_scraped"]
                    .iter()
                    .all(|name| last(&server, &with_target(&[("__name__", name)])).is_some());
            async move { done.then_some(()) }
        },
    )
    .await;

    let now = now_ms();
    for (pairs, want) in EXPOSED {
        let got = last(&server, &with_target(pairs));
        assert!(
            got.is_some_and(|(t, v)| v == *want && (now - t).abs() < 60_000),
            "{pairs:?}: expected {want} at about {now}, got {got:?}"
        );
    }
    let value =
        |name: &'static str| last(&server, &with_target(&[("__name__", name)])).map(|s| s.1);
    assert_eq!(value("up"), Some(1.0));
    assert_eq!(value("scrape_samples_scraped"), Some(EXPOSED.len() as f64));
    assert!(
        value("scrape_duration_seconds").is_some_and(|v| v > 0.0 && v < 1.0),
        "{:?}",
        value("scrape_duration_seconds")
    );
    // Nothing but the exporter's series and Prometheus's own per-target ones.
    let names = server.state.store.label_values("__name__");
    assert!(
        names
            .iter()
            .all(|n| n.starts_with("klaxon_e2e_") || n == "up" || n.starts_with("scrape_")),
        "{names:?}"
    );

    // A series leaves the exposition: Prometheus remote-writes its staleness
    // marker, which must arrive bit for bit.
    *exposition.lock().await = EXPOSITION
        .lines()
        .filter(|l| !l.contains("room=\"hall\""))
        .map(|l| format!("{l}\n"))
        .collect();
    let hall = with_target(EXPOSED[1].0);
    eventually(
        Duration::from_secs(60),
        "the staleness marker of the removed series",
        || {
            let stale = last(&server, &hall).is_some_and(|(_, v)| v.to_bits() == STALE_NAN_BITS);
            async move { stale.then_some(()) }
        },
    )
    .await;
    assert_eq!(value("up"), Some(1.0));
    drop(_prometheus);
    server.shutdown().await;
}
