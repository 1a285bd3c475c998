//! Plugin lifecycle costs.
//!
//! 1. Upload → first evaluation on the new version, for the stock zscore
//!    plugin: `PUT /api/v1/plugins/zscore` to a running Klaxon (whose rule
//!    uses zscore, so the pipeline checks its config), then one evaluation
//!    with the live version, which must be the uploaded one. *Cold*: bytes
//!    never seen (a custom section makes each upload a new component), so
//!    the pipeline compiles. *Cached*: two versions alternately, both in the
//!    disk cache, so the pipeline deserializes.
//! 2. Detector evaluation throughput (100 series × 240 samples per call,
//!    the live version looked up per call as rules do) while a version is
//!    swapped in every second, against no swaps.
//!
//! Run: `cargo bench --bench plugin_swap`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use klaxon_host::config::Config;
use klaxon_host::plugins::bindings::types::{Batch, SeriesInput, Span};
use klaxon_host::plugins::lifecycle::{Candidate, PluginManager};
use klaxon_host::plugins::signing::TrustPolicy;
use klaxon_host::plugins::{
    EngineSettings, PluginEngine, PluginKind, PluginLimits, PluginRegistry, PluginSource, Tier,
    stock,
};
use klaxon_host::server::{ServerOptions, start};
use sha2::Digest;

const CONFIG: &str = r#"{"threshold":3.0,"min_samples":10}"#;
const SERIES: usize = 100;
const SAMPLES: usize = 240;
const ROUNDS: usize = 30;
const THROUGHPUT_SECS: u64 = 10;

// A generous call deadline: the bench machine is shared, and a preempted
// call must not fail the run.
const YAML: &str = r#"
plugins:
  limits: { timeout: 10s }
groups:
  - name: ml
    interval: 1h
    rules:
      - alert: ScoreShift
        query: model_score
        window: 1h
        detector: zscore
        config: { threshold: 3.0, min_samples: 10 }
"#;

/// The component with a custom section appended: another hash, same behaviour.
fn with_custom_section(bytes: &[u8], tag: &str) -> Vec<u8> {
    let name = b"klaxon-bench";
    let mut payload = Vec::new();
    leb128(&mut payload, name.len() as u64);
    payload.extend_from_slice(name);
    payload.extend_from_slice(tag.as_bytes());
    let mut out = bytes.to_vec();
    out.push(0); // custom section id
    leb128(&mut out, payload.len() as u64);
    out.extend_from_slice(&payload);
    out
}

fn leb128(out: &mut Vec<u8>, mut v: u64) {
    loop {
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

fn batch() -> Batch {
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let mut b = Batch {
        series: Vec::new(),
        timestamps_ms: Vec::new(),
        values: Vec::new(),
        eval_time_ms: 1_763_780_000_000 + SAMPLES as i64 * 15_000,
    };
    for s in 0..SERIES {
        let start = b.values.len() as u32;
        for i in 0..SAMPLES {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            b.timestamps_ms.push(1_763_780_000_000 + i as i64 * 15_000);
            b.values.push(s as f64 + (x % 1000) as f64 / 1000.0);
        }
        b.series.push(SeriesInput {
            labels: format!("{{__name__=\"model_score\",model_name=\"model-{s}\"}}"),
            window: Span {
                start,
                len: SAMPLES as u32,
            },
            baseline: Span {
                start: b.values.len() as u32,
                len: 0,
            },
            state: None,
        });
    }
    b
}

fn summary(name: &str, mut ms: Vec<f64>) {
    ms.sort_by(f64::total_cmp);
    let q = |p: f64| ms[((ms.len() - 1) as f64 * p).round() as usize];
    println!(
        "{name:<40} n={:<3} median {:>8.2} ms   p90 {:>8.2} ms   min {:>8.2} ms   max {:>8.2} ms",
        ms.len(),
        q(0.5),
        q(0.9),
        ms[0],
        ms[ms.len() - 1]
    );
}

async fn upload_to_first_evaluation() {
    let data = tempfile::tempdir().expect("tempdir");
    let server = start(ServerOptions {
        listen: "127.0.0.1:0".parse().expect("addr"),
        config: Config::parse(YAML, "bench.yml").expect("config"),
        config_file: "bench.yml".into(),
        config_text: YAML.into(),
        config_path: None,
        data_dir: Some(data.path().to_path_buf()),
    })
    .await
    .expect("klaxon starts");
    let url = format!("http://{}/api/v1/plugins/zscore", server.addr());
    let client = reqwest::Client::new();
    let zscore = stock::bytes("zscore").expect("stock zscore");
    let batch = Arc::new(batch());

    let upload = |bytes: Vec<u8>| {
        let (client, url, state, batch) = (
            client.clone(),
            url.clone(),
            server.state.clone(),
            batch.clone(),
        );
        async move {
            let start = Instant::now();
            let resp = client.put(&url).body(bytes).send().await.expect("PUT");
            assert_eq!(
                resp.status(),
                200,
                "{}",
                resp.text().await.unwrap_or_default()
            );
            let body: serde_json::Value = resp.json().await.expect("JSON");
            let hash = body["data"]["hash"].as_str().expect("hash").to_string();
            let from_cache = body["data"]["fromCache"].as_bool().expect("fromCache");
            let outputs = tokio::task::spawn_blocking(move || {
                let live = state
                    .plugins
                    .get_kind("zscore", PluginKind::Detector)
                    .expect("zscore");
                assert_eq!(live.hash, hash, "the first evaluation runs the new version");
                live.evaluate(CONFIG, &batch).expect("evaluate")
            })
            .await
            .expect("evaluation");
            assert_eq!(outputs.len(), SERIES);
            (start.elapsed().as_secs_f64() * 1e3, from_cache)
        }
    };

    // Waits until the live zscore is the optimized build of `hash` (the
    // background compile after a quick one), so no compile overlaps the next
    // measurement; returns when that happened.
    let optimized = |hash: String| {
        let state = server.state.clone();
        async move {
            loop {
                let live = state.plugins.get("zscore").expect("zscore");
                if live.hash == hash && live.tier == Tier::Optimized {
                    return Instant::now();
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
    };
    let sha = |b: &[u8]| hex::encode(sha2::Sha256::digest(b));

    let mut cold = Vec::new();
    let mut optimized_after = Vec::new();
    for i in 0..ROUNDS {
        let bytes = with_custom_section(zscore, &format!("cold-{i}"));
        let hash = sha(&bytes);
        let start = Instant::now();
        let (ms, cached) = upload(bytes).await;
        assert!(!cached);
        cold.push(ms);
        let done = optimized(hash).await;
        optimized_after.push(done.duration_since(start).as_secs_f64() * 1e3);
    }
    let (a, b) = (
        with_custom_section(zscore, "warm-a"),
        with_custom_section(zscore, "warm-b"),
    );
    upload(a.clone()).await;
    optimized(sha(&a)).await;
    upload(b.clone()).await;
    optimized(sha(&b)).await;
    let mut cached = Vec::new();
    for i in 0..ROUNDS {
        let bytes = if i % 2 == 0 { a.clone() } else { b.clone() };
        let (ms, hit) = upload(bytes).await;
        assert!(hit, "the version is in the disk cache");
        cached.push(ms);
    }
    println!("upload → first evaluation (zscore, {SERIES} series × {SAMPLES} samples):");
    summary("  cold (quick compile, live)", cold);
    summary("  cold: optimized build live after", optimized_after);
    summary("  cached (disk cache by content hash)", cached);
    server.shutdown().await;
}

/// Evaluations per second over `secs`, swapping versions every second when `swap`.
fn throughput(swap: bool) -> f64 {
    let data = tempfile::tempdir().expect("tempdir");
    let engine = Arc::new(
        PluginEngine::new(EngineSettings {
            cache_dir: Some(data.path().join("plugin-cache")),
            ..EngineSettings::default()
        })
        .expect("engine"),
    );
    let registry = Arc::new(PluginRegistry::new());
    registry
        .load_stock(
            &engine,
            &PluginLimits {
                timeout: Duration::from_secs(10),
                ..PluginLimits::default()
            },
        )
        .expect("stock plugins");
    let manager = Arc::new(PluginManager::new(
        engine,
        registry.clone(),
        TrustPolicy::default(),
    ));
    let config = Config::parse(YAML, "bench.yml").expect("config");
    let zscore = stock::bytes("zscore").expect("stock zscore");
    let versions = [
        with_custom_section(zscore, "swap-a"),
        with_custom_section(zscore, "swap-b"),
    ];
    let offer = |bytes: &Vec<u8>| Candidate {
        name: "zscore".into(),
        bytes: bytes.clone().into(),
        source: PluginSource::Upload,
        manifest: None,
        signature: None,
    };
    // Both versions compiled once, so swaps hit the disk cache.
    for v in &versions {
        manager.load(offer(v), &config).expect("load");
    }
    let batch = batch();
    let stop = Arc::new(AtomicBool::new(false));
    let swaps = Arc::new(AtomicU64::new(0));
    let swapper = swap.then(|| {
        let (manager, stop, swaps, config) =
            (manager.clone(), stop.clone(), swaps.clone(), config.clone());
        std::thread::spawn(move || {
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_secs(1));
                manager
                    .load(offer(&versions[i % 2]), &config)
                    .expect("swap");
                swaps.fetch_add(1, Ordering::Relaxed);
                i += 1;
            }
        })
    });
    let start = Instant::now();
    let mut calls = 0u64;
    while start.elapsed() < Duration::from_secs(THROUGHPUT_SECS) {
        let live = registry
            .get_kind("zscore", PluginKind::Detector)
            .expect("zscore");
        let out = live.evaluate(CONFIG, &batch).expect("evaluate");
        assert_eq!(out.len(), SERIES);
        calls += 1;
    }
    let rate = calls as f64 / start.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    if let Some(t) = swapper {
        t.join().expect("swapper");
    }
    println!(
        "  {:<38} {rate:>8.1} evaluations/s ({calls} in {THROUGHPUT_SECS} s, {} swaps)",
        if swap {
            "swapping every second"
        } else {
            "no swaps"
        },
        swaps.load(Ordering::Relaxed)
    );
    rate
}

fn main() {
    klaxon_host::server::install_tls_provider();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(upload_to_first_evaluation());
    println!(
        "evaluation throughput (zscore, {SERIES} series × {SAMPLES} samples, one evaluating thread):"
    );
    let still = throughput(false);
    let swapping = throughput(true);
    let still_again = throughput(false);
    let base = (still + still_again) / 2.0;
    println!(
        "  ratio swapping / no swaps (mean of the runs before and after): {:.3}",
        swapping / base
    );
}
