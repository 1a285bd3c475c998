//! The scrape loop end to end: Klaxon scrapes a local exporter over HTTP,
//! adds `job`/`instance`/static labels, writes `up` and `scrape_*`, and
//! marks series stale when they disappear or the target fails.

mod common;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use common::*;
use klaxon_host::config::Config;
use klaxon_host::server::Server;
use klaxon_host::store::Labels;
use tokio::sync::Mutex;

use klaxon_host::promql::STALE_NAN_BITS;

/// What the exporter answers: status and body.
type Exposition = Arc<Mutex<(StatusCode, String)>>;

fn last(server: &Server, pairs: &[(&str, &str)]) -> Option<(i64, f64)> {
    let store = &server.state.store;
    store
        .get(&Labels::new(pairs.iter().copied()))
        .and_then(|h| store.last_sample(&h))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scrapes_a_target_and_marks_staleness() {
    let exposition: Exposition = Arc::new(Mutex::new((
        StatusCode::OK,
        "# TYPE temp gauge\ntemp{room=\"a\"} 21.5\ntemp{room=\"b\"} 19\n\
         # TYPE jobs_total counter\njobs_total{job=\"batch\"} 7\n"
            .into(),
    )));
    async fn serve(State(e): State<Exposition>) -> (StatusCode, String) {
        e.lock().await.clone()
    }
    let app = Router::new()
        .route("/custom/metrics", get(serve))
        .with_state(exposition.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind exporter");
    let exporter = listener.local_addr().expect("exporter addr").to_string();
    tokio::spawn(async move {
        axum::serve(listener, app).await.expect("exporter serves");
    });

    let server = start_klaxon(&format!(
        r#"
scrape_configs:
  - job_name: exporter
    scrape_interval: 500ms
    scrape_timeout: 500ms
    metrics_path: /custom/metrics
    static_configs:
      - targets: ["{exporter}"]
        labels: {{ env: test }}
"#
    ))
    .await;
    let target = |pairs: &[(&'static str, &'static str)]| {
        let mut all = pairs.to_vec();
        all.extend([("job", "exporter"), ("env", "test")]);
        all.push(("instance", exporter.as_str()));
        all
    };
    let room_a = target(&[("__name__", "temp"), ("room", "a")]);
    let room_b = target(&[("__name__", "temp"), ("room", "b")]);
    let jobs = target(&[("__name__", "jobs_total"), ("exported_job", "batch")]);
    let up = target(&[("__name__", "up")]);
    let scraped = target(&[("__name__", "scrape_samples_scraped")]);
    let duration = target(&[("__name__", "scrape_duration_seconds")]);

    let within = Duration::from_secs(20);
    eventually(within, "the first scrape", || {
        let done = last(&server, &room_b).is_some() && last(&server, &up).is_some();
        async move { done.then_some(()) }
    })
    .await;
    assert_eq!(last(&server, &room_a).map(|s| s.1), Some(21.5));
    assert_eq!(last(&server, &room_b).map(|s| s.1), Some(19.0));
    assert_eq!(last(&server, &jobs).map(|s| s.1), Some(7.0));
    assert_eq!(last(&server, &up).map(|s| s.1), Some(1.0));
    assert_eq!(last(&server, &scraped).map(|s| s.1), Some(3.0));
    assert!(last(&server, &duration).is_some_and(|s| s.1 > 0.0 && s.1 < 0.5));

    // A series disappears: it gets one staleness marker, the others go on.
    exposition.lock().await.1 = "temp{room=\"a\"} 22\njobs_total{job=\"batch\"} 8\n".into();
    eventually(within, "room b to be marked stale", || {
        let stale = last(&server, &room_b).is_some_and(|s| s.1.to_bits() == STALE_NAN_BITS);
        async move { stale.then_some(()) }
    })
    .await;
    eventually(within, "room a to be updated", || {
        let updated = last(&server, &room_a).is_some_and(|s| s.1 == 22.0);
        async move { updated.then_some(()) }
    })
    .await;
    assert_eq!(last(&server, &up).map(|s| s.1), Some(1.0));

    // The target fails: up is 0 and every series it had goes stale.
    exposition.lock().await.0 = StatusCode::INTERNAL_SERVER_ERROR;
    eventually(within, "up = 0 and all series stale", || {
        let down = last(&server, &up).is_some_and(|s| s.1 == 0.0)
            && [&room_a, &jobs]
                .iter()
                .all(|l| last(&server, l).is_some_and(|s| s.1.to_bits() == STALE_NAN_BITS));
        async move { down.then_some(()) }
    })
    .await;
    assert_eq!(last(&server, &scraped).map(|s| s.1), Some(0.0));

    // It comes back.
    exposition.lock().await.0 = StatusCode::OK;
    eventually(within, "up = 1 and fresh samples again", || {
        let back = last(&server, &up).is_some_and(|s| s.1 == 1.0)
            && last(&server, &room_a).is_some_and(|s| s.1 == 22.0);
        async move { back.then_some(()) }
    })
    .await;
    server.shutdown().await;
}

#[test]
fn scrape_config_errors_name_the_line() {
    let unknown = "scrape_configs:\n  - job_name: a\n    scrape_intervall: 1s\n";
    let err = Config::parse(unknown, "k.yml")
        .map(|_| ())
        .map_err(|e| e.to_string());
    assert!(
        err.as_ref()
            .is_err_and(|e| e.starts_with("k.yml:3: ") && e.contains("scrape_intervall")),
        "{err:?}"
    );

    let bad_scheme = "groups: []\nscrape_configs:\n  - job_name: a\n    scheme: ftp\n    \
                      static_configs: [{targets: [\"127.0.0.1:1\"]}]\n";
    let config = Config::parse(bad_scheme, "k.yml").expect("parses");
    let err = config
        .validate_static("k.yml", bad_scheme)
        .map_err(|e| e.to_string());
    assert_eq!(
        err,
        Err("k.yml:3: scrape config `a`: scheme must be `http` or `https`, not `ftp`".into())
    );
}
