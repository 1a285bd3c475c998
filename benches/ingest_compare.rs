//! Ingestion, Klaxon side by side with Prometheus and VictoriaMetrics
//! (Debian's `prometheus` and `victoria-metrics`), each a fresh process
//! started by this harness on loopback, over the same generated data:
//! 1 000 ML-serving series × 6 h at 15 s (~1.44 M samples).
//!
//! - Prometheus text import (`/api/v1/import/prometheus`, 8 MB bodies):
//!   Klaxon and VictoriaMetrics (Prometheus has no push endpoint for text).
//! - Remote write 1.0 (snappy protobuf, 10 000 samples per request, in time
//!   order so Prometheus's head accepts the history): Klaxon, Prometheus
//!   (`--web.enable-remote-write-receiver`) and VictoriaMetrics.
//!
//! Bodies are encoded before the clock starts; 2 connections send the text
//! bodies, one connection the remote-write bodies (in order).
//! Every sample is counted back through each server's query API, and the
//! server's resident memory (VmRSS) is read after the load.
//!
//! Each server runs as deployed, with its storage directory (Klaxon: its
//! data dir, the plugin compile cache warmed by one start beforehand).
//!
//! Run: `cargo bench --bench ingest_compare`.

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use klaxon_host::ingest::remote_write_proto::{Label, Sample, TimeSeries, WriteRequest};
use prost::Message;
use serde_json::Value;

#[path = "shared/harness.rs"]
mod harness;
#[path = "shared/mlseries.rs"]
mod mlseries;
use harness::{Proc, free_port, wait_http};
use mlseries::{Family, STEP_S, generate, render};

const HOURS: i64 = 6;

fn rss_mib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| {
                l.split_whitespace()
                    .nth(1)
                    .and_then(|v| v.parse::<f64>().ok())
            })
        })
        .unwrap_or(0.0)
        / 1024.0
}

/// A server under test.
struct Target {
    name: &'static str,
    base: String,
    proc: Proc,
}

fn start_klaxon(dir: &Path) -> Target {
    let (proc, base) = harness::spawn_klaxon_deployed(dir);
    Target {
        name: "Klaxon",
        base,
        proc,
    }
}

fn start_prometheus(dir: &Path) -> Target {
    std::fs::create_dir_all(dir).expect("prometheus dir");
    let config = dir.join("prometheus.yml");
    std::fs::write(&config, "global:\n  scrape_interval: 15s\n").expect("config");
    let port = free_port();
    let child = Command::new("/usr/bin/prometheus")
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("prom").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--web.enable-remote-write-receiver")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start prometheus");
    let base = format!("http://127.0.0.1:{port}");
    wait_http(&format!("{base}/-/ready"));
    Target {
        name: "Prometheus",
        base,
        proc: Proc(child),
    }
}

fn start_vm(dir: &Path) -> Target {
    let port = free_port();
    let child = Command::new("/usr/bin/victoria-metrics")
        .arg(format!("-storageDataPath={}", dir.join("vm").display()))
        .arg(format!("-httpListenAddr=127.0.0.1:{port}"))
        .arg("-retentionPeriod=30d")
        .arg("-search.latencyOffset=0s")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start victoria-metrics");
    let base = format!("http://127.0.0.1:{port}");
    wait_http(&format!("{base}/health"));
    Target {
        name: "VictoriaMetrics",
        base,
        proc: Proc(child),
    }
}

/// A request body with its content type and content encoding.
type Body = (Vec<u8>, &'static str, Option<&'static str>);

/// Sends `bodies` over `connections` connections; the elapsed time.
fn send(url: &str, bodies: &[Body], connections: usize) -> Duration {
    let next = Mutex::new(0usize);
    let started = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..connections {
            s.spawn(|| {
                let client = reqwest::blocking::Client::builder()
                    .timeout(Duration::from_secs(300))
                    .build()
                    .expect("client");
                loop {
                    let i = {
                        let mut n = next.lock().expect("lock");
                        let i = *n;
                        *n += 1;
                        i
                    };
                    let Some((body, content_type, encoding)) = bodies.get(i) else {
                        return;
                    };
                    let mut req = client
                        .post(url)
                        .header("content-type", *content_type)
                        .body(body.clone());
                    if let Some(e) = encoding {
                        req = req
                            .header("content-encoding", *e)
                            .header("x-prometheus-remote-write-version", "0.1.0");
                    }
                    let resp = req.send().expect("send");
                    let status = resp.status();
                    assert!(status.is_success(), "{url}: {status} {:?}", resp.text());
                }
            });
        }
    });
    started.elapsed()
}

/// Samples the server holds, through its PromQL API (one query per metric:
/// across metrics, `count_over_time` would yield clashing label sets).
fn count(base: &str, at_s: i64, families: &[Family]) -> f64 {
    let client = reqwest::blocking::Client::new();
    families
        .iter()
        .map(|f| {
            let body: Value = client
                .post(format!("{base}/api/v1/query"))
                .form(&[
                    ("query", format!("sum(count_over_time({}[7h]))", f.name)),
                    ("time", at_s.to_string()),
                ])
                .send()
                .expect("count query")
                .json()
                .expect("count JSON");
            body["data"]["result"][0]["value"][1]
                .as_str()
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or_else(|| panic!("{base}: no count in {body}"))
        })
        .sum()
}

fn parse_labels(name: &str, text: &str) -> Vec<Label> {
    let mut labels: Vec<Label> = text
        .split(',')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| Label {
            name: k.to_owned(),
            value: v.trim_matches('"').to_owned(),
        })
        .collect();
    labels.push(Label {
        name: "__name__".into(),
        value: name.into(),
    });
    labels.sort_by(|a, b| a.name.cmp(&b.name));
    labels
}

/// Remote-write bodies, time-ordered: 10 timestamps × every series each.
fn remote_write_bodies(families: &[Family], start_s: i64, points: usize) -> Vec<Vec<u8>> {
    let series: Vec<(Vec<Label>, &Vec<f64>)> = families
        .iter()
        .flat_map(|f| f.series.iter().map(|(l, v)| (parse_labels(f.name, l), v)))
        .collect();
    (0..points)
        .step_by(10)
        .map(|first| {
            let last = (first + 10).min(points);
            let request = WriteRequest {
                timeseries: series
                    .iter()
                    .map(|(labels, values)| TimeSeries {
                        labels: labels.clone(),
                        samples: (first..last)
                            .map(|i| Sample {
                                value: values[i],
                                timestamp: (start_s + i as i64 * STEP_S) * 1000,
                            })
                            .collect(),
                    })
                    .collect(),
            };
            snap::raw::Encoder::new()
                .compress_vec(&request.encode_to_vec())
                .expect("snappy")
        })
        .collect()
}

fn main() {
    if std::env::args().any(|a| a == "--serve-klaxon") {
        if std::env::args().any(|a| a == "--default-config") {
            harness::serve_klaxon(klaxon_host::config::DEFAULT_CONFIG);
        } else {
            serve_klaxon();
        }
        return;
    }
    klaxon_host::server::install_tls_provider();
    for bin in ["/usr/bin/prometheus", "/usr/bin/victoria-metrics"] {
        assert!(
            Path::new(bin).exists(),
            "{bin} is missing: apt-get install prometheus victoria-metrics"
        );
    }
    let points = (HOURS * 3600 / STEP_S) as usize;
    let now_s = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64;
    let end_s = (now_s - 60) / STEP_S * STEP_S;
    let start_s = end_s - (points as i64 - 1) * STEP_S;
    let families = generate(points);
    let total: usize = families.iter().map(|f| f.series.len()).sum::<usize>() * points;
    let (text, _) = render(&families, start_s);
    let mut text_bodies: Vec<Body> = Vec::new();
    let mut chunk = String::new();
    for l in text.lines() {
        chunk.push_str(l);
        chunk.push('\n');
        if chunk.len() > 8 << 20 {
            text_bodies.push((std::mem::take(&mut chunk).into_bytes(), "text/plain", None));
        }
    }
    text_bodies.push((chunk.into_bytes(), "text/plain", None));
    let rw_bodies: Vec<(Vec<u8>, &str, Option<&str>)> =
        remote_write_bodies(&families, start_s, points)
            .into_iter()
            .map(|b| (b, "application/x-protobuf", Some("snappy")))
            .collect();
    let rw_bytes: usize = rw_bodies.iter().map(|b| b.0.len()).sum();
    println!(
        "data: {total} samples; text {:.1} MB in {} bodies; remote write {:.1} MB in {} bodies",
        text.len() as f64 / 1e6,
        text_bodies.len(),
        rw_bytes as f64 / 1e6,
        rw_bodies.len()
    );
    let dir = tempfile::tempdir().expect("tempdir");
    rss_at_rest(dir.path());
    println!("\n| format | server | samples/s | counted back | RSS before | RSS after |");
    println!("|---|---|---|---|---|---|");
    let runs: [(&str, &[Body], &str); 2] = [
        ("text import", &text_bodies, "/api/v1/import/prometheus"),
        ("remote write", &rw_bodies, "/api/v1/write"),
    ];
    for (format, bodies, path) in runs {
        let mut targets = vec![start_klaxon(
            &dir.path().join(format!("k-{}", format.replace(' ', "-"))),
        )];
        if format == "remote write" {
            targets.push(start_prometheus(&dir.path().join(format!("p-{format}"))));
        }
        targets.push(start_vm(
            &dir.path().join(format!("v-{}", format.replace(' ', "-"))),
        ));
        for t in &targets {
            let before = rss_mib(t.proc.0.id());
            // Remote write in order on one connection: Prometheus's head
            // refuses samples older than what it already has.
            let connections = if format == "remote write" { 1 } else { 2 };
            let elapsed = send(&format!("{}{path}", t.base), bodies, connections);
            if t.name == "VictoriaMetrics" {
                let _ = reqwest::blocking::get(format!("{}/internal/force_flush", t.base));
                std::thread::sleep(Duration::from_secs(2));
            }
            let counted = count(&t.base, end_s, &families);
            println!(
                "| {format} | {} | {:.2} M | {} of {total} | {before:.0} MiB | {:.0} MiB |",
                t.name,
                total as f64 / elapsed.as_secs_f64() / 1e6,
                counted,
                rss_mib(t.proc.0.id())
            );
        }
    }
}

/// Klaxon's resident memory at rest, before any sample: with the bench's
/// config (no rules) and with the embedded default config (its rules and
/// receivers), each started twice so the plugins come from the compile
/// cache, as deployed.
fn rss_at_rest(dir: &Path) {
    let mut line = Vec::new();
    for (name, extra) in [
        ("bench config (no rules)", None),
        ("embedded default config", Some("--default-config")),
    ] {
        let d = dir.join(format!("rest-{}", extra.unwrap_or("bench")));
        let d = d.to_string_lossy();
        let mut args = vec!["--data-dir", &d];
        args.extend(extra);
        drop(harness::spawn_klaxon_with(&args));
        let (proc, _) = harness::spawn_klaxon_with(&args);
        std::thread::sleep(Duration::from_secs(2));
        line.push(format!("{:.0} MiB with the {name}", rss_mib(proc.0.id())));
    }
    println!("Klaxon at rest: {}", line.join(", "));
}

/// Klaxon with no rules, keeping 7 h.
fn serve_klaxon() {
    harness::serve_klaxon(
        "limits:\n  max_sample_age: 7h\n  max_body_bytes: 33554432\nstore:\n  retention: 7h\n",
    );
}
