//! Alert handling, Klaxon side by side with Alertmanager (Debian's
//! `prometheus-alertmanager`), each a fresh process started by this harness
//! on loopback, with the same routing config and the same stream of alerts:
//!
//! 1. 1 000 silences are created through `POST /api/v2/silences`, each
//!    muting one (alertname, model_name) pair;
//! 2. 10 000 distinct alerts (100 alert names × 100 models) are posted to
//!    `POST /api/v2/alerts` in batches of 64 (Prometheus's batch size) over
//!    4 connections: accepted alerts/s;
//! 3. every alert is its own group (`group_by: [alertname, model_name]`),
//!    so 9 000 notifications (the unsilenced alerts) reach a local webhook
//!    receiver (in this process, on a thread of its own, reading only the
//!    two labels it checks, so it takes little of the cores the server
//!    shares with it): notifications/s from the first delivery to the last (after
//!    the 1 s `group_wait` both wait), the CPU time the server and this
//!    harness (then only its receiver) used from the end of posting to the
//!    last delivery, per notification (printed on stderr), and a check that
//!    no silenced alert was delivered;
//! 4. the same 10 000 alerts are re-posted 3 times (Prometheus re-sends
//!    firing alerts): accepted alerts/s with 10 000 active alerts and 1 000
//!    silences, best of 3;
//! 5. resident memory (VmRSS) of the server afterwards.
//!
//! The machine's speed drifts by more than a tenth from one minute to the
//! next, so the comparison runs in rounds (`AM_COMPARE_ROUNDS`, default 3):
//! each round measures both servers, the one going first alternating, and
//! every ratio is taken between the two servers of one round. The summary
//! gives each round's ratios and their median.
//!
//! Each server runs as deployed: Alertmanager with its storage path, Klaxon
//! with its data dir (silences, delivery journal, and the plugin compile
//! cache, warmed by one start beforehand).
//!
//! Run: `cargo bench --bench alertmanager_compare`.
//!
//! `cargo bench --bench alertmanager_compare -- --receiver-ceiling` instead
//! measures what the harness's receiver itself absorbs: a separate process
//! (this executable, `--ceiling-client`) POSTs 9 000 webhook payloads of the
//! size Klaxon's and Alertmanager's webhooks send, from a keep-alive
//! `reqwest` client at several concurrencies, and the receiver times the
//! first to the last as in the comparison. No server can be measured faster
//! than that here.
//!
//! For profiling one server's re-send phase (e.g. `perf record -p` on it): `AM_COMPARE_ONLY=klaxon`
//! (or `alertmanager`) runs that server alone (`AM_COMPARE_ROUNDS=1` for one run), `AM_COMPARE_RESENDS=N` re-posts
//! N times instead of 3. `AM_COMPARE_KLAXON_YAML` is appended to Klaxon's
//! config (top-level keys only Klaxon knows, e.g. `notify:` settings), for
//! trying a setting without a rebuild; `AM_COMPARE_TIMELINE=1` prints the
//! notifications received per 10 ms of the delivery phase.

use std::collections::HashSet;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use std::borrow::Cow;
use std::future::IntoFuture;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use bytes::Bytes;
use parking_lot::Mutex;
use serde::Deserialize;
use serde_json::{Value, json};

#[path = "shared/harness.rs"]
mod harness;
use harness::{Proc, free_port, wait_http};

const NAMES: usize = 100;
const MODELS: usize = 100;
const SILENCES: usize = 1000;
const BATCH: usize = 64;
const CONNECTIONS: usize = 4;

/// The routing config both servers get. Klaxon's notifiers reach loopback
/// only when the receiver opts in (`allowed_networks`, a field Alertmanager
/// refuses), so that field is Klaxon's alone.
fn config(receiver: &str, klaxon: bool) -> String {
    let opt_in = if klaxon {
        r#", allowed_networks: ["127.0.0.1/32"]"#
    } else {
        ""
    };
    let extra = if klaxon {
        std::env::var("AM_COMPARE_KLAXON_YAML").unwrap_or_default()
    } else {
        String::new()
    };
    format!(
        r#"route:
  receiver: hook
  group_by: [alertname, model_name]
  group_wait: 1s
  group_interval: 5m
  repeat_interval: 4h
receivers:
  - name: hook
    webhook_configs: [{{ url: "{receiver}/hook"{opt_in} }}]
{extra}
"#
    )
}

/// A `/proc/PID/status` memory field (`VmRSS`, `RssAnon`, `RssFile`) in MiB.
fn status_mib(pid: u32, field: &str) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(&format!("{field}:")))
                .and_then(|l| {
                    l.split_whitespace()
                        .nth(1)
                        .and_then(|v| v.parse::<f64>().ok())
                })
        })
        .unwrap_or(0.0)
        / 1024.0
}

/// CPU time (user + system) a process has used so far, in seconds;
/// `/proc/self/stat` for `None`.
fn cpu_s(pid: Option<u32>) -> f64 {
    let path = pid.map_or("/proc/self/stat".to_string(), |p| format!("/proc/{p}/stat"));
    let stat = std::fs::read_to_string(path).unwrap_or_default();
    // Fields after the command (which may hold spaces) closes with `)`:
    // utime and stime are the 12th and 13th, in clock ticks of 1/100 s.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let ticks: f64 = rest
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|t| t.parse::<f64>().ok())
        .sum();
    ticks / 100.0
}

fn rss_mib(pid: u32) -> f64 {
    status_mib(pid, "VmRSS")
}

/// What the local receiver counted: each delivered alert's (alertname,
/// model_name), and when the first and the last notification arrived.
#[derive(Default)]
struct Counter {
    notifications: AtomicUsize,
    seen: Mutex<Seen>,
}

#[derive(Default)]
struct Seen {
    alerts: Vec<(String, String)>,
    first: Option<Instant>,
    last: Option<Instant>,
    /// When each notification arrived (for `AM_COMPARE_TIMELINE`).
    arrivals: Vec<Instant>,
}

/// The part of a webhook payload (version 4) the receiver reads; the rest
/// is skipped unread, and the two labels are borrowed from the body.
#[derive(Deserialize)]
struct Payload<'a> {
    #[serde(borrow)]
    alerts: Vec<PayloadAlert<'a>>,
}

#[derive(Deserialize)]
struct PayloadAlert<'a> {
    #[serde(borrow)]
    labels: PayloadLabels<'a>,
}

#[derive(Deserialize)]
struct PayloadLabels<'a> {
    #[serde(borrow)]
    alertname: Cow<'a, str>,
    #[serde(borrow)]
    model_name: Cow<'a, str>,
}

/// A payload that does not parse, or lacks either label, is refused (400),
/// so the sender reports it and the comparison's count falls short.
async fn hook(State(c): State<Arc<Counter>>, body: Bytes) -> StatusCode {
    let Ok(payload) = serde_json::from_slice::<Payload>(&body) else {
        return StatusCode::BAD_REQUEST;
    };
    let now = Instant::now();
    let mut seen = c.seen.lock();
    seen.alerts.extend(payload.alerts.into_iter().map(|a| {
        (
            a.labels.alertname.into_owned(),
            a.labels.model_name.into_owned(),
        )
    }));
    seen.first.get_or_insert(now);
    seen.arrivals.push(now);
    seen.last = Some(now);
    drop(seen);
    c.notifications.fetch_add(1, Ordering::SeqCst);
    StatusCode::OK
}

fn alert(i: usize) -> Value {
    json!({
        "labels": {
            "alertname": format!("Alert{}", i % NAMES),
            "model_name": format!("model{}", i / NAMES),
            "severity": if i.is_multiple_of(10) { "critical" } else { "warning" },
            "team": "ml",
        },
        "annotations": {"summary": format!("alert {i} of the benchmark"), "runbook_url": "https://runbooks.example/x"},
        "generatorURL": "http://prometheus.example/graph",
    })
}

/// Silence `k` mutes the k-th alert (name k % NAMES, model k / NAMES).
fn silenced(name: &str, model: &str) -> bool {
    let n: usize = name
        .trim_start_matches("Alert")
        .parse()
        .unwrap_or(usize::MAX);
    let m: usize = model
        .trim_start_matches("model")
        .parse()
        .unwrap_or(usize::MAX);
    m * NAMES + n < SILENCES
}

/// POSTs every body to `url` over `connections` keep-alive connections
/// (each takes the next body not yet sent); returns how long that took.
async fn post_all(
    client: &reqwest::Client,
    url: &str,
    bodies: &Arc<Vec<String>>,
    connections: usize,
) -> Duration {
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..connections {
        let (client, url, bodies, next) = (
            client.clone(),
            url.to_string(),
            bodies.clone(),
            next.clone(),
        );
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some(body) = bodies.get(i) else { break };
                let r = client
                    .post(&url)
                    .header("content-type", "application/json")
                    .body(body.clone())
                    .send()
                    .await
                    .unwrap_or_else(|e| panic!("POST {url}: {e}"));
                assert!(r.status().is_success(), "POST {url}: {}", r.status());
            }
        }));
    }
    for t in tasks {
        t.await.expect("poster");
    }
    started.elapsed()
}

struct Outcome {
    name: &'static str,
    silences_per_s: f64,
    first_accept_per_s: f64,
    notify_per_s: f64,
    delivered_after_post: Duration,
    /// CPU the server used from the end of posting to the last delivery,
    /// per notification.
    server_cpu_us: f64,
    /// CPU the harness (in that phase: the receiver) used, per notification.
    receiver_cpu_us: f64,
    resend_accept_per_s: f64,
    rss_mib: f64,
}

async fn measure(name: &'static str, base: &str, pid: u32, counter: &Arc<Counter>) -> Outcome {
    let client = reqwest::Client::new();
    // 1. Silences.
    let now = chrono::Utc::now();
    let started = Instant::now();
    for k in 0..SILENCES {
        let body = json!({
            "matchers": [
                {"name": "alertname", "value": format!("Alert{}", k % NAMES), "isRegex": false, "isEqual": true},
                {"name": "model_name", "value": format!("model{}", k / NAMES), "isRegex": false, "isEqual": true},
            ],
            "startsAt": now.to_rfc3339(),
            "endsAt": (now + chrono::Duration::hours(2)).to_rfc3339(),
            "createdBy": "bench",
            "comment": "benchmark silence",
        });
        let r = client
            .post(format!("{base}/api/v2/silences"))
            .json(&body)
            .send()
            .await
            .expect("POST silence");
        assert!(r.status().is_success(), "POST silence: {}", r.status());
    }
    let silences_per_s = SILENCES as f64 / started.elapsed().as_secs_f64();

    // 2. The alerts, first time.
    let total = NAMES * MODELS;
    let bodies: Arc<Vec<String>> = Arc::new(
        (0..total)
            .collect::<Vec<_>>()
            .chunks(BATCH)
            .map(|c| Value::Array(c.iter().map(|&i| alert(i)).collect()).to_string())
            .collect(),
    );
    let alerts_url = format!("{base}/api/v2/alerts");
    let first_post = Instant::now();
    let took = post_all(&client, &alerts_url, &bodies, CONNECTIONS).await;
    let first_accept_per_s = total as f64 / took.as_secs_f64();
    let posted = Instant::now();
    let (server_cpu, harness_cpu) = (cpu_s(Some(pid)), cpu_s(None));

    // 3. Deliveries.
    let expected = total - SILENCES;
    let deadline = Instant::now() + Duration::from_secs(600);
    while counter.seen.lock().alerts.len() < expected {
        assert!(
            Instant::now() < deadline,
            "{name}: only {} of {expected} delivered",
            counter.seen.lock().alerts.len()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (first, last) = {
        let seen = counter.seen.lock();
        (
            seen.first.unwrap_or(first_post),
            seen.last.unwrap_or_else(Instant::now),
        )
    };
    // Delivery rate from the first delivery to the last (group_wait, the
    // same for both, is not part of it).
    let notify_per_s = (expected - 1) as f64 / (last - first).as_secs_f64();
    let delivered_after_post = last.saturating_duration_since(posted);
    if std::env::var_os("AM_COMPARE_TIMELINE").is_some() {
        print_timeline(name, first, &counter.seen.lock().arrivals);
    }
    let server_cpu_us = (cpu_s(Some(pid)) - server_cpu) * 1e6 / expected as f64;
    let receiver_cpu_us = (cpu_s(None) - harness_cpu) * 1e6 / expected as f64;
    // A little longer: nothing more (in particular nothing silenced) arrives.
    tokio::time::sleep(Duration::from_secs(3)).await;
    {
        let seen = counter.seen.lock();
        let alerts = &seen.alerts;
        let distinct: HashSet<&(String, String)> = alerts.iter().collect();
        assert_eq!(alerts.len(), expected, "{name}: duplicate deliveries");
        assert_eq!(distinct.len(), expected);
        assert!(
            alerts.iter().all(|(n, m)| !silenced(n, m)),
            "{name}: a silenced alert was delivered"
        );
    }

    // 4. Re-sends.
    let resends: usize = std::env::var("AM_COMPARE_RESENDS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(3);
    eprintln!("{name}: re-sending {resends} times");
    let mut best = 0.0f64;
    for _ in 0..resends {
        let took = post_all(&client, &alerts_url, &bodies, CONNECTIONS).await;
        best = best.max(total as f64 / took.as_secs_f64());
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    eprintln!(
        "{name}: RSS {:.0} MiB = anonymous {:.0} + file-backed {:.0} (code, mapped compiled plugins)",
        rss_mib(pid),
        status_mib(pid, "RssAnon"),
        status_mib(pid, "RssFile")
    );
    Outcome {
        name,
        silences_per_s,
        first_accept_per_s,
        notify_per_s,
        delivered_after_post,
        server_cpu_us,
        receiver_cpu_us,
        resend_accept_per_s: best,
        rss_mib: rss_mib(pid),
    }
}

/// Notifications received per 10 ms from the first (on stderr): whether a
/// server delivers at an even rate or ramps up and trails off.
fn print_timeline(name: &str, first: Instant, arrivals: &[Instant]) {
    let mut buckets: Vec<usize> = Vec::new();
    for t in arrivals {
        let i = (t.saturating_duration_since(first).as_millis() / 10) as usize;
        if buckets.len() <= i {
            buckets.resize(i + 1, 0);
        }
        buckets[i] += 1;
    }
    let line: Vec<String> = buckets.iter().map(usize::to_string).collect();
    eprintln!("{name}: notifications per 10 ms: {}", line.join(" "));
}

/// A webhook payload (version 4) of one alert, shaped and sized like the
/// ones both servers send in the comparison.
fn webhook_payload(i: usize) -> String {
    let a = alert(i);
    let labels = &a["labels"];
    json!({
        "receiver": "hook",
        "status": "firing",
        "alerts": [{
            "status": "firing",
            "labels": labels,
            "annotations": a["annotations"],
            "startsAt": "2026-12-01T21:00:00.000Z",
            "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": a["generatorURL"],
            "fingerprint": format!("{i:016x}"),
        }],
        "groupLabels": {"alertname": labels["alertname"], "model_name": labels["model_name"]},
        "commonLabels": labels,
        "commonAnnotations": a["annotations"],
        "externalURL": "http://127.0.0.1:9093",
        "version": "4",
        "groupKey": format!("{{}}:{{alertname=\"{}\", model_name=\"{}\"}}", labels["alertname"].as_str().unwrap_or(""), labels["model_name"].as_str().unwrap_or("")),
        "truncatedAlerts": 0,
    })
    .to_string()
}

/// The `--ceiling-client URL CONCURRENCY` side: POSTs the 9 000 unsilenced
/// alerts' payloads to `URL` over `CONCURRENCY` keep-alive connections.
fn ceiling_client(url: &str, concurrency: usize) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let bodies: Arc<Vec<String>> =
        Arc::new((SILENCES..NAMES * MODELS).map(webhook_payload).collect());
    rt.block_on(post_all(&reqwest::Client::new(), url, &bodies, concurrency));
}

/// The harness's webhook receiver, on a free loopback port, served by a
/// single-threaded runtime on a thread of its own: the leanest way this
/// process can answer, so that it takes as little as it can of the cores
/// the server measured shares with it. Stops when dropped.
struct Receiver {
    counter: Arc<Counter>,
    /// Its base URL; `/hook` receives.
    base: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn start_receiver() -> Receiver {
    let counter = Arc::new(Counter::default());
    let app = Router::new()
        .route("/hook", post(hook))
        .with_state(counter.clone());
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind receiver");
    listener.set_nonblocking(true).expect("non-blocking");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("receiver runtime");
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
            tokio::select! {
                served = axum::serve(listener, app).into_future() => served.expect("receiver"),
                _ = stopped => {}
            }
        });
    });
    Receiver {
        counter,
        base,
        stop: Some(stop),
        thread: Some(thread),
    }
}

/// The receiver's ceiling (see the module docs): notifications/s from the
/// first to the last of 9 000 POSTs, per client concurrency.
fn receiver_ceiling() {
    let expected = NAMES * MODELS - SILENCES;
    println!(
        "\nreceiver ceiling: {expected} webhook POSTs of {} bytes from a separate keep-alive client process\n",
        webhook_payload(SILENCES).len()
    );
    println!("| client concurrency | notifications/s (first → last) |");
    println!("|---:|---:|");
    for concurrency in [1, 4, 16, 64] {
        let receiver = start_receiver();
        let url = format!("{}/hook", receiver.base);
        let exe = std::env::current_exe().expect("own path");
        let status = Command::new(exe)
            .arg("--ceiling-client")
            .arg(&url)
            .arg(concurrency.to_string())
            .status()
            .expect("run the ceiling client");
        assert!(status.success(), "ceiling client failed: {status}");
        assert_eq!(
            receiver.counter.notifications.load(Ordering::SeqCst),
            expected
        );
        let (first, last) = {
            let seen = receiver.counter.seen.lock();
            (
                seen.first.expect("a first delivery"),
                seen.last.expect("a last delivery"),
            )
        };
        let per_s = (expected - 1) as f64 / (last - first).as_secs_f64();
        println!("| {concurrency} | {per_s:.0} |");
    }
}

fn main() {
    klaxon_host::server::install_tls_provider();
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--ceiling-client") {
        let url = args
            .get(i + 1)
            .expect("receiver URL after --ceiling-client");
        let concurrency = args
            .get(i + 2)
            .and_then(|c| c.parse().ok())
            .expect("concurrency after the URL");
        ceiling_client(url, concurrency);
        return;
    }
    if let Some(i) = args.iter().position(|a| a == "--serve-klaxon") {
        let receiver = args.get(i + 1).expect("receiver URL after --serve-klaxon");
        let data_dir = args.get(i + 2).map(std::path::PathBuf::from);
        harness::serve_klaxon_in(&config(receiver, true), data_dir);
        return;
    }
    if args.iter().any(|a| a == "--receiver-ceiling") {
        receiver_ceiling();
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let only = std::env::var("AM_COMPARE_ONLY").ok();
    let rounds: usize = std::env::var("AM_COMPARE_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(3)
        .max(1);
    println!(
        "\n{NAMES}×{MODELS} alerts (one group each), {SILENCES} silences, batches of {BATCH}, {CONNECTIONS} connections; {rounds} rounds, each server once per round, the order alternating\n"
    );
    println!(
        "| round | server | silences created/s | alerts accepted/s (first post) | notifications/s (first → last delivery) | last delivery after posting ended | alerts accepted/s (re-send, 10k active, best of 3) | RSS MiB |"
    );
    println!("|---:|---|---:|---:|---:|---:|---:|---:|");
    let mut ratios: Vec<[f64; 4]> = Vec::new();
    for round in 1..=rounds {
        // Alternating which server goes first cancels a drift of the
        // machine's speed within a round.
        let order = if round % 2 == 1 {
            ["alertmanager", "klaxon"]
        } else {
            ["klaxon", "alertmanager"]
        };
        let mut outcomes = Vec::new();
        for which in order {
            if only.as_deref().is_some_and(|o| o != which) {
                continue;
            }
            outcomes.push(run_server(&rt, which));
        }
        for o in &outcomes {
            eprintln!(
                "round {round}, {}: delivery phase CPU per notification: server {:.0} µs, receiver (harness) {:.0} µs",
                o.name, o.server_cpu_us, o.receiver_cpu_us
            );
            println!(
                "| {round} | {} | {:.0} | {:.0} | {:.0} | {:.2} s | {:.0} | {:.0} |",
                o.name,
                o.silences_per_s,
                o.first_accept_per_s,
                o.notify_per_s,
                o.delivered_after_post.as_secs_f64(),
                o.resend_accept_per_s,
                o.rss_mib
            );
        }
        let am = outcomes.iter().find(|o| o.name != "Klaxon");
        let k = outcomes.iter().find(|o| o.name == "Klaxon");
        if let (Some(am), Some(k)) = (am, k) {
            ratios.push([
                k.first_accept_per_s / am.first_accept_per_s,
                k.resend_accept_per_s / am.resend_accept_per_s,
                k.notify_per_s / am.notify_per_s,
                k.rss_mib / am.rss_mib,
            ]);
        }
    }
    if ratios.is_empty() {
        return;
    }
    println!("\nKlaxon / Alertmanager, each ratio from the two servers of one round:\n");
    println!("| round | accept (first) | accept (re-send) | notifications | memory |");
    println!("|---:|---:|---:|---:|---:|");
    for (i, r) in ratios.iter().enumerate() {
        println!(
            "| {} | {:.2}× | {:.2}× | {:.2}× | {:.2}× |",
            i + 1,
            r[0],
            r[1],
            r[2],
            r[3]
        );
    }
    let median = |k: usize| {
        let mut v: Vec<f64> = ratios.iter().map(|r| r[k]).collect();
        v.sort_by(f64::total_cmp);
        let n = v.len();
        if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        }
    };
    println!(
        "| median | {:.2}× | {:.2}× | {:.2}× | {:.2}× |",
        median(0),
        median(1),
        median(2),
        median(3)
    );
}

/// Starts one server (`alertmanager` or `klaxon`) with a fresh data dir and
/// its own receiver, measures it, and stops it.
fn run_server(rt: &tokio::runtime::Runtime, which: &str) -> Outcome {
    let hook = start_receiver();
    let (counter, receiver) = (hook.counter.clone(), hook.base.clone());

    let dir = tempfile::tempdir().expect("tempdir");
    let (proc, base, name): (Proc, String, &'static str) = if which == "klaxon" {
        // As deployed: with a data dir, started once before so that the
        // plugins load from the compile cache (Alertmanager, too, gets
        // its storage path).
        let data = dir.path().join("klaxon");
        let data = data.to_string_lossy();
        drop(harness::spawn_klaxon_with(&[&receiver, &data]));
        let (p, b) = harness::spawn_klaxon_with(&[&receiver, &data]);
        (p, b, "Klaxon")
    } else {
        let cfg = dir.path().join("alertmanager.yml");
        std::fs::write(&cfg, config(&receiver, false)).expect("write config");
        let port = free_port();
        let child = Command::new("/usr/bin/prometheus-alertmanager")
            .arg(format!("--config.file={}", cfg.display()))
            .arg(format!(
                "--storage.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--cluster.listen-address=")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect(
                "start /usr/bin/prometheus-alertmanager (apt-get install prometheus-alertmanager)",
            );
        let base = format!("http://127.0.0.1:{port}");
        wait_http(&format!("{base}/-/ready"));
        (Proc(child), base, "Alertmanager 0.25")
    };
    let outcome = rt.block_on(measure(name, &base, proc.0.id(), &counter));
    drop(proc);
    outcome
}
