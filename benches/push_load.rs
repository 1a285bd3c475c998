//! HTTP JSON push end to end: a Klaxon server in one process, this load
//! generator in another (the same executable re-spawned with `--serve`), over
//! loopback. Batches of 1 000 samples (10 series × 100 samples), several
//! connections, pre-serialised bodies. Reports samples/s and checks every
//! sample was stored.
//!
//! Run: `cargo bench --bench push_load` (options: `-- --samples N --connections C`).

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const SERIES_PER_REQUEST: usize = 10;
const SAMPLES_PER_SERIES: usize = 100;
const STEP_MS: i64 = 100;

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    if std::env::args().any(|a| a == "--serve") {
        serve();
        return;
    }
    let total_samples = arg("--samples", 20_000_000);
    let connections = arg("--connections", 4);
    let per_request = SERIES_PER_REQUEST * SAMPLES_PER_SERIES;
    let requests = total_samples / per_request;

    // The server, in its own process.
    let exe = std::env::current_exe().expect("own path");
    klaxon_host::server::install_tls_provider();
    let mut server = ServerProcess(
        Command::new(exe)
            .arg("--serve")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn server"),
    );
    let child = &mut server.0;
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("server prints its address");
    let base = format!("http://{}", line.trim());

    // Pre-serialise every body: the generator should cost as little as possible.
    // Each connection owns 100 series; request k of a connection carries the
    // next 100 samples of 10 of them, 100 ms apart (so even 20 M samples
    // stay inside the server's 7 h `max_sample_age`).
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64;
    let per_conn = requests / connections;
    let series_groups = 10; // 10 groups of 10 series per connection
    let rounds = per_conn.div_ceil(series_groups);
    let start_ms = now_ms - (rounds * SAMPLES_PER_SERIES) as i64 * STEP_MS - 60_000;
    let bodies: Vec<Vec<bytes::Bytes>> = (0..connections)
        .map(|c| {
            (0..per_conn)
                .map(|k| {
                    let group = k % series_groups;
                    let round = k / series_groups;
                    let series: Vec<String> = (0..SERIES_PER_REQUEST)
                        .map(|s| {
                            let samples: Vec<String> = (0..SAMPLES_PER_SERIES)
                                .map(|i| {
                                    let t = start_ms + ((round * SAMPLES_PER_SERIES + i) as i64) * STEP_MS;
                                    format!("[{t},{}]", 0.1 + (i % 7) as f64 * 0.01)
                                })
                                .collect();
                            format!(
                                r#"{{"metric":"ml_prediction_latency_seconds","labels":{{"model_name":"model-{c}-{group}","replica":"r{s}"}},"samples":[{}]}}"#,
                                samples.join(",")
                            )
                        })
                        .collect();
                    bytes::Bytes::from(format!(r#"{{"series":[{}]}}"#, series.join(",")))
                })
                .collect()
        })
        .collect();
    let sent_samples = connections * per_conn * per_request;
    let body_bytes: usize = bodies.iter().flatten().map(|b| b.len()).sum();

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let errors = Arc::new(AtomicUsize::new(0));
    let elapsed = rt.block_on(async {
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(connections)
            .build()
            .expect("client");
        // Warm-up: one request per connection.
        wait_ready(&client, &base).await;
        let started = Instant::now();
        let tasks: Vec<_> = bodies
            .into_iter()
            .map(|bodies| {
                let client = client.clone();
                let url = format!("{base}/api/v1/push");
                let errors = errors.clone();
                tokio::spawn(async move {
                    for body in bodies {
                        let resp = client
                            .post(&url)
                            .header("content-type", "application/json")
                            .body(body)
                            .send()
                            .await;
                        match resp {
                            Ok(r) if r.status().is_success() => {}
                            Ok(r) => {
                                errors.fetch_add(1, Ordering::Relaxed);
                                eprintln!(
                                    "push failed: {} {}",
                                    r.status(),
                                    r.text().await.unwrap_or_default()
                                );
                            }
                            Err(e) => {
                                errors.fetch_add(1, Ordering::Relaxed);
                                eprintln!("push failed: {e}");
                            }
                        }
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.expect("load task");
        }
        started.elapsed()
    });
    let stored = rt.block_on(async {
        let client = reqwest::Client::new();
        let v: serde_json::Value = client
            .get(format!("{base}/api/v1/status/runtime"))
            .send()
            .await
            .expect("status")
            .json()
            .await
            .expect("status JSON");
        v["data"]["samples"].as_u64().unwrap_or(0) as usize
    });
    let rss_kib = std::fs::read_to_string(format!("/proc/{}/status", child.id()))
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| {
                l.split_whitespace()
                    .nth(1)
                    .and_then(|v| v.parse::<u64>().ok())
            })
        })
        .unwrap_or(0);
    drop(server);

    let rate = sent_samples as f64 / elapsed.as_secs_f64();
    println!(
        "push_load: {connections} connections, {sent_samples} samples in {} requests of {per_request} ({:.1} MB of JSON)",
        connections * per_conn,
        body_bytes as f64 / 1e6
    );
    println!(
        "push_load: {:.3} s, {:.2} M samples/s, {:.1} MB/s of JSON, errors {}",
        elapsed.as_secs_f64(),
        rate / 1e6,
        body_bytes as f64 / 1e6 / elapsed.as_secs_f64(),
        errors.load(Ordering::Relaxed)
    );
    println!(
        "push_load: stored {stored} of {sent_samples} samples; server peak RSS {:.0} MiB",
        rss_kib as f64 / 1024.0
    );
    assert_eq!(stored, sent_samples, "every pushed sample must be stored");
}

/// The server process, killed when this goes out of scope, panics included.
struct ServerProcess(std::process::Child);

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn wait_ready(client: &reqwest::Client, base: &str) {
    for _ in 0..600 {
        if let Ok(r) = client.get(format!("{base}/healthz")).send().await
            && r.status().is_success()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("server did not become ready");
}

/// Server mode: Klaxon with no rules, listening on an ephemeral port; prints the address.
fn serve() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let yaml = "limits:\n  max_sample_age: 7h\nstore:\n  retention: 7h\n";
        let config = klaxon_host::config::Config::parse(yaml, "bench.yml").expect("config");
        let server = klaxon_host::server::start(klaxon_host::server::ServerOptions {
            listen: "127.0.0.1:0".parse().expect("addr"),
            config,
            config_file: "bench.yml".into(),
            config_text: yaml.into(),
            config_path: None,
            data_dir: None,
        })
        .await
        .expect("server starts");
        println!("{}", server.addr());
        server.run_until_signal().await;
    });
}
