//! Process plumbing the comparison benches share: a child process killed on
//! drop, free ports, waiting for a server, and Klaxon served from the bench
//! executable itself (`--serve-klaxon`).

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// Kills the child when dropped, panics included.
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Polls `url` until it answers 2xx (60 s at most).
pub fn wait_http(url: &str) {
    let client = reqwest::blocking::Client::new();
    for _ in 0..600 {
        if client
            .get(url)
            .send()
            .is_ok_and(|r| r.status().is_success())
        {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("{url} did not come up");
}

/// Re-runs this executable with `--serve-klaxon`; returns the process and
/// Klaxon's base URL once it is healthy.
pub fn spawn_klaxon() -> (Proc, String) {
    spawn_klaxon_with(&[])
}

/// Like [`spawn_klaxon`], passing `args` after `--serve-klaxon`.
pub fn spawn_klaxon_with(args: &[&str]) -> (Proc, String) {
    let exe = std::env::current_exe().expect("own path");
    let mut child = Command::new(exe)
        .arg("--serve-klaxon")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn klaxon");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("klaxon prints its address");
    let base = format!("http://{}", line.trim());
    let proc = Proc(child);
    wait_http(&format!("{base}/healthz"));
    (proc, base)
}

/// The `--serve-klaxon` side: Klaxon with `yaml` on an ephemeral port;
/// prints its address and serves until killed.
pub fn serve_klaxon(yaml: &str) {
    let args: Vec<String> = std::env::args().collect();
    let data_dir = args
        .iter()
        .position(|a| a == "--data-dir")
        .and_then(|i| args.get(i + 1))
        .map(std::path::PathBuf::from);
    serve_klaxon_in(yaml, data_dir);
}

/// Klaxon as deployed: with a data dir, started once beforehand so that the
/// plugins load from the compile cache. Returns the second process.
pub fn spawn_klaxon_deployed(data_dir: &std::path::Path) -> (Proc, String) {
    let dir = data_dir.to_string_lossy();
    drop(spawn_klaxon_with(&["--data-dir", &dir]));
    spawn_klaxon_with(&["--data-dir", &dir])
}

/// Like [`serve_klaxon`], with a data dir (compile cache, journal, silences).
pub fn serve_klaxon_in(yaml: &str, data_dir: Option<std::path::PathBuf>) {
    // Logging as `klaxon serve` sets it up (to stderr, `RUST_LOG` or info),
    // so the server measured pays for what a deployed one logs.
    klaxon_host::cli::init_tracing(false);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let config = klaxon_host::config::Config::parse(yaml, "bench.yml").expect("config");
        let server = klaxon_host::server::start(klaxon_host::server::ServerOptions {
            listen: "127.0.0.1:0".parse().expect("addr"),
            config,
            config_file: "bench.yml".into(),
            config_text: yaml.into(),
            config_path: None,
            data_dir,
        })
        .await
        .expect("server starts");
        println!("{}", server.addr());
        server.run_until_signal().await;
    });
}
